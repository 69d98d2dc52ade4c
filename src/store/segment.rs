//! Segment files: preallocated, memory-mapped, shared between threads behind `Arc<Segment>`.
//!
//! This module and `handle.rs` hold all of the store's `unsafe` code that touches a map.
//!
//! A segment file is `segment header (64 bytes) | records …`. Normal segments have the configured
//! size and hold many records; a *single* segment holds exactly one record too large for a normal
//! one. Files are named `seg-<seq as 16 hex digits>.log`; the sequence number orders the ring.
//!
//! # The aliasing rule
//!
//! The map is a raw shared mapping (`MmapRaw`), never exposed as `&mut [u8]`. Every byte range is,
//! at any time, in exactly one of these states:
//!
//! 1. *owned for writing* by exactly one party: the shard owner (a record header between reserve
//!    and commit, or the whole segment before it is shared) or one `Reservation` (its body range);
//! 2. *immutable*: bytes of a committed record, or bytes nobody will write again.
//!
//! Readers only build slices over immutable ranges; writers only write ranges they own. Ownership
//! moves between threads only with the `Reservation` value itself (a channel send, which orders
//! the writes before the owner's commit), and a range becomes immutable when the owner commits it
//! and only then enters the index, so a reader can never observe a half-written record.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use memmap2::{MmapOptions, MmapRaw};

use super::error::StoreError;
use super::limits::ZERO_CHUNK_BYTES;
use super::record::{checksum64, u64_at};
use super::space::preallocate;

pub const SEGMENT_MAGIC: [u8; 4] = *b"TSSG";
pub const SEGMENT_VERSION: u16 = 1;
const SOFF_MAGIC: usize = 0;
const SOFF_VERSION: usize = SOFF_MAGIC + 4;
const SOFF_FLAGS: usize = SOFF_VERSION + 2;
const SOFF_SHARD: usize = SOFF_FLAGS + 2;
const SOFF_RESERVED: usize = SOFF_SHARD + 4;
const SOFF_SEQ: usize = SOFF_RESERVED + 4;
const SOFF_CAPACITY: usize = SOFF_SEQ + 8;
const SOFF_CREATED_MS: usize = SOFF_CAPACITY + 8;
const SOFF_PADDING: usize = SOFF_CREATED_MS + 8;
const SOFF_CHECKSUM: usize = SOFF_PADDING + 16;
/// Bytes before the first record of a segment.
pub const SEGMENT_HEADER_BYTES: u64 = (SOFF_CHECKSUM + 8) as u64;
const _: () = assert!(SEGMENT_HEADER_BYTES == 64);

/// Segment flag: holds exactly one (large) record and never receives appends.
pub const SEGMENT_FLAG_SINGLE: u16 = 1;

/// The validated header of a segment file.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SegmentHeader {
    pub flags: u16,
    pub shard: u32,
    pub seq: u64,
    pub capacity: u64,
    pub created_ms: u64,
}

