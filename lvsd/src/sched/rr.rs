//! rr — round robin (kernel `net/netfilter/ipvs/ip_vs_rr.c`, spec b.2).
//!
//! State: the position of the last pick, or the list head before the first pick.
//! Invariants:
//! - A pick walks forward from the node after the last pick, wraps over the head, and
//!   ends with the last pick itself (one full cycle); the first destination with
//!   weight > 0 and not OVERLOAD wins. Weight is otherwise ignored.
//! - Removing the last-picked destination moves the position to its predecessor (the head
//!   if it was first), so the next pick is the removed node's successor.
//! - Adding or removing elsewhere only shifts the index so that it names the same node
//!   (the kernel holds a node pointer; rr has no `add_dest`/`upd_dest` hook).
//! - Explanation: the destinations skipped on the way and why, then the pick, e.g.
//!   `rr: skip 192.0.2.12:80 (weight 0) -> 192.0.2.13:80`.

use std::fmt;
use std::time::Instant;

use lvs_proto::SchedulerKind;

use super::{Dest, Explain, Flow, ListChange, Scheduler, explain_none};

/// At most this many skipped destinations are named in an explanation; the rest are counted.
const EXPLAIN_SKIPS: usize = 8;

/// Round-robin scheduler state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundRobin {
    /// Index of the last pick; `None` is the list head (the kernel's sentinel).
    last: Option<usize>,
}

impl RoundRobin {
    /// Starts at the list head, so the first pick is the first eligible destination.
    pub fn new(_dests: &[Dest]) -> Self {
        RoundRobin { last: None }
    }

    /// The rr decision for one destination: can it be picked?
    fn eligible(d: &Dest) -> bool {
        d.weight > 0 && !d.overloaded
    }

    /// The walk order of one pick from position `last` (a valid index or the head).
    fn order(last: Option<usize>, len: usize) -> impl Iterator<Item = usize> {
        match last {
            None => (0..len).chain(0..0),
            Some(p) => (p + 1..len).chain(0..p + 1),
        }
    }
}

/// The explanation of one rr pick: what the walk from `last` skipped before `pick`.
struct Walk<'a> {
    dests: &'a [Dest],
    last: Option<usize>,
    pick: usize,
}

impl fmt::Display for Walk<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let skipped = RoundRobin::order(self.last, self.dests.len())
            .take_while(|&i| i != self.pick)
            .map(|i| &self.dests[i]);
        let mut n = 0;
        for d in skipped {
            if n < EXPLAIN_SKIPS {
                let why = if d.weight == 0 {
                    "weight 0"
                } else {
                    "overloaded"
                };
                let sep = if n == 0 { "" } else { ", " };
                write!(f, "{sep}skip {} ({why})", d.endpoint())?;
            }
            n += 1;
        }
        if n > EXPLAIN_SKIPS {
            write!(f, ", {} more skipped", n - EXPLAIN_SKIPS)?;
        }
        if n > 0 {
            f.write_str(" ")?;
        }
        Ok(())
    }
}

