//! ICMP through a real lvsd in a namespace lab (issue #8, IPv4): errors about NAT
//! connections relayed and translated both ways, echo to a VIP answered by the director's
//! kernel, bad errors counted by reason, and path MTU discovery for a NAT real server.
//!
//! Lab: client → router → director → rs1 (NAT, the director is rs1's gateway); for TUN,
//! rs1 runs `lvsd realserver --mode tun` and is reached through the router, whose route to
//! it has a smaller MTU.

// Helpers outside #[test] fns are not covered by clippy's allow-unwrap-in-tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use lvs_lab::client;
use lvs_lab::node::{self, ECHO_PORT, HTTP_PORT};
use lvs_lab::{
    CLIENT_ADDR, Lab, LabSpec, ROUTER_BACK_ADDR, ROUTER_FRONT_ADDR, RealServerSpec, Signal,
    real_server_addr, require_root, vip, wait_until,
};

mod common;
use common::*;

/// A UDP port rs1 does not listen on.
const CLOSED_UDP_PORT: u16 = 9999;

/// TCP VIP:80 and UDP VIP:9999 to rs1, forwarded by `mode`.
fn config(lab: &Lab, mode: Mode) -> String {
    let v = vip(0);
    let rip = lab.real_server(1).addr();
    let m = mode.word();
    format!(
        "[[virtual_server]]\naddress = \"{v}:{HTTP_PORT}\"\nprotocol = \"tcp\"\nscheduler = \
         \"rr\"\nforwarding = \"{m}\"\n\n[[virtual_server.real_server]]\naddress = \
         \"{rip}:{HTTP_PORT}\"\n\n[[virtual_server]]\naddress = \"{v}:{CLOSED_UDP_PORT}\"\n\
         protocol = \"udp\"\nscheduler = \"rr\"\nforwarding = \"{m}\"\n\n\
         [[virtual_server.real_server]]\naddress = \"{rip}:{CLOSED_UDP_PORT}\"\n"
    )
}

