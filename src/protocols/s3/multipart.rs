//! Multipart uploads in progress, shared by every executor.
//!
//! An upload is an entry here (bucket, key, the metadata of the object to be, its parts'
//! sizes and MD5s); each part is a store record in the bucket's parts namespace
//! (`link::parts`), keyed `UPLOAD_ID/PART`. Completing copies the parts, in order, into one
//! object record whose trailer holds the MD5 of the parts' MD5s and the part count (the
//! `md5-N` ETag), then drops the parts.
//!
//! The table survives restarts: every change is appended to `DATA/s3-uploads` (after the
//! part's record is committed), replayed and compacted at start, and synced like the store's
//! records (each entry under `durability = strict`; under `relaxed` the page cache holds it, so
//! `kill -9` loses nothing, and a power loss may lose the last entries along with the records
//! the store had not synced). A part whose record was evicted meanwhile makes Complete answer
//! `InvalidPart`, as for any missing part.
//!
//! ```text
//! "TS3U" 1u8                                                          header
//! 'C' id8 bucket8 key32 initiated_ms u64 meta32                       created
//! 'P' id8 number i32 size u64 md5 [16] uploaded_ms u64                part stored
//! 'E' id8                                                             completed or aborted
//! (id8: u8 length + bytes; key32, meta32: u32 LE length + bytes; integers little-endian)
//! ```

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::store::config::Durability;
use crate::store::Meta;

/// Most uploads in progress at once (S3 has no such limit; this bounds the memory of
/// abandoned ones, ~200 bytes plus 40 bytes per part each).
pub const UPLOADS_MAX: usize = 10_000;

/// Highest part number (S3's limit).
pub const PART_NUMBER_MAX: i32 = 10_000;

/// Smallest part other than the last (S3's limit).
pub const PART_BYTES_MIN: u64 = 5 << 20;

/// File name of the upload log in the data directory.
pub const UPLOADS_FILE: &str = "s3-uploads";
const UPLOADS_MAGIC: &[u8; 5] = b"TS3U\x01";

/// Longest upload log the server reads at start (10,000 uploads of 10,000 parts each would
/// be ~4 GB; far beyond this, the file is not an upload log of ours).
pub const UPLOADS_LOG_BYTES_MAX: u64 = 1 << 30;

/// One uploaded part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartInfo {
    pub size: u64,
    pub md5: [u8; 16],
    pub uploaded: SystemTime,
}

/// One upload in progress.
#[derive(Clone, Debug)]
pub struct Upload {
    pub bucket: String,
    pub key: String,
    pub meta: Meta,
    pub initiated: SystemTime,
    pub parts: BTreeMap<i32, PartInfo>,
}

#[derive(Default)]
struct Table {
    uploads: BTreeMap<String, Upload>,
    /// The open log (`None`: memory only, or it could not be written).
    log: Option<File>,
    sync_each: bool,
}

