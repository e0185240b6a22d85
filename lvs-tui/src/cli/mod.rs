//! `lvsctl`, the one-shot scripting CLI: parses the command line ([`args`]), talks to lvsd
//! over its control socket (`lvs_proto::connect_unix`) or its TLS listener
//! (`--connect tls://HOST:PORT`, [`remote`]), prints ipvsadm's layouts
//! ([`crate::ipvsadm`]) or other plain text ([`text`]), or the API's types as JSON.
//!
//! Contract:
//! - Exit status: 0 on success; 2 for a command line that cannot be run (clap's errors,
//!   bad addresses, weights out of range, ipvsadm commands lvsctl lacks); 1 when lvsd cannot
//!   be reached or answers with an error; 130 when a `drain --wait` is interrupted. Errors
//!   are one line on stderr, `lvsctl: <sentence>`, naming what was wrong (the socket path
//!   when lvsd does not answer).
//! - `--json`: one JSON document on stdout (arrays for listings); with `--follow` and
//!   `drain --wait`, one compact JSON object per line (JSON Lines). Silent commands (`zero`,
//!   ipvsadm's `-e`) still print their JSON answer.
//! - `--follow` polls (the API has no streaming) by sequence number, so nothing is missed or
//!   printed twice while the daemon's ring still holds it; Ctrl-C ends it with status 0.
//! - A closed stdout (`lvsctl events -f | head`) ends the program quietly with status 0.

pub mod args;
pub mod remote;
pub mod text;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use lvs_proto::tarpc::client::RpcError;
use lvs_proto::tarpc::context;
use lvs_proto::{
    ApiError, ConnEntry, ConnQuery, ConnectError, DecisionInfo, Event, FlowSpec, IpPrefix,
    LvsControlClient, MAX_CONN_PAGE, ServiceInfo, ServiceKey,
};
use serde::Serialize;

use self::args::{
    AddServerArgs, AddServiceArgs, Cli, Command, ConnsArgs, DecisionsArgs, DrainArgs, EventsArgs,
    KillArgs, ListArgs, SaveConfigArgs, SetWeightArgs, SimulateArgs, UsageError, ZeroArgs,
    parse_persistence_mask, parse_positional_service, parse_real_server, resolve_target,
    resolve_target_weighted, translate_ipvsadm,
};
use crate::ipvsadm::{self, ListOptions, View};

/// Why a command failed, and so its exit status.
#[derive(Debug)]
pub enum CliError {
    /// The command line cannot be run (status 2).
    Usage(String),
    /// lvsd could not be reached, or answered with an error (status 1).
    Failed(String),
    /// Interrupted by Ctrl-C while waiting (status 130).
    Interrupted(String),
    /// stdout was closed by the reader (status 0, nothing printed).
    BrokenPipe,
}

impl CliError {
    fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Usage(_) => ExitCode::from(2),
            CliError::Failed(_) => ExitCode::from(1),
            CliError::Interrupted(_) => ExitCode::from(130),
            CliError::BrokenPipe => ExitCode::SUCCESS,
        }
    }
}

impl From<UsageError> for CliError {
    fn from(e: UsageError) -> Self {
        CliError::Usage(e.0)
    }
}

impl From<ApiError> for CliError {
    fn from(e: ApiError) -> Self {
        CliError::Failed(e.to_string())
    }
}

impl From<ConnectError> for CliError {
    fn from(e: ConnectError) -> Self {
        CliError::Failed(e.to_string())
    }
}

type Result<T, E = CliError> = std::result::Result<T, E>;

/// Runs `lvsctl` with these arguments (the program name first) and returns its exit status.
pub fn main_with_args(args: Vec<OsString>) -> ExitCode {
    let mut strings = Vec::with_capacity(args.len());
    for a in args {
        match a.into_string() {
            Ok(s) => strings.push(s),
            Err(bad) => {
                eprintln!("lvsctl: argument {bad:?} is not valid UTF-8");
                return ExitCode::from(2);
            }
        }
    }
    let translated = match translate_ipvsadm(&strings) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("lvsctl: {e}");
            return ExitCode::from(2);
        }
    };
    let cli = match Cli::try_parse_from(translated) {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version print to stdout and succeed; real errors exit 2.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lvsctl: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let target = remote::TlsTarget::from_flags(
        cli.connect.as_deref(),
        cli.ca.as_deref(),
        cli.cert.as_deref(),
        cli.key.as_deref(),
        cli.tls_name.as_deref(),
    );
    let result = match target {
        Ok(target) => runtime.block_on(remote::scope(target, run(cli))),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            match &e {
                CliError::Usage(m) | CliError::Failed(m) | CliError::Interrupted(m) => {
                    eprintln!("lvsctl: {m}");
                }
                CliError::BrokenPipe => {}
            }
            e.exit_code()
        }
    }
}

