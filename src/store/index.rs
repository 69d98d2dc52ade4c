//! The in-memory index of one shard: key id → where the live record is.
//!
//! Updates follow the commit order (`lsn`), not the log order, so that replaying the log after a
//! crash reproduces what the owner had: a put replaces an entry only if its lsn is higher, and a
//! tombstone removes an entry only if the entry is older than the tombstone.

use std::collections::HashMap;

use super::record::NAMESPACE_UNTAGGED;
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
    /// The record's namespace tag (`namespaces.rs`; `NAMESPACE_UNTAGGED` when unknown).
    pub namespace: u32,
    /// The record (header and commit checksums, body checksum) was verified since the shard was
    /// opened; later opens check its fields only.
    pub verified: bool,
}

// The tag fits the padding of the entry: an index of N objects costs what it cost before tags.
const _: () = assert!(std::mem::size_of::<Entry>() == 40);

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

/// What one namespace holds in a shard: live entries and the bytes their records take in the
/// log (header, metadata and body, as `record_bytes`).
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct NamespaceUsage {
    pub objects: u64,
    pub bytes: u64,
}

/// The index, and what it holds per namespace tag. Every change of the map goes through the
/// methods below, which keep `usage` equal to the sum over the live entries (checked against a
/// recount in the tests): so per-namespace counts follow puts, overwrites, deletes, purges and
/// eviction, and a restart rebuilds them from the checkpoint's entries it inserts anyway.
/// Hashes namespace tags as they are: tags are small integers the shard hands out in order
/// (`namespaces.rs`), never chosen by clients, so the identity spreads them perfectly and costs
/// nothing. `account` runs once per entry when a checkpoint is loaded, where SipHash was a
/// measurable share of reopen time.
#[derive(Clone, Copy, Default)]
pub struct TagHashBuilder;

#[derive(Default)]
pub struct TagHasher(u64);

impl BuildHasher for TagHashBuilder {
    type Hasher = TagHasher;
    fn build_hasher(&self) -> TagHasher {
        TagHasher(0)
    }
}

impl Hasher for TagHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 << 8) | u64::from(byte);
        }
    }
    fn write_u32(&mut self, tag: u32) {
        self.0 = u64::from(tag);
    }
    fn finish(&self) -> u64 {
        // hashbrown takes the top 7 bits as a tag and the low bits as the bucket: spread the
        // small integer over both.
        self.0.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
}

type UsageMap = HashMap<u32, NamespaceUsage, TagHashBuilder>;

#[derive(Default)]
pub struct Index {
    map: HashMap<KeyId, Entry, KeyIdHashBuilder>,
    usage: UsageMap,
}

/// Adds (`sign` true) or removes an entry from its namespace's usage; a namespace with no
/// entry left is forgotten, so the map holds only namespaces with live entries.
fn account(usage: &mut UsageMap, entry: &Entry, add: bool) {
    let slot = usage.entry(entry.namespace).or_default();
    if add {
        slot.objects += 1;
        slot.bytes += entry.record_bytes;
        return;
    }
    slot.objects -= 1;
    slot.bytes -= entry.record_bytes;
    if slot.objects == 0 {
        usage.remove(&entry.namespace);
    }
}

impl Index {
    /// An empty index whose hash function uses `seeds` (a checkpoint's, to rebuild its layout).
    pub fn with_capacity_and_seeds(capacity: usize, seeds: [u64; 2]) -> Index {
        let builder = KeyIdHashBuilder::from_seeds(seeds);
        Index {
            map: HashMap::with_capacity_and_hasher(capacity, builder),
            usage: UsageMap::default(),
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
        let removed = self.map.remove(id)?;
        account(&mut self.usage, &removed, false);
        Some(removed)
    }

    /// Applies a committed put; ignored when the index already holds a later commit.
    pub fn apply_put(&mut self, id: KeyId, entry: Entry) {
        // One probe (entry API): on open this runs once per checkpointed object.
        match self.map.entry(id) {
            std::collections::hash_map::Entry::Occupied(mut slot) => {
                if slot.get().lsn < entry.lsn {
                    let replaced = slot.insert(entry);
                    account(&mut self.usage, &replaced, false);
                    account(&mut self.usage, &entry, true);
                }
            }
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(entry);
                account(&mut self.usage, &entry, true);
            }
        }
    }

    /// Applies a committed tombstone of commit number `lsn`.
    pub fn apply_tombstone(&mut self, id: &KeyId, lsn: u64) {
        if self.map.get(id).is_some_and(|existing| existing.lsn < lsn) {
            self.remove(id);
        }
    }

    /// Applies a committed purge of namespace `tag` with commit number `lsn`: drops every entry
    /// of the namespace committed before it. Returns what was dropped. O(entries).
    pub fn apply_purge(&mut self, tag: u32, lsn: u64) -> NamespaceUsage {
        assert_ne!(tag, NAMESPACE_UNTAGGED, "untagged entries cannot be purged");
        let mut dropped = NamespaceUsage::default();
        if !self.usage.contains_key(&tag) {
            return dropped;
        }
        self.map.retain(|_, entry| {
            let dead = entry.namespace == tag && entry.lsn < lsn;
            if dead {
                dropped.objects += 1;
                dropped.bytes += entry.record_bytes;
            }
            !dead
        });
        let slot = self.usage.entry(tag).or_default();
        slot.objects -= dropped.objects;
        slot.bytes -= dropped.bytes;
        if slot.objects == 0 {
            self.usage.remove(&tag);
        }
        dropped
    }

    /// Drops every entry matching `dead`: O(entries), no disk access.
    pub fn drop_where(&mut self, dead: impl Fn(&Entry) -> bool) -> usize {
        let before = self.map.len();
        let usage = &mut self.usage;
        self.map.retain(|_, entry| {
            let drop = dead(entry);
            if drop {
                account(usage, entry, false);
            }
            !drop
        });
        before - self.map.len()
    }

    /// Live entries and their bytes per namespace tag (only tags with entries).
    pub fn usage(&self) -> &HashMap<u32, NamespaceUsage, TagHashBuilder> {
        &self.usage
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
            namespace: (seq % 2) as u32 + 1,
            verified: false,
        }
    }

    /// The naive reference: usage recounted from the entries.
    fn recount(index: &Index) -> UsageMap {
        let mut usage = UsageMap::default();
        for (_, entry) in index.iter() {
            let slot = usage.entry(entry.namespace).or_default();
            slot.objects += 1;
            slot.bytes += entry.record_bytes;
        }
        usage
    }

    #[test]
    fn usage_follows_every_change_of_the_index() {
        let mut index = Index::default();
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for lsn in 1..5000u64 {
            let id = KeyId([(next() % 64) as u8; 32]);
            match next() % 10 {
                0 => {
                    index.remove(&id);
                }
                1 => index.apply_tombstone(&id, lsn),
                2 => {
                    let dropped_seq = next() % 5;
                    index.drop_where(|e| e.seq == dropped_seq);
                }
                3 => {
                    let tag = (next() % 2) as u32 + 1;
                    let before = index.usage().get(&tag).copied().unwrap_or_default();
                    let dropped = index.apply_purge(tag, lsn);
                    assert_eq!(dropped, before, "a purge drops all of a namespace");
                    assert!(index.iter().all(|(_, e)| e.namespace != tag));
                }
                _ => {
                    let mut e = entry(next() % 5, lsn);
                    e.record_bytes = 104 + 8 * (next() % 100);
                    index.apply_put(id, e);
                }
            }
            assert_eq!(*index.usage(), recount(&index), "after lsn {lsn}");
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
