//! The sans-I/O forwarding core: classify → connection lookup → schedule → rewrite →
//! [`Verdict`], for IPv4 and IPv6 (the forwarding functions are generic over the family,
//! `family.rs`: one code path, two monomorphized copies, two connection tables).
//!
//! Contract (docs/contracts.md): [`Dataplane::process`] takes one received frame and a
//! caller-owned output buffer and says what to do: transmit `out[..len]` on an interface,
//! drop (with a reason), or pass (not ours: leave it to the kernel). No clock reads (time is
//! an argument), no sockets, and no allocation on the forwarding path except when a
//! connection is created. No input can make it panic.
//!
//! Invariants:
//! - After every call, `received == forwarded + Σ dropped[reason] + passed` (each
//!   [`Dataplane::process`] call bumps `received` once and exactly one of the others;
//!   `TransmitPlain` counts as forwarded however many frames it has, `Reject` as dropped).
//! - Destination lists are in IPVS order (newest first): a fresh build inserts the dests of
//!   a [`ServiceSpec`] one by one at the head, so the list is the config order reversed,
//!   and [`Dataplane::reconfigure`] keeps it exactly as a sequence of ipvsadm edits would.
//! - Every connection holds one reference on its destination, which counts it in `active`
//!   or `inactive` (spec b.1); every persistence template holds one too, counted in
//!   `persistent`. A destination removed from the config leaves the list (the scheduler
//!   never sees it again) but stays, with its counters, until its last connection or
//!   template expires (IPVS trash); re-adding it before then restores it.
//! - OVERLOAD (connection thresholds) changes only where the kernel changes it: set when
//!   an entry is bound and `u != 0 && active + inactive >= u`; cleared when an entry is
//!   unbound by the `l` / `u × 3/4` rules, and on an edit that sets `u` to 0 or raises it
//!   (`bind_dest`, `unbind_dest`, `reconfig.rs`). Activity changes never touch it.
//! - Each service's `view` is what its scheduler sees: entry `i` mirrors list entry `i`.
//!   It is kept in step, never refilled per decision, so that indexed schedulers decide in
//!   O(1): every change of a listed destination's `active`, `inactive`, `persistent` or
//!   OVERLOAD goes through [`announce`], which copies them into the view entry (found by
//!   the destination's `pos`) and calls `Scheduler::dest_changed`; every list or weight
//!   change refills the view (`fill_view`, `renumber`) and calls `Scheduler::update`.
//!   Debug builds check the view against a fresh fill before every decision.
//! - A connection keeps its forwarding method for life; a destination's route (ifindex,
//!   next hop) and weight are read live, so edits apply to existing connections.
//! - Health (`health.rs`): a configured destination is either in its service's list or
//!   *parked* (health down, held out while the sorry server serves, or an idle sorry
//!   server); parked is not trash and is never freed. Lists follow health flips, weights
//!   and the quorum exactly as keepalived drives IPVS; passive detection watches NAT
//!   handshakes in fixed slots (no allocation per packet) and runs its timers in
//!   [`Dataplane::handle_timeout`].
//! - Every destination's `(ifindex, next_hop)` is a tracked neighbour, resolved by ARP
//!   (IPv4) or Neighbor Solicitation (IPv6, `icmp6.rs`) ([`Dataplane::poll_transmit`]) and
//!   learned from any ARP frame whose sender is that neighbour, or NDP message that names
//!   it; a learned MAC is kept until a newer one is learned.
//! - A service's client and VIP have the service's family, and so does its connection
//!   table; NAT and DR destinations have it too; a TUN destination may have the other one
//!   (its outer header then has the RIP's family, `tunnel.rs`).
//!
//! Classification, in order (first match wins):
//! 1. Frame shorter than an Ethernet header: `Drop(Truncated)`.
//! 2. ARP: learn, then `Pass`. IPv6: the steps below as "IPv6". Any other EtherType
//!    (including 802.1Q): `Pass`.
//! 3. IPv4 header: too short → `Drop(Truncated)`; version ≠ 4, IHL < 5, total length
//!    outside `IHL×4 ..= captured` → `Drop(BadIpHeader)`. Ethernet padding after the total
//!    length is ignored (and not forwarded). IP options are kept and skipped.
//! 4. IPIP to a VIP address: `Drop(Tunnelled)` (nested tunnels are not decapsulated).
//!    ICMP: `icmp.rs` (errors about connections relayed as IPVS does, echo to a VIP left
//!    to the kernel, bad quotes counted as `icmp_*`). Otherwise not TCP/UDP, or neither
//!    to a VIP address of a service of that protocol nor from a real server address of
//!    one: `Pass`.
//! 5. IPv4 header checksum wrong: `Drop(BadChecksum)`. (L4 checksums are not verified, as
//!    in IPVS; incremental updates keep a bad one bad, so the receiver still drops it.)
//! 6. Fragments (lvsd does not reassemble; docs/ipvs-differences.md): a first fragment
//!    whose ports name a service, or a NAT real server's RIP:port, and any non-first
//!    fragment to a VIP address: `Drop(Fragment)`; other fragments `Pass`.
//! 7. L4 header: too short for the fixed header → `Drop(Truncated)`; TCP data offset < 5 or
//!    past the packet, UDP length < 8 or past the packet → `Drop(BadL4Header)`.
//! 8. To a service's VIP:port → inbound (below). From a NAT connection's RIP:rport to its
//!    client → reply. From a NAT destination's RIP:rport without a connection, to an
//!    address that is not one of the director's interface addresses (those are health-check
//!    replies) → `Drop(NoConnection)`. Otherwise `Pass`.
//!
//! IPv6 (`classify_v6`), in order: shorter than the fixed header → `Drop(Truncated)`;
//! version ≠ 6 or payload length past the frame → `Drop(BadIpHeader)`. NDP (next header
//! ICMPv6) is learned from, then classified like any packet (it is never to a VIP nor
//! from a RIP's port, so `Pass`). Neither to a VIP address nor from a real server's:
//! `Pass`. Then the extension-header chain is walked (at most
//! [`crate::wire::ipv6::MAX_EXT_HEADERS`] headers; more, or a header running past the
//! payload: `Drop(ExtHeaders)`); an IPv6 or IPIP packet to a VIP address is
//! `Drop(Tunnelled)`; ICMPv6 goes to `icmp6.rs`; a fragment header makes it a fragment
//! (step 6, same policy); then steps 7 and 8 as for IPv4 with the L4 header where the
//! chain ended (the NAT66 rewrite uses that offset). IPv6 has no header checksum and no
//! TTL is changed (hop limit kept, as for IPv4).
//!
//! Inbound: look up `(proto, cip, cport, vip, vport)`. A TCP SYN hitting an entry in
//! TIME_WAIT or CLOSE expires it first (IPVS `conn_reuse_mode` 1, `is_new_conn` /
//! `is_new_conn_expected`). Without an entry, TCP needs SYN and not RST (kernel
//! `tcp_conn_schedule`, `sloppy_tcp` 0) else `Drop(NoConnection)`; UDP always schedules.
//! The destination of a new connection comes from `decide.rs`: a persistence
//! template, else the scheduler; none is `Drop(NoDestination)`. Then (as `ip_vs_in` does):
//! in-counters, state transition, forward. On a one-packet UDP service the new
//! connection is bound, counted and unbound around its one datagram and no entry is kept
//! (kernel `IP_VS_CONN_F_ONE_PACKET`), so every datagram is scheduled on its own. NAT rewrites dst to RIP:rport; DR rewrites only
//! MACs; TUN wraps the packet in IPIP (`tunnel.rs`: [`Verdict::TransmitPlain`], GSO
//! segmentation, ICMP frag-needed as [`Verdict::Reject`], outer fragmentation). The frame goes to the destination's ifindex, to the next hop's MAC, from that
//! interface's MAC.
//!
//! Replies (NAT): src RIP:rport → VIP:vport, out of the interface the client's last packet
//! came in on, to the MAC it came from (both stored in the entry and refreshed by each
//! inbound packet), from that interface's MAC. No route lookup per packet.
//!
//! TTL is not decremented (IPVS does not either: the director is a hop that keeps the TTL).
//! A frame longer than the outgoing interface's MTU + 14 (unless `gso`), or longer than
//! `out`, is `Drop(TooBig)` (no ICMP yet). An unknown outgoing interface is
//! `Drop(NoInterface)`; an unresolved next hop `Drop(NeighbourUnresolved)` (the connection
//! stays, so a retransmission after resolution goes to the same server).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use lvs_proto::{Counters, Forwarding, Protocol, SchedulerKind};

