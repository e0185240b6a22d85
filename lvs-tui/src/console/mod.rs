//! `lvs-tui`: the full-screen operator console for one or more lvsd directors.
//!
//! Layers (the ratatui component shape, with a pure core):
//! - [`app`]: the state machine. Keys and poll results in, [`app::Effect`]s out; no I/O,
//!   no clock (time is passed in), so every behaviour is a unit test.
//! - [`ui`]: `draw(frame, &App)`, pure rendering of one frame per view; nothing is
//!   fetched or changed while drawing.
//! - `driver` (private): the tokio side. One link per director: connect, poll on the
//!   interval with at most one request set in flight per director, time requests out,
//!   reconnect with back-off when a director goes away (the app shows a banner meanwhile,
//!   never an error exit), and run the effects' RPCs.
//! - `terminal` (private): raw mode and the alternate screen, restored on every exit path
//!   (return, error, panic).
//! - [`settings`], [`keymap`], [`theme`]: the settings file, bindings and colours.
//!
//! The console's own log goes to a file (`--log-file`, the settings' `log_file`, or the
//! state directory `directories` gives lvs-tui), never to the terminal it draws on.
//! [`run`] builds its own runtime, so a synchronous caller (the demo) just calls it.

pub mod app;
mod driver;
pub mod keymap;
pub mod settings;
mod terminal;
pub mod theme;
pub mod ui;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use lvs_proto::tarpc::context;
use lvs_proto::{ConnQuery, LvsControlClient};

use crate::cli::CliError;
use crate::cli::remote::TlsTarget;
use crate::ipvsadm::{self, ListOptions};
use keymap::Keymap;
use settings::Settings;
use theme::{Theme, ThemeName};

/// The console's command line (a `clap::Args`, so another program can flatten it).
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct ConsoleArgs {
    /// A director's control socket, `[NAME=]PATH`; repeat for several directors
    /// (default: the settings file's directors, else /run/lvsd/lvsd.sock).
    #[arg(long = "socket", value_name = "[NAME=]PATH")]
    pub sockets: Vec<String>,
    /// A director's TLS listener, `[NAME=]tls://HOST:PORT` (with --ca, --cert, --key);
    /// repeatable.
    #[arg(long = "connect", value_name = "[NAME=]tls://HOST:PORT")]
    pub connects: Vec<String>,
    /// With --connect: the CA that signed the directors' certificates (PEM).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// With --connect: this client's certificate (PEM).
    #[arg(long, value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// With --connect: this client's private key (PEM).
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// With --connect: the name the directors' certificates must be valid for.
    #[arg(long, value_name = "NAME")]
    pub tls_name: Option<String>,
    /// Look, don't touch: weight edits, drains and kills are disabled.
    #[arg(long)]
    pub readonly: bool,
    /// Refresh interval: seconds, or 500ms, 2s, 1m (default 2s, the IPVS rate estimator's
    /// cadence).
    #[arg(short = 'i', long, value_name = "INTERVAL")]
    pub interval: Option<String>,
    /// Colours: default (256 colours), 16, or mono (NO_COLOR selects mono).
    #[arg(long, value_enum)]
    pub theme: Option<ThemeName>,
    /// Capture the mouse (wheel scrolls); off by default so the terminal can select text.
    #[arg(long)]
    pub mouse: bool,
    /// Print the ipvsadm -Ln listing of each director and exit.
    #[arg(long)]
    pub once: bool,
    /// The settings file (default: config.toml in lvs-tui's config directory).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Where the console's log goes (never the terminal).
    #[arg(long, value_name = "PATH")]
    pub log_file: Option<PathBuf>,
}

impl ConsoleArgs {
    /// The console on one director's socket, everything else default.
    pub fn for_socket(path: impl Into<PathBuf>) -> ConsoleArgs {
        ConsoleArgs {
            sockets: vec![path.into().display().to_string()],
            ..ConsoleArgs::default()
        }
    }
}

/// Why the console could not run.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The command line is wrong (exit status 2).
    #[error("{0}")]
    Usage(String),
    /// The settings file is wrong: names the file and the key (exit status 2).
    #[error("{0}")]
    Settings(String),
    /// The terminal could not be set up or drawn on.
    #[error("terminal: {0}")]
    Terminal(#[source] std::io::Error),
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// `--once`: a director did not answer.
    #[error("{0}")]
    Director(String),
}

