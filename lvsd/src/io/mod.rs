//! Raw packet I/O: AF_PACKET sockets, socket filters and readiness waiting.
//!
//! This is the only module of lvsd that contains `unsafe` code; every `unsafe` block carries
//! a `// SAFETY:` comment. Everything here is synchronous and non-blocking except
//! [`wait_readable`]/[`poll_readable`], which block in `poll(2)` up to a timeout.
//!
//! # Contract
//!
//! - [`PacketSocket`] is an `AF_PACKET`/`SOCK_RAW` socket for protocol `ETH_P_ALL`, bound to
//!   one interface, non-blocking and close-on-exec, with:
//!   - `PACKET_VNET_HDR`: every received frame is preceded by a `virtio_net_hdr`
//!     ([`VnetHdr`]) describing GSO and checksum offload state, and every sent frame is
//!     given one. Frames therefore arrive and leave exactly as the kernel holds them: GSO
//!     super-frames of up to 64 KiB (typical on veth and with GRO) and frames whose
//!     transport checksum is not yet computed ("checksum partial"). Forwarding such a frame
//!     with [`VnetHdr::for_transmit`] lets the kernel (or the NIC) segment it and finish the
//!     checksum on the way out.
//!   - `PACKET_IGNORE_OUTGOING`: the socket never sees frames leaving the interface (neither
//!     its own transmissions nor the kernel's), only frames arriving on it.
//!   - A classic BPF socket filter ([`Filter`], built from a [`FilterSpec`]) so the kernel
//!     only queues the frames lvsd owns, IPv4 and IPv6 (the IPv6 part, NDP included, only
//!     when the spec has any: see [`filter`]). [`PacketSocket::open`] attaches a reject-all
//!     filter before binding, binds, drains whatever was queued, and only then attaches
//!     the real filter, so no unfiltered frame is ever read.
//! - Frames are seen by packet sockets before the netdev ingress hook (nftables), so an
//!   ingress drop rule ([`crate::kernel::NftGuard`]) hides a frame from the kernel's own
//!   stack without hiding it from lvsd.
//! - The byte buffer given to [`PacketSocket::recv`] should hold [`MAX_FRAME_LEN`] bytes;
//!   a frame that does not fit is consumed and reported as an error (see `recv`).
//! - [`ring`] is the fast alternative to [`PacketSocket`] (the daemon's default backend):
//!   TPACKET_V2 RX and TX rings mapped into the process, with the same vnet headers,
//!   filter discipline and `PACKET_IGNORE_OUTGOING`, read and written without a system
//!   call per frame (one `send` kicks a TX ring's batch; a received frame longer than an
//!   RX slot, e.g. a GSO super-frame, is read whole with one `recvmsg` through
//!   `recv_frame`, in ring order). Its module docs give the slot sizes, the memory and
//!   the invariants.

pub mod filter;
pub mod ring;
#[cfg(test)]
pub(crate) mod testutil;
pub mod tun;
mod vrrp;
pub mod xdp;

use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

pub use filter::{Filter, FilterError, FilterSpec, SockFilter};
pub use vrrp::{Received6, VrrpSocket, VrrpSocket6};

/// The largest frame the kernel hands to a packet socket with default GSO limits: a
/// 64 KiB IPv4 GSO super-frame plus Ethernet and one VLAN header. Receive buffers should
/// be at least this long.
pub const MAX_FRAME_LEN: usize = 65_535 + 14 + 4;

