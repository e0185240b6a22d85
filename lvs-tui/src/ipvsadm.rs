//! ipvsadm's listing formats, byte for byte: `-Ln` and its `--stats`, `--rate`,
//! `--thresholds`, `--persistent-conn` and `--exact` variants, `-Lnc` and `--timeout`.
//!
//! Contract:
//! - The input is a plain view model ([`ServiceRow`], [`DestRow`], [`ConnRow`]) so the layout
//!   is tested without a daemon; [`crate::cli`] fills it from the control API.
//! - Every line is what ipvsadm 1.31's `printf` format produces for the same values,
//!   including its trailing padding (`%-10u` on the last column leaves spaces at the end of a
//!   real-server line): scripts that `awk` or `cut` ipvsadm's output read ours the same way.
//!   Addresses are always numeric (`-n`); lvsctl never resolves names.
//! - Order is ipvsadm's default (`ipvs_cmp_services`, `ipvs_cmp_dests`): services by fwmark,
//!   address family, protocol number, address, port; real servers by address, then port —
//!   unless [`ListOptions::nosort`] asks for the daemon's order. (ipvsadm compares addresses
//!   by a wrapping 32-bit subtraction, which is not a total order across more than 2^31
//!   apart; we use the plain numeric order it means.)
//! - The connection table is printed in the order given (ipvsadm prints /proc's hash order,
//!   which has no meaning to copy).

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use lvs_proto::Counters;

/// The five estimated rates of ipvsadm `--rate`, per second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rates {
    /// Connections per second.
    pub cps: u64,
    /// Packets per second from clients.
    pub inpps: u64,
    /// Packets per second from real servers.
    pub outpps: u64,
    /// Bytes per second from clients.
    pub inbps: u64,
    /// Bytes per second from real servers.
    pub outbps: u64,
}

/// What identifies a virtual service, as ipvsadm's `Prot LocalAddress:Port` column shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceKey {
    /// `TCP  VIP:PORT`.
    Tcp(SocketAddr),
    /// `UDP  VIP:PORT`.
    Udp(SocketAddr),
    /// `SCTP  VIP:PORT`.
    Sctp(SocketAddr),
    /// `FWM  MARK` (with ` IPv6` for an IPv6 fwmark service).
    Fwmark {
        /// The firewall mark.
        mark: u32,
        /// Whether the service is IPv6.
        ipv6: bool,
    },
}

impl ServiceKey {
    /// ipvsadm's sort key: fwmark, address family, protocol number, address, port.
    fn sort_key(&self) -> (u32, u8, u8, u128, u16) {
        let with = |proto: u8, a: &SocketAddr| {
            let (family, addr) = ip_key(a.ip());
            (0, family, proto, addr, a.port())
        };
        match self {
            ServiceKey::Tcp(a) => with(6, a),
            ServiceKey::Udp(a) => with(17, a),
            ServiceKey::Sctp(a) => with(132, a),
            ServiceKey::Fwmark { mark, ipv6 } => (*mark, if *ipv6 { 10 } else { 2 }, 0, 0, 0),
        }
    }

    /// Whether this is an IPv6 service (ipvsadm truncates IPv4 names only).
    fn is_ipv6(&self) -> bool {
        match self {
            ServiceKey::Tcp(a) | ServiceKey::Udp(a) | ServiceKey::Sctp(a) => a.is_ipv6(),
            ServiceKey::Fwmark { ipv6, .. } => *ipv6,
        }
    }

    /// The service name ipvsadm prints: `TCP  10.0.0.1:80`, `FWM  258`.
    pub fn ipvsadm_name(&self) -> String {
        let mut name = match self {
            ServiceKey::Tcp(a) => format!("TCP  {}", addr_port(a)),
            ServiceKey::Udp(a) => format!("UDP  {}", addr_port(a)),
            ServiceKey::Sctp(a) => format!("SCTP  {}", addr_port(a)),
            ServiceKey::Fwmark { mark, ipv6: false } => return format!("FWM  {mark}"),
            ServiceKey::Fwmark { mark, ipv6: true } => return format!("FWM  {mark} IPv6"),
        };
        if !self.is_ipv6() {
            // ipvsadm: `svc_name[33] = '\0'` for IPv4 (never reached by a real address).
            name.truncate(33);
        }
        name
    }
}

