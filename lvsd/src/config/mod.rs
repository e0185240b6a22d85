//! The lvsd configuration file (TOML).
//!
//! Contract: the keys documented in README.md are stable; keys may be added, never renamed.
//! Unknown keys are errors. Every error names the file, the line and the key, so
//! `lvsd check --config FILE` can point an operator at the exact spot.
//!
//! Parsing happens in two steps: serde reads the file into `raw` structs that keep the
//! source span of every value, then [`Config::from_raw`] validates and turns them into the
//! typed [`Config`]. Nothing outside this module sees an unvalidated value.
//!
//! Addresses are IPv4 or IPv6. Invariants of a validated service: every NAT or DR real
//! server, and the sorry server, has the VIP's family (only TUN destinations may differ,
//! as in IPVS); no address is unspecified, loopback, multicast, IPv6 link-local or
//! IPv4-mapped; [`Persistence::netmask`] matters for IPv4 services and
//! [`Persistence::prefix6`] (1..=128) for IPv6 ones.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lvs_proto::{Forwarding, Protocol, SchedulerKind};

use crate::sched::{self, SchedFlags};

mod check;
mod raw;
mod vrrp;
mod write;

pub use vrrp::{VrrpInstance, VrrpSyncGroup};

/// ipvsadm's persistence timeout when `-p` is given without a number.
pub const DEFAULT_PERSISTENCE_TIMEOUT: Duration = Duration::from_secs(300);
/// The longest persistence timeout lvsd accepts (31 days).
pub const MAX_PERSISTENCE_TIMEOUT: Duration = Duration::from_secs(31 * 24 * 3600);
/// The largest connection threshold (ipvsadm takes 0..=INT_MAX).
pub const MAX_THRESHOLD: u32 = i32::MAX as u32;

/// A validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Virtual services in file order.
    pub services: Vec<VirtualService>,
    /// Connection timeouts (ipvsadm `--set tcp tcpfin udp`).
    pub timeouts: TimeoutSettings,
    /// The control API's listener (`[control]`).
    pub control: ControlSettings,
    /// The packet I/O backend (`[io]`; read at startup only).
    pub io: IoSettings,
    /// `[[vrrp_instance]]` tables in file order; when any exists, VRRP owns every VIP.
    pub vrrp_instances: Vec<VrrpInstance>,
    /// `[[vrrp_sync_group]]` tables in file order.
    pub vrrp_sync_groups: Vec<VrrpSyncGroup>,
}

/// How lvsd reads and writes frames (`[io]`). Read at startup only: a reload keeps the
/// running backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoSettings {
    /// `backend`: mmap rings (default) or one system call per frame.
    pub backend: IoBackend,
    /// `ring_frames`: slots of each interface's RX ring, 16..=65536 (default 4096). RX
    /// slots hold one frame of the largest MTU (2 KiB at 1500; longer frames go through
    /// the socket's receive queue); the TX ring gets at most 256 slots of 68 KiB; both are
    /// rounded up to whole ring blocks, see `io::ring`.
    pub ring_frames: u32,
}

/// `[io] backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoBackend {
    /// `"ring"`: TPACKET_V2 RX and TX rings (`io::ring`).
    Ring,
    /// `"socket"`: `recvmsg`/`sendmsg` per frame (`io::PacketSocket`), the fallback.
    Socket,
}

impl IoBackend {
    /// The name in the file.
    pub fn name(self) -> &'static str {
        match self {
            IoBackend::Ring => "ring",
            IoBackend::Socket => "socket",
        }
    }
}

/// Fewest and most `[io] ring_frames`.
pub const RING_FRAMES: std::ops::RangeInclusive<u32> = 16..=65536;

impl Default for IoSettings {
    fn default() -> Self {
        IoSettings {
            backend: IoBackend::Ring,
            ring_frames: 4096,
        }
    }
}

/// Where and how the control API listens (`[control]`). Read at startup only: a reload
/// keeps the running listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlSettings {
    /// The Unix socket (absolute path; default [`lvs_proto::DEFAULT_SOCKET`]).
    pub socket: PathBuf,
    /// The socket's permission bits (default `0o660`): who may connect at all.
    pub socket_mode: u32,
    /// The group the socket is given (default: the daemon's own).
    pub socket_group: Option<String>,
    /// Members of this group (and root) may change things; everyone else who can connect
    /// may only read.
    pub admin_group: Option<String>,
    /// A file every mutating call is appended to, besides the log (`audit` target).
    pub audit_log: Option<PathBuf>,
    /// A connection without a request for this long is closed (default 120 s).
    pub idle_timeout: Duration,
    /// The optional TCP listener with mutual TLS (`tls_listen` and the other `tls_*` keys).
    pub tls: Option<TlsSettings>,
}

/// The TCP listener with mutual TLS (`[control] tls_*`). The files are read when the
/// listener starts, not while the configuration is validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// Where it listens (`tls_listen`); never a wildcard address unless `allow_wildcard`.
    pub listen: SocketAddr,
    /// The daemon's certificate chain, PEM (`tls_cert`).
    pub cert: PathBuf,
    /// The daemon's private key, PEM (`tls_key`).
    pub key: PathBuf,
    /// The CA(s) client certificates must be signed by, PEM (`tls_client_ca`); a client
    /// certificate is required.
    pub client_ca: PathBuf,
    /// Client certificate names (subject CN or DNS SAN) that get the admin role
    /// (`tls_admin_names`); every other verified client is read-only.
    pub admin_names: Vec<String>,
    /// Whether `listen` may be 0.0.0.0 or [::] (`tls_allow_wildcard`, default false).
    pub allow_wildcard: bool,
}

impl Default for ControlSettings {
    fn default() -> Self {
        ControlSettings {
            socket: PathBuf::from(lvs_proto::DEFAULT_SOCKET),
            socket_mode: 0o660,
            socket_group: None,
            admin_group: None,
            audit_log: None,
            idle_timeout: Duration::from_secs(120),
            tls: None,
        }
    }
}

