//! Every bound of the HTTP/1.1 wire layer: compile-time capacities (constants) and the
//! per-server configuration ([`Limits`]).
//!
//! Memory per connection is `recv_buffer_bytes + 2 × response_head_bytes_max` (receive buffer,
//! response-header and response-head buffers) plus the header array (`HEADER_COUNT_CAPACITY` ×
//! 32 bytes = 4 KiB, inside the connection future) — with the defaults 64 + 16 + 4 ≈ 84 KiB, so
//! 10 000 connections cost ≈ 840 MiB. Bound connection counts in the server accordingly.

use std::fmt;
use std::time::Duration;

/// Capacity of the header array the driver hands to the parser (each entry is a name slice plus a
/// value slice: 2 × 16 bytes = 32 bytes, so 128 entries = 4 KiB per connection future).
/// [`Limits::header_count_max`] may be configured up to this value.
pub const HEADER_COUNT_CAPACITY: usize = 128;

/// Default request-line bound: 8 KiB. S3 object keys are ≤ 1024 bytes, percent-encoded at most
/// ×3 = 3 KiB, plus a presigned query string (≈ 1.5 KiB); Bazel/Gradle/Nx/Turbo paths are < 200 bytes.
pub const REQUEST_LINE_BYTES_MAX: usize = 8 * 1024;

/// Default bound on the whole request head (request line + header lines + CRLFs): 32 KiB, room for
/// a multi-KiB bearer token (JWT) and an S3 SigV4 header set (≈ 2 KiB).
pub const HEAD_BYTES_MAX: usize = 32 * 1024;

/// Default header count bound: 64. The chattiest client (boto3 PutObject) sends ≈ 15 headers.
pub const HEADER_COUNT_MAX: usize = 64;

/// Default request-body bound: 16 GiB. Larger than any build output we expect; the store applies
/// its own (space-based) limit on top.
pub const BODY_BYTES_MAX: u64 = 16 * 1024 * 1024 * 1024;

/// Default bound on one chunk-size line (hex size + ignored extensions + CRLF): 1 KiB. A size is at
/// most 16 hex digits; clients do not send extensions except `aws-chunked` signatures (≈ 100 bytes).
pub const CHUNK_LINE_BYTES_MAX: usize = 1024;

/// Default bound on the chunked trailer section (all trailer lines, discarded): 8 KiB.
pub const TRAILER_BYTES_MAX: usize = 8 * 1024;

/// Default receive buffer per connection: 64 KiB = `HEAD_BYTES_MAX` (32 KiB) for the head plus at
/// least 32 KiB for body bytes and pipelined requests that arrive with it.
pub const RECV_BUFFER_BYTES: usize = 64 * 1024;

/// Default bound on an unread request body the driver reads and discards to keep the connection
/// alive (64 KiB ≈ one receive buffer); a larger unread remainder closes the connection instead.
pub const DRAIN_BODY_BYTES_MAX: u64 = 64 * 1024;

/// Default bound on a response head (status line + service headers + framing headers): 8 KiB.
pub const RESPONSE_HEAD_BYTES_MAX: usize = 8 * 1024;

/// The smallest receive-buffer room left for body bytes after a maximal head. The chunked decoder
/// is incremental, so any non-zero room works; 1 KiB keeps the number of reads per chunk line at 1.
pub const BODY_WINDOW_BYTES_MIN: usize = 1024;

// Invariant: a maximal head plus the minimal body window fits the default receive buffer, and a
// request line fits in a head.
const _: () = assert!(HEAD_BYTES_MAX + BODY_WINDOW_BYTES_MIN <= RECV_BUFFER_BYTES);
const _: () = assert!(REQUEST_LINE_BYTES_MAX <= HEAD_BYTES_MAX);
const _: () = assert!(HEADER_COUNT_MAX <= HEADER_COUNT_CAPACITY);
const _: () = assert!(DRAIN_BODY_BYTES_MAX <= BODY_BYTES_MAX);

