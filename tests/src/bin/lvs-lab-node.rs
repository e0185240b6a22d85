//! Standalone node program for labs: `lvs-lab-node lab-node backend --name rs1`.
//!
//! Takes the same arguments as `lvsd lab-node ...`, so either can be a lab's `node_exe`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "lab-node") {
        args.remove(0);
    }
    let code = lvs_lab::node::run(&args);
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