/// The connection to lvsd and the path it was made through (for error messages).
struct Daemon {
    client: LvsControlClient,
    socket: PathBuf,
}

impl Daemon {
    async fn connect(socket: &Path) -> Result<Self> {
        if let Some(target) = remote::current() {
            return Ok(Daemon {
                client: target.connect().await?,
                socket: PathBuf::from(&target.url),
            });
        }
        let client = lvs_proto::connect_unix(socket).await?;
        Ok(Daemon {
            client,
            socket: socket.to_path_buf(),
        })
    }

    /// An RPC's transport failure as a sentence naming the socket.
    fn rpc_error(&self, e: RpcError) -> CliError {
        CliError::Failed(format!(
            "no answer from lvsd at {}: {e}",
            self.socket.display()
        ))
    }

    /// Unwraps an RPC's two layers of result.
    fn answer<T>(&self, r: Result<Result<T, ApiError>, RpcError>) -> Result<T> {
        match r {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(e.into()),
            Err(e) => Err(self.rpc_error(e)),
        }
    }

    async fn services(&self) -> Result<Vec<ServiceInfo>> {
        self.answer(self.client.services(context::current()).await)
    }

    /// Every entry matching `query`, following the cursor page by page.
    async fn all_connections(&self, mut query: ConnQuery) -> Result<(Vec<ConnEntry>, u64)> {
        query.limit = MAX_CONN_PAGE;
        query.cursor = None;
        let mut entries = Vec::new();
        loop {
            let page = self.answer(
                self.client
                    .connections(context::current(), query.clone())
                    .await,
            )?;
            entries.extend(page.entries);
            match page.next_cursor {
                // A cursor that does not move would loop forever: stop instead.
                Some(c) if Some(c) != query.cursor => query.cursor = Some(c),
                _ => return Ok((entries, page.table_size)),
            }
        }
    }
}

/// Writes `text` to stdout and flushes it.
fn emit(text: &str) -> Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| {
            if e.kind() == io::ErrorKind::BrokenPipe {
                CliError::BrokenPipe
            } else {
                CliError::Failed(format!("writing to stdout: {e}"))
            }
        })
}

/// One JSON document, pretty-printed.
fn emit_json<T: Serialize + ?Sized>(value: &T) -> Result<()> {
    let mut s = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::Failed(format!("encoding JSON: {e}")))?;
    s.push('\n');
    emit(&s)
}

/// One JSON object on one line (JSON Lines).
fn json_line<T: Serialize + ?Sized>(value: &T) -> Result<String> {
    let mut s = serde_json::to_string(value)
        .map_err(|e| CliError::Failed(format!("encoding JSON: {e}")))?;
    s.push('\n');
    Ok(s)
}

fn interval(secs: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            CliError::Usage(format!(
                "--interval {secs} is not a positive number of seconds"
            ))
        })
}

