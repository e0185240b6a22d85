//! The console without a terminal: key handling and poll results through the state
//! machine (no rendering), and every view rendered with ratatui's `TestBackend` at 80x24
//! and 200x50 against insta snapshots (`tests/snapshots/`).
//!
//! The data is fixed (`console_fixtures.rs`) and time is passed in, so the screens are
//! deterministic; the only filter replaces the "N s ago" age of a director's data.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "console_fixtures.rs"]
mod fixtures;

use std::net::{IpAddr, Ipv4Addr};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use fixtures::*;
use lvs_proto::*;
use lvs_tui::console::app::{
    App, Call, Dialog, Effect, Level, Link, Mode, Outcome, PollResult, Snapshot, SvcRow, View,
};
use lvs_tui::console::ui;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

// ----- helpers -----

fn key(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
}

fn code(c: KeyCode) -> KeyEvent {
    KeyEvent::new(c, KeyModifiers::NONE)
}

fn press(app: &mut App, keys: &str) -> Vec<Effect> {
    let mut effects = Vec::new();
    for c in keys.chars() {
        effects.extend(app.handle_key(key(c), NOW));
    }
    effects
}

fn render(app: &App) -> String {
    let (w, h) = app.size;
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| ui::draw(f, app)).unwrap();
    let buf = term.backend().buffer();
    let mut out = String::new();
    for y in 0..h {
        let mut line = String::new();
        for x in 0..w {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn snapshot(name: &str, screen: &str) {
    insta::with_settings!({
        snapshot_path => "snapshots",
        prepend_module_to_snapshot => false,
        filters => vec![(r"\(\d+(ms|s|m)\d* ago\)", "(AGE ago)")],
    }, {
        insta::assert_snapshot!(name, screen);
    });
}

/// Snapshots `build`'s console at 80x24 and 200x50.
fn both(name: &str, build: impl Fn(u16, u16) -> App) {
    for (w, h) in [(80, 24), (200, 50)] {
        let app = build(w, h);
        snapshot(&format!("{name}_{w}x{h}"), &render(&app));
    }
}

/// One director with the fixture services, 12 polls of history, on the Services view.
fn lab(w: u16, h: u16) -> App {
    let mut app = app(&["lvs1"], w, h);
    feed(&mut app, 0, &services(), Some(VrrpState::Master), 12);
    app
}

fn selected_rs(app: &App) -> Option<RealServerKey> {
    app.selected_real_server().map(|(t, _)| t.real_server)
}

fn k(n: u8, port: u16) -> RealServerKey {
    RealServerKey::new(rip(n), port)
}

// ----- state: actions -----

#[test]
fn plus_asks_then_sets_weight_plus_one() {
    let mut app = lab(80, 24);
    assert!(press(&mut app, "2").is_empty());
    // The selection starts on the first real server, not the service heading.
    assert_eq!(selected_rs(&app), Some(k(11, 80)));
    assert!(
        press(&mut app, "+").is_empty(),
        "nothing before confirmation"
    );
    assert!(matches!(
        app.mode,
        Mode::Dialog(Dialog::Weight { old: 3, new: 4, .. })
    ));
    // + inside the dialog adjusts further, - back.
    press(&mut app, "++-");
    assert!(matches!(
        app.mode,
        Mode::Dialog(Dialog::Weight { new: 5, .. })
    ));
    let effects = press(&mut app, "y");
    assert_eq!(
        effects,
        vec![Effect::Call {
            director: 0,
            call: Call::SetWeight {
                service: web(),
                real_server: k(11, 80),
                weight: 5
            }
        }]
    );
    assert_eq!(app.mode, Mode::Normal);
}

#[test]
fn enter_confirms_and_n_or_esc_cancel() {
    let mut app = lab(80, 24);
    press(&mut app, "2-");
    assert_eq!(
        app.handle_key(code(KeyCode::Enter), NOW),
        vec![Effect::Call {
            director: 0,
            call: Call::SetWeight {
                service: web(),
                real_server: k(11, 80),
                weight: 2
            }
        }]
    );
    press(&mut app, "-");
    assert!(press(&mut app, "n").is_empty());
    assert_eq!(app.mode, Mode::Normal);
    press(&mut app, "+");
    assert!(app.handle_key(code(KeyCode::Esc), NOW).is_empty());
    assert_eq!(app.mode, Mode::Normal);
}

#[test]
fn readonly_produces_no_action() {
    let mut app = lab(80, 24);
    app.readonly = true;
    press(&mut app, "2");
    for keys in ["+", "-", "w", "d", "u", "y"] {
        assert!(press(&mut app, keys).is_empty(), "{keys} acted read-only");
        assert_eq!(app.mode, Mode::Normal, "{keys} opened a dialog read-only");
    }
    let status = app.status_at(NOW).unwrap();
    assert_eq!(status.level, Level::Error);
    assert!(status.text.contains("--readonly"), "{}", status.text);
    assert!(press(&mut app, ":weight 5\n").is_empty());
}

#[test]
fn typed_weight_out_of_range_is_refused_in_the_dialog() {
    let mut app = lab(80, 24);
    press(&mut app, "2w70000");
    let effects = app.handle_key(code(KeyCode::Enter), NOW);
    assert!(effects.is_empty());
    match &app.mode {
        Mode::Dialog(Dialog::WeightInput { error: Some(e), .. }) => {
            assert_eq!(
                e,
                "weight 70000 is out of range: valid weights are 0..=65535"
            );
        }
        other => panic!("no error in the dialog: {other:?}"),
    }
    for _ in 0..5 {
        app.handle_key(code(KeyCode::Backspace), NOW);
    }
    press(&mut app, "7");
    assert_eq!(
        app.handle_key(code(KeyCode::Enter), NOW),
        vec![Effect::Call {
            director: 0,
            call: Call::SetWeight {
                service: web(),
                real_server: k(11, 80),
                weight: 7
            }
        }]
    );
}

#[test]
fn command_line_weight_drain_view_and_quit() {
    let mut app = lab(80, 24);
    press(&mut app, "2:weight 9");
    app.handle_key(code(KeyCode::Enter), NOW);
    assert!(matches!(
        app.mode,
        Mode::Dialog(Dialog::Weight { old: 3, new: 9, .. })
    ));
    press(&mut app, "n:weight 65536");
    app.handle_key(code(KeyCode::Enter), NOW);
    assert!(matches!(
        app.mode,
        Mode::Dialog(Dialog::WeightInput { error: Some(_), .. })
    ));
    app.handle_key(code(KeyCode::Esc), NOW);
    press(&mut app, ":view vrrp");
    app.handle_key(code(KeyCode::Enter), NOW);
    assert_eq!(app.view, View::Vrrp);
    press(&mut app, ":bogus");
    app.handle_key(code(KeyCode::Enter), NOW);
    assert!(
        app.status_at(NOW)
            .unwrap()
            .text
            .contains("unknown command `bogus`")
    );
    press(&mut app, ":q");
    assert_eq!(
        app.handle_key(code(KeyCode::Enter), NOW),
        vec![Effect::Quit]
    );
    assert!(app.quit);
}

#[test]
fn drain_confirm_progress_then_remove() {
    let mut app = lab(80, 24);
    press(&mut app, "2");
    assert!(press(&mut app, "d").is_empty());
    assert!(matches!(
        app.mode,
        Mode::Dialog(Dialog::Drain {
            weight: 3,
            active: 41,
            ..
        })
    ));
    let effects = press(&mut app, "y");
    assert_eq!(
        effects,
        vec![Effect::Call {
            director: 0,
            call: Call::Drain {
                service: web(),
                real_server: k(11, 80)
            }
        }]
    );
    let info = DrainInfo {
        service: web(),
        real_server: k(11, 80),
        weight_before: 3,
        active: 30,
        inactive: 10,
        persistent: 0,
        connections_left: 40,
    };
    app.apply(
        PollResult::Done {
            director: 0,
            call: Call::Drain {
                service: web(),
                real_server: k(11, 80),
            },
            outcome: Ok(Outcome::Drain(info)),
        },
        NOW,
    );
    assert!(matches!(app.mode, Mode::Dialog(Dialog::DrainProgress(_))));
    // The next poll asks for its progress.
    assert_eq!(app.plan(0).drains, vec![(web(), k(11, 80))]);
    // Not yet at zero: remove is refused.
    press(&mut app, "r");
    assert!(matches!(app.mode, Mode::Dialog(Dialog::DrainProgress(_))));
    let done = DrainInfo {
        active: 0,
        inactive: 0,
        connections_left: 0,
        ..info
    };
    app.apply(
        PollResult::Snapshot {
            director: 0,
            snapshot: Box::new(Snapshot {
                drains: vec![(web(), k(11, 80), Ok(done))],
                ..Snapshot::default()
            }),
        },
        NOW,
    );
    assert!(app.status_at(NOW).unwrap().text.contains("complete"));
    press(&mut app, "r");
    assert!(matches!(app.mode, Mode::Dialog(Dialog::Remove(_))));
    assert_eq!(
        press(&mut app, "y"),
        vec![Effect::Call {
            director: 0,
            call: Call::RemoveRealServer {
                service: web(),
                real_server: k(11, 80)
            }
        }]
    );
}

#[test]
fn undrain_restores_the_remembered_weight_and_refuses_otherwise() {
    let mut app = lab(80, 24);
    press(&mut app, "2u");
    assert!(app.status_at(NOW).unwrap().text.contains("is not drained"));
    // 192.0.2.13 (the third server of the web service) is drained from 1.
    press(&mut app, "jj");
    assert_eq!(selected_rs(&app), Some(k(13, 80)));
    press(&mut app, "u");
    assert!(matches!(
        app.mode,
        Mode::Dialog(Dialog::Undrain { weight: 1, .. })
    ));
    assert_eq!(
        press(&mut app, "y"),
        vec![Effect::Call {
            director: 0,
            call: Call::Undrain {
                service: web(),
                real_server: k(13, 80)
            }
        }]
    );
}

#[test]
fn selection_steps_over_service_headings() {
    let mut app = lab(80, 24);
    press(&mut app, "2jjj");
    assert_eq!(selected_rs(&app), Some(k(12, 80)));
    press(&mut app, "j");
    // The DNS service's heading is skipped: its sorry server.
    assert_eq!(selected_rs(&app), Some(k(99, 53)));
    press(&mut app, "G");
    assert_eq!(selected_rs(&app), Some(k(21, 53)));
    press(&mut app, "g");
    assert_eq!(selected_rs(&app), Some(k(11, 80)));
}

#[test]
fn selection_follows_the_server_across_refreshes() {
    let mut app = lab(80, 24);
    press(&mut app, "2jj");
    assert_eq!(selected_rs(&app), Some(k(13, 80)));
    // The daemon lists the servers in another order now.
    let mut s = services();
    s[0].real_servers.reverse();
    feed(&mut app, 0, &s, Some(VrrpState::Master), 1);
    assert_eq!(selected_rs(&app), Some(k(13, 80)));
}

#[test]
fn filter_narrows_and_esc_clears() {
    let mut app = lab(80, 24);
    press(&mut app, "2/192.0.2.12");
    app.handle_key(code(KeyCode::Enter), NOW);
    let rows: Vec<_> = app.svc_rows.clone();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(matches!(rows[0], SvcRow::Service { svc: 0, .. }));
    assert_eq!(selected_rs(&app), Some(k(12, 80)));
    // `!` inverts; `down` matches the health word.
    press(&mut app, "/");
    app.handle_key(code(KeyCode::Backspace), NOW);
    for _ in 0..11 {
        app.handle_key(code(KeyCode::Backspace), NOW);
    }
    press(&mut app, "down");
    app.handle_key(code(KeyCode::Enter), NOW);
    let downs: Vec<_> = app
        .svc_rows
        .iter()
        .filter(|r| matches!(r, SvcRow::Real { .. }))
        .collect();
    assert_eq!(downs.len(), 2);
    app.handle_key(code(KeyCode::Esc), NOW);
    assert_eq!(app.svc_rows.len(), 8);
}

#[test]
fn filters_are_case_insensitive_regexes_and_bad_ones_match_literally() {
    let mut app = lab(80, 24);
    // `192\.0\.2\.1[12]:` picks two servers of each service that has them.
    press(&mut app, "2/192\\.0\\.2\\.1[12]:");
    app.handle_key(code(KeyCode::Enter), NOW);
    let picked: Vec<_> = app
        .svc_rows
        .iter()
        .filter(|r| matches!(r, SvcRow::Real { .. }))
        .collect();
    assert!(!picked.is_empty(), "{:?}", app.svc_rows);
    assert!(
        picked.len() < 8 - 1,
        "the expression should narrow the list: {:?}",
        app.svc_rows
    );
    app.handle_key(code(KeyCode::Esc), NOW);
    // Upper case matches (case-insensitive), and `!` inverts.
    press(&mut app, "/DOWN");
    app.handle_key(code(KeyCode::Enter), NOW);
    let downs = app
        .svc_rows
        .iter()
        .filter(|r| matches!(r, SvcRow::Real { .. }))
        .count();
    assert_eq!(downs, 2);
    app.handle_key(code(KeyCode::Esc), NOW);
    // Not a valid expression: matched as text, so nothing matches and nothing breaks.
    press(&mut app, "/[x");
    app.handle_key(code(KeyCode::Enter), NOW);
    assert!(
        app.svc_rows
            .iter()
            .all(|r| !matches!(r, SvcRow::Real { .. })),
        "{:?}",
        app.svc_rows
    );
}

#[test]
fn connections_page_with_the_cursor_and_never_hold_the_table() {
    let mut app = lab(80, 24);
    let effects = press(&mut app, "4");
    let Some(Effect::FetchConnections { director: 0, query }) = effects.first() else {
        panic!("no fetch: {effects:?}");
    };
    assert_eq!(query.cursor, None);
    let rows = app.table_rows();
    assert_eq!(query.limit as usize, rows);
    let page = conn_page(query, 1_000_000);
    let next = page.next_cursor;
    app.apply(
        PollResult::Page {
            director: 0,
            query: query.clone(),
            page: Ok(page),
        },
        NOW,
    );
    let effects = app.handle_key(code(KeyCode::PageDown), NOW);
    let Some(Effect::FetchConnections { query: q2, .. }) = effects.first() else {
        panic!("no fetch: {effects:?}");
    };
    assert_eq!(q2.cursor, next);
    // A late answer for the first page is dropped.
    app.apply(
        PollResult::Page {
            director: 0,
            query: query.clone(),
            page: Ok(conn_page(query, 1_000_000)),
        },
        NOW,
    );
    assert_eq!(
        app.conns.page.as_ref().map(|p| p.entries[0].cursor.id),
        Some(0)
    );
    app.apply(
        PollResult::Page {
            director: 0,
            query: q2.clone(),
            page: Ok(conn_page(q2, 1_000_000)),
        },
        NOW,
    );
    let held = app.conns.page.as_ref().map_or(0, |p| p.entries.len());
    assert_eq!(held, rows, "only one page is held");
    assert_eq!(
        app.conns.page.as_ref().map(|p| p.entries[0].cursor.id),
        Some(rows as u64)
    );
    // The poll refreshes the current page, not the first.
    assert_eq!(app.plan(0).connections.and_then(|q| q.cursor), next);
    let back = app.handle_key(code(KeyCode::PageUp), NOW);
    let Some(Effect::FetchConnections { query: q3, .. }) = back.first() else {
        panic!("no fetch: {back:?}");
    };
    assert_eq!(q3.cursor, None);
}

#[test]
fn connection_filter_becomes_the_query() {
    let mut app = lab(80, 24);
    press(&mut app, "4/198.51.100.0/24 established 203.0.113.10:80");
    let effects = app.handle_key(code(KeyCode::Enter), NOW);
    let Some(Effect::FetchConnections { query, .. }) = effects.first() else {
        panic!("no fetch: {effects:?}");
    };
    assert_eq!(
        query.client_prefix,
        Some(IpPrefix {
            addr: Ipv4Addr::new(198, 51, 100, 0).into(),
            len: 24
        })
    );
    assert_eq!(query.state.as_deref(), Some("ESTABLISHED"));
    assert_eq!(query.service, Some(web()));
    press(&mut app, "/");
    for _ in 0..60 {
        app.handle_key(code(KeyCode::Backspace), NOW);
    }
    press(&mut app, "1.2.3.4/99");
    assert!(app.handle_key(code(KeyCode::Enter), NOW).is_empty());
    assert_eq!(app.status_at(NOW).unwrap().level, Level::Error);
}

#[test]
fn kill_asks_and_names_connection_or_template() {
    let mut app = lab(80, 24);
    let effects = press(&mut app, "4");
    let Some(Effect::FetchConnections { query, .. }) = effects.first().cloned() else {
        panic!("no fetch");
    };
    app.apply(
        PollResult::Page {
            director: 0,
            query: query.clone(),
            page: Ok(conn_page(&query, 1_000_000)),
        },
        NOW,
    );
    // Entry 0 is a persistence template (every 97th is).
    press(&mut app, "K");
    assert!(matches!(app.mode, Mode::Dialog(Dialog::Kill { .. })));
    assert_eq!(
        press(&mut app, "y"),
        vec![Effect::Call {
            director: 0,
            call: Call::KillTemplate(TemplateKey {
                service: web(),
                client: Ipv4Addr::new(198, 51, 100, 0).into()
            })
        }]
    );
    press(&mut app, "jK");
    let e = conn_entry(1);
    assert_eq!(
        press(&mut app, "y"),
        vec![Effect::Call {
            director: 0,
            call: Call::KillConnection(ConnKey {
                protocol: Protocol::Tcp,
                client: e.client,
                virt: e.virt
            })
        }]
    );
}

#[test]
fn errors_go_to_the_status_line_and_data_stays() {
    let mut app = lab(80, 24);
    app.apply(
        PollResult::Done {
            director: 0,
            call: Call::SetWeight {
                service: web(),
                real_server: k(11, 80),
                weight: 4,
            },
            outcome: Err(ApiError::PermissionDenied {
                reason: "read-only role: uid 1000 is neither root nor in group lvsadm".into(),
            }
            .to_string()),
        },
        NOW,
    );
    let s = app.status_at(NOW).unwrap();
    assert_eq!(s.level, Level::Error);
    assert_eq!(
        s.text,
        "lvs1: permission denied: read-only role: uid 1000 is neither root nor in group lvsadm"
    );
    app.apply(
        PollResult::Unreachable {
            director: 0,
            message: "lvsd is not running at /run/lvs1/lvsd.sock".into(),
            retry_in_ms: 2000,
        },
        NOW,
    );
    assert!(matches!(app.directors[0].link, Link::Down { .. }));
    assert_eq!(app.directors[0].services.len(), 2, "the last answer stays");
    assert_eq!(app.banner_count(), 1);
    // The rest keeps working.
    press(&mut app, "2j");
    assert_eq!(selected_rs(&app), Some(k(14, 80)));
    app.apply(
        PollResult::Connected {
            director: 0,
            daemon: "0.1.0".into(),
            api: 3,
            role: Some(Role::Admin),
        },
        NOW,
    );
    assert_eq!(app.banner_count(), 0);
}

#[test]
fn split_brain_is_detected_per_vrid() {
    let mut app = app(&["lvs1", "lvs2"], 80, 24);
    feed(&mut app, 0, &services(), Some(VrrpState::Master), 1);
    feed(&mut app, 1, &services(), Some(VrrpState::Backup), 1);
    assert!(app.split_brain().is_empty());
    feed(&mut app, 1, &services(), Some(VrrpState::Master), 1);
    assert_eq!(
        app.split_brain(),
        vec![(
            51,
            vec!["lvs1 (VI_1)".to_string(), "lvs2 (VI_1)".to_string()]
        )]
    );
}

#[test]
fn decisions_pause_holds_and_resume_merges() {
    let mut app = lab(80, 24);
    assert_eq!(press(&mut app, "3"), vec![Effect::PollNow]);
    assert_eq!(app.plan(0).decisions.len(), 2, "both services asked");
    assert_eq!(app.decisions.len(), 6);
    press(&mut app, "p");
    let mut d = decisions();
    for (i, x) in d.iter_mut().enumerate() {
        x.seq = 100 + i as u64;
    }
    app.apply(
        PollResult::Snapshot {
            director: 0,
            snapshot: Box::new(Snapshot {
                decisions: vec![(web(), Ok(d))],
                ..Snapshot::default()
            }),
        },
        NOW,
    );
    assert_eq!(app.decisions.len(), 6);
    assert_eq!(app.decisions_held.len(), 6);
    assert_eq!(app.plan(0).decisions[0], (web(), 105));
    press(&mut app, "p");
    assert_eq!(app.decisions.len(), 12);
    // The filter narrows by client.
    press(&mut app, "/198.51.100.11");
    assert_eq!(app.decision_rows().len(), 2);
}

#[test]
fn ctrl_c_quits_from_anywhere() {
    let mut app = lab(80, 24);
    press(&mut app, "2+");
    let effects = app.handle_key(
        KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL),
        NOW,
    );
    assert_eq!(effects, vec![Effect::Quit]);
    assert!(app.quit);
}

#[test]
fn tab_cycles_views_and_numbers_jump() {
    let mut app = lab(80, 24);
    press(&mut app, "1");
    assert_eq!(app.view, View::Topology);
    app.handle_key(code(KeyCode::Tab), NOW);
    assert_eq!(app.view, View::Services);
    app.handle_key(code(KeyCode::BackTab), NOW);
    app.handle_key(code(KeyCode::BackTab), NOW);
    assert_eq!(app.view, View::Events);
    press(&mut app, "2");
    app.handle_key(code(KeyCode::Enter), NOW);
    assert_eq!(app.detail, Some((0, web())));
    app.handle_key(code(KeyCode::Esc), NOW);
    assert_eq!(app.detail, None);
}

// ----- snapshots -----

#[test]
fn snapshot_services() {
    both("services", |w, h| {
        let mut a = lab(w, h);
        press(&mut a, "2");
        a
    });
}

#[test]
fn snapshot_services_rates_exact() {
    both("services_rates", |w, h| {
        let mut a = lab(w, h);
        press(&mut a, "2rx");
        a.status = None;
        a
    });
}

#[test]
fn snapshot_service_detail() {
    both("service_detail", |w, h| {
        let mut a = lab(w, h);
        press(&mut a, "2");
        a.handle_key(code(KeyCode::Enter), NOW);
        a
    });
}

#[test]
fn snapshot_quorum_lost_detail() {
    both("quorum_lost", |w, h| {
        let mut a = lab(w, h);
        press(&mut a, "2G");
        a.handle_key(code(KeyCode::Enter), NOW);
        a
    });
}

#[test]
fn snapshot_topology() {
    both("topology", |w, h| {
        let mut a = lab(w, h);
        press(&mut a, "1");
        a
    });
}

#[test]
fn snapshot_decisions() {
    both("decisions", |w, h| {
        let mut a = lab(w, h);
        press(&mut a, "3");
        a
    });
}

#[test]
fn snapshot_connections() {
    both("connections", |w, h| {
        let mut a = lab(w, h);
        let effects = press(&mut a, "4");
        let Some(Effect::FetchConnections { query, .. }) = effects.first().cloned() else {
            panic!("no fetch");
        };
        a.apply(
            PollResult::Page {
                director: 0,
                query: query.clone(),
                page: Ok(conn_page(&query, 1_000_000)),
            },
            NOW - 3000,
        );
        a.tick(NOW);
        a
    });
}

#[test]
fn snapshot_vrrp_split_brain() {
    both("vrrp_split_brain", |w, h| {
        let mut a = app(&["lvs1", "lvs2"], w, h);
        feed(&mut a, 0, &services(), Some(VrrpState::Master), 3);
        feed(&mut a, 1, &services(), Some(VrrpState::Master), 3);
        press(&mut a, "5");
        a
    });
}

#[test]
fn snapshot_vrrp_none_configured() {
    both("vrrp_none", |w, h| {
        let mut a = app(&["lvs1", "lvs2"], w, h);
        feed(&mut a, 0, &services(), Some(VrrpState::Backup), 1);
        feed(&mut a, 1, &services(), None, 1);
        press(&mut a, "5");
        a
    });
}

#[test]
fn snapshot_events() {
    both("events", |w, h| {
        let mut a = lab(w, h);
        press(&mut a, "6");
        a
    });
}

#[test]
fn snapshot_director_unreachable() {
    both("unreachable", |w, h| {
        let mut a = app(&["lvs1", "lvs2"], w, h);
        feed(&mut a, 0, &services(), Some(VrrpState::Master), 3);
        feed(&mut a, 1, &services(), Some(VrrpState::Backup), 3);
        a.apply(
            PollResult::Unreachable {
                director: 1,
                message: "connection lost: the connection to the server was already shutdown"
                    .into(),
                retry_in_ms: 4000,
            },
            NOW,
        );
        press(&mut a, "2");
        a
    });
}

#[test]
fn snapshot_help() {
    both("help", |w, h| {
        let mut a = lab(w, h);
        press(&mut a, "2?");
        a
    });
}

#[test]
fn snapshot_confirm_weight() {
    both("confirm_weight", |w, h| {
        let mut a = lab(w, h);
        press(&mut a, "2+");
        a
    });
}

#[test]
fn snapshot_weight_out_of_range() {
    both("weight_out_of_range", |w, h| {
        let mut a = lab(w, h);
        press(&mut a, "2w70000");
        a.handle_key(code(KeyCode::Enter), NOW);
        a
    });
}

#[test]
fn snapshot_confirm_drain() {
    both("confirm_drain", |w, h| {
        let mut a = lab(w, h);
        press(&mut a, "2d");
        a
    });
}

#[test]
fn snapshot_drain_progress() {
    both("drain_progress", |w, h| {
        let mut a = lab(w, h);
        press(&mut a, "2jj");
        // 192.0.2.13 is drained already: `d` shows the progress.
        press(&mut a, "d");
        a.apply(
            PollResult::Snapshot {
                director: 0,
                snapshot: Box::new(Snapshot {
                    drains: vec![(
                        web(),
                        k(13, 80),
                        Ok(DrainInfo {
                            service: web(),
                            real_server: k(13, 80),
                            weight_before: 1,
                            active: 9,
                            inactive: 3,
                            persistent: 1,
                            connections_left: 12,
                        }),
                    )],
                    ..Snapshot::default()
                }),
            },
            NOW,
        );
        a
    });
}

#[test]
fn snapshot_confirm_kill() {
    both("confirm_kill", |w, h| {
        let mut a = lab(w, h);
        let effects = press(&mut a, "4");
        let Some(Effect::FetchConnections { query, .. }) = effects.first().cloned() else {
            panic!("no fetch");
        };
        a.apply(
            PollResult::Page {
                director: 0,
                query: query.clone(),
                page: Ok(conn_page(&query, 1_000_000)),
            },
            NOW,
        );
        press(&mut a, "jK");
        a
    });
}

#[test]
fn snapshot_readonly_refusal() {
    both("readonly", |w, h| {
        let mut a = lab(w, h);
        a.readonly = true;
        press(&mut a, "2d");
        a
    });
}

// ----- themes and keymap -----

fn colours(app: &App) -> Vec<ratatui::style::Color> {
    let (w, h) = app.size;
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| ui::draw(f, app)).unwrap();
    let buf = term.backend().buffer();
    buf.content().iter().flat_map(|c| [c.fg, c.bg]).collect()
}

