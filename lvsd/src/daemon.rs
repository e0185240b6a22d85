//! The running director: turns a [`Config`] into kernel state and a forwarding loop.
//!
//! Lifecycle, in this order so that no packet for a VIP ever reaches the kernel's own stack
//! unguarded:
//! 1. plan: read interfaces and routes through netlink and resolve every VIP to an interface
//!    and every real server to (interface, next hop, source address). Any error stops here
//!    with nothing installed;
//! 2. install the nftables guard (drops VIP:port and NAT-reply tuples at ingress, after the
//!    packet taps, so lvsd still sees them);
//! 3. open one packet socket per interface, with the socket filter for the owned tuples;
//! 4. add the VIPs that are not already local (remembering which ones lvsd added) — or,
//!    with `[[vrrp_instance]]` tables, start the VRRP driver instead (`vrrp::driver`): it
//!    adds a VIP on becoming master, and the socket filters admit only held VIPs;
//! 5. start the control API (its socket and thread, `control/`);
//! 6. forward until SIGINT/SIGTERM; SIGHUP reloads (a bad config keeps the old one
//!    running); SIGUSR1 prints the counters; control commands run between packet batches;
//!    a service or real server added or removed through the API is applied by the same
//!    path as a reload (`Director::apply`) with the edited running configuration. SIGHUP
//!    re-reads the file and so drops API edits not saved to it (`save_config` first);
//! 7. on the way out stop the control API (its socket file goes), remove the VIPs lvsd
//!    added and the guard, print the counters, exit 0.
//!
//! Invariant: everything lvsd installs is recorded in [`Director`] and undone by
//! [`Director::shutdown`]; the guard table is also owned by lvsd's netlink socket, so the
//! kernel removes it even if lvsd is killed.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use lvs_proto::{Forwarding, Protocol};
use tracing::{error, info, warn};

use lvs_proto::EventKind;

use crate::config::{Config, ControlSettings, HealthCheck};
use crate::config::{IoBackend, IoSettings};
use crate::conn::tcp::{TcpState, Timeouts};
use crate::control::HealthUpdate;
use crate::control::{ControlHandle, Executor};
use crate::dataplane::{
    Dataplane, DataplaneConfig, DestSpec, HealthSpec, Interface, PassiveSpec, Persistence, RxFrame,
    ServiceHealth, ServiceSpec, Stats, Verdict,
};
use crate::health::{HealthReport, HealthRunner, Target, TargetId};
use crate::io::filter::{Filter, FilterSpec};
use crate::io::ring::{RxRing, TxRing};
use crate::io::{PacketSocket, VnetHdr};
use crate::kernel::{GuardDevice, GuardSpec, Kernel, LinkInfo, NftGuard};
use crate::sched::SchedParams;

/// How long startup waits for real servers' MAC addresses before declaring itself ready.
const NEIGHBOUR_WAIT: Duration = Duration::from_secs(3);
/// Upper bound on one wait, so signals are noticed promptly even without traffic.
const MAX_WAIT: Duration = Duration::from_millis(100);
/// When the data path is compared with the health runner after a reconfiguration.
const RECONCILE_FIRST: Duration = Duration::from_millis(300);
/// ... and once more, later.
const RECONCILE_LAST: Duration = Duration::from_secs(2);
/// Frames read from one socket before looking at the others.
const BATCH: usize = 64;
/// Frames taken from one RX ring per round, so that control commands and timers run
/// between rounds even under load.
const RING_BATCH: usize = 256;
/// How soon frames the kernel could not take yet (socket buffer full) are offered again.
const TX_RETRY: Duration = Duration::from_millis(1);
/// Kernel buffer of each packet socket, each way.
const SOCKET_BUFFER: usize = 8 << 20;
/// Receive/transmit buffers hold a full GSO frame.
const FRAME_BUF: usize = crate::io::MAX_FRAME_LEN;

/// Sets up logging to stderr (`RUST_LOG` overrides the default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Checks for root or CAP_NET_RAW + CAP_NET_ADMIN, with one sentence saying what is missing.
pub fn check_privileges() -> Result<(), String> {
    const CAP_NET_ADMIN: u32 = 12;
    const CAP_NET_RAW: u32 = 13;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    let has = |cap: u32| eff & (1 << cap) != 0;
    if has(CAP_NET_ADMIN) && has(CAP_NET_RAW) {
        Ok(())
    } else {
        Err(
            "lvsd needs root, or the capabilities CAP_NET_RAW and CAP_NET_ADMIN \
             (for example `setcap cap_net_raw,cap_net_admin+ep lvsd`)"
                .into(),
        )
    }
}

/// `lvsd --config FILE`: runs until SIGINT/SIGTERM.
pub fn run_from_file(path: &Path) -> ExitCode {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("lvsd: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = check_privileges() {
        eprintln!("lvsd: {e}");
        return ExitCode::from(3);
    }
    let signals = match Signals::register() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("lvsd: cannot install signal handlers: {e}");
            return ExitCode::from(1);
        }
    };
    let mut director = match Director::start(path.to_path_buf(), &config) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("lvsd: {e}");
            return ExitCode::from(1);
        }
    };
    let result = director.run(&signals);
    let report = director.report();
    let cleanup = director.shutdown();
    println!("{report}");
    match (result, cleanup) {
        (Ok(()), Ok(())) => {
            info!("stopped; everything lvsd installed is removed");
            ExitCode::SUCCESS
        }
        (Err(e), _) | (Ok(()), Err(e)) => {
            error!("{e}");
            ExitCode::from(1)
        }
    }
}

/// Signal flags, set from the handlers and read by the loop.
#[derive(Debug)]
struct Signals {
    stop: Arc<AtomicBool>,
    reload: Arc<AtomicBool>,
    dump: Arc<AtomicBool>,
}

impl Signals {
    fn register() -> std::io::Result<Signals> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
        let s = Signals {
            stop: Arc::new(AtomicBool::new(false)),
            reload: Arc::new(AtomicBool::new(false)),
            dump: Arc::new(AtomicBool::new(false)),
        };
        signal_hook::flag::register(SIGINT, Arc::clone(&s.stop))?;
        signal_hook::flag::register(SIGTERM, Arc::clone(&s.stop))?;
        signal_hook::flag::register(SIGHUP, Arc::clone(&s.reload))?;
        signal_hook::flag::register(SIGUSR1, Arc::clone(&s.dump))?;
        Ok(s)
    }
}

/// What a configuration means on this host: the result of the netlink lookups.
#[derive(Debug)]
struct Plan {
    dataplane: DataplaneConfig,
    filter: FilterSpec,
    guard: GuardSpec,
    /// VIPs and the interface each must live on.
    vips: Vec<(IpAddr, u32)>,
}

