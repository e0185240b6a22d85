//! `lvs_lab`: network-namespace labs for lvs integration tests, benchmarks and `lvsd demo`.
//!
//! A [`Lab`] is a set of anonymous network namespaces — `client`, `router`, `directorN`,
//! `rsK` and a `switch` holding the bridges `br-front` and `br-back` — wired with veth pairs and
//! configured through rtnetlink and `/proc/sys`, without running any external program. Real
//! servers run the [`node`] program as separate processes; [`Lab::start_lvsd`] runs the
//! director. See [`lab`] for the address plan; with [`LabSpec::ipv6`] every host also gets
//! its IPv6 mirror (2001:db8:c::/64, 2001:db8:f::/64, 2001:db8:b::/64: [`vip6`],
//! [`real_server_addr6`], ...), the backends listen on IPv6 too and the [`client`] helpers
//! take IPv6 targets.
//!
//! ```no_run
//! use lvs_lab::{Lab, LabSpec, client, vip};
//!
//! # fn main() -> lvs_lab::Result<()> {
//! let lab = Lab::build(LabSpec::new("/path/to/lvsd").nat_real_servers(3))?;
//! lab.start_backends()?;
//! let (backend, body) = lab.client().run(|| client::http_get((lab.real_server(1).addr(), 80), "/"))?;
//! assert_eq!((backend.as_str(), body.as_slice()), ("rs1", &b"rs1\n"[..]));
//! # let _ = vip(0);
//! # Ok(()) }
//! ```
//!
//! Crate-wide invariants:
//! - Nothing a lab creates outlives it: namespaces are fd-held and anonymous ([`netns`]);
//!   children die with the lab or, if the test process dies, with the lab's spawner thread
//!   ([`process`]).
//! - Threads of the caller never change namespace; in-namespace work runs on fresh threads.
//! - All `unsafe` code is in the private `sys` module.
//! - Library code does not panic on I/O or peer input; the only panics are documented
//!   programming errors (`Lab::director(0)`, `Host::run` when a thread cannot be created).

pub mod bench;
pub mod client;
mod error;
mod host;
pub mod keepalived;
pub mod lab;
mod lvsd;
mod netlink;
pub mod netns;
pub mod node;
pub mod process;
mod sys;

use std::time::{Duration, Instant};

pub use error::{LabError, Result};
pub use host::{Host, Iface, Iface6};
pub use lab::{
    CLIENT_ADDR, CLIENT_ADDR6, FIRST_VIP, FIRST_VIP6, Gateway, Lab, LabSpec, LogFiles, PREFIX6,
    ROUTER_BACK_ADDR, ROUTER_BACK_ADDR6, ROUTER_CLIENT_ADDR, ROUTER_CLIENT_ADDR6,
    ROUTER_FRONT_ADDR, ROUTER_FRONT_ADDR6, RealServerSpec, director_ext_addr, director_ext_addr6,
    director_int_addr, director_int_addr6, real_server_addr, real_server_addr6, vip, vip6,
};
pub use lvsd::{LvsdProcess, lvs_tui_binary, lvsctl_binary, lvsd_binary};
pub use netlink::{IfAddr, IfAddr6};
pub use netns::Netns;
pub use nix::sys::signal::Signal;
pub use process::Process;

/// Poll `condition` every 20 ms until it returns true or `timeout` passes; returns whether it
/// became true. The condition is always evaluated at least once, and once more at the
/// deadline.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    wait_for(timeout, || condition().then_some(())).is_some()
}

/// Poll `probe` every 20 ms until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20).min(deadline - now));
    }
}

/// Whether the process runs as root (labs need CAP_SYS_ADMIN and CAP_NET_ADMIN).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Raise this process's `RLIMIT_NOFILE` soft limit to the hard limit (for tests that hold many
/// sockets); returns the new soft limit.
pub fn raise_nofile_limit() -> Result<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(|error| LabError::Sys {
        context: "getrlimit(RLIMIT_NOFILE)".into(),
        error,
    })?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).map_err(|error| LabError::Sys {
            context: "setrlimit(RLIMIT_NOFILE)".into(),
            error,
        })?;
    }
    Ok(hard.max(soft))
}

/// Return early from a test (with a loud `SKIP:` line on stderr) unless running as root.
///
/// ```no_run
/// #[test]
/// fn needs_a_lab() {
///     lvs_lab::require_root!();
///     // ...
/// }
/// ```
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::is_root() {
            // libtest names each test's thread after the test.
            eprintln!(
                "SKIP: {} ({}:{}) needs root (network namespaces)",
                ::std::thread::current().name().unwrap_or(module_path!()),
                file!(),
                line!()
            );
            return;
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Lab>();
        assert_send_sync::<Host>();
        assert_send_sync::<Process>();
        assert_send_sync::<LvsdProcess>();
        assert_send_sync::<client::HttpClient>();
    }

    #[test]
    fn wait_until_polls_until_true() {
        let mut calls = 0;
        assert!(wait_until(Duration::from_secs(1), || {
            calls += 1;
            calls == 3
        }));
        assert_eq!(calls, 3);
        let start = Instant::now();
        assert!(!wait_until(Duration::from_millis(50), || false));
        assert!(start.elapsed() >= Duration::from_millis(50));
        assert_eq!(wait_for(Duration::ZERO, || Some(7)), Some(7));
    }
}
