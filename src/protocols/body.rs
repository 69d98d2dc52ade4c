//! [`Body`]: what [`Backend::lookup_body`](super::backend::Backend::lookup_body) answers — a
//! committed record, or a record still streaming in (an object-store tier hit being written
//! into the local store) that a front-end can start sending before it is complete.
//!
//! ```text
//!  fill task (the tier layer)                         front-end (HTTP GET, ByteStream Read)
//!  chunk ─► reservation.write ─► Feed::offer ──[STREAM_CHUNKS_MAX]──► Streaming::next ─► client
//!  …                                                    │
//!  last chunk: held by the Feed until the commit ───────┘ sent after the commit succeeded
//!  commit ok ─► Feed::finish(Some(handle)) ─► a reader that fell behind reads the rest from it
//!  anything else ─► Feed::finish(None) / dropped ─► Streaming::next is Err(StreamBroken)
//! ```
//!
//! Integrity: the last chunk is released only after the store committed (and so verified) the
//! record, so a reader never sees the whole body of an object that then fails its digest or
//! length check; it sees a body that ends short with an error, which the front-end turns into a
//! closed connection (HTTP, before `Content-Length` is reached) or an error status (gRPC).
//!
//! Memory: at most [`STREAM_CHUNKS_MAX`] chunks are queued per reader, each a refcounted `Bytes`
//! that the fill also wrote into the store (no copy). The fill waits for a reader at most
//! [`STREAM_READER_WAIT_MAX`] in all: when the queue stays full longer (a slow client) or the
//! reader is gone, the feed stops queueing, and the reader, once it has sent what was queued,
//! waits for the commit and sends the rest from the committed record. A slow client therefore
//! slows the download that fills the local store by at most that much.
//!
//! Both halves are `Send` (the thread-safety contract of the `Backend` seam).

use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::store::{Meta, ReadHandle};

/// Chunks queued from a fill to its streaming reader. A chunk is what the tier's HTTP client
/// read at once (typically 8–64 KiB; a decoded `cas.v2/` blob arrives as one chunk, bounded
/// by `max_blob_size`), so a reader holds at most this many chunks, about 1–2 MiB, never the
/// whole object; a reader further behind reads from the committed record instead.
pub const STREAM_CHUNKS_MAX: usize = 32;

/// Longest time, in total over one body, a fill waits for room in its reader's queue before it
/// stops queueing for that reader. A reader that keeps up (it only needs the executor to turn
/// once: the fill and the response writer share it) never costs the fill anything; a slow
/// client delays the fill (and the requests waiting for its commit) by at most this much, then
/// reads the rest of the body from the committed record.
pub const STREAM_READER_WAIT_MAX: Duration = Duration::from_millis(250);

/// A body found by a lookup.
#[derive(Debug)]
pub enum Body {
    /// A committed record: all of it is here and verified.
    Committed(ReadHandle),
    /// A record being filled; its length and metadata are known, its bytes arrive in order.
    Streaming(Streaming),
}

impl Body {
    /// The body's length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Body::Committed(handle) => handle.body().len() as u64,
            Body::Streaming(streaming) => streaming.len(),
        }
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The record's metadata (content type, kept headers).
    pub fn meta(&self) -> &Meta {
        match self {
            Body::Committed(handle) => handle.meta(),
            Body::Streaming(streaming) => streaming.meta(),
        }
    }
}

/// The stream ended before its last byte: the download broke off, came out short or long, or
/// the record failed verification at commit. The bytes already handed out are not a valid body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamBroken;

impl std::fmt::Display for StreamBroken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the object broke off or failed verification while it streamed in")
    }
}

impl std::error::Error for StreamBroken {}

/// The reading half: a record's bytes in order as they are written, then verified.
#[derive(Debug)]
pub struct Streaming {
    len: u64,
    meta: Meta,
    /// Bytes handed out so far.
    delivered: u64,
    chunks: mpsc::Receiver<Bytes>,
    /// The committed record (`None`: not stored); taken once the queue ended short.
    outcome: Option<oneshot::Receiver<Option<ReadHandle>>>,
}

/// The writing half, held by the fill.
#[derive(Debug)]
pub struct Feed {
    len: u64,
    /// Bytes offered so far (queued, held, or skipped once the reader fell behind).
    offered: u64,
    /// `None` once the reader fell behind or went away.
    chunks: Option<mpsc::Sender<Bytes>>,
    /// Time spent waiting for room in the reader's queue (at most [`STREAM_READER_WAIT_MAX`]).
    waited: Duration,
    /// The last chunk, held until the commit.
    last: Option<Bytes>,
    outcome: oneshot::Sender<Option<ReadHandle>>,
}

