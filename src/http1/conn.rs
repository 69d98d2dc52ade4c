//! The async connection driver: reads requests from a futures-io stream, hands each to a
//! [`Service`], writes the responses, and keeps the connection alive (with pipelining) while it
//! can. It runs on one thread (glommio executor); nothing it creates is `Send`.
//!
//! ```text
//!  ┌─ connection start: h2c preface? ──────────────► Outcome::Http2 { buffered }
//!  ▼
//!  wait for first byte (idle_timeout) ─ EOF ───────► Outcome::PeerClosed
//!  read head until complete (head_timeout) ─ bad ──► error response, close (Rejected)
//!  service.call(request, responder)
//!  response done? body consumed or drained? ─ no ──► close (Closed / Error / TimedOut)
//!  leftover bytes move to the buffer start ─► loop
//! ```

use std::io;
use std::ops::Range;

use futures_io::{AsyncRead, AsyncWrite};
use futures_lite::future::or;

use super::body::{Body, BodyFailure};
use super::date::http_date_now;
use super::error::ParseError;
use super::exchange::{BodyProgress, Exchange, ResponseState};
use super::facts::BodyFraming;
use super::limits::{Limits, HEADER_COUNT_CAPACITY};
use super::parse::{parse_request, Parsed, EMPTY_HEADER};
use super::responder::Responder;
use super::response::write_error_response;
use super::service::{Request, Service};
use super::wire::{with_timeout, Sleep, Transport};

/// The HTTP/2 connection preface a prior-knowledge h2c client sends first (RFC 9113 §3.4).
pub const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Which wait ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutPhase {
    /// Waiting for the first byte of a request (`idle_timeout`).
    Idle,
    /// Reading a request head (`head_timeout`); a 408 was sent.
    Head,
    /// Reading a request body (`body_stall_timeout`).
    Body,
    /// Writing a response (`write_stall_timeout`).
    Write,
}

/// How a connection ended.
#[derive(Debug)]
#[non_exhaustive]
pub enum Outcome {
    /// The client closed the connection between requests (or before the first).
    PeerClosed,
    /// The server closed after a complete response (`Connection: close`, HTTP/1.0, or an unread
    /// body too large to drain).
    Closed,
    /// The server rejected a request with this status (bad head, bad body, service failure)
    /// and closed.
    Rejected {
        /// The status sent.
        status: u16,
    },
    /// A timeout expired and the connection was closed.
    TimedOut(TimeoutPhase),
    /// The client sent the h2c prior-knowledge preface. `buffered` holds every byte read so far
    /// (starting with the preface); hand it and the stream to the HTTP/2 layer.
    Http2 {
        /// Bytes already read from the stream.
        buffered: Vec<u8>,
    },
    /// The stream failed or the client vanished mid-request.
    Error(io::Error),
}

/// What [`serve`] reports for metrics and logs.
#[derive(Debug)]
pub struct Summary {
    /// Requests handed to the service.
    pub requests: u64,
    /// How the connection ended.
    pub outcome: Outcome,
}

/// Serves HTTP/1.1 on `io` until the connection ends. `limits` should have passed
/// [`Limits::validate`]; an invalid value makes every request fail safely rather than panic.
/// The stream stays with the caller (for the HTTP/2 hand-off); after any other outcome the
/// write side has been shut down where the server chose to close.
pub async fn serve<IO, S, C>(io: &mut IO, service: &S, clock: &C, limits: &Limits) -> Summary
where
    IO: AsyncRead + AsyncWrite + Unpin,
    S: Service + ?Sized,
    C: Sleep,
{
    let mut connection = Connection {
        transport: Transport::new(io, clock, limits.write_stall_timeout),
        buf: vec![0; limits.recv_buffer_bytes.max(HTTP2_PREFACE.len())].into_boxed_slice(),
        filled: 0,
        extra: Vec::with_capacity(limits.response_head_bytes_max),
        out: Vec::with_capacity(limits.response_head_bytes_max),
        requests: 0,
        limits,
    };
    let outcome = connection.run(service).await;
    Summary {
        requests: connection.requests,
        outcome,
    }
}

struct Connection<'a, IO, C> {
    transport: Transport<'a, IO, C>,
    /// Receive buffer; `buf[..filled]` holds bytes not yet consumed, starting with the next head.
    buf: Box<[u8]>,
    filled: usize,
    extra: Vec<u8>,
    out: Vec<u8>,
    requests: u64,
    limits: &'a Limits,
}

/// What to do after an exchange.
enum Next {
    KeepAlive,
    /// Close; `linger` when the client may still be sending (so it sees our response, not RST).
    Close {
        outcome: Outcome,
        linger: bool,
    },
}

