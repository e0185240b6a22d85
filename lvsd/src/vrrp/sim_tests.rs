//! Failover scenarios on the simulated segment, each for v2 (1 s adverts) and v3
//! (100 ms adverts), over many seeds where chance is involved.

use std::net::Ipv4Addr;
use std::time::Duration;

use lvs_proto::{Ipv4Prefix, VrrpState};

use super::InstanceConfig;
use super::sim::Sim;
use crate::wire::vrrp::Version;

const VI: &str = "VI_1";

/// The two flavours every scenario runs in, with their advert interval.
const FLAVOURS: [(Version, Duration); 2] = [
    (Version::V2, Duration::from_secs(1)),
    (Version::V3, Duration::from_millis(100)),
];

fn addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(203, 0, 113, 2 + u8::try_from(i).unwrap_or(0))
}

fn config(i: usize, priority: u8, version: Version, interval: Duration) -> InstanceConfig {
    let vip = Ipv4Prefix {
        addr: Ipv4Addr::new(203, 0, 113, 10),
        len: 24,
    };
    let mut c = InstanceConfig::new(VI, "ext0", 51, priority, addr(i), vec![vip]);
    c.version = version;
    c.advert_interval = interval;
    c
}

/// A segment with one node per priority (node i has address 203.0.113.(2+i)).
fn segment(seed: u64, priorities: &[u8], version: Version, interval: Duration) -> Sim {
    let mut sim = Sim::new(seed);
    for (i, &p) in priorities.iter().enumerate() {
        sim.add_node(addr(i), vec![config(i, p, version, interval)], vec![]);
    }
    sim
}

/// Whether two nodes were ever master at the same time (replaying the change log).
fn ever_split(sim: &Sim) -> bool {
    let mut masters = std::collections::BTreeSet::new();
    for c in &sim.changes {
        if c.to == VrrpState::Master {
            masters.insert(c.node);
        } else {
            masters.remove(&c.node);
        }
        if masters.len() > 1 {
            return true;
        }
    }
    false
}

/// Exactly one master, it holds the VIPs and nobody else does.
fn sole_master(sim: &Sim) -> Option<usize> {
    let m = sim.masters(VI);
    (m.len() == 1 && sim.vip_holders(0) == m).then(|| m[0])
}

/// The Master_Down_Interval of a backup with `priority` (RFC 9568 §6.1).
fn down_interval(version: Version, interval: Duration, priority: u8) -> Duration {
    let skew_base = match version {
        Version::V2 => Duration::from_secs(1),
        Version::V3 => interval,
    };
    interval * 3 + skew(skew_base, priority)
}

fn skew(base: Duration, priority: u8) -> Duration {
    Duration::from_micros((256 - u64::from(priority)) * base.as_micros() as u64 / 256)
}

/// Boot races: 2 and 3 nodes boot at random offsets (within 3 intervals) over a segment
/// losing 10 % of packets with 0.1–2 ms of jitter; in 100/100 seeds exactly one master
/// remains, the highest priority, and only it holds the VIPs. Equal priorities too:
/// exactly one master.
#[test]
fn boot_races_converge_to_one_master() {
    for (version, interval) in FLAVOURS {
        let mut raced = 0;
        for prios in [
            &[100u8, 200][..],
            &[150, 100, 200],
            &[100, 100],
            &[100, 100, 100],
        ] {
            for seed in 0..100 {
                let mut sim = segment(seed, prios, version, interval);
                sim.set_loss(0.10);
                sim.set_delay(Duration::from_micros(100), Duration::from_millis(2));
                for n in 0..prios.len() {
                    let off = sim.rng().duration(Duration::ZERO, interval * 3);
                    sim.boot_after(n, off);
                }
                sim.run_for(interval * 40);
                let m = sole_master(&sim);
                assert!(
                    m.is_some(),
                    "{version:?} {prios:?} seed {seed}: masters {:?}",
                    sim.masters(VI)
                );
                let best = prios.iter().max().copied().unwrap_or(0);
                let m = m.unwrap_or(usize::MAX);
                assert_eq!(prios[m], best, "{version:?} {prios:?} seed {seed}");
                for n in (0..prios.len()).filter(|&n| n != m) {
                    assert_eq!(sim.state(n, VI), VrrpState::Backup);
                }
                raced += usize::from(ever_split(&sim));
            }
        }
        // The races are real: some runs had two masters on the way (a lower node booted
        // first, or adverts were lost), and every one of them converged.
        assert!(
            raced > 40,
            "{version:?}: only {raced} runs ever had two masters"
        );
    }
}

