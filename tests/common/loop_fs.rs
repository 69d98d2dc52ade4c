//! A small ext4 filesystem of a test's own, loop-mounted, so that "the disk is full" is a real
//! filesystem's `ENOSPC` and a foreign file can fill it while Tessera runs.
//!
//! ```ignore
//! let Some(fs) = loop_fs::LoopFs::mount("my_test", 128 << 20) else { return }; // says why
//! let data = fs.path().join("data");
//! fs.fill();   // a foreign file takes every free block
//! fs.unfill(); // and gives them back
//! ```
//!
//! Needs `mkfs.ext4` (e2fsprogs; `tests/install-deps.sh` installs it: missing, the test fails),
//! root and a loop device. Without root, or where the kernel refuses the mount (a container
//! without loop devices), [`LoopFs::mount`] prints why the test is skipped and returns `None`.
//! The image is sparse and lives in a temporary directory; it is unmounted and deleted on drop.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Name of the foreign file [`LoopFs::fill`] makes, at the root of the filesystem.
pub const FILLER_NAME: &str = "foreign-filler";

/// Smallest step by which [`LoopFs::fill`] grows its file: one filesystem block.
const FILL_STEP_BYTES_MIN: u64 = 4096;

/// How often and how long a busy mount point is retried when unmounting (a process that just
/// exited may still hold a file for a moment).
const UNMOUNT_ATTEMPTS: u32 = 50;
const UNMOUNT_RETRY_PAUSE: Duration = Duration::from_millis(100);

pub struct LoopFs {
    _temp: tempfile::TempDir,
    mount_point: PathBuf,
}

impl LoopFs {
    /// Makes a `bytes`-byte ext4 image (no root-reserved blocks, so "full" is full for root
    /// too) and mounts it; `None` (after printing why) when this machine does not let the test
    /// mount it.
    pub fn mount(test: &str, bytes: u64) -> Option<LoopFs> {
        let temp = tempfile::Builder::new()
            .prefix("tessera-loopfs-")
            .tempdir()
            .expect("create a temp dir");
        let image = temp.path().join("fs.img");
        let mount_point = temp.path().join("mnt");
        std::fs::create_dir(&mount_point).expect("create the mount point");
        File::create(&image)
            .and_then(|f| f.set_len(bytes))
            .expect("create the sparse image");
        let mkfs = Command::new("mkfs.ext4")
            .args(["-q", "-F", "-m", "0"])
            .arg(&image)
            .output()
            .unwrap_or_else(|e| {
                panic!("{test}: cannot run mkfs.ext4 ({e}): install e2fsprogs (bash tests/install-deps.sh)")
            });
        assert!(
            mkfs.status.success(),
            "{test}: mkfs.ext4 failed: {}",
            String::from_utf8_lossy(&mkfs.stderr)
        );
        // SAFETY: geteuid has no preconditions and touches no memory.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!(
                "SKIP {test}: mounting a loop filesystem needs root (this test fills a real \
                 filesystem to the last block)"
            );
            return None;
        }
        let mounted = Command::new("mount")
            .args(["-t", "ext4", "-o", "loop"])
            .arg(&image)
            .arg(&mount_point)
            .output()
            .unwrap_or_else(|e| panic!("{test}: cannot run mount: {e}"));
        if !mounted.status.success() {
            eprintln!(
                "SKIP {test}: this machine does not permit mounting a loop filesystem: {}",
                String::from_utf8_lossy(&mounted.stderr).trim()
            );
            return None;
        }
        Some(LoopFs {
            _temp: temp,
            mount_point,
        })
    }

    /// The root of the mounted filesystem.
    pub fn path(&self) -> &Path {
        &self.mount_point
    }

    /// Free bytes for an unprivileged user, as the store measures them.
    pub fn available_bytes(&self) -> u64 {
        tessera::store::space::available_bytes(&self.mount_point).expect("statvfs")
    }

    /// Grows the foreign file until the filesystem refuses another block; returns its length.
    pub fn fill(&self) -> u64 {
        fill(&self.mount_point)
    }

    /// Deletes the foreign file (its blocks are free when this returns).
    pub fn unfill(&self) {
        unfill(&self.mount_point)
    }
}

/// [`LoopFs::fill`] for the filesystem mounted at `root` (usable from another thread).
pub fn fill(root: &Path) -> u64 {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(root.join(FILLER_NAME))
        .expect("open the filler");
    let available = tessera::store::space::available_bytes(root).expect("statvfs");
    let mut step = available.max(FILL_STEP_BYTES_MIN);
    while step >= FILL_STEP_BYTES_MIN {
        let offset = file.metadata().expect("stat the filler").len();
        // SAFETY: fallocate on our own open descriptor; no memory is passed.
        let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, offset as i64, step as i64) };
        if rc != 0 {
            let error = std::io::Error::last_os_error();
            assert_eq!(
                error.raw_os_error(),
                Some(libc::ENOSPC),
                "filling the filesystem: {error}"
            );
            step /= 2;
        }
    }
    file.sync_all().expect("sync the filler");
    file.metadata().expect("stat the filler").len()
}

/// [`LoopFs::unfill`] for the filesystem mounted at `root`.
pub fn unfill(root: &Path) {
    std::fs::remove_file(root.join(FILLER_NAME)).expect("remove the filler");
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        for _ in 0..UNMOUNT_ATTEMPTS {
            let status = Command::new("umount").arg(&self.mount_point).status();
            if status.is_ok_and(|s| s.success()) {
                return;
            }
            std::thread::sleep(UNMOUNT_RETRY_PAUSE);
        }
        // Still busy: detach it lazily so the kernel frees it once the last user is gone.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.mount_point)
            .status();
    }
}
