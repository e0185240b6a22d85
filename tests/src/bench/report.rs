//! Results of `lvs-bench`: per path, the table it prints and the JSON it writes.
//!
//! Invariant: the table and the JSON are rendered from the same [`Report`]; a number that
//! was not measured (path skipped or failed, or not applicable such as UDP through HAProxy)
//! is `-` in the table and `null` in the JSON, never 0. The table has a column per path of
//! each family (IPv4, IPv6) with a result in the report, and that family's ratios; IPv6
//! paths are compared with the IPv6 baselines only.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::cpu::CpuUse;
use super::load::{Latency, Throughput, UdpTrial};

/// The paths through the director, in the order they are measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PathKind {
    /// The kernel routes to one real server, no balancing.
    Kernel,
    /// nftables DNAT over the real servers.
    Nftables,
    /// HAProxy in TCP mode.
    Haproxy,
    /// lvsd, NAT.
    LvsdNat,
    /// lvsd, direct routing.
    LvsdDr,
    /// IPv6: the kernel routes to one real server, no balancing.
    Kernel6,
    /// IPv6: nftables (`ip6`) DNAT over the real servers.
    Nftables6,
    /// IPv6: lvsd, NAT66.
    LvsdNat6,
    /// IPv6: lvsd, direct routing.
    LvsdDr6,
}

impl PathKind {
    /// Every path, in measuring order (per family, DR last: it re-plumbs the real servers;
    /// the IPv6 paths put them back).
    pub const ALL: [PathKind; 9] = [
        PathKind::Kernel,
        PathKind::Nftables,
        PathKind::Haproxy,
        PathKind::LvsdNat,
        PathKind::LvsdDr,
        PathKind::Kernel6,
        PathKind::Nftables6,
        PathKind::LvsdNat6,
        PathKind::LvsdDr6,
    ];

    /// The IPv4 paths (what runs by default).
    pub const IPV4: [PathKind; 5] = [
        PathKind::Kernel,
        PathKind::Nftables,
        PathKind::Haproxy,
        PathKind::LvsdNat,
        PathKind::LvsdDr,
    ];

    /// The IPv6 paths (`lvs-bench --ipv6` adds them).
    pub const IPV6: [PathKind; 4] = [
        PathKind::Kernel6,
        PathKind::Nftables6,
        PathKind::LvsdNat6,
        PathKind::LvsdDr6,
    ];

    /// Whether the path carries IPv6.
    pub fn is_ipv6(self) -> bool {
        Self::IPV6.contains(&self)
    }

    /// Short name (`--only` value, JSON key).
    pub fn word(self) -> &'static str {
        match self {
            PathKind::Kernel => "kernel",
            PathKind::Nftables => "nftables",
            PathKind::Haproxy => "haproxy",
            PathKind::LvsdNat => "lvsd-nat",
            PathKind::LvsdDr => "lvsd-dr",
            PathKind::Kernel6 => "kernel6",
            PathKind::Nftables6 => "nftables6",
            PathKind::LvsdNat6 => "lvsd-nat6",
            PathKind::LvsdDr6 => "lvsd-dr6",
        }
    }

    /// Column header.
    pub fn title(self) -> &'static str {
        match self {
            PathKind::Kernel => "kernel route",
            PathKind::Nftables => "nft DNAT",
            PathKind::Haproxy => "HAProxy",
            PathKind::LvsdNat => "lvsd NAT",
            PathKind::LvsdDr => "lvsd DR",
            PathKind::Kernel6 => "kernel route v6",
            PathKind::Nftables6 => "nft DNAT v6",
            PathKind::LvsdNat6 => "lvsd NAT66",
            PathKind::LvsdDr6 => "lvsd DR v6",
        }
    }

    /// The path named `word`.
    pub fn parse(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.word() == word)
    }
}

/// A closed-loop TCP measurement with the CPU it took.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TcpMeasure {
    /// Requests done and errors.
    pub load: Throughput,
    /// CPU during the run.
    pub cpu: CpuUse,
}

