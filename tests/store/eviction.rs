//! Eviction under the per-shard budget.

use tessera::store::{Kind, Meta, PutRequest, Reserved, Shard, StoreConfig, StoreError};

use crate::common::*;

fn small_budget(dir: &std::path::Path, segments: u64) -> StoreConfig {
    let mut cfg = config(dir, 1);
    cfg.max_size_bytes = segments * TEST_SEGMENT_BYTES;
    cfg
}

#[test]
fn budget_is_never_exceeded_and_the_oldest_data_goes_first() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = small_budget(tmp.path(), 6);
    let mut shard = open(&cfg);
    let mut rng = Rng(7);
    let ids: Vec<_> = (0..300u32)
        .map(|i| key(Kind::Blob, &i.to_le_bytes()))
        .collect();
    for (i, id) in ids.iter().enumerate() {
        let len = 500 + rng.below(1500) as usize;
        put(&mut shard, *id, Kind::Blob, &body(i as u64, len)).unwrap();
        let stats = shard.stats();
        assert!(
            stats.bytes_used <= stats.budget_bytes,
            "{} > {}",
            stats.bytes_used,
            stats.budget_bytes
        );
    }
    let stats = shard.stats();
    assert!(stats.evicted_segments >= 10, "{stats:?}");
    let present: Vec<bool> = ids
        .iter()
        .map(|id| shard.peek(id).unwrap().is_some())
        .collect();
    assert!(!present[0] && !present[50], "old keys were evicted");
    assert!(present[299] && present[290], "new keys are kept");
    let first_present = present.iter().position(|&p| p).unwrap();
    assert!(
        present[first_present..].iter().all(|&p| p),
        "eviction is in log order"
    );
    assert_eq!(
        stats.objects as usize,
        present.iter().filter(|&&p| p).count()
    );
    drop(shard);
    let mut shard = Shard::open(&cfg, 0).unwrap();
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(
            shard.peek(id).unwrap().is_some(),
            present[i],
            "key {i} after reopen"
        );
    }
}

#[test]
fn recently_read_blobs_survive_a_flood_that_evicts_unread_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let mut shard = open(&small_budget(tmp.path(), 8));
    let hot: Vec<_> = (0..6u32)
        .map(|i| {
            (
                key(Kind::Blob, format!("hot{i}").as_bytes()),
                body(u64::from(i), 900),
            )
        })
        .collect();
    let cold: Vec<_> = (0..6u32)
        .map(|i| {
            (
                key(Kind::Blob, format!("cold{i}").as_bytes()),
                body(100 + u64::from(i), 900),
            )
        })
        .collect();
    for (id, bytes) in hot.iter().chain(&cold) {
        put(&mut shard, *id, Kind::Blob, bytes).unwrap();
    }
    for i in 0..600u32 {
        put(
            &mut shard,
            key(Kind::Blob, &i.to_le_bytes()),
            Kind::Blob,
            &body(u64::from(i) + 1000, 1000),
        )
        .unwrap();
        if i % 10 == 0 {
            for (id, bytes) in &hot {
                assert_eq!(
                    get(&mut shard, id).as_ref(),
                    Some(bytes),
                    "hot blob lost after {i} writes"
                );
            }
        }
    }
    let stats = shard.stats();
    assert!(
        stats.evicted_segments > 20 && stats.copied_forward > 0,
        "{stats:?}"
    );
    for (id, bytes) in &hot {
        assert_eq!(get(&mut shard, id).as_ref(), Some(bytes));
    }
    for (id, _) in &cold {
        assert!(
            shard.peek(id).unwrap().is_none(),
            "unread blobs are evicted"
        );
    }
}

#[test]
fn no_space_while_a_reservation_pins_the_oldest_segment_and_reads_go_on() {
    let tmp = tempfile::tempdir().unwrap();
    let mut shard = open(&small_budget(tmp.path(), 2));
    let kept = key(Kind::Blob, b"kept");
    put(&mut shard, kept, Kind::Blob, b"readable throughout").unwrap();
    let slow = key(Kind::Blob, b"slow upload");
    let request = PutRequest {
        id: slow,
        kind: Kind::Blob,
        body_len: 1000,
        meta: Meta::new(),
        expect: None,
        if_absent: false,
    };
    let Reserved::Reservation(mut upload) = shard.reserve(request).unwrap() else {
        panic!()
    };
    let mut refused = None;
    for i in 0..100u32 {
        match put(
            &mut shard,
            key(Kind::Blob, &i.to_le_bytes()),
            Kind::Blob,
            &body(u64::from(i), 1500),
        ) {
            Ok(_) => {}
            Err(error) => {
                refused = Some(error);
                break;
            }
        }
    }
    assert!(
        matches!(refused, Some(StoreError::NoSpace { .. })),
        "{refused:?}"
    );
    assert_eq!(get(&mut shard, &kept).unwrap(), b"readable throughout");
    assert_eq!(shard.stats().no_space, 1);
    upload.write(&body(9, 1000)).unwrap();
    shard.commit(upload).unwrap();
    assert_eq!(get(&mut shard, &slow).unwrap(), body(9, 1000));
    put(
        &mut shard,
        key(Kind::Blob, b"after"),
        Kind::Blob,
        &body(1, 1500),
    )
    .unwrap();
    assert!(shard.stats().bytes_used <= shard.stats().budget_bytes);
}

