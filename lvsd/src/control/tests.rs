//! The control API end to end, without root: a real server on a Unix socket in a temp
//! directory, a thread standing in for the forwarding loop (a [`Dataplane`] on a virtual
//! clock, fed frames by the test), and clients from `lvs_proto`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lvs_proto::tarpc::context;
use lvs_proto::{
    ApiError, ConnCursor, ConnKey, ConnQuery, EventKind, FlowSpec, LvsControlClient, NewRealServer,
    NewService, RealServerKey, Role, ServiceKey, TemplateKey, connect_unix,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::config::ControlSettings;
use crate::conn::Timeouts;
use crate::dataplane::{
    Dataplane, DataplaneConfig, DestSpec, HealthSpec, Interface, Persistence, RxFrame,
    ServiceHealth, ServiceSpec, Verdict,
};
use crate::sched::SchedParams;
use crate::wire::build::{FrameSpec, FrameSpec6};
use crate::wire::tcp::TcpControl;
use lvs_proto::{Forwarding, Protocol, SchedulerKind};

mod tls;

const EXT_IF: u32 = 1;
const INT_IF: u32 = 2;
const EXT_MAC: [u8; 6] = [2, 0, 0, 0, 1, 1];
const GW_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xc1];
const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
const RS1: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);
const RS2: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 12);
/// The lab's IPv6 plan: VIP 2001:db8:f::10, DIP 2001:db8:b::1, rs1 2001:db8:b::11.
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 0x10);
const DIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, 1);
const RS61: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, 0x11);
const RS62: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, 0x12);

fn dest(addr: impl Into<IpAddr>, port: u16, weight: u32) -> DestSpec {
    let addr = addr.into();
    DestSpec {
        addr,
        port,
        weight,
        forwarding: Forwarding::Nat,
        ifindex: INT_IF,
        next_hop: addr,
        source: match addr {
            IpAddr::V4(_) => Ipv4Addr::new(192, 0, 2, 1).into(),
            IpAddr::V6(_) => DIP6.into(),
        },
        upper_threshold: 0,
        lower_threshold: 0,
        health: HealthSpec::default(),
    }
}

fn service(
    protocol: Protocol,
    port: u16,
    scheduler: SchedulerKind,
    dests: Vec<DestSpec>,
) -> ServiceSpec {
    ServiceSpec {
        vip: VIP.into(),
        port,
        protocol,
        scheduler,
        sched_params: SchedParams::default(),
        persistence: None,
        one_packet: false,
        dests,
        health: ServiceHealth::default(),
    }
}

/// TCP VIP:80 wlc → RS1 w1, RS2 w2 (list order RS2, RS1); UDP VIP:53 rr → RS1:53;
/// TCP VIP:443 rr, persistent 300 s → RS1:443.
fn dp_config() -> DataplaneConfig {
    let mut https = service(
        Protocol::Tcp,
        443,
        SchedulerKind::Rr,
        vec![dest(RS1, 443, 1)],
    );
    https.persistence = Some(Persistence {
        timeout: Duration::from_secs(300),
        netmask: Ipv4Addr::BROADCAST,
        prefix6: 128,
        quiescent_template_expire: false,
    });
    DataplaneConfig {
        interfaces: vec![
            Interface {
                ifindex: EXT_IF,
                name: "ext".into(),
                mac: EXT_MAC,
                ipv4: vec![Ipv4Addr::new(203, 0, 113, 1)],
                ipv6: vec![Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 2)],
                mtu: 1500,
            },
            Interface {
                ifindex: INT_IF,
                name: "int".into(),
                mac: [2, 0, 0, 0, 2, 2],
                ipv4: vec![Ipv4Addr::new(192, 0, 2, 1)],
                ipv6: vec![DIP6],
                mtu: 1500,
            },
        ],
        services: vec![
            service(
                Protocol::Tcp,
                80,
                SchedulerKind::Wlc,
                vec![dest(RS1, 80, 1), dest(RS2, 80, 2)],
            ),
            service(Protocol::Udp, 53, SchedulerKind::Rr, vec![dest(RS1, 53, 1)]),
            https,
        ],
        timeouts: Timeouts::default(),
    }
}

/// What the daemon's netlink plan makes of `config` in this test's world: every real
/// server in 192.0.2.0/24 or 2001:db8:b::/64 is on the inside interface; anything else
/// has no route.
fn plan(config: &crate::config::Config) -> Result<DataplaneConfig, String> {
    let inside = |a: IpAddr| match a {
        IpAddr::V4(a) => a.octets()[..3] == [192, 0, 2],
        IpAddr::V6(a) => a.segments()[..4] == [0x2001, 0xdb8, 0xb, 0],
    };
    let mut services = Vec::new();
    for vs in &config.services {
        let mut dests = Vec::new();
        for rs in &vs.real_servers {
            if !inside(rs.addr) {
                return Err(format!("real server {}: no route", rs.addr));
            }
            dests.push(DestSpec {
                forwarding: rs.forwarding,
                upper_threshold: rs.upper_threshold,
                lower_threshold: rs.lower_threshold,
                ..dest(rs.addr, rs.port, rs.weight)
            });
        }
        services.push(ServiceSpec {
            vip: vs.vip,
            port: vs.port,
            protocol: vs.protocol,
            scheduler: vs.scheduler,
            sched_params: SchedParams {
                flags: vs.scheduler_flags,
                ..SchedParams::default()
            },
            persistence: vs.persistence.map(|p| Persistence {
                timeout: p.timeout,
                netmask: p.netmask,
                prefix6: p.prefix6,
                quiescent_template_expire: p.quiescent_template_expire,
            }),
            one_packet: vs.one_packet,
            dests,
            health: ServiceHealth::default(),
        });
    }
    Ok(DataplaneConfig {
        services,
        ..dp_config()
    })
}

/// The configuration file [`dp_config`] comes from (what `save_config` starts from).
fn running_config() -> crate::config::Config {
    let text = "[[virtual_server]]\naddress = \"203.0.113.10:80\"\nforwarding = \"nat\"\n\
        [[virtual_server.real_server]]\naddress = \"192.0.2.11:80\"\n\
        [[virtual_server.real_server]]\naddress = \"192.0.2.12:80\"\nweight = 2\n\
        [[virtual_server]]\naddress = \"203.0.113.10:53\"\nprotocol = \"udp\"\n\
        scheduler = \"rr\"\nforwarding = \"nat\"\n\
        [[virtual_server.real_server]]\naddress = \"192.0.2.11:53\"\n\
        [[virtual_server]]\naddress = \"203.0.113.10:443\"\nscheduler = \"rr\"\n\
        forwarding = \"nat\"\npersistence_timeout = 300\n\
        [[virtual_server.real_server]]\naddress = \"192.0.2.11:443\"\n";
    crate::config::Config::parse(std::path::Path::new("test.toml"), text)
        .unwrap_or_else(|e| panic!("{e}"))
}

const WEB: ServiceKey = ServiceKey::tcp4(VIP, 80);
const DNS: ServiceKey = ServiceKey::udp4(VIP, 53);
const HTTPS: ServiceKey = ServiceKey::tcp4(VIP, 443);
const R1: RealServerKey = RealServerKey::new4(RS1, 80);
const R2: RealServerKey = RealServerKey::new4(RS2, 80);

