//! The connection table: one entry per client flow, found by the inbound 5-tuple and, for
//! NAT, by the reply 5-tuple; TCP state through [`super::tcp`]; idle expiry on a timer
//! wheel.
//!
//! Layout (issue 9, "fast path"): entries live in a slab of 64-byte, cache-line-aligned
//! slots (a 60-byte [`Conn`] and the slot's generation) allocated in chunks of
//! 4 096 slots, so the slab never moves nor doubles. One `Index` (`index.rs`) finds
//! them by key: inbound, reply and template keys all go in it, each as a 16-bit tag and a
//! `u32` value (key kind in the top 2 bits, slot number below), ten to a 64-byte bucket.
//! A lookup reads one bucket line (a miss stops there) and then the entry's line, where
//! the key is checked. Keys are hashed with `FlowHasher` (SipHash-1-3 with a random
//! per-process key, the kind mixed in), so clients cannot aim 5-tuples at one bucket. A
//! wheel record is 8 bytes (slot and generation). Per NAT entry this is 64 bytes of slab,
//! two index keys at 6.4 bytes per slot and 44–88 % load, and one wheel record: about
//! 90–110 bytes (IPVS: 288).
//!
//! Invariants:
//! - Every live connection is in the index under its inbound key
//!   `(proto, client, cport, vip, vport)`; a NAT connection is also under its reply key
//!   `(proto, rip, rport, client, cport)`. Both keys are "the packet's own 5-tuple" as the
//!   director receives it. The key fields of an entry never change after insertion (except
//!   an invalidated template's, which has left the index first), and an index entry is
//!   removed only while it still names the entry being removed (its value is the entry's
//!   kind and slot, so a colliding later entry keeps its key). Every index value names a
//!   live entry whose key of that kind is the one it was filed under; a lookup still
//!   compares the whole key (tags collide). An entry's flags say which of its keys are
//!   *not* in the index (`F_UNINDEXED_OWN`, `F_UNINDEXED_REPLY`: not filed yet, taken over
//!   by a later entry, an invalidated template's, no reply key), so the index holds
//!   exactly the unflagged keys of live entries; that is what it is rebuilt from when it
//!   grows (reading the slab in order: the index keeps no keys and too few hash bits).
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
//! - Expiry is lazy and 1 s grained: each entry has exactly one *live* wheel record, in the
//!   bucket of its `check_tick` ≥ its expiry tick. Refreshing an entry only moves its
//!   expiry; a record that fires before the expiry re-files itself. Only a state change
//!   that shortens the expiry below `check_tick` files an extra record (the older one turns
//!   stale). A record holds no tick: when its bucket is swept, it is skipped if its entry
//!   is gone (generation) or its `check_tick` falls in another bucket, kept if that tick
//!   is in a later revolution, and acted on otherwise (then the tick is the one swept). A
//!   stale record in the same bucket can act once more on the same entry, which is harmless:
//!   acting either removes the entry or moves its `check_tick` past the sweep. An entry is
//!   removed at the first sweep at or after its expiry, so at most 1 s late.
//! - No allocation per packet except when a wheel bucket outgrows its capacity; inserting
//!   allocates when the slab needs a chunk or the index grows (at 7/8 load, to at least
//!   twice the buckets, the old ones freed first so growth never holds both). A swept
//!   wheel bucket keeps no capacity (up to 8 emptied vectors are kept for reuse), so the
//!   wheel's memory follows the records in it. Slab and index are not given back when the
//!   table shrinks (capacity stays for the next flood).
//! - At most 2^30 − 1 slots (the value's 30 bits; 64 GiB of entries): past that, an insert
//!   returns a handle that names nothing and the caller's `get` finds no entry.
//!
//! Persistence templates (IPVS `IP_VS_CONN_F_TEMPLATE`, spec b.16) live in the same slab and
//! on the same wheel, under a key kind of their own (a client port 0 connection never finds
//! a template, nor a template lookup a connection, as in the kernel's `ip_vs_ct_in_get`):
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
//!
//! IPv6 (issue 8, not implemented): the index is key-agnostic (hash in, `u32` value out,
//! the key checked by the caller), so v6 needs no second index design. The plan: a second
//! slab of v6 entries (three 16-byte addresses make a 100-byte entry, two cache lines; or a
//! generic `Conn<A>` over the address type), v6 keys hashed as five words (SipHash over 40
//! bytes) with the family mixed in, and either a second `Index` for v6 keys (the v4 path
//! stays exactly as it is) or one shared index with a third kind bit (family), leaving
//! 29 bits of slot number. `FlowKey` would become an enum or gain a v6 twin; `ConnId`
//! would carry the family in its index's top bit.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use lvs_proto::{Forwarding, Protocol};

use super::index::{FlowHasher, Index, Upsert};
use super::tcp::{Direction, TcpFlags, TcpState, Timeouts};
use crate::wire::MacAddr;

/// Number of 1-second wheel buckets. Timeouts past the horizon just wrap and re-file.
const WHEEL_SLOTS: usize = 1024;
const TICK_MS: u64 = 1000;
/// Emptied wheel buckets kept for reuse.
const SPARE_BUCKETS: usize = 8;

/// Slab slots per chunk: 4 096 × 64 bytes = 256 KiB (the first chunk grows up to that).
const CHUNK_SHIFT: u32 = 12;
const CHUNK: usize = 1 << CHUNK_SHIFT;
/// An index value is `kind << KIND_SHIFT | slot`.
const KIND_SHIFT: u32 = 30;
const SLOT_MASK: u32 = (1 << KIND_SHIFT) - 1;
/// End of the slab's free list.
const NIL: u32 = u32::MAX;

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
/// The entry's inbound (or template) key is not in the index (not filed yet, taken over by
/// a later entry, or an invalidated template's).
const F_UNINDEXED_OWN: u8 = 0x04;
/// The entry's reply key is not in the index (not filed yet, taken over, or none: not NAT).
const F_UNINDEXED_REPLY: u8 = 0x08;
/// What [`Conn::flags`] start with besides INACTIVE and NOOUTPUT.
const F_NEW: u8 = F_UNINDEXED_OWN | F_UNINDEXED_REPLY;

