//! The real `lvs-tui` binary in a real terminal (a private tmux server, 80x24) against an
//! in-process fake lvsd (the `LvsControl` trait served on a Unix socket): keys change a
//! weight and start a drain (checked in the fake's state), the director goes away (banner)
//! and comes back (reconnect), `q` quits with status 0. No root needed; skipped without
//! tmux. (The same against a real lvsd in a lab is `tests/tests/console.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "console_fixtures.rs"]
mod fixtures;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use lvs_proto::tarpc::context::Context;
use lvs_proto::tarpc::server::{BaseChannel, Channel};
use lvs_proto::*;

const LVS_TUI: &str = env!("CARGO_BIN_EXE_lvs-tui");

#[derive(Debug, Default)]
struct State {
    services: Vec<ServiceInfo>,
    calls: Vec<String>,
}

#[derive(Debug, Clone)]
struct Fake(Arc<Mutex<State>>);

impl Fake {
    fn rs<T>(
        &self,
        service: ServiceKey,
        real_server: RealServerKey,
        f: impl FnOnce(&mut RealServerInfo) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let mut st = self.0.lock().unwrap();
        let svc = st
            .services
            .iter_mut()
            .find(|s| s.key() == service)
            .ok_or(ApiError::NoSuchService { service })?;
        let rs = svc
            .real_servers
            .iter_mut()
            .find(|r| r.key() == real_server)
            .ok_or(ApiError::NoSuchRealServer {
                service,
                real_server,
            })?;
        f(rs)
    }

    fn log(&self, call: String) {
        self.0.lock().unwrap().calls.push(call);
    }
}

fn unsupported<T>() -> Result<T, ApiError> {
    Err(ApiError::InvalidArgument {
        message: "not in this fake".into(),
    })
}

impl LvsControl for Fake {
    async fn version(self, _: Context) -> VersionInfo {
        VersionInfo {
            daemon: "0.1.0".into(),
            api: API_LEVEL,
            pid: 4242,
            started_unix_ms: 0,
        }
    }

    async fn whoami(self, _: Context) -> PeerInfo {
        PeerInfo {
            actor: Actor {
                uid: 0,
                gid: 0,
                pid: None,
                user: Some("root".into()),
                tls: None,
            },
            role: Role::Admin,
        }
    }

    async fn services(self, _: Context) -> Result<Vec<ServiceInfo>, ApiError> {
        Ok(self.0.lock().unwrap().services.clone())
    }

