//! Keys, key ids and the pure key → shard function.
//!
//! A key id is BLAKE3 over a length-prefixed encoding of (namespace, kind, name), so that
//! `("ab", "c")` and `("a", "bc")` can never produce the same id:
//!
//! ```text
//! "tessera-key-v1" | u32 LE namespace length | namespace | u8 kind | u64 LE name length | name
//! ```

/// The 32-byte identity of a key inside the store.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct KeyId(pub [u8; 32]);

/// What a key names.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[repr(u8)]
pub enum Kind {
    /// Content-addressed: the name is the digest of the body (verified on put).
    Cas = 1,
    /// Action cache: last writer wins.
    Ac = 2,
    /// Opaque client key: last writer wins.
    Blob = 3,
}

impl Kind {
    /// Decodes the on-disk byte; `None` for an unknown value.
    pub fn from_u8(value: u8) -> Option<Kind> {
        match value {
            1 => Some(Kind::Cas),
            2 => Some(Kind::Ac),
            3 => Some(Kind::Blob),
            _ => None,
        }
    }
}

/// A client-visible key.
#[derive(Clone, Copy, Debug)]
pub struct Key<'a> {
    pub namespace: &'a str,
    pub kind: Kind,
    pub name: &'a [u8],
}

const KEY_DOMAIN: &[u8] = b"tessera-key-v1";

/// Encodings up to this many bytes are hashed from a stack buffer in one call.
const KEY_ENCODING_STACK_BYTES: usize = 256;

impl Key<'_> {
    /// The key's id: BLAKE3 over the length-prefixed encoding in the module docs.
    pub fn id(&self) -> KeyId {
        let namespace_len = u32::try_from(self.namespace.len()).unwrap_or(u32::MAX);
        let parts: [&[u8]; 6] = [
            KEY_DOMAIN,
            &namespace_len.to_le_bytes(),
            self.namespace.as_bytes(),
            &[self.kind as u8],
            &(self.name.len() as u64).to_le_bytes(),
            self.name,
        ];
        // Typical keys (a 33-byte REAPI name in a short namespace) are well under this: one
        // contiguous buffer and one `blake3::hash` instead of six `update`s, which is measurably
        // cheaper per request. Longer keys stream; both hash the same bytes.
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if total <= KEY_ENCODING_STACK_BYTES {
            let mut buf = [0u8; KEY_ENCODING_STACK_BYTES];
            let mut at = 0;
            for part in parts {
                buf[at..at + part.len()].copy_from_slice(part);
                at += part.len();
            }
            return KeyId(*blake3::hash(&buf[..at]).as_bytes());
        }
        let mut hasher = blake3::Hasher::new();
        for part in parts {
            hasher.update(part);
        }
        KeyId(*hasher.finalize().as_bytes())
    }
}

/// The shard that owns `id`, in `0..shards`: jump consistent hash (Lamping & Veach) of the key id's
/// first 8 bytes. Pure and stable across releases: changing it moves every key.
pub fn shard_of(id: &KeyId, shards: u32) -> u32 {
    assert!(shards > 0, "shard_of needs at least one shard");
    let mut key = u64::from_le_bytes(id.0[..8].try_into().expect("8 bytes"));
    let mut bucket: i64 = -1;
    let mut next: i64 = 0;
    while next < i64::from(shards) {
        bucket = next;
        key = key.wrapping_mul(2862933555777941757).wrapping_add(1);
        let divisor = ((key >> 33) + 1) as f64;
        next = ((bucket + 1) as f64 * ((1u64 << 31) as f64 / divisor)) as i64;
    }
    bucket as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_prefix_prevents_concatenation_collisions() {
        let a = Key {
            namespace: "ab",
            kind: Kind::Blob,
            name: b"c",
        }
        .id();
        let b = Key {
            namespace: "a",
            kind: Kind::Blob,
            name: b"bc",
        }
        .id();
        assert_ne!(a, b);
        let ac = Key {
            namespace: "ab",
            kind: Kind::Ac,
            name: b"c",
        }
        .id();
        assert_ne!(a, ac, "kind is part of the identity");
    }

    #[test]
    fn key_id_is_pinned() {
        // Golden value: changing the encoding silently orphans every stored record. Checked for
        // a short key (hashed from the stack buffer) and for keys around and far over
        // KEY_ENCODING_STACK_BYTES (streamed), which must hash the same encoding.
        let name = vec![0x5a_u8; 400];
        for name_len in [4usize, 200, 211, 212, 213, 400] {
            let name = &name[..name_len];
            let id = Key {
                namespace: "ns",
                kind: Kind::Cas,
                name,
            }
            .id();
            let mut expected = blake3::Hasher::new();
            expected.update(b"tessera-key-v1");
            expected.update(&[2, 0, 0, 0]);
            expected.update(b"ns");
            expected.update(&[1]);
            expected.update(&(name_len as u64).to_le_bytes());
            expected.update(name);
            assert_eq!(
                id.0,
                *expected.finalize().as_bytes(),
                "name of {name_len} bytes"
            );
        }
        let golden = Key {
            namespace: "ns",
            kind: Kind::Cas,
            name: b"name",
        }
        .id();
        // First bytes of the id as stored by every release so far.
        assert_eq!(golden.0[..8], [116, 111, 95, 17, 85, 176, 175, 207]);
    }

    /// Reference implementation: the same algorithm written from the paper's pseudo-code with
    /// floating point replaced by explicit division, checked against the fast one.
    fn jump_reference(mut key: u64, buckets: i64) -> i64 {
        let (mut b, mut j) = (-1i64, 0i64);
        while j < buckets {
            b = j;
            key = key.wrapping_mul(2862933555777941757).wrapping_add(1);
            j = ((b + 1) as f64 * (2147483648.0 / (((key >> 33) + 1) as f64))) as i64;
        }
        b
    }

    #[test]
    fn shard_of_is_in_range_stable_and_balanced() {
        let mut counts = [0u32; 4];
        for i in 0u32..4000 {
            let id = Key {
                namespace: "t",
                kind: Kind::Blob,
                name: &i.to_le_bytes(),
            }
            .id();
            let shard = shard_of(&id, 4);
            let first8 = u64::from_le_bytes(id.0[..8].try_into().unwrap());
            assert_eq!(i64::from(shard), jump_reference(first8, 4));
            counts[shard as usize] += 1;
            assert_eq!(shard_of(&id, 1), 0);
        }
        for count in counts {
            assert!((800..1200).contains(&count), "unbalanced: {counts:?}");
        }
    }

    #[test]
    fn growing_shards_moves_only_a_fraction() {
        let mut moved = 0;
        for i in 0u32..2000 {
            let id = Key {
                namespace: "t",
                kind: Kind::Blob,
                name: &i.to_le_bytes(),
            }
            .id();
            let (before, after) = (shard_of(&id, 4), shard_of(&id, 5));
            if before != after {
                assert_eq!(after, 4, "jump hash only moves keys to the new shard");
                moved += 1;
            }
        }
        assert!((250..550).contains(&moved), "moved {moved} of 2000");
    }
}
