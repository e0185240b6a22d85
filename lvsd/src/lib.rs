//! lvsd: a userspace Linux Virtual Server director.
//!
//! Layout (see `docs/architecture.md`):
//! - [`wire`], [`sched`], [`conn`], [`dataplane`]: the pure forwarding core. No clock reads,
//!   no sockets; time is passed in.
//! - [`io`]: the only module with raw sockets and `unsafe`.
//! - [`kernel`]: netlink (links, addresses, routes) and the nftables guard rules.
//! - [`config`]: the TOML configuration, validated with file/line/key errors.
//! - [`health`]: active health checks (one checker per file, a pure rise/fall tracker) run
//!   on a thread of their own.
//! - [`vrrp`]: the VRRP state machine (RFC 9568 / RFC 3768), pure and time-injected, with
//!   its simulator; the daemon does not drive it yet (issue 7).
//! - [`control`]: the tarpc control API on a Unix socket, on its own thread, talking to the
//!   forwarding loop through a command channel.
//! - [`daemon`]: wires config, kernel, io and the core into a running director.

pub mod config;
pub mod conn;
pub mod control;
pub mod daemon;
pub mod dataplane;
pub mod demo;
pub mod health;
#[allow(unsafe_code)]
pub mod io;
pub mod kernel;
pub mod realserver;
pub mod sched;
pub mod vrrp;
pub mod wire;
