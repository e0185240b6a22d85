//! Golden tests: expected text is written out by hand from ipvsadm's printf formats and the
//! worked examples in `../shared/specs/operator-formats.md` (closing quotes show trailing
//! padding, which ipvsadm prints too).

use std::net::{Ipv4Addr, SocketAddr};

use super::*;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn lines(ls: &[&str]) -> String {
    let mut s = ls.join("\n");
    s.push('\n');
    s
}

fn dest(addr: &str, forward: Forward, weight: i64) -> DestRow {
    DestRow {
        addr: sa(addr),
        forward,
        weight,
        active: 0,
        inactive: 0,
        persistent: 0,
        upper_threshold: 0,
        lower_threshold: 0,
        stats: Counters::default(),
        rates: Rates::default(),
    }
}

fn service(key: ServiceKey, scheduler: &str, dests: Vec<DestRow>) -> ServiceRow {
    ServiceRow {
        key,
        scheduler: scheduler.into(),
        sched_flags: vec![],
        persistence: None,
        one_packet: false,
        stats: Counters::default(),
        rates: Rates::default(),
        dests,
    }
}

/// The `-Ln` example of operator-formats.md §1.1 (a persistent DR service and an fwmark
/// service), in the order it was printed there.
fn spec_example() -> Vec<ServiceRow> {
    let mut web = service(
        ServiceKey::Tcp(sa("10.232.132.244:80")),
        "wrr",
        vec![
            dest("10.232.132.170:80", Forward::Route, 1),
            dest("10.232.132.169:80", Forward::Route, 1),
        ],
    );
    web.persistence = Some(Persistence {
        timeout_secs: 50,
        netmask: Ipv4Addr::BROADCAST,
        prefix6: 128,
    });
    let fwm = service(
        ServiceKey::Fwmark {
            mark: 258,
            ipv6: false,
        },
        "rr",
        vec![dest("192.168.200.4:0", Forward::Masq, 1)],
    );
    vec![fwm, web]
}

#[test]
fn ln_matches_the_spec_example() {
    let text = format_list(
        Some("IP Virtual Server version 1.2.1 (size=4096)\n"),
        &spec_example(),
        ListOptions::default(),
    );
    assert_eq!(
        text,
        lines(&[
            "IP Virtual Server version 1.2.1 (size=4096)",
            "Prot LocalAddress:Port Scheduler Flags",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
            "TCP  10.232.132.244:80 wrr persistent 50",
            "  -> 10.232.132.169:80            Route   1      0          0         ",
            "  -> 10.232.132.170:80            Route   1      0          0         ",
            "FWM  258 rr",
            "  -> 192.168.200.4:0              Masq    1      0          0         ",
        ])
    );
}

#[test]
fn nosort_keeps_the_given_order() {
    let text = format_list(
        None,
        &spec_example(),
        ListOptions {
            nosort: true,
            ..ListOptions::default()
        },
    );
    let body: Vec<&str> = text.lines().skip(2).map(str::trim_end).collect();
    assert_eq!(
        body,
        [
            "FWM  258 rr",
            "  -> 192.168.200.4:0              Masq    1      0          0",
            "TCP  10.232.132.244:80 wrr persistent 50",
            "  -> 10.232.132.170:80            Route   1      0          0",
            "  -> 10.232.132.169:80            Route   1      0          0",
        ]
    );
}

#[test]
fn services_sort_by_protocol_then_address_then_port_and_fwmark_last() {
    let svcs = vec![
        service(ServiceKey::Udp(sa("10.0.0.1:53")), "rr", vec![]),
        service(
            ServiceKey::Fwmark {
                mark: 2,
                ipv6: false,
            },
            "rr",
            vec![],
        ),
        service(ServiceKey::Tcp(sa("10.0.0.2:80")), "rr", vec![]),
        service(ServiceKey::Tcp(sa("[2001:db8::1]:80")), "rr", vec![]),
        service(
            ServiceKey::Fwmark {
                mark: 1,
                ipv6: true,
            },
            "rr",
            vec![],
        ),
        service(ServiceKey::Tcp(sa("10.0.0.1:443")), "rr", vec![]),
        service(ServiceKey::Tcp(sa("10.0.0.1:80")), "rr", vec![]),
        service(ServiceKey::Tcp(sa("9.255.255.255:80")), "rr", vec![]),
    ];
    let text = format_list(None, &svcs, ListOptions::default());
    let body: Vec<&str> = text.lines().skip(2).collect();
    assert_eq!(
        body,
        [
            "TCP  9.255.255.255:80 rr",
            "TCP  10.0.0.1:80 rr",
            "TCP  10.0.0.1:443 rr",
            "TCP  10.0.0.2:80 rr",
            "UDP  10.0.0.1:53 rr",
            "TCP  [2001:db8::1]:80 rr",
            "FWM  1 IPv6 rr",
            "FWM  2 rr",
        ]
    );
}

