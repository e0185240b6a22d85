//! lblc — locality-based least connection (kernel `net/netfilter/ipvs/ip_vs_lblc.c`, spec
//! b.8), and the cache table and helpers lblcr shares.
//!
//! Invariants:
//! - The key is the packet's **destination** address (`iph->daddr`): for a plain VIP
//!   service every packet has the same key, so lblc is "sticky wlc with overload spill";
//!   it is meant for transparent caches and fwmark services.
//! - Cache: 1024 buckets (`CONFIG_IP_VS_LBLC_TAB_BITS = 10`), bucket
//!   `hash_32(ntohl(fold(addr)), 10)`, each entry `addr → dest` with `lastuse`. `fold` is
//!   the IPv4 address, or the XOR of an IPv6 address's four 32-bit words (`hash.rs`);
//!   keys are `IpAddr`s of the service's family, compared whole (`ip_vs_addr_equal`).
//! - schedule: on an entry, `lastuse = now`; its destination is used if it is still in
//!   the service (AVAILABLE), has weight > 0 and is not **lblc-overloaded**:
//!   `active > weight` while some destination `m` of the service has
//!   `m.active × 2 < m.weight`. The OVERLOAD flag is *not* checked on this path.
//!   Otherwise wlc over the whole service picks (first candidate: weight > 0 and not
//!   OVERLOAD; then strictly smaller `overhead / weight`, OVERLOAD skipped); None if none.
//!   The pick is cached: a new entry, or the old entry replaced when it named another
//!   destination. There is no cap on entries at insertion (only the GC below trims).
//! - Destinations are named by `addr:port`. The kernel holds a pointer; a deleted
//!   destination waits in the trash (not AVAILABLE) and the same object comes back if it
//!   is re-added, which naming by endpoint reproduces.
//! - GC, a 60 s timer from service creation ([`Scheduler::poll_timeout`]): a counter
//!   starts at 1. When `counter % 30 == 0`, a full sweep deletes entries idle for at least
//!   the expiration (sysctl `lblc_expiration`, 24 h) and resets the counter to 1. Else, if
//!   the `entries` count is within 16 × 1024, the counter increments. Else
//!   `goal = min((entries − max) × 4 / 3, max / 2)`, and buckets are swept from a moving
//!   `rover`, deleting entries idle ≥ 6 min, until the goal is met. A late timer runs once
//!   and re-arms 60 s after the time it ran, like `mod_timer(jiffies + 60 s)`.
//! - Kernel quirk kept: replacing an entry (`ip_vs_lblc_new`) unlinks the old one without
//!   decrementing `entries` and counts the new one, so `entries` over-counts by one per
//!   replacement and never recovers. It only steers the GC (see [`CacheTable::entries`]).
//! - No `add_dest`/`del_dest`/`upd_dest` hooks in the kernel; [`Scheduler::update`] only
//!   rebuilds the [`ServiceIndex`], which changes no decision.
//! - [`ServiceIndex`] (shared with lblcr): wlc's [`Tournament`] over the whole list and the
//!   number of destinations below half their weight (`active × 2 < weight`), kept in sync
//!   by `update` and `dest_changed` (the tournament only while cache misses are frequent,
//!   and lazily; see its doc). So a miss costs O(log n) amortised instead of the kernel's
//!   O(n) when lookups keep spilling, and the lblc-overload test (`active > weight` and that
//!   number > 0) is O(1), which the kernel
//!   answers by scanning for such a destination on every cache hit. The scans ([`wlc`],
//!   [`lblc_overloaded`]) stay as the reference, asserted equal in debug builds, and name
//!   the destination below half in explanations.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use lvs_proto::SchedulerKind;

use super::hash::{fold, hash_32};
use super::index::{SCAN_MAX, Tournament};
use super::wlc::Wlc;
use super::{Dest, Explain, Flow, ListChange, Scheduler, overhead};

/// `IP_VS_LBLC_TAB_BITS` (and lblcr's; default 10).
pub const LBLC_TAB_BITS: u32 = 10;
/// Number of cache buckets: 2¹⁰.
pub const LBLC_TAB_SIZE: usize = 1 << LBLC_TAB_BITS;
const LBLC_TAB_MASK: usize = LBLC_TAB_SIZE - 1;
/// `tbl->max_size`: 16 entries per bucket.
pub const LBLC_MAX_ENTRIES: usize = LBLC_TAB_SIZE * 16;
/// `CHECK_EXPIRE_INTERVAL`: the GC timer period.
pub const CHECK_EXPIRE_INTERVAL: Duration = Duration::from_secs(60);
/// `ENTRY_TIMEOUT`: idle time after which the partial GC may delete an entry.
pub const ENTRY_TIMEOUT: Duration = Duration::from_secs(6 * 60);
/// `COUNT_FOR_FULL_EXPIRATION`: every this many timer runs, a full sweep.
pub const COUNT_FOR_FULL_EXPIRATION: u32 = 30;

/// `ip_vs_lblc_hashkey` / `ip_vs_lblcr_hashkey`: the bucket of `addr` (IPv4 or IPv6).
pub fn lblc_bucket(addr: impl Into<IpAddr>) -> usize {
    hash_32(fold(addr.into()), LBLC_TAB_BITS) as usize
}

/// A cached destination, named by endpoint, with a hint where it was last seen in the
/// list and a copy of how it looked then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DestRef {
    /// The destination's `addr:port`, its identity within a service.
    pub(super) endpoint: SocketAddr,
    /// Its index in the list when last seen (checked before use).
    hint: usize,
    /// The destination as last seen. For a destination no longer in the service this is
    /// what lblcr's "most loaded" choice reads (the kernel reads the trashed
    /// destination's live counters, which lvsd does not see).
    pub(super) seen: Dest,
}

impl DestRef {
    /// A reference to `dests[i]`.
    pub(super) fn new(i: usize, d: &Dest) -> Self {
        DestRef {
            endpoint: d.endpoint(),
            hint: i,
            seen: *d,
        }
    }

