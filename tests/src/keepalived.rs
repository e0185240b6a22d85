//! keepalived (the Debian package) as the other VRRP router in a lab director namespace,
//! for interoperability tests.
//!
//! Invariants: keepalived runs in the foreground (`-n`), VRRP only (`-P`), with its pid
//! files, configuration and logs in the lab's work directory, as a lab child process —
//! so it dies with the lab (and with the test process) like every other lab process.
//! [`Keepalived`] also kills it (and its VRRP child: same process group) when dropped.
//! The configuration holds one `vrrp_instance` and nothing else (no `virtual_server`, no
//! checker, no script).

use std::fmt::Write as _;
use std::fs;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::error::{Context, Result};
use crate::lab::{Lab, LogFiles};
use crate::process::Process;

static SEQ: AtomicU64 = AtomicU64::new(0);

/// One keepalived `vrrp_instance`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeepalivedSpec {
    /// `virtual_router_id`.
    pub vrid: u8,
    /// `priority`.
    pub priority: u8,
    /// `version` (2 or 3).
    pub version: u8,
    /// `advert_int` (v2: whole seconds).
    pub advert_interval: Duration,
    /// `interface`.
    pub interface: String,
    /// `virtual_ipaddress` entries (`203.0.113.10/24`).
    pub vips: Vec<String>,
    /// `unicast_src_ip`, with unicast peers.
    pub unicast_src: Option<Ipv4Addr>,
    /// `unicast_peer` (empty = multicast).
    pub unicast_peers: Vec<Ipv4Addr>,
    /// false = `nopreempt`.
    pub preempt: bool,
}

impl KeepalivedSpec {
    /// The configuration file's text.
    pub fn config(&self) -> String {
        let mut s = String::from("global_defs {\n    router_id lvs_lab\n}\n\n");
        let _ = write!(
            s,
            "vrrp_instance VI_1 {{\n    state BACKUP\n    interface {}\n    virtual_router_id {}\n\
             \x20   priority {}\n    version {}\n    advert_int {}\n",
            self.interface,
            self.vrid,
            self.priority,
            self.version,
            self.advert_interval.as_secs_f64()
        );
        if !self.preempt {
            s.push_str("    nopreempt\n");
        }
        s.push_str("    virtual_ipaddress {\n");
        for v in &self.vips {
            let _ = writeln!(s, "        {v}");
        }
        s.push_str("    }\n");
        if let Some(src) = self.unicast_src {
            let _ = writeln!(s, "    unicast_src_ip {src}");
        }
        if !self.unicast_peers.is_empty() {
            s.push_str("    unicast_peer {\n");
            for p in &self.unicast_peers {
                let _ = writeln!(s, "        {p}");
            }
            s.push_str("    }\n");
        }
        s.push_str("}\n");
        s
    }
}

/// A running keepalived (module doc).
#[derive(Debug)]
pub struct Keepalived {
    process: Process,
    logs: LogFiles,
}

impl Keepalived {
    /// Starts keepalived in director `director` (1-based) with `spec`.
    pub fn start(lab: &Lab, director: usize, spec: &KeepalivedSpec) -> Result<Keepalived> {
        let host = lab.director(director);
        let stem = format!(
            "keepalived-{}-{}",
            host.name(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let dir = lab.work_dir();
        let conf = dir.join(format!("{stem}.conf"));
        fs::write(&conf, spec.config()).with_ctx(|| format!("writing {}", conf.display()))?;
        let logs = LogFiles::in_dir(dir, &stem);
        let (out, err) = logs.create()?;
        let mut cmd = host.command("keepalived");
        cmd.args(["-n", "-l", "-D", "-P", "-G", "-f"])
            .arg(&conf)
            .arg("-p")
            .arg(dir.join(format!("{stem}.pid")))
            .arg("-r")
            .arg(dir.join(format!("{stem}.vrrp.pid")))
            .stdout(out)
            .stderr(err);
        let process = host.spawn_named(format!("keepalived@{}", host.name()), cmd)?;
        Ok(Keepalived { process, logs })
    }

    /// SIGKILL keepalived and its VRRP child (one process group): a crash. Its VIPs stay
    /// where they are, as they would after a real crash.
    pub fn kill(&self) {
        let _ = self.process.kill();
    }

    /// SIGTERM (keepalived sends priority-0 adverts and removes its VIPs), SIGKILL after
    /// 5 s.
    pub fn stop(&self) {
        let _ = self.process.stop(Duration::from_secs(5));
    }

    /// Whether it still runs.
    pub fn is_running(&self) -> bool {
        self.process.is_running()
    }

    /// Its output so far.
    pub fn logs(&self) -> String {
        self.logs.render_tail(60)
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        let _ = self.process.kill();
    }
}
