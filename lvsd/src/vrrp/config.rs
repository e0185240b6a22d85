//! One VRRP instance's settings (the future `[[vrrp_instance]]` table) and their checks.
//!
//! [`InstanceConfig::validate`] refuses what the issue lists as bad input: VRID 0,
//! priority 0 (reserved for "resigning", RFC 9568 §5.2.4), an interval outside the
//! version's range (v2: whole seconds 1..=255, RFC 3768 §5.3.7; v3: 10 ms steps up to
//! 40.95 s, RFC 9568 §5.2.7), no or too many virtual addresses, VRRPv2 over IPv6
//! (RFC 3768 is IPv4 only) and IPv4 and IPv6 virtual addresses in one instance
//! (keepalived ≥ 1.2.20 refuses that too: an advert carries one family).
//!
//! An instance is IPv4 (the `primary_address` / `virtual_addresses` / `unicast_peers`
//! fields) or IPv6 ([`InstanceConfig::ipv6`] set, the IPv4 lists empty), never both.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::time::Duration;

use lvs_proto::Ipv4Prefix;

use crate::wire::vrrp::{V3_MAX_ADVER_INT, Version};

/// An IPv6 virtual address and its prefix length (`2001:db8:f::10/64`; a bare address
/// is /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv6Prefix {
    /// The address.
    pub addr: Ipv6Addr,
    /// Prefix length, 0..=128.
    pub len: u8,
}

impl From<Ipv6Prefix> for lvs_proto::IpPrefix {
    fn from(p: Ipv6Prefix) -> Self {
        lvs_proto::IpPrefix {
            addr: std::net::IpAddr::V6(p.addr),
            len: p.len,
        }
    }
}

impl fmt::Display for Ipv6Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Ipv6Prefix {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (a, len) = match s.split_once('/') {
            Some((a, l)) => {
                let len = l
                    .parse::<u8>()
                    .ok()
                    .filter(|l| *l <= 128)
                    .ok_or_else(|| format!("`{l}` is not a prefix length 0..=128"))?;
                (a, len)
            }
            None => (s, 128),
        };
        let addr = a
            .parse::<Ipv6Addr>()
            .map_err(|_| format!("`{a}` is not an IPv6 address"))?;
        Ok(Ipv6Prefix { addr, len })
    }
}

/// The addresses of an IPv6 instance (VRRPv3 over IPv6, RFC 9568 §5.1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv6Addresses {
    /// The advert source and tie-breaker: the interface's link-local address (RFC 9568
    /// §5.1.2.1), or `unicast_src`.
    pub primary_address: Ipv6Addr,
    /// The virtual addresses (advertised in this order).
    pub virtual_addresses: Vec<Ipv6Prefix>,
    /// Unicast peers; empty = multicast to ff02::12.
    pub unicast_peers: Vec<Ipv6Addr>,
}

/// Which checksum v3 adverts over IPv4 carry (and must carry to be accepted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum V3Checksum {
    /// The VRRP message alone, as RFC 9568 §5.2.8 specifies for IPv4 (Cisco, Arista EOS;
    /// keepalived with `v3_checksum_as_v2`).
    Rfc9568,
    /// With an IPv4 pseudo-header in front, the RFC 5798 reading: keepalived's default
    /// (without `v3_checksum_as_v2`), FRR's `checksum-with-ipv4-pseudoheader` (always on
    /// in FRR before 8.5, e.g. Cumulus). The default: lvsd replaces keepalived pairs one
    /// director at a time, and a flavour mismatch means each side drops the other's
    /// adverts — two masters — so the default matches what a stock keepalived sends
    /// (the issue's `v3_checksum_as_v2 = false`).
    #[default]
    PseudoHeader,
}

impl V3Checksum {
    /// The flavour a keepalived peer sends, from its `v3_checksum_as_v2` setting (absent
    /// = false = pseudo-header).
    pub const fn from_keepalived(v3_checksum_as_v2: bool) -> Self {
        if v3_checksum_as_v2 {
            V3Checksum::Rfc9568
        } else {
            V3Checksum::PseudoHeader
        }
    }
}

/// What a received advert must pass beyond the RFC's fixed checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AcceptConfig {
    /// v3 over IPv4: the checksum flavour sent and required. A peer computing the other
    /// one is dropped (`checksum_err`) and both routers become master, so it must match
    /// the peers' (keepalived #1175, netlab #1823).
    pub v3_checksum: V3Checksum,
    /// Unicast only: the TTL a peer's advert must arrive with; `None` = not checked
    /// (keepalived's default for unicast, since a routed peer cannot keep 255: #941).
    /// Multicast adverts must always arrive with TTL 255 (RFC 9568 §7.1).
    pub unicast_ttl: Option<u8>,
}

