//! Rendering: [`draw`] paints one frame of an [`App`], and changes nothing.
//!
//! Layout, top to bottom: the title bar with the view tabs; one line of director status;
//! alarm banners (split brain first, then unreachable directors; at most 3); the view;
//! the status line (the message, the filter or command being typed, or key hints).
//! [`App::chrome_top`] and [`App::table_rows`] compute the same geometry, so paging in
//! the app matches what is on screen.
//!
//! Invariants:
//! - Only the visible rows of a table are built, so a frame costs the same with 10 or
//!   10,000 real servers (and the connection table is a page anyway).
//! - 80x24 is a first-class size: columns are narrower and named as ipvsadm abbreviates
//!   them; nothing needed to act is pushed off screen.
//! - Colours come from [`super::theme::Theme`] only; every state is also spelled in words
//!   (UP, DOWN, DRAIN, OVERLOAD, MASTER), so the mono theme loses nothing.
//! - Addresses of either family print as the API's types do (`203.0.113.10:80`,
//!   `[2001:db8:f::10]:80`). Address columns keep the width the IPv4 layout always had and
//!   widen to their longest entry when there is room ([`fit_columns`]); when there is not,
//!   an address is shortened in its middle with `…` ([`fit_addr`]) so its port and both ends
//!   of the address stay visible — never cut at the end, which would show a wrong port.
//! - The forwarding word is ipvsadm's (`Masq`, `Route`, `Tunnel`) in every layout.

use std::collections::VecDeque;
use std::fmt::Write as _;

use lvs_proto::{
    ConnEntry, Forwarding, HealthState, RealServerInfo, RealServerRoute, ServiceInfo,
    VrrpInstanceInfo, VrrpState,
};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, Borders, Cell, Clear, Gauge, Paragraph, Row, Sparkline, Table, Wrap,
};

use super::app::{App, Columns, Dialog, Director, Level, Link, Mode, SvcRow, View, duration_text};
use super::keymap::Action;
use crate::cli::text::utc_time;
use crate::ipvsadm::expire_mmss;

/// Paints the whole screen.
pub fn draw(frame: &mut Frame, app: &App) {
    let area = frame.area();
    let top = app.chrome_top().min(area.height);
    let [head, body, status] = Layout::vertical([
        Constraint::Length(top),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_title(frame, app, Rect { height: 1, ..head });
    if head.height > 1 {
        draw_directors(
            frame,
            app,
            Rect {
                y: head.y + 1,
                height: 1,
                ..head
            },
        );
    }
    if head.height > 2 {
        draw_banners(
            frame,
            app,
            Rect {
                y: head.y + 2,
                height: head.height - 2,
                ..head
            },
        );
    }
    match app.view {
        View::Topology => draw_topology(frame, app, body),
        View::Services => match app.detail {
            Some(_) => draw_detail(frame, app, body),
            None => draw_services(frame, app, body),
        },
        View::Decisions => draw_decisions(frame, app, body),
        View::Connections => draw_connections(frame, app, body),
        View::Vrrp => draw_vrrp(frame, app, body),
        View::Events => draw_events(frame, app, body),
    }
    draw_status(frame, app, status);
    match &app.mode {
        Mode::Dialog(d) => draw_dialog(frame, app, d, area),
        Mode::Help(scroll) => draw_help(frame, app, *scroll, area),
        _ => {}
    }
}

fn narrow(area: Rect) -> bool {
    area.width < 100
}

/// Column widths for address columns given as `(natural, floor)`: the longest text of the
/// column and the width it has at least when there is room (what the IPv4 layout always
/// used). When the wanted widths (`max(natural, floor)`) do not fit in `avail`, columns
/// first give up padding down to their natural width, then the widest shrinks one at a
/// time down to `min` (its entries are then shortened by [`fit_addr`]).
pub(crate) fn fit_columns(cols: &[(usize, usize)], avail: usize, min: usize) -> Vec<usize> {
    let mut w: Vec<usize> = cols.iter().map(|&(nat, floor)| nat.max(floor)).collect();
    let total = |w: &[usize]| w.iter().sum::<usize>();
    while total(&w) > avail {
        // The column with the most padding gives one up.
        let Some((i, pad)) = w
            .iter()
            .zip(cols)
            .map(|(&w, &(nat, _))| w.saturating_sub(nat))
            .enumerate()
            .max_by_key(|&(i, pad)| (pad, std::cmp::Reverse(i)))
        else {
            break;
        };
        if pad == 0 {
            break;
        }
        w[i] -= 1;
    }
    while total(&w) > avail {
        let Some((i, &widest)) = w
            .iter()
            .enumerate()
            .max_by_key(|&(i, &x)| (x, std::cmp::Reverse(i)))
        else {
            break;
        };
        if widest <= min {
            break;
        }
        w[i] -= 1;
    }
    w
}

/// `text` (an address, `ADDR`, `ADDR:PORT` or `[ADDR]:PORT`, maybe after a prefix such as
/// `  -> `) in at most `width` characters: unchanged when it fits; else the middle of the
/// address gives way to `…`, keeping the prefix, the port and both ends of the address
/// (`[2001:…c::10]:40000`). Too narrow even for that: cut with a final `…`.
pub(crate) fn fit_addr(text: &str, width: usize) -> String {
    let len = text.chars().count();
    if len <= width {
        return text.to_string();
    }
    let cut = |w: usize| -> String {
        match w {
            0 => String::new(),
            w => text.chars().take(w - 1).chain(['…']).collect(),
        }
    };
    if !text.is_ascii() {
        return cut(width);
    }
    // Split into prefix, address and suffix (`]:PORT` or `:PORT`).
    let (start, end) = if let Some(close) = text.rfind(']') {
        match text[..close].rfind('[') {
            Some(open) => (open + 1, close),
            None => return cut(width),
        }
    } else {
        let start = text.rfind(' ').map_or(0, |i| i + 1);
        let end = match text[start..].matches(':').count() {
            1 => text.rfind(':').unwrap_or(len),
            _ => len,
        };
        (start, end)
    };
    let keep = width.saturating_sub(start + (len - end));
    if keep < 5 {
        return cut(width);
    }
    let head = (keep - 1) / 2;
    let tail = keep - 1 - head;
    format!(
        "{}{}…{}{}",
        &text[..start],
        &text[start..start + head],
        &text[end - tail..end],
        &text[end..]
    )
}

// ----- chrome -----

fn draw_title(frame: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let mut spans = vec![Span::styled(
        " lvs-tui ",
        t.title.add_modifier(Modifier::BOLD),
    )];
    let short = area.width < 96;
    for (i, v) in View::ALL.iter().enumerate() {
        let name = if short { v.short() } else { v.title() };
        let style = if *v == app.view { t.tab_active } else { t.tab };
        spans.push(Span::styled(format!(" {} {name} ", i + 1), style));
    }
    let mut right = String::new();
    if app.readonly {
        right.push_str(" READ-ONLY ");
    }
    let _ = write!(right, " every {} ", duration_text(app.interval_ms));
    let used: usize = spans.iter().map(Span::width).sum();
    let pad = usize::from(area.width).saturating_sub(used + right.chars().count());
    spans.push(Span::styled(" ".repeat(pad), t.tab));
    spans.push(Span::styled(
        right,
        if app.readonly {
            t.warn.patch(t.tab)
        } else {
            t.tab
        },
    ));
    frame.render_widget(Line::from(spans), area);
}

fn link_span<'a>(app: &App, d: &'a Director) -> Vec<Span<'a>> {
    let t = &app.theme;
    let mut v = Vec::new();
    match &d.link {
        Link::Up => {
            v.push(Span::styled("● ", t.ok));
            v.push(Span::styled(
                d.name.as_str(),
                Style::new().add_modifier(Modifier::BOLD),
            ));
            let role = match d.role {
                Some(lvs_proto::Role::Admin) => " admin",
                Some(lvs_proto::Role::ReadOnly) => " read-only",
                None => "",
            };
            let rs: usize = d.services.iter().map(|s| s.real_servers.len()).sum();
            let age = d
                .updated_ms
                .map(|u| duration_text(app.now_ms.saturating_sub(u) / 1000 * 1000))
                .unwrap_or_else(|| "-".into());
            v.push(Span::styled(
                format!("{role} {} svc {rs} rs ({age} ago)", d.services.len()),
                t.dim,
            ));
            if !d.poll_errors.is_empty() {
                v.push(Span::styled(" ⚠", t.warn));
            }
        }
        Link::Connecting => {
            v.push(Span::styled("○ ", t.dim));
            v.push(Span::raw(d.name.as_str()));
            v.push(Span::styled(" connecting…", t.dim));
        }
        Link::Down { .. } => {
            v.push(Span::styled("✖ ", t.bad));
            v.push(Span::styled(d.name.as_str(), t.bad));
            v.push(Span::styled(" unreachable", t.bad));
        }
    }
    v
}

fn draw_directors(frame: &mut Frame, app: &App, area: Rect) {
    let mut spans = vec![Span::raw(" ")];
    for (i, d) in app.directors.iter().enumerate() {
        if i > 0 {
            spans.push(Span::styled("  │  ", app.theme.dim));
        }
        spans.extend(link_span(app, d));
    }
    frame.render_widget(Line::from(spans), area);
}

/// The banner texts, most severe first.
fn banners(app: &App) -> Vec<String> {
    let mut out = Vec::new();
    for (vrid, who) in app.split_brain() {
        out.push(format!(
            " ‼ SPLIT BRAIN: VRID {vrid} is MASTER on {} — both answer for its VIPs ",
            who.join(" and ")
        ));
    }
    for d in &app.directors {
        if let Link::Down {
            message,
            retry_at_ms,
            ..
        } = &d.link
        {
            let retry = retry_at_ms.saturating_sub(app.now_ms);
            let data = match d.updated_ms {
                Some(u) => format!(" · data from {}", &utc_time(u)[11..19]),
                None => String::new(),
            };
            out.push(format!(
                " ✖ {} unreachable: {message} · retry in {}{data} · {} ",
                d.name,
                duration_text(retry.div_ceil(1000) * 1000),
                d.address,
            ));
        }
    }
    out
}