/// The UDP search's answer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UdpResult {
    /// The fastest trial with < 0.1 % loss, if any.
    pub best: Option<UdpTrial>,
    /// CPU during that trial.
    pub cpu: Option<CpuUse>,
    /// Every trial, in order.
    pub trials: Vec<UdpTrial>,
}

impl UdpResult {
    /// The no-loss rate (achieved sending rate of the best trial).
    pub fn rate(&self) -> Option<f64> {
        self.best.map(|t| t.sent_rate)
    }

    /// Whether the best trial was limited by the sender rather than by loss (the path may
    /// be faster).
    pub fn sender_limited(&self) -> bool {
        self.best.is_some_and(|t| t.sender_limited())
    }
}

/// What happened to one path.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Measured (some measurements may have been cut short by an interrupt).
    Measured,
    /// Not run, with the reason (`haproxy not installed`, not selected).
    Skipped(String),
    /// Setup or a measurement failed, with the error.
    Failed(String),
}

/// Everything measured on one path.
#[derive(Debug, Clone, PartialEq)]
pub struct PathResult {
    /// Which path.
    pub kind: PathKind,
    /// Whether it ran.
    pub outcome: Outcome,
    /// New connections per second.
    pub conn: Option<TcpMeasure>,
    /// Keep-alive requests per second.
    pub keepalive: Option<TcpMeasure>,
    /// Fixed-rate latency.
    pub latency: Option<Latency>,
    /// 64-byte UDP without loss.
    pub udp: Option<UdpResult>,
    /// lvsd's exit counters, for lvsd paths.
    pub lvsd_stats: Option<String>,
}

impl PathResult {
    /// An empty result with `outcome`.
    pub fn new(kind: PathKind, outcome: Outcome) -> Self {
        Self {
            kind,
            outcome,
            conn: None,
            keepalive: None,
            latency: None,
            udp: None,
            lvsd_stats: None,
        }
    }
}

/// lvsd's CPU with no traffic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IdleCpu {
    /// Seconds measured.
    pub secs: f64,
    /// CPU of the lvsd process, % of one core.
    pub pct: f64,
    /// One clock tick over the measured time, in % (the smallest non-zero reading).
    pub resolution_pct: f64,
}

/// The whole run.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// `nginx` or `lvs-lab-node`.
    pub real_servers: String,
    /// Number of real servers.
    pub n_real_servers: usize,
    /// Seconds per TCP measurement.
    pub phase_secs: f64,
    /// Concurrency of the closed-loop TCP runs.
    pub concurrency: usize,
    /// Rate of the latency runs, requests per second.
    pub latency_rate: u32,
    /// Machine facts: CPUs, kernel.
    pub machine: String,
    /// The lvsd executable measured.
    pub lvsd: String,
    /// Per path, in [`PathKind::ALL`] order.
    pub paths: Vec<PathResult>,
    /// lvsd idle CPU, if measured.
    pub idle: Option<IdleCpu>,
}

impl Report {
    fn path(&self, kind: PathKind) -> Option<&PathResult> {
        self.paths.iter().find(|p| p.kind == kind)
    }

    fn metric(&self, kind: PathKind, m: Metric) -> Option<f64> {
        let p = self.path(kind)?;
        match m {
            Metric::Conn => p.conn.map(|c| c.load.rate()),
            Metric::KeepAlive => p.keepalive.map(|c| c.load.rate()),
            Metric::Udp => p.udp.as_ref().and_then(UdpResult::rate),
            Metric::P50 => p.latency.filter(|l| l.ok > 0).map(|l| l.p50_us / 1000.0),
            Metric::P99 => p.latency.filter(|l| l.ok > 0).map(|l| l.p99_us / 1000.0),
            Metric::CpuConn => p.conn.and_then(|c| c.cpu.director_pct),
            Metric::CpuKeepAlive => p.keepalive.and_then(|c| c.cpu.director_pct),
            Metric::CpuUdp => p.udp.as_ref().and_then(|u| u.cpu?.director_pct),
            Metric::KernConn => p.conn.map(|c| c.cpu.machine_kernel_pct),
            Metric::KernKeepAlive => p.keepalive.map(|c| c.cpu.machine_kernel_pct),
            Metric::BusyKeepAlive => p.keepalive.map(|c| c.cpu.machine_busy_pct),
        }
    }

