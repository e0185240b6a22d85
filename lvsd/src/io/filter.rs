//! Classic BPF socket filters for the packet sockets (pure: no sockets, no `unsafe`).
//!
//! # Contract
//!
//! [`Filter::build`] turns a [`FilterSpec`] (the traffic lvsd owns) into a classic BPF
//! program that runs in the kernel on every frame of the socket's interface, before the
//! frame is queued to the socket. The program sees the frame from the Ethernet header on
//! (AF_PACKET, SOCK_RAW) and accepts exactly:
//!
//! - ARP frames (ethertype 0x0806), if [`FilterSpec::arp`] is set;
//! - IPv4 frames (ethertype 0x0800) that are not non-first fragments and whose
//!   (protocol, destination address, destination port) is in [`FilterSpec::inbound`] or
//!   whose (protocol, source address, source port) is in [`FilterSpec::replies`]. The IPv4
//!   header length is taken from IHL (`BPF_MSH`), so frames with IP options match too;
//! - IPv4 non-first fragments (fragment offset != 0, which carry no ports) whose
//!   destination address appears in `inbound` or whose source address appears in
//!   `replies`. The core counts and drops them (lvsd does not reassemble);
//! - ICMP errors lvsd relays (type 3 destination unreachable, 4 source quench, 11 time
//!   exceeded: IPVS's set) whose destination address appears in `inbound` (about a packet
//!   sent from a VIP) or whose source address appears in `replies` (a NAT real server's
//!   error about a packet the director forwarded to it). The type is read at the IHL
//!   offset. Such an error quoting an IPIP packet (a router between the director and a
//!   TUN real server reporting on a tunnelled packet) is accepted whatever its
//!   addresses: it is sent to the DIP, which the spec does not list; the core keeps only
//!   those about its own tunnels. Other ICMP (echo to a VIP, which the kernel answers) is
//!   not copied.
//!
//! IPv6 (ethertype 0x86DD), when the spec has IPv6 tuples or [`FilterSpec::ndp`]: the
//! header is 40 bytes at offset 14 and the program reads the first next-header field only
//! (classic BPF has no loops, so it cannot walk an extension-header chain). It accepts:
//!
//! - next header TCP/UDP (a protocol of the tuples) directly after the fixed header: by
//!   (protocol, destination, destination port) in [`FilterSpec::inbound6`] or (protocol,
//!   source, source port) in [`FilterSpec::replies6`], exactly like IPv4;
//! - next header an extension header (hop-by-hop 0, routing 43, fragment 44, AH 51,
//!   destination options 60, mobility 135, HIP 139, shim6 140): by address alone, to an
//!   `inbound6` address or from a `replies6` address. The core walks the chain and
//!   classifies (a frame that turns out not to be lvsd's is passed to nobody: the kernel
//!   has its own copy); this also covers every fragment, first or not;
//! - ICMPv6 errors (types 1 to 4: destination unreachable, packet too big, time exceeded,
//!   parameter problem) to an `inbound6` address or from a `replies6` address, and such an
//!   error whose quoted IPv6 header (at L4 + 8) has next header IPv6 (41) or IPIP (4),
//!   whatever its addresses: about a packet lvsd tunnelled (IPv6-in-IPv6, IPv4-in-IPv6),
//!   sent to the DIP; the core keeps only those about its own tunnels. Echo and the other
//!   informational types to a VIP are not copied (the kernel answers them);
//! - with [`FilterSpec::ndp`], Neighbor Solicitations (135) and Advertisements (136) with
//!   hop limit 255 (RFC 4861 §7.1.1/§7.1.2: anything else is invalid) and ICMPv6 right
//!   after the fixed header, to any destination: NAs answer lvsd's solicitations
//!   (unicast to its address) or announce a change (to all-nodes ff02::1), NSs carry the
//!   sender's link-layer address (a real server resolving the DIP). The interface only
//!   delivers unicast for its own MAC and the multicast groups it joined, so this is the
//!   link's NDP for this host; the core learns only from messages whose source (NS) or
//!   target (NA) is a neighbour it tracks, everything else is ignored. NDP behind
//!   extension headers is not copied (no neighbour sends that).
//!
//! With IPv6 present, IPv4 ICMP errors quoting an IPv6-in-IPv4 packet (protocol 41) are
//! accepted like those quoting IPIP (6in4 tunnels). A spec without IPv6 (no `*6` tuples,
//! `ndp` false) yields exactly the IPv4-only program, instruction for instruction.
//!
//! Everything else is rejected (never copied to userspace). An empty spec yields a program
//! that rejects everything. Accepted frames are accepted whole (snap length `u32::MAX`), so
//! GSO super-frames of up to 64 KiB arrive intact.
//!
//! Frames whose VLAN tag was not stripped by the driver (ethertype 0x8100 in the frame) are
//! rejected; lvsd expects VLANs as separate interfaces.
//!
//! # Invariants
//!
//! - A program is never longer than [`MAX_INSNS`] (the kernel's `BPF_MAXINSNS`);
//!   [`Filter::build`] returns [`FilterError::TooLong`] instead. An IPv6 address costs
//!   four 32-bit compares where an IPv4 one costs one: about 12 instructions per IPv6
//!   address in each section instead of 2, plus 2 per port either way.
//! - Every conditional jump skips at most one instruction, so the 8-bit jump offsets of
//!   classic BPF can never overflow; long distances use `ja` (32-bit offset).
//! - The output is deterministic: tuples are sorted and de-duplicated first.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use lvs_proto::Protocol;

/// The kernel's limit on classic BPF program length (`BPF_MAXINSNS`).
pub const MAX_INSNS: usize = 4096;

/// One classic BPF instruction, laid out exactly like the kernel's `struct sock_filter`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SockFilter {
    /// Opcode (class | size | mode, or class | op | source).
    pub code: u16,
    /// Jump offset if the condition is true.
    pub jt: u8,
    /// Jump offset if the condition is false.
    pub jf: u8,
    /// Generic operand.
    pub k: u32,
}

// Opcode pieces (linux/bpf_common.h, linux/filter.h).
const BPF_LD: u16 = 0x00;
const BPF_LDX: u16 = 0x01;
const BPF_JMP: u16 = 0x05;
const BPF_RET: u16 = 0x06;
const BPF_W: u16 = 0x00;
const BPF_H: u16 = 0x08;
const BPF_B: u16 = 0x10;
const BPF_ABS: u16 = 0x20;
const BPF_IND: u16 = 0x40;
const BPF_LEN: u16 = 0x80;
const BPF_MSH: u16 = 0xa0;
const BPF_JA: u16 = 0x00;
const BPF_JEQ: u16 = 0x10;
const BPF_JGT: u16 = 0x20;
const BPF_JSET: u16 = 0x40;
const BPF_K: u16 = 0x00;

/// Return value that accepts the whole frame.
const ACCEPT: u32 = u32::MAX;
/// Return value that rejects the frame.
const REJECT: u32 = 0;

// Frame offsets (Ethernet II header, then IPv4).
const OFF_ETHERTYPE: u32 = 12;
const OFF_IP: u32 = 14;
const OFF_IP_FRAG: u32 = OFF_IP + 6;
const OFF_IP_PROTO: u32 = OFF_IP + 9;
const OFF_IP_SRC: u32 = OFF_IP + 12;
const OFF_IP_DST: u32 = OFF_IP + 16;
/// Source port, relative to X = IPv4 header length.
const OFF_L4_SPORT: u32 = OFF_IP;
/// Destination port, relative to X = IPv4 header length.
const OFF_L4_DPORT: u32 = OFF_IP + 2;

