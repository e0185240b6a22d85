//! IP-in-IP for TUN forwarding, every family combination IPVS allows: IPv4 in IPv4
//! (IPIP, RFC 2003: outer protocol 4), IPv6 in IPv4 (RFC 4213: protocol 41), IPv6 in IPv6
//! and IPv4 in IPv6 (RFC 2473: next header 41 or 4). The outer header the director puts in
//! front of a client's packet, the fragmentation of that outer packet when the inner one
//! may be fragmented, and the decapsulating views a real server uses.
//!
//! Invariants:
//! - An IPv4 outer header ([`Outer`]) is always 20 bytes (no options), protocol 4 (or,
//!   through the `_proto` builders, 41), with a complete checksum; for an inner IPv4
//!   packet it copies the DSCP/ECN byte and DF bit (as IPVS does); its TTL and
//!   identification are the caller's.
//! - An IPv6 outer header ([`Outer6`]) is always the 40-byte fixed header with no extension
//!   header (no tunnel encapsulation limit option, as IPVS), next header 4 or 41 by the
//!   inner packet's version nibble; traffic class copied from the inner DSCP/ECN
//!   ([`dscp_ecn`]), flow label and hop limit the caller's. Its fragments carry one
//!   fragment header (RFC 8200 §4.5) after the fixed header and nothing else.
//! - Builders write into caller-owned buffers and return `None` (writing nothing useful)
//!   when the buffer is too short or a length would not fit the 16-bit total length; they
//!   never panic and never allocate.
//! - [`decapsulate`] (IPv4 in IPv4) and [`decapsulate_any`] (all four) take untrusted
//!   bytes: the outer and the inner header are both checked (lengths, version, IHL, outer
//!   protocol, outer not a fragment, the inner version matching the outer protocol) before
//!   the inner packet is handed out, cut to its own length.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::ipv4::{self, IpProtocol, Ipv4Packet};
use super::ipv6::{self, Ipv6Packet};
use super::{Error, Result};

/// Bytes the encapsulation adds (an IPv4 outer header).
pub const OVERHEAD: usize = ipv4::MIN_HEADER_LEN;

/// Bytes an IPv6 outer header adds.
pub const OVERHEAD6: usize = ipv6::HEADER_LEN;

/// Length of an IPv6 fragment header.
pub const FRAG_HEADER_LEN: usize = 8;

/// Outer protocol (next header) of an inner IPv4 packet.
pub const PROTO_IPV4: u8 = 4;

/// Outer protocol (next header) of an inner IPv6 packet.
pub const PROTO_IPV6: u8 = 41;

/// The outer protocol number for `inner` by its version nibble: [`PROTO_IPV4`] or
/// [`PROTO_IPV6`]; `None` for anything else or an empty slice.
pub fn inner_protocol(inner: &[u8]) -> Option<u8> {
    match inner.first()? >> 4 {
        4 => Some(PROTO_IPV4),
        6 => Some(PROTO_IPV6),
        _ => None,
    }
}

/// The DSCP/ECN byte of `inner`: the IPv4 TOS byte or the IPv6 traffic class (`None` if
/// too short or neither version).
pub fn dscp_ecn(inner: &[u8]) -> Option<u8> {
    let (b0, b1) = (*inner.first()?, *inner.get(1)?);
    match b0 >> 4 {
        4 => Some(b1),
        6 => Some(((b0 & 0x0f) << 4) | (b1 >> 4)),
        _ => None,
    }
}

/// The smallest MTU IPv4 allows (RFC 791): below it no tunnel MTU is offered.
pub const MIN_MTU: usize = 68;

/// The outer header of one encapsulated packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outer {
    /// The director's address towards the real server (DIP).
    pub src: Ipv4Addr,
    /// The real server (RIP).
    pub dst: Ipv4Addr,
    /// Time to live.
    pub ttl: u8,
    /// Identification.
    pub ident: u16,
    /// DSCP and ECN, copied from the inner header.
    pub dscp_ecn: u8,
    /// Don't Fragment, copied from the inner header.
    pub dont_frag: bool,
}

impl Outer {
    /// An outer header for `inner` (a checked IPv4 header): DSCP/ECN and DF copied.
    pub fn for_inner<T: AsRef<[u8]>>(
        src: Ipv4Addr,
        dst: Ipv4Addr,
        ttl: u8,
        ident: u16,
        inner: &Ipv4Packet<T>,
    ) -> Outer {
        Outer {
            src,
            dst,
            ttl,
            ident,
            dscp_ecn: inner.dscp_ecn(),
            dont_frag: inner.dont_frag(),
        }
    }

