//! sed — shortest expected delay (kernel `net/netfilter/ipvs/ip_vs_sed.c`, spec b.6).
//!
//! State: a [`Tournament`] index of the list (`index.rs`; key `(active + 1, weight)`), kept
//! in sync by `update` and `dest_changed`: a pick is O(1), a count change O(log n), and
//! the pick is always the kernel scan's ([`ShortestExpectedDelay::pick`], the reference;
//! debug builds assert it). wlc's loop with `overhead = active + 1`:
//! - The first destination in list order with weight > 0 and not OVERLOAD becomes `least`;
//!   if there is none the result is None.
//! - Each later destination that is not OVERLOAD replaces `least` when
//!   `(active(least)+1) × weight(d) > (active(d)+1) × weight(least)` (strict: ties keep the
//!   earlier). A later weight-0 destination can never win, its left side being 0.
//! - Inactive connections are ignored, so UDP load (always inactive) is zero load here.
//! - Products in `u128` (the kernel uses signed 64-bit; no reachable input differs).
//! - Explanation: the pick against the runner-up, e.g.
//!   `sed: 192.0.2.12:80 (1+1)/w2 < 192.0.2.11:80 (3+1)/w1 -> 192.0.2.12:80`.

use std::cmp::Ordering;
use std::fmt;
use std::time::Instant;

use lvs_proto::SchedulerKind;

use super::index::{Rule, Tournament};
use super::{Dest, Explain, Flow, ListChange, Scheduler, explain_none};

/// sed's ranking: least `(active + 1) / weight` among weight > 0 and not OVERLOAD.
#[derive(Debug)]
struct Sed;

impl Rule for Sed {
    #[inline]
    fn key(d: &Dest) -> Option<(u64, u32)> {
        (d.weight > 0 && !d.overloaded).then(|| (expected(d), d.weight))
    }

    fn scan(dests: &[Dest]) -> Option<usize> {
        ShortestExpectedDelay::pick(dests, usize::MAX)
    }
}

/// Shortest-expected-delay scheduler: its index of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShortestExpectedDelay {
    index: Tournament<Sed>,
}

/// sed's (and nq's) expected overhead: the active connections plus the new one.
pub(super) fn expected(d: &Dest) -> u64 {
    u64::from(d.active) + 1
}

/// `d`'s expected delay against `other`'s, cross-multiplied (`Less` = `d` is sooner).
pub(super) fn compare_expected(d: &Dest, other: &Dest) -> Ordering {
    let lhs = u128::from(expected(d)) * u128::from(other.weight);
    let rhs = u128::from(expected(other)) * u128::from(d.weight);
    lhs.cmp(&rhs)
}

/// How sed and nq explanations print a destination: `addr:port (active+1)/wWEIGHT`.
pub(super) struct Delay<'a>(pub(super) &'a Dest);

impl fmt::Display for Delay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        write!(f, "{} ({}+1)/w{}", d.endpoint(), d.active, d.weight)
    }
}

impl ShortestExpectedDelay {
    /// The scheduler for `dests`.
    pub fn new(dests: &[Dest]) -> Self {
        ShortestExpectedDelay {
            index: Tournament::new(dests),
        }
    }

    /// The kernel's two-stage loop, leaving out index `skip` (`usize::MAX`: none): the
    /// reference the index must agree with, and the runner-up for explanations.
    pub(super) fn pick(dests: &[Dest], skip: usize) -> Option<usize> {
        let first = dests
            .iter()
            .enumerate()
            .position(|(i, d)| i != skip && d.weight > 0 && !d.overloaded)?;
        let mut least = first;
        for (i, d) in dests.iter().enumerate().skip(first + 1) {
            if i != skip && !d.overloaded && compare_expected(d, &dests[least]) == Ordering::Less {
                least = i;
            }
        }
        Some(least)
    }
}

