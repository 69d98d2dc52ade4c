//! Rate limits per subject (`auth.rate`, `auth.burst`), process-wide: one table of buckets that
//! every executor shares, with no lock.
//!
//! A subject may make `burst` requests at once and then `rate` requests per second; a request
//! over that is refused with the time until the next one would pass (HTTP 429 with
//! `Retry-After`, gRPC RESOURCE_EXHAUSTED; Nx, whose client fails on 429, gets 403/404). The
//! limit holds for the subject wherever its connections land: the bucket is one atomic word in
//! a fixed table, not one bucket per executor.
//!
//! Each bucket is kept as GCRA (the generic cell rate algorithm, a token bucket stored as one
//! number): its *theoretical arrival time* `tat`, the moment at which the bucket would be full
//! again. With `T` = one request's interval (`1 s / rate`) and `B` = `burst`:
//!
//! ```text
//! request at now:  next = max(tat, now) + T
//!                  next - now <= B·T ─► admitted, tat = next   (one compare-and-swap)
//!                  otherwise         ─► refused, retry after next - now - B·T
//! ```
//!
//! Memory is fixed: [`RATE_SUBJECTS_MAX`] slots, each a subject's 64-bit hash (keyed SipHash;
//! two subjects share a bucket only if their hashes collide) and its `tat`. A subject is
//! looked up among [`RATE_PROBE_SLOTS`] slots from its hash. A new subject takes an empty slot,
//! else the slot in that window whose bucket refills first; taking a slot whose bucket is not
//! full yet (more subjects busy at once than the window holds) forgets that subject's debt and is
//! counted ([`evictions`], `tessera_auth_rate_evictions_total`).
//!
//! Approximations, all in the subject's favour by a request or so: two executors seeing a new
//! subject at the same instant may both count its first request against a fresh bucket, and a
//! request racing the reuse of its subject's slot may be counted in the new owner's bucket.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::config::RequestRate;

/// Subjects whose buckets the process keeps at once. A slot is one cache line (64 bytes, so
/// executors updating different subjects do not share a line): 256 KiB in all. A CI fleet uses
/// tens to hundreds of subjects; at 4096 a probe window is rarely full.
pub const RATE_SUBJECTS_MAX: usize = 4096;

/// Slots looked at for one subject, from its hash on. Eight slots (eight cache lines) bound the
/// cost of a request for a new subject; a subject already present is usually in the first.
pub const RATE_PROBE_SLOTS: usize = 8;

const _: () = assert!(RATE_PROBE_SLOTS <= RATE_SUBJECTS_MAX);
const _: () = assert!(RATE_SUBJECTS_MAX.is_power_of_two());

/// A slot's `key` when no subject has used it.
const EMPTY: u64 = 0;

/// Buckets given up for a new subject before they were full (process-wide).
static EVICTIONS: AtomicU64 = AtomicU64::new(0);

/// How many buckets were taken over before they were full (`/metrics`).
pub fn evictions() -> u64 {
    EVICTIONS.load(Ordering::Relaxed)
}

/// One subject's bucket.
#[repr(align(64))]
#[derive(Default)]
struct Slot {
    /// The subject's hash, or [`EMPTY`].
    key: AtomicU64,
    /// Nanoseconds since the table's epoch at which the bucket is full again.
    tat: AtomicU64,
}

/// The buckets of the whole process (shared by every executor through an `Arc`).
pub struct RateTable {
    interval_ns: u64,
    /// `burst × interval_ns`: how far ahead of now `tat` may run.
    tolerance_ns: u64,
    hasher: RandomState,
    epoch: Instant,
    slots: Box<[Slot]>,
    /// This table's share of [`EVICTIONS`].
    evicted: AtomicU64,
}

impl RateTable {
    /// `burst` defaults to one second's worth of `rate` (at least 1).
    pub fn new(rate: RequestRate, burst: Option<u64>) -> Self {
        let burst = burst.unwrap_or_else(|| (rate.per_second().ceil() as u64).max(1));
        let interval_ns = (rate.per.as_nanos() / u128::from(rate.requests.max(1))).max(1);
        let interval_ns = u64::try_from(interval_ns).unwrap_or(u64::MAX);
        RateTable {
            interval_ns,
            tolerance_ns: interval_ns.saturating_mul(burst.max(1)),
            hasher: RandomState::new(),
            epoch: Instant::now(),
            slots: (0..RATE_SUBJECTS_MAX).map(|_| Slot::default()).collect(),
            evicted: AtomicU64::new(0),
        }
    }

    /// Counts one request of `subject` at `now`; `Err(wait)` when it is over the limit.
    pub fn take(&self, subject: &str, now: Instant) -> Result<(), Duration> {
        let now_ns = now.saturating_duration_since(self.epoch).as_nanos() as u64;
        let key = self.hasher.hash_one(subject).max(1);
        let slot = self.slot_of(key, now_ns);
        let mut tat = slot.tat.load(Ordering::Acquire);
        loop {
            let next = tat.max(now_ns).saturating_add(self.interval_ns);
            let ahead = next - now_ns;
            if ahead > self.tolerance_ns {
                return Err(Duration::from_nanos(ahead - self.tolerance_ns));
            }
            match slot
                .tat
                .compare_exchange_weak(tat, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(()),
                Err(current) => tat = current,
            }
        }
    }

