//! `lvs-bench`: every path through the director measured side by side in one lab
//! (issue 9): the kernel routing to one real server (no balancing), nftables DNAT, HAProxy
//! in TCP mode, lvsd NAT and lvsd DR; and lvsd's CPU with no traffic. On request (the
//! [`PathKind::IPV6`] paths, `lvs-bench --ipv6`) the same over IPv6 in the same lab: kernel
//! routing and `ip6` nftables DNAT as the IPv6 baselines, lvsd NAT66 and lvsd DR over IPv6.
//!
//! Per path: new TCP connections per second, keep-alive requests per second, the highest
//! 64-byte UDP rate forwarded with < 0.1 % loss, latency p50/p99 at a fixed moderate rate,
//! and the CPU the director used (its process for lvsd and HAProxy; the kernel's forwarding
//! cannot be told apart from the rest of the machine, so machine-wide system + softirq time
//! is reported for every path and labelled so). See `docs/benchmarks.md`.
//!
//! Invariants:
//! - Everything runs in one [`Lab`] (client, router, one director, three real servers) with
//!   lab addresses only; nothing leaves the lab's namespaces. The lab has IPv6 only if an
//!   IPv6 path is selected, so an IPv4-only run is the same as before IPv6 paths existed.
//! - Every measurement is bounded in time ([`Options::phase`], the UDP search in trials),
//!   so a run takes a few minutes at most, and each path is set up and torn down by a guard
//!   ([`paths`]): an error or Ctrl-C (SIGINT/SIGTERM set [`interrupted`]; loops stop at the
//!   next check and guards run) leaves nothing behind. If the process is killed outright,
//!   the lab's namespaces and children die with it ([`crate::netns`], [`crate::process`]).
//! - A path that fails is reported as failed and the run goes on with the next one.

pub mod cpu;
pub mod load;
pub mod paths;
pub mod report;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{Context, LabError, Result};
use crate::lab::{Lab, LabSpec};
use cpu::CpuMeter;
use load::{UdpSinks, UdpTrial};
use paths::{Haproxy, KernelRoute, KernelRoute6, Lvsd, NftDnat, RealServers, UDP_PORT};
pub use report::{IdleCpu, Outcome, PathKind, PathResult, Report, TcpMeasure, UdpResult};

/// Number of real servers in the benchmark lab.
pub const REAL_SERVERS: usize = 3;

static INTERRUPTED: OnceLock<Arc<AtomicBool>> = OnceLock::new();

fn interrupt_flag() -> &'static Arc<AtomicBool> {
    INTERRUPTED.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// Make SIGINT and SIGTERM end the run cleanly: they set [`interrupted`], every loop stops
/// at its next check, and the guards undo what they set up. A second signal while the first
/// is being handled terminates the process (the lab's namespaces and children still die
/// with it).
pub fn install_interrupt_handler() -> Result<()> {
    let flag = interrupt_flag();
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(flag))
            .ctx("installing a signal handler")?;
        signal_hook::flag::register(signal, Arc::clone(flag)).ctx("installing a signal handler")?;
    }
    Ok(())
}

/// Whether SIGINT or SIGTERM arrived.
pub fn interrupted() -> bool {
    interrupt_flag().load(Ordering::Relaxed)
}

fn check_interrupted() -> Result<()> {
    if interrupted() {
        return Err(LabError::Invalid("interrupted".into()));
    }
    Ok(())
}

/// What to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Short phases (2 s instead of 5 s, a shorter UDP search and idle measurement).
    pub quick: bool,
    /// Paths to measure (measured in [`PathKind::ALL`] order); by default the IPv4 ones.
    pub paths: Vec<PathKind>,
    /// Measure lvsd's idle CPU (needs [`PathKind::LvsdNat`]).
    pub idle: bool,
    /// Load-generator threads in the client.
    pub workers: usize,
    /// Connections in flight per load-generator thread.
    pub per_worker: usize,
    /// Requests per second of the latency measurement.
    pub latency_rate: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            quick: false,
            paths: PathKind::IPV4.to_vec(),
            idle: true,
            workers: 2,
            per_worker: 16,
            latency_rate: 1000,
        }
    }
}

impl Options {
    /// Whether any IPv6 path is selected (the lab then gets IPv6).
    pub fn ipv6(&self) -> bool {
        self.paths.iter().any(|k| k.is_ipv6())
    }

