//! IPVS schedulers, kernel-exact: one file per scheduler behind one [`Scheduler`] trait
//! (trait v2, issue #3; `docs/contracts.md`).
//!
//! Contract (spec `ipvs-semantics.md` b.1):
//! - The slice handed to [`Scheduler::schedule`] and [`Scheduler::update`] is the service's
//!   destination list **in IPVS list order**: newest first, because IPVS inserts at the head.
//!   Every "first wins a tie" rule depends on that order. An index returned or passed in
//!   always indexes that slice.
//! - Kernel state is list membership and weights (plus the hash tables and caches of the
//!   hashing and locality schedulers): adding, removing or editing a destination is
//!   announced with [`Scheduler::update`] (in the kernel: `add_dest`, `del_dest`,
//!   `upd_dest`). Connection counts and the OVERLOAD flag are read from the slice, but the
//!   connection-count schedulers (lc, wlc, sed, nq, fo, ovf, twos, lblc, lblcr) also keep an
//!   index of them (`index.rs`) so that a decision costs O(1) or O(log n) instead of the
//!   kernel's O(n) scan: every change of a destination's `active`, `inactive`,
//!   `persistent` or OVERLOAD must be announced with [`Scheduler::dest_changed`] before the
//!   next call. Index invariant: after the announcements, each index describes exactly the
//!   slice passed next, so the pick is the one the kernel's scan makes on that slice (each
//!   file keeps the scan as the reference; debug builds assert the index matches the slice
//!   and the pick matches the scan on every decision, and `exactness.rs` checks it over
//!   random operation sequences). A slice of another length than the index's (a missed
//!   `update`) makes the index rebuild itself.
//! - A destination with weight 0 (quiesced) is never returned by any scheduler here, and an
//!   OVERLOAD-flagged one is not either — except on an lblc/lblcr cache hit, which (as in
//!   the kernel) ignores the OVERLOAD flag and applies its own overload rule.
//! - `None` is the kernel's "no destination available": the packet is dropped by the caller.
//! - Address families: a [`Flow`] is IPv4 or IPv6 (the service's family, both ends), and a
//!   list may mix both (tunnelled real servers of the other family, as IPVS allows). Only
//!   the hashing schedulers look at addresses, and they hash an IPv6 address exactly as the
//!   kernel does: `ntohl` of the XOR of its four 32-bit words, fed to the same formula as
//!   an IPv4 address (`hash.rs`); lblc/lblcr key their caches by the whole `IpAddr`. The
//!   one place the service family matters beyond the flow is mh's permutation of a real
//!   server of the other family ([`SchedParams::family`], `mh.rs`). IPv4 decisions are
//!   bit-for-bit what they were.
//! - Load comparisons never divide: `a/wa > b/wb` is `a·wb > b·wa`, strict, so on a tie the
//!   earlier destination in list order stays chosen. Products are computed in `u128`, so no
//!   combination of `u32` counts and weights can overflow.
//! - Every scheduler is deterministic: time comes only from the `now` arguments, and the one
//!   randomised scheduler (twos) draws from its own PRNG seeded by [`SchedParams::seed`].
//!   No scheduler does I/O.
//! - Explanations: when `explain` is `Some`, a scheduler writes one line per decision into
//!   it (the numbers compared and the pick). When it is `None`, nothing is formatted or
//!   allocated, and the pick is the same either way: the explanation is computed after the
//!   pick, from the same inputs, never feeding back into it.

use std::fmt::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use lvs_proto::{Protocol, SchedulerKind};

mod dh;
#[cfg(test)]
mod exactness;
mod fo;
mod hash;
mod index;
mod lblc;
mod lblcr;
mod lc;
mod mh;
mod nq;
mod ovf;
mod rr;
mod sed;
mod sh;
mod twos;
mod wlc;
mod wrr;

