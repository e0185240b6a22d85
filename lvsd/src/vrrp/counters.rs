//! Per-instance counters, and why a received advert was dropped.
//!
//! Names follow keepalived-exporter's metric vocabulary where it has one
//! (`keepalived_ip_ttl_err_total` → `ip_ttl_err`, `packet_len_err`, `advert_interval_err`,
//! `authtype_mismatch`, `invalid_type_rcvd`, `advert_rcvd`, `advert_sent`,
//! `become_master`, `release_master`, `pri_zero_rcvd`, `pri_zero_sent`, `addr_list_err`);
//! the rest use the same `_err` shape.

use std::fmt;

/// Why a received packet was dropped. Each has its own counter; a dropped packet never
/// changes the instance's state (RFC 9568 §7.1: "discard", "SHOULD log").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reject {
    /// Not a whole unfragmented IPv4 packet of protocol 112 (or IPv6 packet with next
    /// header 112), or a packet of the other family than the instance's.
    IpHeader,
    /// TTL not 255 on a multicast advert, or not the configured unicast TTL.
    IpTtl,
    /// Version other than the configured one.
    Version,
    /// Type other than ADVERTISEMENT.
    InvalidType,
    /// Shorter than its header and address list, or longer (count mismatch).
    PacketLen,
    /// Checksum wrong for the configured flavour.
    Checksum,
    /// A VRID we do not run (on this interface).
    Vrid,
    /// Our own advert looped back (source is our primary address).
    OwnPacket,
    /// Unicast mode and the source is not a configured peer.
    UnicastPeer,
    /// v2 auth type differs from ours (RFC 3768 §7.1).
    AuthType,
    /// v2 interval differs from ours (RFC 3768 §7.1), or a v3 interval of zero
    /// (RFC 9568 §7.1, erratum 8301).
    AdvertInterval,
    /// Priority 255 from a peer while we are the address owner: a configuration error
    /// (RFC 9568 §7.1 drops it; like keepalived we also step down to 254).
    OwnerConflict,
}

impl Reject {
    /// Every reason, in counter order.
    pub const ALL: [Reject; 12] = [
        Reject::IpHeader,
        Reject::IpTtl,
        Reject::Version,
        Reject::InvalidType,
        Reject::PacketLen,
        Reject::Checksum,
        Reject::Vrid,
        Reject::OwnPacket,
        Reject::UnicastPeer,
        Reject::AuthType,
        Reject::AdvertInterval,
        Reject::OwnerConflict,
    ];

    /// The counter's name.
    pub const fn name(self) -> &'static str {
        match self {
            Reject::IpHeader => "ip_header_err",
            Reject::IpTtl => "ip_ttl_err",
            Reject::Version => "version_err",
            Reject::InvalidType => "invalid_type_rcvd",
            Reject::PacketLen => "packet_len_err",
            Reject::Checksum => "checksum_err",
            Reject::Vrid => "vrid_err",
            Reject::OwnPacket => "own_packet_rcvd",
            Reject::UnicastPeer => "unicast_peer_err",
            Reject::AuthType => "authtype_mismatch",
            Reject::AdvertInterval => "advert_interval_err",
            Reject::OwnerConflict => "owner_conflict",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One instance's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Adverts accepted.
    pub advert_rcvd: u64,
    /// Adverts sent (priority 0 ones included).
    pub advert_sent: u64,
    /// Times it became master.
    pub become_master: u64,
    /// Times it left master.
    pub release_master: u64,
    /// Accepted adverts with priority 0.
    pub pri_zero_rcvd: u64,
    /// Priority-0 adverts sent.
    pub pri_zero_sent: u64,
    /// Adverts a master accepted from a lower priority (a second master: the heal path).
    pub lower_prio_rcvd: u64,
    /// Accepted adverts whose address list differs from ours (logged, not dropped:
    /// RFC 9568 §7.1 makes the check optional).
    pub addr_list_err: u64,
    /// GARP rounds asked for.
    pub garp_rounds: u64,
    /// State transitions.
    pub transitions: u64,
    rejected: [u64; Reject::ALL.len()],
}

impl Counters {
    /// Counts a dropped packet.
    pub fn reject(&mut self, r: Reject) {
        self.rejected[r.index()] += 1;
    }

    /// Packets dropped for `r`.
    pub fn rejected(&self, r: Reject) -> u64 {
        self.rejected[r.index()]
    }

    /// All drops.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().sum()
    }

    /// The non-zero drop counters by name (for `VrrpInstanceInfo::rejected`).
    pub fn rejected_by_name(&self) -> Vec<(String, u64)> {
        Reject::ALL
            .iter()
            .filter(|r| self.rejected(**r) > 0)
            .map(|r| (r.name().to_string(), self.rejected(*r)))
            .collect()
    }
}
