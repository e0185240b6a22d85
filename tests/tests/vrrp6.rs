//! VRRPv3 over IPv6 (RFC 9568 §5.1.2) between two directors on the shared front segment,
//! lvsd against lvsd and lvsd against the Debian keepalived (issue 8).
//!
//! The lab is built with IPv6 (`LabSpec::ipv6`): directors' `ext0` carry 2001:db8:f::2 and
//! ::3 and their link-local addresses; the VIP is 2001:db8:f::10 (`vip6(0)`), a bare
//! address (/128) in both lvsd's and keepalived's configuration. The router (`eth1` on the
//! front segment) reaches the VIP by Neighbor Discovery, so its neighbour entry for the VIP
//! names whichever director sent the last unsolicited Neighbor Advertisement.
//!
//! What each test pins down:
//! - `two_lvsd_fail_over_an_ipv6_vip`: 150/100 elect one master (API and `ip addr` agree,
//!   the backup names the master by its link-local address); kill -9 moves the VIP, the
//!   router's neighbour entry follows (the NA works), SIGTERM hands over at once (priority
//!   0), the 150 preempts back. tshark on the router decodes the adverts — source the
//!   link-local address, destination ff02::12, hop limit 255, v3, a *good* checksum
//!   (Wireshark's own IPv6 pseudo-header computation) — and the unsolicited NAs: to ff02::1,
//!   hop limit 255, Override and Router set, Solicited clear, target the VIP, from the
//!   master's MAC.
//! - `two_lvsd_ipv6_unicast`: `unicast_src` / `unicast_peer` with the directors' global
//!   addresses: election, the backup names the master by its global address, kill -9
//!   moves the VIP, no advert rejected (the pseudo-header holds the unicast destination).
//! - `spoofed_ipv6_adverts_change_nothing`: crafted IPv6 adverts from the router (hop
//!   limit 254, bad checksum, VRRPv2, truncated) never move the master and are counted by
//!   reason; the same advert with a good checksum — computed here by an implementation of
//!   the test's own — and priority 254 does make the master step down.
//! - `keepalived_ipv6_both_ways`: keepalived as the other router, both ways round: lvsd
//!   150 wins over keepalived 100, keepalived takes over on kill -9 and on SIGTERM, lvsd
//!   takes the VIP back; then lvsd 50 is keepalived's backup (names it as master with
//!   priority 100), takes over when keepalived is killed (and the router's neighbour entry
//!   moves to lvsd's MAC), and yields when keepalived returns.
//!
//! Every wait is bounded; the lab kills lvsd, keepalived and tshark on drop, also on panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{NODE, ip, serial};
use lvs_lab::keepalived::{Keepalived, KeepalivedSpec};
use lvs_lab::{
    Lab, LabSpec, LvsdProcess, Process, director_ext_addr6, require_root, vip6, wait_until,
};
use lvs_proto::{VrrpInstanceInfo, VrrpState};

/// Generous bound for any takeover (never a tight timing assertion).
const TAKEOVER: Duration = Duration::from_secs(5);

fn lab() -> Lab {
    Lab::build(LabSpec::new(NODE).directors(2).ipv6(true)).expect("building the lab")
}

