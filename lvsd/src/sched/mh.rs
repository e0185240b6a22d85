//! mh — Maglev hashing, IPVS flavour, with the `mh-fallback` and `mh-port` flags (kernel
//! `net/netfilter/ipvs/ip_vs_mh.c`, spec b.12).
//!
//! Invariants:
//! - The table has [`MH_TAB_SIZE`] = M = 4093 slots (`primes[CONFIG_IP_VS_MH_TAB_INDEX - 8]`
//!   with the default index 12). A list of more than M destinations is refused
//!   (`-EINVAL`): [`mh_populate`] returns [`TooManyDests`] and the scheduler keeps its
//!   previous table (the kernel's `ip_vs_mh_reassign` returns before touching it).
//! - Hash: [`mh_hashkey`] = the 64-bit kernel's `hsiphash` (SipHash-1-3, see `hash.rs`) of
//!   the 4-byte `v = offset + ntohs(port) + ntohl(fold(addr))` (wrapping mod 2³²), with
//!   the fixed keys `{2654435761, 2654435761}` (`hash1`) and `{2654446892, 2654446892}`
//!   (`hash2`). Every director therefore builds the same table for the same list.
//! - Families: `fold` is the IPv4 address, or the XOR of an IPv6 address's four 32-bit
//!   words. The kernel folds every address under the **service's** family (`svc->af`),
//!   also a real server's of the other family (tunnels): an IPv4 one in an IPv6 service
//!   folds to its own address (the union's other words are zero), but an IPv6 one in an
//!   IPv4 service folds to its **first 32-bit word** only (`hash.rs`, [`fold_in`]), so
//!   real servers sharing that word share their permutation. The scheduler therefore
//!   keeps the service family: given ([`MaglevHash::with_family`],
//!   `SchedParams::family`) or, if not, learned from the first flow's destination (the
//!   VIP). Until it is known each real server is folded under its own family, which is
//!   exact for every list except IPv6 real servers in an IPv4 service; learning IPv4
//!   with such a list rebuilds the table once, before that flow's lookup.
//! - Weights are `last_weight`s (the latest non-zero weight), so quiescing a destination
//!   with weight 0 keeps the table as it was; lookups landing on it fail or fall back.
//!   `g` = gcd of the last weights > 0; `rshift = max(0, fls(max_last_weight / g) − 6)`;
//!   `turns = (lw / g) >> rshift`, or 1 if that is 0 and `lw != 0`. If `g < 1` (empty list,
//!   or every last weight 0) the table is emptied.
//! - Permutation per destination: `offset = hash1(addr, port) mod M`,
//!   `skip = hash2(addr, port) mod (M − 1) + 1`; a destination's next preferred slot is
//!   `perm`, starting at `offset` and advancing by `skip` (mod M) past taken slots.
//! - Populate (`ip_vs_mh_populate`): rounds over the list in order, skipping destinations
//!   with `turns < 1`; the current destination claims its next free preferred slot, and
//!   claims again until it has claimed `turns` slots in this visit, then the next one
//!   goes; stop when all M slots are taken. Since M is prime every skip generates all
//!   slots, so when any last weight is > 0 every slot is filled (no holes).
//! - Rebuilt on add, delete and edit (the kernel's add/del/upd_dest hooks).
//! - Lookup: `addr` = the packet's source address, `port` = its source port with
//!   `mh-port` (flag 2) on TCP/UDP, else 0; slot `hash1(v(offset 0)) mod M`.
//!   `unavailable(d) = weight == 0 || OVERLOAD`. Without `mh-fallback` (flag 1) an empty
//!   or unavailable slot gives None. With it, for `off` in 0..M: `r = (off + slot) mod M`,
//!   probe slot `hash1(v(offset r)) mod M`; an empty slot ends the search (None), the
//!   first available destination wins.

use std::fmt;
use std::net::IpAddr;
use std::time::Instant;

use lvs_proto::SchedulerKind;

use super::hash::{HsipKey, MH_KEY1, MH_KEY2, fold, fold_in, hsiphash_u32};
use super::sh::{hashed_port, lookup};
use super::{Dest, Explain, Family, Flow, ListChange, SchedFlags, Scheduler};

/// The table sizes `CONFIG_IP_VS_MH_TAB_INDEX` 8..=17 select (`primes[]` of ip_vs_mh.c).
pub const MH_PRIMES: [u32; 10] = [
    251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071,
];
/// `CONFIG_IP_VS_MH_TAB_INDEX` (default 12).
pub const MH_CONFIG_TAB_INDEX: u32 = 12;
/// `IP_VS_MH_TAB_SIZE` = `primes[12 − 8]` = 4093.
pub const MH_TAB_SIZE: u32 = MH_PRIMES[(MH_CONFIG_TAB_INDEX - 8) as usize];
/// `IP_VS_MH_TAB_BITS` = `CONFIG_IP_VS_MH_TAB_INDEX / 2` = 6: the bits a destination's
/// `weight / gcd` may occupy before the weights are shifted down.
pub const MH_TAB_BITS: u32 = MH_CONFIG_TAB_INDEX / 2;

