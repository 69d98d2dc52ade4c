//! The responder a service answers through: status, extra headers, and a body that is either a
//! borrowed slice (written straight to the stream — e.g. a slice of a memory-mapped segment),
//! a stream of known length, or empty. The driver adds `Content-Length` and `Connection` and
//! handles HEAD (the length of the GET body, no body bytes).

use std::io;

use super::date::http_date_now;
use super::exchange::{Exchange, ResponseState};
use super::limits::Limits;
use super::parse::{RequestHead, Version};
use super::response::{push_header, write_response_head, ResponseHead};
use super::wire::Wire;

/// Bodies up to this size are copied behind the head (a small AC entry, an error message);
/// larger ones are handed to the stream from the caller's slice, in one vectored write with the
/// head, so a 4 KiB blob goes from the segment map to the socket without a copy in between.
pub const COALESCE_BODY_BYTES_MAX: usize = 1024;

/// Answers one request. Set headers with [`header`](Self::header), then send exactly one
/// response with [`send`](Self::send), [`send_text`](Self::send_text) or
/// [`start`](Self::start).
pub struct Responder<'a> {
    wire: &'a dyn Wire,
    exchange: &'a Exchange,
    /// Extra header lines, rendered.
    extra: &'a mut Vec<u8>,
    /// The rendered head (plus a small body).
    out: &'a mut Vec<u8>,
    head_request: bool,
    keep_alive: bool,
    http10: bool,
    close_requested: bool,
    response_head_bytes_max: usize,
    drain_body_bytes_max: u64,
}

