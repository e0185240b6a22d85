//! The connection table's index: an open-addressing hash index from a key's 64-bit hash to
//! a `u32` value (the table stores a key kind and a slab slot number in it), and the keyed
//! hash the table computes those hashes with.
//!
//! The index does not store keys. A lookup hashes the key, goes to the key's *home* bucket
//! and hands every value whose 16-bit tag matches to the caller's predicate, which checks
//! the key in the entry the value names (the entry the caller is about to read anyway). A
//! bucket is one 64-byte cache line: 10 tags, 10 values and a `passing` count, so a lookup
//! at a load factor up to 7/8 reads one line of the index almost always, and a miss reads
//! no entry unless a 16-bit tag collides (probability about 10 / 65 536 per bucket read).
//!
//! Invariants:
//! - A slot is empty iff its tag is [`EMPTY_TAG`]; a stored tag is never `EMPTY_TAG`.
//! - An entry is stored in the first bucket, from its home bucket on (wrapping), that had an
//!   empty slot when it was inserted, and every bucket from its home up to (not including)
//!   that one counts it in `passing`. So a lookup may stop at the first bucket with
//!   `passing == 0` (no entry stored later in the probe sequence started at or before it),
//!   and removal decrements `passing` along the same path: a removed slot is empty at once
//!   (no tombstones), so churn leaves no debris that lengthens probes and the index is
//!   only ever rebuilt to grow.
//! - `len <= 7/8 of the slots`: an insert that would pass that is refused
//!   ([`Upsert::Full`]); the caller rebuilds the index at least twice as big (a power of two
//!   of buckets) from its own records of the keys (the index cannot: it holds no keys and
//!   too few hash bits), so an insert always finds an empty slot and a probe is short.
//! - Values are opaque; the index never interprets them. Whoever inserts must not insert a
//!   second entry for a key it already holds ([`Index::upsert`] replaces instead).
//!
//! Hash flooding: clients choose the 5-tuples, so the hash must not be predictable.
//! [`FlowHasher`] is SipHash-1-3 (the function and round counts of std's `HashMap`) keyed
//! with 128 random bits per process, and both the home bucket and the tag come from its
//! output: without the key an attacker cannot aim flows at one bucket. It hashes whole
//! messages of 8-byte words: two for an IPv4 key ([`FlowHasher::hash`]), five for an
//! IPv6 key ([`FlowHasher::hash_words`]; the length is part of SipHash's input).

use std::hash::{BuildHasher, RandomState};

/// Slots per bucket: 10 × (2-byte tag + 4-byte value) + a 4-byte `passing` = 64 bytes.
pub const SLOTS: usize = 10;
/// The tag of an empty slot.
pub const EMPTY_TAG: u16 = 0;
/// Entries a rebuild reads the home buckets of before placing them.
const REBUILD_BATCH: usize = 32;

/// One cache line of the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C, align(64))]
struct Bucket {
    tags: [u16; SLOTS],
    vals: [u32; SLOTS],
    /// Entries whose home is at or before this bucket (in probe order) and that are stored
    /// after it.
    passing: u32,
}

impl Bucket {
    const EMPTY: Bucket = Bucket {
        tags: [EMPTY_TAG; SLOTS],
        vals: [0; SLOTS],
        passing: 0,
    };

    /// Bit `i` set iff `tags[i] == tag` (a loop the compiler turns into one vector compare).
    #[inline]
    fn matching(&self, tag: u16) -> u32 {
        let mut m = 0u32;
        for (i, &t) in self.tags.iter().enumerate() {
            m |= u32::from(t == tag) << i;
        }
        m
    }
}

/// The 16-bit tag of a hash (never [`EMPTY_TAG`]); independent of the home bucket's bits.
#[inline]
fn tag_of(hash: u64) -> u16 {
    let t = (hash >> 48) as u16;
    if t == EMPTY_TAG { 1 } else { t }
}

/// What [`Index::upsert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upsert {
    /// Replaced this value (the entry it names loses the key).
    Replaced(u32),
    /// Added an entry.
    Inserted,
    /// Not stored: no entry for the key and no room for one.
    Full,
}

/// An open-addressing index from hashes to `u32` values (module doc).
#[derive(Debug, Clone, Default)]
pub struct Index {
    buckets: Vec<Bucket>,
    len: usize,
}

