//! The keymap: which key runs which [`Action`] in the normal mode, with the defaults, the
//! settings file's overrides, and the help text generated from it (so `?` never lies about
//! a binding).
//!
//! Invariants:
//! - Every action has a name (its settings-file key) and a one-line description; the help
//!   screen lists exactly the bindings in effect.
//! - A key runs at most one action: an override takes the key away from the action that
//!   had it by default.
//! - `Ctrl-C` is not in the keymap: it always quits, whatever the settings say.
//! - A letter is matched without its Shift modifier (`G` is `G`, not `shift-G`), so the
//!   same binding works whatever the terminal reports.

use std::collections::HashMap;
use std::fmt;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// What a key does in the normal mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Leave the console.
    Quit,
    /// Show the help screen.
    Help,
    /// Back out: close the detail, clear the filter.
    Back,
    /// Start typing a filter.
    Filter,
    /// Start typing a command.
    Command,
    /// Next view.
    NextView,
    /// Previous view.
    PrevView,
    /// View 1.
    ViewTopology,
    /// View 2.
    ViewServices,
    /// View 3.
    ViewDecisions,
    /// View 4.
    ViewConnections,
    /// View 5.
    ViewVrrp,
    /// View 6.
    ViewEvents,
    /// Selection up.
    Up,
    /// Selection down.
    Down,
    /// One page up (the previous page of the connection table).
    PageUp,
    /// One page down (the next page of the connection table).
    PageDown,
    /// First row.
    Top,
    /// Last row.
    Bottom,
    /// Open the selected service's detail.
    Open,
    /// Sort by the next column.
    Sort,
    /// Reverse the sort.
    SortReverse,
    /// Weight of the selected real server + 1.
    WeightUp,
    /// Weight of the selected real server - 1.
    WeightDown,
    /// Type a weight for the selected real server.
    WeightInput,
    /// Drain the selected real server (or show its drain's progress).
    Drain,
    /// Give a drained real server its weight back.
    Undrain,
    /// Kill the selected connection or persistence template.
    Kill,
    /// Cycle the Services columns: connections, rates, counters.
    ToggleRates,
    /// Exact numbers instead of K/M/G.
    ToggleExact,
    /// Pause the decision stream.
    Pause,
    /// Next director (Connections view).
    NextDirector,
    /// Previous director.
    PrevDirector,
    /// Poll now.
    Refresh,
}

/// Where an action applies, for grouping the help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everywhere.
    Global,
    /// Moving around.
    Navigation,
    /// Acting on a real server (Services view).
    RealServer,
    /// One view only (named in the description).
    View,
}

impl Scope {
    /// The help section title.
    pub fn title(self) -> &'static str {
        match self {
            Scope::Global => "Global",
            Scope::Navigation => "Moving around",
            Scope::RealServer => "Real server (Services view)",
            Scope::View => "Views",
        }
    }
}

/// (action, settings name, scope, description, default keys).
type Spec = (
    Action,
    &'static str,
    Scope,
    &'static str,
    &'static [&'static str],
);

