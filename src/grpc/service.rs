//! The seam between the HTTP/2 driver and a gRPC front-end.
//!
//! A front-end implements [`GrpcService`]: [`GrpcService::route`] maps a `:path` such as
//! `/google.bytestream.ByteStream/Write` to the front-end's own method value and the call's shape;
//! the driver then calls the matching method with raw (unframed, still protobuf-encoded) message
//! bytes. Framing, flow control, deadlines, trailers and client resets are handled here and in
//! [`super::server`].
//!
//! Thread-safety contract: a service lives on one executor (`Rc`), its futures are `!Send`, and
//! many calls of one connection run concurrently as separate `spawn_local` tasks. A call's
//! future is dropped when its deadline passes, or when its client resets the stream (unary and
//! client-streaming calls at once: `RequestStream::message` returns CANCELLED or the driver
//! drops the call; server-streaming calls at their next `ResponseSink::send`, which returns
//! CANCELLED). Anything a call holds (a store reservation) must therefore release itself on drop.
//!
//! ```text
//! CallKind::Unary            one request  → unary()            → one response
//! CallKind::ServerStreaming  one request  → server_streaming() → ResponseSink::send × n
//! CallKind::ClientStreaming  RequestStream::message × n → client_streaming() → one response
//! ```

use std::future::Future;
use std::time::Instant;

use bytes::Bytes;
use futures_lite::future::poll_fn;
use h2::{RecvStream, SendStream};
use http::{HeaderMap, Response};
use prost::Message;

use super::framing::{encode_prefix, MessageDecoder, PREFIX_BYTES};
use super::status::Status;

/// The shape of a method's request and response streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallKind {
    Unary,
    ServerStreaming,
    ClientStreaming,
}

/// What a call knows about its request besides the messages.
#[derive(Debug)]
pub struct CallContext {
    /// The `:path`, `/package.Service/Method`.
    pub path: String,
    /// From `grpc-timeout`; the driver also enforces it by dropping the call's future.
    pub deadline: Option<Instant>,
    /// All request headers (gRPC metadata such as `authorization` or
    /// `build.bazel.remote.execution.v2.requestmetadata-bin`).
    pub metadata: HeaderMap,
    /// The connection's peer address (`None` when the driver was not told it).
    pub peer: Option<std::net::SocketAddr>,
}

/// A gRPC front-end; see the module docs for the contract. Methods a service does not route
/// keep the default bodies, which answer UNIMPLEMENTED.
// The futures are deliberately !Send (thread-per-core), so the `Send`-bound lint does not apply.
#[allow(async_fn_in_trait)]
pub trait GrpcService: 'static {
    /// The service's own name for a method, returned by `route` and passed back to the calls.
    type Method: Copy + 'static;

    /// The method and call shape for a `:path`, or `None` for UNIMPLEMENTED.
    fn route(&self, path: &str) -> Option<(Self::Method, CallKind)>;

    /// One request, one response; both are encoded protobuf messages.
    async fn unary(
        &self,
        method: Self::Method,
        call: &CallContext,
        request: Bytes,
    ) -> Result<Bytes, Status> {
        let _ = (method, request);
        Err(Status::unimplemented(format!(
            "{} is not a unary method here",
            call.path
        )))
    }

    /// One request; responses go to `responses` as they are produced.
    async fn server_streaming(
        &self,
        method: Self::Method,
        call: &CallContext,
        request: Bytes,
        responses: &mut ResponseSink,
    ) -> Result<(), Status> {
        let _ = (method, request, responses);
        Err(Status::unimplemented(format!(
            "{} is not a server-streaming method here",
            call.path
        )))
    }

    /// Requests are pulled from `requests` until it returns `Ok(None)`; one response.
    async fn client_streaming(
        &self,
        method: Self::Method,
        call: &CallContext,
        requests: &mut RequestStream,
    ) -> Result<Bytes, Status> {
        let _ = (method, requests);
        Err(Status::unimplemented(format!(
            "{} is not a client-streaming method here",
            call.path
        )))
    }
}

/// Encodes a response message for [`GrpcService::unary`] / [`GrpcService::client_streaming`].
pub fn encode<M: Message>(message: &M) -> Bytes {
    Bytes::from(message.encode_to_vec())
}

/// Decodes a request message; a malformed one is INVALID_ARGUMENT naming the type.
pub fn decode<M: Message + Default>(bytes: Bytes) -> Result<M, Status> {
    M::decode(bytes).map_err(|error| {
        Status::invalid_argument(format!(
            "request is not a valid {}: {error}",
            std::any::type_name::<M>()
                .rsplit("::")
                .next()
                .unwrap_or("message")
        ))
    })
}

