//! The VRRP socket: a raw `AF_INET` socket for IP protocol 112 on one interface.
//!
//! Contract:
//! - Bound to the interface (`SO_BINDTODEVICE`), joined to 224.0.0.18 on it
//!   (`IP_ADD_MEMBERSHIP` with its ifindex), non-blocking, close-on-exec.
//! - `IP_HDRINCL`: [`VrrpSocket::send_to`] takes a whole IPv4 packet, so the source
//!   address (the instance's primary address, RFC 9568 §5.1.1.1) and TTL 255 (§5.1.1.3)
//!   are exactly what the caller wrote; the kernel fills in the IP checksum and, if zero,
//!   the identification. `IP_MULTICAST_IF` picks the interface for 224.0.0.18 and
//!   `IP_MULTICAST_LOOP` is off, so a director never hears its own multicast adverts.
//! - [`VrrpSocket::recv`] returns whole IPv4 packets (raw sockets always include the
//!   header): untrusted bytes for `vrrp::Router::handle_packet`.
//!
//! IPv6 ([`VrrpSocket6`], VRRPv3 over IPv6, RFC 9568 §5.1.2):
//! - A raw `AF_INET6` protocol-112 socket bound to the interface, joined to ff02::12 on
//!   it (`IPV6_ADD_MEMBERSHIP`), `IPV6_MULTICAST_LOOP` off, hop limit 255 for multicast
//!   and unicast, traffic class CS6. IPv6 raw sockets carry no header: the source (the
//!   interface's link-local address, §5.1.2.1) is set per packet with an `IPV6_PKTINFO`
//!   control message, and the kernel neither computes nor checks the VRRP checksum
//!   (no `IPV6_CHECKSUM`): the core writes and verifies it, so a bad one is counted.
//! - [`VrrpSocket6::recv`] returns the message with the header fields the receive checks
//!   need — source, destination (`IPV6_RECVPKTINFO`) and hop limit (`IPV6_RECVHOPLIMIT`;
//!   a packet without one reads as hop limit 0 and is dropped).

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::{cvt, cvt_size, setsockopt};

/// VRRP's IP protocol number.
const IPPROTO_VRRP: libc::c_int = 112;
/// 224.0.0.18.
const VRRP_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);

/// A raw protocol-112 socket bound to one interface (module doc).
#[derive(Debug)]
pub struct VrrpSocket {
    fd: OwnedFd,
    ifindex: u32,
}

fn in_addr(a: Ipv4Addr) -> libc::in_addr {
    libc::in_addr {
        s_addr: u32::from(a).to_be(),
    }
}

