//! Per-namespace stored objects and bytes, and purge: correct across overwrite, delete,
//! eviction, purge, a clean restart and a crash; version 1 data directories read as `unknown`.

use std::collections::{BTreeMap, HashMap};

use tessera::store::record::{
    self, encode_commit, u64_at, State, FRAME_BYTES, HEADER_BYTES, OFF_HEADER_CHECKSUM, OFF_VERSION,
};
use tessera::store::scan::{Scanner, Step};
use tessera::store::{
    DataDir, Key, KeyId, Kind, Meta, NamespaceUsage, PutRequest, Reserved, Shard, StoreConfig,
};

use super::common::{body, config, Rng};

fn id(namespace: &str, name: &str) -> KeyId {
    Key {
        namespace,
        kind: Kind::Blob,
        name: name.as_bytes(),
    }
    .id()
}

fn put_in(shard: &mut Shard, namespace: &str, name: &str, bytes: &[u8]) {
    let request = PutRequest {
        id: id(namespace, name),
        kind: Kind::Blob,
        body_len: bytes.len() as u64,
        meta: Meta::new(),
        expect: None,
        if_absent: false,
    };
    let Reserved::Reservation(mut reservation) = shard.reserve_in(namespace, request).unwrap()
    else {
        panic!("blob puts always reserve");
    };
    reservation.write(bytes).unwrap();
    shard.commit(reservation).unwrap();
}

/// The naive reference: what the shard should report, from the keys the test stored and
/// whether each one is still there (peek: no copy forward).
fn expected(
    shard: &mut Shard,
    stored: &HashMap<(String, String), usize>,
) -> BTreeMap<String, NamespaceUsage> {
    let mut usage: BTreeMap<String, NamespaceUsage> = BTreeMap::new();
    for ((namespace, name), len) in stored {
        if shard.peek(&id(namespace, name)).unwrap().is_some() {
            let slot = usage.entry(namespace.clone()).or_default();
            slot.objects += 1;
            slot.bytes += record::layout(0, *len as u64).unwrap().record_bytes;
        }
    }
    usage
}

fn reopen(cfg: &StoreConfig, shard: Shard, clean: bool) -> Shard {
    if clean {
        shard.close().unwrap();
    } else {
        drop(shard); // a crash, as far as the files go
    }
    Shard::open(cfg, 0).unwrap()
}

#[test]
fn stored_usage_follows_overwrite_delete_eviction_and_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path(), 1);
    cfg.max_size_bytes = 8 * cfg.segment_bytes; // eviction after ~100 KiB
    DataDir::open(&cfg).unwrap();
    let mut shard = Shard::open(&cfg, 0).unwrap();
    let mut stored: HashMap<(String, String), usize> = HashMap::new();
    let mut rng = Rng(7);
    let namespaces = ["gradle", "turbo/team", "bazel/ci"];
    let mut evicted = 0;
    for round in 0..600u64 {
        let namespace = namespaces[rng.below(3) as usize];
        let name = format!("k{}", rng.below(80));
        if rng.chance(15) {
            shard.delete(&id(namespace, &name)).unwrap();
            stored.remove(&(namespace.to_owned(), name));
        } else {
            let len = 1 + rng.below(1500) as usize;
            put_in(&mut shard, namespace, &name, &body(round, len));
            stored.insert((namespace.to_owned(), name), len);
        }
        if round % 150 == 149 {
            let before = expected(&mut shard, &stored);
            assert_eq!(shard.namespace_usage(), before, "round {round}");
            evicted += shard.stats().evicted_segments;
            shard = reopen(&cfg, shard, round % 300 == 149);
            assert_eq!(
                shard.namespace_usage(),
                before,
                "after a restart in round {round}"
            );
        }
    }
    evicted += shard.stats().evicted_segments;
    assert!(evicted > 0, "the test must cover eviction");
    let usage = expected(&mut shard, &stored);
    assert_eq!(shard.namespace_usage(), usage);
    assert_eq!(shard.stats().namespaces, usage);
    let objects: u64 = usage.values().map(|u| u.objects).sum();
    assert_eq!(objects, shard.stats().objects);
}