#[test]
fn mono_has_no_colour_and_16_only_ansi_colours() {
    use lvs_tui::console::theme::{Theme, ThemeName};
    use ratatui::style::Color;
    for view in ["1", "2", "5", "2+"] {
        let mut a = app(&["lvs1", "lvs2"], 100, 30);
        feed(&mut a, 0, &services(), Some(VrrpState::Master), 3);
        feed(&mut a, 1, &services(), Some(VrrpState::Master), 3);
        a.theme = Theme::new(ThemeName::Mono);
        press(&mut a, view);
        let bad: Vec<Color> = colours(&a)
            .into_iter()
            .filter(|c| *c != Color::Reset)
            .collect();
        assert!(bad.is_empty(), "mono view {view} uses {bad:?}");
        a.theme = Theme::new(ThemeName::Sixteen);
        let bad: Vec<Color> = colours(&a)
            .into_iter()
            .filter(|c| matches!(c, Color::Indexed(_) | Color::Rgb(..)))
            .collect();
        assert!(bad.is_empty(), "16-colour view {view} uses {bad:?}");
    }
}

#[test]
fn help_follows_the_keymap_overrides() {
    use lvs_tui::console::keymap::Keymap;
    let mut a = lab(100, 60);
    a.keymap =
        Keymap::with_overrides([("drain", vec!["D"]), ("weight_up", vec!["ctrl-u"])]).unwrap();
    press(&mut a, "?");
    let screen = render(&a);
    let line = |name: &str| {
        screen
            .lines()
            .find(|l| {
                l.trim_end()
                    .trim_end_matches('│')
                    .trim_end()
                    .ends_with(name)
            })
            .unwrap_or_else(|| panic!("no help line for {name}:\n{screen}"))
            .to_string()
    };
    assert!(line(" drain").contains("│  D "), "{}", line(" drain"));
    assert!(
        line("weight_up").contains("Ctrl-u"),
        "{}",
        line("weight_up")
    );
    // Ctrl-u left page_up.
    assert!(!line("page_up").contains("Ctrl-u"), "{}", line("page_up"));
    // And the keys do what the help says.
    a.handle_key(code(KeyCode::Esc), NOW);
    press(&mut a, "2d");
    assert_eq!(a.mode, Mode::Normal);
    a.handle_key(KeyEvent::new(KeyCode::Char('D'), KeyModifiers::SHIFT), NOW);
    assert!(matches!(a.mode, Mode::Dialog(Dialog::Drain { .. })));
}

