//! All VRRP instances of one director: VRID demultiplexing and sync groups.
//!
//! Sync groups follow keepalived's `vrrp_sync_group`: when a member becomes master, the
//! group's backups become master too; when a master member steps down to backup, the
//! group's other masters follow; when a member enters FAULT, every member enters FAULT
//! and stays there until no member has a faulty interface, then all go to Backup and
//! re-elect. Moves made for the group do not propagate again (no cascades).
//!
//! Invariant: each action is tagged with the [`InstanceId`] it belongs to, and actions
//! come out in the order they must be applied.

use std::time::Instant;

use lvs_proto::{VrrpInstanceInfo, VrrpState};

use super::config::{ConfigError, InstanceConfig, SyncGroupConfig};
use super::counters::{Counters, Reject};
use super::instance::{Instance, Received};
use super::{Action, Reason};

/// Index of an instance inside its [`Router`] (configuration order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceId(pub usize);

#[derive(Debug, Clone)]
struct Group {
    name: String,
    members: Vec<usize>,
}

/// Every instance of a director.
#[derive(Debug, Clone)]
pub struct Router {
    instances: Vec<Instance>,
    groups: Vec<Group>,
    /// Drops no instance could be charged with (no instance for that VRID/interface,
    /// or not even an IPv4 VRRP packet).
    unmatched: Counters,
    scratch: Vec<Action>,
}

impl Router {
    /// Validates every instance and group: names unique, one VRID per interface and
    /// family (IPv4 and IPv6 virtual routers are independent, RFC 9568 §1; keepalived
    /// allows one VRID for both), each instance in at most one group.
    pub fn new(
        configs: Vec<InstanceConfig>,
        groups: Vec<SyncGroupConfig>,
    ) -> Result<Self, ConfigError> {
        let mut instances: Vec<Instance> = Vec::with_capacity(configs.len());
        for c in configs {
            let dup = instances.iter().any(|i| {
                i.name() == c.name
                    || (i.config().interface == c.interface
                        && i.config().vrid == c.vrid
                        && i.config().is_ipv6() == c.is_ipv6())
            });
            if dup {
                return Err(ConfigError::Duplicate(c.name));
            }
            instances.push(Instance::new(c)?);
        }
        let mut out_groups = Vec::with_capacity(groups.len());
        for g in groups {
            let mut members = Vec::with_capacity(g.members.len());
            for m in &g.members {
                let idx = instances.iter().position(|i| i.name() == m);
                let bad = || ConfigError::SyncMember {
                    group: g.name.clone(),
                    member: m.clone(),
                };
                let idx = idx.ok_or_else(bad)?;
                if members.contains(&idx)
                    || out_groups
                        .iter()
                        .any(|og: &Group| og.members.contains(&idx))
                {
                    return Err(bad());
                }
                members.push(idx);
            }
            for &i in &members {
                instances[i].set_sync_group(Some(g.name.clone()));
            }
            out_groups.push(Group {
                name: g.name,
                members,
            });
        }
        Ok(Router {
            instances,
            groups: out_groups,
            unmatched: Counters::default(),
            scratch: Vec::new(),
        })
    }

    /// The instances, in configuration order ([`InstanceId`] indexes this).
    pub fn instances(&self) -> &[Instance] {
        &self.instances
    }

    /// One instance.
    pub fn instance(&self, id: InstanceId) -> Option<&Instance> {
        self.instances.get(id.0)
    }

    /// The instance called `name`.
    pub fn find(&self, name: &str) -> Option<InstanceId> {
        self.instances
            .iter()
            .position(|i| i.name() == name)
            .map(InstanceId)
    }

    /// Drops not charged to any instance.
    pub fn unmatched(&self) -> &Counters {
        &self.unmatched
    }

    /// Starts every instance (RFC 9568 §6.4.1), then lines the sync groups up.
    pub fn start(&mut self, now: Instant, out: &mut Vec<(InstanceId, Action)>) {
        self.update_holds("");
        for i in 0..self.instances.len() {
            self.run(i, now, out, |inst, now, o| inst.start(now, o));
        }
    }

    /// Stops every instance gracefully (priority-0 adverts from masters).
    pub fn stop(&mut self, now: Instant, out: &mut Vec<(InstanceId, Action)>) {
        for (i, inst) in self.instances.iter_mut().enumerate() {
            self.scratch.clear();
            inst.stop(now, &mut self.scratch);
            out.extend(self.scratch.drain(..).map(|a| (InstanceId(i), a)));
        }
    }

    /// Feeds an IPv4 packet received on `interface` to the instance with its VRID there.
    pub fn handle_packet(
        &mut self,
        now: Instant,
        interface: &str,
        packet: &[u8],
        out: &mut Vec<(InstanceId, Action)>,
    ) -> Result<InstanceId, Reject> {
        match Received::from_ipv4(packet) {
            Ok(rx) => self.handle_received(now, interface, &rx, out),
            Err(r) => {
                self.unmatched.reject(r);
                Err(r)
            }
        }
    }

    /// Feeds a whole IPv6 packet (fixed header, next header VRRP) received on `interface`.
    pub fn handle_packet6(
        &mut self,
        now: Instant,
        interface: &str,
        packet: &[u8],
        out: &mut Vec<(InstanceId, Action)>,
    ) -> Result<InstanceId, Reject> {
        match Received::from_ipv6(packet) {
            Ok(rx) => self.handle_received(now, interface, &rx, out),
            Err(r) => {
                self.unmatched.reject(r);
                Err(r)
            }
        }
    }

