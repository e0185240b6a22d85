use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("lvsd.toml"), text)
}

const GOOD: &str = r#"
[[virtual_server]]
address = "203.0.113.10:80"
protocol = "tcp"
scheduler = "wrr"
forwarding = "nat"

[[virtual_server.real_server]]
address = "192.0.2.11:8080"
weight = 3

[[virtual_server.real_server]]
address = "192.0.2.12"
weight = 0
forwarding = "dr"

[[virtual_server]]
address = "203.0.113.10:53"
protocol = "udp"

[[virtual_server.real_server]]
address = "192.0.2.13:53"
"#;

#[test]
fn parses_the_documented_example() {
    let c = parse(GOOD).unwrap();
    assert_eq!(c.services.len(), 2);
    let s = &c.services[0];
    assert_eq!(
        (s.protocol, s.vip, s.port),
        (
            Protocol::Tcp,
            IpAddr::from(Ipv4Addr::new(203, 0, 113, 10)),
            80
        )
    );
    assert_eq!(s.scheduler, SchedulerKind::Wrr);
    assert_eq!(s.real_servers[0].port, 8080);
    assert_eq!(s.real_servers[0].weight, 3);
    assert_eq!(s.real_servers[0].forwarding, Forwarding::Nat);
    // A bare address takes the virtual port; a per-server override wins.
    assert_eq!(s.real_servers[1].port, 80);
    assert_eq!(s.real_servers[1].forwarding, Forwarding::Dr);
    // Defaults follow ipvsadm: wlc, direct routing, weight 1.
    let u = &c.services[1];
    assert_eq!(u.scheduler, SchedulerKind::Wlc);
    assert_eq!(u.forwarding, Forwarding::Dr);
    assert_eq!(u.real_servers[0].weight, 1);
    assert_eq!(c.timeouts, TimeoutSettings::default());
}

#[test]
fn unknown_key_names_line_and_key() {
    let text = "[[virtual_server]]\naddress = \"203.0.113.10:80\"\n\n[[virtual_server.real_server]]\naddress = \"192.0.2.11\"\nwieght = 2\n";
    let e = parse(text).unwrap_err();
    assert_eq!(e.line, 6, "{e}");
    assert_eq!(e.key, "wieght");
    assert!(e.message.contains("unknown field `wieght`"), "{e}");
    assert!(e.to_string().starts_with("lvsd.toml:6: wieght: "), "{e}");
}

#[test]
fn out_of_range_weight_names_the_full_key() {
    let text = GOOD.replace("weight = 3", "weight = 70000");
    let e = parse(&text).unwrap_err();
    assert_eq!(e.key, "virtual_server[0].real_server[0].weight");
    assert_eq!(e.line, 10);
    assert!(e.message.contains("0..=65535"), "{e}");
    let e = parse(&GOOD.replace("weight = 3", "weight = -1")).unwrap_err();
    assert_eq!(e.key, "virtual_server[0].real_server[0].weight");
}

#[test]
fn bad_values_are_named() {
    let cases = [
        (
            "scheduler = \"wrr\"",
            "scheduler = \"fancy\"",
            "virtual_server[0].scheduler",
            "unknown scheduler",
        ),
        (
            "protocol = \"tcp\"",
            "protocol = \"sctp\"",
            "virtual_server[0].protocol",
            "unknown protocol",
        ),
        (
            "forwarding = \"nat\"",
            "forwarding = \"gre\"",
            "virtual_server[0].forwarding",
            "unknown forwarding method",
        ),
        (
            "forwarding = \"nat\"",
            "forwarding = \"tun\"",
            "virtual_server[0].real_server[0].address",
            "tunnelling cannot change the port",
        ),
        (
            "\"203.0.113.10:80\"",
            "\"203.0.113.10\"",
            "virtual_server[0].address",
            "needs a port",
        ),
        (
            "\"203.0.113.10:80\"",
            "\"[fe80::1]:80\"",
            "virtual_server[0].address",
            "link-local",
        ),
        (
            "\"192.0.2.11:8080\"",
            "\"nonsense\"",
            "virtual_server[0].real_server[0].address",
            "not an address",
        ),
    ];
    for (from, to, key, msg) in cases {
        let e = parse(&GOOD.replacen(from, to, 1)).unwrap_err();
        assert_eq!(e.key, key, "{from} -> {to}: {e}");
        assert!(e.message.contains(msg), "{from} -> {to}: {e}");
        assert!(e.line > 0);
    }
}

#[test]
fn dr_cannot_translate_ports() {
    let text = GOOD.replace("address = \"192.0.2.12\"", "address = \"192.0.2.12:81\"");
    let e = parse(&text).unwrap_err();
    assert_eq!(e.key, "virtual_server[0].real_server[1].address");
    assert!(e.message.contains("cannot change the port"), "{e}");
}

#[test]
fn duplicates_are_rejected() {
    let text = format!("{GOOD}\n[[virtual_server.real_server]]\naddress = \"192.0.2.13:53\"\n");
    let e = parse(&text).unwrap_err();
    assert!(e.message.contains("duplicate real server"), "{e}");
    let text = format!("{GOOD}\n[[virtual_server]]\naddress = \"203.0.113.10:80\"\n");
    let e = parse(&text).unwrap_err();
    assert!(e.message.contains("duplicate virtual service"), "{e}");
    assert_eq!(e.line, 25);
}

#[test]
fn syntax_errors_have_a_line() {
    let e = parse("[[virtual_server]]\naddress = \n").unwrap_err();
    assert_eq!(e.line, 2, "{e}");
    let e = parse("[[virtual_server]]\nprotocol = \"tcp\"\n").unwrap_err();
    assert!(e.message.contains("address"), "{e}");
}

#[test]
fn timeouts_accept_seconds_and_units() {
    let c = parse("[timeouts]\ntcp = 600\ntcpfin = \"30s\"\nudp = \"5m\"\n").unwrap();
    assert_eq!(c.timeouts.tcp, Duration::from_secs(600));
    assert_eq!(c.timeouts.tcp_fin, Duration::from_secs(30));
    assert_eq!(c.timeouts.udp, Duration::from_secs(300));
    let e = parse("[timeouts]\ntcp = \"10 parsecs\"\n").unwrap_err();
    assert_eq!((e.line, e.key.as_str()), (2, "timeouts.tcp"));
    let e = parse("[timeouts]\nudp = 0\n").unwrap_err();
    assert_eq!(e.key, "timeouts.udp");
}

#[test]
fn empty_file_is_valid() {
    assert!(parse("").unwrap().services.is_empty());
}

/// One service with one server; `svc` and `rs` are extra lines for each table.
fn one(svc: &str, rs: &str) -> String {
    format!(
        "[[virtual_server]]\naddress = \"203.0.113.10:80\"\n{svc}\n\n[[virtual_server.real_server]]\naddress = \"192.0.2.11\"\n{rs}\n"
    )
}

fn err(text: &str) -> ConfigError {
    parse(text).expect_err("must be refused")
}

#[test]
fn defaults_no_persistence_no_thresholds() {
    let c = parse(GOOD).unwrap();
    let s = &c.services[0];
    assert_eq!(s.persistence, None);
    assert!(!s.one_packet);
    assert_eq!(s.scheduler_flags, SchedFlags::NONE);
    assert_eq!(
        (
            s.real_servers[0].upper_threshold,
            s.real_servers[0].lower_threshold
        ),
        (0, 0)
    );
}

