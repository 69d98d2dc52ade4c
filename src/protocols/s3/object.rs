//! How an S3 object is kept in one store record (`Kind::Blob`, namespace `s3/BUCKET`, keyed by
//! the object key).
//!
//! ```text
//! record meta:  content-type, cache-control, content-disposition, content-encoding,
//!               content-language, expires, x-amz-meta-*, x-amz-checksum-*, s3-mtime-ms
//! record body:  object bytes ‖ trailer (OBJECT_TRAILER_BYTES)
//! trailer:      md5[16] ‖ parts u32 LE ‖ magic "TS3O"
//! ```
//!
//! The store writes a record's metadata when the space is reserved, before any body byte is
//! read, but the ETag (the MD5 of the body) is known only after the last byte: so it travels at
//! the end of the body, in a fixed-size trailer that is part of the reserved length. `parts` is
//! 0 for a single-part object and N for an object completed from N parts (its ETag is then the
//! MD5 of the parts' MD5s, shown as `md5-N`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::store::Meta;

/// Bytes of the trailer at the end of every object record's body.
pub const OBJECT_TRAILER_BYTES: u64 = 16 + 4 + 4;

/// The trailer's last four bytes (format version 1).
const TRAILER_MAGIC: [u8; 4] = *b"TS3O";

/// The metadata name of the object's modification time (ms since the epoch, decimal).
pub const MTIME_META: &str = "s3-mtime-ms";

/// Standard headers kept with an object and returned on GET/HEAD, lowercase.
pub const KEPT_HEADERS: [&str; 6] = [
    "content-type",
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "expires",
];

/// User metadata prefix.
pub const USER_META_PREFIX: &str = "x-amz-meta-";

/// Checksum headers kept with an object.
pub const CHECKSUM_HEADERS: [&str; 5] = [
    "x-amz-checksum-crc32",
    "x-amz-checksum-crc32c",
    "x-amz-checksum-crc64nvme",
    "x-amz-checksum-sha1",
    "x-amz-checksum-sha256",
];

/// The decoded trailer of a stored object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trailer {
    pub md5: [u8; 16],
    /// 0: single part; N: completed from N parts.
    pub parts: u32,
}

impl Trailer {
    pub fn encode(&self) -> [u8; OBJECT_TRAILER_BYTES as usize] {
        let mut out = [0u8; OBJECT_TRAILER_BYTES as usize];
        out[..16].copy_from_slice(&self.md5);
        out[16..20].copy_from_slice(&self.parts.to_le_bytes());
        out[20..].copy_from_slice(&TRAILER_MAGIC);
        out
    }

    /// The trailer at the end of a record body, and the object's length; `None` when the body
    /// is not an S3 object record.
    pub fn decode(body: &[u8]) -> Option<(Trailer, u64)> {
        let len = body.len().checked_sub(OBJECT_TRAILER_BYTES as usize)?;
        let t = &body[len..];
        if t[20..] != TRAILER_MAGIC {
            return None;
        }
        let md5 = t[..16].try_into().ok()?;
        let parts = u32::from_le_bytes(t[16..20].try_into().ok()?);
        Some((Trailer { md5, parts }, len as u64))
    }

    /// The ETag value without quotes: hex MD5, with `-N` for a multipart object.
    pub fn etag(&self) -> String {
        let hex = hex(&self.md5);
        match self.parts {
            0 => hex,
            n => format!("{hex}-{n}"),
        }
    }
}

pub use crate::store::digest::to_hex as hex;

/// The object's modification time from its metadata (the epoch if missing or malformed).
pub fn mtime(meta: &Meta) -> SystemTime {
    let ms = meta
        .get(MTIME_META)
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// Now, as the metadata value of [`MTIME_META`].
pub fn mtime_now() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    ms.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailer_round_trips_and_refuses_foreign_bodies() {
        let t = Trailer {
            md5: [0xab; 16],
            parts: 3,
        };
        let mut body = b"hello".to_vec();
        body.extend_from_slice(&t.encode());
        assert_eq!(Trailer::decode(&body), Some((t, 5)));
        assert_eq!(t.etag(), format!("{}-3", "ab".repeat(16)));
        assert_eq!(Trailer { parts: 0, ..t }.etag(), "ab".repeat(16));
        assert_eq!(Trailer::decode(b"short"), None);
        let mut bad = body.clone();
        *bad.last_mut().unwrap() = b'X';
        assert_eq!(Trailer::decode(&bad), None);
    }
}