use self::estimator::Estimator;
use self::family::{Family, Tables};

use crate::conn::table::{Activity, Conn, ConnAddr, ConnId, ConnState, FlowKey, NewConn};
use crate::conn::{Direction, TcpFlags, TcpState, Timeouts};
use crate::sched::{self, SchedParams, Scheduler};
use crate::wire::Error as WireError;
use crate::wire::arp::{self, ArpOperation, ArpPacket, ArpRepr};
use crate::wire::ethernet::{self, EtherType, EthernetFrame, MacAddr};
use crate::wire::ipv4::{IpProtocol, Ipv4Packet};
use crate::wire::ipv6::{self, Ipv6Packet};
use crate::wire::tcp::TcpPacket;
use crate::wire::udp::UdpPacket;

mod control;
mod decide;
mod estimator;
mod family;
mod health;
mod icmp;
mod icmp6;
mod reconfig;
mod rewrite;
mod stats;
mod tunnel;

pub use control::{ConnFilter, ConnSortKey, EditError, KillTarget};
pub use decide::{DECISION_RING, DECISION_WATCH, Decision, ServiceKey, SimulateResult};
pub use estimator::EST_INTERVAL;
pub use health::{
    DestHealth, HEALTH_EVENTS, HealthEvent, HealthSpec, PASSIVE_PENDING, PassiveSpec,
    PassiveStatus, QuorumStatus, ServiceHealth,
};
pub use stats::{ConnInfo, DestStats, DropCounts, DropReason, ServiceStats, Stats};

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod health_tests;
#[cfg(test)]
mod icmp_fixtures;
#[cfg(test)]
mod sched_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tun_fixtures;
#[cfg(test)]
mod v6_tests;

/// How often an unresolved neighbour is asked for again.
pub const ARP_RETRY: Duration = Duration::from_secs(1);
/// How often a resolved neighbour is asked again (its old MAC stays in use meanwhile).
pub const ARP_REFRESH: Duration = Duration::from_secs(30);

/// A network interface the core may send on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Kernel interface index.
    pub ifindex: u32,
    /// Name (for reports).
    pub name: String,
    /// MAC address: the source of every frame sent on it.
    pub mac: [u8; 6],
    /// IPv4 addresses (traffic to them is the kernel's: health-check replies).
    pub ipv4: Vec<Ipv4Addr>,
    /// IPv6 addresses, link-local included (as `ipv4`).
    pub ipv6: Vec<Ipv6Addr>,
    /// MTU: the largest IP packet sent on it unless the frame is GSO.
    pub mtu: u32,
}

/// A real server of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DestSpec {
    /// Real server address (RIP). NAT and DR: the service's family; TUN may mix (an
    /// IPv4 service tunnelled to an IPv6 real server and the reverse, as IPVS allows).
    pub addr: IpAddr,
    /// Real server port (NAT may translate the port; DR must use the virtual port).
    pub port: u16,
    /// IPVS weight; 0 = quiesced (no new connections).
    pub weight: u32,
    /// Forwarding method.
    pub forwarding: Forwarding,
    /// Interface towards the real server.
    pub ifindex: u32,
    /// Next hop towards the real server (the RIP itself when on-link); the RIP's family.
    pub next_hop: IpAddr,
    /// Our address on that link, the RIP's family: the sender of ARP requests (IPv4) or
    /// Neighbor Solicitations (IPv6) for `next_hop`, and the outer source of TUN packets.
    pub source: IpAddr,
    /// Connection upper threshold (ipvsadm `-x`): OVERLOAD at this many connections;
    /// 0 = none.
    pub upper_threshold: u32,
    /// Connection lower threshold (ipvsadm `-y`): OVERLOAD clears below it; 0 = below
    /// 3/4 of the upper threshold.
    pub lower_threshold: u32,
    /// Health checking (active check, inhibit, passive detection); the default is
    /// "not checked: always up".
    pub health: HealthSpec,
}

/// A persistent service's settings (spec b.16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Persistence {
    /// Template timeout (ipvsadm `-p`).
    pub timeout: Duration,
    /// Client netmask of an IPv4 service (ipvsadm `-M`).
    pub netmask: Ipv4Addr,
    /// Client prefix length of an IPv6 service (ipvsadm `-M` takes a prefix length for
    /// IPv6; default 128).
    pub prefix6: u8,
    /// Drop a template whose destination has weight 0 (sysctl `expire_quiescent_template`).
    pub quiescent_template_expire: bool,
}

/// A virtual service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    /// Virtual address (IPv4 or IPv6: the service's family).
    pub vip: IpAddr,
    /// Virtual port.
    pub port: u16,
    /// Protocol.
    pub protocol: Protocol,
    /// Scheduler.
    pub scheduler: SchedulerKind,
    /// Scheduler flags, twos seed, lblc expiry. A change of flags or expiry builds a new
    /// scheduler; the seed is used only when one is built.
    pub sched_params: SchedParams,
    /// Persistence, if on.
    pub persistence: Option<Persistence>,
    /// One-packet scheduling (ipvsadm `-o`): UDP datagrams are scheduled one by one and
    /// leave no connection entry. Ignored for TCP.
    pub one_packet: bool,
    /// Real servers, in config order (the IPVS list is the reverse).
    pub dests: Vec<DestSpec>,
    /// Sorry server, quorum and hysteresis (keepalived's, see `health.rs`).
    pub health: ServiceHealth,
}