/// The request messages of a call, decoded incrementally from the HTTP/2 DATA frames.
///
/// Flow control: each DATA chunk's bytes are released to the peer as soon as the chunk moves into
/// the decoder, and the next chunk is pulled only when no complete message is buffered; so the
/// memory held per stream is at most one message (bounded by the receive limit) plus one frame,
/// and a message larger than the stream window still arrives.
#[derive(Debug)]
pub struct RequestStream {
    body: RecvStream,
    decoder: MessageDecoder,
    ended: bool,
}

impl RequestStream {
    pub(crate) fn new(body: RecvStream, message_bytes_max: u32) -> RequestStream {
        RequestStream {
            body,
            decoder: MessageDecoder::new(message_bytes_max),
            ended: false,
        }
    }

    /// The next message, `Ok(None)` at the end of the request stream. A client reset is
    /// CANCELLED; a framing error is INTERNAL or RESOURCE_EXHAUSTED (see `framing`).
    pub async fn message(&mut self) -> Result<Option<Bytes>, Status> {
        loop {
            if let Some(message) = self.decoder.next_message()? {
                return Ok(Some(message));
            }
            if self.ended {
                self.decoder.finish()?;
                return Ok(None);
            }
            match self.body.data().await {
                Some(Ok(chunk)) => {
                    // Releasing can only fail if the stream is already gone; the next
                    // `data()` reports that.
                    let _ = self.body.flow_control().release_capacity(chunk.len());
                    self.decoder.push(chunk);
                }
                Some(Err(error)) => return Err(stream_error_status(&error)),
                None => self.ended = true,
            }
        }
    }

    /// The next message decoded as `M`.
    pub async fn decode<M: Message + Default>(&mut self) -> Result<Option<M>, Status> {
        match self.message().await? {
            Some(bytes) => decode(bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Exactly one message, as unary and server-streaming calls require (INTERNAL otherwise,
    /// as grpc-java answers).
    pub(crate) async fn single_message(&mut self) -> Result<Bytes, Status> {
        let Some(message) = self.message().await? else {
            return Err(Status::internal("request stream ended without a message"));
        };
        if self.message().await?.is_some() {
            return Err(Status::internal(
                "request stream carried more than one message for a single-request method",
            ));
        }
        Ok(message)
    }
}

/// A CANCELLED status for an h2 stream error (client reset, connection lost).
pub(crate) fn stream_error_status(error: &h2::Error) -> Status {
    match error.reason() {
        Some(reason) if error.is_reset() => {
            Status::cancelled(format!("client reset the stream ({reason:?})"))
        }
        _ => Status::cancelled(format!("request stream failed: {error}")),
    }
}

enum SinkState {
    /// Nothing sent yet: an error can still be a Trailers-Only response.
    Pending(h2::server::SendResponse<Bytes>),
    /// HEADERS sent; messages and then trailers follow.
    Streaming(SendStream<Bytes>),
    /// Trailers sent (or the stream failed).
    Finished,
}

/// Where a call's response messages go. The first message sends the response HEADERS.
pub struct ResponseSink {
    state: SinkState,
    message_bytes_max: u32,
}

impl std::fmt::Debug for ResponseSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            SinkState::Pending(_) => "pending",
            SinkState::Streaming(_) => "streaming",
            SinkState::Finished => "finished",
        };
        f.debug_struct("ResponseSink")
            .field("state", &state)
            .finish()
    }
}

impl ResponseSink {
    pub(crate) fn new(
        respond: h2::server::SendResponse<Bytes>,
        message_bytes_max: u32,
    ) -> ResponseSink {
        ResponseSink {
            state: SinkState::Pending(respond),
            message_bytes_max,
        }
    }

    /// Sends one encoded message, waiting for HTTP/2 flow-control capacity so that no more than
    /// the send buffer is queued per stream. A message over the send limit is RESOURCE_EXHAUSTED;
    /// a reset stream is CANCELLED.
    pub async fn send(&mut self, message: Bytes) -> Result<(), Status> {
        self.send_parts(Bytes::new(), message).await
    }

    /// Sends one message given as two parts, `head` then `body`, without concatenating them:
    /// for `ReadResponse` the head is the field tag and length
    /// ([`crate::protocols::reapi::bytestream_rules::read_response_head`]) and the body the blob bytes, which are
    /// handed to h2 as they are (no copy).
    pub async fn send_parts(&mut self, head: Bytes, body: Bytes) -> Result<(), Status> {
        let total = head.len() + body.len();
        let length = u32::try_from(total)
            .ok()
            .filter(|&length| length <= self.message_bytes_max)
            .ok_or_else(|| {
                Status::resource_exhausted(format!(
                    "response message of {total} bytes exceeds the limit of {} bytes",
                    self.message_bytes_max
                ))
            })?;
        let stream = self.streaming()?;
        let mut prefix_and_head = Vec::with_capacity(PREFIX_BYTES + head.len());
        prefix_and_head.extend_from_slice(&encode_prefix(length));
        prefix_and_head.extend_from_slice(&head);
        send_with_capacity(stream, Bytes::from(prefix_and_head)).await?;
        send_with_capacity(stream, body).await
    }

