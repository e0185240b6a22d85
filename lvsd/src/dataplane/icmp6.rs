//! ICMPv6 for the data path: neighbour discovery for the next hops of IPv6 real servers,
//! and errors about the connections lvsd forwards (IPVS `ip_vs_in_icmp_v6`,
//! `ip_vs_out_icmp_v6`, `ip_vs_nat_icmp_v6`).
//!
//! Neighbours (RFC 4861; the IPv6 side of the ARP tracking in `mod.rs`): a tracked IPv6
//! next hop is asked with a Neighbor Solicitation from the DIP (`DestSpec::source`) to the
//! target's solicited-node multicast address, hop limit 255, with our source link-layer
//! address option ([`emit_solicit`]). Its MAC is learned from any Neighbor Advertisement
//! whose target is the neighbour and that carries a target link-layer option, or any
//! Neighbor Solicitation *from* the neighbour that carries a source link-layer option; in
//! both cases only with hop limit 255 and a valid ICMPv6 checksum (RFC 4861 §7.1). These
//! frames are always `Pass`: the kernel keeps its own neighbour cache and answers NS for
//! its addresses (VIPs included: they are local addresses on the director).
//!
//! Errors, first match wins (after `classify_v6`'s extension-header walk):
//! 1. Neither to a VIP nor from a NAT real server's address: `Pass` (the kernel's: errors
//!    about the director's own traffic, echo, NDP, MLD, router advertisements).
//! 2. A fragment: `Drop(Fragment)` to a VIP, `Pass` otherwise.
//! 3. ICMPv6 header cut short: `Drop(Truncated)`. Not Destination Unreachable, Packet Too
//!    Big or Time Exceeded (the three IPVS relays; echo, parameter problem and the
//!    informational messages): `Pass` — echo to a VIP is answered by the kernel.
//! 4. ICMPv6 checksum wrong: `Drop(BadChecksum)`.
//! 5. The quote must hold an IPv6 fixed header and 8 bytes of TCP/UDP directly after it:
//!    less, or a version ≠ 6: `Drop(IcmpMalformed)`; a quote whose next header is not TCP
//!    or UDP (extension headers, ICMPv6): `Drop(IcmpUnsupported)`.
//! 6. To a VIP ("inbound"): the quote is `VIP:vport → CIP:cport`, its reverse names the
//!    connection (`find_inbound`). None: `Drop(IcmpNoConnection)`. Else to the real server
//!    as a client packet would go: NAT66 rewrites the outer destination VIP → RIP and the
//!    quoted source VIP:vport → RIP:rport; DR rewrites the MACs; TUN encapsulates it like
//!    any packet of the connection (`tunnel.rs`).
//! 7. From a NAT real server ("outbound"): the quote is `CIP:cport → RIP:rport`, its
//!    reverse is the connection's reply key. None, or not NAT: `Drop(IcmpNoConnection)`.
//!    Else outer source RIP → VIP and quoted destination RIP:rport → VIP:vport, to the
//!    client's MAC out of its interface.
//!
//! After a NAT66 translation the ICMPv6 checksum is computed from scratch (its
//! pseudo-header has the new address); the quoted L4 checksum is left as IPVS leaves it.
//! Counters as for IPv4 (`icmp.rs`); an error never creates a connection or changes its
//! state. Errors about IPv6-in-IP tunnel packets sent by lvsd (a router between the
//! director and a TUN real server reporting to the DIP) are left to the kernel: not
//! relayed yet (the IPv4 IPIP case is, `icmp.rs`).
//!
//! Invariants: no allocation, no panic on any input (every access is checked).

use std::net::{IpAddr, Ipv6Addr};
use std::time::Instant;

use lvs_proto::{Forwarding, Protocol};

use super::{Dataplane, DropReason, RxFrame, Verdict, copy_out, rewrite, tunnel};
use crate::conn::table::FlowKey;
use crate::wire::ethernet::{self, EtherType, EthernetFrame, MacAddr};
use crate::wire::icmpv6::{self, Icmpv6Packet, NdpRepr, msg};
use crate::wire::ipv4::IpProtocol;
use crate::wire::ipv6::{self, Ipv6Packet, Ipv6Repr, UpperLayer, next_header};