impl ConsoleError {
    /// The process exit status for it: 2 for usage and settings errors, else 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            ConsoleError::Usage(_) | ConsoleError::Settings(_) => 2,
            _ => 1,
        }
    }
}

/// How a director is reached.
#[derive(Debug, Clone)]
pub enum Target {
    /// Its Unix control socket.
    Unix(PathBuf),
    /// Its TLS listener.
    Tls(Arc<TlsTarget>),
}

impl Target {
    /// Where, for messages.
    pub fn address(&self) -> String {
        match self {
            Target::Unix(p) => p.display().to_string(),
            Target::Tls(t) => t.url.clone(),
        }
    }

    /// Connects (the TLS files are read now).
    pub async fn connect(&self) -> Result<LvsControlClient, String> {
        match self {
            Target::Unix(p) => lvs_proto::connect_unix(p).await.map_err(|e| e.to_string()),
            Target::Tls(t) => t.connect().await.map_err(|e| cli_message(&e)),
        }
    }
}

fn cli_message(e: &CliError) -> String {
    match e {
        CliError::Usage(m) | CliError::Failed(m) | CliError::Interrupted(m) => m.clone(),
        CliError::BrokenPipe => "broken pipe".to_string(),
    }
}

/// A director to show.
#[derive(Debug, Clone)]
pub struct DirectorSpec {
    /// Its name in the console.
    pub name: String,
    /// How it is reached.
    pub target: Target,
}

/// Everything the command line and the settings file decided.
#[derive(Debug, Clone)]
pub struct Config {
    /// The directors.
    pub directors: Vec<DirectorSpec>,
    /// Actions disabled.
    pub readonly: bool,
    /// Poll interval.
    pub interval: Duration,
    /// Colours.
    pub theme: Theme,
    /// Mouse capture.
    pub mouse: bool,
    /// Bindings.
    pub keymap: Keymap,
    /// The settings file in effect (shown in the help, whether or not it exists).
    pub settings_path: Option<PathBuf>,
    /// The log file.
    pub log_file: Option<PathBuf>,
}

impl Config {
    /// Resolves flags, `NO_COLOR` (given as `no_color`) and the settings file.
    pub fn resolve(args: &ConsoleArgs, no_color: bool) -> Result<Config, ConsoleError> {
        let settings_path = args.config.clone().or_else(settings::default_path);
        let settings = match &settings_path {
            Some(p) => match Settings::load(p).map_err(ConsoleError::Settings)? {
                Some(s) => s,
                // An explicit --config that does not exist is a mistake, not defaults.
                None if args.config.is_some() => {
                    return Err(ConsoleError::Settings(format!(
                        "settings file {} does not exist",
                        p.display()
                    )));
                }
                None => Settings::default(),
            },
            None => Settings::default(),
        };
        let path_text = settings_path
            .as_ref()
            .map_or_else(|| "settings".to_string(), |p| p.display().to_string());
        let keymap =
            Keymap::with_overrides(settings.keys.iter().map(|(k, v)| (k.as_str(), v.keys())))
                .map_err(|e| ConsoleError::Settings(format!("settings file {path_text}: {e}")))?;
        let interval = match (&args.interval, &settings.interval) {
            (Some(t), _) => settings::parse_interval(t)
                .map_err(|e| ConsoleError::Usage(format!("--interval: {e}")))?,
            (None, Some(v)) => v
                .duration()
                .map_err(|e| ConsoleError::Settings(format!("settings file {path_text}: {e}")))?,
            (None, None) => Duration::from_secs(2),
        };
        let theme = match (args.theme, no_color, settings.theme) {
            (Some(t), _, _) => t,
            (None, true, _) => ThemeName::Mono,
            (None, false, Some(t)) => t,
            (None, false, None) => ThemeName::Default,
        };
        let directors = directors(args, &settings)?;
        Ok(Config {
            directors,
            readonly: args.readonly || settings.readonly.unwrap_or(false),
            interval,
            theme: Theme::new(theme),
            mouse: args.mouse || settings.mouse.unwrap_or(false),
            keymap,
            settings_path,
            log_file: args
                .log_file
                .clone()
                .or(settings.log_file)
                .or_else(settings::default_log_path),
        })
    }
}

