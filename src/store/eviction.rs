//! Space: allocating records in the active segment, creating segments, and evicting the oldest
//! segment whole when the shard's effective budget would be exceeded: its share of `max_size`,
//! or less when its filesystem holds less (`space.rs`).
//!
//! Rules:
//! * Space is taken before a put starts (`reserve`); a put that cannot get space fails with
//!   `NoSpace`, reads go on. Nothing is evicted for a put that evicting everything evictable
//!   would not make room for.
//! * The filesystem is measured before each new segment. If it still refuses the segment
//!   (`ENOSPC`/`EDQUOT`: someone else took the space, or evicted blocks are not free yet), the
//!   shard takes what it holds as its budget and goes round again: evict the oldest segment, try
//!   again, or refuse with `NoSpace` once nothing is evictable. A segment whose creation failed
//!   leaves no file behind.
//! * While the filesystem bounds the budget, an evicted segment nobody reads any more is closed
//!   on the owner's thread, so its blocks are free before the new segment asks for them
//!   (otherwise the reaper thread closes it, off the request path).
//! * The oldest segment is dropped whole: its index entries go with it in one pass over the index
//!   (O(entries), no disk reads); the file is unlinked, and the mapping lives on in any
//!   `ReadHandle` still using it.
//! * A segment holding a live reservation is never evicted (the writer would lose its bytes), nor
//!   one with a live [`SegmentHold`](super::segment::SegmentHold) (the object-store tier still
//!   owes the bucket a record in it), so eviction stops there and the new put gets `NoSpace`
//!   (507): new writes are refused rather than an owed upload dropped.
//! * A new segment is created only if it fits the budget, so `bytes_used <= budget` holds after
//!   every allocation. A `max_size` below what is stored is enforced when the shard opens; a
//!   filesystem that shrank under the cache, at the next allocation.
//! * Reads in the oldest quarter of the ring are copied to the head (pseudo-LRU), up to
//!   `COPY_FORWARD_BYTES_MAX` per record, once the shard fills three quarters of its budget
//!   (before that nothing is about to be evicted and the copy would be wasted writes), and not
//!   while it holds more than its budget (reads must not be what shrinks it).

use std::sync::Arc;

