//! Unit tests of the forwarding core, and the lab shared with the golden fixtures.
//!
//! The lab: interface 1 faces the clients (router MAC `GW_MAC`), interface 2 the real
//! servers on 192.0.2.0/24 (director 192.0.2.1). Time is a base `Instant` plus offsets.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::time::{Duration, Instant};

use lvs_proto::{Forwarding, Protocol, SchedulerKind};

use super::*;
use crate::wire::build::{FrameSpec, checksums_valid, l4_checksum_offset};
use crate::wire::checksum;
use crate::wire::tcp::TcpControl;

pub(super) const EXT_IF: u32 = 1;
pub(super) const INT_IF: u32 = 2;
pub(super) const EXT_MAC: MacAddr = [2, 0, 0, 0, 1, 1];
pub(super) const INT_MAC: MacAddr = [2, 0, 0, 0, 2, 2];
pub(super) const GW_MAC: MacAddr = [2, 0, 0, 0, 0, 0xc1];
pub(super) const RS1_MAC: MacAddr = [2, 0, 0, 0, 0, 0x11];
pub(super) const RS2_MAC: MacAddr = [2, 0, 0, 0, 0, 0x12];
pub(super) const RS3_MAC: MacAddr = [2, 0, 0, 0, 0, 0x13];

pub(super) const DIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub(super) const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
pub(super) const VIP_DR: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 20);
pub(super) const VIP_ZERO: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 30);
pub(super) const VIP_UNRES: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 40);
pub(super) const RS1: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);
pub(super) const RS2: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 12);
pub(super) const RS3: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 13);
pub(super) const RS4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 14);

/// The IPv6 side of the lab (the plan of tests/src/lab.rs).
pub(super) const EXT_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 2);
pub(super) const DIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, 1);
pub(super) const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 0x10);
pub(super) const RS1_6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, 0x11);
pub(super) const RS2_6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, 0x12);

pub(super) fn client6(n: u16, port: u16) -> SocketAddrV6 {
    SocketAddrV6::new(Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, n), port, 0, 0)
}

pub(super) fn client(n: u8, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, n), port)
}

/// The IPv4 address in `a` (the IPv4 tests' addresses are all IPv4).
pub(super) fn v4(a: IpAddr) -> Ipv4Addr {
    match a {
        IpAddr::V4(a) => a,
        IpAddr::V6(a) => panic!("not an IPv4 address: {a}"),
    }
}

pub(super) fn sa(a: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(a, port)
}

pub(super) fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

pub(super) fn interfaces() -> Vec<Interface> {
    vec![
        Interface {
            ifindex: EXT_IF,
            name: "ext".into(),
            mac: EXT_MAC,
            ipv4: vec![Ipv4Addr::new(203, 0, 113, 1)],
            ipv6: vec![EXT_IP6],
            mtu: 1500,
        },
        Interface {
            ifindex: INT_IF,
            name: "int".into(),
            mac: INT_MAC,
            ipv4: vec![DIP],
            ipv6: vec![DIP6],
            mtu: 1500,
        },
    ]
}

pub(super) fn dest(
    addr: impl Into<IpAddr>,
    port: u16,
    weight: u32,
    forwarding: Forwarding,
) -> DestSpec {
    let addr = addr.into();
    DestSpec {
        addr,
        port,
        weight,
        forwarding,
        ifindex: INT_IF,
        next_hop: addr,
        source: match addr {
            IpAddr::V4(_) => IpAddr::V4(DIP),
            IpAddr::V6(_) => IpAddr::V6(DIP6),
        },
        upper_threshold: 0,
        lower_threshold: 0,
        health: HealthSpec::default(),
    }
}

pub(super) fn service(
    protocol: Protocol,
    vip: impl Into<IpAddr>,
    port: u16,
    scheduler: SchedulerKind,
    dests: Vec<DestSpec>,
) -> ServiceSpec {
    ServiceSpec {
        vip: vip.into(),
        port,
        protocol,
        scheduler,
        sched_params: SchedParams::default(),
        persistence: None,
        one_packet: false,
        dests,
        health: ServiceHealth::default(),
    }
}

pub(super) fn config(services: Vec<ServiceSpec>) -> DataplaneConfig {
    DataplaneConfig {
        interfaces: interfaces(),
        services,
        timeouts: Timeouts::default(),
    }
}

/// An ARP reply "`ip` is-at `mac`" sent to the director's inside address.
pub(super) fn arp_reply(ip: Ipv4Addr, mac: MacAddr) -> Vec<u8> {
    arp_frame(ArpOperation::Reply, ip, mac, DIP, INT_MAC)
}

pub(super) fn arp_frame(
    op: ArpOperation,
    sender: Ipv4Addr,
    sender_mac: MacAddr,
    target: Ipv4Addr,
    target_mac: MacAddr,
) -> Vec<u8> {
    let mut f = vec![0u8; 42];
    let dst = if op == ArpOperation::Reply {
        target_mac
    } else {
        ethernet::BROADCAST
    };
    let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
    ethernet::EthernetRepr {
        src_addr: sender_mac,
        dst_addr: dst,
        ethertype: EtherType::ARP,
    }
    .emit(&mut eth);
    ArpRepr {
        operation: op,
        source_hardware_addr: sender_mac,
        source_protocol_addr: sender,
        target_hardware_addr: target_mac,
        target_protocol_addr: target,
    }
    .emit(&mut ArpPacket::new_unchecked(eth.payload_mut()));
    f
}

