//! The connection table: one entry per client flow, found by the inbound 5-tuple and, for
//! NAT, by the reply 5-tuple; TCP state through [`super::tcp`]; idle expiry on a timer
//! wheel.
//!
//! Invariants:
//! - Every live connection is in the inbound map under `(proto, client, cport, vip, vport)`;
//!   a NAT connection is also in the reply map under `(proto, rip, rport, client, cport)`.
//!   Both keys are "the packet's own 5-tuple" as the director receives it. The key fields
//!   of an entry never change after insertion (except an invalidated template's, which has
//!   left its map first), and a map key is removed only while it still names the entry
//!   being removed (so a colliding later entry keeps its key).
//! - A new entry starts *inactive* (kernel: `conn_flags` always include INACTIVE), in TCP
//!   state NONE or the single UDP state, with the NOOUTPUT flag unless it is NAT.
//! - [`ConnTable::on_packet`] applies the kernel's `set_tcp_state`: the direction is resolved
//!   with NOOUTPUT ([`Direction::resolve`]), the state moves by [`TcpState::next`], and when
//!   the state changes the entry moves between active and inactive by [`counts_as_active`].
//!   The caller applies the returned [`Activity`] to the destination's counters; on removal
//!   it decrements the counter named by [`Conn::is_active`]. UDP entries never change
//!   activity (spec b.1: UDP is always inactive).
//! - Every packet re-arms the idle timeout of the entry's (new) state, like the kernel's
//!   `mod_timer` on each `ip_vs_conn_put`.
//! - Expiry is lazy and 1 s grained: each entry has exactly one *live* wheel record at
//!   `check_tick` ≥ its expiry tick. Refreshing an entry only moves its expiry; a record that
//!   fires before the expiry re-files itself. Only a state change that shortens the expiry
//!   below `check_tick` files an extra record (the older one turns stale and is skipped). An
//!   entry is removed at the first sweep at or after its expiry, so at most 1 s late.
//! - No allocation per packet except when a wheel bucket outgrows its capacity; inserting
//!   allocates (map and slab growth).
//!
//! Persistence templates (IPVS `IP_VS_CONN_F_TEMPLATE`, spec b.16) live in the same slab and
//! on the same wheel, in a map of their own (a client port 0 connection never finds a
//! template, nor a template lookup a connection, as in the kernel's `ip_vs_ct_in_get`):
//! - A template is keyed `(proto, caddr & mask, 0, vaddr, vport)`, is in state NONE, counts
//!   in neither `active` nor `inactive` (the caller counts it as `persistent`), and expires
//!   after its own timeout (the service's persistence timeout), re-armed only by
//!   [`ConnTable::refresh_template`] (the kernel's `ip_vs_conn_put` on the template when a
//!   connection is made under it), never by packets.
//! - A connection made under a template is attached to it ([`ConnTable::set_control`]); the
//!   template's `n_control` counts its attached live connections, and removing a connection
//!   (expiry or explicitly) detaches it. Controls are `ConnId`s, so a stale one is harmless.
//! - A template whose deadline passes while `n_control > 0` is not removed: like the
//!   kernel's `ip_vs_conn_expire` ("expire_later"), its timeout becomes 60 s and it is
//!   re-armed for 60 s, again and again until it controls nothing when its time comes. The
//!   60 s also applies to later refreshes (the kernel overwrites `cp->timeout`).
//! - [`ConnTable::invalidate_template`] (kernel `ip_vs_check_template` failing) unhashes a
//!   template and renames it to vport/dport 65535 without touching its timer: it stays,
//!   still holding its destination, until it expires.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use lvs_proto::{Forwarding, Protocol};

use super::tcp::{Direction, TcpFlags, TcpState, Timeouts};
use crate::wire::MacAddr;

/// Number of 1-second wheel buckets. Timeouts past the horizon just wrap and re-file.
const WHEEL_SLOTS: usize = 1024;
const TICK_MS: u64 = 1000;

/// Whether a TCP state counts in the destination's `activeconns`.
///
/// Follows current Linux (`tcp_state_active_table` in ip_vs_proto_tcp.c, since "ipvs: count
/// pre-established TCP states as active"): ESTABLISHED, SYN_SENT, SYN_RECV and SYNACK are
/// active. Spec b.1 says ESTABLISHED only, which describes older kernels; we match the
/// kernel operators run today (see docs/ipvs-differences.md).
pub const fn counts_as_active(state: TcpState) -> bool {
    matches!(
        state,
        TcpState::Established | TcpState::SynSent | TcpState::SynRecv | TcpState::SynAck
    )
}

/// A packet's 5-tuple as received: the lookup key of both maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Transport protocol.
    pub protocol: Protocol,
    /// Source address.
    pub src: Ipv4Addr,
    /// Source port.
    pub src_port: u16,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Destination port.
    pub dst_port: u16,
}

/// The state of a connection entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnState {
    /// A TCP entry in an IPVS TCP state.
    Tcp(TcpState),
    /// A UDP entry (IPVS has one UDP state, `UDP` in ipvsadm).
    Udp,
    /// A persistence template (ipvsadm shows its state as `NONE`).
    Template,
}

impl ConnState {
    /// The name ipvsadm `-Lnc` prints.
    pub const fn name(self) -> &'static str {
        match self {
            ConnState::Tcp(s) => s.name(),
            ConnState::Udp => "UDP",
            ConnState::Template => "NONE",
        }
    }
}

/// A change of a connection between the destination's active and inactive counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Activity {
    /// inactive → active: `inactive -= 1; active += 1`.
    BecameActive,
    /// active → inactive: `active -= 1; inactive += 1`.
    BecameInactive,
}

