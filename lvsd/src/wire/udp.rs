//! UDP headers (RFC 768).
//!
//! Invariants of a view made with [`UdpPacket::new_checked`] over the IP payload:
//! - the buffer holds the 8-byte header (else `Truncated`);
//! - the length field is ≥ 8 and ≤ the buffer (else `Malformed`); bytes after the UDP
//!   length (IP payload longer than the datagram) are ignored, as Linux trims them.
//!
//! A checksum field of 0 means "no checksum" (IPv4 only); a computed 0 is sent as 0xFFFF.

use std::net::Ipv4Addr;

use super::checksum;
use super::ipv4::IpProtocol;
use super::{Error, Result};

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;

/// Byte offset of the checksum field inside the UDP header.
pub const CHECKSUM_OFFSET: usize = 6;

mod field {
    use crate::wire::Field;

    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const LENGTH: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
}

/// A view of a UDP datagram (the IP payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wraps a buffer without any check.
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    /// Wraps an untrusted buffer, checking everything the getters rely on (module doc).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// The checks of [`UdpPacket::new_checked`].
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let l = usize::from(self.len());
        if l < HEADER_LEN || l > len {
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

    /// Source port.
    pub fn src_port(&self) -> u16 {
        self.u16_at(field::SRC_PORT)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        self.u16_at(field::DST_PORT)
    }

    /// Length field (header and payload).
    pub fn len(&self) -> u16 {
        self.u16_at(field::LENGTH)
    }

    /// Whether the datagram carries no payload.
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }

    /// Checksum field (0 = none).
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }

    /// Payload, up to the length field.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }

    /// Whether the checksum is absent (0) or correct over the pseudo-header and datagram.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let l = self.len();
        let ph = checksum::pseudo_header_v4(src, dst, IpProtocol::UDP.0, l);
        let d = checksum::data(&self.buffer.as_ref()[..usize::from(l)]);
        checksum::combine(&[ph, d]) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
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

    /// Sets the length field.
    pub fn set_len(&mut self, v: u16) {
        self.set_u16_at(field::LENGTH, v);
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        self.set_u16_at(field::CHECKSUM, v);
    }

    /// Mutable payload, up to the length field.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let l = usize::from(self.len());
        &mut self.buffer.as_mut()[HEADER_LEN..l]
    }

    /// Computes the checksum over the pseudo-header and the datagram (0 sent as 0xFFFF).
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let l = self.len();
        let ph = checksum::pseudo_header_v4(src, dst, IpProtocol::UDP.0, l);
        let d = checksum::data(&self.buffer.as_ref()[..usize::from(l)]);
        let c = checksum::udp_nonzero(!checksum::combine(&[ph, d]));
        self.set_checksum(c);
    }
}

/// The UDP header fields this core builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
}

impl UdpRepr {
    /// Reads a checked datagram.
    pub fn parse<T: AsRef<[u8]>>(p: &UdpPacket<T>) -> Result<Self> {
        p.check_len()?;
        Ok(UdpRepr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
        })
    }

    /// Header length.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header with length `HEADER_LEN + payload_len` and checksum 0.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut UdpPacket<T>, payload_len: usize) {
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_len(u16::try_from(HEADER_LEN + payload_len).unwrap_or(u16::MAX));
        p.set_checksum(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);

    // 5353 -> 53, 12 bytes, payload "ping", checksum 0xa5a7 over SRC -> DST.
    static DATAGRAM: [u8; 12] = [
        0x14, 0xe9, 0x00, 0x35, 0x00, 0x0c, 0xa5, 0xa7, b'p', b'i', b'n', b'g',
    ];

    #[test]
    fn deconstruct() {
        let p = UdpPacket::new_checked(&DATAGRAM[..]).unwrap();
        assert_eq!(p.src_port(), 5353);
        assert_eq!(p.dst_port(), 53);
        assert_eq!(p.len(), 12);
        assert_eq!(p.payload(), b"ping");
        assert!(p.verify_checksum(SRC, DST));
    }

    #[test]
    fn construct() {
        let mut b = [0u8; 12];
        let mut p = UdpPacket::new_unchecked(&mut b[..]);
        UdpRepr {
            src_port: 5353,
            dst_port: 53,
        }
        .emit(&mut p, 4);
        p.payload_mut().copy_from_slice(b"ping");
        p.fill_checksum(SRC, DST);
        assert_eq!(b, DATAGRAM);
    }

    #[test]
    fn impossible_lengths() {
        for n in 0..8 {
            assert_eq!(
                UdpPacket::new_checked(&DATAGRAM[..n]).err(),
                Some(Error::Truncated)
            );
        }
        // Length field 12 > 11 available.
        assert_eq!(
            UdpPacket::new_checked(&DATAGRAM[..11]).err(),
            Some(Error::Malformed)
        );
        // Length field 7.
        let mut b = DATAGRAM;
        b[5] = 7;
        assert_eq!(UdpPacket::new_checked(&b[..]).err(), Some(Error::Malformed));
        // Length field shorter than the buffer: allowed, the rest is ignored.
        let mut b = DATAGRAM;
        b[5] = 8;
        let p = UdpPacket::new_checked(&b[..]).unwrap();
        assert!(p.is_empty() && p.payload().is_empty());
    }

    /// Checksum 0 means "none" and always verifies; a computed 0 goes out as 0xFFFF.
    #[test]
    fn zero_checksum() {
        let mut b = DATAGRAM;
        b[6] = 0;
        b[7] = 0;
        assert!(
            UdpPacket::new_checked(&b[..])
                .unwrap()
                .verify_checksum(SRC, DST)
        );
        // Choose a payload whose checksum computes to 0: the field must be 0xFFFF then.
        let mut b = DATAGRAM;
        let mut p = UdpPacket::new_unchecked(&mut b[..]);
        p.payload_mut().copy_from_slice(&[0, 0, 0, 0]);
        p.fill_checksum(SRC, DST);
        // Put the complement of the computed checksum into the payload: the new sum is
        // 0xFFFF, so the computed checksum is 0.
        let c = p.checksum();
        p.payload_mut()[..2].copy_from_slice(&c.to_be_bytes());
        p.fill_checksum(SRC, DST);
        assert_eq!(p.checksum(), 0xffff);
        assert!(p.verify_checksum(SRC, DST));
    }
}