impl<IO, C> Connection<'_, IO, C>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    C: Sleep,
{
    async fn run<S: Service + ?Sized>(&mut self, service: &S) -> Outcome {
        if let Some(outcome) = self.sniff_http2().await {
            return outcome;
        }
        loop {
            let next = match self.read_head().await {
                Ok(head_bytes) => self.exchange(service, head_bytes).await,
                Err(next) => next,
            };
            match next {
                Next::KeepAlive => {}
                Next::Close { outcome, linger } => {
                    if !matches!(outcome, Outcome::PeerClosed | Outcome::Error(_)) {
                        self.close(linger).await;
                    }
                    return outcome;
                }
            }
        }
    }

    /// Reads only as many bytes as it takes to tell the h2c preface from an HTTP/1 request.
    async fn sniff_http2(&mut self) -> Option<Outcome> {
        loop {
            let seen = &self.buf[..self.filled];
            let prefix = seen.len().min(HTTP2_PREFACE.len());
            if seen[..prefix] != HTTP2_PREFACE[..prefix] {
                return None;
            }
            if prefix == HTTP2_PREFACE.len() {
                return Some(Outcome::Http2 {
                    buffered: seen.to_vec(),
                });
            }
            let timeout = self.limits.idle_timeout;
            let filled = self.filled;
            match self
                .transport
                .read_timed(&mut self.buf[filled..], timeout)
                .await
            {
                Ok(0) if filled == 0 => return Some(Outcome::PeerClosed),
                Ok(0) => return Some(Outcome::Error(truncated_head())),
                Ok(n) => self.filled += n,
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    return Some(Outcome::TimedOut(TimeoutPhase::Idle))
                }
                Err(e) => return Some(Outcome::Error(e)),
            }
        }
    }

    /// Waits for a request head (idle timeout for its first byte, head timeout for the rest).
    /// Returns its length, or how the connection ends.
    async fn read_head(&mut self) -> Result<usize, Next> {
        let close = |outcome| Next::Close {
            outcome,
            linger: false,
        };
        if self.filled == 0 {
            let timeout = self.limits.idle_timeout;
            let clock = self.transport.clock;
            let wait = or(
                async { Some(self.transport.read_timed(&mut self.buf[..], timeout).await) },
                async {
                    clock.shutdown().await;
                    None
                },
            );
            match wait.await {
                None => return Err(close(Outcome::Closed)),
                Some(Ok(0)) => return Err(close(Outcome::PeerClosed)),
                Some(Ok(n)) => self.filled = n,
                Some(Err(e)) if e.kind() == io::ErrorKind::TimedOut => {
                    return Err(close(Outcome::TimedOut(TimeoutPhase::Idle)))
                }
                Some(Err(e)) => return Err(close(Outcome::Error(e))),
            }
        }
        let (clock, timeout) = (self.transport.clock, self.limits.head_timeout);
        match with_timeout(clock, timeout, self.read_until_head()).await {
            Some(Ok(head_bytes)) => Ok(head_bytes),
            Some(Err(HeadEnd::Invalid(error))) => Err(self.reject(error.status(), false).await),
            Some(Err(HeadEnd::Io(e))) => Err(close(Outcome::Error(e))),
            None => {
                let next = self
                    .reject((408, "request head not received in time"), false)
                    .await;
                Err(match next {
                    Next::Close { linger, .. } => Next::Close {
                        outcome: Outcome::TimedOut(TimeoutPhase::Head),
                        linger,
                    },
                    keep => keep,
                })
            }
        }
    }

    /// Reads until `buf[..filled]` starts with a complete head (by [`find_head_end`]; the one
    /// full parse happens in `exchange`). Each byte is scanned once, so a client trickling bytes
    /// costs O(head), not O(bytes × head).
    async fn read_until_head(&mut self) -> Result<usize, HeadEnd> {
        let mut scanned = 0;
        loop {
            if let Some(head_bytes) = find_head_end(&self.buf[..self.filled], scanned, self.limits)?
            {
                return Ok(head_bytes);
            }
            if self.filled == self.buf.len() {
                return Err(HeadEnd::Invalid(ParseError::HeadTooLarge));
            }
            scanned = self.filled;
            let filled = self.filled;
            match self.transport.read_some(&mut self.buf[filled..]).await {
                Ok(0) => return Err(HeadEnd::Io(truncated_head())),
                Ok(n) => self.filled += n,
                Err(e) => return Err(HeadEnd::Io(e)),
            }
        }
    }

    /// Runs one exchange for the head in `buf[..head_bytes]`.
    async fn exchange<S: Service + ?Sized>(&mut self, service: &S, head_bytes: usize) -> Next {
        let limits = self.limits;
        let mut headers = [EMPTY_HEADER; HEADER_COUNT_CAPACITY];
        let header_slots = limits.header_count_max.min(HEADER_COUNT_CAPACITY);
        let buffered = self.filled - head_bytes;
        let (head_buf, rest) = self.buf.split_at_mut(head_bytes);
        let head = match parse_request(head_buf, &mut headers[..header_slots], limits) {
            Ok(Parsed::Complete(head)) if head.head_bytes == head_bytes => head,
            Err(error) => return self.reject(error.status(), false).await,
            // find_head_end promised a complete head (property-tested); answered safely anyway.
            Ok(_) => {
                return self
                    .reject((400, "request head could not be parsed"), false)
                    .await;
            }
        };
        let body_progress = match head.body {
            BodyFraming::Empty => BodyProgress::Complete,
            BodyFraming::Length(n) => BodyProgress::Remaining(n),
            BodyFraming::Chunked => BodyProgress::Unknown,
        };
        let exchange = Exchange::new(head.expect_continue, body_progress);
        let wire = &self.transport;
        let body = Body::new(wire, &exchange, rest, buffered, head.body, limits);
        let head_request = head.is_head();
        let mut request = Request { head, body };
        let mut responder = Responder::new(
            wire,
            &exchange,
            &mut self.extra,
            &mut self.out,
            &head,
            limits,
        );
        let result = service.call(&mut request, &mut responder).await;
        self.requests += 1;
        let mut next = match exchange.response.get() {
            ResponseState::NotStarted => Err(unanswered(request.body.failure(), result)),
            ResponseState::Streaming | ResponseState::Failed => Err(broken_response(result)),
            ResponseState::Done => Ok(()),
        };
        if next.is_ok() {
            next = settle_body(&exchange, &mut request.body, limits).await;
        }
        // The request and responder borrow the buffer; their last use ends here (NLL).
        let leftover = request.body.leftover();
        let leftover = head_bytes + leftover.start..head_bytes + leftover.end;
        self.conclude(next, leftover, head_request).await
    }

    /// Keeps the connection (moving the next request's bytes to the buffer start) or answers
    /// and closes.
    async fn conclude(
        &mut self,
        next: Result<(), Unfinished>,
        leftover: Range<usize>,
        head_request: bool,
    ) -> Next {
        match next {
            Ok(()) => {
                // RFC 9112 §2.2: stray CRLFs after a body (old clients add them) belong to no
                // request; dropping them here lets the idle timeout, not the head timeout, apply.
                let stray = self.buf[leftover.clone()]
                    .iter()
                    .take_while(|&&b| b == b'\r' || b == b'\n')
                    .count();
                self.buf
                    .copy_within(leftover.start + stray..leftover.end, 0);
                self.filled = leftover.len() - stray;
                Next::KeepAlive
            }
            Err(Unfinished::Answer { status, reason }) => {
                let next = self.reject((status, reason), head_request).await;
                match (next, status) {
                    (Next::Close { linger, .. }, 408) => Next::Close {
                        outcome: Outcome::TimedOut(TimeoutPhase::Body),
                        linger,
                    },
                    (next, _) => next,
                }
            }
            Err(Unfinished::Close(outcome)) => Next::Close {
                outcome,
                linger: true,
            },
        }
    }

    /// Sends an error response and closes.
    async fn reject(&mut self, (status, reason): (u16, &str), head_request: bool) -> Next {
        self.out.clear();
        let date = http_date_now();
        write_error_response(
            &mut self.out,
            status,
            reason,
            true,
            head_request,
            Some(&date),
        );
        crate::counters::count_response(status);
        let written = self.transport.write_all_timed(&self.out).await;
        let flushed = match written {
            Ok(()) => self.transport.flush_timed().await,
            Err(e) => Err(e),
        };
        let outcome = match flushed {
            Ok(()) => Outcome::Rejected { status },
            Err(e) => Outcome::Error(e),
        };
        Next::Close {
            outcome,
            linger: true,
        }
    }

    /// Shuts the write side down; with `linger`, reads and discards what the client still sends
    /// (bounded by `linger_timeout` and `drain_body_bytes_max`) so it reads our response before
    /// the kernel would answer its data with RST.
    async fn close(&mut self, linger: bool) {
        if self.transport.close_timed().await.is_err() || !linger {
            return;
        }
        let (clock, timeout) = (self.transport.clock, self.limits.linger_timeout);
        let bytes_max = self.limits.drain_body_bytes_max;
        let transport = &self.transport;
        let buf = &mut self.buf[..];
        let discard = async {
            let mut discarded = 0u64;
            while discarded <= bytes_max {
                match transport.read_some(buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => discarded += n as u64,
                }
            }
        };
        with_timeout(clock, timeout, discard).await;
    }
}

