//! Unit tests of scheduling around the scheduler: persistence templates, connection
//! thresholds, one-packet scheduling, the decision ring and `simulate` (spec b.1, b.16).
//! Time is injected; the lab is the one of `tests.rs`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use lvs_proto::{Forwarding, Protocol, SchedulerKind};

use super::tests::*;
use super::*;
use crate::sched::Flow;
use crate::wire::build::FrameSpec;
use crate::wire::tcp::TcpControl;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A lab address as the family-agnostic `SocketAddr` the dataplane reports.
fn sock(a: impl Into<SocketAddr>) -> SocketAddr {
    a.into()
}

/// The real server a transmitted NAT frame goes to.
fn target(frame: &[u8]) -> Ipv4Addr {
    Ipv4Packet::new_checked(&frame[14..])
        .map(|ip| ip.dst_addr())
        .unwrap_or(Ipv4Addr::UNSPECIFIED)
}

/// A client outside the lab's 198.51.100.0/24.
fn far_client(n: u8, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(198, 51, 101, n), port)
}

/// TCP VIP:80, rr over RS1, RS2, RS3 (list RS3, RS2, RS1), NAT, with `persistence`.
fn persistent(timeout: u64, netmask: Ipv4Addr, quiescent_expire: bool) -> DataplaneConfig {
    let mut cfg = config(vec![service(
        Protocol::Tcp,
        VIP,
        80,
        SchedulerKind::Rr,
        [RS1, RS2, RS3]
            .into_iter()
            .map(|a| dest(a, 80, 1, Forwarding::Nat))
            .collect(),
    )]);
    cfg.services[0].persistence = Some(Persistence {
        timeout: secs(timeout),
        netmask,
        prefix6: 128,
        quiescent_template_expire: quiescent_expire,
    });
    cfg
}

const HOST: Ipv4Addr = Ipv4Addr::BROADCAST;
const NET24: Ipv4Addr = Ipv4Addr::new(255, 255, 255, 0);

/// A SYN from `c` to VIP:80: the real server it is sent to.
fn syn(lab: &mut Lab, c: SocketAddrV4) -> Ipv4Addr {
    target(&lab.fwd(EXT_IF, &tcp_in(c, sa(VIP, 80), TcpControl::SYN)))
}

/// A SYN, the handshake's ACK, and a RST: the connection sits in CLOSE for 10 s.
fn short_conn(lab: &mut Lab, c: SocketAddrV4) -> Ipv4Addr {
    let rs = syn(lab, c);
    lab.fwd(EXT_IF, &tcp_in(c, sa(VIP, 80), TcpControl::ACK));
    lab.fwd(EXT_IF, &tcp_in(c, sa(VIP, 80), TcpControl::RST));
    rs
}

fn templates(lab: &Lab) -> Vec<ConnInfo> {
    lab.dp
        .connections(lab.now)
        .into_iter()
        .filter(|c| c.template)
        .collect()
}

/// `(address, persistent)` per real server of the (IPv4) service 0; an IPv6 address shows
/// as 0.0.0.0, so it never matches.
fn persistent_counts(lab: &Lab) -> Vec<(Ipv4Addr, u32)> {
    lab.service(0)
        .dests
        .iter()
        .map(|d| match d.addr {
            IpAddr::V4(a) => (a, d.persistent),
            IpAddr::V6(_) => (Ipv4Addr::UNSPECIFIED, d.persistent),
        })
        .collect()
}

/// Persistence: one client stays on one real server over many connections within the
/// timeout, though rr would rotate; another client gets the next rr pick. The template is
/// an entry with client port 0, state NONE, counted as `persistent` on its server.
#[test]
fn persistence_keeps_a_client_on_one_server() {
    let mut lab = Lab::resolved(persistent(300, HOST, false));
    // List RS3, RS2, RS1: rr picks RS3 first.
    for p in 0..20 {
        assert_eq!(syn(&mut lab, client(1, 40000 + p)), RS3, "connection {p}");
        lab.advance(secs(2));
    }
    assert_eq!(
        syn(&mut lab, client(2, 40000)),
        RS2,
        "the scheduler ran once before"
    );
    assert_eq!(syn(&mut lab, client(2, 40001)), RS2);
    let t = templates(&lab);
    assert_eq!(t.len(), 2);
    let first = &t[0];
    assert_eq!(first.client, sock(client(1, 0)));
    assert_eq!(first.virt, sock(sa(VIP, 80)));
    assert_eq!(first.real, sock(sa(RS3, 80)));
    assert_eq!(first.state, "NONE");
    assert!(!first.active);
    // Refreshed by the last of the 20 connections, 2 s ago.
    assert_eq!(first.expires_in, secs(300 - 2));
    assert_eq!(
        persistent_counts(&lab),
        [(RS3, 1), (RS2, 1), (RS1, 0)],
        "IPVS order"
    );
    let s = lab.service(0);
    assert_eq!(s.counters.conns, 22, "templates are not connections");
    assert_eq!(s.dests[0].counters.conns, 20);
    // Connections count as usual (SYN_RECV is active); templates are not in active/inactive.
    assert_eq!((s.dests[0].active, s.dests[0].inactive), (20, 0));
}

