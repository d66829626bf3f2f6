//! A token bucket: at most `rate` takes a second, with a burst of one second's worth. Pure: the
//! caller passes the time, so the lake's quota (which refuses) and the relay's pacing (which
//! waits) share one arithmetic, tested with injected instants.

use std::time::{Duration, Instant};

/// A token bucket holding up to `rate` tokens, refilled at `rate` a second.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    /// A full bucket of `rate` a second (at least a thousandth) at `now`.
    pub fn new(rate: f64, now: Instant) -> TokenBucket {
        let rate = rate.max(0.001);
        TokenBucket { rate, tokens: rate, at: now }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at);
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.rate).min(self.rate);
        self.at = self.at.max(now);
    }

    /// Takes a token at `now`, or says how long until one is there.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }

    /// Reserves a token at `now`, going into debt when there is none: how long the caller waits
    /// before using it (zero when one was there). Callers that reserve in turn are spaced at the
    /// rate, whatever their number.
    pub fn reserve(&mut self, now: Instant) -> Duration {
        self.refill(now);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(-self.tokens / self.rate) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_one_second_then_the_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(100.0, t0);
        for _ in 0..100 {
            bucket.take(t0).unwrap();
        }
        assert_eq!(bucket.take(t0), Err(Duration::from_millis(10)));
        assert!(bucket.take(t0 + Duration::from_millis(10)).is_ok());
        let mut taken = 0;
        for ms in (20..=1010).step_by(5) {
            taken += usize::from(bucket.take(t0 + Duration::from_millis(ms)).is_ok());
        }
        assert_eq!(taken, 100, "a hundred in the next second");
    }

    #[test]
    fn reservations_are_spaced_at_the_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(100.0, t0);
        for _ in 0..100 {
            assert_eq!(bucket.reserve(t0), Duration::ZERO);
        }
        let waits: Vec<u128> = (0..5).map(|_| bucket.reserve(t0).as_micros()).collect();
        assert_eq!(waits, [10_000, 20_000, 30_000, 40_000, 50_000]);
        // Once the debt is paid, a second later, the bucket fills again.
        assert_eq!(bucket.reserve(t0 + Duration::from_millis(1050)), Duration::ZERO);
    }
}
