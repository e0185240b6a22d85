//! A deterministic simulator: N routers (each a [`Router`]) on one shared segment.
//!
//! The segment carries real bytes: every `SendAdvert` is built with
//! [`super::Instance::emit_advert`], wrapped in an IPv4 header (TTL 255, protocol 112) and
//! delivered to the other nodes through [`Router::handle_packet`], so the wire format and
//! every receive check run as in the daemon. Time is virtual: the simulator jumps from
//! event to event (deliveries, timers, scheduled boots and thaws), so a minute of failover
//! costs microseconds and never sleeps.
//!
//! Faults it can inject, all driven by a seeded PRNG ([`SplitMix64`]) so a seed replays
//! exactly: per-packet loss (global or per directed link), per-packet delay in a range,
//! partitions, a frozen node (a paused VM: no timers, incoming packets queue up and are
//! read on thaw), a kill (silent), a graceful stop (priority 0) and a restart.
//!
//! Every interface name is one shared segment: an advert sent on `ext0` reaches the
//! other nodes' `ext0` (so a node may run instances on several segments, e.g. a sync
//! group on `ext0` and `int0`). A node whose configuration does not validate stays down.
//!
//! Invariant: events at the same instant run in a fixed order — scheduled events, then
//! deliveries in send order, then timers in node order — so runs are reproducible.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use lvs_proto::VrrpState;

