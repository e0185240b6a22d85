//! Fixed director data for the console's tests and benchmark (included with `#[path]` by
//! `tests/console.rs` and `benches/console.rs`; on its own it is an empty test target).
//!
//! Everything is fed to the [`App`] through [`App::apply`], the path real poll results
//! take, at fixed times, so snapshots are deterministic.

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use lvs_proto::*;
use lvs_tui::console::app::{App, Director, PollResult, Snapshot};
use lvs_tui::console::keymap::Keymap;
use lvs_tui::console::theme::{Theme, ThemeName};

/// "Now" in every fixture: 2026-11-23T00:40:00Z.
pub const NOW: u64 = 1_795_394_400_000;

pub fn vip() -> IpAddr {
    Ipv4Addr::new(203, 0, 113, 10).into()
}

/// The lab's first IPv6 VIP, 2001:db8:f::10.
pub fn vip6() -> IpAddr {
    Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 0x10).into()
}

/// The IPv6 web service, `tcp [2001:db8:f::10]:80`.
pub fn web6() -> ServiceKey {
    ServiceKey::tcp(vip6(), 80)
}

/// The IPv6 twin of [`rip`]: `rip6(11)` is 2001:db8:b::11 (the digits read as hex, as the
/// lab's address plan writes them).
pub fn rip6(n: u8) -> IpAddr {
    let last = u16::from_str_radix(&n.to_string(), 16).unwrap_or(0);
    Ipv6Addr::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, last).into()
}

/// The director's link-local address on the front network (VRRP over IPv6 uses it).
pub fn link_local(n: u8) -> IpAddr {
    Ipv6Addr::new(0xfe80, 0, 0, 0, 0x200, 0xff, 0xfe00, 0x100 + u16::from(n)).into()
}

pub fn web() -> ServiceKey {
    ServiceKey::tcp(vip(), 80)
}

pub fn dns() -> ServiceKey {
    ServiceKey::udp(vip(), 53)
}

pub fn rip(n: u8) -> IpAddr {
    Ipv4Addr::new(192, 0, 2, n).into()
}

pub fn rs(n: u8, port: u16, weight: u32, forwarding: Forwarding) -> RealServerInfo {
    RealServerInfo {
        addr: rip(n),
        port,
        forwarding,
        weight,
        drained_from: None,
        active: 0,
        inactive: 0,
        persistent: 0,
        overloaded: false,
        upper_threshold: 0,
        lower_threshold: 0,
        counters: Counters::default(),
        rates: Rates::default(),
        health: None,
        sorry: false,
        in_service: true,
    }
}

pub fn health(state: HealthState, ok: bool, message: &str, next_in_ms: Option<u64>) -> HealthInfo {
    HealthInfo {
        check: "http GET /health".into(),
        state,
        since_unix_ms: NOW - 60_000,
        successes: if ok { 5 } else { 0 },
        failures: if ok { 0 } else { 3 },
        rise: 2,
        fall: 3,
        interval_ms: 2000,
        timeout_ms: 500,
        last: Some(CheckOutcome {
            ok,
            at_unix_ms: NOW - 1500,
            latency_us: if ok { 1840 } else { 500_000 },
            message: message.into(),
        }),
        next_in_ms,
        checks_total: 120,
        failures_total: if ok { 0 } else { 9 },
        inhibit_on_failure: false,
        dynamic_weight: None,
        passive: None,
    }
}

