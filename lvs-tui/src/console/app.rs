//! The console's state machine: what is on screen and what the operator asked for, with
//! no I/O and no clock.
//!
//! Contract (quinn-proto's shape):
//! - Inputs: [`App::handle_key`] (a key and the wall-clock time, Unix milliseconds) and
//!   [`App::apply`] (a [`PollResult`] from the I/O side); outputs: the [`Effect`]s that
//!   `handle_key` returns (RPCs to run, pages to fetch, quit). [`App::plan`] says what the
//!   next poll of a director should ask for. Nothing here blocks, sleeps or reads a clock,
//!   so every behaviour is tested by feeding keys and results.
//! - Every action that changes a director goes through a dialog that shows what will
//!   change (old -> new) and is applied only on `y`/Enter; with `readonly` no action
//!   effect is ever produced.
//! - Data from a director is kept as the last complete answer; a failed poll never
//!   clears it (the screen says how old it is instead).
//! - The connection table is never held whole: only the current page and the cursors
//!   that lead back to the pages before it (the API's paging model).
//! - Memory is bounded: rings for decisions, events and rate history.
//! - Row indices ([`SvcRow`]) point into the current data and are rebuilt on every change,
//!   so they are never stale when drawn.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::path::PathBuf;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseEvent, MouseEventKind};
use lvs_proto::{
    ApiError, ConnCursor, ConnEntry, ConnKey, ConnPage, ConnQuery, DecisionInfo, DrainInfo, Event,
    HealthState, IpPrefix, MAX_CONN_PAGE, MAX_WEIGHT, RealServerInfo, RealServerKey, Role,
    ServiceInfo, ServiceKey, TemplateKey, Topology, VrrpInstanceInfo, VrrpState, WeightChange,
};

use super::keymap::{Action, Keymap};
use super::theme::Theme;

/// Rate samples kept per real server and service (5 minutes at the default 2 s).
pub const HISTORY: usize = 150;
/// Decisions kept for the Decisions view.
pub const DECISION_RING: usize = 2000;
/// Events kept for the Events view (the daemon keeps 1024 per director).
pub const EVENT_RING: usize = 4096;
/// How long an information message stays in the status line.
const INFO_TTL_MS: u64 = 8_000;

/// The views, in tab order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum View {
    /// VIP -> DIP -> RIPs.
    Topology,
    /// ipvsadm -Ln with health and rates.
    Services,
    /// The scheduler's decisions.
    Decisions,
    /// ipvsadm -Lnc, paged.
    Connections,
    /// VRRP instances of every director.
    Vrrp,
    /// The daemons' events.
    Events,
}

impl View {
    /// Every view in tab order.
    pub const ALL: [View; 6] = [
        View::Topology,
        View::Services,
        View::Decisions,
        View::Connections,
        View::Vrrp,
        View::Events,
    ];

    /// Its tab title.
    pub fn title(self) -> &'static str {
        match self {
            View::Topology => "Topology",
            View::Services => "Services",
            View::Decisions => "Decisions",
            View::Connections => "Connections",
            View::Vrrp => "VRRP",
            View::Events => "Events",
        }
    }

    /// A short title for narrow terminals.
    pub fn short(self) -> &'static str {
        match self {
            View::Topology => "Topo",
            View::Services => "Svc",
            View::Decisions => "Dec",
            View::Connections => "Conn",
            View::Vrrp => "VRRP",
            View::Events => "Ev",
        }
    }

    fn index(self) -> usize {
        View::ALL.iter().position(|v| *v == self).unwrap_or(0)
    }

    fn parse(word: &str) -> Option<View> {
        Some(match word.to_ascii_lowercase().as_str() {
            "1" | "topo" | "topology" => View::Topology,
            "2" | "svc" | "services" | "service" => View::Services,
            "3" | "dec" | "decisions" | "decision" => View::Decisions,
            "4" | "conn" | "conns" | "connections" => View::Connections,
            "5" | "vrrp" => View::Vrrp,
            "6" | "ev" | "events" | "log" => View::Events,
            _ => return None,
        })
    }
}

/// A director's link as the I/O side last saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Not connected yet.
    Connecting,
    /// Answering.
    Up,
    /// Gone: why, since when, and when the next attempt is.
    Down {
        /// The error, in a sentence.
        message: String,
        /// When it went away (Unix ms).
        since_ms: u64,
        /// When the next attempt starts (Unix ms).
        retry_at_ms: u64,
    },
}

/// One director and its last answers.
#[derive(Debug, Clone)]
pub struct Director {
    /// Its short name (director column, tabs).
    pub name: String,
    /// Where it is reached (socket path or URL), for messages.
    pub address: String,
    /// Link state.
    pub link: Link,
    /// The caller's role there, once known.
    pub role: Option<Role>,
    /// Its API level, once known.
    pub api: Option<u32>,
    /// Its version, once known.
    pub daemon: Option<String>,
    /// Services, last answer.
    pub services: Vec<ServiceInfo>,
    /// Topology, last answer (API level 2).
    pub topology: Option<Topology>,
    /// VRRP instances, last answer (API level 3); `None` = not known.
    pub vrrp: Option<Vec<VrrpInstanceInfo>>,
    /// Errors of the last poll's parts that failed (topology, vrrp, ...).
    pub poll_errors: Vec<String>,
    /// When the last complete services answer arrived (Unix ms).
    pub updated_ms: Option<u64>,
    /// Events seen up to this sequence number.
    pub events_since: u64,
    /// Decisions seen per service up to this sequence number.
    pub decisions_since: BTreeMap<ServiceKey, u64>,
}

impl Director {
    /// A director not connected yet.
    pub fn new(name: impl Into<String>, address: impl Into<String>) -> Director {
        Director {
            name: name.into(),
            address: address.into(),
            link: Link::Connecting,
            role: None,
            api: None,
            daemon: None,
            services: Vec::new(),
            topology: None,
            vrrp: None,
            poll_errors: Vec::new(),
            updated_ms: None,
            events_since: 0,
            decisions_since: BTreeMap::new(),
        }
    }
}

/// An RPC that changes a director.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `set_weight`.
    SetWeight {
        /// Service.
        service: ServiceKey,
        /// Real server.
        real_server: RealServerKey,
        /// New weight.
        weight: u32,
    },
    /// `drain`.
    Drain {
        /// Service.
        service: ServiceKey,
        /// Real server.
        real_server: RealServerKey,
    },
    /// `undrain`.
    Undrain {
        /// Service.
        service: ServiceKey,
        /// Real server.
        real_server: RealServerKey,
    },
    /// `remove_real_server`.
    RemoveRealServer {
        /// Service.
        service: ServiceKey,
        /// Real server.
        real_server: RealServerKey,
    },
    /// `kill_connection`.
    KillConnection(ConnKey),
    /// `kill_template`.
    KillTemplate(TemplateKey),
}

/// What the I/O side must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Run a changing RPC on a director; the answer comes back as [`PollResult::Done`].
    Call {
        /// The director's index.
        director: usize,
        /// The RPC.
        call: Call,
    },
    /// Fetch a page of the connection table now ([`PollResult::Page`]).
    FetchConnections {
        /// The director's index.
        director: usize,
        /// The query, cursor included.
        query: ConnQuery,
    },
    /// Poll every director now instead of at the next tick.
    PollNow,
    /// Leave.
    Quit,
}

/// What one poll of a director should ask for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollPlan {
    /// `events_since(since)`.
    pub events_since: u64,
    /// `decisions_since` per service (only while the Decisions view is shown).
    pub decisions: Vec<(ServiceKey, u64)>,
    /// The current connection page (only while the Connections view shows this director).
    pub connections: Option<ConnQuery>,
    /// `drain_status` of the drains being watched.
    pub drains: Vec<(ServiceKey, RealServerKey)>,
}

/// One poll's answers (each part may fail on its own).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// `services()`.
    pub services: Option<Result<Vec<ServiceInfo>, String>>,
    /// `topology()` (None: not asked, older daemon).
    pub topology: Option<Result<Topology, String>>,
    /// `vrrp()` (None: not asked, older daemon).
    pub vrrp: Option<Result<Vec<VrrpInstanceInfo>, String>>,
    /// `events_since()`.
    pub events: Option<Result<Vec<Event>, String>>,
    /// `decisions_since()` per service.
    pub decisions: Vec<(ServiceKey, Result<Vec<DecisionInfo>, String>)>,
    /// The connection page asked for, with the query it answers.
    pub connections: Option<(ConnQuery, Result<ConnPage, String>)>,
    /// `drain_status()` per watched drain.
    pub drains: Vec<(ServiceKey, RealServerKey, Result<DrainInfo, ApiError>)>,
}

/// What a changing RPC answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `set_weight`, `undrain`.
    Weight(WeightChange),
    /// `drain`.
    Drain(DrainInfo),
    /// `remove_real_server`.
    Removed,
    /// `kill_connection`, `kill_template`.
    Killed(ConnEntry),
}

/// What the I/O side reports.
#[derive(Debug, Clone)]
pub enum PollResult {
    /// Connected (again).
    Connected {
        /// Director index.
        director: usize,
        /// Its version.
        daemon: String,
        /// Its API level.
        api: u32,
        /// Our role there, when `whoami` answered.
        role: Option<Role>,
    },
    /// Not reachable (or lost); the I/O side retries.
    Unreachable {
        /// Director index.
        director: usize,
        /// Why.
        message: String,
        /// In how long the next attempt starts.
        retry_in_ms: u64,
    },
    /// One poll's answers.
    Snapshot {
        /// Director index.
        director: usize,
        /// The answers.
        snapshot: Box<Snapshot>,
    },
    /// A page asked for with [`Effect::FetchConnections`].
    Page {
        /// Director index.
        director: usize,
        /// The query it answers.
        query: ConnQuery,
        /// The page or the error.
        page: Result<ConnPage, String>,
    },
    /// A changing RPC's answer.
    Done {
        /// Director index.
        director: usize,
        /// The RPC.
        call: Call,
        /// Its answer or the error, in a sentence.
        outcome: Result<Outcome, String>,
    },
}

