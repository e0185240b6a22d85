//! `lvsctl`: the scripting CLI of lvsd (see [`lvs_tui::cli`]).

fn main() -> std::process::ExitCode {
    lvs_tui::cli::main_with_args(std::env::args_os().collect())
}
