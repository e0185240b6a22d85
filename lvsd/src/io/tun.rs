//! The real server's side of TUN forwarding on hosts without the kernel's tunnel modules
//! (`ipip`, `sit`, `ip6_tunnel`): raw sockets receive the director's encapsulated packets
//! — IPv4 in IPv4, IPv6 in IPv4, IPv4 in IPv6, IPv6 in IPv6 — and a TUN device
//! (`IFF_TUN | IFF_NO_PI`) hands the inner packets to the local stack.
//!
//! Contract:
//! - [`TunnelSocket`]: a raw socket per [`TunnelKind`] (`AF_INET` or `AF_INET6`,
//!   `SOCK_RAW`, protocol 4 or 41), non-blocking, close-on-exec. The kernel gives it every
//!   locally delivered datagram of that protocol, reassembled. An `AF_INET` socket sees the
//!   outer IPv4 header; an `AF_INET6` socket never sees IPv6 headers (Linux strips them from
//!   raw IPv6 input), so it returns the payload — the inner packet — and the outer
//!   destination from `IPV6_PKTINFO`. While such a socket exists the kernel does not answer
//!   those datagrams with ICMP "protocol unreachable" / ICMPv6 "parameter problem: unknown
//!   next header" (`ip_protocol_deliver_rcu` and `ip6_protocol_deliver_rcu` send them only
//!   when no raw socket took the packet).
//! - [`TunDevice`]: created from `/dev/net/tun` with a name pattern (`lvstun%d`); it exists
//!   as long as the value (not persistent): dropping it removes the interface. Each
//!   [`TunDevice::write`] injects one IPv4 or IPv6 packet as if received on that
//!   interface: without packet information (`IFF_NO_PI`) the kernel takes the protocol from
//!   the version nibble (4 → IPv4, 6 → IPv6).
//! - Nothing here interprets packet contents (that is `wire::ipip` and the caller).

use std::ffi::CStr;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::mem;
use std::net::Ipv6Addr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::ptr;

/// `TUNSETIFF` = `_IOW('T', 202, int)`.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
/// `IFF_TUN`.
const IFF_TUN: libc::c_short = 0x0001;
/// `IFF_NO_PI`.
const IFF_NO_PI: libc::c_short = 0x1000;

/// One combination of outer and inner family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TunnelKind {
    /// IPIP: outer IPv4, protocol 4.
    Ipv4InIpv4,
    /// 6in4: outer IPv4, protocol 41.
    Ipv6InIpv4,
    /// 4in6: outer IPv6, next header 4.
    Ipv4InIpv6,
    /// IPv6 in IPv6: outer IPv6, next header 41.
    Ipv6InIpv6,
}

impl TunnelKind {
    /// Every kind.
    pub const ALL: [TunnelKind; 4] = [
        TunnelKind::Ipv4InIpv4,
        TunnelKind::Ipv6InIpv4,
        TunnelKind::Ipv4InIpv6,
        TunnelKind::Ipv6InIpv6,
    ];

    /// Whether the outer header is IPv6.
    pub const fn outer_is_v6(self) -> bool {
        matches!(self, TunnelKind::Ipv4InIpv6 | TunnelKind::Ipv6InIpv6)
    }

    /// The IP version of the inner packet (4 or 6).
    pub const fn inner_version(self) -> u8 {
        match self {
            TunnelKind::Ipv4InIpv4 | TunnelKind::Ipv4InIpv6 => 4,
            TunnelKind::Ipv6InIpv4 | TunnelKind::Ipv6InIpv6 => 6,
        }
    }

    /// The outer protocol / next header: 4 (IPv4 inside) or 41 (IPv6 inside).
    pub const fn protocol(self) -> u8 {
        match self.inner_version() {
            4 => 4,
            _ => 41,
        }
    }

    /// Short name for messages: `ipip`, `6in4`, `4in6`, `ip6ip6`.
    pub const fn name(self) -> &'static str {
        match self {
            TunnelKind::Ipv4InIpv4 => "ipip",
            TunnelKind::Ipv6InIpv4 => "6in4",
            TunnelKind::Ipv4InIpv6 => "4in6",
            TunnelKind::Ipv6InIpv6 => "ip6ip6",
        }
    }
}

/// One datagram received by a [`TunnelSocket`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelDatagram {
    /// Bytes written to the buffer (capped at its length).
    pub len: usize,
    /// IPv6 outer header only: its destination, as `IPV6_PKTINFO` reported it (`None` if the
    /// kernel gave none).
    pub outer_dst6: Option<Ipv6Addr>,
}

/// A raw socket receiving the tunnel packets of one [`TunnelKind`] (module doc).
#[derive(Debug)]
pub struct TunnelSocket {
    fd: OwnedFd,
    kind: TunnelKind,
}

