//! The HTTP/2 connection driver: [`serve`] runs one connection to the end.
//!
//! ```text
//! serve(io, already_read, service, limits, drain)
//!   PrefixedStream(already_read, io).compat()    replay what the sniffer consumed
//!   h2 handshake                                  bounded by limits.handshake_timeout
//!   loop: accept ─► spawn_local(handle_stream)    polling accept drives all connection I/O,
//!         drain fires ─► GOAWAY (graceful)        also PING answers and window updates
//!         idle check  ─► GOAWAY when no stream has been open for limits.idle_timeout
//!         drain expiry ─► abrupt GOAWAY, return
//! ```
//!
//! Protocol violations by the peer (garbage frames, oversized headers, bad SETTINGS) are
//! detected by h2, which sends GOAWAY with the matching error code and ends `accept` with an
//! error; [`serve`] returns it as [`ConnectionError::Protocol`]. Nothing here panics on input.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_lite::future::{or, pending};
use futures_lite::{AsyncRead, AsyncWrite};
use h2::server::SendResponse;
use h2::RecvStream;
use tokio_util::compat::FuturesAsyncReadCompatExt;

use super::limits::GrpcLimits;
use super::prefixed::PrefixedStream;
use super::service::{
    with_deadline, CallContext, CallKind, GrpcService, RequestStream, ResponseSink,
};
use super::status::Status;
use super::timeout::parse_grpc_timeout;

/// How a connection ended, other than by the peer closing it cleanly.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectionError {
    /// The peer did not complete the preface and SETTINGS in time.
    HandshakeTimeout { after: Duration },
    /// The preface or first SETTINGS were invalid, or I/O failed during the handshake.
    Handshake(h2::Error),
    /// The peer broke the protocol; h2 has sent GOAWAY with the error code.
    Protocol(h2::Error),
    /// The socket failed (a client that disconnects shows up here; benign).
    Io(h2::Error),
    /// In-flight streams did not finish within the drain timeout after GOAWAY.
    DrainTimeout { streams_open: usize },
}

impl fmt::Display for ConnectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectionError::HandshakeTimeout { after } => {
                write!(f, "HTTP/2 handshake did not complete within {after:?}")
            }
            ConnectionError::Handshake(error) => write!(f, "HTTP/2 handshake failed: {error}"),
            ConnectionError::Protocol(error) => write!(f, "HTTP/2 protocol error: {error}"),
            ConnectionError::Io(error) => write!(f, "HTTP/2 connection I/O failed: {error}"),
            ConnectionError::DrainTimeout { streams_open } => write!(
                f,
                "{streams_open} streams still open when the drain timeout passed"
            ),
        }
    }
}

impl std::error::Error for ConnectionError {}

/// Open streams and the moment the connection last became idle.
struct Activity {
    streams_open: Cell<usize>,
    idle_since: Cell<Instant>,
}

/// Decrements the open-stream count when a stream task ends, however it ends.
struct StreamGuard(Rc<Activity>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let open = self.0.streams_open.get();
        assert!(open > 0, "a guard exists for each counted stream");
        self.0.streams_open.set(open - 1);
        if open == 1 {
            self.0.idle_since.set(Instant::now());
        }
    }
}

/// What `Connection::accept` yields: the next stream, a connection error, or the end.
type Accepted = Option<Result<(http::Request<RecvStream>, SendResponse<Bytes>), h2::Error>>;

/// One wake-up of the accept loop. It lives on the stack for one iteration, so the size of the
/// stream variant costs nothing worth a heap allocation per stream.
#[allow(clippy::large_enum_variant)]
enum Event {
    Accepted(Accepted),
    Drain,
    IdleCheck,
    DrainExpired,
}

/// Serves one HTTP/2 (h2c prior-knowledge) connection until the peer closes it, it idles out,
/// or `drain` resolves and in-flight streams finish.
///
/// `already_read` is what the protocol sniffer consumed from `io` (it starts with the HTTP/2
/// preface, or a part of it); it is replayed before reading on.
pub async fn serve<S, IO, D>(
    io: IO,
    already_read: Vec<u8>,
    service: Rc<S>,
    limits: Rc<GrpcLimits>,
    drain: D,
) -> Result<(), ConnectionError>
where
    S: GrpcService,
    IO: AsyncRead + AsyncWrite + Unpin,
    D: Future<Output = ()>,
{
    serve_from(None, io, already_read, service, limits, drain).await
}

