//! The connection table: one entry per client flow, found by the inbound 5-tuple and, for
//! NAT, by the reply 5-tuple; TCP state through [`super::tcp`]; idle expiry on a timer
//! wheel.
//!
//! Layout (issue 9, "fast path"; IPv4, for IPv6 see below): entries live in a slab of
//! 64-byte, cache-line-aligned slots (a 60-byte [`Conn`] and the slot's generation)
//! allocated in chunks of 4 096 slots, so the slab never moves nor doubles. One `Index`
//! (`index.rs`) finds them by key: inbound, reply and template keys all go in it, each as
//! a 16-bit tag and a `u32` value (key kind in the top 2 bits, slot number below), ten to
//! a 64-byte bucket.
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
//! IPv6 (issue 8): the table is generic over the address family, [`ConnAddr`] (implemented
//! by [`Ipv4Addr`] and [`Ipv6Addr`]): `ConnTable<A>`, `Conn<A>`, `FlowKey<A>`, `NewConn<A>`
//! and `NewTemplate<A>`, each defaulting to IPv4, so code that names them bare is the IPv4
//! table it always was. A director holds one table per family; each has its own slab,
//! index, wheel and hash key, and nothing is shared between them.
//! - IPv4 is monomorphized to exactly the code above: a 60-byte entry in a 64-byte slot,
//!   keys hashed as two words (16 bytes), handles as before.
//! - An IPv6 [`Conn`] is 96 bytes (three 16-byte addresses), its slot 128 bytes: two cache
//!   lines, 64-aligned, so an entry never straddles a third line (chunks of 4 096 slots
//!   are 512 KiB). A hit reads the bucket line and both lines of the entry (the compiler
//!   puts the addresses in the first, the ports in the second; the loads are independent,
//!   so their misses overlap). Keys are hashed as five words (SipHash-1-3 over 40 bytes:
//!   both addresses whole, ports, protocol, kind and a family byte), so keys that differ
//!   in either half of an address hash apart. Measured at 1M entries (`memory_per_entry_at_1m`, the bench): 153.6 bytes
//!   per NAT66 entry (128 slab, 16.8 index, 8.4 wheel), 145.3 per DR66 entry (IPv4: 89.4
//!   and 81.0).
//! - The compile-time asserts next to `Slot` hold both families to those sizes.
//! - A [`ConnId`] carries its family: an IPv6 table sets the top bit of the handle's slot
//!   number ([`ConnId::is_v6`]; IPv4 handles are unchanged), so a table finds nothing
//!   behind the other family's handles instead of a stranger's entry.
//! - Nothing in the table reads an entry's `real` address except the NAT reply key (NAT is
//!   always same-family). A tunnel to a real server of the other family (an IPv4 service
//!   tunnelling to an IPv6 real server, or the reverse) stores
//!   [`ConnAddr::UNSPECIFIED`] as `real`; the caller keeps the real destination.

use std::fmt::Debug;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
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

/// An address family the table can hold: [`Ipv4Addr`] or [`Ipv6Addr`] (module doc). The
/// hidden items are the table's business; the trait cannot be implemented outside the
/// crate.
pub trait ConnAddr: Copy + Eq + Hash + Debug + Send + Sync + 'static + Into<IpAddr> {
    /// The unspecified address (`0.0.0.0`, `::`): what a caller stores as the real server
    /// of an entry whose real server is of the other family (a tunnel across families).
    const UNSPECIFIED: Self;

    /// Set in the index of every [`ConnId`] a table of this family hands out (0 for IPv4,
    /// so the IPv4 handles and code are what they were): a handle from the other family's
    /// table names no slot.
    #[doc(hidden)]
    const HANDLE_BIT: u32;

    /// The index hash of a key with these addresses; `tail` holds the ports, the protocol
    /// and the kind (see `key_hash`).
    #[doc(hidden)]
    fn key_hash(hasher: &FlowHasher, src: Self, dst: Self, tail: u64) -> u64;
}

impl ConnAddr for Ipv4Addr {
    const UNSPECIFIED: Self = Ipv4Addr::UNSPECIFIED;
    const HANDLE_BIT: u32 = 0;

    /// 16 bytes: both addresses, then the tail (exactly the pre-IPv6 hash).
    #[inline(always)]
    fn key_hash(hasher: &FlowHasher, src: Self, dst: Self, tail: u64) -> u64 {
        hasher.hash(
            u64::from(src.to_bits()) << 32 | u64::from(dst.to_bits()),
            tail,
        )
    }
}

/// The family byte of an IPv6 key's tail (bits 16..24; IPv4 keys have 0 there).
const FAMILY_V6: u64 = 6 << 16;

impl ConnAddr for Ipv6Addr {
    const UNSPECIFIED: Self = Ipv6Addr::UNSPECIFIED;
    const HANDLE_BIT: u32 = 1 << 31;

    /// 40 bytes: both addresses (high and low halves), then the tail with the family.
    #[inline(always)]
    fn key_hash(hasher: &FlowHasher, src: Self, dst: Self, tail: u64) -> u64 {
        let (s, d) = (src.to_bits(), dst.to_bits());
        hasher.hash_words([
            (s >> 64) as u64,
            s as u64,
            (d >> 64) as u64,
            d as u64,
            tail | FAMILY_V6,
        ])
    }
}

