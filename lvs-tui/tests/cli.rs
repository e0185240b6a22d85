//! The real `lvsctl` binary against an in-process fake lvsd (the `LvsControl` trait over a
//! Unix socket in a temporary directory): exact ipvsadm output, cursor paging, JSON, exit
//! statuses and error lines, `--follow` ended by Ctrl-C, `drain --wait`. No root needed.

// Helpers outside #[test] fns are not covered by clippy's allow-unwrap-in-tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use lvs_proto::tarpc::context::Context;
use lvs_proto::tarpc::server::{BaseChannel, Channel};
use lvs_proto::*;

const LVSCTL: &str = env!("CARGO_BIN_EXE_lvsctl");

#[derive(Debug, Default)]
struct State {
    services: Vec<ServiceInfo>,
    conns: Vec<ConnEntry>,
    events: Vec<Event>,
    drain_left: u64,
    zeroed: Vec<Option<ServiceKey>>,
    /// What `add_service` and `add_real_server` were asked (they answer errors).
    added: Vec<(NewService, Option<NewRealServer>)>,
}

#[derive(Debug, Clone)]
struct Fake(Arc<Mutex<State>>);

fn root() -> Actor {
    Actor {
        uid: 0,
        gid: 0,
        pid: Some(4242),
        user: Some("root".into()),
        tls: None,
    }
}

impl Fake {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.0.lock().unwrap())
    }

    fn find(
        st: &mut State,
        service: ServiceKey,
        rs: RealServerKey,
    ) -> Result<&mut RealServerInfo, ApiError> {
        let svc = st
            .services
            .iter_mut()
            .find(|s| s.key() == service)
            .ok_or(ApiError::NoSuchService { service })?;
        svc.real_servers
            .iter_mut()
            .find(|r| r.key() == rs)
            .ok_or(ApiError::NoSuchRealServer {
                service,
                real_server: rs,
            })
    }

    fn push_event(st: &mut State, kind: EventKind) {
        let seq = st.events.len() as u64 + 1;
        st.events.push(Event {
            seq,
            at_unix_ms: 1_786_619_472_000 + seq * 1000,
            kind,
        });
    }
}

impl LvsControl for Fake {
    async fn version(self, _: Context) -> VersionInfo {
        VersionInfo {
            daemon: "9.8.7".into(),
            api: API_LEVEL,
            pid: 4242,
            started_unix_ms: 0,
        }
    }

    async fn whoami(self, _: Context) -> PeerInfo {
        PeerInfo {
            actor: root(),
            role: Role::Admin,
        }
    }

    async fn services(self, _: Context) -> Result<Vec<ServiceInfo>, ApiError> {
        Ok(self.with(|st| st.services.clone()))
    }

    async fn set_weight(
        self,
        _: Context,
        service: ServiceKey,
        real_server: RealServerKey,
        weight: u32,
    ) -> Result<WeightChange, ApiError> {
        self.with(|st| {
            let rs = Self::find(st, service, real_server)?;
            let old = rs.weight;
            rs.weight = weight;
            Self::push_event(
                st,
                EventKind::WeightChanged {
                    service,
                    real_server,
                    old,
                    new: weight,
                    by: root(),
                },
            );
            Ok(WeightChange {
                service,
                real_server,
                old,
                new: weight,
            })
        })
    }

    async fn drain(
        self,
        _: Context,
        service: ServiceKey,
        real_server: RealServerKey,
    ) -> Result<DrainInfo, ApiError> {
        self.with(|st| {
            let left = st.drain_left;
            let rs = Self::find(st, service, real_server)?;
            let before = rs.drained_from.unwrap_or(rs.weight);
            rs.drained_from = Some(before);
            rs.weight = 0;
            Ok(DrainInfo {
                service,
                real_server,
                weight_before: before,
                active: 0,
                inactive: u32::try_from(left).unwrap(),
                persistent: 0,
                connections_left: left,
            })
        })
    }

    async fn drain_status(
        self,
        _: Context,
        service: ServiceKey,
        real_server: RealServerKey,
    ) -> Result<DrainInfo, ApiError> {
        self.with(|st| {
            st.drain_left = st.drain_left.saturating_sub(1);
            let left = st.drain_left;
            let rs = Self::find(st, service, real_server)?;
            let before = rs.drained_from.ok_or(ApiError::NotDrained {
                service,
                real_server,
            })?;
            Ok(DrainInfo {
                service,
                real_server,
                weight_before: before,
                active: 0,
                inactive: u32::try_from(left).unwrap(),
                persistent: 0,
                connections_left: left,
            })
        })
    }

    async fn undrain(
        self,
        _: Context,
        service: ServiceKey,
        real_server: RealServerKey,
    ) -> Result<WeightChange, ApiError> {
        self.with(|st| {
            let rs = Self::find(st, service, real_server)?;
            let before = rs.drained_from.take().ok_or(ApiError::NotDrained {
                service,
                real_server,
            })?;
            let old = rs.weight;
            rs.weight = before;
            Ok(WeightChange {
                service,
                real_server,
                old,
                new: before,
            })
        })
    }