impl Plan {
    fn build(config: &Config, kernel: &Kernel) -> Result<Plan, String> {
        let links: Vec<LinkInfo> = kernel
            .interfaces()
            .map_err(|e| format!("reading interfaces: {e}"))?
            .into_iter()
            .filter(|l| l.up && l.mac != [0; 6] && l.name != "lo")
            .collect();
        if links.is_empty() {
            return Err("no usable network interface (up, with an Ethernet address)".into());
        }
        let name_of = |ifindex: u32| {
            links
                .iter()
                .find(|l| l.ifindex == ifindex)
                .map(|l| l.name.clone())
                .unwrap_or_else(|| format!("ifindex {ifindex}"))
        };

        let mut vips: Vec<(IpAddr, u32)> = Vec::new();
        let mut services = Vec::with_capacity(config.services.len());
        let mut inbound = Vec::new();
        let mut replies = Vec::new();
        for vs in &config.services {
            if !vips.iter().any(|(v, _)| *v == vs.vip) {
                vips.push((vs.vip, vip_interface(vs.vip, &links, kernel)?));
            }
            inbound.push((vs.protocol, vs.vip, vs.port));
            let mut dests = Vec::with_capacity(vs.real_servers.len());
            for rs in &vs.real_servers {
                let route = RouteTo {
                    addr: rs.addr,
                    port: rs.port,
                    weight: rs.weight,
                    forwarding: rs.forwarding,
                    upper_threshold: rs.upper_threshold,
                    lower_threshold: rs.lower_threshold,
                    health: health_spec(vs, rs),
                };
                dests.push(route.plan(&links, kernel, &name_of)?);
                if rs.forwarding == Forwarding::Nat {
                    replies.push((vs.protocol, rs.addr, rs.port));
                }
            }
            let sorry = match &vs.sorry_server {
                Some(s) => {
                    if vs
                        .real_servers
                        .iter()
                        .any(|rs| (rs.addr, rs.port) == (s.addr, s.port))
                    {
                        return Err(format!(
                            "virtual service {} {}: the sorry server {} is also one of its \
                             real servers",
                            vs.protocol.ipvsadm_name(),
                            SocketAddr::new(vs.vip, vs.port),
                            SocketAddr::new(s.addr, s.port)
                        ));
                    }
                    if s.forwarding == Forwarding::Nat {
                        replies.push((vs.protocol, s.addr, s.port));
                    }
                    let route = RouteTo {
                        addr: s.addr,
                        port: s.port,
                        weight: 1,
                        forwarding: s.forwarding,
                        upper_threshold: 0,
                        lower_threshold: 0,
                        health: HealthSpec::default(),
                    };
                    Some(route.plan(&links, kernel, &name_of)?)
                }
                None => None,
            };
            services.push(ServiceSpec {
                vip: vs.vip,
                port: vs.port,
                protocol: vs.protocol,
                scheduler: vs.scheduler,
                sched_params: SchedParams {
                    flags: vs.scheduler_flags,
                    seed: random_seed(),
                    ..SchedParams::default()
                },
                persistence: vs.persistence.map(|p| Persistence {
                    timeout: p.timeout,
                    netmask: p.netmask,
                    prefix6: p.prefix6,
                    quiescent_template_expire: p.quiescent_template_expire,
                }),
                one_packet: vs.one_packet,
                dests,
                health: ServiceHealth {
                    sorry,
                    quorum: vs.quorum,
                    hysteresis: vs.hysteresis,
                },
            });
        }
        let (inbound, inbound6) = split_families(inbound);
        let (replies, replies6) = split_families(replies);

        // The guard and the filter apply on every interface: a client's packet may arrive
        // on any of them, and the kernel must not answer it on any of them.
        let local: Vec<Ipv4Addr> = links
            .iter()
            .flat_map(|l| l.ipv4.iter().map(|(a, _)| *a))
            .collect();
        let local6: Vec<Ipv6Addr> = links
            .iter()
            .flat_map(|l| l.ipv6.iter().map(|(a, _)| *a))
            .collect();
        let guard = GuardSpec {
            devices: links
                .iter()
                .map(|l| GuardDevice {
                    name: l.name.clone(),
                    drop_dst: inbound.clone(),
                    drop_src: replies.clone(),
                    // Health checks' answers come from RIP:port to the director itself.
                    accept_local: local.clone(),
                    drop_dst6: inbound6.clone(),
                    drop_src6: replies6.clone(),
                    accept_local6: local6.clone(),
                })
                .collect(),
        };
        // lvsd resolves IPv6 next hops itself only when it has IPv6 real servers.
        let ndp = services
            .iter()
            .flat_map(|s: &ServiceSpec| s.dests.iter())
            .any(|d| d.next_hop.is_ipv6());
        let interfaces = links
            .iter()
            .map(|l| Interface {
                ifindex: l.ifindex,
                name: l.name.clone(),
                mac: l.mac,
                ipv4: l.ipv4.iter().map(|(a, _)| *a).collect(),
                ipv6: l.ipv6.iter().map(|(a, _)| *a).collect(),
                mtu: l.mtu,
            })
            .collect();
        let mut timeouts = Timeouts::default();
        timeouts.set_tcp(TcpState::Established, config.timeouts.tcp);
        timeouts.set_tcp(TcpState::FinWait, config.timeouts.tcp_fin);
        timeouts.set_udp(config.timeouts.udp);
        Ok(Plan {
            dataplane: DataplaneConfig {
                interfaces,
                services,
                timeouts,
            },
            filter: FilterSpec {
                inbound,
                replies,
                arp: true,
                inbound6,
                replies6,
                ndp,
            },
            guard,
            vips,
        })
    }
}

/// A real server (or sorry server) to reach: what [`RouteTo::plan`] turns into a
/// [`DestSpec`] through the kernel's route to it.
#[derive(Debug, Clone, Copy)]
struct RouteTo {
    addr: IpAddr,
    port: u16,
    weight: u32,
    forwarding: Forwarding,
    upper_threshold: u32,
    lower_threshold: u32,
    health: HealthSpec,
}

