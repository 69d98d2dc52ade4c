//! The values that cross threads: `ReadHandle` (a committed record) and `Reservation` (a region
//! being filled). With `segment.rs` this is the only module with `unsafe` map access; the aliasing
//! rule it relies on is written in `segment.rs`.
//!
//! Thread-safety contract: `ReadHandle` is `Clone + Send + Sync` and only reads immutable bytes;
//! `Reservation` is `Send` (not `Sync`, not `Clone`) and is the sole writer of its body range.
//! The owner thread alone turns a filled reservation into a visible record (`Filled::commit`).

use std::sync::Arc;

use super::digest::{ContentDigest, StreamingHasher};
use super::error::StoreError;
use super::key::{KeyId, Kind};
use super::meta::Meta;
use super::record::{
    self, Frame, Layout, Seal, State, FRAME_BYTES, HEADER_BYTES, OFF_HEADER_CHECKSUM,
    STATE_ABORTED, STATE_COMMITTED,
};
use super::segment::{Segment, SegmentHold};

/// A committed record, readable from any thread. Keeps its segment mapped while it lives, even
/// after the segment was evicted (the file is unlinked; the mapping stays valid until the last
/// handle drops).
#[derive(Clone, Debug)]
pub struct ReadHandle {
    inner: Arc<HandleInner>,
}

#[derive(Debug)]
struct HandleInner {
    segment: Arc<Segment>,
    body_start: u64,
    body_len: u64,
    meta: Meta,
    kind: Kind,
    key_id: KeyId,
    created_ms: u64,
}

impl ReadHandle {
    /// Opens the committed record of `record_bytes` bytes at `offset`, checking its frame, its
    /// commit area and its key id. Unless `verified` (the index says an earlier open checked
    /// them), the header checksum, the commit check and the body checksum are recomputed too;
    /// a verified record gets only the field checks, which is what keeps a 4 KiB read cheap
    /// (three BLAKE3 passes fewer).
    ///
    /// The caller (the owner, from its index) guarantees that the range is a committed record or
    /// bytes no one writes any more (a stale entry): in both cases it is immutable.
    pub(crate) fn open(
        segment: Arc<Segment>,
        offset: u64,
        record_bytes: u64,
        key_id: &KeyId,
        verified: bool,
    ) -> Result<ReadHandle, String> {
        if offset
            .checked_add(record_bytes)
            .is_none_or(|end| end > segment.capacity())
        {
            return Err(format!("entry {offset}+{record_bytes} beyond the segment"));
        }
        // SAFETY: the range is immutable (caller contract above) and in bounds (checked).
        let bytes = unsafe { segment.bytes(offset, record_bytes) };
        let (frame, layout) = if verified {
            record::decode_verified_frame(bytes)
        } else {
            record::decode_frame(bytes)
        }
        .map_err(|e| format!("{e:?}"))?;
        if layout.record_bytes != record_bytes || frame.key_id != *key_id {
            return Err("record does not match its index entry".into());
        }
        if frame.flags & (record::FLAG_TOMBSTONE | record::FLAG_PURGE) != 0 {
            return Err("index entry points at a tombstone".into());
        }
        let state = if verified {
            record::decode_verified_state(bytes)?
        } else {
            record::decode_state(bytes)?
        };
        let seal = match state {
            State::Committed(seal) => seal,
            other => return Err(format!("record is {other:?}, not committed")),
        };
        let body = &bytes[layout.body_offset as usize..][..frame.body_len as usize];
        if !verified && record::body_checksum(body) != seal.body_checksum {
            return Err("body checksum mismatch".into());
        }
        let meta_end = (layout.meta_offset + u64::from(frame.meta_len)) as usize;
        let meta = Meta::decode(&bytes[layout.meta_offset as usize..meta_end])
            .map_err(|e| e.to_string())?;
        let inner = HandleInner {
            body_start: offset + layout.body_offset,
            body_len: frame.body_len,
            segment,
            meta,
            kind: frame.kind,
            key_id: frame.key_id,
            created_ms: frame.created_ms,
        };
        Ok(ReadHandle {
            inner: Arc::new(inner),
        })
    }

    pub fn body(&self) -> &[u8] {
        let inner = &*self.inner;
        // SAFETY: the body of a committed record is immutable (aliasing rule, state 2) and in
        // bounds (validated in `open`); `inner.segment` keeps the mapping alive as long as `self`.
        unsafe { inner.segment.bytes(inner.body_start, inner.body_len) }
    }

    pub fn meta(&self) -> &Meta {
        &self.inner.meta
    }

    pub fn kind(&self) -> Kind {
        self.inner.kind
    }

    pub fn key_id(&self) -> KeyId {
        self.inner.key_id
    }