fn draw_banners(frame: &mut Frame, app: &App, area: Rect) {
    for (i, text) in banners(app)
        .into_iter()
        .take(usize::from(area.height))
        .enumerate()
    {
        let y = area.y + u16::try_from(i).unwrap_or(0);
        let line = Line::from(Span::styled(
            format!("{text:<width$}", width = usize::from(area.width)),
            app.theme.alarm,
        ));
        frame.render_widget(
            line,
            Rect {
                y,
                height: 1,
                ..area
            },
        );
    }
}

fn hint(app: &App, action: Action, what: &str) -> Vec<Span<'static>> {
    match app.keymap.first_key(action) {
        Some(k) => vec![
            Span::styled(k, app.theme.key),
            Span::styled(format!(" {what}  "), app.theme.dim),
        ],
        None => Vec::new(),
    }
}

fn draw_status(frame: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let line = match &app.mode {
        Mode::Filter(buf) => Line::from(vec![
            Span::styled("/", t.key),
            Span::raw(buf.clone()),
            Span::styled("█", t.dim),
            Span::styled(
                if app.view == View::Connections {
                    "   client prefix, state, VIP:PORT · Enter apply · Esc clear"
                } else {
                    "   Enter keep · Esc clear · ! inverts"
                },
                t.dim,
            ),
        ]),
        Mode::Command(buf) => Line::from(vec![
            Span::styled(":", t.key),
            Span::raw(buf.clone()),
            Span::styled("█", t.dim),
        ]),
        _ => match app.status_at(app.now_ms) {
            Some(s) => {
                let style = match s.level {
                    Level::Info => Style::new(),
                    Level::Ok => t.ok,
                    Level::Error => t.bad,
                };
                Line::from(Span::styled(format!(" {}", s.text), style))
            }
            None => {
                // Most needed first: a narrow terminal cuts the end.
                let mut spans = vec![Span::raw(" ")];
                spans.extend(hint(app, Action::Help, "help"));
                spans.extend(hint(app, Action::Quit, "quit"));
                match app.view {
                    View::Services if !app.readonly => {
                        spans.extend(hint(app, Action::WeightUp, "weight"));
                        spans.extend(hint(app, Action::WeightInput, "set"));
                        spans.extend(hint(app, Action::Drain, "drain"));
                        spans.extend(hint(app, Action::Undrain, "undrain"));
                        spans.extend(hint(app, Action::Open, "detail"));
                        spans.extend(hint(app, Action::ToggleRates, "rates"));
                    }
                    View::Services => {
                        spans.extend(hint(app, Action::Open, "detail"));
                        spans.extend(hint(app, Action::ToggleRates, "rates"));
                        spans.extend(hint(app, Action::ToggleExact, "exact"));
                    }
                    View::Connections => {
                        spans.extend(hint(app, Action::PageDown, "next page"));
                        spans.extend(hint(app, Action::PageUp, "prev"));
                        if !app.readonly {
                            spans.extend(hint(app, Action::Kill, "kill"));
                        }
                        spans.extend(hint(app, Action::NextDirector, "director"));
                    }
                    View::Decisions => spans.extend(hint(app, Action::Pause, "pause")),
                    _ => {}
                }
                spans.extend(hint(app, Action::Filter, "filter"));
                spans.extend(hint(app, Action::Command, "cmd"));
                Line::from(spans)
            }
        },
    };
    frame.render_widget(line, area);
}

// ----- helpers -----

/// Numbers as ipvsadm prints them (K/M/G/T unless exact).
fn num(app: &App, n: u64) -> String {
    if app.exact {
        n.to_string()
    } else {
        crate::ipvsadm_number(n)
    }
}

const BARS: [char; 9] = [' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// The last `width` samples as block characters, scaled to their maximum.
pub fn spark_text(samples: Option<&VecDeque<u64>>, width: usize) -> String {
    let Some(samples) = samples else {
        return String::new();
    };
    let skip = samples.len().saturating_sub(width);
    let max = samples.iter().skip(skip).copied().max().unwrap_or(0);
    samples
        .iter()
        .skip(skip)
        .map(|&v| {
            if max == 0 || v == 0 {
                BARS[0]
            } else {
                // 1..=8, rounded up so a small non-zero value still shows.
                let level = (v * 8).div_ceil(max).clamp(1, 8);
                BARS[usize::try_from(level).unwrap_or(8)]
            }
        })
        .collect()
}

/// The health word and its style.
fn health_cell(app: &App, r: &RealServerInfo) -> (String, Style) {
    let t = &app.theme;
    match r.health.as_ref().map(|h| h.state) {
        Some(HealthState::Up) => ("UP".into(), t.ok),
        Some(HealthState::Down) => ("DOWN".into(), t.bad),
        None => ("-".into(), t.dim),
    }
}

/// The state word(s): DRAIN n, OVERLOAD, SORRY, out.
fn state_cell(app: &App, dir: usize, svc: &ServiceInfo, r: &RealServerInfo) -> (String, Style) {
    let t = &app.theme;
    if let Some(from) = r.drained_from {
        let target = super::app::Target {
            director: dir,
            service: svc.key(),
            real_server: r.key(),
        };
        let left = app
            .drain_track(&target)
            .map_or(u64::from(r.active) + u64::from(r.inactive), |d| d.left());
        return if left == 0 {
            (format!("DRAINED w{from}"), t.warn)
        } else {
            (format!("DRAIN {left} left"), t.warn)
        };
    }
    if r.overloaded {
        return ("OVERLOAD".into(), t.warn);
    }
    if r.sorry {
        // The sorry server: in service (loud) only while nothing else serves.
        return if r.in_service {
            ("SORRY".into(), t.warn)
        } else {
            ("sorry".into(), t.dim)
        };
    }
    if !r.in_service {
        return ("out".into(), t.bad);
    }
    if r.weight == 0 {
        return ("quiesced".into(), t.dim);
    }
    (String::new(), Style::new())
}

fn quorum_cell(app: &App, s: &ServiceInfo) -> (String, Style) {
    match &s.quorum {
        Some(q) if q.up => (format!("Q {}/{}", q.live_weight, q.quorum), app.theme.ok),
        Some(q) => (
            format!("NO QUORUM {}/{}", q.live_weight, q.quorum),
            app.theme.bad,
        ),
        None => (String::new(), Style::new()),
    }
}

/// `TCP  203.0.113.10:80`, `TCP  [2001:db8:f::10]:80` (ipvsadm's service name).
fn service_name(s: &ServiceInfo) -> String {
    format!(
        "{}  {}",
        s.protocol.ipvsadm_name(),
        std::net::SocketAddr::new(s.vip, s.port)
    )
}

/// `  -> 192.0.2.11:80`, `  -> [2001:db8:b::11]:80` (ipvsadm's real-server line).
fn real_name(r: &RealServerInfo) -> String {
    format!("  -> {}", r.key())
}

/// The address column's text of a Services row.
fn svc_row_name(app: &App, row: &SvcRow) -> Option<String> {
    let (dir, svc) = match *row {
        SvcRow::Service { dir, svc } | SvcRow::Real { dir, svc, .. } => (dir, svc),
    };
    let s = app.directors.get(dir)?.services.get(svc)?;
    match *row {
        SvcRow::Service { .. } => Some(service_name(s)),
        SvcRow::Real { rs, .. } => s.real_servers.get(rs).map(real_name),
    }
}

fn service_flags(s: &ServiceInfo) -> String {
    let mut out = s.scheduler.name().to_string();
    if !s.flags.is_empty() {
        let _ = write!(out, " ({})", s.flags.join(","));
    }
    if let Some(p) = &s.persistence {
        let _ = write!(out, " persistent {}", p.timeout_secs);
    }
    if s.one_packet {
        out.push_str(" ops");
    }
    out
}

/// The flags in a few characters: `p300` (persistent), `ops`, `+f` (scheduler flags; the
/// detail spells them out).
fn compact_flags(s: &ServiceInfo) -> String {
    let mut out = String::new();
    if let Some(p) = &s.persistence {
        let _ = write!(out, "p{}", p.timeout_secs);
    }
    if s.one_packet {
        out.push_str(if out.is_empty() { "ops" } else { ",ops" });
    }
    if !s.flags.is_empty() {
        out.push_str("+f");
    }
    out
}

/// A number right-aligned, as ipvsadm prints `--stats` and `--rate` columns.
fn right(text: String) -> Cell<'static> {
    Cell::from(Line::from(text).alignment(ratatui::layout::Alignment::Right))
}

