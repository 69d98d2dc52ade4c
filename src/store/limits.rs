//! Every bound of the store, with the arithmetic behind it.

/// Largest metadata section of one record, in bytes. Metadata holds a content type, the original
/// client key (S3 keys are at most 1 KiB), Turbo's `x-artifact-*` headers and S3 user metadata
/// (AWS caps that at 2 KiB). 8 KiB covers all of them with room to spare; it is a `u16` on disk.
pub const META_BYTES_MAX: usize = 8 * 1024;

/// Longest metadata name, in bytes (its length is one byte on disk).
pub const META_NAME_BYTES_MAX: usize = 255;

/// Largest number of shards a data directory may have: one per core of a large machine, with
/// headroom. Each shard costs one directory, one active segment and one index.
pub const SHARDS_MAX: u32 = 1024;

/// Smallest segment, in bytes: one page. Tests use tiny segments to exercise rollover and eviction.
pub const SEGMENT_BYTES_MIN: u64 = 4096;

/// Largest normal segment, in bytes: 4 GiB keeps a whole segment addressable by the index's offsets
/// with room, and is far above the 64 MiB default. Blobs larger than a segment get their own file.
pub const SEGMENT_BYTES_MAX: u64 = 4 << 30;

/// Default normal segment size: 64 MiB. Eviction drops a whole segment, so this is also the
/// granularity by which a shard may exceed its budget (at most one segment).
pub const SEGMENT_BYTES_DEFAULT: u64 = 64 << 20;

/// Largest body the store accepts at all, in bytes (1 TiB). The configured `max_blob_bytes` must be
/// below this; it keeps every length computation far from `u64` overflow.
pub const BLOB_BYTES_LIMIT: u64 = 1 << 40;

/// Largest record the owner copies forward to the head when it is read in the oldest quarter of the
/// ring (pseudo-LRU). The copy runs on the owner's thread: 16 MiB at ~5 GB/s is ~3 ms of owner time.
/// Larger blobs are not copied (their segment simply ages out).
pub const COPY_FORWARD_BYTES_MAX: u64 = 16 << 20;

/// Alignment of records inside a segment, in bytes.
pub const RECORD_ALIGN_BYTES: u64 = 8;

/// File sizes are rounded up to this many bytes (the page size of every platform we run on).
pub const PAGE_BYTES: u64 = 4096;

/// Largest checkpoint entry count accepted on load: 2^32 entries is ~275 GiB of checkpoint, far
/// beyond any realistic shard; a larger count in a header is corruption, not a big index.
pub const CHECKPOINT_ENTRIES_MAX: u64 = 1 << 32;

// The store uses `usize` only in memory; lengths on disk are u64 and must fit a usize.
const _: () = assert!(
    usize::BITS >= 64,
    "the store maps files and needs a 64-bit address space"
);
const _: () = assert!(
    META_BYTES_MAX <= u16::MAX as usize,
    "meta length is a u16 on disk"
);
const _: () = assert!(SEGMENT_BYTES_MIN.is_multiple_of(PAGE_BYTES));
const _: () = assert!(SEGMENT_BYTES_DEFAULT >= SEGMENT_BYTES_MIN);
const _: () = assert!(SEGMENT_BYTES_DEFAULT <= SEGMENT_BYTES_MAX);

/// How long `Shard::open` retries a held shard lock before reporting `Locked`, in milliseconds.
/// A process that forks (e.g. to spawn a helper) duplicates every descriptor, including the lock
/// file's, until the child execs; a shard dropped in that window stays locked for a moment. Two
/// seconds covers that window by orders of magnitude while still failing fast on a real second
/// process.
pub const LOCK_WAIT_MS_MAX: u64 = 2000;

/// Most reservations one shard keeps open at once. Each costs ~100 bytes of owner memory plus the
/// space it reserved; the server's connection and stream limits keep real use far below this, so
/// reaching it means abandoned uploads are piling up (they are pruned first) or a bug upstream.
pub const RESERVATIONS_PENDING_MAX: usize = 65_536;

/// Free bytes of its filesystem each shard leaves alone: the effective budget is
/// `min(max_size / shards, used + available / shards − DISK_RESERVE_BYTES)` (`space.rs`). It is
/// room for what the filesystem itself allocates as segments come and go (extent-tree and
/// directory blocks: a few KiB per segment) and for a checkpoint that outgrew its spare
/// (`CHECKPOINT_SPARE_*`): 4 MiB is the checkpoint of ~58 000 objects at 72 bytes each. Per shard,
/// so a store of `n` shards keeps `n × 4 MiB` free, a rounding error next to any real cache.
pub const DISK_RESERVE_BYTES: u64 = 4 << 20;

/// Room the checkpoint spare (`index.ckpt.spare`) keeps beyond the last checkpoint's length, as a
/// fraction (1 / this) of that length: a shard may grow by a quarter of its objects between two
/// checkpoints and still have its next checkpoint's blocks reserved. Costs a quarter of one
/// checkpoint of disk (18 bytes per object).
pub const CHECKPOINT_SPARE_GROWTH_DIVISOR: u64 = 4;

/// Smallest spare beyond the last checkpoint's length, in bytes: 64 KiB is ~900 objects, so a
/// young shard's spare is not outgrown by its next few hundred puts.
pub const CHECKPOINT_SPARE_BYTES_MIN: u64 = 64 << 10;

/// Most namespaces one shard records (`namespaces.rs`). Each costs one table entry in memory
/// twice (name → tag, tag → name) and on disk, at most ~2 × 1 KiB: 4096 names bound a shard's
/// table at ~8 MiB in memory and ~4 MiB on disk, read once at open. Namespaces are chosen by
/// configuration and by clients (Bazel instance names, Turborepo teams, S3 buckets); thousands
/// are far beyond real use, so reaching this means a client is inventing names.
pub const NAMESPACES_PER_SHARD_MAX: usize = 4096;

/// Longest namespace name the store records, in bytes (a `u16` on disk). Configured namespaces
/// are at most 128 bytes (`config::mount`); Bazel instance names arrive from clients and are
/// bounded by the request line and header limits, which are below this.
pub const NAMESPACE_NAME_BYTES_MAX: usize = 1024;

const _: () = assert!(NAMESPACE_NAME_BYTES_MAX <= u16::MAX as usize);
const _: () = assert!(NAMESPACES_PER_SHARD_MAX < u32::MAX as usize);

/// Zeros written per `pwrite` when a segment tail is wiped on a filesystem without
/// `FALLOC_FL_ZERO_RANGE` (1 MiB: 64 calls for a 64 MiB segment; the buffer is allocated once
/// per wipe).
pub const ZERO_CHUNK_BYTES: usize = 1 << 20;

const _: () = assert!(
    DISK_RESERVE_BYTES >= CHECKPOINT_SPARE_BYTES_MIN,
    "the reserve covers at least a young shard's checkpoint spare"
);
