//! ICMPv6 (RFC 4443) and the Neighbor Discovery messages a director needs (RFC 4861:
//! Neighbor Solicitation and Advertisement, with link-layer address options).
//!
//! Invariants of a view made with [`Icmpv6Packet::new_checked`]: the buffer holds the
//! 8-byte header (type, code, checksum, four message-specific bytes). Message-specific
//! parsing ([`NdpRepr::parse`], [`Icmpv6Packet::invoking_packet`]) checks its own lengths
//! and never panics. The checksum covers the IPv6 pseudo-header ([`super::ipv6::pseudo_header`]),
//! so verifying and filling it take the packet's addresses.
//!
//! Builders ([`NdpRepr::emit`], [`emit_error`]) write into caller-owned buffers and return
//! the length written; nothing allocates.

use std::net::Ipv6Addr;

use super::checksum;
use super::ethernet::MacAddr;
use super::ipv6::{self, next_header};
use super::{Error, Result};

/// Length of the ICMPv6 header (type, code, checksum, 4 message bytes).
pub const HEADER_LEN: usize = 8;

/// ICMPv6 message types used by the director.
pub mod msg {
    /// Destination Unreachable (1).
    pub const DST_UNREACHABLE: u8 = 1;
    /// Packet Too Big (2).
    pub const PACKET_TOO_BIG: u8 = 2;
    /// Time Exceeded (3).
    pub const TIME_EXCEEDED: u8 = 3;
    /// Parameter Problem (4).
    pub const PARAM_PROBLEM: u8 = 4;
    /// Echo Request (128).
    pub const ECHO_REQUEST: u8 = 128;
    /// Echo Reply (129).
    pub const ECHO_REPLY: u8 = 129;
    /// Neighbor Solicitation (135).
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    /// Neighbor Advertisement (136).
    pub const NEIGHBOR_ADVERT: u8 = 136;
}

/// NDP option types (RFC 4861 §4.6).
const OPT_SOURCE_LLADDR: u8 = 1;
const OPT_TARGET_LLADDR: u8 = 2;

/// Neighbor Advertisement flags (RFC 4861 §4.4), in the first message byte.
const NA_ROUTER: u8 = 0x80;
const NA_SOLICITED: u8 = 0x40;
const NA_OVERRIDE: u8 = 0x20;

/// A view of an ICMPv6 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icmpv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    /// Wraps a buffer without any check.
    pub const fn new_unchecked(buffer: T) -> Self {
        Icmpv6Packet { buffer }
    }

    /// Wraps an untrusted buffer (the IPv6 payload from the ICMPv6 header to its end).
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Self::new_unchecked(buffer))
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

    /// The four message-specific header bytes (Packet Too Big: the MTU; Parameter Problem:
    /// the pointer; echo: identifier and sequence number).
    pub fn header_data(&self) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_be_bytes([b[4], b[5], b[6], b[7]])
    }

    /// Whether this is an error message (types below 128, RFC 4443 §2.1).
    pub fn is_error(&self) -> bool {
        self.msg_type() < 128
    }

    /// Everything after the 8-byte header.
    pub fn body(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    /// For an error message, the invoking packet it quotes (as much as was sent) as a
    /// checked IPv6 view. Its payload length usually exceeds what was quoted, so the view
    /// is made over the fixed header only when the quote is short: the caller reads the
    /// addresses and next header from it and the first transport bytes from
    /// [`Icmpv6Packet::body`]. `Truncated` when not even the fixed header is quoted.
    pub fn invoking_header(&self) -> Result<ipv6::Ipv6Repr> {
        let body = self.body();
        if !self.is_error() {
            return Err(Error::Malformed);
        }
        let fixed = body.get(..ipv6::HEADER_LEN).ok_or(Error::Truncated)?;
        let p = ipv6::Ipv6Packet::new_unchecked(fixed);
        if p.version() != 6 {
            return Err(Error::Malformed);
        }
        Ok(ipv6::Ipv6Repr {
            src_addr: p.src_addr(),
            dst_addr: p.dst_addr(),
            next_header: p.next_header(),
            payload_len: usize::from(p.payload_len()),
            hop_limit: p.hop_limit(),
        })
    }

    /// Whether the checksum is right for a message sent from `src` to `dst`.
    pub fn verify_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        let b = self.buffer.as_ref();
        let Ok(len) = u32::try_from(b.len()) else {
            return false;
        };
        checksum::combine(&[
            ipv6::pseudo_header(src, dst, next_header::ICMPV6, len),
            checksum::data(b),
        ]) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
    /// Sets the type, the code and the four message-specific bytes.
    pub fn set_header(&mut self, msg_type: u8, code: u8, data: u32) {
        let b = self.buffer.as_mut();
        b[0] = msg_type;
        b[1] = code;
        b[4..8].copy_from_slice(&data.to_be_bytes());
    }

    /// Computes and writes the checksum for a message from `src` to `dst`.
    pub fn fill_checksum(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        let b = self.buffer.as_mut();
        b[2..4].copy_from_slice(&[0, 0]);
        let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
        let sum = checksum::combine(&[
            ipv6::pseudo_header(src, dst, next_header::ICMPV6, len),
            checksum::data(b),
        ]);
        b[2..4].copy_from_slice(&(!sum).to_be_bytes());
    }
}

