//! Commands from the control plane and their execution on the forwarding thread.
//!
//! The control plane (tokio, its own thread) never touches the [`Dataplane`]: it sends a
//! [`Command`] with a oneshot reply through a bounded channel and writes one byte to a
//! wake-up datagram socket; the forwarding loop polls that socket with its packet sockets
//! and, between packet batches, calls [`Executor::run_pending`], which executes at most
//! [`MAX_COMMANDS_PER_ROUND`] commands and answers each.
//!
//! Invariants:
//! - Only the forwarding thread owns the [`Dataplane`], the [`EventRing`] and the drain
//!   memory; nothing here locks.
//! - A command costs the forwarding thread at most one pass over the services (listings),
//!   or one pass over the connection table (a connections page); mutations are O(list).
//! - Every mutation that succeeds records exactly one event; a failed one records none.
//! - The drain memory holds, per drained real server, the weight it had before; it is
//!   forgotten by `set_weight` and `undrain`, and after a reload for servers that are gone
//!   or no longer at weight 0.
//! - Adding or removing a service or real server is a [`ConfigEdit`] of the running
//!   configuration: checked here, applied by the owner of the kernel state (the daemon:
//!   netlink plan, nft guard, socket filters, VIPs, then `Dataplane::reconfigure`, exactly
//!   as a SIGHUP reload) through [`Executor::take_config_edit`] before any further command
//!   runs, so edits apply one after another. A reload replaces the running configuration
//!   with the file (API edits not saved to it are dropped).
//! - The channel is bounded ([`COMMAND_QUEUE`]): a full queue answers
//!   [`ApiError::Unavailable`] at once instead of growing.
//! - Health reports (from the health runner's thread) go through a [`HealthSender`]: a
//!   bounded inbox ([`HEALTH_INBOX`] reports; when full, older reports of the same real
//!   server are coalesced away, then the oldest go) and the same wake-up socket, so a
//!   flip reaches the data path at the next loop turn (well within 100 ms) and a flood of
//!   reports can never block the checker or grow without bound. The forwarding thread
//!   only `try_lock`s the inbox: a report being written is taken at the next turn.
//! - Health flips the data path made (active verdicts applied, passive detection,
//!   quorum, sorry server) become events in the order they happened
//!   ([`Executor::take_health_events`]).
//! - A dynamic weight (exec `dynamic_weight`) is a weight edit by lvsd itself; on a
//!   drained server it only changes the remembered weight (it stays drained).

use std::collections::HashMap;
use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixDatagram;
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use lvs_proto::{
    Actor, ApiError, ConnCursor, ConnEntry, ConnKey, ConnPage, ConnQuery, DecisionInfo, DrainInfo,
    Event, EventKind, FlowSpec, HealthInfo, HealthState, MAX_CONN_PAGE, MAX_WEIGHT, NewRealServer,
    NewService, PassiveInfo, PersistenceInfo, QuorumInfo, RealServerInfo, RealServerKey,
    SchedulerKind, ServiceInfo, ServiceKey, SimulateInfo, TemplateKey, Topology, VipInfo,
    WeightChange,
};

use super::events::EventRing;
use crate::config::{self as cfg, Config};
use crate::conn::TcpState;
use crate::dataplane::{
    self, ConnFilter, ConnInfo, Dataplane, DestStats, EditError, HealthEvent, KillTarget,
    ServiceStats,
};
use crate::sched::{Flow, SchedFlags};

/// Commands waiting at most; more are refused as "busy".
pub const COMMAND_QUEUE: usize = 256;
/// Health reports waiting at most (see the module doc).
pub const HEALTH_INBOX: usize = 8192;
/// Commands executed per call of [`Executor::run_pending`].
pub const MAX_COMMANDS_PER_ROUND: usize = 16;

/// Where a command's answer goes.
pub type Reply<T> = tokio::sync::oneshot::Sender<Result<T, ApiError>>;

/// A request for the forwarding thread. Mutations carry who asked (for the events).
#[derive(Debug)]
pub enum Command {
    /// Every service with its real servers.
    Services(Reply<Vec<ServiceInfo>>),
    /// Set a weight.
    SetWeight {
        /// Service.
        service: ServiceKey,
        /// Real server.
        real_server: RealServerKey,
        /// New weight.
        weight: u32,
        /// Who.
        by: Actor,
        /// Answer.
        reply: Reply<WeightChange>,
    },
    /// Drain a real server.
    Drain {
        /// Service.
        service: ServiceKey,
        /// Real server.
        real_server: RealServerKey,
        /// Who.
        by: Actor,
        /// Answer.
        reply: Reply<DrainInfo>,
    },
    /// A drain's progress.
    DrainStatus {
        /// Service.
        service: ServiceKey,
        /// Real server.
        real_server: RealServerKey,
        /// Answer.
        reply: Reply<DrainInfo>,
    },
    /// Undo a drain.
    Undrain {
        /// Service.
        service: ServiceKey,
        /// Real server.
        real_server: RealServerKey,
        /// Who.
        by: Actor,
        /// Answer.
        reply: Reply<WeightChange>,
    },
    /// A page of the connection table.
    Connections {
        /// What to list.
        query: ConnQuery,
        /// Answer.
        reply: Reply<ConnPage>,
    },
    /// Recent scheduling decisions.
    Decisions {
        /// Service.
        service: ServiceKey,
        /// After this seq.
        since: u64,
        /// Answer.
        reply: Reply<Vec<DecisionInfo>>,
    },
    /// Where a flow would go.
    Simulate {
        /// The flow.
        flow: FlowSpec,
        /// Answer.
        reply: Reply<SimulateInfo>,
    },
    /// Events after a seq.
    Events {
        /// After this seq.
        since: u64,
        /// Answer.
        reply: Reply<Vec<Event>>,
    },
    /// Zero counters.
    ZeroCounters {
        /// One service, or all.
        service: Option<ServiceKey>,
        /// Who.
        by: Actor,
        /// Answer.
        reply: Reply<()>,
    },
    /// Remove one connection entry.
    KillConnection {
        /// Which.
        conn: ConnKey,
        /// Who.
        by: Actor,
        /// Answer: the entry as it was.
        reply: Reply<ConnEntry>,
    },
    /// Remove one persistence template.
    KillTemplate {
        /// Which.
        template: TemplateKey,
        /// Who.
        by: Actor,
        /// Answer: the template as it was.
        reply: Reply<ConnEntry>,
    },
    /// The running configuration as TOML (the caller writes the file, off this thread).
    RenderConfig(Reply<RenderedConfig>),
    /// Add or remove a service or a real server: a new running configuration that the
    /// forwarding loop's owner applies (netlink plan, guard, filters, VIPs) before the
    /// next command runs ([`Executor::take_config_edit`]).
    EditConfig {
        /// The edit.
        edit: ConfigEdit,
        /// Who.
        by: Actor,
        /// Answer.
        reply: Reply<()>,
    },
    /// Where things are and how real servers are reached.
    Topology(Reply<Topology>),
    /// The VRRP instances (none without `[[vrrp_instance]]`).
    Vrrp(Reply<Vec<lvs_proto::VrrpInstanceInfo>>),
    /// The running configuration was written to `path` (records the event).
    ConfigSaved {
        /// The file.
        path: String,
        /// Who.
        by: Actor,
        /// Answer.
        reply: Reply<()>,
    },
}

