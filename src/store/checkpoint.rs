//! Index checkpoints: the whole index of one shard plus the log position it covers, written to a
//! temporary file and renamed over `index.ckpt` (atomic replace), then the directory is synced.
//!
//! A full filesystem must not stop the next checkpoint (a clean stop writes one): after each
//! checkpoint, `index.ckpt.spare` is preallocated a little larger than it, and the next
//! checkpoint is written into those blocks (the spare is renamed to the temporary file,
//! overwritten and cut to length). Without a spare large enough, the temporary file is made
//! fresh. A write that fails for lack of space is `NoSpace`, and leaves no temporary file.
//!
//! Layout (little-endian): an 88-byte header, then `entry_count` entries of 72 bytes each.
//! The header checksum covers header bytes 0..80, the entries checksum covers all entry bytes.
//!
//! Entries are written in the index's hash-table order, and the table's hash seeds are saved, so
//! that loading rebuilds a table with the same layout by inserting almost sequentially (one
//! cache- and TLB-friendly pass instead of a random access per entry: this halves reopen time).
//! See `FORMAT.md` for the tables.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::error::StoreError;
use super::index::{Entry, Index};
use super::key::{KeyId, Kind};
use super::limits::{
    CHECKPOINT_ENTRIES_MAX, CHECKPOINT_SPARE_BYTES_MIN, CHECKPOINT_SPARE_GROWTH_DIVISOR, PAGE_BYTES,
};
use super::record::{checksum64, u64_at};
use super::space::preallocate;

pub const CHECKPOINT_FILE: &str = "index.ckpt";
pub const CHECKPOINT_TMP: &str = "index.ckpt.tmp";
/// Preallocated blocks for the next checkpoint (module docs).
pub const CHECKPOINT_SPARE: &str = "index.ckpt.spare";
pub const CHECKPOINT_MAGIC: [u8; 4] = *b"TSCK";
/// The checkpoint format this build writes. Version 2 gave entry bytes 68..72 (zero padding in
/// version 1) to the namespace tag; version 1 checkpoints still load, their entries untagged.
pub const CHECKPOINT_VERSION: u16 = 2;
/// The oldest checkpoint version this build loads.
const CHECKPOINT_VERSION_MIN: u16 = 1;

const COFF_MAGIC: usize = 0;
const COFF_VERSION: usize = COFF_MAGIC + 4;
const COFF_RESERVED: usize = COFF_VERSION + 2;
const COFF_SHARD: usize = COFF_RESERVED + 2;
const COFF_RESERVED2: usize = COFF_SHARD + 4;
const COFF_ENTRY_COUNT: usize = COFF_RESERVED2 + 4;
const COFF_REPLAY_SEQ: usize = COFF_ENTRY_COUNT + 8;
const COFF_REPLAY_OFFSET: usize = COFF_REPLAY_SEQ + 8;
const COFF_NEXT_LSN: usize = COFF_REPLAY_OFFSET + 8;
const COFF_NEXT_SEQ: usize = COFF_NEXT_LSN + 8;
const COFF_HASH_SEEDS: usize = COFF_NEXT_SEQ + 8;
const COFF_ENTRIES_CHECKSUM: usize = COFF_HASH_SEEDS + 16;
const COFF_HEADER_CHECKSUM: usize = COFF_ENTRIES_CHECKSUM + 8;
pub const CHECKPOINT_HEADER_BYTES: usize = COFF_HEADER_CHECKSUM + 8;

const EOFF_KEY: usize = 0;
const EOFF_SEQ: usize = EOFF_KEY + 32;
const EOFF_OFFSET: usize = EOFF_SEQ + 8;
const EOFF_RECORD_BYTES: usize = EOFF_OFFSET + 8;
const EOFF_LSN: usize = EOFF_RECORD_BYTES + 8;
const EOFF_KIND: usize = EOFF_LSN + 8;
const EOFF_RESERVED: usize = EOFF_KIND + 1;
/// The namespace tag (version 2), aligned to 4.
const EOFF_NAMESPACE: usize = EOFF_RESERVED + 3;
pub const CHECKPOINT_ENTRY_BYTES: usize = EOFF_NAMESPACE + 4;
const _: () = assert!(CHECKPOINT_HEADER_BYTES == 88 && CHECKPOINT_ENTRY_BYTES == 72);

