//! What the control plane may do to a running core, besides [`Dataplane::reconfigure`]:
//! narrow runtime edits (a weight), zeroing counters, the rate estimators' tick, and paged
//! reads of the connection table.
//!
//! Invariants:
//! - [`Dataplane::set_weight`] is the weight part of an ipvsadm `-e`: the destination stays
//!   where it is in its list with its connections, counters and OVERLOAD flag; the
//!   scheduler hears of it (`ListChange::Edited`) only if the weight really changed, as in
//!   [`Dataplane::reconfigure`]; `last_weight` follows every non-zero weight (spec b.1). The
//!   next packet already sees it.
//! - [`Dataplane::zero_counters`] zeroes cumulative counters and restarts the estimators
//!   (kernel `ip_vs_zero_stats`); connection counts (`active`, ...) are state, not counters,
//!   and stay.
//! - [`Dataplane::kill_entry`] removes one entry the way expiry does (the destination's
//!   active/inactive/persistent counts settle, a drained destination in the trash is freed);
//!   a template's connections continue without it.
//! - [`Dataplane::connections_page`] reads only; its cost is one pass over the table plus
//!   `O(log limit)` per matching entry, and it allocates only the page.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use lvs_proto::Protocol;

use super::family::Family;
use super::reconfig::fill_view;
use super::{ConnInfo, Dataplane, DestStats, ServiceKey};
use crate::conn::table::{Conn, ConnId};
use crate::sched::ListChange;

/// Why an edit was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    /// No such virtual service.
    #[error("no virtual service {0}")]
    NoService(ServiceKey),
    /// No such real server in the (existing) service's list.
    #[error("no real server {} in virtual service {service}", SocketAddr::new(*.addr, *.port))]
    NoDest {
        /// The service.
        service: ServiceKey,
        /// RIP.
        addr: IpAddr,
        /// Real port.
        port: u16,
    },
    /// A weight above 65535.
    #[error("weight {0} out of range 0..=65535")]
    WeightOutOfRange(u32),
}

/// Which entries [`Dataplane::connections_page`] lists; every filter set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnFilter {
    /// Only this service's entries.
    pub service: Option<ServiceKey>,
    /// Only entries to this real server `(RIP, port)`.
    pub real: Option<(IpAddr, u16)>,
    /// Only clients in this prefix `(network, length)`.
    pub client: Option<(IpAddr, u8)>,
    /// Only entries whose ipvsadm state name equals this (ASCII case-insensitive).
    pub state: Option<String>,
}

/// What [`Dataplane::kill_entry`] matches an entry on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KillTarget {
    /// Protocol.
    pub protocol: Protocol,
    /// Client address and port (a template: the masked client and port 0).
    pub client: (IpAddr, u16),
    /// Virtual address and port.
    pub virt: (IpAddr, u16),
    /// A persistence template.
    pub template: bool,
}

/// The listing order of connection entries: (protocol, VIP, vport, client, cport, RIP,
/// rport, template, tie-breaker). The tie-breaker is a fixed hash of the entry's handle,
/// stable for the entry's life; it only orders entries equal in everything else (two
/// invalidated templates of one client).
pub type ConnSortKey = (Protocol, IpAddr, u16, IpAddr, u16, IpAddr, u16, bool, u64);

/// An entry of either table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Handle {
    v6: bool,
    id: ConnId,
}

impl Handle {
    fn of<A: Family>(id: ConnId) -> Handle {
        Handle { v6: A::V6, id }
    }
}

fn sort_key<A: Family>(h: Handle, c: &Conn<A>, real: SocketAddr) -> ConnSortKey {
    // SipHash with fixed keys: the same handle always gives the same number.
    #[allow(deprecated)]
    let mut hasher = std::hash::SipHasher::new();
    h.hash(&mut hasher);
    let (vip, vport) = c.virt();
    let (cip, cport) = c.client();
    (
        c.protocol(),
        vip.into(),
        vport,
        cip.into(),
        cport,
        real.ip(),
        real.port(),
        c.is_template(),
        hasher.finish(),
    )
}

/// A heap entry ordered by its key only.
#[derive(Debug)]
struct ByKey(ConnSortKey, Handle);

impl PartialEq for ByKey {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl Eq for ByKey {}
impl PartialOrd for ByKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for ByKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.cmp(&other.0)
    }
}

/// Whether `ip` is in `net/len`; never across families.
fn prefix_contains((net, len): (IpAddr, u8), ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(net), IpAddr::V4(ip)) if len <= 32 => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(net), IpAddr::V6(ip)) if len <= 128 => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

impl Dataplane {
    /// The interfaces of the running configuration.
    pub fn interfaces(&self) -> &[super::Interface] {
        &self.interfaces
    }