#[test]
fn an_evicted_segment_stays_mapped_for_its_reader() {
    let tmp = tempfile::tempdir().unwrap();
    let mut shard = open(&small_budget(tmp.path(), 3));
    let id = key(Kind::Blob, b"held");
    put(&mut shard, id, Kind::Blob, &body(5, 3000)).unwrap();
    let handle = shard.lookup(&id).unwrap().unwrap();
    let path = tmp
        .path()
        .join("shard-0")
        .join(format!("seg-{:016x}.log", handle.segment_seq()));
    for i in 0..40u32 {
        put(
            &mut shard,
            key(Kind::Blob, &i.to_le_bytes()),
            Kind::Blob,
            &body(u64::from(i), 2000),
        )
        .unwrap();
    }
    assert!(!path.exists(), "the segment was evicted and unlinked");
    assert!(shard.lookup(&id).unwrap().is_none());
    assert_eq!(
        handle.body(),
        &body(5, 3000)[..],
        "the reader still sees its bytes"
    );
}

#[test]
fn a_blob_larger_than_the_budget_is_no_space_not_a_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let mut shard: Shard = open(&small_budget(tmp.path(), 2));
    let request = PutRequest {
        id: key(Kind::Blob, b"big"),
        kind: Kind::Blob,
        body_len: 3 * TEST_SEGMENT_BYTES,
        meta: Meta::new(),
        expect: None,
        if_absent: false,
    };
    assert!(matches!(
        shard.reserve(request),
        Err(StoreError::NoSpace { .. })
    ));
    put(&mut shard, key(Kind::Blob, b"small"), Kind::Blob, b"fine").unwrap();
}

#[test]
fn reads_are_not_copied_forward_while_the_shard_is_far_from_its_budget() {
    let tmp = tempfile::tempdir().unwrap();
    let mut shard = open(&small_budget(tmp.path(), 40));
    let ids: Vec<_> = (0..60u32)
        .map(|i| key(Kind::Blob, &i.to_le_bytes()))
        .collect();
    for (i, id) in ids.iter().enumerate() {
        put(&mut shard, *id, Kind::Blob, &body(i as u64, 2000)).unwrap();
    }
    assert!(shard.stats().segments >= 8);
    for id in &ids {
        assert!(get(&mut shard, id).is_some());
    }
    assert_eq!(
        shard.stats().copied_forward,
        0,
        "no eviction is near: no copies"
    );
    while shard.stats().bytes_used < shard.stats().budget_bytes * 3 / 4 {
        put(
            &mut shard,
            key(Kind::Blob, b"filler"),
            Kind::Blob,
            &body(1, 8000),
        )
        .unwrap();
    }
    assert!(get(&mut shard, &ids[0]).is_some());
    assert_eq!(
        shard.stats().copied_forward,
        1,
        "near the budget the oldest reads move forward"
    );
}

#[test]
fn opening_with_a_smaller_max_size_evicts_down_to_it_before_any_write() {
    let tmp = tempfile::tempdir().unwrap();
    let roomy = small_budget(tmp.path(), 20);
    let mut shard = open(&roomy);
    let ids: Vec<_> = (0..120u32)
        .map(|i| key(Kind::Blob, &i.to_le_bytes()))
        .collect();
    for (i, id) in ids.iter().enumerate() {
        put(&mut shard, *id, Kind::Blob, &body(i as u64, 2000)).unwrap();
    }
    let before = shard.stats();
    assert!(before.bytes_used > 6 * TEST_SEGMENT_BYTES, "{before:?}");
    shard.close().unwrap();

    let tight = small_budget(tmp.path(), 6);
    let mut shard = Shard::open(&tight, 0).unwrap();
    let after = shard.stats();
    assert!(
        after.bytes_used <= after.budget_bytes,
        "evicted at open, before a write needed room: {after:?}"
    );
    assert!(after.evicted_segments > 0, "{after:?}");
    let segment_files = std::fs::read_dir(tmp.path().join("shard-0"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("seg-")
        })
        .count() as u64;
    assert_eq!(
        segment_files, after.segments,
        "evicted files are gone from the disk"
    );
    assert!(get(&mut shard, &ids[0]).is_none(), "the oldest went");
    let newest = ids.len() - 1;
    assert_eq!(
        get(&mut shard, &ids[newest]),
        Some(body(newest as u64, 2000))
    );
}