impl VrrpSocket {
    /// Opens the socket on interface `name` (index `ifindex`) and joins 224.0.0.18 there.
    pub fn open(name: &str, ifindex: u32) -> io::Result<VrrpSocket> {
        let ifindex_c = libc::c_int::try_from(ifindex)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_INET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                IPPROTO_VRRP,
            )
        };
        cvt(raw)?;
        // SAFETY: `raw` is a freshly created, valid fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let sock = VrrpSocket { fd, ifindex };
        let name_bytes = name.as_bytes();
        if name_bytes.len() >= libc::IFNAMSIZ || name_bytes.contains(&0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("`{name}` is not an interface name"),
            ));
        }
        let mut ifname = [0u8; libc::IFNAMSIZ];
        ifname[..name_bytes.len()].copy_from_slice(name_bytes);
        setsockopt(
            sock.fd.as_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            &ifname,
        )?;
        let one: libc::c_int = 1;
        let zero: libc::c_int = 0;
        let ttl: libc::c_int = 255;
        setsockopt(sock.fd.as_fd(), libc::IPPROTO_IP, libc::IP_HDRINCL, &one)?;
        setsockopt(sock.fd.as_fd(), libc::IPPROTO_IP, libc::IP_TTL, &ttl)?;
        setsockopt(
            sock.fd.as_fd(),
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_TTL,
            &ttl,
        )?;
        setsockopt(
            sock.fd.as_fd(),
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_LOOP,
            &zero,
        )?;
        let mreq = libc::ip_mreqn {
            imr_multiaddr: in_addr(VRRP_GROUP),
            imr_address: in_addr(Ipv4Addr::UNSPECIFIED),
            imr_ifindex: ifindex_c,
        };
        setsockopt(
            sock.fd.as_fd(),
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_IF,
            &mreq,
        )?;
        setsockopt(
            sock.fd.as_fd(),
            libc::IPPROTO_IP,
            libc::IP_ADD_MEMBERSHIP,
            &mreq,
        )?;
        Ok(sock)
    }

    /// The interface the socket is bound to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Sends one whole IPv4 packet (header included) to `dst`.
    pub fn send_to(&self, packet: &[u8], dst: Ipv4Addr) -> io::Result<()> {
        // SAFETY: sockaddr_in is plain data; all-zero is a valid value.
        let mut sin: libc::sockaddr_in = unsafe { mem::zeroed() };
        sin.sin_family = libc::AF_INET as libc::sa_family_t;
        sin.sin_addr = in_addr(dst);
        // SAFETY: `packet` is valid for reads of its length; `sin` is a valid sockaddr_in
        // and the length passed is its size.
        let ret = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                packet.as_ptr().cast::<libc::c_void>(),
                packet.len(),
                libc::MSG_DONTWAIT,
                (&sin as *const libc::sockaddr_in).cast::<libc::sockaddr>(),
                mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        let sent = cvt_size(ret)?;
        if sent != packet.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("sent {sent} of {} bytes", packet.len()),
            ));
        }
        Ok(())
    }

    /// Receives one IPv4 packet into `buf`; `Ok(None)` when nothing is queued. A packet
    /// longer than `buf` is truncated (and then fails the receive checks).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            // SAFETY: `buf` is valid for writes of its length for the duration of the call.
            let ret = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast::<libc::c_void>(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if ret >= 0 {
                return Ok(Some(cvt_size(ret)?.min(buf.len())));
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EAGAIN) => return Ok(None),
                Some(libc::EINTR) => continue,
                _ => return Err(err),
            }
        }
    }
}

impl AsFd for VrrpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// ff02::12.
const VRRP_GROUP6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);

/// Whether `a` needs a scope id (link-local unicast or link-scope multicast).
fn link_scoped(a: Ipv6Addr) -> bool {
    let s = a.segments()[0];
    (s & 0xffc0) == 0xfe80 || (a.is_multicast() && (s & 0x000f) <= 2)
}

fn in6_addr(a: Ipv6Addr) -> libc::in6_addr {
    libc::in6_addr {
        s6_addr: a.octets(),
    }
}

/// One IPv6 advert as received: the header fields the checks need, and its length in
/// the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received6 {
    /// IPv6 source.
    pub src: Ipv6Addr,
    /// IPv6 destination (ff02::12, or ours for unicast); unspecified if the kernel gave
    /// no `IPV6_PKTINFO`.
    pub dst: Ipv6Addr,
    /// Hop limit; 0 if the kernel gave none.
    pub hop_limit: u8,
    /// Bytes of VRRP message written to the buffer.
    pub len: usize,
}

/// A raw IPv6 protocol-112 socket bound to one interface (module doc).
#[derive(Debug)]
pub struct VrrpSocket6 {
    fd: OwnedFd,
    ifindex: u32,
}

