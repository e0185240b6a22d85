//! Health in the data path (`health.rs`): list changes on flips, inhibit, quorum and the
//! sorry server, passive detection. Time is the lab's clock, advanced by hand.

use std::net::Ipv4Addr;
use std::time::Duration;

use lvs_proto::{Forwarding, Protocol, SchedulerKind};

use super::tests::*;
use super::*;
use crate::wire::ipv4::Ipv4Packet;
use crate::wire::tcp::TcpControl;

const KEY: ServiceKey = ServiceKey {
    protocol: Protocol::Tcp,
    vip: std::net::IpAddr::V4(VIP),
    port: 80,
};

fn checked(addr: Ipv4Addr, weight: u32) -> DestSpec {
    DestSpec {
        health: HealthSpec {
            checked: true,
            ..HealthSpec::default()
        },
        ..dest(addr, 80, weight, Forwarding::Nat)
    }
}

fn lab_with(dests: Vec<DestSpec>, health: ServiceHealth) -> Lab {
    let mut svc = service(Protocol::Tcp, VIP, 80, SchedulerKind::Rr, dests);
    svc.health = health;
    Lab::resolved(config(vec![svc]))
}

/// Listed servers in list order, then the parked ones: (addr, in_service, weight).
fn listing(lab: &Lab) -> Vec<(Ipv4Addr, bool, u32)> {
    lab.service(0)
        .dests
        .iter()
        .map(|d| (v4(d.addr), d.in_service, d.weight))
        .collect()
}

fn events(lab: &mut Lab) -> Vec<HealthEvent> {
    std::iter::from_fn(|| lab.dp.poll_health_event()).collect()
}

/// Where a new connection from `c` goes (the rewritten destination).
fn syn(lab: &mut Lab, c: std::net::SocketAddrV4) -> Option<Ipv4Addr> {
    let (v, out) = lab.rx(EXT_IF, &tcp_in(c, sa(VIP, 80), TcpControl::SYN));
    match v {
        Verdict::Transmit { .. } => Ipv4Packet::new_checked(&out[14..])
            .ok()
            .map(|ip| ip.dst_addr()),
        _ => None,
    }
}

fn set(lab: &mut Lab, addr: Ipv4Addr, up: bool) {
    let r = lab.dp.set_health(&KEY, addr, 80, up, "tcp", "test");
    assert_eq!(r, Ok(()));
}

#[test]
fn a_down_server_leaves_the_list_and_comes_back_at_the_head() {
    let mut lab = lab_with(
        vec![checked(RS1, 1), checked(RS2, 1), checked(RS3, 1)],
        ServiceHealth::default(),
    );
    // keepalived adds one by one at the head: list RS3 RS2 RS1.
    let c = client(1, 1000);
    assert_eq!(syn(&mut lab, c), Some(RS3));
    set(&mut lab, RS3, false);
    assert_eq!(
        listing(&lab),
        vec![(RS2, true, 1), (RS1, true, 1), (RS3, false, 1)]
    );
    // No new connection reaches it; its open one continues.
    for i in 0..6 {
        assert_ne!(syn(&mut lab, client(2, 2000 + i)), Some(RS3));
    }
    let (v, _) = lab.rx(EXT_IF, &tcp_in(c, sa(VIP, 80), TcpControl::ACK));
    assert!(matches!(v, Verdict::Transmit { .. }), "{v:?}");
    let ev = events(&mut lab);
    assert!(
        matches!(&ev[..], [HealthEvent::Changed { up: false, addr, .. }] if *addr == RS3),
        "{ev:?}"
    );
    // Up again: at the head of the list (ipvsadm -a), not where it was.
    set(&mut lab, RS3, true);
    assert_eq!(
        listing(&lab).iter().map(|d| d.0).collect::<Vec<_>>(),
        vec![RS3, RS2, RS1]
    );
    // Saying what it already is changes nothing.
    set(&mut lab, RS3, true);
    assert_eq!(events(&mut lab).len(), 1);
}