    /// Length of each TCP measurement.
    pub fn phase(&self) -> Duration {
        Duration::from_secs(if self.quick { 2 } else { 5 })
    }

    fn udp_trial(&self) -> Duration {
        Duration::from_millis(if self.quick { 500 } else { 1000 })
    }

    fn udp_max_trials(&self) -> usize {
        if self.quick { 7 } else { 12 }
    }

    fn idle_secs(&self) -> Duration {
        Duration::from_secs(if self.quick { 3 } else { 10 })
    }
}

/// Build the lab, measure the selected paths, and return the report. `progress` gets one
/// line per step.
pub fn run(opts: &Options, mut progress: impl FnMut(&str)) -> Result<Report> {
    let lvsd_exe = crate::lvsd_binary()?;
    progress(&format!("lvsd: {}", lvsd_exe.display()));
    let lab = Lab::build(
        LabSpec::new(&lvsd_exe)
            .lvsd_exe(&lvsd_exe)
            .nat_real_servers(REAL_SERVERS)
            .ipv6(opts.ipv6()),
    )?;
    // A family's paths are in the report (measured or skipped) only if one of them was
    // selected.
    let families: Vec<PathKind> = PathKind::ALL
        .into_iter()
        .filter(|k| opts.paths.iter().any(|p| p.is_ipv6() == k.is_ipv6()))
        .collect();
    // Room for many short connections: a wide port range and TIME_WAIT reuse in the client
    // and the director (HAProxy's own connections to the real servers).
    for host in [lab.client(), lab.director(1)] {
        host.sysctl_write("net/ipv4/ip_local_port_range", "1024 65000")?;
        host.sysctl_write("net/ipv4/tcp_tw_reuse", "1")?;
    }
    // Each path's traffic comes from an address of its own, so the real servers'
    // TIME_WAIT sockets left by one path never meet another path's SYNs (whose timestamps,
    // offset per address pair, may look older: PAWS would drop them, costing a 1 s
    // retransmit).
    for &kind in &families {
        let prefix = if kind.is_ipv6() {
            crate::lab::PREFIX6
        } else {
            24
        };
        lab.client()
            .add_address("eth0", client_source(kind), prefix)?;
    }
    let servers = RealServers::start(&lab)?;
    progress(&format!("real servers: {REAL_SERVERS} × {}", servers.kind));
    let sinks = if opts.ipv6() {
        UdpSinks::start_dual(lab.real_servers(), UDP_PORT)?
    } else {
        UdpSinks::start(lab.real_servers(), UDP_PORT)?
    };

    let mut report = Report {
        real_servers: servers.kind.into(),
        n_real_servers: REAL_SERVERS,
        phase_secs: opts.phase().as_secs_f64(),
        concurrency: opts.workers * opts.per_worker,
        latency_rate: opts.latency_rate,
        machine: machine(),
        lvsd: lvsd_exe.display().to_string(),
        paths: Vec::new(),
        idle: None,
    };
    for kind in families {
        if !opts.paths.contains(&kind) {
            report.paths.push(PathResult::new(
                kind,
                Outcome::Skipped("not selected".into()),
            ));
            continue;
        }
        if interrupted() {
            report.paths.push(PathResult::new(
                kind,
                Outcome::Skipped("interrupted".into()),
            ));
            continue;
        }
        progress(&format!("path {}", kind.title()));
        let started = Instant::now();
        let mut result = PathResult::new(kind, Outcome::Measured);
        if let Err(e) = run_path(
            &lab,
            &sinks,
            opts,
            &mut result,
            &mut report.idle,
            &mut progress,
        ) {
            // Whatever was measured before the failure stays in the result.
            result.outcome = Outcome::Failed(if interrupted() {
                "interrupted".into()
            } else {
                e.to_string()
            });
        }
        progress(&format!(
            "path {} done in {:.0} s",
            kind.title(),
            started.elapsed().as_secs_f64()
        ));
        report.paths.push(result);
    }
    drop(sinks);
    drop(servers);
    drop(lab);
    Ok(report)
}

