//! The record format (see `FORMAT.md` for the byte tables and the reasoning).
//!
//! A record is `header (104 bytes) | meta | pad to 8 | body | pad to 8`. The first 80 header bytes
//! (the *frame*) are written by the owner at reserve time and carry their own checksum, so recovery
//! can step over a record that was never committed. The last 24 bytes (the *commit area*) are
//! written at commit, the 4-byte state word last.

use super::key::{KeyId, Kind};
use super::limits::{META_BYTES_MAX, RECORD_ALIGN_BYTES};

/// Record magic: ASCII "TSRC".
pub const RECORD_MAGIC: [u8; 4] = *b"TSRC";
/// The record format this build writes and the newest it reads. Version 2 gave the 4 bytes at
/// offset 12 (reserved, zero, in version 1) to the namespace tag; version 1 records still read,
/// with tag [`NAMESPACE_UNTAGGED`].
pub const RECORD_VERSION: u16 = 2;
/// The first record version with a namespace tag.
pub const RECORD_VERSION_NAMESPACE_TAG: u16 = 2;
/// The namespace tag of a record whose namespace is not known: written before version 2, or by
/// a caller that named none (tools, tests). Counted as namespace `unknown`.
pub const NAMESPACE_UNTAGGED: u32 = 0;

pub const OFF_MAGIC: usize = 0;
pub const OFF_VERSION: usize = OFF_MAGIC + 4;
pub const OFF_KIND: usize = OFF_VERSION + 2;
pub const OFF_CODEC: usize = OFF_KIND + 1;
pub const OFF_FLAGS: usize = OFF_CODEC + 1;
pub const OFF_META_LEN: usize = OFF_FLAGS + 2;
/// The namespace tag (version 2; reserved and zero in version 1): an index into the shard's
/// namespace table (`namespaces.rs`).
pub const OFF_NAMESPACE: usize = OFF_META_LEN + 2;
pub const OFF_KEY_ID: usize = OFF_NAMESPACE + 4;
pub const OFF_BODY_LEN: usize = OFF_KEY_ID + 32;
pub const OFF_RAW_LEN: usize = OFF_BODY_LEN + 8;
pub const OFF_CREATED_MS: usize = OFF_RAW_LEN + 8;
pub const OFF_HEADER_CHECKSUM: usize = OFF_CREATED_MS + 8;
/// End of the frame: everything before is written at reserve time.
pub const FRAME_BYTES: usize = OFF_HEADER_CHECKSUM + 8;
pub const OFF_BODY_CHECKSUM: usize = FRAME_BYTES;
pub const OFF_COMMIT_LSN: usize = OFF_BODY_CHECKSUM + 8;
pub const OFF_COMMIT_CHECK: usize = OFF_COMMIT_LSN + 8;
pub const OFF_STATE: usize = OFF_COMMIT_CHECK + 4;
/// Full header length.
pub const HEADER_BYTES: usize = OFF_STATE + 4;

const _: () = assert!(HEADER_BYTES == 104);
const _: () = assert!(HEADER_BYTES.is_multiple_of(RECORD_ALIGN_BYTES as usize));
const _: () = assert!(
    OFF_STATE.is_multiple_of(4),
    "the state word is one aligned 4-byte store"
);

/// Codec of the body. Only `Raw` exists in version 1; the byte is reserved for zstd.
pub const CODEC_RAW: u8 = 0;
/// Flag bit: the record deletes its key (body length 0).
pub const FLAG_TOMBSTONE: u16 = 1;
/// Flag bit (version 2): the record deletes every entry of its namespace tag committed before it
/// (a purge). Body and metadata are empty and the key id is all zeros.
pub const FLAG_PURGE: u16 = 2;
const FLAGS_KNOWN: u16 = FLAG_TOMBSTONE | FLAG_PURGE;

/// State word values. Zero (a preallocated file's content) means "pending".
pub const STATE_PENDING: u32 = 0;
/// ASCII "CMIT" read as little-endian u32.
pub const STATE_COMMITTED: u32 = u32::from_le_bytes(*b"CMIT");
/// ASCII "ABRT" read as little-endian u32.
pub const STATE_ABORTED: u32 = u32::from_le_bytes(*b"ABRT");