#[test]
fn real_servers_sort_numerically_not_as_text() {
    let svc = service(
        ServiceKey::Tcp(sa("203.0.113.10:80")),
        "wlc",
        vec![
            dest("192.0.2.100:80", Forward::Masq, 1),
            dest("192.0.2.9:8080", Forward::Masq, 1),
            dest("192.0.2.9:80", Forward::Masq, 1),
            dest("192.0.2.11:80", Forward::Masq, 1),
        ],
    );
    let text = format_list(None, &[svc], ListOptions::default());
    let rips: Vec<&str> = text
        .lines()
        .skip(3)
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(
        rips,
        [
            "192.0.2.9:80",
            "192.0.2.9:8080",
            "192.0.2.11:80",
            "192.0.2.100:80"
        ]
    );
}

#[test]
fn flags_mask_and_ops_follow_the_scheduler() {
    let mut svc = service(ServiceKey::Udp(sa("203.0.113.10:53")), "sh", vec![]);
    svc.sched_flags = vec!["sh-fallback".into(), "sh-port".into()];
    svc.persistence = Some(Persistence {
        timeout_secs: 300,
        netmask: Ipv4Addr::new(255, 255, 255, 0),
        prefix6: 128,
    });
    svc.one_packet = true;
    let text = format_list(None, &[svc], ListOptions::default());
    assert_eq!(
        text.lines().nth(2),
        Some("UDP  203.0.113.10:53 sh (sh-fallback,sh-port) persistent 300 mask 255.255.255.0 ops")
    );
}

#[test]
fn weights_and_counts_fill_their_columns() {
    let mut d = dest("192.0.2.11:8080", Forward::Masq, 65535);
    d.active = 1234567;
    d.inactive = 12345678901;
    let mut t = dest("192.0.2.12:80", Forward::Tunnel, 0);
    t.active = 3;
    let svc = service(ServiceKey::Tcp(sa("203.0.113.10:80")), "wlc", vec![d, t]);
    let text = format_list(None, &[svc], ListOptions::default());
    assert_eq!(
        text.lines().skip(3).collect::<Vec<_>>(),
        [
            "  -> 192.0.2.11:8080              Masq    65535  1234567    12345678901",
            "  -> 192.0.2.12:80                Tunnel  0      3          0         ",
        ]
    );
}

#[test]
fn stats_matches_the_spec_example() {
    let mut svc = service(
        ServiceKey::Tcp(sa("10.100.5.98:6030")),
        "rr",
        vec![dest("10.100.5.86:6030", Forward::Route, 1)],
    );
    svc.stats = Counters {
        conns: 113786,
        inpkts: 19495479,
        outpkts: 0,
        inbytes: 2_110_987_654,
        outbytes: 0,
    };
    svc.dests[0].stats = Counters {
        conns: 12883,
        inpkts: 1679941,
        outpkts: 0,
        inbytes: 181_747_999,
        outbytes: 0,
    };
    let text = format_list(
        None,
        &[svc],
        ListOptions {
            view: View::Stats,
            ..ListOptions::default()
        },
    );
    assert_eq!(
        text,
        lines(&[
            "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes",
            "  -> RemoteAddress:Port",
            "TCP  10.100.5.98:6030               113786 19495479        0    2110M        0",
            "  -> 10.100.5.86:6030                12883  1679941        0  181747K        0",
        ])
    );
}

#[test]
fn exact_widens_only_when_needed() {
    let mut svc = service(ServiceKey::Tcp(sa("10.100.5.98:6030")), "rr", vec![]);
    svc.stats = Counters {
        conns: 113786,
        inpkts: 19495479,
        outpkts: 0,
        inbytes: 2_110_987_654,
        outbytes: 12_345_678,
    };
    let text = format_list(
        None,
        &[svc],
        ListOptions {
            view: View::Stats,
            exact: true,
            ..ListOptions::default()
        },
    );
    assert_eq!(
        text.lines().nth(2),
        Some("TCP  10.100.5.98:6030               113786 19495479        0 2110987654 12345678")
    );
}