/// One virtual service (ipvsadm `-A`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualService {
    /// Transport protocol.
    pub protocol: Protocol,
    /// The virtual IP, IPv4 or IPv6 (the service's family).
    pub vip: IpAddr,
    /// The virtual port.
    pub port: u16,
    /// Scheduler.
    pub scheduler: SchedulerKind,
    /// Scheduler flags (ipvsadm `-b`), valid for `scheduler`.
    pub scheduler_flags: SchedFlags,
    /// Default forwarding method of this service's real servers.
    pub forwarding: Forwarding,
    /// Persistence (ipvsadm `-p`, `-M`), if on.
    pub persistence: Option<Persistence>,
    /// One-packet scheduling (ipvsadm `-o`); only ever true for UDP.
    pub one_packet: bool,
    /// Real servers in file order (lvsd adds them to the scheduling list one by one at the
    /// head, as keepalived does with IPVS, so the list order is the reverse of this).
    pub real_servers: Vec<RealServer>,
    /// The service's default health check (`[virtual_server.health_check]`) as written;
    /// each real server's effective check is in [`RealServer::health_check`].
    pub health_check: Option<HealthCheck>,
    /// Passive failure detection (`[virtual_server.passive]`): TCP services whose real
    /// servers are all NAT (the director must see the SYN-ACKs).
    pub passive: Option<PassiveCheck>,
    /// keepalived `sorry_server`: in the scheduling list only while no real server is up or
    /// the quorum is lost.
    pub sorry_server: Option<SorryServer>,
    /// keepalived `quorum` (default 1): the total weight of the live real servers the
    /// service needs to be served by them.
    pub quorum: u64,
    /// keepalived `hysteresis` (default 0, always below `quorum`): quorum is lost below
    /// `quorum - hysteresis` and regained at `quorum + hysteresis`.
    pub hysteresis: u64,
}

/// One real server (ipvsadm `-a`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealServer {
    /// Real server IP (RIP): the service's family, unless `forwarding` is TUN (IPVS allows
    /// mixed families for tunnels only: 4in6, 6in4).
    pub addr: IpAddr,
    /// Real server port; equals the virtual port for DR.
    pub port: u16,
    /// Weight 0..=65535; 0 means quiesced (no new connections).
    pub weight: u32,
    /// Forwarding method (the service default unless overridden).
    pub forwarding: Forwarding,
    /// Connection upper threshold (ipvsadm `-x`); 0 = none.
    pub upper_threshold: u32,
    /// Connection lower threshold (ipvsadm `-y`); 0 = none (then OVERLOAD clears below
    /// 3/4 of the upper threshold).
    pub lower_threshold: u32,
    /// The EFFECTIVE health check: its own table, else the service's default; `None` =
    /// not checked (always in service).
    pub health_check: Option<HealthCheck>,
    /// Whether `health_check` was written in the server's own table (so `save_config`
    /// writes it there and not the service default again).
    pub own_health_check: bool,
}

/// Default `interval` (keepalived `delay_loop`): keepalived's own default of 60 s reacts too
/// slowly for a director, lvsd checks every 5 s.
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(5);
/// Default `timeout` (keepalived `connect_timeout`, 5 s), shortened to `interval` when that
/// is shorter.
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// Shortest `interval`.
pub const MIN_CHECK_INTERVAL: Duration = Duration::from_millis(100);
/// Longest `interval` and `warmup`.
pub const MAX_CHECK_INTERVAL: Duration = Duration::from_secs(3600);

/// An active health check (`health_check` table), validated.
///
/// Invariants: `1 <= rise, fall <= 100`; `MIN_CHECK_INTERVAL <= interval <=
/// MAX_CHECK_INTERVAL`; `0 < timeout <= interval`; `warmup <= MAX_CHECK_INTERVAL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// What is checked, with its kind-specific settings (`kind = ...`).
    pub kind: CheckKind,
    /// Start-to-start time between checks (keepalived `delay_loop`; default 5 s).
    pub interval: Duration,
    /// The whole check (connect, send, read, verdict) must finish within this (keepalived
    /// `connect_timeout`; default 5 s or `interval` if shorter).
    pub timeout: Duration,
    /// Consecutive successes that bring a down server up (default 1).
    pub rise: u32,
    /// Consecutive failures that take an up server down (keepalived `retry`; default 1).
    pub fall: u32,
    /// keepalived `alpha`: start down until the first `rise` successes (default false: up).
    pub alpha: bool,
    /// keepalived `warmup`: the first check starts after a random delay in `0..warmup`
    /// (default 0: at once), spreading the checks of many servers.
    pub warmup: Duration,
    /// keepalived `inhibit_on_failure`: down means weight 0 (connections continue) rather
    /// than out of the scheduling list.
    pub inhibit_on_failure: bool,
    /// Check this address instead of the real server's (keepalived `connect_ip`); either
    /// family, whatever the real server's.
    pub connect_ip: Option<IpAddr>,
    /// Check this port instead of the real server's (keepalived `connect_port`).
    pub connect_port: Option<u16>,
}

/// The kind of an active check and its own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    /// `tcp`: a TCP connect (keepalived `TCP_CHECK`).
    Tcp,
    /// `http` / `https` (keepalived `HTTP_GET` / `SSL_GET`): `https` is `tls: Some`.
    Http(HttpCheck),
    /// `udp`: send a datagram, a reply must come (keepalived `UDP_CHECK`).
    Udp(UdpCheck),
    /// `dns`: a query over UDP (keepalived `DNS_CHECK`).
    Dns(DnsCheck),
    /// `exec`: run a program (keepalived `MISC_CHECK`).
    Exec(ExecCheck),
}

impl CheckKind {
    /// The `kind` value that selects it (`tcp`, `http`, `https`, `udp`, `dns`, `exec`).
    pub fn name(&self) -> &'static str {
        match self {
            CheckKind::Tcp => "tcp",
            CheckKind::Http(h) if h.tls.is_some() => "https",
            CheckKind::Http(_) => "http",
            CheckKind::Udp(_) => "udp",
            CheckKind::Dns(_) => "dns",
            CheckKind::Exec(_) => "exec",
        }
    }
}

/// `http` / `https` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCheck {
    /// The request path (`path`, default `/`); starts with `/`, no spaces or control bytes.
    pub path: String,
    /// Accepted status codes as inclusive ranges (`status`; default 200..=299), each within
    /// 100..=599.
    pub status: Vec<(u16, u16)>,
    /// The `Host` header (and TLS server name) (`virtualhost`; default: the address).
    pub virtualhost: Option<String>,
    /// MD5 of the body, as keepalived's `genhash` prints it (`digest`, 32 hex digits).
    pub digest: Option<[u8; 16]>,
    /// A regular expression the body must match (`regex`).
    pub regex: Option<BodyRegex>,
    /// TLS (`kind = "https"`), else plain HTTP.
    pub tls: Option<TlsCheck>,
}

/// `https`: how the server's certificate is treated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsCheck {
    /// `tls_verify` (default false, like keepalived's `SSL_GET`): when true the certificate
    /// must chain to `ca` and name the `virtualhost` (or the address).
    pub verify: bool,
    /// `tls_ca`: the CA certificates (PEM, absolute path); required with `tls_verify`.
    pub ca: Option<PathBuf>,
}

/// A compiled `regex` (on the body's bytes), compared by its source text.
#[derive(Debug, Clone)]
pub struct BodyRegex(regex::bytes::Regex);