/// Everything the core needs to know.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataplaneConfig {
    /// Interfaces the core may send on.
    pub interfaces: Vec<Interface>,
    /// Virtual services.
    pub services: Vec<ServiceSpec>,
    /// Connection timeouts.
    pub timeouts: Timeouts,
}

/// One received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxFrame<'a> {
    /// Interface it came in on.
    pub ifindex: u32,
    /// The frame, from the Ethernet header on.
    pub data: &'a [u8],
    /// The L4 checksum field holds a partial (pseudo-header) sum: virtio `NEEDS_CSUM`.
    pub csum_partial: bool,
    /// A GSO/GRO super-frame: may exceed the MTU (the device segments it on transmit).
    pub gso: bool,
    /// Payload bytes per segment of a GSO super-frame (virtio `gso_size`); 0 = unknown
    /// (TUN then cuts segments to the egress MTU).
    pub gso_size: u16,
}

/// What to do with a frame.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Send `out[..len]` on `ifindex`.
    Transmit {
        /// Outgoing interface.
        ifindex: u32,
        /// Frame length in `out`.
        len: usize,
    },
    /// Send `out[..len]` on `ifindex` as a plain frame: complete checksums, no offloads
    /// (no virtio GSO or `NEEDS_CSUM`, whatever the received frame had). TUN forwarding:
    /// an IPIP packet the core built. When a GSO super-frame was segmented or an outer
    /// packet fragmented, this is the first frame: call [`Dataplane::next_frame`] until
    /// `None` for the others, before the next [`Dataplane::process`].
    TransmitPlain {
        /// Outgoing interface.
        ifindex: u32,
        /// Frame length in `out`.
        len: usize,
    },
    /// Ours and dropped (counted under `reason`), answered with the ICMP error the core
    /// wrote to `out[..len]`: send it on `ifindex` as a plain frame (TUN's
    /// "fragmentation needed" back to the client).
    Reject {
        /// Why the packet was dropped.
        reason: DropReason,
        /// Interface towards the client.
        ifindex: u32,
        /// Frame length in `out`.
        len: usize,
    },
    /// Ours, but not forwarded.
    Drop(DropReason),
    /// Not ours: the kernel handles the original.
    Pass,
}

#[derive(Debug)]
struct Service {
    protocol: Protocol,
    vip: IpAddr,
    port: u16,
    scheduler: Box<dyn Scheduler>,
    params: SchedParams,
    persistence: Option<Persistence>,
    one_packet: bool,
    /// Destination ids in IPVS list order.
    list: Vec<u32>,
    /// Scratch: what the scheduler sees of `list` (reused, so no per-packet allocation).
    view: Vec<sched::Dest>,
    counters: Counters,
    /// Rate estimates of `counters` (spec b.18).
    est: Estimator,
    /// Recent decisions, oldest first, at most [`DECISION_RING`] (see `decide.rs`).
    decisions: std::collections::VecDeque<Decision>,
    /// Decisions are recorded while `now` is before this.
    watch_until: Option<Instant>,
    /// Every configured destination (listed or parked), in config order, the sorry
    /// server last.
    members: Vec<u32>,
    /// Keepalived's quorum state (`health.rs`).
    quorum: health::QuorumState,
}

impl Service {
    fn key(&self) -> ServiceKey {
        ServiceKey {
            protocol: self.protocol,
            vip: self.vip,
            port: self.port,
        }
    }
}

#[derive(Debug, Clone)]
struct DestEntry {
    service: u32,
    spec: DestSpec,
    /// The latest non-zero weight (= the weight when added), for mh (spec b.1).
    last_weight: u32,
    active: u32,
    inactive: u32,
    /// Persistence templates bound to it (`persistconns`).
    persistent: u32,
    /// The OVERLOAD flag (connection thresholds, spec b.1).
    overloaded: bool,
    /// Connections and templates bound to it.
    refs: u32,
    /// In the service's list (else in the trash, draining).
    in_list: bool,
    /// Its index in the service's list while listed, hence in the service's `view`
    /// (`reconfig::renumber` after every list change; [`announce`] falls back to a search
    /// if it is stale).
    pos: usize,
    counters: Counters,
    /// Rate estimates of `counters` (spec b.18).
    est: Estimator,
    /// Index into `neighbours`.
    neighbour: usize,
    /// Configured but out of the list (health down, or held out while the sorry server
    /// serves, or an idle sorry server): not trash, never freed while parked.
    parked: bool,
    /// In the list with weight 0 because it is down with `inhibit_on_failure`.
    inhibited: bool,
    /// The service's sorry server.
    sorry: bool,
    /// The active check's verdict (true when not checked).
    check_up: bool,
    /// Passive detection's state, when on.
    passive: Option<health::PassiveState>,
}

impl DestEntry {
    /// The weight the scheduler sees: 0 while inhibited, else the configured one (API
    /// edits and dynamic weights included).
    fn live_weight(&self) -> u32 {
        if self.inhibited { 0 } else { self.spec.weight }
    }

    /// Up as far as health is concerned: the active check and passive detection agree.
    fn alive(&self) -> bool {
        self.check_up && !self.passive.as_ref().is_some_and(|p| p.down)
    }
}

#[derive(Debug, Clone)]
struct Neighbour {
    ifindex: u32,
    addr: IpAddr,
    source: IpAddr,
    mac: Option<MacAddr>,
    next_probe: Instant,
}

#[derive(Debug, Clone, Copy, Default)]
struct Global {
    received: u64,
    forwarded: u64,
    passed: u64,
    dropped: DropCounts,
}

/// What `classify` learned about a TCP/UDP packet of family `A`.
#[derive(Debug, Clone, Copy)]
struct Parsed<A> {
    protocol: Protocol,
    src: A,
    dst: A,
    src_port: u16,
    dst_port: u16,
    tcp: Option<TcpFlags>,
    /// Length of the IP packet: the IPv4 total length, or 40 + the IPv6 payload length.
    ip_len: usize,
    /// Offset of the TCP/UDP header from the start of the IP header (after IPv4 options
    /// or IPv6 extension headers).
    l4_at: usize,
    src_mac: MacAddr,
}

impl<A: Family> Parsed<A> {
    fn flow(&self) -> sched::Flow {
        sched::Flow {
            protocol: self.protocol,
            src: self.src.sock(self.src_port),
            dst: self.dst.sock(self.dst_port),
        }
    }

    fn key(&self) -> FlowKey<A> {
        FlowKey {
            protocol: self.protocol,
            src: self.src,
            src_port: self.src_port,
            dst: self.dst,
            dst_port: self.dst_port,
        }
    }
}