#[test]
fn rate_matches_the_spec_example() {
    let mut svc = service(
        ServiceKey::Tcp(sa("10.100.5.98:6030")),
        "rr",
        vec![dest("10.100.5.86:6030", Forward::Route, 1)],
    );
    svc.rates = Rates {
        cps: 0,
        inpps: 2,
        outpps: 0,
        inbps: 193,
        outbps: 0,
    };
    svc.dests[0].rates = Rates {
        cps: 1,
        inpps: 250_000_000,
        outpps: 0,
        inbps: 193,
        outbps: 0,
    };
    let text = format_list(
        None,
        &[svc],
        ListOptions {
            view: View::Rate,
            ..ListOptions::default()
        },
    );
    assert_eq!(
        text,
        lines(&[
            "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS",
            "  -> RemoteAddress:Port",
            "TCP  10.100.5.98:6030                    0        2        0      193        0",
            "  -> 10.100.5.86:6030                    1  250000K        0      193        0",
        ])
    );
}

#[test]
fn thresholds_and_persistent_conn_views() {
    let mut d = dest("192.0.2.11:80", Forward::Masq, 3);
    d.upper_threshold = 100;
    d.lower_threshold = 75;
    d.active = 4;
    d.inactive = 5;
    d.persistent = 2;
    let mut svc = service(ServiceKey::Tcp(sa("203.0.113.10:80")), "wlc", vec![d]);
    svc.persistence = Some(Persistence {
        timeout_secs: 360,
        netmask: Ipv4Addr::BROADCAST,
        prefix6: 128,
    });
    let thresholds = format_list(
        None,
        std::slice::from_ref(&svc),
        ListOptions {
            view: View::Thresholds,
            ..ListOptions::default()
        },
    );
    assert_eq!(
        thresholds,
        lines(&[
            "Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn ",
            "  -> RemoteAddress:Port",
            "TCP  203.0.113.10:80 wlc persistent 360",
            "  -> 192.0.2.11:80                100        75         4          5         ",
        ])
    );
    let pc = format_list(
        None,
        &[svc],
        ListOptions {
            view: View::PersistentConn,
            ..ListOptions::default()
        },
    );
    assert_eq!(
        pc,
        lines(&[
            "Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn ",
            "  -> RemoteAddress:Port",
            "TCP  203.0.113.10:80 wlc persistent 360",
            "  -> 192.0.2.11:80                3         2           4          5         ",
        ])
    );
}

#[test]
fn ipv6_names_are_bracketed_and_not_truncated() {
    let svc = service(
        ServiceKey::Tcp(sa("[2001:db8:ffff:ffff:ffff:ffff:ffff:1]:443")),
        "rr",
        vec![dest(
            "[2001:db8:ffff:ffff:ffff:ffff:ffff:2]:443",
            Forward::Route,
            1,
        )],
    );
    let text = format_list(None, &[svc], ListOptions::default());
    assert_eq!(
        text.lines().skip(2).collect::<Vec<_>>(),
        [
            "TCP  [2001:db8:ffff:ffff:ffff:ffff:ffff:1]:443 rr",
            "  -> [2001:db8:ffff:ffff:ffff:ffff:ffff:2]:443 Route   1      0          0         ",
        ]
    );
}

#[test]
fn ipv6_lab_service_lists_as_ipvsadm_does() {
    // ipvsadm prints IPv6 with brackets and never truncates it; a name longer than its
    // column pushes the rest of the line right, keeping one space between columns.
    let mut svc = service(
        ServiceKey::Tcp(sa("[2001:db8:f::10]:80")),
        "wrr",
        vec![
            dest("[2001:db8:b::12]:80", Forward::Masq, 2),
            dest("[2001:db8:b::11]:80", Forward::Masq, 3),
            dest("[2001:db8:b::13]:8080", Forward::Tunnel, 1),
        ],
    );
    svc.persistence = Some(Persistence {
        timeout_secs: 300,
        // Ignored for an IPv6 service (IPVS keeps one field: the prefix length here).
        netmask: Ipv4Addr::new(255, 255, 255, 0),
        prefix6: 64,
    });
    let v4 = service(
        ServiceKey::Tcp(sa("203.0.113.10:80")),
        "rr",
        vec![dest("192.0.2.11:80", Forward::Route, 1)],
    );
    let text = format_list(None, &[svc.clone(), v4], ListOptions::default());
    assert_eq!(
        text.lines().skip(2).collect::<Vec<_>>(),
        [
            // AF_INET sorts before AF_INET6.
            "TCP  203.0.113.10:80 rr",
            "  -> 192.0.2.11:80                Route   1      0          0         ",
            "TCP  [2001:db8:f::10]:80 wrr persistent 300 mask 64",
            "  -> [2001:db8:b::11]:80          Masq    3      0          0         ",
            "  -> [2001:db8:b::12]:80          Masq    2      0          0         ",
            "  -> [2001:db8:b::13]:8080        Tunnel  1      0          0         ",
        ]
    );
    // The default /128 is not printed.
    svc.persistence = Some(Persistence {
        timeout_secs: 300,
        netmask: Ipv4Addr::new(255, 255, 255, 0),
        prefix6: 128,
    });
    svc.dests.truncate(1);
    let text = format_list(
        None,
        &[svc],
        ListOptions {
            view: View::Stats,
            ..ListOptions::default()
        },
    );
    assert_eq!(
        text.lines().skip(2).collect::<Vec<_>>(),
        [
            "TCP  [2001:db8:f::10]:80                 0        0        0        0        0",
            "  -> [2001:db8:b::12]:80                 0        0        0        0        0",
        ]
    );
}

