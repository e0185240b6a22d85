//! TPACKET_V2 mmap rings: an RX ring and a TX ring per interface on one `AF_PACKET`
//! socket, so that a batch of frames costs no system call to read (but one `recvmsg` per
//! frame longer than an RX slot, see the copy path below) and one to send.
//!
//! # Contract
//!
//! [`open`] makes one `AF_PACKET`/`SOCK_RAW` socket bound to one interface for `ETH_P_ALL`
//! with the same discipline as [`super::PacketSocket`]:
//!
//! - `PACKET_VNET_HDR`: the kernel writes a `virtio_net_hdr` right before each received
//!   frame (`tpacket_rcv`, `do_vnet`, at `tp_mac - 10`) and reads one right before each
//!   frame to send (`tpacket_snd`), so GSO super-frames of up to 64 KiB arrive and leave
//!   whole, with checksum-partial state. (Proven on this kernel by `io::tests::ring_*`.)
//! - `PACKET_IGNORE_OUTGOING`: only frames arriving on the interface are seen.
//! - A reject-all classic BPF filter is attached before anything else; then the options,
//!   the rings, the mapping, `bind`; then every slot is handed back to the kernel and only
//!   then the real filter is attached: no unfiltered frame is ever read.
//! - `PACKET_QDISC_BYPASS` on transmit (frames go straight to the driver), and
//!   `PACKET_LOSS`, so a frame the kernel refuses to send is skipped instead of stopping
//!   the TX ring. The bypass (`packet_direct_xmit`) cannot segment: a GSO frame for a
//!   device without that offload (a tap, a NIC without TSO) is dropped, and the kernel
//!   puts it back in the ring (`TP_STATUS_SEND_REQUEST`) and fails the kick with
//!   `ENOBUFS` every time, which would stop the ring for good. So the first kick that
//!   fails with `ENOBUFS` turns the bypass off for that ring (the normal `dev_queue_xmit`
//!   path segments in software and queues instead of dropping) and kicks again
//!   ([`TxCounters::bypass_off`]).
//! - `PACKET_COPY_THRESH`: RX slots are small (sized for the MTU), and a frame longer
//!   than a slot (a GSO super-frame, a GRO'd one) takes the *copy path*: `tpacket_rcv`
//!   clones it whole onto the socket's receive queue (if the socket's receive buffer is
//!   not full: `sk_rmem_alloc < sk_rcvbuf`, [`COPY_RCVBUF`] is asked for at open), writes
//!   the truncated frame into the slot and marks it `TP_STATUS_COPY`.
//!
//! # Memory
//!
//! RX slots hold one frame of the MTU: [`Geometry::for_mtu`] makes slots of
//! [`RX_NET_OFFSET`] (90) + MTU + 4 (a VLAN tag) bytes rounded up to 1 KiB: 2 KiB for
//! MTU 1500 (9 KiB for 9000), in 64 KiB blocks (32 slots of 2 KiB). With the default
//! `[io] ring_frames = 4096` the RX ring is 8 MiB and holds 4096 frames of any size up to
//! the MTU. TX slots hold a whole 64 KiB GSO frame with its headers: [`Geometry::for_frames`]
//! makes slots of [`SLOT_NEED`] rounded up to whole pages (17 pages = 68 KiB with 4 KiB
//! pages) in blocks of 1 MiB (15 slots per block; the kernel allocates each block as one
//! power-of-two chunk, so 1 MiB blocks waste one page in 256); the TX ring has
//! `min(frames,` [`TX_FRAMES`]`)` slots (a kick sends at once), 270 slots in 18 MiB. A
//! requested slot count is rounded up to whole blocks. Per interface, at the default:
//! 8 + 18 = 26 MiB, allocated (and zeroed) by the kernel when the rings are set up (about
//! 2.6 ms per MiB here), plus the receive buffer's copies while they wait (at most
//! ~2 × [`COPY_RCVBUF`] of skb truesize, only while big frames arrive faster than they are
//! read).
//!
//! # Invariants
//!
//! - A slot belongs to userspace exactly while its status says so (RX: `TP_STATUS_USER`;
//!   TX: `TP_STATUS_AVAILABLE`); the status word is read with `Acquire` and written with
//!   `Release`, and slot memory is only touched through a borrow of the ring half that
//!   owns the slot at that moment. The RX and TX halves ([`RxRing`], [`TxRing`]) cover
//!   disjoint parts of the mapping.
//! - RX slots are consumed in ring order and each is handed back when its [`RxSlot`] is
//!   dropped.
//! - Ring and queue stay in step: the kernel queues a copied frame and takes its slot under
//!   the same lock (`sk_receive_queue.lock`), and marks the slot (`TP_STATUS_COPY`, with
//!   `TP_STATUS_USER`) only after the frame is queued. Nothing else is ever queued on a
//!   ring socket (`tpacket_rcv` replaces `packet_rcv`). So the n-th `TP_STATUS_COPY` slot
//!   in ring order is the n-th frame on the queue, and [`RxRing::next_slot`] reads exactly
//!   one queued frame (one `recvmsg`, with its vnet header: `packet_recvmsg` builds it from
//!   the skb as for [`super::PacketSocket::recv`]) for every such slot, whatever else the
//!   slot says, before handing the slot back. Frames therefore come out in arrival order,
//!   small and big interleaved.
//! - Counted by reason in [`RxCounters`], never returned truncated: a frame longer than a
//!   slot that was not copied (`tp_snaplen < tp_len` without `TP_STATUS_COPY`: the receive
//!   buffer was full, or the clone failed) is `copy_lost`; a copied frame `recvmsg` could
//!   not deliver (no vnet header possible, longer than [`super::MAX_FRAME_LEN`]) is
//!   `copy_errors`; a slot header that does not describe a frame inside its slot is
//!   `malformed`. A frame dropped because every slot was full is counted by the kernel
//!   ([`RxRing::statistics`] `drops`), and so is its copy (freed with it).
//! - TX slots are filled in ring order, the order in which the kernel sends them; a full
//!   ring (the next slot still queued or in flight, even after a kick) drops the frame
//!   and counts it ([`TxCounters::ring_full`]). Committed frames leave at the next
//!   [`TxRing::kick`].
//! - Frames to send are copied whole into the socket buffer by the kernel (the vnet
//!   header's `hdr_len` is set to the frame length): with page references into the ring
//!   instead, a receiver that frees the socket's reference early (veth peers orphan the
//!   skb in `ip_rcv`) would mark the slot available while the pages are still queued, and
//!   a reused slot would corrupt data in flight.

