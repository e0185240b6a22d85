//! Zero-copy views of the packet formats the forwarding core reads and rewrites:
//! Ethernet II, ARP (Ethernet/IPv4), IPv4, TCP and UDP, plus the internet checksum; and
//! for TUN forwarding IPIP ([`ipip`]), ICMP frag-needed ([`icmp`]) and software TCP
//! segmentation ([`gso`]).
//!
//! Shape (after smoltcp's `wire`): each format has a view `Xxx<T: AsRef<[u8]>>` over a
//! borrowed buffer, with field offsets in a private `mod field`, getters in the
//! `AsRef<[u8]>` impl and setters in the `AsMut<[u8]>` impl, and a small `XxxRepr` that
//! `parse`s a checked view and `emit`s into one.
//!
//! Rules:
//! - Frames from the network are untrusted: open them with `new_checked`, which verifies
//!   every length the getters rely on. After that, getters never panic.
//! - `new_unchecked` is for buffers this process fills itself (emitting into reused,
//!   large-enough buffers); a getter on an unchecked, too-short buffer may panic.
//! - Nothing here allocates, reads a clock, or touches a socket.
//! - Addresses are [`std::net::Ipv4Addr`] and MAC addresses plain `[u8; 6]`; multi-byte
//!   fields are big-endian on the wire and host integers in the API.

use std::fmt;

pub mod arp;
pub mod build;
pub mod checksum;
pub mod ethernet;
pub mod gso;
pub mod icmp;
pub mod icmpv6;
pub mod ipip;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;
pub mod vrrp;

pub use arp::{ArpOperation, ArpPacket, ArpRepr};
pub use ethernet::{EtherType, EthernetFrame, EthernetRepr, MacAddr};
pub use ipv4::{IpProtocol, Ipv4Packet, Ipv4Repr};
pub use tcp::{TcpControl, TcpPacket, TcpRepr};
pub use udp::{UdpPacket, UdpRepr};

/// Why a buffer could not be read as a given format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer ends before a header the format requires.
    Truncated,
    /// A header field holds a value the format forbids (bad version, a length that
    /// contradicts another, an unsupported hardware type...).
    Malformed,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Truncated => "truncated packet",
            Error::Malformed => "malformed packet",
        })
    }
}

impl std::error::Error for Error {}

/// Result of the checked constructors and `Repr::parse`.
pub type Result<T> = std::result::Result<T, Error>;

/// A field's byte range inside its header.
type Field = std::ops::Range<usize>;
