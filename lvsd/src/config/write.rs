//! Writing a [`Config`] back as TOML in the documented schema (README, "Configuration"),
//! for the control API's `save_config`.
//!
//! Invariant: [`Config::parse`] of [`Config::to_toml`] gives the same [`Config`] back
//! (every key is written explicitly, so lvsd's defaults changing later does not change
//! what a saved file means). Strings are quoted by the `toml` crate. Addresses with a port
//! are written `IP:PORT`, IPv6 ones `[IPv6]:PORT`; an IPv6 service's persistence netmask
//! as its prefix length.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use lvs_proto::SchedulerKind;

use super::{
    CheckKind, Config, ControlSettings, HealthCheck, PassiveCheck, RealServer, VirtualService,
    VrrpInstance,
};
use crate::sched::SchedFlags;

/// A TOML string literal.
fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// Whole seconds as an integer, anything finer as `"<n>ms"`.
fn duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        d.as_secs().to_string()
    } else {
        quoted(&format!("{}ms", d.as_millis()))
    }
}

/// The flag names of `flags` for `kind`, in ipvsadm's spelling.
fn flag_names(kind: SchedulerKind, flags: &SchedFlags) -> Vec<&'static str> {
    let (one, two) = match kind {
        SchedulerKind::Sh => ("sh-fallback", "sh-port"),
        SchedulerKind::Mh => ("mh-fallback", "mh-port"),
        _ => ("flag-1", "flag-2"),
    };
    [
        (flags.flag1, one),
        (flags.flag2, two),
        (flags.flag3, "flag-3"),
    ]
    .into_iter()
    .filter(|(on, _)| *on)
    .map(|(_, n)| n)
    .collect()
}

impl Config {
    /// The configuration as TOML (module doc).
    pub fn to_toml(&self) -> String {
        let mut s = String::from("# Written by lvsd (save_config): the running configuration.\n");
        for vs in &self.services {
            write_service(&mut s, vs);
        }
        let t = &self.timeouts;
        let _ = write!(
            s,
            "\n[timeouts]\ntcp = {}\ntcpfin = {}\nudp = {}\n",
            duration(t.tcp),
            duration(t.tcp_fin),
            duration(t.udp)
        );
        write_control(&mut s, &self.control);
        let _ = write!(
            s,
            "\n[io]\nbackend = {}\nring_frames = {}\n",
            quoted(self.io.backend.name()),
            self.io.ring_frames
        );
        for v in &self.vrrp_instances {
            write_vrrp_instance(&mut s, v);
        }
        for g in &self.vrrp_sync_groups {
            let members: Vec<String> = g.group.iter().map(|m| quoted(m)).collect();
            let _ = write!(
                s,
                "\n[[vrrp_sync_group]]\nname = {}\ngroup = [{}]\n",
                quoted(&g.name),
                members.join(", ")
            );
        }
        s
    }
}

fn write_service(s: &mut String, vs: &VirtualService) {
    let _ = write!(
        s,
        "\n[[virtual_server]]\naddress = {}\nprotocol = {}\nscheduler = {}\nforwarding = {}\n",
        quoted(&SocketAddr::new(vs.vip, vs.port).to_string()),
        quoted(&vs.protocol.to_string()),
        quoted(vs.scheduler.name()),
        quoted(&vs.forwarding.to_string()),
    );
    let flags = flag_names(vs.scheduler, &vs.scheduler_flags);
    if !flags.is_empty() {
        let list: Vec<String> = flags.into_iter().map(quoted).collect();
        let _ = writeln!(s, "scheduler_flags = [{}]", list.join(", "));
    }
    if let Some(p) = &vs.persistence {
        let netmask = if vs.vip.is_ipv6() {
            p.prefix6.to_string()
        } else {
            quoted(&p.netmask.to_string())
        };
        let _ = write!(
            s,
            "persistence_timeout = {}\npersistence_netmask = {netmask}\n\
             quiescent_template_expire = {}\n",
            p.timeout.as_secs(),
            p.quiescent_template_expire
        );
    }
    let _ = writeln!(s, "one_packet = {}", vs.one_packet);
    if let Some(sorry) = &vs.sorry_server {
        let _ = writeln!(
            s,
            "sorry_server = {}",
            quoted(&SocketAddr::new(sorry.addr, sorry.port).to_string())
        );
    }
    let _ = write!(
        s,
        "quorum = {}\nhysteresis = {}\n",
        vs.quorum, vs.hysteresis
    );
    if let Some(hc) = &vs.health_check {
        s.push_str("\n[virtual_server.health_check]\n");
        write_health_check(s, hc);
    }
    if let Some(p) = &vs.passive {
        write_passive(s, p);
    }
    for rs in &vs.real_servers {
        write_real_server(s, rs);
    }
}