/// A NAT web service (wrr) with an UP, a DOWN and a drained server, and a DR DNS service
/// that lost its quorum and runs on its sorry server.
pub fn services() -> Vec<ServiceInfo> {
    let mut a = rs(11, 80, 3, Forwarding::Nat);
    a.active = 41;
    a.inactive = 120;
    a.persistent = 2;
    a.counters = Counters {
        conns: 123_456,
        inpkts: 2_345_678,
        outpkts: 2_100_000,
        inbytes: 345_678_901,
        outbytes: 2_345_678_901,
    };
    a.rates = Rates {
        cps: 12,
        inpps: 340,
        outpps: 310,
        inbps: 45_000,
        outbps: 1_200_000,
    };
    a.health = Some(health(HealthState::Up, true, "HTTP 200", Some(1200)));
    let mut b = rs(12, 80, 2, Forwarding::Nat);
    b.health = Some(health(
        HealthState::Down,
        false,
        "connect: connection refused",
        Some(800),
    ));
    b.in_service = false;
    b.inactive = 3;
    let mut c = rs(13, 80, 0, Forwarding::Nat);
    c.drained_from = Some(1);
    c.active = 30;
    c.inactive = 7;
    c.health = Some(health(HealthState::Up, true, "HTTP 200", Some(400)));
    c.rates.cps = 0;
    let mut d = rs(14, 80, 1, Forwarding::Nat);
    d.overloaded = true;
    d.upper_threshold = 50;
    d.active = 50;
    d.rates.cps = 4;
    let web = ServiceInfo {
        protocol: Protocol::Tcp,
        vip: vip(),
        port: 80,
        scheduler: SchedulerKind::Wrr,
        flags: vec![],
        persistence: None,
        one_packet: false,
        counters: Counters {
            conns: 200_000,
            inpkts: 4_000_000,
            outpkts: 3_900_000,
            inbytes: 600_000_000,
            outbytes: 4_000_000_000,
        },
        rates: Rates {
            cps: 16,
            inpps: 500,
            outpps: 480,
            inbps: 70_000,
            outbps: 1_900_000,
        },
        real_servers: vec![a, d, c, b],
        quorum: Some(QuorumInfo {
            quorum: 3,
            hysteresis: 0,
            live_weight: 4,
            up: true,
        }),
    };
    let mut e = rs(21, 53, 1, Forwarding::Dr);
    e.health = Some(health(
        HealthState::Down,
        false,
        "timeout after 500ms",
        Some(1500),
    ));
    e.in_service = false;
    let mut sorry = rs(99, 53, 1, Forwarding::Dr);
    sorry.sorry = true;
    sorry.in_service = true;
    sorry.inactive = 12;
    let dns = ServiceInfo {
        protocol: Protocol::Udp,
        vip: vip(),
        port: 53,
        scheduler: SchedulerKind::Rr,
        flags: vec![],
        persistence: Some(PersistenceInfo {
            netmask: Ipv4Addr::new(255, 255, 255, 0),
            ..PersistenceInfo::new(300)
        }),
        one_packet: false,
        counters: Counters::default(),
        rates: Rates::default(),
        real_servers: vec![sorry, e],
        quorum: Some(QuorumInfo {
            quorum: 2,
            hysteresis: 0,
            live_weight: 0,
            up: false,
        }),
    };
    vec![web, dns]
}

/// An IPv6 web service (NAT66, persistent per /64), as the lab's address plan has it: two
/// NAT real servers (one UP, one DOWN), one tunnelled over IPv6 and one IPv4 real server
/// reached by a 6in4 tunnel (IPVS allows mixing families for tunnels).
pub fn services_v6() -> Vec<ServiceInfo> {
    let mut a = rs(11, 80, 3, Forwarding::Nat);
    a.addr = rip6(11);
    a.active = 7;
    a.inactive = 20;
    a.persistent = 3;
    a.rates.cps = 5;
    a.health = Some(health(HealthState::Up, true, "HTTP 200", Some(1200)));
    let mut b = rs(12, 80, 2, Forwarding::Nat);
    b.addr = rip6(12);
    b.health = Some(health(
        HealthState::Down,
        false,
        "connect: connection refused",
        Some(800),
    ));
    b.in_service = false;
    let mut c = rs(13, 80, 1, Forwarding::Tun);
    c.addr = rip6(13);
    c.active = 2;
    c.rates.cps = 1;
    let t4 = rs(15, 80, 1, Forwarding::Tun);
    vec![ServiceInfo {
        protocol: Protocol::Tcp,
        vip: vip6(),
        port: 80,
        scheduler: SchedulerKind::Wrr,
        flags: vec![],
        persistence: Some(PersistenceInfo {
            prefix6: 64,
            ..PersistenceInfo::new(300)
        }),
        one_packet: false,
        counters: Counters {
            conns: 9_000,
            inpkts: 90_000,
            outpkts: 80_000,
            inbytes: 9_000_000,
            outbytes: 120_000_000,
        },
        rates: Rates {
            cps: 6,
            inpps: 60,
            outpps: 55,
            inbps: 6_000,
            outbps: 80_000,
        },
        real_servers: vec![t4, c, b, a],
        quorum: None,
    }]
}

/// The IPv4 fixture services followed by the IPv6 one.
pub fn services_dual() -> Vec<ServiceInfo> {
    let mut v = services();
    v.extend(services_v6());
    v
}

fn has_v6(services: &[ServiceInfo]) -> bool {
    services.iter().any(|s| s.vip.is_ipv6())
}