    async fn set_weight(
        self,
        _: Context,
        service: ServiceKey,
        real_server: RealServerKey,
        weight: u32,
    ) -> Result<WeightChange, ApiError> {
        self.log(format!("set_weight {real_server} {weight}"));
        self.rs(service, real_server, |rs| {
            let old = rs.weight;
            rs.weight = weight;
            rs.drained_from = None;
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
        self.log(format!("drain {real_server}"));
        self.rs(service, real_server, |rs| {
            rs.drained_from = rs.drained_from.or(Some(rs.weight));
            rs.weight = 0;
            Ok(DrainInfo {
                service,
                real_server,
                weight_before: rs.drained_from.unwrap_or(0),
                active: rs.active,
                inactive: rs.inactive,
                persistent: 0,
                connections_left: u64::from(rs.active + rs.inactive),
            })
        })
    }

    async fn drain_status(
        self,
        _: Context,
        service: ServiceKey,
        real_server: RealServerKey,
    ) -> Result<DrainInfo, ApiError> {
        self.rs(service, real_server, |rs| match rs.drained_from {
            Some(w) => Ok(DrainInfo {
                service,
                real_server,
                weight_before: w,
                active: rs.active,
                inactive: rs.inactive,
                persistent: 0,
                connections_left: u64::from(rs.active + rs.inactive),
            }),
            None => Err(ApiError::NotDrained {
                service,
                real_server,
            }),
        })
    }

    async fn undrain(
        self,
        _: Context,
        service: ServiceKey,
        real_server: RealServerKey,
    ) -> Result<WeightChange, ApiError> {
        self.log(format!("undrain {real_server}"));
        self.rs(service, real_server, |rs| match rs.drained_from.take() {
            Some(w) => {
                rs.weight = w;
                Ok(WeightChange {
                    service,
                    real_server,
                    old: 0,
                    new: w,
                })
            }
            None => Err(ApiError::NotDrained {
                service,
                real_server,
            }),
        })
    }

    async fn connections(self, _: Context, q: ConnQuery) -> Result<ConnPage, ApiError> {
        Ok(fixtures::conn_page(&q, 5000))
    }

    async fn decisions_since(
        self,
        _: Context,
        _service: ServiceKey,
        _since: u64,
    ) -> Result<Vec<DecisionInfo>, ApiError> {
        Ok(Vec::new())
    }

    async fn simulate(self, _: Context, _flow: FlowSpec) -> Result<SimulateInfo, ApiError> {
        unsupported()
    }

    async fn events_since(self, _: Context, since: u64) -> Result<Vec<Event>, ApiError> {
        Ok(fixtures::events()
            .into_iter()
            .filter(|e| e.seq > since)
            .collect())
    }

    async fn zero_counters(self, _: Context, _s: Option<ServiceKey>) -> Result<(), ApiError> {
        unsupported()
    }

    async fn kill_connection(self, _: Context, _c: ConnKey) -> Result<ConnEntry, ApiError> {
        unsupported()
    }

    async fn kill_template(self, _: Context, _t: TemplateKey) -> Result<ConnEntry, ApiError> {
        unsupported()
    }

    async fn save_config(self, _: Context, _p: String) -> Result<SavedConfig, ApiError> {
        unsupported()
    }

    async fn topology(self, _: Context) -> Result<Topology, ApiError> {
        Ok(fixtures::topology(&self.0.lock().unwrap().services))
    }

    async fn add_service(self, _: Context, _s: NewService) -> Result<(), ApiError> {
        unsupported()
    }

    async fn remove_service(self, _: Context, _s: ServiceKey) -> Result<(), ApiError> {
        unsupported()
    }

    async fn add_real_server(
        self,
        _: Context,
        _s: ServiceKey,
        _r: NewRealServer,
    ) -> Result<(), ApiError> {
        unsupported()
    }

    async fn remove_real_server(
        self,
        _: Context,
        _s: ServiceKey,
        real_server: RealServerKey,
    ) -> Result<(), ApiError> {
        self.log(format!("remove {real_server}"));
        Ok(())
    }

    async fn vrrp(self, _: Context) -> Result<Vec<VrrpInstanceInfo>, ApiError> {
        Ok(Vec::new())
    }
}

/// The fake serving on `socket` until stopped (stopping drops every connection).
struct Server {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(socket: &Path, state: Arc<Mutex<State>>) -> Server {
        let _ = std::fs::remove_file(socket);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let path = socket.to_path_buf();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::UnixListener::bind(&path).unwrap();
                ready_tx.send(()).unwrap();
                let fake = Fake(state);
                let accept = async {
                    loop {
                        let Ok((stream, _)) = listener.accept().await else {
                            return;
                        };
                        let channel =
                            BaseChannel::with_defaults(transport::server_transport(stream));
                        tokio::spawn(channel.execute(fake.clone().serve()).for_each(|f| async {
                            tokio::spawn(f);
                        }));
                    }
                };
                tokio::select! {
                    () = accept => {}
                    _ = stop_rx => {}
                }
            });
            // Dropping the runtime ends every connection task: clients see EOF.
        });
        ready_rx.recv().unwrap();
        Server {
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.halt();
    }
}

