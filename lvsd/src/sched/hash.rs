//! The hash functions of the IPVS hashing schedulers, bit-exact with a 64-bit Linux kernel.
//!
//! - [`hash_32`] is `include/linux/hash.h`'s `hash_32`: multiply by `GOLDEN_RATIO_32`
//!   (`0x61C88647`) modulo 2³² and keep the top `bits` bits. dh, sh, lblc and lblcr index
//!   their tables with it (`ip_vs_dh.c`, `ip_vs_sh.c`, `ip_vs_lblc.c`, `ip_vs_lblcr.c`).
//! - [`fold_v4`] / [`fold_v6`] give `ntohl(addr_fold)` of those files: the IPv4 address as a
//!   host-order integer, or for IPv6 the XOR of the four 32-bit words (the XOR commutes
//!   with the byte swap, so folding the big-endian words directly is the same; mh's
//!   `ipv6_addr_hash` variant, `(u32)(x ^ x >> 32)` of the XOR `x` of the two native
//!   64-bit halves, is the same four-word XOR on a little-endian CPU). [`fold`] picks by
//!   the address's own family, which is the service's for every packet address.
//! - [`fold_in`] is the fold with the family given separately, as the kernel reads a
//!   `union nf_inet_addr` under `svc->af`: mh hashes each real server's address that way,
//!   and a real server may be of the other family (tunnels). Under `AF_INET` only the
//!   first 32-bit word is read, so an IPv6 real server in an IPv4 service folds to its
//!   first word; under `AF_INET6` an IPv4 real server's union holds the address in the
//!   first word and zeros after it (the destination is zero-allocated and only `ip` is
//!   copied), so it folds to the IPv4 address itself.
//! - [`hsiphash_u32`] is `lib/siphash.c`'s `hsiphash()` applied to one 4-byte value, as
//!   `ip_vs_mh.c`'s `ip_vs_mh_hashkey` calls it (`hsiphash(&v, sizeof(v), key)`). On
//!   `BITS_PER_LONG == 64` kernels "hsiphash" is **SipHash-1-3** (not HalfSipHash) with the
//!   two `unsigned long` key words as the 64-bit keys `k0`, `k1`, and the result is the low
//!   32 bits of `v0 ^ v1 ^ v2 ^ v3`. The 4 input bytes are read little-endian, so on a
//!   little-endian CPU the final block is `(4 << 56) | v`.
//!
//! Kernel variants we do **not** reproduce: 32-bit kernels (there `hsiphash` is
//! HalfSipHash-1-3 with 32-bit keys, giving different mh tables) and big-endian CPUs (the
//! kernel hashes `v`'s in-memory bytes, which are swapped there). x86-64 and arm64, the
//! platforms lvsd targets, are both 64-bit little-endian.
//!
//! Everything here is a pure function of its inputs; no function panics.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::Family;

/// `GOLDEN_RATIO_32` of `include/linux/hash.h`: 2³² / φ, rounded, made odd (negated φ⁻¹).
pub const GOLDEN_RATIO_32: u32 = 0x61C8_8647;

/// The kernel's `hash_32(val, bits)`: `(val × 0x61C88647 mod 2³²) >> (32 − bits)`.
///
/// `bits` is the table's size in bits (8 for dh/sh, 10 for lblc/lblcr). `bits == 0` gives
/// 0 and `bits >= 32` the whole product (the kernel never uses either).
pub const fn hash_32(val: u32, bits: u32) -> u32 {
    let product = val.wrapping_mul(GOLDEN_RATIO_32);
    if bits == 0 {
        0
    } else if bits >= 32 {
        product
    } else {
        product >> (32 - bits)
    }
}

/// `ntohl(addr_fold)` for an IPv4 address: the address as a host-order integer
/// (192.0.2.1 → `0xC000_0201`).
pub const fn fold_v4(addr: Ipv4Addr) -> u32 {
    u32::from_be_bytes(addr.octets())
}

