//! End-to-end forwarding through a real lvsd in a namespace lab, for NAT and for DR.
//!
//! Every test builds its own lab (client -> router -> director -> rs1..rs3, see
//! docs/architecture.md), starts the real backends and the real `lvsd` binary, sends real
//! traffic from the client namespace and checks what arrived. When lvsd stops, it prints
//! its counters; every test checks that they add up (received = forwarded + dropped +
//! passed) and that lvsd exited 0.
//!
//! The tests take a process-wide lock and run one at a time: they are CPU-bound on a small
//! machine and would otherwise only slow each other down.

// Helpers outside #[test] fns are not covered by clippy's allow-unwrap-in-tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lvs_lab::client::{self, HttpClient};
use lvs_lab::node::{self, ECHO_PORT, HTTP_PORT};
use lvs_lab::{Lab, LvsdProcess, require_root, vip, wait_until};

mod common;
use common::*;

/// One test per forwarding method for a scenario `fn(Mode)`.
macro_rules! nat_and_dr {
    ($scenario:ident, $nat:ident, $dr:ident) => {
        #[test]
        fn $nat() {
            require_root!();
            $scenario(Mode::Nat);
        }

        #[test]
        fn $dr() {
            require_root!();
            $scenario(Mode::Dr);
        }
    };
}

/// One `[[virtual_server]]` block: `servers` are (real server index, port, weight).
fn service(
    vip_port: (Ipv4Addr, u16),
    proto: &str,
    scheduler: &str,
    mode: Mode,
    lab: &Lab,
    servers: &[(usize, u16, u32)],
) -> String {
    let mut s = format!(
        "[[virtual_server]]\naddress = \"{}:{}\"\nprotocol = \"{proto}\"\nscheduler = \"{scheduler}\"\nforwarding = \"{}\"\n",
        vip_port.0,
        vip_port.1,
        mode.word()
    );
    for &(k, port, weight) in servers {
        s.push_str(&format!(
            "\n[[virtual_server.real_server]]\naddress = \"{}:{port}\"\nweight = {weight}\n",
            lab.real_server(k).addr()
        ));
    }
    s.push('\n');
    s
}

fn all_three(port: u16, weights: [u32; 3]) -> Vec<(usize, u16, u32)> {
    (1..=3).map(|k| (k, port, weights[k - 1])).collect()
}

fn expect_counts(got: &BTreeMap<String, usize>, want: &[(&str, usize)], lvsd: &LvsdProcess) {
    let want: BTreeMap<String, usize> = want.iter().map(|(n, c)| (n.to_string(), *c)).collect();
    assert_eq!(got, &want, "lvsd logs:\n{}", lvsd.logs());
}

// ---------------------------------------------------------------------------------------
// Byte-identical transfers.

fn transfer(mode: Mode) {
    let _serial = serial();
    let lab = lab(mode, 3);
    let v = vip(0);
    let mut config = service(
        (v, ECHO_PORT),
        "tcp",
        "rr",
        mode,
        &lab,
        &all_three(ECHO_PORT, [1, 1, 1]),
    );
    config += &service(
        (v, HTTP_PORT),
        "tcp",
        "rr",
        mode,
        &lab,
        &all_three(HTTP_PORT, [1, 1, 1]),
    );
    config += &service(
        (v, ECHO_PORT),
        "udp",
        "rr",
        mode,
        &lab,
        &all_three(ECHO_PORT, [1, 1, 1]),
    );
    if mode == Mode::Nat {
        // Port translation: VIP:8080 -> RIP:80.
        config += &service(
            (v, 8080),
            "tcp",
            "rr",
            mode,
            &lab,
            &all_three(HTTP_PORT, [1, 1, 1]),
        );
    }
    let lvsd = lab.start_lvsd(1, &config).expect("starting lvsd");

    lab.client().run(|| {
        // 1 MiB up and back through the echo service (both directions through lvsd in NAT).
        let payload: Vec<u8> = (0..1u32 << 20)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for round in 0..3 {
            let back = client::tcp_echo((v, ECHO_PORT), &payload)
                .unwrap_or_else(|e| panic!("echo round {round}: {e}\n{}", lvsd.logs()));
            assert!(
                back == payload,
                "echo round {round}: 1 MiB came back different"
            );
        }
        // 1 MiB download from each server.
        for _ in 0..3 {
            let (name, body) = client::http_get((v, HTTP_PORT), "/bytes/1048576")
                .unwrap_or_else(|e| panic!("download: {e}\n{}", lvsd.logs()));
            assert_eq!(body.len(), 1 << 20, "download from {name}");
            assert!(
                body == node::pattern(1 << 20),
                "download from {name} differs"
            );
        }
        // UDP datagrams of several sizes, byte-identical back.
        for size in [1usize, 18, 512, 1000, 1472] {
            let data: Vec<u8> = (0..size).map(|i| (i * 7 + size) as u8).collect();
            let back = client::udp_exchange((v, ECHO_PORT), &data, Duration::from_secs(3))
                .unwrap_or_else(|e| panic!("udp {size} bytes: {e}\n{}", lvsd.logs()));
            assert_eq!(back, data, "udp {size} bytes");
        }
        if mode == Mode::Nat {
            let (name, body) = client::http_get((v, 8080), "/")
                .unwrap_or_else(|e| panic!("port-translated request: {e}\n{}", lvsd.logs()));
            assert_eq!(String::from_utf8_lossy(&body), format!("{name}\n"));
        }
    });
    let stats = stop_and_check(&lvsd);
    // The UDP service scheduled 5 datagrams as 5 connections (different source ports).
    assert!(
        stats.contains("UDP 203.0.113.10:9000 rr conns=5"),
        "{stats}"
    );
}