/// The input modes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Keys run actions.
    Normal,
    /// Typing a filter for the current view.
    Filter(String),
    /// Typing a command after `:`.
    Command(String),
    /// A dialog has the keys.
    Dialog(Dialog),
    /// The help screen (scrolled by this many lines).
    Help(u16),
}

/// A real server on a director, for dialogs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// Director index.
    pub director: usize,
    /// Service.
    pub service: ServiceKey,
    /// Real server.
    pub real_server: RealServerKey,
}

/// The modal dialogs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dialog {
    /// Confirm a weight change (`+`/`-` adjust it further).
    Weight {
        /// The real server.
        target: Target,
        /// Its weight now.
        old: u32,
        /// The weight to set.
        new: u32,
        /// Whether it is drained now (setting a weight ends the drain).
        drained: bool,
    },
    /// Type a weight.
    WeightInput {
        /// The real server.
        target: Target,
        /// Its weight now.
        old: u32,
        /// What was typed.
        input: String,
        /// Why the typed value is refused, if it was.
        error: Option<String>,
    },
    /// Confirm a drain.
    Drain {
        /// The real server.
        target: Target,
        /// Its weight now.
        weight: u32,
        /// Its connections now.
        active: u32,
        /// Inactive connections.
        inactive: u32,
        /// Persistence templates.
        persistent: u32,
    },
    /// Confirm an undrain.
    Undrain {
        /// The real server.
        target: Target,
        /// The weight it gets back.
        weight: u32,
    },
    /// A drain's progress.
    DrainProgress(Target),
    /// Confirm removing a (drained) real server.
    Remove(Target),
    /// Confirm killing a connection entry or template.
    Kill {
        /// Director index.
        director: usize,
        /// The entry as listed.
        entry: ConnEntry,
    },
}

/// A drain being watched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainTrack {
    /// The real server.
    pub target: Target,
    /// Connections left when the watch started (the progress bar's 0 %).
    pub start_left: u64,
    /// The last progress report.
    pub info: Option<DrainInfo>,
}

impl DrainTrack {
    /// Connections left now.
    pub fn left(&self) -> u64 {
        self.info.map_or(self.start_left, |i| i.connections_left)
    }

    /// Done: no connection left.
    pub fn done(&self) -> bool {
        self.info.is_some_and(|i| i.connections_left == 0)
    }

    /// Progress 0.0..=1.0.
    pub fn ratio(&self) -> f64 {
        if self.done() || self.start_left == 0 {
            return if self.done() { 1.0 } else { 0.0 };
        }
        let left = self.left().min(self.start_left);
        1.0 - left as f64 / self.start_left as f64
    }
}

/// How serious a status message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Information.
    Info,
    /// Success.
    Ok,
    /// Failure.
    Error,
}

/// The status line's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The text.
    pub text: String,
    /// Its level.
    pub level: Level,
    /// When it was set.
    pub at_ms: u64,
}

/// A row of the Services view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SvcRow {
    /// A virtual service.
    Service {
        /// Director index.
        dir: usize,
        /// Service index.
        svc: usize,
    },
    /// A real server.
    Real {
        /// Director index.
        dir: usize,
        /// Service index.
        svc: usize,
        /// Real server index.
        rs: usize,
    },
}

/// The Services view's columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Columns {
    /// ipvsadm -Ln: Forward Weight ActiveConn InActConn (and health, CPS).
    Conns,
    /// ipvsadm --rate.
    Rates,
    /// ipvsadm --stats.
    Stats,
}

/// Sort orders of real servers within their service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SvcSort {
    /// The daemon's (scheduling) order.
    Daemon,
    /// Address.
    Address,
    /// Weight.
    Weight,
    /// Active connections.
    Active,
    /// Inactive connections.
    Inactive,
    /// Connections per second.
    Cps,
    /// Health (down first).
    Health,
}

impl SvcSort {
    const CYCLE: [SvcSort; 7] = [
        SvcSort::Daemon,
        SvcSort::Address,
        SvcSort::Weight,
        SvcSort::Active,
        SvcSort::Inactive,
        SvcSort::Cps,
        SvcSort::Health,
    ];

    /// Its name in the status line.
    pub fn name(self) -> &'static str {
        match self {
            SvcSort::Daemon => "scheduling order",
            SvcSort::Address => "address",
            SvcSort::Weight => "weight",
            SvcSort::Active => "active connections",
            SvcSort::Inactive => "inactive connections",
            SvcSort::Cps => "connections per second",
            SvcSort::Health => "health",
        }
    }
}

/// Sort orders of the connection page (within the page: the table's order is the API's).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ConnSort {
    /// The API's order.
    #[default]
    Listing,
    /// Expiry.
    Expire,
    /// State.
    State,
    /// Client.
    Source,
    /// Real server.
    Destination,
}

impl ConnSort {
    const CYCLE: [ConnSort; 5] = [
        ConnSort::Listing,
        ConnSort::Expire,
        ConnSort::State,
        ConnSort::Source,
        ConnSort::Destination,
    ];

    /// Its name in the status line.
    pub fn name(self) -> &'static str {
        match self {
            ConnSort::Listing => "listing order",
            ConnSort::Expire => "expiry",
            ConnSort::State => "state",
            ConnSort::Source => "source",
            ConnSort::Destination => "destination",
        }
    }
}

/// A selection in a list and the first row shown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    /// The selected row.
    pub selected: usize,
    /// The first row on screen.
    pub offset: usize,
}

impl Cursor {
    fn step(&mut self, delta: isize, len: usize, page: usize) {
        let max = len.saturating_sub(1);
        self.selected = self.selected.saturating_add_signed(delta).min(max);
        self.keep_visible(len, page);
    }

    fn jump(&mut self, to: usize, len: usize, page: usize) {
        self.selected = to.min(len.saturating_sub(1));
        self.keep_visible(len, page);
    }

    fn keep_visible(&mut self, len: usize, page: usize) {
        let page = page.max(1);
        self.selected = self.selected.min(len.saturating_sub(1));
        if self.selected < self.offset {
            self.offset = self.selected;
        } else if self.selected >= self.offset + page {
            self.offset = self.selected + 1 - page;
        }
        self.offset = self.offset.min(len.saturating_sub(page));
    }
}

/// The Connections view's state.
#[derive(Debug, Clone, Default)]
pub struct ConnState {
    /// Which director it shows.
    pub director: usize,
    /// The filter as typed.
    pub filter_text: String,
    /// The filter as a query (no cursor, no limit).
    pub filter: ConnQuery,
    /// Where each page up to the current one starts (`None`: the beginning).
    pub starts: Vec<Option<ConnCursor>>,
    /// The current page.
    pub page: Option<ConnPage>,
    /// When it arrived (Unix ms), for the expiry countdown.
    pub fetched_ms: u64,
    /// The last error.
    pub error: Option<String>,
    /// The selection within the page.
    pub cursor: Cursor,
    /// Sort within the page, and whether reversed.
    pub sort: (ConnSort, bool),
}

/// The console.
#[derive(Debug)]
pub struct App {
    /// The directors, in command-line order.
    pub directors: Vec<Director>,
    /// The current view.
    pub view: View,
    /// The input mode.
    pub mode: Mode,
    /// Actions disabled.
    pub readonly: bool,
    /// The terminal's size (columns, rows).
    pub size: (u16, u16),
    /// Colours.
    pub theme: Theme,
    /// Key bindings.
    pub keymap: Keymap,
    /// The settings file (shown in the help).
    pub settings_path: Option<PathBuf>,
    /// The poll interval.
    pub interval_ms: u64,
    /// The status line's message.
    pub status: Option<Status>,
    /// Filters per view (the Connections filter is [`ConnState::filter_text`]).
    pub filters: [String; 6],
    /// Cursors per view (the Services detail has its own).
    pub cursors: [Cursor; 6],
    /// Services rows after filter and sort.
    pub svc_rows: Vec<SvcRow>,
    /// The selected Services row's identity, to keep it selected across refreshes.
    svc_selected_key: Option<(usize, ServiceKey, Option<RealServerKey>)>,
    /// Services columns.
    pub columns: Columns,
    /// Exact numbers.
    pub exact: bool,
    /// Real server order, and whether reversed.
    pub svc_sort: (SvcSort, bool),
    /// The drilled-into service.
    pub detail: Option<(usize, ServiceKey)>,
    /// The selection in the detail.
    pub detail_cursor: Cursor,
    /// Decisions, newest last, with their director.
    pub decisions: VecDeque<(usize, DecisionInfo)>,
    /// Decisions that arrived while paused.
    pub decisions_held: VecDeque<(usize, DecisionInfo)>,
    /// The decision stream is paused.
    pub paused: bool,
    /// Events, in arrival order, with their director.
    pub events: VecDeque<(usize, Event)>,
    /// The Connections view.
    pub conns: ConnState,
    /// CPS history per real server.
    pub history: HashMap<(usize, ServiceKey, RealServerKey), VecDeque<u64>>,
    /// CPS history per service.
    pub svc_history: HashMap<(usize, ServiceKey), VecDeque<u64>>,
    /// Drains being watched.
    pub drains: Vec<DrainTrack>,
    /// Set once the operator asked to leave.
    pub quit: bool,
    /// The wall-clock time of the last input (Unix ms): what "now" is for drawing
    /// (countdowns, ages).
    pub now_ms: u64,
}

