//! IPVS schedulers, kernel-exact: one file per scheduler behind one [`Scheduler`] trait.
//!
//! Contract (spec `ipvs-semantics.md` b.1):
//! - The slice handed to [`Scheduler::schedule`] and [`Scheduler::update`] is the service's
//!   destination list **in IPVS list order**: newest first, because IPVS inserts at the head.
//!   Every "first wins a tie" rule depends on that order. An index returned or passed in
//!   always indexes that slice.
//! - Only list membership and weights are scheduler state. Connection counts and the
//!   OVERLOAD flag are read live from the slice on every call, so a change to them needs no
//!   [`Scheduler::update`]; adding, removing or editing a destination does (in the kernel:
//!   `add_dest`, `del_dest`, `upd_dest`).
//! - A destination with weight 0 (quiesced) is never returned by any scheduler here, and an
//!   OVERLOAD-flagged one never is either.
//! - `None` is the kernel's "no destination available": the packet is dropped by the caller.
//! - Load comparisons never divide: `a/wa > b/wb` is `a·wb > b·wa`, strict, so on a tie the
//!   earlier destination in list order stays chosen. Products are computed in `u128`, so no
//!   combination of `u32` counts and weights can overflow.
//! - Every scheduler is deterministic and pure: no clock, no randomness, no I/O.
//!
//! Each scheduler keeps the decision rule it applies to one destination in a single
//! function, so that an explanation record (issue #3) can later be emitted from one place.

use std::fmt;

use lvs_proto::SchedulerKind;

mod rr;
mod wlc;
mod wrr;

pub use rr::RoundRobin;
pub use wlc::WeightedLeastConnection;
pub use wrr::WeightedRoundRobin;

/// What a scheduler sees of one real server.
///
/// `Default` is an idle destination with weight 0 (quiesced), handy as a struct-update base.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Dest {
    /// IPVS weight (ipvsadm `-w`, 0..=65535 there). 0 means quiesced: never scheduled.
    pub weight: u32,
    /// Active connections (`activeconns`): TCP connections in ESTABLISHED.
    pub active: u32,
    /// Inactive connections (`inactconns`): every other TCP state, and all UDP.
    pub inactive: u32,
    /// The OVERLOAD flag (connection thresholds, spec b.1).
    pub overloaded: bool,
}

impl Dest {
    /// An idle, not overloaded destination of the given weight.
    pub const fn with_weight(weight: u32) -> Self {
        Dest {
            weight,
            active: 0,
            inactive: 0,
            overloaded: false,
        }
    }

    /// The kernel's `ip_vs_dest_conn_overhead`: `active × 256 + inactive`.
    pub const fn overhead(&self) -> u64 {
        overhead(self)
    }
}

/// The kernel's `ip_vs_dest_conn_overhead`: `active × 256 + inactive` (spec b.1).
///
/// An active connection weighs 256 inactive ones. Computed in `u64`, so it cannot overflow.
pub const fn overhead(d: &Dest) -> u64 {
    (d.active as u64) * 256 + d.inactive as u64
}

/// How the destination list changed; passed to [`Scheduler::update`] with the new list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListChange {
    /// A destination was inserted at `index` of the new list (IPVS always inserts at 0).
    Added {
        /// Its index in the new list.
        index: usize,
    },
    /// The destination that was at `index` of the old list was removed.
    Removed {
        /// Its index in the old list.
        index: usize,
    },
    /// A destination's weight (or thresholds) changed; the order did not.
    Edited,
}

/// One IPVS scheduling algorithm with its state.
pub trait Scheduler: Send + fmt::Debug {
    /// Which algorithm this is.
    fn kind(&self) -> SchedulerKind;

    /// Index into `dests` of the pick, or `None` ("no destination available").
    fn schedule(&mut self, dests: &[Dest]) -> Option<usize>;

    /// The list changed (`dests` is the list after the change): reset state the kernel way.
    fn update(&mut self, dests: &[Dest], change: ListChange);
}

/// A fresh scheduler of `kind` for a service whose current list is `dests`
/// (the kernel's `init_service`).
pub fn new_scheduler(kind: SchedulerKind, dests: &[Dest]) -> Box<dyn Scheduler> {
    match kind {
        SchedulerKind::Rr => Box::new(RoundRobin::new(dests)),
        SchedulerKind::Wrr => Box::new(WeightedRoundRobin::new(dests)),
        SchedulerKind::Wlc => Box::new(WeightedLeastConnection::new(dests)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `n` picks and names them by letter (`A` = index 0), `-` for `None`.
    pub(super) fn picks(s: &mut dyn Scheduler, dests: &[Dest], n: usize) -> String {
        (0..n)
            .map(|_| match s.schedule(dests) {
                Some(i) => char::from(b'A' + u8::try_from(i).unwrap_or(25)),
                None => '-',
            })
            .collect()
    }

    pub(super) fn w(weights: &[u32]) -> Vec<Dest> {
        weights.iter().map(|&w| Dest::with_weight(w)).collect()
    }

    #[test]
    fn overhead_weighs_active_256_times() {
        let d = Dest {
            weight: 1,
            active: 2,
            inactive: 3,
            overloaded: false,
        };
        assert_eq!(overhead(&d), 2 * 256 + 3);
        let max = Dest {
            weight: 1,
            active: u32::MAX,
            inactive: u32::MAX,
            overloaded: false,
        };
        assert_eq!(max.overhead(), u64::from(u32::MAX) * 257);
    }

    #[test]
    fn new_scheduler_reports_its_kind() {
        for &kind in SchedulerKind::ALL {
            assert_eq!(new_scheduler(kind, &w(&[1])).kind(), kind);
        }
    }

    /// A weight-0 destination is quiesced: no scheduler ever returns it, whatever the load
    /// on the others, and with only weight-0 destinations every scheduler returns None.
    #[test]
    fn weight_zero_never_picked_by_any_scheduler() {
        let busy = Dest {
            weight: 1,
            active: 1000,
            inactive: 1000,
            overloaded: false,
        };
        let list = [Dest::with_weight(0), busy, Dest::with_weight(0), busy];
        for &kind in SchedulerKind::ALL {
            let mut s = new_scheduler(kind, &list);
            for _ in 0..50 {
                let pick = s.schedule(&list);
                assert!(matches!(pick, Some(1 | 3)), "{kind} picked {pick:?}");
            }
            let zeros = w(&[0, 0, 0]);
            let mut s = new_scheduler(kind, &zeros);
            assert_eq!(picks(s.as_mut(), &zeros, 4), "----", "{kind}");
        }
    }

    /// An empty service has nothing to schedule.
    #[test]
    fn empty_list_schedules_nothing() {
        for &kind in SchedulerKind::ALL {
            let mut s = new_scheduler(kind, &[]);
            assert_eq!(s.schedule(&[]), None, "{kind}");
        }
    }
}