/// The kind of key an index entry is filed under (the value's top 2 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Inbound = 0,
    Reply = 1,
    Template = 2,
}

impl Kind {
    const fn value(self, slot: u32) -> u32 {
        (self as u32) << KIND_SHIFT | slot
    }

    /// The [`Conn`] flag saying its key of this kind is not in the index.
    const fn unindexed_flag(self) -> u8 {
        match self {
            Kind::Reply => F_UNINDEXED_REPLY,
            Kind::Inbound | Kind::Template => F_UNINDEXED_OWN,
        }
    }
}

/// One connection entry or template: 60 bytes, 4-aligned, so that with its slot's
/// generation it fills one 64-byte cache line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conn {
    caddr: Ipv4Addr,
    vaddr: Ipv4Addr,
    daddr: Ipv4Addr,
    service: u32,
    dest: u32,
    in_ifindex: u32,
    /// Idle deadline in ms since the table's epoch: low and high halves (two `u32`s keep
    /// the entry 4-aligned).
    expires_lo: u32,
    expires_hi: u32,
    /// Tick of this entry's live wheel record.
    check_tick: u32,
    /// A connection: its template's slot and generation (`ConnId::NONE`: none). A
    /// template: `n_control` and its timeout in seconds. Which one: `state`.
    link: [u32; 2],
    cport: u16,
    vport: u16,
    dport: u16,
    client_mac: MacAddr,
    protocol: Protocol,
    forwarding: Forwarding,
    state: ConnState,
    flags: u8,
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
        self.state == ConnState::Template
    }
    /// For a template: how many live connections it controls (else 0).
    pub fn n_control(&self) -> u32 {
        if self.is_template() { self.link[0] } else { 0 }
    }
    /// For a connection made under a template: that template (it may be gone since).
    pub fn control(&self) -> Option<ConnId> {
        let [index, generation] = self.link;
        let id = ConnId { index, generation };
        (!self.is_template() && id != ConnId::NONE).then_some(id)
    }

    fn expires_ms(&self) -> u64 {
        u64::from(self.expires_hi) << 32 | u64::from(self.expires_lo)
    }

    fn set_expires_ms(&mut self, ms: u64) {
        self.expires_lo = ms as u32;
        self.expires_hi = (ms >> 32) as u32;
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

    /// The kind its inbound-side key is filed under.
    fn own_kind(&self) -> Kind {
        if self.is_template() {
            Kind::Template
        } else {
            Kind::Inbound
        }
    }

    /// Whether its key of `kind` is `key`.
    #[inline]
    fn has_key(&self, kind: Kind, key: &FlowKey) -> bool {
        match kind {
            Kind::Reply => self.reply_key().as_ref() == Some(key),
            _ => self.own_kind() == kind && self.inbound_key() == *key,
        }
    }

    #[cfg(test)]
    fn key(&self, kind: Kind) -> Option<FlowKey> {
        match kind {
            Kind::Reply => self.reply_key(),
            _ => (self.own_kind() == kind).then(|| self.inbound_key()),
        }
    }

    fn timeout(&self, t: &Timeouts) -> Duration {
        match self.state {
            ConnState::Template => Duration::from_secs(u64::from(self.link[1])),
            ConnState::Tcp(s) => t.tcp(s),
            ConnState::Udp => t.udp(),
        }
    }
}

/// The index hash of a key of `kind`: the 13 key bytes and the kind in two words.
#[inline]
fn key_hash(hasher: &FlowHasher, kind: Kind, key: &FlowKey) -> u64 {
    let proto: u64 = match key.protocol {
        Protocol::Tcp => 6,
        Protocol::Udp => 17,
    };
    let m0 = u64::from(key.src.to_bits()) << 32 | u64::from(key.dst.to_bits());
    let m1 =
        u64::from(key.src_port) << 48 | u64::from(key.dst_port) << 32 | proto << 8 | kind as u64;
    hasher.hash(m0, m1)
}

/// A handle to a live entry. Stale handles (entry removed, slot reused) are rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId {
    index: u32,
    generation: u32,
}

impl ConnId {
    /// Names no entry (a connection without a template, an insert into a full slab).
    const NONE: ConnId = ConnId {
        index: u32::MAX,
        generation: u32::MAX,
    };
}

/// A slab slot: one cache line.
#[derive(Debug, Clone)]
#[repr(align(64))]
struct Slot {
    /// Bumped when the entry is removed, so old handles and wheel records go stale.
    generation: u32,
    entry: Entry,
}

#[derive(Debug, Clone)]
enum Entry {
    Live(Conn),
    /// On the free list; `next` is the next free slot (`NIL`: none).
    Free {
        next: u32,
    },
}

/// Slots in chunks of [`CHUNK`] (the first one grows by doubling up to that), with an
/// intrusive free list. Slot `i` is `chunks[i >> CHUNK_SHIFT][i % CHUNK]`.
#[derive(Debug, Default)]
struct Slab {
    chunks: Vec<Vec<Slot>>,
    /// Slots handed out at least once (`0..high` exist).
    high: u32,
    /// First free slot below `high` (`NIL`: none).
    free: u32,
    len: usize,
}

impl Slab {
    fn new() -> Self {
        Slab {
            free: NIL,
            ..Slab::default()
        }
    }

