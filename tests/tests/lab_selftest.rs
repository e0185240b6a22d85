//! Self-tests of the lab harness: topology, routing, the node program, process handling and
//! cleanup. No lvsd involved (a shell script stands in for it where needed).

// Helpers outside #[test] fns are not covered by clippy's allow-unwrap-in-tests.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lvs_lab::client::{self, HttpClient};
use lvs_lab::node::pattern;
use lvs_lab::{
    Gateway, Lab, LabError, LabSpec, RealServerSpec, real_server_addr, require_root, vip,
    wait_until,
};

const NODE: &str = env!("CARGO_BIN_EXE_lvs-lab-node");

fn sock(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::from((ip, port))
}

/// Every `net:[inode]` still referenced by a process, thread or open fd on the machine.
fn referenced_netns() -> HashSet<u64> {
    let mut found = HashSet::new();
    let parse = |link: PathBuf| -> Option<u64> {
        let target = fs::read_link(link).ok()?;
        let text = target.to_str()?;
        text.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
    };
    let Ok(procs) = fs::read_dir("/proc") else {
        return found;
    };
    for p in procs.flatten() {
        let dir = p.path();
        if !p
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        if let Ok(tasks) = fs::read_dir(dir.join("task")) {
            for t in tasks.flatten() {
                found.extend(parse(t.path().join("ns/net")));
            }
        }
        if let Ok(fds) = fs::read_dir(dir.join("fd")) {
            for fd in fds.flatten() {
                found.extend(parse(fd.path()));
            }
        }
    }
    found
}

fn assert_lab_gone(pids: &[u32], inodes: &[(String, u64)]) {
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists()
                || fs::read_to_string(format!("/proc/{pid}/status"))
                    .map(|s| s.contains("State:\tZ"))
                    .unwrap_or(true),
            "process {pid} of the lab is still alive"
        );
    }
    let referenced = referenced_netns();
    for (host, inode) in inodes {
        assert!(
            !referenced.contains(inode),
            "namespace of {host} (net:[{inode}]) is still referenced"
        );
    }
}