fn write_passive(s: &mut String, p: &PassiveCheck) {
    let _ = write!(
        s,
        "\n[virtual_server.passive]\nfailures = {}\nsyn_timeout = {}\nbackoff = {}\n\
         max_backoff = {}\n",
        p.failures,
        duration(p.syn_timeout),
        duration(p.backoff),
        duration(p.max_backoff)
    );
}

/// Bytes as `text` when they are printable ASCII, else as hex under `<key>_hex`.
fn bytes_key(s: &mut String, key: &str, b: &[u8]) {
    if b.iter().all(|c| (b' '..=b'~').contains(c)) {
        let text = String::from_utf8_lossy(b);
        let _ = writeln!(s, "{key} = {}", quoted(&text));
    } else {
        let hex: String = b.iter().map(|c| format!("{c:02x}")).collect();
        let _ = writeln!(s, "{key}_hex = {}", quoted(&hex));
    }
}

/// The keys of one `health_check` table (its header is written by the caller).
fn write_health_check(s: &mut String, hc: &HealthCheck) {
    let _ = write!(
        s,
        "kind = {}\ninterval = {}\ntimeout = {}\nrise = {}\nfall = {}\nalpha = {}\n\
         warmup = {}\ninhibit_on_failure = {}\n",
        quoted(hc.kind.name()),
        duration(hc.interval),
        duration(hc.timeout),
        hc.rise,
        hc.fall,
        hc.alpha,
        duration(hc.warmup),
        hc.inhibit_on_failure
    );
    if let Some(ip) = hc.connect_ip {
        let _ = writeln!(s, "connect_ip = {}", quoted(&ip.to_string()));
    }
    if let Some(port) = hc.connect_port {
        let _ = writeln!(s, "connect_port = {port}");
    }
    match &hc.kind {
        CheckKind::Tcp => {}
        CheckKind::Http(h) => {
            let ranges: Vec<String> = h
                .status
                .iter()
                .map(|(lo, hi)| format!("[{lo}, {hi}]"))
                .collect();
            let _ = write!(
                s,
                "path = {}\nstatus = [{}]\n",
                quoted(&h.path),
                ranges.join(", ")
            );
            if let Some(v) = &h.virtualhost {
                let _ = writeln!(s, "virtualhost = {}", quoted(v));
            }
            if let Some(d) = &h.digest {
                let hex: String = d.iter().map(|c| format!("{c:02x}")).collect();
                let _ = writeln!(s, "digest = {}", quoted(&hex));
            }
            if let Some(r) = &h.regex {
                let _ = writeln!(s, "regex = {}", quoted(r.as_str()));
            }
            if let Some(t) = &h.tls {
                let _ = writeln!(s, "tls_verify = {}", t.verify);
                if let Some(ca) = &t.ca {
                    let _ = writeln!(s, "tls_ca = {}", quoted(&ca.display().to_string()));
                }
            }
        }
        CheckKind::Udp(u) => {
            bytes_key(s, "payload", &u.payload);
            if let Some(e) = &u.expect {
                bytes_key(s, "expect", e);
            }
        }
        CheckKind::Dns(d) => {
            let _ = write!(
                s,
                "name = {}\ntype = {}\n",
                quoted(&d.name),
                quoted(d.record_type.name())
            );
            if let Some(e) = &d.expect {
                let _ = writeln!(s, "expect = {}", quoted(e));
            }
        }
        CheckKind::Exec(e) => {
            let argv: Vec<String> = e.command.iter().map(|a| quoted(a)).collect();
            let _ = write!(
                s,
                "command = [{}]\ndynamic_weight = {}\n",
                argv.join(", "),
                e.dynamic_weight
            );
        }
    }
}