    /// Every configured destination (listed or parked by health) with its service and its spec (how it is reached) and
    /// its next hop's MAC once known, in configuration order.
    pub fn dest_routes(&self) -> Vec<(ServiceKey, super::DestSpec, Option<[u8; 6]>)> {
        let mut out = Vec::new();
        for &sid in &self.order {
            let Some(Some(svc)) = self.services.get(sid as usize) else {
                continue;
            };
            let key = ServiceKey {
                protocol: svc.protocol,
                vip: svc.vip,
                port: svc.port,
            };
            let parked = svc.members.iter().filter(|&&id| {
                self.dests
                    .get(id as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|e| e.parked)
            });
            for &id in svc.list.iter().chain(parked) {
                if let Some(Some(e)) = self.dests.get(id as usize) {
                    let mac = self.neighbours.get(e.neighbour).and_then(|n| n.mac);
                    out.push((key, e.spec, mac));
                }
            }
        }
        out
    }

    /// Whether the service exists.
    pub fn has_service(&self, service: &ServiceKey) -> bool {
        self.service_index
            .contains_key(&(service.protocol, service.vip, service.port))
    }

    /// Sets a listed real server's weight (module doc); returns the old one.
    pub fn set_weight(
        &mut self,
        service: &ServiceKey,
        addr: impl Into<IpAddr>,
        port: u16,
        weight: u32,
    ) -> Result<u32, EditError> {
        let addr: IpAddr = addr.into();
        if weight > 65535 {
            return Err(EditError::WeightOutOfRange(weight));
        }
        let (sid, did) = self.find_member(service, addr, port)?;
        let Some(Some(e)) = self.dests.get_mut(did as usize) else {
            return Err(EditError::NoDest {
                service: *service,
                addr,
                port,
            });
        };
        let old = e.spec.weight;
        let live_before = e.live_weight();
        e.spec.weight = weight;
        if weight != 0 {
            e.last_weight = weight;
        }
        let changed = e.in_list && live_before != e.live_weight();
        if changed {
            if let Some(Some(svc)) = self.services.get_mut(sid as usize) {
                fill_view(&svc.list, &self.dests, &mut svc.view);
                svc.scheduler.update(&svc.view, ListChange::Edited);
            }
        }
        // The live weight may change the quorum (keepalived `update_svr_wgt`).
        self.settle_health(sid, false);
        Ok(old)
    }

    /// A listed real server as [`Dataplane::stats`] reports it, without the whole snapshot.
    pub fn dest_stats(
        &self,
        service: &ServiceKey,
        addr: impl Into<IpAddr>,
        port: u16,
    ) -> Result<DestStats, EditError> {
        let addr: IpAddr = addr.into();
        let (_, did) = self.find_member(service, addr, port)?;
        let e = self
            .dests
            .get(did as usize)
            .and_then(Option::as_ref)
            .ok_or(EditError::NoDest {
                service: *service,
                addr,
                port,
            })?;
        Ok(self.dest_stats_of(e))
    }

    /// Zeroes the counters and estimators of one service and its real servers (including
    /// removed ones still draining), or of everything (module doc).
    pub fn zero_counters(&mut self, service: Option<&ServiceKey>) -> Result<(), EditError> {
        let only = match service {
            Some(k) => Some(
                *self
                    .service_index
                    .get(&(k.protocol, k.vip, k.port))
                    .ok_or(EditError::NoService(*k))?,
            ),
            None => None,
        };
        for (sid, svc) in self.services.iter_mut().enumerate() {
            let Some(svc) = svc else { continue };
            if only.is_some_and(|o| o as usize != sid) {
                continue;
            }
            svc.counters = Default::default();
            svc.est.reset(&svc.counters);
        }
        for e in self.dests.iter_mut().flatten() {
            if only.is_some_and(|o| o != e.service) {
                continue;
            }
            e.counters = Default::default();
            e.est.reset(&e.counters);
        }
        Ok(())
    }

    /// Ticks every rate estimator once (called every [`super::EST_INTERVAL`]).
    pub(super) fn estimate(&mut self) {
        for svc in self.services.iter_mut().flatten() {
            svc.est.tick(&svc.counters);
        }
        for e in self.dests.iter_mut().flatten() {
            e.est.tick(&e.counters);
        }
    }

