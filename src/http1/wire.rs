//! The byte stream under the driver: a futures-io stream, a clock for timeouts, and the
//! object-safe [`Wire`] seam through which a request body and a responder share that stream.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_io::{AsyncRead, AsyncWrite};
use futures_lite::future::{or, poll_fn};

/// A clock that can sleep: the only timer the driver needs. The server passes one backed by
/// `glommio::timer::sleep`; tests may use any executor's timer.
///
/// ```ignore
/// struct GlommioClock;
/// impl tessera::http1::Sleep for GlommioClock {
///     fn sleep(&self, duration: std::time::Duration) -> impl std::future::Future<Output = ()> {
///         glommio::timer::sleep(duration)
///     }
/// }
/// ```
pub trait Sleep {
    /// Completes after `duration`.
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()>;

    /// Completes when the server starts draining. The driver races it only while a connection
    /// waits idle for its next request, so in-flight requests finish and idle keep-alive
    /// connections close at once. The default never completes.
    fn shutdown(&self) -> impl Future<Output = ()> {
        std::future::pending()
    }
}

/// Runs `future` for at most `duration`; `None` when the clock won.
pub(crate) async fn with_timeout<C: Sleep, F: Future>(
    clock: &C,
    duration: Duration,
    future: F,
) -> Option<F::Output> {
    or(async { Some(future.await) }, async {
        clock.sleep(duration).await;
        None
    })
    .await
}

pub(crate) fn timed_out(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what)
}

/// A boxed, non-`Send` future (the driver runs on one thread).
pub(crate) type LocalFuture<'x, T> = Pin<Box<dyn Future<Output = T> + 'x>>;

/// The stream operations a request body and a responder need, without their types: keeps
/// [`Service`](super::Service) free of generics. Each call allocates one small box.
pub(crate) trait Wire {
    /// Reads some bytes; `TimedOut` when nothing arrives within `timeout`; 0 at end of stream.
    fn read<'x>(
        &'x self,
        buf: &'x mut [u8],
        timeout: Duration,
    ) -> LocalFuture<'x, io::Result<usize>>;
    /// Writes all of `buf`; `TimedOut` when one write makes no progress within the write-stall
    /// timeout.
    fn write_all<'x>(&'x self, buf: &'x [u8]) -> LocalFuture<'x, io::Result<()>>;
    /// Writes all of `head` then all of `body`, handing both to the stream at once
    /// (`poll_write_vectored`) so that a response head and its body leave in one send when the
    /// stream supports it. Same timeout as [`write_all`](Self::write_all).
    fn write_all_pair<'x>(
        &'x self,
        head: &'x [u8],
        body: &'x [u8],
    ) -> LocalFuture<'x, io::Result<()>>;
    /// Flushes the stream.
    fn flush(&self) -> LocalFuture<'_, io::Result<()>>;
}

/// A borrowed stream plus the clock. INVARIANT: the `RefCell` is borrowed only inside one
/// `poll_*` call, never across an await, so two futures sharing the transport (a body read that
/// sends `100 Continue`, a response write) never see it borrowed.
pub(crate) struct Transport<'a, IO, C> {
    io: RefCell<&'a mut IO>,
    pub(crate) clock: &'a C,
    write_stall_timeout: Duration,
}

fn busy() -> io::Error {
    io::Error::other("http1 transport re-entered during a poll")
}

