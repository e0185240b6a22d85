//! TUN forwarding (IPVS `ip_vs_tunnel_xmit` / `ip_vs_tunnel_xmit_v6`): the client's
//! packet, unchanged, behind an outer header from the DIP (the director's address towards
//! the real server) to the RIP, sent to the next hop's MAC. Replies go from the real server
//! straight to the client, as in DR. Every family combination IPVS allows (a TUN real
//! server may have the other family than its service): IPv4 in IPv4 (outer protocol 4),
//! IPv6 in IPv4 (protocol 41), IPv6 in IPv6 (next header 41), IPv4 in IPv6 (next header 4).
//! The inner family is the version nibble of the client's packet; the outer family is the
//! DIP's and the RIP's (they must agree, else `Drop(NoInterface)`: no address of that
//! family towards the real server). The Ethernet type is the outer family's.
//!
//! Policy. The tunnel MTU `room` is the egress interface's MTU − the outer header (20 for
//! IPv4, 40 for IPv6). An IPv4 outer needs `room` ≥ 68 and an IPv6 outer an egress MTU ≥
//! 1280 (the IPv6 minimum link MTU), else `Drop(TooBig)`. The *PMTU limit* is the largest
//! inner packet the client is told to send: `room` for an IPv4 client packet; for an IPv6
//! one `max(room, 1280)`, since IPv6 cannot go below 1280 (RFC 2473 §7.1, RFC 4213 §3.2;
//! Linux's `ip6_tnl` and `sit` do the same: inner packets up to 1280 that exceed the tunnel
//! are encapsulated and the outer packet fragmented). IPVS itself drops everything for a
//! tunnel MTU below 1280 on an IPv6 outer, and sends Packet Too Big with an MTU below 1280
//! on an IPv4 outer, which RFC 8201 hosts ignore: a black hole avoided here.
//! - Fits `room`: one frame, [`Verdict::TransmitPlain`]. A `NEEDS_CSUM` frame's L4 checksum
//!   is completed here (the device cannot: the vnet offsets would point into the outer
//!   header, and virtio has no IP-in-IP GSO type): over the IPv4 pseudo-header, or the IPv6
//!   one for an IPv6 client packet (extension headers walked; TCP, UDP or ICMPv6).
//! - TCP GSO super-frame (IPv4 or IPv6, the latter without extension headers): cut into
//!   segments of `gso_size` payload bytes (or what fits, if unknown) with
//!   [`TcpSegmenter`], each encapsulated; the first is the verdict's frame, the others come
//!   from [`Dataplane::next_frame`]. If a `gso_size` segment would not fit `room`: an IPv4
//!   packet with DF, or an IPv6 one larger than its PMTU limit, is answered as below
//!   (PMTU); otherwise segments are cut smaller to fit. A UDP GSO super-frame is
//!   `Drop(TooBig)`.
//! - Larger than `room` and the PMTU answer applies — an IPv4 packet with DF (as
//!   `ensure_mtu_is_adequate`), or an IPv6 packet larger than its PMTU limit (IPv6 packets
//!   are never fragmented on the way, `__mtu_check_toobig_v6`): `Reject(NeedFrag)` with
//!   ICMP "fragmentation needed" (next-hop MTU = `room`) or ICMPv6 Packet Too Big (MTU =
//!   the PMTU limit), from the VIP to the client, out of the interface and to the MAC the
//!   packet came from; at most [`ICMP_BURST`] at once and [`ICMP_PER_SEC`] per second on
//!   average over both families (Linux's `icmp_msgs_burst` / `icmp_msgs_per_sec`), beyond
//!   that `Drop(NeedFrag)`. No error is sent about an ICMP/ICMPv6 packet or a later IPv6
//!   fragment (as IPVS, RFC 4443 §2.4 (e)): those are `Drop(TooBig)` — except an IPv4
//!   ICMP packet, which IPVS lets through to be fragmented, so it is fragmented as below.
//! - Larger than `room` otherwise (an IPv4 packet without DF, an IPv6 packet up to 1280
//!   on a tunnel below 1280): the outer packet is fragmented, as the kernel's stack does
//!   after IPVS (`ignore_df`): IPv4 fragments with DF clear, or IPv6 fragments with a
//!   fragment header (RFC 8200 §4.5, 32-bit identification from a per-director counter).
//!   The real server's kernel reassembles before decapsulating.
//! - Outer IPv4 header: TTL [`OUTER_TTL`], DSCP/ECN copied from the inner packet (IPv4
//!   TOS or IPv6 traffic class), DF copied from an inner IPv4 packet and clear for an
//!   inner IPv6 one (IPVS `ip_vs_prepare_tunneled_skb` sets `df = 0` for IPv6; a router
//!   behind the director fragments rather than drops, since its "fragmentation needed"
//!   could not reach an IPv6 client), an identification from a per-director counter.
//! - Outer IPv6 header: hop limit [`OUTER_TTL`], traffic class copied from the inner DSCP/
//!   ECN, flow label 0 (as IPVS, which clears it), no extension headers (no encapsulation
//!   limit option, as IPVS). The ECN bits are copied as they are, CE included (RFC 6040
//!   normal mode), as for IPv4.
//! - The inner packet is never modified except for completing a partial checksum.
//!
//! Invariants: no allocation per packet once the frame queue has grown to its largest
//! size; frames queued by one `process` call are cleared by the next; nothing here panics
//! on any input (every slice access is checked).