impl RouteTo {
    fn plan(
        &self,
        links: &[LinkInfo],
        kernel: &Kernel,
        name_of: &dyn Fn(u32) -> String,
    ) -> Result<DestSpec, String> {
        // The kernel's route: (ifindex, gateway, our source address on that link).
        let (ifindex, gateway, source): (u32, Option<IpAddr>, Option<IpAddr>) = match self.addr {
            IpAddr::V4(a) => {
                let r = kernel
                    .route_to(a)
                    .map_err(|e| format!("real server {}: no route: {e}", self.addr))?;
                let link = links.iter().find(|l| l.ifindex == r.ifindex);
                let source = r
                    .prefsrc
                    .or_else(|| link.and_then(|l| l.ipv4.first().map(|(a, _)| *a)));
                (r.ifindex, r.gateway.map(IpAddr::V4), source.map(IpAddr::V4))
            }
            IpAddr::V6(a) => {
                let r = kernel
                    .route_to6(a)
                    .map_err(|e| format!("real server {}: no route: {e}", self.addr))?;
                // A global source where there is one; the link-local one otherwise (a
                // Neighbor Solicitation may come from either; a TUN outer header needs
                // a global one, checked below).
                let source = r.source.or(r.link_local);
                (r.ifindex, r.gateway.map(IpAddr::V6), source.map(IpAddr::V6))
            }
        };
        let Some(link) = links.iter().find(|l| l.ifindex == ifindex) else {
            return Err(format!(
                "real server {} is reached through {}, which is this director itself or \
                 an interface lvsd cannot use (down, or without an Ethernet address)",
                self.addr,
                name_of(ifindex)
            ));
        };
        if self.forwarding == Forwarding::Dr {
            if let Some(gw) = gateway {
                return Err(format!(
                    "real server {} is behind the router {gw}: direct routing needs it on a \
                     network attached to this director (or use forwarding = \"nat\")",
                    self.addr
                ));
            }
        }
        let family = if self.addr.is_ipv4() { "IPv4" } else { "IPv6" };
        let source = source.ok_or_else(|| {
            format!(
                "real server {}: interface {} has no {family} address to reach it from",
                self.addr, link.name
            )
        })?;
        if self.forwarding == Forwarding::Tun
            && matches!(source, IpAddr::V6(s) if crate::kernel::is_link_local6(s))
        {
            return Err(format!(
                "real server {}: interface {} has no global IPv6 address to tunnel from",
                self.addr, link.name
            ));
        }
        Ok(DestSpec {
            addr: self.addr,
            port: self.port,
            weight: self.weight,
            forwarding: self.forwarding,
            ifindex: link.ifindex,
            next_hop: gateway.unwrap_or(self.addr),
            source,
            upper_threshold: self.upper_threshold,
            lower_threshold: self.lower_threshold,
            health: self.health,
        })
    }
}

/// How the data path watches a real server: its effective active check (`alpha` starts
/// it down, as the health runner's `initial_state` does), inhibit, and the
/// service's passive detection (TCP and NAT only: the director must see the SYN-ACKs).
pub fn health_spec(
    vs: &crate::config::VirtualService,
    rs: &crate::config::RealServer,
) -> HealthSpec {
    let check = rs.health_check.as_ref();
    HealthSpec {
        checked: check.is_some(),
        start_down: check.is_some_and(|c| c.alpha),
        inhibit_on_failure: check.is_some_and(|c| c.inhibit_on_failure),
        passive: vs
            .passive
            .filter(|_| vs.protocol == Protocol::Tcp && rs.forwarding == Forwarding::Nat)
            .map(|p| PassiveSpec {
                failures: p.failures,
                syn_timeout: p.syn_timeout,
                backoff: p.backoff,
                max_backoff: p.max_backoff,
            }),
    }
}

/// A seed for a randomised scheduler (twos), different in every process and call.
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// The tuples of each family, sorted and without duplicates.
#[allow(clippy::type_complexity)]
fn split_families(
    v: Vec<(Protocol, IpAddr, u16)>,
) -> (
    Vec<(Protocol, Ipv4Addr, u16)>,
    Vec<(Protocol, Ipv6Addr, u16)>,
) {
    let mut v4 = BTreeSet::new();
    let mut v6 = BTreeSet::new();
    for (p, a, port) in v {
        match a {
            IpAddr::V4(a) => v4.insert((p, a, port)),
            IpAddr::V6(a) => v6.insert((p, a, port)),
        };
    }
    (v4.into_iter().collect(), v6.into_iter().collect())
}

/// The interface a VIP lives on: where it already is, else the interface whose network
/// contains it, else the interface of the route towards it.
fn vip_interface(vip: IpAddr, links: &[LinkInfo], kernel: &Kernel) -> Result<u32, String> {
    match kernel.vip_interface(vip, links) {
        Ok(ifindex) => Ok(ifindex),
        Err(_) => Err(format!(
            "cannot tell which interface receives VIP {vip}: no attached network contains it and \
             no route leads to it; add the VIP to an interface yourself"
        )),
    }
}

/// A running director.
#[derive(Debug)]
struct Director {
    config_path: PathBuf,
    kernel: Kernel,
    guard: Option<NftGuard>,
    /// The packet I/O, one port per interface (`[io]`, fixed at startup).
    ports: Ports,
    /// The `[io]` settings in use (a reload does not change them).
    io_settings: IoSettings,
    /// VIPs lvsd added (ifindex, address); removed on shutdown.
    added_vips: Vec<(u32, IpAddr)>,
    dataplane: Dataplane,
    /// The interfaces of the running plan (for names in messages).
    interfaces: Vec<Interface>,
    tx_errors: u64,
    /// Frames the kernel dropped before lvsd could read them (socket buffer full), summed
    /// over all packet sockets.
    socket_drops: u64,
    /// Executes control commands on this thread.
    executor: Executor,
    /// The control API (None only while starting and after shutdown).
    control: Option<ControlHandle>,
    /// The `[control]` settings in use (a reload does not change them).
    control_settings: ControlSettings,
    /// The active health checks (their own thread); shared with the executor's listings.
    health: Option<Arc<HealthRunner>>,
    /// The checks the runner runs now, by target (to see which ones a change restarts).
    health_targets: HashMap<TargetId, HealthCheck>,
    /// When the data path is next compared with the runner's states (after a
    /// reconfiguration: a report of the old check may cross the change).
    reconcile_at: Vec<Instant>,
    /// VRRP (issue 7), when `[[vrrp_instance]]` tables exist: it owns the VIPs, and the
    /// socket filters admit only the VIPs it holds (`vrrp::driver`).
    vrrp: Option<crate::vrrp::driver::VrrpLink>,
}

/// Two distinct elements of `v`, both mutable.
fn pair_mut<T>(v: &mut [T], a: usize, b: usize) -> Option<(&mut T, &mut T)> {
    if a == b || a.max(b) >= v.len() {
        return None;
    }
    if a < b {
        let (l, r) = v.split_at_mut(b);
        Some((l.get_mut(a)?, r.first_mut()?))
    } else {
        let (l, r) = v.split_at_mut(a);
        Some((r.first_mut()?, l.get_mut(b)?))
    }
}

/// The packet I/O of the running director, one port per interface (`[io] backend`).
#[derive(Debug)]
enum Ports {
    /// `recvmsg`/`sendmsg` per frame.
    Socket(Vec<(u32, PacketSocket)>),
    /// TPACKET_V2 RX and TX rings; `rx[i]` and `tx[i]` are the same interface's.
    Ring {
        rx: Vec<RxRing>,
        tx: Vec<TxRing>,
        /// Slots per ring (`[io] ring_frames`).
        frames: u32,
        /// The TX ring the last forwarded frame went to: the next one is rewritten
        /// straight into its next slot.
        last_tx: usize,
    },
}

