//! wrr — weighted round robin (kernel `net/netfilter/ipvs/ip_vs_wrr.c`, spec b.3).
//!
//! State: `cl` (position of the last pick, or the head), `cw` (current weight), `mw`, `di`.
//! - `di` = gcd of the weights > 0 (1 if none); `mw` = max weight − (di − 1), so the final
//!   pass of a cycle runs with `cw = 1`; `cw` starts at `mw`.
//! - A pick continues after `cl` and takes the first destination that is not OVERLOAD with
//!   `weight >= cw`. At the end of the list `cw` drops by `di` and the walk restarts at the
//!   head; when `cw` falls to 0 or below it wraps back to `mw`. One call gives up (None) once
//!   every destination has been tried at `cw <= di`: "all destinations are overloaded".
//! - `mw == 0` (no weight > 0) returns None at once.
//! - Any list change (add, delete, edit: the kernel's `ip_vs_wrr_dest_changed`) puts `cl`
//!   back at the head and recomputes `di` and `mw`; then `cw` becomes `mw` if it is above
//!   `mw` or 0, else, with `di > 1`, it is rounded to `(cw / di) × di + 1`.
//! - Weight 0 is never picked: `cw >= 1` whenever destinations are compared.
//! - Explanation: the pass the pick was made in, e.g. `wrr cw=3 mw=4 di=1 -> 192.0.2.11:80`.

use std::time::Instant;

use lvs_proto::SchedulerKind;

use super::{Dest, Explain, Flow, ListChange, Scheduler};

/// Weighted round-robin scheduler state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedRoundRobin {
    /// Index of the last pick; `None` is the list head.
    cl: Option<usize>,
    /// Current weight: destinations need `weight >= cw` in this pass.
    cw: i64,
    /// Max weight − (di − 1); 0 when no destination has weight > 0.
    mw: i64,
    /// Step between passes: gcd of the weights > 0, or 1.
    di: i64,
}

impl WeightedRoundRobin {
    /// The kernel's `init_service`: head, `cw = mw`.
    pub fn new(dests: &[Dest]) -> Self {
        let (di, mw) = Self::steps(dests);
        WeightedRoundRobin {
            cl: None,
            cw: mw,
            mw,
            di,
        }
    }

    /// `(di, mw)` for a list.
    fn steps(dests: &[Dest]) -> (i64, i64) {
        let weights = dests.iter().map(|d| d.weight);
        let di = i64::from(weights.clone().filter(|&w| w > 0).reduce(gcd).unwrap_or(1));
        let max = i64::from(weights.max().unwrap_or(0));
        (di, max - (di - 1))
    }

    /// The wrr decision for one destination in the current pass.
    fn qualifies(d: &Dest, cw: i64) -> bool {
        !d.overloaded && i64::from(d.weight) >= cw
    }
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Scheduler for WeightedRoundRobin {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Wrr
    }

    fn schedule(
        &mut self,
        _now: Instant,
        dests: &[Dest],
        _flow: &Flow,
        explain: Option<&mut Explain>,
    ) -> Option<usize> {
        let pick = self.pick(dests);
        if let Some(e) = explain {
            let (cw, mw, di) = (self.cw, self.mw, self.di);
            match pick {
                Some(i) => e.note(format_args!(
                    "wrr cw={cw} mw={mw} di={di} -> {}",
                    dests[i].endpoint()
                )),
                None => e.note(format_args!(
                    "wrr cw={cw} mw={mw} di={di}: no destination available"
                )),
            }
        }
        pick
    }

    fn update(&mut self, dests: &[Dest], _change: ListChange) {
        let (di, mw) = Self::steps(dests);
        self.cl = None;
        self.di = di;
        self.mw = mw;
        if self.cw > self.mw || self.cw == 0 {
            self.cw = self.mw;
        } else if self.di > 1 {
            self.cw = (self.cw / self.di) * self.di + 1;
        }
    }

    fn clone_box(&self) -> Box<dyn Scheduler> {
        Box::new(self.clone())
    }
}

