//! Health in the data path: what an up or down real server does to its service's
//! scheduling list, keepalived's quorum and sorry server, and passive failure detection.
//! Pure: time is an argument; the active checks run elsewhere (`crate::health`) and only
//! their verdicts arrive here ([`Dataplane::set_health`]).
//!
//! keepalived (`check/ipwrapper.c`: `perform_svr_state`, `update_quorum_state`,
//! `perform_quorum_state`, `update_svr_wgt`) drives IPVS with `ip_vs_add_dest` /
//! `ip_vs_del_dest` / `ip_vs_edit_dest`; lvsd makes the same list changes directly:
//! - **Down** (active check or passive detection): the real server leaves the list
//!   (`ListChange::Removed`, as `ip_vs_del_dest`); its connections continue and its
//!   templates are invalidated at their next use (not AVAILABLE). It stays configured
//!   ("parked": never trash, never freed). With `inhibit_on_failure` it stays in the list
//!   with weight 0 instead (`ListChange::Edited`), and its configured weight is kept.
//! - **Up**: back at the head of the list (`ListChange::Added { index: 0 }`, as
//!   `ipvsadm -a`), or, when inhibited, its configured weight again (`Edited`).
//! - **Weights**: the configured weight is the file's, then API edits, drains and dynamic
//!   weights (exec `dynamic_weight`) change it; the scheduler sees 0 while inhibited, the
//!   configured weight otherwise. So a drained server that goes down and up stays
//!   drained, and a weight set while it is down applies when it is up.
//! - **Quorum** (`update_quorum_state`): the live weight is the sum of the configured
//!   weights of the real servers that are up (sorry server excluded). With quorum up, it
//!   is lost when the live weight is 0 or below `quorum - hysteresis`; with quorum down,
//!   it is regained at `quorum + hysteresis` or more. At creation (and after a
//!   reconfiguration) quorum starts up iff the live weight reaches `quorum + hysteresis`
//!   (`set_quorum_states`). `quorum` below 1 counts as 1.
//! - **Sorry server** (`update_quorum_state`, `perform_quorum_state`): on losing quorum,
//!   the alive real servers leave the list (inhibited ones: weight 0) and the sorry
//!   server enters at the head; on regaining it the sorry server leaves and the alive
//!   real servers enter again, one by one at the head in configuration order. While the
//!   sorry server serves, real servers that go up or down only change the live weight
//!   (`perform_svr_state` leaves IPVS alone then). Without a sorry server, losing quorum
//!   changes nothing but the state and the event (keepalived only notifies).
//!
//! Passive detection (DPVS-style; NAT only, where the real server's answers pass the
//! director): each NAT TCP connection made by a SYN takes one of [`PASSIVE_PENDING`]
//! fixed slots of its real server (none free: not watched). A SYN-ACK from the real
//! server clears it (success: failures reset); an RST clears it as a failure; no answer
//! within `syn_timeout` is a failure. `failures` failures in a row take the server down
//! (`check = "passive"`); after `backoff` it goes back into the list on probation: the
//! next watched handshake decides (success: up for good, back-off reset; failure: down
//! again with the back-off doubled, at most `max_backoff`).
//!
//! Invariants:
//! - Every configured destination of a service is in `members` (config order, sorry
//!   server last) and is either listed (`in_list`) or `parked`, never both; trash is
//!   `!in_list && !parked`.
//! - After every health, weight or configuration change the list is what
//!   [`desired`] says for each member (`place_all`), and every list change went through
//!   `Scheduler::update` with the kernel's [`ListChange`].
//! - No allocation per packet: the SYN slots are a fixed array; only a flip (rare)
//!   formats a reason and queues an event ([`HEALTH_EVENTS`] at most, oldest dropped).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::reconfig::{fill_view, renumber};
use super::{Dataplane, DestEntry, DestStats, EditError, Service, ServiceKey};
use crate::conn::TcpFlags;
use crate::sched::ListChange;

/// Handshakes watched at a time per real server (passive detection).
pub const PASSIVE_PENDING: usize = 16;
/// Health events kept until [`Dataplane::poll_health_event`] takes them.
pub const HEALTH_EVENTS: usize = 1024;

