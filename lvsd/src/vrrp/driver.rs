//! The I/O shell around [`Router`]: sockets, netlink, GARP, notify scripts, on a thread of
//! its own ("lvsd-vrrp").
//!
//! ```text
//!  lvsd-vrrp thread                                   forwarding thread (daemon.rs)
//!  ────────────────                                   ─────────────────────────────
//!  poll(VRRP sockets, link watch, stop)               poll(packet sockets, ..., wake fd)
//!  Router::handle_packet / handle_timeout / set_link
//!  AddVips    → RTM_NEWADDR, then Note::Held ──1 byte──► socket filters admit the held VIPs
//!  RemoveVips → Note::Held first, then RTM_DELADDR   ► socket filters drop the others
//!  SendGarp   → ARP frames on a packet socket
//!  Transition → Note::Event + notify script           ► EventKind::VrrpTransition
//! ```
//!
//! Invariants:
//! - Adverts never wait behind health checks, the control plane or a busy forwarding
//!   loop: this thread does nothing else, and never blocks on the forwarding thread (the
//!   note queue is unbounded in principle but holds at most one `Held` per transition).
//! - The forwarding thread admits VIP traffic only for the VIPs in the last `Held` note:
//!   a backup forwards nothing for a VIP it does not hold, so DR/TUN traffic cannot loop
//!   between directors. `Held` is sent after the addresses are added and before they are
//!   removed.
//! - Every VIP this driver added is removed when it stops ([`VrrpDriver::stop`]: priority-0
//!   adverts first, RFC 9568 §6.4.3), or when the instance leaves Master.
//! - Notify scripts run detached from the loop: spawned, reaped with `try_wait`, killed
//!   after [`NOTIFY_LIMIT`]; at most [`MAX_SCRIPTS`] run at once (more are skipped with a
//!   warning). Stopping waits up to [`STOP_SCRIPT_WAIT`] for them (the STOP calls).
//! - Received bytes go only to `Router::handle_packet` / `handle_received`, which check
//!   everything (RFC 9568 §7.1); a rejected advert is counted there and changes nothing.
//! - IPv6 instances (VRRPv3 over IPv6): a `VrrpSocket6` per interface that runs one
//!   (ff02::12, source = the interface's link-local address, hop limit 255); VIPs added
//!   with `IFA_F_NODAD` (usable at once) and removed like the IPv4 ones; `SendGarp`
//!   becomes unsolicited Neighbor Advertisements to ff02::1 (Override and Router set,
//!   target = each VIP, from the interface MAC and link-local address), with the same
//!   `garp_*` repeats and delays. `Held` notes carry both families.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, Ipv6Addr};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lvs_proto::{EventKind, IpPrefix, Ipv4Prefix, Protocol, VrrpInstanceInfo, VrrpState};
use tracing::{debug, info, warn};

use super::instance::Received;
use super::{
    Action, InstanceConfig, InstanceId, Ipv6Prefix, Router, SyncGroupConfig, V3Checksum,
    sim::ipv4_packet,
};
use crate::config::{Config, VrrpInstance, VrrpSyncGroup};
use crate::io::filter::{Filter, FilterSpec};
use crate::io::{PacketSocket, VnetHdr, VrrpSocket, VrrpSocket6};
use crate::kernel::{Kernel, LinkInfo, LinkWatch};
use crate::wire::vrrp::{TTL, Version};
use crate::wire::{arp, icmpv6};

/// Link states are re-read at least this often, notifications or not.
const LINK_RECHECK: Duration = Duration::from_secs(1);
/// A notify script running longer than this is killed.
pub const NOTIFY_LIMIT: Duration = Duration::from_secs(30);
/// Notify scripts running at once.
pub const MAX_SCRIPTS: usize = 16;
/// How long a stopping driver waits for its notify scripts (the STOP calls).
pub const STOP_SCRIPT_WAIT: Duration = Duration::from_secs(2);
/// Packets read from one VRRP socket per wake-up.
const BATCH: usize = 64;

/// What the driver tells the forwarding thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// The VIPs held now (those of the instances in Master), both families: forward for
    /// these only.
    Held(BTreeSet<IpAddr>),
    /// An event for the control API's ring.
    Event(EventKind),
}

/// The control API's view of the instances (`vrrp()` RPC).
#[derive(Debug, Clone)]
pub struct VrrpView(Arc<Mutex<Router>>);

