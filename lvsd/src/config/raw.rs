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
    pub io: Option<Io>,
    #[serde(default)]
    pub vrrp_instance: Vec<super::vrrp::RawInstance>,
    #[serde(default)]
    pub vrrp_sync_group: Vec<super::vrrp::RawSyncGroup>,
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

/// `[io]`: the packet I/O backend.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Io {
    pub backend: Option<Spanned<String>>,
    pub ring_frames: Option<Spanned<i64>>,
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
    pub sorry_server: Option<Spanned<String>>,
    pub quorum: Option<Spanned<i64>>,
    pub hysteresis: Option<Spanned<i64>>,
    pub health_check: Option<Spanned<HealthCheck>>,
    pub passive: Option<Spanned<Passive>>,
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
    pub health_check: Option<Spanned<HealthCheck>>,
}

/// `health_check`: one flat table for every kind; keys that do not belong to `kind` are
/// refused during validation (with the kind named), not silently ignored.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HealthCheck {
    pub kind: Spanned<String>,
    pub interval: Option<Spanned<Seconds>>,
    pub timeout: Option<Spanned<Seconds>>,
    pub rise: Option<Spanned<i64>>,
    pub fall: Option<Spanned<i64>>,
    pub alpha: Option<Spanned<bool>>,
    pub warmup: Option<Spanned<Seconds>>,
    pub inhibit_on_failure: Option<Spanned<bool>>,
    pub connect_ip: Option<Spanned<String>>,
    pub connect_port: Option<Spanned<i64>>,
    // http / https
    pub path: Option<Spanned<String>>,
    pub status: Option<Spanned<Status>>,
    pub virtualhost: Option<Spanned<String>>,
    pub digest: Option<Spanned<String>>,
    pub regex: Option<Spanned<String>>,
    pub tls_verify: Option<Spanned<bool>>,
    pub tls_ca: Option<Spanned<String>>,
    // udp (and dns: expect)
    pub payload: Option<Spanned<String>>,
    pub payload_hex: Option<Spanned<String>>,
    pub expect: Option<Spanned<String>>,
    pub expect_hex: Option<Spanned<String>>,
    // dns
    pub name: Option<Spanned<String>>,
    #[serde(rename = "type")]
    pub record_type: Option<Spanned<String>>,
    // exec
    pub command: Option<Spanned<Vec<Spanned<String>>>>,
    pub dynamic_weight: Option<Spanned<bool>>,
}

/// `status`: one code (`200`), one range (`[200, 299]`) or a list of ranges
/// (`[[200, 299], [301, 302]]`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum Status {
    Code(i64),
    Range(Vec<i64>),
    Ranges(Vec<Vec<i64>>),
}

/// `passive`: passive failure detection in the data path.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Passive {
    pub failures: Option<Spanned<i64>>,
    pub syn_timeout: Option<Spanned<Seconds>>,
    pub backoff: Option<Spanned<Seconds>>,
    pub max_backoff: Option<Spanned<Seconds>>,
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