/// RFC 1071 checksum, complemented.
fn csum(b: &[u8]) -> u16 {
    let mut s: u32 = b
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// An ICMP message `typ`/`code` with the 4 `rest` bytes and `body`, checksum filled.
fn icmp_msg(typ: u8, code: u8, rest: [u8; 4], body: &[u8]) -> Vec<u8> {
    let mut m = vec![typ, code, 0, 0];
    m.extend(rest);
    m.extend(body);
    let c = csum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// A 20-byte IPv4 header `src → dst` of protocol `proto` (as an error would quote it).
fn quoted_header(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload_len: u16) -> Vec<u8> {
    let mut h = vec![0x45, 0];
    h.extend((20 + payload_len).to_be_bytes());
    h.extend([0, 1, 0x40, 0, 64, proto, 0, 0]);
    h.extend(src.octets());
    h.extend(dst.octets());
    let c = csum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h
}

/// An Ethernet frame `smac → dmac` holding an IPv4 packet `src → dst` with the ICMP
/// message `msg` (the kernel's view: checksums complete, TTL 64).
fn icmp_frame(
    (smac, dmac): ([u8; 6], [u8; 6]),
    src: Ipv4Addr,
    dst: Ipv4Addr,
    msg: &[u8],
) -> Vec<u8> {
    let mut f = dmac.to_vec();
    f.extend(smac);
    f.extend([0x08, 0x00]);
    let len = u16::try_from(msg.len()).unwrap();
    let mut h = quoted_header(src, dst, 1, len);
    h[6] = 0; // no DF
    h[10..12].fill(0);
    let c = csum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend(h);
    f.extend(msg);
    f
}

/// `Icmp: <field>` of the calling thread's network namespace (/proc/net/snmp).
fn icmp_stat(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/thread-self/net/snmp").expect("snmp");
    let mut lines = text.lines().filter(|l| l.starts_with("Icmp:"));
    let (names, values) = (lines.next().unwrap(), lines.next().unwrap());
    let at = names
        .split_whitespace()
        .position(|n| n == field)
        .unwrap_or_else(|| panic!("no Icmp {field}"));
    values.split_whitespace().nth(at).unwrap().parse().unwrap()
}

#[test]
fn nat_udp_port_unreachable_ping_and_bad_errors() {
    require_root!();
    let _serial = serial();
    let lab = lab(Mode::Nat, 1);
    let v = vip(0);
    let lvsd = lab
        .start_lvsd(1, &config(&lab, Mode::Nat))
        .expect("starting lvsd");

    // (a) UDP to a real-server port nobody listens on: rs1's port unreachable comes back
    // translated (outer source VIP, quoted destination VIP:9999), so the client's connected
    // socket matches it and reports ECONNREFUSED.
    lab.client().run(|| {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
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
            lvsd.logs()
        );
    });

    // (b) Echo to the VIP: the director's kernel answers (lvsd passes it, the guard lets it
    // through). Requests leave the client's eth0 for the router; the replies are counted by
    // the client's kernel.
    let client = lab.client();
    let to_router = (
        client.mac("eth0").unwrap(),
        lab.router().mac("eth0").unwrap(),
    );
    let replies_before = client.run(|| icmp_stat("InEchoReps"));
    let echo: Vec<Vec<u8>> = (1..=3u16)
        .map(|seq| {
            let mut rest = [0x4c, 0x56, 0, 0];
            rest[2..].copy_from_slice(&seq.to_be_bytes());
            icmp_frame(
                to_router,
                CLIENT_ADDR,
                v,
                &icmp_msg(8, 0, rest, b"lvs icmp test"),
            )
        })
        .collect();
    client.send_raw_frames("eth0", &echo).unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || {
            client.run(|| icmp_stat("InEchoReps")) >= replies_before + 3
        }),
        "no echo replies from the VIP\n{}",
        lvsd.logs()
    );

    // (d) Bad errors to the VIP from the router, one of each kind, counted by reason.
    let port = 40_000u16;
    let router = (
        lab.router().mac("eth1").unwrap(),
        lab.director(1).mac("ext0").unwrap(),
    );
    let from_router = |msg: &[u8]| icmp_frame(router, ROUTER_FRONT_ADDR, v, msg);
    // Quote with 4 bytes of UDP header (< 8): malformed.
    let mut q = quoted_header(v, CLIENT_ADDR, 17, 8);
    q.extend(CLOSED_UDP_PORT.to_be_bytes());
    q.extend(port.to_be_bytes());
    let malformed = from_router(&icmp_msg(3, 3, [0; 4], &q));
    // An error about an ICMP error: unsupported.
    let mut q = quoted_header(v, CLIENT_ADDR, 1, 8);
    q.extend(icmp_msg(3, 3, [0; 4], &[]));
    let about_icmp = from_router(&icmp_msg(3, 1, [0; 4], &q));
    // A flow lvsd has no connection for: no connection.
    let mut q = quoted_header(v, CLIENT_ADDR, 6, 20);
    q.extend(HTTP_PORT.to_be_bytes());
    q.extend(port.to_be_bytes());
    q.extend([0, 0, 0, 1]);
    let unrelated = from_router(&icmp_msg(3, 4, [0, 0, 0x05, 0x00], &q));
    lab.router()
        .send_raw_frames("eth1", &[malformed, about_icmp, unrelated])
        .unwrap();
    // They reach lvsd before the frames sent after them: a request that is forwarded.
    let names = sequential_names(lab.client(), SocketAddr::from((v, HTTP_PORT)), 2);
    assert_eq!(names, ["rs1", "rs1"]);

    let stats = stop_and_check(&lvsd);
    eprintln!("{stats}");
    assert_eq!(counter(&stats, "drop.icmp_malformed"), 1, "{stats}");
    assert_eq!(counter(&stats, "drop.icmp_unsupported"), 1, "{stats}");
    assert!(counter(&stats, "drop.icmp_no_connection") >= 1, "{stats}");
    // The port unreachable counted as an outgoing packet of the UDP service.
    let udp_line = stats
        .lines()
        .find(|l| l.starts_with(&format!("UDP {v}:{CLOSED_UDP_PORT}")))
        .unwrap_or_else(|| panic!("no UDP service line:\n{stats}"));
    assert!(counter(udp_line, "outpkts") >= 1, "{udp_line}");
}

#[test]
fn nat_frag_needed_reaches_the_real_server() {
    require_root!();
    frag_needed_reaches_the_real_server(Mode::Nat);
}

#[test]
fn dr_frag_needed_reaches_the_real_server() {
    require_root!();
    frag_needed_reaches_the_real_server(Mode::Dr);
}