/// Column titles; the names in `right_aligned` over right-aligned numbers.
fn header_row(app: &App, cells: Vec<&'static str>, right_aligned: &[&str]) -> Row<'static> {
    Row::new(cells.into_iter().map(|c| {
        if right_aligned.contains(&c) {
            Cell::from(Line::from(c).alignment(ratatui::layout::Alignment::Right))
        } else {
            Cell::from(c)
        }
    }))
    .style(app.theme.header)
}

// ----- Services -----

fn draw_services(frame: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let n = narrow(area);
    let multi = app.directors.len() > 1;
    let wide = area.width >= 120;
    // The address column: 22/26 as always, wider for long (IPv6) addresses while the trend
    // keeps a few columns; it is set once the other columns are known.
    let addr_floor: usize = if n { 22 } else { 26 };
    let mut widths: Vec<Constraint> = Vec::new();
    let mut header: Vec<&'static str> = Vec::new();
    if multi {
        let w = app
            .directors
            .iter()
            .map(|d| d.name.chars().count())
            .max()
            .unwrap_or(4)
            .clamp(3, 10);
        widths.push(Constraint::Length(u16::try_from(w).unwrap_or(10)));
        header.push("Dir");
    }
    let addr_col = widths.len();
    widths.push(Constraint::Length(0));
    header.push(if n {
        "Prot VIP:Port / -> RIP"
    } else {
        "Prot LocalAddress:Port"
    });
    let value_cols: Vec<(&'static str, u16)> = match app.columns {
        // 6: ipvsadm's `Tunnel` fits (`Masq`, `Route` are narrower).
        Columns::Conns if n => vec![("Fwd", 6), ("Weight", 6), ("Active", 6), ("InAct", 6)],
        Columns::Conns => {
            let mut v = vec![
                ("Forward", 7),
                ("Weight", 6),
                ("ActiveConn", 10),
                ("InActConn", 9),
            ];
            if wide {
                v.push(("Persist", 7));
            }
            v
        }
        Columns::Rates => vec![
            ("CPS", 7),
            ("InPPS", 8),
            ("OutPPS", 8),
            ("InBPS", 9),
            ("OutBPS", 9),
        ],
        Columns::Stats => vec![
            ("Conns", 8),
            ("InPkts", 9),
            ("OutPkts", 9),
            ("InBytes", 9),
            ("OutBytes", 9),
        ],
    };
    let right_aligned: Vec<&str> = value_cols.iter().map(|(h, _)| *h).collect();
    for (h, w) in &value_cols {
        header.push(h);
        widths.push(Constraint::Length(*w));
    }
    if wide {
        header.push("Health");
        widths.push(Constraint::Length(6));
        header.push("State");
        widths.push(Constraint::Length(14));
    } else {
        header.push("State");
        widths.push(Constraint::Length(if n { 9 } else { 12 }));
    }
    let with_cps = app.columns == Columns::Conns;
    if with_cps {
        header.push("CPS");
        widths.push(Constraint::Length(6));
    }
    header.push(if n { "Trend" } else { "CPS trend" });
    widths.push(Constraint::Min(0));
    let rows_shown = app.table_rows();
    let cursor = app.cursors[1];
    let others: u16 = widths
        .iter()
        .map(|c| match c {
            Constraint::Length(l) => *l + 1,
            _ => 0,
        })
        .sum::<u16>()
        + 1;
    let natural = app
        .svc_rows
        .iter()
        .skip(cursor.offset)
        .take(rows_shown)
        .filter_map(|row| svc_row_name(app, row))
        .map(|s| s.chars().count())
        .max()
        .unwrap_or(0);
    const MIN_TREND: usize = 6;
    let avail = usize::from(area.width.saturating_sub(others)).saturating_sub(MIN_TREND);
    let addr_w = fit_columns(&[(natural, addr_floor)], avail.max(addr_floor), addr_floor)
        .first()
        .copied()
        .unwrap_or(addr_floor);
    widths[addr_col] = Constraint::Length(u16::try_from(addr_w).unwrap_or(u16::MAX));
    let fixed: u16 = widths
        .iter()
        .map(|c| match c {
            Constraint::Length(l) => *l + 1,
            _ => 0,
        })
        .sum();
    let spark_w = usize::from(area.width.saturating_sub(fixed)).min(60);

    let mut rows = Vec::with_capacity(rows_shown);
    for (i, row) in app
        .svc_rows
        .iter()
        .enumerate()
        .skip(cursor.offset)
        .take(rows_shown)
    {
        let selected = i == cursor.selected;
        let mut cells: Vec<Cell> = Vec::new();
        let (dir, svc) = match *row {
            SvcRow::Service { dir, svc } | SvcRow::Real { dir, svc, .. } => (dir, svc),
        };
        let Some(d) = app.directors.get(dir) else {
            continue;
        };
        let Some(s) = d.services.get(svc) else {
            continue;
        };
        if multi {
            cells.push(Cell::from(Span::styled(d.name.clone(), t.dim)));
        }
        let mut style = Style::new();
        match *row {
            SvcRow::Service { .. } => {
                style = t.service;
                cells.push(Cell::from(fit_addr(&service_name(s), addr_w)));
                match app.columns {
                    Columns::Conns => {
                        cells.push(Cell::from(s.scheduler.name()));
                        cells.push(Cell::from(compact_flags(s)));
                        let act: u64 = s.real_servers.iter().map(|r| u64::from(r.active)).sum();
                        let inact: u64 = s.real_servers.iter().map(|r| u64::from(r.inactive)).sum();
                        cells.push(Cell::from(num(app, act)));
                        cells.push(Cell::from(num(app, inact)));
                        if !n && wide {
                            let p: u64 =
                                s.real_servers.iter().map(|r| u64::from(r.persistent)).sum();
                            cells.push(Cell::from(num(app, p)));
                        }
                    }
                    Columns::Rates => {
                        for v in [
                            s.rates.cps,
                            s.rates.inpps,
                            s.rates.outpps,
                            s.rates.inbps,
                            s.rates.outbps,
                        ] {
                            cells.push(right(num(app, v)));
                        }
                    }
                    Columns::Stats => {
                        let c = &s.counters;
                        for v in [c.conns, c.inpkts, c.outpkts, c.inbytes, c.outbytes] {
                            cells.push(right(num(app, v)));
                        }
                    }
                }
                let (q, qs) = quorum_cell(app, s);
                if wide {
                    cells.push(Cell::from(""));
                }
                cells.push(Cell::from(Span::styled(q, qs)));
                if with_cps {
                    cells.push(Cell::from(num(app, s.rates.cps)));
                }
                cells.push(Cell::from(Span::styled(
                    spark_text(app.svc_history.get(&(dir, s.key())), spark_w),
                    t.spark,
                )));
            }
            SvcRow::Real { rs, .. } => {
                let Some(r) = s.real_servers.get(rs) else {
                    continue;
                };
                cells.push(Cell::from(fit_addr(&real_name(r), addr_w)));
                match app.columns {
                    Columns::Conns => {
                        cells.push(Cell::from(r.forwarding.ipvsadm_name()));
                        cells.push(Cell::from(r.weight.to_string()));
                        cells.push(Cell::from(num(app, u64::from(r.active))));
                        cells.push(Cell::from(num(app, u64::from(r.inactive))));
                        if !n && wide {
                            cells.push(Cell::from(num(app, u64::from(r.persistent))));
                        }
                    }
                    Columns::Rates => {
                        let x = &r.rates;
                        for v in [x.cps, x.inpps, x.outpps, x.inbps, x.outbps] {
                            cells.push(right(num(app, v)));
                        }
                    }
                    Columns::Stats => {
                        let c = &r.counters;
                        for v in [c.conns, c.inpkts, c.outpkts, c.inbytes, c.outbytes] {
                            cells.push(right(num(app, v)));
                        }
                    }
                }
                let (h, hs) = health_cell(app, r);
                let (st, sts) = state_cell(app, dir, s, r);
                if wide {
                    cells.push(Cell::from(Span::styled(h, hs)));
                    cells.push(Cell::from(Span::styled(st, sts)));
                } else if st.is_empty() || h == "DOWN" {
                    cells.push(Cell::from(Span::styled(h, hs)));
                } else {
                    cells.push(Cell::from(Span::styled(st, sts)));
                }
                if with_cps {
                    cells.push(Cell::from(num(app, r.rates.cps)));
                }
                cells.push(Cell::from(Span::styled(
                    spark_text(app.history.get(&(dir, s.key(), r.key())), spark_w),
                    t.spark,
                )));
            }
        }
        if matches!(d.link, Link::Down { .. }) {
            // Last known data of a director that does not answer.
            style = style.patch(t.dim);
        }
        let mut row = Row::new(cells).style(style);
        if selected {
            row = row.style(style.patch(t.selected));
        }
        rows.push(row);
    }
    let empty = app.svc_rows.is_empty();
    let table = Table::new(rows, widths)
        .header(header_row(
            app,
            header,
            if app.columns == Columns::Conns {
                &[]
            } else {
                &right_aligned
            },
        ))
        .column_spacing(1);
    frame.render_widget(table, area);
    if empty {
        let msg = if !app.filters[1].is_empty() {
            format!(
                "nothing matches the filter `{}` (Esc clears it)",
                app.filters[1]
            )
        } else if app.directors.iter().all(|d| d.updated_ms.is_none()) {
            "waiting for the directors…".to_string()
        } else {
            "no virtual services configured".to_string()
        };
        let r = Rect {
            y: area.y + 1,
            height: 1,
            ..area
        };
        frame.render_widget(Paragraph::new(Span::styled(format!(" {msg}"), t.dim)), r);
    }
}

fn draw_detail(frame: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let Some((dir, key)) = app.detail else { return };
    let Some(d) = app.directors.get(dir) else {
        return;
    };
    let Some(s) = d.services.iter().find(|s| s.key() == key) else {
        frame.render_widget(
            Paragraph::new(format!(" {key} is gone from {} (Esc goes back)", d.name)),
            area,
        );
        return;
    };
    let [head, table_area, spark_area] = Layout::vertical([
        Constraint::Length(App::DETAIL_HEADER),
        Constraint::Min(1),
        Constraint::Length(App::DETAIL_SPARK),
    ])
    .areas(area);

    let mut lines = Vec::new();
    let mut l1 = vec![
        Span::styled(format!(" {} ", service_name(s)), t.service),
        Span::raw(format!(" {} ", service_flags(s))),
    ];
    if let Some(p) = &s.persistence {
        // ipvsadm's spelling: a netmask for IPv4, a prefix length for IPv6.
        let mask = if s.vip.is_ipv6() {
            p.prefix6.to_string()
        } else {
            p.netmask.to_string()
        };
        l1.push(Span::styled(
            format!(
                " mask {mask}{}",
                if p.quiescent_template_expire {
                    ", quiescent templates expire"
                } else {
                    ""
                }
            ),
            t.dim,
        ));
    }
    l1.push(Span::styled(format!("  on {}", d.name), t.dim));
    lines.push(Line::from(l1));
    let r = &s.rates;
    let c = &s.counters;
    lines.push(Line::from(Span::styled(
        format!(
            " conns {} · in {} pkts {} bytes · out {} pkts {} bytes · CPS {} InPPS {} OutPPS {}",
            num(app, c.conns),
            num(app, c.inpkts),
            num(app, c.inbytes),
            num(app, c.outpkts),
            num(app, c.outbytes),
            num(app, r.cps),
            num(app, r.inpps),
            num(app, r.outpps)
        ),
        t.dim,
    )));
    let sorry = s.real_servers.iter().find(|r| r.sorry);
    lines.push(match &s.quorum {
        Some(q) if q.up => Line::from(Span::styled(
            format!(
                " quorum {} (hysteresis {}): live weight {} — UP",
                q.quorum, q.hysteresis, q.live_weight
            ),
            t.ok,
        )),
        Some(q) => Line::from(Span::styled(
            format!(
                " QUORUM LOST: live weight {} below {} (hysteresis {}){}",
                q.live_weight,
                q.quorum,
                q.hysteresis,
                match sorry {
                    Some(r) if r.in_service => format!(" — sorry server {} serves", r.key()),
                    _ => " — nothing serves this service".to_string(),
                }
            ),
            t.bad,
        )),
        None => Line::from(Span::styled(" no quorum configured", t.dim)),
    });
    frame.render_widget(Paragraph::new(lines), head);

    let n = narrow(area);
    let header = if n {
        vec![
            "-> RIP:Port",
            "Fwd",
            "Wt",
            "Act",
            "InAct",
            "Health",
            "Last check",
            "Next",
        ]
    } else {
        vec![
            "-> RemoteAddress:Port",
            "Forward",
            "Weight",
            "Active",
            "InAct",
            "Health",
            "Check",
            "Last result",
            "Latency",
            "Next",
            "To flip",
        ]
    };
    let cursor = app.detail_cursor;
    let rows_shown = usize::from(table_area.height.saturating_sub(1));
    // The address column as in the Services view: its usual width, wider for IPv6 while
    // the last result keeps 10 columns (narrow) or the table's fixed columns fit (wide).
    let addr_floor: usize = if n { 20 } else { 22 };
    // The other columns' widths (the Min ones at their minimum) and the spaces between.
    let others: usize = if n {
        6 + 5 + 6 + 6 + 8 + 10 + 5 + 7
    } else {
        7 + 6 + 7 + 7 + 9 + 24 + 16 + 8 + 6 + 9 + 10
    };
    let natural = s
        .real_servers
        .iter()
        .skip(cursor.offset)
        .take(rows_shown)
        .map(|r| real_name(r).chars().count())
        .max()
        .unwrap_or(0);
    let avail = usize::from(table_area.width).saturating_sub(others);
    let addr_w = fit_columns(&[(natural, addr_floor)], avail.max(addr_floor), addr_floor)
        .first()
        .copied()
        .unwrap_or(addr_floor);
    let addr_c = Constraint::Length(u16::try_from(addr_w).unwrap_or(u16::MAX));
    let widths: Vec<Constraint> = if n {
        vec![
            addr_c,
            // ipvsadm's `Tunnel` fits.
            Constraint::Length(6),
            Constraint::Length(5),
            Constraint::Length(6),
            Constraint::Length(6),
            Constraint::Length(8),
            Constraint::Min(10),
            Constraint::Length(5),
        ]
    } else {
        vec![
            addr_c,
            Constraint::Length(7),
            Constraint::Length(6),
            Constraint::Length(7),
            Constraint::Length(7),
            Constraint::Length(9),
            Constraint::Length(24),
            Constraint::Min(16),
            Constraint::Length(8),
            Constraint::Length(6),
            Constraint::Length(9),
        ]
    };
    let mut rows = Vec::new();
    for (i, r) in s
        .real_servers
        .iter()
        .enumerate()
        .skip(cursor.offset)
        .take(rows_shown)
    {
        let (h, hs) = health_cell(app, r);
        let (st, sts) = state_cell(app, dir, s, r);
        let health = if st.is_empty() || h == "DOWN" {
            Span::styled(h, hs)
        } else {
            Span::styled(st, sts)
        };
        let hi = r.health.as_ref();
        let last = hi.and_then(|h| h.last.as_ref());
        let last_text = match last {
            Some(l) => format!("{} {}", if l.ok { "ok" } else { "FAIL" }, l.message),
            None if hi.is_some() => "not run yet".to_string(),
            None => "not checked".to_string(),
        };
        let last_style = match last {
            Some(l) if !l.ok => t.bad,
            Some(_) => Style::new(),
            None => t.dim,
        };
        let next = hi
            .and_then(|h| h.next_in_ms)
            .map(|ms| duration_text(ms.div_ceil(1000) * 1000))
            .unwrap_or_else(|| "-".into());
        let mut cells = vec![
            Cell::from(fit_addr(&real_name(r), addr_w)),
            Cell::from(r.forwarding.ipvsadm_name()),
            Cell::from(r.weight.to_string()),
            Cell::from(num(app, u64::from(r.active))),
            Cell::from(num(app, u64::from(r.inactive))),
            Cell::from(health),
        ];
        if n {
            cells.push(Cell::from(Span::styled(last_text, last_style)));
            cells.push(Cell::from(next));
        } else {
            cells.push(Cell::from(Span::styled(
                hi.map_or_else(|| "-".to_string(), |h| h.check.clone()),
                t.dim,
            )));
            cells.push(Cell::from(Span::styled(last_text, last_style)));
            cells.push(Cell::from(
                last.map_or_else(|| "-".to_string(), |l| latency(l.latency_us)),
            ));
            cells.push(Cell::from(next));
            cells.push(Cell::from(hi.map_or_else(
                || "-".to_string(),
                |h| match h.state {
                    HealthState::Up => format!("fail {}/{}", h.failures, h.fall),
                    HealthState::Down => format!("ok {}/{}", h.successes, h.rise),
                },
            )));
        }
        let mut row = Row::new(cells);
        if i == cursor.selected {
            row = row.style(t.selected);
        }
        rows.push(row);
    }
    frame.render_widget(
        Table::new(rows, widths)
            .header(Row::new(header).style(t.header))
            .column_spacing(1),
        table_area,
    );

    // The selected server's CPS over the last minutes.
    let selected = s.real_servers.get(cursor.selected);
    let (title, data): (String, Vec<u64>) = match selected {
        Some(r) => {
            let h = app.history.get(&(dir, key, r.key()));
            let data: Vec<u64> = h.map(|h| h.iter().copied().collect()).unwrap_or_default();
            let max = data.iter().copied().max().unwrap_or(0);
            let span = duration_text(app.interval_ms.saturating_mul(data.len() as u64));
            (
                format!(" CPS of {} · last {span} · max {max} ", r.key()),
                data,
            )
        }
        None => (" CPS ".to_string(), Vec::new()),
    };
    let w = usize::from(spark_area.width.saturating_sub(2));
    let start = data.len().saturating_sub(w);
    let spark = Sparkline::default()
        .block(Block::default().borders(Borders::TOP).title(title))
        .data(&data[start..])
        .style(t.spark);
    frame.render_widget(spark, spark_area);
}

fn latency(us: u64) -> String {
    if us < 1000 {
        format!("{us}µs")
    } else if us < 1_000_000 {
        format!("{:.1}ms", us as f64 / 1000.0)
    } else {
        format!("{:.2}s", us as f64 / 1_000_000.0)
    }
}

// ----- Topology -----

/// One line of the Topology view (built cheaply for all, rendered only when visible).
enum TopoLine<'a> {
    Director(&'a Director),
    /// All interfaces and the DIPs on one line.
    Interfaces(&'a Director),
    /// One interface per line, when they do not fit on one (IPv6 adds addresses).
    Interface(&'a lvs_proto::InterfaceInfo),
    /// The DIPs, after one line per interface.
    Dips(&'a Director),
    Vip {
        dir: &'a Director,
        vip: std::net::IpAddr,
    },
    Service {
        s: &'a ServiceInfo,
        last: bool,
    },
    Real {
        dir: &'a Director,
        s: &'a ServiceInfo,
        r: &'a RealServerInfo,
        last_svc: bool,
        last: bool,
        /// The address column's width (the same for the director's real servers).
        addr_w: usize,
    },
    Note(&'static str),
    Blank,
}

fn topology_model(app: &App) -> Vec<TopoLine<'_>> {
    let f = app.filters[0].trim().to_ascii_lowercase();
    let mut out = Vec::new();
    for d in &app.directors {
        out.push(TopoLine::Director(d));
        match &d.topology {
            Some(top) if interfaces_text_len(top) > usize::from(app.size.0) => {
                out.extend(top.interfaces.iter().map(TopoLine::Interface));
                if !top.dips.is_empty() {
                    out.push(TopoLine::Dips(d));
                }
            }
            _ => out.push(TopoLine::Interfaces(d)),
        }
        // 21 as always, or one more than the longest address (IPv6).
        let addr_w = d
            .services
            .iter()
            .flat_map(|s| &s.real_servers)
            // An IPv4 RIP:PORT is at most 21 characters; only IPv6 needs measuring.
            .filter(|r| r.addr.is_ipv6())
            .map(|r| r.key().to_string().len() + 1)
            .fold(21, usize::max);
        let mut vips: Vec<std::net::IpAddr> = d
            .topology
            .as_ref()
            .map(|t| t.vips.iter().map(|v| v.addr).collect())
            .unwrap_or_default();
        for s in &d.services {
            if !vips.contains(&s.vip) {
                vips.push(s.vip);
            }
        }
        if vips.is_empty() {
            out.push(TopoLine::Note("no virtual services"));
        }
        for vip in vips {
            let services: Vec<&ServiceInfo> = d
                .services
                .iter()
                .filter(|s| s.vip == vip)
                .filter(|s| {
                    f.is_empty()
                        || s.key().to_string().contains(&f)
                        || s.real_servers
                            .iter()
                            .any(|r| r.addr.to_string().contains(&f))
                })
                .collect();
            if services.is_empty() && !f.is_empty() {
                continue;
            }
            out.push(TopoLine::Vip { dir: d, vip });
            let n = services.len();
            for (i, s) in services.into_iter().enumerate() {
                let last_svc = i + 1 == n;
                out.push(TopoLine::Service { s, last: last_svc });
                let m = s.real_servers.len();
                for (j, r) in s.real_servers.iter().enumerate() {
                    out.push(TopoLine::Real {
                        dir: d,
                        s,
                        r,
                        last_svc,
                        last: j + 1 == m,
                        addr_w,
                    });
                }
            }
        }
        out.push(TopoLine::Blank);
    }
    out
}

/// Lines of the Topology view (for scrolling).
pub fn topology_line_count(app: &App) -> usize {
    topology_model(app).len()
}

/// The length of the one-line interfaces text (see [`topo_line`]).
fn interfaces_text_len(top: &lvs_proto::Topology) -> usize {
    let ifaces: usize = top
        .interfaces
        .iter()
        .map(|i| interface_text(i).chars().count() + 3)
        .sum();
    let dips: usize = top.dips.iter().map(|a| a.to_string().len() + 2).sum();
    "   interfaces ".len() + ifaces + if dips > 0 { "   DIP ".len() + dips } else { 0 }
}

/// `eth0 203.0.113.2,2001:db8:f::2,fe80::1`.
fn interface_text(i: &lvs_proto::InterfaceInfo) -> String {
    let addrs: Vec<String> = i.addresses.iter().map(ToString::to_string).collect();
    format!("{} {}", i.name, addrs.join(","))
}

fn dips_text(top: &lvs_proto::Topology) -> String {
    let dips: Vec<String> = top.dips.iter().map(ToString::to_string).collect();
    dips.join(", ")
}

fn vrrp_of_vip(d: &Director, vip: std::net::IpAddr) -> Option<&VrrpInstanceInfo> {
    d.vrrp
        .as_ref()?
        .iter()
        .find(|i| i.vips.iter().any(|p| p.contains(vip)))
}

fn route_of<'a>(
    d: &'a Director,
    s: &ServiceInfo,
    r: &RealServerInfo,
) -> Option<&'a RealServerRoute> {
    let key = s.key();
    d.topology
        .as_ref()?
        .real_servers
        .iter()
        .find(|x| x.service == key && x.real_server == r.key())
}

fn vrrp_style(app: &App, s: VrrpState) -> Style {
    match s {
        VrrpState::Master => app.theme.ok,
        VrrpState::Backup => app.theme.warn,
        VrrpState::Fault => app.theme.bad,
        VrrpState::Init => app.theme.dim,
    }
}

fn topo_line<'a>(app: &App, line: &TopoLine<'a>) -> Line<'a> {
    let t = &app.theme;
    match line {
        TopoLine::Director(d) => {
            let (mark, style) = match d.link {
                Link::Up => ("● ", t.ok),
                Link::Connecting => ("○ ", t.dim),
                Link::Down { .. } => ("✖ ", t.bad),
            };
            let mut spans = vec![
                Span::styled(format!(" {mark}"), style),
                Span::styled(d.name.as_str(), Style::new().add_modifier(Modifier::BOLD)),
            ];
            spans.push(Span::styled(format!("  {}", d.address), t.dim));
            if let Some(v) = &d.daemon {
                spans.push(Span::styled(format!("  lvsd {v}"), t.dim));
            }
            if let Some(role) = d.topology.as_ref().and_then(|t| t.vrrp_role.as_ref()) {
                spans.push(Span::styled(
                    format!("  VRRP {}", role.to_uppercase()),
                    t.warn,
                ));
            }
            Line::from(spans)
        }
        TopoLine::Interfaces(d) => match &d.topology {
            Some(top) => {
                let mut spans = vec![Span::styled("   interfaces ", t.dim)];
                for (i, ifc) in top.interfaces.iter().enumerate() {
                    if i > 0 {
                        spans.push(Span::styled(" · ", t.dim));
                    }
                    spans.push(Span::raw(interface_text(ifc)));
                }
                if !top.dips.is_empty() {
                    spans.push(Span::styled("   DIP ", t.dim));
                    spans.push(Span::raw(dips_text(top)));
                }
                Line::from(spans)
            }
            None => Line::from(Span::styled(
                "   interfaces: not known (older lvsd or not answered yet)",
                t.dim,
            )),
        },
        TopoLine::Interface(ifc) => Line::from(vec![
            Span::styled("   interface ", t.dim),
            Span::raw(interface_text(ifc)),
        ]),
        TopoLine::Dips(d) => Line::from(vec![
            Span::styled("   DIP ", t.dim),
            Span::raw(d.topology.as_ref().map(dips_text).unwrap_or_default()),
        ]),
        TopoLine::Vip { dir, vip } => {
            let info = dir
                .topology
                .as_ref()
                .and_then(|t| t.vips.iter().find(|v| v.addr == *vip));
            let mut spans = vec![
                Span::styled("   VIP ", t.dim),
                Span::styled(vip.to_string(), t.service),
            ];
            match info {
                Some(v) => spans.push(Span::raw(format!(
                    " on {}{}",
                    v.interface,
                    if v.added_by_lvsd {
                        " (added by lvsd)"
                    } else {
                        ""
                    }
                ))),
                None => spans.push(Span::styled(" (interface unknown)", t.dim)),
            }
            if let Some(i) = vrrp_of_vip(dir, *vip) {
                spans.push(Span::styled(
                    format!("  VRRP {} vrid {} ", i.name, i.vrid),
                    t.dim,
                ));
                spans.push(Span::styled(i.state.to_string(), vrrp_style(app, i.state)));
                if i.state != VrrpState::Master
                    && let Some(m) = i.master
                {
                    spans.push(Span::styled(format!(" (master {m})"), t.dim));
                }
            }
            Line::from(spans)
        }
        TopoLine::Service { s, last } => {
            let (q, qs) = quorum_cell(app, s);
            Line::from(vec![
                Span::styled(if *last { "   └─ " } else { "   ├─ " }, t.dim),
                Span::styled(service_name(s), t.service),
                Span::raw(format!(" {}  ", service_flags(s))),
                Span::styled(q, qs),
            ])
        }
        TopoLine::Real {
            dir,
            s,
            r,
            last_svc,
            last,
            addr_w,
        } => {
            let trunk = if *last_svc { "      " } else { "   │  " };
            let branch = if *last { "└─ " } else { "├─ " };
            let route = route_of(dir, s, r);
            let via = route.map_or_else(String::new, |x| x.interface.clone());
            // NAT: both ways through the director's DIP; DR: one way, only MACs change.
            let (fwd, path) = match r.forwarding {
                Forwarding::Nat => (
                    "Masq ",
                    format!(
                        "⇄ {} ⇄",
                        route.map_or_else(|| "DIP".to_string(), |x| x.source.to_string())
                    ),
                ),
                Forwarding::Dr => ("Route", format!("→ {via} MAC →")),
                Forwarding::Tun => ("Tunnel", format!("→ {via} {} →", tunnel_kind(s, r))),
            };
            let wide = app.size.0 >= 110;
            let (h, hs) = health_cell(app, r);
            let (st, sts) = state_cell(app, 0, s, r);
            let ret = match r.forwarding {
                Forwarding::Nat => "replies back via director",
                Forwarding::Dr | Forwarding::Tun => "replies straight to client",
            };
            let mut spans = vec![
                Span::styled(format!("{trunk}{branch}"), t.dim),
                Span::styled(
                    fwd,
                    if r.forwarding == Forwarding::Nat {
                        t.key
                    } else {
                        t.spark
                    },
                ),
                // "Tunnel" is one character wider than "Masq " and "Route".
                Span::styled(
                    if r.forwarding == Forwarding::Tun {
                        format!(" {path:<16} ")
                    } else {
                        format!(" {path:<17} ")
                    },
                    t.dim,
                ),
                Span::raw(format!("{:<addr_w$}", r.key().to_string())),
                Span::raw(format!("w{:<5}", r.weight)),
                Span::styled(format!("{h:<5}"), hs),
            ];
            if !st.is_empty() {
                spans.push(Span::styled(format!("{st} "), sts));
            }
            if wide {
                spans.push(Span::styled(ret, t.dim));
            }
            if route.is_some_and(|x| x.next_hop_mac.is_none()) {
                spans.push(Span::styled("  next hop not resolved (ARP)", t.bad));
            }
            Line::from(spans)
        }
        TopoLine::Note(n) => Line::from(Span::styled(format!("   {n}"), t.dim)),
        TopoLine::Blank => Line::default(),
    }
}