/// The four 32-bit words of an IPv6 address, as host-order integers (`ntohl(ip6[i])`).
const fn words_v6(addr: Ipv6Addr) -> [u32; 4] {
    let o = addr.octets();
    [
        u32::from_be_bytes([o[0], o[1], o[2], o[3]]),
        u32::from_be_bytes([o[4], o[5], o[6], o[7]]),
        u32::from_be_bytes([o[8], o[9], o[10], o[11]]),
        u32::from_be_bytes([o[12], o[13], o[14], o[15]]),
    ]
}

/// `ntohl(addr_fold)` for an IPv6 address: the XOR of its four 32-bit words.
pub const fn fold_v6(addr: Ipv6Addr) -> u32 {
    let [w0, w1, w2, w3] = words_v6(addr);
    w0 ^ w1 ^ w2 ^ w3
}

/// `ntohl(addr_fold)` of an address read under its own family: [`fold_v4`] or
/// [`fold_v6`]. This is the kernel's fold of every packet address (a packet is of its
/// service's family).
pub const fn fold(addr: IpAddr) -> u32 {
    match addr {
        IpAddr::V4(a) => fold_v4(a),
        IpAddr::V6(a) => fold_v6(a),
    }
}

/// `ntohl(addr_fold)` of `addr` stored in a `union nf_inet_addr` and read under family
/// `af` (the service's): an IPv6 address read as IPv4 is its first word; an IPv4 address
/// read as IPv6 XORs its word with three zero words, i.e. is itself.
pub const fn fold_in(af: Family, addr: IpAddr) -> u32 {
    match (af, addr) {
        (Family::V4, IpAddr::V6(a)) => words_v6(a)[0],
        _ => fold(addr),
    }
}

/// An `hsiphash_key_t` of a 64-bit kernel: two `unsigned long` words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HsipKey {
    /// `key[0]`.
    pub k0: u64,
    /// `key[1]`.
    pub k1: u64,
}

/// ip_vs_mh.c's first key (`hash1`, offsets and lookups): `{2654435761, 2654435761}`.
pub const MH_KEY1: HsipKey = HsipKey {
    k0: 2_654_435_761,
    k1: 2_654_435_761,
};

/// ip_vs_mh.c's second key (`hash2`, skips): `{2654446892, 2654446892}`.
pub const MH_KEY2: HsipKey = HsipKey {
    k0: 2_654_446_892,
    k1: 2_654_446_892,
};

/// The SipHash state `v0..v3`.
#[derive(Clone, Copy)]
struct Sip([u64; 4]);

impl Sip {
    /// The SipHash initialisation: `v0 = k0 ^ "somepseu"`, `v1 = k1 ^ "dorandom"`,
    /// `v2 = k0 ^ "lygenera"`, `v3 = k1 ^ "tedbytes"`.
    const fn new(key: HsipKey) -> Self {
        Sip([
            key.k0 ^ 0x736f_6d65_7073_6575,
            key.k1 ^ 0x646f_7261_6e64_6f6d,
            key.k0 ^ 0x6c79_6765_6e65_7261,
            key.k1 ^ 0x7465_6462_7974_6573,
        ])
    }

    /// One SipRound.
    const fn round(self) -> Self {
        let [mut v0, mut v1, mut v2, mut v3] = self.0;
        v0 = v0.wrapping_add(v1);
        v1 = v1.rotate_left(13);
        v1 ^= v0;
        v0 = v0.rotate_left(32);
        v2 = v2.wrapping_add(v3);
        v3 = v3.rotate_left(16);
        v3 ^= v2;
        v0 = v0.wrapping_add(v3);
        v3 = v3.rotate_left(21);
        v3 ^= v0;
        v2 = v2.wrapping_add(v1);
        v1 = v1.rotate_left(17);
        v1 ^= v2;
        v2 = v2.rotate_left(32);
        Sip([v0, v1, v2, v3])
    }

    /// `c` rounds.
    const fn rounds(mut self, c: u32) -> Self {
        let mut i = 0;
        while i < c {
            self = self.round();
            i += 1;
        }
        self
    }

