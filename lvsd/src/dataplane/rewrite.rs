//! In-place header rewrites on a frame already copied to the output buffer.
//!
//! Preconditions (established by the caller's checked parse of the same bytes): the frame
//! holds an Ethernet header, a valid IPv4 header (or an IPv6 header whose TCP/UDP header
//! starts at the `l4_at` the caller found after the extension headers) and a whole TCP or
//! UDP header. Every
//! access still goes through `get`/`get_mut`, so a broken precondition leaves the frame
//! partly rewritten but never panics.
//!
//! Checksums:
//! - IPv4 header: always complete; RFC 1624 update for the address. IPv6 has no header
//!   checksum; its 16-byte addresses enter the L4 update as four 32-bit words.
//! - L4, complete: RFC 1624 update for the address (pseudo-header) and the port; a UDP
//!   field of 0 ("no checksum") stays 0, and a result of 0 is written as 0xFFFF.
//! - L4, partial (`CHECKSUM_PARTIAL`): the field holds the non-complemented pseudo-header
//!   sum, which covers the addresses but not the ports (those lie inside the region the
//!   device sums later). So only the address change is applied, as subtract-old/add-new;
//!   the port change must not touch the field.

use std::net::{Ipv4Addr, Ipv6Addr};

use lvs_proto::Protocol;

use crate::wire::checksum;
use crate::wire::ethernet::{self, EthernetFrame, MacAddr};
use crate::wire::ipv4::Ipv4Packet;
use crate::wire::{tcp, udp};

/// Which end of the packet a NAT rewrite changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    /// Source address and port (NAT replies: RIP:rport -> VIP:vport).
    Src,
    /// Destination address and port (NAT inbound: VIP:vport -> RIP:rport).
    Dst,
}

/// Sets both MAC addresses.
pub(super) fn macs(frame: &mut [u8], src: MacAddr, dst: MacAddr) {
    if frame.len() >= ethernet::HEADER_LEN {
        let mut eth = EthernetFrame::new_unchecked(frame);
        eth.set_src_addr(src);
        eth.set_dst_addr(dst);
    }
}

fn read16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at + 2)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

fn write16(b: &mut [u8], at: usize, v: u16) {
    if let Some(s) = b.get_mut(at..at + 2) {
        s.copy_from_slice(&v.to_be_bytes());
    }
}

/// Rewrites one side's address and port of the IPv4/TCP-or-UDP packet in `frame` and fixes
/// the checksums (module doc). `csum_partial` says the L4 field holds a partial sum.
pub(super) fn nat(
    frame: &mut [u8],
    protocol: Protocol,
    side: Side,
    addr: Ipv4Addr,
    port: u16,
    csum_partial: bool,
) {
    let Some(ip_buf) = frame.get_mut(ethernet::HEADER_LEN..) else {
        return;
    };
    if ip_buf.len() < crate::wire::ipv4::MIN_HEADER_LEN {
        return;
    }
    let mut ip = Ipv4Packet::new_unchecked(&mut *ip_buf);
    let old_addr = match side {
        Side::Src => ip.src_addr(),
        Side::Dst => ip.dst_addr(),
    };
    match side {
        Side::Src => ip.rewrite_src_addr(addr),
        Side::Dst => ip.rewrite_dst_addr(addr),
    }
    let hl = ip.header_len();
    let port_at = hl
        + match side {
            Side::Src => 0,
            Side::Dst => 2,
        };
    let csum_at = hl
        + match protocol {
            Protocol::Tcp => tcp::CHECKSUM_OFFSET,
            Protocol::Udp => udp::CHECKSUM_OFFSET,
        };
    let (Some(old_port), Some(old_csum)) = (read16(ip_buf, port_at), read16(ip_buf, csum_at))
    else {
        return;
    };
    write16(ip_buf, port_at, port);
    let (o, n) = (old_addr.octets(), addr.octets());
    let csum = if csum_partial {
        checksum::partial_update32(old_csum, o, n)
    } else if protocol == Protocol::Udp && old_csum == 0 {
        0
    } else {
        let c = checksum::update16(checksum::update32(old_csum, o, n), old_port, port);
        match protocol {
            Protocol::Udp => checksum::udp_nonzero(c),
            Protocol::Tcp => c,
        }
    };
    write16(ip_buf, csum_at, csum);
}