/// The encapsulation of a tunnelled real server, by the families of the VIP (inner) and
/// the real server (outer): `IPIP`, `IP6IP6`, `4in6`, `6in4`.
fn tunnel_kind(s: &ServiceInfo, r: &RealServerInfo) -> &'static str {
    match (s.vip.is_ipv6(), r.addr.is_ipv6()) {
        (false, false) => "IPIP",
        (true, true) => "IP6IP6",
        (false, true) => "4in6",
        (true, false) => "6in4",
    }
}

fn draw_topology(frame: &mut Frame, app: &App, area: Rect) {
    let model = topology_model(app);
    let offset = app.cursors[0].offset.min(model.len().saturating_sub(1));
    let lines: Vec<Line> = model
        .iter()
        .skip(offset)
        .take(usize::from(area.height))
        .map(|l| topo_line(app, l))
        .collect();
    frame.render_widget(Paragraph::new(lines), area);
}

// ----- Decisions -----

fn info_line(frame: &mut Frame, app: &App, area: Rect, spans: Vec<Span>) -> Rect {
    let [info, rest] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
    let mut v = vec![Span::raw(" ")];
    v.extend(spans);
    frame.render_widget(Line::from(v).style(app.theme.dim), info);
    rest
}

fn draw_decisions(frame: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let rows_all = app.decision_rows();
    let mut spans = vec![Span::raw(format!(
        "{} decisions (newest first)",
        rows_all.len()
    ))];
    if app.paused {
        spans.push(Span::styled(
            format!("  PAUSED ({} held, p resumes)", app.decisions_held.len()),
            t.warn,
        ));
    }
    if !app.filters[2].is_empty() {
        spans.push(Span::raw(format!("  filter `{}`", app.filters[2])));
    }
    let area = info_line(frame, app, area, spans);
    let multi = app.directors.len() > 1;
    let n = narrow(area);
    let cursor = app.cursors[2];
    let to_text = |d: &lvs_proto::DecisionInfo| {
        d.real_server
            .map_or_else(|| "dropped".to_string(), |r| format!("-> {r}"))
    };
    // Address columns: their usual widths (24, 21, 21), wider for IPv6 while the reason
    // keeps 10 columns, else shortened in the middle.
    let visible = || rows_all.iter().skip(cursor.offset).take(app.table_rows());
    let longest = |f: &dyn Fn(&lvs_proto::DecisionInfo) -> String| {
        visible()
            .map(|(_, d)| f(d).chars().count())
            .max()
            .unwrap_or(0)
    };
    let mut cols = Vec::new();
    if !n {
        cols.push((longest(&|d| d.service.to_string()), 24));
    }
    cols.push((longest(&|d| d.client.to_string()), 21));
    cols.push((longest(&to_text), 21));
    let fixed = 8 + if multi { 9 } else { 0 } + 6 + 10 + cols.len();
    let fitted = fit_columns(&cols, usize::from(area.width).saturating_sub(fixed), 14);
    let col_w = |i: usize| fitted.get(i).copied().unwrap_or(21);
    let (svc_w, client_w, to_w) = if n {
        (0, col_w(0), col_w(1))
    } else {
        (col_w(0), col_w(1), col_w(2))
    };
    let len = |w: usize| Constraint::Length(u16::try_from(w).unwrap_or(u16::MAX));
    let mut header = vec!["Time"];
    let mut widths = vec![Constraint::Length(8)];
    if multi {
        header.push("Dir");
        widths.push(Constraint::Length(8));
    }
    if !n {
        header.push("Service");
        widths.push(len(svc_w));
    }
    header.extend(["Client", "-> Real server", "Sched", "Reason"]);
    widths.extend([
        len(client_w),
        len(to_w),
        Constraint::Length(5),
        Constraint::Min(10),
    ]);
    let rows: Vec<Row> = rows_all
        .iter()
        .enumerate()
        .skip(cursor.offset)
        .take(app.table_rows())
        .map(|(i, (dir, d))| {
            let mut cells = vec![Cell::from(utc_time(d.at_unix_ms)[11..19].to_string())];
            if multi {
                cells.push(Cell::from(
                    app.directors
                        .get(*dir)
                        .map_or("", |x| x.name.as_str())
                        .to_string(),
                ));
            }
            if !n {
                cells.push(Cell::from(fit_addr(&d.service.to_string(), svc_w)));
            }
            cells.push(Cell::from(fit_addr(&d.client.to_string(), client_w)));
            cells.push(match d.real_server {
                Some(_) => Cell::from(fit_addr(&to_text(d), to_w)),
                None => Cell::from(Span::styled("dropped", t.bad)),
            });
            cells.push(Cell::from(d.scheduler.name()));
            cells.push(Cell::from(Span::styled(
                d.reason.lines().collect::<Vec<_>>().join(" · "),
                t.dim,
            )));
            let row = Row::new(cells);
            if i == cursor.selected {
                row.style(t.selected)
            } else {
                row
            }
        })
        .collect();
    let empty = rows.is_empty();
    frame.render_widget(
        Table::new(rows, widths)
            .header(Row::new(header).style(t.header))
            .column_spacing(1),
        area,
    );
    if empty {
        let r = Rect {
            y: area.y + 1,
            height: 1,
            ..area
        };
        frame.render_widget(
            Span::styled(
                " no decisions yet: the daemon records them while this view is open",
                t.dim,
            ),
            r,
        );
    }
}

