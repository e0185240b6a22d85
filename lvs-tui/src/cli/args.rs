//! `lvsctl`'s command line: the clap definitions, the ipvsadm-style front end that rewrites
//! `-Ln`, `-Z`, `-e ... -w N` into subcommands, and the parsing of service and real-server
//! arguments.
//!
//! Invariants:
//! - [`translate_ipvsadm`] only touches a command line whose first word after the global
//!   options is an option (`-Ln`, `--stats`, `-Z`, ...); subcommand lines pass unchanged.
//! - Every parse error is a [`UsageError`] (exit status 2), never a panic.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use lvs_proto::{Protocol, RealServerKey, ServiceKey};

/// A command line that cannot be run as written (exit status 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `lvsctl`: the scripting CLI of lvsd.
#[derive(Debug, Parser)]
#[command(
    name = "lvsctl",
    version,
    about = "Scripting CLI for lvsd: ipvsadm-compatible listings, weights, drains, events",
    after_help = "ipvsadm forms are accepted too: lvsctl -Ln [--stats|--rate|--exact|\
                  --thresholds|--persistent-conn] [-t|-u VIP:PORT], lvsctl -Lnc, \
                  lvsctl -Z [-t VIP:PORT], lvsctl -e -t VIP:PORT -r RIP:PORT -w N. \
                  IPv6 addresses take brackets, as in ipvsadm: -t [2001:db8:f::10]:80 \
                  -r [2001:db8:b::11]:80; -M is a netmask for IPv4, a prefix length for IPv6."
)]
pub struct Cli {
    /// The daemon's control socket.
    #[arg(
        long,
        global = true,
        env = "LVSD_SOCKET",
        default_value = lvs_proto::DEFAULT_SOCKET,
        value_name = "PATH"
    )]
    pub socket: PathBuf,
    /// Reach lvsd's TLS listener instead of the socket: tls://HOST:PORT (with --ca, --cert
    /// and --key; takes precedence over --socket).
    #[arg(
        long,
        global = true,
        env = "LVSD_CONNECT",
        value_name = "tls://HOST:PORT"
    )]
    pub connect: Option<String>,
    /// With --connect: the CA that signed lvsd's certificate (PEM).
    #[arg(long, global = true, env = "LVSD_CA", value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// With --connect: this client's certificate (PEM; leaf first, then intermediates).
    #[arg(long, global = true, env = "LVSD_CERT", value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// With --connect: this client's private key (PEM).
    #[arg(long, global = true, env = "LVSD_KEY", value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// With --connect: the name lvsd's certificate must be valid for (default: HOST).
    #[arg(long, global = true, value_name = "NAME")]
    pub tls_name: Option<String>,
    /// Print the API's types as JSON (one document; one object per line with --follow).
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List virtual services and real servers in ipvsadm's -Ln layout (ipvsadm -L).
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// The connection table, templates included, in ipvsadm's -Lnc layout, with filters.
    Conns(ConnsArgs),
    /// Set a real server's weight: set-weight [-t|-u] VIP:PORT [-r] RIP:PORT [-w] WEIGHT.
    #[command(visible_alias = "weight")]
    SetWeight(SetWeightArgs),
    /// Drain a real server: weight 0 now, the old weight remembered; --wait until it is empty.
    Drain(DrainArgs),
    /// Give a drained real server its remembered weight back.
    Undrain(TargetArgs),
    /// Zero the counters and rates of one service or of all (ipvsadm -Z).
    Zero(ZeroArgs),
    /// Recent scheduling decisions with the scheduler's explanation.
    Decisions(DecisionsArgs),
    /// Which real server a new connection from --client would reach now, and why.
    Simulate(SimulateArgs),
    /// Events (weight edits and who made them, drains, reloads, ...).
    Events(EventsArgs),
    /// Add a virtual service without real servers (ipvsadm -A): add-service [-t|-u]
    /// VIP:PORT [-s SCHEDULER] [-m|-g] [-p SECS] [-M NETMASK] [-b FLAGS] [-o].
    AddService(AddServiceArgs),
    /// Remove a virtual service and its connections (ipvsadm -D).
    RemoveService(ServiceArgs),
    /// Add a real server (ipvsadm -a): add-server [-t|-u] VIP:PORT -r RIP:PORT [-w N]
    /// [-m|-g] [-x N] [-y N].
    AddServer(AddServerArgs),
    /// Remove a real server (ipvsadm -d); its connections continue until they end.
    RemoveServer(TargetArgs),
    /// Remove one connection entry: kill-conn [-t|-u] VIP:PORT --client IP:PORT.
    KillConn(KillArgs),
    /// Remove one persistence template: kill-template [-t|-u] VIP:PORT --client IP (the
    /// masked client address as `conns` lists it).
    KillTemplate(KillArgs),
    /// Write the running configuration (API weight edits included) to a file as TOML
    /// (0640; a symlink there is refused). A reload re-reads lvsd's own file: save to it
    /// first to keep API edits.
    SaveConfig(SaveConfigArgs),
    /// The director's interfaces and addresses, where each VIP lives, the DIPs, and how
    /// each real server is reached.
    Topology,
    /// Health checks: one line per checked real server (state, check, last result,
    /// latency, successes/failures, next run); passive detection included.
    Health(ZeroArgs),
    /// lvsctl's and lvsd's versions and the API level.
    Version,
    /// Who lvsd thinks you are, and whether you may change things.
    Whoami,
}

