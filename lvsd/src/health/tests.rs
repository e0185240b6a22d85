//! The runner against real loopback servers (std threads, so they live outside the
//! runner's runtime).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpListener};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use lvs_proto::Protocol;

use super::testutil::{V6, check, closed_port_on};
use super::*;
use crate::config::{CheckKind, ExecCheck};

fn id(port: u16) -> TargetId {
    id_on(Ipv4Addr::LOCALHOST.into(), port)
}

/// The real server `ip:port` of a service of `ip`'s family.
fn id_on(ip: IpAddr, port: u16) -> TargetId {
    let vip = match ip {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 0x10)),
    };
    TargetId {
        service: ServiceKey {
            protocol: Protocol::Tcp,
            vip,
            port: 80,
        },
        real_server: RealServerKey::new(ip, port),
    }
}

/// A std listener accepting (and dropping) connections on its own thread until the
/// process ends.
fn accept_forever(l: TcpListener) {
    std::thread::spawn(move || {
        for s in l.incoming() {
            drop(s);
        }
    });
}

fn fast_tcp(port: u16) -> Target {
    let mut c = check(CheckKind::Tcp);
    c.interval = Duration::from_millis(100);
    c.timeout = Duration::from_millis(100);
    c.rise = 2;
    c.fall = 2;
    Target {
        id: id(port),
        check: c,
    }
}

/// The reports, with the time each arrived.
type Reports = std_mpsc::Receiver<(Instant, HealthReport)>;

fn collector() -> (Box<dyn Fn(HealthReport) + Send + Sync>, Reports) {
    let (tx, rx) = std_mpsc::channel();
    let tx = Mutex::new(tx);
    let cb = move |r: HealthReport| {
        let _ = tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .send((Instant::now(), r));
    };
    (Box::new(cb), rx)
}

#[test]
fn a_failing_target_goes_down_and_comes_back_the_passing_one_stays() {
    let good = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let good_port = good.local_addr().unwrap().port();
    accept_forever(good);
    let bad_port = super::testutil::closed_port().port();

    let (cb, rx) = collector();
    let start = Instant::now();
    let runner = HealthRunner::start(vec![fast_tcp(good_port), fast_tcp(bad_port)], cb).unwrap();
    // fall 2 at 100 ms: the second check (t = 100 ms) flips it; allow generous slack.
    let (at, r) = rx.recv_timeout(Duration::from_secs(2)).unwrap();
    let HealthReport::Changed {
        id: rid,
        state,
        check,
        reason,
    } = r
    else {
        panic!("{r:?}")
    };
    assert_eq!((rid, state), (id(bad_port), HealthState::Down));
    assert_eq!(check, format!("tcp 127.0.0.1:{bad_port}"));
    assert_eq!(
        reason,
        "2 failures in a row (fall 2): connect: connection refused"
    );
    assert!(at - start >= Duration::from_millis(90), "{:?}", at - start);
    assert!(at - start < Duration::from_millis(1000), "{:?}", at - start);
    let snap = runner.snapshot();
    assert_eq!(snap[&id(good_port)].state, HealthState::Up);
    assert_eq!(snap[&id(bad_port)].state, HealthState::Down);
    assert!(!snap[&id(bad_port)].last.as_ref().unwrap().ok);
    assert_eq!(snap[&id(bad_port)].fall, 2);

    // The server comes back: up after two successes.
    let back = TcpListener::bind((Ipv4Addr::LOCALHOST, bad_port)).unwrap();
    accept_forever(back);
    let revived = Instant::now();
    let (at, r) = rx.recv_timeout(Duration::from_secs(2)).unwrap();
    let HealthReport::Changed {
        id: rid,
        state,
        reason,
        ..
    } = r
    else {
        panic!("{r:?}")
    };
    assert_eq!((rid, state), (id(bad_port), HealthState::Up));
    assert_eq!(reason, "2 successes in a row (rise 2): connected");
    assert!(
        at - revived < Duration::from_millis(1000),
        "{:?}",
        at - revived
    );
    // Nothing else flipped: the passing target never reported.
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
    let snap = runner.snapshot();
    let good = &snap[&id(good_port)];
    assert_eq!((good.state, good.failures_total), (HealthState::Up, 0));
    assert!(good.checks_total >= 5, "{good:?}");
    assert!(good.next_in_ms.is_none_or(|n| n <= 100), "{good:?}");
    runner.stop();
}

