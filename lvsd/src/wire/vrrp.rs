//! VRRP advertisements over IPv4: version 2 (RFC 3768 §5) and version 3 (RFC 9568 §5).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-------+-------+---------------+---------------+---------------+
//! |Version| Type  | Virtual Rtr ID|   Priority    | Count IP Addrs|
//! +-------+-------+---------------+---------------+---------------+
//! |   Auth Type   |   Adver Int   |          Checksum             |  v2 (RFC 3768 §5.1)
//! |(rsvd) |     Max Adver Int     |          Checksum             |  v3 (RFC 9568 §5.1)
//! +-------+-----------------------+-------------------------------+
//! |                   IPv4 Address (1 .. count)                   |
//! +---------------------------------------------------------------+
//! |           Authentication Data (1), (2): v2 only, zero         |
//! +---------------------------------------------------------------+
//! ```
//!
//! Invariants of a view made with [`VrrpPacket::new_checked`] over the IP payload (trimmed
//! to the IP total length):
//! - the buffer holds the 8-byte fixed header (else `Truncated`);
//! - the version is 2 or 3 (else `Malformed`: the layout is unknown);
//! - the buffer holds exactly the fixed header, `count × 4` address bytes and, for v2, the
//!   8 bytes of authentication data: shorter is `Truncated`, longer is `Malformed` (a count
//!   that disagrees with the length). After that, [`VrrpPacket::addr`] for `i < count` and
//!   every other getter never panic.
//!
//! Checksums (RFC 1071 sums, see [`super::checksum`]), as [`ChecksumMode`] names them:
//! - [`ChecksumMode::Message`]: over the VRRP message alone. This is v2 (RFC 3768 §5.3.8)
//!   and, since RFC 9568 §5.2.8 settled the ambiguity of RFC 5798, also v3 over IPv4
//!   ("For the IPv4 address family, the checksum calculation only includes the VRRP
//!   message"). Cisco, Arista EOS, FRR without `checksum-with-ipv4-pseudoheader` and
//!   keepalived with `v3_checksum_as_v2` send this.
//! - [`ChecksumMode::PseudoHeader`]: v3 over IPv4 with an IPv4 pseudo-header (source,
//!   destination, zero, protocol 112, VRRP length) in front, the RFC 5798 reading that
//!   keepalived uses by default and older FRR (Cumulus) always uses. The pseudo-header
//!   holds the packet's real destination, unicast peers included (keepalived #642).
//!
//!
//! IPv6 (RFC 9568 §5.1.2, RFC 5798): the same message with 16-byte addresses, v3 only
//! (a v2 message in an IPv6 view is `Malformed`: RFC 3768 is IPv4 only), the IPv6
//! pseudo-header (RFC 8200 §8.1: source, destination, 32-bit length, next header 112)
//! mandatory in front of the checksum (RFC 9568 §5.2.8), so [`ChecksumMode`] is ignored for
//! IPv6 (both modes compute the pseudo-header form). Sent to [`MULTICAST_ADDR_V6`]
//! (ff02::12) from the interface's link-local address with hop limit 255.
//!
//! The address family is a type parameter ([`VrrpAddr`]: `Ipv4Addr`, the default, or
//! `Ipv6Addr`): `VrrpPacket::new_checked` / `new_unchecked` make IPv4 views,
//! `new_checked_v6` / `new_unchecked_v6` IPv6 ones, and [`VrrpRepr`] follows its view.

use std::fmt;
use std::marker::PhantomData;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use super::checksum;
use super::ipv4::IpProtocol;
use super::{Error, Result};

/// IP protocol number of VRRP (112).
pub const IP_PROTOCOL: IpProtocol = IpProtocol(112);

/// The IPv4 multicast group adverts go to (RFC 9568 §5.1.1.2, RFC 3768 §5.2.2).
pub const MULTICAST_ADDR: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);

/// The IPv6 multicast group adverts go to (RFC 9568 §5.1.2.2).
pub const MULTICAST_ADDR_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);

/// The first four bytes of the virtual router MAC (RFC 9568 §7.3): IPv4
/// 00-00-5E-00-01-{VRID}, IPv6 00-00-5E-00-02-{VRID}.
pub const fn virtual_mac(v6: bool, vrid: u8) -> [u8; 6] {
    [0x00, 0x00, 0x5e, 0x00, if v6 { 0x02 } else { 0x01 }, vrid]
}