/// A log position: segment sequence number and byte offset. Ordered like the log.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub struct Position {
    pub seq: u64,
    pub offset: u64,
}

/// What a checkpoint says besides its entries.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CheckpointHeader {
    /// The format version (encode always writes [`CHECKPOINT_VERSION`]).
    pub version: u16,
    pub shard: u32,
    pub entry_count: u64,
    /// Replay starts here: every commit before it is in the entries.
    pub replay_from: Position,
    pub next_lsn: u64,
    pub next_seq: u64,
    /// Seeds of the index's hash function (see the module docs).
    pub hash_seeds: [u64; 2],
}

/// Serialises the index (on the owner thread; the bytes are written by a background thread).
pub fn encode(header: CheckpointHeader, index: &Index) -> Vec<u8> {
    let mut out = vec![0u8; CHECKPOINT_HEADER_BYTES];
    out.reserve(index.len() * CHECKPOINT_ENTRY_BYTES);
    for (id, entry) in index.iter() {
        let mut raw = [0u8; CHECKPOINT_ENTRY_BYTES];
        raw[EOFF_KEY..EOFF_SEQ].copy_from_slice(&id.0);
        raw[EOFF_SEQ..EOFF_OFFSET].copy_from_slice(&entry.seq.to_le_bytes());
        raw[EOFF_OFFSET..EOFF_RECORD_BYTES].copy_from_slice(&entry.offset.to_le_bytes());
        raw[EOFF_RECORD_BYTES..EOFF_LSN].copy_from_slice(&entry.record_bytes.to_le_bytes());
        raw[EOFF_LSN..EOFF_KIND].copy_from_slice(&entry.lsn.to_le_bytes());
        raw[EOFF_KIND] = entry.kind as u8;
        raw[EOFF_NAMESPACE..].copy_from_slice(&entry.namespace.to_le_bytes());
        out.extend_from_slice(&raw);
    }
    let head = &mut out[..CHECKPOINT_HEADER_BYTES];
    head[COFF_MAGIC..COFF_VERSION].copy_from_slice(&CHECKPOINT_MAGIC);
    head[COFF_VERSION..COFF_RESERVED].copy_from_slice(&CHECKPOINT_VERSION.to_le_bytes());
    head[COFF_SHARD..COFF_RESERVED2].copy_from_slice(&header.shard.to_le_bytes());
    head[COFF_ENTRY_COUNT..COFF_REPLAY_SEQ].copy_from_slice(&(index.len() as u64).to_le_bytes());
    head[COFF_REPLAY_SEQ..COFF_REPLAY_OFFSET]
        .copy_from_slice(&header.replay_from.seq.to_le_bytes());
    head[COFF_REPLAY_OFFSET..COFF_NEXT_LSN]
        .copy_from_slice(&header.replay_from.offset.to_le_bytes());
    head[COFF_NEXT_LSN..COFF_NEXT_SEQ].copy_from_slice(&header.next_lsn.to_le_bytes());
    head[COFF_NEXT_SEQ..COFF_HASH_SEEDS].copy_from_slice(&header.next_seq.to_le_bytes());
    head[COFF_HASH_SEEDS..COFF_HASH_SEEDS + 8].copy_from_slice(&header.hash_seeds[0].to_le_bytes());
    head[COFF_HASH_SEEDS + 8..COFF_ENTRIES_CHECKSUM]
        .copy_from_slice(&header.hash_seeds[1].to_le_bytes());
    let entries_sum = checksum64(&[&out[CHECKPOINT_HEADER_BYTES..]]);
    out[COFF_ENTRIES_CHECKSUM..COFF_HEADER_CHECKSUM].copy_from_slice(&entries_sum.to_le_bytes());
    let header_sum = checksum64(&[&out[..COFF_HEADER_CHECKSUM]]);
    out[COFF_HEADER_CHECKSUM..CHECKPOINT_HEADER_BYTES].copy_from_slice(&header_sum.to_le_bytes());
    out
}