/// Partition then heal: both sides elect a master; within two advert intervals of the
/// heal exactly one master remains (the highest priority) and it has re-sent GARP after
/// the heal (keepalived #1528).
#[test]
fn partition_and_heal() {
    for (version, interval) in FLAVOURS {
        for prios in [&[200u8, 100][..], &[200, 150, 100]] {
            for seed in 0..20 {
                let mut sim = segment(seed, prios, version, interval);
                sim.set_delay(Duration::from_micros(100), Duration::from_millis(2));
                for n in 0..prios.len() {
                    sim.boot(n);
                }
                sim.run_for(interval * 10);
                assert_eq!(sole_master(&sim), Some(0));
                let others: Vec<usize> = (1..prios.len()).collect();
                sim.partition(&[&[0], &others]);
                // A random phase, so the heal lands anywhere in the advert cycle.
                let d = interval * 10 + sim.rng().duration(Duration::ZERO, interval);
                sim.run_for(d);
                assert_eq!(sim.masters(VI), vec![0, 1], "split brain while partitioned");
                sim.heal();
                let healed = sim.now();
                sim.run_for(interval * 2);
                assert_eq!(sole_master(&sim), Some(0), "{version:?} seed {seed}");
                assert!(
                    sim.garps_since(0, healed) >= 1,
                    "{version:?} seed {seed}: winner did not re-send GARP"
                );
                assert!(sim.entered(1, VrrpState::Backup, healed).is_some());
            }
        }
    }
}

/// A frozen master (VM paused 10 s): the backup takes over within Master_Down_Interval;
/// after the thaw exactly one master remains — the original, higher one — and it has
/// re-sent GARP (keepalived #166). Both with the paused NIC's queue read on thaw and
/// with everything lost during the pause.
#[test]
fn frozen_master_comes_back() {
    for (version, interval) in FLAVOURS {
        for queue in [256, 0] {
            for seed in 0..10 {
                let mut sim = segment(seed, &[200, 100], version, interval);
                sim.freeze_queue_limit = queue;
                sim.boot(0);
                sim.boot(1);
                let phase = sim_phase(&mut sim, interval);
                sim.run_for(interval * 10 + phase);
                assert_eq!(sole_master(&sim), Some(0));
                let frozen = sim.now();
                sim.freeze(0, Duration::from_secs(10));
                sim.run_for(down_interval(version, interval, 100) + interval);
                assert!(sim.entered(1, VrrpState::Master, frozen).is_some());
                sim.run_until(frozen + Duration::from_secs(10));
                let thaw = sim.now();
                sim.run_for(interval * 2);
                assert_eq!(
                    sole_master(&sim),
                    Some(0),
                    "{version:?} q{queue} seed {seed}"
                );
                assert!(
                    sim.garps_since(0, thaw) >= 1,
                    "{version:?} q{queue} seed {seed}"
                );
                assert_eq!(sim.state(1, VI), VrrpState::Backup);
            }
        }
    }
}

fn sim_phase(sim: &mut Sim, interval: Duration) -> Duration {
    sim.rng().duration(Duration::ZERO, interval)
}

