//! Unit tests of the state machine: timers, each RFC 9568 §6.4 rule, keepalived's
//! healing and owner rules, sync groups, config checks, the API record, and the
//! rejection matrix (one crafted packet per receive check).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use lvs_proto::{Ipv4Prefix, VrrpState};

use super::sim::ipv4_packet;
use super::*;
use crate::wire::vrrp::{ChecksumMode, MULTICAST_ADDR, Version, VrrpPacket, VrrpRepr};

const ME: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
const PEER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 3);
const LOW_PEER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);

fn vip() -> Ipv4Prefix {
    Ipv4Prefix {
        addr: Ipv4Addr::new(203, 0, 113, 10),
        len: 24,
    }
}

fn cfg(priority: u8, version: Version) -> InstanceConfig {
    let mut c = InstanceConfig::new("VI_1", "ext0", 51, priority, ME, vec![vip()]);
    c.version = version;
    // The crafted packets (`Craft`) carry RFC 9568 checksums; the pseudo-header flavour
    // (the default) has its own cases.
    c.accept.v3_checksum = V3Checksum::Rfc9568;
    c
}

fn started(c: InstanceConfig, now: Instant) -> Instance {
    let mut i = Instance::new(c).unwrap();
    let mut out = Vec::new();
    i.start(now, &mut out);
    i
}

/// An advert as `src` with `priority` would send it, built through a real instance of the
/// same config (so v2/v3, interval and checksum flavour follow `like`).
fn advert(like: &InstanceConfig, src: Ipv4Addr, priority: u8) -> Vec<u8> {
    let mut c = like.clone();
    c.primary_address = src;
    c.priority = priority.max(1);
    let i = Instance::new(c).unwrap();
    let mut buf = [0u8; 1100];
    let n = i.emit_advert(priority, MULTICAST_ADDR, &mut buf).unwrap();
    ipv4_packet(src, MULTICAST_ADDR, 255, &buf[..n])
}

/// A hand-made advert: any field, a correct checksum in `mode` (struct-update style:
/// `Craft { ttl: 254, ..V3 }.bytes()`).
#[derive(Debug, Clone, Copy)]
struct Craft {
    version: Version,
    vrid: u8,
    priority: u8,
    adver_int: u16,
    auth_type: u8,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ttl: u8,
    mode: ChecksumMode,
}

/// A valid v3 advert from PEER, priority 200, 1 s, to the group.
const V3: Craft = Craft {
    version: Version::V3,
    vrid: 51,
    priority: 200,
    adver_int: 100,
    auth_type: 0,
    src: PEER,
    dst: MULTICAST_ADDR,
    ttl: 255,
    mode: ChecksumMode::Message,
};

/// The same as v2.
const V2: Craft = Craft {
    version: Version::V2,
    adver_int: 1,
    ..V3
};

impl Craft {
    fn bytes(self) -> Vec<u8> {
        let r = VrrpRepr {
            version: self.version,
            vrid: self.vrid,
            priority: self.priority,
            adver_int: self.adver_int,
            auth_type: self.auth_type,
            addrs: vec![vip().addr],
        };
        let mut b = vec![0u8; r.buffer_len()];
        r.emit(
            &mut VrrpPacket::new_unchecked(&mut b[..]),
            self.mode,
            self.src,
            self.dst,
        );
        ipv4_packet(self.src, self.dst, self.ttl, &b)
    }
}

fn transitions(out: &[Action]) -> Vec<(VrrpState, VrrpState)> {
    out.iter()
        .filter_map(|a| match a {
            Action::Transition { from, to, .. } => Some((*from, *to)),
            _ => None,
        })
        .collect()
}

/// RFC 3768 §6.1 / RFC 9568 §6.1 timer formulas, at the microsecond.
#[test]
fn skew_and_master_down_interval() {
    let t = Instant::now();
    // v2, priority 100: Skew = 156/256 s = 609.375 ms; down = 3 s + skew.
    let i = started(cfg(100, Version::V2), t);
    assert_eq!(i.skew_time(), Duration::from_micros(609_375));
    assert_eq!(i.master_down_interval(), Duration::from_micros(3_609_375));
    // v3, 1 s: the same numbers (the interval is the unit).
    let i = started(cfg(100, Version::V3), t);
    assert_eq!(i.skew_time(), Duration::from_micros(609_375));
    // v3, 100 ms, priority 100: 156 × 100 ms / 256 = 60.9375 ms (µs floor).
    let mut c = cfg(100, Version::V3);
    c.advert_interval = Duration::from_millis(100);
    let i = started(c, t);
    assert_eq!(i.skew_time(), Duration::from_micros(60_937));
    assert_eq!(i.master_down_interval(), Duration::from_micros(360_937));
    // Priority 254 skews less than 1: the highest backup always fires first.
    let i = started(cfg(254, Version::V3), t);
    assert_eq!(i.skew_time(), Duration::from_micros(7_812));
}

