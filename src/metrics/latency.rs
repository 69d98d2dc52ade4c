//! Request latency per protocol × operation × outcome: HDR histograms inside, Prometheus
//! histograms with fixed bucket bounds outside.
//!
//! ```text
//! executor thread ─ record(grpc, get, hit, 180µs) ─► its own Table (single writer)
//! scrape          ─ snapshot() ─► merge every Table ─► cumulative counts at BUCKET_BOUNDS_US
//! ```
//!
//! Each thread writes only its own table; the table sits behind a `Mutex` so that a scrape can
//! read it, which makes the lock uncontended on the request path except during a scrape (one
//! uncontended lock is an atomic exchange; nothing else crosses cores). Histograms are created
//! on first use, so a thread that only serves Bazel pays for Bazel's series alone.
//!
//! HDR histograms keep [`SIGNIFICANT_DIGITS`] digits: a Prometheus bucket's count may include
//! samples up to 1 % above its bound, and quantiles are within 1 %.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::protocols::backend::Protocol;

use super::per_thread::{lock, Tables};

/// Upper bounds of the exported Prometheus buckets, in microseconds: a cache answers a hit
/// from memory in tens of microseconds and a large upload in seconds.
pub const BUCKET_BOUNDS_US: [u64; 18] = [
    25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// Largest latency a histogram tells apart: 10 minutes (a 4 GiB upload over a slow link);
/// longer requests are counted at this value.
pub const LATENCY_US_MAX: u64 = 600_000_000;

/// Precision of every histogram: 2 significant digits (1 %). Each histogram then costs about
/// 2,000 counters × 8 bytes = 16 KiB, and at most [`SERIES_MAX`] exist per thread.
pub const SIGNIFICANT_DIGITS: u8 = 2;

/// The protocols that are timed, in label order.
pub const PROTOCOLS: [Protocol; 8] = [
    Protocol::BazelHttp,
    Protocol::Grpc,
    Protocol::Gradle,
    Protocol::Nx,
    Protocol::Turbo,
    Protocol::Ccache,
    Protocol::S3,
    Protocol::Admin,
];

/// What a request did to the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    /// A read of one entry (HTTP GET/HEAD, GetActionResult, ByteStream Read, BatchReadBlobs).
    Get,
    /// A write of one entry (HTTP PUT, UpdateActionResult, ByteStream Write, BatchUpdateBlobs).
    Put,
    Delete,
    /// A presence check of many keys (FindMissingBlobs).
    Contains,
}

impl Operation {
    pub const ALL: [Operation; 4] = [
        Operation::Get,
        Operation::Put,
        Operation::Delete,
        Operation::Contains,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Get => "get",
            Operation::Put => "put",
            Operation::Delete => "delete",
            Operation::Contains => "contains",
        }
    }
}

/// How a request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// Found (and served, or deleted).
    Hit,
    Miss,
    /// Written (or already there and kept).
    Stored,
    /// Refused as asked: too large, no space, busy, bad digest, already exists (Nx).
    Refused,
    /// The server failed: storage error, or the connection broke mid-answer.
    Error,
}

impl Outcome {
    pub const ALL: [Outcome; 5] = [
        Outcome::Hit,
        Outcome::Miss,
        Outcome::Stored,
        Outcome::Refused,
        Outcome::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Miss => "miss",
            Outcome::Stored => "stored",
            Outcome::Refused => "refused",
            Outcome::Error => "error",
        }
    }

    /// The outcome of a refusal answered with HTTP `status`: 500 is the server's failure,
    /// everything else a refusal.
    pub fn of_http_refusal(status: u16) -> Outcome {
        match status {
            500 => Outcome::Error,
            _ => Outcome::Refused,
        }
    }
}

/// Every (protocol, operation, outcome) a table can hold.
pub const SERIES_MAX: usize = PROTOCOLS.len() * Operation::ALL.len() * Outcome::ALL.len();

fn protocol_index(protocol: Protocol) -> usize {
    PROTOCOLS
        .iter()
        .position(|p| *p == protocol)
        .expect("PROTOCOLS lists every protocol")
}

fn slot(protocol: Protocol, operation: Operation, outcome: Outcome) -> usize {
    (protocol_index(protocol) * Operation::ALL.len() + operation as usize) * Outcome::ALL.len()
        + outcome as usize
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, SIGNIFICANT_DIGITS)
        .expect("constant histogram bounds are valid")
}

/// One series: its histogram and the exact sum of its samples.
#[derive(Clone)]
pub struct Series {
    pub histogram: Histogram<u64>,
    pub sum_us: u64,
}

/// One thread's series, by slot.
struct Table {
    series: Vec<Option<Series>>,
}

impl Table {
    fn new() -> Table {
        Table {
            series: vec![None; SERIES_MAX],
        }
    }
}

/// Every thread's table. Tables of threads that ended stay: their requests still happened.
static TABLES: Tables<Table> = Tables::new();

thread_local! {
    static MINE: Arc<Mutex<Table>> = TABLES.register(Table::new());
}

/// Records one request's latency on this thread.
pub fn record(protocol: Protocol, operation: Operation, outcome: Outcome, elapsed: Duration) {
    let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    let index = slot(protocol, operation, outcome);
    MINE.with(|table| {
        let mut table = lock(table);
        let series = table.series[index].get_or_insert_with(|| Series {
            histogram: new_histogram(),
            sum_us: 0,
        });
        series
            .histogram
            .saturating_record(micros.clamp(1, LATENCY_US_MAX));
        series.sum_us = series.sum_us.saturating_add(micros);
    });
}

