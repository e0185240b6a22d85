//! Builders for whole Ethernet/IPv4/TCP-or-UDP frames ([`FrameSpec`]) and
//! Ethernet/IPv6/TCP-or-UDP frames ([`FrameSpec6`]) with correct checksums.
//!
//! Used by tests, golden fixtures and the lab; never on the forwarding path. The ARP
//! request builder used by the core lives in [`super::arp::emit_request`].

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

use super::ethernet::{self, EtherType, EthernetFrame, EthernetRepr, MacAddr};
use super::ipv4::{self, IpProtocol, Ipv4Packet, Ipv4Repr};
use super::ipv6::{self, Ipv6Packet};
use super::tcp::{TcpControl, TcpPacket, TcpRepr};
use super::udp::{self, UdpPacket, UdpRepr};

/// The transport header of a built frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A TCP header without options.
    Tcp(TcpRepr),
    /// A UDP header.
    Udp(UdpRepr),
}

/// A whole Ethernet II / IPv4 / TCP-or-UDP frame to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameSpec<'a> {
    /// Ethernet source.
    pub src_mac: MacAddr,
    /// Ethernet destination.
    pub dst_mac: MacAddr,
    /// IPv4 source.
    pub src: Ipv4Addr,
    /// IPv4 destination.
    pub dst: Ipv4Addr,
    /// TTL.
    pub ttl: u8,
    /// IPv4 identification.
    pub ident: u16,
    /// Transport header.
    pub transport: Transport,
    /// Transport payload.
    pub payload: &'a [u8],
}

impl<'a> FrameSpec<'a> {
    /// A TCP segment `src -> dst` with `control`, seq 1, ack 0 (or 1 with ACK), window
    /// 64240, TTL 64, no payload.
    pub fn tcp(
        src_mac: MacAddr,
        dst_mac: MacAddr,
        src: SocketAddrV4,
        dst: SocketAddrV4,
        control: TcpControl,
    ) -> Self {
        FrameSpec {
            src_mac,
            dst_mac,
            src: *src.ip(),
            dst: *dst.ip(),
            ttl: 64,
            ident: 0,
            transport: Transport::Tcp(TcpRepr {
                src_port: src.port(),
                dst_port: dst.port(),
                seq_number: 1,
                ack_number: u32::from(control.contains(TcpControl::ACK)),
                control,
                window_len: 64240,
            }),
            payload: &[],
        }
    }

    /// A UDP datagram `src -> dst` carrying `payload`, TTL 64.
    pub fn udp(
        src_mac: MacAddr,
        dst_mac: MacAddr,
        src: SocketAddrV4,
        dst: SocketAddrV4,
        payload: &'a [u8],
    ) -> Self {
        FrameSpec {
            src_mac,
            dst_mac,
            src: *src.ip(),
            dst: *dst.ip(),
            ttl: 64,
            ident: 0,
            transport: Transport::Udp(UdpRepr {
                src_port: src.port(),
                dst_port: dst.port(),
            }),
            payload,
        }
    }

    /// The same frame with another payload.
    pub fn with_payload(self, payload: &'a [u8]) -> Self {
        FrameSpec { payload, ..self }
    }

    fn l4_header_len(&self) -> usize {
        match self.transport {
            Transport::Tcp(t) => t.header_len(),
            Transport::Udp(u) => u.header_len(),
        }
    }

    /// Length of the whole frame.
    pub fn len(&self) -> usize {
        ethernet::HEADER_LEN + ipv4::MIN_HEADER_LEN + self.l4_header_len() + self.payload.len()
    }

    /// Whether the frame would be empty (never: headers are always there).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the frame into `buf` with complete checksums; returns its length, or `None`
    /// if `buf` is too short or the IP packet would exceed 65535 bytes.
    pub fn emit(&self, buf: &mut [u8]) -> Option<usize> {
        let len = self.len();
        let ip_len = len - ethernet::HEADER_LEN;
        if ip_len > usize::from(u16::MAX) {
            return None;
        }
        let buf = buf.get_mut(..len)?;
        let mut eth = EthernetFrame::new_unchecked(&mut *buf);
        EthernetRepr {
            src_addr: self.src_mac,
            dst_addr: self.dst_mac,
            ethertype: EtherType::IPV4,
        }
        .emit(&mut eth);
        let mut ip = Ipv4Packet::new_unchecked(eth.payload_mut());
        let protocol = match self.transport {
            Transport::Tcp(_) => IpProtocol::TCP,
            Transport::Udp(_) => IpProtocol::UDP,
        };
        Ipv4Repr {
            src_addr: self.src,
            dst_addr: self.dst,
            protocol,
            payload_len: ip_len - ipv4::MIN_HEADER_LEN,
            ttl: self.ttl,
            ident: self.ident,
            dont_frag: true,
        }
        .emit(&mut ip);
        let l4 = ip.payload_mut();
        match self.transport {
            Transport::Tcp(t) => {
                let mut p = TcpPacket::new_unchecked(l4);
                t.emit(&mut p);
                p.payload_mut().copy_from_slice(self.payload);
                p.fill_checksum(self.src, self.dst);
            }
            Transport::Udp(u) => {
                let mut p = UdpPacket::new_unchecked(l4);
                u.emit(&mut p, self.payload.len());
                p.payload_mut().copy_from_slice(self.payload);
                p.fill_checksum(self.src, self.dst);
            }
        }
        Some(len)
    }

