//! Health-check runner benchmark: N TCP checks every second against loopback listeners,
//! reporting the CPU the runner used and the drift of the actual start-to-start interval.
//!
//! `cargo bench -p lvsd --bench health` — settings from the environment:
//! `LVSD_BENCH_TARGETS` (default 2000), `LVSD_BENCH_SECS` (default 10),
//! `LVSD_BENCH_WARMUP_MS` (keepalived `warmup`, default 0: the runner paces first checks).
//!
//! The targets are distinct ids (real servers 127.0.0.1:10000+i) whose checks connect to
//! one of 8 listeners on 127.0.0.1 (`connect_port`); each listener thread accepts and
//! closes. Their CPU (measured per thread) is subtracted from the process's, so the figure
//! is the runner's (plus the idle main thread). Drift is |actual interval - 1 s|, over
//! every pair of consecutive starts of every target.

use std::error::Error;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lvs_proto::{Protocol, RealServerKey, ServiceKey};
use lvsd::config::{CheckKind, HealthCheck};
use lvsd::health::{HealthReport, HealthRunner, Target, TargetId};
use nix::sys::resource::{UsageWho, getrusage};

const LISTENERS: usize = 8;
const INTERVAL: Duration = Duration::from_secs(1);

fn env_or(name: &str, default: u64) -> Result<u64, Box<dyn Error>> {
    match std::env::var(name) {
        Ok(v) => Ok(v.parse().map_err(|e| format!("{name}={v}: {e}"))?),
        Err(_) => Ok(default),
    }
}

/// User + system CPU time of `who`.
fn cpu(who: UsageWho) -> Result<Duration, Box<dyn Error>> {
    let u = getrusage(who)?;
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(u64::try_from(t.tv_sec()).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec()).unwrap_or(0))
    };
    Ok(tv(u.user_time()) + tv(u.system_time()))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() -> Result<(), Box<dyn Error>> {
    // `cargo bench` passes `--bench`; a filter argument that is not ours means "not me".
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with('-') && a != "health")
    {
        return Ok(());
    }
    let n = usize::try_from(env_or("LVSD_BENCH_TARGETS", 2000)?)?;
    let secs = env_or("LVSD_BENCH_SECS", 10)?;
    let warmup = Duration::from_millis(env_or("LVSD_BENCH_WARMUP_MS", 0)?);

    // Listeners: accept and close, each on its own thread, CPU measured per thread.
    let stop = Arc::new(AtomicBool::new(false));
    let mut ports = Vec::new();
    let mut threads = Vec::new();
    for _ in 0..LISTENERS {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        ports.push(l.local_addr()?.port());
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || {
            for s in l.incoming() {
                drop(s);
                if stop.load(Ordering::Relaxed) {
                    break;
                }
            }
            cpu(UsageWho::RUSAGE_THREAD).unwrap_or_default()
        }));
    }

    let targets: Vec<Target> = (0..n)
        .map(|i| Target {
            id: TargetId {
                service: ServiceKey {
                    protocol: Protocol::Tcp,
                    vip: Ipv4Addr::new(203, 0, 113, 10).into(),
                    port: 80,
                },
                real_server: RealServerKey::new(
                    Ipv4Addr::LOCALHOST,
                    u16::try_from(10_000 + i % 50_000).unwrap_or(10_000),
                ),
            },
            check: HealthCheck {
                kind: CheckKind::Tcp,
                interval: INTERVAL,
                timeout: Duration::from_millis(500),
                rise: 1,
                fall: 3,
                alpha: false,
                warmup,
                inhibit_on_failure: false,
                connect_ip: None,
                connect_port: Some(ports[i % LISTENERS]),
            },
        })
        .collect();

    let flips = Arc::new(AtomicU64::new(0));
    let counter = flips.clone();
    let report = move |r: HealthReport| {
        if matches!(r, HealthReport::Changed { .. }) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    };
    let cpu_before = cpu(UsageWho::RUSAGE_SELF)?;
    let started = Instant::now();
    let runner = HealthRunner::start(targets, Box::new(report))?;
    std::thread::sleep(Duration::from_secs(secs));
    let snapshot = runner.snapshot();
    let starts = runner.start_times();
    runner.stop();
    let wall = started.elapsed();
    let cpu_total = cpu(UsageWho::RUSAGE_SELF)? - cpu_before;

    stop.store(true, Ordering::Relaxed);
    for port in &ports {
        // Wake each accept loop so it sees `stop`.
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, *port));
    }
    let mut listener_cpu = Duration::ZERO;
    for t in threads {
        listener_cpu += t.join().map_err(|_| "listener thread panicked")?;
    }
    let runner_cpu = cpu_total.saturating_sub(listener_cpu);

    let checks: u64 = snapshot.values().map(|h| h.checks_total).sum();
    let failed: u64 = snapshot.values().map(|h| h.failures_total).sum();
    let mut drift: Vec<Duration> = starts
        .values()
        .flat_map(|s| {
            s.windows(2)
                .map(|w| (w[1] - w[0]).abs_diff(INTERVAL))
                .collect::<Vec<_>>()
        })
        .collect();
    drift.sort();
    let pct = |d: Duration| d.as_secs_f64() / INTERVAL.as_secs_f64() * 100.0;
    let (p50, p99, max) = (
        percentile(&drift, 0.50),
        percentile(&drift, 0.99),
        drift.last().copied().unwrap_or_default(),
    );
    println!(
        "health: {n} tcp targets, interval {INTERVAL:?}, warmup {warmup:?}, {:.1} s",
        wall.as_secs_f64()
    );
    println!(
        "  checks {checks} ({:.0}/s), failed {failed}, state flips {}",
        checks as f64 / wall.as_secs_f64(),
        flips.load(Ordering::Relaxed)
    );
    println!(
        "  runner CPU {:.2} s = {:.1}% of one core ({:.1} us per check); listeners {:.2} s",
        runner_cpu.as_secs_f64(),
        runner_cpu.as_secs_f64() / wall.as_secs_f64() * 100.0,
        runner_cpu.as_secs_f64() * 1e6 / checks.max(1) as f64,
        listener_cpu.as_secs_f64()
    );
    println!(
        "  interval drift over {} intervals: p50 {:.2} ms ({:.3}%), p99 {:.2} ms ({:.3}%), \
         max {:.2} ms",
        drift.len(),
        p50.as_secs_f64() * 1e3,
        pct(p50),
        p99.as_secs_f64() * 1e3,
        pct(p99),
        max.as_secs_f64() * 1e3
    );
    Ok(())
}