    #[inline]
    fn slot(&self, index: u32) -> Option<&Slot> {
        self.chunks
            .get((index >> CHUNK_SHIFT) as usize)?
            .get(index as usize & (CHUNK - 1))
    }

    #[inline]
    fn slot_mut(&mut self, index: u32) -> Option<&mut Slot> {
        self.chunks
            .get_mut((index >> CHUNK_SHIFT) as usize)?
            .get_mut(index as usize & (CHUNK - 1))
    }

    /// The live entry in slot `index`, whatever its generation.
    #[inline]
    fn live(&self, index: u32) -> Option<&Conn> {
        match &self.slot(index)?.entry {
            Entry::Live(c) => Some(c),
            Entry::Free { .. } => None,
        }
    }

    fn live_mut(&mut self, index: u32) -> Option<&mut Conn> {
        match &mut self.slot_mut(index)?.entry {
            Entry::Live(c) => Some(c),
            Entry::Free { .. } => None,
        }
    }

    #[inline]
    fn get(&self, id: ConnId) -> Option<&Conn> {
        let slot = self.slot(id.index)?;
        match &slot.entry {
            Entry::Live(c) if slot.generation == id.generation => Some(c),
            _ => None,
        }
    }

    fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        let slot = self.slot_mut(id.index)?;
        match &mut slot.entry {
            Entry::Live(c) if slot.generation == id.generation => Some(c),
            _ => None,
        }
    }

    /// Stores `conn` in a free slot; `None` if all 2^30 − 1 slots are live.
    fn alloc(&mut self, conn: Conn) -> Option<ConnId> {
        if self.free != NIL {
            let index = self.free;
            let slot = self.slot_mut(index)?;
            let Entry::Free { next } = slot.entry else {
                return None; // unreachable: the free list links free slots only
            };
            slot.entry = Entry::Live(conn);
            let generation = slot.generation;
            self.free = next;
            self.len += 1;
            return Some(ConnId { index, generation });
        }
        let index = self.high;
        if index >= SLOT_MASK {
            return None;
        }
        let chunk = (index >> CHUNK_SHIFT) as usize;
        if chunk == self.chunks.len() {
            // The first chunk grows by doubling (small tables stay small); the others are
            // allocated whole.
            let cap = if chunk == 0 { 0 } else { CHUNK };
            self.chunks.push(Vec::with_capacity(cap));
        }
        self.chunks.get_mut(chunk)?.push(Slot {
            generation: 0,
            entry: Entry::Live(conn),
        });
        self.high += 1;
        self.len += 1;
        Some(ConnId {
            index,
            generation: 0,
        })
    }

    /// Frees slot `index` (its generation moves on) and returns its entry.
    fn free(&mut self, index: u32) -> Option<Conn> {
        let next = self.free;
        let slot = self.slot_mut(index)?;
        if matches!(slot.entry, Entry::Free { .. }) {
            return None;
        }
        let Entry::Live(conn) = std::mem::replace(&mut slot.entry, Entry::Free { next }) else {
            return None;
        };
        slot.generation = slot.generation.wrapping_add(1);
        self.free = index;
        self.len -= 1;
        Some(conn)
    }

    /// Every slot with its number.
    fn iter(&self) -> impl Iterator<Item = (u32, &Slot)> {
        self.chunks
            .iter()
            .flatten()
            .zip(0u32..)
            .map(|(s, i)| (i, s))
    }
}

/// A wheel record: which entry to look at when its bucket is swept (module doc).
#[derive(Debug, Clone, Copy)]
struct WheelRecord {
    index: u32,
    generation: u32,
}

/// The connection table.
#[derive(Debug)]
pub struct ConnTable {
    epoch: Instant,
    slab: Slab,
    /// Inbound, reply and template keys (module doc).
    index: Index,
    hasher: FlowHasher,
    wheel: Vec<Vec<WheelRecord>>,
    /// Emptied bucket vectors kept for reuse (at most [`SPARE_BUCKETS`]): a swept bucket
    /// keeps no capacity, so the wheel holds memory for the records in it, not 1 024 times
    /// the busiest second's.
    spares: Vec<Vec<WheelRecord>>,
    /// Every tick up to this one has been swept.
    swept_tick: u64,
}

/// Whether index value `v` names an entry whose key of `kind` is `key`.
#[inline]
fn holds(slab: &Slab, v: u32, kind: Kind, key: &FlowKey) -> bool {
    v >> KIND_SHIFT == kind as u32
        && slab
            .live(v & SLOT_MASK)
            .is_some_and(|c| c.has_key(kind, key))
}

/// The hash index value `v` was filed under (`None`: it names no live entry, which the
/// invariants rule out).
#[cfg(test)]
fn rehash(slab: &Slab, hasher: &FlowHasher, v: u32) -> Option<u64> {
    let kind = match v >> KIND_SHIFT {
        0 => Kind::Inbound,
        1 => Kind::Reply,
        _ => Kind::Template,
    };
    let key = slab.live(v & SLOT_MASK)?.key(kind)?;
    Some(key_hash(hasher, kind, &key))
}

impl ConnTable {
    /// An empty table whose clock starts at `epoch`; times before it count as `epoch`.
    /// Its hash key is random.
    pub fn new(epoch: Instant) -> Self {
        ConnTable::with_hasher(epoch, FlowHasher::random())
    }

    fn with_hasher(epoch: Instant, hasher: FlowHasher) -> Self {
        ConnTable {
            epoch,
            slab: Slab::new(),
            index: Index::new(),
            hasher,
            wheel: vec![Vec::new(); WHEEL_SLOTS],
            spares: Vec::new(),
            swept_tick: 0,
        }
    }