/// Gratuitous ARP timing (keepalived's `garp_*` options, same defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GarpConfig {
    /// GARPs per VIP sent on becoming master (`garp_master_repeat`, default 5).
    pub master_repeat: u32,
    /// A second round this long after becoming master; zero = none
    /// (`garp_master_delay`, default 5 s).
    pub master_delay: Duration,
    /// Periodic GARP while master; `None` = off (`garp_master_refresh`, default off).
    pub master_refresh: Option<Duration>,
    /// GARPs per VIP at each refresh (`garp_master_refresh_repeat`, default 1).
    pub master_refresh_repeat: u32,
    /// GARPs per VIP when a master hears a lower-priority advert (the split-brain heal,
    /// `garp_lower_prio_repeat`; default: as `master_repeat`).
    pub lower_prio_repeat: u32,
}

impl Default for GarpConfig {
    fn default() -> Self {
        GarpConfig {
            master_repeat: 5,
            master_delay: Duration::from_secs(5),
            master_refresh: None,
            master_refresh_repeat: 1,
            lower_prio_repeat: 5,
        }
    }
}

/// One `vrrp_instance`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceConfig {
    /// Name (`VI_1`), unique per director.
    pub name: String,
    /// The interface adverts go out of and the VIPs live on.
    pub interface: String,
    /// Virtual Router Identifier, 1..=255 (RFC 9568 §5.2.3).
    pub vrid: u8,
    /// Priority, 1..=255; 255 = address owner (RFC 9568 §5.2.4, §6.1).
    pub priority: u8,
    /// Protocol version.
    pub version: Version,
    /// Advertisement_Interval (RFC 9568 §6.1): v2 whole seconds, v3 10 ms steps.
    pub advert_interval: Duration,
    /// Preempt_Mode (RFC 9568 §6.1; false = keepalived `nopreempt`). The owner always
    /// preempts.
    pub preempt: bool,
    /// keepalived `preempt_delay`: a backup that could preempt waits this long after it
    /// first hears the lower-priority master.
    pub preempt_delay: Duration,
    /// The virtual addresses (advertised in this order).
    pub virtual_addresses: Vec<Ipv4Prefix>,
    /// Our primary address on the interface: the advert source and the tie-breaker
    /// (RFC 9568 §6.4.3).
    pub primary_address: Ipv4Addr,
    /// Unicast peers; empty = multicast to 224.0.0.18. When set, adverts from any other
    /// source are dropped.
    pub unicast_peers: Vec<Ipv4Addr>,
    /// More interfaces whose loss puts the instance into FAULT (its own always counts).
    pub track_interfaces: Vec<String>,
    /// Receive checks.
    pub accept: AcceptConfig,
    /// Gratuitous ARP timing.
    pub garp: GarpConfig,
    /// keepalived `lower_prio_no_advert`: a master hearing a lower priority does not
    /// answer with an advert (it still sends GARP).
    pub lower_prio_no_advert: bool,
    /// keepalived `higher_prio_send_advert`: a master hearing a higher priority sends one
    /// advert of its own before it steps down, so that the winner learns there was a
    /// second master and re-sends GARP. Default true here (keepalived: false), so every
    /// healed split brain ends with the winner's GARP.
    pub higher_prio_send_advert: bool,
    /// v2 Auth Type sent and required (RFC 3768 §5.3.6: 0 = none; 1 and 2 are only
    /// compared, never computed).
    pub auth_type: u8,
    /// `Some` = an IPv6 instance: these addresses replace the IPv4 fields above, which
    /// stay empty (module doc).
    pub ipv6: Option<Ipv6Addresses>,
}

impl InstanceConfig {
    /// A config with keepalived's defaults: v3, 1 s, preempt on, no delay, multicast.
    pub fn new(
        name: impl Into<String>,
        interface: impl Into<String>,
        vrid: u8,
        priority: u8,
        primary_address: Ipv4Addr,
        virtual_addresses: Vec<Ipv4Prefix>,
    ) -> Self {
        InstanceConfig {
            name: name.into(),
            interface: interface.into(),
            vrid,
            priority,
            version: Version::V3,
            advert_interval: Duration::from_secs(1),
            preempt: true,
            preempt_delay: Duration::ZERO,
            virtual_addresses,
            primary_address,
            unicast_peers: Vec::new(),
            track_interfaces: Vec::new(),
            accept: AcceptConfig::default(),
            garp: GarpConfig::default(),
            lower_prio_no_advert: false,
            higher_prio_send_advert: true,
            auth_type: 0,
            ipv6: None,
        }
    }

    /// An IPv6 instance (VRRPv3) with keepalived's defaults; `primary_address` is the
    /// interface's link-local address.
    pub fn new_v6(
        name: impl Into<String>,
        interface: impl Into<String>,
        vrid: u8,
        priority: u8,
        primary_address: Ipv6Addr,
        virtual_addresses: Vec<Ipv6Prefix>,
    ) -> Self {
        let mut c = Self::new(
            name,
            interface,
            vrid,
            priority,
            Ipv4Addr::UNSPECIFIED,
            Vec::new(),
        );
        c.ipv6 = Some(Ipv6Addresses {
            primary_address,
            virtual_addresses,
            unicast_peers: Vec::new(),
        });
        c
    }

    /// Whether this is an IPv6 instance.
    pub fn is_ipv6(&self) -> bool {
        self.ipv6.is_some()
    }