// ----- Connections -----

fn draw_connections(frame: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let c = &app.conns;
    let dname = app
        .directors
        .get(c.director)
        .map_or("-", |d| d.name.as_str());
    let mut spans = vec![Span::raw(format!("director {dname}"))];
    if let Some(p) = &c.page {
        let page_no = c.starts.len().max(1);
        let rows = app.table_rows();
        let first = (page_no - 1) * rows + 1;
        spans.push(Span::raw(format!(
            " · table {} entries · page {page_no} (entries {}-{}){}",
            group(p.table_size),
            first,
            first + p.entries.len().saturating_sub(1),
            if p.next_cursor.is_some() {
                ", more follow"
            } else {
                ", last page"
            }
        )));
    } else {
        spans.push(Span::raw(" · loading…"));
    }
    if !c.filter_text.is_empty() {
        spans.push(Span::raw(format!(" · filter `{}`", c.filter_text)));
    }
    if let Some(e) = &c.error {
        spans.push(Span::styled(format!(" · {e}"), t.bad));
    }
    let area = info_line(frame, app, area, spans);
    let elapsed = app.now_ms.saturating_sub(c.fetched_ms);
    let entries = app.conn_entries();
    // Source and virtual keep their usual 21 columns and widen for IPv6 while the
    // destination fits; on a narrow screen the three give way together (shortened in the
    // middle: the ports stay).
    let visible = || entries.iter().skip(c.cursor.offset).take(app.table_rows());
    let longest = |f: &dyn Fn(&ConnEntry) -> std::net::SocketAddr| {
        visible().map(|e| f(e).to_string().len()).max().unwrap_or(0)
    };
    let fitted = fit_columns(
        &[
            (longest(&|e| e.client), 21),
            (longest(&|e| e.virt), 21),
            (longest(&|e| e.real), 0),
        ],
        usize::from(area.width).saturating_sub(3 + 6 + 11 + 5),
        12,
    );
    let col_w = |i: usize| fitted.get(i).copied().unwrap_or(21);
    let (src_w, virt_w, dest_w) = (col_w(0), col_w(1), col_w(2));
    let widths = [
        Constraint::Length(3),
        Constraint::Length(6),
        Constraint::Length(11),
        Constraint::Length(u16::try_from(src_w).unwrap_or(u16::MAX)),
        Constraint::Length(u16::try_from(virt_w).unwrap_or(u16::MAX)),
        Constraint::Min(15),
    ];
    let header = ["pro", "expire", "state", "source", "virtual", "destination"];
    let rows: Vec<Row> = entries
        .iter()
        .enumerate()
        .skip(c.cursor.offset)
        .take(app.table_rows())
        .map(|(i, e)| {
            let left = e.expires_in_ms.saturating_sub(elapsed) / 1000;
            let state_style = match e.state.as_str() {
                "ESTABLISHED" => t.ok,
                "NONE" => t.dim,
                "SYN_RECV" | "SYN_SENT" => t.warn,
                _ => Style::new(),
            };
            let row = Row::new(vec![
                Cell::from(e.protocol.ipvsadm_name()),
                Cell::from(expire_mmss(left)),
                Cell::from(Span::styled(e.state.clone(), state_style)),
                Cell::from(fit_addr(&e.client.to_string(), src_w)),
                Cell::from(fit_addr(&e.virt.to_string(), virt_w)),
                Cell::from(format!(
                    "{}{}",
                    fit_addr(&e.real.to_string(), dest_w),
                    if e.template && !narrow(area) {
                        " (persistence template)"
                    } else {
                        ""
                    }
                )),
            ]);
            if i == c.cursor.selected {
                row.style(t.selected)
            } else {
                row
            }
        })
        .collect();
    let empty = rows.is_empty() && c.page.is_some();
    frame.render_widget(
        Table::new(rows, widths)
            .header(Row::new(header).style(t.header))
            .column_spacing(1),
        area,
    );
    if empty {
        let r = Rect {
            y: area.y + 1,
            height: 1,
            ..area
        };
        frame.render_widget(Span::styled(" no connection entries match", t.dim), r);
    }
}