impl SegmentHeader {
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_BYTES as usize] {
        let mut out = [0u8; SEGMENT_HEADER_BYTES as usize];
        out[SOFF_MAGIC..SOFF_VERSION].copy_from_slice(&SEGMENT_MAGIC);
        out[SOFF_VERSION..SOFF_FLAGS].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
        out[SOFF_FLAGS..SOFF_SHARD].copy_from_slice(&self.flags.to_le_bytes());
        out[SOFF_SHARD..SOFF_RESERVED].copy_from_slice(&self.shard.to_le_bytes());
        out[SOFF_SEQ..SOFF_CAPACITY].copy_from_slice(&self.seq.to_le_bytes());
        out[SOFF_CAPACITY..SOFF_CREATED_MS].copy_from_slice(&self.capacity.to_le_bytes());
        out[SOFF_CREATED_MS..SOFF_PADDING].copy_from_slice(&self.created_ms.to_le_bytes());
        let sum = checksum64(&[&out[..SOFF_CHECKSUM]]);
        out[SOFF_CHECKSUM..].copy_from_slice(&sum.to_le_bytes());
        out
    }

    /// Validates checksum, magic, version and flags before reading any field.
    pub fn decode(bytes: &[u8]) -> Result<SegmentHeader, String> {
        if bytes.len() < SEGMENT_HEADER_BYTES as usize {
            return Err("segment header truncated".into());
        }
        if checksum64(&[&bytes[..SOFF_CHECKSUM]]) != u64_at(bytes, SOFF_CHECKSUM) {
            return Err("segment header checksum mismatch".into());
        }
        if bytes[SOFF_MAGIC..SOFF_VERSION] != SEGMENT_MAGIC {
            return Err("bad segment magic".into());
        }
        let version = u16::from_le_bytes([bytes[SOFF_VERSION], bytes[SOFF_VERSION + 1]]);
        if version != SEGMENT_VERSION {
            return Err(format!(
                "segment format version {version}, this build reads {SEGMENT_VERSION}"
            ));
        }
        let flags = u16::from_le_bytes([bytes[SOFF_FLAGS], bytes[SOFF_FLAGS + 1]]);
        if flags & !SEGMENT_FLAG_SINGLE != 0 {
            return Err(format!("unknown segment flags {flags:#x}"));
        }
        let capacity = u64_at(bytes, SOFF_CAPACITY);
        if capacity < SEGMENT_HEADER_BYTES {
            return Err(format!("segment capacity {capacity} below its header"));
        }
        Ok(SegmentHeader {
            flags,
            shard: u32::from_le_bytes(bytes[SOFF_SHARD..SOFF_RESERVED].try_into().expect("4")),
            seq: u64_at(bytes, SOFF_SEQ),
            capacity,
            created_ms: u64_at(bytes, SOFF_CREATED_MS),
        })
    }

    pub fn is_single(&self) -> bool {
        self.flags & SEGMENT_FLAG_SINGLE != 0
    }
}

pub fn segment_file_name(seq: u64) -> String {
    format!("seg-{seq:016x}.log")
}

/// The sequence number in a segment file name; `None` for other files.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("seg-")?.strip_suffix(".log")?;
    if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// One mapped segment file.
///
/// INVARIANT: `map` covers exactly `header.capacity` bytes of `file`, all preallocated; byte
/// ranges follow the aliasing rule in the module docs.
#[derive(Debug)]
pub struct Segment {
    map: MmapRaw,
    file: File,
    path: PathBuf,
    header: SegmentHeader,
    /// Live [`SegmentHold`]s: while above zero, eviction treats the segment like one holding a
    /// live reservation (it and every newer segment stay).
    holds: AtomicU64,
}

/// Keeps a segment from being evicted while it lives: the object-store tier holds the segment
/// of every write it still owes the bucket (`src/tier/layer.rs`), so the local copy outlives
/// the upload. Created from a [`Reservation`](super::handle::Reservation) (before commit, so
/// there is no window) or a [`ReadHandle`](super::handle::ReadHandle); `Send`, so the tier's
/// own thread drops it once the upload is done.
#[derive(Debug)]
pub struct SegmentHold {
    segment: Arc<Segment>,
}

impl SegmentHold {
    pub(crate) fn new(segment: Arc<Segment>) -> SegmentHold {
        segment.holds.fetch_add(1, Ordering::AcqRel);
        SegmentHold { segment }
    }

    /// The held segment's sequence number.
    pub fn segment_seq(&self) -> u64 {
        self.segment.seq()
    }
}

impl Drop for SegmentHold {
    fn drop(&mut self) {
        let before = self.segment.holds.fetch_sub(1, Ordering::AcqRel);
        assert!(before > 0, "a segment hold was released twice");
    }
}

