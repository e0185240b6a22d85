//! The internet checksum (RFC 1071) and its incremental updates.
//!
//! Vocabulary:
//! - A *sum* is the ones-complement sum of 16-bit big-endian words, folded to 16 bits and
//!   **not** complemented. [`data`], [`pseudo_header_v4`] and [`combine`] return sums.
//! - A *checksum* (what a complete header field holds) is `!sum`.
//! - A *partial* checksum field (Linux `CHECKSUM_PARTIAL`, virtio `NEEDS_CSUM`) holds the
//!   pseudo-header **sum**, not complemented; the device later adds the L4 bytes (with that
//!   field in place) and complements the result.
//!
//! Incremental updates, for a 16-bit word changing from `m` to `m'`:
//! - complete field, RFC 1624 eqn. 3: `HC' = ~(~HC + ~m + m')` ([`update16`], [`update32`]);
//! - partial field (a sum): `S' = S + ~m + m'` ([`partial_update16`], [`partial_update32`]).
//!
//! Because a ones-complement sum of anything that is not all zeros folds into `1..=0xFFFF`,
//! an incremental update and a recomputation from scratch give bit-identical fields. The
//! one special case is UDP, where a computed checksum of `0` is sent as `0xFFFF` and a field
//! of `0` means "no checksum": see [`udp_nonzero`].

use std::net::{Ipv4Addr, Ipv6Addr};

/// Ones-complement addition of two 16-bit values.
#[inline]
pub fn add(a: u16, b: u16) -> u16 {
    let s = u32::from(a) + u32::from(b);
    // At most one carry out of 16 bits, and adding it back cannot carry again.
    ((s & 0xffff) + (s >> 16)) as u16
}

