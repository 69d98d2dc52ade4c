//! One shard: the owner-side operations on its slice of the log.
//!
//! Thread-safety contract: a `Shard` is owned by exactly one thread (one executor) and is `!Sync`;
//! every method takes `&mut self`. What crosses threads is a [`ReadHandle`] (any number of
//! readers) or a [`Reservation`] (one writer), both created here.
//!
//! ```no_run
//! use tessera::store::{DataDir, Key, Kind, Meta, PutRequest, Reserved, Shard, StoreConfig};
//! let cfg = StoreConfig::new("/var/lib/tessera", 1);
//! DataDir::open(&cfg)?;
//! let mut shard = Shard::open(&cfg, 0)?;
//! let id = Key { namespace: "gradle", kind: Kind::Blob, name: b"k" }.id();
//! let request = PutRequest { id, kind: Kind::Blob, body_len: 5, meta: Meta::new(), expect: None, if_absent: false };
//! if let Reserved::Reservation(mut reservation) = shard.reserve(request)? {
//!     reservation.write(b"hello")?; // may happen on another thread
//!     shard.commit(reservation)?;
//! }
//! assert_eq!(shard.lookup(&id)?.unwrap().body(), b"hello");
//! shard.close()?;
//! # Ok::<(), tessera::store::StoreError>(())
//! ```

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::marker::PhantomData;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::limits::{LOCK_WAIT_MS_MAX, RESERVATIONS_PENDING_MAX};

use super::checkpoint::Position;
use super::config::{Durability, StoreConfig};
use super::datadir::{shard_dir, DataDir};
use super::digest::ContentDigest;
use super::error::StoreError;
use super::handle::{PendingToken, ReadHandle, Reservation};
use super::index::{Entry, Index, NamespaceUsage};
use super::key::{KeyId, Kind};
use super::maintenance::Background;
use super::meta::Meta;
use super::namespaces::NamespaceTable;
use super::record::{self, Frame, FLAG_PURGE, FLAG_TOMBSTONE, NAMESPACE_UNTAGGED};
use super::recovery::{recover, RecoveryReport};
use super::ring::Ring;
use super::segment::Segment;
use super::space::{FreeSpaceProbe, ShardSpace};

/// A put, before any body byte is read.
#[derive(Clone, Debug)]
pub struct PutRequest {
    pub id: KeyId,
    pub kind: Kind,
    pub body_len: u64,
    pub meta: Meta,
    /// Required for `Kind::Cas`: the digest the body must hash to (checked while streaming).
    pub expect: Option<ContentDigest>,
    /// Keep an existing entry: `reserve` answers `Exists` for a present key, and `commit` of a
    /// key that appeared meanwhile is `StoreError::Exists` (the first writer wins).
    pub if_absent: bool,
}

/// The answer to `reserve`.
#[derive(Debug)]
pub enum Reserved {
    /// CAS key (or `if_absent` key) already stored: nothing to write.
    Exists,
    Reservation(Reservation),
}

/// Counters of one shard.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShardStats {
    pub objects: u64,
    pub bytes_used: u64,
    /// The shard's share of `max_size`.
    pub budget_bytes: u64,
    pub segments: u64,
    pub hits: u64,
    pub misses: u64,
    /// Records found damaged on first read (each was dropped from the index).
    pub corrupt: u64,
    pub evicted_segments: u64,
    pub copied_forward: u64,
    /// Reservations handed out and not yet committed, aborted or dropped.
    pub pending_reservations: u64,
    /// Puts refused with `NoSpace` (or `TooManyReservations`).
    pub no_space: u64,
    /// Checkpoints started (background or synchronous).
    pub checkpoints_written: u64,
    /// Background sync/checkpoint jobs that failed (the error was returned by `maintenance`).
    pub background_errors: u64,
    /// The budget after the filesystem's free space (`space.rs`): at most `budget_bytes`.
    pub effective_budget_bytes: u64,
    /// The shard cannot take a new segment: its filesystem is full and nothing is evictable.
    pub degraded: bool,
    /// Times the filesystem refused space (`ENOSPC`/`EDQUOT`) that the budget allowed; each
    /// was answered by evicting the oldest segment or refusing the put.
    pub filesystem_full: u64,
    /// Record bytes committed since the shard opened (headers, metadata and bodies): its rate
    /// is the write rate an operator sizes `max_size` with.
    pub bytes_written: u64,
    /// Creation time (Unix ms) of the oldest segment while the shard holds any record: no live
    /// record is older, so `now − this` is how long this shard remembers.
    pub oldest_segment_created_ms: Option<u64>,
    /// Live entries and their record bytes per namespace name; records without a known
    /// namespace (written before namespace tags) are under `unknown`.
    pub namespaces: BTreeMap<String, NamespaceUsage>,
    pub recovery: RecoveryReport,
}

