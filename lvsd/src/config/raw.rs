//! The file as serde reads it: every value keeps its source span, unknown keys are errors.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct File {
    #[serde(default)]
    pub virtual_server: Vec<VirtualServer>,
    pub timeouts: Option<Timeouts>,
    pub control: Option<Control>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Control {
    pub socket: Option<Spanned<String>>,
    pub socket_mode: Option<Spanned<Mode>>,
    pub socket_group: Option<Spanned<String>>,
    pub admin_group: Option<Spanned<String>>,
    pub audit_log: Option<Spanned<String>>,
    pub idle_timeout: Option<Spanned<Seconds>>,
    pub tls_listen: Option<Spanned<String>>,
    pub tls_cert: Option<Spanned<String>>,
    pub tls_key: Option<Spanned<String>>,
    pub tls_client_ca: Option<Spanned<String>>,
    pub tls_admin_names: Option<Spanned<Vec<Spanned<String>>>>,
    pub tls_allow_wildcard: Option<Spanned<bool>>,
}

/// A file mode: a TOML integer (`0o660`) or an octal string (`"0660"`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum Mode {
    Int(i64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct VirtualServer {
    pub address: Spanned<String>,
    pub protocol: Option<Spanned<String>>,
    pub scheduler: Option<Spanned<String>>,
    pub scheduler_flags: Option<Spanned<Vec<Spanned<String>>>>,
    pub forwarding: Option<Spanned<String>>,
    pub persistence_timeout: Option<Spanned<Persistence>>,
    pub persistence_netmask: Option<Spanned<Netmask>>,
    pub quiescent_template_expire: Option<Spanned<bool>>,
    pub one_packet: Option<Spanned<bool>>,
    #[serde(default)]
    pub real_server: Vec<RealServer>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RealServer {
    pub address: Spanned<String>,
    pub weight: Option<Spanned<i64>>,
    pub forwarding: Option<Spanned<String>>,
    pub upper_threshold: Option<Spanned<i64>>,
    pub lower_threshold: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Timeouts {
    pub tcp: Option<Spanned<Seconds>>,
    pub tcpfin: Option<Spanned<Seconds>>,
    pub udp: Option<Spanned<Seconds>>,
}

/// A duration written as integer seconds or as a string with a unit.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum Seconds {
    Int(i64),
    Text(String),
}

impl Seconds {
    pub(super) fn to_duration(&self) -> Result<Duration, String> {
        match self {
            Seconds::Int(n) => u64::try_from(*n)
                .map(Duration::from_secs)
                .map_err(|_| format!("{n} is negative: expected seconds ≥ 1")),
            Seconds::Text(t) => super::parse_duration(t),
        }
    }
}

/// `persistence_timeout`: `true` (ipvsadm `-p` without a number: 300 s), `false` (off),
/// integer seconds, or a duration string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum Persistence {
    Switch(bool),
    Time(Seconds),
}

/// `persistence_netmask`: a prefix length (`24`) or a dotted mask (`"255.255.255.0"`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum Netmask {
    Prefix(i64),
    Text(String),
}
