//! Every `unsafe` line of the crate lives here, behind safe functions.
//!
//! - [`enter_netns_on_exec`]: a `pre_exec` hook that moves a forked child into a namespace and
//!   ties its life to the forking thread (`PR_SET_PDEATHSIG = SIGKILL`).
//! - [`enable_pktinfo`], [`recv_with_dst`], [`send_from`]: UDP with `IP_PKTINFO` (IPv6:
//!   `IPV6_RECVPKTINFO` / `IPV6_PKTINFO`), so a server bound to `0.0.0.0` or `::` answers from
//!   the address the datagram was sent to (a DR real server must answer from the VIP on
//!   `lo`, not from its RIP).
//! - [`bind_v6only_tcp`], [`bind_v6only_udp`]: `[::]:port` sockets with `IPV6_V6ONLY`, next
//!   to the IPv4 ones on `0.0.0.0:port`.
//! - [`set_listen_backlog`]: re-`listen()` a std listener with a larger backlog.
//! - [`send_raw_frames`], [`capture_frames`]: raw Ethernet frames out of, and everything seen
//!   on, one interface (`AF_PACKET`).
//! - [`send_copies`], [`recv_many`]: `sendmmsg`/`recvmmsg` for the benchmark's UDP load, so
//!   the generator and the sinks are not what limits a path's datagram rate.
//!
//! Invariant: no function here keeps a raw pointer or fd beyond the call; the pre-exec hook
//! only makes async-signal-safe system calls and never allocates.
#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, TcpListener, UdpSocket,
};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::ptr;
use std::sync::Arc;

use crate::netns::Netns;

/// Make `cmd`'s child `setns` into `ns` and die with SIGKILL when the thread that spawns it
/// exits (`PR_SET_PDEATHSIG` follows the forking *thread*, not the process: spawn from a thread
/// that lives as long as the child should — the lab's spawner thread does).
///
/// The spawn fails (instead of leaving an orphan) if the parent died between fork and prctl.
pub(crate) fn enter_netns_on_exec(cmd: &mut Command, ns: Arc<Netns>) {
    let parent = std::process::id();
    let hook = move || -> io::Result<()> {
        // SAFETY: `setns` on an fd owned by `ns`, which this closure keeps alive (the Arc is
        // moved in), so the descriptor is open in the child (O_CLOEXEC closes it only at exec).
        if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: prctl with integer arguments only.
        if unsafe {
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            )
        } != 0
        {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: getppid has no preconditions.
        let ppid = unsafe { libc::getppid() };
        if u32::try_from(ppid).ok() != Some(parent) {
            // The parent died before PDEATHSIG was armed; do not become an orphan.
            // `from_raw_os_error` does not allocate.
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
        Ok(())
    };
    // SAFETY: the hook runs between fork and exec in the child. It only calls async-signal-safe
    // functions (setns, prctl, getppid), takes no locks and performs no allocation (the error
    // values above are plain OS codes).
    unsafe {
        cmd.pre_exec(hook);
    }
}

/// Ask the kernel for the destination address of each datagram (`IP_PKTINFO`, or
/// `IPV6_RECVPKTINFO` on an IPv6 socket).
pub(crate) fn enable_pktinfo(sock: &UdpSocket) -> io::Result<()> {
    let one: libc::c_int = 1;
    let (level, name) = match sock.local_addr()? {
        SocketAddr::V4(_) => (libc::IPPROTO_IP, libc::IP_PKTINFO),
        SocketAddr::V6(_) => (libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO),
    };
    // SAFETY: valid socket fd; optval points to a c_int and optlen is its size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            ptr::from_ref(&one).cast(),
            socklen_of::<libc::c_int>(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A received datagram: payload length, sender, and the local address it was sent to (if the
/// kernel reported one; it does once [`enable_pktinfo`] succeeded).
pub(crate) struct Received {
    pub len: usize,
    pub from: SocketAddr,
    pub to: Option<IpAddr>,
}

/// `recvmsg` with an `IP_PKTINFO` / `IPV6_PKTINFO` control buffer.
pub(crate) fn recv_with_dst(sock: &UdpSocket, buf: &mut [u8]) -> io::Result<Received> {
    // SAFETY: sockaddr_storage and msghdr are plain C structs for which all-zero is valid.
    let mut src: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // u64 elements keep the control buffer aligned for cmsghdr.
    let mut control = [0u64; 16];
    // SAFETY: as above.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_name = ptr::from_mut(&mut src).cast();
    msg.msg_namelen = socklen_of::<libc::sockaddr_storage>();
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = mem::size_of_val(&control) as _;
    // SAFETY: every pointer in `msg` refers to a live local buffer of the advertised length.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, 0) };
    let len = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;

    let mut to = None;
    // SAFETY: `msg` was filled by recvmsg; CMSG_FIRSTHDR/NXTHDR stay within msg_controllen and
    // return null at the end. The payload is read unaligned into an owned in_pktinfo.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            let hdr = &*cmsg;
            if hdr.cmsg_level == libc::IPPROTO_IP && hdr.cmsg_type == libc::IP_PKTINFO {
                let info: libc::in_pktinfo =
                    ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::in_pktinfo>());
                to = Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                    info.ipi_addr.s_addr,
                ))));
            } else if hdr.cmsg_level == libc::IPPROTO_IPV6 && hdr.cmsg_type == libc::IPV6_PKTINFO {
                let info: libc::in6_pktinfo =
                    ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::in6_pktinfo>());
                to = Some(IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr)));
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    let from = match i32::from(src.ss_family) {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a sockaddr_in (family AF_INET) into the storage, which
            // is large and aligned enough for it.
            let sin: libc::sockaddr_in =
                unsafe { ptr::read(ptr::from_ref(&src).cast::<libc::sockaddr_in>()) };
            SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                u16::from_be(sin.sin_port),
            ))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, a sockaddr_in6.
            let sin6: libc::sockaddr_in6 =
                unsafe { ptr::read(ptr::from_ref(&src).cast::<libc::sockaddr_in6>()) };
            SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            ))
        }
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "datagram from an unknown address family",
            ));
        }
    };
    Ok(Received { len, from, to })
}

