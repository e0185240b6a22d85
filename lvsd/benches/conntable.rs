//! Connection-table benchmark (issue 9): memory per entry and lookup cost at 1 000,
//! 100 000 and 1 000 000 entries.
//!
//! `cargo bench -p lvsd --bench conntable` (plain harness; `LVSD_BENCH_SIZES=1000,100000`
//! to choose sizes, `LVSD_BENCH_LOOKUPS` lookups per round, default 2 000 000,
//! `LVSD_BENCH_FAMILIES=4` or `6` for one address family, default both).
//!
//! For each size N, each address family and each forwarding method (NAT keeps two map keys
//! per entry, DR one), a fresh [`ConnTable`] gets N TCP entries (distinct clients in
//! 198.18.0.0/15 or 2001:db8:c:1::/64, one VIP, three real servers), inserted in random
//! order. Reported:
//! - **bytes per entry**: heap bytes live after the inserts minus before, over N, counted by
//!   a wrapping global allocator (slab chunks, the key index with its spare capacity, the
//!   expiry wheel's records) — what a director pays, not `size_of` alone; checked against
//!   the table's own `heap_bytes`; and the peak during the inserts (an index doubling holds
//!   old and new buckets at once);
//! - **insert**: ns per `insert` + first `on_packet` (a SYN), as the dataplane does;
//! - **lookup hit**: ns per `find_inbound` + `get` of a present flow, keys in random order
//!   (median of 5 rounds);
//! - **lookup miss**: ns per `find_inbound` of an absent flow (the first packet of a new
//!   connection), median of 5 rounds;
//! - **reply hit** (NAT only): ns per `find_reply` + `get` of a present flow's reply
//!   5-tuple (a real server's packet), median of 5 rounds;
//! - **worst insert**: the longest single `insert` while filling a second table the same
//!   way (the pause of the largest growth step).
//!
//! Invariant: the allocator only counts and forwards to the system allocator; nothing else
//! here is unsafe.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lvs_proto::{Forwarding, Protocol};
use lvsd::conn::table::{Conn, ConnTable, FlowKey, NewConn};
use lvsd::conn::{ConnAddr, Direction, TcpFlags, Timeouts};

/// Counts live and peak heap bytes, and forwards everything to [`System`].
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so
// `System`'s guarantees hold; the counters are plain atomics with no effect on memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is (see the impl's comment).
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            let live = LIVE.fetch_add(new_size, Ordering::Relaxed) + new_size;
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];

/// A family's bench addresses.
trait Fam: ConnAddr {
    /// The table's column.
    const NAME: &'static str;
    const VIP: Self;
    /// Client address `n`.
    fn client_addr(n: u32) -> Self;
    /// Real server `k` (0..3).
    fn rs(k: u32) -> Self;
}

impl Fam for Ipv4Addr {
    const NAME: &'static str = "IPv4";
    const VIP: Self = Ipv4Addr::new(203, 0, 113, 10);
    fn client_addr(n: u32) -> Self {
        Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + n)
    }
    fn rs(k: u32) -> Self {
        Ipv4Addr::new(192, 0, 2, 11 + k as u8)
    }
}

impl Fam for Ipv6Addr {
    const NAME: &'static str = "IPv6";
    const VIP: Self = Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 0x10);
    fn client_addr(n: u32) -> Self {
        Ipv6Addr::new(0x2001, 0xdb8, 0xc, 1, 0, 0, (n >> 16) as u16, n as u16)
    }
    fn rs(k: u32) -> Self {
        Ipv6Addr::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, 0x11 + k as u16)
    }
}

/// xorshift64*: a fixed-seed generator for the shuffles.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

/// Client `i`: 198.18.0.0/15 (or 2001:db8:c:1::/64) with 16 384 ports per address
/// (distinct for i < 2^31).
fn client<A: Fam>(i: u32) -> (A, u16) {
    (A::client_addr(i >> 14), 1024 + (i & 0x3fff) as u16)
}

fn new_conn<A: Fam>(i: u32, forwarding: Forwarding) -> NewConn<A> {
    NewConn {
        protocol: Protocol::Tcp,
        forwarding,
        client: client(i),
        virt: (A::VIP, 80),
        real: (A::rs(i % 3), 80),
        service: 0,
        dest: i % 3,
        client_mac: MAC,
        in_ifindex: 2,
    }
}

fn reply_key<A: Fam>(i: u32) -> FlowKey<A> {
    let (dst, dst_port) = client(i);
    FlowKey {
        protocol: Protocol::Tcp,
        src: A::rs(i % 3),
        src_port: 80,
        dst,
        dst_port,
    }
}