use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use super::{Filter, PacketStats, VnetHdr, setsockopt};

/// `TPACKET_V2` (linux/if_packet.h `enum tpacket_versions`).
const TPACKET_V2: libc::c_int = 1;
/// `TPACKET_ALIGNMENT`.
const TPACKET_ALIGNMENT: usize = 16;
/// `sizeof(struct tpacket2_hdr)`, aligned: where a TX frame's data (here: its vnet header)
/// starts when `PACKET_TX_HAS_OFF` is off (`tp_hdrlen - sizeof(struct sockaddr_ll)`).
const TX_DATA_OFFSET: usize = 32;
/// `TPACKET2_HDRLEN`: the aligned header plus a `sockaddr_ll`.
const TPACKET2_HDRLEN: usize = TX_DATA_OFFSET + mem::size_of::<libc::sockaddr_ll>();
/// Where an Ethernet frame starts in an RX slot (`tpacket_rcv`: `netoff =
/// TPACKET_ALIGN(tp_hdrlen + 16) + vnet`, `macoff = netoff - 14`).
const RX_MAC_OFFSET: usize = align(TPACKET2_HDRLEN + 16) + VnetHdr::LEN - 14;
/// The bytes a slot needs for the largest frame, RX or TX (TX slots are this big; RX
/// slots are sized from the MTU, see [`Geometry::for_mtu`]).
pub const SLOT_NEED: usize = {
    let rx = RX_MAC_OFFSET + super::MAX_FRAME_LEN;
    let tx = TX_DATA_OFFSET + VnetHdr::LEN + super::MAX_FRAME_LEN;
    if rx > tx { rx } else { tx }
};
/// Where the network header starts in an RX slot, whatever the link header's length (up
/// to 28 bytes: `netoff = TPACKET_ALIGN(tp_hdrlen + max(maclen, 16)) + vnet`): a frame
/// whose network part is at most `mtu` bytes ends by `RX_NET_OFFSET + mtu`.
pub const RX_NET_OFFSET: usize = align(TPACKET2_HDRLEN + 16) + VnetHdr::LEN;
/// RX slot sizes are multiples of this.
const RX_SLOT_ROUND: usize = 1024;
/// Slack for one VLAN tag the kernel leaves in the frame (QinQ's inner tag).
const VLAN_SLACK: usize = 4;
/// The smallest RX block (a power of two, one kernel allocation of order 4).
const RX_BLOCK_SIZE: usize = 64 << 10;
/// The receive buffer asked for (`SO_RCVBUFFORCE`, the kernel doubles it): it holds the
/// frames taken by the copy path until they are read: a few dozen GSO super-frames.
pub const COPY_RCVBUF: usize = 8 << 20;
/// The MTU [`open`] sizes RX slots for.
pub const DEFAULT_MTU: u32 = 1500;
/// `PACKET_COPY_THRESH` (linux/if_packet.h).
const PACKET_COPY_THRESH: libc::c_int = 7;
/// Most slots of a TX ring: a kick sends its frames at once (and a full ring is kicked
/// before a frame is dropped), so it needs no depth; the RX ring absorbs bursts.
pub const TX_FRAMES: u32 = 256;
/// The size of a ring block (a power of two, see the module docs).
const BLOCK_SIZE: usize = 1 << 20;