const ETHERTYPE_IPV4: u32 = 0x0800;
const ETHERTYPE_ARP: u32 = 0x0806;
const IP_FRAG_OFFSET_MASK: u32 = 0x1fff;
const IPPROTO_ICMP: u32 = 1;
/// ICMP types lvsd relays (`wire::icmp::is_relayed_error`): the type byte is the first of
/// the L4 header, read at X + [`OFF_L4_SPORT`].
const ICMP_RELAYED: [u32; 3] = [3, 4, 11];
const IPPROTO_IPIP: u32 = 4;
/// The protocol byte of the datagram an ICMP error quotes, relative to X.
const OFF_ICMP_QUOTED_PROTO: u32 = OFF_IP + 8 + 9;
/// IPv6 in IPv4 (6in4) / IPv6 next header of an IPv6-in-IPv6 packet.
const IPPROTO_IPV6: u32 = 41;

// IPv6 frame offsets (fixed 40-byte header at 14; the L4 header right after it when the
// next header is not an extension header).
const ETHERTYPE_IPV6: u32 = 0x86dd;
const OFF_IP6_NXT: u32 = OFF_IP + 6;
const OFF_IP6_HLIM: u32 = OFF_IP + 7;
const OFF_IP6_SRC: u32 = OFF_IP + 8;
const OFF_IP6_DST: u32 = OFF_IP + 24;
const OFF_L4_6: u32 = OFF_IP + 40;
const IPPROTO_ICMPV6: u32 = 58;
/// ICMPv6 errors lvsd relays (RFC 4443's four; never NDP).
const ICMPV6_RELAYED: [u32; 4] = [1, 2, 3, 4];
/// Next header of the IPv6 packet an ICMPv6 error quotes (absolute: L4 + 8 + 6).
const OFF_ICMP6_QUOTED_NXT: u32 = OFF_L4_6 + 8 + 6;
const ICMPV6_NS: u32 = 135;
const ICMPV6_NA: u32 = 136;
/// Extension headers the core can walk (`wire::ipv6::next_header`); ESP (50) and "no next
/// header" (59) are not among them.
const IPV6_EXT_HEADERS: [u32; 8] = [0, 43, 44, 51, 60, 135, 139, 140];

/// The traffic lvsd owns on one interface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterSpec {
    /// Traffic towards virtual services: (protocol, destination VIP, destination port).
    pub inbound: Vec<(Protocol, Ipv4Addr, u16)>,
    /// NAT replies from real servers: (protocol, source RIP, source port).
    pub replies: Vec<(Protocol, Ipv4Addr, u16)>,
    /// Accept ARP frames (needed where lvsd resolves next hops itself).
    pub arp: bool,
    /// IPv6 traffic towards virtual services: (protocol, destination VIP, destination
    /// port). Also accepts, by address, frames to the VIP behind extension headers.
    pub inbound6: Vec<(Protocol, Ipv6Addr, u16)>,
    /// IPv6 NAT replies from real servers: (protocol, source RIP, source port).
    pub replies6: Vec<(Protocol, Ipv6Addr, u16)>,
    /// Accept Neighbor Solicitations and Advertisements (module docs): needed where lvsd
    /// resolves IPv6 next hops itself.
    pub ndp: bool,
}

impl FilterSpec {
    /// Whether the program has an IPv6 part (IPv6 tuples or NDP).
    pub fn has_ipv6(&self) -> bool {
        !self.inbound6.is_empty() || !self.replies6.is_empty() || self.ndp
    }
}

/// Why a filter could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// The program would exceed the kernel's limit of [`MAX_INSNS`] instructions.
    #[error(
        "socket filter for {inbound} service tuples and {replies} reply tuples needs {needed} \
         BPF instructions, more than the kernel's limit of {max}; reduce the number of \
         services/real servers on this interface"
    )]
    TooLong {
        /// Instructions the program would need.
        needed: usize,
        /// The limit ([`MAX_INSNS`]).
        max: usize,
        /// Distinct inbound tuples in the spec.
        inbound: usize,
        /// Distinct reply tuples in the spec.
        replies: usize,
    },
}

/// A classic BPF program ready to attach with `SO_ATTACH_FILTER`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Filter(Vec<SockFilter>);

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Filter")
            .field("insns", &self.0.len())
            .finish()
    }
}

impl Filter {
    /// Builds the program for `spec` (see the module docs for what it accepts).
    pub fn build(spec: &FilterSpec) -> Result<Filter, FilterError> {
        let inbound = group(&spec.inbound);
        let replies = group(&spec.replies);
        let mut a = Asm::default();

        a.ld(BPF_H, OFF_ETHERTYPE);
        if spec.arp {
            a.jeq_ret(ETHERTYPE_ARP, ACCEPT);
        }
        if !spec.has_ipv6() {
            if inbound.is_empty() && replies.is_empty() {
                a.ret(REJECT);
                return a.finish(spec);
            }
            // if ethertype != IPv4: reject
            a.jne_ret(ETHERTYPE_IPV4, REJECT);
            a.ipv4(&inbound, &replies, false);
            return a.finish(spec);
        }
        let not_v4 = a.label();
        a.jeq_else_ja(ETHERTYPE_IPV4, not_v4);
        a.ipv4(&inbound, &replies, true);
        a.bind(not_v4);
        a.jne_ret(ETHERTYPE_IPV6, REJECT);
        a.ipv6(&group(&spec.inbound6), &group(&spec.replies6), spec.ndp);
        a.finish(spec)
    }

    /// A program that rejects every frame (attached while a socket is being set up).
    pub fn reject_all() -> Filter {
        Filter(vec![SockFilter {
            code: BPF_RET | BPF_K,
            jt: 0,
            jf: 0,
            k: REJECT,
        }])
    }

    /// The instructions, in order.
    pub fn instructions(&self) -> &[SockFilter] {
        &self.0
    }

    /// Number of instructions.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the program is empty (never true for a built filter).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Asm {
    /// The IPv4 part, after the ethertype check: A is free, the frame is IPv4. With
    /// `tunnel6`, ICMP errors quoting protocol 41 are accepted like those quoting IPIP.
    fn ipv4(&mut self, inbound: &Grouped, replies: &Grouped, tunnel6: bool) {
        let a = self;
        // Non-first fragments: no L4 header, match on addresses only.
        a.ld(BPF_H, OFF_IP_FRAG);
        let to_frag = a.label();
        a.jset_ja(IP_FRAG_OFFSET_MASK, to_frag);
        // ICMP: errors by type and address (section below).
        a.ld(BPF_B, OFF_IP_PROTO);
        let to_icmp = a.label();
        a.jeq_ja(IPPROTO_ICMP, to_icmp);
        // X = IPv4 header length (4 * IHL).
        a.push(BPF_LDX | BPF_B | BPF_MSH, 0, 0, OFF_IP);
        let to_replies = a.label();
        a.section(inbound, OFF_IP_DST, OFF_L4_DPORT, to_replies);
        a.bind(to_replies);
        let to_reject = a.label();
        a.section(replies, OFF_IP_SRC, OFF_L4_SPORT, to_reject);
        a.bind(to_reject);
        a.ret(REJECT);

        a.bind(to_icmp);
        a.push(BPF_LDX | BPF_B | BPF_MSH, 0, 0, OFF_IP);
        a.ld_ind(BPF_B, OFF_L4_SPORT);
        let is_error = a.label();
        for t in ICMP_RELAYED {
            a.jeq_ja(t, is_error);
        }
        a.ret(REJECT);
        a.bind(is_error);
        a.addresses(inbound, replies);
        // An error quoting IPIP (protocol byte of the quoted header, X + 14 + 8 + 9): about
        // a TUN packet, to whichever address the director sent it from. Last, because a
        // frame too short for this load rejects.
        a.ld_ind(BPF_B, OFF_ICMP_QUOTED_PROTO);
        a.jeq_ret(IPPROTO_IPIP, ACCEPT);
        if tunnel6 {
            a.jeq_ret(IPPROTO_IPV6, ACCEPT);
        }
        a.ret(REJECT);

        a.bind(to_frag);
        a.addresses(inbound, replies);
        a.ret(REJECT);
    }