/// The `virtio_net_hdr` that precedes each frame on a `PACKET_VNET_HDR` socket.
///
/// The kernel writes and reads it in native byte order (packet(7) sockets use the legacy,
/// pre-virtio-1 layout: `vio_le()` is true exactly on little-endian hosts).
///
/// Offsets (`csum_start`, `hdr_len`) count from the first byte of the Ethernet header.
///
/// Note for code that rewrites frames whose header says [`VnetHdr::csum_partial`]: the
/// transport checksum field then holds the (non-complemented) pseudo-header sum only, and
/// the kernel/NIC will add the payload sum (from `csum_start`) on transmit. So a NAT
/// rewrite of IP addresses must update that field as a pseudo-header sum (add the
/// difference, no complement), and rewriting ports must not touch it at all (ports are
/// covered by the final checksum computation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct VnetHdr {
    /// `VIRTIO_NET_HDR_F_*` bits.
    pub flags: u8,
    /// `VIRTIO_NET_HDR_GSO_*` (plus the ECN bit).
    pub gso_type: u8,
    /// Length of the headers (Ethernet + IP + transport) for GSO; only a hint. On receive
    /// the kernel reports the length of the frame's linear part here, which may be the
    /// whole frame (seen on veth); on transmit the kernel raises it as needed.
    pub hdr_len: u16,
    /// Payload bytes per segment for GSO.
    pub gso_size: u16,
    /// Where checksumming starts (the transport header), if `NEEDS_CSUM`.
    pub csum_start: u16,
    /// Offset of the checksum field from `csum_start`, if `NEEDS_CSUM`.
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Size of the header on the wire (`sizeof(struct virtio_net_hdr)`).
    pub const LEN: usize = 10;
    /// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the transport checksum must still be computed.
    pub const F_NEEDS_CSUM: u8 = 1;
    /// `VIRTIO_NET_HDR_F_DATA_VALID`: the checksum was verified (receive only).
    pub const F_DATA_VALID: u8 = 2;
    /// `VIRTIO_NET_HDR_GSO_NONE`.
    pub const GSO_NONE: u8 = 0;
    /// `VIRTIO_NET_HDR_GSO_TCPV4`.
    pub const GSO_TCPV4: u8 = 1;
    /// `VIRTIO_NET_HDR_GSO_UDP` (UFO).
    pub const GSO_UDP: u8 = 3;
    /// `VIRTIO_NET_HDR_GSO_TCPV6`.
    pub const GSO_TCPV6: u8 = 4;
    /// `VIRTIO_NET_HDR_GSO_UDP_L4` (UDP segmentation).
    pub const GSO_UDP_L4: u8 = 5;
    /// `VIRTIO_NET_HDR_GSO_ECN` (TCP with CWR set on the first segment).
    pub const GSO_ECN: u8 = 0x80;

    /// A plain frame: complete checksums, no segmentation.
    pub const NONE: VnetHdr = VnetHdr {
        flags: 0,
        gso_type: Self::GSO_NONE,
        hdr_len: 0,
        gso_size: 0,
        csum_start: 0,
        csum_offset: 0,
    };

    /// Parses the first [`VnetHdr::LEN`] bytes of `bytes` (native endian).
    pub fn parse(bytes: &[u8]) -> Option<VnetHdr> {
        let b: &[u8; Self::LEN] = bytes.get(..Self::LEN)?.try_into().ok()?;
        let u16_at = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        Some(VnetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u16_at(2),
            gso_size: u16_at(4),
            csum_start: u16_at(6),
            csum_offset: u16_at(8),
        })
    }

    /// The header as bytes, native endian.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
        b
    }

    /// Whether the transport checksum is still to be computed (`NEEDS_CSUM`).
    pub fn csum_partial(&self) -> bool {
        self.flags & Self::F_NEEDS_CSUM != 0
    }

    /// Whether this is a GSO super-frame (to be segmented on transmit).
    pub fn gso(&self) -> bool {
        self.gso_type & !Self::GSO_ECN != Self::GSO_NONE
    }

    /// The header to send a received frame back out with: keeps `NEEDS_CSUM` (with its
    /// offsets) and the GSO fields, and drops receive-only flags such as `DATA_VALID`.
    pub fn for_transmit(&self) -> VnetHdr {
        VnetHdr {
            flags: self.flags & Self::F_NEEDS_CSUM,
            ..*self
        }
    }
}

