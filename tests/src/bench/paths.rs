//! The paths through the director that `lvs-bench` compares, and the real servers behind
//! them. Each path is set up by a function that returns a guard; dropping the guard undoes
//! the setup (routes, addresses, nftables table, HAProxy, lvsd), so the next path starts
//! from the plain lab.
//!
//! Invariants:
//! - Only lab namespaces are touched, only with lab addresses (see [`crate::lab`]); the
//!   kernel path steers the client's traffic to rs1 through the director with a /32 route
//!   in the *router* namespace (IPv6: a /128).
//! - The IPv6 paths mirror the IPv4 ones on the lab's IPv6 plan (a lab built with
//!   [`crate::LabSpec::ipv6`]): the same VIP indices ([`vip6`]), the same real servers, and
//!   they set the real servers' gateways themselves (the IPv4 DR path leaves them on the
//!   router).
//! - Every process started here (nginx, HAProxy, lvsd) is a lab child ([`Host::spawn`]):
//!   it dies with the lab even if this process is killed; a guard stops it earlier.
//! - Files (configurations, logs) live in the lab's work directory, removed with the lab.
//! - Undo steps are best effort and never panic: a failure leaves state that the lab's
//!   namespaces take with them.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::error::{Context, LabError, Result};
use crate::host::Host;
use crate::lab::{
    Gateway, Lab, director_ext_addr, director_ext_addr6, real_server_addr, real_server_addr6, vip,
    vip6,
};
use crate::lvsd::LvsdProcess;
use crate::process::{Process, SHUTDOWN_GRACE};

/// TCP port of the real servers' HTTP service.
pub const HTTP_PORT: u16 = 80;
/// UDP port of the sinks in the real servers (and of the UDP services in front of them).
pub const UDP_PORT: u16 = 9001;

/// VIP of the lvsd NAT services.
pub fn vip_lvsd_nat() -> Ipv4Addr {
    vip(0)
}
/// VIP of the lvsd DR services (held on the real servers' `lo`).
pub fn vip_lvsd_dr() -> Ipv4Addr {
    vip(1)
}
/// Address HAProxy listens on (a /32 on the director's `ext0`).
pub fn vip_haproxy() -> Ipv4Addr {
    vip(2)
}
/// Address nftables DNATs (a /32 on the director's `ext0`).
pub fn vip_nft() -> Ipv4Addr {
    vip(3)
}

/// IPv6 VIP of the lvsd NAT66 services.
pub fn vip6_lvsd_nat() -> Ipv6Addr {
    vip6(0)
}
/// IPv6 VIP of the lvsd DR services (held on the real servers' `lo`).
pub fn vip6_lvsd_dr() -> Ipv6Addr {
    vip6(1)
}
/// IPv6 address nftables DNATs (a /128 on the director's `ext0`).
pub fn vip6_nft() -> Ipv6Addr {
    vip6(3)
}

/// Name of the nftables table the nftables paths create in the director (family `ip`, and
/// `ip6` for the IPv6 path).
const NFT_TABLE: &str = "lvs_bench";

/// Targets of a path: TCP, and UDP if the path carries it.
pub type Targets = (SocketAddr, Option<SocketAddr>);

/// Both targets on `addr`.
fn both(addr: impl Into<IpAddr>) -> Targets {
    let addr = addr.into();
    (
        SocketAddr::new(addr, HTTP_PORT),
        Some(SocketAddr::new(addr, UDP_PORT)),
    )
}

/// Make every real server's gateway (both families) the director.
fn gateways_to_director(lab: &Lab) -> Result<()> {
    for k in 1..=lab.real_servers().len() {
        lab.set_gateway(k, Gateway::Director)?;
    }
    Ok(())
}

