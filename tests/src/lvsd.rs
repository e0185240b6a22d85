//! Finding (building) the `lvsd` binary and driving an lvsd instance inside a lab.
//!
//! Invariants:
//! - [`lvsd_binary`] builds at most once per test process (a `OnceLock`), with the same cargo,
//!   target directory and profile as the running test executable, and only when the binary is
//!   missing or older than the sources of `lvsd`, `lvs-proto` and this crate. `LVSD_BIN`
//!   overrides everything.
//! - An [`LvsdProcess`] is registered with its lab: it is stopped when the lab is dropped even
//!   if the handle is dropped earlier (dropping the handle does not stop it).

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
        .get_or_init(|| locate_or_build().map_err(|e| e.to_string()))
        .clone()
        .map_err(LabError::Build)
}

fn locate_or_build() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("LVSD_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let exe = std::env::current_exe().ctx("locating the test executable")?;
    let mut profile_dir = exe
        .parent()
        .ok_or_else(|| LabError::Build(format!("{} has no parent", exe.display())))?;
    if profile_dir.file_name().is_some_and(|n| n == "deps") {
        profile_dir = profile_dir
            .parent()
            .ok_or_else(|| LabError::Build("deps/ has no parent".into()))?;
    }
    let candidate = profile_dir.join("lvsd");
    let workspace = workspace_root();
    if is_fresh(&candidate, &workspace) {
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
        .args(["build", "-p", "lvsd", "--bin", "lvsd"])
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
    tracing::info!(?cmd, "building lvsd");
    let output = cmd
        .output()
        .with_ctx(|| format!("running {}", Path::new(&cargo).display()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(60).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(LabError::Build(format!(
            "`cargo build -p lvsd` failed ({}):\n{}",
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

/// The workspace root: this crate lives in `<root>/tests`.
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Whether `binary` exists and is newer than every source it is built from.
fn is_fresh(binary: &Path, workspace: &Path) -> bool {
    let Ok(built) = binary.metadata().and_then(|m| m.modified()) else {
        return false;
    };
    let mut newest = SystemTime::UNIX_EPOCH;
    for rel in [
        "Cargo.toml",
        "Cargo.lock",
        "lvsd/Cargo.toml",
        "lvsd/src",
        "lvs-proto/Cargo.toml",
        "lvs-proto/src",
        "tests/Cargo.toml",
        "tests/src",
    ] {
        newest_mtime(&workspace.join(rel), &mut newest);
    }
    built >= newest
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

/// A running lvsd inside a director namespace.
#[derive(Debug)]
pub struct LvsdProcess {
    process: Process,
    config_path: PathBuf,
    logs: LogFiles,
}

impl LvsdProcess {
    pub(crate) fn new(process: Process, config_path: PathBuf, logs: LogFiles) -> Self {
        Self {
            process,
            config_path,
            logs,
        }
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

    /// Replace the config file's contents (then [`LvsdProcess::reload`]).
    pub fn write_config(&self, config_toml: &str) -> Result<()> {
        std::fs::write(&self.config_path, config_toml)
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