// TP_STATUS_* (linux/if_packet.h).
const TP_STATUS_KERNEL: u32 = 0;
const TP_STATUS_USER: u32 = 1;
const TP_STATUS_COPY: u32 = 1 << 1;
const TP_STATUS_AVAILABLE: u32 = 0;
const TP_STATUS_SEND_REQUEST: u32 = 1;
const TP_STATUS_SENDING: u32 = 2;

const fn align(n: usize) -> usize {
    (n + TPACKET_ALIGNMENT - 1) & !(TPACKET_ALIGNMENT - 1)
}

/// `struct tpacket2_hdr`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct Tpacket2Hdr {
    tp_status: u32,
    tp_len: u32,
    tp_snaplen: u32,
    tp_mac: u16,
    tp_net: u16,
    tp_sec: u32,
    tp_nsec: u32,
    tp_vlan_tci: u16,
    tp_vlan_tpid: u16,
    tp_padding: [u8; 4],
}

const _: () = assert!(mem::size_of::<Tpacket2Hdr>() == TX_DATA_OFFSET);

/// `struct tpacket_req`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct TpacketReq {
    tp_block_size: libc::c_uint,
    tp_block_nr: libc::c_uint,
    tp_frame_size: libc::c_uint,
    tp_frame_nr: libc::c_uint,
}

/// The shape of one ring (pure arithmetic; see the module docs for the memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Bytes per slot: [`SLOT_NEED`] rounded up to whole pages.
    pub frame_size: usize,
    /// Bytes per block (one kernel allocation).
    pub block_size: usize,
    /// Slots per block.
    pub frames_per_block: usize,
    /// Blocks in the ring.
    pub block_nr: usize,
}

impl Geometry {
    /// The geometry for at least `frames` slots (at least 1) with pages of `page_size`
    /// bytes (a power of two).
    pub fn for_frames(frames: u32, page_size: usize) -> Geometry {
        let page = page_size.max(4096);
        let frame_size = SLOT_NEED.div_ceil(page) * page;
        let block_size = BLOCK_SIZE.max(frame_size.next_power_of_two());
        let frames_per_block = block_size / frame_size;
        let frames = usize::try_from(frames.max(1)).unwrap_or(usize::MAX);
        Geometry {
            frame_size,
            block_size,
            frames_per_block,
            block_nr: frames.div_ceil(frames_per_block),
        }
    }

    /// The geometry of an RX ring of at least `frames` slots (at least 1) for frames whose
    /// network part is at most `mtu` bytes: [`RX_NET_OFFSET`] + `mtu` + 4 rounded up to
    /// 1 KiB (2 KiB for MTU 1500, 9 KiB for 9000), in blocks of at least 64 KiB (the next
    /// power of two above a slot, at least a page). Longer frames (GSO super-frames, GRO)
    /// take the copy path (module docs).
    pub fn for_mtu(frames: u32, mtu: u32, page_size: usize) -> Geometry {
        let page = page_size.max(4096);
        let mtu = usize::try_from(mtu.min(65_535)).unwrap_or(65_535);
        let need = RX_NET_OFFSET + mtu + VLAN_SLACK;
        let frame_size = need.div_ceil(RX_SLOT_ROUND) * RX_SLOT_ROUND;
        let block_size = RX_BLOCK_SIZE.max(page).max(frame_size.next_power_of_two());
        let frames_per_block = block_size / frame_size;
        let frames = usize::try_from(frames.max(1)).unwrap_or(usize::MAX);
        Geometry {
            frame_size,
            block_size,
            frames_per_block,
            block_nr: frames.div_ceil(frames_per_block),
        }
    }

    /// Slots in the ring (the request rounded up to whole blocks).
    pub fn frame_nr(&self) -> usize {
        self.block_nr * self.frames_per_block
    }

    /// Bytes of the ring: mapped, and allocated by the kernel (blocks are powers of two).
    pub fn bytes(&self) -> usize {
        self.block_nr * self.block_size
    }

    /// Offset of slot `i` (< [`Geometry::frame_nr`]) from the start of the ring.
    fn offset(&self, i: usize) -> usize {
        (i / self.frames_per_block) * self.block_size
            + (i % self.frames_per_block) * self.frame_size
    }

    fn req(&self) -> io::Result<TpacketReq> {
        let c = |v: usize| {
            libc::c_uint::try_from(v)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "ring too large"))
        };
        Ok(TpacketReq {
            tp_block_size: c(self.block_size)?,
            tp_block_nr: c(self.block_nr)?,
            tp_frame_size: c(self.frame_size)?,
            tp_frame_nr: c(self.frame_nr())?,
        })
    }
}

