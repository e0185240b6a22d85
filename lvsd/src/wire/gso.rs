//! Software segmentation of a TCP/IPv4 or TCP/IPv6 GSO super-packet (what the kernel's
//! `tcp_gso_segment` with `inet_gso_segment` / `ipv6_gso_segment` does), for paths where
//! the device cannot do it: an encapsulated packet (IPv4 or IPv6 in IPv4 or IPv6) has no
//! virtio GSO type, so the director cuts the inner packet into MTU-sized segments itself
//! and encapsulates each.
//!
//! Invariants (each segment `i` of `n`):
//! - IPv4: IP header (options included) and TCP header (options included) copied from the
//!   super-packet; total length fixed; identification = original + i (wrapping), as the
//!   kernel does for TCPv4 GSO without fixed ids; header checksum recomputed.
//! - IPv6: the 40-byte fixed header and the TCP header (options included) copied; payload
//!   length fixed. Only a packet whose next header is TCP is accepted: extension headers
//!   (and so a fragment header) are `Malformed` (a GSO super-packet from the kernel has
//!   none in practice, and copying them per segment would need rules per header).
//! - Sequence number = original + i × mss; FIN and PSH only on the last segment, CWR only
//!   on the first; payload bytes `[i × mss, min((i+1) × mss, len))`.
//! - The TCP checksum is computed from scratch over the pseudo-header (IPv4 or IPv6) and
//!   the segment, so the super-packet's field may hold anything (a partial sum,
//!   `NEEDS_CSUM`).
//! - Untrusted input is checked in [`TcpSegmenter::new`]; `emit` returns `None` rather than
//!   write past its buffer; nothing panics or allocates.

use super::checksum;
use super::ipv4::{IpProtocol, Ipv4Packet};
use super::ipv6::{self, Ipv6Packet};
use super::tcp::TcpPacket;
use super::{Error, Result};

/// FIN, PSH and CWR in the TCP flags byte (byte 13).
const FIN: u8 = 0x01;
const PSH: u8 = 0x08;
const CWR: u8 = 0x80;

/// A super-packet ready to be cut into segments of at most `mss` payload bytes.
#[derive(Debug, Clone, Copy)]
pub struct TcpSegmenter<'a> {
    packet: &'a [u8],
    /// IP header + TCP header length.
    headers: usize,
    ip_header: usize,
    payload: usize,
    mss: usize,
    /// An IPv6 packet (else IPv4).
    v6: bool,
}

impl<'a> TcpSegmenter<'a> {
    /// Checks `packet` (an IPv4/TCP packet, not a fragment, or an IPv6/TCP packet without
    /// extension headers; cut to its own length or longer) and `mss` (> 0). The version
    /// nibble decides the family.
    pub fn new(packet: &'a [u8], mss: usize) -> Result<Self> {
        if packet.first().is_some_and(|b| b >> 4 == 6) {
            return Self::new_v6(packet, mss);
        }
        let ip = Ipv4Packet::new_checked(packet)?;
        if ip.protocol() != IpProtocol::TCP || ip.is_fragment() || mss == 0 {
            return Err(Error::Malformed);
        }
        let ip_header = ip.header_len();
        let total = usize::from(ip.total_len());
        let tcp = TcpPacket::new_checked(ip.payload())?;
        let headers = ip_header + tcp.header_len();
        Ok(TcpSegmenter {
            packet: packet.get(..total).ok_or(Error::Truncated)?,
            headers,
            ip_header,
            payload: total.saturating_sub(headers),
            mss,
            v6: false,
        })
    }