    /// Number of live entries.
    pub fn len(&self) -> usize {
        self.slab.len
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.slab.len == 0
    }

    fn ms(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    #[inline]
    fn find(&self, kind: Kind, key: &FlowKey) -> Option<ConnId> {
        let hash = key_hash(&self.hasher, kind, key);
        let v = self.index.find(hash, |v| holds(&self.slab, v, kind, key))?;
        let index = v & SLOT_MASK;
        let generation = self.slab.slot(index)?.generation;
        Some(ConnId { index, generation })
    }

    /// The entry a client→VIP packet with this 5-tuple belongs to.
    pub fn find_inbound(&self, key: &FlowKey) -> Option<ConnId> {
        self.find(Kind::Inbound, key)
    }

    /// The NAT entry a real server→client packet with this 5-tuple belongs to.
    pub fn find_reply(&self, key: &FlowKey) -> Option<ConnId> {
        self.find(Kind::Reply, key)
    }

    /// The live, valid template for `(proto, masked client, 0, vaddr, vport)`: `key.src_port`
    /// must be 0.
    pub fn find_template(&self, key: &FlowKey) -> Option<ConnId> {
        self.find(Kind::Template, key)
    }

    /// The entry behind a handle, if it is still live.
    #[inline]
    pub fn get(&self, id: ConnId) -> Option<&Conn> {
        self.slab.get(id)
    }

    fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.slab.get_mut(id)
    }