/// Equal priorities: the higher primary address wins (RFC 9568 §6.4.3), both when the
/// two boot at the same instant and when a split brain heals.
#[test]
fn equal_priority_higher_address_wins() {
    for (version, interval) in FLAVOURS {
        for seed in 0..20 {
            let mut sim = segment(seed, &[100, 100], version, interval);
            sim.set_delay(Duration::from_micros(100), Duration::from_millis(2));
            sim.boot(0);
            sim.boot(1);
            sim.run_for(interval * 10);
            // Node 1 has the higher address (203.0.113.3).
            assert_eq!(sole_master(&sim), Some(1), "{version:?} seed {seed}");
            sim.partition(&[&[0], &[1]]);
            sim.run_for(interval * 10);
            assert_eq!(sim.masters(VI), vec![0, 1]);
            sim.heal();
            sim.run_for(interval * 2);
            assert_eq!(sole_master(&sim), Some(1), "{version:?} seed {seed}");
        }
    }
}

/// The address owner (255) takes over the moment it starts (RFC 9568 §6.4.1), and the
/// old master steps down on its first advert.
#[test]
fn owner_preempts_at_once() {
    for (version, interval) in FLAVOURS {
        let mut sim = segment(1, &[255, 100], version, interval);
        sim.boot(1);
        sim.run_for(interval * 10);
        assert_eq!(sole_master(&sim), Some(1));
        let t = sim.now();
        sim.boot(0);
        assert_eq!(sim.entered(0, VrrpState::Master, t), Some(t));
        sim.run_for(Duration::from_millis(5));
        assert_eq!(sole_master(&sim), Some(0));
        assert!(sim.entered(1, VrrpState::Backup, t).is_some());
    }
}

/// preempt = false: a higher-priority node coming back stays backup; with preempt it
/// takes over within Master_Down_Interval of hearing the lower master.
#[test]
fn preempt_off_and_on() {
    for (version, interval) in FLAVOURS {
        for preempt in [false, true] {
            let mut sim = Sim::new(3);
            let mut c0 = config(0, 200, version, interval);
            c0.preempt = preempt;
            sim.add_node(addr(0), vec![c0], vec![]);
            sim.add_node(addr(1), vec![config(1, 100, version, interval)], vec![]);
            sim.boot(0);
            sim.boot(1);
            sim.run_for(interval * 10);
            assert_eq!(sole_master(&sim), Some(0));
            sim.kill(0);
            sim.run_for(down_interval(version, interval, 100) + interval);
            assert_eq!(sole_master(&sim), Some(1));
            let back = sim.now();
            sim.boot(0);
            sim.run_for(interval * 30);
            if preempt {
                assert_eq!(sole_master(&sim), Some(0));
                let took = sim.entered(0, VrrpState::Master, back).unwrap_or(back) - back;
                assert!(
                    took <= down_interval(version, interval, 200) + interval,
                    "{took:?}"
                );
            } else {
                assert_eq!(sole_master(&sim), Some(1), "{version:?} nopreempt");
                assert_eq!(sim.state(0, VI), VrrpState::Backup);
            }
        }
    }
}

/// preempt_delay: the returning higher node waits the delay after first hearing the
/// lower master, then takes over at once.
#[test]
fn preempt_delay_is_honoured() {
    for (version, interval) in FLAVOURS {
        let delay = Duration::from_secs(5);
        let mut sim = Sim::new(5);
        let mut c0 = config(0, 200, version, interval);
        c0.preempt_delay = delay;
        sim.add_node(addr(0), vec![c0], vec![]);
        sim.add_node(addr(1), vec![config(1, 100, version, interval)], vec![]);
        sim.boot(1);
        sim.run_for(interval * 10);
        let back = sim.now();
        sim.boot(0);
        sim.run_for(delay + interval * 5);
        assert_eq!(sole_master(&sim), Some(0));
        let took = sim.entered(0, VrrpState::Master, back).unwrap_or(back) - back;
        // It first hears node 1 within one interval (plus delay on the wire).
        assert!(took >= delay, "{version:?}: took over after {took:?}");
        assert!(
            took <= delay + interval + Duration::from_millis(2),
            "{took:?}"
        );
    }
}