    /// Whether the report has a result (of any outcome) for a path of that family.
    fn has_family(&self, ipv6: bool) -> bool {
        self.paths.iter().any(|p| p.kind.is_ipv6() == ipv6)
    }

    /// The table, as Markdown (paths as columns, then the ratios; a family's columns only if
    /// the report has a path of it).
    pub fn table(&self) -> String {
        let (v4, v6) = (self.has_family(false), self.has_family(true));
        let kinds: Vec<PathKind> = PathKind::ALL
            .into_iter()
            .filter(|k| if k.is_ipv6() { v6 } else { v4 })
            .collect();
        let ratios: Vec<_> = RATIOS
            .iter()
            .filter(|r| if r.1.is_ipv6() { v6 } else { v4 })
            .collect();
        let mut out = String::from("| metric |");
        for k in &kinds {
            let _ = write!(out, " {} |", k.title());
        }
        for (title, ..) in &ratios {
            let _ = write!(out, " {title} |");
        }
        out.push_str("\n|---|");
        out.push_str(&"---:|".repeat(kinds.len() + ratios.len()));
        out.push('\n');
        for m in Metric::ALL {
            let _ = write!(out, "| {} |", m.title());
            for &k in &kinds {
                let cell = match self.metric(k, m) {
                    Some(v) => {
                        let mut s = m.format(v);
                        if m == Metric::Udp
                            && self
                                .path(k)
                                .and_then(|p| p.udp.as_ref())
                                .is_some_and(UdpResult::sender_limited)
                        {
                            s.insert_str(0, "≥ ");
                        }
                        s
                    }
                    None => "-".into(),
                };
                let _ = write!(out, " {cell} |");
            }
            for &&(_, a, b) in &ratios {
                let cell = match (self.metric(a, m), self.metric(b, m)) {
                    (Some(x), Some(y)) if y > 0.0 => format!("{:.2}", x / y),
                    _ => "-".into(),
                };
                let _ = write!(out, " {cell} |");
            }
            out.push('\n');
        }
        out
    }

    /// Notes under the table: outcomes other than measured, errors, lvsd counters, idle CPU.
    pub fn notes(&self) -> String {
        let mut out = String::new();
        for p in &self.paths {
            match &p.outcome {
                Outcome::Measured => {}
                Outcome::Skipped(why) => {
                    let _ = writeln!(out, "- {}: skipped: {why}", p.kind.title());
                }
                Outcome::Failed(why) => {
                    let _ = writeln!(out, "- {}: failed: {why}", p.kind.title());
                }
            }
            let errors = p.conn.map_or(0, |c| c.load.errors)
                + p.keepalive.map_or(0, |c| c.load.errors)
                + p.latency.map_or(0, |l| l.errors);
            if errors > 0 {
                let _ = writeln!(
                    out,
                    "- {}: {errors} failed requests (new conn {}, keep-alive {}, latency {})",
                    p.kind.title(),
                    p.conn.map_or(0, |c| c.load.errors),
                    p.keepalive.map_or(0, |c| c.load.errors),
                    p.latency.map_or(0, |l| l.errors),
                );
            }
            if let Some(udp) = &p.udp {
                let sink_drops: u64 = udp.trials.iter().map(|t| t.sink_drops).sum();
                if sink_drops > 0 {
                    let _ = writeln!(
                        out,
                        "- {}: the sinks' own sockets dropped {sink_drops} datagrams over \
                         the UDP search (counted as loss)",
                        p.kind.title()
                    );
                }
                if udp.best.is_none() && !udp.trials.is_empty() {
                    let _ = writeln!(
                        out,
                        "- {}: UDP lost ≥ 0.1 % at every rate tried",
                        p.kind.title()
                    );
                }
            }
            if let Some(stats) = &p.lvsd_stats {
                for line in stats.lines() {
                    let _ = writeln!(out, "- {} counters: {line}", p.kind.title());
                }
            }
        }
        if self
            .paths
            .iter()
            .any(|p| p.kind.is_ipv6() && p.udp.is_some())
        {
            let _ = writeln!(
                out,
                "- IPv6 UDP: the same {}-byte payload, so {}-byte frames (the IPv6 header is \
                 20 bytes longer; no IPv6 UDP frame is under 66 bytes)",
                super::load::UDP_PAYLOAD,
                super::load::UDP_FRAME6
            );
        }
        if let Some(idle) = self.idle {
            let _ = writeln!(
                out,
                "- lvsd idle CPU: {:.2} % of one core over {:.0} s with no traffic \
                 (resolution {:.2} %)",
                idle.pct, idle.secs, idle.resolution_pct
            );
        }
        out
    }