impl Scheduler for ShortestExpectedDelay {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Sed
    }

    fn schedule(
        &mut self,
        _now: Instant,
        dests: &[Dest],
        _flow: &Flow,
        explain: Option<&mut Explain>,
    ) -> Option<usize> {
        let pick = self.index.best(dests);
        debug_assert!(self.index.in_sync(dests), "sed: unannounced list change");
        debug_assert_eq!(pick, Self::pick(dests, usize::MAX), "sed: index disagrees");
        let Some(pick) = pick else {
            explain_none(explain, SchedulerKind::Sed);
            return None;
        };
        if let Some(e) = explain {
            let p = &dests[pick];
            match Self::pick(dests, pick).map(|r| &dests[r]) {
                Some(r) => {
                    let op = if compare_expected(p, r) == Ordering::Less {
                        "<"
                    } else {
                        "="
                    };
                    e.note(format_args!(
                        "sed: {} {op} {} -> {}",
                        Delay(p),
                        Delay(r),
                        p.endpoint()
                    ));
                }
                None => e.note(format_args!("sed: {} alone -> {}", Delay(p), p.endpoint())),
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
        pick1(&mut ShortestExpectedDelay::new(dests), dests)
    }

    #[test]
    fn ties_go_to_the_earlier() {
        // All idle with equal weights: 1/1 each, A stays.
        assert_eq!(pick(&load(&[(1, 0, 0), (1, 0, 0)])), Some(0));
        // A (1+1)/2 = 1 vs B (0+1)/1 = 1: tie, A stays.
        assert_eq!(pick(&load(&[(2, 1, 0), (1, 0, 0)])), Some(0));
    }

    #[test]
    fn idle_heavier_weight_wins() {
        // All idle: 1/w, so the largest weight wins, unlike wlc (0/w ties everywhere).
        assert_eq!(pick(&load(&[(1, 0, 0), (3, 0, 0), (2, 0, 0)])), Some(1));
    }

    #[test]
    fn udp_load_is_zero_load() {
        // A carries 10 000 UDP flows (all inactive), B none: both (0+1)/1, tie → A.
        assert_eq!(pick(&load(&[(1, 0, 10_000), (1, 0, 0)])), Some(0));
        // One TCP established on A tips it: (1+1)/1 > (0+1)/1 → B.
        assert_eq!(pick(&load(&[(1, 1, 0), (1, 0, 10_000)])), Some(1));
    }

    #[test]
    fn fills_in_proportion_to_weight() {
        // A3 B1, each pick adds an active connection to the pick:
        // (1/3, 1/1) A | (2/3, 1) A | (3/3, 1) tie A | (4/3, 1) B | (4/3, 2/1) A |
        // (5/3, 2) A | (6/3, 2) tie A | (7/3, 2) B.
        let mut list = load(&[(3, 0, 0), (1, 0, 0)]);
        let mut s = ShortestExpectedDelay::new(&list);
        let mut order = String::new();
        for _ in 0..8 {
            let Some(i) = pick1(&mut s, &list) else { break };
            list[i].active += 1;
            s.dest_changed(&list, i);
            order.push(char::from(b'A' + i as u8));
        }
        assert_eq!(order, "AAABAAAB");
    }

    #[test]
    fn first_needs_weight_later_only_not_overloaded() {
        // A weight 0 cannot start; B OVERLOAD skipped; C starts; D weight 0 never wins.
        let mut list = load(&[(0, 0, 0), (5, 0, 0), (1, 4, 0), (0, 0, 0)]);
        list[1].overloaded = true;
        assert_eq!(pick(&list), Some(2));
    }

    #[test]
    fn explain_compares_pick_with_runner_up() {
        let list = load(&[(1, 3, 1), (2, 1, 0)]);
        let mut s = ShortestExpectedDelay::new(&list);
        assert_eq!(
            explained(&mut s, &list),
            (
                Some(1),
                "sed: 192.0.2.12:80 (1+1)/w2 < 192.0.2.11:80 (3+1)/w1 -> 192.0.2.12:80".to_owned()
            )
        );
    }
}