/// 1,000,000.
fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

// ----- VRRP -----

fn draw_vrrp(frame: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let split: Vec<u8> = app.split_brain().into_iter().map(|(v, _)| v).collect();
    let mut notes: Vec<Line> = Vec::new();
    for d in &app.directors {
        match &d.vrrp {
            Some(v) if v.is_empty() => notes.push(Line::from(Span::styled(
                format!(" {}: no VRRP instances configured", d.name),
                t.dim,
            ))),
            Some(_) => {}
            None if d.api.is_some_and(|a| a < 3) => notes.push(Line::from(Span::styled(
                format!(
                    " {}: VRRP state not available (lvsd API level {})",
                    d.name,
                    d.api.unwrap_or(0)
                ),
                t.dim,
            ))),
            None => notes.push(Line::from(Span::styled(
                format!(" {}: VRRP state not known yet", d.name),
                t.dim,
            ))),
        }
    }
    let notes_h = u16::try_from(notes.len()).unwrap_or(0).min(area.height / 2);
    let [table_area, notes_area] =
        Layout::vertical([Constraint::Min(0), Constraint::Length(notes_h)]).areas(area);
    let n = narrow(area);
    let header: Vec<&str> = if n {
        vec![
            "Dir",
            "Instance",
            "VRID",
            "State",
            "Prio",
            "Master",
            "Adv tx/rx",
            "Trans",
        ]
    } else {
        vec![
            "Director",
            "Instance",
            "Iface",
            "VRID",
            "v",
            "State",
            "Prio",
            "Master",
            "MPrio",
            "Adverts tx/rx",
            "->MASTER",
            "Trans",
            "Last transition",
            "Rejected",
        ]
    };
    // The master's address: 15 as for IPv4, wider for an IPv6 one (link-local over
    // IPv6) while the last column keeps its minimum.
    let master_nat = app
        .vrrp_rows()
        .iter()
        .filter_map(|(_, i)| i.master)
        .map(|m| m.to_string().len())
        .max()
        .unwrap_or(0);
    let others = if n {
        8 + 9 + 4 + 7 + 5 + 13 + 5 + 7
    } else {
        10 + 10 + 6 + 4 + 1 + 7 + 7 + 5 + 15 + 8 + 5 + 20 + 16 + 13
    };
    let master_w = fit_columns(
        &[(master_nat, 15)],
        usize::from(area.width).saturating_sub(others).max(15),
        15,
    )
    .first()
    .copied()
    .unwrap_or(15);
    let master_c = Constraint::Length(u16::try_from(master_w).unwrap_or(u16::MAX));
    let widths: Vec<Constraint> = if n {
        vec![
            Constraint::Length(8),
            Constraint::Length(9),
            Constraint::Length(4),
            Constraint::Length(7),
            Constraint::Length(5),
            master_c,
            Constraint::Length(13),
            Constraint::Min(5),
        ]
    } else {
        vec![
            Constraint::Length(10),
            Constraint::Length(10),
            Constraint::Length(6),
            Constraint::Length(4),
            Constraint::Length(1),
            Constraint::Length(7),
            Constraint::Length(7),
            master_c,
            Constraint::Length(5),
            Constraint::Length(15),
            Constraint::Length(8),
            Constraint::Length(5),
            Constraint::Min(20),
            Constraint::Length(16),
        ]
    };
    let cursor = app.cursors[4];
    let rows: Vec<Row> = app
        .vrrp_rows()
        .into_iter()
        .enumerate()
        .skip(cursor.offset)
        .take(usize::from(table_area.height.saturating_sub(1)))
        .map(|(idx, (dir, i))| {
            let d = &app.directors[dir];
            let prio = if i.effective_priority == i.priority {
                i.priority.to_string()
            } else {
                format!("{}/{}", i.effective_priority, i.priority)
            };
            let master = i
                .master
                .map_or_else(|| "-".to_string(), |m| fit_addr(&m.to_string(), master_w));
            let adverts = format!("{}/{}", group(i.adverts_sent), group(i.adverts_received));
            let state = Span::styled(i.state.to_string(), vrrp_style(app, i.state));
            let cells: Vec<Cell> = if n {
                vec![
                    Cell::from(d.name.clone()),
                    Cell::from(i.name.clone()),
                    Cell::from(i.vrid.to_string()),
                    Cell::from(state),
                    Cell::from(prio),
                    Cell::from(master),
                    Cell::from(adverts),
                    Cell::from(i.transitions.to_string()),
                ]
            } else {
                let last = match i.last_transition_unix_ms {
                    Some(ms) => format!("{} {}", &utc_time(ms)[11..19], i.last_reason),
                    None => "-".to_string(),
                };
                let rejected = if i.rejected.is_empty() {
                    "-".to_string()
                } else {
                    i.rejected
                        .iter()
                        .map(|(k, v)| format!("{k} {v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                vec![
                    Cell::from(d.name.clone()),
                    Cell::from(i.name.clone()),
                    Cell::from(i.interface.clone()),
                    Cell::from(i.vrid.to_string()),
                    Cell::from(i.version.to_string()),
                    Cell::from(state),
                    Cell::from(prio),
                    Cell::from(master),
                    Cell::from(
                        i.master_priority
                            .map_or_else(|| "-".into(), |p| p.to_string()),
                    ),
                    Cell::from(adverts),
                    Cell::from(i.became_master.to_string()),
                    Cell::from(i.transitions.to_string()),
                    Cell::from(last),
                    Cell::from(Span::styled(
                        rejected,
                        if i.rejected.is_empty() { t.dim } else { t.warn },
                    )),
                ]
            };
            let mut row = Row::new(cells);
            if split.contains(&i.vrid) && i.state == VrrpState::Master {
                row = row.style(t.alarm);
            }
            if idx == cursor.selected {
                row = row.style(t.selected);
            }
            row
        })
        .collect();
    frame.render_widget(
        Table::new(rows, widths)
            .header(Row::new(header).style(t.header))
            .column_spacing(1),
        table_area,
    );
    frame.render_widget(Paragraph::new(notes), notes_area);
}

// ----- Events -----

fn event_kind(app: &App, e: &lvs_proto::EventKind) -> (&'static str, Style) {
    use lvs_proto::EventKind as K;
    let t = &app.theme;
    match e {
        K::Started { .. } => ("start", t.ok),
        K::WeightChanged { .. } => ("weight", t.warn),
        K::Drained { .. } => ("drain", t.warn),
        K::Undrained { .. } => ("undrain", t.ok),
        K::CountersZeroed { .. } => ("zero", Style::new()),
        K::Reloaded { ok: true, .. } => ("reload", t.ok),
        K::Reloaded { ok: false, .. } => ("reload", t.bad),
        K::ConnectionKilled { .. } => ("kill", t.warn),
        K::ConfigSaved { .. } => ("save", Style::new()),
        K::ServiceAdded { .. } | K::RealServerAdded { .. } => ("add", Style::new()),
        K::ServiceRemoved { .. } | K::RealServerRemoved { .. } => ("remove", t.warn),
        K::HealthChanged {
            state: HealthState::Up,
            ..
        } => ("health", t.ok),
        K::HealthChanged { .. } => ("health", t.bad),
        K::QuorumChanged { up: true, .. } => ("quorum", t.ok),
        K::QuorumChanged { .. } => ("quorum", t.bad),
        K::SorryServer { .. } => ("sorry", t.warn),
        K::VrrpTransition { .. } => ("vrrp", t.warn),
        K::Unknown => ("?", t.dim),
    }
}

fn draw_events(frame: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let multi = app.directors.len() > 1;
    let mut header = vec!["Time"];
    let mut widths = vec![Constraint::Length(8)];
    if multi {
        header.push("Dir");
        widths.push(Constraint::Length(8));
    }
    header.extend(["Kind", "What"]);
    widths.extend([Constraint::Length(7), Constraint::Min(10)]);
    let cursor = app.cursors[5];
    let all = app.event_rows();
    let rows: Vec<Row> = all
        .iter()
        .enumerate()
        .skip(cursor.offset)
        .take(app.table_rows())
        .map(|(i, (dir, e))| {
            let line = crate::cli::text::event_line(e);
            // `SEQ TIME what`: the what.
            let what = line
                .trim_end()
                .splitn(3, ' ')
                .nth(2)
                .unwrap_or("")
                .to_string();
            let (kind, style) = event_kind(app, &e.kind);
            let mut cells = vec![Cell::from(utc_time(e.at_unix_ms)[11..19].to_string())];
            if multi {
                cells.push(Cell::from(
                    app.directors
                        .get(*dir)
                        .map_or("", |d| d.name.as_str())
                        .to_string(),
                ));
            }
            cells.push(Cell::from(Span::styled(kind, style)));
            cells.push(Cell::from(what));
            let row = Row::new(cells);
            if i == cursor.selected {
                row.style(t.selected)
            } else {
                row
            }
        })
        .collect();
    frame.render_widget(
        Table::new(rows, widths)
            .header(Row::new(header).style(t.header))
            .column_spacing(1),
        area,
    );
    if all.is_empty() {
        let r = Rect {
            y: area.y + 1,
            height: 1,
            ..area
        };
        frame.render_widget(Span::styled(" no events", t.dim), r);
    }
}

// ----- dialogs and help -----

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width.saturating_sub(2)).max(1);
    let h = height.min(area.height.saturating_sub(2)).max(1);
    Rect {
        x: area.x + (area.width.saturating_sub(w)) / 2,
        y: area.y + (area.height.saturating_sub(h)) / 2,
        width: w,
        height: h,
    }
}

