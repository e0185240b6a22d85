//! `lvs-tui`: the operator console for lvsd (see `lvs_tui::console`).

use std::process::ExitCode;

use clap::Parser;
use lvs_tui::console::{self, ConsoleArgs};

/// The full-screen console for lvsd directors: topology, services, decisions,
/// connections, VRRP and events; weight edits, drains and kills with confirmation.
#[derive(Debug, Parser)]
#[command(name = "lvs-tui", version)]
struct Cli {
    #[command(flatten)]
    console: ConsoleArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match console::run(cli.console) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lvs-tui: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