#[test]
fn persistence_keys() {
    let c = parse(&one(
        "persistence_timeout = 120\npersistence_netmask = 24\nquiescent_template_expire = true",
        "",
    ))
    .unwrap();
    assert_eq!(
        c.services[0].persistence,
        Some(Persistence {
            timeout: Duration::from_secs(120),
            netmask: Ipv4Addr::new(255, 255, 255, 0),
            prefix6: 128,
            quiescent_template_expire: true,
        })
    );
    // Defaults: /32, templates of quiesced servers kept; `true` is ipvsadm's bare -p.
    let c = parse(&one("persistence_timeout = true", "")).unwrap();
    assert_eq!(
        c.services[0].persistence,
        Some(Persistence {
            timeout: DEFAULT_PERSISTENCE_TIMEOUT,
            netmask: Ipv4Addr::BROADCAST,
            prefix6: 128,
            quiescent_template_expire: false,
        })
    );
    let c = parse(&one(
        "persistence_timeout = \"15m\"\npersistence_netmask = \"255.255.0.0\"",
        "",
    ))
    .unwrap();
    let p = c.services[0].persistence.unwrap();
    assert_eq!(p.timeout, Duration::from_secs(900));
    assert_eq!(p.netmask, Ipv4Addr::new(255, 255, 0, 0));
    for (text, mask) in [
        ("\"/16\"", Ipv4Addr::new(255, 255, 0, 0)),
        ("\"8\"", Ipv4Addr::new(255, 0, 0, 0)),
        ("0", Ipv4Addr::UNSPECIFIED),
        ("32", Ipv4Addr::BROADCAST),
    ] {
        let c = parse(&one(
            &format!("persistence_timeout = 60\npersistence_netmask = {text}"),
            "",
        ))
        .unwrap();
        assert_eq!(c.services[0].persistence.unwrap().netmask, mask, "{text}");
    }
    assert_eq!(
        parse(&one("persistence_timeout = false", ""))
            .unwrap()
            .services[0]
            .persistence,
        None
    );
}

#[test]
fn persistence_errors_name_the_key() {
    let cases = [
        (
            "persistence_timeout = 0",
            "persistence_timeout",
            "at least 1 s",
        ),
        (
            "persistence_timeout = -5",
            "persistence_timeout",
            "negative",
        ),
        (
            "persistence_timeout = \"1500ms\"",
            "persistence_timeout",
            "whole number",
        ),
        (
            "persistence_timeout = \"32d\"",
            "persistence_timeout",
            "unknown duration unit",
        ),
        (
            "persistence_timeout = 2678401",
            "persistence_timeout",
            "too long",
        ),
        (
            "persistence_timeout = 60\npersistence_netmask = 33",
            "persistence_netmask",
            "0..=32",
        ),
        (
            "persistence_timeout = 60\npersistence_netmask = -1",
            "persistence_netmask",
            "0..=32",
        ),
        (
            "persistence_timeout = 60\npersistence_netmask = \"/40\"",
            "persistence_netmask",
            "0..=32",
        ),
        (
            "persistence_timeout = 60\npersistence_netmask = \"255.0.255.0\"",
            "persistence_netmask",
            "contiguous",
        ),
        (
            "persistence_timeout = 60\npersistence_netmask = \"ffff::\"",
            "persistence_netmask",
            "IPv6 mask, but this service is IPv4",
        ),
        (
            "persistence_timeout = 60\npersistence_netmask = \"/24x\"",
            "persistence_netmask",
            "not a netmask",
        ),
        (
            "persistence_netmask = 24",
            "persistence_netmask",
            "without persistence",
        ),
        (
            "persistence_timeout = false\nquiescent_template_expire = true",
            "quiescent_template_expire",
            "without persistence",
        ),
    ];
    for (svc, key, msg) in cases {
        let e = err(&one(svc, ""));
        assert_eq!(e.key, format!("virtual_server[0].{key}"), "{svc}: {e}");
        assert!(e.message.contains(msg), "{svc}: {e}");
        // The line of the offending key (address is line 2, extra lines start at 3).
        let want = 3 + svc
            .lines()
            .position(|l| l.starts_with(key))
            .unwrap_or_default();
        assert_eq!(e.line, want, "{svc}: {e}");
    }
}

#[test]
fn thresholds() {
    let c = parse(&one("", "upper_threshold = 5\nlower_threshold = 2")).unwrap();
    let rs = &c.services[0].real_servers[0];
    assert_eq!((rs.upper_threshold, rs.lower_threshold), (5, 2));
    // Equal is fine; a lower threshold alone is accepted (it never matters, as in IPVS).
    assert!(parse(&one("", "upper_threshold = 5\nlower_threshold = 5")).is_ok());
    assert!(parse(&one("", "lower_threshold = 7")).is_ok());
    let e = err(&one("", "upper_threshold = 5\nlower_threshold = 6"));
    assert_eq!(e.key, "virtual_server[0].real_server[0].lower_threshold");
    assert_eq!(e.line, 8, "{e}");
    assert!(e.message.contains("above upper_threshold 5"), "{e}");
    let e = err(&one("", "upper_threshold = -1"));
    assert_eq!(e.key, "virtual_server[0].real_server[0].upper_threshold");
    assert!(e.message.contains("0..=2147483647"), "{e}");
    let e = err(&one("", "lower_threshold = 2147483648"));
    assert_eq!(e.key, "virtual_server[0].real_server[0].lower_threshold");
}

#[test]
fn one_packet_is_udp_only() {
    let c = parse(&one("protocol = \"udp\"\none_packet = true", "")).unwrap();
    assert!(c.services[0].one_packet);
    // Written before the protocol, still checked against it.
    let c = parse(&one("one_packet = true\nprotocol = \"udp\"", "")).unwrap();
    assert!(c.services[0].one_packet);
    let e = err(&one("one_packet = true", ""));
    assert_eq!(e.key, "virtual_server[0].one_packet");
    assert_eq!(e.line, 3);
    assert!(e.message.contains("UDP services only"), "{e}");
    // false on TCP is harmless.
    assert!(parse(&one("one_packet = false", "")).is_ok());
}

#[test]
fn scheduler_flags_are_checked_against_the_scheduler() {
    let e = err(&one(
        "scheduler = \"wrr\"\nscheduler_flags = [\"sh-port\"]",
        "",
    ));
    assert_eq!(e.key, "virtual_server[0].scheduler_flags");
    assert!(e.message.contains("takes no flags"), "{e}");
    assert_eq!(e.line, 4);
    let e = err(&one("scheduler_flags = [\"flag-1\"]", ""));
    assert!(e.message.contains("wlc takes no flags"), "{e}");
    // An empty list is fine anywhere.
    assert!(parse(&one("scheduler_flags = []", "")).is_ok());
    let sh = one(
        "scheduler = \"sh\"\nscheduler_flags = [\"sh-fallback\", \"sh-port\"]",
        "",
    );
    if sched::is_available(SchedulerKind::Sh) {
        let c = parse(&sh).unwrap();
        let f = c.services[0].scheduler_flags;
        assert!(f.flag1 && f.flag2 && !f.flag3);
        let e = err(&one(
            "scheduler = \"sh\"\nscheduler_flags = [\"mh-port\"]",
            "",
        ));
        assert_eq!(e.key, "virtual_server[0].scheduler_flags");
        let e = err(&one(
            "scheduler = \"sh\"\nscheduler_flags = [\"sh-turbo\"]",
            "",
        ));
        assert!(e.message.contains("sh-fallback"), "{e}");
    } else {
        let e = err(&sh);
        assert_eq!(e.key, "virtual_server[0].scheduler");
        assert!(e.message.contains("not available"), "{e}");
    }
}