    /// Absorbs one 64-bit little-endian message block with `c` compression rounds.
    const fn absorb(self, m: u64, c: u32) -> Self {
        let [v0, v1, v2, v3] = self.0;
        let s = Sip([v0, v1, v2, v3 ^ m]).rounds(c);
        let [v0, v1, v2, v3] = s.0;
        Sip([v0 ^ m, v1, v2, v3])
    }

    /// `v2 ^= 0xff`, `d` finalisation rounds, `v0 ^ v1 ^ v2 ^ v3`.
    const fn finish(self, d: u32) -> u64 {
        let [v0, v1, v2, v3] = self.0;
        let [v0, v1, v2, v3] = Sip([v0, v1, v2 ^ 0xff, v3]).rounds(d).0;
        v0 ^ v1 ^ v2 ^ v3
    }
}

/// SipHash-c-d of `data` (the reference algorithm; the final block carries
/// `len mod 256` in its top byte and the 0..7 trailing bytes little-endian below).
fn siphash_cd(key: HsipKey, data: &[u8], c: u32, d: u32) -> u64 {
    let mut s = Sip::new(key);
    let mut blocks = data.chunks_exact(8);
    for block in &mut blocks {
        let mut b = [0u8; 8];
        b.copy_from_slice(block);
        s = s.absorb(u64::from_le_bytes(b), c);
    }
    let mut last = [0u8; 8];
    let tail = blocks.remainder();
    last[..tail.len()].copy_from_slice(tail);
    // Only the low 8 bits of the length enter the hash (SipHash's definition).
    last[7] = (data.len() & 0xff) as u8;
    s.absorb(u64::from_le_bytes(last), c).finish(d)
}

/// A 64-bit kernel's `hsiphash(data, len, key)`: SipHash-1-3, truncated to 32 bits.
// The byte-slice form exists to check the core against the kernel's own test vectors;
// schedulers use `hsiphash_u32`.
#[cfg_attr(not(test), allow(dead_code))]
pub fn hsiphash(key: HsipKey, data: &[u8]) -> u32 {
    // Truncation to the low 32 bits is the kernel's `u32` return of a `u64` expression.
    siphash_cd(key, data, 1, 3) as u32
}

