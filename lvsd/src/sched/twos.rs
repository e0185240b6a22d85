//! twos — power of two choices (kernel `net/netfilter/ipvs/ip_vs_twos.c`, spec b.15).
//!
//! State: a PRNG, and a [`Fenwick`] index of the eligible weights (`index.rs`), kept in
//! sync by `update` and `dest_changed`, so `T` is O(1) and each draw's walk is a binary
//! descent, O(log n), instead of the kernel's scan. Invariants:
//! - The choices are always the ones the kernel's walk ([`PowerOfTwoChoices::walk`], the
//!   reference) finds for the same draws; debug builds assert it.
//! - Eligible: not OVERLOAD and weight > 0. `T` = the sum of eligible weights; nothing
//!   eligible → None, with no random number drawn.
//! - Two numbers `r1`, `r2` are drawn uniformly from `[0, T]` inclusive (the kernel's
//!   `get_random_u32_below(T + 1)`). Walking the eligible destinations in list order and
//!   taking `w` off each, choice 1 is the first destination where `r1` reaches ≤ 0 (i.e.
//!   `r1 <= w` before the subtraction); choice 2 likewise for `r2`. The first eligible
//!   destination therefore has `w + 1` chances in `T + 1`, the others `w`.
//! - choice 2 wins only when `w2 × overhead1 > w1 × overhead2` (strictly lighter per
//!   weight, `overhead = active × 256 + inactive`); otherwise choice 1. Products in `u128`.
//!   Kernel difference: the kernel multiplies in 32-bit `int`, which wraps once
//!   `weight × overhead` passes 2^31 (e.g. weight 100 and ~84 000 active connections);
//!   here the comparison stays exact.
//! - The random source is NOT the kernel's: it is SplitMix64 seeded from
//!   [`SchedParams::seed`](super::SchedParams), drawn with Lemire's unbiased bounded method.
//!   A fixed seed gives a fixed sequence, so twos follows the kernel's *rule* exactly but
//!   cannot reproduce its random numbers. Explaining does not consume extra draws, and a
//!   clone (for `simulate`) continues the same sequence.
//! - Explanation: both draws, both choices and the comparison, e.g.
//!   `twos: T=6 r1=1 -> 192.0.2.11:80 0*256+4/w2, r2=5 -> 192.0.2.13:80 0*256+0/w3;
//!   w2*oh1=12 > w1*oh2=0 -> 192.0.2.13:80` (one line).

use std::time::Instant;

use lvs_proto::SchedulerKind;

use super::index::{Fenwick, twos_weight};
use super::{Dest, Explain, Flow, ListChange, Scheduler, explain_none, overhead};

/// SplitMix64 (Steele, Lea, Flood 2014): a 64-bit state, full period, good enough for
/// load balancing draws and trivially seedable.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, n)` for `n > 0` (Lemire's multiply-and-reject, no modulo bias).
    fn below(&mut self, n: u64) -> u64 {
        let mut m = u128::from(self.next_u64()) * u128::from(n);
        if (m as u64) < n {
            let threshold = n.wrapping_neg() % n;
            while (m as u64) < threshold {
                m = u128::from(self.next_u64()) * u128::from(n);
            }
        }
        (m >> 64) as u64
    }
}

/// Power-of-two-choices scheduler state: its random source and weight index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PowerOfTwoChoices {
    rng: SplitMix64,
    sums: Fenwick,
}

impl PowerOfTwoChoices {
    /// A scheduler for `dests` whose draws are determined by `seed`.
    pub fn new(dests: &[Dest], seed: u64) -> Self {
        PowerOfTwoChoices {
            rng: SplitMix64(seed),
            sums: Fenwick::new(dests),
        }
    }
}

/// One twos decision, kept for the explanation.
struct Draw {
    total: u64,
    r1: u64,
    r2: u64,
    c1: usize,
    c2: usize,
}

impl PowerOfTwoChoices {
    /// Draws and finds both choices (module doc); None when nothing is eligible.
    fn draw(&mut self, dests: &[Dest]) -> Option<Draw> {
        let total = self.sums.total(dests);
        debug_assert!(self.sums.in_sync(dests), "twos: unannounced list change");
        if total == 0 {
            return None;
        }
        let r1 = self.rng.below(total + 1);
        let r2 = self.rng.below(total + 1);
        // A draw of 0 stops at the first eligible destination, as 1 does.
        let c1 = self.sums.find(r1.max(1))?;
        let c2 = self.sums.find(r2.max(1))?;
        debug_assert_eq!(
            Some((c1, c2)),
            Self::walk(dests, r1, r2),
            "twos: index disagrees"
        );
        Some(Draw {
            total,
            r1,
            r2,
            c1,
            c2,
        })
    }

