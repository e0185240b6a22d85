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
use std::time::Duration;

use lvs_lab::client::{self, HttpClient};
use lvs_lab::node::HTTP_PORT;
use lvs_lab::{Lab, LabSpec, LvsdProcess, RealServerSpec, require_root, vip, wait_for};

mod common;
use common::*;

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
    sequential_names(lab.client(), to, 60);
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
    let names = sequential_names(lab.client(), to, 30);
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
    sequential_names(lab.client(), to, 3);
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

/// One TCP service on VIP:80, `wlc` over rs1..rs3 at weight 1 (NAT), plus `extra` (e.g. a
/// `[control]` section).
fn plain_config(lab: &Lab, extra: &str) -> String {
    let v = vip(0);
    let mut s = format!(
        "[[virtual_server]]\naddress = \"{v}:{HTTP_PORT}\"\nprotocol = \"tcp\"\n\
         scheduler = \"wlc\"\nforwarding = \"nat\"\n"
    );
    for k in 1..=3 {
        s += &format!(
            "\n[[virtual_server.real_server]]\naddress = \"{}\"\nweight = 1\n",
            rip(lab, k)
        );
    }
    s + extra
}

/// One `GET /` on a fresh connection (`Connection: close`) that the client ends with a
/// reset once the response is read: the director's entry goes to CLOSE (10 s) instead of
/// TIME_WAIT (120 s), so a drain completes in seconds. The backend's name.
fn request_then_reset(to: SocketAddr) -> Result<String, String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&to, Duration::from_secs(5))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    s.write_all(format!("GET / HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\n\r\n").as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut response = Vec::new();
    s.read_to_end(&mut response)
        .map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&response);
    if !text.starts_with("HTTP/1.1 200") && !text.starts_with("HTTP/1.0 200") {
        return Err(format!("status line {:?}", text.lines().next()));
    }
    let backend = text
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("x-backend"))
                .map(|(_, v)| v.trim().to_owned())
        })
        .ok_or_else(|| "no X-Backend header".to_owned())?;
    nix::sys::socket::setsockopt(
        &s,
        nix::sys::socket::sockopt::Linger,
        &libc::linger {
            l_onoff: 1,
            l_linger: 0,
        },
    )
    .map_err(|e| format!("SO_LINGER: {e}"))?;
    drop(s); // RST
    Ok(backend)
}