/// `NAME=VALUE` when NAME looks like a name (no `/`, no `:`), else `(None, text)`.
fn split_name(text: &str) -> (Option<&str>, &str) {
    match text.split_once('=') {
        Some((n, v)) if !n.is_empty() && !n.contains('/') && !n.contains(':') => (Some(n), v),
        _ => (None, text),
    }
}

fn directors(args: &ConsoleArgs, settings: &Settings) -> Result<Vec<DirectorSpec>, ConsoleError> {
    let usage = |e: CliError| ConsoleError::Usage(cli_message(&e));
    let mut out: Vec<(Option<String>, Target)> = Vec::new();
    for s in &args.sockets {
        let (name, path) = split_name(s);
        if path.is_empty() {
            return Err(ConsoleError::Usage(format!("--socket `{s}` names no path")));
        }
        out.push((name.map(str::to_string), Target::Unix(PathBuf::from(path))));
    }
    for c in &args.connects {
        let (name, url) = split_name(c);
        let t = TlsTarget::from_flags(
            Some(url),
            args.ca.as_deref(),
            args.cert.as_deref(),
            args.key.as_deref(),
            args.tls_name.as_deref(),
        )
        .map_err(usage)?;
        if let Some(t) = t {
            out.push((name.map(str::to_string), Target::Tls(Arc::new(t))));
        }
    }
    if args.connects.is_empty()
        && (args.ca.is_some()
            || args.cert.is_some()
            || args.key.is_some()
            || args.tls_name.is_some())
    {
        TlsTarget::from_flags(
            None,
            args.ca.as_deref(),
            args.cert.as_deref(),
            args.key.as_deref(),
            args.tls_name.as_deref(),
        )
        .map_err(usage)?;
    }
    if out.is_empty() {
        for (i, d) in settings.directors.iter().enumerate() {
            let target = match (&d.socket, &d.connect) {
                (Some(p), _) => Target::Unix(p.clone()),
                (None, Some(url)) => {
                    let t = TlsTarget::from_flags(
                        Some(url),
                        d.ca.as_deref(),
                        d.cert.as_deref(),
                        d.key.as_deref(),
                        d.tls_name.as_deref(),
                    )
                    .map_err(|e| {
                        ConsoleError::Settings(format!("key `director[{i}]`: {}", cli_message(&e)))
                    })?;
                    match t {
                        Some(t) => Target::Tls(Arc::new(t)),
                        None => continue,
                    }
                }
                (None, None) => continue,
            };
            out.push((d.name.clone(), target));
        }
    }
    if out.is_empty() {
        let socket = std::env::var_os("LVSD_SOCKET")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(lvs_proto::DEFAULT_SOCKET));
        out.push((None, Target::Unix(socket)));
    }
    let mut specs: Vec<DirectorSpec> = Vec::with_capacity(out.len());
    for (name, target) in out {
        let mut name = name.unwrap_or_else(|| default_name(&target, &specs));
        if specs.iter().any(|s| s.name == name) {
            let base = name.clone();
            let mut n = 2;
            while specs.iter().any(|s| s.name == name) {
                name = format!("{base}-{n}");
                n += 1;
            }
        }
        specs.push(DirectorSpec { name, target });
    }
    Ok(specs)
}

/// A short name: the socket's file name without `.sock` (its directory's name too when
/// that is taken), or the TLS host.
fn default_name(target: &Target, taken: &[DirectorSpec]) -> String {
    match target {
        Target::Unix(p) => {
            let stem = p.file_stem().map_or_else(
                || p.display().to_string(),
                |s| s.to_string_lossy().into_owned(),
            );
            if taken.iter().any(|s| s.name == stem)
                && let Some(parent) = p.parent().and_then(Path::file_name)
            {
                return format!("{}/{stem}", parent.to_string_lossy());
            }
            stem
        }
        Target::Tls(t) => t
            .addr
            .rsplit_once(':')
            .map_or(t.addr.as_str(), |(h, _)| h)
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
    }
}

/// Runs the console until the operator quits (or, with `--once`, prints the listing).
/// Builds its own tokio runtime (on a thread of its own when the caller is inside one);
/// restores the terminal however it ends.
pub fn run(args: ConsoleArgs) -> Result<(), ConsoleError> {
    if tokio::runtime::Handle::try_current().is_ok() {
        // A runtime cannot block inside another: run beside it and wait.
        return std::thread::scope(|s| {
            s.spawn(|| run_here(args))
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        });
    }
    run_here(args)
}