/// A /24 netmask groups neighbours on one template; another /24 is scheduled anew.
#[test]
fn netmask_groups_neighbours() {
    let mut lab = Lab::resolved(persistent(300, NET24, false));
    assert_eq!(syn(&mut lab, client(1, 1000)), RS3);
    assert_eq!(syn(&mut lab, client(2, 1000)), RS3);
    assert_eq!(syn(&mut lab, client(200, 1000)), RS3);
    assert_eq!(syn(&mut lab, far_client(1, 1000)), RS2);
    assert_eq!(syn(&mut lab, far_client(99, 1000)), RS2);
    let t = templates(&lab);
    let keys: Vec<_> = t.iter().map(|c| c.client).collect();
    assert_eq!(
        keys,
        [
            sock(SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 0), 0)),
            sock(SocketAddrV4::new(Ipv4Addr::new(198, 51, 101, 0), 0))
        ]
    );
}

/// After the template expires (no connection left to control it), the scheduler chooses
/// anew.
#[test]
fn new_choice_after_expiry() {
    let mut lab = Lab::resolved(persistent(60, HOST, false));
    assert_eq!(short_conn(&mut lab, client(1, 1)), RS3);
    lab.advance(secs(30));
    assert_eq!(
        short_conn(&mut lab, client(1, 2)),
        RS3,
        "hit, refreshed to 60 s"
    );
    lab.advance(secs(59));
    assert_eq!(templates(&lab).len(), 1);
    assert_eq!(lab.dp.conn_count(), 1, "connections gone, template left");
    lab.advance(secs(1));
    assert_eq!(
        lab.dp.conn_count(),
        0,
        "template expired 60 s after its last use"
    );
    assert_eq!(persistent_counts(&lab), [(RS3, 0), (RS2, 0), (RS1, 0)]);
    assert_eq!(syn(&mut lab, client(1, 3)), RS2, "rr moved on once");
}

/// Kernel `ip_vs_conn_expire`: a template that still controls a live connection is not
/// removed at its deadline but lives on 60 s at a time; once the connection is gone, it
/// goes at the next deadline. Its timeout stays 60 s from then on (kernel quirk).
#[test]
fn template_lives_while_it_controls_a_connection() {
    let mut lab = Lab::resolved(persistent(30, HOST, false));
    let c = client(1, 1);
    assert_eq!(syn(&mut lab, c), RS3);
    lab.fwd(EXT_IF, &tcp_in(c, sa(VIP, 80), TcpControl::ACK)); // ESTABLISHED, 900 s
    for _ in 0..10 {
        lab.advance(secs(30));
        // Keep the connection alive.
        lab.fwd(EXT_IF, &tcp_in(c, sa(VIP, 80), TcpControl::ACK));
        assert_eq!(templates(&lab).len(), 1, "at {:?}", lab.now - lab.t0);
    }
    // After a deferral a hit refreshes to 60 s, not 30 s.
    assert_eq!(short_conn(&mut lab, client(1, 2)), RS3);
    assert_eq!(templates(&lab)[0].expires_in, secs(60));
    // Close the long connection; once both are gone, the template goes at its deadline.
    lab.fwd(EXT_IF, &tcp_in(c, sa(VIP, 80), TcpControl::RST));
    lab.advance(secs(10));
    assert_eq!(lab.dp.conn_count(), 1, "only the template");
    lab.advance(secs(50));
    assert_eq!(lab.dp.conn_count(), 0);
    assert_eq!(persistent_counts(&lab), [(RS3, 0), (RS2, 0), (RS1, 0)]);
}