/// A Neighbor Solicitation or Advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NdpRepr {
    /// "Who has `target`?" (RFC 4861 §4.3).
    NeighborSolicit {
        /// The address asked about.
        target: Ipv6Addr,
        /// The sender's link-layer address (absent in duplicate address detection).
        source_lladdr: Option<MacAddr>,
    },
    /// "`target` is at …" (RFC 4861 §4.4).
    NeighborAdvert {
        /// Router flag.
        router: bool,
        /// Sent in answer to a solicitation.
        solicited: bool,
        /// Override an existing cache entry.
        override_: bool,
        /// The address announced.
        target: Ipv6Addr,
        /// Its link-layer address.
        target_lladdr: Option<MacAddr>,
    },
}

impl NdpRepr {
    /// Reads a solicitation or advertisement (RFC 4861 §7.1.1/§7.1.2 validity checks that
    /// do not need the IPv6 header: code 0, length ≥ 24, every option with a non-zero
    /// length inside the message). Other messages are `Malformed`.
    pub fn parse<T: AsRef<[u8]>>(p: &Icmpv6Packet<T>) -> Result<Self> {
        if p.code() != 0 {
            return Err(Error::Malformed);
        }
        let body = p.body();
        let target_bytes: [u8; 16] = body
            .get(..16)
            .and_then(|t| t.try_into().ok())
            .ok_or(Error::Truncated)?;
        let target = Ipv6Addr::from(target_bytes);
        let mut source = None;
        let mut target_ll = None;
        let mut opts = &body[16..];
        while !opts.is_empty() {
            let (&kind, rest) = opts.split_first().ok_or(Error::Truncated)?;
            let units = *rest.first().ok_or(Error::Truncated)?;
            if units == 0 {
                return Err(Error::Malformed);
            }
            let len = usize::from(units) * 8;
            let opt = opts.get(..len).ok_or(Error::Truncated)?;
            if len == 8 && (kind == OPT_SOURCE_LLADDR || kind == OPT_TARGET_LLADDR) {
                let mut mac = [0u8; 6];
                mac.copy_from_slice(&opt[2..8]);
                if kind == OPT_SOURCE_LLADDR {
                    source = Some(mac);
                } else {
                    target_ll = Some(mac);
                }
            }
            opts = &opts[len..];
        }
        match p.msg_type() {
            msg::NEIGHBOR_SOLICIT => Ok(NdpRepr::NeighborSolicit {
                target,
                source_lladdr: source,
            }),
            msg::NEIGHBOR_ADVERT => {
                let flags = (p.header_data() >> 24) as u8;
                Ok(NdpRepr::NeighborAdvert {
                    router: flags & NA_ROUTER != 0,
                    solicited: flags & NA_SOLICITED != 0,
                    override_: flags & NA_OVERRIDE != 0,
                    target,
                    target_lladdr: target_ll,
                })
            }
            _ => Err(Error::Malformed),
        }
    }

    /// Length of the ICMPv6 message [`NdpRepr::emit`] writes.
    pub fn len(&self) -> usize {
        let opt = match self {
            NdpRepr::NeighborSolicit { source_lladdr, .. } => source_lladdr.is_some(),
            NdpRepr::NeighborAdvert { target_lladdr, .. } => target_lladdr.is_some(),
        };
        HEADER_LEN + 16 + if opt { 8 } else { 0 }
    }