    /// The frame as a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.len()];
        let n = self.emit(&mut v).unwrap_or(0);
        v.truncate(n);
        v
    }
}

/// Whether `frame` is Ethernet/IPv4/TCP-or-UDP with a correct IPv4 header checksum and a
/// correct (or, for UDP, absent) L4 checksum, all recomputed from scratch.
pub fn checksums_valid(frame: &[u8]) -> bool {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return false;
    };
    let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
        return false;
    };
    if !ip.verify_checksum() {
        return false;
    }
    let (s, d) = (ip.src_addr(), ip.dst_addr());
    match ip.protocol() {
        IpProtocol::TCP => {
            TcpPacket::new_checked(ip.payload()).is_ok_and(|t| t.verify_checksum(s, d))
        }
        IpProtocol::UDP => {
            UdpPacket::new_checked(ip.payload()).is_ok_and(|u| u.verify_checksum(s, d))
        }
        _ => false,
    }
}

/// Byte offset of the L4 checksum field within an Ethernet/IPv4 frame, if it is TCP or UDP.
pub fn l4_checksum_offset(frame: &[u8]) -> Option<usize> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    let l4 = ethernet::HEADER_LEN + ip.header_len();
    match ip.protocol() {
        IpProtocol::TCP => Some(l4 + super::tcp::CHECKSUM_OFFSET),
        IpProtocol::UDP => Some(l4 + udp::CHECKSUM_OFFSET),
        _ => None,
    }
}

/// A whole Ethernet II / IPv6 / TCP-or-UDP frame to build (no extension headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameSpec6<'a> {
    /// Ethernet source.
    pub src_mac: MacAddr,
    /// Ethernet destination.
    pub dst_mac: MacAddr,
    /// IPv6 source.
    pub src: Ipv6Addr,
    /// IPv6 destination.
    pub dst: Ipv6Addr,
    /// Hop limit.
    pub hop_limit: u8,
    /// Traffic class (DSCP and ECN).
    pub traffic_class: u8,
    /// Flow label (20 bits).
    pub flow_label: u32,
    /// Transport header.
    pub transport: Transport,
    /// Transport payload.
    pub payload: &'a [u8],
}

impl<'a> FrameSpec6<'a> {
    /// A TCP segment `src -> dst` with `control`, seq 1, ack 0 (or 1 with ACK), window
    /// 64240, hop limit 64, traffic class and flow label 0, no payload.
    pub fn tcp(
        src_mac: MacAddr,
        dst_mac: MacAddr,
        src: SocketAddrV6,
        dst: SocketAddrV6,
        control: TcpControl,
    ) -> Self {
        FrameSpec6 {
            src_mac,
            dst_mac,
            src: *src.ip(),
            dst: *dst.ip(),
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0,
            transport: Transport::Tcp(TcpRepr {
                src_port: src.port(),
                dst_port: dst.port(),
                seq_number: 1,
                ack_number: u32::from(control.contains(TcpControl::ACK)),
                control,
                window_len: 64240,
            }),
            payload: &[],
        }
    }

    /// A UDP datagram `src -> dst` carrying `payload`, hop limit 64.
    pub fn udp(
        src_mac: MacAddr,
        dst_mac: MacAddr,
        src: SocketAddrV6,
        dst: SocketAddrV6,
        payload: &'a [u8],
    ) -> Self {
        FrameSpec6 {
            src_mac,
            dst_mac,
            src: *src.ip(),
            dst: *dst.ip(),
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0,
            transport: Transport::Udp(UdpRepr {
                src_port: src.port(),
                dst_port: dst.port(),
            }),
            payload,
        }
    }

    /// The same frame with another payload.
    pub fn with_payload(self, payload: &'a [u8]) -> Self {
        FrameSpec6 { payload, ..self }
    }

    fn l4_header_len(&self) -> usize {
        match self.transport {
            Transport::Tcp(t) => t.header_len(),
            Transport::Udp(u) => u.header_len(),
        }
    }

    /// Length of the whole frame.
    pub fn len(&self) -> usize {
        ethernet::HEADER_LEN + ipv6::HEADER_LEN + self.l4_header_len() + self.payload.len()
    }