use std::net::IpAddr;
use std::time::Instant;

use lvs_proto::Protocol;

use super::{Dataplane, DropReason, RxFrame, Verdict};
use crate::wire::checksum;
use crate::wire::ethernet::{self, EtherType, EthernetFrame, MacAddr};
use crate::wire::gso::TcpSegmenter;
use crate::wire::icmp;
use crate::wire::icmpv6;
use crate::wire::ipip::{self, Outer, Outer6};
use crate::wire::ipv4::{IpProtocol, Ipv4Packet};
use crate::wire::ipv6::{self, Ipv6Packet};
use crate::wire::tcp::TcpPacket;
use crate::wire::udp::UdpPacket;

/// TTL (hop limit) of the outer header (IPVS copies the inner TTL; see
/// docs/ipvs-differences.md), and hop limit of the ICMPv6 errors sent here.
pub const OUTER_TTL: u8 = 64;
/// ICMP errors allowed at once.
pub const ICMP_BURST: u32 = 50;
/// ICMP errors per second, on average.
pub const ICMP_PER_SEC: u32 = 1000;

/// What the tunnel needs of the inbound packet (already counted and bound).
#[derive(Debug, Clone, Copy)]
pub(super) struct Inbound {
    pub protocol: Protocol,
    /// Length of the inner IP packet (IPv4 total length, or 40 + IPv6 payload length),
    /// from `rx.data[14..]`.
    pub ip_len: usize,
    /// Where the client's packet came from (the ICMP error goes back there).
    pub src_mac: MacAddr,
    /// The client's and the VIP's address (the inner packet's source and destination).
    pub client: IpAddr,
    pub vip: IpAddr,
}

/// Where an encapsulated packet goes.
#[derive(Debug, Clone, Copy)]
pub(super) struct Path {
    pub ifindex: u32,
    pub src_mac: MacAddr,
    pub dst_mac: MacAddr,
    pub mtu: u32,
    /// Outer source (the director's address towards the RIP) and destination; same
    /// family, which decides the outer header.
    pub dip: IpAddr,
    pub rip: IpAddr,
}

/// Frames waiting for [`Dataplane::next_frame`], the ICMP token bucket and the outer ids.
#[derive(Debug, Default)]
pub(super) struct TunnelState {
    /// Frames back to back.
    buf: Vec<u8>,
    /// `(start, len)` in `buf`.
    frames: Vec<(usize, usize)>,
    /// The next frame to hand out.
    next: usize,
    /// Their interface.
    ifindex: u32,
    /// Scratch copy of an inner packet (completed checksum before fragmenting).
    scratch: Vec<u8>,
    /// Identification of the next outer IPv4 header or ICMP error.
    ident: u16,
    /// Identification of the next outer IPv6 fragment header.
    ident6: u32,
    /// ICMP tokens (× 1000, so that a millisecond adds a whole number) and their time.
    icmp_tokens: u64,
    icmp_at: Option<Instant>,
}