impl BodyRegex {
    /// Compiles `pattern`.
    pub fn new(pattern: &str) -> Result<Self, String> {
        regex::bytes::RegexBuilder::new(pattern)
            .size_limit(1 << 20)
            .build()
            .map(BodyRegex)
            .map_err(|e| e.to_string())
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// Whether it matches somewhere in `body`.
    pub fn is_match(&self, body: &[u8]) -> bool {
        self.0.is_match(body)
    }
}

impl PartialEq for BodyRegex {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for BodyRegex {}

/// `udp` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpCheck {
    /// The datagram sent (`payload` as text or `payload_hex`; default empty).
    pub payload: Vec<u8>,
    /// The reply must begin with this (`expect` / `expect_hex`); `None`: any reply passes.
    pub expect: Option<Vec<u8>>,
}

/// `dns` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsCheck {
    /// The name asked for (`name`; default `.`, as keepalived).
    pub name: String,
    /// The record type asked for (`type`; default SOA, as keepalived).
    pub record_type: DnsType,
    /// An answer record of `record_type` must have this value (`expect`: an address for
    /// A/AAAA, else the record text, e.g. `mail.example.test.` for CNAME); `None`: any
    /// NOERROR answer with at least one record passes.
    pub expect: Option<String>,
}

/// The DNS record types a `dns` check may ask for (keepalived's list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DnsType {
    /// IPv4 address.
    A,
    /// IPv6 address.
    Aaaa,
    /// Name server.
    Ns,
    /// Alias.
    Cname,
    /// Start of authority.
    Soa,
    /// Mail exchange.
    Mx,
    /// Text.
    Txt,
}

impl DnsType {
    /// Every type, in the order the error messages list them.
    pub const ALL: [DnsType; 7] = [
        DnsType::A,
        DnsType::Aaaa,
        DnsType::Ns,
        DnsType::Cname,
        DnsType::Soa,
        DnsType::Mx,
        DnsType::Txt,
    ];

    /// Its name in upper case, as written in `type`.
    pub fn name(self) -> &'static str {
        match self {
            DnsType::A => "A",
            DnsType::Aaaa => "AAAA",
            DnsType::Ns => "NS",
            DnsType::Cname => "CNAME",
            DnsType::Soa => "SOA",
            DnsType::Mx => "MX",
            DnsType::Txt => "TXT",
        }
    }
}

/// `exec` settings (keepalived `MISC_CHECK`): exit 0 passes, 1 fails, 2..=255 passes and,
/// with `dynamic_weight`, asks for weight `code - 2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecCheck {
    /// The program and its arguments (`command`; argv, no shell); the program is an
    /// absolute path.
    pub command: Vec<String>,
    /// keepalived `misc_dynamic` (`dynamic_weight`, default false).
    pub dynamic_weight: bool,
}

impl HealthCheck {
    /// Where the check connects for the real server `rip:port`: `connect_ip` /
    /// `connect_port` where set.
    pub fn target(&self, rip: impl Into<IpAddr>, port: u16) -> SocketAddr {
        SocketAddr::new(
            self.connect_ip.unwrap_or_else(|| rip.into()),
            self.connect_port.unwrap_or(port),
        )
    }

    /// The check in a few words, for events and the API (`http GET 192.0.2.11:80/health`,
    /// `tcp [2001:db8:b::11]:80`, `dns A example.test @192.0.2.11:53`, `exec /bin/check`).
    pub fn describe(&self, target: SocketAddr) -> String {
        match &self.kind {
            CheckKind::Tcp => format!("tcp {target}"),
            CheckKind::Http(h) => format!("{} GET {target}{}", self.kind.name(), h.path),
            CheckKind::Udp(_) => format!("udp {target}"),
            CheckKind::Dns(d) => format!("dns {} {} @{target}", d.record_type.name(), d.name),
            CheckKind::Exec(e) => format!("exec {}", e.command.join(" ")),
        }
    }
}

/// Passive failure detection (`[virtual_server.passive]`): failed handshakes the data path
/// sees. Invariants: `failures >= 1`; `0 < backoff <= max_backoff`; `syn_timeout > 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassiveCheck {
    /// Failed handshakes in a row (no SYN-ACK within `syn_timeout`, or RST to a SYN) that
    /// take a real server down (default 5).
    pub failures: u32,
    /// How long a SYN may wait for its SYN-ACK (default 2 s).
    pub syn_timeout: Duration,
    /// The first retry after going down (default 5 s); doubles after each failed retry.
    pub backoff: Duration,
    /// The longest back-off (default 5 min).
    pub max_backoff: Duration,
}

impl Default for PassiveCheck {
    fn default() -> Self {
        PassiveCheck {
            failures: 5,
            syn_timeout: Duration::from_secs(2),
            backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(300),
        }
    }
}

/// keepalived `sorry_server`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SorryServer {
    /// Its address (the family rules of [`RealServer::addr`] apply).
    pub addr: IpAddr,
    /// Its port (the virtual port if not written; must be it for DR).
    pub port: u16,
    /// The service's default forwarding method.
    pub forwarding: Forwarding,
}

/// A persistent service's settings (spec b.16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Persistence {
    /// Template timeout (ipvsadm `-p`), whole seconds, 1 s ..= [`MAX_PERSISTENCE_TIMEOUT`].
    pub timeout: Duration,
    /// Client netmask of an IPv4 service (ipvsadm `-M`): clients equal under it share a
    /// template. `255.255.255.255` for an IPv6 service.
    pub netmask: Ipv4Addr,
    /// Client prefix length of an IPv6 service, 1..=128 (ipvsadm `-M` takes a prefix
    /// length for IPv6, as the kernel; default 128). `128` for an IPv4 service.
    pub prefix6: u8,
    /// A template whose real server has weight 0 is dropped and the client rescheduled
    /// (sysctl `expire_quiescent_template`, per service here).
    pub quiescent_template_expire: bool,
}

/// Connection timeouts that ipvsadm `--set` controls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeoutSettings {
    /// TCP ESTABLISHED (default 900 s).
    pub tcp: Duration,
    /// TCP FIN_WAIT (default 120 s).
    pub tcp_fin: Duration,
    /// UDP (default 300 s).
    pub udp: Duration,
}

impl Default for TimeoutSettings {
    fn default() -> Self {
        TimeoutSettings {
            tcp: Duration::from_secs(900),
            tcp_fin: Duration::from_secs(120),
            udp: Duration::from_secs(300),
        }
    }
}

