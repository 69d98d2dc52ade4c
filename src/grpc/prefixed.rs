//! A stream that first yields bytes already read from it.
//!
//! The HTTP/1 layer reads from a new connection before it knows the protocol; when it sees the
//! HTTP/2 preface it hands the connection to [`super::server::serve`] together with everything it
//! has read so far. [`PrefixedStream`] replays those bytes, then reads from the socket. Writes go
//! straight to the socket.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_lite::{AsyncRead, AsyncWrite};

/// Replays `prefix` before reading from `inner`. INVARIANT: `consumed <= prefix.len()`.
#[derive(Debug)]
pub struct PrefixedStream<S> {
    prefix: Vec<u8>,
    consumed: usize,
    inner: S,
}

impl<S> PrefixedStream<S> {
    pub fn new(prefix: Vec<u8>, inner: S) -> PrefixedStream<S> {
        PrefixedStream {
            prefix,
            consumed: 0,
            inner,
        }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for PrefixedStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let remaining = &this.prefix[this.consumed..];
        if remaining.is_empty() {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let count = remaining.len().min(buf.len());
        buf[..count].copy_from_slice(&remaining[..count]);
        this.consumed += count;
        if this.consumed == this.prefix.len() {
            // Free the replay buffer; the connection may live for hours.
            this.prefix = Vec::new();
            this.consumed = 0;
        }
        Poll::Ready(Ok(count))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for PrefixedStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::block_on;
    use futures_lite::io::{AsyncReadExt, AsyncWriteExt, Cursor};

    #[test]
    fn replays_the_prefix_then_reads_the_stream() {
        let mut stream = PrefixedStream::new(b"PRI * ".to_vec(), Cursor::new(b"HTTP/2.0".to_vec()));
        let mut small = [0u8; 4];
        block_on(stream.read_exact(&mut small)).unwrap();
        assert_eq!(&small, b"PRI ");
        let mut rest = Vec::new();
        block_on(stream.read_to_end(&mut rest)).unwrap();
        assert_eq!(rest, b"* HTTP/2.0");
    }

    #[test]
    fn empty_prefix_reads_straight_through_and_writes_pass() {
        let mut stream = PrefixedStream::new(Vec::new(), Cursor::new(vec![0u8; 3]));
        block_on(stream.write_all(b"ab")).unwrap();
        let mut rest = Vec::new();
        block_on(stream.read_to_end(&mut rest)).unwrap();
        assert_eq!(rest, [0u8], "the write overwrote two bytes of the cursor");
        assert_eq!(stream.get_ref().get_ref(), &vec![b'a', b'b', 0]);
    }
}