/// Hop limit of NDP messages (RFC 4861: 255, and receivers check it).
pub const NDP_HOP_LIMIT: u8 = 255;

/// Which way a NAT66 translation of an error goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    /// Client side → real server: outer dst and quoted src become the RIP, quoted sport
    /// the real port.
    In,
    /// Real server → client: outer src and quoted dst become the VIP, quoted dport the
    /// virtual port.
    Out,
}

/// Writes a Neighbor Solicitation for `target` from `source` (our address on the link,
/// MAC `mac`) into `out`, Ethernet header on; returns the frame length.
pub fn emit_solicit(
    out: &mut [u8],
    mac: MacAddr,
    source: Ipv6Addr,
    target: Ipv6Addr,
) -> Option<usize> {
    let group = icmpv6::solicited_node(target);
    let ns = NdpRepr::NeighborSolicit {
        target,
        source_lladdr: Some(mac),
    };
    let eth = ethernet::HEADER_LEN;
    let ip_at = eth + ipv6::HEADER_LEN;
    let len = ip_at + ns.len();
    let buf = out.get_mut(..len)?;
    let mut e = EthernetFrame::new_unchecked(&mut buf[..eth]);
    e.set_src_addr(mac);
    e.set_dst_addr(icmpv6::multicast_mac(group));
    e.set_ethertype(EtherType::IPV6);
    let repr = Ipv6Repr {
        src_addr: source,
        dst_addr: group,
        next_header: next_header::ICMPV6,
        payload_len: ns.len(),
        hop_limit: NDP_HOP_LIMIT,
    };
    repr.emit(&mut Ipv6Packet::new_unchecked(&mut buf[eth..ip_at]));
    ns.emit(source, group, &mut buf[ip_at..]);
    Some(len)
}

/// `ip_vs_nat_icmp_v6`: rewrites the outer and the quoted header of the ICMPv6 error in
/// `frame` (Ethernet on; the ICMPv6 message `icmp_at` bytes into the IPv6 packet) for
/// `way` and recomputes the ICMPv6 checksum. `None`: not the checked error it should be.
fn nat_icmp6(
    frame: &mut [u8],
    icmp_at: usize,
    way: Way,
    (addr, port): (Ipv6Addr, u16),
) -> Option<()> {
    let ip_buf = frame.get_mut(ethernet::HEADER_LEN..)?;
    let (outer_at, quoted_at, port_at) = match way {
        Way::In => (24, 8, 0),
        Way::Out => (8, 24, 2),
    };
    ip_buf
        .get_mut(outer_at..outer_at + 16)?
        .copy_from_slice(&addr.octets());
    let (src, dst) = {
        let p = Ipv6Packet::new_checked(&*ip_buf).ok()?;
        (p.src_addr(), p.dst_addr())
    };
    let end = ipv6::HEADER_LEN + usize::from(Ipv6Packet::new_unchecked(&*ip_buf).payload_len());
    let message = ip_buf.get_mut(icmp_at..end)?;
    let quote = message.get_mut(icmpv6::HEADER_LEN..)?;
    quote
        .get_mut(quoted_at..quoted_at + 16)?
        .copy_from_slice(&addr.octets());
    let at = ipv6::HEADER_LEN + port_at;
    quote
        .get_mut(at..at + 2)?
        .copy_from_slice(&port.to_be_bytes());
    Icmpv6Packet::new_checked(message)
        .ok()?
        .fill_checksum(src, dst);
    Some(())
}

/// The quoted flow of an error: `(protocol, src, sport, dst, dport)`.
fn quoted_flow(
    message: &Icmpv6Packet<&[u8]>,
) -> Result<(Protocol, Ipv6Addr, u16, Ipv6Addr, u16), DropReason> {
    let Ok(q) = message.invoking_header() else {
        return Err(DropReason::IcmpMalformed);
    };
    let ports = message
        .body()
        .get(ipv6::HEADER_LEN..ipv6::HEADER_LEN + 8)
        .ok_or(DropReason::IcmpMalformed)?;
    let protocol = match IpProtocol(q.next_header) {
        IpProtocol::TCP => Protocol::Tcp,
        IpProtocol::UDP => Protocol::Udp,
        _ => return Err(DropReason::IcmpUnsupported),
    };
    let sport = u16::from_be_bytes([ports[0], ports[1]]);
    let dport = u16::from_be_bytes([ports[2], ports[3]]);
    Ok((protocol, q.src_addr, sport, q.dst_addr, dport))
}