/// A feed and its reader for a body of `len` bytes with `meta`.
pub fn channel(len: u64, meta: Meta) -> (Feed, Streaming) {
    let (chunks_tx, chunks_rx) = mpsc::channel(STREAM_CHUNKS_MAX);
    let (outcome_tx, outcome_rx) = oneshot::channel();
    let feed = Feed {
        len,
        offered: 0,
        chunks: Some(chunks_tx),
        waited: Duration::ZERO,
        last: None,
        outcome: outcome_tx,
    };
    let streaming = Streaming {
        len,
        meta,
        delivered: 0,
        chunks: chunks_rx,
        outcome: Some(outcome_rx),
    };
    (feed, streaming)
}

impl Feed {
    /// Offers the next bytes of the body, already written into the record. The chunk that
    /// completes the body is held until [`finish`](Self::finish). A full queue is waited on
    /// within what is left of [`STREAM_READER_WAIT_MAX`]; a reader still behind after that, or
    /// gone, ends the queueing for good.
    pub async fn offer(&mut self, bytes: Bytes) {
        self.offered += bytes.len() as u64;
        if self.offered >= self.len {
            // The last chunk (or more than the body: the store refuses that at write or commit,
            // and `finish(None)` follows).
            self.last = Some(bytes);
            return;
        }
        let Some(chunks) = &self.chunks else {
            return;
        };
        let bytes = match chunks.try_send(bytes) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.chunks = None;
                return;
            }
            Err(mpsc::error::TrySendError::Full(bytes)) => bytes,
        };
        let left = STREAM_READER_WAIT_MAX.saturating_sub(self.waited);
        let started = Instant::now();
        let sent = futures_lite::future::or(async { chunks.send(bytes).await.is_ok() }, async {
            glommio::timer::sleep(left).await;
            false
        })
        .await;
        self.waited += started.elapsed();
        if !sent {
            self.chunks = None;
        }
    }

    /// Ends the feed: `Some(handle)` once the record is committed (verified), which releases
    /// the held last chunk; `None` when it was not stored, which ends the reader in
    /// [`StreamBroken`]. Dropping a feed without finishing it is `finish(None)`.
    pub fn finish(mut self, committed: Option<ReadHandle>) {
        if let (Some(handle), Some(last), Some(chunks)) =
            (&committed, self.last.take(), self.chunks.take())
        {
            if handle.body().len() as u64 == self.len {
                // On a full queue the reader reads the last bytes from the record instead.
                let _ = chunks.try_send(last);
            }
        }
        let _ = self.outcome.send(committed);
    }
}

impl Streaming {
    /// The body's length in bytes (what the object store announced).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The record's metadata.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// The next bytes of the body; `Ok(None)` after the last byte, which comes only once the
    /// record is committed; `Err` when the body will not be complete.
    pub async fn next(&mut self) -> Result<Option<Bytes>, StreamBroken> {
        if self.delivered == self.len && self.outcome.is_none() {
            return Ok(None);
        }
        if self.delivered < self.len {
            if let Some(bytes) = self.chunks.recv().await {
                let delivered = self.delivered + bytes.len() as u64;
                if delivered > self.len {
                    return Err(StreamBroken);
                }
                self.delivered = delivered;
                if delivered == self.len {
                    // Only the feed's `finish` after a commit releases the last chunk.
                    self.outcome = None;
                }
                return Ok(Some(bytes));
            }
        }
        // The queue ended short of the body (or the body is empty): the rest, if any, comes
        // from the committed record.
        // Awaited in place, taken only once answered: a `next` dropped while waiting (the
        // request went away) loses nothing.
        let outcome = self.outcome.as_mut().ok_or(StreamBroken)?.await;
        self.outcome = None;
        let handle = match outcome {
            Ok(Some(handle)) if handle.body().len() as u64 == self.len => handle,
            _ => return Err(StreamBroken),
        };
        let start = self.delivered as usize;
        self.delivered = self.len;
        if start == handle.body().len() {
            return Ok(None);
        }
        Ok(Some(handle_bytes(handle).slice(start..)))
    }
}

