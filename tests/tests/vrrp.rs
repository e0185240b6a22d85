//! VRRP failover between two directors on the shared front segment, with real HTTP traffic
//! to the VIP (issue 7).
//!
//! The lab: two directors (`ext0` 203.0.113.2 and .3 on `br-front`), two DR real servers
//! holding the VIP on `lo` and answering through the router, a client behind the router.
//! The router reaches the VIP by ARP on the front segment, so whichever director holds the
//! VIP (and sent the last gratuitous ARP) gets the traffic.
//!
//! What each test pins down:
//! - `kill_9_of_the_master_moves_the_vip_to_the_backup`: 150/100 elect exactly one master
//!   (API and `ip addr` agree), traffic flows; after kill -9 of the master the backup holds
//!   the VIP and serves it (time to the first successful request printed, bounded by 5 s);
//!   the backup's notify script is called with keepalived's arguments (BACKUP, MASTER, STOP).
//! - `graceful_stop_hands_over_at_once_and_preempt_takes_it_back`: SIGTERM sends priority 0
//!   (the backup's transition reason says so); the returning 150 preempts; with
//!   `preempt = false` it stays backup.
//! - `spoofed_and_malformed_adverts_change_nothing`: crafted adverts (bad checksum, TTL 254,
//!   truncated, wrong version) from the router never flip the master or crash lvsd; each is
//!   counted; a well-formed higher-priority advert does move it (so the socket path is live).
//! - `tshark_decodes_our_adverts`: v3 and v2 adverts are VRRP to tshark, with the priority,
//!   version and a good checksum.
//! - `a_tracked_interface_down_means_fault`: `track_interface` down → FAULT (the backup
//!   takes over, lvsd keeps running), up again → it preempts back (the link watcher).
//! - `v3_checksum_flavours`: two lvsd agree with `v3_checksum_as_v2 = true`; that flavour
//!   against keepalived 2.2.7 is dropped as `checksum_err` (a split brain the test sees).
//! - `keepalived_*`: the Debian keepalived as the other router, both ways round, v3 and v2
//!   multicast and v3 unicast: election by priority, takeover on kill, handback on return.
//!
//! Every wait is bounded; the lab kills lvsd, keepalived and tshark on drop, also on panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{NODE, serial, stop_and_check};
use lvs_lab::keepalived::{Keepalived, KeepalivedSpec};
use lvs_lab::node::HTTP_PORT;
use lvs_lab::{
    Lab, LabSpec, LvsdProcess, client, director_ext_addr, require_root, vip, wait_until,
};
use lvs_proto::{EventKind, VrrpInstanceInfo, VrrpState};

/// Generous bound for any takeover (never a tight timing assertion).
const TAKEOVER: Duration = Duration::from_secs(5);
/// VRRPv2 takes whole seconds: 3 × 1 s + skew, plus slack.
const TAKEOVER_V2: Duration = Duration::from_secs(8);

fn lab() -> Lab {
    let lab = Lab::build(
        LabSpec::new(NODE)
            .directors(2)
            .dr_real_servers(2, &[vip(0)]),
    )
    .expect("building the lab");
    lab.start_backends().expect("starting backends");
    lab
}

/// One instance's settings for an lvsd config.
#[derive(Debug, Clone)]
struct Vrrp {
    priority: u8,
    preempt: bool,
    version: u8,
    interval: &'static str,
    unicast_peer: Option<Ipv4Addr>,
    checksum_as_v2: bool,
}

impl Vrrp {
    fn v3(priority: u8) -> Vrrp {
        Vrrp {
            priority,
            preempt: true,
            version: 3,
            interval: "100ms",
            unicast_peer: None,
            checksum_as_v2: false,
        }
    }
}

