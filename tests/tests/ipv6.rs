//! IPv6 end to end through a real lvsd (issue #8): byte-identical transfers for NAT66, DR
//! over IPv6 and TUN (IPv6-in-IPv6, and the mixed families IPVS allows for tunnels:
//! IPv4-in-IPv6 and IPv6-in-IPv4), path MTU discovery through an IPv6 tunnel (ICMPv6
//! Packet Too Big from the VIP), ICMPv6 errors relayed and translated for NAT66, and the
//! NDP property DR over IPv6 relies on: a real server never answers a Neighbor Solicitation
//! for a VIP it holds on `lo`.
//!
//! Every lab here is built with `LabSpec::ipv6(true)` (the plan in `lvs_lab::lab`): client
//! 2001:db8:c::10, VIP 2001:db8:f::10, real servers 2001:db8:b::11.. . TUN real servers run
//! `lvsd realserver --mode tun` (userspace decapsulation of every tunnel family). Every
//! failure message carries lvsd's counters at that moment (SIGUSR1) and its stderr.

// Helpers outside #[test] fns are not covered by clippy's allow-unwrap-in-tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use lvs_lab::client;
use lvs_lab::node::{self, ECHO_PORT, HTTP_PORT};
use lvs_lab::{
    CLIENT_ADDR6, Host, Lab, LabSpec, LogFiles, LvsdProcess, Process, ROUTER_CLIENT_ADDR6,
    RealServerSpec, Signal, real_server_addr, real_server_addr6, require_root, vip, vip6,
};

mod common;
use common::*;

/// A UDP port no backend listens on.
const CLOSED_UDP_PORT: u16 = 9999;

/// How the real servers of a lab are prepared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Gateway = director 1's DIP (v4 and v6).
    Nat,
    /// Gateway = the router, `vip6(0)` on `lo`.
    Dr,
    /// Gateway = the router, nothing prepared (`lvsd realserver` does it).
    Tun,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Nat => "nat",
            Kind::Dr => "dr",
            Kind::Tun => "tun",
        }
    }
}

/// An IPv6 lab with `n` real servers prepared for `kind`, backends running.
fn lab6(kind: Kind, n: usize) -> Lab {
    let mut spec = LabSpec::new(NODE).ipv6(true);
    for _ in 0..n {
        spec = spec.real_server(match kind {
            Kind::Nat => RealServerSpec::nat(),
            Kind::Dr => RealServerSpec::dr([vip6(0)]),
            Kind::Tun => RealServerSpec::bare(),
        });
    }
    let lab = Lab::build(spec).expect("building the IPv6 lab");
    lab.start_backends().expect("starting backends");
    lab
}

/// `[[virtual_server]]` for `vip` (either family) forwarding by `kind` to `servers`.
fn service(vip: SocketAddr, proto: &str, kind: Kind, servers: &[SocketAddr]) -> String {
    let mut s = format!(
        "[[virtual_server]]\naddress = \"{vip}\"\nprotocol = \"{proto}\"\nscheduler = \"rr\"\n\
         forwarding = \"{}\"\n",
        kind.word()
    );
    for rs in servers {
        s.push_str(&format!(
            "\n[[virtual_server.real_server]]\naddress = \"{rs}\"\n"
        ));
    }
    s.push('\n');
    s
}

/// `(RIP6 of rs1..=rsN, port)`.
fn rips6(n: usize, port: u16) -> Vec<SocketAddr> {
    (1..=n)
        .map(|k| SocketAddr::from((real_server_addr6(k), port)))
        .collect()
}

/// `(RIP of rs1..=rsN, port)` (IPv4).
fn rips4(n: usize, port: u16) -> Vec<SocketAddr> {
    (1..=n)
        .map(|k| SocketAddr::from((real_server_addr(k), port)))
        .collect()
}

/// TCP echo, HTTP and UDP echo services on `vip` to `rips(port)`.
fn three_services(vip: IpAddr, kind: Kind, rips: &dyn Fn(u16) -> Vec<SocketAddr>) -> String {
    let mut c = service((vip, ECHO_PORT).into(), "tcp", kind, &rips(ECHO_PORT));
    c += &service((vip, HTTP_PORT).into(), "tcp", kind, &rips(HTTP_PORT));
    c += &service((vip, ECHO_PORT).into(), "udp", kind, &rips(ECHO_PORT));
    c
}

/// What to print when something fails: lvsd's counters right now and its stderr.
fn diag(lvsd: &LvsdProcess) -> String {
    let err = lvsd.stderr();
    let lines: Vec<&str> = err.lines().collect();
    let tail = lines[lines.len().saturating_sub(40)..].join("\n");
    format!("{}\n--- lvsd stderr (tail) ---\n{tail}", lvsd.stats_now())
}