/// A configuration error that points at a file, a line and a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file read.
    pub file: PathBuf,
    /// 1-based line, 0 if the error is not about one place (e.g. the file cannot be read).
    pub line: usize,
    /// The key, as a dotted path where known (`virtual_server[0].real_server[1].weight`).
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display();
        match (self.line, self.key.is_empty()) {
            (0, _) => write!(f, "{file}: {}", self.message),
            (line, true) => write!(f, "{file}:{line}: {}", self.message),
            (line, false) => write!(f, "{file}:{line}: {}: {}", self.key, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: 0,
            key: String::new(),
            message: format!("cannot read: {e}"),
        })?;
        Config::parse(path, &text)
    }

    /// Validates configuration text; `path` is only used in error messages.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let src = Source { path, text };
        let raw: raw::File = toml::from_str(text).map_err(|e| src.toml_error(&e))?;
        Config::from_raw(&src, raw)
    }

    fn from_raw(src: &Source<'_>, raw: raw::File) -> Result<Config, ConfigError> {
        let mut services = Vec::with_capacity(raw.virtual_server.len());
        let mut seen = HashSet::new();
        let mut service_spans = Vec::with_capacity(raw.virtual_server.len());
        for (i, vs) in raw.virtual_server.into_iter().enumerate() {
            let key = format!("virtual_server[{i}]");
            let address_span = vs.address.span();
            service_spans.push(address_span.clone());
            let service = virtual_service(src, &key, vs)?;
            if !seen.insert((service.protocol, service.vip, service.port)) {
                return Err(src.error(
                    &address_span,
                    &format!("{key}.address"),
                    format!(
                        "duplicate virtual service {} {}",
                        service.protocol,
                        SocketAddr::new(service.vip, service.port)
                    ),
                ));
            }
            services.push(service);
        }
        let timeouts = match raw.timeouts {
            None => TimeoutSettings::default(),
            Some(t) => {
                let d = TimeoutSettings::default();
                TimeoutSettings {
                    tcp: timeout(src, "timeouts.tcp", t.tcp)?.unwrap_or(d.tcp),
                    tcp_fin: timeout(src, "timeouts.tcpfin", t.tcpfin)?.unwrap_or(d.tcp_fin),
                    udp: timeout(src, "timeouts.udp", t.udp)?.unwrap_or(d.udp),
                }
            }
        };
        let control = match raw.control {
            None => ControlSettings::default(),
            Some(c) => control(src, c)?,
        };
        let io = match raw.io {
            None => IoSettings::default(),
            Some(i) => io_settings(src, i)?,
        };
        let (vrrp_instances, vrrp_sync_groups) = vrrp::all(
            src,
            raw.vrrp_instance,
            raw.vrrp_sync_group,
            &services,
            &service_spans,
        )?;
        Ok(Config {
            services,
            timeouts,
            control,
            io,
            vrrp_instances,
            vrrp_sync_groups,
        })
    }
}

/// The text being parsed, for turning byte spans into line numbers.
struct Source<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Source<'_> {
    fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    fn error(&self, span: &Range<usize>, key: &str, message: String) -> ConfigError {
        ConfigError {
            file: self.path.to_path_buf(),
            line: self.line_of(span.start),
            key: key.to_string(),
            message,
        }
    }

    /// Turns a serde/TOML error into one that names the line and the key written there.
    fn toml_error(&self, e: &toml::de::Error) -> ConfigError {
        let message = e.message().trim().to_string();
        let Some(span) = e.span() else {
            return ConfigError {
                file: self.path.to_path_buf(),
                line: 0,
                key: String::new(),
                message,
            };
        };
        let line = self.line_of(span.start);
        let key = self
            .text
            .lines()
            .nth(line - 1)
            .map(key_on_line)
            .unwrap_or_default();
        ConfigError {
            file: self.path.to_path_buf(),
            line,
            key,
            message,
        }
    }
}

/// The key a TOML line sets (`weight = 3` -> `weight`), or the table a header opens.
fn key_on_line(line: &str) -> String {
    let t = line.trim();
    if t.starts_with('[') {
        return t.trim_matches(|c| c == '[' || c == ']').trim().to_string();
    }
    match t.split_once('=') {
        Some((k, _)) => k.trim().trim_matches('"').to_string(),
        None => String::new(),
    }
}

/// `[io]`: a known backend, a ring size within [`RING_FRAMES`].
fn io_settings(src: &Source<'_>, i: raw::Io) -> Result<IoSettings, ConfigError> {
    let d = IoSettings::default();
    let backend = match &i.backend {
        None => d.backend,
        Some(b) => match b.get_ref().as_str() {
            "ring" => IoBackend::Ring,
            "socket" => IoBackend::Socket,
            other => {
                return Err(src.error(
                    &b.span(),
                    "io.backend",
                    format!("`{other}` is not an I/O backend: expected \"ring\" or \"socket\""),
                ));
            }
        },
    };
    let ring_frames = match &i.ring_frames {
        None => d.ring_frames,
        Some(n) => u32::try_from(*n.get_ref())
            .ok()
            .filter(|v| RING_FRAMES.contains(v))
            .ok_or_else(|| {
                src.error(
                    &n.span(),
                    "io.ring_frames",
                    format!(
                        "{} is out of range: expected {}..={} slots per ring",
                        n.get_ref(),
                        RING_FRAMES.start(),
                        RING_FRAMES.end()
                    ),
                )
            })?,
    };
    Ok(IoSettings {
        backend,
        ring_frames,
    })
}

/// `[control]`: absolute paths, a mode within 0o777, group names that look like names.
fn control(src: &Source<'_>, c: raw::Control) -> Result<ControlSettings, ConfigError> {
    let d = ControlSettings::default();
    let path = |key: &str, v: &toml::Spanned<String>| -> Result<PathBuf, ConfigError> {
        let p = PathBuf::from(v.get_ref());
        if !p.is_absolute() || p.file_name().is_none() {
            return Err(src.error(
                &v.span(),
                key,
                format!("`{}` must be an absolute path to a file", v.get_ref()),
            ));
        }
        Ok(p)
    };
    let group = |key: &str, v: &toml::Spanned<String>| -> Result<String, ConfigError> {
        let g = v.get_ref();
        let ok = !g.is_empty()
            && g.len() <= 32
            && g.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !ok {
            return Err(src.error(&v.span(), key, format!("`{g}` is not a group name")));
        }
        Ok(g.clone())
    };
    let socket = match &c.socket {
        None => d.socket,
        Some(v) => path("control.socket", v)?,
    };
    let socket_mode = match &c.socket_mode {
        None => d.socket_mode,
        Some(m) => {
            let err = |text: String| {
                src.error(
                    &m.span(),
                    "control.socket_mode",
                    format!(
                        "`{text}` is not a file mode: write e.g. \"0660\" or 0o660 (at most 0777)"
                    ),
                )
            };
            let mode = match m.get_ref() {
                raw::Mode::Int(n) => u32::try_from(*n).map_err(|_| err(n.to_string()))?,
                raw::Mode::Text(t) => {
                    let digits = t.trim().trim_start_matches("0o");
                    u32::from_str_radix(digits, 8).map_err(|_| err(t.clone()))?
                }
            };
            if mode > 0o777 {
                return Err(err(format!("{mode:o}")));
            }
            mode
        }
    };
    let tls = tls(src, &c, path)?;
    let idle_timeout =
        timeout(src, "control.idle_timeout", c.idle_timeout)?.unwrap_or(d.idle_timeout);
    Ok(ControlSettings {
        socket,
        socket_mode,
        socket_group: c
            .socket_group
            .as_ref()
            .map(|g| group("control.socket_group", g))
            .transpose()?,
        admin_group: c
            .admin_group
            .as_ref()
            .map(|g| group("control.admin_group", g))
            .transpose()?,
        audit_log: c
            .audit_log
            .as_ref()
            .map(|p| path("control.audit_log", p))
            .transpose()?,
        idle_timeout,
        tls,
    })
}