/// Every IPVS scheduler name is either accepted or refused as not in this build yet; a
/// misspelt one is unknown.
#[test]
fn every_ipvs_scheduler_name_is_known() {
    for &kind in SchedulerKind::ALL {
        let r = parse(&one(&format!("scheduler = \"{kind}\""), ""));
        if sched::is_available(kind) {
            assert_eq!(r.unwrap().services[0].scheduler, kind);
        } else {
            let e = r.unwrap_err();
            assert_eq!(e.key, "virtual_server[0].scheduler");
            assert!(e.message.contains("not available in this build"), "{e}");
        }
    }
    let e = err(&one("scheduler = \"lblcx\"", ""));
    assert!(e.message.contains("unknown scheduler"), "{e}");
}

#[test]
fn control_section_defaults_and_keys() {
    let c = parse(&one("", "")).unwrap();
    assert_eq!(c.control, ControlSettings::default());
    assert_eq!(c.control.socket, Path::new("/run/lvsd/lvsd.sock"));
    assert_eq!(c.control.socket_mode, 0o660);
    let text = format!(
        "{}\n[control]\nsocket = \"/tmp/lab/lvsd.sock\"\nsocket_mode = \"0666\"\n\
         socket_group = \"lvs\"\nadmin_group = \"lvsadm\"\naudit_log = \"/var/log/lvsd-audit.log\"\n\
         idle_timeout = \"30s\"\n",
        one("", "")
    );
    let c = parse(&text).unwrap().control;
    assert_eq!(c.socket, Path::new("/tmp/lab/lvsd.sock"));
    assert_eq!(c.socket_mode, 0o666);
    assert_eq!(c.socket_group.as_deref(), Some("lvs"));
    assert_eq!(c.admin_group.as_deref(), Some("lvsadm"));
    assert_eq!(
        c.audit_log.as_deref(),
        Some(Path::new("/var/log/lvsd-audit.log"))
    );
    assert_eq!(c.idle_timeout, Duration::from_secs(30));
    // A TOML octal integer works too.
    let c = parse(&format!(
        "{}\n[control]\nsocket_mode = 0o600\n",
        one("", "")
    ))
    .unwrap();
    assert_eq!(c.control.socket_mode, 0o600);
}

#[test]
fn control_section_errors_name_the_key() {
    let base = one("", "");
    let e = err(&format!("{base}\n[control]\nsocket = \"lvsd.sock\"\n"));
    assert_eq!(e.key, "control.socket");
    assert!(e.message.contains("absolute path"), "{e}");
    let e = err(&format!("{base}\n[control]\nsocket_mode = \"0999\"\n"));
    assert_eq!(e.key, "control.socket_mode");
    let e = err(&format!("{base}\n[control]\nsocket_mode = 0o1777\n"));
    assert_eq!(e.key, "control.socket_mode");
    let e = err(&format!("{base}\n[control]\nadmin_group = \"a b\"\n"));
    assert_eq!(e.key, "control.admin_group");
    let e = err(&format!("{base}\n[control]\nsokcet = \"/x\"\n"));
    assert!(e.message.contains("unknown field"), "{e}");
}

const TLS_FILES: &str = "tls_cert = \"/etc/lvsd/tls/server.pem\"\n\
    tls_key = \"/etc/lvsd/tls/server.key\"\n\
    tls_client_ca = \"/etc/lvsd/tls/clients-ca.pem\"\n";

#[test]
fn control_tls_keys() {
    let base = one("", "");
    let c = parse(&base).unwrap();
    assert_eq!(c.control.tls, None);
    let text = format!(
        "{base}\n[control]\ntls_listen = \"192.0.2.1:7443\"\n{TLS_FILES}\
         tls_admin_names = [\"ops-admin\", \"deploy.example.net\"]\n"
    );
    let t = parse(&text).unwrap().control.tls.unwrap();
    assert_eq!(t.listen, "192.0.2.1:7443".parse().unwrap());
    assert_eq!(t.cert, Path::new("/etc/lvsd/tls/server.pem"));
    assert_eq!(t.key, Path::new("/etc/lvsd/tls/server.key"));
    assert_eq!(t.client_ca, Path::new("/etc/lvsd/tls/clients-ca.pem"));
    assert_eq!(t.admin_names, ["ops-admin", "deploy.example.net"]);
    assert!(!t.allow_wildcard);
}

#[test]
fn control_tls_wildcard_needs_to_be_allowed() {
    let base = one("", "");
    for any in ["0.0.0.0:7443", "[::]:7443"] {
        let text = format!("{base}\n[control]\n{TLS_FILES}tls_listen = \"{any}\"\n");
        let e = err(&text);
        assert_eq!(e.key, "control.tls_listen");
        assert_eq!(e.line, text.lines().count(), "{e}");
        assert!(e.message.contains("tls_allow_wildcard = true"), "{e}");
        let allowed = format!("{text}tls_allow_wildcard = true\n");
        let t = parse(&allowed).unwrap().control.tls.unwrap();
        assert!(t.allow_wildcard);
        assert!(t.listen.ip().is_unspecified());
    }
}

#[test]
fn control_tls_errors_name_the_key() {
    let base = one("", "");
    // Files are required with tls_listen.
    let e = err(&format!(
        "{base}\n[control]\ntls_listen = \"192.0.2.1:7443\"\ntls_cert = \"/a.pem\"\n"
    ));
    assert_eq!(e.key, "control.tls_listen");
    assert!(e.message.contains("needs control.tls_key"), "{e}");
    // tls_* without tls_listen.
    let e = err(&format!("{base}\n[control]\n{TLS_FILES}"));
    assert_eq!(e.key, "control.tls_cert");
    assert!(e.message.contains("without control.tls_listen"), "{e}");
    let e = err(&format!("{base}\n[control]\ntls_allow_wildcard = true\n"));
    assert_eq!(e.key, "control.tls_allow_wildcard");
    // Bad values.
    let e = err(&format!(
        "{base}\n[control]\n{TLS_FILES}tls_listen = \"ops.example.net:7443\"\n"
    ));
    assert_eq!(e.key, "control.tls_listen");
    assert!(e.message.contains("not an address"), "{e}");
    let e = err(&format!(
        "{base}\n[control]\ntls_listen = \"192.0.2.1:7443\"\n{}",
        TLS_FILES.replace("/etc/lvsd/tls/server.key", "server.key")
    ));
    assert_eq!(e.key, "control.tls_key");
    assert!(e.message.contains("absolute path"), "{e}");
    let e = err(&format!(
        "{base}\n[control]\ntls_listen = \"192.0.2.1:7443\"\n{TLS_FILES}tls_admin_names = [\"\"]\n"
    ));
    assert_eq!(e.key, "control.tls_admin_names");
}