    /// The primary address of the instance's family.
    pub fn primary(&self) -> IpAddr {
        match &self.ipv6 {
            Some(v6) => IpAddr::V6(v6.primary_address),
            None => IpAddr::V4(self.primary_address),
        }
    }

    /// The virtual addresses (without prefix), in advert order.
    pub fn vip_addrs(&self) -> Vec<IpAddr> {
        match &self.ipv6 {
            Some(v6) => v6
                .virtual_addresses
                .iter()
                .map(|p| IpAddr::V6(p.addr))
                .collect(),
            None => self
                .virtual_addresses
                .iter()
                .map(|p| IpAddr::V4(p.addr))
                .collect(),
        }
    }

    /// The unicast peers of the instance's family.
    pub fn peers(&self) -> Vec<IpAddr> {
        match &self.ipv6 {
            Some(v6) => v6.unicast_peers.iter().map(|&a| IpAddr::V6(a)).collect(),
            None => self.unicast_peers.iter().map(|&a| IpAddr::V4(a)).collect(),
        }
    }

    /// Refuses settings no router could run with (module doc).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let name = || self.name.clone();
        if self.vrid == 0 {
            return Err(ConfigError::Vrid(name()));
        }
        if self.priority == 0 {
            return Err(ConfigError::Priority(name()));
        }
        let i = self.advert_interval;
        let ok = match self.version {
            Version::V2 => i.subsec_nanos() == 0 && (1..=u64::from(u8::MAX)).contains(&i.as_secs()),
            Version::V3 => {
                i.as_nanos() % 10_000_000 == 0
                    && i >= Duration::from_millis(10)
                    && i <= Duration::from_millis(u64::from(V3_MAX_ADVER_INT) * 10)
            }
        };
        if !ok {
            return Err(ConfigError::Interval {
                instance: name(),
                version: self.version.number(),
                interval: i,
            });
        }
        let count = match &self.ipv6 {
            Some(v6) => {
                if self.version == Version::V2 {
                    return Err(ConfigError::V2OverIpv6(name()));
                }
                if !self.virtual_addresses.is_empty() || !self.unicast_peers.is_empty() {
                    return Err(ConfigError::MixedFamilies(name()));
                }
                v6.virtual_addresses.len()
            }
            None => self.virtual_addresses.len(),
        };
        if count == 0 || count > 255 {
            return Err(ConfigError::Addresses(name()));
        }
        Ok(())
    }

    /// Whether this router is the address owner (priority 255, RFC 9568 §6.1).
    pub fn is_owner(&self) -> bool {
        self.priority == 255
    }

    /// Whether adverts go to unicast peers rather than 224.0.0.18 / ff02::12.
    pub fn is_unicast(&self) -> bool {
        match &self.ipv6 {
            Some(v6) => !v6.unicast_peers.is_empty(),
            None => !self.unicast_peers.is_empty(),
        }
    }

    /// The interval field as sent: v2 seconds, v3 centiseconds.
    pub fn adver_int_field(&self) -> u16 {
        match self.version {
            Version::V2 => u16::try_from(self.advert_interval.as_secs()).unwrap_or(u16::MAX),
            Version::V3 => {
                u16::try_from(self.advert_interval.as_millis() / 10).unwrap_or(V3_MAX_ADVER_INT)
            }
        }
    }
}

/// A sync group: instances that change state together (keepalived `vrrp_sync_group`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncGroupConfig {
    /// Name (`VG_1`).
    pub name: String,
    /// Member instance names.
    pub members: Vec<String>,
}

/// A refused configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// VRID 0.
    #[error("vrrp_instance {0}: virtual_router_id must be 1..=255")]
    Vrid(String),
    /// Priority 0.
    #[error("vrrp_instance {0}: priority must be 1..=255 (0 is reserved for resigning)")]
    Priority(String),
    /// Interval outside the version's range.
    #[error(
        "vrrp_instance {instance}: advert_interval {interval:?} invalid for version {version} \
         (v2: whole seconds 1..=255; v3: 10 ms steps, 10 ms..=40.95 s)"
    )]
    Interval {
        /// Instance.
        instance: String,
        /// Version number.
        version: u8,
        /// The interval.
        interval: Duration,
    },
    /// No virtual address, or more than one advert can carry.
    #[error("vrrp_instance {0}: virtual_ipaddress needs 1..=255 addresses")]
    Addresses(String),
    /// VRRPv2 with IPv6 addresses (RFC 3768 is IPv4 only).
    #[error("vrrp_instance {0}: IPv6 needs version 3 (VRRPv2 is IPv4 only)")]
    V2OverIpv6(String),
    /// IPv4 and IPv6 addresses in one instance.
    #[error("vrrp_instance {0}: IPv4 and IPv6 addresses cannot be mixed in one instance")]
    MixedFamilies(String),
    /// Two instances with one name, or one VRID twice on an interface.
    #[error("vrrp_instance {0}: duplicate name, or VRID already used on its interface")]
    Duplicate(String),
    /// A sync group names an unknown instance, or an instance is in two groups.
    #[error("vrrp_sync_group {group}: member {member} unknown or already in a group")]
    SyncMember {
        /// Group.
        group: String,
        /// Member.
        member: String,
    },
}