use super::Action;
use super::config::{InstanceConfig, SyncGroupConfig};
use super::router::{InstanceId, Router};
use crate::wire::ipv4::{Ipv4Packet, Ipv4Repr};
use crate::wire::ipv6::{Ipv6Packet, Ipv6Repr};
use crate::wire::vrrp::{IP_PROTOCOL, TTL};

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny, seedable, good-enough PRNG.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[lo, hi]` (nanosecond resolution).
    pub fn duration(&mut self, lo: Duration, hi: Duration) -> Duration {
        if hi <= lo {
            return lo;
        }
        let span = u64::try_from((hi - lo).as_nanos()).unwrap_or(u64::MAX);
        lo + Duration::from_nanos(self.next_u64() % span.saturating_add(1))
    }
}

/// Wraps a VRRP message in a 20-byte IPv4 header (protocol 112).
pub fn ipv4_packet(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, payload: &[u8]) -> Vec<u8> {
    let repr = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: IP_PROTOCOL,
        payload_len: payload.len(),
        ttl,
        ident: 0,
        dont_frag: false,
    };
    let mut b = vec![0u8; repr.header_len() + payload.len()];
    repr.emit(&mut Ipv4Packet::new_unchecked(&mut b[..]));
    b[repr.header_len()..].copy_from_slice(payload);
    b
}

/// Wraps a VRRP message in a 40-byte IPv6 header (next header 112, no extension).
pub fn ipv6_packet(src: Ipv6Addr, dst: Ipv6Addr, hop_limit: u8, payload: &[u8]) -> Vec<u8> {
    let repr = Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IP_PROTOCOL.0,
        payload_len: payload.len(),
        hop_limit,
    };
    let mut b = vec![0u8; repr.header_len() + payload.len()];
    repr.emit(&mut Ipv6Packet::new_unchecked(&mut b[..]));
    b[repr.header_len()..].copy_from_slice(payload);
    b
}

/// Wraps a VRRP message in the header of `src`'s family (`None` if `dst` is of the
/// other family).
pub fn ip_packet(src: IpAddr, dst: IpAddr, ttl: u8, payload: &[u8]) -> Option<Vec<u8>> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Some(ipv4_packet(s, d, ttl, payload)),
        (IpAddr::V6(s), IpAddr::V6(d)) => Some(ipv6_packet(s, d, ttl, payload)),
        _ => None,
    }
}

/// A node's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeStatus {
    /// Not booted, killed or stopped.
    Down,
    /// Running.
    Running,
    /// Paused until this instant.
    Frozen(Instant),
}

/// One state change seen in the simulation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// When.
    pub at: Instant,
    /// Node index.
    pub node: usize,
    /// Instance name.
    pub instance: String,
    /// Before.
    pub from: VrrpState,
    /// After.
    pub to: VrrpState,
    /// Why.
    pub reason: String,
}

/// One GARP round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Garp {
    /// When.
    pub at: Instant,
    /// Node index.
    pub node: usize,
    /// Instance index in the node's router.
    pub instance: usize,
    /// GARPs per VIP.
    pub repeat: u32,
}

/// A simulated director.
#[derive(Debug)]
pub struct Node {
    /// Its address on the segment (the instances' primary address).
    pub addr: Ipv4Addr,
    configs: Vec<InstanceConfig>,
    groups: Vec<SyncGroupConfig>,
    router: Option<Router>,
    status: NodeStatus,
    /// Per instance: whether the VIPs are on this node (AddVips/RemoveVips applied).
    vips: Vec<bool>,
    queued: Vec<(String, Vec<u8>)>,
    /// Adverts this node put on the segment.
    pub adverts_sent: u64,
}

impl Node {
    /// Its router, while booted.
    pub fn router(&self) -> Option<&Router> {
        self.router.as_ref()
    }

    /// Its status.
    pub fn status(&self) -> NodeStatus {
        self.status
    }
}

#[derive(Debug)]
struct InFlight {
    at: Instant,
    seq: u64,
    to: usize,
    interface: String,
    bytes: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
enum Scheduled {
    Boot(usize),
    Thaw(usize),
}

/// The segment and its nodes.
#[derive(Debug)]
pub struct Sim {
    start: Instant,
    now: Instant,
    rng: SplitMix64,
    nodes: Vec<Node>,
    in_flight: Vec<InFlight>,
    seq: u64,
    loss: f64,
    link_loss: BTreeMap<(usize, usize), f64>,
    delay: (Duration, Duration),
    /// Partition label per node: packets cross only between equal labels.
    partition: Vec<u32>,
    scheduled: Vec<(Instant, u64, Scheduled)>,
    /// Every state change, in order.
    pub changes: Vec<Change>,
    /// Every GARP round, in order.
    pub garps: Vec<Garp>,
    /// Frozen nodes keep at most this many packets for their thaw (a NIC ring).
    pub freeze_queue_limit: usize,
}

impl Sim {
    /// An empty segment; `seed` drives loss, delay and anything the test draws.
    pub fn new(seed: u64) -> Self {
        let start = Instant::now();
        Sim {
            start,
            now: start,
            rng: SplitMix64::new(seed),
            nodes: Vec::new(),
            in_flight: Vec::new(),
            seq: 0,
            loss: 0.0,
            link_loss: BTreeMap::new(),
            delay: (Duration::from_micros(100), Duration::from_micros(500)),
            partition: Vec::new(),
            scheduled: Vec::new(),
            changes: Vec::new(),
            garps: Vec::new(),
            freeze_queue_limit: 256,
        }
    }

    /// The simulator's PRNG, for tests that draw boot offsets and such.
    pub fn rng(&mut self) -> &mut SplitMix64 {
        &mut self.rng
    }

    /// Adds a node (down until booted); returns its index.
    pub fn add_node(
        &mut self,
        addr: Ipv4Addr,
        configs: Vec<InstanceConfig>,
        groups: Vec<SyncGroupConfig>,
    ) -> usize {
        let n = configs.len();
        self.nodes.push(Node {
            addr,
            configs,
            groups,
            router: None,
            status: NodeStatus::Down,
            vips: vec![false; n],
            queued: Vec::new(),
            adverts_sent: 0,
        });
        self.partition.push(0);
        self.nodes.len() - 1
    }

    /// The nodes.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Virtual time now.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// The instant `d` after the start.
    pub fn at(&self, d: Duration) -> Instant {
        self.start + d
    }

    /// Loss probability of every packet.
    pub fn set_loss(&mut self, p: f64) {
        self.loss = p;
    }

    /// Loss probability of packets from `from` to `to` (overrides the global one).
    pub fn set_link_loss(&mut self, from: usize, to: usize, p: f64) {
        self.link_loss.insert((from, to), p);
    }

    /// Each packet's delay is drawn uniformly from `[lo, hi]`.
    pub fn set_delay(&mut self, lo: Duration, hi: Duration) {
        self.delay = (lo, hi);
    }

    /// Splits the segment: nodes in different sides hear nothing from each other.
    pub fn partition(&mut self, sides: &[&[usize]]) {
        for (label, side) in sides.iter().enumerate() {
            for &n in *side {
                if let Some(p) = self.partition.get_mut(n) {
                    *p = u32::try_from(label).unwrap_or(u32::MAX);
                }
            }
        }
    }

    /// Joins the segment again.
    pub fn heal(&mut self) {
        self.partition.fill(0);
    }

    fn schedule(&mut self, at: Instant, what: Scheduled) {
        self.seq += 1;
        self.scheduled.push((at, self.seq, what));
    }

    /// Boots (or restarts) `node` `after` from now.
    pub fn boot_after(&mut self, node: usize, after: Duration) {
        self.schedule(self.now + after, Scheduled::Boot(node));
    }

    /// Boots (or restarts) `node` now.
    pub fn boot(&mut self, node: usize) {
        let Some(n) = self.nodes.get_mut(node) else {
            return;
        };
        let Ok(mut router) = Router::new(n.configs.clone(), n.groups.clone()) else {
            return;
        };
        n.status = NodeStatus::Running;
        n.queued.clear();
        n.vips.fill(false);
        let mut out = Vec::new();
        router.start(self.now, &mut out);
        n.router = Some(router);
        self.apply(node, out);
    }

    /// Kills `node` silently (kill -9, power loss): no advert, its VIPs vanish with it.
    pub fn kill(&mut self, node: usize) {
        if let Some(n) = self.nodes.get_mut(node) {
            n.status = NodeStatus::Down;
            n.router = None;
            n.vips.fill(false);
            n.queued.clear();
        }
    }

    /// Stops `node` gracefully: its masters send priority 0 and release the VIPs.
    pub fn stop(&mut self, node: usize) {
        let mut out = Vec::new();
        if let Some(r) = self.nodes.get_mut(node).and_then(|n| n.router.as_mut()) {
            r.stop(self.now, &mut out);
        }
        self.apply(node, out);
        self.kill(node);
    }

    /// Pauses `node` for `d` (a VM snapshot): no timers run and packets queue up.
    pub fn freeze(&mut self, node: usize, d: Duration) {
        let until = self.now + d;
        let Some(n) = self.nodes.get_mut(node) else {
            return;
        };
        if n.status == NodeStatus::Running {
            n.status = NodeStatus::Frozen(until);
            self.schedule(until, Scheduled::Thaw(node));
        }
    }

    /// An interface of `node` went up or down.
    pub fn set_link(&mut self, node: usize, interface: &str, up: bool) {
        let mut out = Vec::new();
        if let Some(r) = self.nodes.get_mut(node).and_then(|n| n.router.as_mut()) {
            r.set_link(self.now, interface, up, &mut out);
        }
        self.apply(node, out);
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }

    /// Runs every event up to and including `end`; then the clock reads `end`.
    pub fn run_until(&mut self, end: Instant) {
        while let Some(t) = self.next_event() {
            if t > end {
                break;
            }
            self.now = self.now.max(t);
            self.step();
        }
        self.now = self.now.max(end);
    }

    fn next_event(&self) -> Option<Instant> {
        let sched = self.scheduled.iter().map(|s| s.0).min();
        let flight = self.in_flight.iter().map(|f| f.at).min();
        let timers = self
            .nodes
            .iter()
            .filter(|n| n.status == NodeStatus::Running)
            .filter_map(|n| n.router.as_ref().and_then(Router::poll_timeout))
            .min();
        [sched, flight, timers].into_iter().flatten().min()
    }

    fn step(&mut self) {
        let now = self.now;
        // Scheduled events, in order.
        let mut due: Vec<(Instant, u64, Scheduled)> = Vec::new();
        self.scheduled.retain(|s| {
            if s.0 <= now {
                due.push(*s);
                false
            } else {
                true
            }
        });
        due.sort_by_key(|s| (s.0, s.1));
        for (_, _, what) in due {
            match what {
                Scheduled::Boot(n) => self.boot(n),
                Scheduled::Thaw(n) => self.thaw(n),
            }
        }
        // Deliveries, in send order.
        let mut arrived: Vec<InFlight> = Vec::new();
        let mut i = 0;
        while i < self.in_flight.len() {
            if self.in_flight[i].at <= now {
                arrived.push(self.in_flight.swap_remove(i));
            } else {
                i += 1;
            }
        }
        arrived.sort_by_key(|f| (f.at, f.seq));
        for f in arrived {
            self.deliver(f.to, f.interface, f.bytes);
        }
        // Timers.
        for n in 0..self.nodes.len() {
            if self.nodes[n].status != NodeStatus::Running {
                continue;
            }
            let mut out = Vec::new();
            if let Some(r) = self.nodes[n].router.as_mut() {
                if r.poll_timeout().is_some_and(|t| t <= now) {
                    r.handle_timeout(now, &mut out);
                }
            }
            self.apply(n, out);
        }
    }

    fn thaw(&mut self, node: usize) {
        let Some(n) = self.nodes.get_mut(node) else {
            return;
        };
        if !matches!(n.status, NodeStatus::Frozen(_)) {
            return;
        }
        n.status = NodeStatus::Running;
        let queued = std::mem::take(&mut n.queued);
        for (interface, bytes) in queued {
            self.deliver(node, interface, bytes);
        }
    }

    fn deliver(&mut self, node: usize, interface: String, bytes: Vec<u8>) {
        let now = self.now;
        let limit = self.freeze_queue_limit;
        let Some(n) = self.nodes.get_mut(node) else {
            return;
        };
        match n.status {
            NodeStatus::Down => {}
            NodeStatus::Frozen(_) => {
                if n.queued.len() < limit {
                    n.queued.push((interface, bytes));
                }
            }
            NodeStatus::Running => {
                let mut out = Vec::new();
                if let Some(r) = n.router.as_mut() {
                    // Drops are counted inside the router; the simulation goes on.
                    let _ = if bytes.first().is_some_and(|b| b >> 4 == 6) {
                        r.handle_packet6(now, &interface, &bytes, &mut out)
                    } else {
                        r.handle_packet(now, &interface, &bytes, &mut out)
                    };
                }
                self.apply(node, out);
            }
        }
    }

    fn apply(&mut self, node: usize, actions: Vec<(InstanceId, Action)>) {
        for (id, action) in actions {
            match action {
                Action::SendAdvert { priority } => self.send(node, id, priority),
                Action::AddVips(_) | Action::AddVips6(_) => self.set_vips(node, id, true),
                Action::RemoveVips(_) | Action::RemoveVips6(_) => {
                    self.set_vips(node, id, false);
                }
                Action::SendGarp { repeat } => self.garps.push(Garp {
                    at: self.now,
                    node,
                    instance: id.0,
                    repeat,
                }),
                Action::Transition { from, to, reason } => {
                    let instance = self.nodes[node]
                        .configs
                        .get(id.0)
                        .map(|c| c.name.clone())
                        .unwrap_or_default();
                    self.changes.push(Change {
                        at: self.now,
                        node,
                        instance,
                        from,
                        to,
                        reason: reason.to_string(),
                    });
                }
            }
        }
    }

    fn set_vips(&mut self, node: usize, id: InstanceId, held: bool) {
        if let Some(v) = self.nodes.get_mut(node).and_then(|n| n.vips.get_mut(id.0)) {
            *v = held;
        }
    }

    fn send(&mut self, from: usize, id: InstanceId, priority: u8) {
        let Some(inst) = self.nodes[from]
            .router
            .as_ref()
            .and_then(|r| r.instance(id))
        else {
            return;
        };
        let src = inst.config().primary();
        let interface = inst.config().interface.clone();
        let mut packets = Vec::new();
        for dst in inst.destinations_ip() {
            let mut buf = [0u8; 4200];
            let Some(len) = inst.emit_advert_to(priority, dst, &mut buf) else {
                continue;
            };
            let Some(bytes) = ip_packet(src, dst, TTL, &buf[..len]) else {
                continue;
            };
            let receivers: Vec<usize> = (0..self.nodes.len())
                .filter(|&n| {
                    n != from && (dst.is_multicast() || IpAddr::V4(self.nodes[n].addr) == dst)
                })
                .collect();
            packets.push((receivers, bytes));
        }
        self.nodes[from].adverts_sent += 1;
        for (receivers, bytes) in packets {
            for to in receivers {
                if self.partition[from] != self.partition[to] {
                    continue;
                }
                let loss = self
                    .link_loss
                    .get(&(from, to))
                    .copied()
                    .unwrap_or(self.loss);
                if self.rng.next_f64() < loss {
                    continue;
                }
                let delay = self.rng.duration(self.delay.0, self.delay.1);
                self.seq += 1;
                self.in_flight.push(InFlight {
                    at: self.now + delay,
                    seq: self.seq,
                    to,
                    interface: interface.clone(),
                    bytes: bytes.clone(),
                });
            }
        }
    }

    /// The state of instance `name` on `node` (`Init` while down).
    pub fn state(&self, node: usize, name: &str) -> VrrpState {
        self.nodes
            .get(node)
            .and_then(|n| n.router.as_ref())
            .and_then(|r| r.find(name).and_then(|id| r.instance(id)))
            .map_or(VrrpState::Init, |i| i.state())
    }

    /// Nodes whose instance `name` is master (frozen ones included: they still think so
    /// and still hold the VIPs).
    pub fn masters(&self, name: &str) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&n| self.state(n, name) == VrrpState::Master)
            .collect()
    }

    /// Nodes holding the VIPs of the instance at index `instance`.
    pub fn vip_holders(&self, instance: usize) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&n| self.nodes[n].vips.get(instance).copied().unwrap_or(false))
            .collect()
    }

    /// GARP rounds `node` sent at or after `since`.
    pub fn garps_since(&self, node: usize, since: Instant) -> usize {
        self.garps
            .iter()
            .filter(|g| g.node == node && g.at >= since)
            .count()
    }

    /// The first time at or after `since` that `node` entered `to`.
    pub fn entered(&self, node: usize, to: VrrpState, since: Instant) -> Option<Instant> {
        self.changes
            .iter()
            .find(|c| c.node == node && c.to == to && c.at >= since)
            .map(|c| c.at)
    }
}