/// Every upload in progress, by id.
#[derive(Default)]
pub struct Uploads {
    table: Mutex<Table>,
    counter: AtomicU64,
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn at(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

fn put_short(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(bytes.len() as u8);
    out.extend_from_slice(bytes);
}

fn put_long(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn created_entry(out: &mut Vec<u8>, id: &str, upload: &Upload) {
    out.push(b'C');
    put_short(out, id.as_bytes());
    put_short(out, upload.bucket.as_bytes());
    put_long(out, upload.key.as_bytes());
    out.extend_from_slice(&ms(upload.initiated).to_le_bytes());
    put_long(out, upload.meta.encoded());
}

fn part_entry(out: &mut Vec<u8>, id: &str, number: i32, part: &PartInfo) {
    out.push(b'P');
    put_short(out, id.as_bytes());
    out.extend_from_slice(&number.to_le_bytes());
    out.extend_from_slice(&part.size.to_le_bytes());
    out.extend_from_slice(&part.md5);
    out.extend_from_slice(&ms(part.uploaded).to_le_bytes());
}

/// A reader over a log's bytes; `None` at a torn or malformed tail.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn short(&mut self) -> Option<String> {
        let n = usize::from(self.u8()?);
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
    fn long(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

/// Replays an upload log; a torn or malformed tail ends the replay.
fn replay(bytes: &[u8], uploads: &mut BTreeMap<String, Upload>) {
    let Some(rest) = bytes.strip_prefix(&UPLOADS_MAGIC[..]) else {
        return;
    };
    let mut r = Reader(rest);
    while let Some(op) = r.u8() {
        let applied = (|| -> Option<()> {
            match op {
                b'C' => {
                    let id = r.short()?;
                    let bucket = r.short()?;
                    let key = String::from_utf8(r.long()?.to_vec()).ok()?;
                    let initiated = at(r.u64()?);
                    let meta = Meta::decode(r.long()?).ok()?;
                    uploads.insert(
                        id,
                        Upload {
                            bucket,
                            key,
                            meta,
                            initiated,
                            parts: BTreeMap::new(),
                        },
                    );
                }
                b'P' => {
                    let id = r.short()?;
                    let number = r.u32()? as i32;
                    let size = r.u64()?;
                    let md5: [u8; 16] = r.take(16)?.try_into().ok()?;
                    let uploaded = at(r.u64()?);
                    if let Some(upload) = uploads.get_mut(&id) {
                        upload.parts.insert(
                            number,
                            PartInfo {
                                size,
                                md5,
                                uploaded,
                            },
                        );
                    }
                }
                b'E' => {
                    let id = r.short()?;
                    uploads.remove(&id);
                }
                _ => return None,
            }
            Some(())
        })();
        if applied.is_none() {
            return;
        }
    }
}

impl Uploads {
    /// The uploads logged in `dir` (none: memory only), the log compacted and opened for
    /// appending, synced like the store's records under `durability`.
    pub fn open(dir: Option<&Path>, durability: Durability) -> Result<Uploads, String> {
        let Some(dir) = dir else {
            return Ok(Uploads::default());
        };
        let path = dir.join(UPLOADS_FILE);
        let mut uploads = BTreeMap::new();
        match fs::metadata(&path) {
            Ok(meta) if meta.len() > UPLOADS_LOG_BYTES_MAX => {
                return Err(format!(
                    "{}: {} bytes, more than an upload log holds ({UPLOADS_LOG_BYTES_MAX})",
                    path.display(),
                    meta.len()
                ))
            }
            Ok(_) => {
                let bytes = fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                replay(&bytes, &mut uploads);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{}: {e}", path.display())),
        }
        let compacted = (|| -> std::io::Result<File> {
            let mut bytes = UPLOADS_MAGIC.to_vec();
            for (id, upload) in &uploads {
                created_entry(&mut bytes, id, upload);
                for (number, part) in &upload.parts {
                    part_entry(&mut bytes, id, *number, part);
                }
            }
            crate::store::datadir::replace_file(dir, UPLOADS_FILE, &bytes)?;
            fs::OpenOptions::new().append(true).open(&path)
        })();
        let log = match compacted {
            Ok(file) => Some(file),
            Err(error) => {
                tracing::warn!(%error, path = %path.display(),
                    "cannot rewrite the S3 upload log (is the disk full?); appending to it as it is");
                fs::OpenOptions::new().append(true).open(&path).ok()
            }
        };
        Ok(Uploads {
            table: Mutex::new(Table {
                uploads,
                log,
                sync_each: durability == Durability::Strict,
            }),
            counter: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends `entry` to the log; a failed write stops logging (reported once).
    fn append(table: &mut Table, entry: &[u8]) {
        let sync_each = table.sync_each;
        let Some(file) = table.log.as_mut() else {
            return;
        };
        let written =
            file.write_all(entry)
                .and_then(|()| if sync_each { file.sync_data() } else { Ok(()) });
        if let Err(error) = written {
            tracing::error!(%error, "cannot append to the s3 upload log; uploads started later will not survive a restart");
            table.log = None;
        }
    }

    /// Starts an upload; `None` when [`UPLOADS_MAX`] are in progress.
    pub fn create(&self, bucket: &str, key: &str, meta: Meta) -> Option<String> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let now = SystemTime::now();
        let seed = format!("{n}/{now:?}/{bucket}/{key}/{}", std::process::id());
        let id = blake3::hash(seed.as_bytes()).to_hex()[..32].to_string();
        let mut table = self.lock();
        if table.uploads.len() >= UPLOADS_MAX {
            return None;
        }
        let upload = Upload {
            bucket: bucket.into(),
            key: key.into(),
            meta,
            initiated: now,
            parts: BTreeMap::new(),
        };
        let mut entry = Vec::with_capacity(64 + key.len());
        created_entry(&mut entry, &id, &upload);
        Self::append(&mut table, &entry);
        table.uploads.insert(id.clone(), upload);
        Some(id)
    }

    /// The upload `id` of `bucket`/`key`.
    pub fn get(&self, id: &str, bucket: &str, key: &str) -> Option<Upload> {
        self.lock()
            .uploads
            .get(id)
            .filter(|u| u.bucket == bucket && u.key == key)
            .cloned()
    }

    /// Records a stored part; `false` when the upload is gone meanwhile.
    pub fn add_part(&self, id: &str, number: i32, part: PartInfo) -> bool {
        let mut table = self.lock();
        let Some(upload) = table.uploads.get_mut(id) else {
            return false;
        };
        upload.parts.insert(number, part);
        let mut entry = Vec::with_capacity(64);
        part_entry(&mut entry, id, number, &part);
        Self::append(&mut table, &entry);
        true
    }

    /// Ends the upload `id` (completed or aborted).
    pub fn remove(&self, id: &str) -> Option<Upload> {
        let mut table = self.lock();
        let removed = table.uploads.remove(id)?;
        let mut entry = vec![b'E'];
        put_short(&mut entry, id.as_bytes());
        Self::append(&mut table, &entry);
        Some(removed)
    }

    /// Uploads of `bucket` whose key starts with `prefix`, by key then id.
    pub fn of_bucket(&self, bucket: &str, prefix: &str) -> Vec<(String, Upload)> {
        let mut list: Vec<(String, Upload)> = self
            .lock()
            .uploads
            .iter()
            .filter(|(_, u)| u.bucket == bucket && u.key.starts_with(prefix))
            .map(|(id, u)| (id.clone(), u.clone()))
            .collect();
        list.sort_by(|a, b| (&a.1.key, &a.0).cmp(&(&b.1.key, &b.0)));
        list
    }
}

/// The store key of part `number` of upload `id`.
pub fn part_key(id: &str, number: i32) -> String {
    format!("{id}/{number:05}")
}

/// MD5 of the parts' MD5s (the `md5-N` ETag's hash).
pub fn combined_md5(md5s: &[[u8; 16]]) -> [u8; 16] {
    use md5::{Digest, Md5};
    let mut hasher = Md5::new();
    for m in md5s {
        hasher.update(m);
    }
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_are_per_bucket_and_key_and_end_once() {
        let uploads = Uploads::default();
        let a = uploads.create("b", "k", Meta::new()).unwrap();
        let b = uploads.create("b", "k", Meta::new()).unwrap();
        assert_ne!(a, b);
        assert!(uploads.get(&a, "b", "other").is_none());
        let part = PartInfo {
            size: 1,
            md5: [1; 16],
            uploaded: SystemTime::now(),
        };
        assert!(uploads.add_part(&a, 2, part));
        assert_eq!(uploads.get(&a, "b", "k").unwrap().parts.len(), 1);
        assert_eq!(uploads.of_bucket("b", "").len(), 2);
        assert!(uploads.remove(&a).is_some());
        assert!(uploads.remove(&a).is_none());
        assert!(!uploads.add_part(&a, 3, part));
    }

    #[test]
    fn uploads_survive_a_reopen_and_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let part = PartInfo {
            size: 7,
            md5: [9; 16],
            uploaded: at(1_700_000_000_123),
        };
        let (kept, ended) = {
            let uploads = Uploads::open(Some(dir.path()), Durability::Relaxed).unwrap();
            let mut meta = Meta::new();
            meta.push("content-type", b"text/plain").unwrap();
            let kept = uploads.create("b", "dir/key", meta).unwrap();
            let ended = uploads.create("b", "other", Meta::new()).unwrap();
            assert!(uploads.add_part(&kept, 3, part));
            assert!(uploads.remove(&ended).is_some());
            (kept, ended)
        };
        // A torn entry at the end is dropped with nothing after it.
        let path = dir.path().join(UPLOADS_FILE);
        let mut bytes = fs::read(&path).unwrap();
        bytes.extend_from_slice(b"P\x20abc");
        fs::write(&path, bytes).unwrap();
        let uploads = Uploads::open(Some(dir.path()), Durability::Strict).unwrap();
        let upload = uploads
            .get(&kept, "b", "dir/key")
            .expect("kept across the reopen");
        assert_eq!(upload.parts.get(&3), Some(&part));
        assert_eq!(upload.meta.get("content-type"), Some(&b"text/plain"[..]));
        assert!(uploads.get(&ended, "b", "other").is_none());
        assert!(uploads.remove(&kept).is_some());
        drop(uploads);
        let uploads = Uploads::open(Some(dir.path()), Durability::Relaxed).unwrap();
        assert!(uploads.of_bucket("b", "").is_empty());
    }

    #[test]
    fn multipart_etag_hash_is_md5_of_the_part_md5s() {
        use md5::{Digest, Md5};
        let p1: [u8; 16] = Md5::digest(b"part one").into();
        let p2: [u8; 16] = Md5::digest(b"part two").into();
        let mut joined = p1.to_vec();
        joined.extend_from_slice(&p2);
        let expected: [u8; 16] = Md5::digest(&joined).into();
        assert_eq!(combined_md5(&[p1, p2]), expected);
    }
}