/// Reads a child's stdout line by line into a channel (on its own thread).
fn lines_of(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let out = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

#[test]
fn draining_under_load_fails_no_request_and_wait_reaches_zero() {
    require_root!();
    let _serial = serial();
    let lab = nat_lab();
    let lvsd = lab
        .start_lvsd(1, &plain_config(&lab, ""))
        .expect("starting lvsd");
    let socket = control_socket(&lvsd);
    let v = vip(0);
    let to = SocketAddr::from((v, HTTP_PORT));
    let svc = format!("{v}:{HTTP_PORT}");
    let rs2 = rip(&lab, 2);
    // The lab answers before the load starts.
    sequential_names(lab.client(), to, 3);

    let stop = std::sync::atomic::AtomicBool::new(false);
    let drained = std::sync::atomic::AtomicBool::new(false);
    let (results, drain_lines, status) = std::thread::scope(|scope| {
        let clients = scope.spawn(|| {
            lab.client().run(|| {
                std::thread::scope(|inner| {
                    let workers: Vec<_> = (0..20)
                        .map(|_| {
                            inner.spawn(|| {
                                // (started after the drain was applied, backend or error)
                                let mut seen = Vec::new();
                                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                                    let after = drained.load(std::sync::atomic::Ordering::SeqCst);
                                    seen.push((after, request_then_reset(to)));
                                    std::thread::sleep(Duration::from_millis(40));
                                }
                                seen
                            })
                        })
                        .collect();
                    workers
                        .into_iter()
                        .flat_map(|w| w.join().expect("client thread"))
                        .collect::<Vec<_>>()
                })
            })
        });
        // The clients stop however this closure ends (a panic here must not hang the scope).
        struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let stop_guard = StopOnDrop(&stop);
        // Load for a while, then drain rs2 and wait for its connections to end.
        std::thread::sleep(Duration::from_secs(2));
        let exe = lvs_lab::lvsctl_binary().expect("building lvsctl");
        let mut cmd = lab.director(1).command(exe);
        cmd.arg("--socket")
            .arg(&socket)
            // An entry whose reset was missed ends by its own timeout (TIME_WAIT: 120 s).
            .args(["drain", &svc, &rs2, "--wait", "--timeout", "200"])
            .stdout(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("running lvsctl drain --wait");
        let rx = lines_of(&mut child);
        let mut lines = Vec::new();
        // The first line is printed once the drain is applied.
        if let Ok(first) = rx.recv_timeout(Duration::from_secs(10)) {
            drained.store(true, std::sync::atomic::Ordering::SeqCst);
            lines.push(first);
        }
        let status = child.wait().expect("waiting for lvsctl");
        lines.extend(rx.iter());
        // A little more load after the drain completed.
        std::thread::sleep(Duration::from_secs(1));
        drop(stop_guard);
        (clients.join().expect("clients"), lines, status)
    });

    let failed: Vec<&String> = results
        .iter()
        .filter_map(|(_, r)| r.as_ref().err())
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}\n{}",
        failed.len(),
        results.len(),
        &failed[..failed.len().min(5)],
        lvsd.logs()
    );
    let after: Vec<&str> = results
        .iter()
        .filter(|(a, _)| *a)
        .filter_map(|(_, r)| r.as_deref().ok())
        .collect();
    assert!(
        after.len() >= 20,
        "too few requests after the drain: {}",
        after.len()
    );
    assert!(
        !after.contains(&"rs2"),
        "the drained rs2 got new connections"
    );
    assert!(results.iter().any(|(a, r)| !a && r.as_deref() == Ok("rs2")));
    assert!(status.success(), "drain --wait: {status}; {drain_lines:?}");
    assert!(
        drain_lines[0].starts_with(&format!("tcp {svc} {rs2} draining (weight was 1): ")),
        "{drain_lines:?}"
    );
    assert_eq!(
        drain_lines.last().map(String::as_str),
        Some(
            format!("tcp {svc} {rs2} drained (weight was 1): no connections left (persistent 0)")
                .as_str()
        ),
        "{drain_lines:?}"
    );
    // The progress counts down.
    let left: Vec<u64> = drain_lines
        .iter()
        .filter_map(|l| l.split(": ").nth(1)?.split(' ').next()?.parse().ok())
        .collect();
    assert!(left.windows(2).all(|w| w[0] >= w[1]), "{drain_lines:?}");
    assert_eq!(
        dest_columns(&ok(&lab, &socket, &["-Ln"]))[&rs2],
        ("Masq".to_owned(), 0, 0, 0)
    );

    // Undrain: the weight comes back and rs2 gets connections again.
    assert_eq!(
        ok(&lab, &socket, &["undrain", &svc, &rs2]),
        format!("tcp {svc} {rs2} weight 0 -> 1\n")
    );
    assert_eq!(dest_columns(&ok(&lab, &socket, &["-Ln"]))[&rs2].1, 1);
    let names = sequential_names(lab.client(), to, 6);
    assert!(names.iter().any(|n| n == "rs2"), "{names:?}");
    lvsd.stop().expect("stopping lvsd");
}