/// How a real server's health is watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HealthSpec {
    /// An active check runs for it; its verdicts come through [`Dataplane::set_health`].
    pub checked: bool,
    /// With `checked`: a new server starts down until its check passes (`alpha`).
    pub start_down: bool,
    /// Down means weight 0 in the list instead of out of it.
    pub inhibit_on_failure: bool,
    /// Passive detection (NAT only).
    pub passive: Option<PassiveSpec>,
}

/// Passive detection's settings (`[virtual_server.passive]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassiveSpec {
    /// Failed handshakes in a row that take the server down (at least 1).
    pub failures: u32,
    /// How long a SYN may wait for the real server's SYN-ACK.
    pub syn_timeout: Duration,
    /// The first wait before a down server is tried again.
    pub backoff: Duration,
    /// The longest wait (the back-off doubles after each failed retry).
    pub max_backoff: Duration,
}

/// A service's sorry server and quorum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceHealth {
    /// The sorry server, in the list only while quorum is lost.
    pub sorry: Option<super::DestSpec>,
    /// Live weight needed (keepalived `quorum`, default 1).
    pub quorum: u64,
    /// keepalived `hysteresis` (default 0).
    pub hysteresis: u64,
}

impl Default for ServiceHealth {
    fn default() -> Self {
        ServiceHealth {
            sorry: None,
            quorum: 1,
            hysteresis: 0,
        }
    }
}

/// A real server's health as the data path applies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DestHealth {
    /// An active check runs for it.
    pub checked: bool,
    /// The active check's verdict (true when not checked).
    pub check_up: bool,
    /// Up for scheduling: the check and passive detection agree.
    pub alive: bool,
    /// Down means weight 0 instead of out of the list.
    pub inhibit_on_failure: bool,
    /// Passive detection, when on.
    pub passive: Option<PassiveStatus>,
}

/// Passive detection's state of one real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassiveStatus {
    /// Failed handshakes in a row.
    pub failures: u32,
    /// How many take it down.
    pub threshold: u32,
    /// Down now.
    pub down: bool,
    /// Back in the list on probation: the next handshake decides.
    pub probation: bool,
    /// While down: when it is tried again.
    pub retry_at: Option<Instant>,
    /// The current back-off.
    pub backoff: Duration,
}

/// A service's quorum state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuorumStatus {
    /// Live weight needed.
    pub quorum: u64,
    /// Hysteresis.
    pub hysteresis: u64,
    /// Sum of the configured weights of the real servers that are up.
    pub live_weight: u64,
    /// Quorum held.
    pub up: bool,
    /// The sorry server is in the list.
    pub sorry_active: bool,
}

/// A health flip, for the event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthEvent {
    /// A real server went up or down.
    Changed {
        /// Its service.
        service: ServiceKey,
        /// RIP.
        addr: IpAddr,
        /// Port.
        port: u16,
        /// Up now.
        up: bool,
        /// What decided (the check's description, or `passive`).
        check: String,
        /// Why.
        reason: String,
    },
    /// A service lost or regained its quorum.
    Quorum {
        /// The service.
        service: ServiceKey,
        /// Held now.
        up: bool,
        /// The live weight then.
        live_weight: u64,
        /// The quorum.
        quorum: u64,
    },
    /// A sorry server entered or left the list.
    Sorry {
        /// The service.
        service: ServiceKey,
        /// Its address.
        addr: IpAddr,
        /// Its port.
        port: u16,
        /// In the list now.
        active: bool,
    },
}

/// Keepalived's per-service quorum state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct QuorumState {
    pub quorum: u64,
    pub hysteresis: u64,
    pub up: bool,
    pub sorry_active: bool,
}

impl QuorumState {
    pub(super) fn new(h: &ServiceHealth) -> Self {
        QuorumState {
            quorum: h.quorum.max(1),
            hysteresis: h.hysteresis,
            up: true,
            sorry_active: false,
        }
    }
}

/// One watched handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pending {
    client: (IpAddr, u16),
    deadline: Instant,
}

/// Passive detection's state (module doc).
#[derive(Debug, Clone)]
pub(super) struct PassiveState {
    spec: PassiveSpec,
    failures: u32,
    pub(super) down: bool,
    probation: bool,
    retry_at: Option<Instant>,
    backoff: Duration,
    pending: [Option<Pending>; PASSIVE_PENDING],
}