#[test]
fn ipv6_connections_overflow_their_columns_by_one_space() {
    let rows = vec![ConnRow {
        protocol: "TCP".into(),
        expires_secs: 59,
        state: "ESTABLISHED".into(),
        client: sa("[2001:db8:c::10]:40000"),
        virt: sa("[2001:db8:f::10]:80"),
        dest: sa("[2001:db8:b::11]:80"),
    }];
    assert_eq!(
        format_conns(&rows, false).lines().nth(2),
        Some(
            "TCP 00:59  ESTABLISHED [2001:db8:c::10]:40000 [2001:db8:f::10]:80 [2001:db8:b::11]:80"
        )
    );
}

#[test]
fn largenum_thresholds() {
    assert_eq!(largenum(0, false), "        0");
    assert_eq!(largenum(99_999_999, false), " 99999999");
    assert_eq!(largenum(100_000_000, false), "  100000K");
    assert_eq!(largenum(999_999_999, false), "  999999K");
    assert_eq!(largenum(1_000_000_000, false), "    1000M");
    assert_eq!(largenum(99_999_999_999, false), "   99999M");
    assert_eq!(largenum(100_000_000_000, false), "     100G");
    assert_eq!(largenum(100_000_000_000_000, false), "     100T");
    assert_eq!(largenum(u64::MAX, false), "18446744T");
    assert_eq!(largenum(7, true), "        7");
    assert_eq!(largenum(12_345_678, true), " 12345678");
    assert_eq!(largenum(123_456_789, true), " 123456789");
    assert_eq!(largenum(u64::MAX, true), " 18446744073709551615");
}

#[test]
fn lnc_matches_the_spec_example() {
    let rows = vec![
        ConnRow {
            protocol: "TCP".into(),
            expires_secs: 14 * 60 + 59,
            state: "ESTABLISHED".into(),
            client: sa("169.60.24.86:52470"),
            virt: sa("169.46.7.238:27234"),
            dest: sa("169.48.180.244:27234"),
        },
        ConnRow {
            protocol: "TCP".into(),
            expires_secs: 24,
            state: "TIME_WAIT".into(),
            client: sa("169.48.141.52:35544"),
            virt: sa("169.46.7.238:29129"),
            dest: sa("169.48.180.235:29129"),
        },
        ConnRow {
            protocol: "TCP".into(),
            expires_secs: 180 * 60 + 3,
            state: "NONE".into(),
            client: sa("192.168.123.248:0"),
            virt: sa("10.254.66.97:8080"),
            dest: sa("172.20.135.6:8080"),
        },
    ];
    assert_eq!(
        format_conns(&rows, false),
        lines(&[
            "IPVS connection entries",
            "pro expire state       source             virtual            destination",
            "TCP 14:59  ESTABLISHED 169.60.24.86:52470 169.46.7.238:27234 169.48.180.244:27234",
            "TCP 00:24  TIME_WAIT   169.48.141.52:35544 169.46.7.238:29129 169.48.180.235:29129",
            "TCP 180:03 NONE        192.168.123.248:0  10.254.66.97:8080  172.20.135.6:8080",
        ])
    );
    assert!(format_conns(&[], true).ends_with("destination        pe name          pe_data\n"));
}

#[test]
fn expiry_is_minutes_and_seconds() {
    assert_eq!(expire_mmss(0), "00:00");
    assert_eq!(expire_mmss(59), "00:59");
    assert_eq!(expire_mmss(60), "01:00");
    assert_eq!(expire_mmss(900), "15:00");
    assert_eq!(expire_mmss(5999), "99:59");
    assert_eq!(expire_mmss(6000), "100:00");
}

#[test]
fn timeout_and_version_lines() {
    assert_eq!(
        format_timeout(900, 120, 300),
        "Timeout (tcp tcpfin udp): 900 120 300\n"
    );
    assert_eq!(
        version_line("1.2.1", 4096),
        "IP Virtual Server version 1.2.1 (size=4096)\n"
    );
}
