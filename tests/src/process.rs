//! Child processes of a lab: spawning, signalling, and guaranteed cleanup.
//!
//! Invariants:
//! - Every child is forked by the lab's *spawner thread*, which lives exactly as long as the lab.
//!   Children arm `PR_SET_PDEATHSIG = SIGKILL`, which fires when the forking thread exits, so a
//!   child cannot outlive its lab — not even when the test process is SIGKILLed.
//! - Each child leads its own process group (`process_group(0)`); the final SIGKILL goes to
//!   the group so helpers it forked die too.
//! - A child's pid is only signalled while its [`std::process::Child`] is not yet reaped (the
//!   check and the `kill` happen under one lock), so a recycled pid is never hit.
//! - Shutdown (`Lab` drop, `Lab::stop_all`) SIGTERMs every live child at once, waits up to
//!   [`SHUTDOWN_GRACE`] for all of them together, SIGKILLs the rest and reaps everything.

use std::fmt;
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use crate::error::{Context, LabError, Result};

/// How long lab shutdown (`Lab` drop, `Lab::stop_all`) waits after SIGTERM.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

const POLL: Duration = Duration::from_millis(10);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave the data inconsistent (they guard
    // a Child or a list), so poisoning is ignored.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A child process started in a lab namespace. Cheap to clone; all clones refer to the same
/// child. The lab kills it on drop if it is still running.
#[derive(Clone)]
pub struct Process {
    inner: Arc<ProcessInner>,
}

struct ProcessInner {
    name: String,
    pid: u32,
    child: Mutex<Child>,
}

impl fmt::Debug for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Process")
            .field("name", &self.inner.name)
            .field("pid", &self.inner.pid)
            .finish()
    }
}

impl Process {
    fn new(name: String, child: Child) -> Self {
        Self {
            inner: Arc::new(ProcessInner {
                name,
                pid: child.id(),
                child: Mutex::new(child),
            }),
        }
    }

    /// The name given at spawn time (host name or e.g. `lvsd@director1`).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.inner.pid
    }

    fn nix_pid(&self) -> Result<Pid> {
        i32::try_from(self.inner.pid)
            .map(Pid::from_raw)
            .map_err(|_| LabError::Invalid(format!("pid {} out of range", self.inner.pid)))
    }

    /// Send `signal` to the process if it is still running (no-op once it has exited).
    pub fn signal(&self, signal: Signal) -> Result<()> {
        let mut child = lock(&self.inner.child);
        if child
            .try_wait()
            .with_ctx(|| format!("waiting for {}", self.inner.name))?
            .is_some()
        {
            return Ok(());
        }
        match kill(self.nix_pid()?, signal) {
            Ok(()) | Err(Errno::ESRCH) => Ok(()),
            Err(e) => Err(e).with_ctx(|| format!("sending {signal} to {}", self.inner.name)),
        }
    }

    /// SIGKILL the process and its process group if it is still running (does not wait).
    fn kill_group(&self) {
        let mut child = lock(&self.inner.child);
        if matches!(child.try_wait(), Ok(None)) {
            if let Ok(pid) = self.nix_pid() {
                // The child is not reaped, so its pid (= its pgid) cannot have been recycled.
                let _ = killpg(pid, Signal::SIGKILL);
                let _ = kill(pid, Signal::SIGKILL);
            }
        }
    }

    /// The exit status if the process has exited (reaping it), `None` while it runs.
    pub fn try_wait(&self) -> Result<Option<ExitStatus>> {
        lock(&self.inner.child)
            .try_wait()
            .with_ctx(|| format!("waiting for {}", self.inner.name))
    }

    /// Whether the process is still running.
    pub fn is_running(&self) -> bool {
        matches!(self.try_wait(), Ok(None))
    }

    /// Wait up to `timeout` for the process to exit.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            thread::sleep(POLL);
        }
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL (process group) and reap.
    ///
    /// Returns the exit status if the process exited on its own within `grace`, and
    /// [`LabError::Killed`] if it had to be SIGKILLed.
    pub fn stop(&self, grace: Duration) -> Result<ExitStatus> {
        self.signal(Signal::SIGTERM)?;
        if let Some(status) = self.wait_timeout(grace)? {
            return Ok(status);
        }
        self.kill()?;
        Err(LabError::Killed {
            what: self.inner.name.clone(),
            grace,
            logs: String::new(),
        })
    }

    /// SIGKILL the process (and its process group) and reap it.
    pub fn kill(&self) -> Result<ExitStatus> {
        self.kill_group();
        match self.wait_timeout(Duration::from_secs(10))? {
            Some(status) => Ok(status),
            None => Err(LabError::Timeout {
                what: format!("{} to die after SIGKILL", self.inner.name),
                after: Duration::from_secs(10),
                logs: String::new(),
            }),
        }
    }

    /// Take the child's stdout pipe (only if the command was spawned with `Stdio::piped()`).
    pub fn take_stdout(&self) -> Option<ChildStdout> {
        lock(&self.inner.child).stdout.take()
    }

    /// Take the child's stderr pipe (only if the command was spawned with `Stdio::piped()`).
    pub fn take_stderr(&self) -> Option<ChildStderr> {
        lock(&self.inner.child).stderr.take()
    }
}

