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
//! state.
//!
//! Tunnel errors, IPv6 inside (`ip_vs_in_icmp_v6`'s tunnel case; the IPv4 IPIP case is
//! `icmp.rs`): a router between the director and a TUN real server reports on a packet
//! lvsd tunnelled — ICMPv6 to a director address quoting an IPv6-in-IPv6 packet, or ICMPv4
//! quoting an IPv6-in-IPv4 one (`icmp.rs` hands those over). Anything but a valid
//! destination unreachable, packet too big / fragmentation needed or time exceeded quoting
//! a tunnel packet from a DIP to a TUN real server is the kernel's (`Pass`). The quoted
//! inner packet must be a client's TCP/UDP packet of a TUN connection to that real server
//! (cut short or malformed: `Drop(IcmpMalformed)`; another protocol, extension headers:
//! `Drop(IcmpUnsupported)`; no such connection: `Drop(IcmpNoConnection)`). The client gets
//! an ICMPv6 error from the VIP quoting its packet (within 1280 bytes), out of the
//! interface and to the MAC its packets come from, as [`Verdict::TransmitPlain`]: Packet
//! Too Big with MTU = min(reported, egress MTU) − the outer header (40 or 20), at least
//! 1280 (below that `tunnel.rs` fragments the outer packet); the other errors keep their
//! type (an ICMPv4 "unreachable" becomes "address unreachable", time exceeded stays). They
//! share the core's ICMP budget; over it: `Drop(IcmpRateLimited)`. Errors about
//! IPv4-in-IPv6 packets are not relayed (the kernel's).
//!
//! Invariants: no allocation, no panic on any input (every access is checked).

use std::net::{IpAddr, Ipv6Addr};
use std::time::Instant;

use lvs_proto::{Forwarding, Protocol};

use super::icmp::Way;
use super::{Dataplane, DropReason, RxFrame, Verdict, tunnel};
use crate::conn::table::FlowKey;
use crate::wire::ethernet::{self, EtherType, EthernetFrame, MacAddr};
use crate::wire::icmpv6::{self, Icmpv6Packet, NdpRepr, msg};
use crate::wire::ipv4::IpProtocol;
use crate::wire::ipv6::{self, Ipv6Packet, Ipv6Repr, UpperLayer, next_header};

/// Hop limit of NDP messages (RFC 4861: 255, and receivers check it).
pub const NDP_HOP_LIMIT: u8 = 255;

/// ICMPv6 Destination Unreachable code 3, "address unreachable" (RFC 4443 §3.1): what an
/// ICMPv4 "unreachable" about an IPv6-in-IPv4 packet becomes for the client.
pub(super) const ADDR_UNREACHABLE: u8 = 3;

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
pub(super) fn nat_icmp6(
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

/// The ICMPv6 error a tunnel error becomes for the client (module doc, "Tunnel errors").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ClientError {
    /// Packet Too Big; the MTU the router reported (0: none) for outer packets.
    TooBig { reported: u32 },
    /// Destination Unreachable with this code.
    Unreachable { code: u8 },
    /// Time Exceeded with this code.
    TimeExceeded { code: u8 },
}

impl Dataplane {
    /// An ICMPv6 message to one of the director's own addresses: `Some` only for an error
    /// about an IPv6-in-IPv6 packet lvsd tunnelled (module doc); `None` = the kernel's.
    pub(super) fn icmp6_to_dip(
        &mut self,
        now: Instant,
        ip: &Ipv6Packet<&[u8]>,
        out: &mut [u8],
    ) -> Option<Verdict> {
        let message = Icmpv6Packet::new_checked(ip.payload()).ok()?;
        let error = match message.msg_type() {
            msg::PACKET_TOO_BIG => ClientError::TooBig {
                reported: message.header_data(),
            },
            msg::DST_UNREACHABLE => ClientError::Unreachable {
                code: message.code(),
            },
            msg::TIME_EXCEEDED => ClientError::TimeExceeded {
                code: message.code(),
            },
            _ => return None,
        };
        if !message.verify_checksum(ip.src_addr(), ip.dst_addr()) {
            return None;
        }
        let outer = message.invoking_header().ok()?;
        if outer.next_header != next_header::IPV6 {
            return None;
        }
        let outer_ends = (IpAddr::V6(outer.src_addr), IpAddr::V6(outer.dst_addr));
        let inner = message.body().get(ipv6::HEADER_LEN..)?;
        self.relay_tunnel_error6(now, outer_ends, ipv6::HEADER_LEN, inner, error, out)
    }

