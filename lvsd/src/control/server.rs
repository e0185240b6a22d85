//! The tarpc server: the accept loop, one task per connection, and the [`LvsControl`]
//! implementation that turns RPCs into [`Command`]s for the forwarding thread.
//!
//! Limits (so no client can hurt the daemon or the data path):
//! - a request frame above [`lvs_proto::transport::MAX_REQUEST_FRAME`] closes the
//!   connection before its body is read;
//! - at most [`MAX_IN_FLIGHT`] requests per connection run at once (more are answered with
//!   a tarpc error), at most [`MAX_CONNECTIONS`] connections are served (more are closed at
//!   once);
//! - a connection with no new request for the idle timeout is closed;
//! - the forwarding thread gets at most [`crate::control::exec::COMMAND_QUEUE`] commands
//!   queued and must answer each within [`COMMAND_TIMEOUT`], else the caller gets
//!   `Unavailable`.
//!
//! Roles are decided once per connection from its peer credentials ([`super::auth`]);
//! every mutating RPC checks the role first and writes one audit line whatever happens.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lvs_proto::tarpc::context::Context;
use lvs_proto::tarpc::server::{BaseChannel, Channel};
use lvs_proto::transport::server_transport;
use lvs_proto::{
    ApiError, ConnEntry, ConnKey, ConnPage, ConnQuery, DecisionInfo, DrainInfo, Event, FlowSpec,
    LvsControl, NewRealServer, NewService, PeerInfo, RealServerKey, Role, SavedConfig, ServiceInfo,
    ServiceKey, SimulateInfo, TemplateKey, VersionInfo, WeightChange,
};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, oneshot, watch};
use tokio::task::JoinSet;
use tracing::{debug, warn};

use super::audit::Audit;
use super::auth::{self, AdminGroup, Peer};
use super::exec::{Command, CommandSender, ConfigEdit, Reply};
use super::save;

/// Requests of one connection running at once.
pub const MAX_IN_FLIGHT: usize = 8;
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 64;
/// How long a request waits for the forwarding thread.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// What every connection shares.
#[derive(Debug)]
pub struct Shared {
    /// The way to the forwarding thread.
    pub commands: CommandSender,
    /// The admin group, if configured and found.
    pub admin: Option<AdminGroup>,
    /// The audit sink.
    pub audit: Audit,
    /// What `version` answers.
    pub version: VersionInfo,
    /// Idle connections are closed after this.
    pub idle_timeout: Duration,
}

/// The [`LvsControl`] implementation for one connection (cloned per request).
#[derive(Debug, Clone)]
pub struct Handler {
    shared: Arc<Shared>,
    peer: Arc<Peer>,
}

impl Handler {
    /// A handler for `peer`.
    pub fn new(shared: Arc<Shared>, peer: Peer) -> Self {
        Handler {
            shared,
            peer: Arc::new(peer),
        }
    }

    /// Sends a command and waits for its answer.
    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, ApiError> {
        let (tx, rx) = oneshot::channel();
        self.shared.commands.send(make(tx))?;
        match tokio::time::timeout(COMMAND_TIMEOUT, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(ApiError::Unavailable {
                message: "lvsd is shutting down".into(),
            }),
            Err(_) => Err(ApiError::Unavailable {
                message: format!(
                    "the forwarding loop did not answer within {} s",
                    COMMAND_TIMEOUT.as_secs()
                ),
            }),
        }
    }

    /// A configuration edit (add/remove a service or real server).
    async fn edit(&self, what: String, edit: ConfigEdit) -> Result<(), ApiError> {
        let by = self.peer.actor.clone();
        self.mutate(
            what,
            |reply| Command::EditConfig { edit, by, reply },
            |()| "applied".to_string(),
        )
        .await
    }

    /// A mutating call that is more than one command: role check, `run`, one audit line.
    async fn admin<T>(
        &self,
        what: String,
        run: impl Future<Output = Result<T, ApiError>>,
        describe: impl FnOnce(&T) -> String,
    ) -> Result<T, ApiError> {
        let audit = &self.shared.audit;
        if self.peer.role != Role::Admin {
            let e = ApiError::PermissionDenied {
                reason: self.peer.refusal(self.shared.admin.as_ref()),
            };
            audit.record(&self.peer.actor, &what, &format!("refused: {e}"));
            return Err(e);
        }
        let r = run.await;
        let result = match &r {
            Ok(v) => format!("ok: {}", describe(v)),
            Err(e) => format!("error: {e}"),
        };
        audit.record(&self.peer.actor, &what, &result);
        r
    }