/// 3 × 1 MiB echo, 3 × 1 MiB download and UDP datagrams of `udp_sizes`, all byte-identical,
/// from the client to `vip`.
fn transfers(lab: &Lab, lvsd: &LvsdProcess, vip: IpAddr, udp_sizes: &[usize]) {
    lab.client().run(|| {
        let payload: Vec<u8> = (0..1u32 << 20)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for round in 0..3 {
            let back =
                client::tcp_echo_timeout((vip, ECHO_PORT), &payload, Duration::from_secs(30))
                    .unwrap_or_else(|e| panic!("echo round {round} to {vip}: {e}\n{}", diag(lvsd)));
            assert!(
                back == payload,
                "echo round {round}: 1 MiB came back different ({} bytes)\n{}",
                back.len(),
                diag(lvsd)
            );
        }
        for round in 0..3 {
            let (name, body) = client::http_get((vip, HTTP_PORT), "/bytes/1048576")
                .unwrap_or_else(|e| panic!("download {round} from {vip}: {e}\n{}", diag(lvsd)));
            assert!(
                body == node::pattern(1 << 20),
                "download from {name} differs ({} bytes)\n{}",
                body.len(),
                diag(lvsd)
            );
        }
        for &size in udp_sizes {
            let data: Vec<u8> = (0..size).map(|i| (i * 7 + size) as u8).collect();
            let back = client::udp_exchange((vip, ECHO_PORT), &data, Duration::from_secs(3))
                .unwrap_or_else(|e| panic!("udp {size} bytes to {vip}: {e}\n{}", diag(lvsd)));
            assert_eq!(back, data, "udp {size} bytes\n{}", diag(lvsd));
        }
    });
}

/// The per-service line of lvsd's final counters for `proto` on `vip`:`port` (whatever the
/// bracket style of the address).
fn service_line<'a>(stats: &'a str, proto: &str, vip: IpAddr, port: u16) -> &'a str {
    let bracketed = SocketAddr::from((vip, port)).to_string();
    let bare = format!("{vip}:{port}");
    stats
        .lines()
        .find(|l| l.starts_with(proto) && (l.contains(&bracketed) || l.contains(&bare)))
        .unwrap_or_else(|| panic!("no {proto} line for {bracketed} in:\n{stats}"))
}

/// Starts `lvsd realserver --vip V... --mode tun` in real servers `1..=n`.
fn tun_helpers(lab: &Lab, n: usize, vips: &[IpAddr]) -> Vec<(Process, LogFiles)> {
    let words: Vec<String> = vips.iter().map(ToString::to_string).collect();
    let mut args: Vec<&str> = Vec::new();
    for w in &words {
        args.extend(["--vip", w.as_str()]);
    }
    args.extend(["--mode", "tun"]);
    (1..=n)
        .map(|k| {
            lab.start_realserver_helper(k, &args)
                .unwrap_or_else(|e| panic!("starting the helper in rs{k}: {e}"))
        })
        .collect()
}

/// Stops a helper with SIGTERM, checks it exited 0, returns its decapsulator line.
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
    out.lines()
        .find(|l| l.contains("decapsulator delivered="))
        .unwrap_or_else(|| panic!("no decapsulator stats:\n{out}"))
        .to_string()
}

/// A counter of `/proc/net/snmp6` (e.g. `Icmp6OutParmProblems`) of `host`'s namespace.
fn snmp6(host: &Host, field: &str) -> u64 {
    host.run(|| {
        let text = fs::read_to_string("/proc/thread-self/net/snmp6").expect("snmp6");
        text.lines()
            .find_map(|l| {
                let mut it = l.split_whitespace();
                (it.next() == Some(field)).then(|| it.next().unwrap().parse().unwrap())
            })
            .unwrap_or_else(|| panic!("no {field} in snmp6"))
    })
}

/// `ICMP OutDestUnreachs` of `host`'s namespace (`/proc/net/snmp`, IPv4).
fn icmp4_out_unreachable(host: &Host) -> u64 {
    host.run(|| {
        let text = fs::read_to_string("/proc/thread-self/net/snmp").expect("snmp");
        let mut lines = text.lines().filter(|l| l.starts_with("Icmp:"));
        let (names, values) = (lines.next().unwrap(), lines.next().unwrap());
        let i = names
            .split_whitespace()
            .position(|n| n == "OutDestUnreachs")
            .unwrap();
        values.split_whitespace().nth(i).unwrap().parse().unwrap()
    })
}

/// The ICMP errors a host's kernel sent that would betray an unhandled tunnel packet:
/// ICMPv6 parameter problems and destination unreachables, ICMP destination unreachables.
fn tunnel_complaints(host: &Host) -> [u64; 3] {
    [
        snmp6(host, "Icmp6OutParmProblems"),
        snmp6(host, "Icmp6OutDestUnreachs"),
        icmp4_out_unreachable(host),
    ]
}

// ---------------------------------------------------------------------------------------
// The IPv6 lab itself (no lvsd).