    /// The same as JSON.
    pub fn json(&self) -> Value {
        let cpu = |c: &CpuUse| {
            json!({
                "director_pct": c.director_pct,
                "machine_kernel_pct": c.machine_kernel_pct,
                "machine_busy_pct": c.machine_busy_pct,
            })
        };
        let tcp = |m: &TcpMeasure| {
            json!({
                "rate": m.load.rate(),
                "ok": m.load.ok,
                "errors": m.load.errors,
                "secs": m.load.secs,
                "cpu": cpu(&m.cpu),
            })
        };
        let trial = |t: &UdpTrial| {
            json!({
                "offered_pps": t.offered,
                "sent_pps": t.sent_rate,
                "sent": t.sent,
                "send_errors": t.send_errors,
                "received": t.received,
                "sink_drops": t.sink_drops,
                "loss": t.loss(),
                "sender_limited": t.sender_limited(),
            })
        };
        let paths: Vec<Value> = self
            .paths
            .iter()
            .map(|p| {
                let (outcome, reason) = match &p.outcome {
                    Outcome::Measured => ("measured", None),
                    Outcome::Skipped(r) => ("skipped", Some(r.clone())),
                    Outcome::Failed(r) => ("failed", Some(r.clone())),
                };
                json!({
                    "path": p.kind.word(),
                    "outcome": outcome,
                    "reason": reason,
                    "new_conn": p.conn.as_ref().map(tcp),
                    "keepalive": p.keepalive.as_ref().map(tcp),
                    "latency": p.latency.map(|l| json!({
                        "rate": l.rate,
                        "ok": l.ok,
                        "errors": l.errors,
                        "p50_us": l.p50_us,
                        "p99_us": l.p99_us,
                        "max_us": l.max_us,
                    })),
                    "udp": p.udp.as_ref().map(|u| json!({
                        "no_loss_pps": u.rate(),
                        "sender_limited": u.sender_limited(),
                        "cpu": u.cpu.as_ref().map(cpu),
                        "trials": u.trials.iter().map(trial).collect::<Vec<_>>(),
                    })),
                    "lvsd_stats": p.lvsd_stats,
                })
            })
            .collect();
        let ratio =
            |m: Metric, a: PathKind, b: PathKind| match (self.metric(a, m), self.metric(b, m)) {
                (Some(x), Some(y)) if y > 0.0 => Some(x / y),
                _ => None,
            };
        let mut ratios = serde_json::Map::new();
        for m in [
            Metric::Conn,
            Metric::KeepAlive,
            Metric::Udp,
            Metric::P50,
            Metric::P99,
        ] {
            ratios.insert(
                m.key().into(),
                json!({
                    "lvsd_nat/nftables": ratio(m, PathKind::LvsdNat, PathKind::Nftables),
                    "lvsd_dr/nftables": ratio(m, PathKind::LvsdDr, PathKind::Nftables),
                    "lvsd_nat/haproxy": ratio(m, PathKind::LvsdNat, PathKind::Haproxy),
                    "lvsd_dr/haproxy": ratio(m, PathKind::LvsdDr, PathKind::Haproxy),
                    "lvsd_nat/kernel": ratio(m, PathKind::LvsdNat, PathKind::Kernel),
                    "lvsd_nat6/kernel6": ratio(m, PathKind::LvsdNat6, PathKind::Kernel6),
                    "lvsd_dr6/kernel6": ratio(m, PathKind::LvsdDr6, PathKind::Kernel6),
                    "lvsd_nat6/nftables6": ratio(m, PathKind::LvsdNat6, PathKind::Nftables6),
                    "lvsd_dr6/nftables6": ratio(m, PathKind::LvsdDr6, PathKind::Nftables6),
                    "lvsd_nat6/lvsd_nat": ratio(m, PathKind::LvsdNat6, PathKind::LvsdNat),
                    "lvsd_dr6/lvsd_dr": ratio(m, PathKind::LvsdDr6, PathKind::LvsdDr),
                }),
            );
        }
        json!({
            "real_servers": self.real_servers,
            "n_real_servers": self.n_real_servers,
            "phase_secs": self.phase_secs,
            "concurrency": self.concurrency,
            "latency_rate": self.latency_rate,
            "udp_frame_bytes": 64,
            "udp_frame_bytes_ipv6": super::load::UDP_FRAME6,
            "machine": self.machine,
            "lvsd": self.lvsd,
            "paths": paths,
            "ratios": ratios,
            "idle_cpu": self.idle.map(|i| json!({
                "secs": i.secs,
                "lvsd_pct": i.pct,
                "resolution_pct": i.resolution_pct,
            })),
        })
    }
}