/// One IPv6 instance holding the VIP (and no service: VRRP alone).
fn config(priority: u8) -> String {
    format!(
        "[[vrrp_instance]]\nname = \"VI_6\"\ninterface = \"ext0\"\nvirtual_router_id = 51\n\
         priority = {priority}\nadvert_interval = \"100ms\"\n\
         virtual_ipaddress = [\"{}\"]\ngarp_master_delay = \"1s\"\n",
        vip6(0)
    )
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

fn state(lvsd: &LvsdProcess) -> VrrpState {
    vrrp_info(lvsd)
        .first()
        .map(|i| i.state)
        .expect("one instance")
}

/// Whether director `n` holds the VIP (`ip addr`).
fn holds(lab: &Lab, n: usize) -> bool {
    lab.director(n).has_address(vip6(0)).unwrap_or(false)
}

/// Waits until director `n` alone holds the VIP.
fn wait_sole_holder(lab: &Lab, n: usize, within: Duration) -> bool {
    let other = 3 - n;
    wait_until(within, || holds(lab, n) && !holds(lab, other))
}

/// Director `n`'s link-local address on `ext0`.
fn link_local(lab: &Lab, n: usize) -> Ipv6Addr {
    lab.director(n)
        .addresses6()
        .expect("addresses")
        .into_iter()
        .find(|a| a.ifname == "ext0" && (a.addr.segments()[0] & 0xffc0) == 0xfe80)
        .map(|a| a.addr)
        .expect("ext0 has a link-local address")
}

fn mac_text(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Director `n`'s `ext0` MAC as `ip neigh` prints it.
fn director_mac(lab: &Lab, n: usize) -> String {
    mac_text(lab.director(n).mac("ext0").expect("mac"))
}

/// The router's neighbour entry for the VIP: its link-layer address, if any.
fn router_neighbour(lab: &Lab) -> Option<String> {
    let out = ip(
        lab.router(),
        &["-6", "neigh", "show", &vip6(0).to_string(), "dev", "eth1"],
    );
    out.split_whitespace()
        .skip_while(|w| *w != "lladdr")
        .nth(1)
        .map(str::to_string)
}

/// Reaches the VIP from the router (a TCP connect to port 81, which the kernel of the
/// director holding it refuses: the refusal is the answer) within `within`: the VIP is
/// reachable, and the router has a neighbour entry for it. (The lab has no `ping`.)
fn ping_from_router(lab: &Lab, within: Duration) -> bool {
    let to = std::net::SocketAddr::from((vip6(0), 81));
    wait_until(within, || {
        lab.router().run(move || {
            match std::net::TcpStream::connect_timeout(&to, Duration::from_millis(500)) {
                Ok(_) => true,
                Err(e) => e.kind() == std::io::ErrorKind::ConnectionRefused,
            }
        })
    })
}

/// What the router and the directors see, for failure messages.
fn debug_state(lab: &Lab) -> String {
    let run = |h: &lvs_lab::Host, args: &[&str]| {
        h.command(args[0])
            .args(&args[1..])
            .output()
            .map(|o| {
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                )
            })
            .unwrap_or_else(|e| e.to_string())
    };
    format!(
        "router neigh:\n{}\nrouter routes:\n{}\ndirector 1 addr:\n{}\n\
         director 1 nft:\n{}",
        run(lab.router(), &["ip", "-6", "neigh"]),
        run(lab.router(), &["ip", "-6", "route"]),
        run(lab.director(1), &["ip", "-6", "addr"]),
        run(lab.director(1), &["nft", "list", "ruleset"]),
    )
}

/// Waits until the router's neighbour entry for the VIP names director `n`'s MAC.
fn router_follows(lab: &Lab, n: usize) -> bool {
    let want = director_mac(lab, n);
    wait_until(TAKEOVER, || router_neighbour(lab).as_deref() == Some(&want))
}

/// Stops lvsd (SIGTERM) and checks it exited cleanly with its counters adding up (it
/// forwards nothing here).
fn stop_quiet(lvsd: &LvsdProcess) {
    let status = lvsd.stop().expect("stopping lvsd");
    assert!(status.success(), "{}", lvsd.logs());
    let out = lvsd.stdout();
    assert!(
        out.lines().any(|l| l.starts_with("lvsd stats:")),
        "{}",
        lvsd.logs()
    );
}

/// tshark on director 2's `ext0`, writing VRRP and ICMPv6 to `pcap`. (Not on the router:
/// the bridge's MLD snooping forwards ff02::12 only to ports that joined it, the
/// directors'; ff02::1 is flooded.)
fn capture(lab: &Lab, pcap: &Path) -> Process {
    let mut cmd = lab.director(2).command("tshark");
    cmd.args([
        "-i",
        "ext0",
        "-n",
        "-q",
        "-f",
        "ip6 proto 112 or icmp6",
        "-a",
        "duration:120",
        "-w",
    ])
    .arg(pcap)
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null());
    let p = lab
        .director(2)
        .spawn_named("tshark", cmd)
        .expect("tshark is needed (apt-get install tshark)");
    // tshark writes the file header once it captures.
    let started = wait_until(Duration::from_secs(10), || {
        std::fs::metadata(pcap).is_ok_and(|m| m.len() > 0)
    });
    assert!(started, "tshark did not start capturing");
    std::thread::sleep(Duration::from_millis(300));
    p
}