/// Validates a checkpoint completely (both checksums, every field) before returning anything.
pub fn decode(bytes: &[u8], shard: u32) -> Result<(CheckpointHeader, Index), String> {
    let header = decode_header(bytes, shard)?;
    let entries = &bytes[CHECKPOINT_HEADER_BYTES..];
    if checksum64(&[entries]) != u64_at(bytes, COFF_ENTRIES_CHECKSUM) {
        return Err("checkpoint entries checksum mismatch".into());
    }
    let mut index = Index::with_capacity_and_seeds(header.entry_count as usize, header.hash_seeds);
    for raw in entries.chunks_exact(CHECKPOINT_ENTRY_BYTES) {
        let (id, entry) = decode_entry(raw, header.version)?;
        index.apply_put(id, entry);
    }
    Ok((header, index))
}

fn decode_header(bytes: &[u8], shard: u32) -> Result<CheckpointHeader, String> {
    if bytes.len() < CHECKPOINT_HEADER_BYTES {
        return Err("checkpoint shorter than its header".into());
    }
    if checksum64(&[&bytes[..COFF_HEADER_CHECKSUM]]) != u64_at(bytes, COFF_HEADER_CHECKSUM) {
        return Err("checkpoint header checksum mismatch".into());
    }
    if bytes[COFF_MAGIC..COFF_VERSION] != CHECKPOINT_MAGIC {
        return Err("bad checkpoint magic".into());
    }
    let version = u16::from_le_bytes([bytes[COFF_VERSION], bytes[COFF_VERSION + 1]]);
    if !(CHECKPOINT_VERSION_MIN..=CHECKPOINT_VERSION).contains(&version) {
        return Err(format!(
            "checkpoint version {version}, this build reads {CHECKPOINT_VERSION_MIN} to {CHECKPOINT_VERSION}"
        ));
    }
    let on_disk_shard =
        u32::from_le_bytes(bytes[COFF_SHARD..COFF_RESERVED2].try_into().expect("4"));
    if on_disk_shard != shard {
        return Err(format!(
            "checkpoint of shard {on_disk_shard} found in shard {shard}"
        ));
    }
    let entry_count = u64_at(bytes, COFF_ENTRY_COUNT);
    let expected_len = entry_count
        .checked_mul(CHECKPOINT_ENTRY_BYTES as u64)
        .and_then(|n| n.checked_add(CHECKPOINT_HEADER_BYTES as u64));
    if entry_count > CHECKPOINT_ENTRIES_MAX || expected_len != Some(bytes.len() as u64) {
        return Err(format!(
            "checkpoint claims {entry_count} entries but is {} bytes",
            bytes.len()
        ));
    }
    Ok(CheckpointHeader {
        version,
        shard,
        entry_count,
        replay_from: Position {
            seq: u64_at(bytes, COFF_REPLAY_SEQ),
            offset: u64_at(bytes, COFF_REPLAY_OFFSET),
        },
        next_lsn: u64_at(bytes, COFF_NEXT_LSN),
        next_seq: u64_at(bytes, COFF_NEXT_SEQ),
        hash_seeds: [
            u64_at(bytes, COFF_HASH_SEEDS),
            u64_at(bytes, COFF_HASH_SEEDS + 8),
        ],
    })
}

fn decode_entry(raw: &[u8], version: u16) -> Result<(KeyId, Entry), String> {
    let kind = Kind::from_u8(raw[EOFF_KIND]).ok_or("checkpoint entry with unknown kind")?;
    // Version 1 had zero padding where version 2 keeps the tag: zero reads as untagged.
    let padding_end = if version >= 2 {
        EOFF_NAMESPACE
    } else {
        CHECKPOINT_ENTRY_BYTES
    };
    if raw[EOFF_RESERVED..padding_end].iter().any(|&b| b != 0) {
        return Err("checkpoint entry padding not zero".into());
    }
    let namespace = u32::from_le_bytes(
        raw[EOFF_NAMESPACE..CHECKPOINT_ENTRY_BYTES]
            .try_into()
            .expect("4"),
    );
    let entry = Entry {
        seq: u64_at(raw, EOFF_SEQ),
        offset: u64_at(raw, EOFF_OFFSET),
        record_bytes: u64_at(raw, EOFF_RECORD_BYTES),
        lsn: u64_at(raw, EOFF_LSN),
        kind,
        namespace,
        verified: false,
    };
    Ok((
        KeyId(raw[EOFF_KEY..EOFF_SEQ].try_into().expect("32")),
        entry,
    ))
}