    /// Pages of two entries, whatever the limit, to exercise the client's cursor loop.
    async fn connections(self, _: Context, q: ConnQuery) -> Result<ConnPage, ApiError> {
        self.with(|st| {
            let matching: Vec<&ConnEntry> = st
                .conns
                .iter()
                .filter(|c| q.service.is_none_or(|s| s.vip == c.virt.ip()))
                .filter(|c| q.client_prefix.is_none_or(|p| p.contains(c.client.ip())))
                .filter(|c| q.cursor.is_none_or(|cur| c.cursor > cur))
                .collect();
            let limit = if q.limit == 1 { 1 } else { 2 };
            let entries: Vec<ConnEntry> =
                matching.iter().take(limit).map(|c| (*c).clone()).collect();
            let next_cursor = if matching.len() > limit {
                entries.last().map(|c| c.cursor)
            } else {
                None
            };
            Ok(ConnPage {
                entries,
                next_cursor,
                table_size: st.conns.len() as u64,
            })
        })
    }

    async fn decisions_since(
        self,
        _: Context,
        service: ServiceKey,
        since: u64,
    ) -> Result<Vec<DecisionInfo>, ApiError> {
        let all = [1u64, 2].map(|seq| DecisionInfo {
            seq,
            at_unix_ms: 1_786_619_472_000,
            service,
            client: if service.vip.is_ipv6() {
                SocketAddr::new(ip("2001:db8:c::10"), 40000 + seq as u16)
            } else {
                SocketAddr::new(ip("198.51.100.7"), 40000 + seq as u16)
            },
            real_server: Some(if service.vip.is_ipv6() {
                RealServerKey::new(ip("2001:db8:b::11"), 80)
            } else {
                RealServerKey::new(Ipv4Addr::new(192, 0, 2, 11), 80)
            }),
            scheduler: SchedulerKind::Wlc,
            reason: "wlc picked 192.0.2.11:80\n0*256+0 / w3 < 0*256+1 / w2".into(),
        });
        Ok(all.into_iter().filter(|d| d.seq > since).collect())
    }

    async fn simulate(self, _: Context, flow: FlowSpec) -> Result<SimulateInfo, ApiError> {
        Ok(SimulateInfo {
            service: flow.service(),
            real_server: None,
            reason: "every real server has weight 0".into(),
        })
    }

    async fn events_since(self, _: Context, since: u64) -> Result<Vec<Event>, ApiError> {
        Ok(self.with(|st| {
            st.events
                .iter()
                .filter(|e| e.seq > since)
                .cloned()
                .collect()
        }))
    }

    async fn zero_counters(self, _: Context, service: Option<ServiceKey>) -> Result<(), ApiError> {
        self.with(|st| {
            st.zeroed.push(service);
            Ok(())
        })
    }
    async fn kill_connection(self, _: Context, conn: ConnKey) -> Result<ConnEntry, ApiError> {
        self.with(|st| {
            st.conns
                .iter()
                .find(|c| !c.template && c.client == conn.client && c.virt == conn.virt)
                .cloned()
                .ok_or_else(|| ApiError::NoSuchConnection {
                    what: format!("connection {conn}"),
                })
        })
    }

    async fn kill_template(self, _: Context, t: TemplateKey) -> Result<ConnEntry, ApiError> {
        Err(ApiError::NoSuchConnection {
            what: t.to_string(),
        })
    }

    async fn save_config(self, _: Context, path: String) -> Result<SavedConfig, ApiError> {
        Err(ApiError::SaveFailed {
            message: format!("{path}: the fake daemon saves nothing"),
        })
    }

    async fn topology(self, _: Context) -> Result<Topology, ApiError> {
        Err(ApiError::Unavailable {
            message: "the fake daemon has no topology".into(),
        })
    }

    async fn vrrp(self, _: Context) -> Result<Vec<lvs_proto::VrrpInstanceInfo>, ApiError> {
        Ok(Vec::new())
    }

    async fn add_service(self, _: Context, s: NewService) -> Result<(), ApiError> {
        let what = format!("virtual service {}", s.service);
        self.with(|st| st.added.push((s, None)));
        Err(ApiError::AlreadyExists { what })
    }

    async fn remove_service(self, _: Context, service: ServiceKey) -> Result<(), ApiError> {
        Err(ApiError::NoSuchService { service })
    }

    async fn add_real_server(
        self,
        _: Context,
        service: ServiceKey,
        r: NewRealServer,
    ) -> Result<(), ApiError> {
        self.with(|st| {
            let s = NewService {
                service,
                scheduler: SchedulerKind::Wlc,
                flags: vec![],
                forwarding: Forwarding::Dr,
                persistence: None,
                one_packet: false,
            };
            st.added.push((s, Some(r)));
        });
        Err(ApiError::NoSuchService { service })
    }