/// A TCP frame from a client to `dst` through the client-side router.
pub(super) fn tcp_in(from: SocketAddrV4, dst: SocketAddrV4, control: TcpControl) -> Vec<u8> {
    FrameSpec::tcp(GW_MAC, EXT_MAC, from, dst, control).to_vec()
}

/// A TCP frame from a real server to a client.
pub(super) fn tcp_reply(
    from: SocketAddrV4,
    rs_mac: MacAddr,
    to: SocketAddrV4,
    control: TcpControl,
) -> Vec<u8> {
    FrameSpec::tcp(rs_mac, INT_MAC, from, to, control).to_vec()
}

/// The dataplane under test with its clock and output buffer.
pub(super) struct Lab {
    pub dp: Dataplane,
    pub t0: Instant,
    pub now: Instant,
    pub out: Vec<u8>,
}

impl Lab {
    pub fn new(cfg: DataplaneConfig) -> Lab {
        let t0 = Instant::now();
        Lab {
            dp: Dataplane::new(cfg, t0),
            t0,
            now: t0,
            out: vec![0; 70_000],
        }
    }

    /// A lab where RS1..RS3 have answered ARP.
    pub fn resolved(cfg: DataplaneConfig) -> Lab {
        let mut lab = Lab::new(cfg);
        for (ip, mac) in [(RS1, RS1_MAC), (RS2, RS2_MAC), (RS3, RS3_MAC)] {
            assert_eq!(lab.rx(INT_IF, &arp_reply(ip, mac)).0, Verdict::Pass);
        }
        lab
    }

    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        self.dp.handle_timeout(self.now);
    }

    pub fn rx_frame(&mut self, rx: RxFrame<'_>) -> (Verdict, Vec<u8>) {
        let v = self.dp.process(self.now, rx, &mut self.out);
        let bytes = match v {
            Verdict::Transmit { len, .. } => self.out[..len].to_vec(),
            _ => Vec::new(),
        };
        assert_invariant(&self.dp.stats());
        (v, bytes)
    }

    pub fn rx(&mut self, ifindex: u32, data: &[u8]) -> (Verdict, Vec<u8>) {
        self.rx_frame(RxFrame {
            ifindex,
            data,
            csum_partial: false,
            gso: false,
            gso_size: 0,
        })
    }

    /// Feeds a frame that must be forwarded; returns the output frame.
    pub fn fwd(&mut self, ifindex: u32, data: &[u8]) -> Vec<u8> {
        let (v, out) = self.rx(ifindex, data);
        assert!(matches!(v, Verdict::Transmit { .. }), "{v:?}");
        out
    }

    pub fn service(&self, i: usize) -> ServiceStats {
        self.dp.stats().services[i].clone()
    }

    pub fn conn_states(&self) -> Vec<&'static str> {
        self.dp
            .connections(self.now)
            .iter()
            .map(|c| c.state)
            .collect()
    }
}