impl VrrpView {
    /// [`Router::info`] now.
    pub fn info(&self) -> Vec<VrrpInstanceInfo> {
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        lock(&self.0).info(Instant::now(), unix_ms)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The running driver; owned by the forwarding thread (module doc).
#[derive(Debug)]
pub struct VrrpDriver {
    thread: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    /// Wakes the driver thread (for `stop`).
    stop_tx: UnixDatagram,
    notes: Arc<Mutex<VecDeque<Note>>>,
    /// Readable when notes are queued.
    wake_rx: UnixDatagram,
    router: Arc<Mutex<Router>>,
}

/// One VRRP interface: its sockets (IPv4 if an IPv4 instance runs there, IPv6 if an
/// IPv6 one does), and a packet socket for GARP and unsolicited NA.
#[derive(Debug)]
struct Iface {
    name: String,
    ifindex: u32,
    mac: [u8; 6],
    sock: Option<VrrpSocket>,
    sock6: Option<VrrpSocket6>,
    garp: PacketSocket,
}

/// Turns the configuration's instances into the core's, with what only the host knows
/// (the interface's primary address). Also the start-time checks the file cannot make.
/// An IPv6 instance's primary address is the interface's link-local address (RFC 9568
/// §5.1.2.1) unless `unicast_src` names one of its addresses.
pub fn instance_configs(
    instances: &[VrrpInstance],
    links: &[LinkInfo],
) -> Result<Vec<InstanceConfig>, String> {
    let mut out = Vec::with_capacity(instances.len());
    for v in instances {
        let link = links
            .iter()
            .find(|l| l.name == v.interface)
            .ok_or_else(|| {
                format!(
                    "vrrp_instance {}: interface {} does not exist",
                    v.name, v.interface
                )
            })?;
        if link.mac == [0; 6] {
            return Err(format!(
                "vrrp_instance {}: interface {} has no Ethernet address (GARP needs one)",
                v.name, v.interface
            ));
        }
        for t in &v.track_interface {
            if !links.iter().any(|l| &l.name == t) {
                return Err(format!(
                    "vrrp_instance {}: track_interface {t} does not exist",
                    v.name
                ));
            }
        }
        let mut c = if v.is_ipv6() {
            ipv6_instance(v, link, links)?
        } else {
            ipv4_instance(v, link, links)?
        };
        c.version = if v.version == 2 {
            Version::V2
        } else {
            Version::V3
        };
        c.advert_interval = v.advert_interval;
        c.preempt = v.preempt;
        c.preempt_delay = v.preempt_delay;
        c.track_interfaces = v.track_interface.clone();
        c.accept.v3_checksum = V3Checksum::from_keepalived(v.v3_checksum_as_v2);
        c.garp.master_repeat = v.garp_master_repeat;
        c.garp.lower_prio_repeat = v.garp_master_repeat;
        c.garp.master_delay = v.garp_master_delay;
        c.garp.master_refresh = v.garp_master_refresh;
        c.validate().map_err(|e| e.to_string())?;
        out.push(c);
    }
    Ok(out)
}

fn ipv4_instance(
    v: &VrrpInstance,
    link: &LinkInfo,
    links: &[LinkInfo],
) -> Result<InstanceConfig, String> {
    let vips: Vec<Ipv4Prefix> = v
        .virtual_ipaddress
        .iter()
        .filter_map(|p| match p.addr {
            IpAddr::V4(addr) => Some(Ipv4Prefix { addr, len: p.len }),
            IpAddr::V6(_) => None,
        })
        .collect();
    let primary = match v.unicast_src {
        Some(IpAddr::V4(src)) => {
            if !link.ipv4.iter().any(|(a, _)| *a == src) {
                return Err(format!(
                    "vrrp_instance {}: unicast_src {src} is not an address of {}",
                    v.name, v.interface
                ));
            }
            src
        }
        Some(IpAddr::V6(src)) => {
            return Err(format!(
                "vrrp_instance {}: unicast_src {src} is IPv6 but the instance is IPv4",
                v.name
            ));
        }
        // The address owner's own address is the VIP (RFC 9568 §1.6); anyone else's
        // primary address must be its own.
        None => link
            .ipv4
            .iter()
            .map(|(a, _)| *a)
            .find(|a| v.priority == 255 || !vips.iter().any(|p| p.addr == *a))
            .ok_or_else(|| {
                format!(
                    "vrrp_instance {}: interface {} has no IPv4 address of its own to \
                     send adverts from",
                    v.name, v.interface
                )
            })?,
    };
    for p in &vips {
        if let Some(other) = links
            .iter()
            .find(|l| l.name != v.interface && l.ipv4.iter().any(|(a, _)| *a == p.addr))
        {
            return Err(format!(
                "vrrp_instance {}: VIP {} is already an address of {}; VRRP must own it",
                v.name, p.addr, other.name
            ));
        }
        // GARP moves a VIP only among neighbours that see it as on-link.
        let on_link = link.ipv4.iter().any(|(a, len)| {
            *len < 32
                && (*a != p.addr || v.priority == 255)
                && Ipv4Prefix {
                    addr: *a,
                    len: *len,
                }
                .contains(p.addr)
        });
        if !on_link {
            return Err(format!(
                "vrrp_instance {}: VIP {} is not on a subnet of {} (its addresses: {}); \
                 neighbours would not take the gratuitous ARPs that move it",
                v.name,
                p.addr,
                v.interface,
                link.ipv4
                    .iter()
                    .map(|(a, l)| format!("{a}/{l}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    let mut c = InstanceConfig::new(
        v.name.clone(),
        v.interface.clone(),
        v.vrid,
        v.priority,
        primary,
        vips,
    );
    c.unicast_peers = v
        .unicast_peer
        .iter()
        .filter_map(|a| match a {
            IpAddr::V4(a) => Some(*a),
            IpAddr::V6(_) => None,
        })
        .collect();
    Ok(c)
}

fn ipv6_instance(
    v: &VrrpInstance,
    link: &LinkInfo,
    links: &[LinkInfo],
) -> Result<InstanceConfig, String> {
    let vips: Vec<Ipv6Prefix> = v
        .virtual_ipaddress
        .iter()
        .filter_map(|p| match p.addr {
            IpAddr::V6(addr) => Some(Ipv6Prefix { addr, len: p.len }),
            IpAddr::V4(_) => None,
        })
        .collect();
    let own = &link.ipv6;
    let primary = match v.unicast_src {
        Some(IpAddr::V6(src)) => {
            if !own.iter().any(|(a, _)| *a == src) {
                return Err(format!(
                    "vrrp_instance {}: unicast_src {src} is not an address of {}",
                    v.name, v.interface
                ));
            }
            src
        }
        Some(IpAddr::V4(src)) => {
            return Err(format!(
                "vrrp_instance {}: unicast_src {src} is IPv4 but the instance is IPv6",
                v.name
            ));
        }
        // RFC 9568 §5.1.2.1: "the IPv6 link-local address of the interface over which
        // the packet is transmitted".
        None => link.link_local6().ok_or_else(|| {
            format!(
                "vrrp_instance {}: interface {} has no usable IPv6 link-local address to \
                     send adverts from (is IPv6 enabled on it?)",
                v.name, v.interface
            )
        })?,
    };
    for p in &vips {
        if let Some(other) = links
            .iter()
            .find(|l| l.name != v.interface && l.ipv6.iter().any(|(a, _)| *a == p.addr))
        {
            return Err(format!(
                "vrrp_instance {}: VIP {} is already an address of {}; VRRP must own it",
                v.name, p.addr, other.name
            ));
        }
        // Neighbours learn on-link prefixes from router advertisements too, so a VIP
        // outside the interface's own prefixes is only worth a warning here.
        let on_link = own.iter().any(|(a, len)| {
            *len < 128 && *a != p.addr && !is_link_local(*a) && {
                let mask = if *len == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(*len))
                };
                u128::from(*a) & mask == u128::from(p.addr) & mask
            }
        });
        if !on_link && !is_link_local(p.addr) {
            warn!(
                "vrrp_instance {}: VIP {} is on no IPv6 prefix of {}; neighbours must see it \
                 as on-link (router advertisements) for the Neighbor Advertisements to move it",
                v.name, p.addr, v.interface
            );
        }
    }
    let mut c = InstanceConfig::new_v6(
        v.name.clone(),
        v.interface.clone(),
        v.vrid,
        v.priority,
        primary,
        vips,
    );
    if let Some(a) = c.ipv6.as_mut() {
        a.unicast_peers = v
            .unicast_peer
            .iter()
            .filter_map(|a| match a {
                IpAddr::V6(a) => Some(*a),
                IpAddr::V4(_) => None,
            })
            .collect();
    }
    Ok(c)
}

fn is_link_local(a: Ipv6Addr) -> bool {
    (a.segments()[0] & 0xffc0) == 0xfe80
}

/// The socket filter the forwarding thread may use while `held` are the VIPs held:
/// inbound tuples of held VIPs only, and the NAT replies of services on held VIPs only
/// (both families).
pub fn gate_filter(base: &FilterSpec, config: &Config, held: &BTreeSet<IpAddr>) -> FilterSpec {
    let mut replies: Vec<(Protocol, IpAddr, u16)> = Vec::new();
    for vs in config.services.iter().filter(|vs| held.contains(&vs.vip)) {
        for (addr, port) in vs
            .real_servers
            .iter()
            .map(|rs| (rs.addr, rs.port))
            .chain(vs.sorry_server.iter().map(|s| (s.addr, s.port)))
        {
            replies.push((vs.protocol, addr, port));
        }
    }
    FilterSpec {
        inbound: base
            .inbound
            .iter()
            .filter(|(_, vip, _)| held.contains(&IpAddr::V4(*vip)))
            .copied()
            .collect(),
        replies: base
            .replies
            .iter()
            .filter(|(p, a, port)| replies.contains(&(*p, IpAddr::V4(*a), *port)))
            .copied()
            .collect(),
        inbound6: base
            .inbound6
            .iter()
            .filter(|(_, vip, _)| held.contains(&IpAddr::V6(*vip)))
            .copied()
            .collect(),
        replies6: base
            .replies6
            .iter()
            .filter(|(p, a, port)| replies.contains(&(*p, IpAddr::V6(*a), *port)))
            .copied()
            .collect(),
        ..base.clone()
    }
}

impl VrrpDriver {
    /// Checks the instances against the host, opens the sockets and starts the thread.
    /// VIPs of these instances found on their interface (left by a killed lvsd) are
    /// removed first: a starting router holds none (RFC 9568 §6.4.1).
    pub fn start(
        instances: &[VrrpInstance],
        groups: &[VrrpSyncGroup],
        notify_of: impl Fn(&str) -> Option<PathBuf>,
    ) -> Result<VrrpDriver, String> {
        let kernel = Kernel::connect().map_err(|e| format!("vrrp: {e}"))?;
        let links = kernel
            .interfaces()
            .map_err(|e| format!("vrrp: reading interfaces: {e}"))?;
        let configs = instance_configs(instances, &links)?;
        for c in configs.iter().filter(|c| !c.is_owner()) {
            let Some(link) = links.iter().find(|l| l.name == c.interface) else {
                continue;
            };
            for p in &c.virtual_addresses {
                if let Some((_, len)) = link.ipv4.iter().find(|(a, _)| *a == p.addr) {
                    warn!(
                        "vrrp_instance {}: removing {}/{len} from {}: left over, a starting \
                         router holds no VIP",
                        c.name, p.addr, c.interface
                    );
                    if let Err(e) = kernel.del_address(link.ifindex, p.addr, *len) {
                        warn!("{e}");
                    }
                }
            }
            for p in c.ipv6.iter().flat_map(|a| &a.virtual_addresses) {
                if let Some((_, len)) = link.ipv6.iter().find(|(a, _)| *a == p.addr) {
                    warn!(
                        "vrrp_instance {}: removing {}/{len} from {}: left over, a starting \
                         router holds no VIP",
                        c.name, p.addr, c.interface
                    );
                    if let Err(e) = kernel.del_address6(link.ifindex, p.addr, *len) {
                        warn!("{e}");
                    }
                }
            }
        }
        let notify: Vec<Option<PathBuf>> = configs.iter().map(|c| notify_of(&c.name)).collect();
        let sync: Vec<SyncGroupConfig> = groups
            .iter()
            .map(|g| SyncGroupConfig {
                name: g.name.clone(),
                members: g.group.clone(),
            })
            .collect();
        let router = Router::new(configs, sync).map_err(|e| e.to_string())?;
        let mut ifaces: Vec<Iface> = Vec::new();
        for inst in router.instances() {
            let name = &inst.config().interface;
            if ifaces.iter().any(|i| &i.name == name) {
                continue;
            }
            let Some(link) = links.iter().find(|l| &l.name == name) else {
                continue;
            };
            let on_it = |v6: bool| {
                router
                    .instances()
                    .iter()
                    .any(|i| &i.config().interface == name && i.config().is_ipv6() == v6)
            };
            let sock = if on_it(false) {
                Some(
                    VrrpSocket::open(name, link.ifindex)
                        .map_err(|e| format!("vrrp: opening the VRRP socket on {name}: {e}"))?,
                )
            } else {
                None
            };
            let sock6 =
                if on_it(true) {
                    Some(VrrpSocket6::open(name, link.ifindex).map_err(|e| {
                        format!("vrrp: opening the IPv6 VRRP socket on {name}: {e}")
                    })?)
                } else {
                    None
                };
            let garp = PacketSocket::open(link.ifindex, &Filter::reject_all())
                .map_err(|e| format!("vrrp: opening a packet socket on {name}: {e}"))?;
            ifaces.push(Iface {
                name: name.clone(),
                ifindex: link.ifindex,
                mac: link.mac,
                sock,
                sock6,
                garp,
            });
        }
        let mut watched: BTreeMap<String, bool> = BTreeMap::new();
        for inst in router.instances() {
            let c = inst.config();
            for name in std::iter::once(&c.interface).chain(&c.track_interfaces) {
                watched.insert(name.clone(), true);
            }
        }
        let watch = LinkWatch::open().map_err(|e| format!("vrrp: {e}"))?;
        let (stop_tx, stop_rx) =
            UnixDatagram::pair().map_err(|e| format!("vrrp: wake-up socket: {e}"))?;
        let (wake_tx, wake_rx) =
            UnixDatagram::pair().map_err(|e| format!("vrrp: wake-up socket: {e}"))?;
        for s in [&stop_tx, &stop_rx, &wake_tx, &wake_rx] {
            s.set_nonblocking(true)
                .map_err(|e| format!("vrrp: wake-up socket: {e}"))?;
        }
        let router = Arc::new(Mutex::new(router));
        let notes = Arc::new(Mutex::new(VecDeque::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut shell = Shell {
            router: Arc::clone(&router),
            ifaces,
            kernel,
            watch,
            watched,
            stop: Arc::clone(&stop),
            stop_rx,
            notes: Arc::clone(&notes),
            wake_tx,
            held: BTreeSet::new(),
            added: Vec::new(),
            notify,
            scripts: Vec::new(),
            buf: vec![0u8; 4096],
        };
        let thread = std::thread::Builder::new()
            .name("lvsd-vrrp".into())
            .spawn(move || shell.run())
            .map_err(|e| format!("vrrp: starting its thread: {e}"))?;
        Ok(VrrpDriver {
            thread: Some(thread),
            stop,
            stop_tx,
            notes,
            wake_rx,
            router,
        })
    }

    /// Readable when [`VrrpDriver::take_notes`] has something.
    pub fn wake_fd(&self) -> BorrowedFd<'_> {
        self.wake_rx.as_fd()
    }

    /// The queued notes, oldest first.
    pub fn take_notes(&self) -> Vec<Note> {
        let mut b = [0u8; 64];
        while self.wake_rx.recv(&mut b).is_ok() {}
        lock(&self.notes).drain(..).collect()
    }

    /// The control API's view.
    pub fn view(&self) -> VrrpView {
        VrrpView(Arc::clone(&self.router))
    }

    /// Graceful stop: masters send priority-0 adverts and every VIP the driver added is
    /// removed before this returns.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.stop_tx.send(&[1]);
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                warn!("vrrp: the driver thread panicked");
            }
        }
    }
}

impl Drop for VrrpDriver {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The forwarding thread's side of VRRP: the driver, and what gating the socket filters
/// needs (the ungated filter and the configuration of the running plan).
#[derive(Debug)]
pub struct VrrpLink {
    driver: VrrpDriver,
    base: FilterSpec,
    config: Config,
    held: BTreeSet<IpAddr>,
}

/// The filter to start with: gated with no VIP held when VRRP is configured (a starting
/// router is no master), else `base` itself.
pub fn initial_filter(base: &FilterSpec, config: &Config) -> FilterSpec {
    if config.vrrp_instances.is_empty() {
        base.clone()
    } else {
        gate_filter(base, config, &BTreeSet::new())
    }
}

impl VrrpLink {
    /// Starts the driver when `config` has instances; `None` (today's behaviour: lvsd
    /// holds the VIPs itself) when it has none.
    pub fn start(config: &Config, base: &FilterSpec) -> Result<Option<VrrpLink>, String> {
        if config.vrrp_instances.is_empty() {
            return Ok(None);
        }
        let notify: BTreeMap<String, PathBuf> = config
            .vrrp_instances
            .iter()
            .filter_map(|v| v.notify.clone().map(|n| (v.name.clone(), n)))
            .collect();
        let driver = VrrpDriver::start(&config.vrrp_instances, &config.vrrp_sync_groups, |n| {
            notify.get(n).cloned()
        })?;
        Ok(Some(VrrpLink {
            driver,
            base: base.clone(),
            config: config.clone(),
            held: BTreeSet::new(),
        }))
    }

    /// Readable when notes wait ([`VrrpLink::take`]).
    pub fn wake_fd(&self) -> BorrowedFd<'_> {
        self.driver.wake_fd()
    }

    /// A new plan (reload, API edit): the filter to install, gated by the VIPs held now.
    /// VRRP settings themselves are read at startup only.
    pub fn replan(&mut self, base: &FilterSpec, config: &Config) -> FilterSpec {
        if config.vrrp_instances != self.config.vrrp_instances
            || config.vrrp_sync_groups != self.config.vrrp_sync_groups
        {
            warn!(
                "reload: vrrp_instance / vrrp_sync_group changes take effect only when lvsd restarts"
            );
        }
        self.base = base.clone();
        self.config = config.clone();
        gate_filter(&self.base, &self.config, &self.held)
    }

    /// Takes the driver's notes: events go to `record`; returns the filter to install
    /// when the held VIPs changed.
    pub fn take(&mut self, mut record: impl FnMut(EventKind)) -> Option<FilterSpec> {
        let mut changed = false;
        for note in self.driver.take_notes() {
            match note {
                Note::Held(h) => {
                    changed |= h != self.held;
                    self.held = h;
                }
                Note::Event(e) => record(e),
            }
        }
        changed.then(|| gate_filter(&self.base, &self.config, &self.held))
    }

    /// The control API's view.
    pub fn view(&self) -> VrrpView {
        self.driver.view()
    }

    /// Graceful stop ([`VrrpDriver::stop`]).
    pub fn stop(&mut self) {
        self.driver.stop();
    }
}

/// The driver thread's state.
struct Shell {
    router: Arc<Mutex<Router>>,
    ifaces: Vec<Iface>,
    kernel: Kernel,
    watch: LinkWatch,
    /// Every interface an instance runs on or tracks, with its last known state.
    watched: BTreeMap<String, bool>,
    stop: Arc<AtomicBool>,
    stop_rx: UnixDatagram,
    notes: Arc<Mutex<VecDeque<Note>>>,
    wake_tx: UnixDatagram,
    /// VIPs held now (what the forwarding thread was last told).
    held: BTreeSet<IpAddr>,
    /// Addresses this driver added, either family: (ifindex, prefix).
    added: Vec<(u32, IpPrefix)>,
    /// Notify script per instance.
    notify: Vec<Option<PathBuf>>,
    scripts: Vec<(Child, Instant)>,
    buf: Vec<u8>,
}

impl Shell {
    fn run(&mut self) {
        let mut out: Vec<(InstanceId, Action)> = Vec::new();
        let router = Arc::clone(&self.router);
        {
            let mut r = lock(&router);
            let now = Instant::now();
            self.check_links(&mut r, now, &mut out);
            r.start(now, &mut out);
            self.apply(&r, &mut out);
        }
        let mut next_link_check = Instant::now() + LINK_RECHECK;
        let mut ready = Vec::new();
        while !self.stop.load(Ordering::SeqCst) {
            let now = Instant::now();
            let mut wait = lock(&router)
                .poll_timeout()
                .map_or(LINK_RECHECK, |t| t.saturating_duration_since(now))
                .min(next_link_check.saturating_duration_since(now));
            if !self.scripts.is_empty() {
                wait = wait.min(Duration::from_millis(200));
            }
            // (interface, IPv6?) per polled VRRP socket.
            let slots: Vec<(usize, bool)> = self
                .ifaces
                .iter()
                .enumerate()
                .flat_map(|(i, f)| {
                    let v4 = f.sock.as_ref().map(|_| (i, false));
                    v4.into_iter().chain(f.sock6.as_ref().map(|_| (i, true)))
                })
                .collect();
            let n = slots.len();
            {
                let mut fds: Vec<BorrowedFd<'_>> = self
                    .ifaces
                    .iter()
                    .flat_map(|f| {
                        let v4 = f.sock.as_ref().map(AsFd::as_fd);
                        v4.into_iter().chain(f.sock6.as_ref().map(AsFd::as_fd))
                    })
                    .collect();
                fds.push(self.watch.as_fd());
                fds.push(self.stop_rx.as_fd());
                ready.resize(n + 2, false);
                if let Err(e) = crate::io::poll_readable(&fds, Some(wait), &mut ready) {
                    warn!("vrrp: waiting: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            }
            let mut r = lock(&router);
            for (k, _) in ready[..n].iter().enumerate().filter(|(_, r)| **r) {
                match slots[k] {
                    (i, false) => self.receive(i, &mut r, &mut out),
                    (i, true) => self.receive6(i, &mut r, &mut out),
                }
            }
            let now = Instant::now();
            if ready[n] && self.watch.drain() || now >= next_link_check {
                self.check_links(&mut r, now, &mut out);
                next_link_check = now + LINK_RECHECK;
            }
            if r.poll_timeout().is_some_and(|t| t <= now) {
                r.handle_timeout(now, &mut out);
            }
            self.apply(&r, &mut out);
            drop(r);
            self.reap_scripts();
        }
        let mut r = lock(&router);
        r.stop(Instant::now(), &mut out);
        self.apply(&r, &mut out);
        drop(r);
        for (ifindex, p) in std::mem::take(&mut self.added) {
            if let Err(e) = self.kernel.del_ip(ifindex, p.addr, p.len) {
                warn!("vrrp: {e}");
            }
        }
        // The STOP notifications finish before lvsd exits, within a bound.
        let deadline = Instant::now() + STOP_SCRIPT_WAIT;
        self.reap_scripts();
        while !self.scripts.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            self.reap_scripts();
        }
    }

    /// Reads up to [`BATCH`] adverts from interface `i`'s IPv6 socket into the router.
    fn receive6(&mut self, i: usize, r: &mut Router, out: &mut Vec<(InstanceId, Action)>) {
        let Some(sock) = self.ifaces[i].sock6.as_ref() else {
            return;
        };
        for _ in 0..BATCH {
            let got = match sock.recv(&mut self.buf) {
                Ok(Some(got)) => got,
                Ok(None) => break,
                Err(e) => {
                    debug!("vrrp: receiving on {} (IPv6): {e}", self.ifaces[i].name);
                    break;
                }
            };
            let Some(payload) = self.buf.get(..got.len) else {
                break;
            };
            let rx = Received {
                src: IpAddr::V6(got.src),
                dst: IpAddr::V6(got.dst),
                ttl: got.hop_limit,
                payload,
            };
            if let Err(reject) = r.handle_received(Instant::now(), &self.ifaces[i].name, &rx, out) {
                debug!(
                    "vrrp: dropped an IPv6 packet on {}: {reject}",
                    self.ifaces[i].name
                );
            }
        }
    }

    /// Reads up to [`BATCH`] packets from interface `i`'s socket into the router.
    fn receive(&mut self, i: usize, r: &mut Router, out: &mut Vec<(InstanceId, Action)>) {
        let Some(sock) = self.ifaces[i].sock.as_ref() else {
            return;
        };
        for _ in 0..BATCH {
            let len = match sock.recv(&mut self.buf) {
                Ok(Some(len)) => len,
                Ok(None) => break,
                Err(e) => {
                    debug!("vrrp: receiving on {}: {e}", self.ifaces[i].name);
                    break;
                }
            };
            let Some(packet) = self.buf.get(..len) else {
                break;
            };
            if let Err(reject) = r.handle_packet(Instant::now(), &self.ifaces[i].name, packet, out)
            {
                debug!(
                    "vrrp: dropped a packet on {}: {reject}",
                    self.ifaces[i].name
                );
            }
        }
    }

    /// Re-reads the watched interfaces' states and feeds the changes to the router.
    fn check_links(&mut self, r: &mut Router, now: Instant, out: &mut Vec<(InstanceId, Action)>) {
        let links = match self.kernel.interfaces() {
            Ok(l) => l,
            Err(e) => {
                warn!("vrrp: reading link states: {e}");
                return;
            }
        };
        for (name, was_up) in &mut self.watched {
            let up = links.iter().any(|l| &l.name == name && l.up && l.running);
            if up != *was_up {
                info!(
                    "vrrp: interface {name} is {}",
                    if up { "up" } else { "down" }
                );
                *was_up = up;
                r.set_link(now, name, up, out);
            }
        }
    }

    /// Carries out the actions, in order.
    /// Adds `vips` to `ifindex` (one already there is left alone: `EEXIST`), remembers what
    /// it added, and tells the forwarding thread what is held now.
    fn add_vips(&mut self, name: &str, interface: &str, ifindex: u32, vips: Vec<IpPrefix>) {
        for p in vips {
            let added = match p.addr {
                IpAddr::V4(a) => self.kernel.add_address(ifindex, a, p.len),
                // A /128 VIP goes in as lvsd's own VIPs do (nodad, deprecated: never the
                // source of the director's own traffic); a written prefix is an ordinary
                // address, as keepalived adds it.
                IpAddr::V6(_) if p.len == 128 => self.kernel.add_vip(ifindex, p.addr),
                IpAddr::V6(a) => self.kernel.add_address6(ifindex, a, p.len),
            };
            match added {
                Ok(()) => {
                    info!("vrrp_instance {name}: added {p} to {interface}");
                    self.added.push((ifindex, p));
                }
                Err(e) if e.errno() == Some(libc::EEXIST) => {}
                Err(e) => warn!("vrrp_instance {name}: {e}"),
            }
            self.held.insert(p.addr);
        }
        self.tell(Note::Held(self.held.clone()));
    }

    /// Stops holding `vips` (the forwarding thread hears it first), then removes the ones
    /// this driver added: an owner's own address stays. (A non-owner's leftovers were
    /// removed at start, so it added all it holds.)
    fn remove_vips(&mut self, name: &str, interface: &str, ifindex: u32, vips: Vec<IpPrefix>) {
        for p in &vips {
            self.held.remove(&p.addr);
        }
        self.tell(Note::Held(self.held.clone()));
        for p in vips {
            let before = self.added.len();
            self.added
                .retain(|(i, q)| !(*i == ifindex && q.addr == p.addr));
            if self.added.len() == before {
                continue;
            }
            match self.kernel.del_ip(ifindex, p.addr, p.len) {
                Ok(()) => info!("vrrp_instance {name}: removed {p} from {interface}"),
                Err(e) if e.errno() == Some(libc::EADDRNOTAVAIL) => {}
                Err(e) => warn!("vrrp_instance {name}: {e}"),
            }
        }
    }

    fn apply(&mut self, r: &Router, out: &mut Vec<(InstanceId, Action)>) {
        for (id, action) in out.drain(..) {
            let Some(inst) = r.instance(id) else { continue };
            let c = inst.config();
            let ifindex = self
                .ifaces
                .iter()
                .find(|i| i.name == c.interface)
                .map_or(0, |i| i.ifindex);
            match action {
                Action::SendAdvert { priority } => {
                    let Some(iface) = self.ifaces.iter().find(|i| i.name == c.interface) else {
                        continue;
                    };
                    let mut msg = [0u8; 4200];
                    if let (Some(sock6), IpAddr::V6(src)) = (&iface.sock6, c.primary()) {
                        for dst in inst.destinations_ip() {
                            let IpAddr::V6(dst6) = dst else { continue };
                            let Some(len) = inst.emit_advert_to(priority, dst, &mut msg) else {
                                continue;
                            };
                            if let Err(e) = sock6.send_to(&msg[..len], src, dst6) {
                                debug!("vrrp_instance {}: sending an advert to {dst}: {e}", c.name);
                            }
                        }
                        continue;
                    }
                    let Some(sock) = iface.sock.as_ref() else {
                        continue;
                    };
                    for dst in inst.destinations() {
                        let Some(len) = inst.emit_advert(priority, dst, &mut msg) else {
                            continue;
                        };
                        let mut packet = ipv4_packet(c.primary_address, dst, TTL, &msg[..len]);
                        // DSCP CS6 (network control), as keepalived; the kernel recomputes
                        // the header checksum of IP_HDRINCL packets.
                        if let Some(tos) = packet.get_mut(1) {
                            *tos = 0xc0;
                        }
                        if let Err(e) = sock.send_to(&packet, dst) {
                            debug!("vrrp_instance {}: sending an advert to {dst}: {e}", c.name);
                        }
                    }
                }
                Action::AddVips(vips) => {
                    let vips = vips.into_iter().map(IpPrefix::from).collect();
                    self.add_vips(&c.name, &c.interface, ifindex, vips);
                }
                Action::AddVips6(vips) => {
                    let vips = vips.into_iter().map(IpPrefix::from).collect();
                    self.add_vips(&c.name, &c.interface, ifindex, vips);
                }
                Action::RemoveVips(vips) => {
                    let vips = vips.into_iter().map(IpPrefix::from).collect();
                    self.remove_vips(&c.name, &c.interface, ifindex, vips);
                }
                Action::RemoveVips6(vips) => {
                    let vips = vips.into_iter().map(IpPrefix::from).collect();
                    self.remove_vips(&c.name, &c.interface, ifindex, vips);
                }
                Action::SendGarp { repeat } => {
                    let Some(iface) = self.ifaces.iter().find(|i| i.name == c.interface) else {
                        continue;
                    };
                    if let (Some(v6), IpAddr::V6(src)) = (&c.ipv6, c.primary()) {
                        // RFC 9568 §6.4.2: unsolicited NA, Router and Override set, for
                        // each VIP; from the link-local address (RFC 4861 §7.2.6).
                        let src = if is_link_local(src) {
                            src
                        } else {
                            self.link_local(iface.ifindex).unwrap_or(src)
                        };
                        let mut frame = [0u8; icmpv6::UNSOLICITED_NA_FRAME_LEN];
                        for _ in 0..repeat {
                            for p in &v6.virtual_addresses {
                                let Some(len) = icmpv6::emit_unsolicited_na(
                                    &mut frame, iface.mac, src, p.addr, true,
                                ) else {
                                    continue;
                                };
                                if let Err(e) = iface.garp.send(&VnetHdr::NONE, &frame[..len]) {
                                    debug!("vrrp_instance {}: NA for {}: {e}", c.name, p.addr);
                                }
                            }
                        }
                        continue;
                    }
                    let mut frame = [0u8; arp::REQUEST_FRAME_LEN];
                    for _ in 0..repeat {
                        for p in &c.virtual_addresses {
                            let Some(len) =
                                arp::emit_request(&mut frame, iface.mac, p.addr, p.addr)
                            else {
                                continue;
                            };
                            if let Err(e) = iface.garp.send(&VnetHdr::NONE, &frame[..len]) {
                                debug!("vrrp_instance {}: GARP for {}: {e}", c.name, p.addr);
                            }
                        }
                    }
                }
                Action::Transition { from, to, reason } => {
                    // The event is logged where it is recorded (the control executor).
                    self.tell(Note::Event(EventKind::VrrpTransition {
                        instance: c.name.clone(),
                        from,
                        to,
                        reason: reason.to_string(),
                    }));
                    let script = self.notify.get(id.0).cloned().flatten();
                    if let Some(script) = script {
                        // A stopped instance reports priority 0 (it resigned); scripts
                        // get the priority it ran with, as for every other state.
                        let priority = match inst.effective_priority() {
                            0 => c.priority,
                            p => p,
                        };
                        self.run_script(&script, &c.name, to, priority);
                    }
                }
            }
        }
    }

    /// A usable link-local address of interface `ifindex` (for NAs of an instance whose
    /// `unicast_src` is global).
    fn link_local(&self, ifindex: u32) -> Option<Ipv6Addr> {
        self.kernel
            .interfaces()
            .ok()?
            .into_iter()
            .find(|l| l.ifindex == ifindex)
            .and_then(|l| l.link_local6())
    }

    fn tell(&self, note: Note) {
        lock(&self.notes).push_back(note);
        // A full buffer means a wake-up is already pending.
        let _ = self.wake_tx.send(&[1]);
    }

    /// keepalived's notify: `SCRIPT INSTANCE NAME STATE PRIORITY`.
    fn run_script(&mut self, script: &PathBuf, name: &str, to: VrrpState, priority: u8) {
        if self.scripts.len() >= MAX_SCRIPTS {
            warn!(
                "vrrp_instance {name}: {MAX_SCRIPTS} notify scripts still running; not running {}",
                script.display()
            );
            return;
        }
        let state = match to {
            VrrpState::Init => "STOP",
            VrrpState::Master => "MASTER",
            VrrpState::Backup => "BACKUP",
            VrrpState::Fault => "FAULT",
        };
        match Command::new(script)
            .args(["INSTANCE", name, state, &priority.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
        {
            Ok(child) => self.scripts.push((child, Instant::now())),
            Err(e) => warn!("vrrp_instance {name}: notify {}: {e}", script.display()),
        }
    }

    /// Reaps finished notify scripts; kills those over [`NOTIFY_LIMIT`].
    fn reap_scripts(&mut self) {
        self.scripts
            .retain_mut(|(child, started)| match child.try_wait() {
                Ok(Some(status)) => {
                    if !status.success() {
                        warn!("vrrp: notify script exited with {status}");
                    }
                    false
                }
                Ok(None) if started.elapsed() > NOTIFY_LIMIT => {
                    warn!("vrrp: notify script ran over {NOTIFY_LIMIT:?}; killed");
                    let _ = child.kill();
                    let _ = child.wait();
                    false
                }
                Ok(None) => true,
                Err(_) => false,
            });
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn link(name: &str, addrs: &[(Ipv4Addr, u8)]) -> LinkInfo {
        LinkInfo {
            ifindex: 2,
            name: name.into(),
            mac: [2, 0, 0, 0, 0, 1],
            mtu: 1500,
            up: true,
            running: true,
            ipv4: addrs.to_vec(),
            ipv6: Vec::new(),
        }
    }

    fn config(text: &str) -> Config {
        Config::parse(std::path::Path::new("t.toml"), text).unwrap_or_else(|e| panic!("{e}"))
    }

    const TEXT: &str = "[[virtual_server]]\naddress = \"203.0.113.10:80\"\nforwarding = \"nat\"\n\
        [[virtual_server.real_server]]\naddress = \"192.0.2.11:80\"\n\
        [[virtual_server]]\naddress = \"203.0.113.11:80\"\nforwarding = \"nat\"\n\
        [[virtual_server.real_server]]\naddress = \"192.0.2.12:80\"\n\
        [[vrrp_instance]]\nname = \"VI_1\"\ninterface = \"ext0\"\nvirtual_router_id = 51\n\
        virtual_ipaddress = [\"203.0.113.10/24\"]\n\
        [[vrrp_instance]]\nname = \"VI_2\"\ninterface = \"ext0\"\nvirtual_router_id = 52\n\
        virtual_ipaddress = [\"203.0.113.11/24\"]\n";

    #[test]
    fn a_backup_filter_admits_only_held_vips_and_their_replies() {
        let c = config(TEXT);
        let tcp = lvs_proto::Protocol::Tcp;
        let base = FilterSpec {
            inbound: vec![
                (tcp, Ipv4Addr::new(203, 0, 113, 10), 80),
                (tcp, Ipv4Addr::new(203, 0, 113, 11), 80),
            ],
            replies: vec![
                (tcp, Ipv4Addr::new(192, 0, 2, 11), 80),
                (tcp, Ipv4Addr::new(192, 0, 2, 12), 80),
            ],
            arp: true,
            ..FilterSpec::default()
        };
        let none = gate_filter(&base, &c, &BTreeSet::new());
        assert!(none.inbound.is_empty() && none.replies.is_empty() && none.arp);
        let one = gate_filter(
            &base,
            &c,
            &[IpAddr::V4(Ipv4Addr::new(203, 0, 113, 11))].into(),
        );
        assert_eq!(one.inbound, vec![base.inbound[1]]);
        assert_eq!(one.replies, vec![base.replies[1]]);
        // IPv6 tuples are gated by the IPv6 VIPs held.
        let v6a: Ipv6Addr = "2001:db8:f::10".parse().unwrap();
        let v6b: Ipv6Addr = "2001:db8:f::11".parse().unwrap();
        let base6 = FilterSpec {
            inbound6: vec![(tcp, v6a, 80), (tcp, v6b, 80)],
            ..base.clone()
        };
        let none = gate_filter(&base6, &c, &BTreeSet::new());
        assert!(none.inbound6.is_empty() && none.inbound.is_empty());
        let held: BTreeSet<IpAddr> = [IpAddr::V6(v6b)].into();
        let one = gate_filter(&base6, &c, &held);
        assert_eq!(one.inbound6, vec![(tcp, v6b, 80)]);
        assert!(one.inbound.is_empty());
    }

    const TEXT6: &str = "[[vrrp_instance]]\nname = \"VI_6\"\ninterface = \"ext0\"\n\
        virtual_router_id = 51\nvirtual_ipaddress = [\"2001:db8:f::10\"]\n";

    #[test]
    fn ipv6_instances_send_from_the_link_local_address() {
        let c = config(TEXT6);
        let ll: Ipv6Addr = "fe80::2".parse().unwrap();
        let global: Ipv6Addr = "2001:db8:f::2".parse().unwrap();
        let mut ext = link("ext0", &[]);
        ext.ipv6 = vec![(global, 64), (ll, 64)];
        let ok = instance_configs(&c.vrrp_instances, std::slice::from_ref(&ext));
        let ok = ok.unwrap_or_else(|e| panic!("{e}"));
        assert!(ok[0].is_ipv6());
        assert_eq!(ok[0].primary(), IpAddr::V6(ll));
        assert_eq!(ok[0].version, Version::V3);
        let v6 = ok[0].ipv6.as_ref().unwrap();
        assert_eq!(v6.virtual_addresses[0].to_string(), "2001:db8:f::10/128");
        // No link-local address: IPv6 is off on the interface.
        let mut bare = ext.clone();
        bare.ipv6 = vec![(global, 64)];
        let e = instance_configs(&c.vrrp_instances, &[bare]);
        assert!(e.is_err_and(|e| e.contains("link-local")));
        // unicast_src must be an address of the interface.
        let uc = config(&format!(
            "{TEXT6}unicast_src = \"2001:db8:f::2\"\nunicast_peer = [\"2001:db8:f::3\"]\n"
        ));
        let ok = instance_configs(&uc.vrrp_instances, std::slice::from_ref(&ext));
        let ok = ok.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok[0].primary(), IpAddr::V6(global));
        assert!(ok[0].is_unicast());
        let bad = config(&format!("{TEXT6}unicast_src = \"2001:db8:f::9\"\n"));
        let e = instance_configs(&bad.vrrp_instances, std::slice::from_ref(&ext));
        assert!(e.is_err_and(|e| e.contains("not an address of ext0")));
        // The VIP already on another interface.
        let mut other = link("int0", &[]);
        other.ipv6 = vec![("2001:db8:f::10".parse().unwrap(), 128)];
        let e = instance_configs(&c.vrrp_instances, &[ext, other]);
        assert!(e.is_err_and(|e| e.contains("already an address of int0")));
    }

    #[test]
    fn start_checks_need_the_host() {
        let c = config(TEXT);
        let ext = |addrs: &[(Ipv4Addr, u8)]| vec![link("ext0", addrs)];
        let mine = (Ipv4Addr::new(203, 0, 113, 2), 24);
        let ok = instance_configs(&c.vrrp_instances, &ext(&[mine]));
        let ok = ok.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok[0].primary_address, mine.0);
        assert_eq!(ok[1].vrid, 52);
        let e = instance_configs(&c.vrrp_instances, &[link("int0", &[mine])]);
        assert!(e.is_err_and(|e| e.contains("ext0 does not exist")));
        let e = instance_configs(&c.vrrp_instances, &ext(&[]));
        assert!(e.is_err_and(|e| e.contains("no IPv4 address")));
        // The VIP on another subnet: GARP would not move it.
        let e = instance_configs(
            &c.vrrp_instances,
            &ext(&[(Ipv4Addr::new(192, 0, 2, 1), 24)]),
        );
        assert!(e.is_err_and(|e| e.contains("not on a subnet")));
        // Already the address of another interface.
        let mut links = ext(&[mine]);
        links.push(link("int0", &[(Ipv4Addr::new(203, 0, 113, 10), 32)]));
        let e = instance_configs(&c.vrrp_instances, &links);
        assert!(e.is_err_and(|e| e.contains("already an address of int0")));
        // The address owner's own address is its VIP (RFC 9568 §1.6).
        let owner = config(&TEXT.replacen(
            "virtual_router_id = 51\n",
            "virtual_router_id = 51\npriority = 255\n",
            1,
        ));
        let vip = (Ipv4Addr::new(203, 0, 113, 10), 24);
        let ok = instance_configs(&owner.vrrp_instances, &ext(&[vip]));
        let ok = ok.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok[0].primary_address, vip.0);
        assert!(ok[0].is_owner());
        // A non-owner never sends from its own VIP.
        let e = instance_configs(&c.vrrp_instances, &ext(&[vip]));
        assert!(e.is_err_and(|e| e.contains("no IPv4 address of its own")));
    }
}