#[derive(Default)]
pub(super) struct Counters {
    pub hits: u64,
    pub misses: u64,
    pub corrupt: u64,
    pub evicted_segments: u64,
    pub copied_forward: u64,
    pub no_space: u64,
    pub bytes_written: u64,
}

/// The segment receiving appends and the offset of its first free byte.
pub(super) struct Active {
    pub segment: Arc<Segment>,
    pub head: u64,
}

pub struct Shard {
    pub(super) config: StoreConfig,
    pub(super) shard_index: u32,
    pub(super) dir: PathBuf,
    /// Random per opened instance: a reservation must come back to the shard that made it.
    pub(super) tag: u64,
    pub(super) ring: Ring,
    pub(super) active: Option<Active>,
    pub(super) index: Index,
    /// Namespace name ↔ tag of this shard's records.
    pub(super) namespaces: NamespaceTable,
    /// Live reservations by position; a dead `Weak` is a reservation dropped without commit.
    pub(super) pending: BTreeMap<Position, Weak<PendingToken>>,
    pub(super) next_lsn: u64,
    pub(super) next_seq: u64,
    pub(super) counters: Counters,
    pub(super) background: Background,
    pub(super) recovery: RecoveryReport,
    pub(super) space: ShardSpace,
    _lock: File,
    _not_sync: PhantomData<Cell<()>>,
}

fn lock_shard(dir: &std::path::Path) -> Result<File, StoreError> {
    let path = dir.join("LOCK");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| StoreError::io("open lock file", &path, e))?;
    let deadline = Instant::now() + Duration::from_millis(LOCK_WAIT_MS_MAX);
    loop {
        // SAFETY: flock on our own open descriptor; no memory is involved.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(file);
        }
        if Instant::now() >= deadline {
            return Err(StoreError::Locked { path });
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn random_tag(shard_index: u32) -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one((shard_index, std::process::id()))
}

impl Shard {
    /// Opens shard `shard_index` of an existing data directory (see [`DataDir::open`]): loads the
    /// checkpoint and replays the log after it.
    pub fn open(cfg: &StoreConfig, shard_index: u32) -> Result<Shard, StoreError> {
        cfg.validate()?;
        DataDir::check_existing(cfg)?;
        if shard_index >= cfg.shards {
            return Err(StoreError::InvalidRequest {
                what: "shard index beyond the shard count",
            });
        }
        let dir = shard_dir(&cfg.dir, shard_index);
        std::fs::create_dir_all(&dir)
            .map_err(|e| StoreError::io("create shard directory", &dir, e))?;
        let lock = lock_shard(&dir)?;
        let namespaces = NamespaceTable::load(&dir)?;
        let recovered = recover(&dir, shard_index)?;
        let mut ring = Ring::default();
        for segment in recovered.segments {
            ring.push(segment);
        }
        let active = recovered.active_head.and_then(|head| {
            let segment = ring.iter().last()?.clone();
            Some(Active { segment, head })
        });
        let replayed =
            recovered.report.replayed_records > 0 || recovered.report.checkpoint_damaged.is_some();
        let mut shard = Shard {
            config: cfg.clone(),
            shard_index,
            dir,
            tag: random_tag(shard_index),
            ring,
            active,
            index: recovered.index,
            namespaces,
            pending: BTreeMap::new(),
            next_lsn: recovered.next_lsn,
            next_seq: recovered.next_seq,
            counters: Counters::default(),
            background: Background::new(replayed),
            recovery: recovered.report,
            space: ShardSpace::new(cfg.shard_budget_bytes()),
            _lock: lock,
            _not_sync: PhantomData,
        };
        // A smaller max_size than what is stored takes effect now, before a write needs room
        // (on a full disk that write would otherwise wait for the evicted blocks).
        shard.shrink_to_share()?;
        shard.refresh_space();
        Ok(shard)
    }

