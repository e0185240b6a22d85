//! sh — source hashing, with the `sh-fallback` and `sh-port` flags (kernel
//! `net/netfilter/ipvs/ip_vs_sh.c`, spec b.11).
//!
//! Invariants:
//! - A table of [`SH_TAB_SIZE`] = 256 buckets, filled by `ip_vs_sh_reassign`: walk the
//!   buckets 0..255 with a current destination `p` (starting at the list head) and a
//!   count `c`; assign `p`, then `c += 1`, and when `c >= weight(p)` move `p` to the next
//!   destination (wrapping) and reset `c`. A destination of weight `w` therefore takes
//!   `w` consecutive buckets per cycle, and weights 0 and 1 each take exactly one: a
//!   quiesced destination keeps its bucket (lookups landing there fail or fall back).
//!   An empty list leaves every bucket empty.
//! - Rebuilt on add, delete **and** edit (the kernel's add/del/upd_dest hooks).
//! - Hash input: `addr` = the packet's source address; `port` = its source port when
//!   `sh-port` (flag 2) is set and the protocol carries ports (TCP, UDP), else 0.
//!   `key(offset) = (offset + hash_32(ntohs(port) + ntohl(fold(addr)), 8)) & 255`, the
//!   sum wrapping mod 2³²; `fold` is the address for IPv4 and the XOR of the four 32-bit
//!   words for IPv6 (`hash.rs`). The address is folded once per decision.
//! - `unavailable(d) = weight(d) == 0 || OVERLOAD(d)`.
//! - Without `sh-fallback` (flag 1): `table[key(0)]`, None if empty or unavailable.
//! - With it: the same first try; then for `off` in 0..256, `r = (off + key(0)) mod 256`,
//!   probe `table[key(r)]`. Because `key()` adds the raw hash again, the first probe is
//!   bucket `2·key(0) mod 256`, not `key(0) + 1` — the kernel's double-offset quirk, kept
//!   bit for bit. An empty bucket ends the search (None); the first available wins.
//! - Responses from a real server ("inverse" packets, where the kernel hashes the
//!   destination instead) never reach a scheduler in lvsd, so the source is always used.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use lvs_proto::{Protocol, SchedulerKind};

use super::hash::{fold, hash_32};
use super::{Dest, Explain, Flow, ListChange, SchedFlags, Scheduler};

/// `IP_VS_SH_TAB_BITS` (`CONFIG_IP_VS_SH_TAB_BITS`, default 8).
pub const SH_TAB_BITS: u32 = 8;
/// Number of buckets: 2⁸.
pub const SH_TAB_SIZE: usize = 1 << SH_TAB_BITS;
/// `IP_VS_SH_TAB_MASK`.
const SH_TAB_MASK: u32 = (1 << SH_TAB_BITS) - 1;

/// The sh bucket table: bucket → index into the destination list.
pub type ShTable = [Option<u8>; SH_TAB_SIZE];

/// `ip_vs_sh_reassign` for `n` destinations whose weights are `weight(0..n)`.
pub fn sh_fill(n: usize, weight: impl Fn(usize) -> u32) -> ShTable {
    let mut table = [None; SH_TAB_SIZE];
    if n == 0 {
        return table;
    }
    let mut p = 0usize;
    let mut count: u64 = 0;
    for slot in table.iter_mut() {
        // p moves at most once per bucket, so it is < 256 when assigned: fits in a u8.
        *slot = u8::try_from(p).ok();
        count += 1;
        if count >= u64::from(weight(p)) {
            p = (p + 1) % n;
            count = 0;
        }
    }
    table
}

/// The port the hashing schedulers mix in: the source port with flag 2 (`sh-port`,
/// `mh-port`) on a protocol with ports, else 0 (`ip_vs_sh_get_port`, `ip_vs_mh_get_port`).
pub(super) fn hashed_port(flags: SchedFlags, flow: &Flow) -> u16 {
    let has_ports = match flow.protocol {
        Protocol::Tcp | Protocol::Udp => true,
    };
    if flags.flag2 && has_ports {
        flow.src.port()
    } else {
        0
    }
}

/// `ip_vs_sh_hashkey(addr, port, offset)` of an IPv4 or IPv6 address.
// The by-address form, for tests and inspection; `schedule` folds once and uses `sh_key`.
#[cfg_attr(not(test), allow(dead_code))]
pub fn sh_hashkey(addr: impl Into<IpAddr>, port: u16, offset: u32) -> usize {
    sh_key(fold(addr.into()), port, offset)
}