/// One NAT service with a `[virtual_server.health_check]` table made of `check` lines, and
/// two real servers; `svc` goes in the service table.
fn checked(svc: &str, check: &str) -> String {
    format!(
        "[[virtual_server]]\naddress = \"203.0.113.10:80\"\nforwarding = \"nat\"\n{svc}\n\n\
         [virtual_server.health_check]\n{check}\n\n\
         [[virtual_server.real_server]]\naddress = \"192.0.2.11\"\n\n\
         [[virtual_server.real_server]]\naddress = \"192.0.2.12\"\n"
    )
}

/// The error for a health check whose table holds `check`; asserts it names `key` (under
/// `virtual_server[0].health_check.`) on the line where `needle` is written.
fn check_err(check: &str, key: &str, needle: &str) -> ConfigError {
    let text = checked("", check);
    let e = err(&text);
    assert_eq!(
        e.key,
        format!("virtual_server[0].health_check.{key}"),
        "{e}"
    );
    let line = text
        .lines()
        .position(|l| l.contains(needle))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("`{needle}` not in the text"));
    assert_eq!(e.line, line, "{e}");
    e
}

#[test]
fn no_health_keys_means_no_checks_and_keepalived_defaults() {
    let c = parse(GOOD).unwrap();
    let s = &c.services[0];
    assert_eq!(
        (&s.health_check, &s.passive, &s.sorry_server),
        (&None, &None, &None)
    );
    assert_eq!((s.quorum, s.hysteresis), (1, 0));
    assert!(s.real_servers.iter().all(|r| r.health_check.is_none()));
    assert!(s.real_servers.iter().all(|r| !r.own_health_check));
}

#[test]
fn a_tcp_check_with_defaults() {
    let c = parse(&checked("", "kind = \"tcp\"")).unwrap();
    let hc = c.services[0].health_check.clone().unwrap();
    assert_eq!(hc.kind, CheckKind::Tcp);
    assert_eq!(hc.interval, DEFAULT_CHECK_INTERVAL);
    assert_eq!(hc.timeout, DEFAULT_CHECK_TIMEOUT);
    assert_eq!((hc.rise, hc.fall), (1, 1));
    assert!(!hc.alpha && !hc.inhibit_on_failure);
    assert_eq!(hc.warmup, Duration::ZERO);
    // The default is every real server's effective check, not written in their tables.
    for rs in &c.services[0].real_servers {
        assert_eq!(rs.health_check.as_ref(), Some(&hc));
        assert!(!rs.own_health_check);
    }
    // A short interval shortens the default timeout with it.
    let c = parse(&checked("", "kind = \"tcp\"\ninterval = \"1s\"")).unwrap();
    let hc = c.services[0].health_check.clone().unwrap();
    assert_eq!(hc.timeout, Duration::from_secs(1));
    let target = hc.target(Ipv4Addr::new(192, 0, 2, 11), 80);
    assert_eq!(hc.describe(target), "tcp 192.0.2.11:80");
}

#[test]
fn the_documented_http_check() {
    let c = parse(&checked(
        "sorry_server = \"192.0.2.99:80\"\nquorum = 2\nhysteresis = 1",
        "kind = \"http\"\ninterval = \"1s\"\ntimeout = \"500ms\"\nrise = 2\nfall = 3\n\
         alpha = true\nwarmup = \"2s\"\ninhibit_on_failure = true\nconnect_port = 8080\n\
         path = \"/health\"\nstatus = [200, 299]\nvirtualhost = \"www.example.test\"\n\
         digest = \"9E107D9D372BB6826BD81D3542A419D6\"\nregex = \"ok|OK\"",
    ))
    .unwrap();
    let s = &c.services[0];
    assert_eq!(
        s.sorry_server,
        Some(SorryServer {
            addr: Ipv4Addr::new(192, 0, 2, 99).into(),
            port: 80,
            forwarding: Forwarding::Nat
        })
    );
    assert_eq!((s.quorum, s.hysteresis), (2, 1));
    let hc = s.health_check.clone().unwrap();
    assert_eq!(hc.interval, Duration::from_secs(1));
    assert_eq!(hc.timeout, Duration::from_millis(500));
    assert_eq!((hc.rise, hc.fall), (2, 3));
    assert!(hc.alpha && hc.inhibit_on_failure);
    assert_eq!(hc.warmup, Duration::from_secs(2));
    let CheckKind::Http(h) = &hc.kind else {
        panic!("{:?}", hc.kind)
    };
    assert_eq!(h.path, "/health");
    assert_eq!(h.status, vec![(200, 299)]);
    assert_eq!(h.virtualhost.as_deref(), Some("www.example.test"));
    assert_eq!(
        h.digest.map(|d| d[0..3].to_vec()),
        Some(vec![0x9e, 0x10, 0x7d])
    );
    assert!(h.regex.as_ref().unwrap().is_match(b"all OK"));
    assert_eq!(h.tls, None);
    let t = hc.target(Ipv4Addr::new(192, 0, 2, 11), 80);
    assert_eq!(t.to_string(), "192.0.2.11:8080");
    assert_eq!(hc.describe(t), "http GET 192.0.2.11:8080/health");
}

#[test]
fn status_is_a_code_a_range_or_ranges() {
    let status = |v: &str| {
        let c = parse(&checked("", &format!("kind = \"http\"\nstatus = {v}"))).unwrap();
        match c.services[0].health_check.clone().unwrap().kind {
            CheckKind::Http(h) => h.status,
            k => panic!("{k:?}"),
        }
    };
    assert_eq!(status("200"), vec![(200, 200)]);
    assert_eq!(status("[200, 204]"), vec![(200, 204)]);
    assert_eq!(
        status("[[200, 204], [301, 302]]"),
        vec![(200, 204), (301, 302)]
    );
    let bad = "kind = \"http\"\nstatus = ";
    for v in [
        "99",
        "600",
        "[200]",
        "[300, 200]",
        "[[200, 299], [1, 2]]",
        "[]",
        "[[]]",
    ] {
        let e = check_err(&format!("{bad}{v}"), "status", "status");
        assert!(!e.message.is_empty());
    }
}

