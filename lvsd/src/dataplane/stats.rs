//! What the core reports: drop reasons, counters and snapshots.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use lvs_proto::{Counters, Forwarding, Protocol, Rates, SchedulerKind};

use super::Persistence;
use crate::sched::SchedFlags;
use crate::wire::MacAddr;

/// Why a frame was dropped. Indexes [`DropCounts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// Shorter than a header it must contain (Ethernet, IPv4, TCP/UDP fixed header).
    Truncated,
    /// IPv4 version, IHL or total length invalid; IPv6 version or payload length invalid.
    BadIpHeader,
    /// IPv4 header checksum wrong.
    BadChecksum,
    /// TCP data offset or UDP length invalid.
    BadL4Header,
    /// An IP fragment of a flow we own.
    Fragment,
    /// No connection entry and the packet may not create one (TCP without SYN, a NAT
    /// reply that matches no connection).
    NoConnection,
    /// The scheduler found no destination (all weight 0, or empty service).
    NoDestination,
    /// The next hop's MAC is not known yet.
    NeighbourUnresolved,
    /// The outgoing interface is not in the configuration.
    NoInterface,
    /// The frame exceeds the outgoing MTU (and is not GSO) or the output buffer; or a
    /// UDP GSO super-frame for a tunnelled real server (not segmented).
    TooBig,
    /// TUN: a DF packet that does not fit the egress MTU once encapsulated; answered with
    /// ICMP "fragmentation needed" unless rate-limited.
    NeedFrag,
    /// An IPIP packet to a VIP address (nested tunnels are not decapsulated).
    Tunnelled,
    /// An ICMP error whose quoted datagram is cut short or malformed (less than an IPv4
    /// header and 8 bytes of payload, IHL past the quote, IHL < 5, version ≠ 4).
    IcmpMalformed,
    /// An ICMP error to a VIP or from a NAT real server that quotes no connection.
    IcmpNoConnection,
    /// An ICMP error lvsd cannot relay: it quotes an ICMP message, a protocol other than
    /// TCP/UDP, or a non-first fragment (no ports).
    IcmpUnsupported,
    /// A "fragmentation needed" about a tunnelled packet whose client did not set DF: the
    /// client does no path MTU discovery, so nothing is relayed (as IPVS).
    IcmpNotRelayed,
    /// An error about a tunnelled packet that would have been relayed to the client, over
    /// the ICMP rate limit (`tunnel.rs`: the budget of the core's own ICMP errors).
    IcmpRateLimited,
    /// An IPv6 packet of ours whose extension-header chain is longer than
    /// [`crate::wire::ipv6::MAX_EXT_HEADERS`] or runs past the payload.
    ExtHeaders,
}

impl DropReason {
    /// Number of reasons.
    pub const COUNT: usize = 18;

    /// Every reason, in declaration order (= counter index).
    pub const ALL: [DropReason; DropReason::COUNT] = [
        DropReason::Truncated,
        DropReason::BadIpHeader,
        DropReason::BadChecksum,
        DropReason::BadL4Header,
        DropReason::Fragment,
        DropReason::NoConnection,
        DropReason::NoDestination,
        DropReason::NeighbourUnresolved,
        DropReason::NoInterface,
        DropReason::TooBig,
        DropReason::NeedFrag,
        DropReason::Tunnelled,
        DropReason::IcmpMalformed,
        DropReason::IcmpNoConnection,
        DropReason::IcmpUnsupported,
        DropReason::IcmpNotRelayed,
        DropReason::IcmpRateLimited,
        DropReason::ExtHeaders,
    ];

