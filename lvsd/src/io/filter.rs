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
//!   [`Filter::build`] returns [`FilterError::TooLong`] instead.
//! - Every conditional jump skips at most one instruction, so the 8-bit jump offsets of
//!   classic BPF can never overflow; long distances use `ja` (32-bit offset).
//! - The output is deterministic: tuples are sorted and de-duplicated first.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

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
const BPF_MSH: u16 = 0xa0;
const BPF_JA: u16 = 0x00;
const BPF_JEQ: u16 = 0x10;
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

/// The traffic lvsd owns on one interface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterSpec {
    /// Traffic towards virtual services: (protocol, destination VIP, destination port).
    pub inbound: Vec<(Protocol, Ipv4Addr, u16)>,
    /// NAT replies from real servers: (protocol, source RIP, source port).
    pub replies: Vec<(Protocol, Ipv4Addr, u16)>,
    /// Accept ARP frames (needed where lvsd resolves next hops itself).
    pub arp: bool,
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
        if inbound.is_empty() && replies.is_empty() {
            a.ret(REJECT);
            return a.finish(spec);
        }
        // if ethertype != IPv4: reject
        a.jne_ret(ETHERTYPE_IPV4, REJECT);
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
        a.section(&inbound, OFF_IP_DST, OFF_L4_DPORT, to_replies);
        a.bind(to_replies);
        let to_reject = a.label();
        a.section(&replies, OFF_IP_SRC, OFF_L4_SPORT, to_reject);
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
        a.addresses(&inbound, &replies);
        // An error quoting IPIP (protocol byte of the quoted header, X + 14 + 8 + 9): about
        // a TUN packet, to whichever address the director sent it from. Last, because a
        // frame too short for this load rejects.
        a.ld_ind(BPF_B, OFF_ICMP_QUOTED_PROTO);
        a.jeq_ret(IPPROTO_IPIP, ACCEPT);
        a.ret(REJECT);

        a.bind(to_frag);
        a.addresses(&inbound, &replies);
        a.ret(REJECT);
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

/// address -> protocol number -> ports, sorted and de-duplicated.
type Grouped = BTreeMap<Ipv4Addr, BTreeMap<u8, Vec<u16>>>;

fn group(tuples: &[(Protocol, Ipv4Addr, u16)]) -> Grouped {
    let mut out: Grouped = BTreeMap::new();
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
fn count(g: &Grouped) -> usize {
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

    fn finish(mut self, spec: &FilterSpec) -> Result<Filter, FilterError> {
        if self.insns.len() > MAX_INSNS {
            return Err(FilterError::TooLong {
                needed: self.insns.len(),
                max: MAX_INSNS,
                inbound: count(&group(&spec.inbound)),
                replies: count(&group(&spec.replies)),
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
}