#[test]
fn rate_history_is_bounded_and_forgets_removed_servers() {
    let mut a = lab(80, 24);
    feed(&mut a, 0, &services(), Some(VrrpState::Master), 200);
    let ring = a.history.get(&(0, web(), k(11, 80))).map_or(0, |h| h.len());
    assert_eq!(ring, lvs_tui::console::app::HISTORY);
    // A reconfiguration to 100 other servers, then back: the old rings go.
    let other = big_services(1, 100);
    feed(&mut a, 0, &other, None, 1);
    feed(&mut a, 0, &services(), None, 1);
    assert!(a.history.len() <= 6 + 64, "{} rings kept", a.history.len());
}

#[test]
fn tunnelled_real_servers_show_tunnel_aligned() {
    // The fixtures with every real server of the first service tunnelled.
    let mut svcs = services();
    let dr_before: Vec<IpAddr> = svcs
        .iter()
        .flat_map(|s| &s.real_servers)
        .filter(|r| r.forwarding == Forwarding::Dr)
        .map(|r| r.addr)
        .collect();
    assert!(!dr_before.is_empty(), "the fixtures have a DR server");
    for r in &mut svcs[0].real_servers {
        r.forwarding = Forwarding::Tun;
    }
    let tun: Vec<IpAddr> = svcs[0].real_servers.iter().map(|r| r.addr).collect();
    for (w, h) in [(80, 24), (200, 50)] {
        let mut app = app(&["lvs1"], w, h);
        feed(&mut app, 0, &svcs, Some(VrrpState::Master), 3);
        press(&mut app, "1");
        let screen = render(&app);
        let column = |addr: IpAddr| {
            screen.lines().find_map(|l| {
                let at = l.find(&format!("{addr}:"))?;
                Some(l[..at].chars().count())
            })
        };
        let first_tun = column(tun[0]).unwrap_or_else(|| panic!("{screen}"));
        assert!(screen.contains("Tunnel"), "{screen}");
        assert!(screen.contains("IPIP"), "{screen}");
        // Addresses start in the same column whatever the method.
        for addr in tun.iter().chain(&dr_before) {
            if let Some(c) = column(*addr) {
                assert_eq!(c, first_tun, "{addr} misaligned:\n{screen}");
            }
        }
        press(&mut app, "2");
        let screen = render(&app);
        // ipvsadm's word in every layout, the narrow one included.
        assert!(screen.contains("Tunnel"), "{w}x{h}:\n{screen}");
        assert!(!screen.contains("Tun "), "{w}x{h}:\n{screen}");
        // And the detail view.
        app.handle_key(code(KeyCode::Enter), NOW);
        let screen = render(&app);
        assert!(screen.contains("  -> 192.0.2.11:80"), "{w}x{h}:\n{screen}");
        assert!(screen.contains(" Tunnel "), "{w}x{h}:\n{screen}");
    }
}

