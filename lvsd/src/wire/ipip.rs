//! IPIP (IPv4 in IPv4, RFC 2003) for TUN forwarding: the outer header the director puts
//! in front of a client's packet, the fragmentation of that outer packet when the inner one
//! may be fragmented, and the decapsulating view a real server uses.
//!
//! Invariants:
//! - The outer header is always 20 bytes (no options), protocol 4, with a complete
//!   checksum; it copies the inner packet's DSCP/ECN byte and DF bit (as IPVS does); its
//!   TTL and identification are the caller's.
//! - Builders write into caller-owned buffers and return `None` (writing nothing useful)
//!   when the buffer is too short or a length would not fit the 16-bit total length; they
//!   never panic and never allocate.
//! - [`decapsulate`] takes untrusted bytes: the outer and the inner header are both
//!   checked (lengths, version, IHL, outer protocol 4, outer not a fragment) before the
//!   inner packet is handed out, cut to its own total length.

use std::net::Ipv4Addr;

use super::ipv4::{self, IpProtocol, Ipv4Packet};
use super::{Error, Result};

/// Bytes the encapsulation adds.
pub const OVERHEAD: usize = ipv4::MIN_HEADER_LEN;

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
        p.set_protocol(IpProtocol::IPIP);
        p.set_src_addr(self.src);
        p.set_dst_addr(self.dst);
        p.fill_checksum();
        Some(())
    }
}

/// Writes `outer` and then `inner` into `buf`; returns the outer packet's length.
pub fn encapsulate(buf: &mut [u8], outer: &Outer, inner: &[u8]) -> Option<usize> {
    let len = OVERHEAD.checked_add(inner.len())?;
    let dst = buf.get_mut(..len)?;
    outer.emit(dst, inner.len(), false, 0)?;
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
    unfragmentable.emit(dst, chunk.len(), more, start)?;
    dst.get_mut(OVERHEAD..)?.copy_from_slice(chunk);
    Some(len)
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
