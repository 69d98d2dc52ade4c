//! What a run measured: a latency histogram of successful requests, byte and request counts, and
//! errors counted by kind (with the first message of each kind kept for the report).
//!
//! Each load thread owns one [`RunStats`]; the threads' stats are merged after the run.

use crate::limits::{LATENCY_NS_MAX, LATENCY_SIGNIFICANT_DIGITS};
use hdrhistogram::Histogram;
use std::fmt;
use std::time::Duration;

/// The kinds of failure a request can have. Every response is checked, so a wrong status or a
/// wrong byte is an error of its own kind, not a success.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// TCP connect failed (server down, refused, out of ports).
    Connect,
    /// Writing the request failed.
    Write,
    /// Reading the response failed.
    Read,
    /// The server closed the connection before a complete response.
    Closed,
    /// No complete response within the per-request timeout.
    Timeout,
    /// The response was not valid HTTP/1.1 (or used unsupported framing).
    Malformed,
    /// The status was not the one the operation expects (200 for a hit, 404 for a miss, …).
    Status,
    /// The body differed from the stored bytes (length or content).
    Body,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 8] = [
        ErrorKind::Connect,
        ErrorKind::Write,
        ErrorKind::Read,
        ErrorKind::Closed,
        ErrorKind::Timeout,
        ErrorKind::Malformed,
        ErrorKind::Status,
        ErrorKind::Body,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Write => "write",
            ErrorKind::Read => "read",
            ErrorKind::Closed => "closed",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Malformed => "malformed",
            ErrorKind::Status => "status",
            ErrorKind::Body => "body",
        }
    }

    fn slot(self) -> usize {
        ErrorKind::ALL
            .iter()
            .position(|&k| k == self)
            .expect("every kind is in ALL")
    }
}

/// One failed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError {
    pub kind: ErrorKind,
    pub detail: String,
}

impl RequestError {
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> RequestError {
        RequestError {
            kind,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.name(), self.detail)
    }
}

impl std::error::Error for RequestError {}

/// A fresh latency histogram in nanoseconds, 1 ns ..= LATENCY_NS_MAX, 3 significant digits.
pub fn new_latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_NS_MAX, LATENCY_SIGNIFICANT_DIGITS)
        .expect("the latency bounds are valid constants")
}

/// What one thread (or, merged, the whole run) measured.
#[derive(Debug, Clone)]
pub struct RunStats {
    /// Latency of every successful request, in nanoseconds.
    pub latency_ns: Histogram<u64>,
    pub requests_ok: u64,
    /// Body bytes sent (PUT) and received (GET) by successful requests.
    pub body_bytes: u64,
    errors: [u64; ErrorKind::ALL.len()],
    first_error: [Option<String>; ErrorKind::ALL.len()],
    /// Open loop only: requests whose intended send time fell inside the run but that were never
    /// sent because every connection was still busy when the run ended. Non-zero means the rate
    /// was not sustained and the percentiles understate the latency.
    pub not_sent: u64,
    /// Times a connection was re-opened because the server announced `Connection: close`.
    pub reconnects: u64,
    /// Wall time from the start of the measured phase to its last completed request.
    pub elapsed: Duration,
}

impl Default for RunStats {
    fn default() -> Self {
        RunStats {
            latency_ns: new_latency_histogram(),
            requests_ok: 0,
            body_bytes: 0,
            errors: [0; ErrorKind::ALL.len()],
            first_error: Default::default(),
            not_sent: 0,
            reconnects: 0,
            elapsed: Duration::ZERO,
        }
    }
}

impl RunStats {
    pub fn record_ok(&mut self, latency: Duration, body_bytes: u64) {
        let ns = (latency.as_nanos().min(LATENCY_NS_MAX as u128) as u64).max(1);
        self.latency_ns.saturating_record(ns);
        self.requests_ok += 1;
        self.body_bytes += body_bytes;
    }

    pub fn record_error(&mut self, error: &RequestError) {
        let slot = error.kind.slot();
        self.errors[slot] += 1;
        if self.first_error[slot].is_none() {
            self.first_error[slot] = Some(error.detail.clone());
        }
    }

    pub fn errors(&self, kind: ErrorKind) -> u64 {
        self.errors[kind.slot()]
    }

