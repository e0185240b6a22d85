//! TUN forwarding end to end: lvsd encapsulates in IPIP, the real servers run
//! `lvsd realserver --mode tun` (the machine has no `ipip` module, so the helper's
//! userspace decapsulator hands the inner packets to the kernel through a TUN device), and
//! the replies go straight from the real servers to the client.
//!
//! Also: path MTU discovery through the tunnel (ICMP "fragmentation needed" from the VIP),
//! a real server behind a router, and `lvsd realserver` leaving a host exactly as it found
//! it, in both modes, with IPv4 and with IPv6 VIPs (the IPv6 transfers are in ipv6.rs).

// Helpers outside #[test] fns are not covered by clippy's allow-unwrap-in-tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use lvs_lab::client;
use lvs_lab::node::{self, ECHO_PORT, HTTP_PORT};
use lvs_lab::{
    Host, Lab, LabSpec, LogFiles, Process, ROUTER_BACK_ADDR, ROUTER_CLIENT_ADDR, RealServerSpec,
    Signal, real_server_addr, require_root, vip,
};

mod common;
use common::*;

/// A lab with `n` bare real servers (gateway = the router, nothing prepared), backends
/// running.
fn bare_lab(n: usize) -> Lab {
    let mut spec = LabSpec::new(NODE);
    for _ in 0..n {
        spec = spec.real_server(RealServerSpec::bare());
    }
    let lab = Lab::build(spec).expect("building the lab");
    lab.start_backends().expect("starting backends");
    lab
}

/// Starts `lvsd realserver --vip VIP --mode MODE` in real servers `1..=n`.
fn helpers(lab: &Lab, n: usize, mode: &str) -> Vec<(Process, LogFiles)> {
    let v = vip(0).to_string();
    (1..=n)
        .map(|k| {
            lab.start_realserver_helper(k, &["--vip", &v, "--mode", mode])
                .unwrap_or_else(|e| panic!("starting the helper in rs{k}: {e}"))
        })
        .collect()
}

/// Stops a helper with SIGTERM; checks it exited 0; returns its stdout.
fn stop_helper(p: &Process, logs: &LogFiles) -> String {
    p.signal(Signal::SIGTERM).expect("SIGTERM");
    let status = p
        .wait_timeout(Duration::from_secs(10))
        .expect("waiting")
        .expect("the helper did not exit within 10 s");
    let out = logs.stdout_text();
    assert!(
        status.success(),
        "helper exited with {status}:\n{out}\n{}",
        logs.stderr_text()
    );
    out
}

/// `[[virtual_server]]` with `forwarding = "tun"` to real servers `(address, port)`.
fn tun_service(vip_port: (Ipv4Addr, u16), proto: &str, servers: &[(Ipv4Addr, u16)]) -> String {
    let mut s = format!(
        "[[virtual_server]]\naddress = \"{}:{}\"\nprotocol = \"{proto}\"\nscheduler = \"rr\"\n\
         forwarding = \"tun\"\n",
        vip_port.0, vip_port.1
    );
    for (a, p) in servers {
        s.push_str(&format!(
            "\n[[virtual_server.real_server]]\naddress = \"{a}:{p}\"\n"
        ));
    }
    s.push('\n');
    s
}

fn three(port: u16) -> Vec<(Ipv4Addr, u16)> {
    (1..=3).map(|k| (real_server_addr(k), port)).collect()
}

/// `ICMP OutDestUnreachs` of the namespace `host` is in (`/proc/net/snmp`).
fn icmp_out_unreachable(host: &Host) -> u64 {
    host.run(|| {
        let text = fs::read_to_string("/proc/thread-self/net/snmp").expect("reading snmp");
        let mut lines = text.lines().filter(|l| l.starts_with("Icmp:"));
        let (names, values) = (lines.next().unwrap(), lines.next().unwrap());
        let i = names
            .split_whitespace()
            .position(|n| n == "OutDestUnreachs")
            .unwrap();
        values.split_whitespace().nth(i).unwrap().parse().unwrap()
    })
}

// ---------------------------------------------------------------------------------------

#[test]
fn tun_transfers_are_byte_identical() {
    require_root!();
    transfers("ring");
}

#[test]
fn tun_transfers_are_byte_identical_with_the_socket_backend() {
    require_root!();
    transfers("socket");
}

