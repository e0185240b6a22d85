//! Scheduling around the scheduler, end to end through a real lvsd in a namespace lab:
//! source hashing keeps a client on one real server, persistence templates survive a reload
//! that edits another server, and connection thresholds stop and resume new connections.
//!
//! The lab client always connects from 198.51.100.10; the router (203.0.113.1 towards the
//! VIP) serves as a second client where a test needs one. The tests take a process-wide
//! lock and run one at a time, as in `forwarding.rs`.

// Helpers outside #[test] fns are not covered by clippy's allow-unwrap-in-tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use lvs_lab::client::HttpClient;
use lvs_lab::node::HTTP_PORT;
use lvs_lab::{Lab, LvsdProcess, Signal, require_root, vip, wait_until};

mod common;
use common::*;

/// One TCP `[[virtual_server]]` on VIP:80 with extra service lines `svc`; `servers` are
/// (real server index, weight, extra lines for that server).
fn service(
    mode: Mode,
    scheduler: &str,
    svc: &str,
    lab: &Lab,
    servers: &[(usize, u32, &str)],
) -> String {
    let mut s = format!(
        "[[virtual_server]]\naddress = \"{}:{HTTP_PORT}\"\nprotocol = \"tcp\"\nscheduler = \"{scheduler}\"\nforwarding = \"{}\"\n{svc}\n",
        vip(0),
        mode.word()
    );
    for &(k, weight, extra) in servers {
        s.push_str(&format!(
            "\n[[virtual_server.real_server]]\naddress = \"{}:{HTTP_PORT}\"\nweight = {weight}\n{extra}\n",
            lab.real_server(k).addr()
        ));
    }
    s.push('\n');
    s
}

/// The one backend all `names` came from; fails naming the spread otherwise.
fn only(names: &[String], what: &str, lvsd: &LvsdProcess) -> String {
    let counts = tally(names.iter().cloned());
    assert_eq!(counts.len(), 1, "{what}: {counts:?}\n{}", lvsd.logs());
    names[0].clone()
}

fn reload(lvsd: &LvsdProcess, config: &str) {
    let before = lvsd.stderr().matches("reloaded").count();
    lvsd.write_config(config).unwrap();
    lvsd.reload().unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || lvsd
            .stderr()
            .matches("reloaded")
            .count()
            > before),
        "lvsd did not reload:\n{}",
        lvsd.logs()
    );
}

// ---------------------------------------------------------------------------------------
// Source hashing.

#[test]
fn sh_keeps_each_client_on_one_server() {
    require_root!();
    let _serial = serial();
    let lab = lab(Mode::Nat, 3);
    let to = SocketAddr::from((vip(0), HTTP_PORT));
    let servers: Vec<(usize, u32, &str)> = (1..=3).map(|k| (k, 1, "")).collect();
    let config = service(Mode::Nat, "sh", "", &lab, &servers);
    let lvsd = match lab.start_lvsd(1, &config) {
        Ok(l) => l,
        Err(e) if e.to_string().contains("not available in this build") => {
            eprintln!("SKIP: sh_keeps_each_client_on_one_server: this build has no sh yet ({e})");
            return;
        }
        Err(e) => panic!("starting lvsd: {e}"),
    };
    let client_names = sequential_names(lab.client(), to, 50);
    let router_names = sequential_names(lab.router(), to, 50);
    let a = only(&client_names, "client 198.51.100.10", &lvsd);
    let b = only(&router_names, "router 203.0.113.1", &lvsd);
    eprintln!("sh: 198.51.100.10 -> {a}, 203.0.113.1 -> {b}");
    let stats = stop_and_check(&lvsd);
    assert!(stats.contains("sh conns=100"), "{stats}");
}

// ---------------------------------------------------------------------------------------
// Persistence.

/// With rr and persistence, every connection of one client goes to one server even across
/// a SIGHUP that changes another server's weight (which resets rr); a second client is
/// still scheduled (rr moved on once).
#[test]
fn persistence_survives_a_weight_edit_of_another_server() {
    require_root!();
    let _serial = serial();
    let lab = lab(Mode::Nat, 3);
    let to = SocketAddr::from((vip(0), HTTP_PORT));
    let svc = "persistence_timeout = 300";
    let config = |w1: u32| {
        service(
            Mode::Nat,
            "rr",
            svc,
            &lab,
            &[(1, w1, ""), (2, 1, ""), (3, 1, "")],
        )
    };
    let lvsd = lab.start_lvsd(1, &config(1)).expect("starting lvsd");
    // List order rs3, rs2, rs1: the client's first connection is scheduled to rs3 and
    // its template keeps it there; the router is the second scheduling decision: rs2.
    let names = sequential_names(lab.client(), to, 20);
    assert_eq!(only(&names, "client before", &lvsd), "rs3");
    let names = sequential_names(lab.router(), to, 5);
    assert_eq!(only(&names, "router before", &lvsd), "rs2");

    reload(&lvsd, &config(5));
    let names = sequential_names(lab.client(), to, 20);
    assert_eq!(only(&names, "client after the edit", &lvsd), "rs3");
    let names = sequential_names(lab.router(), to, 5);
    assert_eq!(only(&names, "router after the edit", &lvsd), "rs2");
    let stats = stop_and_check(&lvsd);
    assert!(stats.contains("rr conns=50"), "{stats}");
    assert!(stats.contains(" weight=5 "), "{stats}");
}