    async fn remove_real_server(
        self,
        _: Context,
        service: ServiceKey,
        real_server: RealServerKey,
    ) -> Result<(), ApiError> {
        Err(ApiError::NoSuchRealServer {
            service,
            real_server,
        })
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn rs(last: u8, weight: u32, active: u32, inactive: u32) -> RealServerInfo {
    RealServerInfo {
        addr: Ipv4Addr::new(192, 0, 2, last).into(),
        port: 80,
        forwarding: Forwarding::Nat,
        weight,
        drained_from: None,
        active,
        inactive,
        persistent: 0,
        overloaded: false,
        upper_threshold: 0,
        lower_threshold: 0,
        counters: Counters {
            conns: u64::from(active + inactive),
            inpkts: 1234,
            outpkts: 1000,
            inbytes: 123_456_789,
            outbytes: 9_999,
        },
        rates: Rates::default(),
        health: None,
        sorry: false,
        in_service: true,
    }
}

fn conn(client: &str, state: &str, secs: u64, id: u64) -> ConnEntry {
    conn_to(client, "203.0.113.10:80", "192.0.2.11:80", state, secs, id)
}

fn conn_to(client: &str, virt: &str, real: &str, state: &str, secs: u64, id: u64) -> ConnEntry {
    let client: SocketAddr = client.parse().unwrap();
    let virt: SocketAddr = virt.parse().unwrap();
    let real: SocketAddr = real.parse().unwrap();
    ConnEntry {
        protocol: Protocol::Tcp,
        client,
        virt,
        real,
        forwarding: Forwarding::Nat,
        state: state.into(),
        expires_in_ms: secs * 1000 + 999,
        active: state == "ESTABLISHED",
        template: state == "NONE",
        cursor: ConnCursor {
            protocol: Protocol::Tcp,
            vip: virt.ip(),
            vport: virt.port(),
            client: client.ip(),
            cport: client.port(),
            rip: real.ip(),
            rport: 80,
            template: state == "NONE",
            id,
        },
    }
}

fn initial_state() -> State {
    let web = ServiceInfo {
        protocol: Protocol::Tcp,
        vip: ip("203.0.113.10"),
        port: 80,
        scheduler: SchedulerKind::Wlc,
        flags: vec![],
        persistence: None,
        one_packet: false,
        counters: Counters {
            conns: 21,
            inpkts: 2468,
            outpkts: 2000,
            inbytes: 246_913_578,
            outbytes: 19_998,
        },
        rates: Rates {
            cps: 3,
            inpps: 40,
            outpps: 35,
            inbps: 5000,
            outbps: 70_000,
        },
        // Scheduling order, newest first.
        real_servers: vec![rs(12, 1, 0, 3), rs(11, 3, 2, 16)],
        quorum: None,
    };
    let dns = ServiceInfo {
        protocol: Protocol::Udp,
        vip: ip("203.0.113.10"),
        port: 53,
        scheduler: SchedulerKind::Sh,
        flags: vec!["sh-fallback".into(), "sh-port".into()],
        persistence: Some(PersistenceInfo {
            netmask: Ipv4Addr::new(255, 255, 255, 0),
            ..PersistenceInfo::new(300)
        }),
        one_packet: true,
        counters: Counters::default(),
        rates: Rates::default(),
        real_servers: vec![],
        quorum: None,
    };
    let mut st = State {
        // Configuration order: UDP first; the listing sorts TCP first.
        services: vec![dns, web],
        conns: vec![
            conn("198.51.100.7:40000", "ESTABLISHED", 899, 1),
            conn("198.51.100.8:40001", "TIME_WAIT", 119, 2),
            conn("198.51.100.9:0", "NONE", 10_803, 3),
        ],
        ..State::default()
    };
    Fake::push_event(
        &mut st,
        EventKind::Started {
            version: "9.8.7".into(),
        },
    );
    st
}

/// A fake lvsd listening on a socket in a fresh temporary directory.
struct Daemon {
    dir: PathBuf,
    socket: PathBuf,
    state: Arc<Mutex<State>>,
}

impl Daemon {
    fn start(name: &str) -> Daemon {
        let dir = std::env::temp_dir().join(format!("lvsctl-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("lvsd.sock");
        let state = Arc::new(Mutex::new(initial_state()));
        let fake = Fake(Arc::clone(&state));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let path = socket.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::UnixListener::bind(&path).unwrap();
                ready_tx.send(()).unwrap();
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    let channel = BaseChannel::with_defaults(transport::server_transport(stream));
                    let fake = fake.clone();
                    tokio::spawn(channel.execute(fake.serve()).for_each(|f| async {
                        tokio::spawn(f);
                    }));
                }
            });
        });
        ready_rx.recv().unwrap();
        Daemon { dir, socket, state }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(LVSCTL)
            .env_remove("LVSD_SOCKET")
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs lvsctl, which must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "lvsctl {args:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn fails(out: &Output, code: i32) -> String {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout {:?} stderr {:?}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    String::from_utf8(out.stderr.clone()).unwrap()
}

#[test]
fn ln_prints_ipvsadm_exactly() {
    let d = Daemon::start("ln");
    assert_eq!(
        d.ok(&["-Ln"]),
        "IP Virtual Server version 9.8.7 (size=3)\n\
         Prot LocalAddress:Port Scheduler Flags\n\
         \x20 -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
         TCP  203.0.113.10:80 wlc\n\
         \x20 -> 192.0.2.11:80                Masq    3      2          16        \n\
         \x20 -> 192.0.2.12:80                Masq    1      0          3         \n\
         UDP  203.0.113.10:53 sh (sh-fallback,sh-port) persistent 300 mask 255.255.255.0 ops\n"
    );
    assert_eq!(d.ok(&["list", "-n"]), d.ok(&["-L", "-n"]));
    assert_eq!(
        d.ok(&["-Ln", "--stats", "-t", "203.0.113.10:80"]),
        "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n\
         \x20 -> RemoteAddress:Port\n\
         TCP  203.0.113.10:80                    21     2468     2000  246913K    19998\n\
         \x20 -> 192.0.2.11:80                      18     1234     1000  123456K     9999\n\
         \x20 -> 192.0.2.12:80                       3     1234     1000  123456K     9999\n"
    );
    assert_eq!(
        d.ok(&["-Ln", "--stats", "--exact", "-t", "203.0.113.10:80"])
            .lines()
            .nth(2),
        Some("TCP  203.0.113.10:80                    21     2468     2000 246913578    19998")
    );
    assert_eq!(
        d.ok(&["-Ln", "--rate", "-t", "203.0.113.10:80"])
            .lines()
            .nth(2),
        Some("TCP  203.0.113.10:80                     3       40       35     5000    70000")
    );
    assert_eq!(
        d.ok(&["-Ln", "--nosort"]).lines().nth(3),
        Some("UDP  203.0.113.10:53 sh (sh-fallback,sh-port) persistent 300 mask 255.255.255.0 ops")
    );
}

