//! Applying a configuration: the service and destination lists (IPVS order, trash),
//! scheduler notifications, and the lookup sets and neighbour table derived from them.
//!
//! Edits follow `__ip_vs_update_dest` and `ip_vs_edit_service`:
//! - A destination's new spec applies at once; OVERLOAD is cleared when the new upper
//!   threshold is 0 or higher than the old one (also when it comes back from the trash).
//!   A weight, forwarding or threshold change is an edit the scheduler hears about.
//! - A service keeps its scheduler unless the kind, the flags or the lblc expiry change;
//!   then a fresh one is built over the current list (the seed only seeds a new one).
//! - Health (`health.rs`): kept destinations keep their health state unless its spec
//!   changed; new ones start per their spec (alpha: down) and are placed — listed at the
//!   head in config order, or parked — after the removals; the quorum is re-evaluated as
//!   keepalived does after a reload (`update_quorum_state(vs, init = true)`). Parked
//!   destinations that leave the configuration go to the trash like listed ones.
//! - Persistence and one-packet settings apply to the next new connection. Templates
//!   already made keep their timeout and destination and expire on their own, even when
//!   persistence is turned off or the netmask changes (as in IPVS).

use std::collections::{HashSet, VecDeque};
use std::time::Instant;

use lvs_proto::{Counters, Forwarding};

use super::estimator::Estimator;
use super::health::{self, HealthEvent};
use super::{Dataplane, DataplaneConfig, DestEntry, DestSpec, Neighbour, Service, ServiceSpec};
use crate::sched::{self, ListChange, SchedParams};

impl Dataplane {
    /// Applies a new configuration in place (module doc; spec b.1 for list semantics):
    /// services matched by `(protocol, vip, port)`, destinations by `(addr, port)`.
    /// Kept services and destinations keep their counters and connections; removed
    /// destinations drain from the trash; removed services lose their connections.
    pub fn reconfigure(&mut self, config: DataplaneConfig, now: Instant) {
        self.interfaces = config.interfaces;
        self.timeouts = config.timeouts;
        let mut kept = HashSet::new();
        let mut order = Vec::with_capacity(config.services.len());
        for spec in &config.services {
            let key = (spec.protocol, spec.vip, spec.port);
            let sid = match self.service_index.get(&key) {
                Some(&sid) => {
                    self.update_service(sid, spec, now);
                    sid
                }
                None => {
                    let sid = self.create_service(spec, now);
                    self.service_index.insert(key, sid);
                    sid
                }
            };
            if kept.insert(sid) {
                order.push(sid);
            }
        }
        let gone: Vec<u32> = (0..self.services.len() as u32)
            .filter(|sid| self.services[*sid as usize].is_some() && !kept.contains(sid))
            .collect();
        for sid in gone {
            self.remove_service(sid);
        }
        self.order = order;
        self.rebuild_indexes(now);
    }

    fn alloc_dest(&mut self, entry: DestEntry) -> u32 {
        match self.free_dests.pop() {
            Some(id) => {
                self.dests[id as usize] = Some(entry);
                id
            }
            None => {
                self.dests.push(Some(entry));
                (self.dests.len() - 1) as u32
            }
        }
    }

    /// A new destination, parked (the caller places it).
    fn new_dest(&mut self, service: u32, spec: DestSpec, sorry: bool) -> u32 {
        let mut entry = DestEntry {
            service,
            spec,
            last_weight: spec.weight,
            active: 0,
            inactive: 0,
            persistent: 0,
            overloaded: false,
            refs: 0,
            in_list: false,
            pos: 0,
            counters: Counters::default(),
            est: Estimator::default(),
            neighbour: usize::MAX,
            parked: true,
            inhibited: false,
            sorry,
            check_up: true,
            passive: None,
        };
        health::initial(&mut entry);
        self.alloc_dest(entry)
    }