nat_and_dr!(
    transfer,
    nat_transfers_are_byte_identical,
    dr_transfers_are_byte_identical
);

// ---------------------------------------------------------------------------------------
// Scheduling through the real data path.

fn round_robin(mode: Mode) {
    let _serial = serial();
    let lab = lab(mode, 3);
    let to = SocketAddr::from((vip(0), HTTP_PORT));
    let config = service(
        (vip(0), HTTP_PORT),
        "tcp",
        "rr",
        mode,
        &lab,
        &all_three(HTTP_PORT, [1, 1, 1]),
    );
    let lvsd = lab.start_lvsd(1, &config).expect("starting lvsd");
    let names = sequential_names(lab.client(), to, 300);
    // keepalived adds each real server at the head of the IPVS list, so the list order is
    // rs3, rs2, rs1 and rr walks it in that order.
    assert_eq!(
        &names[..6],
        ["rs3", "rs2", "rs1", "rs3", "rs2", "rs1"],
        "{}",
        lvsd.logs()
    );
    expect_counts(
        &tally(names),
        &[("rs1", 100), ("rs2", 100), ("rs3", 100)],
        &lvsd,
    );
    let stats = stop_and_check(&lvsd);
    assert!(stats.contains("rr conns=300"), "{stats}");
}

nat_and_dr!(
    round_robin,
    nat_rr_lands_100_100_100,
    dr_rr_lands_100_100_100
);

fn weighted_round_robin(mode: Mode) {
    let _serial = serial();
    let lab = lab(mode, 3);
    let to = SocketAddr::from((vip(0), HTTP_PORT));
    let config = service(
        (vip(0), HTTP_PORT),
        "tcp",
        "wrr",
        mode,
        &lab,
        &all_three(HTTP_PORT, [3, 2, 1]),
    );
    let lvsd = lab.start_lvsd(1, &config).expect("starting lvsd");
    let names = sequential_names(lab.client(), to, 600);
    // List order rs3(1), rs2(2), rs1(3): cw=3 picks rs1; cw=2 picks rs2, rs1; cw=1 picks
    // rs3, rs2, rs1 — one cycle of six is rs1 rs2 rs1 rs3 rs2 rs1.
    assert_eq!(
        &names[..6],
        ["rs1", "rs2", "rs1", "rs3", "rs2", "rs1"],
        "{}",
        lvsd.logs()
    );
    expect_counts(
        &tally(names),
        &[("rs1", 300), ("rs2", 200), ("rs3", 100)],
        &lvsd,
    );
    stop_and_check(&lvsd);
}

nat_and_dr!(
    weighted_round_robin,
    nat_wrr_lands_3_2_1,
    dr_wrr_lands_3_2_1
);