impl App {
    /// A console for these directors.
    pub fn new(directors: Vec<Director>, theme: Theme, keymap: Keymap) -> App {
        App {
            directors,
            view: View::Services,
            mode: Mode::Normal,
            readonly: false,
            size: (80, 24),
            theme,
            keymap,
            settings_path: None,
            interval_ms: 2000,
            status: None,
            filters: Default::default(),
            cursors: [Cursor::default(); 6],
            svc_rows: Vec::new(),
            svc_selected_key: None,
            columns: Columns::Conns,
            exact: false,
            svc_sort: (SvcSort::Daemon, false),
            detail: None,
            detail_cursor: Cursor::default(),
            decisions: VecDeque::new(),
            decisions_held: VecDeque::new(),
            paused: false,
            events: VecDeque::new(),
            conns: ConnState::default(),
            history: HashMap::new(),
            svc_history: HashMap::new(),
            drains: Vec::new(),
            quit: false,
            now_ms: 0,
        }
    }

    // ----- geometry shared with the renderer -----

    /// Lines above the view body: title, directors, banners.
    pub fn chrome_top(&self) -> u16 {
        2 + self.banner_count()
    }

    /// How many alarm banners are shown (unreachable directors, split brain), at most 3.
    pub fn banner_count(&self) -> u16 {
        let down = self
            .directors
            .iter()
            .filter(|d| matches!(d.link, Link::Down { .. }))
            .count();
        let split = self.split_brain().len();
        u16::try_from((down + split).min(3)).unwrap_or(3)
    }

    /// Lines of the view body.
    pub fn body_height(&self) -> u16 {
        self.size.1.saturating_sub(self.chrome_top() + 1)
    }

    /// Lines of the detail's header block (service facts).
    pub const DETAIL_HEADER: u16 = 4;
    /// Lines of the detail's sparkline block.
    pub const DETAIL_SPARK: u16 = 4;

    /// Rows a table of the current view shows (body minus its column header).
    pub fn table_rows(&self) -> usize {
        let mut body = self.body_height().saturating_sub(1);
        if matches!(self.view, View::Connections | View::Decisions) {
            // Their info line (page, filter, paused).
            body = body.saturating_sub(1);
        }
        let body = if self.view == View::Services && self.detail.is_some() {
            body.saturating_sub(Self::DETAIL_HEADER + Self::DETAIL_SPARK)
        } else {
            body
        };
        usize::from(body.max(1))
    }

    /// Advances the clock used for drawing (countdowns, ages, message expiry).
    pub fn tick(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
    }

    /// Sets the terminal size (the connection page size follows it).
    pub fn resize(&mut self, cols: u16, rows: u16) {
        self.size = (cols, rows);
    }

    // ----- derived facts -----

    /// VRIDs claimed as MASTER by more than one director: (vrid, instance names with their
    /// director names).
    pub fn split_brain(&self) -> Vec<(u8, Vec<String>)> {
        let mut masters: BTreeMap<u8, Vec<String>> = BTreeMap::new();
        for d in &self.directors {
            if let Some(instances) = &d.vrrp {
                for i in instances {
                    if i.state == VrrpState::Master {
                        masters
                            .entry(i.vrid)
                            .or_default()
                            .push(format!("{} ({})", d.name, i.name));
                    }
                }
            }
        }
        masters.into_iter().filter(|(_, v)| v.len() > 1).collect()
    }

    /// The status message, unless an information message has expired.
    pub fn status_at(&self, now_ms: u64) -> Option<&Status> {
        self.status
            .as_ref()
            .filter(|s| s.level == Level::Error || now_ms.saturating_sub(s.at_ms) < INFO_TTL_MS)
    }

    /// The real server a Services row (or the detail's selection) points at.
    pub fn selected_real_server(&self) -> Option<(Target, &RealServerInfo)> {
        if let Some((dir, key)) = self.detail {
            let svc = self
                .directors
                .get(dir)?
                .services
                .iter()
                .find(|s| s.key() == key)?;
            let rs = svc.real_servers.get(self.detail_cursor.selected)?;
            return Some((
                Target {
                    director: dir,
                    service: key,
                    real_server: rs.key(),
                },
                rs,
            ));
        }
        match self
            .svc_rows
            .get(self.cursors[View::Services.index()].selected)?
        {
            SvcRow::Real { dir, svc, rs } => {
                let s = self.directors.get(*dir)?.services.get(*svc)?;
                let r = s.real_servers.get(*rs)?;
                Some((
                    Target {
                        director: *dir,
                        service: s.key(),
                        real_server: r.key(),
                    },
                    r,
                ))
            }
            SvcRow::Service { .. } => None,
        }
    }

    /// The real server a target names, as last polled.
    pub fn real_server(&self, t: &Target) -> Option<&RealServerInfo> {
        self.directors
            .get(t.director)?
            .services
            .iter()
            .find(|s| s.key() == t.service)?
            .real_servers
            .iter()
            .find(|r| r.key() == t.real_server)
    }

    /// The watched drain of a target.
    pub fn drain_track(&self, t: &Target) -> Option<&DrainTrack> {
        self.drains.iter().find(|d| d.target == *t)
    }

    /// The current connection page's query (cursor and page size included).
    pub fn conn_query(&self) -> ConnQuery {
        let limit = u32::try_from(self.table_rows())
            .unwrap_or(MAX_CONN_PAGE)
            .clamp(1, MAX_CONN_PAGE);
        ConnQuery {
            cursor: self.conns.starts.last().copied().flatten(),
            limit,
            ..self.conns.filter.clone()
        }
    }

    /// The connection entries in display order (sorted within the page).
    pub fn conn_entries(&self) -> Vec<&ConnEntry> {
        let Some(page) = &self.conns.page else {
            return Vec::new();
        };
        let mut v: Vec<&ConnEntry> = page.entries.iter().collect();
        let (sort, rev) = self.conns.sort;
        match sort {
            ConnSort::Listing => {}
            ConnSort::Expire => v.sort_by_key(|e| e.expires_in_ms),
            ConnSort::State => v.sort_by(|a, b| a.state.cmp(&b.state)),
            ConnSort::Source => v.sort_by_key(|e| (e.client.ip(), e.client.port())),
            ConnSort::Destination => v.sort_by_key(|e| (e.real.ip(), e.real.port())),
        }
        if rev {
            v.reverse();
        }
        v
    }

    /// Decisions in display order (newest first), filtered.
    pub fn decision_rows(&self) -> Vec<&(usize, DecisionInfo)> {
        let f = Filter::new(&self.filters[View::Decisions.index()]);
        self.decisions
            .iter()
            .rev()
            .filter(|(dir, d)| {
                f.matches(|needle| {
                    let name = self.directors.get(*dir).map_or("", |d| d.name.as_str());
                    contains(&d.service.to_string(), needle)
                        || contains(&d.client.to_string(), needle)
                        || d.real_server
                            .is_some_and(|r| contains(&r.to_string(), needle))
                        || contains(name, needle)
                        || contains(&d.reason, needle)
                })
            })
            .collect()
    }

    /// Events in display order (newest first), filtered.
    pub fn event_rows(&self) -> Vec<&(usize, Event)> {
        let f = Filter::new(&self.filters[View::Events.index()]);
        self.events
            .iter()
            .rev()
            .filter(|(dir, e)| {
                f.matches(|needle| {
                    let name = self.directors.get(*dir).map_or("", |d| d.name.as_str());
                    contains(name, needle) || contains(&crate::cli::text::event_line(e), needle)
                })
            })
            .collect()
    }

    /// VRRP rows (director, instance), filtered.
    pub fn vrrp_rows(&self) -> Vec<(usize, &VrrpInstanceInfo)> {
        let f = Filter::new(&self.filters[View::Vrrp.index()]);
        let mut out = Vec::new();
        for (i, d) in self.directors.iter().enumerate() {
            for inst in d.vrrp.iter().flatten() {
                if f.matches(|n| {
                    contains(&d.name, n)
                        || contains(&inst.name, n)
                        || contains(&inst.state.to_string(), n)
                        || contains(&inst.interface, n)
                        || contains(&inst.vrid.to_string(), n)
                }) {
                    out.push((i, inst));
                }
            }
        }
        out
    }

    fn list_len(&self) -> usize {
        match self.view {
            View::Topology => self.topology_lines(),
            View::Services => match self.detail {
                Some((dir, key)) => self
                    .directors
                    .get(dir)
                    .and_then(|d| d.services.iter().find(|s| s.key() == key))
                    .map_or(0, |s| s.real_servers.len()),
                None => self.svc_rows.len(),
            },
            View::Decisions => self.decision_rows().len(),
            View::Connections => self.conns.page.as_ref().map_or(0, |p| p.entries.len()),
            View::Vrrp => self.vrrp_rows().len(),
            View::Events => self.event_rows().len(),
        }
    }

    /// Lines of the Topology view (it scrolls by line).
    pub fn topology_lines(&self) -> usize {
        super::ui::topology_line_count(self)
    }

    // ----- keys -----