/// The forwarding core. See the module documentation.
#[derive(Debug)]
pub struct Dataplane {
    interfaces: Vec<Interface>,
    timeouts: Timeouts,
    services: Vec<Option<Service>>,
    /// Service ids in config order.
    order: Vec<u32>,
    dests: Vec<Option<DestEntry>>,
    free_dests: Vec<u32>,
    service_index: HashMap<(Protocol, IpAddr, u16), u32>,
    vip_addrs: HashSet<(Protocol, IpAddr)>,
    rip_addrs: HashSet<(Protocol, IpAddr)>,
    nat_rips: HashSet<(Protocol, IpAddr, u16)>,
    neighbours: Vec<Neighbour>,
    neighbour_index: HashMap<(u32, IpAddr), usize>,
    /// Where the next `poll_transmit` scan starts.
    probe_cursor: usize,
    /// A lower bound of every neighbour's `next_probe`.
    earliest_probe: Option<Instant>,
    /// The connection tables of both families (`family.rs`).
    conns: Tables,
    global: Global,
    /// The last decision sequence number handed out (`decide.rs`).
    decision_seq: u64,
    /// When the rate estimators are next ticked (every [`EST_INTERVAL`]).
    next_estimate: Instant,
    /// Health flips not yet taken by [`Dataplane::poll_health_event`] (at most
    /// [`HEALTH_EVENTS`]; the oldest go first).
    health_events: std::collections::VecDeque<HealthEvent>,
    /// A lower bound of every passive deadline (handshake timeouts, retries).
    next_passive: Option<Instant>,
    /// The destinations with passive detection (`rebuild_indexes`), so its timers scan
    /// only them.
    passive_dests: Vec<u32>,
    /// TUN: frames after the first of a segmented or fragmented packet, the ICMP rate
    /// limit and the outer identification counter (`tunnel.rs`).
    tunnel: tunnel::TunnelState,
}

impl Dataplane {
    /// A core for `config`; `now` starts its clock.
    pub fn new(config: DataplaneConfig, now: Instant) -> Self {
        let mut dp = Dataplane {
            interfaces: Vec::new(),
            timeouts: config.timeouts,
            services: Vec::new(),
            order: Vec::new(),
            dests: Vec::new(),
            free_dests: Vec::new(),
            service_index: HashMap::new(),
            vip_addrs: HashSet::new(),
            rip_addrs: HashSet::new(),
            nat_rips: HashSet::new(),
            neighbours: Vec::new(),
            neighbour_index: HashMap::new(),
            probe_cursor: 0,
            earliest_probe: None,
            conns: Tables::new(now),
            global: Global::default(),
            decision_seq: 0,
            next_estimate: now + EST_INTERVAL,
            health_events: std::collections::VecDeque::new(),
            next_passive: None,
            passive_dests: Vec::new(),
            tunnel: tunnel::TunnelState::default(),
        };
        dp.reconfigure(config, now);
        dp
    }

    /// Whether `addr` is the VIP of any service (TCP or UDP).
    fn is_vip_addr(&self, addr: IpAddr) -> bool {
        self.vip_addrs.contains(&(Protocol::Tcp, addr))
            || self.vip_addrs.contains(&(Protocol::Udp, addr))
    }

    /// Whether `addr` is a real server address of any service (TCP or UDP).
    fn is_rip_addr(&self, addr: IpAddr) -> bool {
        self.rip_addrs.contains(&(Protocol::Tcp, addr))
            || self.rip_addrs.contains(&(Protocol::Udp, addr))
    }

    /// Whether `addr` is one of the director's interface addresses.
    fn is_local(&self, addr: IpAddr) -> bool {
        self.interfaces.iter().any(|i| match addr {
            IpAddr::V4(a) => i.ipv4.contains(&a),
            IpAddr::V6(a) => i.ipv6.contains(&a),
        })
    }

    fn interface(&self, ifindex: u32) -> Option<&Interface> {
        self.interfaces.iter().find(|i| i.ifindex == ifindex)
    }

    /// Processes one received frame (module doc); a `Transmit` verdict refers to `out`.
    pub fn process(&mut self, now: Instant, rx: RxFrame<'_>, out: &mut [u8]) -> Verdict {
        self.global.received += 1;
        self.tunnel.clear();
        let v = self.classify(now, rx, out);
        match v {
            Verdict::Transmit { .. } | Verdict::TransmitPlain { .. } => {
                self.global.forwarded += 1;
            }
            Verdict::Drop(r) | Verdict::Reject { reason: r, .. } => self.global.dropped.bump(r),
            Verdict::Pass => self.global.passed += 1,
        }
        v
    }

    fn classify(&mut self, now: Instant, rx: RxFrame<'_>, out: &mut [u8]) -> Verdict {
        let Ok(eth) = EthernetFrame::new_checked(rx.data) else {
            return Verdict::Drop(DropReason::Truncated);
        };
        match eth.ethertype() {
            EtherType::ARP => {
                self.learn(now, rx.ifindex, eth.payload());
                Verdict::Pass
            }
            EtherType::IPV4 => self.classify_v4(now, rx, eth.src_addr(), eth.payload(), out),
            EtherType::IPV6 => self.classify_v6(now, rx, eth.src_addr(), eth.payload(), out),
            _ => Verdict::Pass,
        }
    }

    fn classify_v4(
        &mut self,
        now: Instant,
        rx: RxFrame<'_>,
        src_mac: MacAddr,
        payload: &[u8],
        out: &mut [u8],
    ) -> Verdict {
        use DropReason as R;
        let ip = match Ipv4Packet::new_checked(payload) {
            Ok(ip) => ip,
            Err(WireError::Truncated) => return Verdict::Drop(R::Truncated),
            Err(WireError::Malformed) => return Verdict::Drop(R::BadIpHeader),
        };
        let protocol = match ip.protocol() {
            IpProtocol::TCP => Protocol::Tcp,
            IpProtocol::UDP => Protocol::Udp,
            IpProtocol::IPIP | IpProtocol::IPV6 if self.is_vip_addr(IpAddr::V4(ip.dst_addr())) => {
                return Verdict::Drop(R::Tunnelled);
            }
            IpProtocol::ICMP => return self.icmp(now, rx, &ip, out),
            _ => return Verdict::Pass,
        };
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let to_vip = self.vip_addrs.contains(&(protocol, IpAddr::V4(dst)));
        let from_rip = self.rip_addrs.contains(&(protocol, IpAddr::V4(src)));
        if !to_vip && !from_rip {
            return Verdict::Pass;
        }
        if !ip.verify_checksum() {
            return Verdict::Drop(R::BadChecksum);
        }
        let l4 = ip.payload();
        if ip.is_fragment() {
            return self.fragment(
                protocol,
                src.into(),
                dst.into(),
                ip.frag_offset(),
                l4,
                to_vip,
            );
        }
        let (src_port, dst_port, tcp) = match ports(protocol, l4) {
            Ok(ports) => ports,
            Err(reason) => return Verdict::Drop(reason),
        };
        let p = Parsed {
            protocol,
            src,
            dst,
            src_port,
            dst_port,
            tcp,
            ip_len: usize::from(ip.total_len()),
            l4_at: ip.header_len(),
            src_mac,
        };
        self.dispatch(now, rx, &p, to_vip, from_rip, out)
    }