fn least_connection(mode: Mode) {
    let _serial = serial();
    let lab = lab(mode, 3);
    let to = SocketAddr::from((vip(0), HTTP_PORT));
    let config = service(
        (vip(0), HTTP_PORT),
        "tcp",
        "wlc",
        mode,
        &lab,
        &all_three(HTTP_PORT, [1, 1, 1]),
    );
    let lvsd = lab.start_lvsd(1, &config).expect("starting lvsd");
    lab.client().run(|| {
        // 60 connections opened one after another and all held open: each one is
        // ESTABLISHED (active) before the next is scheduled, so wlc spreads them evenly.
        let mut held = Vec::new();
        let mut names = Vec::new();
        for i in 0..60 {
            let mut c = HttpClient::connect(to).unwrap_or_else(|e| panic!("connection {i}: {e}"));
            let (name, _) = c
                .get_named("/")
                .unwrap_or_else(|e| panic!("request {i}: {e}"));
            names.push(name);
            held.push(c);
        }
        expect_counts(
            &tally(names),
            &[("rs1", 20), ("rs2", 20), ("rs3", 20)],
            &lvsd,
        );
        // Held connections keep working and stay on their server.
        for (i, c) in held.iter_mut().enumerate() {
            c.get_named("/")
                .unwrap_or_else(|e| panic!("second request on {i}: {e}"));
        }
    });
    let stats = stop_and_check(&lvsd);
    assert!(stats.contains("wlc conns=60"), "{stats}");
}

nat_and_dr!(
    least_connection,
    nat_wlc_balances_held_connections,
    dr_wlc_balances_held_connections
);

// ---------------------------------------------------------------------------------------
// Weight 0 while connections are open (via SIGHUP reload).

fn quiesce(mode: Mode) {
    let _serial = serial();
    let lab = lab(mode, 3);
    let to = SocketAddr::from((vip(0), HTTP_PORT));
    let config = service(
        (vip(0), HTTP_PORT),
        "tcp",
        "rr",
        mode,
        &lab,
        &all_three(HTTP_PORT, [1, 1, 1]),
    );
    let lvsd = lab.start_lvsd(1, &config).expect("starting lvsd");
    let mut held: Vec<(String, HttpClient)> = lab.client().run(|| {
        (0..6)
            .map(|_| {
                let mut c = HttpClient::connect(to).unwrap();
                let (name, _) = c.get_named("/").unwrap();
                (name, c)
            })
            .collect()
    });
    assert_eq!(held.iter().filter(|(n, _)| n == "rs2").count(), 2);

    let quiesced = service(
        (vip(0), HTTP_PORT),
        "tcp",
        "rr",
        mode,
        &lab,
        &all_three(HTTP_PORT, [1, 0, 1]),
    );
    lvsd.write_config(&quiesced).unwrap();
    lvsd.reload().unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || lvsd
            .stderr()
            .contains("reloaded")),
        "lvsd did not reload:\n{}",
        lvsd.logs()
    );

    lab.client().run(|| {
        // Open connections to rs2 go on working, on rs2.
        for (name, c) in held.iter_mut() {
            for _ in 0..3 {
                let (again, _) = c.get_named("/").unwrap_or_else(|e| {
                    panic!(
                        "held connection to {name} broke after weight 0: {e}\n{}",
                        lvsd.logs()
                    )
                });
                assert_eq!(&again, name);
            }
        }
    });
    // New connections never go to rs2.
    let names = sequential_names(lab.client(), to, 30);
    let counts = tally(names);
    assert_eq!(counts.get("rs2"), None, "{counts:?}");
    assert_eq!(counts.values().sum::<usize>(), 30);
    drop(held);
    let stats = stop_and_check(&lvsd);
    assert!(stats.contains(" weight=0 "), "{stats}");
}

nat_and_dr!(
    quiesce,
    nat_weight_zero_keeps_open_connections,
    dr_weight_zero_keeps_open_connections
);

// ---------------------------------------------------------------------------------------
// 1,000 concurrent connections.

