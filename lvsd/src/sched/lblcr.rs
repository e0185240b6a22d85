//! lblcr — locality-based least connection with replication (kernel
//! `net/netfilter/ipvs/ip_vs_lblcr.c`, spec b.9).
//!
//! Invariants:
//! - Keyed, hashed and garbage-collected exactly like lblc (`lblc.rs`; the expiration is
//!   `SchedParams::lblc_expiration`, standing in for sysctl `lblcr_expiration`, both
//!   24 h by default). Each entry maps a packet destination address to a **set** of
//!   destinations (newest member first) with `lastmod`, the time the set last changed.
//! - schedule with an entry: `lastuse = now`, then
//!   1. `d = min(set)`: members with the OVERLOAD flag are skipped; the first candidate
//!      needs weight > 0 and AVAILABLE (still in the service); a later member replaces it
//!      when AVAILABLE and `overhead(least) × w(m) > overhead(m) × w(least)`.
//!   2. If the set has more than one member and `now > lastmod + expiration`, the most
//!      loaded member is erased (`max(set)`: first member with weight > 0, replaced by a
//!      later one with weight > 0 and strictly more `overhead / weight`; no OVERLOAD or
//!      AVAILABLE test) and `lastmod = now`. This happens after `d` was chosen, so `d`
//!      can be the member just erased and is still used (kernel order, kept).
//!   3. If `d` exists and is not lblc-overloaded (`active > weight` while some service
//!      destination has `active × 2 < weight`), use `d`.
//!   4. Else wlc over the service (None if none); add the pick to the set's head unless
//!      already a member (then `lastmod = now`).
//! - Without an entry: wlc over the service (None if none), cached as a one-member set.
//! - Members are named by `addr:port` (see lblc). A member no longer in the service is not
//!   AVAILABLE; step 2 judges it by the counters it had when last seen.
//! - No `add_dest`/`del_dest`/`upd_dest` hooks in the kernel; [`Scheduler::update`] only
//!   rebuilds the [`ServiceIndex`] (lblc's: the wlc pass over the service and the
//!   lblc-overload test in O(1), kept in sync by `update` and `dest_changed`), which
//!   changes no decision. Step 1 and 2 scan the set, as the kernel does: O(set size).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use lvs_proto::SchedulerKind;

use super::lblc::{CacheTable, DestRef, Load, Overload, ServiceIndex, lblc_overloaded};
use super::{Dest, Explain, Flow, ListChange, Scheduler, overhead};

/// A cached destination set (`struct ip_vs_dest_set`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct DestSet {
    /// Members, newest first (`list_add_rcu` at the head).
    members: Vec<DestRef>,
    /// When a member was last added or erased.
    lastmod: Instant,
}

impl DestSet {
    /// `ip_vs_dest_set_min`: the index in `dests` of the least loaded AVAILABLE member.
    /// Resolves (and refreshes) every member on the way.
    fn min(&mut self, dests: &[Dest]) -> Option<usize> {
        let mut least: Option<(usize, u32, u64)> = None;
        for m in &mut self.members {
            let live = m.resolve(dests);
            // Not in the service: not AVAILABLE, never chosen (its OVERLOAD flag, checked
            // first by the kernel, makes no difference then).
            let Some(i) = live else { continue };
            let d = m.seen;
            if d.overloaded {
                continue;
            }
            match least {
                None if d.weight > 0 => least = Some((i, d.weight, overhead(&d))),
                None => {}
                Some((_, lw, loh)) => {
                    let doh = overhead(&d);
                    if u128::from(loh) * u128::from(d.weight) > u128::from(doh) * u128::from(lw) {
                        least = Some((i, d.weight, doh));
                    }
                }
            }
        }
        least.map(|(i, _, _)| i)
    }