impl Ports {
    fn new(io: IoSettings) -> Ports {
        match io.backend {
            IoBackend::Socket => Ports::Socket(Vec::new()),
            IoBackend::Ring => Ports::Ring {
                rx: Vec::new(),
                tx: Vec::new(),
                frames: io.ring_frames,
                last_tx: 0,
            },
        }
    }

    /// For the log: the backend and, for rings, their size.
    fn describe(&self) -> String {
        match self {
            Ports::Socket(_) => "socket".into(),
            Ports::Ring { rx, tx, frames, .. } => {
                use crate::io::ring::{DEFAULT_MTU, Geometry, TX_FRAMES};
                let (r, t) = match (rx.first(), tx.first()) {
                    (Some(r), Some(t)) => (r.geometry(), t.geometry()),
                    _ => (
                        Geometry::for_mtu(*frames, DEFAULT_MTU, 4096),
                        Geometry::for_frames((*frames).min(TX_FRAMES), 4096),
                    ),
                };
                format!(
                    "ring: {} RX slots of {} KiB (longer frames through the socket queue) \
                     and {} TX slots of {} KiB, {} MiB per interface",
                    r.frame_nr(),
                    r.frame_size / 1024,
                    t.frame_nr(),
                    t.frame_size / 1024,
                    (r.bytes() + t.bytes()) >> 20
                )
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            Ports::Socket(s) => s.len(),
            Ports::Ring { rx, .. } => rx.len(),
        }
    }

    fn ifindexes(&self) -> Vec<u32> {
        match self {
            Ports::Socket(s) => s.iter().map(|(i, _)| *i).collect(),
            Ports::Ring { rx, .. } => rx.iter().map(|r| r.ifindex()).collect(),
        }
    }

    /// The fds to wait on for received frames, in port order.
    fn fds<'a>(&'a self, out: &mut Vec<BorrowedFd<'a>>) {
        match self {
            Ports::Socket(s) => out.extend(s.iter().map(|(_, s)| s.as_fd())),
            Ports::Ring { rx, .. } => out.extend(rx.iter().map(|r| r.as_fd())),
        }
    }

    /// Whether an RX ring holds a frame (no system call; always false for sockets, whose
    /// readiness `poll` reports).
    fn rx_ready(&self) -> bool {
        match self {
            Ports::Socket(_) => false,
            Ports::Ring { rx, .. } => rx.iter().any(|r| r.ready()),
        }
    }

    /// Whether a TX ring holds frames the kernel has not taken yet (and its interface is
    /// not down).
    fn tx_pending(&self) -> bool {
        match self {
            Ports::Socket(_) => false,
            Ports::Ring { tx, .. } => tx.iter().any(|t| t.wants_retry()),
        }
    }

    /// Replaces every port's filter; the failures, by interface.
    fn set_filter(&self, filter: &Filter) -> Vec<(u32, std::io::Error)> {
        let mut failures = Vec::new();
        match self {
            Ports::Socket(s) => {
                for (i, sock) in s {
                    if let Err(e) = sock.set_filter(filter) {
                        failures.push((*i, e));
                    }
                }
            }
            Ports::Ring { rx, .. } => {
                for r in rx {
                    if let Err(e) = r.set_filter(filter) {
                        failures.push((r.ifindex(), e));
                    }
                }
            }
        }
        failures
    }

    /// Frames the kernel dropped before lvsd read them since the last call (buffer or
    /// ring full), summed over the ports.
    fn kernel_drops(&self) -> u64 {
        let stats: Vec<_> = match self {
            Ports::Socket(s) => s.iter().map(|(_, s)| s.statistics()).collect(),
            Ports::Ring { rx, .. } => rx.iter().map(|r| r.statistics()).collect(),
        };
        stats
            .into_iter()
            .filter_map(Result::ok)
            .map(|st| u64::from(st.drops))
            .sum()
    }

    fn clear(&mut self) {
        match self {
            Ports::Socket(s) => s.clear(),
            Ports::Ring {
                rx, tx, last_tx, ..
            } => {
                rx.clear();
                tx.clear();
                *last_tx = 0;
            }
        }
    }
}

/// One [`Target`] per real server with an effective check.
fn health_targets(config: &Config) -> Vec<Target> {
    let mut out = Vec::new();
    for vs in &config.services {
        let service = lvs_proto::ServiceKey {
            protocol: vs.protocol,
            vip: vs.vip,
            port: vs.port,
        };
        for rs in &vs.real_servers {
            if let Some(check) = &rs.health_check {
                out.push(Target {
                    id: TargetId {
                        service,
                        real_server: lvs_proto::RealServerKey::new(rs.addr, rs.port),
                    },
                    check: check.clone(),
                });
            }
        }
    }
    out
}

/// The forwarding thread's form of a runner report.
fn health_update(r: HealthReport) -> HealthUpdate {
    match r {
        HealthReport::Changed {
            id,
            state,
            check,
            reason,
        } => HealthUpdate::Changed {
            service: id.service,
            real_server: id.real_server,
            state,
            check,
            reason,
        },
        HealthReport::DynamicWeight { id, weight } => HealthUpdate::Weight {
            service: id.service,
            real_server: id.real_server,
            weight,
        },
    }
}

impl Director {
    fn start(config_path: PathBuf, config: &Config) -> Result<Director, String> {
        let kernel = Kernel::connect().map_err(|e| e.to_string())?;
        let plan = Plan::build(config, &kernel)?;
        let guard = NftGuard::install(&plan.guard).map_err(|e| e.to_string())?;
        let filter = Filter::build(&crate::vrrp::driver::initial_filter(&plan.filter, config))
            .map_err(|e| e.to_string())?;
        let now = Instant::now();
        let (commands, mut executor) = crate::control::channel(now)
            .map_err(|e| format!("control: creating the command channel: {e}"))?;
        executor.set_running_config(config.clone());
        let mut director = Director {
            config_path,
            kernel,
            guard: Some(guard),
            ports: Ports::new(config.io),
            io_settings: config.io,
            added_vips: Vec::new(),
            dataplane: Dataplane::new(plan.dataplane.clone(), now),
            interfaces: plan.dataplane.interfaces.clone(),
            tx_errors: 0,
            socket_drops: 0,
            executor,
            control: None,
            control_settings: config.control.clone(),
            health: None,
            health_targets: HashMap::new(),
            reconcile_at: Vec::new(),
            vrrp: None,
        };
        if let Err(e) = director.start_health(config) {
            let _ = director.shutdown();
            return Err(e);
        }
        if let Err(e) = director.open_sockets(&plan, &filter) {
            let _ = director.shutdown();
            return Err(e);
        }
        // With VRRP the driver adds and removes the VIPs; without it lvsd adds them now.
        let vips = match crate::vrrp::driver::VrrpLink::start(config, &plan.filter) {
            Ok(Some(link)) => {
                director.executor.set_vrrp_view(Some(link.view()));
                director.vrrp = Some(link);
                Ok(())
            }
            Ok(None) => director.sync_vips(&plan.vips),
            Err(e) => Err(e),
        };
        if let Err(e) = vips {
            let _ = director.shutdown();
            return Err(e);
        }
        director.publish_vips(&plan.vips);
        match ControlHandle::start(&config.control, commands) {
            Ok(c) => director.control = Some(c),
            Err(e) => {
                let _ = director.shutdown();
                return Err(e);
            }
        }
        info!(
            services = config.services.len(),
            interfaces = %director.ports.ifindexes().into_iter().map(|i| director.if_name(i)).collect::<Vec<_>>().join(","),
            io = %director.ports.describe(),
            "forwarding"
        );
        Ok(director)
    }

