//! AF_XDP sockets and the XDP program that steers frames to them (issue 9: an evaluated,
//! not yet integrated, I/O backend).
//!
//! Three pieces, usable separately:
//!
//! - [`ebpf`]: a tiny eBPF assembler (instruction encoders) and [`redirect_program`], the
//!   hand-assembled XDP program: "if the frame is IPv4 and its destination is in the
//!   `dst` hash map (or unconditionally, with [`Redirect::All`]), `bpf_redirect_map` it to
//!   the XSKMAP entry of its `rx_queue_index`; otherwise — and when that entry is empty —
//!   `XDP_PASS`". Everything lvsd does not own (ARP, VRRP, the director's own traffic,
//!   VLAN-tagged frames, IPv6) therefore still reaches the kernel.
//! - [`XdpProgram`]: the maps and the program loaded with `bpf(2)`, attached to one
//!   interface with `BPF_LINK_CREATE` (`BPF_XDP`), in generic (`XDP_FLAGS_SKB_MODE`) or
//!   native (`XDP_FLAGS_DRV_MODE`) mode.
//! - [`XskSocket`]: an `AF_XDP` socket bound to one interface queue with its own UMEM and
//!   its four rings (fill, completion, RX, TX).
//!
//! # Invariants
//!
//! - Nothing outlives its owner: the program is attached through a BPF *link*, and the
//!   link, program and map fds are owned here, so dropping an [`XdpProgram`] (or the process
//!   dying) detaches the program. Dropping an [`XskSocket`] closes the socket first (the
//!   kernel removes it from every XSKMAP) and then unmaps its rings and UMEM.
//! - UMEM frames are owned by exactly one party at a time: the fill ring or the kernel
//!   (RX frames given for reception), the RX ring until [`XskSocket::recv_batch`] consumes
//!   the descriptor, the caller only during the `recv_batch` callback (then the frame goes
//!   straight back to the fill ring), a free list (TX frames), the TX ring / kernel until the
//!   completion ring returns them. The fill ring is at least as large as the number of RX
//!   frames, so refilling never fails.
//! - Ring protocol (as the kernel's `xsk_queue.h` expects): a producer reads the
//!   consumer index with *acquire* before reusing slots and publishes its producer index
//!   with *release* after writing descriptors; a consumer reads the producer index with
//!   *acquire* before reading descriptors and publishes its consumer index with *release*
//!   after it is done with them.
//! - Every descriptor the kernel hands back (RX and completion) is bounds-checked against
//!   the UMEM before it is used; an out-of-range one is dropped and counted, never
//!   dereferenced.
//!
//! # veth specifics (what the evaluation found)
//!
//! - veth has no zero-copy AF_XDP support: sockets are bound with `XDP_COPY` in both
//!   attach modes. In native mode veth runs XDP in its own NAPI poll (it switches to the
//!   NAPI path as soon as a program is attached); in generic mode XDP runs on the skb in
//!   the normal receive path.
//! - Attaching XDP to a veth makes the device stop accepting GSO super-frames from its
//!   peer (the peer's TSO/GSO features are recomputed): frames then arrive MTU-sized,
//!   unlike the 64 KiB super-frames a `PACKET_VNET_HDR` socket sees.
//! - In *generic* mode the peer keeps GSO, so TCP from a local socket arrives as GSO/GRO
//!   super-frames of up to 64 KiB; redirected to an XSK (2 KiB chunks, no `XDP_USE_SG`)
//!   they are dropped (`rx_dropped`): a TCP stream to a redirected address stalls after
//!   the handshake. Native mode avoids this only because the peer then segments.
//! - An XSK gets the frame bytes without the skb's checksum state. On veth, locally
//!   generated traffic is "checksum partial" (the L4 checksum field holds only the
//!   pseudo-header sum); a forwarder must recompute L4 checksums before transmitting
//!   (the packet socket backends keep that state in the vnet header instead).
//! - AF_XDP transmit in copy mode builds one skb per descriptor and hands it to the driver
//!   directly (no qdisc), at most 32 descriptors per `sendto` kick; the completion ring
//!   returns a frame when that skb is freed (on veth: after the peer's stack is done).
//! - Closing a socket releases its queue in deferred kernel work: a new bind to the same
//!   queue right afterwards may see `EBUSY` for a moment ([`BIND_BUSY_RETRY`]).

use std::io;
use std::mem;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

pub use ebpf::{Insn, redirect_program};

/// A tiny eBPF assembler: the instruction format and the encoders the XDP program needs.
pub mod ebpf {
    /// One eBPF instruction in the kernel's `struct bpf_insn` layout (native byte order;
    /// `dst_reg` is the low nibble of `regs` on little-endian hosts, the high one on
    /// big-endian hosts). `ld_imm64` takes two instructions.
    #[repr(C)]
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct Insn {
        /// Opcode: class | size/op | mode/source.
        pub code: u8,
        /// Destination and source register nibbles.
        pub regs: u8,
        /// Signed offset (memory access, jumps).
        pub off: i16,
        /// Signed immediate.
        pub imm: i32,
    }

    // Instruction classes.
    /// `BPF_LDX`.
    pub const LDX: u8 = 0x01;
    /// `BPF_STX`.
    pub const STX: u8 = 0x03;
    /// `BPF_JMP`.
    pub const JMP: u8 = 0x05;
    /// `BPF_ALU64`.
    pub const ALU64: u8 = 0x07;
    /// `BPF_LD`.
    pub const LD: u8 = 0x00;
    // Sizes.
    /// `BPF_W` (32 bits).
    pub const W: u8 = 0x00;
    /// `BPF_H` (16 bits).
    pub const H: u8 = 0x08;
    /// `BPF_B` (8 bits).
    pub const B: u8 = 0x10;
    /// `BPF_DW` (64 bits).
    pub const DW: u8 = 0x18;
    // Modes.
    /// `BPF_IMM`.
    pub const IMM: u8 = 0x00;
    /// `BPF_MEM`.
    pub const MEM: u8 = 0x60;
    // Sources.
    /// `BPF_K`: the immediate.
    pub const K: u8 = 0x00;
    /// `BPF_X`: the source register.
    pub const X: u8 = 0x08;
    // ALU operations.
    /// `BPF_ADD`.
    pub const ADD: u8 = 0x00;
    /// `BPF_MOV`.
    pub const MOV: u8 = 0xb0;
    // Jump operations.
    /// `BPF_JA`.
    pub const JA: u8 = 0x00;
    /// `BPF_JEQ`.
    pub const JEQ: u8 = 0x10;
    /// `BPF_JGT` (unsigned).
    pub const JGT: u8 = 0x20;
    /// `BPF_JNE`.
    pub const JNE: u8 = 0x50;
    /// `BPF_CALL`.
    pub const CALL: u8 = 0x80;
    /// `BPF_EXIT`.
    pub const EXIT: u8 = 0x90;
    /// `BPF_PSEUDO_MAP_FD`: `ld_imm64` source register marking the immediate as a map fd.
    pub const PSEUDO_MAP_FD: u8 = 1;

