//! Colour themes: `default` (256-colour palette), `16` (the 16 ANSI colours only, for old
//! terminals and consoles) and `mono` (no colour at all, only bold, reverse and underline:
//! what `NO_COLOR` selects). Every style the views use comes from here, so a view never
//! names a colour.

use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;

/// A theme's name, as `--theme` and the settings file spell it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
pub enum ThemeName {
    /// The 256-colour palette.
    #[default]
    #[serde(rename = "default")]
    #[value(name = "default")]
    Default,
    /// The 16 ANSI colours.
    #[serde(rename = "16")]
    #[value(name = "16")]
    Sixteen,
    /// No colour.
    #[serde(rename = "mono")]
    #[value(name = "mono")]
    Mono,
}

/// The styles of every element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    /// Which theme this is.
    pub name: ThemeName,
    /// The title bar.
    pub title: Style,
    /// An inactive view tab.
    pub tab: Style,
    /// The current view tab.
    pub tab_active: Style,
    /// Column headers.
    pub header: Style,
    /// The selected row.
    pub selected: Style,
    /// A virtual service line.
    pub service: Style,
    /// Secondary text.
    pub dim: Style,
    /// Healthy, up, master, success.
    pub ok: Style,
    /// Attention: drained, overloaded, backup, sorry server in service.
    pub warn: Style,
    /// Trouble: down, unreachable, quorum lost, errors.
    pub bad: Style,
    /// A full-width alarm banner (split brain, director unreachable).
    pub alarm: Style,
    /// A key in help and hints.
    pub key: Style,
    /// Dialog frame.
    pub dialog: Style,
    /// Progress bar filling.
    pub gauge: Style,
    /// Sparklines.
    pub spark: Style,
}

impl Theme {
    /// The theme called `name`.
    pub fn new(name: ThemeName) -> Theme {
        match name {
            ThemeName::Default => Theme {
                name,
                title: Style::new().fg(Color::Indexed(231)).bg(Color::Indexed(24)),
                tab: Style::new().fg(Color::Indexed(252)).bg(Color::Indexed(236)),
                tab_active: Style::new()
                    .fg(Color::Indexed(16))
                    .bg(Color::Indexed(75))
                    .add_modifier(Modifier::BOLD),
                header: Style::new()
                    .fg(Color::Indexed(110))
                    .add_modifier(Modifier::BOLD),
                selected: Style::new()
                    .bg(Color::Indexed(238))
                    .add_modifier(Modifier::BOLD),
                service: Style::new()
                    .fg(Color::Indexed(153))
                    .add_modifier(Modifier::BOLD),
                dim: Style::new().fg(Color::Indexed(244)),
                ok: Style::new().fg(Color::Indexed(114)),
                warn: Style::new().fg(Color::Indexed(221)),
                bad: Style::new()
                    .fg(Color::Indexed(203))
                    .add_modifier(Modifier::BOLD),
                alarm: Style::new()
                    .fg(Color::Indexed(231))
                    .bg(Color::Indexed(160))
                    .add_modifier(Modifier::BOLD),
                key: Style::new()
                    .fg(Color::Indexed(222))
                    .add_modifier(Modifier::BOLD),
                dialog: Style::new().fg(Color::Indexed(252)).bg(Color::Indexed(235)),
                gauge: Style::new().fg(Color::Indexed(75)).bg(Color::Indexed(237)),
                spark: Style::new().fg(Color::Indexed(75)),
            },
            ThemeName::Sixteen => Theme {
                name,
                title: Style::new().fg(Color::White).bg(Color::Blue),
                tab: Style::new().fg(Color::Gray).bg(Color::Black),
                tab_active: Style::new()
                    .fg(Color::Black)
                    .bg(Color::Cyan)
                    .add_modifier(Modifier::BOLD),
                header: Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
                selected: Style::new().add_modifier(Modifier::REVERSED),
                service: Style::new()
                    .fg(Color::LightBlue)
                    .add_modifier(Modifier::BOLD),
                dim: Style::new().fg(Color::DarkGray),
                ok: Style::new().fg(Color::Green),
                warn: Style::new().fg(Color::Yellow),
                bad: Style::new()
                    .fg(Color::LightRed)
                    .add_modifier(Modifier::BOLD),
                alarm: Style::new()
                    .fg(Color::White)
                    .bg(Color::Red)
                    .add_modifier(Modifier::BOLD),
                key: Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
                dialog: Style::new().fg(Color::White).bg(Color::Black),
                gauge: Style::new().fg(Color::Cyan).bg(Color::Black),
                spark: Style::new().fg(Color::Cyan),
            },
            ThemeName::Mono => Theme {
                name,
                title: Style::new().add_modifier(Modifier::REVERSED),
                tab: Style::new(),
                tab_active: Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD),
                header: Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
                selected: Style::new().add_modifier(Modifier::REVERSED),
                service: Style::new().add_modifier(Modifier::BOLD),
                dim: Style::new(),
                ok: Style::new(),
                warn: Style::new().add_modifier(Modifier::BOLD),
                bad: Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
                alarm: Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD),
                key: Style::new().add_modifier(Modifier::BOLD),
                dialog: Style::new(),
                gauge: Style::new(),
                spark: Style::new(),
            },
        }
    }
}

impl Default for Theme {
    fn default() -> Self {
        Theme::new(ThemeName::Default)
    }
}