impl Index {
    /// An empty index (allocates on the first insert).
    pub fn new() -> Self {
        Index::default()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Number of slots (entries it can hold is 7/8 of that).
    #[cfg(test)]
    pub fn slots(&self) -> usize {
        self.buckets.len() * SLOTS
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.buckets.capacity() * std::mem::size_of::<Bucket>()
    }

    #[inline]
    fn mask(&self) -> usize {
        self.buckets.len().wrapping_sub(1)
    }

    /// The first value stored under `hash` for which `is` holds (the caller checks the
    /// key in the entry the value names).
    #[inline]
    pub fn find(&self, hash: u64, mut is: impl FnMut(u32) -> bool) -> Option<u32> {
        let mask = self.mask();
        let tag = tag_of(hash);
        let mut b = hash as usize & mask;
        // `passing` ends every probe; the bound only guards a full revolution.
        for _ in 0..self.buckets.len() {
            let bucket = self.buckets.get(b)?;
            let mut m = bucket.matching(tag);
            while m != 0 {
                let i = m.trailing_zeros() as usize;
                m &= m - 1;
                if let Some(&v) = bucket.vals.get(i) {
                    if is(v) {
                        return Some(v);
                    }
                }
            }
            if bucket.passing == 0 {
                return None;
            }
            b = (b + 1) & mask;
        }
        None
    }

    /// Reads the home bucket of `hash` (and returns a word of it): a caller about to look
    /// up several keys touches them all first so that their cache misses overlap.
    #[inline]
    pub fn touch(&self, hash: u64) -> u32 {
        self.buckets
            .get(hash as usize & self.mask())
            .map_or(0, |b| b.passing)
    }

    /// Whether `n` more entries fit under the load factor.
    #[inline]
    pub fn has_room(&self, n: usize) -> bool {
        (self.len + n) * 8 <= self.buckets.len() * SLOTS * 7
    }

    /// Stores `val` under `hash`: replaces the value of the entry for which `is` holds, or
    /// adds an entry if [`Index::has_room`] for it ([`Upsert::Full`] otherwise: the caller
    /// rebuilds the index bigger and tries again).
    pub fn upsert(&mut self, hash: u64, val: u32, mut is: impl FnMut(u32) -> bool) -> Upsert {
        let mask = self.mask();
        let tag = tag_of(hash);
        let mut b = hash as usize & mask;
        for _ in 0..self.buckets.len() {
            let Some(bucket) = self.buckets.get_mut(b) else {
                break;
            };
            let mut m = bucket.matching(tag);
            while m != 0 {
                let i = m.trailing_zeros() as usize;
                m &= m - 1;
                if let Some(v) = bucket.vals.get_mut(i) {
                    if is(*v) {
                        return Upsert::Replaced(std::mem::replace(v, val));
                    }
                }
            }
            if bucket.passing == 0 {
                break;
            }
            b = (b + 1) & mask;
        }
        if !self.has_room(1) {
            return Upsert::Full;
        }
        self.place(hash, val);
        Upsert::Inserted
    }

    /// Empties the index and sizes it for `keys` entries (at least doubling it, a power of
    /// two of buckets under the load factor), then stores `entries` (`(hash, value)`, at
    /// most `keys` of them, none twice). The old buckets are freed first: growing never
    /// holds two generations of buckets.
    pub fn rebuild(&mut self, keys: usize, entries: impl IntoIterator<Item = (u64, u32)>) {
        let mut n = (self.buckets.len() * 2).max(1);
        while keys * 8 > n * SLOTS * 7 {
            n *= 2;
        }
        self.buckets = Vec::new();
        self.buckets = vec![Bucket::EMPTY; n];
        self.len = 0;
        // In batches: first read every home bucket of the batch (independent loads, so
        // their cache misses overlap), then place them (now in cache). A rebuild is
        // memory-bound; one miss at a time would take 2–3 times as long.
        let mut batch = [(0u64, 0u32); REBUILD_BATCH];
        let mut entries = entries.into_iter();
        loop {
            let mut n = 0;
            for (slot, e) in batch.iter_mut().zip(&mut entries) {
                *slot = e;
                n += 1;
            }
            let mut touched = 0u32;
            for &(hash, _) in batch.iter().take(n) {
                touched ^= self.touch(hash);
            }
            std::hint::black_box(touched);
            for &(hash, val) in batch.iter().take(n) {
                self.place(hash, val);
            }
            if n < REBUILD_BATCH {
                break;
            }
        }
    }

    /// Stores an entry in the first bucket with room from its home on (there is one while
    /// the index is not full; callers keep it under the load factor).
    fn place(&mut self, hash: u64, val: u32) {
        let mask = self.mask();
        let tag = tag_of(hash);
        let mut b = hash as usize & mask;
        for _ in 0..self.buckets.len() {
            let Some(bucket) = self.buckets.get_mut(b) else {
                return;
            };
            let empty = bucket.matching(EMPTY_TAG);
            if empty != 0 {
                let i = empty.trailing_zeros() as usize;
                if let (Some(t), Some(v)) = (bucket.tags.get_mut(i), bucket.vals.get_mut(i)) {
                    *t = tag;
                    *v = val;
                    self.len += 1;
                }
                return;
            }
            bucket.passing += 1;
            b = (b + 1) & mask;
        }
    }

    /// Removes the entry `val` stored under `hash`; false if there is none.
    pub fn remove(&mut self, hash: u64, val: u32) -> bool {
        let mask = self.mask();
        let tag = tag_of(hash);
        let home = hash as usize & mask;
        let mut b = home;
        let mut found = None;
        for _ in 0..self.buckets.len() {
            let Some(bucket) = self.buckets.get(b) else {
                break;
            };
            let mut m = bucket.matching(tag);
            while m != 0 {
                let i = m.trailing_zeros() as usize;
                m &= m - 1;
                if bucket.vals.get(i) == Some(&val) {
                    found = Some(i);
                    break;
                }
            }
            if found.is_some() || bucket.passing == 0 {
                break;
            }
            b = (b + 1) & mask;
        }
        let Some(i) = found else { return false };
        if let Some(t) = self.buckets.get_mut(b).and_then(|k| k.tags.get_mut(i)) {
            *t = EMPTY_TAG;
        }
        let mut p = home;
        while p != b {
            if let Some(bucket) = self.buckets.get_mut(p) {
                bucket.passing = bucket.passing.saturating_sub(1);
            }
            p = (p + 1) & mask;
        }
        self.len -= 1;
        true
    }

    /// Every stored value (tests).
    #[cfg(test)]
    pub fn values(&self) -> Vec<u32> {
        (self.buckets.iter())
            .flat_map(|b| b.tags.iter().zip(&b.vals))
            .filter(|&(&t, _)| t != EMPTY_TAG)
            .map(|(_, &v)| v)
            .collect()
    }

    /// Checks the invariants (tests): `passing` matches the probe paths, no bucket past the
    /// load factor, `len` matches.
    #[cfg(test)]
    pub fn check(&self, mut rehash: impl FnMut(u32) -> u64) {
        let mask = self.mask();
        let mut passing = vec![0u32; self.buckets.len()];
        let mut len = 0;
        for (b, bucket) in self.buckets.iter().enumerate() {
            for (&t, &v) in bucket.tags.iter().zip(&bucket.vals) {
                if t == EMPTY_TAG {
                    continue;
                }
                len += 1;
                let h = rehash(v);
                assert_eq!(tag_of(h), t, "tag of {v}");
                let mut p = h as usize & mask;
                while p != b {
                    passing[p] += 1;
                    p = (p + 1) & mask;
                }
            }
        }
        assert_eq!(len, self.len);
        assert!(self.len * 8 <= self.buckets.len() * SLOTS * 7 || self.len == 0);
        let got: Vec<u32> = self.buckets.iter().map(|b| b.passing).collect();
        assert_eq!(got, passing);
    }
}

/// SipHash-1-3 of two 64-bit words under a 128-bit key (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowHasher {
    k0: u64,
    k1: u64,
    /// Tests: every key hashes to this (same home bucket, same tag).
    #[cfg(test)]
    constant: Option<u64>,
}