/// (family as in AF_INET=2 / AF_INET6=10, address as a number) for sorting.
fn ip_key(ip: IpAddr) -> (u8, u128) {
    match ip {
        IpAddr::V4(v4) => (2, u128::from(u32::from(v4))),
        IpAddr::V6(v6) => (10, u128::from(v6)),
    }
}

/// `ADDR:PORT`, with brackets for IPv6, as ipvsadm's `addrport_to_anyname` in numeric mode.
pub fn addr_port(a: &SocketAddr) -> String {
    match a {
        SocketAddr::V4(v4) => format!("{}:{}", v4.ip(), v4.port()),
        SocketAddr::V6(v6) => format!("[{}]:{}", v6.ip(), v6.port()),
    }
}

/// ipvsadm's `Forward` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    /// NAT (`-m`).
    Masq,
    /// Direct routing (`-g`).
    Route,
    /// IPIP tunnelling (`-i`).
    Tunnel,
    /// The director itself.
    Local,
}

impl Forward {
    /// The word ipvsadm prints.
    pub fn name(self) -> &'static str {
        match self {
            Forward::Masq => "Masq",
            Forward::Route => "Route",
            Forward::Tunnel => "Tunnel",
            Forward::Local => "Local",
        }
    }
}

/// Persistence settings of a service (`persistent T [mask M]`).
///
/// ipvsadm prints the mask of an IPv4 service dotted (`mask 255.255.255.0`) and that of an
/// IPv6 service as a prefix length (`mask 64`), each only when it is not the default (/32,
/// /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Persistence {
    /// Template timeout in seconds.
    pub timeout_secs: u32,
    /// Client netmask for IPv4 services; `255.255.255.255` is not printed.
    pub netmask: Ipv4Addr,
    /// Client prefix length for IPv6 services; 128 is not printed.
    pub prefix6: u8,
}

/// One virtual service and its real servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRow {
    /// Protocol and address (or fwmark).
    pub key: ServiceKey,
    /// Scheduler name (`wlc`, ...).
    pub scheduler: String,
    /// Scheduler flag names in ipvsadm's order (`sh-fallback`, `sh-port`, `flag-3`).
    pub sched_flags: Vec<String>,
    /// Persistence, if the service is persistent.
    pub persistence: Option<Persistence>,
    /// One-packet scheduling (`ops`).
    pub one_packet: bool,
    /// Cumulative counters.
    pub stats: Counters,
    /// Estimated rates.
    pub rates: Rates,
    /// Real servers.
    pub dests: Vec<DestRow>,
}

/// One real server of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestRow {
    /// RIP:port.
    pub addr: SocketAddr,
    /// Forwarding method.
    pub forward: Forward,
    /// Weight.
    pub weight: i64,
    /// Active connections.
    pub active: u64,
    /// Inactive connections.
    pub inactive: u64,
    /// Persistence templates pointing at this server.
    pub persistent: u64,
    /// Upper connection threshold (`-x`), 0 = none.
    pub upper_threshold: u64,
    /// Lower connection threshold (`-y`), 0 = none.
    pub lower_threshold: u64,
    /// Cumulative counters.
    pub stats: Counters,
    /// Estimated rates.
    pub rates: Rates,
}

impl DestRow {
    fn sort_key(&self) -> (u8, u128, u16) {
        let (family, addr) = ip_key(self.addr.ip());
        (family, addr, self.addr.port())
    }
}

/// Which columns `-L` shows (ipvsadm's options are exclusive in this order of precedence).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum View {
    /// `Forward Weight ActiveConn InActConn`.
    #[default]
    Default,
    /// `--stats`: cumulative counters.
    Stats,
    /// `--rate`: estimated rates.
    Rate,
    /// `--thresholds`: upper and lower connection thresholds.
    Thresholds,
    /// `--persistent-conn`: persistence templates per server.
    PersistentConn,
}

