//! ARP for Ethernet/IPv4 (RFC 826), the only hardware/protocol pair this core speaks.
//!
//! Invariant: a view made with [`ArpPacket::new_checked`] is at least [`PACKET_LEN`] bytes
//! long; [`ArpRepr::parse`] additionally rejects any other hardware or protocol type.

use std::net::Ipv4Addr;

use super::ethernet::{self, EtherType, EthernetFrame, EthernetRepr, MacAddr};
use super::{Error, Result};

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;

mod field {
    use crate::wire::Field;

    pub const HTYPE: Field = 0..2;
    pub const PTYPE: Field = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Field = 6..8;
    pub const SHA: Field = 8..14;
    pub const SPA: Field = 14..18;
    pub const THA: Field = 18..24;
    pub const TPA: Field = 24..28;
}

const HTYPE_ETHERNET: u16 = 1;

/// ARP operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArpOperation {
    /// who-has (1).
    Request,
    /// is-at (2).
    Reply,
    /// Anything else.
    Unknown(u16),
}

impl From<u16> for ArpOperation {
    fn from(v: u16) -> Self {
        match v {
            1 => ArpOperation::Request,
            2 => ArpOperation::Reply,
            v => ArpOperation::Unknown(v),
        }
    }
}

impl From<ArpOperation> for u16 {
    fn from(op: ArpOperation) -> u16 {
        match op {
            ArpOperation::Request => 1,
            ArpOperation::Reply => 2,
            ArpOperation::Unknown(v) => v,
        }
    }
}

/// A view of an ARP packet (the Ethernet payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wraps a buffer without checking its length.
    pub const fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }

    /// Wraps an untrusted buffer, checking that it holds a whole Ethernet/IPv4 packet.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// `Err(Truncated)` if the buffer is shorter than [`PACKET_LEN`].
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < PACKET_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    fn u16_at(&self, f: super::Field) -> u16 {
        let b = &self.buffer.as_ref()[f];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Hardware type (1 = Ethernet).
    pub fn hardware_type(&self) -> u16 {
        self.u16_at(field::HTYPE)
    }

    /// Protocol type (0x0800 = IPv4).
    pub fn protocol_type(&self) -> u16 {
        self.u16_at(field::PTYPE)
    }

    /// Hardware address length.
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// Protocol address length.
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// Operation.
    pub fn operation(&self) -> ArpOperation {
        self.u16_at(field::OPER).into()
    }

    /// Sender hardware address.
    pub fn sender_hardware_addr(&self) -> MacAddr {
        let mut m = [0; 6];
        m.copy_from_slice(&self.buffer.as_ref()[field::SHA]);
        m
    }

    /// Sender protocol address.
    pub fn sender_protocol_addr(&self) -> Ipv4Addr {
        ip(&self.buffer.as_ref()[field::SPA])
    }

    /// Target hardware address.
    pub fn target_hardware_addr(&self) -> MacAddr {
        let mut m = [0; 6];
        m.copy_from_slice(&self.buffer.as_ref()[field::THA]);
        m
    }

    /// Target protocol address.
    pub fn target_protocol_addr(&self) -> Ipv4Addr {
        ip(&self.buffer.as_ref()[field::TPA])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Sets hardware type, protocol type and both address lengths for Ethernet/IPv4.
    pub fn set_ethernet_ipv4(&mut self) {
        let b = self.buffer.as_mut();
        b[field::HTYPE].copy_from_slice(&HTYPE_ETHERNET.to_be_bytes());
        b[field::PTYPE].copy_from_slice(&EtherType::IPV4.0.to_be_bytes());
        b[field::HLEN] = 6;
        b[field::PLEN] = 4;
    }

    /// Sets the operation.
    pub fn set_operation(&mut self, op: ArpOperation) {
        self.buffer.as_mut()[field::OPER].copy_from_slice(&u16::from(op).to_be_bytes());
    }

    /// Sets the sender hardware address.
    pub fn set_sender_hardware_addr(&mut self, m: MacAddr) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(&m);
    }

    /// Sets the sender protocol address.
    pub fn set_sender_protocol_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::SPA].copy_from_slice(&a.octets());
    }

    /// Sets the target hardware address.
    pub fn set_target_hardware_addr(&mut self, m: MacAddr) {
        self.buffer.as_mut()[field::THA].copy_from_slice(&m);
    }

    /// Sets the target protocol address.
    pub fn set_target_protocol_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::TPA].copy_from_slice(&a.octets());
    }
}

fn ip(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

/// A parsed Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRepr {
    /// Operation.
    pub operation: ArpOperation,
    /// Sender MAC.
    pub source_hardware_addr: MacAddr,
    /// Sender IPv4 address.
    pub source_protocol_addr: Ipv4Addr,
    /// Target MAC (zero in a request).
    pub target_hardware_addr: MacAddr,
    /// Target IPv4 address.
    pub target_protocol_addr: Ipv4Addr,
}