    /// Handles a key; returns what the I/O side must do.
    pub fn handle_key(&mut self, key: KeyEvent, now_ms: u64) -> Vec<Effect> {
        self.now_ms = now_ms;
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            self.quit = true;
            return vec![Effect::Quit];
        }
        match std::mem::replace(&mut self.mode, Mode::Normal) {
            Mode::Normal => self.normal_key(key, now_ms),
            Mode::Help(scroll) => {
                self.mode = match key.code {
                    KeyCode::Char('j') | KeyCode::Down => Mode::Help(scroll.saturating_add(1)),
                    KeyCode::Char('k') | KeyCode::Up => Mode::Help(scroll.saturating_sub(1)),
                    KeyCode::PageDown => Mode::Help(scroll.saturating_add(10)),
                    KeyCode::PageUp => Mode::Help(scroll.saturating_sub(10)),
                    _ => Mode::Normal,
                };
                Vec::new()
            }
            Mode::Filter(buf) => self.filter_key(key, buf),
            Mode::Command(buf) => self.command_key(key, buf, now_ms),
            Mode::Dialog(d) => self.dialog_key(key, d, now_ms),
        }
    }

    /// Handles a mouse event (only delivered with `--mouse`): the wheel moves the selection.
    pub fn handle_mouse(&mut self, ev: MouseEvent) {
        if self.mode != Mode::Normal {
            return;
        }
        match ev.kind {
            MouseEventKind::ScrollDown => self.move_selection(3),
            MouseEventKind::ScrollUp => self.move_selection(-3),
            _ => {}
        }
    }

    fn normal_key(&mut self, key: KeyEvent, now_ms: u64) -> Vec<Effect> {
        let Some(action) = self.keymap.action(&key) else {
            return Vec::new();
        };
        self.run_action(action, now_ms)
    }

    fn run_action(&mut self, action: Action, now_ms: u64) -> Vec<Effect> {
        let page = self.table_rows();
        match action {
            Action::Quit => {
                self.quit = true;
                return vec![Effect::Quit];
            }
            Action::Help => self.mode = Mode::Help(0),
            Action::Back => {
                let f = &mut self.filters[self.view.index()];
                if self.view == View::Services && self.detail.is_some() {
                    self.detail = None;
                } else if self.view == View::Connections && !self.conns.filter_text.is_empty() {
                    return self.set_conn_filter(String::new(), now_ms);
                } else if !f.is_empty() {
                    f.clear();
                    self.rebuild();
                }
            }
            Action::Filter => {
                let current = if self.view == View::Connections {
                    self.conns.filter_text.clone()
                } else {
                    self.filters[self.view.index()].clone()
                };
                self.mode = Mode::Filter(current);
            }
            Action::Command => self.mode = Mode::Command(String::new()),
            Action::NextView => {
                let i = (self.view.index() + 1) % View::ALL.len();
                return self.switch(View::ALL[i]);
            }
            Action::PrevView => {
                let i = (self.view.index() + View::ALL.len() - 1) % View::ALL.len();
                return self.switch(View::ALL[i]);
            }
            Action::ViewTopology => return self.switch(View::Topology),
            Action::ViewServices => return self.switch(View::Services),
            Action::ViewDecisions => return self.switch(View::Decisions),
            Action::ViewConnections => return self.switch(View::Connections),
            Action::ViewVrrp => return self.switch(View::Vrrp),
            Action::ViewEvents => return self.switch(View::Events),
            Action::Refresh => return vec![Effect::PollNow],
            Action::Up => self.move_selection(-1),
            Action::Down => self.move_selection(1),
            Action::PageUp => {
                if self.view == View::Connections {
                    return self.conn_page(-1, now_ms);
                }
                self.move_selection(-(isize::try_from(page).unwrap_or(1)));
            }
            Action::PageDown => {
                if self.view == View::Connections {
                    return self.conn_page(1, now_ms);
                }
                self.move_selection(isize::try_from(page).unwrap_or(1));
            }
            Action::Top => {
                if self.view == View::Connections && self.conns.starts.len() > 1 {
                    self.conns.starts.truncate(1);
                    self.conns.cursor = Cursor::default();
                    return self.fetch_page();
                }
                if self.view == View::Services && self.detail.is_none() {
                    self.select_real_row(0, true);
                } else {
                    let len = self.list_len();
                    self.cursor_mut().jump(0, len, page);
                }
            }
            Action::Bottom => {
                let len = self.list_len();
                if self.view == View::Services && self.detail.is_none() {
                    self.select_real_row(len.saturating_sub(1), false);
                } else {
                    self.cursor_mut().jump(len.saturating_sub(1), len, page);
                }
            }
            Action::Open => {
                if self.view == View::Services && self.detail.is_none() {
                    let sel = self.cursors[View::Services.index()].selected;
                    if let Some(SvcRow::Service { dir, svc } | SvcRow::Real { dir, svc, .. }) =
                        self.svc_rows.get(sel)
                        && let Some(s) = self.directors.get(*dir).and_then(|d| d.services.get(*svc))
                    {
                        self.detail = Some((*dir, s.key()));
                        self.detail_cursor = Cursor::default();
                    }
                }
            }
            Action::Sort => self.sort(false, now_ms),
            Action::SortReverse => self.sort(true, now_ms),
            Action::WeightUp => self.weight_step(1, now_ms),
            Action::WeightDown => self.weight_step(-1, now_ms),
            Action::WeightInput => self.weight_input(None, now_ms),
            Action::Drain => self.drain(now_ms),
            Action::Undrain => self.undrain(now_ms),
            Action::Kill => self.kill(now_ms),
            Action::ToggleRates => {
                self.columns = match self.columns {
                    Columns::Conns => Columns::Rates,
                    Columns::Rates => Columns::Stats,
                    Columns::Stats => Columns::Conns,
                };
            }
            Action::ToggleExact => self.exact = !self.exact,
            Action::Pause => {
                self.paused = !self.paused;
                if !self.paused {
                    let held: Vec<_> = self.decisions_held.drain(..).collect();
                    for d in held {
                        push_bounded(&mut self.decisions, d, DECISION_RING);
                    }
                    self.info("decision stream resumed", now_ms);
                } else {
                    self.info("decision stream paused (p resumes)", now_ms);
                }
            }
            Action::NextDirector | Action::PrevDirector => {
                let n = self.directors.len();
                if n > 1 {
                    let step = if action == Action::NextDirector {
                        1
                    } else {
                        n - 1
                    };
                    self.conns.director = (self.conns.director + step) % n;
                    self.conns.starts = vec![None];
                    self.conns.page = None;
                    self.conns.cursor = Cursor::default();
                    let name = self.directors[self.conns.director].name.clone();
                    self.info(format!("connections of director {name}"), now_ms);
                    if self.view == View::Connections {
                        return self.fetch_page();
                    }
                }
            }
        }
        Vec::new()
    }

    fn switch(&mut self, view: View) -> Vec<Effect> {
        self.view = view;
        if view == View::Connections {
            if self.conns.starts.is_empty() {
                self.conns.starts.push(None);
            }
            return self.fetch_page();
        }
        if view == View::Decisions {
            return vec![Effect::PollNow];
        }
        Vec::new()
    }

    fn fetch_page(&self) -> Vec<Effect> {
        if self.directors.is_empty() {
            return Vec::new();
        }
        vec![Effect::FetchConnections {
            director: self.conns.director,
            query: self.conn_query(),
        }]
    }

    fn conn_page(&mut self, dir: isize, now_ms: u64) -> Vec<Effect> {
        if self.conns.starts.is_empty() {
            self.conns.starts.push(None);
        }
        if dir > 0 {
            match self.conns.page.as_ref().and_then(|p| p.next_cursor) {
                Some(next) => self.conns.starts.push(Some(next)),
                None => {
                    self.info("last page of the connection table", now_ms);
                    return Vec::new();
                }
            }
        } else if self.conns.starts.len() > 1 {
            self.conns.starts.pop();
        } else {
            self.info("first page of the connection table", now_ms);
            return Vec::new();
        }
        self.conns.cursor = Cursor::default();
        self.fetch_page()
    }

    fn cursor_mut(&mut self) -> &mut Cursor {
        match self.view {
            View::Services if self.detail.is_some() => &mut self.detail_cursor,
            View::Connections => &mut self.conns.cursor,
            v => &mut self.cursors[v.index()],
        }
    }

    fn move_selection(&mut self, delta: isize) {
        let len = self.list_len();
        let page = if self.view == View::Topology {
            usize::from(self.body_height().max(1))
        } else {
            self.table_rows()
        };
        if self.view == View::Topology {
            // The topology scrolls: the "selection" is the first line shown.
            let c = &mut self.cursors[View::Topology.index()];
            let max = len.saturating_sub(page);
            c.offset = c.offset.saturating_add_signed(delta).min(max);
            c.selected = c.offset;
            return;
        }
        if self.view == View::Services && self.detail.is_none() {
            let target = self.cursors[View::Services.index()]
                .selected
                .saturating_add_signed(delta)
                .min(len.saturating_sub(1));
            self.select_real_row(target, delta >= 0);
            return;
        }
        self.cursor_mut().step(delta, len, page);
    }

    /// Selects the real-server row nearest `target` (searching `forward` first, then
    /// back): actions apply to real servers, so service lines are headings the selection
    /// steps over. Without any real server, `target` itself.
    fn select_real_row(&mut self, target: usize, forward: bool) {
        let len = self.svc_rows.len();
        let page = self.table_rows();
        let rows = &self.svc_rows;
        let is_real = |i: &usize| matches!(rows.get(*i), Some(SvcRow::Real { .. }));
        let after = || (target..len).find(is_real);
        let before = || (0..=target.min(len.saturating_sub(1))).rev().find(is_real);
        let pick = if forward {
            after().or_else(before)
        } else {
            before().or_else(after)
        };
        let c = &mut self.cursors[View::Services.index()];
        c.jump(pick.unwrap_or(target), len, page);
        // Keep the service heading of the first real server on screen.
        if c.offset == 1 && c.selected < page {
            c.offset = 0;
        }
        self.remember_svc_selection();
    }

    fn remember_svc_selection(&mut self) {
        if self.view != View::Services || self.detail.is_some() {
            return;
        }
        let sel = self.cursors[View::Services.index()].selected;
        self.svc_selected_key = self.svc_rows.get(sel).and_then(|r| match *r {
            SvcRow::Service { dir, svc } => {
                let s = self.directors.get(dir)?.services.get(svc)?;
                Some((dir, s.key(), None))
            }
            SvcRow::Real { dir, svc, rs } => {
                let s = self.directors.get(dir)?.services.get(svc)?;
                Some((dir, s.key(), Some(s.real_servers.get(rs)?.key())))
            }
        });
    }

    fn sort(&mut self, reverse: bool, now_ms: u64) {
        match self.view {
            View::Services => {
                if reverse {
                    self.svc_sort.1 = !self.svc_sort.1;
                } else {
                    let i = SvcSort::CYCLE
                        .iter()
                        .position(|s| *s == self.svc_sort.0)
                        .unwrap_or(0);
                    self.svc_sort.0 = SvcSort::CYCLE[(i + 1) % SvcSort::CYCLE.len()];
                }
                let (s, r) = self.svc_sort;
                self.info(
                    format!(
                        "real servers sorted by {}{}",
                        s.name(),
                        if r { ", reversed" } else { "" }
                    ),
                    now_ms,
                );
                self.rebuild();
            }
            View::Connections => {
                if reverse {
                    self.conns.sort.1 = !self.conns.sort.1;
                } else {
                    let i = ConnSort::CYCLE
                        .iter()
                        .position(|s| *s == self.conns.sort.0)
                        .unwrap_or(0);
                    self.conns.sort.0 = ConnSort::CYCLE[(i + 1) % ConnSort::CYCLE.len()];
                }
                let (s, r) = self.conns.sort;
                self.info(
                    format!(
                        "this page sorted by {}{} (pages follow the table's order)",
                        s.name(),
                        if r { ", reversed" } else { "" }
                    ),
                    now_ms,
                );
            }
            _ => self.info("this view is in time order", now_ms),
        }
    }

    fn filter_key(&mut self, key: KeyEvent, mut buf: String) -> Vec<Effect> {
        match key.code {
            KeyCode::Esc => {
                self.mode = Mode::Normal;
                if self.view == View::Connections {
                    if !self.conns.filter_text.is_empty() {
                        return self.set_conn_filter(String::new(), 0);
                    }
                } else {
                    self.filters[self.view.index()].clear();
                    self.rebuild();
                }
                Vec::new()
            }
            KeyCode::Enter => {
                self.mode = Mode::Normal;
                if self.view == View::Connections {
                    return self.set_conn_filter(buf, 0);
                }
                Vec::new()
            }
            KeyCode::Backspace => {
                buf.pop();
                self.live_filter(&buf);
                self.mode = Mode::Filter(buf);
                Vec::new()
            }
            KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                buf.push(c);
                self.live_filter(&buf);
                self.mode = Mode::Filter(buf);
                Vec::new()
            }
            _ => {
                self.mode = Mode::Filter(buf);
                Vec::new()
            }
        }
    }

    fn live_filter(&mut self, text: &str) {
        if self.view != View::Connections {
            self.filters[self.view.index()] = text.to_string();
            let c = self.cursor_mut();
            *c = Cursor::default();
            self.rebuild();
        }
    }

    /// Sets the Connections filter: `198.51.100.0/24` or `198.51.100.7` (client),
    /// `ESTABLISHED` (state), `203.0.113.10:80` or `udp 203.0.113.10:53` (service), in any
    /// combination.
    fn set_conn_filter(&mut self, text: String, now_ms: u64) -> Vec<Effect> {
        match parse_conn_filter(&text) {
            Ok(q) => {
                self.conns.filter = q;
                self.conns.filter_text = text;
                self.conns.starts = vec![None];
                self.conns.page = None;
                self.conns.cursor = Cursor::default();
                self.fetch_page()
            }
            Err(e) => {
                self.error(e, now_ms);
                Vec::new()
            }
        }
    }

    fn command_key(&mut self, key: KeyEvent, mut buf: String, now_ms: u64) -> Vec<Effect> {
        match key.code {
            KeyCode::Esc => Vec::new(),
            KeyCode::Enter => self.run_command(buf.trim(), now_ms),
            KeyCode::Backspace => {
                if buf.pop().is_some() {
                    self.mode = Mode::Command(buf);
                }
                Vec::new()
            }
            KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                buf.push(c);
                self.mode = Mode::Command(buf);
                Vec::new()
            }
            _ => {
                self.mode = Mode::Command(buf);
                Vec::new()
            }
        }
    }

    /// Runs a `:` command.
    fn run_command(&mut self, line: &str, now_ms: u64) -> Vec<Effect> {
        let mut words = line.split_whitespace();
        let cmd = words.next().unwrap_or("");
        let rest: Vec<&str> = words.collect();
        match cmd {
            "" => {}
            "q" | "quit" | "q!" | "qa" => {
                self.quit = true;
                return vec![Effect::Quit];
            }
            "help" | "h" => self.mode = Mode::Help(0),
            "weight" | "w" => match rest.first() {
                Some(v) => self.weight_input(Some(v), now_ms),
                None => self.weight_input(None, now_ms),
            },
            "drain" => self.drain(now_ms),
            "undrain" => self.undrain(now_ms),
            "kill" => self.kill(now_ms),
            "view" | "v" => match rest.first().and_then(|w| View::parse(w)) {
                Some(v) => return self.switch(v),
                None => self.error(
                    "`:view` takes topology, services, decisions, conn, vrrp or events",
                    now_ms,
                ),
            },
            "vs" | "service" => return self.jump_to_service(&rest.join(" "), now_ms),
            "dir" | "director" => {
                let name = rest.first().copied().unwrap_or("");
                match self.directors.iter().position(|d| d.name == name) {
                    Some(i) => {
                        self.conns.director = i;
                        self.conns.starts = vec![None];
                        self.conns.page = None;
                        self.info(format!("connections of director {name}"), now_ms);
                        if self.view == View::Connections {
                            return self.fetch_page();
                        }
                    }
                    None => {
                        let names: Vec<&str> =
                            self.directors.iter().map(|d| d.name.as_str()).collect();
                        self.error(
                            format!("no director `{name}` (directors: {})", names.join(", ")),
                            now_ms,
                        );
                    }
                }
            }
            "interval" | "i" => {
                match rest
                    .first()
                    .ok_or_else(|| "`:interval` takes seconds, e.g. :interval 5".to_string())
                    .and_then(|v| super::settings::parse_interval(v))
                {
                    Ok(d) => {
                        self.interval_ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
                        self.info(
                            format!("polling every {}", duration_text(self.interval_ms)),
                            now_ms,
                        );
                    }
                    Err(e) => self.error(e, now_ms),
                }
            }
            "sort" => self.sort(false, now_ms),
            other => self.error(
                format!(
                    "unknown command `{other}` (:weight N, :drain, :undrain, :kill, :view NAME, \
                     :vs VIP:PORT, :dir NAME, :interval SECS, :q)"
                ),
                now_ms,
            ),
        }
        Vec::new()
    }

    fn jump_to_service(&mut self, text: &str, now_ms: u64) -> Vec<Effect> {
        let key: ServiceKey = match text.parse() {
            Ok(k) => k,
            Err(e) => {
                self.error(e, now_ms);
                return Vec::new();
            }
        };
        self.view = View::Services;
        self.detail = None;
        self.filters[View::Services.index()].clear();
        self.rebuild();
        let found = self.svc_rows.iter().position(|r| match *r {
            SvcRow::Service { dir, svc } => self
                .directors
                .get(dir)
                .and_then(|d| d.services.get(svc))
                .is_some_and(|s| s.key() == key),
            SvcRow::Real { .. } => false,
        });
        match found {
            Some(i) => {
                let (len, page) = (self.svc_rows.len(), self.table_rows());
                match self.svc_rows.get(i + 1) {
                    Some(SvcRow::Real { .. }) => {
                        self.cursors[View::Services.index()].jump(i + 1, len, page);
                    }
                    _ => self.cursors[View::Services.index()].jump(i, len, page),
                }
                self.remember_svc_selection();
            }
            None => self.error(format!("no virtual service {key}"), now_ms),
        }
        Vec::new()
    }

    // ----- actions on a real server -----

    fn refuse_readonly(&mut self, now_ms: u64) -> bool {
        if self.readonly {
            self.error(
                "read-only console (--readonly): weight edits, drains and kills are disabled",
                now_ms,
            );
        }
        self.readonly
    }

    fn need_real_server(&mut self, now_ms: u64) -> Option<(Target, RealServerInfo)> {
        if self.view != View::Services {
            self.error(
                "select a real server in the Services view (2) first",
                now_ms,
            );
            return None;
        }
        match self.selected_real_server() {
            Some((t, rs)) => Some((t, rs.clone())),
            None => {
                self.error(
                    "select a real server (a `->` line; j/k move) to act on it",
                    now_ms,
                );
                None
            }
        }
    }

    fn weight_step(&mut self, delta: i64, now_ms: u64) {
        if self.refuse_readonly(now_ms) {
            return;
        }
        let Some((target, rs)) = self.need_real_server(now_ms) else {
            return;
        };
        let new = i64::from(rs.weight) + delta;
        if !(0..=i64::from(MAX_WEIGHT)).contains(&new) {
            self.error(
                format!(
                    "weight {} of {} is already at the {} (valid weights 0..={MAX_WEIGHT})",
                    rs.weight,
                    target.real_server,
                    if delta < 0 { "minimum" } else { "maximum" }
                ),
                now_ms,
            );
            return;
        }
        self.mode = Mode::Dialog(Dialog::Weight {
            target,
            old: rs.weight,
            new: u32::try_from(new).unwrap_or(rs.weight),
            drained: rs.drained_from.is_some(),
        });
    }

    fn weight_input(&mut self, typed: Option<&str>, now_ms: u64) {
        if self.refuse_readonly(now_ms) {
            return;
        }
        let Some((target, rs)) = self.need_real_server(now_ms) else {
            return;
        };
        let input = typed.unwrap_or("").to_string();
        let error = typed.and_then(|t| parse_weight(t).err());
        match typed.map(parse_weight) {
            Some(Ok(new)) => {
                self.mode = Mode::Dialog(Dialog::Weight {
                    target,
                    old: rs.weight,
                    new,
                    drained: rs.drained_from.is_some(),
                });
            }
            _ => {
                self.mode = Mode::Dialog(Dialog::WeightInput {
                    target,
                    old: rs.weight,
                    input,
                    error,
                });
            }
        }
    }

    fn drain(&mut self, now_ms: u64) {
        if self.refuse_readonly(now_ms) {
            return;
        }
        let Some((target, rs)) = self.need_real_server(now_ms) else {
            return;
        };
        if rs.drained_from.is_some() {
            // Already drained: watch it.
            self.watch_drain(target, u64::from(rs.active) + u64::from(rs.inactive), None);
            self.mode = Mode::Dialog(Dialog::DrainProgress(target));
            return;
        }
        self.mode = Mode::Dialog(Dialog::Drain {
            target,
            weight: rs.weight,
            active: rs.active,
            inactive: rs.inactive,
            persistent: rs.persistent,
        });
    }

    fn undrain(&mut self, now_ms: u64) {
        if self.refuse_readonly(now_ms) {
            return;
        }
        let Some((target, rs)) = self.need_real_server(now_ms) else {
            return;
        };
        match rs.drained_from {
            Some(weight) => self.mode = Mode::Dialog(Dialog::Undrain { target, weight }),
            None => self.error(
                format!("{} is not drained (nothing to undrain)", target.real_server),
                now_ms,
            ),
        }
    }

    fn kill(&mut self, now_ms: u64) {
        if self.view != View::Connections {
            self.error(
                "select a connection in the Connections view (4) first",
                now_ms,
            );
            return;
        }
        if self.refuse_readonly(now_ms) {
            return;
        }
        let entry = self
            .conn_entries()
            .get(self.conns.cursor.selected)
            .map(|e| (*e).clone());
        match entry {
            Some(entry) => {
                self.mode = Mode::Dialog(Dialog::Kill {
                    director: self.conns.director,
                    entry,
                })
            }
            None => self.error("no connection selected", now_ms),
        }
    }

    fn watch_drain(&mut self, target: Target, left: u64, info: Option<DrainInfo>) {
        match self.drains.iter_mut().find(|d| d.target == target) {
            Some(t) => {
                if info.is_some() {
                    t.info = info;
                }
            }
            None => self.drains.push(DrainTrack {
                target,
                start_left: left,
                info,
            }),
        }
    }

    fn dialog_key(&mut self, key: KeyEvent, dialog: Dialog, now_ms: u64) -> Vec<Effect> {
        let yes = matches!(
            key.code,
            KeyCode::Char('y') | KeyCode::Char('Y') | KeyCode::Enter
        );
        let no = matches!(
            key.code,
            KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc
        );
        match dialog {
            Dialog::Weight {
                target,
                old,
                new,
                drained,
            } => {
                if yes {
                    return self.call(
                        target.director,
                        Call::SetWeight {
                            service: target.service,
                            real_server: target.real_server,
                            weight: new,
                        },
                    );
                }
                if !no {
                    let new = match key.code {
                        KeyCode::Char('+') | KeyCode::Char('=') => {
                            new.saturating_add(1).min(MAX_WEIGHT)
                        }
                        KeyCode::Char('-') => new.saturating_sub(1),
                        _ => new,
                    };
                    self.mode = Mode::Dialog(Dialog::Weight {
                        target,
                        old,
                        new,
                        drained,
                    });
                }
            }
            Dialog::WeightInput {
                target,
                old,
                mut input,
                error,
            } => match key.code {
                KeyCode::Esc => {}
                KeyCode::Enter => match parse_weight(&input) {
                    Ok(w) => {
                        return self.call(
                            target.director,
                            Call::SetWeight {
                                service: target.service,
                                real_server: target.real_server,
                                weight: w,
                            },
                        );
                    }
                    Err(e) => {
                        self.mode = Mode::Dialog(Dialog::WeightInput {
                            target,
                            old,
                            input,
                            error: Some(e),
                        })
                    }
                },
                KeyCode::Backspace => {
                    input.pop();
                    let error = live_weight_error(&input);
                    self.mode = Mode::Dialog(Dialog::WeightInput {
                        target,
                        old,
                        input,
                        error,
                    });
                }
                KeyCode::Char(c) if !c.is_control() && input.len() < 12 => {
                    input.push(c);
                    let error = live_weight_error(&input);
                    self.mode = Mode::Dialog(Dialog::WeightInput {
                        target,
                        old,
                        input,
                        error,
                    });
                }
                _ => {
                    self.mode = Mode::Dialog(Dialog::WeightInput {
                        target,
                        old,
                        input,
                        error,
                    })
                }
            },
            Dialog::Drain { target, .. } if yes => {
                return self.call(
                    target.director,
                    Call::Drain {
                        service: target.service,
                        real_server: target.real_server,
                    },
                );
            }
            Dialog::Undrain { target, .. } if yes => {
                return self.call(
                    target.director,
                    Call::Undrain {
                        service: target.service,
                        real_server: target.real_server,
                    },
                );
            }
            Dialog::Remove(target) if yes => {
                return self.call(
                    target.director,
                    Call::RemoveRealServer {
                        service: target.service,
                        real_server: target.real_server,
                    },
                );
            }
            Dialog::Kill { director, entry } if yes => {
                let call = if entry.template {
                    Call::KillTemplate(TemplateKey {
                        service: ServiceKey {
                            protocol: entry.protocol,
                            vip: entry.virt.ip(),
                            port: entry.virt.port(),
                        },
                        client: entry.client.ip(),
                    })
                } else {
                    Call::KillConnection(ConnKey {
                        protocol: entry.protocol,
                        client: entry.client,
                        virt: entry.virt,
                    })
                };
                return self.call(director, call);
            }
            Dialog::DrainProgress(target) => match key.code {
                KeyCode::Char('r') | KeyCode::Char('R') => {
                    let track = self.drain_track(&target).cloned();
                    match track {
                        Some(t) if t.done() => self.mode = Mode::Dialog(Dialog::Remove(target)),
                        Some(t) => {
                            self.error(
                                format!(
                                    "{} connections left: remove it once the drain reaches zero",
                                    t.left()
                                ),
                                now_ms,
                            );
                            self.mode = Mode::Dialog(Dialog::DrainProgress(target));
                        }
                        None => {}
                    }
                }
                KeyCode::Char('u') => {
                    let weight = self.drain_track(&target).and_then(|t| {
                        t.info
                            .map(|i| i.weight_before)
                            .or_else(|| self.real_server(&target).and_then(|r| r.drained_from))
                    });
                    match weight {
                        Some(weight) if !self.readonly => {
                            self.mode = Mode::Dialog(Dialog::Undrain { target, weight })
                        }
                        _ => self.mode = Mode::Dialog(Dialog::DrainProgress(target)),
                    }
                }
                // The progress is information, not a question: q quits as everywhere.
                KeyCode::Char('q') => {
                    self.quit = true;
                    return vec![Effect::Quit];
                }
                KeyCode::Esc | KeyCode::Enter | KeyCode::Char('n') => {}
                _ => self.mode = Mode::Dialog(Dialog::DrainProgress(target)),
            },
            other => {
                // A confirmation: anything but yes/no keeps it open.
                if !no && !yes {
                    self.mode = Mode::Dialog(other);
                }
            }
        }
        Vec::new()
    }

    fn call(&mut self, director: usize, call: Call) -> Vec<Effect> {
        if self.readonly {
            // Dialogs are never opened read-only; this is the last guard.
            return Vec::new();
        }
        vec![Effect::Call { director, call }]
    }

    fn info(&mut self, text: impl Into<String>, now_ms: u64) {
        self.status = Some(Status {
            text: text.into(),
            level: Level::Info,
            at_ms: now_ms,
        });
    }

    fn ok(&mut self, text: impl Into<String>, now_ms: u64) {
        self.status = Some(Status {
            text: text.into(),
            level: Level::Ok,
            at_ms: now_ms,
        });
    }

    fn error(&mut self, text: impl Into<String>, now_ms: u64) {
        self.status = Some(Status {
            text: text.into(),
            level: Level::Error,
            at_ms: now_ms,
        });
    }

    // ----- polling -----

    /// What the next poll of `director` should ask for.
    pub fn plan(&self, director: usize) -> PollPlan {
        let Some(d) = self.directors.get(director) else {
            return PollPlan::default();
        };
        let decisions = if self.view == View::Decisions {
            d.services
                .iter()
                .map(|s| {
                    let k = s.key();
                    (k, d.decisions_since.get(&k).copied().unwrap_or(0))
                })
                .collect()
        } else {
            Vec::new()
        };
        let connections = (self.view == View::Connections && self.conns.director == director)
            .then(|| self.conn_query());
        let drains = self
            .drains
            .iter()
            .filter(|t| t.target.director == director)
            .map(|t| (t.target.service, t.target.real_server))
            .collect();
        PollPlan {
            events_since: d.events_since,
            decisions,
            connections,
            drains,
        }
    }

    /// Takes in what the I/O side reports.
    pub fn apply(&mut self, result: PollResult, now_ms: u64) {
        self.now_ms = now_ms;
        match result {
            PollResult::Connected {
                director,
                daemon,
                api,
                role,
            } => {
                let Some(d) = self.directors.get_mut(director) else {
                    return;
                };
                let was_down = matches!(d.link, Link::Down { .. });
                d.link = Link::Up;
                d.daemon = Some(daemon);
                d.api = Some(api);
                d.role = role;
                if was_down {
                    let name = d.name.clone();
                    self.ok(format!("director {name} is back"), now_ms);
                }
            }
            PollResult::Unreachable {
                director,
                message,
                retry_in_ms,
            } => {
                let Some(d) = self.directors.get_mut(director) else {
                    return;
                };
                let since_ms = match &d.link {
                    Link::Down { since_ms, .. } => *since_ms,
                    _ => now_ms,
                };
                d.link = Link::Down {
                    message,
                    since_ms,
                    retry_at_ms: now_ms + retry_in_ms,
                };
                self.rebuild();
            }
            PollResult::Snapshot { director, snapshot } => {
                self.apply_snapshot(director, *snapshot, now_ms);
            }
            PollResult::Page {
                director,
                query,
                page,
            } => self.apply_page(director, &query, page, now_ms),
            PollResult::Done {
                director,
                call,
                outcome,
            } => self.apply_done(director, call, outcome, now_ms),
        }
    }

    fn apply_page(
        &mut self,
        director: usize,
        query: &ConnQuery,
        page: Result<ConnPage, String>,
        now_ms: u64,
    ) {
        // An answer to a page we moved away from is dropped.
        if director != self.conns.director
            || query.cursor != self.conns.starts.last().copied().flatten()
            || query.client_prefix != self.conns.filter.client_prefix
            || query.state != self.conns.filter.state
            || query.service != self.conns.filter.service
        {
            return;
        }
        match page {
            Ok(p) => {
                self.conns.page = Some(p);
                self.conns.fetched_ms = now_ms;
                self.conns.error = None;
                let len = self.conns.page.as_ref().map_or(0, |p| p.entries.len());
                let rows = self.table_rows();
                self.conns.cursor.keep_visible(len, rows);
            }
            Err(e) => self.conns.error = Some(e),
        }
    }

    fn apply_snapshot(&mut self, director: usize, snap: Snapshot, now_ms: u64) {
        let Some(d) = self.directors.get_mut(director) else {
            return;
        };
        let mut errors = Vec::new();
        if let Some(services) = snap.services {
            match services {
                Ok(s) => {
                    d.services = s;
                    d.updated_ms = Some(now_ms);
                }
                Err(e) => errors.push(format!("services: {e}")),
            }
        }
        match snap.topology {
            Some(Ok(t)) => d.topology = Some(t),
            Some(Err(e)) => errors.push(format!("topology: {e}")),
            None => {}
        }
        match snap.vrrp {
            Some(Ok(v)) => d.vrrp = Some(v),
            Some(Err(e)) => errors.push(format!("vrrp: {e}")),
            None => {}
        }
        let mut new_events = Vec::new();
        match snap.events {
            Some(Ok(evs)) => {
                for e in evs {
                    d.events_since = d.events_since.max(e.seq);
                    new_events.push(e);
                }
            }
            Some(Err(e)) => errors.push(format!("events: {e}")),
            None => {}
        }
        let mut new_decisions = Vec::new();
        for (svc, r) in snap.decisions {
            match r {
                Ok(ds) => {
                    for dec in ds {
                        let since = d.decisions_since.entry(svc).or_insert(0);
                        *since = (*since).max(dec.seq);
                        new_decisions.push(dec);
                    }
                }
                Err(e) => errors.push(format!("decisions of {svc}: {e}")),
            }
        }
        d.poll_errors = errors;
        let name = d.name.clone();
        if d.link != Link::Up {
            d.link = Link::Up;
        }
        new_decisions.sort_by_key(|x| x.seq);
        for dec in new_decisions {
            if self.paused {
                push_bounded(&mut self.decisions_held, (director, dec), DECISION_RING);
            } else {
                push_bounded(&mut self.decisions, (director, dec), DECISION_RING);
            }
        }
        for e in new_events {
            push_bounded(&mut self.events, (director, e), EVENT_RING);
        }
        if let Some((query, page)) = snap.connections {
            self.apply_page(director, &query, page, now_ms);
        }
        for (service, real_server, r) in snap.drains {
            let target = Target {
                director,
                service,
                real_server,
            };
            match r {
                Ok(info) => {
                    let was_done = self.drain_track(&target).is_some_and(DrainTrack::done);
                    self.watch_drain(target, info.connections_left, Some(info));
                    if !was_done && info.connections_left == 0 {
                        self.ok(
                            format!(
                                "drain of {real_server} ({service}) on {name} complete: \
                                 no connection left"
                            ),
                            now_ms,
                        );
                    }
                }
                Err(ApiError::NotDrained { .. }) => {
                    self.drains.retain(|t| t.target != target);
                    if self.mode == Mode::Dialog(Dialog::DrainProgress(target)) {
                        self.mode = Mode::Normal;
                    }
                    self.info(format!("{real_server} is no longer drained"), now_ms);
                }
                Err(ApiError::NoSuchRealServer { .. } | ApiError::NoSuchService { .. }) => {
                    self.drains.retain(|t| t.target != target);
                }
                Err(e) => self.error(format!("{name}: drain status: {e}"), now_ms),
            }
        }
        self.record_history(director);
        self.rebuild();
    }

    fn record_history(&mut self, director: usize) {
        let Some(d) = self.directors.get(director) else {
            return;
        };
        for s in &d.services {
            let k = s.key();
            push_bounded(
                self.svc_history.entry((director, k)).or_default(),
                s.rates.cps,
                HISTORY,
            );
            for r in &s.real_servers {
                push_bounded(
                    self.history.entry((director, k, r.key())).or_default(),
                    r.rates.cps,
                    HISTORY,
                );
            }
        }
        // Forget servers and services that are gone, once enough of them piled up (memory
        // stays bounded across reconfigurations; a few stale rings cost nothing).
        let (services, reals) = self.directors.iter().fold((0, 0), |(s, r), d| {
            (
                s + d.services.len(),
                r + d
                    .services
                    .iter()
                    .map(|x| x.real_servers.len())
                    .sum::<usize>(),
            )
        });
        if self.history.len() > reals + 64 || self.svc_history.len() > services + 64 {
            let live_services: std::collections::HashSet<(usize, ServiceKey)> = self
                .directors
                .iter()
                .enumerate()
                .flat_map(|(i, d)| d.services.iter().map(move |s| (i, s.key())))
                .collect();
            let live: std::collections::HashSet<(usize, ServiceKey, RealServerKey)> = self
                .directors
                .iter()
                .enumerate()
                .flat_map(|(i, d)| {
                    d.services.iter().flat_map(move |s| {
                        s.real_servers.iter().map(move |r| (i, s.key(), r.key()))
                    })
                })
                .collect();
            self.history.retain(|k, _| live.contains(k));
            self.svc_history.retain(|k, _| live_services.contains(k));
        }
    }

    fn apply_done(
        &mut self,
        director: usize,
        call: Call,
        outcome: Result<Outcome, String>,
        now_ms: u64,
    ) {
        let name = self
            .directors
            .get(director)
            .map_or_else(String::new, |d| d.name.clone());
        match outcome {
            Err(e) => self.error(format!("{name}: {e}"), now_ms),
            Ok(Outcome::Weight(c)) => {
                let what = if matches!(call, Call::Undrain { .. }) {
                    "undrained"
                } else {
                    "weight"
                };
                self.drains.retain(|t| {
                    !(t.target.director == director
                        && t.target.service == c.service
                        && t.target.real_server == c.real_server)
                });
                self.ok(
                    format!(
                        "{name}: {what} {} in {}: {} -> {}",
                        c.real_server, c.service, c.old, c.new
                    ),
                    now_ms,
                );
                self.patch_weight(director, c.service, c.real_server, c.new, false);
            }
            Ok(Outcome::Drain(info)) => {
                let target = Target {
                    director,
                    service: info.service,
                    real_server: info.real_server,
                };
                self.drains.retain(|t| t.target != target);
                self.watch_drain(target, info.connections_left, Some(info));
                self.ok(
                    format!(
                        "{name}: draining {} in {}: weight {} -> 0, {} connections left",
                        info.real_server, info.service, info.weight_before, info.connections_left
                    ),
                    now_ms,
                );
                self.patch_weight(director, info.service, info.real_server, 0, true);
                if self.mode == Mode::Normal {
                    self.mode = Mode::Dialog(Dialog::DrainProgress(target));
                }
            }
            Ok(Outcome::Removed) => {
                if let Call::RemoveRealServer {
                    service,
                    real_server,
                } = call
                {
                    self.drains.retain(|t| {
                        !(t.target.director == director
                            && t.target.service == service
                            && t.target.real_server == real_server)
                    });
                    self.ok(
                        format!("{name}: removed {real_server} from {service}"),
                        now_ms,
                    );
                }
            }
            Ok(Outcome::Killed(e)) => {
                self.ok(
                    format!(
                        "{name}: killed {} {} {} -> {} (to {})",
                        if e.template { "template" } else { "connection" },
                        e.protocol,
                        e.client,
                        e.virt,
                        e.real
                    ),
                    now_ms,
                );
                if let Some(p) = &mut self.conns.page {
                    p.entries.retain(|x| x.cursor != e.cursor);
                }
            }
        }
    }

    /// Shows a weight change before the next poll confirms it.
    fn patch_weight(
        &mut self,
        director: usize,
        service: ServiceKey,
        rs: RealServerKey,
        weight: u32,
        drained: bool,
    ) {
        if let Some(r) = self
            .directors
            .get_mut(director)
            .and_then(|d| d.services.iter_mut().find(|s| s.key() == service))
            .and_then(|s| s.real_servers.iter_mut().find(|r| r.key() == rs))
        {
            if drained {
                r.drained_from = r.drained_from.or(Some(r.weight));
            } else {
                r.drained_from = None;
            }
            r.weight = weight;
        }
    }

    /// Recomputes the Services rows (filter and sort) and keeps the selection on the same
    /// service or real server.
    pub fn rebuild(&mut self) {
        let f = Filter::new(&self.filters[View::Services.index()]);
        let mut rows = Vec::new();
        let (sort, rev) = self.svc_sort;
        for (di, d) in self.directors.iter().enumerate() {
            for (si, s) in d.services.iter().enumerate() {
                let svc_text = format!("{} {} {}", s.key(), s.scheduler, d.name);
                let svc_match = f.matches(|n| contains(&svc_text, n));
                let mut reals: Vec<usize> = (0..s.real_servers.len())
                    .filter(|&ri| {
                        svc_match || f.matches(|n| real_server_matches(&s.real_servers[ri], n))
                    })
                    .collect();
                if !svc_match && reals.is_empty() && !f.is_empty() {
                    continue;
                }
                sort_reals(&mut reals, &s.real_servers, sort, rev);
                rows.push(SvcRow::Service { dir: di, svc: si });
                rows.extend(reals.into_iter().map(|ri| SvcRow::Real {
                    dir: di,
                    svc: si,
                    rs: ri,
                }));
            }
        }
        self.svc_rows = rows;
        let page = self.table_rows();
        if let Some((dir, key, rs)) = self.svc_selected_key {
            let found = self.svc_rows.iter().position(|r| match *r {
                SvcRow::Service { dir: d, svc } => {
                    rs.is_none()
                        && d == dir
                        && self.directors[d]
                            .services
                            .get(svc)
                            .is_some_and(|s| s.key() == key)
                }
                SvcRow::Real {
                    dir: d,
                    svc,
                    rs: ri,
                } => {
                    d == dir
                        && self.directors[d].services.get(svc).is_some_and(|s| {
                            s.key() == key && s.real_servers.get(ri).map(RealServerInfo::key) == rs
                        })
                }
            });
            if let Some(i) = found {
                self.cursors[View::Services.index()].selected = i;
            }
        }
        let len = self.svc_rows.len();
        self.cursors[View::Services.index()].keep_visible(len, page);
        let sel = self.cursors[View::Services.index()].selected;
        if matches!(self.svc_rows.get(sel), Some(SvcRow::Service { .. })) {
            // A heading is selected (first data, or its server went): the nearest server.
            let remembered = self.svc_selected_key;
            self.select_real_row(sel, true);
            if remembered.is_some_and(|(_, _, rs)| rs.is_some()) {
                // Keep looking for the remembered server when it comes back.
                self.svc_selected_key = remembered;
            }
        }
        for v in [View::Decisions, View::Events, View::Vrrp] {
            let len = match v {
                View::Decisions => self.decision_rows().len(),
                View::Events => self.event_rows().len(),
                _ => self.vrrp_rows().len(),
            };
            self.cursors[v.index()].keep_visible(len, page);
        }
        if let Some((dir, key)) = self.detail {
            let len = self
                .directors
                .get(dir)
                .and_then(|d| d.services.iter().find(|s| s.key() == key))
                .map_or(0, |s| s.real_servers.len());
            self.detail_cursor.keep_visible(len, page);
        }
    }
}