/// Whether `program` is on `PATH` (or is an existing path).
pub fn installed(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let p = PathBuf::from(program);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Poll a TCP connect to `addr` from inside `host` until it succeeds (≤ `timeout`), or
/// `process` exits.
fn wait_listening(
    host: &Host,
    addr: SocketAddr,
    timeout: Duration,
    process: &Process,
) -> Result<()> {
    let ok = crate::wait_until(timeout, || {
        if matches!(process.try_wait(), Ok(Some(_))) {
            return true;
        }
        host.try_run(|| TcpStream::connect_timeout(&addr, Duration::from_millis(200)))
            .is_ok_and(|r| r.is_ok())
    });
    if let Ok(Some(status)) = process.try_wait() {
        return Err(LabError::EarlyExit {
            what: process.name().to_owned(),
            status: status.to_string(),
            logs: String::new(),
        });
    }
    if !ok {
        return Err(LabError::Timeout {
            what: format!("{} to listen on {addr}", process.name()),
            after: timeout,
            logs: String::new(),
        });
    }
    Ok(())
}

/// Stop a lab child, ignoring "already gone" and "had to be killed".
fn stop_quietly(process: &Process) {
    let _ = process.stop(SHUTDOWN_GRACE);
}

/// The real servers' HTTP service.
#[derive(Debug)]
pub struct RealServers {
    /// `nginx` or `lvs-lab-node`.
    pub kind: &'static str,
    processes: Vec<Process>,
}

impl RealServers {
    /// nginx (one worker each, a minimal config in the lab's work directory) if installed,
    /// else the lab's own backend program; listening on [`HTTP_PORT`] in every real server
    /// (also on IPv6 in an IPv6 lab).
    pub fn start(lab: &Lab) -> Result<Self> {
        let Some(nginx) = installed("nginx") else {
            lab.start_backends()?;
            return Ok(Self {
                kind: "lvs-lab-node",
                processes: Vec::new(),
            });
        };
        let mut servers = Self {
            kind: "nginx",
            processes: Vec::new(),
        };
        for (i, host) in lab.real_servers().iter().enumerate() {
            let dir = lab.work_dir().join(format!("nginx-{}", host.name()));
            fs::create_dir_all(&dir).with_ctx(|| format!("creating {}", dir.display()))?;
            let conf = dir.join("nginx.conf");
            fs::write(&conf, nginx_conf(&dir, host.name(), lab.spec().ipv6))
                .with_ctx(|| format!("writing {}", conf.display()))?;
            let (out, err) = (
                fs::File::create(dir.join("stdout")).ctx("nginx stdout")?,
                fs::File::create(dir.join("stderr")).ctx("nginx stderr")?,
            );
            let mut cmd = host.command(&nginx);
            cmd.arg("-p")
                .arg(&dir)
                .arg("-c")
                .arg(&conf)
                .arg("-e")
                .arg(dir.join("error.log"))
                .stdout(out)
                .stderr(err);
            let process = host.spawn_named(format!("nginx@{}", host.name()), cmd)?;
            servers.processes.push(process.clone());
            let addr = SocketAddr::V4(SocketAddrV4::new(real_server_addr(i + 1), HTTP_PORT));
            wait_listening(host, addr, Duration::from_secs(10), &process).map_err(|e| {
                LabError::Invalid(format!(
                    "{e}; nginx said: {}",
                    fs::read_to_string(dir.join("error.log")).unwrap_or_default()
                ))
            })?;
        }
        Ok(servers)
    }
}

impl Drop for RealServers {
    fn drop(&mut self) {
        for p in &self.processes {
            stop_quietly(p);
        }
    }
}

fn nginx_conf(dir: &Path, name: &str, ipv6: bool) -> String {
    let d = dir.display();
    // nginx listens on `[::]` IPv6-only by default, hence a second `listen`.
    let listen6 = if ipv6 {
        format!("\x20   listen [::]:{HTTP_PORT} backlog=4096;\n")
    } else {
        String::new()
    };
    format!(
        "# lvs-bench real server {name}\n\
         daemon off;\n\
         master_process on;\n\
         worker_processes 1;\n\
         worker_rlimit_nofile 16384;\n\
         pid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\n\
         events {{ worker_connections 8192; }}\n\
         http {{\n\
         \x20 access_log off;\n\
         \x20 client_body_temp_path {d}/body;\n\
         \x20 proxy_temp_path {d}/proxy;\n\
         \x20 fastcgi_temp_path {d}/fastcgi;\n\
         \x20 uwsgi_temp_path {d}/uwsgi;\n\
         \x20 scgi_temp_path {d}/scgi;\n\
         \x20 keepalive_requests 10000000;\n\
         \x20 keepalive_timeout 60s;\n\
         \x20 server {{\n\
         \x20   listen {HTTP_PORT} backlog=4096;\n\
         {listen6}\
         \x20   location / {{ add_header X-Backend {name}; return 200 \"{name}\\n\"; }}\n\
         \x20 }}\n\
         }}\n"
    )
}

/// Run `nft -f FILE` in the director (1) with `text` written to the lab's work directory.
fn nft(lab: &Lab, text: &str, file: &str) -> Result<()> {
    let path = lab.work_dir().join(file);
    fs::write(&path, text).with_ctx(|| format!("writing {}", path.display()))?;
    let out = run_in(lab.director(1), "nft", &["-f".as_ref(), path.as_os_str()])?;
    if !out.status.success() {
        return Err(LabError::Invalid(format!(
            "nft -f {} failed: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Run a short program inside `host` and wait for it (it is not a lab child: it is waited
/// for here, and dies with this thread at the latest through `PR_SET_PDEATHSIG`).
fn run_in(host: &Host, program: &str, args: &[&std::ffi::OsStr]) -> Result<std::process::Output> {
    let mut cmd: Command = host.command(program);
    cmd.args(args);
    cmd.output().with_ctx(|| format!("running {program}"))
}

/// Path 1: the director's kernel routes the client's traffic to rs1 (no balancing).
#[derive(Debug)]
pub struct KernelRoute<'a> {
    lab: &'a Lab,
}

impl<'a> KernelRoute<'a> {
    /// Route rs1's address from the router via the director (`ip_forward` is on there).
    pub fn setup(lab: &'a Lab) -> Result<Self> {
        lab.router()
            .replace_route(real_server_addr(1), 32, director_ext_addr(1))?;
        Ok(Self { lab })
    }

    /// Where the client sends TCP and UDP.
    pub fn targets(&self) -> Targets {
        both(real_server_addr(1))
    }
}

impl Drop for KernelRoute<'_> {
    fn drop(&mut self) {
        let _ = self.lab.router().del_route(real_server_addr(1), 32);
    }
}

/// Path 1, IPv6: the director's kernel routes the client's IPv6 traffic to rs1 (a /128
/// route in the router via the director's `ext0`; rs1 answers through the director).
#[derive(Debug)]
pub struct KernelRoute6<'a> {
    lab: &'a Lab,
}

impl<'a> KernelRoute6<'a> {
    /// Route rs1's IPv6 address from the router via the director.
    pub fn setup(lab: &'a Lab) -> Result<Self> {
        gateways_to_director(lab)?;
        lab.router()
            .replace_route6(real_server_addr6(1), 128, director_ext_addr6(1))?;
        Ok(Self { lab })
    }

    /// Where the client sends TCP and UDP.
    pub fn targets(&self) -> Targets {
        both(real_server_addr6(1))
    }
}

impl Drop for KernelRoute6<'_> {
    fn drop(&mut self) {
        let _ = self.lab.router().del_route6(real_server_addr6(1), 128);
    }
}

/// Path 2: an nftables `ip` table in the director DNATs [`vip_nft`] round-robin
/// (`numgen inc`) to every real server; replies return through the director (the real
/// servers' gateway) and conntrack reverses the translation. [`NftDnat::setup6`]: the same
/// with an `ip6` table, [`vip6_nft`] and the real servers' IPv6 addresses.
#[derive(Debug)]
pub struct NftDnat<'a> {
    lab: &'a Lab,
    vip: IpAddr,
}

impl<'a> NftDnat<'a> {
    /// Add the VIP and the table.
    pub fn setup(lab: &'a Lab) -> Result<Self> {
        let servers: Vec<IpAddr> = (1..=lab.real_servers().len())
            .map(|k| real_server_addr(k).into())
            .collect();
        Self::setup_with(lab, vip_nft().into(), &servers)
    }

    /// IPv6: add the VIP and an `ip6` table (and point the real servers at the director).
    pub fn setup6(lab: &'a Lab) -> Result<Self> {
        gateways_to_director(lab)?;
        let servers: Vec<IpAddr> = (1..=lab.real_servers().len())
            .map(|k| real_server_addr6(k).into())
            .collect();
        Self::setup_with(lab, vip6_nft().into(), &servers)
    }

    fn setup_with(lab: &'a Lab, vip: IpAddr, servers: &[IpAddr]) -> Result<Self> {
        let guard = Self { lab, vip };
        let (family, prefix) = if vip.is_ipv6() {
            ("ip6", 128)
        } else {
            ("ip", 32)
        };
        lab.director(1).add_address("ext0", vip, prefix)?;
        let n = servers.len();
        let map: Vec<String> = servers
            .iter()
            .enumerate()
            .map(|(i, rs)| format!("{i} : {rs}"))
            .collect();
        let text = format!(
            "table {family} {NFT_TABLE} {{\n\
             \x20 chain prerouting {{\n\
             \x20   type nat hook prerouting priority dstnat; policy accept;\n\
             \x20   {family} daddr {vip} dnat to numgen inc mod {n} map {{ {map} }}\n\
             \x20 }}\n\
             }}\n",
            map = map.join(", ")
        );
        nft(lab, &text, &format!("nft-bench-{family}.nft"))?;
        Ok(guard)
    }

    /// Where the client sends TCP and UDP.
    pub fn targets(&self) -> Targets {
        both(self.vip)
    }
}

impl Drop for NftDnat<'_> {
    fn drop(&mut self) {
        let family = if self.vip.is_ipv6() { "ip6" } else { "ip" };
        let _ = run_in(
            self.lab.director(1),
            "nft",
            &[
                "delete".as_ref(),
                "table".as_ref(),
                family.as_ref(),
                NFT_TABLE.as_ref(),
            ],
        );
        let _ = self.lab.director(1).del_address("ext0", self.vip);
    }
}