/// RFC 9568 §6.4.1: the owner goes straight to Master: VIPs, an advert, GARP.
#[test]
fn owner_starts_as_master() {
    let t = Instant::now();
    let mut i = Instance::new(cfg(255, Version::V3)).unwrap();
    let mut out = Vec::new();
    i.start(t, &mut out);
    assert_eq!(
        out,
        vec![
            Action::Transition {
                from: VrrpState::Init,
                to: VrrpState::Master,
                reason: Reason::Owner
            },
            Action::AddVips(vec![vip()]),
            Action::SendAdvert { priority: 255 },
            Action::SendGarp { repeat: 5 },
        ]
    );
    assert_eq!(i.poll_timeout(), Some(t + Duration::from_secs(1)));
    assert!(i.holds_vips());
}

/// RFC 9568 §6.4.1/§6.4.2: a non-owner waits Master_Down_Interval in Backup, then takes
/// over; then adverts every interval and the delayed GARP round (keepalived
/// garp_master_delay).
#[test]
fn backup_takes_over_when_the_down_timer_fires() {
    let t = Instant::now();
    let mut i = Instance::new(cfg(100, Version::V3)).unwrap();
    let mut out = Vec::new();
    i.start(t, &mut out);
    assert_eq!(
        transitions(&out),
        vec![(VrrpState::Init, VrrpState::Backup)]
    );
    assert!(!out.iter().any(|a| matches!(a, Action::AddVips(_))));
    let down = t + i.master_down_interval();
    assert_eq!(i.poll_timeout(), Some(down));
    out.clear();
    i.handle_timeout(down, &mut out);
    assert_eq!(
        out,
        vec![
            Action::Transition {
                from: VrrpState::Backup,
                to: VrrpState::Master,
                reason: Reason::MasterDown
            },
            Action::AddVips(vec![vip()]),
            Action::SendAdvert { priority: 100 },
            Action::SendGarp { repeat: 5 },
        ]
    );
    out.clear();
    i.handle_timeout(down + Duration::from_secs(1), &mut out);
    assert_eq!(out, vec![Action::SendAdvert { priority: 100 }]);
    for s in 2..=5 {
        out.clear();
        i.handle_timeout(down + Duration::from_secs(s), &mut out);
    }
    // At +5 s: the advert and the second GARP round.
    assert_eq!(
        out,
        vec![
            Action::SendAdvert { priority: 100 },
            Action::SendGarp { repeat: 5 }
        ]
    );
    assert_eq!(i.counters().become_master, 1);
    assert_eq!(i.counters().advert_sent, 6);
}

/// keepalived garp_master_refresh: a GARP round every refresh interval while master.
#[test]
fn garp_refresh_while_master() {
    let t = Instant::now();
    let mut c = cfg(255, Version::V3);
    c.garp.master_delay = Duration::ZERO;
    c.garp.master_refresh = Some(Duration::from_secs(60));
    c.garp.master_refresh_repeat = 2;
    let mut i = started(c, t);
    let mut garps = Vec::new();
    let mut now = t;
    while now < t + Duration::from_secs(185) {
        let Some(next) = i.poll_timeout() else { break };
        now = next;
        let mut out = Vec::new();
        i.handle_timeout(now, &mut out);
        for a in out {
            if let Action::SendGarp { repeat } = a {
                garps.push((now - t, repeat));
            }
        }
    }
    assert_eq!(
        garps,
        vec![
            (Duration::from_secs(60), 2),
            (Duration::from_secs(120), 2),
            (Duration::from_secs(180), 2)
        ]
    );
}

/// RFC 9568 §6.4.2: priority 0 in Backup → Master_Down_Timer = Skew_Time, and the
/// takeover names the resigning master.
#[test]
fn backup_hearing_priority_zero_waits_only_skew() {
    let t = Instant::now();
    let c = cfg(100, Version::V3);
    let mut i = started(c.clone(), t);
    let mut out = Vec::new();
    let at = t + Duration::from_millis(500);
    i.handle_packet(at, &advert(&c, PEER, 0), &mut out).unwrap();
    assert!(out.is_empty());
    assert_eq!(i.poll_timeout(), Some(at + i.skew_time()));
    i.handle_timeout(at + i.skew_time(), &mut out);
    assert_eq!(
        out[0],
        Action::Transition {
            from: VrrpState::Backup,
            to: VrrpState::Master,
            reason: Reason::PriorityZero { from: PEER.into() }
        }
    );
    assert_eq!(i.counters().pri_zero_rcvd, 1);
}