/// Every host has the plan's IPv6 addresses (usable at once: not tentative), the backends
/// answer over IPv6 (TCP, UDP from the address asked), a NAT real server's replies take
/// its IPv6 default route through director 1, a DR real server answers from the VIP on its
/// `lo`, and a link taken down keeps its IPv6 addresses.
#[test]
fn ipv6_lab_follows_the_address_plan() {
    require_root!();
    let _serial = serial();
    let lab = Lab::build(
        LabSpec::new(NODE)
            .ipv6(true)
            .real_server(RealServerSpec::nat())
            .real_server(RealServerSpec::dr([vip6(0)])),
    )
    .expect("building the IPv6 lab");
    lab.start_backends().expect("starting backends");
    let want: &[(&str, &[(&str, Ipv6Addr)])] = &[
        ("client", &[("eth0", CLIENT_ADDR6)]),
        (
            "router",
            &[
                ("eth0", ROUTER_CLIENT_ADDR6),
                ("eth1", lvs_lab::ROUTER_FRONT_ADDR6),
                ("eth2", lvs_lab::ROUTER_BACK_ADDR6),
            ],
        ),
        (
            "director1",
            &[
                ("ext0", lvs_lab::director_ext_addr6(1)),
                ("int0", lvs_lab::director_int_addr6(1)),
            ],
        ),
        ("rs1", &[("eth0", real_server_addr6(1))]),
        ("rs2", &[("eth0", real_server_addr6(2)), ("lo", vip6(0))]),
    ];
    for (name, addrs) in want {
        let host = lab.host(name).unwrap();
        let have = host.addresses6().unwrap();
        for (ifname, addr) in *addrs {
            assert!(
                have.iter().any(|a| a.ifname == *ifname && a.addr == *addr),
                "{name}: no {addr} on {ifname}: {have:?}"
            );
        }
        let tentative = ip(host, &["-6", "addr", "show", "tentative"]);
        assert!(
            tentative.trim().is_empty(),
            "{name}: tentative addresses: {tentative}"
        );
    }
    assert_eq!(lab.client().addr6(), CLIENT_ADDR6);
    assert_eq!(lab.real_server(2).addr6(), real_server_addr6(2));
    // rs1 (NAT) answers through director 1 (its IPv6 default route), rs2 (DR) through the
    // router; both reachable from the client with the lab's routes alone.
    lab.client().run(|| {
        for k in [1, 2] {
            let (name, body) = client::http_get((real_server_addr6(k), HTTP_PORT), "/bytes/70000")
                .unwrap_or_else(|e| panic!("rs{k} over IPv6: {e}"));
            assert_eq!(name, format!("rs{k}"));
            assert!(body == node::pattern(70_000));
            let echoed = client::udp_exchange(
                (real_server_addr6(k), ECHO_PORT),
                b"v6",
                Duration::from_secs(2),
            )
            .unwrap_or_else(|e| panic!("rs{k} UDP over IPv6: {e}"));
            assert_eq!(echoed, b"v6");
        }
    });
    let via = ip(
        lab.real_server(1),
        &["-6", "route", "get", &CLIENT_ADDR6.to_string()],
    );
    assert!(
        via.contains(&format!("via {}", lvs_lab::director_int_addr6(1))),
        "rs1's route to the client: {via}"
    );
    // rs2 answers UDP for the VIP from the VIP (the client's socket is connected to it).
    lab.router()
        .replace_route6(vip6(0), 128, real_server_addr6(2))
        .unwrap();
    lab.client().run(|| {
        let name = client::udp_name((vip6(0), node::UDP_NAME_PORT))
            .unwrap_or_else(|e| panic!("UDP to rs2's VIP: {e}"));
        assert_eq!(name, "rs2");
    });
    lab.director(1).set_link_up("ext0", false).unwrap();
    assert!(
        lab.director(1)
            .has_address(lvs_lab::director_ext_addr6(1))
            .unwrap(),
        "ext0 lost its IPv6 address when taken down"
    );
}

// ---------------------------------------------------------------------------------------
// NAT66 and DR over IPv6.

#[test]
fn nat66_transfers_are_byte_identical() {
    require_root!();
    let _serial = serial();
    let lab = lab6(Kind::Nat, 3);
    let v = IpAddr::V6(vip6(0));
    let mut config = three_services(v, Kind::Nat, &|p| rips6(3, p));
    // Port translation: VIP:8080 -> RIP:80.
    config += &service((v, 8080).into(), "tcp", Kind::Nat, &rips6(3, HTTP_PORT));
    let lvsd = lab.start_lvsd(1, &config).expect("starting lvsd");
    // 1452 = 1500 - 40 (IPv6) - 8 (UDP): the largest datagram in one packet.
    transfers(&lab, &lvsd, v, &[1, 18, 512, 1000, 1452]);
    lab.client().run(|| {
        let (name, body) = client::http_get((v, 8080), "/")
            .unwrap_or_else(|e| panic!("port-translated request: {e}\n{}", diag(&lvsd)));
        assert_eq!(String::from_utf8_lossy(&body), format!("{name}\n"));
    });
    let stats = stop_and_check(&lvsd);
    let udp = service_line(&stats, "UDP", v, ECHO_PORT);
    assert_eq!(counter(udp, "conns"), 5, "{udp}\n{stats}");
    assert!(stats.contains(" Masq "), "the Forward word: {stats}");
}

