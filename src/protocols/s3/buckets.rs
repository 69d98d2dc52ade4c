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
//!
//! The keys of each bucket (what listings walk) are kept in `DATA/s3-keys`, a log appended on
//! every put and delete and compacted at start, so a restart lists what was written before it
//! without reading a single record:
//!
//! ```text
//! "TS3K" 1u8                                       header
//! op u8 ('+' put, '-' delete, 'D' bucket dropped) | bucket len u8 | bucket | key len u32 LE | key
//! ```
//!
//! A key is logged *before* its object is committed (write-ahead): a logged key whose object
//! never arrived, was evicted or was deleted is harmless, because a listing checks every key in
//! the store and skips (and forgets) the missing ones. The log follows the store's durability
//! ([`Buckets::follow_durability`]):
//!
//! - `kill -9`: every entry was written (to the page cache) before the commit, so listings after
//!   the restart show every object that is served.
//! - `durability = strict`: the entry is `fdatasync`ed before the commit, whose record is then
//!   synced: after a power loss every acknowledged object is served *and* listed.
//! - `durability = relaxed`: a thread `fdatasync`s the log every `sync_interval / 2` when it
//!   changed. A power loss loses what the store had not synced (up to `sync_interval` of
//!   acknowledged writes); within that window an object whose record the store synced just
//!   before the log's sync is served by key but not listed until it is written again.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::s3::is_bucket_name;
use crate::store::config::Durability;

/// File name of the registry in the data directory.
pub const BUCKETS_FILE: &str = "s3-buckets";
const BUCKETS_TITLE: &str = "tessera s3 buckets 1";

/// Most buckets (configured and created): S3 allows 10,000 per account by default.
pub const BUCKETS_MAX: usize = 10_000;

/// File name of the key log in the data directory.
pub const KEYS_FILE: &str = "s3-keys";
const KEYS_MAGIC: &[u8; 5] = b"TS3K\x01";

/// Longest key the log records (S3 keys are at most 1024 bytes; longer ones are refused
/// before they are stored).
pub const KEY_BYTES_MAX: usize = 1024;

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
    /// The open key log (`None`: in memory only, or the log could not be written).
    log: Option<File>,
    /// `durability = strict`: sync each entry as it is appended.
    sync_each: bool,
}

/// How often the relaxed-durability sync thread looks at the key log, as a fraction of
/// `sync_interval` (it syncs when the log changed).
pub const KEY_LOG_SYNCS_PER_INTERVAL: u32 = 2;

/// The key log's sync thread never wakes more often than this, however small `sync_interval`.
pub const KEY_LOG_SYNC_PERIOD_MIN: Duration = Duration::from_millis(10);

/// Appends one key-log entry to `out`.
fn log_entry(out: &mut Vec<u8>, op: u8, bucket: &str, key: &str) {
    out.push(op);
    out.push(bucket.len() as u8);
    out.extend_from_slice(bucket.as_bytes());
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(key.as_bytes());
}

/// Replays a key log; a torn or malformed tail ends the replay (its entries are lost).
fn replay(bytes: &[u8], keys: &mut BTreeMap<String, BTreeSet<String>>) {
    let Some(mut rest) = bytes.strip_prefix(&KEYS_MAGIC[..]) else {
        return;
    };
    loop {
        let Some((&op, after)) = rest.split_first() else {
            return;
        };
        let Some((&blen, after)) = after.split_first() else {
            return;
        };
        let blen = usize::from(blen);
        if after.len() < blen + 4 {
            return;
        }
        let (bucket, after) = after.split_at(blen);
        let klen = u32::from_le_bytes(after[..4].try_into().expect("4 bytes")) as usize;
        let after = &after[4..];
        if klen > KEY_BYTES_MAX || after.len() < klen {
            return;
        }
        let (key, after) = after.split_at(klen);
        let (Ok(bucket), Ok(key)) = (std::str::from_utf8(bucket), std::str::from_utf8(key)) else {
            return;
        };
        match op {
            b'+' => {
                keys.entry(bucket.to_string())
                    .or_default()
                    .insert(key.to_string());
            }
            b'-' => {
                if let Some(set) = keys.get_mut(bucket) {
                    set.remove(key);
                }
            }
            b'D' => {
                keys.remove(bucket);
            }
            _ => return,
        }
        rest = after;
    }
}

/// Rewrites the key log of `dir` from `keys` (atomically) and opens it for appending.
fn compact_log(dir: &Path, keys: &BTreeMap<String, BTreeSet<String>>) -> std::io::Result<File> {
    let mut bytes = KEYS_MAGIC.to_vec();
    for (bucket, set) in keys {
        for key in set {
            log_entry(&mut bytes, b'+', bucket, key);
        }
    }
    let path = crate::store::datadir::replace_file(dir, KEYS_FILE, &bytes)?;
    fs::OpenOptions::new().append(true).open(&path)
}