    /// Registers.
    pub const R0: u8 = 0;
    /// Register 1 (first argument; the context on entry).
    pub const R1: u8 = 1;
    /// Register 2.
    pub const R2: u8 = 2;
    /// Register 3.
    pub const R3: u8 = 3;
    /// Register 4.
    pub const R4: u8 = 4;
    /// Register 5.
    pub const R5: u8 = 5;
    /// Register 6 (callee-saved).
    pub const R6: u8 = 6;
    /// Register 10: the read-only frame pointer.
    pub const R10: u8 = 10;

    /// Helper `bpf_map_lookup_elem`.
    pub const FN_MAP_LOOKUP_ELEM: i32 = 1;
    /// Helper `bpf_redirect_map`.
    pub const FN_REDIRECT_MAP: i32 = 51;

    /// XDP verdicts.
    pub const XDP_DROP: i32 = 1;
    /// `XDP_PASS`: hand the frame to the kernel's stack.
    pub const XDP_PASS: i32 = 2;

    /// Offsets in `struct xdp_md` (the XDP context).
    pub const XDP_MD_DATA: i16 = 0;
    /// `xdp_md.data_end`.
    pub const XDP_MD_DATA_END: i16 = 4;
    /// `xdp_md.rx_queue_index`.
    pub const XDP_MD_RX_QUEUE_INDEX: i16 = 16;

    impl Insn {
        /// An instruction from its fields (registers are 4-bit: higher bits are dropped).
        pub const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
            let (dst, src) = (dst & 0x0f, src & 0x0f);
            #[cfg(target_endian = "little")]
            let regs = (src << 4) | dst;
            #[cfg(target_endian = "big")]
            let regs = (dst << 4) | src;
            Insn {
                code,
                regs,
                off,
                imm,
            }
        }

        /// Destination register.
        pub const fn dst(&self) -> u8 {
            #[cfg(target_endian = "little")]
            return self.regs & 0x0f;
            #[cfg(target_endian = "big")]
            return self.regs >> 4;
        }

        /// The instruction as the kernel reads it (native byte order).
        pub fn to_bytes(&self) -> [u8; 8] {
            let mut b = [0u8; 8];
            b[0] = self.code;
            b[1] = self.regs;
            b[2..4].copy_from_slice(&self.off.to_ne_bytes());
            b[4..8].copy_from_slice(&self.imm.to_ne_bytes());
            b
        }
    }

    /// `dst = src` (64-bit).
    pub const fn mov64_reg(dst: u8, src: u8) -> Insn {
        Insn::new(ALU64 | MOV | X, dst, src, 0, 0)
    }

    /// `dst = imm` (64-bit, sign-extended).
    pub const fn mov64_imm(dst: u8, imm: i32) -> Insn {
        Insn::new(ALU64 | MOV | K, dst, 0, 0, imm)
    }

    /// `dst += imm` (64-bit).
    pub const fn add64_imm(dst: u8, imm: i32) -> Insn {
        Insn::new(ALU64 | ADD | K, dst, 0, 0, imm)
    }

    /// `dst = *(size *)(src + off)`.
    pub const fn ldx(size: u8, dst: u8, src: u8, off: i16) -> Insn {
        Insn::new(LDX | MEM | size, dst, src, off, 0)
    }

    /// `*(size *)(dst + off) = src`.
    pub const fn stx(size: u8, dst: u8, src: u8, off: i16) -> Insn {
        Insn::new(STX | MEM | size, dst, src, off, 0)
    }

    /// `if dst <op> imm goto +off`.
    pub const fn jmp_imm(op: u8, dst: u8, imm: i32, off: i16) -> Insn {
        Insn::new(JMP | op | K, dst, 0, off, imm)
    }

    /// `if dst <op> src goto +off`.
    pub const fn jmp_reg(op: u8, dst: u8, src: u8, off: i16) -> Insn {
        Insn::new(JMP | op | X, dst, src, off, 0)
    }

    /// `goto +off`.
    pub const fn ja(off: i16) -> Insn {
        Insn::new(JMP | JA, 0, 0, off, 0)
    }

    /// Call helper function `func`.
    pub const fn call(func: i32) -> Insn {
        Insn::new(JMP | CALL, 0, 0, 0, func)
    }

    /// `exit` (return R0).
    pub const fn exit() -> Insn {
        Insn::new(JMP | EXIT, 0, 0, 0, 0)
    }

    /// `dst = map` (`ld_imm64` with `BPF_PSEUDO_MAP_FD`; two instruction slots).
    pub const fn ld_map_fd(dst: u8, map_fd: i32) -> [Insn; 2] {
        [
            Insn::new(LD | DW | IMM, dst, PSEUDO_MAP_FD, 0, map_fd),
            Insn::new(0, 0, 0, 0, 0),
        ]
    }

    /// What [`redirect_program`] redirects.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Match {
        /// Every frame.
        All,
        /// IPv4 frames (untagged Ethernet) whose destination address is a key of the hash
        /// map with this fd (4-byte keys in network order, any value).
        Ipv4Dst {
            /// The hash map's fd.
            map_fd: i32,
        },
    }

    /// The XDP program: redirect matching frames to `xsks_map_fd[rx_queue_index]`, pass
    /// everything else (and matching frames whose queue has no socket: the low bits of
    /// `bpf_redirect_map`'s flags are the verdict when the entry is missing).
    ///
    /// ```text
    ///     r6 = r1                           ; ctx
    ///   [ r2 = ctx->data; r3 = ctx->data_end
    ///     r4 = r2 + 34; if r4 > r3 goto pass        ; Ethernet + 20-byte IPv4 header
    ///     r4 = *(u16 *)(r2 + 12); if r4 != htons(0x0800) goto pass
    ///     r4 = *(u32 *)(r2 + 30); *(u32 *)(r10 - 4) = r4   ; daddr as the key
    ///     r1 = dst_map; r2 = r10 - 4; call map_lookup_elem
    ///     if r0 == 0 goto pass ]                    ; only with Match::Ipv4Dst
    ///     r2 = ctx->rx_queue_index; r1 = xsks_map; r3 = XDP_PASS
    ///     call redirect_map; exit
    /// pass:                                      ; only with Match::Ipv4Dst
    ///     r0 = XDP_PASS; exit
    /// ```
    pub fn redirect_program(xsks_map_fd: i32, matching: Match) -> Vec<Insn> {
        let mut p = vec![mov64_reg(R6, R1)];
        // Indices of jumps to `pass`, patched at the end.
        let mut to_pass = Vec::new();
        if let Match::Ipv4Dst { map_fd } = matching {
            p.push(ldx(W, R2, R6, XDP_MD_DATA));
            p.push(ldx(W, R3, R6, XDP_MD_DATA_END));
            p.push(mov64_reg(R4, R2));
            p.push(add64_imm(R4, 34));
            to_pass.push(p.len());
            p.push(jmp_reg(JGT, R4, R3, 0));
            p.push(ldx(H, R4, R2, 12));
            // The EtherType as loaded from the (big-endian) frame into a native u16.
            let ipv4 = i32::from(u16::from_ne_bytes(0x0800u16.to_be_bytes()));
            to_pass.push(p.len());
            p.push(jmp_imm(JNE, R4, ipv4, 0));
            p.push(ldx(W, R4, R2, 30));
            p.push(stx(W, R10, R4, -4));
            p.extend(ld_map_fd(R1, map_fd));
            p.push(mov64_reg(R2, R10));
            p.push(add64_imm(R2, -4));
            p.push(call(FN_MAP_LOOKUP_ELEM));
            to_pass.push(p.len());
            p.push(jmp_imm(JEQ, R0, 0, 0));
        }
        p.push(ldx(W, R2, R6, XDP_MD_RX_QUEUE_INDEX));
        p.extend(ld_map_fd(R1, xsks_map_fd));
        p.push(mov64_imm(R3, XDP_PASS));
        p.push(call(FN_REDIRECT_MAP));
        p.push(exit());
        if to_pass.is_empty() {
            // The verifier rejects unreachable instructions: no `pass` tail.
            return p;
        }
        let pass = p.len();
        p.push(mov64_imm(R0, XDP_PASS));
        p.push(exit());
        for j in to_pass {
            // Jump offsets count from the next instruction; programs are tiny.
            p[j].off = i16::try_from(pass - j - 1).unwrap_or(i16::MAX);
        }
        p
    }
}

