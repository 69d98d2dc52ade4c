//! Space: allocating records in the active segment, creating segments, and evicting the oldest
//! segment whole when the shard's byte budget (`max_size_bytes / shards`) would be exceeded.
//!
//! Rules:
//! * Space is taken before a put starts (`reserve`); a put that cannot get space fails with
//!   `NoSpace`, reads go on.
//! * The oldest segment is dropped whole: its index entries go with it in one pass over the index
//!   (O(entries), no disk reads); the file is unlinked, and the mapping lives on in any
//!   `ReadHandle` still using it.
//! * A segment holding a live reservation is never evicted (the writer would lose its bytes), so
//!   eviction stops there and the new put gets `NoSpace`.
//! * A new segment is created only if it fits the budget, so `bytes_used <= budget` holds after
//!   every allocation (a shrunken budget is enforced at the next allocation).
//! * Reads in the oldest quarter of the ring are copied to the head (pseudo-LRU), up to
//!   `COPY_FORWARD_BYTES_MAX` per record, once the shard fills three quarters of its budget
//!   (before that nothing is about to be evicted and the copy would be wasted writes).

use std::sync::Arc;

use super::checkpoint;
use super::config::Durability;
use super::handle::{PendingToken, ReadHandle, Reservation};
use super::index::Entry;
use super::limits::{COPY_FORWARD_BYTES_MAX, PAGE_BYTES};
use super::record::{self, Frame};
use super::segment::{Segment, SegmentHeader, SEGMENT_FLAG_SINGLE, SEGMENT_HEADER_BYTES};
use super::shard::{now_ms, Active, Shard};
use super::StoreError;

impl Shard {
    /// Finds `record_bytes` of space: in the active segment, in a new normal segment, or in a
    /// single-record segment of its own when the record is larger than a normal segment can hold.
    pub(super) fn allocate(
        &mut self,
        record_bytes: u64,
    ) -> Result<(Arc<Segment>, u64), StoreError> {
        if let Some(active) = &mut self.active {
            if active.head + record_bytes <= active.segment.capacity() {
                let offset = active.head;
                active.head += record_bytes;
                return Ok((active.segment.clone(), offset));
            }
        }
        let normal_room = self.config.segment_bytes - SEGMENT_HEADER_BYTES;
        if record_bytes <= normal_room {
            let segment = self.new_segment(self.config.segment_bytes, 0)?;
            self.active = Some(Active {
                segment: segment.clone(),
                head: SEGMENT_HEADER_BYTES + record_bytes,
            });
            return Ok((segment, SEGMENT_HEADER_BYTES));
        }
        let capacity = (SEGMENT_HEADER_BYTES + record_bytes).div_ceil(PAGE_BYTES) * PAGE_BYTES;
        let segment = self.new_segment(capacity, SEGMENT_FLAG_SINGLE)?;
        // Appends after a single segment go to a fresh normal segment, so that log order (the
        // order of sequence numbers) stays the order in which space was reserved.
        self.active = None;
        Ok((segment, SEGMENT_HEADER_BYTES))
    }

    fn new_segment(&mut self, capacity: u64, flags: u16) -> Result<Arc<Segment>, StoreError> {
        self.make_room(capacity)?;
        let header = SegmentHeader {
            flags,
            shard: self.shard_index,
            seq: self.next_seq,
            capacity,
            created_ms: now_ms(),
        };
        let segment = Arc::new(Segment::create(&self.dir, header)?);
        if self.config.durability == Durability::Strict {
            // Strict commits must survive power loss, which needs the new file's name durable.
            // Relaxed mode leaves this to the background job (it syncs the directory).
            checkpoint::sync_dir(&self.dir)?;
        }
        self.next_seq += 1;
        self.ring.push(segment.clone());
        self.background.changed = true;
        Ok(segment)
    }

