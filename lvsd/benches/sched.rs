//! ns per scheduling decision, for every scheduler, at 10, 100 and 1 000 real servers with
//! realistic connection counts (issue #3's benchmark; target ≤ 100 ns median at 1 000).
//!
//! Each iteration is one decision plus the bookkeeping a real director does around it: the
//! pick gains an active connection, and the oldest open connection closes (a FIFO of the
//! open connections, seeded with the fixture's), so the load stays steady, every server's
//! count follows what the scheduler sends it, and load-aware schedulers keep moving instead
//! of repeating one cached answer. Both count changes are announced to the scheduler with
//! [`Scheduler::dest_changed`], as the dataplane does, so the cost of keeping an index in
//! sync is inside the measured time.
//! Weights are 1..=100 (a few quiesced at 0, a few OVERLOAD), active connections around
//! 8 × weight and inactive ones around 3 × active, all from a fixed seed. For ovf, lblc and
//! lblcr, whose weight is a capacity in active connections (ovf overflows past it, lblc
//! calls a server overloaded past it), the servers start within it instead (active in
//! 0..=weight, a cluster about half full).
//!
//! Flows vary: 4 096 pre-generated flows from 4 096 clients (random addresses in
//! 198.18.0.0/15, random ports) to 1 024 destination addresses in 10.200.0.0/16 (the
//! cache-cluster addresses dh, lblc and lblcr key on), taken in turn. So sh and mh hash a
//! different client each time, dh a different destination, and lblc/lblcr run with a warm
//! cache of 1 024 entries (hits, as in steady state).
//!
//! Run with `cargo bench -p lvsd --bench sched` (never part of `cargo test`); medians are in
//! `target/criterion/sched_<kind>/<n>/new/estimates.json`.

use std::collections::VecDeque;
use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use lvs_proto::{Protocol, SchedulerKind};
use lvsd::sched::{Dest, Flow, SchedFlags, SchedParams, Scheduler, new_scheduler};

const SIZES: &[usize] = &[10, 100, 1000];

/// Distinct flows cycled through.
const FLOWS: usize = 4096;
/// Distinct packet destination addresses among them.
const DSTS: u32 = 1024;
/// Passes over the flows before measuring.
const WARM_ROUNDS: usize = 4;
/// Passes over the flows before measuring [`bench_spill`]: enough for the spill regime.
const SPILL_WARM_ROUNDS: usize = 30;

/// A small deterministic generator for the fixture (SplitMix64).
struct Gen(u64);

impl Gen {
    fn next(&mut self, n: u32) -> u32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        u32::try_from((z ^ (z >> 31)) % u64::from(n)).unwrap_or(0)
    }
}

/// `n` real servers in 10.0.0.0/16, port 80, with the loads described in the module doc.
fn servers(n: usize, kind: SchedulerKind) -> Vec<Dest> {
    let mut g = Gen(0x1b5_2026);
    (0..n)
        .map(|i| {
            let weight = match g.next(50) {
                0 => 0,
                _ => 1 + g.next(100),
            };
            let active = match kind {
                SchedulerKind::Ovf | SchedulerKind::Lblc | SchedulerKind::Lblcr => {
                    g.next(weight + 1)
                }
                _ => weight * 8 + g.next(weight * 4 + 1),
            };
            let inactive = active * 3 + g.next(active + 1);
            let [_, _, hi, lo] = u32::try_from(i).unwrap_or(0).to_be_bytes();
            Dest {
                addr: Ipv4Addr::new(10, 0, hi, lo).into(),
                port: 80,
                weight,
                last_weight: weight.max(1),
                active,
                inactive,
                persistent: 0,
                overloaded: g.next(40) == 0,
            }
        })
        .collect()
}

/// The flows of the module doc.
fn flows() -> Vec<Flow> {
    let mut g = Gen(0xf10_2026);
    (0..FLOWS)
        .map(|_| {
            let client = Ipv4Addr::from(0xC612_0000 | g.next(1 << 17));
            let dst = Ipv4Addr::from(0x0AC8_0000 | g.next(DSTS));
            Flow {
                protocol: Protocol::Tcp,
                src: SocketAddrV4::new(client, 1024 + u16::try_from(g.next(60000)).unwrap_or(0))
                    .into(),
                dst: SocketAddrV4::new(dst, 80).into(),
            }
        })
        .collect()
}

