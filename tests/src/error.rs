//! The one error type of the lab harness.
//!
//! Every variant's `Display` is self-contained (it includes the underlying error and, for
//! processes, the tail of their logs), because the usual consumer is a failing test that prints
//! `{err}` and nothing else.

use std::io;
use std::time::Duration;

/// `Result` with [`LabError`] as the default error.
pub type Result<T, E = LabError> = std::result::Result<T, E>;

/// Everything that can go wrong while building, driving or tearing down a lab.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LabError {
    /// An I/O operation failed (file, socket, process spawn).
    #[error("{context}: {error}")]
    Io {
        /// What the lab was doing.
        context: String,
        /// The underlying error.
        error: io::Error,
    },
    /// A system call made through `nix` failed (unshare, setns, kill, ...).
    #[error("{context}: {error}")]
    Sys {
        /// What the lab was doing.
        context: String,
        /// The underlying errno.
        error: nix::Error,
    },
    /// A netlink request was rejected or failed.
    #[error("{context}: {error}")]
    Netlink {
        /// What the lab was doing.
        context: String,
        /// The underlying rtnetlink error.
        error: rtnetlink::Error,
    },
    /// Something did not happen within its time limit.
    #[error("timed out after {after:?}: {what}{logs}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// The time limit.
        after: Duration,
        /// Captured output of the process concerned, if any (already formatted).
        logs: String,
    },
    /// A spawned process exited while the lab was waiting for it to become ready.
    #[error("{what} exited before it was ready ({status}){logs}")]
    EarlyExit {
        /// Which process.
        what: String,
        /// Its exit status.
        status: String,
        /// Its captured output (already formatted).
        logs: String,
    },
    /// A process ignored SIGTERM for the whole grace period and had to be SIGKILLed.
    #[error("{what} did not exit within {grace:?} of SIGTERM and was SIGKILLed{logs}")]
    Killed {
        /// Which process.
        what: String,
        /// The grace period it was given.
        grace: Duration,
        /// Its captured output (already formatted).
        logs: String,
    },
    /// A peer sent something the client helpers could not parse.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// Building the `lvsd` binary failed.
    #[error("building lvsd failed: {0}")]
    Build(String),
    /// A caller passed something the lab cannot honour.
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// The lab that owned this handle has been dropped.
    #[error("the lab has been shut down")]
    LabGone,
}

/// Attach context to `io` and `nix` errors: `file.read(..).ctx("reading the config")?`.
pub(crate) trait Context<T> {
    fn ctx(self, context: impl Into<String>) -> Result<T>;
    fn with_ctx<S: Into<String>>(self, context: impl FnOnce() -> S) -> Result<T>;
}

impl<T> Context<T> for Result<T, io::Error> {
    fn ctx(self, context: impl Into<String>) -> Result<T> {
        self.map_err(|error| LabError::Io {
            context: context.into(),
            error,
        })
    }
    fn with_ctx<S: Into<String>>(self, context: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|error| LabError::Io {
            context: context().into(),
            error,
        })
    }
}

impl<T> Context<T> for Result<T, nix::Error> {
    fn ctx(self, context: impl Into<String>) -> Result<T> {
        self.map_err(|error| LabError::Sys {
            context: context.into(),
            error,
        })
    }
    fn with_ctx<S: Into<String>>(self, context: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|error| LabError::Sys {
            context: context().into(),
            error,
        })
    }
}

impl<T> Context<T> for Result<T, rtnetlink::Error> {
    fn ctx(self, context: impl Into<String>) -> Result<T> {
        self.map_err(|error| LabError::Netlink {
            context: context.into(),
            error,
        })
    }
    fn with_ctx<S: Into<String>>(self, context: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|error| LabError::Netlink {
            context: context().into(),
            error,
        })
    }
}
