//! Health checks end to end: a real lvsd in a namespace lab checks real backends and the
//! data path follows, with real client traffic counted by the backend that answered.
//!
//! What they pin down (issue 6): a stopped backend leaves scheduling within
//! `interval × fall` (+ one interval) and gets no new connection afterwards, and comes back
//! within `interval × rise`; with `inhibit_on_failure` its open connections keep working
//! while its weight shows 0; the sorry server answers when no real server is up; quorum is
//! lost and regained with hysteresis; an exec check with `dynamic_weight` sets the weight;
//! passive detection takes a refusing NAT server down and brings it back after the back-off;
//! hostile targets (0-byte, 100 MiB, garbage, 1 byte/s, RST, plain instead of TLS) fail
//! within their timeout while lvsd's memory stays bounded and forwarding goes on. Every
//! check's answers cross the nftables guard (NAT real servers, replies to the DIP), so the
//! first test also proves the guard lets them through. Every test ends with lvsd's counters
//! adding up (`received = forwarded + dropped + passed`).
//!
//! The tests take a process-wide lock and run one at a time (small machine, CPU-bound labs).

// Helpers outside #[test] fns are not covered by clippy's allow-unwrap-in-tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use lvs_lab::client::{self, HttpClient};
use lvs_lab::node::{HTTP_PORT, Hostile};
use lvs_lab::{Lab, LvsdProcess, Process, require_root, vip, wait_for};
use lvs_proto::{Event, EventKind, HealthState, RealServerInfo, ServiceInfo};

mod common;
use common::*;

/// Slack for scheduling delays of a debug build on a busy 2-core machine, on top of the
/// bound each test asserts.
const SLACK: Duration = Duration::from_millis(1500);

fn to() -> SocketAddr {
    SocketAddr::from((vip(0), HTTP_PORT))
}

/// `[[virtual_server]]` on VIP:80 (NAT, rr) with `extra` service keys and tables, then the
/// real servers `(k, port, weight, own table text)`.
fn config(lab: &Lab, extra: &str, servers: &[(usize, u16, u32, &str)]) -> String {
    let mut s = format!(
        "[[virtual_server]]\naddress = \"{}:{HTTP_PORT}\"\nscheduler = \"rr\"\n\
         forwarding = \"nat\"\n{extra}\n",
        vip(0)
    );
    for (k, port, weight, own) in servers {
        s += &format!(
            "\n[[virtual_server.real_server]]\naddress = \"{}:{port}\"\nweight = {weight}\n{own}\n",
            lab.real_server(*k).addr()
        );
    }
    s
}

/// `lvsctl ARGS`, which must succeed: its stdout.
fn lvsctl(lab: &Lab, lvsd: &LvsdProcess, args: &[&str]) -> String {
    let exe = lvs_lab::lvsctl_binary().expect("building lvsctl");
    let out = lab
        .director(1)
        .command(exe)
        .arg("--socket")
        .arg(lvsd.control_socket())
        .args(args)
        .output()
        .expect("running lvsctl");
    assert!(
        out.status.success(),
        "lvsctl {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

fn services(lab: &Lab, lvsd: &LvsdProcess) -> Vec<ServiceInfo> {
    let out = lvsctl(lab, lvsd, &["--json", "list"]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("lvsctl --json list: {e}\n{out}"))
}

/// Real server `rip:port` of the first service.
fn server(lab: &Lab, lvsd: &LvsdProcess, k: usize, port: u16) -> RealServerInfo {
    let addr = lab.real_server(k).addr();
    services(lab, lvsd)[0]
        .real_servers
        .iter()
        .find(|r| r.addr == addr && r.port == port)
        .cloned()
        .unwrap_or_else(|| panic!("no real server {addr}:{port}"))
}

fn events(lab: &Lab, lvsd: &LvsdProcess) -> Vec<Event> {
    let out = lvsctl(lab, lvsd, &["--json", "events"]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("lvsctl --json events: {e}\n{out}"))
}

/// Waits (≤ `limit`) until `probe` holds; how long it took.
fn within(
    limit: Duration,
    what: &str,
    lvsd: &LvsdProcess,
    mut probe: impl FnMut() -> bool,
) -> Duration {
    let start = Instant::now();
    wait_for(limit, || probe().then_some(()))
        .unwrap_or_else(|| panic!("{what}: not within {limit:?}\n{}", lvsd.logs()));
    start.elapsed()
}

/// `count` requests on new connections; the names that answered (failures skipped).
fn answers(lab: &Lab, count: usize) -> Vec<String> {
    let to = to();
    lab.client().run(move || {
        (0..count)
            .filter_map(|_| {
                client::http_request(to, "GET", "/", Duration::from_secs(2))
                    .ok()
                    .and_then(|r| r.backend().map(str::to_owned))
            })
            .collect()
    })
}

/// Spawns the node program with `args` in real server `k` and waits (≤ 10 s) until
/// `port` accepts there.
fn spawn_node(lab: &Lab, k: usize, name: &str, args: &[&str], port: u16) -> Process {
    let host = lab.real_server(k);
    let mut cmd = host.command(NODE);
    cmd.arg("lab-node").args(args);
    cmd.stdout(std::process::Stdio::null());
    let p = host.spawn_named(name, cmd).expect("spawning a node");
    let addr = SocketAddr::from((host.addr(), port));
    let up = host.run(move || {
        wait_for(Duration::from_secs(10), || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200))
                .ok()
                .map(|_| ())
        })
    });
    assert!(up.is_some(), "{name} did not listen on {addr}");
    p
}