fn run_here(args: ConsoleArgs) -> Result<(), ConsoleError> {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let config = Config::resolve(&args, no_color)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ConsoleError::Runtime)?;
    if args.once {
        return runtime.block_on(once(&config));
    }
    init_logging(config.log_file.as_deref());
    tracing::info!(
        directors = config.directors.len(),
        interval_ms = config.interval.as_millis(),
        "lvs-tui starting"
    );
    runtime.block_on(driver::run(config))
}

/// File logging (never the terminal); a log that cannot be opened means no log.
fn init_logging(path: Option<&Path>) {
    let Some(path) = path else { return };
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let Ok(file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    else {
        return;
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("LVS_TUI_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Another subscriber (an embedding program's) may already be set: keep it.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .try_init();
}

/// `--once`: ipvsadm -Ln of every director (a `# NAME (ADDRESS)` line before each when
/// there are several).
async fn once(config: &Config) -> Result<(), ConsoleError> {
    let several = config.directors.len() > 1;
    let mut out = String::new();
    for d in &config.directors {
        let fail =
            |e: String| ConsoleError::Director(format!("{} ({}): {e}", d.name, d.target.address()));
        let client = d.target.connect().await.map_err(fail)?;
        let services = client
            .services(context::current())
            .await
            .map_err(|e| fail(e.to_string()))?
            .map_err(|e| fail(e.to_string()))?;
        let version = client
            .version(context::current())
            .await
            .map_err(|e| fail(e.to_string()))?;
        let size = client
            .connections(
                context::current(),
                ConnQuery {
                    limit: 1,
                    ..ConnQuery::default()
                },
            )
            .await
            .map_err(|e| fail(e.to_string()))?
            .map_err(|e| fail(e.to_string()))?
            .table_size;
        if several {
            out.push_str(&format!("# {} ({})\n", d.name, d.target.address()));
        }
        let rows: Vec<_> = services.iter().map(crate::cli::text::service_row).collect();
        let first = ipvsadm::version_line(&version.daemon, size);
        out.push_str(&ipvsadm::format_list(
            Some(&first),
            &rows,
            ListOptions::default(),
        ));
    }
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(ConsoleError::Terminal(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(f: impl FnOnce(&mut ConsoleArgs)) -> ConsoleArgs {
        let mut a = ConsoleArgs {
            config: Some(PathBuf::from("/dev/null")),
            ..ConsoleArgs::default()
        };
        f(&mut a);
        a
    }

    #[test]
    fn names_and_defaults() {
        let c = Config::resolve(
            &args(|a| {
                a.sockets = vec![
                    "/run/lvs1/lvsd.sock".into(),
                    "/run/lvs2/lvsd.sock".into(),
                    "backup=/tmp/b.sock".into(),
                ];
            }),
            false,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = c.directors.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["lvsd", "lvs2/lvsd", "backup"]);
        assert_eq!(c.interval, Duration::from_secs(2));
        assert_eq!(c.theme.name, ThemeName::Default);
        assert!(!c.mouse && !c.readonly);
    }

    #[test]
    fn no_color_means_mono_unless_a_theme_is_asked_for() {
        let c = Config::resolve(&args(|_| {}), true).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.theme.name, ThemeName::Mono);
        let c = Config::resolve(&args(|a| a.theme = Some(ThemeName::Sixteen)), true)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.theme.name, ThemeName::Sixteen);
    }

    #[test]
    fn usage_errors() {
        let e = Config::resolve(&args(|a| a.interval = Some("soon".into())), false)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.starts_with("--interval:"), "{e}");
        let e = Config::resolve(&args(|a| a.connects = vec!["tls://x:1".into()]), false)
            .err()
            .map(|e| (e.exit_code(), e.to_string()));
        assert_eq!(
            e,
            Some((2, "--connect tls://x:1 needs --ca FILE as well".to_string()))
        );
        let e = Config::resolve(
            &args(|a| a.config = Some(PathBuf::from("/nonexistent/lvs-tui.toml"))),
            false,
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(e.contains("does not exist"), "{e}");
    }
}
