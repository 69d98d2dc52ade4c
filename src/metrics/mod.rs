//! Cross-cutting measurements that every layer feeds and `/metrics` (and the status page) read.
//!
//! - [`latency`]: HDR latency histograms per protocol × operation × outcome, one table per
//!   executor thread, merged when read.
//! - [`per_thread`]: the per-thread table registry both it and usage counting write into.

pub mod latency;
pub mod per_thread;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

static STARTED: OnceLock<Instant> = OnceLock::new();

/// Marks the process as started (the server calls it first thing); later calls change nothing.
pub fn mark_started() {
    let _ = STARTED.set(Instant::now());
}

/// Time since [`mark_started`] (zero if it was never called).
pub fn uptime() -> Duration {
    STARTED.get().map_or(Duration::ZERO, Instant::elapsed)
}
