//! Cross-cutting measurements that every layer feeds and `/metrics` (and the status page) read.
//!
//! - [`latency`]: HDR latency histograms per protocol × operation × outcome, one table per
//!   executor thread, merged when read.

pub mod latency;