async fn run(cli: Cli) -> Result<()> {
    // Check the command line fully before connecting, so usage errors exit 2 even when
    // lvsd is down.
    let json = cli.json;
    match cli.command {
        Command::List(a) => {
            let service = a.service.key()?;
            if a.timeout {
                return Err(CliError::Usage(
                    "--timeout is not available: lvsd's API does not expose its timeouts (see \
                     [timeouts] in its configuration file)"
                        .into(),
                ));
            }
            let d = Daemon::connect(&cli.socket).await?;
            if a.connection {
                let query = ConnQuery {
                    service,
                    ..ConnQuery::default()
                };
                conns(&d, query, a.persistent_conn, json).await
            } else {
                list(&d, &a, service, json).await
            }
        }
        Command::Conns(a) => {
            let query = conn_query(&a)?;
            let d = Daemon::connect(&cli.socket).await?;
            conns(&d, query, a.persistent_conn, json).await
        }
        Command::SetWeight(a) => set_weight(&cli.socket, &a, json).await,
        Command::Drain(a) => drain(&cli.socket, &a, json).await,
        Command::Undrain(a) => {
            let (service, real_server, _) = resolve_target(&a, None, false)?;
            let d = Daemon::connect(&cli.socket).await?;
            let change = d.answer(
                d.client
                    .undrain(context::current(), service, real_server)
                    .await,
            )?;
            if json {
                emit_json(&change)
            } else if a.quiet {
                Ok(())
            } else {
                emit(&text::weight_change_line(&change))
            }
        }
        Command::Zero(a) => zero(&cli.socket, &a, json).await,
        Command::Decisions(a) => decisions(&cli.socket, &a, json).await,
        Command::Simulate(a) => simulate(&cli.socket, &a, json).await,
        Command::Events(a) => events(&cli.socket, &a, json).await,
        Command::Topology => {
            let d = Daemon::connect(&cli.socket).await?;
            let t = d.answer(d.client.topology(context::current()).await)?;
            if json {
                emit_json(&t)
            } else {
                emit(&text::topology_text(&t))
            }
        }
        Command::Health(a) => {
            let only = match (a.service.key()?, &a.positional) {
                (Some(k), None) => Some(k),
                (None, Some(p)) => Some(parse_positional_service(p)?),
                (None, None) => None,
                (Some(_), Some(p)) => {
                    return Err(UsageError(format!("unexpected argument `{p}`")).into());
                }
            };
            let d = Daemon::connect(&cli.socket).await?;
            let mut services = d.services().await?;
            if let Some(k) = only {
                services.retain(|s| s.key() == k);
                if services.is_empty() {
                    return Err(ApiError::NoSuchService { service: k }.into());
                }
            }
            let rows = text::health_rows(&services);
            if json {
                emit_json(&rows)
            } else {
                emit(&text::health_text(&rows))
            }
        }
        Command::AddService(a) => add_service(&cli.socket, &a, json).await,
        Command::RemoveService(a) => {
            let service = a.key()?;
            let d = Daemon::connect(&cli.socket).await?;
            d.answer(d.client.remove_service(context::current(), service).await)?;
            done(json, &format!("removed virtual service {service}"))
        }
        Command::AddServer(a) => add_server(&cli.socket, &a, json).await,
        Command::RemoveServer(a) => {
            let (service, real_server, _) = resolve_target(&a, None, false)?;
            let d = Daemon::connect(&cli.socket).await?;
            d.answer(
                d.client
                    .remove_real_server(context::current(), service, real_server)
                    .await,
            )?;
            done(
                json,
                &format!("removed real server {real_server} from {service}"),
            )
        }
        Command::KillConn(a) => kill(&cli.socket, &a, false, json).await,
        Command::KillTemplate(a) => kill(&cli.socket, &a, true, json).await,
        Command::SaveConfig(a) => save_config(&cli.socket, &a, json).await,
        Command::Version => {
            let d = Daemon::connect(&cli.socket).await?;
            let v = d
                .client
                .version(context::current())
                .await
                .map_err(|e| d.rpc_error(e))?;
            if json {
                #[derive(Serialize)]
                struct Versions<'a> {
                    lvsctl: &'a str,
                    lvsctl_api: u32,
                    lvsd: &'a lvs_proto::VersionInfo,
                }
                emit_json(&Versions {
                    lvsctl: env!("CARGO_PKG_VERSION"),
                    lvsctl_api: lvs_proto::API_LEVEL,
                    lvsd: &v,
                })
            } else {
                emit(&format!(
                    "lvsctl {} (API level {})\nlvsd {} (API level {}, pid {}, started {})\n",
                    env!("CARGO_PKG_VERSION"),
                    lvs_proto::API_LEVEL,
                    v.daemon,
                    v.api,
                    v.pid,
                    text::utc_time(v.started_unix_ms)
                ))
            }
        }
        Command::Whoami => {
            let d = Daemon::connect(&cli.socket).await?;
            let p = d
                .client
                .whoami(context::current())
                .await
                .map_err(|e| d.rpc_error(e))?;
            if json {
                emit_json(&p)
            } else {
                emit(&format!("{}: {}\n", p.actor, p.role))
            }
        }
    }
}