/// A change of the running configuration's services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigEdit {
    /// Add a service (no real servers).
    AddService(NewService),
    /// Remove a service.
    RemoveService(ServiceKey),
    /// Add a real server to a service.
    AddRealServer(ServiceKey, NewRealServer),
    /// Remove a real server from a service.
    RemoveRealServer(ServiceKey, RealServerKey),
}

impl ConfigEdit {
    /// `config` with the edit made and checked as a configuration file is; the error
    /// says what is wrong.
    pub fn apply(&self, config: &Config) -> Result<Config, ApiError> {
        let mut next = config.clone();
        let find = |c: &Config, k: &ServiceKey| {
            c.services
                .iter()
                .position(|s| (s.protocol, s.vip, s.port) == (k.protocol, k.vip, k.port))
                .ok_or(ApiError::NoSuchService { service: *k })
        };
        match self {
            ConfigEdit::AddService(ns) => {
                let k = ns.service;
                if find(&next, &k).is_ok() {
                    return Err(ApiError::AlreadyExists {
                        what: format!("virtual service {k}"),
                    });
                }
                let scheduler_flags = crate::sched::parse_flags(ns.scheduler, &ns.flags)
                    .map_err(|message| ApiError::InvalidArgument { message })?;
                next.services.push(cfg::VirtualService {
                    protocol: k.protocol,
                    vip: k.vip,
                    port: k.port,
                    scheduler: ns.scheduler,
                    scheduler_flags,
                    forwarding: ns.forwarding,
                    persistence: ns.persistence.map(|p| cfg::Persistence {
                        timeout: std::time::Duration::from_secs(p.timeout_secs),
                        netmask: p.netmask,
                        prefix6: p.prefix6,
                        quiescent_template_expire: p.quiescent_template_expire,
                    }),
                    one_packet: ns.one_packet,
                    real_servers: Vec::new(),
                    health_check: None,
                    passive: None,
                    sorry_server: None,
                    quorum: 1,
                    hysteresis: 0,
                });
            }
            ConfigEdit::RemoveService(k) => {
                let i = find(&next, k)?;
                next.services.remove(i);
            }
            ConfigEdit::AddRealServer(k, nrs) => {
                let i = find(&next, k)?;
                let vs = &mut next.services[i];
                let r = nrs.real_server;
                if vs
                    .real_servers
                    .iter()
                    .any(|x| (x.addr, x.port) == (r.addr, r.port))
                {
                    return Err(ApiError::AlreadyExists {
                        what: format!("real server {r} in virtual service {k}"),
                    });
                }
                if nrs.weight > MAX_WEIGHT {
                    return Err(ApiError::WeightOutOfRange {
                        weight: u64::from(nrs.weight),
                    });
                }
                vs.real_servers.push(cfg::RealServer {
                    addr: r.addr,
                    port: r.port,
                    weight: nrs.weight,
                    forwarding: nrs.forwarding.unwrap_or(vs.forwarding),
                    upper_threshold: nrs.upper_threshold,
                    lower_threshold: nrs.lower_threshold,
                    // As in the file: the service's default check applies.
                    health_check: vs.health_check.clone(),
                    own_health_check: false,
                });
            }
            ConfigEdit::RemoveRealServer(k, r) => {
                let i = find(&next, k)?;
                let vs = &mut next.services[i];
                let j = vs
                    .real_servers
                    .iter()
                    .position(|x| (x.addr, x.port) == (r.addr, r.port))
                    .ok_or(ApiError::NoSuchRealServer {
                        service: *k,
                        real_server: *r,
                    })?;
                vs.real_servers.remove(j);
            }
        }
        // The file's rules, by reading the edit back as a file would be read.
        let mut checked = Config::parse(
            std::path::Path::new("the edited configuration"),
            &next.to_toml(),
        )
        .map_err(|e| ApiError::InvalidArgument {
            message: format!("{}: {}", e.key, e.message),
        })?;
        checked.control = next.control;
        Ok(checked)
    }

