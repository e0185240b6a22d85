//! IPv6 headers (RFC 8200) and their extension-header chains.
//!
//! Invariants of a view made with [`Ipv6Packet::new_checked`]:
//! - the buffer holds the 40-byte fixed header and the version is 6;
//! - `40 + payload length ≤ buffer length`, so [`Ipv6Packet::payload`] (which ends at the
//!   payload length, dropping any Ethernet padding) never panics. A payload length of 0 is
//!   an empty payload: jumbograms (RFC 2675) are not supported (they cannot occur on
//!   Ethernet).
//!
//! [`Ipv6Packet::upper_layer`] walks the extension-header chain to the upper-layer header
//! with a bound on the number of extension headers (RFC 8504 §5.3 lets a node limit it; the
//! forwarding core uses [`MAX_EXT_HEADERS`]), checks every header's length against the
//! payload, and reports a fragment header's offset so that non-first fragments, which carry
//! no upper-layer header, are recognised. Nothing here allocates or panics on any input.

use std::net::Ipv6Addr;

use super::checksum;
use super::ipv4::IpProtocol;
use super::{Error, Result};

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;

/// The minimum link MTU of IPv6 (RFC 8200 §5): an ICMPv6 error never exceeds it.
pub const MIN_MTU: usize = 1280;

/// How many extension headers [`Ipv6Packet::upper_layer`] walks before giving up. Chains
/// seen in practice hold at most three or four (hop-by-hop, destination options, routing,
/// fragment); eight or more is the "bad input" of issue #8.
pub const MAX_EXT_HEADERS: usize = 7;

mod field {
    use crate::wire::Field;

    pub const VER_TC_FLOW: Field = 0..4;
    pub const LENGTH: Field = 4..6;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Field = 8..24;
    pub const DST_ADDR: Field = 24..40;
}

/// Next-header values of the extension headers [`Ipv6Packet::upper_layer`] knows.
pub mod next_header {
    /// Hop-by-Hop Options (0).
    pub const HOP_BY_HOP: u8 = 0;
    /// Routing (43).
    pub const ROUTING: u8 = 43;
    /// Fragment (44).
    pub const FRAGMENT: u8 = 44;
    /// Encapsulating Security Payload (50): opaque, ends the walk.
    pub const ESP: u8 = 50;
    /// Authentication Header (51): length in 4-byte units.
    pub const AUTH: u8 = 51;
    /// ICMPv6 (58).
    pub const ICMPV6: u8 = 58;
    /// No Next Header (59).
    pub const NO_NEXT: u8 = 59;
    /// Destination Options (60).
    pub const DEST_OPTS: u8 = 60;
    /// Mobility (135).
    pub const MOBILITY: u8 = 135;
    /// Host Identity Protocol (139).
    pub const HIP: u8 = 139;
    /// Shim6 (140).
    pub const SHIM6: u8 = 140;
    /// IPv6 in IPv6 / IPv6 in IPv4 (41): a tunnel's inner packet.
    pub const IPV6: u8 = 41;
}

/// Why an extension-header chain could not be walked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChainError {
    /// A header's length runs past the payload.
    Truncated,
    /// More than the allowed number of extension headers.
    TooLong,
}

/// What [`Ipv6Packet::upper_layer`] found at the end of the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UpperLayer {
    /// The upper-layer protocol (the last next-header value).
    pub protocol: IpProtocol,
    /// Offset of the upper-layer header (or, in a non-first fragment, of the fragment's
    /// data) from the start of the IPv6 header.
    pub offset: usize,
    /// Extension headers walked.
    pub ext_headers: usize,
    /// The fragment header's fields, if the chain holds one.
    pub fragment: Option<Fragment>,
}

impl UpperLayer {
    /// Whether this is a fragment other than the first: it has no upper-layer header.
    pub fn is_later_fragment(&self) -> bool {
        self.fragment.is_some_and(|f| f.offset != 0)
    }
}

/// The fields of an IPv6 fragment header (RFC 8200 §4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fragment {
    /// Offset of this fragment's data in the original payload, in bytes.
    pub offset: u16,
    /// More fragments follow.
    pub more: bool,
    /// Identification.
    pub ident: u32,
}