fn sort_reals(idx: &mut [usize], reals: &[RealServerInfo], sort: SvcSort, rev: bool) {
    let key = |i: &usize| -> (u64, IpAddr, u16) {
        let r = &reals[*i];
        let n = match sort {
            SvcSort::Daemon | SvcSort::Address => 0,
            SvcSort::Weight => u64::from(r.weight),
            SvcSort::Active => u64::from(r.active),
            SvcSort::Inactive => u64::from(r.inactive),
            SvcSort::Cps => r.rates.cps,
            SvcSort::Health => match r.health.as_ref().map(|h| h.state) {
                Some(HealthState::Down) => 0,
                None => 1,
                Some(HealthState::Up) => 2,
            },
        };
        (n, r.addr, r.port)
    };
    match sort {
        SvcSort::Daemon => {}
        // Busiest first reads best for load columns.
        SvcSort::Weight | SvcSort::Active | SvcSort::Inactive | SvcSort::Cps => {
            idx.sort_by_key(|i| std::cmp::Reverse(key(i)));
        }
        SvcSort::Address | SvcSort::Health => idx.sort_by_key(key),
    }
    if rev {
        idx.reverse();
    }
}

fn real_server_matches(r: &RealServerInfo, needle: &Needle) -> bool {
    let addr = r.key().to_string();
    contains(&addr, needle)
        || contains(r.forwarding.ipvsadm_name(), needle)
        || r.health
            .as_ref()
            .is_some_and(|h| contains(&h.state.to_string(), needle))
        || (r.drained_from.is_some() && contains("drained", needle))
        || (r.overloaded && contains("overload", needle))
        || (r.sorry && contains("sorry", needle))
}

