//! VRRP failover between directors: a sans-I/O core (RFC 9568 VRRPv3 over IPv4 and IPv6,
//! RFC 3768 VRRPv2 over IPv4), a deterministic simulator, and the daemon's driver ([`driver`], the I/O shell:
//! sockets, netlink, GARP, notify scripts, on its own thread). Operator docs: docs/vrrp.md.
//!
//! # Shape
//! - [`Instance`]: one `vrrp_instance`, the RFC 9568 §6.4 state machine
//!   (Init / Backup / Master / Fault, keepalived's names for RFC 9568's
//!   Initialize / Backup / Active). Inputs are `start`, `stop`, `handle_packet` /
//!   `handle_advert`, `set_link` and `handle_timeout`, each with `now` passed in; outputs
//!   are [`Action`]s pushed onto a caller-owned `Vec`. [`Instance::poll_timeout`] says when
//!   to call `handle_timeout` next (like `Dataplane::poll_timeout`).
//! - [`Router`]: every instance of a director, the VRID demultiplexer and the sync groups
//!   (instances that move together, keepalived `vrrp_sync_group`).
//! - [`sim`]: N routers on a simulated segment with a seeded PRNG (loss, delay,
//!   partitions, freezes, kills, graceful stops) that runs the real code path, bytes
//!   included, in microseconds of CPU per simulated second.
//!
//! # Invariants
//! - No clock reads, no sleeping, no sockets, no `unsafe`. Same inputs → same outputs.
//! - VIPs are held exactly while an instance is `Master`; every entry into Master emits
//!   `AddVips` (then an advert and a GARP round), every exit emits `RemoveVips`. A backup
//!   holds no VIP and must forward nothing, so DR/TUN traffic can never loop between
//!   directors.
//! - Untrusted bytes are read only through `wire::vrrp::VrrpPacket::new_checked`; no
//!   `unwrap`/`expect` on packet data. Every receive check of RFC 9568 §7.1 / RFC 3768
//!   §7.1 has its own counter ([`Reject`]) and a dropped packet changes no state (the one
//!   side effect: an owner conflict lowers our priority to 254, as keepalived does).
//! - Timers: Master_Down_Interval = 3 × Master_Adver_Interval + Skew_Time, Skew_Time
//!   `(256 − prio)/256 s` (v2) or `(256 − prio) × Master_Adver_Interval / 256` (v3);
//!   a v3 backup adopts the master's interval; priority 0 sets the down timer to
//!   Skew_Time; a master hearing priority 0 advertises at once.
//! - Checksums: v3 over IPv4 defaults to [`V3Checksum::PseudoHeader`], the RFC 5798
//!   reading that a stock keepalived sends (its `v3_checksum_as_v2` unset), so lvsd can
//!   replace one director of a keepalived pair at a time; [`V3Checksum::Rfc9568`] is the
//!   message alone, as RFC 9568 §5.2.8 specifies for IPv4. Peers must agree, or each drops
//!   the other's adverts and both become master.
//! - Healing (keepalived #166/#1528): a master hearing a lower priority (or an equal one
//!   from a lower address) re-advertises and re-sends GARP; a master stepping down for a
//!   higher priority first sends one advert (`higher_prio_send_advert`, on by default),
//!   so the winner of every healed split brain re-sends GARP.
//!
//! # How the daemon drives it ([`driver`])
//! - Socket: one raw `AF_INET`/`SOCK_RAW`/protocol 112 socket per VRRP interface
//!   (`io::VrrpSocket`), bound to it (`SO_BINDTODEVICE`), joined to 224.0.0.18,
//!   `IP_MULTICAST_LOOP` off, `IP_HDRINCL` (the driver writes the IPv4 header: source =
//!   the primary address, TTL 255). Received packets go to `Router::handle_packet`.
//! - Loop ("lvsd-vrrp" thread): `poll` on the sockets, a netlink `RTMGRP_LINK` socket
//!   (`kernel::LinkWatch`, re-read at least every second) and a stop fd, with the
//!   timeout from `Router::poll_timeout`; then `handle_timeout(now)`; actions in order.
//!   Adverts never wait behind health checks, the control plane or the forwarding loop.
//! - `AddVips` / `RemoveVips`: netlink `RTM_NEWADDR` / `RTM_DELADDR` (the instance's
//!   prefix), and a `Held` note to the forwarding thread, which re-gates its socket
//!   filters: only held VIPs are read from the wire, so a backup forwards nothing. With
//!   any `[[vrrp_instance]]`, lvsd's startup adds no VIP. `SendGarp{repeat}`: `repeat`
//!   ARP requests per VIP (sender = target = VIP) from the interface MAC, back to back
//!   (keepalived's default `garp_interval` 0). `Transition`: an
//!   `EventKind::VrrpTransition` event and the notify script.
//! - Shutdown (SIGTERM) → `Router::stop` (priority-0 adverts, VIPs removed), then exit.