#[test]
fn dr6_transfers_are_byte_identical() {
    require_root!();
    let _serial = serial();
    let lab = lab6(Kind::Dr, 3);
    let v = IpAddr::V6(vip6(0));
    let config = three_services(v, Kind::Dr, &|p| rips6(3, p));
    let lvsd = lab.start_lvsd(1, &config).expect("starting lvsd");
    transfers(&lab, &lvsd, v, &[1, 18, 512, 1000, 1452]);
    let stats = stop_and_check(&lvsd);
    let udp = service_line(&stats, "UDP", v, ECHO_PORT);
    assert_eq!(counter(udp, "conns"), 5, "{udp}\n{stats}");
    assert!(stats.contains(" Route "), "the Forward word: {stats}");
}

#[test]
fn dr6_rr_lands_on_every_server() {
    require_root!();
    let _serial = serial();
    let lab = lab6(Kind::Dr, 3);
    let v = IpAddr::V6(vip6(0));
    let lvsd = lab
        .start_lvsd(
            1,
            &service((v, HTTP_PORT).into(), "tcp", Kind::Dr, &rips6(3, HTTP_PORT)),
        )
        .expect("starting lvsd");
    let to = SocketAddr::from((v, HTTP_PORT));
    let names = lab.client().run(|| {
        (0..30)
            .map(|i| {
                let r = client::http_request(to, "GET", "/", Duration::from_secs(5))
                    .unwrap_or_else(|e| panic!("request {i} to {to}: {e}\n{}", diag(&lvsd)));
                r.backend().expect("X-Backend").to_string()
            })
            .collect::<Vec<_>>()
    });
    let got = tally(names);
    assert_eq!(
        got.values().copied().collect::<Vec<_>>(),
        vec![10, 10, 10],
        "{got:?}\n{}",
        diag(&lvsd)
    );
    stop_and_check(&lvsd);
}

/// DR over IPv6 to real servers prepared by `lvsd realserver --mode dr` rather than by the
/// lab: the helper's /128 VIP on `lo` is all they need.
#[test]
fn dr6_with_realserver_helpers() {
    require_root!();
    let _serial = serial();
    let lab = lab6(Kind::Tun, 2); // bare real servers, gateway = the router
    let v = IpAddr::V6(vip6(0));
    let vs = v.to_string();
    let helpers: Vec<_> = (1..=2)
        .map(|k| {
            lab.start_realserver_helper(k, &["--vip", &vs, "--mode", "dr"])
                .unwrap_or_else(|e| panic!("starting the helper in rs{k}: {e}"))
        })
        .collect();
    let lvsd = lab
        .start_lvsd(
            1,
            &service((v, HTTP_PORT).into(), "tcp", Kind::Dr, &rips6(2, HTTP_PORT)),
        )
        .expect("starting lvsd");
    let names = lab.client().run(|| {
        (0..4)
            .map(|i| {
                let (name, body) = client::http_get((v, HTTP_PORT), "/bytes/300000")
                    .unwrap_or_else(|e| panic!("request {i}: {e}\n{}", diag(&lvsd)));
                assert!(body == node::pattern(300_000), "body from {name} differs");
                name
            })
            .collect::<Vec<_>>()
    });
    assert_eq!(
        tally(names).values().copied().collect::<Vec<_>>(),
        vec![2, 2],
        "{}",
        diag(&lvsd)
    );
    stop_and_check(&lvsd);
    for (p, logs) in &helpers {
        p.signal(Signal::SIGTERM).expect("SIGTERM");
        let status = p
            .wait_timeout(Duration::from_secs(10))
            .expect("waiting")
            .expect("the helper did not exit within 10 s");
        assert!(status.success(), "{}", logs.stdout_text());
        assert!(
            logs.stdout_text()
                .contains("removed 2001:db8:f::10/128 from lo"),
            "{}",
            logs.stdout_text()
        );
    }
}

/// An NDP message in an Ethernet frame: `(ICMPv6 type, target address)` for Neighbor
/// Solicitations (135) and Advertisements (136) without IPv6 extension headers.
fn ndp(frame: &[u8]) -> Option<(u8, Ipv6Addr)> {
    if frame.get(12..14)? != [0x86, 0xdd] || *frame.get(14 + 6)? != 58 {
        return None;
    }
    let icmp = frame.get(14 + 40..)?;
    let typ = *icmp.first()?;
    if typ != 135 && typ != 136 {
        return None;
    }
    let target: [u8; 16] = icmp.get(8..24)?.try_into().ok()?;
    Some((typ, Ipv6Addr::from(target)))
}