/// Weight 0 without `quiescent_template_expire`: the template still leads to the quiesced
/// server (kernel default). With it: the template is invalidated (vport 65535, left to
/// expire) and the client is scheduled anew.
#[test]
fn quiesced_server_template_per_option() {
    for expire in [false, true] {
        let mut cfg = persistent(300, HOST, expire);
        let mut lab = Lab::resolved(cfg.clone());
        assert_eq!(syn(&mut lab, client(1, 1)), RS3);
        lab.advance(secs(100));
        cfg.services[0].dests[2].weight = 0; // RS3
        lab.dp.reconfigure(cfg.clone(), lab.now);
        let rs = syn(&mut lab, client(1, 2));
        if !expire {
            assert_eq!(rs, RS3, "template wins over weight 0");
            assert_eq!(templates(&lab).len(), 1);
            continue;
        }
        // rr resumes after RS3 (its position) and skips weight 0: RS2.
        assert_eq!(rs, RS2, "rescheduled");
        let t = templates(&lab);
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].virt, sock(sa(VIP, 65535)), "invalidated");
        assert_eq!(t[0].real, sock(sa(RS3, 65535)));
        assert_eq!(t[1].real, sock(sa(RS2, 80)));
        assert_eq!(persistent_counts(&lab), [(RS3, 1), (RS2, 1), (RS1, 0)]);
        // The invalidated one keeps its timer (300 s from its last refresh, t0).
        lab.advance(secs(199));
        assert_eq!(persistent_counts(&lab), [(RS3, 1), (RS2, 1), (RS1, 0)]);
        lab.advance(secs(1));
        assert_eq!(persistent_counts(&lab), [(RS3, 0), (RS2, 1), (RS1, 0)]);
        assert_eq!(syn(&mut lab, client(1, 3)), RS2);
    }
}

/// A template whose real server was removed is invalidated at the next connection; the
/// server stays in the trash (not listed) until its template expires.
#[test]
fn removed_server_template_is_invalidated() {
    let mut cfg = persistent(100, HOST, false);
    let mut lab = Lab::resolved(cfg.clone());
    assert_eq!(short_conn(&mut lab, client(1, 1)), RS3);
    lab.advance(secs(50));
    cfg.services[0].dests.remove(2); // RS3
    lab.dp.reconfigure(cfg, lab.now);
    assert_eq!(lab.service(0).dests.len(), 2);
    assert_eq!(
        templates(&lab)[0].virt,
        sock(sa(VIP, 80)),
        "untouched until used"
    );
    let rs = syn(&mut lab, client(1, 2));
    assert_ne!(rs, RS3);
    let t = templates(&lab);
    assert_eq!(t.len(), 2);
    assert_eq!(t[0].real, sock(sa(RS3, 65535)));
    lab.advance(secs(50));
    assert_eq!(templates(&lab).len(), 1, "the invalidated one expired");
    // RS3 was freed with its last template: a re-add starts from zero.
    let mut cfg = persistent(100, HOST, false);
    cfg.services[0].dests[2].weight = 2;
    lab.dp.reconfigure(cfg, lab.now);
    let s = lab.service(0);
    assert_eq!(
        (s.dests[0].addr, s.dests[0].counters.conns),
        (IpAddr::from(RS3), 0)
    );
}

/// Turning persistence off leaves templates to expire; they no longer decide.
#[test]
fn persistence_off_stops_using_templates() {
    let mut cfg = persistent(300, HOST, false);
    let mut lab = Lab::resolved(cfg.clone());
    assert_eq!(syn(&mut lab, client(1, 1)), RS3);
    cfg.services[0].persistence = None;
    lab.dp.reconfigure(cfg, lab.now);
    assert_eq!(syn(&mut lab, client(1, 2)), RS2, "rr");
    assert_eq!(templates(&lab).len(), 1, "left to expire");
}

/// One service, one NAT server with thresholds `(u, l)`, TCP VIP:80.
fn thresholds(u: u32, l: u32) -> DataplaneConfig {
    let mut d = dest(RS1, 80, 1, Forwarding::Nat);
    d.upper_threshold = u;
    d.lower_threshold = l;
    config(vec![service(
        Protocol::Tcp,
        VIP,
        80,
        SchedulerKind::Wlc,
        vec![d],
    )])
}

fn try_syn(lab: &mut Lab, port: u16) -> Verdict {
    lab.rx(
        EXT_IF,
        &tcp_in(client(1, port), sa(VIP, 80), TcpControl::SYN),
    )
    .0
}

fn overloaded(lab: &Lab) -> bool {
    lab.service(0).dests[0].overloaded
}

/// Closes connection `port` (RST from ESTABLISHED: CLOSE, 10 s) and lets it expire.
fn close(lab: &mut Lab, port: u16) {
    let c = client(1, port);
    lab.fwd(EXT_IF, &tcp_in(c, sa(VIP, 80), TcpControl::ACK));
    lab.fwd(EXT_IF, &tcp_in(c, sa(VIP, 80), TcpControl::RST));
}