/// Every action, in help order.
const SPECS: &[Spec] = &[
    (
        Action::Quit,
        "quit",
        Scope::Global,
        "quit (Ctrl-C always quits)",
        &["q"],
    ),
    (
        Action::Help,
        "help",
        Scope::Global,
        "this help",
        &["?", "f1"],
    ),
    (
        Action::Back,
        "back",
        Scope::Global,
        "back: close detail, clear filter",
        &["esc"],
    ),
    (
        Action::Filter,
        "filter",
        Scope::Global,
        "filter the view (regex, `!` inverts)",
        &["/"],
    ),
    (
        Action::Command,
        "command",
        Scope::Global,
        "command line (:weight 5, :drain, :view conn, :q)",
        &[":"],
    ),
    (
        Action::NextView,
        "next_view",
        Scope::Global,
        "next view",
        &["tab"],
    ),
    (
        Action::PrevView,
        "prev_view",
        Scope::Global,
        "previous view",
        &["backtab"],
    ),
    (
        Action::ViewTopology,
        "view_topology",
        Scope::Global,
        "Topology view",
        &["1"],
    ),
    (
        Action::ViewServices,
        "view_services",
        Scope::Global,
        "Services view",
        &["2"],
    ),
    (
        Action::ViewDecisions,
        "view_decisions",
        Scope::Global,
        "Decisions view",
        &["3"],
    ),
    (
        Action::ViewConnections,
        "view_connections",
        Scope::Global,
        "Connections view",
        &["4"],
    ),
    (
        Action::ViewVrrp,
        "view_vrrp",
        Scope::Global,
        "VRRP view",
        &["5"],
    ),
    (
        Action::ViewEvents,
        "view_events",
        Scope::Global,
        "Events view",
        &["6"],
    ),
    (
        Action::Refresh,
        "refresh",
        Scope::Global,
        "poll the directors now",
        &["ctrl-r"],
    ),
    (Action::Up, "up", Scope::Navigation, "up", &["k", "up"]),
    (
        Action::Down,
        "down",
        Scope::Navigation,
        "down",
        &["j", "down"],
    ),
    (
        Action::PageUp,
        "page_up",
        Scope::Navigation,
        "page up (previous page of connections)",
        &["pgup", "ctrl-u"],
    ),
    (
        Action::PageDown,
        "page_down",
        Scope::Navigation,
        "page down (next page of connections)",
        &["pgdn", "ctrl-d"],
    ),
    (
        Action::Top,
        "top",
        Scope::Navigation,
        "first row",
        &["g", "home"],
    ),
    (
        Action::Bottom,
        "bottom",
        Scope::Navigation,
        "last row",
        &["G", "end"],
    ),
    (
        Action::Sort,
        "sort",
        Scope::Navigation,
        "sort by the next column",
        &["s"],
    ),
    (
        Action::SortReverse,
        "sort_reverse",
        Scope::Navigation,
        "reverse the sort",
        &["S"],
    ),
    (
        Action::Open,
        "open",
        Scope::Navigation,
        "drill into the selected service",
        &["enter"],
    ),
    (
        Action::WeightUp,
        "weight_up",
        Scope::RealServer,
        "weight + 1 (with confirmation)",
        &["+", "="],
    ),
    (
        Action::WeightDown,
        "weight_down",
        Scope::RealServer,
        "weight - 1 (with confirmation)",
        &["-"],
    ),
    (
        Action::WeightInput,
        "weight",
        Scope::RealServer,
        "type a weight 0..=65535",
        &["w"],
    ),
    (
        Action::Drain,
        "drain",
        Scope::RealServer,
        "drain: weight 0, watch connections go to zero",
        &["d"],
    ),
    (
        Action::Undrain,
        "undrain",
        Scope::RealServer,
        "undrain: restore the weight it had",
        &["u"],
    ),
    (
        Action::ToggleRates,
        "toggle_rates",
        Scope::View,
        "Services: connections / rates / counters",
        &["r"],
    ),
    (
        Action::ToggleExact,
        "toggle_exact",
        Scope::View,
        "Services: exact numbers (no K/M/G)",
        &["x"],
    ),
    (
        Action::Pause,
        "pause",
        Scope::View,
        "Decisions: pause / resume the stream",
        &["p"],
    ),
    (
        Action::Kill,
        "kill",
        Scope::View,
        "Connections: kill the connection or template",
        &["K"],
    ),
    (
        Action::NextDirector,
        "next_director",
        Scope::View,
        "Connections: next director",
        &["]"],
    ),
    (
        Action::PrevDirector,
        "prev_director",
        Scope::View,
        "Connections: previous director",
        &["["],
    ),
];

/// A key with its modifiers, normalised (see the module invariants).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Chord {
    code: KeyCode,
    ctrl: bool,
    alt: bool,
}

impl Chord {
    /// The chord of a key event.
    pub fn of(key: &KeyEvent) -> Chord {
        let code = match key.code {
            // Some terminals report Shift-Tab as Tab with Shift.
            KeyCode::Tab if key.modifiers.contains(KeyModifiers::SHIFT) => KeyCode::BackTab,
            c => c,
        };
        Chord {
            code,
            ctrl: key.modifiers.contains(KeyModifiers::CONTROL),
            alt: key.modifiers.contains(KeyModifiers::ALT),
        }
    }