/// `sendmsg` to `dst` with source address `src` (`IP_PKTINFO.ipi_spec_dst`, or
/// `IPV6_PKTINFO.ipi6_addr`); the families of `dst` and `src` must match.
pub(crate) fn send_from(
    sock: &UdpSocket,
    payload: &[u8],
    dst: SocketAddr,
    src: IpAddr,
) -> io::Result<usize> {
    match (dst, src) {
        (SocketAddr::V4(dst), IpAddr::V4(src)) => send_from4(sock, payload, dst, src),
        (SocketAddr::V6(dst), IpAddr::V6(src)) => send_from6(sock, payload, dst, src),
        _ => Err(io::Error::from_raw_os_error(libc::EAFNOSUPPORT)),
    }
}

fn send_from4(
    sock: &UdpSocket,
    payload: &[u8],
    dst: SocketAddrV4,
    src: Ipv4Addr,
) -> io::Result<usize> {
    // SAFETY: plain C structs, all-zero is valid.
    let mut addr: libc::sockaddr_in = unsafe { mem::zeroed() };
    addr.sin_family = libc::AF_INET as libc::sa_family_t;
    addr.sin_port = dst.port().to_be();
    addr.sin_addr.s_addr = u32::from(*dst.ip()).to_be();
    let mut iov = libc::iovec {
        // sendmsg never writes through iov_base.
        iov_base: payload.as_ptr().cast_mut().cast(),
        iov_len: payload.len(),
    };
    let mut control = [0u64; 8];
    // SAFETY: plain C struct, all-zero is valid.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_name = ptr::from_mut(&mut addr).cast();
    msg.msg_namelen = socklen_of::<libc::sockaddr_in>();
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(socklen_of::<libc::in_pktinfo>()) };
    msg.msg_controllen = space as _;
    // SAFETY: `control` (64 bytes, u64-aligned) holds CMSG_SPACE(12) = 32 bytes, so the first
    // header and its data fit; CMSG_FIRSTHDR is non-null because msg_controllen >= header size.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null() {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        (*cmsg).cmsg_level = libc::IPPROTO_IP;
        (*cmsg).cmsg_type = libc::IP_PKTINFO;
        (*cmsg).cmsg_len = libc::CMSG_LEN(socklen_of::<libc::in_pktinfo>()) as _;
        let info = libc::in_pktinfo {
            ipi_ifindex: 0,
            ipi_spec_dst: libc::in_addr {
                s_addr: u32::from(src).to_be(),
            },
            ipi_addr: libc::in_addr { s_addr: 0 },
        };
        ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::in_pktinfo>(), info);
    }
    // SAFETY: every pointer in `msg` refers to a live local buffer of the advertised length.
    let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, 0) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