impl VrrpSocket6 {
    /// Opens the socket on interface `name` (index `ifindex`) and joins ff02::12 there.
    pub fn open(name: &str, ifindex: u32) -> io::Result<VrrpSocket6> {
        let name_bytes = name.as_bytes();
        if name_bytes.len() >= libc::IFNAMSIZ || name_bytes.contains(&0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("`{name}` is not an interface name"),
            ));
        }
        let ifindex_c = libc::c_int::try_from(ifindex)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_INET6,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                IPPROTO_VRRP,
            )
        };
        cvt(raw)?;
        // SAFETY: `raw` is a freshly created, valid fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let sock = VrrpSocket6 { fd, ifindex };
        let mut ifname = [0u8; libc::IFNAMSIZ];
        ifname[..name_bytes.len()].copy_from_slice(name_bytes);
        let f = sock.fd.as_fd();
        setsockopt(f, libc::SOL_SOCKET, libc::SO_BINDTODEVICE, &ifname)?;
        let one: libc::c_int = 1;
        let zero: libc::c_int = 0;
        let hops: libc::c_int = 255;
        let cs6: libc::c_int = 0xc0;
        setsockopt(f, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_IF, &ifindex_c)?;
        setsockopt(f, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS, &hops)?;
        setsockopt(f, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, &hops)?;
        setsockopt(f, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_LOOP, &zero)?;
        setsockopt(f, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT, &one)?;
        setsockopt(f, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, &one)?;
        setsockopt(f, libc::IPPROTO_IPV6, libc::IPV6_TCLASS, &cs6)?;
        let mreq = libc::ipv6_mreq {
            ipv6mr_multiaddr: in6_addr(VRRP_GROUP6),
            ipv6mr_interface: ifindex,
        };
        setsockopt(f, libc::IPPROTO_IPV6, libc::IPV6_ADD_MEMBERSHIP, &mreq)?;
        Ok(sock)
    }

    /// The interface the socket is bound to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Sends one VRRP message from `src` (set with `IPV6_PKTINFO`) to `dst`, hop limit 255.
    pub fn send_to(&self, payload: &[u8], src: Ipv6Addr, dst: Ipv6Addr) -> io::Result<()> {
        // SAFETY: sockaddr_in6 is plain data; all-zero is a valid value.
        let mut sin6: libc::sockaddr_in6 = unsafe { mem::zeroed() };
        sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
        sin6.sin6_addr = in6_addr(dst);
        if link_scoped(dst) {
            sin6.sin6_scope_id = self.ifindex;
        }
        let info = libc::in6_pktinfo {
            ipi6_addr: in6_addr(src),
            ipi6_ifindex: self.ifindex,
        };
        let mut control = [0u64; 8];
        let mut iov = libc::iovec {
            iov_base: payload.as_ptr().cast_mut().cast::<libc::c_void>(),
            iov_len: payload.len(),
        };
        // SAFETY: msghdr is plain data; all-zero is a valid value.
        let mut msg: libc::msghdr = unsafe { mem::zeroed() };
        msg.msg_name = (&mut sin6 as *mut libc::sockaddr_in6).cast::<libc::c_void>();
        msg.msg_namelen = mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast::<libc::c_void>();
        let info_len = mem::size_of::<libc::in6_pktinfo>() as libc::c_uint;
        // SAFETY: CMSG_SPACE is a pure size computation.
        let space = unsafe { libc::CMSG_SPACE(info_len) } as usize;
        if space > mem::size_of_val(&control) {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        msg.msg_controllen = space as _;
        // SAFETY: `msg` points at `control`, which holds `space` bytes (checked above),
        // so the first header and its data (CMSG_LEN(info_len) <= space) are inside it;
        // writes are unaligned-safe.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            if cmsg.is_null() {
                return Err(io::Error::from(io::ErrorKind::InvalidInput));
            }
            (*cmsg).cmsg_level = libc::IPPROTO_IPV6;
            (*cmsg).cmsg_type = libc::IPV6_PKTINFO;
            (*cmsg).cmsg_len = libc::CMSG_LEN(info_len) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::in6_pktinfo>(), info);
        }
        // SAFETY: every pointer in `msg` (name, iov, control) is valid for the call, and
        // the payload is only read.
        let ret = unsafe { libc::sendmsg(self.fd.as_raw_fd(), &msg, libc::MSG_DONTWAIT) };
        let sent = cvt_size(ret)?;
        if sent != payload.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("sent {sent} of {} bytes", payload.len()),
            ));
        }
        Ok(())
    }

    /// Receives one VRRP message into `buf`; `Ok(None)` when nothing is queued. A
    /// message longer than `buf` is truncated (and then fails the receive checks).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<Received6>> {
        loop {
            // SAFETY: plain data; all-zero is valid.
            let mut from: libc::sockaddr_in6 = unsafe { mem::zeroed() };
            let mut control = [0u64; 16];
            let mut iov = libc::iovec {
                iov_base: buf.as_mut_ptr().cast::<libc::c_void>(),
                iov_len: buf.len(),
            };
            // SAFETY: plain data; all-zero is valid.
            let mut msg: libc::msghdr = unsafe { mem::zeroed() };
            msg.msg_name = (&mut from as *mut libc::sockaddr_in6).cast::<libc::c_void>();
            msg.msg_namelen = mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast::<libc::c_void>();
            msg.msg_controllen = mem::size_of_val(&control) as _;
            // SAFETY: every pointer in `msg` is valid for writes of the given lengths for
            // the duration of the call.
            let ret = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
            if ret < 0 {
                let err = io::Error::last_os_error();
                match err.raw_os_error() {
                    Some(libc::EAGAIN) => return Ok(None),
                    Some(libc::EINTR) => continue,
                    _ => return Err(err),
                }
            }
            let len = cvt_size(ret)?.min(buf.len());
            let mut got = Received6 {
                src: Ipv6Addr::from(from.sin6_addr.s6_addr),
                dst: Ipv6Addr::UNSPECIFIED,
                hop_limit: 0,
                len,
            };
            // SAFETY: the kernel filled `msg_controllen` bytes of `control` with
            // well-formed control messages; CMSG_FIRSTHDR/NXTHDR stay inside them and
            // the data is read unaligned, only when its length covers the type read.
            unsafe {
                let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
                while !cmsg.is_null() {
                    let c = &*cmsg;
                    let data_len = (c.cmsg_len as usize).saturating_sub(libc::CMSG_LEN(0) as usize);
                    if c.cmsg_level == libc::IPPROTO_IPV6 {
                        if c.cmsg_type == libc::IPV6_HOPLIMIT
                            && data_len >= mem::size_of::<libc::c_int>()
                        {
                            let h = std::ptr::read_unaligned(
                                libc::CMSG_DATA(cmsg).cast::<libc::c_int>(),
                            );
                            got.hop_limit = u8::try_from(h).unwrap_or(0);
                        } else if c.cmsg_type == libc::IPV6_PKTINFO
                            && data_len >= mem::size_of::<libc::in6_pktinfo>()
                        {
                            let i = std::ptr::read_unaligned(
                                libc::CMSG_DATA(cmsg).cast::<libc::in6_pktinfo>(),
                            );
                            got.dst = Ipv6Addr::from(i.ipi6_addr.s6_addr);
                        }
                    }
                    cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
                }
            }
            return Ok(Some(got));
        }
    }
}

