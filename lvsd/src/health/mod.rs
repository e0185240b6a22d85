//! Active health checks: one checker per file, a pure rise/fall tracker, and the runner
//! that schedules them apart from the data path.
//!
//! ```text
//!  caller (daemon)                     runner thread "lvsd-health" (tokio, current-thread)
//!  ───────────────                     ───────────────────────────────────────────────────
//!  HealthRunner::start(targets, cb) ─► one task per target: sleep_until(next) -> permit
//!  reconfigure(targets) ──(channel)──►   -> Checker::run (bounded by timeout)
//!  snapshot() ◄──(mutex, brief)──────    -> Tracker::record -> cb(HealthReport) on a flip
//! ```
//!
//! Contract and invariants:
//! - Checks run on their own thread and runtime: a hung check can delay nothing but itself
//!   (every check is bounded by its `timeout`, which configuration keeps <= `interval`).
//!   No method of [`HealthRunner`] blocks on a check; `snapshot` takes a mutex that is only
//!   held for bookkeeping, never across an await.
//! - At most [`MAX_CONCURRENT`] checks run at once (a semaphore); each target has its own
//!   timer. Intervals are measured start to start on a fixed grid (`first + k * interval`):
//!   a start that could not happen on time (all permits busy) happens as soon as it can
//!   and the next one is back on the grid; a slot already past when a check ends is not
//!   made up for (the grid restarts at that moment). The first check starts after a random
//!   delay in `0..warmup`.
//! - Pacing: targets added together (`start`, `reconfigure`) without a `warmup` do not all
//!   start in the same instant: the k-th of them starts `k * FIRST_CHECK_PACE` (100 µs,
//!   modulo its interval) later, in the order given, so up to 10,000 targets per second of
//!   interval get slots of their own. All at once, a burst of 10,000 checks keeps the runner
//!   thread busy for ~0.4 s and is launched in a different order every round, so each
//!   target's start-to-start interval would wander by up to that much (measured: p99 drift
//!   15% at 10,000 targets, 1.1% paced). A few targets start a fraction of a millisecond
//!   apart: no delay worth the name.
//! - The report callback runs on the runner thread for every state flip and every change of
//!   a dynamic weight, never while a lock is held.
//! - Memory per target is bounded: its settings, the last outcome, and the last
//!   [`START_HISTORY`] start times (for measuring drift).
//! - Reconfiguring keeps the state and the timer of a target whose id and check are both
//!   unchanged; any other target starts afresh (initial state, new warmup).

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lvs_proto::{CheckOutcome, HealthInfo, HealthState, RealServerKey, ServiceKey};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

use crate::config::HealthCheck;

mod checker;
mod dns;
mod exec;
mod http;
pub mod state;
mod tcp;
#[cfg(test)]
mod testutil;
mod tls;
mod udp;

pub use checker::{Checker, Outcome};
pub use http::{MAX_BODY, MAX_HEADERS};
use state::Tracker;

/// The most checks in flight at once.
pub const MAX_CONCURRENT: usize = 512;
/// How many start times are kept per target.
pub const START_HISTORY: usize = 64;
/// The spacing of the first checks of targets added together without `warmup`.
pub const FIRST_CHECK_PACE: Duration = Duration::from_micros(100);

/// One checked real server of one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TargetId {
    /// The virtual service.
    pub service: ServiceKey,
    /// The real server (its address and port are where the check goes, unless the check's
    /// `connect_ip` / `connect_port` say otherwise).
    pub real_server: RealServerKey,
}

/// A target and its (effective) check.
#[derive(Debug, Clone)]
pub struct Target {
    /// Which real server.
    pub id: TargetId,
    /// How it is checked.
    pub check: HealthCheck,
}

/// What the runner tells its owner.
#[derive(Debug, Clone)]
pub enum HealthReport {
    /// A target went up or down.
    Changed {
        /// The target.
        id: TargetId,
        /// Its new state.
        state: HealthState,
        /// The check, in a few words (`http GET 192.0.2.11:80/health`).
        check: String,
        /// Why (`3 failures in a row (fall 3): connect: connection refused`).
        reason: String,
    },
    /// An exec check with `dynamic_weight` asked for another weight.
    DynamicWeight {
        /// The target.
        id: TargetId,
        /// The weight asked for (exit code - 2).
        weight: u32,
    },
}

/// The report callback.
type Report = Arc<dyn Fn(HealthReport) + Send + Sync>;

/// Runs the checks of a set of targets on a thread of its own (module doc).
pub struct HealthRunner {
    commands: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for HealthRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthRunner")
            .field("targets", &self.shared.lock().len())
            .finish_non_exhaustive()
    }
}

enum Command {
    Reconfigure(Vec<Target>),
    Stop,
}