/// Upper threshold 4, no lower: OVERLOAD at the 4th connection; cleared when
/// `(active + inactive) × 4 < 4 × 3`, i.e. at 2 left, not at 3.
#[test]
fn upper_threshold_and_the_three_quarter_rule() {
    let mut lab = Lab::resolved(thresholds(4, 0));
    for p in 1..=4 {
        assert!(matches!(try_syn(&mut lab, p), Verdict::Transmit { .. }));
        assert_eq!(overloaded(&lab), p == 4, "after {p}");
    }
    assert_eq!(
        try_syn(&mut lab, 5),
        Verdict::Drop(DropReason::NoDestination)
    );
    // Closing connections: CLOSE still counts until it expires.
    close(&mut lab, 1);
    assert!(overloaded(&lab));
    lab.advance(secs(10));
    assert_eq!(lab.dp.conn_count(), 3);
    assert!(overloaded(&lab), "3 × 4 = 12 is not < 12");
    assert_eq!(
        try_syn(&mut lab, 6),
        Verdict::Drop(DropReason::NoDestination)
    );
    close(&mut lab, 2);
    lab.advance(secs(10));
    assert!(!overloaded(&lab), "2 × 4 < 12");
    assert!(matches!(try_syn(&mut lab, 7), Verdict::Transmit { .. }));
    assert!(!overloaded(&lab), "3 < 4");
    assert!(matches!(try_syn(&mut lab, 8), Verdict::Transmit { .. }));
    assert!(overloaded(&lab));
    assert_eq!(lab.dp.stats().dropped[DropReason::NoDestination], 2);
}

/// Upper 4, lower 2: cleared only below 2 connections.
#[test]
fn lower_threshold_clears() {
    let mut lab = Lab::resolved(thresholds(4, 2));
    for p in 1..=4 {
        assert!(matches!(try_syn(&mut lab, p), Verdict::Transmit { .. }));
    }
    assert!(overloaded(&lab));
    for (p, still) in [(1, true), (2, true), (3, false)] {
        close(&mut lab, p);
        lab.advance(secs(10));
        assert_eq!(overloaded(&lab), still, "after closing {p}");
    }
}

/// Edits (`__ip_vs_update_dest`): a higher or zero upper threshold clears OVERLOAD at
/// once; a lower one, or the same, does not.
#[test]
fn threshold_edits() {
    let mut lab = Lab::resolved(thresholds(2, 0));
    let _ = try_syn(&mut lab, 1);
    let _ = try_syn(&mut lab, 2);
    assert!(overloaded(&lab));
    lab.dp.reconfigure(thresholds(2, 1), lab.now);
    assert!(overloaded(&lab), "same upper");
    lab.dp.reconfigure(thresholds(1, 0), lab.now);
    assert!(overloaded(&lab), "lower upper");
    lab.dp.reconfigure(thresholds(3, 0), lab.now);
    assert!(!overloaded(&lab), "higher upper");
    assert!(matches!(try_syn(&mut lab, 3), Verdict::Transmit { .. }));
    assert!(overloaded(&lab), "3 >= 3");
    lab.dp.reconfigure(thresholds(0, 0), lab.now);
    assert!(!overloaded(&lab), "no threshold");
    assert!(matches!(try_syn(&mut lab, 4), Verdict::Transmit { .. }));
}

/// OVERLOAD does not stop a persistence template (the kernel's template path ignores it),
/// and a template's binding is not in the threshold sum.
#[test]
fn templates_ignore_overload() {
    let mut cfg = thresholds(2, 0);
    cfg.services[0].persistence = Some(Persistence {
        timeout: secs(300),
        netmask: HOST,
        prefix6: 128,
        quiescent_template_expire: false,
    });
    let mut lab = Lab::resolved(cfg);
    assert!(matches!(try_syn(&mut lab, 1), Verdict::Transmit { .. }));
    assert!(!overloaded(&lab), "1 connection + 1 template < 2");
    assert!(matches!(try_syn(&mut lab, 2), Verdict::Transmit { .. }));
    assert!(overloaded(&lab));
    assert!(
        matches!(try_syn(&mut lab, 3), Verdict::Transmit { .. }),
        "template hit"
    );
    let s = lab.service(0);
    assert_eq!((s.dests[0].active, s.dests[0].persistent), (3, 1));
}

