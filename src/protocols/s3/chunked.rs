//! Unsigned `aws-chunked` bodies (`x-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER`),
//! decoded here: s3s decodes `aws-chunked` only while it checks a signature, so an unsigned
//! request (anonymous, on the `s3.listen` port) reaches the handler still encoded.
//!
//! ```text
//! body     = *chunk last-chunk trailers CRLF
//! chunk    = hex-size [";" extension] CRLF data CRLF
//! last     = "0" [";" extension] CRLF
//! trailers = *(name ":" value CRLF)          e.g. x-amz-checksum-crc32:AAAAAA==
//! ```
//!
//! [`Decoder`] wraps the body stream and yields the data; the trailers land in a
//! [`TrailerSlot`] once the last chunk is read, for the checksum check. A malformed body is an
//! error of the stream (the put stores nothing).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use futures::Stream;
use http::{HeaderMap, HeaderName, HeaderValue};

/// Longest chunk-size line (size and extensions).
pub const CHUNK_LINE_BYTES_MAX: usize = 4096;

/// Most bytes of trailers.
pub const TRAILER_BYTES_MAX: usize = 16 * 1024;

/// Where the decoded trailers are put.
pub type TrailerSlot = Arc<Mutex<Option<HeaderMap>>>;

type Inner = Pin<Box<dyn Stream<Item = Result<Bytes, s3s::StdError>> + Send + Sync>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a chunk-size line.
    Size,
    /// `n` data bytes of the current chunk left.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// Reading trailer lines.
    Trailers,
    Done,
}

/// The decoding stream.
pub struct Decoder {
    inner: Inner,
    buffer: BytesMut,
    state: State,
    trailers: HeaderMap,
    trailer_bytes: usize,
    slot: TrailerSlot,
    inner_done: bool,
}

fn malformed(what: &str) -> s3s::StdError {
    format!("malformed aws-chunked body: {what}").into()
}

impl Decoder {
    pub fn new(inner: Inner, slot: TrailerSlot) -> Decoder {
        Decoder {
            inner,
            buffer: BytesMut::new(),
            state: State::Size,
            trailers: HeaderMap::new(),
            trailer_bytes: 0,
            slot,
            inner_done: false,
        }
    }

    /// A CRLF-terminated line from the buffer (without the CRLF), if complete.
    fn line(&mut self, max: usize) -> Result<Option<Bytes>, s3s::StdError> {
        match self.buffer.windows(2).position(|w| w == b"\r\n") {
            Some(end) if end <= max => {
                let line = self.buffer.split_to(end).freeze();
                self.buffer.advance(2);
                Ok(Some(line))
            }
            Some(_) => Err(malformed("line too long")),
            None if self.buffer.len() > max + 1 => Err(malformed("line too long")),
            None => Ok(None),
        }
    }

    /// Decodes what the buffer holds: `Some(data)`, or `None` when more input is needed (or
    /// the body is done).
    fn step(&mut self) -> Result<Option<Bytes>, s3s::StdError> {
        loop {
            match self.state {
                State::Size => {
                    let Some(line) = self.line(CHUNK_LINE_BYTES_MAX)? else {
                        return Ok(None);
                    };
                    let size_text = line.split(|&b| b == b';').next().unwrap_or(&[]);
                    let size_text = std::str::from_utf8(size_text)
                        .map_err(|_| malformed("chunk size is not text"))?
                        .trim();
                    let size = u64::from_str_radix(size_text, 16)
                        .map_err(|_| malformed("chunk size is not hex"))?;
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::Data(size)
                    };
                }
                State::Data(left) => {
                    if self.buffer.is_empty() {
                        return Ok(None);
                    }
                    let n = (left as usize).min(self.buffer.len());
                    let data = self.buffer.split_to(n).freeze();
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::DataEnd
                    } else {
                        State::Data(left)
                    };
                    return Ok(Some(data));
                }
                State::DataEnd => {
                    if self.buffer.len() < 2 {
                        return Ok(None);
                    }
                    if &self.buffer[..2] != b"\r\n" {
                        return Err(malformed("chunk data is longer than its size"));
                    }
                    self.buffer.advance(2);
                    self.state = State::Size;
                }
                State::Trailers => {
                    let Some(line) = self.line(TRAILER_BYTES_MAX)? else {
                        return Ok(None);
                    };
                    if line.is_empty() {
                        self.state = State::Done;
                        *self.slot.lock().unwrap_or_else(|p| p.into_inner()) =
                            Some(std::mem::take(&mut self.trailers));
                        return Ok(None);
                    }
                    self.trailer_bytes += line.len() + 2;
                    if self.trailer_bytes > TRAILER_BYTES_MAX {
                        return Err(malformed("trailers too long"));
                    }
                    let text = std::str::from_utf8(&line).map_err(|_| malformed("trailer"))?;
                    let (name, value) = text
                        .split_once(':')
                        .ok_or_else(|| malformed("trailer without `:`"))?;
                    let name = HeaderName::from_bytes(name.trim().as_bytes())
                        .map_err(|_| malformed("trailer name"))?;
                    let value = HeaderValue::from_str(value.trim())
                        .map_err(|_| malformed("trailer value"))?;
                    self.trailers.append(name, value);
                }
                State::Done => {
                    if !self.buffer.is_empty() {
                        return Err(malformed("bytes after the trailers"));
                    }
                    return Ok(None);
                }
            }
        }
    }
}

