//! Turning a [`RunStats`] into what people and tools read: the human table, a JSON summary, the
//! HDR percentile distribution (`.hgrm`, the HdrHistogram text format, values in milliseconds) and
//! a loud banner when anything failed.

use crate::stats::{ErrorKind, RunStats};
use std::fmt::Write as _;

/// Percentiles shown in the table and the JSON summary.
pub const TABLE_QUANTILES: [(f64, &str); 5] = [
    (0.5, "p50"),
    (0.9, "p90"),
    (0.99, "p99"),
    (0.999, "p99.9"),
    (0.9999, "p99.99"),
];

/// Describes the run a [`RunStats`] came from (for the JSON summary).
#[derive(Debug, Clone, Default)]
pub struct RunInfo {
    pub label: String,
    pub target: String,
    pub protocol: String,
    /// `closed` or `open@<rate>/s`.
    pub mode: String,
    pub threads: usize,
    pub connections: usize,
    pub duration_secs: f64,
    pub objects: usize,
    pub sizes: String,
    pub popularity: String,
    pub write_ratio: f64,
    pub miss_ratio: f64,
}

pub fn table_header() -> String {
    let mut line = format!("{:<32} {:>11} {:>9}", "run", "req/s", "MB/s");
    for (_, name) in TABLE_QUANTILES {
        let _ = write!(line, " {:>9}", name);
    }
    let _ = write!(line, " {:>9} {:>8}", "max", "errors");
    line.push('\n');
    line.push_str(&"-".repeat(line.len() - 1));
    line
}

/// One table row; latencies in milliseconds.
pub fn table_row(label: &str, stats: &RunStats) -> String {
    let mut line = format!(
        "{:<32} {:>11.0} {:>9.1}",
        label,
        stats.requests_per_sec(),
        stats.megabytes_per_sec()
    );
    for (quantile, _) in TABLE_QUANTILES {
        let _ = write!(line, " {:>9}", format_ms(stats.latency_ms_at(quantile)));
    }
    let _ = write!(
        line,
        " {:>9} {:>8}",
        format_ms(stats.latency_ms_max()),
        stats.errors_total()
    );
    line
}

/// Milliseconds with three significant digits (`0.0412`, `1.23`, `1000`).
pub fn format_ms(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 10.0 {
        format!("{ms:.1}")
    } else if ms >= 1.0 {
        format!("{ms:.2}")
    } else if ms >= 0.1 {
        format!("{ms:.3}")
    } else {
        format!("{ms:.4}")
    }
}

/// `None` when the run was clean; otherwise a multi-line banner naming every error kind with its
/// count and first message, and any unsent open-loop requests.
pub fn problems_banner(stats: &RunStats) -> Option<String> {
    let mut text = String::new();
    for kind in ErrorKind::ALL {
        let count = stats.errors(kind);
        if count > 0 {
            let _ = writeln!(
                text,
                "  {count:>10} {:<10} first: {}",
                kind.name(),
                stats.first_error(kind).unwrap_or("?")
            );
        }
    }
    if stats.not_sent > 0 {
        let _ = writeln!(
            text,
            "  {:>10} requests scheduled by the open loop were never sent: the rate was not sustained and the percentiles understate the latency",
            stats.not_sent
        );
    }
    if text.is_empty() {
        return None;
    }
    let total = stats.errors_total();
    Some(format!(
        "!!!!!!!!!! THIS RUN HAD PROBLEMS: {total} failed requests out of {} — its numbers are not a valid measurement !!!!!!!!!!\n{text}",
        total + stats.requests_ok
    ))
}

/// The JSON summary of one run (no dependency on serde: the structure is flat and fixed).
pub fn to_json(info: &RunInfo, stats: &RunStats) -> String {
    let mut out = String::from("{\n");
    let mut field = |name: &str, value: String| {
        let _ = writeln!(out, "  \"{name}\": {value},");
    };
    field("label", json_string(&info.label));
    field("target", json_string(&info.target));
    field("protocol", json_string(&info.protocol));
    field("mode", json_string(&info.mode));
    field("threads", info.threads.to_string());
    field("connections", info.connections.to_string());
    field("duration_secs", json_number(info.duration_secs));
    field("objects", info.objects.to_string());
    field("sizes", json_string(&info.sizes));
    field("popularity", json_string(&info.popularity));
    field("write_ratio", json_number(info.write_ratio));
    field("miss_ratio", json_number(info.miss_ratio));
    field("requests_ok", stats.requests_ok.to_string());
    field("body_bytes", stats.body_bytes.to_string());
    field("elapsed_secs", json_number(stats.elapsed.as_secs_f64()));
    field("requests_per_sec", json_number(stats.requests_per_sec()));
    field("megabytes_per_sec", json_number(stats.megabytes_per_sec()));
    field("not_sent", stats.not_sent.to_string());
    field("reconnects", stats.reconnects.to_string());
    let errors: Vec<String> = ErrorKind::ALL
        .iter()
        .map(|&k| format!("\"{}\": {}", k.name(), stats.errors(k)))
        .collect();
    field("errors", format!("{{{}}}", errors.join(", ")));
    field("errors_total", stats.errors_total().to_string());
    let mut latency: Vec<String> = TABLE_QUANTILES
        .iter()
        .map(|&(q, name)| format!("\"{name}\": {}", json_number(stats.latency_ms_at(q))))
        .collect();
    latency.push(format!("\"max\": {}", json_number(stats.latency_ms_max())));
    latency.push(format!(
        "\"mean\": {}",
        json_number(stats.latency_ms_mean())
    ));
    let _ = writeln!(out, "  \"latency_ms\": {{{}}}", latency.join(", "));
    out.push_str("}\n");
    out
}

