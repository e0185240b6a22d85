//! nq — never queue (kernel `net/netfilter/ipvs/ip_vs_nq.c`, spec b.7).
//!
//! State: a [`Tournament`] index of the list (`index.rs`; key `(0, weight)` when idle,
//! else `(active + 1, weight)`), kept in sync by `update` and `dest_changed`: a pick is
//! O(1), a count change O(log n), and the pick is always the kernel scan's
//! ([`NeverQueue::pick`], the reference; debug builds assert it). Invariants:
//! - Eligible: not OVERLOAD and `weight != 0`, for every destination (unlike sed, where
//!   later ones are only checked for OVERLOAD).
//! - The first eligible destination in list order with no active connection is returned at
//!   once, without looking further.
//! - Otherwise sed's rule: the least `(active + 1) / weight`, cross-multiplied and strict,
//!   so ties keep the earlier destination. None when nothing is eligible.
//! - Inactive connections are ignored, so a destination carrying only UDP (always
//!   inactive) counts as idle.
//! - Explanation: `nq: 192.0.2.12:80 idle -> 192.0.2.12:80`, or sed's comparison with the
//!   runner-up when none is idle.

use std::cmp::Ordering;
use std::time::Instant;

use lvs_proto::SchedulerKind;

use super::index::{Rule, Tournament};
use super::sed::{Delay, compare_expected, expected};
use super::{Dest, Explain, Flow, ListChange, Scheduler, explain_none};

/// nq's ranking: an idle destination's key is 0, which beats every busy one and ties the
/// other idle ones (so the first idle wins); busy ones rank as in sed.
#[derive(Debug)]
struct Nq;

impl Rule for Nq {
    #[inline]
    fn key(d: &Dest) -> Option<(u64, u32)> {
        let p = if d.active == 0 { 0 } else { expected(d) };
        (d.weight != 0 && !d.overloaded).then_some((p, d.weight))
    }

    fn scan(dests: &[Dest]) -> Option<usize> {
        NeverQueue::pick(dests, usize::MAX)
    }
}

/// Never-queue scheduler: its index of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeverQueue {
    index: Tournament<Nq>,
}

impl NeverQueue {
    /// The scheduler for `dests`.
    pub fn new(dests: &[Dest]) -> Self {
        NeverQueue {
            index: Tournament::new(dests),
        }
    }

    /// The kernel's loop, leaving out index `skip` (`usize::MAX`: none): the reference the
    /// index must agree with, and the runner-up for explanations.
    pub(super) fn pick(dests: &[Dest], skip: usize) -> Option<usize> {
        let mut least: Option<usize> = None;
        for (i, d) in dests.iter().enumerate() {
            if i == skip || d.overloaded || d.weight == 0 {
                continue;
            }
            if d.active == 0 {
                return Some(i);
            }
            if least.is_none_or(|l| compare_expected(d, &dests[l]) == Ordering::Less) {
                least = Some(i);
            }
        }
        least
    }
}

impl Scheduler for NeverQueue {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Nq
    }

    fn schedule(
        &mut self,
        _now: Instant,
        dests: &[Dest],
        _flow: &Flow,
        explain: Option<&mut Explain>,
    ) -> Option<usize> {
        let pick = self.index.best(dests);
        debug_assert!(self.index.in_sync(dests), "nq: unannounced list change");
        debug_assert_eq!(pick, Self::pick(dests, usize::MAX), "nq: index disagrees");
        let Some(pick) = pick else {
            explain_none(explain, SchedulerKind::Nq);
            return None;
        };
        if let Some(e) = explain {
            let p = &dests[pick];
            if p.active == 0 {
                e.note(format_args!(
                    "nq: {} idle -> {}",
                    p.endpoint(),
                    p.endpoint()
                ));
            } else {
                match Self::pick(dests, pick).map(|r| &dests[r]) {
                    Some(r) => {
                        let op = if compare_expected(p, r) == Ordering::Less {
                            "<"
                        } else {
                            "="
                        };
                        e.note(format_args!(
                            "nq: {} {op} {} -> {}",
                            Delay(p),
                            Delay(r),
                            p.endpoint()
                        ));
                    }
                    None => e.note(format_args!("nq: {} alone -> {}", Delay(p), p.endpoint())),
                }
            }
        }
        Some(pick)
    }

    fn update(&mut self, dests: &[Dest], _change: ListChange) {
        self.index.rebuild(dests);
    }

    fn dest_changed(&mut self, dests: &[Dest], index: usize) {
        self.index.set(dests, index);
    }

    fn clone_box(&self) -> Box<dyn Scheduler> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{explained, load, pick1};
    use super::*;

    fn pick(dests: &[Dest]) -> Option<usize> {
        pick1(&mut NeverQueue::new(dests), dests)
    }

    #[test]
    fn first_idle_wins_immediately() {
        // A busy (2+1)/9 is by far the best ratio, but C is idle and comes first among the
        // idle ones: nq returns C without comparing; D (idle, weight 5) is never looked at.
        assert_eq!(
            pick(&load(&[(9, 2, 0), (1, 7, 0), (1, 0, 0), (5, 0, 0)])),
            Some(2)
        );
    }

    #[test]
    fn idle_means_no_active_and_skips_ineligible() {
        // A idle but weight 0, B idle but OVERLOAD: both skipped; C idle → C.
        let mut list = load(&[(0, 0, 0), (1, 0, 0), (1, 0, 0)]);
        list[1].overloaded = true;
        assert_eq!(pick(&list), Some(2));
    }

    #[test]
    fn udp_load_is_zero_load() {
        // A carries 500 UDP flows (inactive only): still idle, picked first.
        assert_eq!(pick(&load(&[(1, 0, 500), (1, 1, 0)])), Some(0));
    }

    #[test]
    fn without_idle_it_is_sed_with_ties_to_the_earlier() {
        // A (1+1)/1 = 2, B (3+1)/2 = 2: tie → A. C (1+1)/2 = 1 → C.
        assert_eq!(pick(&load(&[(1, 1, 0), (2, 3, 0)])), Some(0));
        assert_eq!(pick(&load(&[(1, 1, 0), (2, 3, 0), (2, 1, 0)])), Some(2));
    }

    #[test]
    fn later_weight_zero_is_skipped() {
        // Unlike sed, nq checks weight on every destination: B (weight 0, busy) is skipped.
        assert_eq!(pick(&load(&[(1, 5, 0), (0, 1, 0)])), Some(0));
    }

    #[test]
    fn explain_idle_and_comparison() {
        let list = load(&[(1, 1, 0), (1, 0, 0)]);
        let mut s = NeverQueue::new(&list);
        assert_eq!(
            explained(&mut s, &list),
            (
                Some(1),
                "nq: 192.0.2.12:80 idle -> 192.0.2.12:80".to_owned()
            )
        );
        let list = load(&[(1, 3, 0), (2, 1, 0)]);
        s.update(&list, ListChange::Edited);
        assert_eq!(
            explained(&mut s, &list).1,
            "nq: 192.0.2.12:80 (1+1)/w2 < 192.0.2.11:80 (3+1)/w1 -> 192.0.2.12:80"
        );
    }
}
