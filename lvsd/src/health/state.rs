//! The pure rise/fall tracker: check results in, real flips out.
//!
//! Contract: [`Tracker::record`] is the only input; time is passed in (`now`) and never
//! read, so the logic is tested without sleeping. A transition is returned exactly when the
//! state flips: `fall` failures in a row take an up server down, `rise` successes in a row
//! bring a down server up, anything else only moves the counters.
//!
//! Invariants: at most one of `successes` / `failures` is non-zero (a result resets the
//! other counter); both saturate instead of wrapping; `since` is the `now` of the last flip
//! (or of creation).

use std::time::Instant;

use lvs_proto::HealthState;

/// A state flip, with the sentence that explains it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The new state.
    pub state: HealthState,
    /// Why (`3 failures in a row (fall 3): connect: connection refused`).
    pub reason: String,
}

/// Up/down with consecutive counters for one checked real server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracker {
    state: HealthState,
    since: Instant,
    successes: u32,
    failures: u32,
    rise: u32,
    fall: u32,
}

impl Tracker {
    /// A tracker that starts up, or down with `alpha` (keepalived: down until `rise`
    /// successes). `rise` and `fall` below 1 count as 1.
    pub fn new(rise: u32, fall: u32, alpha: bool, now: Instant) -> Self {
        Tracker {
            state: if alpha {
                HealthState::Down
            } else {
                HealthState::Up
            },
            since: now,
            successes: 0,
            failures: 0,
            rise: rise.max(1),
            fall: fall.max(1),
        }
    }

    /// The current state.
    pub fn state(&self) -> HealthState {
        self.state
    }

    /// When the current state began.
    pub fn since(&self) -> Instant {
        self.since
    }