    fn new_v6(packet: &'a [u8], mss: usize) -> Result<Self> {
        let ip = Ipv6Packet::new_checked(packet)?;
        if ip.next_header() != IpProtocol::TCP.0 || mss == 0 {
            return Err(Error::Malformed);
        }
        let total = ipv6::HEADER_LEN + usize::from(ip.payload_len());
        let tcp = TcpPacket::new_checked(ip.payload())?;
        let headers = ipv6::HEADER_LEN + tcp.header_len();
        Ok(TcpSegmenter {
            packet: packet.get(..total).ok_or(Error::Truncated)?,
            headers,
            ip_header: ipv6::HEADER_LEN,
            payload: total.saturating_sub(headers),
            mss,
            v6: true,
        })
    }

    /// Number of segments (at least 1, even without payload).
    pub fn count(&self) -> usize {
        self.payload.div_ceil(self.mss).max(1)
    }

    /// Length of the IP + TCP headers of every segment.
    pub fn header_len(&self) -> usize {
        self.headers
    }

    /// Whether the super-packet is IPv6.
    pub fn is_v6(&self) -> bool {
        self.v6
    }

    /// Writes segment `index` (an IP packet of the super-packet's family) into `buf`;
    /// returns its length.
    pub fn emit(&self, index: usize, buf: &mut [u8]) -> Option<usize> {
        let n = self.count();
        if index >= n {
            return None;
        }
        let start = index.checked_mul(self.mss)?;
        let end = start.saturating_add(self.mss).min(self.payload);
        let chunk = end.saturating_sub(start);
        let len = self.headers + chunk;
        let out = buf.get_mut(..len)?;
        out.get_mut(..self.headers)?
            .copy_from_slice(self.packet.get(..self.headers)?);
        out.get_mut(self.headers..)?
            .copy_from_slice(self.packet.get(self.headers + start..self.headers + end)?);
        if self.v6 {
            return self.finish_v6(index, n, start, out);
        }
        let (src, dst);
        {
            let mut ip = Ipv4Packet::new_unchecked(&mut *out);
            ip.set_total_len(u16::try_from(len).ok()?);
            let ident = ip.ident().wrapping_add(index as u16);
            ip.set_ident(ident);
            ip.fill_checksum();
            src = ip.src_addr();
            dst = ip.dst_addr();
        }
        let tcp_buf = out.get_mut(self.ip_header..)?;
        let flags_at = 13;
        let mut flags = *tcp_buf.get(flags_at)?;
        if index + 1 < n {
            flags &= !(FIN | PSH);
        }
        if index > 0 {
            flags &= !CWR;
        }
        *tcp_buf.get_mut(flags_at)? = flags;
        let mut tcp = TcpPacket::new_unchecked(tcp_buf);
        let seq = tcp.seq_number().wrapping_add(u32::try_from(start).ok()?);
        tcp.set_seq_number(seq);
        tcp.fill_checksum(src, dst);
        Some(len)
    }

    /// The IPv6 half of [`TcpSegmenter::emit`]: `out` holds the copied headers and the
    /// chunk; fixes the payload length, the flags, the sequence number and the checksum.
    fn finish_v6(&self, index: usize, n: usize, start: usize, out: &mut [u8]) -> Option<usize> {
        let len = out.len();
        let (src, dst) = {
            let mut ip = Ipv6Packet::new_unchecked(&mut *out);
            ip.set_payload_len(u16::try_from(len - ipv6::HEADER_LEN).ok()?);
            (ip.src_addr(), ip.dst_addr())
        };
        let tcp_buf = out.get_mut(ipv6::HEADER_LEN..)?;
        let mut flags = *tcp_buf.get(13)?;
        if index + 1 < n {
            flags &= !(FIN | PSH);
        }
        if index > 0 {
            flags &= !CWR;
        }
        *tcp_buf.get_mut(13)? = flags;
        let mut tcp = TcpPacket::new_unchecked(&mut *tcp_buf);
        let seq = tcp.seq_number().wrapping_add(u32::try_from(start).ok()?);
        tcp.set_seq_number(seq);
        checksum::fill_l4_v6(tcp_buf, src, dst, IpProtocol::TCP.0)?;
        Some(len)
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddrV4};