    /// Starts the health runner with the configuration's targets; its reports go to the
    /// forwarding thread through the executor's health inbox (never blocking the runner).
    fn start_health(&mut self, config: &Config) -> Result<(), String> {
        let targets = health_targets(config);
        self.health_targets = targets.iter().map(|t| (t.id, t.check.clone())).collect();
        let sender = self.executor.health_sender();
        let runner = HealthRunner::start(
            targets,
            Box::new(move |r: HealthReport| sender.send(health_update(r))),
        )
        .map_err(|e| format!("starting the health checks: {e}"))?;
        let runner = Arc::new(runner);
        let view = Arc::clone(&runner);
        self.executor.set_health_view(Box::new(move || {
            view.snapshot()
                .into_iter()
                .map(|(id, info)| ((id.service, id.real_server), info))
                .collect()
        }));
        self.health = Some(runner);
        Ok(())
    }

    /// After a reload or an API edit: the runner gets the new targets; a target whose
    /// check changed starts over in the runner (initial state), so the data path starts it
    /// over too, and both are compared again shortly after (`reconcile_at`).
    fn reconfigure_health(&mut self, config: &Config) {
        let Some(runner) = self.health.as_ref() else {
            return;
        };
        // Reports of the old checks first.
        self.executor
            .apply_health(&mut self.dataplane, Instant::now());
        let targets = health_targets(config);
        let restarted: Vec<Target> = targets
            .iter()
            .filter(|t| self.health_targets.get(&t.id) != Some(&t.check))
            .cloned()
            .collect();
        self.health_targets = targets.iter().map(|t| (t.id, t.check.clone())).collect();
        runner.reconfigure(targets);
        for t in restarted {
            let up = HealthRunner::initial_state(&t.check) == lvs_proto::HealthState::Up;
            let target = t.check.target(t.id.real_server.addr, t.id.real_server.port);
            let _ = self.dataplane.set_health(
                &crate::dataplane::ServiceKey {
                    protocol: t.id.service.protocol,
                    vip: t.id.service.vip,
                    port: t.id.service.port,
                },
                t.id.real_server.addr,
                t.id.real_server.port,
                up,
                &t.check.describe(target),
                "the check was reconfigured: starting over",
            );
        }
        let now = Instant::now();
        self.reconcile_at = vec![now + RECONCILE_FIRST, now + RECONCILE_LAST];
    }

    /// Makes the data path agree with the runner's states (after a reconfiguration).
    fn reconcile_health(&mut self, now: Instant) {
        self.reconcile_at.retain(|t| *t > now);
        let Some(runner) = self.health.as_ref() else {
            return;
        };
        for (id, info) in runner.snapshot() {
            let _ = self.dataplane.set_health(
                &crate::dataplane::ServiceKey {
                    protocol: id.service.protocol,
                    vip: id.service.vip,
                    port: id.service.port,
                },
                id.real_server.addr,
                id.real_server.port,
                info.state == lvs_proto::HealthState::Up,
                &info.check,
                "state after the reconfiguration",
            );
        }
        self.executor.take_health_events(&mut self.dataplane, now);
    }

    fn if_name(&self, ifindex: u32) -> String {
        self.interfaces
            .iter()
            .find(|i| i.ifindex == ifindex)
            .map(|i| i.name.clone())
            .unwrap_or_else(|| format!("ifindex {ifindex}"))
    }

    fn open_sockets(&mut self, plan: &Plan, filter: &Filter) -> Result<(), String> {
        // RX ring slots fit a frame of the largest MTU (longer ones take the copy path).
        let mtu = plan
            .dataplane
            .interfaces
            .iter()
            .map(|i| i.mtu)
            .max()
            .unwrap_or(crate::io::ring::DEFAULT_MTU);
        for iface in &plan.dataplane.interfaces {
            if self.ports.ifindexes().contains(&iface.ifindex) {
                continue;
            }
            match &mut self.ports {
                Ports::Socket(sockets) => {
                    let sock = PacketSocket::open(iface.ifindex, filter)
                        .map_err(|e| format!("opening a packet socket on {}: {e}", iface.name))?;
                    // Bursts (many clients at once, a slow debug build) must not overflow
                    // the default ~200 KiB buffer: a lost RST would leave a connection
                    // entry behind.
                    if let Err(e) = sock.set_buffer_sizes(Some(SOCKET_BUFFER), Some(SOCKET_BUFFER))
                    {
                        warn!(
                            "{}: cannot raise the packet socket buffers: {e}",
                            iface.name
                        );
                    }
                    sockets.push((iface.ifindex, sock));
                }
                Ports::Ring { rx, tx, frames, .. } => {
                    let (r, t) = crate::io::ring::open_mtu(iface.ifindex, filter, *frames, mtu)
                        .map_err(|e| format!("opening packet rings on {}: {e}", iface.name))?;
                    // The send buffer bounds the bytes in flight from the TX ring.
                    if let Err(e) = t.set_send_buffer(SOCKET_BUFFER) {
                        warn!("{}: cannot raise the send buffer: {e}", iface.name);
                    }
                    rx.push(r);
                    tx.push(t);
                }
            }
        }
        Ok(())
    }

    /// The counters as printed on SIGUSR1 and at exit: [`format_stats`] plus the frames the
    /// kernel dropped before lvsd read them and the frames lvsd failed to send.
    fn report(&mut self) -> String {
        self.socket_drops += self.ports.kernel_drops();
        let mut text = format_stats(&self.dataplane.stats());
        let mut extra = format!(
            " socket_drops={} send_errors={}",
            self.socket_drops, self.tx_errors
        );
        if let Ports::Ring { rx, tx, .. } = &self.ports {
            let (mut copied, mut lost, mut errors, mut malformed) = (0, 0, 0, 0);
            let (mut full, mut too_big) = (0, 0);
            for r in rx {
                let c = r.counters();
                copied += c.copied;
                lost += c.copy_lost;
                errors += c.copy_errors;
                malformed += c.malformed;
            }
            for t in tx {
                full += t.counters().ring_full;
                too_big += t.counters().too_big;
            }
            let _ = write!(
                extra,
                " ring.rx_copied={copied} ring.rx_copy_lost={lost} \
                 ring.rx_copy_errors={errors} ring.rx_malformed={malformed} \
                 ring.tx_ring_full={full} ring.tx_too_big={too_big}"
            );
        }
        let end = text.find('\n').unwrap_or(text.len());
        text.insert_str(end, &extra);
        text
    }

