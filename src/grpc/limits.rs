//! Every bound of the gRPC wire layer, in one place.
//!
//! The defaults are named constants; [`GrpcLimits`] carries them at run time so configuration can
//! override them. Units are last in every name.

use std::time::Duration;

/// Largest gRPC message (the payload after the 5-byte prefix) accepted from a client: 4 MiB, the
/// grpc-java default that Bazel never raises. A BatchUpdateBlobs request is the largest message a
/// cache client sends; `max_batch_total_size_bytes` in Capabilities must stay below this.
pub const MESSAGE_RECEIVE_BYTES_MAX: u32 = 4 << 20;

/// Largest gRPC message we send: grpc-java clients refuse inbound messages over 4 MiB
/// (clients.md §2), so replies are capped at the same value. ByteStream.Read chunks stay far below.
pub const MESSAGE_SEND_BYTES_MAX: u32 = 4 << 20;

/// Initial HTTP/2 flow-control window of each stream: 1 MiB (h2's default is 64 KiB). With a
/// 1 ms loopback round trip this lets one upload run at ~1 GB/s before the window stalls it.
pub const STREAM_WINDOW_BYTES: u32 = 1 << 20;

/// Initial connection-level window: 8 MiB, i.e. 8 streams uploading at full stream window at once.
/// It bounds the request bytes the peer may have in flight towards one connection.
pub const CONNECTION_WINDOW_BYTES: u32 = 8 << 20;

/// Concurrent streams per connection we advertise. Bazel multiplexes its uploads over a few
/// connections and queues above this. Per connection worst-case buffered request data is bounded
/// by the connection window, not by this count.
pub const CONCURRENT_STREAMS_MAX: u32 = 256;

/// Stream tasks that may run per connection. Normally equal to the open HTTP/2 streams (at most
/// [`CONCURRENT_STREAMS_MAX`]), but a task whose client reset its stream runs on until its next
/// send or its deadline while h2 already lets a new stream take the slot. Twice the stream limit
/// leaves room for those; beyond it new streams are refused with REFUSED_STREAM, which gRPC
/// clients retry transparently because nothing was processed.
pub const STREAM_TASKS_MAX: usize = 2 * CONCURRENT_STREAMS_MAX as usize;

/// Largest header list (HPACK-decoded, RFC 9113 §6.5.2 accounting) accepted per request: 16 KiB.
/// gRPC metadata from Bazel (request metadata, auth header) is well under 2 KiB.
pub const HEADER_LIST_BYTES_MAX: u32 = 16 << 10;

/// Largest HTTP/2 frame payload we accept: 256 KiB (RFC 9113 allows 16 KiB to 16 MiB). Bigger
/// frames mean fewer frame headers per upload; it must fit in a stream window.
pub const FRAME_BYTES_MAX: u32 = 256 << 10;

/// Bytes h2 may buffer per stream for sending before `poll_capacity` makes us wait: 1 MiB, the
/// size of one stream window, so a reply chunk never waits on our own buffer before the peer's
/// window.
pub const SEND_BUFFER_BYTES_MAX: usize = 1 << 20;

/// Streams the peer may reset before we accept them; above this the connection is closed with
/// ENHANCE_YOUR_CALM (HTTP/2 "rapid reset", CVE-2023-44487).
pub const PENDING_ACCEPT_RESET_STREAMS_MAX: usize = 64;

/// Streams we reset because of the peer's errors before the connection is closed.
pub const LOCAL_ERROR_RESET_STREAMS_MAX: usize = 256;

/// Time from the first byte to a completed HTTP/2 handshake (preface + SETTINGS).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection with no open stream for this long gets a graceful GOAWAY. Bazel keeps its
/// channel open between builds and reconnects on GOAWAY, so this only frees idle sockets.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// After a drain GOAWAY, in-flight streams get this long to finish before the connection is cut.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest deadline honoured from `grpc-timeout` (the header allows up to 99,999,999 hours); a
/// longer one is treated as this. Keeps timer arithmetic far from overflow.
pub const DEADLINE_MAX: Duration = Duration::from_secs(24 * 3600);

/// Longest `grpc-message` we send, in bytes after percent-encoding is applied to the source:
/// grpc-java limits all received metadata to 8 KiB, and the status must fit in it.
pub const STATUS_MESSAGE_BYTES_MAX: usize = 1 << 10;

const _: () = assert!(
    FRAME_BYTES_MAX >= 16 << 10,
    "RFC 9113 §4.2: max frame size >= 16 KiB"
);
const _: () = assert!(
    FRAME_BYTES_MAX < 1 << 24,
    "RFC 9113 §4.2: max frame size < 16 MiB"
);
const _: () = assert!(
    FRAME_BYTES_MAX <= STREAM_WINDOW_BYTES,
    "a full frame fits one window"
);
const _: () = assert!(
    STREAM_WINDOW_BYTES <= CONNECTION_WINDOW_BYTES,
    "one stream fits the conn"
);
const _: () = assert!(
    CONNECTION_WINDOW_BYTES < 1 << 31,
    "RFC 9113 §6.9.1: windows are at most 2^31 - 1"
);
const _: () = assert!(
    STATUS_MESSAGE_BYTES_MAX * 3 < 8 << 10,
    "encoded message fits 8 KiB"
);

/// The run-time bounds of one gRPC listener; [`Default`] gives the constants above.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrpcLimits {
    pub message_receive_bytes_max: u32,
    pub message_send_bytes_max: u32,
    pub stream_window_bytes: u32,
    pub connection_window_bytes: u32,
    pub concurrent_streams_max: u32,
    pub stream_tasks_max: usize,
    pub header_list_bytes_max: u32,
    pub frame_bytes_max: u32,
    pub send_buffer_bytes_max: usize,
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
    pub drain_timeout: Duration,
    pub deadline_max: Duration,
}

impl Default for GrpcLimits {
    fn default() -> Self {
        GrpcLimits {
            message_receive_bytes_max: MESSAGE_RECEIVE_BYTES_MAX,
            message_send_bytes_max: MESSAGE_SEND_BYTES_MAX,
            stream_window_bytes: STREAM_WINDOW_BYTES,
            connection_window_bytes: CONNECTION_WINDOW_BYTES,
            concurrent_streams_max: CONCURRENT_STREAMS_MAX,
            stream_tasks_max: STREAM_TASKS_MAX,
            header_list_bytes_max: HEADER_LIST_BYTES_MAX,
            frame_bytes_max: FRAME_BYTES_MAX,
            send_buffer_bytes_max: SEND_BUFFER_BYTES_MAX,
            handshake_timeout: HANDSHAKE_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            drain_timeout: DRAIN_TIMEOUT,
            deadline_max: DEADLINE_MAX,
        }
    }
}