/// Path 3: HAProxy in TCP mode in the director, round robin over the real servers.
#[derive(Debug)]
pub struct Haproxy<'a> {
    lab: &'a Lab,
    process: Process,
}

impl<'a> Haproxy<'a> {
    /// Start it (`None` if `haproxy` is not installed).
    pub fn setup(lab: &'a Lab) -> Result<Option<Self>> {
        let Some(exe) = installed("haproxy") else {
            return Ok(None);
        };
        let director = lab.director(1);
        director.add_address("ext0", vip_haproxy(), 32)?;
        let servers: String = (1..=lab.real_servers().len())
            .map(|k| format!("  server rs{k} {}:{HTTP_PORT}\n", real_server_addr(k)))
            .collect();
        let conf = format!(
            "global\n  maxconn 8000\n\n\
             defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  \
             timeout server 30s\n\n\
             frontend bench\n  bind {vip}:{HTTP_PORT}\n  default_backend rs\n\n\
             backend rs\n  balance roundrobin\n{servers}",
            vip = vip_haproxy()
        );
        let path = lab.work_dir().join("haproxy.cfg");
        fs::write(&path, conf).with_ctx(|| format!("writing {}", path.display()))?;
        let (out, err) = (
            fs::File::create(lab.work_dir().join("haproxy.stdout")).ctx("haproxy stdout")?,
            fs::File::create(lab.work_dir().join("haproxy.stderr")).ctx("haproxy stderr")?,
        );
        let mut cmd = director.command(exe);
        cmd.arg("-db").arg("-f").arg(&path).stdout(out).stderr(err);
        let process = director.spawn_named("haproxy@director1", cmd)?;
        let guard = Self { lab, process };
        let addr = SocketAddr::V4(SocketAddrV4::new(vip_haproxy(), HTTP_PORT));
        wait_listening(director, addr, Duration::from_secs(10), &guard.process).map_err(|e| {
            LabError::Invalid(format!(
                "{e}; haproxy said: {}",
                fs::read_to_string(lab.work_dir().join("haproxy.stderr")).unwrap_or_default()
            ))
        })?;
        Ok(Some(guard))
    }