/// Kernel counters of a packet socket (`PACKET_STATISTICS`; reading resets them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PacketStats {
    /// Frames that passed the filter (including dropped ones).
    pub packets: u32,
    /// Frames dropped because the receive buffer was full.
    pub drops: u32,
}

/// An AF_PACKET socket bound to one interface (see the module docs).
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: u32,
}

/// Converts a libc return value (-1 = error) to `io::Result`.
fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn cvt_size(ret: libc::ssize_t) -> io::Result<usize> {
    usize::try_from(ret).map_err(|_| io::Error::last_os_error())
}

/// `setsockopt` with a plain-data value.
fn setsockopt<T: Copy>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    let len = libc::socklen_t::try_from(mem::size_of::<T>())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `value` points to `len` readable bytes of a `Copy` (plain data) value that
    // outlives the call; the fd is valid for the borrow.
    let ret = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast::<libc::c_void>(),
            len,
        )
    };
    cvt(ret).map(drop)
}

/// `getsockopt` of an `int` option.
fn getsockopt_int(fd: BorrowedFd<'_>, level: libc::c_int, name: libc::c_int) -> io::Result<i32> {
    let mut value: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are valid for writes for the duration of the call and `len`
    // holds the size of `value`.
    let ret = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&mut value as *mut libc::c_int).cast::<libc::c_void>(),
            &mut len,
        )
    };
    cvt(ret)?;
    Ok(value)
}

fn attach_filter(fd: BorrowedFd<'_>, filter: &Filter) -> io::Result<()> {
    let mut insns: Vec<libc::sock_filter> = filter
        .instructions()
        .iter()
        .map(|i| libc::sock_filter {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        })
        .collect();
    let len = libc::c_ushort::try_from(insns.len()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "socket filter has more than 65535 instructions",
        )
    })?;
    let prog = libc::sock_fprog {
        len,
        filter: insns.as_mut_ptr(),
    };
    // The kernel copies the program during the call; `insns` outlives it.
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog)
}

/// Raises a socket's receive and/or send buffer (best effort).
///
/// Tries `SO_RCVBUFFORCE`/`SO_SNDBUFFORCE` first (needs CAP_NET_ADMIN, ignores the
/// `net.core.{r,w}mem_max` caps), then falls back to `SO_RCVBUF`/`SO_SNDBUF` (capped by
/// those sysctls). Returns the effective sizes as the kernel reports them (the kernel
/// doubles the requested value for bookkeeping overhead). Works for any socket, e.g. a
/// netlink socket.
pub fn set_buffer_sizes(
    fd: BorrowedFd<'_>,
    rcv: Option<usize>,
    snd: Option<usize>,
) -> io::Result<(usize, usize)> {
    let clamp = |v: usize| libc::c_int::try_from(v.min(i32::MAX as usize / 2)).unwrap_or(0);
    if let Some(v) = rcv {
        let v = clamp(v);
        if setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &v).is_err() {
            setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &v)?;
        }
    }
    if let Some(v) = snd {
        let v = clamp(v);
        if setsockopt(fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, &v).is_err() {
            setsockopt(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, &v)?;
        }
    }
    let r = getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF)?;
    let s = getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF)?;
    Ok((
        usize::try_from(r).unwrap_or(0),
        usize::try_from(s).unwrap_or(0),
    ))
}

/// A new, unbound `AF_PACKET`/`SOCK_RAW` socket (protocol 0: it receives nothing until
/// [`bind_all`]), non-blocking and close-on-exec, with the reject-all filter attached and
/// `PACKET_VNET_HDR` and `PACKET_IGNORE_OUTGOING` set: the common start of a
/// [`PacketSocket`] and of a ring socket ([`ring`]), which then adds its own options.
fn new_packet_fd() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked below.
    let raw = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    let raw = cvt(raw)?;
    // SAFETY: `raw` is a freshly created, valid descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    attach_filter(fd.as_fd(), &Filter::reject_all())?;
    let one: libc::c_int = 1;
    setsockopt(fd.as_fd(), libc::SOL_PACKET, libc::PACKET_VNET_HDR, &one)?;
    setsockopt(
        fd.as_fd(),
        libc::SOL_PACKET,
        libc::PACKET_IGNORE_OUTGOING,
        &one,
    )?;
    Ok(fd)
}