    /// Parses `q`, `G`, `+`, `ctrl-d`, `alt-x`, `pgdn`, `f1`, `enter`, `esc`, `tab`,
    /// `backtab`, `space`, arrows, `home`, `end`, `backspace`, `delete`.
    pub fn parse(text: &str) -> Result<Chord, String> {
        let mut rest = text;
        let (mut ctrl, mut alt) = (false, false);
        loop {
            let lower = rest.to_ascii_lowercase();
            if rest.len() > 5 && lower.starts_with("ctrl-") {
                ctrl = true;
                rest = &rest[5..];
            } else if rest.len() > 4 && lower.starts_with("alt-") {
                alt = true;
                rest = &rest[4..];
            } else {
                break;
            }
        }
        let mut chars = rest.chars();
        let code = match (chars.next(), chars.next()) {
            (Some(c), None) => KeyCode::Char(if ctrl { c.to_ascii_lowercase() } else { c }),
            _ => match rest.to_ascii_lowercase().as_str() {
                "enter" | "return" => KeyCode::Enter,
                "esc" | "escape" => KeyCode::Esc,
                "tab" => KeyCode::Tab,
                "backtab" | "shift-tab" => KeyCode::BackTab,
                "space" => KeyCode::Char(' '),
                "up" => KeyCode::Up,
                "down" => KeyCode::Down,
                "left" => KeyCode::Left,
                "right" => KeyCode::Right,
                "pgup" | "pageup" => KeyCode::PageUp,
                "pgdn" | "pgdown" | "pagedown" => KeyCode::PageDown,
                "home" => KeyCode::Home,
                "end" => KeyCode::End,
                "backspace" => KeyCode::Backspace,
                "delete" | "del" => KeyCode::Delete,
                "insert" | "ins" => KeyCode::Insert,
                f if f.starts_with('f') => match f[1..].parse::<u8>() {
                    Ok(n @ 1..=12) => KeyCode::F(n),
                    _ => return Err(format!("unknown key `{text}`")),
                },
                _ => return Err(format!("unknown key `{text}`")),
            },
        };
        Ok(Chord { code, ctrl, alt })
    }
}

impl fmt::Display for Chord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ctrl {
            f.write_str("Ctrl-")?;
        }
        if self.alt {
            f.write_str("Alt-")?;
        }
        match self.code {
            KeyCode::Char(' ') => f.write_str("Space"),
            KeyCode::Char(c) => write!(f, "{c}"),
            KeyCode::Enter => f.write_str("Enter"),
            KeyCode::Esc => f.write_str("Esc"),
            KeyCode::Tab => f.write_str("Tab"),
            KeyCode::BackTab => f.write_str("Shift-Tab"),
            KeyCode::Up => f.write_str("↑"),
            KeyCode::Down => f.write_str("↓"),
            KeyCode::Left => f.write_str("←"),
            KeyCode::Right => f.write_str("→"),
            KeyCode::PageUp => f.write_str("PgUp"),
            KeyCode::PageDown => f.write_str("PgDn"),
            KeyCode::Home => f.write_str("Home"),
            KeyCode::End => f.write_str("End"),
            KeyCode::Backspace => f.write_str("Backspace"),
            KeyCode::Delete => f.write_str("Delete"),
            KeyCode::Insert => f.write_str("Insert"),
            KeyCode::F(n) => write!(f, "F{n}"),
            other => write!(f, "{other:?}"),
        }
    }
}

/// One line of help: (keys, description, settings name).
pub type HelpLine = (String, &'static str, &'static str);

/// The bindings in effect.
#[derive(Debug, Clone)]
pub struct Keymap {
    by_chord: HashMap<Chord, Action>,
    /// In help order: each action with its keys (possibly none after overrides).
    by_action: Vec<(Action, Vec<Chord>)>,
}

impl Default for Keymap {
    fn default() -> Self {
        let mut by_action = Vec::with_capacity(SPECS.len());
        for (action, _, _, _, keys) in SPECS {
            // The defaults are literals tested below, so none fails to parse.
            let chords = keys.iter().filter_map(|k| Chord::parse(k).ok()).collect();
            by_action.push((*action, chords));
        }
        let mut map = Keymap {
            by_chord: HashMap::new(),
            by_action,
        };
        map.index();
        map
    }
}