impl TunnelState {
    pub(super) fn clear(&mut self) {
        self.buf.clear();
        self.frames.clear();
        self.next = 0;
    }

    pub(super) fn next_ident(&mut self) -> u16 {
        self.ident = self.ident.wrapping_add(1);
        self.ident
    }

    fn next_ident6(&mut self) -> u32 {
        self.ident6 = self.ident6.wrapping_add(1);
        self.ident6
    }

    /// Takes one ICMP token if there is one.
    pub(super) fn icmp_allow(&mut self, now: Instant) -> bool {
        let cap = u64::from(ICMP_BURST) * 1000;
        self.icmp_tokens = match self.icmp_at {
            None => cap,
            Some(at) => {
                let ms = u64::try_from(now.saturating_duration_since(at).as_millis())
                    .unwrap_or(u64::MAX);
                self.icmp_tokens
                    .saturating_add(ms.saturating_mul(u64::from(ICMP_PER_SEC)))
                    .min(cap)
            }
        };
        self.icmp_at = Some(now);
        if self.icmp_tokens >= 1000 {
            self.icmp_tokens -= 1000;
            true
        } else {
            false
        }
    }

    /// Appends a frame built by `f` into a region of `max` bytes; `f` returns its length.
    fn push(&mut self, max: usize, f: impl FnOnce(&mut [u8]) -> Option<usize>) -> Option<()> {
        let start = self.buf.len();
        self.buf.resize(start + max, 0);
        let len = self.buf.get_mut(start..).and_then(f);
        match len {
            Some(len) if len <= max => {
                self.buf.truncate(start + len);
                self.frames.push((start, len));
                Some(())
            }
            _ => {
                self.buf.truncate(start);
                None
            }
        }
    }
}

/// Writes an IPv4 frame's Ethernet header; the rest of the frame is `f`'s (returns the IP
/// length).
pub(super) fn frame(
    buf: &mut [u8],
    src: MacAddr,
    dst: MacAddr,
    f: impl FnOnce(&mut [u8]) -> Option<usize>,
) -> Option<usize> {
    frame_as(buf, src, dst, EtherType::IPV4, f)
}

/// [`frame`] with the Ethernet type `ethertype` (IPv4 or IPv6).
pub(super) fn frame_as(
    buf: &mut [u8],
    src: MacAddr,
    dst: MacAddr,
    ethertype: EtherType,
    f: impl FnOnce(&mut [u8]) -> Option<usize>,
) -> Option<usize> {
    let eth = buf.get_mut(..ethernet::HEADER_LEN)?;
    let mut e = EthernetFrame::new_unchecked(eth);
    e.set_src_addr(src);
    e.set_dst_addr(dst);
    e.set_ethertype(ethertype);
    let ip_len = f(buf.get_mut(ethernet::HEADER_LEN..)?)?;
    Some(ethernet::HEADER_LEN + ip_len)
}

/// Completes the L4 checksum of the IP packet `ip` (a `NEEDS_CSUM` partial sum): IPv4 by
/// `protocol`; IPv6 by the upper-layer header its extension-header chain ends at (TCP,
/// UDP or ICMPv6; not in a fragment).
fn complete_checksum(ip: &mut [u8], protocol: Protocol) -> Option<()> {
    if ip.first().is_some_and(|b| b >> 4 == 6) {
        return complete_checksum_v6(ip);
    }
    let p = Ipv4Packet::new_checked(&*ip).ok()?;
    let (src, dst, hl, total) = (
        p.src_addr(),
        p.dst_addr(),
        p.header_len(),
        usize::from(p.total_len()),
    );
    let l4 = ip.get_mut(hl..total)?;
    match protocol {
        Protocol::Tcp => TcpPacket::new_checked(l4).ok()?.fill_checksum(src, dst),
        Protocol::Udp => UdpPacket::new_checked(l4).ok()?.fill_checksum(src, dst),
    }
    Some(())
}