impl Dataplane {
    /// Learns a tracked IPv6 neighbour's MAC from an NDP message (module doc).
    pub(super) fn learn_ndp(&mut self, now: Instant, ifindex: u32, ip: &Ipv6Packet<&[u8]>) {
        if ip.hop_limit() != NDP_HOP_LIMIT || self.neighbours.is_empty() {
            return;
        }
        let Ok(message) = Icmpv6Packet::new_checked(ip.payload()) else {
            return;
        };
        if !matches!(
            message.msg_type(),
            msg::NEIGHBOR_SOLICIT | msg::NEIGHBOR_ADVERT
        ) || !message.verify_checksum(ip.src_addr(), ip.dst_addr())
        {
            return;
        }
        let (addr, mac) = match NdpRepr::parse(&message) {
            Ok(NdpRepr::NeighborAdvert {
                target,
                target_lladdr: Some(mac),
                ..
            }) => (target, mac),
            Ok(NdpRepr::NeighborSolicit {
                source_lladdr: Some(mac),
                ..
            }) => (ip.src_addr(), mac),
            _ => return,
        };
        if ethernet::is_unicast(&mac) {
            self.learn_mac(now, ifindex, IpAddr::V6(addr), mac);
        }
    }

    /// An ICMPv6 message to a VIP or from a real server (module doc); `upper` is where the
    /// extension-header walk ended.
    pub(super) fn icmp6(
        &mut self,
        now: Instant,
        rx: RxFrame<'_>,
        ip: &Ipv6Packet<&[u8]>,
        upper: UpperLayer,
        out: &mut [u8],
    ) -> Verdict {
        use DropReason as R;
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let to_vip = self.is_vip_addr(IpAddr::V6(dst));
        let from_rip =
            !to_vip
                && self.dests.iter().flatten().any(|d| {
                    d.spec.forwarding == Forwarding::Nat && d.spec.addr == IpAddr::V6(src)
                })
                && !self.is_local(IpAddr::V6(dst));
        if !to_vip && !from_rip {
            return Verdict::Pass;
        }
        if upper.fragment.is_some() {
            return if to_vip {
                Verdict::Drop(R::Fragment)
            } else {
                Verdict::Pass
            };
        }
        let Some(bytes) = ip.packet().get(upper.offset..) else {
            return Verdict::Drop(R::Truncated);
        };
        let Ok(message) = Icmpv6Packet::new_checked(bytes) else {
            return Verdict::Drop(R::Truncated);
        };
        if !matches!(
            message.msg_type(),
            msg::DST_UNREACHABLE | msg::PACKET_TOO_BIG | msg::TIME_EXCEEDED
        ) {
            return Verdict::Pass;
        }
        if !message.verify_checksum(src, dst) {
            return Verdict::Drop(R::BadChecksum);
        }
        let (protocol, qsrc, qsport, qdst, qdport) = match quoted_flow(&message) {
            Ok(f) => f,
            Err(reason) => return Verdict::Drop(reason),
        };
        // The quote reversed: inbound, the client's direction CIP:cport -> VIP:vport;
        // outbound, the reply direction RIP:rport -> CIP:cport.
        let key = FlowKey {
            protocol,
            src: qdst,
            src_port: qdport,
            dst: qsrc,
            dst_port: qsport,
        };
        let ip_len = ipv6::HEADER_LEN + usize::from(ip.payload_len());
        if to_vip {
            self.icmp6_in(now, rx, &key, ip_len, upper.offset, out)
        } else {
            self.icmp6_out(rx, &key, ip_len, upper.offset, out)
        }
    }