#[test]
fn lnc_follows_the_cursor_through_every_page() {
    let d = Daemon::start("lnc");
    let expected = "IPVS connection entries\n\
                    pro expire state       source             virtual            destination\n\
                    TCP 14:59  ESTABLISHED 198.51.100.7:40000 203.0.113.10:80    192.0.2.11:80\n\
                    TCP 01:59  TIME_WAIT   198.51.100.8:40001 203.0.113.10:80    192.0.2.11:80\n\
                    TCP 180:03 NONE        198.51.100.9:0     203.0.113.10:80    192.0.2.11:80\n";
    assert_eq!(d.ok(&["-Lnc"]), expected);
    assert_eq!(d.ok(&["conns", "-t", "203.0.113.10:80"]), expected);
    let json: Vec<ConnEntry> = serde_json::from_str(&d.ok(&["-Lnc", "--json"])).unwrap();
    assert_eq!(json.len(), 3);
}

#[test]
fn weights_events_and_json() {
    let d = Daemon::start("weights");
    assert_eq!(
        d.ok(&[
            "set-weight",
            "-t",
            "203.0.113.10:80",
            "-r",
            "192.0.2.12:80",
            "0"
        ]),
        "tcp 203.0.113.10:80 192.0.2.12:80 weight 1 -> 0\n"
    );
    // ipvsadm's form is silent and may restate the (same) method.
    assert_eq!(
        d.ok(&[
            "-e",
            "-t",
            "203.0.113.10:80",
            "-r",
            "192.0.2.12:80",
            "-m",
            "-w",
            "5"
        ]),
        ""
    );
    let e = fails(
        &d.run(&[
            "-e",
            "-t",
            "203.0.113.10:80",
            "-r",
            "192.0.2.12:80",
            "-g",
            "-w",
            "5",
        ]),
        1,
    );
    assert_eq!(
        e,
        "lvsctl: 192.0.2.12:80 in tcp 203.0.113.10:80 forwards by Masq (nat); lvsctl cannot \
         change the forwarding method\n"
    );
    assert_eq!(
        d.ok(&["events"]),
        "1 2026-08-13T11:11:13.000Z lvsd 9.8.7 started\n\
         2 2026-08-13T11:11:14.000Z weight tcp 203.0.113.10:80 192.0.2.12:80 1 -> 0 by root (uid 0) pid 4242\n\
         3 2026-08-13T11:11:15.000Z weight tcp 203.0.113.10:80 192.0.2.12:80 0 -> 5 by root (uid 0) pid 4242\n"
    );
    let events: Vec<Event> =
        serde_json::from_str(&d.ok(&["events", "--json", "--since", "2"])).unwrap();
    assert_eq!(events.len(), 1);
    assert!(matches!(
        events[0].kind,
        EventKind::WeightChanged { old: 0, new: 5, .. }
    ));
    let services: Vec<ServiceInfo> = serde_json::from_str(&d.ok(&["--json", "-Ln"])).unwrap();
    assert_eq!(services, d.state.lock().unwrap().services);
    let change: WeightChange =
        serde_json::from_str(&d.ok(&["--json", "weight", "203.0.113.10:80", "192.0.2.11:80", "7"]))
            .unwrap();
    assert_eq!((change.old, change.new), (3, 7));
    assert_eq!(d.ok(&["-Z"]), "");
    assert_eq!(d.ok(&["zero", "-u", "203.0.113.10:53"]), "");
    assert_eq!(
        d.state.lock().unwrap().zeroed,
        [
            None,
            Some(ServiceKey::udp(Ipv4Addr::new(203, 0, 113, 10), 53))
        ]
    );
}

#[test]
fn decisions_and_simulate_explain() {
    let d = Daemon::start("decisions");
    let text = d.ok(&["decisions", "-t", "203.0.113.10:80", "--since", "1"]);
    assert_eq!(
        text,
        "2 2026-08-13T11:11:12.000Z tcp 203.0.113.10:80 198.51.100.7:40002 -> 192.0.2.11:80\n\
         \x20   wlc picked 192.0.2.11:80\n\
         \x20   0*256+0 / w3 < 0*256+1 / w2\n"
    );
    // Without -t: every service, merged by sequence number.
    let all: Vec<DecisionInfo> = serde_json::from_str(&d.ok(&["decisions", "--json"])).unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(
        d.ok(&[
            "simulate",
            "-t",
            "203.0.113.10:80",
            "--client",
            "198.51.100.7:1234"
        ]),
        "tcp 203.0.113.10:80 198.51.100.7:1234 -> none (no real server available: it would be dropped)\n\
         \x20   every real server has weight 0\n"
    );
}

