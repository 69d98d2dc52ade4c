//! Property tests: decoding random and mutated bytes as records, segments, checkpoints and
//! metadata never panics, and whatever decodes stays within the bytes it was given.

use proptest::prelude::*;

use tessera::store::checkpoint::{self, CheckpointHeader, Position};
use tessera::store::index::{Entry, Index};
use tessera::store::record::{
    self, Frame, Seal, HEADER_BYTES, OFF_HEADER_CHECKSUM, STATE_COMMITTED,
};
use tessera::store::scan::{Scanner, Step};
use tessera::store::segment::SegmentHeader;
use tessera::store::{KeyId, Kind, Meta};

fn valid_record(body: &[u8], meta: &Meta) -> Vec<u8> {
    let frame = Frame {
        kind: Kind::Blob,
        flags: 0,
        meta_len: meta.encoded().len() as u16,
        namespace: 1,
        key_id: KeyId([3; 32]),
        body_len: body.len() as u64,
        created_ms: 1,
    };
    let layout = record::layout(frame.meta_len, frame.body_len).unwrap();
    let mut out = vec![0u8; layout.record_bytes as usize];
    let mut header = [0u8; HEADER_BYTES];
    record::encode_frame(&frame, meta.encoded(), &mut header);
    let sum = record::u64_at(&header, OFF_HEADER_CHECKSUM);
    let seal = Seal {
        body_checksum: record::body_checksum(body),
        lsn: 9,
    };
    header[record::FRAME_BYTES..].copy_from_slice(&record::encode_commit(
        sum,
        seal,
        STATE_COMMITTED,
    ));
    out[..HEADER_BYTES].copy_from_slice(&header);
    out[HEADER_BYTES..HEADER_BYTES + meta.encoded().len()].copy_from_slice(meta.encoded());
    let at = layout.body_offset as usize;
    out[at..at + body.len()].copy_from_slice(body);
    out
}

fn check_decode(bytes: &[u8]) {
    if let Ok((frame, layout)) = record::decode_frame(bytes) {
        assert!(layout.record_bytes <= bytes.len() as u64);
        assert!(layout.body_offset + frame.body_len <= layout.record_bytes);
        let _ = record::decode_state(bytes);
    }
    let mut with_segment_header = vec![0u8; 64];
    with_segment_header.extend_from_slice(bytes);
    let mut last = 0;
    for step in Scanner::new(&with_segment_header, 0) {
        if let Step::Record { offset, .. } = step {
            assert!(offset >= last, "the scan moves forward");
            last = offset + 1;
        }
    }
}

fn sample_checkpoint(entries: u8) -> Vec<u8> {
    let mut index = Index::default();
    for i in 0..entries {
        let entry = Entry {
            seq: 1,
            offset: 64 + u64::from(i) * 128,
            record_bytes: 128,
            lsn: u64::from(i) + 1,
            kind: Kind::Ac,
            namespace: u32::from(i % 2),
            verified: false,
        };
        index.apply_put(KeyId([i; 32]), entry);
    }
    let header = CheckpointHeader {
        version: tessera::store::checkpoint::CHECKPOINT_VERSION,
        shard: 0,
        entry_count: u64::from(entries),
        replay_from: Position { seq: 1, offset: 64 },
        next_lsn: 99,
        next_seq: 2,
        hash_seeds: index.seeds(),
    };
    checkpoint::encode(header, &index)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        check_decode(&bytes);
        let _ = checkpoint::decode(&bytes, 0);
        let _ = SegmentHeader::decode(&bytes);
        if let Ok(meta) = Meta::decode(&bytes) {
            let mut rebuilt = Meta::new();
            for (name, value) in meta.iter() {
                rebuilt.push(name, value).unwrap();
            }
            prop_assert_eq!(rebuilt.encoded(), &bytes[..]);
        }
    }

    #[test]
    fn mutated_records_never_panic_and_never_pass_as_the_original_with_other_content(
        body in proptest::collection::vec(any::<u8>(), 0..300),
        mutations in proptest::collection::vec((any::<usize>(), 1u8..=255), 1..4),
        truncate in proptest::option::of(any::<usize>()),
    ) {
        let mut meta = Meta::new();
        meta.push("content-type", b"x/y").unwrap();
        let original = valid_record(&body, &meta);
        let mut bytes = original.clone();
        for (at, mask) in &mutations {
            let at = at % bytes.len();
            bytes[at] ^= mask;
        }
        if let Some(len) = truncate {
            bytes.truncate(len % (bytes.len() + 1));
        }
        check_decode(&bytes);
        // Whatever still decodes as committed with a matching body checksum must carry the
        // original frame and body (only uncovered padding may differ).
        if let (Ok((frame, layout)), Ok(record::State::Committed(seal))) = (record::decode_frame(&bytes), record::decode_state(&bytes)) {
            let at = layout.body_offset as usize;
            let stored = &bytes[at..at + frame.body_len as usize];
            if record::body_checksum(stored) == seal.body_checksum {
                prop_assert_eq!(stored, &body[..]);
                prop_assert_eq!(&bytes[..HEADER_BYTES], &original[..HEADER_BYTES]);
            }
        }
    }

    #[test]
    fn mutated_checkpoints_are_rejected(entries in 0u8..20, at in any::<usize>(), mask in 1u8..=255) {
        let original = sample_checkpoint(entries);
        prop_assert!(checkpoint::decode(&original, 0).is_ok());
        let mut bytes = original.clone();
        let at = at % bytes.len();
        bytes[at] ^= mask;
        prop_assert!(checkpoint::decode(&bytes, 0).is_err(), "mutation at {} accepted", at);
        prop_assert!(checkpoint::decode(&original[..at], 0).is_err());
    }
}