    /// The destination's index in `dests` if it is in the service (AVAILABLE); refreshes
    /// the hint and the snapshot. O(1) while the list is unchanged, O(n) after a change.
    pub(super) fn resolve(&mut self, dests: &[Dest]) -> Option<usize> {
        let found = match dests.get(self.hint) {
            Some(d) if d.endpoint() == self.endpoint => Some(self.hint),
            _ => dests.iter().position(|d| d.endpoint() == self.endpoint),
        }?;
        self.hint = found;
        self.seen = *dests.get(found)?;
        Some(found)
    }
}

/// One cache entry: destination address → value, with its last use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CacheEntry<V> {
    /// The packet destination address this entry is for.
    pub(super) addr: IpAddr,
    /// Last time a packet looked this entry up (or it was created).
    pub(super) lastuse: Instant,
    /// The cached destination (lblc) or destination set (lblcr).
    pub(super) value: V,
}

/// The lblc/lblcr hash table with its GC state (`struct ip_vs_lblc_table`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CacheTable<V> {
    /// `LBLC_TAB_SIZE` buckets; within one, the newest entry first (`hlist_add_head`).
    buckets: Vec<Vec<CacheEntry<V>>>,
    /// The kernel's `tbl->entries` counter (see [`CacheTable::entries`]).
    entries: usize,
    /// `tbl->rover`: where the next sweep starts (after this bucket).
    rover: usize,
    /// `tbl->counter`: timer runs since the last full sweep, from 1.
    counter: u32,
    /// When the GC timer fires next.
    next_check: Option<Instant>,
}

impl<V> CacheTable<V> {
    /// An empty table whose timer fires 60 s after `now` (`init_svc`).
    pub(super) fn new(now: Instant) -> Self {
        CacheTable {
            buckets: (0..LBLC_TAB_SIZE).map(|_| Vec::new()).collect(),
            entries: 0,
            rover: 0,
            counter: 1,
            next_check: now.checked_add(CHECK_EXPIRE_INTERVAL),
        }
    }

    /// The kernel's entry counter, which steers the GC. It equals [`CacheTable::len`]
    /// except that lblc's replacements over-count it (a kernel quirk kept on purpose).
    pub(super) fn entries(&self) -> usize {
        self.entries
    }

    /// The number of entries actually cached.
    pub(super) fn len(&self) -> usize {
        self.buckets.iter().map(Vec::len).sum()
    }

    /// The entry for `addr`.
    pub(super) fn get(&self, addr: IpAddr) -> Option<&CacheEntry<V>> {
        self.buckets
            .get(lblc_bucket(addr))?
            .iter()
            .find(|e| e.addr == addr)
    }

    /// The entry for `addr`, mutably.
    pub(super) fn get_mut(&mut self, addr: IpAddr) -> Option<&mut CacheEntry<V>> {
        self.buckets
            .get_mut(lblc_bucket(addr))?
            .iter_mut()
            .find(|e| e.addr == addr)
    }

    /// `ip_vs_lblc_hash`: adds an entry at its bucket's head and counts it. The caller
    /// makes sure `addr` has no entry yet.
    pub(super) fn insert(&mut self, addr: impl Into<IpAddr>, value: V, now: Instant) {
        let addr = addr.into();
        if let Some(bucket) = self.buckets.get_mut(lblc_bucket(addr)) {
            bucket.insert(
                0,
                CacheEntry {
                    addr,
                    lastuse: now,
                    value,
                },
            );
            self.entries += 1;
        }
    }

    /// `ip_vs_lblc_new` on an existing entry for another destination: the old entry is
    /// unlinked **without** decrementing `entries` (`ip_vs_lblc_del`), and the new one is
    /// inserted and counted.
    pub(super) fn replace(&mut self, addr: impl Into<IpAddr>, value: V, now: Instant) {
        let addr = addr.into();
        if let Some(bucket) = self.buckets.get_mut(lblc_bucket(addr)) {
            bucket.retain(|e| e.addr != addr);
        }
        self.insert(addr, value, now);
    }

    /// When the GC timer fires next.
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.next_check
    }

    /// Runs the GC timer if it is due at `now` (`ip_vs_lblc_check_expire`), then re-arms
    /// it 60 s after `now`. `expiration` is the full sweep's idle limit.
    pub(super) fn handle_timeout(&mut self, now: Instant, expiration: Duration) {
        match self.next_check {
            Some(due) if now >= due => {
                self.check_expire(now, expiration);
                self.next_check = now.checked_add(CHECK_EXPIRE_INTERVAL);
            }
            _ => {}
        }
    }

    /// The timer body.
    fn check_expire(&mut self, now: Instant, expiration: Duration) {
        if self.counter % COUNT_FOR_FULL_EXPIRATION == 0 {
            self.sweep(now, expiration, None);
            self.counter = 1;
            return;
        }
        if self.entries <= LBLC_MAX_ENTRIES {
            self.counter += 1;
            return;
        }
        let goal = ((self.entries - LBLC_MAX_ENTRIES) * 4 / 3).min(LBLC_MAX_ENTRIES / 2);
        self.sweep(now, ENTRY_TIMEOUT, Some(goal));
    }

    /// Visits the buckets after `rover` (wrapping), deleting entries idle for at least
    /// `idle`; with a goal, stops after the bucket where the goal is met. Leaves `rover`
    /// at the last bucket visited.
    fn sweep(&mut self, now: Instant, idle: Duration, goal: Option<usize>) {
        let mut left = goal;
        let mut j = self.rover;
        for _ in 0..LBLC_TAB_SIZE {
            j = (j + 1) & LBLC_TAB_MASK;
            let Some(bucket) = self.buckets.get_mut(j) else {
                continue;
            };
            let before = bucket.len();
            // time_before(now, lastuse + idle) keeps the entry.
            bucket.retain(|e| now.saturating_duration_since(e.lastuse) < idle);
            let deleted = before - bucket.len();
            self.entries = self.entries.saturating_sub(deleted);
            if let Some(l) = left.as_mut() {
                *l = l.saturating_sub(deleted);
                if *l == 0 {
                    break;
                }
            }
        }
        self.rover = j;
    }
}

