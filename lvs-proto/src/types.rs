//! Request and response types of the control API ([`crate::LvsControl`]).
//!
//! Conventions:
//! - Addresses are family-agnostic `IpAddr` / `SocketAddr` (API level 5; before, IPv4
//!   only). JSON: `"203.0.113.10"`, `"198.51.100.7:40000"`, `"2001:db8:f::10"`,
//!   `"[2001:db8:c::10]:40000"` — an IPv4 address reads and writes exactly as it did at
//!   level 4, so older peers that only know IPv4 keep working with IPv4 services. Text forms
//!   (`Display`/`FromStr` of the keys) write an IPv6 address with a port in brackets, as
//!   ipvsadm does: `tcp [2001:db8:f::10]:80`.
//! - Protocols, forwarding methods and schedulers use the lower-case words of
//!   [`crate::Protocol`], [`crate::Forwarding`], [`crate::SchedulerKind`].
//! - Times are milliseconds: wall-clock instants as `*_unix_ms` (milliseconds since the Unix
//!   epoch, UTC), durations as `*_ms`.
//! - A virtual service is named by a [`ServiceKey`], a real server within it by a
//!   [`RealServerKey`]; both print the way the error messages and the CLI write them.
//! - Types may gain fields in later API levels; new fields are `#[serde(default)]` so that an
//!   older peer's JSON still reads. Enums that will grow ([`EventKind`]) read unknown variants
//!   as `Unknown` instead of failing.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Counters, Forwarding, Protocol, SchedulerKind};

/// The largest IPVS weight (ipvsadm accepts 0..=65535; 0 = quiesced).
pub const MAX_WEIGHT: u32 = 65535;

/// A virtual service's identity: protocol, VIP and virtual port (ipvsadm `-t VIP:PORT`).
///
/// Displays as `tcp 203.0.113.10:80`, or `tcp [2001:db8:f::10]:80` for an IPv6 VIP;
/// parses from that form or from a bare `VIP:PORT` (TCP). The VIP's family is the
/// service's family: its real servers are reached over the same family unless a tunnel
/// says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ServiceKey {
    /// Transport protocol.
    pub protocol: Protocol,
    /// Virtual IP (IPv4 or, from API level 5, IPv6).
    pub vip: IpAddr,
    /// Virtual port.
    pub port: u16,
}

impl ServiceKey {
    /// A TCP service.
    pub fn tcp(vip: impl Into<IpAddr>, port: u16) -> Self {
        ServiceKey {
            protocol: Protocol::Tcp,
            vip: vip.into(),
            port,
        }
    }

    /// A UDP service.
    pub fn udp(vip: impl Into<IpAddr>, port: u16) -> Self {
        ServiceKey {
            protocol: Protocol::Udp,
            vip: vip.into(),
            port,
        }
    }

    /// A TCP service on an IPv4 VIP (usable in `const` items).
    pub const fn tcp4(vip: Ipv4Addr, port: u16) -> Self {
        ServiceKey {
            protocol: Protocol::Tcp,
            vip: IpAddr::V4(vip),
            port,
        }
    }

    /// A UDP service on an IPv4 VIP (usable in `const` items).
    pub const fn udp4(vip: Ipv4Addr, port: u16) -> Self {
        ServiceKey {
            protocol: Protocol::Udp,
            vip: IpAddr::V4(vip),
            port,
        }
    }

    /// The VIP and port as a socket address (`[2001:db8:f::10]:80` when printed).
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.vip, self.port)
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.protocol, self.socket_addr())
    }
}

impl FromStr for ServiceKey {
    type Err = String;

    /// `tcp 203.0.113.10:80`, `udp 203.0.113.10:53`, `tcp [2001:db8:f::10]:80`, the same
    /// with a colon (`udp:[2001:db8:f::10]:53`, lvsctl's positional form), or
    /// `203.0.113.10:80` / `[2001:db8:f::10]:80` (TCP).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let lower = s.get(..4).map(str::to_ascii_lowercase);
        let (protocol, rest) = match s.split_once(char::is_whitespace) {
            None if lower.as_deref() == Some("tcp:") => (Protocol::Tcp, &s[4..]),
            None if lower.as_deref() == Some("udp:") => (Protocol::Udp, &s[4..]),
            Some((p, rest)) => {
                let protocol = match p.to_ascii_lowercase().as_str() {
                    "tcp" => Protocol::Tcp,
                    "udp" => Protocol::Udp,
                    other => {
                        return Err(format!("unknown protocol `{other}`: expected tcp or udp"));
                    }
                };
                (protocol, rest.trim())
            }
            None => (Protocol::Tcp, s),
        };
        let sa = parse_socket_addr(rest, "VIP:PORT", "203.0.113.10:80", "[2001:db8:f::10]:80")?;
        Ok(ServiceKey {
            protocol,
            vip: sa.ip(),
            port: sa.port(),
        })
    }
}

/// Parses `ADDR:PORT` of either family (`192.0.2.11:80`, `[2001:db8:b::11]:80`); the error
/// names what was expected (`what`, with an IPv4 and an IPv6 example) and says so when an
/// IPv6 address lacks its brackets.
pub fn parse_socket_addr(
    s: &str,
    what: &str,
    example4: &str,
    example6: &str,
) -> Result<SocketAddr, String> {
    let s = s.trim();
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Ok(sa);
    }
    // `2001:db8::1:80` is ambiguous (is `80` the port or the last group?): IPv6 needs
    // brackets, as in URLs and ipvsadm.
    if !s.starts_with('[') && s.matches(':').count() > 1 {
        return Err(format!(
            "`{s}` is not {what}: an IPv6 address takes brackets (e.g. {example6})"
        ));
    }
    Err(format!(
        "`{s}` is not {what} (e.g. {example4} or {example6})"
    ))
}

/// A real server's identity within a service: RIP and port (ipvsadm `-r RIP:PORT`).
///
/// Displays as `192.0.2.11:80` or `[2001:db8:b::11]:80`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RealServerKey {
    /// Real server IP (IPv4 or, from API level 5, IPv6).
    pub addr: IpAddr,
    /// Real server port.
    pub port: u16,
}

impl RealServerKey {
    /// The real server at `addr:port`.
    pub fn new(addr: impl Into<IpAddr>, port: u16) -> Self {
        RealServerKey {
            addr: addr.into(),
            port,
        }
    }

    /// An IPv4 real server (usable in `const` items).
    pub const fn new4(addr: Ipv4Addr, port: u16) -> Self {
        RealServerKey {
            addr: IpAddr::V4(addr),
            port,
        }
    }