impl ArpRepr {
    /// Reads a packet; `Err(Malformed)` unless it is Ethernet/IPv4.
    pub fn parse<T: AsRef<[u8]>>(p: &ArpPacket<T>) -> Result<Self> {
        p.check_len()?;
        if p.hardware_type() != HTYPE_ETHERNET
            || p.protocol_type() != EtherType::IPV4.0
            || p.hardware_len() != 6
            || p.protocol_len() != 4
        {
            return Err(Error::Malformed);
        }
        Ok(ArpRepr {
            operation: p.operation(),
            source_hardware_addr: p.sender_hardware_addr(),
            source_protocol_addr: p.sender_protocol_addr(),
            target_hardware_addr: p.target_hardware_addr(),
            target_protocol_addr: p.target_protocol_addr(),
        })
    }

    /// Length on the wire.
    pub const fn buffer_len(&self) -> usize {
        PACKET_LEN
    }

    /// Writes the packet (which must hold at least [`PACKET_LEN`] bytes).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut ArpPacket<T>) {
        p.set_ethernet_ipv4();
        p.set_operation(self.operation);
        p.set_sender_hardware_addr(self.source_hardware_addr);
        p.set_sender_protocol_addr(self.source_protocol_addr);
        p.set_target_hardware_addr(self.target_hardware_addr);
        p.set_target_protocol_addr(self.target_protocol_addr);
    }
}

/// Length of the whole Ethernet frame that [`emit_request`] writes.
pub const REQUEST_FRAME_LEN: usize = ethernet::HEADER_LEN + PACKET_LEN;

/// Writes a broadcast "who-has `target` tell `source`" frame into `buf` and returns its
/// length, or `None` if `buf` is shorter than [`REQUEST_FRAME_LEN`].
///
/// The frame is not padded to the 60-byte Ethernet minimum (the kernel pads on transmit),
/// just as Linux's own ARP requests leave the stack at 42 bytes.
pub fn emit_request(
    buf: &mut [u8],
    source_mac: MacAddr,
    source: Ipv4Addr,
    target: Ipv4Addr,
) -> Option<usize> {
    let buf = buf.get_mut(..REQUEST_FRAME_LEN)?;
    let mut frame = EthernetFrame::new_unchecked(&mut *buf);
    EthernetRepr {
        src_addr: source_mac,
        dst_addr: ethernet::BROADCAST,
        ethertype: EtherType::ARP,
    }
    .emit(&mut frame);
    let mut arp = ArpPacket::new_unchecked(frame.payload_mut());
    ArpRepr {
        operation: ArpOperation::Request,
        source_hardware_addr: source_mac,
        source_protocol_addr: source,
        target_hardware_addr: [0; 6],
        target_protocol_addr: target,
    }
    .emit(&mut arp);
    Some(REQUEST_FRAME_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    // who-has 192.0.2.11 tell 192.0.2.1, from 02:00:00:00:00:01 (ARP payload only).
    static REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, // eth/ipv4, request
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 192, 0, 2, 1, // sender
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 192, 0, 2, 11, // target
    ];

    #[test]
    fn deconstruct() {
        let p = ArpPacket::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(p.hardware_type(), 1);
        assert_eq!(p.protocol_type(), 0x0800);
        assert_eq!(p.operation(), ArpOperation::Request);
        assert_eq!(p.sender_hardware_addr(), [2, 0, 0, 0, 0, 1]);
        assert_eq!(p.sender_protocol_addr(), Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(p.target_protocol_addr(), Ipv4Addr::new(192, 0, 2, 11));
    }

    #[test]
    fn construct_and_parse() {
        let repr = ArpRepr::parse(&ArpPacket::new_checked(&REQUEST[..]).unwrap()).unwrap();
        let mut buf = [0u8; 28];
        repr.emit(&mut ArpPacket::new_unchecked(&mut buf[..]));
        assert_eq!(buf, REQUEST);
    }

    #[test]
    fn impossible_length() {
        for n in 0..PACKET_LEN {
            assert_eq!(
                ArpPacket::new_checked(&REQUEST[..n]).err(),
                Some(Error::Truncated)
            );
        }
    }

    /// ARP over something other than Ethernet/IPv4 is not ours to read.
    #[test]
    fn other_hardware_is_malformed() {
        let mut b = REQUEST;
        b[1] = 6; // IEEE 802
        assert_eq!(
            ArpRepr::parse(&ArpPacket::new_unchecked(&b[..])),
            Err(Error::Malformed)
        );
        let mut b = REQUEST;
        b[5] = 16; // IPv6-length protocol addresses
        assert_eq!(
            ArpRepr::parse(&ArpPacket::new_unchecked(&b[..])),
            Err(Error::Malformed)
        );
    }

    #[test]
    fn request_frame_bytes() {
        let mut buf = [0u8; 64];
        let n = emit_request(
            &mut buf,
            [2, 0, 0, 0, 0, 1],
            Ipv4Addr::new(192, 0, 2, 1),
            Ipv4Addr::new(192, 0, 2, 11),
        )
        .unwrap();
        assert_eq!(n, 42);
        assert_eq!(&buf[..6], &[0xff; 6]);
        assert_eq!(&buf[6..12], &[2, 0, 0, 0, 0, 1]);
        assert_eq!(&buf[12..14], &[0x08, 0x06]);
        assert_eq!(&buf[14..42], &REQUEST);
        assert_eq!(
            emit_request(
                &mut buf[..41],
                [0; 6],
                Ipv4Addr::UNSPECIFIED,
                Ipv4Addr::UNSPECIFIED
            ),
            None
        );
    }
}
