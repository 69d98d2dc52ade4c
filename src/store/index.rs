//! The in-memory index of one shard: key id → where the live record is.
//!
//! Updates follow the commit order (`lsn`), not the log order, so that replaying the log after a
//! crash reproduces what the owner had: a put replaces an entry only if its lsn is higher, and a
//! tombstone removes an entry only if the entry is older than the tombstone.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

use super::key::{KeyId, Kind};

/// Location and state of one live record.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Entry {
    pub seq: u64,
    pub offset: u64,
    pub record_bytes: u64,
    pub lsn: u64,
    pub kind: Kind,
    /// The record (header and commit checksums, body checksum) was verified since the shard was
    /// opened; later opens check its fields only.
    pub verified: bool,
}

/// Hashes key ids: they are BLAKE3 outputs, but clients choose the keys, so the table index is
/// still mixed with per-process secret seeds (a folded 128-bit multiply) to keep an attacker
/// from aiming many keys at one bucket.
#[derive(Clone, Copy)]
pub struct KeyIdHashBuilder {
    seeds: [u64; 2],
}

impl Default for KeyIdHashBuilder {
    fn default() -> Self {
        let random = std::collections::hash_map::RandomState::new();
        KeyIdHashBuilder::from_seeds([random.hash_one(1u64), random.hash_one(2u64)])
    }
}

impl KeyIdHashBuilder {
    /// The multiplier seed is forced odd so that no seed value degrades the mix.
    pub fn from_seeds(seeds: [u64; 2]) -> Self {
        KeyIdHashBuilder {
            seeds: [seeds[0] | 1, seeds[1]],
        }
    }
}

impl BuildHasher for KeyIdHashBuilder {
    type Hasher = KeyIdHasher;
    fn build_hasher(&self) -> KeyIdHasher {
        KeyIdHasher {
            seeds: self.seeds,
            state: 0,
        }
    }
}

pub struct KeyIdHasher {
    seeds: [u64; 2],
    state: u64,
}

fn fold_multiply(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

impl Hasher for KeyIdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            let value = u64::from_le_bytes(word);
            self.state = fold_multiply(self.state ^ value ^ self.seeds[1], self.seeds[0]);
        }
    }

    fn finish(&self) -> u64 {
        fold_multiply(self.state, self.seeds[0] ^ self.seeds[1])
    }
}

#[derive(Default)]
pub struct Index {
    map: HashMap<KeyId, Entry, KeyIdHashBuilder>,
}

impl Index {
    /// An empty index whose hash function uses `seeds` (a checkpoint's, to rebuild its layout).
    pub fn with_capacity_and_seeds(capacity: usize, seeds: [u64; 2]) -> Index {
        let builder = KeyIdHashBuilder::from_seeds(seeds);
        Index {
            map: HashMap::with_capacity_and_hasher(capacity, builder),
        }
    }

    pub fn seeds(&self) -> [u64; 2] {
        self.map.hasher().seeds
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn get(&self, id: &KeyId) -> Option<Entry> {
        self.map.get(id).copied()
    }

    pub fn mark_verified(&mut self, id: &KeyId) {
        if let Some(entry) = self.map.get_mut(id) {
            entry.verified = true;
        }
    }

    pub fn remove(&mut self, id: &KeyId) -> Option<Entry> {
        self.map.remove(id)
    }

    /// Applies a committed put; ignored when the index already holds a later commit.
    pub fn apply_put(&mut self, id: KeyId, entry: Entry) {
        // One probe (entry API): on open this runs once per checkpointed object.
        match self.map.entry(id) {
            std::collections::hash_map::Entry::Occupied(mut slot) => {
                if slot.get().lsn < entry.lsn {
                    slot.insert(entry);
                }
            }
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(entry);
            }
        }
    }

    /// Applies a committed tombstone of commit number `lsn`.
    pub fn apply_tombstone(&mut self, id: &KeyId, lsn: u64) {
        if self.map.get(id).is_some_and(|existing| existing.lsn < lsn) {
            self.map.remove(id);
        }
    }

    /// Drops every entry matching `dead`: O(entries), no disk access.
    pub fn drop_where(&mut self, dead: impl Fn(&Entry) -> bool) -> usize {
        let before = self.map.len();
        self.map.retain(|_, entry| !dead(entry));
        before - self.map.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&KeyId, &Entry)> {
        self.map.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, lsn: u64) -> Entry {
        Entry {
            seq,
            offset: 64,
            record_bytes: 104,
            lsn,
            kind: Kind::Ac,
            verified: false,
        }
    }

    #[test]
    fn later_commit_wins_regardless_of_apply_order() {
        let id = KeyId([1; 32]);
        let mut index = Index::default();
        index.apply_put(id, entry(2, 9));
        index.apply_put(id, entry(1, 5));
        assert_eq!(index.get(&id).unwrap().lsn, 9);
        index.apply_tombstone(&id, 7);
        assert!(
            index.get(&id).is_some(),
            "tombstone older than the live put"
        );
        index.apply_tombstone(&id, 10);
        assert!(index.get(&id).is_none());
    }

    #[test]
    fn drop_where_removes_only_matching() {
        let mut index = Index::default();
        for i in 0..100u8 {
            index.apply_put(KeyId([i; 32]), entry(u64::from(i % 3), 1));
        }
        assert_eq!(index.drop_where(|e| e.seq == 0), 34);
        assert_eq!(index.len(), 66);
        assert!(index.iter().all(|(_, e)| e.seq != 0));
    }

    #[test]
    fn hasher_spreads_keys_sharing_low_bytes() {
        let builder = KeyIdHashBuilder::default();
        let mut buckets = std::collections::HashSet::new();
        for i in 0..256u32 {
            let mut id = [0u8; 32];
            id[28..].copy_from_slice(&i.to_le_bytes());
            buckets.insert(builder.hash_one(KeyId(id)) & 0xffff);
        }
        assert!(
            buckets.len() > 240,
            "only {} distinct buckets",
            buckets.len()
        );
    }
}