impl PassiveState {
    pub(super) fn new(spec: PassiveSpec) -> Self {
        PassiveState {
            spec,
            failures: 0,
            down: false,
            probation: false,
            retry_at: None,
            backoff: spec.backoff,
            pending: [None; PASSIVE_PENDING],
        }
    }

    fn status(&self) -> PassiveStatus {
        PassiveStatus {
            failures: self.failures,
            threshold: self.spec.failures,
            down: self.down,
            probation: self.probation,
            retry_at: self.retry_at,
            backoff: self.backoff,
        }
    }

    /// The earliest deadline it waits for.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.pending
            .iter()
            .flatten()
            .map(|p| p.deadline)
            .chain(self.retry_at)
            .min()
    }
}

/// A new destination's health state from its spec.
pub(super) fn initial(e: &mut DestEntry) {
    e.check_up = !(e.spec.health.checked && e.spec.health.start_down);
    e.passive = e.spec.health.passive.map(PassiveState::new);
}

/// An edited destination's health state: kept where the spec did not change.
pub(super) fn respec(e: &mut DestEntry, old: &super::HealthSpec) {
    let new = e.spec.health;
    if new.checked != old.checked || (new.checked && new.start_down != old.start_down) {
        e.check_up = !(new.checked && new.start_down);
    }
    if new.passive != old.passive {
        e.passive = new.passive.map(PassiveState::new);
    }
}

/// Where a member belongs: `Some(inhibited)` in the list, `None` parked.
pub(super) fn desired(e: &DestEntry, sorry_active: bool) -> Option<bool> {
    if e.sorry {
        return sorry_active.then_some(false);
    }
    if e.alive() && !sorry_active {
        Some(false)
    } else if e.spec.health.inhibit_on_failure {
        Some(true)
    } else {
        None
    }
}

impl Dataplane {
    /// The next health flip to report (oldest first); call after each batch of work.
    pub fn poll_health_event(&mut self) -> Option<HealthEvent> {
        self.health_events.pop_front()
    }

    pub(super) fn push_health_event(&mut self, e: HealthEvent) {
        if self.health_events.len() >= HEALTH_EVENTS {
            self.health_events.pop_front();
        }
        self.health_events.push_back(e);
    }

    /// The active check of a real server (not the sorry server) says up or down: the
    /// list follows (module doc) and the flip is an event with the check's description
    /// and reason. Saying what it already is changes nothing.
    pub fn set_health(
        &mut self,
        service: &ServiceKey,
        addr: impl Into<IpAddr>,
        port: u16,
        up: bool,
        check: &str,
        reason: &str,
    ) -> Result<(), EditError> {
        let addr: IpAddr = addr.into();
        let (sid, did) = self.find_member(service, addr, port)?;
        let Some(Some(e)) = self.dests.get_mut(did as usize) else {
            return Err(EditError::NoDest {
                service: *service,
                addr,
                port,
            });
        };
        if e.sorry || e.check_up == up {
            return Ok(());
        }
        e.check_up = up;
        self.push_health_event(HealthEvent::Changed {
            service: *service,
            addr,
            port,
            up,
            check: check.to_owned(),
            reason: reason.to_owned(),
        });
        self.settle_health(sid, false);
        Ok(())
    }

    /// Puts the service's list in step with its members' health and its quorum
    /// (module doc), announcing every change to the scheduler.
    pub(super) fn settle_health(&mut self, sid: u32, init: bool) {
        self.update_quorum(sid, init);
        self.place_all(sid);
    }

