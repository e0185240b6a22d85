//! ICMPv4 (RFC 792): a view of the 8-byte header, the parser of the datagram an error
//! quotes ([`Quote`]), and the builders of the errors the forwarding core originates:
//! [`emit_frag_needed`] ("destination unreachable: fragmentation needed and DF set", type 3
//! code 4, with the next-hop MTU of RFC 1191) and [`emit_error`] (any error, for the
//! errors relayed to clients of tunnelled connections).
//!
//! Invariants:
//! - [`IcmpPacket::new_checked`] guarantees the 8-byte header; getters never panic after it.
//! - [`Quote::parse`] takes untrusted bytes: it accepts only a version-4 header with
//!   IHL ≥ 5 that is wholly present, followed by at least [`MIN_QUOTED_L4`] bytes (RFC 792's
//!   "64 bits of the original datagram"); the quoted total length is not checked against
//!   what is present (errors quote truncated datagrams).
//! - [`emit_error`] (and [`emit_frag_needed`]) quotes the original datagram's IP header and as much of the rest
//!   as keeps the whole error within 576 bytes (RFC 1812 4.3.2.3, as Linux's `icmp_send`),
//!   computes both checksums from scratch, never sets DF, and returns `None` instead of
//!   writing past `buf`.

use std::net::Ipv4Addr;

use super::checksum;
use super::ipv4::{self, IpProtocol, Ipv4Packet};
use super::{Error, Result};

/// Length of the ICMP header (type, code, checksum, 4 type-specific bytes).
pub const HEADER_LEN: usize = 8;
/// Type 0: echo reply.
pub const ECHO_REPLY: u8 = 0;
/// Type 3: destination unreachable.
pub const DEST_UNREACHABLE: u8 = 3;
/// Type 4: source quench (deprecated by RFC 6633, still relayed by IPVS).
pub const SOURCE_QUENCH: u8 = 4;
/// Type 8: echo request.
pub const ECHO_REQUEST: u8 = 8;
/// Type 11: time exceeded.
pub const TIME_EXCEEDED: u8 = 11;
/// Type 12: parameter problem.
pub const PARAMETER_PROBLEM: u8 = 12;
/// Code 3 of type 3: port unreachable.
pub const PORT_UNREACHABLE: u8 = 3;
/// Bytes of the quoted datagram's payload an error must carry for lvsd to act on it.
pub const MIN_QUOTED_L4: usize = 8;

/// The error types IPVS relays for a connection (`ip_vs_in_icmp`, `ip_vs_out_icmp`):
/// destination unreachable, source quench, time exceeded. Every other type (echo,
/// parameter problem, redirect, ...) is left to the kernel.
pub const fn is_relayed_error(msg_type: u8) -> bool {
    matches!(msg_type, DEST_UNREACHABLE | SOURCE_QUENCH | TIME_EXCEEDED)
}

/// The IPv4 datagram an ICMP error quotes: its header fields and the first 4 bytes of
/// its payload (the ports, for TCP and UDP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quote {
    /// Quoted protocol.
    pub protocol: IpProtocol,
    /// Quoted source address.
    pub src: Ipv4Addr,
    /// Quoted destination address.
    pub dst: Ipv4Addr,
    /// Quoted header length (options included).
    pub header_len: usize,
    /// Quoted fragment offset (in 8-byte units); non-zero means no L4 header.
    pub frag_offset: u16,
    /// The quoted header's DF bit.
    pub dont_frag: bool,
    /// The quoted header's total length (usually more than was quoted).
    pub total_len: u16,
    /// First two bytes of the quoted payload (TCP/UDP source port).
    pub src_port: u16,
    /// Next two bytes (TCP/UDP destination port).
    pub dst_port: u16,
}

impl Quote {
    /// Parses the quoted datagram at the start of an error's payload (module doc).
    pub fn parse(quoted: &[u8]) -> Result<Quote> {
        let Some(h) = quoted.get(..ipv4::MIN_HEADER_LEN) else {
            return Err(Error::Truncated);
        };
        if h[0] >> 4 != 4 {
            return Err(Error::Malformed);
        }
        let header_len = usize::from(h[0] & 0x0f) * 4;
        if header_len < ipv4::MIN_HEADER_LEN {
            return Err(Error::Malformed);
        }
        let Some(l4) = quoted.get(header_len..header_len + MIN_QUOTED_L4) else {
            return Err(Error::Truncated);
        };
        let addr = |at: usize| Ipv4Addr::new(h[at], h[at + 1], h[at + 2], h[at + 3]);
        Ok(Quote {
            protocol: IpProtocol(h[9]),
            src: addr(12),
            dst: addr(16),
            header_len,
            frag_offset: u16::from_be_bytes([h[6], h[7]]) & 0x1fff,
            dont_frag: h[6] & 0x40 != 0,
            total_len: u16::from_be_bytes([h[2], h[3]]),
            src_port: u16::from_be_bytes([l4[0], l4[1]]),
            dst_port: u16::from_be_bytes([l4[2], l4[3]]),
        })
    }
}
/// Code 4 of type 3: fragmentation needed and DF set.
pub const FRAG_NEEDED: u8 = 4;
/// The largest ICMP error datagram (IP header included) this builder makes.
pub const MAX_ERROR_LEN: usize = 576;
/// TTL of the errors the core sends (Linux's default `ip_default_ttl`).
pub const ERROR_TTL: u8 = 64;

