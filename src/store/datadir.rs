//! The data directory and its manifest.
//!
//! ```text
//! DIR/MANIFEST            format version + shard count (text, see FORMAT.md)
//! DIR/shard-<i>/          one directory per shard
//!     LOCK                flock'ed while a process has the shard open
//!     seg-<seq hex16>.log segments
//!     index.ckpt          the last checkpoint
//!     index.ckpt.spare    preallocated blocks for the next checkpoint (`checkpoint.rs`)
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use super::checkpoint::sync_dir;
use super::config::StoreConfig;
use super::error::StoreError;
use super::limits::SHARDS_MAX;

pub const MANIFEST_FILE: &str = "MANIFEST";
const MANIFEST_TITLE: &str = "tessera data directory";
/// The data-directory format this build writes and the newest it opens. Version 2: records and
/// checkpoints carry namespace tags (`FORMAT.md`, version history). A version 1 directory is
/// opened and its manifest raised to 2 before anything is written, so that a build that knows
/// only version 1 refuses the directory instead of stopping at the first tagged record.
pub const DATA_FORMAT_VERSION: u32 = 2;

/// What the manifest records.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Manifest {
    pub format_version: u32,
    pub shards: u32,
}

impl Manifest {
    fn encode(&self) -> String {
        format!(
            "{MANIFEST_TITLE}\nformat_version = {}\nshards = {}\n",
            self.format_version, self.shards
        )
    }

    fn decode(text: &str, path: &Path) -> Result<Manifest, StoreError> {
        let bad = |what: &str| StoreError::corrupt(format!("{}: {what}", path.display()));
        let mut lines = text.lines();
        if lines.next() != Some(MANIFEST_TITLE) {
            return Err(bad("not a Tessera manifest"));
        }
        let mut field = |name: &str| -> Result<u32, StoreError> {
            let line = lines.next().ok_or_else(|| bad("manifest truncated"))?;
            let value = line
                .strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(" = "))
                .ok_or_else(|| bad(&format!("expected `{name} = …`, found `{line}`")))?;
            value
                .parse()
                .map_err(|_| bad(&format!("{name} `{value}` is not a number")))
        };
        let manifest = Manifest {
            format_version: field("format_version")?,
            shards: field("shards")?,
        };
        if manifest.shards == 0 || manifest.shards > SHARDS_MAX {
            return Err(bad(&format!(
                "shard count {} out of range",
                manifest.shards
            )));
        }
        Ok(manifest)
    }
}

/// Reads `dir/MANIFEST`; `Ok(None)` when the directory has none yet.
pub fn read_manifest(dir: &Path) -> Result<Option<Manifest>, StoreError> {
    let path = dir.join(MANIFEST_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => Manifest::decode(&text, &path).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::io("read manifest", path, e)),
    }
}

fn check(manifest: Manifest, requested_shards: u32) -> Result<(), StoreError> {
    if manifest.format_version > DATA_FORMAT_VERSION {
        return Err(StoreError::FormatTooNew {
            on_disk: manifest.format_version,
            supported: DATA_FORMAT_VERSION,
        });
    }
    if manifest.shards != requested_shards {
        return Err(StoreError::ShardCountMismatch {
            on_disk: manifest.shards,
            requested: requested_shards,
        });
    }
    Ok(())
}

/// Writes the manifest atomically: temporary file, fsync, rename, fsync of the directory.
fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<(), StoreError> {
    let tmp = dir.join("MANIFEST.tmp");
    let path = dir.join(MANIFEST_FILE);
    let write = || -> std::io::Result<()> {
        let file = fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut &file, manifest.encode().as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, &path)
    };
    write().map_err(|e| StoreError::io("write manifest", &path, e))?;
    sync_dir(dir)
}

/// Replaces the file `dir/name` with `bytes` so that a crash leaves either the old file or the
/// new one, never a mix: write `dir/name.tmp`, fsync it, rename it over `dir/name`, fsync
/// `dir`. Returns the new file's path. On failure (a full disk) the temporary file is removed
/// and `dir/name` is as it was.
pub fn replace_file(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    let write = || -> std::io::Result<()> {
        let file = fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut &file, bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, &path)
    };
    if let Err(error) = write() {
        let _ = fs::remove_file(&tmp);
        return Err(error);
    }
    fs::File::open(dir)?.sync_all()?;
    Ok(path)
}

/// The directory of shard `index`.
pub fn shard_dir(dir: &Path, index: u32) -> PathBuf {
    dir.join(format!("shard-{index}"))
}

/// An opened, validated data directory.
#[derive(Debug)]
pub struct DataDir {
    dir: PathBuf,
    manifest: Manifest,
}

