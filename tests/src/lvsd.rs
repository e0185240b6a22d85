//! Finding (building) the `lvsd` binary and driving an lvsd instance inside a lab.
//!
//! Invariants:
//! - [`lvsd_binary`] builds at most once per test process (a `OnceLock`), with the same cargo,
//!   target directory and profile as the running test executable, and only when the binary is
//!   missing or older than the sources of `lvsd`, `lvs-proto` and this crate. `LVSD_BIN`
//!   overrides everything. [`lvsctl_binary`] does the same for the CLI (`LVSCTL_BIN`).
//! - An [`LvsdProcess`] is registered with its lab: it is stopped when the lab is dropped even
//!   if the handle is dropped earlier (dropping the handle does not stop it).
//! - Every lvsd a lab starts has its own control socket: a config without a `[control]`
//!   section gets one naming a socket in the lab's work directory ([`with_control_socket`]),
//!   so labs never collide with each other or with a real daemon's `/run/lvsd/lvsd.sock`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use nix::sys::signal::Signal;

use crate::error::{Context, LabError, Result};
use crate::lab::LogFiles;
use crate::process::Process;

/// How long [`crate::Lab::start_lvsd`] waits for lvsd's `ready` line.
pub const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// How long [`LvsdProcess::stop`] waits after SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// The lvsd executable for tests.
///
/// `$LVSD_BIN` if set; otherwise `<target>/<profile>/lvsd` next to the running test executable
/// (`<target>/<profile>/deps/NAME-HASH`), after `$CARGO build -p lvsd --bin lvsd` in the same
/// profile if that file is missing or older than the sources. Builds at most once per process.
pub fn lvsd_binary() -> Result<PathBuf> {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            locate_or_build_bin(
                "lvsd",
                "lvsd",
                "LVSD_BIN",
                &[
                    "Cargo.toml",
                    "Cargo.lock",
                    "lvsd/Cargo.toml",
                    "lvsd/src",
                    "lvs-proto/Cargo.toml",
                    "lvs-proto/src",
                    "tests/Cargo.toml",
                    "tests/src",
                ],
            )
            .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(LabError::Build)
}

/// The workspace root: this crate lives in `<root>/tests`.
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

fn newest_mtime(path: &Path, newest: &mut SystemTime) {
    let Ok(meta) = path.metadata() else { return };
    if meta.is_dir() {
        let Ok(entries) = std::fs::read_dir(path) else {
            return;
        };
        for entry in entries.flatten() {
            newest_mtime(&entry.path(), newest);
        }
    } else if let Ok(modified) = meta.modified() {
        *newest = (*newest).max(modified);
    }
}

/// `config_toml` with a `[control]` section whose socket is `socket`, unless it already has a
/// `[control]` section; and the control socket the result names (the config's own
/// `[control] socket`, else lvsd's default).
pub fn with_control_socket(config_toml: &str, socket: &Path) -> (String, PathBuf) {
    if let Some(own) = control_section_socket(config_toml) {
        return (config_toml.to_string(), own);
    }
    if config_toml.lines().any(|l| l.trim() == "[control]") {
        return (
            config_toml.to_string(),
            PathBuf::from("/run/lvsd/lvsd.sock"),
        );
    }
    let mut text = config_toml.to_string();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!("\n[control]\nsocket = \"{}\"\n", socket.display()));
    (text, socket.to_path_buf())
}

/// The `socket = "..."` of a `[control]` section, if there is one.
fn control_section_socket(config_toml: &str) -> Option<PathBuf> {
    let mut in_control = false;
    for line in config_toml.lines().map(str::trim) {
        if line.starts_with('[') {
            in_control = line == "[control]";
        } else if in_control {
            if let Some((key, value)) = line.split_once('=') {
                if key.trim() == "socket" {
                    return Some(PathBuf::from(value.trim().trim_matches('"')));
                }
            }
        }
    }
    None
}