fn thousand(mode: Mode) {
    let _serial = serial();
    let lab = lab(mode, 3);
    let to = SocketAddr::from((vip(0), HTTP_PORT));
    let config = service(
        (vip(0), HTTP_PORT),
        "tcp",
        "wlc",
        mode,
        &lab,
        &all_three(HTTP_PORT, [1, 1, 1]),
    );
    let lvsd = lab.start_lvsd(1, &config).expect("starting lvsd");
    lvs_lab::raise_nofile_limit().unwrap();
    const THREADS: usize = 20;
    const PER_THREAD: usize = 50;
    let names: Vec<String> = lab.client().run(|| {
        let barrier = std::sync::Barrier::new(THREADS);
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..THREADS)
                .map(|t| {
                    let barrier = &barrier;
                    s.spawn(move || {
                        // Open all of this thread's connections, wait until every thread has
                        // its connections open (so all 1,000 are open at once), then use them.
                        let mut conns: Vec<HttpClient> = (0..PER_THREAD)
                            .map(|i| {
                                HttpClient::connect_timeout(to, Duration::from_secs(10))
                                    .unwrap_or_else(|e| panic!("thread {t} connection {i}: {e}"))
                            })
                            .collect();
                        barrier.wait();
                        conns
                            .iter_mut()
                            .enumerate()
                            .map(|(i, c)| {
                                c.get_named("/")
                                    .unwrap_or_else(|e| panic!("thread {t} request {i}: {e}"))
                                    .0
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap())
                .collect()
        })
    });
    assert_eq!(names.len(), THREADS * PER_THREAD);
    let counts = tally(names);
    assert_eq!(counts.len(), 3, "{counts:?}");
    let stats = stop_and_check(&lvsd);
    assert!(stats.contains("wlc conns=1000"), "{stats}");
}

nat_and_dr!(
    thousand,
    nat_thousand_concurrent_connections_complete,
    dr_thousand_concurrent_connections_complete
);

// ---------------------------------------------------------------------------------------
// The director's own stack stays silent, and lvsd leaves nothing behind.

/// tshark on the director's `ext0`, collecting the source of every TCP RST it sees.
///
/// tshark prints "Capturing on" before its capture really runs, so both ends are
/// synchronised with a canary: the client connects to a closed port of the director's own
/// address, the director's kernel answers with a RST, and once that RST shows up in the
/// output, everything before it has been captured.
struct RstWatch {
    process: lvs_lab::Process,
    lines: Arc<Mutex<Vec<String>>>,
}

impl RstWatch {
    fn start(lab: &Lab) -> RstWatch {
        let mut cmd = lab.director(1).command("tshark");
        cmd.args([
            "-i",
            "ext0",
            "-n",
            "-l",
            "-f",
            "tcp[tcpflags] & tcp-rst != 0",
        ])
        .args([
            "-T",
            "fields",
            "-e",
            "ip.src",
            "-e",
            "tcp.srcport",
            "-e",
            "ip.dst",
            "-e",
            "tcp.dstport",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
        let process = lab
            .director(1)
            .spawn_named("tshark", cmd)
            .expect("tshark is needed for this test (apt-get install tshark)");
        let stdout = process.take_stdout().expect("tshark stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                sink.lock().unwrap().push(line);
            }
        });
        let watch = RstWatch { process, lines };
        watch.canary(lab, 1);
        watch
    }

    /// Provokes a RST from the director's own address (port `port`) until tshark shows it.
    fn canary(&self, lab: &Lab, port: u16) {
        let director = lvs_lab::director_ext_addr(1);
        let seen = wait_until(Duration::from_secs(20), || {
            lab.client().run(|| {
                let _ = client::tcp_connect((director, port), Duration::from_millis(300));
            });
            std::thread::sleep(Duration::from_millis(100));
            let needle = format!("{director}\t{port}\t");
            self.lines
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.starts_with(&needle))
        });
        assert!(
            seen,
            "tshark never showed the canary RST from {director}:{port}"
        );
    }

    /// Stops the capture and returns the RSTs whose source was `addr`.
    fn finish(self, lab: &Lab, addr: Ipv4Addr) -> Vec<String> {
        self.canary(lab, 2);
        let _ = self.process.kill();
        let prefix = format!("{addr}\t");
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with(&prefix))
            .cloned()
            .collect()
    }
}

