//! The IPVS rate estimator (spec b.18; kernel `net/netfilter/ipvs/ip_vs_est.c`), pure.
//!
//! Every [`EST_INTERVAL`] (2 s) the counters are sampled and each average moves a quarter
//! of the way towards the rate of the last interval: `avg += (rate − avg) / 4` (W = 2⁻²),
//! so a reading reflects roughly the last 8 s. As in the kernel the averages are kept
//! scaled, connections and packets per second × 2¹⁰ and bytes per second × 2⁵, the 2 s
//! rate is formed by a shift (`Δ << 9`, `Δ << 4`), the update is an arithmetic shift of a
//! signed difference, and a reading rounds half up (`(avg + 0x1FF) >> 10`,
//! `(avg + 0xF) >> 5`). Integer-exact with `ipvsadm --rate` for the same counter samples.
//!
//! Invariants: the estimator never reads a clock (the caller ticks it); a counter that went
//! backwards (zeroed) contributes a rate of 0, never a huge one; [`Estimator::reset`] is
//! the kernel's `ip_vs_zero_estimator`: averages to 0, the current counters as the base.

use std::time::Duration;

use lvs_proto::{Counters, Rates};

/// How often the estimator is ticked.
pub const EST_INTERVAL: Duration = Duration::from_secs(2);

/// The running averages of one service or real server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Estimator {
    last: Counters,
    /// Connections per second × 2¹⁰.
    cps: i64,
    /// Packets per second × 2¹⁰.
    inpps: i64,
    outpps: i64,
    /// Bytes per second × 2⁵.
    inbps: i64,
    outbps: i64,
}

/// `avg += (rate − avg) >> 2` on the scaled values, for a 2 s delta shifted by `shift`.
fn step(avg: &mut i64, now: u64, last: u64, shift: u32) {
    let delta = now.saturating_sub(last);
    let rate = i64::try_from(delta.checked_shl(shift).unwrap_or(u64::MAX)).unwrap_or(i64::MAX);
    *avg = avg.saturating_add(rate.saturating_sub(*avg) >> 2);
}

/// A scaled average as an integer reading, rounded half up (never negative).
fn read(avg: i64, round: i64, shift: u32) -> u64 {
    u64::try_from(avg.saturating_add(round) >> shift).unwrap_or(0)
}

impl Estimator {
    /// An estimator starting from `counters`, all rates 0.
    pub fn new(counters: &Counters) -> Self {
        Estimator {
            last: *counters,
            ..Estimator::default()
        }
    }

    /// One interval has passed: folds the counters' growth since the last tick in.
    pub fn tick(&mut self, counters: &Counters) {
        let c = counters;
        let l = self.last;
        step(&mut self.cps, c.conns, l.conns, 9);
        step(&mut self.inpps, c.inpkts, l.inpkts, 9);
        step(&mut self.outpps, c.outpkts, l.outpkts, 9);
        step(&mut self.inbps, c.inbytes, l.inbytes, 4);
        step(&mut self.outbps, c.outbytes, l.outbytes, 4);
        self.last = *c;
    }

    /// The current estimates, as the kernel reports them.
    pub fn rates(&self) -> Rates {
        Rates {
            cps: read(self.cps, 0x1FF, 10),
            inpps: read(self.inpps, 0x1FF, 10),
            outpps: read(self.outpps, 0x1FF, 10),
            inbps: read(self.inbps, 0xF, 5),
            outbps: read(self.outbps, 0xF, 5),
        }
    }

    /// Starts over from `counters` (after they were zeroed): all rates 0.
    pub fn reset(&mut self, counters: &Counters) {
        *self = Estimator::new(counters);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(conns: u64, pkts: u64, bytes: u64) -> Counters {
        Counters {
            conns,
            inpkts: pkts,
            outpkts: pkts / 2,
            inbytes: bytes,
            outbytes: bytes / 2,
        }
    }

    #[test]
    fn a_steady_rate_converges_by_quarters() {
        // 100 conns/s, 1000 pkts/s, 100000 bytes/s for 2 s per tick.
        let mut e = Estimator::new(&Counters::default());
        let mut readings = Vec::new();
        for i in 1..=4u64 {
            e.tick(&counters(200 * i, 2000 * i, 200_000 * i));
            readings.push(e.rates().cps);
        }
        // 100 × (1 − (3/4)^n): 25, 43.75, 57.8, 68.4 → rounded half up.
        assert_eq!(readings, vec![25, 44, 58, 68]);
        for i in 5..=60u64 {
            e.tick(&counters(200 * i, 2000 * i, 200_000 * i));
        }
        let r = e.rates();
        assert_eq!(
            (r.cps, r.inpps, r.outpps, r.inbps, r.outbps),
            (100, 1000, 500, 100_000, 50_000)
        );
    }

    #[test]
    fn scaling_and_rounding_are_the_kernels() {
        // One connection in 2 s: rate 1 << 9 = 512 (0.5/s × 2¹⁰); avg = 512 >> 2 = 128;
        // reading (128 + 511) >> 10 = 0.
        let mut e = Estimator::new(&Counters::default());
        e.tick(&counters(1, 0, 0));
        assert_eq!(e.cps, 128);
        assert_eq!(e.rates().cps, 0);
        // Bytes: 3 bytes in 2 s → 3 << 4 = 48; avg 12; reading (12 + 15) >> 5 = 0.
        let mut e = Estimator::new(&Counters::default());
        e.tick(&counters(0, 0, 3));
        assert_eq!(e.inbps, 12);
        // Idle afterwards decays towards 0 with arithmetic shifts (floor).
        e.tick(&counters(0, 0, 3));
        assert_eq!(e.inbps, 9);
    }

    #[test]
    fn zeroed_counters_do_not_spike() {
        let mut e = Estimator::new(&Counters::default());
        e.tick(&counters(1000, 1000, 1000));
        // The counters were zeroed behind the estimator's back: no negative or huge rate.
        e.tick(&Counters::default());
        assert!(e.rates().cps < 1000);
        e.reset(&Counters::default());
        assert_eq!(e.rates(), Rates::default());
        e.tick(&counters(2, 0, 0));
        assert_eq!(e.rates().cps, 0);
    }
}