/// The open connections, oldest first, as destination indexes: the fixture's active
/// connections, interleaved over the servers.
fn open_conns(dests: &[Dest]) -> VecDeque<u32> {
    let mut open = VecDeque::new();
    let most = dests.iter().map(|d| d.active).max().unwrap_or(0);
    for k in 0..most {
        for (i, d) in dests.iter().enumerate() {
            if d.active > k {
                open.push_back(u32::try_from(i).unwrap_or(0));
            }
        }
    }
    open
}

/// One decision and its bookkeeping (module doc).
fn step(
    s: &mut dyn Scheduler,
    now: Instant,
    dests: &mut [Dest],
    flow: &Flow,
    open: &mut VecDeque<u32>,
) -> Option<usize> {
    let pick = s.schedule(now, black_box(dests), flow, None);
    if let Some(i) = pick {
        dests[i].active += 1;
        s.dest_changed(dests, i);
        open.push_back(u32::try_from(i).unwrap_or(0));
    }
    // The oldest open connection closes.
    if let Some(c) = open.pop_front() {
        let c = c as usize;
        dests[c].active = dests[c].active.saturating_sub(1);
        s.dest_changed(dests, c);
    }
    pick
}

fn bench(c: &mut Criterion) {
    let now = Instant::now();
    let flows = flows();
    for &kind in SchedulerKind::ALL {
        // sh and mh with fallback (the usual production setting: a quiesced or overloaded
        // bucket owner does not drop the client) and the port mixed in.
        let flags = match kind {
            SchedulerKind::Sh | SchedulerKind::Mh => SchedFlags {
                flag1: true,
                flag2: true,
                flag3: false,
            },
            _ => SchedFlags::NONE,
        };
        let params = SchedParams {
            seed: 0x5eed,
            flags,
            ..SchedParams::default()
        };
        let mut group = c.benchmark_group(format!("sched_{kind}"));
        for &n in SIZES {
            let mut dests = servers(n, kind);
            let mut open = open_conns(&dests);
            let mut s = new_scheduler(kind, &params, &dests, now);
            let mut f = 0usize;
            // Warm up: the lblc/lblcr caches fill and every count reaches its steady state.
            for _ in 0..WARM_ROUNDS {
                for flow in &flows {
                    step(s.as_mut(), now, &mut dests, flow, &mut open);
                }
            }
            group.bench_function(BenchmarkId::from_parameter(n), |b| {
                b.iter(|| {
                    f = (f + 1) % FLOWS;
                    let pick = step(s.as_mut(), now, &mut dests, &flows[f], &mut open);
                    black_box(pick)
                });
            });
        }
        group.finish();
    }
}

/// lblc and lblcr past capacity: the usual loads (active around 8 × weight), so every
/// server is over its weight, some drain below half of theirs, and lookups keep spilling
/// to the wlc pass (lblc) or growing their sets (lblcr). After a long warm-up, 1 000
/// servers only. The regime where the kernel scans the list on every decision.
fn bench_spill(c: &mut Criterion) {
    let now = Instant::now();
    let flows = flows();
    let mut group = c.benchmark_group("sched_spill");
    for kind in [SchedulerKind::Lblc, SchedulerKind::Lblcr] {
        let n = 1000;
        let mut dests = servers(n, SchedulerKind::Wlc);
        let mut open = open_conns(&dests);
        let mut s = new_scheduler(kind, &SchedParams::default(), &dests, now);
        let mut f = 0usize;
        for _ in 0..SPILL_WARM_ROUNDS {
            for flow in &flows {
                step(s.as_mut(), now, &mut dests, flow, &mut open);
            }
        }
        group.bench_function(BenchmarkId::new(kind.name(), n), |b| {
            b.iter(|| {
                f = (f + 1) % FLOWS;
                let pick = step(s.as_mut(), now, &mut dests, &flows[f], &mut open);
                black_box(pick)
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench, bench_spill);
criterion_main!(benches);