    /// Its pid (threads included in `/proc/PID/stat`).
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Where the client sends TCP (HAProxy here is TCP only).
    pub fn targets(&self) -> Targets {
        (SocketAddr::new(vip_haproxy().into(), HTTP_PORT), None)
    }
}

impl Drop for Haproxy<'_> {
    fn drop(&mut self) {
        stop_quietly(&self.process);
        let _ = self.lab.director(1).del_address("ext0", vip_haproxy());
    }
}

/// Paths 4 and 5: lvsd in NAT or DR mode, `rr` over the real servers, TCP [`HTTP_PORT`] and
/// UDP [`UDP_PORT`] on one VIP; [`Lvsd::nat6`] and [`Lvsd::dr6`] the same over IPv6.
#[derive(Debug)]
pub struct Lvsd {
    process: LvsdProcess,
    vip: IpAddr,
}

impl Lvsd {
    /// NAT: the real servers' gateway is the director (the lab's default).
    pub fn nat(lab: &Lab) -> Result<Self> {
        for k in 1..=lab.real_servers().len() {
            lab.set_gateway(k, Gateway::Director)?;
        }
        Self::start(lab, vip_lvsd_nat().into(), "nat")
    }

    /// NAT66: as [`Lvsd::nat`] with the IPv6 VIP and real server addresses.
    pub fn nat6(lab: &Lab) -> Result<Self> {
        gateways_to_director(lab)?;
        Self::start(lab, vip6_lvsd_nat().into(), "nat")
    }