/// `[control] tls_*`: all or nothing around `tls_listen`, absolute paths, no wildcard
/// address unless `tls_allow_wildcard = true`, admin names that are not empty.
fn tls(
    src: &Source<'_>,
    c: &raw::Control,
    path: impl Fn(&str, &toml::Spanned<String>) -> Result<PathBuf, ConfigError>,
) -> Result<Option<TlsSettings>, ConfigError> {
    let Some(listen) = &c.tls_listen else {
        // Any other tls_* key without tls_listen is a mistake, not something to ignore.
        let spans = [
            ("control.tls_cert", c.tls_cert.as_ref().map(|v| v.span())),
            ("control.tls_key", c.tls_key.as_ref().map(|v| v.span())),
            (
                "control.tls_client_ca",
                c.tls_client_ca.as_ref().map(|v| v.span()),
            ),
            (
                "control.tls_admin_names",
                c.tls_admin_names.as_ref().map(|v| v.span()),
            ),
            (
                "control.tls_allow_wildcard",
                c.tls_allow_wildcard.as_ref().map(|v| v.span()),
            ),
        ];
        if let Some((key, Some(span))) = spans.into_iter().find(|(_, s)| s.is_some()) {
            return Err(src.error(
                &span,
                key,
                "has no effect without control.tls_listen (the TLS listener's address)".into(),
            ));
        }
        return Ok(None);
    };
    let key = "control.tls_listen";
    let addr: SocketAddr = listen.get_ref().trim().parse().map_err(|_| {
        src.error(
            &listen.span(),
            key,
            format!(
                "`{}` is not an address: expected IP:PORT, e.g. \"192.0.2.1:7443\"",
                listen.get_ref()
            ),
        )
    })?;
    let allow_wildcard = c.tls_allow_wildcard.as_ref().is_some_and(|v| *v.get_ref());
    if addr.ip().is_unspecified() && !allow_wildcard {
        return Err(src.error(
            &listen.span(),
            key,
            format!(
                "`{addr}` listens on every address; name one of the director's addresses, \
                 or set control.tls_allow_wildcard = true to mean it"
            ),
        ));
    }
    let required = |name: &str, v: &Option<toml::Spanned<String>>| match v {
        Some(v) => path(&format!("control.{name}"), v),
        None => Err(src.error(
            &listen.span(),
            key,
            format!(
                "needs control.{name} as well (mutual TLS needs a certificate, its key and \
                 a client CA)"
            ),
        )),
    };
    let cert = required("tls_cert", &c.tls_cert)?;
    let tls_key = required("tls_key", &c.tls_key)?;
    let client_ca = required("tls_client_ca", &c.tls_client_ca)?;
    let mut admin_names = Vec::new();
    if let Some(names) = &c.tls_admin_names {
        for n in names.get_ref() {
            let name = n.get_ref().trim();
            if name.is_empty() || name.chars().any(char::is_control) {
                return Err(src.error(
                    &n.span(),
                    "control.tls_admin_names",
                    format!("`{}` is not a certificate name", n.get_ref()),
                ));
            }
            admin_names.push(name.to_string());
        }
    }
    Ok(Some(TlsSettings {
        listen: addr,
        cert,
        key: tls_key,
        client_ca,
        admin_names,
        allow_wildcard,
    }))
}