    /// Replaces how the shard measures its filesystem's free space (default: `statvfs`), and
    /// measures again. For tests that need a real filesystem to refuse room the shard believes
    /// it has (`ENOSPC` from `fallocate`).
    pub fn set_free_space_probe(&mut self, probe: FreeSpaceProbe) {
        self.space.probe = probe;
        self.refresh_space();
    }

    /// Finds a record. The first read after open verifies the body checksum; a damaged record is
    /// counted, dropped from the index and reported as a miss. Reads in the oldest quarter of the
    /// ring are copied forward to the head.
    pub fn lookup(&mut self, id: &KeyId) -> Result<Option<ReadHandle>, StoreError> {
        let found = self
            .index
            .get(id)
            .and_then(|entry| Some((entry, self.open_entry(id, &entry)?)));
        match found {
            Some((entry, handle)) => {
                self.counters.hits += 1;
                self.copy_forward_if_old(&entry, &handle);
                Ok(Some(handle))
            }
            None => {
                self.counters.misses += 1;
                Ok(None)
            }
        }
    }

    /// Like `lookup` (including the first-read verification) but not a use: never copies the
    /// record forward. For inspection (admin, tests) that must not change what eviction keeps.
    pub fn peek(&mut self, id: &KeyId) -> Result<Option<ReadHandle>, StoreError> {
        Ok(self
            .index
            .get(id)
            .and_then(|entry| self.open_entry(id, &entry)))
    }

    /// Opens the record `entry` points at; a damaged one is counted, dropped from the index and
    /// `None`.
    fn open_entry(&mut self, id: &KeyId, entry: &Entry) -> Option<ReadHandle> {
        let segment = self
            .ring
            .get(entry.seq)
            .expect("index entries point into the ring")
            .clone();
        match ReadHandle::open(
            segment,
            entry.offset,
            entry.record_bytes,
            id,
            entry.verified,
        ) {
            Ok(handle) => {
                if !entry.verified {
                    self.index.mark_verified(id);
                }
                Some(handle)
            }
            Err(_damage) => {
                self.counters.corrupt += 1;
                self.index.remove(id);
                None
            }
        }
    }

    /// Batch presence; each present key counts as a read for eviction (and is verified once).
    pub fn contains(&mut self, ids: &[KeyId]) -> Vec<bool> {
        ids.iter()
            .map(|id| matches!(self.lookup(id), Ok(Some(_))))
            .collect()
    }

    /// Reserves space for a put before any body byte is read. The record is untagged (counted
    /// under namespace `unknown` and not purgeable): servers use [`Shard::reserve_in`].
    pub fn reserve(&mut self, request: PutRequest) -> Result<Reserved, StoreError> {
        self.reserve_in("", request)
    }

    /// Reserves space for a put in `namespace` before any body byte is read. The record carries
    /// the namespace's tag, so the shard counts it per namespace and a purge finds it. A new
    /// namespace is recorded durably in the shard's table first (one small fsynced append).
    pub fn reserve_in(
        &mut self,
        namespace: &str,
        request: PutRequest,
    ) -> Result<Reserved, StoreError> {
        if request.body_len > self.config.max_blob_bytes {
            return Err(StoreError::TooLarge {
                len: request.body_len,
                max: self.config.max_blob_bytes,
            });
        }
        if request.kind == Kind::Cas && request.expect.is_none() {
            return Err(StoreError::InvalidRequest {
                what: "a CAS put needs its expected digest",
            });
        }
        if (request.kind == Kind::Cas || request.if_absent) && self.contains(&[request.id])[0] {
            return Ok(Reserved::Exists);
        }
        if self.pending.len() >= RESERVATIONS_PENDING_MAX {
            self.prune_abandoned();
            if self.pending.len() >= RESERVATIONS_PENDING_MAX {
                self.counters.no_space += 1;
                return Err(StoreError::TooManyReservations {
                    max: RESERVATIONS_PENDING_MAX,
                });
            }
        }
        let namespace = self.namespaces.tag_or_assign(namespace)?;
        let meta_len = request.meta.encoded().len() as u16;
        let layout = record::layout(meta_len, request.body_len).expect("lengths are bounded");
        let (segment, offset) = self.allocate(layout.record_bytes)?;
        let frame = Frame {
            kind: request.kind,
            flags: 0,
            meta_len,
            namespace,
            key_id: request.id,
            body_len: request.body_len,
            created_ms: now_ms(),
        };
        let token = Arc::new(PendingToken);
        self.pending.insert(
            Position {
                seq: segment.seq(),
                offset,
            },
            Arc::downgrade(&token),
        );
        let reservation = Reservation::begin(
            segment,
            self.tag,
            offset,
            frame,
            &request.meta,
            request.expect,
            request.if_absent,
            token,
        )?;
        Ok(Reserved::Reservation(reservation))
    }