/// A DR service on the VIP with both real servers, and one VRRP instance holding it.
fn config(lab: &Lab, v: &Vrrp) -> String {
    let mut s = format!(
        "[[virtual_server]]\naddress = \"{}:{HTTP_PORT}\"\nscheduler = \"rr\"\nforwarding = \"dr\"\n",
        vip(0)
    );
    for k in 1..=2 {
        s.push_str(&format!(
            "[[virtual_server.real_server]]\naddress = \"{}:{HTTP_PORT}\"\n",
            lab.real_server(k).addr()
        ));
    }
    s.push_str(&format!(
        "\n[[vrrp_instance]]\nname = \"VI_1\"\ninterface = \"ext0\"\nvirtual_router_id = 51\n\
         priority = {}\npreempt = {}\nversion = {}\nadvert_interval = \"{}\"\n\
         virtual_ipaddress = [\"{}/24\"]\ngarp_master_delay = \"1s\"\n",
        v.priority,
        v.preempt,
        v.version,
        v.interval,
        vip(0)
    ));
    if v.checksum_as_v2 {
        s.push_str("v3_checksum_as_v2 = true\n");
    }
    if let Some(p) = v.unicast_peer {
        s.push_str(&format!("unicast_peer = [\"{p}\"]\n"));
    }
    s
}

/// The `vrrp()` RPC.
fn vrrp_info(lvsd: &LvsdProcess) -> Vec<VrrpInstanceInfo> {
    let socket: PathBuf = lvsd.control_socket().to_path_buf();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let c = lvs_proto::connect_unix(&socket).await.expect("connecting");
        c.vrrp(lvs_proto::tarpc::context::current())
            .await
            .expect("rpc")
            .expect("vrrp()")
    })
}

fn events(lvsd: &LvsdProcess) -> Vec<EventKind> {
    let socket: PathBuf = lvsd.control_socket().to_path_buf();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let c = lvs_proto::connect_unix(&socket).await.expect("connecting");
        c.events_since(lvs_proto::tarpc::context::current(), 0)
            .await
            .expect("rpc")
            .expect("events")
            .into_iter()
            .map(|e| e.kind)
            .collect()
    })
}

fn state(lvsd: &LvsdProcess) -> VrrpState {
    vrrp_info(lvsd)
        .first()
        .map(|i| i.state)
        .expect("one instance")
}

/// Whether director `n` holds the VIP (`ip addr`).
fn holds(lab: &Lab, n: usize) -> bool {
    lab.director(n).has_address(vip(0)).unwrap_or(false)
}

/// Waits until director `n` alone holds the VIP.
fn wait_sole_holder(lab: &Lab, n: usize, within: Duration) -> bool {
    let other = 3 - n;
    wait_until(within, || holds(lab, n) && !holds(lab, other))
}

fn request(lab: &Lab, timeout: Duration) -> Result<String, String> {
    let to = SocketAddr::from((vip(0), HTTP_PORT));
    lab.client().run(move || {
        client::http_request(to, "GET", "/", timeout)
            .map_err(|e| e.to_string())
            .and_then(|r| {
                r.backend()
                    .map(str::to_string)
                    .ok_or_else(|| format!("no X-Backend: {}", r.status))
            })
    })
}

fn requests_succeed(lab: &Lab, n: usize) {
    for i in 0..n {
        if let Err(e) = request(lab, Duration::from_secs(5)) {
            panic!("request {i} to the VIP failed: {e}");
        }
    }
}