fn virtual_service(
    src: &Source<'_>,
    key: &str,
    vs: raw::VirtualServer,
) -> Result<VirtualService, ConfigError> {
    let (vip, port) = endpoint(src, &format!("{key}.address"), &vs.address, None)?;
    let Some(port) = port else {
        let message = if vip.is_ipv6() {
            format!(
                "needs a port: `{vip}` is read as an IPv6 address without one; write \
                 [VIP]:PORT, e.g. \"[2001:db8:f::10]:80\" (or \"2001:db8:f::10 80\")"
            )
        } else {
            "needs a port: write VIP:PORT, e.g. \"203.0.113.10:80\" (port-zero services are \
             not supported in this version)"
                .into()
        };
        return Err(src.error(&vs.address.span(), &format!("{key}.address"), message));
    };
    let protocol = match &vs.protocol {
        None => Protocol::Tcp,
        Some(p) => match p.get_ref().as_str() {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            other => {
                return Err(src.error(
                    &p.span(),
                    &format!("{key}.protocol"),
                    format!("unknown protocol `{other}`: expected \"tcp\" or \"udp\""),
                ));
            }
        },
    };
    let scheduler = match &vs.scheduler {
        None => SchedulerKind::Wlc,
        Some(s) => scheduler_kind(src, &format!("{key}.scheduler"), s)?,
    };
    let scheduler_flags = match &vs.scheduler_flags {
        None => SchedFlags::NONE,
        Some(list) => scheduler_flags(src, &format!("{key}.scheduler_flags"), scheduler, list)?,
    };
    if protocol == Protocol::Tcp {
        if let Some(o) = vs.one_packet.as_ref().filter(|o| *o.get_ref()) {
            return Err(src.error(
                &o.span(),
                &format!("{key}.one_packet"),
                "one-packet scheduling is for UDP services only (ipvsadm -o): set protocol = \
                 \"udp\" or remove the key"
                    .into(),
            ));
        }
    }
    let one_packet = vs.one_packet.as_ref().is_some_and(|o| *o.get_ref());
    let persistence = persistence(src, key, &vs, vip.is_ipv6())?;
    let default_fwd = match vs.forwarding {
        None => Forwarding::Dr,
        Some(f) => forwarding(src, &format!("{key}.forwarding"), &f)?,
    };
    let health_check = vs
        .health_check
        .as_ref()
        .map(|hc| check::health_check(src, &format!("{key}.health_check"), hc))
        .transpose()?;
    let mut real_servers = Vec::with_capacity(vs.real_server.len());
    let mut seen = HashSet::new();
    for (j, rs) in vs.real_server.iter().enumerate() {
        let rkey = format!("{key}.real_server[{j}]");
        let (addr, rport) = endpoint(src, &format!("{rkey}.address"), &rs.address, Some(port))?;
        let rport = rport.unwrap_or(port);
        let weight = match &rs.weight {
            None => 1,
            Some(w) => {
                let v = *w.get_ref();
                u32::try_from(v)
                    .ok()
                    .filter(|&v| v <= 65535)
                    .ok_or_else(|| {
                        src.error(
                            &w.span(),
                            &format!("{rkey}.weight"),
                            format!("{v} is out of range: weights are 0..=65535 (0 = quiesced)"),
                        )
                    })?
            }
        };
        let fwd = match &rs.forwarding {
            None => default_fwd,
            Some(f) => forwarding(src, &format!("{rkey}.forwarding"), f)?,
        };
        if let Some(why) = family_mismatch(vip, port, addr, fwd) {
            return Err(src.error(&rs.address.span(), &format!("{rkey}.address"), why));
        }
        if fwd != Forwarding::Nat && rport != port {
            return Err(src.error(
                &rs.address.span(),
                &format!("{rkey}.address"),
                format!(
                    "{} cannot change the port: the real server port must be the \
                     virtual port {port} (or use forwarding = \"nat\")",
                    method_name(fwd)
                ),
            ));
        }
        if !seen.insert((addr, rport)) {
            return Err(src.error(
                &rs.address.span(),
                &format!("{rkey}.address"),
                format!(
                    "duplicate real server {} in this virtual service",
                    SocketAddr::new(addr, rport)
                ),
            ));
        }
        let upper_threshold =
            threshold(src, &format!("{rkey}.upper_threshold"), &rs.upper_threshold)?;
        let lower_threshold =
            threshold(src, &format!("{rkey}.lower_threshold"), &rs.lower_threshold)?;
        if upper_threshold != 0 && lower_threshold > upper_threshold {
            // Only reachable when lower_threshold was given (else it is 0).
            let span = rs
                .lower_threshold
                .as_ref()
                .map_or_else(|| rs.address.span(), toml::Spanned::span);
            return Err(src.error(
                &span,
                &format!("{rkey}.lower_threshold"),
                format!(
                    "{lower_threshold} is above upper_threshold {upper_threshold}: OVERLOAD is \
                     set at the upper threshold and cleared below the lower one"
                ),
            ));
        }
        let own = rs
            .health_check
            .as_ref()
            .map(|hc| check::health_check(src, &format!("{rkey}.health_check"), hc))
            .transpose()?;
        real_servers.push(RealServer {
            addr,
            port: rport,
            weight,
            forwarding: fwd,
            upper_threshold,
            lower_threshold,
            own_health_check: own.is_some(),
            health_check: own.or_else(|| health_check.clone()),
        });
    }
    let passive = match &vs.passive {
        None => None,
        Some(p) => {
            let pkey = format!("{key}.passive");
            let refuse = |why: String| Err(src.error(&p.span(), &pkey, why));
            if protocol != Protocol::Tcp {
                return refuse(
                    "passive detection counts TCP handshakes: it is for TCP services only".into(),
                );
            }
            if let Some(rs) = real_servers
                .iter()
                .find(|r| r.forwarding != Forwarding::Nat)
            {
                return refuse(format!(
                    "passive detection needs the real servers' replies, which only NAT sends \
                     through the director: {} uses {}",
                    SocketAddr::new(rs.addr, rs.port),
                    rs.forwarding
                ));
            }
            Some(check::passive(src, &pkey, p.get_ref())?)
        }
    };
    let sorry_server = match &vs.sorry_server {
        None => None,
        Some(v) => {
            let skey = format!("{key}.sorry_server");
            let (addr, sport) = endpoint(src, &skey, v, Some(port))?;
            let sport = sport.unwrap_or(port);
            if let Some(why) = family_mismatch(vip, port, addr, default_fwd) {
                return Err(src.error(&v.span(), &skey, why));
            }
            if default_fwd != Forwarding::Nat && sport != port {
                return Err(src.error(
                    &v.span(),
                    &skey,
                    format!(
                        "{} cannot change the port: the sorry server port must be \
                         the virtual port {port} (or use forwarding = \"nat\")",
                        method_name(default_fwd)
                    ),
                ));
            }
            if seen.contains(&(addr, sport)) {
                return Err(src.error(
                    &v.span(),
                    &skey,
                    format!(
                        "{} is also a real server of this virtual service",
                        SocketAddr::new(addr, sport)
                    ),
                ));
            }
            Some(SorryServer {
                addr,
                port: sport,
                forwarding: default_fwd,
            })
        }
    };
    let quorum = match &vs.quorum {
        None => 1,
        Some(q) => {
            let n = *q.get_ref();
            u64::try_from(n).ok().filter(|&n| n >= 1).ok_or_else(|| {
                src.error(
                    &q.span(),
                    &format!("{key}.quorum"),
                    format!("{n} is out of range: a quorum is a total weight of at least 1"),
                )
            })?
        }
    };
    let hysteresis = match &vs.hysteresis {
        None => 0,
        Some(h) => {
            let n = *h.get_ref();
            u64::try_from(n)
                .ok()
                .filter(|&n| n < quorum)
                .ok_or_else(|| {
                    src.error(
                        &h.span(),
                        &format!("{key}.hysteresis"),
                        format!("{n} is out of range: 0..quorum ({quorum})"),
                    )
                })?
        }
    };
    Ok(VirtualService {
        protocol,
        vip,
        port,
        scheduler,
        scheduler_flags,
        forwarding: default_fwd,
        persistence,
        one_packet,
        real_servers,
        health_check,
        passive,
        sorry_server,
        quorum,
        hysteresis,
    })
}

