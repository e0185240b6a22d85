//! `exec`: run a program (keepalived `MISC_CHECK`).
//!
//! The command is an argv (no shell, no PATH search), started in a process group of its
//! own with stdin, stdout and stderr on /dev/null (nothing to buffer) and the environment
//! of lvsd plus `LVSD_CHECK_ADDRESS` and `LVSD_CHECK_PORT` (the target, so one service-wide
//! command can check each real server; an IPv6 address is given bare, `2001:db8:b::11`). Exit codes follow `MISC_CHECK`: 0 passes, 1 fails,
//! 2..=255 pass and, with `dynamic_weight` (`misc_dynamic`), ask for weight `code - 2`.
//! A death by signal fails. At the timeout the whole process group is killed (SIGKILL) and
//! the check fails; a command that cannot start fails with the reason. Invariant: no
//! process of a check outlives it (the group is killed on every exit path, including the
//! check's task being dropped).

use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::Command;

use crate::config::ExecCheck;

use super::checker::{Deadline, Pass};

pub(super) async fn run(
    check: &ExecCheck,
    target: SocketAddr,
    deadline: &Deadline,
) -> Result<Pass, String> {
    let Some((program, args)) = check.command.split_first() else {
        return Err("exec: empty command".into());
    };
    let mut child = Command::new(program)
        .args(args)
        .env("LVSD_CHECK_ADDRESS", target.ip().to_string())
        .env("LVSD_CHECK_PORT", target.port().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("exec: cannot start {program}: {e}"))?;
    let mut group = GroupGuard(child.id().and_then(|id| i32::try_from(id).ok()));
    let status = match deadline.run("", child.wait()).await {
        Ok(status) => status.map_err(|e| format!("exec: waiting for {program}: {e}"))?,
        Err(_) => {
            group.kill();
            // Reap it (SIGKILL is immediate; kill_on_drop covers a stuck reap).
            let grace = std::time::Duration::from_millis(100);
            let _ = tokio::time::timeout(grace, child.wait()).await;
            return Err(format!("timeout after {:?}: killed", deadline.timeout()));
        }
    };
    // The leader is gone; children it left behind in its group go with it.
    group.kill();
    match status.code() {
        Some(0) => Ok(Pass::new("exit 0".into())),
        Some(1) => Err("exit 1".into()),
        Some(code @ 2..=255) if check.dynamic_weight => {
            let weight = u32::try_from(code - 2).unwrap_or(0);
            Ok(Pass {
                message: format!("exit {code} (weight {weight})"),
                weight: Some(weight),
            })
        }
        Some(code) => Ok(Pass::new(format!("exit {code}"))),
        None => Err(match status.signal() {
            Some(sig) => format!("killed by signal {sig}"),
            None => "ended without an exit code".into(),
        }),
    }
}

/// Kills the check's process group when dropped (or when asked), once.
struct GroupGuard(Option<i32>);

impl GroupGuard {
    fn kill(&mut self) {
        if let Some(pgid) = self.0.take() {
            // ESRCH (already gone) is the common case after a normal exit.
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::checker::Checker;
    use super::super::testutil;
    use super::*;
    use crate::config::CheckKind;

    fn exec(argv: &[&str], dynamic_weight: bool) -> crate::config::HealthCheck {
        let mut c = testutil::check(CheckKind::Exec(ExecCheck {
            command: argv.iter().map(|a| a.to_string()).collect(),
            dynamic_weight,
        }));
        c.timeout = Duration::from_millis(500);
        c
    }

    async fn outcome(argv: &[&str], dynamic: bool) -> super::super::checker::Outcome {
        let target = "127.0.0.1:8080".parse().unwrap();
        Checker::new(&exec(argv, dynamic), target).run().await
    }

    #[tokio::test]
    async fn exit_codes_follow_misc_check() {
        let sh = |code: &str| {
            [
                "/bin/sh".to_string(),
                "-c".to_string(),
                format!("exit {code}"),
            ]
        };
        let run = |code: &'static str, dynamic| async move {
            let argv = sh(code);
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            let o = outcome(&argv, dynamic).await;
            (o.ok, o.message, o.weight)
        };
        assert_eq!(run("0", false).await, (true, "exit 0".into(), None));
        assert_eq!(run("1", false).await, (false, "exit 1".into(), None));
        assert_eq!(run("3", false).await, (true, "exit 3".into(), None));
        assert_eq!(
            run("3", true).await,
            (true, "exit 3 (weight 1)".into(), Some(1))
        );
        assert_eq!(
            run("2", true).await,
            (true, "exit 2 (weight 0)".into(), Some(0))
        );
        assert_eq!(
            run("255", true).await,
            (true, "exit 255 (weight 253)".into(), Some(253))
        );
        assert_eq!(run("0", true).await, (true, "exit 0".into(), None));
        assert_eq!(run("1", true).await, (false, "exit 1".into(), None));
        let o = outcome(&["/bin/sh", "-c", "kill -9 $$"], false).await;
        assert_eq!((o.ok, o.message.as_str()), (false, "killed by signal 9"));
    }

    #[tokio::test]
    async fn an_ipv6_target_is_in_the_environment_without_brackets() {
        let target = "[2001:db8:b::11]:8080".parse().unwrap();
        let check = exec(
            &[
                "/bin/sh",
                "-c",
                "test \"$LVSD_CHECK_ADDRESS $LVSD_CHECK_PORT\" = '2001:db8:b::11 8080'",
            ],
            false,
        );
        let o = Checker::new(&check, target).run().await;
        assert!(o.ok, "{o:?}");
    }

    #[tokio::test]
    async fn the_target_is_in_the_environment_and_no_shell_is_involved() {
        let o = outcome(
            &[
                "/bin/sh",
                "-c",
                "test \"$LVSD_CHECK_ADDRESS:$LVSD_CHECK_PORT\" = 127.0.0.1:8080",
            ],
            false,
        )
        .await;
        assert!(o.ok, "{o:?}");
        // One argv element with a space is one program name, not a command line.
        let o = outcome(&["/bin/true --version"], false).await;
        assert!(!o.ok);
        assert!(
            o.message
                .starts_with("exec: cannot start /bin/true --version: "),
            "{o:?}"
        );
    }

    #[tokio::test]
    async fn a_program_that_cannot_start_fails_with_the_reason() {
        let o = outcome(&["/nonexistent/check"], false).await;
        assert!(!o.ok);
        assert!(
            o.message
                .starts_with("exec: cannot start /nonexistent/check: "),
            "{o:?}"
        );
        assert!(o.message.contains("No such file"), "{o:?}");
    }

    #[tokio::test]
    async fn a_hung_program_is_killed_with_its_children_at_the_timeout() {
        let dir = testutil::TempDir::new();
        let pidfile = dir.path("child.pid");
        let script = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
        let o = outcome(&["/bin/sh", "-c", &script], false).await;
        assert_eq!(
            (o.ok, o.message.as_str()),
            (false, "timeout after 500ms: killed")
        );
        assert!(o.latency < Duration::from_millis(1000), "{o:?}");
        // The background sleep went with the group.
        let pid = std::fs::read_to_string(&pidfile).unwrap();
        let stat = format!("/proc/{}/stat", pid.trim());
        let mut gone = false;
        for _ in 0..50 {
            match std::fs::read_to_string(&stat) {
                Err(_) => gone = true,
                // A zombie waiting for its reaper is dead already.
                Ok(s) => {
                    gone = s
                        .rsplit(')')
                        .next()
                        .is_some_and(|r| r.trim_start().starts_with('Z'))
                }
            }
            if gone {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(gone, "{stat} still running");
    }
}