/// `list` (`-Ln` and its variants).
async fn list(d: &Daemon, a: &ListArgs, only: Option<ServiceKey>, json: bool) -> Result<()> {
    let mut services = d.services().await?;
    if let Some(k) = only {
        services.retain(|s| s.key() == k);
        if services.is_empty() {
            return Err(ApiError::NoSuchService { service: k }.into());
        }
    }
    if json {
        return emit_json(&services);
    }
    // As ipvsadm after keepalived removed a dest: only the servers in the scheduling list
    // (health down, idle sorry server: not listed; `lvsctl health` and --json show them).
    for s in &mut services {
        s.real_servers.retain(|r| r.in_service);
    }
    // ipvsadm's precedence when several views are asked for.
    let view = if a.stats {
        View::Stats
    } else if a.rate {
        View::Rate
    } else if a.thresholds {
        View::Thresholds
    } else if a.persistent_conn {
        View::PersistentConn
    } else {
        View::Default
    };
    let opts = ListOptions {
        view,
        exact: a.exact,
        nosort: a.nosort,
    };
    // ipvsadm prints the version line only for a full listing.
    let first = if only.is_none() {
        let version = d
            .client
            .version(context::current())
            .await
            .map_err(|e| d.rpc_error(e))?;
        let size = d
            .answer(
                d.client
                    .connections(
                        context::current(),
                        ConnQuery {
                            limit: 1,
                            ..ConnQuery::default()
                        },
                    )
                    .await,
            )?
            .table_size;
        Some(ipvsadm::version_line(&version.daemon, size))
    } else {
        None
    };
    let rows: Vec<_> = services.iter().map(text::service_row).collect();
    emit(&ipvsadm::format_list(first.as_deref(), &rows, opts))
}

fn conn_query(a: &ConnsArgs) -> Result<ConnQuery> {
    Ok(ConnQuery {
        service: a.service.key()?,
        real_server: a
            .real_server
            .as_deref()
            .map(parse_real_server)
            .transpose()?,
        client_prefix: a
            .client
            .as_deref()
            .map(|c| {
                c.parse::<IpPrefix>()
                    .map_err(|e| CliError::Usage(format!("--client: {e}")))
            })
            .transpose()?,
        state: a.state.clone(),
        ..ConnQuery::default()
    })
}

/// `list -c` and `conns` (`-Lnc`).
async fn conns(d: &Daemon, query: ConnQuery, persistent_conn: bool, json: bool) -> Result<()> {
    let (entries, _) = d.all_connections(query).await?;
    if json {
        return emit_json(&entries);
    }
    let rows: Vec<_> = entries.iter().map(text::conn_row).collect();
    emit(&ipvsadm::format_conns(&rows, persistent_conn))
}

/// `set-weight` (and ipvsadm's `-e`).
async fn set_weight(socket: &Path, a: &SetWeightArgs, json: bool) -> Result<()> {
    let (service, real_server, weight) = resolve_target(&a.target, a.weight.as_deref(), true)?;
    let Some(weight) = weight else {
        return Err(CliError::Usage("missing the weight (-w N)".into()));
    };
    if a.upper_threshold.is_some() || a.lower_threshold.is_some() {
        return Err(CliError::Usage(
            "thresholds (-x/-y) cannot be changed through lvsd's API: edit the configuration \
             file and reload lvsd"
                .into(),
        ));
    }
    let d = Daemon::connect(socket).await?;
    if a.gatewaying || a.masquerading || a.ipip {
        // ipvsadm -e restates the forwarding method; lvsd cannot change it, so accept it
        // only when it is already the server's.
        let wanted = if a.gatewaying {
            lvs_proto::Forwarding::Dr
        } else if a.ipip {
            lvs_proto::Forwarding::Tun
        } else {
            lvs_proto::Forwarding::Nat
        };
        let services = d.services().await?;
        let svc = services
            .iter()
            .find(|s| s.key() == service)
            .ok_or(ApiError::NoSuchService { service })?;
        let rs = svc
            .real_servers
            .iter()
            .find(|r| r.key() == real_server)
            .ok_or(ApiError::NoSuchRealServer {
                service,
                real_server,
            })?;
        if rs.forwarding != wanted {
            return Err(CliError::Failed(format!(
                "{real_server} in {service} forwards by {} ({}); lvsctl cannot change the \
                 forwarding method",
                text::forward(rs.forwarding).name(),
                rs.forwarding
            )));
        }
    }
    let change = d.answer(
        d.client
            .set_weight(context::current(), service, real_server, weight)
            .await,
    )?;
    if json {
        emit_json(&change)
    } else if a.target.quiet {
        Ok(())
    } else {
        emit(&text::weight_change_line(&change))
    }
}