#[test]
fn a_removed_server_keeps_its_entry_until_it_is_up_again() {
    let mut lab = lab_with(
        vec![checked(RS1, 1), checked(RS2, 1)],
        ServiceHealth::default(),
    );
    let c = client(1, 1000);
    let first = syn(&mut lab, c);
    assert_eq!(first, Some(RS2));
    set(&mut lab, RS2, false);
    // Its connection ends and expires: a parked server is not trash, it stays configured.
    lab.advance(Duration::from_secs(200));
    assert_eq!(lab.dp.conn_count(), 0);
    assert!(lab.dp.dest_stats(&KEY, RS2, 80).is_ok());
    set(&mut lab, RS2, true);
    assert_eq!(listing(&lab)[0], (RS2, true, 1));
}

#[test]
fn inhibit_on_failure_sets_weight_zero_and_restores_the_configured_weight() {
    let mut rs2 = checked(RS2, 3);
    rs2.health.inhibit_on_failure = true;
    let mut lab = lab_with(vec![checked(RS1, 1), rs2], ServiceHealth::default());
    set(&mut lab, RS2, false);
    let d = lab.dp.dest_stats(&KEY, RS2, 80).unwrap();
    assert_eq!((d.in_service, d.weight, d.config_weight), (true, 0, 3));
    for i in 0..4 {
        assert_eq!(syn(&mut lab, client(1, 1000 + i)), Some(RS1));
    }
    // A weight edit while down is kept for when it is up (the scheduler still sees 0).
    assert_eq!(lab.dp.set_weight(&KEY, RS2, 80, 5), Ok(3));
    assert_eq!(lab.dp.dest_stats(&KEY, RS2, 80).unwrap().weight, 0);
    set(&mut lab, RS2, true);
    let d = lab.dp.dest_stats(&KEY, RS2, 80).unwrap();
    assert_eq!((d.weight, d.config_weight), (5, 5));
    // A drained (weight 0) server that goes down and up stays drained.
    assert_eq!(lab.dp.set_weight(&KEY, RS2, 80, 0), Ok(5));
    set(&mut lab, RS2, false);
    set(&mut lab, RS2, true);
    assert_eq!(lab.dp.dest_stats(&KEY, RS2, 80).unwrap().weight, 0);
}

#[test]
fn alpha_servers_start_out_of_the_list() {
    let mut rs1 = checked(RS1, 1);
    rs1.health.start_down = true;
    let mut lab = lab_with(vec![rs1, checked(RS2, 1)], ServiceHealth::default());
    assert_eq!(listing(&lab), vec![(RS2, true, 1), (RS1, false, 1)]);
    set(&mut lab, RS1, true);
    assert_eq!(listing(&lab)[0], (RS1, true, 1));
}

#[test]
fn the_sorry_server_serves_while_no_real_server_is_up() {
    let health = ServiceHealth {
        sorry: Some(dest(RS3, 8080, 1, Forwarding::Nat)),
        ..ServiceHealth::default()
    };
    let mut lab = lab_with(vec![checked(RS1, 1), checked(RS2, 1)], health);
    assert_eq!(
        listing(&lab),
        vec![(RS2, true, 1), (RS1, true, 1), (RS3, false, 1)]
    );
    set(&mut lab, RS1, false);
    assert!(
        lab.service(0).quorum.unwrap().up,
        "RS2 still holds quorum 1"
    );
    set(&mut lab, RS2, false);
    let q = lab.service(0).quorum.unwrap();
    assert!(!q.up && q.sorry_active, "{q:?}");
    assert_eq!(syn(&mut lab, client(1, 1000)), Some(RS3));
    assert_eq!(
        listing(&lab),
        vec![(RS3, true, 1), (RS1, false, 1), (RS2, false, 1)]
    );
    let ev = events(&mut lab);
    assert!(
        matches!(
            &ev[1..],
            [
                HealthEvent::Changed { up: false, .. },
                HealthEvent::Quorum {
                    up: false,
                    live_weight: 0,
                    ..
                },
                HealthEvent::Sorry { active: true, .. }
            ]
        ),
        "{ev:?}"
    );
    // One server back: the sorry server leaves, the alive ones enter at the head.
    set(&mut lab, RS1, true);
    assert_eq!(
        listing(&lab),
        vec![(RS1, true, 1), (RS2, false, 1), (RS3, false, 1)]
    );
    assert_eq!(syn(&mut lab, client(1, 1001)), Some(RS1));
}