    /// Writes the 20-byte header into `buf[..20]` for `payload_len` bytes of payload, with
    /// the given fragment fields (`offset` in bytes, a multiple of 8).
    pub fn emit(
        &self,
        buf: &mut [u8],
        payload_len: usize,
        more_frags: bool,
        offset: usize,
    ) -> Option<()> {
        self.emit_proto(buf, IpProtocol::IPIP, payload_len, more_frags, offset)
    }

    /// [`Outer::emit`] with another protocol (41 for an inner IPv6 packet).
    pub fn emit_proto(
        &self,
        buf: &mut [u8],
        protocol: IpProtocol,
        payload_len: usize,
        more_frags: bool,
        offset: usize,
    ) -> Option<()> {
        let total = u16::try_from(OVERHEAD.checked_add(payload_len)?).ok()?;
        let offset = u16::try_from(offset)
            .ok()
            .filter(|o| o % 8 == 0 && *o <= 0xfff8)?;
        let mut p = Ipv4Packet::new_unchecked(buf.get_mut(..OVERHEAD)?);
        p.set_version_and_header_len(OVERHEAD);
        p.set_dscp_ecn(self.dscp_ecn);
        p.set_total_len(total);
        p.set_ident(self.ident);
        p.set_flags_and_offset(
            self.dont_frag && !more_frags && offset == 0,
            more_frags,
            offset,
        );
        p.set_ttl(self.ttl);
        p.set_protocol(protocol);
        p.set_src_addr(self.src);
        p.set_dst_addr(self.dst);
        p.fill_checksum();
        Some(())
    }
}

/// Writes `outer` and then `inner` into `buf`; returns the outer packet's length.
pub fn encapsulate(buf: &mut [u8], outer: &Outer, inner: &[u8]) -> Option<usize> {
    encapsulate_proto(buf, outer, IpProtocol::IPIP, inner)
}

/// [`encapsulate`] with another outer protocol (41: IPv6 in IPv4).
pub fn encapsulate_proto(
    buf: &mut [u8],
    outer: &Outer,
    protocol: IpProtocol,
    inner: &[u8],
) -> Option<usize> {
    let len = OVERHEAD.checked_add(inner.len())?;
    let dst = buf.get_mut(..len)?;
    outer.emit_proto(dst, protocol, inner.len(), false, 0)?;
    dst.get_mut(OVERHEAD..)?.copy_from_slice(inner);
    Some(len)
}

/// Inner bytes per outer fragment for an outer MTU of `mtu` (a multiple of 8), or `None`
/// if `mtu` is below [`MIN_MTU`].
pub fn fragment_payload(mtu: usize) -> Option<usize> {
    if mtu < MIN_MTU {
        return None;
    }
    Some((mtu - OVERHEAD) / 8 * 8)
}

/// How many outer fragments carry an inner packet of `inner_len` bytes at `mtu`.
pub fn fragment_count(inner_len: usize, mtu: usize) -> Option<usize> {
    let per = fragment_payload(mtu)?;
    Some(inner_len.div_ceil(per).max(1))
}

/// Writes outer fragment `index` (of [`fragment_count`]) of `inner` at `mtu` into `buf`:
/// the outer header (MF on all but the last, DF clear) and its slice of `inner`. Returns
/// the fragment's length.
pub fn emit_fragment(
    buf: &mut [u8],
    outer: &Outer,
    inner: &[u8],
    mtu: usize,
    index: usize,
) -> Option<usize> {
    emit_fragment_proto(buf, outer, IpProtocol::IPIP, inner, mtu, index)
}

/// [`emit_fragment`] with another outer protocol (41: IPv6 in IPv4).
pub fn emit_fragment_proto(
    buf: &mut [u8],
    outer: &Outer,
    protocol: IpProtocol,
    inner: &[u8],
    mtu: usize,
    index: usize,
) -> Option<usize> {
    let per = fragment_payload(mtu)?;
    let start = index.checked_mul(per)?;
    if start >= inner.len() && !(index == 0 && inner.is_empty()) {
        return None;
    }
    let end = (start + per).min(inner.len());
    let chunk = inner.get(start..end)?;
    let more = end < inner.len();
    let len = OVERHEAD + chunk.len();
    let dst = buf.get_mut(..len)?;
    let unfragmentable = Outer {
        dont_frag: false,
        ..*outer
    };
    unfragmentable.emit_proto(dst, protocol, chunk.len(), more, start)?;
    dst.get_mut(OVERHEAD..)?.copy_from_slice(chunk);
    Some(len)
}