fn send_from6(
    sock: &UdpSocket,
    payload: &[u8],
    dst: SocketAddrV6,
    src: Ipv6Addr,
) -> io::Result<usize> {
    // SAFETY: plain C structs, all-zero is valid.
    let mut addr: libc::sockaddr_in6 = unsafe { mem::zeroed() };
    addr.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    addr.sin6_port = dst.port().to_be();
    addr.sin6_addr.s6_addr = dst.ip().octets();
    addr.sin6_scope_id = dst.scope_id();
    let mut iov = libc::iovec {
        // sendmsg never writes through iov_base.
        iov_base: payload.as_ptr().cast_mut().cast(),
        iov_len: payload.len(),
    };
    let mut control = [0u64; 8];
    // SAFETY: plain C struct, all-zero is valid.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_name = ptr::from_mut(&mut addr).cast();
    msg.msg_namelen = socklen_of::<libc::sockaddr_in6>();
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(socklen_of::<libc::in6_pktinfo>()) };
    msg.msg_controllen = space as _;
    // SAFETY: `control` (64 bytes, u64-aligned) holds CMSG_SPACE(20) = 40 bytes, so the first
    // header and its data fit; CMSG_FIRSTHDR is non-null because msg_controllen >= header size.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null() {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        (*cmsg).cmsg_level = libc::IPPROTO_IPV6;
        (*cmsg).cmsg_type = libc::IPV6_PKTINFO;
        (*cmsg).cmsg_len = libc::CMSG_LEN(socklen_of::<libc::in6_pktinfo>()) as _;
        let info = libc::in6_pktinfo {
            ipi6_addr: libc::in6_addr {
                s6_addr: src.octets(),
            },
            ipi6_ifindex: 0,
        };
        ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::in6_pktinfo>(), info);
    }
    // SAFETY: every pointer in `msg` refers to a live local buffer of the advertised length.
    let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, 0) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// An IPv6-only (`IPV6_V6ONLY`) socket of type `kind` (`SOCK_STREAM`, `SOCK_DGRAM`) with
