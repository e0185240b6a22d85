//! Software segmentation of a TCP/IPv4 GSO super-packet (what the kernel's
//! `tcp_gso_segment` does), for paths where the device cannot do it: an IPIP-encapsulated
//! packet has no virtio GSO type, so the director cuts the inner packet into MTU-sized
//! segments itself and encapsulates each.
//!
//! Invariants (each segment `i` of `n`):
//! - IP header (options included) and TCP header (options included) copied from the
//!   super-packet; total length fixed; identification = original + i (wrapping), as the
//!   kernel does for TCPv4 GSO without fixed ids; header checksum recomputed.
//! - Sequence number = original + i × mss; FIN and PSH only on the last segment, CWR only
//!   on the first; payload bytes `[i × mss, min((i+1) × mss, len))`.
//! - The TCP checksum is computed from scratch over the pseudo-header and the segment, so
//!   the super-packet's field may hold anything (a partial sum, `NEEDS_CSUM`).
//! - Untrusted input is checked in [`TcpSegmenter::new`]; `emit` returns `None` rather than
//!   write past its buffer; nothing panics or allocates.

use super::ipv4::{IpProtocol, Ipv4Packet};
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
}

impl<'a> TcpSegmenter<'a> {
    /// Checks `packet` (an IPv4/TCP packet, not a fragment, cut to its total length or
    /// longer) and `mss` (> 0).
    pub fn new(packet: &'a [u8], mss: usize) -> Result<Self> {
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

    /// Writes segment `index` (an IPv4 packet) into `buf`; returns its length.
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