    /// The slot of `key`: its own, else a newly taken one.
    fn slot_of(&self, key: u64, now_ns: u64) -> &Slot {
        let start = key as usize & (RATE_SUBJECTS_MAX - 1);
        let window = |i: usize| &self.slots[(start + i) & (RATE_SUBJECTS_MAX - 1)];
        let mut empty = None;
        let mut oldest: Option<(&Slot, u64, u64)> = None;
        for i in 0..RATE_PROBE_SLOTS {
            let slot = window(i);
            let owner = slot.key.load(Ordering::Acquire);
            if owner == key {
                return slot;
            }
            if owner == EMPTY {
                empty.get_or_insert(slot);
                continue;
            }
            let tat = slot.tat.load(Ordering::Relaxed);
            if oldest.is_none_or(|(_, _, best)| tat < best) {
                oldest = Some((slot, owner, tat));
            }
        }
        let (slot, previous) = match (empty, oldest) {
            (Some(slot), _) => (slot, EMPTY),
            (None, Some((slot, owner, tat))) => {
                if tat > now_ns {
                    EVICTIONS.fetch_add(1, Ordering::Relaxed);
                    self.evicted.fetch_add(1, Ordering::Relaxed);
                }
                (slot, owner)
            }
            (None, None) => unreachable!("a probe window has at least one slot"),
        };
        let taken = slot
            .key
            .compare_exchange(previous, key, Ordering::AcqRel, Ordering::Acquire);
        if taken.is_ok() {
            // A full bucket: `tat` in the past.
            slot.tat.store(0, Ordering::Release);
        }
        // Otherwise another executor took it, for this subject or another: the subject gets
        // that slot's bucket anyway (a rare race; see the module docs).
        slot
    }

    /// Buckets this table took over before they were full.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Slots in use (tests).
    pub fn subjects(&self) -> usize {
        self.slots
            .iter()
            .filter(|slot| slot.key.load(Ordering::Relaxed) != EMPTY)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn rate(text: &str) -> RequestRate {
        crate::config::parse_rate(text).unwrap()
    }

    #[test]
    fn a_burst_then_the_rate_then_a_wait() {
        let limiter = RateTable::new(rate("10/s"), Some(3));
        let start = Instant::now();
        for _ in 0..3 {
            limiter.take("ci", start).unwrap();
        }
        let wait = limiter.take("ci", start).unwrap_err();
        assert!(
            wait > Duration::from_millis(90) && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
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
    fn memory_is_bounded_and_idle_buckets_are_reused_first() {
        let limiter = RateTable::new(rate("1/h"), Some(1));
        let now = Instant::now();
        for i in 0..RATE_SUBJECTS_MAX * 2 {
            // Every subject's only request is admitted: a new subject starts full.
            limiter.take(&format!("s{i}"), now).unwrap();
        }
        assert!(limiter.subjects() <= RATE_SUBJECTS_MAX);
        assert!(limiter.evicted() > 0, "busy buckets were taken over");
        // Every bucket is busy for an hour: a new subject whose window has no empty slot
        // takes one over, counted.
        let full_window = |subject: &str| {
            let start = limiter.hasher.hash_one(subject).max(1) as usize;
            (0..RATE_PROBE_SLOTS).all(|i| {
                let slot = &limiter.slots[(start + i) & (RATE_SUBJECTS_MAX - 1)];
                slot.key.load(Ordering::Relaxed) != EMPTY
            })
        };
        let new = (0..)
            .map(|i| format!("new{i}"))
            .find(|subject| full_window(subject))
            .unwrap();
        let evicted = limiter.evicted();
        limiter.take(&new, now).unwrap();
        assert_eq!(limiter.evicted(), evicted + 1);
        // Two hours later every bucket is full again: taken without counting.
        let later = now + Duration::from_secs(7200);
        limiter.take("later", later).unwrap();
        assert_eq!(limiter.evicted(), evicted + 1);
        // A subject that found its slot keeps its debt.
        assert!(limiter.take("later", later).is_err());
    }

    /// The limit is the process's: threads standing for executors share one budget.
    #[test]
    fn threads_share_one_budget_per_subject() {
        let limiter = Arc::new(RateTable::new(rate("1/h"), Some(100)));
        let now = Instant::now();
        let admitted: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let limiter = limiter.clone();
                    scope
                        .spawn(move || (0..100).filter(|_| limiter.take("ci", now).is_ok()).count())
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(admitted, 100);
    }

    /// Regression against a naive token bucket: the same answers for a random schedule.
    #[test]
    fn matches_a_naive_token_bucket() {
        let limiter = RateTable::new(rate("50/s"), Some(5));
        let start = Instant::now();
        let (mut tokens, mut last) = (5.0f64, 0u64);
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut at_ms = 0u64;
        for _ in 0..2000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            at_ms += seed % 30;
            tokens = (tokens + (at_ms - last) as f64 * 0.05).min(5.0);
            last = at_ms;
            let naive = tokens >= 1.0 - 1e-9;
            if naive {
                tokens -= 1.0;
            }
            let got = limiter
                .take("s", start + Duration::from_millis(at_ms))
                .is_ok();
            assert_eq!(got, naive, "at {at_ms} ms");
        }
    }
}