/// An address family VRRP runs over: the address size, its wire form and the
/// pseudo-header sum.
pub trait VrrpAddr: Copy + Eq + Ord + fmt::Debug + fmt::Display {
    /// Bytes per address in the message (4 or 16).
    const LEN: usize;
    /// Whether this is IPv6 (v3 only; the pseudo-header checksum always).
    const IS_V6: bool;
    /// Reads an address from exactly [`VrrpAddr::LEN`] bytes.
    fn read(b: &[u8]) -> Self;
    /// Writes the address into exactly [`VrrpAddr::LEN`] bytes.
    fn write(self, b: &mut [u8]);
    /// The pseudo-header sum (not complemented) for a VRRP message of `len` bytes.
    fn pseudo_header(src: Self, dst: Self, len: u16) -> u16;
}

impl VrrpAddr for Ipv4Addr {
    const LEN: usize = 4;
    const IS_V6: bool = false;
    fn read(b: &[u8]) -> Self {
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }
    fn write(self, b: &mut [u8]) {
        b.copy_from_slice(&self.octets());
    }
    fn pseudo_header(src: Self, dst: Self, len: u16) -> u16 {
        checksum::pseudo_header_v4(src, dst, IP_PROTOCOL.0, len)
    }
}

impl VrrpAddr for Ipv6Addr {
    const LEN: usize = 16;
    const IS_V6: bool = true;
    fn read(b: &[u8]) -> Self {
        let mut o = [0u8; 16];
        o.copy_from_slice(&b[..16]);
        Ipv6Addr::from(o)
    }
    fn write(self, b: &mut [u8]) {
        b.copy_from_slice(&self.octets());
    }
    fn pseudo_header(src: Self, dst: Self, len: u16) -> u16 {
        super::ipv6::pseudo_header(src, dst, IP_PROTOCOL.0, u32::from(len))
    }
}

/// The IP TTL a sender sets and a receiver requires (RFC 9568 §5.1.1.3, §7.1).
pub const TTL: u8 = 255;

/// Length of the fixed header (up to and including the checksum).
pub const HEADER_LEN: usize = 8;

/// Length of the v2 authentication data after the addresses (RFC 3768 §5.3.10).
pub const AUTH_DATA_LEN: usize = 8;

/// The only packet type: ADVERTISEMENT (RFC 9568 §5.2.2).
pub const TYPE_ADVERTISEMENT: u8 = 1;

/// Largest v3 Max Adver Int: 12 bits of centiseconds, 40.95 s (RFC 9568 §5.2.7).
pub const V3_MAX_ADVER_INT: u16 = 0x0fff;

/// Byte offset of the checksum field.
pub const CHECKSUM_OFFSET: usize = 6;

mod field {
    use crate::wire::Field;

    pub const VER_TYPE: usize = 0;
    pub const VRID: usize = 1;
    pub const PRIORITY: usize = 2;
    pub const COUNT: usize = 3;
    /// v2 only.
    pub const AUTH_TYPE: usize = 4;
    /// v2 only: seconds.
    pub const ADVER_INT: usize = 5;
    /// v3 only: 4 reserved bits and 12 bits of centiseconds.
    pub const MAX_ADVER_INT: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
    pub const ADDRS: usize = 8;
}

/// The protocol version (RFC 9568 §5.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// VRRPv2, RFC 3768: integer-second interval, auth type and data, plain checksum.
    V2,
    /// VRRPv3, RFC 9568: 12-bit centisecond interval, pseudo-header checksum.
    V3,
}

impl Version {
    /// The 4-bit version number.
    pub const fn number(self) -> u8 {
        match self {
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }

    /// The version for a 4-bit version number, if known.
    pub const fn from_number(n: u8) -> Option<Self> {
        match n {
            2 => Some(Version::V2),
            3 => Some(Version::V3),
            _ => None,
        }
    }

    /// Length of an IPv4 message with `count` addresses.
    pub const fn message_len(self, count: u8) -> usize {
        self.message_len_for(count, 4)
    }

    /// Length of a message with `count` addresses of `addr_len` bytes each.
    pub const fn message_len_for(self, count: u8, addr_len: usize) -> usize {
        let trailer = match self {
            Version::V2 => AUTH_DATA_LEN,
            Version::V3 => 0,
        };
        HEADER_LEN + addr_len * count as usize + trailer
    }
}

/// Which checksum a message carries (module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChecksumMode {
    /// The message alone: v2 (RFC 3768 §5.3.8) and v3 over IPv4 (RFC 9568 §5.2.8).
    Message,
    /// The message after an IPv4 pseudo-header: v3 as keepalived (by default) and older
    /// FRR read RFC 5798 §5.2.8.
    PseudoHeader,
}