#[test]
fn https_udp_dns_exec_checks() {
    let one_check = |check: &str| {
        parse(&checked("", check))
            .unwrap_or_else(|e| panic!("{e}"))
            .services[0]
            .health_check
            .clone()
            .unwrap()
    };
    let hc = one_check("kind = \"https\"\ntls_verify = true\ntls_ca = \"/etc/lvsd/ca.pem\"");
    let CheckKind::Http(h) = &hc.kind else {
        panic!()
    };
    let tls = h.tls.clone().unwrap();
    assert!(tls.verify);
    assert_eq!(tls.ca.as_deref(), Some(Path::new("/etc/lvsd/ca.pem")));
    assert_eq!(
        hc.describe(hc.target(Ipv4Addr::new(192, 0, 2, 11), 443)),
        "https GET 192.0.2.11:443/"
    );
    // keepalived's SSL_GET does not verify: neither does https without tls_verify.
    let hc = one_check("kind = \"https\"");
    assert!(matches!(&hc.kind, CheckKind::Http(h)
            if h.tls == Some(TlsCheck { verify: false, ca: None })));

    let hc = one_check("kind = \"udp\"\npayload = \"ping\"\nexpect_hex = \"706f6e67\"");
    assert_eq!(
        hc.kind,
        CheckKind::Udp(UdpCheck {
            payload: b"ping".to_vec(),
            expect: Some(b"pong".to_vec())
        })
    );
    let hc = one_check("kind = \"udp\"");
    assert_eq!(
        hc.kind,
        CheckKind::Udp(UdpCheck {
            payload: Vec::new(),
            expect: None
        })
    );

    let hc =
        one_check("kind = \"dns\"\nname = \"example.test\"\ntype = \"a\"\nexpect = \"192.0.2.1\"");
    assert_eq!(
        hc.kind,
        CheckKind::Dns(DnsCheck {
            name: "example.test".into(),
            record_type: DnsType::A,
            expect: Some("192.0.2.1".into())
        })
    );
    assert_eq!(
        hc.describe(hc.target(Ipv4Addr::new(192, 0, 2, 11), 53)),
        "dns A example.test @192.0.2.11:53"
    );
    // keepalived's defaults: SOA for the root.
    let hc = one_check("kind = \"dns\"");
    assert!(
        matches!(&hc.kind, CheckKind::Dns(d) if d.name == "." && d.record_type == DnsType::Soa)
    );

    let hc = one_check(
        "kind = \"exec\"\ncommand = [\"/usr/local/bin/check\", \"-v\"]\ndynamic_weight = true",
    );
    assert_eq!(
        hc.kind,
        CheckKind::Exec(ExecCheck {
            command: vec!["/usr/local/bin/check".into(), "-v".into()],
            dynamic_weight: true
        })
    );
    assert_eq!(
        hc.describe(hc.target(Ipv4Addr::new(192, 0, 2, 11), 80)),
        "exec /usr/local/bin/check -v"
    );
}

#[test]
fn a_real_servers_own_check_replaces_the_default() {
    let text = "[[virtual_server]]\naddress = \"203.0.113.10:80\"\n\n\
        [virtual_server.health_check]\nkind = \"http\"\nfall = 3\n\n\
        [[virtual_server.real_server]]\naddress = \"192.0.2.11\"\n\n\
        [virtual_server.real_server.health_check]\nkind = \"tcp\"\n\n\
        [[virtual_server.real_server]]\naddress = \"192.0.2.12\"\n";
    let c = parse(text).unwrap();
    let s = &c.services[0];
    let own = s.real_servers[0].health_check.clone().unwrap();
    // Completely: no `fall = 3` inherited.
    assert_eq!((own.kind.clone(), own.fall), (CheckKind::Tcp, 1));
    assert!(s.real_servers[0].own_health_check);
    assert_eq!(s.real_servers[1].health_check, s.health_check);
    assert!(!s.real_servers[1].own_health_check);
    // A real server may have a check when the service has none.
    let c = parse(&one(
        "",
        "\n[virtual_server.real_server.health_check]\nkind = \"tcp\"",
    ))
    .unwrap();
    assert_eq!(c.services[0].health_check, None);
    assert!(c.services[0].real_servers[0].health_check.is_some());
    // Its errors name its own key.
    let e = err(&one(
        "",
        "\n[virtual_server.real_server.health_check]\nkind = \"tcp\"\nrise = 0",
    ));
    assert_eq!(e.key, "virtual_server[0].real_server[0].health_check.rise");
    assert_eq!(e.line, 10, "{e}");
}

#[test]
fn health_check_errors_name_key_and_line() {
    let cases: &[(&str, &str, &str, &str)] = &[
        // (check lines, key, text on the error's line, part of the message)
        ("kind = \"icmp\"", "kind", "icmp", "unknown check kind"),
        ("kind = \"tcp\"\nrise = 0", "rise", "rise", "1..=100"),
        ("kind = \"tcp\"\nrise = 101", "rise", "rise", "1..=100"),
        ("kind = \"tcp\"\nfall = -1", "fall", "fall", "1..=100"),
        (
            "kind = \"tcp\"\ninterval = \"50ms\"",
            "interval",
            "interval",
            "100ms..=1h",
        ),
        (
            "kind = \"tcp\"\ninterval = \"2h\"",
            "interval",
            "interval",
            "100ms..=1h",
        ),
        (
            "kind = \"tcp\"\ninterval = \"1x\"",
            "interval",
            "interval",
            "unit",
        ),
        (
            "kind = \"tcp\"\ninterval = \"1s\"\ntimeout = \"2s\"",
            "timeout",
            "timeout",
            "longer than the interval",
        ),
        (
            "kind = \"tcp\"\ntimeout = 0",
            "timeout",
            "timeout",
            "greater than zero",
        ),
        (
            "kind = \"tcp\"\nwarmup = \"2h\"",
            "warmup",
            "warmup",
            "at most 1h",
        ),
        (
            "kind = \"tcp\"\nconnect_ip = \"192.0.2.1:80\"",
            "connect_ip",
            "connect_ip",
            "connect_port",
        ),
        (
            "kind = \"tcp\"\nconnect_ip = \"fe80::1\"",
            "connect_ip",
            "connect_ip",
            "link-local",
        ),
        (
            "kind = \"tcp\"\nconnect_ip = \"ff02::1\"",
            "connect_ip",
            "connect_ip",
            "cannot be checked",
        ),
        (
            "kind = \"tcp\"\nconnect_ip = \"::ffff:192.0.2.1\"",
            "connect_ip",
            "connect_ip",
            "IPv4-mapped",
        ),
        (
            "kind = \"tcp\"\nconnect_ip = \"[2001:db8::1]:80\"",
            "connect_ip",
            "connect_ip",
            "connect_port",
        ),
        (
            "kind = \"tcp\"\nconnect_port = 0",
            "connect_port",
            "connect_port",
            "1..=65535",
        ),
        (
            "kind = \"tcp\"\nconnect_port = 70000",
            "connect_port",
            "connect_port",
            "1..=65535",
        ),
        (
            "kind = \"tcp\"\npath = \"/\"",
            "path",
            "path",
            "http and https",
        ),
        (
            "kind = \"http\"\ncommand = [\"/bin/true\"]",
            "command",
            "command",
            "exec checks",
        ),
        (
            "kind = \"http\"\ntls_verify = false",
            "tls_verify",
            "tls_verify",
            "https checks",
        ),
        (
            "kind = \"http\"\ntls_ca = \"/ca.pem\"",
            "tls_ca",
            "tls_ca",
            "https checks",
        ),
        (
            "kind = \"http\"\npath = \"health\"",
            "path",
            "path",
            "request path",
        ),
        (
            "kind = \"http\"\npath = \"/a b\"",
            "path",
            "path",
            "request path",
        ),
        (
            "kind = \"http\"\nstatus = 700",
            "status",
            "status",
            "100..=599",
        ),
        (
            "kind = \"http\"\ndigest = \"abc\"",
            "digest",
            "digest",
            "32 hexadecimal",
        ),
        (
            "kind = \"http\"\ndigest = \"zz107d9d372bb6826bd81d3542a419d6\"",
            "digest",
            "digest",
            "MD5",
        ),
        (
            "kind = \"http\"\nregex = \"(unclosed\"",
            "regex",
            "regex",
            "invalid",
        ),
        (
            "kind = \"http\"\nvirtualhost = \"a b\"",
            "virtualhost",
            "virtualhost",
            "host name",
        ),
        (
            "kind = \"https\"\ntls_verify = true",
            "tls_verify",
            "tls_verify",
            "needs tls_ca",
        ),
        (
            "kind = \"https\"\ntls_ca = \"/etc/ca.pem\"",
            "tls_ca",
            "tls_ca",
            "without tls_verify",
        ),
        (
            "kind = \"https\"\ntls_verify = true\ntls_ca = \"ca.pem\"",
            "tls_ca",
            "tls_ca",
            "absolute",
        ),
        (
            "kind = \"udp\"\npayload_hex = \"abc\"",
            "payload_hex",
            "payload_hex",
            "hexadecimal",
        ),
        (
            "kind = \"udp\"\npayload_hex = \"zz\"",
            "payload_hex",
            "payload_hex",
            "hexadecimal",
        ),
        (
            "kind = \"udp\"\nexpect_hex = \"0g\"",
            "expect_hex",
            "expect_hex",
            "hexadecimal",
        ),
        (
            "kind = \"udp\"\npayload = \"a\"\npayload_hex = \"61\"",
            "payload_hex",
            "payload_hex",
            "not both",
        ),
        ("kind = \"udp\"\nname = \"x\"", "name", "name", "dns checks"),
        (
            "kind = \"dns\"\ntype = \"PTR\"",
            "type",
            "type",
            "unknown record type",
        ),
        (
            "kind = \"dns\"\nname = \"a..b\"",
            "name",
            "name",
            "domain name",
        ),
        (
            "kind = \"dns\"\ntype = \"A\"\nexpect = \"not-an-ip\"",
            "expect",
            "expect",
            "A record",
        ),
        (
            "kind = \"dns\"\ntype = \"AAAA\"\nexpect = \"192.0.2.1\"",
            "expect",
            "expect",
            "AAAA record",
        ),
        (
            "kind = \"dns\"\npayload = \"x\"",
            "payload",
            "payload",
            "udp checks",
        ),
        (
            "kind = \"exec\"\ncommand = []",
            "command",
            "command",
            "empty",
        ),
        (
            "kind = \"exec\"\ncommand = [\"check.sh\"]",
            "command",
            "command",
            "absolute path",
        ),
        (
            "kind = \"exec\"\ndynamic_weight = true",
            "command",
            "health_check]",
            "needs command",
        ),
        (
            "kind = \"tcp\"\ndynamic_weight = true",
            "dynamic_weight",
            "dynamic_weight",
            "exec checks",
        ),
    ];
    let long = format!("kind = \"udp\"\npayload_hex = \"{}\"", "00".repeat(65_508));
    let e = check_err(&long, "payload_hex", "payload_hex");
    assert!(e.message.contains("more than one datagram"), "{e}");
    for (check, key, needle, message) in cases {
        let e = check_err(check, key, needle);
        assert!(e.message.contains(message), "{check:?}: {e}");
    }
    // Unknown keys are refused like everywhere else; a missing kind too.
    let e = err(&checked("", "kind = \"tcp\"\nretry = 3"));
    assert_eq!(e.key, "retry", "{e}");
    assert!(e.message.contains("unknown field"), "{e}");
    let e = err(&checked("", "interval = \"1s\""));
    assert!(e.message.contains("kind"), "{e}");
}