// ----- IPv6 -----

/// One director with the IPv4 fixture services and the IPv6 one (NAT66, lab addresses).
fn lab_dual(w: u16, h: u16) -> App {
    let mut app = app(&["lvs1"], w, h);
    feed(&mut app, 0, &services_dual(), Some(VrrpState::Master), 12);
    app
}

#[test]
fn snapshot_ipv6_services() {
    both("ipv6_services", |w, h| {
        let mut a = lab_dual(w, h);
        press(&mut a, "2");
        a
    });
}

#[test]
fn snapshot_ipv6_service_detail() {
    both("ipv6_service_detail", |w, h| {
        let mut a = lab_dual(w, h);
        press(&mut a, "2G");
        a.handle_key(code(KeyCode::Enter), NOW);
        a
    });
}

#[test]
fn snapshot_ipv6_topology() {
    both("ipv6_topology", |w, h| {
        let mut a = lab_dual(w, h);
        press(&mut a, "1");
        a
    });
}

#[test]
fn snapshot_ipv6_decisions() {
    both("ipv6_decisions", |w, h| {
        let mut a = lab_dual(w, h);
        press(&mut a, "3");
        a
    });
}

#[test]
fn snapshot_ipv6_vrrp() {
    both("ipv6_vrrp", |w, h| {
        let mut a = lab_dual(w, h);
        press(&mut a, "5");
        a
    });
}