impl ChecksumMode {
    /// The mode for `version`; `v3_pseudo_header` selects the RFC 5798 reading for v3
    /// (v2 never has a pseudo-header).
    pub const fn for_version(version: Version, v3_pseudo_header: bool) -> Self {
        match (version, v3_pseudo_header) {
            (Version::V3, true) => ChecksumMode::PseudoHeader,
            _ => ChecksumMode::Message,
        }
    }
}

/// A view of a VRRP message (the IP payload); `A` is the address family (module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VrrpPacket<T: AsRef<[u8]>, A: VrrpAddr = Ipv4Addr> {
    buffer: T,
    family: PhantomData<A>,
}

impl<T: AsRef<[u8]>> VrrpPacket<T, Ipv4Addr> {
    /// Wraps a buffer without any check (IPv4).
    pub const fn new_unchecked(buffer: T) -> Self {
        Self::new_unchecked_as(buffer)
    }

    /// Wraps an untrusted buffer, checking everything the getters rely on (module doc).
    pub fn new_checked(buffer: T) -> Result<Self> {
        Self::new_checked_as(buffer)
    }
}

impl<T: AsRef<[u8]>> VrrpPacket<T, Ipv6Addr> {
    /// Wraps a buffer without any check (IPv6).
    pub const fn new_unchecked_v6(buffer: T) -> Self {
        Self::new_unchecked_as(buffer)
    }

    /// Wraps an untrusted IPv6 payload, checking everything the getters rely on.
    pub fn new_checked_v6(buffer: T) -> Result<Self> {
        Self::new_checked_as(buffer)
    }
}

impl<T: AsRef<[u8]>, A: VrrpAddr> VrrpPacket<T, A> {
    /// Wraps a buffer without any check, for the family `A`.
    pub const fn new_unchecked_as(buffer: T) -> Self {
        VrrpPacket {
            buffer,
            family: PhantomData,
        }
    }

    /// Wraps an untrusted buffer of family `A`, checked (module doc).
    pub fn new_checked_as(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked_as(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// The checks of [`VrrpPacket::new_checked`].
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let version = Version::from_number(self.version()).ok_or(Error::Malformed)?;
        if A::IS_V6 && version == Version::V2 {
            // RFC 3768 is IPv4 only.
            return Err(Error::Malformed);
        }
        let want = version.message_len_for(self.addr_count(), A::LEN);
        if len < want {
            return Err(Error::Truncated);
        }
        if len > want {
            return Err(Error::Malformed);
        }
        Ok(())
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The whole message.
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Version field (RFC 9568 §5.2.1).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TYPE] >> 4
    }