    /// The kernel's walk for draws `r1`, `r2`: over the eligible destinations in list
    /// order, subtracting each weight, the first where the remainder is ≤ its weight. The
    /// reference the index must agree with. None if a draw exceeds the eligible total.
    pub(super) fn walk(dests: &[Dest], r1: u64, r2: u64) -> Option<(usize, usize)> {
        let (mut left1, mut left2) = (r1, r2);
        let (mut c1, mut c2) = (None, None);
        for (i, d) in dests.iter().enumerate() {
            let w = u64::from(twos_weight(d));
            if w == 0 {
                continue;
            }
            if c1.is_none() {
                if left1 <= w {
                    c1 = Some(i);
                } else {
                    left1 -= w;
                }
            }
            if c2.is_none() {
                if left2 <= w {
                    c2 = Some(i);
                } else {
                    left2 -= w;
                }
            }
            if c1.is_some() && c2.is_some() {
                break;
            }
        }
        Some((c1?, c2?))
    }

    /// The kernel's decision the way it makes it, scanning the list for `T` and walking it
    /// (the reference the index must agree with; same draws as [`Scheduler::schedule`]).
    #[cfg(test)]
    pub(super) fn reference_pick(&mut self, dests: &[Dest]) -> Option<usize> {
        let total: u64 = dests.iter().map(|d| u64::from(twos_weight(d))).sum();
        if total == 0 {
            return None;
        }
        let r1 = self.rng.below(total + 1);
        let r2 = self.rng.below(total + 1);
        let (c1, c2) = Self::walk(dests, r1, r2)?;
        let second = Self::second_wins(dests.get(c1)?, dests.get(c2)?);
        Some(if second { c2 } else { c1 })
    }

    /// Does choice 2 win: `w2 × oh1 > w1 × oh2`?
    fn second_wins(d1: &Dest, d2: &Dest) -> bool {
        u128::from(d2.weight) * u128::from(overhead(d1))
            > u128::from(d1.weight) * u128::from(overhead(d2))
    }
}