/// Time from `since` to the first successful request (each try bounded by 150 ms).
fn first_success(lab: &Lab, since: Instant, within: Duration) -> Option<Duration> {
    while since.elapsed() < within {
        if request(lab, Duration::from_millis(150)).is_ok() {
            return Some(since.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

fn both_elected(lab: &Lab, master: (usize, &LvsdProcess), backup: (usize, &LvsdProcess)) {
    assert!(
        wait_sole_holder(lab, master.0, TAKEOVER),
        "director {} never became the sole VIP holder\n{}\n{}",
        master.0,
        master.1.logs(),
        backup.1.logs()
    );
    assert!(wait_until(TAKEOVER, || state(master.1)
        == VrrpState::Master
        && state(backup.1) == VrrpState::Backup));
    // A backup that started after the master's last advert learns who the master is from
    // the next one (up to one advert interval later).
    let want = Some(std::net::IpAddr::from(director_ext_addr(master.0)));
    let named = wait_until(TAKEOVER, || {
        vrrp_info(backup.1).first().and_then(|i| i.master) == want
    });
    let b = vrrp_info(backup.1);
    assert!(named, "the backup does not name {want:?} as master: {b:?}");
}

#[test]
fn kill_9_of_the_master_moves_the_vip_to_the_backup() {
    require_root!();
    let _serial = serial();
    let lab = lab();
    // Director 2 runs a notify script (keepalived's arguments) that logs its calls.
    let log = lab.work_dir().join("notify.log");
    let script = lab.work_dir().join("notify.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$@\" >> {}\n", log.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let notify = format!("notify = \"{}\"\n", script.display());
    let one = lab
        .start_lvsd(1, &config(&lab, &Vrrp::v3(150)))
        .expect("lvsd 1");
    let two = lab
        .start_lvsd(2, &(config(&lab, &Vrrp::v3(100)) + &notify))
        .expect("lvsd 2");
    both_elected(&lab, (1, &one), (2, &two));
    requests_succeed(&lab, 20);

    let killed = Instant::now();
    one.process().kill().expect("kill -9");
    let took = first_success(&lab, killed, TAKEOVER);
    println!("kill -9 of the master: first successful request after {took:?}");
    assert!(
        took.is_some(),
        "the backup never served the VIP\n{}",
        two.logs()
    );
    assert!(holds(&lab, 2));
    assert_eq!(state(&two), VrrpState::Master);
    requests_succeed(&lab, 20);
    stop_and_check(&two);
    // A graceful stop removes the VIP it added.
    assert!(!holds(&lab, 2));
    let calls = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        wait_until(TAKEOVER, || calls().contains("INSTANCE VI_1 STOP 100")),
        "{}",
        calls()
    );
    assert_eq!(
        calls().lines().collect::<Vec<_>>(),
        [
            "INSTANCE VI_1 BACKUP 100",
            "INSTANCE VI_1 MASTER 100",
            "INSTANCE VI_1 STOP 100"
        ]
    );
}

#[test]
fn graceful_stop_hands_over_at_once_and_preempt_takes_it_back() {
    require_root!();
    let _serial = serial();
    let lab = lab();
    let one = lab
        .start_lvsd(1, &config(&lab, &Vrrp::v3(150)))
        .expect("lvsd 1");
    let two = lab
        .start_lvsd(2, &config(&lab, &Vrrp::v3(100)))
        .expect("lvsd 2");
    both_elected(&lab, (1, &one), (2, &two));
    requests_succeed(&lab, 10);

    // SIGTERM: priority 0, the backup takes over after Skew_Time.
    let stopped = Instant::now();
    stop_and_check(&one);
    assert!(!holds(&lab, 1), "a stopped lvsd keeps no VIP");
    let took = first_success(&lab, stopped, TAKEOVER);
    println!("graceful stop of the master: first successful request after {took:?}");
    assert!(
        took.is_some(),
        "the backup never served the VIP\n{}",
        two.logs()
    );
    assert!(wait_until(TAKEOVER, || state(&two) == VrrpState::Master));
    let reasons: Vec<String> = events(&two)
        .into_iter()
        .filter_map(|k| match k {
            EventKind::VrrpTransition {
                to: VrrpState::Master,
                reason,
                ..
            } => Some(reason),
            _ => None,
        })
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("priority 0")),
        "{reasons:?}"
    );

    // Back with preempt: it takes over again.
    let one = lab
        .start_lvsd(1, &config(&lab, &Vrrp::v3(150)))
        .expect("lvsd 1 again");
    both_elected(&lab, (1, &one), (2, &two));
    requests_succeed(&lab, 10);

    // Without preempt it stays backup.
    stop_and_check(&one);
    assert!(wait_sole_holder(&lab, 2, TAKEOVER));
    let calm = Vrrp {
        preempt: false,
        ..Vrrp::v3(150)
    };
    let one = lab
        .start_lvsd(1, &config(&lab, &calm))
        .expect("lvsd 1, nopreempt");
    assert!(wait_until(TAKEOVER, || state(&one) == VrrpState::Backup));
    // Many master-down intervals (≈ 0.35 s each) later it is still backup.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(state(&one), VrrpState::Backup);
    assert_eq!(state(&two), VrrpState::Master);
    assert!(holds(&lab, 2) && !holds(&lab, 1));
    requests_succeed(&lab, 10);
    stop_and_check(&two);
    // Now the 150 takes over from the resigning 100.
    assert!(wait_sole_holder(&lab, 1, TAKEOVER));
    requests_succeed(&lab, 10);
    stop_and_check(&one);
}

/// The internet checksum.
fn csum(data: &[u8], init: u32) -> u16 {
    let mut sum = init;
    for c in data.chunks(2) {
        let w = u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]);
        sum += u32::from(w);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet frame carrying a VRRPv3 advert from the router (203.0.113.1) to 224.0.0.18,
/// with keepalived's pseudo-header checksum (or a wrong one).
fn advert_frame(src_mac: [u8; 6], prio: u8, ttl: u8, version: u8, good_csum: bool) -> Vec<u8> {
    let src = Ipv4Addr::new(203, 0, 113, 1);
    let dst = Ipv4Addr::new(224, 0, 0, 18);
    let mut vrrp = vec![(version << 4) | 1, 51, prio, 1, 0x00, 10, 0, 0];
    vrrp.extend_from_slice(&vip(0).octets());
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, 112, 0, vrrp.len() as u8]);
    let init: u32 = pseudo
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    let c = csum(&vrrp, init);
    let c = if good_csum { c } else { c ^ 0x5a5a };
    vrrp[6..8].copy_from_slice(&c.to_be_bytes());
    let total = 20 + vrrp.len();
    let mut ip = vec![0x45, 0xc0, 0, total as u8, 0, 0, 0, 0, ttl, 112, 0, 0];
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let h = csum(&ip, 0);
    ip[10..12].copy_from_slice(&h.to_be_bytes());
    let mut f = vec![0x01, 0x00, 0x5e, 0x00, 0x00, 0x12];
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&vrrp);
    f
}