/// The mh table: slot → index into the destination list (M slots; indices < M ≤ u16::MAX).
pub type MhTable = Box<[Option<u16>]>;

/// More destinations than table slots: the kernel's `-EINVAL` from `ip_vs_mh_reassign`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TooManyDests {
    /// How many destinations the list had.
    pub dests: usize,
}

impl fmt::Display for TooManyDests {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "mh: {} destinations exceed the table size {MH_TAB_SIZE}",
            self.dests
        )
    }
}

impl std::error::Error for TooManyDests {}

/// `ip_vs_mh_hashkey(addr, port, key, offset)` of an address under its own family:
/// hsiphash of `v = offset + port + ntohl(fold(addr))` (wrapping, as the kernel's
/// `unsigned int`).
// The by-address form, for tests and inspection; `schedule` folds once and uses `mh_key`.
#[cfg_attr(not(test), allow(dead_code))]
pub fn mh_hashkey(key: HsipKey, addr: impl Into<IpAddr>, port: u16, offset: u32) -> u32 {
    mh_key(key, fold(addr.into()), port, offset)
}

/// `ip_vs_mh_hashkey` from the address already folded (`ntohl(addr_fold)`).
pub const fn mh_key(key: HsipKey, folded: u32, port: u16, offset: u32) -> u32 {
    let v = offset.wrapping_add(port as u32).wrapping_add(folded);
    hsiphash_u32(key, v)
}

/// Greatest common divisor (Euclid).
const fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

/// `fls`: 1-based index of the most significant set bit, 0 for 0.
const fn fls(x: u32) -> u32 {
    u32::BITS - x.leading_zeros()
}

/// `ip_vs_mh_gcd_weight`: gcd of the last weights > 0, or 0 if there are none.
pub fn mh_gcd_weight(dests: &[Dest]) -> u32 {
    dests
        .iter()
        .map(|d| d.last_weight)
        .filter(|&w| w > 0)
        .fold(0, |g, w| if g > 0 { gcd(w, g) } else { w })
}

/// `ip_vs_mh_shift_weight`: how far to shift `last_weight / gcd` down so the largest fits
/// in [`MH_TAB_BITS`] bits; 0 when `gcd < 1`.
pub fn mh_shift_weight(dests: &[Dest], gcd: u32) -> u32 {
    if gcd < 1 {
        return 0;
    }
    let max = dests.iter().map(|d| d.last_weight).max().unwrap_or(0);
    fls(max / gcd).saturating_sub(MH_TAB_BITS)
}

/// One destination's permutation parameters (`struct ip_vs_mh_dest_setup`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MhSetup {
    /// First preferred slot: `hash1(addr, port) mod M`.
    pub offset: u32,
    /// Step between preferred slots: `hash2(addr, port) mod (M − 1) + 1`, in 1..M.
    pub skip: u32,
    /// Slots claimed per visit: `(last_weight / gcd) >> rshift`, at least 1 if
    /// `last_weight != 0`, 0 otherwise.
    pub turns: u32,
}

/// `ip_vs_mh_permutate` for one destination, its address folded under its own family.
// For tests and inspection; the table is built with `mh_setup_in`.
#[cfg_attr(not(test), allow(dead_code))]
pub fn mh_setup(d: &Dest, gcd: u32, rshift: u32) -> MhSetup {
    mh_setup_in(None, d, gcd, rshift)
}

/// `ip_vs_mh_permutate` for one destination of a service of family `af` (`None`: fold
/// the address under its own family).
pub fn mh_setup_in(af: Option<Family>, d: &Dest, gcd: u32, rshift: u32) -> MhSetup {
    let folded = fold_in(af.unwrap_or(Family::of(d.addr)), d.addr);
    let offset = mh_key(MH_KEY1, folded, d.port, 0) % MH_TAB_SIZE;
    let skip = mh_key(MH_KEY2, folded, d.port, 0) % (MH_TAB_SIZE - 1) + 1;
    let shifted = d.last_weight.checked_div(gcd).unwrap_or(0) >> rshift.min(31);
    let turns = if shifted != 0 {
        shifted
    } else {
        u32::from(d.last_weight != 0)
    };
    MhSetup {
        offset,
        skip,
        turns,
    }
}

/// `ip_vs_mh_reassign`: the table for `dests` (list order), or [`TooManyDests`]; each
/// address folded under its own family (see [`mh_populate_in`]).
pub fn mh_populate(dests: &[Dest]) -> Result<MhTable, TooManyDests> {
    mh_populate_in(None, dests)
}

