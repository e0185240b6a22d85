//! Failover benchmark (issue 7): how long the VIP is gone as a client sees it, lvsd against
//! keepalived, with 100 ms VRRPv3 adverts, in a lab of two directors.
//!
//! ```sh
//! sudo -E cargo run -p lvs-lab --example vrrp_failover [ROUNDS]   # default 5 rounds
//! ```
//!
//! (lvsd is built on demand, as for the lab tests; `LVSD_BIN` overrides it.)
//!
//! Scenarios, for each implementation (priorities 150 / 100 on director 1 / 2):
//! - **crash**: kill -9 of the master *and* its `ext0` down at the same instant (a dead
//!   host: a killed daemon alone leaves its VIP on the interface, and that director's
//!   kernel would keep answering for it);
//! - **graceful**: SIGTERM of the master (priority-0 advert).
//!
//! Two probes run from the client every 5 ms: `vip` = a TCP connect to VIP:81, answered
//! (refused) by the kernel of whichever director holds the VIP — the same probe for both
//! implementations, since keepalived does not forward; `http` (lvsd only) = a request to
//! VIP:80 through the director to a real server. Outage = from the event to the first
//! success after the first failure (0 when no probe failed). Benchmarks report, they do
//! not assert; numbers depend on the machine (the lab runs on veth, debug builds).

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use lvs_lab::keepalived::{Keepalived, KeepalivedSpec};
use lvs_lab::node::HTTP_PORT;
use lvs_lab::{Lab, LabSpec, client, vip, wait_until};

const PROBE_EVERY: Duration = Duration::from_millis(5);
const PROBE_TIMEOUT: Duration = Duration::from_millis(20);
const SETTLE: Duration = Duration::from_secs(5);

/// (when, ok) of every probe.
type Series = Vec<(Instant, bool)>;

fn vip_probe() -> bool {
    match TcpStream::connect_timeout(&SocketAddr::from((vip(0), 81)), PROBE_TIMEOUT) {
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionRefused,
    }
}

fn http_probe() -> bool {
    client::http_request((vip(0), HTTP_PORT), "GET", "/", Duration::from_millis(50)).is_ok()
}

/// Outage in `series` after `event`.
fn outage(series: &Series, event: Instant) -> Option<Duration> {
    let after: Vec<&(Instant, bool)> = series.iter().filter(|(t, _)| *t >= event).collect();
    let first_fail = after.iter().position(|(_, ok)| !ok);
    let Some(f) = first_fail else {
        return Some(Duration::ZERO);
    };
    after[f..]
        .iter()
        .find(|(_, ok)| *ok)
        .map(|(t, _)| t.duration_since(event))
}

/// Runs `event` while the client probes; returns the event instant and both series.
fn measure(lab: &Lab, http: bool, event: impl FnOnce()) -> (Instant, Series, Series) {
    let stop = AtomicBool::new(false);
    let run = |probe: fn() -> bool| {
        let mut s = Series::new();
        while !stop.load(Ordering::Relaxed) {
            let t = Instant::now();
            let ok = probe();
            s.push((t, ok));
            std::thread::sleep(PROBE_EVERY.saturating_sub(t.elapsed()));
        }
        s
    };
    std::thread::scope(|scope| {
        let v = scope.spawn(|| lab.client().run(|| run(vip_probe)));
        let h = scope.spawn(|| {
            if http {
                lab.client().run(|| run(http_probe))
            } else {
                Series::new()
            }
        });
        std::thread::sleep(Duration::from_millis(300));
        let at = Instant::now();
        event();
        std::thread::sleep(SETTLE);
        stop.store(true, Ordering::Relaxed);
        let v = v.join().unwrap_or_default();
        let h = h.join().unwrap_or_default();
        (at, v, h)
    })
}

fn holds(lab: &Lab, n: usize) -> bool {
    lab.director(n).has_address(vip(0)).unwrap_or(false)
}

fn lvsd_config(lab: &Lab, priority: u8) -> String {
    let mut s = format!(
        "[[virtual_server]]\naddress = \"{}:{HTTP_PORT}\"\nscheduler = \"rr\"\nforwarding = \"dr\"\n",
        vip(0)
    );
    for k in 1..=2 {
        s.push_str(&format!(
            "[[virtual_server.real_server]]\naddress = \"{}:{HTTP_PORT}\"\n",
            lab.real_server(k).addr()
        ));
    }
    s.push_str(&format!(
        "[[vrrp_instance]]\nname = \"VI_1\"\ninterface = \"ext0\"\nvirtual_router_id = 51\n\
         priority = {priority}\nadvert_interval = \"100ms\"\nvirtual_ipaddress = [\"{}/24\"]\n",
        vip(0)
    ));
    s
}