#[test]
fn service_health_keys_and_their_errors() {
    let svc_err = |svc: &str, key: &str, message: &str| {
        let text = checked(svc, "kind = \"tcp\"");
        let e = err(&text);
        assert_eq!(e.key, format!("virtual_server[0].{key}"), "{svc}: {e}");
        let line = text.lines().position(|l| l.starts_with(key)).unwrap() + 1;
        assert_eq!(e.line, line, "{svc}: {e}");
        assert!(e.message.contains(message), "{svc}: {e}");
    };
    svc_err("quorum = 0", "quorum", "at least 1");
    svc_err("quorum = -3", "quorum", "at least 1");
    svc_err("quorum = 2\nhysteresis = 2", "hysteresis", "0..quorum");
    svc_err("hysteresis = 1", "hysteresis", "0..quorum (1)");
    svc_err(
        "sorry_server = \"nowhere\"",
        "sorry_server",
        "not an address",
    );
    svc_err(
        "sorry_server = \"192.0.2.11:80\"",
        "sorry_server",
        "also a real server",
    );
    // A bare address takes the virtual port; DR keeps the port.
    let c = parse(&checked("sorry_server = \"192.0.2.99\"", "kind = \"tcp\"")).unwrap();
    assert_eq!(c.services[0].sorry_server.map(|s| s.port), Some(80));
    let e = err(&one("sorry_server = \"192.0.2.99:8080\"", ""));
    assert_eq!(e.key, "virtual_server[0].sorry_server");
    assert!(e.message.contains("direct routing"), "{e}");
}

#[test]
fn passive_detection() {
    let c = parse(&checked("", "kind = \"tcp\"\n\n[virtual_server.passive]")).unwrap();
    assert_eq!(c.services[0].passive, Some(PassiveCheck::default()));
    let c = parse(&checked(
        "",
        "kind = \"tcp\"\n\n[virtual_server.passive]\nfailures = 3\nsyn_timeout = \"1s\"\n\
         backoff = \"2s\"\nmax_backoff = \"1m\"",
    ))
    .unwrap();
    assert_eq!(
        c.services[0].passive,
        Some(PassiveCheck {
            failures: 3,
            syn_timeout: Duration::from_secs(1),
            backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(60)
        })
    );
    let passive_err = |lines: &str, key: &str, message: &str| {
        let text = checked(
            "",
            &format!("kind = \"tcp\"\n\n[virtual_server.passive]\n{lines}"),
        );
        let e = err(&text);
        assert_eq!(e.key, format!("virtual_server[0].passive.{key}"), "{e}");
        let line = text.lines().position(|l| l.starts_with(key)).unwrap() + 1;
        assert_eq!(e.line, line, "{e}");
        assert!(e.message.contains(message), "{e}");
    };
    passive_err("failures = 0", "failures", "1..=1000");
    passive_err("syn_timeout = \"10ms\"", "syn_timeout", "100ms..=1h");
    passive_err("backoff = 0", "backoff", "100ms..=1h");
    passive_err(
        "max_backoff = \"1s\"",
        "max_backoff",
        "longer than max_backoff",
    );
    passive_err("backoff = \"10m\"", "backoff", "longer than max_backoff");
    let e = err(&checked(
        "",
        "kind = \"tcp\"\n\n[virtual_server.passive]\nfailure = 3",
    ));
    assert!(e.message.contains("unknown field"), "{e}");
    // Only NAT sends the replies through the director; only TCP has handshakes.
    let e = err(&one("\n[virtual_server.passive]", ""));
    assert_eq!(e.key, "virtual_server[0].passive");
    assert!(e.message.contains("only NAT"), "{e}");
    let e = err(
        "[[virtual_server]]\naddress = \"203.0.113.10:53\"\nprotocol = \"udp\"\n\
         forwarding = \"nat\"\n\n[virtual_server.passive]\n",
    );
    assert!(e.message.contains("TCP services only"), "{e}");
}