// ---------------------------------------------------------------------------------------
// Connection thresholds.

/// Asks lvsd for its counters (SIGUSR1) and returns `active + inactive` of `rip:80` from
/// the latest dump, once it equals `want` (within 15 s).
fn wait_open(lvsd: &LvsdProcess, rip: Ipv4Addr, want: u64) {
    let needle = format!("-> {rip}:{HTTP_PORT} ");
    let mut last = None;
    let reached = wait_until(Duration::from_secs(15), || {
        let _ = lvsd.process().signal(Signal::SIGUSR1);
        std::thread::sleep(Duration::from_millis(150));
        let out = lvsd.stdout();
        let Some(line) = out.lines().rfind(|l| l.trim_start().starts_with(&needle)) else {
            return false;
        };
        let field = |name: &str| -> Option<u64> {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{name}=")))?
                .parse()
                .ok()
        };
        last = field("active").zip(field("inactive")).map(|(a, i)| a + i);
        last == Some(want)
    });
    assert!(
        reached,
        "{rip} never had {want} open connections (last seen {last:?})\n{}",
        lvsd.logs()
    );
}

fn names(v: &[(String, HttpClient)]) -> Vec<&str> {
    v.iter().map(|(n, _)| n.as_str()).collect()
}

/// Closes one held connection to rs1.
fn close_one_rs1(held: &mut Vec<(String, HttpClient)>) {
    let i = held.iter().position(|(n, _)| n == "rs1").unwrap();
    drop(held.remove(i));
}

/// rs1 has `upper_threshold = 5`, `lower_threshold = 3`; rr alternates rs2, rs1. Held
/// keep-alive connections fill rs1 to 5, after which every new connection goes to rs2;
/// closing rs1's connections lets it back in only below 3. DR with `tcpfin = 1`, so a
/// closed connection (FIN_WAIT, input only) leaves the table within about 2 s.
#[test]
fn upper_threshold_stops_and_lower_threshold_resumes() {
    require_root!();
    let _serial = serial();
    let lab = lab(Mode::Dr, 2);
    let to = SocketAddr::from((vip(0), HTTP_PORT));
    let rs1 = lab.real_server(1).addr();
    let mut config = service(
        Mode::Dr,
        "rr",
        "",
        &lab,
        &[
            (1, 1, "upper_threshold = 5\nlower_threshold = 3"),
            (2, 1, ""),
        ],
    );
    config.push_str("[timeouts]\ntcpfin = 1\n");
    let lvsd = lab.start_lvsd(1, &config).expect("starting lvsd");
    let open = |n: usize| -> Vec<(String, HttpClient)> {
        lab.client().run(|| {
            (0..n)
                .map(|i| {
                    let mut c = HttpClient::connect(to)
                        .unwrap_or_else(|e| panic!("connection {i}: {e}\n{}", lvsd.logs()));
                    let (name, _) = c
                        .get_named("/")
                        .unwrap_or_else(|e| panic!("request {i}: {e}\n{}", lvsd.logs()));
                    (name, c)
                })
                .collect()
        })
    };

    // 10 connections: rr alternates, and rs1's 5th sets OVERLOAD.
    let mut held = open(10);
    assert_eq!(
        names(&held),
        [
            "rs2", "rs1", "rs2", "rs1", "rs2", "rs1", "rs2", "rs1", "rs2", "rs1"
        ],
        "{}",
        lvsd.logs()
    );
    wait_open(&lvsd, rs1, 5);
    // rs1 takes no more while it has 5 open.
    let more = open(4);
    assert_eq!(names(&more), ["rs2"; 4], "{}", lvsd.logs());
    held.extend(more);

    // 4 and then 3 open: not below the lower threshold, still overloaded.
    for still_open in [4, 3] {
        close_one_rs1(&mut held);
        wait_open(&lvsd, rs1, still_open);
        let probe = open(2);
        assert_eq!(
            names(&probe),
            ["rs2", "rs2"],
            "rs1 with {still_open} open\n{}",
            lvsd.logs()
        );
        held.extend(probe);
    }
    // 2 open, below 3: rs1 is back in the rotation (rr goes on after rs2: rs1, rs2).
    close_one_rs1(&mut held);
    wait_open(&lvsd, rs1, 2);
    let probe = open(2);
    assert_eq!(names(&probe), ["rs1", "rs2"], "{}", lvsd.logs());
    held.extend(probe);

    // Held connections kept working throughout, on their own servers.
    lab.client().run(|| {
        for (name, c) in held.iter_mut() {
            let (again, _) = c
                .get_named("/")
                .unwrap_or_else(|e| panic!("held connection to {name}: {e}"));
            assert_eq!(&again, name);
        }
    });
    drop(held);
    let stats = stop_and_check(&lvsd);
    assert!(stats.contains("rr conns=20"), "{stats}");
    assert!(!stats.contains("drop.no_destination"), "{stats}");
}