/// A running lvsd inside a director namespace.
#[derive(Debug)]
pub struct LvsdProcess {
    process: Process,
    config_path: PathBuf,
    logs: LogFiles,
    control_socket: PathBuf,
}

impl LvsdProcess {
    pub(crate) fn new(
        process: Process,
        config_path: PathBuf,
        logs: LogFiles,
        control_socket: PathBuf,
    ) -> Self {
        Self {
            process,
            config_path,
            logs,
            control_socket,
        }
    }

    /// The Unix socket of its control API.
    pub fn control_socket(&self) -> &Path {
        &self.control_socket
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The underlying process handle (signals, `try_wait`, ...).
    pub fn process(&self) -> &Process {
        &self.process
    }

    /// The config file it was started with.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Replace the config file's contents (then [`LvsdProcess::reload`]); without a
    /// `[control]` section it keeps the running control socket.
    pub fn write_config(&self, config_toml: &str) -> Result<()> {
        let (text, _) = with_control_socket(config_toml, &self.control_socket);
        std::fs::write(&self.config_path, text)
            .with_ctx(|| format!("writing {}", self.config_path.display()))
    }

    /// The captured stdout/stderr files.
    pub fn log_files(&self) -> &LogFiles {
        &self.logs
    }

    /// Everything it printed on stdout so far.
    pub fn stdout(&self) -> String {
        self.logs.stdout_text()
    }

    /// Everything it printed on stderr so far.
    pub fn stderr(&self) -> String {
        self.logs.stderr_text()
    }

    /// The last 80 lines of stdout and stderr, formatted for a failure message.
    pub fn logs(&self) -> String {
        self.logs.render_tail(80)
    }

    /// Ask it to reload its configuration (SIGHUP).
    pub fn reload(&self) -> Result<()> {
        self.process.signal(Signal::SIGHUP)
    }

    /// Whether it is still running.
    pub fn is_running(&self) -> bool {
        self.process.is_running()
    }

    /// Its counters right now, for failure messages: sends SIGUSR1, waits (≤ 2 s) for a new
    /// `lvsd stats:` block on stdout and returns everything from that line on; if none comes
    /// (lvsd exited or hung), its last log lines instead. Never fails.
    pub fn stats_now(&self) -> String {
        let before = self.stdout().matches("lvsd stats:").count();
        if self.process.signal(Signal::SIGUSR1).is_ok() {
            let fresh = crate::wait_until(Duration::from_secs(2), || {
                self.stdout().matches("lvsd stats:").count() > before
            });
            if fresh {
                // Let the per-service lines that follow the summary line arrive.
                std::thread::sleep(Duration::from_millis(100));
                let out = self.stdout();
                if let Some(at) = out.rfind("lvsd stats:") {
                    return format!("lvsd counters now:\n{}", &out[at..]);
                }
            }
        }
        format!("lvsd printed no counters; its logs:{}", self.logs())
    }

    /// SIGTERM and wait up to 10 s for the exit status. If it does not exit in time it is
    /// SIGKILLed and [`LabError::Killed`] (with its logs) is returned.
    pub fn stop(&self) -> Result<ExitStatus> {
        match self.process.stop(STOP_GRACE) {
            Err(LabError::Killed { what, grace, .. }) => Err(LabError::Killed {
                what,
                grace,
                logs: self.logs(),
            }),
            other => other,
        }
    }
}

/// The `lvsctl` executable (the CLI in `lvs-tui`) for tests.
///
/// `$LVSCTL_BIN` if set; otherwise `<target>/<profile>/lvsctl` next to the running test
/// executable, after `$CARGO build -p lvs-tui --bin lvsctl` in the same profile if that file
/// is missing or older than the sources of `lvs-tui` and `lvs-proto`. Builds at most once per
/// process.
pub fn lvsctl_binary() -> Result<PathBuf> {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            locate_or_build_bin(
                "lvs-tui",
                "lvsctl",
                "LVSCTL_BIN",
                &[
                    "Cargo.toml",
                    "Cargo.lock",
                    "lvs-tui/Cargo.toml",
                    "lvs-tui/src",
                    "lvs-proto/Cargo.toml",
                    "lvs-proto/src",
                ],
            )
            .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(LabError::Build)
}

/// The `lvs-tui` console binary: `$LVS_TUI_BIN`, or the workspace's own build (built on
/// demand like [`lvsd_binary`]).
pub fn lvs_tui_binary() -> Result<PathBuf> {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            locate_or_build_bin(
                "lvs-tui",
                "lvs-tui",
                "LVS_TUI_BIN",
                &[
                    "Cargo.toml",
                    "Cargo.lock",
                    "lvs-tui/Cargo.toml",
                    "lvs-tui/src",
                    "lvs-proto/Cargo.toml",
                    "lvs-proto/src",
                ],
            )
            .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(LabError::Build)
}

/// `$env_override`, or binary `bin` of workspace package `package` in the test executable's
/// target directory and profile, (re)built with cargo when missing or older than `sources`
/// (paths relative to the workspace root).
fn locate_or_build_bin(
    package: &str,
    bin: &str,
    env_override: &str,
    sources: &[&str],
) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(env_override) {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().ctx("locating the test executable")?;
    let mut profile_dir = exe
        .parent()
        .ok_or_else(|| LabError::Build(format!("{} has no parent", exe.display())))?;
    // Test executables live in `<profile>/deps`, examples in `<profile>/examples`.
    if profile_dir
        .file_name()
        .is_some_and(|n| n == "deps" || n == "examples")
    {
        profile_dir = profile_dir
            .parent()
            .ok_or_else(|| LabError::Build("deps/ has no parent".into()))?;
    }
    let candidate = profile_dir.join(bin);
    let workspace = workspace_root();
    let fresh = candidate
        .metadata()
        .and_then(|m| m.modified())
        .is_ok_and(|built| {
            let mut newest = SystemTime::UNIX_EPOCH;
            for rel in sources {
                newest_mtime(&workspace.join(rel), &mut newest);
            }
            built >= newest
        });
    if fresh {
        return Ok(candidate);
    }
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| LabError::Build(format!("odd profile dir {}", profile_dir.display())))?;
    let target_dir = profile_dir
        .parent()
        .ok_or_else(|| LabError::Build("profile dir has no parent".into()))?;
    let cargo = std::env::var_os("CARGO")
        .or_else(|| option_env!("CARGO").map(Into::into))
        .unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(&workspace)
        .args(["build", "-p", package, "--bin", bin])
        .env("CARGO_TARGET_DIR", target_dir);
    match profile {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    tracing::info!(?cmd, "building {bin}");
    let output = cmd
        .output()
        .with_ctx(|| format!("running {}", Path::new(&cargo).display()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(60).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(LabError::Build(format!(
            "`cargo build -p {package} --bin {bin}` failed ({}):\n{}",
            output.status,
            tail.join("\n")
        )));
    }
    if !candidate.exists() {
        return Err(LabError::Build(format!(
            "cargo succeeded but {} does not exist",
            candidate.display()
        )));
    }
    Ok(candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_without_control_gets_the_labs_socket() {
        let sock = Path::new("/tmp/lvs-lab-1-1/lvsd-d1-1.ctl/lvsd.sock");
        let (text, path) = with_control_socket("[timeouts]\ntcp = 900", sock);
        assert_eq!(path, sock);
        assert!(text.ends_with(
            "tcp = 900\n\n[control]\nsocket = \"/tmp/lvs-lab-1-1/lvsd-d1-1.ctl/lvsd.sock\"\n"
        ));
        // A config with its own section is left alone.
        let own = "[control]\nsocket = \"/tmp/x/y.sock\"\n";
        assert_eq!(
            with_control_socket(own, sock),
            (own.to_string(), PathBuf::from("/tmp/x/y.sock"))
        );
    }
}