/// Binds a packet socket to every protocol (`ETH_P_ALL`) on interface `ifindex`.
fn bind_all(fd: BorrowedFd<'_>, ifindex: u32) -> io::Result<()> {
    let ifindex_c = libc::c_int::try_from(ifindex)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "ifindex out of range"))?;
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as libc::c_ushort;
    sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    sll.sll_ifindex = ifindex_c;
    // SAFETY: `sll` is a valid sockaddr_ll and the length passed is its size.
    let ret = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast::<libc::sockaddr>(),
            mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    cvt(ret).map(drop)
}

impl PacketSocket {
    /// Opens a packet socket on interface `ifindex` with `filter` attached.
    ///
    /// Needs CAP_NET_RAW. Fails with the OS error (e.g. `ENODEV` for an unknown ifindex).
    pub fn open(ifindex: u32, filter: &Filter) -> io::Result<Self> {
        let sock = PacketSocket {
            fd: new_packet_fd()?,
            ifindex,
        };
        bind_all(sock.fd.as_fd(), ifindex)?;
        sock.drain()?;
        sock.set_filter(filter)?;
        Ok(sock)
    }

    /// Discards everything queued on the socket.
    fn drain(&self) -> io::Result<()> {
        let mut scratch = [0u8; 64];
        // Bounded: under the reject-all filter nothing new can arrive.
        for _ in 0..1_000_000 {
            // SAFETY: `scratch` is valid for writes of its length.
            let ret = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    scratch.as_mut_ptr().cast::<libc::c_void>(),
                    scratch.len(),
                    libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                )
            };
            if ret < 0 {
                let err = io::Error::last_os_error();
                match err.raw_os_error() {
                    Some(libc::EAGAIN) => return Ok(()),
                    // Per-frame or one-shot errors: the frame (if any) is gone, go on.
                    Some(libc::EINTR | libc::EINVAL | libc::ENETDOWN) => continue,
                    _ => return Err(err),
                }
            }
        }
        Ok(())
    }

    /// Replaces the socket filter (atomically, in the kernel). Frames already queued
    /// under the previous filter stay queued and are still returned by `recv`.
    pub fn set_filter(&self, filter: &Filter) -> io::Result<()> {
        attach_filter(self.fd.as_fd(), filter)
    }

    /// The interface the socket is bound to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Whether an error from [`PacketSocket::recv`] is one of those that leave the socket
    /// usable (a frame too long or with an unknown GSO type, lost; the interface went
    /// down): the caller counts or reports it and goes on reading later.
    pub fn recv_error_is_transient(e: &io::Error) -> bool {
        matches!(e.raw_os_error(), Some(libc::ENETDOWN | libc::EINVAL))
            || e.kind() == io::ErrorKind::InvalidData
    }

    /// Receives one frame: its vnet header, and the frame (from the Ethernet header on)
    /// copied to the start of `buf`; returns the frame length.
    ///
    /// - `Ok(None)`: nothing queued (would block).
    /// - `Err` of kind `InvalidData`: the frame was longer than `buf` (it is consumed and
    ///   lost; use a buffer of [`MAX_FRAME_LEN`]).
    /// - `Err` with `EINVAL`: the kernel could not describe the frame's GSO type in a vnet
    ///   header (e.g. an unusual tunnel GSO type); the frame is consumed and lost.
    /// - `Err` with `ENETDOWN`: the interface went down (reported once).
    ///
    /// After any of these errors the socket stays usable; callers should count and
    /// continue. `EINTR` is retried internally.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<(VnetHdr, usize)>> {
        recv_frame(self.fd.as_fd(), buf)
    }

    /// Sends one frame (from the Ethernet header on) with its vnet header, without copying
    /// (one `sendmsg` with the header and the frame as two iovecs).
    ///
    /// Errors: `WouldBlock` when the send buffer is full (drop and count), `EMSGSIZE` for
    /// a frame above the MTU without GSO, `EINVAL` for an inconsistent vnet header,
    /// `ENETDOWN`/`ENXIO` when the interface is down or gone.
    pub fn send(&self, vnet: &VnetHdr, frame: &[u8]) -> io::Result<()> {
        let hdr = vnet.to_bytes();
        let mut iov = [
            libc::iovec {
                iov_base: hdr.as_ptr().cast_mut().cast::<libc::c_void>(),
                iov_len: hdr.len(),
            },
            libc::iovec {
                iov_base: frame.as_ptr().cast_mut().cast::<libc::c_void>(),
                iov_len: frame.len(),
            },
        ];
        let want = hdr.len() + frame.len();
        loop {
            // SAFETY: msghdr is plain data; all-zero is a valid (empty) value.
            let mut msg: libc::msghdr = unsafe { mem::zeroed() };
            msg.msg_iov = iov.as_mut_ptr();
            msg.msg_iovlen = iov.len() as _;
            // SAFETY: the iovecs describe `hdr` and `frame`, valid for reads of their
            // lengths for the duration of the call; sendmsg only reads through them.
            let ret = unsafe { libc::sendmsg(self.fd.as_raw_fd(), &msg, libc::MSG_DONTWAIT) };
            if ret < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            let sent = cvt_size(ret)?;
            if sent != want {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    format!("packet socket sent {sent} of {want} bytes"),
                ));
            }
            return Ok(());
        }
    }

    /// Raises this socket's buffers; see [`set_buffer_sizes`].
    pub fn set_buffer_sizes(
        &self,
        rcv: Option<usize>,
        snd: Option<usize>,
    ) -> io::Result<(usize, usize)> {
        set_buffer_sizes(self.fd.as_fd(), rcv, snd)
    }

    /// Reads and resets the kernel's counters for this socket.
    pub fn statistics(&self) -> io::Result<PacketStats> {
        packet_statistics(self.fd.as_fd())
    }
}

