//! wlc — weighted least connection, the ipvsadm default (kernel
//! `net/netfilter/ipvs/ip_vs_wlc.c`, spec b.5).
//!
//! State: a [`Tournament`] index of the list (`index.rs`; key `(overhead, weight)`), kept
//! in sync by `update` and `dest_changed`, so a pick is O(1) and a count change O(log n).
//! Invariants:
//! - The pick is always the one the kernel's scan ([`WeightedLeastConnection::pick`], kept
//!   as the reference and for explanations) would make; debug builds assert it.
//! - The first destination in list order with weight > 0 and not OVERLOAD becomes `least`;
//!   if there is none the result is None.
//! - Each later destination that is not OVERLOAD replaces `least` when
//!   `overhead(least) × weight(d) > overhead(d) × weight(least)`, i.e. it has strictly less
//!   overhead per unit of weight. Strict, so ties keep the earlier destination. Later ones
//!   are only checked for OVERLOAD: a weight-0 one can never win, its left side being 0.
//! - `overhead = active × 256 + inactive`; products in `u128`, which cannot overflow.
//! - Explanation: the pick against the runner-up (the pick of the same rule over the list
//!   without the pick), e.g.
//!   `wlc: 192.0.2.12:80 1*256+0/w2 < 192.0.2.11:80 3*256+1/w1 -> 192.0.2.12:80`; `=` marks
//!   a tie won by list order.

use std::cmp::Ordering;
use std::fmt;
use std::time::Instant;

use lvs_proto::SchedulerKind;

use super::index::{Rule, Tournament};
use super::{Dest, Explain, Flow, ListChange, Scheduler, explain_none, overhead};

/// wlc's ranking (also lblc's and lblcr's pass over the service): least
/// `overhead / weight` among weight > 0 and not OVERLOAD (`index.rs` table).
#[derive(Debug)]
pub(super) struct Wlc;

impl Rule for Wlc {
    #[inline]
    fn key(d: &Dest) -> Option<(u64, u32)> {
        (d.weight > 0 && !d.overloaded).then(|| (overhead(d), d.weight))
    }

    fn scan(dests: &[Dest]) -> Option<usize> {
        WeightedLeastConnection::pick(dests, usize::MAX)
    }
}

/// Weighted least-connection scheduler: its index of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedLeastConnection {
    index: Tournament<Wlc>,
}

impl WeightedLeastConnection {
    /// The scheduler for `dests`.
    pub fn new(dests: &[Dest]) -> Self {
        WeightedLeastConnection {
            index: Tournament::new(dests),
        }
    }

    /// The wlc comparison: does `d` beat the current `least`?
    fn beats(d: &Dest, least: &Dest) -> bool {
        Self::compare(d, least) == Ordering::Less
    }

    /// `d`'s load per weight against `other`'s, cross-multiplied (`Less` = `d` is lighter).
    fn compare(d: &Dest, other: &Dest) -> Ordering {
        let lhs = u128::from(overhead(d)) * u128::from(other.weight);
        let rhs = u128::from(overhead(other)) * u128::from(d.weight);
        lhs.cmp(&rhs)
    }

    /// The kernel's loop over `dests`, leaving out index `skip` (`usize::MAX`: none): the
    /// reference the index must agree with, and the runner-up for explanations.
    pub(super) fn pick(dests: &[Dest], skip: usize) -> Option<usize> {
        let first = dests
            .iter()
            .enumerate()
            .position(|(i, d)| i != skip && d.weight > 0 && !d.overloaded)?;
        let mut least = first;
        for (i, d) in dests.iter().enumerate().skip(first + 1) {
            if i != skip && !d.overloaded && Self::beats(d, &dests[least]) {
                least = i;
            }
        }
        Some(least)
    }
}

/// How wlc explanations print a destination: `addr:port active*256+inactive/wWEIGHT`.
struct Load<'a>(&'a Dest);

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