fn kv<'a>(app: &App, k: &'a str, v: String) -> Line<'a> {
    Line::from(vec![
        Span::styled(format!(" {k:<12}"), app.theme.dim),
        Span::raw(v),
    ])
}

fn keys_line<'a>(app: &App, keys: &[(&'a str, &'a str)]) -> Line<'a> {
    let mut spans = vec![Span::raw(" ")];
    for (k, what) in keys {
        spans.push(Span::styled(*k, app.theme.key));
        spans.push(Span::raw(format!(" {what}   ")));
    }
    Line::from(spans)
}

/// The real server (after `verb`, so the line says what happens to which server) and its
/// service.
fn target_lines<'a>(app: &App, verb: &'a str, t: &super::app::Target) -> Vec<Line<'a>> {
    let dname = app
        .directors
        .get(t.director)
        .map_or_else(String::new, |d| d.name.clone());
    let mut lines = vec![
        kv(app, verb, t.real_server.to_string()),
        kv(app, "service", format!("{} on {dname}", t.service)),
    ];
    if app
        .directors
        .get(t.director)
        .is_some_and(|d| d.role == Some(lvs_proto::Role::ReadOnly))
    {
        lines.push(Line::from(Span::styled(
            format!(" you are read-only on {dname}: it will refuse (ask for the admin group)"),
            app.theme.bad,
        )));
    }
    lines
}