/// [`PacketSocket::recv`] on any `PACKET_VNET_HDR` packet socket (the ring's copy path
/// reads its socket queue with it).
pub(crate) fn recv_frame(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
) -> io::Result<Option<(VnetHdr, usize)>> {
    let mut hdr = [0u8; VnetHdr::LEN];
    let mut iov = [
        libc::iovec {
            iov_base: hdr.as_mut_ptr().cast::<libc::c_void>(),
            iov_len: hdr.len(),
        },
        libc::iovec {
            iov_base: buf.as_mut_ptr().cast::<libc::c_void>(),
            iov_len: buf.len(),
        },
    ];
    loop {
        // SAFETY: msghdr is plain data; all-zero is a valid (empty) value.
        let mut msg: libc::msghdr = unsafe { mem::zeroed() };
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = iov.len() as _;
        // SAFETY: `msg` points to two iovecs describing `hdr` and `buf`, both valid for
        // writes of their lengths and alive for the call; no name or control buffer.
        let ret = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, libc::MSG_TRUNC) };
        if ret < 0 {
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::WouldBlock => return Ok(None),
                io::ErrorKind::Interrupted => continue,
                _ => return Err(err),
            }
        }
        // With MSG_TRUNC the return value is the full length, even if it did not fit.
        let total = cvt_size(ret)?;
        let Some(frame_len) = total.checked_sub(VnetHdr::LEN) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("packet socket returned {total} bytes, shorter than a vnet header"),
            ));
        };
        if frame_len > buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "frame of {frame_len} bytes truncated to the {}-byte receive buffer",
                    buf.len()
                ),
            ));
        }
        let vnet = VnetHdr::parse(&hdr).unwrap_or(VnetHdr::NONE);
        return Ok(Some((vnet, frame_len)));
    }
}

