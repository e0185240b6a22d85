//! The settings file (`config.toml` in the directory `directories` gives lvs-tui, e.g.
//! `~/.config/lvs-tui/config.toml`, or `--config PATH`): theme, refresh interval, mouse,
//! read-only, keymap overrides and saved directors.
//!
//! Contract:
//! - A missing file is not an error (the defaults apply); an unreadable or malformed one
//!   is, and the message names the file and the key that is wrong (unknown keys included,
//!   so a typo is never silently ignored).
//! - Command-line flags win over the file; `NO_COLOR` wins over the file's theme but not
//!   over `--theme`.
//!
//! ```toml
//! theme = "16"            # default | 16 | mono
//! interval = "2s"         # or a number of seconds; 100ms..1h
//! mouse = false
//! readonly = false
//! log_file = "/tmp/lvs-tui.log"
//!
//! [keys]                  # action = key or [keys]; `?` in the console lists the actions
//! drain = "D"
//! down = ["j", "down"]
//!
//! [[director]]
//! name = "lvs1"
//! socket = "/run/lvsd/lvsd.sock"
//!
//! [[director]]
//! name = "lvs2"
//! connect = "tls://192.0.2.2:7443"
//! ca = "/etc/lvs/ca.pem"
//! cert = "/etc/lvs/me.pem"
//! key = "/etc/lvs/me.key"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::theme::ThemeName;

/// The settings file as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Colour theme.
    #[serde(default)]
    pub theme: Option<ThemeName>,
    /// Refresh interval: seconds as a number, or `"2s"`, `"500ms"`, `"1m"`.
    #[serde(default)]
    pub interval: Option<IntervalValue>,
    /// Capture the mouse (scroll wheel, clicks).
    #[serde(default)]
    pub mouse: Option<bool>,
    /// Disable every action that changes the director.
    #[serde(default)]
    pub readonly: Option<bool>,
    /// Where the console's log goes.
    #[serde(default)]
    pub log_file: Option<PathBuf>,
    /// Keymap overrides: action name -> key or keys.
    #[serde(default)]
    pub keys: BTreeMap<String, KeyList>,
    /// Directors to connect to when the command line names none.
    #[serde(default, rename = "director")]
    pub directors: Vec<SavedDirector>,
}

/// One key or several.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum KeyList {
    /// `drain = "D"`.
    One(String),
    /// `down = ["j", "down"]`.
    Many(Vec<String>),
}

impl KeyList {
    /// The keys as a list.
    pub fn keys(&self) -> Vec<&str> {
        match self {
            KeyList::One(k) => vec![k.as_str()],
            KeyList::Many(ks) => ks.iter().map(String::as_str).collect(),
        }
    }
}

/// `interval = 2` or `interval = "2s"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum IntervalValue {
    /// Seconds.
    Secs(f64),
    /// With a unit.
    Text(String),
}

/// A director saved in the settings file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedDirector {
    /// Its name in the console (default: derived from the socket or host).
    #[serde(default)]
    pub name: Option<String>,
    /// Its control socket.
    #[serde(default)]
    pub socket: Option<PathBuf>,
    /// Or its TLS listener, `tls://HOST:PORT`.
    #[serde(default)]
    pub connect: Option<String>,
    /// With `connect`: the CA (PEM).
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// With `connect`: this client's certificate (PEM).
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// With `connect`: this client's key (PEM).
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// With `connect`: the name the daemon's certificate must be valid for.
    #[serde(default)]
    pub tls_name: Option<String>,
}

/// Where the settings file lives unless `--config` says otherwise.
pub fn default_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "lvs-tui").map(|d| d.config_dir().join("config.toml"))
}

/// Where the log goes unless `--log-file` or the settings say otherwise.
pub fn default_log_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "lvs-tui").map(|d| {
        d.state_dir()
            .unwrap_or_else(|| d.cache_dir())
            .join("lvs-tui.log")
    })
}