    fn create_service(&mut self, spec: &ServiceSpec, now: Instant) -> u32 {
        let sid = match self.services.iter().position(Option::is_none) {
            Some(i) => i as u32,
            None => {
                self.services.push(None);
                (self.services.len() - 1) as u32
            }
        };
        let mut members: Vec<u32> = Vec::with_capacity(spec.dests.len() + 1);
        for d in &spec.dests {
            // A duplicate (addr, port) in the config edits the first one.
            if let Some(&id) = members.iter().find(|&&id| self.dest_matches(id, d)) {
                if let Some(e) = self.dests[id as usize].as_mut() {
                    let old = e.spec.health;
                    e.spec = *d;
                    health::respec(e, &old);
                }
                continue;
            }
            members.push(self.new_dest(sid, *d, false));
        }
        if let Some(s) = spec.health.sorry {
            if !members.iter().any(|&id| self.dest_matches(id, &s)) {
                members.push(self.new_dest(sid, s, true));
            }
        }
        // keepalived at start: the alive servers enter (config order, each at the head),
        // then the quorum decides whether the sorry server replaces them (`health.rs`).
        let mut quorum = health::QuorumState::new(&spec.health);
        let live_weight = self.live_weight_of(&members);
        quorum.up = live_weight >= quorum.quorum + quorum.hysteresis;
        let sorry = members
            .iter()
            .find_map(|&id| self.dests[id as usize].as_ref().filter(|e| e.sorry))
            .map(|e| (e.spec.addr, e.spec.port));
        quorum.sorry_active = !quorum.up && sorry.is_some();
        let mut list: Vec<u32> = Vec::with_capacity(members.len());
        let mut managed = false;
        for &id in &members {
            let Some(e) = self.dests[id as usize].as_mut() else {
                continue;
            };
            managed |= e.sorry || e.spec.health.checked || e.spec.health.passive.is_some();
            match health::desired(e, quorum.sorry_active) {
                Some(inhibited) => {
                    e.in_list = true;
                    e.parked = false;
                    e.inhibited = inhibited;
                    list.insert(0, id);
                }
                None => {
                    e.in_list = false;
                    e.parked = true;
                }
            }
        }
        renumber(&list, &mut self.dests);
        let mut view = Vec::with_capacity(list.len());
        fill_view(&list, &self.dests, &mut view);
        let params = SchedParams {
            family: Some(sched::Family::of(spec.vip)),
            ..spec.sched_params
        };
        let scheduler = sched::new_scheduler(spec.scheduler, &params, &view, now);
        let key = super::ServiceKey {
            protocol: spec.protocol,
            vip: spec.vip,
            port: spec.port,
        };
        self.services[sid as usize] = Some(Service {
            protocol: spec.protocol,
            vip: spec.vip,
            port: spec.port,
            scheduler,
            params: spec.sched_params,
            persistence: spec.persistence,
            one_packet: spec.one_packet,
            list,
            view,
            counters: Counters::default(),
            est: Estimator::default(),
            decisions: VecDeque::new(),
            watch_until: None,
            members,
            quorum,
        });
        if managed && !quorum.up {
            self.push_health_event(HealthEvent::Quorum {
                service: key,
                up: false,
                live_weight,
                quorum: quorum.quorum,
            });
            if let (Some((addr, port)), true) = (sorry, quorum.sorry_active) {
                self.push_health_event(HealthEvent::Sorry {
                    service: key,
                    addr,
                    port,
                    active: true,
                });
            }
        }
        sid
    }

    fn dest_matches(&self, id: u32, d: &DestSpec) -> bool {
        self.dests[id as usize]
            .as_ref()
            .is_some_and(|e| e.spec.addr == d.addr && e.spec.port == d.port)
    }

    fn is_sorry(&self, id: u32) -> bool {
        self.dests[id as usize].as_ref().is_some_and(|e| e.sorry)
    }