pub fn topology(services: &[ServiceInfo]) -> Topology {
    let mut real_servers = Vec::new();
    for s in services {
        for r in &s.real_servers {
            real_servers.push(RealServerRoute {
                service: s.key(),
                real_server: r.key(),
                forwarding: r.forwarding,
                interface: "int0".into(),
                next_hop: r.addr,
                source: if r.addr.is_ipv6() { rip6(1) } else { rip(1) },
                next_hop_mac: Some("02:00:00:00:02:0b".into()),
            });
        }
    }
    let mut t = Topology {
        interfaces: vec![
            InterfaceInfo {
                name: "ext0".into(),
                ifindex: 2,
                mac: "02:00:00:00:01:02".into(),
                addresses: vec![Ipv4Addr::new(203, 0, 113, 2).into()],
                mtu: 1500,
            },
            InterfaceInfo {
                name: "int0".into(),
                ifindex: 3,
                mac: "02:00:00:00:02:01".into(),
                addresses: vec![rip(1)],
                mtu: 1500,
            },
        ],
        vips: vec![VipInfo {
            addr: vip(),
            interface: "ext0".into(),
            added_by_lvsd: true,
        }],
        dips: vec![rip(1)],
        real_servers,
        vrrp_role: Some("master".into()),
    };
    if has_v6(services) {
        // The lab's IPv6 plan: ext0 2001:db8:f::2, int0 (DIP) 2001:db8:b::1, link-locals.
        t.interfaces[0].addresses.extend([
            Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 2).into(),
            link_local(2),
        ]);
        t.interfaces[1]
            .addresses
            .extend([rip6(1), "fe80::200:ff:fe00:201".parse().unwrap_or(rip(1))]);
        t.vips.push(VipInfo {
            addr: vip6(),
            interface: "ext0".into(),
            added_by_lvsd: true,
        });
        t.dips.push(rip6(1));
    }
    t
}

/// The fixture's IPv4 instance, and with `v6` an IPv6 one (VRRPv3 over IPv6: the master is
/// named by its link-local address).
pub fn vrrp_dual(state: VrrpState, n: u8, priority: u8, v6: bool) -> Vec<VrrpInstanceInfo> {
    let mut v = vrrp(state, Ipv4Addr::new(203, 0, 113, 2 + n), priority);
    if v6 {
        let mut i = v[0].clone();
        i.name = "VI_6".into();
        i.vrid = 52;
        i.master = Some(link_local(2 + n));
        i.vips = vec![IpPrefix::from(vip6())];
        v.push(i);
    }
    v
}

pub fn vrrp(state: VrrpState, primary: Ipv4Addr, priority: u8) -> Vec<VrrpInstanceInfo> {
    vec![VrrpInstanceInfo {
        name: "VI_1".into(),
        interface: "ext0".into(),
        vrid: 51,
        version: 3,
        state,
        priority,
        effective_priority: priority,
        advert_interval_ms: 1000,
        preempt: true,
        master: Some(primary.into()),
        master_priority: Some(priority),
        vips: vec![IpPrefix {
            addr: vip(),
            len: 32,
        }],
        sync_group: None,
        adverts_sent: 3600,
        adverts_received: 12,
        became_master: 2,
        transitions: 3,
        last_transition_unix_ms: Some(NOW - 300_000),
        last_reason: "master down timer expired".into(),
        rejected: vec![("ttl".into(), 2)],
    }]
}

fn actor() -> Actor {
    Actor {
        uid: 1000,
        gid: 1000,
        pid: Some(4242),
        user: Some("alice".into()),
        tls: None,
    }
}

pub fn events() -> Vec<Event> {
    let kinds = vec![
        EventKind::Started {
            version: "0.1.0".into(),
        },
        EventKind::WeightChanged {
            service: web(),
            real_server: RealServerKey::new(rip(11), 80),
            old: 2,
            new: 3,
            by: actor(),
        },
        EventKind::HealthChanged {
            service: web(),
            real_server: RealServerKey::new(rip(12), 80),
            state: HealthState::Down,
            check: "http GET /health".into(),
            reason: "3 failures in a row (fall 3): connect: connection refused".into(),
        },
        EventKind::Drained {
            service: web(),
            real_server: RealServerKey::new(rip(13), 80),
            weight_before: 1,
            by: actor(),
        },
        EventKind::QuorumChanged {
            service: dns(),
            up: false,
            live_weight: 0,
            quorum: 2,
        },
        EventKind::VrrpTransition {
            instance: "VI_1".into(),
            from: VrrpState::Backup,
            to: VrrpState::Master,
            reason: "master down timer expired".into(),
        },
        EventKind::Reloaded {
            ok: false,
            message: "line 7: unknown scheduler `wrrr`".into(),
        },
    ];
    kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| Event {
            seq: i as u64 + 1,
            at_unix_ms: NOW - 600_000 + i as u64 * 60_000,
            kind,
        })
        .collect()
}

