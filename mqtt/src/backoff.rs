//! Reconnection delays: exponential, capped, with jitter so that clients restarted together
//! (every agent of a site after a power cut, collectors after a deploy) do not reconnect in
//! lockstep.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::Duration;

/// First delay (±20 %)…
pub const MIN: Duration = Duration::from_millis(500);
/// …doubled after each failure up to this (±20 %).
pub const MAX: Duration = Duration::from_secs(30);

/// Exponential backoff with ±20 % jitter.
#[derive(Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
    seed: RandomState,
    n: u64,
}

impl Default for Backoff {
    /// [`MIN`] to [`MAX`].
    fn default() -> Self {
        Backoff::new(MIN, MAX)
    }
}

impl Backoff {
    /// From `min` (after a [`reset`](Backoff::reset)) doubling up to `max`.
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            next: min,
            seed: RandomState::new(),
            n: 0,
        }
    }

    /// Back to the first delay (after a successful or a stable connection: the caller
    /// decides which).
    pub fn reset(&mut self) {
        self.next = self.min;
    }

    /// The next delay: the current base ±20 %; then the base doubles (capped).
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        self.n = self.n.wrapping_add(1);
        // A per-instance random hash of a counter: no RNG dependency, and two processes
        // (different seeds) draw different sequences.
        let r = self.seed.hash_one(self.n) % 1000; // 0..1000
        base.mul_f64(0.8 + 0.4 * (r as f64 / 1000.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let mut b = Backoff::default();
        let mut base = MIN;
        for _ in 0..12 {
            let d = b.next_delay();
            assert!(
                d >= base.mul_f64(0.8) && d <= base.mul_f64(1.2),
                "{d:?} vs {base:?}"
            );
            base = (base * 2).min(MAX);
        }
        assert_eq!(b.next, MAX);
        b.reset();
        assert!(b.next_delay() <= MIN.mul_f64(1.2));
    }

    #[test]
    fn jitter_spreads_the_delays() {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..20 {
            let mut b = Backoff::new(Duration::from_secs(10), Duration::from_secs(10));
            seen.insert(b.next_delay());
        }
        assert!(seen.len() > 1, "{seen:?}");
    }
}