/// The registry.
pub struct Buckets {
    /// `None`: in memory only (tests).
    dir: Option<PathBuf>,
    /// Buckets named by the configuration.
    configured: BTreeSet<String>,
    state: Mutex<State>,
    /// Set by every append; the relaxed sync thread clears it and syncs.
    log_dirty: Arc<AtomicBool>,
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
        let mut keys = BTreeMap::new();
        let mut log = None;
        if let Some(dir) = dir {
            let path = dir.join(KEYS_FILE);
            match fs::read(&path) {
                Ok(bytes) => replay(&bytes, &mut keys),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("{}: {e}", path.display())),
            }
            keys.retain(|bucket, _| buckets.contains_key(bucket));
            log = match compact_log(dir, &keys) {
                Ok(file) => Some(file),
                // A full disk must not stop the server (issue "A full disk is a budget"): keep
                // appending to the log as it is, or, with none yet, keep the keys in memory.
                Err(error) => {
                    tracing::warn!(
                        %error,
                        path = %path.display(),
                        "cannot rewrite the S3 key log (is the disk full?); appending to it as it is"
                    );
                    fs::OpenOptions::new().append(true).open(&path).ok()
                }
            };
        }
        Ok(Buckets {
            dir: dir.map(Path::to_path_buf),
            configured: configured.iter().cloned().collect(),
            state: Mutex::new(State {
                buckets,
                keys,
                log,
                sync_each: false,
            }),
            log_dirty: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Makes the key log as durable as the store's records: synced with each entry under
    /// `Strict`; under `Relaxed`, by a thread every `sync_interval / 2` when it changed (the
    /// thread ends with the registry).
    pub fn follow_durability(&self, durability: Durability, sync_interval: Duration) {
        let mut state = self.lock();
        let Some(file) = state.log.as_ref() else {
            return;
        };
        if durability == Durability::Strict {
            state.sync_each = true;
            return;
        }
        let Ok(file) = file.try_clone() else {
            tracing::warn!("cannot share the s3 key log with its sync thread; it is not synced");
            return;
        };
        let dirty = Arc::downgrade(&self.log_dirty);
        let period = (sync_interval / KEY_LOG_SYNCS_PER_INTERVAL).max(KEY_LOG_SYNC_PERIOD_MIN);
        let spawned = std::thread::Builder::new()
            .name("tessera-s3-keysync".into())
            .spawn(move || loop {
                std::thread::sleep(period);
                let Some(dirty) = dirty.upgrade() else {
                    return;
                };
                if dirty.swap(false, Ordering::AcqRel) {
                    if let Err(error) = file.sync_data() {
                        tracing::error!(%error, "cannot sync the s3 key log");
                    }
                }
            });
        if let Err(error) = spawned {
            tracing::warn!(%error, "cannot start the s3 key log's sync thread; it is not synced");
        }
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
        self.append(&mut state, b'D', name, "");
        Ok(())
    }

    /// Appends one entry to the key log; a failed write stops logging (listings after a
    /// restart then miss later keys) and is reported once.
    fn append(&self, state: &mut State, op: u8, bucket: &str, key: &str) {
        let sync_each = state.sync_each;
        let Some(file) = state.log.as_mut() else {
            return;
        };
        let mut entry = Vec::with_capacity(6 + bucket.len() + key.len());
        log_entry(&mut entry, op, bucket, key);
        let written = file.write_all(&entry).and_then(|()| {
            if sync_each {
                file.sync_data()
            } else {
                self.log_dirty.store(true, Ordering::Release);
                Ok(())
            }
        });
        if let Err(error) = written {
            tracing::error!(%error, "cannot append to the s3 key log; listings after a restart will miss later keys");
            state.log = None;
        }
    }

    /// Notes that `key` is being stored in `bucket`: call it before the commit (write-ahead).
    pub fn note_put(&self, bucket: &str, key: &str) {
        if key.len() > KEY_BYTES_MAX || bucket.len() > usize::from(u8::MAX) {
            return;
        }
        let mut state = self.lock();
        let added = state
            .keys
            .entry(bucket.to_string())
            .or_default()
            .insert(key.to_string());
        if added {
            self.append(&mut state, b'+', bucket, key);
        }
    }

    /// Notes that `key` was deleted from `bucket`.
    pub fn note_delete(&self, bucket: &str, key: &str) {
        let mut state = self.lock();
        let removed = state
            .keys
            .get_mut(bucket)
            .is_some_and(|keys| keys.remove(key));
        if removed {
            self.append(&mut state, b'-', bucket, key);
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
        crate::store::datadir::replace_file(dir, BUCKETS_FILE, text.as_bytes())
            .map(drop)
            .map_err(|e| format!("{}: {e}", dir.join(BUCKETS_FILE).display()))
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

    #[test]
    fn noted_keys_survive_reopen_and_a_torn_log_tail() {
        let dir = tempfile::tempdir().unwrap();
        let configured = vec!["bkt".to_string(), "other".to_string()];
        let b = Buckets::open(Some(dir.path()), &configured).unwrap();
        for key in ["b", "a", "c/ü\n"] {
            b.note_put("bkt", key);
        }
        b.note_put("other", "x");
        b.note_delete("bkt", "b");
        drop(b);
        let b = Buckets::open(Some(dir.path()), &configured).unwrap();
        assert_eq!(
            b.noted_keys("bkt"),
            vec!["a".to_string(), "c/ü\n".to_string()]
        );
        assert_eq!(b.noted_keys("other"), vec!["x".to_string()]);
        b.note_put("bkt", "d");
        drop(b);
        // A crash in the middle of an entry: the entries before it survive.
        let path = dir.path().join(KEYS_FILE);
        let mut bytes = fs::read(&path).unwrap();
        bytes.truncate(bytes.len() - 1);
        fs::write(&path, &bytes).unwrap();
        let b = Buckets::open(Some(dir.path()), &configured).unwrap();
        assert_eq!(
            b.noted_keys("bkt"),
            vec!["a".to_string(), "c/ü\n".to_string()]
        );
        // A dropped bucket's keys are gone for good.
        let b2 = Buckets::open(Some(dir.path()), &["other".to_string()]).unwrap();
        drop(b);
        assert!(b2.noted_keys("bkt").is_empty());
    }
}