impl Scheduler for WeightedLeastConnection {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Wlc
    }

    fn schedule(
        &mut self,
        _now: Instant,
        dests: &[Dest],
        _flow: &Flow,
        explain: Option<&mut Explain>,
    ) -> Option<usize> {
        let pick = self.index.best(dests);
        debug_assert!(self.index.in_sync(dests), "wlc: unannounced list change");
        debug_assert_eq!(pick, Self::pick(dests, usize::MAX), "wlc: index disagrees");
        let Some(pick) = pick else {
            explain_none(explain, SchedulerKind::Wlc);
            return None;
        };
        if let Some(e) = explain {
            let p = &dests[pick];
            match Self::pick(dests, pick).map(|r| &dests[r]) {
                Some(r) => {
                    let op = if Self::compare(p, r) == Ordering::Less {
                        "<"
                    } else {
                        "="
                    };
                    e.note(format_args!(
                        "wlc: {} {op} {} -> {}",
                        Load(p),
                        Load(r),
                        p.endpoint()
                    ));
                }
                None => e.note(format_args!("wlc: {} alone -> {}", Load(p), p.endpoint())),
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
    use super::*;

    use super::super::tests::{explained, load, pick1};

    fn d(weight: u32, active: u32, inactive: u32) -> Dest {
        Dest {
            weight,
            active,
            inactive,
            ..Dest::default()
        }
    }

    fn pick(dests: &[Dest]) -> Option<usize> {
        pick1(&mut WeightedLeastConnection::new(dests), dests)
    }

    #[test]
    fn ties_go_to_the_earlier_destination() {
        // All idle: 0 × w > 0 × w never holds, so the first eligible stays.
        assert_eq!(pick(&[d(1, 0, 0), d(5, 0, 0), d(3, 0, 0)]), Some(0));
        // Equal load per weight: A 2/1 vs B 4/2 → 2×2 > 4×1 is false, A stays.
        assert_eq!(pick(&[d(1, 0, 2), d(2, 0, 4)]), Some(0));
    }

    #[test]
    fn active_weighs_256_inactive() {
        // A: 1 active = 256; B: 255 inactive = 255 → B is lighter.
        assert_eq!(pick(&[d(1, 1, 0), d(1, 0, 255)]), Some(1));
        // B: 256 inactive = 256 ties A → A stays.
        assert_eq!(pick(&[d(1, 1, 0), d(1, 0, 256)]), Some(0));
        // B: 257 inactive is heavier → A.
        assert_eq!(pick(&[d(1, 1, 0), d(1, 0, 257)]), Some(0));
    }

    #[test]
    fn weights_3_2_1_with_held_connections() {
        // A3 B2 C1 holding 3, 2, 1 established connections: 768/3 = 512/2 = 256/1,
        // a three-way tie, so A (first) wins.
        let mut list = vec![d(3, 3, 0), d(2, 2, 0), d(1, 1, 0)];
        assert_eq!(pick(&list), Some(0));
        // A holds 9: 2304/3 = 768 per weight; B 512/2 = 256 and C 256/1 = 256 tie → B.
        list[0].active = 9;
        assert_eq!(pick(&list), Some(1));
        // C's connections go inactive (1 × 1): 1/1 < 256 → C.
        list[2] = d(1, 0, 1);
        assert_eq!(pick(&list), Some(2));
        // Fill from empty with long-lived connections, each pick taking one more active
        // connection. Each step picks the least active/weight, ties to the earliest:
        // 0/3 0/2 0/1 → A | 1/3 0/2 0/1 → B | 1/3 1/2 0/1 → C | 1/3 1/2 1/1 → A |
        // 2/3 1/2 1/1 → B | 2/3 2/2 1/1 → A | 3/3 2/2 1/1 tie → A | ... settling at 6:4:2.
        for d in &mut list {
            d.active = 0;
        }
        let mut order = String::new();
        for _ in 0..12 {
            let i = pick(&list).unwrap_or(usize::MAX);
            list[i].active += 1;
            order.push(char::from(b'A' + i as u8));
        }
        assert_eq!(order, "ABCABAABCABA");
        assert_eq!([list[0].active, list[1].active, list[2].active], [6, 4, 2]);
    }

    #[test]
    fn first_candidate_needs_weight_and_no_overload() {
        // A (weight 0) and B (OVERLOAD) cannot start; C does, D is heavier per weight.
        let mut list = vec![d(0, 0, 0), d(1, 0, 0), d(1, 0, 5), d(1, 0, 9)];
        list[1].overloaded = true;
        assert_eq!(pick(&list), Some(2));
    }

    #[test]
    fn later_overloaded_and_weight_zero_never_win() {
        // B is idle but OVERLOAD; C is idle but weight 0: 10 × 0 > 0 × 1 is false.
        let mut list = vec![d(1, 0, 10), d(1, 0, 0), d(0, 0, 0)];
        list[1].overloaded = true;
        assert_eq!(pick(&list), Some(0));
    }

    #[test]
    fn nothing_eligible_is_none() {
        let mut list = vec![d(0, 0, 0), d(3, 0, 0)];
        list[1].overloaded = true;
        assert_eq!(pick(&list), None);
    }

    #[test]
    fn no_overflow_at_extremes() {
        // overhead ≈ 2^40 × weight 2^32 would overflow u64; u128 keeps it exact.
        let heavy = d(u32::MAX, u32::MAX, u32::MAX);
        let lighter = d(u32::MAX, u32::MAX, u32::MAX - 1);
        assert_eq!(pick(&[heavy, lighter]), Some(1));
        assert_eq!(pick(&[lighter, heavy]), Some(0));
    }

    #[test]
    fn explain_compares_pick_with_runner_up() {
        // A 3*256+1 = 769 per weight 1; B 256 per weight 2 = 128 per unit: B wins,
        // 769 × 2 > 256 × 1.
        let list = load(&[(1, 3, 1), (2, 1, 0)]);
        let mut s = WeightedLeastConnection::new(&list);
        assert_eq!(
            explained(&mut s, &list),
            (
                Some(1),
                "wlc: 192.0.2.12:80 1*256+0/w2 < 192.0.2.11:80 3*256+1/w1 -> 192.0.2.12:80"
                    .to_owned()
            )
        );
        // A tie keeps the earlier one, shown as `=`.
        let list = load(&[(1, 0, 2), (2, 0, 4)]);
        s.update(&list, ListChange::Edited);
        assert_eq!(
            explained(&mut s, &list).1,
            "wlc: 192.0.2.11:80 0*256+2/w1 = 192.0.2.12:80 0*256+4/w2 -> 192.0.2.11:80"
        );
        let list = load(&[(0, 0, 0), (3, 0, 7)]);
        s.update(&list, ListChange::Edited);
        assert_eq!(
            explained(&mut s, &list).1,
            "wlc: 192.0.2.12:80 0*256+7/w3 alone -> 192.0.2.12:80"
        );
        let list = load(&[(0, 0, 0)]);
        s.update(&list, ListChange::Edited);
        assert_eq!(
            explained(&mut s, &list),
            (None, "wlc: no destination available".to_owned())
        );
    }
}
