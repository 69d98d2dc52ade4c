//! The store on a real, full filesystem (a loop-mounted ext4 of the test's own, see
//! `tests/common/loop_fs.rs`; skipped with the reason when this machine cannot mount one):
//! ENOSPC is `NoSpace`, never `Io`; a segment whose creation failed leaves nothing behind; the
//! shard evicts to make room or refuses; checkpoints survive a full disk.

use std::path::Path;

use tessera::store::checkpoint::{CHECKPOINT_SPARE, CHECKPOINT_TMP};
use tessera::store::segment::{segment_file_name, Segment, SegmentHeader};
use tessera::store::{DataDir, Kind, Shard, StoreConfig, StoreError};

use crate::common::*;
use crate::loop_fs::LoopFs;

/// Filesystem size of these tests: room for ~100 segments, quick to fill.
const FS_BYTES: u64 = 128 << 20;

/// Segment size of these tests: 1 MiB.
const SEGMENT_BYTES: u64 = 1 << 20;

/// A blob that takes a segment of its own: two do not fit in one segment.
const BLOB_BYTES: usize = 900_000;

fn config(dir: &Path) -> StoreConfig {
    let mut cfg = StoreConfig::new(dir, 1);
    cfg.segment_bytes = SEGMENT_BYTES;
    // Far beyond the filesystem: the filesystem sets the budget.
    cfg.max_size_bytes = 1 << 30;
    cfg.max_blob_bytes = 8 << 20;
    cfg
}

fn open_on(fs: &LoopFs) -> (StoreConfig, Shard) {
    let cfg = config(&fs.path().join("data"));
    DataDir::open(&cfg).unwrap();
    let shard = Shard::open(&cfg, 0).unwrap();
    (cfg, shard)
}

/// A probe that reports far more room than the filesystem has, so that the real `fallocate`
/// is what refuses.
fn plenty_of_room(_: &Path) -> Result<u64, StoreError> {
    Ok(1 << 40)
}

/// Names in the shard directory other than its segments, checkpoint, spare and lock.
fn unexpected_files(shard_dir: &Path) -> Vec<String> {
    std::fs::read_dir(shard_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| {
            !(n.starts_with("seg-") || n == "LOCK" || n == "index.ckpt" || n == CHECKPOINT_SPARE)
        })
        .collect()
}

fn segment_files(shard_dir: &Path) -> usize {
    std::fs::read_dir(shard_dir)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().starts_with("seg-")
        })
        .count()
}

fn put_blob(shard: &mut Shard, i: u64) -> Result<bool, StoreError> {
    put(
        shard,
        key(Kind::Blob, &i.to_le_bytes()),
        Kind::Blob,
        &body(i, BLOB_BYTES),
    )
}

fn stored(shard: &mut Shard, i: u64) -> bool {
    match get(shard, &key(Kind::Blob, &i.to_le_bytes())) {
        Some(bytes) => {
            assert_eq!(bytes, body(i, BLOB_BYTES), "blob {i} is byte-exact");
            true
        }
        None => false,
    }
}

#[test]
fn a_segment_that_cannot_be_created_on_a_full_disk_leaves_no_file_and_its_name_works_later() {
    let Some(fs) = LoopFs::mount("segment_creation_on_a_full_disk", FS_BYTES) else {
        return;
    };
    let dir = fs.path().join("segments");
    std::fs::create_dir(&dir).unwrap();
    let header = SegmentHeader {
        flags: 0,
        shard: 0,
        seq: 7,
        capacity: 16 << 20,
        created_ms: 0,
    };
    fs.fill();
    for attempt in 0..3 {
        match Segment::create(&dir, header) {
            Err(StoreError::NoSpace { needed, .. }) => assert_eq!(needed, 16 << 20),
            other => panic!("attempt {attempt}: {other:?}"),
        }
        assert!(
            !dir.join(segment_file_name(7)).exists(),
            "attempt {attempt}: the half-made segment was removed"
        );
    }
    fs.unfill();
    let segment = Segment::create(&dir, header).expect("the same name, once there is room");
    assert_eq!(segment.capacity(), 16 << 20);
}

#[test]
fn enospc_while_creating_a_segment_evicts_the_oldest_and_retries_then_refuses() {
    let Some(fs) = LoopFs::mount("enospc_evicts_and_retries", FS_BYTES) else {
        return;
    };
    let (cfg, mut shard) = open_on(&fs);
    // The shard believes in room; only the filesystem's ENOSPC can stop it.
    shard.set_free_space_probe(plenty_of_room);
    for i in 0..6 {
        assert!(put_blob(&mut shard, i).unwrap());
    }
    let before = shard.stats();
    assert_eq!(before.segments, 6);
    fs.fill();

    assert!(put_blob(&mut shard, 6).expect("room made by evicting the oldest segment"));
    let after = shard.stats();
    assert!(after.filesystem_full >= 1, "{after:?}");
    assert!(
        after.evicted_segments > before.evicted_segments,
        "{after:?}"
    );
    assert!(!stored(&mut shard, 0), "the oldest blob made room");
    assert!(stored(&mut shard, 6) && stored(&mut shard, 5));
    let shard_dir = cfg.dir.join("shard-0");
    assert_eq!(
        segment_files(&shard_dir) as u64,
        after.segments,
        "no leftover segment"
    );
    assert!(
        unexpected_files(&shard_dir).is_empty(),
        "{:?}",
        unexpected_files(&shard_dir)
    );
    drop(shard);

    // A shard with nothing to evict on a full disk: NoSpace (not Io), nothing left behind.
    fs.unfill();
    let empty_cfg = config(&fs.path().join("empty"));
    DataDir::open(&empty_cfg).unwrap();
    let mut empty = Shard::open(&empty_cfg, 0).unwrap();
    empty.set_free_space_probe(plenty_of_room);
    fs.fill();
    for attempt in 0..3 {
        match put_blob(&mut empty, 100) {
            Err(StoreError::NoSpace { .. }) => {}
            other => panic!("attempt {attempt}: {other:?}"),
        }
    }
    let stats = empty.stats();
    assert_eq!((stats.no_space, stats.segments), (3, 0), "{stats:?}");
    assert!(stats.degraded, "{stats:?}");
    let empty_dir = empty_cfg.dir.join("shard-0");
    assert_eq!(segment_files(&empty_dir), 0, "no half-made segment");

    // Space comes back: the next put works, without reopening the shard.
    fs.unfill();
    assert!(put_blob(&mut empty, 100).unwrap());
    assert!(stored(&mut empty, 100));
    assert!(!empty.stats().degraded);
}

