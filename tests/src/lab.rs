//! The lab topology: [`LabSpec`] in, a wired and configured [`Lab`] out.
//!
//! ```text
//!  client ──veth── router ─eth1─┐            ┌─ext0─ directorN ─int0─┐
//!  198.51.100.10   .1 / eth0    │ br-front   │  203.0.113.(1+N)      │ br-back
//!                  203.0.113.1 ─┘ (switch ns)└───────────────────────┤ (switch ns)
//!                  192.0.2.254 ─eth2─────────────────────────────────┼─eth0─ rsK 192.0.2.(10+K)
//!                                                                    └ int0 192.0.2.N
//! ```
//!
//! With [`LabSpec::ipv6`] every host also gets the IPv6 mirror of that plan (all /64, from
//! the documentation prefix): client link 2001:db8:c::/64 (client ::10, router ::1), front
//! 2001:db8:f::/64 (router ::1, director N `ext0` ::(1+N) in hex, VIPs from ::10 —
//! [`vip6`]), back 2001:db8:b::/64 (director N `int0` ::N, real server K ::(10+K) in hex,
//! router ::fe). The IPv6 routes mirror the IPv4 ones (client default via the router, NAT
//! real servers via director 1's DIP, DR/TUN real servers via the router).
//!
//! Invariants:
//! - Every namespace is anonymous and owned by the `Lab` (see [`crate::netns`]); names inside
//!   them are fixed (`eth0`, `ext0`, ...), so any number of labs run side by side.
//! - All links are created from the `switch` namespace with both ends born in their final
//!   namespace; host-side configuration (sysctls, addresses, routes) runs on a thread inside the
//!   host's namespace. No external program is ever run to build a lab.
//! - `rp_filter` is 0 on every interface of every namespace; IPv6 is disabled unless
//!   [`LabSpec::ipv6`] (less background noise on the wire); redirects are off.
//! - With IPv6: addresses are added `nodad` and `accept_dad` is 0 on every interface (link-local
//!   addresses included), so everything is usable the moment `Lab::build` returns; router
//!   advertisements and redirects are ignored (`accept_ra` = `accept_redirects` = 0);
//!   `keep_addr_on_down` = 1 so a link taken down keeps its IPv6 addresses as it keeps its
//!   IPv4 ones; IPv6 forwarding is on exactly where IPv4 forwarding is (router, directors).
//! - Dropping the `Lab` (also while unwinding from a panic) stops every child process it
//!   started (SIGTERM, SIGKILL after 2 s), prints the logs of lvsd instances if the thread is
//!   panicking, removes the work directory (unless `LVS_LAB_KEEP` is set) and closes the
//!   namespace fds. Work directories of SIGKILLed test processes are swept by the next
//!   process's first `Lab::build`.

use std::fs::{self, File};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{Context, LabError, Result};
use crate::host::{Host, Iface, Iface6};
use crate::lvsd::{self, LvsdProcess};
use crate::netlink::{self, VethEnd};
use crate::netns::{self, Netns};
use crate::process::{Process, Registry};

/// The client's address (`client` ns, `eth0`).
pub const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
/// The router's address on the client link (`router` ns, `eth0`); the client's gateway.
pub const ROUTER_CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
/// The router's address on the front network (`router` ns, `eth1`); the directors' gateway.
pub const ROUTER_FRONT_ADDR: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
/// The router's address on the back network (`router` ns, `eth2`); the DR real servers'
/// gateway.
pub const ROUTER_BACK_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 254);
/// The first address meant for VIPs (203.0.113.10); lvsd adds VIPs itself.
pub const FIRST_VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
/// Most directors a lab can have (their `ext0` addresses stay below [`FIRST_VIP`]).
pub const MAX_DIRECTORS: usize = 8;
/// Most real servers a lab can have (RIPs 192.0.2.11 ..= 192.0.2.210).
pub const MAX_REAL_SERVERS: usize = 200;
/// How long [`Lab::start_backends`] waits for each node to print `ready`.
pub const NODE_READY_TIMEOUT: Duration = Duration::from_secs(10);

/// The client's IPv6 address (`client` ns, `eth0`): 2001:db8:c::10.
pub const CLIENT_ADDR6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 0x10);
/// The router's IPv6 address on the client link: 2001:db8:c::1; the client's gateway.
pub const ROUTER_CLIENT_ADDR6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 1);
/// The router's IPv6 address on the front network: 2001:db8:f::1; the directors' gateway.
pub const ROUTER_FRONT_ADDR6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 1);
/// The router's IPv6 address on the back network: 2001:db8:b::fe; the DR/TUN real servers'
/// gateway.
pub const ROUTER_BACK_ADDR6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, 0xfe);
/// The first IPv6 address meant for VIPs: 2001:db8:f::10.
pub const FIRST_VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 0x10);
/// Prefix length of every IPv6 lab network.
pub const PREFIX6: u8 = 64;

/// IPv6 address of director `n` (1-based) on the front network: 2001:db8:f::(1+n) (hex),
/// on `ext0`.
pub fn director_ext_addr6(n: usize) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, segment(1 + n))
}

/// IPv6 address of director `n` (1-based) on the back network (its DIP): 2001:db8:b::n
/// (hex), on `int0`.
pub fn director_int_addr6(n: usize) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, segment(n))
}

/// IPv6 address of real server `k` (1-based), its RIP: 2001:db8:b::(0x10+k), on `eth0`
/// (rs1 = 2001:db8:b::11).
pub fn real_server_addr6(k: usize) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, segment(0x10 + k))
}

/// The `i`-th IPv6 VIP (0-based): 2001:db8:f::(0x10+i).
pub fn vip6(i: usize) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, segment(0x10 + i))
}

fn segment(value: usize) -> u16 {
    u16::try_from(value).unwrap_or(u16::MAX)
}