    /// The address and port as a socket address.
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.addr, self.port)
    }
}

impl fmt::Display for RealServerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.socket_addr(), f)
    }
}

impl FromStr for RealServerKey {
    type Err = String;

    /// `192.0.2.11:80` or `[2001:db8:b::11]:80`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let sa = parse_socket_addr(s, "RIP:PORT", "192.0.2.11:80", "[2001:db8:b::11]:80")?;
        Ok(RealServerKey::from(sa))
    }
}

impl From<SocketAddr> for RealServerKey {
    fn from(sa: SocketAddr) -> Self {
        RealServerKey {
            addr: sa.ip(),
            port: sa.port(),
        }
    }
}

impl From<SocketAddrV4> for RealServerKey {
    fn from(sa: SocketAddrV4) -> Self {
        RealServerKey {
            addr: IpAddr::V4(*sa.ip()),
            port: sa.port(),
        }
    }
}

/// What [`crate::LvsControl::version`] answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// The daemon's version (its crate version, e.g. `0.1.0`).
    pub daemon: String,
    /// The API level: [`crate::API_LEVEL`] of the daemon's build. It grows by one whenever
    /// RPCs are added; existing RPCs never change.
    pub api: u32,
    /// The daemon's process id.
    pub pid: u32,
    /// When the daemon started.
    pub started_unix_ms: u64,
}

/// What the daemon lets a client do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// May read everything, change nothing.
    ReadOnly,
    /// May also change things (root, or a member of the configured admin group).
    Admin,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::ReadOnly => "read-only",
            Role::Admin => "admin",
        })
    }
}

/// Who a client is, as the daemon sees it: the peer credentials of its Unix socket, or, for
/// a client of the TLS listener, its certificate name and address ([`Actor::tls`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Actor {
    /// User id ([`Actor::NO_ID`] for a TLS client).
    pub uid: u32,
    /// Primary group id ([`Actor::NO_ID`] for a TLS client).
    pub gid: u32,
    /// Process id, when the kernel reported one.
    pub pid: Option<i32>,
    /// User name, when the daemon could resolve it.
    #[serde(default)]
    pub user: Option<String>,
    /// Set for a client of the TLS listener: who its certificate names and where it
    /// connected from (absent for Unix-socket clients, and from older daemons' JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsPeer>,
}

/// A client of the TLS listener, identified by its verified client certificate.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TlsPeer {
    /// The certificate's name that decided the role: the subject CN or a DNS name of its
    /// subject alternative names.
    pub name: String,
    /// The client's address and port.
    pub addr: std::net::SocketAddr,
}

impl Actor {
    /// The uid and gid of an actor that has none (a TLS client): `(uid_t)-1`.
    pub const NO_ID: u32 = u32::MAX;

    /// A TLS client named `name` (from its certificate) connected from `addr`.
    pub fn tls_client(name: String, addr: std::net::SocketAddr) -> Actor {
        Actor {
            uid: Actor::NO_ID,
            gid: Actor::NO_ID,
            pid: None,
            user: None,
            tls: Some(TlsPeer { name, addr }),
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(t) = &self.tls {
            return write!(f, "certificate `{}` (TLS client {})", t.name, t.addr);
        }
        match &self.user {
            Some(u) => write!(f, "{u} (uid {})", self.uid)?,
            None => write!(f, "uid {}", self.uid)?,
        }
        if let Some(pid) = self.pid {
            write!(f, " pid {pid}")?;
        }
        Ok(())
    }
}

/// What [`crate::LvsControl::whoami`] answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// The caller.
    pub actor: Actor,
    /// What the caller may do.
    pub role: Role,
}

/// IPVS-style rate estimates (ipvsadm `--rate`): averages over roughly the last 8 s, updated
/// every 2 s with an EWMA of weight 1/4, rounded to integers as the kernel reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rates {
    /// Connections per second.
    pub cps: u64,
    /// Packets per second from clients.
    pub inpps: u64,
    /// Packets per second from real servers (0 for DR).
    pub outpps: u64,
    /// Bytes per second from clients.
    pub inbps: u64,
    /// Bytes per second from real servers.
    pub outbps: u64,
}

/// A persistent service's settings (ipvsadm `-p`, `-M`).
///
/// The persistence granularity depends on the service's family, as in IPVS, which keeps
/// one `netmask` field that holds a dotted IPv4 mask for an IPv4 service and a prefix
/// length 1..=128 for an IPv6 one (ipvsadm `-M 255.255.255.0` vs `-M 64`; listed as
/// `mask 255.255.255.0` / `mask 64` when not the default /32 or /128). Here the two are
/// separate fields so that IPv4 JSON stays what it was before API level 5:
/// - an IPv4 service uses [`netmask`](Self::netmask) (default `255.255.255.255`);
/// - an IPv6 service uses [`prefix6`](Self::prefix6) (default 128; absent in JSON from
///   older peers, which only know IPv4 services).
///
/// The field of the other family is ignored. [`PersistenceInfo::mask_client`] applies
/// the right one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistenceInfo {
    /// Template timeout in seconds (`persistent N` in ipvsadm's listing).
    pub timeout_secs: u64,
    /// IPv4 client netmask: clients equal under it share a template (IPv4 services).
    pub netmask: Ipv4Addr,
    /// API level 5: IPv6 client prefix length: clients equal in their first `prefix6` bits
    /// share a template (IPv6 services; ipvsadm `-M 64`). IPVS and lvsd accept 1..=128;
    /// [`PersistenceInfo::mask_client`] reads anything above 128 as 128.
    #[serde(default = "default_prefix6")]
    pub prefix6: u8,
    /// A template whose real server has weight 0 is dropped (sysctl
    /// `expire_quiescent_template`).
    pub quiescent_template_expire: bool,
}

fn default_prefix6() -> u8 {
    128
}

impl PersistenceInfo {
    /// Persistence for `timeout_secs` with the default granularity (one template per
    /// client address: /32, /128).
    pub fn new(timeout_secs: u64) -> Self {
        PersistenceInfo {
            timeout_secs,
            netmask: Ipv4Addr::BROADCAST,
            prefix6: 128,
            quiescent_template_expire: false,
        }
    }

