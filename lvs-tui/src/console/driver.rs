//! The console's I/O: the terminal loop and one link per director.
//!
//! Invariants:
//! - Per director at most one request set is in flight: a connect, or one poll (all its
//!   RPCs issued together and joined). A tick that finds it busy skips it, so a slow
//!   director is polled less often, never piled up on.
//! - Every RPC carries a deadline ([`Driver::timeout`]); a poll whose services call fails
//!   on the transport or times out marks the link lost: the client is dropped, the app
//!   is told (banner) and the next connect waits a back-off (0.5 s doubling to 10 s).
//!   Messages from a link's earlier life (its `generation`) are ignored.
//! - Nothing here panics on what a director sends: errors become sentences for the status
//!   line ([`PollResult`]).
//! - Older daemons are asked only what their API level has (topology from 2, vrrp from 3):
//!   an unknown RPC would make an older daemon drop the connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossterm::event::{self, Event as TermEvent, KeyEventKind};
use futures::future::join_all;
use lvs_proto::tarpc::client::RpcError;
use lvs_proto::tarpc::context;
use lvs_proto::{ApiError, ConnPage, ConnQuery, LvsControlClient, Role};
use tokio::sync::mpsc;

use super::app::{App, Call, Director, Effect, Outcome, PollPlan, PollResult, Snapshot};
use super::terminal::TerminalGuard;
use super::{Config, ConsoleError, DirectorSpec, ui};

/// Wall-clock milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// What the spawned tasks report.
#[derive(Debug)]
enum Msg {
    Connected {
        director: usize,
        generation: u64,
        client: LvsControlClient,
        daemon: String,
        api: u32,
        role: Option<Role>,
    },
    ConnectFailed {
        director: usize,
        generation: u64,
        message: String,
    },
    Polled {
        director: usize,
        generation: u64,
        snapshot: Box<Snapshot>,
        lost: Option<String>,
    },
    Page {
        director: usize,
        query: ConnQuery,
        page: Result<ConnPage, String>,
    },
    Done {
        director: usize,
        call: Call,
        outcome: Result<Outcome, String>,
    },
}

#[derive(Debug)]
struct Link {
    spec: DirectorSpec,
    client: Option<LvsControlClient>,
    api: u32,
    busy: bool,
    next_at: Instant,
    backoff: Duration,
    generation: u64,
}

/// The links to every director.
#[derive(Debug)]
struct Driver {
    links: Vec<Link>,
    tx: mpsc::UnboundedSender<Msg>,
    interval: Duration,
    timeout: Duration,
}

impl Driver {
    fn new(specs: Vec<DirectorSpec>, tx: mpsc::UnboundedSender<Msg>, interval: Duration) -> Driver {
        let now = Instant::now();
        Driver {
            links: specs
                .into_iter()
                .map(|spec| Link {
                    spec,
                    client: None,
                    api: 0,
                    busy: false,
                    next_at: now,
                    backoff: BACKOFF_MIN,
                    generation: 0,
                })
                .collect(),
            tx,
            interval,
            timeout: Self::timeout_for(interval),
        }
    }

    /// Twice the interval, within 3..=10 s.
    fn timeout_for(interval: Duration) -> Duration {
        (interval * 2).clamp(Duration::from_secs(3), Duration::from_secs(10))
    }

    fn set_interval(&mut self, interval: Duration) {
        if interval != self.interval {
            self.interval = interval;
            self.timeout = Self::timeout_for(interval);
        }
    }