    /// Adds the VIPs that are not yet local; removes the ones lvsd added that are no longer
    /// wanted.
    fn sync_vips(&mut self, wanted: &[(IpAddr, u32)]) -> Result<(), String> {
        let mut keep = Vec::new();
        for &(ifindex, addr) in &self.added_vips {
            let len = if addr.is_ipv4() { 32 } else { 128 };
            if wanted.iter().any(|(v, _)| *v == addr) {
                keep.push((ifindex, addr));
            } else if let Err(e) = self.kernel.del_vip(ifindex, addr) {
                warn!("removing VIP {addr}: {e}");
            } else {
                info!("removed VIP {addr}/{len} from {}", self.if_name(ifindex));
            }
        }
        self.added_vips = keep;
        for &(vip, ifindex) in wanted {
            let local = self.kernel.has_ip(vip).map_err(|e| e.to_string())?;
            if local.is_some() {
                continue;
            }
            self.kernel
                .add_vip(ifindex, vip)
                .map_err(|e| e.to_string())?;
            let len = if vip.is_ipv4() { 32 } else { 128 };
            info!("added VIP {vip}/{len} to {}", self.if_name(ifindex));
            self.added_vips.push((ifindex, vip));
        }
        Ok(())
    }

    fn run(&mut self, signals: &Signals) -> Result<(), String> {
        let mut rx = vec![0u8; FRAME_BUF];
        let mut tx = vec![0u8; FRAME_BUF];
        let started = Instant::now();
        let mut ready = false;
        let mut commands_waiting = false;
        let mut readable = Vec::new();
        loop {
            if signals.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            if signals.reload.swap(false, Ordering::Relaxed) {
                self.reload();
            }
            if signals.dump.swap(false, Ordering::Relaxed) {
                println!("{}", self.report());
            }
            let now = Instant::now();
            if self.dataplane.poll_timeout().is_some_and(|t| t <= now) {
                self.dataplane.handle_timeout(now);
            }
            while let Some((ifindex, len)) = self.dataplane.poll_transmit(now, &mut tx) {
                self.send(ifindex, &VnetHdr::NONE, &tx[..len]);
            }
            if !ready
                && (self.dataplane.unresolved_neighbours() == 0
                    || now.duration_since(started) >= NEIGHBOUR_WAIT)
            {
                ready = true;
                let unresolved = self.dataplane.unresolved_neighbours();
                if unresolved > 0 {
                    warn!("{unresolved} real server next hops did not answer ARP yet; retrying");
                }
                println!("lvsd: ready");
                info!("ready");
            }
            let timer = self
                .dataplane
                .poll_timeout()
                .map(|t| t.saturating_duration_since(now))
                .unwrap_or(MAX_WAIT)
                .min(MAX_WAIT);
            // Block only when every RX ring is empty; frames the kernel could not take yet
            // are offered again soon (never a busy loop).
            let wait = if commands_waiting || self.ports.rx_ready() {
                Duration::ZERO
            } else if self.ports.tx_pending() {
                timer.min(TX_RETRY)
            } else {
                timer
            };
            // The packet ports, then the control plane's wake-up fd, then VRRP's.
            let n = self.ports.len();
            {
                let mut fds: Vec<BorrowedFd<'_>> = Vec::with_capacity(n + 2);
                self.ports.fds(&mut fds);
                fds.push(self.executor.wake_fd());
                // VRRP's notes (held VIPs, transitions) after it.
                if let Some(v) = &self.vrrp {
                    fds.push(v.wake_fd());
                }
                readable.resize(fds.len(), false);
                crate::io::poll_readable(&fds, Some(wait), &mut readable)
                    .map_err(|e| format!("waiting for packets: {e}"))?;
            }
            if readable.get(n + 1) == Some(&true) {
                self.vrrp_notes();
            }
            if let Ports::Ring { rx, .. } = &self.ports {
                // Readable with nothing in the ring: a pending socket error (ENETDOWN)
                // keeps poll waking up until it is read.
                for (r, _) in rx
                    .iter()
                    .zip(&readable[..n])
                    .filter(|(r, ready)| **ready && !r.ready())
                {
                    let _ = r.take_error();
                }
                self.forward_rings(&mut tx);
            } else {
                for (i, &is_ready) in readable[..n].iter().enumerate() {
                    if is_ready {
                        self.drain(i, &mut rx, &mut tx)?;
                    }
                }
            }
            // Passive detection's flips (made while forwarding) become events.
            let now = Instant::now();
            self.executor.take_health_events(&mut self.dataplane, now);
            if self.reconcile_at.first().is_some_and(|t| *t <= now) {
                self.reconcile_health(now);
            }
            // Control commands run between packet batches, never in the middle of one.
            if readable[n] || commands_waiting {
                commands_waiting = self
                    .executor
                    .run_pending(&mut self.dataplane, Instant::now());
                // A service or real server added or removed through the API: applied as a
                // reload applies the file, before any further command runs.
                if let Some(edit) = self.executor.take_config_edit() {
                    let r = self.apply(&edit.config);
                    if r.is_ok() {
                        self.reconfigure_health(&edit.config);
                    }
                    match &r {
                        Ok(()) => info!("applied a configuration edit from the control API"),
                        Err(e) => warn!("a configuration edit from the control API failed: {e}"),
                    }
                    self.executor
                        .finish_config_edit(edit, r, &self.dataplane, Instant::now());
                }
            }
        }
    }

    /// Reads up to [`BATCH`] frames from socket `i` and acts on each verdict.
    fn drain(&mut self, i: usize, rx: &mut [u8], tx: &mut [u8]) -> Result<(), String> {
        let Ports::Socket(sockets) = &self.ports else {
            return Ok(());
        };
        let Some(ifindex) = sockets.get(i).map(|(i, _)| *i) else {
            return Ok(());
        };
        for _ in 0..BATCH {
            let Ports::Socket(sockets) = &self.ports else {
                return Ok(());
            };
            let got = match sockets[i].1.recv(rx) {
                Ok(got) => got,
                // An interface going down must not stop the director (VRRP's
                // track_interface turns it into FAULT), nor must one bad frame.
                Err(e) if PacketSocket::recv_error_is_transient(&e) => {
                    warn!("reading from {}: {e}", self.if_name(ifindex));
                    break;
                }
                Err(e) => return Err(format!("reading from {}: {e}", self.if_name(ifindex))),
            };
            let Some((vnet, len)) = got else { break };
            let frame = RxFrame {
                ifindex,
                data: &rx[..len],
                csum_partial: vnet.csum_partial(),
                gso: vnet.gso(),
                gso_size: vnet.gso_size,
            };
            let now = Instant::now();
            match self.dataplane.process(now, frame, tx) {
                Verdict::Transmit { ifindex: out, len } => {
                    let hdr = vnet.for_transmit();
                    self.send(out, &hdr, &tx[..len]);
                }
                // TUN: IPIP frames (and ICMP errors) go out without offloads; a segmented
                // or fragmented packet has more frames to send.
                Verdict::TransmitPlain { ifindex: out, len } => {
                    self.send(out, &VnetHdr::NONE, &tx[..len]);
                    while let Some((out, len)) = self.dataplane.next_frame(tx) {
                        self.send(out, &VnetHdr::NONE, &tx[..len]);
                    }
                }
                Verdict::Reject {
                    ifindex: out, len, ..
                } => {
                    self.send(out, &VnetHdr::NONE, &tx[..len]);
                }
                Verdict::Drop(_) | Verdict::Pass => {}
            }
        }
        Ok(())
    }