/// Frames the RX ring returned, and those it handed back without returning them, by
/// reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RxCounters {
    /// Frames returned to the caller (from a slot or through the copy path).
    pub frames: u64,
    /// Of `frames`: longer than a slot, read whole from the socket's receive queue.
    pub copied: u64,
    /// Longer than a slot and not queued whole (`tp_snaplen < tp_len` without
    /// `TP_STATUS_COPY`: the socket's receive buffer was full of copies not read yet, or
    /// the kernel could not clone the frame): dropped, never forwarded truncated.
    pub copy_lost: u64,
    /// A `TP_STATUS_COPY` slot whose queued frame could not be read (the kernel could not
    /// describe it in a vnet header, it was longer than [`super::MAX_FRAME_LEN`], or, which
    /// the kernel's ordering rules out, nothing was queued): dropped.
    pub copy_errors: u64,
    /// A slot header that does not describe a frame inside the slot.
    pub malformed: u64,
}

/// Frames the TX ring did not send, by reason, and kick failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TxCounters {
    /// Frames queued for the kernel.
    pub frames: u64,
    /// Dropped: the next slot was still queued or in flight.
    pub ring_full: u64,
    /// Dropped: longer than a slot can carry.
    pub too_big: u64,
    /// `send` kicks that failed (the frames stay queued for the next kick).
    pub kick_errors: u64,
    /// 1 once the qdisc bypass was turned off (see the module docs).
    pub bypass_off: u64,
}

/// The socket and the mapping, shared by the two halves; unmapped and closed when both
/// are gone.
#[derive(Debug)]
struct Shared {
    fd: OwnedFd,
    ifindex: u32,
    map: NonNull<u8>,
    map_len: usize,
}

// SAFETY: `Shared` owns its fd and its mapping; the raw pointer is only dereferenced by
// the ring halves, each through `&mut self` on disjoint parts of the mapping (module
// invariants), so moving or sharing `Shared` between threads cannot race.
unsafe impl Send for Shared {}
// SAFETY: as above: `&Shared` gives access to nothing but the fd and the ifindex.
unsafe impl Sync for Shared {}

impl Drop for Shared {
    fn drop(&mut self) {
        // SAFETY: `map`/`map_len` are exactly the mapping made in `open`; no borrow of it
        // outlives the halves, which are gone when `Shared` drops.
        unsafe {
            libc::munmap(self.map.as_ptr().cast::<libc::c_void>(), self.map_len);
        }
    }
}

/// The receive half of a ring pair (see the module docs).
#[derive(Debug)]
pub struct RxRing {
    shared: Arc<Shared>,
    base: NonNull<u8>,
    geo: Geometry,
    head: usize,
    counters: RxCounters,
    /// Where the copy path reads a frame ([`super::MAX_FRAME_LEN`] bytes).
    copy_buf: Vec<u8>,
}

/// The transmit half of a ring pair (see the module docs).
#[derive(Debug)]
pub struct TxRing {
    shared: Arc<Shared>,
    base: NonNull<u8>,
    geo: Geometry,
    head: usize,
    /// Frames committed since the last kick.
    queued: usize,
    /// The slot committed last (to see whether the kernel has taken everything).
    last: Option<usize>,
    /// `PACKET_QDISC_BYPASS` is on.
    bypass: bool,
    /// The last kick found the interface down or gone.
    down: bool,
    counters: TxCounters,
}

// SAFETY: the halves own (through `Arc<Shared>`) the mapping their pointers point into,
// and touch only their own disjoint part of it, through `&mut self` (or `&self` for the
// atomic status words); nothing is tied to the creating thread.
unsafe impl Send for RxRing {}
// SAFETY: as above.
unsafe impl Send for TxRing {}

/// Opens a ring pair on interface `ifindex` with `filter` attached, an RX ring of `frames`
/// slots sized for [`DEFAULT_MTU`] and a TX ring of `min(frames,` [`TX_FRAMES`]`)` GSO-sized
/// slots (rounded up to whole blocks, see [`Geometry`]). Needs CAP_NET_RAW; `ENODEV` for
/// an unknown ifindex, `ENOMEM` when the rings cannot be allocated.
pub fn open(ifindex: u32, filter: &Filter, frames: u32) -> io::Result<(RxRing, TxRing)> {
    open_mtu(ifindex, filter, frames, DEFAULT_MTU)
}

/// [`open`] with RX slots sized for `mtu` ([`Geometry::for_mtu`]); frames longer than a
/// slot still arrive whole, through the copy path.
pub fn open_mtu(
    ifindex: u32,
    filter: &Filter,
    frames: u32,
    mtu: u32,
) -> io::Result<(RxRing, TxRing)> {
    let page = page_size();
    let rx = Geometry::for_mtu(frames, mtu, page);
    let tx = Geometry::for_frames(frames.min(TX_FRAMES), page);
    open_with(ifindex, filter, rx, tx)
}

