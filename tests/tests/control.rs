//! End-to-end tests of the scripting CLI: the real `lvsctl` binary, run inside the director's
//! namespace, against a real lvsd forwarding real traffic in a namespace lab.
//!
//! What they pin down: `lvsctl -Ln` prints ipvsadm's layout with the lab's real servers, their
//! weights and connection counts (checked against the traffic sent); `--stats` counts that
//! traffic; `-Lnc` lists the connection table; `set-weight` (and ipvsadm's `-e ... -w`) takes
//! effect for new connections and is recorded in `events` with who made it; `--json`
//! parses as the API's types; errors exit non-zero with one line naming what was wrong.
//!
//! The tests take a process-wide lock and run one at a time (small machine, CPU-bound labs).

// Helpers outside #[test] fns are not covered by clippy's allow-unwrap-in-tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Output;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use lvs_lab::client::{self, HttpClient};
use lvs_lab::node::HTTP_PORT;
use lvs_lab::{Lab, LabSpec, LvsdProcess, RealServerSpec, require_root, vip, wait_for};

const NODE: &str = env!("CARGO_BIN_EXE_lvs-lab-node");

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A NAT lab with three real servers, backends running, lvsd not yet started.
fn nat_lab() -> Lab {
    let mut spec = LabSpec::new(NODE);
    for _ in 0..3 {
        spec = spec.real_server(RealServerSpec::nat());
    }
    let lab = Lab::build(spec).expect("building the lab");
    lab.start_backends().expect("starting backends");
    lab
}

/// `wrr` over rs1..rs3 with weights 3, 2, 1 on VIP:80 (NAT), and a UDP service on VIP:53 so
/// the listing has two services to sort.
fn config(lab: &Lab) -> String {
    let v = vip(0);
    let mut s = format!(
        "[[virtual_server]]\naddress = \"{v}:{HTTP_PORT}\"\nprotocol = \"tcp\"\n\
         scheduler = \"wrr\"\nforwarding = \"nat\"\n"
    );
    for (k, w) in [(1, 3), (2, 2), (3, 1)] {
        s += &format!(
            "\n[[virtual_server.real_server]]\naddress = \"{}:{HTTP_PORT}\"\nweight = {w}\n",
            lab.real_server(k).addr()
        );
    }
    s += &format!(
        "\n[[virtual_server]]\naddress = \"{v}:53\"\nprotocol = \"udp\"\nscheduler = \"rr\"\n\
         forwarding = \"nat\"\n\n[[virtual_server.real_server]]\naddress = \"{}:53\"\n",
        lab.real_server(1).addr()
    );
    s
}

/// The control socket of the lab's lvsd.
fn control_socket(lvsd: &LvsdProcess) -> PathBuf {
    lvsd.control_socket().to_path_buf()
}

/// Runs `lvsctl ARGS` in director 1's namespace against `socket`.
fn lvsctl(lab: &Lab, socket: &PathBuf, args: &[&str]) -> Output {
    let exe = lvs_lab::lvsctl_binary().expect("building lvsctl");
    let mut cmd = lab.director(1).command(exe);
    cmd.arg("--socket").arg(socket).args(args);
    cmd.output().expect("running lvsctl")
}