#[test]
fn spoofed_and_malformed_adverts_change_nothing() {
    require_root!();
    let _serial = serial();
    let lab = lab();
    let one = lab
        .start_lvsd(1, &config(&lab, &Vrrp::v3(150)))
        .expect("lvsd 1");
    let two = lab
        .start_lvsd(2, &config(&lab, &Vrrp::v3(100)))
        .expect("lvsd 2");
    both_elected(&lab, (1, &one), (2, &two));
    let mac = lab.router().mac("eth1").expect("router mac");
    let good = advert_frame(mac, 254, 255, 3, true);
    let mut truncated = good.clone();
    truncated.truncate(good.len() - 3);
    let bad: Vec<Vec<u8>> = vec![
        advert_frame(mac, 254, 255, 3, false), // checksum
        advert_frame(mac, 254, 254, 3, true),  // TTL
        advert_frame(mac, 254, 255, 2, true),  // version
        truncated,
        vec![0xff; 14],
    ];
    for _ in 0..20 {
        lab.router().send_raw_frames("eth1", &bad).expect("sending");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(one.is_running() && two.is_running());
    assert_eq!(state(&one), VrrpState::Master, "{}", one.logs());
    assert_eq!(state(&two), VrrpState::Backup);
    assert!(holds(&lab, 1) && !holds(&lab, 2));
    requests_succeed(&lab, 5);
    let info = vrrp_info(&one);
    let rejected = |name: &str| {
        info[0]
            .rejected
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, c)| *c)
    };
    assert!(rejected("checksum_err") >= 20, "{info:?}");
    assert!(rejected("ip_ttl_err") >= 20, "{info:?}");
    assert!(rejected("version_err") >= 20, "{info:?}");

    // Control: a well-formed priority-254 advert is heard, and the master steps down.
    lab.router()
        .send_raw_frames("eth1", &[good])
        .expect("sending");
    assert!(
        wait_until(TAKEOVER, || vrrp_info(&one)[0].master
            == Some(Ipv4Addr::new(203, 0, 113, 1).into())
            || state(&one) == VrrpState::Backup),
        "{:?}",
        vrrp_info(&one)
    );
    // Nobody speaks for 203.0.113.1 again: the 150 comes back.
    assert!(wait_sole_holder(&lab, 1, TAKEOVER));
    requests_succeed(&lab, 5);
    stop_and_check(&one);
    let _ = two.stop();
}