/// A view of an IPv6 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wraps a buffer without any check.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// Wraps an untrusted buffer, checking everything the getters rely on (module doc).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// The checks of [`Ipv6Packet::new_checked`].
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 6 {
            return Err(Error::Malformed);
        }
        if HEADER_LEN + usize::from(self.payload_len()) > len {
            return Err(Error::Malformed);
        }
        Ok(())
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn u16_at(&self, f: super::Field) -> u16 {
        let b = &self.buffer.as_ref()[f];
        u16::from_be_bytes([b[0], b[1]])
    }

    fn addr_at(&self, f: super::Field) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer.as_ref()[f]);
        Ipv6Addr::from(a)
    }

    fn first_word(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::VER_TC_FLOW];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// Version field (6 for a checked view).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    /// Traffic class (DSCP and ECN).
    pub fn traffic_class(&self) -> u8 {
        ((self.first_word() >> 20) & 0xff) as u8
    }

    /// Flow label (20 bits).
    pub fn flow_label(&self) -> u32 {
        self.first_word() & 0x000f_ffff
    }

    /// Payload length (everything after the fixed header, extension headers included).
    pub fn payload_len(&self) -> u16 {
        self.u16_at(field::LENGTH)
    }

    /// The first next-header value.
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NXT_HDR]
    }

    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        self.addr_at(field::SRC_ADDR)
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        self.addr_at(field::DST_ADDR)
    }

    /// The payload: from the end of the fixed header to the payload length.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + usize::from(self.payload_len())]
    }

    /// The whole packet (fixed header and payload, padding dropped).
    pub fn packet(&self) -> &[u8] {
        &self.buffer.as_ref()[..HEADER_LEN + usize::from(self.payload_len())]
    }

    /// Walks the extension-header chain (module doc) with at most `max_ext` extension
    /// headers. The walk ends at the first next-header value that is not an extension
    /// header this module knows (TCP, UDP, ICMPv6, ESP, No Next Header, IPv6, anything
    /// else), or at a fragment header with a non-zero offset (a later fragment).
    pub fn upper_layer(&self, max_ext: usize) -> std::result::Result<UpperLayer, ChainError> {
        let payload = self.payload();
        let mut nh = self.next_header();
        let mut at = 0usize;
        let mut walked = 0usize;
        let mut fragment = None;
        loop {
            let len = match nh {
                next_header::HOP_BY_HOP
                | next_header::ROUTING
                | next_header::DEST_OPTS
                | next_header::MOBILITY
                | next_header::HIP
                | next_header::SHIM6 => {
                    let l = *payload.get(at + 1).ok_or(ChainError::Truncated)?;
                    (usize::from(l) + 1) * 8
                }
                next_header::AUTH => {
                    let l = *payload.get(at + 1).ok_or(ChainError::Truncated)?;
                    (usize::from(l) + 2) * 4
                }
                next_header::FRAGMENT => 8,
                _ => {
                    return Ok(UpperLayer {
                        protocol: IpProtocol(nh),
                        offset: HEADER_LEN + at,
                        ext_headers: walked,
                        fragment,
                    });
                }
            };
            if walked == max_ext {
                return Err(ChainError::TooLong);
            }
            let hdr = payload.get(at..at + len).ok_or(ChainError::Truncated)?;
            walked += 1;
            let this = nh;
            nh = hdr[0];
            at += len;
            if this == next_header::FRAGMENT {
                let off_flags = u16::from_be_bytes([hdr[2], hdr[3]]);
                let f = Fragment {
                    offset: off_flags & 0xfff8,
                    more: off_flags & 1 != 0,
                    ident: u32::from_be_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]),
                };
                fragment = Some(f);
                if f.offset != 0 {
                    return Ok(UpperLayer {
                        protocol: IpProtocol(nh),
                        offset: HEADER_LEN + at,
                        ext_headers: walked,
                        fragment,
                    });
                }
            }
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Sets version 6, the traffic class and the flow label.
    pub fn set_version_tc_flow(&mut self, traffic_class: u8, flow_label: u32) {
        let w = (6u32 << 28) | (u32::from(traffic_class) << 20) | (flow_label & 0x000f_ffff);
        self.buffer.as_mut()[field::VER_TC_FLOW].copy_from_slice(&w.to_be_bytes());
    }

    /// Sets the payload length.
    pub fn set_payload_len(&mut self, v: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the first next-header value.
    pub fn set_next_header(&mut self, v: u8) {
        self.buffer.as_mut()[field::NXT_HDR] = v;
    }

    /// Sets the hop limit.
    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = v;
    }

    /// Sets the source address (IPv6 has no header checksum; upper-layer checksums that
    /// cover it must be updated by the caller).
    pub fn set_src_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&a.octets());
    }

    /// Sets the destination address (see [`Ipv6Packet::set_src_addr`]).
    pub fn set_dst_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&a.octets());
    }

    /// Mutable payload (fixed header end to payload length).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// The fixed-header fields this core builds or reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Repr {
    /// Source address.
    pub src_addr: Ipv6Addr,
    /// Destination address.
    pub dst_addr: Ipv6Addr,
    /// First next-header value.
    pub next_header: u8,
    /// Payload length in bytes.
    pub payload_len: usize,
    /// Hop limit.
    pub hop_limit: u8,
}