    /// The ring backend's round: up to [`RING_BATCH`] frames from every RX ring, each
    /// rewritten straight into the next slot of the TX ring used last (copied only when the
    /// verdict names another interface, or through `scratch` when that ring is full), then
    /// one kick per TX ring.
    fn forward_rings(&mut self, scratch: &mut [u8]) {
        let Director {
            ports, dataplane, ..
        } = self;
        let Ports::Ring {
            rx, tx, last_tx, ..
        } = ports
        else {
            return;
        };
        let now = Instant::now();
        let mut unknown_if = 0u64;
        for ring in rx.iter_mut() {
            let in_if = ring.ifindex();
            for _ in 0..RING_BATCH {
                let Some(slot) = ring.next_slot() else { break };
                let frame = RxFrame {
                    ifindex: in_if,
                    data: slot.data,
                    csum_partial: slot.vnet.csum_partial(),
                    gso: slot.vnet.gso(),
                    gso_size: slot.vnet.gso_size,
                };
                let offload = slot.vnet.for_transmit();
                let j = (*last_tx).min(tx.len().saturating_sub(1));
                let (verdict, in_place) = match tx.get_mut(j).and_then(|t| t.reserve_or_kick()) {
                    Some(out) => (dataplane.process(now, frame, out), true),
                    None => (dataplane.process(now, frame, scratch), false),
                };
                // The frame is in `out` now: the RX slot goes back to the kernel.
                drop(slot);
                let (ifindex, len, hdr, more) = match verdict {
                    Verdict::Transmit { ifindex, len } => (ifindex, len, offload, false),
                    Verdict::TransmitPlain { ifindex, len } => (ifindex, len, VnetHdr::NONE, true),
                    Verdict::Reject { ifindex, len, .. } => (ifindex, len, VnetHdr::NONE, false),
                    Verdict::Drop(_) | Verdict::Pass => continue,
                };
                let Some(k) = tx.iter().position(|t| t.ifindex() == ifindex) else {
                    unknown_if += 1;
                    while more && dataplane.next_frame(scratch).is_some() {}
                    continue;
                };
                if !in_place {
                    if let Some(src) = scratch.get(..len) {
                        tx[k].send(&hdr, src);
                    }
                } else if k == j {
                    tx[j].commit(len, &hdr);
                } else if let Some((a, b)) = pair_mut(tx, j, k) {
                    if let Some(src) = a.reserve().and_then(|s| s.get(..len)) {
                        b.send(&hdr, src);
                    }
                }
                *last_tx = k;
                // TUN: the other segments or fragments of the same packet, in place.
                if more {
                    while let Some(t) = tx.get_mut(k) {
                        let tif = t.ifindex();
                        match t.reserve_or_kick() {
                            Some(out) => match dataplane.next_frame(out) {
                                Some((i, len)) if i == tif => {
                                    t.commit(len, &VnetHdr::NONE);
                                }
                                Some((i, len)) => {
                                    let (Some(dst), Some(src)) =
                                        (scratch.get_mut(..len), out.get(..len))
                                    else {
                                        continue;
                                    };
                                    dst.copy_from_slice(src);
                                    match tx.iter_mut().find(|t| t.ifindex() == i) {
                                        Some(t) => {
                                            t.send(&VnetHdr::NONE, dst);
                                        }
                                        None => unknown_if += 1,
                                    }
                                }
                                None => break,
                            },
                            None => match dataplane.next_frame(scratch) {
                                // Counted as ring full.
                                Some((_, len)) => {
                                    t.send(&VnetHdr::NONE, &scratch[..len]);
                                }
                                None => break,
                            },
                        }
                    }
                }
            }
        }
        self.tx_errors += unknown_if;
        let (mut failures, mut bypass_off) = (Vec::new(), Vec::new());
        if let Ports::Ring { tx, .. } = &mut self.ports {
            for t in tx.iter_mut() {
                let bypass = t.bypass();
                if let Err(e) = t.kick() {
                    failures.push((t.ifindex(), e));
                }
                if bypass && !t.bypass() {
                    bypass_off.push(t.ifindex());
                }
            }
        }
        for ifindex in bypass_off {
            warn!(
                "{}: a frame needed the qdisc (e.g. GSO without the device's offload): qdisc \
                 bypass is off on this interface from now on",
                self.if_name(ifindex)
            );
        }
        for (ifindex, e) in failures {
            // The frames stay queued (offered again after TX_RETRY).
            self.tx_errors += 1;
            if self.tx_errors.is_power_of_two() {
                warn!(
                    "sending on {}: {e} ({} send errors so far; frames kept for a retry)",
                    self.if_name(ifindex),
                    self.tx_errors
                );
            }
        }
    }

    fn send(&mut self, ifindex: u32, vnet: &VnetHdr, frame: &[u8]) {
        let result = match &mut self.ports {
            Ports::Socket(sockets) => match sockets.iter().find(|(i, _)| *i == ifindex) {
                Some((_, sock)) => sock.send(vnet, frame),
                None => Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
            },
            // A full ring counts the frame itself.
            Ports::Ring { tx, .. } => match tx.iter_mut().find(|t| t.ifindex() == ifindex) {
                Some(t) => {
                    if t.send(vnet, frame) {
                        t.kick()
                    } else {
                        Ok(())
                    }
                }
                None => Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
            },
        };
        if let Err(e) = result {
            self.tx_errors += 1;
            if self.tx_errors.is_power_of_two() {
                warn!(
                    "sending on {}: {e} ({} send errors so far)",
                    self.if_name(ifindex),
                    self.tx_errors
                );
            }
        }
    }