/// `-t VIP:PORT` / `-u VIP:PORT`.
#[derive(Debug, Clone, Default, Args)]
pub struct ServiceOpt {
    /// A TCP virtual service.
    #[arg(
        short = 't',
        long = "tcp-service",
        value_name = "VIP:PORT",
        conflicts_with = "udp"
    )]
    pub tcp: Option<String>,
    /// A UDP virtual service.
    #[arg(short = 'u', long = "udp-service", value_name = "VIP:PORT")]
    pub udp: Option<String>,
}

impl ServiceOpt {
    /// The service named by `-t`/`-u`, if any.
    pub fn key(&self) -> Result<Option<ServiceKey>, UsageError> {
        match (&self.tcp, &self.udp) {
            (Some(t), _) => parse_service(Protocol::Tcp, t).map(Some),
            (None, Some(u)) => parse_service(Protocol::Udp, u).map(Some),
            (None, None) => Ok(None),
        }
    }
}

/// `list`.
#[derive(Debug, Clone, Default, Args)]
pub struct ListArgs {
    /// Numeric addresses and ports (always on: lvsctl never resolves names).
    #[arg(short = 'n', long)]
    pub numeric: bool,
    /// The connection table (ipvsadm -Lnc).
    #[arg(short = 'c', long)]
    pub connection: bool,
    /// Cumulative counters.
    #[arg(long)]
    pub stats: bool,
    /// Rate estimates.
    #[arg(long)]
    pub rate: bool,
    /// Exact numbers instead of K/M/G/T.
    #[arg(long)]
    pub exact: bool,
    /// Upper and lower connection thresholds.
    #[arg(long)]
    pub thresholds: bool,
    /// Persistence templates per real server.
    #[arg(long = "persistent-conn")]
    pub persistent_conn: bool,
    /// Keep lvsd's order (configuration order, real servers in scheduling order).
    #[arg(long)]
    pub nosort: bool,
    /// Sort (the default; accepted for ipvsadm compatibility).
    #[arg(long, hide = true)]
    pub sort: bool,
    /// ipvsadm --timeout: not available from lvsd's API.
    #[arg(long, hide = true)]
    pub timeout: bool,
    /// Only this service.
    #[command(flatten)]
    pub service: ServiceOpt,
}

/// `conns`.
#[derive(Debug, Clone, Default, Args)]
pub struct ConnsArgs {
    /// Only this service.
    #[command(flatten)]
    pub service: ServiceOpt,
    /// Only entries to this real server.
    #[arg(short = 'r', long = "real-server", value_name = "RIP:PORT")]
    pub real_server: Option<String>,
    /// Only clients in this prefix (198.51.100.0/24, 2001:db8:c::/64, or one address).
    #[arg(long, value_name = "PREFIX")]
    pub client: Option<String>,
    /// Only entries in this state (ESTABLISHED, TIME_WAIT, UDP, NONE for templates, ...).
    #[arg(long)]
    pub state: Option<String>,
    /// With the persistence-engine columns of ipvsadm --persistent-conn.
    #[arg(long = "persistent-conn")]
    pub persistent_conn: bool,
}

/// A real server of a service, ipvsadm-style (`-t VIP:PORT -r RIP:PORT`) or positional.
#[derive(Debug, Clone, Default, Args)]
pub struct TargetArgs {
    /// The service.
    #[command(flatten)]
    pub service: ServiceOpt,
    /// The real server.
    #[arg(short = 'r', long = "real-server", value_name = "RIP:PORT")]
    pub real_server: Option<String>,
    /// Print nothing on success.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// [VIP:PORT] [RIP:PORT] when not given with -t/-u and -r.
    #[arg(value_name = "ARGS")]
    pub positional: Vec<String>,
}

