//! Shared vocabulary of lvs and the control API of lvsd.
//!
//! - The words that the daemon, the console, the CLI and other programs use for the same
//!   things (protocols, forwarding methods, schedulers, counters), named after ipvsadm and
//!   keepalived so an operator reads the same words everywhere.
//! - The tarpc service [`LvsControl`] ([`api`]), its request and response types
//!   ([`types`]), its error ([`ApiError`]), and the JSON-over-Unix-socket transport with the
//!   connect helper [`connect_unix`] ([`transport`]); the same over TCP with mutual TLS:
//!   [`connect_tls`] ([`tls`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let client = lvs_proto::connect_unix(lvs_proto::DEFAULT_SOCKET).await?;
//! for svc in client.services(tarpc::context::current()).await?? {
//!     println!("{} {}", svc.key(), svc.scheduler);
//! }
//! # Ok(()) }
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub mod api;
pub mod error;
pub mod tls;
pub mod transport;
pub mod types;

pub use api::{LvsControl, LvsControlClient, LvsControlRequest, LvsControlResponse};
pub use error::ApiError;
pub use tarpc;
pub use tls::{TlsConnectError, connect_tls};
pub use transport::{ConnectError, connect_unix};
pub use types::*;

/// The API level this crate speaks: it grows by one whenever RPCs (or enum variants a
/// client must know to decode answers, or values an older client cannot read) are added.
/// Level 4: [`Forwarding::Tun`]. Level 5: IPv6 — every address in the API
/// ([`ServiceKey::vip`], [`RealServerKey::addr`], connections, decisions, topology, VRRP)
/// may be IPv6 (`IpAddr`/`SocketAddr`; IPv4 JSON unchanged), [`IpPrefix`] filters, and
/// [`PersistenceInfo::prefix6`]. A level-4 client decodes everything about IPv4 services
/// but fails on an answer that carries an IPv6 address.
pub const API_LEVEL: u32 = 5;

/// Where lvsd listens unless its configuration says otherwise (`[control] socket`).
pub const DEFAULT_SOCKET: &str = "/run/lvsd/lvsd.sock";

/// Transport protocol of a virtual service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP (ipvsadm `-t`).
    Tcp,
    /// UDP (ipvsadm `-u`).
    Udp,
}

impl Protocol {
    /// The IP protocol number (6 or 17).
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
        }
    }

    /// The upper-case name ipvsadm prints (`TCP`, `UDP`).
    pub fn ipvsadm_name(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// How packets reach a real server (IPVS "packet forwarding method").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Forwarding {
    /// Masquerading (ipvsadm `-m`): destination rewritten to RIP:port, replies rewritten back.
    Nat,
    /// Direct routing / gatewaying (ipvsadm `-g`, the ipvsadm default): only MACs rewritten.
    Dr,
    /// Tunnelling (ipvsadm `-i`): the packet is wrapped in IPIP (outer source = the
    /// director's address towards the real server, outer destination = RIP); replies go
    /// straight to the client. API level 4: older peers do not know `"tun"`.
    Tun,
}

impl Forwarding {
    /// The word in ipvsadm's `Forward` column (`Masq`, `Route`).
    pub fn ipvsadm_name(self) -> &'static str {
        match self {
            Forwarding::Nat => "Masq",
            Forwarding::Dr => "Route",
            Forwarding::Tun => "Tunnel",
        }
    }
}

impl fmt::Display for Forwarding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Forwarding::Nat => "nat",
            Forwarding::Dr => "dr",
            Forwarding::Tun => "tun",
        })
    }
}

/// An IPVS scheduler, by its ipvsadm name (every scheduler the Linux kernel ships).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchedulerKind {
    /// Round robin.
    Rr,
    /// Weighted round robin.
    Wrr,
    /// Least connection.
    Lc,
    /// Weighted least connection (the ipvsadm default).
    Wlc,
    /// Shortest expected delay.
    Sed,
    /// Never queue.
    Nq,
    /// Locality-based least connection.
    Lblc,
    /// Locality-based least connection with replication.
    Lblcr,
    /// Destination hashing.
    Dh,
    /// Source hashing.
    Sh,
    /// Maglev hashing.
    Mh,
    /// Weighted failover.
    Fo,
    /// Weighted overflow.
    Ovf,
    /// Power of two choices.
    Twos,
}