    /// A mutating call: role check, the command, one audit line.
    async fn mutate<T>(
        &self,
        what: String,
        make: impl FnOnce(Reply<T>) -> Command,
        describe: impl FnOnce(&T) -> String,
    ) -> Result<T, ApiError> {
        let audit = &self.shared.audit;
        if self.peer.role != Role::Admin {
            let e = ApiError::PermissionDenied {
                reason: self.peer.refusal(self.shared.admin.as_ref()),
            };
            audit.record(&self.peer.actor, &what, &format!("refused: {e}"));
            return Err(e);
        }
        let r = self.ask(make).await;
        let result = match &r {
            Ok(v) => format!("ok: {}", describe(v)),
            Err(e @ ApiError::Unavailable { .. }) => {
                format!("error: {e} (the change may still be applied)")
            }
            Err(e) => format!("error: {e}"),
        };
        audit.record(&self.peer.actor, &what, &result);
        r
    }
}

impl LvsControl for Handler {
    async fn version(self, _: Context) -> VersionInfo {
        self.shared.version.clone()
    }

    async fn whoami(self, _: Context) -> PeerInfo {
        PeerInfo {
            actor: self.peer.actor.clone(),
            role: self.peer.role,
        }
    }

    async fn services(self, _: Context) -> Result<Vec<ServiceInfo>, ApiError> {
        self.ask(Command::Services).await
    }

    async fn set_weight(
        self,
        _: Context,
        service: ServiceKey,
        real_server: RealServerKey,
        weight: u32,
    ) -> Result<WeightChange, ApiError> {
        let by = self.peer.actor.clone();
        self.mutate(
            format!("set_weight {service} {real_server} weight={weight}"),
            |reply| Command::SetWeight {
                service,
                real_server,
                weight,
                by,
                reply,
            },
            |c| format!("weight {} -> {}", c.old, c.new),
        )
        .await
    }

    async fn drain(
        self,
        _: Context,
        service: ServiceKey,
        real_server: RealServerKey,
    ) -> Result<DrainInfo, ApiError> {
        let by = self.peer.actor.clone();
        self.mutate(
            format!("drain {service} {real_server}"),
            |reply| Command::Drain {
                service,
                real_server,
                by,
                reply,
            },
            |d| {
                format!(
                    "weight {} -> 0, {} connections left",
                    d.weight_before, d.connections_left
                )
            },
        )
        .await
    }

    async fn drain_status(
        self,
        _: Context,
        service: ServiceKey,
        real_server: RealServerKey,
    ) -> Result<DrainInfo, ApiError> {
        self.ask(|reply| Command::DrainStatus {
            service,
            real_server,
            reply,
        })
        .await
    }

    async fn undrain(
        self,
        _: Context,
        service: ServiceKey,
        real_server: RealServerKey,
    ) -> Result<WeightChange, ApiError> {
        let by = self.peer.actor.clone();
        self.mutate(
            format!("undrain {service} {real_server}"),
            |reply| Command::Undrain {
                service,
                real_server,
                by,
                reply,
            },
            |c| format!("weight {} -> {}", c.old, c.new),
        )
        .await
    }

    async fn connections(self, _: Context, query: ConnQuery) -> Result<ConnPage, ApiError> {
        self.ask(|reply| Command::Connections { query, reply })
            .await
    }

    async fn decisions_since(
        self,
        _: Context,
        service: ServiceKey,
        since: u64,
    ) -> Result<Vec<DecisionInfo>, ApiError> {
        self.ask(|reply| Command::Decisions {
            service,
            since,
            reply,
        })
        .await
    }

    async fn simulate(self, _: Context, flow: FlowSpec) -> Result<SimulateInfo, ApiError> {
        self.ask(|reply| Command::Simulate { flow, reply }).await
    }

    async fn events_since(self, _: Context, since: u64) -> Result<Vec<Event>, ApiError> {
        self.ask(|reply| Command::Events { since, reply }).await
    }

    async fn zero_counters(self, _: Context, service: Option<ServiceKey>) -> Result<(), ApiError> {
        let by = self.peer.actor.clone();
        let what = match service {
            Some(s) => format!("zero_counters {s}"),
            None => "zero_counters all".to_string(),
        };
        self.mutate(
            what,
            |reply| Command::ZeroCounters { service, by, reply },
            |()| "counters zeroed".to_string(),
        )
        .await
    }

    async fn kill_connection(self, _: Context, conn: ConnKey) -> Result<ConnEntry, ApiError> {
        let by = self.peer.actor.clone();
        self.mutate(
            format!("kill_connection {conn}"),
            |reply| Command::KillConnection { conn, by, reply },
            |e| format!("removed {} entry to {}", e.state, e.real),
        )
        .await
    }

    async fn kill_template(self, _: Context, template: TemplateKey) -> Result<ConnEntry, ApiError> {
        let by = self.peer.actor.clone();
        self.mutate(
            format!("kill_template {template}"),
            |reply| Command::KillTemplate {
                template,
                by,
                reply,
            },
            |e| format!("removed template to {}", e.real),
        )
        .await
    }

    async fn topology(self, _: Context) -> Result<lvs_proto::Topology, ApiError> {
        self.ask(Command::Topology).await
    }