#[test]
fn io_backend_and_ring_frames() {
    let c = parse("").unwrap();
    assert_eq!(c.io, IoSettings::default());
    assert_eq!((c.io.backend, c.io.ring_frames), (IoBackend::Ring, 4096));
    let c = parse("[io]\nbackend = \"socket\"\nring_frames = 64\n").unwrap();
    assert_eq!((c.io.backend, c.io.ring_frames), (IoBackend::Socket, 64));
    let c = parse("[io]\nring_frames = 65536\n").unwrap();
    assert_eq!((c.io.backend, c.io.ring_frames), (IoBackend::Ring, 65536));

    let e = parse("# x\n[io]\nbackend = \"xdp\"\n").unwrap_err();
    assert_eq!((e.line, e.key.as_str()), (3, "io.backend"), "{e}");
    assert!(e.message.contains("\"ring\" or \"socket\""), "{e}");
    for bad in ["0", "15", "65537", "-1"] {
        let e = parse(&format!("[io]\n\nring_frames = {bad}\n")).unwrap_err();
        assert_eq!(
            (e.line, e.key.as_str()),
            (3, "io.ring_frames"),
            "{bad}: {e}"
        );
        assert!(e.message.contains("16..=65536"), "{e}");
    }
    let e = parse("[io]\nbackend = \"ring\"\nrings = 3\n").unwrap_err();
    assert_eq!((e.line, e.key.as_str()), (3, "rings"), "{e}");
    let e = parse("[io]\nring_frames = \"many\"\n").unwrap_err();
    assert_eq!(e.line, 2, "{e}");
}

#[test]
fn io_settings_survive_save() {
    for (backend, frames) in [(IoBackend::Socket, 16), (IoBackend::Ring, 1000)] {
        let text = format!(
            "[io]\nbackend = \"{}\"\nring_frames = {frames}\n",
            backend.name()
        );
        let c = parse(&text).unwrap();
        let saved = c.to_toml();
        assert!(saved.contains("\n[io]\n"), "{saved}");
        assert_eq!(parse(&saved).unwrap(), c, "{saved}");
    }
}

// IPv6 (issue #8).

const GOOD6: &str = r#"
[[virtual_server]]
address = "[2001:db8:f::10]:80"
scheduler = "rr"
forwarding = "nat"

[[virtual_server.real_server]]
address = "[2001:db8:b::11]:8080"

[[virtual_server.real_server]]
address = "2001:db8:b::12"
forwarding = "dr"

[[virtual_server.real_server]]
address = "[2001:db8:b::13]"
forwarding = "tun"

[[virtual_server]]
address = "2001:db8:f::10 53"
protocol = "udp"

[[virtual_server.real_server]]
address = "2001:db8:b::11 53"
"#;