    /// Keepalived's `update_quorum_state` (module doc).
    fn update_quorum(&mut self, sid: u32, init: bool) {
        let Some(Some(svc)) = self.services.get(sid as usize) else {
            return;
        };
        let mut live: u64 = 0;
        let mut sorry = None;
        let mut managed = false;
        for &id in &svc.members {
            let Some(Some(e)) = self.dests.get(id as usize) else {
                continue;
            };
            managed |= e.sorry || e.spec.health.checked || e.spec.health.passive.is_some();
            if e.sorry {
                sorry = Some((e.spec.addr, e.spec.port));
            } else if e.alive() {
                live += u64::from(e.spec.weight);
            }
        }
        let key = svc.key();
        let mut q = svc.quorum;
        let mut events = Vec::new();
        if !q.up && live >= q.quorum + q.hysteresis {
            q.up = true;
            if q.sorry_active {
                q.sorry_active = false;
                if let Some((addr, port)) = sorry {
                    events.push(HealthEvent::Sorry {
                        service: key,
                        addr,
                        port,
                        active: false,
                    });
                }
            }
            events.push(HealthEvent::Quorum {
                service: key,
                up: true,
                live_weight: live,
                quorum: q.quorum,
            });
        } else if (q.up && (live == 0 || live < q.quorum.saturating_sub(q.hysteresis)))
            || (init && !q.up && sorry.is_some() && !q.sorry_active)
        {
            let was_up = q.up;
            q.up = false;
            if let (Some((addr, port)), false) = (sorry, q.sorry_active) {
                q.sorry_active = true;
                events.push(HealthEvent::Sorry {
                    service: key,
                    addr,
                    port,
                    active: true,
                });
            }
            if was_up || init {
                events.insert(
                    0,
                    HealthEvent::Quorum {
                        service: key,
                        up: false,
                        live_weight: live,
                        quorum: q.quorum,
                    },
                );
            }
        }
        if sorry.is_none() {
            q.sorry_active = false;
        }
        if let Some(Some(svc)) = self.services.get_mut(sid as usize) {
            svc.quorum = q;
        }
        if managed {
            for e in events {
                self.push_health_event(e);
            }
        }
    }

    /// Moves every member to where [`desired`] puts it: removals first (each announced
    /// with its index), then inhibit edits (one `Edited`), then additions at the head in
    /// configuration order (as keepalived re-adds them).
    fn place_all(&mut self, sid: u32) {
        let Some(mut svc) = self.services.get_mut(sid as usize).and_then(Option::take) else {
            return;
        };
        let sorry_active = svc.quorum.sorry_active;
        for i in 0..svc.members.len() {
            let id = svc.members[i];
            let Some(Some(e)) = self.dests.get_mut(id as usize) else {
                continue;
            };
            if !e.in_list || desired(e, sorry_active).is_some() {
                continue;
            }
            e.in_list = false;
            e.parked = true;
            e.inhibited = false;
            if let Some(index) = svc.list.iter().position(|&x| x == id) {
                svc.list.remove(index);
                renumber(&svc.list, &mut self.dests);
                fill_view(&svc.list, &self.dests, &mut svc.view);
                svc.scheduler
                    .update(&svc.view, ListChange::Removed { index });
            }
        }
        let mut edited = false;
        for &id in &svc.members {
            let Some(Some(e)) = self.dests.get_mut(id as usize) else {
                continue;
            };
            if let (true, Some(inhibited)) = (e.in_list, desired(e, sorry_active)) {
                if e.inhibited != inhibited {
                    let before = e.live_weight();
                    e.inhibited = inhibited;
                    edited |= before != e.live_weight();
                }
            }
        }
        if edited {
            fill_view(&svc.list, &self.dests, &mut svc.view);
            svc.scheduler.update(&svc.view, ListChange::Edited);
        }
        for i in 0..svc.members.len() {
            let id = svc.members[i];
            let Some(Some(e)) = self.dests.get_mut(id as usize) else {
                continue;
            };
            let Some(inhibited) = desired(e, sorry_active) else {
                continue;
            };
            if e.in_list {
                continue;
            }
            e.in_list = true;
            e.parked = false;
            e.inhibited = inhibited;
            svc.list.insert(0, id);
            renumber(&svc.list, &mut self.dests);
            fill_view(&svc.list, &self.dests, &mut svc.view);
            svc.scheduler
                .update(&svc.view, ListChange::Added { index: 0 });
        }
        self.services[sid as usize] = Some(svc);
    }