#[test]
fn drain_wait_prints_progress_until_empty() {
    let d = Daemon::start("drain");
    d.state.lock().unwrap().drain_left = 3;
    let out = d.ok(&[
        "drain",
        "203.0.113.10:80",
        "192.0.2.11:80",
        "--wait",
        "--interval",
        "0.05",
    ]);
    assert_eq!(
        out,
        "tcp 203.0.113.10:80 192.0.2.11:80 draining (weight was 3): 3 connections left (active 0, inactive 3, persistent 0)\n\
         tcp 203.0.113.10:80 192.0.2.11:80 draining (weight was 3): 2 connections left (active 0, inactive 2, persistent 0)\n\
         tcp 203.0.113.10:80 192.0.2.11:80 draining (weight was 3): 1 connections left (active 0, inactive 1, persistent 0)\n\
         tcp 203.0.113.10:80 192.0.2.11:80 drained (weight was 3): no connections left (persistent 0)\n"
    );
    assert_eq!(
        d.ok(&["undrain", "-t", "203.0.113.10:80", "-r", "192.0.2.11:80"]),
        "tcp 203.0.113.10:80 192.0.2.11:80 weight 0 -> 3\n"
    );
    let e = fails(&d.run(&["undrain", "203.0.113.10:80", "192.0.2.11:80"]), 1);
    assert_eq!(
        e,
        "lvsctl: real server 192.0.2.11:80 in virtual service tcp 203.0.113.10:80 is not drained\n"
    );
}

#[test]
fn kill_save_and_service_edits_print_one_line() {
    let d = Daemon::start("kill");
    assert_eq!(
        d.ok(&[
            "kill-conn",
            "-t",
            "203.0.113.10:80",
            "--client",
            "198.51.100.7:40000"
        ]),
        "removed connection tcp 198.51.100.7:40000 -> 203.0.113.10:80 -> 192.0.2.11:80 \
         (ESTABLISHED)\n"
    );
    let json = d.ok(&[
        "--json",
        "kill-conn",
        "203.0.113.10:80",
        "--client",
        "198.51.100.7:40000",
    ]);
    let e: ConnEntry = serde_json::from_str(&json).unwrap();
    assert_eq!(e.state, "ESTABLISHED");
    let e = fails(
        &d.run(&[
            "kill-conn",
            "-t",
            "203.0.113.10:80",
            "--client",
            "198.51.100.7:1",
        ]),
        1,
    );
    assert_eq!(
        e,
        "lvsctl: no connection tcp 198.51.100.7:1 -> 203.0.113.10:80 in the connection table\n"
    );
    let e = fails(
        &d.run(&["kill-template", "-t", "203.0.113.10:80", "--client", "x"]),
        2,
    );
    assert!(e.contains("--client `x` is not an IP address"), "{e}");
    let e = fails(
        &d.run(&[
            "kill-template",
            "-t",
            "203.0.113.10:80",
            "--client",
            "198.51.100.0",
        ]),
        1,
    );
    assert_eq!(
        e,
        "lvsctl: no template tcp 203.0.113.10:80 client 198.51.100.0 in the connection table\n"
    );
    let e = fails(&d.run(&["save-config", "/etc/lvsd.toml"]), 1);
    assert_eq!(
        e,
        "lvsctl: cannot save the configuration: /etc/lvsd.toml: the fake daemon saves nothing\n"
    );
    let e = fails(
        &d.run(&["add-service", "-t", "203.0.113.10:80", "-s", "wlc"]),
        1,
    );
    assert_eq!(
        e,
        "lvsctl: virtual service tcp 203.0.113.10:80 already exists\n"
    );
    let e = fails(
        &d.run(&["add-service", "-t", "203.0.113.10:80", "-s", "nope"]),
        2,
    );
    assert!(e.starts_with("lvsctl: -s nope: "), "{e}");
    let e = fails(
        &d.run(&[
            "add-server",
            "203.0.113.10:80",
            "192.0.2.11:80",
            "-w",
            "70000",
        ]),
        2,
    );
    assert_eq!(e, "lvsctl: weight 70000 out of range 0..=65535\n");
    let e = fails(
        &d.run(&[
            "remove-server",
            "-t",
            "203.0.113.10:80",
            "-r",
            "192.0.2.99:80",
        ]),
        1,
    );
    assert_eq!(
        e,
        "lvsctl: no real server 192.0.2.99:80 in virtual service tcp 203.0.113.10:80\n"
    );
}