/// `ip_vs_mh_reassign` for a service of family `af` (`None`: each address under its own
/// family; the same table unless IPv6 real servers sit in an IPv4 service).
pub fn mh_populate_in(af: Option<Family>, dests: &[Dest]) -> Result<MhTable, TooManyDests> {
    let m = MH_TAB_SIZE as usize;
    if dests.len() > m {
        return Err(TooManyDests { dests: dests.len() });
    }
    let mut table: MhTable = vec![None; m].into_boxed_slice();
    let g = mh_gcd_weight(dests);
    if g < 1 {
        return Ok(table);
    }
    let rshift = mh_shift_weight(dests, g);
    // (setup, perm): perm is the destination's next candidate slot.
    let mut setups: Vec<(MhSetup, u32)> = dests
        .iter()
        .map(|d| {
            let s = mh_setup_in(af, d, g, rshift);
            (s, s.offset)
        })
        .collect();
    let mut filled = 0usize;
    let mut dt_count = 0u32;
    // g >= 1 means some last_weight > 0, i.e. some turns >= 1: every pass claims a slot,
    // and a free slot always exists while filled < M (every skip generates Z/M, M prime).
    while filled < m {
        let mut i = 0;
        while i < setups.len() {
            let (setup, perm) = &mut setups[i];
            if setup.turns < 1 {
                i += 1;
                continue;
            }
            let mut c = *perm as usize;
            while table.get(c).is_some_and(Option::is_some) {
                *perm += setup.skip;
                if *perm >= MH_TAB_SIZE {
                    *perm -= MH_TAB_SIZE;
                }
                c = *perm as usize;
            }
            if let Some(slot) = table.get_mut(c) {
                // i < dests.len() <= M = 4093: fits in a u16.
                *slot = u16::try_from(i).ok();
            }
            filled += 1;
            if filled == m {
                break;
            }
            dt_count += 1;
            if dt_count >= setup.turns {
                dt_count = 0;
                i += 1;
            }
        }
    }
    Ok(table)
}

/// Maglev-hashing scheduler: the lookup table, the service's flags and family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaglevHash {
    flags: SchedFlags,
    table: MhTable,
    /// The service's family, once known (module doc); the table is built for it.
    family: Option<Family>,
}

impl MaglevHash {
    /// The kernel's `ip_vs_mh_init_svc`. `flags.flag1` is `mh-fallback`, `flags.flag2` is
    /// `mh-port`. With more than [`MH_TAB_SIZE`] destinations the kernel refuses the
    /// service; here the table stays empty (every lookup gives None) — the configuration
    /// layer must refuse such a list (see [`mh_populate`]). The service family is learned
    /// from the first flow.
    pub fn new(dests: &[Dest], flags: SchedFlags) -> Self {
        Self::with_family(dests, flags, None)
    }

    /// [`MaglevHash::new`] for a service of family `family` (`None`: learned from the
    /// first flow).
    pub fn with_family(dests: &[Dest], flags: SchedFlags, family: Option<Family>) -> Self {
        let table = mh_populate_in(family, dests)
            .unwrap_or_else(|_| vec![None; MH_TAB_SIZE as usize].into_boxed_slice());
        MaglevHash {
            flags,
            table,
            family,
        }
    }

    /// The service family the table is built for, if known.
    pub fn family(&self) -> Option<Family> {
        self.family
    }

    /// Learns the service family from a flow's destination (the VIP) if unknown; rebuilds
    /// the table when that changes how a real server folds (IPv6 ones, IPv4 service). A
    /// refused rebuild (too many destinations) keeps the table, as `update` does.
    fn learn_family(&mut self, dests: &[Dest], flow: &Flow) {
        if self.family.is_some() {
            return;
        }
        let af = Family::of(flow.dst.ip());
        self.family = Some(af);
        if af == Family::V4 && dests.iter().any(|d| d.addr.is_ipv6()) {
            if let Ok(table) = mh_populate_in(Some(af), dests) {
                self.table = table;
            }
        }
    }

    /// The current table (for tests and inspection).
    pub fn table(&self) -> &[Option<u16>] {
        &self.table
    }

    /// The destination in `slot`, if any (None for an empty slot or a stale index).
    fn at<'a>(&self, dests: &'a [Dest], slot: u32) -> Option<(usize, &'a Dest)> {
        let i = usize::from((*self.table.get(slot as usize)?)?);
        Some((i, dests.get(i)?))
    }

    /// After a refused rebuild, keep the old table naming the same destinations: indices
    /// shift with the list, and a removed destination's slots become empty (the kernel's
    /// slots would keep pointing at it in the trash).
    fn remap(&mut self, change: ListChange) {
        for slot in self.table.iter_mut() {
            let Some(i) = *slot else { continue };
            let i = usize::from(i);
            *slot = match change {
                ListChange::Added { index } if i >= index => {
                    i.checked_add(1).and_then(|j| u16::try_from(j).ok())
                }
                ListChange::Removed { index } if i == index => None,
                ListChange::Removed { index } if i > index => u16::try_from(i - 1).ok(),
                _ => *slot,
            };
        }
    }
}