/// The system's page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(page).unwrap_or(4096)
}

/// [`open`] with given geometries for the RX and the TX ring (tests use small slots to
/// send frames through the copy path); the kernel refuses an inconsistent one with
/// `EINVAL`.
pub(crate) fn open_with(
    ifindex: u32,
    filter: &Filter,
    rx_geo: Geometry,
    tx_geo: Geometry,
) -> io::Result<(RxRing, TxRing)> {
    for geo in [rx_geo, tx_geo] {
        if geo.frame_size < TX_DATA_OFFSET + VnetHdr::LEN + 64 || geo.frames_per_block == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "ring slots too small",
            ));
        }
    }
    let fd = super::new_packet_fd()?;
    let one: libc::c_int = 1;
    for opt in [
        libc::PACKET_LOSS,
        libc::PACKET_QDISC_BYPASS,
        PACKET_COPY_THRESH,
    ] {
        setsockopt(fd.as_fd(), libc::SOL_PACKET, opt, &one)?;
    }
    // Room for the copy path's frames (best effort: without it, big frames are counted
    // `copy_lost` more often).
    let _ = super::set_buffer_sizes(fd.as_fd(), Some(COPY_RCVBUF), None);
    setsockopt(
        fd.as_fd(),
        libc::SOL_PACKET,
        libc::PACKET_VERSION,
        &TPACKET_V2,
    )?;
    setsockopt(
        fd.as_fd(),
        libc::SOL_PACKET,
        libc::PACKET_RX_RING,
        &rx_geo.req()?,
    )?;
    setsockopt(
        fd.as_fd(),
        libc::SOL_PACKET,
        libc::PACKET_TX_RING,
        &tx_geo.req()?,
    )?;
    let map_len = rx_geo.bytes() + tx_geo.bytes();
    // SAFETY: a fresh shared mapping of the socket's rings (RX then TX, the layout
    // packet_mmap requires: exactly the size of both rings, offset 0); checked below.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            map_len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let Some(map) = NonNull::new(ptr.cast::<u8>()) else {
        return Err(io::Error::other("mmap returned NULL"));
    };
    let shared = Arc::new(Shared {
        fd,
        ifindex,
        map,
        map_len,
    });

    super::bind_all(shared.fd.as_fd(), ifindex)?;

    // SAFETY: the TX ring starts right after the RX ring, inside the mapping of both.
    let tx_base = unsafe { NonNull::new_unchecked(map.as_ptr().add(rx_geo.bytes())) };
    let mut rx = RxRing {
        shared: Arc::clone(&shared),
        base: map,
        geo: rx_geo,
        head: 0,
        counters: RxCounters::default(),
        copy_buf: vec![0; super::MAX_FRAME_LEN],
    };
    let mut tx = TxRing {
        shared,
        base: tx_base,
        geo: tx_geo,
        head: 0,
        queued: 0,
        last: None,
        bypass: true,
        down: false,
        counters: TxCounters::default(),
    };
    rx.hand_back_all();
    for i in 0..tx_geo.frame_nr() {
        tx.status(i).store(TP_STATUS_AVAILABLE, Ordering::Release);
    }
    tx.head = 0;
    rx.set_filter(filter)?;
    Ok((rx, tx))
}

/// One received frame, owned by userspace until dropped (then the slot goes back to the
/// kernel).
#[derive(Debug)]
pub struct RxSlot<'a> {
    status: &'a AtomicU32,
    /// The frame's vnet header.
    pub vnet: VnetHdr,
    /// The frame, from the Ethernet header on.
    pub data: &'a [u8],
}

impl Drop for RxSlot<'_> {
    fn drop(&mut self) {
        self.status.store(TP_STATUS_KERNEL, Ordering::Release);
    }
}

impl RxRing {
    /// The interface the ring is bound to.
    pub fn ifindex(&self) -> u32 {
        self.shared.ifindex
    }

    /// The ring's shape.
    pub fn geometry(&self) -> Geometry {
        self.geo
    }

    /// Frames returned and frames dropped, by reason, since the ring was opened.
    pub fn counters(&self) -> RxCounters {
        self.counters
    }

    /// The status word of slot `i`.
    fn status(&self, i: usize) -> &AtomicU32 {
        // SAFETY: slot `i` (< frame_nr) starts inside the RX part of the mapping at a
        // page-aligned offset (so 4-byte aligned), and begins with the u32 `tp_status`
        // that the kernel and this process only access atomically; the reference lives no
        // longer than `&self`, which keeps the mapping alive.
        unsafe { AtomicU32::from_ptr(self.base.as_ptr().add(self.geo.offset(i)).cast::<u32>()) }
    }

