//! gRPC over HTTP/2: the wire layer under the gRPC front-end (`src/protocols/reapi/`).
//!
//! * [`server::serve`] drives one HTTP/2 connection with `h2` on glommio (through
//!   `tokio_util::compat`; no tokio runtime) and runs each stream in `glommio::spawn_local`;
//!   [`prefixed`] replays the bytes the HTTP/1 sniffer read before it saw the HTTP/2 preface.
//! * [`service::GrpcService`] is what a front-end implements: routing of `:path` plus unary,
//!   server-streaming and client-streaming calls over raw message bytes.
//! * [`framing`] is the 5-byte length prefix, [`status`] the codes and trailers,
//!   [`timeout`] the `grpc-timeout` header, [`limits`] every bound of this layer.
//! * [`pb`] holds the prost messages generated from `proto/`.
//!
//! ```text
//!  TCP ─► HTTP/1 sniffer ─(preface + bytes read so far)─► server::serve ─► h2 Connection
//!                                                              │ accept loop (drives I/O)
//!                                        spawn_local per stream ▼
//!                          route(:path) ─► unary | server_streaming | client_streaming
//! ```
//! This layer knows nothing about caches: which methods exist, what a resource name or an
//! ActionResult means, digests and `compressed-blobs` zstd are REAPI semantics and live with
//! the REAPI services in `src/protocols/reapi/`.

pub mod framing;
pub mod limits;
pub mod pb;
pub mod prefixed;
pub mod server;
pub mod service;
pub mod status;
pub mod timeout;

pub use limits::GrpcLimits;
pub use server::{serve, serve_from, ConnectionError};
pub use service::{CallContext, CallKind, GrpcService, RequestStream, ResponseSink};
pub use status::{Code, Status};

/// The content type we answer with; requests may also use `application/grpc+proto`.
pub const CONTENT_TYPE_GRPC: &str = "application/grpc";

/// The HTTP/2 connection preface (RFC 9113 §3.4) that a client with prior knowledge sends first.
pub const HTTP2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether a request `content-type` is gRPC with the protobuf codec (gRPC HTTP/2 spec:
/// `application/grpc` optionally followed by `+proto` or `;params`).
pub fn is_grpc_content_type(value: &[u8]) -> bool {
    let Some(rest) = value.strip_prefix(b"application/grpc") else {
        return false;
    };
    let codec_end = rest.iter().position(|&b| b == b';').unwrap_or(rest.len());
    matches!(&rest[..codec_end], b"" | b"+proto")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        let accepted: [&[u8]; 4] = [
            b"application/grpc",
            b"application/grpc+proto",
            b"application/grpc;charset=utf-8",
            b"application/grpc+proto; x=y",
        ];
        for value in accepted {
            assert!(is_grpc_content_type(value), "{value:?}");
        }
        let refused: [&[u8]; 5] = [
            b"application/grpc+json",
            b"application/json",
            b"application/grpc-web",
            b"application/grpcx",
            b"",
        ];
        for value in refused {
            assert!(!is_grpc_content_type(value), "{value:?}");
        }
    }
}