fn ka_spec(priority: u8) -> KeepalivedSpec {
    KeepalivedSpec {
        vrid: 51,
        priority,
        version: 3,
        advert_interval: Duration::from_millis(100),
        interface: "ext0".into(),
        vips: vec![format!("{}/24", vip(0))],
        unicast_src: None,
        unicast_peers: Vec::new(),
        preempt: true,
    }
}

/// A running router on a director: lvsd or keepalived.
enum Router {
    Lvsd(lvs_lab::LvsdProcess),
    Keepalived(Keepalived),
}

impl Router {
    fn start(lab: &Lab, lvsd: bool, director: usize, priority: u8) -> Option<Router> {
        if lvsd {
            match lab.start_lvsd(director, &lvsd_config(lab, priority)) {
                Ok(p) => Some(Router::Lvsd(p)),
                Err(e) => {
                    eprintln!("lvsd: {e}");
                    None
                }
            }
        } else {
            match Keepalived::start(lab, director, &ka_spec(priority)) {
                Ok(k) => Some(Router::Keepalived(k)),
                Err(e) => {
                    eprintln!("keepalived: {e}");
                    None
                }
            }
        }
    }

    fn kill(&self) {
        match self {
            Router::Lvsd(p) => drop(p.process().kill()),
            Router::Keepalived(k) => k.kill(),
        }
    }

    fn stop(&self) {
        match self {
            Router::Lvsd(p) => drop(p.stop()),
            Router::Keepalived(k) => k.stop(),
        }
    }
}

fn summary(name: &str, v: &[Duration]) {
    if v.is_empty() {
        println!("{name:<38} no result");
        return;
    }
    let mut v = v.to_vec();
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name:<38} min {:7.1} ms  median {:7.1} ms  max {:7.1} ms  ({} rounds)",
        ms(v[0]),
        ms(v[v.len() / 2]),
        ms(v[v.len() - 1]),
        v.len()
    );
}

fn bench(lvsd: bool, rounds: usize) {
    let name = if lvsd { "lvsd" } else { "keepalived" };
    let node = match lvs_lab::lvsd_binary() {
        Ok(path) => path,
        Err(e) => {
            eprintln!("no lvsd to run: {e}");
            return;
        }
    };
    let lab = match Lab::build(
        LabSpec::new(&node)
            .lvsd_exe(&node)
            .directors(2)
            .dr_real_servers(2, &[vip(0)]),
    ) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("building the lab: {e}");
            return;
        }
    };
    if let Err(e) = lab.start_backends() {
        eprintln!("starting backends: {e}");
        return;
    }
    let Some(backup) = Router::start(&lab, lvsd, 2, 100) else {
        return;
    };
    let mut results: [(Vec<Duration>, Vec<Duration>); 2] = Default::default();
    for round in 0..rounds {
        for (i, crash) in [true, false].into_iter().enumerate() {
            // Clean slate: director 1 up, no leftover VIP, its router master again.
            let _ = lab.director(1).set_link_up("ext0", true);
            let _ = lab.director(1).del_address("ext0", vip(0));
            let Some(master) = Router::start(&lab, lvsd, 1, 150) else {
                return;
            };
            if !wait_until(SETTLE, || holds(&lab, 1) && !holds(&lab, 2)) {
                eprintln!("{name} round {round}: director 1 never became master");
                continue;
            }
            std::thread::sleep(Duration::from_millis(500));
            let (at, v, h) = measure(&lab, lvsd, || {
                if crash {
                    master.kill();
                    let _ = lab.director(1).set_link_up("ext0", false);
                } else {
                    master.stop();
                }
            });
            master.stop();
            if let Some(d) = outage(&v, at) {
                results[i].0.push(d);
            }
            if lvsd {
                if let Some(d) = outage(&h, at) {
                    results[i].1.push(d);
                }
            }
        }
    }
    backup.stop();
    let _ = lab.director(1).set_link_up("ext0", true);
    summary(&format!("{name} kill -9 (host crash), vip"), &results[0].0);
    summary(&format!("{name} graceful stop, vip"), &results[1].0);
    if lvsd {
        summary(&format!("{name} kill -9 (host crash), http"), &results[0].1);
        summary(&format!("{name} graceful stop, http"), &results[1].1);
    }
}

fn main() {
    if !lvs_lab::is_root() {
        eprintln!("vrrp_failover needs root (network namespaces)");
        std::process::exit(2);
    }
    let rounds = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    println!("VRRPv3, 100 ms adverts, priorities 150/100; outage as the client sees it");
    bench(true, rounds);
    bench(false, rounds);
}
