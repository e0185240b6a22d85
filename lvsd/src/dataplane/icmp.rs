//! ICMPv4 for the connections lvsd forwards (IPVS `ip_vs_in_icmp`, `ip_vs_out_icmp`,
//! `ip_vs_nat_icmp`, `ip_vs_icmp_xmit`).
//!
//! Which ICMP packets are ours (`classify` hands every IPv4 ICMP packet here):
//! - to a VIP address ("inbound": a router on the client's path reports on a packet sent
//!   from the VIP, i.e. by lvsd for NAT or by a DR/TUN real server);
//! - from a real server's address to an address that is not one of the director's own
//!   ("outbound", NAT: the real server or the path behind it reports on a packet the
//!   director forwarded to it);
//! - to one of the director's own addresses (not a VIP) and quoting an IPIP packet lvsd
//!   sent (from a DIP to a TUN real server): "Tunnel errors" below;
//! - anything else is `Pass` (the kernel's: errors about the director's own traffic, health
//!   checks' port unreachables to the DIP, echo to the director's addresses).
//!
//! Policy, first match wins (module doc of `mod.rs` for the steps before):
//! 1. IPv4 checksum wrong: `Drop(BadChecksum)`. A fragment: `Drop(Fragment)` to a VIP,
//!    `Pass` otherwise (lvsd does not reassemble; IPVS relies on the kernel's defrag).
//! 2. ICMP header cut short: `Drop(Truncated)`.
//! 3. Not destination unreachable, source quench or time exceeded (echo, parameter
//!    problem, redirect, ...): `Pass`, as IPVS does — echo to a VIP is answered by the
//!    kernel, which holds the VIP as a local address.
//! 4. ICMP checksum wrong: `Drop(BadChecksum)` (IPVS drops it too).
//! 5. Quoted datagram not an IPv4 header plus 8 bytes: `Drop(IcmpMalformed)`. Quoting
//!    ICMP (an error about an error), another protocol than TCP/UDP, or a non-first
//!    fragment: `Drop(IcmpUnsupported)`.
//! 6. Inbound: the quote is `VIP:vport → CIP:cport`; the connection is found as if the
//!    client had sent it (`find_inbound` of the reversed tuple). None: `Drop(IcmpNoConnection)`.
//!    Else the error goes to the connection's real server like a client packet: NAT
//!    translates outer destination VIP → RIP and the quoted source VIP:vport → RIP:rport;
//!    DR rewrites the MACs only; TUN encapsulates it in IPIP (too big for the tunnel MTU:
//!    `Drop(TooBig)`; errors are at most 576 bytes, so this needs an MTU below 596), or,
//!    for an IPv6 real server, in IPv6 as the connection's packets go (`tunnel.rs`).
//! 7. Outbound (NAT only): the quote is `CIP:cport → RIP:rport`; the connection is found
//!    as a reply (`find_reply` of the reversed tuple). None: `Drop(IcmpNoConnection)`.
//!    Else outer source RIP → VIP and quoted destination RIP:rport → VIP:vport, sent to
//!    the client's MAC out of its interface, as a reply.
//!
//! Tunnel errors (`ip_vs_in_icmp`'s IPIP case): a router between the director and a TUN
//! real server reports on the IPIP packet, to the DIP. Anything but a valid error of the
//! three types, quoting an unfragmented IPIP packet from a DIP to a TUN real server, is
//! `Pass`. Then the quoted inner packet must be a client's packet of a TUN connection to
//! that real server (cut short or malformed: `Drop(IcmpMalformed)`; not TCP/UDP or a
//! non-first fragment: `Drop(IcmpUnsupported)`; no such connection:
//! `Drop(IcmpNoConnection)`). The client gets a new error from the VIP, same type and
//! code, quoting its packet (at most 576 bytes in all), out of the interface and to the MAC
//! its packets come from, as [`Verdict::TransmitPlain`]. For "fragmentation needed" the MTU
//! is min(reported, egress MTU) − 20 (reported 0: the egress MTU − 20), and a client packet
//! without DF gets nothing (`Drop(IcmpNotRelayed)`). These errors share the core's ICMP
//! budget (`tunnel.rs`); over it: `Drop(IcmpRateLimited)`.
//!
//! Checksums after a NAT translation: the outer IPv4 header incrementally, the quoted IPv4
//! header and the ICMP checksum from scratch (as `ip_vs_nat_icmp` does). The quoted L4
//! checksum is left as it was, as IPVS leaves it: it covers the whole original datagram,
//! of which the quote holds only a part, so no receiver can verify it.
//!
//! Counters (as IPVS): an inbound error counts as an incoming packet of the connection's
//! service and real server (`ip_vs_in_stats`), an outbound one as an outgoing packet
//! (`ip_vs_out_stats`). An error never creates a connection and never changes its state or
//! timer; a "fragmentation needed" is relayed, never acted on by lvsd.
//!
//! Invariants: no allocation, no panic on any input (every access is checked), and the
//! verdict follows `process`'s accounting rules like any other packet.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use lvs_proto::{Forwarding, Protocol};