    /// The first `limit` entries (at least 1) matching `filter` whose [`ConnSortKey`] is
    /// after `after`, in that order, and whether more follow. IPv4 entries sort before
    /// IPv6 ones (the VIP is the second key).
    pub fn connections_page(
        &self,
        now: Instant,
        filter: &ConnFilter,
        after: Option<&ConnSortKey>,
        limit: usize,
    ) -> (Vec<(ConnSortKey, ConnInfo)>, bool) {
        let limit = limit.max(1);
        // A max-heap of the smallest `limit + 1` keys seen.
        let mut heap: BinaryHeap<ByKey> =
            BinaryHeap::with_capacity(limit.saturating_add(1).min(4096));
        self.page_scan::<Ipv4Addr>(filter, after, limit, &mut heap);
        self.page_scan::<Ipv6Addr>(filter, after, limit, &mut heap);
        let more = heap.len() > limit;
        let mut picked = heap.into_sorted_vec();
        picked.truncate(limit);
        let page = picked
            .into_iter()
            .filter_map(|ByKey(key, h)| Some((key, self.conn_info(now, h)?)))
            .collect();
        (page, more)
    }

    /// Offers `A`'s entries that match to the page heap.
    fn page_scan<A: Family>(
        &self,
        filter: &ConnFilter,
        after: Option<&ConnSortKey>,
        limit: usize,
        heap: &mut BinaryHeap<ByKey>,
    ) {
        let state = filter.state.as_deref();
        for (id, c) in A::table(&self.conns).iter() {
            if let Some(k) = &filter.service {
                let (vip, vport) = c.virt();
                if c.protocol() != k.protocol || (vip.into(), vport) != (k.vip, k.port) {
                    continue;
                }
            }
            if filter
                .real
                .is_some_and(|(a, p)| self.real_of(c) != SocketAddr::new(a, p))
            {
                continue;
            }
            if filter
                .client
                .is_some_and(|p| !prefix_contains(p, c.client().0.into()))
            {
                continue;
            }
            if state.is_some_and(|s| !c.state().name().eq_ignore_ascii_case(s)) {
                continue;
            }
            let h = Handle::of::<A>(id);
            let key = sort_key(h, c, self.real_of(c));
            if after.is_some_and(|a| key <= *a) {
                continue;
            }
            if heap.len() > limit {
                if heap.peek().is_some_and(|top| key >= top.0) {
                    continue;
                }
                heap.pop();
            }
            heap.push(ByKey(key, h));
        }
    }

    /// An entry as the listing shows it.
    fn conn_info(&self, now: Instant, h: Handle) -> Option<ConnInfo> {
        if h.v6 {
            let c = self.conns.v6.get(h.id)?;
            Some(self.info_of(h.id, c, now))
        } else {
            let c = self.conns.v4.get(h.id)?;
            Some(self.info_of(h.id, c, now))
        }
    }

    /// The smallest sort key among `A`'s entries that `hit` accepts.
    fn kill_scan<A: Family>(
        &self,
        hit: &impl Fn(&KillTarget) -> bool,
    ) -> Option<(ConnSortKey, Handle)> {
        A::table(&self.conns)
            .iter()
            .filter(|(_, c)| {
                let ((ca, cp), (va, vp)) = (c.client(), c.virt());
                hit(&KillTarget {
                    protocol: c.protocol(),
                    client: (ca.into(), cp),
                    virt: (va.into(), vp),
                    template: c.is_template(),
                })
            })
            .map(|(id, c)| {
                let h = Handle::of::<A>(id);
                (sort_key(h, c, self.real_of(c)), h)
            })
            .min_by_key(|(key, _)| *key)
    }