#[test]
fn tshark_decodes_our_adverts() {
    require_root!();
    let _serial = serial();
    let lab = lab();
    for (version, interval) in [(3u8, "100ms"), (2, "1s")] {
        let v = Vrrp {
            version,
            interval,
            ..Vrrp::v3(150)
        };
        let pcap = lab.work_dir().join(format!("vrrp-v{version}.pcap"));
        let mut cmd = lab.director(2).command("tshark");
        // v2 becomes master only after 3 × 1 s + skew: capture long enough for adverts.
        let duration = if version == 2 {
            "duration:8"
        } else {
            "duration:4"
        };
        cmd.args([
            "-i",
            "ext0",
            "-n",
            "-q",
            "-f",
            "ip proto 112",
            "-a",
            duration,
            "-w",
        ])
        .arg(&pcap)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
        let cap = lab
            .director(2)
            .spawn_named("tshark", cmd)
            .expect("tshark is needed (apt-get install tshark)");
        std::thread::sleep(Duration::from_millis(1000));
        let one = lab.start_lvsd(1, &config(&lab, &v)).expect("lvsd 1");
        assert!(wait_until(TAKEOVER_V2, || holds(&lab, 1)));
        let _ = cap.wait_timeout(Duration::from_secs(10));
        let _ = cap.kill();
        let out = std::process::Command::new("tshark")
            .args(["-n", "-r"])
            .arg(&pcap)
            .args([
                "-Y",
                "vrrp",
                "-T",
                "fields",
                "-e",
                "ip.src",
                "-e",
                "ip.ttl",
                "-e",
                "vrrp.version",
                "-e",
                "vrrp.prio",
                "-e",
                "vrrp.checksum.status",
            ])
            .output()
            .expect("tshark -r");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        println!("v{version} adverts as tshark reads them:\n{text}");
        let lines: Vec<Vec<&str>> = text
            .lines()
            .map(|l| l.split('\t').collect::<Vec<_>>())
            .filter(|f| f.first() == Some(&"203.0.113.2"))
            .collect();
        assert!(
            !lines.is_empty(),
            "no VRRP from director 1 in the capture: {text}"
        );
        for f in &lines {
            assert_eq!(f.get(1), Some(&"255"), "{f:?}");
            assert_eq!(f.get(2), Some(&version.to_string().as_str()), "{f:?}");
            assert_eq!(f.get(3), Some(&"150"), "{f:?}");
            // Wireshark's checksum status: 0 bad, 1 good, 2 unverified. For v3 over IPv4
            // Wireshark's default is the pseudo-header flavour, lvsd's default too.
            assert_eq!(f.get(4), Some(&"1"), "checksum not good: {f:?}");
        }
        stop_and_check_quiet(&one);
    }
}

/// Stops lvsd and checks its counters add up (it may have forwarded nothing).
fn stop_and_check_quiet(lvsd: &LvsdProcess) {
    let status = lvsd.stop().expect("stopping lvsd");
    assert!(status.success(), "{}", lvsd.logs());
    let out = lvsd.stdout();
    let line = out
        .lines()
        .rfind(|l| l.starts_with("lvsd stats:"))
        .expect("stats line");
    let field = |name: &str| -> u64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    assert_eq!(
        field("received"),
        field("forwarded") + field("dropped") + field("passed"),
        "{line}"
    );
}