fn client(n: u8, port: u16) -> SocketAddr {
    SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, n), port).into()
}

/// An IPv6 client, 2001:db8:c::(0x10 + n).
fn client6(n: u8, port: u16) -> SocketAddr {
    let host = 0x10 + u16::from(n);
    SocketAddrV6::new(
        Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, host),
        port,
        0,
        0,
    )
    .into()
}

type Job = Box<dyn FnOnce(&mut Dataplane, &mut Instant) + Send>;

/// A control server on a temp socket and a forwarding-loop stand-in.
struct Harness {
    dir: PathBuf,
    socket: PathBuf,
    audit: PathBuf,
    control: Option<ControlHandle>,
    jobs: Option<mpsc::Sender<(Job, mpsc::Sender<()>)>>,
    fwd: Option<JoinHandle<()>>,
}

impl Harness {
    fn start(tag: &str, edit: impl FnOnce(&mut ControlSettings)) -> Harness {
        Harness::start_with(tag, edit, running_config(), dp_config())
    }

    /// A harness running `config` (its data path as [`plan`] makes it).
    fn start_config(tag: &str, config: crate::config::Config) -> Harness {
        let dp = plan(&config).unwrap_or_else(|e| panic!("{e}"));
        Harness::start_with(tag, |_| {}, config, dp)
    }