    /// `ip_vs_dest_set_max`: the position in the set of the most loaded member with
    /// weight > 0, judged by each member's snapshot (fresh for members in the service).
    fn max(&self) -> Option<usize> {
        let mut most: Option<(usize, u32, u64)> = None;
        for (pos, m) in self.members.iter().enumerate() {
            let d = &m.seen;
            if d.weight == 0 {
                continue;
            }
            let doh = overhead(d);
            match most {
                None => most = Some((pos, d.weight, doh)),
                Some((_, mw, moh)) => {
                    // moh/mw < doh/dw ⇔ moh·dw < doh·mw.
                    if u128::from(moh) * u128::from(d.weight) < u128::from(doh) * u128::from(mw) {
                        most = Some((pos, d.weight, doh));
                    }
                }
            }
        }
        most.map(|(pos, _, _)| pos)
    }

    /// `ip_vs_dest_set_insert(check = true)`: adds `dests[i]` at the head unless it is a
    /// member; `lastmod = now` when added.
    fn insert(&mut self, i: usize, d: &Dest, now: Instant) {
        if self.members.iter().any(|m| m.endpoint == d.endpoint()) {
            return;
        }
        self.members.insert(0, DestRef::new(i, d));
        self.lastmod = now;
    }
}

/// How an explanation prints a set: `[192.0.2.12:80, 192.0.2.11:80]`.
struct Members<'a>(&'a [DestRef]);

impl fmt::Display for Members<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (k, m) in self.0.iter().enumerate() {
            if k > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}", m.endpoint)?;
        }
        f.write_str("]")
    }
}

/// Locality-based least-connection with replication: the destination-address cache of
/// destination sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalityReplicated {
    table: CacheTable<DestSet>,
    expiration: Duration,
    index: ServiceIndex,
}

impl LocalityReplicated {
    /// The kernel's `ip_vs_lblcr_init_svc` at `now`; `expiration` is `lblcr_expiration`.
    /// The index of the list is built by [`Scheduler::update`], or on the first pick.
    pub fn new(expiration: Duration, now: Instant) -> Self {
        LocalityReplicated {
            table: CacheTable::new(now),
            expiration,
            index: ServiceIndex::new(&[]),
        }
    }

    /// The set cached for packet destination `addr` (IPv4 or IPv6), newest member first.
    pub fn cached(&self, addr: impl Into<IpAddr>) -> Option<Vec<SocketAddr>> {
        self.table
            .get(addr.into())
            .map(|e| e.value.members.iter().map(|m| m.endpoint).collect())
    }

