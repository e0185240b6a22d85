//! The event ring: what happened, numbered, bounded.
//!
//! Invariants: sequence numbers start at 1 and are consecutive (every recorded event gets
//! the next one), so the ring holds the seqs `first..=last` without gaps; at most
//! [`EVENT_RING`] are kept, oldest dropped first; [`EventRing::since`] returns exactly the
//! kept events with `seq > since`, in order — a poller passing the last seq it saw never
//! gets one twice, and sees a jump in seq when it fell so far behind that some were dropped.

use std::collections::VecDeque;

use lvs_proto::{Event, EventKind};

/// Events kept.
pub const EVENT_RING: usize = 1024;

/// A bounded, numbered event log.
#[derive(Debug)]
pub struct EventRing {
    events: VecDeque<Event>,
    capacity: usize,
    last_seq: u64,
}

impl Default for EventRing {
    fn default() -> Self {
        EventRing::with_capacity(EVENT_RING)
    }
}

impl EventRing {
    /// A ring keeping at most `capacity` (≥ 1) events.
    pub fn with_capacity(capacity: usize) -> Self {
        EventRing {
            events: VecDeque::new(),
            capacity: capacity.max(1),
            last_seq: 0,
        }
    }

    /// Records an event at `at_unix_ms`; returns its seq.
    pub fn push(&mut self, at_unix_ms: u64, kind: EventKind) -> u64 {
        self.last_seq += 1;
        if self.events.len() >= self.capacity {
            self.events.pop_front();
        }
        self.events.push_back(Event {
            seq: self.last_seq,
            at_unix_ms,
            kind,
        });
        self.last_seq
    }

    /// The kept events with `seq > since`, oldest first.
    pub fn since(&self, since: u64) -> Vec<Event> {
        let Some(first) = self.events.front().map(|e| e.seq) else {
            return Vec::new();
        };
        // Consecutive seqs: the first wanted one is at index `since + 1 - first`.
        let skip = since.saturating_add(1).saturating_sub(first);
        let skip = usize::try_from(skip).unwrap_or(usize::MAX);
        self.events.iter().skip(skip).cloned().collect()
    }

    /// The last seq handed out (0 before the first event).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reload(n: u64) -> EventKind {
        EventKind::Reloaded {
            ok: true,
            message: n.to_string(),
        }
    }

    #[test]
    fn since_returns_each_event_once_and_shows_gaps() {
        let mut r = EventRing::with_capacity(4);
        assert!(r.since(0).is_empty());
        for n in 1..=3 {
            assert_eq!(r.push(n, reload(n)), n);
        }
        let seqs = |v: Vec<Event>| v.into_iter().map(|e| e.seq).collect::<Vec<_>>();
        assert_eq!(seqs(r.since(0)), vec![1, 2, 3]);
        assert_eq!(seqs(r.since(2)), vec![3]);
        assert!(r.since(3).is_empty());
        assert!(r.since(99).is_empty());
        for n in 4..=6 {
            r.push(n, reload(n));
        }
        // 1 and 2 were dropped: a poller at 1 sees the jump from 1 to 3.
        assert_eq!(seqs(r.since(1)), vec![3, 4, 5, 6]);
        assert_eq!(seqs(r.since(4)), vec![5, 6]);
        assert_eq!(r.last_seq(), 6);
        assert_eq!(seqs(r.since(u64::MAX)), Vec::<u64>::new());
    }
}