impl DataDir {
    /// Creates the directory and manifest, or validates an existing manifest against `cfg`.
    /// Call once, before opening shards.
    pub fn open(cfg: &StoreConfig) -> Result<DataDir, StoreError> {
        cfg.validate()?;
        fs::create_dir_all(&cfg.dir)
            .map_err(|e| StoreError::io("create data directory", &cfg.dir, e))?;
        if let Some(mut manifest) = read_manifest(&cfg.dir)? {
            check(manifest, cfg.shards)?;
            if manifest.format_version < DATA_FORMAT_VERSION {
                let from = manifest.format_version;
                manifest.format_version = DATA_FORMAT_VERSION;
                write_manifest(&cfg.dir, &manifest)?;
                tracing::info!(
                    dir = %cfg.dir.display(),
                    from,
                    to = DATA_FORMAT_VERSION,
                    "data directory format raised (existing records are read as they are)"
                );
            }
            return Ok(DataDir {
                dir: cfg.dir.clone(),
                manifest,
            });
        }
        let manifest = Manifest {
            format_version: DATA_FORMAT_VERSION,
            shards: cfg.shards,
        };
        for index in 0..cfg.shards {
            let path = shard_dir(&cfg.dir, index);
            fs::create_dir_all(&path)
                .map_err(|e| StoreError::io("create shard directory", path, e))?;
        }
        write_manifest(&cfg.dir, &manifest)?;
        Ok(DataDir {
            dir: cfg.dir.clone(),
            manifest,
        })
    }

    /// Validates an existing data directory against `cfg` without creating anything (used by
    /// `Shard::open`).
    pub fn check_existing(cfg: &StoreConfig) -> Result<Manifest, StoreError> {
        let manifest = read_manifest(&cfg.dir)?.ok_or_else(|| {
            StoreError::corrupt(format!(
                "{} has no {MANIFEST_FILE}: call DataDir::open before opening shards",
                cfg.dir.display()
            ))
        })?;
        check(manifest, cfg.shards)?;
        Ok(manifest)
    }

    pub fn shards(&self) -> u32 {
        self.manifest.shards
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_then_validates_and_names_both_values() {
        let tmp = tempfile::tempdir().unwrap();
        let mut cfg = StoreConfig::new(tmp.path().join("data"), 4);
        assert_eq!(DataDir::open(&cfg).unwrap().shards(), 4);
        assert!(shard_dir(&cfg.dir, 3).is_dir());
        assert_eq!(DataDir::open(&cfg).unwrap().shards(), 4, "reopen");
        cfg.shards = 2;
        let error = DataDir::open(&cfg).unwrap_err();
        assert!(matches!(
            error,
            StoreError::ShardCountMismatch {
                on_disk: 4,
                requested: 2
            }
        ));
        let text = error.to_string();
        assert!(text.contains('4') && text.contains('2'), "{text}");
    }

    #[test]
    fn newer_format_is_refused_with_both_versions() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = StoreConfig::new(tmp.path(), 1);
        fs::write(
            tmp.path().join(MANIFEST_FILE),
            "tessera data directory\nformat_version = 9\nshards = 1\n",
        )
        .unwrap();
        let error = DataDir::open(&cfg).unwrap_err();
        assert!(
            matches!(
                error,
                StoreError::FormatTooNew {
                    on_disk: 9,
                    supported: DATA_FORMAT_VERSION
                }
            ),
            "{error}"
        );
        assert!(error.to_string().contains('9'));
    }

    #[test]
    fn version_1_directories_are_raised_to_the_current_format() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = StoreConfig::new(tmp.path(), 1);
        fs::write(
            tmp.path().join(MANIFEST_FILE),
            "tessera data directory\nformat_version = 1\nshards = 1\n",
        )
        .unwrap();
        DataDir::open(&cfg).unwrap();
        let manifest = read_manifest(tmp.path()).unwrap().unwrap();
        assert_eq!(manifest.format_version, DATA_FORMAT_VERSION);
    }

    #[test]
    fn damaged_manifest_is_an_error_not_a_reset() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = StoreConfig::new(tmp.path(), 1);
        for text in [
            "",
            "hello",
            "tessera data directory\nformat_version = x\nshards = 1\n",
            "tessera data directory\nformat_version = 1\n",
            "tessera data directory\nformat_version = 1\nshards = 0\n",
        ] {
            fs::write(tmp.path().join(MANIFEST_FILE), text).unwrap();
            assert!(
                matches!(DataDir::open(&cfg), Err(StoreError::Corrupt { .. })),
                "{text:?}"
            );
        }
    }
}