/// One-packet scheduling: every datagram is scheduled on its own and leaves no entry;
/// connections and packets are still counted.
#[test]
fn one_packet_keeps_no_entries() {
    let mut cfg = config(vec![service(
        Protocol::Udp,
        VIP,
        53,
        SchedulerKind::Rr,
        vec![
            dest(RS1, 53, 1, Forwarding::Nat),
            dest(RS2, 53, 1, Forwarding::Nat),
        ],
    )]);
    cfg.services[0].one_packet = true;
    let mut lab = Lab::resolved(cfg);
    let c = client(1, 5353);
    let picks: Vec<_> = (0..4)
        .map(|_| {
            target(&lab.fwd(
                EXT_IF,
                &FrameSpec::udp(GW_MAC, EXT_MAC, c, sa(VIP, 53), b"q").to_vec(),
            ))
        })
        .collect();
    assert_eq!(
        picks,
        [RS2, RS1, RS2, RS1],
        "same 5-tuple, scheduled each time"
    );
    assert_eq!(lab.dp.conn_count(), 0);
    let s = lab.service(0);
    assert_eq!((s.counters.conns, s.counters.inpkts), (4, 4));
    assert!(
        s.dests
            .iter()
            .all(|d| d.counters.conns == 2 && d.inactive == 0 && d.active == 0)
    );
    // No entry, so a NAT reply has no connection (as in IPVS).
    let reply = FrameSpec::udp(RS1_MAC, INT_MAC, sa(RS1, 53), c, b"a").to_vec();
    assert_eq!(
        lab.rx(INT_IF, &reply).0,
        Verdict::Drop(DropReason::NoConnection)
    );
}

/// One-packet with persistence: the template still keeps the client on one server.
#[test]
fn one_packet_with_persistence() {
    let mut cfg = config(vec![service(
        Protocol::Udp,
        VIP,
        53,
        SchedulerKind::Rr,
        vec![
            dest(RS1, 53, 1, Forwarding::Nat),
            dest(RS2, 53, 1, Forwarding::Nat),
        ],
    )]);
    cfg.services[0].one_packet = true;
    cfg.services[0].persistence = Some(Persistence {
        timeout: secs(60),
        netmask: HOST,
        prefix6: 128,
        quiescent_template_expire: false,
    });
    let mut lab = Lab::resolved(cfg);
    for p in 0..4 {
        let f = FrameSpec::udp(GW_MAC, EXT_MAC, client(1, 5000 + p), sa(VIP, 53), b"q");
        assert_eq!(target(&lab.fwd(EXT_IF, &f.to_vec())), RS2);
    }
    assert_eq!(lab.dp.conn_count(), 1, "just the template");
    assert_eq!(templates(&lab)[0].state, "NONE");
    lab.advance(secs(60));
    assert_eq!(lab.dp.conn_count(), 0);
}

fn vip80() -> ServiceKey {
    ServiceKey {
        protocol: Protocol::Tcp,
        vip: VIP.into(),
        port: 80,
    }
}

/// Nothing is recorded until someone asks; then decisions come with reasons and rising
/// sequence numbers, for DECISION_WATCH; the ring keeps the last DECISION_RING.
#[test]
fn decisions_are_recorded_only_when_watched() {
    let mut lab = Lab::resolved(persistent(300, HOST, false));
    syn(&mut lab, client(1, 1));
    assert!(lab.dp.decisions_since(lab.now, &vip80(), 0).is_empty());
    // Watched from now on.
    syn(&mut lab, client(1, 2)); // template hit
    syn(&mut lab, client(2, 1)); // scheduler + new template
    let d = lab.dp.decisions_since(lab.now, &vip80(), 0);
    assert_eq!(d.len(), 2);
    assert_eq!((d[0].seq, d[1].seq), (1, 2));
    assert_eq!(d[0].client, sock(client(1, 2)));
    assert_eq!(d[0].dest, Some(sock(sa(RS3, 80))));
    assert_eq!(d[0].scheduler, SchedulerKind::Rr);
    assert_eq!(d[0].service, vip80());
    assert_eq!(d[0].reason, "persistence template hit, 300 s left");
    assert_eq!(d[1].dest, Some(sock(sa(RS2, 80))));
    assert!(d[1].reason.starts_with("rr: "), "{}", d[1].reason);
    assert!(
        d[1].reason.ends_with("new persistence template, 300 s"),
        "{}",
        d[1].reason
    );
    assert_eq!(lab.dp.decisions_since(lab.now, &vip80(), 2), []);
    // The watch lapses DECISION_WATCH after the last ask.
    lab.now += DECISION_WATCH;
    syn(&mut lab, client(3, 1));
    assert_eq!(lab.dp.decisions_since(lab.now, &vip80(), 2), []);
    // Bounded ring, oldest dropped.
    for p in 0..300u16 {
        syn(&mut lab, client(4, 1000 + p));
    }
    let d = lab.dp.decisions_since(lab.now, &vip80(), 0);
    assert_eq!(d.len(), DECISION_RING);
    assert_eq!(d[0].seq, 3 + 300 - DECISION_RING as u64);
    assert_eq!(d.last().map(|d| d.seq), Some(302));
    // Unknown service: nothing.
    let other = ServiceKey {
        port: 81,
        ..vip80()
    };
    assert!(lab.dp.decisions_since(lab.now, &other, 0).is_empty());
}