/// The Connections view showing a page of IPv6 entries.
fn ipv6_connections(w: u16, h: u16) -> App {
    let mut a = lab_dual(w, h);
    let effects = press(&mut a, "4");
    let Some(Effect::FetchConnections { query, .. }) = effects.first().cloned() else {
        panic!("no fetch");
    };
    a.apply(
        PollResult::Page {
            director: 0,
            query: query.clone(),
            page: Ok(conn_page6(&query, 1_000_000)),
        },
        NOW - 3000,
    );
    a.tick(NOW);
    a
}

#[test]
fn snapshot_ipv6_connections() {
    both("ipv6_connections", ipv6_connections);
}

#[test]
fn ipv6_addresses_are_never_cut_at_the_port() {
    for (w, h) in [(80, 24), (200, 50)] {
        let mut a = lab_dual(w, h);
        press(&mut a, "2");
        let screen = render(&a);
        for text in [
            "TCP  [2001:db8:f::10]:80",
            "  -> [2001:db8:b::11]:80",
            "  -> [2001:db8:b::13]:80",
        ] {
            assert!(screen.contains(text), "{w}x{h} lacks {text}:\n{screen}");
        }
        // IPv4 rows keep their place: the address column only widened.
        assert!(screen.contains("  -> 192.0.2.11:80"), "{screen}");
        let a = ipv6_connections(w, h);
        let screen = render(&a);
        // Every row shows the service's port and a real server's, complete.
        let rows: Vec<&str> = screen.lines().filter(|l| l.starts_with("TCP ")).collect();
        assert!(!rows.is_empty(), "{screen}");
        for l in rows {
            assert!(l.contains("]:80 "), "{w}x{h} virtual cut: {l}");
            assert!(
                l.trim_end().ends_with("]:80") || l.contains("]:80 (persistence template)"),
                "{w}x{h} destination cut: {l}"
            );
        }
        if w >= 100 {
            assert!(screen.contains("[2001:db8:c::11]:1025"), "{screen}");
        }
        let mut a = lab_dual(w, h);
        press(&mut a, "1");
        let screen = render(&a);
        assert!(screen.contains("2001:db8:f::10"), "{screen}");
        assert!(screen.contains("[2001:db8:b::12]:80"), "{screen}");
        assert!(screen.contains("2001:db8:b::1"), "the DIP:\n{screen}");
        assert!(screen.contains("IP6IP6 →  [2001:db8:b::13]:80"), "{screen}");
        assert!(screen.contains("6in4 →    192.0.2.15:80"), "{screen}");
    }
}

