//! Retrying as a type: the policy (exponential backoff with full jitter, bounded) and the one
//! function that classifies every failure.

use std::time::Duration;

/// Exponential backoff with full jitter: attempt `n` waits a random time in `[0, min(cap, base·2ⁿ)]`.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// The first ceiling.
    pub base: Duration,
    /// The largest ceiling.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { base: Duration::from_millis(100), cap: Duration::from_secs(30) }
    }
}

impl RetryPolicy {
    /// How long to wait before attempt `attempt` (0 = the first retry).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self.base.saturating_mul(1u32 << attempt.min(20)).min(self.cap);
        let fraction = f64::from(uuid::Uuid::new_v4().as_bytes()[0]) / 255.0;
        ceiling.mul_f64(fraction)
    }
}

/// What to do about a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Transient: try again later (the same ids).
    Retry,
    /// The entry can never be accepted: dead-letter it with the reason.
    DeadLetter,
    /// The channel refuses the caller: pause the tenant, keep its events.
    Pause,
}

/// Classifies a per-entry `errorCode` of a `PutAuditEvents` response.
pub fn classify_entry(code: &str) -> Class {
    match code {
        "Throttling" | "InternalFailure" => Class::Retry,
        _ => Class::DeadLetter,
    }
}

/// Classifies a whole-call error code (from the SDK's error metadata) or HTTP status.
pub fn classify_call(code: Option<&str>, status: Option<u16>) -> Class {
    match code {
        Some(
            "ChannelNotFound"
            | "ChannelInsufficientPermission"
            | "AccessDenied"
            | "AccessDeniedException"
            | "InvalidChannelARN",
        )
        | Some(
            "UnrecognizedClientException"
            | "InvalidClientTokenId"
            | "ExpiredTokenException"
            | "ChannelUnsupportedSchema",
        )
        | Some("UnsupportedOperationException") => Class::Pause,
        Some(code)
            if code.contains("Throttl") || code == "TooManyRequestsException" || code == "RequestLimitExceeded" =>
        {
            Class::Retry
        }
        _ => match status {
            Some(s) if s == 429 || s >= 500 => Class::Retry,
            Some(s) if (400..500).contains(&s) => Class::Pause,
            _ => Class::Retry,
        },
    }
}

/// How many calls a tenant may have in flight: additive increase, multiplicative decrease. A round
/// that must be retried (throttling, 5xx, network) halves the window; each round that settles
/// everything widens it by one, up to the configured concurrency. Under throttling a tenant thus
/// backs off in breadth as well as in time, and grows back as the channel recovers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    now: usize,
    max: usize,
}

impl Window {
    /// A window open to `max` calls (at least one).
    pub fn new(max: usize) -> Window {
        let max = max.max(1);
        Window { now: max, max }
    }

    /// Calls allowed in flight now.
    pub fn get(&self) -> usize {
        self.now
    }

    /// A round settled everything.
    pub fn widen(&mut self) {
        self.now = (self.now + 1).min(self.max);
    }

    /// A round must be retried.
    pub fn narrow(&mut self) {
        self.now = (self.now / 2).max(1);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_window_halves_on_failure_and_grows_back_one_by_one() {
        let mut w = Window::new(8);
        assert_eq!(w.get(), 8);
        w.narrow();
        w.narrow();
        assert_eq!(w.get(), 2);
        for _ in 0..3 {
            w.narrow();
        }
        assert_eq!(w.get(), 1, "never below one call");
        for expected in 2..=8 {
            w.widen();
            assert_eq!(w.get(), expected);
        }
        w.widen();
        assert_eq!(w.get(), 8, "never above the configured concurrency");
        assert_eq!(Window::new(0).get(), 1);
    }

    use super::*;

    #[test]
    fn backoff_stays_under_its_exponential_ceiling() {
        let policy = RetryPolicy { base: Duration::from_millis(100), cap: Duration::from_secs(2) };
        for attempt in 0..40 {
            let wait = policy.backoff(attempt);
            assert!(wait <= Duration::from_secs(2), "{attempt}: {wait:?}");
            assert!(wait <= Duration::from_millis(100) * 2u32.pow(attempt.min(5)), "{attempt}: {wait:?}");
        }
    }

    #[test]
    fn classification() {
        assert_eq!(classify_entry("Throttling"), Class::Retry);
        assert_eq!(classify_entry("InternalFailure"), Class::Retry);
        for permanent in [
            "InvalidData",
            "FieldNotFound",
            "FieldTooLong",
            "InvalidChecksum",
            "InvalidRecipient",
            "InvalidEventSource",
            "AccountNotSubscribed",
        ] {
            assert_eq!(classify_entry(permanent), Class::DeadLetter, "{permanent}");
        }
        assert_eq!(classify_call(Some("ChannelNotFound"), Some(400)), Class::Pause);
        assert_eq!(classify_call(Some("ChannelInsufficientPermission"), Some(400)), Class::Pause);
        assert_eq!(classify_call(Some("AccessDenied"), Some(403)), Class::Pause);
        assert_eq!(classify_call(Some("ThrottlingException"), Some(400)), Class::Retry);
        assert_eq!(classify_call(None, Some(503)), Class::Retry);
        assert_eq!(classify_call(None, Some(429)), Class::Retry);
        assert_eq!(classify_call(None, None), Class::Retry, "network errors retry");
    }
}