/// `set-weight`.
#[derive(Debug, Clone, Default, Args)]
pub struct SetWeightArgs {
    /// Service and real server.
    #[command(flatten)]
    pub target: TargetArgs,
    /// The new weight, 0..=65535.
    #[arg(short = 'w', long, value_name = "WEIGHT")]
    pub weight: Option<String>,
    /// ipvsadm -g: accepted when the server already uses direct routing.
    #[arg(short = 'g', long = "gatewaying", hide = true)]
    pub gatewaying: bool,
    /// ipvsadm -m: accepted when the server already uses NAT.
    #[arg(short = 'm', long = "masquerading", hide = true)]
    pub masquerading: bool,
    /// ipvsadm -i: accepted when the server already uses tunnelling.
    #[arg(short = 'i', long = "ipip", hide = true)]
    pub ipip: bool,
    /// ipvsadm -x: not changeable through the API.
    #[arg(short = 'x', long = "u-threshold", hide = true)]
    pub upper_threshold: Option<String>,
    /// ipvsadm -y: not changeable through the API.
    #[arg(short = 'y', long = "l-threshold", hide = true)]
    pub lower_threshold: Option<String>,
}

/// `drain`.
#[derive(Debug, Clone, Default, Args)]
pub struct DrainArgs {
    /// Service and real server.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Wait until no connection is left, printing the progress.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up (exit 1) after this many seconds.
    #[arg(long, value_name = "SECS", requires = "wait")]
    pub timeout: Option<u64>,
    /// With --wait: seconds between progress checks.
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    pub interval: f64,
}

/// `zero`.
#[derive(Debug, Clone, Default, Args)]
pub struct ZeroArgs {
    /// Only this service (default: all).
    #[command(flatten)]
    pub service: ServiceOpt,
    /// [VIP:PORT] when not given with -t/-u.
    #[arg(value_name = "VIP:PORT")]
    pub positional: Option<String>,
}

/// `decisions`.
#[derive(Debug, Clone, Default, Args)]
pub struct DecisionsArgs {
    /// Only this service (default: every service).
    #[command(flatten)]
    pub service: ServiceOpt,
    /// Keep polling and print new decisions as they come, until Ctrl-C.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only decisions with a sequence number above this.
    #[arg(long, default_value_t = 0)]
    pub since: u64,
    /// Seconds between polls with --follow (below 10: lvsd records while someone asks).
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    pub interval: f64,
}

/// `simulate`.
#[derive(Debug, Clone, Default, Args)]
pub struct SimulateArgs {
    /// The service.
    #[command(flatten)]
    pub service: ServiceOpt,
    /// The client's address and port.
    #[arg(long, value_name = "IP:PORT")]
    pub client: String,
    /// [VIP:PORT] when not given with -t/-u.
    #[arg(value_name = "VIP:PORT")]
    pub positional: Option<String>,
}

/// A service alone: `[-t|-u] VIP:PORT` or positional.
#[derive(Debug, Clone, Default, Args)]
pub struct ServiceArgs {
    /// The service.
    #[command(flatten)]
    pub service: ServiceOpt,
    /// [VIP:PORT] when not given with -t/-u.
    #[arg(value_name = "VIP:PORT")]
    pub positional: Option<String>,
}

impl ServiceArgs {
    /// The service named.
    pub fn key(&self) -> Result<ServiceKey, UsageError> {
        match (self.service.key()?, &self.positional) {
            (Some(k), None) => Ok(k),
            (None, Some(p)) => parse_positional_service(p),
            (None, None) => Err(UsageError(
                "missing the virtual service (-t VIP:PORT)".into(),
            )),
            (Some(_), Some(p)) => Err(UsageError(format!("unexpected argument `{p}`"))),
        }
    }
}

/// `add-service`.
#[derive(Debug, Clone, Default, Args)]
pub struct AddServiceArgs {
    /// The service.
    #[command(flatten)]
    pub service: ServiceArgs,
    /// Scheduler (default wlc, as ipvsadm).
    #[arg(short = 's', long, default_value = "wlc")]
    pub scheduler: String,
    /// Real servers forward by NAT by default (default: direct routing, as ipvsadm).
    #[arg(short = 'm', long = "masquerading", conflicts_with_all = ["gatewaying", "ipip"])]
    pub masquerading: bool,
    /// Real servers forward by direct routing by default (the default).
    #[arg(short = 'g', long = "gatewaying", conflicts_with = "ipip")]
    pub gatewaying: bool,
    /// Real servers forward by IPIP tunnelling by default.
    #[arg(short = 'i', long = "ipip")]
    pub ipip: bool,
    /// Persistence timeout in seconds.
    #[arg(short = 'p', long = "persistent", value_name = "SECS")]
    pub persistent: Option<u64>,
    /// Persistence granularity (with -p), as ipvsadm: a netmask for an IPv4 service
    /// (default 255.255.255.255), a prefix length 1..=128 for an IPv6 one (default 128).
    #[arg(
        short = 'M',
        long = "netmask",
        value_name = "NETMASK",
        requires = "persistent"
    )]
    pub netmask: Option<String>,
    /// Scheduler flags, comma-separated (sh-fallback, sh-port, mh-fallback, mh-port, ...).
    #[arg(short = 'b', long = "sched-flags", value_name = "FLAGS")]
    pub flags: Option<String>,
    /// One-packet scheduling (UDP only).
    #[arg(short = 'o', long = "ops")]
    pub one_packet: bool,
}

