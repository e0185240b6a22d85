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

use std::io;
use std::mem;
use std::net::Ipv4Addr;
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