use super::family::Family;
use super::icmp6::{ADDR_UNREACHABLE, ClientError};
use super::tunnel::{self, OUTER_TTL};
use super::{Dataplane, DropReason, RxFrame, Verdict, copy_out, rewrite};
use crate::conn::table::FlowKey;
use crate::wire::Error as WireError;
use crate::wire::checksum;
use crate::wire::ethernet::{self, MacAddr};
use crate::wire::icmp::{self, IcmpPacket, Quote};
use crate::wire::ipip::{self, Outer};
use crate::wire::ipv4::{IpProtocol, Ipv4Packet};

/// Which way a NAT translation of an error goes (both families).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Way {
    /// Client side → real server: outer dst and quoted src become `addr`, quoted sport `port`.
    In,
    /// Real server → client: outer src and quoted dst become `addr`, quoted dport `port`.
    Out,
}

impl Dataplane {
    /// Handles an IPv4 ICMP packet (module doc). `ip` is the checked IPv4 view of `rx`.
    pub(super) fn icmp(
        &mut self,
        now: Instant,
        rx: RxFrame<'_>,
        ip: &Ipv4Packet<&[u8]>,
        out: &mut [u8],
    ) -> Verdict {
        use DropReason as R;
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let to_vip = self.is_vip_addr(IpAddr::V4(dst));
        let to_us = !to_vip && self.is_local(IpAddr::V4(dst));
        if to_us {
            return self.icmp_to_dip(now, ip, out).unwrap_or(Verdict::Pass);
        }
        // A NAT real server's address (DR and TUN servers answer from the VIP; their own
        // errors are routed by the kernel). A scan, but only ICMP not to a VIP or to us.
        let from_rip = !to_vip
            && self.is_rip_addr(IpAddr::V4(src))
            && self
                .dests
                .iter()
                .flatten()
                .any(|d| d.spec.forwarding == Forwarding::Nat && d.spec.addr == src);
        if !to_vip && !from_rip {
            return Verdict::Pass;
        }
        if !ip.verify_checksum() {
            return Verdict::Drop(R::BadChecksum);
        }
        if ip.is_fragment() {
            return if to_vip {
                Verdict::Drop(R::Fragment)
            } else {
                Verdict::Pass
            };
        }
        let Ok(msg) = IcmpPacket::new_checked(ip.payload()) else {
            return Verdict::Drop(R::Truncated);
        };
        if !icmp::is_relayed_error(msg.msg_type()) {
            return Verdict::Pass;
        }
        if !msg.verify_checksum() {
            return Verdict::Drop(R::BadChecksum);
        }
        let quote = match Quote::parse(msg.payload()) {
            Ok(q) => q,
            Err(WireError::Truncated | WireError::Malformed) => {
                return Verdict::Drop(R::IcmpMalformed);
            }
        };
        let protocol = match quote.protocol {
            IpProtocol::TCP => Protocol::Tcp,
            IpProtocol::UDP => Protocol::Udp,
            _ => return Verdict::Drop(R::IcmpUnsupported),
        };
        if quote.frag_offset != 0 {
            return Verdict::Drop(R::IcmpUnsupported);
        }
        // The quote reversed: inbound, the client's direction CIP:cport -> VIP:vport;
        // outbound, the reply direction RIP:rport -> CIP:cport.
        let key = FlowKey {
            protocol,
            src: quote.dst,
            src_port: quote.dst_port,
            dst: quote.src,
            dst_port: quote.src_port,
        };
        let ip_len = usize::from(ip.total_len());
        let icmp_at = ip.header_len();
        if to_vip {
            self.icmp_in(now, rx, &key, ip_len, icmp_at, out)
        } else {
            self.icmp_out(rx, &key, ip_len, icmp_at, out)
        }
    }