impl FlowHasher {
    /// A hasher with a random key: std's `RandomState` is seeded from the OS once per
    /// process, and its SipHash output under that secret key is as unpredictable.
    pub fn random() -> Self {
        let s = RandomState::new();
        FlowHasher {
            k0: s.hash_one(0x6b30_u64),
            k1: s.hash_one(0x6b31_u64),
            #[cfg(test)]
            constant: None,
        }
    }

    /// A hasher with a fixed key (tests).
    #[cfg(test)]
    pub const fn with_keys(k0: u64, k1: u64) -> Self {
        FlowHasher {
            k0,
            k1,
            constant: None,
        }
    }

    /// A "hasher" under which every key collides (tests).
    #[cfg(test)]
    pub const fn colliding(hash: u64) -> Self {
        FlowHasher {
            k0: 0,
            k1: 0,
            constant: Some(hash),
        }
    }

    /// The hash of the 16-byte message `m0, m1` (little-endian words).
    #[inline]
    pub fn hash(&self, m0: u64, m1: u64) -> u64 {
        #[cfg(test)]
        if let Some(h) = self.constant {
            return h;
        }
        siphash::<1, 3>(self.k0, self.k1, m0, m1)
    }

    /// The hash of the `8 × N`-byte message `m` (little-endian words); for `N == 2` the
    /// same function as [`FlowHasher::hash`].
    #[inline]
    pub fn hash_words<const N: usize>(&self, m: [u64; N]) -> u64 {
        #[cfg(test)]
        if let Some(h) = self.constant {
            return h;
        }
        siphash_words::<1, 3, N>(self.k0, self.k1, m)
    }
}