fn no_rst(mode: Mode) {
    let _serial = serial();
    let lab = lab(mode, 3);
    let v = vip(0);
    let mut config = service(
        (v, HTTP_PORT),
        "tcp",
        "rr",
        mode,
        &lab,
        &all_three(HTTP_PORT, [1, 1, 1]),
    );
    // A service whose only real server is quiesced: lvsd drops its SYNs, and the kernel
    // must not answer them either (without the guard it would send RST: the VIP is local).
    config += &service((v, 81), "tcp", "rr", mode, &lab, &[(1, 81, 0)]);
    let lvsd = lab.start_lvsd(1, &config).expect("starting lvsd");
    let watch = RstWatch::start(&lab);

    let names = sequential_names(lab.client(), SocketAddr::from((v, HTTP_PORT)), 30);
    assert_eq!(names.len(), 30);
    let attempts: Vec<String> = lab.client().run(|| {
        (0..3)
            .map(
                |_| match client::tcp_connect((v, 81), Duration::from_millis(1500)) {
                    Ok(_) => "connected".to_string(),
                    Err(lvs_lab::LabError::Timeout { .. }) => "timeout".to_string(),
                    Err(lvs_lab::LabError::Io { ref error, .. })
                        if matches!(error.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) =>
                    {
                        "timeout".to_string()
                    }
                    Err(e) => e.to_string(),
                },
            )
            .collect()
    });
    let from_vip = watch.finish(&lab, v);
    assert!(
        from_vip.is_empty(),
        "RSTs from the VIP on the wire: {from_vip:?}"
    );
    // A service with no usable real server neither opens nor refuses: the SYN is dropped.
    assert_eq!(
        attempts,
        ["timeout", "timeout", "timeout"],
        "{}",
        lvsd.logs()
    );
    let stats = stop_and_check(&lvsd);
    // Each attempt's SYN (and its retransmissions) was dropped for want of a destination.
    let dropped: u64 = stats
        .split_whitespace()
        .find_map(|w| w.strip_prefix("drop.no_destination="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(dropped >= 3, "{stats}");
}

nat_and_dr!(
    no_rst,
    nat_director_never_sends_rst_for_vip,
    dr_director_never_sends_rst_for_vip
);

fn nft_tables(lab: &Lab) -> String {
    let out = lab
        .director(1)
        .command("nft")
        .args(["list", "tables"])
        .output()
        .expect("nft is needed for this test (apt-get install nftables)");
    assert!(out.status.success(), "nft list tables failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn nothing_remains_after_lvsd_exits() {
    require_root!();
    let _serial = serial();
    let lab = lab(Mode::Nat, 3);
    let config = service(
        (vip(0), HTTP_PORT),
        "tcp",
        "rr",
        Mode::Nat,
        &lab,
        &all_three(HTTP_PORT, [1, 1, 1]),
    );
    let director = lab.director(1);
    assert!(!director.has_address(vip(0)).unwrap());

    let lvsd = lab.start_lvsd(1, &config).expect("starting lvsd");
    assert!(
        director.has_address(vip(0)).unwrap(),
        "lvsd did not add the VIP"
    );
    assert!(
        nft_tables(&lab).contains("table netdev lvsd"),
        "no guard table"
    );
    sequential_names(lab.client(), SocketAddr::from((vip(0), HTTP_PORT)), 6);
    let pid = lvsd.pid();
    stop_and_check(&lvsd);
    assert!(!director.has_address(vip(0)).unwrap(), "VIP left behind");
    assert_eq!(nft_tables(&lab).trim(), "", "nft tables left behind");
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "lvsd process left behind"
    );

    // Even SIGKILL leaves no guard behind: the kernel owns the table to lvsd's socket.
    let lvsd = lab.start_lvsd(1, &config).expect("starting lvsd again");
    assert!(nft_tables(&lab).contains("table netdev lvsd"));
    let _ = lvsd.process().kill();
    assert!(
        wait_until(Duration::from_secs(5), || nft_tables(&lab)
            .trim()
            .is_empty()),
        "guard table survived SIGKILL"
    );
}

#[test]
fn bad_config_installs_nothing() {
    require_root!();
    let _serial = serial();
    let lab = lab(Mode::Nat, 1);
    let config = format!(
        "[[virtual_server]]\naddress = \"{}:80\"\n\n[[virtual_server.real_server]]\naddress = \"{}:80\"\nweight = 70000\n",
        vip(0),
        lab.real_server(1).addr()
    );
    let err = lab
        .start_lvsd(1, &config)
        .map(|_| ())
        .expect_err("lvsd must refuse a weight of 70000");
    let text = err.to_string();
    assert!(
        text.contains(":6: virtual_server[0].real_server[0].weight"),
        "{text}"
    );
    assert!(!lab.director(1).has_address(vip(0)).unwrap());
    assert_eq!(nft_tables(&lab).trim(), "");
}

// ---------------------------------------------------------------------------------------
// Malformed frames on the wire.

/// An Ethernet + IPv4 + TCP frame with correct checksums, for the test to break.
fn tcp_frame(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    flags: u8,
) -> Vec<u8> {
    let mut f = Vec::with_capacity(54);
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x00]);
    let total: u16 = 40;
    let mut ip = vec![0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&src.0.octets());
    ip.extend_from_slice(&dst.0.octets());
    let c = inet_checksum(&ip, 0);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut tcp = Vec::with_capacity(20);
    tcp.extend_from_slice(&src.1.to_be_bytes());
    tcp.extend_from_slice(&dst.1.to_be_bytes());
    tcp.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src.0.octets());
    pseudo.extend_from_slice(&dst.0.octets());
    pseudo.extend_from_slice(&[0, 6, 0, 20]);
    let c = inet_checksum(&tcp, sum16(&pseudo));
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&tcp);
    f
}

