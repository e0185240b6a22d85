//! ovf — weighted overflow (kernel `net/netfilter/ipvs/ip_vs_ovf.c`, spec b.14).
//!
//! State: a [`Tournament`] index of the list (`index.rs`; key `(1, weight)` for the
//! destinations not skipped), kept in sync by `update` and `dest_changed`: a pick is O(1),
//! a count or OVERLOAD change O(log n), and the pick is always the kernel scan's
//! ([`WeightedOverflow::pick`], the reference; debug builds assert it). Invariants:
//! - Skipped: OVERLOAD, `weight == 0`, and `active > weight` (the destination is "full":
//!   it may hold up to `weight` active connections, and overflows past that).
//! - Among the rest, the highest weight, strict `>`, so the earliest in list order wins a
//!   tie. None when nothing qualifies.
//! - Only active connections count, so UDP (always inactive) never overflows a destination,
//!   as the kernel source itself warns.
//! - Explanation: the pick against the runner-up, with the number of destinations skipped
//!   as full, e.g.
//!   `ovf: 192.0.2.12:80 w3 (active 3) > 192.0.2.13:80 w1 (active 0), 1 full -> 192.0.2.12:80`.

use std::time::Instant;

use lvs_proto::SchedulerKind;

use super::index::{Rule, Tournament};
use super::{Dest, Explain, Flow, ListChange, Scheduler};

/// ovf's ranking: the highest weight among those not OVERLOAD, weight ≠ 0, not full.
#[derive(Debug)]
struct Ovf;

impl Rule for Ovf {
    #[inline]
    fn key(d: &Dest) -> Option<(u64, u32)> {
        let skip = d.overloaded || WeightedOverflow::full(d) || d.weight == 0;
        (!skip).then_some((1, d.weight))
    }

    fn scan(dests: &[Dest]) -> Option<usize> {
        WeightedOverflow::pick(dests, usize::MAX)
    }
}

/// Weighted-overflow scheduler: its index of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedOverflow {
    index: Tournament<Ovf>,
}

impl WeightedOverflow {
    /// The scheduler for `dests`.
    pub fn new(dests: &[Dest]) -> Self {
        WeightedOverflow {
            index: Tournament::new(dests),
        }
    }

    /// Has `d` more active connections than its weight?
    fn full(d: &Dest) -> bool {
        d.active > d.weight
    }

    /// The kernel's loop, leaving out index `skip` (`usize::MAX`: none): the reference the
    /// index must agree with, and the runner-up for explanations.
    pub(super) fn pick(dests: &[Dest], skip: usize) -> Option<usize> {
        let mut best: Option<(usize, u32)> = None;
        for (i, d) in dests.iter().enumerate() {
            if i == skip || d.overloaded || Self::full(d) || d.weight == 0 {
                continue;
            }
            if best.is_none_or(|(_, hw)| d.weight > hw) {
                best = Some((i, d.weight));
            }
        }
        best.map(|(i, _)| i)
    }
}

impl Scheduler for WeightedOverflow {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Ovf
    }

    fn schedule(
        &mut self,
        _now: Instant,
        dests: &[Dest],
        _flow: &Flow,
        explain: Option<&mut Explain>,
    ) -> Option<usize> {
        let pick = self.index.best(dests);
        debug_assert!(self.index.in_sync(dests), "ovf: unannounced list change");
        debug_assert_eq!(pick, Self::pick(dests, usize::MAX), "ovf: index disagrees");
        if let Some(e) = explain {
            let full = dests
                .iter()
                .filter(|d| d.weight != 0 && !d.overloaded && Self::full(d))
                .count();
            match pick.map(|p| (&dests[p], Self::pick(dests, p).map(|r| &dests[r]))) {
                None => e.note(format_args!("ovf: {full} full, no destination available")),
                Some((p, Some(r))) => {
                    let op = if p.weight > r.weight { ">" } else { "=" };
                    e.note(format_args!(
                        "ovf: {} w{} (active {}) {op} {} w{} (active {}), {full} full -> {}",
                        p.endpoint(),
                        p.weight,
                        p.active,
                        r.endpoint(),
                        r.weight,
                        r.active,
                        p.endpoint()
                    ));
                }
                Some((p, None)) => e.note(format_args!(
                    "ovf: {} w{} (active {}) alone, {full} full -> {}",
                    p.endpoint(),
                    p.weight,
                    p.active,
                    p.endpoint()
                )),
            }
        }
        pick
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
    use super::super::tests::{explained, load, pick1, w};
    use super::*;

    fn pick(dests: &[Dest]) -> Option<usize> {
        pick1(&mut WeightedOverflow::new(dests), dests)
    }

    #[test]
    fn highest_weight_until_it_overflows() {
        // A1 B3 C3. Each pick adds an active connection to the pick. B (first of the 3s)
        // takes connections while active <= 3, i.e. 4 of them (the 4th pick sees
        // active 3, not > 3); then B is full (4 > 3) and C takes 4; then A takes 2; then
        // everything is full.
        let mut list = w(&[1, 3, 3]);
        let mut s = WeightedOverflow::new(&list);
        let mut order = String::new();
        for _ in 0..12 {
            match pick1(&mut s, &list) {
                Some(i) => {
                    list[i].active += 1;
                    s.dest_changed(&list, i);
                    order.push(char::from(b'A' + i as u8));
                }
                None => order.push('-'),
            }
        }
        assert_eq!(order, "BBBBCCCCAA--");
    }

    #[test]
    fn skips_active_above_weight_only() {
        // A2 with 2 active is not full (2 > 2 is false): picked. With 3 → B.
        assert_eq!(pick(&load(&[(2, 2, 0), (1, 0, 0)])), Some(0));
        assert_eq!(pick(&load(&[(2, 3, 0), (1, 0, 0)])), Some(1));
    }

    #[test]
    fn udp_never_overflows() {
        // A1 carrying 10 000 UDP flows (inactive only) is not full: still picked.
        assert_eq!(pick(&load(&[(1, 0, 10_000), (1, 0, 0)])), Some(0));
    }

    #[test]
    fn ties_go_to_the_earlier_and_overload_weight_zero_skipped() {
        // A overloaded, B weight 0, C2 D2: C.
        let mut list = w(&[5, 0, 2, 2]);
        list[0].overloaded = true;
        assert_eq!(pick(&list), Some(2));
    }

    #[test]
    fn explain_counts_full_destinations() {
        let list = load(&[(5, 6, 0), (3, 3, 0), (1, 0, 0)]);
        let mut s = WeightedOverflow::new(&list);
        assert_eq!(
            explained(&mut s, &list),
            (
                Some(1),
                "ovf: 192.0.2.12:80 w3 (active 3) > 192.0.2.13:80 w1 (active 0), 1 full \
                 -> 192.0.2.12:80"
                    .to_owned()
            )
        );
        let list = load(&[(1, 2, 0)]);
        assert_eq!(
            explained(&mut s, &list),
            (None, "ovf: 1 full, no destination available".to_owned())
        );
    }
}