    /// Never empty (for clippy's `len_without_is_empty`).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the message with its checksum for the addresses it is sent with; `out` must
    /// hold [`NdpRepr::len`] bytes. Returns the length.
    pub fn emit(&self, src: Ipv6Addr, dst: Ipv6Addr, out: &mut [u8]) -> usize {
        let len = self.len();
        let b = &mut out[..len];
        let (ty, data, target, opt) = match *self {
            NdpRepr::NeighborSolicit {
                target,
                source_lladdr,
            } => (
                msg::NEIGHBOR_SOLICIT,
                0u32,
                target,
                source_lladdr.map(|m| (OPT_SOURCE_LLADDR, m)),
            ),
            NdpRepr::NeighborAdvert {
                router,
                solicited,
                override_,
                target,
                target_lladdr,
            } => {
                let mut f = 0u8;
                if router {
                    f |= NA_ROUTER;
                }
                if solicited {
                    f |= NA_SOLICITED;
                }
                if override_ {
                    f |= NA_OVERRIDE;
                }
                (
                    msg::NEIGHBOR_ADVERT,
                    u32::from(f) << 24,
                    target,
                    target_lladdr.map(|m| (OPT_TARGET_LLADDR, m)),
                )
            }
        };
        b[8..24].copy_from_slice(&target.octets());
        if let Some((kind, mac)) = opt {
            b[24] = kind;
            b[25] = 1;
            b[26..32].copy_from_slice(&mac);
        }
        let mut p = Icmpv6Packet::new_unchecked(b);
        p.set_header(ty, 0, data);
        p.fill_checksum(src, dst);
        len
    }
}

/// The solicited-node multicast address of `addr` (RFC 4291 §2.7.1): `ff02::1:ffXX:XXXX`
/// with the low 24 bits of `addr`. Neighbor Solicitations are sent there.
pub fn solicited_node(addr: Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15],
    ])
}

/// The Ethernet multicast address of an IPv6 multicast address (RFC 2464 §7):
/// `33:33` and the low 32 bits.
pub fn multicast_mac(addr: Ipv6Addr) -> MacAddr {
    let o = addr.octets();
    [0x33, 0x33, o[12], o[13], o[14], o[15]]
}

/// Builds an ICMPv6 error (`msg_type`, `code`, the 4 message bytes `data` — the MTU for
/// Packet Too Big) from `src` to `dst` quoting `invoking` (the offending IPv6 packet from
/// its fixed header), truncated so the whole IPv6 packet stays within the minimum MTU
/// (RFC 4443 §2.4 (c)). Writes the ICMPv6 message (not the IPv6 header) into `out` and
/// returns its length; `out` should hold `MIN_MTU - 40` bytes, and a shorter one quotes less.
pub fn emit_error(
    msg_type: u8,
    code: u8,
    data: u32,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    invoking: &[u8],
    out: &mut [u8],
) -> usize {
    let room = (ipv6::MIN_MTU - ipv6::HEADER_LEN).min(out.len());
    if room < HEADER_LEN {
        return 0;
    }
    let quote = invoking.len().min(room - HEADER_LEN);
    let len = HEADER_LEN + quote;
    out[HEADER_LEN..len].copy_from_slice(&invoking[..quote]);
    let mut p = Icmpv6Packet::new_unchecked(&mut out[..len]);
    p.set_header(msg_type, code, data);
    p.fill_checksum(src, dst);
    len
}

/// The all-nodes link-local multicast group (RFC 4291 §2.7.1), where unsolicited
/// Neighbor Advertisements go (RFC 4861 §7.2.6).
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// Length of the frame [`emit_unsolicited_na`] writes: Ethernet (14), IPv6 (40), the
/// advertisement with a target link-layer address option (32).
pub const UNSOLICITED_NA_FRAME_LEN: usize = 14 + ipv6::HEADER_LEN + HEADER_LEN + 16 + 8;