    /// Starts the connects and polls that are due.
    fn tick(&mut self, app: &App, now: Instant) {
        for (i, link) in self.links.iter_mut().enumerate() {
            if link.busy || now < link.next_at {
                continue;
            }
            link.busy = true;
            let tx = self.tx.clone();
            let generation = link.generation;
            let timeout = self.timeout;
            match &link.client {
                None => {
                    let target = link.spec.target.clone();
                    tokio::spawn(async move {
                        let msg =
                            match tokio::time::timeout(timeout, connect(&target, timeout)).await {
                                Ok(Ok((client, daemon, api, role))) => Msg::Connected {
                                    director: i,
                                    generation,
                                    client,
                                    daemon,
                                    api,
                                    role,
                                },
                                Ok(Err(message)) => Msg::ConnectFailed {
                                    director: i,
                                    generation,
                                    message,
                                },
                                Err(_) => Msg::ConnectFailed {
                                    director: i,
                                    generation,
                                    message: format!(
                                        "no answer from {} within {}",
                                        target.address(),
                                        super::app::duration_text(ms(timeout))
                                    ),
                                },
                            };
                        let _ = tx.send(msg);
                    });
                }
                Some(client) => {
                    link.next_at = now + self.interval;
                    let client = client.clone();
                    let plan = app.plan(i);
                    let api = link.api;
                    tokio::spawn(async move {
                        let msg = match tokio::time::timeout(
                            timeout + Duration::from_secs(1),
                            poll(&client, api, plan, timeout),
                        )
                        .await
                        {
                            Ok((snapshot, lost)) => Msg::Polled {
                                director: i,
                                generation,
                                snapshot: Box::new(snapshot),
                                lost,
                            },
                            Err(_) => Msg::Polled {
                                director: i,
                                generation,
                                snapshot: Box::default(),
                                lost: Some(format!(
                                    "no answer within {}",
                                    super::app::duration_text(ms(timeout))
                                )),
                            },
                        };
                        let _ = tx.send(msg);
                    });
                }
            }
        }
    }

    /// Runs an effect (quit is the loop's business).
    fn execute(&mut self, effect: Effect) {
        let timeout = self.timeout;
        match effect {
            Effect::Quit => {}
            Effect::PollNow => {
                let now = Instant::now();
                for l in &mut self.links {
                    l.next_at = now;
                }
            }
            Effect::FetchConnections { director, query } => {
                let tx = self.tx.clone();
                let Some(link) = self.links.get(director) else {
                    return;
                };
                let Some(client) = link.client.clone() else {
                    let _ = tx.send(Msg::Page {
                        director,
                        query,
                        page: Err(format!("{} is not connected", link.spec.name)),
                    });
                    return;
                };
                tokio::spawn(async move {
                    let page = answer(client.connections(ctx(timeout), query.clone()).await)
                        .map_err(|f| f.to_string());
                    let _ = tx.send(Msg::Page {
                        director,
                        query,
                        page,
                    });
                });
            }
            Effect::Call { director, call } => {
                let tx = self.tx.clone();
                let Some(link) = self.links.get(director) else {
                    return;
                };
                let Some(client) = link.client.clone() else {
                    let _ = tx.send(Msg::Done {
                        director,
                        call,
                        outcome: Err(format!(
                            "{} is unreachable: nothing was changed",
                            link.spec.address()
                        )),
                    });
                    return;
                };
                tracing::info!(director = %link.spec.name, ?call, "calling");
                tokio::spawn(async move {
                    let outcome = run_call(&client, &call, timeout).await;
                    let _ = tx.send(Msg::Done {
                        director,
                        call,
                        outcome,
                    });
                });
            }
        }
    }

    /// Takes a task's report; answers what the app should hear.
    fn absorb(&mut self, msg: Msg, now: Instant) -> Option<PollResult> {
        match msg {
            Msg::Connected {
                director,
                generation,
                client,
                daemon,
                api,
                role,
            } => {
                let link = self.links.get_mut(director)?;
                if link.generation != generation {
                    return None;
                }
                tracing::info!(director = %link.spec.name, %daemon, api, "connected");
                link.client = Some(client);
                link.api = api;
                link.busy = false;
                link.backoff = BACKOFF_MIN;
                link.next_at = now;
                Some(PollResult::Connected {
                    director,
                    daemon,
                    api,
                    role,
                })
            }
            Msg::ConnectFailed {
                director,
                generation,
                message,
            } => {
                let link = self.links.get_mut(director)?;
                if link.generation != generation {
                    return None;
                }
                link.busy = false;
                let wait = link.backoff;
                link.next_at = now + wait;
                link.backoff = (link.backoff * 2).min(BACKOFF_MAX);
                tracing::warn!(director = %link.spec.name, %message, "unreachable");
                Some(PollResult::Unreachable {
                    director,
                    message,
                    retry_in_ms: ms(wait),
                })
            }
            Msg::Polled {
                director,
                generation,
                snapshot,
                lost,
            } => {
                let link = self.links.get_mut(director)?;
                if link.generation != generation {
                    return None;
                }
                link.busy = false;
                match lost {
                    Some(message) => {
                        tracing::warn!(director = %link.spec.name, %message, "link lost");
                        link.client = None;
                        link.generation += 1;
                        let wait = link.backoff;
                        link.next_at = now + wait;
                        link.backoff = (link.backoff * 2).min(BACKOFF_MAX);
                        Some(PollResult::Unreachable {
                            director,
                            message,
                            retry_in_ms: ms(wait),
                        })
                    }
                    None => Some(PollResult::Snapshot { director, snapshot }),
                }
            }
            Msg::Page {
                director,
                query,
                page,
            } => Some(PollResult::Page {
                director,
                query,
                page,
            }),
            Msg::Done {
                director,
                call,
                outcome,
            } => {
                if let Some(link) = self.links.get_mut(director) {
                    tracing::info!(director = %link.spec.name, ?call, ?outcome, "call answered");
                    // Show the change's effects (counts, drain) without waiting a tick.
                    if link.client.is_some() {
                        link.next_at = now;
                    }
                }
                Some(PollResult::Done {
                    director,
                    call,
                    outcome,
                })
            }
        }
    }
}