    /// `client` masked with the granularity of its family (the address a template of the
    /// client shows).
    pub fn mask_client(&self, client: IpAddr) -> IpAddr {
        match client {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & u32::from(self.netmask))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(
                u128::from(a) & prefix_mask_v6(self.prefix6.min(128)),
            )),
        }
    }

    /// The mask in ipvsadm's spelling for a service of `vip`'s family, or `None` when it
    /// is the default (/32, /128), which ipvsadm does not print: `255.255.255.0`, `64`.
    pub fn ipvsadm_mask(&self, vip: IpAddr) -> Option<String> {
        match vip {
            IpAddr::V4(_) => {
                (self.netmask != Ipv4Addr::BROADCAST).then(|| self.netmask.to_string())
            }
            IpAddr::V6(_) => (self.prefix6 < 128).then(|| self.prefix6.to_string()),
        }
    }
}

/// The IPv6 netmask of a prefix length (`len` at most 128).
fn prefix_mask_v6(len: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(len.min(128)))
        .unwrap_or(0)
}

/// The IPv4 netmask of a prefix length (`len` at most 32).
fn prefix_mask_v4(len: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(len.min(32)))
        .unwrap_or(0)
}

/// A real server of a service, with its load, counters and rates (ipvsadm `-Ln`,
/// `--stats`, `--rate`, `--thresholds`, `--persistent-conn` in one record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealServerInfo {
    /// Real server IP (IPv6 from API level 5).
    pub addr: IpAddr,
    /// Real server port.
    pub port: u16,
    /// Forwarding method.
    pub forwarding: Forwarding,
    /// Current weight (0 = quiesced: no new connections).
    pub weight: u32,
    /// Set while the server is drained: the weight it had before [`crate::LvsControl::drain`],
    /// which [`crate::LvsControl::undrain`] restores.
    pub drained_from: Option<u32>,
    /// Active connections (TCP ESTABLISHED and the SYN states).
    pub active: u32,
    /// Inactive connections (other TCP states, UDP).
    pub inactive: u32,
    /// Persistence templates pointing at it.
    pub persistent: u32,
    /// OVERLOAD: at its upper threshold, it gets no new connections.
    pub overloaded: bool,
    /// Upper connection threshold (ipvsadm `-x`; 0 = none).
    pub upper_threshold: u32,
    /// Lower connection threshold (ipvsadm `-y`; 0 = none).
    pub lower_threshold: u32,
    /// Cumulative counters since it was added or last zeroed.
    pub counters: Counters,
    /// Rate estimates.
    pub rates: Rates,
    /// API level 3: its health (active checks and passive detection), when a check is
    /// configured for it; `None` = not checked (always in service).
    #[serde(default)]
    pub health: Option<HealthInfo>,
    /// API level 3: this is the service's sorry server (keepalived `sorry_server`), in
    /// the scheduling list only while no real server is up or quorum is lost.
    #[serde(default)]
    pub sorry: bool,
    /// API level 3: whether it is in the scheduling list now. A real server whose health
    /// check failed (without `inhibit_on_failure`) is taken out of the list as keepalived
    /// does with IPVS (its connections continue) and put back at the head when it is up
    /// again; an idle sorry server is out of the list too.
    #[serde(default = "default_true")]
    pub in_service: bool,
}

fn default_true() -> bool {
    true
}

/// Up or down, as health checks see a real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthState {
    /// Passing: schedulable (given a weight above 0).
    Up,
    /// Failing: out of scheduling (or weight 0 with `inhibit_on_failure`).
    Down,
}

impl fmt::Display for HealthState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HealthState::Up => "UP",
            HealthState::Down => "DOWN",
        })
    }
}

/// The result of one health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckOutcome {
    /// Whether it passed.
    pub ok: bool,
    /// When it finished.
    pub at_unix_ms: u64,
    /// How long it took (connect to verdict), in microseconds.
    pub latency_us: u64,
    /// What was seen, in a few words (`HTTP 200`, `connect: connection refused`,
    /// `timeout after 500ms reading the status line`, `exit 3 (weight 1)`).
    pub message: String,
}

/// Passive failure detection: failed handshakes the data path saw for a real server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassiveInfo {
    /// Failed handshakes in a row (no SYN-ACK in time, or RST to a SYN).
    pub failed_handshakes: u32,
    /// How many in a row mark it down.
    pub threshold: u32,
    /// Whether passive detection has it down now.
    pub down: bool,
    /// While down: when it is tried again (milliseconds from now).
    pub retry_in_ms: Option<u64>,
    /// The current back-off between retries (doubles after each failed retry).
    pub backoff_ms: u64,
}

/// A real server's health: the configured check, its counters, last result and next run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthInfo {
    /// The check, in a few words (`http GET 192.0.2.11:80/health`, `tcp 192.0.2.11:80`,
    /// `exec /usr/local/bin/check`); `passive` when only passive detection is on.
    pub check: String,
    /// Up or down.
    pub state: HealthState,
    /// When it entered that state.
    pub since_unix_ms: u64,
    /// Consecutive successes so far (towards `rise` while down).
    pub successes: u32,
    /// Consecutive failures so far (towards `fall` while up).
    pub failures: u32,
    /// Consecutive successes that bring it up.
    pub rise: u32,
    /// Consecutive failures that take it down (keepalived `retry`).
    pub fall: u32,
    /// Time between checks (keepalived `delay_loop`).
    pub interval_ms: u64,
    /// Per-check timeout (keepalived `connect_timeout`).
    pub timeout_ms: u64,
    /// The last result, once a check finished.
    pub last: Option<CheckOutcome>,
    /// When the next check starts (milliseconds from now), if one is scheduled.
    pub next_in_ms: Option<u64>,
    /// Checks run since the daemon started.
    pub checks_total: u64,
    /// Failed checks since the daemon started (keepalived `realServerFailedChecks`).
    pub failures_total: u64,
    /// `inhibit_on_failure`: down means weight 0 (connections continue) instead of out of
    /// the scheduling list.
    pub inhibit_on_failure: bool,
    /// With an exec check and `dynamic_weight` (keepalived `misc_dynamic`): the weight the
    /// last check's exit code asked for.
    pub dynamic_weight: Option<u32>,
    /// Passive detection, when on.
    pub passive: Option<PassiveInfo>,
}

/// A service's quorum (keepalived `quorum` and `hysteresis`): the total weight of the
/// real servers that are up must reach `quorum` for the service to be served by them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumInfo {
    /// The total weight needed.
    pub quorum: u64,
    /// The hysteresis: quorum is lost below `quorum - hysteresis` and regained at
    /// `quorum + hysteresis`.
    pub hysteresis: u64,
    /// The total weight of the real servers that are up now.
    pub live_weight: u64,
    /// Whether the service has its quorum.
    pub up: bool,
}

impl RealServerInfo {
    /// Its key within its service.
    pub fn key(&self) -> RealServerKey {
        RealServerKey::new(self.addr, self.port)
    }
}

