//! Rate limits per subject (`auth.rate`, `auth.burst`): a token bucket per subject and executor.
//!
//! A bucket holds up to `burst` requests and refills at `rate`; a request takes one, and a
//! request that finds none is refused with the time until one is back (HTTP 429 with
//! `Retry-After`, gRPC RESOURCE_EXHAUSTED; Nx, whose client fails on 429, gets 403/404).
//! Buckets are per executor (no lock on the request path): a subject whose connections land on
//! N cores may make up to N × `auth.rate` requests.
//!
//! Memory is bounded by [`RATE_SUBJECTS_MAX`] buckets per executor; when full, full buckets
//! (which carry no information: a new one starts full) are dropped, then arbitrary ones.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::config::RequestRate;

/// Subjects whose buckets one executor keeps: ~64 bytes each plus the name, so 64 KiB of
/// buckets (a few hundred KiB with names) per executor at most.
pub const RATE_SUBJECTS_MAX: usize = 1024;

struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// The buckets of one executor.
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: HashMap<Box<str>, Bucket>,
}

impl RateLimiter {
    /// `burst` defaults to one second's worth of `rate` (at least 1).
    pub fn new(rate: RequestRate, burst: Option<u64>) -> Self {
        let per_second = rate.per_second();
        let burst = burst.map_or(per_second.ceil().max(1.0), |b| b as f64);
        RateLimiter {
            per_second,
            burst,
            buckets: HashMap::new(),
        }
    }

    /// Takes one request from `subject`'s bucket at `now`; `Err(wait)` when it is empty.
    pub fn take(&mut self, subject: &str, now: Instant) -> Result<(), Duration> {
        if !self.buckets.contains_key(subject) {
            self.make_room(now);
            self.buckets.insert(
                subject.into(),
                Bucket {
                    tokens: self.burst,
                    updated: now,
                },
            );
        }
        let bucket = self.buckets.get_mut(subject).expect("inserted above");
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let missing = 1.0 - bucket.tokens;
        Err(Duration::from_secs_f64(missing / self.per_second))
    }

    fn make_room(&mut self, now: Instant) {
        if self.buckets.len() < RATE_SUBJECTS_MAX {
            return;
        }
        let (per_second, burst) = (self.per_second, self.burst);
        self.buckets.retain(|_, bucket| {
            let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
            bucket.tokens + elapsed * per_second < burst
        });
        while self.buckets.len() >= RATE_SUBJECTS_MAX {
            let victim = self.buckets.keys().next().cloned().expect("not empty");
            self.buckets.remove(&victim);
        }
    }

    /// Subjects tracked (tests).
    pub fn subjects(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(text: &str) -> RequestRate {
        crate::config::parse_rate(text).unwrap()
    }

    #[test]
    fn a_burst_then_the_rate_then_a_wait() {
        let mut limiter = RateLimiter::new(rate("10/s"), Some(3));
        let start = Instant::now();
        for _ in 0..3 {
            limiter.take("ci", start).unwrap();
        }
        let wait = limiter.take("ci", start).unwrap_err();
        assert!(wait > Duration::from_millis(90) && wait <= Duration::from_millis(100));
        // Other subjects have buckets of their own.
        limiter.take("other", start).unwrap();
        // A tenth of a second later one request is back, and only one.
        let later = start + Duration::from_millis(100);
        limiter.take("ci", later).unwrap();
        assert!(limiter.take("ci", later).is_err());
        // Refill stops at the burst.
        let much_later = start + Duration::from_secs(60);
        for _ in 0..3 {
            limiter.take("ci", much_later).unwrap();
        }
        assert!(limiter.take("ci", much_later).is_err());
    }

    #[test]
    fn memory_is_bounded() {
        let mut limiter = RateLimiter::new(rate("1/h"), Some(1));
        let now = Instant::now();
        for i in 0..RATE_SUBJECTS_MAX * 2 {
            limiter.take(&format!("s{i}"), now).unwrap();
        }
        assert!(limiter.subjects() <= RATE_SUBJECTS_MAX);
    }
}