fn v6(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[test]
fn ipv6_services_and_real_servers_parse() {
    let c = parse(GOOD6).unwrap();
    let s = &c.services[0];
    assert_eq!((s.vip, s.port), (v6("2001:db8:f::10"), 80));
    let rs: Vec<(IpAddr, u16, Forwarding)> = s
        .real_servers
        .iter()
        .map(|r| (r.addr, r.port, r.forwarding))
        .collect();
    assert_eq!(
        rs,
        [
            (v6("2001:db8:b::11"), 8080, Forwarding::Nat),
            // A bare or bracketed address without a port takes the virtual port.
            (v6("2001:db8:b::12"), 80, Forwarding::Dr),
            (v6("2001:db8:b::13"), 80, Forwarding::Tun),
        ]
    );
    // keepalived's `ADDRESS PORT` order.
    let u = &c.services[1];
    assert_eq!(
        (u.protocol, u.vip, u.port),
        (Protocol::Udp, v6("2001:db8:f::10"), 53)
    );
    assert_eq!(
        (u.real_servers[0].addr, u.real_servers[0].port),
        (v6("2001:db8:b::11"), 53)
    );
    // The same VIP and port in IPv4 and IPv6 are two services; the same IPv6 twice is not.
    let both = format!("{GOOD6}\n[[virtual_server]]\naddress = \"203.0.113.10:80\"\n");
    assert_eq!(parse(&both).unwrap().services.len(), 3);
    let twice = format!("{GOOD6}\n[[virtual_server]]\naddress = \"2001:db8:f::10 80\"\n");
    let e = err(&twice);
    assert_eq!(e.key, "virtual_server[2].address");
    assert!(
        e.message
            .contains("duplicate virtual service tcp [2001:db8:f::10]:80"),
        "{e}"
    );
    // The bare and bracketed forms of one real server are one real server.
    let dup = format!("{GOOD6}\n[[virtual_server.real_server]]\naddress = \"[2001:db8:b::11]\"\n");
    let e = err(&dup);
    assert!(
        e.message
            .contains("duplicate real server [2001:db8:b::11]:53"),
        "{e}"
    );
}

#[test]
fn nat_and_dr_real_servers_must_have_the_service_family() {
    // An IPv4 NAT service with an IPv6 real server: line 6, the server's address.
    let text = "[[virtual_server]]\naddress = \"203.0.113.10:80\"\nforwarding = \"nat\"\n\n\
                [[virtual_server.real_server]]\naddress = \"[2001:db8:b::11]:80\"\n";
    let e = err(text);
    assert_eq!(
        (e.line, e.key.as_str()),
        (6, "virtual_server[0].real_server[0].address"),
        "{e}"
    );
    assert!(
        e.message.contains(
            "`2001:db8:b::11` is IPv6 but the virtual service 203.0.113.10:80 is IPv4: NAT \
             cannot change the address family"
        ),
        "{e}"
    );
    assert!(e.message.contains("forwarding = \"tun\""), "{e}");
    // An IPv6 DR service (the default method) with an IPv4 real server.
    let text = "[[virtual_server]]\naddress = \"[2001:db8:f::10]:80\"\n\n\
                [[virtual_server.real_server]]\naddress = \"192.0.2.11\"\n";
    let e = err(text);
    assert_eq!(
        (e.line, e.key.as_str()),
        (5, "virtual_server[0].real_server[0].address"),
        "{e}"
    );
    assert!(e.message.contains("direct routing cannot change"), "{e}");
    // A per-server NAT in a TUN service is still NAT.
    let text = "[[virtual_server]]\naddress = \"[2001:db8:f::10]:80\"\nforwarding = \"tun\"\n\n\
                [[virtual_server.real_server]]\naddress = \"192.0.2.11\"\nforwarding = \"nat\"\n";
    assert!(err(text).message.contains("NAT cannot change"));
    // The sorry server follows the service's method.
    let text = "[[virtual_server]]\naddress = \"203.0.113.10:80\"\nforwarding = \"nat\"\n\
                sorry_server = \"[2001:db8:b::99]:80\"\n";
    let e = err(text);
    assert_eq!(
        (e.line, e.key.as_str()),
        (4, "virtual_server[0].sorry_server"),
        "{e}"
    );
    assert!(e.message.contains("is IPv6 but"), "{e}");
}

#[test]
fn tunnels_may_mix_families() {
    // 6in4 and 4in6 (IPVS allows other-family destinations for tunnelling only).
    let text = "[[virtual_server]]\naddress = \"203.0.113.10:80\"\nforwarding = \"tun\"\n\
                sorry_server = \"2001:db8:b::99\"\n\n\
                [[virtual_server.real_server]]\naddress = \"[2001:db8:b::11]:80\"\n\n\
                [[virtual_server.real_server]]\naddress = \"192.0.2.12\"\n\n\
                [[virtual_server]]\naddress = \"[2001:db8:f::10]:80\"\nforwarding = \"nat\"\n\n\
                [[virtual_server.real_server]]\naddress = \"192.0.2.11\"\nforwarding = \"tun\"\n\n\
                [[virtual_server.real_server]]\naddress = \"[2001:db8:b::12]:8080\"\n";
    let c = parse(text).unwrap();
    let s = &c.services[0];
    assert_eq!(s.real_servers[0].addr, v6("2001:db8:b::11"));
    assert_eq!(
        s.sorry_server.map(|s| (s.addr, s.port)),
        Some((v6("2001:db8:b::99"), 80))
    );
    let s = &c.services[1];
    assert_eq!(
        (s.real_servers[0].addr, s.real_servers[0].forwarding),
        (IpAddr::from(Ipv4Addr::new(192, 0, 2, 11)), Forwarding::Tun)
    );
    // A tunnel still cannot change the port.
    let e = err(&text.replace("\"[2001:db8:b::11]:80\"", "\"[2001:db8:b::11]:81\""));
    assert!(
        e.message.contains("tunnelling cannot change the port"),
        "{e}"
    );
}

#[test]
fn unusable_ipv6_addresses_are_named() {
    let cases = [
        ("[fe80::1]:80", "link-local"),
        (
            "[::ffff:203.0.113.10]:80",
            "IPv4-mapped IPv6 address: write the IPv4 address 203.0.113.10",
        ),
        (
            "[ff02::1]:80",
            "cannot be used as a service or server address",
        ),
        ("[::1]:80", "cannot be used as a service or server address"),
        ("[::]:80", "cannot be used as a service or server address"),
        ("[2001:db8::1%2]:80", "zone index"),
        ("[2001:db8::1]:0", "port 0"),
        ("2001:db8::1 80 90", "not an address"),
        ("[2001:db8::1]:http", "not an address"),
    ];
    for (addr, msg) in cases {
        let text = format!("[[virtual_server]]\naddress = \"{addr}\"\n");
        let e = err(&text);
        assert_eq!(
            (e.line, e.key.as_str()),
            (2, "virtual_server[0].address"),
            "{addr}: {e}"
        );
        assert!(e.message.contains(msg), "{addr}: {e}");
    }
    // Without brackets the last group is part of the address, not a port.
    let e = err("[[virtual_server]]\naddress = \"2001:db8:f::10:80\"\n");
    assert!(e.message.contains("needs a port"), "{e}");
    assert!(e.message.contains("[VIP]:PORT"), "{e}");
    let e = err(&one("", "").replace("\"192.0.2.11\"", "\"[fe80::11]\""));
    assert_eq!(e.key, "virtual_server[0].real_server[0].address");
    assert!(e.message.contains("link-local"), "{e}");
}

#[test]
fn ipv6_persistence_takes_a_prefix_length() {
    let svc = |netmask: &str| {
        format!(
            "[[virtual_server]]\naddress = \"[2001:db8:f::10]:443\"\npersistence_timeout = 60\n\
             {netmask}\n"
        )
    };
    let prefix = |netmask: &str| {
        let p = parse(&svc(netmask)).unwrap().services[0]
            .persistence
            .unwrap();
        // An IPv6 service leaves the IPv4 netmask at its default.
        assert_eq!(p.netmask, Ipv4Addr::BROADCAST, "{netmask}");
        p.prefix6
    };
    // Default: one template per client address (ipvsadm: /128).
    assert_eq!(prefix(""), 128);
    assert_eq!(prefix("persistence_netmask = 64"), 64);
    assert_eq!(prefix("persistence_netmask = \"/48\""), 48);
    assert_eq!(prefix("persistence_netmask = \"1\""), 1);
    assert_eq!(
        prefix("persistence_netmask = \"ffff:ffff:ffff:ffff::\""),
        64
    );
    assert_eq!(prefix("persistence_netmask = 128"), 128);
    for (netmask, msg) in [
        ("persistence_netmask = 0", "1..=128"),
        ("persistence_netmask = 129", "1..=128"),
        ("persistence_netmask = \"/200\"", "1..=128"),
        (
            "persistence_netmask = \"255.255.255.0\"",
            "IPv4 netmask, but this service is IPv6",
        ),
        ("persistence_netmask = \"ffff:0:ffff::\"", "contiguous"),
        ("persistence_netmask = \"wide\"", "not a prefix length"),
    ] {
        let e = err(&svc(netmask));
        assert_eq!(
            (e.line, e.key.as_str()),
            (4, "virtual_server[0].persistence_netmask"),
            "{netmask}: {e}"
        );
        assert!(e.message.contains(msg), "{netmask}: {e}");
    }
}

#[test]
fn ipv6_health_check_targets() {
    let c = parse(&checked(
        "",
        "kind = \"tcp\"\nconnect_ip = \"2001:db8:b::50\"",
    ))
    .unwrap();
    let hc = c.services[0].health_check.clone().unwrap();
    assert_eq!(hc.connect_ip, Some(v6("2001:db8:b::50")));
    // An IPv4 real server checked at an IPv6 address.
    let t = hc.target(Ipv4Addr::new(192, 0, 2, 11), 80);
    assert_eq!(hc.describe(t), "tcp [2001:db8:b::50]:80");
    // Brackets are accepted; the real server's own IPv6 address is the default target.
    let c = parse(&checked("", "kind = \"http\"\nconnect_ip = \"[::1]\"")).unwrap();
    let hc = c.services[0].health_check.clone().unwrap();
    assert_eq!(hc.connect_ip, Some(v6("::1")));
    let mut hc = hc;
    hc.connect_ip = None;
    let t = hc.target(v6("2001:db8:b::11"), 8080);
    assert_eq!(hc.describe(t), "http GET [2001:db8:b::11]:8080/");
    // A bracketed IPv6 virtualhost is a host name here.
    let c = parse(&checked(
        "",
        "kind = \"https\"\nvirtualhost = \"[2001:db8:b::11]:8443\"",
    ))
    .unwrap();
    let CheckKind::Http(h) = c.services[0].health_check.clone().unwrap().kind else {
        panic!()
    };
    assert_eq!(h.virtualhost.as_deref(), Some("[2001:db8:b::11]:8443"));
}

#[test]
fn the_address_rules_are_public_for_api_edits() {
    let v4: IpAddr = Ipv4Addr::new(203, 0, 113, 10).into();
    let rip6 = v6("2001:db8:b::11");
    assert!(check_server_family(v4, 80, rip6, Forwarding::Tun).is_ok());
    let e = check_server_family(v4, 80, rip6, Forwarding::Nat).unwrap_err();
    assert!(e.contains("NAT cannot change the address family"), "{e}");
    assert!(check_server_family(v6("2001:db8:f::10"), 80, rip6, Forwarding::Dr).is_ok());
    assert!(check_address(rip6).is_ok());
    let e = check_address(v6("fe80::1")).unwrap_err();
    assert!(e.starts_with("`fe80::1` is link-local"), "{e}");
    assert!(check_prefix6(64).is_ok());
    assert!(check_prefix6(0).unwrap_err().contains("1..=128"));
    assert!(check_prefix6(129).is_err());
}