/// A virtual service with its real servers (ipvsadm `-Ln` and friends).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInfo {
    /// Transport protocol.
    pub protocol: Protocol,
    /// Virtual IP (IPv6 from API level 5).
    pub vip: IpAddr,
    /// Virtual port.
    pub port: u16,
    /// Scheduler.
    pub scheduler: SchedulerKind,
    /// Scheduler flags in ipvsadm's spelling (`sh-fallback`, `sh-port`, `mh-port`,
    /// `flag-3`, ...); empty when none is set.
    pub flags: Vec<String>,
    /// Persistence, when on.
    pub persistence: Option<PersistenceInfo>,
    /// One-packet scheduling (ipvsadm `-o`, shown as `ops`).
    pub one_packet: bool,
    /// Cumulative counters since the service was created or last zeroed.
    pub counters: Counters,
    /// Rate estimates.
    pub rates: Rates,
    /// Real servers in scheduling order (IPVS list order: the newest first, which is the
    /// order ipvsadm lists them in); from API level 3, the real servers out of service
    /// (health down, idle sorry server) follow, in configuration order.
    pub real_servers: Vec<RealServerInfo>,
    /// API level 3: its quorum state, when health checks are configured.
    #[serde(default)]
    pub quorum: Option<QuorumInfo>,
}

impl ServiceInfo {
    /// Its key.
    pub fn key(&self) -> ServiceKey {
        ServiceKey {
            protocol: self.protocol,
            vip: self.vip,
            port: self.port,
        }
    }
}

/// A weight change: what [`crate::LvsControl::set_weight`] and
/// [`crate::LvsControl::undrain`] answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightChange {
    /// The service.
    pub service: ServiceKey,
    /// The real server.
    pub real_server: RealServerKey,
    /// The weight before.
    pub old: u32,
    /// The weight now.
    pub new: u32,
}

/// A drain and its progress: what [`crate::LvsControl::drain`] and
/// [`crate::LvsControl::drain_status`] answer.
///
/// A drained server has weight 0: the scheduler sends it no new connections, but its
/// existing connections continue, and on a persistent service a client with a live
/// template still goes to it (as in IPVS) unless the service sets
/// `quiescent_template_expire`. The drain is complete when `connections_left` is 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainInfo {
    /// The service.
    pub service: ServiceKey,
    /// The real server.
    pub real_server: RealServerKey,
    /// The weight before the drain (restored by undrain).
    pub weight_before: u32,
    /// Active connections left.
    pub active: u32,
    /// Inactive connections left.
    pub inactive: u32,
    /// Persistence templates still pointing at it.
    pub persistent: u32,
    /// `active + inactive`: the progress figure; 0 = drained.
    pub connections_left: u64,
}

/// An IPv4 prefix, `198.51.100.0/24` (a bare address is a /32). See [`IpPrefix`] for
/// either family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Ipv4Prefix {
    /// Network address (host bits are ignored).
    pub addr: Ipv4Addr,
    /// Prefix length, 0..=32.
    pub len: u8,
}

impl Ipv4Prefix {
    /// Whether `ip` is inside the prefix (a length above 32 matches nothing).
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        if self.len > 32 {
            return false;
        }
        let mask = prefix_mask_v4(self.len);
        u32::from(ip) & mask == u32::from(self.addr) & mask
    }
}

impl fmt::Display for Ipv4Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Ipv4Prefix {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.parse::<IpPrefix>()? {
            IpPrefix {
                addr: IpAddr::V4(addr),
                len,
            } => Ok(Ipv4Prefix { addr, len }),
            IpPrefix { addr, .. } => Err(format!("`{addr}` is not an IPv4 address")),
        }
    }
}

/// An IPv4 or IPv6 prefix: `198.51.100.0/24`, `2001:db8:c::/64` (a bare address is a /32
/// or a /128). JSON `{"addr":"198.51.100.0","len":24}`, the same shape as
/// [`Ipv4Prefix`]'s, so an IPv4 prefix reads and writes as before API level 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IpPrefix {
    /// Network address (host bits are ignored).
    pub addr: IpAddr,
    /// Prefix length, 0..=32 (IPv4) or 0..=128 (IPv6).
    pub len: u8,
}

impl IpPrefix {
    /// Whether `ip` is inside the prefix. An address of the other family is not, and a
    /// length beyond the family's width matches nothing.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => Ipv4Prefix {
                addr: net,
                len: self.len,
            }
            .contains(ip),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                if self.len > 128 {
                    return false;
                }
                let mask = prefix_mask_v6(self.len);
                u128::from(ip) & mask == u128::from(net) & mask
            }
            _ => false,
        }
    }

    /// The widest prefix length of the address's family (32 or 128).
    fn max_len(addr: IpAddr) -> u8 {
        match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        }
    }
}

impl From<Ipv4Prefix> for IpPrefix {
    fn from(p: Ipv4Prefix) -> Self {
        IpPrefix {
            addr: IpAddr::V4(p.addr),
            len: p.len,
        }
    }
}

impl From<IpAddr> for IpPrefix {
    /// The host prefix of `addr` (/32 or /128).
    fn from(addr: IpAddr) -> Self {
        IpPrefix {
            addr,
            len: IpPrefix::max_len(addr),
        }
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for IpPrefix {
    type Err = String;

    /// `198.51.100.0/24`, `2001:db8:c::/64`, or a bare address (a host prefix).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{addr}` is not an IP address"))?;
        let max = IpPrefix::max_len(addr);
        let len = match len {
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|&l| l <= max)
                .ok_or_else(|| format!("`{l}` is not a prefix length 0..={max}"))?,
            None => max,
        };
        Ok(IpPrefix { addr, len })
    }
}

/// The largest page [`crate::LvsControl::connections`] returns.
pub const MAX_CONN_PAGE: u32 = 1000;

/// Which connection entries to list, and where to continue.
///
/// Every filter that is set must match. The listing is in a stable order (see
/// [`ConnCursor`]); pass the previous page's `next_cursor` to continue.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnQuery {
    /// Only this service's entries.
    pub service: Option<ServiceKey>,
    /// Only entries to this real server (any service unless `service` is set too).
    pub real_server: Option<RealServerKey>,
    /// Only clients inside this prefix (templates show the masked client address); a
    /// prefix of one family matches no client of the other.
    pub client_prefix: Option<IpPrefix>,
    /// Only entries in this state, by its ipvsadm name (`ESTABLISHED`, `TIME_WAIT`, `UDP`,
    /// `NONE` for persistence templates; case-insensitive).
    pub state: Option<String>,
    /// Continue after this entry (`None`: from the start).
    pub cursor: Option<ConnCursor>,
    /// Entries per page, 1..=[`MAX_CONN_PAGE`]; 0 means [`MAX_CONN_PAGE`].
    pub limit: u32,
}