    fn start_with(
        tag: &str,
        edit: impl FnOnce(&mut ControlSettings),
        config: crate::config::Config,
        dp_config: DataplaneConfig,
    ) -> Harness {
        let dir = std::env::temp_dir().join(format!("lvsd-control-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let socket = dir.join("run").join("lvsd.sock");
        let audit = dir.join("audit.log");
        // Whoever runs the tests is admin: root is, and so is the primary group.
        let group = nix::unistd::Group::from_gid(nix::unistd::getegid())
            .ok()
            .flatten()
            .map(|g| g.name);
        let mut settings = ControlSettings {
            socket: socket.clone(),
            admin_group: group,
            audit_log: Some(audit.clone()),
            ..ControlSettings::default()
        };
        edit(&mut settings);
        let t0 = Instant::now();
        let (commands, mut exec) = channel(t0).unwrap();
        exec.set_running_config(config);
        let control = ControlHandle::start(&settings, commands).unwrap();
        let (jobs, job_rx) = mpsc::channel::<(Job, mpsc::Sender<()>)>();
        let fwd = std::thread::spawn(move || {
            let mut dp = Dataplane::new(dp_config, t0);
            let mut now = t0;
            loop {
                let mut ready = [false];
                let _ = crate::io::poll_readable(
                    &[exec.wake_fd()],
                    Some(Duration::from_millis(5)),
                    &mut ready,
                );
                loop {
                    match job_rx.try_recv() {
                        Ok((job, ack)) => {
                            job(&mut dp, &mut now);
                            let _ = ack.send(());
                        }
                        Err(mpsc::TryRecvError::Empty) => break,
                        Err(mpsc::TryRecvError::Disconnected) => return,
                    }
                }
                loop {
                    let more = exec.run_pending(&mut dp, now);
                    if let Some(edit) = exec.take_config_edit() {
                        let r = plan(&edit.config).map(|c| dp.reconfigure(c, now));
                        exec.finish_config_edit(edit, r, &dp, now);
                    }
                    if !more {
                        break;
                    }
                }
            }
        });
        Harness {
            dir,
            socket,
            audit,
            control: Some(control),
            jobs: Some(jobs),
            fwd: Some(fwd),
        }
    }

    /// Runs `job` on the forwarding thread and waits for it.
    fn on_dataplane(&self, job: impl FnOnce(&mut Dataplane, &mut Instant) + Send + 'static) {
        let (ack, done) = mpsc::channel();
        self.jobs
            .as_ref()
            .unwrap()
            .send((Box::new(job), ack))
            .unwrap();
        done.recv().unwrap();
    }

    /// Moves the virtual clock on (running the core's timers).
    fn advance(&self, d: Duration) {
        self.on_dataplane(move |dp, now| {
            let end = *now + d;
            while *now < end {
                *now = (*now + Duration::from_secs(1)).min(end);
                dp.handle_timeout(*now);
            }
        });
    }

    /// A client sends a TCP SYN (or a UDP datagram) to `port` on the VIP of its family
    /// (VIP or VIP6).
    fn packet(&self, protocol: Protocol, from: SocketAddr, port: u16) {
        self.on_dataplane(move |dp, now| {
            let frame = match from {
                SocketAddr::V4(from) => {
                    let to = SocketAddrV4::new(VIP, port);
                    match protocol {
                        Protocol::Tcp => FrameSpec::tcp(GW_MAC, EXT_MAC, from, to, TcpControl::SYN),
                        Protocol::Udp => FrameSpec::udp(GW_MAC, EXT_MAC, from, to, b"q"),
                    }
                    .to_vec()
                }
                SocketAddr::V6(from) => {
                    let to = SocketAddrV6::new(VIP6, port, 0, 0);
                    match protocol {
                        Protocol::Tcp => {
                            FrameSpec6::tcp(GW_MAC, EXT_MAC, from, to, TcpControl::SYN)
                        }
                        Protocol::Udp => FrameSpec6::udp(GW_MAC, EXT_MAC, from, to, b"q"),
                    }
                    .to_vec()
                }
            };
            let mut out = vec![0u8; 2048];
            let v = dp.process(
                *now,
                RxFrame {
                    ifindex: EXT_IF,
                    data: &frame,
                    csum_partial: false,
                    gso: false,
                    gso_size: 0,
                },
                &mut out,
            );
            // Real servers never answered ARP here: the entry is made, the frame waits.
            assert!(
                matches!(v, Verdict::Drop(_) | Verdict::Transmit { .. }),
                "{v:?}"
            );
        });
    }

    async fn client(&self) -> LvsControlClient {
        connect_unix(&self.socket).await.unwrap()
    }

    fn audit_lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.audit)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(mut c) = self.control.take() {
            c.stop();
        }
        self.jobs.take();
        if let Some(t) = self.fwd.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ctx() -> context::Context {
    context::current()
}

#[tokio::test]
async fn reading_rpcs() {
    let h = Harness::start("read", |_| {});
    let c = h.client().await;
    let v = c.version(ctx()).await.unwrap();
    assert_eq!(v.api, lvs_proto::API_LEVEL);
    assert_eq!(v.pid, std::process::id());
    let me = c.whoami(ctx()).await.unwrap();
    assert_eq!(me.role, Role::Admin);
    assert_eq!(me.actor.uid, nix::unistd::geteuid().as_raw());
    assert_eq!(me.actor.pid, Some(std::process::id() as i32));

    h.packet(Protocol::Tcp, client(1, 40000), 80);
    let services = c.services(ctx()).await.unwrap().unwrap();
    assert_eq!(
        services.iter().map(|s| s.key()).collect::<Vec<_>>(),
        vec![WEB, DNS, HTTPS]
    );
    let web = &services[0];
    assert_eq!(web.scheduler, SchedulerKind::Wlc);
    // IPVS list order: newest first.
    assert_eq!(
        web.real_servers.iter().map(|r| r.key()).collect::<Vec<_>>(),
        vec![R2, R1]
    );
    // wlc: both empty, RS2 (weight 2) is first in the list and wins.
    assert_eq!(web.real_servers[0].inactive + web.real_servers[0].active, 1);
    assert_eq!(web.counters.conns, 1);
    assert_eq!(services[2].persistence.map(|p| p.timeout_secs), Some(300));

    // Rates: traffic, then the 2 s estimator ticks.
    for i in 0..40 {
        h.packet(Protocol::Udp, client(2, 5000 + i), 53);
    }
    h.advance(Duration::from_secs(2));
    let dns = &c.services(ctx()).await.unwrap().unwrap()[1];
    // 40 datagrams in 2 s = 20/s; first tick gives a quarter: 5.
    assert_eq!(dns.rates.inpps, 5);
    assert_eq!(dns.real_servers[0].rates.inpps, 5);

    let sim = c
        .simulate(
            ctx(),
            FlowSpec {
                protocol: Protocol::Tcp,
                client: client(9, 1234),
                vip: VIP.into(),
                port: 80,
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sim.service, WEB);
    assert!(sim.real_server.is_some());
    assert!(sim.reason.contains("wlc"), "{}", sim.reason);
    let e = c
        .simulate(
            ctx(),
            FlowSpec {
                protocol: Protocol::Udp,
                client: client(9, 1234),
                vip: VIP.into(),
                port: 80,
            },
        )
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.to_string(), "no virtual service udp 203.0.113.10:80");

    // Decisions: asking starts the recording; the next connection is recorded.
    assert!(
        c.decisions_since(ctx(), WEB, 0)
            .await
            .unwrap()
            .unwrap()
            .is_empty()
    );
    h.packet(Protocol::Tcp, client(3, 40001), 80);
    let d = c.decisions_since(ctx(), WEB, 0).await.unwrap().unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].client, client(3, 40001));
    assert!(d[0].at_unix_ms > 0);
    let again = c
        .decisions_since(ctx(), WEB, d[0].seq)
        .await
        .unwrap()
        .unwrap();
    assert!(again.is_empty());
    let e = c
        .decisions_since(ctx(), ServiceKey::tcp(VIP, 81), 0)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.to_string(), "no virtual service tcp 203.0.113.10:81");

    // Connections with templates, and filters.
    h.packet(Protocol::Tcp, client(4, 40002), 443);
    let all = c
        .connections(ctx(), ConnQuery::default())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(all.next_cursor, None);
    assert_eq!(all.table_size, all.entries.len() as u64);
    let templates = c
        .connections(
            ctx(),
            ConnQuery {
                state: Some("none".into()),
                ..ConnQuery::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(templates.entries.len(), 1);
    assert!(templates.entries[0].template);
    assert_eq!(templates.entries[0].client, client(4, 0));
    let https = c
        .connections(
            ctx(),
            ConnQuery {
                service: Some(HTTPS),
                client_prefix: Some("198.51.100.4/32".parse().unwrap()),
                ..ConnQuery::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(https.entries.len(), 2, "{:?}", https.entries);
    let e = c
        .connections(
            ctx(),
            ConnQuery {
                state: Some("ESTABLISHD".into()),
                ..ConnQuery::default()
            },
        )
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("unknown connection state `ESTABLISHD`"),
        "{e}"
    );
    let e = c
        .connections(
            ctx(),
            ConnQuery {
                limit: 5000,
                ..ConnQuery::default()
            },
        )
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid argument: limit 5000 is above the largest page, 1000"
    );
    // Reading wrote no audit line.
    assert!(h.audit_lines().is_empty());
}

#[tokio::test]
async fn weights_drains_events_and_audit() {
    let h = Harness::start("write", |_| {});
    let c = h.client().await;
    let start = c.events_since(ctx(), 0).await.unwrap().unwrap();
    assert!(matches!(start[0].kind, EventKind::Started { .. }));
    let mut seen = start.last().unwrap().seq;

    let w = c.set_weight(ctx(), WEB, R1, 5).await.unwrap().unwrap();
    assert_eq!((w.old, w.new), (1, 5));
    let w = c.set_weight(ctx(), WEB, R2, 0).await.unwrap().unwrap();
    assert_eq!((w.old, w.new), (2, 0));
    // The data path sees it at once: RS2 is quiesced, so RS1 gets the next connection.
    h.packet(Protocol::Tcp, client(1, 1000), 80);
    let s = &c.services(ctx()).await.unwrap().unwrap()[0];
    let rs1 = s.real_servers.iter().find(|r| r.key() == R1).unwrap();
    assert_eq!((rs1.weight, rs1.inactive + rs1.active), (5, 1));

    // Errors say what was wrong.
    let e = c
        .set_weight(ctx(), WEB, R1, 70000)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.to_string(), "weight 70000 out of range 0..=65535");
    let e = c
        .set_weight(ctx(), ServiceKey::tcp(VIP, 81), R1, 1)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.to_string(), "no virtual service tcp 203.0.113.10:81");
    let e = c
        .set_weight(ctx(), WEB, RealServerKey::new(RS1, 8080), 1)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "no real server 192.0.2.11:8080 in virtual service tcp 203.0.113.10:80"
    );
    let e = c.undrain(ctx(), WEB, R1).await.unwrap().unwrap_err();
    assert_eq!(
        e,
        ApiError::NotDrained {
            service: WEB,
            real_server: R1
        }
    );

    // Drain: weight 0, old weight remembered, progress = connections left.
    let d = c.drain(ctx(), WEB, R1).await.unwrap().unwrap();
    assert_eq!((d.weight_before, d.connections_left), (5, 1));
    // A second drain keeps the first remembered weight and records nothing new.
    let d = c.drain(ctx(), WEB, R1).await.unwrap().unwrap();
    assert_eq!(d.weight_before, 5);
    let s = &c.services(ctx()).await.unwrap().unwrap()[0];
    let rs1 = s.real_servers.iter().find(|r| r.key() == R1).unwrap();
    assert_eq!((rs1.weight, rs1.drained_from), (0, Some(5)));
    // No new connection goes to the drained server.
    for i in 0..10 {
        h.packet(Protocol::Tcp, client(2, 2000 + i), 80);
    }
    assert_eq!(
        c.drain_status(ctx(), WEB, R1)
            .await
            .unwrap()
            .unwrap()
            .connections_left,
        1
    );
    // Its connection expires (SYN_RECV, 60 s): the drain is complete.
    h.advance(Duration::from_secs(61));
    assert_eq!(
        c.drain_status(ctx(), WEB, R1)
            .await
            .unwrap()
            .unwrap()
            .connections_left,
        0
    );
    let u = c.undrain(ctx(), WEB, R1).await.unwrap().unwrap();
    assert_eq!((u.old, u.new), (0, 5));
    let e = c.drain_status(ctx(), WEB, R1).await.unwrap().unwrap_err();
    assert_eq!(
        e.to_string(),
        "real server 192.0.2.11:80 in virtual service tcp 203.0.113.10:80 is not drained"
    );

    c.zero_counters(ctx(), Some(WEB)).await.unwrap().unwrap();
    assert_eq!(
        c.services(ctx()).await.unwrap().unwrap()[0].counters.conns,
        0
    );
    let e = c
        .zero_counters(ctx(), Some(ServiceKey::udp(VIP, 54)))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.to_string(), "no virtual service udp 203.0.113.10:54");
    c.zero_counters(ctx(), None).await.unwrap().unwrap();

    // Every successful edit is one event, with who made it; a poller sees each once.
    let events = c.events_since(ctx(), seen).await.unwrap().unwrap();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| match &e.kind {
            EventKind::WeightChanged { .. } => "weight",
            EventKind::Drained { .. } => "drained",
            EventKind::Undrained { .. } => "undrained",
            EventKind::CountersZeroed { .. } => "zeroed",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            "weight",
            "weight",
            "drained",
            "undrained",
            "zeroed",
            "zeroed"
        ]
    );
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (seen + 1..=seen + 6).collect::<Vec<_>>());
    if let EventKind::WeightChanged { by, old, new, .. } = &events[0].kind {
        assert_eq!(by.uid, nix::unistd::geteuid().as_raw());
        assert_eq!((*old, *new), (1, 5));
    }
    seen = events.last().unwrap().seq;
    assert!(
        c.events_since(ctx(), seen)
            .await
            .unwrap()
            .unwrap()
            .is_empty()
    );

    // One audit line per mutating call, failures included (reads write none).
    let lines = h.audit_lines();
    let uid = nix::unistd::geteuid().as_raw();
    let expect = [
        "set_weight tcp 203.0.113.10:80 192.0.2.11:80 weight=5 -> ok: weight 1 -> 5",
        "set_weight tcp 203.0.113.10:80 192.0.2.12:80 weight=0 -> ok: weight 2 -> 0",
        "set_weight tcp 203.0.113.10:80 192.0.2.11:80 weight=70000 -> error: weight 70000 out of range 0..=65535",
        "set_weight tcp 203.0.113.10:81 192.0.2.11:80 weight=1 -> error: no virtual service tcp 203.0.113.10:81",
        "set_weight tcp 203.0.113.10:80 192.0.2.11:8080 weight=1 -> error: no real server",
        "undrain tcp 203.0.113.10:80 192.0.2.11:80 -> error: real server 192.0.2.11:80",
        "drain tcp 203.0.113.10:80 192.0.2.11:80 -> ok: weight 5 -> 0, 1 connections left",
        "drain tcp 203.0.113.10:80 192.0.2.11:80 -> ok: weight 5 -> 0, 1 connections left",
        "undrain tcp 203.0.113.10:80 192.0.2.11:80 -> ok: weight 0 -> 5",
        "zero_counters tcp 203.0.113.10:80 -> ok: counters zeroed",
        "zero_counters udp 203.0.113.10:54 -> error: no virtual service udp 203.0.113.10:54",
        "zero_counters all -> ok: counters zeroed",
    ];
    assert_eq!(lines.len(), expect.len(), "{lines:#?}");
    for (line, want) in lines.iter().zip(expect) {
        assert!(line.contains(&format!("uid={uid}")), "{line}");
        assert!(
            line.contains(&format!("pid={}", std::process::id())),
            "{line}"
        );
        assert!(line.contains(want), "{line}\n  wanted: {want}");
    }
}

