//! The status page: `GET /` for a browser (`Accept` with `text/html`) is [`PAGE`], a
//! self-contained HTML file (inline CSS and script, no external asset, works offline) that
//! polls `GET /status.json` ([`status_json`]) every few seconds and draws a chart of the last
//! minutes from the samples it has seen.
//!
//! `status.json` holds cumulative counts; rates (requests per second, bytes written per
//! second) are differences between two polls, computed by the page.

use serde::Serialize;

use crate::metrics::latency::{self, Operation, Outcome, PROTOCOLS};
use crate::store::{ShardStats, StoreError};

use super::backend::Backend;
use super::metrics::{now_unix_ms, oldest_entry_age_seconds};
use super::usage;

/// The page, compiled into the binary.
pub const PAGE: &str = include_str!("status.html");

/// Namespaces listed on the page, busiest first.
pub const BUSIEST_NAMESPACES_MAX: usize = 10;

/// Whether an `Accept` header value asks for HTML (browsers do; curl's `*/*` does not).
pub fn wants_html(accept: Option<&[u8]>) -> bool {
    let Some(accept) = accept.and_then(|a| std::str::from_utf8(a).ok()) else {
        return false;
    };
    accept.split(',').any(|range| {
        let media = range.split(';').next().unwrap_or("").trim();
        media.eq_ignore_ascii_case("text/html")
    })
}

#[derive(Serialize)]
pub struct Status {
    pub version: &'static str,
    pub uptime_seconds: f64,
    pub now_unix_ms: u64,
    pub protocols: Vec<ProtocolStatus>,
    pub operations: Vec<OperationStatus>,
    pub shards: Vec<ShardStatus>,
    /// The shortest retention of any shard holding records: how long this cache remembers.
    pub retention_seconds: Option<f64>,
    pub bytes_written: u64,
    pub evicted_segments: u64,
    pub namespaces: Vec<NamespaceStatus>,
}

#[derive(Serialize)]
pub struct ProtocolStatus {
    pub protocol: &'static str,
    /// Timed requests (every operation and outcome).
    pub requests: u64,
    pub hits: u64,
    pub misses: u64,
    /// hits / (hits + misses) of reads; `None` before the first read.
    pub hit_ratio: Option<f64>,
}

#[derive(Serialize)]
pub struct OperationStatus {
    pub operation: &'static str,
    pub count: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
}

#[derive(Serialize)]
pub struct ShardStatus {
    pub shard: u32,
    pub objects: u64,
    pub bytes_used: u64,
    pub budget_bytes: u64,
    pub oldest_entry_age_seconds: Option<f64>,
    pub evicted_segments: u64,
    pub bytes_written: u64,
}

#[derive(Serialize)]
pub struct NamespaceStatus {
    pub namespace: String,
    /// Live entries in the store and their log bytes (`usage::stored`).
    pub stored_objects: u64,
    pub stored_bytes: u64,
    pub hits: u64,
    pub misses: u64,
    pub puts: u64,
    pub bytes_written: u64,
}

/// The body of `GET /status.json`.
pub async fn status_json<B: Backend>(backend: &B) -> Result<String, StoreError> {
    let shards = backend.stats().await?;
    let status = build(&shards, &latency::snapshot(), now_unix_ms());
    Ok(serde_json::to_string(&status).expect("a status always serializes"))
}

fn build(shards: &[(u32, ShardStats)], timed: &[latency::Merged], now_ms: u64) -> Status {
    let protocols = PROTOCOLS
        .iter()
        .filter_map(|&protocol| {
            let mine = timed.iter().filter(|m| m.protocol == protocol);
            let count = |outcome: Option<Outcome>| -> u64 {
                mine.clone()
                    .filter(|m| {
                        outcome.is_none_or(|o| m.operation == Operation::Get && m.outcome == o)
                    })
                    .map(|m| m.series.histogram.len())
                    .sum()
            };
            let requests = count(None);
            let (hits, misses) = (count(Some(Outcome::Hit)), count(Some(Outcome::Miss)));
            (requests > 0).then(|| ProtocolStatus {
                protocol: protocol.as_str(),
                requests,
                hits,
                misses,
                hit_ratio: (hits + misses > 0).then(|| hits as f64 / (hits + misses) as f64),
            })
        })
        .collect();
    let operations = Operation::ALL
        .iter()
        .filter_map(|&operation| {
            let mut merged: Option<hdrhistogram::Histogram<u64>> = None;
            for m in timed.iter().filter(|m| m.operation == operation) {
                match &mut merged {
                    None => merged = Some(m.series.histogram.clone()),
                    Some(total) => {
                        let _ = total.add(&m.series.histogram);
                    }
                }
            }
            let histogram = merged?;
            Some(OperationStatus {
                operation: operation.as_str(),
                count: histogram.len(),
                p50_us: histogram.value_at_quantile(0.5),
                p99_us: histogram.value_at_quantile(0.99),
                p999_us: histogram.value_at_quantile(0.999),
            })
        })
        .collect();
    let shard_rows: Vec<ShardStatus> = shards
        .iter()
        .map(|(index, stats)| ShardStatus {
            shard: *index,
            objects: stats.objects,
            bytes_used: stats.bytes_used,
            budget_bytes: stats.budget_bytes,
            oldest_entry_age_seconds: oldest_entry_age_seconds(stats, now_ms),
            evicted_segments: stats.evicted_segments,
            bytes_written: stats.bytes_written,
        })
        .collect();
    let stored: std::collections::HashMap<String, crate::store::NamespaceUsage> =
        usage::stored(shards).into_iter().collect();
    let namespaces = usage::snapshot()
        .into_iter()
        .take(BUSIEST_NAMESPACES_MAX)
        .map(|(namespace, c)| NamespaceStatus {
            stored_objects: stored.get(&namespace).map_or(0, |u| u.objects),
            stored_bytes: stored.get(&namespace).map_or(0, |u| u.bytes),
            namespace,
            hits: c.hits,
            misses: c.misses,
            puts: c.puts,
            bytes_written: c.bytes_written,
        })
        .collect();
    Status {
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: crate::metrics::uptime().as_secs_f64(),
        now_unix_ms: now_ms,
        protocols,
        operations,
        retention_seconds: shard_rows
            .iter()
            .filter_map(|s| s.oldest_entry_age_seconds)
            .reduce(f64::min),
        bytes_written: shard_rows.iter().map(|s| s.bytes_written).sum(),
        evicted_segments: shard_rows.iter().map(|s| s.evicted_segments).sum(),
        shards: shard_rows,
        namespaces,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_accept_headers_naming_html_get_the_page() {
        let browser = b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        assert!(wants_html(Some(browser)));
        assert!(wants_html(Some(b"TEXT/HTML")));
        assert!(!wants_html(Some(b"*/*")));
        assert!(!wants_html(Some(b"text/plain, application/json")));
        assert!(!wants_html(Some(b"text/htmlx")));
        assert!(!wants_html(None));
    }

    #[test]
    fn the_page_is_self_contained() {
        for external in ["http://", "https://", "src=\"/", "href=\"/", "@import"] {
            assert!(!PAGE.contains(external), "the page refers to {external}");
        }
        assert!(PAGE.contains("/status.json"));
    }
}