/// Address of director `n` (1-based) on the front network: 203.0.113.(1+n), on `ext0`.
pub fn director_ext_addr(n: usize) -> Ipv4Addr {
    Ipv4Addr::new(203, 0, 113, octet(1 + n))
}

/// Address of director `n` (1-based) on the back network (its DIP): 192.0.2.n, on `int0`.
pub fn director_int_addr(n: usize) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, octet(n))
}

/// Address of real server `k` (1-based), its RIP: 192.0.2.(10+k), on `eth0`.
pub fn real_server_addr(k: usize) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, octet(10 + k))
}

/// The `i`-th VIP (0-based): 203.0.113.(10+i).
pub fn vip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(203, 0, 113, octet(10 + i))
}

fn octet(value: usize) -> u8 {
    // Callers are bounded by MAX_DIRECTORS / MAX_REAL_SERVERS; saturate rather than wrap.
    u8::try_from(value).unwrap_or(u8::MAX)
}

/// A real server's default gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gateway {
    /// Director 1's DIP, 192.0.2.1 (NAT mode: replies must pass the director).
    Director,
    /// The router, 192.0.2.254 (DR mode: replies go straight back).
    Router,
    /// Any other address on the back network (e.g. a floating DIP managed by VRRP).
    Address(Ipv4Addr),
}

impl Gateway {
    /// The gateway's address.
    pub fn addr(self) -> Ipv4Addr {
        match self {
            Self::Director => director_int_addr(1),
            Self::Router => ROUTER_BACK_ADDR,
            Self::Address(addr) => addr,
        }
    }

    /// The gateway's IPv6 address: director 1's DIP 2001:db8:b::1, the router's
    /// 2001:db8:b::fe, or `None` for [`Gateway::Address`] (then the IPv6 default route is
    /// left as it is).
    pub fn addr6(self) -> Option<Ipv6Addr> {
        match self {
            Self::Director => Some(director_int_addr6(1)),
            Self::Router => Some(ROUTER_BACK_ADDR6),
            Self::Address(_) => None,
        }
    }
}

/// How one real server is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealServerSpec {
    /// Its default gateway.
    pub gateway: Gateway,
    /// VIPs to hold on `lo` for direct routing (also sets `arp_ignore=1`, `arp_announce=2`).
    pub dr_vips: Vec<Ipv4Addr>,
    /// IPv6 VIPs to hold on `lo` (as /128, nodad) for direct routing over IPv6. No sysctl is
    /// needed: Linux answers a Neighbor Solicitation only for addresses of the interface it
    /// arrived on. Needs [`LabSpec::ipv6`].
    pub dr_vips6: Vec<Ipv6Addr>,
}

impl RealServerSpec {
    /// A NAT-mode real server: gateway = director 1's DIP, no VIPs.
    pub fn nat() -> Self {
        Self {
            gateway: Gateway::Director,
            dr_vips: Vec::new(),
            dr_vips6: Vec::new(),
        }
    }

    /// A DR-mode real server: gateway = the router, `vips` (IPv4 and/or IPv6) on `lo`.
    pub fn dr(vips: impl IntoIterator<Item = impl Into<IpAddr>>) -> Self {
        let mut spec = Self::bare();
        for vip in vips {
            match vip.into() {
                IpAddr::V4(v4) => spec.dr_vips.push(v4),
                IpAddr::V6(v6) => spec.dr_vips6.push(v6),
            }
        }
        spec
    }

    /// A real server for TUN (or DR) prepared by `lvsd realserver` rather than by the lab:
    /// gateway = the router, no VIPs, ARP sysctls untouched (see
    /// [`Lab::start_realserver_helper`]).
    pub fn bare() -> Self {
        Self {
            gateway: Gateway::Router,
            dr_vips: Vec::new(),
            dr_vips6: Vec::new(),
        }
    }
}

/// What to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabSpec {
    /// Number of directors (1 ..= [`MAX_DIRECTORS`]).
    pub directors: usize,
    /// One entry per real server `rs1`, `rs2`, ... (at most [`MAX_REAL_SERVERS`]).
    pub real_servers: Vec<RealServerSpec>,
    /// Executable of the node program: the lab runs `NODE_EXE lab-node backend --name rsK`.
    /// `lvsd` (hidden `lab-node` subcommand) and this crate's `lvs-lab-node` binary both qualify.
    pub node_exe: PathBuf,
    /// The lvsd executable for [`Lab::start_lvsd`]; `None` = [`crate::lvsd_binary`].
    pub lvsd_exe: Option<PathBuf>,
    /// Keep IPv6 enabled in the namespaces and configure the IPv6 address plan (module docs);
    /// default: disabled, for quieter links.
    pub ipv6: bool,
}

impl LabSpec {
    /// One director, no real servers, IPv6 off.
    pub fn new(node_exe: impl Into<PathBuf>) -> Self {
        Self {
            directors: 1,
            real_servers: Vec::new(),
            node_exe: node_exe.into(),
            lvsd_exe: None,
            ipv6: false,
        }
    }

    /// Set the number of directors.
    #[must_use]
    pub fn directors(mut self, n: usize) -> Self {
        self.directors = n;
        self
    }

    /// Append one real server.
    #[must_use]
    pub fn real_server(mut self, rs: RealServerSpec) -> Self {
        self.real_servers.push(rs);
        self
    }

    /// Append `n` NAT-mode real servers.
    #[must_use]
    pub fn nat_real_servers(mut self, n: usize) -> Self {
        self.real_servers
            .extend(std::iter::repeat_with(RealServerSpec::nat).take(n));
        self
    }