#[test]
fn errors_are_one_line_with_the_right_status() {
    let d = Daemon::start("errors");
    let e = fails(&d.run(&["-Ln", "-t", "203.0.113.99:80"]), 1);
    assert_eq!(e, "lvsctl: no virtual service tcp 203.0.113.99:80\n");
    let e = fails(
        &d.run(&["weight", "203.0.113.10:80", "192.0.2.99:80", "1"]),
        1,
    );
    assert_eq!(
        e,
        "lvsctl: no real server 192.0.2.99:80 in virtual service tcp 203.0.113.10:80\n"
    );
    let e = fails(
        &d.run(&["weight", "203.0.113.10:80", "192.0.2.11:80", "65536"]),
        2,
    );
    assert_eq!(e, "lvsctl: weight 65536 out of range 0..=65535\n");
    let e = fails(&d.run(&["weight", "203.0.113.10", "192.0.2.11:80", "1"]), 2);
    assert!(
        e.starts_with("lvsctl: `203.0.113.10` is not a virtual service VIP:PORT"),
        "{e}"
    );
    let e = fails(&d.run(&["-A", "-t", "203.0.113.10:80"]), 2);
    assert!(e.contains("-A (add-service) is not available"), "{e}");
    fails(&d.run(&["list", "--no-such-flag"]), 2);
    let missing = d.dir.join("missing.sock");
    let out = Command::new(LVSCTL)
        .env("LVSD_SOCKET", &missing)
        .arg("-Ln")
        .output()
        .unwrap();
    assert_eq!(
        fails(&out, 1),
        format!(
            "lvsctl: lvsd is not running at {} (no daemon listens on that socket)\n",
            missing.display()
        )
    );
}

/// Adds the lab's IPv6 web service (NAT66, persistent per /64) and two of its connections
/// to a fake daemon.
fn add_ipv6(d: &Daemon) {
    let mut st = d.state.lock().unwrap();
    let mut a = rs(11, 3, 2, 16);
    a.addr = ip("2001:db8:b::11");
    let mut b = rs(12, 1, 0, 3);
    b.addr = ip("2001:db8:b::12");
    b.forwarding = Forwarding::Tun;
    st.services.push(ServiceInfo {
        protocol: Protocol::Tcp,
        vip: ip("2001:db8:f::10"),
        port: 80,
        scheduler: SchedulerKind::Wrr,
        flags: vec![],
        persistence: Some(PersistenceInfo {
            prefix6: 64,
            ..PersistenceInfo::new(300)
        }),
        one_packet: false,
        counters: Counters::default(),
        rates: Rates::default(),
        real_servers: vec![b, a],
        quorum: None,
    });
    st.conns.extend([
        conn_to(
            "[2001:db8:c::10]:40000",
            "[2001:db8:f::10]:80",
            "[2001:db8:b::11]:80",
            "ESTABLISHED",
            899,
            4,
        ),
        conn_to(
            "[2001:db8:c::]:0",
            "[2001:db8:f::10]:80",
            "[2001:db8:b::11]:80",
            "NONE",
            299,
            5,
        ),
    ]);
}