    /// The IPv6 part, after the ethertype check (module docs).
    fn ipv6(&mut self, inbound: &Grouped6, replies: &Grouped6, ndp: bool) {
        let to_icmp = self.label();
        let to_ports = self.label();
        let by_addr = self.label();
        self.ld(BPF_B, OFF_IP6_NXT);
        self.jeq_ja(IPPROTO_ICMPV6, to_icmp);
        if !inbound.is_empty() || !replies.is_empty() {
            let protos: BTreeSet<u8> = inbound
                .values()
                .chain(replies.values())
                .flat_map(|p| p.keys().copied())
                .collect();
            for p in protos {
                self.jeq_ja(u32::from(p), to_ports);
            }
            for e in IPV6_EXT_HEADERS {
                self.jeq_ja(e, by_addr);
            }
        }
        self.ret(REJECT);

        self.bind(to_ports);
        let to_replies = self.label();
        self.section6(inbound, OFF_IP6_DST, OFF_L4_6 + 2, to_replies);
        self.bind(to_replies);
        let to_reject = self.label();
        self.section6(replies, OFF_IP6_SRC, OFF_L4_6, to_reject);
        self.bind(to_reject);
        self.ret(REJECT);

        self.bind(to_icmp);
        self.ld(BPF_B, OFF_L4_6);
        let is_error = self.label();
        let is_ndp = self.label();
        for t in ICMPV6_RELAYED {
            self.jeq_ja(t, is_error);
        }
        if ndp {
            self.jeq_ja(ICMPV6_NS, is_ndp);
            self.jeq_ja(ICMPV6_NA, is_ndp);
        }
        self.ret(REJECT);
        self.bind(is_error);
        // An error quoting a tunnel packet, whatever its addresses; checked only when the
        // frame is long enough (a shorter error still matches by address below).
        self.push(BPF_LD | BPF_W | BPF_LEN, 0, 0, 0);
        self.push(BPF_JMP | BPF_JGT | BPF_K, 1, 0, OFF_ICMP6_QUOTED_NXT);
        self.ja(by_addr);
        self.ld(BPF_B, OFF_ICMP6_QUOTED_NXT);
        self.jeq_ret(IPPROTO_IPV6, ACCEPT);
        self.jeq_ret(IPPROTO_IPIP, ACCEPT);
        self.bind(by_addr);
        for addr in inbound.keys() {
            self.match6(OFF_IP6_DST, addr);
        }
        for addr in replies.keys() {
            self.match6(OFF_IP6_SRC, addr);
        }
        self.ret(REJECT);
        if ndp {
            self.bind(is_ndp);
            self.ld(BPF_B, OFF_IP6_HLIM);
            self.jeq_ret(255, ACCEPT);
            self.ret(REJECT);
        }
    }
}

/// address -> protocol number -> ports, sorted and de-duplicated.
type Grouped = BTreeMap<Ipv4Addr, BTreeMap<u8, Vec<u16>>>;
/// The same for IPv6 addresses.
type Grouped6 = BTreeMap<Ipv6Addr, BTreeMap<u8, Vec<u16>>>;

/// The four 32-bit words of an IPv6 address, as BPF loads them (big-endian).
fn words(addr: &Ipv6Addr) -> [u32; 4] {
    let o = addr.octets();
    [0, 4, 8, 12].map(|i| u32::from_be_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]))
}

fn group<A: Ord + Copy>(tuples: &[(Protocol, A, u16)]) -> BTreeMap<A, BTreeMap<u8, Vec<u16>>> {
    let mut out: BTreeMap<A, BTreeMap<u8, Vec<u16>>> = BTreeMap::new();
    for (proto, addr, port) in tuples {
        out.entry(*addr)
            .or_default()
            .entry(proto.number())
            .or_default()
            .push(*port);
    }
    for protos in out.values_mut() {
        for ports in protos.values_mut() {
            ports.sort_unstable();
            ports.dedup();
        }
    }
    out
}

/// Distinct tuples in a grouped spec (for error messages).
fn count<A>(g: &BTreeMap<A, BTreeMap<u8, Vec<u16>>>) -> usize {
    g.values().flat_map(|p| p.values()).map(Vec::len).sum()
}

/// A tiny assembler: instructions plus forward `ja` fix-ups to labels.
#[derive(Default)]
struct Asm {
    insns: Vec<SockFilter>,
    /// Label id -> bound instruction index.
    labels: Vec<Option<usize>>,
    /// (index of a `ja` instruction, label id).
    fixups: Vec<(usize, usize)>,
}

impl Asm {
    fn push(&mut self, code: u16, jt: u8, jf: u8, k: u32) {
        self.insns.push(SockFilter { code, jt, jf, k });
    }

    fn ld(&mut self, size: u16, off: u32) {
        self.push(BPF_LD | size | BPF_ABS, 0, 0, off);
    }

    fn ld_ind(&mut self, size: u16, off: u32) {
        self.push(BPF_LD | size | BPF_IND, 0, 0, off);
    }

    fn ret(&mut self, k: u32) {
        self.push(BPF_RET | BPF_K, 0, 0, k);
    }

    /// `if A == k { return r }`
    fn jeq_ret(&mut self, k: u32, r: u32) {
        self.push(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, k);
        self.ret(r);
    }

    /// `if A != k { return r }`
    fn jne_ret(&mut self, k: u32, r: u32) {
        self.push(BPF_JMP | BPF_JEQ | BPF_K, 1, 0, k);
        self.ret(r);
    }

    /// `if A == k { fall through } else { goto label }`
    fn jeq_else_ja(&mut self, k: u32, label: usize) {
        self.push(BPF_JMP | BPF_JEQ | BPF_K, 1, 0, k);
        self.ja(label);
    }

    /// `if A == k { goto label }`
    fn jeq_ja(&mut self, k: u32, label: usize) {
        self.push(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, k);
        self.ja(label);
    }

    /// `if A & k != 0 { goto label }`
    fn jset_ja(&mut self, k: u32, label: usize) {
        self.push(BPF_JMP | BPF_JSET | BPF_K, 0, 1, k);
        self.ja(label);
    }

    fn ja(&mut self, label: usize) {
        self.fixups.push((self.insns.len(), label));
        self.push(BPF_JMP | BPF_JA, 0, 0, 0);
    }

    fn label(&mut self) -> usize {
        self.labels.push(None);
        self.labels.len() - 1
    }

    fn bind(&mut self, label: usize) {
        if let Some(slot) = self.labels.get_mut(label) {
            *slot = Some(self.insns.len());
        }
    }

    /// Accepts if the destination address is one of `inbound`'s or the source address one
    /// of `replies`'; falls through otherwise.
    fn addresses(&mut self, inbound: &Grouped, replies: &Grouped) {
        if !inbound.is_empty() {
            self.ld(BPF_W, OFF_IP_DST);
            for addr in inbound.keys() {
                self.jeq_ret(u32::from(*addr), ACCEPT);
            }
        }
        if !replies.is_empty() {
            self.ld(BPF_W, OFF_IP_SRC);
            for addr in replies.keys() {
                self.jeq_ret(u32::from(*addr), ACCEPT);
            }
        }
    }