/// A filter as typed: a case-insensitive regular expression (`rs[12]`, `^tcp`), `!` in
/// front inverts it. Text that is not a valid expression (`(`, `[x`) is matched literally,
/// so typing never shows an error.
#[derive(Debug)]
struct Filter {
    needle: Option<Needle>,
    invert: bool,
}

/// A compiled filter expression.
#[derive(Debug)]
struct Needle(regex::Regex);

impl Needle {
    fn new(text: &str) -> Option<Needle> {
        if text.is_empty() {
            return None;
        }
        let build = |pattern: &str| {
            regex::RegexBuilder::new(pattern)
                .case_insensitive(true)
                .size_limit(1 << 20)
                .build()
        };
        build(text)
            .or_else(|_| build(&regex::escape(text)))
            .ok()
            .map(Needle)
    }
}

impl Filter {
    fn new(text: &str) -> Filter {
        let text = text.trim();
        match text.strip_prefix('!') {
            Some(rest) => Filter {
                needle: Needle::new(rest.trim()),
                invert: true,
            },
            None => Filter {
                needle: Needle::new(text),
                invert: false,
            },
        }
    }

    fn is_empty(&self) -> bool {
        self.needle.is_none()
    }

    fn matches(&self, f: impl FnOnce(&Needle) -> bool) -> bool {
        match &self.needle {
            None => true,
            Some(n) => f(n) != self.invert,
        }
    }
}

