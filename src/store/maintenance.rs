//! Background durability: periodic `fdatasync` of written segments and index checkpoints.
//!
//! The owner never blocks on the disk here: `maintenance()` encodes the checkpoint in memory
//! (a copy of the index, ~72 bytes per object) and hands it with the dirty segments to one
//! background std thread, which syncs the segments *first* and then replaces the checkpoint
//! atomically — so a checkpoint never describes records that are not yet durable. At most one
//! job runs at a time; `close()` does the same work synchronously.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use super::checkpoint::{self, CheckpointHeader, Position};
use super::error::StoreError;
use super::segment::{Segment, SEGMENT_HEADER_BYTES};
use super::shard::Shard;

pub(super) struct Background {
    job: Option<JoinHandle<Result<(), StoreError>>>,
    /// Segments written since their last sync, by sequence number.
    dirty: BTreeMap<u64, Arc<Segment>>,
    last_sync: Instant,
    last_checkpoint: Instant,
    /// The index or the ring changed since the last checkpoint was encoded.
    pub changed: bool,
    pub checkpoints_written: u64,
    pub errors: u64,
}

impl Background {
    pub fn new(changed: bool) -> Background {
        Background {
            job: None,
            dirty: BTreeMap::new(),
            last_sync: Instant::now(),
            last_checkpoint: Instant::now(),
            changed,
            checkpoints_written: 0,
            errors: 0,
        }
    }

    pub fn mark_dirty(&mut self, segment: &Arc<Segment>) {
        self.dirty
            .entry(segment.seq())
            .or_insert_with(|| segment.clone());
    }

    /// Forgets an evicted segment: it needs no sync any more, and holding it would keep its
    /// blocks allocated.
    pub fn forget(&mut self, seq: u64) {
        self.dirty.remove(&seq);
    }

    /// Waits for the running job, if any, and returns its result.
    fn wait(&mut self) -> Result<(), StoreError> {
        match self.job.take() {
            Some(job) => job
                .join()
                .unwrap_or_else(|_| Err(StoreError::corrupt("checkpoint thread panicked"))),
            None => Ok(()),
        }
    }
}

fn run_job(
    dir: std::path::PathBuf,
    segments: Vec<Arc<Segment>>,
    checkpoint: Option<Vec<u8>>,
) -> Result<(), StoreError> {
    for segment in &segments {
        segment.sync_data()?;
    }
    // New segment files and unlinked ones: make the directory entries durable too.
    checkpoint::sync_dir(&dir)?;
    if let Some(bytes) = checkpoint {
        checkpoint::write_atomic(&dir, &bytes)?;
    }
    Ok(())
}

impl Shard {
    /// Call periodically (e.g. every 100 ms) from the owner thread: measures the filesystem's
    /// free space (the effective budget, `space.rs`), starts a background sync when
    /// `sync_interval` has passed and a checkpoint when `checkpoint_interval` has passed and
    /// something changed. Cheap when nothing is due (one `statvfs`). Reports the error of a
    /// finished job; a checkpoint refused by a full filesystem is `NoSpace`.
    pub fn maintenance(&mut self) -> Result<(), StoreError> {
        self.refresh_space();
        if self
            .background
            .job
            .as_ref()
            .is_some_and(|job| job.is_finished())
        {
            if let Err(error) = self.background.wait() {
                self.background.errors += 1;
                return Err(error);
            }
        }
        if self.background.job.is_some() {
            return Ok(());
        }
        let sync_due = !self.background.dirty.is_empty()
            && self.background.last_sync.elapsed() >= self.config.sync_interval;
        let checkpoint_due = self.background.changed
            && self.background.last_checkpoint.elapsed() >= self.config.checkpoint_interval;
        if !sync_due && !checkpoint_due {
            return Ok(());
        }
        let segments = self.take_dirty();
        let checkpoint = checkpoint_due.then(|| self.encode_checkpoint());
        let dir = self.dir.clone();
        let job = std::thread::Builder::new()
            .name(format!("tessera-ckpt-{}", self.shard_index))
            .spawn(move || run_job(dir, segments, checkpoint))
            .map_err(|e| StoreError::io("spawn checkpoint thread", &self.dir, e))?;
        self.background.job = Some(job);
        Ok(())
    }

    /// Synchronous sync + checkpoint (drain, clean close, tests).
    pub fn checkpoint_now(&mut self) -> Result<(), StoreError> {
        // A failed earlier job is superseded by this complete sync + checkpoint; it is counted.
        if self.background.wait().is_err() {
            self.background.errors += 1;
        }
        let segments = self.take_dirty();
        let checkpoint = self.encode_checkpoint();
        run_job(self.dir.clone(), segments, Some(checkpoint))
    }

    /// Clean close: waits for background work, syncs, writes a final checkpoint.
    pub fn close(mut self) -> Result<(), StoreError> {
        self.checkpoint_now()
    }

    fn take_dirty(&mut self) -> Vec<Arc<Segment>> {
        self.background.last_sync = Instant::now();
        let dirty = std::mem::take(&mut self.background.dirty);
        dirty
            .into_values()
            .filter(|s| self.ring.get(s.seq()).is_some())
            .collect()
    }

    /// Where replay must start for the current index: the oldest live reservation (it may still
    /// commit) or else the head of the log.
    fn replay_position(&mut self) -> Position {
        self.prune_abandoned();
        let head = match &self.active {
            Some(active) => Position {
                seq: active.segment.seq(),
                offset: active.head,
            },
            None => Position {
                seq: self.next_seq,
                offset: SEGMENT_HEADER_BYTES,
            },
        };
        self.pending
            .keys()
            .next()
            .map_or(head, |&oldest| oldest.min(head))
    }

    fn encode_checkpoint(&mut self) -> Vec<u8> {
        let header = CheckpointHeader {
            version: checkpoint::CHECKPOINT_VERSION,
            shard: self.shard_index,
            entry_count: self.index.len() as u64,
            replay_from: self.replay_position(),
            next_lsn: self.next_lsn,
            next_seq: self.next_seq,
            hash_seeds: self.index.seeds(),
        };
        self.background.changed = false;
        self.background.last_checkpoint = Instant::now();
        self.background.checkpoints_written += 1;
        checkpoint::encode(header, &self.index)
    }
}

impl Drop for Shard {
    /// Dropping without `close` is a crash as far as the files go (nothing is synced or
    /// checkpointed); only a running background job is waited for, so no thread outlives the
    /// shard and races with a reopen.
    fn drop(&mut self) {
        let _ = self.background.wait();
    }
}