/// A record's body as `Bytes` without a copy (the handle keeps the mapping alive).
pub fn handle_bytes(handle: ReadHandle) -> Bytes {
    struct Owner(ReadHandle);
    impl AsRef<[u8]> for Owner {
        fn as_ref(&self) -> &[u8] {
            self.0.body()
        }
    }
    Bytes::from_owner(Owner(handle))
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::task::Poll;

    use super::*;
    use crate::protocols::backend::{
        Backend, LocalBackend, Namespace, Protocol, Put, RequestContext,
    };
    use crate::protocols::pipeline::store_bytes;
    use crate::store::Kind;

    /// Runs `test` on a glommio executor with a handle on a stored record of `body`.
    fn with_record<F, Fut>(body: &'static [u8], test: F)
    where
        F: FnOnce(ReadHandle) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let dir = tempfile::tempdir().unwrap();
        let shard = crate::protocols::test_support::shard(dir.path());
        glommio::LocalExecutorBuilder::default()
            .spawn(move || async move {
                let backend = LocalBackend::new(shard);
                let ctx = RequestContext::new(Namespace::fixed("gradle"), Protocol::Gradle);
                let key = ctx.key(Kind::Blob, b"k");
                let put = Put {
                    key,
                    body_len: body.len() as u64,
                    meta: Meta::new(),
                    expect: None,
                    if_absent: false,
                };
                store_bytes(&backend, &ctx, &put, body).await.unwrap();
                let handle = backend.lookup(&ctx, &key).await.unwrap().unwrap();
                test(handle).await;
            })
            .unwrap()
            .join()
            .unwrap();
    }

    /// Whether `next` would wait now.
    fn waits(streaming: &mut Streaming) -> bool {
        let next = std::pin::pin!(streaming.next());
        let mut next = next;
        futures_lite::future::block_on(futures_lite::future::poll_fn(|cx| {
            Poll::Ready(next.as_mut().poll(cx).is_pending())
        }))
    }

    async fn rest(streaming: &mut Streaming) -> Result<Vec<u8>, StreamBroken> {
        let mut out = Vec::new();
        while let Some(bytes) = streaming.next().await? {
            out.extend_from_slice(&bytes);
        }
        Ok(out)
    }

    #[test]
    fn the_last_chunk_is_released_only_after_the_commit() {
        with_record(b"0123456789", |handle| async move {
            let (mut feed, mut streaming) = channel(10, Meta::new());
            assert_eq!(streaming.len(), 10);
            feed.offer(Bytes::from_static(b"0123")).await;
            feed.offer(Bytes::from_static(b"456789")).await;
            assert_eq!(
                streaming.next().await,
                Ok(Some(Bytes::from_static(b"0123")))
            );
            assert!(
                waits(&mut streaming),
                "the last chunk came before the commit"
            );
            feed.finish(Some(handle));
            assert_eq!(rest(&mut streaming).await.unwrap(), b"456789");
            assert_eq!(streaming.next().await, Ok(None));
        });
    }

    #[test]
    fn a_body_that_was_not_stored_ends_in_an_error_after_its_first_bytes() {
        with_record(b"0123456789", |_| async move {
            let (mut feed, mut streaming) = channel(10, Meta::new());
            feed.offer(Bytes::from_static(b"0123")).await;
            feed.offer(Bytes::from_static(b"456789")).await;
            feed.finish(None);
            assert_eq!(
                streaming.next().await,
                Ok(Some(Bytes::from_static(b"0123")))
            );
            assert_eq!(streaming.next().await, Err(StreamBroken));

            let (mut feed, mut streaming) = channel(10, Meta::new());
            feed.offer(Bytes::from_static(b"01")).await;
            drop(feed);
            assert_eq!(rest(&mut streaming).await, Err(StreamBroken));
        });
    }

    #[test]
    fn a_record_of_another_length_is_not_a_complete_body() {
        with_record(b"0123456789", |handle| async move {
            let (mut feed, mut streaming) = channel(11, Meta::new());
            feed.offer(Bytes::from_static(b"0123456789")).await;
            feed.finish(Some(handle));
            assert_eq!(
                streaming.next().await,
                Ok(Some(Bytes::from_static(b"0123456789")))
            );
            assert_eq!(streaming.next().await, Err(StreamBroken));
        });
    }

    #[test]
    fn a_reader_that_fell_behind_reads_the_rest_from_the_committed_record() {
        const BODY: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
        const _: () = assert!(BODY.len() > STREAM_CHUNKS_MAX + 2);
        with_record(BODY, |handle| async move {
            let (mut feed, mut streaming) = channel(BODY.len() as u64, Meta::new());
            let started = Instant::now();
            for i in 0..BODY.len() {
                feed.offer(Bytes::from_static(&BODY[i..i + 1])).await;
            }
            // The fill waited for the reader once, within its bound, then went on without it.
            let waited = started.elapsed();
            assert!(waited >= STREAM_READER_WAIT_MAX, "{waited:?}");
            assert!(waited < STREAM_READER_WAIT_MAX * 4, "{waited:?}");
            feed.finish(Some(handle));
            let mut chunks = 0;
            let mut out = Vec::new();
            while let Some(bytes) = streaming.next().await.unwrap() {
                chunks += 1;
                out.extend_from_slice(&bytes);
            }
            assert_eq!(out, BODY);
            assert_eq!(
                chunks,
                STREAM_CHUNKS_MAX + 1,
                "queued chunks, then the rest at once"
            );
        });
    }

    #[test]
    fn an_empty_body_ends_only_once_committed() {
        with_record(b"", |handle| async move {
            let (feed, mut streaming) = channel(0, Meta::new());
            assert!(waits(&mut streaming));
            assert!(
                waits(&mut streaming),
                "a dropped `next` lost the wait for the commit"
            );
            feed.finish(Some(handle));
            assert_eq!(streaming.next().await, Ok(None));
            let (feed, mut streaming) = channel(0, Meta::new());
            feed.finish(None);
            assert_eq!(streaming.next().await, Err(StreamBroken));
        });
    }
}