/// What a new entry is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewConn {
    /// Transport protocol.
    pub protocol: Protocol,
    /// How packets reach the real server (fixed for the entry's life, as in IPVS).
    pub forwarding: Forwarding,
    /// Client address and port.
    pub client: (Ipv4Addr, u16),
    /// Virtual address and port.
    pub virt: (Ipv4Addr, u16),
    /// Real server address and port.
    pub real: (Ipv4Addr, u16),
    /// Caller's service handle.
    pub service: u32,
    /// Caller's destination handle.
    pub dest: u32,
    /// MAC the client's packets come from (the next hop towards the client).
    pub client_mac: MacAddr,
    /// Interface the client's packets come in on.
    pub in_ifindex: u32,
}

/// What a new persistence template is made of (spec b.16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewTemplate {
    /// Transport protocol of the service.
    pub protocol: Protocol,
    /// Forwarding method of the destination (informational).
    pub forwarding: Forwarding,
    /// The client's address masked with the service's persistence netmask.
    pub client: Ipv4Addr,
    /// Virtual address and port.
    pub virt: (Ipv4Addr, u16),
    /// The destination's address and port.
    pub real: (Ipv4Addr, u16),
    /// Caller's service handle.
    pub service: u32,
    /// Caller's destination handle.
    pub dest: u32,
    /// Idle lifetime (the service's persistence timeout), whole seconds.
    pub timeout: Duration,
}

/// How long a template that still controls connections lives on when its time is up
/// (kernel `ip_vs_conn_expire`: `cp->timeout = 60*HZ`).
pub const TEMPLATE_EXTENSION: Duration = Duration::from_secs(60);

/// The port a template is renamed to when it is invalidated (kernel `htons(0xffff)`).
pub const INVALID_TEMPLATE_PORT: u16 = 0xffff;

const F_INACTIVE: u8 = 0x01;
const F_NOOUTPUT: u8 = 0x02;

/// A connection, or a persistence template, with the link between the two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// A connection; `control` is the template it was made under ([`ConnId::NONE`]: none).
    Conn { control: ConnId },
    /// A persistence template: how many live connections it controls, and its timeout.
    Template { n_control: u32, timeout_s: u32 },
}

/// One connection entry or template (kept compact: at most 64 bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conn {
    protocol: Protocol,
    forwarding: Forwarding,
    state: ConnState,
    flags: u8,
    role: Role,
    client_mac: MacAddr,
    caddr: Ipv4Addr,
    cport: u16,
    vport: u16,
    vaddr: Ipv4Addr,
    daddr: Ipv4Addr,
    dport: u16,
    service: u32,
    dest: u32,
    in_ifindex: u32,
    /// Idle deadline, in ms since the table's epoch.
    expires_ms: u64,
    /// Tick of this entry's live wheel record.
    check_tick: u32,
}

impl Conn {
    /// Transport protocol.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }
    /// Forwarding method.
    pub fn forwarding(&self) -> Forwarding {
        self.forwarding
    }
    /// Current state.
    pub fn state(&self) -> ConnState {
        self.state
    }
    /// Whether the entry counts in the destination's `activeconns` (else `inactconns`).
    pub fn is_active(&self) -> bool {
        self.flags & F_INACTIVE == 0
    }
    /// Whether no reply has been seen on a non-NAT entry (IPVS NOOUTPUT).
    pub fn no_output(&self) -> bool {
        self.flags & F_NOOUTPUT != 0
    }
    /// Client address and port.
    pub fn client(&self) -> (Ipv4Addr, u16) {
        (self.caddr, self.cport)
    }
    /// Virtual address and port.
    pub fn virt(&self) -> (Ipv4Addr, u16) {
        (self.vaddr, self.vport)
    }
    /// Real server address and port.
    pub fn real(&self) -> (Ipv4Addr, u16) {
        (self.daddr, self.dport)
    }
    /// Caller's service handle.
    pub fn service(&self) -> u32 {
        self.service
    }
    /// Caller's destination handle.
    pub fn dest(&self) -> u32 {
        self.dest
    }
    /// MAC the client's packets last came from.
    pub fn client_mac(&self) -> MacAddr {
        self.client_mac
    }
    /// Interface the client's packets last came in on.
    pub fn in_ifindex(&self) -> u32 {
        self.in_ifindex
    }
    /// Whether this is a persistence template (counts as `persistent` on its destination).
    pub fn is_template(&self) -> bool {
        matches!(self.role, Role::Template { .. })
    }
    /// For a template: how many live connections it controls (else 0).
    pub fn n_control(&self) -> u32 {
        match self.role {
            Role::Template { n_control, .. } => n_control,
            Role::Conn { .. } => 0,
        }
    }
    /// For a connection made under a template: that template (it may be gone since).
    pub fn control(&self) -> Option<ConnId> {
        match self.role {
            Role::Conn { control } if control != ConnId::NONE => Some(control),
            _ => None,
        }
    }

    fn inbound_key(&self) -> FlowKey {
        FlowKey {
            protocol: self.protocol,
            src: self.caddr,
            src_port: self.cport,
            dst: self.vaddr,
            dst_port: self.vport,
        }
    }

    fn reply_key(&self) -> Option<FlowKey> {
        if self.is_template() {
            return None;
        }
        (self.forwarding == Forwarding::Nat).then_some(FlowKey {
            protocol: self.protocol,
            src: self.daddr,
            src_port: self.dport,
            dst: self.caddr,
            dst_port: self.cport,
        })
    }

    fn timeout(&self, t: &Timeouts) -> Duration {
        match (self.role, self.state) {
            (Role::Template { timeout_s, .. }, _) => Duration::from_secs(u64::from(timeout_s)),
            (_, ConnState::Tcp(s)) => t.tcp(s),
            (_, ConnState::Udp | ConnState::Template) => t.udp(),
        }
    }
}