    /// A configured destination of a service (listed or parked): `(service, dest)` ids.
    pub(super) fn find_member(
        &self,
        service: &ServiceKey,
        addr: impl Into<IpAddr>,
        port: u16,
    ) -> Result<(u32, u32), EditError> {
        let addr: IpAddr = addr.into();
        let sid = *self
            .service_index
            .get(&(service.protocol, service.vip, service.port))
            .ok_or(EditError::NoService(*service))?;
        let svc = self
            .services
            .get(sid as usize)
            .and_then(Option::as_ref)
            .ok_or(EditError::NoService(*service))?;
        let did = svc
            .members
            .iter()
            .copied()
            .find(|&id| {
                self.dests
                    .get(id as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|e| e.spec.addr == addr && e.spec.port == port)
            })
            .ok_or(EditError::NoDest {
                service: *service,
                addr,
                port,
            })?;
        Ok((sid, did))
    }

    /// A NAT TCP connection to `did` was made by a SYN from `client`: watch the handshake.
    pub(super) fn passive_syn(&mut self, now: Instant, did: u32, client: (IpAddr, u16)) {
        let Some(Some(e)) = self.dests.get_mut(did as usize) else {
            return;
        };
        let Some(p) = e.passive.as_mut() else { return };
        if p.down {
            return;
        }
        let deadline = now + p.spec.syn_timeout;
        if let Some(slot) = p.pending.iter_mut().find(|s| s.is_none()) {
            *slot = Some(Pending { client, deadline });
            self.next_passive = Some(self.next_passive.map_or(deadline, |t| t.min(deadline)));
        }
    }

    /// A TCP segment from real server `did` to `client`: a SYN-ACK or RST settles a
    /// watched handshake.
    pub(super) fn passive_reply(
        &mut self,
        now: Instant,
        did: u32,
        client: (IpAddr, u16),
        flags: TcpFlags,
    ) {
        // Most replies are neither: decide before touching the destination.
        let ok = flags.syn && flags.ack && !flags.rst;
        if !ok && !flags.rst {
            return;
        }
        let Some(Some(e)) = self.dests.get_mut(did as usize) else {
            return;
        };
        let Some(p) = e.passive.as_mut() else { return };
        let Some(slot) = p
            .pending
            .iter_mut()
            .find(|s| s.is_some_and(|s| s.client == client))
        else {
            return;
        };
        *slot = None;
        if ok {
            self.passive_success(now, did);
        } else {
            self.passive_failure(now, did, Failed::Rst);
        }
    }

    fn passive_success(&mut self, _now: Instant, did: u32) {
        let Some(Some(e)) = self.dests.get_mut(did as usize) else {
            return;
        };
        let Some(p) = e.passive.as_mut() else { return };
        p.failures = 0;
        if !p.probation {
            return;
        }
        p.probation = false;
        let after = p.backoff;
        p.backoff = p.spec.backoff;
        let (addr, port, sid) = (e.spec.addr, e.spec.port, e.service);
        if let Some(service) = self.service_key(sid) {
            self.push_health_event(HealthEvent::Changed {
                service,
                addr,
                port,
                up: true,
                check: "passive".into(),
                reason: format!(
                    "handshake completed on probation (after a {} back-off)",
                    fmt_duration(after)
                ),
            });
        }
    }

    fn passive_failure(&mut self, now: Instant, did: u32, why: Failed) {
        let Some(Some(e)) = self.dests.get_mut(did as usize) else {
            return;
        };
        let Some(p) = e.passive.as_mut() else { return };
        p.failures = p.failures.saturating_add(1);
        if p.down {
            return;
        }
        let reason = if p.probation {
            let tried = p.backoff;
            p.backoff = (p.backoff * 2).min(p.spec.max_backoff.max(p.spec.backoff));
            format!(
                "failed handshake on probation after a {} back-off: {why}; next try in {}",
                fmt_duration(tried),
                fmt_duration(p.backoff)
            )
        } else if p.failures >= p.spec.failures.max(1) {
            p.backoff = p.spec.backoff;
            format!(
                "{} failed handshakes in a row (failures {}): {why}; next try in {}",
                p.failures,
                p.spec.failures,
                fmt_duration(p.backoff)
            )
        } else {
            return;
        };
        p.down = true;
        p.probation = false;
        p.pending = [None; PASSIVE_PENDING];
        let retry = now + p.backoff;
        p.retry_at = Some(retry);
        self.next_passive = Some(self.next_passive.map_or(retry, |t| t.min(retry)));
        let (addr, port, sid) = (e.spec.addr, e.spec.port, e.service);
        let alive = e.alive();
        let check_up = e.check_up;
        if let Some(service) = self.service_key(sid) {
            if check_up {
                self.push_health_event(HealthEvent::Changed {
                    service,
                    addr,
                    port,
                    up: alive,
                    check: "passive".into(),
                    reason,
                });
            }
        }
        self.settle_health(sid, false);
    }