    /// The number of cached entries.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Scheduler for LocalityReplicated {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Lblcr
    }

    fn schedule(
        &mut self,
        now: Instant,
        dests: &[Dest],
        flow: &Flow,
        explain: Option<&mut Explain>,
    ) -> Option<usize> {
        let key = flow.dst.ip();
        let expiration = self.expiration;
        let index = &mut self.index;
        index.fit(dests);
        debug_assert!(index.in_sync(dests), "lblcr: unannounced list change");
        let Some(en) = self.table.get_mut(key) else {
            let pick = index.wlc(dests);
            if let Some(e) = explain {
                match pick.and_then(|i| dests.get(i)) {
                    Some(d) => e.note(format_args!(
                        "lblcr: {key} not cached -> wlc {}, new set",
                        Load(d)
                    )),
                    None => e.note(format_args!(
                        "lblcr: {key} not cached -> wlc: no destination available"
                    )),
                }
            }
            let i = pick?;
            let d = dests.get(i)?;
            let set = DestSet {
                members: vec![DestRef::new(i, d)],
                lastmod: now,
            };
            self.table.insert(key, set, now);
            return Some(i);
        };
        en.lastuse = now;
        let set = &mut en.value;
        let least = set.min(dests);
        // More than one member and unchanged for longer than the expiration: drop the
        // most loaded one (after `least` was chosen, as the kernel does).
        let mut dropped = None;
        if set.members.len() > 1 && now.saturating_duration_since(set.lastmod) > expiration {
            if let Some(pos) = set.max() {
                dropped = Some(set.members.remove(pos).endpoint);
                set.lastmod = now;
            }
        }
        let overloaded = least
            .and_then(|i| dests.get(i))
            .is_some_and(|d| index.overloaded(d, dests));
        // The cached pick, or else wlc over the service (never consulted on a hit).
        let hit = least.filter(|_| !overloaded);
        let pick = hit.or_else(|| index.wlc(dests));
        if let Some(e) = explain {
            // The destination below half that makes `least` overloaded, by the scan.
            let overload = least
                .filter(|_| overloaded)
                .and_then(|i| lblc_overloaded(dests.get(i)?, dests));
            let head = Head {
                key,
                members: &set.members,
                dropped,
                expiration,
            };
            let why = Why {
                dests,
                least,
                overload,
            };
            match (hit, pick.and_then(|i| dests.get(i))) {
                (Some(_), Some(d)) => {
                    e.note(format_args!("lblcr: cache hit {head} -> least {}", Load(d)));
                }
                (None, Some(d)) => e.note(format_args!(
                    "lblcr: {head} {why} -> wlc {}, added to set",
                    Load(d)
                )),
                (_, None) => e.note(format_args!(
                    "lblcr: {head} {why} -> wlc: no destination available"
                )),
            }
        }
        if hit.is_some() {
            return hit;
        }
        let i = pick?;
        let d = dests.get(i)?;
        set.insert(i, d, now);
        Some(i)
    }

    fn update(&mut self, dests: &[Dest], _change: ListChange) {
        // ip_vs_lblcr.c registers no add/del/upd_dest hook: only the index follows.
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

/// The start of an explanation: `192.0.2.1 set [192.0.2.12:80, 192.0.2.11:80]`, plus
/// the member dropped for age, if any.
struct Head<'a> {
    key: IpAddr,
    members: &'a [DestRef],
    dropped: Option<SocketAddr>,
    expiration: Duration,
}

impl fmt::Display for Head<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} set {}", self.key, Members(self.members))?;
        if let Some(ep) = self.dropped {
            write!(
                f,
                " (dropped most loaded {ep}, unchanged over {} s)",
                self.expiration.as_secs()
            )?;
        }
        Ok(())
    }
}

/// Why the set's least loaded member was not used, for explanations.
struct Why<'a> {
    dests: &'a [Dest],
    least: Option<usize>,
    overload: Option<usize>,
}