/// A handle to a live entry. Stale handles (entry removed, slot reused) are rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId {
    index: u32,
    generation: u32,
}

impl ConnId {
    /// Names no entry (a connection without a template).
    const NONE: ConnId = ConnId {
        index: u32::MAX,
        generation: u32::MAX,
    };
}

#[derive(Debug, Clone)]
struct Slot {
    generation: u32,
    conn: Option<Conn>,
}

#[derive(Debug, Clone, Copy)]
struct WheelRecord {
    index: u32,
    generation: u32,
    tick: u32,
}

/// The connection table.
#[derive(Debug)]
pub struct ConnTable {
    epoch: Instant,
    slots: Vec<Slot>,
    free: Vec<u32>,
    len: usize,
    inbound: HashMap<FlowKey, u32>,
    reply: HashMap<FlowKey, u32>,
    /// Persistence templates by `(proto, caddr & mask, 0, vaddr, vport)`.
    templates: HashMap<FlowKey, u32>,
    wheel: Vec<Vec<WheelRecord>>,
    /// Bucket being swept (kept to reuse its capacity).
    scratch: Vec<WheelRecord>,
    /// Every tick up to this one has been swept.
    swept_tick: u64,
}

impl ConnTable {
    /// An empty table whose clock starts at `epoch`; times before it count as `epoch`.
    pub fn new(epoch: Instant) -> Self {
        ConnTable {
            epoch,
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
            inbound: HashMap::new(),
            reply: HashMap::new(),
            templates: HashMap::new(),
            wheel: vec![Vec::new(); WHEEL_SLOTS],
            scratch: Vec::new(),
            swept_tick: 0,
        }
    }