/// [`serve`] for a connection from `peer`: every call's [`CallContext::peer`] is `peer`.
pub async fn serve_from<S, IO, D>(
    peer: Option<SocketAddr>,
    io: IO,
    already_read: Vec<u8>,
    service: Rc<S>,
    limits: Rc<GrpcLimits>,
    drain: D,
) -> Result<(), ConnectionError>
where
    S: GrpcService,
    IO: AsyncRead + AsyncWrite + Unpin,
    D: Future<Output = ()>,
{
    let mut connection = handshake(io, already_read, &limits).await?;
    let activity = Rc::new(Activity {
        streams_open: Cell::new(0),
        idle_since: Cell::new(Instant::now()),
    });
    let mut drain = std::pin::pin!(drain);
    let mut drain_deadline: Option<Instant> = None;
    loop {
        let event = {
            let accept = async { Event::Accepted(connection.accept().await) };
            let drain_signal = async {
                match drain_deadline {
                    None => {
                        drain.as_mut().await;
                        Event::Drain
                    }
                    Some(_) => pending().await,
                }
            };
            let idle_check = async {
                glommio::timer::sleep(next_idle_check(&activity, &limits)).await;
                Event::IdleCheck
            };
            let drain_expiry = async {
                match drain_deadline {
                    Some(deadline) => {
                        glommio::timer::sleep(deadline.saturating_duration_since(Instant::now()))
                            .await;
                        Event::DrainExpired
                    }
                    None => pending().await,
                }
            };
            or(accept, or(drain_signal, or(idle_check, drain_expiry))).await
        };
        match event {
            Event::Accepted(None) => return Ok(()),
            // After our GOAWAY the peer may close the socket before h2 has flushed; that is
            // the expected end of a drained connection, not a failure.
            Event::Accepted(Some(Err(error))) if error.is_io() && drain_deadline.is_some() => {
                return Ok(())
            }
            Event::Accepted(Some(Err(error))) => return Err(classify(error)),
            Event::Accepted(Some(Ok((_, mut respond))))
                if activity.streams_open.get() >= limits.stream_tasks_max =>
            {
                respond.send_reset(h2::Reason::REFUSED_STREAM);
            }
            Event::Accepted(Some(Ok((request, respond)))) => {
                activity.streams_open.set(activity.streams_open.get() + 1);
                let guard = StreamGuard(activity.clone());
                let service = service.clone();
                let limits = limits.clone();
                glommio::spawn_local(async move {
                    handle_stream(&*service, &limits, peer, request, respond).await;
                    drop(guard);
                })
                .detach();
            }
            Event::Drain => {
                connection.graceful_shutdown();
                drain_deadline = Some(Instant::now() + limits.drain_timeout);
            }
            Event::IdleCheck => {
                let idle = activity.streams_open.get() == 0
                    && activity.idle_since.get().elapsed() >= limits.idle_timeout;
                if idle && drain_deadline.is_none() {
                    connection.graceful_shutdown();
                    drain_deadline = Some(Instant::now() + limits.drain_timeout);
                }
            }
            Event::DrainExpired => {
                connection.abrupt_shutdown(h2::Reason::NO_ERROR);
                return Err(ConnectionError::DrainTimeout {
                    streams_open: activity.streams_open.get(),
                });
            }
        }
    }
}

/// When to look at idleness next: at the moment the idle timeout would pass if nothing happens.
fn next_idle_check(activity: &Activity, limits: &GrpcLimits) -> Duration {
    if activity.streams_open.get() > 0 {
        return limits.idle_timeout;
    }
    limits
        .idle_timeout
        .saturating_sub(activity.idle_since.get().elapsed())
        .max(Duration::from_millis(1))
}

async fn handshake<IO>(
    io: IO,
    already_read: Vec<u8>,
    limits: &GrpcLimits,
) -> Result<
    h2::server::Connection<tokio_util::compat::Compat<PrefixedStream<IO>>, Bytes>,
    ConnectionError,