pub use dh::DestinationHashing;
pub use fo::WeightedFailover;
pub use lblc::LocalityLeastConnection;
pub use lblcr::LocalityReplicated;
pub use lc::LeastConnection;
pub use mh::{MH_TAB_SIZE, MaglevHash, TooManyDests, mh_populate, mh_populate_in};
pub use nq::NeverQueue;
pub use ovf::WeightedOverflow;
pub use rr::RoundRobin;
pub use sed::ShortestExpectedDelay;
pub use sh::SourceHashing;
pub use twos::PowerOfTwoChoices;
pub use wlc::WeightedLeastConnection;
pub use wrr::WeightedRoundRobin;

/// An address family: a service's (the kernel's `svc->af`) or an address's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4 (`AF_INET`).
    V4,
    /// IPv6 (`AF_INET6`).
    V6,
}

impl Family {
    /// The family of `addr`.
    pub const fn of(addr: IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
}

/// What a scheduler sees of one real server.
///
/// `Default` is an idle destination `0.0.0.0:0` with weight 0 (quiesced), handy as a
/// struct-update base.
///
/// The address may be of the other family than the service's (IPVS allows that for
/// tunnelled real servers: 4in6, 6in4); every scheduler accepts any mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Dest {
    /// The real server's address (IPv4 or IPv6).
    pub addr: IpAddr,
    /// The real server's port.
    pub port: u16,
    /// IPVS weight (ipvsadm `-w`, 0..=65535 there). 0 means quiesced: never scheduled.
    pub weight: u32,
    /// The latest non-zero weight (= `weight` when added); only mh uses it, so quiescing
    /// with weight 0 does not reshuffle its table.
    pub last_weight: u32,
    /// Active connections (`activeconns`): TCP connections in ESTABLISHED.
    pub active: u32,
    /// Inactive connections (`inactconns`): every other TCP state, and all UDP.
    pub inactive: u32,
    /// Persistence templates bound to it (`persistconns`).
    pub persistent: u32,
    /// The OVERLOAD flag (connection thresholds, spec b.1), maintained by the dataplane.
    pub overloaded: bool,
}

impl Default for Dest {
    fn default() -> Self {
        Dest::with_weight(0)
    }
}

impl Dest {
    /// An idle, not overloaded destination `0.0.0.0:0` of the given weight.
    pub const fn with_weight(weight: u32) -> Self {
        Dest {
            addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 0,
            weight,
            last_weight: weight,
            active: 0,
            inactive: 0,
            persistent: 0,
            overloaded: false,
        }
    }

    /// The kernel's `ip_vs_dest_conn_overhead`: `active × 256 + inactive`.
    pub const fn overhead(&self) -> u64 {
        overhead(self)
    }

    /// `addr:port` (`[addr]:port` for IPv6), as explanations print it.
    pub const fn endpoint(&self) -> SocketAddr {
        SocketAddr::new(self.addr, self.port)
    }
}

/// The kernel's `ip_vs_dest_conn_overhead`: `active × 256 + inactive` (spec b.1).
///
/// An active connection weighs 256 inactive ones. Computed in `u64`, so it cannot overflow.
pub const fn overhead(d: &Dest) -> u64 {
    (d.active as u64) * 256 + d.inactive as u64
}

/// The packet being scheduled, as the hashing schedulers see it.
///
/// `src` and `dst` are of the service's family (IPv4 or IPv6); the hashing schedulers
/// fold an IPv6 address the kernel's way (`hash.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow {
    /// Transport protocol.
    pub protocol: Protocol,
    /// Client address and port (the packet's source).
    pub src: SocketAddr,
    /// Virtual address and port (the packet's destination).
    pub dst: SocketAddr,
}

