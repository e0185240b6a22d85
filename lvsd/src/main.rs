//! The `lvsd` command: run the director, check a configuration, prepare a real server, or
//! run the demo lab.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Userspace Linux Virtual Server director.
#[derive(Debug, Parser)]
#[command(name = "lvsd", version, args_conflicts_with_subcommands = true)]
struct Cli {
    /// Configuration file; runs the director in the foreground until SIGINT/SIGTERM.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the director (same as `lvsd --config FILE`).
    Run {
        /// Configuration file.
        #[arg(long, short = 'c', value_name = "FILE")]
        config: PathBuf,
    },
    /// Validate a configuration file: exit 0 if it is good, else name file, line and key.
    Check {
        /// Configuration file.
        #[arg(long, short = 'c', value_name = "FILE")]
        config: PathBuf,
    },
    /// Build a lab of network namespaces (client, router, director, 3 real servers), run
    /// lvsd on it and show live how requests to the VIP spread over the real servers.
    Demo {
        /// Stop after this many seconds (default: run until Ctrl-C).
        #[arg(long, value_name = "SECS")]
        duration: Option<u64>,
        /// Scheduler for the demo service.
        #[arg(long, default_value = "wrr")]
        scheduler: String,
        /// Forwarding method for the demo's real servers (nat, dr or tun).
        #[arg(long, default_value = "nat")]
        forwarding: String,
        /// Print per-server counts every second instead of opening the console.
        #[arg(long)]
        no_console: bool,
    },
    /// Prepare this host as a real server (IPv4 or IPv6 VIPs on a non-ARPing interface,
    /// arp_ignore / arp_announce for IPv4; for TUN a userspace decapsulator of IPv4/IPv6 in
    /// IPv4/IPv6) until SIGINT/SIGTERM, then undo every change.
    Realserver {
        /// A virtual address this host serves (repeat for more).
        #[arg(long = "vip", value_name = "ADDR", required = true)]
        vips: Vec<std::net::IpAddr>,
        /// Forwarding method of the director towards this host: dr or tun.
        #[arg(long, value_name = "dr|tun")]
        mode: lvsd::realserver::Mode,
        /// The non-ARPing interface that holds the VIPs.
        #[arg(long, value_name = "NAME", default_value = "lo")]
        dev: String,
        /// Print what would be changed, change nothing.
        #[arg(long)]
        check: bool,
    },
    /// Lab node roles (backends) used by the demo and the integration tests.
    #[command(hide = true)]
    LabNode {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = match (cli.command, cli.config) {
        (Some(c), _) => c,
        (None, Some(config)) => Command::Run { config },
        (None, None) => {
            eprintln!("lvsd: nothing to do: give --config FILE (or see `lvsd --help`)");
            return ExitCode::from(2);
        }
    };
    // The lab nodes log nothing; the demo's console logs to its own file (a log line on the
    // terminal would scroll the console's screen).
    if !matches!(
        command,
        Command::LabNode { .. } | Command::Demo { .. } | Command::Realserver { .. }
    ) {
        lvsd::daemon::init_logging();
    }
    match command {
        Command::Run { config } => lvsd::daemon::run_from_file(&config),
        Command::Check { config } => match lvsd::config::Config::load(&config) {
            Ok(c) => {
                let servers: usize = c.services.iter().map(|s| s.real_servers.len()).sum();
                println!(
                    "{}: ok ({} virtual services, {} real servers)",
                    config.display(),
                    c.services.len(),
                    servers
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("lvsd: {e}");
                ExitCode::from(2)
            }
        },
        Command::Demo {
            duration,
            scheduler,
            forwarding,
            no_console,
        } => lvsd::demo::run(duration, &scheduler, &forwarding, !no_console),
        Command::Realserver {
            vips,
            mode,
            dev,
            check,
        } => lvsd::realserver::run(&lvsd::realserver::Options { vips, mode, dev }, check),
        Command::LabNode { args } => {
            let code = lvs_lab::node::run(&args);
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
    }
}