/// A position in the connection listing: the sort key of the last entry returned.
///
/// Entries are ordered by (protocol, virtual address, virtual port, client address, client
/// port, real address, real port, template, entry id). A page holds the first `limit`
/// matching entries after the cursor as the table is *when that page is read*; so paging
/// never returns an entry twice and never skips one that exists for the whole walk, however
/// the table changes in between (entries created behind the cursor are not seen, entries
/// removed are not returned). Treat it as opaque: pass it back unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ConnCursor {
    /// Protocol.
    pub protocol: Protocol,
    /// Virtual address.
    pub vip: IpAddr,
    /// Virtual port.
    pub vport: u16,
    /// Client address.
    pub client: IpAddr,
    /// Client port.
    pub cport: u16,
    /// Real server address.
    pub rip: IpAddr,
    /// Real server port.
    pub rport: u16,
    /// A persistence template.
    pub template: bool,
    /// The daemon's entry id (ties only).
    pub id: u64,
}

/// One connection entry (a line of ipvsadm `-Lnc`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnEntry {
    /// Protocol.
    pub protocol: Protocol,
    /// Client address and port (`source`); a template shows the masked client and port 0.
    pub client: SocketAddr,
    /// Virtual address and port (`virtual`).
    pub virt: SocketAddr,
    /// Real server address and port (`destination`); with a 6in4/4in6 tunnel its family
    /// may differ from the virtual address's.
    pub real: SocketAddr,
    /// Forwarding method.
    pub forwarding: Forwarding,
    /// State as ipvsadm prints it (`ESTABLISHED`, `SYN_RECV`, `TIME_WAIT`, `UDP`, `NONE`).
    pub state: String,
    /// Idle time left before it expires (ipvsadm's `expire`, counting down).
    pub expires_in_ms: u64,
    /// Counted as an active connection.
    pub active: bool,
    /// A persistence template.
    pub template: bool,
    /// Its position in the listing.
    pub cursor: ConnCursor,
}

/// One page of the connection table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnPage {
    /// The entries, in listing order.
    pub entries: Vec<ConnEntry>,
    /// Where the next page starts; `None` when this page reached the end.
    pub next_cursor: Option<ConnCursor>,
    /// Entries in the whole table (matching or not) when the page was read.
    pub table_size: u64,
}

/// A scheduling decision with its explanation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionInfo {
    /// Sequence number: unique and increasing across the daemon, from 1.
    pub seq: u64,
    /// When it was made.
    pub at_unix_ms: u64,
    /// The service.
    pub service: ServiceKey,
    /// The client (the first packet's source).
    pub client: SocketAddr,
    /// The real server chosen; `None`: no server was available (the packet was dropped).
    pub real_server: Option<RealServerKey>,
    /// The service's scheduler.
    pub scheduler: SchedulerKind,
    /// Why, one step per line (`wlc picked 192.0.2.12:80: ...`, `persistence template hit`).
    pub reason: String,
}

/// A flow to ask [`crate::LvsControl::simulate`] about: a new connection from `client` to
/// `vip:port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowSpec {
    /// Protocol.
    pub protocol: Protocol,
    /// Client address and port (of the VIP's family to reach the service).
    pub client: SocketAddr,
    /// Virtual IP.
    pub vip: IpAddr,
    /// Virtual port.
    pub port: u16,
}

impl FlowSpec {
    /// The service the flow is addressed to.
    pub fn service(&self) -> ServiceKey {
        ServiceKey {
            protocol: self.protocol,
            vip: self.vip,
            port: self.port,
        }
    }
}

/// Where a flow would go now, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimulateInfo {
    /// The service.
    pub service: ServiceKey,
    /// The real server it would reach; `None`: it would be dropped (no server available).
    pub real_server: Option<RealServerKey>,
    /// Why, one step per line (an existing connection, a persistence template, or the
    /// scheduler's comparison).
    pub reason: String,
}

/// Something that happened in the daemon, with its sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Sequence number: consecutive from 1 (no gaps), so a poller that sees `seq` jump
    /// past `since + 1` knows the daemon's bounded ring dropped the ones in between.
    pub seq: u64,
    /// When it happened.
    pub at_unix_ms: u64,
    /// What happened.
    pub kind: EventKind,
}