#[test]
fn ipv6_services_list_edit_and_kill_like_ipvsadm() {
    let d = Daemon::start("ipv6");
    add_ipv6(&d);
    // ipvsadm: IPv6 in brackets, never truncated, after the IPv4 services; the mask of an
    // IPv6 service is a prefix length.
    assert_eq!(
        d.ok(&["-Ln"]),
        "IP Virtual Server version 9.8.7 (size=5)\n\
         Prot LocalAddress:Port Scheduler Flags\n\
         \x20 -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
         TCP  203.0.113.10:80 wlc\n\
         \x20 -> 192.0.2.11:80                Masq    3      2          16        \n\
         \x20 -> 192.0.2.12:80                Masq    1      0          3         \n\
         UDP  203.0.113.10:53 sh (sh-fallback,sh-port) persistent 300 mask 255.255.255.0 ops\n\
         TCP  [2001:db8:f::10]:80 wrr persistent 300 mask 64\n\
         \x20 -> [2001:db8:b::11]:80          Masq    3      2          16        \n\
         \x20 -> [2001:db8:b::12]:80          Tunnel  1      0          3         \n"
    );
    assert_eq!(
        d.ok(&["-Ln", "--stats", "-t", "[2001:db8:f::10]:80"]),
        "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n\
         \x20 -> RemoteAddress:Port\n\
         TCP  [2001:db8:f::10]:80                 0        0        0        0        0\n\
         \x20 -> [2001:db8:b::11]:80                18     1234     1000  123456K     9999\n\
         \x20 -> [2001:db8:b::12]:80                 3     1234     1000  123456K     9999\n"
    );
    let expected = "IPVS connection entries\n\
                    pro expire state       source             virtual            destination\n\
                    TCP 14:59  ESTABLISHED [2001:db8:c::10]:40000 [2001:db8:f::10]:80 [2001:db8:b::11]:80\n\
                    TCP 04:59  NONE        [2001:db8:c::]:0   [2001:db8:f::10]:80 [2001:db8:b::11]:80\n";
    assert_eq!(d.ok(&["-Lnc", "-t", "[2001:db8:f::10]:80"]), expected);
    assert_eq!(d.ok(&["conns", "--client", "2001:db8:c::/64"]), expected);
    assert_eq!(
        d.ok(&[
            "set-weight",
            "-t",
            "[2001:db8:f::10]:80",
            "-r",
            "[2001:db8:b::11]:80",
            "0"
        ]),
        "tcp [2001:db8:f::10]:80 [2001:db8:b::11]:80 weight 3 -> 0\n"
    );
    // The positional forms take brackets too.
    assert_eq!(
        d.ok(&[
            "weight",
            "tcp:[2001:db8:f::10]:80",
            "[2001:db8:b::11]:80",
            "4"
        ]),
        "tcp [2001:db8:f::10]:80 [2001:db8:b::11]:80 weight 0 -> 4\n"
    );
    assert!(
        d.ok(&["events"])
            .contains("weight tcp [2001:db8:f::10]:80 [2001:db8:b::11]:80 0 -> 4 by root"),
    );
    assert_eq!(
        d.ok(&[
            "kill-conn",
            "-t",
            "[2001:db8:f::10]:80",
            "--client",
            "[2001:db8:c::10]:40000"
        ]),
        "removed connection tcp [2001:db8:c::10]:40000 -> [2001:db8:f::10]:80 -> \
         [2001:db8:b::11]:80 (ESTABLISHED)\n"
    );
    let e = fails(
        &d.run(&[
            "kill-template",
            "-t",
            "[2001:db8:f::10]:80",
            "--client",
            "2001:db8:c::",
        ]),
        1,
    );
    assert_eq!(
        e,
        "lvsctl: no template tcp [2001:db8:f::10]:80 client 2001:db8:c:: in the connection table\n"
    );
    assert_eq!(
        d.ok(&["decisions", "-t", "[2001:db8:f::10]:80", "--since", "1"]),
        "2 2026-08-13T11:11:12.000Z tcp [2001:db8:f::10]:80 [2001:db8:c::10]:40002 -> \
         [2001:db8:b::11]:80\n\
         \x20   wlc picked 192.0.2.11:80\n\
         \x20   0*256+0 / w3 < 0*256+1 / w2\n"
    );
    assert_eq!(
        d.ok(&[
            "simulate",
            "tcp:[2001:db8:f::10]:80",
            "--client",
            "[2001:db8:c::10]:1234"
        ]),
        "tcp [2001:db8:f::10]:80 [2001:db8:c::10]:1234 -> none (no real server available: it \
         would be dropped)\n\
         \x20   every real server has weight 0\n"
    );
    // add-service: -M is a prefix length for IPv6, a netmask for IPv4 (as ipvsadm).
    let e = fails(
        &d.run(&[
            "add-service",
            "-t",
            "[2001:db8:f::20]:443",
            "-s",
            "sh",
            "-m",
            "-p",
            "600",
            "-M",
            "48",
        ]),
        1,
    );
    assert_eq!(
        e,
        "lvsctl: virtual service tcp [2001:db8:f::20]:443 already exists\n"
    );
    let e = fails(
        &d.run(&[
            "add-service",
            "-t",
            "[2001:db8:f::20]:443",
            "-p",
            "600",
            "-M",
            "255.255.0.0",
        ]),
        2,
    );
    assert!(e.contains("prefix length 1..=128"), "{e}");
    let e = fails(
        &d.run(&[
            "add-service",
            "-t",
            "203.0.113.20:443",
            "-p",
            "600",
            "-M",
            "24",
        ]),
        2,
    );
    assert!(e.contains("netmask"), "{e}");
    fails(
        &d.run(&[
            "add-server",
            "[2001:db8:f::20]:443",
            "[2001:db8:b::14]:443",
            "-m",
            "-w",
            "2",
        ]),
        1,
    );
    let added = d.state.lock().unwrap().added.clone();
    let (svc, _) = &added[0];
    assert_eq!(svc.service, ServiceKey::tcp(ip("2001:db8:f::20"), 443));
    assert_eq!(svc.scheduler, SchedulerKind::Sh);
    assert_eq!(svc.forwarding, Forwarding::Nat);
    let p = svc.persistence.unwrap();
    assert_eq!((p.timeout_secs, p.prefix6), (600, 48));
    let (svc, r) = &added[1];
    assert_eq!(svc.service, ServiceKey::tcp(ip("2001:db8:f::20"), 443));
    let r = r.unwrap();
    assert_eq!(r.real_server, RealServerKey::new(ip("2001:db8:b::14"), 443));
    assert_eq!((r.weight, r.forwarding), (2, Some(Forwarding::Nat)));
    // Without brackets an IPv6 address is refused, saying why.
    let e = fails(&d.run(&["-Ln", "-t", "2001:db8:f::10:80"]), 2);
    assert!(e.contains("brackets"), "{e}");
    // JSON carries the addresses as strings, IPv4 as before.
    let services: Vec<ServiceInfo> = serde_json::from_str(&d.ok(&["--json", "-Ln"])).unwrap();
    assert_eq!(services, d.state.lock().unwrap().services);
    let json = d.ok(&["--json", "-Ln", "-t", "[2001:db8:f::10]:80"]);
    assert!(json.contains("\"vip\": \"2001:db8:f::10\""), "{json}");
}

