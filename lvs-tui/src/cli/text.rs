//! Plain-text renderings of the API's answers that ipvsadm has no layout for (events,
//! decisions, drains, weight changes), and the conversion of the API's services and
//! connections into [`crate::ipvsadm`]'s view model.
//!
//! Every function here is pure: no I/O, no clock (times are the daemon's, printed in UTC).

use std::fmt::Write as _;
use std::net::SocketAddr;

use lvs_proto::{
    ConnEntry, DecisionInfo, DrainInfo, Event, EventKind, Forwarding, Protocol, RealServerInfo,
    ServiceInfo, SimulateInfo, WeightChange,
};

use crate::ipvsadm::{self, ConnRow, DestRow, Forward, Persistence, ServiceKey, ServiceRow};

/// A service of the API as ipvsadm's listing sees it.
pub fn service_row(s: &ServiceInfo) -> ServiceRow {
    let addr = SocketAddr::from((s.vip, s.port));
    ServiceRow {
        key: match s.protocol {
            Protocol::Tcp => ServiceKey::Tcp(addr),
            Protocol::Udp => ServiceKey::Udp(addr),
        },
        scheduler: s.scheduler.name().to_owned(),
        sched_flags: s.flags.clone(),
        persistence: s.persistence.map(|p| Persistence {
            timeout_secs: u32::try_from(p.timeout_secs).unwrap_or(u32::MAX),
            netmask: p.netmask,
            prefix6: p.prefix6,
        }),
        one_packet: s.one_packet,
        stats: s.counters,
        rates: ipvsadm::Rates {
            cps: s.rates.cps,
            inpps: s.rates.inpps,
            outpps: s.rates.outpps,
            inbps: s.rates.inbps,
            outbps: s.rates.outbps,
        },
        dests: s.real_servers.iter().map(dest_row).collect(),
    }
}

fn dest_row(d: &RealServerInfo) -> DestRow {
    DestRow {
        addr: SocketAddr::from((d.addr, d.port)),
        forward: forward(d.forwarding),
        weight: i64::from(d.weight),
        active: u64::from(d.active),
        inactive: u64::from(d.inactive),
        persistent: u64::from(d.persistent),
        upper_threshold: u64::from(d.upper_threshold),
        lower_threshold: u64::from(d.lower_threshold),
        stats: d.counters,
        rates: ipvsadm::Rates {
            cps: d.rates.cps,
            inpps: d.rates.inpps,
            outpps: d.rates.outpps,
            inbps: d.rates.inbps,
            outbps: d.rates.outbps,
        },
    }
}

/// One checked real server, as `lvsctl health` prints it (and `--json` emits it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HealthRow {
    /// The service.
    pub service: lvs_proto::ServiceKey,
    /// The real server.
    pub real_server: lvs_proto::RealServerKey,
    /// The service's sorry server.
    pub sorry: bool,
    /// In the scheduling list now.
    pub in_service: bool,
    /// Its current weight.
    pub weight: u32,
    /// Health (checks and passive detection).
    pub health: lvs_proto::HealthInfo,
}

/// The checked real servers of `services`, in listing order.
pub fn health_rows(services: &[ServiceInfo]) -> Vec<HealthRow> {
    services
        .iter()
        .flat_map(|s| {
            s.real_servers.iter().filter_map(move |r| {
                Some(HealthRow {
                    service: s.key(),
                    real_server: r.key(),
                    sorry: r.sorry,
                    in_service: r.in_service,
                    weight: r.weight,
                    health: r.health.clone()?,
                })
            })
        })
        .collect()
}

