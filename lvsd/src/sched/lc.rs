//! lc — least connection (kernel `net/netfilter/ipvs/ip_vs_lc.c`, spec b.4).
//!
//! State: a [`Tournament`] index of the list (`index.rs`; key `(overhead, 1)`), kept in
//! sync by `update` and `dest_changed`, so a pick is O(1) and a count change O(log n).
//! Invariants:
//! - The pick is always the one the kernel's scan ([`LeastConnection::pick`], kept as the
//!   reference and for explanations) would make; debug builds assert it on every call.
//! - Eligible: `weight != 0` and not OVERLOAD. Weight magnitude is otherwise ignored.
//! - The pick is the eligible destination with the least `overhead = active × 256 +
//!   inactive`, compared with strict `<`, so the earliest in list order wins a tie.
//! - UDP connections only ever count as inactive, so they weigh 1 each here.
//! - Kernel difference: the kernel holds the overhead in a 32-bit `unsigned int`, which wraps
//!   past 2^24 active connections; here it is computed exactly in `u64`.
//! - Explanation: the pick against the runner-up (the pick over the list without it), e.g.
//!   `lc: 192.0.2.12:80 1*256+0 < 192.0.2.11:80 3*256+1 -> 192.0.2.12:80`; `=` marks a tie
//!   won by list order.

use std::fmt;
use std::time::Instant;

use lvs_proto::SchedulerKind;

use super::index::{Rule, Tournament};
use super::{Dest, Explain, Flow, ListChange, Scheduler, explain_none, overhead};

/// lc's ranking: least overhead, weight only as the `!= 0` test (`index.rs` table).
#[derive(Debug)]
struct Lc;

impl Rule for Lc {
    #[inline]
    fn key(d: &Dest) -> Option<(u64, u32)> {
        (d.weight != 0 && !d.overloaded).then(|| (overhead(d), 1))
    }

    fn scan(dests: &[Dest]) -> Option<usize> {
        LeastConnection::pick(dests, usize::MAX)
    }
}

/// Least-connection scheduler: its index of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeastConnection {
    index: Tournament<Lc>,
}

impl LeastConnection {
    /// The scheduler for `dests`.
    pub fn new(dests: &[Dest]) -> Self {
        LeastConnection {
            index: Tournament::new(dests),
        }
    }

    /// The kernel's loop over `dests`, leaving out index `skip` (`usize::MAX`: none): the
    /// reference the index must agree with, and the runner-up for explanations.
    pub(super) fn pick(dests: &[Dest], skip: usize) -> Option<usize> {
        let mut least: Option<(usize, u64)> = None;
        for (i, d) in dests.iter().enumerate() {
            if i == skip || d.overloaded || d.weight == 0 {
                continue;
            }
            let doh = overhead(d);
            if least.is_none_or(|(_, loh)| doh < loh) {
                least = Some((i, doh));
            }
        }
        least.map(|(i, _)| i)
    }
}

/// How lc explanations print a destination: `addr:port active*256+inactive`.
struct Load<'a>(&'a Dest);

impl fmt::Display for Load<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        write!(f, "{} {}*256+{}", d.endpoint(), d.active, d.inactive)
    }
}

impl Scheduler for LeastConnection {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Lc
    }

    fn schedule(
        &mut self,
        _now: Instant,
        dests: &[Dest],
        _flow: &Flow,
        explain: Option<&mut Explain>,
    ) -> Option<usize> {
        let pick = self.index.best(dests);
        debug_assert!(self.index.in_sync(dests), "lc: unannounced list change");
        debug_assert_eq!(pick, Self::pick(dests, usize::MAX), "lc: index disagrees");
        let Some(pick) = pick else {
            explain_none(explain, SchedulerKind::Lc);
            return None;
        };
        if let Some(e) = explain {
            let p = &dests[pick];
            match Self::pick(dests, pick).map(|r| &dests[r]) {
                Some(r) => {
                    let op = if overhead(p) < overhead(r) { "<" } else { "=" };
                    e.note(format_args!(
                        "lc: {} {op} {} -> {}",
                        Load(p),
                        Load(r),
                        p.endpoint()
                    ));
                }
                None => e.note(format_args!("lc: {} alone -> {}", Load(p), p.endpoint())),
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
        pick1(&mut LeastConnection::new(dests), dests)
    }

    #[test]
    fn least_overhead_wins_ties_to_the_earlier() {
        // All idle: overhead 0 everywhere, strict < keeps A.
        assert_eq!(pick(&load(&[(1, 0, 0), (5, 0, 0), (3, 0, 0)])), Some(0));
        // A 2, B 1, C 1: B is the first of the two least.
        assert_eq!(pick(&load(&[(1, 0, 2), (1, 0, 1), (1, 0, 1)])), Some(1));
    }

    #[test]
    fn weight_is_ignored_except_zero() {
        // A weight 100 with 1 inactive loses to B weight 1 idle: lc does not weigh.
        assert_eq!(pick(&load(&[(100, 0, 1), (1, 0, 0)])), Some(1));
        // B idle but weight 0 (quiesced): A despite its load.
        assert_eq!(pick(&load(&[(100, 0, 1), (0, 0, 0)])), Some(0));
    }

    #[test]
    fn active_weighs_256_inactive() {
        // A 1 active = 256, B 255 inactive → B; B 256 → tie, A stays.
        assert_eq!(pick(&load(&[(1, 1, 0), (1, 0, 255)])), Some(1));
        assert_eq!(pick(&load(&[(1, 1, 0), (1, 0, 256)])), Some(0));
    }

    #[test]
    fn udp_load_counts_one_per_connection() {
        // UDP flows are all inactive: A 300 inactive vs B 2 active (512) → A.
        assert_eq!(pick(&load(&[(1, 0, 300), (1, 2, 0)])), Some(0));
    }

    #[test]
    fn fills_evenly_from_empty() {
        // Each pick adds one active connection to the pick: least count, ties to the
        // earliest → A B C A B C regardless of weights 3 2 1.
        let mut list = load(&[(3, 0, 0), (2, 0, 0), (1, 0, 0)]);
        let mut s = LeastConnection::new(&list);
        let mut order = String::new();
        for _ in 0..6 {
            let Some(i) = pick1(&mut s, &list) else { break };
            list[i].active += 1;
            s.dest_changed(&list, i);
            order.push(char::from(b'A' + i as u8));
        }
        assert_eq!(order, "ABCABC");
    }

    #[test]
    fn explain_compares_pick_with_runner_up() {
        let list = load(&[(1, 3, 1), (2, 1, 0)]);
        let mut s = LeastConnection::new(&list);
        assert_eq!(
            explained(&mut s, &list),
            (
                Some(1),
                "lc: 192.0.2.12:80 1*256+0 < 192.0.2.11:80 3*256+1 -> 192.0.2.12:80".to_owned()
            )
        );
        let list = load(&[(1, 0, 4), (2, 0, 4)]);
        s.update(&list, ListChange::Edited);
        assert_eq!(
            explained(&mut s, &list).1,
            "lc: 192.0.2.11:80 0*256+4 = 192.0.2.12:80 0*256+4 -> 192.0.2.11:80"
        );
    }
}