/// The table's ratio columns: (title, numerator, denominator); an IPv6 path over an IPv6
/// baseline.
const RATIOS: [(&str, PathKind, PathKind); 8] = [
    ("NAT/nft", PathKind::LvsdNat, PathKind::Nftables),
    ("DR/nft", PathKind::LvsdDr, PathKind::Nftables),
    ("NAT/HAProxy", PathKind::LvsdNat, PathKind::Haproxy),
    ("DR/HAProxy", PathKind::LvsdDr, PathKind::Haproxy),
    ("NAT66/kernel6", PathKind::LvsdNat6, PathKind::Kernel6),
    ("DR6/kernel6", PathKind::LvsdDr6, PathKind::Kernel6),
    ("NAT66/nft6", PathKind::LvsdNat6, PathKind::Nftables6),
    ("DR6/nft6", PathKind::LvsdDr6, PathKind::Nftables6),
];

/// A row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Metric {
    Conn,
    KeepAlive,
    Udp,
    P50,
    P99,
    CpuConn,
    CpuKeepAlive,
    CpuUdp,
    KernConn,
    KernKeepAlive,
    BusyKeepAlive,
}

impl Metric {
    const ALL: [Metric; 11] = [
        Metric::Conn,
        Metric::KeepAlive,
        Metric::Udp,
        Metric::P50,
        Metric::P99,
        Metric::CpuConn,
        Metric::CpuKeepAlive,
        Metric::CpuUdp,
        Metric::KernConn,
        Metric::KernKeepAlive,
        Metric::BusyKeepAlive,
    ];

    fn title(self) -> &'static str {
        match self {
            Metric::Conn => "new TCP conn/s",
            Metric::KeepAlive => "keep-alive req/s",
            Metric::Udp => "UDP 64 B pps, < 0.1 % loss",
            Metric::P50 => "latency p50 (ms)",
            Metric::P99 => "latency p99 (ms)",
            Metric::CpuConn => "director process CPU %, new conn",
            Metric::CpuKeepAlive => "director process CPU %, keep-alive",
            Metric::CpuUdp => "director process CPU %, UDP",
            Metric::KernConn => "machine sys+irq+softirq %, new conn",
            Metric::KernKeepAlive => "machine sys+irq+softirq %, keep-alive",
            Metric::BusyKeepAlive => "machine busy %, keep-alive",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Metric::Conn => "new_conn",
            Metric::KeepAlive => "keepalive",
            Metric::Udp => "udp",
            Metric::P50 => "latency_p50",
            Metric::P99 => "latency_p99",
            Metric::CpuConn => "cpu_conn",
            Metric::CpuKeepAlive => "cpu_keepalive",
            Metric::CpuUdp => "cpu_udp",
            Metric::KernConn => "kernel_conn",
            Metric::KernKeepAlive => "kernel_keepalive",
            Metric::BusyKeepAlive => "busy_keepalive",
        }
    }

    fn format(self, v: f64) -> String {
        match self {
            Metric::Conn | Metric::KeepAlive | Metric::Udp => thousands(v),
            Metric::P50 | Metric::P99 => format!("{v:.2}"),
            _ => format!("{v:.0}"),
        }
    }
}