/// A private tmux server running one pane.
struct Tmux {
    name: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.name)
            .args(args)
            .output()
            .unwrap()
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "console"];
        args.extend_from_slice(keys);
        let out = self.run(&args);
        assert!(out.status.success(), "send-keys: {out:?}");
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "console"]).stdout)
            .into_owned()
    }

    fn wait(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if ok(&s) {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "waited 10 s for {what}; screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

fn wait_state(state: &Arc<Mutex<State>>, what: &str, ok: impl Fn(&State) -> bool) {
    let start = Instant::now();
    while !ok(&state.lock().unwrap()) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the fake never saw {what}: {:?}",
            state.lock().unwrap().calls
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn lab_services() -> Vec<ServiceInfo> {
    let mut web = fixtures::services().remove(0);
    web.quorum = None;
    web.real_servers = (11..=13)
        .map(|n| {
            let mut r = fixtures::rs(n, 80, 1, Forwarding::Nat);
            r.active = 3;
            r
        })
        .collect();
    vec![web]
}

#[test]
fn binary_edits_drains_survives_a_lost_director_and_quits() {
    if Command::new("tmux").arg("-V").output().is_err() {
        println!("SKIP: tmux is not installed");
        return;
    }
    let dir = std::env::temp_dir().join(format!("lvs-tui-tty-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("lvsd.sock");
    let log = dir.join("lvs-tui.log");
    let state = Arc::new(Mutex::new(State {
        services: lab_services(),
        calls: Vec::new(),
    }));
    let server = Server::start(&socket, Arc::clone(&state));

    let tmux = Tmux {
        name: format!("lvs-tui-test-{}", std::process::id()),
    };
    let cmd = format!(
        "env HOME={home} XDG_CONFIG_HOME={home} TERM=xterm-256color {bin} --socket {sock} \
         --interval 300ms --log-file {log}; echo lvs-tui exited with status $?; sleep 60",
        home = dir.display(),
        bin = LVS_TUI,
        sock = socket.display(),
        log = log.display(),
    );
    let out = tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "console",
        "-x",
        "80",
        "-y",
        "24",
        &cmd,
    ]);
    assert!(out.status.success(), "tmux new-session: {out:?}");
    // An Esc followed at once by a key is Alt+key to a terminal: no grouping by tmux, and
    // a pause after each Esc below, as a person's typing has.
    let _ = tmux.run(&["set-option", "-s", "escape-time", "0"]);

    tmux.keys(&["2"]);
    tmux.wait("the three real servers", |s| {
        (11..=13).all(|n| s.contains(&format!("-> 192.0.2.{n}:80")))
    });

    // + asks first; y applies.
    tmux.keys(&["+"]);
    let screen = tmux.wait("the weight confirmation", |s| s.contains("1 → 2"));
    assert!(
        screen
            .lines()
            .any(|l| l.contains("weight") && l.contains("192.0.2.11:80")),
        "{screen}"
    );
    assert!(state.lock().unwrap().calls.is_empty(), "changed before y");
    tmux.keys(&["y"]);
    wait_state(&state, "set_weight", |st| {
        st.calls == ["set_weight 192.0.2.11:80 2"]
    });
    tmux.wait("the new weight on screen", |s| {
        s.lines()
            .any(|l| l.contains("-> 192.0.2.11:80") && l.contains(" 2 "))
    });

    // w types a weight: out of range is refused in the dialog.
    tmux.keys(&["w", "7", "0", "0", "0", "0", "Enter"]);
    tmux.wait("the range error", |s| s.contains("0..=65535"));
    tmux.keys(&["Escape"]);
    std::thread::sleep(Duration::from_millis(150));

    // d drains after a confirmation; the progress follows.
    tmux.keys(&["d"]);
    tmux.wait("the drain confirmation", |s| {
        s.lines()
            .any(|l| l.contains("drain") && l.contains("192.0.2.11:80"))
    });
    tmux.keys(&["y"]);
    wait_state(&state, "drain", |st| {
        st.calls.last().map(String::as_str) == Some("drain 192.0.2.11:80")
    });
    tmux.wait("the drain progress", |s| s.contains("Drain progress"));
    // Its connections end: the progress reaches zero.
    state.lock().unwrap().services[0].real_servers[0].active = 0;
    tmux.wait("the drain complete", |s| s.contains("0 connections left"));
    tmux.keys(&["Escape"]);
    std::thread::sleep(Duration::from_millis(150));
    tmux.wait("the drained row", |s| {
        s.lines()
            .any(|l| l.contains("-> 192.0.2.11:80") && l.contains("DRAIN"))
    });

    // The director goes away: a banner, the rest keeps working; it comes back.
    server.stop();
    tmux.wait("the unreachable banner", |s| s.contains("lvsd unreachable"));
    tmux.keys(&["6"]);
    tmux.wait("the events view", |s| s.contains("Kind"));
    let server = Server::start(&socket, Arc::clone(&state));
    tmux.wait("the reconnect", |s| !s.contains("unreachable"));

    // q quits with status 0, and the shell after it prints on the normal screen.
    tmux.keys(&["q"]);
    let screen = tmux.wait("lvs-tui to exit", |s| {
        s.contains("lvs-tui exited with status")
    });
    assert!(screen.contains("lvs-tui exited with status 0"), "{screen}");
    // The log went to its file, not the terminal.
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("connected"), "log: {text}");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn once_prints_the_ipvsadm_listing() {
    let dir = std::env::temp_dir().join(format!("lvs-tui-once-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let socket: PathBuf = dir.join("lvsd.sock");
    let state = Arc::new(Mutex::new(State {
        services: lab_services(),
        calls: Vec::new(),
    }));
    let server = Server::start(&socket, state);
    let out = Command::new(LVS_TUI)
        .arg("--once")
        .arg("--config")
        .arg("/dev/null")
        .arg("--socket")
        .arg(&socket)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "IP Virtual Server version 0.1.0 (size=5000)\n\
         Prot LocalAddress:Port Scheduler Flags\n  \
         -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
         TCP  203.0.113.10:80 wrr\n  \
         -> 192.0.2.11:80                Masq    1      3          0         \n  \
         -> 192.0.2.12:80                Masq    1      3          0         \n  \
         -> 192.0.2.13:80                Masq    1      3          0         \n"
    );
    drop(server);
    // Unreachable: one line naming the socket, status 1.
    let out = Command::new(LVS_TUI)
        .args(["--once", "--config", "/dev/null", "--socket"])
        .arg(&socket)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("lvs-tui: lvsd ("), "{err}");
    // A bad settings file: status 2, naming the key.
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "theme = \"pink\"\n").unwrap();
    let out = Command::new(LVS_TUI)
        .arg("--once")
        .arg("--config")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("theme") && err.contains("pink"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
