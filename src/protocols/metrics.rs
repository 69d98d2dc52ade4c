//! `GET /metrics`: the Prometheus text format (version 0.0.4) of what the store and the HTTP
//! layer count, so limits being hit, hit rates and eviction show up on a dashboard.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `tessera_http_responses_total` | counter | `code` (HTTP status) |
//! | `tessera_grpc_calls_total` | counter | `code` (numeric `grpc-status`) |
//! | `tessera_auth_refusals_total` | counter | `reason` (`missing`, `expired`, `revoked`, `scope`, …) |
//! | `tessera_store_objects`, `…_bytes_used`, `…_budget_bytes`, `…_effective_budget_bytes`, `…_degraded`, `…_segments`, `…_pending_reservations` | gauge | `shard` |
//! | `tessera_store_hits_total`, `…_misses_total`, `…_corrupt_records_total`, `…_evicted_segments_total`, `…_copied_forward_total`, `…_no_space_total`, `…_filesystem_full_total`, `…_checkpoints_total`, `…_background_errors_total`, `…_bytes_written_total` | counter | `shard` |
//! | `tessera_store_oldest_entry_age_seconds` | gauge | `shard` (absent while the shard is empty) |
//! | `tessera_request_duration_seconds` | histogram | `protocol`, `operation`, `outcome` (`metrics::latency`) |
//! | `tessera_namespace_hits_total`, `…_misses_total`, `…_puts_total`, `…_bytes_written_total` | counter | `namespace` (at most 64, the rest as `other`; `usage`) |
//! | `tessera_namespace_stored_objects`, `…_stored_bytes` | gauge | `namespace` (at most 64 by bytes, the rest as `other`; `unknown`: entries written before namespace tags) |
//!
//! The server adds its own lines (connections) through [`ExtraMetrics`].

use std::fmt::Write;
use std::rc::Rc;

use crate::counters::{grpc_calls_by_status, responses_by_status};
use crate::metrics::latency;
use crate::store::{NamespaceUsage, ShardStats, StoreError};

use super::usage::{self, Counts};

use super::backend::Backend;

/// Writes further metrics (HELP, TYPE and samples) into the page.
pub type ExtraMetrics = Rc<dyn Fn(&mut String)>;

