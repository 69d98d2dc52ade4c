//! Helpers shared by the store tests.

use std::path::Path;
use std::time::Duration;

use tessera::store::{
    ContentDigest, DataDir, DigestFunction, Key, KeyId, Kind, Meta, PutRequest, Reserved, Shard,
    StoreConfig, StoreError,
};

/// Small segments so that rollover, single segments and eviction happen with little data.
pub const TEST_SEGMENT_BYTES: u64 = 16 * 1024;

pub fn config(dir: &Path, shards: u32) -> StoreConfig {
    let mut cfg = StoreConfig::new(dir, shards);
    cfg.segment_bytes = TEST_SEGMENT_BYTES;
    cfg.max_size_bytes = 1024 * TEST_SEGMENT_BYTES * u64::from(shards);
    cfg.max_blob_bytes = 1 << 20;
    cfg.sync_interval = Duration::ZERO;
    cfg.checkpoint_interval = Duration::ZERO;
    cfg
}

pub fn open(cfg: &StoreConfig) -> Shard {
    DataDir::open(cfg).unwrap();
    Shard::open(cfg, 0).unwrap()
}

pub fn key(kind: Kind, name: &[u8]) -> KeyId {
    Key {
        namespace: "test",
        kind,
        name,
    }
    .id()
}

/// Deterministic bytes that are never all zero.
pub fn body(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng(seed ^ 0x9e37_79b9_7f4a_7c15);
    (0..len).map(|_| (rng.next() as u8) | 1).collect()
}

/// Reserve, write in chunks (on another thread when `threaded`), commit.
pub fn put_with(
    shard: &mut Shard,
    id: KeyId,
    kind: Kind,
    bytes: &[u8],
    meta: Meta,
    threaded: bool,
) -> Result<bool, StoreError> {
    let expect = (kind == Kind::Cas).then(|| ContentDigest::of(DigestFunction::Sha256, bytes));
    let request = PutRequest {
        id,
        kind,
        body_len: bytes.len() as u64,
        meta,
        expect,
        if_absent: false,
    };
    let mut reservation = match shard.reserve(request)? {
        Reserved::Exists => return Ok(false),
        Reserved::Reservation(reservation) => reservation,
    };
    if threaded {
        let owned = bytes.to_vec();
        reservation = std::thread::spawn(move || {
            for chunk in owned.chunks(1000) {
                reservation.write(chunk).unwrap();
            }
            reservation
        })
        .join()
        .unwrap();
    } else {
        for chunk in bytes.chunks(777) {
            reservation.write(chunk)?;
        }
    }
    shard.commit(reservation)?;
    Ok(true)
}

pub fn put(shard: &mut Shard, id: KeyId, kind: Kind, bytes: &[u8]) -> Result<bool, StoreError> {
    put_with(shard, id, kind, bytes, Meta::new(), false)
}

/// The body stored under `id`, if any.
pub fn get(shard: &mut Shard, id: &KeyId) -> Option<Vec<u8>> {
    shard
        .lookup(id)
        .unwrap()
        .map(|handle| handle.body().to_vec())
}

/// splitmix64: a small deterministic generator for the randomized tests.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The newest segment file of shard 0 and its bytes.
pub fn newest_segment(data: &Path) -> std::path::PathBuf {
    let shard = data.join("shard-0");
    let mut names: Vec<_> = std::fs::read_dir(&shard)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("seg-"))
        .collect();
    names.sort();
    shard.join(names.last().expect("a segment"))
}

/// Records of a segment file: (offset, record_bytes, key id, committed).
pub fn records_of(path: &Path) -> Vec<(u64, u64, KeyId, bool)> {
    use tessera::store::record::State;
    use tessera::store::scan::{Scanner, Step};
    let bytes = std::fs::read(path).unwrap();
    Scanner::new(&bytes, 0)
        .filter_map(|step| match step {
            Step::Record {
                offset,
                frame,
                layout,
                state,
            } => Some((
                offset,
                layout.record_bytes,
                frame.key_id,
                matches!(state, Ok(State::Committed(_))),
            )),
            _ => None,
        })
        .collect()
}

/// Copies a data directory (files one level deep in each shard).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else if entry.file_name() != "LOCK" {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// XORs `mask` into the byte at `offset` of `path`.
pub fn flip(path: &Path, offset: u64, mask: u8) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, offset).unwrap();
    byte[0] ^= mask;
    file.write_all_at(&byte, offset).unwrap();
}

/// Overwrites `[from, to)` of `path` with zeros.
pub fn zero(path: &Path, from: u64, to: u64) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(&vec![0u8; (to - from) as usize], from)
        .unwrap();
}