    /// Evicts oldest segments until `needed` more bytes fit the budget.
    fn make_room(&mut self, needed: u64) -> Result<(), StoreError> {
        let budget = self.budget_bytes();
        self.prune_abandoned();
        while self.ring.bytes_used() + needed > budget {
            let evictable = self
                .ring
                .front()
                .filter(|front| !self.has_live_reservation(front.seq()));
            if evictable.is_none() {
                self.counters.no_space += 1;
                let available = budget.saturating_sub(self.pinned_bytes());
                return Err(StoreError::NoSpace { needed, available });
            }
            self.evict_front()?;
        }
        Ok(())
    }

    /// Bytes that eviction cannot free right now: from the oldest segment with a live reservation
    /// to the newest.
    fn pinned_bytes(&self) -> u64 {
        let first_pinned = self.pending.keys().next().map_or(u64::MAX, |p| p.seq);
        self.ring
            .iter()
            .filter(|s| s.seq() >= first_pinned)
            .map(|s| s.capacity())
            .sum()
    }

    fn has_live_reservation(&self, seq: u64) -> bool {
        use super::checkpoint::Position;
        let range = Position { seq, offset: 0 }..Position {
            seq: seq + 1,
            offset: 0,
        };
        self.pending
            .range(range)
            .any(|(_, token)| token.strong_count() > 0)
    }

    /// Forgets reservations that were dropped without commit or abort.
    pub(super) fn prune_abandoned(&mut self) {
        self.pending.retain(|_, token| token.strong_count() > 0);
    }

    fn evict_front(&mut self) -> Result<(), StoreError> {
        let segment = self
            .ring
            .pop_front()
            .expect("caller checked the ring is not empty");
        let seq = segment.seq();
        self.index.drop_where(|entry| entry.seq == seq);
        if self.active.as_ref().is_some_and(|a| a.segment.seq() == seq) {
            self.active = None;
        }
        self.counters.evicted_segments += 1;
        self.background.changed = true;
        let removed = std::fs::remove_file(segment.path())
            .map_err(|e| StoreError::io("remove evicted segment", segment.path(), e));
        // The final close frees the file's blocks (tens of ms): not on the owner's thread.
        super::reaper::retire(segment);
        removed
    }

    /// Whether eviction is near: the shard uses at least three quarters of its budget. Below
    /// that, the oldest segments are not about to go and copying reads forward would only cost
    /// writes.
    fn under_pressure(&self) -> bool {
        let budget = self.budget_bytes();
        self.ring.bytes_used() >= budget - budget / 4
    }

    /// Pseudo-LRU: a record read in the oldest quarter of the ring is rewritten at the head.
    /// Failure (no space) is not an error for the read; the record just ages out.
    pub(super) fn copy_forward_if_old(&mut self, entry: &Entry, handle: &ReadHandle) {
        if entry.record_bytes > COPY_FORWARD_BYTES_MAX
            || !self.ring.in_oldest_quarter(entry.seq)
            || !self.under_pressure()
        {
            return;
        }
        let meta = handle.meta();
        let meta_len = meta.encoded().len() as u16;
        let body = handle.body();
        let Some(layout) = record::layout(meta_len, body.len() as u64) else {
            return;
        };
        let Ok((segment, offset)) = self.allocate(layout.record_bytes) else {
            return;
        };
        let frame = Frame {
            kind: handle.kind(),
            flags: 0,
            meta_len,
            key_id: handle.key_id(),
            body_len: body.len() as u64,
            created_ms: now_ms(),
        };
        let token = Arc::new(PendingToken);
        // A copy forward is an optimisation: if the disk refuses it, the original stays put.
        let Ok(mut copy) =
            Reservation::begin(segment, self.tag, offset, frame, meta, None, false, token)
        else {
            return;
        };
        if copy.write(body).is_err() {
            copy.finish().abort();
            return;
        }
        let lsn = self.next_lsn;
        self.next_lsn += 1;
        let Ok(segment) = copy.finish().commit(lsn) else {
            return;
        };
        if self
            .after_write(&segment, offset, layout.record_bytes)
            .is_err()
        {
            return;
        }
        let moved = Entry {
            seq: segment.seq(),
            offset,
            record_bytes: layout.record_bytes,
            lsn,
            kind: frame.kind,
            verified: true,
        };
        self.index.apply_put(frame.key_id, moved);
        self.counters.copied_forward += 1;
    }
}