/// The reserve-time part of a header.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Frame {
    pub kind: Kind,
    pub flags: u16,
    pub meta_len: u16,
    /// The namespace tag ([`NAMESPACE_UNTAGGED`] for none).
    pub namespace: u32,
    pub key_id: KeyId,
    pub body_len: u64,
    pub created_ms: u64,
}

/// Where the parts of a record lie, relative to the record's start.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Layout {
    pub meta_offset: u64,
    pub body_offset: u64,
    pub record_bytes: u64,
}

/// The commit-time part of a header.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Seal {
    pub body_checksum: u64,
    pub lsn: u64,
}

/// What the commit area says.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum State {
    Pending,
    Committed(Seal),
    Aborted,
}

/// Why bytes are not a usable frame.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FrameError {
    /// All header bytes are zero: the end of the written part of a segment.
    Empty,
    /// Fewer bytes than a header (+ meta + body) remain.
    Short,
    /// The frame is damaged or torn; `what` says which check failed.
    Invalid(&'static str),
    /// Written by a newer format version.
    TooNew(u16),
}

pub fn align_up(value: u64) -> Option<u64> {
    Some(value.checked_add(RECORD_ALIGN_BYTES - 1)? & !(RECORD_ALIGN_BYTES - 1))
}

/// Record layout for a meta and body length; `None` on overflow.
pub fn layout(meta_len: u16, body_len: u64) -> Option<Layout> {
    let body_offset = align_up(HEADER_BYTES as u64 + u64::from(meta_len))?;
    let record_bytes = body_offset.checked_add(align_up(body_len)?)?;
    Some(Layout {
        meta_offset: HEADER_BYTES as u64,
        body_offset,
        record_bytes,
    })
}

/// 64-bit checksum: the first 8 bytes of BLAKE3 over the parts, little-endian.
pub fn checksum64(parts: &[&[u8]]) -> u64 {
    let mut hasher = blake3::Hasher::new();
    for part in parts {
        hasher.update(part);
    }
    u64::from_le_bytes(
        hasher.finalize().as_bytes()[..8]
            .try_into()
            .expect("8 bytes"),
    )
}

fn commit_check(header_checksum: u64, seal: Seal, state: u32) -> u32 {
    let sum = checksum64(&[
        &header_checksum.to_le_bytes(),
        &seal.body_checksum.to_le_bytes(),
        &seal.lsn.to_le_bytes(),
        &state.to_le_bytes(),
    ]);
    sum as u32
}

/// Encodes the frame into `header[..FRAME_BYTES]`; the commit area is zeroed (pending).
pub fn encode_frame(frame: &Frame, meta: &[u8], header: &mut [u8; HEADER_BYTES]) {
    assert_eq!(
        meta.len(),
        usize::from(frame.meta_len),
        "meta length mismatch"
    );
    header.fill(0);
    header[OFF_MAGIC..OFF_VERSION].copy_from_slice(&RECORD_MAGIC);
    header[OFF_VERSION..OFF_KIND].copy_from_slice(&RECORD_VERSION.to_le_bytes());
    header[OFF_KIND] = frame.kind as u8;
    header[OFF_CODEC] = CODEC_RAW;
    header[OFF_FLAGS..OFF_META_LEN].copy_from_slice(&frame.flags.to_le_bytes());
    header[OFF_META_LEN..OFF_NAMESPACE].copy_from_slice(&frame.meta_len.to_le_bytes());
    header[OFF_NAMESPACE..OFF_KEY_ID].copy_from_slice(&frame.namespace.to_le_bytes());
    header[OFF_KEY_ID..OFF_BODY_LEN].copy_from_slice(&frame.key_id.0);
    header[OFF_BODY_LEN..OFF_RAW_LEN].copy_from_slice(&frame.body_len.to_le_bytes());
    header[OFF_RAW_LEN..OFF_CREATED_MS].copy_from_slice(&frame.body_len.to_le_bytes());
    header[OFF_CREATED_MS..OFF_HEADER_CHECKSUM].copy_from_slice(&frame.created_ms.to_le_bytes());
    let sum = checksum64(&[&header[..OFF_HEADER_CHECKSUM], meta]);
    header[OFF_HEADER_CHECKSUM..FRAME_BYTES].copy_from_slice(&sum.to_le_bytes());
}