    /// An error about a packet sent from the VIP: to the connection's real server (either
    /// family; the ICMP message starts `icmp_at` bytes into the IP packet).
    pub(super) fn icmp_in<A: Family>(
        &mut self,
        now: Instant,
        rx: RxFrame<'_>,
        key: &FlowKey<A>,
        ip_len: usize,
        icmp_at: usize,
        out: &mut [u8],
    ) -> Verdict {
        use DropReason as R;
        let conns = A::table(&self.conns);
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
        let (ifindex, dip, rip) = (dest.spec.ifindex, dest.spec.source, dest.spec.addr);
        let Some(iface) = self.interface(ifindex) else {
            return Verdict::Drop(R::NoInterface);
        };
        let (iface_mac, mtu) = (iface.mac, iface.mtu);
        let Some(mac) = self.neighbours.get(dest.neighbour).and_then(|n| n.mac) else {
            return Verdict::Drop(R::NeighbourUnresolved);
        };
        if forwarding == Forwarding::Tun {
            if let (false, IpAddr::V4(dip), IpAddr::V4(rip)) = (A::V6, dip, rip) {
                return self.icmp_tunnel(
                    rx,
                    ip_len,
                    (dip, rip),
                    (iface_mac, mac),
                    ifindex,
                    mtu,
                    out,
                );
            }
            // Any other family pair: encapsulated like the connection's packets
            // (`tunnel.rs`).
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
                src_mac: super::icmp6::rx_src_mac(rx),
                client: key.src.into(),
                vip: key.dst.into(),
            };
            return self.tunnel_out(now, rx, &inbound, path, out);
        }
        let len = match copy_out(rx, ip_len, mtu, out) {
            Ok(len) => len,
            Err(v) => return v,
        };
        let frame = &mut out[..len];
        rewrite::macs(frame, iface_mac, mac);
        if forwarding == Forwarding::Nat && A::nat_icmp(frame, icmp_at, Way::In, real).is_none() {
            return Verdict::Drop(R::IcmpMalformed);
        }
        Verdict::Transmit { ifindex, len }
    }

    /// A NAT real server's (or its path's) error about a packet the director forwarded to
    /// it: to the client, translated (either family).
    pub(super) fn icmp_out<A: Family>(
        &mut self,
        rx: RxFrame<'_>,
        key: &FlowKey<A>,
        ip_len: usize,
        icmp_at: usize,
        out: &mut [u8],
    ) -> Verdict {
        use DropReason as R;
        // `key` is the reversed quote: the reply direction RIP:rport -> CIP:cport.
        let conns = A::table(&self.conns);
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
        if A::nat_icmp(frame, icmp_at, Way::Out, virt).is_none() {
            return Verdict::Drop(R::IcmpMalformed);
        }
        Verdict::Transmit { ifindex, len }
    }

    /// An ICMP packet to one of the director's own addresses: `Some` only for an error
    /// about a tunnelled packet (module doc, "Tunnel errors"); `None` = the kernel's.
    fn icmp_to_dip(
        &mut self,
        now: Instant,
        ip: &Ipv4Packet<&[u8]>,
        out: &mut [u8],
    ) -> Option<Verdict> {
        use DropReason as R;
        if !ip.verify_checksum() || ip.is_fragment() {
            return None;
        }
        let msg = IcmpPacket::new_checked(ip.payload()).ok()?;
        if !icmp::is_relayed_error(msg.msg_type()) || !msg.verify_checksum() {
            return None;
        }
        let outer = Quote::parse(msg.payload()).ok()?;
        if outer.frag_offset != 0 {
            return None;
        }
        if outer.protocol == IpProtocol::IPV6 {
            // IPv6 in IPv4: the client gets an ICMPv6 error (`icmp6.rs`).
            let (msg_type, code) = (msg.msg_type(), msg.code());
            let error = match (msg_type, code) {
                (icmp::DEST_UNREACHABLE, icmp::FRAG_NEEDED) => ClientError::TooBig {
                    reported: u32::from(msg.next_hop_mtu()),
                },
                (icmp::DEST_UNREACHABLE, _) => ClientError::Unreachable {
                    code: ADDR_UNREACHABLE,
                },
                (icmp::TIME_EXCEEDED, code) => ClientError::TimeExceeded { code },
                _ => return None,
            };
            let inner = msg.payload().get(outer.header_len..)?;
            let ends = (IpAddr::V4(outer.src), IpAddr::V4(outer.dst));
            return self.relay_tunnel_error6(now, ends, ipip::OVERHEAD, inner, error, out);
        }
        if outer.protocol != IpProtocol::IPIP {
            return None;
        }
        // Ours only if the IPIP packet was one of lvsd's: from a DIP to a TUN real server
        // (a scan of the destinations: errors are rare, and the kernel's own tunnels, if
        // any, keep theirs).
        let ours = self.dests.iter().flatten().any(|d| {
            d.spec.forwarding == Forwarding::Tun
                && d.spec.addr == outer.dst
                && d.spec.source == outer.src
        });
        if !ours {
            return None;
        }
        let Some(inner_bytes) = msg.payload().get(outer.header_len..) else {
            return Some(Verdict::Drop(R::IcmpMalformed));
        };
        let inner = match Quote::parse(inner_bytes) {
            Ok(q) => q,
            Err(_) => return Some(Verdict::Drop(R::IcmpMalformed)),
        };
        let protocol = match inner.protocol {
            IpProtocol::TCP => Protocol::Tcp,
            IpProtocol::UDP => Protocol::Udp,
            _ => return Some(Verdict::Drop(R::IcmpUnsupported)),
        };
        if inner.frag_offset != 0 {
            return Some(Verdict::Drop(R::IcmpUnsupported));
        }
        let key = FlowKey {
            protocol,
            src: inner.src,
            src_port: inner.src_port,
            dst: inner.dst,
            dst_port: inner.dst_port,
        };
        let conns = &self.conns.v4;
        let Some(conn) = conns.find_inbound(&key).and_then(|id| conns.get(id)) else {
            return Some(Verdict::Drop(R::IcmpNoConnection));
        };
        let (sid, did, real) = (conn.service(), conn.dest(), conn.real());
        let (client_mac, ifindex) = (conn.client_mac(), conn.in_ifindex());
        let dest = self.dests.get(did as usize).and_then(Option::as_ref);
        let tunnel_mtu = match dest {
            Some(d)
                if conn.forwarding() == Forwarding::Tun
                    && real.0 == outer.dst
                    && d.spec.source == outer.src =>
            {
                self.interface(d.spec.ifindex).map_or(0, |i| i.mtu)
            }
            _ => return Some(Verdict::Drop(R::IcmpNoConnection)),
        };
        let (msg_type, code) = (msg.msg_type(), msg.code());
        let mut rest = msg.rest();
        if msg_type == icmp::DEST_UNREACHABLE && code == icmp::FRAG_NEEDED {
            // `ip_vs_in_icmp`: only for a client doing PMTU discovery; the path MTU to the
            // real server (the smaller of the reported one and our egress MTU) less the
            // outer header.
            if !inner.dont_frag {
                return Some(Verdict::Drop(R::IcmpNotRelayed));
            }
            let reported = u32::from(msg.next_hop_mtu());
            let mut mtu = match (reported, tunnel_mtu) {
                (0, m) | (m, 0) => m,
                (a, b) => a.min(b),
            };
            if mtu > (ipip::MIN_MTU + ipip::OVERHEAD) as u32 {
                mtu -= ipip::OVERHEAD as u32;
            }
            let [hi, lo] = u16::try_from(mtu).unwrap_or(u16::MAX).to_be_bytes();
            rest = [0, 0, hi, lo];
        }
        if !self.tunnel.icmp_allow(now) {
            return Some(Verdict::Drop(R::IcmpRateLimited));
        }
        let Some(iface_mac) = self.interface(ifindex).map(|i| i.mac) else {
            return Some(Verdict::Drop(R::NoInterface));
        };
        // The client's packet as the router quoted it, cut to its own length.
        let original = inner_bytes
            .get(..inner_bytes.len().min(usize::from(inner.total_len)))
            .unwrap_or(inner_bytes);
        let ident = self.tunnel.next_ident();
        let built = tunnel::frame(out, iface_mac, client_mac, |b| {
            icmp::emit_error(
                b,
                (inner.dst, inner.src, ident),
                (msg_type, code, rest),
                original,
            )
        });
        let Some(len) = built else {
            return Some(Verdict::Drop(R::TooBig));
        };
        // `ip_vs_out_stats`, as IPVS counts the relayed error.
        self.count_bytes(sid, did, len - ethernet::HEADER_LEN, false);
        Some(Verdict::TransmitPlain { ifindex, len })
    }

    /// TUN: the error, unchanged, in IPIP from the DIP to the RIP.
    #[allow(clippy::too_many_arguments)]
    fn icmp_tunnel(
        &mut self,
        rx: RxFrame<'_>,
        ip_len: usize,
        (dip, rip): (Ipv4Addr, Ipv4Addr),
        (src_mac, dst_mac): (MacAddr, MacAddr),
        ifindex: u32,
        mtu: u32,
        out: &mut [u8],
    ) -> Verdict {
        use DropReason as R;
        let eth = ethernet::HEADER_LEN;
        let Some(inner) = rx.data.get(eth..eth + ip_len) else {
            return Verdict::Drop(R::Truncated);
        };
        let Ok(ip) = Ipv4Packet::new_checked(inner) else {
            return Verdict::Drop(R::BadIpHeader);
        };
        let room = usize::try_from(mtu).unwrap_or(usize::MAX);
        if ip_len + ipip::OVERHEAD > room {
            return Verdict::Drop(R::TooBig);
        }
        let ident = self.tunnel.next_ident();
        let o = Outer::for_inner(dip, rip, OUTER_TTL, ident, &ip);
        match tunnel::frame(out, src_mac, dst_mac, |b| ipip::encapsulate(b, &o, inner)) {
            Some(len) => Verdict::TransmitPlain { ifindex, len },
            None => Verdict::Drop(R::TooBig),
        }
    }

    /// Counts an ICMP error on its connection's service and real server (in or out).
    pub(super) fn count_bytes(&mut self, sid: u32, did: u32, bytes: usize, inbound: bool) {
        let bytes = bytes as u64;
        let bump = |c: &mut lvs_proto::Counters| {
            if inbound {
                c.inpkts += 1;
                c.inbytes += bytes;
            } else {
                c.outpkts += 1;
                c.outbytes += bytes;
            }
        };
        if let Some(Some(svc)) = self.services.get_mut(sid as usize) {
            bump(&mut svc.counters);
        }
        if let Some(Some(d)) = self.dests.get_mut(did as usize) {
            bump(&mut d.counters);
        }
    }
}