impl Segment {
    /// Creates, preallocates and maps a new segment file.
    ///
    /// A full filesystem (`ENOSPC`, `EDQUOT`) is `NoSpace`. A file whose creation failed is
    /// removed before this returns: half-allocated blocks go back to the filesystem at once, and
    /// the next attempt can create the same name.
    pub fn create(dir: &Path, header: SegmentHeader) -> Result<Segment, StoreError> {
        let path = dir.join(segment_file_name(header.seq));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| StoreError::io_or_no_space("create segment", &path, e, header.capacity))?;
        let made = preallocate(&file, header.capacity)
            .map_err(|e| StoreError::io_or_no_space("fallocate", &path, e, header.capacity))
            .and_then(|()| {
                file.write_all_at(&header.encode(), 0).map_err(|e| {
                    StoreError::io_or_no_space("write segment header", &path, e, header.capacity)
                })
            })
            .and_then(|()| Segment::map(file, path.clone(), header));
        if made.is_err() {
            if let Err(error) = std::fs::remove_file(&path) {
                tracing::error!(path = %path.display(), %error, "cannot remove a segment whose creation failed");
            }
        }
        made
    }

    /// True for a segment file whose creation a crash interrupted: shorter than a header, or
    /// with an all-zero header (killed between `create_new`, `fallocate` and the header write).
    /// `create` writes the header before the segment takes any record, so such a file holds
    /// nothing. Only the newest segment can be one; recovery removes it.
    pub fn is_unfinished(path: &Path) -> Result<bool, StoreError> {
        let file = File::open(path).map_err(|e| StoreError::io("open segment", path, e))?;
        let mut raw = [0u8; SEGMENT_HEADER_BYTES as usize];
        let mut filled = 0;
        while filled < raw.len() {
            match file.read_at(&mut raw[filled..], filled as u64) {
                Ok(0) => return Ok(true),
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(StoreError::io("read segment header", path, e)),
            }
        }
        Ok(raw.iter().all(|&b| b == 0))
    }

    /// Opens and maps an existing segment, validating its header against the expected shard and
    /// sequence number. A file shorter than its recorded capacity (truncated by a crash or by
    /// hand) is extended with preallocated zeros when `repair_length` is set.
    pub fn open(
        path: &Path,
        shard: u32,
        seq: u64,
        repair_length: bool,
    ) -> Result<Segment, StoreError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| StoreError::io("open segment", path, e))?;
        let mut raw = [0u8; SEGMENT_HEADER_BYTES as usize];
        file.read_exact_at(&mut raw, 0)
            .map_err(|e| match e.kind() {
                // Shorter than a header: a damaged file, like a bad header (skipped and counted).
                std::io::ErrorKind::UnexpectedEof => StoreError::corrupt(format!(
                    "{}: shorter than a segment header",
                    path.display()
                )),
                _ => StoreError::io("read segment header", path, e),
            })?;
        let header = SegmentHeader::decode(&raw)
            .map_err(|what| StoreError::corrupt(format!("{}: {what}", path.display())))?;
        if header.shard != shard || header.seq != seq {
            return Err(StoreError::corrupt(format!(
                "{}: header says shard {} seq {}, expected shard {shard} seq {seq}",
                path.display(),
                header.shard,
                header.seq
            )));
        }
        let file_len = file
            .metadata()
            .map_err(|e| StoreError::io("stat segment", path, e))?
            .len();
        if file_len != header.capacity {
            if !(repair_length && file_len < header.capacity) {
                return Err(StoreError::corrupt(format!(
                    "{}: file is {file_len} bytes, header says {}",
                    path.display(),
                    header.capacity
                )));
            }
            preallocate(&file, header.capacity)
                .map_err(|e| StoreError::io_or_no_space("fallocate", path, e, header.capacity))?;
        }
        Segment::map(file, path.to_path_buf(), header)
    }

    fn map(file: File, path: PathBuf, header: SegmentHeader) -> Result<Segment, StoreError> {
        // SIGBUS risk: a store through a shared file map faults in a page; if the filesystem cannot
        // back it (disk full on a sparse file) the kernel raises SIGBUS. Every segment was
        // preallocated with fallocate before this call, so its blocks already exist.
        let map = MmapOptions::new()
            .len(header.capacity as usize)
            .map_raw(&file)
            .map_err(|e| StoreError::io("mmap segment", &path, e))?;
        Ok(Segment {
            map,
            file,
            path,
            header,
            holds: AtomicU64::new(0),
        })
    }

    /// Whether a [`SegmentHold`] keeps this segment from eviction.
    pub fn is_held(&self) -> bool {
        self.holds.load(Ordering::Acquire) > 0
    }

    pub fn seq(&self) -> u64 {
        self.header.seq
    }

    /// When the segment was created (Unix time, milliseconds): no record in it is older.
    pub fn created_ms(&self) -> u64 {
        self.header.created_ms
    }

    pub fn capacity(&self) -> u64 {
        self.header.capacity
    }

    pub fn is_single(&self) -> bool {
        self.header.is_single()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn check_range(&self, offset: u64, len: u64) -> (usize, usize) {
        let end = offset.checked_add(len).expect("segment range overflow");
        assert!(
            end <= self.header.capacity,
            "range {offset}+{len} beyond segment {}",
            self.header.capacity
        );
        (offset as usize, len as usize)
    }

    /// The whole segment, while the caller holds it exclusively (before it is shared in an `Arc`).
    pub fn bytes_exclusive(&mut self) -> &[u8] {
        // SAFETY: `&mut self` proves no `Arc` clone, reservation or handle exists, so no other
        // party can write any range; the map is valid for `capacity` bytes (INVARIANT).
        unsafe { std::slice::from_raw_parts(self.map.as_ptr(), self.header.capacity as usize) }
    }

    /// Reads `len` bytes at `offset`.
    ///
    /// # Safety
    /// The range must be immutable for the lifetime of the returned slice (state 2 of the aliasing
    /// rule), or owned for writing by the caller itself with no write happening meanwhile.
    pub unsafe fn bytes(&self, offset: u64, len: u64) -> &[u8] {
        let (offset, len) = self.check_range(offset, len);
        // SAFETY: in bounds (checked above); immutability is the caller's contract.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(offset), len) }
    }

    /// Writes `bytes` at `offset` with `pwrite(2)`, not through the map.
    ///
    /// Why not a store through the map: the first touch of a fresh page of a preallocated
    /// (unwritten) extent faults it in, and the fault reads ahead a whole window of pages the
    /// kernel must zero-fill before we overwrite them — measured at ~60% of server CPU on 1 MiB
    /// uploads. `pwrite` of whole pages allocates page-cache pages without reading or zeroing
    /// them. Readers still see the bytes through the map: on Linux a `MAP_SHARED` map and
    /// `pwrite` share one page cache. A failing disk is an `Io` error here, never a SIGBUS.
    ///
    /// # Safety
    /// The caller must own the range for writing (state 1 of the aliasing rule): no reader holds
    /// a slice over it and no other writer writes it.
    pub unsafe fn write(&self, offset: u64, bytes: &[u8]) -> Result<(), StoreError> {
        let (offset, _) = self.check_range(offset, bytes.len() as u64);
        self.file.write_all_at(bytes, offset as u64).map_err(|e| {
            StoreError::io_or_no_space("writing to segment", &self.path, e, bytes.len() as u64)
        })
    }

    /// Zeroes `[offset, capacity)` while exclusively held: used by recovery to wipe a torn or
    /// abandoned tail before appending over it, so no stale record can resurface behind new ones.
    pub fn zero_tail(&mut self, offset: u64) -> Result<(), StoreError> {
        let len = self.header.capacity - offset.min(self.header.capacity);
        if len == 0 {
            return Ok(());
        }
        // SAFETY: plain syscall on our descriptor; ZERO_RANGE keeps the blocks allocated.
        let rc = unsafe {
            libc::fallocate(
                self.file.as_raw_fd(),
                libc::FALLOC_FL_ZERO_RANGE,
                offset as i64,
                len as i64,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        // Filesystems without ZERO_RANGE: write zeros with pwrite, not through the map, so that a
        // filesystem that cannot take the write answers with an error instead of SIGBUS.
        self.check_range(offset, len);
        let zeros = vec![0u8; ZERO_CHUNK_BYTES.min(len as usize)];
        let mut at = offset;
        while at < self.header.capacity {
            let step = (self.header.capacity - at).min(zeros.len() as u64);
            self.file
                .write_all_at(&zeros[..step as usize], at)
                .map_err(|e| {
                    StoreError::io_or_no_space("zero segment tail", &self.path, e, step)
                })?;
            at += step;
        }
        Ok(())
    }

    /// `fdatasync`: makes every store through the map durable.
    pub fn sync_data(&self) -> Result<(), StoreError> {
        self.file
            .sync_data()
            .map_err(|e| StoreError::io("fdatasync segment", &self.path, e))
    }

    /// `msync(MS_SYNC)` of one range (strict durability).
    pub fn sync_range(&self, offset: u64, len: u64) -> Result<(), StoreError> {
        let (offset, len) = self.check_range(offset, len);
        self.map
            .flush_range(offset, len)
            .map_err(|e| StoreError::io("msync segment", &self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(seq: u64, capacity: u64) -> SegmentHeader {
        SegmentHeader {
            flags: 0,
            shard: 3,
            seq,
            capacity,
            created_ms: 99,
        }
    }

    #[test]
    fn file_names_round_trip_and_reject_others() {
        assert_eq!(segment_file_name(0x2a), "seg-000000000000002a.log");
        assert_eq!(
            parse_segment_file_name("seg-000000000000002a.log"),
            Some(0x2a)
        );
        for bad in [
            "seg-2a.log",
            "seg-000000000000002a.tmp",
            "x",
            "seg-00000000000000zz.log",
        ] {
            assert_eq!(parse_segment_file_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn create_write_reopen_and_validate() {
        let dir = tempfile::tempdir().unwrap();
        let segment = Segment::create(dir.path(), header(7, 8192)).unwrap();
        // SAFETY: the test is the only party; nobody reads the range while it is written.
        unsafe { segment.write(100, b"abc") }.unwrap();
        // SAFETY: no writer is active.
        assert_eq!(unsafe { segment.bytes(100, 3) }, b"abc");
        let path = segment.path().to_path_buf();
        drop(segment);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 8192);
        let mut reopened = Segment::open(&path, 3, 7, false).unwrap();
        assert_eq!(&reopened.bytes_exclusive()[100..103], b"abc");
        reopened.zero_tail(101).unwrap();
        assert_eq!(&reopened.bytes_exclusive()[100..103], b"a\0\0");
        assert!(Segment::open(&path, 4, 7, false).is_err(), "wrong shard");
        assert!(Segment::open(&path, 3, 8, false).is_err(), "wrong seq");
    }

    #[test]
    fn truncated_file_is_repaired_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = Segment::create(dir.path(), header(1, 8192))
            .unwrap()
            .path()
            .to_path_buf();
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(5000)
            .unwrap();
        assert!(matches!(
            Segment::open(&path, 3, 1, false),
            Err(StoreError::Corrupt { .. })
        ));
        let segment = Segment::open(&path, 3, 1, true).unwrap();
        assert_eq!(segment.capacity(), 8192);
    }

    #[test]
    fn every_header_bit_flip_is_rejected() {
        let good = header(5, 4096).encode();
        assert_eq!(SegmentHeader::decode(&good).unwrap(), header(5, 4096));
        for bit in 0..good.len() * 8 {
            let mut bad = good;
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(SegmentHeader::decode(&bad).is_err(), "bit {bit}");
        }
    }
}
