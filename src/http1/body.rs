//! The streaming request body handed to a service: decodes Content-Length or chunked framing
//! from the receive buffer and the stream, and sends `100 Continue` on the first read when the
//! client asked for it (and never if the service answers without reading).

use std::io;
use std::ops::Range;
use std::time::Duration;

use super::chunked::ChunkedDecoder;
use super::error::ChunkedError;
use super::exchange::{BodyProgress, Exchange, ResponseState};
use super::facts::BodyFraming;
use super::limits::Limits;
use super::response::CONTINUE_RESPONSE;
use super::wire::Wire;

/// Why a body read failed; kept so the driver can answer and close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyFailure {
    /// Malformed chunked framing.
    Chunked(ChunkedError),
    /// The client closed the stream before the whole body arrived.
    Truncated,
    /// No body byte arrived within `body_stall_timeout`.
    Stalled,
    /// The final response was sent without `100 Continue`, so the client may never send the body.
    ContinueRefused,
    /// The stream failed.
    Io(io::ErrorKind),
}

impl BodyFailure {
    pub(crate) fn to_io(self) -> io::Error {
        match self {
            BodyFailure::Chunked(e) => io::Error::new(io::ErrorKind::InvalidData, e),
            BodyFailure::Truncated => io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the client closed the connection before sending the whole body",
            ),
            BodyFailure::Stalled => io::Error::new(
                io::ErrorKind::TimedOut,
                "no body bytes arrived within body_stall_timeout",
            ),
            BodyFailure::ContinueRefused => io::Error::other(
                "the response was sent before the body was read without 100 Continue",
            ),
            BodyFailure::Io(kind) => io::Error::new(kind, "reading the request body failed"),
        }
    }
}

enum Framing {
    Length { remaining: u64 },
    Chunked(Box<ChunkedDecoder>),
}

/// A request body being read from the connection. Read it with [`Body::read`] until it returns
/// 0; a multi-GiB body streams through the caller's buffer and never sits in memory.
pub struct Body<'a> {
    wire: &'a dyn Wire,
    exchange: &'a Exchange,
    /// The receive buffer after the head; `buf[start..end]` holds received, unconsumed bytes.
    buf: &'a mut [u8],
    start: usize,
    end: usize,
    framing: Framing,
    stall_timeout: Duration,
    failure: Option<BodyFailure>,
    bytes_read: u64,
}

impl<'a> Body<'a> {
    pub(crate) fn new(
        wire: &'a dyn Wire,
        exchange: &'a Exchange,
        buf: &'a mut [u8],
        buffered: usize,
        framing: BodyFraming,
        limits: &Limits,
    ) -> Self {
        let framing = match framing {
            BodyFraming::Empty => Framing::Length { remaining: 0 },
            BodyFraming::Length(remaining) => Framing::Length { remaining },
            BodyFraming::Chunked => Framing::Chunked(Box::new(ChunkedDecoder::new(limits))),
        };
        let body = Body {
            wire,
            exchange,
            buf,
            start: 0,
            end: buffered,
            framing,
            stall_timeout: limits.body_stall_timeout,
            failure: None,
            bytes_read: 0,
        };
        body.publish_progress();
        body
    }

    /// The body length if the client declared it (Content-Length; 0 for no body), `None` for
    /// chunked bodies.
    pub fn declared_len(&self) -> Option<u64> {
        match &self.framing {
            Framing::Length { remaining } => Some(self.bytes_read + remaining),
            Framing::Chunked(_) => None,
        }
    }

    /// Body bytes handed out so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// True once every body byte has been read.
    pub fn is_complete(&self) -> bool {
        match &self.framing {
            Framing::Length { remaining } => *remaining == 0,
            Framing::Chunked(decoder) => decoder.is_done(),
        }
    }