    /// Whether a frame (or a frame to drop) is waiting in the next slot. No system call.
    pub fn ready(&self) -> bool {
        self.status(self.head).load(Ordering::Acquire) & TP_STATUS_USER != 0
    }

    /// Hands every slot to the kernel (at open, under the reject-all filter).
    fn hand_back_all(&mut self) {
        for i in 0..self.geo.frame_nr() {
            self.status(i).store(TP_STATUS_KERNEL, Ordering::Release);
        }
        self.head = 0;
    }

    /// The next received frame, in ring order, or `None` when the next slot is the
    /// kernel's. A `TP_STATUS_COPY` slot's frame is read whole from the socket's receive
    /// queue (one `recvmsg`) and returned from the ring's own buffer; its slot is handed
    /// back with the returned [`RxSlot`] like any other. Frames longer than a slot that
    /// were not copied, and malformed slots, are handed back, counted and skipped (at most
    /// one ring's worth per call).
    pub fn next_slot(&mut self) -> Option<RxSlot<'_>> {
        for _ in 0..self.geo.frame_nr() {
            let i = self.head;
            let status = self.status(i).load(Ordering::Acquire);
            if status & TP_STATUS_USER == 0 {
                return None;
            }
            self.head = (i + 1) % self.geo.frame_nr();
            let off = self.geo.offset(i);
            if status & TP_STATUS_COPY != 0 {
                // The kernel queued the whole frame before it marked the slot (both under
                // the queue's lock, in ring order): it is the oldest one queued. Read it
                // now, whatever the slot says, so that queue and ring stay in step.
                match self.recv_copy() {
                    Some((vnet, len)) => {
                        self.counters.frames += 1;
                        self.counters.copied += 1;
                        // SAFETY: as in `status`; the slot stays userspace's until the
                        // returned RxSlot is dropped.
                        let status = unsafe {
                            AtomicU32::from_ptr(self.base.as_ptr().add(off).cast::<u32>())
                        };
                        let data = self.copy_buf.get(..len).unwrap_or_default();
                        return Some(RxSlot { status, vnet, data });
                    }
                    None => {
                        self.counters.copy_errors += 1;
                        self.status(i).store(TP_STATUS_KERNEL, Ordering::Release);
                        continue;
                    }
                }
            }
            // SAFETY: the slot is userspace's (TP_STATUS_USER, read with Acquire, so the
            // kernel's writes to it are visible); its header is plain data at the slot's
            // start (unaligned read for robustness).
            let h = unsafe {
                std::ptr::read_unaligned(self.base.as_ptr().add(off).cast::<Tpacket2Hdr>())
            };
            let mac = usize::from(h.tp_mac);
            let snap = usize::try_from(h.tp_snaplen).unwrap_or(usize::MAX);
            let len = usize::try_from(h.tp_len).unwrap_or(usize::MAX);
            let fits = mac >= TPACKET2_HDRLEN + VnetHdr::LEN
                && mac
                    .checked_add(snap)
                    .is_some_and(|end| end <= self.geo.frame_size);
            if !fits {
                self.counters.malformed += 1;
                self.status(i).store(TP_STATUS_KERNEL, Ordering::Release);
                continue;
            }
            if snap < len {
                self.counters.copy_lost += 1;
                self.status(i).store(TP_STATUS_KERNEL, Ordering::Release);
                continue;
            }
            // SAFETY: `mac - 10 .. mac + snap` lies inside slot `i` (checked above), which
            // stays userspace's until the returned RxSlot (borrowing `self` mutably, so no
            // other slot access can happen) is dropped. The slot header (with the status
            // word) ends before `mac - 10`, so `data` does not overlap `status`.
            let (hdr, data) = unsafe {
                let start = self.base.as_ptr().add(off + mac - VnetHdr::LEN);
                (
                    std::slice::from_raw_parts(start, VnetHdr::LEN),
                    std::slice::from_raw_parts(start.add(VnetHdr::LEN), snap),
                )
            };
            self.counters.frames += 1;
            let vnet = VnetHdr::parse(hdr).unwrap_or(VnetHdr::NONE);
            // Reborrow the status word for the slot's lifetime.
            // SAFETY: as in `status`.
            let status = unsafe { AtomicU32::from_ptr(self.base.as_ptr().add(off).cast::<u32>()) };
            return Some(RxSlot { status, vnet, data });
        }
        None
    }

    /// The copy path: the oldest frame on the socket's receive queue into `copy_buf`, or
    /// `None` when it could not be read (the frame, if any, is consumed: see
    /// [`RxCounters::copy_errors`]).
    fn recv_copy(&mut self) -> Option<(VnetHdr, usize)> {
        // `ENETDOWN` is the socket's pending error (the interface went down), reported
        // once before the queue is read: read again.
        for _ in 0..3 {
            match super::recv_frame(self.shared.fd.as_fd(), &mut self.copy_buf) {
                Ok(got) => return got,
                Err(e) if e.raw_os_error() == Some(libc::ENETDOWN) => continue,
                Err(_) => return None,
            }
        }
        None
    }

    /// Clears the socket's pending error (`ENETDOWN` after the interface went down), which
    /// would otherwise keep `poll` reporting the socket ready: call it when `poll` says so
    /// but [`RxRing::ready`] does not. Returns the error, if one was pending.
    pub fn take_error(&self) -> Option<io::Error> {
        match super::getsockopt_int(self.shared.fd.as_fd(), libc::SOL_SOCKET, libc::SO_ERROR) {
            Ok(0) => None,
            Ok(e) => Some(io::Error::from_raw_os_error(e)),
            Err(e) => Some(e),
        }
    }

    /// Raises (or, for tests, lowers) the socket's receive buffer, which bounds the frames
    /// the copy path holds ([`COPY_RCVBUF`] at open); see [`super::set_buffer_sizes`].
    /// Returns the effective size.
    pub fn set_receive_buffer(&self, bytes: usize) -> io::Result<usize> {
        super::set_buffer_sizes(self.shared.fd.as_fd(), Some(bytes), None).map(|(r, _)| r)
    }

    /// Replaces the socket filter (atomically, in the kernel). Frames already in the ring
    /// stay there.
    pub fn set_filter(&self, filter: &Filter) -> io::Result<()> {
        super::attach_filter(self.shared.fd.as_fd(), filter)
    }

    /// Reads and resets the kernel's counters for the socket (`drops`: the RX ring was
    /// full, or a frame's vnet header could not be made).
    pub fn statistics(&self) -> io::Result<PacketStats> {
        super::packet_statistics(self.shared.fd.as_fd())
    }
}