/// `ip_vs_nat_icmp`: rewrites the outer and the quoted header of the ICMP error in `frame`
/// (Ethernet on) for `way` and fixes the outer IPv4, quoted IPv4 and ICMP checksums
/// (module doc). `None` if the frame is not the checked error it should be (nothing is
/// guaranteed about its contents then; the caller drops it).
pub(super) fn nat_icmp(frame: &mut [u8], way: Way, addr: Ipv4Addr, port: u16) -> Option<()> {
    let ip_buf = frame.get_mut(ethernet::HEADER_LEN..)?;
    let mut ip = Ipv4Packet::new_checked(&mut *ip_buf).ok()?;
    match way {
        Way::In => ip.rewrite_dst_addr(addr),
        Way::Out => ip.rewrite_src_addr(addr),
    }
    let msg = ip.payload_mut();
    let quoted = msg.get_mut(icmp::HEADER_LEN..)?;
    let q = Quote::parse(quoted).ok()?;
    let (addr_at, port_at) = match way {
        Way::In => (12, q.header_len),
        Way::Out => (16, q.header_len + 2),
    };
    quoted
        .get_mut(addr_at..addr_at + 4)?
        .copy_from_slice(&addr.octets());
    quoted
        .get_mut(port_at..port_at + 2)?
        .copy_from_slice(&port.to_be_bytes());
    let header = quoted.get_mut(..q.header_len)?;
    header.get_mut(10..12)?.fill(0);
    let c = !checksum::data(header);
    header.get_mut(10..12)?.copy_from_slice(&c.to_be_bytes());
    msg.get_mut(2..4)?.fill(0);
    let c = !checksum::data(msg);
    msg.get_mut(2..4)?.copy_from_slice(&c.to_be_bytes());
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The translation leaves every checksum it owns valid and writes what it should.
    #[test]
    fn nat_icmp_checksums_and_fields() {
        let frame = crate::dataplane::icmp_fixtures::port_unreachable_from_rs1();
        for (way, addr, port) in [
            (Way::Out, Ipv4Addr::new(203, 0, 113, 10), 53),
            (Way::In, Ipv4Addr::new(192, 0, 2, 99), 999),
        ] {
            let mut f = frame.clone();
            nat_icmp(&mut f, way, addr, port).unwrap();
            let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
            assert!(ip.verify_checksum());
            let msg = IcmpPacket::new_checked(ip.payload()).unwrap();
            assert!(msg.verify_checksum());
            let quoted = msg.payload();
            let inner = Ipv4Packet::new_unchecked(quoted);
            assert!(inner.verify_checksum());
            let q = Quote::parse(quoted).unwrap();
            match way {
                Way::Out => {
                    assert_eq!((ip.src_addr(), q.dst, q.dst_port), (addr, addr, port));
                }
                Way::In => {
                    assert_eq!((ip.dst_addr(), q.src, q.src_port), (addr, addr, port));
                }
            }
        }
        // Every truncation: None or Some, never a panic.
        for n in 0..frame.len() {
            let mut f = frame[..n].to_vec();
            let _ = nat_icmp(&mut f, Way::In, Ipv4Addr::LOCALHOST, 1);
        }
    }
}