/// RFC 9568 §6.4.3: a master hearing priority 0 advertises at once and resets its timer.
#[test]
fn master_hearing_priority_zero_advertises_at_once() {
    let t = Instant::now();
    let c = cfg(255, Version::V3);
    let mut i = started(c.clone(), t);
    let mut out = Vec::new();
    let at = t + Duration::from_millis(300);
    i.handle_packet(at, &advert(&cfg(100, Version::V3), PEER, 0), &mut out)
        .unwrap();
    assert_eq!(out, vec![Action::SendAdvert { priority: 255 }]);
    assert_eq!(i.poll_timeout(), Some(at + Duration::from_secs(1)));
    assert_eq!(i.state(), VrrpState::Master);
}

/// RFC 9568 §6.4.3: higher priority, or equal priority from a higher address → Backup
/// (after one advert of our own: keepalived higher_prio_send_advert); equal from a
/// lower address or lower priority → stay, re-advertise and re-send GARP (keepalived's
/// healing of #166/#1528).
#[test]
fn master_election_rules() {
    let t = Instant::now();
    let c = cfg(100, Version::V3);
    let master = |t| {
        let mut i = started(c.clone(), t);
        let mut out = Vec::new();
        let down = t + i.master_down_interval();
        i.handle_timeout(down, &mut out);
        assert_eq!(i.state(), VrrpState::Master);
        (i, down)
    };
    for (src, prio, steps_down) in [
        (PEER, 101, true),
        (LOW_PEER, 101, true),
        (PEER, 100, true),
        (LOW_PEER, 100, false),
        (PEER, 99, false),
    ] {
        let (mut i, at) = master(t);
        let mut out = Vec::new();
        i.handle_packet(at, &advert(&c, src, prio), &mut out)
            .unwrap();
        if steps_down {
            assert_eq!(
                out,
                vec![
                    Action::SendAdvert { priority: 100 },
                    Action::Transition {
                        from: VrrpState::Master,
                        to: VrrpState::Backup,
                        reason: Reason::HigherPriority {
                            from: src.into(),
                            priority: prio
                        }
                    },
                    Action::RemoveVips(vec![vip()]),
                ],
                "{src} {prio}"
            );
            assert_eq!(i.master(), Some((src, prio)));
            assert_eq!(i.poll_timeout(), Some(at + i.master_down_interval()));
        } else {
            assert_eq!(
                out,
                vec![
                    Action::SendAdvert { priority: 100 },
                    Action::SendGarp { repeat: 5 }
                ],
                "{src} {prio}"
            );
            assert_eq!(i.state(), VrrpState::Master);
            assert_eq!(i.counters().lower_prio_rcvd, 1);
        }
    }
    // lower_prio_no_advert: GARP only.
    let mut c2 = c.clone();
    c2.lower_prio_no_advert = true;
    let mut i = started(c2, t);
    let mut out = Vec::new();
    let down = t + i.master_down_interval();
    i.handle_timeout(down, &mut out);
    out.clear();
    i.handle_packet(down, &advert(&c, LOW_PEER, 50), &mut out)
        .unwrap();
    assert_eq!(out, vec![Action::SendGarp { repeat: 5 }]);
}

/// RFC 9568 §6.4.2: a backup resets its down timer for an equal or higher priority, and
/// (preempting) ignores a lower one, so it takes over after Master_Down_Interval.
/// Without preemption it accepts any master.
#[test]
fn backup_preemption_rules() {
    let t = Instant::now();
    let c = cfg(150, Version::V3);
    let mut i = started(c.clone(), t);
    let mut out = Vec::new();
    let at = t + Duration::from_secs(2);
    i.handle_packet(at, &advert(&c, PEER, 200), &mut out)
        .unwrap();
    assert_eq!(i.poll_timeout(), Some(at + i.master_down_interval()));
    i.handle_packet(at, &advert(&c, PEER, 150), &mut out)
        .unwrap();
    assert_eq!(i.poll_timeout(), Some(at + i.master_down_interval()));
    let later = at + Duration::from_secs(1);
    i.handle_packet(later, &advert(&c, PEER, 100), &mut out)
        .unwrap();
    // Ignored: the timer still runs from `at`.
    assert_eq!(i.poll_timeout(), Some(at + i.master_down_interval()));
    assert!(out.is_empty());

    let mut nc = c.clone();
    nc.preempt = false;
    let mut i = started(nc, t);
    i.handle_packet(later, &advert(&c, PEER, 100), &mut out)
        .unwrap();
    assert_eq!(i.poll_timeout(), Some(later + i.master_down_interval()));
    assert_eq!(i.master(), Some((PEER, 100)));
}

