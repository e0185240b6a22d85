//! New-connection decisions: persistence templates (spec b.16), the scheduler, the ring of
//! recent decisions with their explanations, and `simulate`.
//!
//! Invariants:
//! - [`Dataplane::decide`] is where every new connection's destination is chosen, as the
//!   kernel's `ip_vs_schedule` / `ip_vs_sched_persist` do it: on a persistent service a live
//!   template for `(proto, client & netmask, 0, vip, vport)` whose destination is still in
//!   the list (AVAILABLE) and not (`quiescent_template_expire` and weight 0) wins without
//!   asking the scheduler, whatever its load or OVERLOAD flag; a template that fails the
//!   check is invalidated; otherwise the scheduler picks and, on a persistent service, a
//!   new template is bound to the pick (`persistent += 1`).
//! - Recording costs nothing unless someone looks: a service records only while `now` is
//!   before its `watch_until`, which [`Dataplane::decisions_since`] moves to
//!   `now + DECISION_WATCH`. Unwatched, no [`Explain`] is made and nothing is formatted or
//!   allocated.
//! - Each service keeps at most [`DECISION_RING`] decisions, oldest dropped first. Sequence
//!   numbers start at 1 and increase across the whole dataplane, so they are unique and
//!   `decisions_since(.., 0)` returns everything kept.
//! - [`Dataplane::simulate`] changes nothing: the template lookup is read-only and the
//!   scheduler that answers is a clone of the live one.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use lvs_proto::{Protocol, SchedulerKind};

use super::family::Family;
use super::reconfig::fill_view;
use super::{Dataplane, Hold, Persistence, Service, announce, bind_dest};
use crate::conn::TcpState;
use crate::conn::table::{ConnId, ConnState, FlowKey, NewTemplate};
use crate::sched::{Explain, Flow};

/// Decisions kept per service.
pub const DECISION_RING: usize = 256;
/// How long a service records decisions after [`Dataplane::decisions_since`] asked.
pub const DECISION_WATCH: Duration = Duration::from_secs(10);

/// A virtual service's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    /// Protocol.
    pub protocol: Protocol,
    /// Virtual address.
    pub vip: IpAddr,
    /// Virtual port.
    pub port: u16,
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}",
            self.protocol.ipvsadm_name(),
            SocketAddr::new(self.vip, self.port)
        )
    }
}

/// One new-connection decision, as recorded while someone watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Sequence number (unique, increasing, from 1).
    pub seq: u64,
    /// When it was made.
    pub at: Instant,
    /// The service.
    pub service: ServiceKey,
    /// The client (the packet's source).
    pub client: SocketAddr,
    /// The real server chosen, or `None` ("no destination available": dropped).
    pub dest: Option<SocketAddr>,
    /// The service's scheduler.
    pub scheduler: SchedulerKind,
    /// Why: the scheduler's explanation (what it compared), or the persistence template
    /// that decided (`persistence template hit, 120 s left`); one step per line.
    pub reason: String,
}

/// What [`Dataplane::simulate`] answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulateResult {
    /// The service the flow belongs to, if any.
    pub service: Option<ServiceKey>,
    /// The real server it would go to now (`None`: dropped, or not a service).
    pub dest: Option<SocketAddr>,
    /// Why, as in [`Decision::reason`].
    pub reason: String,
}

/// The outcome of [`Dataplane::decide`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Choice {
    /// Destination id.
    pub dest: u32,
    /// The template the connection is made under (persistent services).
    pub template: Option<ConnId>,
}

/// What the persistence template says about a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TemplateCheck {
    /// Not a persistent service.
    Off,
    /// No template for this client.
    Miss,
    /// A usable template: go to `dest`.
    Hit {
        id: ConnId,
        dest: u32,
        left: Duration,
    },
    /// A template whose destination may not be used any more.
    Invalid { id: ConnId, why: &'static str },
}

/// Appends a line to an explanation being recorded.
macro_rules! note {
    ($explain:expr, $($arg:tt)*) => {
        if let Some(e) = $explain.as_mut() {
            e.note(format_args!($($arg)*));
        }
    };
}