/// The outer IPv6 header of one encapsulated packet (RFC 2473).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outer6 {
    /// The director's address towards the real server (DIP).
    pub src: Ipv6Addr,
    /// The real server (RIP).
    pub dst: Ipv6Addr,
    /// Hop limit.
    pub hop_limit: u8,
    /// Traffic class (DSCP and ECN), copied from the inner header.
    pub traffic_class: u8,
    /// Flow label (20 bits).
    pub flow_label: u32,
}

impl Outer6 {
    /// An outer header for `inner` (an IPv4 or IPv6 packet): traffic class = its DSCP/ECN
    /// ([`dscp_ecn`]), flow label 0 (as IPVS). `None` if `inner` is neither.
    pub fn for_inner(src: Ipv6Addr, dst: Ipv6Addr, hop_limit: u8, inner: &[u8]) -> Option<Self> {
        Some(Outer6 {
            src,
            dst,
            hop_limit,
            traffic_class: dscp_ecn(inner)?,
            flow_label: 0,
        })
    }

    /// Writes the 40-byte fixed header into `buf[..40]` for `payload_len` bytes after it
    /// (a fragment header included), with `next_header`.
    pub fn emit(&self, buf: &mut [u8], next_header: u8, payload_len: usize) -> Option<()> {
        let plen = u16::try_from(payload_len).ok()?;
        let mut p = Ipv6Packet::new_unchecked(buf.get_mut(..OVERHEAD6)?);
        p.set_version_tc_flow(self.traffic_class, self.flow_label);
        p.set_payload_len(plen);
        p.set_next_header(next_header);
        p.set_hop_limit(self.hop_limit);
        p.set_src_addr(self.src);
        p.set_dst_addr(self.dst);
        Some(())
    }
}

/// Writes `outer` and then `inner` (IPv4 or IPv6, next header 4 or 41 by its version) into
/// `buf`; returns the outer packet's length.
pub fn encapsulate6(buf: &mut [u8], outer: &Outer6, inner: &[u8]) -> Option<usize> {
    let nh = inner_protocol(inner)?;
    let len = OVERHEAD6.checked_add(inner.len())?;
    let dst = buf.get_mut(..len)?;
    outer.emit(dst, nh, inner.len())?;
    dst.get_mut(OVERHEAD6..)?.copy_from_slice(inner);
    Some(len)
}

/// Inner bytes per outer IPv6 fragment for an outer MTU of `mtu` (a multiple of 8), or
/// `None` if `mtu` is below the IPv6 minimum link MTU.
pub fn fragment6_payload(mtu: usize) -> Option<usize> {
    if mtu < ipv6::MIN_MTU {
        return None;
    }
    Some((mtu - OVERHEAD6 - FRAG_HEADER_LEN) / 8 * 8)
}

/// How many outer IPv6 fragments carry an inner packet of `inner_len` bytes at `mtu`.
pub fn fragment6_count(inner_len: usize, mtu: usize) -> Option<usize> {
    let per = fragment6_payload(mtu)?;
    Some(inner_len.div_ceil(per).max(1))
}

/// Writes outer IPv6 fragment `index` (of [`fragment6_count`]) of `inner` at `mtu` into
/// `buf`: the fixed header (next header 44), a fragment header (next header 4 or 41,
/// offset, M on all but the last, identification `ident`) and its slice of `inner`.
/// Returns the fragment's length.
pub fn emit_fragment6(
    buf: &mut [u8],
    outer: &Outer6,
    ident: u32,
    inner: &[u8],
    mtu: usize,
    index: usize,
) -> Option<usize> {
    let nh = inner_protocol(inner)?;
    let per = fragment6_payload(mtu)?;
    let start = index.checked_mul(per)?;
    if start >= inner.len() {
        return None;
    }
    let end = (start + per).min(inner.len());
    let chunk = inner.get(start..end)?;
    let more = end < inner.len();
    let offset = u16::try_from(start).ok().filter(|o| *o <= 0xfff8)?;
    let hdrs = OVERHEAD6 + FRAG_HEADER_LEN;
    let len = hdrs + chunk.len();
    let dst = buf.get_mut(..len)?;
    outer.emit(
        dst,
        ipv6::next_header::FRAGMENT,
        FRAG_HEADER_LEN + chunk.len(),
    )?;
    let fh = dst.get_mut(OVERHEAD6..hdrs)?;
    fh[0] = nh;
    fh[1] = 0;
    fh[2..4].copy_from_slice(&(offset | u16::from(more)).to_be_bytes());
    fh[4..8].copy_from_slice(&ident.to_be_bytes());
    dst.get_mut(hdrs..)?.copy_from_slice(chunk);
    Some(len)
}