#[test]
fn ipv6_real_servers_and_an_ipv6_connect_ip_are_checked_over_ipv6() {
    let good = TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).unwrap();
    let good_port = good.local_addr().unwrap().port();
    accept_forever(good);
    let bad_port = closed_port_on(V6).port();
    let v6 = |port: u16| {
        let mut t = fast_tcp(port);
        t.id = id_on(V6, port);
        t
    };
    // An IPv4 real server whose check goes to [::1] (connect_ip may be of either family).
    let mut via = fast_tcp(9);
    via.check.connect_ip = Some(V6);
    via.check.connect_port = Some(good_port);

    let (cb, rx) = collector();
    let runner = HealthRunner::start(vec![v6(good_port), v6(bad_port), via.clone()], cb).unwrap();
    let (_, r) = rx.recv_timeout(Duration::from_secs(2)).unwrap();
    let HealthReport::Changed {
        id: rid,
        state,
        check,
        reason,
    } = r
    else {
        panic!("{r:?}")
    };
    assert_eq!((rid, state), (id_on(V6, bad_port), HealthState::Down));
    assert_eq!(check, format!("tcp [::1]:{bad_port}"));
    assert_eq!(
        reason,
        "2 failures in a row (fall 2): connect: connection refused"
    );
    std::thread::sleep(Duration::from_millis(300));
    let snap = runner.snapshot();
    for t in [v6(good_port), via] {
        let s = &snap[&t.id];
        assert_eq!((s.state, s.failures_total), (HealthState::Up, 0), "{s:?}");
        assert!(s.checks_total >= 2, "{s:?}");
        assert_eq!(s.check, format!("tcp [::1]:{good_port}"));
    }
    // Nothing but the closed port flipped.
    assert!(rx.try_recv().is_err());
    runner.stop();
}

#[test]
fn reconfigure_keeps_unchanged_targets_and_drops_removed_ones() {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    accept_forever(l);
    let mut alpha = fast_tcp(port);
    alpha.check.alpha = true;
    alpha.check.rise = 1;
    let (cb, rx) = collector();
    let runner = HealthRunner::start(vec![alpha.clone()], cb).unwrap();
    assert_eq!(HealthRunner::initial_state(&alpha.check), HealthState::Down);
    // alpha: starts down, the first success brings it up.
    let (_, r) = rx.recv_timeout(Duration::from_secs(2)).unwrap();
    assert!(
        matches!(
            r,
            HealthReport::Changed {
                state: HealthState::Up,
                ..
            }
        ),
        "{r:?}"
    );
    std::thread::sleep(Duration::from_millis(250));
    let before = runner.snapshot()[&alpha.id].checks_total;
    // The same target again: state and counters stay (no new alpha -> up flip).
    let other = fast_tcp(super::testutil::closed_port().port());
    runner.reconfigure(vec![alpha.clone(), other.clone()]);
    std::thread::sleep(Duration::from_millis(250));
    let snap = runner.snapshot();
    assert_eq!(snap.len(), 2);
    assert_eq!(snap[&alpha.id].state, HealthState::Up);
    assert!(snap[&alpha.id].checks_total > before);
    // A changed check starts afresh; a removed target disappears.
    let mut changed = alpha.clone();
    changed.check.fall = 3;
    runner.reconfigure(vec![changed.clone()]);
    std::thread::sleep(Duration::from_millis(50));
    let snap = runner.snapshot();
    assert_eq!(snap.len(), 1);
    assert_eq!(snap[&alpha.id].fall, 3);
    assert!(snap[&alpha.id].checks_total <= 1);
    // Only flips were reported: alpha's first up, `other` going down, then alpha's
    // (restarted, alpha again) up.
    let reports: Vec<HealthReport> = rx.try_iter().map(|(_, r)| r).collect();
    assert!(
        reports
            .iter()
            .all(|r| matches!(r, HealthReport::Changed { .. })),
        "{reports:?}"
    );
    drop(runner);
}