/// Set up `result.kind`'s path, measure it into `result`, tear it down.
fn run_path(
    lab: &Lab,
    sinks: &UdpSinks,
    opts: &Options,
    result: &mut PathResult,
    idle: &mut Option<IdleCpu>,
    progress: &mut impl FnMut(&str),
) -> Result<()> {
    match result.kind {
        PathKind::Kernel => {
            let guard = KernelRoute::setup(lab)?;
            let (tcp, udp) = guard.targets();
            measure(lab, sinks, opts, tcp, udp, None, result, progress)
        }
        PathKind::Nftables => {
            let guard = NftDnat::setup(lab)?;
            let (tcp, udp) = guard.targets();
            measure(lab, sinks, opts, tcp, udp, None, result, progress)
        }
        PathKind::Kernel6 => {
            let guard = KernelRoute6::setup(lab)?;
            let (tcp, udp) = guard.targets();
            measure(lab, sinks, opts, tcp, udp, None, result, progress)
        }
        PathKind::Nftables6 => {
            let guard = NftDnat::setup6(lab)?;
            let (tcp, udp) = guard.targets();
            measure(lab, sinks, opts, tcp, udp, None, result, progress)
        }
        PathKind::LvsdNat6 | PathKind::LvsdDr6 => {
            let lvsd = if result.kind == PathKind::LvsdNat6 {
                Lvsd::nat6(lab)?
            } else {
                Lvsd::dr6(lab)?
            };
            let (tcp, udp) = lvsd.targets();
            let measured = measure(
                lab,
                sinks,
                opts,
                tcp,
                udp,
                Some(lvsd.pid()),
                result,
                progress,
            );
            result.lvsd_stats = Some(lvsd.stop());
            measured
        }
        PathKind::Haproxy => match Haproxy::setup(lab)? {
            None => {
                result.outcome = Outcome::Skipped("haproxy not installed".into());
                Ok(())
            }
            Some(guard) => {
                let (tcp, udp) = guard.targets();
                measure(
                    lab,
                    sinks,
                    opts,
                    tcp,
                    udp,
                    Some(guard.pid()),
                    result,
                    progress,
                )
            }
        },
        PathKind::LvsdNat | PathKind::LvsdDr => {
            let nat = result.kind == PathKind::LvsdNat;
            let lvsd = if nat { Lvsd::nat(lab)? } else { Lvsd::dr(lab)? };
            if nat && opts.idle {
                progress(&format!(
                    "  lvsd idle CPU ({} s, no traffic)",
                    opts.idle_secs().as_secs()
                ));
                // Let startup (ARP, VIP) settle first.
                sleep_checked(Duration::from_secs(1))?;
                let meter = CpuMeter::start(Some(lvsd.pid()))?;
                sleep_checked(opts.idle_secs())?;
                let used = meter.finish()?;
                *idle = Some(IdleCpu {
                    secs: opts.idle_secs().as_secs_f64(),
                    pct: used.director_pct.unwrap_or(0.0),
                    resolution_pct: 100.0
                        / (cpu::clock_ticks() as f64 * opts.idle_secs().as_secs_f64()),
                });
            }
            let (tcp, udp) = lvsd.targets();
            let measured = measure(
                lab,
                sinks,
                opts,
                tcp,
                udp,
                Some(lvsd.pid()),
                result,
                progress,
            );
            result.lvsd_stats = Some(lvsd.stop());
            measured
        }
    }
}

/// The client address a path's traffic comes from: 198.51.100.(20 + its index in
/// [`PathKind::ALL`]), or for an IPv6 path 2001:db8:c::(0x20 + its index).
pub fn client_source(kind: PathKind) -> IpAddr {
    let index = PathKind::ALL.iter().position(|&k| k == kind).unwrap_or(0);
    if kind.is_ipv6() {
        Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 0x20 + index as u16).into()
    } else {
        Ipv4Addr::new(198, 51, 100, 20 + index as u8).into()
    }
}