    /// IPv6 (module doc, "IPv6"): the same classification as IPv4 after the extension
    /// headers, with NDP for the neighbours.
    fn classify_v6(
        &mut self,
        now: Instant,
        rx: RxFrame<'_>,
        src_mac: MacAddr,
        payload: &[u8],
        out: &mut [u8],
    ) -> Verdict {
        use DropReason as R;
        let ip = match Ipv6Packet::new_checked(payload) {
            Ok(ip) => ip,
            Err(WireError::Truncated) => return Verdict::Drop(R::Truncated),
            Err(WireError::Malformed) => return Verdict::Drop(R::BadIpHeader),
        };
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        if ip.next_header() == ipv6::next_header::ICMPV6 {
            // NDP never has extension headers (RFC 4861 checks hop limit 255 instead).
            self.learn_ndp(now, rx.ifindex, &ip);
        }
        let (to_any_vip, from_any_rip) = (
            self.is_vip_addr(IpAddr::V6(dst)),
            self.is_rip_addr(IpAddr::V6(src)),
        );
        if !to_any_vip && !from_any_rip {
            // A router's error about a tunnel packet, to the DIP (`icmp6.rs`); rare, so
            // the scan of the interfaces' addresses costs nothing on the forwarding path.
            if ip.next_header() == ipv6::next_header::ICMPV6 && self.is_local(IpAddr::V6(dst)) {
                if let Some(v) = self.icmp6_to_dip(now, &ip, out) {
                    return v;
                }
            }
            return Verdict::Pass;
        }
        let upper = match ip.upper_layer(ipv6::MAX_EXT_HEADERS) {
            Ok(u) => u,
            Err(_) => return Verdict::Drop(R::ExtHeaders),
        };
        let protocol = match upper.protocol {
            IpProtocol::TCP => Protocol::Tcp,
            IpProtocol::UDP => Protocol::Udp,
            IpProtocol::IPIP | IpProtocol::IPV6 if to_any_vip => {
                return Verdict::Drop(R::Tunnelled);
            }
            IpProtocol::ICMPV6 => return self.icmp6(now, rx, &ip, upper, out),
            _ => return Verdict::Pass,
        };
        let to_vip = self.vip_addrs.contains(&(protocol, IpAddr::V6(dst)));
        let from_rip = self.rip_addrs.contains(&(protocol, IpAddr::V6(src)));
        if !to_vip && !from_rip {
            return Verdict::Pass;
        }
        let l4 = ip.packet().get(upper.offset..).unwrap_or_default();
        if let Some(f) = upper.fragment {
            return self.fragment(protocol, src.into(), dst.into(), f.offset, l4, to_vip);
        }
        let (src_port, dst_port, tcp) = match ports(protocol, l4) {
            Ok(ports) => ports,
            Err(reason) => return Verdict::Drop(reason),
        };
        let p = Parsed {
            protocol,
            src,
            dst,
            src_port,
            dst_port,
            tcp,
            ip_len: ipv6::HEADER_LEN + usize::from(ip.payload_len()),
            l4_at: upper.offset,
            src_mac,
        };
        self.dispatch(now, rx, &p, to_vip, from_rip, out)
    }

    /// Step 8 of the classification (module doc), for either family.
    fn dispatch<A: Family>(
        &mut self,
        now: Instant,
        rx: RxFrame<'_>,
        p: &Parsed<A>,
        to_vip: bool,
        from_rip: bool,
        out: &mut [u8],
    ) -> Verdict {
        if to_vip {
            if let Some(&sid) = self
                .service_index
                .get(&(p.protocol, p.dst.into(), p.dst_port))
            {
                return self.inbound(now, rx, sid, p, out);
            }
        }
        if from_rip {
            if let Some(id) = A::table(&self.conns).find_reply(&p.key()) {
                return self.reply(now, rx, id, p, out);
            }
            // Traffic to the director's own addresses (health-check replies) is the
            // kernel's, whatever its source port.
            if !self.is_local(p.dst.into())
                && self
                    .nat_rips
                    .contains(&(p.protocol, p.src.into(), p.src_port))
            {
                return Verdict::Drop(DropReason::NoConnection);
            }
        }
        Verdict::Pass
    }

    fn fragment(
        &self,
        protocol: Protocol,
        src: IpAddr,
        dst: IpAddr,
        offset: u16,
        l4: &[u8],
        to_vip: bool,
    ) -> Verdict {
        if offset == 0 {
            if let Some(ports) = l4.get(..4) {
                let sport = u16::from_be_bytes([ports[0], ports[1]]);
                let dport = u16::from_be_bytes([ports[2], ports[3]]);
                let ours = (to_vip && self.service_index.contains_key(&(protocol, dst, dport)))
                    || self.nat_rips.contains(&(protocol, src, sport));
                return if ours {
                    Verdict::Drop(DropReason::Fragment)
                } else {
                    Verdict::Pass
                };
            }
        }
        if to_vip {
            Verdict::Drop(DropReason::Fragment)
        } else {
            Verdict::Pass
        }
    }

