//! Anonymous network namespaces held by a file descriptor.
//!
//! Invariants:
//! - A [`Netns`] is created by a short-lived thread that calls `unshare(CLONE_NEWNET)` and opens
//!   `/proc/thread-self/ns/net`; the thread then exits. The namespace is never mounted or named,
//!   so it lives exactly as long as this descriptor, a process inside it, or a socket created in
//!   it. A crashed test therefore cannot leak it: the kernel drops it with the last reference.
//! - The descriptor is `O_CLOEXEC`: children only enter a namespace through
//!   [`crate::Host::command`], never by inheritance.
//! - Code runs "inside" a namespace only on a fresh thread that has `setns`'d into it
//!   ([`Netns::run`]); no thread ever leaves or changes its namespace afterwards, and the
//!   caller's thread is never moved.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::panic;
use std::thread;

use nix::sched::{CloneFlags, setns, unshare};

use crate::error::{Context, LabError, Result};

/// An anonymous network namespace, alive while this value (or anything inside the namespace)
/// exists.
#[derive(Debug)]
pub struct Netns {
    fd: OwnedFd,
    inode: u64,
    label: String,
}

impl Netns {
    /// Create a new, empty namespace (only a down `lo`). `label` names threads and errors.
    pub fn new(label: &str) -> Result<Self> {
        let owned_label = label.to_owned();
        let handle = thread::Builder::new()
            .name(format!("netns-new-{label}"))
            .spawn(move || -> Result<File> {
                unshare(CloneFlags::CLONE_NEWNET)
                    .with_ctx(|| format!("unshare(CLONE_NEWNET) for {owned_label}"))?;
                File::open("/proc/thread-self/ns/net").ctx("opening /proc/thread-self/ns/net")
            })
            .ctx("spawning the namespace-creating thread")?;
        let file = match handle.join() {
            Ok(result) => result?,
            Err(payload) => panic::resume_unwind(payload),
        };
        let inode = file
            .metadata()
            .with_ctx(|| format!("fstat of the {label} namespace fd"))?
            .ino();
        Ok(Self {
            fd: OwnedFd::from(file),
            inode,
            label: label.to_owned(),
        })
    }

    /// The namespace's inode number, as in `readlink /proc/PID/ns/net` = `net:[INODE]`.
    pub fn inode(&self) -> u64 {
        self.inode
    }

    /// The label given at creation (the lab uses the host name).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Run `f` on a fresh thread that has entered this namespace and return its result.
    ///
    /// A panic inside `f` is resumed on the caller's thread. Threads that `f` spawns inherit the
    /// namespace; sockets it creates belong to the namespace for their whole life.
    pub fn run<F, T>(&self, f: F) -> Result<T>
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        thread::scope(|scope| {
            let handle = thread::Builder::new()
                .name(format!("in-{}", self.label))
                .spawn_scoped(scope, || -> Result<T> {
                    setns(self.fd.as_fd(), CloneFlags::CLONE_NEWNET)
                        .with_ctx(|| format!("setns into {}", self.label))?;
                    Ok(f())
                })
                .ctx("spawning a namespace thread")?;
            match handle.join() {
                Ok(result) => result,
                Err(payload) => panic::resume_unwind(payload),
            }
        })
    }

    /// Like [`Netns::run`] for a fallible closure, flattening the two error layers.
    pub(crate) fn run_try<F, T>(&self, f: F) -> Result<T>
    where
        F: FnOnce() -> Result<T> + Send,
        T: Send,
    {
        self.run(f)?
    }
}

impl AsFd for Netns {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Netns {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Write a sysctl of the *calling thread's* network namespace. `key` is either dotted
/// (`net.ipv4.ip_forward`) or a path below `/proc/sys` (`net/ipv4/conf/eth0/rp_filter`).
///
/// `/proc/sys/net` resolves against the namespace of the thread that opens the file, so call
/// this from inside [`Netns::run`].
pub(crate) fn write_sysctl(key: &str, value: &str) -> Result<()> {
    let path = sysctl_path(key)?;
    std::fs::write(&path, value).with_ctx(|| format!("writing {value:?} to {path}"))
}

/// Read a sysctl of the calling thread's network namespace (trailing newline removed).
pub(crate) fn read_sysctl(key: &str) -> Result<String> {
    let path = sysctl_path(key)?;
    let text = std::fs::read_to_string(&path).with_ctx(|| format!("reading {path}"))?;
    Ok(text.trim_end().to_owned())
}

fn sysctl_path(key: &str) -> Result<String> {
    if key.is_empty() || key.contains("..") {
        return Err(LabError::Invalid(format!("sysctl key {key:?}")));
    }
    let rel = if key.contains('/') {
        key.trim_start_matches('/').to_owned()
    } else {
        key.replace('.', "/")
    };
    if !rel.starts_with("net/") {
        return Err(LabError::Invalid(format!(
            "sysctl {key:?} is not below net/ (only network sysctls are per namespace)"
        )));
    }
    Ok(format!("/proc/sys/{rel}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_paths() {
        assert_eq!(
            sysctl_path("net.ipv4.ip_forward").unwrap(),
            "/proc/sys/net/ipv4/ip_forward"
        );
        assert_eq!(
            sysctl_path("net/ipv4/conf/eth0/rp_filter").unwrap(),
            "/proc/sys/net/ipv4/conf/eth0/rp_filter"
        );
        assert!(sysctl_path("kernel.pid_max").is_err());
        assert!(sysctl_path("net/../kernel/x").is_err());
    }
}