    /// The event of the edit, made by `by`.
    fn event(&self, by: Actor) -> EventKind {
        match self {
            ConfigEdit::AddService(ns) => EventKind::ServiceAdded {
                service: ns.service,
                by,
            },
            ConfigEdit::RemoveService(k) => EventKind::ServiceRemoved { service: *k, by },
            ConfigEdit::AddRealServer(k, r) => EventKind::RealServerAdded {
                service: *k,
                real_server: r.real_server,
                weight: r.weight,
                by,
            },
            ConfigEdit::RemoveRealServer(k, r) => EventKind::RealServerRemoved {
                service: *k,
                real_server: *r,
                by,
            },
        }
    }
}

/// A checked configuration edit waiting to be applied by the forwarding loop's owner.
#[derive(Debug)]
pub struct PendingEdit {
    /// The configuration to run.
    pub config: Config,
    event: EventKind,
    reply: Reply<()>,
}

/// The running configuration rendered for `save_config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedConfig {
    /// TOML in the documented schema.
    pub text: String,
    /// Virtual services in it.
    pub services: u32,
    /// Real servers in it.
    pub real_servers: u32,
}

/// The control plane's end of the command channel. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CommandSender {
    tx: SyncSender<Command>,
    wake: Arc<UnixDatagram>,
}

impl CommandSender {
    /// Queues a command and wakes the forwarding loop; never blocks.
    pub fn send(&self, cmd: Command) -> Result<(), ApiError> {
        match self.tx.try_send(cmd) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(ApiError::Unavailable {
                    message: format!(
                        "the forwarding loop has {COMMAND_QUEUE} requests waiting; try again"
                    ),
                });
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(ApiError::Unavailable {
                    message: "lvsd is shutting down".into(),
                });
            }
        }
        // A full wake-up buffer means a wake-up is already pending: nothing to do.
        let _ = self.wake.send(&[1]);
        Ok(())
    }
}

/// One health report for the forwarding thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthUpdate {
    /// The active check flipped.
    Changed {
        /// Service.
        service: ServiceKey,
        /// Real server.
        real_server: RealServerKey,
        /// Up or down now.
        state: HealthState,
        /// The check's description.
        check: String,
        /// Why.
        reason: String,
    },
    /// An exec check with `dynamic_weight` asks for a weight.
    Weight {
        /// Service.
        service: ServiceKey,
        /// Real server.
        real_server: RealServerKey,
        /// The weight.
        weight: u32,
    },
}

impl HealthUpdate {
    fn target(&self) -> (ServiceKey, RealServerKey) {
        match self {
            HealthUpdate::Changed {
                service,
                real_server,
                ..
            }
            | HealthUpdate::Weight {
                service,
                real_server,
                ..
            } => (*service, *real_server),
        }
    }
}

/// The health runner's end of the channel (module doc). Cheap to clone; never blocks
/// for longer than an insert into a bounded queue.
#[derive(Debug, Clone)]
pub struct HealthSender {
    inbox: Arc<Mutex<VecDeque<HealthUpdate>>>,
    wake: Arc<UnixDatagram>,
}

impl HealthSender {
    /// Queues a report and wakes the forwarding loop.
    pub fn send(&self, update: HealthUpdate) {
        {
            let mut inbox = match self.inbox.lock() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            if inbox.len() >= HEALTH_INBOX {
                let target = update.target();
                inbox.retain(|u| u.target() != target);
            }
            while inbox.len() >= HEALTH_INBOX {
                inbox.pop_front();
            }
            inbox.push_back(update);
        }
        let _ = self.wake.send(&[2]);
    }
}

/// A snapshot of the active checks, by real server (the health runner's view).
pub type HealthView =
    Box<dyn Fn() -> HashMap<(ServiceKey, RealServerKey), HealthInfo> + Send + 'static>;

/// A connected command channel: the sender for the control plane, the executor for the
/// forwarding thread.
pub fn channel(now: Instant) -> io::Result<(CommandSender, Executor)> {
    let (tx, rx) = mpsc::sync_channel(COMMAND_QUEUE);
    let (wake_tx, wake_rx) = UnixDatagram::pair()?;
    wake_tx.set_nonblocking(true)?;
    wake_rx.set_nonblocking(true)?;
    let wake_tx = Arc::new(wake_tx);
    let mut exec = Executor {
        health_inbox: Arc::new(Mutex::new(VecDeque::new())),
        health_wake: Arc::clone(&wake_tx),
        health_view: None,
        vrrp_view: None,
        health_waiting: false,
        rx,
        wake: wake_rx,
        events: EventRing::default(),
        drained: HashMap::new(),
        epoch: (now, SystemTime::now()),
        running: None,
        pending: None,
        vips: Vec::new(),
    };
    exec.record(
        now,
        EventKind::Started {
            version: env!("CARGO_PKG_VERSION").to_string(),
        },
    );
    Ok((CommandSender { tx, wake: wake_tx }, exec))
}

/// Executes commands against the dataplane on the forwarding thread (module doc).
#[derive(Debug)]
pub struct Executor {
    rx: Receiver<Command>,
    wake: UnixDatagram,
    events: EventRing,
    /// Weight before the drain, per drained real server.
    drained: HashMap<(ServiceKey, RealServerKey), u32>,
    /// An instant and the wall-clock time it corresponds to.
    epoch: (Instant, SystemTime),
    /// The configuration the daemon runs (the file as last loaded; API weight edits live
    /// in the dataplane and are overlaid when it is rendered).
    running: Option<Config>,
    /// A configuration edit for the owner to apply (at most one at a time).
    pending: Option<PendingEdit>,
    /// The VIPs and where they live, as the owner last set them up.
    vips: Vec<VipInfo>,
    /// Health reports waiting (module doc).
    health_inbox: Arc<Mutex<VecDeque<HealthUpdate>>>,
    /// The wake-up socket's sending end, for [`HealthSender`]s.
    health_wake: Arc<UnixDatagram>,
    /// The health runner's snapshot, for listings.
    health_view: Option<HealthViewBox>,
    /// The inbox was busy at the last turn: look again.
    health_waiting: bool,
    /// The VRRP driver's instances (issue 7), when VRRP runs.
    vrrp_view: Option<crate::vrrp::driver::VrrpView>,
}