/// `PACKET_STATISTICS` of a packet socket (reading resets the kernel's counters).
fn packet_statistics(fd: BorrowedFd<'_>) -> io::Result<PacketStats> {
    let mut st = libc::tpacket_stats {
        tp_packets: 0,
        tp_drops: 0,
    };
    let mut len = mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
    // SAFETY: `st` and `len` are valid for writes during the call; `len` is its size.
    let ret = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            (&mut st as *mut libc::tpacket_stats).cast::<libc::c_void>(),
            &mut len,
        )
    };
    cvt(ret)?;
    Ok(PacketStats {
        packets: st.tp_packets,
        drops: st.tp_drops,
    })
}

impl AsFd for PacketSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for PacketSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Converts a timeout for poll(2): milliseconds rounded up (so a waiter never spins on a
/// sub-millisecond remainder), `None` = forever (-1), capped at `i32::MAX`.
fn poll_timeout_ms(timeout: Option<Duration>) -> libc::c_int {
    match timeout {
        None => -1,
        Some(d) => {
            let ms = d.as_nanos().div_ceil(1_000_000);
            libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX)
        }
    }
}

/// Waits until at least one of `fds` is readable (or in error, or hung up — a following
/// read reports why), or `timeout` passes (`None` = no timeout).
///
/// Sets `ready[i]` for each ready fd (`ready` must be at least as long as `fds`; other
/// entries are cleared) and returns how many are ready; 0 means the timeout passed or a
/// signal interrupted the wait (`EINTR` is a normal wakeup, not an error). Any fd works,
/// so a control-plane wake-up (e.g. one end of a `std::os::unix::net::UnixDatagram`
/// pair) can be waited on together with the packet sockets.
pub fn poll_readable(
    fds: &[BorrowedFd<'_>],
    timeout: Option<Duration>,
    ready: &mut [bool],
) -> io::Result<usize> {
    if ready.len() < fds.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "readiness slice shorter than the fd list",
        ));
    }
    ready.iter_mut().for_each(|r| *r = false);
    // No allocation for the usual handful of fds.
    const INLINE: usize = 16;
    let empty = libc::pollfd {
        fd: -1,
        events: 0,
        revents: 0,
    };
    let mut inline = [empty; INLINE];
    let mut heap = Vec::new();
    let pfds: &mut [libc::pollfd] = if fds.len() <= INLINE {
        &mut inline[..fds.len()]
    } else {
        heap.resize(fds.len(), empty);
        &mut heap
    };
    for (p, fd) in pfds.iter_mut().zip(fds) {
        p.fd = fd.as_raw_fd();
        p.events = libc::POLLIN;
    }
    let nfds = libc::nfds_t::try_from(pfds.len())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `pfds` is a valid array of `nfds` pollfd structs, writable for the call;
    // the fds are borrowed for the duration of the call.
    let ret = unsafe { libc::poll(pfds.as_mut_ptr(), nfds, poll_timeout_ms(timeout)) };
    if ret < 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            return Ok(0);
        }
        return Err(err);
    }
    let mut n = 0;
    for (p, r) in pfds.iter().zip(ready.iter_mut()) {
        if p.revents & (libc::POLLIN | libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
            *r = true;
            n += 1;
        }
    }
    Ok(n)
}

/// Waits until one of `sockets` has something to read (or an error to report), or the
/// timeout passes; returns readiness per socket, in order (all false on timeout or
/// `EINTR`). See [`poll_readable`] for a variant that takes any fds and does not allocate
/// the result.
pub fn wait_readable(
    sockets: &[&PacketSocket],
    timeout: Option<Duration>,
) -> io::Result<Vec<bool>> {
    let fds: Vec<BorrowedFd<'_>> = sockets.iter().map(|s| s.as_fd()).collect();
    let mut ready = vec![false; fds.len()];
    poll_readable(&fds, timeout, &mut ready)?;
    Ok(ready)
}

#[cfg(test)]
mod tests;