/// Folds a wide accumulator of 16-bit words into a 16-bit ones-complement sum.
#[inline]
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The ones-complement sum of `bytes` as big-endian words (an odd last byte is padded with
/// a zero byte on the right).
pub fn data(bytes: &[u8]) -> u16 {
    let mut acc: u64 = 0;
    let mut chunks = bytes.chunks_exact(2);
    for w in &mut chunks {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u64::from(u16::from_be_bytes([*last, 0]));
    }
    fold(acc)
}

/// Ones-complement sum of several sums.
pub fn combine(sums: &[u16]) -> u16 {
    sums.iter().fold(0, |acc, &s| add(acc, s))
}

/// The sum of the IPv4 pseudo-header (RFC 793 / 768): addresses, protocol and L4 length.
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> u16 {
    let s = src.octets();
    let d = dst.octets();
    combine(&[
        u16::from_be_bytes([s[0], s[1]]),
        u16::from_be_bytes([s[2], s[3]]),
        u16::from_be_bytes([d[0], d[1]]),
        u16::from_be_bytes([d[2], d[3]]),
        u16::from(protocol),
        length,
    ])
}

/// RFC 1624 eqn. 3: the complete checksum `check` after a 16-bit word went `old` -> `new`.
#[inline]
pub fn update16(check: u16, old: u16, new: u16) -> u16 {
    !add(add(!check, !old), new)
}

/// [`update16`] for a 32-bit field (an IPv4 address), as its two 16-bit halves.
#[inline]
pub fn update32(check: u16, old: [u8; 4], new: [u8; 4]) -> u16 {
    let (oh, ol) = halves(old);
    let (nh, nl) = halves(new);
    !add(add(add(add(!check, !oh), !ol), nh), nl)
}

/// A partial (non-complemented) checksum field `sum` after a word inside the pseudo-header
/// went `old` -> `new`: subtract the old word, add the new one.
#[inline]
pub fn partial_update16(sum: u16, old: u16, new: u16) -> u16 {
    add(add(sum, !old), new)
}

/// [`partial_update16`] for a 32-bit pseudo-header field (an IPv4 address).
#[inline]
pub fn partial_update32(sum: u16, old: [u8; 4], new: [u8; 4]) -> u16 {
    let (oh, ol) = halves(old);
    let (nh, nl) = halves(new);
    add(add(add(add(sum, !oh), !ol), nh), nl)
}

/// A UDP checksum as it goes on the wire: a computed `0` is sent as `0xFFFF` (RFC 768),
/// because `0` in the field means "no checksum".
#[inline]
pub fn udp_nonzero(check: u16) -> u16 {
    if check == 0 { 0xffff } else { check }
}

/// Offset of the checksum field in the upper-layer header `protocol`: TCP (6) at 16, UDP
/// (17) at 6, ICMPv6 (58) at 2; `None` for anything else.
pub fn l4_field_offset(protocol: u8) -> Option<usize> {
    match protocol {
        6 => Some(16),
        17 => Some(6),
        58 => Some(2),
        _ => None,
    }
}

/// Computes from scratch and writes the TCP, UDP or ICMPv6 checksum of `l4` (the
/// upper-layer header and its payload, nothing after) carried in IPv6 from `src` to `dst`:
/// the IPv6
/// pseudo-header (RFC 8200 §8.1) with the upper-layer length `l4.len()`. A UDP result of 0
/// is sent as `0xFFFF` ([`udp_nonzero`]; IPv6 forbids an absent UDP checksum). `None`
/// (nothing written) for another protocol or an `l4` too short for the field.
pub fn fill_l4_v6(l4: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr, protocol: u8) -> Option<()> {
    let at = l4_field_offset(protocol)?;
    let len = u32::try_from(l4.len()).ok()?;
    l4.get_mut(at..at + 2)?.copy_from_slice(&[0, 0]);
    let sum = combine(&[
        super::ipv6::pseudo_header(src, dst, protocol, len),
        data(l4),
    ]);
    let mut check = !sum;
    if protocol == 17 {
        check = udp_nonzero(check);
    }
    l4.get_mut(at..at + 2)?
        .copy_from_slice(&check.to_be_bytes());
    Some(())
}

/// Whether the TCP, UDP or ICMPv6 checksum of `l4` (as in [`fill_l4_v6`]) is right. A UDP field of
/// 0 is wrong: over IPv6 the UDP checksum is mandatory.
pub fn verify_l4_v6(l4: &[u8], src: Ipv6Addr, dst: Ipv6Addr, protocol: u8) -> bool {
    let Some(at) = l4_field_offset(protocol) else {
        return false;
    };
    let Some(field) = l4.get(at..at + 2) else {
        return false;
    };
    if protocol == 17 && field == [0, 0] {
        return false;
    }
    let Ok(len) = u32::try_from(l4.len()) else {
        return false;
    };
    combine(&[
        super::ipv6::pseudo_header(src, dst, protocol, len),
        data(l4),
    ]) == 0xffff
}

fn halves(b: [u8; 4]) -> (u16, u16) {
    (
        u16::from_be_bytes([b[0], b[1]]),
        u16::from_be_bytes([b[2], b[3]]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071 section 3 worked example: words 0001 f203 f4f5 f6f7 sum to ddf2.
    #[test]
    fn rfc1071_example() {
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(data(&bytes), 0xddf2);
        assert_eq!(!data(&bytes), 0x220d);
    }

    #[test]
    fn odd_length_pads_right() {
        assert_eq!(data(&[0x12]), 0x1200);
        assert_eq!(data(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
        assert_eq!(data(&[]), 0);
    }

    /// RFC 1624 section 4 example: HC = 0xDD2F, m = 0x5555 -> m' = 0x3285 gives 0x0000
    /// with eqn. 3 (eqn. 2 would give the wrong 0xFFFF).
    #[test]
    fn rfc1624_example() {
        assert_eq!(update16(0xdd2f, 0x5555, 0x3285), 0x0000);
    }

    /// Incremental update equals recomputation, over many pseudo-random words, for both
    /// the complete and the partial flavour.
    #[test]
    fn incremental_equals_recompute() {
        let mut x: u32 = 0x1234_5678;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        for _ in 0..2000 {
            let mut words: Vec<u8> = (0..16).map(|_| next() as u8).collect();
            let i = (next() % 6) as usize * 2;
            let before_sum = data(&words);
            let before = !before_sum;
            let old = [words[i], words[i + 1], words[i + 2], words[i + 3]];
            let new = next().to_be_bytes();
            words[i..i + 4].copy_from_slice(&new);
            let after_sum = data(&words);
            assert_eq!(update32(before, old, new), !after_sum);
            assert_eq!(partial_update32(before_sum, old, new), after_sum);
            let o16 = u16::from_be_bytes([old[0], old[1]]);
            let n16 = u16::from_be_bytes([new[0], new[1]]);
            words[i + 2..i + 4].copy_from_slice(&old[2..4]);
            assert_eq!(update16(before, o16, n16), !data(&words));
            assert_eq!(partial_update16(before_sum, o16, n16), data(&words));
        }
    }

    /// The pseudo-header of a TCP segment 198.51.100.1 -> 203.0.113.10, length 20.
    #[test]
    fn pseudo_header_sum() {
        let s = pseudo_header_v4(
            Ipv4Addr::new(198, 51, 100, 1),
            Ipv4Addr::new(203, 0, 113, 10),
            6,
            20,
        );
        let by_hand = data(&[198, 51, 100, 1, 203, 0, 113, 10, 0, 6, 0, 20]);
        assert_eq!(s, by_hand);
    }

    /// IPv6 TCP/UDP checksums: filled ones verify, against a by-hand sum of the
    /// pseudo-header words; a flipped bit or a zero UDP field fails.
    #[test]
    fn l4_v6_fill_and_verify() {
        let src: Ipv6Addr = "2001:db8:c::10".parse().unwrap();
        let dst: Ipv6Addr = "2001:db8:f::10".parse().unwrap();
        // UDP 40000 -> 53, length 12, payload "abcd".
        let mut udp = [
            0x9c, 0x40, 0x00, 0x35, 0x00, 0x0c, 0x12, 0x34, b'a', b'b', b'c', b'd',
        ];
        fill_l4_v6(&mut udp, src, dst, 17).unwrap();
        let mut words = src.octets().to_vec();
        words.extend(dst.octets());
        words.extend([0, 0, 0, 12, 0, 0, 0, 17]);
        let mut zeroed = udp;
        zeroed[6..8].copy_from_slice(&[0, 0]);
        words.extend(zeroed);
        let expect = !data(&words);
        assert_eq!(u16::from_be_bytes([udp[6], udp[7]]), expect);
        assert!(verify_l4_v6(&udp, src, dst, 17));
        let other: Ipv6Addr = "2001:db8:c::11".parse().unwrap();
        assert!(!verify_l4_v6(&udp, other, dst, 17));
        assert!(!verify_l4_v6(&udp, src, dst, 6));
        let mut bad = udp;
        bad[9] ^= 1;
        assert!(!verify_l4_v6(&bad, src, dst, 17));
        let mut none = udp;
        none[6..8].copy_from_slice(&[0, 0]);
        assert!(!verify_l4_v6(&none, src, dst, 17));
        // TCP: field at 16; too short for it is refused without a panic.
        let mut tcp = [0u8; 20];
        tcp[12] = 0x50;
        fill_l4_v6(&mut tcp, src, dst, 6).unwrap();
        assert!(verify_l4_v6(&tcp, src, dst, 6));
        assert_eq!(fill_l4_v6(&mut tcp[..17], src, dst, 6), None);
        assert_eq!(fill_l4_v6(&mut tcp, src, dst, 1), None);
        // ICMPv6 (echo request): field at 2.
        let mut echo = [128u8, 0, 0xff, 0xff, 0, 1, 0, 1];
        fill_l4_v6(&mut echo, src, dst, 58).unwrap();
        assert!(verify_l4_v6(&echo, src, dst, 58));
        assert!(
            crate::wire::icmpv6::Icmpv6Packet::new_checked(&echo[..])
                .unwrap()
                .verify_checksum(src, dst)
        );
        assert!(!verify_l4_v6(&tcp[..10], src, dst, 6));
    }

    #[test]
    fn udp_zero_is_sent_as_ffff() {
        assert_eq!(udp_nonzero(0), 0xffff);
        assert_eq!(udp_nonzero(0x1234), 0x1234);
    }
}
