//! fo — weighted failover (kernel `net/netfilter/ipvs/ip_vs_fo.c`, spec b.13).
//!
//! State: a [`Tournament`] index of the list (`index.rs`; key `(1, weight)`, so the least
//! `1 / weight` is the highest weight), kept in sync by `update` and `dest_changed`: a pick
//! is O(1), an OVERLOAD change O(log n), and the pick is always the kernel scan's
//! ([`WeightedFailover::pick`], the reference; debug builds assert it). Invariants:
//! - Among destinations that are not OVERLOAD, the one with the highest weight, found with
//!   a strict `>` starting from 0: weight 0 never qualifies, and the earliest in list order
//!   wins a tie. None when nothing qualifies.
//! - Connection counts are not looked at: all new connections go to one destination until
//!   it is overloaded (thresholds), quiesced or removed.
//! - Explanation: the pick against the runner-up, e.g.
//!   `fo: 192.0.2.12:80 w5 > 192.0.2.11:80 w3 -> 192.0.2.12:80`; `=` marks a tie won by
//!   list order.

use std::time::Instant;

use lvs_proto::SchedulerKind;

use super::index::{Rule, Tournament};
use super::{Dest, Explain, Flow, ListChange, Scheduler, explain_none};

/// fo's ranking: the highest weight among weight > 0 and not OVERLOAD.
#[derive(Debug)]
struct Fo;

impl Rule for Fo {
    #[inline]
    fn key(d: &Dest) -> Option<(u64, u32)> {
        (d.weight > 0 && !d.overloaded).then_some((1, d.weight))
    }

    fn scan(dests: &[Dest]) -> Option<usize> {
        WeightedFailover::pick(dests, usize::MAX)
    }
}

/// Weighted-failover scheduler: its index of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedFailover {
    index: Tournament<Fo>,
}

impl WeightedFailover {
    /// The scheduler for `dests`.
    pub fn new(dests: &[Dest]) -> Self {
        WeightedFailover {
            index: Tournament::new(dests),
        }
    }

    /// The kernel's loop, leaving out index `skip` (`usize::MAX`: none): the reference the
    /// index must agree with, and the runner-up for explanations.
    pub(super) fn pick(dests: &[Dest], skip: usize) -> Option<usize> {
        let mut best = None;
        let mut hw = 0;
        for (i, d) in dests.iter().enumerate() {
            if i != skip && !d.overloaded && d.weight > hw {
                best = Some(i);
                hw = d.weight;
            }
        }
        best
    }
}

impl Scheduler for WeightedFailover {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Fo
    }

    fn schedule(
        &mut self,
        _now: Instant,
        dests: &[Dest],
        _flow: &Flow,
        explain: Option<&mut Explain>,
    ) -> Option<usize> {
        let pick = self.index.best(dests);
        debug_assert!(self.index.in_sync(dests), "fo: unannounced list change");
        debug_assert_eq!(pick, Self::pick(dests, usize::MAX), "fo: index disagrees");
        let Some(pick) = pick else {
            explain_none(explain, SchedulerKind::Fo);
            return None;
        };
        if let Some(e) = explain {
            let p = &dests[pick];
            match Self::pick(dests, pick).map(|r| &dests[r]) {
                Some(r) => {
                    let op = if p.weight > r.weight { ">" } else { "=" };
                    e.note(format_args!(
                        "fo: {} w{} {op} {} w{} -> {}",
                        p.endpoint(),
                        p.weight,
                        r.endpoint(),
                        r.weight,
                        p.endpoint()
                    ));
                }
                None => e.note(format_args!(
                    "fo: {} w{} alone -> {}",
                    p.endpoint(),
                    p.weight,
                    p.endpoint()
                )),
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
    use super::super::tests::{explained, load, pick1, picks, w};
    use super::*;

    fn pick(dests: &[Dest]) -> Option<usize> {
        pick1(&mut WeightedFailover::new(dests), dests)
    }

    #[test]
    fn highest_weight_first_on_tie() {
        // A3 B5 C5 D1: max weight 5, B comes before C.
        assert_eq!(pick(&w(&[3, 5, 5, 1])), Some(1));
    }

    #[test]
    fn ignores_load() {
        // B carries 1000 established connections, A none: weight alone decides, every time.
        let list = load(&[(1, 0, 0), (2, 1000, 0)]);
        let mut s = WeightedFailover::new(&list);
        assert_eq!(picks(&mut s, &list, 4), "BBBB");
    }

    #[test]
    fn fails_over_when_overloaded_or_quiesced() {
        // A3 B5 C5: B overloaded → C (next 5); C quiesced too → A.
        let mut list = w(&[3, 5, 5]);
        list[1].overloaded = true;
        assert_eq!(pick(&list), Some(2));
        list[2].weight = 0;
        assert_eq!(pick(&list), Some(0));
        // And back, as soon as B's OVERLOAD clears (read live, no update needed).
        list[1].overloaded = false;
        assert_eq!(pick(&list), Some(1));
    }

    #[test]
    fn explain_compares_with_runner_up() {
        let list = w(&[3, 5, 5]);
        let mut s = WeightedFailover::new(&list);
        assert_eq!(
            explained(&mut s, &list),
            (
                Some(1),
                "fo: 192.0.2.12:80 w5 = 192.0.2.13:80 w5 -> 192.0.2.12:80".to_owned()
            )
        );
        let list = w(&[3, 5]);
        assert_eq!(
            explained(&mut s, &list).1,
            "fo: 192.0.2.12:80 w5 > 192.0.2.11:80 w3 -> 192.0.2.12:80"
        );
    }
}
