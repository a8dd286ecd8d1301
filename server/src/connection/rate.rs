//! Per-socket rate limits: token buckets for messages and for bytes, with a burst.
//!
//! A socket over its rate is not closed: its reads pause until the bucket has refilled, so
//! TCP pushes back on the sender, honest bursts are only delayed, and a flood costs the server
//! at most the configured rate of work.

use std::time::{Duration, Instant};

/// A sustained rate and the burst allowed on top of it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

impl Rate {
    /// No limit.
    pub const UNLIMITED: Rate = Rate {
        per_second: f64::INFINITY,
        burst: f64::INFINITY,
    };

    fn is_unlimited(&self) -> bool {
        self.per_second.is_infinite() || self.per_second <= 0.0
    }
}

/// One token bucket. A cost larger than the burst is still taken (the bucket goes into debt),
/// so one large message is allowed and the wait comes after it.
#[derive(Debug, Clone)]
pub struct Bucket {
    rate: Rate,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    pub fn new(rate: Rate, now: Instant) -> Self {
        Self {
            rate,
            tokens: rate.burst,
            last: now,
        }
    }

    /// Takes `cost` tokens at `now`; returns how long the socket must wait before its next read.
    pub fn take(&mut self, cost: f64, now: Instant) -> Duration {
        if self.rate.is_unlimited() {
            return Duration::ZERO;
        }
        self.refill(now);
        self.tokens -= cost;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate.per_second)
        }
    }

    /// Takes `cost` tokens at `now` if the bucket holds them; otherwise takes nothing and says
    /// how long until it will (a request refused is not paid for).
    pub fn try_take(&mut self, cost: f64, now: Instant) -> Result<(), Duration> {
        if self.rate.is_unlimited() {
            return Ok(());
        }
        self.refill(now);
        if self.tokens >= cost {
            self.tokens -= cost;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (cost - self.tokens) / self.rate.per_second,
            ))
        }
    }

    /// Whether the bucket is full at `now` (forgetting it changes nothing).
    pub fn is_full(&mut self, now: Instant) -> bool {
        self.rate.is_unlimited() || {
            self.refill(now);
            self.tokens >= self.rate.burst
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate.per_second).min(self.rate.burst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let start = Instant::now();
        let mut bucket = Bucket::new(
            Rate {
                per_second: 10.0,
                burst: 5.0,
            },
            start,
        );
        for _ in 0..5 {
            assert_eq!(bucket.take(1.0, start), Duration::ZERO);
        }
        // The sixth message in the same instant waits a tenth of a second.
        let wait = bucket.take(1.0, start);
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-9, "{wait:?}");
        // After a second the bucket is full again (capped at the burst).
        let later = start + Duration::from_secs(1);
        assert_eq!(bucket.take(4.0, later), Duration::ZERO);
    }

    #[test]
    fn a_cost_above_the_burst_is_allowed_and_paid_for_afterwards() {
        let start = Instant::now();
        let mut bucket = Bucket::new(
            Rate {
                per_second: 100.0,
                burst: 100.0,
            },
            start,
        );
        let wait = bucket.take(300.0, start);
        assert!((wait.as_secs_f64() - 2.0).abs() < 1e-9, "{wait:?}");
    }

    #[test]
    fn a_refused_request_costs_nothing_and_says_when_to_retry() {
        let start = Instant::now();
        let mut bucket = Bucket::new(
            Rate {
                per_second: 20.0,
                burst: 2.0,
            },
            start,
        );
        assert_eq!(bucket.try_take(1.0, start), Ok(()));
        assert_eq!(bucket.try_take(1.0, start), Ok(()));
        let refused = bucket.try_take(1.0, start).expect_err("over");
        assert!((refused.as_secs_f64() - 0.05).abs() < 1e-9, "{refused:?}");
        // Refusals took nothing: after 50 ms exactly one more passes.
        let later = start + Duration::from_millis(50);
        assert_eq!(bucket.try_take(1.0, later), Ok(()));
        assert!(bucket.try_take(1.0, later).is_err());
        assert!(!bucket.is_full(later));
        assert!(bucket.is_full(later + Duration::from_millis(100)));
    }

    #[test]
    fn unlimited_never_waits() {
        let start = Instant::now();
        let mut bucket = Bucket::new(Rate::UNLIMITED, start);
        assert_eq!(bucket.take(1e12, start), Duration::ZERO);
    }
}