//! # IPv6
//! An instance is IPv4 or IPv6, never both (`InstanceConfig::ipv6`; keepalived's rule).
//! An IPv6 instance sends and accepts VRRPv3 over IPv6 only: ff02::12 (or its unicast
//! peers), its link-local primary address as source and tie-breaker, hop limit 255
//! required on receipt, the IPv6 pseudo-header checksum always; it emits `AddVips6` /
//! `RemoveVips6`, and its `SendGarp` means unsolicited Neighbor Advertisements. The
//! [`Router`] demultiplexes by interface, VRID and family (an IPv4 and an IPv6 instance
//! may share a VRID). VRRPv2 over IPv6 is a configuration error.
//!
//! # Not done yet
//! keepalived's `vrrp_startup_delay`,
//! `track_script` and initial `state MASTER`; a reload does not change running instances
//! (VRRP settings are read at startup); the failover benchmark against keepalived.
//!
//! # Deviations, on purpose
//! - No virtual MAC (RFC 9568 §7.2 sends adverts from 00-00-5E-00-01-{VRID}, IPv6
//!   00-00-5E-00-02-{VRID}; `wire::vrrp::virtual_mac`): like keepalived without
//!   `use_vmac`, adverts, GARPs and NAs use the interface MAC, and the GARPs / NAs move
//!   the VIPs.
//! - An owner processes non-255 adverts (RFC 9568 §7.1 would discard them all) so it
//!   answers priority 0 at once and heals a second master; nothing can demote it.
//! - v2 adverts always carry the 8 bytes of authentication data (RFC 3768 §5.1); auth
//!   types 1 and 2 are only compared, never computed.

mod config;
mod counters;
pub mod driver;
mod instance;
mod router;
pub mod sim;

#[cfg(test)]
mod sim_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests6;

use std::fmt;
use std::net::IpAddr;

use lvs_proto::{Ipv4Prefix, VrrpState};

pub use config::{
    AcceptConfig, ConfigError, GarpConfig, InstanceConfig, Ipv6Addresses, Ipv6Prefix,
    SyncGroupConfig, V3Checksum,
};
pub use counters::{Counters, Reject};
pub use instance::{Instance, Received};
pub use router::{InstanceId, Router};

/// What the caller must do, in order, after feeding an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send one advert with this priority to every [`Instance::destinations`] address
    /// (build it with [`Instance::emit_advert`]). Priority 0 = resigning.
    SendAdvert {
        /// Priority to advertise.
        priority: u8,
    },
    /// Add these addresses to the instance's interface and start forwarding for them.
    AddVips(Vec<Ipv4Prefix>),
    /// Stop forwarding for these addresses and remove them from the interface.
    RemoveVips(Vec<Ipv4Prefix>),
    /// An IPv6 instance's `AddVips`: add these (no duplicate address detection) and
    /// start forwarding for them.
    AddVips6(Vec<Ipv6Prefix>),
    /// An IPv6 instance's `RemoveVips`.
    RemoveVips6(Vec<Ipv6Prefix>),
    /// Send `repeat` gratuitous ARPs (IPv4) or unsolicited Neighbor Advertisements
    /// (IPv6, Router and Override set; RFC 9568 §6.4.2, RFC 4861 §7.2.6) for each VIP
    /// (keepalived's `garp_*` repeat counts).
    SendGarp {
        /// GARPs per VIP.
        repeat: u32,
    },
    /// The state changed (one `EventKind::VrrpTransition`).
    Transition {
        /// Before.
        from: VrrpState,
        /// After.
        to: VrrpState,
        /// Why.
        reason: Reason,
    },
}

/// Why a transition happened. Displays as the event text the console shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// Started as a non-owner (RFC 9568 §6.4.1).
    Startup,
    /// Started as the address owner, priority 255 (RFC 9568 §6.4.1).
    Owner,
    /// The master-down timer expired (RFC 9568 §6.4.2).
    MasterDown,
    /// The master resigned with a priority-0 advert and Skew_Time passed
    /// (RFC 9568 §6.4.2).
    PriorityZero {
        /// The resigning master.
        from: IpAddr,
    },
    /// preempt_delay ran out with a lower-priority master still in place.
    PreemptDelay {
        /// That master.
        master: IpAddr,
        /// Its priority.
        priority: u8,
    },
    /// A master heard a higher priority, or an equal one from a higher address
    /// (RFC 9568 §6.4.3).
    HigherPriority {
        /// The sender.
        from: IpAddr,
        /// Its priority.
        priority: u8,
    },
    /// A tracked interface went down.
    InterfaceDown(String),
    /// The last tracked interface came back.
    InterfaceUp(String),
    /// Graceful stop.
    Shutdown,
    /// Moved with its sync group.
    SyncGroup {
        /// The group.
        group: String,
        /// The member that moved first.
        instance: String,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Startup => f.write_str("startup"),
            Reason::Owner => f.write_str("address owner (priority 255)"),
            Reason::MasterDown => f.write_str("master down timer expired"),
            Reason::PriorityZero { from } => write!(f, "priority 0 advert from {from}"),
            Reason::PreemptDelay { master, priority } => write!(
                f,
                "preempt delay expired (master {master} priority {priority})"
            ),
            Reason::HigherPriority { from, priority } => {
                write!(
                    f,
                    "higher priority advert from {from} (priority {priority})"
                )
            }
            Reason::InterfaceDown(i) => write!(f, "interface {i} down"),
            Reason::InterfaceUp(i) => write!(f, "interface {i} up"),
            Reason::Shutdown => f.write_str("shutdown"),
            Reason::SyncGroup { group, instance } => {
                write!(f, "sync group {group} follows {instance}")
            }
        }
    }
}