/// 1 MiB echoes and downloads, UDP up to 1472 bytes, through TUN with the `[io] backend`.
fn transfers(backend: &str) {
    let _serial = serial();
    let lab = bare_lab(3);
    let hs = helpers(&lab, 3, "tun");
    let v = vip(0);
    let mut config = tun_service((v, ECHO_PORT), "tcp", &three(ECHO_PORT));
    config += &tun_service((v, HTTP_PORT), "tcp", &three(HTTP_PORT));
    config += &tun_service((v, ECHO_PORT), "udp", &three(ECHO_PORT));
    config += &format!("[io]\nbackend = \"{backend}\"\n");
    let unreach_before: Vec<u64> = lab
        .real_servers()
        .iter()
        .map(icmp_out_unreachable)
        .collect();
    let lvsd = lab.start_lvsd(1, &config).expect("starting lvsd");

    lab.client().run(|| {
        let payload: Vec<u8> = (0..1u32 << 20)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for round in 0..3 {
            let back = client::tcp_echo_timeout((v, ECHO_PORT), &payload, Duration::from_secs(30))
                .unwrap_or_else(|e| panic!("echo round {round}: {e}\n{}", lvsd.logs()));
            assert!(
                back == payload,
                "echo round {round}: 1 MiB came back different"
            );
        }
        for _ in 0..3 {
            let (name, body) = client::http_get((v, HTTP_PORT), "/bytes/1048576")
                .unwrap_or_else(|e| panic!("download: {e}\n{}", lvsd.logs()));
            assert!(
                body == node::pattern(1 << 20),
                "download from {name} differs"
            );
        }
    });
    // UDP up to the full 1500-byte packet. Without DF (the client's route to the VIP has a
    // locked MTU, so the kernel sends no DF): the director fragments the outer packet
    // above 1452 bytes of payload and the real server's kernel reassembles it.
    ip(
        lab.client(),
        &[
            "route",
            "replace",
            &format!("{v}/32"),
            "via",
            &ROUTER_CLIENT_ADDR.to_string(),
            "mtu",
            "lock",
            "1500",
        ],
    );
    lab.client().run(|| {
        for size in [1usize, 18, 512, 1000, 1452, 1453, 1471, 1472] {
            let data: Vec<u8> = (0..size).map(|i| (i * 7 + size) as u8).collect();
            let back = client::udp_exchange((v, ECHO_PORT), &data, Duration::from_secs(3))
                .unwrap_or_else(|e| panic!("udp {size} bytes: {e}\n{}", lvsd.logs()));
            assert_eq!(back, data, "udp {size} bytes");
        }
    });
    let stats = stop_and_check(&lvsd);
    assert!(
        stats.contains("UDP 203.0.113.10:9000 rr conns=8"),
        "{stats}"
    );
    assert!(stats.contains(" Tunnel "), "the Forward word: {stats}");
    // The real servers' kernels answered no IPIP datagram with "protocol unreachable".
    let unreach_after: Vec<u64> = lab
        .real_servers()
        .iter()
        .map(icmp_out_unreachable)
        .collect();
    assert_eq!(unreach_before, unreach_after);
    for (p, logs) in &hs {
        let out = stop_helper(p, logs);
        let line = out
            .lines()
            .find(|l| l.contains("decapsulator delivered="))
            .unwrap_or_else(|| panic!("no decapsulator stats:\n{out}"));
        assert!(counter(line, "delivered") > 0, "{line}");
        assert_eq!(counter(line, "drop.not_vip"), 0, "{line}");
        assert_eq!(counter(line, "drop.not_local"), 0, "{line}");
    }
}