// ---------------------------------------------------------------------------------------
// bpf(2)

const BPF_MAP_CREATE: libc::c_int = 0;
const BPF_MAP_LOOKUP_ELEM: libc::c_int = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_int = 2;
const BPF_MAP_DELETE_ELEM: libc::c_int = 3;
const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_LINK_CREATE: libc::c_int = 28;

const BPF_MAP_TYPE_HASH: u32 = 1;
const BPF_MAP_TYPE_XSKMAP: u32 = 17;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;

/// `XDP_FLAGS_SKB_MODE`.
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
/// `XDP_FLAGS_DRV_MODE`.
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
}

/// `bpf(cmd, attr, sizeof attr)`; the return value (an fd or 0) on success.
fn sys_bpf<T: Copy>(cmd: libc::c_int, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a plain-data `repr(C)` prefix of `union bpf_attr`, valid for reads
    // and writes of its size for the duration of the call; the kernel zero-extends it and
    // reads any user pointers it contains (callers keep those alive across the call).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            (attr as *mut T).cast::<libc::c_void>(),
            mem::size_of::<T>() as libc::c_uint,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn bpf_fd<T: Copy>(cmd: libc::c_int, attr: &mut T) -> io::Result<OwnedFd> {
    let ret = sys_bpf(cmd, attr)?;
    let raw = RawFd::try_from(ret).map_err(|_| io::Error::other("bpf returned a bad fd"))?;
    // SAFETY: the kernel returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

fn obj_name(name: &str) -> [u8; 16] {
    let mut n = [0u8; 16];
    for (d, s) in n.iter_mut().take(15).zip(name.bytes()) {
        *d = s;
    }
    n
}

fn fd_u32(fd: BorrowedFd<'_>) -> u32 {
    // Open descriptors are never negative.
    u32::try_from(fd.as_raw_fd()).unwrap_or(u32::MAX)
}

fn map_create(
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    name: &str,
) -> io::Result<OwnedFd> {
    let mut attr = MapCreateAttr {
        map_type,
        key_size,
        value_size,
        max_entries,
        map_name: obj_name(name),
        ..Default::default()
    };
    bpf_fd(BPF_MAP_CREATE, &mut attr)
}

fn map_update(map: BorrowedFd<'_>, key: &[u8], value: &[u8]) -> io::Result<()> {
    let mut attr = MapElemAttr {
        map_fd: fd_u32(map),
        key: key.as_ptr() as u64,
        value: value.as_ptr() as u64,
        flags: 0, // BPF_ANY
        ..Default::default()
    };
    // The kernel reads key_size/value_size bytes; callers pass slices of those sizes
    // (checked by the typed wrappers below).
    sys_bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(drop)
}

fn map_delete(map: BorrowedFd<'_>, key: &[u8]) -> io::Result<()> {
    let mut attr = MapElemAttr {
        map_fd: fd_u32(map),
        key: key.as_ptr() as u64,
        ..Default::default()
    };
    sys_bpf(BPF_MAP_DELETE_ELEM, &mut attr).map(drop)
}

fn map_contains(map: BorrowedFd<'_>, key: &[u8], value_size: usize) -> io::Result<bool> {
    let mut value = vec![0u8; value_size];
    let mut attr = MapElemAttr {
        map_fd: fd_u32(map),
        key: key.as_ptr() as u64,
        value: value.as_mut_ptr() as u64,
        ..Default::default()
    };
    match sys_bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

fn prog_load(insns: &[Insn], name: &str) -> io::Result<OwnedFd> {
    let license = c"GPL";
    let insn_cnt = u32::try_from(insns.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "program too long"))?;
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_XDP,
        insn_cnt,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name: obj_name(name),
        expected_attach_type: BPF_XDP,
        ..Default::default()
    };
    match bpf_fd(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => Ok(fd),
        Err(first) => {
            // Load again with the verifier log, to say why.
            let mut log = vec![0u8; 64 * 1024];
            attr.log_level = 1;
            attr.log_size = log.len() as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
            match bpf_fd(BPF_PROG_LOAD, &mut attr) {
                Ok(fd) => Ok(fd),
                Err(_) => {
                    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                    let text = String::from_utf8_lossy(&log[..end]);
                    Err(io::Error::new(
                        first.kind(),
                        format!("loading the XDP program: {first}; verifier: {text}"),
                    ))
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The program

/// Where XDP runs on the interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachMode {
    /// Generic XDP (`XDP_FLAGS_SKB_MODE`): on the skb, in the normal receive path; works
    /// on every device.
    Generic,
    /// Native XDP (`XDP_FLAGS_DRV_MODE`): in the driver (veth: its NAPI poll).
    Native,
}

impl AttachMode {
    fn flags(self) -> u32 {
        match self {
            AttachMode::Generic => XDP_FLAGS_SKB_MODE,
            AttachMode::Native => XDP_FLAGS_DRV_MODE,
        }
    }
}

/// What the program redirects to the sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redirect {
    /// Every frame.
    All,
    /// IPv4 frames to one of the addresses added with [`XdpProgram::add_ipv4_dst`] (up to
    /// `max` of them); everything else goes to the kernel.
    Ipv4Dst {
        /// Capacity of the address map.
        max: u32,
    },
}

/// The loaded XDP program and its maps, optionally attached to one interface (see the
/// module docs). Dropping it detaches the program.
#[derive(Debug)]
pub struct XdpProgram {
    // Declaration order is drop order: the link (attachment) goes first.
    link: Option<(OwnedFd, u32, AttachMode)>,
    prog: OwnedFd,
    xsks: OwnedFd,
    dst: Option<OwnedFd>,
    queues: u32,
}

impl XdpProgram {
    /// Creates the maps (an XSKMAP of `queues` entries and, for [`Redirect::Ipv4Dst`], the
    /// address hash) and loads the program. Needs CAP_BPF + CAP_NET_ADMIN (root).
    pub fn load(redirect: Redirect, queues: u32) -> io::Result<XdpProgram> {
        let queues = queues.max(1);
        let xsks = map_create(BPF_MAP_TYPE_XSKMAP, 4, 4, queues, "lvs_xsks")?;
        let dst = match redirect {
            Redirect::All => None,
            Redirect::Ipv4Dst { max } => Some(map_create(
                BPF_MAP_TYPE_HASH,
                4,
                1,
                max.max(1),
                "lvs_xdp_dst",
            )?),
        };
        let matching = match &dst {
            None => ebpf::Match::All,
            Some(fd) => ebpf::Match::Ipv4Dst {
                map_fd: fd.as_raw_fd(),
            },
        };
        let insns = redirect_program(xsks.as_raw_fd(), matching);
        let prog = prog_load(&insns, "lvs_xsk_redir")?;
        Ok(XdpProgram {
            link: None,
            prog,
            xsks,
            dst,
            queues,
        })
    }

    /// Attaches the program to `ifindex` (through a BPF link). Fails with `EBUSY` if the
    /// interface already has an XDP program, `EOPNOTSUPP`/`EINVAL` if the mode is not
    /// supported, `EEXIST` if this program is already attached.
    pub fn attach(&mut self, ifindex: u32, mode: AttachMode) -> io::Result<()> {
        if self.link.is_some() {
            return Err(io::Error::from_raw_os_error(libc::EEXIST));
        }
        let mut attr = LinkCreateAttr {
            prog_fd: fd_u32(self.prog.as_fd()),
            target_ifindex: ifindex,
            attach_type: BPF_XDP,
            flags: mode.flags(),
        };
        let link = bpf_fd(BPF_LINK_CREATE, &mut attr)?;
        self.link = Some((link, ifindex, mode));
        Ok(())
    }

    /// Detaches the program (closes the link); a no-op when not attached.
    pub fn detach(&mut self) {
        self.link = None;
    }

    /// The interface and mode the program is attached to.
    pub fn attached(&self) -> Option<(u32, AttachMode)> {
        self.link.as_ref().map(|(_, i, m)| (*i, *m))
    }

    /// Makes `queue`'s frames go to `socket` (replacing any previous socket).
    pub fn register(&self, queue: u32, socket: &XskSocket) -> io::Result<()> {
        if queue >= self.queues {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("queue {queue} beyond the XSKMAP's {} entries", self.queues),
            ));
        }
        let fd = fd_u32(socket.as_fd());
        map_update(self.xsks.as_fd(), &queue.to_ne_bytes(), &fd.to_ne_bytes())
    }

    /// Removes `queue`'s socket (its frames then pass to the kernel).
    pub fn unregister(&self, queue: u32) -> io::Result<()> {
        match map_delete(self.xsks.as_fd(), &queue.to_ne_bytes()) {
            Err(e) if e.raw_os_error() != Some(libc::ENOENT) => Err(e),
            _ => Ok(()),
        }
    }

    fn dst_map(&self) -> io::Result<BorrowedFd<'_>> {
        self.dst.as_ref().map(|f| f.as_fd()).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::Unsupported,
                "program loaded with Redirect::All has no address map",
            )
        })
    }

    /// Redirects IPv4 frames to `addr` (a [`Redirect::Ipv4Dst`] program only).
    pub fn add_ipv4_dst(&self, addr: Ipv4Addr) -> io::Result<()> {
        map_update(self.dst_map()?, &addr.octets(), &[1])
    }

    /// Stops redirecting frames to `addr`.
    pub fn remove_ipv4_dst(&self, addr: Ipv4Addr) -> io::Result<()> {
        match map_delete(self.dst_map()?, &addr.octets()) {
            Err(e) if e.raw_os_error() != Some(libc::ENOENT) => Err(e),
            _ => Ok(()),
        }
    }

    /// Whether frames to `addr` are redirected.
    pub fn has_ipv4_dst(&self, addr: Ipv4Addr) -> io::Result<bool> {
        map_contains(self.dst_map()?, &addr.octets(), 1)
    }
}

