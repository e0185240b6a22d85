//! Console benchmark: a large fake director (100 services x 100 real servers = 10,000
//! real servers; a connection table of 1,000,000 entries, paged as the API pages it, so
//! the console holds one page) at 200x50.
//!
//! `cargo bench -p lvs-tui --bench console` measures:
//! - `render/<view>`: one frame of each view (`ui::draw` into ratatui's `TestBackend`,
//!   buffer diff included), and `render_80x24/services`;
//! - `key_to_redraw/<key>`: `App::handle_key` and the next frame: `j` in Services, `+`
//!   opening the weight dialog (then `n`), Tab through the views, and PgDn in Connections
//!   (the next page is answered by the fake table and applied before the frame);
//! - `apply_poll/10k`: taking in one poll of the 10,000 servers (rows rebuilt, rate
//!   history updated), which a tick costs besides drawing.
//!
//! Targets (issue #5): under 16 ms per frame, under 50 ms key-to-redraw. Numbers in
//! docs/benchmarks.md.

// Fixture setup, not network input: a failed setup should stop the benchmark loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/console_fixtures.rs"]
mod fixtures;

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use fixtures::*;
use lvs_proto::{Event, EventKind, VrrpState};
use lvs_tui::console::app::{App, Effect, PollResult, Snapshot, View};
use lvs_tui::console::ui;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const TABLE: u64 = 1_000_000;

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

/// Answers the app's page requests from the fake table.
fn serve(app: &mut App, effects: Vec<Effect>) {
    for e in effects {
        if let Effect::FetchConnections { director, query } = e {
            let page = conn_page(&query, TABLE);
            app.apply(
                PollResult::Page {
                    director,
                    query,
                    page: Ok(page),
                },
                NOW,
            );
        }
    }
}

fn big_app(cols: u16, rows: u16) -> App {
    let mut app = app(&["lvs1"], cols, rows);
    // 30 polls: 60 s of rate history per server.
    feed(
        &mut app,
        0,
        &big_services(100, 100),
        Some(VrrpState::Master),
        30,
    );
    // A full decision ring and a full event ring.
    let sample = fixtures::decisions();
    let mut ring = Vec::new();
    for i in 0..2000u64 {
        let mut d = sample[(i % 6) as usize].clone();
        d.seq = 1000 + i;
        ring.push(d);
    }
    let events: Vec<Event> = (0..1024u64)
        .map(|i| Event {
            seq: 100 + i,
            at_unix_ms: NOW - 1_024_000 + i * 1000,
            kind: EventKind::Reloaded {
                ok: true,
                message: format!("reload {i}"),
            },
        })
        .collect();
    app.apply(
        PollResult::Snapshot {
            director: 0,
            snapshot: Box::new(Snapshot {
                decisions: vec![(web(), Ok(ring))],
                events: Some(Ok(events)),
                ..Snapshot::default()
            }),
        },
        NOW,
    );
    // The first page of the connection table.
    let effects = app.handle_key(KeyEvent::new(KeyCode::Char('4'), KeyModifiers::NONE), NOW);
    serve(&mut app, effects);
    app.handle_key(KeyEvent::new(KeyCode::Char('2'), KeyModifiers::NONE), NOW);
    app
}

fn bench(c: &mut Criterion) {
    let mut app = big_app(200, 50);
    let held = app.conns.page.as_ref().map_or(0, |p| p.entries.len());
    assert!(held <= 50, "the console holds one page, not {held} entries");
    let mut term = Terminal::new(TestBackend::new(200, 50)).unwrap();

    let mut render = c.benchmark_group("render");
    for view in View::ALL {
        app.view = view;
        render.bench_function(view.title(), |b| {
            b.iter(|| term.draw(|f| ui::draw(f, black_box(&app))).map(|_| ()))
        });
    }
    app.view = View::Services;
    app.handle_key(key(KeyCode::Enter), NOW);
    render.bench_function("Service detail", |b| {
        b.iter(|| term.draw(|f| ui::draw(f, black_box(&app))).map(|_| ()))
    });
    app.handle_key(key(KeyCode::Esc), NOW);
    render.finish();

    let small = big_app(80, 24);
    let mut small_term = Terminal::new(TestBackend::new(80, 24)).unwrap();
    c.bench_function("render_80x24/services", |b| {
        b.iter(|| {
            small_term
                .draw(|f| ui::draw(f, black_box(&small)))
                .map(|_| ())
        })
    });

    let mut k2r = c.benchmark_group("key_to_redraw");
    app.view = View::Services;
    k2r.bench_function("j (Services)", |b| {
        let mut n = 0u32;
        b.iter(|| {
            // Down to the bottom of 10,100 rows, then back to the top.
            n += 1;
            let k = if n % 5000 == 0 {
                key(KeyCode::Char('g'))
            } else {
                key(KeyCode::Char('j'))
            };
            let effects = app.handle_key(k, NOW);
            term.draw(|f| ui::draw(f, &app)).map(|_| effects)
        })
    });
    k2r.bench_function("+ dialog (Services)", |b| {
        b.iter(|| {
            let a = app.handle_key(key(KeyCode::Char('+')), NOW);
            term.draw(|f| ui::draw(f, &app)).unwrap();
            let b = app.handle_key(key(KeyCode::Char('n')), NOW);
            term.draw(|f| ui::draw(f, &app)).map(|_| (a, b))
        })
    });
    k2r.bench_function("Tab (all views)", |b| {
        b.iter(|| {
            let effects = app.handle_key(key(KeyCode::Tab), NOW);
            serve(&mut app, effects);
            term.draw(|f| ui::draw(f, &app)).map(|_| ())
        })
    });
    app.view = View::Connections;
    k2r.bench_function("PgDn (Connections, 1M table)", |b| {
        b.iter(|| {
            let last = app
                .conns
                .page
                .as_ref()
                .is_some_and(|p| p.next_cursor.is_none());
            let k = if last {
                key(KeyCode::Char('g'))
            } else {
                key(KeyCode::PageDown)
            };
            let effects = app.handle_key(k, NOW);
            serve(&mut app, effects);
            term.draw(|f| ui::draw(f, &app)).map(|_| ())
        })
    });
    k2r.finish();

    let services = big_services(100, 100);
    c.bench_function("apply_poll/10k", |b| {
        b.iter_batched(
            || Snapshot {
                services: Some(Ok(services.clone())),
                ..Snapshot::default()
            },
            |snapshot| {
                app.apply(
                    PollResult::Snapshot {
                        director: 0,
                        snapshot: Box::new(snapshot),
                    },
                    NOW,
                )
            },
            BatchSize::LargeInput,
        )
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