    /// Passive detection's timers: unanswered SYNs fail, down servers whose back-off
    /// ended go on probation.
    pub(super) fn passive_timeout(&mut self, now: Instant) {
        let mut next: Option<Instant> = None;
        for i in 0..self.passive_dests.len() {
            let did = self.passive_dests[i];
            let Some(Some(e)) = self.dests.get_mut(did as usize) else {
                continue;
            };
            let Some(p) = e.passive.as_mut() else {
                continue;
            };
            let mut expired = 0u32;
            for slot in p.pending.iter_mut() {
                if slot.is_some_and(|s| s.deadline <= now) {
                    *slot = None;
                    expired += 1;
                }
            }
            let timeout = p.spec.syn_timeout;
            if p.retry_at.is_some_and(|t| t <= now) {
                p.retry_at = None;
                p.down = false;
                p.probation = true;
                p.failures = 0;
                let sid = e.service;
                self.settle_health(sid, false);
            }
            for _ in 0..expired {
                self.passive_failure(now, did, Failed::NoSynAck(timeout));
            }
            if let Some(Some(e)) = self.dests.get(did as usize) {
                if let Some(t) = e.passive.as_ref().and_then(PassiveState::next_deadline) {
                    next = Some(next.map_or(t, |n| n.min(t)));
                }
            }
        }
        self.next_passive = next;
    }

    fn service_key(&self, sid: u32) -> Option<ServiceKey> {
        self.services.get(sid as usize)?.as_ref().map(Service::key)
    }

    /// A destination as the listings report it.
    pub(super) fn dest_stats_of(&self, e: &DestEntry) -> DestStats {
        let watched = e.spec.health.checked || e.passive.is_some();
        DestStats {
            addr: e.spec.addr,
            port: e.spec.port,
            weight: e.live_weight(),
            forwarding: e.spec.forwarding,
            active: e.active,
            inactive: e.inactive,
            persistent: e.persistent,
            overloaded: e.overloaded,
            upper_threshold: e.spec.upper_threshold,
            lower_threshold: e.spec.lower_threshold,
            counters: e.counters,
            rates: e.est.rates(),
            neighbour_mac: self.neighbours.get(e.neighbour).and_then(|n| n.mac),
            config_weight: e.spec.weight,
            in_service: e.in_list,
            sorry: e.sorry,
            health: watched.then(|| DestHealth {
                checked: e.spec.health.checked,
                check_up: e.check_up,
                alive: e.alive(),
                inhibit_on_failure: e.spec.health.inhibit_on_failure,
                passive: e.passive.as_ref().map(PassiveState::status),
            }),
        }
    }

    /// The service's quorum state, when it has anything health-related.
    pub(super) fn quorum_status(&self, svc: &Service) -> Option<QuorumStatus> {
        let mut managed = false;
        let mut live = 0u64;
        for &id in &svc.members {
            let Some(Some(e)) = self.dests.get(id as usize) else {
                continue;
            };
            managed |= e.sorry || e.spec.health.checked || e.spec.health.passive.is_some();
            if !e.sorry && e.alive() {
                live += u64::from(e.spec.weight);
            }
        }
        managed.then_some(QuorumStatus {
            quorum: svc.quorum.quorum,
            hysteresis: svc.quorum.hysteresis,
            live_weight: live,
            up: svc.quorum.up,
            sorry_active: svc.quorum.sorry_active,
        })
    }
}

/// Why a watched handshake failed (formatted only when it takes a server down).
#[derive(Debug, Clone, Copy)]
enum Failed {
    /// The real server answered the SYN with an RST.
    Rst,
    /// No SYN-ACK within `syn_timeout`.
    NoSynAck(Duration),
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failed::Rst => f.write_str("RST answering the SYN"),
            Failed::NoSynAck(t) => write!(f, "no SYN-ACK within {}", fmt_duration(*t)),
        }
    }
}

/// `1.5s`, `300ms`, `2s`.
fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else if ms >= 1000 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{ms}ms")
    }
}