/// `add-server`.
#[derive(Debug, Clone, Default, Args)]
pub struct AddServerArgs {
    /// Service and real server.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Weight (default 1).
    #[arg(short = 'w', long, value_name = "N", default_value = "1")]
    pub weight: String,
    /// Forward by NAT (default: the service's method).
    #[arg(short = 'm', long = "masquerading", conflicts_with_all = ["gatewaying", "ipip"])]
    pub masquerading: bool,
    /// Forward by direct routing (default: the service's method).
    #[arg(short = 'g', long = "gatewaying", conflicts_with = "ipip")]
    pub gatewaying: bool,
    /// Forward by IPIP tunnelling (default: the service's method).
    #[arg(short = 'i', long = "ipip")]
    pub ipip: bool,
    /// Upper connection threshold (0 = none).
    #[arg(
        short = 'x',
        long = "u-threshold",
        value_name = "N",
        default_value_t = 0
    )]
    pub upper_threshold: u32,
    /// Lower connection threshold (0 = none).
    #[arg(
        short = 'y',
        long = "l-threshold",
        value_name = "N",
        default_value_t = 0
    )]
    pub lower_threshold: u32,
}

/// `kill-conn` and `kill-template`.
#[derive(Debug, Clone, Default, Args)]
pub struct KillArgs {
    /// The service.
    #[command(flatten)]
    pub service: ServiceOpt,
    /// The client: IP:PORT for a connection, IP for a template.
    #[arg(long, value_name = "CLIENT")]
    pub client: String,
    /// [VIP:PORT] when not given with -t/-u.
    #[arg(value_name = "VIP:PORT")]
    pub positional: Option<String>,
}

/// `save-config`.
#[derive(Debug, Clone, Default, Args)]
pub struct SaveConfigArgs {
    /// The file to write, as lvsd sees it (made absolute against lvsctl's directory).
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
}

/// `events`.
#[derive(Debug, Clone, Default, Args)]
pub struct EventsArgs {
    /// Keep polling and print new events as they come, until Ctrl-C.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only events with a sequence number above this.
    #[arg(long, default_value_t = 0)]
    pub since: u64,
    /// Seconds between polls with --follow.
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    pub interval: f64,
}

/// `VIP:PORT` of `protocol`: `203.0.113.10:80` or `[2001:db8:f::10]:80`.
pub fn parse_service(protocol: Protocol, s: &str) -> Result<ServiceKey, UsageError> {
    let sa = lvs_proto::parse_socket_addr(
        s,
        "a virtual service VIP:PORT",
        "203.0.113.10:80",
        "[2001:db8:f::10]:80",
    )
    .map_err(UsageError)?;
    Ok(ServiceKey {
        protocol,
        vip: sa.ip(),
        port: sa.port(),
    })
}

/// `-M` of `add-service` for a service on `vip` (ipvsadm's rules): a dotted netmask for
/// IPv4 (`255.255.255.0`), a prefix length 1..=128 for IPv6 (`64`). Answers the
/// [`lvs_proto::PersistenceInfo`] fields `(netmask, prefix6)`; the other family's keeps
/// its default.
pub fn parse_persistence_mask(
    vip: std::net::IpAddr,
    s: Option<&str>,
) -> Result<(Ipv4Addr, u8), UsageError> {
    let Some(s) = s.map(str::trim) else {
        return Ok((Ipv4Addr::BROADCAST, 128));
    };
    if vip.is_ipv6() {
        match s.parse::<u8>() {
            Ok(len) if (1..=128).contains(&len) => Ok((Ipv4Addr::BROADCAST, len)),
            _ => Err(UsageError(format!(
                "-M `{s}`: an IPv6 service takes a prefix length 1..=128 (e.g. -M 64)"
            ))),
        }
    } else {
        let mask: Ipv4Addr = s.parse().map_err(|_| {
            UsageError(format!(
                "-M `{s}`: an IPv4 service takes a netmask (e.g. -M 255.255.255.0)"
            ))
        })?;
        // A netmask is ones then zeros.
        let m = u32::from(mask);
        if m.leading_ones() + m.trailing_zeros() != 32 {
            return Err(UsageError(format!("-M `{s}` is not a netmask")));
        }
        Ok((mask, 128))
    }
}

/// A positional service: `VIP:PORT` (TCP), `tcp:VIP:PORT` or `udp:VIP:PORT` (IPv6 in
/// brackets: `tcp:[2001:db8:f::10]:80`).
pub fn parse_positional_service(s: &str) -> Result<ServiceKey, UsageError> {
    let lower = s.to_ascii_lowercase();
    if let Some(rest) = lower.strip_prefix("udp:") {
        parse_service(Protocol::Udp, rest)
    } else if let Some(rest) = lower.strip_prefix("tcp:") {
        parse_service(Protocol::Tcp, rest)
    } else {
        parse_service(Protocol::Tcp, s)
    }
}