/// Whether the filter expression matches somewhere in `hay`.
fn contains(hay: &str, needle: &Needle) -> bool {
    needle.0.is_match(hay)
}

fn push_bounded<T>(q: &mut VecDeque<T>, v: T, cap: usize) {
    if q.len() == cap {
        q.pop_front();
    }
    q.push_back(v);
}

/// A typed weight, or why it is refused (with the valid range).
pub fn parse_weight(text: &str) -> Result<u32, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err(format!("type a weight: valid weights are 0..={MAX_WEIGHT}"));
    }
    match t.parse::<u64>() {
        Ok(w) if w <= u64::from(MAX_WEIGHT) => u32::try_from(w).map_err(|_| String::new()),
        Ok(w) => Err(format!(
            "weight {w} is out of range: valid weights are 0..={MAX_WEIGHT}"
        )),
        Err(_) if t.chars().all(|c| c.is_ascii_digit()) => Err(format!(
            "weight {t} is out of range: valid weights are 0..={MAX_WEIGHT}"
        )),
        Err(_) => Err(format!(
            "`{t}` is not a weight: valid weights are 0..={MAX_WEIGHT}"
        )),
    }
}

/// The error shown while typing (none for an empty field).
fn live_weight_error(input: &str) -> Option<String> {
    if input.is_empty() {
        None
    } else {
        parse_weight(input).err()
    }
}