    fn update_service(&mut self, sid: u32, spec: &ServiceSpec, now: Instant) {
        let Some(mut svc) = self.services[sid as usize].take() else {
            return;
        };
        let sorry_spec = spec.health.sorry;
        // 1. Removals, each announced with its index in the old list; parked members
        //    that are gone go to the trash too.
        let mut kept = Vec::with_capacity(svc.members.len());
        for id in std::mem::take(&mut svc.members) {
            let Some(e) = self.dests[id as usize].as_ref() else {
                continue;
            };
            let same = |d: &DestSpec| e.spec.addr == d.addr && e.spec.port == d.port;
            let keep = if e.sorry {
                sorry_spec.as_ref().is_some_and(same)
            } else {
                spec.dests.iter().any(same)
            };
            if keep {
                kept.push(id);
                continue;
            }
            if let Some(index) = svc.list.iter().position(|&x| x == id) {
                svc.list.remove(index);
                renumber(&svc.list, &mut self.dests);
                fill_view(&svc.list, &self.dests, &mut svc.view);
                svc.scheduler
                    .update(&svc.view, ListChange::Removed { index });
            }
            self.trash_dest(id);
        }
        // 2. Edits in place, in config order; new servers are parked and placed below
        //    (at the head, in config order, as before).
        let mut members: Vec<u32> = Vec::with_capacity(spec.dests.len() + 1);
        for d in &spec.dests {
            let found = kept
                .iter()
                .copied()
                .find(|&id| !self.is_sorry(id) && self.dest_matches(id, d));
            if let Some(id) = found {
                let Some(e) = self.dests[id as usize].as_mut() else {
                    continue;
                };
                let ipvs_edit = e.spec.weight != d.weight
                    || e.spec.forwarding != d.forwarding
                    || e.spec.upper_threshold != d.upper_threshold
                    || e.spec.lower_threshold != d.lower_threshold;
                let old = e.spec.health;
                set_spec(e, d);
                health::respec(e, &old);
                if d.weight != 0 {
                    e.last_weight = d.weight;
                }
                let listed = e.in_list;
                if ipvs_edit && listed {
                    fill_view(&svc.list, &self.dests, &mut svc.view);
                    svc.scheduler.update(&svc.view, ListChange::Edited);
                }
                if !members.contains(&id) {
                    members.push(id);
                }
                continue;
            }
            let trashed = self.dests.iter().position(|e| {
                e.as_ref().is_some_and(|e| {
                    e.service == sid
                        && !e.in_list
                        && !e.parked
                        && !e.sorry
                        && e.spec.addr == d.addr
                        && e.spec.port == d.port
                })
            });
            let id = match trashed {
                Some(id) => {
                    if let Some(e) = self.dests[id].as_mut() {
                        e.parked = true;
                        set_spec(e, d);
                        health::initial(e);
                        // Re-added: the kernel sets last_weight on every add.
                        e.last_weight = d.weight;
                    }
                    id as u32
                }
                None => self.new_dest(sid, *d, false),
            };
            members.push(id);
        }
        if let Some(s) = sorry_spec {
            let found = kept
                .iter()
                .copied()
                .find(|&id| self.is_sorry(id) && self.dest_matches(id, &s));
            let id = match found {
                Some(id) => {
                    if let Some(e) = self.dests[id as usize].as_mut() {
                        set_spec(e, &s);
                    }
                    id
                }
                None => self.new_dest(sid, s, true),
            };
            members.push(id);
        }
        svc.members = members;
        svc.quorum.quorum = spec.health.quorum.max(1);
        svc.quorum.hysteresis = spec.health.hysteresis;
        if sorry_spec.is_none() {
            svc.quorum.sorry_active = false;
        }
        self.services[sid as usize] = Some(svc);
        self.settle_health(sid, true);
        let Some(mut svc) = self.services[sid as usize].take() else {
            return;
        };
        // 3. Another scheduler: a fresh one over the current list (kernel bind/unbind).
        let params_changed = svc.params.flags != spec.sched_params.flags
            || svc.params.lblc_expiration != spec.sched_params.lblc_expiration;
        if svc.scheduler.kind() != spec.scheduler || params_changed {
            fill_view(&svc.list, &self.dests, &mut svc.view);
            let params = SchedParams {
                family: Some(sched::Family::of(spec.vip)),
                ..spec.sched_params
            };
            svc.scheduler = sched::new_scheduler(spec.scheduler, &params, &svc.view, now);
            svc.params = spec.sched_params;
        }
        // 4. Service settings for the next new connection.
        svc.persistence = spec.persistence;
        svc.one_packet = spec.one_packet;
        self.services[sid as usize] = Some(svc);
    }

    /// The sum of the configured weights of the `members` that are up (sorry server
    /// excluded): keepalived's `weigh_live_realservers`.
    pub(super) fn live_weight_of(&self, members: &[u32]) -> u64 {
        members
            .iter()
            .filter_map(|&id| self.dests.get(id as usize)?.as_ref())
            .filter(|e| !e.sorry && e.alive())
            .map(|e| u64::from(e.spec.weight))
            .sum()
    }

    /// Takes a destination out of its list: freed now if idle, else it drains.
    fn trash_dest(&mut self, id: u32) {
        let Some(e) = self.dests[id as usize].as_mut() else {
            return;
        };
        e.in_list = false;
        e.parked = false;
        e.inhibited = false;
        if e.refs == 0 {
            self.free_dest(id);
        }
    }

    pub(super) fn free_dest(&mut self, id: u32) {
        if let Some(slot) = self.dests.get_mut(id as usize) {
            if slot.take().is_some() {
                self.free_dests.push(id);
            }
        }
    }