/// The configurable bounds of one HTTP/1.1 server. Start from [`Limits::default`] and check a
/// configured value with [`Limits::validate`] at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Request line including its CRLF; exceeded → 414 (or 400 if no target started).
    pub request_line_bytes_max: usize,
    /// Whole request head including the final empty line; exceeded → 431.
    pub head_bytes_max: usize,
    /// Header fields per request; exceeded → 431. At most [`HEADER_COUNT_CAPACITY`].
    pub header_count_max: usize,
    /// Request body (Content-Length or decoded chunked); exceeded → 413, decided from
    /// Content-Length before any body byte is read.
    pub body_bytes_max: u64,
    /// One chunk-size line including extensions and CRLF; exceeded → 400.
    pub chunk_line_bytes_max: usize,
    /// Chunked trailer section (discarded); exceeded → 431.
    pub trailer_bytes_max: usize,
    /// Receive buffer per connection (head, buffered body bytes, pipelined requests).
    pub recv_buffer_bytes: usize,
    /// Unread request body the driver discards to keep a connection alive; more → close.
    pub drain_body_bytes_max: u64,
    /// Response head rendered by the responder; exceeded → the service gets an `InvalidInput` error.
    pub response_head_bytes_max: usize,
    /// From the first byte of a request head to its final CRLF; exceeded → 408 and close.
    pub head_timeout: Duration,
    /// Waiting for the first byte of a request (new or kept-alive connection); exceeded → close.
    pub idle_timeout: Duration,
    /// Waiting for any progress while reading a request body; exceeded → the body read fails with
    /// `TimedOut` and the connection closes.
    pub body_stall_timeout: Duration,
    /// Waiting for any progress while writing a response; exceeded → close.
    pub write_stall_timeout: Duration,
    /// After the server closes with an error response, how long it keeps reading (and discarding)
    /// so the client sees the response instead of a reset.
    pub linger_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            request_line_bytes_max: REQUEST_LINE_BYTES_MAX,
            head_bytes_max: HEAD_BYTES_MAX,
            header_count_max: HEADER_COUNT_MAX,
            body_bytes_max: BODY_BYTES_MAX,
            chunk_line_bytes_max: CHUNK_LINE_BYTES_MAX,
            trailer_bytes_max: TRAILER_BYTES_MAX,
            recv_buffer_bytes: RECV_BUFFER_BYTES,
            drain_body_bytes_max: DRAIN_BODY_BYTES_MAX,
            response_head_bytes_max: RESPONSE_HEAD_BYTES_MAX,
            head_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_stall_timeout: Duration::from_secs(30),
            write_stall_timeout: Duration::from_secs(30),
            linger_timeout: Duration::from_secs(2),
        }
    }
}

/// A [`Limits`] value that cannot work; names the field and the rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsError {
    /// The `Limits` field at fault.
    pub field: &'static str,
    /// The rule it breaks.
    pub rule: &'static str,
}

impl fmt::Display for LimitsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http1 limit `{}`: {}", self.field, self.rule)
    }
}

impl std::error::Error for LimitsError {}

impl Limits {
    /// Checks the relationships between the bounds (the runtime twin of the const asserts above).
    pub fn validate(&self) -> Result<(), LimitsError> {
        let fail = |field, rule| Err(LimitsError { field, rule });
        if self.request_line_bytes_max < 16 {
            return fail("request_line_bytes_max", "must be at least 16 bytes");
        }
        if self.head_bytes_max < self.request_line_bytes_max {
            return fail("head_bytes_max", "must be >= request_line_bytes_max");
        }
        if self.header_count_max == 0 || self.header_count_max > HEADER_COUNT_CAPACITY {
            return fail(
                "header_count_max",
                "must be in 1..=HEADER_COUNT_CAPACITY (128)",
            );
        }
        if self.recv_buffer_bytes < self.head_bytes_max + BODY_WINDOW_BYTES_MIN {
            return fail("recv_buffer_bytes", "must be >= head_bytes_max + 1024");
        }
        if self.chunk_line_bytes_max < 3 {
            return fail(
                "chunk_line_bytes_max",
                "must be at least 3 bytes (\"0\\r\\n\")",
            );
        }
        if self.response_head_bytes_max < 256 {
            return fail("response_head_bytes_max", "must be at least 256 bytes");
        }
        if self.drain_body_bytes_max > self.body_bytes_max {
            return fail("drain_body_bytes_max", "must be <= body_bytes_max");
        }
        let timeouts = [
            ("head_timeout", self.head_timeout),
            ("idle_timeout", self.idle_timeout),
            ("body_stall_timeout", self.body_stall_timeout),
            ("write_stall_timeout", self.write_stall_timeout),
        ];
        if let Some((field, _)) = timeouts.iter().find(|(_, timeout)| timeout.is_zero()) {
            return fail(field, "must be longer than zero");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Limits::default().validate(), Ok(()));
    }

    #[test]
    fn validate_names_the_field() {
        let limits = Limits {
            recv_buffer_bytes: HEAD_BYTES_MAX,
            ..Limits::default()
        };
        assert_eq!(limits.validate().unwrap_err().field, "recv_buffer_bytes");
        let limits = Limits {
            header_count_max: HEADER_COUNT_CAPACITY + 1,
            ..Limits::default()
        };
        assert_eq!(limits.validate().unwrap_err().field, "header_count_max");
        let limits = Limits {
            head_bytes_max: 100,
            request_line_bytes_max: 200,
            ..Limits::default()
        };
        assert_eq!(limits.validate().unwrap_err().field, "head_bytes_max");
        let limits = Limits {
            idle_timeout: Duration::ZERO,
            ..Limits::default()
        };
        assert_eq!(limits.validate().unwrap_err().field, "idle_timeout");
    }
}