/// How reading a head can fail.
enum HeadEnd {
    Invalid(ParseError),
    Io(io::Error),
}

impl From<ParseError> for HeadEnd {
    fn from(error: ParseError) -> Self {
        HeadEnd::Invalid(error)
    }
}

/// Where the head at the start of `buf` ends — just after its final empty line — found without
/// parsing it. Leading empty lines are skipped as the parser does (RFC 9112 §2.2); the end is the
/// first LF followed by CRLF (or by a bare LF, which the parser then rejects). For every `buf`,
/// when this returns `Some(end)`, `parse_request(&buf[..end])` is complete at `end` or an error
/// (property-tested). Bytes before `from` (minus 2, for a terminator split across reads) were
/// searched already. Past `head_bytes_max`, or with no request line within
/// `request_line_bytes_max`, the parser supplies the precise error (431, 414, 400).
pub(crate) fn find_head_end(
    buf: &[u8],
    from: usize,
    limits: &Limits,
) -> Result<Option<usize>, ParseError> {
    let window = &buf[..buf.len().min(limits.head_bytes_max)];
    let line_max = limits.request_line_bytes_max;
    let start = window
        .iter()
        .take(line_max)
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    let search_from = from.saturating_sub(2).max(start);
    let mut lines = memchr::memchr_iter(b'\n', &window[search_from..]);
    let end = lines.find_map(|i| match &window[search_from + i + 1..] {
        [b'\n', ..] => Some(search_from + i + 2),
        [b'\r', b'\n', ..] => Some(search_from + i + 3),
        _ => None,
    });
    if end.is_some() {
        return Ok(end);
    }
    let line_overdue = window.len() - start >= line_max
        && memchr::memchr(b'\n', &window[start..start + line_max]).is_none();
    if buf.len() >= limits.head_bytes_max || line_overdue {
        return Err(precise_error(buf, limits));
    }
    Ok(None)
}

