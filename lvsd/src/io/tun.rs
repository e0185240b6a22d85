//! The real server's side of TUN forwarding on hosts without the kernel's `ipip` module:
//! a raw `IPPROTO_IPIP` socket receives the director's encapsulated packets and a TUN
//! device (`IFF_TUN | IFF_NO_PI`) hands the inner packets to the local stack.
//!
//! Contract:
//! - [`IpipSocket`]: `AF_INET`/`SOCK_RAW`/`IPPROTO_IPIP`, non-blocking, close-on-exec. The
//!   kernel gives it every locally delivered protocol-4 datagram (reassembled, from the
//!   outer IPv4 header on). While such a socket exists the kernel does not answer those
//!   datagrams with ICMP "protocol unreachable" (`ip_protocol_deliver_rcu` sends it only
//!   when no raw socket took the packet).
//! - [`TunDevice`]: created from `/dev/net/tun` with a name pattern (`lvstun%d`); it exists
//!   as long as the value (not persistent): dropping it removes the interface. Each
//!   [`TunDevice::write`] injects one IPv4 packet as if received on that interface.
//! - Nothing here interprets packet contents (that is `wire::ipip`).

use std::ffi::CStr;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::mem;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

/// `TUNSETIFF` = `_IOW('T', 202, int)`.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
/// `IFF_TUN`.
const IFF_TUN: libc::c_short = 0x0001;
/// `IFF_NO_PI`.
const IFF_NO_PI: libc::c_short = 0x1000;

/// A raw socket receiving IPIP datagrams (module doc).
#[derive(Debug)]
pub struct IpipSocket {
    fd: OwnedFd,
}

impl IpipSocket {
    /// Opens the socket with a receive buffer of `rcvbuf` bytes (as far as the kernel
    /// allows).
    pub fn open(rcvbuf: usize) -> io::Result<IpipSocket> {
        // SAFETY: plain socket(2) call; the result is checked before use.
        let fd = unsafe {
            libc::socket(
                libc::AF_INET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::IPPROTO_IPIP,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh, valid descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let size = libc::c_int::try_from(rcvbuf).unwrap_or(libc::c_int::MAX);
        super::setsockopt(fd.as_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, &size)?;
        Ok(IpipSocket { fd })
    }

    /// Receives one datagram (outer IPv4 header on) into `buf`; `Ok(None)` if none is
    /// queued. A datagram longer than `buf` is truncated (and its length is the length
    /// returned by the kernel, capped at `buf.len()`).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes during the call.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast::<libc::c_void>(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(e),
            };
        }
        Ok(Some(usize::try_from(n).unwrap_or(0).min(buf.len())))
    }
}

impl AsFd for IpipSocket {
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

    /// Injects one IPv4 packet.
    pub fn write(&self, packet: &[u8]) -> io::Result<usize> {
        (&self.file).write(packet)
    }
}