impl s3s::stream::ByteStream for Decoder {}

impl Stream for Decoder {
    type Item = Result<Bytes, s3s::StdError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match self.step() {
                Err(e) => {
                    self.state = State::Done;
                    self.buffer.clear();
                    return Poll::Ready(Some(Err(e)));
                }
                Ok(Some(data)) => return Poll::Ready(Some(Ok(data))),
                Ok(None) if self.state == State::Done && self.buffer.is_empty() => {
                    if self.inner_done {
                        return Poll::Ready(None);
                    }
                }
                Ok(None) if self.inner_done => {
                    return Poll::Ready(Some(Err(malformed("the body ended early"))));
                }
                Ok(None) => {}
            }
            match self.inner.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => self.inner_done = true,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(bytes))) => self.buffer.extend_from_slice(&bytes),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use futures::StreamExt;

    fn decode(pieces: &[&[u8]]) -> (Result<Vec<u8>, String>, Option<HeaderMap>) {
        let owned: Vec<Result<Bytes, s3s::StdError>> = pieces
            .iter()
            .map(|p| Ok(Bytes::copy_from_slice(p)))
            .collect();
        let slot = TrailerSlot::default();
        let mut decoder = Decoder::new(Box::pin(futures::stream::iter(owned)), slot.clone());
        let out = block_on(async {
            let mut data = Vec::new();
            while let Some(item) = decoder.next().await {
                data.extend_from_slice(&item.map_err(|e| e.to_string())?);
            }
            Ok(data)
        });
        let trailers = slot.lock().unwrap().take();
        (out, trailers)
    }

    #[test]
    fn decodes_chunks_and_trailers_split_anywhere() {
        let body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n";
        for split in 0..body.len() {
            let (data, trailers) = decode(&[&body[..split], &body[split..]]);
            assert_eq!(data.unwrap(), b"hello world", "split at {split}");
            let trailers = trailers.expect("trailers");
            assert_eq!(trailers["x-amz-checksum-crc32"], "DUoRhQ==");
        }
        let (data, trailers) = decode(&[b"0\r\n\r\n"]);
        assert_eq!(data.unwrap(), b"");
        assert!(trailers.unwrap().is_empty());
    }

    #[test]
    fn malformed_bodies_are_errors() {
        for bad in [
            &b"zz\r\nhello\r\n0\r\n\r\n"[..],
            b"5\r\nhello world\r\n0\r\n\r\n",
            b"5\r\nhel",
            b"5\r\nhello\r\n0\r\nno-colon\r\n\r\n",
            b"5\r\nhello\r\n0\r\n\r\nextra",
        ] {
            let (data, _) = decode(&[bad]);
            assert!(data.is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let long = vec![b'1'; CHUNK_LINE_BYTES_MAX + 10];
        assert!(decode(&[&long]).0.is_err());
    }
}