/// keepalived preempt_delay: the first lower-priority advert arms the delay; lower
/// adverts hold the backup until it expires; then it preempts at once.
#[test]
fn preempt_delay_then_preempt() {
    let t = Instant::now();
    let mut c = cfg(200, Version::V3);
    c.preempt_delay = Duration::from_secs(5);
    let mut i = started(c.clone(), t);
    let mut out = Vec::new();
    let mut now = t;
    for _ in 0..4 {
        now += Duration::from_secs(1);
        i.handle_packet(now, &advert(&c, PEER, 100), &mut out)
            .unwrap();
        assert_eq!(i.state(), VrrpState::Backup);
    }
    // Armed at t+1 s: the preempt timer is the next thing (t+6 s), before the down timer.
    assert_eq!(i.poll_timeout(), Some(t + Duration::from_secs(6)));
    i.handle_timeout(t + Duration::from_secs(6), &mut out);
    assert_eq!(i.state(), VrrpState::Master);
    assert!(matches!(
        out[0],
        Action::Transition {
            reason: Reason::PreemptDelay { .. },
            ..
        }
    ));
}

/// RFC 9568 §6.4.2/§6.4.3: a v3 backup adopts the master's Max Adver Int (and shows it);
/// v2 keeps its own.
#[test]
fn v3_backup_adopts_master_interval() {
    let t = Instant::now();
    let c = cfg(100, Version::V3);
    let mut i = started(c.clone(), t);
    let mut peer = c.clone();
    peer.advert_interval = Duration::from_secs(2);
    let mut out = Vec::new();
    i.handle_packet(t, &advert(&peer, PEER, 200), &mut out)
        .unwrap();
    assert_eq!(i.master_adver_interval(), Duration::from_secs(2));
    // 3 × 2 s + 156 × 2 s / 256.
    assert_eq!(i.master_down_interval(), Duration::from_micros(7_218_750));
    assert_eq!(i.info(t, 0).advert_interval_ms, 2000);
    // Becoming master goes back to our own interval.
    i.handle_timeout(t + i.master_down_interval(), &mut out);
    assert_eq!(i.state(), VrrpState::Master);
    assert_eq!(i.master_adver_interval(), Duration::from_secs(1));
}

/// keepalived: a peer claiming 255 while we are the owner is a configuration error;
/// the packet is dropped (counted, no transition) and our priority drops to 254, so
/// the next 255 advert wins.
#[test]
fn owner_conflict_steps_down_to_254() {
    let t = Instant::now();
    let c = cfg(255, Version::V3);
    let mut i = started(c.clone(), t);
    let mut out = Vec::new();
    let p = advert(&c, PEER, 255);
    assert_eq!(i.handle_packet(t, &p, &mut out), Err(Reject::OwnerConflict));
    assert!(out.is_empty());
    assert_eq!(i.state(), VrrpState::Master);
    assert_eq!(i.effective_priority(), 254);
    assert_eq!(i.counters().rejected(Reject::OwnerConflict), 1);
    i.handle_packet(t, &p, &mut out).unwrap();
    assert_eq!(i.state(), VrrpState::Backup);
}

/// RFC 9568 §6.4.3 Shutdown: priority-0 advert, VIPs released, Init; reported priority 0.
#[test]
fn graceful_stop() {
    let t = Instant::now();
    let mut i = started(cfg(255, Version::V3), t);
    let mut out = Vec::new();
    i.stop(t, &mut out);
    assert_eq!(
        out,
        vec![
            Action::SendAdvert { priority: 0 },
            Action::Transition {
                from: VrrpState::Master,
                to: VrrpState::Init,
                reason: Reason::Shutdown
            },
            Action::RemoveVips(vec![vip()]),
        ]
    );
    assert_eq!(i.poll_timeout(), None);
    assert_eq!(i.effective_priority(), 0);
    assert_eq!(i.counters().pri_zero_sent, 1);
    // A backup stops silently.
    let mut b = started(cfg(100, Version::V3), t);
    out.clear();
    b.stop(t, &mut out);
    assert_eq!(
        transitions(&out),
        vec![(VrrpState::Backup, VrrpState::Init)]
    );
    assert!(!out.iter().any(|a| matches!(a, Action::SendAdvert { .. })));
}