/// Reads and validates `dir/index.ckpt`. `Ok(None)` if there is none; `Err(what)` if it is damaged
/// (the caller falls back to a full replay).
pub fn load(dir: &Path, shard: u32) -> Result<Option<(CheckpointHeader, Index)>, String> {
    let path = dir.join(CHECKPOINT_FILE);
    match fs::read(&path) {
        Ok(bytes) => decode(&bytes, shard).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Writes `bytes` as the new checkpoint of `dir`: temporary file (in the spare's blocks when it
/// is large enough), fsync, rename, fsync directory; then reserves the spare for the next one.
/// A crash at any point leaves either the old or the new checkpoint, never a mix; a failure
/// leaves the old one and no temporary file. A full filesystem is `NoSpace`.
pub fn write_atomic(dir: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = dir.join(CHECKPOINT_TMP);
    let path = dir.join(CHECKPOINT_FILE);
    let written = write_tmp(dir, &tmp, bytes)
        .and_then(|()| {
            fs::rename(&tmp, &path).map_err(|e| StoreError::io("rename checkpoint", &path, e))
        })
        .and_then(|()| sync_dir(dir));
    if let Err(error) = written {
        if let Err(cleanup) = remove_stale_tmp(dir) {
            tracing::error!(%cleanup, "cannot remove the temporary file of a failed checkpoint");
        }
        return Err(error);
    }
    reserve_spare(dir, bytes.len() as u64);
    Ok(())
}

/// Writes and syncs `bytes` as `tmp`, in the spare's blocks when it has enough of them.
fn write_tmp(dir: &Path, tmp: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let len = bytes.len() as u64;
    let spare = dir.join(CHECKPOINT_SPARE);
    let reuse =
        fs::metadata(&spare).is_ok_and(|m| m.len() >= len) && fs::rename(&spare, tmp).is_ok();
    if !reuse {
        // Too small to hold this checkpoint: its blocks serve better as free space for it.
        let _ = fs::remove_file(&spare);
    }
    let no_space = |op| move |e| StoreError::io_or_no_space(op, tmp, e, len);
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(!reuse)
        .open(tmp)
        .map_err(no_space("create checkpoint"))?;
    file.write_all_at(bytes, 0)
        .map_err(no_space("write checkpoint"))?;
    file.set_len(len).map_err(no_space("truncate checkpoint"))?;
    file.sync_all().map_err(no_space("fsync checkpoint"))
}

/// Size of the spare kept after a checkpoint of `len` bytes (`limits.rs`), whole pages.
pub fn spare_bytes(len: u64) -> u64 {
    let wanted = len + len / CHECKPOINT_SPARE_GROWTH_DIVISOR + CHECKPOINT_SPARE_BYTES_MIN;
    wanted.div_ceil(PAGE_BYTES) * PAGE_BYTES
}

/// Preallocates `index.ckpt.spare` for the checkpoint after one of `len` bytes. Best effort: on
/// a full filesystem there is no spare (the next checkpoint makes a fresh file, or fails with
/// `NoSpace`), and no partly allocated spare is kept.
fn reserve_spare(dir: &Path, len: u64) {
    let spare = dir.join(CHECKPOINT_SPARE);
    let target = spare_bytes(len);
    if fs::metadata(&spare).is_ok_and(|m| m.len() >= target) {
        return;
    }
    let reserved = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&spare)
        .and_then(|file| preallocate(&file, target));
    if let Err(error) = reserved {
        tracing::debug!(%error, target, "no checkpoint spare");
        let _ = fs::remove_file(&spare);
    }
}

/// fsync of a directory, so a rename or a new file name in it is durable.
pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io("fsync directory", dir, e))
}