#[test]
fn topology_routing_and_backends() {
    require_root!();
    let vip0 = vip(0);
    let lab = Lab::build(
        LabSpec::new(NODE)
            .nat_real_servers(2)
            .real_server(RealServerSpec::dr([vip0])),
    )
    .unwrap();
    lab.start_backends().unwrap();

    // Addresses and sysctls as documented.
    assert_eq!(lab.client().addr(), Ipv4Addr::new(198, 51, 100, 10));
    assert_eq!(
        lab.director(1).addr_of("int0"),
        Some(Ipv4Addr::new(192, 0, 2, 1))
    );
    assert_eq!(
        lab.director(1).addr_of("ext0"),
        Some(Ipv4Addr::new(203, 0, 113, 2))
    );
    assert_eq!(lab.real_server(3).addr(), Ipv4Addr::new(192, 0, 2, 13));
    assert_eq!(
        lab.director(1).sysctl_read("net.ipv4.ip_forward").unwrap(),
        "1"
    );
    assert_eq!(
        lab.router().sysctl_read("net.ipv4.ip_forward").unwrap(),
        "1"
    );
    assert_eq!(
        lab.client().sysctl_read("net.ipv4.ip_forward").unwrap(),
        "0"
    );
    for host in lab.hosts() {
        for key in ["net/ipv4/conf/all/rp_filter", "net/ipv4/conf/lo/rp_filter"] {
            assert_eq!(host.sysctl_read(key).unwrap(), "0", "{} {key}", host.name());
        }
    }
    assert_eq!(
        lab.director(1)
            .sysctl_read("net/ipv4/conf/ext0/rp_filter")
            .unwrap(),
        "0"
    );
    let rs3 = lab.real_server(3);
    assert_eq!(
        rs3.sysctl_read("net/ipv4/conf/eth0/arp_ignore").unwrap(),
        "1"
    );
    assert_eq!(
        rs3.sysctl_read("net/ipv4/conf/all/arp_announce").unwrap(),
        "2"
    );
    assert!(
        rs3.addresses()
            .unwrap()
            .iter()
            .any(|a| a.ifname == "lo" && a.addr == vip0)
    );
    assert_eq!(
        lab.real_server(1)
            .sysctl_read("net/ipv4/conf/eth0/arp_ignore")
            .unwrap(),
        "0"
    );
    // Namespaces really are distinct.
    let inodes: HashSet<u64> = lab.netns_inodes().iter().map(|(_, i)| *i).collect();
    assert_eq!(inodes.len(), 3 + 1 + 3);

    // Client -> router -> rsK; replies via the director (rs1, rs2) or the router (rs3).
    lab.client().run(|| {
        for k in 1..=3 {
            let rip = real_server_addr(k);
            let (name, body) = client::http_get(sock(rip, 80), "/").unwrap();
            assert_eq!(name, format!("rs{k}"));
            assert_eq!(body, format!("rs{k}\n").into_bytes());
            assert_eq!(client::udp_name(sock(rip, 80)).unwrap(), format!("rs{k}"));
            let echoed =
                client::udp_exchange(sock(rip, 9000), b"ping", Duration::from_secs(2)).unwrap();
            assert_eq!(echoed, b"ping");
        }
        // TCP echo larger than the socket buffers.
        let payload = pattern(3 << 20);
        let echoed = client::tcp_echo(sock(real_server_addr(1), 9000), &payload).unwrap();
        assert!(
            echoed == payload,
            "echo mismatch ({} bytes back)",
            echoed.len()
        );
        // Keep-alive: one connection, many requests; /bytes follows the pattern.
        let mut http = HttpClient::connect(sock(real_server_addr(2), 80)).unwrap();
        let port = http.local_addr().unwrap().port();
        for _ in 0..5 {
            assert_eq!(http.get_named("/").unwrap().0, "rs2");
        }
        let big = http.get("/bytes/100000").unwrap();
        assert_eq!(big.status, 200);
        assert!(big.body == pattern(100_000));
        assert_eq!(http.get("/status/503").unwrap().status, 503);
        assert_eq!(http.get("/nope").unwrap().status, 404);
        assert_eq!(http.request("HEAD", "/").unwrap().body, b"");
        assert_eq!(
            http.local_addr().unwrap().port(),
            port,
            "connection was reused"
        );
        // A status other than 200 is an error for http_get.
        assert!(client::http_get(sock(real_server_addr(2), 80), "/status/500").is_err());
    });

    // Replies of NAT real servers really go through the director: cut int0 and rs1 becomes
    // unreachable while rs3 (gateway: router) still answers.
    lab.director(1).set_link_up("int0", false).unwrap();
    lab.client().run(|| {
        let err = client::http_request(
            sock(real_server_addr(1), 80),
            "GET",
            "/",
            Duration::from_millis(700),
        );
        assert!(matches!(err, Err(LabError::Timeout { .. })), "{err:?}");
        assert_eq!(
            client::http_get(sock(real_server_addr(3), 80), "/")
                .unwrap()
                .0,
            "rs3"
        );
    });
    // Point rs1 at the router instead and it answers again.
    lab.set_gateway(1, Gateway::Router).unwrap();
    lab.client().run(|| {
        assert_eq!(
            client::http_get(sock(real_server_addr(1), 80), "/")
                .unwrap()
                .0,
            "rs1"
        );
    });
    lab.director(1).set_link_up("int0", true).unwrap();
    lab.set_gateway(1, Gateway::Director).unwrap();
}

#[test]
fn dr_real_server_answers_from_the_vip() {
    require_root!();
    let vip0 = vip(0);
    let lab = Lab::build(
        LabSpec::new(NODE)
            .nat_real_servers(1)
            .dr_real_servers(1, &[vip0]),
    )
    .unwrap();
    lab.start_backends().unwrap();
    // Stand-in for a DR director: the router sends VIP traffic to rs2's RIP.
    lab.router()
        .replace_route(vip0, 32, real_server_addr(2))
        .unwrap();
    lab.client().run(|| {
        assert_eq!(client::http_get(sock(vip0, 80), "/").unwrap().0, "rs2");
        // The connected UDP socket only accepts a reply whose source is the VIP.
        assert_eq!(client::udp_name(sock(vip0, 80)).unwrap(), "rs2");
        let echoed = client::udp_exchange(sock(vip0, 9000), b"x", Duration::from_secs(2)).unwrap();
        assert_eq!(echoed, b"x");
    });
    // rs1 gets the VIP later through the helper and serves it the same way.
    lab.add_dr_vip(1, vip0).unwrap();
    lab.set_gateway(1, Gateway::Router).unwrap();
    assert_eq!(
        lab.real_server(1)
            .sysctl_read("net/ipv4/conf/eth0/arp_ignore")
            .unwrap(),
        "1"
    );
    lab.router()
        .replace_route(vip0, 32, real_server_addr(1))
        .unwrap();
    lab.client().run(|| {
        assert_eq!(client::udp_name(sock(vip0, 80)).unwrap(), "rs1");
    });
    lab.remove_dr_vip(1, vip0).unwrap();
    assert!(!lab.real_server(1).has_address(vip0).unwrap());
    // arp_ignore=1: asked on the back network, rs2 does not claim the VIP it holds on lo.
    lab.router().del_route(vip0, 32).unwrap();
    // 203.0.113.10/32 directly on eth2 (no gateway): the router ARPs for the VIP itself.
    lab.router().replace_device_route(vip0, 32, "eth2").unwrap();
    lab.client().run(|| {
        let r = client::udp_exchange(sock(vip0, 80), b"who?", Duration::from_millis(1500));
        assert!(
            r.is_err(),
            "a DR real server answered ARP for the VIP: {r:?}"
        );
    });
}