    /// Makes a completely written reservation visible. A short body or a CAS digest mismatch
    /// aborts it instead: nothing becomes visible.
    pub fn commit(&mut self, reservation: Reservation) -> Result<(), StoreError> {
        self.take_back(&reservation)?;
        let filled = reservation.finish();
        if filled.if_absent && self.index.get(&filled.frame.key_id).is_some() {
            filled.abort();
            return Err(StoreError::Exists);
        }
        if filled.written != filled.frame.body_len {
            let (written, expected) = (filled.written, filled.frame.body_len);
            filled.abort();
            return Err(StoreError::Truncated { written, expected });
        }
        if let Some((expected, actual)) = filled.cas {
            if expected != actual {
                filled.abort();
                return Err(StoreError::DigestMismatch {
                    expected: expected.to_hex(),
                    actual: actual.to_hex(),
                });
            }
        }
        let (id, offset, layout, kind, namespace) = (
            filled.frame.key_id,
            filled.record_offset,
            filled.layout,
            filled.frame.kind,
            filled.frame.namespace,
        );
        let lsn = self.take_lsn();
        let segment = filled.commit(lsn)?;
        self.after_write(&segment, offset, layout.record_bytes)?;
        self.counters.bytes_written += layout.record_bytes;
        let entry = Entry {
            seq: segment.seq(),
            offset,
            record_bytes: layout.record_bytes,
            lsn,
            kind,
            namespace,
            verified: true,
        };
        self.index.apply_put(id, entry);
        Ok(())
    }

    /// Abandons a reservation: its space stays dead until its segment is evicted.
    pub fn abort(&mut self, reservation: Reservation) {
        if self.take_back(&reservation).is_ok() {
            reservation.finish().abort();
        }
    }

    /// Deletes a key (writes a tombstone so the delete survives a restart).
    pub fn delete(&mut self, id: &KeyId) -> Result<bool, StoreError> {
        let Some(entry) = self.index.get(id) else {
            return Ok(false);
        };
        self.write_marker(entry.kind, FLAG_TOMBSTONE, entry.namespace, *id)?;
        self.index.remove(id);
        Ok(true)
    }

    /// Writes and commits an empty record with `flags` (a tombstone or a purge record);
    /// returns its lsn.
    fn write_marker(
        &mut self,
        kind: super::key::Kind,
        flags: u16,
        namespace: u32,
        key_id: KeyId,
    ) -> Result<u64, StoreError> {
        let layout = record::layout(0, 0).expect("empty record");
        let (segment, offset) = self.allocate(layout.record_bytes)?;
        let frame = Frame {
            kind,
            flags,
            meta_len: 0,
            namespace,
            key_id,
            body_len: 0,
            created_ms: now_ms(),
        };
        let reservation = Reservation::begin(
            segment,
            self.tag,
            offset,
            frame,
            &Meta::new(),
            None,
            false,
            Arc::new(PendingToken),
        )?;
        let lsn = self.take_lsn();
        let segment = reservation.finish().commit(lsn)?;
        self.after_write(&segment, offset, layout.record_bytes)?;
        Ok(lsn)
    }

    /// Deletes every entry of `namespace` in this shard: one purge record (so the purge survives
    /// a restart; recovery applies it like a tombstone of every entry committed before it) and
    /// one pass over the index. Returns what was deleted; a namespace this shard never stored
    /// (or holds nothing of) writes nothing. Entries without a namespace tag (`unknown`) cannot
    /// be purged. O(entries) on the owner's thread, no disk reads.
    pub fn purge(&mut self, namespace: &str) -> Result<NamespaceUsage, StoreError> {
        let Some(tag) = self.namespaces.tag_of(namespace) else {
            return Ok(NamespaceUsage::default());
        };
        if !self.index.usage().contains_key(&tag) {
            return Ok(NamespaceUsage::default());
        }
        let lsn = self.write_marker(super::key::Kind::Blob, FLAG_PURGE, tag, KeyId([0; 32]))?;
        Ok(self.index.apply_purge(tag, lsn))
    }