/// `ip_vs_sh_hashkey` from the address already folded (`ntohl(addr_fold)`).
pub const fn sh_key(folded: u32, port: u16, offset: u32) -> usize {
    let h = hash_32((port as u32).wrapping_add(folded), SH_TAB_BITS);
    (offset.wrapping_add(h) & SH_TAB_MASK) as usize
}

/// Why a destination cannot be used (`None` if it can): the kernel's `is_unavailable`.
pub(super) fn unavailable(d: &Dest) -> Option<&'static str> {
    if d.weight == 0 {
        Some("weight 0")
    } else if d.overloaded {
        Some("overloaded")
    } else {
        None
    }
}

/// The lookup sh and mh share (`ip_vs_sh_schedule` / `ip_vs_mh_schedule`): the entry at
/// `ihash`; if it is unusable and `fallback` is set, probe `key(offset)` for offsets
/// `(ihash + off) % size`, off = 0, 1, … — the offset goes through the hash key again — and
/// stop at the first empty entry. `at` reads the table; `name`/`word` ("sh"/"bucket",
/// "mh"/"slot") only shape the explanation.
#[allow(clippy::too_many_arguments)]
pub(super) fn lookup<'d>(
    (name, word): (&str, &str),
    client: &Client,
    ihash: u32,
    size: u32,
    fallback: bool,
    key: impl Fn(u32) -> u32,
    at: impl Fn(u32) -> Option<(usize, &'d Dest)>,
    mut explain: Option<&mut Explain>,
) -> Option<usize> {
    let Some((i, d)) = at(ihash) else {
        if let Some(e) = explain {
            e.note(format_args!(
                "{name}: {client} {word} {ihash} empty -> no destination available"
            ));
        }
        return None;
    };
    let Some(why) = unavailable(d) else {
        if let Some(e) = explain {
            e.note(format_args!(
                "{name}: {client} {word} {ihash} -> {}",
                d.endpoint()
            ));
        }
        return Some(i);
    };
    if !fallback {
        if let Some(e) = explain {
            e.note(format_args!(
                "{name}: {client} {word} {ihash} -> {} unavailable ({why}), no fallback -> no destination available",
                d.endpoint()
            ));
        }
        return None;
    }
    for off in 0..size {
        // off, ihash < size: no overflow.
        let hash = key((off + ihash) % size);
        let Some((j, dj)) = at(hash) else {
            break;
        };
        if unavailable(dj).is_none() {
            if let Some(e) = explain.as_deref_mut() {
                e.note(format_args!(
                    "{name}: {client} {word} {ihash} -> {} unavailable ({why}); {word} {hash} -> {} (fallback, probe {})",
                    d.endpoint(),
                    dj.endpoint(),
                    off + 1
                ));
            }
            return Some(j);
        }
    }
    if let Some(e) = explain {
        e.note(format_args!(
            "{name}: {client} {word} {ihash} -> {} unavailable ({why}); fallback: no destination available",
            d.endpoint()
        ));
    }
    None
}

/// Source-hashing scheduler: the bucket table and the service's flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceHashing {
    flags: SchedFlags,
    table: ShTable,
}

impl SourceHashing {
    /// The kernel's `ip_vs_sh_init_svc`: fills the table from `dests`. `flags.flag1` is
    /// `sh-fallback`, `flags.flag2` is `sh-port`.
    pub fn new(dests: &[Dest], flags: SchedFlags) -> Self {
        SourceHashing {
            flags,
            table: Self::fill(dests),
        }
    }

    fn fill(dests: &[Dest]) -> ShTable {
        sh_fill(dests.len(), |i| dests.get(i).map_or(0, |d| d.weight))
    }

    /// The current table (for tests and inspection).
    pub fn table(&self) -> &ShTable {
        &self.table
    }

    /// The destination in `bucket`, if any (None for an empty bucket or a stale index).
    fn at<'a>(&self, dests: &'a [Dest], bucket: usize) -> Option<(usize, &'a Dest)> {
        let i = usize::from((*self.table.get(bucket)?)?);
        Some((i, dests.get(i)?))
    }
}