/// A tunnelled packet of any family combination taken apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tunnelled<'a> {
    /// Outer source (the director).
    pub outer_src: IpAddr,
    /// Outer destination (this real server).
    pub outer_dst: IpAddr,
    /// The inner IPv4 or IPv6 packet, cut to its own length.
    pub inner: &'a [u8],
}

/// Takes an IPv4-or-IPv6-in-IPv4-or-IPv6 packet (from its outer header on) apart. The
/// outer header must carry the inner packet directly (IPv4: protocol 4 or 41, not a
/// fragment; IPv6: next header 4 or 41, so any extension header, a fragment header
/// included, is `Malformed`), and the inner version must match that protocol.
pub fn decapsulate_any(packet: &[u8]) -> Result<Tunnelled<'_>> {
    let (outer_src, outer_dst, proto, payload) = match packet.first().map(|b| b >> 4) {
        Some(6) => {
            let outer = Ipv6Packet::new_checked(packet)?;
            let payload = packet
                .get(ipv6::HEADER_LEN..ipv6::HEADER_LEN + usize::from(outer.payload_len()))
                .ok_or(Error::Truncated)?;
            (
                IpAddr::V6(outer.src_addr()),
                IpAddr::V6(outer.dst_addr()),
                outer.next_header(),
                payload,
            )
        }
        Some(_) => {
            let outer = Ipv4Packet::new_checked(packet)?;
            if outer.is_fragment() {
                return Err(Error::Malformed);
            }
            let payload = packet
                .get(outer.header_len()..usize::from(outer.total_len()))
                .ok_or(Error::Truncated)?;
            (
                IpAddr::V4(outer.src_addr()),
                IpAddr::V4(outer.dst_addr()),
                outer.protocol().0,
                payload,
            )
        }
        None => return Err(Error::Truncated),
    };
    let inner_len = match proto {
        PROTO_IPV4 => usize::from(Ipv4Packet::new_checked(payload)?.total_len()),
        PROTO_IPV6 => {
            ipv6::HEADER_LEN + usize::from(Ipv6Packet::new_checked(payload)?.payload_len())
        }
        _ => return Err(Error::Malformed),
    };
    let inner = payload.get(..inner_len).ok_or(Error::Truncated)?;
    Ok(Tunnelled {
        outer_src,
        outer_dst,
        inner,
    })
}

/// An IPIP packet taken apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decapsulated<'a> {
    /// Outer source (the director).
    pub outer_src: Ipv4Addr,
    /// Outer destination (this real server).
    pub outer_dst: Ipv4Addr,
    /// The inner IPv4 packet, cut to its total length.
    pub inner: &'a [u8],
}