    /// Type field; 1 = ADVERTISEMENT (RFC 9568 §5.2.2).
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TYPE] & 0x0f
    }

    /// Virtual Router Identifier (RFC 9568 §5.2.3).
    pub fn vrid(&self) -> u8 {
        self.buffer.as_ref()[field::VRID]
    }

    /// Sender's priority: 255 = address owner, 0 = resigning (RFC 9568 §5.2.4).
    pub fn priority(&self) -> u8 {
        self.buffer.as_ref()[field::PRIORITY]
    }

    /// Count of addresses (RFC 9568 §5.2.5).
    pub fn addr_count(&self) -> u8 {
        self.buffer.as_ref()[field::COUNT]
    }

    /// v2 Auth Type (RFC 3768 §5.3.6); meaningless for v3.
    pub fn auth_type(&self) -> u8 {
        self.buffer.as_ref()[field::AUTH_TYPE]
    }

    /// The interval field in its own unit: v2 Adver Int in seconds (RFC 3768 §5.3.7),
    /// v3 Max Adver Int in centiseconds, reserved bits masked off (RFC 9568 §5.2.7).
    pub fn adver_int(&self) -> u16 {
        let b = self.buffer.as_ref();
        if self.version() == 2 {
            u16::from(b[field::ADVER_INT])
        } else {
            let f = &b[field::MAX_ADVER_INT];
            u16::from_be_bytes([f[0], f[1]]) & V3_MAX_ADVER_INT
        }
    }

    /// [`VrrpPacket::adver_int`] as a duration.
    pub fn advert_interval(&self) -> Duration {
        if self.version() == 2 {
            Duration::from_secs(u64::from(self.adver_int()))
        } else {
            Duration::from_millis(u64::from(self.adver_int()) * 10)
        }
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        let f = &self.buffer.as_ref()[field::CHECKSUM];
        u16::from_be_bytes([f[0], f[1]])
    }

    /// The `i`-th address (`i < addr_count()` on a checked view).
    pub fn addr(&self, i: usize) -> A {
        let o = field::ADDRS + A::LEN * i;
        A::read(&self.buffer.as_ref()[o..o + A::LEN])
    }

    /// The addresses, in packet order.
    pub fn addrs(&self) -> impl Iterator<Item = A> + '_ {
        (0..usize::from(self.addr_count())).map(|i| self.addr(i))
    }

    /// The v2 authentication data (8 bytes after the addresses); empty for v3.
    pub fn auth_data(&self) -> &[u8] {
        if self.version() == 2 {
            let o = field::ADDRS + A::LEN * usize::from(self.addr_count());
            &self.buffer.as_ref()[o..o + AUTH_DATA_LEN]
        } else {
            &[]
        }
    }

    /// The sum (not complemented) `mode` calls for over the message as it is; IPv6
    /// always has the pseudo-header (module doc).
    fn sum(&self, mode: ChecksumMode, src: A, dst: A) -> u16 {
        let b = self.buffer.as_ref();
        let body = checksum::data(b);
        if mode == ChecksumMode::Message && !A::IS_V6 {
            return body;
        }
        let len = u16::try_from(b.len()).unwrap_or(u16::MAX);
        checksum::combine(&[A::pseudo_header(src, dst, len), body])
    }

    /// The checksum `mode` calls for over this message (checksum field taken as zero).
    pub fn compute_checksum(&self, mode: ChecksumMode, src: A, dst: A) -> u16 {
        // Take the current field out of the sum: the checksum is defined over a zero field.
        !checksum::add(self.sum(mode, src, dst), !self.checksum())
    }

    /// Whether the checksum field is right for `mode` (`src`/`dst` from the IP header).
    pub fn verify_checksum(&self, mode: ChecksumMode, src: A, dst: A) -> bool {
        self.sum(mode, src, dst) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>, A: VrrpAddr> VrrpPacket<T, A> {
    /// Sets version and type.
    pub fn set_version_and_type(&mut self, version: Version, msg_type: u8) {
        self.buffer.as_mut()[field::VER_TYPE] = (version.number() << 4) | (msg_type & 0x0f);
    }

    /// Sets the VRID.
    pub fn set_vrid(&mut self, v: u8) {
        self.buffer.as_mut()[field::VRID] = v;
    }

    /// Sets the priority.
    pub fn set_priority(&mut self, v: u8) {
        self.buffer.as_mut()[field::PRIORITY] = v;
    }

    /// Sets the address count.
    pub fn set_addr_count(&mut self, v: u8) {
        self.buffer.as_mut()[field::COUNT] = v;
    }

    /// Sets the v2 auth type (overwrites the high byte of the v3 interval field).
    pub fn set_auth_type(&mut self, v: u8) {
        self.buffer.as_mut()[field::AUTH_TYPE] = v;
    }

    /// Sets the v2 Adver Int in seconds.
    pub fn set_adver_int_v2(&mut self, secs: u8) {
        self.buffer.as_mut()[field::ADVER_INT] = secs;
    }

    /// Sets the v3 Max Adver Int in centiseconds (reserved bits zero, value masked to 12
    /// bits).
    pub fn set_max_adver_int(&mut self, cs: u16) {
        self.buffer.as_mut()[field::MAX_ADVER_INT]
            .copy_from_slice(&(cs & V3_MAX_ADVER_INT).to_be_bytes());
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the `i`-th address.
    pub fn set_addr(&mut self, i: usize, a: A) {
        let o = field::ADDRS + A::LEN * i;
        a.write(&mut self.buffer.as_mut()[o..o + A::LEN]);
    }

    /// Zeroes the v2 authentication data ("SHOULD be set to zero on transmission",
    /// RFC 3768 §5.3.10).
    pub fn clear_auth_data(&mut self) {
        let o = field::ADDRS + A::LEN * usize::from(self.addr_count());
        if let Some(d) = self.buffer.as_mut().get_mut(o..o + AUTH_DATA_LEN) {
            d.fill(0);
        }
    }

    /// Computes and writes the checksum for `mode`.
    pub fn fill_checksum(&mut self, mode: ChecksumMode, src: A, dst: A) {
        self.set_checksum(0);
        let c = self.compute_checksum(mode, src, dst);
        self.set_checksum(c);
    }
}

/// A parsed advertisement (`A`: the address family, IPv4 by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrrpRepr<A: VrrpAddr = Ipv4Addr> {
    /// Version.
    pub version: Version,
    /// Virtual Router Identifier.
    pub vrid: u8,
    /// Priority.
    pub priority: u8,
    /// Interval in the version's unit: v2 seconds (≤ 255), v3 centiseconds (≤ 4095).
    pub adver_int: u16,
    /// v2 auth type (0 = none; RFC 3768 §5.3.6); 0 for v3.
    pub auth_type: u8,
    /// The virtual addresses.
    pub addrs: Vec<A>,
}

impl<A: VrrpAddr> VrrpRepr<A> {
    /// Reads a checked ADVERTISEMENT (another type is `Malformed`). The checksum is not
    /// verified here: it needs the IP addresses and the configured mode.
    pub fn parse<T: AsRef<[u8]>>(p: &VrrpPacket<T, A>) -> Result<Self> {
        p.check_len()?;
        let version = Version::from_number(p.version()).ok_or(Error::Malformed)?;
        if p.msg_type() != TYPE_ADVERTISEMENT {
            return Err(Error::Malformed);
        }
        Ok(VrrpRepr {
            version,
            vrid: p.vrid(),
            priority: p.priority(),
            adver_int: p.adver_int(),
            auth_type: if version == Version::V2 {
                p.auth_type()
            } else {
                0
            },
            addrs: p.addrs().collect(),
        })
    }

    /// Length of the message [`VrrpRepr::emit`] writes (at most 255 addresses are sent).
    pub fn buffer_len(&self) -> usize {
        self.version.message_len_for(self.count(), A::LEN)
    }

    fn count(&self) -> u8 {
        u8::try_from(self.addrs.len()).unwrap_or(u8::MAX)
    }

    /// Writes the whole message with its checksum. The buffer must hold
    /// [`VrrpRepr::buffer_len`] bytes; `src`/`dst` are the IP addresses it goes out with.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        p: &mut VrrpPacket<T, A>,
        mode: ChecksumMode,
        src: A,
        dst: A,
    ) {
        let count = self.count();
        p.set_version_and_type(self.version, TYPE_ADVERTISEMENT);
        p.set_vrid(self.vrid);
        p.set_priority(self.priority);
        p.set_addr_count(count);
        match self.version {
            Version::V2 => {
                p.set_auth_type(self.auth_type);
                p.set_adver_int_v2(u8::try_from(self.adver_int).unwrap_or(u8::MAX));
            }
            Version::V3 => p.set_max_adver_int(self.adver_int),
        }
        for (i, a) in self.addrs.iter().take(usize::from(count)).enumerate() {
            p.set_addr(i, *a);
        }
        if self.version == Version::V2 {
            p.clear_auth_data();
        }
        p.fill_checksum(mode, src, dst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
    const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);

    // v2 (RFC 3768 §5.1): version 2 type 1, VRID 51, priority 100, 1 address, auth type 0,
    // adver int 1 s, checksum, 203.0.113.10, 8 bytes of zero auth data.
    // Checksum by hand: 2133 + 6401 + 0001 + cb00 + 710a = 1_c140 -> c140 + 0 = c140
    // (2133+6401 = 8534, +0001 = 8535, +cb00 = 1_5035 -> 5036, +710a = c140); !c140 = 3ebf.
    static V2: [u8; 20] = [
        0x21, 0x33, 0x64, 0x01, // ver/type, vrid, prio, count
        0x00, 0x01, 0x3e, 0xbf, // auth type, adver int, checksum
        203, 0, 113, 10, // address
        0, 0, 0, 0, 0, 0, 0, 0, // auth data
    ];

    // v3 (RFC 9568 §5.1): version 3 type 1, VRID 51, priority 100, 1 address, max adver
    // int 100 cs (1 s), checksum, 203.0.113.10; 203.0.113.2 -> 224.0.0.18.
    // Message sum: 3133 + 6401 + 0064 + cb00 + 710a = d1a3; RFC 9568 §5.2.8 (IPv4: the
    // message only): !d1a3 = 2e5c.
    // With the pseudo-header (RFC 5798 reading): cb00 + 7102 + e000 + 0012 + 0070 (proto
    // 112) + 000c (length 12) = 1c92; !(d1a3 + 1c92) = !ee35 = 11ca.
    static V3: [u8; 12] = [
        0x31, 0x33, 0x64, 0x01, // ver/type, vrid, prio, count
        0x00, 0x64, 0x2e, 0x5c, // rsvd + max adver int, checksum
        203, 0, 113, 10, // address
    ];
    const V3_PSEUDO_HEADER_CHECKSUM: u16 = 0x11ca;

    #[test]
    fn deconstruct_v2() {
        let p = VrrpPacket::new_checked(&V2[..]).unwrap();
        assert_eq!(p.version(), 2);
        assert_eq!(p.msg_type(), TYPE_ADVERTISEMENT);
        assert_eq!(p.vrid(), 51);
        assert_eq!(p.priority(), 100);
        assert_eq!(p.addr_count(), 1);
        assert_eq!(p.auth_type(), 0);
        assert_eq!(p.adver_int(), 1);
        assert_eq!(p.advert_interval(), Duration::from_secs(1));
        assert_eq!(p.checksum(), 0x3ebf);
        assert_eq!(p.addrs().collect::<Vec<_>>(), vec![VIP]);
        assert_eq!(p.auth_data(), &[0u8; 8]);
        assert!(p.verify_checksum(ChecksumMode::Message, SRC, MULTICAST_ADDR));
        let r = VrrpRepr::parse(&p).unwrap();
        assert_eq!(
            r,
            VrrpRepr {
                version: Version::V2,
                vrid: 51,
                priority: 100,
                adver_int: 1,
                auth_type: 0,
                addrs: vec![VIP],
            }
        );
    }

    #[test]
    fn construct_v2() {
        let r = VrrpRepr {
            version: Version::V2,
            vrid: 51,
            priority: 100,
            adver_int: 1,
            auth_type: 0,
            addrs: vec![VIP],
        };
        assert_eq!(r.buffer_len(), 20);
        let mut b = [0xaau8; 20];
        r.emit(
            &mut VrrpPacket::new_unchecked(&mut b[..]),
            ChecksumMode::Message,
            SRC,
            MULTICAST_ADDR,
        );
        assert_eq!(b, V2);
    }

    #[test]
    fn deconstruct_v3() {
        let p = VrrpPacket::new_checked(&V3[..]).unwrap();
        assert_eq!(p.version(), 3);
        assert_eq!(p.vrid(), 51);
        assert_eq!(p.priority(), 100);
        assert_eq!(p.adver_int(), 100);
        assert_eq!(p.advert_interval(), Duration::from_secs(1));
        assert_eq!(p.checksum(), 0x2e5c);
        assert!(p.auth_data().is_empty());
        assert!(p.verify_checksum(ChecksumMode::Message, SRC, MULTICAST_ADDR));
        // The other flavour does not verify.
        assert!(!p.verify_checksum(ChecksumMode::PseudoHeader, SRC, MULTICAST_ADDR));
        assert_eq!(VrrpRepr::parse(&p).unwrap().addrs, vec![VIP]);
    }

    #[test]
    fn construct_v3_both_flavours() {
        let r = VrrpRepr {
            version: Version::V3,
            vrid: 51,
            priority: 100,
            adver_int: 100,
            auth_type: 0,
            addrs: vec![VIP],
        };
        let mut b = [0xaau8; 12];
        r.emit(
            &mut VrrpPacket::new_unchecked(&mut b[..]),
            ChecksumMode::Message,
            SRC,
            MULTICAST_ADDR,
        );
        assert_eq!(b, V3);
        r.emit(
            &mut VrrpPacket::new_unchecked(&mut b[..]),
            ChecksumMode::PseudoHeader,
            SRC,
            MULTICAST_ADDR,
        );
        let mut want = V3;
        want[6..8].copy_from_slice(&V3_PSEUDO_HEADER_CHECKSUM.to_be_bytes());
        assert_eq!(b, want);
        let p = VrrpPacket::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum(ChecksumMode::PseudoHeader, SRC, MULTICAST_ADDR));
        assert!(!p.verify_checksum(ChecksumMode::Message, SRC, MULTICAST_ADDR));
        // The pseudo-header binds the destination: the same bytes to a unicast peer fail.
        let peer = Ipv4Addr::new(203, 0, 113, 3);
        assert!(!p.verify_checksum(ChecksumMode::PseudoHeader, SRC, peer));
    }

    /// The 12-bit interval: reserved bits are ignored on read and never set on write;
    /// 4095 cs = 40.95 s is the largest.
    #[test]
    fn v3_interval_is_twelve_bits() {
        let mut b = V3;
        b[4] = 0xff;
        b[5] = 0xff;
        let p = VrrpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.adver_int(), 4095);
        assert_eq!(p.advert_interval(), Duration::from_millis(40_950));
        let mut p = VrrpPacket::new_unchecked(&mut b[..]);
        p.set_max_adver_int(0xf123);
        assert_eq!(&b[4..6], &[0x01, 0x23]);
    }

    #[test]
    fn impossible_lengths() {
        for n in 0..HEADER_LEN {
            assert_eq!(
                VrrpPacket::new_checked(&V2[..n]).err(),
                Some(Error::Truncated)
            );
        }
        // Missing the auth data, or part of the address.
        for n in HEADER_LEN..V2.len() {
            assert_eq!(
                VrrpPacket::new_checked(&V2[..n]).err(),
                Some(Error::Truncated),
                "{n}"
            );
        }
        for n in HEADER_LEN..V3.len() {
            assert_eq!(
                VrrpPacket::new_checked(&V3[..n]).err(),
                Some(Error::Truncated)
            );
        }
        // Count says 2 addresses, one present: truncated; count 0 with one present: too long.
        let mut b = V3;
        b[3] = 2;
        assert_eq!(
            VrrpPacket::new_checked(&b[..]).err(),
            Some(Error::Truncated)
        );
        b[3] = 0;
        assert_eq!(
            VrrpPacket::new_checked(&b[..]).err(),
            Some(Error::Malformed)
        );
        // Count 255 on a short buffer never panics.
        let mut b = V2;
        b[3] = 255;
        assert_eq!(
            VrrpPacket::new_checked(&b[..]).err(),
            Some(Error::Truncated)
        );
        // Unknown version.
        let mut b = V3;
        b[0] = 0x41;
        assert_eq!(
            VrrpPacket::new_checked(&b[..]).err(),
            Some(Error::Malformed)
        );
        // Another type parses as a view but not as an advertisement.
        let mut b = V3;
        b[0] = 0x32;
        let p = VrrpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(VrrpRepr::parse(&p).err(), Some(Error::Malformed));
    }

    /// Every prefix and every single-byte corruption of both packets: never a panic.
    #[test]
    fn garbage_never_panics() {
        for pkt in [&V2[..], &V3[..]] {
            for n in 0..=pkt.len() {
                for i in 0..n.max(1) {
                    for v in [0u8, 0x20, 0x31, 0xff] {
                        let mut b = pkt[..n].to_vec();
                        if let Some(x) = b.get_mut(i) {
                            *x = v;
                        }
                        if let Ok(p) = VrrpPacket::new_checked(&b[..]) {
                            let _ = VrrpRepr::parse(&p);
                            let _ = p.addrs().count();
                            let _ = p.auth_data();
                            let _ =
                                p.verify_checksum(ChecksumMode::PseudoHeader, SRC, MULTICAST_ADDR);
                        }
                    }
                }
            }
        }
    }

    const SRC6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
    const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 0x10);

    // v3 over IPv6 (RFC 9568 §5.1.2): VRID 51, priority 100, 1 address, 100 cs,
    // 2001:db8:f::10; fe80::1 -> ff02::12.
    // Message sum: 3133 + 6401 + 0064 + 2001 + 0db8 + 000f + 0010 = c370.
    // IPv6 pseudo-header (RFC 8200 §8.1): fe80 + 0001 + ff02 + 0012 + 0018 (length 24)
    // + 0070 (next header 112) = fe1e. !(c370 + fe1e) = !c18f = 3e70.
    // tshark 3.6 (`tshark -V` on this frame in a pcap) says "Checksum: 0x3e70 [correct]".
    static V3_V6: [u8; 24] = [
        0x31, 0x33, 0x64, 0x01, // ver/type, vrid, prio, count
        0x00, 0x64, 0x3e, 0x70, // rsvd + max adver int, checksum
        0x20, 0x01, 0x0d, 0xb8, 0x00, 0x0f, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x10, // address
    ];

    /// A second, independent RFC 1071 sum over the pseudo-header and message bytes.
    fn reference_checksum6(src: Ipv6Addr, dst: Ipv6Addr, msg: &[u8]) -> u16 {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&src.octets());
        bytes.extend_from_slice(&dst.octets());
        bytes.extend_from_slice(&u32::try_from(msg.len()).unwrap().to_be_bytes());
        bytes.extend_from_slice(&[0, 0, 0, 112]);
        bytes.extend_from_slice(msg);
        bytes[40 + 6] = 0;
        bytes[40 + 7] = 0;
        let mut sum: u32 = 0;
        for c in bytes.chunks(2) {
            sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    #[test]
    fn construct_and_deconstruct_v3_over_ipv6() {
        let r = VrrpRepr {
            version: Version::V3,
            vrid: 51,
            priority: 100,
            adver_int: 100,
            auth_type: 0,
            addrs: vec![VIP6],
        };
        assert_eq!(r.buffer_len(), 24);
        let mut b = [0xaau8; 24];
        // The mode does not matter for IPv6: the pseudo-header is mandatory.
        for mode in [ChecksumMode::PseudoHeader, ChecksumMode::Message] {
            r.emit(
                &mut VrrpPacket::new_unchecked_v6(&mut b[..]),
                mode,
                SRC6,
                MULTICAST_ADDR_V6,
            );
            assert_eq!(b, V3_V6);
        }
        assert_eq!(
            reference_checksum6(SRC6, MULTICAST_ADDR_V6, &V3_V6),
            u16::from_be_bytes([V3_V6[6], V3_V6[7]])
        );
        let p = VrrpPacket::new_checked_v6(&V3_V6[..]).unwrap();
        assert_eq!(p.addr(0), VIP6);
        assert_eq!(p.advert_interval(), Duration::from_secs(1));
        assert!(p.verify_checksum(ChecksumMode::PseudoHeader, SRC6, MULTICAST_ADDR_V6));
        // Another source or destination (a unicast peer) does not verify.
        let other = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);
        assert!(!p.verify_checksum(ChecksumMode::PseudoHeader, other, MULTICAST_ADDR_V6));
        assert!(!p.verify_checksum(ChecksumMode::PseudoHeader, SRC6, other));
        assert_eq!(VrrpRepr::parse(&p).unwrap(), r);
        // A corrupted checksum fails.
        let mut bad = V3_V6;
        bad[7] ^= 1;
        let p = VrrpPacket::new_checked_v6(&bad[..]).unwrap();
        assert!(!p.verify_checksum(ChecksumMode::PseudoHeader, SRC6, MULTICAST_ADDR_V6));
    }

    #[test]
    fn ipv6_views_refuse_v2_and_wrong_lengths() {
        // VRRPv2 is IPv4 only (RFC 3768).
        let mut b = V3_V6;
        b[0] = 0x21;
        assert_eq!(
            VrrpPacket::new_checked_v6(&b[..]).err(),
            Some(Error::Malformed)
        );
        for n in 0..V3_V6.len() {
            assert_eq!(
                VrrpPacket::new_checked_v6(&V3_V6[..n]).err(),
                Some(Error::Truncated),
                "{n}"
            );
        }
        // The IPv4 reading of the same bytes: count 1 wants 12 bytes, 24 is too long.
        assert_eq!(
            VrrpPacket::new_checked(&V3_V6[..]).err(),
            Some(Error::Malformed)
        );
        // Every single-byte corruption: never a panic.
        for i in 0..V3_V6.len() {
            for v in [0u8, 0x21, 0xff] {
                let mut b = V3_V6;
                b[i] = v;
                if let Ok(p) = VrrpPacket::new_checked_v6(&b[..]) {
                    let _ = VrrpRepr::parse(&p);
                    let _ = p.verify_checksum(ChecksumMode::PseudoHeader, SRC6, MULTICAST_ADDR_V6);
                }
            }
        }
        assert_eq!(virtual_mac(true, 51), [0, 0, 0x5e, 0, 2, 51]);
        assert_eq!(virtual_mac(false, 51), [0, 0, 0x5e, 0, 1, 51]);
    }

    #[test]
    fn message_lengths() {
        assert_eq!(Version::V2.message_len(0), 16);
        assert_eq!(Version::V3.message_len(0), 8);
        assert_eq!(Version::V3.message_len(255), 8 + 1020);
        assert_eq!(
            ChecksumMode::for_version(Version::V2, true),
            ChecksumMode::Message
        );
        assert_eq!(
            ChecksumMode::for_version(Version::V3, true),
            ChecksumMode::PseudoHeader
        );
    }
}