    /// Relays a router's error about a tunnel packet from `dip` to `rip` (`outer_len`
    /// bytes of outer header) whose quoted inner packet is `inner` to the client, as an
    /// ICMPv6 error (module doc). `None`: not a packet lvsd sent.
    pub(super) fn relay_tunnel_error6(
        &mut self,
        now: Instant,
        (dip, rip): (IpAddr, IpAddr),
        outer_len: usize,
        inner: &[u8],
        error: ClientError,
        out: &mut [u8],
    ) -> Option<Verdict> {
        use DropReason as R;
        // Ours only if lvsd sent it: from a DIP to a TUN real server (a scan of the
        // destinations: errors are rare).
        let ours = self.dests.iter().flatten().any(|d| {
            d.spec.forwarding == Forwarding::Tun && d.spec.addr == rip && d.spec.source == dip
        });
        if !ours {
            return None;
        }
        let fixed = inner.get(..ipv6::HEADER_LEN + 8);
        let Some(fixed) = fixed.filter(|b| b[0] >> 4 == 6) else {
            return Some(Verdict::Drop(R::IcmpMalformed));
        };
        let q = Ipv6Packet::new_unchecked(fixed);
        let protocol = match IpProtocol(q.next_header()) {
            IpProtocol::TCP => Protocol::Tcp,
            IpProtocol::UDP => Protocol::Udp,
            _ => return Some(Verdict::Drop(R::IcmpUnsupported)),
        };
        let ports = &fixed[ipv6::HEADER_LEN..];
        let key = FlowKey {
            protocol,
            src: q.src_addr(),
            src_port: u16::from_be_bytes([ports[0], ports[1]]),
            dst: q.dst_addr(),
            dst_port: u16::from_be_bytes([ports[2], ports[3]]),
        };
        let conns = &self.conns.v6;
        let Some(conn) = conns.find_inbound(&key).and_then(|id| conns.get(id)) else {
            return Some(Verdict::Drop(R::IcmpNoConnection));
        };
        let (sid, did) = (conn.service(), conn.dest());
        let (client_mac, ifindex) = (conn.client_mac(), conn.in_ifindex());
        let dest = self.dests.get(did as usize).and_then(Option::as_ref);
        let egress = match dest {
            Some(d)
                if conn.forwarding() == Forwarding::Tun
                    && d.spec.addr == rip
                    && d.spec.source == dip =>
            {
                self.interface(d.spec.ifindex).map_or(0, |i| i.mtu)
            }
            _ => return Some(Verdict::Drop(R::IcmpNoConnection)),
        };
        let (msg_type, code, data) = match error {
            ClientError::TooBig { reported } => {
                let path = match (reported, egress) {
                    (0, m) | (m, 0) => m,
                    (a, b) => a.min(b),
                };
                let mtu = path
                    .saturating_sub(u32::try_from(outer_len).unwrap_or(u32::MAX))
                    .max(ipv6::MIN_MTU as u32);
                (msg::PACKET_TOO_BIG, 0, mtu)
            }
            ClientError::Unreachable { code } => (msg::DST_UNREACHABLE, code, 0),
            ClientError::TimeExceeded { code } => (msg::TIME_EXCEEDED, code, 0),
        };
        if !self.tunnel.icmp_allow(now) {
            return Some(Verdict::Drop(R::IcmpRateLimited));
        }
        let Some(iface_mac) = self.interface(ifindex).map(|i| i.mac) else {
            return Some(Verdict::Drop(R::NoInterface));
        };
        // The client's packet as the router quoted it, cut to its own length.
        let own = ipv6::HEADER_LEN + usize::from(q.payload_len());
        let original = inner.get(..inner.len().min(own)).unwrap_or(inner);
        let (vip, client) = (key.dst, key.src);
        let built = tunnel::frame_as(out, iface_mac, client_mac, EtherType::IPV6, |b| {
            let (head, body) = b.split_at_mut_checked(ipv6::HEADER_LEN)?;
            let n = icmpv6::emit_error(msg_type, code, data, vip, client, original, body);
            if n == 0 {
                return None;
            }
            Ipv6Repr {
                src_addr: vip,
                dst_addr: client,
                next_header: next_header::ICMPV6,
                payload_len: n,
                hop_limit: tunnel::OUTER_TTL,
            }
            .emit(&mut Ipv6Packet::new_unchecked(head));
            Some(ipv6::HEADER_LEN + n)
        });
        let Some(len) = built else {
            return Some(Verdict::Drop(R::TooBig));
        };
        // `ip_vs_out_stats`, as IPVS counts the relayed error.
        self.count_bytes(sid, did, len - ethernet::HEADER_LEN, false);
        Some(Verdict::TransmitPlain { ifindex, len })
    }

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
            self.icmp_in(now, rx, &key, ip_len, upper.offset, out)
        } else {
            self.icmp_out(rx, &key, ip_len, upper.offset, out)
        }
    }
}

/// The source MAC of a received frame (zero if it has no Ethernet header, which `classify`
/// has already ruled out).
pub(super) fn rx_src_mac(rx: RxFrame<'_>) -> MacAddr {
    EthernetFrame::new_checked(rx.data).map_or([0; 6], |e| e.src_addr())
}