/// Graceful stop (priority 0): the backup takes over within Skew_Time plus the wire delay
/// (and a tick); kill -9: within Master_Down_Interval of the master's last advert.
/// Three nodes: the highest remaining backup wins.
#[test]
fn takeover_times() {
    for (version, interval) in FLAVOURS {
        for seed in 0..20 {
            let max_delay = Duration::from_micros(500);
            let tick = Duration::from_micros(1);
            // Graceful.
            let mut sim = segment(seed, &[200, 150, 100], version, interval);
            for n in 0..3 {
                sim.boot(n);
            }
            let phase = sim_phase(&mut sim, interval);
            sim.run_for(interval * 10 + phase);
            assert_eq!(sole_master(&sim), Some(0));
            let t = sim.now();
            sim.stop(0);
            sim.run_for(interval * 10);
            assert_eq!(sole_master(&sim), Some(1), "{version:?} seed {seed}");
            let took = sim.entered(1, VrrpState::Master, t).unwrap_or(t) - t;
            let skew150 = skew(
                if version == Version::V2 {
                    Duration::from_secs(1)
                } else {
                    interval
                },
                150,
            );
            assert!(
                took <= skew150 + max_delay + tick,
                "{version:?} graceful {took:?}"
            );
            assert!(took >= skew150, "{version:?} graceful {took:?}");
            // Kill.
            let mut sim = segment(seed, &[200, 150, 100], version, interval);
            for n in 0..3 {
                sim.boot(n);
            }
            let phase = sim_phase(&mut sim, interval);
            sim.run_for(interval * 10 + phase);
            let t = sim.now();
            sim.kill(0);
            sim.run_for(interval * 10);
            assert_eq!(sole_master(&sim), Some(1), "{version:?} seed {seed}");
            let took = sim.entered(1, VrrpState::Master, t).unwrap_or(t) - t;
            let down = down_interval(version, interval, 150);
            assert!(took <= down + tick, "{version:?} kill {took:?}");
            assert!(
                took + interval + max_delay >= down,
                "{version:?} kill {took:?}"
            );
        }
    }
}