/// A 64-bit little-endian kernel's `hsiphash(&v, 4, key)` (= `hsiphash_1u32(v, key)`):
/// SipHash-1-3 of the 4 bytes of `v`, truncated to 32 bits.
///
/// Computed without a buffer: the only block is the final one, `(4 << 56) | v`.
pub const fn hsiphash_u32(key: HsipKey, v: u32) -> u32 {
    let b = (4u64 << 56) | v as u64;
    // Truncation to the low 32 bits is the kernel's `u32` return of a `u64` expression.
    Sip::new(key).absorb(b, 1).finish(3) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference test key `00 01 .. 0f`, read as two little-endian words (the key of
    /// the SipHash paper's vectors and of the kernel's `lib/siphash_kunit.c`).
    const TEST_KEY: HsipKey = HsipKey {
        k0: 0x0706_0504_0302_0100,
        k1: 0x0f0e_0d0c_0b0a_0908,
    };

    fn input(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i & 0xff) as u8).collect()
    }

    #[test]
    fn hash_32_is_golden_ratio_multiply_keep_top_bits() {
        // 1 × 0x61C88647 = 0x61C88647; its top 8 bits are 0x61 = 97.
        assert_eq!(hash_32(1, 8), 0x61);
        // Top 10 bits of 0x61C88647 = 0x61C88647 >> 22 = 0x187 = 391.
        assert_eq!(hash_32(1, 10), 0x187);
        // 0 × anything = 0.
        assert_eq!(hash_32(0, 8), 0);
        // 2 × 0x61C88647 = 0xC3910C8E (no wrap yet) → top byte 0xC3.
        assert_eq!(hash_32(2, 8), 0xC3);
        // 3 × 0x61C88647 = 0x1_2558_92D5 → wraps to 0x255892D5 → top byte 0x25.
        assert_eq!(hash_32(3, 8), 0x25);
        // 192.0.2.1 = 0xC0000201, by hand mod 2³²: 0xC0000000 × G = 3·G·2³⁰ → only the
        // low 2 bits of 3·G = 0x1_2558_92D5 (01) survive → 0x40000000; 0x200 × G =
        // 0xC3_910C_8E00 → 0x910C8E00; 0x1 × G = 0x61C88647. Sum 0x1_32D5_1447 → 0x32D51447,
        // top byte 0x32.
        assert_eq!(hash_32(0xC000_0201, 8), 0x32);
        assert_eq!(hash_32(0xC000_0201, 32), 0x32D5_1447);
        // bits edge cases never panic.
        assert_eq!(hash_32(12345, 0), 0);
        assert_eq!(hash_32(1, 32), GOLDEN_RATIO_32);
        assert_eq!(hash_32(1, 40), GOLDEN_RATIO_32);
    }

    #[test]
    fn fold_dispatches_on_the_family() {
        let v4: IpAddr = Ipv4Addr::new(192, 0, 2, 1).into();
        let v6: IpAddr = "2001:db8:b::11".parse().unwrap();
        assert_eq!(fold(v4), 0xC000_0201);
        // Words 0x20010db8, 0x000b0000, 0, 0x00000011 → 0x200a0da9.
        assert_eq!(fold(v6), 0x2001_0db8 ^ 0x000b_0000 ^ 0x0000_0011);
        assert_eq!(fold(v6), 0x200a_0da9);
        // Under the address's own family fold_in is fold.
        assert_eq!(fold_in(Family::V4, v4), fold(v4));
        assert_eq!(fold_in(Family::V6, v6), fold(v6));
        // IPv4 in an IPv6 service: the union's other words are zero → the address itself.
        assert_eq!(fold_in(Family::V6, v4), 0xC000_0201);
        // IPv6 in an IPv4 service: `addr->ip` is the first word only.
        assert_eq!(fold_in(Family::V4, v6), 0x2001_0db8);
        let other: IpAddr = "2001:db8:ffff::1".parse().unwrap();
        assert_eq!(fold_in(Family::V4, other), fold_in(Family::V4, v6));
        assert_ne!(fold(other), fold(v6));
    }

    /// mh's `ipv6_addr_hash` form on a 64-bit little-endian CPU: XOR the two native
    /// (little-endian) 64-bit halves, fold the result's halves, and `ntohl` it; the same
    /// as the XOR of the four big-endian words.
    #[test]
    fn ipv6_addr_hash_form_equals_the_word_xor() {
        for s in [
            "2001:db8:c::10",
            "2001:db8:b::11",
            "fe80::1:2:3:4",
            "::",
            "ff02::12",
        ] {
            let a: Ipv6Addr = s.parse().unwrap();
            let o = a.octets();
            let mut lo = [0u8; 8];
            let mut hi = [0u8; 8];
            lo.copy_from_slice(&o[..8]);
            hi.copy_from_slice(&o[8..]);
            let x = u64::from_le_bytes(lo) ^ u64::from_le_bytes(hi);
            // (u32)(x ^ (x >> 32)): the native-order fold, then ntohl = swap_bytes on LE.
            let native = (x ^ (x >> 32)) as u32;
            assert_eq!(native.swap_bytes(), fold_v6(a), "{s}");
        }
    }

    #[test]
    fn fold_is_host_order_address_and_xor_of_v6_words() {
        // ntohl of 192.0.2.1's network-order bytes c0 00 02 01.
        assert_eq!(fold_v4(Ipv4Addr::new(192, 0, 2, 1)), 0xC000_0201);
        // 2001:db8::1 words: 0x20010db8, 0, 0, 1 → XOR = 0x20010db9.
        assert_eq!(fold_v6("2001:db8::1".parse().unwrap()), 0x2001_0db9);
        // ::ffff:1.2.3.4 words: 0, 0, 0x0000ffff, 0x01020304 → 0x0102fcfb.
        assert_eq!(fold_v6("::ffff:1.2.3.4".parse().unwrap()), 0x0102_fcfb);
    }

    /// The core rounds, checked as SipHash-2-4 against the reference vectors
    /// (`vectors.h` of github.com/veorq/SipHash, also the kernel's `test_vectors_siphash`):
    /// key 00..0f, message 00 01 .. (len-1).
    #[test]
    fn siphash_2_4_matches_reference_vectors() {
        let vectors: [(usize, u64); 6] = [
            (0, 0x726f_db47_dd0e_0e31),
            (1, 0x74f8_39c5_93dc_67fd),
            (2, 0x0d6c_8009_d9a9_4f5a),
            (7, 0xab02_00f5_8b01_d137),
            (8, 0x93f5_f579_9a93_2462),
            // The SipHash paper's worked example (appendix A): 15 bytes → a129ca6149be45e5.
            (15, 0xa129_ca61_49be_45e5),
        ];
        for (len, want) in vectors {
            assert_eq!(siphash_cd(TEST_KEY, &input(len), 2, 4), want, "len {len}");
        }
    }

    /// 64-bit `hsiphash` against the kernel's own `test_vectors_hsiphash` (lib/siphash_kunit.c,
    /// `BITS_PER_LONG == 64` branch): key 00..0f as two LE words, message 00 01 .. (len-1).
    #[test]
    fn hsiphash_matches_kernel_64bit_vectors() {
        let vectors: [(usize, u32); 12] = [
            (0, 0x050f_c4dc),
            (1, 0x7d57_ca93),
            (2, 0x4dc7_d44d),
            (3, 0xe7dd_f7fb),
            (4, 0x88d3_8328),
            (5, 0x4953_3b67),
            (7, 0x9bb1_1140),
            (8, 0x8d29_9a8e),
            (9, 0x6c06_3de4),
            (15, 0x2a51_9956),
            (16, 0x7d90_8b66),
            (63, 0xb7bb_b3a8),
        ];
        for (len, want) in vectors {
            assert_eq!(hsiphash(TEST_KEY, &input(len)), want, "len {len}");
        }
    }

    /// The 4-byte fast path is the same function as the general one (the kernel's
    /// `hsiphash_1u32` equals `__hsiphash_aligned(.., 4, ..)`), incl. the kernel vector for
    /// len 4: bytes 00 01 02 03 = the little-endian u32 0x03020100.
    #[test]
    fn hsiphash_u32_is_hsiphash_of_the_le_bytes() {
        assert_eq!(hsiphash_u32(TEST_KEY, 0x0302_0100), 0x88d3_8328);
        for v in [0u32, 1, 0xC000_0201, 0xffff_ffff, 0x1234_5678] {
            for key in [MH_KEY1, MH_KEY2, TEST_KEY] {
                assert_eq!(hsiphash_u32(key, v), hsiphash(key, &v.to_le_bytes()));
            }
        }
    }

    /// A third, unrelated implementation: CPython ≥ 3.11 hashes bytes with SipHash-1-3,
    /// and `PYTHONHASHSEED=0` makes its key all zeros. `hash(b'\x00\x01\x02\x03')` printed
    /// 8990380680374275517 there, i.e. the full 64-bit SipHash-1-3 value.
    #[test]
    fn siphash_1_3_matches_cpython_zero_key() {
        let zero = HsipKey { k0: 0, k1: 0 };
        assert_eq!(
            siphash_cd(zero, &[0, 1, 2, 3], 1, 3),
            8_990_380_680_374_275_517
        );
        // Python's hash(b'') is special-cased to 0, so there is no vector for len 0.
    }

    #[test]
    fn mh_keys_are_the_kernel_constants() {
        // 2654435761 = 0x9E3779B1 (Knuth's golden-ratio prime), 2654446892 = 0x9E37A52C.
        assert_eq!(MH_KEY1.k0, 0x9E37_79B1);
        assert_eq!(MH_KEY2.k1, 0x9E37_A52C);
    }
}