    /// Matches (proto, addr at `addr_off`, port at X + `port_off`) against `g`; accepts on a
    /// match, otherwise continues at `done`. Expects X = IPv4 header length.
    fn section(&mut self, g: &Grouped, addr_off: u32, port_off: u32, done: usize) {
        if g.is_empty() {
            return;
        }
        self.ld(BPF_W, addr_off);
        for (addr, protos) in g {
            // A holds the address here (only reached through the jeq's false path).
            let next_addr = self.label();
            self.jeq_else_ja(u32::from(*addr), next_addr);
            self.ld(BPF_B, OFF_IP_PROTO);
            for (proto, ports) in protos {
                let next_proto = self.label();
                self.jeq_else_ja(u32::from(*proto), next_proto);
                self.ld_ind(BPF_H, port_off);
                for port in ports {
                    self.jeq_ret(u32::from(*port), ACCEPT);
                }
                // Right address and protocol, other port: addresses are distinct, so no
                // other block of this section can match.
                self.ja(done);
                self.bind(next_proto);
            }
            self.ja(done);
            self.bind(next_addr);
        }
        // Falls through to `done`, which the caller binds right here.
    }

    /// `if the 16 bytes at abs_off == addr { return ACCEPT }`, else falls through.
    fn match6(&mut self, abs_off: u32, addr: &Ipv6Addr) {
        let next = self.label();
        let w = words(addr);
        for (i, word) in w.iter().enumerate().take(3) {
            self.ld(BPF_W, abs_off + 4 * i as u32);
            self.jeq_else_ja(*word, next);
        }
        self.ld(BPF_W, abs_off + 12);
        self.jeq_ret(w[3], ACCEPT);
        self.bind(next);
    }

    /// The IPv6 [`Asm::section`]: matches (next header, address at `addr_off`, port at the
    /// absolute `port_off`) against `g`; accepts on a match, else continues at `done`.
    fn section6(&mut self, g: &Grouped6, addr_off: u32, port_off: u32, done: usize) {
        for (addr, protos) in g {
            let next_addr = self.label();
            for (i, word) in words(addr).iter().enumerate() {
                self.ld(BPF_W, addr_off + 4 * i as u32);
                self.jeq_else_ja(*word, next_addr);
            }
            self.ld(BPF_B, OFF_IP6_NXT);
            for (proto, ports) in protos {
                let next_proto = self.label();
                self.jeq_else_ja(u32::from(*proto), next_proto);
                self.ld(BPF_H, port_off);
                for port in ports {
                    self.jeq_ret(u32::from(*port), ACCEPT);
                }
                self.ja(done);
                self.bind(next_proto);
            }
            self.ja(done);
            self.bind(next_addr);
        }
    }