fn invalid_input(message: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

impl<'a> Responder<'a> {
    pub(crate) fn new(
        wire: &'a dyn Wire,
        exchange: &'a Exchange,
        extra: &'a mut Vec<u8>,
        out: &'a mut Vec<u8>,
        head: &RequestHead<'_>,
        limits: &Limits,
    ) -> Self {
        extra.clear();
        out.clear();
        Responder {
            wire,
            exchange,
            extra,
            out,
            head_request: head.is_head(),
            keep_alive: head.keep_alive,
            http10: head.version == Version::Http10,
            close_requested: false,
            response_head_bytes_max: limits.response_head_bytes_max,
            drain_body_bytes_max: limits.drain_body_bytes_max,
        }
    }

    /// Adds a response header. `InvalidInput` for a name that is not a token, a value with
    /// CR/LF/controls, a framing header (`Content-Length`, `Transfer-Encoding`, `Connection`,
    /// `Keep-Alive`: the driver writes those), or headers beyond `response_head_bytes_max`.
    pub fn header(&mut self, name: &str, value: impl AsRef<[u8]>) -> io::Result<&mut Self> {
        // Leave room for the status line and framing headers (≤ 128 bytes).
        let extra_max = self.response_head_bytes_max.saturating_sub(128);
        push_header(self.extra, name, value.as_ref(), extra_max)?;
        Ok(self)
    }

    /// Ask the driver to close the connection after this response (`Connection: close`).
    pub fn close_connection(&mut self) {
        self.close_requested = true;
    }

    /// Whether the request is a HEAD (the body's length is sent, no body bytes).
    pub fn is_head_request(&self) -> bool {
        self.head_request
    }

    /// True once a response head has been written.
    pub fn is_started(&self) -> bool {
        self.exchange.response.get() != ResponseState::NotStarted
    }

    /// Sends a complete response with `body` (for HEAD: its length, no bytes). The body is
    /// written from the borrowed slice, no intermediate copy beyond
    /// [`COALESCE_BODY_BYTES_MAX`].
    pub async fn send(&mut self, status: u16, body: &[u8]) -> io::Result<()> {
        self.render_head(status, body.len() as u64)?;
        let coalesce = body.len() <= COALESCE_BODY_BYTES_MAX;
        if !self.head_request && coalesce {
            self.out.extend_from_slice(body);
        }
        let result = self
            .write_head_and(if self.head_request || coalesce {
                &[]
            } else {
                body
            })
            .await;
        self.finish_with(result)
    }

    /// Sends a `text/plain` response whose body is `text` plus a newline (error messages). A
    /// short message leaves with its head in one write (it used to take three sends).
    pub async fn send_text(&mut self, status: u16, text: &str) -> io::Result<()> {
        self.header("content-type", "text/plain; charset=utf-8")?;
        let length = text.len() as u64 + 1;
        if length <= COALESCE_BODY_BYTES_MAX as u64 {
            let body = [text.as_bytes(), b"\n"].concat();
            return self.send(status, &body).await;
        }
        let mut writer = self.start(status, length).await?;
        writer.write_all(text.as_bytes()).await?;
        writer.write_all(b"\n").await?;
        writer.finish().await
    }

    /// Writes the head of a response whose body of `content_length` bytes the service then
    /// streams through the returned [`BodyWriter`]. For HEAD requests the writer discards bytes.
    pub async fn start(
        &mut self,
        status: u16,
        content_length: u64,
    ) -> io::Result<BodyWriter<'_, 'a>> {
        self.render_head(status, content_length)?;
        self.exchange.response.set(ResponseState::Streaming);
        let wire = self.wire;
        if let Err(e) = wire.write_all(self.out).await {
            self.exchange.response.set(ResponseState::Failed);
            return Err(e);
        }
        let remaining = if self.head_request { 0 } else { content_length };
        Ok(BodyWriter {
            responder: self,
            remaining,
        })
    }

    /// Checks the status, decides `Connection: close`, and renders the head into `out`.
    fn render_head(&mut self, status: u16, content_length: u64) -> io::Result<()> {
        if self.is_started() {
            return Err(invalid_input(
                "a response was already sent for this request",
            ));
        }
        if !(200..=999).contains(&status) {
            return Err(invalid_input("response status must be 200..=999"));
        }
        if status == 204 && content_length != 0 {
            return Err(invalid_input("a 204 response has no body"));
        }
        let close = self.close_requested
            || !self.keep_alive
            || !self.exchange.body_reusable(self.drain_body_bytes_max);
        self.exchange.close.set(close);
        self.out.clear();
        let date = http_date_now();
        let head = ResponseHead {
            status,
            content_length,
            close,
            keep_alive_hint: self.http10 && !close,
            extra: self.extra,
            date: Some(&date),
        };
        write_response_head(self.out, &head);
        crate::counters::count_response(status);
        Ok(())
    }

    async fn write_head_and(&self, body: &[u8]) -> io::Result<()> {
        if body.is_empty() {
            self.wire.write_all(self.out).await?;
        } else {
            self.wire.write_all_pair(self.out, body).await?;
        }
        self.wire.flush().await
    }

    fn finish_with(&self, result: io::Result<()>) -> io::Result<()> {
        let state = if result.is_ok() {
            ResponseState::Done
        } else {
            ResponseState::Failed
        };
        self.exchange.response.set(state);
        result
    }
}

/// Streams a response body of the length announced to [`Responder::start`]. Call
/// [`finish`](Self::finish) after the last byte; a writer dropped early leaves the response
/// incomplete and the driver closes the connection.
pub struct BodyWriter<'r, 'a> {
    responder: &'r mut Responder<'a>,
    remaining: u64,
}

impl BodyWriter<'_, '_> {
    /// Body bytes still owed.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Writes `data`; `InvalidInput` if it exceeds the announced length. For HEAD requests the
    /// bytes are discarded.
    pub async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        if self.responder.head_request {
            return Ok(());
        }
        if data.len() as u64 > self.remaining {
            self.responder.exchange.response.set(ResponseState::Failed);
            return Err(invalid_input(
                "response body longer than its Content-Length",
            ));
        }
        let result = self.responder.wire.write_all(data).await;
        if result.is_err() {
            self.responder.exchange.response.set(ResponseState::Failed);
        }
        self.remaining -= data.len() as u64;
        result
    }

    /// Hands what was written so far to the peer (a body sent as it arrives from elsewhere,
    /// rather than from memory, must not wait in a TLS buffer for the next write).
    pub async fn flush(&mut self) -> io::Result<()> {
        let result = self.responder.wire.flush().await;
        if result.is_err() {
            self.responder.exchange.response.set(ResponseState::Failed);
        }
        result
    }

    /// Completes the response; `InvalidInput` if fewer bytes than announced were written (the
    /// connection is then closed).
    pub async fn finish(self) -> io::Result<()> {
        if self.remaining != 0 {
            self.responder.exchange.response.set(ResponseState::Failed);
            return Err(invalid_input(
                "response body shorter than its Content-Length",
            ));
        }
        let result = self.responder.wire.flush().await;
        self.responder.finish_with(result)
    }
}