impl Scheduler for SourceHashing {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Sh
    }

    fn schedule(
        &mut self,
        _now: Instant,
        dests: &[Dest],
        flow: &Flow,
        explain: Option<&mut Explain>,
    ) -> Option<usize> {
        let addr = flow.src.ip();
        let folded = fold(addr);
        let port = hashed_port(self.flags, flow);
        let ihash = sh_key(folded, port, 0);
        let client = client(addr, port);
        lookup(
            ("sh", "bucket"),
            &client,
            // sh_key is masked to the table size.
            ihash as u32,
            SH_TAB_SIZE as u32,
            self.flags.flag1,
            |offset| sh_key(folded, port, offset) as u32,
            |bucket| self.at(dests, bucket as usize),
            explain,
        )
    }

    fn update(&mut self, dests: &[Dest], _change: ListChange) {
        // ip_vs_sh_dest_changed is the add, del and upd_dest hook.
        self.table = Self::fill(dests);
    }

    fn clone_box(&self) -> Box<dyn Scheduler> {
        Box::new(self.clone())
    }
}

/// The hashed client, printed as `addr`, or `addr:port` (`[addr]:port` for IPv6) when a
/// port is hashed.
pub(super) struct Client {
    addr: IpAddr,
    port: u16,
}

/// The hashed client for explanations.
pub(super) const fn client(addr: IpAddr, port: u16) -> Client {
    Client { addr, port }
}