/// A decision with no destination is recorded too (the drop is counted as usual).
#[test]
fn no_destination_is_a_decision() {
    let mut lab = Lab::resolved(one_server(0));
    let key = vip80();
    lab.dp.decisions_since(lab.now, &key, 0);
    assert_eq!(
        try_syn(&mut lab, 1),
        Verdict::Drop(DropReason::NoDestination)
    );
    let d = lab.dp.decisions_since(lab.now, &key, 0);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].dest, None);
    assert!(d[0].reason.contains("no destination"), "{}", d[0].reason);
}

fn one_server(weight: u32) -> DataplaneConfig {
    config(vec![service(
        Protocol::Tcp,
        VIP,
        80,
        SchedulerKind::Rr,
        vec![dest(RS1, 80, weight, Forwarding::Nat)],
    )])
}

fn tcp_flow(c: SocketAddrV4) -> Flow {
    Flow {
        protocol: Protocol::Tcp,
        src: c.into(),
        dst: sa(VIP, 80).into(),
    }
}

/// `simulate` answers what a new connection would get, and changes nothing: asking twice
/// gives the same answer, and the real connection then goes there.
#[test]
fn simulate_changes_nothing() {
    let mut lab = Lab::resolved(persistent(300, HOST, false));
    let before = lab.dp.stats();
    let a = lab.dp.simulate(lab.now, &tcp_flow(client(1, 1)));
    let b = lab.dp.simulate(lab.now, &tcp_flow(client(1, 1)));
    assert_eq!(a, b);
    assert_eq!(a.service, Some(vip80()));
    assert_eq!(a.dest, Some(sock(sa(RS3, 80))));
    assert!(a.reason.starts_with("rr: "), "{}", a.reason);
    assert!(
        a.reason
            .contains("a new persistence template would be made"),
        "{}",
        a.reason
    );
    assert_eq!(lab.dp.stats(), before);
    assert_eq!(lab.dp.conn_count(), 0);
    assert_eq!(syn(&mut lab, client(1, 1)), RS3);
    // A persistent client: the template answers.
    let r = lab.dp.simulate(lab.now, &tcp_flow(client(1, 2)));
    assert_eq!(r.dest, Some(sock(sa(RS3, 80))));
    assert_eq!(r.reason, "persistence template hit, 300 s left");
    // Another client: the next rr pick, still without moving rr.
    let r = lab.dp.simulate(lab.now, &tcp_flow(client(2, 1)));
    assert_eq!(r.dest, Some(sock(sa(RS2, 80))));
    assert_eq!(syn(&mut lab, client(2, 1)), RS2);
    // The flow of a live connection: that connection.
    let r = lab.dp.simulate(lab.now, &tcp_flow(client(1, 1)));
    assert_eq!(r.dest, Some(sock(sa(RS3, 80))));
    assert!(
        r.reason.starts_with("existing connection (SYN_RECV"),
        "{}",
        r.reason
    );
    // Not a service.
    let r = lab.dp.simulate(
        lab.now,
        &Flow {
            dst: sa(VIP, 81).into(),
            ..tcp_flow(client(1, 1))
        },
    );
    assert_eq!((r.service, r.dest), (None, None));
    assert_eq!(r.reason, "no virtual service TCP 203.0.113.10:81");
    // Simulating never records decisions either.
    assert!(lab.dp.decisions_since(lab.now, &vip80(), 0).is_empty());
}

/// `simulate` on a template whose server is quiesced with the option set says it would
/// be invalidated, and leaves it alone.
#[test]
fn simulate_reports_an_invalid_template() {
    let mut cfg = persistent(300, HOST, true);
    let mut lab = Lab::resolved(cfg.clone());
    assert_eq!(syn(&mut lab, client(1, 1)), RS3);
    cfg.services[0].dests[2].weight = 0;
    lab.dp.reconfigure(cfg, lab.now);
    let r = lab.dp.simulate(lab.now, &tcp_flow(client(1, 2)));
    assert_eq!(r.dest, Some(sock(sa(RS2, 80))));
    assert!(
        r.reason
            .starts_with("persistence template would be invalidated: its real server has weight 0"),
        "{}",
        r.reason
    );
    assert_eq!(templates(&lab)[0].virt, sock(sa(VIP, 80)), "untouched");
}

