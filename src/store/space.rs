//! Disk space: the filesystem is part of the budget.
//!
//! A shard may use its share of `max_size`, but never more than its filesystem can give it:
//!
//! ```text
//! effective budget = min( max_size / shards,
//!                         used + available / shards − DISK_RESERVE_BYTES )
//! ```
//!
//! `used` is the bytes of the shard's own segments, `available` the filesystem's free bytes for
//! an unprivileged user (`statvfs`: `f_bavail × f_frsize`, so the root-reserved blocks are not
//! counted on). All shards of a data directory share one filesystem, so each counts on an equal
//! share of what is free. A shard re-measures before it creates a segment and on every
//! maintenance tick; eviction then treats the effective budget like `max_size` (`eviction.rs`).
//!
//! The measurement can be wrong (another process writes between the measurement and our
//! `fallocate`, or blocks of an evicted segment are not freed yet). Then the filesystem answers
//! `ENOSPC` or `EDQUOT`, which the store reports as `StoreError::NoSpace`, never as `Io`
//! ([`is_out_of_space`]); the shard takes what it holds as its budget, evicts its oldest segment
//! and tries again, and refuses the put when nothing is left to evict.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::config::StoreConfig;
use super::datadir::shard_dir;
use super::error::StoreError;
use super::limits::DISK_RESERVE_BYTES;
use super::recovery::list_segments;
use super::segment::segment_file_name;

/// How a shard measures the free bytes of the filesystem holding `dir` (default:
/// [`available_bytes`]). Replaceable (`Shard::set_free_space_probe`) so that a test can make a
/// shard believe in room that a real, full filesystem then refuses.
pub type FreeSpaceProbe = fn(&Path) -> Result<u64, StoreError>;

/// Whether an OS error means "no room": the filesystem is full (`ENOSPC`) or a quota is
/// exhausted (`EDQUOT`).
pub fn is_out_of_space(error: &std::io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

/// Free bytes of the filesystem holding `dir` that an unprivileged user may allocate.
pub fn available_bytes(dir: &Path) -> Result<u64, StoreError> {
    let c_path = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| StoreError::corrupt(format!("{}: NUL byte in path", dir.display())))?;
    // SAFETY: `statvfs` is plain data; the call only writes into it.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid NUL-terminated path and a valid, writable `statvfs`.
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stats) } != 0 {
        return Err(StoreError::io(
            "statvfs",
            dir,
            std::io::Error::last_os_error(),
        ));
    }
    Ok(stats.f_bavail.saturating_mul(stats.f_frsize))
}

/// The effective budget of one shard (module docs): its share of `max_size`, or less when the
/// filesystem cannot hold that much.
pub fn effective_budget(
    share_bytes: u64,
    used_bytes: u64,
    available_bytes: u64,
    shards: u32,
) -> u64 {
    let free_share = available_bytes / u64::from(shards.max(1));
    let holdable = used_bytes
        .saturating_add(free_share)
        .saturating_sub(DISK_RESERVE_BYTES);
    share_bytes.min(holdable)
}

/// Reserves `len` bytes of real disk blocks for `file` (extending it to `len` if shorter), so
/// that later writes into them cannot fail for lack of space (and stores through a map of the
/// file cannot SIGBUS). The caller decides how a full filesystem is reported
/// ([`is_out_of_space`]).
pub(crate) fn preallocate(file: &File, len: u64) -> std::io::Result<()> {
    let signed = i64::try_from(len)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "length over i64"))?;
    // SAFETY: fallocate on a valid, open descriptor with in-range arguments; no memory is passed.
    if unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, signed) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// A shard's view of its filesystem, kept by the shard (`eviction.rs` measures and uses it).