/// What the runner thread and the callers share.
struct Shared {
    targets: Mutex<HashMap<TargetId, Status>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, HashMap<TargetId, Status>> {
        // A panic elsewhere while holding the lock leaves plain data behind: keep going.
        self.targets.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One target's bookkeeping.
#[derive(Debug)]
struct Status {
    check: HealthCheck,
    describe: String,
    tracker: Tracker,
    since_unix_ms: u64,
    last: Option<CheckOutcome>,
    next: Option<Instant>,
    checks_total: u64,
    failures_total: u64,
    dynamic_weight: Option<u32>,
    starts: VecDeque<std::time::Instant>,
}

impl Status {
    fn new(target: &Target) -> Self {
        let c = &target.check;
        let rs = target.id.real_server;
        Status {
            describe: c.describe(c.target(rs.addr, rs.port)),
            tracker: Tracker::new(c.rise, c.fall, c.alpha, std::time::Instant::now()),
            since_unix_ms: unix_ms(),
            check: c.clone(),
            last: None,
            next: None,
            checks_total: 0,
            failures_total: 0,
            dynamic_weight: None,
            starts: VecDeque::with_capacity(START_HISTORY),
        }
    }

    fn info(&self, now: Instant) -> HealthInfo {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        HealthInfo {
            check: self.describe.clone(),
            state: self.tracker.state(),
            since_unix_ms: self.since_unix_ms,
            successes: self.tracker.successes(),
            failures: self.tracker.failures(),
            rise: self.check.rise,
            fall: self.check.fall,
            interval_ms: ms(self.check.interval),
            timeout_ms: ms(self.check.timeout),
            last: self.last.clone(),
            next_in_ms: self.next.map(|n| ms(n.saturating_duration_since(now))),
            checks_total: self.checks_total,
            failures_total: self.failures_total,
            inhibit_on_failure: self.check.inhibit_on_failure,
            dynamic_weight: self.dynamic_weight,
            passive: None,
        }
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A random number (std's randomly keyed SipHash over a counter): DNS ids, warmup delays.
pub(crate) fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.finish()
}

/// A random delay in `0..warmup` (zero for a zero warmup).
fn warmup_delay(warmup: Duration) -> Duration {
    let nanos = u64::try_from(warmup.as_nanos()).unwrap_or(u64::MAX);
    if nanos == 0 {
        return Duration::ZERO;
    }
    Duration::from_nanos(random_u64() % nanos)
}

impl HealthRunner {
    /// Spawns one dedicated thread with its own tokio current-thread runtime; checks run
    /// as tasks with bounded concurrency ([`MAX_CONCURRENT`]), each target on its own timer
    /// (interval measured start-to-start, first run after a random `0..warmup` delay);
    /// never blocks the caller. `report` runs on the runner thread and must not block (a
    /// blocked callback holds up every check).
    ///
    /// A target's check goes to [`HealthCheck::target`] of its real server's address and
    /// port.
    pub fn start(
        targets: Vec<Target>,
        report: Box<dyn Fn(HealthReport) + Send + Sync>,
    ) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let shared = Arc::new(Shared {
            targets: Mutex::new(HashMap::new()),
        });
        let (commands, rx) = mpsc::unbounded_channel();
        let report: Report = Arc::from(report);
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("lvsd-health".into())
            .spawn(move || runtime.block_on(run(targets, thread_shared, report, rx)))?;
        Ok(HealthRunner {
            commands,
            shared,
            thread: Some(thread),
        })
    }

    /// Replace the target set; a target with the same id and an equal check keeps its
    /// state and timer.
    pub fn reconfigure(&self, targets: Vec<Target>) {
        // Fails only once the runner thread is gone, when there is nothing to reconfigure.
        let _ = self.commands.send(Command::Reconfigure(targets));
    }

    /// Per-target HealthInfo (passive: None — the dataplane fills that) as of now.
    pub fn snapshot(&self) -> HashMap<TargetId, HealthInfo> {
        let now = Instant::now();
        self.shared
            .lock()
            .iter()
            .map(|(id, s)| (*id, s.info(now)))
            .collect()
    }

    /// The actual start times of each target's recent checks (at most
    /// [`START_HISTORY`], oldest first), for measuring interval drift.
    pub fn start_times(&self) -> HashMap<TargetId, Vec<std::time::Instant>> {
        self.shared
            .lock()
            .iter()
            .map(|(id, s)| (*id, s.starts.iter().copied().collect()))
            .collect()
    }

    /// Initial state of a new target: Up, or Down with alpha.
    pub fn initial_state(check: &HealthCheck) -> HealthState {
        if check.alpha {
            HealthState::Down
        } else {
            HealthState::Up
        }
    }

    /// Stops the thread (also on Drop).
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for HealthRunner {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Stop);
        if let Some(t) = self.thread.take() {
            // A panic on the runner thread has been printed already; nothing to add.
            let _ = t.join();
        }
    }
}

/// The runner thread's main task: owns the per-target tasks.
async fn run(
    targets: Vec<Target>,
    shared: Arc<Shared>,
    report: Report,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONCURRENT));
    let mut tasks: HashMap<TargetId, (HealthCheck, tokio::task::JoinHandle<()>)> = HashMap::new();
    let mut apply = |targets: Vec<Target>| {
        // The first occurrence of an id wins.
        let mut wanted: HashMap<TargetId, &Target> = HashMap::with_capacity(targets.len());
        for t in &targets {
            wanted.entry(t.id).or_insert(t);
        }
        let mut statuses = shared.lock();
        tasks.retain(|id, (check, task)| {
            let keep = wanted.get(id).is_some_and(|t| t.check == *check);
            if !keep {
                task.abort();
                statuses.remove(id);
            }
            keep
        });
        let mut paced = 0u64;
        for t in &targets {
            if tasks.contains_key(&t.id) {
                continue;
            }
            let first = if t.check.warmup.is_zero() {
                paced += 1;
                pace_offset(paced - 1, t.check.interval)
            } else {
                warmup_delay(t.check.warmup)
            };
            statuses.insert(t.id, Status::new(t));
            let task = tokio::spawn(target_loop(
                t.clone(),
                first,
                shared.clone(),
                permits.clone(),
                report.clone(),
            ));
            tasks.insert(t.id, (t.check.clone(), task));
        }
    };
    apply(targets);
    while let Some(cmd) = commands.recv().await {
        match cmd {
            Command::Reconfigure(targets) => apply(targets),
            Command::Stop => break,
        }
    }
    for (_, (_, task)) in tasks {
        task.abort();
    }
}