impl AsFd for VrrpSocket6 {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::io::testutil::{Netns, ifindex, root_or_skip};
    use crate::vrrp::sim::ipv4_packet;

    /// Waits up to 1 s for one packet.
    fn recv_one(sock: &VrrpSocket) -> Option<Vec<u8>> {
        let mut buf = [0u8; 2048];
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            if let Ok(Some(n)) = sock.recv(&mut buf) {
                return Some(buf[..n].to_vec());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }

    #[test]
    fn adverts_cross_a_veth_to_the_group_with_our_header() {
        if !root_or_skip("adverts_cross_a_veth_to_the_group_with_our_header") {
            return;
        }
        let a = Netns::new("vrrpa");
        let b = Netns::new("vrrpb");
        a.ip(&format!(
            "link add va type veth peer name vb netns {}",
            b.name
        ));
        a.ip("addr add 198.51.100.1/24 dev va");
        b.ip("addr add 198.51.100.2/24 dev vb");
        a.ip("link set va up");
        b.ip("link set vb up");
        let tx = a
            .run(|| VrrpSocket::open("va", ifindex("va")))
            .expect("open va");
        let rx = b
            .run(|| VrrpSocket::open("vb", ifindex("vb")))
            .expect("open vb");
        let src = Ipv4Addr::new(198, 51, 100, 1);
        let payload = [0x31, 51, 150, 1, 0, 100, 0, 0, 203, 0, 113, 10];
        let packet = ipv4_packet(src, VRRP_GROUP, 255, &payload);
        // The link may need a moment (DAD, carrier): retry the send until one arrives.
        let mut got = None;
        for _ in 0..5 {
            tx.send_to(&packet, VRRP_GROUP).expect("send");
            got = recv_one(&rx);
            if got.is_some() {
                break;
            }
        }
        let got = got.expect("the advert never arrived on vb");
        assert_eq!(got.len(), packet.len());
        assert_eq!(got[8], 255, "TTL");
        assert_eq!(got[9], 112, "protocol");
        assert_eq!(&got[12..16], &src.octets(), "source as written");
        assert_eq!(&got[20..], &payload);
        // Multicast loop is off: the sender hears nothing of its own.
        let mut buf = [0u8; 2048];
        assert!(matches!(tx.recv(&mut buf), Ok(None)));
        assert!(VrrpSocket::open("no-such-if0", 9999).is_err());
    }
}

#[cfg(test)]
mod tests6 {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::io::testutil::{Netns, ifindex, root_or_skip};