impl AsFd for RxRing {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.shared.fd.as_fd()
    }
}

impl AsRawFd for RxRing {
    fn as_raw_fd(&self) -> RawFd {
        self.shared.fd.as_raw_fd()
    }
}

impl TxRing {
    /// The interface the ring sends on.
    pub fn ifindex(&self) -> u32 {
        self.shared.ifindex
    }

    /// The ring's shape.
    pub fn geometry(&self) -> Geometry {
        self.geo
    }

    /// Frames queued and dropped, by reason, since the ring was opened.
    pub fn counters(&self) -> TxCounters {
        self.counters
    }

    /// The longest frame a slot carries.
    pub fn max_frame_len(&self) -> usize {
        self.geo.frame_size - TX_DATA_OFFSET - VnetHdr::LEN
    }

    fn status(&self, i: usize) -> &AtomicU32 {
        // SAFETY: as in `RxRing::status`, for the TX part of the mapping.
        unsafe { AtomicU32::from_ptr(self.base.as_ptr().add(self.geo.offset(i)).cast::<u32>()) }
    }

    /// The next free slot's frame area ([`TxRing::max_frame_len`] bytes), to write a frame
    /// into and [`TxRing::commit`]; `None` if the ring is full (not counted: the caller
    /// may try elsewhere). Calling it again before a commit returns the same slot.
    pub fn reserve(&mut self) -> Option<&mut [u8]> {
        let status = self.status(self.head).load(Ordering::Acquire);
        if status & (TP_STATUS_SEND_REQUEST | TP_STATUS_SENDING) != 0 {
            return None;
        }
        let max = self.max_frame_len();
        // SAFETY: the slot is AVAILABLE (read with Acquire), so the kernel neither reads
        // nor writes it until this process sets SEND_REQUEST in `commit`, which needs
        // `&mut self` and so ends this borrow first. The area starts after the slot header
        // and the vnet header and ends inside the slot.
        Some(unsafe {
            std::slice::from_raw_parts_mut(
                self.base
                    .as_ptr()
                    .add(self.geo.offset(self.head) + TX_DATA_OFFSET + VnetHdr::LEN),
                max,
            )
        })
    }

    /// [`TxRing::reserve`], but when the ring is full and holds frames not kicked yet,
    /// kicks it first (the kernel sends them at once and frees their slots).
    pub fn reserve_or_kick(&mut self) -> Option<&mut [u8]> {
        let status = self.status(self.head).load(Ordering::Acquire);
        if status & (TP_STATUS_SEND_REQUEST | TP_STATUS_SENDING) != 0 && self.queued > 0 {
            // An error is counted; the frames stay queued and the reservation fails.
            let _ = self.kick();
        }
        self.reserve()
    }