/// The property DR over IPv6 relies on instead of `arp_ignore`: rs1 holds the VIP on `lo`;
/// the director, on rs1's link, tries to resolve the VIP. (1) A normal resolution: the
/// multicast solicitation reaches rs1's eth0, but the VIP's solicited-node group is joined
/// on `lo` only. (2) Unicast solicitations straight to rs1's MAC (what a neighbour with a
/// stale entry sends): rs1's stack receives them. In neither case does rs1 advertise the
/// VIP — Linux answers a Neighbor Solicitation only for addresses of the interface it
/// arrived on — so the director never resolves it. (3) Control: rs1's own address is
/// advertised and resolved at once. Everything is checked on a capture of rs1's eth0.
#[test]
fn dr6_real_server_does_not_answer_neighbor_solicitations_for_its_vip() {
    require_root!();
    let _serial = serial();
    let lab = lab6(Kind::Dr, 1);
    let rs = lab.real_server(1);
    let director = lab.director(1);
    assert!(rs.has_address(vip6(0)).unwrap(), "VIP6 on rs1's lo");
    let vip_s = vip6(0).to_string();
    // Make the VIP on-link for the director's int0 (as if a confused neighbour asked), and
    // probe stale entries after 1 s instead of 5.
    director
        .replace_device_route6(vip6(0), 128, "int0")
        .expect("on-link route to the VIP");
    director
        .sysctl_write("net/ipv6/neigh/int0/delay_first_probe_time", "1")
        .expect("delay_first_probe_time");
    // Sends one datagram a second to `dst` from the director while capturing rs1's eth0;
    // returns the NDP messages seen there.
    let poke = |dst: Ipv6Addr, secs: u64| -> Vec<(u8, Ipv6Addr)> {
        std::thread::scope(|scope| {
            let capture =
                scope.spawn(|| rs.capture("eth0", Duration::from_millis(secs * 1000 + 300)));
            std::thread::sleep(Duration::from_millis(100));
            director.run(move || {
                let s = UdpSocket::bind("[::]:0").unwrap();
                for _ in 0..secs {
                    let _ = s.send_to(b"x", (dst, 7));
                    std::thread::sleep(Duration::from_secs(1));
                }
            });
            let frames = capture.join().unwrap().expect("capturing on rs1's eth0");
            frames.iter().filter_map(|f| ndp(f)).collect()
        })
    };
    let resolved = |neigh: &str| {
        ["REACHABLE", "STALE", "DELAY", "PROBE"]
            .iter()
            .any(|s| neigh.contains(s))
    };
    let (ns, na) = (135, 136);

    // (1) Multicast solicitation.
    let seen = poke(vip6(0), 4);
    let neigh = ip(director, &["-6", "neigh", "show", &vip_s, "dev", "int0"]);
    assert!(
        seen.contains(&(ns, vip6(0))),
        "no solicitation for the VIP reached rs1 (the test proves nothing): {seen:?}"
    );
    assert!(
        !seen.contains(&(na, vip6(0))),
        "rs1 advertised the VIP: {seen:?}\n{neigh}"
    );
    assert!(!resolved(&neigh), "the director resolved the VIP: {neigh}");

    // (2) Unicast solicitations to rs1's MAC.
    let mac = rs.mac("eth0").unwrap();
    let lladdr = mac
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    ip(
        director,
        &[
            "-6", "neigh", "replace", &vip_s, "lladdr", &lladdr, "dev", "int0", "nud", "stale",
        ],
    );
    let received_before = snmp6(rs, "Icmp6InNeighborSolicits");
    let seen = poke(vip6(0), 6);
    let neigh = ip(director, &["-6", "neigh", "show", &vip_s, "dev", "int0"]);
    assert!(
        snmp6(rs, "Icmp6InNeighborSolicits") > received_before,
        "rs1's stack never received a unicast solicitation (the test proves nothing): \
         {seen:?}"
    );
    assert!(
        !seen.contains(&(na, vip6(0))),
        "rs1 answered a solicitation for the VIP it holds on lo: {seen:?}\n{neigh}"
    );
    assert!(
        !neigh.contains("REACHABLE"),
        "the director confirmed the VIP at rs1: {neigh}"
    );

    // (3) Control: rs1's own address is advertised.
    let seen = poke(real_server_addr6(1), 1);
    assert!(
        seen.contains(&(na, real_server_addr6(1))),
        "rs1 did not advertise its RIP either: {seen:?}"
    );
    let neigh = ip(
        director,
        &["-6", "neigh", "show", &real_server_addr6(1).to_string()],
    );
    assert!(
        resolved(&neigh),
        "the director did not resolve rs1's RIP: {neigh}"
    );
}

