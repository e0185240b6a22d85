//! Writing a [`Config`] back as TOML in the documented schema (README, "Configuration"),
//! for the control API's `save_config`.
//!
//! Invariant: [`Config::parse`] of [`Config::to_toml`] gives the same [`Config`] back
//! (every key is written explicitly, so lvsd's defaults changing later does not change
//! what a saved file means). Strings are quoted by the `toml` crate.

use std::fmt::Write as _;
use std::time::Duration;

use lvs_proto::SchedulerKind;

use super::{Config, ControlSettings, RealServer, VirtualService};
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
        s
    }
}

fn write_service(s: &mut String, vs: &VirtualService) {
    let _ = write!(
        s,
        "\n[[virtual_server]]\naddress = {}\nprotocol = {}\nscheduler = {}\nforwarding = {}\n",
        quoted(&format!("{}:{}", vs.vip, vs.port)),
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
        let _ = write!(
            s,
            "persistence_timeout = {}\npersistence_netmask = {}\nquiescent_template_expire = {}\n",
            p.timeout.as_secs(),
            quoted(&p.netmask.to_string()),
            p.quiescent_template_expire
        );
    }
    let _ = writeln!(s, "one_packet = {}", vs.one_packet);
    for rs in &vs.real_servers {
        write_real_server(s, rs);
    }
}

fn write_real_server(s: &mut String, rs: &RealServer) {
    let _ = write!(
        s,
        "\n[[virtual_server.real_server]]\naddress = {}\nweight = {}\nforwarding = {}\n\
         upper_threshold = {}\nlower_threshold = {}\n",
        quoted(&format!("{}:{}", rs.addr, rs.port)),
        rs.weight,
        quoted(&rs.forwarding.to_string()),
        rs.upper_threshold,
        rs.lower_threshold
    );
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
}