/// Tracked interface down → FAULT (a master resigns with priority 0 and drops the VIPs);
/// up → Backup and re-election. Untracked interfaces do nothing.
#[test]
fn tracked_interface_fault_and_recovery() {
    let t = Instant::now();
    let mut c = cfg(255, Version::V3);
    c.track_interfaces = vec!["int0".into()];
    let mut i = started(c, t);
    let mut out = Vec::new();
    i.set_link(t, "eth9", false, &mut out);
    assert!(out.is_empty());
    i.set_link(t, "int0", false, &mut out);
    assert_eq!(
        out,
        vec![
            Action::SendAdvert { priority: 0 },
            Action::Transition {
                from: VrrpState::Master,
                to: VrrpState::Fault,
                reason: Reason::InterfaceDown("int0".into())
            },
            Action::RemoveVips(vec![vip()]),
        ]
    );
    assert_eq!(i.poll_timeout(), None);
    out.clear();
    i.set_link(t, "int0", true, &mut out);
    assert_eq!(
        out,
        vec![Action::Transition {
            from: VrrpState::Fault,
            to: VrrpState::Backup,
            reason: Reason::InterfaceUp("int0".into())
        }]
    );
    // Own interface down: no priority-0 advert can leave through it.
    let mut i = started(cfg(255, Version::V3), t);
    out.clear();
    i.set_link(t, "ext0", false, &mut out);
    assert!(!out.iter().any(|a| matches!(a, Action::SendAdvert { .. })));
    assert_eq!(i.state(), VrrpState::Fault);
    // Starting with a tracked interface down: FAULT straight away.
    let mut i = Instance::new(cfg(100, Version::V3)).unwrap();
    i.set_link(t, "ext0", false, &mut out);
    out.clear();
    i.start(t, &mut out);
    assert_eq!(transitions(&out), vec![(VrrpState::Init, VrrpState::Fault)]);
}

fn group_router() -> Router {
    let mut a = cfg(100, Version::V3);
    a.track_interfaces = vec!["int0".into()];
    let mut b = InstanceConfig::new("VI_2", "int0", 52, 100, ME, vec![vip()]);
    b.virtual_addresses = vec![Ipv4Prefix {
        addr: Ipv4Addr::new(192, 0, 2, 1),
        len: 24,
    }];
    Router::new(
        vec![a, b],
        vec![SyncGroupConfig {
            name: "VG_1".into(),
            members: vec!["VI_1".into(), "VI_2".into()],
        }],
    )
    .unwrap()
}

/// keepalived vrrp_sync_group: one member becoming master takes the others along; one
/// stepping down takes them down; one in FAULT holds the whole group in FAULT until
/// every member's interfaces are back.
#[test]
fn sync_group_moves_together() {
    let t = Instant::now();
    let mut r = group_router();
    let mut out = Vec::new();
    r.start(t, &mut out);
    let (v1, v2) = (InstanceId(0), InstanceId(1));
    // VI_2 hears a master, VI_1 does not: VI_1's down timer fires first.
    let peer2 = InstanceConfig::new("VI_2", "int0", 52, 100, PEER, vec![vip()]);
    let mut peer2 = peer2;
    peer2.virtual_addresses = vec![Ipv4Prefix {
        addr: Ipv4Addr::new(192, 0, 2, 1),
        len: 24,
    }];
    let at = t + Duration::from_secs(2);
    r.handle_packet(at, "int0", &advert(&peer2, PEER, 200), &mut out)
        .unwrap();
    out.clear();
    let fire = r.poll_timeout().unwrap();
    r.handle_timeout(fire, &mut out);
    let moved: Vec<(InstanceId, VrrpState)> = out
        .iter()
        .filter_map(|(id, a)| match a {
            Action::Transition { to, .. } => Some((*id, *to)),
            _ => None,
        })
        .collect();
    assert_eq!(
        moved,
        vec![(v1, VrrpState::Master), (v2, VrrpState::Master)]
    );
    assert!(out.contains(&(
        v2,
        Action::AddVips(r.instances()[1].config().virtual_addresses.clone())
    )));
    // VI_2 hears the higher master again: it steps down and VI_1 follows.
    out.clear();
    r.handle_packet(fire, "int0", &advert(&peer2, PEER, 200), &mut out)
        .unwrap();
    assert_eq!(r.instances()[0].state(), VrrpState::Backup);
    assert_eq!(r.instances()[1].state(), VrrpState::Backup);
    // int0 down: VI_1 tracks it, VI_2 runs on it: both FAULT.
    out.clear();
    r.set_link(fire, "int0", false, &mut out);
    assert_eq!(r.instances()[0].state(), VrrpState::Fault);
    assert_eq!(r.instances()[1].state(), VrrpState::Fault);
    // Only VI_1's extra interface: VI_2 is held in FAULT by the group.
    r.set_link(fire, "int0", true, &mut out);
    r.set_link(fire, "ext0", false, &mut out);
    assert_eq!(r.instances()[0].state(), VrrpState::Fault);
    assert_eq!(r.instances()[1].state(), VrrpState::Fault);
    out.clear();
    r.set_link(fire, "ext0", true, &mut out);
    assert_eq!(r.instances()[0].state(), VrrpState::Backup);
    assert_eq!(r.instances()[1].state(), VrrpState::Backup);
    assert!(out.iter().any(|(id, a)| *id == v2
        && matches!(
            a,
            Action::Transition {
                reason: Reason::SyncGroup { .. },
                ..
            }
        )));
    assert_eq!(r.info(fire, 0)[1].sync_group.as_deref(), Some("VG_1"));
}