/// Entries are listed in a stable order; a walk never returns an entry twice and never
/// skips one that exists for the whole walk, while entries come and go between pages.
#[tokio::test]
async fn paging_stays_correct_while_the_table_changes() {
    let h = Harness::start("paging", |_| {});
    let c = h.client().await;
    // A: 40 UDP flows now (they expire at +300 s); C: 40 at +100 s (alive to +400 s).
    for n in 1..=40 {
        h.packet(Protocol::Udp, client(n, 1000), 53);
    }
    h.advance(Duration::from_secs(100));
    for n in 1..=40 {
        h.packet(Protocol::Udp, client(n, 3000), 53);
    }
    h.advance(Duration::from_secs(50));
    let query = |cursor: Option<ConnCursor>| ConnQuery {
        service: Some(DNS),
        cursor,
        limit: 15,
        ..ConnQuery::default()
    };
    let mut seen: Vec<ConnCursor> = Vec::new();
    let mut ports = Vec::new();
    let mut cursor = None;
    let mut page_no = 0;
    loop {
        let page = c.connections(ctx(), query(cursor)).await.unwrap().unwrap();
        assert!(page.entries.len() <= 15);
        for e in &page.entries {
            seen.push(e.cursor);
            ports.push((e.client, e.client.port()));
        }
        page_no += 1;
        match page_no {
            // B: 20 new flows between pages, on both sides of the cursor.
            1 => {
                for n in 1..=20 {
                    h.packet(Protocol::Udp, client(n, 2000), 53);
                }
                h.advance(Duration::from_secs(100));
            }
            // A expires between pages.
            2 => h.advance(Duration::from_secs(60)),
            _ => {}
        }
        match page.next_cursor {
            Some(next) => {
                assert_eq!(Some(&next), page.entries.last().map(|e| &e.cursor));
                cursor = Some(next);
            }
            None => break,
        }
        assert!(page_no < 50, "paging does not end");
    }
    // Strictly increasing: no duplicates, stable order across pages.
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    // Every C flow (alive for the whole walk) appears exactly once.
    let c_flows: HashSet<SocketAddr> = ports
        .iter()
        .filter(|(_, p)| *p == 3000)
        .map(|(c, _)| *c)
        .collect();
    assert_eq!(c_flows.len(), 40);
    // Without changes, one walk equals one big page.
    let big = c
        .connections(
            ctx(),
            ConnQuery {
                service: Some(DNS),
                ..ConnQuery::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    let mut walk = Vec::new();
    let mut cursor = None;
    loop {
        let page = c.connections(ctx(), query(cursor)).await.unwrap().unwrap();
        walk.extend(page.entries.iter().map(|e| e.cursor));
        match page.next_cursor {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    assert_eq!(
        walk,
        big.entries.iter().map(|e| e.cursor).collect::<Vec<_>>()
    );
    assert_eq!(walk.len(), 60);
}

#[tokio::test]
async fn an_oversized_frame_closes_the_connection() {
    let h = Harness::start("frame", |_| {});
    let mut raw = tokio::net::UnixStream::connect(&h.socket).await.unwrap();
    raw.write_all(&(100u32 << 20).to_be_bytes()).await.unwrap();
    raw.write_all(&[b'{'; 4096]).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), raw.read(&mut buf))
        .await
        .expect("the daemon closes the connection");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    // A malformed (non-JSON) frame closes it too.
    let mut raw = tokio::net::UnixStream::connect(&h.socket).await.unwrap();
    raw.write_all(&5u32.to_be_bytes()).await.unwrap();
    raw.write_all(b"hello").await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), raw.read(&mut buf))
        .await
        .expect("the daemon closes the connection");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    // The daemon goes on serving others.
    let c = h.client().await;
    assert!(c.services(ctx()).await.unwrap().is_ok());
}

#[tokio::test]
async fn an_idle_connection_is_closed() {
    let h = Harness::start("idle", |s| s.idle_timeout = Duration::from_millis(300));
    let mut raw = tokio::net::UnixStream::connect(&h.socket).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), raw.read(&mut buf))
        .await
        .expect("the daemon closes the idle connection");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
}