#[test]
fn quorum_is_lost_below_quorum_minus_hysteresis_and_regained_at_plus() {
    // Weights 2 + 1 + 1 = 4; quorum 3, hysteresis 1: lost below 2, regained at 4.
    let health = ServiceHealth {
        sorry: Some(dest(RS4, 80, 1, Forwarding::Nat)),
        quorum: 3,
        hysteresis: 1,
    };
    let mut lab = lab_with(
        vec![checked(RS1, 2), checked(RS2, 1), checked(RS3, 1)],
        health,
    );
    assert!(lab.service(0).quorum.unwrap().up);
    set(&mut lab, RS2, false); // 3: still up
    set(&mut lab, RS3, false); // 2: not below 2, still up
    assert!(lab.service(0).quorum.unwrap().up);
    set(&mut lab, RS1, false); // 0: lost
    set(&mut lab, RS1, true); // 2
    set(&mut lab, RS2, true); // 3 < 4: still lost
    let q = lab.service(0).quorum.unwrap();
    assert!(!q.up && q.live_weight == 3, "{q:?}");
    assert_eq!(
        listing(&lab)
            .iter()
            .filter(|d| d.1)
            .map(|d| d.0)
            .collect::<Vec<_>>(),
        vec![RS4],
        "only the sorry server serves"
    );
    set(&mut lab, RS3, true); // 4: regained
    let q = lab.service(0).quorum.unwrap();
    assert!(q.up && !q.sorry_active, "{q:?}");
    assert_eq!(
        listing(&lab)
            .iter()
            .filter(|d| d.1)
            .map(|d| d.0)
            .collect::<Vec<_>>(),
        vec![RS3, RS2, RS1],
        "re-added one by one at the head, in configuration order"
    );
    let quorum: Vec<bool> = events(&mut lab)
        .iter()
        .filter_map(|e| match e {
            HealthEvent::Quorum { up, .. } => Some(*up),
            _ => None,
        })
        .collect();
    assert_eq!(quorum, vec![false, true]);
}

#[test]
fn a_weight_edit_can_lose_the_quorum() {
    let health = ServiceHealth {
        sorry: Some(dest(RS3, 80, 1, Forwarding::Nat)),
        quorum: 2,
        hysteresis: 0,
    };
    let mut lab = lab_with(vec![checked(RS1, 1), checked(RS2, 1)], health);
    assert_eq!(lab.dp.set_weight(&KEY, RS1, 80, 0), Ok(1));
    let q = lab.service(0).quorum.unwrap();
    assert!(!q.up && q.sorry_active, "{q:?}");
}

fn passive_lab() -> Lab {
    let passive = PassiveSpec {
        failures: 2,
        syn_timeout: Duration::from_secs(1),
        backoff: Duration::from_secs(2),
        max_backoff: Duration::from_secs(5),
    };
    let rs = |a| {
        let mut d = dest(a, 80, 1, Forwarding::Nat);
        d.health.passive = Some(passive);
        d
    };
    lab_with(vec![rs(RS1), rs(RS2)], ServiceHealth::default())
}

/// A SYN that RS2 answers with `control`; the client's address.
fn handshake_with_rs2(lab: &mut Lab, n: u16, control: TcpControl) -> Option<Ipv4Addr> {
    // rr over RS2, RS1: try clients until one lands on RS2 (at most two).
    for i in 0..2 {
        let c = client(9, 5000 + n * 2 + i);
        let to = syn(lab, c);
        if to == Some(RS2) {
            let _ = lab.rx(INT_IF, &tcp_reply(sa(RS2, 80), RS2_MAC, c, control));
            return to;
        }
    }
    None
}