fn complete_checksum_v6(ip: &mut [u8]) -> Option<()> {
    let p = Ipv6Packet::new_checked(&*ip).ok()?;
    let upper = p.upper_layer(ipv6::MAX_EXT_HEADERS).ok()?;
    if upper.fragment.is_some() {
        return None;
    }
    let (src, dst) = (p.src_addr(), p.dst_addr());
    let end = ipv6::HEADER_LEN + usize::from(p.payload_len());
    let l4 = ip.get_mut(upper.offset..end)?;
    match upper.protocol {
        IpProtocol::TCP => {
            TcpPacket::new_checked(&*l4).ok()?;
        }
        IpProtocol::UDP => {
            UdpPacket::new_checked(&*l4).ok()?;
        }
        _ => {}
    }
    checksum::fill_l4_v6(l4, src, dst, upper.protocol.0)
}

/// The client's packet as the tunnel sees it.
#[derive(Debug, Clone, Copy)]
struct Inner<'a> {
    /// The packet, cut to its own length.
    bytes: &'a [u8],
    v6: bool,
    /// IPv4 DF (IPv6: true, nothing fragments it on the way).
    df: bool,
    dscp_ecn: u8,
    /// An error about it must not be sent (ICMP/ICMPv6, a later IPv6 fragment).
    quiet: bool,
}

impl<'a> Inner<'a> {
    fn parse(bytes: &'a [u8], p: &Inbound) -> Result<Self, DropReason> {
        let bad = DropReason::BadIpHeader;
        match bytes.first().map(|b| b >> 4) {
            Some(6) => {
                let ip = Ipv6Packet::new_checked(bytes).map_err(|_| bad)?;
                if !matches!((p.client, p.vip), (IpAddr::V6(_), IpAddr::V6(_))) {
                    return Err(bad);
                }
                let quiet = match ip.upper_layer(ipv6::MAX_EXT_HEADERS) {
                    Ok(u) => u.protocol.0 == ipv6::next_header::ICMPV6 || u.is_later_fragment(),
                    Err(_) => false,
                };
                let len = ipv6::HEADER_LEN + usize::from(ip.payload_len());
                Ok(Inner {
                    bytes: bytes.get(..len).ok_or(bad)?,
                    v6: true,
                    df: true,
                    dscp_ecn: ip.traffic_class(),
                    quiet,
                })
            }
            Some(4) => {
                let ip = Ipv4Packet::new_checked(bytes).map_err(|_| bad)?;
                if !matches!((p.client, p.vip), (IpAddr::V4(_), IpAddr::V4(_))) {
                    return Err(bad);
                }
                let total = usize::from(ip.total_len());
                Ok(Inner {
                    bytes: bytes.get(..total).ok_or(bad)?,
                    v6: false,
                    df: ip.dont_frag(),
                    dscp_ecn: ip.dscp_ecn(),
                    quiet: ip.protocol() == IpProtocol::ICMP,
                })
            }
            Some(_) => Err(bad),
            None => Err(DropReason::Truncated),
        }
    }
}

/// The outer header of one packet.
#[derive(Debug, Clone, Copy)]
enum OuterHdr {
    /// IPv4, protocol 4 or 41.
    V4(Outer, IpProtocol),
    V6(Outer6),
}

