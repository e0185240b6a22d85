//! The console, end to end: the real `lvs-tui` binary in a real terminal (tmux, 80x24)
//! against a real lvsd forwarding real traffic in a namespace lab.
//!
//! What it pins down: the Services view shows the lab's real servers with their weights;
//! `+` on the selected server opens a confirmation naming the change, `y` applies it, and the
//! API and the data path follow (the split of new connections moves); `d` then drains the
//! server after a confirmation, the API reports it drained and no new connection reaches it
//! while the console shows the drain. The screen is read with `tmux capture-pane`, the
//! effects are checked through `lvsctl --json` and by counting which server answers.

// Helpers outside #[test] fns are not covered by clippy's allow-unwrap-in-tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use lvs_lab::node::HTTP_PORT;
use lvs_lab::{Host, Lab, LvsdProcess, require_root, vip};

mod common;
use common::*;

/// A tmux server of its own (`-L`), with one session running one command at a fixed size;
/// killed on drop, also when the test fails.
struct Tmux {
    socket: String,
    host: Host,
}

impl Tmux {
    /// Starts `argv` in a new detached session of `width` x `height` inside `host`'s
    /// namespace, with `env` set.
    fn start(host: &Host, width: u16, height: u16, argv: &[String], env: &[(&str, &Path)]) -> Tmux {
        let socket = format!("lvs-console-test-{}", std::process::id());
        let tmux = Tmux {
            socket,
            host: host.clone(),
        };
        let mut cmd = tmux.command();
        cmd.args(["-f", "/dev/null", "new-session", "-d", "-s", "console"])
            .args(["-x", &width.to_string(), "-y", &height.to_string()]);
        for (k, v) in env {
            cmd.arg("-e").arg(format!("{k}={}", v.display()));
        }
        cmd.arg("--").args(argv);
        let out = cmd.output().expect("running tmux");
        assert!(
            out.status.success(),
            "tmux new-session failed: {}",
            text(&out)
        );
        // Keep the pane after the program exits so a crash leaves its last screen to read.
        tmux.run(&["set-option", "-g", "remain-on-exit", "on"]);
        tmux
    }

    fn command(&self) -> Command {
        let mut cmd = self.host.command("tmux");
        cmd.arg("-L").arg(&self.socket);
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("running tmux")
    }