/// One merged series of the whole process.
pub struct Merged {
    pub protocol: Protocol,
    pub operation: Operation,
    pub outcome: Outcome,
    pub series: Series,
}

/// Every series recorded so far on any thread, merged, in label order.
pub fn snapshot() -> Vec<Merged> {
    let mut merged: Vec<Option<Series>> = vec![None; SERIES_MAX];
    let tables = TABLES.all();
    for table in tables {
        let table = lock(&table);
        for (total, series) in merged.iter_mut().zip(&table.series) {
            let Some(series) = series else { continue };
            match total {
                None => *total = Some(series.clone()),
                Some(total) => {
                    // Same bounds everywhere, so adding cannot fail.
                    let _ = total.histogram.add(&series.histogram);
                    total.sum_us = total.sum_us.saturating_add(series.sum_us);
                }
            }
        }
    }
    let mut out = Vec::new();
    for protocol in PROTOCOLS {
        for operation in Operation::ALL {
            for outcome in Outcome::ALL {
                if let Some(series) = merged[slot(protocol, operation, outcome)].take() {
                    out.push(Merged {
                        protocol,
                        operation,
                        outcome,
                        series,
                    });
                }
            }
        }
    }
    out
}

/// The Prometheus histogram family name.
pub const METRIC: &str = "tessera_request_duration_seconds";

/// Writes every series as a Prometheus histogram (`_bucket`, `_sum`, `_count`).
pub fn render_prometheus(out: &mut String, merged: &[Merged]) {
    use std::fmt::Write;
    let _ = writeln!(
        out,
        "# HELP {METRIC} Request latency by protocol, operation and outcome."
    );
    let _ = writeln!(out, "# TYPE {METRIC} histogram");
    for m in merged {
        let labels = format!(
            "protocol=\"{}\",operation=\"{}\",outcome=\"{}\"",
            m.protocol.as_str(),
            m.operation.as_str(),
            m.outcome.as_str()
        );
        let histogram = &m.series.histogram;
        for bound in BUCKET_BOUNDS_US {
            let count = histogram.count_between(0, bound);
            let le = bound as f64 / 1e6;
            let _ = writeln!(out, "{METRIC}_bucket{{{labels},le=\"{le}\"}} {count}");
        }
        let total = histogram.len();
        let _ = writeln!(out, "{METRIC}_bucket{{{labels},le=\"+Inf\"}} {total}");
        let sum = m.series.sum_us as f64 / 1e6;
        let _ = writeln!(out, "{METRIC}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{METRIC}_count{{{labels}}} {total}");
    }
}

/// Times one request: [`finish`](Self::finish) records it.
pub struct Timer {
    started: std::time::Instant,
}

impl Timer {
    pub fn start() -> Timer {
        Timer {
            started: std::time::Instant::now(),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn finish(self, protocol: Protocol, operation: Operation, outcome: Outcome) {
        record(protocol, operation, outcome, self.started.elapsed());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only(merged: &[Merged], p: Protocol, o: Operation, out: Outcome) -> &Series {
        let found: Vec<_> = merged
            .iter()
            .filter(|m| m.protocol == p && m.operation == o && m.outcome == out)
            .collect();
        assert_eq!(found.len(), 1);
        &found[0].series
    }

    #[test]
    fn threads_record_into_their_own_tables_and_a_snapshot_merges_them() {
        // The Admin protocol is used by no other test of this process.
        let threads: Vec<_> = (0..3)
            .map(|i| {
                std::thread::spawn(move || {
                    for _ in 0..10 {
                        record(
                            Protocol::Admin,
                            Operation::Delete,
                            Outcome::Miss,
                            Duration::from_micros(40 + i),
                        );
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let merged = snapshot();
        let series = only(&merged, Protocol::Admin, Operation::Delete, Outcome::Miss);
        assert_eq!(series.histogram.len(), 30);
        assert_eq!(series.sum_us, 10 * (40 + 41 + 42));
    }

    #[test]
    fn prometheus_buckets_are_cumulative_at_the_fixed_bounds() {
        let mut histogram = new_histogram();
        for micros in [10, 30, 30, 700, 2_000_000, 900_000_000] {
            histogram.saturating_record(micros.clamp(1, LATENCY_US_MAX));
        }
        let merged = [Merged {
            protocol: Protocol::Gradle,
            operation: Operation::Get,
            outcome: Outcome::Hit,
            series: Series {
                histogram,
                sum_us: 123,
            },
        }];
        let mut out = String::new();
        render_prometheus(&mut out, &merged);
        let bucket = |le: &str| -> u64 {
            let prefix = format!(
                "{METRIC}_bucket{{protocol=\"gradle\",operation=\"get\",outcome=\"hit\",le=\"{le}\"}} "
            );
            let line = out.lines().find(|l| l.starts_with(&prefix)).expect(le);
            line[prefix.len()..].parse().unwrap()
        };
        assert_eq!(bucket("0.000025"), 1);
        assert_eq!(bucket("0.00005"), 3);
        assert_eq!(bucket("0.001"), 4);
        assert_eq!(bucket("2.5"), 5);
        assert_eq!(bucket("10"), 5);
        assert_eq!(bucket("+Inf"), 6);
        assert!(out.contains(&format!(
            "{METRIC}_sum{{protocol=\"gradle\",operation=\"get\",outcome=\"hit\"}} 0.000123"
        )));
        assert!(out.contains("outcome=\"hit\"} 6\n"), "{out}");
    }
}