    /// Removes one entry now (module doc): the first in listing order that `hit` accepts;
    /// its destination's counts settle as when it expires. The entry as it was, or `None`
    /// if nothing matched.
    pub fn kill_entry(
        &mut self,
        now: Instant,
        hit: impl Fn(&KillTarget) -> bool,
    ) -> Option<(ConnSortKey, ConnInfo)> {
        let (key, h) = [
            self.kill_scan::<Ipv4Addr>(&hit),
            self.kill_scan::<Ipv6Addr>(&hit),
        ]
        .into_iter()
        .flatten()
        .min_by_key(|(key, _)| *key)?;
        let info = self.conn_info(now, h)?;
        if h.v6 {
            let c = self.conns.v6.remove(h.id)?;
            self.settle(&c, now);
        } else {
            let c = self.conns.v4.remove(h.id)?;
            self.settle(&c, now);
        }
        Some((key, info))
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddrV4;
    use std::time::Duration;

    use lvs_proto::{Forwarding, Protocol, SchedulerKind};

    use super::super::tests::*;
    use super::*;
    use crate::wire::ipv4::Ipv4Packet;
    use crate::wire::tcp::TcpControl;

    const KEY: ServiceKey = ServiceKey {
        protocol: Protocol::Tcp,
        vip: IpAddr::V4(VIP),
        port: 80,
    };

    /// TCP VIP:80, wrr over RS1 w1, RS2 w1 (list RS2, RS1), NAT.
    fn lab() -> Lab {
        Lab::resolved(config(vec![service(
            Protocol::Tcp,
            VIP,
            80,
            SchedulerKind::Wrr,
            vec![
                dest(RS1, 80, 1, Forwarding::Nat),
                dest(RS2, 80, 1, Forwarding::Nat),
            ],
        )]))
    }

    fn syn(lab: &mut Lab, c: SocketAddrV4) -> Ipv4Addr {
        let out = lab.fwd(EXT_IF, &tcp_in(c, sa(VIP, 80), TcpControl::SYN));
        Ipv4Packet::new_checked(&out[14..]).map_or(Ipv4Addr::UNSPECIFIED, |ip| ip.dst_addr())
    }

    #[test]
    fn set_weight_applies_to_the_next_connection_and_keeps_the_others() {
        let mut lab = lab();
        assert_eq!(syn(&mut lab, client(1, 1000)), RS2);
        assert_eq!(syn(&mut lab, client(1, 1001)), RS1);
        // RS1 3, RS2 1: wrr restarts (Edited) and now gives RS1 three in four.
        assert_eq!(lab.dp.set_weight(&KEY, RS1, 80, 3), Ok(1));
        let picks: Vec<Ipv4Addr> = (0..4).map(|i| syn(&mut lab, client(2, 2000 + i))).collect();
        assert_eq!(picks.iter().filter(|&&a| a == RS1).count(), 3, "{picks:?}");
        // Weight 0: no new connections, the open ones continue.
        assert_eq!(lab.dp.set_weight(&KEY, RS2, 80, 0), Ok(1));
        for i in 0..4 {
            assert_eq!(syn(&mut lab, client(3, 3000 + i)), RS1);
        }
        assert_eq!(
            syn(&mut lab, client(1, 1000)),
            RS2,
            "an existing connection stays"
        );
        let d = lab
            .dp
            .dest_stats(&KEY, RS2, 80)
            .map(|d| (d.weight, d.inactive + d.active));
        assert_eq!(d, Ok((0, 2)));
        // Errors.
        assert_eq!(
            lab.dp.set_weight(&KEY, RS1, 80, 65536),
            Err(EditError::WeightOutOfRange(65536))
        );
        assert!(matches!(
            lab.dp.set_weight(&KEY, RS3, 80, 1),
            Err(EditError::NoDest { .. })
        ));
        let other = ServiceKey { port: 81, ..KEY };
        assert_eq!(
            lab.dp.set_weight(&other, RS1, 80, 1),
            Err(EditError::NoService(other))
        );
    }

    #[test]
    fn zeroing_resets_counters_and_rates_but_not_connections() {
        let mut lab = lab();
        for i in 0..8 {
            syn(&mut lab, client(1, 1000 + i));
        }
        lab.advance(Duration::from_secs(2));
        let s = lab.service(0);
        assert_eq!(s.counters.conns, 8);
        // 8 connections in 2 s = 4/s; the first tick gives a quarter: 1.
        assert_eq!(s.rates.cps, 1);
        assert_eq!(lab.dp.zero_counters(Some(&KEY)), Ok(()));
        let s = lab.service(0);
        assert_eq!((s.counters.conns, s.rates.cps), (0, 0));
        assert_eq!(s.dests.iter().map(|d| d.counters.conns).sum::<u64>(), 0);
        assert_eq!(
            s.dests.iter().map(|d| d.inactive + d.active).sum::<u32>(),
            8
        );
        assert_eq!(lab.dp.conn_count(), 8);
    }

    #[test]
    fn pages_follow_the_sort_order() {
        let mut lab = lab();
        for n in (1..=9).rev() {
            syn(&mut lab, client(n, 1000));
        }
        let filter = ConnFilter::default();
        let (first, more) = lab.dp.connections_page(lab.now, &filter, None, 4);
        assert!(more);
        let clients: Vec<u8> = first.iter().map(|(k, _)| v4(k.3).octets()[3]).collect();
        assert_eq!(clients, vec![1, 2, 3, 4]);
        let after = first.last().map(|(k, _)| *k);
        let (rest, more) = lab
            .dp
            .connections_page(lab.now, &filter, after.as_ref(), 10);
        assert!(!more);
        let clients: Vec<u8> = rest.iter().map(|(k, _)| v4(k.3).octets()[3]).collect();
        assert_eq!(clients, vec![5, 6, 7, 8, 9]);
        // Filters.
        let only = ConnFilter {
            real: Some((RS1.into(), 80)),
            client: Some((Ipv4Addr::new(198, 51, 100, 0).into(), 24)),
            state: Some("syn_recv".into()),
            ..ConnFilter::default()
        };
        let (page, _) = lab.dp.connections_page(lab.now, &only, None, 100);
        assert!(!page.is_empty());
        assert!(
            page.iter()
                .all(|(_, c)| c.real.ip() == RS1 && c.state == "SYN_RECV")
        );
    }
}