fn sleep_checked(d: Duration) -> Result<()> {
    let end = Instant::now() + d;
    while Instant::now() < end {
        check_interrupted()?;
        thread::sleep(Duration::from_millis(100).min(end - Instant::now()));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn measure(
    lab: &Lab,
    sinks: &UdpSinks,
    opts: &Options,
    tcp: SocketAddr,
    udp: Option<SocketAddr>,
    pid: Option<u32>,
    result: &mut PathResult,
    progress: &mut impl FnMut(&str),
) -> Result<()> {
    let client = lab.client();
    // One request first: a path that does not work fails here, not as a column of zeros.
    client
        .try_run(|| crate::client::http_request(tcp, "GET", "/", Duration::from_secs(3)))?
        .map_err(|e| LabError::Invalid(format!("first request to {tcp}: {e}")))
        .and_then(|r| {
            if r.status == 200 {
                Ok(())
            } else {
                Err(LabError::Invalid(format!(
                    "first request to {tcp}: status {}",
                    r.status
                )))
            }
        })?;
    let phase = opts.phase();
    let src = client_source(result.kind);

    progress(&format!("  new connections/s ({} s)", phase.as_secs()));
    let meter = CpuMeter::start(pid)?;
    let load =
        client.try_run(|| load::conn_rate(src, tcp, opts.workers, opts.per_worker, phase))?;
    result.conn = Some(TcpMeasure {
        load,
        cpu: meter.finish()?,
    });
    sleep_checked(Duration::from_millis(500))?;

    progress(&format!("  keep-alive requests/s ({} s)", phase.as_secs()));
    let meter = CpuMeter::start(pid)?;
    let load =
        client.try_run(|| load::keepalive_rate(src, tcp, opts.workers, opts.per_worker, phase))?;
    result.keepalive = Some(TcpMeasure {
        load,
        cpu: meter.finish()?,
    });
    sleep_checked(Duration::from_millis(500))?;

    progress(&format!(
        "  latency at {} req/s ({} s)",
        opts.latency_rate,
        phase.as_secs()
    ));
    result.latency = Some(client.try_run(|| load::latency(src, tcp, opts.latency_rate, phase))??);

    if let Some(udp) = udp {
        progress("  UDP no-loss search");
        result.udp = Some(udp_search(lab, sinks, opts, src, udp, pid)?);
    }
    check_interrupted()
}

/// Loss threshold of the UDP search.
const MAX_LOSS: f64 = 0.001;

/// Find the highest rate with < [`MAX_LOSS`] loss: double from 20k/s until a trial loses
/// (or the sender cannot go faster), then bisect; at most `opts.udp_max_trials()` trials.
fn udp_search(
    lab: &Lab,
    sinks: &UdpSinks,
    opts: &Options,
    src: IpAddr,
    target: SocketAddr,
    pid: Option<u32>,
) -> Result<UdpResult> {
    let mut result = UdpResult::default();
    let (mut good, mut bad): (f64, Option<f64>) = (0.0, None);
    let mut rate = 20_000.0;
    for _ in 0..opts.udp_max_trials() {
        check_interrupted()?;
        let meter = CpuMeter::start(pid)?;
        let trial: UdpTrial = lab.client().try_run(|| {
            load::udp_trial(
                src,
                target,
                rate,
                opts.workers,
                opts.udp_trial(),
                Duration::from_millis(300),
                sinks,
            )
        })??;
        let cpu = meter.finish()?;
        result.trials.push(trial);
        let passed = trial.loss() < MAX_LOSS && trial.sent > 0;
        if passed {
            if result.best.is_none_or(|b| trial.sent_rate > b.sent_rate) {
                result.best = Some(trial);
                result.cpu = Some(cpu);
            }
            good = good.max(rate);
            if trial.sender_limited() {
                // The client cannot offer more: the path is at least this fast.
                break;
            }
        } else {
            bad = Some(bad.map_or(rate, |b: f64| b.min(rate)));
        }
        rate = match bad {
            None => rate * 2.0,
            Some(b) => {
                if b - good < good.max(1000.0) * 0.05 {
                    break;
                }
                (good + b) / 2.0
            }
        };
        if rate < 1000.0 {
            break;
        }
    }
    Ok(result)
}

fn machine() -> String {
    let cpus = thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpus} CPUs, Linux {}", kernel.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_sources_are_distinct_and_of_the_path_family() {
        let sources: Vec<IpAddr> = PathKind::ALL.into_iter().map(client_source).collect();
        for (k, src) in PathKind::ALL.into_iter().zip(&sources) {
            assert_eq!(src.is_ipv6(), k.is_ipv6(), "{k:?}");
        }
        let mut unique = sources.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), sources.len());
        assert_eq!(
            client_source(PathKind::LvsdNat6),
            "2001:db8:c::27"
                .parse::<IpAddr>()
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
        );
    }

    #[test]
    fn default_runs_ipv4_only() {
        let opts = Options::default();
        assert!(!opts.ipv6());
        assert_eq!(opts.paths, PathKind::IPV4.to_vec());
    }
}