impl Settings {
    /// Reads `path`: `Ok(None)` when it does not exist; an error naming the file and the
    /// key otherwise.
    pub fn load(path: &Path) -> Result<Option<Settings>, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read settings file {}: {e}", path.display())),
        };
        Settings::parse(&text)
            .map(Some)
            .map_err(|e| format!("settings file {}: {e}", path.display()))
    }

    /// Parses and checks the text of a settings file.
    pub fn parse(text: &str) -> Result<Settings, String> {
        let settings: Settings = toml::from_str(text).map_err(|e| {
            // toml's message already names the key and shows the line; keep it on one
            // screen line where it is a single sentence.
            e.to_string().trim_end().to_string()
        })?;
        if let Some(v) = &settings.interval {
            v.duration().map_err(|e| format!("key `interval`: {e}"))?;
        }
        for (i, d) in settings.directors.iter().enumerate() {
            let key = format!("director[{i}]");
            match (&d.socket, &d.connect) {
                (Some(_), Some(_)) => {
                    return Err(format!("key `{key}`: give `socket` or `connect`, not both"));
                }
                (None, None) => {
                    return Err(format!("key `{key}`: needs `socket` or `connect`"));
                }
                _ => {}
            }
        }
        Ok(settings)
    }
}

impl IntervalValue {
    /// The interval, checked to be within 100 ms..=1 h.
    pub fn duration(&self) -> Result<Duration, String> {
        match self {
            IntervalValue::Secs(s) => secs(*s),
            IntervalValue::Text(t) => parse_interval(t),
        }
    }
}

fn secs(s: f64) -> Result<Duration, String> {
    if !s.is_finite() || !(0.1..=3600.0).contains(&s) {
        return Err(format!("{s} s is outside 0.1..3600 seconds"));
    }
    Ok(Duration::from_secs_f64(s))
}

/// `2`, `2s`, `1.5`, `500ms`, `1m`: a refresh interval within 100 ms..=1 h.
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (number, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else {
        (t, 1.0)
    };
    let n: f64 = number.trim().parse().map_err(|_| {
        format!("`{text}` is not an interval: write seconds (2, 0.5) or 500ms, 2s, 1m")
    })?;
    secs(n * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_file() {
        let s = Settings::parse(
            r#"
theme = "16"
interval = "500ms"
mouse = true
[keys]
drain = "D"
down = ["j", "down"]
[[director]]
name = "lvs1"
socket = "/run/lvsd/lvsd.sock"
"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.theme, Some(ThemeName::Sixteen));
        assert_eq!(
            s.interval.map(|i| i.duration()),
            Some(Ok(Duration::from_millis(500)))
        );
        assert_eq!(s.keys.len(), 2);
        assert_eq!(s.directors.len(), 1);
    }

    #[test]
    fn errors_name_the_key() {
        let e = Settings::parse("thme = \"mono\"\n")
            .err()
            .unwrap_or_default();
        assert!(e.contains("thme"), "{e}");
        let e = Settings::parse("theme = \"pink\"\n")
            .err()
            .unwrap_or_default();
        assert!(e.contains("pink") && e.contains("theme"), "{e}");
        let e = Settings::parse("interval = \"fast\"\n")
            .err()
            .unwrap_or_default();
        assert!(e.starts_with("key `interval`"), "{e}");
        let e = Settings::parse("interval = 0\n").err().unwrap_or_default();
        assert!(e.starts_with("key `interval`"), "{e}");
        let e = Settings::parse("[[director]]\nname = \"x\"\n")
            .err()
            .unwrap_or_default();
        assert_eq!(e, "key `director[0]`: needs `socket` or `connect`");
    }

    #[test]
    fn missing_file_means_defaults() {
        assert_eq!(
            Settings::load(Path::new("/nonexistent/lvs-tui/config.toml")),
            Ok(None)
        );
    }

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_interval("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_interval("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_interval("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_interval("50ms").is_err());
        assert!(parse_interval("soon").is_err());
    }
}