pub fn decisions() -> Vec<DecisionInfo> {
    (0..6u8)
        .map(|i| DecisionInfo {
            seq: u64::from(i) + 1,
            at_unix_ms: NOW - 6000 + u64::from(i) * 1000,
            service: web(),
            client: SocketAddr::new(
                Ipv4Addr::new(198, 51, 100, 10 + i).into(),
                40000 + u16::from(i),
            ),
            real_server: if i == 5 {
                None
            } else {
                Some(RealServerKey::new(rip(11 + (i % 2) * 3), 80))
            },
            scheduler: SchedulerKind::Wrr,
            reason: if i == 5 {
                "no real server available".into()
            } else {
                format!(
                    "wrr picked 192.0.2.{}:80: current weight 3 of max 3\ncw 3 -> 2",
                    11 + (i % 2) * 3
                )
            },
        })
        .collect()
}

/// The IPv6 decisions of [`web6`]: clients from 2001:db8:c::10 on.
pub fn decisions6() -> Vec<DecisionInfo> {
    decisions()
        .into_iter()
        .map(|mut d| {
            d.seq += 100;
            d.at_unix_ms += 500;
            d.service = web6();
            d.client = SocketAddr::new(
                Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 0x10 + d.seq as u16 % 100).into(),
                d.client.port(),
            );
            d.real_server = d.real_server.map(|r| {
                let IpAddr::V4(a) = r.addr else { return r };
                RealServerKey::new(rip6(a.octets()[3]), r.port)
            });
            d.reason = d
                .reason
                .replace("192.0.2.", "[2001:db8:b::")
                .replace(":80:", "]:80:");
            d
        })
        .collect()
}

/// Entry `i` of a connection table of `total` entries (`i` in 0..total), in listing order.
pub fn conn_entry(i: u64) -> ConnEntry {
    let client: IpAddr =
        Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 51, 100, 0)) + (i / 50_000) as u32).into();
    let cport = 1024 + (i % 50_000) as u16;
    let template = i % 97 == 0;
    let real = SocketAddr::new(rip(11 + (i % 3) as u8), 80);
    let virt = SocketAddr::new(vip(), 80);
    let state = if template {
        "NONE"
    } else if i % 7 == 0 {
        "TIME_WAIT"
    } else {
        "ESTABLISHED"
    };
    ConnEntry {
        protocol: Protocol::Tcp,
        client: SocketAddr::new(client, if template { 0 } else { cport }),
        virt,
        real,
        forwarding: Forwarding::Nat,
        state: state.into(),
        expires_in_ms: if template {
            180_000
        } else {
            900_000 - (i % 900) * 1000
        },
        active: state == "ESTABLISHED",
        template,
        cursor: ConnCursor {
            protocol: Protocol::Tcp,
            vip: vip(),
            vport: 80,
            client,
            cport,
            rip: real.ip(),
            rport: 80,
            template,
            id: i,
        },
    }
}

/// [`conn_entry`] of the IPv6 service: clients in 2001:db8:c::/64 (a template's client
/// masked to the /64), real servers 2001:db8:b::11 to ::13.
pub fn conn_entry6(i: u64) -> ConnEntry {
    let mut e = conn_entry(i);
    let host = if e.template { 0 } else { 0x10 + (i % 7) as u16 };
    let client: IpAddr = Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, host).into();
    e.client = SocketAddr::new(client, e.client.port());
    e.virt = SocketAddr::new(vip6(), 80);
    e.real = SocketAddr::new(rip6(11 + (i % 3) as u8), 80);
    e.cursor.vip = vip6();
    e.cursor.client = client;
    e.cursor.rip = e.real.ip();
    e
}

/// One page of IPv6 entries ([`conn_entry6`]) of a table of `total`.
pub fn conn_page6(query: &ConnQuery, total: u64) -> ConnPage {
    let mut p = conn_page(query, total);
    p.entries = p.entries.iter().map(|e| conn_entry6(e.cursor.id)).collect();
    p.next_cursor = p.next_cursor.map(|c| conn_entry6(c.id).cursor);
    p
}

