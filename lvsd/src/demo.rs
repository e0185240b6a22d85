//! `lvsd demo`: a whole LVS on one machine, in one command.
//!
//! Builds a lab of network namespaces (client, router, one director, three real servers —
//! see docs/architecture.md), starts the built-in backends and this very binary as the
//! director, then sends a steady stream of HTTP requests from the client to the VIP and opens
//! the operator's console (`lvs-tui`) on the director, where the operator watches the split
//! and edits weights live; quitting the console stops the demo. Without a terminal (or with
//! `--no-console`) it prints, every second, how many each real server answered instead, until
//! Ctrl-C or `--duration`. Either way it then stops lvsd (which removes what it installed)
//! and tears the lab down.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use lvs_lab::{Lab, LabSpec, RealServerSpec, client, node, vip};

/// Gap between two requests of the demo client (about 50 requests per second).
const REQUEST_GAP: Duration = Duration::from_millis(20);

/// Runs the demo; returns the process exit code.
///
/// With `console` the operator's console (`lvs-tui`) opens on the demo's director while the
/// client sends traffic; without it (or when stdout is not a terminal) the demo prints one
/// line of per-server counts every second instead.
pub fn run(duration: Option<u64>, scheduler: &str, forwarding: &str, console: bool) -> ExitCode {
    let console = console && std::io::stdout().is_terminal();
    match demo(
        duration.map(Duration::from_secs),
        scheduler,
        forwarding,
        console,
    ) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lvsd demo: {e}");
            ExitCode::from(1)
        }
    }
}

fn demo(
    duration: Option<Duration>,
    scheduler: &str,
    forwarding: &str,
    console: bool,
) -> Result<(), String> {
    crate::daemon::check_privileges()
        .map_err(|e| format!("{e}; the demo builds network namespaces"))?;
    let (dr, tun) = match forwarding {
        "nat" => (false, false),
        "dr" => (true, false),
        "tun" => (false, true),
        other => return Err(format!("--forwarding {other}: expected nat, dr or tun")),
    };
    let exe = std::env::current_exe().map_err(|e| format!("finding my own executable: {e}"))?;
    let vip = vip(0);
    let weights = [3u32, 2, 1];
    let mut spec = LabSpec::new(&exe).lvsd_exe(&exe);
    for _ in &weights {
        spec = spec.real_server(if dr {
            RealServerSpec::dr(vec![vip])
        } else if tun {
            // Prepared by `lvsd realserver --mode tun` below.
            RealServerSpec::bare()
        } else {
            RealServerSpec::nat()
        });
    }
    let lab = Lab::build(spec).map_err(|e| format!("building the lab: {e}"))?;
    lab.start_backends()
        .map_err(|e| format!("starting the real servers: {e}"))?;
    if tun {
        let v = vip.to_string();
        for k in 1..=weights.len() {
            lab.start_realserver_helper(k, &["--vip", &v, "--mode", "tun"])
                .map_err(|e| format!("starting lvsd realserver in rs{k}: {e}"))?;
        }
    }

    let mut config = format!(
        "[[virtual_server]]\naddress = \"{vip}:{port}\"\nprotocol = \"tcp\"\nscheduler = \"{scheduler}\"\nforwarding = \"{forwarding}\"\n",
        port = node::HTTP_PORT
    );
    // An HTTP health check, so the console's Health column and the service detail have
    // something to show (and a stopped backend would leave the list).
    config.push_str(
        "\n[virtual_server.health_check]\nkind = \"http\"\npath = \"/status/200\"\ninterval = \"1s\"\ntimeout = \"500ms\"\nrise = 2\nfall = 2\n",
    );
    for (k, w) in weights.iter().enumerate() {
        let rs = lab.real_server(k + 1);
        config.push_str(&format!(
            "\n[[virtual_server.real_server]]\naddress = \"{}:{}\"\nweight = {w}\n",
            rs.addr(),
            node::HTTP_PORT
        ));
    }
    println!("lvsd demo: lab built (client 198.51.100.10 -> router -> director -> rs1..rs3)");
    println!("lvsd demo: director config:\n{config}");
    let lvsd = lab
        .start_lvsd(1, &config)
        .map_err(|e| format!("starting lvsd: {e}"))?;

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .map_err(|e| format!("installing the Ctrl-C handler: {e}"))?;
    }
    println!(
        "lvsd demo: sending requests to http://{vip}:{} ({scheduler}, {forwarding}, weights 3:2:1); Ctrl-C to stop",
        node::HTTP_PORT
    );

    let target = SocketAddr::from((vip, node::HTTP_PORT));
    let started = Instant::now();
    let stop_client = Arc::clone(&stop);
    let client_host = lab.client().clone();
    let traffic = std::thread::Builder::new()
        .name("demo-client".into())
        .spawn(move || {
            client_host.run(move || {
                let mut counts: BTreeMap<String, u64> = BTreeMap::new();
                let mut errors = 0u64;
                let mut last_print = Instant::now();
                loop {
                    if stop_client.load(Ordering::Relaxed)
                        || duration.is_some_and(|d| started.elapsed() >= d)
                    {
                        break;
                    }
                    match client::http_request(target, "GET", "/", Duration::from_secs(2)) {
                        Ok(r) => {
                            let name = r.backend().unwrap_or("?").to_string();
                            *counts.entry(name).or_default() += 1;
                        }
                        Err(_) => errors += 1,
                    }
                    if !console && last_print.elapsed() >= Duration::from_secs(1) {
                        last_print = Instant::now();
                        println!("{}", line(started.elapsed(), &counts, errors));
                    }
                    std::thread::sleep(REQUEST_GAP);
                }
                (counts, errors)
            })
        })
        .map_err(|e| format!("starting the demo client: {e}"))?;
    if console {
        // The console in the foreground until the operator quits it (q or Ctrl-C); the
        // client keeps the traffic going underneath.
        let mut args = lvs_tui::console::ConsoleArgs::for_socket(lvsd.control_socket());
        args.interval = Some("1s".into());
        let result = lvs_tui::console::run(args);
        stop.store(true, Ordering::Relaxed);
        if let Err(e) = result {
            eprintln!("lvsd demo: the console stopped: {e}");
        }
    }
    let totals = traffic
        .join()
        .map_err(|_| "the demo client panicked".to_string())?;
    let (counts, errors) = totals;
    println!("{}", line(started.elapsed(), &counts, errors));
    println!("lvsd demo: stopping lvsd and tearing the lab down");
    match lvsd.stop() {
        Ok(status) if status.success() => {}
        Ok(status) => eprintln!("lvsd demo: lvsd exited with {status}"),
        Err(e) => eprintln!("lvsd demo: stopping lvsd: {e}"),
    }
    if let Some(stats) = lvsd.stdout().lines().find(|l| l.starts_with("lvsd stats:")) {
        println!("{stats}");
    }
    drop(lab);
    println!("lvsd demo: done");
    Ok(())
}

fn line(elapsed: Duration, counts: &BTreeMap<String, u64>, errors: u64) -> String {
    let total: u64 = counts.values().sum();
    let mut s = format!("t={:>4}s  requests={total:<6}", elapsed.as_secs());
    for (name, n) in counts {
        let pct = (n * 100).checked_div(total).unwrap_or(0);
        s.push_str(&format!("  {name}: {n:<5} ({pct:>2}%)"));
    }
    s.push_str(&format!("  errors: {errors}"));
    s
}