impl OuterHdr {
    fn new(path: &Path, inner: &Inner<'_>) -> Option<Self> {
        match (path.dip, path.rip) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                let protocol = if inner.v6 {
                    IpProtocol(ipip::PROTO_IPV6)
                } else {
                    IpProtocol::IPIP
                };
                let o = Outer {
                    src,
                    dst,
                    ttl: OUTER_TTL,
                    ident: 0,
                    dscp_ecn: inner.dscp_ecn,
                    dont_frag: inner.df && !inner.v6,
                };
                Some(OuterHdr::V4(o, protocol))
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => Some(OuterHdr::V6(Outer6 {
                src,
                dst,
                hop_limit: OUTER_TTL,
                traffic_class: inner.dscp_ecn,
                flow_label: 0,
            })),
            _ => None,
        }
    }

    fn len(&self) -> usize {
        match self {
            OuterHdr::V4(..) => ipip::OVERHEAD,
            OuterHdr::V6(_) => ipip::OVERHEAD6,
        }
    }

    fn ethertype(&self) -> EtherType {
        match self {
            OuterHdr::V4(..) => EtherType::IPV4,
            OuterHdr::V6(_) => EtherType::IPV6,
        }
    }

    /// With the next IPv4 identification (IPv6: unchanged).
    fn stamped(self, t: &mut TunnelState) -> Self {
        match self {
            OuterHdr::V4(o, p) => OuterHdr::V4(
                Outer {
                    ident: t.next_ident(),
                    ..o
                },
                p,
            ),
            v6 => v6,
        }
    }

    /// Writes the header into `ipb` for the `len` inner bytes already at
    /// `ipb[self.len()..]`; returns the outer packet's length.
    fn wrap(&self, ipb: &mut [u8], len: usize, inner_v6: bool) -> Option<usize> {
        match self {
            OuterHdr::V4(o, p) => o.emit_proto(ipb, *p, len, false, 0)?,
            OuterHdr::V6(o) => {
                let nh = if inner_v6 {
                    ipip::PROTO_IPV6
                } else {
                    ipip::PROTO_IPV4
                };
                o.emit(ipb, nh, len)?;
            }
        }
        self.len().checked_add(len)
    }

    fn encapsulate(&self, ipb: &mut [u8], inner: &[u8]) -> Option<usize> {
        match self {
            OuterHdr::V4(o, p) => ipip::encapsulate_proto(ipb, o, *p, inner),
            OuterHdr::V6(o) => ipip::encapsulate6(ipb, o, inner),
        }
    }

    /// Outer fragments of `inner` at the egress MTU `mtu`.
    fn fragment_count(&self, inner_len: usize, mtu: usize) -> Option<usize> {
        match self {
            OuterHdr::V4(..) => ipip::fragment_count(inner_len, mtu),
            OuterHdr::V6(_) => ipip::fragment6_count(inner_len, mtu),
        }
    }

    fn emit_fragment(
        &self,
        ipb: &mut [u8],
        ident6: u32,
        inner: &[u8],
        mtu: usize,
        index: usize,
    ) -> Option<usize> {
        match self {
            OuterHdr::V4(o, p) => ipip::emit_fragment_proto(ipb, o, *p, inner, mtu, index),
            OuterHdr::V6(o) => ipip::emit_fragment6(ipb, o, ident6, inner, mtu, index),
        }
    }
}

/// Writes an IPv6 packet `src -> dst` holding ICMPv6 Packet Too Big (MTU `mtu`) quoting
/// `invoking` (as much as fits 1280 bytes) into `buf`; returns the IP packet's length.
fn emit_packet_too_big(
    buf: &mut [u8],
    src: std::net::Ipv6Addr,
    dst: std::net::Ipv6Addr,
    mtu: u32,
    invoking: &[u8],
) -> Option<usize> {
    let room = ipv6::MIN_MTU.min(buf.len());
    let body = buf.get_mut(ipv6::HEADER_LEN..room)?;
    let n = icmpv6::emit_error(
        icmpv6::msg::PACKET_TOO_BIG,
        0,
        mtu,
        src,
        dst,
        invoking,
        body,
    );
    if n < icmpv6::HEADER_LEN {
        return None;
    }
    let mut ip = Ipv6Packet::new_unchecked(buf.get_mut(..ipv6::HEADER_LEN)?);
    ip.set_version_tc_flow(0, 0);
    ip.set_payload_len(u16::try_from(n).ok()?);
    ip.set_next_header(ipv6::next_header::ICMPV6);
    ip.set_hop_limit(OUTER_TTL);
    ip.set_src_addr(src);
    ip.set_dst_addr(dst);
    Some(ipv6::HEADER_LEN + n)
}

impl Dataplane {
    /// The next frame of the packet the last [`Dataplane::process`] call answered with
    /// [`Verdict::TransmitPlain`], written to `out`: `(ifindex, len)`, plain like the first.
    pub fn next_frame(&mut self, out: &mut [u8]) -> Option<(u32, usize)> {
        let t = &mut self.tunnel;
        let &(start, len) = t.frames.get(t.next)?;
        t.next += 1;
        let src = t.buf.get(start..start + len)?;
        out.get_mut(..len)?.copy_from_slice(src);
        Some((t.ifindex, len))
    }