/// `drain [--wait]`.
async fn drain(socket: &Path, a: &DrainArgs, json: bool) -> Result<()> {
    let (service, real_server, _) = resolve_target(&a.target, None, false)?;
    let every = interval(a.interval)?;
    let d = Daemon::connect(socket).await?;
    let mut info = d.answer(
        d.client
            .drain(context::current(), service, real_server)
            .await,
    )?;
    let show = |info: &lvs_proto::DrainInfo| -> Result<()> {
        if json {
            if a.wait {
                emit(&json_line(info)?)
            } else {
                emit_json(info)
            }
        } else if a.target.quiet {
            Ok(())
        } else {
            emit(&text::drain_line(info))
        }
    };
    show(&info)?;
    if !a.wait {
        return Ok(());
    }
    let deadline = a.timeout.map(|s| Instant::now() + Duration::from_secs(s));
    let wait = async {
        while info.connections_left > 0 {
            if deadline.is_some_and(|t| Instant::now() >= t) {
                return Err(CliError::Failed(format!(
                    "{real_server} in {service} still has {} connections after {} s",
                    info.connections_left,
                    a.timeout.unwrap_or_default()
                )));
            }
            tokio::time::sleep(every).await;
            let now = d.answer(
                d.client
                    .drain_status(context::current(), service, real_server)
                    .await,
            )?;
            if now != info {
                info = now;
                show(&info)?;
            }
        }
        Ok(())
    };
    tokio::select! {
        r = wait => r,
        _ = tokio::signal::ctrl_c() => Err(CliError::Interrupted(format!(
            "interrupted: {real_server} in {service} stays drained"
        ))),
    }
}

/// `zero` (ipvsadm `-Z`): silent on success, as ipvsadm is.
async fn zero(socket: &Path, a: &ZeroArgs, json: bool) -> Result<()> {
    let service = match (a.service.key()?, &a.positional) {
        (Some(k), None) => Some(k),
        (None, Some(p)) => Some(parse_positional_service(p)?),
        (None, None) => None,
        (Some(_), Some(p)) => return Err(CliError::Usage(format!("unexpected argument `{p}`"))),
    };
    let d = Daemon::connect(socket).await?;
    d.answer(d.client.zero_counters(context::current(), service).await)?;
    if json {
        #[derive(Serialize)]
        struct Zeroed {
            zeroed: Option<ServiceKey>,
        }
        emit_json(&Zeroed { zeroed: service })
    } else {
        Ok(())
    }
}

/// `simulate -t VIP:PORT --client IP:PORT`.
async fn simulate(socket: &Path, a: &SimulateArgs, json: bool) -> Result<()> {
    let service = match (a.service.key()?, &a.positional) {
        (Some(k), None) => k,
        (None, Some(p)) => parse_positional_service(p)?,
        (None, None) => {
            return Err(CliError::Usage(
                "missing the virtual service (-t VIP:PORT)".into(),
            ));
        }
        (Some(_), Some(p)) => return Err(CliError::Usage(format!("unexpected argument `{p}`"))),
    };
    let client = lvs_proto::parse_socket_addr(
        &a.client,
        "IP:PORT",
        "198.51.100.7:40000",
        "[2001:db8:c::10]:40000",
    )
    .map_err(|e| CliError::Usage(format!("--client {e}")))?;
    let flow = FlowSpec {
        protocol: service.protocol,
        client,
        vip: service.vip,
        port: service.port,
    };
    let d = Daemon::connect(socket).await?;
    let r = d.answer(d.client.simulate(context::current(), flow).await)?;
    if json {
        emit_json(&r)
    } else {
        emit(&text::simulate_text(&client, &r))
    }
}