impl TunnelSocket {
    /// Opens the socket for `kind` with a receive buffer of `rcvbuf` bytes (as far as the
    /// kernel allows). Fails with `EAFNOSUPPORT` for an IPv6 outer header on a kernel
    /// without IPv6.
    pub fn open(kind: TunnelKind, rcvbuf: usize) -> io::Result<TunnelSocket> {
        let family = if kind.outer_is_v6() {
            libc::AF_INET6
        } else {
            libc::AF_INET
        };
        // SAFETY: plain socket(2) call; the result is checked before use.
        let fd = unsafe {
            libc::socket(
                family,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::c_int::from(kind.protocol()),
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh, valid descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let size = libc::c_int::try_from(rcvbuf).unwrap_or(libc::c_int::MAX);
        super::setsockopt(fd.as_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, &size)?;
        if kind.outer_is_v6() {
            let one: libc::c_int = 1;
            super::setsockopt(fd.as_fd(), libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, &one)?;
        }
        Ok(TunnelSocket { fd, kind })
    }

    /// Which packets it receives.
    pub fn kind(&self) -> TunnelKind {
        self.kind
    }

    /// Receives one datagram into `buf`: with an IPv4 outer header, from that header on;
    /// with an IPv6 outer header, only its payload (the inner packet), plus the outer
    /// destination. `Ok(None)` if none is queued. A datagram longer than `buf` is
    /// truncated.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<TunnelDatagram>> {
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast::<libc::c_void>(),
            iov_len: buf.len(),
        };
        // u64 elements keep the control buffer aligned for cmsghdr.
        let mut control = [0u64; 16];
        // SAFETY: msghdr is plain data; all-zero is a valid value.
        let mut msg: libc::msghdr = unsafe { mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = mem::size_of_val(&control) as _;
        // SAFETY: every pointer in `msg` refers to a live local buffer of the advertised
        // length (`buf` through `iov`, `control`), valid for writes during the call.
        let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(e),
            };
        }
        let mut outer_dst6 = None;
        // SAFETY: `msg` was filled by recvmsg; CMSG_FIRSTHDR/NXTHDR stay within
        // msg_controllen and return null at the end. The payload is read unaligned into an
        // owned in6_pktinfo, and only when the header says that is what it holds.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                let hdr = &*cmsg;
                if hdr.cmsg_level == libc::IPPROTO_IPV6 && hdr.cmsg_type == libc::IPV6_PKTINFO {
                    let info: libc::in6_pktinfo =
                        ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::in6_pktinfo>());
                    outer_dst6 = Some(Ipv6Addr::from(info.ipi6_addr.s6_addr));
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
        }
        Ok(Some(TunnelDatagram {
            len: usize::try_from(n).unwrap_or(0).min(buf.len()),
            outer_dst6,
        }))
    }
}

impl AsFd for TunnelSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A TUN device (module doc).
#[derive(Debug)]
pub struct TunDevice {
    file: File,
    name: String,
}

impl TunDevice {
    /// Creates a TUN device named after `pattern` (e.g. `lvstun%d`; at most 15 bytes).
    pub fn create(pattern: &str) -> io::Result<TunDevice> {
        if pattern.len() >= libc::IFNAMSIZ || pattern.contains('\0') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "interface name too long",
            ));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open("/dev/net/tun")?;
        // SAFETY: ifreq is plain data; all-zero is a valid value.
        let mut req: libc::ifreq = unsafe { mem::zeroed() };
        for (dst, src) in req.ifr_name.iter_mut().zip(pattern.bytes()) {
            *dst = src as libc::c_char;
        }
        req.ifr_ifru.ifru_flags = IFF_TUN | IFF_NO_PI;
        // SAFETY: TUNSETIFF reads and writes one `ifreq`, which lives for the call.
        let ret = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF as _, &mut req) };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel wrote a NUL-terminated name into `ifr_name` (IFNAMSIZ bytes).
        let name = unsafe { CStr::from_ptr(req.ifr_name.as_ptr()) }
            .to_string_lossy()
            .into_owned();
        Ok(TunDevice { file, name })
    }

    /// The interface's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sets the interface up (`IFF_UP`) and its MTU.
    pub fn set_up(&self, mtu: u32) -> io::Result<()> {
        // SAFETY: plain socket(2) call; checked below.
        let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if s < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `s` is a fresh, valid descriptor that nothing else owns.
        let s = unsafe { OwnedFd::from_raw_fd(s) };
        // SAFETY: ifreq is plain data; all-zero is a valid value.
        let mut req: libc::ifreq = unsafe { mem::zeroed() };
        for (dst, src) in req.ifr_name.iter_mut().zip(self.name.bytes()) {
            *dst = src as libc::c_char;
        }
        req.ifr_ifru.ifru_mtu = libc::c_int::try_from(mtu).unwrap_or(libc::c_int::MAX);
        // SAFETY: SIOCSIFMTU reads one `ifreq`, which lives for the call.
        if unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCSIFMTU as _, &req) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: SIOCGIFFLAGS writes one `ifreq`, which lives for the call.
        if unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut req) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
        let flags = unsafe { req.ifr_ifru.ifru_flags };
        req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
        // SAFETY: SIOCSIFFLAGS reads one `ifreq`, which lives for the call.
        if unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCSIFFLAGS as _, &req) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Injects one IPv4 or IPv6 packet (the kernel reads its version nibble).
    pub fn write(&self, packet: &[u8]) -> io::Result<usize> {
        (&self.file).write(packet)
    }
}
