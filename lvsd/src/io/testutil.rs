//! Test helpers for privileged tests (compiled only for `cargo test`): root detection with
//! a loud SKIP, and throw-away network namespaces that are deleted even when a test fails.
//!
//! Namespaces are created with `ip netns add` (tests may run tools; lvsd itself never
//! does) under unique names (`lvsdt-<tag>-<pid>-<n>`); code runs inside one on a fresh
//! thread that has `setns(2)`-ed into it, so the test thread itself never changes
//! namespace.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Whether the test runs as root. If not, prints a loud SKIP line naming `test`.
pub(crate) fn root_or_skip(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        // Written to the stderr handle directly, not with eprintln!, so libtest's output
        // capture does not swallow it.
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "!!!!!! SKIP {test}: needs root (network namespaces, raw sockets) !!!!!!"
        );
    }
    root
}

/// Index of interface `name` in the calling thread's network namespace.
pub(crate) fn ifindex(name: &str) -> u32 {
    let c = std::ffi::CString::new(name).expect("interface name");
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    assert_ne!(
        idx,
        0,
        "no interface {name}: {}",
        std::io::Error::last_os_error()
    );
    idx
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A named network namespace, deleted on drop.
#[derive(Debug)]
pub(crate) struct Netns {
    pub(crate) name: String,
}

impl Netns {
    pub(crate) fn new(tag: &str) -> Netns {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("lvsdt-{tag}-{}-{n}", std::process::id());
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .expect("run ip");
        assert!(
            out.status.success(),
            "ip netns add {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ns = Netns { name };
        ns.ip("link set lo up");
        ns
    }

    /// Runs `ip -n <ns> <args>` and panics if it fails.
    pub(crate) fn ip(&self, args: &str) {
        let mut cmd = Command::new("ip");
        cmd.args(["-n", &self.name]).args(args.split_whitespace());
        let out = cmd.output().expect("run ip");
        assert!(
            out.status.success(),
            "ip -n {} {args}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs a program inside the namespace (`ip netns exec`) and returns its output.
    pub(crate) fn exec(&self, argv: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(argv)
            .output()
            .expect("run ip netns exec")
    }

    /// Runs `f` on a new thread that has entered the namespace; panics propagate.
    pub(crate) fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        run_in_netns(&self.name, f)
    }
}

/// Runs `f` on a new thread that has entered the named namespace (`/run/netns/<name>`);
/// panics propagate.
pub(crate) fn run_in_netns<R: Send>(name: &str, f: impl FnOnce() -> R + Send) -> R {
    let path = format!("/run/netns/{name}");
    std::thread::scope(|s| {
        let h = s.spawn(move || {
            let file = File::open(&path).expect("open netns file");
            // SAFETY: `file` is an open namespace file; setns only changes the calling
            // thread's network namespace.
            let ret = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(ret, 0, "setns {path}: {}", std::io::Error::last_os_error());
            f()
        });
        match h.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

impl Drop for Netns {
    fn drop(&mut self) {
        let out = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!(
                "warning: ip netns del {}: {}",
                self.name,
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => eprintln!("warning: ip netns del {}: {e}", self.name),
        }
    }
}

/// Drops CAP_NET_ADMIN (effective and permitted) from the calling thread only
/// (capabilities are per thread), so a test can see what an unprivileged lvsd sees.
pub(crate) fn drop_cap_net_admin_in_this_thread() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    const CAP_NET_ADMIN: u32 = 12;
    let mut hdr = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget writes two Data structs (version 3) into `data`; both pointers are
    // valid for the call.
    let ret =
        unsafe { libc::syscall(libc::SYS_capget, &mut hdr as *mut Header, data.as_mut_ptr()) };
    assert_eq!(ret, 0, "capget: {}", std::io::Error::last_os_error());
    data[0].effective &= !(1 << CAP_NET_ADMIN);
    data[0].permitted &= !(1 << CAP_NET_ADMIN);
    // SAFETY: as above; capset only reads `hdr` and `data` and applies to this thread.
    let ret = unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut Header, data.as_ptr()) };
    assert_eq!(ret, 0, "capset: {}", std::io::Error::last_os_error());
}

/// Runs `f` on a new thread whose real, effective and saved uid and gid are `uid`/`gid`
/// and which has no supplementary groups; panics propagate. Only that thread changes
/// (raw syscalls: glibc's wrappers would change every thread of the process), so a test
/// can connect to a Unix socket as another user (SO_PEERCRED records the connecting
/// thread's credentials). Threads `f` spawns inherit them. Needs root.
pub(crate) fn run_as_user<R: Send>(uid: u32, gid: u32, f: impl FnOnce() -> R + Send) -> R {
    std::thread::scope(|s| {
        let h = s.spawn(move || {
            // SAFETY: setgroups(0, NULL) reads no memory; it and the set*id calls below
            // take plain integers and apply to the calling thread only (raw syscalls).
            let ret = unsafe { libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<u32>()) };
            assert_eq!(ret, 0, "setgroups: {}", std::io::Error::last_os_error());
            // SAFETY: as above.
            let ret = unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) };
            assert_eq!(ret, 0, "setresgid: {}", std::io::Error::last_os_error());
            // SAFETY: as above.
            let ret = unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) };
            assert_eq!(ret, 0, "setresuid: {}", std::io::Error::last_os_error());
            f()
        });
        match h.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}