/// The service's scheduler flags, IPVS `IP_VS_SVC_F_SCHED1..3` (ipvsadm `-b`).
///
/// `sh-fallback` = `mh-fallback` = `flag1`; `sh-port` = `mh-port` = `flag2`. No kernel
/// scheduler uses `flag3`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SchedFlags {
    /// `IP_VS_SVC_F_SCHED1` (`flag-1`, `sh-fallback`, `mh-fallback`).
    pub flag1: bool,
    /// `IP_VS_SVC_F_SCHED2` (`flag-2`, `sh-port`, `mh-port`).
    pub flag2: bool,
    /// `IP_VS_SVC_F_SCHED3` (`flag-3`).
    pub flag3: bool,
}

impl SchedFlags {
    /// No flag set.
    pub const NONE: SchedFlags = SchedFlags {
        flag1: false,
        flag2: false,
        flag3: false,
    };

    /// Whether no flag is set.
    pub const fn is_empty(&self) -> bool {
        !(self.flag1 || self.flag2 || self.flag3)
    }

    /// The union of two flag sets.
    pub const fn union(self, other: SchedFlags) -> SchedFlags {
        SchedFlags {
            flag1: self.flag1 || other.flag1,
            flag2: self.flag2 || other.flag2,
            flag3: self.flag3 || other.flag3,
        }
    }
}

/// Everything a scheduler is built from besides the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SchedParams {
    /// The service's scheduler flags (validated with [`validate_flags`]).
    pub flags: SchedFlags,
    /// Seed of twos' PRNG.
    pub seed: u64,
    /// lblc/lblcr cache expiry (sysctl `lblc_expiration`, `lblcr_expiration`; 24 h).
    pub lblc_expiration: Duration,
    /// The service's address family (the VIP's), if the caller knows it. Only mh reads
    /// it: the kernel hashes a real server's address under the *service's* family, which
    /// differs from the address's own for a tunnelled real server of the other family
    /// (an IPv6 one in an IPv4 service is hashed by its first 32-bit word only). `None`:
    /// mh learns it from the first flow it schedules (see `mh.rs`).
    pub family: Option<Family>,
}

impl Default for SchedParams {
    /// No flags, seed 0, the kernel's 24 h expiry, family unknown.
    fn default() -> Self {
        SchedParams {
            flags: SchedFlags::NONE,
            seed: 0,
            lblc_expiration: Duration::from_secs(24 * 60 * 60),
            family: None,
        }
    }
}

/// A text record of scheduling decisions: one line per [`Explain::note`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Explain {
    text: String,
}

impl Explain {
    /// An empty record.
    pub fn new() -> Self {
        Explain::default()
    }

    /// Appends one line (no trailing newline needed; lines are separated by `\n`).
    pub fn note(&mut self, args: fmt::Arguments<'_>) {
        if !self.text.is_empty() {
            self.text.push('\n');
        }
        // Writing into a String cannot fail.
        let _ = self.text.write_fmt(args);
    }

    /// The whole record.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Empties the record, keeping its buffer.
    pub fn clear(&mut self) {
        self.text.clear();
    }
}

impl fmt::Display for Explain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
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

    /// Index into `dests` of the pick, or `None` ("no destination available"). When
    /// `explain` is `Some`, also writes one line saying what was compared; no cost when
    /// `None`, and the pick does not depend on it.
    fn schedule(
        &mut self,
        now: Instant,
        dests: &[Dest],
        flow: &Flow,
        explain: Option<&mut Explain>,
    ) -> Option<usize>;

    /// The list changed (`dests` is the list after the change): reset state the kernel way.
    fn update(&mut self, dests: &[Dest], change: ListChange);

    /// `dests[index]`'s connection counts (`active`, `inactive`, `persistent`) or its
    /// OVERLOAD flag changed; nothing else did (weights, membership and order change only
    /// through [`Scheduler::update`]). `dests` is the list after the change.
    fn dest_changed(&mut self, _dests: &[Dest], _index: usize) {}

    /// A copy for `simulate` (answer without changing the live state).
    fn clone_box(&self) -> Box<dyn Scheduler>;

    /// When [`Scheduler::handle_timeout`] wants to run next (lblc/lblcr garbage collection).
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    /// Runs timers due at `now`.
    fn handle_timeout(&mut self, _now: Instant) {}
}