pub fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_number(value: f64) -> String {
    if value.is_finite() {
        format!("{value}")
    } else {
        "null".to_string()
    }
}

/// Ticks per half-distance to 100 % in the `.hgrm` output: 5 gives the customary HdrHistogram
/// resolution (denser towards the tail).
pub const HGRM_TICKS_PER_HALF_DISTANCE: u32 = 5;

/// The percentile distribution in HdrHistogram's text format (values in milliseconds), which
/// existing HdrHistogram plotters read and [`parse_hgrm`] reads back.
pub fn to_hgrm(stats: &RunStats) -> String {
    let histogram = &stats.latency_ns;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    if !histogram.is_empty() {
        let mut total = 0u64;
        for step in histogram.iter_quantiles(HGRM_TICKS_PER_HALF_DISTANCE) {
            total += step.count_since_last_iteration();
            let quantile = step.quantile_iterated_to();
            let value_ms = step.value_iterated_to() as f64 / 1e6;
            if quantile < 1.0 {
                let _ = writeln!(
                    out,
                    "{value_ms:>12.3} {quantile:>14.12} {total:>10} {:>14.2}",
                    1.0 / (1.0 - quantile)
                );
            } else {
                let _ = writeln!(out, "{value_ms:>12.3} {quantile:>14.12} {total:>10}");
            }
        }
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
        histogram.mean() / 1e6,
        histogram.stdev() / 1e6
    );
    let _ = writeln!(
        out,
        "#[Max     = {:>12.3}, Total count    = {:>12}]",
        histogram.max() as f64 / 1e6,
        histogram.len()
    );
    out
}

/// Reads the (percentile 0..=1, value ms) points of an `.hgrm` file; header, blank and `#` lines
/// are skipped. Errors name the offending line.
pub fn parse_hgrm(text: &str) -> Result<Vec<(f64, f64)>, String> {
    let mut points = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with("Value") {
            continue;
        }
        let mut fields = line.split_whitespace();
        let value = fields.next().and_then(|f| f.parse::<f64>().ok());
        let quantile = fields.next().and_then(|f| f.parse::<f64>().ok());
        match (value, quantile) {
            (Some(v), Some(q)) if v.is_finite() && (0.0..=1.0).contains(&q) => points.push((q, v)),
            _ => {
                return Err(format!(
                    "line {}: `{line}` is not `VALUE PERCENTILE ...`",
                    number + 1
                ))
            }
        }
    }
    if points.is_empty() {
        return Err("no percentile lines".to_string());
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::RequestError;
    use std::time::Duration;

    fn sample_stats() -> RunStats {
        let mut stats = RunStats::default();
        for i in 1..=1000u64 {
            stats.record_ok(Duration::from_micros(i * 10), 4096); // 10 µs .. 10 ms
        }
        stats.elapsed = Duration::from_secs(2);
        stats
    }

    #[test]
    fn hgrm_round_trips_through_the_parser() {
        let stats = sample_stats();
        let text = to_hgrm(&stats);
        let points = parse_hgrm(&text).unwrap();
        assert!(points.len() > 20);
        assert!(
            points
                .windows(2)
                .all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1),
            "monotonic"
        );
        let (last_q, last_v) = *points.last().unwrap();
        assert_eq!(last_q, 1.0);
        assert!((last_v - 10.0).abs() < 0.02, "max {last_v}");
        // The median line of the file agrees with the histogram.
        let median = points.iter().find(|p| p.0 >= 0.5).unwrap().1;
        assert!((median - stats.latency_ms_at(0.5)).abs() < 0.02, "{median}");
        assert!(text.contains("Total count    =         1000"));
    }

    #[test]
    fn parse_hgrm_rejects_garbage() {
        assert!(parse_hgrm("").is_err());
        assert!(parse_hgrm("Value Percentile\n1.0 x 3\n")
            .unwrap_err()
            .contains("line 2"));
        assert!(parse_hgrm("1.0 1.5 3\n").is_err());
    }

    #[test]
    fn table_and_json_carry_the_numbers() {
        let mut stats = sample_stats();
        let row = table_row("nginx get-4k", &stats);
        assert!(row.starts_with("nginx get-4k"));
        assert!(row.contains(" 500 "), "req/s 1000 over 2 s: {row}");
        let json = to_json(
            &RunInfo {
                label: "a \"quoted\" run".into(),
                ..Default::default()
            },
            &stats,
        );
        assert!(json.contains("\"label\": \"a \\\"quoted\\\" run\""));
        assert!(json.contains("\"requests_per_sec\": 500,"));
        assert!(json.contains("\"errors_total\": 0,"));
        assert!(problems_banner(&stats).is_none());
        stats.record_error(&RequestError::new(
            ErrorKind::Body,
            "GET /cas/x: bytes differ",
        ));
        let banner = problems_banner(&stats).unwrap();
        assert!(banner.contains("1 failed requests out of 1001"));
        assert!(banner.contains("body") && banner.contains("bytes differ"));
        assert_eq!(table_header().lines().count(), 2);
    }

    #[test]
    fn format_ms_keeps_three_significant_digits() {
        assert_eq!(format_ms(0.041234), "0.0412");
        assert_eq!(format_ms(0.5), "0.500");
        assert_eq!(format_ms(1.234), "1.23");
        assert_eq!(format_ms(12.34), "12.3");
        assert_eq!(format_ms(1000.4), "1000");
    }
}
