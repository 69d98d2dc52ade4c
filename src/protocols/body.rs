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
//! that the fill also wrote into the store (no copy). The fill never waits for a reader: when the
//! queue is full (a slow client) or the reader is gone, the feed stops queueing, and the reader,
//! once it has sent what was queued, waits for the commit and sends the rest from the committed
//! record. A slow client therefore never slows the download that fills the local store.
//!
//! Both halves are `Send` (the thread-safety contract of the `Backend` seam).

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::store::{Meta, ReadHandle};

/// Chunks queued from a fill to its streaming reader. A chunk is what the tier's HTTP client
/// read at once (tens of KiB, at most a few MiB for an in-memory `cas.v2/` blob), so a reader
/// holds at most this many chunks of memory, never the whole object; a reader further behind
/// reads from the committed record instead (see the module docs).
pub const STREAM_CHUNKS_MAX: usize = 16;

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
    /// completes the body is held until [`finish`](Self::finish); a full queue (a slow reader)
    /// or a gone reader ends the queueing for good. Never waits.
    pub fn offer(&mut self, bytes: Bytes) {
        self.offered += bytes.len() as u64;
        if self.offered >= self.len {
            // The last chunk (or more than the body: the store refuses that at write or commit,
            // and `finish(None)` follows).
            self.last = Some(bytes);
            return;
        }
        if let Some(chunks) = &self.chunks {
            if chunks.try_send(bytes).is_err() {
                self.chunks = None;
            }
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
        let outcome = self.outcome.take().ok_or(StreamBroken)?;
        let handle = match outcome.await {
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