/// `tshark -r pcap -Y filter -T fields -e ...`, one `Vec` of fields per packet.
fn fields(pcap: &Path, filter: &str, names: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = std::process::Command::new("tshark");
    cmd.args(["-n", "-r"])
        .arg(pcap)
        .args(["-Y", filter, "-T", "fields"]);
    for n in names {
        cmd.args(["-e", n]);
    }
    let out = cmd.output().expect("tshark -r");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

/// Checks, in the capture, director `n`'s adverts and its unsolicited NAs for the VIP.
fn check_wire(lab: &Lab, pcap: &Path, n: usize, priority: u8) {
    let ll = link_local(lab, n).to_string();
    let adverts = fields(
        pcap,
        "vrrp",
        &[
            "ipv6.src",
            "ipv6.dst",
            "ipv6.hlim",
            "vrrp.version",
            "vrrp.prio",
            "vrrp.checksum.status",
            "vrrp.ipv6_addr",
        ],
    );
    let ours: Vec<&Vec<String>> = adverts.iter().filter(|f| f[0] == ll).collect();
    println!(
        "director {n}: {} adverts from {ll}; first: {:?}",
        ours.len(),
        ours.first()
    );
    assert!(
        ours.len() >= 5,
        "too few adverts from {ll} in the capture: {adverts:?}"
    );
    for f in &ours {
        assert_eq!(f[1], "ff02::12", "{f:?}");
        assert_eq!(f[2], "255", "{f:?}");
        assert_eq!(f[3], "3", "{f:?}");
        // Wireshark's checksum status: 0 bad, 1 good, 2 unverified.
        assert_eq!(f[5], "1", "checksum not good: {f:?}");
        assert_eq!(f[6], vip6(0).to_string(), "{f:?}");
    }
    assert!(
        ours.iter().any(|f| f[4] == priority.to_string()),
        "no advert with priority {priority}: {ours:?}"
    );
    let nas = fields(
        pcap,
        "icmpv6.type == 136",
        &[
            "eth.src",
            "ipv6.src",
            "ipv6.dst",
            "ipv6.hlim",
            "icmpv6.nd.na.flag.r",
            "icmpv6.nd.na.flag.s",
            "icmpv6.nd.na.flag.o",
            "icmpv6.nd.na.target_address",
            "icmpv6.checksum.status",
        ],
    );
    let mac = director_mac(lab, n);
    let unsolicited: Vec<&Vec<String>> = nas
        .iter()
        .filter(|f| f[0] == mac && f[2] == "ff02::1" && f[7] == vip6(0).to_string())
        .collect();
    println!(
        "director {n}: {} unsolicited NAs for {}; first: {:?}",
        unsolicited.len(),
        vip6(0),
        unsolicited.first()
    );
    assert!(
        !unsolicited.is_empty(),
        "no unsolicited NA for {} from {mac}: {nas:?}",
        vip6(0)
    );
    for f in &unsolicited {
        assert_eq!(f[1], ll, "NA source: {f:?}");
        assert_eq!(f[3], "255", "{f:?}");
        // Router, not Solicited, Override (tshark prints flags as True/False or 1/0).
        let set = |v: &str| v == "1" || v.eq_ignore_ascii_case("true");
        assert!(set(&f[4]) && !set(&f[5]) && set(&f[6]), "flags: {f:?}");
        assert_eq!(f[8], "1", "NA checksum not good: {f:?}");
    }
}

#[test]
fn two_lvsd_fail_over_an_ipv6_vip() {
    require_root!();
    let _serial = serial();
    let lab = lab();
    let pcap = lab.work_dir().join("vrrp6.pcap");
    let cap = capture(&lab, &pcap);
    let one = lab.start_lvsd(1, &config(150)).expect("lvsd 1");
    let two = lab.start_lvsd(2, &config(100)).expect("lvsd 2");
    assert!(
        wait_sole_holder(&lab, 1, TAKEOVER),
        "director 1 never became the sole VIP holder\n{}\n{}",
        one.logs(),
        two.logs()
    );
    assert!(wait_until(TAKEOVER, || state(&one) == VrrpState::Master
        && state(&two) == VrrpState::Backup));
    // The backup names the master by its link-local address (the advert source).
    let want = Some(IpAddr::V6(link_local(&lab, 1)));
    assert!(
        wait_until(TAKEOVER, || vrrp_info(&two)[0].master == want),
        "{:?}",
        vrrp_info(&two)
    );
    assert_eq!(vrrp_info(&two)[0].master_priority, Some(150));
    let info = vrrp_info(&one);
    assert_eq!(info[0].vips.len(), 1);
    assert_eq!(info[0].vips[0].addr, IpAddr::V6(vip6(0)));
    assert_eq!(info[0].vips[0].len, 128);
    assert!(
        ping_from_router(&lab, TAKEOVER),
        "VIP unreachable: {}",
        debug_state(&lab)
    );
    assert!(router_follows(&lab, 1));
    // A second of adverts (10) for the capture.
    std::thread::sleep(Duration::from_secs(1));

    // kill -9: the backup takes over and its NA moves the router's entry.
    let t = Instant::now();
    one.process().kill().expect("kill -9");
    assert!(
        wait_until(TAKEOVER, || state(&two) == VrrpState::Master
            && holds(&lab, 2)),
        "{}",
        two.logs()
    );
    assert!(
        router_follows(&lab, 2),
        "the router's neighbour entry still names {:?}",
        router_neighbour(&lab)
    );
    println!(
        "kill -9: director 2 held the VIP and the router followed after {:?}",
        t.elapsed()
    );
    assert!(ping_from_router(&lab, TAKEOVER));

    // The 150 returns (removing its leftover VIP), preempts, and the router follows.
    let one = lab.start_lvsd(1, &config(150)).expect("lvsd 1 again");
    assert!(
        wait_sole_holder(&lab, 1, TAKEOVER),
        "{}\n{}",
        one.logs(),
        two.logs()
    );
    assert!(router_follows(&lab, 1));
    assert!(ping_from_router(&lab, TAKEOVER));

    // SIGTERM: priority 0, the backup takes over after Skew_Time; a stopped lvsd keeps
    // no VIP.
    let t = Instant::now();
    stop_quiet(&one);
    assert!(!holds(&lab, 1), "a stopped lvsd keeps no IPv6 VIP");
    assert!(wait_sole_holder(&lab, 2, TAKEOVER));
    assert!(router_follows(&lab, 2));
    println!("SIGTERM: director 2 took over after {:?}", t.elapsed());
    let reason = vrrp_info(&two)[0].last_reason.clone();
    assert!(reason.contains("priority 0"), "{reason}");
    stop_quiet(&two);
    assert!(!holds(&lab, 2));

    // SIGTERM: tshark flushes its file (SIGKILL would lose the buffered packets).
    let _ = cap.stop(Duration::from_secs(5));
    check_wire(&lab, &pcap, 1, 150);
    check_wire(&lab, &pcap, 2, 100);
}

#[test]
fn keepalived_ipv6_both_ways() {
    require_root!();
    let _serial = serial();
    let lab = lab();
    let pcap = lab.work_dir().join("vrrp6-keepalived.pcap");
    let cap = capture(&lab, &pcap);
    let ka_spec = |priority: u8| KeepalivedSpec {
        vrid: 51,
        priority,
        version: 3,
        advert_interval: Duration::from_millis(100),
        interface: "ext0".into(),
        vips: vec![vip6(0).to_string()],
        unicast_src: None,
        unicast_peers: Vec::new(),
        preempt: true,
    };
    let ka = Keepalived::start(&lab, 2, &ka_spec(100))
        .expect("keepalived is needed for this test (apt-get install keepalived)");
    let l = lab.start_lvsd(1, &config(150)).expect("lvsd");
    // lvsd 150 wins over keepalived 100.
    assert!(
        wait_sole_holder(&lab, 1, TAKEOVER)
            && wait_until(TAKEOVER, || state(&l) == VrrpState::Master),
        "lvsd 150 did not win\n{}\n{}",
        l.logs(),
        ka.logs()
    );
    // keepalived hears lvsd's adverts (else it would hold the VIP too): stays without it.
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        !holds(&lab, 2),
        "keepalived holds the VIP too\n{}",
        ka.logs()
    );
    assert!(ping_from_router(&lab, TAKEOVER));
    assert!(router_follows(&lab, 1));

    // kill -9 lvsd: keepalived takes over, and its NA moves the router's entry.
    l.process().kill().expect("kill -9");
    let t = Instant::now();
    assert!(
        wait_until(TAKEOVER, || holds(&lab, 2)),
        "keepalived never took over\n{}",
        ka.logs()
    );
    assert!(router_follows(&lab, 2));
    println!(
        "keepalived took over {:?} after kill -9 of lvsd",
        t.elapsed()
    );

    // lvsd returns with 150 and takes the VIP back (removing its leftover).
    let l = lab.start_lvsd(1, &config(150)).expect("lvsd again");
    assert!(
        wait_sole_holder(&lab, 1, TAKEOVER),
        "lvsd did not take the VIP back\n{}\n{}",
        l.logs(),
        ka.logs()
    );
    assert!(router_follows(&lab, 1), "lvsd's NA did not move the router");
    assert!(ping_from_router(&lab, TAKEOVER));
    // Graceful stop: priority 0, keepalived takes over.
    let t = Instant::now();
    stop_quiet(&l);
    assert!(wait_sole_holder(&lab, 2, TAKEOVER), "{}", ka.logs());
    println!(
        "keepalived took over {:?} after SIGTERM of lvsd",
        t.elapsed()
    );

    // The other way round: keepalived 100 is master, lvsd 50 stays backup.
    let l = lab.start_lvsd(1, &config(50)).expect("lvsd 50");
    assert!(wait_until(TAKEOVER, || state(&l) == VrrpState::Backup));
    std::thread::sleep(Duration::from_millis(1000));
    let info = vrrp_info(&l);
    assert_eq!(info[0].state, VrrpState::Backup, "{info:?}\n{}", l.logs());
    assert_eq!(
        info[0].master,
        Some(IpAddr::V6(link_local(&lab, 2))),
        "{info:?}"
    );
    assert_eq!(info[0].master_priority, Some(100), "{info:?}");
    assert!(
        info[0].rejected.is_empty(),
        "lvsd rejected keepalived's adverts: {info:?}"
    );
    assert!(holds(&lab, 2) && !holds(&lab, 1));
    // keepalived crashes: lvsd takes over, and its NA moves the router.
    let t = Instant::now();
    ka.kill();
    assert!(
        wait_until(TAKEOVER, || state(&l) == VrrpState::Master
            && holds(&lab, 1)),
        "lvsd never took over\n{}",
        l.logs()
    );
    assert!(router_follows(&lab, 1));
    println!(
        "lvsd took over {:?} after kill -9 of keepalived",
        t.elapsed()
    );
    assert!(ping_from_router(&lab, TAKEOVER));
    // keepalived returns with 100 and preempts lvsd's 50.
    drop(ka);
    let ka = Keepalived::start(&lab, 2, &ka_spec(100))
        .expect("keepalived is needed for this test (apt-get install keepalived)");
    assert!(
        wait_until(TAKEOVER, || state(&l) == VrrpState::Backup
            && !holds(&lab, 1)),
        "keepalived did not take over again\n{}\n{}",
        l.logs(),
        ka.logs()
    );
    assert!(wait_until(TAKEOVER, || holds(&lab, 2)), "{}", ka.logs());
    stop_quiet(&l);
    ka.stop();
    // SIGTERM: tshark flushes its file (SIGKILL would lose the buffered packets).
    let _ = cap.stop(Duration::from_secs(5));
    check_wire(&lab, &pcap, 1, 150);
}