/// Encodes the commit area (`header[FRAME_BYTES..HEADER_BYTES]`) for a final state.
pub fn encode_commit(
    header_checksum: u64,
    seal: Seal,
    state: u32,
) -> [u8; HEADER_BYTES - FRAME_BYTES] {
    let mut area = [0u8; HEADER_BYTES - FRAME_BYTES];
    let rel = |offset: usize| offset - FRAME_BYTES;
    area[rel(OFF_BODY_CHECKSUM)..rel(OFF_COMMIT_LSN)]
        .copy_from_slice(&seal.body_checksum.to_le_bytes());
    area[rel(OFF_COMMIT_LSN)..rel(OFF_COMMIT_CHECK)].copy_from_slice(&seal.lsn.to_le_bytes());
    let check = commit_check(header_checksum, seal, state);
    area[rel(OFF_COMMIT_CHECK)..rel(OFF_STATE)].copy_from_slice(&check.to_le_bytes());
    area[rel(OFF_STATE)..].copy_from_slice(&state.to_le_bytes());
    area
}

fn u16_at(bytes: &[u8], offset: usize) -> u16 {
    u16::from_le_bytes(bytes[offset..offset + 2].try_into().expect("2 bytes"))
}

fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes(bytes[offset..offset + 4].try_into().expect("4 bytes"))
}

pub fn u64_at(bytes: &[u8], offset: usize) -> u64 {
    u64::from_le_bytes(bytes[offset..offset + 8].try_into().expect("8 bytes"))
}

/// Decodes and validates the frame at the start of `bytes`, which must extend at least to the end
/// of the space the record may occupy (the rest of the segment). Every field is checked before
/// any arithmetic uses it; the returned layout fits inside `bytes`.
pub fn decode_frame(bytes: &[u8]) -> Result<(Frame, Layout), FrameError> {
    decode_frame_checked(bytes, true)
}

/// [`decode_frame`] for a record whose header checksum was verified before (its index entry is
/// marked verified): every field check except recomputing the checksum, which is most of the
/// cost of a small read. Records are immutable once committed, so what was verified stays so;
/// damage after that first read (bit rot) is `scrub`'s to find, as for bodies.
pub fn decode_verified_frame(bytes: &[u8]) -> Result<(Frame, Layout), FrameError> {
    decode_frame_checked(bytes, false)
}

fn decode_frame_checked(bytes: &[u8], checksum: bool) -> Result<(Frame, Layout), FrameError> {
    if bytes.len() < HEADER_BYTES {
        return Err(if bytes.iter().all(|&b| b == 0) {
            FrameError::Empty
        } else {
            FrameError::Short
        });
    }
    let header = &bytes[..HEADER_BYTES];
    if header.iter().all(|&b| b == 0) {
        return Err(FrameError::Empty);
    }
    if header[OFF_MAGIC..OFF_VERSION] != RECORD_MAGIC {
        return Err(FrameError::Invalid("bad magic"));
    }
    // The checksum comes first: a bit flip anywhere in the frame must read as damage, not as a
    // plausible but wrong field value.
    let meta_len = u16_at(header, OFF_META_LEN);
    if usize::from(meta_len) > META_BYTES_MAX {
        return Err(FrameError::Invalid("meta length over META_BYTES_MAX"));
    }
    let meta_end = HEADER_BYTES + usize::from(meta_len);
    if bytes.len() < meta_end {
        return Err(FrameError::Short);
    }
    let stored = u64_at(header, OFF_HEADER_CHECKSUM);
    if checksum
        && checksum64(&[
            &header[..OFF_HEADER_CHECKSUM],
            &bytes[HEADER_BYTES..meta_end],
        ]) != stored
    {
        return Err(FrameError::Invalid("header checksum mismatch"));
    }
    let version = u16_at(header, OFF_VERSION);
    if version > RECORD_VERSION {
        return Err(FrameError::TooNew(version));
    }
    if version == 0 {
        return Err(FrameError::Invalid("format version 0"));
    }
    let frame = validate_fields(header, meta_len, version)?;
    let layout = layout(meta_len, frame.body_len).ok_or(FrameError::Invalid("length overflow"))?;
    if layout.record_bytes > bytes.len() as u64 {
        return Err(FrameError::Short);
    }
    Ok((frame, layout))
}