type SpawnJob = (Command, mpsc::Sender<std::io::Result<Child>>);

struct Spawner {
    jobs: mpsc::Sender<SpawnJob>,
    thread: JoinHandle<()>,
}

/// Owns the spawner thread and every child of one lab.
pub(crate) struct Registry {
    label: String,
    spawner: Mutex<Option<Spawner>>,
    processes: Mutex<Vec<Process>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("label", &self.label)
            .field("processes", &*lock(&self.processes))
            .finish()
    }
}

impl Registry {
    pub(crate) fn new(label: &str) -> Result<Arc<Self>> {
        let (jobs, queue) = mpsc::channel::<SpawnJob>();
        let thread = thread::Builder::new()
            .name(format!("spawner-{label}"))
            .spawn(move || {
                for (mut cmd, reply) in queue {
                    if let Err(mpsc::SendError(Ok(mut orphan))) = reply.send(cmd.spawn()) {
                        // The requester is gone; nobody would ever stop this child.
                        let _ = orphan.kill();
                        let _ = orphan.wait();
                    }
                }
            })
            .ctx("spawning the spawner thread")?;
        Ok(Arc::new(Self {
            label: label.to_owned(),
            spawner: Mutex::new(Some(Spawner { jobs, thread })),
            processes: Mutex::new(Vec::new()),
        }))
    }

    /// Spawn `cmd` on the spawner thread and register the child.
    pub(crate) fn spawn(&self, name: String, cmd: Command) -> Result<Process> {
        let (reply, response) = mpsc::channel();
        {
            let spawner = lock(&self.spawner);
            let spawner = spawner.as_ref().ok_or(LabError::LabGone)?;
            spawner
                .jobs
                .send((cmd, reply))
                .map_err(|_| LabError::LabGone)?;
        }
        let child = response
            .recv()
            .map_err(|_| LabError::LabGone)?
            .with_ctx(|| format!("spawning {name}"))?;
        let process = Process::new(name, child);
        let mut processes = lock(&self.processes);
        // Forget children that already exited and were reaped by their owner.
        processes.retain(Process::is_running);
        processes.push(process.clone());
        Ok(process)
    }

    /// Stop every child (SIGTERM, [`SHUTDOWN_GRACE`], SIGKILL) and end the spawner thread.
    /// Idempotent. Returns the names of children that had to be SIGKILLed.
    pub(crate) fn shutdown(&self) -> Vec<String> {
        let processes = std::mem::take(&mut *lock(&self.processes));
        for p in &processes {
            let _ = p.signal(Signal::SIGTERM);
        }
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        let mut killed = Vec::new();
        for p in &processes {
            let left = deadline.saturating_duration_since(Instant::now());
            if matches!(p.wait_timeout(left), Ok(Some(_))) {
                continue;
            }
            if p.kill().is_err() {
                tracing::warn!(process = p.name(), pid = p.pid(), "child did not die");
            }
            killed.push(p.name().to_owned());
        }
        if let Some(Spawner { jobs, thread }) = lock(&self.spawner).take() {
            drop(jobs);
            let _ = thread.join();
        }
        killed
    }
}