/// keepalived on director 2 against lvsd on director 1, both ways round.
fn keepalived_interop(version: u8, unicast: bool) {
    let lab = lab();
    let interval = if version == 2 { "1s" } else { "100ms" };
    let bound = if version == 2 { TAKEOVER_V2 } else { TAKEOVER };
    let lvsd_cfg = |priority: u8| {
        config(
            &lab,
            &Vrrp {
                priority,
                preempt: true,
                version,
                interval,
                unicast_peer: unicast.then(|| director_ext_addr(2)),
                checksum_as_v2: false,
            },
        )
    };
    let ka_spec = |priority: u8| KeepalivedSpec {
        vrid: 51,
        priority,
        version,
        advert_interval: if version == 2 {
            Duration::from_secs(1)
        } else {
            Duration::from_millis(100)
        },
        interface: "ext0".into(),
        vips: vec![format!("{}/24", vip(0))],
        unicast_src: unicast.then(|| director_ext_addr(2)),
        unicast_peers: if unicast {
            vec![director_ext_addr(1)]
        } else {
            Vec::new()
        },
        preempt: true,
    };
    let ka = Keepalived::start(&lab, 2, &ka_spec(100))
        .expect("keepalived is needed for this test (apt-get install keepalived)");
    let l = lab.start_lvsd(1, &lvsd_cfg(150)).expect("lvsd");
    // lvsd 150 wins over keepalived 100.
    assert!(
        wait_sole_holder(&lab, 1, bound) && wait_until(bound, || state(&l) == VrrpState::Master),
        "lvsd 150 did not win\n{}\n{}",
        l.logs(),
        ka.logs()
    );
    requests_succeed(&lab, 10);
    // kill -9 lvsd: keepalived takes over (lvsd's VIP stays behind on director 1, as
    // after any crash; keepalived's GARP moves the traffic).
    l.process().kill().expect("kill -9");
    let t = Instant::now();
    assert!(
        wait_until(bound, || holds(&lab, 2)),
        "keepalived never took over\n{}",
        ka.logs()
    );
    println!(
        "v{version} unicast={unicast}: keepalived took over {:?} after kill -9 of lvsd",
        t.elapsed()
    );
    // lvsd returns with 150 and takes the VIP back (handback), cleaning up its leftover.
    let l = lab.start_lvsd(1, &lvsd_cfg(150)).expect("lvsd again");
    assert!(
        wait_sole_holder(&lab, 1, bound),
        "lvsd did not take the VIP back\n{}\n{}",
        l.logs(),
        ka.logs()
    );
    requests_succeed(&lab, 10);
    // Graceful stop: priority 0, keepalived takes over.
    let t = Instant::now();
    stop_and_check(&l);
    assert!(wait_sole_holder(&lab, 2, bound), "{}", ka.logs());
    println!(
        "v{version} unicast={unicast}: keepalived took over {:?} after SIGTERM of lvsd",
        t.elapsed()
    );

    // The other way round: keepalived 100 is master, lvsd 50 stays backup.
    let l = lab.start_lvsd(1, &lvsd_cfg(50)).expect("lvsd 50");
    assert!(wait_until(bound, || state(&l) == VrrpState::Backup));
    std::thread::sleep(Duration::from_millis(if version == 2 {
        4000
    } else {
        1000
    }));
    let info = vrrp_info(&l);
    assert_eq!(info[0].state, VrrpState::Backup, "{info:?}\n{}", l.logs());
    assert_eq!(
        info[0].master,
        Some(director_ext_addr(2).into()),
        "{info:?}"
    );
    assert_eq!(info[0].master_priority, Some(100), "{info:?}");
    assert!(holds(&lab, 2) && !holds(&lab, 1));
    // keepalived crashes: lvsd takes over and serves.
    let t = Instant::now();
    ka.kill();
    let took = first_success(&lab, t, bound);
    println!("v{version} unicast={unicast}: lvsd served {took:?} after kill -9 of keepalived");
    assert!(took.is_some(), "lvsd never took over\n{}", l.logs());
    assert_eq!(state(&l), VrrpState::Master);
    requests_succeed(&lab, 10);
    // keepalived returns with 100 and preempts lvsd's 50.
    drop(ka);
    let ka = Keepalived::start(&lab, 2, &ka_spec(100))
        .expect("keepalived is needed for this test (apt-get install keepalived)");
    assert!(
        wait_until(bound, || state(&l) == VrrpState::Backup && !holds(&lab, 1)),
        "keepalived did not take over again\n{}\n{}",
        l.logs(),
        ka.logs()
    );
    assert!(wait_until(bound, || holds(&lab, 2)), "{}", ka.logs());
    stop_and_check(&l);
    ka.stop();
}