/// The client's link is narrower than everything else: the router answers rs1's
/// full-sized DF segments (sent from the VIP, through the director in NAT, straight to the
/// router in DR) with "fragmentation needed" (MTU 1300) to the VIP, which lvsd forwards to
/// rs1 (translated in NAT, by MAC in DR). Without it the download would stall.
fn frag_needed_reaches_the_real_server(mode: Mode) {
    let _serial = serial();
    let lab = lab(mode, 1);
    let v = vip(0);
    ip(lab.router(), &["link", "set", "dev", "eth0", "mtu", "1300"]);
    let rs = lab.real_server(1);
    let client_ip = CLIENT_ADDR.to_string();
    let before = ip(rs, &["-4", "route", "get", &client_ip]);
    assert!(!before.contains("mtu"), "no PMTU entry yet: {before}");
    let lvsd = lab
        .start_lvsd(1, &config(&lab, mode))
        .expect("starting lvsd");
    lab.client().run(|| {
        let r = client::http_request(
            SocketAddr::from((v, HTTP_PORT)),
            "GET",
            "/bytes/1048576",
            Duration::from_secs(30),
        )
        .unwrap_or_else(|e| panic!("download: {e}\n{}", lvsd.logs()));
        assert_eq!(r.status, 200);
        assert!(
            r.body == node::pattern(1 << 20),
            "1 MiB came back different"
        );
    });
    // rs1 learnt the path MTU from the forwarded error.
    let after = ip(rs, &["-4", "route", "get", &client_ip]);
    assert!(after.contains("mtu 1300"), "rs1's route cache: {after}");
    let stats = stop_and_check(&lvsd);
    eprintln!("rs1: {after}\n{stats}");
    // The error made no connection: only the download's.
    let tcp = stats
        .lines()
        .find(|l| l.starts_with(&format!("TCP {v}:{HTTP_PORT}")))
        .unwrap_or_else(|| panic!("no TCP service line:\n{stats}"));
    assert_eq!(counter(tcp, "conns"), 1, "{tcp}");
}

/// A TUN real server behind the router, whose route to it allows only 1400 bytes: the
/// router's "fragmentation needed" about the director's IPIP packets reaches lvsd at the
/// DIP and is relayed to the client with MTU 1400 − 20 (IPVS `ip_vs_in_icmp`), so a 1 MiB
/// upload with full-sized DF segments completes.
#[test]
fn tun_frag_needed_from_a_router_is_relayed_to_the_client() {
    require_root!();
    let _serial = serial();
    let lab = Lab::build(LabSpec::new(NODE).real_server(RealServerSpec::bare()))
        .expect("building the lab");
    lab.start_backends().expect("starting backends");
    let far = Ipv4Addr::new(192, 0, 2, 200);
    lab.real_server(1)
        .add_address("lo", far, 32)
        .expect("far address");
    lab.director(1)
        .replace_route(far, 32, ROUTER_BACK_ADDR)
        .expect("director route");
    let rs1 = real_server_addr(1).to_string();
    ip(
        lab.router(),
        &[
            "route",
            "replace",
            "192.0.2.200/32",
            "via",
            &rs1,
            "mtu",
            "lock",
            "1400",
        ],
    );
    let v = vip(0);
    let (helper, helper_logs) = lab
        .start_realserver_helper(1, &["--vip", &v.to_string(), "--mode", "tun"])
        .expect("starting the helper");
    let config = format!(
        "[[virtual_server]]\naddress = \"{v}:{ECHO_PORT}\"\nprotocol = \"tcp\"\nscheduler = \
         \"rr\"\nforwarding = \"tun\"\n\n[[virtual_server.real_server]]\naddress = \
         \"{far}:{ECHO_PORT}\"\n"
    );
    let lvsd = lab.start_lvsd(1, &config).expect("starting lvsd");
    let payload = node::pattern(1 << 20);
    lab.client().run(|| {
        let back = client::tcp_echo_timeout((v, ECHO_PORT), &payload, Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("echo: {e}\n{}", lvsd.logs()));
        assert!(back == payload, "1 MiB came back different");
    });
    let route = ip(lab.client(), &["-4", "route", "get", &v.to_string()]);
    assert!(
        route.contains("mtu 1380"),
        "the client's route cache: {route}"
    );
    let stats = stop_and_check(&lvsd);
    eprintln!("{stats}");
    // lvsd's own frag-needed for the tunnel (1480) came first, then the relayed one.
    assert!(counter(&stats, "drop.need_frag") >= 1, "{stats}");
    helper.signal(Signal::SIGTERM).expect("SIGTERM");
    let status = helper
        .wait_timeout(Duration::from_secs(10))
        .expect("waiting")
        .expect("the helper did not exit within 10 s");
    assert!(status.success(), "helper: {}", helper_logs.stderr_text());
}
