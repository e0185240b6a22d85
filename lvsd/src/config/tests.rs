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
        (Protocol::Tcp, Ipv4Addr::new(203, 0, 113, 10), 80)
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
            "forwarding = \"tun\"",
            "virtual_server[0].forwarding",
            "not implemented",
        ),
        (
            "\"203.0.113.10:80\"",
            "\"203.0.113.10\"",
            "virtual_server[0].address",
            "needs a port",
        ),
        (
            "\"203.0.113.10:80\"",
            "\"[2001:db8::1]:80\"",
            "virtual_server[0].address",
            "IPv6",
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