/// The parser's verdict on a head that broke a limit.
fn precise_error(buf: &[u8], limits: &Limits) -> ParseError {
    let mut headers = [EMPTY_HEADER; HEADER_COUNT_CAPACITY];
    let slots = limits.header_count_max.min(HEADER_COUNT_CAPACITY);
    match parse_request(buf, &mut headers[..slots], limits) {
        Err(error) => error,
        Ok(_) => ParseError::HeadTooLarge,
    }
}

fn truncated_head() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the client closed the connection inside a request head",
    )
}

/// Why an exchange cannot continue on this connection.
enum Unfinished {
    /// Nothing was sent yet: answer with this status, then close.
    Answer { status: u16, reason: &'static str },
    /// Close without answering.
    Close(Outcome),
}

/// The service returned without responding.
fn unanswered(failure: Option<BodyFailure>, result: io::Result<()>) -> Unfinished {
    let answer = |status, reason| Unfinished::Answer { status, reason };
    match failure {
        Some(BodyFailure::Chunked(e)) => {
            let (status, reason) = e.status();
            answer(status, reason)
        }
        Some(BodyFailure::Stalled) => answer(408, "request body stalled"),
        Some(BodyFailure::Truncated) => Unfinished::Close(Outcome::Error(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the client closed the connection inside a request body",
        ))),
        Some(BodyFailure::Io(kind)) => Unfinished::Close(Outcome::Error(kind.into())),
        Some(BodyFailure::ContinueRefused) | None => match result {
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                Unfinished::Close(Outcome::TimedOut(TimeoutPhase::Write))
            }
            Err(_) => answer(500, "internal error"),
            Ok(()) => answer(500, "the service did not respond"),
        },
    }
}

/// The response was started but not completed: the stream is in an unknown state.
fn broken_response(result: io::Result<()>) -> Unfinished {
    match result {
        Err(e) if e.kind() == io::ErrorKind::TimedOut => {
            Unfinished::Close(Outcome::TimedOut(TimeoutPhase::Write))
        }
        Err(e) => Unfinished::Close(Outcome::Error(e)),
        Ok(()) => Unfinished::Close(Outcome::Error(io::Error::other(
            "the service returned with its response incomplete",
        ))),
    }
}

/// After a complete response: keep the connection if the response allowed it and the body is
/// consumed or drained.
async fn settle_body(
    exchange: &Exchange,
    body: &mut Body<'_>,
    limits: &Limits,
) -> Result<(), Unfinished> {
    if let Some(failure) = body.failure() {
        let outcome = match failure {
            BodyFailure::Stalled => Outcome::TimedOut(TimeoutPhase::Body),
            other => Outcome::Error(other.to_io()),
        };
        return Err(Unfinished::Close(outcome));
    }
    if exchange.close.get() {
        return Err(Unfinished::Close(Outcome::Closed));
    }
    if body.is_complete() || body.drain(limits.drain_body_bytes_max).await {
        return Ok(());
    }
    let outcome = match body.failure() {
        Some(BodyFailure::Stalled) => Outcome::TimedOut(TimeoutPhase::Body),
        Some(other) => Outcome::Error(other.to_io()),
        None => Outcome::Closed,
    };
    Err(Unfinished::Close(outcome))
}