/// `lvsctl ARGS`, which must succeed; its stdout.
fn ok(lab: &Lab, socket: &PathBuf, args: &[&str]) -> String {
    let out = lvsctl(lab, socket, args);
    assert!(
        out.status.success(),
        "lvsctl {args:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// `lvsctl ARGS`, which must fail with `code`; its stderr.
fn fails(lab: &Lab, socket: &PathBuf, args: &[&str], code: i32) -> String {
    let out = lvsctl(lab, socket, args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "lvsctl {args:?}: stdout {:?} stderr {stderr:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(out.stdout.is_empty(), "lvsctl {args:?} printed on stdout");
    stderr
}

/// The `  -> RIP:PORT ...` lines of an `-Ln` listing, by RIP:PORT: (forward, weight, active,
/// inactive).
fn dest_columns(listing: &str) -> BTreeMap<String, (String, u32, u64, u64)> {
    listing
        .lines()
        .filter_map(|l| l.strip_prefix("  -> "))
        .filter(|l| !l.starts_with("RemoteAddress"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 5, "odd line {l:?}");
            (
                f[0].to_owned(),
                (
                    f[1].to_owned(),
                    f[2].parse().unwrap(),
                    f[3].parse().unwrap(),
                    f[4].parse().unwrap(),
                ),
            )
        })
        .collect()
}

fn rip(lab: &Lab, k: usize) -> String {
    format!("{}:{HTTP_PORT}", lab.real_server(k).addr())
}

/// `count` sequential requests, each on a new connection; the names of the servers.
fn sequential_names(lab: &Lab, to: SocketAddr, count: usize) -> Vec<String> {
    lab.client().run(move || {
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

#[test]
fn lvsctl_lists_counts_and_steers_a_running_director() {
    require_root!();
    let _serial = serial();
    let lab = nat_lab();
    let lvsd = lab.start_lvsd(1, &config(&lab)).expect("starting lvsd");
    let socket = control_socket(&lvsd);
    let v = vip(0);
    let to = SocketAddr::from((v, HTTP_PORT));
    let svc = format!("{v}:{HTTP_PORT}");

    // Two keep-alive connections stay open (active); 60 more open and close (inactive).
    // wrr 3:2:1 over the list rs3, rs2, rs1 picks rs1 rs2 rs1 rs3 rs2 rs1 per cycle: the
    // 62 connections land 31 / 21 / 10, the two open ones on rs1 and rs2.
    let keep: Vec<HttpClient> = lab.client().run(move || {
        (0..2)
            .map(|_| {
                let mut c = HttpClient::connect(to).expect("keep-alive connect");
                c.get_named("/").expect("keep-alive request");
                c
            })
            .collect()
    });
    sequential_names(&lab, to, 60);
    let want = BTreeMap::from([
        (rip(&lab, 1), ("Masq".to_owned(), 3, 1, 30)),
        (rip(&lab, 2), ("Masq".to_owned(), 2, 1, 20)),
        (rip(&lab, 3), ("Masq".to_owned(), 1, 0, 10)),
    ]);

    // -Ln: ipvsadm's header, both services sorted (TCP before UDP), weights and counts.
    let listing = wait_for(Duration::from_secs(10), || {
        let text = ok(&lab, &socket, &["-Ln"]);
        let cols = dest_columns(&text);
        let tcp: BTreeMap<_, _> = cols
            .into_iter()
            .filter(|(k, _)| k.ends_with(&format!(":{HTTP_PORT}")))
            .collect();
        (tcp == want).then_some(text)
    })
    .unwrap_or_else(|| {
        panic!(
            "-Ln never showed {want:?}; last:\n{}\n{}",
            ok(&lab, &socket, &["-Ln"]),
            lvsd.logs()
        )
    });
    let lines: Vec<&str> = listing.lines().collect();
    assert!(
        lines[0].starts_with("IP Virtual Server version ") && lines[0].ends_with(')'),
        "{listing}"
    );
    assert_eq!(lines[1], "Prot LocalAddress:Port Scheduler Flags");
    assert_eq!(
        lines[2],
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn"
    );
    assert_eq!(lines[3], format!("TCP  {svc} wrr"));
    assert_eq!(
        lines[4],
        format!(
            "  -> {:<28} Masq    3      1          30        ",
            rip(&lab, 1)
        )
    );
    assert_eq!(lines[7], format!("UDP  {v}:53 rr"));
    assert_eq!(lines.len(), 9, "{listing}");
    // The long form and a single service (no version line, as ipvsadm).
    assert_eq!(ok(&lab, &socket, &["list", "-n"]), listing);
    let one = ok(&lab, &socket, &["-Ln", "-t", &svc]);
    assert_eq!(
        one,
        lines[1..7]
            .iter()
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    );

    // --stats: the 62 connections and their packets and bytes, both ways through NAT.
    let stats = ok(&lab, &socket, &["-Ln", "--stats", "-t", &svc]);
    let slines: Vec<&str> = stats.lines().collect();
    assert_eq!(
        slines[0],
        "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes"
    );
    let cols: Vec<u64> = slines[2]
        .split_whitespace()
        .skip(2)
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(cols[0], 62, "{stats}");
    assert!(cols[1..].iter().all(|&n| n > 0), "{stats}");
    let per_rs: Vec<u64> = slines[3..]
        .iter()
        .map(|l| l.split_whitespace().nth(2).unwrap().parse().unwrap())
        .collect();
    assert_eq!(per_rs, [31, 21, 10], "{stats}");
    // --rate: the estimator ticks every 2 s; the burst shows as a non-zero CPS and PPS.
    let rate = wait_for(Duration::from_secs(6), || {
        let text = ok(&lab, &socket, &["-Ln", "--rate", "-t", &svc]);
        let line = text.lines().nth(2)?.to_owned();
        let cols: Vec<u64> = line
            .split_whitespace()
            .skip(2)
            .map(|n| n.parse().unwrap())
            .collect();
        (cols[0] > 0 && cols[1] > 0 && cols[3] > 0).then_some(text)
    })
    .unwrap_or_else(|| {
        panic!(
            "--rate stayed 0:\n{}",
            ok(&lab, &socket, &["-Ln", "--rate"])
        )
    });
    assert_eq!(
        rate.lines().next(),
        Some("Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS")
    );

    // -Lnc: every entry of the table, two of them established.
    let conns = ok(&lab, &socket, &["-Lnc"]);
    let clines: Vec<&str> = conns.lines().collect();
    assert_eq!(clines[0], "IPVS connection entries");
    assert_eq!(
        clines[1],
        "pro expire state       source             virtual            destination"
    );
    assert_eq!(clines.len() - 2, 62, "{conns}");
    assert_eq!(
        clines
            .iter()
            .filter(|l| l.contains(" ESTABLISHED "))
            .count(),
        2,
        "{conns}"
    );
    assert!(
        clines[2..]
            .iter()
            .all(|l| l.starts_with("TCP ") && l.contains(&svc))
    );

    // --json parses as the API's types and agrees with the text.
    let json = ok(&lab, &socket, &["--json", "list"]);
    let services: Vec<lvs_proto::ServiceInfo> = serde_json::from_str(&json).expect("list JSON");
    let web = services
        .iter()
        .find(|s| s.port == HTTP_PORT)
        .expect("the web service in JSON");
    let mut from_json: Vec<(String, u32, u32, u32)> = web
        .real_servers
        .iter()
        .map(|r| {
            (
                format!("{}:{}", r.addr, r.port),
                r.weight,
                r.active,
                r.inactive,
            )
        })
        .collect();
    from_json.sort();
    assert_eq!(
        from_json,
        [
            (rip(&lab, 1), 3, 1, 30),
            (rip(&lab, 2), 2, 1, 20),
            (rip(&lab, 3), 1, 0, 10)
        ]
    );
    let conns_json = ok(&lab, &socket, &["-Lnc", "--json"]);
    let entries: Vec<lvs_proto::ConnEntry> = serde_json::from_str(&conns_json).expect("conns JSON");
    assert_eq!(entries.len(), 62);
    drop(keep);

    // set-weight rs3 to 0: new connections avoid it, the listing and the events show it.
    let rs3 = rip(&lab, 3);
    let out = ok(&lab, &socket, &["set-weight", "-t", &svc, "-r", &rs3, "0"]);
    assert_eq!(out, format!("tcp {svc} {rs3} weight 1 -> 0\n"));
    assert_eq!(dest_columns(&ok(&lab, &socket, &["-Ln"]))[&rs3].1, 0);
    let names = sequential_names(&lab, to, 30);
    assert!(
        !names.iter().any(|n| n == "rs3"),
        "rs3 got new connections: {names:?}"
    );
    assert!(names.iter().any(|n| n == "rs1") && names.iter().any(|n| n == "rs2"));
    let events = ok(&lab, &socket, &["events"]);
    let edit = events
        .lines()
        .find(|l| l.contains(&format!(" weight tcp {svc} {rs3} 1 -> 0 by ")))
        .unwrap_or_else(|| panic!("no weight event in:\n{events}"));
    assert!(edit.contains("(uid 0)"), "{edit}");
    let events_json = ok(&lab, &socket, &["events", "--json"]);
    let parsed: Vec<lvs_proto::Event> = serde_json::from_str(&events_json).expect("events JSON");
    assert!(parsed.iter().any(|e| matches!(
        &e.kind,
        lvs_proto::EventKind::WeightChanged { old: 1, new: 0, by, .. } if by.uid == 0
    )));

    // ipvsadm's own form puts it back, silently; restating the wrong method is refused.
    assert_eq!(
        ok(
            &lab,
            &socket,
            &["-e", "-t", &svc, "-r", &rs3, "-m", "-w", "1"]
        ),
        ""
    );
    assert_eq!(dest_columns(&ok(&lab, &socket, &["-Ln"]))[&rs3].1, 1);
    let e = fails(
        &lab,
        &socket,
        &["-e", "-t", &svc, "-r", &rs3, "-g", "-w", "1"],
        1,
    );
    assert!(e.contains("cannot change the forwarding method"), "{e}");

    // Drain and undrain rs2.
    let rs2 = rip(&lab, 2);
    let drained = ok(&lab, &socket, &["drain", &svc, &rs2]);
    assert!(
        drained.starts_with(&format!("tcp {svc} {rs2} drain")),
        "{drained}"
    );
    assert_eq!(dest_columns(&ok(&lab, &socket, &["-Ln"]))[&rs2].1, 0);
    assert_eq!(
        ok(&lab, &socket, &["undrain", &svc, &rs2]),
        format!("tcp {svc} {rs2} weight 0 -> 2\n")
    );

    // Decisions are recorded while someone asks; simulate answers without changing anything.
    ok(&lab, &socket, &["decisions", "-t", &svc]);
    sequential_names(&lab, to, 3);
    let decisions = ok(&lab, &socket, &["decisions", "-t", &svc, "--json"]);
    let decisions: Vec<lvs_proto::DecisionInfo> =
        serde_json::from_str(&decisions).expect("decisions JSON");
    assert!(decisions.len() >= 3, "{decisions:?}");
    let sim = ok(
        &lab,
        &socket,
        &["simulate", "-t", &svc, "--client", "198.51.100.77:40000"],
    );
    assert!(
        sim.starts_with(&format!("tcp {svc} 198.51.100.77:40000 -> ")),
        "{sim}"
    );

    // -Z zeroes the counters (silently).
    assert_eq!(ok(&lab, &socket, &["-Z", "-t", &svc]), "");
    let stats = ok(&lab, &socket, &["-Ln", "--stats", "-t", &svc]);
    let conns_col = stats
        .lines()
        .nth(2)
        .unwrap()
        .split_whitespace()
        .nth(2)
        .unwrap();
    assert_eq!(conns_col, "0", "{stats}");

    // Errors: one line naming what was wrong; 1 for the daemon's answers, 2 for usage.
    let e = fails(&lab, &socket, &["-Ln", "-t", "203.0.113.99:80"], 1);
    assert_eq!(e, "lvsctl: no virtual service tcp 203.0.113.99:80\n");
    let e = fails(
        &lab,
        &socket,
        &["set-weight", &svc, &rip(&lab, 1), "70000"],
        2,
    );
    assert_eq!(e, "lvsctl: weight 70000 out of range 0..=65535\n");
    let e = fails(
        &lab,
        &socket,
        &["set-weight", &svc, "192.0.2.99:80", "1"],
        1,
    );
    assert!(e.contains("no real server 192.0.2.99:80"), "{e}");
    let missing = lab.work_dir().join("no-such.sock");
    let e = fails(&lab, &missing, &["-Ln"], 1);
    assert!(
        e.contains(&missing.display().to_string()) && e.contains("not running"),
        "{e}"
    );

    lvsd.stop().expect("stopping lvsd");
}