// With more than 16 real servers the schedulers keep index trees that the dataplane must
// keep in step (`announce` after every count change); debug builds check the view before
// each decision, so a missing notification panics here.

struct R(u64);
impl R {
    fn n(&mut self, m: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % m
    }
}

fn dests(n: u32, r: &mut R) -> Vec<DestSpec> {
    (0..n)
        .map(|i| {
            let mut d = dest(
                Ipv4Addr::from(0xC000_0200 + 100 + i),
                80,
                r.n(4) as u32,
                Forwarding::Nat,
            );
            if r.n(3) == 0 {
                d.upper_threshold = 3 + r.n(4) as u32;
                d.lower_threshold = r.n(3) as u32;
            }
            d
        })
        .collect()
}

#[test]
fn tree_mode_stays_in_step_through_the_dataplane() {
    for &kind in SchedulerKind::ALL {
        let mut r = R(kind as u64 + 7);
        let mut ds = dests(40, &mut r);
        let mut cfg = config(vec![service(Protocol::Tcp, VIP, 80, kind, ds.clone())]);
        let mut lab = Lab::resolved(cfg.clone());
        let mut decided = 0;
        for step in 0..4000u32 {
            let c = SocketAddrV4::new(
                Ipv4Addr::new(198, 51, 100, 1 + r.n(200) as u8),
                1000 + r.n(50) as u16,
            );
            match r.n(20) {
                0..=7 => {
                    let _ = lab.rx(EXT_IF, &tcp_in(c, sa(VIP, 80), TcpControl::SYN));
                    decided += 1;
                }
                8..=12 => {
                    let _ = lab.rx(EXT_IF, &tcp_in(c, sa(VIP, 80), TcpControl::ACK));
                }
                13..=15 => {
                    let _ = lab.rx(EXT_IF, &tcp_in(c, sa(VIP, 80), TcpControl::RST));
                }
                16 if r.n(10) == 0 => lab.advance(Duration::from_secs(r.n(30))),
                _ => {
                    if step % 7 == 0 {
                        match r.n(3) {
                            0 => {
                                let i = r.n(ds.len() as u64) as usize;
                                ds[i].weight = r.n(4) as u32;
                                ds[i].upper_threshold = r.n(6) as u32;
                            }
                            1 if ds.len() > 24 => {
                                ds.remove(r.n(ds.len() as u64) as usize);
                            }
                            _ => {
                                let i = 40 + step;
                                let mut d = dest(
                                    Ipv4Addr::from(0xC000_0200 + 100 + (i % 100)),
                                    80,
                                    r.n(4) as u32,
                                    Forwarding::Nat,
                                );
                                d.upper_threshold = r.n(5) as u32;
                                if !ds.iter().any(|x| x.addr == d.addr) {
                                    ds.push(d);
                                }
                            }
                        }
                        cfg.services[0].dests = ds.clone();
                        lab.dp.reconfigure(cfg.clone(), lab.now);
                    }
                }
            }
        }
        assert!(decided > 1000, "{kind}");
        eprintln!(
            "{kind}: ok, {} conns, {} dests",
            lab.dp.conn_count(),
            ds.len()
        );
    }
}

// IPv6: the hashing schedulers see IPv6 flows through the dataplane and hash them the
// kernel's way (expected picks from an independent Python model of ip_vs_sh.c and
// ip_vs_mh.c; the formulas are written out in the sched tests).

/// Real server 3 of the IPv6 lab (2001:db8:b::13).
const RS3_6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, 0x13);

/// A `kind` service on `vip`:80 over `rss` (config order; the IPVS list is the reverse),
/// weight 1 each, with scheduler flag 2 (`sh-port`/`mh-port`) if `port_flag`.
fn hashing(
    vip: impl Into<IpAddr>,
    kind: SchedulerKind,
    rss: &[IpAddr],
    forwarding: Forwarding,
    port_flag: bool,
) -> DataplaneConfig {
    let mut svc = service(
        Protocol::Tcp,
        vip,
        80,
        kind,
        rss.iter().map(|&a| dest(a, 80, 1, forwarding)).collect(),
    );
    svc.sched_params.flags.flag2 = port_flag;
    config(vec![svc])
}

/// Where `simulate` sends a TCP flow from `c` to `vip`:80, and its explanation.
fn simulated(lab: &Lab, c: impl Into<SocketAddr>, vip: impl Into<IpAddr>) -> (SocketAddr, String) {
    let r = lab.dp.simulate(
        lab.now,
        &Flow {
            protocol: Protocol::Tcp,
            src: c.into(),
            dst: SocketAddr::new(vip.into(), 80),
        },
    );
    let unspecified = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0);
    (r.dest.unwrap_or(unspecified), r.reason)
}

