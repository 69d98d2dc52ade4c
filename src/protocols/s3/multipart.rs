//! Multipart uploads in progress, shared by every executor.
//!
//! An upload is an entry here (bucket, key, the metadata of the object to be, its parts'
//! sizes and MD5s); each part is a store record in the bucket's parts namespace
//! (`link::parts`), keyed `UPLOAD_ID/PART`. Completing copies the parts, in order, into one
//! object record whose trailer holds the MD5 of the parts' MD5s and the part count (the
//! `md5-N` ETag), then drops the parts. Uploads live in memory: a restart forgets them (a
//! client then gets `NoSuchUpload` and starts over), and their parts age out of the cache.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

use crate::store::Meta;

/// Most uploads in progress at once (S3 has no such limit; this bounds the memory of
/// abandoned ones, ~200 bytes plus 40 bytes per part each).
pub const UPLOADS_MAX: usize = 10_000;

/// Highest part number (S3's limit).
pub const PART_NUMBER_MAX: i32 = 10_000;

/// Smallest part other than the last (S3's limit).
pub const PART_BYTES_MIN: u64 = 5 << 20;

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

/// Every upload in progress, by id.
#[derive(Default)]
pub struct Uploads {
    uploads: Mutex<BTreeMap<String, Upload>>,
    counter: AtomicU64,
}

impl Uploads {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Upload>> {
        self.uploads.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts an upload; `None` when [`UPLOADS_MAX`] are in progress.
    pub fn create(&self, bucket: &str, key: &str, meta: Meta) -> Option<String> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let now = SystemTime::now();
        let seed = format!("{n}/{now:?}/{bucket}/{key}/{}", std::process::id());
        let id = blake3::hash(seed.as_bytes()).to_hex()[..32].to_string();
        let mut uploads = self.lock();
        if uploads.len() >= UPLOADS_MAX {
            return None;
        }
        uploads.insert(
            id.clone(),
            Upload {
                bucket: bucket.into(),
                key: key.into(),
                meta,
                initiated: now,
                parts: BTreeMap::new(),
            },
        );
        Some(id)
    }

    /// The upload `id` of `bucket`/`key`.
    pub fn get(&self, id: &str, bucket: &str, key: &str) -> Option<Upload> {
        self.lock()
            .get(id)
            .filter(|u| u.bucket == bucket && u.key == key)
            .cloned()
    }

    /// Records a stored part; `false` when the upload is gone meanwhile.
    pub fn add_part(&self, id: &str, number: i32, part: PartInfo) -> bool {
        match self.lock().get_mut(id) {
            Some(upload) => {
                upload.parts.insert(number, part);
                true
            }
            None => false,
        }
    }

    /// Ends the upload `id` (completed or aborted).
    pub fn remove(&self, id: &str) -> Option<Upload> {
        self.lock().remove(id)
    }

    /// Uploads of `bucket` whose key starts with `prefix`, by key then id.
    pub fn of_bucket(&self, bucket: &str, prefix: &str) -> Vec<(String, Upload)> {
        let mut list: Vec<(String, Upload)> = self
            .lock()
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