    /// An error about a packet sent from the VIP: to the connection's real server.
    fn icmp6_in(
        &mut self,
        now: Instant,
        rx: RxFrame<'_>,
        key: &FlowKey<Ipv6Addr>,
        ip_len: usize,
        icmp_at: usize,
        out: &mut [u8],
    ) -> Verdict {
        use DropReason as R;
        let conns = &self.conns.v6;
        let Some(conn) = conns.find_inbound(key).and_then(|id| conns.get(id)) else {
            return Verdict::Drop(R::IcmpNoConnection);
        };
        let (sid, did, forwarding, real, protocol) = (
            conn.service(),
            conn.dest(),
            conn.forwarding(),
            conn.real(),
            conn.protocol(),
        );
        self.count_bytes(sid, did, ip_len, true);
        let Some(Some(dest)) = self.dests.get(did as usize) else {
            return Verdict::Drop(R::NoDestination);
        };
        let ifindex = dest.spec.ifindex;
        let (dip, rip) = (dest.spec.source, dest.spec.addr);
        let Some(iface) = self.interface(ifindex) else {
            return Verdict::Drop(R::NoInterface);
        };
        let (iface_mac, mtu) = (iface.mac, iface.mtu);
        let Some(mac) = self.neighbours.get(dest.neighbour).and_then(|n| n.mac) else {
            return Verdict::Drop(R::NeighbourUnresolved);
        };
        if forwarding == Forwarding::Tun {
            let path = tunnel::Path {
                ifindex,
                src_mac: iface_mac,
                dst_mac: mac,
                mtu,
                dip,
                rip,
            };
            let inbound = tunnel::Inbound {
                protocol,
                ip_len,
                src_mac: rx_src_mac(rx),
                client: IpAddr::V6(key.src),
                vip: IpAddr::V6(key.dst),
            };
            return self.tunnel_out(now, rx, &inbound, path, out);
        }
        let len = match copy_out(rx, ip_len, mtu, out) {
            Ok(len) => len,
            Err(v) => return v,
        };
        let frame = &mut out[..len];
        rewrite::macs(frame, iface_mac, mac);
        if forwarding == Forwarding::Nat && nat_icmp6(frame, icmp_at, Way::In, real).is_none() {
            return Verdict::Drop(R::IcmpMalformed);
        }
        Verdict::Transmit { ifindex, len }
    }

    /// A NAT real server's (or its path's) error about a packet the director forwarded to
    /// it: to the client, translated.
    fn icmp6_out(
        &mut self,
        rx: RxFrame<'_>,
        key: &FlowKey<Ipv6Addr>,
        ip_len: usize,
        icmp_at: usize,
        out: &mut [u8],
    ) -> Verdict {
        use DropReason as R;
        let conns = &self.conns.v6;
        let Some(conn) = conns.find_reply(key).and_then(|id| conns.get(id)) else {
            return Verdict::Drop(R::IcmpNoConnection);
        };
        if conn.forwarding() != Forwarding::Nat {
            return Verdict::Drop(R::IcmpNoConnection);
        }
        let (sid, did, virt) = (conn.service(), conn.dest(), conn.virt());
        let (client_mac, ifindex) = (conn.client_mac(), conn.in_ifindex());
        self.count_bytes(sid, did, ip_len, false);
        let Some(iface) = self.interface(ifindex) else {
            return Verdict::Drop(R::NoInterface);
        };
        let (iface_mac, mtu) = (iface.mac, iface.mtu);
        let len = match copy_out(rx, ip_len, mtu, out) {
            Ok(len) => len,
            Err(v) => return v,
        };
        let frame = &mut out[..len];
        rewrite::macs(frame, iface_mac, client_mac);
        if nat_icmp6(frame, icmp_at, Way::Out, virt).is_none() {
            return Verdict::Drop(R::IcmpMalformed);
        }
        Verdict::Transmit { ifindex, len }
    }
}

/// The source MAC of a received frame (zero if it has no Ethernet header, which `classify`
/// has already ruled out).
pub(super) fn rx_src_mac(rx: RxFrame<'_>) -> MacAddr {
    EthernetFrame::new_checked(rx.data).map_or([0; 6], |e| e.src_addr())
}
