//! The audit log: one line per mutating call, whatever its result.
//!
//! Every line goes to the log (tracing target `audit`, stderr) and, when `[control]
//! audit_log` is set, is appended to that file prefixed with a UTC timestamp. A line says
//! who (user, uid, pid), what (the RPC and its arguments) and the result (`ok: ...` or
//! `error: ...`), e.g.
//!
//! ```text
//! 2026-11-23T21:30:05Z uid=1000 user=alice pid=4242 set_weight tcp 203.0.113.10:80 192.0.2.11:80 weight=5 -> ok: weight 1 -> 5
//! ```
//!
//! A client of the TLS listener is named by its certificate and address instead:
//! `tls=ops-admin peer=192.0.2.50:40312 set_weight ...`.
//!
//! The file is opened once, with `O_APPEND`, and each line is written with one `write`, so
//! lines from concurrent calls never interleave. A failing write is reported in the log and
//! does not fail the call (the change has already been made).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use lvs_proto::Actor;
use tracing::{info, warn};

/// Where audit lines go.
#[derive(Debug, Default)]
pub struct Audit {
    file: Option<Mutex<File>>,
}

impl Audit {
    /// Log only.
    pub fn log_only() -> Audit {
        Audit { file: None }
    }

    /// Log and append to `path` (created 0640 if missing).
    pub fn with_file(path: &Path) -> std::io::Result<Audit> {
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)?;
        Ok(Audit {
            file: Some(Mutex::new(file)),
        })
    }

    /// Records one call: `what` (RPC and arguments) by `who`, with its `result`.
    pub fn record(&self, who: &Actor, what: &str, result: &str) {
        let line = line(who, what, result);
        info!(target: "audit", "audit: {line}");
        if let Some(file) = &self.file {
            let stamped = format!("{} {line}\n", utc_timestamp(SystemTime::now()));
            let mut f = match file.lock() {
                Ok(f) => f,
                // A panic while holding the lock cannot leave a half line: use it anyway.
                Err(poisoned) => poisoned.into_inner(),
            };
            if let Err(e) = f.write_all(stamped.as_bytes()) {
                warn!("audit log: {e}");
            }
        }
    }
}

/// The text of an audit line (without the timestamp).
pub fn line(who: &Actor, what: &str, result: &str) -> String {
    if let Some(t) = &who.tls {
        return format!("tls={} peer={} {what} -> {result}", t.name, t.addr);
    }
    let mut s = format!("uid={}", who.uid);
    if let Some(u) = &who.user {
        s.push_str(&format!(" user={u}"));
    }
    if let Some(pid) = who.pid {
        s.push_str(&format!(" pid={pid}"));
    }
    format!("{s} {what} -> {result}")
}

/// `YYYY-MM-DDTHH:MM:SSZ` for `t` (UTC).
pub fn utc_timestamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(i64::try_from(days).unwrap_or(0));
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(utc_timestamp(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_469_405);
        assert_eq!(utc_timestamp(t), "2026-11-23T21:30:05Z");
        // A leap day.
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(utc_timestamp(t), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn lines_name_who_what_and_result() {
        let who = Actor {
            uid: 1000,
            gid: 1000,
            pid: Some(4242),
            user: Some("alice".into()),
            tls: None,
        };
        assert_eq!(
            line(&who, "drain tcp 203.0.113.10:80 192.0.2.11:80", "ok"),
            "uid=1000 user=alice pid=4242 drain tcp 203.0.113.10:80 192.0.2.11:80 -> ok"
        );
    }

    #[test]
    fn appends_to_the_file() {
        let dir = std::env::temp_dir().join(format!("lvsd-audit-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("audit.log");
        let _ = std::fs::remove_file(&path);
        let who = Actor {
            uid: 0,
            gid: 0,
            pid: None,
            user: None,
            tls: None,
        };
        let a = Audit::with_file(&path).unwrap_or_else(|e| panic!("{e}"));
        a.record(&who, "zero_counters all", "ok");
        a.record(&who, "zero_counters all", "ok");
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(
            text.lines()
                .all(|l| l.ends_with("uid=0 zero_counters all -> ok"))
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