/// `scheduler`: a known IPVS scheduler that this build implements.
fn scheduler_kind(
    src: &Source<'_>,
    key: &str,
    s: &toml::Spanned<String>,
) -> Result<SchedulerKind, ConfigError> {
    let available = || {
        SchedulerKind::ALL
            .iter()
            .filter(|k| sched::is_available(**k))
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let kind = s.get_ref().parse::<SchedulerKind>().map_err(|_| {
        src.error(
            &s.span(),
            key,
            format!(
                "unknown scheduler `{}`: this version implements {}",
                s.get_ref(),
                available()
            ),
        )
    })?;
    if !sched::is_available(kind) {
        return Err(src.error(
            &s.span(),
            key,
            format!(
                "scheduler `{kind}` is not available in this build yet: use one of {}",
                available()
            ),
        ));
    }
    Ok(kind)
}

/// `scheduler_flags = ["sh-fallback", "sh-port"]`: names valid for `kind` (ipvsadm `-b`).
fn scheduler_flags(
    src: &Source<'_>,
    key: &str,
    kind: SchedulerKind,
    list: &toml::Spanned<Vec<toml::Spanned<String>>>,
) -> Result<SchedFlags, ConfigError> {
    let mut flags = SchedFlags::NONE;
    for name in list.get_ref() {
        let bit = sched::parse_flags(kind, &[name.get_ref()])
            .map_err(|m| src.error(&name.span(), key, m))?;
        flags = flags.union(bit);
    }
    sched::validate_flags(kind, &flags).map_err(|m| src.error(&list.span(), key, m))?;
    Ok(flags)
}

/// `persistence_timeout`, `persistence_netmask` and `quiescent_template_expire`; `ipv6`:
/// the service's family (a netmask for IPv4, a prefix length for IPv6).
fn persistence(
    src: &Source<'_>,
    key: &str,
    vs: &raw::VirtualServer,
    ipv6: bool,
) -> Result<Option<Persistence>, ConfigError> {
    let tkey = format!("{key}.persistence_timeout");
    let timeout = match &vs.persistence_timeout {
        None => None,
        Some(t) => match t.get_ref() {
            raw::Persistence::Switch(false) => None,
            raw::Persistence::Switch(true) => Some(DEFAULT_PERSISTENCE_TIMEOUT),
            raw::Persistence::Time(v) => {
                let err = |m: String| src.error(&t.span(), &tkey, m);
                let d = v.to_duration().map_err(err)?;
                if d.is_zero() {
                    return Err(err(
                        "must be at least 1 s (write false, or leave the key out, for no \
                         persistence)"
                            .into(),
                    ));
                }
                if d.subsec_nanos() != 0 {
                    return Err(err(format!(
                        "{d:?} is not a whole number of seconds: persistence has a 1 s resolution"
                    )));
                }
                if d > MAX_PERSISTENCE_TIMEOUT {
                    return Err(err(format!(
                        "{} s is too long: at most {} s (31 days)",
                        d.as_secs(),
                        MAX_PERSISTENCE_TIMEOUT.as_secs()
                    )));
                }
                Some(d)
            }
        },
    };
    let netmask = match &vs.persistence_netmask {
        None => None,
        Some(m) => {
            let mask = if ipv6 {
                prefix6(m.get_ref()).map(|p| (Ipv4Addr::BROADCAST, p))
            } else {
                netmask(m.get_ref()).map(|n| (n, 128))
            };
            Some((
                mask.map_err(|e| src.error(&m.span(), &format!("{key}.persistence_netmask"), e))?,
                m.span(),
            ))
        }
    };
    let quiescent = vs.quiescent_template_expire.as_ref();
    let Some(timeout) = timeout else {
        // Options of persistence without persistence would silently do nothing.
        let orphan = netmask
            .as_ref()
            .map(|(_, span)| (span.clone(), "persistence_netmask"))
            .or_else(|| quiescent.map(|q| (q.span(), "quiescent_template_expire")));
        if let Some((span, name)) = orphan {
            return Err(src.error(
                &span,
                &format!("{key}.{name}"),
                "has no effect without persistence: set persistence_timeout too".into(),
            ));
        }
        return Ok(None);
    };
    let (netmask, prefix6) = netmask.map_or((Ipv4Addr::BROADCAST, 128), |(m, _)| m);
    Ok(Some(Persistence {
        timeout,
        netmask,
        prefix6,
        quiescent_template_expire: quiescent.is_some_and(|q| *q.get_ref()),
    }))
}

/// An IPv4 service's persistence netmask: a prefix length 0..=32 (`24`, `"24"`, `"/24"`)
/// or a dotted, contiguous mask (`"255.255.255.0"`).
fn netmask(value: &raw::Netmask) -> Result<Ipv4Addr, String> {
    let from_prefix = |n: i64| -> Result<Ipv4Addr, String> {
        let prefix = u32::try_from(n)
            .ok()
            .filter(|&p| p <= 32)
            .ok_or_else(|| format!("/{n} is out of range: an IPv4 prefix length is 0..=32"))?;
        Ok(Ipv4Addr::from(
            u32::MAX.checked_shl(32 - prefix).unwrap_or(0),
        ))
    };
    match value {
        raw::Netmask::Prefix(n) => from_prefix(*n),
        raw::Netmask::Text(t) => {
            let t = t.trim();
            let digits = t.strip_prefix('/').unwrap_or(t);
            if let Ok(n) = digits.parse::<i64>() {
                return from_prefix(n);
            }
            if t.parse::<Ipv6Addr>().is_ok() {
                return Err(format!(
                    "`{t}` is an IPv6 mask, but this service is IPv4: write a prefix length \
                     like 24 or a mask like \"255.255.255.0\""
                ));
            }
            let mask: Ipv4Addr = t.parse().map_err(|_| {
                format!(
                    "`{t}` is not a netmask: write a prefix length like 24 or a mask like \
                     \"255.255.255.0\""
                )
            })?;
            let bits = u32::from(mask);
            if bits.leading_ones() + bits.trailing_zeros() != 32 {
                return Err(format!(
                    "`{t}` is not a contiguous netmask (ones, then zeros), e.g. \"255.255.255.0\""
                ));
            }
            Ok(mask)
        }
    }
}

/// Whether `prefix` can be an IPv6 service's persistence prefix length ([`Persistence::prefix6`],
/// 1..=128 as ipvsadm and the kernel take it); public so the control API's edits can keep
/// the rule (a saved file must read back).
pub fn check_prefix6(prefix: u8) -> Result<(), String> {
    prefix6(&raw::Netmask::Prefix(i64::from(prefix))).map(|_| ())
}

/// An IPv6 service's persistence netmask: a prefix length 1..=128 (`64`, `"64"`, `"/64"`;
/// ipvsadm `-M` and the kernel take a prefix length for IPv6, and refuse 0) or a
/// contiguous IPv6 mask (`"ffff:ffff:ffff:ffff::"`).
fn prefix6(value: &raw::Netmask) -> Result<u8, String> {
    let from_prefix = |n: i64| -> Result<u8, String> {
        u8::try_from(n)
            .ok()
            .filter(|p| (1..=128).contains(p))
            .ok_or_else(|| {
                format!("/{n} is out of range: an IPv6 prefix length is 1..=128 (as in IPVS)")
            })
    };
    match value {
        raw::Netmask::Prefix(n) => from_prefix(*n),
        raw::Netmask::Text(t) => {
            let t = t.trim();
            let digits = t.strip_prefix('/').unwrap_or(t);
            if let Ok(n) = digits.parse::<i64>() {
                return from_prefix(n);
            }
            if t.parse::<Ipv4Addr>().is_ok() {
                return Err(format!(
                    "`{t}` is an IPv4 netmask, but this service is IPv6: write a prefix length \
                     1..=128, e.g. 64"
                ));
            }
            let mask: Ipv6Addr = t.parse().map_err(|_| {
                format!("`{t}` is not a prefix length: write one in 1..=128, e.g. 64")
            })?;
            let bits = u128::from(mask);
            if bits.leading_ones() + bits.trailing_zeros() != 128 {
                return Err(format!(
                    "`{t}` is not a contiguous mask (ones, then zeros): write a prefix length, \
                     e.g. 64"
                ));
            }
            from_prefix(i64::from(bits.leading_ones()))
        }
    }
}

/// `upper_threshold` / `lower_threshold`: 0 (none) ..= [`MAX_THRESHOLD`].
fn threshold(
    src: &Source<'_>,
    key: &str,
    value: &Option<toml::Spanned<i64>>,
) -> Result<u32, ConfigError> {
    let Some(v) = value else { return Ok(0) };
    let n = *v.get_ref();
    u32::try_from(n)
        .ok()
        .filter(|&n| n <= MAX_THRESHOLD)
        .ok_or_else(|| {
            src.error(
                &v.span(),
                key,
                format!(
                    "{n} is out of range: connection thresholds are 0..={MAX_THRESHOLD} (0 = none)"
                ),
            )
        })
}

/// The forwarding method in words, for messages.
fn method_name(f: Forwarding) -> &'static str {
    match f {
        Forwarding::Nat => "NAT",
        Forwarding::Dr => "direct routing",
        Forwarding::Tun => "tunnelling",
    }
}