    /// DR over IPv6: the real servers hold the IPv6 VIP on `lo` (/128) and answer through
    /// the router (both families' gateways: the IPv4 DR path's shape).
    pub fn dr6(lab: &Lab) -> Result<Self> {
        for k in 1..=lab.real_servers().len() {
            lab.add_dr_vip(k, vip6_lvsd_dr())?;
            lab.set_gateway(k, Gateway::Router)?;
        }
        Self::start(lab, vip6_lvsd_dr().into(), "dr")
    }

    /// DR: the real servers hold the VIP on `lo` and answer through the router. Leaves the
    /// real servers in DR shape (gateway = router); [`Lvsd::nat`] restores the gateway.
    pub fn dr(lab: &Lab) -> Result<Self> {
        for k in 1..=lab.real_servers().len() {
            lab.add_dr_vip(k, vip_lvsd_dr())?;
            lab.set_gateway(k, Gateway::Router)?;
        }
        Self::start(lab, vip_lvsd_dr().into(), "dr")
    }

    fn start(lab: &Lab, vip: IpAddr, forwarding: &str) -> Result<Self> {
        let mut config = String::from("# lvs-bench\n");
        for (port, protocol) in [(HTTP_PORT, "tcp"), (UDP_PORT, "udp")] {
            config.push_str(&format!(
                "[[virtual_server]]\naddress = \"{vs}\"\nprotocol = \"{protocol}\"\n\
                 scheduler = \"rr\"\nforwarding = \"{forwarding}\"\n",
                vs = SocketAddr::new(vip, port)
            ));
            for k in 1..=lab.real_servers().len() {
                let rs: IpAddr = if vip.is_ipv6() {
                    real_server_addr6(k).into()
                } else {
                    real_server_addr(k).into()
                };
                config.push_str(&format!(
                    "[[virtual_server.real_server]]\naddress = \"{}\"\n",
                    SocketAddr::new(rs, port)
                ));
            }
        }
        let process = lab.start_lvsd(1, &config)?;
        Ok(Self { process, vip })
    }

    /// lvsd's pid.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Where the client sends TCP and UDP.
    pub fn targets(&self) -> Targets {
        both(self.vip)
    }

    /// The counters lvsd printed on exit (stops it).
    pub fn stop(self) -> String {
        let _ = self.process.stop();
        self.process
            .stdout()
            .lines()
            .filter(|l| l.starts_with("lvsd stats:") || l.contains("drop."))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Lvsd {
    fn drop(&mut self) {
        if self.process.is_running() {
            let _ = self.process.stop();
        }
    }
}
