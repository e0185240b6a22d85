//! The two address families the data path forwards, and the connection tables of both.
//!
//! The forwarding functions (`inbound`, `reply`, `decide`, ...) are generic over
//! [`Family`], so IPv4 and IPv6 take the same code, monomorphized: the IPv4 path pays
//! nothing for IPv6 (its table, keys and entries stay the compact IPv4 ones).
//!
//! Invariants:
//! - A connection lives in the table of its service's family: client and VIP always have
//!   the service's family (IPVS: `svc->af`). Its real server may have the other family
//!   only in TUN mode (IPVS allows `dest->af != svc->af` for tunnels only); such an entry
//!   stores the unspecified address as its real address, and readers take the real
//!   server's address from its destination ([`super::Dataplane::real_of`]).
//! - Connection ids ([`crate::conn::table::ConnId`]) are per table: an id is only ever looked up in the table
//!   that issued it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use crate::conn::table::{ConnAddr, ConnTable};

use lvs_proto::Protocol;

use super::Persistence;
use super::icmp::{self, Way};
use super::icmp6;
use super::rewrite::{self, Side};

/// The connection tables of both families.
#[derive(Debug)]
pub(super) struct Tables {
    pub v4: ConnTable<Ipv4Addr>,
    pub v6: ConnTable<Ipv6Addr>,
}

impl Tables {
    pub fn new(now: Instant) -> Self {
        Tables {
            v4: ConnTable::new(now),
            v6: ConnTable::new(now),
        }
    }

    /// Entries in both tables.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// The earlier of the two tables' next sweeps.
    pub fn next_sweep(&self) -> Option<Instant> {
        match (self.v4.next_sweep(), self.v6.next_sweep()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// An address family of the data path.
pub(super) trait Family: ConnAddr + Into<IpAddr> {
    /// IPv6 (else IPv4).
    const V6: bool;
    /// Its connection table.
    fn table(t: &Tables) -> &ConnTable<Self>;
    /// Its connection table, mutably.
    fn table_mut(t: &mut Tables) -> &mut ConnTable<Self>;
    /// `ip` if it has this family.
    fn of(ip: IpAddr) -> Option<Self>;
    /// The client address a persistence template is keyed by: `self` masked with the
    /// service's netmask (IPv4) or prefix (IPv6).
    fn masked(self, p: &Persistence) -> Self;
    /// With a port.
    fn sock(self, port: u16) -> SocketAddr {
        SocketAddr::new(self.into(), port)
    }
    /// NAT: rewrites one side of the TCP/UDP packet in `frame` to `to` (`rewrite.rs`);
    /// its L4 header is `l4_at` bytes into the IP packet.
    fn nat(
        frame: &mut [u8],
        protocol: Protocol,
        side: Side,
        to: (Self, u16),
        csum_partial: bool,
        l4_at: usize,
    );
    /// NAT of an ICMP error (`icmp.rs` / `icmp6.rs`): outer and quoted header rewritten
    /// for `way`, checksums fixed; the ICMP message is `icmp_at` bytes into the IP packet.
    /// `None`: not the checked error it should be.
    fn nat_icmp(frame: &mut [u8], icmp_at: usize, way: Way, to: (Self, u16)) -> Option<()>;
}

impl Family for Ipv4Addr {
    const V6: bool = false;
    #[inline]
    fn table(t: &Tables) -> &ConnTable<Self> {
        &t.v4
    }
    #[inline]
    fn table_mut(t: &mut Tables) -> &mut ConnTable<Self> {
        &mut t.v4
    }
    #[inline]
    fn of(ip: IpAddr) -> Option<Self> {
        match ip {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        }
    }
    fn masked(self, p: &Persistence) -> Self {
        Ipv4Addr::from(u32::from(self) & u32::from(p.netmask))
    }
    #[inline]
    fn nat(
        frame: &mut [u8],
        protocol: Protocol,
        side: Side,
        (addr, port): (Self, u16),
        csum_partial: bool,
        _l4_at: usize,
    ) {
        // The IPv4 rewrite finds the L4 header from the IHL itself.
        rewrite::nat(frame, protocol, side, addr, port, csum_partial);
    }
    #[inline]
    fn nat_icmp(
        frame: &mut [u8],
        _icmp_at: usize,
        way: Way,
        (addr, port): (Self, u16),
    ) -> Option<()> {
        // The IPv4 translation finds the ICMP message from the IHL itself.
        icmp::nat_icmp(frame, way, addr, port)
    }
}

impl Family for Ipv6Addr {
    const V6: bool = true;
    #[inline]
    fn table(t: &Tables) -> &ConnTable<Self> {
        &t.v6
    }
    #[inline]
    fn table_mut(t: &mut Tables) -> &mut ConnTable<Self> {
        &mut t.v6
    }
    #[inline]
    fn of(ip: IpAddr) -> Option<Self> {
        match ip {
            IpAddr::V6(a) => Some(a),
            IpAddr::V4(_) => None,
        }
    }
    fn masked(self, p: &Persistence) -> Self {
        let len = u32::from(p.prefix6.min(128));
        let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
        Ipv6Addr::from(u128::from(self) & mask)
    }
    #[inline]
    fn nat(
        frame: &mut [u8],
        protocol: Protocol,
        side: Side,
        to: (Self, u16),
        csum_partial: bool,
        l4_at: usize,
    ) {
        rewrite::nat6(frame, protocol, side, to, csum_partial, l4_at);
    }
    #[inline]
    fn nat_icmp(frame: &mut [u8], icmp_at: usize, way: Way, to: (Self, u16)) -> Option<()> {
        icmp6::nat_icmp6(frame, icmp_at, way, to)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn persistence(netmask: Ipv4Addr, prefix6: u8) -> Persistence {
        Persistence {
            timeout: Duration::from_secs(300),
            netmask,
            prefix6,
            quiescent_template_expire: false,
        }
    }

    #[test]
    fn masks() {
        let p = persistence(Ipv4Addr::new(255, 255, 255, 0), 64);
        assert_eq!(
            Ipv4Addr::new(198, 51, 100, 77).masked(&p),
            Ipv4Addr::new(198, 51, 100, 0)
        );
        let a: Ipv6Addr = "2001:db8:c::1234:5678".parse().unwrap();
        assert_eq!(a.masked(&p), "2001:db8:c::".parse::<Ipv6Addr>().unwrap());
        let all = persistence(Ipv4Addr::BROADCAST, 128);
        assert_eq!(a.masked(&all), a);
        let none = persistence(Ipv4Addr::UNSPECIFIED, 0);
        assert_eq!(a.masked(&none), Ipv6Addr::UNSPECIFIED);
        assert_eq!(Ipv6Addr::of(IpAddr::V4(Ipv4Addr::LOCALHOST)), None);
    }
}