    fn inbound<A: Family>(
        &mut self,
        now: Instant,
        rx: RxFrame<'_>,
        sid: u32,
        p: &Parsed<A>,
        out: &mut [u8],
    ) -> Verdict {
        let key = p.key();
        let mut found = A::table(&self.conns).find_inbound(&key);
        if let (Some(id), Some(flags)) = (found, p.tcp) {
            let reusable = matches!(
                A::table(&self.conns).get(id).map(Conn::state),
                Some(ConnState::Tcp(TcpState::TimeWait | TcpState::Close))
            );
            if flags.syn && reusable {
                if let Some(c) = A::table_mut(&mut self.conns).remove(id) {
                    self.settle(&c, now);
                }
                found = None;
            }
        }
        let (did, forwarding, real) = match found {
            Some(id) => {
                let conns = A::table_mut(&mut self.conns);
                conns.set_client_path(id, p.src_mac, rx.ifindex);
                let Some(conn) = conns.get(id) else {
                    return Verdict::Drop(DropReason::NoConnection);
                };
                let target = (conn.dest(), conn.forwarding(), conn.real());
                self.count_in(sid, target.0, p);
                let activity = A::table_mut(&mut self.conns).on_packet(
                    id,
                    now,
                    &self.timeouts,
                    Direction::Input,
                    p.tcp,
                );
                self.apply_activity(target.0, activity);
                target
            }
            None => {
                if let Some(f) = p.tcp {
                    if !f.syn || f.rst {
                        return Verdict::Drop(DropReason::NoConnection);
                    }
                }
                let Some(choice) = self.decide::<A>(now, sid, &p.flow()) else {
                    return Verdict::Drop(DropReason::NoDestination);
                };
                let did = choice.dest;
                let Some(Some(dest)) = self.dests.get_mut(did as usize) else {
                    return Verdict::Drop(DropReason::NoDestination);
                };
                bind_dest(dest, Hold::Inactive);
                dest.counters.conns += 1;
                // A cross-family TUN destination: the entry holds no real address
                // (`family.rs`); forwarding reads it from the destination.
                let real = (
                    A::of(dest.spec.addr).unwrap_or(A::UNSPECIFIED),
                    dest.spec.port,
                );
                let forwarding = dest.spec.forwarding;
                announce(&mut self.services, &self.dests, did);
                let mut one_packet = false;
                if let Some(Some(svc)) = self.services.get_mut(sid as usize) {
                    svc.counters.conns += 1;
                    one_packet = svc.one_packet && p.protocol == Protocol::Udp;
                }
                if one_packet {
                    // Kernel IP_VS_CONN_F_ONE_PACKET: never hashed, expired right after
                    // this packet, so it is bound and unbound around it.
                    self.count_in(sid, did, p);
                    let drained = unbind_dest(&mut self.dests, did, Hold::Inactive);
                    announce(&mut self.services, &self.dests, did);
                    if drained {
                        self.free_dest(did);
                        self.rebuild_indexes(now);
                    }
                } else {
                    let new = NewConn {
                        protocol: p.protocol,
                        forwarding,
                        client: (p.src, p.src_port),
                        virt: (p.dst, p.dst_port),
                        real,
                        service: sid,
                        dest: did,
                        client_mac: p.src_mac,
                        in_ifindex: rx.ifindex,
                    };
                    let conns = A::table_mut(&mut self.conns);
                    let id = conns.insert(new, now, &self.timeouts);
                    if let Some(t) = choice.template {
                        conns.set_control(id, t);
                    }
                    if p.tcp.is_some() && forwarding == Forwarding::Nat {
                        self.passive_syn(now, did, (p.src.into(), p.src_port));
                    }
                    self.count_in(sid, did, p);
                    let activity = A::table_mut(&mut self.conns).on_packet(
                        id,
                        now,
                        &self.timeouts,
                        Direction::Input,
                        p.tcp,
                    );
                    self.apply_activity(did, activity);
                }
                if let Some(t) = choice.template {
                    // Kernel: `ip_vs_conn_put(ct)` after the connection is made.
                    A::table_mut(&mut self.conns).refresh_template(t, now);
                }
                (did, forwarding, real)
            }
        };

        let Some(Some(dest)) = self.dests.get(did as usize) else {
            return Verdict::Drop(DropReason::NoDestination);
        };
        let ifindex = dest.spec.ifindex;
        let Some(iface) = self.interface(ifindex) else {
            return Verdict::Drop(DropReason::NoInterface);
        };
        let Some(mac) = self.neighbours.get(dest.neighbour).and_then(|n| n.mac) else {
            return Verdict::Drop(DropReason::NeighbourUnresolved);
        };
        if forwarding == Forwarding::Tun {
            let path = tunnel::Path {
                ifindex,
                src_mac: iface.mac,
                dst_mac: mac,
                mtu: iface.mtu,
                dip: dest.spec.source,
                rip: dest.spec.addr,
            };
            let inbound = tunnel::Inbound {
                protocol: p.protocol,
                ip_len: p.ip_len,
                src_mac: p.src_mac,
                client: p.src.into(),
                vip: p.dst.into(),
            };
            return self.tunnel_out(now, rx, &inbound, path, out);
        }
        let len = match copy_out(rx, p.ip_len, iface.mtu, out) {
            Ok(len) => len,
            Err(v) => return v,
        };
        let frame = &mut out[..len];
        rewrite::macs(frame, iface.mac, mac);
        if forwarding == Forwarding::Nat {
            A::nat(
                frame,
                p.protocol,
                rewrite::Side::Dst,
                real,
                rx.csum_partial,
                p.l4_at,
            );
        }
        Verdict::Transmit { ifindex, len }
    }

    fn reply<A: Family>(
        &mut self,
        now: Instant,
        rx: RxFrame<'_>,
        id: ConnId,
        p: &Parsed<A>,
        out: &mut [u8],
    ) -> Verdict {
        let Some(conn) = A::table(&self.conns).get(id) else {
            return Verdict::Drop(DropReason::NoConnection);
        };
        let (sid, did, virt) = (conn.service(), conn.dest(), conn.virt());
        let (client_mac, ifindex) = (conn.client_mac(), conn.in_ifindex());
        if let Some(flags) = p.tcp {
            self.passive_reply(now, did, (p.dst.into(), p.dst_port), flags);
        }
        let bytes = p.ip_len as u64;
        if let Some(Some(svc)) = self.services.get_mut(sid as usize) {
            svc.counters.outpkts += 1;
            svc.counters.outbytes += bytes;
        }
        if let Some(Some(d)) = self.dests.get_mut(did as usize) {
            d.counters.outpkts += 1;
            d.counters.outbytes += bytes;
        }
        let activity = A::table_mut(&mut self.conns).on_packet(
            id,
            now,
            &self.timeouts,
            Direction::Output,
            p.tcp,
        );
        self.apply_activity(did, activity);

        let Some(iface) = self.interface(ifindex) else {
            return Verdict::Drop(DropReason::NoInterface);
        };
        let len = match copy_out(rx, p.ip_len, iface.mtu, out) {
            Ok(len) => len,
            Err(v) => return v,
        };
        let frame = &mut out[..len];
        rewrite::macs(frame, iface.mac, client_mac);
        A::nat(
            frame,
            p.protocol,
            rewrite::Side::Src,
            virt,
            rx.csum_partial,
            p.l4_at,
        );
        Verdict::Transmit { ifindex, len }
    }

    /// Counts an inbound packet on the service and the destination.
    fn count_in<A>(&mut self, sid: u32, did: u32, p: &Parsed<A>) {
        let bytes = p.ip_len as u64;
        if let Some(Some(svc)) = self.services.get_mut(sid as usize) {
            svc.counters.inpkts += 1;
            svc.counters.inbytes += bytes;
        }
        if let Some(Some(d)) = self.dests.get_mut(did as usize) {
            d.counters.inpkts += 1;
            d.counters.inbytes += bytes;
        }
    }

    fn apply_activity(&mut self, did: u32, activity: Option<Activity>) {
        let Some(Some(d)) = self.dests.get_mut(did as usize) else {
            return;
        };
        match activity {
            Some(Activity::BecameActive) => {
                d.inactive = d.inactive.saturating_sub(1);
                d.active += 1;
            }
            Some(Activity::BecameInactive) => {
                d.active = d.active.saturating_sub(1);
                d.inactive += 1;
            }
            None => return,
        }
        announce(&mut self.services, &self.dests, did);
    }