    /// The interface's link-local address once DAD let it go (up to 3 s).
    fn link_local(ns: &Netns, ifname: &str) -> Ipv6Addr {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let out = ns.exec(&[
                "ip", "-6", "-o", "addr", "show", "dev", ifname, "scope", "link",
            ]);
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            if !text.contains("tentative") {
                let addr = text
                    .split_whitespace()
                    .skip_while(|w| *w != "inet6")
                    .nth(1)
                    .and_then(|a| a.split('/').next())
                    .and_then(|a| a.parse().ok());
                if let Some(a) = addr {
                    return a;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no link-local address on {ifname}: {text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    #[test]
    fn ipv6_adverts_cross_a_veth_from_the_link_local_with_hop_limit_255() {
        if !root_or_skip("ipv6_adverts_cross_a_veth_from_the_link_local_with_hop_limit_255") {
            return;
        }
        let a = Netns::new("vrrp6a");
        let b = Netns::new("vrrp6b");
        a.ip(&format!(
            "link add va type veth peer name vb netns {}",
            b.name
        ));
        for (ns, i) in [(&a, "va"), (&b, "vb")] {
            let _ = ns.exec(&[
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{i}.disable_ipv6=0"),
            ]);
            ns.ip(&format!("link set {i} up"));
        }
        let src = link_local(&a, "va");
        link_local(&b, "vb");
        let tx = a
            .run(|| VrrpSocket6::open("va", ifindex("va")))
            .expect("open va");
        let rx = b
            .run(|| VrrpSocket6::open("vb", ifindex("vb")))
            .expect("open vb");
        let payload = [0x31u8, 51, 150, 0, 0, 100, 0, 0];
        let mut got = None;
        let mut buf = [0u8; 2048];
        for _ in 0..10 {
            tx.send_to(&payload, src, VRRP_GROUP6).expect("send");
            let deadline = Instant::now() + Duration::from_millis(300);
            while Instant::now() < deadline && got.is_none() {
                got = rx.recv(&mut buf).expect("recv");
                std::thread::sleep(Duration::from_millis(5));
            }
            if got.is_some() {
                break;
            }
        }
        let got = got.expect("the advert never arrived on vb");
        assert_eq!(got.src, src);
        assert_eq!(got.dst, VRRP_GROUP6);
        assert_eq!(got.hop_limit, 255);
        assert_eq!(&buf[..got.len], &payload);
        // Multicast loop is off.
        assert!(matches!(tx.recv(&mut buf), Ok(None)));
        assert!(VrrpSocket6::open("no-such-if0", 9999).is_err());
    }
}