/// `SO_REUSEADDR`, bound to `[::]:port`.
fn bind_v6only(kind: libc::c_int, port: u16) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked and owned below.
    let fd = unsafe { libc::socket(libc::AF_INET6, kind | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    let owned = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    for (level, name) in [
        (libc::IPPROTO_IPV6, libc::IPV6_V6ONLY),
        (libc::SOL_SOCKET, libc::SO_REUSEADDR),
    ] {
        // SAFETY: valid socket fd; optval points to a c_int and optlen is its size.
        let rc = unsafe {
            libc::setsockopt(
                owned.as_raw_fd(),
                level,
                name,
                ptr::from_ref(&one).cast(),
                socklen_of::<libc::c_int>(),
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    // SAFETY: plain C struct, all-zero is valid (and is the unspecified address `::`).
    let mut addr: libc::sockaddr_in6 = unsafe { mem::zeroed() };
    addr.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    addr.sin6_port = port.to_be();
    // SAFETY: `addr` is a valid sockaddr_in6 of the advertised length, live for the call.
    let rc = unsafe {
        libc::bind(
            owned.as_raw_fd(),
            ptr::from_ref(&addr).cast(),
            socklen_of::<libc::sockaddr_in6>(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(owned)
}

/// A TCP listener on `[::]:port` (IPv6 only), with an accept backlog of `backlog`.
pub(crate) fn bind_v6only_tcp(port: u16, backlog: i32) -> io::Result<TcpListener> {
    let fd = bind_v6only(libc::SOCK_STREAM, port)?;
    let listener = TcpListener::from(fd);
    set_listen_backlog(&listener, backlog)?;
    Ok(listener)
}

/// A UDP socket on `[::]:port` (IPv6 only).
pub(crate) fn bind_v6only_udp(port: u16) -> io::Result<UdpSocket> {
    let fd = bind_v6only(libc::SOCK_DGRAM, port)?;
    Ok(UdpSocket::from(fd))
}

/// Raise the accept backlog of an already listening socket (Linux re-applies `listen`).
pub(crate) fn set_listen_backlog(listener: &TcpListener, backlog: i32) -> io::Result<()> {
    // SAFETY: listen on a valid, owned socket fd.
    if unsafe { libc::listen(listener.as_raw_fd(), backlog) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn socklen_of<T>() -> libc::socklen_t {
    // The structs passed here are a few bytes long; the cast cannot truncate.
    mem::size_of::<T>() as libc::socklen_t
}

/// Sends each of `frames` (complete Ethernet frames) out of interface `ifindex` of the
/// calling thread's namespace through a fresh `AF_PACKET` socket — for tests that put
/// deliberately malformed frames on the wire.
pub(crate) fn send_raw_frames(ifindex: u32, frames: &[Vec<u8>]) -> io::Result<()> {
    let ifindex = i32::try_from(ifindex)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "ifindex out of range"))?;
    // SAFETY: plain socket(2) call; the returned fd is checked and owned below.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    let owned = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    for frame in frames {
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex = ifindex;
        addr.sll_halen = 6;
        let n = frame.len().min(6);
        addr.sll_addr[..n].copy_from_slice(&frame[..n]);
        // SAFETY: buffer and address pointers are valid for the lengths given, for the
        // duration of the call.
        let sent = unsafe {
            libc::sendto(
                owned.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                ptr::addr_of!(addr).cast(),
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Every frame (both directions) seen on interface `ifindex` of the calling thread's
/// namespace for `duration`, through a fresh `AF_PACKET` socket bound to it; at most
/// `max_frames`, each cut to 2 KiB. For tests that must prove a host did (not) send
/// something.
pub(crate) fn capture_frames(
    ifindex: u32,
    duration: std::time::Duration,
    max_frames: usize,
) -> io::Result<Vec<Vec<u8>>> {
    let ifindex = i32::try_from(ifindex)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "ifindex out of range"))?;
    let all = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain socket(2) call; the returned fd is checked and owned below.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::c_int::from(all),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    let owned = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = all;
    addr.sll_ifindex = ifindex;
    // SAFETY: `addr` is a valid sockaddr_ll of the advertised length, live for the call.
    let rc = unsafe {
        libc::bind(
            owned.as_raw_fd(),
            ptr::from_ref(&addr).cast(),
            socklen_of::<libc::sockaddr_ll>(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let deadline = std::time::Instant::now() + duration;
    let mut frames = Vec::new();
    let mut buf = vec![0u8; 2048];
    while frames.len() < max_frames {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            break;
        }
        let tv = libc::timeval {
            tv_sec: libc::time_t::try_from(left.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_usec: libc::suseconds_t::from(left.subsec_micros().max(1)),
        };
        // SAFETY: valid socket fd; optval points to a timeval and optlen is its size.
        let rc = unsafe {
            libc::setsockopt(
                owned.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                ptr::from_ref(&tv).cast(),
                socklen_of::<libc::timeval>(),
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `buf` is valid for writes of its length during the call.
        let n = unsafe { libc::recv(owned.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        match usize::try_from(n) {
            Ok(n) => frames.push(buf[..n.min(buf.len())].to_vec()),
            Err(_) => {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::WouldBlock
                    | io::ErrorKind::TimedOut
                    | io::ErrorKind::Interrupted => {}
                    _ => return Err(e),
                }
            }
        }
    }
    Ok(frames)
}

/// Send `count` copies of `payload` on the connected socket `sock` with one `sendmmsg(2)`
/// (at most 1024 per call, the kernel's `UIO_MAXIOV`); returns how many the kernel accepted.
/// A benchmark sender's way to offer a high datagram rate without one system call each.
pub(crate) fn send_copies(sock: &UdpSocket, payload: &[u8], count: usize) -> io::Result<usize> {
    let count = count.clamp(1, 1024);
    let mut iov = libc::iovec {
        iov_base: payload.as_ptr().cast_mut().cast(),
        iov_len: payload.len(),
    };
    // SAFETY: mmsghdr is plain data; all-zero is a valid (empty) value.
    let mut msgs: Vec<libc::mmsghdr> = vec![unsafe { mem::zeroed() }; count];
    for m in &mut msgs {
        m.msg_hdr.msg_iov = &mut iov;
        m.msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: `msgs` holds `count` headers, each pointing to the one iovec `iov`, which
    // describes `payload` (valid for reads for the call; sendmmsg only reads through it).
    // No names (the socket is connected) and no control data.
    let rc = unsafe {
        libc::sendmmsg(
            sock.as_raw_fd(),
            msgs.as_mut_ptr(),
            count as libc::c_uint,
            libc::MSG_DONTWAIT,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc as usize)
}

/// Receive up to `bufs.len()` datagrams with one `recvmmsg(2)` (blocking for the first one
/// up to the socket's read timeout); returns how many arrived. The contents land in `bufs`,
/// truncated to each buffer's length; only the count matters to the benchmark's sinks.
pub(crate) fn recv_many(sock: &UdpSocket, bufs: &mut [[u8; 2048]]) -> io::Result<usize> {
    let n = bufs.len().min(1024);
    let mut iovs: Vec<libc::iovec> = bufs[..n]
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: b.len(),
        })
        .collect();
    // SAFETY: mmsghdr is plain data; all-zero is a valid (empty) value.
    let mut msgs: Vec<libc::mmsghdr> = vec![unsafe { mem::zeroed() }; n];
    for (m, iov) in msgs.iter_mut().zip(iovs.iter_mut()) {
        m.msg_hdr.msg_iov = iov;
        m.msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: each header points to its own iovec describing a distinct buffer of `bufs`,
    // valid for writes of its length for the call; `iovs` and `msgs` outlive it. MSG_WAITFORONE
    // returns as soon as one datagram is in; no timeout pointer (the socket's SO_RCVTIMEO
    // bounds the wait).
    let rc = unsafe {
        libc::recvmmsg(
            sock.as_raw_fd(),
            msgs.as_mut_ptr(),
            n as libc::c_uint,
            libc::MSG_WAITFORONE,
            ptr::null_mut(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc as usize)
}