/// A read-only peer (in process: the role is forced) may read but not change anything,
/// and the refusal is audited.
#[tokio::test]
async fn a_read_only_peer_is_refused_mutations() {
    use futures::StreamExt;
    use lvs_proto::LvsControl;
    use lvs_proto::tarpc::server::{BaseChannel, Channel};

    let h = Harness::start("readonly", |_| {});
    // A handler for a forced read-only peer, on a channel with its own stand-in
    // forwarding thread; it shares the harness's audit file.
    let peer = auth::Peer {
        actor: lvs_proto::Actor {
            uid: 4242,
            gid: 4242,
            pid: Some(77),
            user: Some("mallory".into()),
            tls: None,
        },
        role: Role::ReadOnly,
    };
    let (commands2, mut exec2) = channel(Instant::now()).unwrap();
    let shared = std::sync::Arc::new(server::Shared {
        commands: commands2,
        admin: Some(auth::AdminGroup {
            name: "lvsadm".into(),
            gid: 990,
        }),
        audit: audit::Audit::with_file(&h.audit).unwrap(),
        version: lvs_proto::VersionInfo {
            daemon: "test".into(),
            api: lvs_proto::API_LEVEL,
            pid: 1,
            started_unix_ms: 0,
        },
        idle_timeout: Duration::from_secs(60),
    });
    let handler = server::Handler::new(shared, peer);
    let (client_t, server_t) = lvs_proto::tarpc::transport::channel::unbounded();
    tokio::spawn(
        BaseChannel::with_defaults(server_t)
            .execute(handler.serve())
            .for_each(|f| async {
                tokio::spawn(f);
            }),
    );
    let c = LvsControlClient::new(Default::default(), client_t).spawn();
    // Reads reach the (stand-in) forwarding thread.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = std::sync::Arc::clone(&done);
    let reader = std::thread::spawn(move || {
        let mut dp = Dataplane::new(dp_config(), Instant::now());
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            exec2.run_pending(&mut dp, Instant::now());
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    assert_eq!(c.whoami(ctx()).await.unwrap().role, Role::ReadOnly);
    assert_eq!(c.services(ctx()).await.unwrap().unwrap().len(), 3);
    let e = c.set_weight(ctx(), WEB, R1, 3).await.unwrap().unwrap_err();
    assert_eq!(
        e.to_string(),
        "permission denied: read-only role: mallory (uid 4242) pid 77 is neither root nor in group lvsadm"
    );
    for e in [
        c.drain(ctx(), WEB, R1).await.unwrap().map(|_| ()),
        c.undrain(ctx(), WEB, R1).await.unwrap().map(|_| ()),
        c.zero_counters(ctx(), None).await.unwrap(),
    ] {
        assert!(matches!(e, Err(ApiError::PermissionDenied { .. })), "{e:?}");
    }
    let lines = h.audit_lines();
    assert_eq!(lines.len(), 4, "{lines:#?}");
    assert!(lines[0].contains(
        "uid=4242 user=mallory pid=77 set_weight tcp 203.0.113.10:80 192.0.2.11:80 weight=3 -> refused: permission denied"
    ), "{}", lines[0]);
    drop(c);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = reader.join();
}

/// As root: a client on a thread running as uid/gid 65534 (nobody) can list but not
/// change anything; the refusal names the uid and is audited.
#[tokio::test]
async fn another_user_is_read_only() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to connect as another user");
        return;
    }
    let h = Harness::start("otheruser", |s| {
        s.socket_mode = 0o666;
        s.admin_group = None;
    });
    let socket = h.socket.clone();
    // Blocking is fine: the server runs on its own thread.
    crate::io::testutil::run_as_user(65534, 65534, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let c = connect_unix(&socket).await.unwrap();
            let me = c.whoami(ctx()).await.unwrap();
            assert_eq!((me.actor.uid, me.role), (65534, Role::ReadOnly));
            assert_eq!(c.services(ctx()).await.unwrap().unwrap().len(), 3);
            let e = c.set_weight(ctx(), WEB, R1, 3).await.unwrap().unwrap_err();
            assert!(
                e.to_string()
                    .starts_with("permission denied: read-only role"),
                "{e}"
            );
        });
    });
    let lines = h.audit_lines();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0].contains("uid=65534"), "{}", lines[0]);
    assert!(
        lines[0].contains("-> refused: permission denied: read-only role"),
        "{}",
        lines[0]
    );
}

#[tokio::test]
async fn killing_a_connection_and_a_template() {
    let h = Harness::start("kill", |_| {});
    let c = h.client().await;
    let https = ServiceKey::tcp(VIP, 443);
    h.packet(Protocol::Tcp, client(1, 1000), 80);
    h.packet(Protocol::Tcp, client(2, 2000), 443);
    let table = |c: &LvsControlClient| {
        let c = c.clone();
        async move {
            c.connections(ctx(), ConnQuery::default())
                .await
                .unwrap()
                .unwrap()
                .entries
        }
    };
    assert_eq!(table(&c).await.len(), 3, "web, https and its template");

    let conn = ConnKey {
        protocol: Protocol::Tcp,
        client: client(1, 1000),
        virt: SocketAddr::new(VIP.into(), 80),
    };
    let e = c.kill_connection(ctx(), conn).await.unwrap().unwrap();
    assert_eq!(
        (e.client, e.template, e.state.as_str()),
        (client(1, 1000), false, "SYN_RECV")
    );
    // Its real server's counts settled as on expiry.
    let web = &c.services(ctx()).await.unwrap().unwrap()[0];
    assert!(
        web.real_servers.iter().all(|r| r.active + r.inactive == 0),
        "{web:?}"
    );
    let e = c.kill_connection(ctx(), conn).await.unwrap().unwrap_err();
    assert_eq!(
        e.to_string(),
        "no connection tcp 198.51.100.1:1000 -> 203.0.113.10:80 in the connection table"
    );

    // The template goes, its connection stays.
    let template = TemplateKey {
        service: https,
        client: client(2, 0).ip(),
    };
    let e = c.kill_template(ctx(), template).await.unwrap().unwrap();
    assert!(
        e.template && e.real == SocketAddr::new(RS1.into(), 443),
        "{e:?}"
    );
    let left = table(&c).await;
    assert_eq!(left.len(), 1);
    assert_eq!((left[0].client, left[0].template), (client(2, 2000), false));
    let svc = c.services(ctx()).await.unwrap().unwrap();
    assert_eq!(svc[2].real_servers[0].persistent, 0);
    let e = c.kill_template(ctx(), template).await.unwrap().unwrap_err();
    assert!(matches!(e, ApiError::NoSuchConnection { .. }), "{e:?}");
    let e = c
        .kill_template(
            ctx(),
            TemplateKey {
                service: ServiceKey::tcp(VIP, 81),
                client: client(2, 0).ip(),
            },
        )
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.to_string(), "no virtual service tcp 203.0.113.10:81");

    // Events and audit lines.
    let kills: Vec<_> = c
        .events_since(ctx(), 0)
        .await
        .unwrap()
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::ConnectionKilled { template, .. } => Some(template),
            _ => None,
        })
        .collect();
    assert_eq!(kills, [false, true]);
    let lines = h.audit_lines();
    assert_eq!(lines.len(), 5, "{lines:#?}");
    assert!(
        lines[0].contains("kill_connection tcp 198.51.100.1:1000 -> 203.0.113.10:80 -> ok: "),
        "{}",
        lines[0]
    );
    assert!(lines[1].contains("-> error: no connection"), "{}", lines[1]);
}

