//! `lvs-bench`: measure every path through the director side by side (see
//! `lvs_lab::bench` and docs/benchmarks.md). Run as root:
//!
//! ```text
//! cargo run --release -p lvs-lab --bin lvs-bench -- [--quick] [--json FILE] [--ipv6]
//!     [--only kernel,nftables,haproxy,lvsd-nat,lvsd-dr,kernel6,nftables6,lvsd-nat6,lvsd-dr6]
//!     [--no-idle]
//! ```
//!
//! Exit status: 0 after a run (failed paths are reported in the table's notes), 1 if the lab
//! could not be built or the JSON not written, 2 on a usage error, 130 when interrupted.

use std::process::ExitCode;

use lvs_lab::bench::{self, Options, PathKind};

const USAGE: &str =
    "usage: lvs-bench [--quick] [--json FILE] [--ipv6] [--only PATH[,PATH...]] [--no-idle]
  IPv4 paths: kernel, nftables, haproxy, lvsd-nat, lvsd-dr (default: these)
  IPv6 paths: kernel6, nftables6, lvsd-nat6, lvsd-dr6 (kernel routing and ip6 DNAT are the
              IPv6 baselines; lvsd NAT66 and DR over IPv6)
  --ipv6      also measure the IPv6 paths (about twice as long); --only may name them alone
  --quick     2 s per measurement instead of 5 s (a smoke run)
  --json FILE also write the results as JSON
  --no-idle   skip lvsd's 10 s idle-CPU measurement";

fn parse(args: &[String]) -> Result<(Options, Option<String>), String> {
    let mut opts = Options::default();
    let mut json = None;
    let (mut ipv6, mut only) = (false, false);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => opts.quick = true,
            "--no-idle" => opts.idle = false,
            "--ipv6" => ipv6 = true,
            "--json" => json = Some(it.next().ok_or("--json needs a file")?.clone()),
            "--only" => {
                let list = it.next().ok_or("--only needs a list of paths")?;
                opts.paths = list
                    .split(',')
                    .map(|w| PathKind::parse(w.trim()).ok_or(format!("unknown path {w:?}")))
                    .collect::<Result<_, _>>()?;
                only = true;
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    // `--only` names the paths exactly (IPv6 ones included); `--ipv6` without it adds the
    // IPv6 paths to the default IPv4 ones.
    if ipv6 && !only {
        opts.paths = PathKind::ALL.to_vec();
    }
    Ok((opts, json))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (opts, json_path) = match parse(&args) {
        Ok(parsed) => parsed,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("lvs-bench: {msg}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(if msg.is_empty() { 0 } else { 2 });
        }
    };
    if !lvs_lab::is_root() {
        eprintln!("lvs-bench: needs root (it builds network namespaces)");
        return ExitCode::from(1);
    }
    if let Err(e) = bench::install_interrupt_handler() {
        eprintln!("lvs-bench: {e}");
        return ExitCode::from(1);
    }
    let _ = lvs_lab::raise_nofile_limit();
    let report = match bench::run(&opts, |line| eprintln!("lvs-bench: {line}")) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("lvs-bench: {e}");
            return ExitCode::from(if bench::interrupted() { 130 } else { 1 });
        }
    };
    println!(
        "\nlvs-bench: {} × {} real servers, {:.0} s per measurement, {} connections in flight, \
         latency at {} req/s (new connection each); {}\n",
        report.n_real_servers,
        report.real_servers,
        report.phase_secs,
        report.concurrency,
        report.latency_rate,
        report.machine
    );
    print!("{}", report.table());
    let notes = report.notes();
    if !notes.is_empty() {
        println!("\n{notes}");
    }
    if let Some(path) = json_path {
        let text = match serde_json::to_string_pretty(&report.json()) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("lvs-bench: encoding JSON: {e}");
                return ExitCode::from(1);
            }
        };
        if let Err(e) = std::fs::write(&path, text + "\n") {
            eprintln!("lvs-bench: writing {path}: {e}");
            return ExitCode::from(1);
        }
        eprintln!("lvs-bench: wrote {path}");
    }
    if bench::interrupted() {
        return ExitCode::from(130);
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn ipv6_flag_and_only() {
        let paths = |words: &[&str]| parse(&args(words)).map(|(o, _)| o.paths);
        assert_eq!(paths(&[]), Ok(PathKind::IPV4.to_vec()));
        assert_eq!(paths(&["--ipv6"]), Ok(PathKind::ALL.to_vec()));
        assert_eq!(
            paths(&["--ipv6", "--only", "kernel6,lvsd-dr6"]),
            Ok(vec![PathKind::Kernel6, PathKind::LvsdDr6])
        );
        assert_eq!(
            paths(&["--only", "lvsd-nat6"]),
            Ok(vec![PathKind::LvsdNat6])
        );
        assert!(paths(&["--only", "lvsd-tun6"]).is_err());
    }
}
