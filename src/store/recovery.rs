//! Opening a shard after a clean stop or a crash: load the checkpoint, then replay only the log
//! written after the position it covers, verifying every replayed record.
//!
//! Procedure (also in FORMAT.md, "Recovery"):
//! 1. Remove a leftover `index.ckpt.tmp`; list `seg-*.log` in sequence order and validate each
//!    segment header (a damaged segment is skipped and counted; the newest may be re-extended).
//! 2. Load `index.ckpt` if its checksums hold; otherwise start from an empty index and replay all.
//! 3. Scan every segment at or after the checkpoint's replay position. Committed records whose
//!    body checksum holds are applied in commit order (lsn); pending and aborted records are
//!    stepped over using their frame's length; the scan of a segment stops at the first damaged
//!    frame or at zeros.
//! 4. The newest normal segment becomes the active one; its head is the end of the last
//!    committed or aborted record, and everything after it is zeroed so no stale bytes can ever
//!    be read as a record behind new appends. Exception: if the scan stopped at a damaged frame
//!    that has valid frames after it, the damage is not a torn tail; the segment is sealed
//!    (never appended to or zeroed) and appends go to a new segment. Pending single-record
//!    segments are deleted.
//! 5. Index entries pointing into missing segments or past the head are dropped.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use super::checkpoint::{self, Position};
use super::error::StoreError;
use super::index::{Entry, Index};
use super::record::{State, FLAG_PURGE, FLAG_TOMBSTONE};
use super::scan::{body_matches, next_valid_frame, Scanner, Step};
use super::segment::{parse_segment_file_name, segment_file_name, Segment};

/// What recovery found, for stats and logs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub checkpoint_loaded: bool,
    /// Why the checkpoint was ignored, if it was damaged.
    pub checkpoint_damaged: Option<String>,
    pub replayed_records: u64,
    pub corrupt_records: u64,
    pub damaged_segments: u64,
    /// Segments whose scan stopped at a damaged or torn frame.
    pub torn_segments: u64,
    pub reclaimed_segments: u64,
}

pub(super) struct Recovered {
    pub segments: Vec<Arc<Segment>>,
    /// Head of the newest segment when appends continue there.
    pub active_head: Option<u64>,
    pub index: Index,
    pub next_lsn: u64,
    pub next_seq: u64,
    pub report: RecoveryReport,
}

/// Sequence numbers of the segment files in `dir`, ascending.
pub fn list_segments(dir: &Path) -> Result<Vec<u64>, StoreError> {
    let entries = fs::read_dir(dir).map_err(|e| StoreError::io("list shard directory", dir, e))?;
    let mut seqs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io("list shard directory", dir, e))?;
        if let Some(seq) = entry.file_name().to_str().and_then(parse_segment_file_name) {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    Ok(seqs)
}

struct SegmentOutcome {
    head: u64,
    committed_any: bool,
    max_lsn: u64,
    /// A damaged frame with valid records after it: the segment must not be appended to (that
    /// would overwrite them); it is sealed instead and its checkpointed entries stay reachable.
    damaged_mid_segment: bool,
}

fn replay_segment(
    segment: &mut Segment,
    start: u64,
    index: &mut Index,
    report: &mut RecoveryReport,
) -> SegmentOutcome {
    let seq = segment.seq();
    let bytes = segment.bytes_exclusive();
    let mut outcome = SegmentOutcome {
        head: start,
        committed_any: false,
        max_lsn: 0,
        damaged_mid_segment: false,
    };
    for step in Scanner::new(bytes, start) {
        let (offset, frame, layout, state) = match step {
            Step::Record {
                offset,
                frame,
                layout,
                state,
            } => (offset, frame, layout, state),
            Step::Damaged { offset, .. } => {
                report.torn_segments += 1;
                outcome.damaged_mid_segment = next_valid_frame(bytes, offset).is_some();
                break;
            }
            Step::End { .. } => break,
        };
        let end = offset + layout.record_bytes;
        // The head only moves past records that are final and intact: a pending, torn or
        // damaged record at the tail is wiped and its space reused.
        match state {
            Ok(State::Pending) => continue,
            Ok(State::Aborted) => {}
            Err(_) => {
                report.corrupt_records += 1;
                continue;
            }
            Ok(State::Committed(seal)) => {
                outcome.max_lsn = outcome.max_lsn.max(seal.lsn);
                report.replayed_records += 1;
                if frame.flags & FLAG_TOMBSTONE != 0 {
                    index.apply_tombstone(&frame.key_id, seal.lsn);
                } else if frame.flags & FLAG_PURGE != 0 {
                    index.apply_purge(frame.namespace, seal.lsn);
                } else if body_matches(bytes, offset, &frame, &layout, seal.body_checksum) {
                    let entry = Entry {
                        seq,
                        offset,
                        record_bytes: layout.record_bytes,
                        lsn: seal.lsn,
                        kind: frame.kind,
                        namespace: frame.namespace,
                        verified: true,
                    };
                    index.apply_put(frame.key_id, entry);
                    outcome.committed_any = true;
                } else {
                    report.corrupt_records += 1;
                    continue;
                }
            }
        }
        outcome.head = end;
    }
    outcome.head = outcome.head.max(super::segment::SEGMENT_HEADER_BYTES);
    outcome
}