#[test]
fn drop_kills_processes_and_frees_namespaces() {
    require_root!();
    let lab = Lab::build(LabSpec::new(NODE).nat_real_servers(3)).unwrap();
    lab.start_backends().unwrap();
    // An extra long-running child started through the generic API.
    let mut cmd = lab.real_server(2).command("sleep");
    cmd.arg("300");
    let sleeper = lab.real_server(2).spawn(cmd).unwrap();
    let ns = fs::read_link(format!("/proc/{}/ns/net", sleeper.pid())).unwrap();
    assert_eq!(
        ns.to_string_lossy(),
        format!("net:[{}]", lab.real_server(2).netns().inode()),
        "command() runs inside the host's namespace"
    );
    let mut pids: Vec<u32> = (1..=3).map(|k| lab.backend(k).unwrap().pid()).collect();
    pids.push(sleeper.pid());
    let inodes = lab.netns_inodes();
    assert!(referenced_netns().contains(&inodes[0].1));
    let started = Instant::now();
    drop(lab);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "teardown took {:?}",
        started.elapsed()
    );
    assert!(sleeper.try_wait().unwrap().is_some());
    assert_lab_gone(&pids, &inodes);
}

#[test]
fn a_panicking_test_still_cleans_up() {
    require_root!();
    let (tx, rx) = mpsc::channel();
    let outcome = std::thread::spawn(move || {
        let lab = Lab::build(LabSpec::new(NODE).nat_real_servers(2)).unwrap();
        lab.start_backends().unwrap();
        let pids: Vec<u32> = (1..=2).map(|k| lab.backend(k).unwrap().pid()).collect();
        tx.send((pids, lab.netns_inodes())).unwrap();
        panic!("test failure inside a lab");
    })
    .join();
    assert!(outcome.is_err());
    let (pids, inodes) = rx.recv().unwrap();
    assert_lab_gone(&pids, &inodes);
}

#[test]
fn run_propagates_panics_and_results() {
    require_root!();
    let lab = Lab::build(LabSpec::new(NODE)).unwrap();
    let local = 41;
    assert_eq!(lab.client().run(|| local + 1), 42);
    let inode = lab
        .client()
        .run(|| fs::read_link("/proc/thread-self/ns/net").unwrap());
    assert_eq!(
        inode.to_string_lossy(),
        format!("net:[{}]", lab.client().netns().inode())
    );
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        lab.router().run(|| panic!("boom in router"));
    }));
    let payload = caught.unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom in router"));
    // The lab is still fine afterwards.
    assert!(
        lab.router()
            .has_address(Ipv4Addr::new(203, 0, 113, 1))
            .unwrap()
    );
}

#[test]
fn backend_survives_a_thousand_concurrent_connections() {
    require_root!();
    lvs_lab::raise_nofile_limit().unwrap();
    let lab = Lab::build(LabSpec::new(NODE).nat_real_servers(1)).unwrap();
    lab.start_backends().unwrap();
    let target = sock(real_server_addr(1), 80);
    lab.client().run(|| {
        let mut conns: Vec<HttpClient> = (0..1000)
            .map(|i| {
                HttpClient::connect_timeout(target, Duration::from_secs(10))
                    .unwrap_or_else(|e| panic!("connection {i}: {e}"))
            })
            .collect();
        for (i, c) in conns.iter_mut().enumerate() {
            let (name, _) = c
                .get_named("/")
                .unwrap_or_else(|e| panic!("request {i}: {e}"));
            assert_eq!(name, "rs1");
        }
        // Garbage on one connection closes only that connection.
        let mut raw = client::tcp_connect(target, Duration::from_secs(2)).unwrap();
        use std::io::{Read, Write};
        raw.write_all(b"\x00\x01garbage\r\n\r\n").unwrap();
        let mut reply = String::new();
        let _ = raw.read_to_string(&mut reply);
        assert!(reply.starts_with("HTTP/1.1 400"), "{reply:?}");
        for c in conns.iter_mut().step_by(97) {
            assert_eq!(c.get_named("/").unwrap().0, "rs1");
        }
    });
    assert!(lab.backend(1).unwrap().is_running());
}