#[test]
fn dynamic_weights_are_reported_when_they_change() {
    let mut c = check(CheckKind::Exec(ExecCheck {
        command: vec!["/bin/sh".into(), "-c".into(), "exit 5".into()],
        dynamic_weight: true,
    }));
    c.interval = Duration::from_millis(100);
    c.timeout = Duration::from_millis(100);
    let t = Target {
        id: id(1),
        check: c,
    };
    let (cb, rx) = collector();
    let runner = HealthRunner::start(vec![t.clone()], cb).unwrap();
    let (_, r) = rx.recv_timeout(Duration::from_secs(2)).unwrap();
    assert!(
        matches!(r, HealthReport::DynamicWeight { id: rid, weight: 3 } if rid == t.id),
        "{r:?}"
    );
    // The same weight again is not news.
    std::thread::sleep(Duration::from_millis(350));
    assert!(rx.try_recv().is_err());
    let snap = runner.snapshot();
    assert_eq!(snap[&t.id].dynamic_weight, Some(3));
    assert_eq!(
        snap[&t.id].last.as_ref().map(|l| l.message.as_str()),
        Some("exit 5 (weight 3)")
    );
    runner.stop();
}

#[test]
fn warmup_spreads_the_first_checks_and_starts_are_recorded() {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    accept_forever(l);
    let targets: Vec<Target> = (0..20u16)
        .map(|i| {
            let mut t = fast_tcp(port);
            t.check.warmup = Duration::from_millis(400);
            t.check.connect_port = Some(port);
            t.id.real_server.port = 1000 + i;
            t
        })
        .collect();
    let (cb, _rx) = collector();
    let begin = Instant::now();
    let runner = HealthRunner::start(targets, cb).unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let starts = runner.start_times();
    runner.stop();
    let firsts: Vec<Duration> = starts.values().map(|s| s[0] - begin).collect();
    // 20 uniform draws in 0..400 ms: all below 400 ms (+ slack), not all in the first 50.
    assert!(
        firsts.iter().all(|d| *d < Duration::from_millis(450)),
        "{firsts:?}"
    );
    assert!(
        firsts.iter().any(|d| *d > Duration::from_millis(50)),
        "{firsts:?}"
    );
    // Start to start is the interval, give or take scheduling.
    for s in starts.values() {
        for w in s.windows(2) {
            let gap = w[1] - w[0];
            assert!(
                gap >= Duration::from_millis(70) && gap <= Duration::from_millis(200),
                "{gap:?}"
            );
        }
    }
}

#[test]
fn stop_returns_promptly_with_a_hung_check_in_flight() {
    let mut c = check(CheckKind::Exec(ExecCheck {
        command: vec!["/bin/sleep".into(), "30".into()],
        dynamic_weight: false,
    }));
    c.interval = Duration::from_secs(60);
    c.timeout = Duration::from_secs(30);
    let (cb, _rx) = collector();
    let runner = HealthRunner::start(
        vec![Target {
            id: id(1),
            check: c,
        }],
        cb,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    runner.stop();
    assert!(t.elapsed() < Duration::from_millis(500));
}

#[test]
fn first_checks_without_warmup_are_paced_in_the_order_given() {
    let s = Duration::from_secs(1);
    assert_eq!(pace_offset(0, s), Duration::ZERO);
    assert_eq!(pace_offset(3, s), Duration::from_micros(300));
    // 10,000 slots per second of interval, then round again.
    assert_eq!(pace_offset(9_999, s), Duration::from_micros(999_900));
    assert_eq!(pace_offset(10_001, s), Duration::from_micros(100));
    assert_eq!(
        pace_offset(7, Duration::from_micros(500)),
        Duration::from_micros(200)
    );
    assert_eq!(pace_offset(u64::MAX, s), pace_offset(u64::MAX, s));
}