    /// When the record was written (Unix time, milliseconds; a copy forward keeps the time of
    /// the copy).
    pub fn created_ms(&self) -> u64 {
        self.inner.created_ms
    }

    /// Sequence number of the segment holding the record (diagnostics and tests).
    pub fn segment_seq(&self) -> u64 {
        self.inner.segment.seq()
    }

    /// Keeps the record's segment from eviction while the hold lives (see [`SegmentHold`]).
    /// A segment evicted before this call stays evicted: the hold then only keeps the map.
    pub fn hold(&self) -> SegmentHold {
        SegmentHold::new(self.inner.segment.clone())
    }
}

/// A reservation's record before its commit: the fields of its [`ReadHandle`], known from the
/// reservation itself (see [`Reservation::unpublished`]).
#[derive(Debug)]
pub struct Unpublished {
    segment: Arc<Segment>,
    body_start: u64,
    body_len: u64,
    kind: Kind,
    key_id: KeyId,
    created_ms: u64,
}

impl Unpublished {
    /// The handle of the committed record, with `meta` (the metadata the reservation was made
    /// with).
    ///
    /// # Safety
    ///
    /// The reservation this came from must have been committed successfully (its commit
    /// returned `Ok`): only then is its body immutable, which [`ReadHandle::body`] relies on.
    pub unsafe fn committed(self, meta: Meta) -> ReadHandle {
        ReadHandle {
            inner: Arc::new(HandleInner {
                segment: self.segment,
                body_start: self.body_start,
                body_len: self.body_len,
                meta,
                kind: self.kind,
                key_id: self.key_id,
                created_ms: self.created_ms,
            }),
        }
    }
}

// The thread-safety contract above, checked by the compiler.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<ReadHandle>();
    send::<Reservation>();
};

/// Marker whose strong count tells the owner that a reservation is still alive; a reservation
/// dropped without commit or abort releases it, and the owner forgets the region.
#[derive(Debug)]
pub(crate) struct PendingToken;

/// A reserved, pending record whose body any one thread may fill sequentially.
///
/// Dropping a reservation that was neither committed nor aborted aborts it at once: the
/// dropping thread marks the record aborted (it is still the record's only writer) and the
/// owner forgets the region when it next looks (the pending token is gone).
///
/// INVARIANT: this value is the only writer of `[body_start, body_start + body_len)` of
/// `segment`; the owner wrote the frame and metadata before creating it and touches the header
/// again only after the reservation comes back (`finish`).
#[derive(Debug)]
pub struct Reservation {
    segment: Arc<Segment>,
    pub(crate) shard_tag: u64,
    record_offset: u64,
    layout: Layout,
    frame: Frame,
    header_checksum: u64,
    written: u64,
    checksum: Box<blake3::Hasher>,
    /// Expected CAS digest and its hasher (boxed: a SHA-256 state is ~100 bytes).
    cas: Option<Box<(ContentDigest, StreamingHasher)>>,
    /// Keep an existing entry (see `PutRequest::if_absent`); checked again at commit.
    if_absent: bool,
    /// Still this value's to seal: cleared when the owner takes it back (`finish`).
    armed: bool,
    _token: Arc<PendingToken>,
}