impl Clone for Box<dyn Scheduler> {
    fn clone(&self) -> Self {
        self.clone_box()
    }
}

/// A fresh scheduler of `kind` for a service whose current list is `dests`
/// (the kernel's `init_service`).
///
/// Never panics: every [`SchedulerKind`] has an implementation, and the match is exhaustive,
/// so a kind added to `lvs_proto` without one fails to compile here.
pub fn new_scheduler(
    kind: SchedulerKind,
    params: &SchedParams,
    dests: &[Dest],
    now: Instant,
) -> Box<dyn Scheduler> {
    match kind {
        SchedulerKind::Rr => Box::new(RoundRobin::new(dests)),
        SchedulerKind::Wrr => Box::new(WeightedRoundRobin::new(dests)),
        SchedulerKind::Wlc => Box::new(WeightedLeastConnection::new(dests)),
        SchedulerKind::Lc => Box::new(LeastConnection::new(dests)),
        SchedulerKind::Sed => Box::new(ShortestExpectedDelay::new(dests)),
        SchedulerKind::Nq => Box::new(NeverQueue::new(dests)),
        SchedulerKind::Fo => Box::new(WeightedFailover::new(dests)),
        SchedulerKind::Ovf => Box::new(WeightedOverflow::new(dests)),
        SchedulerKind::Twos => Box::new(PowerOfTwoChoices::new(dests, params.seed)),
        SchedulerKind::Dh => Box::new(DestinationHashing::new(dests)),
        SchedulerKind::Sh => Box::new(SourceHashing::new(dests, params.flags)),
        SchedulerKind::Mh => Box::new(MaglevHash::with_family(dests, params.flags, params.family)),
        SchedulerKind::Lblc => Box::new(LocalityLeastConnection::new(params.lblc_expiration, now)),
        SchedulerKind::Lblcr => Box::new(LocalityReplicated::new(params.lblc_expiration, now)),
    }
}

/// Whether this build implements `kind`; the configuration rejects the others. Every kind
/// is implemented now, so this is always true; it stays so that the configuration's check
/// keeps working if a kind is ever built without its scheduler.
pub const fn is_available(kind: SchedulerKind) -> bool {
    let _ = kind;
    true
}

/// The flag bit a name sets (ipvsadm `-b`): `flag-1`, `flag-2`, `flag-3`, `sh-fallback`,
/// `mh-fallback` (flag 1), `sh-port`, `mh-port` (flag 2). `None` for anything else.
pub fn parse_flag(name: &str) -> Option<SchedFlags> {
    let (flag1, flag2, flag3) = match name {
        "flag-1" | "sh-fallback" | "mh-fallback" => (true, false, false),
        "flag-2" | "sh-port" | "mh-port" => (false, true, false),
        "flag-3" => (false, false, true),
        _ => return None,
    };
    Some(SchedFlags {
        flag1,
        flag2,
        flag3,
    })
}

/// The flag names `kind` accepts (empty for schedulers without flags).
pub const fn flag_names(kind: SchedulerKind) -> &'static [&'static str] {
    match kind {
        SchedulerKind::Sh => &["sh-fallback", "sh-port", "flag-1", "flag-2"],
        SchedulerKind::Mh => &["mh-fallback", "mh-port", "flag-1", "flag-2"],
        _ => &[],
    }
}

/// Parses a service's flag names for `kind`; the error names the allowed ones.
///
/// Only sh and mh take flags, and only their own names (or `flag-1`, `flag-2`): an mh
/// name on sh is refused even though it sets the same bit, since it is surely a mistake.
pub fn parse_flags<S: AsRef<str>>(kind: SchedulerKind, names: &[S]) -> Result<SchedFlags, String> {
    let allowed = flag_names(kind);
    let mut flags = SchedFlags::NONE;
    for name in names {
        let name = name.as_ref();
        match parse_flag(name) {
            Some(bit) if allowed.contains(&name) => flags = flags.union(bit),
            _ if allowed.is_empty() => {
                return Err(format!("scheduler {kind} takes no flags (got `{name}`)"));
            }
            _ => {
                return Err(format!(
                    "unknown flag `{name}` for scheduler {kind}; allowed: {}",
                    allowed.join(", ")
                ));
            }
        }
    }
    Ok(flags)
}