/// A view of an ICMP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    /// Wraps a buffer that holds at least the 8-byte header.
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(IcmpPacket { buffer })
    }

    /// Message type.
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[0]
    }

    /// Code.
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[1]
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[2], b[3]])
    }

    /// Next-hop MTU of a "fragmentation needed" message (bytes 6..8).
    pub fn next_hop_mtu(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[6], b[7]])
    }

    /// The 4 type-specific bytes (bytes 4..8: unused, pointer, gateway, or MTU).
    pub fn rest(&self) -> [u8; 4] {
        let b = self.buffer.as_ref();
        [b[4], b[5], b[6], b[7]]
    }

    /// What follows the header (for errors: the quoted datagram).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    /// Whether the checksum over the whole buffer is right.
    pub fn verify_checksum(&self) -> bool {
        checksum::data(self.buffer.as_ref()) == 0xffff
    }
}

/// Writes an IPv4 packet `src -> dst` holding ICMP "fragmentation needed" with next-hop
/// MTU `mtu`, quoting `original` (the offending IPv4 packet from its header on), into
/// `buf`. Returns the IP packet's length.
pub fn emit_frag_needed(
    buf: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ident: u16,
    mtu: u16,
    original: &[u8],
) -> Option<usize> {
    let [hi, lo] = mtu.to_be_bytes();
    emit_error(
        buf,
        (src, dst, ident),
        (DEST_UNREACHABLE, FRAG_NEEDED, [0, 0, hi, lo]),
        original,
    )
}