>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let stream = PrefixedStream::new(already_read, io).compat();
    let handshake = h2::server::Builder::new()
        .initial_window_size(limits.stream_window_bytes)
        .initial_connection_window_size(limits.connection_window_bytes)
        .max_concurrent_streams(limits.concurrent_streams_max)
        .max_header_list_size(limits.header_list_bytes_max)
        .max_frame_size(limits.frame_bytes_max)
        .max_send_buffer_size(limits.send_buffer_bytes_max)
        .max_pending_accept_reset_streams(super::limits::PENDING_ACCEPT_RESET_STREAMS_MAX)
        .max_local_error_reset_streams(Some(super::limits::LOCAL_ERROR_RESET_STREAMS_MAX))
        .handshake::<_, Bytes>(stream);
    let timeout = limits.handshake_timeout;
    let outcome = or(async { Some(handshake.await) }, async {
        glommio::timer::sleep(timeout).await;
        None
    })
    .await;
    match outcome {
        None => Err(ConnectionError::HandshakeTimeout { after: timeout }),
        Some(Err(error)) => Err(ConnectionError::Handshake(error)),
        Some(Ok(connection)) => Ok(connection),
    }
}

fn classify(error: h2::Error) -> ConnectionError {
    if error.is_io() {
        ConnectionError::Io(error)
    } else {
        ConnectionError::Protocol(error)
    }
}

/// One stream, start to trailers.
async fn handle_stream<S: GrpcService>(
    service: &S,
    limits: &GrpcLimits,
    peer: Option<SocketAddr>,
    request: http::Request<RecvStream>,
    respond: SendResponse<Bytes>,
) {
    let (parts, body) = request.into_parts();
    let mut sink = ResponseSink::new(respond, limits.message_send_bytes_max);
    if parts.method != http::Method::POST {
        let _ = sink.reject_http(http::StatusCode::METHOD_NOT_ALLOWED);
        return;
    }
    let content_type = parts.headers.get(http::header::CONTENT_TYPE);
    if !content_type.is_some_and(|value| super::is_grpc_content_type(value.as_bytes())) {
        let _ = sink.reject_http(http::StatusCode::UNSUPPORTED_MEDIA_TYPE);
        return;
    }
    let mut requests = RequestStream::new(body, limits.message_receive_bytes_max);
    let status = match prepare_call(service, &parts, limits, peer) {
        Err(status) => status,
        Ok((method, kind, call)) => {
            let outcome = with_deadline(
                call.deadline,
                run_call(service, method, kind, &call, &mut requests, &mut sink),
            )
            .await;
            outcome.err().unwrap_or_else(Status::ok)
        }
    };
    // The client may be gone (reset, disconnect); then there is no one to tell.
    let _ = sink.finish(&status);
    // `requests` is dropped after the trailers are queued, so an unread request body is
    // reset behind the response rather than before it.
    drop(requests);
}

/// Checks the gRPC-level headers and routes the call.
fn prepare_call<S: GrpcService>(
    service: &S,
    parts: &http::request::Parts,
    limits: &GrpcLimits,
    peer: Option<SocketAddr>,
) -> Result<(S::Method, CallKind, CallContext), Status> {
    if let Some(encoding) = parts.headers.get("grpc-encoding") {
        if encoding.as_bytes() != b"identity" {
            return Err(Status::unimplemented(format!(
                "grpc-encoding {:?} is not supported; send messages uncompressed",
                String::from_utf8_lossy(encoding.as_bytes())
            )));
        }
    }
    let path = parts.uri.path();
    let Some((method, kind)) = service.route(path) else {
        return Err(Status::unimplemented(format!("unknown method {path}")));
    };
    let deadline = match parts.headers.get("grpc-timeout") {
        None => None,
        Some(value) => {
            let timeout = parse_grpc_timeout(value.as_bytes(), limits.deadline_max)
                .map_err(|error| Status::internal(error.to_string()))?;
            Some(Instant::now() + timeout)
        }
    };
    let call = CallContext {
        path: path.to_owned(),
        deadline,
        metadata: parts.headers.clone(),
        peer,
    };
    Ok((method, kind, call))
}

/// Runs the service method for `kind`, sending its response messages into `sink`.
async fn run_call<S: GrpcService>(
    service: &S,
    method: S::Method,
    kind: CallKind,
    call: &CallContext,
    requests: &mut RequestStream,
    sink: &mut ResponseSink,
) -> Result<(), Status> {
    match kind {
        CallKind::Unary => {
            let request = requests.single_message().await?;
            let reset = async { Err(sink.reset().await) };
            let response = or(service.unary(method, call, request), reset).await?;
            sink.send(response).await
        }
        CallKind::ServerStreaming => {
            let request = requests.single_message().await?;
            service.server_streaming(method, call, request, sink).await
        }
        CallKind::ClientStreaming => {
            let reset = async { Err(sink.reset().await) };
            let response = or(service.client_streaming(method, call, requests), reset).await?;
            sink.send(response).await
        }
    }
}