    /// Reads body bytes into `out`; `Ok(0)` at the end of the body (or if `out` is empty).
    /// Errors: `InvalidData` (malformed chunked framing; the inner error is a
    /// [`ChunkedError`]), `UnexpectedEof` (the client closed early), `TimedOut`
    /// (`body_stall_timeout`). After an error every further read repeats it.
    pub async fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if let Some(failure) = self.failure {
            return Err(failure.to_io());
        }
        if out.is_empty() || self.is_complete() {
            return Ok(0);
        }
        let result = match self.send_continue().await {
            Ok(()) => self.read_framed(out).await,
            Err(failure) => Err(failure),
        };
        let result = result.map_err(|failure| {
            self.failure = Some(failure);
            failure.to_io()
        });
        if let Ok(n) = result {
            self.bytes_read += n as u64;
        }
        self.publish_progress();
        result
    }

    /// Reads the whole body into `out` (appending), for small bodies a front-end parses whole
    /// (an action-cache entry, a JSON event list). A body longer than `bytes_max` fails with
    /// `InvalidData` after at most `bytes_max` + one read's bytes; the caller answers 413.
    pub async fn read_to_end(&mut self, out: &mut Vec<u8>, bytes_max: usize) -> io::Result<()> {
        let mut chunk = [0u8; 4096];
        let start = out.len();
        loop {
            let n = self.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            if out.len() - start + n > bytes_max {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "request body exceeds the caller's bound",
                ));
            }
            out.extend_from_slice(&chunk[..n]);
        }
    }

    /// Reads and discards the rest of the body if at most `bytes_max` bytes remain (for chunked
    /// bodies: if it ends within `bytes_max` more bytes). True when the body is fully consumed.
    pub(crate) async fn drain(&mut self, bytes_max: u64) -> bool {
        let mut scratch = [0u8; 2048];
        let limit = self.bytes_read.saturating_add(bytes_max);
        while !self.is_complete() && self.bytes_read <= limit {
            match self.read(&mut scratch).await {
                Ok(0) | Err(_) => return false,
                Ok(_) => {}
            }
        }
        self.is_complete()
    }

    /// The received bytes that follow the body (the next pipelined request), as a range of the
    /// buffer after the head. Meaningful once the body is complete.
    pub(crate) fn leftover(&self) -> Range<usize> {
        self.start..self.end
    }

    pub(crate) fn failure(&self) -> Option<BodyFailure> {
        self.failure
    }

    fn publish_progress(&self) {
        let progress = match (&self.failure, &self.framing) {
            (Some(_), _) => BodyProgress::Failed,
            (None, Framing::Length { remaining: 0 }) => BodyProgress::Complete,
            (None, Framing::Length { remaining }) => BodyProgress::Remaining(*remaining),
            (None, Framing::Chunked(d)) if d.is_done() => BodyProgress::Complete,
            (None, Framing::Chunked(_)) => BodyProgress::Unknown,
        };
        self.exchange.body.set(progress);
    }

    async fn send_continue(&mut self) -> Result<(), BodyFailure> {
        if !self.exchange.continue_pending.get() {
            return Ok(());
        }
        if self.exchange.response.get() != ResponseState::NotStarted {
            return Err(BodyFailure::ContinueRefused);
        }
        self.exchange.continue_pending.set(false);
        self.wire
            .write_all(CONTINUE_RESPONSE)
            .await
            .map_err(|e| BodyFailure::Io(e.kind()))?;
        self.wire
            .flush()
            .await
            .map_err(|e| BodyFailure::Io(e.kind()))
    }

    async fn read_framed(&mut self, out: &mut [u8]) -> Result<usize, BodyFailure> {
        match self.framing {
            Framing::Length { remaining } => {
                let n = self.read_length(out, remaining).await?;
                self.framing = Framing::Length {
                    remaining: remaining - n as u64,
                };
                Ok(n)
            }
            Framing::Chunked(_) => self.read_chunked(out).await,
        }
    }

    async fn read_length(&mut self, out: &mut [u8], remaining: u64) -> Result<usize, BodyFailure> {
        let want = remaining.min(out.len() as u64) as usize;
        if self.start < self.end {
            let n = want.min(self.end - self.start);
            out[..n].copy_from_slice(&self.buf[self.start..self.start + n]);
            self.start += n;
            return Ok(n);
        }
        // Nothing buffered: read straight into the caller's buffer, never past the body.
        self.read_stream_into(&mut out[..want]).await
    }

    async fn read_chunked(&mut self, out: &mut [u8]) -> Result<usize, BodyFailure> {
        loop {
            let Framing::Chunked(decoder) = &mut self.framing else {
                return Ok(0);
            };
            if decoder.is_done() {
                return Ok(0);
            }
            if self.start < self.end {
                let step = decoder
                    .decode(&self.buf[self.start..self.end], out.len())
                    .map_err(BodyFailure::Chunked)?;
                let data = &self.buf[self.start..self.end][step.data];
                out[..data.len()].copy_from_slice(data);
                self.start += step.consumed;
                if !data.is_empty() {
                    return Ok(data.len());
                }
                continue;
            }
            let pending = decoder.data_pending();
            if pending > 0 {
                let want = pending.min(out.len() as u64) as usize;
                let n = self.read_stream_into(&mut out[..want]).await?;
                if let Framing::Chunked(decoder) = &mut self.framing {
                    decoder.consume_data(n as u64);
                }
                return Ok(n);
            }
            self.fill_buffer().await?;
        }
    }

    /// Refills the (empty) buffer with framing bytes.
    async fn fill_buffer(&mut self) -> Result<(), BodyFailure> {
        let (wire, timeout) = (self.wire, self.stall_timeout);
        let n = read_stream(wire, &mut self.buf[..], timeout).await?;
        self.start = 0;
        self.end = n;
        Ok(())
    }

    async fn read_stream_into(&mut self, out: &mut [u8]) -> Result<usize, BodyFailure> {
        read_stream(self.wire, out, self.stall_timeout).await
    }
}

/// One read for body bytes: end of stream is `Truncated` (the body is not complete yet).
async fn read_stream(
    wire: &dyn Wire,
    out: &mut [u8],
    timeout: Duration,
) -> Result<usize, BodyFailure> {
    match wire.read(out, timeout).await {
        Ok(0) => Err(BodyFailure::Truncated),
        Ok(n) => Ok(n),
        Err(e) if e.kind() == io::ErrorKind::TimedOut => Err(BodyFailure::Stalled),
        Err(e) => Err(BodyFailure::Io(e.kind())),
    }
}