impl Ipv6Repr {
    /// Reads a checked packet's fixed header.
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv6Packet<T>) -> Result<Self> {
        p.check_len()?;
        Ok(Ipv6Repr {
            src_addr: p.src_addr(),
            dst_addr: p.dst_addr(),
            next_header: p.next_header(),
            payload_len: usize::from(p.payload_len()),
            hop_limit: p.hop_limit(),
        })
    }

    /// Length of what [`Ipv6Repr::emit`] writes.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the 40-byte fixed header (traffic class and flow label 0). The buffer must
    /// hold it.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Ipv6Packet<T>) {
        p.set_version_tc_flow(0, 0);
        p.set_payload_len(self.payload_len.min(usize::from(u16::MAX)) as u16);
        p.set_next_header(self.next_header);
        p.set_hop_limit(self.hop_limit);
        p.set_src_addr(self.src_addr);
        p.set_dst_addr(self.dst_addr);
    }
}

/// The sum (not complemented) of the IPv6 pseudo-header (RFC 8200 §8.1): addresses, the
/// upper-layer packet length (32 bits) and the next-header value.
pub fn pseudo_header(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, length: u32) -> u16 {
    let mut acc: u64 = 0;
    for a in [src.octets(), dst.octets()] {
        for w in a.chunks_exact(2) {
            acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
        }
    }
    acc += u64::from(length >> 16) + u64::from(length & 0xffff);
    acc += u64::from(next_header);
    checksum::fold(acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TCP SYN from 2001:db8::1 to 2001:db8::2 (port 40000 → 80), no extension headers:
    /// fixed header only, payload (the TCP header) elided to 20 zero bytes.
    fn tcp_packet(next: u8, exts: &[u8]) -> Vec<u8> {
        let mut b = vec![
            0x60, 0x00, 0x00, 0x00, // version 6, tc 0, flow 0
            0x00, 0x00, // payload length, below
            next, 0x40, // next header, hop limit 64
        ];
        b.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        b.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        b.extend_from_slice(exts);
        b.extend_from_slice(&[0u8; 20]);
        let plen = (b.len() - HEADER_LEN) as u16;
        b[4..6].copy_from_slice(&plen.to_be_bytes());
        b
    }

    #[test]
    fn fixed_header_fields() {
        let mut b = tcp_packet(6, &[]);
        b[1] = 0xb1; // tc 0x0b, flow label high nibble 1
        b[2] = 0x23;
        b[3] = 0x45;
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0x0b);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.payload_len(), 20);
        assert_eq!(p.next_header(), 6);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr(), "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.dst_addr(), "2001:db8::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.payload().len(), 20);
        let u = p.upper_layer(MAX_EXT_HEADERS).unwrap();
        assert_eq!(u.protocol, IpProtocol::TCP);
        assert_eq!(u.offset, 40);
        assert_eq!(u.ext_headers, 0);
        assert_eq!(u.fragment, None);
    }

    #[test]
    fn checked_rejects_bad_headers() {
        let b = tcp_packet(6, &[]);
        assert_eq!(
            Ipv6Packet::new_checked(&b[..39]).unwrap_err(),
            Error::Truncated
        );
        let mut v4 = b.clone();
        v4[0] = 0x45;
        assert_eq!(
            Ipv6Packet::new_checked(&v4[..]).unwrap_err(),
            Error::Malformed
        );
        // Payload length past the buffer.
        let mut long = b.clone();
        long[5] = 21;
        assert_eq!(
            Ipv6Packet::new_checked(&long[..]).unwrap_err(),
            Error::Malformed
        );
        // Ethernet padding after the payload is ignored.
        let mut padded = b.clone();
        padded.extend_from_slice(&[0; 6]);
        let p = Ipv6Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(p.payload().len(), 20);
        assert_eq!(p.packet().len(), 60);
    }

    #[test]
    fn walks_hop_by_hop_dest_opts_and_routing() {
        // HBH (8 bytes, PadN) -> DestOpts (16 bytes) -> Routing (type 0 segments left 0, 8
        // bytes) -> TCP.
        let mut exts = vec![next_header::DEST_OPTS, 0, 1, 4, 0, 0, 0, 0];
        exts.extend_from_slice(&[next_header::ROUTING, 1, 1, 12]);
        exts.extend_from_slice(&[0; 12]);
        exts.extend_from_slice(&[6, 0, 0, 0, 0, 0, 0, 0]);
        let b = tcp_packet(next_header::HOP_BY_HOP, &exts);
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        let u = p.upper_layer(MAX_EXT_HEADERS).unwrap();
        assert_eq!(u.protocol, IpProtocol::TCP);
        assert_eq!(u.offset, 40 + 32);
        assert_eq!(u.ext_headers, 3);
    }

    #[test]
    fn auth_header_counts_in_four_byte_units() {
        // AH with payload len 4 → (4 + 2) × 4 = 24 bytes, then UDP.
        let mut exts = vec![17, 4, 0, 0];
        exts.extend_from_slice(&[0; 20]);
        let b = tcp_packet(next_header::AUTH, &exts);
        let u = Ipv6Packet::new_checked(&b[..])
            .unwrap()
            .upper_layer(MAX_EXT_HEADERS)
            .unwrap();
        assert_eq!(u.protocol, IpProtocol::UDP);
        assert_eq!(u.offset, 40 + 24);
    }

    #[test]
    fn fragments_first_and_later() {
        // First fragment: offset 0, M=1, ident 0xdeadbeef; the TCP header follows.
        let first = tcp_packet(
            next_header::FRAGMENT,
            &[6, 0, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef],
        );
        let u = Ipv6Packet::new_checked(&first[..])
            .unwrap()
            .upper_layer(MAX_EXT_HEADERS)
            .unwrap();
        assert_eq!(u.protocol, IpProtocol::TCP);
        assert_eq!(u.offset, 48);
        assert_eq!(
            u.fragment,
            Some(Fragment {
                offset: 0,
                more: true,
                ident: 0xdead_beef
            })
        );
        assert!(!u.is_later_fragment());
        // A later fragment (offset 1448 = 181 × 8, M=0): no upper-layer header.
        let off = (1448u16).to_be_bytes();
        let later = tcp_packet(next_header::FRAGMENT, &[6, 0, off[0], off[1], 0, 0, 0, 7]);
        let u = Ipv6Packet::new_checked(&later[..])
            .unwrap()
            .upper_layer(MAX_EXT_HEADERS)
            .unwrap();
        assert!(u.is_later_fragment());
        assert_eq!(
            u.fragment.map(|f| (f.offset, f.more, f.ident)),
            Some((1448, false, 7))
        );
        assert_eq!(u.offset, 48);
    }

    #[test]
    fn chain_limits() {
        // n destination-options headers of 8 bytes each, then TCP.
        let chain = |n: usize| {
            let mut exts = Vec::new();
            for i in 0..n {
                let next = if i + 1 == n {
                    6
                } else {
                    next_header::DEST_OPTS
                };
                exts.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
            }
            tcp_packet(next_header::DEST_OPTS, &exts)
        };
        let seven = chain(7);
        let u = Ipv6Packet::new_checked(&seven[..])
            .unwrap()
            .upper_layer(MAX_EXT_HEADERS)
            .unwrap();
        assert_eq!((u.ext_headers, u.offset), (7, 40 + 56));
        for n in [8, 9, 20] {
            let b = chain(n);
            assert_eq!(
                Ipv6Packet::new_checked(&b[..])
                    .unwrap()
                    .upper_layer(MAX_EXT_HEADERS),
                Err(ChainError::TooLong),
                "{n} headers"
            );
        }
        // A header whose length runs past the payload.
        let mut b = tcp_packet(next_header::DEST_OPTS, &[6, 9, 0, 0, 0, 0, 0, 0]);
        let len = b.len();
        b.truncate(len - 20);
        let plen = (b.len() - HEADER_LEN) as u16;
        b[4..6].copy_from_slice(&plen.to_be_bytes());
        assert_eq!(
            Ipv6Packet::new_checked(&b[..])
                .unwrap()
                .upper_layer(MAX_EXT_HEADERS),
            Err(ChainError::Truncated)
        );
        // An extension header announced but no bytes of it.
        let empty = {
            let mut b = tcp_packet(next_header::HOP_BY_HOP, &[]);
            b.truncate(HEADER_LEN);
            b[4..6].copy_from_slice(&0u16.to_be_bytes());
            b
        };
        assert_eq!(
            Ipv6Packet::new_checked(&empty[..])
                .unwrap()
                .upper_layer(MAX_EXT_HEADERS),
            Err(ChainError::Truncated)
        );
    }

    #[test]
    fn never_panics_on_any_chain() {
        // Every next-header value at every position of short random payloads.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 64) as usize;
            let mut b = vec![0x60, 0, 0, 0, 0, len as u8, (seed >> 8) as u8, 64];
            b.extend_from_slice(&[0u8; 32]);
            let mut x = seed;
            for _ in 0..len {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                b.push((x >> 56) as u8);
            }
            let p = Ipv6Packet::new_checked(&b[..]).unwrap();
            if let Ok(u) = p.upper_layer(MAX_EXT_HEADERS) {
                assert!(u.offset <= b.len());
                assert!(u.ext_headers <= MAX_EXT_HEADERS);
            }
        }
    }

    #[test]
    fn repr_round_trip() {
        let r = Ipv6Repr {
            src_addr: "2001:db8:1::10".parse().unwrap(),
            dst_addr: "ff02::1:ff00:2".parse().unwrap(),
            next_header: next_header::ICMPV6,
            payload_len: 32,
            hop_limit: 255,
        };
        let mut buf = [0xaau8; 72];
        r.emit(&mut Ipv6Packet::new_unchecked(&mut buf[..]));
        assert_eq!(
            &buf[..8],
            &[0x60, 0, 0, 0, 0, 32, 58, 255],
            "version, length, next header, hop limit"
        );
        let p = Ipv6Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(Ipv6Repr::parse(&p).unwrap(), r);
    }

    #[test]
    fn pseudo_header_sum() {
        // By hand: the words of 2001:db8::1 and 2001:db8::2, length 20, next header 6.
        let s = pseudo_header(
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
            6,
            20,
        );
        let words: u32 = 0x2001 + 0x0db8 + 1 + 0x2001 + 0x0db8 + 2 + 20 + 6;
        assert_eq!(u32::from(s), words);
        // A length above 16 bits contributes both halves.
        let big = pseudo_header(Ipv6Addr::UNSPECIFIED, Ipv6Addr::UNSPECIFIED, 0, 0x0001_0002);
        assert_eq!(big, 3);
    }
}