#[test]
fn purge_deletes_one_namespace_and_holds_across_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), 1);
    DataDir::open(&cfg).unwrap();
    let mut shard = Shard::open(&cfg, 0).unwrap();
    for i in 0..40 {
        put_in(&mut shard, "nx", &format!("n{i}"), &body(i, 300));
        put_in(&mut shard, "gradle", &format!("g{i}"), &body(i + 100, 200));
    }
    // The checkpoint holds the entries; the purge record lies in the log after it.
    shard.checkpoint_now().unwrap();
    // An upload into nx that started before the purge and finishes after it: a later commit,
    // so the purge does not delete it.
    let late = PutRequest {
        id: id("nx", "late"),
        kind: Kind::Blob,
        body_len: 5,
        meta: Meta::new(),
        expect: None,
        if_absent: false,
    };
    let Reserved::Reservation(mut late) = shard.reserve_in("nx", late).unwrap() else {
        panic!("reserved");
    };
    let before = shard.namespace_usage()["nx"];
    let purged = shard.purge("nx").unwrap();
    assert_eq!(purged, before);
    assert_eq!(purged.objects, 40);
    late.write(b"later").unwrap();
    shard.commit(late).unwrap();
    put_in(&mut shard, "nx", "after", b"after the purge");
    let check = |shard: &mut Shard, when: &str| {
        for i in 0..40 {
            assert!(
                shard.lookup(&id("nx", &format!("n{i}"))).unwrap().is_none(),
                "purged nx entry n{i} is served {when}"
            );
            let hit = shard.lookup(&id("gradle", &format!("g{i}"))).unwrap();
            assert_eq!(
                hit.map(|h| h.body().to_vec()),
                Some(body(i + 100, 200)),
                "gradle g{i} {when}"
            );
        }
        for name in ["late", "after"] {
            assert!(
                shard.lookup(&id("nx", name)).unwrap().is_some(),
                "nx {name} (committed after the purge) {when}"
            );
        }
        let usage = shard.namespace_usage();
        assert_eq!(usage["nx"].objects, 2, "{when}");
        assert_eq!(usage["gradle"].objects, 40, "{when}");
    };
    check(&mut shard, "right after the purge");
    let mut shard = reopen(&cfg, shard, false);
    check(&mut shard, "after a crash (purge replayed)");
    let mut shard = reopen(&cfg, shard, true);
    check(
        &mut shard,
        "after a clean restart (purge in the checkpoint)",
    );
    assert_eq!(
        shard.purge("never-stored").unwrap(),
        NamespaceUsage::default()
    );
    assert_eq!(shard.purge("unknown").unwrap(), NamespaceUsage::default());
}

/// Rewrites every record of a shard as data format 1 wrote it (version 1, no tag) and the
/// manifest as format 1: what a data directory of an earlier release holds.
fn downgrade_to_format_1(cfg: &StoreConfig) {
    let shard_dir = cfg.dir.join("shard-0");
    for entry in std::fs::read_dir(&shard_dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if name == "index.ckpt" || name == "namespaces" {
            std::fs::remove_file(&path).unwrap();
            continue;
        }
        if !name.starts_with("seg-") {
            continue;
        }
        let mut bytes = std::fs::read(&path).unwrap();
        let records: Vec<(u64, u16, State)> = Scanner::new(&bytes, 0)
            .filter_map(|step| match step {
                Step::Record {
                    offset,
                    frame,
                    state: Ok(state),
                    ..
                } => Some((offset, frame.meta_len, state)),
                _ => None,
            })
            .collect();
        for (offset, meta_len, state) in records {
            let at = offset as usize;
            let header = &mut bytes[at..at + HEADER_BYTES + usize::from(meta_len)];
            header[OFF_VERSION..OFF_VERSION + 2].copy_from_slice(&1u16.to_le_bytes());
            header[12..16].fill(0);
            let (head, meta) = header.split_at_mut(HEADER_BYTES);
            let sum = record::checksum64(&[&head[..OFF_HEADER_CHECKSUM], meta]);
            head[OFF_HEADER_CHECKSUM..FRAME_BYTES].copy_from_slice(&sum.to_le_bytes());
            if let State::Committed(seal) = state {
                head[FRAME_BYTES..HEADER_BYTES].copy_from_slice(&encode_commit(
                    sum,
                    seal,
                    record::STATE_COMMITTED,
                ));
            }
            assert_eq!(u64_at(head, OFF_HEADER_CHECKSUM), sum);
        }
        std::fs::write(&path, &bytes).unwrap();
    }
    std::fs::write(
        cfg.dir.join("MANIFEST"),
        "tessera data directory\nformat_version = 1\nshards = 1\n",
    )
    .unwrap();
}

#[test]
fn a_format_1_data_directory_reads_as_namespace_unknown() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), 1);
    DataDir::open(&cfg).unwrap();
    let mut shard = Shard::open(&cfg, 0).unwrap();
    for i in 0..20 {
        put_in(&mut shard, "gradle", &format!("g{i}"), &body(i, 500));
    }
    shard.close().unwrap();
    downgrade_to_format_1(&cfg);

    DataDir::open(&cfg).unwrap();
    let mut shard = Shard::open(&cfg, 0).unwrap();
    assert_eq!(shard.stats().recovery.corrupt_records, 0);
    for i in 0..20 {
        let hit = shard.lookup(&id("gradle", &format!("g{i}"))).unwrap();
        assert_eq!(hit.map(|h| h.body().to_vec()), Some(body(i, 500)), "g{i}");
    }
    let record_bytes = record::layout(0, 500).unwrap().record_bytes;
    let unknown = NamespaceUsage {
        objects: 20,
        bytes: 20 * record_bytes,
    };
    assert_eq!(
        shard.namespace_usage(),
        BTreeMap::from([("unknown".to_owned(), unknown)])
    );
    // Old entries are not purgeable by name; new puts are tagged and are.
    assert_eq!(shard.purge("gradle").unwrap(), NamespaceUsage::default());
    put_in(&mut shard, "gradle", "new", b"new");
    assert_eq!(shard.purge("gradle").unwrap().objects, 1);
    let mut shard = reopen(&cfg, shard, true);
    assert_eq!(shard.namespace_usage()["unknown"], unknown);
    assert!(shard.lookup(&id("gradle", "g3")).unwrap().is_some());
}