/// The object-store tier's owed uploads: a held segment is never evicted; once it and every
/// newer segment are all that is left, new puts get `NoSpace` (507) instead of dropping it; when
/// the hold goes, eviction resumes.
#[test]
fn a_held_segment_is_never_evicted_and_new_puts_are_refused_until_it_is_released() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = small_budget(tmp.path(), 4);
    let mut shard = open(&cfg);
    let owed = key(Kind::Blob, b"owed");
    let owed_body = body(1, 900);
    // Held from the reservation on, before commit, as the tier layer does.
    let request = PutRequest {
        id: owed,
        kind: Kind::Blob,
        body_len: owed_body.len() as u64,
        meta: Meta::new(),
        expect: None,
        if_absent: false,
    };
    let Reserved::Reservation(mut reservation) = shard.reserve(request).unwrap() else {
        panic!("a new key gets a reservation");
    };
    let hold = reservation.hold();
    reservation.write(&owed_body).unwrap();
    shard.commit(reservation).unwrap();

    let mut refused_at = None;
    for i in 0..200u32 {
        let id = key(Kind::Blob, &i.to_le_bytes());
        match put(&mut shard, id, Kind::Blob, &body(100 + u64::from(i), 900)) {
            Ok(_) => {}
            Err(StoreError::NoSpace { .. }) => {
                refused_at = Some(i);
                break;
            }
            Err(other) => panic!("put {i}: {other}"),
        }
        let stats = shard.stats();
        assert!(stats.bytes_used <= stats.budget_bytes, "{stats:?}");
    }
    let refused_at = refused_at.expect("a full store whose oldest segment is held refuses puts");
    assert!(
        refused_at >= 40,
        "the budget held ~60 puts, refused at {refused_at}"
    );
    assert_eq!(shard.stats().evicted_segments, 0, "nothing was evicted");
    assert_eq!(get(&mut shard, &owed).as_deref(), Some(&owed_body[..]));

    drop(hold);
    for i in 200..400u32 {
        let id = key(Kind::Blob, &i.to_le_bytes());
        put(&mut shard, id, Kind::Blob, &body(100 + u64::from(i), 900))
            .unwrap_or_else(|e| panic!("put {i} after the release: {e}"));
    }
    assert!(shard.stats().evicted_segments > 0);
    assert!(
        shard.peek(&owed).unwrap().is_none(),
        "released, it aged out"
    );
}

/// A hold taken from a read handle (the tier's requeue after a restart) pins a middle segment:
/// eviction takes the older ones and stops there.
#[test]
fn a_hold_from_a_read_handle_stops_eviction_at_its_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = small_budget(tmp.path(), 6);
    let mut shard = open(&cfg);
    let ids: Vec<_> = (0..60u32)
        .map(|i| key(Kind::Blob, &i.to_le_bytes()))
        .collect();
    for (i, id) in ids.iter().enumerate() {
        put(&mut shard, *id, Kind::Blob, &body(i as u64, 900)).unwrap();
    }
    let held_key = ids[40];
    let handle = shard.lookup(&held_key).unwrap().unwrap();
    let hold = handle.hold();
    drop(handle);
    let mut refused = false;
    for i in 60..400u32 {
        let id = key(Kind::Blob, &i.to_le_bytes());
        match put(&mut shard, id, Kind::Blob, &body(u64::from(i), 900)) {
            Ok(_) => {}
            Err(StoreError::NoSpace { .. }) => {
                refused = true;
                break;
            }
            Err(other) => panic!("put {i}: {other}"),
        }
    }
    assert!(refused, "eviction reached the held segment");
    assert!(
        shard.peek(&ids[0]).unwrap().is_none(),
        "older segments went"
    );
    assert!(
        shard.peek(&held_key).unwrap().is_some(),
        "the held one stayed"
    );
    drop(hold);
}