    /// Releases a removed connection's hold on its destination; frees a drained one.
    fn settle<A: ConnAddr>(&mut self, c: &Conn<A>, now: Instant) {
        let drained = settle_dest(&mut self.dests, c);
        announce(&mut self.services, &self.dests, c.dest());
        if drained {
            self.free_dest(c.dest());
            self.rebuild_indexes(now);
        }
    }

    fn learn(&mut self, now: Instant, ifindex: u32, payload: &[u8]) {
        let Ok(p) = ArpPacket::new_checked(payload) else {
            return;
        };
        let Ok(repr) = ArpRepr::parse(&p) else { return };
        if !matches!(repr.operation, ArpOperation::Request | ArpOperation::Reply)
            || !ethernet::is_unicast(&repr.source_hardware_addr)
        {
            return;
        }
        let addr = IpAddr::V4(repr.source_protocol_addr);
        self.learn_mac(now, ifindex, addr, repr.source_hardware_addr);
    }

    /// A tracked neighbour `(ifindex, addr)` is at `mac` (ARP, or NDP in `icmp6.rs`).
    fn learn_mac(&mut self, now: Instant, ifindex: u32, addr: IpAddr, mac: MacAddr) {
        let Some(&i) = self.neighbour_index.get(&(ifindex, addr)) else {
            return;
        };
        let Some(n) = self.neighbours.get_mut(i) else {
            return;
        };
        if n.mac.is_none() {
            n.next_probe = now + ARP_REFRESH;
        }
        n.mac = Some(mac);
    }

    /// The next ARP request (IPv4) or Neighbor Solicitation (IPv6) due at `now`, written
    /// into `out`: `(ifindex, len)`. Call until
    /// `None` after [`Dataplane::handle_timeout`] (or whenever convenient). Unresolved next
    /// hops are asked every [`ARP_RETRY`], resolved ones every [`ARP_REFRESH`].
    pub fn poll_transmit(&mut self, now: Instant, out: &mut [u8]) -> Option<(u32, usize)> {
        let n = self.neighbours.len();
        for step in 0..n {
            let i = (self.probe_cursor + step) % n;
            let nb = &self.neighbours[i];
            if nb.next_probe > now {
                continue;
            }
            let (ifindex, source, target, resolved) =
                (nb.ifindex, nb.source, nb.addr, nb.mac.is_some());
            let mac = self.interface(ifindex).map(|i| i.mac);
            let nb = &mut self.neighbours[i];
            nb.next_probe = now + if resolved { ARP_REFRESH } else { ARP_RETRY };
            self.probe_cursor = (i + 1) % n;
            let Some(mac) = mac else { continue };
            let len = match (source, target) {
                (IpAddr::V4(s), IpAddr::V4(t)) => arp::emit_request(out, mac, s, t),
                (IpAddr::V6(s), IpAddr::V6(t)) => icmp6::emit_solicit(out, mac, s, t),
                _ => None,
            };
            if let Some(len) = len {
                return Some((ifindex, len));
            }
        }
        self.earliest_probe = self.neighbours.iter().map(|n| n.next_probe).min();
        None
    }

    /// When [`Dataplane::handle_timeout`] or [`Dataplane::poll_transmit`] next has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let schedulers = self
            .services
            .iter()
            .flatten()
            .filter_map(|s| s.scheduler.poll_timeout());
        [
            self.earliest_probe,
            self.conns.next_sweep(),
            Some(self.next_estimate),
            self.next_passive,
        ]
        .into_iter()
        .flatten()
        .chain(schedulers)
        .min()
    }

    /// Expires idle connections and templates (1 s grain), settles their destinations'
    /// counters, runs the schedulers' timers that are due, ticks the rate estimators
    /// every [`EST_INTERVAL`], and runs passive detection's timers (unanswered SYNs,
    /// retries after the back-off; `health.rs`).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.next_passive.is_some_and(|t| t <= now) {
            self.passive_timeout(now);
        }
        if self.next_estimate <= now {
            self.estimate();
            // Keep the 2 s cadence; after a stall of more than one interval, restart it.
            self.next_estimate += EST_INTERVAL;
            if self.next_estimate <= now {
                self.next_estimate = now + EST_INTERVAL;
            }
        }
        for svc in self.services.iter_mut().flatten() {
            if svc.scheduler.poll_timeout().is_some_and(|t| t <= now) {
                svc.scheduler.handle_timeout(now);
            }
        }
        let mut drained = Vec::new();
        self.expire::<Ipv4Addr>(now, &mut drained);
        self.expire::<Ipv6Addr>(now, &mut drained);
        if !drained.is_empty() {
            for id in drained {
                self.free_dest(id);
            }
            self.rebuild_indexes(now);
        }
    }

    /// Expires `A`'s idle entries; collects destinations drained by it.
    fn expire<A: Family>(&mut self, now: Instant, drained: &mut Vec<u32>) {
        let dests = &mut self.dests;
        let services = &mut self.services;
        A::table_mut(&mut self.conns).expire(now, |c| {
            let gone = settle_dest(dests, &c);
            announce(services, dests, c.dest());
            if gone {
                drained.push(c.dest());
            }
        });
    }

    /// The real server of a connection entry: its own address, or for a cross-family
    /// TUN entry (which holds none) its destination's.
    fn real_of<A: Family>(&self, c: &Conn<A>) -> SocketAddr {
        let (addr, port) = c.real();
        if addr == A::UNSPECIFIED {
            if let Some(Some(d)) = self.dests.get(c.dest() as usize) {
                return SocketAddr::new(d.spec.addr, d.spec.port);
            }
        }
        addr.sock(port)
    }

    /// A connection entry as reported.
    fn info_of<A: Family>(&self, id: ConnId, c: &Conn<A>, now: Instant) -> ConnInfo {
        let sa = |(a, p): (A, u16)| a.sock(p);
        ConnInfo {
            protocol: c.protocol(),
            client: sa(c.client()),
            virt: sa(c.virt()),
            real: self.real_of(c),
            forwarding: c.forwarding(),
            state: c.state().name(),
            active: c.is_active(),
            template: c.is_template(),
            expires_in: A::table(&self.conns)
                .expires_in(id, now)
                .unwrap_or_default(),
        }
    }

    /// Tracked next hops whose MAC is not known.
    pub fn unresolved_neighbours(&self) -> usize {
        self.neighbours.iter().filter(|n| n.mac.is_none()).count()
    }

    /// Number of connection entries.
    pub fn conn_count(&self) -> usize {
        self.conns.len()
    }

    /// Every connection entry (ipvsadm `-Lnc`), in table order.
    pub fn connections(&self, now: Instant) -> Vec<ConnInfo> {
        let v4 = self.conns.v4.iter().map(|(id, c)| self.info_of(id, c, now));
        let v6 = self.conns.v6.iter().map(|(id, c)| self.info_of(id, c, now));
        v4.chain(v6).collect()
    }

    /// A snapshot of all counters (module doc for the invariant they keep).
    pub fn stats(&self) -> Stats {
        let services = self
            .order
            .iter()
            .filter_map(|&sid| self.services.get(sid as usize)?.as_ref())
            .map(|svc| ServiceStats {
                protocol: svc.protocol,
                vip: svc.vip,
                port: svc.port,
                scheduler: svc.scheduler.kind(),
                scheduler_flags: svc.params.flags,
                persistence: svc.persistence,
                one_packet: svc.one_packet,
                counters: svc.counters,
                rates: svc.est.rates(),
                // The list (scheduling order), then the parked members (config order).
                dests: svc
                    .list
                    .iter()
                    .chain(svc.members.iter().filter(|&&id| {
                        self.dests
                            .get(id as usize)
                            .and_then(Option::as_ref)
                            .is_some_and(|e| e.parked)
                    }))
                    .filter_map(|&id| self.dests.get(id as usize)?.as_ref())
                    .map(|e| self.dest_stats_of(e))
                    .collect(),
                quorum: self.quorum_status(svc),
            })
            .collect();
        Stats {
            services,
            received: self.global.received,
            forwarded: self.global.forwarded,
            passed: self.global.passed,
            dropped: self.global.dropped,
            conns: self.conns.len(),
            unresolved_neighbours: self.unresolved_neighbours(),
        }
    }
}

