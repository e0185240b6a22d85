//! Helpers shared by the lab integration tests (each test file compiles its own copy, so
//! not every file uses every helper).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use lvs_lab::client;
use lvs_lab::{Host, Lab, LabSpec, LvsdProcess, RealServerSpec, vip};

/// The lab's node program (backends).
pub const NODE: &str = env!("CARGO_BIN_EXE_lvs-lab-node");

static SERIAL: Mutex<()> = Mutex::new(());

/// The tests of one file run one at a time: they are CPU-bound on a small machine and would
/// otherwise only slow each other down.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The forwarding method a lab is wired for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Nat,
    Dr,
}

impl Mode {
    /// The config word (`nat`, `dr`).
    pub fn word(self) -> &'static str {
        match self {
            Mode::Nat => "nat",
            Mode::Dr => "dr",
        }
    }
}

/// A lab with `n` real servers wired for `mode`, backends running, lvsd not yet started.
pub fn lab(mode: Mode, n: usize) -> Lab {
    let mut spec = LabSpec::new(NODE);
    for _ in 0..n {
        spec = spec.real_server(match mode {
            Mode::Nat => RealServerSpec::nat(),
            Mode::Dr => RealServerSpec::dr(vec![vip(0)]),
        });
    }
    let lab = Lab::build(spec).expect("building the lab");
    lab.start_backends().expect("starting backends");
    lab
}

/// Stops lvsd, checks it exited 0 and that its final counters add up
/// (received = forwarded + dropped + passed); returns its stdout.
pub fn stop_and_check(lvsd: &LvsdProcess) -> String {
    let status = lvsd.stop().expect("stopping lvsd");
    let out = lvsd.stdout();
    assert!(
        status.success(),
        "lvsd exited with {status}\n{}",
        lvsd.logs()
    );
    let line = out
        .lines()
        .rfind(|l| l.starts_with("lvsd stats:"))
        .unwrap_or_else(|| panic!("no stats line in lvsd's output:\n{}", lvsd.logs()));
    let field = |name: &str| -> u64 {
        counter_opt(line, name).unwrap_or_else(|| panic!("no {name}= in {line}"))
    };
    let (rx, fwd, drop, pass) = (
        field("received"),
        field("forwarded"),
        field("dropped"),
        field("passed"),
    );
    assert_eq!(rx, fwd + drop + pass, "accounting identity broken: {line}");
    assert!(fwd > 0, "nothing forwarded: {line}");
    out
}

/// How many times each name occurs.
pub fn tally(names: impl IntoIterator<Item = String>) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for n in names {
        *m.entry(n).or_insert(0) += 1;
    }
    m
}

/// `count` sequential requests from `host`, each on a new connection (`Connection: close`);
/// the names of the backends that answered, in order.
pub fn sequential_names(host: &Host, to: SocketAddr, count: usize) -> Vec<String> {
    host.run(move || {
        (0..count)
            .map(|i| {
                let r = client::http_request(to, "GET", "/", Duration::from_secs(5))
                    .unwrap_or_else(|e| panic!("request {i} to {to}: {e}"));
                assert_eq!(r.status, 200);
                r.backend().expect("X-Backend header").to_string()
            })
            .collect()
    })
}

/// A counter `name=N` from lvsd's output (its `lvsd stats:` line), if present.
pub fn counter_opt(stats: &str, name: &str) -> Option<u64> {
    stats
        .split_whitespace()
        .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

/// A counter `name=N` from lvsd's output (0 if absent: counters of drop reasons are only
/// printed once they are non-zero).
pub fn counter(stats: &str, name: &str) -> u64 {
    counter_opt(stats, name).unwrap_or(0)
}

/// Runs `ip ARGS` in `host`; its stdout (the command must succeed).
pub fn ip(host: &Host, args: &[&str]) -> String {
    let out = host.command("ip").args(args).output().expect("running ip");
    assert!(out.status.success(), "ip {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