impl DirectorSpec {
    fn address(&self) -> String {
        format!("{} ({})", self.name, self.target.address())
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn ctx(timeout: Duration) -> context::Context {
    let mut c = context::current();
    c.deadline = Instant::now() + timeout;
    c
}

/// An RPC's failure: the daemon's answer, or the transport's.
#[derive(Debug)]
enum Failure {
    Api(ApiError),
    Transport(RpcError),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Api(e) => write!(f, "{e}"),
            Failure::Transport(RpcError::DeadlineExceeded) => f.write_str("no answer in time"),
            Failure::Transport(e) => write!(f, "connection lost: {e}"),
        }
    }
}

fn answer<T>(r: Result<Result<T, ApiError>, RpcError>) -> Result<T, Failure> {
    match r {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Failure::Api(e)),
        Err(e) => Err(Failure::Transport(e)),
    }
}

async fn connect(
    target: &super::Target,
    timeout: Duration,
) -> Result<(LvsControlClient, String, u32, Option<Role>), String> {
    let client = target.connect().await?;
    let version = client
        .version(ctx(timeout))
        .await
        .map_err(|e| format!("no answer from {}: {e}", target.address()))?;
    let role = client.whoami(ctx(timeout)).await.ok().map(|p| p.role);
    Ok((client, version.daemon, version.api, role))
}

/// One poll: every part asked at once; `lost` when the link itself failed.
async fn poll(
    client: &LvsControlClient,
    api: u32,
    plan: PollPlan,
    timeout: Duration,
) -> (Snapshot, Option<String>) {
    let services = client.services(ctx(timeout));
    let topology = async {
        if api >= 2 {
            Some(answer(client.topology(ctx(timeout)).await))
        } else {
            None
        }
    };
    let vrrp = async {
        if api >= 3 {
            Some(answer(client.vrrp(ctx(timeout)).await))
        } else {
            None
        }
    };
    let events = client.events_since(ctx(timeout), plan.events_since);
    let decisions = join_all(plan.decisions.iter().map(|(k, since)| async move {
        (
            *k,
            answer(client.decisions_since(ctx(timeout), *k, *since).await),
        )
    }));
    let conns = async {
        match plan.connections {
            Some(q) => Some((q.clone(), answer(client.connections(ctx(timeout), q).await))),
            None => None,
        }
    };
    let drains = join_all(plan.drains.iter().map(|(s, r)| async move {
        (
            *s,
            *r,
            answer(client.drain_status(ctx(timeout), *s, *r).await),
        )
    }));
    let (services, topology, vrrp, events, decisions, conns, drains) =
        tokio::join!(services, topology, vrrp, events, decisions, conns, drains);
    let services = answer(services);
    let lost = match &services {
        Err(Failure::Transport(e)) => Some(match e {
            RpcError::DeadlineExceeded => format!(
                "no answer within {}",
                super::app::duration_text(ms(timeout))
            ),
            e => format!("connection lost: {e}"),
        }),
        _ => None,
    };
    let text = |f: Failure| f.to_string();
    let snapshot = Snapshot {
        services: Some(services.map_err(text)),
        topology: topology.map(|r| r.map_err(text)),
        vrrp: vrrp.map(|r| r.map_err(text)),
        events: Some(answer(events).map_err(text)),
        decisions: decisions
            .into_iter()
            .map(|(k, r)| (k, r.map_err(text)))
            .collect(),
        connections: conns.map(|(q, r)| (q, r.map_err(text))),
        drains: drains
            .into_iter()
            .filter_map(|(s, r, res)| match res {
                Ok(i) => Some((s, r, Ok(i))),
                Err(Failure::Api(e)) => Some((s, r, Err(e))),
                // A transport failure says nothing about the drain; the next poll asks again.
                Err(Failure::Transport(_)) => None,
            })
            .collect(),
    };
    (snapshot, lost)
}