use super::checkpoint;
use super::config::Durability;
use super::handle::{PendingToken, ReadHandle, Reservation};
use super::index::Entry;
use super::limits::{COPY_FORWARD_BYTES_MAX, PAGE_BYTES};
use super::record::{self, Frame};
use super::segment::{Segment, SegmentHeader, SEGMENT_FLAG_SINGLE, SEGMENT_HEADER_BYTES};
use super::shard::{now_ms, Active, Shard};
use super::space;
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
        self.refresh_space();
        loop {
            self.make_room(capacity)?;
            let header = SegmentHeader {
                flags,
                shard: self.shard_index,
                seq: self.next_seq,
                capacity,
                created_ms: now_ms(),
            };
            let segment = match Segment::create(&self.dir, header) {
                Ok(segment) => Arc::new(segment),
                Err(StoreError::NoSpace { .. }) => {
                    // The filesystem refused what the budget allowed: what the shard holds now is
                    // all it may count on. The next round evicts at least one segment or refuses,
                    // so this loop ends.
                    self.space.refusals += 1;
                    let held = self.ring.bytes_used();
                    self.space.effective_budget = self.space.effective_budget.min(held);
                    continue;
                }
                Err(other) => return Err(other),
            };
            if self.config.durability == Durability::Strict {
                // Strict commits must survive power loss, which needs the new file's name durable.
                // Relaxed mode leaves this to the background job (it syncs the directory).
                checkpoint::sync_dir(&self.dir)?;
            }
            self.next_seq += 1;
            self.ring.push(segment.clone());
            self.background.changed = true;
            self.set_degraded(false);
            return Ok(segment);
        }
    }

    /// Evicts oldest segments until `needed` more bytes fit the effective budget; evicts nothing
    /// and refuses when even evicting every evictable segment would not make room.
    fn make_room(&mut self, needed: u64) -> Result<(), StoreError> {
        let budget = self.budget_bytes();
        self.prune_abandoned();
        let pinned = self.pinned_bytes();
        if pinned.saturating_add(needed) > budget {
            self.counters.no_space += 1;
            if self.filesystem_bound() && pinned + self.config.segment_bytes > budget {
                self.set_degraded(true);
            }
            return Err(StoreError::NoSpace {
                needed,
                available: budget.saturating_sub(pinned),
            });
        }
        let free_now = self.filesystem_bound();
        while self.ring.bytes_used() + needed > budget {
            // Everything before the first pinned segment is evictable (checked above), so the
            // front is too; a reservation dropped meanwhile only unpins more. Holds are taken
            // on other threads (from a read handle), so one may have appeared on the front
            // since the check: then this put is refused like any put that finds no room.
            assert!(
                self.ring
                    .front()
                    .is_some_and(|front| !self.has_live_reservation(front.seq())),
                "eviction reached a pinned segment that the room check counted as evictable"
            );
            if self.ring.front().is_some_and(|front| front.is_held()) {
                self.counters.no_space += 1;
                return Err(StoreError::NoSpace {
                    needed,
                    available: budget.saturating_sub(self.ring.bytes_used()),
                });
            }
            self.evict_front(free_now)?;
        }
        Ok(())
    }

    /// Whether the filesystem, not `max_size`, sets the budget now.
    fn filesystem_bound(&self) -> bool {
        self.space.effective_budget < self.config.shard_budget_bytes()
    }

    /// Measures the filesystem again: the effective budget, and whether the shard is degraded
    /// (it could not take a new normal segment even after evicting all it may). Cheap (one
    /// `statvfs`); called before each new segment and on every maintenance tick. A failed
    /// measurement keeps the last budget.
    pub(super) fn refresh_space(&mut self) {
        let share = self.config.shard_budget_bytes();
        match (self.space.probe)(&self.dir) {
            Ok(available) => {
                let used = self.ring.bytes_used();
                self.space.effective_budget =
                    space::effective_budget(share, used, available, self.config.shards);
            }
            Err(error) => {
                tracing::debug!(shard = self.shard_index, %error, "cannot measure free space");
            }
        }
        self.prune_abandoned();
        let room_for_a_segment =
            self.pinned_bytes() + self.config.segment_bytes <= self.space.effective_budget;
        self.set_degraded(self.filesystem_bound() && !room_for_a_segment);
    }

    /// Records whether the shard is degraded (no room for a new segment on its filesystem, even
    /// after evicting all it may), logging each change once.
    fn set_degraded(&mut self, degraded: bool) {
        if degraded == self.space.degraded {
            return;
        }
        self.space.degraded = degraded;
        if degraded {
            tracing::warn!(
                shard = self.shard_index,
                effective_budget_bytes = self.space.effective_budget,
                "the filesystem is full: this shard cannot take a new segment (puts that need \
                 one are refused with no-space; reads go on)"
            );
        } else {
            tracing::info!(shard = self.shard_index, "the filesystem has room again");
        }
    }

    /// At open: evicts oldest segments while the shard holds more than its share of
    /// `max_size` (the setting was lowered), so that the first write finds room.
    pub(super) fn shrink_to_share(&mut self) -> Result<(), StoreError> {
        let share = self.config.shard_budget_bytes();
        let (before, mut evicted) = (self.ring.bytes_used(), 0u64);
        while self.ring.bytes_used() > share && !self.ring.is_empty() {
            self.evict_front(true)?;
            evicted += 1;
        }
        if evicted > 0 {
            tracing::info!(
                shard = self.shard_index,
                stored_bytes = before,
                budget_bytes = share,
                evicted_segments = evicted,
                "more stored than this shard's share of max_size: evicted the oldest segments"
            );
        }
        Ok(())
    }

    /// Bytes that eviction cannot free right now: from the oldest segment with a live reservation
    /// or a live hold to the newest.
    fn pinned_bytes(&self) -> u64 {
        let first_reserved = self.pending.keys().next().map_or(u64::MAX, |p| p.seq);
        let first_held = self
            .ring
            .iter()
            .find(|s| s.is_held())
            .map_or(u64::MAX, |s| s.seq());
        let first_pinned = first_reserved.min(first_held);
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

    /// Drops the oldest segment. With `free_now`, a segment nobody else holds is closed here, so
    /// its blocks are free when this returns; otherwise the reaper thread closes it.
    fn evict_front(&mut self, free_now: bool) -> Result<(), StoreError> {
        let segment = self
            .ring
            .pop_front()
            .expect("caller checked the ring is not empty");
        let seq = segment.seq();
        self.index.drop_where(|entry| entry.seq == seq);
        if self.active.as_ref().is_some_and(|a| a.segment.seq() == seq) {
            self.active = None;
        }
        self.background.forget(seq);
        self.counters.evicted_segments += 1;
        self.background.changed = true;
        let removed = std::fs::remove_file(segment.path())
            .map_err(|e| StoreError::io("remove evicted segment", segment.path(), e));
        if free_now {
            match Arc::try_unwrap(segment) {
                Ok(last) => drop(last),
                Err(shared) => super::reaper::retire(shared),
            }
        } else {
            // The final close frees the file's blocks (tens of ms): not on the owner's thread.
            super::reaper::retire(segment);
        }
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
        // Over its budget (the filesystem shrank under the shard), a copy would first evict
        // down to the budget: shrinking is left to writes, so that reads alone never empty
        // the cache.
        if entry.record_bytes > COPY_FORWARD_BYTES_MAX
            || !self.ring.in_oldest_quarter(entry.seq)
            || !self.under_pressure()
            || self.ring.bytes_used() > self.budget_bytes()
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
            namespace: entry.namespace,
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
            namespace: frame.namespace,
            verified: true,
        };
        self.index.apply_put(frame.key_id, moved);
        self.counters.copied_forward += 1;
    }
}