#[test]
fn a_full_filesystem_is_a_smaller_budget_that_evicts_or_refuses_and_reads_go_on() {
    let Some(fs) = LoopFs::mount("full_filesystem_budget", FS_BYTES) else {
        return;
    };
    let (_cfg, mut shard) = open_on(&fs);
    assert_eq!(shard.stats().effective_budget_bytes, {
        let available = fs.available_bytes();
        available - tessera::store::limits::DISK_RESERVE_BYTES
    });
    for i in 0..10 {
        assert!(put_blob(&mut shard, i).unwrap());
    }
    fs.fill();
    shard.maintenance().unwrap();
    let full = shard.stats();
    assert!(
        full.effective_budget_bytes < full.bytes_used,
        "a full filesystem shrinks the budget below what is stored: {full:?}"
    );
    assert!(!full.degraded, "it can still evict: {full:?}");

    // A blob that even evicting everything could not make room for: refused, nothing evicted.
    let huge = body(50, 8 << 20);
    let huge_id = key(Kind::Blob, b"huge");
    match put(&mut shard, huge_id, Kind::Blob, &huge) {
        Err(StoreError::NoSpace { .. }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(shard.stats().evicted_segments, full.evicted_segments);
    for i in 0..10 {
        assert!(
            stored(&mut shard, i),
            "blob {i} still reads after a refusal"
        );
    }

    // A blob that fits once the oldest segments go: they go, the newest stay.
    assert!(put_blob(&mut shard, 10).unwrap());
    let after = shard.stats();
    assert!(after.evicted_segments > full.evicted_segments, "{after:?}");
    assert!(!stored(&mut shard, 0));
    assert!(stored(&mut shard, 9) && stored(&mut shard, 10));
    assert!(
        after.bytes_used <= after.effective_budget_bytes,
        "{after:?}"
    );
}

#[test]
fn a_checkpoint_on_a_full_disk_uses_its_spare_and_without_one_fails_cleanly() {
    let Some(fs) = LoopFs::mount("checkpoint_on_a_full_disk", FS_BYTES) else {
        return;
    };
    let (cfg, mut shard) = open_on(&fs);
    let shard_dir = cfg.dir.join("shard-0");
    let small = |i: u64| (key(Kind::Blob, &(1000 + i).to_le_bytes()), body(i, 1000));
    for i in 0..5 {
        let (id, bytes) = small(i);
        put(&mut shard, id, Kind::Blob, &bytes).unwrap();
    }
    shard.checkpoint_now().unwrap();
    assert!(
        shard_dir.join(CHECKPOINT_SPARE).exists(),
        "a spare after a checkpoint"
    );

    fs.fill();
    // Small puts still fit the active segment; the checkpoint goes into the spare's blocks.
    for i in 5..10 {
        let (id, bytes) = small(i);
        put(&mut shard, id, Kind::Blob, &bytes).unwrap();
    }
    shard
        .checkpoint_now()
        .expect("the spare holds the checkpoint");
    assert!(!shard_dir.join(CHECKPOINT_TMP).exists());

    // No spare left: the checkpoint in its place freed the spare's unused tail, which may have
    // been enough for a new one; take it away and fill what it freed. The next checkpoint is
    // refused as NoSpace and leaves no temporary file.
    let _ = std::fs::remove_file(shard_dir.join(CHECKPOINT_SPARE));
    fs.fill();
    for i in 10..15 {
        let (id, bytes) = small(i);
        put(&mut shard, id, Kind::Blob, &bytes).unwrap();
    }
    match shard.checkpoint_now() {
        Err(StoreError::NoSpace { .. }) => {}
        other => panic!("{other:?}"),
    }
    assert!(
        unexpected_files(&shard_dir).is_empty(),
        "{:?}",
        unexpected_files(&shard_dir)
    );
    match shard.close() {
        Err(StoreError::NoSpace { .. }) => {}
        other => panic!("{other:?}"),
    }
    assert!(
        unexpected_files(&shard_dir).is_empty(),
        "{:?}",
        unexpected_files(&shard_dir)
    );

    // Reopened on the still full disk: the checkpoint plus a replay of the tail has it all.
    let mut reopened = Shard::open(&cfg, 0).unwrap();
    assert!(reopened.stats().recovery.checkpoint_loaded);
    for i in 0..15 {
        let (id, bytes) = small(i);
        assert_eq!(
            get(&mut reopened, &id),
            Some(bytes),
            "blob {i} after reopen"
        );
    }
}