// ---------------------------------------------------------------------------------------
// Memory mappings and rings

/// An owned memory mapping, unmapped on drop.
#[derive(Debug)]
struct Mmap {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mmap {
    fn new(len: usize, fd: Option<(BorrowedFd<'_>, libc::off_t)>) -> io::Result<Mmap> {
        let (flags, raw, off) = match fd {
            None => (
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            ),
            Some((fd, off)) => (libc::MAP_SHARED | libc::MAP_POPULATE, fd.as_raw_fd(), off),
        };
        // SAFETY: a fresh mapping at an address the kernel chooses; no existing memory is
        // affected. The result is checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                raw,
                off,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap at 0"))?;
        Ok(Mmap { ptr, len })
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe a mapping this value created and nothing else
        // unmaps; no reference into it outlives `self` (rings and frames borrow `self`).
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast::<libc::c_void>(), self.len);
        }
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct RingOffset {
    producer: u64,
    consumer: u64,
    desc: u64,
    flags: u64,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct MmapOffsets {
    rx: RingOffset,
    tx: RingOffset,
    fr: RingOffset,
    cr: RingOffset,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct UmemReg {
    addr: u64,
    len: u64,
    chunk_size: u32,
    headroom: u32,
    flags: u32,
    tx_metadata_len: u32,
}

/// `struct xdp_desc` (RX/TX ring entries).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct XdpDesc {
    addr: u64,
    len: u32,
    options: u32,
}

/// Kernel counters of an AF_XDP socket (`XDP_STATISTICS`; cumulative).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XskStats {
    /// Frames dropped for reasons other than a full RX ring / empty fill ring.
    pub rx_dropped: u64,
    /// Invalid descriptors on the fill ring.
    pub rx_invalid_descs: u64,
    /// Invalid descriptors on the TX ring.
    pub tx_invalid_descs: u64,
    /// Frames dropped because the RX ring was full.
    pub rx_ring_full: u64,
    /// Times the fill ring was empty when a frame arrived.
    pub rx_fill_ring_empty_descs: u64,
    /// Times the TX ring was empty on a kick.
    pub tx_ring_empty_descs: u64,
}

/// One mmapped ring; entries are `E` (`u64` addresses or [`XdpDesc`]).
#[derive(Debug)]
struct Ring<E> {
    _map: Mmap,
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    flags: NonNull<AtomicU32>,
    desc: NonNull<E>,
    mask: u32,
    size: u32,
    /// Local producer index (producer rings: ahead of the published one until `submit`).
    prod: u32,
    /// Local consumer index (consumer rings: ahead of the published one until `release`).
    cons: u32,
}

impl<E: Copy> Ring<E> {
    fn map(fd: BorrowedFd<'_>, off: &RingOffset, size: u32, pgoff: u64) -> io::Result<Ring<E>> {
        let too_big = || io::Error::other("ring offsets out of range");
        let len = usize::try_from(off.desc)
            .ok()
            .and_then(|d| d.checked_add(size as usize * mem::size_of::<E>()))
            .ok_or_else(too_big)?;
        let pgoff = libc::off_t::try_from(pgoff).map_err(|_| too_big())?;
        let map = Mmap::new(len, Some((fd, pgoff)))?;
        let at = |o: u64, sz: usize| -> io::Result<NonNull<u8>> {
            let o = usize::try_from(o).map_err(|_| too_big())?;
            if o.checked_add(sz).is_none_or(|e| e > len) {
                return Err(too_big());
            }
            // SAFETY: `o + sz <= len`: the pointer stays inside the mapping.
            Ok(unsafe { map.ptr.add(o) })
        };
        let producer = at(off.producer, 4)?.cast::<AtomicU32>();
        let consumer = at(off.consumer, 4)?.cast::<AtomicU32>();
        let flags = at(off.flags, 4)?.cast::<AtomicU32>();
        let desc = at(off.desc, size as usize * mem::size_of::<E>())?.cast::<E>();
        let mut ring = Ring {
            _map: map,
            producer,
            consumer,
            flags,
            desc,
            mask: size - 1,
            size,
            prod: 0,
            cons: 0,
        };
        ring.prod = ring.producer().load(Ordering::Relaxed);
        ring.cons = ring.consumer().load(Ordering::Relaxed);
        Ok(ring)
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: points into `self.map` (checked at construction), 4-byte aligned (the
        // kernel's ring layout), alive as long as `self`; shared with the kernel, hence
        // accessed atomically only.
        unsafe { self.producer.as_ref() }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        unsafe { self.consumer.as_ref() }
    }

    fn needs_wakeup(&self) -> bool {
        // SAFETY: as for `producer`.
        let flags = unsafe { self.flags.as_ref() };
        flags.load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }

    fn slot(&self, idx: u32) -> *mut E {
        // SAFETY: `idx & mask < size`, and the descriptor array of `size` entries lies in
        // the mapping (checked at construction).
        unsafe { self.desc.as_ptr().add((idx & self.mask) as usize) }
    }

    // --- producer side (fill, TX) ---

    /// Free slots for the producer (refreshing the consumer index with acquire when the
    /// cached one shows none). `prod - cons <= size` always holds.
    fn free(&mut self) -> u32 {
        let free = self.size.saturating_sub(self.prod.wrapping_sub(self.cons));
        if free > 0 {
            return free;
        }
        self.cons = self.consumer().load(Ordering::Acquire);
        self.size.saturating_sub(self.prod.wrapping_sub(self.cons))
    }

    /// Writes one entry at the local producer index (caller checked `free() > 0`).
    fn push(&mut self, e: E) {
        // SAFETY: the slot is owned by the producer: it is between the kernel's consumer
        // index (read with acquire, so the kernel is done with it) and the ring's size.
        unsafe { self.slot(self.prod).write(e) };
        self.prod = self.prod.wrapping_add(1);
    }

    /// Publishes everything pushed (release: the entries are visible first).
    fn submit(&self) {
        self.producer().store(self.prod, Ordering::Release);
    }

    /// Entries pushed but not yet consumed by the kernel (refreshes the consumer index).
    fn outstanding(&mut self) -> u32 {
        self.cons = self.consumer().load(Ordering::Acquire);
        self.prod.wrapping_sub(self.cons)
    }

    // --- consumer side (RX, completion) ---

    /// Entries available to read (refreshing the producer index with acquire when the
    /// cached one shows none).
    fn available(&mut self) -> u32 {
        let avail = self.prod.wrapping_sub(self.cons);
        if avail > 0 {
            return avail.min(self.size);
        }
        self.prod = self.producer().load(Ordering::Acquire);
        self.prod.wrapping_sub(self.cons).min(self.size)
    }

    /// Reads the entry at local consumer index + `i` (caller checked `i < available()`).
    fn peek(&self, i: u32) -> E {
        // SAFETY: the slot was published by the kernel (producer index read with acquire)
        // and is not reused until `release` advances the consumer index past it.
        unsafe { self.slot(self.cons.wrapping_add(i)).read() }
    }

    /// Hands `n` read entries back to the kernel (release: reads happen before).
    fn release(&mut self, n: u32) {
        self.cons = self.cons.wrapping_add(n);
        self.consumer().store(self.cons, Ordering::Release);
    }
}

/// How long [`XskSocket::open`] retries a bind that fails with `EBUSY` (the previous
/// socket of the queue being released in the background).
pub const BIND_BUSY_RETRY: std::time::Duration = std::time::Duration::from_millis(500);

/// Settings of an [`XskSocket`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XskConfig {
    /// UMEM chunk size: 2048 or 4096.
    pub frame_size: u32,
    /// Frames given to the kernel for reception (0 = no RX ring). Power of two.
    pub rx_frames: u32,
    /// Frames for transmission (0 = no TX ring). Power of two.
    pub tx_frames: u32,
    /// Ask for zero-copy (`XDP_ZEROCOPY`) instead of `XDP_COPY` (veth: unsupported).
    pub zero_copy: bool,
    /// Bind with `XDP_USE_NEED_WAKEUP` (kick the kernel only when a ring says so).
    pub need_wakeup: bool,
}

impl Default for XskConfig {
    fn default() -> Self {
        XskConfig {
            frame_size: 2048,
            rx_frames: 2048,
            tx_frames: 2048,
            zero_copy: false,
            need_wakeup: true,
        }
    }
}

/// Counters kept by an [`XskSocket`] itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XskCounters {
    /// Frames received.
    pub rx: u64,
    /// Frames queued for transmission.
    pub tx: u64,
    /// Transmissions the kernel completed.
    pub tx_completed: u64,
    /// Frames not sent because no TX frame or slot was free.
    pub tx_full: u64,
    /// Descriptors from the kernel outside the UMEM (dropped; should stay 0).
    pub bad_descs: u64,
}

/// An AF_XDP socket bound to one queue of one interface (see the module docs).
#[derive(Debug)]
pub struct XskSocket {
    // Declaration order is drop order: the socket closes before its memory is unmapped.
    fd: OwnedFd,
    rx: Option<Ring<XdpDesc>>,
    tx: Option<Ring<XdpDesc>>,
    fill: Ring<u64>,
    comp: Ring<u64>,
    umem: Mmap,
    frame_size: u32,
    /// Start of the TX frames in the UMEM (RX frames come first).
    tx_base: u64,
    tx_frames: u32,
    free_tx: Vec<u64>,
    /// TX descriptors pushed but not yet published.
    tx_unsubmitted: u32,
    need_wakeup: bool,
    ifindex: u32,
    queue: u32,
    counters: XskCounters,
}

// SAFETY: the socket exclusively owns its mappings (raw pointers into them are never
// shared or handed out beyond a `&mut self` borrow); the kernel side is synchronized by the
// ring protocol, not by thread identity, so the value may move to another thread.
unsafe impl Send for XskSocket {}

fn xdp_setsockopt<T: Copy>(fd: BorrowedFd<'_>, name: libc::c_int, value: &T) -> io::Result<()> {
    super::setsockopt(fd, libc::SOL_XDP, name, value)
}

impl XskSocket {
    /// Opens a socket on `ifindex`/`queue`: registers a UMEM of `rx_frames + tx_frames`
    /// frames, creates and maps the rings, gives all RX frames to the fill ring and binds.
    /// The socket receives nothing until an [`XdpProgram`] redirects to it
    /// ([`XdpProgram::register`]); it can transmit right away. `EBUSY` (another socket
    /// holds the queue) is reported after [`BIND_BUSY_RETRY`].
    pub fn open(ifindex: u32, queue: u32, cfg: &XskConfig) -> io::Result<XskSocket> {
        let invalid = |m: &str| io::Error::new(io::ErrorKind::InvalidInput, m.to_owned());
        let pow2 = |n: u32| n == 0 || n.is_power_of_two();
        if !(cfg.frame_size == 2048 || cfg.frame_size == 4096) {
            return Err(invalid("frame_size must be 2048 or 4096"));
        }
        if !pow2(cfg.rx_frames) || !pow2(cfg.tx_frames) || cfg.rx_frames + cfg.tx_frames == 0 {
            return Err(invalid(
                "rx_frames/tx_frames must be powers of two (or 0), not both 0",
            ));
        }
        // SAFETY: plain socket(2) call; the result is checked below.
        let raw = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        let raw = super::cvt(raw)?;
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };

        let frames = cfg.rx_frames + cfg.tx_frames;
        let umem_len = frames as usize * cfg.frame_size as usize;
        let umem = Mmap::new(umem_len, None)?;
        let reg = UmemReg {
            addr: umem.ptr.as_ptr() as u64,
            len: umem_len as u64,
            chunk_size: cfg.frame_size,
            ..Default::default()
        };
        // The kernel pins the pages; `umem` outlives the socket (drop order).
        xdp_setsockopt(fd.as_fd(), libc::XDP_UMEM_REG, &reg)?;
        // Fill/completion rings must exist even for a TX-only or RX-only socket.
        let fill_size = cfg.rx_frames.max(64);
        let comp_size = cfg.tx_frames.max(64);
        xdp_setsockopt(fd.as_fd(), libc::XDP_UMEM_FILL_RING, &fill_size)?;
        xdp_setsockopt(fd.as_fd(), libc::XDP_UMEM_COMPLETION_RING, &comp_size)?;
        if cfg.rx_frames > 0 {
            xdp_setsockopt(fd.as_fd(), libc::XDP_RX_RING, &cfg.rx_frames)?;
        }
        if cfg.tx_frames > 0 {
            xdp_setsockopt(fd.as_fd(), libc::XDP_TX_RING, &cfg.tx_frames)?;
        }
        let mut off = MmapOffsets::default();
        let mut len = mem::size_of::<MmapOffsets>() as libc::socklen_t;
        // SAFETY: `off` and `len` are valid for writes during the call; `len` is its size.
        let ret = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_XDP,
                libc::XDP_MMAP_OFFSETS,
                (&mut off as *mut MmapOffsets).cast::<libc::c_void>(),
                &mut len,
            )
        };
        super::cvt(ret)?;
        if len as usize != mem::size_of::<MmapOffsets>() {
            return Err(io::Error::other(
                "kernel without ring flags (XDP_MMAP_OFFSETS v1)",
            ));
        }
        let mut fill = Ring::<u64>::map(
            fd.as_fd(),
            &off.fr,
            fill_size,
            libc::XDP_UMEM_PGOFF_FILL_RING,
        )?;
        let comp = Ring::<u64>::map(
            fd.as_fd(),
            &off.cr,
            comp_size,
            libc::XDP_UMEM_PGOFF_COMPLETION_RING,
        )?;
        let rx = if cfg.rx_frames > 0 {
            Some(Ring::<XdpDesc>::map(
                fd.as_fd(),
                &off.rx,
                cfg.rx_frames,
                libc::XDP_PGOFF_RX_RING as u64,
            )?)
        } else {
            None
        };
        let tx = if cfg.tx_frames > 0 {
            Some(Ring::<XdpDesc>::map(
                fd.as_fd(),
                &off.tx,
                cfg.tx_frames,
                libc::XDP_PGOFF_TX_RING as u64,
            )?)
        } else {
            None
        };
        // RX frames: [0, rx_frames); all go to the fill ring.
        for i in 0..u64::from(cfg.rx_frames) {
            fill.push(i * u64::from(cfg.frame_size));
        }
        fill.submit();
        let tx_base = u64::from(cfg.rx_frames) * u64::from(cfg.frame_size);
        let free_tx: Vec<u64> = (0..u64::from(cfg.tx_frames))
            .rev()
            .map(|i| tx_base + i * u64::from(cfg.frame_size))
            .collect();

        let mut flags = if cfg.zero_copy {
            libc::XDP_ZEROCOPY
        } else {
            libc::XDP_COPY
        };
        if cfg.need_wakeup {
            flags |= libc::XDP_USE_NEED_WAKEUP;
        }
        // SAFETY: sockaddr_xdp is plain data; all-zero is a valid value.
        let mut sxdp: libc::sockaddr_xdp = unsafe { mem::zeroed() };
        sxdp.sxdp_family = libc::AF_XDP as u16;
        sxdp.sxdp_flags = flags;
        sxdp.sxdp_ifindex = ifindex;
        sxdp.sxdp_queue_id = queue;
        // The kernel releases a closed socket's hold on its queue in deferred work, so a
        // bind right after closing the previous socket of that queue can see EBUSY for a
        // moment: retry for up to BIND_BUSY_RETRY before reporting it.
        let started = std::time::Instant::now();
        loop {
            // SAFETY: `sxdp` is a valid sockaddr_xdp and the length passed is its size.
            let ret = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&sxdp as *const libc::sockaddr_xdp).cast::<libc::sockaddr>(),
                    mem::size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
                )
            };
            match super::cvt(ret) {
                Ok(_) => break,
                Err(e)
                    if e.raw_os_error() == Some(libc::EBUSY)
                        && started.elapsed() < BIND_BUSY_RETRY =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(e) => return Err(e),
            }
        }

        Ok(XskSocket {
            fd,
            rx,
            tx,
            fill,
            comp,
            umem,
            frame_size: cfg.frame_size,
            tx_base,
            tx_frames: cfg.tx_frames,
            free_tx,
            tx_unsubmitted: 0,
            need_wakeup: cfg.need_wakeup,
            ifindex,
            queue,
            counters: XskCounters::default(),
        })
    }

    /// The interface and queue the socket is bound to.
    pub fn bound_to(&self) -> (u32, u32) {
        (self.ifindex, self.queue)
    }

    /// The socket's own counters.
    pub fn counters(&self) -> XskCounters {
        self.counters
    }

    /// The frame at `addr` (`len` bytes), if it lies inside the UMEM.
    fn frame_mut(&mut self, addr: u64, len: u32) -> Option<&mut [u8]> {
        let start = usize::try_from(addr).ok()?;
        let end = start.checked_add(len as usize)?;
        if end > self.umem.len {
            return None;
        }
        // SAFETY: `[start, end)` lies inside the UMEM mapping (checked above), which lives
        // as long as `self`; the frame is owned by user space right now (taken off the RX
        // ring / free list and not yet handed back), and the `&mut self` borrow makes the
        // slice exclusive for its lifetime.
        Some(unsafe {
            std::slice::from_raw_parts_mut(self.umem.ptr.as_ptr().add(start), len as usize)
        })
    }

    /// Receives up to `max` frames: calls `f` with each frame (from the Ethernet header on,
    /// writable in place; the slice is only valid during the call), then gives the frames
    /// back to the kernel. Returns how many frames were received (0: nothing queued).
    pub fn recv_batch(&mut self, max: u32, mut f: impl FnMut(&mut [u8])) -> io::Result<u32> {
        let Some(mut rx) = self.rx.take() else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "socket opened without an RX ring",
            ));
        };
        let n = rx.available().min(max);
        let chunk_mask = !(u64::from(self.frame_size) - 1);
        for i in 0..n {
            let d = rx.peek(i);
            match self.frame_mut(d.addr, d.len) {
                Some(frame) => {
                    f(frame);
                    self.counters.rx += 1;
                }
                None => self.counters.bad_descs += 1,
            }
            // Back to the fill ring (at chunk start); never full: see the module docs.
            if self.fill.free() > 0 {
                self.fill.push(d.addr & chunk_mask);
            } else {
                self.counters.bad_descs += 1;
            }
        }
        if n > 0 {
            rx.release(n);
            self.fill.submit();
        }
        self.rx = Some(rx);
        if n > 0 && self.need_wakeup && self.fill.needs_wakeup() {
            self.kick_rx();
        }
        Ok(n)
    }

    fn kick_rx(&self) {
        // SAFETY: a zero-length recvfrom with no buffer and no address: the kernel reads
        // and writes no user memory; it only wakes the driver to refill.
        unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                std::ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            );
        }
    }

    /// Collects completed transmissions (their frames become free again).
    pub fn reap_completions(&mut self) -> u32 {
        let n = self.comp.available();
        let tx_frames = self.tx_frames as usize;
        let tx_end = self.tx_base + u64::from(self.frame_size) * u64::from(self.tx_frames);
        for i in 0..n {
            let addr = self.comp.peek(i) & !(u64::from(self.frame_size) - 1);
            if addr >= self.tx_base && addr < tx_end && self.free_tx.len() < tx_frames {
                self.free_tx.push(addr);
            } else {
                self.counters.bad_descs += 1;
            }
        }
        if n > 0 {
            self.comp.release(n);
            self.counters.tx_completed += u64::from(n);
        }
        n
    }

    /// Queues `frame` for transmission (copied into a free TX frame). Returns `false` (and
    /// counts `tx_full`) when no TX frame or ring slot is free, or the frame is too long.
    /// Nothing leaves before [`XskSocket::flush`].
    pub fn send(&mut self, frame: &[u8]) -> io::Result<bool> {
        let Some(mut tx) = self.tx.take() else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "socket opened without a TX ring",
            ));
        };
        let ok = self.send_on(&mut tx, frame);
        self.tx = Some(tx);
        Ok(ok)
    }

    fn send_on(&mut self, tx: &mut Ring<XdpDesc>, frame: &[u8]) -> bool {
        if frame.len() > self.frame_size as usize {
            self.counters.tx_full += 1;
            return false;
        }
        if self.free_tx.is_empty() {
            self.reap_completions();
        }
        if tx.free() == 0 {
            self.counters.tx_full += 1;
            return false;
        }
        let Some(addr) = self.free_tx.pop() else {
            self.counters.tx_full += 1;
            return false;
        };
        let len = frame.len() as u32;
        match self.frame_mut(addr, len) {
            Some(dst) => dst.copy_from_slice(frame),
            None => {
                self.counters.bad_descs += 1;
                return false;
            }
        }
        tx.push(XdpDesc {
            addr,
            len,
            options: 0,
        });
        self.tx_unsubmitted += 1;
        self.counters.tx += 1;
        true
    }

    /// Publishes queued frames and kicks the kernel to send them (copy mode sends at most
    /// 32 per kick: kicks until the ring is drained, bounded), then reaps completions.
    /// Transient kick errors (`EAGAIN`, `EBUSY`, `ENOBUFS`, `ENETDOWN`) are not reported.
    pub fn flush(&mut self) -> io::Result<()> {
        let Some(mut tx) = self.tx.take() else {
            return Ok(());
        };
        let res = self.flush_on(&mut tx);
        self.tx = Some(tx);
        res
    }

    fn flush_on(&mut self, tx: &mut Ring<XdpDesc>) -> io::Result<()> {
        if self.tx_unsubmitted > 0 {
            tx.submit();
            self.tx_unsubmitted = 0;
        }
        for _ in 0..256 {
            if tx.outstanding() == 0 {
                break;
            }
            if self.need_wakeup && !tx.needs_wakeup() {
                break;
            }
            // SAFETY: a zero-length sendto with no buffer and no address: the kernel
            // reads and writes no user memory; it processes the TX ring.
            let ret = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    std::ptr::null(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null(),
                    0,
                )
            };
            if ret < 0 {
                let err = io::Error::last_os_error();
                match err.raw_os_error() {
                    Some(libc::EAGAIN | libc::EINTR) => continue,
                    Some(libc::EBUSY | libc::ENOBUFS | libc::ENETDOWN) => break,
                    _ => return Err(err),
                }
            }
        }
        self.reap_completions();
        Ok(())
    }

    /// TX frames currently free (not queued or in flight).
    pub fn tx_free(&self) -> usize {
        self.free_tx.len()
    }

    /// The kernel's counters for this socket.
    pub fn statistics(&self) -> io::Result<XskStats> {
        let mut st = XskStats::default();
        let mut len = mem::size_of::<XskStats>() as libc::socklen_t;
        // SAFETY: `st` and `len` are valid for writes during the call; `len` is its size.
        let ret = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_XDP,
                libc::XDP_STATISTICS,
                (&mut st as *mut XskStats).cast::<libc::c_void>(),
                &mut len,
            )
        };
        super::cvt(ret)?;
        Ok(st)
    }
}