    /// Queues the frame written into the reserved slot: its first `len` bytes, sent with
    /// `vnet` (its `hdr_len` is replaced, see the module docs). Counts and drops when no
    /// slot is free or `len` is too long; returns whether the frame was queued.
    pub fn commit(&mut self, len: usize, vnet: &VnetHdr) -> bool {
        if len > self.max_frame_len() {
            self.counters.too_big += 1;
            return false;
        }
        if self.reserve().is_none() {
            self.counters.ring_full += 1;
            return false;
        }
        let i = self.head;
        let off = self.geo.offset(i);
        let hdr = VnetHdr {
            hdr_len: u16::try_from(len).unwrap_or(u16::MAX),
            ..*vnet
        };
        let tp_len = u32::try_from(VnetHdr::LEN + len).unwrap_or(u32::MAX);
        // SAFETY: the slot is AVAILABLE (checked just above), so only this process touches
        // it; `tp_len` sits at byte 4 of the slot header (4-byte aligned), the vnet header
        // at TX_DATA_OFFSET, both inside the slot.
        unsafe {
            let p = self.base.as_ptr().add(off);
            std::ptr::write_unaligned(p.add(4).cast::<u32>(), tp_len);
            std::ptr::copy_nonoverlapping(
                hdr.to_bytes().as_ptr(),
                p.add(TX_DATA_OFFSET),
                VnetHdr::LEN,
            );
        }
        self.status(i)
            .store(TP_STATUS_SEND_REQUEST, Ordering::Release);
        self.head = (i + 1) % self.geo.frame_nr();
        self.queued += 1;
        self.last = Some(i);
        self.counters.frames += 1;
        true
    }

    /// Copies `frame` into the next slot and commits it (for frames not built in place).
    pub fn send(&mut self, vnet: &VnetHdr, frame: &[u8]) -> bool {
        match self.reserve_or_kick() {
            Some(slot) if frame.len() <= slot.len() => {
                slot[..frame.len()].copy_from_slice(frame);
            }
            Some(_) => {
                self.counters.too_big += 1;
                return false;
            }
            None => {
                self.counters.ring_full += 1;
                return false;
            }
        }
        self.commit(frame.len(), vnet)
    }

    /// Frames committed since the last kick.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Whether a committed frame still waits for the kernel (a kick failed or was not
    /// made yet).
    pub fn pending(&self) -> bool {
        self.last
            .is_some_and(|i| self.status(i).load(Ordering::Acquire) == TP_STATUS_SEND_REQUEST)
    }

    /// Whether committed frames wait for a kick that may succeed soon: the kernel did not
    /// take them all (socket buffer full), and the interface was not down at the last kick
    /// (then the next frame's kick tries again).
    pub fn wants_retry(&self) -> bool {
        !self.down && self.pending()
    }

    /// Whether frames bypass the qdisc (see the module docs).
    pub fn bypass(&self) -> bool {
        self.bypass
    }

    /// Asks the kernel to send every committed frame (one `send(fd, NULL, 0,
    /// MSG_DONTWAIT)`), if any waits. On an error (socket buffer full: `EAGAIN`; a frame
    /// dropped by the device: `ENOBUFS`, after the bypass is off; interface down:
    /// `ENETDOWN`/`ENXIO`) the frames stay queued for the next kick; the error is counted
    /// and returned.
    pub fn kick(&mut self) -> io::Result<()> {
        if self.queued == 0 && !self.pending() {
            return Ok(());
        }
        self.queued = 0;
        loop {
            // SAFETY: a zero-length send with no buffer: the kernel reads the TX ring,
            // which it mapped itself; nothing of this process's memory is passed.
            let ret = unsafe {
                libc::send(
                    self.shared.fd.as_raw_fd(),
                    std::ptr::null(),
                    0,
                    libc::MSG_DONTWAIT,
                )
            };
            if ret >= 0 {
                self.down = false;
                return Ok(());
            }
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            if err.raw_os_error() == Some(libc::ENOBUFS) && self.bypass {
                let zero: libc::c_int = 0;
                setsockopt(
                    self.shared.fd.as_fd(),
                    libc::SOL_PACKET,
                    libc::PACKET_QDISC_BYPASS,
                    &zero,
                )?;
                self.bypass = false;
                self.counters.bypass_off = 1;
                continue;
            }
            self.counters.kick_errors += 1;
            self.down = matches!(
                err.raw_os_error(),
                Some(libc::ENETDOWN | libc::ENXIO | libc::ENODEV)
            );
            return Err(err);
        }
    }

    /// Raises the socket's send buffer (it bounds the bytes in flight); see
    /// [`super::set_buffer_sizes`].
    pub fn set_send_buffer(&self, bytes: usize) -> io::Result<usize> {
        super::set_buffer_sizes(self.shared.fd.as_fd(), None, Some(bytes)).map(|(_, s)| s)
    }
}

impl AsFd for TxRing {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.shared.fd.as_fd()
    }
}