    /// Types `keys` (tmux key names, e.g. `"2"`, `"Enter"`, `"Escape"`).
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "console"];
        args.extend_from_slice(keys);
        let out = self.run(&args);
        assert!(out.status.success(), "tmux send-keys: {}", text(&out));
    }

    /// The visible screen as text.
    fn screen(&self) -> String {
        let out = self.run(&["capture-pane", "-p", "-t", "console"]);
        assert!(out.status.success(), "tmux capture-pane: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits (up to `limit`) until the screen satisfies `pred`; the screen that did.
    fn wait_screen(&self, what: &str, limit: Duration, pred: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            assert!(
                start.elapsed() < limit,
                "the console never showed {what} within {limit:?}; last screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `wrr` over rs1..rs3 (NAT), all weight 1.
fn config(lab: &Lab) -> String {
    let mut s = format!(
        "[[virtual_server]]\naddress = \"{}:{HTTP_PORT}\"\nscheduler = \"wrr\"\nforwarding = \"nat\"\n",
        vip(0)
    );
    for k in 1..=3 {
        s += &format!(
            "\n[[virtual_server.real_server]]\naddress = \"{}:{HTTP_PORT}\"\nweight = 1\n",
            lab.real_server(k).addr()
        );
    }
    s
}

/// The API's view of the service, through `lvsctl --json list`.
fn services(lab: &Lab, lvsd: &LvsdProcess) -> Vec<lvs_proto::ServiceInfo> {
    let exe = lvs_lab::lvsctl_binary().expect("building lvsctl");
    let out = lab
        .director(1)
        .command(exe)
        .arg("--socket")
        .arg(lvsd.control_socket())
        .args(["--json", "list"])
        .output()
        .expect("running lvsctl");
    assert!(out.status.success(), "lvsctl list: {}", text(&out));
    serde_json::from_slice(&out.stdout).expect("lvsctl --json list parses as the API's types")
}

fn weight_of(svcs: &[lvs_proto::ServiceInfo], rip: &str) -> (u32, Option<u32>) {
    let rs = svcs[0]
        .real_servers
        .iter()
        .find(|r| r.addr.to_string() == rip)
        .unwrap_or_else(|| panic!("{rip} is not in {svcs:?}"));
    (rs.weight, rs.drained_from)
}

/// The real server named in a confirmation dialog (the first lab RIP on the screen's
/// dialog line that mentions `word`).
fn rip_in_line(screen: &str, word: &str, rips: &[String]) -> Option<String> {
    screen
        .lines()
        .filter(|l| l.to_lowercase().contains(word))
        .find_map(|l| rips.iter().find(|r| l.contains(&format!("{r}:"))).cloned())
}

#[test]
fn console_edits_a_weight_and_drains_in_a_real_terminal() {
    require_root!();
    if Command::new("tmux").arg("-V").output().is_err() {
        panic!("tmux is not installed (.ci/run installs it); this test needs a real terminal");
    }
    let _serial = serial();
    let lab = lab(Mode::Nat, 3);
    let lvsd = lab.start_lvsd(1, &config(&lab)).expect("starting lvsd");
    let rips: Vec<String> = (1..=3)
        .map(|k| lab.real_server(k).addr().to_string())
        .collect();

    let home = tempdir("lvs-console-home");
    let tui = lvs_lab::lvs_tui_binary().expect("building lvs-tui");
    let argv = vec![
        tui.display().to_string(),
        "--socket".into(),
        lvsd.control_socket().display().to_string(),
        "--interval".into(),
        "500ms".into(),
        "--log-file".into(),
        home.join("lvs-tui.log").display().to_string(),
    ];
    let tmux = Tmux::start(
        lab.director(1),
        80,
        24,
        &argv,
        &[("HOME", &home), ("XDG_CONFIG_HOME", &home)],
    );

    // The Services view lists the three real servers (ipvsadm's `-> RIP:PORT` rows).
    tmux.keys(&["2"]);
    let screen = tmux.wait_screen("the three real servers", Duration::from_secs(20), |s| {
        rips.iter().all(|r| s.contains(&format!("{r}:{HTTP_PORT}")))
    });
    assert!(
        screen.contains("wrr"),
        "no scheduler on the screen:\n{screen}"
    );

    // `+` on the selected server: a confirmation names the server and 1 -> 2.
    tmux.keys(&["+"]);
    let screen = tmux.wait_screen("a weight confirmation", Duration::from_secs(5), |s| {
        s.contains("1 -> 2") || s.contains("1 → 2")
    });
    let picked = rip_in_line(&screen, "weight", &rips)
        .unwrap_or_else(|| panic!("the confirmation names no real server:\n{screen}"));
    // Nothing changes before the confirmation.
    assert_eq!(weight_of(&services(&lab, &lvsd), &picked), (1, None));
    tmux.keys(&["y"]);
    wait_for_api(&lab, &lvsd, &picked, |w| w == (2, None));

    // The data path follows: wrr 2:1:1 over 40 new connections.
    let names = sequential_names(lab.client(), (vip(0), HTTP_PORT).into(), 40);
    let counts = tally(names);
    let picked_name = format!("rs{}", rips.iter().position(|r| *r == picked).unwrap() + 1);
    assert_eq!(
        counts.get(&picked_name).copied(),
        Some(20),
        "after the weight edit {picked_name} should answer 20 of 40: {counts:?}"
    );

    // The screen shows the new weight within a refresh or two.
    tmux.wait_screen("the new weight", Duration::from_secs(5), |s| {
        s.lines()
            .any(|l| l.contains(&format!("{picked}:{HTTP_PORT}")) && l.contains(" 2 "))
    });

    // `d` drains it after a confirmation; the API and the data path follow.
    tmux.keys(&["d"]);
    let screen = tmux.wait_screen("a drain confirmation", Duration::from_secs(5), |s| {
        s.to_lowercase().contains("drain")
    });
    assert_eq!(
        rip_in_line(&screen, "drain", &rips).as_deref(),
        Some(picked.as_str()),
        "the drain confirmation names another server:\n{screen}"
    );
    tmux.keys(&["y"]);
    wait_for_api(&lab, &lvsd, &picked, |w| w == (0, Some(2)));
    let counts = tally(sequential_names(
        lab.client(),
        (vip(0), HTTP_PORT).into(),
        30,
    ));
    assert_eq!(
        counts.get(&picked_name),
        None,
        "a drained server got new connections: {counts:?}"
    );
    tmux.wait_screen("the drain on screen", Duration::from_secs(5), |s| {
        s.lines().any(|l| {
            l.contains(&format!("{picked}:{HTTP_PORT}")) && l.to_lowercase().contains("drain")
        })
    });

    // `q` quits and the terminal is given back (the pane's program has exited).
    tmux.keys(&["q"]);
    let start = Instant::now();
    loop {
        let out = tmux.run(&["display-message", "-p", "-t", "console", "#{pane_dead}"]);
        if String::from_utf8_lossy(&out.stdout).trim() == "1" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "lvs-tui did not quit on q; screen:\n{}",
            tmux.screen()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(tmux);
    stop_and_check(&lvsd);
}

/// Polls the API (up to 5 s) until `picked`'s (weight, drained_from) satisfies `ok`.
fn wait_for_api(
    lab: &Lab,
    lvsd: &LvsdProcess,
    picked: &str,
    ok: impl Fn((u32, Option<u32>)) -> bool,
) {
    let start = Instant::now();
    loop {
        let w = weight_of(&services(lab, lvsd), picked);
        if ok(w) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the API never showed the change for {picked}: (weight, drained_from) = {w:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A fresh private directory under the system temp dir.
fn tempdir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating a temp dir");
    dir
}