#[test]
fn two_lvsd_ipv6_unicast() {
    require_root!();
    let _serial = serial();
    let lab = lab();
    let unicast = |n: usize, priority: u8| {
        format!(
            "{}unicast_src = \"{}\"\nunicast_peer = [\"{}\"]\n",
            config(priority),
            director_ext_addr6(n),
            director_ext_addr6(3 - n)
        )
    };
    let one = lab.start_lvsd(1, &unicast(1, 150)).expect("lvsd 1");
    let two = lab.start_lvsd(2, &unicast(2, 100)).expect("lvsd 2");
    assert!(
        wait_sole_holder(&lab, 1, TAKEOVER),
        "{}\n{}",
        one.logs(),
        two.logs()
    );
    let want = Some(IpAddr::V6(director_ext_addr6(1)));
    assert!(
        wait_until(TAKEOVER, || vrrp_info(&two)[0].master == want
            && state(&two) == VrrpState::Backup),
        "{:?}",
        vrrp_info(&two)
    );
    std::thread::sleep(Duration::from_millis(500));
    let info = vrrp_info(&two);
    assert!(info[0].rejected.is_empty(), "{info:?}");
    assert!(info[0].adverts_received >= 3, "{info:?}");
    one.process().kill().expect("kill -9");
    assert!(
        wait_until(TAKEOVER, || state(&two) == VrrpState::Master
            && holds(&lab, 2)),
        "{}",
        two.logs()
    );
    stop_quiet(&two);
    assert!(!holds(&lab, 2));
}