impl SchedulerKind {
    /// Every IPVS scheduler, in ipvsadm's spelling (the order of `ipvsadm(8)`'s list,
    /// then the newer ones).
    pub const ALL: &'static [SchedulerKind] = &[
        SchedulerKind::Rr,
        SchedulerKind::Wrr,
        SchedulerKind::Lc,
        SchedulerKind::Wlc,
        SchedulerKind::Lblc,
        SchedulerKind::Lblcr,
        SchedulerKind::Dh,
        SchedulerKind::Sh,
        SchedulerKind::Sed,
        SchedulerKind::Nq,
        SchedulerKind::Fo,
        SchedulerKind::Ovf,
        SchedulerKind::Mh,
        SchedulerKind::Twos,
    ];

    /// The ipvsadm name (`rr`, `wrr`, `wlc`, ...).
    pub fn name(self) -> &'static str {
        match self {
            SchedulerKind::Rr => "rr",
            SchedulerKind::Wrr => "wrr",
            SchedulerKind::Lc => "lc",
            SchedulerKind::Wlc => "wlc",
            SchedulerKind::Sed => "sed",
            SchedulerKind::Nq => "nq",
            SchedulerKind::Lblc => "lblc",
            SchedulerKind::Lblcr => "lblcr",
            SchedulerKind::Dh => "dh",
            SchedulerKind::Sh => "sh",
            SchedulerKind::Mh => "mh",
            SchedulerKind::Fo => "fo",
            SchedulerKind::Ovf => "ovf",
            SchedulerKind::Twos => "twos",
        }
    }
}

impl fmt::Display for SchedulerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SchedulerKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SchedulerKind::ALL
            .iter()
            .copied()
            .find(|k| k.name() == s)
            .ok_or_else(|| format!("unknown scheduler `{s}`"))
    }
}

/// Cumulative counters of a service or a real server, as ipvsadm `--stats` shows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Connections scheduled.
    pub conns: u64,
    /// Packets from clients (towards real servers).
    pub inpkts: u64,
    /// Packets from real servers (towards clients); stays 0 for DR.
    pub outpkts: u64,
    /// Bytes from clients, counting IP headers and payload.
    pub inbytes: u64,
    /// Bytes from real servers.
    pub outbytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduler_names_round_trip() {
        for k in SchedulerKind::ALL {
            assert_eq!(k.name().parse::<SchedulerKind>(), Ok(*k));
        }
        assert!("lblcx".parse::<SchedulerKind>().is_err());
        assert!("WLC".parse::<SchedulerKind>().is_err());
        assert_eq!(SchedulerKind::ALL.len(), 14);
    }

    #[test]
    fn scheduler_deserializes_from_its_lowercase_name() {
        use serde::de::IntoDeserializer;
        use serde::de::value::{Error, StrDeserializer};
        for &k in SchedulerKind::ALL {
            let de: StrDeserializer<'_, Error> = k.name().into_deserializer();
            assert_eq!(SchedulerKind::deserialize(de), Ok(k));
        }
        let de: StrDeserializer<'_, Error> = "Twos".into_deserializer();
        assert!(SchedulerKind::deserialize(de).is_err());
    }

    #[test]
    fn ipvsadm_words() {
        assert_eq!(Forwarding::Nat.ipvsadm_name(), "Masq");
        assert_eq!(Forwarding::Dr.ipvsadm_name(), "Route");
        assert_eq!(Forwarding::Tun.ipvsadm_name(), "Tunnel");
        assert_eq!(Protocol::Udp.ipvsadm_name(), "UDP");
        assert_eq!(Protocol::Tcp.number(), 6);
    }
}