fn draw_dialog(frame: &mut Frame, app: &App, dialog: &Dialog, area: Rect) {
    let th = &app.theme;
    let (title, lines, gauge): (&str, Vec<Line>, Option<(f64, String)>) = match dialog {
        Dialog::Weight {
            target,
            old,
            new,
            drained,
        } => {
            let mut l = target_lines(app, "weight of", target);
            l.push(Line::from(vec![
                Span::styled(format!(" {:<12}", "weight"), th.dim),
                Span::raw(format!("{old} → ")),
                Span::styled(new.to_string(), th.key),
            ]));
            if *new == 0 {
                l.push(Line::from(Span::styled(
                    " weight 0 quiesces: no new connections, existing ones continue",
                    th.warn,
                )));
            }
            if *drained {
                l.push(Line::from(Span::styled(
                    " it is drained: setting a weight ends the drain",
                    th.warn,
                )));
            }
            l.push(Line::default());
            l.push(keys_line(
                app,
                &[("y/Enter", "apply"), ("+/-", "adjust"), ("n/Esc", "cancel")],
            ));
            ("Change weight", l, None)
        }
        Dialog::WeightInput {
            target,
            old,
            input,
            error,
        } => {
            let mut l = target_lines(app, "weight of", target);
            let typed = if input.is_empty() {
                "_".to_string()
            } else {
                input.clone()
            };
            l.push(Line::from(vec![
                Span::styled(format!(" {:<12}", "weight"), th.dim),
                Span::raw(format!("{old} → ")),
                Span::styled(format!("{typed}█"), th.key),
            ]));
            match error {
                Some(e) => l.push(Line::from(Span::styled(format!(" {e}"), th.bad))),
                None => l.push(Line::from(Span::styled(
                    format!(" valid weights: 0..={}; 0 quiesces", lvs_proto::MAX_WEIGHT),
                    th.dim,
                ))),
            }
            l.push(Line::default());
            l.push(keys_line(app, &[("Enter", "apply"), ("Esc", "cancel")]));
            ("Set weight", l, None)
        }
        Dialog::Drain {
            target,
            weight,
            active,
            inactive,
            persistent,
        } => {
            let mut l = target_lines(app, "drain", target);
            l.push(kv(
                app,
                "weight",
                format!("{weight} → 0 ({weight} remembered; undrain restores it)"),
            ));
            l.push(kv(
                app,
                "connections",
                format!("{active} active + {inactive} inactive continue until they end"),
            ));
            if *persistent > 0 {
                l.push(kv(
                    app,
                    "templates",
                    format!("{persistent} persistence templates still send their clients here"),
                ));
            }
            l.push(Line::from(Span::styled(
                " no new connections will be scheduled to it",
                th.dim,
            )));
            l.push(Line::default());
            l.push(keys_line(app, &[("y/Enter", "drain"), ("n/Esc", "cancel")]));
            ("Drain real server", l, None)
        }
        Dialog::Undrain { target, weight } => {
            let mut l = target_lines(app, "undrain", target);
            l.push(kv(
                app,
                "weight",
                format!("0 → {weight} (the weight it had)"),
            ));
            l.push(Line::default());
            l.push(keys_line(
                app,
                &[("y/Enter", "undrain"), ("n/Esc", "cancel")],
            ));
            ("Undrain real server", l, None)
        }
        Dialog::Remove(target) => {
            let mut l = target_lines(app, "remove", target);
            l.push(Line::from(Span::styled(
                " remove it from the service (running configuration only; a reload brings it back)",
                th.warn,
            )));
            l.push(Line::default());
            l.push(keys_line(app, &[("y/Enter", "remove"), ("n/Esc", "keep")]));
            ("Remove real server", l, None)
        }
        Dialog::Kill { director, entry } => {
            let dname = app
                .directors
                .get(*director)
                .map_or_else(String::new, |d| d.name.clone());
            let what = if entry.template {
                "persistence template"
            } else {
                "connection"
            };
            let mut l = vec![
                kv(app, "kill", format!("{what} on {dname}")),
                kv(
                    app,
                    "entry",
                    format!(
                        "{} {} -> {}",
                        entry.protocol.ipvsadm_name(),
                        entry.client,
                        entry.virt
                    ),
                ),
                kv(app, "to", format!("{} ({})", entry.real, entry.state)),
            ];
            l.push(Line::from(Span::styled(
                if entry.template {
                    " its connections continue; the client's next connection is scheduled anew"
                } else {
                    " the client's next packet is scheduled anew (TCP without SYN is dropped)"
                },
                th.dim,
            )));
            l.push(Line::default());
            l.push(keys_line(app, &[("y/Enter", "kill"), ("n/Esc", "cancel")]));
            ("Kill", l, None)
        }
        Dialog::DrainProgress(target) => {
            let mut l = target_lines(app, "draining", target);
            let track = app.drain_track(target);
            let (ratio, label) = match track {
                Some(tr) if tr.done() => (1.0, "drained: 0 connections left".to_string()),
                Some(tr) => {
                    let i = tr.info;
                    (
                        tr.ratio(),
                        match i {
                            Some(i) => format!(
                                "{} connections left ({} active, {} inactive) of {}",
                                i.connections_left, i.active, i.inactive, tr.start_left
                            ),
                            None => format!("{} connections left", tr.left()),
                        },
                    )
                }
                None => (0.0, "waiting for the first report…".to_string()),
            };
            if let Some(i) = track.and_then(|t| t.info) {
                l.push(kv(
                    app,
                    "weight",
                    format!("0 (was {}; u undrains)", i.weight_before),
                ));
                if i.persistent > 0 {
                    l.push(kv(
                        app,
                        "templates",
                        format!("{} still point here", i.persistent),
                    ));
                }
            }
            l.push(Line::default());
            l.push(Line::default());
            let done = track.is_some_and(super::app::DrainTrack::done);
            l.push(if done {
                keys_line(
                    app,
                    &[
                        ("r", "remove it now"),
                        ("u", "undrain"),
                        ("Esc", "keep it drained"),
                    ],
                )
            } else {
                keys_line(
                    app,
                    &[("u", "undrain"), ("Esc", "close (the drain goes on)")],
                )
            });
            ("Drain progress", l, Some((ratio, label)))
        }
    };
    let width = 74u16;
    let height = u16::try_from(lines.len()).unwrap_or(10) + 2;
    let r = centered(area, width, height);
    frame.render_widget(Clear, r);
    let block = Block::bordered()
        .title(format!(" {title} "))
        .style(th.dialog);
    let inner = block.inner(r);
    frame.render_widget(block, r);
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
    // The gauge goes on the blank line kept for it above the keys.
    if let Some((ratio, label)) = gauge {
        let gy = inner.y + inner.height.saturating_sub(3);
        frame.render_widget(
            Gauge::default()
                .ratio(ratio.clamp(0.0, 1.0))
                .label(label)
                .gauge_style(th.gauge),
            Rect {
                x: inner.x + 1,
                y: gy,
                width: inner.width.saturating_sub(2),
                height: 1,
            },
        );
    }
}

fn draw_help(frame: &mut Frame, app: &App, scroll: u16, area: Rect) {
    let th = &app.theme;
    let mut lines: Vec<Line> = Vec::new();
    // Where to change all this, first: the file is hard to find otherwise.
    lines.push(Line::from(Span::styled("Settings", th.header)));
    let path = app.settings_path.as_ref().map_or_else(
        || "(no config directory)".to_string(),
        |p| p.display().to_string(),
    );
    lines.push(Line::from(vec![
        Span::styled("  file            ", th.key),
        Span::raw(path),
    ]));
    lines.push(Line::from(Span::styled(
        "  theme, interval, mouse, readonly, log_file, [keys] action = \"key\", [[director]]",
        th.dim,
    )));
    lines.push(Line::default());
    // keys (18) + description + settings name (17) inside the frame.
    let desc_w = usize::from(area.width.saturating_sub(4 + 18 + 17)).min(52);
    for (scope, entries) in app.keymap.help() {
        lines.push(Line::from(Span::styled(scope.title(), th.header)));
        for (keys, desc, name) in entries {
            let desc: String = desc.chars().take(desc_w).collect();
            lines.push(Line::from(vec![
                Span::styled(format!("  {keys:<16}"), th.key),
                Span::raw(format!("{desc:<desc_w$} ")),
                Span::styled(name, th.dim),
            ]));
        }
        lines.push(Line::default());
    }
    lines.push(Line::from(Span::styled("Modes", th.header)));
    for (k, d) in [
        (
            "dialogs",
            "y/Enter confirm · n/Esc cancel · +/- adjust a weight",
        ),
        (
            "filter /",
            "type to narrow · Enter keeps it · Esc clears · `!` inverts",
        ),
        (
            "conn filter",
            "198.51.100.0/24 · ESTABLISHED · 203.0.113.10:80 (combine)",
        ),
        (
            "commands :",
            ":weight N  :drain  :undrain  :kill  :view NAME  :vs VIP:PORT",
        ),
        ("", ":dir NAME  :interval SECS  :sort  :help  :q"),
        ("Ctrl-C", "always quits"),
    ] {
        lines.push(Line::from(vec![
            Span::styled(format!("  {k:<16}"), th.key),
            Span::raw(d),
        ]));
    }
    lines.push(Line::default());
    let r = Rect {
        x: area.x + 1,
        y: area.y + 1,
        width: area.width.saturating_sub(2),
        height: area.height.saturating_sub(2),
    };
    frame.render_widget(Clear, r);
    let block = Block::bordered()
        .title(" Help · j/k scroll · any other key closes ")
        .style(th.dialog);
    frame.render_widget(Paragraph::new(lines).block(block).scroll((scroll, 0)), r);
}

#[cfg(test)]
mod tests {
    use super::{fit_addr, fit_columns};

    #[test]
    fn addresses_shorten_in_the_middle_keeping_the_port() {
        assert_eq!(fit_addr("192.0.2.11:80", 21), "192.0.2.11:80");
        assert_eq!(
            fit_addr("[2001:db8:c::10]:40000", 22),
            "[2001:db8:c::10]:40000"
        );
        assert_eq!(
            fit_addr("[2001:db8:c::10]:40000", 19),
            "[2001:…c::10]:40000"
        );
        assert_eq!(
            fit_addr("  -> [2001:db8:b::11]:80", 20),
            "  -> [2001…b::11]:80"
        );
        assert_eq!(fit_addr("TCP  203.0.113.10:80", 16), "TCP  203…3.10:80");
        assert_eq!(fit_addr("2001:db8:b:ffff::11", 12), "2001:…ff::11");
        assert_eq!(fit_addr("fe80::200:ff:fe00:102", 15), "fe80::2…e00:102");
        // Too narrow for both ends: cut with an ellipsis (never a silent wrong port).
        assert_eq!(fit_addr("[2001:db8:c::10]:40000", 10), "[2001:db8…");
        assert_eq!(fit_addr("[2001:db8:c::10]:40000", 0), "");
        for w in 0..30 {
            let s = fit_addr("[2001:db8:c::10]:40000", w);
            assert!(s.chars().count() <= w, "{w}: {s}");
        }
    }

    #[test]
    fn columns_keep_their_floor_when_there_is_room_and_shrink_together() {
        // IPv4: natural widths under the floors, room enough: the floors.
        assert_eq!(
            fit_columns(&[(17, 21), (15, 21), (13, 0)], 55, 12),
            [21, 21, 13]
        );
        // IPv6 with room: the natural widths.
        assert_eq!(
            fit_columns(&[(22, 21), (19, 21), (19, 0)], 100, 12),
            [22, 21, 19]
        );
        // Too little room: padding goes first, then the widest shrink.
        assert_eq!(
            fit_columns(&[(22, 21), (19, 21), (19, 0)], 60, 12),
            [22, 19, 19]
        );
        assert_eq!(
            fit_columns(&[(22, 21), (19, 21), (19, 0)], 55, 12),
            [18, 18, 19]
        );
        // Never below the minimum, even when that does not fit.
        assert_eq!(fit_columns(&[(40, 21), (40, 21)], 10, 12), [12, 12]);
        assert_eq!(fit_columns(&[], 10, 12), Vec::<usize>::new());
    }
}