/// lblc's overload test (`is_overloaded` of ip_vs_lblc.c / ip_vs_lblcr.c): `d` has more
/// active connections than its weight while some destination of the service is below
/// half its weight. Returns that destination's index, the first in list order.
pub(super) fn lblc_overloaded(d: &Dest, dests: &[Dest]) -> Option<usize> {
    if d.active <= d.weight {
        return None;
    }
    dests
        .iter()
        .position(|m| u64::from(m.active) * 2 < u64::from(m.weight))
}

/// `__ip_vs_lblc_schedule` / `__ip_vs_lblcr_schedule`: weighted least connection over
/// the whole service. The first destination with weight > 0 and no OVERLOAD flag starts;
/// a later one without OVERLOAD replaces it when `overhead(least) × w(d) > overhead(d) ×
/// w(least)` (strict: ties keep the earlier one).
pub(super) fn wlc(dests: &[Dest]) -> Option<usize> {
    let first = dests.iter().position(|d| d.weight > 0 && !d.overloaded)?;
    let mut least = first;
    let mut lw = dests.get(first)?.weight;
    let mut loh = dests.get(first).map_or(0, overhead);
    for (i, d) in dests.iter().enumerate().skip(first + 1) {
        if d.overloaded {
            continue;
        }
        let doh = overhead(d);
        if u128::from(loh) * u128::from(d.weight) > u128::from(doh) * u128::from(lw) {
            least = i;
            lw = d.weight;
            loh = doh;
        }
    }
    Some(least)
}

/// Whether `m` is below half its weight (`m.active × 2 < m.weight`): its existence makes
/// a destination with `active > weight` lblc-overloaded.
fn below_half(m: &Dest) -> bool {
    u64::from(m.active) * 2 < u64::from(m.weight)
}

/// lblc's and lblcr's index of the service (module doc).
///
/// The wlc pass is needed only on a cache miss: rare in steady state (one decision in
/// hundreds), every decision when the cluster is past its capacity and lookups spill. So
/// the [`Wlc`] tournament is kept only while misses are frequent, and lazily then:
/// - *live*: a count change marks its position dirty (`dirty`, each position once,
///   flagged in `is_dirty`); a miss brings those leaves up to date (O(log n) each) and
///   reads the root. If more than an eighth of the list is dirty by then, misses are rare:
///   the tree is dropped (*stale*) and this miss scans instead.
/// - *stale*: a count change only counts (`changes`); a miss scans, O(n), unless at most an
///   eighth of the list's worth of changes happened since the last miss: then misses are
///   frequent again and the tree is rebuilt, O(n), and kept live.
///
/// Either way a miss costs at most about one O(n) pass per n/8 count changes, and nothing
/// is spent on the tree between rare misses.
///
/// Invariant: `below[i]` is [`below_half`] of position `i` of the list last given and
/// `n_below` counts the `true`s. When `live`, `wlc` is the tournament of that list except
/// at the positions in `dirty`; when not, `wlc` is unused and `dirty` empty. `changes`
/// counts the changes since the last wlc pass. Lists of at most [`SCAN_MAX`] have no tree
/// (the tournament scans) and track nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ServiceIndex {
    wlc: Tournament<Wlc>,
    live: bool,
    dirty: Vec<u32>,
    is_dirty: Vec<bool>,
    changes: usize,
    below: Vec<bool>,
    n_below: usize,
}

impl ServiceIndex {
    /// The index of `dests`.
    pub(super) fn new(dests: &[Dest]) -> Self {
        let mut index = ServiceIndex {
            wlc: Tournament::new(&[]),
            live: true,
            dirty: Vec::new(),
            is_dirty: Vec::new(),
            changes: 0,
            below: Vec::new(),
            n_below: 0,
        };
        index.rebuild(dests);
        index
    }

    /// Rebuilds from `dests`, O(n).
    pub(super) fn rebuild(&mut self, dests: &[Dest]) {
        self.wlc.rebuild(dests);
        self.live = true;
        self.dirty.clear();
        self.is_dirty.clear();
        self.is_dirty.resize(dests.len(), false);
        self.changes = 0;
        self.below.clear();
        self.below.extend(dests.iter().map(below_half));
        self.n_below = self.below.iter().filter(|&&b| b).count();
    }

    /// Rebuilds if `dests` has another length (a caller that skipped `update`).
    pub(super) fn fit(&mut self, dests: &[Dest]) {
        if dests.len() != self.below.len() {
            self.rebuild(dests);
        }
    }

    /// Follows a change of `dests[i]`: O(1).
    pub(super) fn set(&mut self, dests: &[Dest], i: usize) {
        if dests.len() != self.below.len() {
            self.rebuild(dests);
            return;
        }
        let (Some(d), Some(b)) = (dests.get(i), self.below.get_mut(i)) else {
            return;
        };
        let now = below_half(d);
        if *b != now {
            *b = now;
            if now {
                self.n_below += 1;
            } else {
                self.n_below -= 1;
            }
        }
        if dests.len() <= SCAN_MAX {
            return;
        }
        self.changes = self.changes.saturating_add(1);
        if self.live {
            match (self.is_dirty.get_mut(i), u32::try_from(i)) {
                (Some(flag), Ok(pos)) if !*flag => {
                    *flag = true;
                    self.dirty.push(pos);
                }
                (Some(_), Ok(_)) => {}
                // A position past u32 (a list of 2^32): update the leaf at once.
                _ => self.wlc.set(dests, i),
            }
        }
    }

    /// [`wlc`] over the service, from the index (see the type's doc for the cost).
    pub(super) fn wlc(&mut self, dests: &[Dest]) -> Option<usize> {
        self.fit(dests);
        let few = dests.len() / 8;
        let pick = if dests.len() <= SCAN_MAX {
            // No tree: the tournament scans.
            self.wlc.best(dests)
        } else if self.live && self.dirty.len() > few {
            // Misses are rare: drop the tree rather than catch it up.
            self.live = false;
            for &i in &self.dirty {
                if let Some(flag) = self.is_dirty.get_mut(i as usize) {
                    *flag = false;
                }
            }
            self.dirty.clear();
            wlc(dests)
        } else if self.live {
            while let Some(i) = self.dirty.pop() {
                let i = i as usize;
                self.wlc.set(dests, i);
                if let Some(flag) = self.is_dirty.get_mut(i) {
                    *flag = false;
                }
            }
            self.wlc.best(dests)
        } else if self.changes <= few {
            // Misses are frequent again: a tree pays off.
            self.wlc.rebuild(dests);
            self.live = true;
            self.wlc.best(dests)
        } else {
            wlc(dests)
        };
        self.changes = 0;
        debug_assert_eq!(pick, wlc(dests), "lblc: wlc index disagrees");
        pick
    }