#[tokio::test]
async fn saving_the_running_configuration() {
    use std::os::unix::fs::PermissionsExt as _;

    let h = Harness::start("save", |_| {});
    let c = h.client().await;
    c.set_weight(ctx(), WEB, R1, 7).await.unwrap().unwrap();
    c.drain(ctx(), WEB, R2).await.unwrap().unwrap();
    let path = h.dir.join("saved.toml");
    let p = path.to_string_lossy().into_owned();
    let saved = c.save_config(ctx(), p.clone()).await.unwrap().unwrap();
    assert_eq!((saved.services, saved.real_servers), (3, 4));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    // The file is the running configuration: the API's weights, the rest as loaded.
    let back = crate::config::Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let mut want = running_config();
    want.services[0].real_servers[0].weight = 7;
    want.services[0].real_servers[1].weight = 0;
    assert_eq!(back, want);

    // A symlink is refused, not followed; so is a relative path.
    let link = h.dir.join("link.toml");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    let e = c
        .save_config(ctx(), link.to_string_lossy().into_owned())
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(e, ApiError::SaveFailed { .. }), "{e:?}");
    assert!(e.to_string().contains("symbolic link"), "{e}");
    let e = c
        .save_config(ctx(), "relative.toml".into())
        .await
        .unwrap()
        .unwrap_err();
    assert!(e.to_string().contains("not an absolute path"), "{e}");

    let events = c.events_since(ctx(), 0).await.unwrap().unwrap();
    let saves: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ConfigSaved { path, .. } => Some(path.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(saves, [p]);
    let lines = h.audit_lines();
    assert!(
        lines.iter().any(|l| l.contains("save_config ")
            && l.contains("-> ok: 3 services, 4 real servers written")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("link.toml -> error: cannot save the configuration: ")),
        "{lines:#?}"
    );
}

#[tokio::test]
async fn topology_shows_interfaces_vips_and_routes() {
    let h = Harness::start("topology", |_| {});
    let c = h.client().await;
    let t = c.topology(ctx()).await.unwrap().unwrap();
    let names: Vec<_> = t.interfaces.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["ext", "int"]);
    assert_eq!(t.interfaces[0].mac, "02:00:00:00:01:01");
    assert_eq!(t.dips, [Ipv4Addr::new(192, 0, 2, 1)]);
    // No daemon here set VIPs up.
    assert!(t.vips.is_empty());
    assert_eq!(t.vrrp_role, None);
    let routes: Vec<_> = t
        .real_servers
        .iter()
        .map(|r| (r.service, r.real_server, r.interface.as_str(), r.next_hop))
        .collect();
    assert_eq!(routes.len(), 4);
    assert_eq!(routes[0], (WEB, R2, "int", RS2.into()));
    assert_eq!(routes[1], (WEB, R1, "int", RS1.into()));
    assert!(t.real_servers.iter().all(|r| r.next_hop_mac.is_none()));
}

#[tokio::test]
async fn adding_and_removing_services_and_real_servers() {
    let h = Harness::start("edit", |_| {});
    let c = h.client().await;
    let keys = |v: Vec<lvs_proto::ServiceInfo>| {
        v.iter()
            .map(|s| {
                (
                    s.key(),
                    s.real_servers
                        .iter()
                        .map(|r| (r.key(), r.weight))
                        .collect::<Vec<_>>(),
                )
            })
            .collect::<Vec<_>>()
    };
    let alt = ServiceKey::tcp(VIP, 8080);
    let new = NewService {
        service: alt,
        scheduler: SchedulerKind::Wrr,
        flags: Vec::new(),
        forwarding: Forwarding::Nat,
        persistence: None,
        one_packet: false,
    };
    c.add_service(ctx(), new.clone()).await.unwrap().unwrap();
    let e = c
        .add_service(ctx(), new.clone())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "virtual service tcp 203.0.113.10:8080 already exists"
    );
    // Checked as the file is: sh flags on wrr, one-packet on TCP.
    for bad in [
        NewService {
            service: ServiceKey::tcp(VIP, 8081),
            flags: vec!["sh-port".into()],
            ..new.clone()
        },
        NewService {
            service: ServiceKey::tcp(VIP, 8081),
            one_packet: true,
            ..new.clone()
        },
    ] {
        let e = c.add_service(ctx(), bad).await.unwrap().unwrap_err();
        assert!(matches!(e, ApiError::InvalidArgument { .. }), "{e:?}");
    }

    // A weight edited through the API survives the re-plan of later edits.
    c.set_weight(ctx(), WEB, R1, 9).await.unwrap().unwrap();
    let rs = |addr, port, weight| NewRealServer {
        real_server: RealServerKey::new(addr, port),
        weight,
        forwarding: None,
        upper_threshold: 0,
        lower_threshold: 0,
    };
    c.add_real_server(ctx(), alt, rs(RS1, 8080, 3))
        .await
        .unwrap()
        .unwrap();
    c.add_real_server(ctx(), alt, rs(RS2, 8080, 1))
        .await
        .unwrap()
        .unwrap();
    let list = keys(c.services(ctx()).await.unwrap().unwrap());
    assert_eq!(list.len(), 4);
    assert_eq!(list[0].1, [(R2, 2), (R1, 9)]);
    assert_eq!(
        list[3],
        (
            alt,
            vec![
                (RealServerKey::new(RS2, 8080), 1),
                (RealServerKey::new(RS1, 8080), 3)
            ]
        )
    );
    // The new servers get connections at once.
    h.packet(Protocol::Tcp, client(1, 1000), 8080);
    let s = &c.services(ctx()).await.unwrap().unwrap()[3];
    assert_eq!(s.counters.conns, 1);

    // Errors: a duplicate, no route, an unknown service or server, a weight.
    let e = c
        .add_real_server(ctx(), alt, rs(RS1, 8080, 1))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(e, ApiError::AlreadyExists { .. }), "{e:?}");
    let e = c
        .add_real_server(ctx(), alt, rs(Ipv4Addr::new(10, 9, 9, 9), 8080, 1))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid argument: real server 10.9.9.9: no route"
    );
    let e = c
        .add_real_server(ctx(), ServiceKey::tcp(VIP, 9), rs(RS1, 80, 1))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.to_string(), "no virtual service tcp 203.0.113.10:9");
    let e = c
        .add_real_server(ctx(), alt, rs(RS1, 9, 70000))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(e, ApiError::WeightOutOfRange { .. }), "{e:?}");
    let e = c
        .remove_real_server(ctx(), alt, RealServerKey::new(RS1, 9))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(e, ApiError::NoSuchRealServer { .. }), "{e:?}");

    // Removal: the server leaves the list; then the service goes.
    c.remove_real_server(ctx(), alt, RealServerKey::new(RS2, 8080))
        .await
        .unwrap()
        .unwrap();
    let list = keys(c.services(ctx()).await.unwrap().unwrap());
    assert_eq!(list[3].1, [(RealServerKey::new(RS1, 8080), 3)]);
    c.remove_service(ctx(), alt).await.unwrap().unwrap();
    let e = c.remove_service(ctx(), alt).await.unwrap().unwrap_err();
    assert_eq!(e.to_string(), "no virtual service tcp 203.0.113.10:8080");
    let list = keys(c.services(ctx()).await.unwrap().unwrap());
    assert_eq!(list.len(), 3);
    assert_eq!(list[0].1, [(R2, 2), (R1, 9)], "weights kept");

    // One event per applied edit, none for refused ones; one audit line per call.
    let kinds: Vec<&'static str> = c
        .events_since(ctx(), 0)
        .await
        .unwrap()
        .unwrap()
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::ServiceAdded { .. } => Some("service+"),
            EventKind::ServiceRemoved { .. } => Some("service-"),
            EventKind::RealServerAdded { .. } => Some("server+"),
            EventKind::RealServerRemoved { .. } => Some("server-"),
            _ => None,
        })
        .collect();
    assert_eq!(
        kinds,
        ["service+", "server+", "server+", "server-", "service-"]
    );
    let lines = h.audit_lines();
    assert!(
        lines[0].contains(
            "add_service tcp 203.0.113.10:8080 scheduler=wrr forwarding=nat -> ok: applied"
        ),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("-> error: invalid argument: real server 10.9.9.9: no route")),
        "{lines:#?}"
    );

    // The saved file has what the API did.
    let path = h.dir.join("after-edits.toml");
    c.save_config(ctx(), path.to_string_lossy().into_owned())
        .await
        .unwrap()
        .unwrap();
    let saved = crate::config::Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let mut want = running_config();
    want.services[0].real_servers[0].weight = 9;
    assert_eq!(saved, want);
}