    /// SIGHUP: re-read the file; on any error keep running the old configuration. Either
    /// way the outcome is an event for the control API.
    fn reload(&mut self) {
        info!("reloading {}", self.config_path.display());
        let (ok, message) = match self.try_reload() {
            Ok(services) => {
                info!(services, "reloaded");
                (
                    true,
                    format!(
                        "reloaded {}: {services} services",
                        self.config_path.display()
                    ),
                )
            }
            Err(e) => {
                error!("reload failed, keeping the running configuration: {e}");
                (
                    false,
                    format!("reload failed, keeping the running configuration: {e}"),
                )
            }
        };
        self.executor.after_reload(&self.dataplane);
        self.executor
            .record(Instant::now(), EventKind::Reloaded { ok, message });
    }

    /// The work of [`Director::reload`]; the number of services on success.
    fn try_reload(&mut self) -> Result<usize, String> {
        let config = Config::load(&self.config_path).map_err(|e| e.to_string())?;
        if config.control != self.control_settings {
            warn!("reload: [control] changes take effect only when lvsd restarts");
        }
        if config.io != self.io_settings {
            warn!("reload: [io] changes take effect only when lvsd restarts");
        }
        self.apply(&config)?;
        self.reconfigure_health(&config);
        // API edits not saved to the file are gone now: the file is the running config.
        self.executor.set_running_config(config.clone());
        Ok(config.services.len())
    }

    /// Makes `config`'s services run (a reload, or an edit through the control API):
    /// plan through netlink, replace the guard, update the socket filters, reconfigure
    /// the dataplane, sync the VIPs. An error before the guard is replaced changes nothing.
    fn apply(&mut self, config: &Config) -> Result<(), String> {
        let plan = Plan::build(config, &self.kernel)?;
        let spec = match self.vrrp.as_mut() {
            Some(v) => v.replan(&plan.filter, config),
            None => plan.filter.clone(),
        };
        let filter = Filter::build(&spec).map_err(|e| e.to_string())?;
        if let Some(guard) = self.guard.as_mut() {
            guard.replace(&plan.guard).map_err(|e| e.to_string())?;
        }
        if let Err(e) = self.open_sockets(&plan, &filter) {
            error!("reload: {e}");
        }
        for (ifindex, e) in self.ports.set_filter(&filter) {
            error!(
                "reload: updating the socket filter on {}: {e}",
                self.if_name(ifindex)
            );
        }
        self.interfaces = plan.dataplane.interfaces.clone();
        self.dataplane.reconfigure(plan.dataplane, Instant::now());
        if self.vrrp.is_none() {
            if let Err(e) = self.sync_vips(&plan.vips) {
                error!("reload: {e}");
            }
        }
        self.publish_vips(&plan.vips);
        Ok(())
    }

    /// The VRRP driver's notes: transitions become events; a change of the held VIPs
    /// re-gates the socket filters (a backup forwards nothing for a VIP it does not hold).
    fn vrrp_notes(&mut self) {
        let Some(v) = self.vrrp.as_mut() else {
            return;
        };
        let now = Instant::now();
        let executor = &mut self.executor;
        let Some(spec) = v.take(|kind| {
            executor.record(now, kind);
        }) else {
            return;
        };
        match Filter::build(&spec) {
            Ok(filter) => {
                for (ifindex, e) in self.ports.set_filter(&filter) {
                    error!(
                        "vrrp: updating the socket filter on {}: {e}",
                        self.if_name(ifindex)
                    );
                }
            }
            Err(e) => error!("vrrp: building the socket filter: {e}"),
        }
    }

    /// Tells the control API where the VIPs live and which ones lvsd added.
    fn publish_vips(&mut self, wanted: &[(IpAddr, u32)]) {
        let vips = wanted
            .iter()
            .map(|&(addr, ifindex)| {
                let added = self.added_vips.iter().find(|(_, a)| *a == addr);
                lvs_proto::VipInfo {
                    addr,
                    interface: self.if_name(added.map_or(ifindex, |(i, _)| *i)),
                    added_by_lvsd: added.is_some(),
                }
            })
            .collect();
        self.executor.set_vips(vips);
    }

    /// Removes everything lvsd installed. Safe to call more than once.
    fn shutdown(&mut self) -> Result<(), String> {
        // VRRP first: priority-0 adverts (a backup takes over after Skew_Time), then its
        // VIPs go.
        self.executor.set_vrrp_view(None);
        if let Some(mut v) = self.vrrp.take() {
            v.stop();
        }
        if let Some(mut control) = self.control.take() {
            control.stop();
        }
        // The executor's listing view holds the other reference to the runner.
        self.executor.clear_health_view();
        if let Some(runner) = self.health.take() {
            match Arc::try_unwrap(runner) {
                Ok(r) => r.stop(),
                Err(shared) => drop(shared),
            }
        }
        let mut failures = Vec::new();
        for (ifindex, addr) in std::mem::take(&mut self.added_vips) {
            match self.kernel.del_vip(ifindex, addr) {
                Ok(()) => info!("removed VIP {addr}"),
                Err(e) => failures.push(format!("removing VIP {addr}: {e}")),
            }
        }
        self.ports.clear();
        if let Some(guard) = self.guard.take() {
            if let Err(e) = guard.remove() {
                failures.push(format!("removing the nftables guard: {e}"));
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join("; "))
        }
    }
}

/// The counters as text: one `lvsd stats:` line with the accounting identity, then the
/// services and real servers in ipvsadm's vocabulary (list order = scheduling order).
pub fn format_stats(stats: &Stats) -> String {
    let dropped = stats.dropped.total();
    let mut s = format!(
        "lvsd stats: received={} forwarded={} dropped={} passed={} connections={}",
        stats.received, stats.forwarded, dropped, stats.passed, stats.conns
    );
    for (reason, n) in stats.dropped.iter() {
        if n > 0 {
            let _ = write!(s, " drop.{}={n}", reason.name());
        }
    }
    for svc in &stats.services {
        let c = &svc.counters;
        let _ = write!(
            s,
            "\n{} {} {} conns={} inpkts={} outpkts={} inbytes={} outbytes={}",
            svc.protocol.ipvsadm_name(),
            SocketAddr::new(svc.vip, svc.port),
            svc.scheduler,
            c.conns,
            c.inpkts,
            c.outpkts,
            c.inbytes,
            c.outbytes
        );
        for d in &svc.dests {
            let c = &d.counters;
            let _ = write!(
                s,
                "\n  -> {} {} weight={} active={} inactive={} persistent={}{} conns={} inpkts={} outpkts={} inbytes={} outbytes={}",
                SocketAddr::new(d.addr, d.port),
                d.forwarding.ipvsadm_name(),
                d.weight,
                d.active,
                d.inactive,
                d.persistent,
                match (d.overloaded, d.sorry, d.in_service) {
                    (_, true, false) => " SORRY(idle)",
                    (_, true, true) => " SORRY",
                    (_, false, false) => " OUT(health)",
                    (true, _, _) => " OVERLOAD",
                    _ => "",
                },
                c.conns,
                c.inpkts,
                c.outpkts,
                c.inbytes,
                c.outbytes
            );
        }
    }
    s
}