/// What an [`Event`] records. Unknown kinds (from a newer daemon) read as
/// [`EventKind::Unknown`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// The daemon started (the first event).
    Started {
        /// The daemon's version.
        version: String,
    },
    /// A weight was set through the API.
    WeightChanged {
        /// The service.
        service: ServiceKey,
        /// The real server.
        real_server: RealServerKey,
        /// The weight before.
        old: u32,
        /// The weight after.
        new: u32,
        /// Who set it.
        by: Actor,
    },
    /// A real server was drained (weight set to 0, the old weight remembered).
    Drained {
        /// The service.
        service: ServiceKey,
        /// The real server.
        real_server: RealServerKey,
        /// The weight before.
        weight_before: u32,
        /// Who drained it.
        by: Actor,
    },
    /// A drained real server got its weight back.
    Undrained {
        /// The service.
        service: ServiceKey,
        /// The real server.
        real_server: RealServerKey,
        /// The weight restored.
        weight: u32,
        /// Who undrained it.
        by: Actor,
    },
    /// Counters were zeroed (ipvsadm `-Z`).
    CountersZeroed {
        /// The service, or `None` for all.
        service: Option<ServiceKey>,
        /// Who zeroed them.
        by: Actor,
    },
    /// The configuration file was re-read (SIGHUP).
    Reloaded {
        /// Whether the new configuration is running (else the old one still is).
        ok: bool,
        /// What happened, in a sentence (the error on failure).
        message: String,
    },
    /// A connection entry or persistence template was removed through the API.
    ConnectionKilled {
        /// Protocol.
        protocol: Protocol,
        /// Client address and port (a template: the masked client and port 0).
        client: SocketAddr,
        /// Virtual address and port.
        virt: SocketAddr,
        /// Real server address and port.
        real: SocketAddr,
        /// A persistence template.
        template: bool,
        /// Who removed it.
        by: Actor,
    },
    /// The running configuration was written to a file.
    ConfigSaved {
        /// The file.
        path: String,
        /// Who saved it.
        by: Actor,
    },
    /// A virtual service was added through the API.
    ServiceAdded {
        /// The service.
        service: ServiceKey,
        /// Who added it.
        by: Actor,
    },
    /// A virtual service was removed through the API (its connections with it).
    ServiceRemoved {
        /// The service.
        service: ServiceKey,
        /// Who removed it.
        by: Actor,
    },
    /// A real server was added through the API.
    RealServerAdded {
        /// The service.
        service: ServiceKey,
        /// The real server.
        real_server: RealServerKey,
        /// Its weight.
        weight: u32,
        /// Who added it.
        by: Actor,
    },
    /// A real server was removed through the API (its connections drain as in IPVS).
    RealServerRemoved {
        /// The service.
        service: ServiceKey,
        /// The real server.
        real_server: RealServerKey,
        /// Who removed it.
        by: Actor,
    },
    /// API level 3: a real server went up or down (health check or passive detection).
    HealthChanged {
        /// The service.
        service: ServiceKey,
        /// The real server.
        real_server: RealServerKey,
        /// Up or down now.
        state: HealthState,
        /// The check that decided (`http GET 192.0.2.11:80/health`, `passive`, ...).
        check: String,
        /// Why, in a sentence: what failed or passed, after how many tries
        /// (`3 failures in a row (fall 3): connect: connection refused`).
        reason: String,
    },
    /// API level 3: a service lost or regained its quorum.
    QuorumChanged {
        /// The service.
        service: ServiceKey,
        /// Whether it has its quorum now.
        up: bool,
        /// The live weight at the change.
        live_weight: u64,
        /// The quorum.
        quorum: u64,
    },
    /// API level 3: a service's sorry server went into or out of service.
    SorryServer {
        /// The service.
        service: ServiceKey,
        /// The sorry server.
        real_server: RealServerKey,
        /// In service now.
        active: bool,
    },
    /// API level 3: a VRRP instance changed state.
    VrrpTransition {
        /// The instance's name.
        instance: String,
        /// The state before.
        from: VrrpState,
        /// The state now.
        to: VrrpState,
        /// Why (`master down timer expired`, `higher priority advert from 203.0.113.3`,
        /// `priority 0 advert`, `interface int0 down`, ...).
        reason: String,
    },
    /// A kind this client does not know (sent by a newer daemon).
    #[serde(other)]
    Unknown,
}

/// A connection entry's identity: protocol, client and virtual address and port (the
/// `source` and `virtual` columns of ipvsadm `-Lnc`). Displays as
/// `tcp 198.51.100.7:40000 -> 203.0.113.10:80` (IPv6:
/// `tcp [2001:db8:c::10]:40000 -> [2001:db8:f::10]:80`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConnKey {
    /// Protocol.
    pub protocol: Protocol,
    /// Client address and port.
    pub client: SocketAddr,
    /// Virtual address and port.
    pub virt: SocketAddr,
}

impl fmt::Display for ConnKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} -> {}", self.protocol, self.client, self.virt)
    }
}

/// A persistence template's identity: its service and the client address as the listing
/// shows it (masked with the service's persistence netmask). Displays as
/// `template tcp 203.0.113.10:80 client 198.51.100.0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TemplateKey {
    /// The service.
    pub service: ServiceKey,
    /// The (masked) client address.
    pub client: IpAddr,
}

impl fmt::Display for TemplateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "template {} client {}", self.service, self.client)
    }
}

/// A virtual service to add ([`crate::LvsControl::add_service`]; ipvsadm `-A`), without
/// real servers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewService {
    /// Protocol, VIP and port.
    pub service: ServiceKey,
    /// Scheduler.
    pub scheduler: SchedulerKind,
    /// Scheduler flags in ipvsadm's spelling (`sh-port`, ...; sh and mh only).
    #[serde(default)]
    pub flags: Vec<String>,
    /// The default forwarding method of its real servers.
    pub forwarding: Forwarding,
    /// Persistence (ipvsadm `-p`, `-M`), if on.
    #[serde(default)]
    pub persistence: Option<PersistenceInfo>,
    /// One-packet scheduling (ipvsadm `-o`; UDP only).
    #[serde(default)]
    pub one_packet: bool,
}

/// A real server to add ([`crate::LvsControl::add_real_server`]; ipvsadm `-a`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRealServer {
    /// RIP and port.
    pub real_server: RealServerKey,
    /// Weight, 0..=[`MAX_WEIGHT`].
    pub weight: u32,
    /// Forwarding method; `None`: the service's default.
    #[serde(default)]
    pub forwarding: Option<Forwarding>,
    /// Upper connection threshold (ipvsadm `-x`; 0 = none).
    #[serde(default)]
    pub upper_threshold: u32,
    /// Lower connection threshold (ipvsadm `-y`; 0 = none).
    #[serde(default)]
    pub lower_threshold: u32,
}

/// What [`crate::LvsControl::topology`] answers: where things are and how they are reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    /// The interfaces lvsd forwards on (up, with an Ethernet address; not `lo`).
    pub interfaces: Vec<InterfaceInfo>,
    /// Every VIP and the interface it lives on.
    pub vips: Vec<VipInfo>,
    /// The director's own addresses towards the real servers (DIPs): the source address of
    /// its ARP requests (IPv6: neighbor solicitations) to each next hop, deduplicated.
    pub dips: Vec<IpAddr>,
    /// How each real server of each service is reached.
    pub real_servers: Vec<RealServerRoute>,
    /// This director's VRRP role, when lvsd knows it (`master`, `backup`); `None` without
    /// VRRP.
    #[serde(default)]
    pub vrrp_role: Option<String>,
}

/// An interface of the director.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceInfo {
    /// Name (`eth0`).
    pub name: String,
    /// Kernel interface index.
    pub ifindex: u32,
    /// Ethernet address, `02:00:00:00:01:01`.
    pub mac: String,
    /// Its addresses: IPv4, then (API level 5) IPv6 (global and link-local).
    pub addresses: Vec<IpAddr>,
    /// MTU.
    pub mtu: u32,
}

/// A VIP and where it lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VipInfo {
    /// The address.
    pub addr: IpAddr,
    /// The interface it is on.
    pub interface: String,
    /// lvsd added it (and removes it on exit); false: it was there already.
    pub added_by_lvsd: bool,
}

/// How a real server is reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealServerRoute {
    /// The service.
    pub service: ServiceKey,
    /// The real server.
    pub real_server: RealServerKey,
    /// Forwarding method.
    pub forwarding: Forwarding,
    /// The interface packets to it leave by.
    pub interface: String,
    /// The next hop (the real server itself when it is on an attached network); IPv6 next
    /// hops may be link-local (`fe80::1`).
    pub next_hop: IpAddr,
    /// The director's address on that path (DIP).
    pub source: IpAddr,
    /// The next hop's Ethernet address, once it answered ARP (IPv6: neighbor discovery).
    pub next_hop_mac: Option<String>,
}