#[test]
fn health_reports_reach_the_data_path_and_become_events() {
    use lvs_proto::HealthState;
    let t0 = Instant::now();
    let (_commands, mut exec) = channel(t0).unwrap();
    let mut cfg = dp_config();
    for d in &mut cfg.services[0].dests {
        d.health.checked = true;
    }
    let mut dp = Dataplane::new(cfg, t0);
    let web = ServiceKey::tcp(VIP, 80);
    let key = crate::dataplane::ServiceKey {
        protocol: Protocol::Tcp,
        vip: VIP.into(),
        port: 80,
    };
    let sender = exec.health_sender();
    sender.send(HealthUpdate::Changed {
        service: web,
        real_server: RealServerKey::new(RS2, 80),
        state: HealthState::Down,
        check: "tcp 192.0.2.12:80".into(),
        reason: "1 failure in a row (fall 1): connect: connection refused".into(),
    });
    sender.send(HealthUpdate::Weight {
        service: web,
        real_server: RealServerKey::new(RS1, 80),
        weight: 7,
    });
    // A report for a server that is gone is no error.
    sender.send(HealthUpdate::Weight {
        service: web,
        real_server: RealServerKey::new(Ipv4Addr::new(192, 0, 2, 13), 80),
        weight: 1,
    });
    assert!(!exec.run_pending(&mut dp, t0));
    assert!(!dp.dest_stats(&key, RS2, 80).unwrap().in_service);
    assert_eq!(dp.dest_stats(&key, RS1, 80).unwrap().weight, 7);
    let (tx, mut rx) = tokio::sync::oneshot::channel();
    exec.execute(
        &mut dp,
        t0,
        Command::Events {
            since: 0,
            reply: tx,
        },
    );
    let events = rx.try_recv().unwrap().unwrap();
    assert!(
        events.iter().any(|e| matches!(&e.kind,
            EventKind::HealthChanged { state: HealthState::Down, reason, .. }
                if reason.contains("connection refused"))),
        "{events:?}"
    );
    assert!(
        events.iter().any(|e| matches!(&e.kind,
            EventKind::WeightChanged { new: 7, by, .. }
                if by.user.as_deref().is_some_and(|u| u.contains("dynamic_weight")))),
        "{events:?}"
    );
    // The listing: RS2 follows the listed server, out of service.
    let (tx, mut rx) = tokio::sync::oneshot::channel();
    exec.execute(&mut dp, t0, Command::Services(tx));
    let services = rx.try_recv().unwrap().unwrap();
    let rs: Vec<(IpAddr, bool)> = services[0]
        .real_servers
        .iter()
        .map(|r| (r.addr, r.in_service))
        .collect();
    assert_eq!(rs, vec![(RS1.into(), true), (RS2.into(), false)]);
    assert!(services[0].real_servers[1].health.is_some());
    // A flood of reports stays bounded (one target's are coalesced when full).
    for i in 0..(super::exec::HEALTH_INBOX as u32 + 100) {
        sender.send(HealthUpdate::Weight {
            service: web,
            real_server: RealServerKey::new(RS1, 80),
            weight: 1 + i % 3,
        });
    }
    assert!(!exec.run_pending(&mut dp, t0));
    assert!(dp.dest_stats(&key, RS1, 80).unwrap().weight <= 3);
}