/// Removes a temporary file a crash may have left behind.
pub fn remove_stale_tmp(dir: &Path) -> Result<(), StoreError> {
    let tmp = dir.join(CHECKPOINT_TMP);
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(StoreError::io("remove stale checkpoint", &tmp, e))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (CheckpointHeader, Index) {
        let mut index = Index::default();
        for i in 0..50u8 {
            let entry = Entry {
                seq: u64::from(i % 4),
                offset: 64 + u64::from(i) * 8,
                record_bytes: 104,
                lsn: u64::from(i) + 1,
                kind: Kind::Blob,
                namespace: u32::from(i % 3),
                verified: true,
            };
            index.apply_put(KeyId([i; 32]), entry);
        }
        let header = CheckpointHeader {
            version: CHECKPOINT_VERSION,
            shard: 2,
            entry_count: 50,
            replay_from: Position {
                seq: 3,
                offset: 4096,
            },
            next_lsn: 51,
            next_seq: 4,
            hash_seeds: index.seeds(),
        };
        (header, index)
    }

    #[test]
    fn round_trip_resets_verified() {
        let (header, index) = sample();
        let bytes = encode(header, &index);
        assert_eq!(bytes.len(), 88 + 50 * 72);
        let (decoded_header, decoded) = decode(&bytes, 2).unwrap();
        assert_eq!(decoded_header, header);
        assert_eq!(decoded.len(), 50);
        for (id, entry) in index.iter() {
            assert_eq!(
                decoded.get(id).unwrap(),
                Entry {
                    verified: false,
                    ..*entry
                }
            );
        }
        assert!(decode(&bytes, 3).is_err(), "wrong shard");
    }

    /// Compatibility: a version 1 checkpoint (zero padding where version 2 keeps the tag) loads,
    /// every entry untagged; a non-zero byte there is still damage in version 1.
    #[test]
    fn version_1_checkpoints_load_untagged() {
        let (header, index) = sample();
        let mut bytes = encode(header, &index);
        bytes[COFF_VERSION..COFF_RESERVED].copy_from_slice(&1u16.to_le_bytes());
        for raw in bytes[CHECKPOINT_HEADER_BYTES..].chunks_exact_mut(CHECKPOINT_ENTRY_BYTES) {
            raw[EOFF_NAMESPACE..].fill(0);
        }
        let reseal = |bytes: &mut Vec<u8>| {
            let sum = checksum64(&[&bytes[CHECKPOINT_HEADER_BYTES..]]);
            bytes[COFF_ENTRIES_CHECKSUM..COFF_HEADER_CHECKSUM].copy_from_slice(&sum.to_le_bytes());
            let sum = checksum64(&[&bytes[..COFF_HEADER_CHECKSUM]]);
            bytes[COFF_HEADER_CHECKSUM..CHECKPOINT_HEADER_BYTES]
                .copy_from_slice(&sum.to_le_bytes());
        };
        reseal(&mut bytes);
        let (decoded_header, decoded) = decode(&bytes, 2).unwrap();
        assert_eq!(decoded_header.version, 1);
        assert_eq!(decoded.len(), 50);
        assert!(decoded.iter().all(|(_, e)| e.namespace == 0));
        assert_eq!(decoded.usage().len(), 1, "all under the untagged namespace");
        bytes[CHECKPOINT_HEADER_BYTES + EOFF_NAMESPACE] = 1;
        reseal(&mut bytes);
        assert!(
            decode(&bytes, 2).is_err(),
            "padding must be zero in version 1"
        );
    }

    #[test]
    fn every_bit_flip_and_truncation_is_rejected() {
        let (header, index) = sample();
        let bytes = encode(header, &index);
        for bit in (0..bytes.len() * 8).step_by(7) {
            let mut bad = bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(decode(&bad, 2).is_err(), "bit {bit}");
        }
        for len in [0, 10, 87, 88, 100, bytes.len() - 1] {
            assert!(decode(&bytes[..len], 2).is_err(), "len {len}");
        }
    }

    #[test]
    fn atomic_write_replaces_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path(), 2).unwrap().is_none());
        let (header, index) = sample();
        write_atomic(dir.path(), &encode(header, &index)).unwrap();
        let (loaded, entries) = load(dir.path(), 2).unwrap().unwrap();
        assert_eq!((loaded, entries.len()), (header, 50));
        fs::write(dir.path().join(CHECKPOINT_FILE), b"garbage").unwrap();
        assert!(load(dir.path(), 2).is_err());
    }
}