fn key<A: Fam>(i: u32) -> FlowKey<A> {
    let (src, src_port) = client(i);
    FlowKey {
        protocol: Protocol::Tcp,
        src,
        src_port,
        dst: A::VIP,
        dst_port: 80,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

struct Row {
    n: u32,
    family: &'static str,
    forwarding: Forwarding,
    bytes_per_entry: f64,
    peak_per_entry: f64,
    insert_ns: f64,
    hit_ns: f64,
    miss_ns: f64,
    reply_ns: Option<f64>,
    worst_insert_us: f64,
}

fn measure<A: Fam>(n: u32, forwarding: Forwarding, lookups: usize, rng: &mut Rng) -> Row {
    let timeouts = Timeouts::default();
    let mut order: Vec<u32> = (0..n).collect();
    rng.shuffle(&mut order);
    let syn = TcpFlags {
        syn: true,
        fin: false,
        ack: false,
        rst: false,
    };
    let epoch = Instant::now();

    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let mut table = ConnTable::<A>::new(epoch);
    let started = Instant::now();
    for &i in &order {
        let id = table.insert(new_conn(i, forwarding), epoch, &timeouts);
        black_box(table.on_packet(id, epoch, &timeouts, Direction::Input, Some(syn)));
    }
    let insert_ns = started.elapsed().as_nanos() as f64 / f64::from(n);
    let after = LIVE.load(Ordering::Relaxed);
    let peak = PEAK.load(Ordering::Relaxed);
    assert_eq!(table.len(), n as usize);
    // The table's own count is the allocator's (the test `memory_per_entry_at_1m` bounds it).
    assert_eq!(table.heap_bytes(), after.saturating_sub(before));

    // Lookup keys in an order of their own, repeated to `lookups`.
    let mut probe: Vec<FlowKey<A>> = order.iter().map(|&i| key(i)).collect();
    rng.shuffle(&mut probe);
    let absent: Vec<FlowKey<A>> = (0..n.min(1 << 20)).map(|i| key(i + n)).collect();
    let mut replies: Vec<FlowKey<A>> = order.iter().map(|&i| reply_key(i)).collect();
    rng.shuffle(&mut replies);
    let mut hits = Vec::new();
    let mut misses = Vec::new();
    let mut reply_hits = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let mut found = 0usize;
        for k in probe.iter().cycle().take(lookups) {
            if let Some(c) = table.find_inbound(k).and_then(|id| table.get(id)) {
                found += usize::from(black_box(c).dest() < 3);
            }
        }
        hits.push(t.elapsed().as_nanos() as f64 / lookups as f64);
        assert_eq!(found, lookups);
        let t = Instant::now();
        let mut none = 0usize;
        for k in absent.iter().cycle().take(lookups) {
            none += usize::from(table.find_inbound(black_box(k)).is_none());
        }
        misses.push(t.elapsed().as_nanos() as f64 / lookups as f64);
        assert_eq!(none, lookups);
        if forwarding == Forwarding::Nat {
            let t = Instant::now();
            let mut found = 0usize;
            for k in replies.iter().cycle().take(lookups) {
                if let Some(c) = table.find_reply(k).and_then(|id| table.get(id)) {
                    found += usize::from(black_box(c).dest() < 3);
                }
            }
            reply_hits.push(t.elapsed().as_nanos() as f64 / lookups as f64);
            assert_eq!(found, lookups);
        }
    }
    drop(table);
    // Again, timing each insert: the longest one is the pause of the table's largest
    // growth step (the index rebuilt, or a map doubled).
    let mut table = ConnTable::<A>::new(epoch);
    let mut worst = Duration::ZERO;
    for &i in &order {
        let t = Instant::now();
        let id = table.insert(new_conn(i, forwarding), epoch, &timeouts);
        worst = worst.max(t.elapsed());
        black_box(table.on_packet(id, epoch, &timeouts, Direction::Input, Some(syn)));
    }
    drop(table);
    Row {
        n,
        family: A::NAME,
        forwarding,
        bytes_per_entry: after.saturating_sub(before) as f64 / f64::from(n),
        peak_per_entry: peak.saturating_sub(before) as f64 / f64::from(n),
        insert_ns,
        hit_ns: median(hits),
        miss_ns: median(misses),
        reply_ns: (!reply_hits.is_empty()).then(|| median(reply_hits)),
        worst_insert_us: worst.as_nanos() as f64 / 1000.0,
    }
}

fn env_list(name: &str, default: &[u32]) -> Vec<u32> {
    std::env::var(name)
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .filter(|v: &Vec<u32>| !v.is_empty())
        .unwrap_or_else(|| default.to_vec())
}

fn main() {
    // `cargo bench` passes `--bench`; a filter or `--list` from other tooling is ignored.
    let sizes = env_list("LVSD_BENCH_SIZES", &[1_000, 100_000, 1_000_000]);
    let lookups = std::env::var("LVSD_BENCH_LOOKUPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000usize);
    let families = env_list("LVSD_BENCH_FAMILIES", &[4, 6]);
    println!(
        "size_of::<Conn>() = {} bytes (IPv6: {}); lookups per round: {lookups}",
        std::mem::size_of::<Conn>(),
        std::mem::size_of::<Conn<Ipv6Addr>>()
    );
    println!(
        "| entries | family | forwarding | bytes/entry | peak bytes/entry during inserts | insert ns | lookup hit ns | lookup miss ns | reply hit ns | worst insert µs |"
    );
    println!("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let started = Instant::now();
    for &n in &sizes {
        for forwarding in [Forwarding::Nat, Forwarding::Dr] {
            let mut rows = Vec::new();
            if families.contains(&4) {
                rows.push(measure::<Ipv4Addr>(n, forwarding, lookups, &mut rng));
            }
            if families.contains(&6) {
                rows.push(measure::<Ipv6Addr>(n, forwarding, lookups, &mut rng));
            }
            for r in rows {
                print_row(&r);
            }
        }
    }
    eprintln!("conntable: {:.1} s", started.elapsed().as_secs_f64());
    black_box(Duration::ZERO);
}

fn print_row(r: &Row) {
    println!(
        "| {} | {} | {} | {:.1} | {:.1} | {:.0} | {:.1} | {:.1} | {} | {:.0} |",
        r.n,
        r.family,
        match r.forwarding {
            Forwarding::Nat => "NAT",
            Forwarding::Dr => "DR",
            Forwarding::Tun => "TUN",
        },
        r.bytes_per_entry,
        r.peak_per_entry,
        r.insert_ns,
        r.hit_ns,
        r.miss_ns,
        r.reply_ns.map_or("–".to_string(), |ns| format!("{ns:.1}")),
        r.worst_insert_us,
    );
}