// ---------------------------------------------------------------------------------------
// ICMPv6 for NAT66.

/// UDP to a port rs1 does not listen on: rs1's ICMPv6 port unreachable comes back
/// translated (outer source the VIP, quoted destination VIP:9999), so the client's
/// connected socket reports ECONNREFUSED. And the client link's narrower MTU: the router's
/// Packet Too Big about rs1's replies reaches rs1 (translated back), whose route cache then
/// holds the client's MTU, and the download completes.
#[test]
fn nat66_icmpv6_errors_are_relayed_both_ways() {
    require_root!();
    let _serial = serial();
    let lab = lab6(Kind::Nat, 1);
    let v = IpAddr::V6(vip6(0));
    let mut config = service(
        (v, CLOSED_UDP_PORT).into(),
        "udp",
        Kind::Nat,
        &rips6(1, CLOSED_UDP_PORT),
    );
    config += &service(
        (v, HTTP_PORT).into(),
        "tcp",
        Kind::Nat,
        &rips6(1, HTTP_PORT),
    );
    let lvsd = lab.start_lvsd(1, &config).expect("starting lvsd");

    lab.client().run(|| {
        let s = UdpSocket::bind("[::]:0").unwrap();
        s.connect((v, CLOSED_UDP_PORT)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s.send(b"anyone there?").unwrap();
        let mut buf = [0u8; 64];
        let err = s
            .recv(&mut buf)
            .expect_err("no UDP answer is possible from a closed port");
        assert_eq!(
            err.kind(),
            ErrorKind::ConnectionRefused,
            "{err}\n{}",
            diag(&lvsd)
        );
    });

    ip(lab.router(), &["link", "set", "dev", "eth0", "mtu", "1300"]);
    let client6 = CLIENT_ADDR6.to_string();
    let before = ip(lab.real_server(1), &["-6", "route", "get", &client6]);
    assert!(!before.contains("mtu 1300"), "no PMTU entry yet: {before}");
    lab.client().run(|| {
        let (_, body) = client::http_get((v, HTTP_PORT), "/bytes/1048576")
            .unwrap_or_else(|e| panic!("download over the narrow link: {e}\n{}", diag(&lvsd)));
        assert!(body == node::pattern(1 << 20), "download differs");
    });
    let after = ip(lab.real_server(1), &["-6", "route", "get", &client6]);
    assert!(
        after.contains("mtu 1300"),
        "rs1's route cache: {after}\n{}",
        diag(&lvsd)
    );
    stop_and_check(&lvsd);
}

// ---------------------------------------------------------------------------------------
// TUN: IPv6-in-IPv6 and the mixed families.

/// 3 real servers (IPv6 lab) decapsulating with `lvsd realserver` for `helper_vip`;
/// services on `vip` to `rips`; transfers with `udp_sizes`; checks lvsd's and the
/// helpers' counters, and that no real server complained about a tunnel packet.
fn tun_transfers(vip: IpAddr, rips: &dyn Fn(u16) -> Vec<SocketAddr>, udp_sizes: &[usize]) {
    let _serial = serial();
    let lab = lab6(Kind::Tun, 3);
    let helpers = tun_helpers(&lab, 3, &[vip]);
    let complaints_before: Vec<_> = lab.real_servers().iter().map(tunnel_complaints).collect();
    let lvsd = lab
        .start_lvsd(1, &three_services(vip, Kind::Tun, rips))
        .expect("starting lvsd");
    transfers(&lab, &lvsd, vip, udp_sizes);
    let stats = stop_and_check(&lvsd);
    let udp = service_line(&stats, "UDP", vip, ECHO_PORT);
    assert_eq!(
        counter(udp, "conns"),
        udp_sizes.len() as u64,
        "{udp}\n{stats}"
    );
    assert!(stats.contains(" Tunnel "), "the Forward word: {stats}");
    let complaints_after: Vec<_> = lab.real_servers().iter().map(tunnel_complaints).collect();
    assert_eq!(
        complaints_before, complaints_after,
        "a real server answered tunnel packets with ICMP errors \
         ([ICMPv6 parameter problems, ICMPv6 unreachables, ICMP unreachables] per server)"
    );
    for (k, (p, logs)) in helpers.iter().enumerate() {
        let line = stop_helper(p, logs);
        assert!(counter(&line, "delivered") > 0, "rs{}: {line}", k + 1);
        assert_eq!(counter(&line, "drop.not_vip"), 0, "rs{}: {line}", k + 1);
        assert_eq!(counter(&line, "drop.not_local"), 0, "rs{}: {line}", k + 1);
        assert_eq!(counter(&line, "drop.malformed"), 0, "rs{}: {line}", k + 1);
    }
}

/// IPv6 VIP, IPv6 real servers: IPv6-in-IPv6 (next header 41). UDP up to 1412 bytes =
/// 1500 - 40 (outer) - 40 (inner) - 8.
#[test]
fn tun6_ipv6_in_ipv6_transfers_are_byte_identical() {
    require_root!();
    tun_transfers(
        IpAddr::V6(vip6(0)),
        &|p| rips6(3, p),
        &[1, 18, 512, 1000, 1412],
    );
}

/// IPv4 VIP, IPv6 real servers: IPv4-in-IPv6 (next header 4). UDP up to 1432 bytes =
/// 1500 - 40 (outer) - 20 (inner) - 8.
#[test]
fn tun_ipv4_in_ipv6_transfers_are_byte_identical() {
    require_root!();
    tun_transfers(
        IpAddr::V4(vip(0)),
        &|p| rips6(3, p),
        &[1, 18, 512, 1000, 1432],
    );
}

/// IPv6 VIP, IPv4 real servers: IPv6-in-IPv4 (protocol 41). UDP up to 1432 bytes =
/// 1500 - 20 (outer) - 40 (inner) - 8.
#[test]
fn tun_ipv6_in_ipv4_transfers_are_byte_identical() {
    require_root!();
    tun_transfers(
        IpAddr::V6(vip6(0)),
        &|p| rips4(3, p),
        &[1, 18, 512, 1000, 1432],
    );
}

/// Full-sized packets from the client (MSS 1440: 1500-byte packets) no longer fit once
/// encapsulated in IPv6: lvsd answers each with an ICMPv6 Packet Too Big from the VIP
/// carrying MTU 1460 (1500 - 40), the client's kernel lowers its path MTU to the VIP, and
/// the 1 MiB echo still completes byte for byte.
#[test]
fn tun6_path_mtu_discovery_lowers_the_clients_mtu() {
    require_root!();
    let _serial = serial();
    let lab = lab6(Kind::Tun, 1);
    let v = IpAddr::V6(vip6(0));
    let helpers = tun_helpers(&lab, 1, &[v]);
    let lvsd = lab
        .start_lvsd(
            1,
            &service(
                (v, ECHO_PORT).into(),
                "tcp",
                Kind::Tun,
                &rips6(1, ECHO_PORT),
            ),
        )
        .expect("starting lvsd");
    let vs = v.to_string();
    let before = ip(lab.client(), &["-6", "route", "get", &vs]);
    assert!(!before.contains("mtu"), "no PMTU entry yet: {before}");
    let ptb_before = lab
        .client()
        .run(|| fs::read_to_string("/proc/thread-self/net/snmp6").unwrap());
    let in_ptb = |text: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix("Icmp6InPktTooBigs"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    let payload = node::pattern(1 << 20);
    lab.client().run(|| {
        let back = client::tcp_echo_timeout((v, ECHO_PORT), &payload, Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("echo: {e}\n{}", diag(&lvsd)));
        assert!(back == payload, "1 MiB came back different");
    });
    let after = ip(lab.client(), &["-6", "route", "get", &vs]);
    assert!(
        after.contains("mtu 1460"),
        "the client's route cache: {after}\n{}",
        diag(&lvsd)
    );
    let ptb_after = lab
        .client()
        .run(|| fs::read_to_string("/proc/thread-self/net/snmp6").unwrap());
    assert!(
        in_ptb(&ptb_after) > in_ptb(&ptb_before),
        "the client received no Packet Too Big"
    );
    let stats = stop_and_check(&lvsd);
    assert!(
        counter(&stats, "drop.too_big") + counter(&stats, "drop.need_frag") >= 1,
        "the too-big packets are counted: {stats}"
    );
    for (p, logs) in &helpers {
        stop_helper(p, logs);
    }
}

/// A 1452-byte UDP datagram (a full 1500-byte packet) cannot be encapsulated in IPv6 on a
/// 1500-byte path: lvsd drops it and answers ICMPv6 Packet Too Big (MTU 1460) from the VIP
/// — it never fragments, as IPVS does not — and the client's kernel learns the MTU, while
/// datagrams that fit the tunnel go through.
#[test]
fn tun6_oversized_udp_is_answered_with_packet_too_big() {
    require_root!();
    let _serial = serial();
    let lab = lab6(Kind::Tun, 1);
    let v = IpAddr::V6(vip6(0));
    let helpers = tun_helpers(&lab, 1, &[v]);
    let lvsd = lab
        .start_lvsd(
            1,
            &service(
                (v, ECHO_PORT).into(),
                "udp",
                Kind::Tun,
                &rips6(1, ECHO_PORT),
            ),
        )
        .expect("starting lvsd");
    lab.client().run(|| {
        let fits: Vec<u8> = (0..1412).map(|i| i as u8).collect();
        let back = client::udp_exchange((v, ECHO_PORT), &fits, Duration::from_secs(3))
            .unwrap_or_else(|e| panic!("1412 bytes: {e}\n{}", diag(&lvsd)));
        assert_eq!(back, fits);
        let big: Vec<u8> = (0..1452).map(|i| (i * 3) as u8).collect();
        let first = client::udp_exchange((v, ECHO_PORT), &big, Duration::from_secs(2));
        assert!(
            first.is_err(),
            "a 1500-byte packet cannot cross a 1500-byte link inside a tunnel\n{}",
            diag(&lvsd)
        );
    });
    let route = ip(lab.client(), &["-6", "route", "get", &v.to_string()]);
    assert!(
        route.contains("mtu 1460"),
        "the client's route cache: {route}\n{}",
        diag(&lvsd)
    );
    let stats = stop_and_check(&lvsd);
    assert!(
        counter(&stats, "drop.too_big") + counter(&stats, "drop.need_frag") >= 1,
        "{stats}"
    );
    for (p, logs) in &helpers {
        stop_helper(p, logs);
    }
}

/// The client's address family is the VIP's: an IPv4 client reaching an IPv4 VIP still
/// works in the same IPv6 lab (dual stack), through the same lvsd.
#[test]
fn dual_stack_vips_in_one_lvsd() {
    require_root!();
    let _serial = serial();
    let lab = lab6(Kind::Nat, 2);
    let v4 = IpAddr::V4(vip(0));
    let v6 = IpAddr::V6(vip6(0));
    let mut config = service(
        (v4, HTTP_PORT).into(),
        "tcp",
        Kind::Nat,
        &rips4(2, HTTP_PORT),
    );
    config += &service(
        (v6, HTTP_PORT).into(),
        "tcp",
        Kind::Nat,
        &rips6(2, HTTP_PORT),
    );
    let lvsd = lab.start_lvsd(1, &config).expect("starting lvsd");
    for v in [v4, v6] {
        lab.client().run(|| {
            for i in 0..4 {
                let (_, body) = client::http_get((v, HTTP_PORT), "/bytes/100000")
                    .unwrap_or_else(|e| panic!("request {i} to {v}: {e}\n{}", diag(&lvsd)));
                assert!(body == node::pattern(100_000), "{v}: body differs");
            }
        });
    }
    let stats = stop_and_check(&lvsd);
    for v in [v4, v6] {
        let line = service_line(&stats, "TCP", v, HTTP_PORT);
        assert_eq!(counter(line, "conns"), 4, "{line}\n{stats}");
    }
    // The lab's own IPv6 plumbing, for the record: the client's route to the VIP is via the
    // router.
    let route = ip(lab.client(), &["-6", "route", "get", &vip6(0).to_string()]);
    assert!(
        route.contains(&ROUTER_CLIENT_ADDR6.to_string()),
        "client route: {route}"
    );
}

/// A router between the director and an IPv6 TUN real server has a smaller MTU: its
/// Packet Too Big about the IPv6-in-IPv6 packet goes to the DIP, and lvsd relays it to the
/// client (MTU less the 40-byte outer header), which lowers its path MTU; the transfer
/// completes.
#[test]
fn tun6_packet_too_big_from_a_router_is_relayed_to_the_client() {
    require_root!();
    let _serial = serial();
    let lab = lab6(Kind::Tun, 1);
    let far = Ipv6Addr::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, 0x200);
    lab.real_server(1)
        .add_address("lo", far, 128)
        .expect("far address");
    lab.director(1)
        .replace_route6(far, 128, lvs_lab::ROUTER_BACK_ADDR6)
        .expect("director route");
    let rs1 = real_server_addr6(1).to_string();
    ip(
        lab.router(),
        &[
            "-6",
            "route",
            "replace",
            &format!("{far}/128"),
            "via",
            &rs1,
            "mtu",
            "lock",
            "1400",
        ],
    );
    let v = IpAddr::V6(vip6(0));
    let helpers = tun_helpers(&lab, 1, &[v]);
    let lvsd = lab
        .start_lvsd(
            1,
            &service(
                (v, ECHO_PORT).into(),
                "tcp",
                Kind::Tun,
                &[SocketAddr::from((far, ECHO_PORT))],
            ),
        )
        .expect("starting lvsd");
    let payload = node::pattern(1 << 20);
    lab.client().run(|| {
        let back = client::tcp_echo_timeout((v, ECHO_PORT), &payload, Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("echo: {e}\n{}", diag(&lvsd)));
        assert!(back == payload, "1 MiB came back different");
    });
    let route = ip(lab.client(), &["-6", "route", "get", &v.to_string()]);
    assert!(
        route.contains("mtu 1360"),
        "the client's route cache: {route}\n{}",
        diag(&lvsd)
    );
    stop_and_check(&lvsd);
    for (p, logs) in &helpers {
        stop_helper(p, logs);
    }
}