impl Scheduler for MaglevHash {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Mh
    }

    fn schedule(
        &mut self,
        _now: Instant,
        dests: &[Dest],
        flow: &Flow,
        explain: Option<&mut Explain>,
    ) -> Option<usize> {
        self.learn_family(dests, flow);
        let addr = flow.src.ip();
        let folded = fold(addr);
        let port = hashed_port(self.flags, flow);
        let client = super::sh::client(addr, port);
        let ihash = mh_key(MH_KEY1, folded, port, 0) % MH_TAB_SIZE;
        lookup(
            ("mh", "slot"),
            &client,
            ihash,
            MH_TAB_SIZE,
            self.flags.flag1,
            |offset| mh_key(MH_KEY1, folded, port, offset) % MH_TAB_SIZE,
            |slot| self.at(dests, slot),
            explain,
        )
    }

    fn update(&mut self, dests: &[Dest], change: ListChange) {
        // ip_vs_mh_dest_changed is the add, del and upd_dest hook.
        match mh_populate_in(self.family, dests) {
            Ok(table) => self.table = table,
            Err(TooManyDests { .. }) => self.remap(change),
        }
    }

    fn clone_box(&self) -> Box<dyn Scheduler> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

    use lvs_proto::Protocol;

    use super::super::tests::{t0, w};
    use super::*;

    const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
    const M: usize = MH_TAB_SIZE as usize;

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

    /// A TCP flow from `src:port` to the VIP of `src`'s family (192.0.2.1:80 or
    /// [2001:db8:f::10]:80).
    fn from(src: impl Into<IpAddr>, port: u16) -> Flow {
        let src = src.into();
        let vip: IpAddr = match src {
            IpAddr::V4(_) => Ipv4Addr::new(192, 0, 2, 1).into(),
            IpAddr::V6(_) => Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 0x10).into(),
        };
        Flow {
            protocol: Protocol::Tcp,
            src: SocketAddr::new(src, port),
            dst: SocketAddr::new(vip, 80),
        }
    }

    fn table(dests: &[Dest]) -> MhTable {
        mh_populate(dests).unwrap()
    }

    fn counts(t: &[Option<u16>]) -> HashMap<Option<u16>, usize> {
        let mut c = HashMap::new();
        for s in t {
            *c.entry(*s).or_insert(0) += 1;
        }
        c
    }

    /// `n` weight-`weight` destinations 10.0.x.y:80 (distinct for n up to 62 500).
    fn many(n: usize, weight: u32) -> Vec<Dest> {
        (0..n)
            .map(|i| Dest {
                addr: Ipv4Addr::new(
                    10,
                    0,
                    u8::try_from(i / 250).unwrap(),
                    u8::try_from(i % 250 + 1).unwrap(),
                )
                .into(),
                port: 80,
                ..Dest::with_weight(weight)
            })
            .collect()
    }

    #[test]
    fn table_size_is_the_fifth_prime() {
        // primes[12 − 8] = primes[4] = 4093; TAB_BITS = 12 / 2 = 6.
        assert_eq!(MH_TAB_SIZE, 4093);
        assert_eq!(MH_TAB_BITS, 6);
    }

    /// Offsets and skips of the test destinations 192.0.2.11..13:80, from an independent
    /// Python model of ip_vs_mh.c (its SipHash checked against CPython's own SipHash-1-3
    /// and the kernel's hsiphash vectors).
    #[test]
    fn permutation_parameters_match_the_model() {
        let list = w(&[1, 1, 1, 1, 1]);
        let want = [
            (3880, 1853),
            (1228, 3320),
            (2261, 1546),
            (2547, 1965),
            (3987, 1966),
        ];
        for (d, (offset, skip)) in list.iter().zip(want) {
            let s = mh_setup(d, 1, 0);
            assert_eq!(
                (s.offset, s.skip, s.turns),
                (offset, skip, 1),
                "{}",
                d.endpoint()
            );
        }
        // The port is part of v: a different port gives a different offset.
        let other = Dest {
            port: 81,
            ..list[0]
        };
        assert_ne!(mh_setup(&other, 1, 0).offset, 3880);
    }

    /// The first rounds of populate, by hand from the parameters above (weights 1: one
    /// slot per destination per round, in list order).
    #[test]
    fn populate_claims_preferred_slots_round_by_round() {
        let t = table(&w(&[1, 1, 1]));
        // Round 1: each claims its offset (all distinct).
        assert_eq!((t[3880], t[1228], t[2261]), (Some(0), Some(1), Some(2)));
        // Round 2: each offset is taken (by itself), so each steps by its skip:
        // A 3880 + 1853 − 4093 = 1640, B 1228 + 3320 − 4093 = 455, C 2261 + 1546 = 3807.
        assert_eq!((t[1640], t[455], t[3807]), (Some(0), Some(1), Some(2)));
    }

    /// Slot counts follow the turns per round exactly.
    #[test]
    fn slots_are_proportional_to_weight_within_turns_rounding() {
        let c = |ws: &[u32]| {
            let t = table(&w(ws));
            (0..ws.len())
                .map(|i| counts(&t).get(&u16::try_from(i).ok()).copied().unwrap_or(0))
                .collect::<Vec<_>>()
        };
        // Weights 1,1,1: 3 slots per round, 4093 = 1364 × 3 + 1; the extra goes to the
        // first in list order.
        assert_eq!(c(&[1, 1, 1]), [1365, 1364, 1364]);
        // 1,2,3: 6 per round, 4093 = 682 × 6 + 1 → 683, 1364, 2046.
        assert_eq!(c(&[1, 2, 3]), [683, 1364, 2046]);
        // 4,3,2: 9 per round, 4093 = 454 × 9 + 7; the last partial round gives A 4, B 3
        // → 1820, 1365, 908.
        assert_eq!(c(&[4, 3, 2]), [1820, 1365, 908]);
        // 5,1,5,1: 12 per round, 4093 = 341 × 12 + 1 → 1706, 341, 1705, 341.
        assert_eq!(c(&[5, 1, 5, 1]), [1706, 341, 1705, 341]);
        // gcd scaling: 20,40,60 behave like 1,2,3.
        assert_eq!(c(&[20, 40, 60]), [683, 1364, 2046]);
        // rshift: 1000,10 → gcd 10, 100 / 1; fls(100) = 7 > 6 → rshift 1; turns 50 and
        // (1 >> 1 = 0 → 1). 51 per round, 4093 = 80 × 51 + 13 → 4013, 80.
        assert_eq!(c(&[1000, 10]), [4013, 80]);
    }

    #[test]
    fn gcd_and_shift_follow_the_kernel() {
        assert_eq!(mh_gcd_weight(&w(&[0, 6, 4, 0])), 2);
        assert_eq!(mh_gcd_weight(&w(&[0, 0])), 0);
        assert_eq!(mh_gcd_weight(&[]), 0);
        // max 65535 / 1 has 16 bits → shift 10.
        assert_eq!(mh_shift_weight(&w(&[65535, 1]), 1), 10);
        // 63 / 1 has 6 bits → no shift; 64 has 7 → shift 1.
        assert_eq!(mh_shift_weight(&w(&[63, 1]), 1), 0);
        assert_eq!(mh_shift_weight(&w(&[64, 1]), 1), 1);
        assert_eq!(mh_shift_weight(&w(&[64]), 0), 0);
    }

    #[test]
    fn no_holes_whenever_any_last_weight_is_positive() {
        for ws in [
            &[1][..],
            &[0, 1, 0, 1],
            &[65535, 1, 7, 300],
            &[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
            &[3, 0, 0],
        ] {
            let t = table(&w(ws));
            assert!(t.iter().all(Option::is_some), "hole with weights {ws:?}");
        }
        // A single destination fills the whole ring.
        assert_eq!(counts(&table(&w(&[7])))[&Some(0)], M);
        // last_weight 0 (added with weight 0) never enters the table.
        let t = table(&w(&[0, 1, 0, 1]));
        assert_eq!(counts(&t).get(&Some(0)), None);
        assert_eq!(counts(&t).get(&Some(2)), None);
        // Empty list or all last weights 0: the table is empty.
        assert!(table(&[]).iter().all(Option::is_none));
        assert!(table(&w(&[0, 0])).iter().all(Option::is_none));
    }

    #[test]
    fn deterministic_across_builds_and_directors() {
        let list = w(&[3, 1, 4, 1, 5]);
        assert_eq!(table(&list), table(&list));
        let a = MaglevHash::new(&list, SchedFlags::NONE);
        let b = MaglevHash::new(&list, FALLBACK);
        assert_eq!(a.table(), b.table());
    }

    /// The slots whose destination (by address) differs between two tables.
    fn moved(before: &[Dest], after: &[Dest]) -> f64 {
        let name = |list: &[Dest], s: Option<u16>| s.map(|i| list[usize::from(i)].endpoint());
        let (tb, ta) = (table(before), table(after));
        let n = tb
            .iter()
            .zip(ta.iter())
            .filter(|(b, a)| name(before, **b) != name(after, **a))
            .count();
        n as f64 / M as f64
    }

    /// Removing or adding one of N equal servers moves about 1/N of the slots (the ideal:
    /// only the removed one's, or the new one's share), within 5 points.
    #[test]
    fn low_disruption_when_one_server_is_added_or_removed() {
        for n in [5usize, 10, 20] {
            let base = many(n, 1);
            let mut removed = base.clone();
            removed.remove(n / 2);
            let f = moved(&base, &removed);
            let ideal = 1.0 / n as f64;
            println!(
                "mh remove 1 of {n}: {:.2}% of slots moved (ideal {:.2}%)",
                f * 100.0,
                ideal * 100.0
            );
            assert!(f >= ideal - 0.01 && f <= ideal + 0.05, "remove of {n}: {f}");
            // Adding at the head, as IPVS does.
            let mut added = many(n + 1, 1);
            let new = added.remove(n);
            added.insert(0, new);
            let f = moved(&base, &added);
            let ideal = 1.0 / (n + 1) as f64;
            println!(
                "mh add 1 to {n}: {:.2}% of slots moved (ideal {:.2}%)",
                f * 100.0,
                ideal * 100.0
            );
            assert!(f >= ideal - 0.01 && f <= ideal + 0.05, "add to {n}: {f}");
        }
    }

    #[test]
    fn quiescing_with_weight_zero_does_not_reshuffle() {
        let mut list = w(&[3, 2, 1]);
        let mut s = MaglevHash::new(&list, SchedFlags::NONE);
        let before = s.table().to_vec();
        // Quiesce 0: weight 0, last_weight stays 3 (the dataplane keeps it).
        list[0].weight = 0;
        s.update(&list, ListChange::Edited);
        assert_eq!(s.table(), &before[..]);
        // A real weight change does reshuffle.
        list[0].weight = 1;
        list[0].last_weight = 1;
        s.update(&list, ListChange::Edited);
        assert_ne!(s.table(), &before[..]);
    }

    #[test]
    fn rejects_more_destinations_than_slots() {
        assert_eq!(
            mh_populate(&many(M + 1, 1)),
            Err(TooManyDests { dests: M + 1 })
        );
        // Exactly M weight-1 destinations: one round fills the table, one slot each.
        let t = table(&many(M, 1));
        let c = counts(&t);
        assert!(c.len() == M && c.values().all(|&n| n == 1));
        // A refused rebuild keeps the old table, naming the same destinations.
        let names = |s: &MaglevHash, list: &[Dest]| -> Vec<Option<SocketAddr>> {
            s.table()
                .iter()
                .map(|x| x.map(|i| list[usize::from(i)].endpoint()))
                .collect()
        };
        let mut list = many(M, 1);
        let mut s = MaglevHash::new(&list, SchedFlags::NONE);
        let before = names(&s, &list);
        for k in 1..=2u8 {
            let extra = Dest {
                addr: Ipv4Addr::new(10, 99, 0, k).into(),
                ..list[0]
            };
            list.insert(0, extra);
            s.update(&list, ListChange::Added { index: 0 });
            assert_eq!(names(&s, &list), before, "after adding {k} over the limit");
        }
        // Removing from the still over-full list (M + 1 left): the removed one's slot
        // empties, the others stay.
        let gone = list.remove(5);
        s.update(&list, ListChange::Removed { index: 5 });
        for (b, a) in before.iter().zip(names(&s, &list)) {
            if *b == Some(gone.endpoint()) {
                assert_eq!(a, None);
            } else {
                assert_eq!(a, *b);
            }
        }
        // Back to M: rebuilt normally, no holes.
        list.remove(0);
        s.update(&list, ListChange::Removed { index: 0 });
        assert!(s.table().iter().all(Option::is_some));
        // A new scheduler for an over-full list never picks and never panics.
        let list = many(M + 1, 1);
        let mut s = MaglevHash::new(&list, FALLBACK);
        assert_eq!(s.schedule(t0(), &list, &from(CLIENT, 1), None), None);
    }

    /// Lookup slots for 198.51.100.7 from the model: 924 without port, 1707 with port
    /// 40000; fallback probes from 924: 2629, 242, 595.
    #[test]
    fn lookup_and_fallback_probe_the_model_slots() {
        // Table of weights 1,1,1 (model): slot 924 → 0, 2629 → 1, 242 → 1, 595 → 2,
        // 1707 → 2.
        let mut list = w(&[1, 1, 1]);
        let mut plain = MaglevHash::new(&list, SchedFlags::NONE);
        let mut fb = MaglevHash::new(&list, FALLBACK);
        let f = from(CLIENT, 40000);
        assert_eq!(plain.schedule(t0(), &list, &f, None), Some(0));
        let mut port = MaglevHash::new(&list, PORT);
        assert_eq!(port.schedule(t0(), &list, &f, None), Some(2));
        // 0 quiesced: no fallback → None; fallback probe 1 is slot 2629 → 1.
        list[0].weight = 0;
        assert_eq!(plain.schedule(t0(), &list, &f, None), None);
        assert_eq!(fb.schedule(t0(), &list, &f, None), Some(1));
        // 1 overloaded too: probe 2 = slot 242 → 1 again, probe 3 = slot 595 → 2.
        list[1].overloaded = true;
        assert_eq!(fb.schedule(t0(), &list, &f, None), Some(2));
        let mut e = Explain::new();
        fb.schedule(t0(), &list, &f, Some(&mut e));
        assert_eq!(
            e.as_str(),
            "mh: 198.51.100.7 slot 924 -> 192.0.2.11:80 unavailable (weight 0); \
             slot 595 -> 192.0.2.13:80 (fallback, probe 3)"
        );
        // Nothing available: the fallback ends with None (after at most M probes).
        list[2].overloaded = true;
        assert_eq!(fb.schedule(t0(), &list, &f, None), None);
    }

    #[test]
    fn same_client_same_server_and_explained() {
        let list = w(&[1, 1, 1]);
        let mut s = MaglevHash::new(&list, PORT);
        let mut e = Explain::new();
        let pick = s.schedule(t0(), &list, &from(CLIENT, 40000), Some(&mut e));
        assert_eq!(pick, Some(2));
        assert_eq!(
            e.as_str(),
            "mh: 198.51.100.7:40000 slot 1707 -> 192.0.2.13:80"
        );
        for _ in 0..10 {
            assert_eq!(s.schedule(t0(), &list, &from(CLIENT, 40000), None), Some(2));
        }
    }

    #[test]
    fn empty_list_gives_none() {
        let mut s = MaglevHash::new(&[], FALLBACK);
        assert_eq!(s.schedule(t0(), &[], &from(CLIENT, 1), None), None);
        // Stale table against a shorter slice: None, no panic.
        let mut s = MaglevHash::new(&w(&[1, 1, 1]), FALLBACK);
        let short = w(&[1]);
        let _ = s.schedule(t0(), &short, &from(CLIENT, 1), None);
    }

    const V6_CLIENT: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 0x10);

    /// Weight-`weight` IPv6 real servers 2001:db8:b::(11+i):80.
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

    /// The kernel's key for an IPv6 address, written out: fold = XOR of the four
    /// big-endian 32-bit words, `v = offset + port + fold` mod 2³², SipHash-1-3 of v's 4
    /// little-endian bytes (hash.rs's core, checked against the kernel's vectors).
    fn formula_v6(key: HsipKey, addr: Ipv6Addr, port: u16, offset: u32) -> u32 {
        let o = addr.octets();
        let word = |i: usize| u32::from_be_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
        let folded = word(0) ^ word(4) ^ word(8) ^ word(12);
        let v = (u64::from(offset) + u64::from(port) + u64::from(folded)) & 0xffff_ffff;
        super::super::hash::hsiphash(key, &(v as u32).to_le_bytes())
    }

    /// Offsets and skips of 2001:db8:b::11..13 port 80 (IPv6 service), from the formula
    /// above and from the independent Python model of ip_vs_mh.c.
    #[test]
    fn v6_permutation_parameters_match_the_model() {
        let list = v6_list(&[1, 1, 1]);
        let want = [(166, 3145), (3499, 856), (535, 657)];
        for (d, (offset, skip)) in list.iter().zip(want) {
            let IpAddr::V6(a) = d.addr else {
                panic!("not IPv6")
            };
            assert_eq!(formula_v6(MH_KEY1, a, 80, 0) % MH_TAB_SIZE, offset);
            assert_eq!(formula_v6(MH_KEY2, a, 80, 0) % (MH_TAB_SIZE - 1) + 1, skip);
            let s = mh_setup(d, 1, 0);
            assert_eq!((s.offset, s.skip), (offset, skip), "{}", d.endpoint());
            assert_eq!(mh_setup_in(Some(Family::V6), d, 1, 0), s);
        }
        // Round 1 of populate: each claims its offset.
        let t = table(&list);
        assert_eq!((t[166], t[3499], t[535]), (Some(0), Some(1), Some(2)));
    }

    /// 2001:db8:c::10: slot 269 without port, 2842 with port 40000; fallback probes from
    /// 269: 1388, 627, 2007 (model). In the table of 2001:db8:b::11..13 weights 1: 269 → 1,
    /// 1388 → 0, 627 → 1, 2007 → 0, 2842 → 0.
    #[test]
    fn v6_lookup_and_fallback_probe_the_model_slots() {
        assert_eq!(mh_hashkey(MH_KEY1, V6_CLIENT, 0, 0) % MH_TAB_SIZE, 269);
        assert_eq!(formula_v6(MH_KEY1, V6_CLIENT, 0, 0) % MH_TAB_SIZE, 269);
        assert_eq!(mh_hashkey(MH_KEY1, V6_CLIENT, 40000, 0) % MH_TAB_SIZE, 2842);
        for (off, want) in [(0, 1388), (1, 627), (2, 2007)] {
            let r = (off + 269) % MH_TAB_SIZE;
            assert_eq!(mh_hashkey(MH_KEY1, V6_CLIENT, 0, r) % MH_TAB_SIZE, want);
            assert_eq!(formula_v6(MH_KEY1, V6_CLIENT, 0, r) % MH_TAB_SIZE, want);
        }
        let mut list = v6_list(&[1, 1, 1]);
        let f = from(V6_CLIENT, 40000);
        let mut plain = MaglevHash::new(&list, SchedFlags::NONE);
        assert_eq!(plain.schedule(t0(), &list, &f, None), Some(1));
        assert_eq!(plain.family(), Some(Family::V6));
        let mut port = MaglevHash::new(&list, PORT);
        let mut e = Explain::new();
        assert_eq!(port.schedule(t0(), &list, &f, Some(&mut e)), Some(0));
        assert_eq!(
            e.as_str(),
            "mh: [2001:db8:c::10]:40000 slot 2842 -> [2001:db8:b::11]:80"
        );
        // 1 quiesced: probe 1 = slot 1388 → 0.
        let mut fb = MaglevHash::new(&list, FALLBACK);
        list[1].weight = 0;
        assert_eq!(plain.schedule(t0(), &list, &f, None), None);
        let mut e = Explain::new();
        assert_eq!(fb.schedule(t0(), &list, &f, Some(&mut e)), Some(0));
        assert_eq!(
            e.as_str(),
            "mh: 2001:db8:c::10 slot 269 -> [2001:db8:b::12]:80 unavailable (weight 0); \
             slot 1388 -> [2001:db8:b::11]:80 (fallback, probe 1)"
        );
        // 0 overloaded too: probe 2 = 627 → 1 (unavailable), probe 3 = 2007 → 0
        // (unavailable), ... until 2 is found; never 0 or 1.
        list[0].overloaded = true;
        assert_eq!(fb.schedule(t0(), &list, &f, None), Some(2));
    }

    /// The kernel folds a real server's address under the service's family: in an IPv4
    /// service an IPv6 real server is its first 32-bit word, 0x20010db8 for all of
    /// 2001:db8:b::11..13, so they share offset 2639 and skip 356 (model) and take turns
    /// along that one permutation: 2639 → 0, 2995 → 1, 3351 → 2, 3707 → 0, ...
    #[test]
    fn v6_real_servers_in_a_v4_service_fold_to_their_first_word() {
        let list = v6_list(&[1, 1, 1]);
        for d in &list {
            let s = mh_setup_in(Some(Family::V4), d, 1, 0);
            assert_eq!((s.offset, s.skip), (2639, 356), "{}", d.endpoint());
            // v = 80 + 0x20010db8.
            assert_eq!(
                s.offset,
                hsiphash_u32(MH_KEY1, 80 + 0x2001_0db8) % MH_TAB_SIZE
            );
        }
        let t4 = mh_populate_in(Some(Family::V4), &list).unwrap();
        assert_eq!(
            (t4[2639], t4[2995], t4[3351], t4[3707]),
            (Some(0), Some(1), Some(2), Some(0))
        );
        assert_eq!(
            (0..3u16).map(|i| counts(&t4)[&Some(i)]).collect::<Vec<_>>(),
            [1365, 1364, 1364]
        );
        let own = table(&list);
        assert_ne!(t4, own);
        // Given the family: that table at once. An IPv4 client 198.51.100.7 (slot 924)
        // lands on 2 there.
        let mut s = MaglevHash::with_family(&list, SchedFlags::NONE, Some(Family::V4));
        assert_eq!(s.table(), &t4[..]);
        assert_eq!(s.schedule(t0(), &list, &from(CLIENT, 1), None), Some(2));
        // Not given: built per address family, rebuilt when the first (IPv4) flow shows
        // the service's family, before its lookup; later updates keep the family.
        let mut s = MaglevHash::new(&list, SchedFlags::NONE);
        assert_eq!(s.table(), &own[..]);
        assert_eq!(s.schedule(t0(), &list, &from(CLIENT, 1), None), Some(2));
        assert_eq!((s.family(), s.table()), (Some(Family::V4), &t4[..]));
        let mut more = list.clone();
        more.insert(0, w(&[1])[0]);
        s.update(&more, ListChange::Added { index: 0 });
        assert_eq!(
            s.table(),
            &mh_populate_in(Some(Family::V4), &more).unwrap()[..]
        );
        // An IPv6 flow first: the per-address table was already the IPv6 service's.
        let mut s = MaglevHash::new(&list, SchedFlags::NONE);
        s.schedule(t0(), &list, &from(V6_CLIENT, 1), None);
        assert_eq!((s.family(), s.table()), (Some(Family::V6), &own[..]));
    }

    /// In an IPv6 service an IPv4 real server folds to its own address (the other words
    /// of its `nf_inet_addr` are zero): the same permutation as in an IPv4 service, so a
    /// mixed list's IPv4 members keep their v4 parameters (3880/1853 for 192.0.2.11:80).
    #[test]
    fn v4_real_servers_in_a_v6_service_hash_as_v4() {
        let v4 = w(&[1, 1, 1]);
        assert_eq!(
            mh_populate_in(Some(Family::V6), &v4).unwrap(),
            mh_populate_in(Some(Family::V4), &v4).unwrap()
        );
        let mut mixed = v6_list(&[1, 1]);
        mixed.insert(1, v4[0]);
        let s = mh_setup_in(Some(Family::V6), &mixed[1], 1, 0);
        assert_eq!((s.offset, s.skip), (3880, 1853));
        let s = mh_setup_in(Some(Family::V6), &mixed[0], 1, 0);
        assert_eq!((s.offset, s.skip), (166, 3145));
        // Round 1 in list order: 166 → 0, 3880 → 1, 3499 → 2.
        let t = mh_populate_in(Some(Family::V6), &mixed).unwrap();
        assert_eq!((t[166], t[3880], t[3499]), (Some(0), Some(1), Some(2)));
        assert!(t.iter().all(Option::is_some));
    }
}