/// `12345.6` → `12,346`.
fn thousands(v: f64) -> String {
    let n = v.round().max(0.0) as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(thousands(0.4), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(12_345.6), "12,346");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
    }

    #[test]
    fn table_marks_missing_numbers() {
        let mut nat = PathResult::new(PathKind::LvsdNat, Outcome::Measured);
        let mut nft = PathResult::new(PathKind::Nftables, Outcome::Measured);
        let cpu = CpuUse::default();
        let load = |ok| Throughput {
            ok,
            errors: 0,
            secs: 1.0,
        };
        nat.conn = Some(TcpMeasure {
            load: load(3000),
            cpu,
        });
        nft.conn = Some(TcpMeasure {
            load: load(2000),
            cpu,
        });
        let report = Report {
            real_servers: "nginx".into(),
            n_real_servers: 3,
            phase_secs: 1.0,
            concurrency: 32,
            latency_rate: 1000,
            machine: String::new(),
            lvsd: String::new(),
            paths: vec![
                nft,
                nat,
                PathResult::new(PathKind::Haproxy, Outcome::Skipped("not installed".into())),
            ],
            idle: None,
        };
        let table = report.table();
        let conn = table
            .lines()
            .find(|l| l.starts_with("| new TCP conn/s"))
            .unwrap_or_default();
        assert_eq!(
            conn,
            "| new TCP conn/s | - | 2,000 | - | 3,000 | - | 1.50 | - | - | - |"
        );
        assert!(report.notes().contains("HAProxy: skipped: not installed"));
        let json = report.json();
        assert_eq!(json["ratios"]["new_conn"]["lvsd_nat/nftables"], json!(1.5));
        assert_eq!(json["paths"][2]["outcome"], json!("skipped"));
        // No IPv6 path in the report: no IPv6 column.
        assert!(!table.contains("kernel6") && !table.contains("NAT66"));
    }

    #[test]
    fn ipv6_columns_and_ratios() {
        let cpu = CpuUse::default();
        let with_conn = |kind, ok| {
            let mut p = PathResult::new(kind, Outcome::Measured);
            p.conn = Some(TcpMeasure {
                load: Throughput {
                    ok,
                    errors: 0,
                    secs: 1.0,
                },
                cpu,
            });
            p
        };
        let report = Report {
            real_servers: "nginx".into(),
            n_real_servers: 3,
            phase_secs: 1.0,
            concurrency: 32,
            latency_rate: 1000,
            machine: String::new(),
            lvsd: String::new(),
            paths: vec![
                with_conn(PathKind::Kernel6, 4000),
                with_conn(PathKind::LvsdNat6, 3000),
                with_conn(PathKind::LvsdDr6, 5000),
            ],
            idle: None,
        };
        let table = report.table();
        let header = table.lines().next().unwrap_or_default();
        assert_eq!(
            header,
            "| metric | kernel route v6 | nft DNAT v6 | lvsd NAT66 | lvsd DR v6 | \
             NAT66/kernel6 | DR6/kernel6 | NAT66/nft6 | DR6/nft6 |"
        );
        let conn = table
            .lines()
            .find(|l| l.starts_with("| new TCP conn/s"))
            .unwrap_or_default();
        assert_eq!(
            conn,
            "| new TCP conn/s | 4,000 | - | 3,000 | 5,000 | 0.75 | 1.25 | - | - |"
        );
        let json = report.json();
        assert_eq!(json["ratios"]["new_conn"]["lvsd_dr6/kernel6"], json!(1.25));
        assert_eq!(json["ratios"]["new_conn"]["lvsd_nat/nftables"], Value::Null);
        assert_eq!(json["paths"][1]["path"], json!("lvsd-nat6"));
    }

    #[test]
    fn path_words_round_trip() {
        for k in PathKind::ALL {
            assert_eq!(PathKind::parse(k.word()), Some(k));
            assert_eq!(k.is_ipv6(), k.word().ends_with('6'));
        }
        assert_eq!(
            PathKind::IPV4.len() + PathKind::IPV6.len(),
            PathKind::ALL.len()
        );
    }
}
