//! The small metadata section of a record: ordered (name, value) pairs.
//!
//! Encoding (little-endian), repeated until the section ends:
//! `u8 name length | name (UTF-8, 1..=255 bytes) | u16 value length | value`.
//! The whole section is at most [`META_BYTES_MAX`] bytes.

use super::error::StoreError;
use super::limits::{META_BYTES_MAX, META_NAME_BYTES_MAX};

/// Metadata of one record. Well-known names used by front-ends: `content-type`, `key` (the
/// original client key), `x-artifact-*` (Turbo), `x-amz-meta-*` (S3).
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct Meta {
    /// The encoded section; always valid (built by `push` or checked by `decode`).
    encoded: Vec<u8>,
}

impl Meta {
    pub fn new() -> Self {
        Meta::default()
    }

    /// Appends a pair; fails if the name is empty or too long, or the section would exceed
    /// `META_BYTES_MAX`.
    pub fn push(&mut self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        if name.is_empty() || name.len() > META_NAME_BYTES_MAX {
            return Err(StoreError::MetaTooLarge {
                len: name.len(),
                max: META_NAME_BYTES_MAX,
            });
        }
        let added = 1 + name.len() + 2 + value.len();
        let len = self.encoded.len() + added;
        if len > META_BYTES_MAX {
            return Err(StoreError::MetaTooLarge {
                len,
                max: META_BYTES_MAX,
            });
        }
        self.encoded.push(name.len() as u8);
        self.encoded.extend_from_slice(name.as_bytes());
        self.encoded
            .extend_from_slice(&(value.len() as u16).to_le_bytes());
        self.encoded.extend_from_slice(value);
        Ok(())
    }

    /// The value of the first pair with this name.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// All pairs, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        MetaIter {
            rest: &self.encoded,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.encoded.is_empty()
    }

    /// The encoded section as stored on disk.
    pub fn encoded(&self) -> &[u8] {
        &self.encoded
    }

    /// Validates and copies an encoded section read from disk.
    pub fn decode(bytes: &[u8]) -> Result<Meta, StoreError> {
        if bytes.len() > META_BYTES_MAX {
            return Err(StoreError::corrupt(
                "metadata section longer than META_BYTES_MAX",
            ));
        }
        let mut rest = bytes;
        while !rest.is_empty() {
            rest = split_pair(rest)
                .ok_or_else(|| StoreError::corrupt("malformed metadata"))?
                .2;
        }
        Ok(Meta {
            encoded: bytes.to_vec(),
        })
    }
}

/// Splits one pair off the front: (name, value, rest). `None` when malformed.
fn split_pair(bytes: &[u8]) -> Option<(&str, &[u8], &[u8])> {
    let (&name_len, rest) = bytes.split_first()?;
    let name_len = usize::from(name_len);
    if name_len == 0 || rest.len() < name_len + 2 {
        return None;
    }
    let name = std::str::from_utf8(&rest[..name_len]).ok()?;
    let value_len = usize::from(u16::from_le_bytes([rest[name_len], rest[name_len + 1]]));
    let rest = &rest[name_len + 2..];
    if rest.len() < value_len {
        return None;
    }
    Some((name, &rest[..value_len], &rest[value_len..]))
}

struct MetaIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for MetaIter<'a> {
    type Item = (&'a str, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        // INVARIANT: `encoded` was validated, so a malformed pair cannot occur; stop if it does.
        let (name, value, rest) = split_pair(self.rest)?;
        self.rest = rest;
        Some((name, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_get_iter_decode_round_trip() {
        let mut meta = Meta::new();
        meta.push("content-type", b"application/octet-stream")
            .unwrap();
        meta.push("x-artifact-duration", b"1234").unwrap();
        meta.push("empty", b"").unwrap();
        assert_eq!(meta.get("x-artifact-duration"), Some(&b"1234"[..]));
        assert_eq!(meta.get("missing"), None);
        let names: Vec<&str> = meta.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["content-type", "x-artifact-duration", "empty"]);
        assert_eq!(Meta::decode(meta.encoded()).unwrap(), meta);
    }

    #[test]
    fn limits_are_enforced() {
        let mut meta = Meta::new();
        assert!(meta.push("", b"x").is_err());
        assert!(meta.push(&"n".repeat(256), b"x").is_err());
        // One pair costs 1 + name + 2 + value bytes: a 1-byte name leaves MAX - 4 for the value.
        let big = vec![7u8; META_BYTES_MAX - 3];
        assert!(matches!(
            meta.push("a", &big),
            Err(StoreError::MetaTooLarge { .. })
        ));
        meta.push("a", &big[..META_BYTES_MAX - 4]).unwrap();
        assert_eq!(meta.encoded().len(), META_BYTES_MAX);
        assert!(meta.push("b", b"").is_err());
    }

    #[test]
    fn decode_rejects_malformed() {
        for bad in [
            &[0u8][..],
            &[3, b'a'],
            &[1, b'a', 5, 0, 1],
            &[1, 0xff, 0, 0],
        ] {
            assert!(Meta::decode(bad).is_err(), "{bad:?}");
        }
    }
}