/// A packet's 5-tuple as received: the lookup key of both maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey<A = Ipv4Addr> {
    /// Transport protocol.
    pub protocol: Protocol,
    /// Source address.
    pub src: A,
    /// Source port.
    pub src_port: u16,
    /// Destination address.
    pub dst: A,
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
pub struct NewConn<A = Ipv4Addr> {
    /// Transport protocol.
    pub protocol: Protocol,
    /// How packets reach the real server (fixed for the entry's life, as in IPVS).
    pub forwarding: Forwarding,
    /// Client address and port.
    pub client: (A, u16),
    /// Virtual address and port.
    pub virt: (A, u16),
    /// Real server address and port ([`ConnAddr::UNSPECIFIED`] for a tunnel to a real
    /// server of the other family: only a NAT entry's reply key uses it).
    pub real: (A, u16),
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
pub struct NewTemplate<A = Ipv4Addr> {
    /// Transport protocol of the service.
    pub protocol: Protocol,
    /// Forwarding method of the destination (informational).
    pub forwarding: Forwarding,
    /// The client's address masked with the service's persistence netmask.
    pub client: A,
    /// Virtual address and port.
    pub virt: (A, u16),
    /// The destination's address and port (informational, as for [`NewConn::real`]).
    pub real: (A, u16),
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

/// One connection entry or template: 60 bytes for IPv4 (96 for IPv6), 4-aligned, so that
/// with its slot's generation it fills one 64-byte cache line (two for IPv6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conn<A = Ipv4Addr> {
    caddr: A,
    vaddr: A,
    daddr: A,
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

impl<A: ConnAddr> Conn<A> {
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
    pub fn client(&self) -> (A, u16) {
        (self.caddr, self.cport)
    }
    /// Virtual address and port.
    pub fn virt(&self) -> (A, u16) {
        (self.vaddr, self.vport)
    }
    /// Real server address and port (as inserted: [`ConnAddr::UNSPECIFIED`] for a tunnel
    /// to a real server of the other family).
    pub fn real(&self) -> (A, u16) {
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

    fn inbound_key(&self) -> FlowKey<A> {
        FlowKey {
            protocol: self.protocol,
            src: self.caddr,
            src_port: self.cport,
            dst: self.vaddr,
            dst_port: self.vport,
        }
    }

    fn reply_key(&self) -> Option<FlowKey<A>> {
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
    fn has_key(&self, kind: Kind, key: &FlowKey<A>) -> bool {
        match kind {
            Kind::Reply => self.reply_key().as_ref() == Some(key),
            _ => self.own_kind() == kind && self.inbound_key() == *key,
        }
    }

    #[cfg(test)]
    fn key(&self, kind: Kind) -> Option<FlowKey<A>> {
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

/// The index hash of a key of `kind`: every key byte and the kind (IPv4: 13 key bytes
/// and the kind in two words; IPv6: 37 key bytes, the kind and the family in five).
#[inline]
fn key_hash<A: ConnAddr>(hasher: &FlowHasher, kind: Kind, key: &FlowKey<A>) -> u64 {
    let proto: u64 = match key.protocol {
        Protocol::Tcp => 6,
        Protocol::Udp => 17,
    };
    let tail =
        u64::from(key.src_port) << 48 | u64::from(key.dst_port) << 32 | proto << 8 | kind as u64;
    A::key_hash(hasher, key.src, key.dst, tail)
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

    /// Whether the handle comes from an IPv6 table (else IPv4): a table finds no entry
    /// behind the other family's handles. (The handle an insert into a full slab returns
    /// names nothing in either table and says true.)
    pub const fn is_v6(self) -> bool {
        self.index & <Ipv6Addr as ConnAddr>::HANDLE_BIT != 0
    }

    /// The handle a table of family `A` hands out for slab slot `slot`.
    #[inline(always)]
    fn tagged<A: ConnAddr>(slot: u32, generation: u32) -> ConnId {
        ConnId {
            index: slot | A::HANDLE_BIT,
            generation,
        }
    }

    /// The slab slot and generation behind a handle of family `A` (the other family's
    /// handles name slots past any slab).
    #[inline(always)]
    fn raw<A: ConnAddr>(self) -> ConnId {
        ConnId {
            index: self.index ^ A::HANDLE_BIT,
            generation: self.generation,
        }
    }
}

/// A slab slot: one cache line (IPv6: two).
#[derive(Debug, Clone)]
#[repr(align(64))]
struct Slot<A> {
    /// Bumped when the entry is removed, so old handles and wheel records go stale.
    generation: u32,
    entry: Entry<A>,
}

// The entry sizes the module doc states, per family.
const _: () = {
    use std::mem::{align_of, size_of};
    assert!(size_of::<Conn<Ipv4Addr>>() == 60);
    assert!(size_of::<Slot<Ipv4Addr>>() == 64);
    assert!(size_of::<Conn<Ipv6Addr>>() == 96);
    assert!(size_of::<Slot<Ipv6Addr>>() == 128);
    assert!(align_of::<Slot<Ipv4Addr>>() == 64 && align_of::<Slot<Ipv6Addr>>() == 64);
};

#[derive(Debug, Clone)]
enum Entry<A> {
    Live(Conn<A>),
    /// On the free list; `next` is the next free slot (`NIL`: none).
    Free {
        next: u32,
    },
}

/// Slots in chunks of [`CHUNK`] (the first one grows by doubling up to that), with an
/// intrusive free list. Slot `i` is `chunks[i >> CHUNK_SHIFT][i % CHUNK]`.
#[derive(Debug)]
struct Slab<A> {
    chunks: Vec<Vec<Slot<A>>>,
    /// Slots handed out at least once (`0..high` exist).
    high: u32,
    /// First free slot below `high` (`NIL`: none).
    free: u32,
    len: usize,
}

impl<A: ConnAddr> Slab<A> {
    fn new() -> Self {
        Slab {
            chunks: Vec::new(),
            high: 0,
            free: NIL,
            len: 0,
        }
    }

    #[inline]
    fn slot(&self, index: u32) -> Option<&Slot<A>> {
        self.chunks
            .get((index >> CHUNK_SHIFT) as usize)?
            .get(index as usize & (CHUNK - 1))
    }

    #[inline]
    fn slot_mut(&mut self, index: u32) -> Option<&mut Slot<A>> {
        self.chunks
            .get_mut((index >> CHUNK_SHIFT) as usize)?
            .get_mut(index as usize & (CHUNK - 1))
    }

    /// The live entry in slot `index`, whatever its generation.
    #[inline]
    fn live(&self, index: u32) -> Option<&Conn<A>> {
        match &self.slot(index)?.entry {
            Entry::Live(c) => Some(c),
            Entry::Free { .. } => None,
        }
    }

    fn live_mut(&mut self, index: u32) -> Option<&mut Conn<A>> {
        match &mut self.slot_mut(index)?.entry {
            Entry::Live(c) => Some(c),
            Entry::Free { .. } => None,
        }
    }

    /// The entry behind a raw (untagged) handle.
    #[inline]
    fn get(&self, id: ConnId) -> Option<&Conn<A>> {
        let slot = self.slot(id.index)?;
        match &slot.entry {
            Entry::Live(c) if slot.generation == id.generation => Some(c),
            _ => None,
        }
    }

    fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn<A>> {
        let slot = self.slot_mut(id.index)?;
        match &mut slot.entry {
            Entry::Live(c) if slot.generation == id.generation => Some(c),
            _ => None,
        }
    }

    /// Stores `conn` in a free slot and returns its raw handle; `None` if all 2^30 − 1
    /// slots are live.
    fn alloc(&mut self, conn: Conn<A>) -> Option<ConnId> {
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
    fn free(&mut self, index: u32) -> Option<Conn<A>> {
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
    fn iter(&self) -> impl Iterator<Item = (u32, &Slot<A>)> {
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

/// The connection table of one address family.
#[derive(Debug)]
pub struct ConnTable<A: ConnAddr = Ipv4Addr> {
    epoch: Instant,
    slab: Slab<A>,
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
fn holds<A: ConnAddr>(slab: &Slab<A>, v: u32, kind: Kind, key: &FlowKey<A>) -> bool {
    v >> KIND_SHIFT == kind as u32
        && slab
            .live(v & SLOT_MASK)
            .is_some_and(|c| c.has_key(kind, key))
}

/// The hash index value `v` was filed under (`None`: it names no live entry, which the
/// invariants rule out).
#[cfg(test)]
fn rehash<A: ConnAddr>(slab: &Slab<A>, hasher: &FlowHasher, v: u32) -> Option<u64> {
    let kind = match v >> KIND_SHIFT {
        0 => Kind::Inbound,
        1 => Kind::Reply,
        _ => Kind::Template,
    };
    let key = slab.live(v & SLOT_MASK)?.key(kind)?;
    Some(key_hash(hasher, kind, &key))
}

impl<A: ConnAddr> ConnTable<A> {
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
    fn find(&self, kind: Kind, key: &FlowKey<A>) -> Option<ConnId> {
        let hash = key_hash(&self.hasher, kind, key);
        let v = self.index.find(hash, |v| holds(&self.slab, v, kind, key))?;
        let index = v & SLOT_MASK;
        let generation = self.slab.slot(index)?.generation;
        Some(ConnId::tagged::<A>(index, generation))
    }

    /// The entry a client→VIP packet with this 5-tuple belongs to.
    pub fn find_inbound(&self, key: &FlowKey<A>) -> Option<ConnId> {
        self.find(Kind::Inbound, key)
    }

    /// The NAT entry a real server→client packet with this 5-tuple belongs to.
    pub fn find_reply(&self, key: &FlowKey<A>) -> Option<ConnId> {
        self.find(Kind::Reply, key)
    }

    /// The live, valid template for `(proto, masked client, 0, vaddr, vport)`: `key.src_port`
    /// must be 0.
    pub fn find_template(&self, key: &FlowKey<A>) -> Option<ConnId> {
        self.find(Kind::Template, key)
    }

    /// The entry behind a handle, if it is still live (and from this family's table).
    #[inline]
    pub fn get(&self, id: ConnId) -> Option<&Conn<A>> {
        self.slab.get(id.raw::<A>())
    }

    fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn<A>> {
        self.slab.get_mut(id.raw::<A>())
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
    pub fn insert(&mut self, new: NewConn<A>, now: Instant, timeouts: &Timeouts) -> ConnId {
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
    pub fn insert_template(&mut self, new: NewTemplate<A>, now: Instant) -> ConnId {
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
    fn store(&mut self, conn: Conn<A>, now: Instant) -> ConnId {
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
        if let Some(c) = self.slab.get_mut(id) {
            c.check_tick = tick;
        }
        ConnId::tagged::<A>(id.index, id.generation)
    }

    /// Files `key` of `kind` (hashed: `hash`) for the entry in slot `index`, taking it
    /// over from any entry that holds it; grows the index if it is full.
    fn put_key(&mut self, kind: Kind, key: &FlowKey<A>, hash: u64, index: u32) {
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
            let tick = self.file(id.raw::<A>().index, expires_ms, now_ms);
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
            self.index
                .remove(hash, Kind::Template.value(id.raw::<A>().index));
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
            let tick = self.file(id.raw::<A>().index, expires_ms, now_ms);
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
    pub fn remove(&mut self, id: ConnId) -> Option<Conn<A>> {
        self.get(id)?;
        self.take(id.raw::<A>().index)
    }

    /// Removes the entry in slab slot `index` (a raw slot number).
    fn take(&mut self, index: u32) -> Option<Conn<A>> {
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
    pub fn expire(&mut self, now: Instant, mut expired: impl FnMut(Conn<A>)) {
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
                    if let Some(c) = self.slab.get_mut(id) {
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
                    if let Some(c) = self.slab.get_mut(id) {
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
        mut remove: impl FnMut(&Conn<A>) -> bool,
        mut removed: impl FnMut(Conn<A>),
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
        let slab = self.slab.chunks.capacity() * size_of::<Vec<Slot<A>>>()
            + (self.slab.chunks.iter())
                .map(|c| c.capacity() * size_of::<Slot<A>>())
                .sum::<usize>();
        let wheel = self.wheel.capacity() * size_of::<Vec<WheelRecord>>()
            + self.spares.capacity() * size_of::<Vec<WheelRecord>>()
            + (self.wheel.iter().chain(&self.spares))
                .map(|b| b.capacity() * size_of::<WheelRecord>())
                .sum::<usize>();
        slab + self.index.heap_bytes() + wheel
    }

    /// Every live entry with its handle, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (ConnId, &Conn<A>)> {
        self.slab.iter().filter_map(|(index, s)| match &s.entry {
            Entry::Live(c) => Some((ConnId::tagged::<A>(index, s.generation), c)),
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

    /// A family's test addresses (the lab plans': client, VIP, real server) and bulk
    /// clients. The tests below are generic; `both_families!` runs each for both.
    trait Fam: ConnAddr {
        const CLIENT: Self;
        const VIP: Self;
        const RIP: Self;
        /// Where template tests' clients are numbered from (`client(0..8)`).
        const CLIENT_NET: Self;
        /// Where bulk clients are numbered from.
        const BULK_NET: Self;
        /// The address `n` after `self`.
        fn plus(self, n: u32) -> Self;

        /// Client `n` of the template tests.
        fn client(n: u64) -> Self {
            Self::CLIENT_NET.plus(n as u32)
        }
    }

    impl Fam for Ipv4Addr {
        const CLIENT: Self = Ipv4Addr::new(198, 51, 100, 1);
        const VIP: Self = Ipv4Addr::new(203, 0, 113, 10);
        const RIP: Self = Ipv4Addr::new(192, 0, 2, 11);
        const CLIENT_NET: Self = Ipv4Addr::new(198, 51, 100, 0);
        const BULK_NET: Self = Ipv4Addr::new(198, 18, 0, 0);
        fn plus(self, n: u32) -> Self {
            Ipv4Addr::from(self.to_bits().wrapping_add(n))
        }
    }

    impl Fam for Ipv6Addr {
        const CLIENT: Self = Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 0x10);
        const VIP: Self = Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 0x10);
        const RIP: Self = Ipv6Addr::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, 0x11);
        const CLIENT_NET: Self = Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 0);
        const BULK_NET: Self = Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0x1, 0, 0, 0, 0);
        fn plus(self, n: u32) -> Self {
            Ipv6Addr::from(self.to_bits().wrapping_add(u128::from(n)))
        }
    }

    /// `name` runs as `v4::name` and `v6::name`.
    macro_rules! both_families {
        ($($name:ident),* $(,)?) => {
            mod v4 {
                $(#[test]
                fn $name() {
                    super::$name::<std::net::Ipv4Addr>();
                })*
            }
            mod v6 {
                $(#[test]
                fn $name() {
                    super::$name::<std::net::Ipv6Addr>();
                })*
            }
        };
    }

    both_families!(
        nat_entry_has_both_keys_dr_only_inbound,
        nat_handshake_and_close,
        dr_uses_input_only,
        udp_never_active_and_refreshes,
        shortened_timeout_expires_early,
        busy_entry_survives_long,
        long_gap_expires_everything_due,
        remove_where_and_iter,
        collision_keeps_newest_key,
        templates_have_their_own_map,
        template_refresh_and_expiry,
        controlling_template_lives_on,
        expiry_detaches_connections,
        invalidated_template_waits_for_its_timer,
        all_keys_collide,
        churn_keeps_size,
        memory_per_entry_at_1m,
        model,
        tunnel_to_other_family,
        handles_stay_in_their_family,
    );

    fn new<A: Fam>(protocol: Protocol, forwarding: Forwarding, cport: u16) -> NewConn<A> {
        NewConn {
            protocol,
            forwarding,
            client: (A::CLIENT, cport),
            virt: (A::VIP, 80),
            real: (A::RIP, 8080),
            service: 0,
            dest: 7,
            client_mac: [2, 0, 0, 0, 0, 1],
            in_ifindex: 1,
        }
    }

    fn inbound<A: Fam>(protocol: Protocol, cport: u16) -> FlowKey<A> {
        FlowKey {
            protocol,
            src: A::CLIENT,
            src_port: cport,
            dst: A::VIP,
            dst_port: 80,
        }
    }

    fn reply<A: Fam>(protocol: Protocol, cport: u16) -> FlowKey<A> {
        FlowKey {
            protocol,
            src: A::RIP,
            src_port: 8080,
            dst: A::CLIENT,
            dst_port: cport,
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn nat_entry_has_both_keys_dr_only_inbound<A: Fam>() {
        let t0 = Instant::now();
        let mut t = ConnTable::<A>::new(t0);
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
        assert_eq!(removed.client(), (A::CLIENT, 1000));
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
    fn nat_handshake_and_close<A: Fam>() {
        let t0 = Instant::now();
        let mut t = ConnTable::<A>::new(t0);
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
    fn dr_uses_input_only<A: Fam>() {
        let t0 = Instant::now();
        let mut t = ConnTable::<A>::new(t0);
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

    fn udp_never_active_and_refreshes<A: Fam>() {
        let t0 = Instant::now();
        let mut t = ConnTable::<A>::new(t0);
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
    fn shortened_timeout_expires_early<A: Fam>() {
        let t0 = Instant::now();
        let mut t = ConnTable::<A>::new(t0);
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
    fn busy_entry_survives_long<A: Fam>() {
        let t0 = Instant::now();
        let mut t = ConnTable::<A>::new(t0);
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
    fn long_gap_expires_everything_due<A: Fam>() {
        let t0 = Instant::now();
        let mut t = ConnTable::<A>::new(t0);
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

    fn remove_where_and_iter<A: Fam>() {
        let t0 = Instant::now();
        let mut t = ConnTable::<A>::new(t0);
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
    fn collision_keeps_newest_key<A: Fam>() {
        let t0 = Instant::now();
        let mut t = ConnTable::<A>::new(t0);
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
        assert_eq!(size_of::<Slot<Ipv4Addr>>(), 64, "one cache line");
        assert_eq!(align_of::<Slot<Ipv4Addr>>(), 64);
        assert_eq!(size_of::<Conn<Ipv6Addr>>(), 96);
        assert_eq!(size_of::<Slot<Ipv6Addr>>(), 128, "two cache lines");
        assert_eq!(align_of::<Slot<Ipv6Addr>>(), 64);
        assert_eq!(size_of::<WheelRecord>(), 8);
    }

    /// A tunnel to a real server of the other family: the caller stores the unspecified
    /// address as `real`. Such entries are found by their inbound keys alone, have no
    /// reply key, and do not disturb each other (nothing keys on `real`).
    fn tunnel_to_other_family<A: Fam>() {
        let t0 = Instant::now();
        let mut t = ConnTable::<A>::new(t0);
        let to = Timeouts::default();
        let tun = |cport| NewConn {
            real: (A::UNSPECIFIED, 0),
            ..new(Protocol::Tcp, Forwarding::Tun, cport)
        };
        let a = t.insert(tun(1000), t0, &to);
        let b = t.insert(tun(1001), t0, &to);
        assert_ne!(a, b);
        assert_eq!(t.find_inbound(&inbound(Protocol::Tcp, 1000)), Some(a));
        assert_eq!(t.find_inbound(&inbound(Protocol::Tcp, 1001)), Some(b));
        let unspecified_reply = FlowKey {
            protocol: Protocol::Tcp,
            src: A::UNSPECIFIED,
            src_port: 0,
            dst: A::CLIENT,
            dst_port: 1000,
        };
        assert_eq!(t.find_reply(&unspecified_reply), None);
        let c = t.get(a).unwrap();
        assert_eq!(c.real(), (A::UNSPECIFIED, 0));
        assert!(c.no_output(), "not NAT");
        let tpl = t.insert_template(
            NewTemplate {
                real: (A::UNSPECIFIED, 0),
                ..template(A::CLIENT, 100)
            },
            t0,
        );
        assert_eq!(t.find_template(&template_key(A::CLIENT)), Some(tpl));
        t.remove(a);
        assert_eq!(t.find_inbound(&inbound(Protocol::Tcp, 1001)), Some(b));
        check_index(&t);
    }

    /// Handles carry their family: a table finds nothing behind the other family's
    /// handles (their slot numbers lie past any slab), even for the same slot.
    fn handles_stay_in_their_family<A: Fam>() {
        let t0 = Instant::now();
        let to = Timeouts::default();
        let mut mine = ConnTable::<A>::new(t0);
        let mut v4 = ConnTable::<Ipv4Addr>::new(t0);
        let mut v6 = ConnTable::<Ipv6Addr>::new(t0);
        let id = mine.insert(new(Protocol::Tcp, Forwarding::Nat, 1000), t0, &to);
        let id4 = v4.insert(new(Protocol::Tcp, Forwarding::Nat, 1000), t0, &to);
        let id6 = v6.insert(new(Protocol::Tcp, Forwarding::Nat, 1000), t0, &to);
        assert!(!id4.is_v6() && id6.is_v6());
        assert_ne!(id4, id6, "same slot and generation, different handles");
        let v6_table = id.is_v6();
        assert_eq!(v6_table, id == id6);
        assert_eq!(!v6_table, id == id4);
        let other = if v6_table { id4 } else { id6 };
        assert!(mine.get(id).is_some());
        assert_eq!(mine.get(other), None);
        assert_eq!(mine.expires_in(other, t0), None);
        let syn = Some(TcpFlags::SYN);
        assert_eq!(mine.on_packet(other, t0, &to, Direction::Input, syn), None);
        assert!(!mine.set_control(other, other));
        mine.refresh_template(other, t0);
        mine.invalidate_template(other);
        assert_eq!(mine.remove(other), None);
        assert_eq!(mine.len(), 1);
        assert_eq!(mine.iter().map(|(i, _)| i).collect::<Vec<_>>(), [id]);
        let found = mine.find_inbound(&inbound(Protocol::Tcp, 1000));
        assert_eq!(found, Some(id));
        assert_eq!(found.map(ConnId::is_v6), Some(v6_table));
        // A template's controls are this family's handles too.
        let tpl = mine.insert_template(template(A::CLIENT, 100), t0);
        assert!(mine.set_control(id, tpl));
        assert_eq!(mine.get(id).unwrap().control(), Some(tpl));
        assert_eq!(tpl.is_v6(), v6_table);
        assert!(mine.remove(id).is_some());
        assert_eq!(mine.get(tpl).unwrap().n_control(), 0);
    }

    fn v6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    /// IPv6 keys that differ only in the high or only in the low 64 bits of an address
    /// are distinct keys: each finds its own entry, under a real hash and when every key
    /// collides (then only the key comparison tells them apart).
    #[test]
    fn v6_keys_differ_in_either_half() {
        for hasher in [
            FlowHasher::with_keys(21, 22),
            FlowHasher::colliding(0x2222_0000_0000_0007),
        ] {
            let t0 = Instant::now();
            let mut t = ConnTable::<Ipv6Addr>::with_hasher(t0, hasher);
            let to = Timeouts::default();
            let clients = [
                v6("2001:db8:c::10"),
                v6("2001:db8:c:1::10"),     // high half differs
                v6("2001:db8:c::1:0:0:10"), // low half differs (bit 32)
                v6("2001:db8:c::11"),       // last byte differs
                v6("2001:db9:c::10"),       // first half's top word differs
            ];
            let vips = [v6("2001:db8:f::10"), v6("2001:db8:f:8000::10")];
            let mut ids = Vec::new();
            for &c in &clients {
                for &v in &vips {
                    let n = NewConn {
                        client: (c, 40000),
                        virt: (v, 80),
                        ..new(Protocol::Tcp, Forwarding::Nat, 0)
                    };
                    ids.push(((c, v), t.insert(n, t0, &to)));
                }
            }
            assert_eq!(t.len(), clients.len() * vips.len());
            for &((c, v), id) in &ids {
                let key = FlowKey {
                    protocol: Protocol::Tcp,
                    src: c,
                    src_port: 40000,
                    dst: v,
                    dst_port: 80,
                };
                assert_eq!(t.find_inbound(&key), Some(id), "{c} -> {v}");
                let reply = FlowKey {
                    protocol: Protocol::Tcp,
                    src: Ipv6Addr::RIP,
                    src_port: 8080,
                    dst: c,
                    dst_port: 40000,
                };
                // The reply key does not hold the VIP: the later entry took it over.
                let last = ids.iter().rev().find(|((c2, _), _)| *c2 == c).map(|x| x.1);
                assert_eq!(t.find_reply(&reply), last, "{c}");
            }
            check_index(&t);
        }
    }

    /// The IPv6 key hash reads every key byte, the kind and the family: changing any
    /// one of them changes the hash.
    #[test]
    fn v6_hash_covers_every_key_byte() {
        let hasher = FlowHasher::with_keys(31, 32);
        let base = FlowKey {
            protocol: Protocol::Tcp,
            src: v6("2001:db8:c::10"),
            src_port: 40000,
            dst: v6("2001:db8:f::10"),
            dst_port: 80,
        };
        let mut keys = vec![(Kind::Inbound, base)];
        for byte in 0..16 {
            let flip = |a: Ipv6Addr| {
                let mut o = a.octets();
                o[byte] ^= 0x80;
                Ipv6Addr::from(o)
            };
            keys.push((
                Kind::Inbound,
                FlowKey {
                    src: flip(base.src),
                    ..base
                },
            ));
            keys.push((
                Kind::Inbound,
                FlowKey {
                    dst: flip(base.dst),
                    ..base
                },
            ));
        }
        for bit in [0, 8] {
            let src_port = base.src_port ^ 1 << bit;
            let dst_port = base.dst_port ^ 1 << bit;
            keys.push((Kind::Inbound, FlowKey { src_port, ..base }));
            keys.push((Kind::Inbound, FlowKey { dst_port, ..base }));
        }
        let udp = FlowKey {
            protocol: Protocol::Udp,
            ..base
        };
        keys.extend([
            (Kind::Inbound, udp),
            (Kind::Reply, base),
            (Kind::Template, base),
        ]);
        let hashes: std::collections::HashSet<u64> = keys
            .iter()
            .map(|(k, key)| key_hash(&hasher, *k, key))
            .collect();
        assert_eq!(hashes.len(), keys.len());
        // The family: an IPv4 key and the IPv6 key of its v4-mapped addresses differ, and
        // the IPv6 hash is not the plain hash of the key's words.
        let k4 = FlowKey {
            protocol: Protocol::Tcp,
            src: Ipv4Addr::CLIENT,
            src_port: 40000,
            dst: Ipv4Addr::VIP,
            dst_port: 80,
        };
        let k6 = FlowKey {
            src: k4.src.to_ipv6_mapped(),
            dst: k4.dst.to_ipv6_mapped(),
            ..base
        };
        let h6 = key_hash(&hasher, Kind::Inbound, &k6);
        assert_ne!(key_hash(&hasher, Kind::Inbound, &k4), h6);
        let (s, d) = (k6.src.to_bits(), k6.dst.to_bits());
        let tail = 40000u64 << 48 | 80 << 32 | 6 << 8;
        let words = [(s >> 64) as u64, s as u64, (d >> 64) as u64, d as u64];
        let [w0, w1, w2, w3] = words;
        assert_eq!(h6, hasher.hash_words([w0, w1, w2, w3, tail | FAMILY_V6]));
        assert_ne!(h6, hasher.hash_words([w0, w1, w2, w3, tail]));
    }

    /// NAT66: the reply key is the real server's packet's own 5-tuple (RIP:rport →
    /// client:cport); near misses in either half of either address find nothing, DR66
    /// entries have no reply key.
    #[test]
    fn nat66_reply_keys() {
        let t0 = Instant::now();
        let mut t = ConnTable::<Ipv6Addr>::with_hasher(t0, FlowHasher::with_keys(41, 42));
        let to = Timeouts::default();
        let nat = t.insert(new(Protocol::Tcp, Forwarding::Nat, 40000), t0, &to);
        let dr = t.insert(new(Protocol::Udp, Forwarding::Dr, 40001), t0, &to);
        let r = reply::<Ipv6Addr>(Protocol::Tcp, 40000);
        assert_eq!(r.src, v6("2001:db8:b::11"));
        assert_eq!(r.dst, v6("2001:db8:c::10"));
        assert_eq!(t.find_reply(&r), Some(nat));
        assert_eq!(
            t.find_inbound(&r),
            None,
            "a reply key is not an inbound key"
        );
        assert_eq!(t.find_reply(&inbound(Protocol::Tcp, 40000)), None);
        let near = [
            FlowKey {
                src: v6("2001:db8:b:1::11"),
                ..r
            },
            FlowKey {
                src: v6("2001:db8:b::1:0:0:11"),
                ..r
            },
            FlowKey {
                dst: v6("2001:db8:c:1::10"),
                ..r
            },
            FlowKey {
                dst: v6("2001:db8:c::1:0:0:10"),
                ..r
            },
            FlowKey {
                src_port: 8081,
                ..r
            },
            FlowKey {
                dst_port: 40001,
                ..r
            },
            FlowKey {
                protocol: Protocol::Udp,
                ..r
            },
        ];
        for k in near {
            assert_eq!(t.find_reply(&k), None, "{k:?}");
        }
        assert_eq!(
            t.find_reply(&reply(Protocol::Udp, 40001)),
            None,
            "DR: no reply key"
        );
        assert_eq!(t.find_inbound(&inbound(Protocol::Udp, 40001)), Some(dr));
        // The NAT state machine runs on the reply direction as for IPv4.
        let c = t.get(nat).unwrap();
        assert!(!c.no_output());
        assert_eq!(c.real(), (Ipv6Addr::RIP, 8080));
        assert_eq!(c.client(), (Ipv6Addr::CLIENT, 40000));
        t.remove(nat);
        assert_eq!(t.find_reply(&r), None);
        check_index(&t);
    }

    fn template<A: Fam>(client: A, timeout: u64) -> NewTemplate<A> {
        NewTemplate {
            protocol: Protocol::Tcp,
            forwarding: Forwarding::Nat,
            client,
            virt: (A::VIP, 80),
            real: (A::RIP, 8080),
            service: 0,
            dest: 7,
            timeout: secs(timeout),
        }
    }

    fn template_key<A: Fam>(client: A) -> FlowKey<A> {
        FlowKey {
            protocol: Protocol::Tcp,
            src: client,
            src_port: 0,
            dst: A::VIP,
            dst_port: 80,
        }
    }

    /// A template lives in its own map: a client-port-0 connection and a template with the
    /// same tuple never find each other. It is in state NONE and never active.
    fn templates_have_their_own_map<A: Fam>() {
        let t0 = Instant::now();
        let mut t = ConnTable::<A>::new(t0);
        let to = Timeouts::default();
        let tpl = t.insert_template(template(A::CLIENT, 300), t0);
        assert_eq!(t.find_template(&template_key(A::CLIENT)), Some(tpl));
        assert_eq!(t.find_inbound(&inbound(Protocol::Tcp, 0)), None);
        let c0 = t.insert(new(Protocol::Tcp, Forwarding::Nat, 0), t0, &to);
        assert_eq!(t.find_inbound(&inbound(Protocol::Tcp, 0)), Some(c0));
        assert_eq!(t.find_template(&template_key(A::CLIENT)), Some(tpl));
        let c = t.get(tpl).unwrap();
        assert!(c.is_template() && !c.is_active());
        assert_eq!(c.state(), ConnState::Template);
        assert_eq!(c.state().name(), "NONE");
        assert_eq!(c.client(), (A::CLIENT, 0));
        assert_eq!(c.real(), (A::RIP, 8080));
        // Packets never touch a template.
        assert_eq!(
            t.on_packet(tpl, t0 + secs(10), &to, Direction::Input, None),
            None
        );
        assert_eq!(t.expires_in(tpl, t0 + secs(10)), Some(secs(290)));
        t.remove(c0);
        assert_eq!(t.find_template(&template_key(A::CLIENT)), Some(tpl));
        t.remove(tpl);
        assert_eq!(t.find_template(&template_key(A::CLIENT)), None);
        assert!(t.is_empty());
    }

    /// Refresh re-arms the template's own timeout; unrefreshed, it expires on time.
    fn template_refresh_and_expiry<A: Fam>() {
        let t0 = Instant::now();
        let mut t = ConnTable::<A>::new(t0);
        let tpl = t.insert_template(template(A::CLIENT, 100), t0);
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
    fn controlling_template_lives_on<A: Fam>() {
        let t0 = Instant::now();
        let mut t = ConnTable::<A>::new(t0);
        let mut to = Timeouts::default();
        to.set_udp(secs(1000));
        let tpl = t.insert_template(template(A::CLIENT, 100), t0);
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
    fn expiry_detaches_connections<A: Fam>() {
        let t0 = Instant::now();
        let mut t = ConnTable::<A>::new(t0);
        let to = Timeouts::default();
        let tpl = t.insert_template(template(A::CLIENT, 300), t0);
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
    fn invalidated_template_waits_for_its_timer<A: Fam>() {
        let t0 = Instant::now();
        let mut t = ConnTable::<A>::new(t0);
        let old = t.insert_template(template(A::CLIENT, 100), t0);
        t.invalidate_template(old);
        assert_eq!(t.find_template(&template_key(A::CLIENT)), None);
        let c = t.get(old).unwrap();
        assert_eq!(c.virt(), (A::VIP, INVALID_TEMPLATE_PORT));
        assert_eq!(c.real(), (A::RIP, INVALID_TEMPLATE_PORT));
        assert_eq!(c.dest(), 7);
        // A new template takes the key; removing the old one does not disturb it.
        let fresh = t.insert_template(template(A::CLIENT, 100), t0 + secs(10));
        assert_eq!(t.find_template(&template_key(A::CLIENT)), Some(fresh));
        let mut gone = Vec::new();
        t.expire(t0 + secs(100), |x| gone.push(x.virt()));
        assert_eq!(gone, [(A::VIP, INVALID_TEMPLATE_PORT)]);
        assert_eq!(t.find_template(&template_key(A::CLIENT)), Some(fresh));
        // Invalidating a connection is a no-op.
        let to = Timeouts::default();
        let conn = t.insert(new(Protocol::Tcp, Forwarding::Nat, 5), t0, &to);
        t.invalidate_template(conn);
        assert_eq!(t.find_inbound(&inbound(Protocol::Tcp, 5)), Some(conn));
    }

    /// Every key hashes alike (same home bucket, same tag): lookups tell keys, kinds and
    /// entries apart by the key in the entry alone.
    fn all_keys_collide<A: Fam>() {
        let t0 = Instant::now();
        let mut t = ConnTable::<A>::with_hasher(t0, FlowHasher::colliding(0x7777_0000_0000_0005));
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
        let tpl = t.insert_template(template(A::CLIENT, 100), t0);
        // The template's key is a port-0 connection's, under another kind.
        assert_eq!(t.find_inbound(&template_key(A::CLIENT)), None);
        let c0 = t.insert(new(Protocol::Tcp, Forwarding::Nat, 0), t0, &to);
        for &(p, id) in &ids {
            assert_eq!(t.find_inbound(&inbound(Protocol::Tcp, p)), Some(id));
            assert_eq!(t.find_inbound(&inbound(Protocol::Udp, p)), None);
            let r = t.find_reply(&reply(Protocol::Tcp, p));
            assert_eq!(r, (p % 2 == 0).then_some(id), "{p}");
            assert_eq!(t.find_template(&inbound(Protocol::Tcp, p)), None);
        }
        assert_eq!(t.find_template(&template_key(A::CLIENT)), Some(tpl));
        assert_eq!(t.find_inbound(&template_key(A::CLIENT)), Some(c0));
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
        assert_eq!(t.find_template(&template_key(A::CLIENT)), None);
        assert_eq!(t.find_inbound(&inbound(Protocol::Tcp, 0)), Some(c0));
        assert_eq!(t.len(), 3);
        check_index(&t);
    }

    /// The index holds exactly the keys the invariants say (each live entry's keys that
    /// no later entry took over), each naming its entry.
    fn check_index<A: Fam>(t: &ConnTable<A>) {
        t.index
            .check(|v| rehash(&t.slab, &t.hasher, v).unwrap_or(0));
    }

    /// Steady churn (an insert every ms, entries idle out after 5 s, a sweep every ms)
    /// keeps the slab, the index and the wheel at their size: freed slots are reused, the
    /// index has no tombstones to pile up and stale wheel records go when swept.
    fn churn_keeps_size<A: Fam>() {
        let t0 = Instant::now();
        let mut t = ConnTable::<A>::with_hasher(t0, FlowHasher::with_keys(11, 12));
        let mut to = Timeouts::default();
        to.set_udp(secs(5));
        let conn = |i: u32| NewConn {
            client: (A::BULK_NET.plus(i >> 14), (i & 0x3fff) as u16),
            ..new(Protocol::Udp, Forwarding::Nat, 0)
        };
        let key = |i: u32| FlowKey {
            protocol: Protocol::Udp,
            src: conn(i).client.0,
            src_port: conn(i).client.1,
            dst: A::VIP,
            dst_port: 80,
        };
        let mut expired = 0usize;
        let mut run = |t: &mut ConnTable<A>, from: u32, to_i: u32| {
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
    /// table holds at most 128 bytes per entry for IPv4 (issue 9), DR less; IPv6 entries
    /// take 64 bytes more of slab each (two cache lines), the rest is the same.
    fn memory_per_entry_at_1m<A: Fam>() {
        let slot = std::mem::size_of::<Slot<A>>();
        for (fw, limit) in [(Forwarding::Nat, slot + 64), (Forwarding::Dr, slot + 36)] {
            let t0 = Instant::now();
            let mut t = ConnTable::<A>::new(t0);
            let to = Timeouts::default();
            let n = 1_000_000u32;
            for i in 0..n {
                let c = NewConn {
                    client: (A::BULK_NET.plus(i >> 14), 1024 + (i & 0x3fff) as u16),
                    ..new(Protocol::Tcp, fw, 0)
                };
                t.insert(c, t0, &to);
            }
            assert_eq!(t.len(), n as usize);
            let per_entry = t.heap_bytes() / n as usize;
            assert!(per_entry <= limit, "{fw:?}: {per_entry} bytes per entry");
            // `slot` of them are the slab slot; the index holds 1 or 2 keys.
            assert!(per_entry >= slot + 8, "{per_entry}");
        }
    }

    /// Random inserts (colliding keys included), packets, removals, template inserts and
    /// invalidations, and expiry, against a model of the maps and of each entry's deadline.
    fn model<A: Fam>() {
        use std::collections::HashMap;
        #[derive(Debug, Clone, Copy)]
        struct M<A> {
            inbound: FlowKey<A>,
            reply: Option<FlowKey<A>>,
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
            let mut t = ConnTable::<A>::with_hasher(t0, hasher);
            let mut to = Timeouts::default();
            // Seed 2: UDP entries outlive the wheel's 1 024 s revolution.
            to.set_udp(secs(if seed == 2 { 1500 } else { 7 }));
            let mut now_ms = 0u64;
            let mut live: HashMap<ConnId, M<A>> = HashMap::new();
            let mut inbound_map: HashMap<FlowKey<A>, ConnId> = HashMap::new();
            let mut reply_map: HashMap<FlowKey<A>, ConnId> = HashMap::new();
            let mut template_map: HashMap<FlowKey<A>, ConnId> = HashMap::new();
            let mut ids: Vec<ConnId> = Vec::new();
            fn unmap<A: Fam>(map: &mut HashMap<FlowKey<A>, ConnId>, k: &FlowKey<A>, id: ConnId) {
                if map.get(k) == Some(&id) {
                    map.remove(k);
                }
            }
            let forget = |live: &mut HashMap<ConnId, M<A>>,
                          inb: &mut HashMap<FlowKey<A>, ConnId>,
                          rep: &mut HashMap<FlowKey<A>, ConnId>,
                          tpl: &mut HashMap<FlowKey<A>, ConnId>,
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
                        let client = A::client(rng.below(8));
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
                        let tk = template_key(A::client(rng.below(8)));
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