impl Dataplane {
    /// Chooses the destination of a new connection of service `sid` (module doc), making
    /// or invalidating a persistence template as needed, and records the decision if the
    /// service is watched. `None`: no destination available.
    pub(super) fn decide<A: Family>(
        &mut self,
        now: Instant,
        sid: u32,
        flow: &Flow,
    ) -> Option<Choice> {
        let svc = self.services.get(sid as usize)?.as_ref()?;
        let watched = svc.watch_until.is_some_and(|t| now < t);
        let persistence = svc.persistence;
        let check = self.template_check::<A>(now, svc, flow);
        let mut explain = watched.then(Explain::new);
        let choice = match check {
            TemplateCheck::Hit { id, dest, left } => {
                note!(
                    explain,
                    "persistence template hit, {} s left",
                    left.as_secs()
                );
                Some(Choice {
                    dest,
                    template: Some(id),
                })
            }
            TemplateCheck::Off | TemplateCheck::Miss | TemplateCheck::Invalid { .. } => {
                if let TemplateCheck::Invalid { id, why } = check {
                    A::table_mut(&mut self.conns).invalidate_template(id);
                    note!(explain, "persistence template invalidated: {why}");
                }
                self.run_scheduler(now, sid, flow, explain.as_mut())
                    .map(|dest| {
                        let template = persistence.and_then(|p| {
                            note!(
                                explain,
                                "new persistence template, {} s",
                                p.timeout.as_secs()
                            );
                            self.new_template::<A>(now, sid, dest, flow, &p)
                        });
                        Choice { dest, template }
                    })
            }
        };
        if let Some(e) = explain {
            self.record(now, sid, flow, choice.map(|c| c.dest), e);
        }
        choice
    }

    /// The template verdict for `flow` on `svc`, read-only (kernel `ip_vs_ct_in_get` and
    /// `ip_vs_check_template`).
    fn template_check<A: Family>(&self, now: Instant, svc: &Service, flow: &Flow) -> TemplateCheck {
        let Some(p) = svc.persistence else {
            return TemplateCheck::Off;
        };
        let (Some(src), Some(dst)) = (A::of(flow.src.ip()), A::of(flow.dst.ip())) else {
            return TemplateCheck::Miss;
        };
        let key = FlowKey {
            protocol: flow.protocol,
            src: src.masked(&p),
            src_port: 0,
            dst,
            dst_port: flow.dst.port(),
        };
        let conns = A::table(&self.conns);
        let Some(id) = conns.find_template(&key) else {
            return TemplateCheck::Miss;
        };
        let Some(t) = conns.get(id) else {
            return TemplateCheck::Miss;
        };
        let dest = t.dest();
        match self.dests.get(dest as usize) {
            Some(Some(d)) if d.in_list => {
                if p.quiescent_template_expire && d.live_weight() == 0 {
                    TemplateCheck::Invalid {
                        id,
                        why: "its real server has weight 0 (quiescent_template_expire)",
                    }
                } else {
                    TemplateCheck::Hit {
                        id,
                        dest,
                        left: conns.expires_in(id, now).unwrap_or_default(),
                    }
                }
            }
            Some(Some(d)) if d.parked => TemplateCheck::Invalid {
                id,
                why: "its real server is out of service (health)",
            },
            _ => TemplateCheck::Invalid {
                id,
                why: "its real server was removed",
            },
        }
    }

    /// Runs the service's scheduler over its view (kept in step with the list, see
    /// `announce`); returns the destination id.
    fn run_scheduler(
        &mut self,
        now: Instant,
        sid: u32,
        flow: &Flow,
        explain: Option<&mut Explain>,
    ) -> Option<u32> {
        let svc = self.services.get_mut(sid as usize)?.as_mut()?;
        #[cfg(debug_assertions)]
        {
            let mut fresh = Vec::with_capacity(svc.list.len());
            fill_view(&svc.list, &self.dests, &mut fresh);
            debug_assert_eq!(
                fresh, svc.view,
                "a destination change was not announced to the scheduler (see `announce`)"
            );
        }
        let i = svc.scheduler.schedule(now, &svc.view, flow, explain)?;
        svc.list.get(i).copied()
    }

    /// Makes a template for `flow`'s client on `dest` and binds it (`persistent += 1`).
    fn new_template<A: Family>(
        &mut self,
        now: Instant,
        sid: u32,
        dest: u32,
        flow: &Flow,
        p: &Persistence,
    ) -> Option<ConnId> {
        let d = self.dests.get_mut(dest as usize)?.as_mut()?;
        let (src, dst) = (A::of(flow.src.ip())?, A::of(flow.dst.ip())?);
        let id = A::table_mut(&mut self.conns).insert_template(
            NewTemplate {
                protocol: flow.protocol,
                forwarding: d.spec.forwarding,
                client: src.masked(p),
                virt: (dst, flow.dst.port()),
                real: (A::of(d.spec.addr).unwrap_or(A::UNSPECIFIED), d.spec.port),
                service: sid,
                dest,
                timeout: p.timeout,
            },
            now,
        );
        bind_dest(d, Hold::Template);
        announce(&mut self.services, &self.dests, dest);
        Some(id)
    }