/// The first-check offset of the `k`th new target without warmup (module doc: pacing).
fn pace_offset(k: u64, interval: Duration) -> Duration {
    let pace = u64::try_from(FIRST_CHECK_PACE.as_nanos()).unwrap_or(u64::MAX);
    let interval = u64::try_from(interval.as_nanos())
        .unwrap_or(u64::MAX)
        .max(1);
    Duration::from_nanos(k.saturating_mul(pace) % interval)
}

/// Checks one target forever (until aborted); the first check `first` from now.
async fn target_loop(
    target: Target,
    first: Duration,
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
    report: Report,
) {
    let id = target.id;
    let check = &target.check;
    let addr = check.target(id.real_server.addr, id.real_server.port);
    let checker = Checker::new(check, addr);
    let mut next = Instant::now() + first;
    loop {
        if let Some(s) = shared.lock().get_mut(&id) {
            s.next = Some(next);
        }
        tokio::time::sleep_until(next).await;
        let Ok(permit) = permits.acquire().await else {
            return;
        };
        {
            let mut statuses = shared.lock();
            let Some(s) = statuses.get_mut(&id) else {
                return;
            };
            s.next = None;
            if s.starts.len() == START_HISTORY {
                s.starts.pop_front();
            }
            s.starts.push_back(std::time::Instant::now());
        }
        let outcome = checker.run().await;
        drop(permit);
        for r in record(&shared, id, &outcome) {
            // A panicking callback must not end this target's checks (the panic is printed
            // by the hook; this report is lost).
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| report(r)));
        }
        next += check.interval;
        let now = Instant::now();
        if next < now {
            next = now;
        }
    }
}

/// Books one outcome; returns the reports it causes (weight first, then the flip).
fn record(shared: &Shared, id: TargetId, outcome: &Outcome) -> Vec<HealthReport> {
    let mut reports = Vec::new();
    let mut statuses = shared.lock();
    let Some(s) = statuses.get_mut(&id) else {
        return reports;
    };
    s.checks_total += 1;
    if !outcome.ok {
        s.failures_total += 1;
    }
    let now_ms = unix_ms();
    s.last = Some(CheckOutcome {
        ok: outcome.ok,
        at_unix_ms: now_ms,
        latency_us: u64::try_from(outcome.latency.as_micros()).unwrap_or(u64::MAX),
        message: outcome.message.clone(),
    });
    if let Some(w) = outcome.weight {
        if s.dynamic_weight != Some(w) {
            s.dynamic_weight = Some(w);
            reports.push(HealthReport::DynamicWeight { id, weight: w });
        }
    }
    let flip = s
        .tracker
        .record(std::time::Instant::now(), outcome.ok, &outcome.message);
    if let Some(t) = flip {
        s.since_unix_ms = now_ms;
        reports.push(HealthReport::Changed {
            id,
            state: t.state,
            check: s.describe.clone(),
            reason: t.reason,
        });
    }
    reports
}

#[cfg(test)]
mod tests;