    /// Live entries and their record bytes per namespace name (see `ShardStats::namespaces`).
    pub fn namespace_usage(&self) -> BTreeMap<String, NamespaceUsage> {
        let mut by_name: BTreeMap<String, NamespaceUsage> = BTreeMap::new();
        for (&tag, usage) in self.index.usage() {
            let name = match tag {
                NAMESPACE_UNTAGGED => super::namespaces::UNKNOWN_NAMESPACE,
                tag => self.namespaces.name_of(tag),
            };
            let slot = by_name.entry(name.to_owned()).or_default();
            slot.objects += usage.objects;
            slot.bytes += usage.bytes;
        }
        by_name
    }

    /// Every live key id with its kind: owner-side iteration (e.g. S3 listing reads each record's
    /// `key` metadata). O(entries); the caller should bound how often it runs.
    pub fn ids(&self) -> Vec<(KeyId, Kind)> {
        self.index
            .iter()
            .map(|(id, entry)| (*id, entry.kind))
            .collect()
    }

    /// Online verification of every live record, re-checking body checksums even of records
    /// verified before (bit rot after the first read). Damaged records are counted in
    /// `ShardStats::corrupt` and dropped from the index. Returns (checked, damaged).
    /// Reads every byte of the shard on the owner thread: run it rarely, at a quiet time.
    pub fn scrub(&mut self) -> (u64, u64) {
        let (mut checked, mut damaged) = (0, 0);
        for (id, _) in self.ids() {
            let Some(entry) = self.index.get(&id) else {
                continue;
            };
            let segment = self
                .ring
                .get(entry.seq)
                .expect("index entries point into the ring")
                .clone();
            checked += 1;
            if ReadHandle::open(segment, entry.offset, entry.record_bytes, &id, false).is_err() {
                damaged += 1;
                self.counters.corrupt += 1;
                self.index.remove(&id);
            }
        }
        (checked, damaged)
    }

    pub fn stats(&self) -> ShardStats {
        ShardStats {
            objects: self.index.len() as u64,
            bytes_used: self.ring.bytes_used(),
            budget_bytes: self.config.shard_budget_bytes(),
            segments: self.ring.len() as u64,
            hits: self.counters.hits,
            misses: self.counters.misses,
            corrupt: self.counters.corrupt,
            evicted_segments: self.counters.evicted_segments,
            copied_forward: self.counters.copied_forward,
            pending_reservations: self
                .pending
                .values()
                .filter(|w| w.strong_count() > 0)
                .count() as u64,
            no_space: self.counters.no_space,
            checkpoints_written: self.background.checkpoints_written,
            background_errors: self.background.errors,
            effective_budget_bytes: self.budget_bytes(),
            degraded: self.space.degraded,
            filesystem_full: self.space.refusals,
            bytes_written: self.counters.bytes_written,
            oldest_segment_created_ms: match self.index.len() {
                0 => None,
                _ => self.ring.front().map(|segment| segment.created_ms()),
            },
            namespaces: self.namespace_usage(),
            recovery: self.recovery.clone(),
        }
    }

    /// The effective budget: the share of `max_size`, or less when the filesystem holds less.
    pub(super) fn budget_bytes(&self) -> u64 {
        self.space.effective_budget
    }

    /// Checks that a reservation belongs to this shard instance and forgets it as pending.
    fn take_back(&mut self, reservation: &Reservation) -> Result<(), StoreError> {
        if reservation.shard_tag != self.tag {
            return Err(StoreError::InvalidRequest {
                what: "reservation returned to another shard",
            });
        }
        let (seq, offset) = reservation.position();
        self.pending.remove(&Position { seq, offset });
        Ok(())
    }

    fn take_lsn(&mut self) -> u64 {
        let lsn = self.next_lsn;
        self.next_lsn += 1;
        lsn
    }

    /// Bookkeeping after a record was committed: strict sync, dirty set, checkpoint due.
    pub(super) fn after_write(
        &mut self,
        segment: &Arc<Segment>,
        offset: u64,
        len: u64,
    ) -> Result<(), StoreError> {
        if self.config.durability == Durability::Strict {
            segment.sync_range(offset, len)?;
        } else {
            self.background.mark_dirty(segment);
        }
        self.background.changed = true;
        Ok(())
    }
}

// A shard may be created on one thread and moved to its owner before use; it is never shared.
const _: fn() = || {
    fn send<T: Send>() {}
    send::<Shard>();
};

pub(super) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