#[test]
fn tun_rr_lands_100_100_100() {
    require_root!();
    let _serial = serial();
    let lab = bare_lab(3);
    let _hs = helpers(&lab, 3, "tun");
    let to = SocketAddr::from((vip(0), HTTP_PORT));
    let lvsd = lab
        .start_lvsd(
            1,
            &tun_service((vip(0), HTTP_PORT), "tcp", &three(HTTP_PORT)),
        )
        .expect("starting lvsd");
    let names = sequential_names(lab.client(), to, 300);
    assert_eq!(&names[..3], ["rs3", "rs2", "rs1"], "{}", lvsd.logs());
    let got = tally(names);
    let want: BTreeMap<String, usize> = [("rs1", 100), ("rs2", 100), ("rs3", 100)]
        .iter()
        .map(|(n, c)| (n.to_string(), *c))
        .collect();
    assert_eq!(got, want, "{}", lvsd.logs());
    // lvsctl lists the servers as ipvsadm -Ln lists tunnelled ones (the counts may still
    // move as the last FIN arrives, so only the columns before them are compared).
    let exe = lvs_lab::lvsctl_binary().expect("building lvsctl");
    let out = lab
        .director(1)
        .command(exe)
        .arg("--socket")
        .arg(lvsd.control_socket())
        .arg("-Ln")
        .output()
        .expect("running lvsctl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.contains("  -> 192.0.2.11:80                Tunnel  1      "),
        "{text}"
    );
    let stats = stop_and_check(&lvsd);
    assert!(stats.contains("rr conns=300"), "{stats}");
}

#[test]
fn tun_path_mtu_discovery_lowers_the_clients_mtu() {
    require_root!();
    let _serial = serial();
    let lab = bare_lab(1);
    // Strict reverse-path filtering, as many distributions set it: the helper turns off
    // `all` (eth0 keeps its own strict setting) and the TUN device's.
    for key in [
        "net/ipv4/conf/all/rp_filter",
        "net/ipv4/conf/eth0/rp_filter",
    ] {
        lab.real_server(1)
            .sysctl_write(key, "1")
            .expect("rp_filter");
    }
    let hs = helpers(&lab, 1, "tun");
    let v = vip(0);
    let lvsd = lab
        .start_lvsd(
            1,
            &tun_service((v, ECHO_PORT), "tcp", &[(real_server_addr(1), ECHO_PORT)]),
        )
        .expect("starting lvsd");
    let before = ip(lab.client(), &["-4", "route", "get", &v.to_string()]);
    assert!(!before.contains("mtu"), "no PMTU entry yet: {before}");
    // Full-sized DF segments (MSS 1460): each is 20 bytes too big for the tunnel.
    let payload = node::pattern(1 << 20);
    lab.client().run(|| {
        let back = client::tcp_echo_timeout((v, ECHO_PORT), &payload, Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("echo: {e}\n{}", lvsd.logs()));
        assert!(back == payload, "1 MiB came back different");
    });
    let after = ip(lab.client(), &["-4", "route", "get", &v.to_string()]);
    assert!(
        after.contains("mtu 1480"),
        "the client's route cache: {after}"
    );
    let stats = stop_and_check(&lvsd);
    assert!(counter(&stats, "drop.need_frag") >= 1, "{stats}");
    for (p, logs) in &hs {
        stop_helper(p, logs);
    }
}

#[test]
fn tun_real_server_behind_a_router() {
    require_root!();
    let _serial = serial();
    let lab = bare_lab(1);
    // rs1 also holds 192.0.2.200/32, reached from the director only through the router.
    let far = Ipv4Addr::new(192, 0, 2, 200);
    lab.real_server(1)
        .add_address("lo", far, 32)
        .expect("far address");
    lab.director(1)
        .replace_route(far, 32, ROUTER_BACK_ADDR)
        .expect("director route");
    lab.router()
        .replace_route(far, 32, real_server_addr(1))
        .expect("router route");
    let hs = helpers(&lab, 1, "tun");
    let v = vip(0);
    let lvsd = lab
        .start_lvsd(1, &tun_service((v, HTTP_PORT), "tcp", &[(far, HTTP_PORT)]))
        .expect("starting lvsd");
    let names = sequential_names(lab.client(), SocketAddr::from((v, HTTP_PORT)), 20);
    assert!(names.iter().all(|n| n == "rs1"), "{names:?}");
    lab.client().run(|| {
        let (_, body) = client::http_get((v, HTTP_PORT), "/bytes/1048576")
            .unwrap_or_else(|e| panic!("download: {e}\n{}", lvsd.logs()));
        assert!(body == node::pattern(1 << 20));
    });
    let stats = stop_and_check(&lvsd);
    assert!(stats.contains("192.0.2.200:80 Tunnel"), "{stats}");
    for (p, logs) in &hs {
        stop_helper(p, logs);
    }
}

// ---------------------------------------------------------------------------------------
// The helper leaves the host as it found it.

