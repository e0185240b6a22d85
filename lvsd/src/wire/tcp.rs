//! TCP headers (RFC 9293): ports, flags and the checksum; options are skipped.
//!
//! Invariants of a view made with [`TcpPacket::new_checked`] over the IP payload:
//! - the buffer holds the 20-byte fixed header (else `Truncated`);
//! - the data offset is ≥ 5 and the header it announces fits in the buffer
//!   (else `Malformed`), so [`TcpPacket::payload`] never panics.

use std::net::Ipv4Addr;

use super::checksum;
use super::ipv4::IpProtocol;
use super::{Error, Result};

/// Length of a TCP header without options.
pub const MIN_HEADER_LEN: usize = 20;

/// Byte offset of the checksum field inside the TCP header.
pub const CHECKSUM_OFFSET: usize = 16;

mod field {
    use crate::wire::Field;

    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const SEQ_NUM: Field = 4..8;
    pub const ACK_NUM: Field = 8..12;
    pub const FLAGS: Field = 12..14;
    pub const WIN_SIZE: Field = 14..16;
    pub const CHECKSUM: Field = 16..18;
    pub const URGENT: Field = 18..20;
}

/// The TCP control bits (the low 9 bits of the data-offset/flags word).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpControl(pub u16);

impl TcpControl {
    /// FIN.
    pub const FIN: TcpControl = TcpControl(0x001);
    /// SYN.
    pub const SYN: TcpControl = TcpControl(0x002);
    /// RST.
    pub const RST: TcpControl = TcpControl(0x004);
    /// PSH.
    pub const PSH: TcpControl = TcpControl(0x008);
    /// ACK.
    pub const ACK: TcpControl = TcpControl(0x010);
    /// URG.
    pub const URG: TcpControl = TcpControl(0x020);
    /// Bits that exist in the header.
    const MASK: u16 = 0x01ff;

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: TcpControl) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for TcpControl {
    type Output = TcpControl;
    fn bitor(self, rhs: TcpControl) -> TcpControl {
        TcpControl(self.0 | rhs.0)
    }
}

/// A view of a TCP segment (the IP payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wraps a buffer without any check.
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    /// Wraps an untrusted buffer, checking everything the getters rely on (module doc).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// The checks of [`TcpPacket::new_checked`].
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        let hl = self.header_len();
        if hl < MIN_HEADER_LEN || hl > len {
            return Err(Error::Malformed);
        }
        Ok(())
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn u16_at(&self, f: super::Field) -> u16 {
        let b = &self.buffer.as_ref()[f];
        u16::from_be_bytes([b[0], b[1]])
    }

    fn u32_at(&self, f: super::Field) -> u32 {
        let b = &self.buffer.as_ref()[f];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        self.u16_at(field::SRC_PORT)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        self.u16_at(field::DST_PORT)
    }

    /// Sequence number.
    pub fn seq_number(&self) -> u32 {
        self.u32_at(field::SEQ_NUM)
    }

    /// Acknowledgement number.
    pub fn ack_number(&self) -> u32 {
        self.u32_at(field::ACK_NUM)
    }

    /// Header length in bytes (data offset × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::FLAGS.start] >> 4) * 4
    }

    /// The control bits.
    pub fn control(&self) -> TcpControl {
        TcpControl(self.u16_at(field::FLAGS) & TcpControl::MASK)
    }

    /// SYN set.
    pub fn syn(&self) -> bool {
        self.control().contains(TcpControl::SYN)
    }

    /// ACK set.
    pub fn ack(&self) -> bool {
        self.control().contains(TcpControl::ACK)
    }

    /// FIN set.
    pub fn fin(&self) -> bool {
        self.control().contains(TcpControl::FIN)
    }

    /// RST set.
    pub fn rst(&self) -> bool {
        self.control().contains(TcpControl::RST)
    }

    /// Window.
    pub fn window_len(&self) -> u16 {
        self.u16_at(field::WIN_SIZE)
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }

    /// Urgent pointer.
    pub fn urgent_at(&self) -> u16 {
        self.u16_at(field::URGENT)
    }

    /// Payload after the header and its options.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    /// Whether the checksum over the pseudo-header and the whole buffer is correct.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let b = self.buffer.as_ref();
        let Ok(len) = u16::try_from(b.len()) else {
            return false;
        };
        let ph = checksum::pseudo_header_v4(src, dst, IpProtocol::TCP.0, len);
        checksum::combine(&[ph, checksum::data(b)]) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    fn set_u16_at(&mut self, f: super::Field, v: u16) {
        self.buffer.as_mut()[f].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the source port (checksum untouched).
    pub fn set_src_port(&mut self, v: u16) {
        self.set_u16_at(field::SRC_PORT, v);
    }

    /// Sets the destination port (checksum untouched).
    pub fn set_dst_port(&mut self, v: u16) {
        self.set_u16_at(field::DST_PORT, v);
    }

    /// Sets the sequence number.
    pub fn set_seq_number(&mut self, v: u32) {
        self.buffer.as_mut()[field::SEQ_NUM].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the acknowledgement number.
    pub fn set_ack_number(&mut self, v: u32) {
        self.buffer.as_mut()[field::ACK_NUM].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets data offset (header length in bytes, a multiple of 4) and control bits.
    pub fn set_header_len_and_control(&mut self, header_len: usize, control: TcpControl) {
        let doff = ((header_len / 4) & 0x0f) as u16;
        self.set_u16_at(field::FLAGS, (doff << 12) | (control.0 & TcpControl::MASK));
    }

    /// Sets the window.
    pub fn set_window_len(&mut self, v: u16) {
        self.set_u16_at(field::WIN_SIZE, v);
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        self.set_u16_at(field::CHECKSUM, v);
    }

    /// Sets the urgent pointer.
    pub fn set_urgent_at(&mut self, v: u16) {
        self.set_u16_at(field::URGENT, v);
    }

    /// Mutable payload.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[hl..]
    }

    /// Computes the checksum over the pseudo-header and the whole buffer.
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let b = self.buffer.as_ref();
        let len = u16::try_from(b.len()).unwrap_or(u16::MAX);
        let ph = checksum::pseudo_header_v4(src, dst, IpProtocol::TCP.0, len);
        let c = !checksum::combine(&[ph, checksum::data(b)]);
        self.set_checksum(c);
    }
}