impl Scheduler for RoundRobin {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Rr
    }

    fn schedule(
        &mut self,
        _now: Instant,
        dests: &[Dest],
        _flow: &Flow,
        explain: Option<&mut Explain>,
    ) -> Option<usize> {
        // A position past the end can only come from a caller that shrank the list without
        // `update`; treat it like the head, as the kernel does when its node was unlinked.
        let last = self.last.filter(|&p| p < dests.len());
        // From the head: one pass over the list. From node p: p+1.., then ..=p.
        let Some(pick) = Self::order(last, dests.len()).find(|&i| Self::eligible(&dests[i])) else {
            explain_none(explain, SchedulerKind::Rr);
            return None;
        };
        self.last = Some(pick);
        if let Some(e) = explain {
            let walk = Walk { dests, last, pick };
            e.note(format_args!("rr: {walk}-> {}", dests[pick].endpoint()));
        }
        Some(pick)
    }

    fn update(&mut self, _dests: &[Dest], change: ListChange) {
        let Some(p) = self.last else { return };
        self.last = match change {
            ListChange::Added { index } if index <= p => Some(p + 1),
            // The pointed-at node went away: step back to its predecessor (or the head).
            ListChange::Removed { index } if index == p => p.checked_sub(1),
            ListChange::Removed { index } if index < p => Some(p - 1),
            ListChange::Added { .. } | ListChange::Removed { .. } | ListChange::Edited => Some(p),
        };
    }

    fn clone_box(&self) -> Box<dyn Scheduler> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{explained, pick1, picks, w};
    use super::*;

    #[test]
    fn cycles_in_list_order() {
        // From the head: A, then B, C, and wrap to A.
        let list = w(&[5, 1, 3]);
        let mut s = RoundRobin::new(&list);
        assert_eq!(picks(&mut s, &list, 7), "ABCABCA");
    }

    #[test]
    fn skips_weight_zero_and_overloaded() {
        // B is quiesced (weight 0) and D is OVERLOAD: only A, C, E take turns.
        let mut list = w(&[1, 0, 1, 1, 1]);
        list[3].overloaded = true;
        let mut s = RoundRobin::new(&list);
        assert_eq!(picks(&mut s, &list, 6), "ACEACE");
        // The flag is read live: D recovers without any update() and rejoins after C.
        list[3].overloaded = false;
        assert_eq!(picks(&mut s, &list, 4), "ACDE");
    }

    #[test]
    fn last_pick_is_retried_after_full_cycle() {
        // Only B is eligible: the walk from B goes C, A and ends at B itself.
        let mut list = w(&[1, 1, 1]);
        list[0].overloaded = true;
        list[2].weight = 0;
        let mut s = RoundRobin::new(&list);
        assert_eq!(picks(&mut s, &list, 3), "BBB");
        list[1].overloaded = true;
        assert_eq!(picks(&mut s, &list, 2), "--");
        // A failed pick leaves the position alone: still after B, so C comes first.
        let list = w(&[1, 1, 1]);
        assert_eq!(picks(&mut s, &list, 1), "C");
    }

    #[test]
    fn removing_last_picked_continues_with_its_successor() {
        // A B C D; picks A, B. Remove B (the last pick): position moves to A, so the next
        // pick is C, B's successor, not D.
        let list = w(&[1, 1, 1, 1]);
        let mut s = RoundRobin::new(&list);
        assert_eq!(picks(&mut s, &list, 2), "AB");
        let list = w(&[1, 1, 1]); // A C D, now indices 0 1 2
        s.update(&list, ListChange::Removed { index: 1 });
        assert_eq!(pick1(&mut s, &list), Some(1)); // C
        assert_eq!(pick1(&mut s, &list), Some(2)); // D
    }

    #[test]
    fn removing_first_while_pointed_at_goes_back_to_head() {
        // Pick A, then remove A: position becomes the head, next pick is the new first (B).
        let list = w(&[1, 1, 1]);
        let mut s = RoundRobin::new(&list);
        assert_eq!(pick1(&mut s, &list), Some(0));
        let list = w(&[1, 1]);
        s.update(&list, ListChange::Removed { index: 0 });
        assert_eq!(pick1(&mut s, &list), Some(0)); // old B
    }

    #[test]
    fn removing_before_the_position_keeps_the_node() {
        // Picks A B C, remove A: position still names C (now index 1), next is D (index 2).
        let list = w(&[1, 1, 1, 1]);
        let mut s = RoundRobin::new(&list);
        assert_eq!(picks(&mut s, &list, 3), "ABC");
        let list = w(&[1, 1, 1]);
        s.update(&list, ListChange::Removed { index: 0 });
        assert_eq!(pick1(&mut s, &list), Some(2));
    }

    #[test]
    fn adding_at_head_shifts_the_position() {
        // A B C; picks A, B. New N inserted at the head: N A B C. The position still names
        // B (now index 2), so the walk continues C, then wraps to N.
        let list = w(&[1, 1, 1]);
        let mut s = RoundRobin::new(&list);
        assert_eq!(picks(&mut s, &list, 2), "AB");
        let list = w(&[1, 1, 1, 1]);
        s.update(&list, ListChange::Added { index: 0 });
        assert_eq!(picks(&mut s, &list, 5), "DABCD"); // C(3), N(0), A(1), B(2), C(3)
    }

    #[test]
    fn adding_before_first_pick_is_seen_first() {
        // Still at the head: the newly added first destination is the first pick.
        let list = w(&[1, 1]);
        let mut s = RoundRobin::new(&list);
        let list = w(&[1, 1, 1]);
        s.update(&list, ListChange::Added { index: 0 });
        assert_eq!(picks(&mut s, &list, 3), "ABC");
    }

    #[test]
    fn edit_keeps_position() {
        let mut list = w(&[1, 1, 1]);
        let mut s = RoundRobin::new(&list);
        assert_eq!(picks(&mut s, &list, 1), "A");
        list[1].weight = 0;
        s.update(&list, ListChange::Edited);
        assert_eq!(picks(&mut s, &list, 3), "CAC");
    }

    #[test]
    fn explain_names_skips_and_pick() {
        // A B C D E: B weight 0, C overloaded. First pick A (nothing skipped), then B and C
        // are skipped on the way to D.
        let mut list = w(&[1, 0, 1, 1, 1]);
        list[2].overloaded = true;
        let mut s = RoundRobin::new(&list);
        assert_eq!(
            explained(&mut s, &list),
            (Some(0), "rr: -> 192.0.2.11:80".to_owned())
        );
        assert_eq!(
            explained(&mut s, &list),
            (
                Some(3),
                "rr: skip 192.0.2.12:80 (weight 0), skip 192.0.2.13:80 (overloaded) -> 192.0.2.14:80"
                    .to_owned()
            )
        );
        // Nothing eligible.
        let list = w(&[0, 0]);
        let mut s = RoundRobin::new(&list);
        assert_eq!(
            explained(&mut s, &list),
            (None, "rr: no destination available".to_owned())
        );
    }

    #[test]
    fn explain_caps_the_skip_list() {
        // 10 quiesced destinations before the only eligible one: 8 named, 2 counted.
        let mut weights = [0u32; 11];
        weights[10] = 1;
        let list = w(&weights);
        let mut s = RoundRobin::new(&list);
        let (pick, text) = explained(&mut s, &list);
        assert_eq!(pick, Some(10));
        assert_eq!(text.matches("skip ").count(), 8, "{text}");
        assert!(
            text.ends_with(", 2 more skipped -> 192.0.2.21:80"),
            "{text}"
        );
    }
}