    /// Encapsulates the inbound packet `p` (already counted and bound to its connection)
    /// for `path` (module doc).
    pub(super) fn tunnel_out(
        &mut self,
        now: Instant,
        rx: RxFrame<'_>,
        p: &Inbound,
        path: Path,
        out: &mut [u8],
    ) -> Verdict {
        use DropReason as R;
        let eth = ethernet::HEADER_LEN;
        let Some(bytes) = rx.data.get(eth..eth.saturating_add(p.ip_len)) else {
            return Verdict::Drop(R::Truncated);
        };
        let inner = match Inner::parse(bytes, p) {
            Ok(i) => i,
            Err(r) => return Verdict::Drop(r),
        };
        let Some(outer) = OuterHdr::new(&path, &inner) else {
            return Verdict::Drop(R::NoInterface);
        };
        let hdr = outer.len();
        let mtu = usize::try_from(path.mtu).unwrap_or(usize::MAX);
        let room = mtu.saturating_sub(hdr);
        let usable = match outer {
            OuterHdr::V4(..) => room >= ipip::MIN_MTU,
            OuterHdr::V6(_) => mtu >= ipv6::MIN_MTU,
        };
        if !usable {
            return Verdict::Drop(R::TooBig);
        }
        // The PMTU limit (module doc) and whether a packet of `len` bytes gets the PMTU
        // answer instead of being fragmented.
        let limit = if inner.v6 {
            room.max(ipv6::MIN_MTU)
        } else {
            room
        };
        let pmtu_applies = inner.v6 || (inner.df && !inner.quiet);
        let refused = |len: usize| pmtu_applies && len > limit;
        let (smac, dmac, ethertype) = (path.src_mac, path.dst_mac, outer.ethertype());
        self.tunnel.ifindex = path.ifindex;

        if rx.gso {
            if p.protocol != Protocol::Tcp {
                return Verdict::Drop(R::TooBig);
            }
            let Ok(probe) = TcpSegmenter::new(inner.bytes, 1) else {
                return Verdict::Drop(R::BadL4Header);
            };
            let headers = probe.header_len();
            let Some(fit) = room.checked_sub(headers).filter(|&m| m > 0) else {
                return Verdict::Drop(R::TooBig);
            };
            let mss = match usize::from(rx.gso_size) {
                0 => fit,
                m if m <= fit => m,
                m if refused(headers.saturating_add(m)) => {
                    return self.pmtu_error(now, rx, p, &inner, limit, out);
                }
                _ => fit,
            };
            let Ok(seg) = TcpSegmenter::new(inner.bytes, mss) else {
                return Verdict::Drop(R::BadL4Header);
            };
            // (A segment never holds more than the super-frame: bounds the queue's
            // region even with a huge MTU and an unknown `gso_size`.)
            let max = eth + hdr + headers + mss.min(inner.bytes.len());
            let mut first = None;
            for i in 0..seg.count() {
                let o = outer.stamped(&mut self.tunnel);
                let build = |buf: &mut [u8]| {
                    frame_as(buf, smac, dmac, ethertype, |ipb| {
                        let len = seg.emit(i, ipb.get_mut(hdr..)?)?;
                        o.wrap(ipb, len, inner.v6)
                    })
                };
                if i == 0 {
                    let Some(len) = build(out) else {
                        return Verdict::Drop(R::TooBig);
                    };
                    first = Some(len);
                } else if self.tunnel.push(max, build).is_none() {
                    self.tunnel.clear();
                    return Verdict::Drop(R::TooBig);
                }
            }
            return match first {
                Some(len) => Verdict::TransmitPlain {
                    ifindex: path.ifindex,
                    len,
                },
                None => Verdict::Drop(R::TooBig),
            };
        }

        if inner.bytes.len() > room {
            if refused(inner.bytes.len()) {
                if inner.quiet {
                    return Verdict::Drop(R::TooBig);
                }
                return self.pmtu_error(now, rx, p, &inner, limit, out);
            }
            // Fragment the outer packet (inner checksum completed first).
            let mut scratch = std::mem::take(&mut self.tunnel.scratch);
            scratch.clear();
            scratch.extend_from_slice(inner.bytes);
            if rx.csum_partial && complete_checksum(&mut scratch, p.protocol).is_none() {
                self.tunnel.scratch = scratch;
                return Verdict::Drop(R::BadL4Header);
            }
            let o = outer.stamped(&mut self.tunnel);
            let ident6 = match o {
                OuterHdr::V4(..) => 0,
                OuterHdr::V6(_) => self.tunnel.next_ident6(),
            };
            let n = o.fragment_count(scratch.len(), mtu).unwrap_or(0);
            let mut verdict = Verdict::Drop(R::TooBig);
            for i in 0..n {
                let build = |buf: &mut [u8]| {
                    frame_as(buf, smac, dmac, ethertype, |ipb| {
                        o.emit_fragment(ipb, ident6, &scratch, mtu, i)
                    })
                };
                if i == 0 {
                    match build(out) {
                        Some(len) => {
                            verdict = Verdict::TransmitPlain {
                                ifindex: path.ifindex,
                                len,
                            };
                        }
                        None => break,
                    }
                } else if self.tunnel.push(eth + mtu, build).is_none() {
                    self.tunnel.clear();
                    verdict = Verdict::Drop(R::TooBig);
                    break;
                }
            }
            self.tunnel.scratch = scratch;
            return verdict;
        }

        let o = outer.stamped(&mut self.tunnel);
        let Some(len) = frame_as(out, smac, dmac, ethertype, |ipb| {
            o.encapsulate(ipb, inner.bytes)
        }) else {
            return Verdict::Drop(R::TooBig);
        };
        if rx.csum_partial {
            let inner_out = out.get_mut(eth + hdr..len);
            if inner_out
                .and_then(|b| complete_checksum(b, p.protocol))
                .is_none()
            {
                return Verdict::Drop(R::BadL4Header);
            }
        }
        Verdict::TransmitPlain {
            ifindex: path.ifindex,
            len,
        }
    }