/// What an edit without an answer prints: one line, or `{"done": "..."}` with --json.
fn done(json: bool, what: &str) -> Result<()> {
    if json {
        #[derive(Serialize)]
        struct Done<'a> {
            done: &'a str,
        }
        emit_json(&Done { done: what })
    } else {
        emit(&format!("{what}\n"))
    }
}

/// `add-service`.
async fn add_service(socket: &Path, a: &AddServiceArgs, json: bool) -> Result<()> {
    let service = a.service.key()?;
    let scheduler: lvs_proto::SchedulerKind = a
        .scheduler
        .parse()
        .map_err(|e| CliError::Usage(format!("-s {}: {e}", a.scheduler)))?;
    let forwarding = if a.masquerading {
        lvs_proto::Forwarding::Nat
    } else if a.ipip {
        lvs_proto::Forwarding::Tun
    } else {
        lvs_proto::Forwarding::Dr
    };
    let flags = a
        .flags
        .as_deref()
        .map(|f| {
            f.split(',')
                .map(|x| x.trim().to_owned())
                .filter(|x| !x.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let (netmask, prefix6) = parse_persistence_mask(service.vip, a.netmask.as_deref())?;
    let persistence = a.persistent.map(|secs| lvs_proto::PersistenceInfo {
        netmask,
        prefix6,
        ..lvs_proto::PersistenceInfo::new(secs)
    });
    let new = lvs_proto::NewService {
        service,
        scheduler,
        flags,
        forwarding,
        persistence,
        one_packet: a.one_packet,
    };
    let d = Daemon::connect(socket).await?;
    d.answer(d.client.add_service(context::current(), new).await)?;
    done(
        json,
        &format!("added virtual service {service} {scheduler}"),
    )
}

/// `add-server`.
async fn add_server(socket: &Path, a: &AddServerArgs, json: bool) -> Result<()> {
    let (service, real_server, weight) = resolve_target_weighted(&a.target, &a.weight)?;
    let forwarding = match (a.masquerading, a.gatewaying, a.ipip) {
        (true, _, _) => Some(lvs_proto::Forwarding::Nat),
        (_, true, _) => Some(lvs_proto::Forwarding::Dr),
        (_, _, true) => Some(lvs_proto::Forwarding::Tun),
        _ => None,
    };
    let new = lvs_proto::NewRealServer {
        real_server,
        weight,
        forwarding,
        upper_threshold: a.upper_threshold,
        lower_threshold: a.lower_threshold,
    };
    let d = Daemon::connect(socket).await?;
    d.answer(
        d.client
            .add_real_server(context::current(), service, new)
            .await,
    )?;
    done(
        json,
        &format!("added real server {real_server} to {service} weight {weight}"),
    )
}

/// `kill-conn` / `kill-template`: prints the removed entry as `-Lnc` would.
async fn kill(socket: &Path, a: &KillArgs, template: bool, json: bool) -> Result<()> {
    let service = match (a.service.key()?, &a.positional) {
        (Some(k), None) => k,
        (None, Some(p)) => parse_positional_service(p)?,
        (None, None) => {
            return Err(CliError::Usage(
                "missing the virtual service (-t VIP:PORT)".into(),
            ));
        }
        (Some(_), Some(p)) => return Err(CliError::Usage(format!("unexpected argument `{p}`"))),
    };
    let client = a.client.trim();
    let d;
    let entry = if template {
        let ip: std::net::IpAddr = client.parse().map_err(|_| {
            CliError::Usage(format!(
                "--client `{client}` is not an IP address (a template's masked client, e.g. \
                 198.51.100.0 or 2001:db8:c::)"
            ))
        })?;
        d = Daemon::connect(socket).await?;
        let key = lvs_proto::TemplateKey {
            service,
            client: ip,
        };
        d.answer(d.client.kill_template(context::current(), key).await)?
    } else {
        let sa = lvs_proto::parse_socket_addr(
            client,
            "IP:PORT",
            "198.51.100.7:40000",
            "[2001:db8:c::10]:40000",
        )
        .map_err(|e| CliError::Usage(format!("--client {e}")))?;
        d = Daemon::connect(socket).await?;
        let key = lvs_proto::ConnKey {
            protocol: service.protocol,
            client: sa,
            virt: service.socket_addr(),
        };
        d.answer(d.client.kill_connection(context::current(), key).await)?
    };
    if json {
        emit_json(&entry)
    } else {
        emit(&format!(
            "removed {} {} {} -> {} -> {} ({})\n",
            if entry.template {
                "template"
            } else {
                "connection"
            },
            entry.protocol,
            entry.client,
            entry.virt,
            entry.real,
            entry.state
        ))
    }
}

/// `save-config PATH`.
async fn save_config(socket: &Path, a: &SaveConfigArgs, json: bool) -> Result<()> {
    let path = if a.path.is_absolute() {
        a.path.clone()
    } else {
        std::env::current_dir()
            .map_err(|e| CliError::Failed(format!("the current directory: {e}")))?
            .join(&a.path)
    };
    let path = path
        .to_str()
        .map(str::to_owned)
        .ok_or_else(|| CliError::Usage(format!("`{}` is not valid UTF-8", a.path.display())))?;
    let d = Daemon::connect(socket).await?;
    let saved = d.answer(d.client.save_config(context::current(), path).await)?;
    if json {
        emit_json(&saved)
    } else {
        emit(&format!(
            "saved {} services and {} real servers to {}\n",
            saved.services, saved.real_servers, saved.path
        ))
    }
}

/// Runs `body` until it ends or Ctrl-C (which ends it with success).
async fn until_ctrl_c(body: impl std::future::Future<Output = Result<()>>) -> Result<()> {
    tokio::select! {
        r = body => r,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

/// `decisions [-t VIP:PORT] [--follow]`.
async fn decisions(socket: &Path, a: &DecisionsArgs, json: bool) -> Result<()> {
    let only = a.service.key()?;
    let every = interval(a.interval)?;
    let d = Daemon::connect(socket).await?;
    let services: Vec<ServiceKey> = match only {
        Some(k) => vec![k],
        None => d.services().await?.iter().map(ServiceInfo::key).collect(),
    };
    let mut since: BTreeMap<ServiceKey, u64> = services.iter().map(|k| (*k, a.since)).collect();
    let poll = async |since: &mut BTreeMap<ServiceKey, u64>| -> Result<Vec<DecisionInfo>> {
        let mut batch = Vec::new();
        for (k, s) in since.iter_mut() {
            let got = d.answer(d.client.decisions_since(context::current(), *k, *s).await)?;
            if let Some(last) = got.last() {
                *s = (*s).max(last.seq);
            }
            batch.extend(got);
        }
        batch.sort_by_key(|x| x.seq);
        Ok(batch)
    };
    if !a.follow {
        let batch = poll(&mut since).await?;
        return if json {
            emit_json(&batch)
        } else {
            emit(&batch.iter().map(text::decision_text).collect::<String>())
        };
    }
    until_ctrl_c(async {
        loop {
            let batch = poll(&mut since).await?;
            let mut out = String::new();
            for x in &batch {
                if json {
                    out.push_str(&json_line(x)?);
                } else {
                    out.push_str(&text::decision_text(x));
                }
            }
            if !out.is_empty() {
                emit(&out)?;
            }
            tokio::time::sleep(every).await;
        }
    })
    .await
}

/// `events [--follow]`.
async fn events(socket: &Path, a: &EventsArgs, json: bool) -> Result<()> {
    let every = interval(a.interval)?;
    let d = Daemon::connect(socket).await?;
    let fetch = async |since: u64| -> Result<Vec<Event>> {
        d.answer(d.client.events_since(context::current(), since).await)
    };
    if !a.follow {
        let batch = fetch(a.since).await?;
        return if json {
            emit_json(&batch)
        } else {
            emit(&batch.iter().map(text::event_line).collect::<String>())
        };
    }
    let mut since = a.since;
    until_ctrl_c(async {
        loop {
            let batch = fetch(since).await?;
            let mut out = String::new();
            for e in &batch {
                if e.seq <= since {
                    continue; // never print one twice
                }
                if since > 0 && e.seq > since + 1 {
                    eprintln!(
                        "lvsctl: events {}..={} were dropped from lvsd's ring before they \
                         could be read",
                        since + 1,
                        e.seq - 1
                    );
                }
                since = e.seq;
                if json {
                    out.push_str(&json_line(e)?);
                } else {
                    out.push_str(&text::event_line(e));
                }
            }
            if !out.is_empty() {
                emit(&out)?;
            }
            tokio::time::sleep(every).await;
        }
    })
    .await
}