/// Takes an IPIP packet (from its outer IPv4 header on) apart; module doc for the checks.
/// A fragment of the outer packet is `Malformed` (the kernel reassembles before a raw
/// socket sees it); so is an inner packet that is not IPv4.
pub fn decapsulate(packet: &[u8]) -> Result<Decapsulated<'_>> {
    let outer = Ipv4Packet::new_checked(packet)?;
    if outer.protocol() != IpProtocol::IPIP || outer.is_fragment() {
        return Err(Error::Malformed);
    }
    let payload = packet
        .get(outer.header_len()..usize::from(outer.total_len()))
        .ok_or(Error::Truncated)?;
    let inner = Ipv4Packet::new_checked(payload)?;
    let inner_len = usize::from(inner.total_len());
    let inner = payload.get(..inner_len).ok_or(Error::Truncated)?;
    Ok(Decapsulated {
        outer_src: outer.src_addr(),
        outer_dst: outer.dst_addr(),
        inner,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 24-byte inner IPv4 packet: 198.51.100.1 -> 203.0.113.10, UDP, DF, TOS 0xb8,
    /// TTL 63, id 0x1234, 4 payload bytes (not a real UDP header; IPIP does not look).
    const INNER: [u8; 24] = [
        0x45, 0xb8, 0x00, 0x18, 0x12, 0x34, 0x40, 0x00, 0x3f, 0x11, 0x00, 0x00, 198, 51, 100, 1,
        203, 0, 113, 10, 0xde, 0xad, 0xbe, 0xef,
    ];

    fn inner() -> Vec<u8> {
        let mut v = INNER.to_vec();
        Ipv4Packet::new_unchecked(&mut v[..]).fill_checksum();
        v
    }

    fn outer() -> Outer {
        let v = inner();
        Outer::for_inner(
            Ipv4Addr::new(192, 0, 2, 1),
            Ipv4Addr::new(192, 0, 2, 11),
            64,
            0x0001,
            &Ipv4Packet::new_checked(&v[..]).unwrap(),
        )
    }

    #[test]
    fn outer_header_bytes() {
        let o = outer();
        assert_eq!(o.dscp_ecn, 0xb8);
        assert!(o.dont_frag);
        let mut buf = [0u8; 64];
        let len = encapsulate(&mut buf, &o, &inner()).unwrap();
        assert_eq!(len, 44);
        // The checksum (0xb608) was computed by hand (RFC 1071).
        let expect_hdr: [u8; 20] = [
            0x45, 0xb8, 0x00, 0x2c, 0x00, 0x01, 0x40, 0x00, 0x40, 0x04, 0xb6, 0x08, 192, 0, 2, 1,
            192, 0, 2, 11,
        ];
        assert_eq!(&buf[..20], &expect_hdr[..]);
        assert!(
            Ipv4Packet::new_checked(&buf[..len])
                .unwrap()
                .verify_checksum()
        );
        assert_eq!(&buf[20..44], &inner()[..]);
    }

    #[test]
    fn decapsulate_round_trip_and_padding() {
        let mut buf = [0u8; 64];
        let len = encapsulate(&mut buf, &outer(), &inner()).unwrap();
        let d = decapsulate(&buf[..len]).unwrap();
        assert_eq!(d.outer_src, Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(d.outer_dst, Ipv4Addr::new(192, 0, 2, 11));
        assert_eq!(d.inner, &inner()[..]);
        // Trailing bytes after the outer total length are ignored.
        let d = decapsulate(&buf[..len + 8]).unwrap();
        assert_eq!(d.inner.len(), 24);
    }

    #[test]
    fn decapsulate_rejects_bad_input() {
        let mut buf = [0u8; 64];
        let len = encapsulate(&mut buf, &outer(), &inner()).unwrap();
        // Every truncation is an error, never a panic.
        for n in 0..len {
            assert!(decapsulate(&buf[..n]).is_err(), "{n}");
        }
        // Not IPIP.
        let mut b = buf;
        b[9] = 17;
        assert_eq!(decapsulate(&b[..len]), Err(Error::Malformed));
        // An outer fragment.
        let mut b = buf;
        b[6] = 0x20;
        assert_eq!(decapsulate(&b[..len]), Err(Error::Malformed));
        // Inner version 6.
        let mut b = buf;
        b[20] = 0x65;
        assert_eq!(decapsulate(&b[..len]), Err(Error::Malformed));
        // Inner total length past the outer payload.
        let mut b = buf;
        b[23] = 0x30;
        assert!(decapsulate(&b[..len]).is_err());
    }

    fn a6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    /// A 48-byte inner IPv6 packet: 2001:db8:c::10 -> 2001:db8:f::10, UDP, traffic class
    /// 0xb8, flow label 0x12345, hop limit 63, 8 payload bytes (IP-in-IP does not look).
    fn inner6() -> Vec<u8> {
        let mut v = vec![0x6b, 0x81, 0x23, 0x45, 0x00, 0x08, 17, 63];
        v.extend(a6("2001:db8:c::10").octets());
        v.extend(a6("2001:db8:f::10").octets());
        v.extend([0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4]);
        v
    }

    fn outer6() -> Outer6 {
        Outer6::for_inner(a6("2001:db8:b::1"), a6("2001:db8:b::11"), 64, &inner6()).unwrap()
    }

    fn outer6_literal(payload_len: u16, next: u8, tc: u8) -> Vec<u8> {
        let [p0, p1] = payload_len.to_be_bytes();
        let mut h = vec![0x60 | (tc >> 4), tc << 4, 0, 0, p0, p1, next, 64];
        h.extend(a6("2001:db8:b::1").octets());
        h.extend(a6("2001:db8:b::11").octets());
        h
    }

    #[test]
    fn dscp_and_protocol_of_inner() {
        assert_eq!(dscp_ecn(&INNER), Some(0xb8));
        assert_eq!(dscp_ecn(&inner6()), Some(0xb8));
        assert_eq!(inner_protocol(&INNER), Some(4));
        assert_eq!(inner_protocol(&inner6()), Some(41));
        assert_eq!((dscp_ecn(&[0x65]), inner_protocol(&[])), (None, None));
        assert_eq!(inner_protocol(&[0x55, 0]), None);
    }

    /// IPv6 in IPv6 and IPv4 in IPv6: literal outer headers, inner unchanged.
    #[test]
    fn outer6_header_bytes() {
        let o = outer6();
        assert_eq!((o.traffic_class, o.flow_label), (0xb8, 0));
        let mut buf = [0u8; 128];
        let len = encapsulate6(&mut buf, &o, &inner6()).unwrap();
        assert_eq!(len, 88);
        assert_eq!(&buf[..40], &outer6_literal(48, 41, 0xb8)[..]);
        assert_eq!(&buf[40..88], &inner6()[..]);
        let v4 = inner();
        let o4 = Outer6 {
            traffic_class: 0,
            ..o
        };
        let len = encapsulate6(&mut buf, &o4, &v4).unwrap();
        assert_eq!(len, 64);
        assert_eq!(&buf[..40], &outer6_literal(24, 4, 0)[..]);
        assert_eq!(&buf[40..64], &v4[..]);
        // Neither version, a short buffer: refused.
        assert_eq!(encapsulate6(&mut buf, &o, &[0x50; 20]), None);
        assert_eq!(encapsulate6(&mut buf[..87], &o, &inner6()), None);
    }

    /// IPv6 in IPv4: protocol 41, TOS = the inner traffic class, DF as the caller says.
    #[test]
    fn six_in_four_header_bytes() {
        let o = Outer {
            src: Ipv4Addr::new(192, 0, 2, 1),
            dst: Ipv4Addr::new(192, 0, 2, 11),
            ttl: 64,
            ident: 1,
            dscp_ecn: dscp_ecn(&inner6()).unwrap(),
            dont_frag: false,
        };
        let mut buf = [0u8; 128];
        let len = encapsulate_proto(&mut buf, &o, IpProtocol(41), &inner6()).unwrap();
        assert_eq!(len, 68);
        let mut expect: Vec<u8> = vec![
            0x45, 0xb8, 0x00, 0x44, 0x00, 0x01, 0x00, 0x00, 0x40, 41, 0, 0, 192, 0, 2, 1, 192, 0,
            2, 11,
        ];
        let c = !crate::wire::checksum::data(&expect);
        expect[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(&buf[..20], &expect[..]);
        assert_eq!(&buf[20..68], &inner6()[..]);
        let d = decapsulate_any(&buf[..len]).unwrap();
        assert_eq!(d.inner, &inner6()[..]);
        assert_eq!(d.outer_dst, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 11)));
        // The IPv4-only decapsulator refuses it.
        assert_eq!(decapsulate(&buf[..len]), Err(Error::Malformed));
    }

    #[test]
    fn fragments6_cover_the_inner_packet() {
        let mut big = vec![0u8; 1500];
        big[..20].copy_from_slice(&INNER[..20]);
        big[2..4].copy_from_slice(&1500u16.to_be_bytes());
        big[6] = 0;
        for (i, b) in big.iter_mut().enumerate().skip(20) {
            *b = i as u8;
        }
        let o = outer6();
        assert_eq!(fragment6_payload(1500), Some(1448));
        assert_eq!(fragment6_payload(1280), Some(1232));
        assert_eq!(fragment6_payload(1279), None);
        assert_eq!(fragment6_count(1500, 1500), Some(2));
        let mut got = Vec::new();
        let mut buf = [0u8; 1600];
        for i in 0..2 {
            let len = emit_fragment6(&mut buf, &o, 0xdead_beef, &big, 1500, i).unwrap();
            assert!(len <= 1500);
            assert_eq!(len, [1496, 100][i]);
            let p = Ipv6Packet::new_checked(&buf[..len]).unwrap();
            assert_eq!(usize::from(p.payload_len()), len - 40);
            assert_eq!(p.next_header(), 44);
            // Fragment header: next header 4, reserved, offset | M, identification.
            let off_m: [[u8; 2]; 2] = [[0x00, 0x01], [0x05, 0xa8]];
            let mut fh = vec![4, 0];
            fh.extend(off_m[i]);
            fh.extend([0xde, 0xad, 0xbe, 0xef]);
            assert_eq!(&buf[40..48], &fh[..]);
            let u = p.upper_layer(ipv6::MAX_EXT_HEADERS).unwrap();
            assert_eq!(u.fragment.map(|f| usize::from(f.offset)), Some(i * 1448));
            got.extend_from_slice(&buf[48..len]);
        }
        assert_eq!(got, big);
        assert_eq!(emit_fragment6(&mut buf, &o, 1, &big, 1500, 2), None);
        assert_eq!(emit_fragment6(&mut buf[..100], &o, 1, &big, 1500, 0), None);
        assert_eq!(emit_fragment6(&mut buf, &o, 1, &big, 1200, 0), None);
        assert_eq!(emit_fragment6(&mut buf, &o, 1, &[], 1500, 0), None);
    }

    #[test]
    fn decapsulate_any_all_families() {
        let mut buf = [0u8; 128];
        // 4in4, 6in6, 4in6 (6in4 above).
        let len = encapsulate(&mut buf, &outer(), &inner()).unwrap();
        let d = decapsulate_any(&buf[..len + 3]).unwrap();
        assert_eq!(
            (d.outer_src, d.inner),
            (IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), &inner()[..])
        );
        for inner in [inner6(), inner()] {
            let len = encapsulate6(&mut buf, &outer6(), &inner).unwrap();
            let d = decapsulate_any(&buf[..len + 5]).unwrap();
            assert_eq!(d.outer_src, IpAddr::V6(a6("2001:db8:b::1")));
            assert_eq!(d.outer_dst, IpAddr::V6(a6("2001:db8:b::11")));
            assert_eq!(d.inner, &inner[..]);
            for n in 0..len {
                assert!(decapsulate_any(&buf[..n]).is_err(), "{n}");
            }
            // Next header not 4/41 (an extension header, UDP).
            for nh in [0u8, 44, 17] {
                let mut b = buf;
                b[6] = nh;
                assert_eq!(decapsulate_any(&b[..len]), Err(Error::Malformed));
            }
            // Inner version not matching the next header.
            let mut b = buf;
            b[6] = if inner[0] >> 4 == 6 { 4 } else { 41 };
            assert!(decapsulate_any(&b[..len]).is_err());
        }
    }

    #[test]
    fn fragments_cover_the_inner_packet() {
        let mut big = vec![0u8; 1500];
        big[..20].copy_from_slice(&INNER[..20]);
        big[2..4].copy_from_slice(&1500u16.to_be_bytes());
        big[6] = 0; // no DF
        for (i, b) in big.iter_mut().enumerate().skip(20) {
            *b = i as u8;
        }
        let o = Outer {
            dont_frag: false,
            ..outer()
        };
        assert_eq!(fragment_count(1500, 1500), Some(2));
        assert_eq!(fragment_payload(1500), Some(1480));
        let mut got = Vec::new();
        let mut buf = [0u8; 1600];
        for i in 0..2 {
            let len = emit_fragment(&mut buf, &o, &big, 1500, i).unwrap();
            assert!(len <= 1500);
            let p = Ipv4Packet::new_checked(&buf[..len]).unwrap();
            assert!(p.verify_checksum());
            assert_eq!(p.more_frags(), i == 0);
            assert!(!p.dont_frag());
            assert_eq!(usize::from(p.frag_offset()), i * 1480);
            got.extend_from_slice(p.payload());
        }
        assert_eq!(got, big);
        assert_eq!(emit_fragment(&mut buf, &o, &big, 1500, 2), None);
        assert_eq!(fragment_count(1, 40), None);
        // A short buffer is refused.
        assert_eq!(emit_fragment(&mut buf[..100], &o, &big, 1500, 0), None);
    }
}
