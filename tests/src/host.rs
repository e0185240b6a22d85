//! [`Host`]: a handle to one namespace of a lab (client, router, directorN, rsK, switch).
//!
//! Invariants: a `Host` never changes the namespace of the caller's thread — everything that
//! must happen "inside" runs on a fresh thread ([`Host::run`]) or in a child that `setns`es
//! before `exec` ([`Host::command`]). Clones share the namespace and the lab's process
//! registry; once the lab is dropped, [`Host::spawn`] fails with [`crate::LabError::LabGone`], while
//! [`Host::run`] keeps working as long as the handle holds the namespace.

use std::ffi::OsStr;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, BorrowedFd};
use std::process::{Command, Stdio};
use std::sync::Arc;

use rtnetlink::Handle;

use crate::error::Result;
use crate::netlink::{self, IfAddr, IfAddr6};
use crate::netns::{self, Netns};
use crate::process::{Process, Registry};
use crate::sys;

/// An address the lab configured on an interface of a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    /// Interface name inside the host's namespace (`eth0`, `ext0`, ...).
    pub name: String,
    /// The address.
    pub addr: Ipv4Addr,
    /// Prefix length.
    pub prefix: u8,
}

/// An IPv6 address the lab configured on an interface of a host (labs built with
/// [`crate::LabSpec::ipv6`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface6 {
    /// Interface name inside the host's namespace (`eth0`, `ext0`, ...).
    pub name: String,
    /// The address.
    pub addr: Ipv6Addr,
    /// Prefix length.
    pub prefix: u8,
}

/// One network namespace of a lab.
#[derive(Debug, Clone)]
pub struct Host {
    name: String,
    netns: Arc<Netns>,
    ifaces: Vec<Iface>,
    ifaces6: Vec<Iface6>,
    registry: Arc<Registry>,
}

impl Host {
    pub(crate) fn new(
        name: String,
        netns: Arc<Netns>,
        ifaces: Vec<Iface>,
        registry: Arc<Registry>,
    ) -> Self {
        Self {
            name,
            netns,
            ifaces,
            ifaces6: Vec::new(),
            registry,
        }
    }

    /// The same host with these IPv6 interface addresses (the lab's IPv6 plan).
    pub(crate) fn with_ifaces6(mut self, ifaces6: Vec<Iface6>) -> Self {
        self.ifaces6 = ifaces6;
        self
    }

    /// The host's name in the lab: `client`, `router`, `switch`, `director1`, `rs3`, ...
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The first address the lab configured (client: 198.51.100.10, router: 198.51.100.1,
    /// directorN: its `ext0` address, rsK: its RIP).
    ///
    /// # Panics
    /// On the `switch` host, which has no addresses.
    pub fn addr(&self) -> Ipv4Addr {
        match self.ifaces.first() {
            Some(iface) => iface.addr,
            None => panic!("lab host {} has no IPv4 address", self.name),
        }
    }

    /// The address the lab configured on `ifname`, if any.
    pub fn addr_of(&self, ifname: &str) -> Option<Ipv4Addr> {
        self.ifaces
            .iter()
            .find(|i| i.name == ifname)
            .map(|i| i.addr)
    }

    /// Every interface address the lab configured, in configuration order (not DR VIPs).
    pub fn ifaces(&self) -> &[Iface] {
        &self.ifaces
    }

    /// The first IPv6 address the lab configured (client: 2001:db8:c::10, router:
    /// 2001:db8:c::1, directorN: its `ext0` address, rsK: its RIP 2001:db8:b::(10+K)).
    ///
    /// # Panics
    /// If the lab was built without [`crate::LabSpec::ipv6`], or on the `switch` host.
    pub fn addr6(&self) -> Ipv6Addr {
        match self.ifaces6.first() {
            Some(iface) => iface.addr,
            None => panic!(
                "lab host {} has no IPv6 address (build the lab with LabSpec::ipv6(true))",
                self.name
            ),
        }
    }

    /// The IPv6 address the lab configured on `ifname`, if any.
    pub fn addr6_of(&self, ifname: &str) -> Option<Ipv6Addr> {
        self.ifaces6
            .iter()
            .find(|i| i.name == ifname)
            .map(|i| i.addr)
    }

    /// Every IPv6 interface address the lab configured (empty without
    /// [`crate::LabSpec::ipv6`]; not DR VIPs, not link-local addresses).
    pub fn ifaces6(&self) -> &[Iface6] {
        &self.ifaces6
    }

    /// The namespace itself (for its inode, or to `setns` a thread of your own).
    pub fn netns(&self) -> &Arc<Netns> {
        &self.netns
    }

    /// The namespace file descriptor, valid while this handle lives.
    pub fn netns_fd(&self) -> BorrowedFd<'_> {
        self.netns.as_fd()
    }