    /// Feeds a received advert (either family; the IPv6 raw socket hands over the
    /// header fields, not the header) to the instance with its VRID and family on
    /// `interface`.
    pub fn handle_received(
        &mut self,
        now: Instant,
        interface: &str,
        rx: &Received<'_>,
        out: &mut Vec<(InstanceId, Action)>,
    ) -> Result<InstanceId, Reject> {
        let Some(&vrid) = rx.payload.get(1) else {
            self.unmatched.reject(Reject::PacketLen);
            return Err(Reject::PacketLen);
        };
        let v6 = rx.src.is_ipv6();
        let Some(i) = self.instances.iter().position(|inst| {
            let c = inst.config();
            c.interface == interface && c.vrid == vrid && c.is_ipv6() == v6
        }) else {
            self.unmatched.reject(Reject::Vrid);
            return Err(Reject::Vrid);
        };
        let mut result = Ok(());
        self.run(i, now, out, |inst, now, o| {
            result = inst.handle_advert(now, rx, o);
        });
        result.map(|()| InstanceId(i))
    }

    /// The earliest instant any instance has timer work.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.instances
            .iter()
            .filter_map(Instance::poll_timeout)
            .min()
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut Vec<(InstanceId, Action)>) {
        for i in 0..self.instances.len() {
            if self.instances[i].poll_timeout().is_some_and(|t| t <= now) {
                self.run(i, now, out, |inst, now, o| inst.handle_timeout(now, o));
            }
        }
    }

    /// An interface went up or down. Instances tracking it enter or leave FAULT; a sync
    /// group stays in FAULT while any member has a faulty interface.
    pub fn set_link(
        &mut self,
        now: Instant,
        interface: &str,
        up: bool,
        out: &mut Vec<(InstanceId, Action)>,
    ) {
        for inst in &mut self.instances {
            inst.note_link(interface, up);
        }
        let group_reason = self.update_holds(interface);
        for (i, reason) in group_reason.into_iter().enumerate() {
            self.scratch.clear();
            self.instances[i].reconcile_links(now, interface, reason, &mut self.scratch);
            out.extend(self.scratch.drain(..).map(|a| (InstanceId(i), a)));
        }
    }

    /// Sets each sync-group member's FAULT hold from its siblings' links; returns the
    /// reason a held member gives.
    fn update_holds(&mut self, interface: &str) -> Vec<Option<Reason>> {
        let mut group_reason: Vec<Option<Reason>> = vec![None; self.instances.len()];
        for g in &self.groups {
            let faulty = g
                .members
                .iter()
                .find(|&&m| self.instances[m].link_fault())
                .map(|&m| self.instances[m].name().to_string());
            for &m in &g.members {
                self.instances[m].set_group_hold(faulty.is_some());
                group_reason[m] = Some(Reason::SyncGroup {
                    group: g.name.clone(),
                    instance: faulty.clone().unwrap_or_else(|| interface.to_string()),
                });
            }
        }
        group_reason
    }

    /// The control API's snapshot of every instance.
    pub fn info(&self, now: Instant, now_unix_ms: u64) -> Vec<VrrpInstanceInfo> {
        self.instances
            .iter()
            .map(|i| i.info(now, now_unix_ms))
            .collect()
    }

    /// Runs `f` on instance `i`, tags its actions, then applies its sync group.
    fn run(
        &mut self,
        i: usize,
        now: Instant,
        out: &mut Vec<(InstanceId, Action)>,
        f: impl FnOnce(&mut Instance, Instant, &mut Vec<Action>),
    ) {
        self.scratch.clear();
        f(&mut self.instances[i], now, &mut self.scratch);
        let moves: Vec<(VrrpState, VrrpState)> = self
            .scratch
            .iter()
            .filter_map(|a| match a {
                Action::Transition { from, to, .. } => Some((*from, *to)),
                _ => None,
            })
            .collect();
        out.extend(self.scratch.drain(..).map(|a| (InstanceId(i), a)));
        for (from, to) in moves {
            self.follow(i, from, to, now, out);
        }
    }

    /// keepalived sync-group semantics (module doc) after member `i` moved `from → to`.
    fn follow(
        &mut self,
        i: usize,
        from: VrrpState,
        to: VrrpState,
        now: Instant,
        out: &mut Vec<(InstanceId, Action)>,
    ) {
        let Some(g) = self.groups.iter().find(|g| g.members.contains(&i)) else {
            return;
        };
        let target = match (from, to) {
            (VrrpState::Backup, VrrpState::Master) => VrrpState::Master,
            (VrrpState::Master, VrrpState::Backup) => VrrpState::Backup,
            // FAULT is lined up by `set_link` (the group hold), startup and stop by
            // the callers.
            _ => return,
        };
        let reason = Reason::SyncGroup {
            group: g.name.clone(),
            instance: self.instances[i].name().to_string(),
        };
        let others: Vec<usize> = g.members.iter().copied().filter(|&m| m != i).collect();
        for m in others {
            self.scratch.clear();
            self.instances[m].sync_to(now, target, reason.clone(), &mut self.scratch);
            out.extend(self.scratch.drain(..).map(|a| (InstanceId(m), a)));
        }
    }
}