/// `RIP:PORT`: `192.0.2.11:80` or `[2001:db8:b::11]:80`.
pub fn parse_real_server(s: &str) -> Result<RealServerKey, UsageError> {
    lvs_proto::parse_socket_addr(
        s,
        "a real server RIP:PORT",
        "192.0.2.11:80",
        "[2001:db8:b::11]:80",
    )
    .map(RealServerKey::from)
    .map_err(UsageError)
}

/// A weight, 0..=65535 as ipvsadm accepts.
pub fn parse_weight(s: &str) -> Result<u32, UsageError> {
    match s.trim().parse::<u64>() {
        Ok(w) if w <= u64::from(lvs_proto::MAX_WEIGHT) => Ok(w as u32),
        Ok(w) => Err(UsageError(format!(
            "weight {w} out of range 0..={}",
            lvs_proto::MAX_WEIGHT
        ))),
        Err(_) => Err(UsageError(format!(
            "`{s}` is not a weight (an integer 0..={})",
            lvs_proto::MAX_WEIGHT
        ))),
    }
}

/// A service, a real server and (with `weight`) a weight from options or positionals, in
/// that order: options win, positionals fill what is missing, leftovers are an error.
pub fn resolve_target_weighted(
    target: &TargetArgs,
    weight: &str,
) -> Result<(ServiceKey, RealServerKey, u32), UsageError> {
    let (service, real_server, _) = resolve_target(target, None, false)?;
    Ok((service, real_server, parse_weight(weight)?))
}

/// The service, real server and (with `want_weight`) weight of a command line.
pub fn resolve_target(
    target: &TargetArgs,
    weight_opt: Option<&str>,
    want_weight: bool,
) -> Result<(ServiceKey, RealServerKey, Option<u32>), UsageError> {
    let mut pos = target.positional.iter();
    let service = match target.service.key()? {
        Some(k) => k,
        None => match pos.next() {
            Some(s) => parse_positional_service(s)?,
            None => {
                return Err(UsageError(
                    "missing the virtual service (-t VIP:PORT)".into(),
                ));
            }
        },
    };
    let real_server = match &target.real_server {
        Some(r) => parse_real_server(r)?,
        None => match pos.next() {
            Some(r) => parse_real_server(r)?,
            None => return Err(UsageError("missing the real server (-r RIP:PORT)".into())),
        },
    };
    let weight = if want_weight {
        match weight_opt {
            Some(w) => Some(parse_weight(w)?),
            None => match pos.next() {
                Some(w) => Some(parse_weight(w)?),
                None => return Err(UsageError("missing the weight (-w N)".into())),
            },
        }
    } else {
        None
    };
    if let Some(extra) = pos.next() {
        return Err(UsageError(format!("unexpected argument `{extra}`")));
    }
    Ok((service, real_server, weight))
}

/// Options of ipvsadm (and lvsctl's globals) that take a value.
const SHORT_WITH_VALUE: &[char] = &['t', 'u', 'f', 'r', 'w', 'x', 'y', 's', 'M'];
const LONG_WITH_VALUE: &[&str] = &[
    "--socket",
    "--connect",
    "--ca",
    "--cert",
    "--key",
    "--tls-name",
    "--tcp-service",
    "--udp-service",
    "--fwmark-service",
    "--real-server",
    "--weight",
    "--u-threshold",
    "--l-threshold",
    "--scheduler",
    "--netmask",
];

/// lvsctl's global options that take a value (they may precede an ipvsadm form).
const GLOBALS_WITH_VALUE: &[&str] = &[
    "--socket",
    "--connect",
    "--ca",
    "--cert",
    "--key",
    "--tls-name",
];

/// ipvsadm commands lvsctl has no counterpart for, with what to do instead.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("-A", "add-service"),
    ("--add-service", "add-service"),
    ("-E", "edit-service"),
    ("--edit-service", "edit-service"),
    ("-D", "delete-service"),
    ("--delete-service", "delete-service"),
    ("-C", "clear"),
    ("--clear", "clear"),
    ("-a", "add-server"),
    ("--add-server", "add-server"),
    ("-d", "delete-server"),
    ("--delete-server", "delete-server"),
    ("-R", "restore"),
    ("--restore", "restore"),
    ("-S", "save"),
    ("--save", "save"),
    ("--set", "set"),
    ("--start-daemon", "start-daemon"),
    ("--stop-daemon", "stop-daemon"),
];