    /// Appends a decision to the service's ring.
    fn record(&mut self, now: Instant, sid: u32, flow: &Flow, dest: Option<u32>, e: Explain) {
        let dest = dest
            .and_then(|d| self.dests.get(d as usize)?.as_ref())
            .map(|d| SocketAddr::new(d.spec.addr, d.spec.port));
        let Some(Some(svc)) = self.services.get_mut(sid as usize) else {
            return;
        };
        self.decision_seq += 1;
        if svc.decisions.len() >= DECISION_RING {
            svc.decisions.pop_front();
        }
        svc.decisions.push_back(Decision {
            seq: self.decision_seq,
            at: now,
            service: svc.key(),
            client: flow.src,
            dest,
            scheduler: svc.scheduler.kind(),
            reason: e.as_str().to_owned(),
        });
    }

    /// The service's recorded decisions with a sequence number above `seq`, oldest first;
    /// also (re)starts recording for [`DECISION_WATCH`] from `now`. Poll it with the last
    /// `seq` seen. Empty for an unknown service.
    pub fn decisions_since(
        &mut self,
        now: Instant,
        service: &ServiceKey,
        seq: u64,
    ) -> Vec<Decision> {
        let key = (service.protocol, service.vip, service.port);
        let Some(&sid) = self.service_index.get(&key) else {
            return Vec::new();
        };
        let Some(Some(svc)) = self.services.get_mut(sid as usize) else {
            return Vec::new();
        };
        svc.watch_until = Some(now + DECISION_WATCH);
        svc.decisions
            .iter()
            .filter(|d| d.seq > seq)
            .cloned()
            .collect()
    }

    /// Which real server a new connection `flow` (protocol, client, VIP:port) would go to
    /// now, and why, without changing anything (module doc). A flow with a live connection
    /// entry is answered from it (unless a TCP SYN would reuse it: TIME_WAIT, CLOSE).
    pub fn simulate(&self, now: Instant, flow: &Flow) -> SimulateResult {
        match flow.dst.ip() {
            IpAddr::V4(_) => self.simulate_in::<std::net::Ipv4Addr>(now, flow),
            IpAddr::V6(_) => self.simulate_in::<std::net::Ipv6Addr>(now, flow),
        }
    }

    fn simulate_in<A: Family>(&self, now: Instant, flow: &Flow) -> SimulateResult {
        let key = ServiceKey {
            protocol: flow.protocol,
            vip: flow.dst.ip(),
            port: flow.dst.port(),
        };
        let svc = self
            .service_index
            .get(&(key.protocol, key.vip, key.port))
            .and_then(|&sid| self.services.get(sid as usize)?.as_ref());
        let Some(svc) = svc else {
            return SimulateResult {
                service: None,
                dest: None,
                reason: format!("no virtual service {key}"),
            };
        };
        let endpoint = |did: u32| {
            self.dests
                .get(did as usize)
                .and_then(Option::as_ref)
                .map(|d| SocketAddr::new(d.spec.addr, d.spec.port))
        };
        let conns = A::table(&self.conns);
        let existing = A::of(flow.src.ip())
            .zip(A::of(key.vip))
            .and_then(|(src, dst)| {
                conns.find_inbound(&FlowKey {
                    protocol: flow.protocol,
                    src,
                    src_port: flow.src.port(),
                    dst,
                    dst_port: key.port,
                })
            })
            .and_then(|id| Some((id, conns.get(id)?)));
        if let Some((id, c)) = existing {
            let reused = matches!(
                c.state(),
                ConnState::Tcp(TcpState::TimeWait | TcpState::Close)
            );
            if !reused {
                let left = conns.expires_in(id, now).unwrap_or_default();
                return SimulateResult {
                    service: Some(key),
                    dest: Some(self.real_of(c)),
                    reason: format!(
                        "existing connection ({}, {} s left)",
                        c.state().name(),
                        left.as_secs()
                    ),
                };
            }
        }
        let mut explain = Some(Explain::new());
        let dest = match self.template_check::<A>(now, svc, flow) {
            TemplateCheck::Hit { dest, left, .. } => {
                note!(
                    explain,
                    "persistence template hit, {} s left",
                    left.as_secs()
                );
                endpoint(dest)
            }
            check => {
                if let TemplateCheck::Invalid { why, .. } = check {
                    note!(explain, "persistence template would be invalidated: {why}");
                }
                let mut scheduler = svc.scheduler.clone_box();
                let mut view = Vec::with_capacity(svc.list.len());
                fill_view(&svc.list, &self.dests, &mut view);
                let pick = scheduler
                    .schedule(now, &view, flow, explain.as_mut())
                    .and_then(|i| svc.list.get(i).copied());
                if let (Some(_), Some(p)) = (pick, svc.persistence) {
                    note!(
                        explain,
                        "a new persistence template would be made, {} s",
                        p.timeout.as_secs()
                    );
                }
                pick.and_then(endpoint)
            }
        };
        SimulateResult {
            service: Some(key),
            dest,
            reason: explain.map(|e| e.as_str().to_owned()).unwrap_or_default(),
        }
    }
}