pub(super) struct ShardSpace {
    pub probe: FreeSpaceProbe,
    /// The effective budget (module docs) at the last measurement, or lower after the
    /// filesystem refused space the budget allowed.
    pub effective_budget: u64,
    /// The shard cannot take a new normal segment: its filesystem has no room for one even
    /// after evicting everything it may evict. Cleared as soon as it has room again.
    pub degraded: bool,
    /// Times the filesystem refused space (`ENOSPC`/`EDQUOT`) that the budget allowed.
    pub refusals: u64,
}

impl ShardSpace {
    pub fn new(share_bytes: u64) -> ShardSpace {
        ShardSpace {
            probe: available_bytes,
            effective_budget: share_bytes,
            degraded: false,
            refusals: 0,
        }
    }
}

/// What a data directory's filesystem can hold for the cache, measured once at start so that a
/// `max_size` beyond it is reported (the effective budgets follow the filesystem either way).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacity {
    /// Bytes of every shard's segment files now.
    pub stored_bytes: u64,
    /// Free bytes of the filesystem (unprivileged).
    pub available_bytes: u64,
    /// `stored + available − shards × DISK_RESERVE_BYTES`: the most the cache can grow to.
    pub holdable_bytes: u64,
}

/// Measures [`Capacity`] for the data directory of `cfg` (which must exist).
pub fn capacity(cfg: &StoreConfig) -> Result<Capacity, StoreError> {
    let mut stored_bytes = 0u64;
    for shard in 0..cfg.shards {
        let dir = shard_dir(&cfg.dir, shard);
        if !dir.is_dir() {
            continue;
        }
        for seq in list_segments(&dir)? {
            let path = dir.join(segment_file_name(seq));
            if let Ok(metadata) = std::fs::metadata(&path) {
                stored_bytes += metadata.len();
            }
        }
    }
    let available_bytes = available_bytes(&cfg.dir)?;
    let holdable_bytes = stored_bytes
        .saturating_add(available_bytes)
        .saturating_sub(u64::from(cfg.shards) * DISK_RESERVE_BYTES);
    Ok(Capacity {
        stored_bytes,
        available_bytes,
        holdable_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn the_budget_is_the_share_until_the_filesystem_holds_less() {
        // A roomy filesystem: the share of max_size.
        assert_eq!(
            effective_budget(100 * MIB, 10 * MIB, 10_000 * MIB, 2),
            100 * MIB
        );
        // 40 MiB free over two shards: 20 MiB each on top of what a shard holds, minus the
        // reserve.
        assert_eq!(
            effective_budget(100 * MIB, 30 * MIB, 40 * MIB, 2),
            30 * MIB + 20 * MIB - DISK_RESERVE_BYTES
        );
        // A full filesystem: less than what the shard holds (it gives back the reserve).
        assert_eq!(
            effective_budget(100 * MIB, 30 * MIB, 0, 2),
            30 * MIB - DISK_RESERVE_BYTES
        );
        // Nothing held and nothing free: zero, not an underflow.
        assert_eq!(effective_budget(100 * MIB, 0, MIB, 1), 0);
        // No overflow at the extremes.
        assert_eq!(
            effective_budget(u64::MAX, u64::MAX, u64::MAX, 1),
            u64::MAX - DISK_RESERVE_BYTES
        );
    }

    #[test]
    fn out_of_space_is_enospc_and_edquot_only() {
        let os = std::io::Error::from_raw_os_error;
        assert!(is_out_of_space(&os(libc::ENOSPC)));
        assert!(is_out_of_space(&os(libc::EDQUOT)));
        for other in [libc::EIO, libc::EEXIST, libc::EACCES, libc::EROFS] {
            assert!(!is_out_of_space(&os(other)), "{other}");
        }
        assert!(!is_out_of_space(&std::io::Error::other("no errno")));
    }

    #[test]
    fn a_real_directory_has_some_free_space_and_a_missing_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(available_bytes(dir.path()).unwrap() > 0);
        assert!(matches!(
            available_bytes(&dir.path().join("missing")),
            Err(StoreError::Io { op: "statvfs", .. })
        ));
    }
}