    /// Number of live entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn ms(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    fn id(&self, index: u32) -> ConnId {
        let generation = self.slots.get(index as usize).map_or(0, |s| s.generation);
        ConnId { index, generation }
    }

    /// The entry a client→VIP packet with this 5-tuple belongs to.
    pub fn find_inbound(&self, key: &FlowKey) -> Option<ConnId> {
        self.inbound.get(key).map(|&i| self.id(i))
    }

    /// The NAT entry a real server→client packet with this 5-tuple belongs to.
    pub fn find_reply(&self, key: &FlowKey) -> Option<ConnId> {
        self.reply.get(key).map(|&i| self.id(i))
    }

    /// The live, valid template for `(proto, masked client, 0, vaddr, vport)`: `key.src_port`
    /// must be 0.
    pub fn find_template(&self, key: &FlowKey) -> Option<ConnId> {
        self.templates.get(key).map(|&i| self.id(i))
    }

    /// The entry behind a handle, if it is still live.
    pub fn get(&self, id: ConnId) -> Option<&Conn> {
        let slot = self.slots.get(id.index as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        slot.conn.as_ref()
    }

    fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        let slot = self.slots.get_mut(id.index as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        slot.conn.as_mut()
    }

    /// Time left before the entry expires if it stays idle.
    pub fn expires_in(&self, id: ConnId, now: Instant) -> Option<Duration> {
        let c = self.get(id)?;
        Some(Duration::from_millis(
            c.expires_ms.saturating_sub(self.ms(now)),
        ))
    }

    /// Inserts a new entry (inactive, TCP NONE or UDP, NOOUTPUT unless NAT) that expires
    /// after its state's timeout. The caller then feeds its first packet to
    /// [`ConnTable::on_packet`]. If an entry already holds one of the keys, the new entry
    /// takes the key over; the old one stays until it expires or is removed.
    pub fn insert(&mut self, new: NewConn, now: Instant, timeouts: &Timeouts) -> ConnId {
        let mut conn = Conn {
            protocol: new.protocol,
            forwarding: new.forwarding,
            state: match new.protocol {
                Protocol::Tcp => ConnState::Tcp(TcpState::None),
                Protocol::Udp => ConnState::Udp,
            },
            flags: F_INACTIVE
                | if new.forwarding == Forwarding::Nat {
                    0
                } else {
                    F_NOOUTPUT
                },
            role: Role::Conn {
                control: ConnId::NONE,
            },
            client_mac: new.client_mac,
            caddr: new.client.0,
            cport: new.client.1,
            vaddr: new.virt.0,
            vport: new.virt.1,
            daddr: new.real.0,
            dport: new.real.1,
            service: new.service,
            dest: new.dest,
            in_ifindex: new.in_ifindex,
            expires_ms: 0,
            check_tick: 0,
        };
        conn.expires_ms = self
            .ms(now)
            .saturating_add(duration_ms(conn.timeout(timeouts)));
        self.store(conn, now)
    }

    /// Inserts a persistence template (module doc) that expires after `new.timeout` unless
    /// refreshed. A live template with the same key loses it (it stays until it expires).
    pub fn insert_template(&mut self, new: NewTemplate, now: Instant) -> ConnId {
        let timeout_s = u32::try_from(new.timeout.as_secs()).unwrap_or(u32::MAX);
        let conn = Conn {
            protocol: new.protocol,
            forwarding: new.forwarding,
            state: ConnState::Template,
            flags: F_INACTIVE,
            role: Role::Template {
                n_control: 0,
                timeout_s,
            },
            client_mac: [0; 6],
            caddr: new.client,
            cport: 0,
            vport: new.virt.1,
            vaddr: new.virt.0,
            daddr: new.real.0,
            dport: new.real.1,
            service: new.service,
            dest: new.dest,
            in_ifindex: 0,
            expires_ms: self
                .ms(now)
                .saturating_add(u64::from(timeout_s).saturating_mul(TICK_MS)),
            check_tick: 0,
        };
        self.store(conn, now)
    }

    /// Puts a new entry in a free slot, its keys in their maps and its record on the wheel.
    fn store(&mut self, mut conn: Conn, now: Instant) -> ConnId {
        let now_ms = self.ms(now);
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    conn: None,
                });
                // More than u32::MAX entries cannot fit in memory anyway.
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        };
        if conn.is_template() {
            self.templates.insert(conn.inbound_key(), index);
        } else {
            self.inbound.insert(conn.inbound_key(), index);
        }
        if let Some(k) = conn.reply_key() {
            self.reply.insert(k, index);
        }
        let tick = self.file(index, conn.expires_ms, now_ms);
        conn.check_tick = tick;
        if let Some(slot) = self.slots.get_mut(index as usize) {
            slot.conn = Some(conn);
        }
        self.len += 1;
        self.id(index)
    }

    /// Attaches connection `conn` to the template `template` that it was made under: the
    /// template counts it in `n_control` until it is removed. False (and nothing changes)
    /// if either handle is stale, `template` is not a template, or `conn` is one or is
    /// already attached.
    pub fn set_control(&mut self, conn: ConnId, template: ConnId) -> bool {
        let attachable = self
            .get(conn)
            .is_some_and(|c| matches!(c.role, Role::Conn { control } if control == ConnId::NONE));
        if !attachable {
            return false;
        }
        let Some(t) = self.get_mut(template) else {
            return false;
        };
        let Role::Template { n_control, .. } = &mut t.role else {
            return false;
        };
        *n_control = n_control.saturating_add(1);
        if let Some(c) = self.get_mut(conn) {
            c.role = Role::Conn { control: template };
        }
        true
    }

    /// Re-arms a template's timer with its timeout (kernel `ip_vs_conn_put` on the
    /// template after a connection was made under it). No-op for other entries.
    pub fn refresh_template(&mut self, id: ConnId, now: Instant) {
        let now_ms = self.ms(now);
        let Some(t) = self.get_mut(id) else { return };
        let Role::Template { timeout_s, .. } = t.role else {
            return;
        };
        let expires_ms = now_ms.saturating_add(u64::from(timeout_s).saturating_mul(TICK_MS));
        t.expires_ms = expires_ms;
        let check_tick = t.check_tick;
        if expires_ms.div_ceil(TICK_MS) < u64::from(check_tick) {
            let tick = self.file(id.index, expires_ms, now_ms);
            if let Some(t) = self.get_mut(id) {
                t.check_tick = tick;
            }
        }
    }

    /// Invalidates a template whose destination may no longer be used (kernel
    /// `ip_vs_check_template` failing): it is no longer found, shows vport and dport
    /// [`INVALID_TEMPLATE_PORT`], keeps its destination and its timer, and goes when that
    /// expires. No-op for other entries or an already invalidated template.
    pub fn invalidate_template(&mut self, id: ConnId) {
        let Some(t) = self.get(id) else { return };
        if !t.is_template() || t.vport == INVALID_TEMPLATE_PORT {
            return;
        }
        let key = t.inbound_key();
        if self.templates.get(&key) == Some(&id.index) {
            self.templates.remove(&key);
        }
        if let Some(t) = self.get_mut(id) {
            t.vport = INVALID_TEMPLATE_PORT;
            t.dport = INVALID_TEMPLATE_PORT;
        }
    }

    /// Files a wheel record for the entry at `index` expiring at `expires_ms`; returns its
    /// tick. Never files at or before the current tick, so a sweep in progress is unaffected.
    fn file(&mut self, index: u32, expires_ms: u64, now_ms: u64) -> u32 {
        let tick = expires_ms
            .div_ceil(TICK_MS)
            .max(now_ms / TICK_MS + 1)
            .max(self.swept_tick + 1);
        let tick = u32::try_from(tick).unwrap_or(u32::MAX);
        let generation = self.slots.get(index as usize).map_or(0, |s| s.generation);
        self.wheel[tick as usize % WHEEL_SLOTS].push(WheelRecord {
            index,
            generation,
            tick,
        });
        tick
    }

    /// Records that a packet was seen on the entry: for TCP, applies the state transition
    /// for `dir` (`Input` or `Output`; resolved with NOOUTPUT) and `tcp_flags`; re-arms the
    /// idle timeout. Returns the activity change the caller must apply to the destination.
    pub fn on_packet(
        &mut self,
        id: ConnId,
        now: Instant,
        timeouts: &Timeouts,
        dir: Direction,
        tcp_flags: Option<TcpFlags>,
    ) -> Option<Activity> {
        let now_ms = self.ms(now);
        let conn = self.get_mut(id)?;
        if conn.is_template() {
            return None; // templates see no packets
        }
        let mut activity = None;
        if let (ConnState::Tcp(state), Some(flags)) = (conn.state, tcp_flags) {
            let mut no_output = conn.no_output();
            let dir = dir.resolve(&mut no_output);
            if !no_output {
                conn.flags &= !F_NOOUTPUT;
            }
            let next = state.next(dir, flags);
            if next != state {
                let inactive = !conn.is_active();
                let active_next = counts_as_active(next);
                if !inactive && !active_next {
                    conn.flags |= F_INACTIVE;
                    activity = Some(Activity::BecameInactive);
                } else if inactive && active_next {
                    conn.flags &= !F_INACTIVE;
                    activity = Some(Activity::BecameActive);
                }
                conn.state = ConnState::Tcp(next);
            }
        }
        let expires_ms = now_ms.saturating_add(duration_ms(conn.timeout(timeouts)));
        conn.expires_ms = expires_ms;
        let check_tick = conn.check_tick;
        if expires_ms.div_ceil(TICK_MS) < u64::from(check_tick) {
            let tick = self.file(id.index, expires_ms, now_ms);
            if let Some(c) = self.get_mut(id) {
                c.check_tick = tick;
            }
        }
        activity
    }

    /// Updates where the client's packets come from (refreshed on every inbound packet).
    pub fn set_client_path(&mut self, id: ConnId, client_mac: MacAddr, in_ifindex: u32) {
        if let Some(c) = self.get_mut(id) {
            c.client_mac = client_mac;
            c.in_ifindex = in_ifindex;
        }
    }

    /// Removes an entry now (connection reuse, service removal) and returns it.
    pub fn remove(&mut self, id: ConnId) -> Option<Conn> {
        self.get(id)?;
        self.take(id.index)
    }

    fn take(&mut self, index: u32) -> Option<Conn> {
        let slot = self.slots.get_mut(index as usize)?;
        let conn = slot.conn.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(index);
        self.len -= 1;
        let ik = conn.inbound_key();
        let map = if conn.is_template() {
            &mut self.templates
        } else {
            &mut self.inbound
        };
        if map.get(&ik) == Some(&index) {
            map.remove(&ik);
        }
        if let Some(rk) = conn.reply_key() {
            if self.reply.get(&rk) == Some(&index) {
                self.reply.remove(&rk);
            }
        }
        if let Some(control) = conn.control() {
            if let Some(Role::Template { n_control, .. }) =
                self.get_mut(control).map(|t| &mut t.role)
            {
                *n_control = n_control.saturating_sub(1);
            }
        }
        Some(conn)
    }

    /// Removes every entry whose idle deadline is at or before `now` (1 s grain), handing
    /// each to `expired` so the caller can settle its counters.
    pub fn expire(&mut self, now: Instant, mut expired: impl FnMut(Conn)) {
        let now_ms = self.ms(now);
        let cur = now_ms / TICK_MS;
        if cur <= self.swept_tick {
            return;
        }
        // Sweep every tick since the last sweep, but each bucket at most once.
        let first = (cur + 1)
            .saturating_sub(WHEEL_SLOTS as u64)
            .max(self.swept_tick + 1);
        for t in first..=cur {
            let b = (t % WHEEL_SLOTS as u64) as usize;
            let mut work = std::mem::take(&mut self.scratch);
            std::mem::swap(&mut self.wheel[b], &mut work);
            for rec in work.drain(..) {
                if u64::from(rec.tick) > cur {
                    self.wheel[b].push(rec);
                    continue;
                }
                let Some(slot) = self.slots.get(rec.index as usize) else {
                    continue;
                };
                let Some(conn) = slot.conn.as_ref() else {
                    continue;
                };
                if slot.generation != rec.generation || conn.check_tick != rec.tick {
                    continue; // stale record
                }
                let id = ConnId {
                    index: rec.index,
                    generation: rec.generation,
                };
                if conn.expires_ms <= now_ms && conn.n_control() > 0 {
                    // "Do I control anybody?": live on, 60 s at a time (module doc).
                    let extension = duration_ms(TEMPLATE_EXTENSION);
                    let expires_ms = now_ms.saturating_add(extension);
                    let tick = self.file(rec.index, expires_ms, now_ms);
                    if let Some(c) = self.get_mut(id) {
                        c.expires_ms = expires_ms;
                        c.check_tick = tick;
                        if let Role::Template { timeout_s, .. } = &mut c.role {
                            *timeout_s =
                                u32::try_from(TEMPLATE_EXTENSION.as_secs()).unwrap_or(u32::MAX);
                        }
                    }
                } else if conn.expires_ms <= now_ms {
                    if let Some(c) = self.take(rec.index) {
                        expired(c);
                    }
                } else {
                    // Still alive: re-file at its deadline (always after `cur`, see `file`).
                    let expires_ms = conn.expires_ms;
                    let tick = self.file(rec.index, expires_ms, now_ms);
                    if let Some(c) = self.get_mut(id) {
                        c.check_tick = tick;
                    }
                }
            }
            self.scratch = work;
        }
        self.swept_tick = cur;
    }

    /// When [`ConnTable::expire`] may next have work: the next 1 s tick while the table is
    /// not empty.
    pub fn next_sweep(&self) -> Option<Instant> {
        if self.is_empty() {
            return None;
        }
        let ms = self.swept_tick.saturating_add(1).saturating_mul(TICK_MS);
        Some(self.epoch + Duration::from_millis(ms))
    }

    /// Removes every entry for which `remove` says so, handing each to `removed`.
    pub fn remove_where(
        &mut self,
        mut remove: impl FnMut(&Conn) -> bool,
        mut removed: impl FnMut(Conn),
    ) {
        for index in 0..self.slots.len() {
            let hit = self.slots[index].conn.as_ref().is_some_and(&mut remove);
            if hit {
                if let Some(c) = self.take(index as u32) {
                    removed(c);
                }
            }
        }
    }

    /// Every live entry with its handle, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (ConnId, &Conn)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            let c = s.conn.as_ref()?;
            Some((
                ConnId {
                    index: i as u32,
                    generation: s.generation,
                },
                c,
            ))
        })
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
    const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
    const RIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);

    fn new(protocol: Protocol, forwarding: Forwarding, cport: u16) -> NewConn {
        NewConn {
            protocol,
            forwarding,
            client: (CLIENT, cport),
            virt: (VIP, 80),
            real: (RIP, 8080),
            service: 0,
            dest: 7,
            client_mac: [2, 0, 0, 0, 0, 1],
            in_ifindex: 1,
        }
    }

    fn inbound(protocol: Protocol, cport: u16) -> FlowKey {
        FlowKey {
            protocol,
            src: CLIENT,
            src_port: cport,
            dst: VIP,
            dst_port: 80,
        }
    }

    fn reply(protocol: Protocol, cport: u16) -> FlowKey {
        FlowKey {
            protocol,
            src: RIP,
            src_port: 8080,
            dst: CLIENT,
            dst_port: cport,
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn nat_entry_has_both_keys_dr_only_inbound() {
        let t0 = Instant::now();
        let mut t = ConnTable::new(t0);
        let to = Timeouts::default();
        let a = t.insert(new(Protocol::Tcp, Forwarding::Nat, 1000), t0, &to);
        let b = t.insert(new(Protocol::Tcp, Forwarding::Dr, 1001), t0, &to);
        assert_eq!(t.len(), 2);
        assert_eq!(t.find_inbound(&inbound(Protocol::Tcp, 1000)), Some(a));
        assert_eq!(t.find_reply(&reply(Protocol::Tcp, 1000)), Some(a));
        assert_eq!(t.find_inbound(&inbound(Protocol::Tcp, 1001)), Some(b));
        assert_eq!(t.find_reply(&reply(Protocol::Tcp, 1001)), None);
        assert_eq!(t.find_inbound(&inbound(Protocol::Udp, 1000)), None);
        let ca = t.get(a).unwrap();
        assert!(!ca.is_active() && !ca.no_output());
        assert_eq!(ca.state(), ConnState::Tcp(TcpState::None));
        assert!(t.get(b).unwrap().no_output());
        let removed = t.remove(a).unwrap();
        assert_eq!(removed.client(), (CLIENT, 1000));
        assert_eq!(t.get(a), None, "stale handle");
        assert_eq!(t.find_reply(&reply(Protocol::Tcp, 1000)), None);
        assert_eq!(t.remove(a), None);
        // The slot is reused under a new generation; the old handle stays dead.
        let c = t.insert(new(Protocol::Udp, Forwarding::Nat, 1002), t0, &to);
        assert_ne!(c, a);
        assert_eq!(t.get(a), None);
        assert_eq!(t.get(c).unwrap().state().name(), "UDP");
    }

    /// Handshake and close on a NAT entry, with the activity changes spec b.1 asks for.
    #[test]
    fn nat_handshake_and_close() {
        let t0 = Instant::now();
        let mut t = ConnTable::new(t0);
        let to = Timeouts::default();
        let id = t.insert(new(Protocol::Tcp, Forwarding::Nat, 1000), t0, &to);
        let mut step = |dir, flags| {
            let a = t.on_packet(id, t0, &to, dir, Some(flags));
            (t.get(id).unwrap().state().name(), a)
        };
        use Direction::{Input, Output};
        // A new entry is bound inactive; SYN_RECV is already an active state.
        assert_eq!(
            step(Input, TcpFlags::SYN),
            ("SYN_RECV", Some(Activity::BecameActive))
        );
        assert_eq!(step(Output, TcpFlags::SYN_ACK), ("SYN_RECV", None));
        assert_eq!(step(Input, TcpFlags::ACK), ("ESTABLISHED", None));
        assert_eq!(step(Input, TcpFlags::ACK), ("ESTABLISHED", None));
        assert_eq!(
            step(Input, TcpFlags::FIN_ACK),
            ("CLOSE_WAIT", Some(Activity::BecameInactive))
        );
        assert_eq!(step(Output, TcpFlags::FIN_ACK), ("TIME_WAIT", None));
        assert_eq!(step(Input, TcpFlags::ACK), ("TIME_WAIT", None));
        assert_eq!(t.expires_in(id, t0), Some(secs(120)));
    }

    /// DR: NOOUTPUT, so input packets use the INPUT_ONLY column; FIN from the client in
    /// ESTABLISHED goes to FIN_WAIT (INPUT would say CLOSE_WAIT).
    #[test]
    fn dr_uses_input_only() {
        let t0 = Instant::now();
        let mut t = ConnTable::new(t0);
        let to = Timeouts::default();
        let id = t.insert(new(Protocol::Tcp, Forwarding::Dr, 1000), t0, &to);
        for f in [TcpFlags::SYN, TcpFlags::ACK, TcpFlags::FIN_ACK] {
            t.on_packet(id, t0, &to, Direction::Input, Some(f));
        }
        let c = t.get(id).unwrap();
        assert_eq!(c.state().name(), "FIN_WAIT");
        assert!(c.no_output());
        assert!(!c.is_active());
    }

    #[test]
    fn udp_never_active_and_refreshes() {
        let t0 = Instant::now();
        let mut t = ConnTable::new(t0);
        let to = Timeouts::default();
        let id = t.insert(new(Protocol::Udp, Forwarding::Nat, 53), t0, &to);
        for i in 0..5 {
            let a = t.on_packet(id, t0 + secs(i * 100), &to, Direction::Input, None);
            assert_eq!(a, None);
        }
        assert!(!t.get(id).unwrap().is_active());
        assert_eq!(t.expires_in(id, t0 + secs(400)), Some(secs(300)));
        // Idle 300 s after the last packet (t0+400): gone by the first sweep at t0+700.
        let mut gone = Vec::new();
        t.expire(t0 + secs(699), |c| gone.push(c));
        assert!(gone.is_empty());
        t.expire(t0 + secs(700), |c| gone.push(c));
        assert_eq!(gone.len(), 1);
        assert!(t.is_empty());
        assert_eq!(t.next_sweep(), None);
    }

    /// A state change that shortens the timeout (ESTABLISHED 900 s -> CLOSE 10 s after a
    /// RST) files an earlier record, so expiry does not wait for the old deadline.
    #[test]
    fn shortened_timeout_expires_early() {
        let t0 = Instant::now();
        let mut t = ConnTable::new(t0);
        let to = Timeouts::default();
        let id = t.insert(new(Protocol::Tcp, Forwarding::Nat, 1000), t0, &to);
        t.on_packet(id, t0, &to, Direction::Input, Some(TcpFlags::SYN));
        t.on_packet(id, t0, &to, Direction::Input, Some(TcpFlags::ACK));
        assert_eq!(t.expires_in(id, t0), Some(secs(900)));
        t.on_packet(id, t0 + secs(5), &to, Direction::Input, Some(TcpFlags::RST));
        assert_eq!(t.get(id).unwrap().state().name(), "CLOSE");
        // Deadline t0 + 15 s: alive before, removed by the 15 s sweep.
        let mut n = 0;
        for s in 6..15 {
            t.expire(t0 + secs(s), |_| n += 1);
            assert_eq!(n, 0, "still alive at {s}s");
        }
        t.expire(t0 + secs(15), |_| n += 1);
        assert_eq!(n, 1);
        assert!(t.is_empty());
    }

    /// Traffic keeps an entry alive across many wheel revolutions; silence ends it.
    #[test]
    fn busy_entry_survives_long() {
        let t0 = Instant::now();
        let mut t = ConnTable::new(t0);
        let mut to = Timeouts::default();
        to.set_udp(secs(3));
        let id = t.insert(new(Protocol::Udp, Forwarding::Nat, 53), t0, &to);
        let mut expired = 0;
        for s in 1..3000u64 {
            t.on_packet(id, t0 + secs(s), &to, Direction::Input, None);
            t.expire(t0 + secs(s), |_| expired += 1);
        }
        assert_eq!(expired, 0);
        t.expire(t0 + secs(3002), |_| expired += 1);
        assert_eq!(expired, 1);
    }

    /// A long gap (clock stalled, machine suspended) sweeps every bucket once.
    #[test]
    fn long_gap_expires_everything_due() {
        let t0 = Instant::now();
        let mut t = ConnTable::new(t0);
        let to = Timeouts::default();
        for p in 0..100 {
            t.insert(
                new(Protocol::Udp, Forwarding::Nat, p),
                t0 + secs(u64::from(p)),
                &to,
            );
        }
        let mut n = 0;
        t.expire(t0 + secs(100_000), |_| n += 1);
        assert_eq!(n, 100);
        assert!(t.is_empty());
    }

    #[test]
    fn remove_where_and_iter() {
        let t0 = Instant::now();
        let mut t = ConnTable::new(t0);
        let to = Timeouts::default();
        for p in 0..10 {
            let mut n = new(Protocol::Tcp, Forwarding::Nat, p);
            n.service = u32::from(p % 2);
            t.insert(n, t0, &to);
        }
        let mut removed = 0;
        t.remove_where(|c| c.service() == 1, |_| removed += 1);
        assert_eq!(removed, 5);
        assert_eq!(t.len(), 5);
        assert!(t.iter().all(|(_, c)| c.service() == 0));
        // The removed entries' stale wheel records are skipped.
        let mut n = 0;
        t.expire(t0 + secs(3), |_| n += 1);
        assert_eq!(n, 5, "the 5 left idle in NONE for 2 s expire");
    }

    /// A colliding insert takes the key over; removing the older entry keeps the newer key.
    #[test]
    fn collision_keeps_newest_key() {
        let t0 = Instant::now();
        let mut t = ConnTable::new(t0);
        let to = Timeouts::default();
        let a = t.insert(new(Protocol::Tcp, Forwarding::Nat, 1000), t0, &to);
        let b = t.insert(new(Protocol::Tcp, Forwarding::Nat, 1000), t0, &to);
        assert_eq!(t.find_inbound(&inbound(Protocol::Tcp, 1000)), Some(b));
        t.remove(a);
        assert_eq!(t.find_inbound(&inbound(Protocol::Tcp, 1000)), Some(b));
        assert_eq!(t.find_reply(&reply(Protocol::Tcp, 1000)), Some(b));
    }

    #[test]
    fn entry_is_compact() {
        assert!(
            std::mem::size_of::<Conn>() <= 64,
            "{}",
            std::mem::size_of::<Conn>()
        );
        assert!(
            std::mem::size_of::<Slot>() <= 72,
            "{}",
            std::mem::size_of::<Slot>()
        );
    }

    fn template(client: Ipv4Addr, timeout: u64) -> NewTemplate {
        NewTemplate {
            protocol: Protocol::Tcp,
            forwarding: Forwarding::Nat,
            client,
            virt: (VIP, 80),
            real: (RIP, 8080),
            service: 0,
            dest: 7,
            timeout: secs(timeout),
        }
    }

    fn template_key(client: Ipv4Addr) -> FlowKey {
        FlowKey {
            protocol: Protocol::Tcp,
            src: client,
            src_port: 0,
            dst: VIP,
            dst_port: 80,
        }
    }

    /// A template lives in its own map: a client-port-0 connection and a template with the
    /// same tuple never find each other. It is in state NONE and never active.
    #[test]
    fn templates_have_their_own_map() {
        let t0 = Instant::now();
        let mut t = ConnTable::new(t0);
        let to = Timeouts::default();
        let tpl = t.insert_template(template(CLIENT, 300), t0);
        assert_eq!(t.find_template(&template_key(CLIENT)), Some(tpl));
        assert_eq!(t.find_inbound(&inbound(Protocol::Tcp, 0)), None);
        let c0 = t.insert(new(Protocol::Tcp, Forwarding::Nat, 0), t0, &to);
        assert_eq!(t.find_inbound(&inbound(Protocol::Tcp, 0)), Some(c0));
        assert_eq!(t.find_template(&template_key(CLIENT)), Some(tpl));
        let c = t.get(tpl).unwrap();
        assert!(c.is_template() && !c.is_active());
        assert_eq!(c.state(), ConnState::Template);
        assert_eq!(c.state().name(), "NONE");
        assert_eq!(c.client(), (CLIENT, 0));
        assert_eq!(c.real(), (RIP, 8080));
        // Packets never touch a template.
        assert_eq!(
            t.on_packet(tpl, t0 + secs(10), &to, Direction::Input, None),
            None
        );
        assert_eq!(t.expires_in(tpl, t0 + secs(10)), Some(secs(290)));
        t.remove(c0);
        assert_eq!(t.find_template(&template_key(CLIENT)), Some(tpl));
        t.remove(tpl);
        assert_eq!(t.find_template(&template_key(CLIENT)), None);
        assert!(t.is_empty());
    }

    /// Refresh re-arms the template's own timeout; unrefreshed, it expires on time.
    #[test]
    fn template_refresh_and_expiry() {
        let t0 = Instant::now();
        let mut t = ConnTable::new(t0);
        let tpl = t.insert_template(template(CLIENT, 100), t0);
        t.refresh_template(tpl, t0 + secs(50));
        assert_eq!(t.expires_in(tpl, t0 + secs(50)), Some(secs(100)));
        let mut gone = Vec::new();
        t.expire(t0 + secs(149), |c| gone.push(c));
        assert!(gone.is_empty());
        t.expire(t0 + secs(150), |c| gone.push(c));
        assert_eq!(gone.len(), 1);
        assert!(gone[0].is_template());
        assert!(t.is_empty());
    }

    /// Kernel `ip_vs_conn_expire`: a template that still controls a connection when its
    /// time is up lives on 60 s at a time (and keeps 60 s as its timeout); once the
    /// connection is gone, the next deadline removes it.
    #[test]
    fn controlling_template_lives_on() {
        let t0 = Instant::now();
        let mut t = ConnTable::new(t0);
        let mut to = Timeouts::default();
        to.set_udp(secs(1000));
        let tpl = t.insert_template(template(CLIENT, 100), t0);
        let c = t.insert(new(Protocol::Udp, Forwarding::Nat, 53), t0, &to);
        assert!(t.set_control(c, tpl));
        assert!(!t.set_control(c, tpl), "attached once");
        assert!(
            !t.set_control(tpl, tpl),
            "a template controls nobody's template"
        );
        assert_eq!(t.get(tpl).unwrap().n_control(), 1);
        assert_eq!(t.get(c).unwrap().control(), Some(tpl));
        let mut gone = Vec::new();
        t.expire(t0 + secs(100), |x| gone.push(x));
        assert!(gone.is_empty(), "deferred");
        assert_eq!(t.expires_in(tpl, t0 + secs(100)), Some(secs(60)));
        t.expire(t0 + secs(160), |x| gone.push(x));
        assert!(gone.is_empty(), "deferred again");
        // A refresh now uses the 60 s the kernel left in `cp->timeout`.
        t.refresh_template(tpl, t0 + secs(200));
        assert_eq!(t.expires_in(tpl, t0 + secs(200)), Some(secs(60)));
        // The connection goes: the template controls nothing, and goes at its deadline.
        t.remove(c);
        assert_eq!(t.get(tpl).unwrap().n_control(), 0);
        t.expire(t0 + secs(259), |x| gone.push(x));
        assert!(gone.is_empty());
        t.expire(t0 + secs(260), |x| gone.push(x));
        assert_eq!(gone.len(), 1);
        assert!(t.is_empty());
    }

    /// An expiring controlled connection detaches itself; so does one removed in bulk.
    #[test]
    fn expiry_detaches_connections() {
        let t0 = Instant::now();
        let mut t = ConnTable::new(t0);
        let to = Timeouts::default();
        let tpl = t.insert_template(template(CLIENT, 300), t0);
        for p in 1..=3 {
            let c = t.insert(new(Protocol::Tcp, Forwarding::Nat, p), t0, &to);
            assert!(t.set_control(c, tpl));
        }
        assert_eq!(t.get(tpl).unwrap().n_control(), 3);
        // Idle in TCP NONE: gone after 2 s.
        let mut n = 0;
        t.expire(t0 + secs(2), |_| n += 1);
        assert_eq!(n, 3);
        assert_eq!(t.get(tpl).unwrap().n_control(), 0);
        // A stale control (template removed first) is ignored.
        let c = t.insert(new(Protocol::Tcp, Forwarding::Nat, 9), t0, &to);
        assert!(t.set_control(c, tpl));
        t.remove_where(|_| true, |_| {});
        assert!(t.is_empty());
    }

    /// Invalidation unhashes and renames a template, keeps its timer and its destination.
    #[test]
    fn invalidated_template_waits_for_its_timer() {
        let t0 = Instant::now();
        let mut t = ConnTable::new(t0);
        let old = t.insert_template(template(CLIENT, 100), t0);
        t.invalidate_template(old);
        assert_eq!(t.find_template(&template_key(CLIENT)), None);
        let c = t.get(old).unwrap();
        assert_eq!(c.virt(), (VIP, INVALID_TEMPLATE_PORT));
        assert_eq!(c.real(), (RIP, INVALID_TEMPLATE_PORT));
        assert_eq!(c.dest(), 7);
        // A new template takes the key; removing the old one does not disturb it.
        let fresh = t.insert_template(template(CLIENT, 100), t0 + secs(10));
        assert_eq!(t.find_template(&template_key(CLIENT)), Some(fresh));
        let mut gone = Vec::new();
        t.expire(t0 + secs(100), |x| gone.push(x.virt()));
        assert_eq!(gone, [(VIP, INVALID_TEMPLATE_PORT)]);
        assert_eq!(t.find_template(&template_key(CLIENT)), Some(fresh));
        // Invalidating a connection is a no-op.
        let to = Timeouts::default();
        let conn = t.insert(new(Protocol::Tcp, Forwarding::Nat, 5), t0, &to);
        t.invalidate_template(conn);
        assert_eq!(t.find_inbound(&inbound(Protocol::Tcp, 5)), Some(conn));
    }
}