/// Options of a `-L` listing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// The columns.
    pub view: View,
    /// `--exact`: no K/M/G/T abbreviation.
    pub exact: bool,
    /// `--nosort`: keep the daemon's order.
    pub nosort: bool,
}

/// ipvsadm's first line, `IP Virtual Server version X (size=N)`.
pub fn version_line(version: &str, size: u64) -> String {
    format!("IP Virtual Server version {version} (size={size})\n")
}

/// A `-L` listing: `first_line` (the version line of a full listing; ipvsadm omits it when
/// one service is asked for), the column titles, then each service and its real servers.
pub fn format_list(first_line: Option<&str>, services: &[ServiceRow], opts: ListOptions) -> String {
    let mut out = String::new();
    if let Some(line) = first_line {
        out.push_str(line);
    }
    out.push_str(title(opts.view));
    let mut order: Vec<&ServiceRow> = services.iter().collect();
    if !opts.nosort {
        order.sort_by_key(|s| s.key.sort_key());
    }
    for svc in order {
        service_entry(&mut out, svc, opts);
    }
    out
}

/// The column titles (ipvsadm's `print_title`).
fn title(view: View) -> &'static str {
    match view {
        View::Stats => concat!(
            "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n",
            "  -> RemoteAddress:Port\n"
        ),
        View::Rate => concat!(
            "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS\n",
            "  -> RemoteAddress:Port\n"
        ),
        View::Thresholds => concat!(
            "Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn \n",
            "  -> RemoteAddress:Port\n"
        ),
        View::PersistentConn => concat!(
            "Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn \n",
            "  -> RemoteAddress:Port\n"
        ),
        View::Default => concat!(
            "Prot LocalAddress:Port Scheduler Flags\n",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
        ),
    }
}

/// One service line and its real-server lines (ipvsadm's `print_service_entry`).
fn service_entry(out: &mut String, svc: &ServiceRow, opts: ListOptions) {
    let name = svc.key.ipvsadm_name();
    match opts.view {
        View::Stats => {
            let _ = write!(out, "{name:<33}");
            counters(out, &svc.stats, opts.exact);
        }
        View::Rate => {
            let _ = write!(out, "{name:<33}");
            rates(out, &svc.rates, opts.exact);
        }
        View::Default | View::Thresholds | View::PersistentConn => {
            let _ = write!(out, "{name} {}", svc.scheduler);
            if !svc.sched_flags.is_empty() {
                let _ = write!(out, " ({})", svc.sched_flags.join(","));
            }
            if let Some(p) = &svc.persistence {
                let _ = write!(out, " persistent {}", p.timeout_secs);
                if !svc.key.is_ipv6() && p.netmask != Ipv4Addr::BROADCAST {
                    let _ = write!(out, " mask {}", p.netmask);
                }
                if svc.key.is_ipv6() && p.prefix6 != 128 {
                    let _ = write!(out, " mask {}", p.prefix6);
                }
            }
            if svc.one_packet {
                out.push_str(" ops");
            }
        }
    }
    out.push('\n');

    let mut dests: Vec<&DestRow> = svc.dests.iter().collect();
    if !opts.nosort {
        dests.sort_by_key(|d| d.sort_key());
    }
    for d in dests {
        let mut dname = addr_port(&d.addr);
        if !svc.key.is_ipv6() {
            // ipvsadm: `dname[28] = '\0'` for IPv4 services.
            dname.truncate(28);
        }
        match opts.view {
            View::Stats => {
                let _ = write!(out, "  -> {dname:<28}");
                counters(out, &d.stats, opts.exact);
                out.push('\n');
            }
            View::Rate => {
                let _ = write!(out, "  -> {dname:<28}");
                rates(out, &d.rates, opts.exact);
                out.push('\n');
            }
            View::Thresholds => {
                let _ = writeln!(
                    out,
                    "  -> {dname:<28} {:<10} {:<10} {:<10} {:<10}",
                    d.upper_threshold, d.lower_threshold, d.active, d.inactive
                );
            }
            View::PersistentConn => {
                let _ = writeln!(
                    out,
                    "  -> {dname:<28} {:<9} {:<11} {:<10} {:<10}",
                    d.weight, d.persistent, d.active, d.inactive
                );
            }
            View::Default => {
                let _ = writeln!(
                    out,
                    "  -> {dname:<28} {:<7} {:<6} {:<10} {:<10}",
                    d.forward.name(),
                    d.weight,
                    d.active,
                    d.inactive
                );
            }
        }
    }
}