fn forwarding(
    src: &Source<'_>,
    key: &str,
    f: &toml::Spanned<String>,
) -> Result<Forwarding, ConfigError> {
    match f.get_ref().as_str() {
        "nat" => Ok(Forwarding::Nat),
        "dr" => Ok(Forwarding::Dr),
        "tun" => Ok(Forwarding::Tun),
        other => Err(src.error(
            &f.span(),
            key,
            format!("unknown forwarding method `{other}`: expected \"nat\", \"dr\" or \"tun\""),
        )),
    }
}

/// Parses `IP:PORT` (`[IPv6]:PORT` for IPv6, as ipvsadm), keepalived's `IP PORT`, or (when
/// `default_port` is given) a bare `IP` or `[IPv6]`. A bare IPv6 address never has a port:
/// `2001:db8::11:80` is the address `2001:db8::11:80`.
fn endpoint(
    src: &Source<'_>,
    key: &str,
    value: &toml::Spanned<String>,
    default_port: Option<u16>,
) -> Result<(IpAddr, Option<u16>), ConfigError> {
    let text = value.get_ref().trim();
    let err = |message: String| src.error(&value.span(), key, message);
    let (ip, port) = parse_endpoint(text).map_err(|m| err(format!("`{text}` {m}")))?;
    check_address(ip).map_err(err)?;
    if port == Some(0) {
        return Err(err("port 0 is not allowed here".into()));
    }
    if port.is_none() && default_port.is_none() {
        return Ok((ip, None));
    }
    Ok((ip, port.or(default_port)))
}

/// The syntax of [`endpoint`]; the error completes "`TEXT` ...".
fn parse_endpoint(text: &str) -> Result<(IpAddr, Option<u16>), String> {
    if let Ok(sa) = text.parse::<SocketAddr>() {
        if let SocketAddr::V6(v6) = sa {
            if v6.scope_id() != 0 {
                return Err("has a zone index (%...): lvsd takes global addresses only".into());
            }
        }
        return Ok((sa.ip(), Some(sa.port())));
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok((ip, None));
    }
    if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        if let Ok(ip) = inner.parse::<Ipv6Addr>() {
            return Ok((IpAddr::V6(ip), None));
        }
    }
    // keepalived's `virtual_server 2001:db8::10 80` order, in one string.
    let mut words = text.split_whitespace();
    if let (Some(a), Some(p), None) = (words.next(), words.next(), words.next()) {
        if let (Ok(ip), Ok(port)) = (a.parse::<IpAddr>(), p.parse::<u16>()) {
            return Ok((ip, Some(port)));
        }
    }
    Err(
        "is not an address: expected IP:PORT, e.g. \"192.0.2.11:80\" or \
         \"[2001:db8::11]:80\""
            .into(),
    )
}

/// Whether `ip` can be a virtual, real or sorry server address (the rule the file is held
/// to; public so the control API's edits can keep it). IPv6: no link-local (IPVS refuses
/// link-local real servers; a scope would be needed) and no IPv4-mapped form (the IPv4
/// address is written as such).
pub fn check_address(ip: IpAddr) -> Result<(), String> {
    usable_address(ip).map_err(|m| format!("`{ip}` {m}"))
}

/// [`check_address`]; the error completes "`IP` ...".
fn usable_address(ip: IpAddr) -> Result<(), String> {
    let unusable = match ip {
        IpAddr::V4(a) => {
            a.is_unspecified() || a.is_multicast() || a.is_broadcast() || a.is_loopback()
        }
        IpAddr::V6(a) => {
            if let Some(v4) = a.to_ipv4_mapped() {
                return Err(format!(
                    "is an IPv4-mapped IPv6 address: write the IPv4 address {v4} itself"
                ));
            }
            if a.is_unicast_link_local() {
                return Err(
                    "is link-local: services and real servers need addresses without an \
                     interface scope"
                        .into(),
                );
            }
            a.is_unspecified() || a.is_multicast() || a.is_loopback()
        }
    };
    if unusable {
        return Err("cannot be used as a service or server address".into());
    }
    Ok(())
}

/// Whether a real (or sorry) server at `addr` with `fwd` may serve the virtual service
/// `vip:port` as far as address families go: IPVS accepts a destination of the other
/// family for tunnelling only (IPv4-in-IPv6, IPv6-in-IPv4; `ip_vs_genl_set_cmd` refuses
/// any other method with EINVAL). NAT and direct routing keep the packet's family. Public
/// so the control API's edits can keep the rule the file is held to.
pub fn check_server_family(
    vip: IpAddr,
    port: u16,
    addr: IpAddr,
    fwd: Forwarding,
) -> Result<(), String> {
    family_mismatch(vip, port, addr, fwd).map_or(Ok(()), Err)
}

/// [`check_server_family`]'s error, if any.
fn family_mismatch(vip: IpAddr, port: u16, addr: IpAddr, fwd: Forwarding) -> Option<String> {
    if fwd == Forwarding::Tun || vip.is_ipv6() == addr.is_ipv6() {
        return None;
    }
    let family = |ip: IpAddr| if ip.is_ipv6() { "IPv6" } else { "IPv4" };
    Some(format!(
        "`{addr}` is {} but the virtual service {} is {}: {} cannot change the address \
         family (only tunnelling can, forwarding = \"tun\")",
        family(addr),
        SocketAddr::new(vip, port),
        family(vip),
        method_name(fwd)
    ))
}

fn timeout(
    src: &Source<'_>,
    key: &str,
    value: Option<toml::Spanned<raw::Seconds>>,
) -> Result<Option<Duration>, ConfigError> {
    let Some(v) = value else { return Ok(None) };
    let d = v
        .get_ref()
        .to_duration()
        .map_err(|m| src.error(&v.span(), key, m))?;
    if d.is_zero() {
        return Err(src.error(&v.span(), key, "must be greater than zero".into()));
    }
    Ok(Some(d))
}

/// Parses a duration: an integer number of seconds, or a string with a unit
/// (`"500ms"`, `"90s"`, `"15m"`, `"1h"`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        format!("`{text}` is not a duration: expected e.g. \"90s\", \"500ms\", \"15m\"")
    })?;
    let d = match unit.trim() {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" | "min" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        other => {
            return Err(format!(
                "unknown duration unit `{other}` in `{text}`: use ms, s, m or h"
            ));
        }
    };
    Ok(d)
}

#[cfg(test)]
mod tests;