    /// Whether the frame would be empty (never: headers are always there).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the frame into `buf` with complete checksums; returns its length, or `None`
    /// if `buf` is too short or the IPv6 payload would exceed 65535 bytes.
    pub fn emit(&self, buf: &mut [u8]) -> Option<usize> {
        let len = self.len();
        let payload_len = u16::try_from(len - ethernet::HEADER_LEN - ipv6::HEADER_LEN).ok()?;
        let buf = buf.get_mut(..len)?;
        let mut eth = EthernetFrame::new_unchecked(&mut *buf);
        EthernetRepr {
            src_addr: self.src_mac,
            dst_addr: self.dst_mac,
            ethertype: EtherType::IPV6,
        }
        .emit(&mut eth);
        let mut ip = Ipv6Packet::new_unchecked(eth.payload_mut());
        ip.set_version_tc_flow(self.traffic_class, self.flow_label);
        ip.set_payload_len(payload_len);
        ip.set_hop_limit(self.hop_limit);
        ip.set_src_addr(self.src);
        ip.set_dst_addr(self.dst);
        let protocol = match self.transport {
            Transport::Tcp(_) => IpProtocol::TCP,
            Transport::Udp(_) => IpProtocol::UDP,
        };
        ip.set_next_header(protocol.0);
        let l4 = ip.payload_mut();
        match self.transport {
            Transport::Tcp(t) => {
                let mut p = TcpPacket::new_unchecked(&mut *l4);
                t.emit(&mut p);
                p.payload_mut().copy_from_slice(self.payload);
            }
            Transport::Udp(u) => {
                let mut p = UdpPacket::new_unchecked(&mut *l4);
                u.emit(&mut p, self.payload.len());
                p.payload_mut().copy_from_slice(self.payload);
            }
        }
        super::checksum::fill_l4_v6(l4, self.src, self.dst, protocol.0)?;
        Some(len)
    }

    /// The frame as a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.len()];
        let n = self.emit(&mut v).unwrap_or(0);
        v.truncate(n);
        v
    }
}

/// Whether `frame` is Ethernet/IPv6/TCP-or-UDP (extension headers walked) with a correct
/// L4 checksum, recomputed from scratch (a UDP checksum of 0 is wrong over IPv6).
pub fn checksums_valid6(frame: &[u8]) -> bool {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return false;
    };
    if eth.ethertype() != EtherType::IPV6 {
        return false;
    }
    let Ok(ip) = Ipv6Packet::new_checked(eth.payload()) else {
        return false;
    };
    let Ok(upper) = ip.upper_layer(ipv6::MAX_EXT_HEADERS) else {
        return false;
    };
    if upper.fragment.is_some() {
        return false;
    }
    let Some(l4) = ip.packet().get(upper.offset..) else {
        return false;
    };
    super::checksum::verify_l4_v6(l4, ip.src_addr(), ip.dst_addr(), upper.protocol.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: MacAddr = [2, 0, 0, 0, 0, 1];
    const B: MacAddr = [2, 0, 0, 0, 0, 2];

    #[test]
    fn built_v6_frames_are_valid() {
        use std::net::SocketAddrV6;
        let c = SocketAddrV6::new("2001:db8:c::10".parse().unwrap(), 40000, 0, 0);
        let v = SocketAddrV6::new("2001:db8:f::10".parse().unwrap(), 80, 0, 0);
        let mut spec = FrameSpec6::tcp(A, B, c, v, TcpControl::SYN).with_payload(b"abc");
        spec.traffic_class = 0xb8;
        spec.flow_label = 0x12345;
        let f = spec.to_vec();
        assert_eq!(f.len(), 14 + 40 + 20 + 3);
        assert_eq!(&f[12..14], &[0x86, 0xdd]);
        // Version 6, traffic class 0xb8, flow label 0x12345, payload length 23, TCP, 64.
        assert_eq!(&f[14..22], &[0x6b, 0x81, 0x23, 0x45, 0, 23, 6, 64]);
        assert!(checksums_valid6(&f));
        assert!(!checksums_valid(&f), "not IPv4");
        let f = FrameSpec6::udp(A, B, c, v, b"hello").to_vec();
        assert_eq!(f.len(), 14 + 40 + 8 + 5);
        assert!(checksums_valid6(&f));
        let mut bad = f.clone();
        bad[14 + 40 + 8] ^= 1;
        assert!(!checksums_valid6(&bad));
        for n in 0..f.len() {
            assert!(!checksums_valid6(&f[..n]), "{n}");
        }
        assert_eq!(
            FrameSpec6::udp(A, B, c, v, b"hello").emit(&mut [0u8; 60]),
            None
        );
    }

    #[test]
    fn built_frames_are_valid() {
        let c = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 1), 40000);
        let v = SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 10), 80);
        let f = FrameSpec::tcp(A, B, c, v, TcpControl::SYN)
            .with_payload(b"abc")
            .to_vec();
        assert_eq!(f.len(), 14 + 20 + 20 + 3);
        assert!(checksums_valid(&f));
        let f = FrameSpec::udp(A, B, c, v, b"hello").to_vec();
        assert_eq!(f.len(), 14 + 20 + 8 + 5);
        assert!(checksums_valid(&f));
        assert_eq!(l4_checksum_offset(&f), Some(14 + 20 + 6));
        let mut bad = f.clone();
        bad[14 + 20 + 8] ^= 1;
        assert!(!checksums_valid(&bad));
        assert_eq!(
            FrameSpec::udp(A, B, c, v, b"hello").emit(&mut [0u8; 20]),
            None
        );
    }
}