    async fn vrrp(self, _: Context) -> Result<Vec<lvs_proto::VrrpInstanceInfo>, ApiError> {
        self.ask(Command::Vrrp).await
    }

    async fn add_service(self, _: Context, service: NewService) -> Result<(), ApiError> {
        let what = format!(
            "add_service {} scheduler={} forwarding={}",
            service.service, service.scheduler, service.forwarding
        );
        self.edit(what, ConfigEdit::AddService(service)).await
    }

    async fn remove_service(self, _: Context, service: ServiceKey) -> Result<(), ApiError> {
        self.edit(
            format!("remove_service {service}"),
            ConfigEdit::RemoveService(service),
        )
        .await
    }

    async fn add_real_server(
        self,
        _: Context,
        service: ServiceKey,
        real_server: NewRealServer,
    ) -> Result<(), ApiError> {
        let what = format!(
            "add_real_server {service} {} weight={}",
            real_server.real_server, real_server.weight
        );
        self.edit(what, ConfigEdit::AddRealServer(service, real_server))
            .await
    }

    async fn remove_real_server(
        self,
        _: Context,
        service: ServiceKey,
        real_server: RealServerKey,
    ) -> Result<(), ApiError> {
        self.edit(
            format!("remove_real_server {service} {real_server}"),
            ConfigEdit::RemoveRealServer(service, real_server),
        )
        .await
    }

    async fn save_config(self, _: Context, path: String) -> Result<SavedConfig, ApiError> {
        let by = self.peer.actor.clone();
        let run = async {
            let rendered = self.ask(Command::RenderConfig).await?;
            let file = path.clone();
            tokio::task::spawn_blocking(move || save::write_config_file(&file, &rendered.text))
                .await
                .map_err(|e| ApiError::SaveFailed {
                    message: format!("{path}: {e}"),
                })?
                .map_err(|message| ApiError::SaveFailed { message })?;
            let saved = path.clone();
            self.ask(|reply| Command::ConfigSaved {
                path: saved,
                by,
                reply,
            })
            .await?;
            Ok(SavedConfig {
                path: path.clone(),
                services: rendered.services,
                real_servers: rendered.real_servers,
            })
        };
        self.admin(format!("save_config {path}"), run, |s| {
            format!(
                "{} services, {} real servers written",
                s.services, s.real_servers
            )
        })
        .await
    }
}

/// Accepts connections until `shutdown` changes (or its sender is dropped), then closes
/// every connection.
pub async fn serve(
    listener: UnixListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                        warn!("control: {MAX_CONNECTIONS} connections open; refusing another");
                        continue;
                    };
                    let shared = Arc::clone(&shared);
                    let shutdown = shutdown.clone();
                    connections.spawn(async move {
                        connection(stream, shared, shutdown).await;
                        drop(slot);
                    });
                }
                Err(e) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    warn!("control: accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
        while connections.try_join_next().is_some() {}
    }
    connections.shutdown().await;
}

/// Serves one connection until it closes, errs (e.g. an oversized frame), idles out, or
/// the server stops.
async fn connection(stream: UnixStream, shared: Arc<Shared>, shutdown: watch::Receiver<bool>) {
    let cred = match stream.peer_cred() {
        Ok(c) => c,
        Err(e) => {
            warn!("control: reading a client's credentials: {e}; closing it");
            return;
        }
    };
    let admin = shared.admin.clone();
    let (uid, gid, pid) = (cred.uid(), cred.gid(), cred.pid());
    let peer =
        match tokio::task::spawn_blocking(move || auth::identify(uid, gid, pid, admin.as_ref()))
            .await
        {
            Ok(p) => p,
            Err(e) => {
                warn!("control: identifying uid {uid}: {e}");
                return;
            }
        };
    serve_peer(stream, peer, shared, shutdown).await;
}

/// Serves an identified client on any byte stream (the Unix socket, or a TLS stream from
/// [`super::tls`]) until it closes, errs, idles out, or the server stops.
pub(super) async fn serve_peer<S>(
    stream: S,
    peer: Peer,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    debug!(peer = %peer.actor, role = %peer.role, "control: client connected");
    let idle = shared.idle_timeout;
    let handler = Handler::new(shared, peer);
    let channel =
        BaseChannel::with_defaults(server_transport(stream)).max_concurrent_requests(MAX_IN_FLIGHT);
    let requests = channel.execute(handler.serve());
    let mut requests = std::pin::pin!(requests);
    let mut in_flight = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            next = tokio::time::timeout(idle, requests.next()) => match next {
                Ok(Some(request)) => {
                    in_flight.spawn(request);
                }
                Ok(None) => break,
                Err(_) => {
                    while in_flight.try_join_next().is_some() {}
                    if in_flight.is_empty() {
                        debug!("control: closing an idle connection");
                        break;
                    }
                }
            },
        }
        while in_flight.try_join_next().is_some() {}
    }
}