    fn finish(mut self, spec: &FilterSpec) -> Result<Filter, FilterError> {
        if self.insns.len() > MAX_INSNS {
            return Err(FilterError::TooLong {
                needed: self.insns.len(),
                max: MAX_INSNS,
                inbound: count(&group(&spec.inbound)) + count(&group(&spec.inbound6)),
                replies: count(&group(&spec.replies)) + count(&group(&spec.replies6)),
            });
        }
        for (at, label) in std::mem::take(&mut self.fixups) {
            // Labels are always bound before finish and always lie ahead of their jumps;
            // `ja` jumps to at + 1 + k.
            let target = self.labels.get(label).copied().flatten().unwrap_or(at + 1);
            let k = target.saturating_sub(at + 1);
            if let Some(insn) = self.insns.get_mut(at) {
                insn.k = u32::try_from(k).unwrap_or(0);
            }
        }
        Ok(Filter(self.insns))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A classic BPF interpreter for the subset `Filter::build` emits. Returns the filter's
    /// return value (0 = reject). Loads past the end of the frame reject, like the kernel.
    pub(crate) fn run(prog: &[SockFilter], pkt: &[u8]) -> u32 {
        let mut a: u32 = 0;
        let mut x: u32 = 0;
        let mut pc = 0usize;
        let load = |off: usize, size: usize| -> Option<u32> {
            let b = pkt.get(off..off + size)?;
            Some(b.iter().fold(0u32, |acc, &v| (acc << 8) | u32::from(v)))
        };
        for _ in 0..100_000 {
            let Some(i) = prog.get(pc) else {
                panic!("pc {pc} ran off the end of the program")
            };
            pc += 1;
            let size = match i.code & 0x18 {
                BPF_W => 4,
                BPF_H => 2,
                _ => 1,
            };
            match i.code & 0x07 {
                BPF_LD => {
                    let off = match i.code & 0xe0 {
                        BPF_ABS => i.k as usize,
                        BPF_IND => (x.wrapping_add(i.k)) as usize,
                        BPF_LEN => {
                            assert_eq!(i.code, BPF_LD | BPF_W | BPF_LEN);
                            a = u32::try_from(pkt.len()).unwrap_or(u32::MAX);
                            continue;
                        }
                        m => panic!("unsupported ld mode {m:#x}"),
                    };
                    match load(off, size) {
                        Some(v) => a = v,
                        None => return 0,
                    }
                }
                BPF_LDX => {
                    assert_eq!(i.code, BPF_LDX | BPF_B | BPF_MSH, "unsupported ldx");
                    match load(i.k as usize, 1) {
                        Some(v) => x = (v & 0xf) * 4,
                        None => return 0,
                    }
                }
                BPF_JMP => {
                    let op = i.code & 0xf0;
                    if op == BPF_JA {
                        pc += i.k as usize;
                    } else {
                        let cond = match op {
                            BPF_JEQ => a == i.k,
                            BPF_JSET => a & i.k != 0,
                            BPF_JGT => a > i.k,
                            o => panic!("unsupported jmp {o:#x}"),
                        };
                        pc += usize::from(if cond { i.jt } else { i.jf });
                    }
                }
                BPF_RET => return i.k,
                c => panic!("unsupported class {c:#x}"),
            }
        }
        panic!("program did not terminate")
    }

    const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
    const VIP2: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 11);
    const RIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 21);
    const CIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

    /// Builds an Ethernet + IPv4 + L4 frame (checksums are irrelevant to the filter).
    pub(crate) fn ipv4_frame(
        proto: u8,
        src: Ipv4Addr,
        sport: u16,
        dst: Ipv4Addr,
        dport: u16,
        options: usize,
        frag: u16,
    ) -> Vec<u8> {
        assert_eq!(options % 4, 0);
        let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00];
        let ihl = 5 + options / 4;
        let l4_len = if proto == 6 { 20 } else { 8 };
        let total = ihl * 4 + l4_len + 4;
        f.push(0x40 | ihl as u8);
        f.push(0);
        f.extend_from_slice(&(total as u16).to_be_bytes());
        f.extend_from_slice(&[0x12, 0x34]);
        f.extend_from_slice(&frag.to_be_bytes());
        f.push(64);
        f.push(proto);
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(&src.octets());
        f.extend_from_slice(&dst.octets());
        // Options: NOPs (type 1), then EOL is unnecessary because they fill the header.
        f.extend(std::iter::repeat_n(1u8, options));
        if frag & 0x1fff != 0 {
            // Payload of a later fragment: arbitrary bytes where ports would be.
            f.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        } else {
            f.extend_from_slice(&sport.to_be_bytes());
            f.extend_from_slice(&dport.to_be_bytes());
            f.extend(std::iter::repeat_n(0u8, l4_len - 4));
        }
        f.extend_from_slice(b"data");
        f
    }

    pub(crate) fn arp_frame() -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x08, 0x06]);
        f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        f.extend_from_slice(&[0x02, 0, 0, 0, 0, 2]);
        f.extend_from_slice(&CIP.octets());
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&VIP.octets());
        f
    }

    fn spec() -> FilterSpec {
        FilterSpec {
            inbound: vec![
                (Protocol::Tcp, VIP, 80),
                (Protocol::Tcp, VIP, 443),
                (Protocol::Udp, VIP, 53),
                (Protocol::Tcp, VIP2, 80),
                (Protocol::Tcp, VIP, 80), // duplicate
            ],
            replies: vec![(Protocol::Tcp, RIP, 8080), (Protocol::Udp, RIP, 5353)],
            arp: true,
            ..FilterSpec::default()
        }
    }

    fn accepts(f: &Filter, pkt: &[u8]) -> bool {
        run(f.instructions(), pkt) != 0
    }

    #[test]
    fn accepts_exactly_the_owned_tuples() {
        let f = Filter::build(&spec()).expect("build");
        let t = |src, sport, dst, dport| ipv4_frame(6, src, sport, dst, dport, 0, 0);
        let u = |src, sport, dst, dport| ipv4_frame(17, src, sport, dst, dport, 0, 0);
        // Inbound to VIP ports.
        assert!(accepts(&f, &t(CIP, 40000, VIP, 80)));
        assert!(accepts(&f, &t(CIP, 40000, VIP, 443)));
        assert!(accepts(&f, &t(CIP, 40000, VIP2, 80)));
        assert!(accepts(&f, &u(CIP, 40000, VIP, 53)));
        // Replies from RIP ports.
        assert!(accepts(&f, &t(RIP, 8080, CIP, 40000)));
        assert!(accepts(&f, &u(RIP, 5353, CIP, 40000)));
        // Other port, other protocol, other address.
        assert!(!accepts(&f, &t(CIP, 40000, VIP, 22)));
        assert!(!accepts(&f, &u(CIP, 40000, VIP, 80)));
        assert!(!accepts(&f, &t(CIP, 40000, VIP, 53)));
        assert!(!accepts(&f, &t(CIP, 40000, VIP2, 443)));
        assert!(!accepts(
            &f,
            &t(CIP, 40000, Ipv4Addr::new(203, 0, 113, 12), 80)
        ));
        assert!(!accepts(&f, &t(RIP, 8081, CIP, 40000)));
        assert!(!accepts(&f, &u(RIP, 8080, CIP, 40000)));
        assert!(!accepts(&f, &t(CIP, 8080, RIP, 40000)));
        // Source port 80 from a VIP is not an inbound match (ports are directional).
        assert!(!accepts(&f, &t(VIP, 80, CIP, 40000)));
        // A VIP port whose address block fails still checks replies.
        assert!(accepts(&f, &t(RIP, 8080, VIP, 22)));
        // Other protocol to the VIP (ICMP).
        assert!(!accepts(&f, &ipv4_frame(1, CIP, 0, VIP, 80, 0, 0)));
    }

    /// ICMP frame of `typ`/`code` (the filter reads the type where a source port would be).
    fn icmp(typ: u8, code: u8, src: Ipv4Addr, dst: Ipv4Addr, options: usize) -> Vec<u8> {
        ipv4_frame(1, src, u16::from_be_bytes([typ, code]), dst, 0, options, 0)
    }

    #[test]
    fn icmp_errors_to_vips_and_from_nat_real_servers() {
        let f = Filter::build(&spec()).expect("build");
        let router = Ipv4Addr::new(198, 51, 100, 254);
        // Errors IPVS relays: to a VIP address (any of its services)...
        for (t, c) in [(3, 4), (3, 1), (3, 3), (4, 0), (11, 0), (11, 1)] {
            assert!(accepts(&f, &icmp(t, c, router, VIP, 0)), "{t}/{c}");
            assert!(accepts(&f, &icmp(t, c, router, VIP2, 0)), "{t}/{c}");
            // ...and from a NAT real server's address, to anyone.
            assert!(accepts(&f, &icmp(t, c, RIP, CIP, 0)), "{t}/{c}");
        }
        // Options: the type is read at the IHL offset.
        for opts in [4, 8, 40] {
            assert!(accepts(&f, &icmp(3, 4, router, VIP, opts)));
            assert!(!accepts(&f, &icmp(8, 0, router, VIP, opts)));
        }
        // Echo and the other types stay with the kernel; so do errors elsewhere.
        for t in [0, 5, 8, 12, 13] {
            assert!(!accepts(&f, &icmp(t, 0, router, VIP, 0)), "{t}");
            assert!(!accepts(&f, &icmp(t, 0, RIP, CIP, 0)), "{t}");
        }
        assert!(!accepts(&f, &icmp(3, 3, router, CIP, 0)));
        assert!(!accepts(&f, &icmp(3, 3, CIP, RIP, 0)));
        assert!(!accepts(&f, &icmp(3, 3, VIP, CIP, 0)));
        // A frame cut before the type byte: rejected.
        let full = icmp(3, 3, router, VIP, 0);
        assert!(!accepts(&f, &full[..34]));
        assert!(accepts(&f, &full[..35]));
        // Errors quoting IPIP (about a TUN packet), to the DIP: accepted.
        let dip = Ipv4Addr::new(192, 0, 2, 1);
        let mut ipip = icmp(3, 4, Ipv4Addr::new(192, 0, 2, 254), dip, 0);
        ipip.truncate(14 + 20 + 8);
        ipip.extend([0x45, 0, 0, 60, 0, 0, 0x40, 0, 64, 4, 0, 0]);
        assert!(accepts(&f, &ipip));
        // ...not when the quote is of another protocol, or cut before its protocol byte.
        let mut udp = ipip.clone();
        udp[14 + 20 + 8 + 9] = 17;
        assert!(!accepts(&f, &udp));
        assert!(!accepts(&f, &ipip[..14 + 20 + 8 + 9]));
        // Non-first fragments of ICMP: by address, like any fragment.
        assert!(accepts(&f, &ipv4_frame(1, router, 0, VIP, 0, 0, 185)));
        // An inbound-only spec admits no ICMP from anywhere but to its VIPs.
        let i = Filter::build(&FilterSpec {
            inbound: vec![(Protocol::Udp, VIP, 53)],
            ..FilterSpec::default()
        })
        .expect("build");
        assert!(accepts(&i, &icmp(3, 3, router, VIP, 0)));
        assert!(!accepts(&i, &icmp(3, 3, RIP, CIP, 0)));
    }

    #[test]
    fn arp_only_when_asked() {
        let with = Filter::build(&spec()).expect("build");
        assert!(accepts(&with, &arp_frame()));
        let without = Filter::build(&FilterSpec {
            arp: false,
            ..spec()
        })
        .expect("build");
        assert!(!accepts(&without, &arp_frame()));
        let only_arp = Filter::build(&FilterSpec {
            arp: true,
            ..FilterSpec::default()
        })
        .expect("build");
        assert!(accepts(&only_arp, &arp_frame()));
        assert!(!accepts(&only_arp, &ipv4_frame(6, CIP, 1, VIP, 80, 0, 0)));
    }

    #[test]
    fn ip_options_use_ihl() {
        let f = Filter::build(&spec()).expect("build");
        for opts in [4, 8, 40] {
            assert!(accepts(&f, &ipv4_frame(6, CIP, 40000, VIP, 80, opts, 0)));
            assert!(!accepts(&f, &ipv4_frame(6, CIP, 40000, VIP, 81, opts, 0)));
            assert!(accepts(&f, &ipv4_frame(6, RIP, 8080, CIP, 1, opts, 0)));
        }
        // With 4 bytes of options, the bytes at the no-options port offset are option
        // NOPs (0x0101): make sure a port of 0x0101 is not falsely matched there.
        let f257 = Filter::build(&FilterSpec {
            inbound: vec![(Protocol::Tcp, VIP, 0x0101)],
            ..FilterSpec::default()
        })
        .expect("build");
        assert!(!accepts(&f257, &ipv4_frame(6, CIP, 9, VIP, 80, 8, 0)));
        assert!(accepts(&f257, &ipv4_frame(6, CIP, 9, VIP, 0x0101, 8, 0)));
    }

    #[test]
    fn fragments() {
        let f = Filter::build(&spec()).expect("build");
        // Later fragments (offset != 0) to/from listed addresses: accepted.
        assert!(accepts(&f, &ipv4_frame(6, CIP, 0, VIP, 0, 0, 185)));
        assert!(accepts(
            &f,
            &ipv4_frame(17, CIP, 0, VIP2, 0, 0, 0x2000 | 185)
        ));
        assert!(accepts(&f, &ipv4_frame(6, RIP, 0, CIP, 0, 0, 1)));
        // ... but not for unlisted addresses.
        assert!(!accepts(&f, &ipv4_frame(6, CIP, 0, RIP, 0, 0, 185)));
        // A first fragment (MF set, offset 0) carries ports: normal matching.
        assert!(accepts(&f, &ipv4_frame(6, CIP, 1, VIP, 80, 0, 0x2000)));
        assert!(!accepts(&f, &ipv4_frame(6, CIP, 1, VIP, 81, 0, 0x2000)));
        // DF set is not a fragment.
        assert!(accepts(&f, &ipv4_frame(6, CIP, 1, VIP, 80, 0, 0x4000)));
    }

    #[test]
    fn other_traffic_rejected() {
        let f = Filter::build(&spec()).expect("build");
        // IPv6 ethertype.
        let mut v6 = ipv4_frame(6, CIP, 1, VIP, 80, 0, 0);
        v6[12..14].copy_from_slice(&[0x86, 0xdd]);
        assert!(!accepts(&f, &v6));
        // In-band VLAN tag.
        let mut vlan = ipv4_frame(6, CIP, 1, VIP, 80, 0, 0);
        vlan[12..14].copy_from_slice(&[0x81, 0x00]);
        assert!(!accepts(&f, &vlan));
        // Truncated frames reject (loads past the end).
        let full = ipv4_frame(6, CIP, 1, VIP, 80, 0, 0);
        assert!(!accepts(&f, &full[..36]));
        assert!(!accepts(&f, &full[..10]));
        assert!(!accepts(&f, &[]));
    }

    #[test]
    fn empty_spec_rejects_everything() {
        let f = Filter::build(&FilterSpec::default()).expect("build");
        assert_eq!(f.len(), 2);
        assert!(!accepts(&f, &arp_frame()));
        assert!(!accepts(&f, &ipv4_frame(6, CIP, 1, VIP, 80, 0, 0)));
        assert!(!accepts(&Filter::reject_all(), &arp_frame()));
    }

    #[test]
    fn only_replies_or_only_inbound() {
        let r = Filter::build(&FilterSpec {
            replies: vec![(Protocol::Tcp, RIP, 8080)],
            ..FilterSpec::default()
        })
        .expect("build");
        assert!(accepts(&r, &ipv4_frame(6, RIP, 8080, CIP, 1, 0, 0)));
        assert!(!accepts(&r, &ipv4_frame(6, CIP, 1, VIP, 80, 0, 0)));
        assert!(accepts(&r, &ipv4_frame(6, RIP, 0, CIP, 0, 0, 100)));
        assert!(!accepts(&r, &ipv4_frame(6, CIP, 0, VIP, 0, 0, 100)));
        let i = Filter::build(&FilterSpec {
            inbound: vec![(Protocol::Udp, VIP, 53)],
            ..FilterSpec::default()
        })
        .expect("build");
        assert!(accepts(&i, &ipv4_frame(17, CIP, 1, VIP, 53, 0, 0)));
        assert!(!accepts(&i, &ipv4_frame(17, RIP, 53, CIP, 1, 0, 0)));
    }

    #[test]
    fn many_tuples_and_the_limit() {
        // 1000 tuples over 50 addresses: far jumps everywhere, still correct.
        let mut inbound = Vec::new();
        for a in 0..50u8 {
            for p in 0..20u16 {
                inbound.push((Protocol::Tcp, Ipv4Addr::new(203, 0, 113, a), 1000 + p));
            }
        }
        let spec = FilterSpec {
            inbound,
            ..FilterSpec::default()
        };
        let f = Filter::build(&spec).expect("build");
        assert!(f.len() <= MAX_INSNS);
        for a in [0u8, 17, 49] {
            for p in [1000u16, 1019] {
                let d = Ipv4Addr::new(203, 0, 113, a);
                assert!(accepts(&f, &ipv4_frame(6, CIP, 1, d, p, 0, 0)));
            }
            let d = Ipv4Addr::new(203, 0, 113, a);
            assert!(!accepts(&f, &ipv4_frame(6, CIP, 1, d, 1020, 0, 0)));
        }
        assert!(!accepts(
            &f,
            &ipv4_frame(6, CIP, 1, Ipv4Addr::new(203, 0, 113, 50), 1000, 0, 0)
        ));
        // Every conditional jump stays within the program.
        for (i, insn) in f.instructions().iter().enumerate() {
            if insn.code & 0x07 == BPF_JMP {
                let far = if insn.code & 0xf0 == BPF_JA {
                    insn.k as usize
                } else {
                    usize::from(insn.jt.max(insn.jf))
                };
                assert!(i + 1 + far < f.len(), "jump at {i} leaves the program");
            }
        }

        let mut huge = Vec::new();
        for a in 0..=255u8 {
            for p in 0..10u16 {
                huge.push((Protocol::Tcp, Ipv4Addr::new(10, 0, 0, a), p));
            }
        }
        let err = Filter::build(&FilterSpec {
            inbound: huge,
            ..FilterSpec::default()
        })
        .expect_err("too long");
        let msg = err.to_string();
        assert!(msg.contains("4096"), "{msg}");
        assert!(msg.contains("2560 service tuples"), "{msg}");
    }

    const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 0x10);
    const VIP6B: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 0x11);
    const RIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, 0x11);
    const CIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 0x10);
    const DIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, 1);

    /// Builds an Ethernet + IPv6 frame: `exts` extension headers (8 bytes each, in
    /// order), then `proto` with `l4` as its first bytes, then padding.
    pub(crate) fn ipv6_frame(
        exts: &[u8],
        proto: u8,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        hop_limit: u8,
        l4: &[u8],
    ) -> Vec<u8> {
        let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x86, 0xdd];
        let payload = exts.len() * 8 + l4.len() + 20;
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&(payload as u16).to_be_bytes());
        f.push(exts.first().copied().unwrap_or(proto));
        f.push(hop_limit);
        f.extend_from_slice(&src.octets());
        f.extend_from_slice(&dst.octets());
        for (i, _) in exts.iter().enumerate() {
            let next = exts.get(i + 1).copied().unwrap_or(proto);
            // Fragment header: offset 185 (a later fragment); others: 6 bytes of padding.
            f.extend_from_slice(&[next, 0, 0x05, 0xc8, 0, 0, 0, 1]);
        }
        f.extend_from_slice(l4);
        f.extend(std::iter::repeat_n(0u8, 20));
        f
    }

    /// TCP/UDP ports as the first L4 bytes.
    fn ports(sport: u16, dport: u16) -> Vec<u8> {
        let mut v = sport.to_be_bytes().to_vec();
        v.extend_from_slice(&dport.to_be_bytes());
        v
    }

    /// An ICMPv6 message of `typ`, quoting (for errors) an IPv6 header with next header
    /// `quoted_next`.
    pub(crate) fn icmp6(typ: u8, src: Ipv6Addr, dst: Ipv6Addr, quoted_next: u8) -> Vec<u8> {
        let mut l4 = vec![typ, 0, 0, 0, 0, 0, 0, 0];
        l4.extend_from_slice(&[0x60, 0, 0, 0, 0, 20, quoted_next, 64]);
        l4.extend_from_slice(&dst.octets());
        l4.extend_from_slice(&CIP6.octets());
        ipv6_frame(&[], 58, src, dst, 64, &l4)
    }

    /// A Neighbor Solicitation (135) or Advertisement (136) with `hop_limit`.
    pub(crate) fn ndp6(typ: u8, src: Ipv6Addr, dst: Ipv6Addr, hop_limit: u8) -> Vec<u8> {
        let mut l4 = vec![typ, 0, 0, 0, 0, 0, 0, 0];
        l4.extend_from_slice(&DIP6.octets());
        ipv6_frame(&[], 58, src, dst, hop_limit, &l4)
    }

    fn spec6() -> FilterSpec {
        FilterSpec {
            inbound6: vec![
                (Protocol::Tcp, VIP6, 80),
                (Protocol::Tcp, VIP6, 443),
                (Protocol::Udp, VIP6, 53),
                (Protocol::Tcp, VIP6B, 80),
            ],
            replies6: vec![(Protocol::Tcp, RIP6, 8080), (Protocol::Udp, RIP6, 5353)],
            ndp: true,
            ..spec()
        }
    }

    #[test]
    fn ipv6_accepts_exactly_the_owned_tuples() {
        let f = Filter::build(&spec6()).expect("build");
        let t = |src, sport, dst, dport| ipv6_frame(&[], 6, src, dst, 64, &ports(sport, dport));
        let u = |src, sport, dst, dport| ipv6_frame(&[], 17, src, dst, 64, &ports(sport, dport));
        assert!(accepts(&f, &t(CIP6, 40000, VIP6, 80)));
        assert!(accepts(&f, &t(CIP6, 40000, VIP6, 443)));
        assert!(accepts(&f, &t(CIP6, 40000, VIP6B, 80)));
        assert!(accepts(&f, &u(CIP6, 40000, VIP6, 53)));
        assert!(accepts(&f, &t(RIP6, 8080, CIP6, 40000)));
        assert!(accepts(&f, &u(RIP6, 5353, CIP6, 40000)));
        assert!(!accepts(&f, &t(CIP6, 40000, VIP6, 22)));
        assert!(!accepts(&f, &u(CIP6, 40000, VIP6, 80)));
        assert!(!accepts(&f, &t(CIP6, 40000, VIP6B, 443)));
        // An address differing from a VIP in any one of its four words.
        for i in 0..8 {
            let mut seg = VIP6.segments();
            seg[i] ^= 0x100;
            assert!(!accepts(&f, &t(CIP6, 1, Ipv6Addr::from(seg), 80)), "{i}");
        }
        assert!(!accepts(&f, &t(RIP6, 8081, CIP6, 40000)));
        assert!(!accepts(&f, &u(RIP6, 8080, CIP6, 40000)));
        assert!(!accepts(&f, &t(VIP6, 80, CIP6, 40000)));
        assert!(accepts(&f, &t(RIP6, 8080, VIP6, 22)));
        // Another upper-layer protocol to a VIP (SCTP, GRE, ESP): not lvsd's.
        for p in [132u8, 47, 50, 59] {
            assert!(
                !accepts(&f, &ipv6_frame(&[], p, CIP6, VIP6, 64, &ports(1, 80))),
                "{p}"
            );
        }
        // The IPv4 part is unchanged by the IPv6 one.
        assert!(accepts(&f, &ipv4_frame(6, CIP, 40000, VIP, 80, 0, 0)));
        assert!(!accepts(&f, &ipv4_frame(6, CIP, 40000, VIP, 22, 0, 0)));
        assert!(accepts(&f, &arp_frame()));
        // Truncated: cut inside the destination address or before the port.
        let full = t(CIP6, 40000, VIP6, 80);
        assert!(!accepts(&f, &full[..50]));
        assert!(!accepts(&f, &full[..57]));
        assert!(accepts(&f, &full[..58]));
        // VLAN-tagged IPv6: rejected.
        let mut vlan = full.clone();
        vlan[12..14].copy_from_slice(&[0x81, 0x00]);
        assert!(!accepts(&f, &vlan));
    }

    #[test]
    fn ipv6_extension_headers_match_by_address() {
        let f = Filter::build(&spec6()).expect("build");
        // Behind any walkable extension header, to a VIP: accepted whatever the port or
        // the protocol (the core classifies); likewise from a NAT RIP.
        for ext in IPV6_EXT_HEADERS {
            let ext = ext as u8;
            for (src, dst) in [(CIP6, VIP6), (CIP6, VIP6B), (RIP6, CIP6)] {
                let fr = ipv6_frame(&[ext], 6, src, dst, 64, &ports(1, 9999));
                assert!(accepts(&f, &fr), "{ext} {src} -> {dst}");
            }
            let fr = ipv6_frame(&[ext], 6, CIP6, RIP6, 64, &ports(1, 80));
            assert!(!accepts(&f, &fr), "{ext} to an unlisted address");
        }
        // Chains, fragments (first or later) included.
        let chain = ipv6_frame(&[0, 60, 44], 17, CIP6, VIP6, 64, &ports(1, 53));
        assert!(accepts(&f, &chain));
        // ESP and "no next header" are not walkable: not accepted.
        assert!(!accepts(&f, &ipv6_frame(&[], 50, CIP6, VIP6, 64, &[0; 8])));
        // An inbound-only spec: by destination only.
        let i = Filter::build(&FilterSpec {
            inbound6: vec![(Protocol::Udp, VIP6, 53)],
            ..FilterSpec::default()
        })
        .expect("build");
        assert!(accepts(
            &i,
            &ipv6_frame(&[44], 17, CIP6, VIP6, 64, &ports(1, 2))
        ));
        assert!(!accepts(
            &i,
            &ipv6_frame(&[44], 17, RIP6, CIP6, 64, &ports(1, 2))
        ));
        // NDP-only spec: no tuple, so nothing by address.
        let n = Filter::build(&FilterSpec {
            ndp: true,
            ..FilterSpec::default()
        })
        .expect("build");
        assert!(!accepts(
            &n,
            &ipv6_frame(&[0], 6, CIP6, VIP6, 64, &ports(1, 80))
        ));
    }

    #[test]
    fn icmpv6_errors_tunnels_and_echo() {
        let f = Filter::build(&spec6()).expect("build");
        let router = Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 1);
        for t in [1, 2, 3, 4] {
            assert!(accepts(&f, &icmp6(t, router, VIP6, 6)), "{t}");
            assert!(accepts(&f, &icmp6(t, router, VIP6B, 17)), "{t}");
            assert!(accepts(&f, &icmp6(t, RIP6, CIP6, 6)), "{t}");
            // Elsewhere: not lvsd's.
            assert!(!accepts(&f, &icmp6(t, router, CIP6, 6)), "{t}");
            assert!(!accepts(&f, &icmp6(t, CIP6, RIP6, 6)), "{t}");
            // Quoting a tunnel packet (6in6, 4in6), to the DIP: accepted.
            assert!(accepts(&f, &icmp6(t, router, DIP6, 41)), "{t}");
            assert!(accepts(&f, &icmp6(t, router, DIP6, 4)), "{t}");
        }
        // Informational types (echo, MLD, router discovery, redirect): the kernel's.
        for t in [128, 129, 130, 133, 134, 137] {
            assert!(!accepts(&f, &icmp6(t, router, VIP6, 41)), "{t}");
            assert!(!accepts(&f, &icmp6(t, RIP6, CIP6, 6)), "{t}");
        }
        assert!(!accepts(&f, &icmp6(0, router, VIP6, 6)));
        assert!(!accepts(&f, &icmp6(5, router, VIP6, 6)));
        // Short errors: cut before the quoted next header, still by address; a tunnel
        // error that short is not recognised.
        let short = icmp6(1, router, VIP6, 6);
        assert!(accepts(&f, &short[..62]));
        assert!(accepts(&f, &short[..55]));
        assert!(!accepts(&f, &short[..54]));
        let tunnel = icmp6(2, router, DIP6, 41);
        assert!(accepts(&f, &tunnel[..69]));
        assert!(!accepts(&f, &tunnel[..68]));
        // IPv4 errors quoting 6in4 (protocol 41) with IPv6 present; not without.
        let dip = Ipv4Addr::new(192, 0, 2, 1);
        let mut sixin4 = icmp(3, 4, Ipv4Addr::new(192, 0, 2, 254), dip, 0);
        sixin4.truncate(14 + 20 + 8);
        sixin4.extend([0x45, 0, 0, 60, 0, 0, 0x40, 0, 64, 41, 0, 0]);
        assert!(accepts(&f, &sixin4));
        assert!(!accepts(&Filter::build(&spec()).expect("build"), &sixin4));
        let mut ipip = sixin4.clone();
        ipip[14 + 20 + 8 + 9] = 4;
        assert!(accepts(&f, &ipip));
    }

    #[test]
    fn ndp_only_when_asked_and_with_hop_limit_255() {
        let f = Filter::build(&spec6()).expect("build");
        let rs_ll = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x11);
        let dir_ll = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
        let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
        let solicited = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00, 1);
        for (t, dst) in [
            (136, dir_ll),
            (136, all_nodes),
            (136, DIP6),
            (135, solicited),
        ] {
            assert!(accepts(&f, &ndp6(t, rs_ll, dst, 255)), "{t} {dst}");
            assert!(!accepts(&f, &ndp6(t, rs_ll, dst, 254)), "{t} {dst}");
        }
        // Behind an extension header: not NDP lvsd reads.
        let mut l4 = vec![136, 0, 0, 0, 0, 0, 0, 0];
        l4.extend_from_slice(&DIP6.octets());
        assert!(!accepts(&f, &ipv6_frame(&[0], 58, rs_ll, dir_ll, 255, &l4)));
        let without = Filter::build(&FilterSpec {
            ndp: false,
            ..spec6()
        })
        .expect("build");
        assert!(!accepts(&without, &ndp6(136, rs_ll, dir_ll, 255)));
        assert!(!accepts(&without, &ndp6(135, rs_ll, solicited, 255)));
        let only = Filter::build(&FilterSpec {
            ndp: true,
            ..FilterSpec::default()
        })
        .expect("build");
        assert!(accepts(&only, &ndp6(136, rs_ll, dir_ll, 255)));
        assert!(!accepts(&only, &arp_frame()));
        assert!(!accepts(&only, &ipv4_frame(6, CIP, 1, VIP, 80, 0, 0)));
        assert!(!accepts(&only, &icmp6(1, CIP6, VIP6, 6)));
    }

    #[test]
    fn ipv4_only_programs_have_no_ipv6_part() {
        // The IPv4-only program: no IPv6 ethertype, no protocol-41 quote, and the same
        // length with or without empty IPv6 fields around.
        for s in [
            spec(),
            FilterSpec::default(),
            FilterSpec {
                arp: true,
                ..FilterSpec::default()
            },
        ] {
            let f = Filter::build(&s).expect("build");
            assert!(
                !f.instructions().iter().any(|i| i.k == ETHERTYPE_IPV6),
                "{s:?}"
            );
            assert!(
                !f.instructions().iter().any(|i| i.k == IPPROTO_IPV6),
                "{s:?}"
            );
        }
        // The IPv6 part comes after the complete IPv4 program, which it only shifts by
        // the one ethertype dispatch (jeq + ja instead of jne + ret) and the 41 quote.
        let v4 = Filter::build(&spec()).expect("build");
        let both = Filter::build(&spec6()).expect("build");
        assert_eq!(
            both.instructions()[..3],
            [
                v4.instructions()[0],
                v4.instructions()[1],
                v4.instructions()[2]
            ]
        );
        assert!(both.len() > v4.len() + 2);
    }

    #[test]
    fn many_ipv6_tuples_and_the_limit() {
        let mut inbound6 = Vec::new();
        for a in 0..40u16 {
            for p in 0..10u16 {
                let vip = Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, a, 0x10);
                inbound6.push((Protocol::Tcp, vip, 1000 + p));
            }
        }
        let f = Filter::build(&FilterSpec {
            inbound6,
            ..FilterSpec::default()
        })
        .expect("build");
        assert!(f.len() <= MAX_INSNS);
        for a in [0u16, 17, 39] {
            let d = Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, a, 0x10);
            for p in [1000u16, 1009] {
                assert!(accepts(&f, &ipv6_frame(&[], 6, CIP6, d, 64, &ports(1, p))));
            }
            assert!(!accepts(
                &f,
                &ipv6_frame(&[], 6, CIP6, d, 64, &ports(1, 1010))
            ));
            assert!(accepts(
                &f,
                &ipv6_frame(&[44], 6, CIP6, d, 64, &ports(1, 1010))
            ));
        }
        let other = Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 40, 0x10);
        assert!(!accepts(
            &f,
            &ipv6_frame(&[], 6, CIP6, other, 64, &ports(1, 1000))
        ));
        for (i, insn) in f.instructions().iter().enumerate() {
            if insn.code & 0x07 == BPF_JMP {
                let far = if insn.code & 0xf0 == BPF_JA {
                    insn.k as usize
                } else {
                    usize::from(insn.jt.max(insn.jf))
                };
                assert!(i + 1 + far < f.len(), "jump at {i} leaves the program");
            }
        }
        // An IPv6 address costs more than an IPv4 one: 250 addresses with one port each
        // fit as IPv4, not as IPv6.
        let v4: Vec<_> = (0..250u32)
            .map(|a| (Protocol::Tcp, Ipv4Addr::from(0x0a00_0000 + a), 80))
            .collect();
        assert!(
            Filter::build(&FilterSpec {
                inbound: v4,
                ..FilterSpec::default()
            })
            .is_ok()
        );
        let v6: Vec<_> = (0..250u16)
            .map(|a| {
                (
                    Protocol::Tcp,
                    Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, a, 1),
                    80,
                )
            })
            .collect();
        let err = Filter::build(&FilterSpec {
            inbound6: v6,
            ..FilterSpec::default()
        })
        .expect_err("too long");
        assert!(err.to_string().contains("250 service tuples"), "{err}");
    }
}
