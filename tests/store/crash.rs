//! Crash model: random operation sequences against a `BTreeMap` oracle, "crashing" (dropping the
//! shard without close: the files keep exactly what the page cache had) at random points, and
//! sometimes also tearing (zeroing), truncating (cutting the file) or corrupting the last written
//! bytes. After every reopen:
//! every committed record is present and byte-exact, nothing uncommitted is visible. Records whose
//! bytes were damaged may be absent or hold a value that was committed for that key before.

use std::collections::{BTreeMap, BTreeSet};

use tessera::store::{
    KeyId, Kind, Meta, PutRequest, Reservation, Reserved, Shard, StoreConfig, StoreError,
};

use crate::common::*;

const KEYS: u64 = 24;
const ROUNDS_PER_SEED: usize = 6;
const OPS_PER_ROUND: usize = 60;
const SEEDS: u64 = 12;

struct Model {
    /// What a correct store must return for each key.
    oracle: BTreeMap<KeyId, Vec<u8>>,
    /// Every value ever committed per key (damaged records may fall back to one of these).
    history: BTreeMap<KeyId, Vec<Vec<u8>>>,
    ids: Vec<(KeyId, Kind)>,
}

impl Model {
    fn new() -> Model {
        let ids = (0..KEYS)
            .map(|i| {
                let kind = if i % 2 == 0 { Kind::Ac } else { Kind::Blob };
                (key(kind, &i.to_le_bytes()), kind)
            })
            .collect();
        Model {
            oracle: BTreeMap::new(),
            history: BTreeMap::new(),
            ids,
        }
    }

    fn committed(&mut self, id: KeyId, bytes: Vec<u8>) {
        self.history.entry(id).or_default().push(bytes.clone());
        self.oracle.insert(id, bytes);
    }
}

fn random_len(rng: &mut Rng) -> usize {
    match rng.below(10) {
        0 => 0,
        1 => 1 + rng.below(8) as usize,
        2 => (TEST_SEGMENT_BYTES as usize) + rng.below(5000) as usize, // single segment
        _ => rng.below(3000) as usize,
    }
}

fn reserve(shard: &mut Shard, id: KeyId, kind: Kind, len: usize) -> Reservation {
    let request = PutRequest {
        id,
        kind,
        body_len: len as u64,
        meta: Meta::new(),
        expect: None,
        if_absent: false,
    };
    match shard.reserve(request).unwrap() {
        Reserved::Reservation(reservation) => reservation,
        Reserved::Exists => panic!("only CAS puts can exist"),
    }
}

/// One random operation. `held` are reservations kept open across operations (and crashes).
fn step(
    shard: &mut Shard,
    model: &mut Model,
    rng: &mut Rng,
    held: &mut Vec<(Reservation, Vec<u8>)>,
) {
    let (id, kind) = model.ids[rng.below(KEYS) as usize];
    match rng.below(100) {
        0..=44 => {
            let bytes = body(rng.next(), random_len(rng));
            put(shard, id, kind, &bytes).unwrap();
            model.committed(id, bytes);
        }
        45..=54 => {
            let bytes = body(rng.next(), random_len(rng));
            let mut reservation = reserve(shard, id, kind, bytes.len());
            let part = rng.below(bytes.len() as u64 + 1) as usize;
            reservation.write(&bytes[..part]).unwrap();
            held.push((reservation, bytes));
        }
        55..=64 if !held.is_empty() => {
            let (mut reservation, bytes) = held.swap_remove(rng.below(held.len() as u64) as usize);
            let id = reservation.key_id();
            let done = reservation.written() as usize;
            match rng.below(4) {
                0 => shard.abort(reservation),
                1 => drop(reservation),
                2 => {
                    let result = shard.commit(reservation);
                    if done == bytes.len() {
                        result.unwrap();
                        model.committed(id, bytes);
                    } else {
                        assert!(
                            matches!(result, Err(StoreError::Truncated { .. })),
                            "{result:?}"
                        );
                    }
                }
                _ => {
                    reservation.write(&bytes[done..]).unwrap();
                    shard.commit(reservation).unwrap();
                    model.committed(id, bytes);
                }
            }
        }
        65..=74 => {
            let existed = shard.delete(&id).unwrap();
            assert_eq!(existed, model.oracle.remove(&id).is_some());
        }
        75..=79 => shard.maintenance().unwrap(),
        80..=82 => shard.checkpoint_now().unwrap(),
        _ => assert_eq!(get(shard, &id), model.oracle.get(&id).cloned(), "live read"),
    }
}

/// Tears or corrupts the last written bytes of the newest segment; returns the keys whose
/// records were touched.
fn damage_tail(cfg: &StoreConfig, rng: &mut Rng) -> BTreeSet<KeyId> {
    let path = newest_segment(&cfg.dir);
    let records = records_of(&path);
    let Some(&(offset, len, _, _)) = records.last() else {
        return BTreeSet::new();
    };
    let end = offset + len;
    let from = end - 1 - rng.below(len.min(600));
    match rng.below(3) {
        0 => zero(&path, from, end),
        1 => flip(&path, from, 1 << rng.below(8)),
        // The file itself cut short (recovery re-extends it with preallocated zeros).
        _ => std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(from)
            .unwrap(),
    }
    records
        .iter()
        .filter(|(o, l, _, _)| o + l > from)
        .map(|&(_, _, id, _)| id)
        .collect()
}

fn check_after_reopen(shard: &mut Shard, model: &mut Model, uncertain: &BTreeSet<KeyId>) {
    for &(id, _) in &model.ids.clone() {
        let found = get(shard, &id);
        if uncertain.contains(&id) {
            let history = model.history.get(&id).cloned().unwrap_or_default();
            assert!(
                found.as_ref().is_none_or(|v| history.contains(v)),
                "damaged key served a value never committed"
            );
            match found {
                Some(value) => model.oracle.insert(id, value),
                None => model.oracle.remove(&id),
            };
        } else {
            assert_eq!(
                found.as_ref(),
                model.oracle.get(&id),
                "key {:?} after reopen",
                &id.0[..4]
            );
        }
    }
}

fn run_seed(seed: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), 1);
    let mut rng = Rng(seed);
    let mut model = Model::new();
    let mut shard = open(&cfg);
    for _round in 0..ROUNDS_PER_SEED {
        let mut held = Vec::new();
        let ops = 1 + rng.below(OPS_PER_ROUND as u64) as usize;
        for _ in 0..ops {
            step(&mut shard, &mut model, &mut rng, &mut held);
        }
        drop(shard); // crash: the page cache keeps what was written
        drop(held); // in-flight uploads die with the process
        let uncertain = if rng.chance(40) {
            damage_tail(&cfg, &mut rng)
        } else {
            BTreeSet::new()
        };
        shard = Shard::open(&cfg, 0).unwrap();
        check_after_reopen(&mut shard, &mut model, &uncertain);
    }
}

#[test]
fn random_crashes_keep_every_committed_record_and_show_nothing_uncommitted() {
    for seed in 0..SEEDS {
        run_seed(seed);
    }
}