/// What [`crate::LvsControl::save_config`] answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedConfig {
    /// The file written.
    pub path: String,
    /// Virtual services written.
    pub services: u32,
    /// Real servers written (over all services).
    pub real_servers: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_print_and_parse() {
        let k = ServiceKey::tcp(Ipv4Addr::new(203, 0, 113, 10), 81);
        assert_eq!(k.to_string(), "tcp 203.0.113.10:81");
        assert_eq!("tcp 203.0.113.10:81".parse::<ServiceKey>(), Ok(k));
        assert_eq!("203.0.113.10:81".parse::<ServiceKey>(), Ok(k));
        assert_eq!(
            "UDP 203.0.113.10:53".parse::<ServiceKey>(),
            Ok(ServiceKey::udp(Ipv4Addr::new(203, 0, 113, 10), 53))
        );
        assert!("sctp 203.0.113.10:81".parse::<ServiceKey>().is_err());
        assert!("203.0.113.10".parse::<ServiceKey>().is_err());
        let r = RealServerKey::new(Ipv4Addr::new(192, 0, 2, 11), 80);
        assert_eq!(r.to_string(), "192.0.2.11:80");
        assert_eq!("192.0.2.11:80".parse::<RealServerKey>(), Ok(r));
    }

    #[test]
    fn prefixes() {
        let p: Ipv4Prefix = "198.51.100.0/24".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(p.contains(Ipv4Addr::new(198, 51, 100, 77)));
        assert!(!p.contains(Ipv4Addr::new(198, 51, 101, 1)));
        let all: Ipv4Prefix = "0.0.0.0/0".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(all.contains(Ipv4Addr::new(1, 2, 3, 4)));
        let host: Ipv4Prefix = "192.0.2.1".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(host.len, 32);
        assert!("192.0.2.0/33".parse::<Ipv4Prefix>().is_err());
    }

    #[test]
    fn json_shapes() {
        let k = ServiceKey::tcp(Ipv4Addr::new(203, 0, 113, 10), 80);
        assert_eq!(
            serde_json::to_string(&k).ok().as_deref(),
            Some(r#"{"protocol":"tcp","vip":"203.0.113.10","port":80}"#)
        );
        let e = EventKind::Reloaded {
            ok: true,
            message: "reloaded".into(),
        };
        let json = serde_json::to_string(&e).unwrap_or_default();
        assert_eq!(
            json,
            r#"{"type":"reloaded","ok":true,"message":"reloaded"}"#
        );
        // A kind from a newer daemon still reads.
        let unknown: EventKind =
            serde_json::from_str(r#"{"type":"sync_peer_lost","peer":"203.0.113.3"}"#)
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(unknown, EventKind::Unknown);
    }

    fn v6(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn ipv6_keys_print_and_parse_with_brackets() {
        let k = ServiceKey::tcp(v6("2001:db8:f::10"), 80);
        assert_eq!(k.to_string(), "tcp [2001:db8:f::10]:80");
        assert_eq!("tcp [2001:db8:f::10]:80".parse::<ServiceKey>(), Ok(k));
        assert_eq!("[2001:db8:f::10]:80".parse::<ServiceKey>(), Ok(k));
        assert_eq!("TCP:[2001:db8:f::10]:80".parse::<ServiceKey>(), Ok(k));
        assert_eq!(
            "udp:203.0.113.10:53".parse::<ServiceKey>(),
            Ok(ServiceKey::udp4(Ipv4Addr::new(203, 0, 113, 10), 53))
        );
        assert!("sctp:[2001:db8:f::10]:80".parse::<ServiceKey>().is_err());
        assert_eq!(
            "udp  [2001:db8:f::10]:53 ".parse::<ServiceKey>(),
            Ok(ServiceKey::udp(v6("2001:db8:f::10"), 53))
        );
        // Without brackets the port cannot be told from the address: refused, saying why.
        let err = "tcp 2001:db8:f::10:80"
            .parse::<ServiceKey>()
            .err()
            .unwrap_or_default();
        assert!(err.contains("brackets"), "{err}");
        assert!("[2001:db8:f::10]".parse::<ServiceKey>().is_err());
        assert!("[2001:db8:f::10]:65536".parse::<ServiceKey>().is_err());

        let r = RealServerKey::new(v6("2001:db8:b::11"), 8080);
        assert_eq!(r.to_string(), "[2001:db8:b::11]:8080");
        assert_eq!("[2001:db8:b::11]:8080".parse::<RealServerKey>(), Ok(r));
        assert!("2001:db8:b::11:8080".parse::<RealServerKey>().is_err());
        let sa: SocketAddr = "[2001:db8:b::11]:8080"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(RealServerKey::from(sa), r);

        let conn = ConnKey {
            protocol: Protocol::Tcp,
            client: "[2001:db8:c::10]:40000"
                .parse()
                .unwrap_or_else(|e| panic!("{e}")),
            virt: k.socket_addr(),
        };
        assert_eq!(
            conn.to_string(),
            "tcp [2001:db8:c::10]:40000 -> [2001:db8:f::10]:80"
        );
        // The families order IPv4 first, so listings keep IPv4 services on top.
        assert!(ServiceKey::tcp4(Ipv4Addr::new(255, 255, 255, 255), 65535) < k);
        assert_eq!(
            ServiceKey::tcp4(Ipv4Addr::new(203, 0, 113, 10), 80),
            ServiceKey::tcp(Ipv4Addr::new(203, 0, 113, 10), 80)
        );
    }

    #[test]
    fn ip_prefixes_of_both_families() {
        let p: IpPrefix = "2001:db8:c::/64".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.len, 64);
        assert!(p.contains(v6("2001:db8:c::10")));
        assert!(p.contains(v6("2001:db8:c:0:ffff:ffff:ffff:ffff")));
        assert!(!p.contains(v6("2001:db8:c:1::10")));
        assert!(!p.contains(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7))));
        assert_eq!(p.to_string(), "2001:db8:c::/64");
        let host: IpPrefix = "2001:db8:c::10".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(host.len, 128);
        assert!(host.contains(v6("2001:db8:c::10")));
        assert!(!host.contains(v6("2001:db8:c::11")));
        let all: IpPrefix = "::/0".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(all.contains(v6("fe80::1")));
        assert!(!all.contains(IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4))));
        assert!("2001:db8::/129".parse::<IpPrefix>().is_err());
        assert!("192.0.2.0/33".parse::<IpPrefix>().is_err());
        assert!("2001:db8::/64".parse::<Ipv4Prefix>().is_err());
        let v4: IpPrefix = "198.51.100.0/24".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(v4.contains(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 77))));
        assert!(!v4.contains(v6("::ffff:198.51.100.77")));
        let old: Ipv4Prefix = "198.51.100.0/24".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(IpPrefix::from(old), v4);
        // Same JSON as Ipv4Prefix for IPv4.
        assert_eq!(
            serde_json::to_string(&v4).ok(),
            serde_json::to_string(&old).ok()
        );
        let bad = IpPrefix {
            addr: v6("2001:db8::"),
            len: 200,
        };
        assert!(!bad.contains(v6("2001:db8::1")));
    }

    #[test]
    fn ipv6_json_and_ipv4_json_unchanged() {
        let k = ServiceKey::tcp(v6("2001:db8:f::10"), 80);
        let json = serde_json::to_string(&k).unwrap_or_default();
        assert_eq!(
            json,
            r#"{"protocol":"tcp","vip":"2001:db8:f::10","port":80}"#
        );
        let back: ServiceKey = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, k);
        // A level-4 peer's IPv4 JSON reads into the new types.
        let d: DecisionInfo = serde_json::from_str(
            r#"{"seq":1,"at_unix_ms":2,"service":{"protocol":"tcp","vip":"203.0.113.10","port":80},
               "client":"198.51.100.7:40000","real_server":{"addr":"192.0.2.11","port":80},
               "scheduler":"rr","reason":"rr"}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.client, SocketAddr::from(([198, 51, 100, 7], 40000)));
        let d6 = DecisionInfo {
            client: "[2001:db8:c::10]:40000"
                .parse()
                .unwrap_or_else(|e| panic!("{e}")),
            ..d.clone()
        };
        let json = serde_json::to_string(&d6).unwrap_or_default();
        assert!(
            json.contains(r#""client":"[2001:db8:c::10]:40000""#),
            "{json}"
        );
        let back: DecisionInfo = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, d6);
        // And it writes the IPv4 one exactly as level 4 did.
        let json4 = serde_json::to_string(&d).unwrap_or_default();
        assert!(
            json4.contains(r#""client":"198.51.100.7:40000""#),
            "{json4}"
        );
        assert!(json4.contains(r#""vip":"203.0.113.10""#), "{json4}");
    }

    #[test]
    fn persistence_granularity_per_family() {
        // Older JSON has no prefix6: it defaults to 128.
        let p: PersistenceInfo = serde_json::from_str(
            r#"{"timeout_secs":300,"netmask":"255.255.255.0","quiescent_template_expire":false}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.prefix6, 128);
        assert_eq!(
            p.mask_client(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7))),
            IpAddr::V4(Ipv4Addr::new(198, 51, 100, 0))
        );
        assert_eq!(p.mask_client(v6("2001:db8:c::10")), v6("2001:db8:c::10"));
        assert_eq!(
            p.ipvsadm_mask(IpAddr::V4(Ipv4Addr::UNSPECIFIED)).as_deref(),
            Some("255.255.255.0")
        );
        assert_eq!(p.ipvsadm_mask(v6("2001:db8:f::10")), None);
        let p6 = PersistenceInfo {
            prefix6: 64,
            ..PersistenceInfo::new(300)
        };
        assert_eq!(p6.mask_client(v6("2001:db8:c::10")), v6("2001:db8:c::"));
        assert_eq!(
            p6.mask_client(v6("2001:db8:c:1:2:3:4:5")),
            v6("2001:db8:c:1::")
        );
        assert_eq!(p6.ipvsadm_mask(v6("2001:db8:f::10")).as_deref(), Some("64"));
        assert_eq!(p6.ipvsadm_mask(IpAddr::V4(Ipv4Addr::UNSPECIFIED)), None);
        let zero = PersistenceInfo { prefix6: 0, ..p6 };
        assert_eq!(zero.mask_client(v6("2001:db8:c::10")), v6("::"));
        let json = serde_json::to_string(&p6).unwrap_or_default();
        assert!(json.contains(r#""prefix6":64"#), "{json}");
        let back: PersistenceInfo = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, p6);
    }
}

/// A VRRP instance's state (RFC 9568 section 6.4; keepalived's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VrrpState {
    /// Not started yet.
    Init,
    /// Backup: holds no VIP and forwards nothing.
    Backup,
    /// Master: holds the VIPs and forwards.
    Master,
    /// Fault: a tracked interface is down.
    Fault,
}