#[test]
fn backends_restart_and_stop() {
    require_root!();
    let lab = Lab::build(LabSpec::new(NODE).nat_real_servers(2)).unwrap();
    lab.start_backends().unwrap();
    let first = lab.backend(1).unwrap().pid();
    lab.stop_backend(1).unwrap();
    assert!(lab.backend(1).is_none());
    let target = sock(real_server_addr(1), 80);
    lab.client().run(|| {
        let err = client::http_get(target, "/").unwrap_err();
        assert!(matches!(err, LabError::Io { .. }), "{err}"); // connection refused
    });
    let second = lab.start_backend(1).unwrap();
    assert_ne!(second.pid(), first);
    lab.client()
        .run(|| assert_eq!(client::http_get(target, "/").unwrap().0, "rs1"));
    assert!(lab.start_backend(3).is_err());
    // start_backends() again replaces every running backend.
    lab.start_backends().unwrap();
    assert!(!second.is_running());
    lab.client()
        .run(|| assert_eq!(client::http_get(target, "/").unwrap().0, "rs1"));
}

fn fake_lvsd(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join(format!("fake-lvsd-{}", body.len()));
    fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn lvsd_process_lifecycle_with_a_stand_in() {
    require_root!();
    let dir = std::env::temp_dir().join(format!("lvs-lab-selftest-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let good = fake_lvsd(
        &dir,
        r#"[ "$1" = --config ] || exit 64
cat "$2" >&2
echo "ns $(readlink /proc/self/ns/net)"
echo "address already in use (not the ready line)"
trap 'echo reloaded' HUP
trap 'echo bye; exit 0' TERM
echo "lvsd ready"
while :; do sleep 0.05; done"#,
    );
    let lab = Lab::build(LabSpec::new(NODE).directors(2).lvsd_exe(&good)).unwrap();
    let lvsd = lab.start_lvsd(2, "[daemon]\nname = \"test\"\n").unwrap();
    assert!(
        lvsd.stderr().contains("name = \"test\""),
        "config file passed"
    );
    let inode = lab.director(2).netns().inode();
    assert!(
        lvsd.stdout().contains(&format!("ns net:[{inode}]")),
        "{}",
        lvsd.logs()
    );
    lvsd.reload().unwrap();
    assert!(wait_until(Duration::from_secs(3), || lvsd
        .stdout()
        .contains("reloaded")));
    let status = lvsd.stop().unwrap();
    assert!(status.success(), "{status}");
    assert!(lvsd.stdout().contains("bye"));
    assert!(lab.start_lvsd(3, "").is_err(), "director3 does not exist");
    drop(lab);

    // Exits early: the error carries its stderr.
    let dies = fake_lvsd(&dir, "echo 'config error: no services' >&2; exit 3");
    let lab = Lab::build(LabSpec::new(NODE).lvsd_exe(&dies)).unwrap();
    let err = lab.start_lvsd(1, "").unwrap_err();
    assert!(matches!(err, LabError::EarlyExit { .. }), "{err}");
    assert!(
        err.to_string().contains("config error: no services"),
        "{err}"
    );
    drop(lab);

    // Ignores SIGTERM: stop() SIGKILLs it after the grace period and says so.
    let stubborn = fake_lvsd(
        &dir,
        "trap '' TERM; echo ready; echo still-here >&2; while :; do sleep 0.05; done",
    );
    let lab = Lab::build(LabSpec::new(NODE).lvsd_exe(&stubborn)).unwrap();
    let lvsd = lab.start_lvsd(1, "").unwrap();
    let started = Instant::now();
    let err = lvsd.stop().unwrap_err();
    assert!(matches!(err, LabError::Killed { .. }), "{err}");
    assert!(err.to_string().contains("still-here"), "{err}");
    assert!(started.elapsed() >= Duration::from_secs(10));
    assert!(!lvsd.is_running());
    drop(lab);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn two_labs_side_by_side() {
    require_root!();
    let labs: Vec<Lab> = std::thread::scope(|s| {
        let a = s.spawn(|| Lab::build(LabSpec::new(NODE).nat_real_servers(1)).unwrap());
        let b = s.spawn(|| Lab::build(LabSpec::new(NODE).nat_real_servers(1)).unwrap());
        vec![a.join().unwrap(), b.join().unwrap()]
    });
    for lab in &labs {
        lab.start_backends().unwrap();
    }
    // Same addresses, separate worlds: stopping one lab's backend does not affect the other.
    labs[0].stop_backend(1).unwrap();
    let target = sock(real_server_addr(1), 80);
    assert!(
        labs[0]
            .client()
            .run(|| client::http_get(target, "/"))
            .is_err()
    );
    assert_eq!(
        labs[1]
            .client()
            .run(|| client::http_get(target, "/"))
            .unwrap()
            .0,
        "rs1"
    );
}