/// [`HealthView`] with a `Debug` impl.
struct HealthViewBox(HealthView);

impl std::fmt::Debug for HealthViewBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HealthView")
    }
}

impl Executor {
    /// The fd to poll with the packet sockets: readable when commands wait.
    pub fn wake_fd(&self) -> BorrowedFd<'_> {
        self.wake.as_fd()
    }

    /// A sender for health reports into this executor (module doc).
    pub fn health_sender(&self) -> HealthSender {
        HealthSender {
            inbox: Arc::clone(&self.health_inbox),
            wake: Arc::clone(&self.health_wake),
        }
    }

    /// Where listings get the active checks' state from.
    pub fn set_health_view(&mut self, view: HealthView) {
        self.health_view = Some(HealthViewBox(view));
    }

    /// Forgets the listing view (before the health runner stops).
    pub fn clear_health_view(&mut self) {
        self.health_view = None;
    }

    /// Where `vrrp()` and the topology's VRRP role come from (`None`: no VRRP).
    pub fn set_vrrp_view(&mut self, view: Option<crate::vrrp::driver::VrrpView>) {
        self.vrrp_view = view;
    }

    /// Applies the waiting health reports to the data path (never blocks: a busy inbox
    /// is looked at again at the next turn), then records the data path's health events.
    pub fn apply_health(&mut self, dp: &mut Dataplane, now: Instant) {
        let updates: Vec<HealthUpdate> = match self.health_inbox.try_lock() {
            Ok(mut inbox) => {
                self.health_waiting = false;
                inbox.drain(..).collect()
            }
            Err(_) => {
                self.health_waiting = true;
                Vec::new()
            }
        };
        for u in updates {
            match u {
                HealthUpdate::Changed {
                    service,
                    real_server,
                    state,
                    check,
                    reason,
                } => {
                    // A server gone meanwhile (reload, API) is no error.
                    let _ = dp.set_health(
                        &dp_key(&service),
                        real_server.addr,
                        real_server.port,
                        state == HealthState::Up,
                        &check,
                        &reason,
                    );
                }
                HealthUpdate::Weight {
                    service,
                    real_server,
                    weight,
                } => self.dynamic_weight(dp, now, service, real_server, weight),
            }
        }
        self.take_health_events(dp, now);
    }

    /// Records the data path's health flips as events, in order.
    pub fn take_health_events(&mut self, dp: &mut Dataplane, now: Instant) {
        while let Some(e) = dp.poll_health_event() {
            let kind = match e {
                HealthEvent::Changed {
                    service,
                    addr,
                    port,
                    up,
                    check,
                    reason,
                } => EventKind::HealthChanged {
                    service: api_key(&service),
                    real_server: RealServerKey::new(addr, port),
                    state: if up {
                        HealthState::Up
                    } else {
                        HealthState::Down
                    },
                    check,
                    reason,
                },
                HealthEvent::Quorum {
                    service,
                    up,
                    live_weight,
                    quorum,
                } => EventKind::QuorumChanged {
                    service: api_key(&service),
                    up,
                    live_weight,
                    quorum,
                },
                HealthEvent::Sorry {
                    service,
                    addr,
                    port,
                    active,
                } => EventKind::SorryServer {
                    service: api_key(&service),
                    real_server: RealServerKey::new(addr, port),
                    active,
                },
            };
            self.record(now, kind);
        }
    }

    /// An exec check's dynamic weight (module doc).
    fn dynamic_weight(
        &mut self,
        dp: &mut Dataplane,
        now: Instant,
        service: ServiceKey,
        real_server: RealServerKey,
        weight: u32,
    ) {
        let weight = weight.min(MAX_WEIGHT);
        if let Some(remembered) = self.drained.get_mut(&(service, real_server)) {
            *remembered = weight;
            return;
        }
        let key = dp_key(&service);
        match dp.dest_stats(&key, real_server.addr, real_server.port) {
            Ok(d) if d.config_weight != weight => {}
            _ => return,
        }
        if let Ok(old) = dp.set_weight(&key, real_server.addr, real_server.port, weight) {
            self.record(
                now,
                EventKind::WeightChanged {
                    service,
                    real_server,
                    old,
                    new: weight,
                    by: health_actor(),
                },
            );
        }
    }

    /// Executes up to [`MAX_COMMANDS_PER_ROUND`] waiting commands; true if more wait (poll
    /// again without sleeping). Health reports are applied first.
    pub fn run_pending(&mut self, dp: &mut Dataplane, now: Instant) -> bool {
        let mut buf = [0u8; 64];
        while self.wake.recv(&mut buf).is_ok() {}
        self.apply_health(dp, now);
        if self.health_waiting {
            return true;
        }
        for _ in 0..MAX_COMMANDS_PER_ROUND {
            if self.pending.is_some() {
                // The owner applies the edit before the next command sees the config.
                return true;
            }
            match self.rx.try_recv() {
                Ok(cmd) => self.execute(dp, now, cmd),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => {
                    return self.pending.is_some();
                }
            }
        }
        true
    }

    /// The configuration edit to apply now, if one waits; answer it with
    /// [`Executor::finish_config_edit`].
    pub fn take_config_edit(&mut self) -> Option<PendingEdit> {
        self.pending.take()
    }

    /// Answers an edit the owner applied (`Ok`) or could not apply (`Err`: the running
    /// configuration is unchanged); on success it is the running configuration and the
    /// edit is an event.
    pub fn finish_config_edit(
        &mut self,
        edit: PendingEdit,
        result: Result<(), String>,
        dp: &Dataplane,
        now: Instant,
    ) {
        let r = match result {
            Ok(()) => {
                self.running = Some(edit.config);
                self.after_reload(dp);
                self.record(now, edit.event);
                Ok(())
            }
            Err(message) => Err(ApiError::InvalidArgument { message }),
        };
        let _ = edit.reply.send(r);
    }

    /// Records an event that did not come through a command (a reload).
    pub fn record(&mut self, now: Instant, kind: EventKind) -> u64 {
        let at = self.unix_ms(now);
        self.events.push(at, kind)
    }

    /// The VIPs and their interfaces, after the owner set them up (start, reload, edit).
    pub fn set_vips(&mut self, vips: Vec<VipInfo>) {
        self.vips = vips;
    }

    /// The configuration the daemon now runs (at start and after each successful reload).
    pub fn set_running_config(&mut self, config: Config) {
        self.running = Some(config);
    }

    /// The running configuration with the dataplane's current weights (API edits and
    /// drains included: a drained server is written with weight 0).
    pub fn running_config(&self, dp: &Dataplane) -> Option<Config> {
        let mut config = self.running.clone()?;
        for vs in &mut config.services {
            let key = dataplane::ServiceKey {
                protocol: vs.protocol,
                vip: vs.vip,
                port: vs.port,
            };
            for rs in &mut vs.real_servers {
                if let Ok(d) = dp.dest_stats(&key, rs.addr, rs.port) {
                    // The configured weight: a server down with inhibit_on_failure
                    // shows 0 but keeps its weight.
                    rs.weight = d.config_weight;
                }
            }
        }
        Some(config)
    }

    /// After a reload: forgets drains of servers that are gone or no longer at weight 0.
    pub fn after_reload(&mut self, dp: &Dataplane) {
        self.drained.retain(|(svc, rs), _| {
            dp.dest_stats(&dp_key(svc), rs.addr, rs.port)
                .is_ok_and(|d| d.config_weight == 0)
        });
    }

    /// Milliseconds since the Unix epoch at `t`.
    fn unix_ms(&self, t: Instant) -> u64 {
        let (base, wall) = self.epoch;
        let wall_t = if t >= base {
            wall.checked_add(t - base)
        } else {
            wall.checked_sub(base - t)
        };
        wall_t
            .and_then(|w| w.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    /// Executes one command and answers it (a client that went away is ignored).
    pub fn execute(&mut self, dp: &mut Dataplane, now: Instant, cmd: Command) {
        match cmd {
            Command::Services(reply) => {
                let stats = dp.stats();
                let view = self
                    .health_view
                    .as_ref()
                    .map(|v| (v.0)())
                    .unwrap_or_default();
                let list = stats
                    .services
                    .iter()
                    .map(|s| self.service_info(s, &view, now))
                    .collect();
                let _ = reply.send(Ok(list));
            }
            Command::SetWeight {
                service,
                real_server,
                weight,
                by,
                reply,
            } => {
                let _ = reply.send(self.set_weight(dp, now, service, real_server, weight, by));
            }
            Command::Drain {
                service,
                real_server,
                by,
                reply,
            } => {
                let _ = reply.send(self.drain(dp, now, service, real_server, by));
            }
            Command::DrainStatus {
                service,
                real_server,
                reply,
            } => {
                let r = dest(dp, service, real_server).and_then(|d| {
                    let before = self.drained.get(&(service, real_server)).copied().ok_or(
                        ApiError::NotDrained {
                            service,
                            real_server,
                        },
                    )?;
                    Ok(drain_info(service, real_server, before, &d))
                });
                let _ = reply.send(r);
            }
            Command::Undrain {
                service,
                real_server,
                by,
                reply,
            } => {
                let _ = reply.send(self.undrain(dp, now, service, real_server, by));
            }
            Command::Connections { query, reply } => {
                let _ = reply.send(connections(dp, now, &query));
            }
            Command::Decisions {
                service,
                since,
                reply,
            } => {
                let r = if dp.has_service(&dp_key(&service)) {
                    Ok(dp
                        .decisions_since(now, &dp_key(&service), since)
                        .into_iter()
                        .map(|d| self.decision_info(d))
                        .collect())
                } else {
                    Err(ApiError::NoSuchService { service })
                };
                let _ = reply.send(r);
            }
            Command::Simulate { flow, reply } => {
                let service = flow.service();
                let r = if flow.client.is_ipv4() != flow.vip.is_ipv4() {
                    // No service is reached across families (a tunnel's outer family is
                    // the real server's business, not the client's).
                    Err(ApiError::InvalidArgument {
                        message: format!(
                            "client {} and VIP {} are of different address families",
                            flow.client, flow.vip
                        ),
                    })
                } else if dp.has_service(&dp_key(&service)) {
                    let res = dp.simulate(
                        now,
                        &Flow {
                            protocol: flow.protocol,
                            src: flow.client,
                            dst: SocketAddr::new(flow.vip, flow.port),
                        },
                    );
                    Ok(SimulateInfo {
                        service,
                        real_server: res.dest.map(RealServerKey::from),
                        reason: res.reason,
                    })
                } else {
                    Err(ApiError::NoSuchService { service })
                };
                let _ = reply.send(r);
            }
            Command::Events { since, reply } => {
                let _ = reply.send(Ok(self.events.since(since)));
            }
            Command::KillConnection { conn, by, reply } => {
                let r = self.kill(dp, now, by, |t| {
                    !t.template
                        && t.protocol == conn.protocol
                        && t.client == (conn.client.ip(), conn.client.port())
                        && t.virt == (conn.virt.ip(), conn.virt.port())
                });
                let _ = reply.send(r.ok_or_else(|| ApiError::NoSuchConnection {
                    what: format!("connection {conn}"),
                }));
            }
            Command::KillTemplate {
                template,
                by,
                reply,
            } => {
                let s = template.service;
                let r = if dp.has_service(&dp_key(&s)) {
                    self.kill(dp, now, by, |t| {
                        t.template
                            && t.protocol == s.protocol
                            && t.client.0 == template.client
                            && t.virt == (s.vip, s.port)
                    })
                    .ok_or_else(|| ApiError::NoSuchConnection {
                        what: template.to_string(),
                    })
                } else {
                    Err(ApiError::NoSuchService { service: s })
                };
                let _ = reply.send(r);
            }
            Command::RenderConfig(reply) => {
                let r = self
                    .running_config(dp)
                    .map(|c| RenderedConfig {
                        text: c.to_toml(),
                        services: u32::try_from(c.services.len()).unwrap_or(u32::MAX),
                        real_servers: u32::try_from(
                            c.services
                                .iter()
                                .map(|s| s.real_servers.len())
                                .sum::<usize>(),
                        )
                        .unwrap_or(u32::MAX),
                    })
                    .ok_or_else(|| ApiError::Unavailable {
                        message: "lvsd has no running configuration to save".into(),
                    });
                let _ = reply.send(r);
            }
            Command::EditConfig { edit, by, reply } => {
                let r = self
                    .running_config(dp)
                    .ok_or_else(|| ApiError::Unavailable {
                        message: "lvsd has no running configuration to edit".into(),
                    })
                    .and_then(|c| edit.apply(&c));
                match r {
                    Ok(config) => {
                        self.pending = Some(PendingEdit {
                            config,
                            event: edit.event(by),
                            reply,
                        });
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Command::Topology(reply) => {
                let _ = reply.send(Ok(self.topology(dp)));
            }
            Command::Vrrp(reply) => {
                let _ = reply.send(Ok(self
                    .vrrp_view
                    .as_ref()
                    .map(crate::vrrp::driver::VrrpView::info)
                    .unwrap_or_default()));
            }
            Command::ConfigSaved { path, by, reply } => {
                self.record(now, EventKind::ConfigSaved { path, by });
                let _ = reply.send(Ok(()));
            }
            Command::ZeroCounters { service, by, reply } => {
                let r = match service {
                    Some(s) if !dp.has_service(&dp_key(&s)) => {
                        Err(ApiError::NoSuchService { service: s })
                    }
                    _ => dp
                        .zero_counters(service.map(|s| dp_key(&s)).as_ref())
                        .map_err(|e| ApiError::Unavailable {
                            message: e.to_string(),
                        })
                        .map(|()| {
                            self.record(now, EventKind::CountersZeroed { service, by });
                        }),
                };
                let _ = reply.send(r);
            }
        }
    }

    /// The topology (see [`lvs_proto::LvsControl::topology`]).
    fn topology(&self, dp: &Dataplane) -> Topology {
        let mac = |m: [u8; 6]| {
            m.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":")
        };
        let name = |ifindex: u32| {
            dp.interfaces()
                .iter()
                .find(|i| i.ifindex == ifindex)
                .map_or_else(|| format!("ifindex {ifindex}"), |i| i.name.clone())
        };
        let real_servers: Vec<lvs_proto::RealServerRoute> = dp
            .dest_routes()
            .into_iter()
            .map(|(k, d, m)| lvs_proto::RealServerRoute {
                service: ServiceKey {
                    protocol: k.protocol,
                    vip: k.vip,
                    port: k.port,
                },
                real_server: RealServerKey::new(d.addr, d.port),
                forwarding: d.forwarding,
                interface: name(d.ifindex),
                next_hop: d.next_hop,
                source: d.source,
                next_hop_mac: m.map(mac),
            })
            .collect();
        let mut dips: Vec<_> = real_servers.iter().map(|r| r.source).collect();
        dips.sort();
        dips.dedup();
        Topology {
            interfaces: dp
                .interfaces()
                .iter()
                .map(|i| lvs_proto::InterfaceInfo {
                    name: i.name.clone(),
                    ifindex: i.ifindex,
                    mac: mac(i.mac),
                    addresses: i
                        .ipv4
                        .iter()
                        .map(|a| IpAddr::V4(*a))
                        .chain(i.ipv6.iter().map(|a| IpAddr::V6(*a)))
                        .collect(),
                    mtu: i.mtu,
                })
                .collect(),
            vips: self.vips.clone(),
            dips,
            real_servers,
            // `master` / `backup` with one instance, `VI_1 master, VI_2 backup` with more.
            vrrp_role: self.vrrp_view.as_ref().and_then(|v| {
                let info = v.info();
                let role = |i: &lvs_proto::VrrpInstanceInfo| i.state.to_string().to_lowercase();
                match info.as_slice() {
                    [] => None,
                    [one] => Some(role(one)),
                    all => Some(
                        all.iter()
                            .map(|i| format!("{} {}", i.name, role(i)))
                            .collect::<Vec<_>>()
                            .join(", "),
                    ),
                }
            }),
        }
    }

    /// Removes the first entry `hit` accepts and records the event; the entry as it was.
    fn kill(
        &mut self,
        dp: &mut Dataplane,
        now: Instant,
        by: Actor,
        hit: impl Fn(&KillTarget) -> bool,
    ) -> Option<ConnEntry> {
        let (key, info) = dp.kill_entry(now, hit)?;
        let entry = conn_entry(key, info);
        self.record(
            now,
            EventKind::ConnectionKilled {
                protocol: entry.protocol,
                client: entry.client,
                virt: entry.virt,
                real: entry.real,
                template: entry.template,
                by,
            },
        );
        Some(entry)
    }

    fn set_weight(
        &mut self,
        dp: &mut Dataplane,
        now: Instant,
        service: ServiceKey,
        real_server: RealServerKey,
        weight: u32,
        by: Actor,
    ) -> Result<WeightChange, ApiError> {
        if weight > MAX_WEIGHT {
            return Err(ApiError::WeightOutOfRange {
                weight: u64::from(weight),
            });
        }
        let old = dp
            .set_weight(
                &dp_key(&service),
                real_server.addr,
                real_server.port,
                weight,
            )
            .map_err(|e| api_error(e, service, Some(real_server)))?;
        self.drained.remove(&(service, real_server));
        self.record(
            now,
            EventKind::WeightChanged {
                service,
                real_server,
                old,
                new: weight,
                by,
            },
        );
        Ok(WeightChange {
            service,
            real_server,
            old,
            new: weight,
        })
    }

    fn drain(
        &mut self,
        dp: &mut Dataplane,
        now: Instant,
        service: ServiceKey,
        real_server: RealServerKey,
        by: Actor,
    ) -> Result<DrainInfo, ApiError> {
        let current = dest(dp, service, real_server)?;
        let key = (service, real_server);
        let already = self.drained.get(&key).copied();
        let before = already.unwrap_or(current.config_weight);
        dp.set_weight(&dp_key(&service), real_server.addr, real_server.port, 0)
            .map_err(|e| api_error(e, service, Some(real_server)))?;
        self.drained.insert(key, before);
        if already.is_none() {
            self.record(
                now,
                EventKind::Drained {
                    service,
                    real_server,
                    weight_before: before,
                    by,
                },
            );
        }
        let after = dest(dp, service, real_server)?;
        Ok(drain_info(service, real_server, before, &after))
    }

    fn undrain(
        &mut self,
        dp: &mut Dataplane,
        now: Instant,
        service: ServiceKey,
        real_server: RealServerKey,
        by: Actor,
    ) -> Result<WeightChange, ApiError> {
        dest(dp, service, real_server)?;
        let key = (service, real_server);
        let weight = self
            .drained
            .get(&key)
            .copied()
            .ok_or(ApiError::NotDrained {
                service,
                real_server,
            })?;
        let old = dp
            .set_weight(
                &dp_key(&service),
                real_server.addr,
                real_server.port,
                weight,
            )
            .map_err(|e| api_error(e, service, Some(real_server)))?;
        self.drained.remove(&key);
        self.record(
            now,
            EventKind::Undrained {
                service,
                real_server,
                weight,
                by,
            },
        );
        Ok(WeightChange {
            service,
            real_server,
            old,
            new: weight,
        })
    }

    fn service_info(
        &self,
        s: &ServiceStats,
        view: &HashMap<(ServiceKey, RealServerKey), HealthInfo>,
        now: Instant,
    ) -> ServiceInfo {
        let key = ServiceKey {
            protocol: s.protocol,
            vip: s.vip,
            port: s.port,
        };
        ServiceInfo {
            protocol: s.protocol,
            vip: s.vip,
            port: s.port,
            scheduler: s.scheduler,
            flags: flag_names(s.scheduler, &s.scheduler_flags),
            persistence: s.persistence.map(|p| PersistenceInfo {
                timeout_secs: p.timeout.as_secs(),
                netmask: p.netmask,
                prefix6: p.prefix6,
                quiescent_template_expire: p.quiescent_template_expire,
            }),
            one_packet: s.one_packet,
            counters: s.counters,
            rates: s.rates,
            real_servers: s
                .dests
                .iter()
                .map(|d| {
                    let rs = RealServerKey::new(d.addr, d.port);
                    let mut info = real_server_info(d, self.drained.get(&(key, rs)).copied());
                    info.health = health_info(d, view.get(&(key, rs)), now);
                    info
                })
                .collect(),
            quorum: s.quorum.map(|q| QuorumInfo {
                quorum: q.quorum,
                hysteresis: q.hysteresis,
                live_weight: q.live_weight,
                up: q.up,
            }),
        }
    }

    fn decision_info(&self, d: dataplane::Decision) -> DecisionInfo {
        DecisionInfo {
            seq: d.seq,
            at_unix_ms: self.unix_ms(d.at),
            service: ServiceKey {
                protocol: d.service.protocol,
                vip: d.service.vip,
                port: d.service.port,
            },
            client: d.client,
            real_server: d.dest.map(RealServerKey::from),
            scheduler: d.scheduler,
            reason: d.reason,
        }
    }
}

/// Who made a dynamic weight edit: lvsd's own health check.
fn health_actor() -> Actor {
    Actor {
        uid: 0,
        gid: 0,
        pid: Some(i32::try_from(std::process::id()).unwrap_or(i32::MAX)),
        user: Some("lvsd health check (dynamic_weight)".into()),
        tls: None,
    }
}

fn api_key(k: &dataplane::ServiceKey) -> ServiceKey {
    ServiceKey {
        protocol: k.protocol,
        vip: k.vip,
        port: k.port,
    }
}

fn dp_key(k: &ServiceKey) -> dataplane::ServiceKey {
    dataplane::ServiceKey {
        protocol: k.protocol,
        vip: k.vip,
        port: k.port,
    }
}

/// A listed real server, or the error naming what is missing.
fn dest(
    dp: &Dataplane,
    service: ServiceKey,
    real_server: RealServerKey,
) -> Result<DestStats, ApiError> {
    dp.dest_stats(&dp_key(&service), real_server.addr, real_server.port)
        .map_err(|e| api_error(e, service, Some(real_server)))
}

fn api_error(e: EditError, service: ServiceKey, real_server: Option<RealServerKey>) -> ApiError {
    match e {
        EditError::NoService(_) => ApiError::NoSuchService { service },
        EditError::NoDest { addr, port, .. } => ApiError::NoSuchRealServer {
            service,
            real_server: real_server.unwrap_or(RealServerKey::new(addr, port)),
        },
        EditError::WeightOutOfRange(w) => ApiError::WeightOutOfRange {
            weight: u64::from(w),
        },
    }
}

fn drain_info(
    service: ServiceKey,
    real_server: RealServerKey,
    before: u32,
    d: &DestStats,
) -> DrainInfo {
    DrainInfo {
        service,
        real_server,
        weight_before: before,
        active: d.active,
        inactive: d.inactive,
        persistent: d.persistent,
        connections_left: u64::from(d.active) + u64::from(d.inactive),
    }
}

fn real_server_info(d: &DestStats, drained_from: Option<u32>) -> RealServerInfo {
    RealServerInfo {
        addr: d.addr,
        port: d.port,
        forwarding: d.forwarding,
        weight: d.weight,
        drained_from,
        active: d.active,
        inactive: d.inactive,
        persistent: d.persistent,
        overloaded: d.overloaded,
        upper_threshold: d.upper_threshold,
        lower_threshold: d.lower_threshold,
        counters: d.counters,
        rates: d.rates,
        health: None,
        sorry: d.sorry,
        in_service: d.in_service,
    }
}

/// A real server's health for the API: the runner's record of its active check (when
/// checked), with the state the data path applies (passive detection included) and
/// passive detection's counters.
fn health_info(d: &DestStats, active: Option<&HealthInfo>, now: Instant) -> Option<HealthInfo> {
    let h = d.health?;
    let ms = |t: std::time::Duration| u64::try_from(t.as_millis()).unwrap_or(u64::MAX);
    let passive = h.passive.map(|p| PassiveInfo {
        failed_handshakes: p.failures,
        threshold: p.threshold,
        down: p.down,
        retry_in_ms: p.retry_at.map(|t| ms(t.saturating_duration_since(now))),
        backoff_ms: ms(p.backoff),
    });
    let state = if h.alive {
        HealthState::Up
    } else {
        HealthState::Down
    };
    Some(match active {
        Some(a) => HealthInfo {
            state,
            passive,
            inhibit_on_failure: h.inhibit_on_failure,
            ..a.clone()
        },
        None => HealthInfo {
            check: if h.checked {
                "check (not run yet)".into()
            } else {
                "passive".into()
            },
            state,
            since_unix_ms: 0,
            successes: 0,
            failures: passive.as_ref().map_or(0, |p| p.failed_handshakes),
            rise: 1,
            fall: passive.as_ref().map_or(1, |p| p.threshold),
            interval_ms: 0,
            timeout_ms: 0,
            last: None,
            next_in_ms: None,
            checks_total: 0,
            failures_total: 0,
            inhibit_on_failure: h.inhibit_on_failure,
            dynamic_weight: None,
            passive,
        },
    })
}

/// The scheduler flags in ipvsadm's spelling for `kind`.
fn flag_names(kind: SchedulerKind, f: &SchedFlags) -> Vec<String> {
    let (one, two) = match kind {
        SchedulerKind::Sh => ("sh-fallback", "sh-port"),
        SchedulerKind::Mh => ("mh-fallback", "mh-port"),
        _ => ("flag-1", "flag-2"),
    };
    [(f.flag1, one), (f.flag2, two), (f.flag3, "flag-3")]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| n.to_string())
        .collect()
}

/// The state names a connection filter may use.
fn known_state(name: &str) -> bool {
    ["NONE", "UDP"].iter().any(|s| s.eq_ignore_ascii_case(name))
        || TcpState::ALL
            .iter()
            .any(|s| s.name().eq_ignore_ascii_case(name))
}

fn connections(dp: &Dataplane, now: Instant, q: &ConnQuery) -> Result<ConnPage, ApiError> {
    let limit = match q.limit {
        0 => MAX_CONN_PAGE,
        n if n > MAX_CONN_PAGE => {
            return Err(ApiError::InvalidArgument {
                message: format!("limit {n} is above the largest page, {MAX_CONN_PAGE}"),
            });
        }
        n => n,
    };
    if let Some(s) = &q.state {
        if !known_state(s) {
            let mut names: Vec<&str> = TcpState::ALL.iter().map(|s| s.name()).collect();
            names.push("UDP");
            return Err(ApiError::InvalidArgument {
                message: format!(
                    "unknown connection state `{s}`: expected one of {} (NONE = persistence template)",
                    names.join(", ")
                ),
            });
        }
    }
    if let Some(service) = q.service {
        if !dp.has_service(&dp_key(&service)) {
            return Err(ApiError::NoSuchService { service });
        }
    }
    let filter = ConnFilter {
        service: q.service.as_ref().map(dp_key),
        real: q.real_server.map(|r| (r.addr, r.port)),
        client: q.client_prefix.map(|p| (p.addr, p.len)),
        state: q.state.clone(),
    };
    let after = q.cursor.map(|c| {
        (
            c.protocol, c.vip, c.vport, c.client, c.cport, c.rip, c.rport, c.template, c.id,
        )
    });
    let (page, more) = dp.connections_page(now, &filter, after.as_ref(), limit as usize);
    let entries: Vec<ConnEntry> = page.into_iter().map(|(k, c)| conn_entry(k, c)).collect();
    let next_cursor = if more {
        entries.last().map(|e| e.cursor)
    } else {
        None
    };
    Ok(ConnPage {
        entries,
        next_cursor,
        table_size: dp.conn_count() as u64,
    })
}

/// A listed entry in the API's terms.
fn conn_entry(k: dataplane::ConnSortKey, c: ConnInfo) -> ConnEntry {
    ConnEntry {
        protocol: c.protocol,
        client: c.client,
        virt: c.virt,
        real: c.real,
        forwarding: c.forwarding,
        state: c.state.to_string(),
        expires_in_ms: u64::try_from(c.expires_in.as_millis()).unwrap_or(u64::MAX),
        active: c.active,
        template: c.template,
        cursor: ConnCursor {
            protocol: k.0,
            vip: k.1,
            vport: k.2,
            client: k.3,
            cport: k.4,
            rip: k.5,
            rport: k.6,
            template: k.7,
            id: k.8,
        },
    }
}