    /// Run `f` on a fresh thread inside this namespace and return its result. Panics in `f`
    /// propagate to the caller; `f` may borrow from the caller's stack.
    ///
    /// # Panics
    /// If the thread cannot be created or cannot enter the namespace (use [`Host::try_run`] to
    /// get that as an error).
    pub fn run<F, T>(&self, f: F) -> T
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        match self.netns.run(f) {
            Ok(value) => value,
            Err(e) => panic!("cannot run in lab host {}: {e}", self.name),
        }
    }

    /// [`Host::run`] with thread/namespace failures reported as errors.
    pub fn try_run<F, T>(&self, f: F) -> Result<T>
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        self.netns.run(f)
    }

    /// A `Command` that runs `program` inside this namespace, with `PR_SET_PDEATHSIG=SIGKILL`,
    /// in its own process group, stdin from /dev/null.
    ///
    /// Start it with [`Host::spawn`] so the lab tracks and kills it. (If you call
    /// `Command::spawn` yourself, the death signal is tied to *your* thread: the child is
    /// SIGKILLed as soon as that thread exits.)
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(program);
        cmd.stdin(Stdio::null()).process_group(0);
        sys::enter_netns_on_exec(&mut cmd, Arc::clone(&self.netns));
        cmd
    }

    /// Spawn `cmd` (normally from [`Host::command`]) on the lab's spawner thread and register
    /// it: the lab SIGTERMs it (SIGKILL after 2 s) when dropped. The process is named after the
    /// host.
    pub fn spawn(&self, cmd: Command) -> Result<Process> {
        self.registry.spawn(self.name.clone(), cmd)
    }

    /// [`Host::spawn`] with an explicit process name (shown in errors and logs).
    pub fn spawn_named(&self, name: impl Into<String>, cmd: Command) -> Result<Process> {
        self.registry.spawn(name.into(), cmd)
    }

    /// Drive rtnetlink requests in this namespace: `f` gets a handle whose route socket was
    /// opened inside the namespace, on a current-thread runtime (bounded by 20 s overall).
    pub fn netlink<F, Fut, T>(&self, f: F) -> Result<T>
    where
        F: FnOnce(Handle) -> Fut + Send,
        Fut: Future<Output = Result<T>>,
        T: Send,
    {
        self.netns.run_try(move || netlink::block_on(f))
    }

    /// Write a network sysctl of this namespace (`net.ipv4.ip_forward` or
    /// `net/ipv4/conf/eth0/rp_filter`).
    pub fn sysctl_write(&self, key: &str, value: &str) -> Result<()> {
        self.netns.run_try(|| netns::write_sysctl(key, value))
    }

    /// Read a network sysctl of this namespace.
    pub fn sysctl_read(&self, key: &str) -> Result<String> {
        self.netns.run_try(|| netns::read_sysctl(key))
    }

    /// Set an interface administratively up or down (e.g. to cut a director off).
    pub fn set_link_up(&self, ifname: &str, up: bool) -> Result<()> {
        self.netlink(|h| async move { netlink::set_link_up(&h, ifname, up).await })
    }

    /// Add `addr/prefix` to `ifname` (no error if already present). IPv6 addresses are added
    /// with `nodad` (usable at once).
    pub fn add_address(&self, ifname: &str, addr: impl Into<IpAddr>, prefix: u8) -> Result<()> {
        let addr = addr.into();
        self.netlink(|h| async move { netlink::add_address(&h, ifname, addr, prefix).await })
    }

    /// Remove `addr` (IPv4 or IPv6) from `ifname` (no error if absent).
    pub fn del_address(&self, ifname: &str, addr: impl Into<IpAddr>) -> Result<()> {
        let addr = addr.into();
        self.netlink(|h| async move { netlink::del_address(&h, ifname, addr).await })
    }

    /// Every IPv4 address currently configured in the namespace (as the kernel reports it).
    pub fn addresses(&self) -> Result<Vec<IfAddr>> {
        self.netlink(|h| async move { netlink::addresses(&h).await })
    }

    /// Every IPv6 address currently configured in the namespace, link-local ones included.
    pub fn addresses6(&self) -> Result<Vec<IfAddr6>> {
        self.netlink(|h| async move { netlink::addresses6(&h).await })
    }

    /// Whether `addr` (IPv4 or IPv6) is currently configured on any interface of the
    /// namespace.
    pub fn has_address(&self, addr: impl Into<IpAddr>) -> Result<bool> {
        Ok(match addr.into() {
            IpAddr::V4(v4) => self.addresses()?.iter().any(|a| a.addr == v4),
            IpAddr::V6(v6) => self.addresses6()?.iter().any(|a| a.addr == v6),
        })
    }

    /// Replace the default route with one via `gateway`.
    pub fn replace_default_route(&self, gateway: Ipv4Addr) -> Result<()> {
        self.netlink(|h| async move { netlink::replace_default_route(&h, gateway).await })
    }

    /// Add or replace a route to `dst/prefix` via `gateway`.
    pub fn replace_route(&self, dst: Ipv4Addr, prefix: u8, gateway: Ipv4Addr) -> Result<()> {
        self.netlink(|h| async move { netlink::replace_route(&h, dst, prefix, gateway).await })
    }

    /// Add or replace an on-link route to `dst/prefix` out of `ifname` (no gateway).
    pub fn replace_device_route(&self, dst: Ipv4Addr, prefix: u8, ifname: &str) -> Result<()> {
        self.netlink(
            |h| async move { netlink::replace_device_route(&h, dst, prefix, ifname).await },
        )
    }

    /// Remove the route to `dst/prefix`.
    pub fn del_route(&self, dst: Ipv4Addr, prefix: u8) -> Result<()> {
        self.netlink(|h| async move { netlink::del_route(&h, dst, prefix).await })
    }

    /// Replace the IPv6 default route with one via `gateway`.
    pub fn replace_default_route6(&self, gateway: Ipv6Addr) -> Result<()> {
        self.netlink(|h| async move { netlink::replace_default_route6(&h, gateway).await })
    }

    /// Add or replace an IPv6 route to `dst/prefix` via `gateway`.
    pub fn replace_route6(&self, dst: Ipv6Addr, prefix: u8, gateway: Ipv6Addr) -> Result<()> {
        self.netlink(|h| async move { netlink::replace_route6(&h, dst, prefix, gateway).await })
    }

    /// Add or replace an on-link IPv6 route to `dst/prefix` out of `ifname` (no gateway).
    pub fn replace_device_route6(&self, dst: Ipv6Addr, prefix: u8, ifname: &str) -> Result<()> {
        self.netlink(
            |h| async move { netlink::replace_device_route6(&h, dst, prefix, ifname).await },
        )
    }

    /// Remove the IPv6 route to `dst/prefix`.
    pub fn del_route6(&self, dst: Ipv6Addr, prefix: u8) -> Result<()> {
        self.netlink(|h| async move { netlink::del_route6(&h, dst, prefix).await })
    }

    /// Interface index of `ifname` in this namespace.
    pub fn ifindex(&self, ifname: &str) -> Result<u32> {
        self.netlink(|h| async move { netlink::link_index(&h, ifname).await })
    }

    /// MAC address of `ifname` in this namespace.
    pub fn mac(&self, ifname: &str) -> Result<[u8; 6]> {
        self.netlink(|h| async move { netlink::link_mac(&h, ifname).await })
    }

    /// Every Ethernet frame `ifname` sends or receives during the next `duration` (at most
    /// 100,000, each cut to 2 KiB), through a raw packet socket. Blocks for `duration`: run
    /// it on a thread of its own while the traffic of interest happens.
    pub fn capture(&self, ifname: &str, duration: std::time::Duration) -> Result<Vec<Vec<u8>>> {
        let ifindex = self.ifindex(ifname)?;
        self.netns.run_try(move || {
            crate::sys::capture_frames(ifindex, duration, 100_000).map_err(|error| {
                crate::LabError::Io {
                    context: format!("capturing frames on ifindex {ifindex}"),
                    error,
                }
            })
        })
    }

    /// Puts complete Ethernet frames on the wire out of `ifname` as they are (raw packet
    /// socket): for tests that send malformed traffic.
    pub fn send_raw_frames(&self, ifname: &str, frames: &[Vec<u8>]) -> Result<()> {
        let ifindex = self.ifindex(ifname)?;
        let frames = frames.to_vec();
        self.netns.run_try(move || {
            crate::sys::send_raw_frames(ifindex, &frames).map_err(|error| crate::LabError::Io {
                context: format!("sending raw frames on ifindex {ifindex}"),
                error,
            })
        })
    }
}