fn sum16(data: &[u8]) -> u32 {
    data.chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum()
}

fn inet_checksum(data: &[u8], initial: u32) -> u16 {
    let mut s = initial + sum16(data);
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

fn fix_ip_checksum(f: &mut [u8]) {
    f[24] = 0;
    f[25] = 0;
    let c = inet_checksum(&f[14..34], 0);
    f[24..26].copy_from_slice(&c.to_be_bytes());
}

#[test]
fn malformed_frames_are_counted_by_reason_and_forwarding_goes_on() {
    require_root!();
    let _serial = serial();
    let lab = lab(Mode::Nat, 3);
    let v = vip(0);
    let config = service(
        (v, HTTP_PORT),
        "tcp",
        "rr",
        Mode::Nat,
        &lab,
        &all_three(HTTP_PORT, [1, 1, 1]),
    );
    let lvsd = lab.start_lvsd(1, &config).expect("starting lvsd");
    // The router puts frames on the front network addressed to the director, as if they
    // came from the client: each one passes the socket filter (VIP, port 80) and is broken
    // past it.
    let dir_mac = lab.director(1).mac("ext0").unwrap();
    let rt_mac = lab.router().mac("eth1").unwrap();
    let client = (lvs_lab::CLIENT_ADDR, 40_000);
    let syn = tcp_frame(dir_mac, rt_mac, client, (v, HTTP_PORT), 0x02);

    let mut bad_checksum = syn.clone();
    bad_checksum[24] ^= 0xff;
    let mut too_long = syn.clone(); // total length 1400 in a 54-byte frame
    too_long[16..18].copy_from_slice(&1400u16.to_be_bytes());
    fix_ip_checksum(&mut too_long);
    let mut bad_offset = syn.clone(); // TCP data offset 2 (8 bytes) < 5
    bad_offset[46] = 0x20;
    let mut short_tcp = syn[..14 + 20 + 12].to_vec(); // ports present, header cut at 12
    short_tcp[16..18].copy_from_slice(&32u16.to_be_bytes());
    fix_ip_checksum(&mut short_tcp);
    let mut fragment = syn.clone(); // "more fragments" set
    fragment[20] = 0x20;
    fix_ip_checksum(&mut fragment);
    let stray_ack = tcp_frame(
        dir_mac,
        rt_mac,
        (lvs_lab::CLIENT_ADDR, 40_001),
        (v, HTTP_PORT),
        0x10,
    );

    const TIMES: usize = 5;
    let frames: Vec<Vec<u8>> = [
        &bad_checksum,
        &too_long,
        &bad_offset,
        &short_tcp,
        &fragment,
        &stray_ack,
    ]
    .iter()
    .flat_map(|f| std::iter::repeat_n((*f).clone(), TIMES))
    .collect();
    lab.router().send_raw_frames("eth1", &frames).unwrap();

    // Forwarding goes on.
    let names = sequential_names(lab.client(), SocketAddr::from((v, HTTP_PORT)), 6);
    assert_eq!(names.len(), 6);
    assert!(lvsd.is_running());
    let stats = stop_and_check(&lvsd);
    let count = |reason: &str| -> u64 {
        stats
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("drop.{reason}=")))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let n = TIMES as u64;
    assert_eq!(count("bad_checksum"), n, "{stats}");
    assert_eq!(count("bad_ip_header"), n, "{stats}");
    assert_eq!(count("bad_l4_header"), n, "{stats}");
    assert_eq!(count("truncated"), n, "{stats}");
    assert_eq!(count("fragment"), n, "{stats}");
    assert_eq!(count("no_connection"), n, "{stats}");
}