/// What a connection entry holds on its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    /// A connection counted in `active`.
    Active,
    /// A connection counted in `inactive`.
    Inactive,
    /// A persistence template, counted in `persistent`.
    Template,
}

impl Hold {
    fn of<A: ConnAddr>(c: &Conn<A>) -> Hold {
        if c.is_template() {
            Hold::Template
        } else if c.is_active() {
            Hold::Active
        } else {
            Hold::Inactive
        }
    }
}

/// Kernel `ip_vs_bind_dest`: counts a new entry (connections start inactive), takes a
/// reference, and sets OVERLOAD when `u != 0 && active + inactive >= u` (templates are
/// not in that sum, `ip_vs_dest_totalconns`, but their binding checks it too).
fn bind_dest(d: &mut DestEntry, hold: Hold) {
    match hold {
        Hold::Active => d.active += 1,
        Hold::Inactive => d.inactive += 1,
        Hold::Template => d.persistent += 1,
    }
    d.refs += 1;
    let u = d.spec.upper_threshold;
    if u != 0 && total_conns(d) >= u64::from(u) {
        d.overloaded = true;
    }
}

/// Kernel `ip_vs_unbind_dest`: uncounts an entry, drops its reference and clears OVERLOAD
/// by the threshold rules (spec b.1): below `l` if `l != 0`; else when
/// `(active + inactive) × 4 < u × 3` if `u != 0`; else always. True if the destination is
/// drained trash that should now be freed.
fn unbind_dest(dests: &mut [Option<DestEntry>], did: u32, hold: Hold) -> bool {
    let Some(Some(d)) = dests.get_mut(did as usize) else {
        return false;
    };
    match hold {
        Hold::Active => d.active = d.active.saturating_sub(1),
        Hold::Inactive => d.inactive = d.inactive.saturating_sub(1),
        Hold::Template => d.persistent = d.persistent.saturating_sub(1),
    }
    d.refs = d.refs.saturating_sub(1);
    let (u, l) = (
        u64::from(d.spec.upper_threshold),
        u64::from(d.spec.lower_threshold),
    );
    let total = total_conns(d);
    let clear = if l != 0 {
        total < l
    } else if u != 0 {
        total * 4 < u * 3
    } else {
        true
    };
    if clear {
        d.overloaded = false;
    }
    !d.in_list && !d.parked && d.refs == 0
}

/// Tells the scheduler of destination `did`'s service that its counts or OVERLOAD flag
/// changed: copies them into the service's view entry and calls
/// [`Scheduler::dest_changed`] (module doc). Nothing to do for a destination in the trash
/// (not in any list). Call after every `bind_dest` / `unbind_dest` / activity change.
fn announce(services: &mut [Option<Service>], dests: &[Option<DestEntry>], did: u32) {
    let Some(Some(e)) = dests.get(did as usize) else {
        return;
    };
    if !e.in_list {
        return;
    }
    let Some(Some(svc)) = services.get_mut(e.service as usize) else {
        return;
    };
    let pos = if svc.list.get(e.pos) == Some(&did) {
        e.pos
    } else {
        // A list change that was not renumbered: find it (O(n), still exact).
        let Some(pos) = svc.list.iter().position(|&id| id == did) else {
            return;
        };
        pos
    };
    let Some(v) = svc.view.get_mut(pos) else {
        return;
    };
    v.active = e.active;
    v.inactive = e.inactive;
    v.persistent = e.persistent;
    v.overloaded = e.overloaded;
    svc.scheduler.dest_changed(&svc.view, pos);
}

/// Kernel `ip_vs_dest_totalconns`: `active + inactive` (templates excluded).
fn total_conns(d: &DestEntry) -> u64 {
    u64::from(d.active) + u64::from(d.inactive)
}

/// Drops a removed entry's hold on its destination; true if the destination is drained
/// trash that should now be freed.
fn settle_dest<A: ConnAddr>(dests: &mut [Option<DestEntry>], c: &Conn<A>) -> bool {
    unbind_dest(dests, c.dest(), Hold::of(c))
}

/// The ports and TCP flags of the TCP/UDP header at the start of `l4`.
fn ports(protocol: Protocol, l4: &[u8]) -> Result<(u16, u16, Option<TcpFlags>), DropReason> {
    use DropReason as R;
    match protocol {
        Protocol::Tcp => match TcpPacket::new_checked(l4) {
            Ok(t) => {
                let flags = TcpFlags {
                    syn: t.syn(),
                    fin: t.fin(),
                    ack: t.ack(),
                    rst: t.rst(),
                };
                Ok((t.src_port(), t.dst_port(), Some(flags)))
            }
            Err(WireError::Truncated) => Err(R::Truncated),
            Err(WireError::Malformed) => Err(R::BadL4Header),
        },
        Protocol::Udp => match UdpPacket::new_checked(l4) {
            Ok(u) => Ok((u.src_port(), u.dst_port(), None)),
            Err(WireError::Truncated) => Err(R::Truncated),
            Err(WireError::Malformed) => Err(R::BadL4Header),
        },
    }
}

/// Copies the IP packet (without Ethernet padding) to `out` after the size checks.
fn copy_out(rx: RxFrame<'_>, ip_len: usize, mtu: u32, out: &mut [u8]) -> Result<usize, Verdict> {
    let len = ethernet::HEADER_LEN + ip_len;
    let too_big = !rx.gso && u64::try_from(ip_len).unwrap_or(u64::MAX) > u64::from(mtu);
    let (Some(src), Some(dst)) = (rx.data.get(..len), out.get_mut(..len)) else {
        return Err(Verdict::Drop(DropReason::TooBig));
    };
    if too_big {
        return Err(Verdict::Drop(DropReason::TooBig));
    }
    dst.copy_from_slice(src);
    Ok(len)
}