#[test]
fn ipv6_connection_filters_and_kills() {
    let mut app = lab_dual(80, 24);
    press(&mut app, "4/2001:db8:c::/64 [2001:db8:f::10]:80");
    let effects = app.handle_key(code(KeyCode::Enter), NOW);
    let Some(Effect::FetchConnections { query, .. }) = effects.first() else {
        panic!("no fetch: {effects:?}");
    };
    assert_eq!(
        query.client_prefix,
        Some("2001:db8:c::/64".parse::<IpPrefix>().unwrap())
    );
    assert_eq!(query.service, Some(web6()));
    // A bare IPv6 address is a client (a /128), not a service.
    press(&mut app, "/");
    for _ in 0..60 {
        app.handle_key(code(KeyCode::Backspace), NOW);
    }
    press(&mut app, "2001:db8:c::10 udp [2001:db8:f::10]:53");
    let effects = app.handle_key(code(KeyCode::Enter), NOW);
    let Some(Effect::FetchConnections { query, .. }) = effects.first() else {
        panic!("no fetch: {effects:?}");
    };
    assert_eq!(query.client_prefix.map(|p| p.len), Some(128));
    assert_eq!(query.service, Some(ServiceKey::udp(vip6(), 53)));

    let mut app = ipv6_connections(80, 24);
    // Entry 0 is a persistence template: its client is the masked /64.
    press(&mut app, "K");
    assert_eq!(
        press(&mut app, "y"),
        vec![Effect::Call {
            director: 0,
            call: Call::KillTemplate(TemplateKey {
                service: web6(),
                client: "2001:db8:c::".parse().unwrap(),
            })
        }]
    );
    press(&mut app, "jK");
    let e = conn_entry6(1);
    assert_eq!(
        press(&mut app, "y"),
        vec![Effect::Call {
            director: 0,
            call: Call::KillConnection(ConnKey {
                protocol: Protocol::Tcp,
                client: e.client,
                virt: e.virt
            })
        }]
    );
}