/// Writes an IPv4 packet `src -> dst` (identification `ident`) holding the ICMP error
/// `(type, code, the 4 type-specific bytes)`, quoting `original` (module doc), into `buf`.
/// Returns the IP packet's length.
pub fn emit_error(
    buf: &mut [u8],
    (src, dst, ident): (Ipv4Addr, Ipv4Addr, u16),
    (msg_type, code, rest): (u8, u8, [u8; 4]),
    original: &[u8],
) -> Option<usize> {
    let room = MAX_ERROR_LEN - ipv4::MIN_HEADER_LEN - HEADER_LEN;
    let quote = original.get(..original.len().min(room))?;
    let icmp_len = HEADER_LEN + quote.len();
    let len = ipv4::MIN_HEADER_LEN + icmp_len;
    let out = buf.get_mut(..len)?;
    {
        let mut ip = Ipv4Packet::new_unchecked(&mut *out);
        ip.set_version_and_header_len(ipv4::MIN_HEADER_LEN);
        ip.set_dscp_ecn(0xc0); // Linux sends ICMP errors with IPTOS_PREC_INTERNETCONTROL.
        ip.set_total_len(u16::try_from(len).ok()?);
        ip.set_ident(ident);
        ip.set_flags_and_offset(false, false, 0);
        ip.set_ttl(ERROR_TTL);
        ip.set_protocol(IpProtocol::ICMP);
        ip.set_src_addr(src);
        ip.set_dst_addr(dst);
        ip.fill_checksum();
    }
    let icmp = out.get_mut(ipv4::MIN_HEADER_LEN..)?;
    icmp[0] = msg_type;
    icmp[1] = code;
    icmp[2..4].fill(0);
    icmp[4..8].copy_from_slice(&rest);
    icmp[HEADER_LEN..].copy_from_slice(quote);
    let c = !checksum::data(icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    Some(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 28-byte original: 198.51.100.1:40000 -> 203.0.113.10:80 (first 8 TCP bytes).
    const ORIGINAL: [u8; 28] = [
        0x45, 0x00, 0x05, 0xdc, 0x00, 0x07, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00, 198, 51, 100, 1,
        203, 0, 113, 10, 0x9c, 0x40, 0x00, 0x50, 0x00, 0x00, 0x00, 0x01,
    ];

    #[test]
    fn frag_needed_bytes() {
        let mut buf = [0u8; 128];
        let len = emit_frag_needed(
            &mut buf,
            Ipv4Addr::new(203, 0, 113, 10),
            Ipv4Addr::new(198, 51, 100, 1),
            0x0102,
            1480,
            &ORIGINAL,
        )
        .unwrap();
        assert_eq!(len, 20 + 8 + 28);
        // IP header: checksum 0x12c4 computed by hand (RFC 1071).
        let ip: [u8; 20] = [
            0x45, 0xc0, 0x00, 0x38, 0x01, 0x02, 0x00, 0x00, 0x40, 0x01, 0x12, 0xc4, 203, 0, 113,
            10, 198, 51, 100, 1,
        ];
        assert_eq!(&buf[..20], &ip[..]);
        // ICMP: type 3 code 4, checksum, unused, MTU 1480 (0x05c8); the checksum 0x2978 was
        // computed by hand over the header and the quote.
        assert_eq!(&buf[20..28], &[3, 4, 0x29, 0x78, 0, 0, 0x05, 0xc8]);
        assert_eq!(&buf[28..len], &ORIGINAL[..]);
        let icmp = IcmpPacket::new_checked(&buf[20..len]).unwrap();
        assert!(icmp.verify_checksum());
        assert_eq!(
            (icmp.msg_type(), icmp.code(), icmp.next_hop_mtu()),
            (3, 4, 1480)
        );
        assert!(
            Ipv4Packet::new_checked(&buf[..len])
                .unwrap()
                .verify_checksum()
        );
    }

    #[test]
    fn quote_parse() {
        let q = Quote::parse(&ORIGINAL).unwrap();
        assert_eq!(
            q,
            Quote {
                protocol: IpProtocol::TCP,
                src: Ipv4Addr::new(198, 51, 100, 1),
                dst: Ipv4Addr::new(203, 0, 113, 10),
                header_len: 20,
                frag_offset: 0,
                dont_frag: true,
                total_len: 1500,
                src_port: 40000,
                dst_port: 80,
            }
        );
        // Every truncation: Truncated (less than the header, or less than 8 bytes after it).
        for n in 0..ORIGINAL.len() {
            assert_eq!(Quote::parse(&ORIGINAL[..n]), Err(Error::Truncated), "{n}");
        }
        // IHL 6 needs 24 + 8 bytes.
        let mut opt = ORIGINAL;
        opt[0] = 0x46;
        assert_eq!(Quote::parse(&opt), Err(Error::Truncated));
        let mut long = ORIGINAL.to_vec();
        long.extend([0; 4]);
        long[0] = 0x46;
        assert_eq!(Quote::parse(&long).unwrap().header_len, 24);
        // IHL 15 (60 bytes) with 28 present: truncated, never a panic.
        let mut big = ORIGINAL;
        big[0] = 0x4f;
        assert_eq!(Quote::parse(&big), Err(Error::Truncated));
        // IHL < 5, version 6: malformed.
        let mut small = ORIGINAL;
        small[0] = 0x44;
        assert_eq!(Quote::parse(&small), Err(Error::Malformed));
        let mut v6 = ORIGINAL;
        v6[0] = 0x65;
        assert_eq!(Quote::parse(&v6), Err(Error::Malformed));
        // The fragment offset is reported (MF/DF masked off).
        let mut frag = ORIGINAL;
        frag[6] = 0x60;
        frag[7] = 0x03;
        assert_eq!(Quote::parse(&frag).unwrap().frag_offset, 3);
        assert!(is_relayed_error(3) && is_relayed_error(4) && is_relayed_error(11));
        assert!(!is_relayed_error(0) && !is_relayed_error(8) && !is_relayed_error(12));
    }

    #[test]
    fn quote_is_capped_at_576_bytes() {
        let original = vec![0x45u8; 1500];
        let mut buf = [0u8; 2000];
        let len = emit_frag_needed(
            &mut buf,
            Ipv4Addr::LOCALHOST,
            Ipv4Addr::LOCALHOST,
            0,
            1480,
            &original,
        )
        .unwrap();
        assert_eq!(len, MAX_ERROR_LEN);
        // Too short a buffer: refused, nothing panics.
        for n in 0..56 {
            assert_eq!(
                emit_frag_needed(
                    &mut buf[..n],
                    Ipv4Addr::LOCALHOST,
                    Ipv4Addr::LOCALHOST,
                    0,
                    1,
                    &ORIGINAL
                ),
                None
            );
        }
        assert!(IcmpPacket::new_checked(&buf[..7]).is_err());
    }
}