/// `lvsctl health`: a header and one line per row. The service and server columns widen
/// to the longest entry (IPv6 addresses), so columns stay aligned.
pub fn health_text(rows: &[HealthRow]) -> String {
    let sw = rows
        .iter()
        .map(|r| r.service.to_string().len())
        .fold(24, usize::max);
    let rw = rows
        .iter()
        .map(|r| r.real_server.to_string().len())
        .fold(21, usize::max);
    let mut out = format!(
        "{:<sw$} {:<rw$} {:<5} {:<34} {:>9} {:>9} {:>8}  {}\n",
        "Service", "Server", "State", "Check", "Latency", "Succ/Fail", "Next", "Last result"
    );
    for r in rows {
        let h = &r.health;
        let latency = h
            .last
            .as_ref()
            .map_or_else(|| "-".to_string(), |l| format_us(l.latency_us));
        let next = h.next_in_ms.map_or_else(
            || "-".to_string(),
            |ms| format!("{:.1}s", ms as f64 / 1000.0),
        );
        let mut last = h.last.as_ref().map_or_else(
            || "-".to_string(),
            |l| format!("{} {}", if l.ok { "ok" } else { "FAILED" }, l.message),
        );
        if let Some(p) = &h.passive {
            last += &format!(
                " [passive {}/{} failed handshakes{}]",
                p.failed_handshakes,
                p.threshold,
                if p.down { ", down" } else { "" }
            );
        }
        let _ = writeln!(
            out,
            "{:<sw$} {:<rw$} {:<5} {:<34} {:>9} {:>9} {:>8}  {}",
            r.service.to_string(),
            r.real_server.to_string(),
            h.state.to_string(),
            h.check,
            latency,
            format!("{}/{}", h.successes, h.failures),
            next,
            last
        );
    }
    out
}

fn format_us(us: u64) -> String {
    if us >= 1_000_000 {
        format!("{:.2}s", us as f64 / 1e6)
    } else if us >= 1000 {
        format!("{:.1}ms", us as f64 / 1000.0)
    } else {
        format!("{us}us")
    }
}

/// ipvsadm's `Forward` word for a forwarding method.
pub fn forward(f: Forwarding) -> Forward {
    match f {
        Forwarding::Nat => Forward::Masq,
        Forwarding::Dr => Forward::Route,
        Forwarding::Tun => Forward::Tunnel,
    }
}

/// A connection entry as a `-Lnc` row (expiry rounded down to whole seconds, as the
/// kernel's `/proc/net/ip_vs_conn` does).
pub fn conn_row(c: &ConnEntry) -> ConnRow {
    ConnRow {
        protocol: c.protocol.ipvsadm_name().to_owned(),
        expires_secs: c.expires_in_ms / 1000,
        state: c.state.clone(),
        client: c.client,
        virt: c.virt,
        dest: c.real,
    }
}