async fn run_call(
    client: &LvsControlClient,
    call: &Call,
    timeout: Duration,
) -> Result<Outcome, String> {
    let r = match call.clone() {
        Call::SetWeight {
            service,
            real_server,
            weight,
        } => answer(
            client
                .set_weight(ctx(timeout), service, real_server, weight)
                .await,
        )
        .map(Outcome::Weight),
        Call::Drain {
            service,
            real_server,
        } => answer(client.drain(ctx(timeout), service, real_server).await).map(Outcome::Drain),
        Call::Undrain {
            service,
            real_server,
        } => answer(client.undrain(ctx(timeout), service, real_server).await).map(Outcome::Weight),
        Call::RemoveRealServer {
            service,
            real_server,
        } => answer(
            client
                .remove_real_server(ctx(timeout), service, real_server)
                .await,
        )
        .map(|()| Outcome::Removed),
        Call::KillConnection(k) => {
            answer(client.kill_connection(ctx(timeout), k).await).map(Outcome::Killed)
        }
        Call::KillTemplate(t) => {
            answer(client.kill_template(ctx(timeout), t).await).map(Outcome::Killed)
        }
    };
    r.map_err(|e| e.to_string())
}

/// Reads terminal events on a thread of its own (crossterm's reader blocks) until `stop`.
fn spawn_reader(tx: mpsc::UnboundedSender<std::io::Result<TermEvent>>, stop: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match event::poll(Duration::from_millis(100)) {
                Ok(false) => {}
                Ok(true) => {
                    let ev = event::read();
                    let failed = ev.is_err();
                    if tx.send(ev).is_err() || failed {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        }
    });
}

/// The console's loop: draw, wait for a key, a report or the next tick, repeat.
pub(super) async fn run(config: Config) -> Result<(), ConsoleError> {
    let directors = config
        .directors
        .iter()
        .map(|d| Director::new(d.name.clone(), d.target.address()))
        .collect();
    let mut app = App::new(directors, config.theme, config.keymap.clone());
    app.readonly = config.readonly;
    app.settings_path = config.settings_path.clone();
    app.interval_ms = ms(config.interval);
    app.tick(now_ms());

    let (guard, mut terminal) =
        TerminalGuard::enter(config.mouse).map_err(ConsoleError::Terminal)?;
    let size = terminal.size().map_err(ConsoleError::Terminal)?;
    app.resize(size.width, size.height);

    let (key_tx, mut key_rx) = mpsc::unbounded_channel();
    let stop = Arc::new(AtomicBool::new(false));
    spawn_reader(key_tx, Arc::clone(&stop));
    let (io_tx, mut io_rx) = mpsc::unbounded_channel();
    let mut driver = Driver::new(config.directors, io_tx, config.interval);
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let mut dirty = true;
    let mut last_draw = Instant::now();
    let result = loop {
        let now = Instant::now();
        driver.set_interval(Duration::from_millis(app.interval_ms));
        driver.tick(&app, now);
        if dirty || now.duration_since(last_draw) >= Duration::from_secs(1) {
            app.tick(now_ms());
            if let Err(e) = terminal.draw(|f| ui::draw(f, &app)) {
                break Err(ConsoleError::Terminal(e));
            }
            dirty = false;
            last_draw = Instant::now();
        }
        tokio::select! {
            ev = key_rx.recv() => match ev {
                Some(Ok(TermEvent::Key(k))) if k.kind != KeyEventKind::Release => {
                    for effect in app.handle_key(k, now_ms()) {
                        driver.execute(effect);
                    }
                    dirty = true;
                }
                Some(Ok(TermEvent::Resize(w, h))) => {
                    app.resize(w, h);
                    dirty = true;
                }
                Some(Ok(TermEvent::Mouse(m))) => {
                    app.handle_mouse(m);
                    dirty = true;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => break Err(ConsoleError::Terminal(e)),
                None => break Ok(()),
            },
            msg = io_rx.recv() => {
                if let Some(msg) = msg
                    && let Some(r) = driver.absorb(msg, Instant::now())
                {
                    app.apply(r, now_ms());
                    dirty = true;
                }
            }
            _ = ticker.tick() => {}
        }
        if app.quit {
            break Ok(());
        }
    };
    stop.store(true, Ordering::Relaxed);
    drop(terminal);
    drop(guard);
    tracing::info!("lvs-tui stopped");
    result
}