impl std::fmt::Display for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.port == 0 {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}", SocketAddr::new(self.addr, self.port))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::super::tests::{t0, w};
    use super::*;

    const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

    /// A flow from `src:port` to the VIP of `src`'s family (192.0.2.1:80 or
    /// [2001:db8:f::10]:80).
    fn from(src: impl Into<IpAddr>, port: u16, protocol: Protocol) -> Flow {
        let src = src.into();
        let vip: IpAddr = match src {
            IpAddr::V4(_) => Ipv4Addr::new(192, 0, 2, 1).into(),
            IpAddr::V6(_) => V6_VIP.into(),
        };
        Flow {
            protocol,
            src: SocketAddr::new(src, port),
            dst: SocketAddr::new(vip, 80),
        }
    }

    const V6_CLIENT: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 0x10);
    const V6_VIP: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 0x10);

    const FALLBACK: SchedFlags = SchedFlags {
        flag1: true,
        flag2: false,
        flag3: false,
    };
    const PORT: SchedFlags = SchedFlags {
        flag1: false,
        flag2: true,
        flag3: false,
    };

    /// The kernel's hash, recomputed here from the formula (not via `sh_hashkey`).
    fn formula(addr: Ipv4Addr, port: u16) -> usize {
        let x = u64::from(port) + u64::from(u32::from(addr));
        let product = ((x & 0xffff_ffff) * 0x61C8_8647) & 0xffff_ffff;
        (product >> 24) as usize
    }

    #[test]
    fn fill_gives_each_destination_weight_consecutive_buckets() {
        // Weights A3 B1 C2: a cycle of 6 buckets A A A B C C, repeated.
        let t = sh_fill(3, |i| [3, 1, 2][i]);
        let cycle = [0, 0, 0, 1, 2, 2];
        for (i, slot) in t.iter().enumerate() {
            assert_eq!(*slot, Some(cycle[i % 6]), "bucket {i}");
        }
        // 256 = 42 × 6 + 4: A gets 42×3 + 3 (buckets 252..254), B 42 + 1 (255), C 84.
        let count = |k: u8| t.iter().filter(|&&s| s == Some(k)).count();
        assert_eq!((count(0), count(1), count(2)), (129, 43, 84));
    }

    #[test]
    fn fill_gives_weights_zero_and_one_one_bucket() {
        // Weights 0 and 1 both move on after one bucket (1 >= 0 and 1 >= 1).
        let t = sh_fill(3, |i| [0, 1, 2][i]);
        assert_eq!(
            &t[..8],
            &[
                Some(0),
                Some(1),
                Some(2),
                Some(2),
                Some(0),
                Some(1),
                Some(2),
                Some(2)
            ]
        );
        // Weight 300 > 256: the first destination takes every bucket.
        assert!(sh_fill(2, |i| [300, 1][i]).iter().all(|&s| s == Some(0)));
        assert!(sh_fill(0, |_| 1).iter().all(Option::is_none));
    }

    #[test]
    fn hash_is_hash_32_of_port_plus_address() {
        // 198.51.100.7 = 0xC6336407, no port: bucket 171 (formula in this test, and an
        // independent Python model agree).
        assert_eq!(sh_hashkey(CLIENT, 0, 0), formula(CLIENT, 0));
        assert_eq!(sh_hashkey(CLIENT, 0, 0), 171);
        // With port 40000 added before hashing: bucket 79.
        assert_eq!(sh_hashkey(CLIENT, 40000, 0), formula(CLIENT, 40000));
        assert_eq!(sh_hashkey(CLIENT, 40000, 0), 79);
        // The offset is added after hashing, masked to 8 bits.
        assert_eq!(sh_hashkey(CLIENT, 0, 100), (171 + 100) & 255);
        // 255.255.255.255 + port 65535 wraps mod 2³² without panicking.
        let all = Ipv4Addr::new(255, 255, 255, 255);
        assert_eq!(
            sh_hashkey(all, 65535, u32::MAX),
            (u32::MAX as usize + formula(all, 65535)) & 255
        );
    }

    #[test]
    fn picks_the_bucket_of_the_source_address() {
        // Weights 1,1,1: bucket b → destination b mod 3; bucket 171 → 0.
        let list = w(&[1, 1, 1]);
        let mut s = SourceHashing::new(&list, SchedFlags::NONE);
        let f = from(CLIENT, 40000, Protocol::Tcp);
        assert_eq!(s.schedule(t0(), &list, &f, None), Some(0));
        // Without sh-port the source port does not matter.
        let f2 = from(CLIENT, 1234, Protocol::Tcp);
        assert_eq!(s.schedule(t0(), &list, &f2, None), Some(0));
        // With sh-port, port 40000: bucket 79 → 79 mod 3 = 1.
        let mut s = SourceHashing::new(&list, PORT);
        assert_eq!(s.schedule(t0(), &list, &f, None), Some(1));
        // UDP carries ports too.
        let u = from(CLIENT, 40000, Protocol::Udp);
        assert_eq!(s.schedule(t0(), &list, &u, None), Some(1));
    }

    #[test]
    fn same_client_always_same_destination() {
        let list = w(&[2, 3, 1, 4]);
        let mut s = SourceHashing::new(&list, SchedFlags::NONE);
        for last in 1..=50u8 {
            let c = Ipv4Addr::new(203, 0, 113, last);
            let first = s.schedule(t0(), &list, &from(c, 1000, Protocol::Tcp), None);
            for port in [1001, 2000, 65535] {
                assert_eq!(
                    s.schedule(t0(), &list, &from(c, port, Protocol::Tcp), None),
                    first
                );
            }
        }
    }

    #[test]
    fn unavailable_without_fallback_is_none() {
        // Bucket 171 → destination 0 (of 3, weights 1).
        let mut list = w(&[0, 1, 1]);
        let mut s = SourceHashing::new(&list, SchedFlags::NONE);
        let f = from(CLIENT, 0, Protocol::Tcp);
        assert_eq!(s.schedule(t0(), &list, &f, None), None);
        list[0].weight = 1;
        list[0].overloaded = true;
        // Overload changes no table (no update needed) and is read live.
        assert_eq!(s.schedule(t0(), &list, &f, None), None);
    }

    /// The double-offset quirk: bucket key(0) = 171 holds an unavailable destination, so
    /// probe `off` looks at key((off + 171) mod 256) = (off + 2·171) mod 256: the first
    /// probe is bucket 342 mod 256 = 86, then 87, 88, ... — not 172.
    #[test]
    fn fallback_probes_with_the_double_offset() {
        // 4 destinations, weights 1: bucket b → b mod 4. 171 mod 4 = 3 (unavailable).
        // First probe: bucket 86 → 86 mod 4 = 2. Make 2 unavailable too: probe 2 is
        // bucket 87 → 3 (unavailable), probe 3 bucket 88 → 0.
        let mut list = w(&[1, 1, 1, 1]);
        list[3].weight = 0;
        let mut s = SourceHashing::new(&list, FALLBACK);
        let f = from(CLIENT, 0, Protocol::Tcp);
        assert_eq!(s.schedule(t0(), &list, &f, None), Some(2));
        list[2].overloaded = true;
        assert_eq!(s.schedule(t0(), &list, &f, None), Some(0));
        // (A naive "next bucket" fallback would have probed bucket 172 → 0 first.)
        // With 0 also unavailable, probe 4 is bucket 89 → 1.
        list[0].weight = 0;
        assert_eq!(s.schedule(t0(), &list, &f, None), Some(1));
        let mut e = Explain::new();
        s.schedule(t0(), &list, &f, Some(&mut e));
        assert_eq!(
            e.as_str(),
            "sh: 198.51.100.7 bucket 171 -> 192.0.2.14:80 unavailable (weight 0); \
             bucket 89 -> 192.0.2.12:80 (fallback, probe 4)"
        );
        // Everything unavailable: all 256 probes fail, None.
        list[1].overloaded = true;
        assert_eq!(s.schedule(t0(), &list, &f, None), None);
    }

    #[test]
    fn fallback_reaches_every_bucket() {
        // Only destination 5 of 256 weight-1 destinations is available; 256 probes of
        // (off + 2·ihash) mod 256 cover all buckets, so it is found for every client.
        let list: Vec<Dest> = (0..256)
            .map(|i| Dest::with_weight(u32::from(i == 5)))
            .collect();
        let mut s = SourceHashing::new(&list, FALLBACK);
        for last in 0..=255u8 {
            let f = from(Ipv4Addr::new(10, 0, 0, last), 0, Protocol::Tcp);
            assert_eq!(s.schedule(t0(), &list, &f, None), Some(5), "client .{last}");
        }
    }

    #[test]
    fn rebuilt_on_every_change() {
        let mut list = w(&[1, 1, 1]);
        let mut s = SourceHashing::new(&list, SchedFlags::NONE);
        list[0].weight = 3;
        s.update(&list, ListChange::Edited);
        assert_eq!(s.table(), &sh_fill(3, |i| [3, 1, 1][i]));
        list.insert(0, w(&[2])[0]);
        s.update(&list, ListChange::Added { index: 0 });
        assert_eq!(s.table(), &sh_fill(4, |i| [2, 3, 1, 1][i]));
        list.clear();
        s.update(&list, ListChange::Removed { index: 0 });
        assert!(s.table().iter().all(Option::is_none));
    }

    #[test]
    fn empty_list_and_stale_table_never_panic() {
        let mut s = SourceHashing::new(&[], FALLBACK);
        let f = from(CLIENT, 0, Protocol::Tcp);
        assert_eq!(s.schedule(t0(), &[], &f, None), None);
        let mut s = SourceHashing::new(&w(&[1, 1, 1, 1]), FALLBACK);
        assert_eq!(s.schedule(t0(), &w(&[1]), &f, None), None);
    }

    #[test]
    fn explains_the_bucket() {
        let list = w(&[1, 1, 1]);
        let mut s = SourceHashing::new(&list, PORT);
        let mut e = Explain::new();
        s.schedule(
            t0(),
            &list,
            &from(CLIENT, 40000, Protocol::Tcp),
            Some(&mut e),
        );
        assert_eq!(
            e.as_str(),
            "sh: 198.51.100.7:40000 bucket 79 -> 192.0.2.12:80"
        );
    }

    /// A list of IPv6 real servers 2001:db8:b::(11+i):80 with these weights.
    fn v6_list(weights: &[u32]) -> Vec<Dest> {
        weights
            .iter()
            .zip(0u16..)
            .map(|(&wt, i)| Dest {
                addr: Ipv6Addr::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, 0x11 + i).into(),
                port: 80,
                ..Dest::with_weight(wt)
            })
            .collect()
    }

    /// The kernel's IPv6 hash, written out: fold = XOR of the four big-endian 32-bit
    /// words (`ntohl` of the XOR of the network-order words), then `hash_32(port + fold, 8)`.
    fn formula_v6(addr: Ipv6Addr, port: u16) -> usize {
        let o = addr.octets();
        let word = |i: usize| u32::from_be_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
        let folded = word(0) ^ word(4) ^ word(8) ^ word(12);
        let x = (u64::from(port) + u64::from(folded)) & 0xffff_ffff;
        (((x * 0x61C8_8647) & 0xffff_ffff) >> 24) as usize
    }

    #[test]
    fn v6_hash_is_hash_32_of_port_plus_word_xor() {
        // 2001:db8:c::10: words 0x20010db8 ^ 0x000c0000 ^ 0 ^ 0x00000010 = 0x200d0da8.
        assert_eq!(super::super::hash::fold_v6(V6_CLIENT), 0x200d_0da8);
        // Bucket 12 without port, 175 with port 40000 (the formula here, and an
        // independent Python model of ip_vs_sh.c, agree).
        assert_eq!(sh_hashkey(V6_CLIENT, 0, 0), formula_v6(V6_CLIENT, 0));
        assert_eq!(sh_hashkey(V6_CLIENT, 0, 0), 12);
        assert_eq!(
            sh_hashkey(V6_CLIENT, 40000, 0),
            formula_v6(V6_CLIENT, 40000)
        );
        assert_eq!(sh_hashkey(V6_CLIENT, 40000, 0), 175);
        // IpAddr and Ipv6Addr give the same key; the v4 keys are unchanged.
        assert_eq!(sh_hashkey(IpAddr::from(V6_CLIENT), 0, 0), 12);
        assert_eq!(sh_hashkey(IpAddr::from(CLIENT), 0, 0), 171);
        // The XOR ignores word order: the same four words permuted land in the same
        // bucket (words 0x10, 0, 0x000c0000, 0x20010db8).
        let swapped = Ipv6Addr::new(0, 0x10, 0, 0, 0xc, 0, 0x2001, 0xdb8);
        assert_eq!(sh_hashkey(swapped, 0, 0), 12);
        for last in 0..=255u16 {
            let a = Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0xffff, last);
            assert_eq!(sh_hashkey(a, 443, 0), formula_v6(a, 443), "{a}");
        }
    }

    #[test]
    fn v6_client_picks_its_bucket_in_any_list() {
        // Weights 1,1,1: bucket b → b mod 3. Bucket 12 → 0; with sh-port, 175 → 1.
        let f = from(V6_CLIENT, 40000, Protocol::Tcp);
        for list in [w(&[1, 1, 1]), v6_list(&[1, 1, 1])] {
            let mut s = SourceHashing::new(&list, SchedFlags::NONE);
            assert_eq!(s.schedule(t0(), &list, &f, None), Some(0));
            let mut s = SourceHashing::new(&list, PORT);
            assert_eq!(s.schedule(t0(), &list, &f, None), Some(1));
        }
        // A mixed list (IPv4 and IPv6 real servers): the table ignores addresses.
        let mut mixed = v6_list(&[1, 1, 1]);
        mixed[1] = w(&[1, 1])[1];
        let mut s = SourceHashing::new(&mixed, PORT);
        let mut e = Explain::new();
        assert_eq!(s.schedule(t0(), &mixed, &f, Some(&mut e)), Some(1));
        assert_eq!(
            e.as_str(),
            "sh: [2001:db8:c::10]:40000 bucket 175 -> 192.0.2.12:80"
        );
        let list = v6_list(&[1, 1, 1]);
        let mut e = Explain::new();
        s.schedule(t0(), &list, &f, Some(&mut e));
        assert_eq!(
            e.as_str(),
            "sh: [2001:db8:c::10]:40000 bucket 175 -> [2001:db8:b::12]:80"
        );
    }

    /// The double-offset fallback for an IPv6 client: key(0) = 12, probe `off` is bucket
    /// (off + 2·12) mod 256 = 24, 25, ...
    #[test]
    fn v6_fallback_probes_with_the_double_offset() {
        // 4 weight-1 destinations: bucket b → b mod 4; 12 → 0 (quiesced). Probe 1 is
        // bucket 24 → 0 again, probe 2 bucket 25 → 1.
        let mut list = v6_list(&[0, 1, 1, 1]);
        let mut s = SourceHashing::new(&list, FALLBACK);
        let f = from(V6_CLIENT, 0, Protocol::Udp);
        let mut e = Explain::new();
        assert_eq!(s.schedule(t0(), &list, &f, Some(&mut e)), Some(1));
        assert_eq!(
            e.as_str(),
            "sh: 2001:db8:c::10 bucket 12 -> [2001:db8:b::11]:80 unavailable (weight 0); \
             bucket 25 -> [2001:db8:b::12]:80 (fallback, probe 2)"
        );
        // 1 overloaded: probe 3 is bucket 26 → 2.
        list[1].overloaded = true;
        assert_eq!(s.schedule(t0(), &list, &f, None), Some(2));
    }
}