    /// Consecutive successes so far.
    pub fn successes(&self) -> u32 {
        self.successes
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Records one check result; `message` is what the check saw (`HTTP 503`). Returns the
    /// transition when the state flips.
    #[must_use]
    pub fn record(&mut self, now: Instant, ok: bool, message: &str) -> Option<Transition> {
        if ok {
            self.failures = 0;
            self.successes = self.successes.saturating_add(1);
        } else {
            self.successes = 0;
            self.failures = self.failures.saturating_add(1);
        }
        let (next, count, word, limit) = match (self.state, ok) {
            (HealthState::Up, false) if self.failures >= self.fall => (
                HealthState::Down,
                self.failures,
                plural(self.failures, "failure", "failures"),
                format!("fall {}", self.fall),
            ),
            (HealthState::Down, true) if self.successes >= self.rise => (
                HealthState::Up,
                self.successes,
                plural(self.successes, "success", "successes"),
                format!("rise {}", self.rise),
            ),
            _ => return None,
        };
        self.state = next;
        self.since = now;
        Some(Transition {
            state: next,
            reason: format!("{count} {word} in a row ({limit}): {message}"),
        })
    }
}

fn plural(n: u32, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Feeds `results` ('+' success, '-' failure) one second apart and returns the
    /// transitions as (index, state).
    fn run(t: &mut Tracker, start: Instant, results: &str) -> Vec<(usize, HealthState)> {
        results
            .chars()
            .enumerate()
            .filter_map(|(i, c)| {
                let now = start + Duration::from_secs(i as u64 + 1);
                t.record(now, c == '+', "x").map(|tr| (i, tr.state))
            })
            .collect()
    }

    #[test]
    fn starts_up_or_down_with_alpha() {
        let now = Instant::now();
        let t = Tracker::new(2, 3, false, now);
        assert_eq!((t.state(), t.since()), (HealthState::Up, now));
        let t = Tracker::new(2, 3, true, now);
        assert_eq!(t.state(), HealthState::Down);
        assert_eq!((t.successes(), t.failures()), (0, 0));
    }

    #[test]
    fn goes_down_after_fall_failures_in_a_row_only() {
        let now = Instant::now();
        let mut t = Tracker::new(2, 3, false, now);
        // Two failures, a success resets, then three in a row: down at index 5.
        assert_eq!(run(&mut t, now, "--+---"), vec![(5, HealthState::Down)]);
        assert_eq!(t.since(), now + Duration::from_secs(6));
        assert_eq!((t.successes(), t.failures()), (0, 3));
        // More failures change nothing but the counter.
        assert_eq!(run(&mut t, now, "---"), vec![]);
        assert_eq!(t.failures(), 6);
    }

    #[test]
    fn comes_back_after_rise_successes_in_a_row_only() {
        let now = Instant::now();
        let mut t = Tracker::new(2, 1, true, now);
        // + - + + : the failure resets the count, up at index 3.
        assert_eq!(run(&mut t, now, "+-++"), vec![(3, HealthState::Up)]);
        assert_eq!((t.successes(), t.failures()), (2, 0));
        // fall 1: one failure is enough.
        assert_eq!(run(&mut t, now, "+-"), vec![(1, HealthState::Down)]);
    }

    #[test]
    fn rise_and_fall_of_one_flip_on_every_change() {
        let now = Instant::now();
        let mut t = Tracker::new(1, 1, false, now);
        assert_eq!(
            run(&mut t, now, "++-+-"),
            vec![
                (2, HealthState::Down),
                (3, HealthState::Up),
                (4, HealthState::Down)
            ]
        );
    }

    #[test]
    fn zero_thresholds_count_as_one() {
        let now = Instant::now();
        let mut t = Tracker::new(0, 0, false, now);
        assert_eq!(
            run(&mut t, now, "-+"),
            vec![(0, HealthState::Down), (1, HealthState::Up)]
        );
    }

    #[test]
    fn the_reason_names_the_count_the_limit_and_the_message() {
        let now = Instant::now();
        let mut t = Tracker::new(2, 3, false, now);
        let msg = "connect: connection refused";
        assert_eq!(t.record(now, false, msg), None);
        assert_eq!(t.record(now, false, msg), None);
        let down = t.record(now, false, msg).unwrap();
        assert_eq!(
            down,
            Transition {
                state: HealthState::Down,
                reason: "3 failures in a row (fall 3): connect: connection refused".into()
            }
        );
        assert_eq!(t.record(now, true, "HTTP 200"), None);
        let up = t.record(now, true, "HTTP 200").unwrap();
        assert_eq!(up.reason, "2 successes in a row (rise 2): HTTP 200");
        let mut t = Tracker::new(1, 1, false, now);
        let down = t.record(now, false, "HTTP 503").unwrap();
        assert_eq!(down.reason, "1 failure in a row (fall 1): HTTP 503");
        let up = t.record(now, true, "HTTP 200").unwrap();
        assert_eq!(up.reason, "1 success in a row (rise 1): HTTP 200");
    }

    #[test]
    fn alpha_needs_rise_successes_before_the_first_up() {
        let now = Instant::now();
        let mut t = Tracker::new(3, 2, true, now);
        assert_eq!(run(&mut t, now, "--++"), vec![]);
        assert_eq!(t.state(), HealthState::Down);
        assert_eq!(run(&mut t, now, "+"), vec![(0, HealthState::Up)]);
    }

    #[test]
    fn counters_saturate() {
        let now = Instant::now();
        let mut t = Tracker::new(1, 1, false, now);
        t.failures = u32::MAX - 1;
        t.state = HealthState::Down;
        assert_eq!(t.record(now, false, "x"), None);
        assert_eq!(t.record(now, false, "x"), None);
        assert_eq!(t.failures(), u32::MAX);
    }

    #[test]
    fn exhaustive_sequences_match_a_reference_model() {
        // Every sequence of up to 10 results for rise/fall 1..=4, alpha on and off, against
        // a direct restatement: flip when the run of equal results at the end reaches the
        // threshold of the opposite state.
        let now = Instant::now();
        for rise in 1..=4u32 {
            for fall in 1..=4u32 {
                for alpha in [false, true] {
                    for len in 0..=10u32 {
                        for bits in 0..(1u32 << len) {
                            let mut t = Tracker::new(rise, fall, alpha, now);
                            let mut model = !alpha;
                            let (mut run_ok, mut run_len) = (true, 0u32);
                            for i in 0..len {
                                let ok = bits & (1 << i) != 0;
                                if ok == run_ok {
                                    run_len += 1;
                                } else {
                                    (run_ok, run_len) = (ok, 1);
                                }
                                let flip = t.record(now, ok, "m");
                                let expect_flip = (model && !ok && run_len >= fall)
                                    || (!model && ok && run_len >= rise);
                                assert_eq!(flip.is_some(), expect_flip, "{rise} {fall} {bits:b}");
                                if expect_flip {
                                    model = !model;
                                }
                                let up = t.state() == HealthState::Up;
                                assert_eq!(up, model);
                                assert!(t.successes() == 0 || t.failures() == 0);
                            }
                        }
                    }
                }
            }
        }
    }
}