impl Reservation {
    /// Owner side: writes the pending frame and metadata at `offset` and hands out the body.
    ///
    /// The caller (the owner) must own `[offset, offset + layout.record_bytes)`: freshly allocated
    /// space that nobody reads or writes.
    // Every argument is a distinct part of the record being begun; a struct would only rename them.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn begin(
        segment: Arc<Segment>,
        shard_tag: u64,
        offset: u64,
        frame: Frame,
        meta: &Meta,
        expect: Option<ContentDigest>,
        if_absent: bool,
        token: Arc<PendingToken>,
    ) -> Result<Reservation, StoreError> {
        let layout = record::layout(frame.meta_len, frame.body_len).expect("validated lengths");
        let mut header = [0u8; HEADER_BYTES];
        record::encode_frame(&frame, meta.encoded(), &mut header);
        // SAFETY: the owner owns the freshly allocated range (caller contract); the meta is
        // written first so a frame never appears without the bytes its checksum covers.
        unsafe {
            segment.write(offset + layout.meta_offset, meta.encoded())?;
            segment.write(offset, &header)?;
        }
        let cas = expect.map(|digest| Box::new((digest, StreamingHasher::new(digest.function))));
        Ok(Reservation {
            segment,
            shard_tag,
            record_offset: offset,
            layout,
            frame,
            header_checksum: record::u64_at(&header, OFF_HEADER_CHECKSUM),
            written: 0,
            checksum: Box::new(blake3::Hasher::new()),
            cas,
            if_absent,
            armed: true,
            _token: token,
        })
    }

    pub fn key_id(&self) -> KeyId {
        self.frame.key_id
    }

    pub fn body_len(&self) -> u64 {
        self.frame.body_len
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    /// Keeps the segment this record is written into from eviction while the hold lives, from
    /// now (the reservation already keeps it) through commit and after (see [`SegmentHold`]).
    pub fn hold(&self) -> SegmentHold {
        SegmentHold::new(self.segment.clone())
    }

    /// The record this reservation becomes, to open once it is committed without reading its
    /// frame back from the map (the tier's upload of a write it just acknowledged).
    pub fn unpublished(&self) -> Unpublished {
        Unpublished {
            segment: self.segment.clone(),
            body_start: self.record_offset + self.layout.body_offset,
            body_len: self.frame.body_len,
            kind: self.frame.kind,
            key_id: self.frame.key_id,
            created_ms: self.frame.created_ms,
        }
    }

    pub(crate) fn position(&self) -> (u64, u64) {
        (self.segment.seq(), self.record_offset)
    }

    /// Appends body bytes, hashing them on the calling thread.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        let end = self.written.checked_add(bytes.len() as u64);
        if end.is_none_or(|end| end > self.frame.body_len) {
            return Err(StoreError::Overflow {
                len: self.written.saturating_add(bytes.len() as u64),
                reserved: self.frame.body_len,
            });
        }
        let at = self.record_offset + self.layout.body_offset + self.written;
        // SAFETY: `[at, at + len)` lies inside this reservation's body range (checked above),
        // which this value alone may write (INVARIANT).
        unsafe { self.segment.write(at, bytes) }?;
        self.checksum.update(bytes);
        if let Some(cas) = &mut self.cas {
            cas.1.update(bytes);
        }
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Owner side: takes the reservation back and finalises the hashes.
    pub(crate) fn finish(mut self) -> Filled {
        self.armed = false;
        let body_checksum = u64::from_le_bytes(
            self.checksum.finalize().as_bytes()[..8]
                .try_into()
                .expect("8"),
        );
        let cas = self.cas.take().map(|cas| {
            let (expected, hasher) = *cas;
            (expected, hasher.finalize())
        });
        Filled {
            segment: self.segment.clone(),
            record_offset: self.record_offset,
            layout: self.layout,
            frame: self.frame,
            header_checksum: self.header_checksum,
            body_checksum,
            written: self.written,
            cas,
            if_absent: self.if_absent,
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        // Neither committed nor aborted (an upload whose client went away, a task that was
        // cancelled): this value is still the record's only writer (INVARIANT), so it seals the
        // record aborted itself. The token drops after this, which tells the owner.
        Filled {
            segment: self.segment.clone(),
            record_offset: self.record_offset,
            layout: self.layout,
            frame: self.frame,
            header_checksum: self.header_checksum,
            body_checksum: 0,
            written: self.written,
            cas: None,
            if_absent: self.if_absent,
        }
        .abort();
    }
}

/// A reservation back in the owner's hands: no other thread can write it any more.
pub(crate) struct Filled {
    pub segment: Arc<Segment>,
    pub record_offset: u64,
    pub layout: Layout,
    pub frame: Frame,
    header_checksum: u64,
    body_checksum: u64,
    pub written: u64,
    /// (expected, actual) CAS digests.
    pub cas: Option<(ContentDigest, ContentDigest)>,
    pub if_absent: bool,
}

impl Filled {
    fn seal(&self, lsn: u64, state: u32) -> Result<(), StoreError> {
        let seal = Seal {
            body_checksum: self.body_checksum,
            lsn,
        };
        let area = record::encode_commit(self.header_checksum, seal, state);
        let state_at = area.len() - 4;
        let base = self.record_offset + FRAME_BYTES as u64;
        // SAFETY: the owner owns the header until commit or abort (Reservation INVARIANT; the
        // reservation was consumed). The state word is written last, after checksum and lsn.
        unsafe {
            self.segment.write(base, &area[..state_at])?;
            self.segment
                .write(base + state_at as u64, &area[state_at..])
        }
    }

    /// Makes the record final and committed (still invisible until the owner indexes it).
    pub fn commit(self, lsn: u64) -> Result<Arc<Segment>, StoreError> {
        self.seal(lsn, STATE_COMMITTED)?;
        Ok(self.segment)
    }

    /// Marks the record aborted; recovery steps over it. If even that write fails the record
    /// stays pending on disk, which recovery also steps over, so the error is only logged.
    pub fn abort(self) {
        if let Err(error) = self.seal(0, STATE_ABORTED) {
            tracing::warn!(%error, "could not mark an aborted record; it stays pending");
        }
    }
}