    /// Time left before the entry expires if it stays idle.
    pub fn expires_in(&self, id: ConnId, now: Instant) -> Option<Duration> {
        let c = self.get(id)?;
        Some(Duration::from_millis(
            c.expires_ms().saturating_sub(self.ms(now)),
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
            flags: F_NEW
                | F_INACTIVE
                | if new.forwarding == Forwarding::Nat {
                    0
                } else {
                    F_NOOUTPUT
                },
            link: [ConnId::NONE.index, ConnId::NONE.generation],
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
            expires_lo: 0,
            expires_hi: 0,
            check_tick: 0,
        };
        conn.set_expires_ms(
            self.ms(now)
                .saturating_add(duration_ms(conn.timeout(timeouts))),
        );
        self.store(conn, now)
    }

    /// Inserts a persistence template (module doc) that expires after `new.timeout` unless
    /// refreshed. A live template with the same key loses it (it stays until it expires).
    pub fn insert_template(&mut self, new: NewTemplate, now: Instant) -> ConnId {
        let timeout_s = u32::try_from(new.timeout.as_secs()).unwrap_or(u32::MAX);
        let mut conn = Conn {
            protocol: new.protocol,
            forwarding: new.forwarding,
            state: ConnState::Template,
            flags: F_NEW | F_INACTIVE,
            link: [0, timeout_s],
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
            expires_lo: 0,
            expires_hi: 0,
            check_tick: 0,
        };
        conn.set_expires_ms(
            self.ms(now)
                .saturating_add(u64::from(timeout_s).saturating_mul(TICK_MS)),
        );
        self.store(conn, now)
    }

    /// Puts a new entry in a free slot, its keys in the index and its record on the wheel.
    fn store(&mut self, conn: Conn, now: Instant) -> ConnId {
        let now_ms = self.ms(now);
        let expires_ms = conn.expires_ms();
        let own = (conn.own_kind(), conn.inbound_key());
        let reply = conn.reply_key();
        let Some(id) = self.slab.alloc(conn) else {
            return ConnId::NONE;
        };
        let own_hash = key_hash(&self.hasher, own.0, &own.1);
        let reply = reply.map(|k| (key_hash(&self.hasher, Kind::Reply, &k), k));
        if let Some((reply_hash, _)) = reply {
            // Read both home buckets before filing either: their cache misses overlap.
            std::hint::black_box(self.index.touch(own_hash) ^ self.index.touch(reply_hash));
        }
        self.put_key(own.0, &own.1, own_hash, id.index);
        if let Some((reply_hash, k)) = reply {
            self.put_key(Kind::Reply, &k, reply_hash, id.index);
        }
        let tick = self.file(id.index, expires_ms, now_ms);
        if let Some(c) = self.get_mut(id) {
            c.check_tick = tick;
        }
        id
    }

    /// Files `key` of `kind` (hashed: `hash`) for the entry in slot `index`, taking it
    /// over from any entry that holds it; grows the index if it is full.
    fn put_key(&mut self, kind: Kind, key: &FlowKey, hash: u64, index: u32) {
        let val = kind.value(index);
        let mut done = (self.index).upsert(hash, val, |v| holds(&self.slab, v, kind, key));
        if done == Upsert::Full {
            self.grow_index();
            done = (self.index).upsert(hash, val, |v| holds(&self.slab, v, kind, key));
        }
        let flag = kind.unindexed_flag();
        match done {
            // Not after growing (at least doubled); the key would stay unindexed.
            Upsert::Full => return,
            Upsert::Replaced(old) => {
                if let Some(c) = self.slab.live_mut(old & SLOT_MASK) {
                    c.flags |= flag;
                }
            }
            Upsert::Inserted => {}
        }
        if let Some(c) = self.slab.live_mut(index) {
            c.flags &= !flag;
        }
    }

    /// Rebuilds the index at least twice as big from the keys the entries' flags say are
    /// in it, reading the slab in order (the index holds no keys to rehash).
    fn grow_index(&mut self) {
        let hasher = self.hasher;
        let keys = self.slab.iter().flat_map(|(i, slot)| {
            let Entry::Live(c) = &slot.entry else {
                return [None, None];
            };
            let own = (c.flags & F_UNINDEXED_OWN == 0).then(|| {
                let kind = c.own_kind();
                (key_hash(&hasher, kind, &c.inbound_key()), kind.value(i))
            });
            let reply = (c.flags & F_UNINDEXED_REPLY == 0)
                .then(|| c.reply_key())
                .flatten()
                .map(|k| (key_hash(&hasher, Kind::Reply, &k), Kind::Reply.value(i)));
            [own, reply]
        });
        // Room for the two keys of the entry being stored.
        self.index.rebuild(self.index.len() + 2, keys.flatten());
    }

    /// Attaches connection `conn` to the template `template` that it was made under: the
    /// template counts it in `n_control` until it is removed. False (and nothing changes)
    /// if either handle is stale, `template` is not a template, or `conn` is one or is
    /// already attached.
    pub fn set_control(&mut self, conn: ConnId, template: ConnId) -> bool {
        let attachable = self
            .get(conn)
            .is_some_and(|c| !c.is_template() && c.control().is_none());
        if !attachable {
            return false;
        }
        let Some(t) = self.get_mut(template) else {
            return false;
        };
        if !t.is_template() {
            return false;
        }
        t.link[0] = t.link[0].saturating_add(1);
        if let Some(c) = self.get_mut(conn) {
            c.link = [template.index, template.generation];
        }
        true
    }

    /// Re-arms a template's timer with its timeout (kernel `ip_vs_conn_put` on the
    /// template after a connection was made under it). No-op for other entries.
    pub fn refresh_template(&mut self, id: ConnId, now: Instant) {
        let now_ms = self.ms(now);
        let Some(t) = self.get_mut(id) else { return };
        if !t.is_template() {
            return;
        }
        let timeout_s = t.link[1];
        let expires_ms = now_ms.saturating_add(u64::from(timeout_s).saturating_mul(TICK_MS));
        t.set_expires_ms(expires_ms);
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
        if t.flags & F_UNINDEXED_OWN == 0 {
            // It still holds its key (no newer template took it over).
            let hash = key_hash(&self.hasher, Kind::Template, &t.inbound_key());
            self.index.remove(hash, Kind::Template.value(id.index));
        }
        if let Some(t) = self.get_mut(id) {
            t.flags |= F_UNINDEXED_OWN;
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
        let generation = self.slab.slot(index).map_or(0, |s| s.generation);
        self.push_record(
            tick as usize % WHEEL_SLOTS,
            WheelRecord { index, generation },
        );
        tick
    }

    /// Appends a record to bucket `b`, giving an empty bucket a spare vector first.
    fn push_record(&mut self, b: usize, rec: WheelRecord) {
        let Some(bucket) = self.wheel.get_mut(b) else {
            return;
        };
        if bucket.capacity() == 0 {
            if let Some(spare) = self.spares.pop() {
                *bucket = spare;
            }
        }
        bucket.push(rec);
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
        conn.set_expires_ms(expires_ms);
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
        let conn = self.slab.free(index)?;
        // A key leaves the index only if it still names this entry (flag; and `remove`
        // matches the value, which is this slot's).
        if conn.flags & F_UNINDEXED_OWN == 0 {
            let kind = conn.own_kind();
            let hash = key_hash(&self.hasher, kind, &conn.inbound_key());
            self.index.remove(hash, kind.value(index));
        }
        if let Some(rk) = conn
            .reply_key()
            .filter(|_| conn.flags & F_UNINDEXED_REPLY == 0)
        {
            let hash = key_hash(&self.hasher, Kind::Reply, &rk);
            self.index.remove(hash, Kind::Reply.value(index));
        }
        if let Some(control) = conn.control() {
            if let Some(t) = self.get_mut(control) {
                if t.is_template() {
                    t.link[0] = t.link[0].saturating_sub(1);
                }
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
            let Some(bucket) = self.wheel.get_mut(b) else {
                continue;
            };
            if bucket.is_empty() {
                continue;
            }
            let mut work = std::mem::take(bucket);
            for rec in work.drain(..) {
                let id = ConnId {
                    index: rec.index,
                    generation: rec.generation,
                };
                let Some(conn) = self.slab.get(id) else {
                    continue; // the entry is gone
                };
                let check_tick = conn.check_tick;
                if check_tick as usize % WHEEL_SLOTS != b {
                    continue; // stale: the live record is in another bucket
                }
                if u64::from(check_tick) > cur {
                    // A later revolution's (or a stale twin of it).
                    self.push_record(b, rec);
                    continue;
                }
                let expires_ms = conn.expires_ms();
                if expires_ms <= now_ms && conn.n_control() > 0 {
                    // "Do I control anybody?": live on, 60 s at a time (module doc).
                    let extension = duration_ms(TEMPLATE_EXTENSION);
                    let expires_ms = now_ms.saturating_add(extension);
                    let tick = self.file(rec.index, expires_ms, now_ms);
                    if let Some(c) = self.get_mut(id) {
                        c.set_expires_ms(expires_ms);
                        c.check_tick = tick;
                        c.link[1] = u32::try_from(TEMPLATE_EXTENSION.as_secs()).unwrap_or(u32::MAX);
                    }
                } else if expires_ms <= now_ms {
                    if let Some(c) = self.take(rec.index) {
                        expired(c);
                    }
                } else {
                    // Still alive: re-file at its deadline (always after `cur`, see `file`).
                    let tick = self.file(rec.index, expires_ms, now_ms);
                    if let Some(c) = self.get_mut(id) {
                        c.check_tick = tick;
                    }
                }
            }
            if self.spares.len() < SPARE_BUCKETS {
                self.spares.push(work);
            }
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
        for index in 0..self.slab.high {
            if self.slab.live(index).is_some_and(&mut remove) {
                if let Some(c) = self.take(index) {
                    removed(c);
                }
            }
        }
    }

    /// Heap bytes the table holds (slab chunks, index buckets, wheel records and bucket
    /// headers, capacity included): what the conntable bench's allocator counts.
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        let slab = self.slab.chunks.capacity() * size_of::<Vec<Slot>>()
            + (self.slab.chunks.iter())
                .map(|c| c.capacity() * size_of::<Slot>())
                .sum::<usize>();
        let wheel = self.wheel.capacity() * size_of::<Vec<WheelRecord>>()
            + self.spares.capacity() * size_of::<Vec<WheelRecord>>()
            + (self.wheel.iter().chain(&self.spares))
                .map(|b| b.capacity() * size_of::<WheelRecord>())
                .sum::<usize>();
        slab + self.index.heap_bytes() + wheel
    }

    /// Every live entry with its handle, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (ConnId, &Conn)> {
        self.slab.iter().filter_map(|(index, s)| match &s.entry {
            Entry::Live(c) => Some((
                ConnId {
                    index,
                    generation: s.generation,
                },
                c,
            )),
            Entry::Free { .. } => None,
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
        use std::mem::{align_of, size_of};
        assert_eq!(size_of::<Conn>(), 60);
        assert_eq!(size_of::<Slot>(), 64, "one cache line");
        assert_eq!(align_of::<Slot>(), 64);
        assert_eq!(size_of::<WheelRecord>(), 8);
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

    /// Every key hashes alike (same home bucket, same tag): lookups tell keys, kinds and
    /// entries apart by the key in the entry alone.
    #[test]
    fn all_keys_collide() {
        let t0 = Instant::now();
        let mut t = ConnTable::with_hasher(t0, FlowHasher::colliding(0x7777_0000_0000_0005));
        let to = Timeouts::default();
        let mut ids = Vec::new();
        for p in 1..=40 {
            let fw = if p % 2 == 0 {
                Forwarding::Nat
            } else {
                Forwarding::Dr
            };
            ids.push((p, t.insert(new(Protocol::Tcp, fw, p), t0, &to)));
        }
        let tpl = t.insert_template(template(CLIENT, 100), t0);
        // The template's key is a port-0 connection's, under another kind.
        assert_eq!(t.find_inbound(&template_key(CLIENT)), None);
        let c0 = t.insert(new(Protocol::Tcp, Forwarding::Nat, 0), t0, &to);
        for &(p, id) in &ids {
            assert_eq!(t.find_inbound(&inbound(Protocol::Tcp, p)), Some(id));
            assert_eq!(t.find_inbound(&inbound(Protocol::Udp, p)), None);
            let r = t.find_reply(&reply(Protocol::Tcp, p));
            assert_eq!(r, (p % 2 == 0).then_some(id), "{p}");
            assert_eq!(t.find_template(&inbound(Protocol::Tcp, p)), None);
        }
        assert_eq!(t.find_template(&template_key(CLIENT)), Some(tpl));
        assert_eq!(t.find_inbound(&template_key(CLIENT)), Some(c0));
        // Take a key over, remove the loser, the winner keeps it.
        let again = t.insert(new(Protocol::Tcp, Forwarding::Nat, 2), t0, &to);
        assert_eq!(t.find_inbound(&inbound(Protocol::Tcp, 2)), Some(again));
        assert_eq!(t.find_reply(&reply(Protocol::Tcp, 2)), Some(again));
        t.remove(ids[1].1);
        assert_eq!(t.find_inbound(&inbound(Protocol::Tcp, 2)), Some(again));
        assert_eq!(t.find_reply(&reply(Protocol::Tcp, 2)), Some(again));
        // Remove the rest; every other key stays found throughout.
        for (n, &(p, id)) in ids.iter().enumerate() {
            t.remove(id);
            assert_eq!(t.find_inbound(&inbound(Protocol::Tcp, p)).is_some(), p == 2);
            for &(q, other) in &ids[n + 1..] {
                let want = if q == 2 { again } else { other };
                assert_eq!(t.find_inbound(&inbound(Protocol::Tcp, q)), Some(want));
            }
        }
        t.invalidate_template(tpl);
        assert_eq!(t.find_template(&template_key(CLIENT)), None);
        assert_eq!(t.find_inbound(&inbound(Protocol::Tcp, 0)), Some(c0));
        assert_eq!(t.len(), 3);
        check_index(&t);
    }

    /// The index holds exactly the keys the invariants say (each live entry's keys that
    /// no later entry took over), each naming its entry.
    fn check_index(t: &ConnTable) {
        t.index
            .check(|v| rehash(&t.slab, &t.hasher, v).unwrap_or(0));
    }

    /// Steady churn (an insert every ms, entries idle out after 5 s, a sweep every ms)
    /// keeps the slab, the index and the wheel at their size: freed slots are reused, the
    /// index has no tombstones to pile up and stale wheel records go when swept.
    #[test]
    fn churn_keeps_size() {
        let t0 = Instant::now();
        let mut t = ConnTable::with_hasher(t0, FlowHasher::with_keys(11, 12));
        let mut to = Timeouts::default();
        to.set_udp(secs(5));
        let conn = |i: u32| NewConn {
            client: (Ipv4Addr::from(0x0a00_0000 + (i >> 14)), (i & 0x3fff) as u16),
            ..new(Protocol::Udp, Forwarding::Nat, 0)
        };
        let key = |i: u32| FlowKey {
            protocol: Protocol::Udp,
            src: conn(i).client.0,
            src_port: conn(i).client.1,
            dst: VIP,
            dst_port: 80,
        };
        let mut expired = 0usize;
        let mut run = |t: &mut ConnTable, from: u32, to_i: u32| {
            for i in from..to_i {
                let now = t0 + Duration::from_millis(u64::from(i));
                t.insert(conn(i), now, &to);
                t.expire(now, |_| expired += 1);
                // 5 to 6 s of entries: 5000 to 6000.
                assert!(
                    (5000..=6001).contains(&t.len()) || i < 6000,
                    "{i}: {}",
                    t.len()
                );
            }
        };
        run(&mut t, 0, 20_000);
        let (slots, bytes) = (t.index.slots(), t.heap_bytes());
        assert!(t.slab.high <= 6002, "{}", t.slab.high);
        run(&mut t, 20_000, 200_000);
        assert_eq!(t.index.slots(), slots);
        assert!(t.slab.high <= 6002, "{}", t.slab.high);
        // Wheel vectors change hands; their capacities do not pile up.
        assert!(
            t.heap_bytes() <= bytes + bytes / 4,
            "{} {bytes}",
            t.heap_bytes()
        );
        assert_eq!(expired + t.len(), 200_000);
        check_index(&t);
        for i in 0..200_000 {
            let found = t.find_inbound(&key(i)).is_some();
            assert_eq!(found, i >= 200_000 - t.len() as u32, "{i}");
        }
    }

    /// What the conntable bench measures, computed: at 1M NAT entries (two keys each), the
    /// table holds at most 128 bytes per entry (issue 9), DR less.
    #[test]
    fn memory_per_entry_at_1m() {
        for (fw, limit) in [(Forwarding::Nat, 128), (Forwarding::Dr, 100)] {
            let t0 = Instant::now();
            let mut t = ConnTable::new(t0);
            let to = Timeouts::default();
            let n = 1_000_000u32;
            for i in 0..n {
                let c = NewConn {
                    client: (
                        Ipv4Addr::from(0xc612_0000 + (i >> 14)),
                        1024 + (i & 0x3fff) as u16,
                    ),
                    ..new(Protocol::Tcp, fw, 0)
                };
                t.insert(c, t0, &to);
            }
            assert_eq!(t.len(), n as usize);
            let per_entry = t.heap_bytes() / n as usize;
            assert!(per_entry <= limit, "{fw:?}: {per_entry} bytes per entry");
            // 64 of them are the slab slot; the index holds 1 or 2 keys.
            assert!(per_entry >= 64 + 8, "{per_entry}");
        }
    }

    /// Random inserts (colliding keys included), packets, removals, template inserts and
    /// invalidations, and expiry, against a model of the maps and of each entry's deadline.
    #[test]
    fn model() {
        use std::collections::HashMap;
        #[derive(Debug, Clone, Copy)]
        struct M {
            inbound: FlowKey,
            reply: Option<FlowKey>,
            template: bool,
            /// Deadline in ms since t0.
            expires: u64,
            service: u32,
        }
        struct Rng(u64);
        impl Rng {
            fn next(&mut self) -> u64 {
                self.0 ^= self.0 >> 12;
                self.0 ^= self.0 << 25;
                self.0 ^= self.0 >> 27;
                self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
            }
            fn below(&mut self, n: u64) -> u64 {
                self.next() % n
            }
        }
        for (seed, hasher) in [
            (1u64, FlowHasher::with_keys(1, 2)),
            (2, FlowHasher::with_keys(3, 4)),
            (3, FlowHasher::colliding(0x1111_0000_0000_0000)),
        ] {
            let ops = if seed == 3 { 3_000 } else { 20_000 };
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let t0 = Instant::now();
            let mut t = ConnTable::with_hasher(t0, hasher);
            let mut to = Timeouts::default();
            // Seed 2: UDP entries outlive the wheel's 1 024 s revolution.
            to.set_udp(secs(if seed == 2 { 1500 } else { 7 }));
            let mut now_ms = 0u64;
            let mut live: HashMap<ConnId, M> = HashMap::new();
            let mut inbound_map: HashMap<FlowKey, ConnId> = HashMap::new();
            let mut reply_map: HashMap<FlowKey, ConnId> = HashMap::new();
            let mut template_map: HashMap<FlowKey, ConnId> = HashMap::new();
            let mut ids: Vec<ConnId> = Vec::new();
            fn unmap(map: &mut HashMap<FlowKey, ConnId>, k: &FlowKey, id: ConnId) {
                if map.get(k) == Some(&id) {
                    map.remove(k);
                }
            }
            let forget = |live: &mut HashMap<ConnId, M>,
                          inb: &mut HashMap<FlowKey, ConnId>,
                          rep: &mut HashMap<FlowKey, ConnId>,
                          tpl: &mut HashMap<FlowKey, ConnId>,
                          id: ConnId| {
                let m = live.remove(&id).unwrap();
                unmap(if m.template { tpl } else { inb }, &m.inbound, id);
                if let Some(r) = m.reply {
                    unmap(rep, &r, id);
                }
            };
            for op in 0..ops {
                let at = t0 + Duration::from_millis(now_ms);
                // Small key spaces: keys collide and get taken over.
                let cport = rng.below(64) as u16;
                let protocol = if rng.below(2) == 0 {
                    Protocol::Tcp
                } else {
                    Protocol::Udp
                };
                match rng.below(100) {
                    0..=29 => {
                        let fw = if rng.below(3) == 0 {
                            Forwarding::Dr
                        } else {
                            Forwarding::Nat
                        };
                        let mut n = new(protocol, fw, cport);
                        n.service = rng.below(4) as u32;
                        n.real.1 = 8080 + rng.below(2) as u16;
                        let id = t.insert(n, at, &to);
                        let c = t.get(id).unwrap().clone();
                        let timeout = duration_ms(c.timeout(&to));
                        let m = M {
                            inbound: c.inbound_key(),
                            reply: c.reply_key(),
                            template: false,
                            expires: now_ms + timeout,
                            service: n.service,
                        };
                        inbound_map.insert(m.inbound, id);
                        if let Some(r) = m.reply {
                            reply_map.insert(r, id);
                        }
                        live.insert(id, m);
                        ids.push(id);
                    }
                    30..=34 => {
                        let client = Ipv4Addr::new(198, 51, 100, rng.below(8) as u8);
                        let id = t.insert_template(template(client, 1 + rng.below(20)), at);
                        let m = M {
                            inbound: template_key(client),
                            reply: None,
                            template: true,
                            expires: now_ms + t.expires_in(id, at).unwrap().as_millis() as u64,
                            service: 0,
                        };
                        template_map.insert(m.inbound, id);
                        live.insert(id, m);
                        ids.push(id);
                    }
                    35..=59 if !ids.is_empty() => {
                        // A packet on a random (possibly stale) handle.
                        let id = ids[rng.below(ids.len() as u64) as usize];
                        let flags = [
                            TcpFlags::SYN,
                            TcpFlags::ACK,
                            TcpFlags::FIN_ACK,
                            TcpFlags::RST,
                        ][rng.below(4) as usize];
                        let dir = if rng.below(2) == 0 {
                            Direction::Input
                        } else {
                            Direction::Output
                        };
                        t.on_packet(id, at, &to, dir, Some(flags));
                        if let Some(m) = live.get_mut(&id) {
                            let c = t.get(id).unwrap();
                            if !m.template {
                                m.expires = now_ms + duration_ms(c.timeout(&to));
                            }
                            assert_eq!(
                                t.expires_in(id, at),
                                Some(Duration::from_millis(m.expires.saturating_sub(now_ms)))
                            );
                        } else {
                            assert_eq!(t.get(id), None);
                        }
                    }
                    60..=69 if !ids.is_empty() => {
                        let id = ids[rng.below(ids.len() as u64) as usize];
                        let got = t.remove(id);
                        assert_eq!(got.is_some(), live.contains_key(&id), "op {op}");
                        if got.is_some() {
                            forget(
                                &mut live,
                                &mut inbound_map,
                                &mut reply_map,
                                &mut template_map,
                                id,
                            );
                        }
                    }
                    70..=72 if !ids.is_empty() => {
                        let id = ids[rng.below(ids.len() as u64) as usize];
                        t.invalidate_template(id);
                        if let Some(m) = live.get_mut(&id) {
                            if m.template {
                                unmap(&mut template_map, &m.inbound, id);
                                m.inbound.dst_port = INVALID_TEMPLATE_PORT;
                            }
                        }
                    }
                    73 => {
                        let service = rng.below(4) as u32;
                        let mut n = 0;
                        t.remove_where(|c| !c.is_template() && c.service() == service, |_| n += 1);
                        let gone: Vec<ConnId> = live
                            .iter()
                            .filter(|(_, m)| !m.template && m.service == service)
                            .map(|(&id, _)| id)
                            .collect();
                        assert_eq!(n, gone.len());
                        for id in gone {
                            forget(
                                &mut live,
                                &mut inbound_map,
                                &mut reply_map,
                                &mut template_map,
                                id,
                            );
                        }
                    }
                    74..=89 => {
                        // Time passes (sometimes a lot), then a sweep.
                        now_ms += if rng.below(50) == 0 {
                            rng.below(3_000_000)
                        } else {
                            rng.below(1500)
                        };
                        let at = t0 + Duration::from_millis(now_ms);
                        let mut gone = Vec::new();
                        t.expire(at, |c| gone.push(c));
                        // Never before its deadline; by the first sweep in its deadline's
                        // second at the latest (the record may fire earlier in that second).
                        let removed: Vec<ConnId> = live
                            .keys()
                            .filter(|&&id| t.get(id).is_none())
                            .copied()
                            .collect();
                        assert_eq!(gone.len(), removed.len(), "op {op}");
                        for (&id, m) in &live {
                            let is_gone = removed.contains(&id);
                            if is_gone {
                                assert!(m.expires <= now_ms, "op {op}: early {m:?}");
                            }
                            if m.expires.div_ceil(1000) * 1000 <= now_ms {
                                assert!(is_gone, "op {op}: late {m:?} at {now_ms}");
                            }
                        }
                        for id in removed {
                            forget(
                                &mut live,
                                &mut inbound_map,
                                &mut reply_map,
                                &mut template_map,
                                id,
                            );
                        }
                    }
                    _ => {
                        // Lookups of random keys of every kind.
                        let k = inbound(protocol, cport);
                        assert_eq!(t.find_inbound(&k), inbound_map.get(&k).copied(), "op {op}");
                        let mut r = reply(protocol, cport);
                        r.src_port = 8080 + rng.below(2) as u16;
                        assert_eq!(t.find_reply(&r), reply_map.get(&r).copied(), "op {op}");
                        let tk = template_key(Ipv4Addr::new(198, 51, 100, rng.below(8) as u8));
                        assert_eq!(t.find_template(&tk), template_map.get(&tk).copied());
                    }
                }
                assert_eq!(t.len(), live.len(), "op {op}");
                if op % 500 == 0 {
                    check_index(&t);
                    assert_eq!(t.iter().count(), live.len());
                    for (id, c) in t.iter() {
                        let m = live.get(&id).unwrap();
                        assert_eq!(c.inbound_key(), m.inbound);
                    }
                    for (k, &id) in inbound_map.iter() {
                        assert_eq!(t.find_inbound(k), Some(id));
                    }
                    for (k, &id) in reply_map.iter() {
                        assert_eq!(t.find_reply(k), Some(id));
                    }
                    for (k, &id) in template_map.iter() {
                        assert_eq!(t.find_template(k), Some(id));
                    }
                }
            }
        }
    }
}
