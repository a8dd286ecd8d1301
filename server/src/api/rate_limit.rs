//! The document API's rate limit: a token bucket per client address (the peer's, or behind
//! `COLLAB_SERVER_TRUSTED_PROXIES` the address they forward), checked before the secret, so a
//! caller guessing secrets is slowed down too. Over the limit: `429` with `Retry-After`.
//! The default is Tiptap Cloud's: 100 requests per 5 s, bursts of 200.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::connection::rate::{Bucket, Rate};

/// Addresses tracked before full buckets (callers at rest) are forgotten.
const MAX_TRACKED: usize = 65_536;

pub struct RateLimit {
    rate: Rate,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl RateLimit {
    /// `per_second` requests sustained and `burst` at once; `per_second` 0 is no limit.
    pub fn new(per_second: u32, burst: u32) -> Self {
        let rate = if per_second == 0 {
            Rate::UNLIMITED
        } else {
            Rate {
                per_second: f64::from(per_second),
                burst: f64::from(burst.max(1)),
            }
        };
        Self {
            rate,
            buckets: Mutex::default(),
        }
    }

    /// Takes one request of `client` at `now`; `Err(retry after)` when it is over the limit.
    pub fn check(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        if self.rate == Rate::UNLIMITED {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&client) {
            buckets.retain(|_, bucket| !bucket.is_full(now));
            if buckets.len() >= MAX_TRACKED {
                // Every tracked caller is in debt (a flood from many forwarded addresses):
                // start over rather than grow without bound.
                buckets.clear();
            }
        }
        buckets
            .entry(client)
            .or_insert_with(|| Bucket::new(self.rate, now))
            .try_take(1.0, now)
    }

    /// Addresses tracked now.
    pub fn tracked(&self) -> usize {
        self.buckets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn each_address_has_its_own_budget() {
        let limit = RateLimit::new(20, 200);
        let now = Instant::now();
        for _ in 0..200 {
            assert_eq!(limit.check(ip(1), now), Ok(()));
        }
        let wait = limit.check(ip(1), now).expect_err("the 201st at once");
        assert!((wait.as_secs_f64() - 0.05).abs() < 1e-9, "{wait:?}");
        assert_eq!(limit.check(ip(2), now), Ok(()), "another address");
        // 100 requests per 5 s sustained.
        let later = now + Duration::from_secs(5);
        for _ in 0..100 {
            assert_eq!(limit.check(ip(1), later), Ok(()));
        }
        assert!(limit.check(ip(1), later).is_err());
    }

    #[test]
    fn zero_is_no_limit() {
        let limit = RateLimit::new(0, 0);
        let now = Instant::now();
        for _ in 0..10_000 {
            assert_eq!(limit.check(ip(1), now), Ok(()));
        }
        assert_eq!(limit.tracked(), 0);
    }

    #[test]
    fn callers_at_rest_are_forgotten_when_many_are_tracked() {
        let limit = RateLimit::new(1000, 1);
        let now = Instant::now();
        for i in 0..MAX_TRACKED {
            let address = IpAddr::from((i as u32).to_be_bytes());
            assert_eq!(limit.check(address, now), Ok(()));
        }
        assert_eq!(limit.tracked(), MAX_TRACKED);
        // A second later every bucket is full again: a new caller makes room.
        let later = now + Duration::from_secs(1);
        assert_eq!(limit.check(ip(200), later), Ok(()));
        assert_eq!(limit.tracked(), 1);
    }
}