    /// The PMTU answer for the client packet `inner` (module doc): ICMP "fragmentation
    /// needed" or ICMPv6 Packet Too Big with MTU `mtu`, back to its client.
    fn pmtu_error(
        &mut self,
        now: Instant,
        rx: RxFrame<'_>,
        p: &Inbound,
        inner: &Inner<'_>,
        mtu: usize,
        out: &mut [u8],
    ) -> Verdict {
        let reason = DropReason::NeedFrag;
        if inner.quiet {
            return Verdict::Drop(DropReason::TooBig);
        }
        if !self.tunnel.icmp_allow(now) {
            return Verdict::Drop(reason);
        }
        let Some(mac) = self.interface(rx.ifindex).map(|i| i.mac) else {
            return Verdict::Drop(reason);
        };
        let built = match (p.vip, p.client) {
            (IpAddr::V4(vip), IpAddr::V4(client)) => {
                let ident = self.tunnel.next_ident();
                let mtu = u16::try_from(mtu).unwrap_or(u16::MAX);
                frame(out, mac, p.src_mac, |ipb| {
                    icmp::emit_frag_needed(ipb, vip, client, ident, mtu, inner.bytes)
                })
            }
            (IpAddr::V6(vip), IpAddr::V6(client)) => {
                let mtu = u32::try_from(mtu).unwrap_or(u32::MAX);
                frame_as(out, mac, p.src_mac, EtherType::IPV6, |ipb| {
                    emit_packet_too_big(ipb, vip, client, mtu, inner.bytes)
                })
            }
            _ => None,
        };
        match built {
            Some(len) => Verdict::Reject {
                reason,
                ifindex: rx.ifindex,
                len,
            },
            None => Verdict::Drop(reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn icmp_rate_limit() {
        let mut t = TunnelState::default();
        let t0 = Instant::now();
        let allowed = (0..100).filter(|_| t.icmp_allow(t0)).count();
        assert_eq!(allowed, ICMP_BURST as usize);
        // 5 ms later: 5 more.
        let t1 = t0 + Duration::from_millis(5);
        let allowed = (0..100).filter(|_| t.icmp_allow(t1)).count();
        assert_eq!(allowed, 5);
        // A long pause refills only up to the burst.
        let t2 = t1 + Duration::from_secs(60);
        let allowed = (0..100).filter(|_| t.icmp_allow(t2)).count();
        assert_eq!(allowed, ICMP_BURST as usize);
    }
}