#[inline(always)]
fn sipround(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13);
    v[1] ^= v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16);
    v[3] ^= v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21);
    v[3] ^= v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17);
    v[1] ^= v[2];
    v[2] = v[2].rotate_left(32);
}

/// SipHash-c-d of exactly 16 bytes given as two little-endian words.
#[inline(always)]
fn siphash<const C: usize, const D: usize>(k0: u64, k1: u64, m0: u64, m1: u64) -> u64 {
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    for m in [m0, m1, 16u64 << 56] {
        v[3] ^= m;
        for _ in 0..C {
            sipround(&mut v);
        }
        v[0] ^= m;
    }
    v[2] ^= 0xff;
    for _ in 0..D {
        sipround(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

/// SipHash-c-d of exactly `8 × N` bytes given as `N` little-endian words (`N < 32`, the
/// length byte).
#[inline(always)]
fn siphash_words<const C: usize, const D: usize, const N: usize>(
    k0: u64,
    k1: u64,
    m: [u64; N],
) -> u64 {
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    let len = ((8 * N) as u64 & 0xff) << 56;
    for w in m.into_iter().chain([len]) {
        v[3] ^= w;
        for _ in 0..C {
            sipround(&mut v);
        }
        v[0] ^= w;
    }
    v[2] ^= 0xff;
    for _ in 0..D {
        sipround(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// xorshift64*: reproducible pseudo-random test input.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
    }

    #[test]
    fn bucket_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<Bucket>(), 64);
        assert_eq!(std::mem::align_of::<Bucket>(), 64);
    }

    /// Our SipHash is the reference one: with 2-4 rounds it matches std's `SipHasher`.
    #[test]
    fn siphash_matches_std() {
        #[allow(deprecated)]
        use std::hash::{Hasher, SipHasher};
        let mut rng = Rng(7);
        for _ in 0..100 {
            let (k0, k1, m0, m1) = (rng.next(), rng.next(), rng.next(), rng.next());
            #[allow(deprecated)]
            let mut h = SipHasher::new_with_keys(k0, k1);
            let mut bytes = [0u8; 16];
            bytes[..8].copy_from_slice(&m0.to_le_bytes());
            bytes[8..].copy_from_slice(&m1.to_le_bytes());
            h.write(&bytes);
            assert_eq!(siphash::<2, 4>(k0, k1, m0, m1), h.finish());
        }
        // 1-3 is a different function of the same input.
        assert_ne!(siphash::<1, 3>(1, 2, 3, 4), siphash::<2, 4>(1, 2, 3, 4));
    }

    /// The many-word SipHash is the reference one too (40 bytes: an IPv6 key), and with
    /// two words it is the two-word function.
    #[test]
    fn siphash_words_matches_std() {
        #[allow(deprecated)]
        use std::hash::{Hasher, SipHasher};
        let mut rng = Rng(11);
        for _ in 0..100 {
            let (k0, k1) = (rng.next(), rng.next());
            let m = [rng.next(), rng.next(), rng.next(), rng.next(), rng.next()];
            #[allow(deprecated)]
            let mut h = SipHasher::new_with_keys(k0, k1);
            let bytes: Vec<u8> = m.iter().flat_map(|w| w.to_le_bytes()).collect();
            h.write(&bytes);
            assert_eq!(siphash_words::<2, 4, 5>(k0, k1, m), h.finish());
            let (m0, m1) = (m[0], m[1]);
            assert_eq!(
                siphash_words::<1, 3, 2>(k0, k1, [m0, m1]),
                siphash::<1, 3>(k0, k1, m0, m1)
            );
            let f = FlowHasher::with_keys(k0, k1);
            assert_eq!(f.hash_words([m0, m1]), f.hash(m0, m1));
            assert_eq!(f.hash_words(m), siphash_words::<1, 3, 5>(k0, k1, m));
        }
        // The length is part of the message: trailing zero words change the hash.
        let f = FlowHasher::with_keys(1, 2);
        assert_ne!(f.hash_words([3, 4]), f.hash_words([3, 4, 0, 0, 0]));
    }

    #[test]
    fn random_keys_differ_fixed_keys_do_not() {
        let a = FlowHasher::random();
        let b = FlowHasher::random();
        assert_ne!(a, b);
        assert_ne!(a.hash(1, 2), b.hash(1, 2));
        let f = FlowHasher::with_keys(1, 2);
        assert_eq!(f.hash(3, 4), FlowHasher::with_keys(1, 2).hash(3, 4));
        assert_ne!(f.hash(3, 4), f.hash(4, 3));
    }

    /// Upsert, rebuilding (from the index's own values) when full.
    fn upsert_by(
        ix: &mut Index,
        h: &dyn Fn(u32) -> u64,
        v: u32,
        is: &dyn Fn(u32) -> bool,
    ) -> Option<u32> {
        loop {
            match ix.upsert(h(v), v, is) {
                Upsert::Replaced(old) => return Some(old),
                Upsert::Inserted => return None,
                Upsert::Full => {
                    let all = ix.values();
                    ix.rebuild(all.len() + 1, all.into_iter().map(|x| (h(x), x)));
                }
            }
        }
    }

    /// The test map: values are keys, hashed by a function the test chooses.
    fn upsert(ix: &mut Index, h: &dyn Fn(u32) -> u64, v: u32) -> Option<u32> {
        upsert_by(ix, h, v, &|x| x == v)
    }

    /// Every entry in one home bucket: probes run through several full buckets, lookups
    /// find each, removals keep the others reachable and `passing` exact.
    #[test]
    fn forced_collisions() {
        let h = |_: u32| 0x1234_0000_0000_0003u64;
        let mut ix = Index::new();
        for v in 0..100 {
            assert_eq!(upsert(&mut ix, &h, v), None);
        }
        assert_eq!(upsert(&mut ix, &h, 42), Some(42), "replaced, not added");
        assert_eq!(ix.len(), 100);
        ix.check(h);
        for v in 0..100 {
            assert_eq!(ix.find(h(v), |x| x == v), Some(v));
        }
        assert_eq!(ix.find(h(0), |x| x == 100), None);
        // Remove every other entry, the early (passed) ones first.
        for v in (0..100).step_by(2) {
            assert!(ix.remove(h(v), v));
            assert!(!ix.remove(h(v), v));
            ix.check(h);
        }
        for v in 0..100 {
            assert_eq!(ix.find(h(v), |x| x == v).is_some(), v % 2 == 1, "{v}");
        }
        for v in (1..100).step_by(2) {
            assert!(ix.remove(h(v), v));
        }
        assert_eq!(ix.len(), 0);
        ix.check(h);
        // All passing counts are back to zero: a miss reads one bucket.
        assert!(ix.buckets.iter().all(|b| b.passing == 0));
    }

    /// Equal tags in different homes, and probe sequences that wrap around the end.
    #[test]
    fn tag_collisions_and_wrap() {
        let mut ix = Index::new();
        // Same tag everywhere; homes at the last buckets so probes wrap.
        let h = |v: u32| 0xabcd_0000_0000_0000u64 | u64::from(u32::MAX - v % 3);
        for v in 0..200 {
            upsert(&mut ix, &h, v);
        }
        ix.check(h);
        for v in 0..200 {
            assert_eq!(ix.find(h(v), |x| x == v), Some(v));
        }
        for v in (0..200).filter(|v| v % 3 != 1) {
            assert!(ix.remove(h(v), v));
        }
        ix.check(h);
        for v in 0..200 {
            assert_eq!(ix.find(h(v), |x| x == v).is_some(), v % 3 == 1);
        }
    }

    /// Tiny tables grow from one bucket, never past 7/8 full.
    #[test]
    fn growth_keeps_load_factor() {
        let hasher = FlowHasher::with_keys(3, 4);
        let h = move |v: u32| hasher.hash(u64::from(v), 0);
        let mut ix = Index::new();
        assert_eq!(ix.slots(), 0);
        assert_eq!(ix.find(1, |_| true), None);
        assert!(!ix.remove(1, 1));
        for v in 0..8 {
            upsert(&mut ix, &h, v);
        }
        assert_eq!(ix.slots(), SLOTS, "8 of 10 slots in one bucket");
        upsert(&mut ix, &h, 8);
        assert_eq!(ix.slots(), 2 * SLOTS);
        for v in 9..10_000 {
            upsert(&mut ix, &h, v);
            assert!(ix.len() * 8 <= ix.slots() * 7);
        }
        ix.check(h);
        assert_eq!(ix.heap_bytes(), ix.slots() / SLOTS * 64);
    }

    /// Churn at a steady size (insert one, remove the oldest) never grows the index and
    /// keeps every probe exact: no tombstones to pile up.
    #[test]
    fn churn_does_not_grow() {
        let hasher = FlowHasher::with_keys(5, 6);
        let h = move |v: u32| hasher.hash(u64::from(v), 1);
        let mut ix = Index::new();
        for v in 0..1000 {
            upsert(&mut ix, &h, v);
        }
        let slots = ix.slots();
        for v in 1000..200_000u32 {
            upsert(&mut ix, &h, v);
            assert!(ix.remove(h(v - 1000), v - 1000));
        }
        assert_eq!(ix.slots(), slots);
        assert_eq!(ix.len(), 1000);
        ix.check(h);
        for v in 0..200_000u32 {
            assert_eq!(ix.find(h(v), |x| x == v).is_some(), v >= 199_000);
        }
    }

    /// A full index says so instead of storing; a rebuild sizes it for what it is told.
    #[test]
    fn full_then_rebuild() {
        let h = |v: u32| u64::from(v).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut ix = Index::new();
        assert!(!ix.has_room(1));
        assert_eq!(ix.upsert(h(1), 1, |_| false), Upsert::Full);
        ix.rebuild(1, [(h(1), 1)]);
        assert_eq!(ix.slots(), SLOTS);
        for v in 2..=8 {
            assert_eq!(ix.upsert(h(v), v, |_| false), Upsert::Inserted);
        }
        assert_eq!(ix.upsert(h(9), 9, |_| false), Upsert::Full);
        assert_eq!(ix.upsert(h(3), 33, |x| x == 3), Upsert::Replaced(3));
        assert_eq!(ix.len(), 8);
        // Sized for 1000 at once; only the even ones stored.
        let keep: Vec<(u64, u32)> = (0..1000).step_by(2).map(|v| (h(v), v)).collect();
        ix.rebuild(1000, keep);
        assert_eq!(ix.slots(), 128 * SLOTS);
        assert_eq!(ix.len(), 500);
        ix.check(h);
        assert_eq!(ix.find(h(4), |x| x == 4), Some(4));
        assert_eq!(ix.find(h(5), |x| x == 5), None);
    }

    /// Random inserts, replacements, removals and lookups against a `HashMap` model, with
    /// a hash of few bits so that homes and tags collide often.
    #[test]
    fn model() {
        for (seed, bits) in [(1u64, 3u32), (2, 8), (3, 64)] {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            // Keys 0..2000 (value = key << 8 | version); hash: `bits` bits of a mix.
            let h = move |v: u32| {
                let x = u64::from(v >> 8).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                let x = x ^ (x >> 29);
                if bits == 64 {
                    x
                } else {
                    x & ((1 << bits) - 1) | x << 48
                }
            };
            let mut ix = Index::new();
            let mut model: HashMap<u32, u32> = HashMap::new();
            for op in 0..20_000 {
                let key = (rng.next() % 2000) as u32;
                let ver = (rng.next() % 256) as u32;
                let v = key << 8 | ver;
                match rng.next() % 4 {
                    0 | 1 => {
                        let old = upsert_by(&mut ix, &h, v, &|x| x >> 8 == key);
                        assert_eq!(old, model.insert(key, v), "op {op}");
                    }
                    2 => {
                        // Remove only if the stored value is this one (as the table does).
                        let want = model.get(&key) == Some(&v);
                        assert_eq!(ix.remove(h(v), v), want, "op {op}");
                        if want {
                            model.remove(&key);
                        }
                    }
                    _ => {
                        let got = ix.find(h(v), |x| x >> 8 == key);
                        assert_eq!(got, model.get(&key).copied(), "op {op}");
                    }
                }
                assert_eq!(ix.len(), model.len());
                if op % 1000 == 0 {
                    ix.check(h);
                }
            }
            ix.check(h);
            for (&k, &v) in &model {
                assert_eq!(ix.find(h(v), |x| x >> 8 == k), Some(v));
            }
        }
    }
}