    /// snake_case name, for metrics and logs.
    pub const fn name(self) -> &'static str {
        match self {
            DropReason::Truncated => "truncated",
            DropReason::BadIpHeader => "bad_ip_header",
            DropReason::BadChecksum => "bad_checksum",
            DropReason::BadL4Header => "bad_l4_header",
            DropReason::Fragment => "fragment",
            DropReason::NoConnection => "no_connection",
            DropReason::NoDestination => "no_destination",
            DropReason::NeighbourUnresolved => "neighbour_unresolved",
            DropReason::NoInterface => "no_interface",
            DropReason::TooBig => "too_big",
            DropReason::NeedFrag => "need_frag",
            DropReason::Tunnelled => "tunnelled",
            DropReason::IcmpMalformed => "icmp_malformed",
            DropReason::IcmpNoConnection => "icmp_no_connection",
            DropReason::IcmpUnsupported => "icmp_unsupported",
            DropReason::IcmpNotRelayed => "icmp_not_relayed",
            DropReason::IcmpRateLimited => "icmp_rate_limited",
            DropReason::ExtHeaders => "ext_headers",
        }
    }
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Drop counters, one per [`DropReason`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DropCounts([u64; DropReason::COUNT]);

impl DropCounts {
    /// Drops for one reason.
    pub fn get(&self, reason: DropReason) -> u64 {
        self.0[reason as usize]
    }

    /// All drops.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// `(reason, count)` for every reason.
    pub fn iter(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL.iter().map(|&r| (r, self.get(r)))
    }

    pub(super) fn bump(&mut self, reason: DropReason) {
        self.0[reason as usize] += 1;
    }
}

impl std::ops::Index<DropReason> for DropCounts {
    type Output = u64;
    fn index(&self, r: DropReason) -> &u64 {
        &self.0[r as usize]
    }
}

/// A real server as reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestStats {
    /// RIP.
    pub addr: IpAddr,
    /// Real port.
    pub port: u16,
    /// Weight.
    pub weight: u32,
    /// Forwarding method.
    pub forwarding: Forwarding,
    /// Active connections (spec b.1).
    pub active: u32,
    /// Inactive connections.
    pub inactive: u32,
    /// Persistence templates (`persistconns`).
    pub persistent: u32,
    /// The OVERLOAD flag: at its upper threshold, no new connections (templates still
    /// lead to it).
    pub overloaded: bool,
    /// Upper connection threshold (0 = none).
    pub upper_threshold: u32,
    /// Lower connection threshold (0 = none).
    pub lower_threshold: u32,
    /// Cumulative counters.
    pub counters: Counters,
    /// Rate estimates (spec b.18).
    pub rates: Rates,
    /// The next hop's MAC, once resolved.
    pub neighbour_mac: Option<MacAddr>,
    /// The configured weight (API edits and dynamic weights included); `weight` is 0
    /// instead while the server is down with `inhibit_on_failure`.
    pub config_weight: u32,
    /// In the scheduling list now.
    pub in_service: bool,
    /// The service's sorry server.
    pub sorry: bool,
    /// Health as the data path applies it, when checked or passively watched.
    pub health: Option<super::DestHealth>,
}

/// A virtual service as reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceStats {
    /// Protocol.
    pub protocol: Protocol,
    /// VIP.
    pub vip: IpAddr,
    /// Virtual port.
    pub port: u16,
    /// Scheduler.
    pub scheduler: SchedulerKind,
    /// Scheduler flags.
    pub scheduler_flags: SchedFlags,
    /// Persistence, if on.
    pub persistence: Option<Persistence>,
    /// One-packet scheduling (UDP).
    pub one_packet: bool,
    /// Cumulative counters.
    pub counters: Counters,
    /// Rate estimates (spec b.18).
    pub rates: Rates,
    /// Real servers in IPVS list order (newest first); removed ones still draining are
    /// not listed.
    pub dests: Vec<DestStats>,
    /// Quorum and sorry-server state, when the service has health checks, passive
    /// detection or a sorry server.
    pub quorum: Option<super::QuorumStatus>,
}

/// A snapshot of every counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Services, in config order.
    pub services: Vec<ServiceStats>,
    /// Frames handed to [`Dataplane::process`].
    pub received: u64,
    /// Frames transmitted.
    pub forwarded: u64,
    /// Frames passed to the kernel.
    pub passed: u64,
    /// Frames dropped, per reason.
    pub dropped: DropCounts,
    /// Connection entries.
    pub conns: usize,
    /// Tracked next hops without a MAC.
    pub unresolved_neighbours: usize,
}

/// One connection entry as reported (ipvsadm `-Lnc`). A persistence template shows client
/// port 0 and state `NONE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfo {
    /// Protocol.
    pub protocol: Protocol,
    /// Client.
    pub client: SocketAddr,
    /// Virtual address and port.
    pub virt: SocketAddr,
    /// Real server (its family may differ from the service's in TUN mode).
    pub real: SocketAddr,
    /// Forwarding method.
    pub forwarding: Forwarding,
    /// State name (`ESTABLISHED`, `UDP`, ...).
    pub state: &'static str,
    /// Counted as active.
    pub active: bool,
    /// A persistence template.
    pub template: bool,
    /// Idle time left.
    pub expires_in: Duration,
}