/// The configuration of the IPv6 test: an IPv4 web service and the lab's IPv6 ones (NAT66
/// web, and HTTPS persistent per /64).
fn dual_config() -> crate::config::Config {
    let text = "[[virtual_server]]\naddress = \"203.0.113.10:80\"\nforwarding = \"nat\"\n\
        [[virtual_server.real_server]]\naddress = \"192.0.2.11:80\"\n\
        [[virtual_server]]\naddress = \"[2001:db8:f::10]:80\"\nforwarding = \"nat\"\n\
        [[virtual_server.real_server]]\naddress = \"[2001:db8:b::11]:80\"\n\
        [[virtual_server.real_server]]\naddress = \"[2001:db8:b::12]:80\"\nweight = 2\n\
        [[virtual_server]]\naddress = \"[2001:db8:f::10]:443\"\nscheduler = \"rr\"\n\
        forwarding = \"nat\"\npersistence_timeout = 300\npersistence_netmask = 64\n\
        [[virtual_server.real_server]]\naddress = \"[2001:db8:b::11]:443\"\n";
    crate::config::Config::parse(std::path::Path::new("dual.toml"), text)
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn ipv6_services_connections_and_edits() {
    let h = Harness::start_config("ipv6", dual_config());
    let c = h.client().await;
    let web6 = ServiceKey::tcp(VIP6, 80);
    let https6 = ServiceKey::tcp(VIP6, 443);
    let r61 = RealServerKey::new(RS61, 80);
    let r62 = RealServerKey::new(RS62, 80);

    // Listing: IPv6 keys and addresses, the /64 granularity.
    let services = c.services(ctx()).await.unwrap().unwrap();
    assert_eq!(
        services.iter().map(|s| s.key()).collect::<Vec<_>>(),
        vec![WEB, web6, https6]
    );
    assert_eq!(
        services[1]
            .real_servers
            .iter()
            .map(|r| r.key())
            .collect::<Vec<_>>(),
        vec![r62, r61]
    );
    let p = services[2].persistence.unwrap();
    assert_eq!((p.timeout_secs, p.prefix6), (300, 64));

    // Decisions and connections of IPv6 clients.
    assert!(
        c.decisions_since(ctx(), web6, 0)
            .await
            .unwrap()
            .unwrap()
            .is_empty()
    );
    h.packet(Protocol::Tcp, client6(1, 40000), 80);
    h.packet(Protocol::Tcp, client(1, 40000), 80);
    h.packet(Protocol::Tcp, client6(2, 2000), 443);
    let d = c.decisions_since(ctx(), web6, 0).await.unwrap().unwrap();
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].client, client6(1, 40000));
    let chosen = d[0].real_server.unwrap();
    assert!([r61, r62].contains(&chosen), "{chosen}");

    let all = c
        .connections(ctx(), ConnQuery::default())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        all.entries.len(),
        4,
        "v4, v6 web, v6 https and its template"
    );
    // The listing order puts IPv4 first.
    assert!(all.entries[0].virt.is_ipv4(), "{:?}", all.entries[0]);
    let v6 = c
        .connections(
            ctx(),
            ConnQuery {
                client_prefix: Some("2001:db8:c::/64".parse().unwrap()),
                ..ConnQuery::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v6.entries.len(), 3, "{:?}", v6.entries);
    let web_entry = v6
        .entries
        .iter()
        .find(|e| e.virt == SocketAddr::new(VIP6.into(), 80))
        .unwrap();
    assert_eq!(web_entry.client, client6(1, 40000));
    assert_eq!(web_entry.real, chosen.socket_addr());
    assert_eq!(web_entry.cursor.client, client6(1, 40000).ip());
    let template = v6.entries.iter().find(|e| e.template).unwrap();
    // The template shows the client masked to the service's /64.
    let masked: IpAddr = "2001:db8:c::".parse().unwrap();
    assert_eq!(template.client, SocketAddr::new(masked, 0));
    let v4 = c
        .connections(
            ctx(),
            ConnQuery {
                client_prefix: Some("198.51.100.0/24".parse().unwrap()),
                ..ConnQuery::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v4.entries.len(), 1);
    // A page walk over both families with a cursor.
    let first = c
        .connections(
            ctx(),
            ConnQuery {
                limit: 2,
                ..ConnQuery::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    let rest = c
        .connections(
            ctx(),
            ConnQuery {
                cursor: first.next_cursor,
                ..ConnQuery::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    let walked: Vec<_> = first.entries.iter().chain(&rest.entries).cloned().collect();
    assert_eq!(walked, all.entries);

    // Simulate: an IPv6 flow; a flow whose client and VIP differ in family is refused.
    let sim = c
        .simulate(
            ctx(),
            FlowSpec {
                protocol: Protocol::Tcp,
                client: client6(9, 1234),
                vip: VIP6.into(),
                port: 80,
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sim.service, web6);
    assert!(sim.real_server.is_some_and(|r| r.addr.is_ipv6()), "{sim:?}");
    let e = c
        .simulate(
            ctx(),
            FlowSpec {
                protocol: Protocol::Tcp,
                client: client(9, 1234),
                vip: VIP6.into(),
                port: 80,
            },
        )
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(&e, ApiError::InvalidArgument { message } if message.contains("families")),
        "{e}"
    );

    // Kills name IPv6 entries; the event carries the addresses.
    let e = c
        .kill_connection(
            ctx(),
            ConnKey {
                protocol: Protocol::Tcp,
                client: client6(1, 40000),
                virt: SocketAddr::new(VIP6.into(), 80),
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e.client, client6(1, 40000));
    let t = c
        .kill_template(
            ctx(),
            TemplateKey {
                service: https6,
                client: masked,
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert!(
        t.template && t.real == SocketAddr::new(RS61.into(), 443),
        "{t:?}"
    );
    let e = c
        .kill_connection(
            ctx(),
            ConnKey {
                protocol: Protocol::Tcp,
                client: client6(1, 40000),
                virt: SocketAddr::new(VIP6.into(), 80),
            },
        )
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "no connection tcp [2001:db8:c::11]:40000 -> [2001:db8:f::10]:80 in the connection table"
    );

    // Weights and drains of an IPv6 real server.
    let w = c.set_weight(ctx(), web6, r61, 5).await.unwrap().unwrap();
    assert_eq!((w.old, w.new), (1, 5));
    let d = c.drain(ctx(), web6, r62).await.unwrap().unwrap();
    assert_eq!(d.weight_before, 2);
    let e = c
        .set_weight(ctx(), web6, RealServerKey::new(RS61, 81), 1)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "no real server [2001:db8:b::11]:81 in virtual service tcp [2001:db8:f::10]:80"
    );

    // Adding and removing IPv6 services and real servers.
    let alt = ServiceKey::tcp(VIP6, 8080);
    c.add_service(
        ctx(),
        NewService {
            service: alt,
            scheduler: SchedulerKind::Sh,
            flags: vec![],
            forwarding: Forwarding::Nat,
            persistence: Some(lvs_proto::PersistenceInfo {
                prefix6: 48,
                ..lvs_proto::PersistenceInfo::new(600)
            }),
            one_packet: false,
        },
    )
    .await
    .unwrap()
    .unwrap();
    let rs = |addr: IpAddr, port: u16| NewRealServer {
        real_server: RealServerKey::new(addr, port),
        weight: 1,
        forwarding: None,
        upper_threshold: 0,
        lower_threshold: 0,
    };
    c.add_real_server(ctx(), alt, rs(RS62.into(), 8080))
        .await
        .unwrap()
        .unwrap();
    let e = c
        .add_real_server(ctx(), alt, rs("2001:db8:99::1".parse().unwrap(), 8080))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(e, ApiError::InvalidArgument { .. }), "{e}");
    // NAT66 does not translate families: an IPv4 real server in an IPv6 NAT service is
    // refused, as the configuration file refuses it.
    let e = c
        .add_real_server(ctx(), alt, rs(RS1.into(), 8080))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(e, ApiError::InvalidArgument { .. }), "{e}");
    let services = c.services(ctx()).await.unwrap().unwrap();
    let added = services.iter().find(|s| s.key() == alt).unwrap();
    assert_eq!(added.persistence.map(|p| p.prefix6), Some(48));
    assert_eq!(
        added
            .real_servers
            .iter()
            .map(|r| r.key())
            .collect::<Vec<_>>(),
        vec![RealServerKey::new(RS62, 8080)]
    );
    c.remove_real_server(ctx(), alt, RealServerKey::new(RS62, 8080))
        .await
        .unwrap()
        .unwrap();
    c.remove_service(ctx(), alt).await.unwrap().unwrap();

    // Topology: IPv6 addresses, the IPv6 DIP, IPv6 routes.
    let t = c.topology(ctx()).await.unwrap().unwrap();
    assert!(
        t.interfaces[1].addresses.contains(&IpAddr::V6(DIP6)),
        "{:?}",
        t.interfaces
    );
    assert_eq!(
        t.dips,
        [IpAddr::from(Ipv4Addr::new(192, 0, 2, 1)), DIP6.into()]
    );
    let route = t
        .real_servers
        .iter()
        .find(|r| r.service == web6 && r.real_server == r61)
        .unwrap();
    assert_eq!(
        (route.next_hop, route.source),
        (IpAddr::V6(RS61), IpAddr::V6(DIP6))
    );

    let events = c.events_since(ctx(), 0).await.unwrap().unwrap();
    assert!(
        events.iter().any(|e| matches!(
            &e.kind,
            EventKind::ConnectionKilled { client, template: false, .. } if *client == client6(1, 40000)
        )),
        "{events:?}"
    );
}