/// Opens every segment whose header is valid; also returns the highest sequence number present on
/// disk, damaged files included, so that a new segment never collides with an existing file.
fn open_segments(
    dir: &Path,
    shard: u32,
    report: &mut RecoveryReport,
) -> Result<(Vec<Segment>, u64), StoreError> {
    let seqs = list_segments(dir)?;
    let highest = seqs.last().copied().unwrap_or(0);
    let mut segments = Vec::with_capacity(seqs.len());
    for (i, &seq) in seqs.iter().enumerate() {
        let newest = i + 1 == seqs.len();
        let path = dir.join(segment_file_name(seq));
        if newest && Segment::is_unfinished(&path)? {
            fs::remove_file(&path).map_err(|e| StoreError::io("remove segment", &path, e))?;
            report.reclaimed_segments += 1;
            continue;
        }
        match Segment::open(&path, shard, seq, newest) {
            Ok(segment) => segments.push(segment),
            Err(StoreError::Corrupt { .. }) => report.damaged_segments += 1,
            Err(other) => return Err(other),
        }
    }
    Ok((segments, highest))
}

pub(super) fn recover(dir: &Path, shard: u32) -> Result<Recovered, StoreError> {
    checkpoint::remove_stale_tmp(dir)?;
    let mut report = RecoveryReport::default();
    let (mut segments, highest_seq) = open_segments(dir, shard, &mut report)?;
    let (header, mut index) = match checkpoint::load(dir, shard) {
        Ok(Some((header, index))) => (Some(header), index),
        Ok(None) => (None, Index::default()),
        Err(what) => {
            report.checkpoint_damaged = Some(what);
            (None, Index::default())
        }
    };
    report.checkpoint_loaded = header.is_some();
    let replay_from = header.map_or(Position { seq: 0, offset: 0 }, |h| h.replay_from);
    let (mut max_lsn, mut active_head, mut kept) = (0, None, Vec::new());
    let newest_seq = segments.last().map(|s| s.seq());
    for mut segment in segments.drain(..) {
        let seq = segment.seq();
        if seq < replay_from.seq {
            kept.push(Arc::new(segment));
            continue;
        }
        let start = if seq == replay_from.seq {
            replay_from.offset
        } else {
            0
        };
        let outcome = replay_segment(&mut segment, start, &mut index, &mut report);
        max_lsn = max_lsn.max(outcome.max_lsn);
        if segment.is_single()
            && !outcome.committed_any
            && start <= super::segment::SEGMENT_HEADER_BYTES
        {
            fs::remove_file(segment.path())
                .map_err(|e| StoreError::io("remove segment", segment.path(), e))?;
            report.reclaimed_segments += 1;
            continue;
        }
        if Some(seq) == newest_seq && !segment.is_single() && !outcome.damaged_mid_segment {
            segment.zero_tail(outcome.head)?;
            active_head = Some(outcome.head);
        }
        kept.push(Arc::new(segment));
    }
    drop_dangling_entries(&mut index, &kept, active_head);
    Ok(Recovered {
        next_lsn: header.map_or(1, |h| h.next_lsn).max(max_lsn + 1),
        next_seq: header.map_or(1, |h| h.next_seq).max(highest_seq + 1),
        segments: kept,
        active_head,
        index,
        report,
    })
}

/// Drops entries that cannot be right: their segment is gone, they run past its end, or they lie
/// at or past the head of the active segment (a checkpoint newer than the data that reached disk).
fn drop_dangling_entries(index: &mut Index, segments: &[Arc<Segment>], active_head: Option<u64>) {
    let newest = segments.last().map(|s| s.seq());
    index.drop_where(|entry| {
        let Ok(i) = segments.binary_search_by_key(&entry.seq, |s| s.seq()) else {
            return true;
        };
        let end = entry.offset.checked_add(entry.record_bytes);
        if end.is_none_or(|end| end > segments[i].capacity()) {
            return true;
        }
        Some(entry.seq) == newest
            && active_head.is_some_and(|head| end.is_some_and(|end| end > head))
    });
}