#[test]
fn ipv6_service_jump_and_weight_edit() {
    let mut app = lab_dual(80, 24);
    press(&mut app, "2:vs [2001:db8:f::10]:80");
    app.handle_key(code(KeyCode::Enter), NOW);
    let (t, _) = app.selected_real_server().unwrap();
    assert_eq!(t.service, web6());
    let rs1 = RealServerKey::new(rip6(11), 80);
    for _ in 0..4 {
        if selected_rs(&app) == Some(rs1) {
            break;
        }
        press(&mut app, "j");
    }
    assert_eq!(selected_rs(&app), Some(rs1));
    press(&mut app, "+");
    assert!(matches!(
        app.mode,
        Mode::Dialog(Dialog::Weight { old: 3, new: 4, .. })
    ));
    assert_eq!(
        press(&mut app, "y"),
        vec![Effect::Call {
            director: 0,
            call: Call::SetWeight {
                service: web6(),
                real_server: rs1,
                weight: 4
            }
        }]
    );
    // An IPv6 address without brackets is refused with the reason.
    press(&mut app, ":vs 2001:db8:f::10:80");
    app.handle_key(code(KeyCode::Enter), NOW);
    let status = app.status_at(NOW).unwrap();
    assert_eq!(status.level, Level::Error);
    assert!(status.text.contains("brackets"), "{}", status.text);
}