impl<'a, IO, C> Transport<'a, IO, C>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    C: Sleep,
{
    pub(crate) fn new(io: &'a mut IO, clock: &'a C, write_stall_timeout: Duration) -> Self {
        Transport {
            io: RefCell::new(io),
            clock,
            write_stall_timeout,
        }
    }

    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        match self.io.try_borrow_mut() {
            Ok(mut io) => Pin::new(&mut **io).poll_read(cx, buf),
            Err(_) => Poll::Ready(Err(busy())),
        }
    }

    fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.io.try_borrow_mut() {
            Ok(mut io) => Pin::new(&mut **io).poll_write(cx, buf),
            Err(_) => Poll::Ready(Err(busy())),
        }
    }

    fn poll_write_vectored(
        &self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.io.try_borrow_mut() {
            Ok(mut io) => Pin::new(&mut **io).poll_write_vectored(cx, bufs),
            Err(_) => Poll::Ready(Err(busy())),
        }
    }

    /// Reads some bytes with no timeout (the caller bounds the whole operation). A stream that
    /// claims more bytes than the buffer holds breaks the futures-io contract; that is an error
    /// here, not an out-of-bounds slice later.
    pub(crate) async fn read_some(&self, buf: &mut [u8]) -> io::Result<usize> {
        let capacity = buf.len();
        let n = poll_fn(|cx| self.poll_read(cx, buf)).await?;
        if n > capacity {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "stream read overran its buffer",
            ));
        }
        Ok(n)
    }

    pub(crate) async fn read_timed(&self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        with_timeout(self.clock, timeout, self.read_some(buf))
            .await
            .unwrap_or_else(|| Err(timed_out("no bytes arrived within the timeout")))
    }

    pub(crate) async fn write_all_timed(&self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let write = poll_fn(|cx| self.poll_write(cx, buf));
            let written = with_timeout(self.clock, self.write_stall_timeout, write)
                .await
                .unwrap_or_else(|| Err(timed_out("the peer stopped reading the response")))?;
            if written == 0 || written > buf.len() {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "the peer closed the stream",
                ));
            }
            buf = &buf[written..];
        }
        Ok(())
    }

    /// `head` then `body`, vectored while both have bytes left; a stream that takes only part
    /// (or only the first buffer, as `poll_write_vectored`'s default does) is continued.
    pub(crate) async fn write_pair_timed(
        &self,
        mut head: &[u8],
        mut body: &[u8],
    ) -> io::Result<()> {
        while !head.is_empty() {
            let bufs = [io::IoSlice::new(head), io::IoSlice::new(body)];
            let write = poll_fn(|cx| self.poll_write_vectored(cx, &bufs));
            let written = with_timeout(self.clock, self.write_stall_timeout, write)
                .await
                .unwrap_or_else(|| Err(timed_out("the peer stopped reading the response")))?;
            if written == 0 || written > head.len() + body.len() {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "the peer closed the stream",
                ));
            }
            if written >= head.len() {
                body = &body[written - head.len()..];
                head = &[];
            } else {
                head = &head[written..];
            }
        }
        self.write_all_timed(body).await
    }

    pub(crate) async fn flush_timed(&self) -> io::Result<()> {
        let flush = poll_fn(|cx| match self.io.try_borrow_mut() {
            Ok(mut io) => Pin::new(&mut **io).poll_flush(cx),
            Err(_) => Poll::Ready(Err(busy())),
        });
        with_timeout(self.clock, self.write_stall_timeout, flush)
            .await
            .unwrap_or_else(|| Err(timed_out("the peer stopped reading the response")))
    }

    /// Shuts the write side down (FIN), bounded by the write-stall timeout.
    pub(crate) async fn close_timed(&self) -> io::Result<()> {
        let close = poll_fn(|cx| match self.io.try_borrow_mut() {
            Ok(mut io) => Pin::new(&mut **io).poll_close(cx),
            Err(_) => Poll::Ready(Err(busy())),
        });
        with_timeout(self.clock, self.write_stall_timeout, close)
            .await
            .unwrap_or_else(|| Err(timed_out("closing the stream stalled")))
    }
}

impl<IO, C> Wire for Transport<'_, IO, C>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    C: Sleep,
{
    fn read<'x>(
        &'x self,
        buf: &'x mut [u8],
        timeout: Duration,
    ) -> LocalFuture<'x, io::Result<usize>> {
        Box::pin(self.read_timed(buf, timeout))
    }

    fn write_all<'x>(&'x self, buf: &'x [u8]) -> LocalFuture<'x, io::Result<()>> {
        Box::pin(self.write_all_timed(buf))
    }

    fn write_all_pair<'x>(
        &'x self,
        head: &'x [u8],
        body: &'x [u8],
    ) -> LocalFuture<'x, io::Result<()>> {
        Box::pin(self.write_pair_timed(head, body))
    }

    fn flush(&self) -> LocalFuture<'_, io::Result<()>> {
        Box::pin(self.flush_timed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::test_support::TestClock;

    /// Takes at most `step` bytes per write, across buffers when vectored; `pending_every`
    /// makes every n-th call return Pending first (woken at once).
    struct Trickle {
        out: Vec<u8>,
        step: usize,
        calls: usize,
        pending_every: usize,
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(0))
        }
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            self.calls += 1;
            if self.calls.is_multiple_of(self.pending_every) {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let mut room = self.step;
            let mut taken = 0;
            for buf in bufs {
                let n = buf.len().min(room);
                self.out.extend_from_slice(&buf[..n]);
                taken += n;
                room -= n;
                if room == 0 {
                    break;
                }
            }
            Poll::Ready(Ok(taken))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn a_pair_arrives_whole_in_order_whatever_each_write_takes() {
        let head: Vec<u8> = (0..37u8).collect();
        let body: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        for step in [1, 5, 36, 37, 38, 64, 4096, 1 << 20] {
            for pending_every in [2, 3, usize::MAX] {
                for body in [&body[..], &body[..0], &body[..1]] {
                    let mut io = Trickle {
                        out: Vec::new(),
                        step,
                        calls: 0,
                        pending_every,
                    };
                    {
                        let transport = Transport::new(&mut io, &TestClock, Duration::from_secs(5));
                        futures_lite::future::block_on(transport.write_pair_timed(&head, body))
                            .unwrap();
                    }
                    let mut expected = head.clone();
                    expected.extend_from_slice(body);
                    assert_eq!(
                        io.out, expected,
                        "step {step}, pending every {pending_every}"
                    );
                }
            }
        }
    }
}