/// The Router demultiplexes by interface and VRID; others are counted as unmatched.
#[test]
fn router_demux() {
    let t = Instant::now();
    let mut r = group_router();
    let mut out = Vec::new();
    r.start(t, &mut out);
    let c = cfg(100, Version::V3);
    // VRID 51 lives on ext0, not int0.
    assert_eq!(
        r.handle_packet(t, "int0", &advert(&c, PEER, 200), &mut out),
        Err(Reject::Vrid)
    );
    assert_eq!(r.unmatched().rejected(Reject::Vrid), 1);
    assert_eq!(
        r.handle_packet(t, "ext0", &advert(&c, PEER, 200), &mut out),
        Ok(InstanceId(0))
    );
    assert_eq!(
        r.handle_packet(t, "ext0", &[0x45], &mut out),
        Err(Reject::IpHeader)
    );
    assert_eq!(r.unmatched().rejected_total(), 2);
    assert_eq!(r.find("VI_2"), Some(InstanceId(1)));
}

#[test]
fn config_checks() {
    let ok = cfg(100, Version::V3);
    assert_eq!(ok.validate(), Ok(()));
    let mut c = ok.clone();
    c.vrid = 0;
    assert!(matches!(c.validate(), Err(ConfigError::Vrid(_))));
    let mut c = ok.clone();
    c.priority = 0;
    assert!(matches!(c.validate(), Err(ConfigError::Priority(_))));
    for (v, ms, good) in [
        (Version::V2, 1000, true),
        (Version::V2, 500, false),
        (Version::V2, 256_000, false),
        (Version::V3, 10, true),
        (Version::V3, 40_950, true),
        (Version::V3, 40_960, false),
        (Version::V3, 5, false),
        (Version::V3, 105, false),
    ] {
        let mut c = ok.clone();
        c.version = v;
        c.advert_interval = Duration::from_millis(ms);
        assert_eq!(c.validate().is_ok(), good, "{v:?} {ms}");
    }
    let mut c = ok.clone();
    c.virtual_addresses.clear();
    assert!(matches!(c.validate(), Err(ConfigError::Addresses(_))));
    // Router-level: a duplicate VRID on one interface, an unknown sync member.
    assert!(matches!(
        Router::new(vec![ok.clone(), ok.clone()], vec![]),
        Err(ConfigError::Duplicate(_))
    ));
    assert!(matches!(
        Router::new(
            vec![ok.clone()],
            vec![SyncGroupConfig {
                name: "G".into(),
                members: vec!["VI_9".into()]
            }]
        ),
        Err(ConfigError::SyncMember { .. })
    ));
}

/// `info` fills every field the console shows.
#[test]
fn info_fills_the_api_record() {
    let t = Instant::now();
    let c = cfg(100, Version::V3);
    let mut i = started(c.clone(), t);
    let mut out = Vec::new();
    let down = t + i.master_down_interval();
    i.handle_timeout(down, &mut out);
    let mut bad = advert(&c, PEER, 50);
    bad[8] = 1; // TTL 1
    let _ = i.handle_packet(down, &bad, &mut out);
    let info = i.info(down + Duration::from_millis(1500), 1_000_000);
    assert_eq!(info.name, "VI_1");
    assert_eq!(info.interface, "ext0");
    assert_eq!(info.vrid, 51);
    assert_eq!(info.version, 3);
    assert_eq!(info.state, VrrpState::Master);
    assert_eq!(info.priority, 100);
    assert_eq!(info.effective_priority, 100);
    assert_eq!(info.advert_interval_ms, 1000);
    assert!(info.preempt);
    assert_eq!(info.master, Some(ME.into()));
    assert_eq!(info.master_priority, Some(100));
    assert_eq!(info.vips, vec![vip().into()]);
    assert_eq!(info.sync_group, None);
    assert_eq!(info.adverts_sent, 1);
    assert_eq!(info.became_master, 1);
    assert_eq!(info.transitions, 2);
    assert_eq!(info.last_transition_unix_ms, Some(1_000_000 - 1500));
    assert_eq!(info.last_reason, "master down timer expired");
    assert_eq!(info.rejected, vec![("ip_ttl_err".to_string(), 1)]);
}