/// Writes one metric's HELP and TYPE lines.
pub fn describe(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

type ShardField = fn(&ShardStats) -> u64;

/// (name, type, help, field) of every per-shard metric.
const SHARD_METRICS: [(&str, &str, &str, ShardField); 17] = [
    ("tessera_store_objects", "gauge", "Live records.", |s| {
        s.objects
    }),
    (
        "tessera_store_bytes_used",
        "gauge",
        "Bytes of the segments in use.",
        |s| s.bytes_used,
    ),
    (
        "tessera_store_budget_bytes",
        "gauge",
        "The shard's share of max_size.",
        |s| s.budget_bytes,
    ),
    (
        "tessera_store_effective_budget_bytes",
        "gauge",
        "The budget in force: min(share of max_size, bytes used + share of the filesystem's free space - reserve).",
        |s| s.effective_budget_bytes,
    ),
    (
        "tessera_store_degraded",
        "gauge",
        "1 when the shard cannot take a new segment: its filesystem is full and nothing is evictable.",
        |s| u64::from(s.degraded),
    ),
    ("tessera_store_segments", "gauge", "Segment files.", |s| {
        s.segments
    }),
    (
        "tessera_store_pending_reservations",
        "gauge",
        "Uploads reserved and not yet committed or released.",
        |s| s.pending_reservations,
    ),
    (
        "tessera_store_hits_total",
        "counter",
        "Lookups that found a record.",
        |s| s.hits,
    ),
    (
        "tessera_store_misses_total",
        "counter",
        "Lookups that found nothing.",
        |s| s.misses,
    ),
    (
        "tessera_store_corrupt_records_total",
        "counter",
        "Records found damaged on read and dropped.",
        |s| s.corrupt,
    ),
    (
        "tessera_store_evicted_segments_total",
        "counter",
        "Segments evicted to stay within the budget.",
        |s| s.evicted_segments,
    ),
    (
        "tessera_store_copied_forward_total",
        "counter",
        "Records read near eviction and copied to the head.",
        |s| s.copied_forward,
    ),
    (
        "tessera_store_no_space_total",
        "counter",
        "Uploads refused for lack of evictable space (507).",
        |s| s.no_space,
    ),
    (
        "tessera_store_filesystem_full_total",
        "counter",
        "Times the filesystem refused space (ENOSPC/EDQUOT) that the budget allowed; each was answered by eviction or a refusal.",
        |s| s.filesystem_full,
    ),
    (
        "tessera_store_checkpoints_total",
        "counter",
        "Index checkpoints started.",
        |s| s.checkpoints_written,
    ),
    (
        "tessera_store_background_errors_total",
        "counter",
        "Background sync or checkpoint jobs that failed.",
        |s| s.background_errors,
    ),
    (
        "tessera_store_bytes_written_total",
        "counter",
        "Record bytes committed by puts; its rate is the write rate that sizes max_size.",
        |s| s.bytes_written,
    ),
];

type NamespaceField = fn(&Counts) -> u64;

/// (name, help, field) of every per-namespace counter.
const NAMESPACE_METRICS: [(&str, &str, NamespaceField); 4] = [
    (
        "tessera_namespace_hits_total",
        "Lookups that found an entry, by namespace.",
        |c| c.hits,
    ),
    (
        "tessera_namespace_misses_total",
        "Lookups that found nothing, by namespace.",
        |c| c.misses,
    ),
    (
        "tessera_namespace_puts_total",
        "Puts committed, by namespace.",
        |c| c.puts,
    ),
    (
        "tessera_namespace_bytes_written_total",
        "Body bytes of committed puts, by namespace.",
        |c| c.bytes_written,
    ),
];

type StoredField = fn(&NamespaceUsage) -> u64;

/// (name, help, field) of every per-namespace store gauge.
const STORED_METRICS: [(&str, &str, StoredField); 2] = [
    (
        "tessera_namespace_stored_objects",
        "Live entries in the store, by namespace.",
        |u| u.objects,
    ),
    (
        "tessera_namespace_stored_bytes",
        "Log bytes of the live entries (headers, metadata and bodies), by namespace.",
        |u| u.bytes,
    ),
];

/// Unix time now, in milliseconds.
pub fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// How long shard `stats` remembers: the age of its oldest live record, at most; `None` when
/// it holds nothing.
pub fn oldest_entry_age_seconds(stats: &ShardStats, now_ms: u64) -> Option<f64> {
    let created = stats.oldest_segment_created_ms?;
    Some(now_ms.saturating_sub(created) as f64 / 1000.0)
}

/// A Prometheus label value: `\`, `"` and newlines escaped.
pub fn label_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Renders the whole page.
pub async fn render<B: Backend>(
    backend: &B,
    extra: Option<&ExtraMetrics>,
) -> Result<String, StoreError> {
    let shards = backend.stats().await?;
    let mut out = String::with_capacity(4096);
    describe(
        &mut out,
        "tessera_http_responses_total",
        "counter",
        "HTTP/1.1 responses sent, by status code.",
    );
    for (status, count) in responses_by_status() {
        let _ = writeln!(
            out,
            "tessera_http_responses_total{{code=\"{status}\"}} {count}"
        );
    }
    describe(
        &mut out,
        "tessera_grpc_calls_total",
        "counter",
        "gRPC calls ended, by grpc-status code (0 OK, 5 NOT_FOUND, 14 UNAVAILABLE, ...).",
    );
    for (code, count) in grpc_calls_by_status() {
        let _ = writeln!(out, "tessera_grpc_calls_total{{code=\"{code}\"}} {count}");
    }
    describe(
        &mut out,
        "tessera_auth_refusals_total",
        "counter",
        "Requests refused by the authorization layer, by reason (missing token, a token \
         check that failed, scope).",
    );
    for (reason, count) in crate::auth::gate::refusals() {
        let _ = writeln!(
            out,
            "tessera_auth_refusals_total{{reason=\"{reason}\"}} {count}"
        );
    }
    describe(
        &mut out,
        "tessera_auth_rate_evictions_total",
        "counter",
        "Rate-limit buckets taken over for a new subject before they were full (more subjects \
         busy at once than auth::rate::RATE_SUBJECTS_MAX allows).",
    );
    let _ = writeln!(
        out,
        "tessera_auth_rate_evictions_total {}",
        crate::auth::rate::evictions()
    );
    for (name, kind, help, field) in SHARD_METRICS {
        describe(&mut out, name, kind, help);
        for (index, stats) in &shards {
            let _ = writeln!(out, "{name}{{shard=\"{index}\"}} {}", field(stats));
        }
    }
    describe(
        &mut out,
        "tessera_store_oldest_entry_age_seconds",
        "gauge",
        "Age of the shard's oldest segment that holds records: how long the cache remembers.",
    );
    let now_ms = now_unix_ms();
    for (index, stats) in &shards {
        if let Some(age) = oldest_entry_age_seconds(stats, now_ms) {
            let _ = writeln!(
                out,
                "tessera_store_oldest_entry_age_seconds{{shard=\"{index}\"}} {age}"
            );
        }
    }
    let namespaces = usage::snapshot();
    for (name, help, field) in NAMESPACE_METRICS {
        describe(&mut out, name, "counter", help);
        for (namespace, counts) in &namespaces {
            let namespace = label_value(namespace);
            let _ = writeln!(out, "{name}{{namespace=\"{namespace}\"}} {}", field(counts));
        }
    }
    let stored = usage::stored(&shards);
    for (name, help, field) in STORED_METRICS {
        describe(&mut out, name, "gauge", help);
        for (namespace, usage) in &stored {
            let namespace = label_value(namespace);
            let _ = writeln!(out, "{name}{{namespace=\"{namespace}\"}} {}", field(usage));
        }
    }
    latency::render_prometheus(&mut out, &latency::snapshot());
    if let Some(extra) = extra {
        extra(&mut out);
    }
    Ok(out)
}