/// `2026-08-13T10:11:12.345Z` for milliseconds since the Unix epoch.
pub fn utc_time(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (y, m, d) = civil_from_days(secs / 86_400);
    let day_secs = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        day_secs / 3600,
        day_secs / 60 % 60,
        day_secs % 60,
        unix_ms % 1000
    )
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// One line per event: `SEQ TIME what happened`.
pub fn event_line(e: &Event) -> String {
    let what = match &e.kind {
        EventKind::Started { version } => format!("lvsd {version} started"),
        EventKind::WeightChanged {
            service,
            real_server,
            old,
            new,
            by,
        } => format!("weight {service} {real_server} {old} -> {new} by {by}"),
        EventKind::Drained {
            service,
            real_server,
            weight_before,
            by,
        } => format!("drain {service} {real_server} (weight was {weight_before}) by {by}"),
        EventKind::Undrained {
            service,
            real_server,
            weight,
            by,
        } => format!("undrain {service} {real_server} weight {weight} by {by}"),
        EventKind::CountersZeroed { service, by } => match service {
            Some(s) => format!("zero counters of {s} by {by}"),
            None => format!("zero counters of all services by {by}"),
        },
        EventKind::Reloaded { ok: true, message } => format!("reload: {message}"),
        EventKind::Reloaded { ok: false, message } => format!("reload failed: {message}"),
        EventKind::ConnectionKilled {
            protocol,
            client,
            virt,
            real,
            template,
            by,
        } => format!(
            "kill {} {protocol} {client} -> {virt} (to {real}) by {by}",
            if *template { "template" } else { "connection" }
        ),
        EventKind::ConfigSaved { path, by } => format!("configuration saved to {path} by {by}"),
        EventKind::ServiceAdded { service, by } => format!("add service {service} by {by}"),
        EventKind::ServiceRemoved { service, by } => format!("remove service {service} by {by}"),
        EventKind::RealServerAdded {
            service,
            real_server,
            weight,
            by,
        } => format!("add real server {service} {real_server} weight {weight} by {by}"),
        EventKind::RealServerRemoved {
            service,
            real_server,
            by,
        } => format!("remove real server {service} {real_server} by {by}"),
        EventKind::HealthChanged {
            service,
            real_server,
            state,
            check,
            reason,
        } => format!("health {service} {real_server} {state} ({check}): {reason}"),
        EventKind::QuorumChanged {
            service,
            up,
            live_weight,
            quorum,
        } => format!(
            "quorum {} for {service} (live weight {live_weight}, quorum {quorum})",
            if *up { "regained" } else { "lost" }
        ),
        EventKind::SorryServer {
            service,
            real_server,
            active,
        } => format!(
            "sorry server {real_server} of {service} {}",
            if *active {
                "in service"
            } else {
                "out of service"
            }
        ),
        EventKind::VrrpTransition {
            instance,
            from,
            to,
            reason,
        } => format!("vrrp {instance} {from} -> {to}: {reason}"),
        EventKind::Unknown => "an event this lvsctl does not know (newer lvsd)".to_owned(),
    };
    format!("{} {} {what}\n", e.seq, utc_time(e.at_unix_ms))
}

/// `lvsctl topology`: interfaces, VIPs, DIPs, then one line per real server of each
/// service: `tcp VIP:PORT -> RIP:PORT Masq via IFACE next hop ADDR (MAC) from DIP`.
pub fn topology_text(t: &lvs_proto::Topology) -> String {
    let mut s = String::from("Interfaces\n");
    for i in &t.interfaces {
        let addrs: Vec<String> = i.addresses.iter().map(ToString::to_string).collect();
        s += &format!(
            "  {} (ifindex {}) {} mtu {} {}\n",
            i.name,
            i.ifindex,
            i.mac,
            i.mtu,
            addrs.join(" ")
        );
    }
    s += "VIPs\n";
    for v in &t.vips {
        s += &format!(
            "  {} on {}{}\n",
            v.addr,
            v.interface,
            if v.added_by_lvsd {
                " (added by lvsd)"
            } else {
                ""
            }
        );
    }
    let dips: Vec<String> = t.dips.iter().map(ToString::to_string).collect();
    s += &format!("DIPs {}\n", dips.join(" "));
    if let Some(role) = &t.vrrp_role {
        s += &format!("VRRP {role}\n");
    }
    s += "Real servers\n";
    for r in &t.real_servers {
        s += &format!(
            "  {} -> {} {} via {} next hop {} ({}) from {}\n",
            r.service,
            r.real_server,
            r.forwarding.ipvsadm_name(),
            r.interface,
            r.next_hop,
            r.next_hop_mac.as_deref().unwrap_or("unresolved"),
            r.source
        );
    }
    s
}

/// `SEQ TIME SERVICE CLIENT -> RIP:PORT`, then the reason indented, one step per line.
pub fn decision_text(d: &DecisionInfo) -> String {
    let to = match d.real_server {
        Some(r) => r.to_string(),
        None => "none (no real server available: dropped)".to_owned(),
    };
    let mut s = format!(
        "{} {} {} {} -> {to}\n",
        d.seq,
        utc_time(d.at_unix_ms),
        d.service,
        d.client
    );
    indent_reason(&mut s, &d.reason);
    s
}