#[test]
fn an_unprivileged_user_can_list_but_not_change_weights() {
    require_root!();
    let _serial = serial();
    let lab = nat_lab();
    let socket = lab.work_dir().join("ro.ctl").join("lvsd.sock");
    let extra = format!(
        "\n[control]\nsocket = \"{}\"\nsocket_mode = \"0666\"\n",
        socket.display()
    );
    let lvsd = lab
        .start_lvsd(1, &plain_config(&lab, &extra))
        .expect("starting lvsd");
    assert_eq!(control_socket(&lvsd), socket);
    let svc = format!("{}:{HTTP_PORT}", vip(0));
    let nobody = |args: &[&str]| -> Output {
        let exe = lvs_lab::lvsctl_binary().expect("building lvsctl");
        let mut cmd = lab.director(1).command("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(exe)
            .arg("--socket")
            .arg(&socket)
            .args(args);
        cmd.output().expect("running setpriv lvsctl")
    };
    let text = |o: &Output| {
        format!(
            "{}: stdout {:?} stderr {:?}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };

    let who = nobody(&["whoami"]);
    assert!(who.status.success(), "{}", text(&who));
    let who = String::from_utf8_lossy(&who.stdout).into_owned();
    assert!(
        who.contains("uid 65534") && who.contains("read-only"),
        "{who}"
    );
    let list = nobody(&["-Ln"]);
    assert!(list.status.success(), "{}", text(&list));
    let cols = dest_columns(&String::from_utf8_lossy(&list.stdout));
    assert_eq!(cols.len(), 3, "{}", text(&list));

    let refused = nobody(&["weight", &svc, &rip(&lab, 1), "5"]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.starts_with("lvsctl: permission denied: read-only role: ")
            && stderr.contains("uid 65534"),
        "{stderr}"
    );
    assert!(refused.stdout.is_empty());
    // Nothing changed; root still may.
    assert_eq!(
        dest_columns(&ok(&lab, &socket, &["-Ln"]))[&rip(&lab, 1)].1,
        1
    );
    ok(&lab, &socket, &["weight", &svc, &rip(&lab, 1), "5"]);
    assert_eq!(
        dest_columns(&ok(&lab, &socket, &["-Ln"]))[&rip(&lab, 1)].1,
        5
    );
    lvsd.stop().expect("stopping lvsd");
}

#[test]
fn a_follower_sees_every_weight_edit_exactly_once() {
    require_root!();
    let _serial = serial();
    let lab = nat_lab();
    let lvsd = lab
        .start_lvsd(1, &plain_config(&lab, ""))
        .expect("starting lvsd");
    let socket = control_socket(&lvsd);
    let svc = format!("{}:{HTTP_PORT}", vip(0));

    let exe = lvs_lab::lvsctl_binary().expect("building lvsctl");
    let mut cmd = lab.director(1).command(&exe);
    cmd.arg("--socket")
        .arg(&socket)
        .args(["events", "--follow", "--json", "--interval", "0.1"])
        .stdout(std::process::Stdio::piped());
    let mut follower = cmd.spawn().expect("running lvsctl events --follow");
    let rx = lines_of(&mut follower);

    // The edits: rs1..rs3 in turn, weights 2..=31 (every one a real change).
    let mut want = Vec::new();
    let mut current = BTreeMap::from([(1, 1u32), (2, 1), (3, 1)]);
    for w in 2..=31u32 {
        let k = (w as usize % 3) + 1;
        let r = rip(&lab, k);
        ok(&lab, &socket, &["weight", &svc, &r, &w.to_string()]);
        want.push((r, current[&k], w));
        current.insert(k, w);
        if w % 10 == 0 {
            // Some edits land while the follower sleeps, some right after a poll.
            std::thread::sleep(Duration::from_millis(150));
        }
    }
    let mut seen: Vec<lvs_proto::Event> = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while seen
        .iter()
        .filter(|e| matches!(e.kind, lvs_proto::EventKind::WeightChanged { .. }))
        .count()
        < want.len()
        && std::time::Instant::now() < deadline
    {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}")));
        }
    }
    // A little longer: a duplicate would show up now.
    std::thread::sleep(Duration::from_millis(500));
    seen.extend(
        rx.try_iter()
            .map(|l| serde_json::from_str(&l).unwrap_or_else(|e| panic!("{e}: {l}"))),
    );
    let _ = follower.kill();
    let _ = follower.wait();

    let seqs: Vec<u64> = seen.iter().map(|e| e.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "sequence numbers not consecutive and unique: {seqs:?}"
    );
    let got: Vec<(String, u32, u32)> = seen
        .iter()
        .filter_map(|e| match &e.kind {
            lvs_proto::EventKind::WeightChanged {
                real_server,
                old,
                new,
                by,
                ..
            } => {
                assert_eq!(by.uid, 0);
                Some((real_server.to_string(), *old, *new))
            }
            _ => None,
        })
        .collect();
    assert_eq!(got, want);
    lvsd.stop().expect("stopping lvsd");
}

#[test]
fn services_and_real_servers_added_and_removed_at_runtime() {
    require_root!();
    let _serial = serial();
    let lab = nat_lab();
    let v = vip(0);
    let svc = format!("{v}:{HTTP_PORT}");
    // rs1 and rs2 only; rs3 comes through the API.
    let mut config = format!(
        "[[virtual_server]]\naddress = \"{svc}\"\nprotocol = \"tcp\"\nscheduler = \"wlc\"\n\
         forwarding = \"nat\"\n"
    );
    for k in 1..=2 {
        config += &format!(
            "\n[[virtual_server.real_server]]\naddress = \"{}\"\n",
            rip(&lab, k)
        );
    }
    let lvsd = lab.start_lvsd(1, &config).expect("starting lvsd");
    let socket = control_socket(&lvsd);
    let to = SocketAddr::from((v, HTTP_PORT));
    let names = sequential_names(lab.client(), to, 6);
    assert!(!names.iter().any(|n| n == "rs3"), "{names:?}");

    // A real server added at runtime gets connections.
    let rs3 = rip(&lab, 3);
    assert_eq!(
        ok(
            &lab,
            &socket,
            &["add-server", "-t", &svc, "-r", &rs3, "-w", "1"]
        ),
        format!("added real server {rs3} to tcp {svc} weight 1\n")
    );
    assert_eq!(
        dest_columns(&ok(&lab, &socket, &["-Ln"]))[&rs3],
        ("Masq".to_owned(), 1, 0, 0)
    );
    let names = sequential_names(lab.client(), to, 9);
    assert!(names.iter().any(|n| n == "rs3"), "{names:?}");
    // The topology shows where the VIP lives and how rs3 is reached.
    let topo: lvs_proto::Topology =
        serde_json::from_str(&ok(&lab, &socket, &["topology", "--json"])).expect("topology JSON");
    assert!(topo.vips.iter().any(|x| x.addr == v), "{topo:?}");
    let route = topo
        .real_servers
        .iter()
        .find(|r| r.real_server.to_string() == rs3)
        .unwrap_or_else(|| panic!("no route to rs3 in {topo:?}"));
    assert_eq!(route.forwarding, lvs_proto::Forwarding::Nat);
    assert_eq!(route.next_hop, lab.real_server(3).addr());
    assert!(topo.dips.contains(&route.source), "{topo:?}");
    assert!(
        topo.interfaces
            .iter()
            .any(|i| i.name == route.interface && i.addresses.contains(&route.source)),
        "{topo:?}"
    );
    let text = ok(&lab, &socket, &["topology"]);
    assert!(
        text.contains(&format!("tcp {svc} -> {rs3} Masq via ")),
        "{text}"
    );
    let e = fails(&lab, &socket, &["add-server", "-t", &svc, "-r", &rs3], 1);
    assert!(e.contains("already exists"), "{e}");

    // A removed one gets no more.
    let rs1 = rip(&lab, 1);
    ok(&lab, &socket, &["remove-server", &svc, &rs1]);
    assert!(!dest_columns(&ok(&lab, &socket, &["-Ln"])).contains_key(&rs1));
    let names = sequential_names(lab.client(), to, 9);
    assert!(!names.iter().any(|n| n == "rs1"), "{names:?}");
    assert!(names.iter().any(|n| n == "rs3"), "{names:?}");

    // A whole service: guard, filters and the data path follow.
    let alt = format!("{v}:8081");
    let to_alt = SocketAddr::from((v, 8081));
    ok(
        &lab,
        &socket,
        &["add-service", "-t", &alt, "-s", "rr", "-m"],
    );
    ok(
        &lab,
        &socket,
        &["add-server", "-t", &alt, "-r", &rip(&lab, 2)],
    );
    assert_eq!(
        sequential_names(lab.client(), to_alt, 3),
        ["rs2", "rs2", "rs2"]
    );
    ok(&lab, &socket, &["remove-service", "-t", &alt]);
    let gone = lab
        .client()
        .run(move || client::http_request(to_alt, "GET", "/", Duration::from_secs(2)).is_err());
    assert!(gone, "VIP:8081 still answers after remove-service");

    // The events, and a saved file that has the API's edits.
    let events = ok(&lab, &socket, &["events"]);
    for want in [
        format!("add real server tcp {svc} {rs3} weight 1 by "),
        format!("remove real server tcp {svc} {rs1} by "),
        format!("add service tcp {alt} by "),
        format!("remove service tcp {alt} by "),
    ] {
        assert!(events.contains(&want), "no `{want}` in:\n{events}");
    }
    let saved = lab.work_dir().join("saved.toml");
    let out = ok(
        &lab,
        &socket,
        &["save-config", saved.to_str().expect("UTF-8 path")],
    );
    assert!(
        out.starts_with("saved 1 services and 2 real servers to "),
        "{out}"
    );
    let text = std::fs::read_to_string(&saved).expect("the saved file");
    assert!(text.contains(&rs3) && !text.contains(&rs1), "{text}");
    lvsd.stop().expect("stopping lvsd");
}

/// The resident set size of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

#[test]
fn a_100_mib_frame_is_refused_without_costing_memory() {
    use std::io::{Read, Write};
    require_root!();
    let _serial = serial();
    let lab = nat_lab();
    let lvsd = lab.start_lvsd(1, &config(&lab)).expect("starting lvsd");
    let socket = control_socket(&lvsd);
    // Let the daemon settle (first RPC, allocator warm-up) before measuring.
    ok(&lab, &socket, &["-Ln"]);
    let before = rss_kib(lvsd.pid());

    // A length prefix announcing 100 MiB, then up to 100 MiB of junk: the daemon must close
    // the connection on the prefix instead of buffering the body.
    const FRAME: u32 = 100 << 20;
    let mut conn = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    conn.set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut sent = 0usize;
    let chunk = vec![b'x'; 64 << 10];
    let write_failed = conn
        .write_all(&FRAME.to_be_bytes())
        .and_then(|()| {
            while sent < FRAME as usize {
                conn.write_all(&chunk)?;
                sent += chunk.len();
            }
            Ok(())
        })
        .is_err();
    let mut buf = [0u8; 64];
    let closed = write_failed || matches!(conn.read(&mut buf), Ok(0) | Err(_));
    assert!(closed, "the daemon kept reading a 100 MiB frame");
    assert!(sent < FRAME as usize, "all 100 MiB were accepted");

    let after = rss_kib(lvsd.pid());
    assert!(
        after < before + 8 * 1024,
        "lvsd grew from {before} KiB to {after} KiB after a 100 MiB frame ({sent} bytes sent)"
    );
    // And it still serves.
    ok(&lab, &socket, &["-Ln"]);
    assert!(lvsd.stop().unwrap().success());
}