impl Scheduler for PowerOfTwoChoices {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Twos
    }

    fn schedule(
        &mut self,
        _now: Instant,
        dests: &[Dest],
        _flow: &Flow,
        explain: Option<&mut Explain>,
    ) -> Option<usize> {
        let Some(draw) = self.draw(dests) else {
            explain_none(explain, SchedulerKind::Twos);
            return None;
        };
        let (d1, d2) = (&dests[draw.c1], &dests[draw.c2]);
        let second = Self::second_wins(d1, d2);
        let pick = if second { draw.c2 } else { draw.c1 };
        if let Some(e) = explain {
            let lhs = u128::from(d2.weight) * u128::from(overhead(d1));
            let rhs = u128::from(d1.weight) * u128::from(overhead(d2));
            let op = if second { ">" } else { "<=" };
            e.note(format_args!(
                "twos: T={} r1={} -> {} {}*256+{}/w{}, r2={} -> {} {}*256+{}/w{}; \
                 w2*oh1={lhs} {op} w1*oh2={rhs} -> {}",
                draw.total,
                draw.r1,
                d1.endpoint(),
                d1.active,
                d1.inactive,
                d1.weight,
                draw.r2,
                d2.endpoint(),
                d2.active,
                d2.inactive,
                d2.weight,
                dests[pick].endpoint()
            ));
        }
        Some(pick)
    }

    fn update(&mut self, dests: &[Dest], _change: ListChange) {
        self.sums.rebuild(dests);
    }

    fn dest_changed(&mut self, dests: &[Dest], index: usize) {
        self.sums.set(dests, index);
    }

    fn clone_box(&self) -> Box<dyn Scheduler> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{explained, load, pick1, picks, w};
    use super::*;

    #[test]
    fn splitmix64_reference_values() {
        // First outputs for seed 0 from the reference implementation (Vigna's splitmix64.c).
        let mut r = SplitMix64(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(r.next_u64(), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn below_is_in_range_and_covers_it() {
        // [0, 3): 3000 draws hit every value, and nothing at or past 3.
        let mut r = SplitMix64(42);
        let mut seen = [0u32; 3];
        for _ in 0..3000 {
            let x = r.below(3) as usize;
            assert!(x < 3);
            seen[x] += 1;
        }
        assert!(seen.iter().all(|&n| n > 800), "{seen:?}");
        assert_eq!(r.below(1), 0);
    }

    #[test]
    fn fixed_seed_gives_fixed_sequence() {
        // Idle A1 B2 C3, T = 6: every overhead is 0, so w2 × 0 > w1 × 0 never holds and
        // each pick is choice 1: r1 in [0, 6] walked as A for 0..=1 (the first eligible's
        // extra chance), B for 2..=3, C for 4..=6. Each pick draws twice (r1, r2).
        let list = w(&[1, 2, 3]);
        let mut s = PowerOfTwoChoices::new(&list, 7);
        let seq = picks(&mut s, &list, 24);
        assert_eq!(seq, "BCBBAACCCCCBCACCBBAACBAB");
        // The same rule, replayed by hand from the same PRNG.
        let mut mirror = SplitMix64(7);
        let replay: String = (0..24)
            .map(|_| {
                let r1 = mirror.below(7);
                let _r2 = mirror.below(7);
                match r1 {
                    0..=1 => 'A',
                    2..=3 => 'B',
                    _ => 'C',
                }
            })
            .collect();
        assert_eq!(replay, seq);
        // Same seed, same sequence; another seed, another one.
        let mut again = PowerOfTwoChoices::new(&list, 7);
        assert_eq!(picks(&mut again, &list, 24), seq);
        let mut other = PowerOfTwoChoices::new(&list, 8);
        assert_ne!(picks(&mut other, &list, 24), seq);
    }

    #[test]
    fn lighter_second_choice_wins() {
        // A (5 active) and B (idle), both weight 1: T = 2, a draw r <= 1 lands on A, r = 2
        // on B. If either choice is B it is returned: as choice 2 because
        // 1 × 1280 > 1 × 0, as choice 1 because A (choice 2) is not lighter. Only when
        // both draws land on A is A returned. A mirror of the PRNG predicts every pick.
        let list = load(&[(1, 5, 0), (1, 0, 0)]);
        let mut s = PowerOfTwoChoices::new(&list, 3);
        let mut mirror = SplitMix64(3);
        let mut got = String::new();
        for _ in 0..60 {
            let (r1, r2) = (mirror.below(3), mirror.below(3));
            let want = if r1 <= 1 && r2 <= 1 { 0 } else { 1 };
            let (pick, text) = explained(&mut s, &list);
            assert_eq!(pick, Some(want), "{text}");
            got.push(char::from(b'A' + want as u8));
        }
        // P(A) = (2/3)² = 4/9: both outcomes occur.
        assert!(got.contains('A') && got.contains('B'), "{got}");
    }

    #[test]
    fn respects_weight_zero_and_overloaded() {
        // A weight 0, B overloaded, C and D eligible: only C and D ever come out, and T
        // counts only them.
        let mut list = w(&[0, 5, 1, 1]);
        list[1].overloaded = true;
        let mut s = PowerOfTwoChoices::new(&list, 11);
        for _ in 0..200 {
            let (pick, text) = explained(&mut s, &list);
            assert!(matches!(pick, Some(2 | 3)), "{text}");
            assert!(text.starts_with("twos: T=2 "), "{text}");
        }
    }

    #[test]
    fn first_eligible_gets_one_extra_chance() {
        // A1 B1, idle (choice 1 always kept): r1 uniform in [0, 2]; r1 <= 1 → A.
        // So A comes out 2/3 of the time, not 1/2.
        let list = w(&[1, 1]);
        let mut s = PowerOfTwoChoices::new(&list, 99);
        let seq = picks(&mut s, &list, 3000);
        let a = seq.bytes().filter(|&c| c == b'A').count();
        assert!((1850..=2150).contains(&a), "{a} of 3000");
    }

    #[test]
    fn clone_continues_the_same_sequence() {
        let list = w(&[1, 2, 3]);
        let mut live = PowerOfTwoChoices::new(&list, 5);
        let _ = picks(&mut live, &list, 3);
        let mut sim = live.clone_box();
        assert_eq!(pick1(sim.as_mut(), &list), pick1(&mut live, &list));
    }

    #[test]
    fn explain_shows_draws_and_comparison() {
        // Choose a seed-independent check: the line names T, both draws and a verdict.
        let list = load(&[(2, 0, 4), (1, 0, 0), (3, 0, 0)]);
        let mut s = PowerOfTwoChoices::new(&list, 1);
        let (pick, text) = explained(&mut s, &list);
        assert!(pick.is_some());
        assert!(text.starts_with("twos: T=6 r1="), "{text}");
        assert!(text.contains(" w2*oh1="), "{text}");
    }
}