fn v6s() -> Vec<IpAddr> {
    vec![RS1_6.into(), RS2_6.into(), RS3_6.into()]
}

/// sh over 2001:db8:b::11..13 (list ::13, ::12, ::11): client 2001:db8:c::10 folds to
/// 0x200d0da8, bucket 12 → list 0 (::13); with sh-port and port 40000 bucket 175 → list 1
/// (::12); clients ::11, ::12, ::13 → buckets 109, 207, 49 → ::12, ::13, ::12.
#[test]
fn ipv6_sh_hashes_the_word_xor() {
    let lab = Lab::new(hashing(
        VIP6,
        SchedulerKind::Sh,
        &v6s(),
        Forwarding::Nat,
        false,
    ));
    let (rs, why) = simulated(&lab, client6(0x10, 40000), VIP6);
    assert_eq!(rs, SocketAddr::new(RS3_6.into(), 80), "{why}");
    assert!(
        why.starts_with("sh: 2001:db8:c::10 bucket 12 -> [2001:db8:b::13]:80"),
        "{why}"
    );
    for (n, want) in [(0x11, RS2_6), (0x12, RS3_6), (0x13, RS2_6)] {
        let (rs, why) = simulated(&lab, client6(n, 1), VIP6);
        assert_eq!(
            rs,
            SocketAddr::new(want.into(), 80),
            "client ::{n:x}: {why}"
        );
    }
    let lab = Lab::new(hashing(
        VIP6,
        SchedulerKind::Sh,
        &v6s(),
        Forwarding::Nat,
        true,
    ));
    let (rs, why) = simulated(&lab, client6(0x10, 40000), VIP6);
    assert_eq!(rs, SocketAddr::new(RS2_6.into(), 80), "{why}");
    assert!(
        why.starts_with("sh: [2001:db8:c::10]:40000 bucket 175 -> [2001:db8:b::12]:80"),
        "{why}"
    );
}

/// mh over 2001:db8:b::11..13 (list ::13, ::12, ::11): client 2001:db8:c::10 → slot 269
/// → list 1 (::12); with mh-port and port 40000 slot 2842 → list 2 (::11); clients ::11,
/// ::12 → slots 3097, 952 → ::13, ::12.
#[test]
fn ipv6_mh_hashes_the_word_xor() {
    let lab = Lab::new(hashing(
        VIP6,
        SchedulerKind::Mh,
        &v6s(),
        Forwarding::Nat,
        false,
    ));
    let (rs, why) = simulated(&lab, client6(0x10, 40000), VIP6);
    assert_eq!(rs, SocketAddr::new(RS2_6.into(), 80), "{why}");
    assert!(why.starts_with("mh: 2001:db8:c::10 slot 269 -> "), "{why}");
    for (n, want) in [(0x11, RS3_6), (0x12, RS2_6)] {
        let (rs, why) = simulated(&lab, client6(n, 1), VIP6);
        assert_eq!(
            rs,
            SocketAddr::new(want.into(), 80),
            "client ::{n:x}: {why}"
        );
    }
    let lab = Lab::new(hashing(
        VIP6,
        SchedulerKind::Mh,
        &v6s(),
        Forwarding::Nat,
        true,
    ));
    let (rs, why) = simulated(&lab, client6(0x10, 40000), VIP6);
    assert_eq!(rs, SocketAddr::new(RS1_6.into(), 80), "{why}");
}

/// An IPv4 mh service tunnelling to IPv6 real servers (6in4 the other way round: IPv4 in
/// IPv6): the kernel folds each real server under the service's family, i.e. its first
/// word 0x20010db8, so all three share one permutation. Client 198.51.100.2 → slot 940
/// → list 0 (::13) in that table (folding each address as IPv6 would give ::11);
/// 198.51.100.1 → slot 2374 → list 2 (::11) (else ::12).
#[test]
fn ipv4_mh_service_with_ipv6_tunnel_servers_folds_their_first_word() {
    let lab = Lab::new(hashing(
        VIP,
        SchedulerKind::Mh,
        &v6s(),
        Forwarding::Tun,
        false,
    ));
    let (rs, why) = simulated(&lab, client(2, 1), VIP);
    assert_eq!(rs, SocketAddr::new(RS3_6.into(), 80), "{why}");
    assert!(why.starts_with("mh: 198.51.100.2 slot 940 -> "), "{why}");
    let (rs, why) = simulated(&lab, client(1, 1), VIP);
    assert_eq!(rs, SocketAddr::new(RS1_6.into(), 80), "{why}");
}
