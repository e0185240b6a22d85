//! The `lvsd` command line: `check`, error messages, exit codes and the privilege message.
//! These run without privileges (one drops them on purpose).

// Helpers outside #[test] fns are not covered by clippy's allow-unwrap-in-tests.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn lvsd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lvsd"))
}

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

fn temp_config(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lvsd-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_accepts_the_example_config() {
    let out = lvsd()
        .args(["check", "--config"])
        .arg(repo_file("contrib/lvsd.toml"))
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("ok (2 virtual services, 5 real servers)"),
        "{stdout}"
    );
}

#[test]
fn check_names_file_line_and_key() {
    let path = temp_config(
        "bad.toml",
        "[[virtual_server]]\naddress = \"203.0.113.10:80\"\n\n[[virtual_server.real_server]]\naddress = \"192.0.2.11\"\nweight = 70000\n",
    );
    let out = lvsd()
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let want = format!(
        "{}:6: virtual_server[0].real_server[0].weight: 70000 is out of range",
        path.display()
    );
    assert!(stderr.contains(&want), "{stderr}");
}

#[test]
fn unknown_key_is_an_error() {
    let path = temp_config(
        "typo.toml",
        "[[virtual_server]]\naddress = \"203.0.113.10:80\"\nschedular = \"rr\"\n",
    );
    let out = lvsd()
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains(":3: schedular: unknown field `schedular`"),
        "{stderr}"
    );
}

#[test]
fn run_with_a_bad_config_fails_before_touching_anything() {
    // Fails on the config, so it never gets to the privilege check or the kernel.
    let path = temp_config("missing.toml", "[[virtual_server]]\nprotocol = \"tcp\"\n");
    let out = lvsd().arg("--config").arg(&path).output().unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("missing field `address`"), "{stderr}");
}

#[test]
fn missing_file_is_named() {
    let out = lvsd()
        .args(["check", "--config", "/nonexistent/lvsd.toml"])
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("/nonexistent/lvsd.toml: cannot read"),
        "{stderr}"
    );
}

#[test]
fn without_privileges_one_sentence_says_what_is_needed() {
    use std::os::unix::fs::PermissionsExt;
    // Binary and config go where an unprivileged user can reach them (the checkout may be
    // under a private home directory).
    let dir = std::env::temp_dir().join(format!("lvsd-cli-priv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = dir.join("lvsd");
    std::fs::copy(env!("CARGO_BIN_EXE_lvsd"), &exe).unwrap();
    let path = dir.join("lvsd.toml");
    std::fs::copy(repo_file("contrib/lvsd.toml"), &path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut cmd = if nix::unistd::geteuid().is_root() {
        // Drop to nobody, which has no capabilities.
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(&exe);
        c
    } else {
        Command::new(&exe)
    };
    let out = cmd.arg("--config").arg(&path).output().unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("lvsd needs root, or the capabilities CAP_NET_RAW and CAP_NET_ADMIN"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