    /// Append `n` DR-mode real servers, each holding `vips` (IPv4 and/or IPv6) on `lo`.
    #[must_use]
    pub fn dr_real_servers<V: Into<IpAddr> + Copy>(mut self, n: usize, vips: &[V]) -> Self {
        self.real_servers
            .extend(std::iter::repeat_with(|| RealServerSpec::dr(vips.iter().copied())).take(n));
        self
    }

    /// Use this lvsd executable instead of [`crate::lvsd_binary`].
    #[must_use]
    pub fn lvsd_exe(mut self, exe: impl Into<PathBuf>) -> Self {
        self.lvsd_exe = Some(exe.into());
        self
    }

    /// Keep IPv6 enabled and give every host the IPv6 addresses and routes of the plan in the
    /// module docs.
    #[must_use]
    pub fn ipv6(mut self, enabled: bool) -> Self {
        self.ipv6 = enabled;
        self
    }

    fn validate(&self) -> Result<()> {
        if !(1..=MAX_DIRECTORS).contains(&self.directors) {
            return Err(LabError::Invalid(format!(
                "{} directors (1..={MAX_DIRECTORS} supported)",
                self.directors
            )));
        }
        if self.real_servers.len() > MAX_REAL_SERVERS {
            return Err(LabError::Invalid(format!(
                "{} real servers (at most {MAX_REAL_SERVERS})",
                self.real_servers.len()
            )));
        }
        if !self.ipv6 && self.real_servers.iter().any(|rs| !rs.dr_vips6.is_empty()) {
            return Err(LabError::Invalid(
                "IPv6 DR VIPs need LabSpec::ipv6(true)".into(),
            ));
        }
        Ok(())
    }
}

/// Paths of a child's captured stdout and stderr.
#[derive(Debug, Clone)]
pub struct LogFiles {
    /// Captured stdout.
    pub stdout: PathBuf,
    /// Captured stderr.
    pub stderr: PathBuf,
}

impl LogFiles {
    pub(crate) fn in_dir(dir: &Path, stem: &str) -> Self {
        Self {
            stdout: dir.join(format!("{stem}.stdout")),
            stderr: dir.join(format!("{stem}.stderr")),
        }
    }

    pub(crate) fn create(&self) -> Result<(File, File)> {
        let out = File::create(&self.stdout)
            .with_ctx(|| format!("creating {}", self.stdout.display()))?;
        let err = File::create(&self.stderr)
            .with_ctx(|| format!("creating {}", self.stderr.display()))?;
        Ok((out, err))
    }

    /// The captured stdout so far (lossy UTF-8; empty if unreadable).
    pub fn stdout_text(&self) -> String {
        read_lossy(&self.stdout)
    }

    /// The captured stderr so far (lossy UTF-8; empty if unreadable).
    pub fn stderr_text(&self) -> String {
        read_lossy(&self.stderr)
    }

    /// Both streams' last `lines` lines, formatted for an error message (starts with a newline;
    /// empty streams are omitted).
    pub fn render_tail(&self, lines: usize) -> String {
        let mut out = String::new();
        for (label, path) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            let text = read_lossy(path);
            if text.trim().is_empty() {
                continue;
            }
            let all: Vec<&str> = text.lines().collect();
            let skip = all.len().saturating_sub(lines);
            out.push_str(&format!("\n--- {label} ({}) ---", path.display()));
            if skip > 0 {
                out.push_str(&format!("\n[... {skip} lines omitted]"));
            }
            for line in &all[skip..] {
                out.push('\n');
                out.push_str(line);
            }
        }
        out
    }
}

fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

/// Whether `text` has a line containing the word `ready` (so "already" does not count).
pub(crate) fn has_ready_line(text: &str) -> bool {
    text.lines().any(|line| {
        line.split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .any(|word| word.eq_ignore_ascii_case("ready"))
    })
}