    use super::*;
    use crate::wire::build::FrameSpec;
    use crate::wire::tcp::TcpControl;

    fn super_packet(payload: &[u8], control: TcpControl) -> Vec<u8> {
        let c = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 1), 40000);
        let v = SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 10), 80);
        let mut spec = FrameSpec::tcp([2; 6], [4; 6], c, v, control).with_payload(payload);
        spec.ident = 0xfffe;
        spec.to_vec()[14..].to_vec()
    }

    /// Hand-checked small case: 5 payload bytes, mss 2 → 3 segments with literal headers.
    #[test]
    fn literal_segments() {
        let p = super_packet(
            b"abcde",
            TcpControl::ACK | TcpControl::PSH | TcpControl::FIN,
        );
        let s = TcpSegmenter::new(&p, 2).unwrap();
        assert_eq!(s.count(), 3);
        let mut buf = [0u8; 128];
        let mut data = Vec::new();
        for i in 0..3 {
            let len = s.emit(i, &mut buf).unwrap();
            let ip = Ipv4Packet::new_checked(&buf[..len]).unwrap();
            assert!(ip.verify_checksum());
            // ids 0xfffe, 0xffff, 0x0000: wrapping.
            assert_eq!(&buf[4..6], &[[0xff, 0xfe], [0xff, 0xff], [0, 0]][i]);
            let t = TcpPacket::new_checked(ip.payload()).unwrap();
            assert!(t.verify_checksum(ip.src_addr(), ip.dst_addr()));
            // seq 1, 3, 5 (big-endian literal).
            assert_eq!(&buf[24..28], &[0, 0, 0, 1 + 2 * i as u8]);
            // flags: ACK only, then ACK|PSH|FIN on the last.
            assert_eq!(buf[33], if i == 2 { 0x19 } else { 0x10 });
            data.extend_from_slice(t.payload());
        }
        assert_eq!(data, b"abcde");
        assert_eq!(s.emit(3, &mut buf), None);
    }

    #[test]
    fn big_payload_and_cwr() {
        let payload: Vec<u8> = (0..65000u32).map(|i| (i * 7) as u8).collect();
        let p = super_packet(&payload, TcpControl::ACK | TcpControl(0x80));
        let s = TcpSegmenter::new(&p, 1428).unwrap();
        assert_eq!(s.count(), 65000usize.div_ceil(1428));
        let mut buf = vec![0u8; 2000];
        let mut data = Vec::new();
        for i in 0..s.count() {
            let len = s.emit(i, &mut buf).unwrap();
            assert!(len <= 1480);
            assert_eq!(buf[33] & 0x80 != 0, i == 0, "CWR on the first only");
            data.extend_from_slice(&buf[40..len]);
        }
        assert_eq!(data, payload);
    }

    fn super_packet6(payload: &[u8], control: TcpControl) -> Vec<u8> {
        use crate::wire::build::FrameSpec6;
        use std::net::SocketAddrV6;
        let c = SocketAddrV6::new("2001:db8:c::10".parse().unwrap(), 40000, 0, 0);
        let v = SocketAddrV6::new("2001:db8:f::10".parse().unwrap(), 80, 0, 0);
        FrameSpec6::tcp([2; 6], [4; 6], c, v, control)
            .with_payload(payload)
            .to_vec()[14..]
            .to_vec()
    }

    /// IPv6, hand-checked: 5 payload bytes, mss 2 → 3 segments; payload length, sequence
    /// numbers, flags and checksums fixed, the rest of the headers copied.
    #[test]
    fn literal_segments_v6() {
        let mut p = super_packet6(
            b"abcde",
            TcpControl::ACK | TcpControl::PSH | TcpControl::FIN | TcpControl(0x80),
        );
        // A partial sum in the checksum field (NEEDS_CSUM) does not matter.
        p[56..58].copy_from_slice(&[0x12, 0x34]);
        let s = TcpSegmenter::new(&p, 2).unwrap();
        assert!(s.is_v6());
        assert_eq!((s.count(), s.header_len()), (3, 60));
        let mut buf = [0u8; 128];
        let mut data = Vec::new();
        for i in 0..3 {
            let len = s.emit(i, &mut buf).unwrap();
            assert_eq!(len, 60 + [2, 2, 1][i]);
            // Payload length 22, 22, 21 (big-endian literal); the rest of the fixed
            // header (version, next header, hop limit, addresses) as in the super-packet.
            assert_eq!(&buf[4..6], &[0, [22, 22, 21][i]]);
            assert_eq!(&buf[..4], &p[..4]);
            assert_eq!(&buf[6..40], &p[6..40]);
            // seq 1, 3, 5.
            assert_eq!(&buf[44..48], &[0, 0, 0, 1 + 2 * i as u8]);
            // flags: ACK|CWR, ACK, then ACK|PSH|FIN.
            assert_eq!(buf[53], [0x90, 0x10, 0x19][i]);
            assert!(checksum::verify_l4_v6(
                &buf[40..len],
                "2001:db8:c::10".parse().unwrap(),
                "2001:db8:f::10".parse().unwrap(),
                6
            ));
            data.extend_from_slice(&buf[60..len]);
        }
        assert_eq!(data, b"abcde");
        assert_eq!(s.emit(3, &mut buf), None);
    }

    #[test]
    fn big_payload_v6() {
        let payload: Vec<u8> = (0..65000u32).map(|i| (i * 11) as u8).collect();
        let p = super_packet6(&payload, TcpControl::ACK);
        let s = TcpSegmenter::new(&p, 1400).unwrap();
        assert_eq!(s.count(), 65000usize.div_ceil(1400));
        let mut buf = vec![0u8; 2000];
        let mut data = Vec::new();
        for i in 0..s.count() {
            let len = s.emit(i, &mut buf).unwrap();
            assert!(len <= 1460);
            let ip = Ipv6Packet::new_checked(&buf[..len]).unwrap();
            assert_eq!(usize::from(ip.payload_len()), len - 40);
            assert!(checksum::verify_l4_v6(
                ip.payload(),
                ip.src_addr(),
                ip.dst_addr(),
                6
            ));
            data.extend_from_slice(&buf[60..len]);
        }
        assert_eq!(data, payload);
    }

    #[test]
    fn bad_input_is_refused_v6() {
        let p = super_packet6(b"xyz", TcpControl::ACK);
        for n in 0..60 {
            assert!(TcpSegmenter::new(&p[..n], 100).is_err(), "{n}");
        }
        assert!(TcpSegmenter::new(&p, 0).is_err());
        // UDP, and an extension header (hop-by-hop, 0) in front of TCP.
        for nh in [17u8, 0, 44] {
            let mut q = p.clone();
            q[6] = nh;
            assert_eq!(TcpSegmenter::new(&q, 100).err(), Some(Error::Malformed));
        }
        // Payload length past the buffer.
        let mut q = p.clone();
        q[5] += 1;
        assert!(TcpSegmenter::new(&q, 100).is_err());
        let s = TcpSegmenter::new(&p, 100).unwrap();
        assert_eq!(s.emit(0, &mut [0u8; 62]), None);
    }

    #[test]
    fn bad_input_is_refused() {
        let p = super_packet(b"xyz", TcpControl::ACK);
        for n in 0..40 {
            assert!(TcpSegmenter::new(&p[..n], 100).is_err(), "{n}");
        }
        assert!(TcpSegmenter::new(&p, 0).is_err());
        let mut udp = p.clone();
        udp[9] = 17;
        assert!(TcpSegmenter::new(&udp, 100).is_err());
        let s = TcpSegmenter::new(&p, 100).unwrap();
        let mut small = [0u8; 30];
        assert_eq!(s.emit(0, &mut small), None);
    }
}