#[test]
fn keepalived_v3_multicast_both_ways() {
    require_root!();
    let _serial = serial();
    keepalived_interop(3, false);
}

#[test]
fn keepalived_v2_multicast_both_ways() {
    require_root!();
    let _serial = serial();
    keepalived_interop(2, false);
}

#[test]
fn keepalived_v3_unicast_both_ways() {
    require_root!();
    let _serial = serial();
    keepalived_interop(3, true);
}

/// The v3 checksum flavour matters: lvsd pairs agree with either; lvsd with RFC 9568's
/// flavour against keepalived 2.2.7 (pseudo-header) drops its adverts as `checksum_err` and
/// becomes a second master — which also shows these tests can see an interop failure.
#[test]
fn v3_checksum_flavours() {
    require_root!();
    let _serial = serial();
    let lab = lab();
    let rfc = |priority| Vrrp {
        checksum_as_v2: true,
        ..Vrrp::v3(priority)
    };
    let one = lab.start_lvsd(1, &config(&lab, &rfc(150))).expect("lvsd 1");
    let two = lab.start_lvsd(2, &config(&lab, &rfc(100))).expect("lvsd 2");
    both_elected(&lab, (1, &one), (2, &two));
    requests_succeed(&lab, 5);
    stop_and_check(&one);
    assert!(wait_sole_holder(&lab, 2, TAKEOVER));
    requests_succeed(&lab, 5);
    stop_and_check(&two);

    let ka = Keepalived::start(
        &lab,
        2,
        &KeepalivedSpec {
            vrid: 51,
            priority: 100,
            version: 3,
            advert_interval: Duration::from_millis(100),
            interface: "ext0".into(),
            vips: vec![format!("{}/24", vip(0))],
            unicast_src: None,
            unicast_peers: Vec::new(),
            preempt: true,
        },
    )
    .expect("keepalived is needed for this test (apt-get install keepalived)");
    assert!(wait_until(TAKEOVER, || holds(&lab, 2)), "{}", ka.logs());
    let l = lab.start_lvsd(1, &config(&lab, &rfc(50))).expect("lvsd 50");
    assert!(
        wait_until(TAKEOVER, || state(&l) == VrrpState::Master),
        "lvsd heard keepalived's pseudo-header checksum as valid\n{}",
        l.logs()
    );
    let info = vrrp_info(&l);
    let errs = info[0]
        .rejected
        .iter()
        .find(|(n, _)| n == "checksum_err")
        .map_or(0, |(_, c)| *c);
    assert!(errs > 0, "{info:?}");
    // Split brain: both hold the VIP.
    assert!(holds(&lab, 1) && holds(&lab, 2));
    let _ = l.stop();
    ka.stop();
}

/// track_interface: the master's tracked interface going down puts it in FAULT (the
/// backup takes over); back up, it preempts again. Exercises the netlink link watcher.
#[test]
fn a_tracked_interface_down_means_fault() {
    require_root!();
    let _serial = serial();
    let lab = lab();
    let tracked = |priority| {
        let mut c = config(&lab, &Vrrp::v3(priority));
        c.push_str("track_interface = [\"int0\"]\n");
        c
    };
    let one = lab.start_lvsd(1, &tracked(150)).expect("lvsd 1");
    let two = lab.start_lvsd(2, &tracked(100)).expect("lvsd 2");
    both_elected(&lab, (1, &one), (2, &two));
    lab.director(1)
        .set_link_up("int0", false)
        .expect("int0 down");
    assert!(
        wait_until(TAKEOVER, || state(&one) == VrrpState::Fault),
        "{:?}\n{}",
        vrrp_info(&one),
        one.logs()
    );
    assert!(wait_sole_holder(&lab, 2, TAKEOVER));
    requests_succeed(&lab, 5);
    lab.director(1).set_link_up("int0", true).expect("int0 up");
    assert!(
        wait_sole_holder(&lab, 1, TAKEOVER),
        "{:?}\n{}",
        vrrp_info(&one),
        one.logs()
    );
    assert!(wait_until(TAKEOVER, || state(&one) == VrrpState::Master));
    requests_succeed(&lab, 5);
    stop_and_check(&one);
    stop_and_check(&two);
}