fn validate_fields(header: &[u8], meta_len: u16, version: u16) -> Result<Frame, FrameError> {
    let kind = Kind::from_u8(header[OFF_KIND]).ok_or(FrameError::Invalid("unknown kind"))?;
    if header[OFF_CODEC] != CODEC_RAW {
        return Err(FrameError::Invalid("unknown codec"));
    }
    let flags = u16_at(header, OFF_FLAGS);
    let flags_known = if version >= RECORD_VERSION_NAMESPACE_TAG {
        FLAGS_KNOWN
    } else {
        FLAG_TOMBSTONE
    };
    if flags & !flags_known != 0 {
        return Err(FrameError::Invalid("unknown flags"));
    }
    if flags & FLAG_TOMBSTONE != 0 && flags & FLAG_PURGE != 0 {
        return Err(FrameError::Invalid("both tombstone and purge"));
    }
    let namespace = u32_at(header, OFF_NAMESPACE);
    if version < RECORD_VERSION_NAMESPACE_TAG && namespace != NAMESPACE_UNTAGGED {
        return Err(FrameError::Invalid("reserved bytes not zero"));
    }
    let body_len = u64_at(header, OFF_BODY_LEN);
    if u64_at(header, OFF_RAW_LEN) != body_len {
        return Err(FrameError::Invalid(
            "raw length differs from body length for a raw body",
        ));
    }
    if flags & (FLAG_TOMBSTONE | FLAG_PURGE) != 0 && (body_len != 0 || meta_len != 0) {
        return Err(FrameError::Invalid("tombstone with a body"));
    }
    let key_id = KeyId(
        header[OFF_KEY_ID..OFF_BODY_LEN]
            .try_into()
            .expect("32 bytes"),
    );
    if flags & FLAG_PURGE != 0 && (key_id != KeyId([0; 32]) || namespace == NAMESPACE_UNTAGGED) {
        return Err(FrameError::Invalid(
            "purge record with a key id or without a namespace",
        ));
    }
    let created_ms = u64_at(header, OFF_CREATED_MS);
    Ok(Frame {
        kind,
        flags,
        meta_len,
        namespace,
        key_id,
        body_len,
        created_ms,
    })
}

/// Decodes the commit area of a header whose frame is valid. `Err` when the commit area is
/// inconsistent (torn commit or damage): such a record is never served.
pub fn decode_state(header: &[u8]) -> Result<State, &'static str> {
    decode_state_checked(header, true)
}

/// [`decode_state`] for a record whose commit area was verified before (see
/// [`decode_verified_frame`]): the state word is still read and must say committed or aborted,
/// but the commit check is not recomputed.
pub fn decode_verified_state(header: &[u8]) -> Result<State, &'static str> {
    decode_state_checked(header, false)
}

fn decode_state_checked(header: &[u8], check: bool) -> Result<State, &'static str> {
    if header.len() < HEADER_BYTES {
        return Err("header truncated");
    }
    let state = u32_at(header, OFF_STATE);
    let seal = Seal {
        body_checksum: u64_at(header, OFF_BODY_CHECKSUM),
        lsn: u64_at(header, OFF_COMMIT_LSN),
    };
    match state {
        STATE_PENDING => Ok(State::Pending),
        STATE_COMMITTED | STATE_ABORTED => {
            let header_checksum = u64_at(header, OFF_HEADER_CHECKSUM);
            if check
                && u32_at(header, OFF_COMMIT_CHECK) != commit_check(header_checksum, seal, state)
            {
                return Err("commit area checksum mismatch");
            }
            Ok(if state == STATE_COMMITTED {
                State::Committed(seal)
            } else {
                State::Aborted
            })
        }
        _ => Err("unknown record state"),
    }
}