    /// Whether `d` (a destination of `dests`) is lblc-overloaded: [`lblc_overloaded`] in
    /// O(1).
    pub(super) fn overloaded(&mut self, d: &Dest, dests: &[Dest]) -> bool {
        self.fit(dests);
        let overloaded = d.active > d.weight && self.n_below > 0;
        debug_assert_eq!(
            overloaded,
            lblc_overloaded(d, dests).is_some(),
            "lblc: overload index disagrees"
        );
        overloaded
    }

    /// Whether the index matches `dests` (the invariant; O(n), for debug assertions).
    pub(super) fn in_sync(&self, dests: &[Dest]) -> bool {
        let flagged = self.is_dirty.iter().filter(|&&d| d).count();
        let listed = self
            .dirty
            .iter()
            .filter(|&&i| self.is_dirty.get(i as usize) == Some(&true))
            .count();
        let tree = if self.live {
            let mut fresh = self.wlc.clone();
            for &i in &self.dirty {
                fresh.set(dests, i as usize);
            }
            fresh.in_sync(dests)
        } else {
            self.dirty.is_empty()
        };
        tree && flagged == self.dirty.len()
            && listed == self.dirty.len()
            && self.below.len() == dests.len()
            && self
                .below
                .iter()
                .zip(dests)
                .all(|(&b, d)| b == below_half(d))
            && self.n_below == self.below.iter().filter(|&&b| b).count()
    }
}

/// How an explanation prints a wlc pick: `192.0.2.12:80 1*256+0/w2`.
pub(super) struct Load<'a>(pub(super) &'a Dest);

impl fmt::Display for Load<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        write!(
            f,
            "{} {}*256+{}/w{}",
            d.endpoint(),
            d.active,
            d.inactive,
            d.weight
        )
    }
}

/// How an explanation prints an lblc overload: `(active 5 > weight 1, 192.0.2.13:80 below
/// half)`.
pub(super) struct Overload<'a>(pub(super) &'a Dest, pub(super) &'a Dest);

impl fmt::Display for Overload<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "(active {} > weight {}, {} below half)",
            self.0.active,
            self.0.weight,
            self.1.endpoint()
        )
    }
}

/// Locality-based least-connection scheduler: the destination-address cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalityLeastConnection {
    table: CacheTable<DestRef>,
    expiration: Duration,
    index: ServiceIndex,
}

/// Why a cached destination was not used.
enum Miss {
    NoEntry,
    Gone(SocketAddr),
    WeightZero(usize),
    Overloaded(usize),
}

impl LocalityLeastConnection {
    /// The kernel's `ip_vs_lblc_init_svc` at `now`; `expiration` is `lblc_expiration`.
    /// The index of the list is built by [`Scheduler::update`], or on the first pick.
    pub fn new(expiration: Duration, now: Instant) -> Self {
        LocalityLeastConnection {
            table: CacheTable::new(now),
            expiration,
            index: ServiceIndex::new(&[]),
        }
    }

    /// The destination cached for packet destination `addr` (IPv4 or IPv6), if any.
    pub fn cached(&self, addr: impl Into<IpAddr>) -> Option<SocketAddr> {
        self.table.get(addr.into()).map(|e| e.value.endpoint)
    }

    /// The number of cached entries.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The kernel's entry counter (over-counts replacements; see the module doc).
    pub fn entries(&self) -> usize {
        self.table.entries()
    }

    /// Writes the explanation of a pick that did not come from the cache.
    fn explain_miss(
        e: &mut Explain,
        key: IpAddr,
        dests: &[Dest],
        miss: &Miss,
        pick: Option<usize>,
    ) {
        let d = |i: usize| dests.get(i).copied().unwrap_or_default();
        let picked = pick.and_then(|i| dests.get(i));
        let tail = PickTail(picked);
        match *miss {
            Miss::NoEntry => e.note(format_args!("lblc: {key} not cached -> {tail}")),
            Miss::Gone(ep) => e.note(format_args!(
                "lblc: {key} cached {ep} no longer in the service -> {tail}"
            )),
            Miss::WeightZero(i) => e.note(format_args!(
                "lblc: {key} cached {} has weight 0 -> {tail}",
                d(i).endpoint()
            )),
            Miss::Overloaded(i) => {
                // The destination below half that makes it overloaded, by the scan.
                let m = lblc_overloaded(&d(i), dests).map_or_else(Dest::default, d);
                e.note(format_args!(
                    "lblc: {key} cached {} overloaded {} -> {tail}",
                    d(i).endpoint(),
                    Overload(&d(i), &m)
                ));
            }
        }
    }
}

/// The end of a miss explanation: `wlc 192.0.2.12:80 1*256+0/w2`, or no destination.
struct PickTail<'a>(Option<&'a Dest>);

impl fmt::Display for PickTail<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(d) => write!(f, "wlc {}", Load(d)),
            None => f.write_str("wlc: no destination available"),
        }
    }
}