/// One crafted packet per receive check: dropped with the right reason, exactly that
/// counter +1, no action, no state or timer change.
#[test]
fn rejection_matrix() {
    let t = Instant::now();
    let v3 = cfg(100, Version::V3);
    let mut v2 = cfg(100, Version::V2);
    v2.version = Version::V2;
    let mut uni = v3.clone();
    uni.unicast_peers = vec![PEER];
    let mut uni_ttl = uni.clone();
    uni_ttl.accept.unicast_ttl = Some(255);
    let mut pseudo = v3.clone();
    pseudo.accept.v3_checksum = V3Checksum::PseudoHeader;
    let owner = cfg(255, Version::V3);
    let m = MULTICAST_ADDR;
    let ph = ChecksumMode::PseudoHeader;
    let good_v3 = V3.bytes();
    let mut trailing = good_v3.clone();
    trailing.push(0);
    trailing[3] += 1; // IP total length
    trailing[10] = 0;
    trailing[11] = 0;
    let trailing = {
        let mut p = crate::wire::ipv4::Ipv4Packet::new_unchecked(&mut trailing[..]);
        p.fill_checksum();
        p.into_inner().to_vec()
    };
    let mut short_count = V3.bytes();
    short_count[20 + 3] = 2;
    let mut bad_sum = good_v3.clone();
    bad_sum[20 + 7] ^= 0x01;
    let not_vrrp = {
        let mut p = good_v3.clone();
        p[9] = 17;
        let mut ip = crate::wire::ipv4::Ipv4Packet::new_unchecked(&mut p[..]);
        ip.fill_checksum();
        p
    };
    let cases: Vec<(&str, &InstanceConfig, Vec<u8>, Reject)> = vec![
        (
            "not an IPv4 packet",
            &v3,
            vec![0x45, 0, 0],
            Reject::IpHeader,
        ),
        ("not protocol 112", &v3, not_vrrp, Reject::IpHeader),
        (
            "multicast TTL 254",
            &v3,
            Craft { ttl: 254, ..V3 }.bytes(),
            Reject::IpTtl,
        ),
        (
            "unicast TTL 64, 255 required",
            &uni_ttl,
            Craft {
                dst: ME,
                ttl: 64,
                ..V3
            }
            .bytes(),
            Reject::IpTtl,
        ),
        ("v2 to a v3 instance", &v3, V2.bytes(), Reject::Version),
        ("v3 to a v2 instance", &v2, good_v3.clone(), Reject::Version),
        (
            "type 2",
            &v3,
            {
                let mut p = good_v3.clone();
                p[20] = 0x32;
                p
            },
            Reject::InvalidType,
        ),
        ("count 2, one address", &v3, short_count, Reject::PacketLen),
        ("trailing byte", &v3, trailing, Reject::PacketLen),
        (
            "header only, truncated",
            &v3,
            ipv4_packet(PEER, m, 255, &[0x31, 51, 200]),
            Reject::PacketLen,
        ),
        (
            "empty payload",
            &v3,
            ipv4_packet(PEER, m, 255, &[]),
            Reject::PacketLen,
        ),
        ("bad checksum", &v3, bad_sum, Reject::Checksum),
        (
            "pseudo-header checksum, RFC 9568 expected",
            &v3,
            Craft { mode: ph, ..V3 }.bytes(),
            Reject::Checksum,
        ),
        (
            "RFC 9568 checksum, pseudo-header expected",
            &pseudo,
            good_v3.clone(),
            Reject::Checksum,
        ),
        (
            "pseudo-header over another destination",
            &pseudo,
            {
                // Checksummed for a unicast destination, sent to the group (keepalived #642).
                let mut p = Craft {
                    dst: ME,
                    mode: ph,
                    ..V3
                }
                .bytes();
                p[16..20].copy_from_slice(&m.octets());
                let mut ip = crate::wire::ipv4::Ipv4Packet::new_unchecked(&mut p[..]);
                ip.fill_checksum();
                p
            },
            Reject::Checksum,
        ),
        (
            "VRID 52",
            &v3,
            Craft { vrid: 52, ..V3 }.bytes(),
            Reject::Vrid,
        ),
        (
            "our own advert looped back",
            &v3,
            Craft {
                priority: 100,
                src: ME,
                ..V3
            }
            .bytes(),
            Reject::OwnPacket,
        ),
        (
            "unicast from a stranger",
            &uni,
            Craft {
                src: LOW_PEER,
                dst: ME,
                ..V3
            }
            .bytes(),
            Reject::UnicastPeer,
        ),
        (
            "v2 auth type 1",
            &v2,
            Craft { auth_type: 1, ..V2 }.bytes(),
            Reject::AuthType,
        ),
        (
            "v2 interval 2 s, ours 1 s",
            &v2,
            Craft { adver_int: 2, ..V2 }.bytes(),
            Reject::AdvertInterval,
        ),
        (
            "v3 interval 0",
            &v3,
            Craft { adver_int: 0, ..V3 }.bytes(),
            Reject::AdvertInterval,
        ),
        (
            "255 while we are the owner",
            &owner,
            Craft {
                priority: 255,
                ..V3
            }
            .bytes(),
            Reject::OwnerConflict,
        ),
    ];
    for (what, c, packet, want) in cases {
        for settle in [false, true] {
            let mut i = started(c.clone(), t);
            if settle {
                // Also from Master (owner: already; others: let the down timer fire).
                let mut o = Vec::new();
                if let Some(d) = i.poll_timeout().filter(|_| i.state() == VrrpState::Backup) {
                    i.handle_timeout(d, &mut o);
                }
            }
            let state = i.state();
            let timer = i.poll_timeout();
            let before = i.counters().clone();
            let mut out = Vec::new();
            let now = t + Duration::from_millis(10);
            assert_eq!(i.handle_packet(now, &packet, &mut out), Err(want), "{what}");
            assert!(out.is_empty(), "{what}: {out:?}");
            assert_eq!(i.state(), state, "{what}");
            assert_eq!(i.poll_timeout(), timer, "{what}");
            assert_eq!(
                i.counters().rejected(want),
                before.rejected(want) + 1,
                "{what}"
            );
            assert_eq!(
                i.counters().rejected_total(),
                before.rejected_total() + 1,
                "{what}"
            );
            assert_eq!(i.counters().advert_rcvd, before.advert_rcvd, "{what}");
        }
    }
    // The controls: the good packets pass where they should.
    let mut out = Vec::new();
    for (c, p) in [
        (&v3, good_v3.clone()),
        (&pseudo, Craft { mode: ph, ..V3 }.bytes()),
        (&v2, V2.bytes()),
        // Unicast with no TTL requirement (keepalived's default): a routed peer's TTL 64.
        (
            &uni,
            Craft {
                dst: ME,
                ttl: 64,
                ..V3
            }
            .bytes(),
        ),
    ] {
        let mut i = started(c.clone(), t);
        assert_eq!(i.handle_packet(t, &p, &mut out), Ok(()));
        assert_eq!(i.counters().advert_rcvd, 1);
    }
    // An address list that differs is counted but accepted (RFC 9568 §7.1 "MAY").
    let mut i = started(v3.clone(), t);
    let other = {
        let r = VrrpRepr {
            version: Version::V3,
            vrid: 51,
            priority: 200,
            adver_int: 100,
            auth_type: 0,
            addrs: vec![Ipv4Addr::new(203, 0, 113, 99)],
        };
        let mut b = vec![0u8; r.buffer_len()];
        r.emit(
            &mut VrrpPacket::new_unchecked(&mut b[..]),
            ChecksumMode::Message,
            PEER,
            m,
        );
        ipv4_packet(PEER, m, 255, &b)
    };
    assert_eq!(i.handle_packet(t, &other, &mut out), Ok(()));
    assert_eq!(i.counters().addr_list_err, 1);
}

/// Seeded garbage never panics and never changes state (the core sees only checked views).
#[test]
fn random_garbage_is_harmless() {
    let t = Instant::now();
    let c = cfg(100, Version::V3);
    let mut i = started(c.clone(), t);
    let mut rng = sim::SplitMix64::new(7);
    let good = advert(&c, PEER, 50);
    let mut out = Vec::new();
    for _ in 0..20_000 {
        let mut p = good.clone();
        let n = (rng.next_u64() % 4) + 1;
        for _ in 0..n {
            let k = (rng.next_u64() as usize) % p.len();
            p[k] = rng.next_u64() as u8;
        }
        let cut = (rng.next_u64() as usize) % (p.len() + 1);
        p.truncate(cut);
        let _ = i.handle_packet(t, &p, &mut out);
    }
    assert_eq!(i.state(), VrrpState::Backup);
    assert!(out.is_empty());
}