/// A restart after a graceful stop: the higher node preempts again; and the whole run is
/// reproducible from its seed.
#[test]
fn restart_and_determinism() {
    let run = |seed| {
        let mut sim = segment(seed, &[200, 100], Version::V3, Duration::from_millis(100));
        sim.set_loss(0.2);
        sim.set_delay(Duration::from_micros(100), Duration::from_millis(3));
        sim.boot(0);
        sim.boot_after(1, Duration::from_millis(37));
        sim.run_for(Duration::from_secs(2));
        sim.stop(0);
        sim.run_for(Duration::from_secs(1));
        assert_eq!(sole_master(&sim), Some(1));
        sim.boot(0);
        sim.run_for(Duration::from_secs(2));
        assert_eq!(sole_master(&sim), Some(0));
        sim.changes
            .iter()
            .map(|c| {
                (
                    c.at - sim.at(Duration::ZERO),
                    c.node,
                    c.to,
                    c.reason.clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(run(11), run(11));
}

/// Sync groups across two directors, each running VI_1 on ext0 and VI_2 on int0 in one
/// group: when the master's ext0 fails, both instances move to the other director
/// together (VI_2 resigns with priority 0 on int0, VI_1 follows its group), and when
/// ext0 returns both move back; at every check one director holds both.
#[test]
fn sync_group_fails_over_as_a_unit() {
    use super::SyncGroupConfig;
    for (version, interval) in FLAVOURS {
        let mut sim = Sim::new(9);
        for (i, prio) in [(0usize, 200u8), (1, 100)] {
            let a = config(i, prio, version, interval);
            let mut b = config(i, prio, version, interval);
            b.name = "VI_2".into();
            b.interface = "int0".into();
            b.vrid = 52;
            b.primary_address = Ipv4Addr::new(192, 0, 2, 1 + u8::try_from(i).unwrap_or(0));
            b.virtual_addresses = vec![Ipv4Prefix {
                addr: Ipv4Addr::new(192, 0, 2, 254),
                len: 24,
            }];
            let group = SyncGroupConfig {
                name: "VG_1".into(),
                members: vec![VI.into(), "VI_2".into()],
            };
            sim.add_node(addr(i), vec![a, b], vec![group]);
        }
        sim.boot(0);
        sim.boot(1);
        sim.run_for(interval * 10);
        let both = |sim: &Sim| (sim.masters(VI), sim.masters("VI_2"));
        assert_eq!(both(&sim), (vec![0], vec![0]));
        sim.set_link(0, "ext0", false);
        assert_eq!(sim.state(0, VI), VrrpState::Fault);
        assert_eq!(sim.state(0, "VI_2"), VrrpState::Fault);
        sim.run_for(interval * 5);
        assert_eq!(both(&sim), (vec![1], vec![1]), "{version:?}");
        assert_eq!(sim.vip_holders(0), vec![1]);
        assert_eq!(sim.vip_holders(1), vec![1]);
        sim.set_link(0, "ext0", true);
        sim.run_for(down_interval(version, interval, 200) + interval * 2);
        assert_eq!(both(&sim), (vec![0], vec![0]), "{version:?}");
        assert_eq!(sim.vip_holders(1), vec![0]);
    }
}

/// v3 checksum flavours: routers agreeing on either flavour elect one master; a router
/// computing the other flavour is never heard (every advert counted as `checksum_err`)
/// and both become master — why the flavour must match keepalived's
/// `v3_checksum_as_v2` (keepalived #1175, netlab #1823).
#[test]
fn v3_checksum_flavours_must_match() {
    use super::{Reject, V3Checksum};
    let interval = Duration::from_millis(100);
    for (a, b, agree) in [
        (V3Checksum::Rfc9568, V3Checksum::Rfc9568, true),
        (V3Checksum::PseudoHeader, V3Checksum::PseudoHeader, true),
        (V3Checksum::Rfc9568, V3Checksum::PseudoHeader, false),
    ] {
        let mut sim = Sim::new(4);
        for (i, (prio, flavour)) in [(200u8, a), (100, b)].into_iter().enumerate() {
            let mut c = config(i, prio, Version::V3, interval);
            c.accept.v3_checksum = flavour;
            sim.add_node(addr(i), vec![c], vec![]);
        }
        sim.boot(0);
        sim.boot(1);
        sim.run_for(interval * 20);
        let rejected = |n: usize| {
            sim.nodes()[n].router().map_or(0, |r| {
                r.instances()[0].counters().rejected(Reject::Checksum)
            })
        };
        if agree {
            assert_eq!(sole_master(&sim), Some(0), "{a:?}");
            assert_eq!(rejected(1), 0);
        } else {
            assert_eq!(sim.masters(VI), vec![0, 1]);
            assert!(rejected(0) > 0 && rejected(1) > 0);
        }
    }
}

/// One-way loss (node 1 never hears node 0): VRRP cannot converge — node 1 keeps
/// claiming master — but the rightful master answers every lower advert with its own
/// advert and a GARP round, so the segment keeps pointing at it (keepalived's healing).
#[test]
fn one_way_loss_keeps_the_rightful_master_announced() {
    for (version, interval) in FLAVOURS {
        let mut sim = segment(2, &[200, 100], version, interval);
        sim.boot(0);
        sim.boot(1);
        sim.run_for(interval * 10);
        assert_eq!(sole_master(&sim), Some(0));
        sim.set_link_loss(0, 1, 1.0);
        sim.run_for(down_interval(version, interval, 100) + interval);
        assert_eq!(sim.masters(VI), vec![0, 1]);
        let t = sim.now();
        sim.run_for(interval * 10);
        // One heal per advert node 1 sends: about one per interval.
        assert!(
            sim.garps_since(0, t) >= 9,
            "{version:?}: {}",
            sim.garps_since(0, t)
        );
        sim.set_link_loss(0, 1, 0.0);
        sim.run_for(interval * 2);
        assert_eq!(sole_master(&sim), Some(0));
    }
}