/// Simulates the device finishing a CHECKSUM_PARTIAL frame: sum the L4 bytes from the
/// L4 header to the IP total length, with the partial field in place, and complement.
pub(super) fn device_finish(frame: &mut [u8], protocol: Protocol) {
    let ip = Ipv4Packet::new_checked(&frame[14..]).unwrap();
    let start = 14 + ip.header_len();
    let end = 14 + usize::from(ip.total_len());
    let at = l4_checksum_offset(frame).unwrap();
    let c = !checksum::data(&frame[start..end]);
    let c = if protocol == Protocol::Udp {
        checksum::udp_nonzero(c)
    } else {
        c
    };
    frame[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

/// Turns a complete frame into what the kernel hands over with CHECKSUM_PARTIAL: the
/// L4 field holds the pseudo-header sum, not complemented.
pub(super) fn make_partial(frame: &mut [u8]) {
    let ip = Ipv4Packet::new_checked(&frame[14..]).unwrap();
    let l4_len = usize::from(ip.total_len()) - ip.header_len();
    let ph = checksum::pseudo_header_v4(
        ip.src_addr(),
        ip.dst_addr(),
        ip.protocol().0,
        u16::try_from(l4_len).unwrap(),
    );
    let at = l4_checksum_offset(frame).unwrap();
    frame[at..at + 2].copy_from_slice(&ph.to_be_bytes());
}

pub(super) fn assert_invariant(s: &Stats) {
    assert_eq!(
        s.received,
        s.forwarded + s.dropped.total() + s.passed,
        "{s:?}"
    );
}

/// The real server a transmitted NAT frame goes to.
fn nat_target(frame: &[u8]) -> Ipv4Addr {
    Ipv4Packet::new_checked(&frame[14..]).unwrap().dst_addr()
}

/// `// A B C in config order -> list C B A -> rr picks C B A C B A`.
#[test]
fn rr_follows_list_order_through_process() {
    let cfg = config(vec![service(
        Protocol::Tcp,
        VIP,
        80,
        SchedulerKind::Rr,
        vec![
            dest(RS1, 80, 1, Forwarding::Nat),
            dest(RS2, 80, 1, Forwarding::Nat),
            dest(RS3, 80, 1, Forwarding::Nat),
        ],
    )]);
    let mut lab = Lab::resolved(cfg);
    let picks: Vec<Ipv4Addr> = (0..6)
        .map(|i| {
            let (v, f) = lab.rx(
                EXT_IF,
                &tcp_in(client(1, 40000 + i), sa(VIP, 80), TcpControl::SYN),
            );
            assert!(
                matches!(
                    v,
                    Verdict::Transmit {
                        ifindex: INT_IF,
                        ..
                    }
                ),
                "{v:?}"
            );
            assert!(checksums_valid(&f));
            nat_target(&f)
        })
        .collect();
    assert_eq!(picks, [RS3, RS2, RS1, RS3, RS2, RS1]);
    let s = lab.service(0);
    let listed: Vec<_> = s.dests.iter().map(|d| d.addr).collect();
    assert_eq!(listed, [RS3, RS2, RS1], "stats list IPVS order");
    assert!(
        s.dests
            .iter()
            .all(|d| d.counters.conns == 2 && d.inactive == 0 && d.active == 2),
        "a lone SYN leaves the entry in SYN_RECV, which counts as active"
    );
    assert_eq!(s.counters.conns, 6);
    assert_eq!(lab.dp.conn_count(), 6);
}

fn one_nat_service(weights: &[u32]) -> DataplaneConfig {
    let rs = [RS1, RS2, RS3];
    config(vec![service(
        Protocol::Tcp,
        VIP,
        80,
        SchedulerKind::Rr,
        weights
            .iter()
            .zip(rs)
            .map(|(&w, a)| dest(a, 80, w, Forwarding::Nat))
            .collect(),
    )])
}

/// Handshake and FIN close through `process`, NAT: states by name and the destination's
/// active/inactive counters (spec b.1), then expiry, then TIME_WAIT reuse.
#[test]
fn tcp_states_through_handshake_close_and_reuse() {
    let mut lab = Lab::resolved(one_nat_service(&[1, 1]));
    let c = client(1, 40000);
    let vip = sa(VIP, 80);
    let counts = |lab: &Lab| {
        let s = lab.service(0);
        s.dests
            .iter()
            .map(|d| (d.active, d.inactive))
            .collect::<Vec<_>>()
    };
    // List is [RS2, RS1]; rr picks RS2 first.
    let (v, f) = lab.rx(EXT_IF, &tcp_in(c, vip, TcpControl::SYN));
    assert!(matches!(v, Verdict::Transmit { .. }));
    assert_eq!(nat_target(&f), RS2);
    // SYN_RECV counts as active (current kernels' tcp_state_active_table).
    assert_eq!(lab.conn_states(), ["SYN_RECV"]);
    assert_eq!(counts(&lab), [(1, 0), (0, 0)]);

    let rs = sa(RS2, 80);
    let (v, f) = lab.rx(
        INT_IF,
        &tcp_reply(rs, RS2_MAC, c, TcpControl::SYN | TcpControl::ACK),
    );
    assert_eq!(
        v,
        Verdict::Transmit {
            ifindex: EXT_IF,
            len: f.len()
        }
    );
    assert_eq!(lab.conn_states(), ["SYN_RECV"]);

    let (v, _) = lab.rx(EXT_IF, &tcp_in(c, vip, TcpControl::ACK));
    assert!(matches!(v, Verdict::Transmit { .. }));
    assert_eq!(lab.conn_states(), ["ESTABLISHED"]);
    assert_eq!(counts(&lab), [(1, 0), (0, 0)]);

    let data = FrameSpec::tcp(GW_MAC, EXT_MAC, c, vip, TcpControl::ACK | TcpControl::PSH)
        .with_payload(b"GET / HTTP/1.0\r\n\r\n")
        .to_vec();
    assert!(matches!(lab.rx(EXT_IF, &data).0, Verdict::Transmit { .. }));
    assert_eq!(lab.conn_states(), ["ESTABLISHED"]);

    let (v, _) = lab.rx(EXT_IF, &tcp_in(c, vip, TcpControl::FIN | TcpControl::ACK));
    assert!(matches!(v, Verdict::Transmit { .. }));
    assert_eq!(lab.conn_states(), ["CLOSE_WAIT"]);
    assert_eq!(counts(&lab), [(0, 1), (0, 0)]);

    let (v, _) = lab.rx(
        INT_IF,
        &tcp_reply(rs, RS2_MAC, c, TcpControl::FIN | TcpControl::ACK),
    );
    assert!(matches!(v, Verdict::Transmit { .. }));
    assert_eq!(lab.conn_states(), ["TIME_WAIT"]);
    let (v, _) = lab.rx(EXT_IF, &tcp_in(c, vip, TcpControl::ACK));
    assert!(matches!(v, Verdict::Transmit { .. }));
    assert_eq!(lab.conn_states(), ["TIME_WAIT"]);
    assert_eq!(counts(&lab), [(0, 1), (0, 0)]);
    let s = lab.service(0);
    assert_eq!((s.counters.inpkts, s.counters.outpkts), (5, 2));

    // TIME_WAIT reuse: a new SYN on the same 4-tuple expires the entry and schedules anew
    // (rr moves on to RS1).
    let (v, f) = lab.rx(EXT_IF, &tcp_in(c, vip, TcpControl::SYN));
    assert!(matches!(v, Verdict::Transmit { .. }));
    assert_eq!(nat_target(&f), RS1);
    assert_eq!(lab.conn_states(), ["SYN_RECV"]);
    assert_eq!(counts(&lab), [(0, 0), (1, 0)]);
    assert_eq!(lab.service(0).counters.conns, 2);

    // Idle: SYN_RECV times out after 60 s (1 s grain).
    lab.advance(Duration::from_secs(59));
    assert_eq!(lab.dp.conn_count(), 1);
    lab.advance(Duration::from_secs(1));
    assert_eq!(lab.dp.conn_count(), 0);
    assert_eq!(counts(&lab), [(0, 0), (0, 0)]);
    assert_eq!(
        lab.dp.poll_timeout(),
        lab.dp.earliest_probe,
        "no sweeps while empty"
    );
}

/// A SYN on an ESTABLISHED entry is not a reuse: it stays on the same server.
#[test]
fn syn_on_established_keeps_server() {
    let mut lab = Lab::resolved(one_nat_service(&[1, 1]));
    let (c, vip) = (client(1, 40000), sa(VIP, 80));
    let (_, f) = lab.rx(EXT_IF, &tcp_in(c, vip, TcpControl::SYN));
    let first = nat_target(&f);
    lab.fwd(EXT_IF, &tcp_in(c, vip, TcpControl::ACK));
    let (_, f) = lab.rx(EXT_IF, &tcp_in(c, vip, TcpControl::SYN));
    assert_eq!(nat_target(&f), first);
    assert_eq!(lab.dp.conn_count(), 1);
    assert_eq!(lab.conn_states(), ["ESTABLISHED"]);
}

/// A SYN on an entry in CLOSE (after a RST) reschedules too (kernel
/// `is_new_conn_expected`: TIME_WAIT or CLOSE).
#[test]
fn syn_after_rst_reschedules() {
    let mut lab = Lab::resolved(one_nat_service(&[1, 1]));
    let (c, vip) = (client(1, 40000), sa(VIP, 80));
    let first = nat_target(&lab.fwd(EXT_IF, &tcp_in(c, vip, TcpControl::SYN)));
    lab.fwd(EXT_IF, &tcp_in(c, vip, TcpControl::ACK));
    // (A RST in SYN_RECV would stay in SYN_RECV: kernel table.)
    lab.fwd(EXT_IF, &tcp_in(c, vip, TcpControl::RST));
    assert_eq!(lab.conn_states(), ["CLOSE"]);
    let second = nat_target(&lab.fwd(EXT_IF, &tcp_in(c, vip, TcpControl::SYN)));
    assert_ne!(first, second);
    assert_eq!(lab.conn_states(), ["SYN_RECV"]);
    assert_eq!(lab.service(0).counters.conns, 2);
}

/// Only SYN without RST creates a TCP entry (kernel `tcp_conn_schedule`, sloppy_tcp 0).
#[test]
fn only_syn_creates_tcp_entries() {
    let mut lab = Lab::resolved(one_nat_service(&[1]));
    let vip = sa(VIP, 80);
    for control in [
        TcpControl::ACK,
        TcpControl::FIN | TcpControl::ACK,
        TcpControl::RST,
        TcpControl::SYN | TcpControl::RST,
        TcpControl(0),
    ] {
        let (v, _) = lab.rx(EXT_IF, &tcp_in(client(1, 1), vip, control));
        assert_eq!(v, Verdict::Drop(DropReason::NoConnection), "{control:?}");
    }
    // SYN+ACK does schedule (no !ack check in the kernel, for active FTP).
    let (v, _) = lab.rx(
        EXT_IF,
        &tcp_in(client(1, 2), vip, TcpControl::SYN | TcpControl::ACK),
    );
    assert!(matches!(v, Verdict::Transmit { .. }));
    assert_eq!(lab.dp.conn_count(), 1);
    assert_eq!(lab.dp.stats().dropped[DropReason::NoConnection], 5);
}

/// DR: only MACs change, states use INPUT_ONLY, nothing is counted as output.
#[test]
fn dr_input_only_states() {
    let cfg = config(vec![service(
        Protocol::Tcp,
        VIP_DR,
        80,
        SchedulerKind::Wlc,
        vec![dest(RS3, 80, 1, Forwarding::Dr)],
    )]);
    let mut lab = Lab::resolved(cfg);
    let (c, vip) = (client(3, 5555), sa(VIP_DR, 80));
    let syn = tcp_in(c, vip, TcpControl::SYN);
    let (v, f) = lab.rx(EXT_IF, &syn);
    assert_eq!(
        v,
        Verdict::Transmit {
            ifindex: INT_IF,
            len: syn.len()
        }
    );
    assert_eq!(&f[..6], &RS3_MAC);
    assert_eq!(&f[6..12], &INT_MAC);
    assert_eq!(&f[12..], &syn[12..], "IP packet untouched");
    lab.fwd(EXT_IF, &tcp_in(c, vip, TcpControl::ACK));
    assert_eq!(lab.conn_states(), ["ESTABLISHED"]);
    assert_eq!(lab.service(0).dests[0].active, 1);
    lab.fwd(EXT_IF, &tcp_in(c, vip, TcpControl::FIN | TcpControl::ACK));
    assert_eq!(
        lab.conn_states(),
        ["FIN_WAIT"],
        "INPUT_ONLY: FIN in ES -> FIN_WAIT"
    );
    let s = lab.service(0);
    assert_eq!((s.dests[0].active, s.dests[0].inactive), (0, 1));
    assert_eq!((s.counters.inpkts, s.counters.outpkts), (3, 0));
    // A reply from a DR real server is not ours.
    let (v, _) = lab.rx(INT_IF, &tcp_reply(sa(RS3, 80), RS3_MAC, c, TcpControl::ACK));
    assert_eq!(v, Verdict::Pass);
}

/// UDP: every datagram may create an entry; always inactive; 300 s idle timeout.
#[test]
fn udp_always_inactive_and_expires() {
    let cfg = config(vec![service(
        Protocol::Udp,
        VIP,
        53,
        SchedulerKind::Wlc,
        vec![dest(RS1, 53, 1, Forwarding::Nat)],
    )]);
    let mut lab = Lab::resolved(cfg);
    let (c, vip) = (client(4, 5353), sa(VIP, 53));
    for _ in 0..3 {
        let (v, _) = lab.rx(
            EXT_IF,
            &FrameSpec::udp(GW_MAC, EXT_MAC, c, vip, b"q").to_vec(),
        );
        assert!(matches!(v, Verdict::Transmit { .. }));
    }
    let reply = FrameSpec::udp(RS1_MAC, INT_MAC, sa(RS1, 53), c, b"a").to_vec();
    let (v, f) = lab.rx(INT_IF, &reply);
    assert!(matches!(
        v,
        Verdict::Transmit {
            ifindex: EXT_IF,
            ..
        }
    ));
    assert!(checksums_valid(&f));
    assert_eq!(lab.conn_states(), ["UDP"]);
    let s = lab.service(0);
    assert_eq!(
        (s.dests[0].active, s.dests[0].inactive, s.counters.conns),
        (0, 1, 1)
    );
    assert_eq!((s.counters.inpkts, s.counters.outpkts), (3, 1));
    assert_eq!(s.counters.inbytes, 3 * 29);
    assert_eq!(s.counters.outbytes, 29);
    lab.advance(Duration::from_secs(299));
    assert_eq!(lab.dp.conn_count(), 1);
    lab.advance(Duration::from_secs(1));
    assert_eq!(lab.dp.conn_count(), 0);
    assert_eq!(lab.service(0).dests[0].inactive, 0);
}

/// ARP: requests for unresolved next hops at once and every 1 s; learned from replies and
/// gratuitous requests on the right interface only; refreshed every 30 s, old MAC kept.
#[test]
fn neighbour_resolution() {
    let mut lab = Lab::new(one_nat_service(&[1, 1]));
    assert_eq!(lab.dp.unresolved_neighbours(), 2);
    let mut buf = [0u8; 128];
    let mut asked = Vec::new();
    while let Some((ifindex, len)) = lab.dp.poll_transmit(lab.now, &mut buf) {
        assert_eq!(ifindex, INT_IF);
        let eth = EthernetFrame::new_checked(&buf[..len]).unwrap();
        assert_eq!(eth.dst_addr(), ethernet::BROADCAST);
        assert_eq!(eth.src_addr(), INT_MAC);
        let arp = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap()).unwrap();
        assert_eq!(arp.operation, ArpOperation::Request);
        assert_eq!(
            (arp.source_hardware_addr, arp.source_protocol_addr),
            (INT_MAC, DIP)
        );
        asked.push(arp.target_protocol_addr);
    }
    asked.sort();
    assert_eq!(asked, [RS1, RS2]);
    assert_eq!(lab.dp.poll_timeout(), Some(lab.t0 + ARP_RETRY));
    assert_eq!(
        lab.dp
            .poll_transmit(lab.now + Duration::from_millis(999), &mut buf),
        None
    );
    lab.now += ARP_RETRY;
    assert!(lab.dp.poll_transmit(lab.now, &mut buf).is_some());
    assert!(lab.dp.poll_transmit(lab.now, &mut buf).is_some());
    assert!(lab.dp.poll_transmit(lab.now, &mut buf).is_none());

    // Forwarding meanwhile: NeighbourUnresolved, but the connection is made.
    let (v, _) = lab.rx(EXT_IF, &tcp_in(client(1, 1), sa(VIP, 80), TcpControl::SYN));
    assert_eq!(v, Verdict::Drop(DropReason::NeighbourUnresolved));
    assert_eq!(lab.dp.conn_count(), 1);

    // A reply for RS2 on the wrong interface, and one from an untracked address: ignored.
    let mut wrong_if = arp_reply(RS2, RS2_MAC);
    assert_eq!(lab.rx(EXT_IF, &wrong_if).0, Verdict::Pass);
    assert_eq!(lab.dp.unresolved_neighbours(), 2);
    assert_eq!(
        lab.rx(INT_IF, &arp_reply(RS4, [2, 0, 0, 0, 0, 0x14])).0,
        Verdict::Pass
    );
    assert_eq!(lab.dp.unresolved_neighbours(), 2);
    // A broadcast sender MAC is never learned.
    wrong_if[22..28].copy_from_slice(&ethernet::BROADCAST);
    assert_eq!(lab.rx(INT_IF, &wrong_if).0, Verdict::Pass);
    assert_eq!(lab.dp.unresolved_neighbours(), 2);

    // RS2 replies; RS1 announces itself with a gratuitous request.
    assert_eq!(lab.rx(INT_IF, &arp_reply(RS2, RS2_MAC)).0, Verdict::Pass);
    let garp = arp_frame(ArpOperation::Request, RS1, RS1_MAC, RS1, [0; 6]);
    assert_eq!(lab.rx(INT_IF, &garp).0, Verdict::Pass);
    assert_eq!(lab.dp.unresolved_neighbours(), 0);
    let (v, f) = lab.rx(EXT_IF, &tcp_in(client(1, 1), sa(VIP, 80), TcpControl::SYN));
    assert!(matches!(v, Verdict::Transmit { .. }));
    assert_eq!(
        &f[..6],
        &RS2_MAC,
        "the retransmitted SYN follows its connection"
    );

    // Refresh after 30 s, still using the old MAC meanwhile.
    lab.now += Duration::from_secs(29);
    assert!(lab.dp.poll_transmit(lab.now, &mut buf).is_none());
    lab.now += Duration::from_secs(1);
    assert!(lab.dp.poll_transmit(lab.now, &mut buf).is_some());
    assert!(lab.dp.poll_transmit(lab.now, &mut buf).is_some());
    assert!(lab.dp.poll_transmit(lab.now, &mut buf).is_none());
    let macs: Vec<_> = lab
        .service(0)
        .dests
        .iter()
        .map(|d| d.neighbour_mac)
        .collect();
    assert_eq!(macs, [Some(RS2_MAC), Some(RS1_MAC)]);
    // A changed MAC is picked up.
    assert_eq!(
        lab.rx(INT_IF, &arp_reply(RS2, [2, 0, 0, 0, 0, 0x22])).0,
        Verdict::Pass
    );
    assert_eq!(
        lab.service(0).dests[0].neighbour_mac,
        Some([2, 0, 0, 0, 0, 0x22])
    );
    // Too small a buffer: the request is skipped, not a panic.
    lab.now += ARP_REFRESH;
    assert!(lab.dp.poll_transmit(lab.now, &mut buf[..10]).is_none());
}

/// Weight edits apply in place, with counters kept; new dests go to the head; a removed
/// dest leaves the list but keeps serving its connections until they expire; re-adding it
/// from the trash restores its counters.
#[test]
fn reconfigure_edits_in_place() {
    let mut lab = Lab::resolved(one_nat_service(&[1, 1]));
    let vip = sa(VIP, 80);
    // Two connections: RS2 then RS1.
    lab.fwd(EXT_IF, &tcp_in(client(1, 1), vip, TcpControl::SYN));
    lab.fwd(EXT_IF, &tcp_in(client(1, 2), vip, TcpControl::SYN));

    // Drop RS2, weight RS1 to 5, add RS3.
    let mut cfg = one_nat_service(&[5]);
    cfg.services[0]
        .dests
        .push(dest(RS3, 80, 1, Forwarding::Nat));
    lab.dp.reconfigure(cfg, lab.now);
    let s = lab.service(0);
    let listed: Vec<_> = s
        .dests
        .iter()
        .map(|d| (v4(d.addr), d.weight, d.counters.conns))
        .collect();
    assert_eq!(listed, [(RS3, 1, 0), (RS1, 5, 1)]);
    // RS3 is a new next hop: asked for at once, unresolved until it answers.
    assert_eq!(lab.dp.unresolved_neighbours(), 1);
    let mut buf = [0u8; 64];
    assert!(lab.dp.poll_transmit(lab.now, &mut buf).is_some());
    assert_eq!(lab.rx(INT_IF, &arp_reply(RS3, RS3_MAC)).0, Verdict::Pass);
    assert_eq!(lab.dp.unresolved_neighbours(), 0);

    // RS2's connection still flows (trash), in and out.
    let (v, f) = lab.rx(EXT_IF, &tcp_in(client(1, 1), vip, TcpControl::ACK));
    assert!(matches!(v, Verdict::Transmit { .. }));
    assert_eq!(nat_target(&f), RS2);
    let (v, _) = lab.rx(
        INT_IF,
        &tcp_reply(sa(RS2, 80), RS2_MAC, client(1, 1), TcpControl::ACK),
    );
    assert!(matches!(v, Verdict::Transmit { .. }));
    // New connections never go to RS2.
    for p in 10..20 {
        let (_, f) = lab.rx(EXT_IF, &tcp_in(client(1, p), vip, TcpControl::SYN));
        assert_ne!(nat_target(&f), RS2);
    }

    // Re-adding RS2 restores it from the trash at the head, counters intact.
    let mut cfg = one_nat_service(&[5, 2]);
    cfg.services[0]
        .dests
        .push(dest(RS3, 80, 1, Forwarding::Nat));
    lab.dp.reconfigure(cfg, lab.now);
    let s = lab.service(0);
    let rs2 = &s.dests[0];
    assert_eq!(
        (v4(rs2.addr), rs2.weight, rs2.counters.conns, rs2.active),
        (RS2, 2, 1, 1)
    );
    assert_eq!(rs2.counters.inpkts, 2);
    assert_eq!(rs2.counters.outpkts, 1);
    assert_eq!(
        s.dests.iter().map(|d| d.addr).collect::<Vec<_>>(),
        [RS2, RS3, RS1]
    );
    assert_eq!(s.counters.conns, 12, "service counters survive reconfigure");

    // Remove RS2 again and let its connection expire: it is freed; a later re-add is new.
    let mut cfg = one_nat_service(&[5]);
    cfg.services[0]
        .dests
        .push(dest(RS3, 80, 1, Forwarding::Nat));
    lab.dp.reconfigure(cfg.clone(), lab.now);
    lab.advance(Duration::from_secs(901));
    assert_eq!(lab.dp.conn_count(), 0);
    cfg.services[0]
        .dests
        .push(dest(RS2, 80, 1, Forwarding::Nat));
    lab.dp.reconfigure(cfg, lab.now);
    assert_eq!(lab.service(0).dests[0].counters.conns, 0);
}

/// A removed service drops its connections; other services keep theirs.
#[test]
fn removed_service_drops_connections() {
    let mut cfg = one_nat_service(&[1]);
    cfg.services.push(service(
        Protocol::Udp,
        VIP,
        53,
        SchedulerKind::Rr,
        vec![dest(RS2, 53, 1, Forwarding::Nat)],
    ));
    let mut lab = Lab::resolved(cfg.clone());
    lab.fwd(EXT_IF, &tcp_in(client(1, 1), sa(VIP, 80), TcpControl::SYN));
    lab.fwd(
        EXT_IF,
        &FrameSpec::udp(GW_MAC, EXT_MAC, client(1, 1), sa(VIP, 53), b"q").to_vec(),
    );
    assert_eq!(lab.dp.conn_count(), 2);
    cfg.services.remove(0);
    lab.dp.reconfigure(cfg, lab.now);
    assert_eq!(lab.dp.conn_count(), 1);
    assert_eq!(lab.conn_states(), ["UDP"]);
    assert_eq!(lab.dp.stats().services.len(), 1);
    let (v, _) = lab.rx(EXT_IF, &tcp_in(client(1, 1), sa(VIP, 80), TcpControl::ACK));
    assert_eq!(v, Verdict::Pass, "no longer a VIP:port of ours");
    // The old reply tuple is no longer a NAT destination either.
    let (v, _) = lab.rx(
        INT_IF,
        &tcp_reply(sa(RS1, 80), RS1_MAC, client(1, 1), TcpControl::ACK),
    );
    assert_eq!(v, Verdict::Pass);
}

/// Changing the scheduler replaces it; weights 0 quiesce without touching connections.
#[test]
fn scheduler_change_and_quiesce() {
    let mut lab = Lab::resolved(one_nat_service(&[1, 1]));
    let vip = sa(VIP, 80);
    lab.fwd(EXT_IF, &tcp_in(client(1, 1), vip, TcpControl::SYN));
    let mut cfg = one_nat_service(&[0, 0]);
    cfg.services[0].scheduler = SchedulerKind::Wlc;
    lab.dp.reconfigure(cfg, lab.now);
    assert_eq!(lab.service(0).scheduler, SchedulerKind::Wlc);
    let (v, _) = lab.rx(EXT_IF, &tcp_in(client(1, 2), vip, TcpControl::SYN));
    assert_eq!(v, Verdict::Drop(DropReason::NoDestination));
    let (v, _) = lab.rx(EXT_IF, &tcp_in(client(1, 1), vip, TcpControl::ACK));
    assert!(
        matches!(v, Verdict::Transmit { .. }),
        "existing connection goes on"
    );
}

/// MTU, GSO and the output buffer size.
#[test]
fn size_limits() {
    let mut lab = Lab::resolved(one_nat_service(&[1]));
    let big = vec![0x5a; 1500 - 40 + 1];
    let frame = FrameSpec::tcp(GW_MAC, EXT_MAC, client(1, 1), sa(VIP, 80), TcpControl::SYN)
        .with_payload(&big)
        .to_vec();
    let (v, _) = lab.rx(EXT_IF, &frame);
    assert_eq!(v, Verdict::Drop(DropReason::TooBig));
    let (v, f) = lab.rx_frame(RxFrame {
        ifindex: EXT_IF,
        data: &frame,
        csum_partial: false,
        gso: true,
        gso_size: 0,
    });
    assert_eq!(
        v,
        Verdict::Transmit {
            ifindex: INT_IF,
            len: frame.len()
        }
    );
    assert!(checksums_valid(&f));
    // Exactly the MTU fits.
    let fits = FrameSpec::tcp(GW_MAC, EXT_MAC, client(1, 2), sa(VIP, 80), TcpControl::SYN)
        .with_payload(&big[1..])
        .to_vec();
    assert!(matches!(lab.rx(EXT_IF, &fits).0, Verdict::Transmit { .. }));
    // Output buffer one byte short.
    let mut small = vec![0u8; fits.len() - 1];
    let rx = RxFrame {
        ifindex: EXT_IF,
        data: &fits,
        csum_partial: false,
        gso: false,
        gso_size: 0,
    };
    assert_eq!(
        lab.dp.process(lab.now, rx, &mut small),
        Verdict::Drop(DropReason::TooBig)
    );
}

/// Mixed traffic keeps received = forwarded + dropped + passed, with each class counted.
#[test]
fn counters_add_up_on_mixed_run() {
    let mut lab = Lab::resolved(one_nat_service(&[1]));
    let vip = sa(VIP, 80);
    let syn = tcp_in(client(1, 1), vip, TcpControl::SYN);
    lab.fwd(EXT_IF, &syn); // forwarded
    assert_eq!(
        lab.rx(EXT_IF, &syn[..20]).0,
        Verdict::Drop(DropReason::Truncated)
    );
    assert_eq!(
        lab.rx(EXT_IF, &tcp_in(client(1, 2), vip, TcpControl::ACK))
            .0,
        Verdict::Drop(DropReason::NoConnection)
    );
    assert_eq!(
        lab.rx(EXT_IF, &tcp_in(client(1, 2), sa(VIP, 81), TcpControl::SYN))
            .0,
        Verdict::Pass
    );
    let s = lab.dp.stats();
    assert_eq!(s.received, 3 + 4, "3 ARP replies + 4");
    assert_eq!(s.forwarded, 1);
    assert_eq!(s.passed, 3 + 1);
    assert_eq!(s.dropped[DropReason::Truncated], 1);
    assert_eq!(s.dropped[DropReason::NoConnection], 1);
    assert_eq!(s.dropped.total(), 2);
    assert_invariant(&s);
    assert_eq!(s.conns, 1);
    assert_eq!(s.unresolved_neighbours, 0);
}

#[test]
fn drop_reason_names_are_snake_case_and_unique() {
    let names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
    for (i, (r, n)) in DropReason::ALL.iter().zip(&names).enumerate() {
        assert_eq!(*r as usize, i);
        assert!(
            n.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{n}"
        );
        assert_eq!(names.iter().filter(|m| *m == n).count(), 1);
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Never panics: every truncation of valid frames, random bit flips of them, and random
/// garbage with plausible headers; the counter invariant holds after every call.
#[test]
fn garbage_and_truncations_never_panic() {
    let cfg = super::fixtures::lab_config();
    let mut lab = Lab::resolved(cfg);
    let (c, vip) = (client(1, 40000), sa(VIP, 80));
    let seeds: Vec<Vec<u8>> = vec![
        tcp_in(c, vip, TcpControl::SYN),
        tcp_reply(sa(RS1, 80), RS1_MAC, c, TcpControl::SYN | TcpControl::ACK),
        tcp_in(client(3, 1), sa(VIP_DR, 80), TcpControl::SYN),
        FrameSpec::udp(GW_MAC, EXT_MAC, client(4, 1), sa(VIP, 53), b"hello").to_vec(),
        FrameSpec::udp(RS1_MAC, INT_MAC, sa(RS1, 1053), client(4, 1), b"hi").to_vec(),
        arp_reply(RS1, RS1_MAC),
    ];
    for s in &seeds {
        for n in 0..=s.len() {
            for partial in [false, true] {
                let rx = RxFrame {
                    ifindex: EXT_IF,
                    data: &s[..n],
                    csum_partial: partial,
                    gso: partial,
                    gso_size: 0,
                };
                let _ = lab.rx_frame(rx);
            }
        }
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for i in 0..20_000 {
        let mut f = seeds[i % seeds.len()].clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(f.len());
            f[at] ^= 1 << rng.below(8);
        }
        if rng.below(4) == 0 {
            let n = rng.below(f.len() + 1);
            f.truncate(n);
        }
        let ifindex = if rng.below(2) == 0 { EXT_IF } else { INT_IF };
        let _ = lab.rx_frame(RxFrame {
            ifindex,
            data: &f,
            csum_partial: rng.below(3) == 0,
            gso: false,
            gso_size: 0,
        });
        if i % 1000 == 0 {
            lab.advance(Duration::from_secs(7));
            let mut buf = [0u8; 64];
            while lab.dp.poll_transmit(lab.now, &mut buf).is_some() {}
        }
    }
    for _ in 0..5_000 {
        let n = rng.below(200);
        let mut f: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
        // Make some of them look like IPv4/ARP to get past the first checks.
        if n > 14 && rng.below(2) == 0 {
            f[12] = 0x08;
            f[13] = if rng.below(4) == 0 { 0x06 } else { 0x00 };
            if n > 34 && rng.below(2) == 0 {
                f[14] = 0x45;
                f[23] = if rng.below(2) == 0 { 6 } else { 17 };
                f[30..34].copy_from_slice(&VIP.octets());
            }
        }
        let _ = lab.rx(EXT_IF, &f);
    }
    let s = lab.dp.stats();
    assert_invariant(&s);
    assert!(s.received > 25_000);
}