fn counters(out: &mut String, c: &Counters, exact: bool) {
    for n in [c.conns, c.inpkts, c.outpkts, c.inbytes, c.outbytes] {
        out.push_str(&largenum(n, exact));
    }
}

fn rates(out: &mut String, r: &Rates, exact: bool) {
    for n in [r.cps, r.inpps, r.outpps, r.inbps, r.outbps] {
        out.push_str(&largenum(n, exact));
    }
}

/// One number column of `--stats`/`--rate` (ipvsadm's `print_largenum`): 9 characters,
/// right-aligned, abbreviated with K/M/G/T from 100 million on; with `--exact` the full
/// number with at least one leading space.
pub fn largenum(n: u64, exact: bool) -> String {
    if exact {
        let digits = n.to_string();
        let width = if digits.len() <= 8 {
            9
        } else {
            digits.len() + 1
        };
        return format!("{digits:>width$}");
    }
    let abbreviated = crate::ipvsadm_number(n);
    if n < 100_000_000 {
        format!("{abbreviated:>9}")
    } else {
        // `%8lluK`: the digits right-aligned in 8, then the suffix.
        let (digits, suffix) = abbreviated.split_at(abbreviated.len() - 1);
        format!("{digits:>8}{suffix}")
    }
}

/// One entry of the connection table (`-Lnc`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnRow {
    /// Protocol as /proc/net/ip_vs_conn names it (`TCP`, `UDP`, `IP` for an fwmark
    /// template).
    pub protocol: String,
    /// Seconds until the entry expires.
    pub expires_secs: u64,
    /// State name (`ESTABLISHED`, `NONE` for a persistence template, ...).
    pub state: String,
    /// Client address and port (port 0 for a template).
    pub client: SocketAddr,
    /// Virtual address and port.
    pub virt: SocketAddr,
    /// Real server address and port.
    pub dest: SocketAddr,
}

/// `mm:ss` as ipvsadm prints an expiry (`%02d:%02d`; minutes grow past 99, `180:03`).
pub fn expire_mmss(secs: u64) -> String {
    format!("{:02}:{:02}", secs / 60, secs % 60)
}

/// The connection table, `ipvsadm -Lnc` (with `persistent_conn`, the `--persistent-conn`
/// header that adds the persistence-engine columns, which lvsd never fills).
pub fn format_conns(rows: &[ConnRow], persistent_conn: bool) -> String {
    let mut out = String::from("IPVS connection entries\n");
    if persistent_conn {
        out.push_str(
            "pro expire state       source             virtual            destination        pe name          pe_data\n",
        );
    } else {
        out.push_str("pro expire state       source             virtual            destination\n");
    }
    for c in rows {
        let _ = writeln!(
            out,
            "{:<3} {:<6} {:<11} {:<18} {:<18} {}",
            c.protocol,
            expire_mmss(c.expires_secs),
            c.state,
            addr_port(&c.client),
            addr_port(&c.virt),
            addr_port(&c.dest)
        );
    }
    out
}

/// `ipvsadm -L --timeout`.
pub fn format_timeout(tcp: u64, tcp_fin: u64, udp: u64) -> String {
    format!("Timeout (tcp tcpfin udp): {tcp} {tcp_fin} {udp}\n")
}

#[cfg(test)]
mod tests;
