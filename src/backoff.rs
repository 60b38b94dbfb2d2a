//! The one retry schedule of tagwatch (registry requests, forge calls, rejected pushes): exponential with
//! equal jitter, capped, a bounded number of attempts, and a server's `Retry-After` honoured but clamped
//! into bounds.
//!
//! Must not: sleep (callers own the waiting, so a scheduler can also postpone instead).

use std::time::Duration;

/// First retry delay: long enough for a restarting registry to come back, short enough not to matter.
pub const DEFAULT_BASE_DELAY: Duration = Duration::from_millis(200);
/// No single wait grows past this: a poll cycle must keep moving.
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(10);
/// Attempts per request, the first included: four attempts span about 1.4 s without `Retry-After`.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 4;
/// A `Retry-After` beyond this is clamped: a misbehaving registry must not park a poll for an hour; the
/// daemon's next cycle retries anyway.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Retry state for one request. `next_delay` returns how long to wait before the next attempt, or
/// `None` when the attempts are used up.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    max_attempts: u32,
    attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(DEFAULT_BASE_DELAY, DEFAULT_MAX_DELAY, DEFAULT_MAX_ATTEMPTS)
    }
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration, max_attempts: u32) -> Self {
        Backoff {
            base,
            cap,
            max_attempts: max_attempts.max(1),
            attempts: 1,
        }
    }

    /// The wait before the next attempt after a failed one; `retry_after` is the server's hint.
    pub fn next_delay(&mut self, retry_after: Option<Duration>) -> Option<Duration> {
        if self.attempts >= self.max_attempts {
            return None;
        }
        let delay = self.step();
        Some(retry_after.map_or(delay, |hint| hint.min(MAX_RETRY_AFTER)))
    }

    /// The next exponential step, for callers that count their attempts themselves (a forge call whose
    /// rate-limit waits do not use up the backoff, a push retried a fixed number of times).
    pub fn step(&mut self) -> Duration {
        let exponent = self.attempts - 1;
        self.attempts = self.attempts.saturating_add(1);
        let ceiling = self
            .base
            .saturating_mul(1u32 << exponent.min(16))
            .min(self.cap);
        // "Equal jitter": at least half the exponential step, so clients that failed together spread out
        // without ever retrying immediately.
        let half = ceiling / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

/// Parses a `Retry-After` value: delta-seconds or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = date.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_within_jitter_bounds_and_stop_after_max_attempts() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(300), 5);
        let bounds = [(50, 100), (100, 200), (150, 300), (150, 300)];
        for (low, high) in bounds {
            let delay = backoff.next_delay(None).expect("attempts left");
            assert!(
                delay >= Duration::from_millis(low) && delay <= Duration::from_millis(high),
                "{delay:?} outside {low}..={high} ms"
            );
        }
        assert_eq!(backoff.next_delay(None), None);
    }

    #[test]
    fn retry_after_is_used_and_clamped() {
        let mut backoff = Backoff::default();
        assert_eq!(
            backoff.next_delay(Some(Duration::from_secs(2))),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            backoff.next_delay(Some(Duration::from_secs(3600))),
            Some(MAX_RETRY_AFTER)
        );
    }

    #[test]
    fn retry_after_parses_seconds_and_dates() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
