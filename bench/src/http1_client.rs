//! A minimal HTTP/1.1 client connection on monoio: one request at a time on a keep-alive
//! connection, `Content-Length` request framing, `Content-Length` or chunked response framing,
//! the whole response body buffered so the caller can check every byte.
//!
//! Buffers are owned and handed to the kernel (io_uring takes ownership of the memory of an
//! in-flight operation; a dropped future must not leave it writing into freed memory), so the
//! connection keeps one send and one receive `Vec` and lends them to each operation.

use crate::http1_response::{
    framing, parse_response_head, ChunkProgress, ChunkedDecoder, Framing, Parsed,
};
use crate::limits::{OBJECT_BYTES_MAX, RESPONSE_HEAD_BYTES_MAX};
use crate::protocol::Target;
use crate::stats::{ErrorKind, RequestError};
use bytes::Bytes;
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use std::net::SocketAddr;
use std::ops::Range;

/// Request bodies up to this size are copied behind the head and sent in one write; larger ones
/// are written from the shared pool without a copy (two writes). 64 KiB keeps the copy cheaper
/// than the extra system call.
pub const BODY_COPY_BYTES_MAX: usize = 64 * 1024;

/// Initial receive buffer per connection; it grows to the largest response seen (≤ head limit +
/// OBJECT_BYTES_MAX).
pub const RECEIVE_BUFFER_BYTES_INITIAL: usize = 64 * 1024;

/// Smallest free space offered to one `read`.
const READ_CHUNK_BYTES_MIN: usize = 16 * 1024;

/// One checked response; the body is `Http1Connection::body()` until the next request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    body: Range<usize>,
    /// The server said it will close the connection; the caller must reconnect.
    pub connection_close: bool,
}

impl Response {
    pub fn body_len(&self) -> usize {
        self.body.len()
    }
}

pub struct Http1Connection {
    stream: TcpStream,
    send: Vec<u8>,
    receive: Vec<u8>,
    body: Range<usize>,
}

impl Http1Connection {
    pub async fn connect(address: SocketAddr) -> Result<Http1Connection, RequestError> {
        let stream = TcpStream::connect_addr(address).await.map_err(|e| {
            RequestError::new(ErrorKind::Connect, format!("connect {address}: {e}"))
        })?;
        // Requests are small writes that must leave at once: Nagle would add up to 40 ms.
        stream
            .set_nodelay(true)
            .map_err(|e| RequestError::new(ErrorKind::Connect, format!("TCP_NODELAY: {e}")))?;
        Ok(Http1Connection {
            stream,
            send: Vec::with_capacity(BODY_COPY_BYTES_MAX + 1024),
            receive: Vec::with_capacity(RECEIVE_BUFFER_BYTES_INITIAL),
            body: 0..0,
        })
    }

    /// Sends `method target` with the given body parts (concatenated) and reads the response.
    /// `headers` are complete header lines (`Name: value\r\n` each) sent after `Host` and
    /// `Content-Length`.
    pub async fn request(
        &mut self,
        method: &str,
        target: &Target<'_>,
        host: &str,
        headers: &[u8],
        body_head: &[u8],
        body_tail: Option<Bytes>,
    ) -> Result<Response, RequestError> {
        let tail_len = body_tail.as_ref().map_or(0, Bytes::len);
        let body_len = body_head.len() + tail_len;
        self.send.clear();
        self.send.extend_from_slice(method.as_bytes());
        self.send.push(b' ');
        target.write_to(&mut self.send);
        self.send.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        self.send.extend_from_slice(host.as_bytes());
        self.send.extend_from_slice(b"\r\n");
        if method != "GET" && method != "HEAD" {
            self.send
                .extend_from_slice(format!("Content-Length: {body_len}\r\n").as_bytes());
        }
        self.send.extend_from_slice(headers);
        self.send.extend_from_slice(b"\r\n");
        self.send.extend_from_slice(body_head);
        let mut separate_tail = None;
        match body_tail {
            Some(tail) if tail.len() > BODY_COPY_BYTES_MAX => separate_tail = Some(tail),
            Some(tail) => self.send.extend_from_slice(&tail),
            None => {}
        }
        self.write_send_buffer().await?;
        if let Some(tail) = separate_tail {
            let (result, _) = self.stream.write_all(tail).await;
            result.map_err(|e| RequestError::new(ErrorKind::Write, e.to_string()))?;
        }
        self.read_response(method == "HEAD").await
    }