#[test]
fn passive_detection_takes_a_refusing_server_down_and_retries_with_backoff() {
    let mut lab = passive_lab();
    let rst = TcpControl::RST | TcpControl::ACK;
    assert_eq!(handshake_with_rs2(&mut lab, 0, rst), Some(RS2));
    assert!(lab.dp.dest_stats(&KEY, RS2, 80).unwrap().in_service);
    assert_eq!(handshake_with_rs2(&mut lab, 1, rst), Some(RS2));
    let d = lab.dp.dest_stats(&KEY, RS2, 80).unwrap();
    assert!(!d.in_service, "down after 2 failures");
    let ev = events(&mut lab);
    assert!(
        matches!(&ev[..], [HealthEvent::Changed { up: false, check, reason, .. }]
            if check == "passive" && reason.contains("RST answering the SYN")),
        "{ev:?}"
    );
    for i in 0..4 {
        assert_eq!(syn(&mut lab, client(3, 3000 + i)), Some(RS1));
    }
    // After the back-off: on probation, at the head; a failure doubles the back-off.
    lab.advance(Duration::from_secs(2));
    assert!(lab.dp.dest_stats(&KEY, RS2, 80).unwrap().in_service);
    assert_eq!(handshake_with_rs2(&mut lab, 2, rst), Some(RS2));
    let p = lab.dp.dest_stats(&KEY, RS2, 80).unwrap();
    assert!(!p.in_service);
    assert_eq!(
        p.health.unwrap().passive.unwrap().backoff,
        Duration::from_secs(4)
    );
    lab.advance(Duration::from_secs(3));
    assert!(!lab.dp.dest_stats(&KEY, RS2, 80).unwrap().in_service);
    lab.advance(Duration::from_secs(1));
    // A completed handshake on probation: up for good, back-off reset.
    let synack = TcpControl::SYN | TcpControl::ACK;
    assert_eq!(handshake_with_rs2(&mut lab, 3, synack), Some(RS2));
    let p = lab.dp.dest_stats(&KEY, RS2, 80).unwrap().health.unwrap();
    let p = p.passive.unwrap();
    assert!(!p.down && !p.probation && p.failures == 0, "{p:?}");
    assert_eq!(p.backoff, Duration::from_secs(2));
    let ev = events(&mut lab);
    assert!(
        matches!(ev.last(), Some(HealthEvent::Changed { up: true, check, .. }) if check == "passive"),
        "{ev:?}"
    );
}

#[test]
fn passive_detection_counts_unanswered_syns_and_resets_on_success() {
    let mut lab = passive_lab();
    let synack = TcpControl::SYN | TcpControl::ACK;
    // One unanswered SYN, then a completed handshake: the count starts again.
    for i in 0..2 {
        let c = client(4, 4000 + i);
        let _ = syn(&mut lab, c);
    }
    lab.advance(Duration::from_millis(1100));
    // RS2 and RS1 each lost one.
    let failures = |lab: &Lab, a| {
        lab.dp
            .dest_stats(&KEY, a, 80)
            .unwrap()
            .health
            .unwrap()
            .passive
            .unwrap()
            .failures
    };
    assert_eq!((failures(&lab, RS1), failures(&lab, RS2)), (1, 1));
    assert_eq!(handshake_with_rs2(&mut lab, 5, synack), Some(RS2));
    assert_eq!(failures(&lab, RS2), 0);
    // Two in a row without answer: RS1 down, with the timeout in the reason.
    for i in 0..4 {
        let _ = syn(&mut lab, client(5, 4100 + i));
    }
    lab.advance(Duration::from_millis(1100));
    let ev = events(&mut lab);
    assert!(
        ev.iter().any(
            |e| matches!(e, HealthEvent::Changed { up: false, reason, .. }
            if reason.contains("no SYN-ACK within 1s"))
        ),
        "{ev:?}"
    );
}

#[test]
fn reconfiguring_keeps_health_state_and_removes_parked_servers() {
    let mut svc = service(
        Protocol::Tcp,
        VIP,
        80,
        SchedulerKind::Rr,
        vec![checked(RS1, 1), checked(RS2, 1), checked(RS3, 1)],
    );
    let mut lab = Lab::resolved(config(vec![svc.clone()]));
    set(&mut lab, RS2, false);
    // The same configuration again: RS2 stays down and out.
    lab.dp.reconfigure(config(vec![svc.clone()]), lab.now);
    assert_eq!(
        listing(&lab),
        vec![(RS3, true, 1), (RS1, true, 1), (RS2, false, 1)]
    );
    // RS2 removed from the configuration while parked: gone.
    svc.dests.remove(1);
    lab.dp.reconfigure(config(vec![svc.clone()]), lab.now);
    assert!(lab.dp.dest_stats(&KEY, RS2, 80).is_err());
    // Checks turned off: an unchecked server is always up.
    set(&mut lab, RS1, false);
    svc.dests[0].health.checked = false;
    lab.dp.reconfigure(config(vec![svc]), lab.now);
    assert!(lab.dp.dest_stats(&KEY, RS1, 80).unwrap().in_service);
}