impl Scheduler for LocalityLeastConnection {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Lblc
    }

    fn schedule(
        &mut self,
        now: Instant,
        dests: &[Dest],
        flow: &Flow,
        explain: Option<&mut Explain>,
    ) -> Option<usize> {
        let key = flow.dst.ip();
        self.index.fit(dests);
        debug_assert!(self.index.in_sync(dests), "lblc: unannounced list change");
        let mut miss = Miss::NoEntry;
        if let Some(en) = self.table.get_mut(key) {
            en.lastuse = now;
            miss = match en.value.resolve(dests) {
                None => Miss::Gone(en.value.endpoint),
                Some(i) => match dests.get(i) {
                    Some(d) if d.weight > 0 => {
                        if !self.index.overloaded(d, dests) {
                            if let Some(e) = explain {
                                e.note(format_args!("lblc: cache hit {key} -> {}", d.endpoint()));
                            }
                            return Some(i);
                        }
                        Miss::Overloaded(i)
                    }
                    _ => Miss::WeightZero(i),
                },
            };
        }
        let pick = self.index.wlc(dests);
        if let Some(e) = explain {
            Self::explain_miss(e, key, dests, &miss, pick);
        }
        let i = pick?;
        let d = dests.get(i)?;
        // ip_vs_lblc_new: keep an entry already naming this destination, else (re)create.
        match self.table.get(key) {
            Some(en) if en.value.endpoint == d.endpoint() => {}
            Some(_) => self.table.replace(key, DestRef::new(i, d), now),
            None => self.table.insert(key, DestRef::new(i, d), now),
        }
        Some(i)
    }

    fn update(&mut self, dests: &[Dest], _change: ListChange) {
        // ip_vs_lblc.c registers no add/del/upd_dest hook: only the index follows.
        self.index.rebuild(dests);
    }

    fn dest_changed(&mut self, dests: &[Dest], index: usize) {
        self.index.set(dests, index);
    }

    fn clone_box(&self) -> Box<dyn Scheduler> {
        Box::new(self.clone())
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.table.poll_timeout()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.table.handle_timeout(now, self.expiration);
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use lvs_proto::Protocol;

    use super::super::tests::{load, t0, w};
    use super::*;

    pub(in super::super) const DAY: Duration = Duration::from_secs(24 * 60 * 60);
    const MIN: Duration = Duration::from_secs(60);

    /// A TCP flow from 198.51.100.7:40000 to `dst:80`, or from [2001:db8:c::10]:40000
    /// for an IPv6 `dst`.
    pub(in super::super) fn to(dst: impl Into<IpAddr>) -> Flow {
        let dst = dst.into();
        let client: IpAddr = match dst {
            IpAddr::V4(_) => Ipv4Addr::new(198, 51, 100, 7).into(),
            IpAddr::V6(_) => Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 0x10).into(),
        };
        Flow {
            protocol: Protocol::Tcp,
            src: SocketAddr::new(client, 40000),
            dst: SocketAddr::new(dst, 80),
        }
    }

    const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

    fn lblc() -> LocalityLeastConnection {
        LocalityLeastConnection::new(DAY, t0())
    }

    fn pick_at(s: &mut LocalityLeastConnection, now: Instant, dests: &[Dest]) -> Option<usize> {
        s.schedule(now, dests, &to(VIP), None)
    }

    fn explain_at(s: &mut LocalityLeastConnection, dests: &[Dest]) -> (Option<usize>, String) {
        let mut e = Explain::new();
        let pick = s.schedule(t0(), dests, &to(VIP), Some(&mut e));
        (pick, e.as_str().to_owned())
    }

    #[test]
    fn bucket_is_hash_32_10_bits_of_the_address() {
        // 0xC0000201 × 0x61C88647 mod 2³² = 0x32D51447 (hash.rs); top 10 bits = 0xCB = 203.
        assert_eq!(lblc_bucket(VIP), 203);
    }

    #[test]
    fn wlc_first_eligible_then_strictly_less_load_per_weight() {
        // All idle: nobody beats the first eligible (0 × w > 0 × w is false).
        assert_eq!(wlc(&w(&[0, 2, 3])), Some(1));
        // 1: 256/1 vs 2: 256/2 → 2 wins (256 × 2 > 256 × 1).
        assert_eq!(wlc(&load(&[(1, 1, 0), (2, 1, 0)])), Some(1));
        // Equal load per weight: the earlier stays.
        assert_eq!(wlc(&load(&[(1, 0, 2), (2, 0, 4)])), Some(0));
        // OVERLOAD skipped everywhere; weight 0 can never win.
        let mut l = load(&[(1, 5, 0), (1, 0, 0), (0, 0, 0)]);
        l[1].overloaded = true;
        assert_eq!(wlc(&l), Some(0));
        assert_eq!(wlc(&[]), None);
        assert_eq!(wlc(&w(&[0, 0])), None);
    }

    #[test]
    fn lblc_overloaded_needs_a_destination_below_half() {
        // 0: active 2 > weight 1; 1: active 0 × 2 < 1 → overloaded, 1 named.
        assert_eq!(
            lblc_overloaded(&load(&[(1, 2, 0)])[0], &load(&[(1, 2, 0), (1, 0, 0)])),
            Some(1)
        );
        // Nobody below half (1: 1 × 2 < 2 is false) → not overloaded.
        let l = load(&[(1, 2, 0), (2, 1, 0)]);
        assert_eq!(lblc_overloaded(&l[0], &l), None);
        // active == weight is not "more than".
        let l = load(&[(2, 2, 0), (4, 0, 0)]);
        assert_eq!(lblc_overloaded(&l[0], &l), None);
        // Inactive connections do not count.
        let l = load(&[(1, 0, 100), (4, 0, 0)]);
        assert_eq!(lblc_overloaded(&l[0], &l), None);
    }

    #[test]
    fn first_pick_is_wlc_and_cached() {
        let list = load(&[(1, 3, 0), (1, 1, 0), (1, 2, 0)]);
        let mut s = lblc();
        // wlc: 1 has the least (256 < 512, 768).
        assert_eq!(pick_at(&mut s, t0(), &list), Some(1));
        assert_eq!(s.cached(VIP), Some(list[1].endpoint()));
        assert_eq!((s.len(), s.entries()), (1, 1));
    }

    #[test]
    fn cache_hit_sticks_even_when_wlc_would_differ() {
        let mut list = load(&[(1, 3, 0), (1, 1, 0), (1, 2, 0)]);
        let mut s = lblc();
        assert_eq!(pick_at(&mut s, t0(), &list), Some(1));
        // 1 gets busier than the others but not overloaded in lblc's sense (nobody is
        // below half their weight), so the cache holds.
        list[1].active = 1;
        list[0].active = 1;
        list[2].active = 1;
        list[1].inactive = 50;
        for i in 0..3 {
            s.dest_changed(&list, i);
        }
        assert_eq!(pick_at(&mut s, t0(), &list), Some(1));
        let (pick, text) = explain_at(&mut s, &list);
        assert_eq!(pick, Some(1));
        assert_eq!(text, "lblc: cache hit 192.0.2.1 -> 192.0.2.12:80");
        // The OVERLOAD flag does not stop a cache hit (the kernel checks only weight and
        // lblc-overload on this path).
        list[1].overloaded = true;
        s.dest_changed(&list, 1);
        assert_eq!(pick_at(&mut s, t0(), &list), Some(1));
    }

    #[test]
    fn overload_spills_to_wlc_and_replaces_the_entry() {
        let mut list = load(&[(1, 0, 0), (1, 0, 0), (2, 0, 0)]);
        let mut s = lblc();
        assert_eq!(pick_at(&mut s, t0(), &list), Some(0));
        // 0: active 5 > weight 1, and 2 has 0 × 2 < 2 → lblc-overloaded; wlc over the
        // service: 0 1280/1, 1 256/1, 2 0/2 → 2.
        list[0].active = 5;
        list[1].active = 1;
        s.dest_changed(&list, 0);
        s.dest_changed(&list, 1);
        let (pick, text) = explain_at(&mut s, &list);
        assert_eq!(pick, Some(2));
        assert_eq!(
            text,
            "lblc: 192.0.2.1 cached 192.0.2.11:80 overloaded (active 5 > weight 1, \
             192.0.2.13:80 below half) -> wlc 192.0.2.13:80 0*256+0/w2"
        );
        assert_eq!(s.cached(VIP), Some(list[2].endpoint()));
        // Kernel quirk: the replaced entry is not uncounted.
        assert_eq!((s.len(), s.entries()), (1, 2));
    }

    #[test]
    fn weight_zero_or_removed_cached_destination_is_rescheduled() {
        let mut list = w(&[1, 1]);
        let mut s = lblc();
        assert_eq!(pick_at(&mut s, t0(), &list), Some(0));
        list[0].weight = 0;
        s.update(&list, ListChange::Edited);
        let (pick, text) = explain_at(&mut s, &list);
        assert_eq!(pick, Some(1));
        assert_eq!(
            text,
            "lblc: 192.0.2.1 cached 192.0.2.11:80 has weight 0 -> wlc 192.0.2.12:80 0*256+0/w1"
        );
        // Now 1 is cached; remove it from the service: not AVAILABLE any more.
        let gone = list.remove(1);
        s.update(&list, ListChange::Removed { index: 1 });
        list[0].weight = 1;
        s.update(&list, ListChange::Edited);
        let (pick, text) = explain_at(&mut s, &list);
        assert_eq!(pick, Some(0));
        assert_eq!(
            text,
            format!(
                "lblc: 192.0.2.1 cached {} no longer in the service -> wlc 192.0.2.11:80 0*256+0/w1",
                gone.endpoint()
            )
        );
        // Re-adding 192.0.2.12 at the head (as IPVS does) shifts the cached 192.0.2.11 to
        // index 1, where the cache still finds it.
        list.insert(0, gone);
        s.update(&list, ListChange::Added { index: 0 });
        assert_eq!(pick_at(&mut s, t0(), &list), Some(1));
    }

    #[test]
    fn no_destination_gives_none_and_keeps_the_entry() {
        let mut list = w(&[1]);
        let mut s = lblc();
        assert_eq!(pick_at(&mut s, t0(), &list), Some(0));
        list[0].weight = 0;
        s.update(&list, ListChange::Edited);
        let (pick, text) = explain_at(&mut s, &list);
        assert_eq!(pick, None);
        assert_eq!(
            text,
            "lblc: 192.0.2.1 cached 192.0.2.11:80 has weight 0 -> wlc: no destination available"
        );
        assert_eq!(s.len(), 1);
        let mut s = lblc();
        assert_eq!(pick_at(&mut s, t0(), &[]), None);
        assert!(s.is_empty());
        // All OVERLOAD-flagged: wlc finds nothing.
        let mut l = w(&[1, 1]);
        l[0].overloaded = true;
        l[1].overloaded = true;
        s.update(&l, ListChange::Edited);
        assert_eq!(pick_at(&mut s, t0(), &l), None);
    }

    #[test]
    fn keyed_by_packet_destination_not_client() {
        let list = w(&[1, 1]);
        let mut s = lblc();
        let a = Ipv4Addr::new(203, 0, 113, 10);
        let b = Ipv4Addr::new(203, 0, 113, 11);
        assert_eq!(s.schedule(t0(), &list, &to(a), None), Some(0));
        // Make 1 the wlc choice for the next new key; the cached key stays on 0.
        let busy = load(&[(1, 0, 1), (1, 0, 0)]);
        s.dest_changed(&busy, 0);
        assert_eq!(s.schedule(t0(), &busy, &to(b), None), Some(1));
        assert_eq!(s.schedule(t0(), &busy, &to(a), None), Some(0));
        assert_eq!(s.len(), 2);
        // Another client to the same destination address: same entry.
        let mut f = to(a);
        f.src = SocketAddr::new(Ipv4Addr::new(10, 1, 1, 1).into(), 5);
        assert_eq!(s.schedule(t0(), &busy, &f, None), Some(0));
    }

    #[test]
    fn timer_fires_every_minute_from_creation() {
        let mut s = lblc();
        assert_eq!(s.poll_timeout(), Some(t0() + MIN));
        // Not due yet: nothing moves.
        s.handle_timeout(t0() + MIN - Duration::from_millis(1));
        assert_eq!(s.poll_timeout(), Some(t0() + MIN));
        // Late by 10 s: runs once, re-armed 60 s after it ran.
        s.handle_timeout(t0() + MIN + Duration::from_secs(10));
        assert_eq!(
            s.poll_timeout(),
            Some(t0() + 2 * MIN + Duration::from_secs(10))
        );
    }

    /// The full sweep runs on the 30th timer run (counter 1..29 increments, 30 sweeps)
    /// and deletes entries idle for at least the expiration; the counter restarts at 1, so
    /// the next full sweep is 30 runs later.
    #[test]
    fn full_sweep_expires_idle_entries_after_30_runs() {
        let exp = Duration::from_secs(10 * 60);
        let mut s = LocalityLeastConnection::new(exp, t0());
        let list = w(&[1]);
        let old = Ipv4Addr::new(203, 0, 113, 1);
        let fresh = Ipv4Addr::new(203, 0, 113, 2);
        s.schedule(t0(), &list, &to(old), None);
        let mut now = t0();
        for run in 1..=29u32 {
            now += MIN;
            if run == 25 {
                // Used 5 min before the sweep: stays.
                s.schedule(now, &list, &to(fresh), None);
            }
            s.handle_timeout(now);
            // Runs 1..29 only count (the table is far below its maximum).
            assert_eq!(s.len(), if run < 25 { 1 } else { 2 }, "run {run}");
        }
        now += MIN;
        s.handle_timeout(now); // run 30: full sweep at t0 + 30 min
        assert_eq!(s.cached(old), None, "idle 30 min ≥ 10 min");
        assert_eq!(
            s.cached(fresh),
            Some(list[0].endpoint()),
            "idle 5 min < 10 min"
        );
        assert_eq!((s.len(), s.entries()), (1, 1));
    }

    /// Exactly the expiration idle is enough (`time_before(now, lastuse + exp)` is false).
    #[test]
    fn expiry_is_inclusive() {
        let mut t: CacheTable<u8> = CacheTable::new(t0());
        t.insert(VIP, 1, t0());
        t.sweep(t0() + MIN - Duration::from_nanos(1), MIN, None);
        assert_eq!(t.len(), 1);
        t.sweep(t0() + MIN, MIN, None);
        assert_eq!((t.len(), t.entries()), (0, 0));
    }

    /// Over the maximum, the partial GC deletes entries idle ≥ 6 min from the rover on,
    /// bucket by bucket, until `min((entries − max) × 4/3, max/2)` are gone.
    #[test]
    fn partial_gc_over_the_maximum_meets_its_goal() {
        let mut t: CacheTable<u8> = CacheTable::new(t0());
        // max + 30 entries, all idle since t0: goal = 30 × 4 / 3 = 40.
        let n = LBLC_MAX_ENTRIES + 30;
        for i in 0..n {
            let k = u32::try_from(i).unwrap();
            t.insert(Ipv4Addr::from(0x0A00_0000 + k), 0, t0());
        }
        assert_eq!(t.entries(), n);
        // 5 min idle: nothing is old enough, but the GC visits every bucket and the rover
        // ends where it started.
        t.counter = 2;
        t.check_expire(t0() + 5 * MIN, DAY);
        assert_eq!((t.len(), t.rover, t.counter), (n, 0, 2));
        // 6 min idle: stops after the bucket where 40 have gone, so 40 plus at most that
        // bucket's remainder (< 16 + a few per bucket); the counter does not move.
        t.check_expire(t0() + 6 * MIN, DAY);
        let deleted = n - t.len();
        assert!((40..40 + 40).contains(&deleted), "deleted {deleted}");
        assert_eq!(t.entries(), t.len());
        assert_eq!(t.counter, 2);
        assert!(t.rover > 0, "the rover moved to where the sweep stopped");
        // Within the maximum again: only the counter moves.
        t.check_expire(t0() + 7 * MIN, DAY);
        assert_eq!((t.entries(), t.counter), (n - deleted, 3));
    }

    #[test]
    fn partial_gc_goal_is_capped_at_half_the_maximum() {
        let mut t: CacheTable<u8> = CacheTable::new(t0());
        // 2 × max + 1000 entries: (max + 1000) × 4 / 3 > max / 2 → goal = max / 2.
        let n = 2 * LBLC_MAX_ENTRIES + 1000;
        for i in 0..n {
            let k = u32::try_from(i).unwrap();
            t.insert(Ipv4Addr::from(0x0A00_0000 + k), 0, t0());
        }
        t.counter = 2;
        t.check_expire(t0() + 6 * MIN, DAY);
        let deleted = n - t.len();
        // Goal 8192; whole buckets of ~33 entries: overshoot < one bucket's worth.
        assert!(
            (LBLC_MAX_ENTRIES / 2..LBLC_MAX_ENTRIES / 2 + 100).contains(&deleted),
            "deleted {deleted}"
        );
    }

    /// The replacement over-count can push `entries` over the maximum on its own; the
    /// partial GC then runs every minute and the counter no longer reaches the full
    /// sweep — the kernel's behaviour, reproduced.
    #[test]
    fn replacement_overcount_steers_the_gc_like_the_kernel() {
        let mut t: CacheTable<u8> = CacheTable::new(t0());
        t.insert(VIP, 0, t0());
        for _ in 0..LBLC_MAX_ENTRIES {
            t.replace(VIP, 1, t0());
        }
        assert_eq!((t.len(), t.entries()), (1, LBLC_MAX_ENTRIES + 1));
        t.counter = 29;
        t.check_expire(t0() + MIN, DAY);
        // Over the "maximum": partial GC (nothing idle 6 min), counter stays at 29.
        assert_eq!((t.len(), t.counter), (1, 29));
    }

    #[test]
    fn clone_box_is_independent() {
        let list = w(&[1, 1]);
        let mut s = lblc();
        let mut copy = s.clone_box();
        assert_eq!(copy.schedule(t0(), &list, &to(VIP), None), Some(0));
        assert!(s.is_empty(), "the copy's cache entry is its own");
        assert_eq!(pick_at(&mut s, t0(), &list), Some(0));
        assert_eq!(copy.poll_timeout(), s.poll_timeout());
    }

    pub(in super::super) const V6_VIP: Ipv6Addr =
        Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 0x10);

    /// Real server `i` of an IPv6 list: 2001:db8:b::(11+i), port 80.
    pub(in super::super) fn rs6(i: u16) -> IpAddr {
        Ipv6Addr::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, 0x11 + i).into()
    }

    /// The kernel's IPv6 bucket, written out: XOR of the four big-endian 32-bit words
    /// (`ntohl` of the XOR of the network-order words), then `hash_32(fold, 10)` = the
    /// top 10 bits of `fold × 0x61C88647 mod 2³²`.
    fn formula_v6(addr: Ipv6Addr) -> usize {
        let o = addr.octets();
        let word = |i: usize| u32::from_be_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
        let folded = u64::from(word(0) ^ word(4) ^ word(8) ^ word(12));
        (((folded * 0x61C8_8647) & 0xffff_ffff) >> 22) as usize
    }

    #[test]
    fn v6_bucket_is_hash_32_10_bits_of_the_word_xor() {
        // 2001:db8:f::10 folds to 0x200e0da8 → bucket 585; ::11 → 976, ::12 → 343 (the
        // formula here and an independent Python model of ip_vs_lblc.c agree).
        assert_eq!(lblc_bucket(V6_VIP), formula_v6(V6_VIP));
        assert_eq!(lblc_bucket(V6_VIP), 585);
        let a = Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 0x11);
        let b = Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 0x12);
        assert_eq!((lblc_bucket(a), lblc_bucket(b)), (976, 343));
        for hi in 0..=255u16 {
            let a = Ipv6Addr::new(0x2001, 0xdb8, hi, 0, 0, 0, 0, 0x10);
            assert_eq!(lblc_bucket(a), formula_v6(a), "{a}");
        }
        // IPv4 through IpAddr: unchanged.
        assert_eq!(lblc_bucket(IpAddr::from(VIP)), 203);
    }

    #[test]
    fn v6_destination_is_cached_by_its_whole_address() {
        // A v6 service with a mixed list: two IPv6 real servers and a tunnelled IPv4 one.
        let mut list = load(&[(1, 1, 0), (1, 0, 0), (1, 2, 0)]);
        list[0].addr = rs6(0);
        list[2].addr = rs6(2);
        let mut s = lblc();
        let mut e = Explain::new();
        assert_eq!(s.schedule(t0(), &list, &to(V6_VIP), Some(&mut e)), Some(1));
        assert_eq!(
            e.as_str(),
            "lblc: 2001:db8:f::10 not cached -> wlc 192.0.2.12:80 0*256+0/w1"
        );
        assert_eq!(s.cached(V6_VIP), Some(list[1].endpoint()));
        // 2001:db8:f::1:10 and 2001:db8:e::10 fold alike (0x200f0da8, bucket 98) but
        // are different keys: each gets its own entry.
        let x = Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 1, 0x10);
        let y = Ipv6Addr::new(0x2001, 0xdb8, 0xe, 0, 0, 0, 0, 0x10);
        assert_eq!((lblc_bucket(x), lblc_bucket(y)), (98, 98));
        let busy = load(&[(1, 0, 0), (1, 1, 0), (1, 2, 0)]);
        let mut busy6 = busy.clone();
        busy6[0].addr = rs6(0);
        busy6[2].addr = rs6(2);
        s.dest_changed(&busy6, 0);
        s.dest_changed(&busy6, 1);
        assert_eq!(s.schedule(t0(), &busy6, &to(x), None), Some(0));
        let idle0 = load(&[(1, 3, 0), (1, 1, 0), (1, 0, 0)]);
        let mut idle2 = idle0.clone();
        idle2[0].addr = rs6(0);
        idle2[2].addr = rs6(2);
        for i in 0..3 {
            s.dest_changed(&idle2, i);
        }
        let mut e = Explain::new();
        assert_eq!(s.schedule(t0(), &idle2, &to(y), Some(&mut e)), Some(2));
        assert_eq!(
            e.as_str(),
            "lblc: 2001:db8:e::10 not cached -> wlc [2001:db8:b::13]:80 0*256+0/w1"
        );
        assert_eq!(s.cached(x), Some(SocketAddr::new(rs6(0), 80)));
        assert_eq!(s.cached(y), Some(SocketAddr::new(rs6(2), 80)));
        assert_eq!(s.len(), 3);
        // A hit on y sticks to its IPv6 real server; x's (active 3 > weight 1 while 2 is
        // below half) is lblc-overloaded and spills to 2.
        let mut e = Explain::new();
        assert_eq!(s.schedule(t0(), &idle2, &to(y), Some(&mut e)), Some(2));
        assert_eq!(
            e.as_str(),
            "lblc: cache hit 2001:db8:e::10 -> [2001:db8:b::13]:80"
        );
        assert_eq!(s.schedule(t0(), &idle2, &to(x), None), Some(2));
        assert_eq!(s.cached(x), Some(SocketAddr::new(rs6(2), 80)));
    }

    /// An IPv4 and an IPv6 key with the same fold share a bucket, never an entry (the
    /// kernel compares whole addresses).
    #[test]
    fn v4_and_v6_keys_with_the_same_fold_stay_apart() {
        // 32.14.13.168 = 0x200e0da8, the fold of 2001:db8:f::10.
        let v4 = Ipv4Addr::new(32, 14, 13, 168);
        assert_eq!(lblc_bucket(v4), lblc_bucket(V6_VIP));
        let mut t: CacheTable<u8> = CacheTable::new(t0());
        t.insert(v4, 4, t0());
        t.insert(V6_VIP, 6, t0());
        let get = |t: &CacheTable<u8>, a: IpAddr| t.get(a).map(|e| e.value);
        assert_eq!(get(&t, v4.into()), Some(4));
        assert_eq!(get(&t, V6_VIP.into()), Some(6));
        t.replace(V6_VIP, 7, t0());
        assert_eq!(
            (get(&t, v4.into()), get(&t, V6_VIP.into())),
            (Some(4), Some(7))
        );
        assert_eq!((t.len(), t.entries()), (2, 3));
        // ::ffff:32.14.13.168 is an IPv6 address: another key again.
        let mapped = v4.to_ipv6_mapped();
        assert_eq!(get(&t, mapped.into()), None);
    }
}
