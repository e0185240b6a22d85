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

use std::net::Ipv4Addr;

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

    #[test]
    fn udp_zero_is_sent_as_ffff() {
        assert_eq!(udp_nonzero(0), 0xffff);
        assert_eq!(udp_nonzero(0x1234), 0x1234);
    }
}