/// `SERVICE CLIENT -> RIP:PORT` and the reason, for `simulate`.
pub fn simulate_text(client: &SocketAddr, r: &SimulateInfo) -> String {
    let to = match r.real_server {
        Some(rs) => rs.to_string(),
        None => "none (no real server available: it would be dropped)".to_owned(),
    };
    let mut s = format!("{} {client} -> {to}\n", r.service);
    indent_reason(&mut s, &r.reason);
    s
}

fn indent_reason(s: &mut String, reason: &str) {
    for line in reason.lines().filter(|l| !l.trim().is_empty()) {
        let _ = writeln!(s, "    {line}");
    }
}

/// `tcp 203.0.113.10:80 192.0.2.11:80 weight 3 -> 0`.
pub fn weight_change_line(c: &WeightChange) -> String {
    format!(
        "{} {} weight {} -> {}\n",
        c.service, c.real_server, c.old, c.new
    )
}

/// Drain progress: `tcp 203.0.113.10:80 192.0.2.11:80 draining (weight was 3): 5 connections
/// left (active 1, inactive 4, persistent 0)`, or `... drained` at 0.
pub fn drain_line(d: &DrainInfo) -> String {
    if d.connections_left == 0 {
        format!(
            "{} {} drained (weight was {}): no connections left (persistent {})\n",
            d.service, d.real_server, d.weight_before, d.persistent
        )
    } else {
        format!(
            "{} {} draining (weight was {}): {} connections left (active {}, inactive {}, persistent {})\n",
            d.service,
            d.real_server,
            d.weight_before,
            d.connections_left,
            d.active,
            d.inactive,
            d.persistent
        )
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use lvs_proto::{
        Actor, ConnCursor, Counters, PersistenceInfo, Rates, RealServerKey, SchedulerKind,
    };

    use super::*;
    use crate::ipvsadm::{ListOptions, format_conns, format_list};

    fn rs(last: u8, weight: u32, forwarding: Forwarding) -> RealServerInfo {
        RealServerInfo {
            addr: Ipv4Addr::new(192, 0, 2, last).into(),
            port: 80,
            forwarding,
            weight,
            drained_from: None,
            active: u32::from(last),
            inactive: 2,
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

    #[test]
    fn api_services_list_like_ipvsadm() {
        let svc = ServiceInfo {
            protocol: Protocol::Tcp,
            vip: Ipv4Addr::new(203, 0, 113, 10).into(),
            port: 80,
            scheduler: SchedulerKind::Wrr,
            flags: vec![],
            persistence: Some(PersistenceInfo {
                netmask: Ipv4Addr::new(255, 255, 255, 0),
                ..PersistenceInfo::new(300)
            }),
            one_packet: false,
            counters: Counters::default(),
            rates: Rates::default(),
            // Scheduling order (newest first); the listing sorts by address.
            real_servers: vec![
                rs(13, 1, Forwarding::Tun),
                rs(12, 2, Forwarding::Dr),
                rs(11, 3, Forwarding::Nat),
            ],
            quorum: None,
        };
        let text = format_list(None, &[service_row(&svc)], ListOptions::default());
        assert_eq!(
            text.lines().skip(2).collect::<Vec<_>>(),
            [
                "TCP  203.0.113.10:80 wrr persistent 300 mask 255.255.255.0",
                "  -> 192.0.2.11:80                Masq    3      11         2         ",
                "  -> 192.0.2.12:80                Route   2      12         2         ",
                "  -> 192.0.2.13:80                Tunnel  1      13         2         ",
            ]
        );
    }

    #[test]
    fn conn_entries_list_like_ipvsadm() {
        let sa = |s: &str| s.parse::<SocketAddr>().unwrap();
        let entry = |client: &str, state: &str, ms: u64, template: bool| ConnEntry {
            protocol: Protocol::Tcp,
            client: sa(client),
            virt: sa("203.0.113.10:80"),
            real: sa("192.0.2.11:80"),
            forwarding: Forwarding::Nat,
            state: state.into(),
            expires_in_ms: ms,
            active: state == "ESTABLISHED",
            template,
            cursor: ConnCursor {
                protocol: Protocol::Tcp,
                vip: Ipv4Addr::new(203, 0, 113, 10).into(),
                vport: 80,
                client: sa(client).ip(),
                cport: sa(client).port(),
                rip: Ipv4Addr::new(192, 0, 2, 11).into(),
                rport: 80,
                template,
                id: 1,
            },
        };
        let rows: Vec<ConnRow> = [
            entry("198.51.100.7:40000", "ESTABLISHED", 899_999, false),
            entry("198.51.100.0:0", "NONE", 359_001, true),
        ]
        .iter()
        .map(conn_row)
        .collect();
        assert_eq!(
            format_conns(&rows, false),
            "IPVS connection entries\n\
             pro expire state       source             virtual            destination\n\
             TCP 14:59  ESTABLISHED 198.51.100.7:40000 203.0.113.10:80    192.0.2.11:80\n\
             TCP 05:59  NONE        198.51.100.0:0     203.0.113.10:80    192.0.2.11:80\n"
        );
    }

    fn v6(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_services_and_connections_list_like_ipvsadm() {
        let mut a = rs(11, 3, Forwarding::Nat);
        a.addr = v6("2001:db8:b::11");
        let mut b = rs(12, 1, Forwarding::Tun);
        b.addr = v6("2001:db8:b::12");
        let svc = ServiceInfo {
            protocol: Protocol::Udp,
            vip: v6("2001:db8:f::10"),
            port: 53,
            scheduler: SchedulerKind::Rr,
            flags: vec![],
            persistence: Some(PersistenceInfo {
                prefix6: 64,
                ..PersistenceInfo::new(60)
            }),
            one_packet: false,
            counters: Counters::default(),
            rates: Rates::default(),
            real_servers: vec![b, a],
            quorum: None,
        };
        let text = format_list(None, &[service_row(&svc)], ListOptions::default());
        assert_eq!(
            text.lines().skip(2).collect::<Vec<_>>(),
            [
                "UDP  [2001:db8:f::10]:53 rr persistent 60 mask 64",
                "  -> [2001:db8:b::11]:80          Masq    3      11         2         ",
                "  -> [2001:db8:b::12]:80          Tunnel  1      12         2         ",
            ]
        );
        let sa = |s: &str| s.parse::<SocketAddr>().unwrap();
        let e = ConnEntry {
            protocol: Protocol::Udp,
            client: sa("[2001:db8:c::10]:5353"),
            virt: sa("[2001:db8:f::10]:53"),
            real: sa("[2001:db8:b::11]:53"),
            forwarding: Forwarding::Nat,
            state: "UDP".into(),
            expires_in_ms: 59_999,
            active: false,
            template: false,
            cursor: ConnCursor {
                protocol: Protocol::Udp,
                vip: v6("2001:db8:f::10"),
                vport: 53,
                client: v6("2001:db8:c::10"),
                cport: 5353,
                rip: v6("2001:db8:b::11"),
                rport: 53,
                template: false,
                id: 9,
            },
        };
        assert_eq!(
            format_conns(&[conn_row(&e)], false).lines().nth(2),
            Some(
                "UDP 00:59  UDP         [2001:db8:c::10]:5353 [2001:db8:f::10]:53 [2001:db8:b::11]:53"
            )
        );
        let d = DecisionInfo {
            seq: 3,
            at_unix_ms: 0,
            service: svc.key(),
            client: e.client,
            real_server: Some(RealServerKey::new(v6("2001:db8:b::11"), 53)),
            scheduler: SchedulerKind::Rr,
            reason: "rr".into(),
        };
        assert_eq!(
            decision_text(&d),
            "3 1970-01-01T00:00:00.000Z udp [2001:db8:f::10]:53 [2001:db8:c::10]:5353 -> [2001:db8:b::11]:53\n    rr\n"
        );
    }

    #[test]
    fn health_columns_widen_for_ipv6() {
        let row = |service: lvs_proto::ServiceKey, real_server: RealServerKey| HealthRow {
            service,
            real_server,
            sorry: false,
            in_service: true,
            weight: 1,
            health: lvs_proto::HealthInfo {
                check: "tcp".into(),
                state: lvs_proto::HealthState::Up,
                since_unix_ms: 0,
                successes: 1,
                failures: 0,
                rise: 1,
                fall: 1,
                interval_ms: 1000,
                timeout_ms: 1000,
                last: None,
                next_in_ms: None,
                checks_total: 1,
                failures_total: 0,
                inhibit_on_failure: false,
                dynamic_weight: None,
                passive: None,
            },
        };
        let v4 = row(
            lvs_proto::ServiceKey::tcp(Ipv4Addr::new(203, 0, 113, 10), 80),
            RealServerKey::new(Ipv4Addr::new(192, 0, 2, 11), 80),
        );
        let long = row(
            lvs_proto::ServiceKey::tcp(v6("2001:db8:f:ffff:ffff:ffff:ffff:10"), 8080),
            RealServerKey::new(v6("2001:db8:b:ffff:ffff:ffff:ffff:11"), 8080),
        );
        // IPv4 alone: the usual columns.
        let text = health_text(std::slice::from_ref(&v4));
        assert!(text.starts_with(&format!("{:<24} {:<21} State", "Service", "Server")));
        // With a long IPv6 row every line keeps its columns aligned.
        let text = health_text(&[v4, long]);
        let state_at: Vec<usize> = text
            .lines()
            .map(|l| l.find("State").or_else(|| l.find("UP")).unwrap())
            .collect();
        assert_eq!(state_at.len(), 3);
        assert!(state_at.iter().all(|&c| c == state_at[0]), "{text}");
        assert!(
            text.contains("[2001:db8:b:ffff:ffff:ffff:ffff:11]:8080 UP"),
            "{text}"
        );
    }

    #[test]
    fn utc_times() {
        assert_eq!(utc_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc_time(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(utc_time(1_786_619_472_345), "2026-08-13T11:11:12.345Z");
        assert_eq!(utc_time(4_102_444_799_999), "2099-12-31T23:59:59.999Z");
    }

    #[test]
    fn events_and_decisions_read_as_sentences() {
        let service = lvs_proto::ServiceKey::tcp(Ipv4Addr::new(203, 0, 113, 10), 80);
        let real_server = RealServerKey::new(Ipv4Addr::new(192, 0, 2, 11), 80);
        let by = Actor {
            uid: 0,
            gid: 0,
            pid: Some(42),
            user: Some("root".into()),
            tls: None,
        };
        let e = Event {
            seq: 7,
            at_unix_ms: 0,
            kind: EventKind::WeightChanged {
                service,
                real_server,
                old: 3,
                new: 0,
                by,
            },
        };
        assert_eq!(
            event_line(&e),
            "7 1970-01-01T00:00:00.000Z weight tcp 203.0.113.10:80 192.0.2.11:80 3 -> 0 by root (uid 0) pid 42\n"
        );
        let d = DecisionInfo {
            seq: 9,
            at_unix_ms: 1_000,
            service,
            client: "198.51.100.7:40000".parse().unwrap(),
            real_server: Some(real_server),
            scheduler: SchedulerKind::Wlc,
            reason: "wlc picked 192.0.2.11:80\n0*256+0 / w3 < 1*256+0 / w1\n".into(),
        };
        assert_eq!(
            decision_text(&d),
            "9 1970-01-01T00:00:01.000Z tcp 203.0.113.10:80 198.51.100.7:40000 -> 192.0.2.11:80\n    wlc picked 192.0.2.11:80\n    0*256+0 / w3 < 1*256+0 / w1\n"
        );
    }
}