impl fmt::Display for Why<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let get = |i: Option<usize>| i.and_then(|i| self.dests.get(i));
        match (get(self.least), get(self.overload)) {
            (Some(d), Some(m)) => write!(f, "least {} overloaded {}", d.endpoint(), Overload(d, m)),
            _ => f.write_str("no available member"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::super::lblc::tests::{DAY, V6_VIP, rs6, to};
    use super::super::tests::{load, t0, w};
    use super::*;

    const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const MIN: Duration = Duration::from_secs(60);

    fn lblcr() -> LocalityReplicated {
        LocalityReplicated::new(DAY, t0())
    }

    fn pick_at(s: &mut LocalityReplicated, now: Instant, dests: &[Dest]) -> Option<usize> {
        s.schedule(now, dests, &to(VIP), None)
    }

    fn explain_at(
        s: &mut LocalityReplicated,
        now: Instant,
        dests: &[Dest],
    ) -> (Option<usize>, String) {
        let mut e = Explain::new();
        let pick = s.schedule(now, dests, &to(VIP), Some(&mut e));
        (pick, e.as_str().to_owned())
    }

    fn ep(d: &Dest) -> SocketAddr {
        d.endpoint()
    }

    #[test]
    fn first_pick_is_wlc_and_becomes_a_one_member_set() {
        let list = load(&[(1, 2, 0), (1, 1, 0)]);
        let mut s = lblcr();
        let (pick, text) = explain_at(&mut s, t0(), &list);
        // wlc: 512/1 vs 256/1 → 1.
        assert_eq!(pick, Some(1));
        assert_eq!(
            text,
            "lblcr: 192.0.2.1 not cached -> wlc 192.0.2.12:80 1*256+0/w1, new set"
        );
        assert_eq!(s.cached(VIP), Some(vec![ep(&list[1])]));
    }

    #[test]
    fn cache_hit_uses_the_least_loaded_member() {
        let mut list = load(&[(1, 0, 0), (1, 0, 0), (1, 0, 0)]);
        let mut s = lblcr();
        assert_eq!(pick_at(&mut s, t0(), &list), Some(0));
        // Overload 0 in lblc's sense (active 3 > 1, 1 and 2 below half): wlc adds 1.
        list[0].active = 3;
        s.update(&list, ListChange::Edited);
        assert_eq!(pick_at(&mut s, t0(), &list), Some(1));
        assert_eq!(s.cached(VIP), Some(vec![ep(&list[1]), ep(&list[0])]));
        // 0 idle again, 1 busier (active 1, not more than its weight): the set's least
        // loaded member is 0.
        list[0].active = 0;
        list[1].active = 1;
        s.update(&list, ListChange::Edited);
        let (pick, text) = explain_at(&mut s, t0(), &list);
        assert_eq!(pick, Some(0));
        assert_eq!(
            text,
            "lblcr: cache hit 192.0.2.1 set [192.0.2.12:80, 192.0.2.11:80] -> \
             least 192.0.2.11:80 0*256+0/w1"
        );
        // Members not in the set are never chosen from the cache, even if idler: 2 is
        // idle but wlc is not consulted on a hit.
        assert_eq!(s.cached(VIP).map(|v| v.len()), Some(2));
    }

    #[test]
    fn set_min_skips_overload_flag_weight_zero_and_removed_members() {
        let mut list = w(&[1, 1, 1]);
        let mut s = lblcr();
        assert_eq!(pick_at(&mut s, t0(), &list), Some(0));
        // Put 1 in the set too (0 lblc-overloaded).
        list[0].active = 5;
        s.update(&list, ListChange::Edited);
        assert_eq!(pick_at(&mut s, t0(), &list), Some(1));
        list[0].active = 0;
        s.update(&list, ListChange::Edited);
        // 1 (head of the set) carries the OVERLOAD flag: skipped, 0 is used.
        list[1].overloaded = true;
        s.update(&list, ListChange::Edited);
        assert_eq!(pick_at(&mut s, t0(), &list), Some(0));
        // 0 quiesced too: no first candidate in the set → wlc over the service → 2,
        // which joins the set.
        list[0].weight = 0;
        s.update(&list, ListChange::Edited);
        let (pick, text) = explain_at(&mut s, t0(), &list);
        assert_eq!(pick, Some(2));
        assert_eq!(
            text,
            "lblcr: 192.0.2.1 set [192.0.2.12:80, 192.0.2.11:80] no available member -> \
             wlc 192.0.2.13:80 0*256+0/w1, added to set"
        );
        assert_eq!(s.cached(VIP).map(|v| v.len()), Some(3));
        // 2 removed from the service: not AVAILABLE, so the set has nobody and wlc picks
        // from what is left (nobody eligible here either → None).
        list.remove(2);
        s.update(&list, ListChange::Removed { index: 2 });
        assert_eq!(pick_at(&mut s, t0(), &list), None);
    }

    #[test]
    fn later_members_need_only_availability_not_weight() {
        // Kernel detail: after the first candidate, a weight-0 member can never win
        // (0 × loh > doh × w is false), so weight 0 is effectively skipped too.
        let mut list = load(&[(1, 3, 0), (0, 0, 0)]);
        let mut s = lblcr();
        // Seed the set with 1 then 0 by hand through wlc choices.
        list[1].weight = 1;
        s.update(&list, ListChange::Edited);
        assert_eq!(pick_at(&mut s, t0(), &list), Some(1));
        list[1].active = 9; // 1 lblc-overloaded? active 9 > 1 and 0: 3 × 2 < 1 no → not.
        s.update(&list, ListChange::Edited);
        assert_eq!(pick_at(&mut s, t0(), &list), Some(1));
        list[1].weight = 0;
        s.update(&list, ListChange::Edited);
        // 1 has weight 0: the set has no first candidate → wlc → 0, added.
        assert_eq!(pick_at(&mut s, t0(), &list), Some(0));
        // Set [0, 1]: 0 first candidate (768/1); 1 (weight 0, idle) cannot beat it.
        list[1].active = 0;
        s.update(&list, ListChange::Edited);
        assert_eq!(pick_at(&mut s, t0(), &list), Some(0));
    }

    #[test]
    fn old_sets_drop_their_most_loaded_member() {
        let mut list = w(&[1, 1, 1]);
        let mut s = lblcr();
        let t = t0();
        assert_eq!(pick_at(&mut s, t, &list), Some(0));
        list[0].active = 5;
        s.update(&list, ListChange::Edited);
        assert_eq!(pick_at(&mut s, t, &list), Some(1)); // set [1, 0], lastmod t
        list[0].active = 0;
        list[1].active = 1;
        list[0].inactive = 3;
        s.update(&list, ListChange::Edited);
        // Within the expiration: nothing dropped.
        assert_eq!(pick_at(&mut s, t + DAY, &list), Some(0));
        assert_eq!(s.cached(VIP).map(|v| v.len()), Some(2));
        // After it (strictly later than lastmod + 24 h): max = 1 (256/1 > 3/1) is dropped;
        // min was 0 anyway.
        let (pick, text) = explain_at(&mut s, t + DAY + MIN, &list);
        assert_eq!(pick, Some(0));
        assert_eq!(s.cached(VIP), Some(vec![ep(&list[0])]));
        assert_eq!(
            text,
            "lblcr: cache hit 192.0.2.1 set [192.0.2.11:80] (dropped most loaded \
             192.0.2.12:80, unchanged over 86400 s) -> least 192.0.2.11:80 0*256+3/w1"
        );
        // A one-member set is never pruned.
        assert_eq!(pick_at(&mut s, t + 3 * DAY, &list), Some(0));
        assert_eq!(s.cached(VIP).map(|v| v.len()), Some(1));
    }

    /// Kernel order: min is chosen before max is erased. With equal loads both pick the
    /// set's head, so the head is erased and still returned.
    #[test]
    fn dropped_member_can_still_be_the_pick() {
        let mut list = w(&[1, 1]);
        let mut s = lblcr();
        assert_eq!(pick_at(&mut s, t0(), &list), Some(0));
        list[0].active = 5;
        s.update(&list, ListChange::Edited);
        assert_eq!(pick_at(&mut s, t0(), &list), Some(1)); // set [1, 0]
        list[0].active = 0;
        s.update(&list, ListChange::Edited);
        // Equal (idle) loads: min = head 1, max = head 1.
        assert_eq!(pick_at(&mut s, t0() + 2 * DAY, &list), Some(1));
        assert_eq!(s.cached(VIP), Some(vec![ep(&list[0])]));
    }

    #[test]
    fn set_max_uses_the_last_seen_counters_of_removed_members() {
        let mut list = w(&[1, 1, 1]);
        let mut s = lblcr();
        assert_eq!(pick_at(&mut s, t0(), &list), Some(0));
        list[0].active = 5;
        s.update(&list, ListChange::Edited);
        assert_eq!(pick_at(&mut s, t0(), &list), Some(1)); // set [1, 0], 0 seen with 5 active
        // 0 leaves the service; its last seen load (5 active) makes it the most loaded.
        let gone = list.remove(0);
        s.update(&list, ListChange::Removed { index: 0 });
        list[0].active = 1; // 192.0.2.12, now index 0
        s.update(&list, ListChange::Edited);
        assert_eq!(pick_at(&mut s, t0() + 2 * DAY, &list), Some(0));
        assert_eq!(s.cached(VIP), Some(vec![ep(&list[0])]));
        assert_ne!(ep(&list[0]), ep(&gone));
    }

    #[test]
    fn gc_expires_idle_sets() {
        let exp = Duration::from_secs(10 * 60);
        let mut s = LocalityReplicated::new(exp, t0());
        let list = w(&[1]);
        assert_eq!(pick_at(&mut s, t0(), &list), Some(0));
        assert_eq!(s.poll_timeout(), Some(t0() + MIN));
        let mut now = t0();
        for _ in 0..30 {
            now += MIN;
            s.handle_timeout(now);
        }
        // The 30th run (t0 + 30 min) is the full sweep: idle 30 min ≥ 10 min.
        assert!(s.is_empty());
    }

    #[test]
    fn empty_and_unavailable_give_none() {
        let mut s = lblcr();
        assert_eq!(pick_at(&mut s, t0(), &[]), None);
        assert!(s.is_empty(), "no entry without a pick");
        let mut l = w(&[0, 1]);
        l[1].overloaded = true;
        s.update(&l, ListChange::Edited);
        let (pick, text) = explain_at(&mut s, t0(), &l);
        assert_eq!(pick, None);
        assert_eq!(
            text,
            "lblcr: 192.0.2.1 not cached -> wlc: no destination available"
        );
    }

    #[test]
    fn clone_box_is_independent() {
        let list = w(&[1, 1]);
        let s = lblcr();
        let mut copy = s.clone_box();
        assert_eq!(copy.schedule(t0(), &list, &to(VIP), None), Some(0));
        assert!(s.is_empty());
    }

    /// An IPv6 key with a mixed set (IPv6 and tunnelled IPv4 members): cached by the
    /// whole address, members named the IPv6 way.
    #[test]
    fn v6_key_with_a_mixed_set() {
        let mut list = load(&[(1, 0, 0), (1, 0, 0), (1, 0, 0)]);
        list[0].addr = rs6(0);
        list[2].addr = rs6(2);
        let mut s = lblcr();
        let mut e = Explain::new();
        assert_eq!(s.schedule(t0(), &list, &to(V6_VIP), Some(&mut e)), Some(0));
        assert_eq!(
            e.as_str(),
            "lblcr: 2001:db8:f::10 not cached -> wlc [2001:db8:b::11]:80 0*256+0/w1, new set"
        );
        // 0 lblc-overloaded (active 3 > 1, 1 and 2 below half): wlc adds the IPv4 1.
        list[0].active = 3;
        s.update(&list, ListChange::Edited);
        let mut e = Explain::new();
        assert_eq!(s.schedule(t0(), &list, &to(V6_VIP), Some(&mut e)), Some(1));
        assert_eq!(
            e.as_str(),
            "lblcr: 2001:db8:f::10 set [[2001:db8:b::11]:80] least [2001:db8:b::11]:80 \
             overloaded (active 3 > weight 1, 192.0.2.12:80 below half) -> wlc \
             192.0.2.12:80 0*256+0/w1, added to set"
        );
        assert_eq!(s.cached(V6_VIP), Some(vec![ep(&list[1]), ep(&list[0])]));
        // Same fold, other address (2001:db8:f::10 words permuted): no entry.
        let permuted = Ipv6Addr::new(0, 0x10, 0, 0, 0xf, 0, 0x2001, 0xdb8);
        assert_eq!(s.cached(permuted), None);
        // The IPv4 key of the same fold (32.14.13.168): no entry either.
        assert_eq!(s.cached(Ipv4Addr::new(32, 14, 13, 168)), None);
        assert_eq!(s.len(), 1);
    }
}