/// Parses the Connections filter (see [`App::set_conn_filter`]).
pub fn parse_conn_filter(text: &str) -> Result<ConnQuery, String> {
    let mut q = ConnQuery::default();
    let mut words = text.split_whitespace().peekable();
    while let Some(w) = words.next() {
        let lower = w.to_ascii_lowercase();
        if lower == "tcp" || lower == "udp" {
            let Some(addr) = words.next() else {
                return Err(format!("`{w}` needs VIP:PORT after it"));
            };
            q.service = Some(format!("{w} {addr}").parse()?);
        } else if w.contains('/') || w.parse::<IpAddr>().is_ok() {
            // Before the service test: a bare IPv6 address has colons too.
            q.client_prefix = Some(w.parse::<IpPrefix>()?);
        } else if w.contains(':') {
            q.service = Some(w.parse()?);
        } else if w.chars().all(|c| c.is_ascii_alphabetic() || c == '_') {
            q.state = Some(w.to_ascii_uppercase());
        } else {
            return Err(format!(
                "`{w}` is not a client prefix (198.51.100.0/24, 2001:db8:c::/64), state \
                 (ESTABLISHED) or service (203.0.113.10:80, [2001:db8:f::10]:80)"
            ));
        }
    }
    Ok(q)
}

/// `2s`, `500ms`, `1m30s` for a duration in milliseconds.
pub fn duration_text(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        if ms % 1000 == 0 {
            format!("{}s", ms / 1000)
        } else {
            format!("{:.1}s", ms as f64 / 1000.0)
        }
    } else if ms < 3_600_000 {
        let s = ms / 1000;
        if s % 60 == 0 {
            format!("{}m", s / 60)
        } else {
            format!("{}m{:02}s", s / 60, s % 60)
        }
    } else {
        format!("{}h{:02}m", ms / 3_600_000, ms / 60_000 % 60)
    }
}