/// Wait until `process` prints a `ready` line on stdout, fails, or `timeout` passes (then it
/// is killed).
pub(crate) fn wait_ready(process: &Process, logs: &LogFiles, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if has_ready_line(&logs.stdout_text()) {
            return Ok(());
        }
        if let Some(status) = process.try_wait()? {
            return Err(LabError::EarlyExit {
                what: process.name().to_owned(),
                status: status.to_string(),
                logs: logs.render_tail(60),
            });
        }
        if Instant::now() >= deadline {
            let _ = process.kill();
            return Err(LabError::Timeout {
                what: format!("{} to print \"ready\"", process.name()),
                after: timeout,
                logs: logs.render_tail(60),
            });
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Per-host configuration applied inside the host's namespace.
#[derive(Debug, Default)]
struct HostPlan {
    ifaces: Vec<Iface>,
    gateway: Option<Ipv4Addr>,
    forward: bool,
    dr_vips: Vec<Ipv4Addr>,
    ipv6: bool,
    ifaces6: Vec<Iface6>,
    gateway6: Option<Ipv6Addr>,
    dr_vips6: Vec<Ipv6Addr>,
}

static NEXT_LAB: AtomicU64 = AtomicU64::new(1);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded lists stay consistent even if a holder panicked.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running lab. See the module docs for the topology and the cleanup guarantees.
#[derive(Debug)]
pub struct Lab {
    label: String,
    spec: LabSpec,
    work_dir: PathBuf,
    registry: Arc<Registry>,
    switch: Host,
    client: Host,
    router: Host,
    directors: Vec<Host>,
    real_servers: Vec<Host>,
    backends: Mutex<Vec<Option<Process>>>,
    lvsd_logs: Mutex<Vec<(String, LogFiles)>>,
    counter: AtomicU64,
}

impl Lab {
    /// Create the namespaces, wire them and configure addresses, routes and sysctls.
    ///
    /// Takes a few hundred milliseconds. Nothing is started inside; see
    /// [`Lab::start_backends`] and [`Lab::start_lvsd`]. On error everything created so far is
    /// torn down again.
    pub fn build(spec: LabSpec) -> Result<Self> {
        spec.validate()?;
        let id = NEXT_LAB.fetch_add(1, Ordering::Relaxed);
        let label = format!("lab{id}");
        if id == 1 {
            sweep_stale_work_dirs();
        }
        let work_dir = std::env::temp_dir().join(format!("lvs-lab-{}-{id}", std::process::id()));
        fs::create_dir_all(&work_dir)
            .with_ctx(|| format!("creating the lab directory {}", work_dir.display()))?;
        let registry = match Registry::new(&label) {
            Ok(r) => r,
            Err(e) => {
                let _ = fs::remove_dir_all(&work_dir);
                return Err(e);
            }
        };
        let started = Instant::now();
        let lab = Self::create_hosts(label, spec, work_dir, registry)?;
        lab.wire()?;
        lab.configure()?;
        tracing::debug!(lab = %lab.label, elapsed = ?started.elapsed(), "lab built");
        Ok(lab)
    }

    fn create_hosts(
        label: String,
        spec: LabSpec,
        work_dir: PathBuf,
        registry: Arc<Registry>,
    ) -> Result<Self> {
        // If a namespace cannot be created, `lab` does not exist yet: clean up by hand.
        let made = (|| -> Result<_> {
            let ipv6 = spec.ipv6;
            let host = |name: String, ifaces: &[(&str, Ipv4Addr, Ipv6Addr)]| -> Result<Host> {
                let netns = Arc::new(Netns::new(&name)?);
                let v4 = ifaces
                    .iter()
                    .map(|&(ifname, addr, _)| Iface {
                        name: ifname.to_owned(),
                        addr,
                        prefix: 24,
                    })
                    .collect();
                let v6 = ifaces
                    .iter()
                    .filter(|_| ipv6)
                    .map(|&(ifname, _, addr)| Iface6 {
                        name: ifname.to_owned(),
                        addr,
                        prefix: PREFIX6,
                    })
                    .collect();
                Ok(Host::new(name, netns, v4, Arc::clone(&registry)).with_ifaces6(v6))
            };
            let switch = host("switch".into(), &[])?;
            let client = host("client".into(), &[("eth0", CLIENT_ADDR, CLIENT_ADDR6)])?;
            let router = host(
                "router".into(),
                &[
                    ("eth0", ROUTER_CLIENT_ADDR, ROUTER_CLIENT_ADDR6),
                    ("eth1", ROUTER_FRONT_ADDR, ROUTER_FRONT_ADDR6),
                    ("eth2", ROUTER_BACK_ADDR, ROUTER_BACK_ADDR6),
                ],
            )?;
            let directors = (1..=spec.directors)
                .map(|n| {
                    host(
                        format!("director{n}"),
                        &[
                            ("ext0", director_ext_addr(n), director_ext_addr6(n)),
                            ("int0", director_int_addr(n), director_int_addr6(n)),
                        ],
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            let real_servers = (1..=spec.real_servers.len())
                .map(|k| {
                    host(
                        format!("rs{k}"),
                        &[("eth0", real_server_addr(k), real_server_addr6(k))],
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            Ok((switch, client, router, directors, real_servers))
        })();
        let (switch, client, router, directors, real_servers) = match made {
            Ok(hosts) => hosts,
            Err(e) => {
                registry.shutdown();
                let _ = fs::remove_dir_all(&work_dir);
                return Err(e);
            }
        };
        let backends = Mutex::new(vec![None; real_servers.len()]);
        Ok(Self {
            label,
            spec,
            work_dir,
            registry,
            switch,
            client,
            router,
            directors,
            real_servers,
            backends,
            lvsd_logs: Mutex::new(Vec::new()),
            counter: AtomicU64::new(0),
        })
    }

    /// Create bridges and veth pairs from the switch namespace.
    fn wire(&self) -> Result<()> {
        struct Port {
            switch_if: String,
            host_if: &'static str,
            host_fd: RawFd,
            front: bool,
        }
        let mut ports = vec![
            Port {
                switch_if: "rtr-eth1".into(),
                host_if: "eth1",
                host_fd: self.router.netns().as_raw_fd(),
                front: true,
            },
            Port {
                switch_if: "rtr-eth2".into(),
                host_if: "eth2",
                host_fd: self.router.netns().as_raw_fd(),
                front: false,
            },
        ];
        for (i, d) in self.directors.iter().enumerate() {
            let n = i + 1;
            let fd = d.netns().as_raw_fd();
            ports.push(Port {
                switch_if: format!("d{n}-ext0"),
                host_if: "ext0",
                host_fd: fd,
                front: true,
            });
            ports.push(Port {
                switch_if: format!("d{n}-int0"),
                host_if: "int0",
                host_fd: fd,
                front: false,
            });
        }
        for (i, rs) in self.real_servers.iter().enumerate() {
            ports.push(Port {
                switch_if: format!("rs{}-eth0", i + 1),
                host_if: "eth0",
                host_fd: rs.netns().as_raw_fd(),
                front: false,
            });
        }
        let client_fd = self.client.netns().as_raw_fd();
        let router_fd = self.router.netns().as_raw_fd();
        // The fds stay open for the whole call: `self` owns the namespaces.
        self.switch.netlink(move |h| async move {
            netlink::set_link_up(&h, "lo", true).await?;
            let front = netlink::create_bridge(&h, "br-front").await?;
            let back = netlink::create_bridge(&h, "br-back").await?;
            netlink::create_veth(
                &h,
                VethEnd {
                    name: "eth0",
                    netns: Some(client_fd),
                },
                VethEnd {
                    name: "eth0",
                    netns: Some(router_fd),
                },
            )
            .await?;
            for port in &ports {
                netlink::create_veth(
                    &h,
                    VethEnd {
                        name: &port.switch_if,
                        netns: None,
                    },
                    VethEnd {
                        name: port.host_if,
                        netns: Some(port.host_fd),
                    },
                )
                .await?;
                let bridge = if port.front { front } else { back };
                netlink::attach_to_bridge(&h, &port.switch_if, bridge).await?;
            }
            Ok(())
        })
    }

    fn configure(&self) -> Result<()> {
        // A switch forwards frames, it does not police IP: with br_netfilter loaded on the
        // host, new namespaces get `bridge-nf-call-*tables = 1`, and the bridge would then
        // validate (and drop) malformed IPv4 headers before they reach the director. The
        // files exist only while br_netfilter is loaded.
        for key in [
            "net/bridge/bridge-nf-call-iptables",
            "net/bridge/bridge-nf-call-ip6tables",
            "net/bridge/bridge-nf-call-arptables",
        ] {
            if std::path::Path::new("/proc/sys").join(key).exists() {
                self.switch.sysctl_write(key, "0")?;
            }
        }
        let ipv6 = self.spec.ipv6;
        let mut plans: Vec<(&Host, HostPlan)> = vec![
            (
                &self.switch,
                HostPlan {
                    ipv6,
                    ..HostPlan::default()
                },
            ),
            (
                &self.client,
                HostPlan {
                    ifaces: self.client.ifaces().to_vec(),
                    gateway: Some(ROUTER_CLIENT_ADDR),
                    ipv6,
                    ifaces6: self.client.ifaces6().to_vec(),
                    gateway6: ipv6.then_some(ROUTER_CLIENT_ADDR6),
                    ..HostPlan::default()
                },
            ),
            (
                &self.router,
                HostPlan {
                    ifaces: self.router.ifaces().to_vec(),
                    forward: true,
                    ipv6,
                    ifaces6: self.router.ifaces6().to_vec(),
                    ..HostPlan::default()
                },
            ),
        ];
        for d in &self.directors {
            plans.push((
                d,
                HostPlan {
                    ifaces: d.ifaces().to_vec(),
                    gateway: Some(ROUTER_FRONT_ADDR),
                    forward: true,
                    ipv6,
                    ifaces6: d.ifaces6().to_vec(),
                    gateway6: ipv6.then_some(ROUTER_FRONT_ADDR6),
                    ..HostPlan::default()
                },
            ));
        }
        for (rs, rs_spec) in self.real_servers.iter().zip(&self.spec.real_servers) {
            plans.push((
                rs,
                HostPlan {
                    ifaces: rs.ifaces().to_vec(),
                    gateway: Some(rs_spec.gateway.addr()),
                    dr_vips: rs_spec.dr_vips.clone(),
                    ipv6,
                    ifaces6: rs.ifaces6().to_vec(),
                    gateway6: rs_spec.gateway.addr6().filter(|_| ipv6),
                    dr_vips6: rs_spec.dr_vips6.clone(),
                    ..HostPlan::default()
                },
            ));
        }
        // Hosts are independent once wired: configure them in parallel.
        thread::scope(|scope| {
            let jobs: Vec<_> = plans
                .iter()
                .map(|(host, plan)| scope.spawn(move || configure_host(host, plan)))
                .collect();
            jobs.into_iter().try_for_each(|job| match job.join() {
                Ok(result) => result,
                Err(payload) => std::panic::resume_unwind(payload),
            })
        })
    }

    /// The lab's unique label (`labN`), used in thread names and the work directory.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The spec the lab was built from.
    pub fn spec(&self) -> &LabSpec {
        &self.spec
    }

    /// A per-lab scratch directory (removed on drop unless `LVS_LAB_KEEP` is set). Put lvsd
    /// control sockets and other files here.
    pub fn work_dir(&self) -> &Path {
        &self.work_dir
    }

    /// The `client` host.
    pub fn client(&self) -> &Host {
        &self.client
    }

    /// The `router` host.
    pub fn router(&self) -> &Host {
        &self.router
    }

    /// The `switch` host (holds `br-front` and `br-back`; good for packet captures).
    pub fn switch(&self) -> &Host {
        &self.switch
    }

    /// Director `n`, 1-based.
    ///
    /// # Panics
    /// If `n` is 0 or greater than the number of directors.
    pub fn director(&self, n: usize) -> &Host {
        match n.checked_sub(1).and_then(|i| self.directors.get(i)) {
            Some(host) => host,
            None => panic!(
                "director{n} does not exist (lab has {})",
                self.directors.len()
            ),
        }
    }

    /// Real server `k`, 1-based.
    ///
    /// # Panics
    /// If `k` is 0 or greater than the number of real servers.
    pub fn real_server(&self, k: usize) -> &Host {
        match self.rs_index(k) {
            Ok(i) => &self.real_servers[i],
            Err(e) => panic!("{e}"),
        }
    }

    /// All directors, in order.
    pub fn directors(&self) -> &[Host] {
        &self.directors
    }

    /// All real servers, in order.
    pub fn real_servers(&self) -> &[Host] {
        &self.real_servers
    }

    /// Every host: switch, client, router, directors, real servers.
    pub fn hosts(&self) -> impl Iterator<Item = &Host> {
        [&self.switch, &self.client, &self.router]
            .into_iter()
            .chain(&self.directors)
            .chain(&self.real_servers)
    }

    /// The host called `name` (`client`, `director2`, `rs3`, ...).
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts().find(|h| h.name() == name)
    }

    /// The namespace fd of host `name`, valid while the lab lives.
    pub fn netns_fd(&self, name: &str) -> Option<BorrowedFd<'_>> {
        self.host(name).map(Host::netns_fd)
    }

    /// `(host name, namespace inode)` for every host, e.g. to check after drop that nothing
    /// still references the namespaces.
    pub fn netns_inodes(&self) -> Vec<(String, u64)> {
        self.hosts()
            .map(|h| (h.name().to_owned(), h.netns().inode()))
            .collect()
    }

    fn rs_index(&self, k: usize) -> Result<usize> {
        k.checked_sub(1)
            .filter(|&i| i < self.real_servers.len())
            .ok_or_else(|| {
                LabError::Invalid(format!(
                    "rs{k} does not exist (lab has {})",
                    self.real_servers.len()
                ))
            })
    }

    fn next_seq(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }

    /// Start the node program as a backend in every real server and wait until each printed
    /// `ready` (at most [`NODE_READY_TIMEOUT`] each, started in parallel). Backends already
    /// running are stopped first.
    pub fn start_backends(&self) -> Result<()> {
        for k in 1..=self.real_servers.len() {
            self.stop_backend(k)?;
        }
        let started = (1..=self.real_servers.len())
            .map(|k| self.spawn_backend(k))
            .collect::<Result<Vec<_>>>()?;
        for (k, (process, logs)) in started.into_iter().enumerate() {
            wait_ready(&process, &logs, NODE_READY_TIMEOUT)?;
            lock(&self.backends)[k] = Some(process);
        }
        Ok(())
    }

    /// (Re)start the backend of real server `k` and wait for `ready`. A backend already running
    /// there is stopped first.
    pub fn start_backend(&self, k: usize) -> Result<Process> {
        let i = self.rs_index(k)?;
        self.stop_backend(k)?;
        let (process, logs) = self.spawn_backend(k)?;
        wait_ready(&process, &logs, NODE_READY_TIMEOUT)?;
        lock(&self.backends)[i] = Some(process.clone());
        Ok(process)
    }

    /// Stop the backend of real server `k` (SIGTERM, SIGKILL after 2 s); no-op if none runs.
    pub fn stop_backend(&self, k: usize) -> Result<()> {
        let i = self.rs_index(k)?;
        let previous = lock(&self.backends)[i].take();
        if let Some(p) = previous {
            match p.stop(crate::process::SHUTDOWN_GRACE) {
                Ok(_) | Err(LabError::Killed { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The backend process of real server `k`, if one was started.
    pub fn backend(&self, k: usize) -> Option<Process> {
        let i = self.rs_index(k).ok()?;
        lock(&self.backends)[i].clone()
    }

    fn spawn_backend(&self, k: usize) -> Result<(Process, LogFiles)> {
        let i = self.rs_index(k)?;
        let host = &self.real_servers[i];
        let logs = LogFiles::in_dir(
            &self.work_dir,
            &format!("{}-node-{}", host.name(), self.next_seq()),
        );
        let (out, err) = logs.create()?;
        let mut cmd = host.command(&self.spec.node_exe);
        cmd.args(["lab-node", "backend", "--name", host.name()])
            .stdout(out)
            .stderr(err);
        let process = host.spawn_named(format!("backend {}", host.name()), cmd)?;
        Ok((process, logs))
    }

    /// Start `lvsd --config FILE` in director `director` (1-based) with `config_toml` written
    /// to a file in [`Lab::work_dir`], and wait (≤ 15 s) until it prints a line containing the
    /// word `ready`. stdout/stderr go to files ([`LvsdProcess::logs`]).
    pub fn start_lvsd(&self, director: usize, config_toml: &str) -> Result<LvsdProcess> {
        self.start_lvsd_with_args(director, config_toml, &[])
    }

    /// [`Lab::start_lvsd`] with extra command-line arguments after `--config FILE`.
    pub fn start_lvsd_with_args(
        &self,
        director: usize,
        config_toml: &str,
        extra_args: &[&str],
    ) -> Result<LvsdProcess> {
        let host = n_th(&self.directors, director, "director")?;
        let exe = match &self.spec.lvsd_exe {
            Some(exe) => exe.clone(),
            None => crate::lvsd_binary()?,
        };
        let stem = format!("lvsd-{}-{}", host.name(), self.next_seq());
        let config_path = self.work_dir.join(format!("{stem}.toml"));
        // Its own control socket, in a directory lvsd creates (lvsd.rs).
        let (config_toml, socket) = lvsd::with_control_socket(
            config_toml,
            &self.work_dir.join(format!("{stem}.ctl")).join("lvsd.sock"),
        );
        fs::write(&config_path, config_toml)
            .with_ctx(|| format!("writing {}", config_path.display()))?;
        let logs = LogFiles::in_dir(&self.work_dir, &stem);
        let (out, err) = logs.create()?;
        let mut cmd = host.command(&exe);
        cmd.arg("--config")
            .arg(&config_path)
            .args(extra_args)
            .env("RUST_BACKTRACE", "1")
            .stdout(out)
            .stderr(err);
        let name = format!("lvsd@{}", host.name());
        let process = host.spawn_named(name.clone(), cmd)?;
        lock(&self.lvsd_logs).push((name, logs.clone()));
        wait_ready(&process, &logs, lvsd::READY_TIMEOUT)?;
        Ok(LvsdProcess::new(process, config_path, logs, socket))
    }

    /// Run `lvsd realserver ARGS` (the real-server helper) in real server `k` and wait
    /// (≤ [`NODE_READY_TIMEOUT`]) until it prints `ready`. It is stopped (SIGTERM, so it
    /// undoes its changes) with the lab, or earlier through the returned [`Process`];
    /// its output is in the returned [`LogFiles`].
    pub fn start_realserver_helper(&self, k: usize, args: &[&str]) -> Result<(Process, LogFiles)> {
        let i = self.rs_index(k)?;
        let host = &self.real_servers[i];
        let exe = match &self.spec.lvsd_exe {
            Some(exe) => exe.clone(),
            None => crate::lvsd_binary()?,
        };
        let logs = LogFiles::in_dir(
            &self.work_dir,
            &format!("{}-realserver-{}", host.name(), self.next_seq()),
        );
        let (out, err) = logs.create()?;
        let mut cmd = host.command(&exe);
        cmd.arg("realserver").args(args).stdout(out).stderr(err);
        let process = host.spawn_named(format!("realserver {}", host.name()), cmd)?;
        wait_ready(&process, &logs, NODE_READY_TIMEOUT)?;
        Ok((process, logs))
    }

    /// Change real server `k`'s default gateway (and, in an IPv6 lab, its IPv6 default route
    /// to the gateway's IPv6 address, if it has one: [`Gateway::addr6`]).
    pub fn set_gateway(&self, k: usize, gateway: Gateway) -> Result<()> {
        let i = self.rs_index(k)?;
        self.real_servers[i].replace_default_route(gateway.addr())?;
        if let Some(gw6) = gateway.addr6().filter(|_| self.spec.ipv6) {
            self.real_servers[i].replace_default_route6(gw6)?;
        }
        Ok(())
    }

    /// Make real server `k` hold `vip` on `lo` for direct routing: an IPv4 VIP as /32 (sets
    /// `arp_ignore=1` and `arp_announce=2` first, so it never answers ARP for the VIP), an
    /// IPv6 VIP as /128 `nodad` (nothing else needed: Linux answers Neighbor Solicitations
    /// only for addresses of the interface they arrive on).
    pub fn add_dr_vip(&self, k: usize, vip: impl Into<IpAddr>) -> Result<()> {
        let i = self.rs_index(k)?;
        let vip = vip.into();
        self.real_servers[i].netns().run_try(|| match vip {
            IpAddr::V4(v4) => {
                set_dr_arp_sysctls()?;
                netlink::block_on(|h| async move { netlink::add_address(&h, "lo", v4, 32).await })
            }
            IpAddr::V6(v6) => {
                netlink::block_on(|h| async move { netlink::add_address(&h, "lo", v6, 128).await })
            }
        })
    }

    /// Remove a DR VIP (IPv4 or IPv6) from real server `k`'s `lo`.
    pub fn remove_dr_vip(&self, k: usize, vip: impl Into<IpAddr>) -> Result<()> {
        let i = self.rs_index(k)?;
        self.real_servers[i].del_address("lo", vip)
    }

    /// Stop every process the lab started (as `Drop` does) and return the names of those that
    /// needed SIGKILL. The lab stays usable for more [`Host::run`] calls but spawns fail.
    pub fn stop_all(&self) -> Vec<String> {
        self.registry.shutdown()
    }
}

/// Remove `lvs-lab-PID-N` directories of processes that no longer exist (left behind when a
/// test process was SIGKILLed, so `Drop` never ran).
fn sweep_stale_work_dirs() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("lvs-lab-")) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

fn n_th<'a>(hosts: &'a [Host], n: usize, what: &str) -> Result<&'a Host> {
    n.checked_sub(1).and_then(|i| hosts.get(i)).ok_or_else(|| {
        LabError::Invalid(format!(
            "{what}{n} does not exist (lab has {})",
            hosts.len()
        ))
    })
}

fn set_dr_arp_sysctls() -> Result<()> {
    for (key, value) in [
        ("net/ipv4/conf/all/arp_ignore", "1"),
        ("net/ipv4/conf/all/arp_announce", "2"),
        ("net/ipv4/conf/eth0/arp_ignore", "1"),
        ("net/ipv4/conf/eth0/arp_announce", "2"),
    ] {
        netns::write_sysctl(key, value)?;
    }
    Ok(())
}

/// IPv6 knobs of the calling thread's namespace, before any interface is up (module docs):
/// no DAD, no RAs, no redirects, addresses kept on link down, forwarding = `forward`.
fn configure_ipv6_sysctls(forward: &str) -> Result<()> {
    netns::write_sysctl("net/ipv6/conf/all/forwarding", forward)?;
    let conf = Path::new("/proc/sys/net/ipv6/conf");
    for entry in fs::read_dir(conf).ctx("listing /proc/sys/net/ipv6/conf")? {
        let entry = entry.ctx("listing /proc/sys/net/ipv6/conf")?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        for (key, value) in [
            ("accept_dad", "0"),
            ("accept_ra", "0"),
            ("accept_redirects", "0"),
            ("keep_addr_on_down", "1"),
        ] {
            netns::write_sysctl(&format!("net/ipv6/conf/{name}/{key}"), value)?;
        }
    }
    Ok(())
}

/// Runs on a thread inside the host's namespace.
fn configure_host(host: &Host, plan: &HostPlan) -> Result<()> {
    host.netns().run_try(|| {
        let forward = if plan.forward { "1" } else { "0" };
        for (key, value) in [
            ("net/ipv4/ip_forward", forward),
            ("net/ipv4/conf/all/rp_filter", "0"),
            ("net/ipv4/conf/default/rp_filter", "0"),
            ("net/ipv4/conf/all/accept_redirects", "0"),
            ("net/ipv4/conf/default/accept_redirects", "0"),
            ("net/ipv4/conf/all/send_redirects", "0"),
            ("net/ipv4/conf/default/send_redirects", "0"),
        ] {
            netns::write_sysctl(key, value)?;
        }
        if plan.ipv6 {
            configure_ipv6_sysctls(forward)?;
        } else {
            netns::write_sysctl("net/ipv6/conf/default/disable_ipv6", "1")?;
            netns::write_sysctl("net/ipv6/conf/all/disable_ipv6", "1")?;
        }
        if !plan.dr_vips.is_empty() {
            set_dr_arp_sysctls()?;
        }
        netlink::block_on(|h| async move {
            netlink::set_link_up(&h, "lo", true).await?;
            for iface in &plan.ifaces {
                netlink::set_link_up(&h, &iface.name, true).await?;
                netlink::add_address(&h, &iface.name, iface.addr, iface.prefix).await?;
            }
            if let Some(gateway) = plan.gateway {
                netlink::replace_default_route(&h, gateway).await?;
            }
            for &vip in &plan.dr_vips {
                netlink::add_address(&h, "lo", vip, 32).await?;
            }
            for iface in &plan.ifaces6 {
                netlink::add_address(&h, &iface.name, iface.addr, iface.prefix).await?;
            }
            if let Some(gateway) = plan.gateway6 {
                netlink::replace_default_route6(&h, gateway).await?;
            }
            for &vip in &plan.dr_vips6 {
                netlink::add_address(&h, "lo", vip, 128).await?;
            }
            Ok(())
        })?;
        // Per-interface knobs, now that every interface exists (the effective rp_filter is
        // max(all, iface), so each one must be 0 too).
        let conf = Path::new("/proc/sys/net/ipv4/conf");
        for entry in fs::read_dir(conf).ctx("listing /proc/sys/net/ipv4/conf")? {
            let entry = entry.ctx("listing /proc/sys/net/ipv4/conf")?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name == "all" || name == "default" {
                continue;
            }
            netns::write_sysctl(&format!("net/ipv4/conf/{name}/rp_filter"), "0")?;
            netns::write_sysctl(&format!("net/ipv4/conf/{name}/send_redirects"), "0")?;
        }
        Ok(())
    })
}

impl Drop for Lab {
    fn drop(&mut self) {
        let killed = self.registry.shutdown();
        if !killed.is_empty() {
            tracing::warn!(lab = %self.label, ?killed, "processes ignored SIGTERM");
        }
        if thread::panicking() {
            for (name, logs) in lock(&self.lvsd_logs).iter() {
                eprintln!("=== {} of {} ==={}", name, self.label, logs.render_tail(80));
            }
        }
        if std::env::var_os("LVS_LAB_KEEP").is_some() {
            eprintln!(
                "LVS_LAB_KEEP: lab files kept in {}",
                self.work_dir.display()
            );
        } else {
            let _ = fs::remove_dir_all(&self.work_dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_plan() {
        assert_eq!(director_ext_addr(1), Ipv4Addr::new(203, 0, 113, 2));
        assert_eq!(director_int_addr(2), Ipv4Addr::new(192, 0, 2, 2));
        assert_eq!(real_server_addr(3), Ipv4Addr::new(192, 0, 2, 13));
        assert_eq!(vip(0), FIRST_VIP);
        assert!(director_ext_addr(MAX_DIRECTORS) < FIRST_VIP);
        assert!(real_server_addr(MAX_REAL_SERVERS) < ROUTER_BACK_ADDR);
        assert_eq!(Gateway::Director.addr(), Ipv4Addr::new(192, 0, 2, 1));
    }

    #[test]
    fn ipv6_address_plan() {
        let a = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        assert_eq!(CLIENT_ADDR6, a("2001:db8:c::10"));
        assert_eq!(ROUTER_CLIENT_ADDR6, a("2001:db8:c::1"));
        assert_eq!(ROUTER_FRONT_ADDR6, a("2001:db8:f::1"));
        assert_eq!(ROUTER_BACK_ADDR6, a("2001:db8:b::fe"));
        assert_eq!(director_ext_addr6(1), a("2001:db8:f::2"));
        assert_eq!(director_int_addr6(2), a("2001:db8:b::2"));
        assert_eq!(real_server_addr6(1), a("2001:db8:b::11"));
        assert_eq!(real_server_addr6(0xee), a("2001:db8:b::fe"));
        assert_eq!(vip6(0), FIRST_VIP6);
        assert_eq!(vip6(1), a("2001:db8:f::11"));
        assert!(director_ext_addr6(MAX_DIRECTORS) < FIRST_VIP6);
        assert_eq!(Gateway::Director.addr6(), Some(a("2001:db8:b::1")));
        assert_eq!(Gateway::Router.addr6(), Some(ROUTER_BACK_ADDR6));
        assert_eq!(Gateway::Address(FIRST_VIP).addr6(), None);
    }

    #[test]
    fn ready_word() {
        assert!(has_ready_line("starting\nready\n"));
        assert!(has_ready_line("2025-01-01 INFO lvsd: ready (3 services)"));
        assert!(!has_ready_line("address already in use"));
        assert!(!has_ready_line("readying"));
        assert!(!has_ready_line(""));
    }

    #[test]
    fn spec_validation() {
        assert!(LabSpec::new("x").directors(0).validate().is_err());
        assert!(LabSpec::new("x").directors(9).validate().is_err());
        assert!(LabSpec::new("x").nat_real_servers(201).validate().is_err());
        let spec = LabSpec::new("x")
            .nat_real_servers(2)
            .dr_real_servers(1, &[FIRST_VIP]);
        assert!(spec.validate().is_ok());
        assert_eq!(spec.real_servers[2].gateway, Gateway::Router);
        assert_eq!(spec.real_servers[2].dr_vips, vec![FIRST_VIP]);
        let mixed = RealServerSpec::dr([IpAddr::V4(FIRST_VIP), IpAddr::V6(FIRST_VIP6)]);
        assert_eq!(mixed.dr_vips, vec![FIRST_VIP]);
        assert_eq!(mixed.dr_vips6, vec![FIRST_VIP6]);
        assert!(
            LabSpec::new("x")
                .dr_real_servers(1, &[FIRST_VIP6])
                .validate()
                .is_err()
        );
        assert!(
            LabSpec::new("x")
                .ipv6(true)
                .dr_real_servers(1, &[FIRST_VIP6])
                .validate()
                .is_ok()
        );
    }
}