fn health_events(evs: &[Event]) -> Vec<(String, HealthState, String, String)> {
    evs.iter()
        .filter_map(|e| match &e.kind {
            EventKind::HealthChanged {
                real_server,
                state,
                check,
                reason,
                ..
            } => Some((
                real_server.to_string(),
                *state,
                check.clone(),
                reason.clone(),
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn a_failing_http_check_takes_a_server_out_and_back_in() {
    require_root!();
    let _serial = serial();
    let lab = lab(Mode::Nat, 3);
    let (interval, rise, fall) = (Duration::from_millis(200), 2u32, 2u32);
    let check = format!(
        "[virtual_server.health_check]\nkind = \"http\"\ninterval = \"200ms\"\n\
         timeout = \"150ms\"\nrise = {rise}\nfall = {fall}\npath = \"/\"\n"
    );
    let cfg = config(
        &lab,
        &check,
        &[(1, 80, 1, ""), (2, 80, 1, ""), (3, 80, 1, "")],
    );
    let lvsd = lab.start_lvsd(1, &cfg).expect("starting lvsd");
    // The checks' answers (RIP:80 -> DIP) pass the nftables guard: everyone stays up and
    // the last result is a success.
    within(Duration::from_secs(5), "first checks", &lvsd, || {
        services(&lab, &lvsd)[0].real_servers.iter().all(|r| {
            r.health
                .as_ref()
                .is_some_and(|h| h.last.as_ref().is_some_and(|l| l.ok))
        })
    });
    let rs2 = lab.real_server(2).addr();
    assert_eq!(tally(answers(&lab, 30)).len(), 3, "all three answer");

    // Stop rs2: out of the list within interval × fall + one interval.
    let stopped = Instant::now();
    lab.stop_backend(2).unwrap();
    let took = within(interval * (fall + 1) + SLACK, "rs2 out", &lvsd, || {
        !server(&lab, &lvsd, 2, 80).in_service
    });
    eprintln!(
        "rs2 out of scheduling after {took:?} (bound {:?})",
        interval * (fall + 1)
    );
    let _ = stopped;
    let names = answers(&lab, 30);
    assert_eq!(names.len(), 30, "every request answered: {names:?}");
    assert!(!names.iter().any(|n| n == "rs2"), "{names:?}");
    // ipvsadm's listing shows only the servers in the list; `health` shows it DOWN.
    let listing = lvsctl(&lab, &lvsd, &["-Ln"]);
    assert!(!listing.contains(&format!("{rs2}:80")), "{listing}");
    let health = lvsctl(&lab, &lvsd, &["health"]);
    let line = health
        .lines()
        .find(|l| l.contains(&format!("{rs2}:80")))
        .unwrap_or_else(|| panic!("{health}"));
    assert!(line.contains("DOWN") && line.contains("http GET"), "{line}");
    let evs = health_events(&events(&lab, &lvsd));
    assert!(
        evs.iter()
            .any(|(rs, s, check, reason)| rs == &format!("{rs2}:80")
                && *s == HealthState::Down
                && check.contains("http")
                && !reason.is_empty()),
        "{evs:?}"
    );

    // Back: in the list within interval × rise (+ slack), and it gets connections again.
    lab.start_backend(2).unwrap();
    let took = within(interval * (rise + 1) + SLACK, "rs2 back", &lvsd, || {
        server(&lab, &lvsd, 2, 80).in_service
    });
    eprintln!("rs2 back after {took:?} (bound {:?})", interval * rise);
    let names = tally(answers(&lab, 30));
    assert_eq!(names.get("rs2"), Some(&10), "{names:?}");
    stop_and_check(&lvsd);
}

#[test]
fn inhibit_on_failure_keeps_open_connections_and_shows_weight_zero() {
    require_root!();
    let _serial = serial();
    let lab = lab(Mode::Nat, 3);
    let flag = lab.work_dir().join("rs2-up");
    std::fs::write(&flag, "").unwrap();
    // rs2's own check: an exec check that passes while the flag file exists.
    let own = format!(
        "[virtual_server.real_server.health_check]\nkind = \"exec\"\ninterval = \"300ms\"\n\
         timeout = \"250ms\"\nrise = 1\nfall = 1\ninhibit_on_failure = true\n\
         command = [\"/bin/sh\", \"-c\", \"test -e {}\"]\n",
        flag.display()
    );
    let cfg = config(
        &lab,
        "",
        &[(1, 80, 1, ""), (2, 80, 2, &own), (3, 80, 1, "")],
    );
    let lvsd = lab.start_lvsd(1, &cfg).expect("starting lvsd");
    within(Duration::from_secs(5), "first check", &lvsd, || {
        server(&lab, &lvsd, 2, 80)
            .health
            .is_some_and(|h| h.last.is_some())
    });
    // Keep-alive connections until one sits on rs2.
    let to = to();
    let mut held: Vec<HttpClient> = Vec::new();
    let mut on_rs2 = None;
    for _ in 0..8 {
        let mut c = lab.client().run(move || HttpClient::connect(to)).unwrap();
        let (name, _) = c.get_named("/").unwrap();
        if name == "rs2" {
            on_rs2 = Some(c);
            break;
        }
        held.push(c);
    }
    let mut on_rs2 = on_rs2.expect("a connection on rs2");

    std::fs::remove_file(&flag).unwrap();
    within(Duration::from_secs(3), "rs2 inhibited", &lvsd, || {
        let r = server(&lab, &lvsd, 2, 80);
        r.in_service && r.weight == 0
    });
    // Its open connection keeps working; new ones go elsewhere.
    for _ in 0..5 {
        assert_eq!(on_rs2.get_named("/").unwrap().0, "rs2");
    }
    let names = answers(&lab, 20);
    assert!(!names.iter().any(|n| n == "rs2"), "{names:?}");
    let listing = lvsctl(&lab, &lvsd, &["-Ln"]);
    let rs2 = lab.real_server(2).addr();
    let row = listing
        .lines()
        .find(|l| l.contains(&format!("{rs2}:80")))
        .unwrap_or_else(|| panic!("{listing}"));
    assert_eq!(row.split_whitespace().nth(3), Some("0"), "{row}");

    // Up again: the configured weight (2) comes back.
    std::fs::write(&flag, "").unwrap();
    within(Duration::from_secs(3), "rs2 weight back", &lvsd, || {
        server(&lab, &lvsd, 2, 80).weight == 2
    });
    assert_eq!(on_rs2.get_named("/").unwrap().0, "rs2");
    drop(held);
    drop(on_rs2);
    stop_and_check(&lvsd);
}

#[test]
fn reloads_keep_health_state_and_api_added_servers_are_checked() {
    require_root!();
    let _serial = serial();
    let lab = lab(Mode::Nat, 3);
    let check = "[virtual_server.health_check]\nkind = \"tcp\"\ninterval = \"200ms\"\n\
                 timeout = \"150ms\"\nrise = 1\nfall = 1\n";
    let cfg = config(&lab, check, &[(1, 80, 1, ""), (2, 80, 1, "")]);
    let lvsd = lab.start_lvsd(1, &cfg).expect("starting lvsd");
    lab.stop_backend(2).unwrap();
    within(Duration::from_secs(3), "rs2 down", &lvsd, || {
        !server(&lab, &lvsd, 2, 80).in_service
    });
    // SIGHUP with the same file: rs2 stays down and out (the runner keeps its state).
    lvsd.reload().unwrap();
    within(Duration::from_secs(3), "reloaded", &lvsd, || {
        events(&lab, &lvsd)
            .iter()
            .any(|e| matches!(e.kind, EventKind::Reloaded { ok: true, .. }))
    });
    std::thread::sleep(Duration::from_millis(800));
    assert!(!server(&lab, &lvsd, 2, 80).in_service);
    let names = answers(&lab, 10);
    assert!(!names.iter().any(|n| n == "rs2"), "{names:?}");
    // A server added through the API gets the service's check.
    let svc = format!("{}:{HTTP_PORT}", vip(0));
    let rs3 = format!("{}:{HTTP_PORT}", lab.real_server(3).addr());
    lvsctl(&lab, &lvsd, &["add-server", "-t", &svc, "-r", &rs3]);
    within(Duration::from_secs(3), "rs3 checked", &lvsd, || {
        server(&lab, &lvsd, 3, 80)
            .health
            .is_some_and(|h| h.last.as_ref().is_some_and(|l| l.ok))
    });
    lab.stop_backend(3).unwrap();
    within(Duration::from_secs(3), "rs3 down", &lvsd, || {
        !server(&lab, &lvsd, 3, 80).in_service
    });
    // rs2 back: up again after the reload too.
    lab.start_backend(2).unwrap();
    within(Duration::from_secs(3), "rs2 up", &lvsd, || {
        server(&lab, &lvsd, 2, 80).in_service
    });
    stop_and_check(&lvsd);
}

/// A second backend on rs3 answering `sorry` on port 8080.
fn sorry_backend(lab: &Lab) -> Process {
    spawn_node(
        lab,
        3,
        "sorry backend",
        &[
            "backend",
            "--name",
            "sorry",
            "--http-port",
            "8080",
            "--echo-port",
            "9001",
            "--udp-name-port",
            "8081",
        ],
        8080,
    )
}

#[test]
fn the_sorry_server_answers_while_every_real_server_is_down() {
    require_root!();
    let _serial = serial();
    let lab = lab(Mode::Nat, 3);
    let _sorry = sorry_backend(&lab);
    let extra = format!(
        "sorry_server = \"{}:8080\"\n[virtual_server.health_check]\nkind = \"tcp\"\n\
         interval = \"200ms\"\ntimeout = \"150ms\"\nrise = 1\nfall = 1\n",
        lab.real_server(3).addr()
    );
    let cfg = config(&lab, &extra, &[(1, 80, 1, ""), (2, 80, 1, "")]);
    let lvsd = lab.start_lvsd(1, &cfg).expect("starting lvsd");
    let names = tally(answers(&lab, 10));
    assert!(!names.contains_key("sorry"), "{names:?}");

    lab.stop_backend(1).unwrap();
    lab.stop_backend(2).unwrap();
    within(Duration::from_secs(3), "sorry server in", &lvsd, || {
        services(&lab, &lvsd)[0]
            .real_servers
            .iter()
            .any(|r| r.sorry && r.in_service)
    });
    let names = answers(&lab, 10);
    assert_eq!(tally(names.clone()).get("sorry"), Some(&10), "{names:?}");
    let evs = events(&lab, &lvsd);
    assert!(
        evs.iter()
            .any(|e| matches!(e.kind, EventKind::QuorumChanged { up: false, .. }))
    );
    assert!(
        evs.iter()
            .any(|e| matches!(e.kind, EventKind::SorryServer { active: true, .. }))
    );

    lab.start_backend(1).unwrap();
    within(Duration::from_secs(3), "sorry server out", &lvsd, || {
        services(&lab, &lvsd)[0]
            .real_servers
            .iter()
            .any(|r| r.sorry && !r.in_service)
    });
    let names = tally(answers(&lab, 10));
    assert_eq!(names.get("rs1"), Some(&10), "{names:?}");
    stop_and_check(&lvsd);
}

#[test]
fn quorum_is_lost_and_regained_with_hysteresis() {
    require_root!();
    let _serial = serial();
    let lab = lab(Mode::Nat, 3);
    let _sorry = sorry_backend(&lab);
    // Weights 2 + 1 + 1 = 4; quorum 3, hysteresis 1: lost below 2, regained at 4.
    let extra = format!(
        "sorry_server = \"{}:8080\"\nquorum = 3\nhysteresis = 1\n\
         [virtual_server.health_check]\nkind = \"tcp\"\ninterval = \"200ms\"\n\
         timeout = \"150ms\"\nrise = 1\nfall = 1\n",
        lab.real_server(3).addr()
    );
    let cfg = config(
        &lab,
        &extra,
        &[(1, 80, 2, ""), (2, 80, 1, ""), (3, 80, 1, "")],
    );
    let lvsd = lab.start_lvsd(1, &cfg).expect("starting lvsd");
    let quorum = |lab: &Lab| {
        services(lab, &lvsd)[0]
            .quorum
            .clone()
            .expect("quorum state")
    };
    assert!(quorum(&lab).up);

    lab.stop_backend(2).unwrap(); // live 3: kept (not below 2)
    within(Duration::from_secs(3), "rs2 down", &lvsd, || {
        !server(&lab, &lvsd, 2, 80).in_service
    });
    assert!(quorum(&lab).up, "{:?}", quorum(&lab));
    lab.stop_backend(1).unwrap(); // live 1: lost
    within(Duration::from_secs(3), "quorum lost", &lvsd, || {
        !quorum(&lab).up
    });
    let names = tally(answers(&lab, 10));
    assert_eq!(
        names.get("sorry"),
        Some(&10),
        "only the sorry server: {names:?}"
    );

    lab.start_backend(1).unwrap(); // live 3 < 4: still lost (hysteresis)
    within(Duration::from_secs(3), "rs1 up", &lvsd, || {
        server(&lab, &lvsd, 1, 80)
            .health
            .is_some_and(|h| h.state == HealthState::Up)
    });
    std::thread::sleep(Duration::from_millis(600));
    let q = quorum(&lab);
    assert!(!q.up && q.live_weight == 3, "{q:?}");
    assert_eq!(tally(answers(&lab, 6)).get("sorry"), Some(&6));

    lab.start_backend(2).unwrap(); // live 4: regained
    within(Duration::from_secs(3), "quorum regained", &lvsd, || {
        quorum(&lab).up
    });
    let names = tally(answers(&lab, 12));
    assert!(!names.contains_key("sorry"), "{names:?}");
    let flips: Vec<(bool, u64)> = events(&lab, &lvsd)
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::QuorumChanged {
                up, live_weight, ..
            } => Some((up, live_weight)),
            _ => None,
        })
        .collect();
    assert_eq!(flips, vec![(false, 1), (true, 4)]);
    stop_and_check(&lvsd);
}

#[test]
fn an_exec_check_with_dynamic_weight_sets_the_weight() {
    require_root!();
    let _serial = serial();
    let lab = lab(Mode::Nat, 2);
    let code = lab.work_dir().join("rs2-code");
    std::fs::write(&code, "5").unwrap();
    let own = format!(
        "[virtual_server.real_server.health_check]\nkind = \"exec\"\ninterval = \"300ms\"\n\
         timeout = \"250ms\"\nrise = 1\nfall = 1\ndynamic_weight = true\n\
         command = [\"/bin/sh\", \"-c\", \"exit $(cat {})\"]\n",
        code.display()
    );
    let cfg = config(&lab, "", &[(1, 80, 1, ""), (2, 80, 1, &own)]);
    let lvsd = lab.start_lvsd(1, &cfg).expect("starting lvsd");
    // keepalived MISC_CHECK: exit 2..255 = up with weight code − 2.
    within(Duration::from_secs(5), "weight 3", &lvsd, || {
        server(&lab, &lvsd, 2, 80).weight == 3
    });
    std::fs::write(&code, "7").unwrap();
    within(Duration::from_secs(3), "weight 5", &lvsd, || {
        server(&lab, &lvsd, 2, 80).weight == 5
    });
    // rr with weights 1 and 5 still alternates; wrr is not asked for: the weight is what
    // the listing shows.
    let listing = lvsctl(&lab, &lvsd, &["-Ln"]);
    assert!(listing.contains(" 5 "), "{listing}");
    let _ = answers(&lab, 4);
    stop_and_check(&lvsd);
}

#[test]
fn passive_detection_takes_a_refusing_nat_server_down_and_back() {
    require_root!();
    let _serial = serial();
    let lab = lab(Mode::Nat, 3);
    let extra = "[virtual_server.passive]\nfailures = 2\nsyn_timeout = \"500ms\"\n\
                 backoff = \"1s\"\nmax_backoff = \"4s\"\n";
    let cfg = config(
        &lab,
        extra,
        &[(1, 80, 1, ""), (2, 80, 1, ""), (3, 80, 1, "")],
    );
    let lvsd = lab.start_lvsd(1, &cfg).expect("starting lvsd");
    lab.stop_backend(2).unwrap();
    // rs2 answers SYNs with RST: after 2 of them it is out.
    let mut sent = 0;
    within(Duration::from_secs(5), "rs2 down (passive)", &lvsd, || {
        let _ = answers(&lab, 3);
        sent += 3;
        !server(&lab, &lvsd, 2, 80).in_service
    });
    assert!(sent <= 12, "took {sent} requests");
    let names = answers(&lab, 12);
    assert_eq!(names.len(), 12, "all answered while rs2 is out: {names:?}");
    let evs = health_events(&events(&lab, &lvsd));
    assert!(
        evs.iter()
            .any(|(_, s, check, reason)| *s == HealthState::Down
                && check == "passive"
                && reason.contains("RST")),
        "{evs:?}"
    );
    // Listening again: after the back-off it is tried, the handshake completes, it is up.
    lab.start_backend(2).unwrap();
    within(Duration::from_secs(6), "rs2 back", &lvsd, || {
        answers(&lab, 3).iter().any(|n| n == "rs2")
    });
    within(Duration::from_secs(3), "passive up event", &lvsd, || {
        health_events(&events(&lab, &lvsd))
            .iter()
            .any(|(_, s, check, _)| *s == HealthState::Up && check == "passive")
    });
    stop_and_check(&lvsd);
}

#[test]
fn passive_detection_counts_syns_left_unanswered() {
    require_root!();
    let _serial = serial();
    let lab = lab(Mode::Nat, 3);
    let extra = "[virtual_server.passive]\nfailures = 2\nsyn_timeout = \"300ms\"\n\
                 backoff = \"1s\"\nmax_backoff = \"4s\"\n";
    let cfg = config(
        &lab,
        extra,
        &[(1, 80, 1, ""), (2, 80, 1, ""), (3, 80, 1, "")],
    );
    let lvsd = lab.start_lvsd(1, &cfg).expect("starting lvsd");
    assert_eq!(tally(answers(&lab, 6)).len(), 3);
    // rs2 unplugged: its SYNs go unanswered (its MAC stays known to lvsd).
    let rs2 = lab.real_server(2);
    let ifname = rs2.ifaces()[0].name.clone();
    rs2.set_link_up(&ifname, false).unwrap();
    let to = to();
    within(
        Duration::from_secs(8),
        "rs2 down (no SYN-ACK)",
        &lvsd,
        || {
            lab.client().run(move || {
                for _ in 0..3 {
                    let _ = client::http_request(to, "GET", "/", Duration::from_millis(400));
                }
            });
            !server(&lab, &lvsd, 2, 80).in_service
        },
    );
    let evs = health_events(&events(&lab, &lvsd));
    assert!(
        evs.iter()
            .any(|(_, s, check, reason)| *s == HealthState::Down
                && check == "passive"
                && reason.contains("no SYN-ACK within 300ms")),
        "{evs:?}"
    );
    let names = answers(&lab, 8);
    assert_eq!(names.len(), 8, "all answered while rs2 is out: {names:?}");
    rs2.set_link_up(&ifname, true).unwrap();
    // Taking the link down flushed rs2's routes: the DIP is its gateway again.
    rs2.replace_default_route(lvs_lab::director_int_addr(1))
        .unwrap();
    within(Duration::from_secs(8), "rs2 back", &lvsd, || {
        answers(&lab, 3).iter().any(|n| n == "rs2")
    });
    stop_and_check(&lvsd);
}

/// lvsd's resident memory in KiB.
fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in {status}"))
}

#[test]
fn hostile_targets_fail_within_their_timeout_and_memory_stays_bounded() {
    require_root!();
    let _serial = serial();
    let lab = lab(Mode::Nat, 2);
    let mut nodes = Vec::new();
    let mut servers: Vec<(usize, u16, u32, String)> = vec![(1, 80, 1, String::new())];
    for (i, mode) in Hostile::ALL.into_iter().enumerate() {
        let port = 8001 + i as u16;
        let p = port.to_string();
        nodes.push(spawn_node(
            &lab,
            2,
            mode.word(),
            &["hostile", "--mode", mode.word(), "--port", &p],
            port,
        ));
        // TLS expected but plain HTTP answers: an https check; the others: http.
        let kind = if mode == Hostile::Plain {
            "https"
        } else {
            "http"
        };
        let own = format!(
            "[virtual_server.real_server.health_check]\nkind = \"{kind}\"\n\
             interval = \"600ms\"\ntimeout = \"500ms\"\nrise = 1\nfall = 1\npath = \"/\"\n\
             regex = \"^ok\"\n"
        );
        servers.push((2, port, 1, own));
    }
    let refs: Vec<(usize, u16, u32, &str)> = servers
        .iter()
        .map(|(k, p, w, o)| (*k, *p, *w, o.as_str()))
        .collect();
    let cfg = config(&lab, "", &refs);
    let lvsd = lab.start_lvsd(1, &cfg).expect("starting lvsd");
    let base = vm_rss_kib(lvsd.pid());
    // Each hostile server is down within fall × interval + timeout (+ slack).
    let bound = Duration::from_millis(600 + 500) + SLACK + Duration::from_secs(1);
    for (i, mode) in Hostile::ALL.into_iter().enumerate() {
        let port = 8001 + i as u16;
        within(bound, mode.word(), &lvsd, || {
            !server(&lab, &lvsd, 2, port).in_service
        });
    }
    // A few more rounds of checks against them, with traffic to the healthy one.
    let mut peak = base;
    for _ in 0..5 {
        let names = answers(&lab, 10);
        assert_eq!(tally(names.clone()).get("rs1"), Some(&10), "{names:?}");
        peak = peak.max(vm_rss_kib(lvsd.pid()));
    }
    assert!(
        peak < base + 64 * 1024,
        "lvsd grew from {base} KiB to {peak} KiB"
    );
    let evs = health_events(&events(&lab, &lvsd));
    for (i, mode) in Hostile::ALL.into_iter().enumerate() {
        let rs = format!("{}:{}", lab.real_server(2).addr(), 8001 + i);
        assert!(
            evs.iter()
                .any(|(r, s, _, reason)| r == &rs && *s == HealthState::Down && !reason.is_empty()),
            "{} ({rs}): {evs:?}",
            mode.word()
        );
    }
    let health = lvsctl(&lab, &lvsd, &["health"]);
    eprintln!("{health}");
    assert!(lvsd.is_running());
    assert!(!lvsd.stderr().contains("panicked"), "{}", lvsd.logs());
    drop(nodes);
    stop_and_check(&lvsd);
}