fn wait_for_lines(path: &Path, n: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.lines().count() >= n || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn events_follow_sees_each_event_once_and_ends_on_ctrl_c() {
    let d = Daemon::start("follow");
    let out_path = d.dir.join("follow.out");
    let mut child = Command::new(LVSCTL)
        .arg("--socket")
        .arg(&d.socket)
        .args(["events", "--follow", "--json", "--interval", "0.05"])
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(wait_for_lines(&out_path, 1).lines().count(), 1);
    for w in [4, 5] {
        d.ok(&["weight", "203.0.113.10:80", "192.0.2.11:80", &w.to_string()]);
    }
    let text = wait_for_lines(&out_path, 3);
    // Ctrl-C (SIGINT to the process) ends it with status 0.
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let seqs: Vec<u64> = text
        .lines()
        .map(|l| serde_json::from_str::<Event>(l).unwrap().seq)
        .collect();
    assert_eq!(seqs, [1, 2, 3]);
}

/// `lvsctl --connect tls://...` against the fake lvsd behind a mutual-TLS listener on
/// 127.0.0.1:0, with certificates from rcgen.
mod tls {
    use std::net::SocketAddr;

    use lvs_proto::tls::{certs_from_pem, key_from_pem, provider, roots_from_pem};
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
        KeyUsagePurpose,
    };

    use super::*;

    fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
    }

    /// (certificate PEM, key PEM) of a leaf signed by `ca`.
    fn leaf(ca: &CertifiedIssuer<'static, KeyPair>, cn: &str, dns: &[&str]) -> (String, String) {
        let names: Vec<String> = dns.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, ca).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    struct TlsDaemon {
        dir: PathBuf,
        addr: SocketAddr,
    }

    impl TlsDaemon {
        /// The fake on a TLS listener; the PKI's files in its directory: `ca.pem` (signed
        /// the daemon's and `client.pem`/`client.key`), `other-ca.pem`.
        fn start(name: &str) -> TlsDaemon {
            let dir =
                std::env::temp_dir().join(format!("lvsctl-tls-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let ca = ca("lvs test CA");
            let (server_cert, server_key) = leaf(&ca, "lvsd", &["localhost"]);
            let (client_cert, client_key) = leaf(&ca, "ops-admin", &[]);
            for (file, text) in [
                ("ca.pem", ca.pem()),
                ("client.pem", client_cert),
                ("client.key", client_key),
                ("other-ca.pem", self::ca("another CA").pem()),
            ] {
                std::fs::write(dir.join(file), text).unwrap();
            }
            let roots = roots_from_pem(ca.pem().as_bytes(), "CA").unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            )
            .build()
            .unwrap();
            let config = rustls::ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_client_cert_verifier(verifier)
                .with_single_cert(
                    certs_from_pem(server_cert.as_bytes(), "cert").unwrap(),
                    key_from_pem(server_key.as_bytes(), "key").unwrap(),
                )
                .unwrap();
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
            let fake = Fake(Arc::new(Mutex::new(initial_state())));
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.set_nonblocking(true).unwrap();
            let addr = listener.local_addr().unwrap();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                    loop {
                        let Ok((stream, _)) = listener.accept().await else {
                            return;
                        };
                        let acceptor = acceptor.clone();
                        let fake = fake.clone();
                        tokio::spawn(async move {
                            let Ok(stream) = acceptor.accept(stream).await else {
                                return;
                            };
                            let channel =
                                BaseChannel::with_defaults(transport::server_transport(stream));
                            channel
                                .execute(fake.serve())
                                .for_each(|f| async {
                                    tokio::spawn(f);
                                })
                                .await;
                        });
                    }
                });
            });
            TlsDaemon { dir, addr }
        }

        /// lvsctl with `--connect` and the flags given (`FILE` names are in the PKI dir).
        fn run(&self, flags: &[(&str, &str)], args: &[&str]) -> Output {
            let mut cmd = Command::new(LVSCTL);
            cmd.env_remove("LVSD_SOCKET")
                .env_remove("LVSD_CONNECT")
                .env_remove("LVSD_CA")
                .env_remove("LVSD_CERT")
                .env_remove("LVSD_KEY")
                .arg("--connect")
                .arg(format!("tls://{}", self.addr))
                .args(["--tls-name", "localhost"]);
            for (flag, file) in flags {
                cmd.arg(flag).arg(self.dir.join(file));
            }
            cmd.args(args).output().unwrap()
        }
    }

    impl Drop for TlsDaemon {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    const GOOD: &[(&str, &str)] = &[
        ("--ca", "ca.pem"),
        ("--cert", "client.pem"),
        ("--key", "client.key"),
    ];

    #[test]
    fn lvsctl_over_mutual_tls() {
        let d = TlsDaemon::start("ok");
        let local = Daemon::start("tls-twin");
        let out = d.run(GOOD, &["-Ln"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), local.ok(&["-Ln"]));
        let out = d.run(GOOD, &["weight", "203.0.113.10:80", "192.0.2.11:80", "7"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn lvsctl_tls_errors() {
        let d = TlsDaemon::start("errors");
        // A missing flag is a usage error.
        let m = fails(
            &d.run(&[("--ca", "ca.pem"), ("--key", "client.key")], &["-Ln"]),
            2,
        );
        assert!(m.contains("needs --cert FILE as well"), "{m}");
        // A missing file is named.
        let m = fails(
            &d.run(
                &[
                    ("--ca", "ca.pem"),
                    ("--cert", "client.pem"),
                    ("--key", "nope.key"),
                ],
                &["-Ln"],
            ),
            1,
        );
        assert!(
            m.contains("cannot read --key ") && m.contains("nope.key"),
            "{m}"
        );
        // A daemon whose certificate another CA signed is not trusted.
        let m = fails(
            &d.run(
                &[
                    ("--ca", "other-ca.pem"),
                    ("--cert", "client.pem"),
                    ("--key", "client.key"),
                ],
                &["-Ln"],
            ),
            1,
        );
        assert!(
            m.contains(&format!("TLS handshake with lvsd at {} failed", d.addr)),
            "{m}"
        );
    }
}