/// The body checksum stored in a committed header: BLAKE3 of the body, first 8 bytes.
pub fn body_checksum(body: &[u8]) -> u64 {
    checksum64(&[body])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_frame(meta_len: u16, body_len: u64) -> Frame {
        Frame {
            kind: Kind::Ac,
            flags: 0,
            meta_len,
            namespace: 0x0d0c_0b0a,
            key_id: KeyId([0xAB; 32]),
            body_len,
            created_ms: 0x0102_0304_0506_0708,
        }
    }

    fn encode(meta: &[u8], body: &[u8], lsn: u64) -> Vec<u8> {
        let frame = sample_frame(meta.len() as u16, body.len() as u64);
        let layout = layout(frame.meta_len, frame.body_len).unwrap();
        let mut out = vec![0u8; layout.record_bytes as usize];
        let mut header = [0u8; HEADER_BYTES];
        encode_frame(&frame, meta, &mut header);
        let seal = Seal {
            body_checksum: body_checksum(body),
            lsn,
        };
        let sum = u64_at(&header, OFF_HEADER_CHECKSUM);
        header[FRAME_BYTES..].copy_from_slice(&encode_commit(sum, seal, STATE_COMMITTED));
        out[..HEADER_BYTES].copy_from_slice(&header);
        out[HEADER_BYTES..HEADER_BYTES + meta.len()].copy_from_slice(meta);
        let body_at = layout.body_offset as usize;
        out[body_at..body_at + body.len()].copy_from_slice(body);
        out
    }

    const GOLDEN_HEADER_CHECKSUM: u64 = 0xeef3_1349_82d4_423a;
    const GOLDEN_HEADER_CHECKSUM_V1: u64 = 0xb992_3106_02a2_3707;

    /// Golden bytes: pins every offset and the checksum scope. If this test fails the on-disk
    /// format changed: bump RECORD_VERSION and document it in FORMAT.md instead of editing this.
    #[test]
    fn golden_bytes() {
        let meta = [1u8, b'k', 1, 0, b'v'];
        let record = encode(&meta, b"hello", 7);
        let expected_head = concat!(
            "54535243",
            "0200",
            "02",
            "00",
            "0000",
            "0500",
            "0a0b0c0d",
            "abababababababababababababababababababababababababababababababab",
            "0500000000000000",
            "0500000000000000",
            "0807060504030201",
        );
        assert_eq!(
            super::super::digest::to_hex(&record[..OFF_HEADER_CHECKSUM]),
            expected_head
        );
        let header_sum = checksum64(&[&record[..OFF_HEADER_CHECKSUM], &meta]);
        assert_eq!(u64_at(&record, OFF_HEADER_CHECKSUM), header_sum);
        assert_eq!(u64_at(&record, OFF_BODY_CHECKSUM), checksum64(&[b"hello"]));
        assert_eq!(u64_at(&record, OFF_COMMIT_LSN), 7);
        assert_eq!(&record[OFF_STATE..HEADER_BYTES], b"CMIT");
        assert_eq!(&record[104..109], &meta);
        assert_eq!(&record[109..112], &[0, 0, 0], "pad to 8");
        assert_eq!(&record[112..117], b"hello");
        assert_eq!(record.len(), 120);
        // The checksums themselves are pinned too (BLAKE3 is a fixed function).
        assert_eq!(header_sum, GOLDEN_HEADER_CHECKSUM);
        let (frame, layout) = decode_frame(&record).unwrap();
        assert_eq!(frame, sample_frame(5, 5));
        assert_eq!(
            layout,
            Layout {
                meta_offset: 104,
                body_offset: 112,
                record_bytes: 120
            }
        );
        assert_eq!(
            decode_state(&record).unwrap(),
            State::Committed(Seal {
                body_checksum: checksum64(&[b"hello"]),
                lsn: 7
            })
        );
    }

    /// Compatibility: a version 1 record (data directories written before namespace tags) is
    /// still read, as untagged. The bytes are those version 1 wrote: the same header with
    /// version 1 and zeros at offset 12, pinned by the version 1 header checksum.
    #[test]
    fn version_1_records_read_as_untagged() {
        let meta = [1u8, b'k', 1, 0, b'v'];
        let mut record = encode(&meta, b"hello", 7);
        record[OFF_VERSION..OFF_KIND].copy_from_slice(&1u16.to_le_bytes());
        record[OFF_NAMESPACE..OFF_KEY_ID].fill(0);
        let sum = checksum64(&[&record[..OFF_HEADER_CHECKSUM], &meta]);
        assert_eq!(sum, GOLDEN_HEADER_CHECKSUM_V1, "not the version 1 bytes");
        record[OFF_HEADER_CHECKSUM..FRAME_BYTES].copy_from_slice(&sum.to_le_bytes());
        let seal = Seal {
            body_checksum: checksum64(&[b"hello"]),
            lsn: 7,
        };
        record[FRAME_BYTES..HEADER_BYTES].copy_from_slice(&encode_commit(
            sum,
            seal,
            STATE_COMMITTED,
        ));
        let (frame, _) = decode_frame(&record).unwrap();
        assert_eq!(
            frame,
            Frame {
                namespace: NAMESPACE_UNTAGGED,
                ..sample_frame(5, 5)
            }
        );
        assert_eq!(decode_state(&record).unwrap(), State::Committed(seal));
        // Version 1 knew neither a tag nor purge records: either is damage there.
        let mut tagged = record.clone();
        tagged[OFF_NAMESPACE] = 1;
        let sum = checksum64(&[&tagged[..OFF_HEADER_CHECKSUM], &meta]);
        tagged[OFF_HEADER_CHECKSUM..FRAME_BYTES].copy_from_slice(&sum.to_le_bytes());
        assert_eq!(
            decode_frame(&tagged),
            Err(FrameError::Invalid("reserved bytes not zero"))
        );
    }

    #[test]
    fn purge_records_name_a_namespace_and_no_key() {
        let purge = |namespace: u32, key: u8| {
            let frame = Frame {
                kind: Kind::Blob,
                flags: FLAG_PURGE,
                meta_len: 0,
                namespace,
                key_id: KeyId([key; 32]),
                body_len: 0,
                created_ms: 1,
            };
            let mut header = [0u8; HEADER_BYTES];
            encode_frame(&frame, &[], &mut header);
            decode_frame(&header).map(|(frame, _)| frame.namespace)
        };
        assert_eq!(purge(3, 0), Ok(3));
        assert!(purge(3, 1).is_err(), "a purge names no key");
        assert!(
            purge(NAMESPACE_UNTAGGED, 0).is_err(),
            "untagged entries cannot be purged"
        );
    }

    #[test]
    fn every_single_bit_flip_in_the_frame_is_detected() {
        let meta = [1u8, b'k', 1, 0, b'v'];
        let record = encode(&meta, b"hello", 7);
        for bit in 0..(HEADER_BYTES + meta.len()) * 8 {
            let mut damaged = record.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            let frame_ok = decode_frame(&damaged).ok();
            let state_ok = frame_ok.and_then(|_| decode_state(&damaged).ok());
            let still_committed_same = matches!(state_ok, Some(State::Committed(s)) if s.lsn == 7
                && s.body_checksum == checksum64(&[b"hello"]));
            assert!(!still_committed_same, "bit {bit} flipped undetected");
        }
    }

    #[test]
    fn zero_bytes_are_empty_and_short_input_is_short() {
        assert_eq!(decode_frame(&[0u8; 200]), Err(FrameError::Empty));
        assert_eq!(decode_frame(&[0u8; 10]), Err(FrameError::Empty));
        let record = encode(b"", b"0123456789", 1);
        assert_eq!(
            decode_frame(&record[..record.len() - 1]),
            Err(FrameError::Short)
        );
        assert_eq!(decode_frame(&record[..50]), Err(FrameError::Short));
    }

    #[test]
    fn lengths_beyond_four_gib_compute_without_overflow() {
        let five_gib = 5u64 << 30;
        let layout = layout(0, five_gib + 3).unwrap();
        assert_eq!(layout.body_offset, 104);
        assert_eq!(layout.record_bytes, 104 + five_gib + 8);
        assert!(super::layout(u16::MAX, u64::MAX - 4).is_none());
    }

    #[test]
    fn newer_version_is_reported_as_such() {
        let mut record = encode(b"", b"x", 1);
        record[OFF_VERSION] = 3;
        let sum = checksum64(&[&record[..OFF_HEADER_CHECKSUM]]);
        record[OFF_HEADER_CHECKSUM..FRAME_BYTES].copy_from_slice(&sum.to_le_bytes());
        assert_eq!(decode_frame(&record), Err(FrameError::TooNew(3)));
    }
}
