//! The control plane: the tarpc API of `lvs-proto` on a Unix socket, and optionally on a
//! TCP listener with mutual TLS ([`tls`], `[control] tls_listen`).
//!
//! Threading (see also `docs/architecture.md`):
//!
//! ```text
//!  forwarding thread (owns the Dataplane)         control thread (tokio, current-thread)
//!  ──────────────────────────────────────         ───────────────────────────────────────
//!  poll(packet sockets + wake fd)  ◄── 1 byte ──  Handler::ask: try_send(Command) + wake
//!  between batches: Executor::run_pending         await oneshot reply (≤ 5 s)
//!      execute ≤ 16 commands, reply to each ──►   answer the RPC, write the audit line
//! ```
//!
//! Invariants:
//! - The forwarding loop never blocks on the control plane and never allocates for it
//!   unless a command is waiting; the control plane never touches the dataplane.
//! - A mutation is applied between two packet batches, so it reaches the data path at the
//!   next packet (well inside 100 ms) and no packet is dropped or handled half-way.
//! - Startup fails if the socket cannot be set up safely (`socket.rs`), the audit file
//!   cannot be opened, or the TLS listener is configured and its files cannot be loaded or
//!   its address bound; a missing admin group only narrows admin to root (with a warning).
//! - [`ControlHandle::stop`] (or drop) stops accepting, closes every connection, joins the
//!   thread and removes the socket file if it is still lvsd's.

pub mod audit;
pub mod auth;
pub mod events;
pub mod exec;
pub mod save;
pub mod server;
pub mod socket;
pub mod tls;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use lvs_proto::VersionInfo;
use tokio::sync::watch;
use tracing::{error, info};

pub use exec::{
    Command, CommandSender, ConfigEdit, Executor, HealthSender, HealthUpdate, HealthView,
    PendingEdit, channel,
};

use crate::config::ControlSettings;
use audit::Audit;
use auth::AdminGroup;
use server::Shared;
use socket::BoundSocket;

/// The running control plane.
#[derive(Debug)]
pub struct ControlHandle {
    thread: Option<JoinHandle<()>>,
    shutdown: watch::Sender<bool>,
    socket: BoundSocket,
    tls_addr: Option<SocketAddr>,
}

impl ControlHandle {
    /// Sets up the socket and starts the control thread, which sends its commands through
    /// `commands`. Errors are sentences naming what failed.
    pub fn start(settings: &ControlSettings, commands: CommandSender) -> Result<Self, String> {
        let audit = match &settings.audit_log {
            Some(path) => Audit::with_file(path)
                .map_err(|e| format!("control.audit_log {}: {e}", path.display()))?,
            None => Audit::log_only(),
        };
        let admin = settings
            .admin_group
            .as_deref()
            .and_then(AdminGroup::resolve);
        let socket = socket::bind(settings)?;
        let tls = settings.tls.as_ref().map(tls::bind).transpose()?;
        let tls_addr = tls.as_ref().map(tls::TlsListener::local_addr);
        let listener = socket
            .listener
            .try_clone()
            .map_err(|e| format!("control socket: {e}"))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("control: starting the runtime: {e}"))?;
        let shared = Arc::new(Shared {
            commands,
            admin,
            audit,
            version: VersionInfo {
                daemon: env!("CARGO_PKG_VERSION").to_string(),
                api: lvs_proto::API_LEVEL,
                pid: std::process::id(),
                started_unix_ms: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            },
            idle_timeout: settings.idle_timeout,
        });
        let (shutdown, stop_rx) = watch::channel(false);
        let path = socket.path.clone();
        let thread = std::thread::Builder::new()
            .name("lvsd-control".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let remote = tls
                        .map(|t| tokio::spawn(tls::serve(t, Arc::clone(&shared), stop_rx.clone())));
                    match tokio::net::UnixListener::from_std(listener) {
                        Ok(l) => server::serve(l, shared, stop_rx).await,
                        Err(e) => error!("control socket {}: {e}", path.display()),
                    }
                    if let Some(r) = remote {
                        let _ = r.await;
                    }
                });
            })
            .map_err(|e| format!("control: starting its thread: {e}"))?;
        info!("control API listening on {}", socket.path.display());
        Ok(ControlHandle {
            thread: Some(thread),
            shutdown,
            socket,
            tls_addr,
        })
    }

    /// Where the TLS listener is bound (the real port when configured as 0), if configured.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// The socket's path.
    pub fn socket_path(&self) -> &Path {
        &self.socket.path
    }

    /// Stops the control plane (module doc). Safe to call more than once.
    pub fn stop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
            self.socket.remove();
        }
    }
}

impl Drop for ControlHandle {
    fn drop(&mut self) {
        self.stop();
    }
}