/// Everything of a namespace the helper could touch: links, IPv4 and IPv6 addresses,
/// IPv4 and IPv6 routes (without their use counters) and every `net.ipv4.conf.*` and
/// `net.ipv6.conf.*` sysctl.
fn host_snapshot(host: &Host) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let addrs = host.addresses().expect("addresses");
    for a in addrs {
        m.insert(
            format!("addr {} {}/{}", a.ifname, a.addr, a.prefix),
            String::new(),
        );
    }
    for a in host.addresses6().expect("IPv6 addresses") {
        m.insert(
            format!("addr6 {} {}/{}", a.ifname, a.addr, a.prefix),
            String::new(),
        );
    }
    host.run(|| {
        let dev = fs::read_to_string("/proc/thread-self/net/dev").expect("net/dev");
        for line in dev.lines().skip(2) {
            if let Some((name, _)) = line.split_once(':') {
                m.insert(format!("link {}", name.trim()), String::new());
            }
        }
        let routes = fs::read_to_string("/proc/thread-self/net/route").expect("net/route");
        m.insert("routes".into(), routes);
        // dst dst_len src src_len next_hop metric refcnt use flags dev: the reference and use
        // counters move with traffic; cached (RTF_CACHE) entries come and go with it.
        let routes6 = fs::read_to_string("/proc/thread-self/net/ipv6_route").unwrap_or_default();
        for line in routes6.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || u32::from_str_radix(f[8], 16).unwrap_or(0) & 0x0100_0000 != 0 {
                continue;
            }
            m.insert(
                format!(
                    "route6 {} {} {} {} {} {} {}",
                    f[0], f[1], f[2], f[3], f[4], f[8], f[9]
                ),
                String::new(),
            );
        }
        for conf in ["/proc/sys/net/ipv4/conf", "/proc/sys/net/ipv6/conf"] {
            let Ok(dirs) = fs::read_dir(conf) else {
                continue;
            };
            for entry in dirs {
                let dir = entry.expect("entry").path();
                for f in fs::read_dir(&dir).expect("conf entries") {
                    let f = f.expect("entry").path();
                    if let Ok(v) = fs::read_to_string(&f) {
                        m.insert(f.display().to_string(), v);
                    }
                }
            }
        }
    });
    m
}

fn leaves_host_as_found(mode: &str) {
    let _serial = serial();
    let lab = bare_lab(1);
    let rs = lab.real_server(1);
    if mode == "tun" {
        // Strict reverse-path filtering, to be relaxed and then restored.
        rs.sysctl_write("net/ipv4/conf/all/rp_filter", "1")
            .expect("rp_filter");
    }
    let before = host_snapshot(rs);
    // --check changes nothing and names the changes.
    let exe = lvs_lab::lvsd_binary().expect("lvsd binary");
    let out = rs
        .command(&exe)
        .args([
            "realserver",
            "--vip",
            &vip(0).to_string(),
            "--mode",
            mode,
            "--check",
        ])
        .output()
        .expect("running --check");
    assert!(out.status.success(), "{out:?}");
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(plan.contains("would add 203.0.113.10/32 to lo"), "{plan}");
    assert!(
        plan.contains("would set net.ipv4.conf.all.arp_ignore 0 -> 1"),
        "{plan}"
    );
    assert_eq!(host_snapshot(rs), before, "--check changed the host");

    let (p, logs) = lab
        .start_realserver_helper(1, &["--vip", &vip(0).to_string(), "--mode", mode])
        .expect("starting the helper");
    let during = host_snapshot(rs);
    assert!(rs.has_address(vip(0)).expect("addresses"), "VIP on lo");
    assert_eq!(
        rs.sysctl_read("net/ipv4/conf/all/arp_ignore")
            .unwrap()
            .trim(),
        "1"
    );
    assert_eq!(
        rs.sysctl_read("net/ipv4/conf/lo/arp_announce")
            .unwrap()
            .trim(),
        "2"
    );
    let tun_link = during.keys().any(|k| k.starts_with("link lvstun"));
    assert_eq!(tun_link, mode == "tun", "TUN device only in tun mode");
    if mode == "tun" {
        assert_eq!(
            rs.sysctl_read("net/ipv4/conf/all/rp_filter")
                .unwrap()
                .trim(),
            "0",
            "all.rp_filter no longer overrides the TUN device's"
        );
    }
    let out = stop_helper(&p, &logs);
    assert!(out.contains("removed 203.0.113.10/32 from lo"), "{out}");
    assert!(
        out.contains("restored net.ipv4.conf.all.arp_ignore 1 -> 0"),
        "{out}"
    );
    let after = host_snapshot(rs);
    let diff: Vec<_> = before
        .iter()
        .filter(|(k, v)| after.get(*k) != Some(v))
        .map(|(k, _)| k.clone())
        .chain(after.keys().filter(|k| !before.contains_key(*k)).cloned())
        .collect();
    assert!(diff.is_empty(), "changed by the helper: {diff:?}\n{out}");
}