/// Checks that `flags` make sense for `kind`: only sh and mh take flags, and only flag 1
/// (fallback) and flag 2 (port).
pub fn validate_flags(kind: SchedulerKind, flags: &SchedFlags) -> Result<(), String> {
    let allowed = flag_names(kind);
    if flags.is_empty() {
        Ok(())
    } else if allowed.is_empty() {
        Err(format!("scheduler {kind} takes no flags"))
    } else if flags.flag3 {
        Err(format!(
            "scheduler {kind} does not use flag-3; allowed: {}",
            allowed.join(", ")
        ))
    } else {
        Ok(())
    }
}

/// Writes `"{kind}: no destination available"` into `explain`, if any.
fn explain_none(explain: Option<&mut Explain>, kind: SchedulerKind) {
    if let Some(e) = explain {
        e.note(format_args!("{kind}: no destination available"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed instant for tests (schedulers only compare instants they are given).
    pub(super) fn t0() -> Instant {
        use std::sync::OnceLock;
        static T0: OnceLock<Instant> = OnceLock::new();
        *T0.get_or_init(Instant::now)
    }

    /// A TCP flow from 198.51.100.7:40000 to 192.0.2.1:80.
    pub(super) fn flow() -> Flow {
        Flow {
            protocol: Protocol::Tcp,
            src: SocketAddr::new(Ipv4Addr::new(198, 51, 100, 7).into(), 40000),
            dst: SocketAddr::new(Ipv4Addr::new(192, 0, 2, 1).into(), 80),
        }
    }

    /// One pick, no explanation.
    pub(super) fn pick1(s: &mut dyn Scheduler, dests: &[Dest]) -> Option<usize> {
        s.schedule(t0(), dests, &flow(), None)
    }

    /// One pick and its explanation.
    pub(super) fn explained(s: &mut dyn Scheduler, dests: &[Dest]) -> (Option<usize>, String) {
        let mut e = Explain::new();
        let pick = s.schedule(t0(), dests, &flow(), Some(&mut e));
        (pick, e.as_str().to_owned())
    }

    /// Runs `n` picks and names them by letter (`A` = index 0), `-` for `None`.
    pub(super) fn picks(s: &mut dyn Scheduler, dests: &[Dest], n: usize) -> String {
        (0..n)
            .map(|_| match pick1(s, dests) {
                Some(i) => char::from(b'A' + u8::try_from(i).unwrap_or(25)),
                None => '-',
            })
            .collect()
    }

    /// Destination `i` of a test list: `192.0.2.(11+i):80`.
    pub(super) fn at(i: usize) -> Dest {
        Dest {
            addr: Ipv4Addr::new(192, 0, 2, 11 + u8::try_from(i).unwrap_or(0)).into(),
            port: 80,
            ..Dest::default()
        }
    }

    /// An idle list with these weights, addressed as [`at`].
    pub(super) fn w(weights: &[u32]) -> Vec<Dest> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| Dest {
                weight: w,
                last_weight: w,
                ..at(i)
            })
            .collect()
    }

    /// A list from `(weight, active, inactive)`, addressed as [`at`].
    pub(super) fn load(rows: &[(u32, u32, u32)]) -> Vec<Dest> {
        rows.iter()
            .enumerate()
            .map(|(i, &(weight, active, inactive))| Dest {
                weight,
                last_weight: weight,
                active,
                inactive,
                ..at(i)
            })
            .collect()
    }

    /// The kinds this build implements.
    pub(super) fn available() -> impl Iterator<Item = SchedulerKind> {
        SchedulerKind::ALL
            .iter()
            .copied()
            .filter(|&k| is_available(k))
    }

    fn new(kind: SchedulerKind, dests: &[Dest]) -> Box<dyn Scheduler> {
        new_scheduler(kind, &SchedParams::default(), dests, t0())
    }

    #[test]
    fn overhead_weighs_active_256_times() {
        let d = Dest {
            weight: 1,
            active: 2,
            inactive: 3,
            ..Dest::default()
        };
        assert_eq!(overhead(&d), 2 * 256 + 3);
        let max = Dest {
            weight: 1,
            active: u32::MAX,
            inactive: u32::MAX,
            ..Dest::default()
        };
        assert_eq!(max.overhead(), u64::from(u32::MAX) * 257);
    }

    #[test]
    fn new_scheduler_reports_its_kind_and_never_panics() {
        for &kind in SchedulerKind::ALL {
            assert_eq!(new(kind, &w(&[1])).kind(), kind);
            assert_eq!(new(kind, &w(&[1])).clone_box().kind(), kind);
        }
    }

    /// Every kind is available, and every scheduler picks a lone eligible destination.
    #[test]
    fn every_kind_is_available_and_picks_a_lone_destination() {
        let list = w(&[1]);
        for &kind in SchedulerKind::ALL {
            assert!(is_available(kind), "{kind}");
            let mut s = new(kind, &list);
            let (pick, text) = explained(s.as_mut(), &list);
            assert_eq!(pick, Some(0), "{kind}: {text}");
        }
    }

    /// The hashing schedulers without their fallback flag return the destination the flow
    /// hashes to or nothing: a quiesced or overloaded bucket owner means None (spec b.10,
    /// b.11, b.12), never another destination. All the others always find an eligible one.
    fn may_miss(kind: SchedulerKind) -> bool {
        matches!(
            kind,
            SchedulerKind::Dh | SchedulerKind::Sh | SchedulerKind::Mh
        )
    }

    /// A weight-0 destination is quiesced: no scheduler ever returns it, whatever the load
    /// on the others, and with only weight-0 destinations every scheduler returns None.
    #[test]
    fn weight_zero_never_picked_by_any_scheduler() {
        // The busy ones hold exactly `weight` active connections: ovf's limit, not past it.
        let mut list = load(&[(0, 0, 0), (1000, 1000, 1000), (0, 0, 0), (1000, 1000, 1000)]);
        // The stale last_weight must not revive a quiesced destination either.
        list[0].last_weight = 5;
        for kind in available() {
            let mut s = new(kind, &list);
            for _ in 0..50 {
                let pick = pick1(s.as_mut(), &list);
                let ok = matches!(pick, Some(1 | 3)) || (pick.is_none() && may_miss(kind));
                assert!(ok, "{kind} picked {pick:?}");
            }
            let zeros = w(&[0, 0, 0]);
            let mut s = new(kind, &zeros);
            assert_eq!(picks(s.as_mut(), &zeros, 4), "----", "{kind}");
        }
    }

    /// An OVERLOAD-flagged destination is never returned, even when it is the idlest or
    /// heaviest; with all of them overloaded every scheduler returns None.
    #[test]
    fn overloaded_never_picked_by_any_scheduler() {
        let mut list = load(&[(9, 0, 0), (5, 5, 5), (9, 0, 0), (5, 5, 5)]);
        list[0].overloaded = true;
        list[2].overloaded = true;
        for kind in available() {
            let mut s = new(kind, &list);
            for _ in 0..50 {
                let pick = pick1(s.as_mut(), &list);
                let ok = matches!(pick, Some(1 | 3)) || (pick.is_none() && may_miss(kind));
                assert!(ok, "{kind} picked {pick:?}");
            }
            let mut all = list.clone();
            for d in &mut all {
                d.overloaded = true;
            }
            let mut s = new(kind, &all);
            assert_eq!(picks(s.as_mut(), &all, 4), "----", "{kind}");
        }
    }

    /// Every scheduler takes IPv6 flows and lists that mix both families (tunnelled real
    /// servers), never picks a quiesced one, and explains with `[v6]:port` endpoints.
    #[test]
    fn every_kind_schedules_ipv6_flows_over_mixed_lists() {
        let v6 = |s: &str| -> IpAddr { s.parse().unwrap() };
        let flow6 = Flow {
            protocol: Protocol::Tcp,
            src: SocketAddr::new(v6("2001:db8:c::10"), 40000),
            dst: SocketAddr::new(v6("2001:db8:f::10"), 80),
        };
        let mut list = load(&[(1, 0, 3), (2, 1, 0), (0, 0, 0), (1, 0, 0)]);
        list[0].addr = v6("2001:db8:b::11");
        list[2].addr = v6("2001:db8:b::13");
        for kind in available() {
            for family in [None, Some(Family::V6)] {
                let params = SchedParams {
                    family,
                    ..SchedParams::default()
                };
                let mut s = new_scheduler(kind, &params, &list, t0());
                for round in 0..20 {
                    let mut e = Explain::new();
                    let pick = s.schedule(t0(), &list, &flow6, Some(&mut e));
                    let ok = match pick {
                        Some(i) => list.get(i).is_some_and(|d| d.weight > 0),
                        None => may_miss(kind),
                    };
                    assert!(ok, "{kind} round {round}: {pick:?} {e}");
                    assert!(e.as_str().starts_with(kind.name()), "{kind}: {e}");
                    if pick == Some(0) {
                        assert!(e.as_str().contains("[2001:db8:b::11]:80"), "{kind}: {e}");
                    }
                }
            }
        }
    }

    /// The endpoint of an IPv6 destination prints with brackets; IPv4 ones as before.
    #[test]
    fn endpoints_of_both_families() {
        let mut d = at(0);
        assert_eq!(d.endpoint().to_string(), "192.0.2.11:80");
        d.addr = "2001:db8:b::11".parse().unwrap();
        assert_eq!(d.endpoint().to_string(), "[2001:db8:b::11]:80");
        assert_eq!(Family::of(d.addr), Family::V6);
        assert_eq!(Family::of(Dest::default().addr), Family::V4);
    }

    /// An empty service has nothing to schedule, and says so.
    #[test]
    fn empty_list_schedules_nothing() {
        for kind in available() {
            let mut s = new(kind, &[]);
            let (pick, text) = explained(s.as_mut(), &[]);
            assert_eq!(pick, None, "{kind}");
            assert!(text.ends_with("no destination available"), "{kind}: {text}");
        }
    }

    /// Explaining never changes a pick: two copies of each scheduler, one explaining and
    /// one not, run over the same pseudo-random loads and list edits and agree every time.
    #[test]
    fn explain_does_not_change_picks() {
        let mut rng = 0x5eed_u64;
        let mut next = move |n: u32| {
            // splitmix64, enough for test data.
            rng = rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = rng;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            u32::try_from((z ^ (z >> 31)) % u64::from(n)).unwrap_or(0)
        };
        for kind in available() {
            let mut list = w(&[3, 1, 0, 2, 5, 1]);
            let mut plain = new(kind, &list);
            let mut told = plain.clone_box();
            let mut e = Explain::new();
            for round in 0..2000 {
                let i = next(6) as usize;
                match next(10) {
                    0 => {
                        list[i].weight = next(4);
                        plain.update(&list, ListChange::Edited);
                        told.update(&list, ListChange::Edited);
                    }
                    1 => list[i].overloaded = !list[i].overloaded,
                    2 | 3 => list[i].active = next(8),
                    _ => list[i].inactive = next(40),
                }
                plain.dest_changed(&list, i);
                told.dest_changed(&list, i);
                e.clear();
                let a = plain.schedule(t0(), &list, &flow(), None);
                let b = told.schedule(t0(), &list, &flow(), Some(&mut e));
                assert_eq!(a, b, "{kind} round {round}: {e}");
                assert_eq!(e.as_str().lines().count(), 1, "{kind}: {e}");
                assert!(e.as_str().starts_with(kind.name()), "{kind}: {e}");
            }
        }
    }

    #[test]
    fn explain_lines_accumulate_and_clear() {
        let mut e = Explain::new();
        e.note(format_args!("one {}", 1));
        e.note(format_args!("two"));
        assert_eq!(e.as_str(), "one 1\ntwo");
        e.clear();
        assert_eq!(e.as_str(), "");
    }

    #[test]
    fn flag_names_map_to_bits() {
        let f1 = SchedFlags {
            flag1: true,
            ..SchedFlags::NONE
        };
        let f2 = SchedFlags {
            flag2: true,
            ..SchedFlags::NONE
        };
        let f3 = SchedFlags {
            flag3: true,
            ..SchedFlags::NONE
        };
        for name in ["sh-fallback", "mh-fallback", "flag-1"] {
            assert_eq!(parse_flag(name), Some(f1), "{name}");
        }
        for name in ["sh-port", "mh-port", "flag-2"] {
            assert_eq!(parse_flag(name), Some(f2), "{name}");
        }
        assert_eq!(parse_flag("flag-3"), Some(f3));
        assert_eq!(parse_flag("sh_port"), None);
        assert_eq!(parse_flag(""), None);
    }

    #[test]
    fn flags_only_for_sh_and_mh() {
        let both = SchedFlags {
            flag1: true,
            flag2: true,
            flag3: false,
        };
        assert_eq!(
            parse_flags(SchedulerKind::Sh, &["sh-fallback", "sh-port"]),
            Ok(both)
        );
        assert_eq!(
            parse_flags(SchedulerKind::Mh, &["flag-1", "mh-port"]),
            Ok(both)
        );
        assert_eq!(
            parse_flags::<&str>(SchedulerKind::Wlc, &[]),
            Ok(SchedFlags::NONE)
        );
        assert_eq!(validate_flags(SchedulerKind::Sh, &both), Ok(()));
        assert_eq!(validate_flags(SchedulerKind::Mh, &both), Ok(()));
        for &kind in SchedulerKind::ALL {
            assert_eq!(validate_flags(kind, &SchedFlags::NONE), Ok(()), "{kind}");
            if !matches!(kind, SchedulerKind::Sh | SchedulerKind::Mh) {
                assert!(validate_flags(kind, &both).is_err(), "{kind}");
                assert!(parse_flags(kind, &["flag-1"]).is_err(), "{kind}");
            }
        }
    }

    #[test]
    fn flag_errors_name_the_allowed_flags() {
        assert_eq!(
            parse_flags(SchedulerKind::Sh, &["mh-port"]),
            Err(
                "unknown flag `mh-port` for scheduler sh; allowed: sh-fallback, sh-port, \
                 flag-1, flag-2"
                    .to_owned()
            )
        );
        assert_eq!(
            parse_flags(SchedulerKind::Mh, &["flag-3"]),
            Err(
                "unknown flag `flag-3` for scheduler mh; allowed: mh-fallback, mh-port, \
                 flag-1, flag-2"
                    .to_owned()
            )
        );
        assert_eq!(
            parse_flags(SchedulerKind::Rr, &["sh-port"]),
            Err("scheduler rr takes no flags (got `sh-port`)".to_owned())
        );
        let f3 = SchedFlags {
            flag3: true,
            ..SchedFlags::NONE
        };
        assert_eq!(
            validate_flags(SchedulerKind::Sh, &f3),
            Err(
                "scheduler sh does not use flag-3; allowed: sh-fallback, sh-port, flag-1, \
                 flag-2"
                    .to_owned()
            )
        );
        assert_eq!(
            validate_flags(SchedulerKind::Fo, &f3),
            Err("scheduler fo takes no flags".to_owned())
        );
    }
}