/// The TCP header fields this core builds (no options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq_number: u32,
    /// Acknowledgement number (meaningful with ACK).
    pub ack_number: u32,
    /// Control bits.
    pub control: TcpControl,
    /// Window.
    pub window_len: u16,
}

impl TcpRepr {
    /// Reads a checked segment (options ignored).
    pub fn parse<T: AsRef<[u8]>>(p: &TcpPacket<T>) -> Result<Self> {
        p.check_len()?;
        Ok(TcpRepr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            seq_number: p.seq_number(),
            ack_number: p.ack_number(),
            control: p.control(),
            window_len: p.window_len(),
        })
    }

    /// Header length of what [`TcpRepr::emit`] writes.
    pub const fn header_len(&self) -> usize {
        MIN_HEADER_LEN
    }

    /// Writes the header; the checksum is left 0 (fill it once the payload is in place).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut TcpPacket<T>) {
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_seq_number(self.seq_number);
        p.set_ack_number(self.ack_number);
        p.set_header_len_and_control(MIN_HEADER_LEN, self.control);
        p.set_window_len(self.window_len);
        p.set_checksum(0);
        p.set_urgent_at(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);

    // SYN 40000 -> 80, seq 1, window 64240, MSS 1460 option, checksum 0x9a64
    // over the pseudo-header SRC -> DST.
    static SEGMENT: [u8; 24] = [
        0x9c, 0x40, 0x00, 0x50, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, //
        0x60, 0x02, 0xfa, 0xf0, 0x9a, 0x64, 0x00, 0x00, //
        0x02, 0x04, 0x05, 0xb4,
    ];

    #[test]
    fn deconstruct() {
        let p = TcpPacket::new_checked(&SEGMENT[..]).unwrap();
        assert_eq!(p.src_port(), 40000);
        assert_eq!(p.dst_port(), 80);
        assert_eq!(p.seq_number(), 1);
        assert_eq!(p.header_len(), 24);
        assert!(p.syn() && !p.ack() && !p.fin() && !p.rst());
        assert_eq!(p.window_len(), 64240);
        assert!(p.payload().is_empty());
        assert!(p.verify_checksum(SRC, DST));
        assert!(!p.verify_checksum(SRC, Ipv4Addr::new(203, 0, 113, 11)));
    }

    #[test]
    fn construct() {
        let mut b = [0u8; 24];
        let repr = TcpRepr::parse(&TcpPacket::new_checked(&SEGMENT[..]).unwrap()).unwrap();
        let mut p = TcpPacket::new_unchecked(&mut b[..]);
        repr.emit(&mut p);
        p.set_header_len_and_control(24, repr.control);
        b[20..].copy_from_slice(&[0x02, 0x04, 0x05, 0xb4]); // MSS option
        let mut p = TcpPacket::new_unchecked(&mut b[..]);
        p.fill_checksum(SRC, DST);
        assert_eq!(b, SEGMENT);
    }

    #[test]
    fn impossible_lengths() {
        for n in 0..20 {
            assert_eq!(
                TcpPacket::new_checked(&SEGMENT[..n]).err(),
                Some(Error::Truncated)
            );
        }
        // Data offset 6 (24 bytes) but only 20 present.
        assert_eq!(
            TcpPacket::new_checked(&SEGMENT[..20]).err(),
            Some(Error::Malformed)
        );
        // Data offset 4.
        let mut b = SEGMENT;
        b[12] = 0x40;
        assert_eq!(TcpPacket::new_checked(&b[..]).err(), Some(Error::Malformed));
    }

    #[test]
    fn control_bits() {
        let mut b = SEGMENT;
        TcpPacket::new_unchecked(&mut b[..])
            .set_header_len_and_control(24, TcpControl::SYN | TcpControl::ACK);
        let p = TcpPacket::new_unchecked(&b[..]);
        assert!(p.syn() && p.ack() && !p.rst() && !p.fin());
        assert_eq!(p.header_len(), 24);
    }
}