#[test]
fn realserver_helper_dr_leaves_the_host_as_found() {
    require_root!();
    leaves_host_as_found("dr");
}

#[test]
fn realserver_helper_tun_leaves_the_host_as_found() {
    require_root!();
    leaves_host_as_found("tun");
}

/// The IPv6 side of the same promise: in an IPv6 lab, `--vip 2001:db8:f::10` (and with
/// an IPv4 VIP next to it) in TUN and DR mode adds the VIP as /128 (no ARP sysctl for an
/// IPv6-only helper), creates the TUN device in TUN mode, and leaves links, addresses of
/// both families, both routing tables and every IPv4 and IPv6 sysctl exactly as found.
fn leaves_host_as_found6(mode: &str, vips: &[IpAddr]) {
    let _serial = serial();
    let lab = Lab::build(
        LabSpec::new(NODE)
            .ipv6(true)
            .real_server(RealServerSpec::bare()),
    )
    .expect("building the lab");
    lab.start_backends().expect("starting backends");
    let rs = lab.real_server(1);
    let before = host_snapshot(rs);
    let words: Vec<String> = vips.iter().map(ToString::to_string).collect();
    let mut args: Vec<&str> = Vec::new();
    for w in &words {
        args.extend(["--vip", w.as_str()]);
    }
    args.extend(["--mode", mode]);
    let exe = lvs_lab::lvsd_binary().expect("lvsd binary");
    let out = rs
        .command(&exe)
        .arg("realserver")
        .args(&args)
        .arg("--check")
        .output()
        .expect("running --check");
    assert!(out.status.success(), "{out:?}");
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(
        plan.contains("would add 2001:db8:f::10/128 to lo"),
        "{plan}"
    );
    let has_v4 = vips.iter().any(IpAddr::is_ipv4);
    assert_eq!(plan.contains("arp_ignore"), has_v4, "{plan}");
    assert_eq!(host_snapshot(rs), before, "--check changed the host");

    let (p, logs) = lab
        .start_realserver_helper(1, &args)
        .expect("starting the helper");
    let during = host_snapshot(rs);
    let vip6 = lvs_lab::vip6(0);
    assert!(rs.has_address(vip6).expect("addresses"), "VIP6 on lo");
    assert!(
        rs.addresses6()
            .unwrap()
            .iter()
            .any(|a| a.addr == vip6 && a.prefix == 128 && a.ifname == "lo"),
        "VIP6 as /128 on lo"
    );
    let tun_link = during.keys().any(|k| k.starts_with("link lvstun"));
    assert_eq!(tun_link, mode == "tun", "TUN device only in tun mode");
    let out = stop_helper(&p, &logs);
    assert!(out.contains("removed 2001:db8:f::10/128 from lo"), "{out}");
    let after = host_snapshot(rs);
    let diff: Vec<_> = before
        .iter()
        .filter(|(k, v)| after.get(*k) != Some(v))
        .map(|(k, _)| k.clone())
        .chain(after.keys().filter(|k| !before.contains_key(*k)).cloned())
        .collect();
    assert!(diff.is_empty(), "changed by the helper: {diff:?}\n{out}");
}

#[test]
fn realserver_helper_dr6_leaves_the_host_as_found() {
    require_root!();
    leaves_host_as_found6("dr", &[IpAddr::V6(lvs_lab::vip6(0))]);
}

#[test]
fn realserver_helper_tun6_leaves_the_host_as_found() {
    require_root!();
    leaves_host_as_found6("tun", &[IpAddr::V6(lvs_lab::vip6(0))]);
}

#[test]
fn realserver_helper_tun_dual_stack_leaves_the_host_as_found() {
    require_root!();
    leaves_host_as_found6("tun", &[IpAddr::V4(vip(0)), IpAddr::V6(lvs_lab::vip6(0))]);
}