    /// Encodes and sends one message.
    pub async fn send_message<M: Message>(&mut self, message: &M) -> Result<(), Status> {
        self.send(encode(message)).await
    }

    /// Whether the response HEADERS have gone out (after that, errors go in trailers).
    pub fn headers_sent(&self) -> bool {
        !matches!(self.state, SinkState::Pending(_))
    }

    /// Resolves when the client resets the stream (or the connection fails) before the response
    /// started; never resolves once headers are sent (sends notice resets themselves).
    pub(crate) async fn reset(&mut self) -> Status {
        match &mut self.state {
            SinkState::Pending(respond) => match poll_fn(|cx| respond.poll_reset(cx)).await {
                Ok(reason) => Status::cancelled(format!("client reset the stream ({reason:?})")),
                Err(error) => stream_error_status(&error),
            },
            _ => std::future::pending().await,
        }
    }

    /// Ends the call with `status`: trailers after a started response, Trailers-Only otherwise.
    /// Failure to deliver means the client is gone; there is no one left to tell.
    pub(crate) fn finish(&mut self, status: &Status) -> Result<(), h2::Error> {
        if !matches!(self.state, SinkState::Finished) {
            crate::counters::count_grpc_status(status.code as u8);
        }
        match std::mem::replace(&mut self.state, SinkState::Finished) {
            SinkState::Pending(mut respond) => respond
                .send_response(status.to_trailers_only(), true)
                .map(drop),
            SinkState::Streaming(mut stream) => stream.send_trailers(status.to_trailers()),
            SinkState::Finished => Ok(()),
        }
    }

    /// Answers with a bare HTTP status and no gRPC status: for requests that are not gRPC at all
    /// (wrong method or content type, gRPC HTTP/2 spec "Responses").
    pub(crate) fn reject_http(&mut self, status: http::StatusCode) -> Result<(), h2::Error> {
        match std::mem::replace(&mut self.state, SinkState::Finished) {
            SinkState::Pending(mut respond) => {
                let mut response = Response::new(());
                *response.status_mut() = status;
                respond.send_response(response, true).map(drop)
            }
            _ => Ok(()),
        }
    }

    fn streaming(&mut self) -> Result<&mut SendStream<Bytes>, Status> {
        if let SinkState::Pending(respond) = &mut self.state {
            let mut response = Response::new(());
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(super::CONTENT_TYPE_GRPC),
            );
            let stream = respond
                .send_response(response, false)
                .map_err(|error| stream_error_status(&error))?;
            self.state = SinkState::Streaming(stream);
        }
        match &mut self.state {
            SinkState::Streaming(stream) => Ok(stream),
            _ => Err(Status::internal("response already finished")),
        }
    }
}

/// Sends `data` in pieces no larger than the flow-control capacity h2 grants, so a large
/// message is never queued whole in h2's send buffer.
async fn send_with_capacity(stream: &mut SendStream<Bytes>, mut data: Bytes) -> Result<(), Status> {
    while !data.is_empty() {
        stream.reserve_capacity(data.len());
        let granted = loop {
            let capacity = stream.capacity();
            if capacity > 0 {
                break capacity;
            }
            match poll_fn(|cx| stream.poll_capacity(cx)).await {
                Some(Ok(_)) => continue,
                Some(Err(error)) => return Err(stream_error_status(&error)),
                None => return Err(Status::cancelled("client closed the stream")),
            }
        };
        let piece = data.split_to(granted.min(data.len()));
        stream
            .send_data(piece, false)
            .map_err(|error| stream_error_status(&error))?;
    }
    Ok(())
}

/// Runs `call` until it finishes or `deadline` passes (DEADLINE_EXCEEDED; the call's future is
/// dropped).
pub(crate) async fn with_deadline<F>(deadline: Option<Instant>, call: F) -> Result<(), Status>
where
    F: Future<Output = Result<(), Status>>,
{
    let Some(deadline) = deadline else {
        return call.await;
    };
    let expiry = async {
        glommio::timer::sleep(deadline.saturating_duration_since(Instant::now())).await;
        Err(Status::deadline_exceeded("the call's grpc-timeout passed"))
    };
    futures_lite::future::or(call, expiry).await
}
