//! ns per scheduling decision, for every connection-count scheduler, at 10, 100 and 1 000
//! real servers with realistic connection counts (issue #3's benchmark; target ≤ 100 ns
//! median at 1 000).
//!
//! Each iteration is one decision plus the bookkeeping a real director does around it: the
//! pick gains an active connection, and one connection elsewhere closes, so the load stays
//! steady and load-aware schedulers keep moving instead of repeating one cached answer.
//! Weights are 1..=100 (a few quiesced at 0, a few OVERLOAD), active connections around
//! 8 × weight and inactive ones around 3 × active, all from a fixed seed.
//!
//! Run with `cargo bench -p lvsd --bench sched` (never part of `cargo test`).

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use lvs_proto::{Protocol, SchedulerKind};
use lvsd::sched::{Dest, Flow, SchedParams, new_scheduler};

/// Connection-count schedulers (the hashing and locality ones have their own benches).
const KINDS: &[SchedulerKind] = &[
    SchedulerKind::Rr,
    SchedulerKind::Wrr,
    SchedulerKind::Lc,
    SchedulerKind::Wlc,
    SchedulerKind::Sed,
    SchedulerKind::Nq,
    SchedulerKind::Fo,
    SchedulerKind::Ovf,
    SchedulerKind::Twos,
];

const SIZES: &[usize] = &[10, 100, 1000];

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
/// For ovf, whose weight is a capacity in active connections, the servers start within it
/// (active in 0..=weight), so it picks instead of scanning a list that is all full.
fn servers(n: usize, kind: SchedulerKind) -> Vec<Dest> {
    let mut g = Gen(0x1b5_2026);
    (0..n)
        .map(|i| {
            let weight = match g.next(50) {
                0 => 0,
                _ => 1 + g.next(100),
            };
            let active = match kind {
                SchedulerKind::Ovf => g.next(weight + 1),
                _ => weight * 8 + g.next(weight * 4 + 1),
            };
            let inactive = active * 3 + g.next(active + 1);
            let [_, _, hi, lo] = u32::try_from(i).unwrap_or(0).to_be_bytes();
            Dest {
                addr: Ipv4Addr::new(10, 0, hi, lo),
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

fn bench(c: &mut Criterion) {
    let now = Instant::now();
    let flow = Flow {
        protocol: Protocol::Tcp,
        src: SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 7), 40000),
        dst: SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 80),
    };
    let params = SchedParams {
        seed: 0x5eed,
        ..SchedParams::default()
    };
    for &kind in KINDS {
        let mut group = c.benchmark_group(format!("sched/{kind}"));
        for &n in SIZES {
            let mut dests = servers(n, kind);
            let mut s = new_scheduler(kind, &params, &dests, now);
            let mut closer = 0usize;
            group.bench_function(BenchmarkId::from_parameter(n), |b| {
                b.iter(|| {
                    let pick = s.schedule(now, black_box(&dests), &flow, None);
                    if let Some(i) = pick {
                        dests[i].active += 1;
                    }
                    // One connection closes somewhere, round robin over the servers.
                    closer = (closer + 1) % n;
                    let d = &mut dests[closer];
                    d.active = d.active.saturating_sub(1);
                    black_box(pick)
                });
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