impl WeightedRoundRobin {
    /// The kernel's `ip_vs_wrr_schedule` (module doc).
    fn pick(&mut self, dests: &[Dest]) -> Option<usize> {
        if self.mw == 0 {
            return None;
        }
        // A position past the end can only come from a list shrunk without `update`.
        let last = self.cl.filter(|&p| p < dests.len());
        let mut from = last;
        let mut stop = None;
        let mut last_pass = false;
        let mut restarted = false;
        loop {
            let start = from.map_or(0, |p| p + 1);
            for (i, d) in dests.iter().enumerate().skip(start) {
                if Self::qualifies(d, self.cw) {
                    self.cl = Some(i);
                    return Some(i);
                }
                if stop == Some(i) {
                    // Tried everything at cw = 1 up to where this call started.
                    self.cl = Some(i);
                    return None;
                }
            }
            // Reached the end of the list: next pass, from the head.
            from = None;
            self.cw -= self.di;
            if self.cw <= 0 {
                self.cw = self.mw;
                // Started at the head: the pass just finished already covered every
                // destination at cw <= di. Or this call already ran its last pass.
                if last_pass || last.is_none() {
                    self.cl = None;
                    return None;
                }
                restarted = true;
            }
            last_pass = self.cw <= self.di;
            if last_pass && restarted {
                // The first low pass only covered the destinations after `last`: finish
                // with the ones up to and including it.
                stop = last;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{explained, pick1, picks, w};
    use super::*;

    #[test]
    fn a4_b3_c2() {
        // di = 1, mw = 4. Passes cw = 4: A | cw = 3: A B | cw = 2: A B C | cw = 1: A B C,
        // then cw wraps to 4 and the cycle repeats.
        let list = w(&[4, 3, 2]);
        let mut s = WeightedRoundRobin::new(&list);
        assert_eq!(picks(&mut s, &list, 9), "AABABCABC");
        assert_eq!(picks(&mut s, &list, 18), "AABABCABC".repeat(2));
    }

    #[test]
    fn a4_b2_with_gcd_step() {
        // di = 2, mw = 4 − (2 − 1) = 3. Passes cw = 3: A | cw = 1: A B. Repeats.
        let list = w(&[4, 2]);
        let mut s = WeightedRoundRobin::new(&list);
        assert_eq!(picks(&mut s, &list, 6), "AABAAB");
    }

    #[test]
    fn equal_weights_are_plain_round_robin() {
        // di = 3, mw = 1: a single pass at cw = 1 per cycle.
        let list = w(&[3, 3, 3]);
        let mut s = WeightedRoundRobin::new(&list);
        assert_eq!(picks(&mut s, &list, 6), "ABCABC");
    }

    #[test]
    fn all_weight_zero_is_none() {
        // No weight > 0: di = 1, mw = 0, so every call fails at once.
        let list = w(&[0, 0]);
        let mut s = WeightedRoundRobin::new(&list);
        assert_eq!(picks(&mut s, &list, 3), "---");
        assert_eq!(s.cl, None);
    }

    #[test]
    fn weight_zero_is_skipped() {
        // B (0) can never reach cw >= 1. A2 C1: cw = 2: A | cw = 1: A C.
        let list = w(&[2, 0, 1]);
        let mut s = WeightedRoundRobin::new(&list);
        assert_eq!(picks(&mut s, &list, 6), "AACAAC");
    }

    #[test]
    fn overloaded_skipped_then_all_overloaded_is_none() {
        // A4 B3 C2 with A overloaded: cw = 4: - | 3: B | 2: B C | 1: B C, wrap.
        let mut list = w(&[4, 3, 2]);
        list[0].overloaded = true;
        let mut s = WeightedRoundRobin::new(&list);
        assert_eq!(picks(&mut s, &list, 5), "BBCBC");
        // Everything overloaded: the call from C walks the remaining passes, restarts at
        // cw = mw, runs down to cw = 1 again and stops at C where it began.
        for d in &mut list {
            d.overloaded = true;
        }
        assert_eq!(pick1(&mut s, &list), None);
        assert_eq!(s.cl, Some(2));
        assert_eq!(s.cw, 1);
        // From the head it gives up after one full descent and leaves cl at the head.
        let mut s = WeightedRoundRobin::new(&list);
        assert_eq!(pick1(&mut s, &list), None);
        assert_eq!((s.cl, s.cw), (None, 4));
    }

    #[test]
    fn restarted_call_finishes_at_cw_1_up_to_where_it_began() {
        // A1 B2: di 1, mw 2. cw 2: B | cw 1: A B. Now cl = B, cw = 1.
        let mut list = w(&[1, 2]);
        let mut s = WeightedRoundRobin::new(&list);
        assert_eq!(picks(&mut s, &list, 3), "BAB");
        // B overloaded. The call from B reaches the end, cw wraps to 2 (restarted), the
        // pass at cw 2 finds nothing, then the last pass at cw 1 runs from the head with a
        // stop at B and finds A before reaching it.
        list[1].overloaded = true;
        assert_eq!(pick1(&mut s, &list), Some(0));
        assert_eq!((s.cl, s.cw), (Some(0), 1));
    }

    #[test]
    fn update_resets_to_head_and_keeps_cw_in_range() {
        // A4 B3 C2, two picks: A (cw 4), A (cw 3). Edit A to 2: max 3, di 1, mw 3;
        // cw = 3 is within range and di = 1, so cw stays 3. cl goes back to the head:
        // cw 3: B | cw 2: A B C | cw 1: A B C.
        let mut list = w(&[4, 3, 2]);
        let mut s = WeightedRoundRobin::new(&list);
        assert_eq!(picks(&mut s, &list, 2), "AA");
        list[0].weight = 2;
        s.update(&list, ListChange::Edited);
        assert_eq!((s.cl, s.cw, s.mw, s.di), (None, 3, 3, 1));
        assert_eq!(picks(&mut s, &list, 7), "BABCABC");
    }

    #[test]
    fn update_clamps_cw_above_mw() {
        // A4 B1: first pick A at cw 4. Remove A: B1 alone, mw 1, cw 4 > 1 → cw = 1.
        let list = w(&[4, 1]);
        let mut s = WeightedRoundRobin::new(&list);
        assert_eq!(pick1(&mut s, &list), Some(0));
        let list = w(&[1]);
        s.update(&list, ListChange::Removed { index: 0 });
        assert_eq!((s.cl, s.cw, s.mw), (None, 1, 1));
        assert_eq!(picks(&mut s, &list, 2), "AA");
    }

    #[test]
    fn update_rounds_cw_when_di_above_one() {
        // A6 B3: di 3, mw 6 − 2 = 4. Picks: cw 4: A | cw 1: A B. After 2 picks cw = 1.
        // Add C6 at the head (C6 A6 B3): di 3, mw 4, cw 1 is in range and di > 1, so
        // cw = (1 / 3) × 3 + 1 = 1. From the head at cw 1: C A B, then cw wraps to 4:
        // C A | cw 1: C A B. (Letters below are list positions: C=A, A=B, B=C.)
        let list = w(&[6, 3]);
        let mut s = WeightedRoundRobin::new(&list);
        assert_eq!(picks(&mut s, &list, 2), "AA");
        assert_eq!(s.cw, 1);
        let list = w(&[6, 6, 3]);
        s.update(&list, ListChange::Added { index: 0 });
        assert_eq!((s.cl, s.cw, s.mw, s.di), (None, 1, 4, 3));
        assert_eq!(picks(&mut s, &list, 8), "ABCABABC");
    }

    #[test]
    fn update_rounds_cw_down_to_a_multiple_plus_one() {
        // A8 B4: di 4, mw 8 − 3 = 5; first pick A at cw 5. Edit B to 2: di 2, mw 8 − 1 = 7.
        // cw 5 <= 7 and di > 1: cw = (5 / 2) × 2 + 1 = 5. From the head: cw 5: A |
        // cw 3: A | cw 1: A B, then cw 7: A | 5: A | 3: A | 1: A B.
        let mut list = w(&[8, 4]);
        let mut s = WeightedRoundRobin::new(&list);
        assert_eq!(pick1(&mut s, &list), Some(0));
        list[1].weight = 2;
        s.update(&list, ListChange::Edited);
        assert_eq!((s.cw, s.mw, s.di), (5, 7, 2));
        assert_eq!(picks(&mut s, &list, 9), "AAABAAAAB");
    }

    #[test]
    fn update_with_cw_zero_takes_mw() {
        // All weights 0 leaves cw = mw = 0. Adding A3: di 3, mw 3 − 2 = 1, and cw 0 → cw = mw.
        let list = w(&[0]);
        let mut s = WeightedRoundRobin::new(&list);
        assert_eq!(pick1(&mut s, &list), None);
        let list = w(&[3, 0]);
        s.update(&list, ListChange::Added { index: 0 });
        assert_eq!((s.cw, s.mw), (1, 1));
        assert_eq!(picks(&mut s, &list, 3), "AAA");
    }

    #[test]
    fn gcd_of_weights() {
        assert_eq!(gcd(12, 18), 6);
        assert_eq!(WeightedRoundRobin::steps(&w(&[0, 6, 4])), (2, 5));
        assert_eq!(WeightedRoundRobin::steps(&w(&[])), (1, 0));
    }

    #[test]
    fn explain_shows_the_pass() {
        // A4 B3 C2: the third pick is B in the pass at cw = 3.
        let list = w(&[4, 3, 2]);
        let mut s = WeightedRoundRobin::new(&list);
        assert_eq!(picks(&mut s, &list, 2), "AA");
        assert_eq!(
            explained(&mut s, &list),
            (Some(1), "wrr cw=3 mw=4 di=1 -> 192.0.2.12:80".to_owned())
        );
        let list = w(&[0]);
        let mut s = WeightedRoundRobin::new(&list);
        assert_eq!(
            explained(&mut s, &list),
            (
                None,
                "wrr cw=0 mw=0 di=1: no destination available".to_owned()
            )
        );
    }
}