/// Writes an unsolicited Neighbor Advertisement frame (RFC 4861 §7.2.6; the IPv6 form of
/// a gratuitous ARP, RFC 9568 §6.4.2): from `src_mac` / `src` (a link-local address of
/// the sender) to ff02::1 (33:33:00:00:00:01), hop limit 255, Override set, Solicited
/// clear, Router as given, `target` at `src_mac` (target link-layer address option).
/// Returns the length, or `None` if `buf` is shorter than [`UNSOLICITED_NA_FRAME_LEN`].
pub fn emit_unsolicited_na(
    buf: &mut [u8],
    src_mac: MacAddr,
    src: Ipv6Addr,
    target: Ipv6Addr,
    router: bool,
) -> Option<usize> {
    let buf = buf.get_mut(..UNSOLICITED_NA_FRAME_LEN)?;
    buf[0..6].copy_from_slice(&multicast_mac(ALL_NODES));
    buf[6..12].copy_from_slice(&src_mac);
    buf[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
    let na = NdpRepr::NeighborAdvert {
        router,
        solicited: false,
        override_: true,
        target,
        target_lladdr: Some(src_mac),
    };
    let repr = ipv6::Ipv6Repr {
        src_addr: src,
        dst_addr: ALL_NODES,
        next_header: next_header::ICMPV6,
        payload_len: na.len(),
        hop_limit: 255,
    };
    let (ip, rest) = buf[14..].split_at_mut(ipv6::HEADER_LEN);
    repr.emit(&mut ipv6::Ipv6Packet::new_unchecked(ip));
    na.emit(src, ALL_NODES, rest);
    Some(UNSOLICITED_NA_FRAME_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsolicited_na_frame() {
        let mac = [2, 0, 0, 0, 0, 7];
        let src = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 7);
        let target = Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 0x10);
        assert_eq!(
            emit_unsolicited_na(&mut [0u8; 85], mac, src, target, true),
            None
        );
        let mut b = [0u8; 100];
        let n = emit_unsolicited_na(&mut b, mac, src, target, true).unwrap();
        assert_eq!(n, 86);
        assert_eq!(
            &b[0..14],
            &[0x33, 0x33, 0, 0, 0, 1, 2, 0, 0, 0, 0, 7, 0x86, 0xdd]
        );
        let ip = ipv6::Ipv6Packet::new_checked(&b[14..n]).unwrap();
        assert_eq!((ip.hop_limit(), ip.next_header()), (255, 58));
        assert_eq!((ip.src_addr(), ip.dst_addr()), (src, ALL_NODES));
        let p = Icmpv6Packet::new_checked(ip.payload()).unwrap();
        assert!(p.verify_checksum(src, ALL_NODES));
        assert_eq!(
            NdpRepr::parse(&p).unwrap(),
            NdpRepr::NeighborAdvert {
                router: true,
                solicited: false,
                override_: true,
                target,
                target_lladdr: Some(mac),
            }
        );
    }

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    /// A Neighbor Solicitation for 2001:db8::2 from 2001:db8::1 (MAC 02:00:00:00:00:01) to
    /// the solicited-node group, as the Linux kernel sends it; the checksum was checked
    /// with tshark ("[Checksum Status: Good]").
    const NS: [u8; 32] = [
        0x87, 0x00, 0x1c, 0x27, 0x00, 0x00, 0x00, 0x00, // type 135, code, checksum, reserved
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, // target
        0x01, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // source link-layer address
    ];

    #[test]
    fn neighbor_solicitation_bytes() {
        let ns = NdpRepr::NeighborSolicit {
            target: a("2001:db8::2"),
            source_lladdr: Some([2, 0, 0, 0, 0, 1]),
        };
        let dst = solicited_node(a("2001:db8::2"));
        assert_eq!(dst, a("ff02::1:ff00:2"));
        assert_eq!(multicast_mac(dst), [0x33, 0x33, 0xff, 0, 0, 2]);
        let mut out = [0u8; 64];
        let n = ns.emit(a("2001:db8::1"), dst, &mut out);
        assert_eq!(&out[..n], &NS[..]);
        let p = Icmpv6Packet::new_checked(&out[..n]).unwrap();
        assert!(p.verify_checksum(a("2001:db8::1"), dst));
        assert!(!p.verify_checksum(a("2001:db8::3"), dst));
        assert_eq!(NdpRepr::parse(&p).unwrap(), ns);
    }

    #[test]
    fn neighbor_advertisement_round_trip() {
        let na = NdpRepr::NeighborAdvert {
            router: false,
            solicited: true,
            override_: true,
            target: a("2001:db8::10"),
            target_lladdr: Some([2, 0, 0, 0, 0, 0x10]),
        };
        let mut out = [0u8; 64];
        let n = na.emit(a("2001:db8::10"), a("2001:db8::1"), &mut out);
        assert_eq!(n, 32);
        assert_eq!(out[0], 136);
        assert_eq!(out[4], 0x60, "S and O flags");
        assert_eq!(&out[24..26], &[2, 1], "target link-layer option, 8 bytes");
        let p = Icmpv6Packet::new_checked(&out[..n]).unwrap();
        assert!(p.verify_checksum(a("2001:db8::10"), a("2001:db8::1")));
        assert_eq!(NdpRepr::parse(&p).unwrap(), na);
    }

    #[test]
    fn ndp_rejects_bad_options_and_codes() {
        let mut ns = NS;
        ns[25] = 0; // option length 0 (RFC 4861: discard)
        let p = Icmpv6Packet::new_checked(&ns[..]).unwrap();
        assert_eq!(NdpRepr::parse(&p), Err(Error::Malformed));
        let mut ns = NS;
        ns[25] = 2; // option runs past the message
        let p = Icmpv6Packet::new_checked(&ns[..]).unwrap();
        assert_eq!(NdpRepr::parse(&p), Err(Error::Truncated));
        let mut ns = NS;
        ns[1] = 1; // code must be 0
        let p = Icmpv6Packet::new_checked(&ns[..]).unwrap();
        assert_eq!(NdpRepr::parse(&p), Err(Error::Malformed));
        let p = Icmpv6Packet::new_checked(&NS[..20]).unwrap();
        assert_eq!(NdpRepr::parse(&p), Err(Error::Truncated));
        assert_eq!(
            Icmpv6Packet::new_checked(&NS[..7]).unwrap_err(),
            Error::Truncated
        );
        // Every truncation of a valid message parses or errors, never panics.
        for len in 8..NS.len() {
            let p = Icmpv6Packet::new_checked(&NS[..len]).unwrap();
            let _ = NdpRepr::parse(&p);
        }
    }

    #[test]
    fn packet_too_big_quotes_within_the_minimum_mtu() {
        // A 1500-byte invoking packet: the quote stops at 1280 - 40 - 8 = 1232 bytes.
        let mut invoking = vec![0u8; 1500];
        invoking[0] = 0x60;
        invoking[4..6].copy_from_slice(&1460u16.to_be_bytes());
        invoking[6] = 6;
        invoking[8..24].copy_from_slice(&a("2001:db8:c::1").octets());
        invoking[24..40].copy_from_slice(&a("2001:db8:f::10").octets());
        let mut out = [0u8; 2048];
        let n = emit_error(
            msg::PACKET_TOO_BIG,
            0,
            1480,
            a("2001:db8:f::10"),
            a("2001:db8:c::1"),
            &invoking,
            &mut out,
        );
        assert_eq!(n, 1240);
        let p = Icmpv6Packet::new_checked(&out[..n]).unwrap();
        assert!(p.is_error());
        assert_eq!((p.msg_type(), p.code(), p.header_data()), (2, 0, 1480));
        assert!(p.verify_checksum(a("2001:db8:f::10"), a("2001:db8:c::1")));
        let inner = p.invoking_header().unwrap();
        assert_eq!(inner.src_addr, a("2001:db8:c::1"));
        assert_eq!(inner.dst_addr, a("2001:db8:f::10"));
        assert_eq!(inner.next_header, 6);
        // A short quote of the invoking packet: not even its fixed header.
        let n = emit_error(1, 4, 0, a("::1"), a("::2"), &invoking[..30], &mut out);
        let p = Icmpv6Packet::new_checked(&out[..n]).unwrap();
        assert_eq!(p.invoking_header(), Err(Error::Truncated));
        // Echo is not an error and quotes nothing.
        let echo = [128u8, 0, 0, 0, 0, 1, 0, 1];
        let p = Icmpv6Packet::new_checked(&echo[..]).unwrap();
        assert!(!p.is_error());
        assert_eq!(p.invoking_header(), Err(Error::Malformed));
    }
}