impl fmt::Display for VrrpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VrrpState::Init => "INIT",
            VrrpState::Backup => "BACKUP",
            VrrpState::Master => "MASTER",
            VrrpState::Fault => "FAULT",
        })
    }
}

/// One VRRP instance of a director (API level 3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VrrpInstanceInfo {
    /// Its name (`VI_1`).
    pub name: String,
    /// The interface it runs on.
    pub interface: String,
    /// Virtual router id (1..=255).
    pub vrid: u8,
    /// VRRP version (2 or 3).
    pub version: u8,
    /// State now.
    pub state: VrrpState,
    /// Configured priority.
    pub priority: u8,
    /// Priority in effect (0 while stopping).
    pub effective_priority: u8,
    /// Advertisement interval in effect (v3: the master's, adopted by backups).
    pub advert_interval_ms: u64,
    /// Preemption on (keepalived: not `nopreempt`).
    pub preempt: bool,
    /// The current master's primary address, if known (ourselves when master).
    pub master: Option<IpAddr>,
    /// The current master's priority, if known.
    pub master_priority: Option<u8>,
    /// The virtual addresses (IPv6 from API level 5).
    pub vips: Vec<IpPrefix>,
    /// The sync group it belongs to, if any.
    pub sync_group: Option<String>,
    /// Adverts sent.
    pub adverts_sent: u64,
    /// Adverts received (accepted).
    pub adverts_received: u64,
    /// Times it became master.
    pub became_master: u64,
    /// State transitions.
    pub transitions: u64,
    /// When the last transition happened, if any.
    pub last_transition_unix_ms: Option<u64>,
    /// Why the last transition happened.
    pub last_reason: String,
    /// Rejected adverts by reason (`ttl`, `version`, `length`, `checksum`, `vrid`,
    /// `unicast_peer`, ...), only the non-zero ones.
    pub rejected: Vec<(String, u64)>,
}