/// The internet checksum over `data` after the IPv6 pseudo-header of a VRRP message.
fn vrrp6_checksum(src: Ipv6Addr, dst: Ipv6Addr, data: &[u8]) -> u16 {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&src.octets());
    bytes.extend_from_slice(&dst.octets());
    bytes.extend_from_slice(&(data.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&[0, 0, 0, 112]);
    bytes.extend_from_slice(data);
    let mut sum: u32 = 0;
    for c in bytes.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet frame with a VRRPv3 advert for the VIP from fe80::1 to ff02::12.
fn advert6_frame(src_mac: [u8; 6], prio: u8, hops: u8, version: u8, good: bool) -> Vec<u8> {
    let src: Ipv6Addr = "fe80::1".parse().unwrap();
    let dst: Ipv6Addr = "ff02::12".parse().unwrap();
    let mut vrrp = vec![(version << 4) | 1, 51, prio, 1, 0x00, 10, 0, 0];
    vrrp.extend_from_slice(&vip6(0).octets());
    let c = vrrp6_checksum(src, dst, &vrrp);
    let c = if good { c } else { c ^ 0x5a5a };
    vrrp[6..8].copy_from_slice(&c.to_be_bytes());
    let mut f = vec![0x33, 0x33, 0, 0, 0, 0x12];
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
    f.extend_from_slice(&(vrrp.len() as u16).to_be_bytes());
    f.extend_from_slice(&[112, hops]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(&vrrp);
    f
}

#[test]
fn spoofed_ipv6_adverts_change_nothing() {
    require_root!();
    let _serial = serial();
    let lab = lab();
    let one = lab.start_lvsd(1, &config(150)).expect("lvsd 1");
    let two = lab.start_lvsd(2, &config(100)).expect("lvsd 2");
    assert!(wait_sole_holder(&lab, 1, TAKEOVER), "{}", one.logs());
    assert!(wait_until(TAKEOVER, || state(&two) == VrrpState::Backup));
    let mac = lab.router().mac("eth1").expect("router mac");
    let good = advert6_frame(mac, 254, 255, 3, true);
    let mut truncated = good.clone();
    truncated.truncate(good.len() - 3);
    truncated[18..20].copy_from_slice(&21u16.to_be_bytes());
    let bad: Vec<Vec<u8>> = vec![
        advert6_frame(mac, 254, 255, 3, false), // checksum
        advert6_frame(mac, 254, 254, 3, true),  // hop limit
        advert6_frame(mac, 254, 255, 2, true),  // VRRPv2 over IPv6
        truncated,
    ];
    for _ in 0..20 {
        lab.router().send_raw_frames("eth1", &bad).expect("sending");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(state(&one), VrrpState::Master, "{}", one.logs());
    assert_eq!(state(&two), VrrpState::Backup);
    assert!(holds(&lab, 1) && !holds(&lab, 2));
    let info = vrrp_info(&one);
    let rejected = |name: &str| {
        info[0]
            .rejected
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, c)| *c)
    };
    println!("rejected by the master: {:?}", info[0].rejected);
    assert!(rejected("checksum_err") >= 20, "{info:?}");
    assert!(rejected("ip_ttl_err") >= 20, "{info:?}");
    assert!(rejected("version_err") >= 20, "{info:?}");
    assert!(rejected("packet_len_err") >= 20, "{info:?}");
    // Control: the well-formed priority-254 advert is heard, and the master steps down.
    lab.router()
        .send_raw_frames("eth1", &[good])
        .expect("sending");
    let spoofer = Some(IpAddr::V6("fe80::1".parse().unwrap()));
    assert!(
        wait_until(TAKEOVER, || vrrp_info(&one)[0].master == spoofer
            || state(&one) == VrrpState::Backup),
        "{:?}",
        vrrp_info(&one)
    );
    // Nobody speaks for fe80::1 again: the 150 comes back.
    assert!(wait_sole_holder(&lab, 1, TAKEOVER));
    stop_quiet(&one);
    stop_quiet(&two);
}
