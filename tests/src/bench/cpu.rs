//! CPU accounting from `/proc`: one process (`/proc/PID/stat`, all its threads) and the
//! whole machine (`/proc/stat`, the aggregate `cpu` line).
//!
//! Invariants: readers never panic on odd `/proc` text (a missing or malformed field reads
//! as an error or as `None`); percentages are of *one* core, so a process using both cores
//! of a 2-vCPU machine reads 200 %.

use std::time::{Duration, Instant};

use crate::error::{Context, LabError, Result};

/// Clock ticks per second of `/proc` times (`sysconf(_SC_CLK_TCK)`, 100 if unknown).
pub fn clock_ticks() -> u64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(ticks)) if ticks > 0 => u64::try_from(ticks).unwrap_or(100),
        _ => 100,
    }
}

/// utime + stime of process `pid` (all threads), in clock ticks.
pub fn process_ticks(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_ctx(|| format!("reading {path}"))?;
    parse_process_ticks(&text)
        .ok_or_else(|| LabError::Protocol(format!("{path}: unexpected format")))
}

/// utime + stime from the text of `/proc/PID/stat`. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted after the *last* `)`.
fn parse_process_ticks(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After `)`: field 3 (state) is index 0, so utime (14) is index 11 and stime (15) 12.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The aggregate `cpu` line of `/proc/stat`, in clock ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MachineTicks {
    /// user + nice.
    pub user: u64,
    /// system.
    pub system: u64,
    /// irq + softirq.
    pub irq: u64,
    /// idle + iowait.
    pub idle: u64,
    /// steal.
    pub steal: u64,
}

impl MachineTicks {
    /// Read `/proc/stat` now.
    pub fn now() -> Result<Self> {
        let text = std::fs::read_to_string("/proc/stat").ctx("reading /proc/stat")?;
        parse_machine_ticks(&text)
            .ok_or_else(|| LabError::Protocol("/proc/stat: no usable cpu line".into()))
    }

    fn total(&self) -> u64 {
        self.user + self.system + self.irq + self.idle + self.steal
    }
}

fn parse_machine_ticks(text: &str) -> Option<MachineTicks> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    if v.len() < 4 {
        return None;
    }
    Some(MachineTicks {
        user: at(0) + at(1),
        system: at(2),
        idle: at(3) + at(4),
        irq: at(5) + at(6),
        steal: at(7),
    })
}

/// CPU used during one measurement.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuUse {
    /// The director's process (lvsd or HAProxy), % of one core; `None` for kernel paths.
    pub director_pct: Option<f64>,
    /// Machine-wide system + irq + softirq time, % of one core (everything on the machine:
    /// the client, the director's kernel work, the real servers).
    pub machine_kernel_pct: f64,
    /// Machine-wide non-idle time, % of one core.
    pub machine_busy_pct: f64,
}

/// A running CPU measurement: [`CpuMeter::start`], the work, [`CpuMeter::finish`].
#[derive(Debug)]
pub struct CpuMeter {
    pid: Option<u32>,
    process: Option<u64>,
    machine: MachineTicks,
    started: Instant,
}

impl CpuMeter {
    /// Start measuring the machine and, if given, process `pid`.
    pub fn start(pid: Option<u32>) -> Result<Self> {
        let process = pid.map(process_ticks).transpose()?;
        Ok(Self {
            pid,
            process,
            machine: MachineTicks::now()?,
            started: Instant::now(),
        })
    }

    /// What was used since [`CpuMeter::start`].
    pub fn finish(self) -> Result<CpuUse> {
        let wall = self.started.elapsed().max(Duration::from_millis(1));
        let machine = MachineTicks::now()?;
        let hz = clock_ticks() as f64;
        let pct = |ticks: u64| ticks as f64 / hz / wall.as_secs_f64() * 100.0;
        let director_pct = match (self.pid, self.process) {
            (Some(pid), Some(before)) => Some(pct(process_ticks(pid)?.saturating_sub(before))),
            _ => None,
        };
        let d = |now: u64, then: u64| now.saturating_sub(then);
        let kernel = d(machine.system, self.machine.system) + d(machine.irq, self.machine.irq);
        let busy = d(machine.total(), self.machine.total())
            .saturating_sub(d(machine.idle, self.machine.idle));
        Ok(CpuUse {
            director_pct,
            machine_kernel_pct: pct(kernel),
            machine_busy_pct: pct(busy),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_stat_with_odd_names() {
        let line = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 500 0 0 0 17 23 0 0 20 0 3 0 \
                    100 1000 10 18446744073709551615";
        assert_eq!(parse_process_ticks(line), Some(40));
        assert_eq!(parse_process_ticks("4242 (x) S 1"), None);
        assert_eq!(parse_process_ticks("garbage"), None);
    }

    #[test]
    fn machine_stat() {
        let text = "cpu  10 2 30 400 5 6 7 8 0 0\ncpu0 1 1 1 1 1 1 1 1 0 0\n";
        let t = parse_machine_ticks(text);
        assert_eq!(
            t,
            Some(MachineTicks {
                user: 12,
                system: 30,
                irq: 13,
                idle: 405,
                steal: 8
            })
        );
        assert_eq!(parse_machine_ticks("cpu0 1 2 3 4\n"), None);
        assert_eq!(parse_machine_ticks("cpu  1 x 3 4\n"), None);
    }
}