    fn remove_service(&mut self, sid: u32) {
        self.conns.v4.remove_where(|c| c.service() == sid, |_| {});
        self.conns.v6.remove_where(|c| c.service() == sid, |_| {});
        for id in 0..self.dests.len() {
            if self.dests[id].as_ref().is_some_and(|e| e.service == sid) {
                self.free_dest(id as u32);
            }
        }
        self.services[sid as usize] = None;
    }

    /// Rebuilds the lookup sets and the neighbour table from services and destinations.
    pub(super) fn rebuild_indexes(&mut self, now: Instant) {
        self.service_index.clear();
        self.vip_addrs.clear();
        self.rip_addrs.clear();
        self.nat_rips.clear();
        for (sid, svc) in self.services.iter().enumerate() {
            let Some(svc) = svc else { continue };
            self.service_index
                .insert((svc.protocol, svc.vip, svc.port), sid as u32);
            self.vip_addrs.insert((svc.protocol, svc.vip));
        }
        let old = std::mem::take(&mut self.neighbours);
        let old_index = std::mem::take(&mut self.neighbour_index);
        for e in self.dests.iter_mut().flatten() {
            let Some(Some(svc)) = self.services.get(e.service as usize) else {
                continue;
            };
            // Any destination's address may send replies of live NAT connections (found in
            // the table); a reply without a connection is ours only for a listed NAT one.
            self.rip_addrs.insert((svc.protocol, e.spec.addr));
            if e.spec.forwarding == Forwarding::Nat && (e.in_list || e.parked) {
                self.nat_rips
                    .insert((svc.protocol, e.spec.addr, e.spec.port));
            }
            let key = (e.spec.ifindex, e.spec.next_hop);
            let idx = match self.neighbour_index.get(&key) {
                Some(&i) => i,
                None => {
                    let n = match old_index.get(&key).and_then(|&i| old.get(i)) {
                        Some(n) => Neighbour {
                            source: e.spec.source,
                            ..n.clone()
                        },
                        None => Neighbour {
                            ifindex: e.spec.ifindex,
                            addr: e.spec.next_hop,
                            source: e.spec.source,
                            mac: None,
                            next_probe: now,
                        },
                    };
                    self.neighbours.push(n);
                    self.neighbour_index.insert(key, self.neighbours.len() - 1);
                    self.neighbours.len() - 1
                }
            };
            e.neighbour = idx;
        }
        self.probe_cursor = 0;
        self.earliest_probe = self.neighbours.iter().map(|n| n.next_probe).min();
        self.passive_dests = (0..self.dests.len() as u32)
            .filter(|&id| {
                self.dests[id as usize]
                    .as_ref()
                    .is_some_and(|e| e.passive.is_some())
            })
            .collect();
        // Passive state may have been set up or reset: look at its timers again.
        self.next_passive = self
            .passive_dests
            .iter()
            .filter_map(|&id| {
                self.dests[id as usize]
                    .as_ref()?
                    .passive
                    .as_ref()?
                    .next_deadline()
            })
            .min();
    }
}

/// Applies an edited spec the way `__ip_vs_update_dest` does: OVERLOAD is cleared when
/// the new upper threshold is 0 or above the old one.
fn set_spec(e: &mut DestEntry, d: &DestSpec) {
    if d.upper_threshold == 0 || d.upper_threshold > e.spec.upper_threshold {
        e.overloaded = false;
    }
    e.spec = *d;
}

/// Records each listed destination's index in `list` (its `pos`); after every list change.
pub(super) fn renumber(list: &[u32], dests: &mut [Option<DestEntry>]) {
    for (pos, &id) in list.iter().enumerate() {
        if let Some(Some(e)) = dests.get_mut(id as usize) {
            e.pos = pos;
        }
    }
}

/// What the scheduler sees of `list`.
pub(super) fn fill_view(list: &[u32], dests: &[Option<DestEntry>], view: &mut Vec<sched::Dest>) {
    view.clear();
    view.extend(list.iter().map(|&id| match dests.get(id as usize) {
        Some(Some(e)) => sched::Dest {
            addr: e.spec.addr,
            port: e.spec.port,
            weight: e.live_weight(),
            last_weight: e.last_weight,
            active: e.active,
            inactive: e.inactive,
            persistent: e.persistent,
            overloaded: e.overloaded,
        },
        // Cannot happen (list entries are live); a weight-0 stand-in is never picked.
        _ => sched::Dest::default(),
    }));
}