/// Rewrites an ipvsadm-style command line into lvsctl's subcommand form:
/// `-Lnc` → `list -n -c`, `-Z -t X` → `zero -t X`, `-e -t X -r Y -w N` →
/// `set-weight --quiet -t X -r Y -w N` (silent on success, as ipvsadm is). Global options
/// (`--json`, `--socket PATH`, `--connect URL --ca F --cert F --key F`) may come first. A line without a command option (`-n`,
/// `--stats`) lists, as ipvsadm does.
pub fn translate_ipvsadm(args: &[String]) -> Result<Vec<String>, UsageError> {
    let mut out: Vec<String> = args.iter().take(1).cloned().collect();
    let mut i = 1;
    while i < args.len() {
        let a = args[i].as_str();
        let with_value = GLOBALS_WITH_VALUE.contains(&a);
        let joined = GLOBALS_WITH_VALUE
            .iter()
            .any(|g| a.strip_prefix(g).is_some_and(|v| v.starts_with('=')));
        if a == "--json" || joined {
            out.push(a.to_owned());
            i += 1;
        } else if with_value {
            out.extend(args[i..].iter().take(2).cloned());
            i += 2;
        } else {
            break;
        }
    }
    let rest = args.get(i..).unwrap_or_default();
    let Some(first) = rest.first() else {
        return Ok(out);
    };
    if !first.starts_with('-') || ["-h", "--help", "-V", "--version"].contains(&first.as_str()) {
        out.extend(rest.iter().cloned());
        return Ok(out);
    }

    // Split short-option clusters (`-Lnc`, `-t203.0.113.10:80`) as getopt does.
    let mut tokens: Vec<(String, bool)> = Vec::new(); // (token, is a value)
    let mut expect_value = false;
    for t in rest {
        if expect_value {
            tokens.push((t.clone(), true));
            expect_value = false;
        } else if t.starts_with("--") {
            expect_value = LONG_WITH_VALUE.contains(&t.as_str());
            tokens.push((t.clone(), false));
        } else if t.len() > 1 && t.starts_with('-') {
            let body = &t[1..];
            for (k, c) in body.char_indices() {
                tokens.push((format!("-{c}"), false));
                if SHORT_WITH_VALUE.contains(&c) {
                    let value = &body[k + c.len_utf8()..];
                    if value.is_empty() {
                        expect_value = true;
                    } else {
                        tokens.push((value.to_owned(), true));
                    }
                    break;
                }
            }
        } else {
            tokens.push((t.clone(), false));
        }
    }

    let mut command: Option<&str> = None;
    let mut options: Vec<String> = Vec::new();
    let mut help = false;
    for (t, is_value) in tokens {
        let this = if is_value {
            None
        } else {
            match t.as_str() {
                "-L" | "-l" | "--list" => Some("list"),
                "-Z" | "--zero" => Some("zero"),
                "-e" | "--edit-server" => Some("set-weight"),
                "-h" | "--help" => {
                    help = true;
                    continue;
                }
                other => {
                    if let Some((_, name)) = UNSUPPORTED.iter().find(|(o, _)| *o == other) {
                        return Err(UsageError(format!(
                            "ipvsadm's {other} ({name}) is not available in lvsctl: services \
                             and real servers come from lvsd's configuration file (edit it, \
                             then reload lvsd with SIGHUP)"
                        )));
                    }
                    None
                }
            }
        };
        match (this, command) {
            (Some(c), None) => command = Some(c),
            (Some(c), Some(prev)) if c != prev => {
                return Err(UsageError("multiple commands specified".into()));
            }
            (Some(_), Some(_)) => {}
            (None, _) => options.push(t),
        }
    }
    if help {
        out.push("--help".into());
        return Ok(out);
    }
    let command = command.unwrap_or("list");
    out.push(command.to_owned());
    if command == "set-weight" {
        out.push("--quiet".into());
    }
    out.extend(options);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn tr(line: &str) -> Result<String, UsageError> {
        let args: Vec<String> = line.split(' ').map(str::to_owned).collect();
        translate_ipvsadm(&args).map(|v| v.join(" "))
    }

    #[test]
    fn ipvsadm_lines_become_subcommands() {
        assert_eq!(tr("lvsctl -Ln").unwrap(), "lvsctl list -n");
        assert_eq!(tr("lvsctl -Lnc").unwrap(), "lvsctl list -n -c");
        assert_eq!(
            tr("lvsctl -L -n --stats --exact").unwrap(),
            "lvsctl list -n --stats --exact"
        );
        assert_eq!(
            tr("lvsctl -Ln -t 203.0.113.10:80").unwrap(),
            "lvsctl list -n -t 203.0.113.10:80"
        );
        assert_eq!(
            tr("lvsctl -Lnt203.0.113.10:80").unwrap(),
            "lvsctl list -n -t 203.0.113.10:80"
        );
        assert_eq!(
            tr("lvsctl -t 203.0.113.10:80 -Ln").unwrap(),
            "lvsctl list -t 203.0.113.10:80 -n"
        );
        assert_eq!(tr("lvsctl -Z").unwrap(), "lvsctl zero");
        assert_eq!(
            tr("lvsctl -Z -u 203.0.113.10:53").unwrap(),
            "lvsctl zero -u 203.0.113.10:53"
        );
        assert_eq!(
            tr("lvsctl -e -t 203.0.113.10:80 -r 192.0.2.11:80 -g -w 0").unwrap(),
            "lvsctl set-weight --quiet -t 203.0.113.10:80 -r 192.0.2.11:80 -g -w 0"
        );
        assert_eq!(tr("lvsctl --stats").unwrap(), "lvsctl list --stats");
        assert_eq!(tr("lvsctl -n").unwrap(), "lvsctl list -n");
        assert_eq!(tr("lvsctl -h").unwrap(), "lvsctl -h");
        assert_eq!(tr("lvsctl -Lh").unwrap(), "lvsctl --help");
    }

    #[test]
    fn globals_may_come_first_and_subcommands_pass_through() {
        assert_eq!(
            tr("lvsctl --json --socket /tmp/s -Ln").unwrap(),
            "lvsctl --json --socket /tmp/s list -n"
        );
        assert_eq!(
            tr("lvsctl --connect tls://h:7443 --ca /a --cert=/c --key /k -Ln").unwrap(),
            "lvsctl --connect tls://h:7443 --ca /a --cert=/c --key /k list -n"
        );
        assert_eq!(
            tr("lvsctl --socket=/tmp/s -Ln").unwrap(),
            "lvsctl --socket=/tmp/s list -n"
        );
        assert_eq!(
            tr("lvsctl list -nc --json").unwrap(),
            "lvsctl list -nc --json"
        );
        assert_eq!(
            tr("lvsctl --json set-weight 203.0.113.10:80 192.0.2.11:80 0").unwrap(),
            "lvsctl --json set-weight 203.0.113.10:80 192.0.2.11:80 0"
        );
        assert_eq!(tr("lvsctl").unwrap(), "lvsctl");
    }

    #[test]
    fn unsupported_and_conflicting_commands_are_usage_errors() {
        let e = tr("lvsctl -a -t 203.0.113.10:80 -r 192.0.2.11:80").unwrap_err();
        assert!(e.0.contains("-a (add-server)"), "{e}");
        assert!(tr("lvsctl -C").is_err());
        assert_eq!(
            tr("lvsctl -L -Z").unwrap_err().0,
            "multiple commands specified"
        );
    }

    #[test]
    fn clap_accepts_the_translated_lines() {
        for line in [
            "lvsctl -Ln",
            "lvsctl -Lnc",
            "lvsctl -Ln --stats --exact -t 203.0.113.10:80",
            "lvsctl -Ln --rate -u 203.0.113.10:53",
            "lvsctl -Ln --thresholds",
            "lvsctl -Ln --persistent-conn",
            "lvsctl -Z -t 203.0.113.10:80",
            "lvsctl -e -t 203.0.113.10:80 -r 192.0.2.11:80 -m -w 5",
            "lvsctl --json list",
            "lvsctl set-weight -t 203.0.113.10:80 -r 192.0.2.11:80 5",
            "lvsctl weight 203.0.113.10:80 192.0.2.11:80 5",
            "lvsctl drain 203.0.113.10:80 192.0.2.11:80 --wait --timeout 30",
            "lvsctl undrain -t 203.0.113.10:80 -r 192.0.2.11:80",
            "lvsctl decisions -t 203.0.113.10:80 --follow",
            "lvsctl simulate -t 203.0.113.10:80 --client 198.51.100.7:40000",
            "lvsctl events --follow --since 4",
            "lvsctl conns --state ESTABLISHED --client 198.51.100.0/24",
        ] {
            let args: Vec<String> = line.split(' ').map(str::to_owned).collect();
            let translated = translate_ipvsadm(&args).unwrap();
            if let Err(e) = Cli::try_parse_from(&translated) {
                panic!("{line}: {e}");
            }
        }
    }

    #[test]
    fn targets_from_options_or_positionals() {
        let svc = ServiceKey::tcp(Ipv4Addr::new(203, 0, 113, 10), 80);
        let rs = RealServerKey::new(Ipv4Addr::new(192, 0, 2, 11), 80);
        let t = TargetArgs {
            positional: vec!["203.0.113.10:80".into(), "192.0.2.11:80".into(), "7".into()],
            ..TargetArgs::default()
        };
        assert_eq!(resolve_target(&t, None, true), Ok((svc, rs, Some(7))));
        let t = TargetArgs {
            service: ServiceOpt {
                tcp: None,
                udp: Some("203.0.113.10:80".into()),
            },
            real_server: Some("192.0.2.11:80".into()),
            ..TargetArgs::default()
        };
        let (s, _, w) = resolve_target(&t, Some("0"), true).unwrap();
        assert_eq!(s.protocol, Protocol::Udp);
        assert_eq!(w, Some(0));
        let t = TargetArgs {
            positional: vec!["udp:203.0.113.10:80".into(), "192.0.2.11:80".into()],
            ..TargetArgs::default()
        };
        assert_eq!(
            resolve_target(&t, None, false).unwrap().0.protocol,
            Protocol::Udp
        );
        let t = TargetArgs {
            positional: vec!["203.0.113.10:80".into(), "192.0.2.11:80".into(), "x".into()],
            ..TargetArgs::default()
        };
        assert_eq!(
            resolve_target(&t, None, false).unwrap_err().0,
            "unexpected argument `x`"
        );
        assert!(resolve_target(&TargetArgs::default(), None, false).is_err());
    }

    #[test]
    fn weights_and_addresses_are_checked() {
        assert_eq!(parse_weight("65535"), Ok(65535));
        assert_eq!(
            parse_weight("65536").unwrap_err().0,
            "weight 65536 out of range 0..=65535"
        );
        assert!(parse_weight("-1").is_err());
        assert!(parse_service(Protocol::Tcp, "203.0.113.10").is_err());
        assert!(parse_real_server("192.0.2.11").is_err());
    }

    #[test]
    fn ipv6_services_and_real_servers_parse_in_brackets() {
        let vip: std::net::IpAddr = "2001:db8:f::10".parse().unwrap();
        let rip: std::net::IpAddr = "2001:db8:b::11".parse().unwrap();
        assert_eq!(
            parse_service(Protocol::Tcp, "[2001:db8:f::10]:80"),
            Ok(ServiceKey::tcp(vip, 80))
        );
        assert_eq!(
            parse_positional_service("udp:[2001:db8:f::10]:53"),
            Ok(ServiceKey::udp(vip, 53))
        );
        assert_eq!(
            parse_positional_service("TCP:[2001:DB8:F::10]:80"),
            Ok(ServiceKey::tcp(vip, 80))
        );
        assert_eq!(
            parse_real_server("[2001:db8:b::11]:8080"),
            Ok(RealServerKey::new(rip, 8080))
        );
        let e = parse_service(Protocol::Tcp, "2001:db8:f::10:80").unwrap_err();
        assert!(e.0.contains("brackets"), "{e}");
        assert!(parse_real_server("[2001:db8:b::11]").is_err());
        let t = TargetArgs {
            positional: vec![
                "[2001:db8:f::10]:80".into(),
                "[2001:db8:b::11]:80".into(),
                "3".into(),
            ],
            ..TargetArgs::default()
        };
        assert_eq!(
            resolve_target(&t, None, true),
            Ok((
                ServiceKey::tcp(vip, 80),
                RealServerKey::new(rip, 80),
                Some(3)
            ))
        );
        // ipvsadm-style lines with IPv6 pass through the translation and clap.
        for line in [
            "lvsctl -Ln -t [2001:db8:f::10]:80",
            "lvsctl -e -t [2001:db8:f::10]:80 -r [2001:db8:b::11]:80 -m -w 5",
            "lvsctl -Z -u [2001:db8:f::10]:53",
            "lvsctl simulate -t [2001:db8:f::10]:80 --client [2001:db8:c::10]:40000",
            "lvsctl conns --client 2001:db8:c::/64",
            "lvsctl add-service -t [2001:db8:f::10]:80 -s rr -m -p 300 -M 64",
        ] {
            let args: Vec<String> = line.split(' ').map(str::to_owned).collect();
            let translated = translate_ipvsadm(&args).unwrap();
            if let Err(e) = Cli::try_parse_from(&translated) {
                panic!("{line}: {e}");
            }
        }
    }

    #[test]
    fn persistence_masks_follow_the_service_family() {
        let v4: std::net::IpAddr = "203.0.113.10".parse().unwrap();
        let v6: std::net::IpAddr = "2001:db8:f::10".parse().unwrap();
        assert_eq!(
            parse_persistence_mask(v4, None),
            Ok((Ipv4Addr::BROADCAST, 128))
        );
        assert_eq!(
            parse_persistence_mask(v4, Some("255.255.255.0")),
            Ok((Ipv4Addr::new(255, 255, 255, 0), 128))
        );
        assert!(parse_persistence_mask(v4, Some("255.0.255.0")).is_err());
        assert!(parse_persistence_mask(v4, Some("24")).is_err());
        assert_eq!(
            parse_persistence_mask(v6, Some("64")),
            Ok((Ipv4Addr::BROADCAST, 64))
        );
        assert!(parse_persistence_mask(v6, Some("0")).is_err());
        assert!(parse_persistence_mask(v6, Some("129")).is_err());
        assert!(parse_persistence_mask(v6, Some("ffff:ffff::")).is_err());
    }
}