    pub fn errors_total(&self) -> u64 {
        self.errors.iter().sum()
    }

    pub fn first_error(&self, kind: ErrorKind) -> Option<&str> {
        self.first_error[kind.slot()].as_deref()
    }

    pub fn merge(&mut self, other: &RunStats) {
        self.latency_ns
            .add(&other.latency_ns)
            .expect("histograms share the same bounds");
        self.requests_ok += other.requests_ok;
        self.body_bytes += other.body_bytes;
        for slot in 0..self.errors.len() {
            self.errors[slot] += other.errors[slot];
            if self.first_error[slot].is_none() {
                self.first_error[slot].clone_from(&other.first_error[slot]);
            }
        }
        self.not_sent += other.not_sent;
        self.reconnects += other.reconnects;
        self.elapsed = self.elapsed.max(other.elapsed);
    }

    /// Adds a run that followed this one (another round of the same workload): like
    /// [`RunStats::merge`], but the elapsed times add up.
    pub fn merge_sequential(&mut self, later: &RunStats) {
        let elapsed = self.elapsed + later.elapsed;
        self.merge(later);
        self.elapsed = elapsed;
    }

    pub fn requests_per_sec(&self) -> f64 {
        per_sec(self.requests_ok as f64, self.elapsed)
    }

    /// Megabytes (10^6 bytes) of body per second.
    pub fn megabytes_per_sec(&self) -> f64 {
        per_sec(self.body_bytes as f64 / 1e6, self.elapsed)
    }

    /// Latency at `quantile` (0..=1) in milliseconds; 0 when nothing succeeded.
    pub fn latency_ms_at(&self, quantile: f64) -> f64 {
        if self.latency_ns.is_empty() {
            return 0.0;
        }
        self.latency_ns.value_at_quantile(quantile) as f64 / 1e6
    }

    pub fn latency_ms_max(&self) -> f64 {
        self.latency_ns.max() as f64 / 1e6
    }

    pub fn latency_ms_mean(&self) -> f64 {
        self.latency_ns.mean() / 1e6
    }
}

fn per_sec(amount: f64, elapsed: Duration) -> f64 {
    if elapsed.is_zero() {
        0.0
    } else {
        amount / elapsed.as_secs_f64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_counts_and_keeps_first_errors() {
        let mut a = RunStats::default();
        a.record_ok(Duration::from_millis(1), 100);
        a.record_error(&RequestError::new(ErrorKind::Status, "got 500"));
        a.elapsed = Duration::from_secs(1);
        let mut b = RunStats::default();
        b.record_ok(Duration::from_millis(3), 50);
        b.record_error(&RequestError::new(ErrorKind::Status, "got 503"));
        b.record_error(&RequestError::new(ErrorKind::Body, "byte 3 differs"));
        b.elapsed = Duration::from_secs(2);
        a.merge(&b);
        assert_eq!(a.requests_ok, 2);
        assert_eq!(a.body_bytes, 150);
        assert_eq!(a.errors(ErrorKind::Status), 2);
        assert_eq!(a.errors_total(), 3);
        assert_eq!(a.first_error(ErrorKind::Status), Some("got 500"));
        assert_eq!(a.first_error(ErrorKind::Body), Some("byte 3 differs"));
        assert_eq!(a.elapsed, Duration::from_secs(2));
        assert!((a.requests_per_sec() - 1.0).abs() < 1e-9);
        assert!((a.latency_ms_max() - 3.0).abs() < 0.01);
    }

    #[test]
    fn percentiles_match_a_sorted_reference() {
        let mut stats = RunStats::default();
        let mut values: Vec<u64> = (1..=10_000u64).map(|i| i * 1_000).collect(); // 1 µs .. 10 ms
        for &v in &values {
            stats.record_ok(Duration::from_nanos(v), 0);
        }
        values.sort_unstable();
        for q in [0.5, 0.9, 0.99, 0.999] {
            let reference =
                values[((q * values.len() as f64).ceil() as usize).saturating_sub(1)] as f64 / 1e6;
            let measured = stats.latency_ms_at(q);
            assert!(
                (measured - reference).abs() / reference < 0.002,
                "q {q}: {measured} vs {reference}"
            );
        }
    }
}