/// [`nat`] for IPv6 (NAT66): the L4 header at `l4_at` from the IPv6 header.
pub(super) fn nat6(
    frame: &mut [u8],
    protocol: Protocol,
    side: Side,
    (addr, port): (Ipv6Addr, u16),
    csum_partial: bool,
    l4_at: usize,
) {
    let Some(ip_buf) = frame.get_mut(ethernet::HEADER_LEN..) else {
        return;
    };
    let addr_at = match side {
        Side::Src => 8,
        Side::Dst => 24,
    };
    let Some(field) = ip_buf.get_mut(addr_at..addr_at + 16) else {
        return;
    };
    let mut old = [0u8; 16];
    old.copy_from_slice(field);
    let new = addr.octets();
    field.copy_from_slice(&new);
    let port_at = l4_at
        + match side {
            Side::Src => 0,
            Side::Dst => 2,
        };
    let csum_at = l4_at
        + match protocol {
            Protocol::Tcp => tcp::CHECKSUM_OFFSET,
            Protocol::Udp => udp::CHECKSUM_OFFSET,
        };
    let (Some(old_port), Some(old_csum)) = (read16(ip_buf, port_at), read16(ip_buf, csum_at))
    else {
        return;
    };
    write16(ip_buf, port_at, port);
    let words = |b: &[u8; 16], i: usize| [b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]];
    let csum = if csum_partial {
        (0..4).fold(old_csum, |c, i| {
            checksum::partial_update32(c, words(&old, i), words(&new, i))
        })
    } else if protocol == Protocol::Udp && old_csum == 0 {
        // Not valid in IPv6 (RFC 8200 §8.1), and not ours to invent: left as it came.
        0
    } else {
        let c = (0..4).fold(old_csum, |c, i| {
            checksum::update32(c, words(&old, i), words(&new, i))
        });
        let c = checksum::update16(c, old_port, port);
        match protocol {
            Protocol::Udp => checksum::udp_nonzero(c),
            Protocol::Tcp => c,
        }
    };
    write16(ip_buf, csum_at, csum);
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddrV4;

    use super::*;
    use crate::dataplane::tests::{device_finish, make_partial};
    use crate::wire::build::{FrameSpec, checksums_valid, l4_checksum_offset};
    use crate::wire::tcp::TcpControl;

    const A: MacAddr = [2, 0, 0, 0, 0, 1];
    const B: MacAddr = [2, 0, 0, 0, 0, 2];

    fn sa(a: [u8; 4], p: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::from(a), p)
    }

    fn cases() -> Vec<(Protocol, Vec<u8>)> {
        let mut v = Vec::new();
        for (i, payload) in [&b""[..], b"x", b"hello world", &[0xff; 33][..]]
            .iter()
            .enumerate()
        {
            let c = sa([198, 51, 100, 1 + i as u8], 40000 + i as u16);
            let vip = sa([203, 0, 113, 10], 80);
            v.push((
                Protocol::Tcp,
                FrameSpec::tcp(A, B, c, vip, TcpControl::SYN)
                    .with_payload(payload)
                    .to_vec(),
            ));
            v.push((
                Protocol::Udp,
                FrameSpec::udp(A, B, c, vip, payload).to_vec(),
            ));
        }
        v
    }

    /// Complete checksums: the incremental result equals a recomputation from scratch,
    /// both ways (dst rewrite inbound, src rewrite for replies), with port translation.
    #[test]
    fn complete_checksum_incremental_equals_recompute() {
        for (proto, frame) in cases() {
            for side in [Side::Dst, Side::Src] {
                let mut f = frame.clone();
                nat(
                    &mut f,
                    proto,
                    side,
                    Ipv4Addr::new(192, 0, 2, 11),
                    8080,
                    false,
                );
                assert!(checksums_valid(&f), "{proto:?} {side:?}");
                // Recompute from scratch and compare bit for bit.
                let at = l4_checksum_offset(&f).unwrap();
                let incremental = [f[at], f[at + 1]];
                let ip_ck = [f[24], f[25]];
                let mut g = f.clone();
                let mut ip = Ipv4Packet::new_unchecked(&mut g[14..]);
                ip.fill_checksum();
                let (s, d) = (ip.src_addr(), ip.dst_addr());
                let l4 = ip.payload_mut();
                match proto {
                    Protocol::Tcp => tcp::TcpPacket::new_unchecked(l4).fill_checksum(s, d),
                    Protocol::Udp => udp::UdpPacket::new_unchecked(l4).fill_checksum(s, d),
                }
                assert_eq!([g[at], g[at + 1]], incremental, "{proto:?} {side:?}");
                assert_eq!([g[24], g[25]], ip_ck);
                // Ports and addresses are what we asked for.
                let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
                let (addr, port_at) = match side {
                    Side::Dst => (ip.dst_addr(), 14 + 20 + 2),
                    Side::Src => (ip.src_addr(), 14 + 20),
                };
                assert_eq!(addr, Ipv4Addr::new(192, 0, 2, 11));
                assert_eq!(&f[port_at..port_at + 2], &8080u16.to_be_bytes());
            }
        }
    }

    /// Partial checksums: after the rewrite, the device's finishing step yields a valid
    /// checksum; and the ports did not enter the partial field.
    #[test]
    fn partial_checksum_finishes_valid() {
        for (proto, frame) in cases() {
            for side in [Side::Dst, Side::Src] {
                let mut f = frame.clone();
                make_partial(&mut f);
                nat(
                    &mut f,
                    proto,
                    side,
                    Ipv4Addr::new(192, 0, 2, 11),
                    8080,
                    true,
                );
                // The field is exactly the new pseudo-header sum.
                let mut expect = f.clone();
                make_partial(&mut expect);
                assert_eq!(f, expect, "{proto:?} {side:?}");
                device_finish(&mut f, proto);
                assert!(checksums_valid(&f), "{proto:?} {side:?}");
            }
        }
    }

    /// UDP without a checksum stays without one.
    #[test]
    fn udp_zero_checksum_stays_zero() {
        let c = sa([198, 51, 100, 1], 5353);
        let v = sa([203, 0, 113, 10], 53);
        let mut f = FrameSpec::udp(A, B, c, v, b"q").to_vec();
        let at = l4_checksum_offset(&f).unwrap();
        f[at] = 0;
        f[at + 1] = 0;
        nat(
            &mut f,
            Protocol::Udp,
            Side::Dst,
            Ipv4Addr::new(192, 0, 2, 11),
            5300,
            false,
        );
        assert_eq!(&f[at..at + 2], &[0, 0]);
        assert!(checksums_valid(&f));
    }

    /// Garbage and short frames never panic.
    #[test]
    fn short_frames_do_not_panic() {
        let frame = FrameSpec::tcp(
            A,
            B,
            sa([1, 2, 3, 4], 1),
            sa([5, 6, 7, 8], 2),
            TcpControl::SYN,
        )
        .to_vec();
        for n in 0..frame.len() {
            let mut f = frame[..n].to_vec();
            nat(
                &mut f,
                Protocol::Tcp,
                Side::Dst,
                Ipv4Addr::LOCALHOST,
                9,
                false,
            );
            nat(
                &mut f,
                Protocol::Udp,
                Side::Src,
                Ipv4Addr::LOCALHOST,
                9,
                true,
            );
            macs(&mut f, A, B);
        }
    }
}
