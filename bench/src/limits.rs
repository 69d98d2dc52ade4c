//! Every bound the harness applies, in one place (STYLE.md practice 4: unit last, arithmetic in the
//! doc comment). A run whose flags would exceed one of these is refused at start with an error that
//! names the flag.

/// Largest response head (status line + headers) the client accepts. nginx and Tessera answer with
/// well under 1 KiB; 16 KiB leaves room for a peer with verbose headers.
pub const RESPONSE_HEAD_BYTES_MAX: usize = 16 * 1024;

/// Largest number of header lines in one response head; a longer head is a malformed response.
pub const RESPONSE_HEADERS_MAX: usize = 64;

/// Longest chunk-size line of a chunked response body (hex size plus any chunk extensions),
/// without its CRLF. Peers send 1–8 hex digits and no extensions; 1 KiB refuses a runaway line
/// without buffering it.
pub const CHUNK_LINE_BYTES_MAX: usize = 1024;

/// Largest object the workload generates and the largest response body the client buffers:
/// 64 MiB per connection. With `CONNECTIONS_MAX` connections of which only a few carry objects this
/// large, the worst case (every connection receiving one at once) is bounded by
/// `OBJECT_BYTES_MAX * CONNECTIONS_MAX`; the key-space check below keeps realistic runs far lower.
pub const OBJECT_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Largest number of objects in a key space: 10 M objects × (32-byte digest + 8-byte size/offset +
/// 8-byte Zipf CDF entry) ≈ 480 MB, the most we allow the harness itself to take.
pub const KEYSPACE_OBJECTS_MAX: usize = 10_000_000;

/// Size of the shared random byte pool from which object bodies are sliced (after an 8-byte
/// per-object prefix), in addition to the largest object: 4 MiB of slack gives every small object
/// one of ~4 M distinct start offsets.
pub const BODY_POOL_SLACK_BYTES: usize = 4 * 1024 * 1024;

/// Largest number of load-generating threads (one per core, pinned).
pub const THREADS_MAX: usize = 256;

/// Largest number of connections over all threads. Each holds one receive buffer that grows to the
/// largest response it has seen, so 10 000 × 64 KiB typical = 640 MB worst case for a mixed run.
pub const CONNECTIONS_MAX: usize = 10_000;

/// Longest run: one hour. Loops check the deadline before every request, so a run always ends.
pub const DURATION_SECS_MAX: u64 = 3600;

/// Upper bound of the latency histogram: 1 h in nanoseconds (larger values saturate to it).
/// 3 significant digits over 1 ns..1 h costs about 200 KiB per histogram.
pub const LATENCY_NS_MAX: u64 = 3_600 * 1_000_000_000;

/// Significant decimal digits the latency histogram keeps (0.1 % value error).
pub const LATENCY_SIGNIFICANT_DIGITS: u8 = 3;

/// Default per-request timeout; a request that takes longer is an error of kind `timeout` and its
/// connection is replaced.
pub const REQUEST_TIMEOUT_MS_DEFAULT: u64 = 10_000;

/// Pause before reconnecting after a failed connect, so a dead server does not turn the harness
/// into a busy loop: at most 100 connect attempts per second per connection.
pub const RECONNECT_BACKOFF_MS: u64 = 10;

/// Largest open-loop rate: 10 M requests/s, i.e. an interval of at least 100 ns per request.
pub const RATE_PER_SEC_MAX: u64 = 10_000_000;

/// Longest wait for a server to answer `/healthz` (compare and restart subcommands): 10 minutes,
/// long enough for a cold restart of a large store, short enough that a broken server ends the run.
pub const HEALTHZ_WAIT_SECS_MAX: u64 = 600;

const _: () = assert!(RESPONSE_HEADERS_MAX * 4 < RESPONSE_HEAD_BYTES_MAX);
const _: () = assert!(OBJECT_BYTES_MAX < u32::MAX as usize);
const _: () = assert!(OBJECT_BYTES_MAX + BODY_POOL_SLACK_BYTES < u32::MAX as usize);