    pub fn body(&self) -> &[u8] {
        &self.receive[self.body.clone()]
    }

    async fn write_send_buffer(&mut self) -> Result<(), RequestError> {
        let buffer = std::mem::take(&mut self.send);
        let (result, buffer) = self.stream.write_all(buffer).await;
        self.send = buffer;
        result
            .map(|_| ())
            .map_err(|e| RequestError::new(ErrorKind::Write, e.to_string()))
    }

    async fn read_response(&mut self, request_was_head: bool) -> Result<Response, RequestError> {
        self.receive.clear();
        let head = loop {
            match parse_response_head(&self.receive).map_err(malformed)? {
                Parsed::Partial => self.read_more(RESPONSE_HEAD_BYTES_MAX).await?,
                // An interim 1xx response (e.g. 100 Continue) precedes the real one: skip it.
                Parsed::Complete(head) if (100..200).contains(&head.status) => {
                    self.receive.drain(..head.head_bytes);
                }
                Parsed::Complete(head) => break head,
            }
        };
        let end = match framing(&head, request_was_head).map_err(malformed)? {
            Framing::Length(body_len) => {
                if body_len > OBJECT_BYTES_MAX as u64 {
                    return Err(RequestError::new(
                        ErrorKind::Malformed,
                        format!("Content-Length {body_len} exceeds OBJECT_BYTES_MAX"),
                    ));
                }
                let end = head.head_bytes + body_len as usize;
                while self.receive.len() < end {
                    self.read_more(end).await?;
                }
                end
            }
            Framing::Chunked => {
                let mut decoder = ChunkedDecoder::new(head.head_bytes, OBJECT_BYTES_MAX as u64);
                loop {
                    match decoder.advance(&mut self.receive).map_err(malformed)? {
                        ChunkProgress::Done { body_end } => break body_end,
                        ChunkProgress::NeedMore => {
                            let wanted = self.receive.len() + READ_CHUNK_BYTES_MIN;
                            self.read_more(wanted).await?
                        }
                    }
                }
            }
        };
        if self.receive.len() > end {
            return Err(RequestError::new(
                ErrorKind::Malformed,
                format!(
                    "{} bytes after the response (none were requested)",
                    self.receive.len() - end
                ),
            ));
        }
        self.body = head.head_bytes..end;
        Ok(Response {
            status: head.status,
            body: self.body.clone(),
            connection_close: head.connection_close,
        })
    }

    /// Reads at least one byte more, growing the buffer towards `wanted_len` total bytes.
    async fn read_more(&mut self, wanted_len: usize) -> Result<(), RequestError> {
        let len = self.receive.len();
        if self.receive.capacity() - len < READ_CHUNK_BYTES_MIN {
            let target = wanted_len.max(len + READ_CHUNK_BYTES_MIN);
            self.receive.reserve(target - len);
        }
        let capacity = self.receive.capacity();
        let buffer = std::mem::take(&mut self.receive);
        let (result, slice) = self.stream.read(buffer.slice_mut(len..capacity)).await;
        self.receive = slice.into_inner();
        match result {
            Ok(0) => Err(RequestError::new(
                ErrorKind::Closed,
                format!("server closed the connection after {len} bytes of the response"),
            )),
            Ok(_) => Ok(()),
            Err(e) => Err(RequestError::new(ErrorKind::Read, e.to_string())),
        }
    }
}

fn malformed(error: crate::http1_response::ParseError) -> RequestError {
    RequestError::new(ErrorKind::Malformed, error.to_string())
}