/// One page of a synthetic table of `total` entries, as `connections()` answers it: the
/// entries after the cursor (the cursor's id is the entry index).
pub fn conn_page(query: &ConnQuery, total: u64) -> ConnPage {
    let start = query.cursor.map_or(0, |c| c.id + 1);
    let limit = u64::from(if query.limit == 0 {
        MAX_CONN_PAGE
    } else {
        query.limit
    });
    let end = (start + limit).min(total);
    let entries: Vec<ConnEntry> = (start..end).map(conn_entry).collect();
    let next_cursor = if end < total {
        entries.last().map(|e| e.cursor)
    } else {
        None
    };
    ConnPage {
        entries,
        next_cursor,
        table_size: total,
    }
}

/// A console of `names` directors at `cols`x`rows`, all connected (admin), none polled.
pub fn app(names: &[&str], cols: u16, rows: u16) -> App {
    let directors = names
        .iter()
        .map(|n| Director::new(*n, format!("/run/{n}/lvsd.sock")))
        .collect();
    let mut app = App::new(directors, Theme::new(ThemeName::Default), Keymap::default());
    app.settings_path = Some("/home/alice/.config/lvs-tui/config.toml".into());
    app.resize(cols, rows);
    for i in 0..names.len() {
        app.apply(
            PollResult::Connected {
                director: i,
                daemon: "0.1.0".into(),
                api: 3,
                role: Some(Role::Admin),
            },
            NOW - 10_000,
        );
    }
    app
}

/// A poll of director `dir` answering with `services` (and topology, vrrp, events,
/// decisions of the fixtures), applied `times` times 2 s apart ending at [`NOW`] (so the
/// rate history has `times` samples).
pub fn feed(
    app: &mut App,
    dir: usize,
    services: &[ServiceInfo],
    vrrp_state: Option<VrrpState>,
    times: u64,
) {
    for t in 0..times {
        let mut svcs = services.to_vec();
        // A rate history that moves: the sparklines have something to draw.
        for s in &mut svcs {
            for r in &mut s.real_servers {
                if r.rates.cps > 0 {
                    r.rates.cps = r.rates.cps * (1 + t % 4) / 2 + t % 3;
                }
            }
        }
        let snapshot = Snapshot {
            services: Some(Ok(svcs.clone())),
            topology: Some(Ok(topology(&svcs))),
            vrrp: Some(Ok(match vrrp_state {
                Some(s) => vrrp_dual(s, dir as u8, 100 + dir as u8, has_v6(&svcs)),
                None => Vec::new(),
            })),
            events: Some(Ok(if t == 0 { events() } else { Vec::new() })),
            decisions: match t {
                0 if has_v6(&svcs) => vec![(web(), Ok(decisions())), (web6(), Ok(decisions6()))],
                0 => vec![(web(), Ok(decisions()))],
                _ => Vec::new(),
            },
            connections: None,
            drains: Vec::new(),
        };
        app.apply(
            PollResult::Snapshot {
                director: dir,
                snapshot: Box::new(snapshot),
            },
            NOW - (times - 1 - t) * 2000,
        );
    }
    app.tick(NOW);
}

/// A big director: `services` services of `per` real servers each.
pub fn big_services(services: usize, per: usize) -> Vec<ServiceInfo> {
    (0..services)
        .map(|s| {
            let port = 1000 + s as u16;
            let reals = (0..per)
                .map(|r| {
                    let mut x = rs(
                        0,
                        port,
                        1 + (r % 5) as u32,
                        if r % 2 == 0 {
                            Forwarding::Nat
                        } else {
                            Forwarding::Dr
                        },
                    );
                    x.addr = Ipv4Addr::from(
                        u32::from(Ipv4Addr::new(10, 0, 0, 0)) + (s * per + r) as u32,
                    )
                    .into();
                    x.active = (r * 7 % 100) as u32;
                    x.inactive = (r * 13 % 50) as u32;
                    x.rates.cps = (r % 17) as u64;
                    x.health = Some(health(
                        if r % 50 == 0 {
                            HealthState::Down
                        } else {
                            HealthState::Up
                        },
                        r % 50 != 0,
                        "HTTP 200",
                        Some(1000),
                    ));
                    x
                })
                .collect();
            ServiceInfo {
                protocol: Protocol::Tcp,
                vip: vip(),
                port,
                scheduler: SchedulerKind::Wlc,
                flags: vec![],
                persistence: None,
                one_packet: false,
                counters: Counters::default(),
                rates: Rates::default(),
                real_servers: reals,
                quorum: None,
            }
        })
        .collect()
}