impl Keymap {
    /// The defaults with `overrides` (settings name -> keys) applied; an error names the
    /// settings key (`keys.drian`) and what is wrong with it.
    pub fn with_overrides<'a>(
        overrides: impl IntoIterator<Item = (&'a str, Vec<&'a str>)>,
    ) -> Result<Keymap, String> {
        let mut map = Keymap::default();
        for (name, keys) in overrides {
            let Some(idx) = SPECS.iter().position(|s| s.1 == name) else {
                let names: Vec<&str> = SPECS.iter().map(|s| s.1).collect();
                return Err(format!(
                    "key `keys.{name}`: no such action (actions: {})",
                    names.join(", ")
                ));
            };
            let mut chords = Vec::with_capacity(keys.len());
            for k in keys {
                let chord = Chord::parse(k).map_err(|e| format!("key `keys.{name}`: {e}"))?;
                if chord.ctrl && chord.code == KeyCode::Char('c') {
                    return Err(format!(
                        "key `keys.{name}`: Ctrl-C always quits and cannot be rebound"
                    ));
                }
                chords.push(chord);
            }
            // The key leaves the action that had it.
            for (_, other) in &mut map.by_action {
                other.retain(|c| !chords.contains(c));
            }
            map.by_action[idx].1 = chords;
        }
        map.index();
        Ok(map)
    }

    fn index(&mut self) {
        self.by_chord.clear();
        for (action, chords) in &self.by_action {
            for c in chords {
                self.by_chord.insert(*c, *action);
            }
        }
    }

    /// The action bound to `key`, if any.
    pub fn action(&self, key: &KeyEvent) -> Option<Action> {
        self.by_chord.get(&Chord::of(key)).copied()
    }

    /// The keys of `action`, as help writes them (`j/↓`); `-` when unbound.
    pub fn keys_of(&self, action: Action) -> String {
        let keys: Vec<String> = self
            .by_action
            .iter()
            .find(|(a, _)| *a == action)
            .map(|(_, cs)| cs.iter().map(Chord::to_string).collect())
            .unwrap_or_default();
        if keys.is_empty() {
            "-".to_string()
        } else {
            keys.join("/")
        }
    }

    /// The first key of `action`, for hints; `None` when unbound.
    pub fn first_key(&self, action: Action) -> Option<String> {
        self.by_action
            .iter()
            .find(|(a, _)| *a == action)
            .and_then(|(_, cs)| cs.first())
            .map(Chord::to_string)
    }

    /// The help: sections of (keys, description, settings name).
    pub fn help(&self) -> Vec<(Scope, Vec<HelpLine>)> {
        let mut out: Vec<(Scope, Vec<HelpLine>)> = Vec::new();
        for (action, name, scope, desc, _) in SPECS {
            let line = (self.keys_of(*action), *desc, *name);
            match out.iter_mut().find(|(s, _)| s == scope) {
                Some((_, lines)) => lines.push(line),
                None => out.push((*scope, vec![line])),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode, mods: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, mods)
    }

    #[test]
    fn every_default_key_parses_and_is_bound_once() {
        let mut seen = HashMap::new();
        for (action, name, _, _, keys) in SPECS {
            for k in *keys {
                let c = Chord::parse(k).unwrap_or_else(|e| panic!("{name}: {e}"));
                if let Some(prev) = seen.insert(c, *action) {
                    panic!("{k} bound to {prev:?} and {action:?}");
                }
            }
        }
    }

    #[test]
    fn shifted_letters_and_backtab() {
        let m = Keymap::default();
        assert_eq!(
            m.action(&key(KeyCode::Char('G'), KeyModifiers::SHIFT)),
            Some(Action::Bottom)
        );
        assert_eq!(
            m.action(&key(KeyCode::Char('K'), KeyModifiers::SHIFT)),
            Some(Action::Kill)
        );
        assert_eq!(
            m.action(&key(KeyCode::Tab, KeyModifiers::SHIFT)),
            Some(Action::PrevView)
        );
        assert_eq!(
            m.action(&key(KeyCode::Char('d'), KeyModifiers::CONTROL)),
            Some(Action::PageDown)
        );
        assert_eq!(
            m.action(&key(KeyCode::Char('d'), KeyModifiers::NONE)),
            Some(Action::Drain)
        );
    }

    #[test]
    fn overrides_move_keys_and_name_bad_ones() {
        let m = Keymap::with_overrides([("drain", vec!["D"]), ("weight_up", vec!["d"])])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            m.action(&key(KeyCode::Char('d'), KeyModifiers::NONE)),
            Some(Action::WeightUp)
        );
        assert_eq!(
            m.action(&key(KeyCode::Char('D'), KeyModifiers::SHIFT)),
            Some(Action::Drain)
        );
        assert_eq!(m.keys_of(Action::WeightUp), "d");
        let e = Keymap::with_overrides([("drian", vec!["D"])])
            .err()
            .unwrap_or_default();
        assert!(e.starts_with("key `keys.drian`: no such action"), "{e}");
        let e = Keymap::with_overrides([("drain", vec!["hyper-x"])])
            .err()
            .unwrap_or_default();
        assert_eq!(e, "key `keys.drain`: unknown key `hyper-x`");
        assert!(Keymap::with_overrides([("quit", vec!["ctrl-c"])]).is_err());
    }

    #[test]
    fn help_lists_every_action() {
        let m = Keymap::default();
        let n: usize = m.help().iter().map(|(_, l)| l.len()).sum();
        assert_eq!(n, SPECS.len());
        assert_eq!(m.keys_of(Action::Down), "j/↓");
    }
}