/// An [`XskSocket`] on one queue together with the [`XdpProgram`] that feeds it, attached
/// to the socket's interface: what a forwarding loop owns per interface. Dropping it
/// detaches the program first, then closes the socket.
#[derive(Debug)]
pub struct XskPort {
    // Declaration order is drop order.
    program: XdpProgram,
    socket: XskSocket,
}

impl XskPort {
    /// Loads the program for `redirect`, opens the socket on `ifindex`/`queue`, registers
    /// it and attaches the program in `mode`. Everything is undone if a step fails.
    pub fn open(
        ifindex: u32,
        queue: u32,
        redirect: Redirect,
        mode: AttachMode,
        cfg: &XskConfig,
    ) -> io::Result<XskPort> {
        let mut program = XdpProgram::load(redirect, queue + 1)?;
        let socket = XskSocket::open(ifindex, queue, cfg)?;
        program.register(queue, &socket)?;
        program.attach(ifindex, mode)?;
        Ok(XskPort { program, socket })
    }

    /// The program (to manage the redirected addresses).
    pub fn program(&self) -> &XdpProgram {
        &self.program
    }

    /// The socket.
    pub fn socket(&mut self) -> &mut XskSocket {
        &mut self.socket
    }
}

impl AsFd for XskPort {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

impl AsFd for XskSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for XskSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
#[path = "xdp_tests.rs"]
mod tests;
