//! Hand-rolled HTTP/1.1: the wire layer between the network (`server`) and the protocol
//! front-ends (`protocols`). It knows nothing about caches or the store.
//!
//! Principal pieces, bottom-up:
//!
//! * [`parse_request`] — sans-IO, zero-copy request-head parser ([`RequestHead`], [`Header`],
//!   [`Parsed::Partial`] for incomplete input), with derived facts ([`BodyFraming`], keep-alive,
//!   `Expect: 100-continue`, Host). Every rejection is a [`ParseError`] whose
//!   [`status`](ParseError::status) gives the response (400, 413, 414, 417, 431, 501, 505).
//! * [`ChunkedDecoder`] — sans-IO chunked transfer-coding state machine ([`ChunkedError`]).
//! * [`write_response_head`] / [`write_error_response`] — the response writer; every response
//!   carries `Content-Length`.
//! * [`serve`] — the async connection driver over any futures-io stream: keep-alive, pipelining,
//!   timeouts from a [`Sleep`] clock, `100 Continue` sent lazily, HEAD, draining, the h2c
//!   preface hand-off ([`Outcome::Http2`]). It calls a [`Service`] with a [`Request`] (head +
//!   streaming [`Body`]) and a [`Responder`].
//! * [`Limits`] — every bound, with defaults and [`Limits::validate`].
//!
//! # Writing a front-end
//!
//! ```
//! use std::io;
//! use tessera::http1::{Request, Responder, Service};
//!
//! /// Answers `GET /hello`, accepts `PUT /blob` (streaming its body), 404 for the rest.
//! struct Hello;
//!
//! impl Service for Hello {
//!     async fn call(&self, req: &mut Request<'_>, resp: &mut Responder<'_>) -> io::Result<()> {
//!         let head = req.head; // Copy: keep it while reading the body
//!         match (head.method, head.path()) {
//!             ("GET" | "HEAD", "/hello") => {
//!                 resp.header("content-type", "text/plain")?;
//!                 resp.send(200, b"hello\n").await // a borrowed slice, e.g. of a mmap
//!             }
//!             ("PUT", "/blob") => {
//!                 let mut chunk = [0u8; 64 * 1024];
//!                 let mut total = 0u64;
//!                 loop {
//!                     // Sends "100 Continue" first if the client asked for it.
//!                     let n = req.body.read(&mut chunk).await?; // errors: the driver answers
//!                     if n == 0 { break; }
//!                     total += n as u64; // hand &chunk[..n] to the store here
//!                 }
//!                 resp.send(200, b"").await
//!             }
//!             _ => resp.send(404, b"").await, // carries "content-length: 0"
//!         }
//!     }
//! }
//! ```
//!
//! Plugging in a glommio `TcpStream` (it implements the futures-io traits):
//!
//! ```ignore
//! struct GlommioClock;
//! impl tessera::http1::Sleep for GlommioClock {
//!     fn sleep(&self, d: std::time::Duration) -> impl std::future::Future<Output = ()> {
//!         glommio::timer::sleep(d)
//!     }
//! }
//! let mut stream: glommio::net::TcpStream = listener.accept().await?;
//! stream.set_nodelay(true)?;
//! let summary = tessera::http1::serve(&mut stream, &service, &GlommioClock, &limits).await;
//! if let tessera::http1::Outcome::Http2 { buffered } = summary.outcome {
//!     // hand `stream` and `buffered` (the preface and anything after it) to the h2 layer
//! }
//! ```

mod body;
mod chunked;
mod conn;
mod date;
mod error;
mod exchange;
mod facts;
mod limits;
mod parse;
mod responder;
mod response;
mod service;
pub mod token;
mod wire;

pub use body::Body;
pub use chunked::{ChunkedDecoder, Decoded};
pub use conn::{serve, Outcome, Summary, TimeoutPhase, HTTP2_PREFACE};
pub use date::{format_http_date, http_date_now, HTTP_DATE_BYTES};
pub use error::{ChunkedError, ParseError};
pub use facts::BodyFraming;
pub use limits::*;
pub use parse::{parse_request, Header, Parsed, RequestHead, Version, EMPTY_HEADER};
pub use responder::{BodyWriter, Responder, COALESCE_BODY_BYTES_MAX};
pub use response::{
    push_header, reason_phrase, write_error_response, write_response_head, ResponseHead,
    CONTINUE_RESPONSE,
};
pub use service::{Request, Service};
pub use wire::Sleep;

#[cfg(test)]
mod conn_tests;
#[cfg(test)]
pub(crate) mod test_support;