fn write_real_server(s: &mut String, rs: &RealServer) {
    let _ = write!(
        s,
        "\n[[virtual_server.real_server]]\naddress = {}\nweight = {}\nforwarding = {}\n\
         upper_threshold = {}\nlower_threshold = {}\n",
        quoted(&SocketAddr::new(rs.addr, rs.port).to_string()),
        rs.weight,
        quoted(&rs.forwarding.to_string()),
        rs.upper_threshold,
        rs.lower_threshold
    );
    if let (true, Some(hc)) = (rs.own_health_check, &rs.health_check) {
        s.push_str("\n[virtual_server.real_server.health_check]\n");
        write_health_check(s, hc);
    }
}

fn write_vrrp_instance(s: &mut String, v: &VrrpInstance) {
    let list = |items: Vec<String>| {
        items
            .iter()
            .map(|i| quoted(i))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = write!(
        s,
        "\n[[vrrp_instance]]\nname = {}\ninterface = {}\nvirtual_router_id = {}\npriority = {}\n\
         version = {}\nadvert_interval = {}\npreempt = {}\npreempt_delay = {}\n\
         virtual_ipaddress = [{}]\nunicast_peer = [{}]\ntrack_interface = [{}]\n\
         garp_master_repeat = {}\ngarp_master_delay = {}\ngarp_master_refresh = {}\n\
         v3_checksum_as_v2 = {}\n",
        quoted(&v.name),
        quoted(&v.interface),
        v.vrid,
        v.priority,
        v.version,
        duration(v.advert_interval),
        v.preempt,
        duration(v.preempt_delay),
        list(
            v.virtual_ipaddress
                .iter()
                .map(ToString::to_string)
                .collect()
        ),
        list(v.unicast_peer.iter().map(ToString::to_string).collect()),
        list(v.track_interface.clone()),
        v.garp_master_repeat,
        duration(v.garp_master_delay),
        duration(v.garp_master_refresh.unwrap_or_default()),
        v.v3_checksum_as_v2,
    );
    if let Some(src) = v.unicast_src {
        let _ = writeln!(s, "unicast_src = {}", quoted(&src.to_string()));
    }
    if let Some(n) = &v.notify {
        let _ = writeln!(s, "notify = {}", quoted(&n.display().to_string()));
    }
}

fn write_control(s: &mut String, c: &ControlSettings) {
    let _ = write!(
        s,
        "\n[control]\nsocket = {}\nsocket_mode = {}\nidle_timeout = {}\n",
        quoted(&c.socket.display().to_string()),
        quoted(&format!("{:04o}", c.socket_mode)),
        duration(c.idle_timeout)
    );
    if let Some(g) = &c.socket_group {
        let _ = writeln!(s, "socket_group = {}", quoted(g));
    }
    if let Some(g) = &c.admin_group {
        let _ = writeln!(s, "admin_group = {}", quoted(g));
    }
    if let Some(p) = &c.audit_log {
        let _ = writeln!(s, "audit_log = {}", quoted(&p.display().to_string()));
    }
    if let Some(t) = &c.tls {
        let names: Vec<String> = t.admin_names.iter().map(|n| quoted(n)).collect();
        let _ = write!(
            s,
            "tls_listen = {}\ntls_cert = {}\ntls_key = {}\ntls_client_ca = {}\n\
             tls_admin_names = [{}]\ntls_allow_wildcard = {}\n",
            quoted(&t.listen.to_string()),
            quoted(&t.cert.display().to_string()),
            quoted(&t.key.display().to_string()),
            quoted(&t.client_ca.display().to_string()),
            names.join(", "),
            t.allow_wildcard
        );
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn round_trip(text: &str) {
        let c = Config::parse(Path::new("in.toml"), text).unwrap_or_else(|e| panic!("{e}"));
        let out = c.to_toml();
        let back =
            Config::parse(Path::new("out.toml"), &out).unwrap_or_else(|e| panic!("{e}\n{out}"));
        assert_eq!(back, c, "{out}");
    }

    #[test]
    fn a_written_config_reads_back_the_same() {
        round_trip("");
        round_trip(
            "[[virtual_server]]\naddress = \"203.0.113.10:80\"\nscheduler = \"sh\"\n\
             scheduler_flags = [\"sh-port\", \"sh-fallback\"]\nforwarding = \"nat\"\n\
             persistence_timeout = \"15m\"\npersistence_netmask = 24\n\
             quiescent_template_expire = true\n\n\
             [[virtual_server.real_server]]\naddress = \"192.0.2.11:8080\"\nweight = 0\n\
             upper_threshold = 100\nlower_threshold = 50\n\n\
             [[virtual_server.real_server]]\naddress = \"192.0.2.12\"\nforwarding = \"dr\"\n\n\
             [[virtual_server]]\naddress = \"203.0.113.10:53\"\nprotocol = \"udp\"\n\
             scheduler = \"rr\"\none_packet = true\n\n\
             [timeouts]\ntcp = \"90s\"\ntcpfin = \"500ms\"\n\n\
             [control]\nsocket = \"/run/lvs \\\"x\\\"/lvsd.sock\"\nsocket_mode = \"0666\"\n\
             admin_group = \"lvsadm\"\naudit_log = \"/var/log/lvsd/audit.log\"\n\
             idle_timeout = 30\n",
        );
    }

    #[test]
    fn tunnelling_reads_back_the_same() {
        round_trip(
            "[[virtual_server]]\naddress = \"203.0.113.10:80\"\nforwarding = \"tun\"\n\n\
             [[virtual_server.real_server]]\naddress = \"192.0.2.11\"\n\n\
             [[virtual_server.real_server]]\naddress = \"192.0.2.12\"\nforwarding = \"dr\"\n",
        );
        let c = Config::parse(
            Path::new("in.toml"),
            "[[virtual_server]]\naddress = \"203.0.113.10:80\"\n\n\
             [[virtual_server.real_server]]\naddress = \"192.0.2.11:80\"\nforwarding = \"tun\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            c.services[0].real_servers[0].forwarding,
            lvs_proto::Forwarding::Tun
        );
        assert!(c.to_toml().contains("forwarding = \"tun\""));
    }

    #[test]
    fn health_checks_read_back_the_same() {
        round_trip(
            "[[virtual_server]]\naddress = \"203.0.113.10:80\"\nforwarding = \"nat\"\n\
             sorry_server = \"192.0.2.99:8080\"\nquorum = 3\nhysteresis = 1\n\n\
             [virtual_server.health_check]\nkind = \"http\"\ninterval = \"1500ms\"\n\
             timeout = \"500ms\"\nrise = 2\nfall = 3\nalpha = true\nwarmup = \"2s\"\n\
             inhibit_on_failure = true\nconnect_ip = \"192.0.2.50\"\nconnect_port = 8080\n\
             path = \"/health?x=\\\"1\\\"\"\nstatus = [[200, 204], [301, 301]]\n\
             virtualhost = \"www.example.test\"\n\
             digest = \"9e107d9d372bb6826bd81d3542a419d6\"\nregex = \"^ok\\\\s+\\\"x\\\"$\"\n\n\
             [virtual_server.passive]\nfailures = 4\nsyn_timeout = \"1500ms\"\n\n\
             [[virtual_server.real_server]]\naddress = \"192.0.2.11:8080\"\n\n\
             [[virtual_server.real_server]]\naddress = \"192.0.2.12:8080\"\n\n\
             [virtual_server.real_server.health_check]\nkind = \"https\"\ntls_verify = true\n\
             tls_ca = \"/etc/lvsd/ca.pem\"\n\n\
             [[virtual_server.real_server]]\naddress = \"192.0.2.13:8080\"\n\n\
             [virtual_server.real_server.health_check]\nkind = \"udp\"\npayload_hex = \"00ff0a\"\n\
             expect = \"pong \\\"1\\\"\"\n\n\
             [[virtual_server.real_server]]\naddress = \"192.0.2.14:8080\"\n\n\
             [virtual_server.real_server.health_check]\nkind = \"dns\"\nname = \"example.test.\"\n\
             type = \"MX\"\nexpect = \"10 mail.example.test.\"\n\n\
             [[virtual_server.real_server]]\naddress = \"192.0.2.15:8080\"\n\n\
             [virtual_server.real_server.health_check]\nkind = \"exec\"\n\
             command = [\"/usr/local/bin/check it\", \"--name=\\\"a\\\"\"]\n\
             dynamic_weight = true\n\n\
             [[virtual_server.real_server]]\naddress = \"192.0.2.16:8080\"\n\n\
             [virtual_server.real_server.health_check]\nkind = \"tcp\"\n\n\
             [[virtual_server]]\naddress = \"203.0.113.10:443\"\n\n\
             [[virtual_server.real_server]]\naddress = \"192.0.2.11\"\n",
        );
    }

    #[test]
    fn ipv6_reads_back_the_same() {
        let text = "[[virtual_server]]\naddress = \"2001:db8:f::10 443\"\nforwarding = \"nat\"\n\
             persistence_timeout = 600\npersistence_netmask = \"ffff:ffff:ffff::\"\n\
             sorry_server = \"[2001:db8:b::99]:8443\"\n\n\
             [virtual_server.health_check]\nkind = \"https\"\nconnect_ip = \"[2001:db8:b::50]\"\n\
             virtualhost = \"[2001:db8:b::50]:8443\"\n\n\
             [[virtual_server.real_server]]\naddress = \"[2001:db8:b::11]:8443\"\n\n\
             [[virtual_server.real_server]]\naddress = \"192.0.2.12\"\nforwarding = \"tun\"\n\n\
             [virtual_server.real_server.health_check]\nkind = \"tcp\"\n\
             connect_ip = \"192.0.2.50\"\n\n\
             [[virtual_server]]\naddress = \"203.0.113.10:80\"\nforwarding = \"tun\"\n\
             persistence_timeout = 60\npersistence_netmask = 24\n\n\
             [[virtual_server.real_server]]\naddress = \"2001:db8:b::11\"\n\n\
             [virtual_server.real_server.health_check]\nkind = \"udp\"\n\
             connect_ip = \"2001:db8:b::51\"\n";
        round_trip(text);
        let c = Config::parse(Path::new("in.toml"), text).unwrap_or_else(|e| panic!("{e}"));
        let out = c.to_toml();
        // IPv6 with a port in brackets, the prefix length as a number, bare connect_ip.
        for line in [
            "address = \"[2001:db8:f::10]:443\"",
            "persistence_netmask = 48",
            "sorry_server = \"[2001:db8:b::99]:8443\"",
            "connect_ip = \"2001:db8:b::50\"",
            "address = \"[2001:db8:b::11]:8443\"",
            "address = \"[2001:db8:b::11]:80\"",
            "persistence_netmask = \"255.255.255.0\"",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} not in\n{out}");
        }
    }

    #[test]
    fn an_inherited_check_is_written_once() {
        let text = "[[virtual_server]]\naddress = \"203.0.113.10:80\"\n\n\
             [virtual_server.health_check]\nkind = \"tcp\"\n\n\
             [[virtual_server.real_server]]\naddress = \"192.0.2.11\"\n\n\
             [[virtual_server.real_server]]\naddress = \"192.0.2.12\"\n";
        let c = Config::parse(Path::new("in.toml"), text).unwrap_or_else(|e| panic!("{e}"));
        let out = c.to_toml();
        assert_eq!(out.matches("health_check]").count(), 1, "{out}");
        round_trip(text);
    }
}
