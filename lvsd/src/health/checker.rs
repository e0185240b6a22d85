//! One check of one target: the dispatch over the per-kind checkers and what they share.
//!
//! Contract: [`Checker::run`] finishes within the configured `timeout` (plus scheduling
//! noise) whatever the target does: every await of a checker goes through
//! [`Deadline::run`], which names the phase that ran out (`timeout after 500ms reading the
//! headers`). A checker never panics on what the network sends and never buffers more than
//! its documented cap; failures are values (`Err(message)`), not errors. Targets are IPv4
//! or IPv6 (`SocketAddr`); every socket a checker opens has the target's family.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::{CheckKind, HealthCheck};

use super::{dns, exec, http, tcp, udp};

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Whether it passed.
    pub ok: bool,
    /// From the start of the check to the verdict.
    pub latency: Duration,
    /// What was seen, in a few words (`HTTP 200`, `connect: connection refused`).
    pub message: String,
    /// An exec check with `dynamic_weight`: the weight its exit code asked for.
    pub weight: Option<u32>,
    /// Bytes received from the target (bounded by each checker's cap).
    pub received: u64,
}

/// What a checker reports when it passes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Pass {
    pub message: String,
    pub weight: Option<u32>,
}

impl Pass {
    pub(super) fn new(message: String) -> Self {
        Pass {
            message,
            weight: None,
        }
    }
}

/// The end of one check: every await of a checker is bounded by it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadline {
    at: Instant,
    timeout: Duration,
}

impl Deadline {
    pub(super) fn after(timeout: Duration) -> Self {
        Deadline {
            at: Instant::now() + timeout,
            timeout,
        }
    }

    /// The time the check was given.
    pub(super) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// `f`, or `timeout after <timeout> <what>` when the deadline passes first.
    pub(super) async fn run<F: Future>(&self, what: &str, f: F) -> Result<F::Output, String> {
        tokio::time::timeout_at(self.at, f)
            .await
            .map_err(|_| format!("timeout after {:?} {what}", self.timeout))
    }
}

/// The wildcard address and port 0 of `target`'s family: where a UDP check's socket is
/// bound (an IPv4 socket cannot reach an IPv6 target and vice versa; the kernel picks the
/// source address by its route to the target).
pub(super) fn unspecified(target: SocketAddr) -> SocketAddr {
    match target {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    }
}

/// An I/O error in a few lower-case words (`connection refused`).
pub(super) fn io_error(e: &io::Error) -> String {
    use io::ErrorKind as K;
    let words = match e.kind() {
        K::ConnectionRefused => "connection refused",
        K::ConnectionReset => "connection reset",
        K::ConnectionAborted => "connection aborted",
        K::HostUnreachable => "host unreachable",
        K::NetworkUnreachable => "network unreachable",
        K::AddrNotAvailable => "address not available",
        K::BrokenPipe => "broken pipe",
        K::UnexpectedEof => "connection closed",
        K::NotFound => "not found",
        K::PermissionDenied => "permission denied",
        _ => return e.to_string(),
    };
    words.to_string()
}

/// Up to 32 bytes of `bytes` as escaped text, for messages about what a target sent.
pub(super) fn preview(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(32)];
    let mut s: String = shown
        .iter()
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect();
    if bytes.len() > shown.len() {
        s.push_str("...");
    }
    s
}

/// A check prepared for one target: settings resolved once (request bytes, TLS
/// configuration), run many times.
#[derive(Debug)]
pub struct Checker {
    target: SocketAddr,
    timeout: Duration,
    kind: Prepared,
}

#[derive(Debug)]
enum Prepared {
    Tcp,
    Http(Box<http::Prepared>),
    Udp(crate::config::UdpCheck),
    Dns(dns::Prepared),
    Exec(crate::config::ExecCheck),
}

impl Checker {
    /// Prepares `check` against `target` (the address [`HealthCheck::target`] gave). Reads
    /// `tls_ca` now: an unreadable file makes every run fail with a message naming it.
    pub fn new(check: &HealthCheck, target: SocketAddr) -> Self {
        let kind = match &check.kind {
            CheckKind::Tcp => Prepared::Tcp,
            CheckKind::Http(h) => Prepared::Http(Box::new(http::Prepared::new(h, target))),
            CheckKind::Udp(u) => Prepared::Udp(u.clone()),
            CheckKind::Dns(d) => Prepared::Dns(dns::Prepared::new(d)),
            CheckKind::Exec(e) => Prepared::Exec(e.clone()),
        };
        Checker {
            target,
            timeout: check.timeout,
            kind,
        }
    }

    /// Where it connects.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Runs the check once (module doc: bounded by the timeout).
    pub async fn run(&self) -> Outcome {
        let start = Instant::now();
        let deadline = Deadline::after(self.timeout);
        let mut received = 0u64;
        let result = match &self.kind {
            Prepared::Tcp => tcp::run(self.target, &deadline).await,
            Prepared::Http(p) => http::run(p, self.target, &deadline, &mut received).await,
            Prepared::Udp(u) => udp::run(u, self.target, &deadline, &mut received).await,
            Prepared::Dns(d) => dns::run(d, self.target, &deadline, &mut received).await,
            Prepared::Exec(e) => exec::run(e, self.target, &deadline).await,
        };
        let latency = start.elapsed();
        match result {
            Ok(pass) => Outcome {
                ok: true,
                latency,
                message: pass.message,
                weight: pass.weight,
                received,
            },
            Err(message) => Outcome {
                ok: false,
                latency,
                message,
                weight: None,
                received,
            },
        }
    }
}
