//! The bucket registry, shared by every executor: which buckets exist, since when, and the
//! object keys written through this process (for emptiness checks).
//!
//! Buckets named in `s3.buckets` exist from the start (and are not written to the registry:
//! the configuration names them). Buckets made with CreateBucket are kept in `DATA/s3-buckets` (next to `MANIFEST`), rewritten atomically on every change:
//!
//! ```text
//! tessera s3 buckets 1
//! <name> <creation time, ms since the epoch>
//! …
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::s3::is_bucket_name;

/// File name of the registry in the data directory.
pub const BUCKETS_FILE: &str = "s3-buckets";
const BUCKETS_TMP: &str = "s3-buckets.tmp";
const BUCKETS_TITLE: &str = "tessera s3 buckets 1";

/// Most buckets (configured and created): S3 allows 10,000 per account by default.
pub const BUCKETS_MAX: usize = 10_000;

/// Why a registry change failed.
#[derive(Debug, PartialEq, Eq)]
pub enum BucketError {
    Exists,
    Missing,
    TooMany,
    /// The registry file could not be written; the change is undone.
    Io(String),
}

#[derive(Default)]
struct State {
    /// Name → creation time.
    buckets: BTreeMap<String, SystemTime>,
    /// Keys written through this process, by bucket (a superset of what is stored: eviction
    /// does not report here; callers check the store).
    keys: BTreeMap<String, BTreeSet<String>>,
}

/// The registry.
pub struct Buckets {
    /// `None`: in memory only (tests).
    dir: Option<PathBuf>,
    /// Buckets named by the configuration.
    configured: BTreeSet<String>,
    state: Mutex<State>,
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Buckets {
    /// Loads `dir/s3-buckets` (if any) and adds the configured buckets.
    pub fn open(dir: Option<&Path>, configured: &[String]) -> Result<Buckets, String> {
        let mut buckets = BTreeMap::new();
        if let Some(dir) = dir {
            let path = dir.join(BUCKETS_FILE);
            match fs::read_to_string(&path) {
                Ok(text) => {
                    let mut lines = text.lines();
                    if lines.next() != Some(BUCKETS_TITLE) {
                        return Err(format!("{}: not a bucket registry", path.display()));
                    }
                    for (n, line) in lines.enumerate() {
                        let parsed = line.split_once(' ').and_then(|(name, at)| {
                            let at = at.parse::<u64>().ok()?;
                            is_bucket_name(name).then(|| (name.to_string(), at))
                        });
                        let Some((name, at)) = parsed else {
                            return Err(format!("{} line {}: malformed", path.display(), n + 2));
                        };
                        buckets.insert(name, UNIX_EPOCH + Duration::from_millis(at));
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("{}: {e}", path.display())),
            }
        }
        let now = SystemTime::now();
        for name in configured {
            buckets.entry(name.clone()).or_insert(now);
        }
        Ok(Buckets {
            dir: dir.map(Path::to_path_buf),
            configured: configured.iter().cloned().collect(),
            state: Mutex::new(State {
                buckets,
                keys: BTreeMap::new(),
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent maps (every change is one insert or
        // remove), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn exists(&self, name: &str) -> bool {
        self.lock().buckets.contains_key(name)
    }

    /// Every bucket with its creation time, by name.
    pub fn list(&self) -> Vec<(String, SystemTime)> {
        let state = self.lock();
        state.buckets.iter().map(|(n, t)| (n.clone(), *t)).collect()
    }

    pub fn create(&self, name: &str) -> Result<(), BucketError> {
        let mut state = self.lock();
        if state.buckets.contains_key(name) {
            return Err(BucketError::Exists);
        }
        if state.buckets.len() >= BUCKETS_MAX {
            return Err(BucketError::TooMany);
        }
        state.buckets.insert(name.to_string(), SystemTime::now());
        if let Err(e) = self.persist(&state.buckets) {
            state.buckets.remove(name);
            return Err(BucketError::Io(e));
        }
        Ok(())
    }

    pub fn delete(&self, name: &str) -> Result<(), BucketError> {
        let mut state = self.lock();
        let Some(created) = state.buckets.remove(name) else {
            return Err(BucketError::Missing);
        };
        if let Err(e) = self.persist(&state.buckets) {
            state.buckets.insert(name.to_string(), created);
            return Err(BucketError::Io(e));
        }
        state.keys.remove(name);
        Ok(())
    }

    /// Notes that `key` was stored in `bucket`.
    pub fn note_put(&self, bucket: &str, key: &str) {
        self.lock()
            .keys
            .entry(bucket.to_string())
            .or_default()
            .insert(key.to_string());
    }

    /// Notes that `key` was deleted from `bucket`.
    pub fn note_delete(&self, bucket: &str, key: &str) {
        if let Some(keys) = self.lock().keys.get_mut(bucket) {
            keys.remove(key);
        }
    }

    /// Keys noted in `bucket`, in S3 (byte) order.
    pub fn noted_keys(&self, bucket: &str) -> Vec<String> {
        self.lock()
            .keys
            .get(bucket)
            .map(|keys| keys.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Up to `limit` noted keys of `bucket` after `after` (all when `None`), starting with
    /// `prefix`, in byte order.
    pub fn keys_after(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Vec<String> {
        use std::ops::Bound;
        let state = self.lock();
        let Some(keys) = state.keys.get(bucket) else {
            return Vec::new();
        };
        let start = match after {
            Some(after) if after >= prefix => Bound::Excluded(after.to_string()),
            _ => Bound::Included(prefix.to_string()),
        };
        keys.range((start, Bound::Unbounded))
            .take_while(|k| k.starts_with(prefix))
            .take(limit)
            .cloned()
            .collect()
    }

    fn persist(&self, buckets: &BTreeMap<String, SystemTime>) -> Result<(), String> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        let mut text = format!("{BUCKETS_TITLE}\n");
        for (name, at) in buckets {
            if self.configured.contains(name) {
                continue;
            }
            text.push_str(&format!("{name} {}\n", ms(*at)));
        }
        let tmp = dir.join(BUCKETS_TMP);
        let path = dir.join(BUCKETS_FILE);
        let write = || -> std::io::Result<()> {
            let mut file = File::create(&tmp)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            fs::rename(&tmp, &path)?;
            File::open(dir)?.sync_all()
        };
        write().map_err(|e| format!("{}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_buckets_survive_reopen_and_configured_ones_always_exist() {
        let dir = tempfile::tempdir().unwrap();
        let configured = vec!["sccache".to_string()];
        let b = Buckets::open(Some(dir.path()), &configured).unwrap();
        assert!(b.exists("sccache"));
        b.create("made").unwrap();
        assert_eq!(b.create("made"), Err(BucketError::Exists));
        b.create("gone").unwrap();
        b.delete("gone").unwrap();
        assert_eq!(b.delete("gone"), Err(BucketError::Missing));
        drop(b);
        let b = Buckets::open(Some(dir.path()), &[]).unwrap();
        let names: Vec<String> = b.list().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, vec!["made".to_string()]);
        fs::write(dir.path().join(BUCKETS_FILE), "garbage\n").unwrap();
        assert!(Buckets::open(Some(dir.path()), &[]).is_err());
    }
}
