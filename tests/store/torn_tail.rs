//! Torn-tail recovery at every byte offset of the last record, and a bit flip at every byte of
//! it: the record is served byte-exact or not at all, earlier records are untouched, `verify`
//! reports what recovery drops, and a torn record's space is reused.

use std::path::{Path, PathBuf};

use tessera::store::{verify, KeyId, Kind, Meta, Shard, StoreConfig};

use crate::common::*;

struct Template {
    _tmp: tempfile::TempDir,
    cfg: StoreConfig,
    a: (KeyId, Vec<u8>),
    b: (KeyId, Vec<u8>),
    /// Offset and length of B's record in the newest segment.
    b_record: (u64, u64),
    /// B's bytes not covered by any checksum (alignment padding).
    b_padding: Vec<(u64, u64)>,
    segment: PathBuf,
}

const B_META_LEN: u64 = 1 + 4 + 2 + 7; // one pair: "etag" = "b-value"
const B_BODY_LEN: u64 = 150;

/// Two records A and B; B is the last one. `clean` closes (checkpoint covers B), otherwise the
/// shard is dropped (B must be replayed).
fn template(clean: bool) -> Template {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(&tmp.path().join("data"), 1);
    let mut shard = open(&cfg);
    let a = (key(Kind::Blob, b"a"), body(1, 200));
    let b = (key(Kind::Ac, b"b"), body(2, B_BODY_LEN as usize));
    put(&mut shard, a.0, Kind::Blob, &a.1).unwrap();
    let mut meta = Meta::new();
    meta.push("etag", b"b-value").unwrap();
    put_with(&mut shard, b.0, Kind::Ac, &b.1, meta, false).unwrap();
    if clean {
        shard.close().unwrap();
    } else {
        drop(shard);
    }
    let segment = newest_segment(&cfg.dir);
    let &(offset, len, id, committed) = records_of(&segment).last().unwrap();
    assert!(id == b.0 && committed);
    let meta_end = offset + 104 + B_META_LEN;
    let body_start = offset + (104 + B_META_LEN).div_ceil(8) * 8;
    let b_padding = vec![
        (meta_end, body_start),
        (body_start + B_BODY_LEN, offset + len),
    ];
    Template {
        _tmp: tmp,
        cfg,
        a,
        b,
        b_record: (offset, len),
        b_padding,
        segment,
    }
}

impl Template {
    /// A fresh copy of the data directory: (its config, its newest segment).
    fn copy(&self, into: &Path) -> (StoreConfig, PathBuf) {
        let _ = std::fs::remove_dir_all(into);
        copy_dir(&self.cfg.dir, into);
        let mut cfg = self.cfg.clone();
        cfg.dir = into.to_path_buf();
        let segment = into.join("shard-0").join(self.segment.file_name().unwrap());
        (cfg, segment)
    }

    fn in_padding(&self, at: u64) -> bool {
        self.b_padding
            .iter()
            .any(|&(from, to)| (from..to).contains(&at))
    }
}

fn torn_at_every_offset(clean: bool) {
    let t = template(clean);
    let original = std::fs::read(&t.segment).unwrap();
    let (offset, len) = t.b_record;
    let scratch = tempfile::tempdir().unwrap();
    let c = (key(Kind::Blob, b"c"), body(3, 64));
    for kept in 0..len {
        let (cfg, segment) = t.copy(&scratch.path().join("d"));
        zero(&segment, offset + kept, offset + len);
        let lost_bytes = original[(offset + kept) as usize..(offset + len) as usize]
            .iter()
            .any(|&x| x != 0);
        let mut shard = Shard::open(&cfg, 0).unwrap();
        assert_eq!(
            get(&mut shard, &t.a.0).as_ref(),
            Some(&t.a.1),
            "A, torn at {kept}"
        );
        let b_now = get(&mut shard, &t.b.0);
        assert_eq!(
            b_now.as_ref(),
            (!lost_bytes).then_some(&t.b.1),
            "B, torn at {kept}"
        );
        put(&mut shard, c.0, Kind::Blob, &c.1).unwrap();
        drop(shard);
        if lost_bytes && !clean {
            let c_record = records_of(&segment)
                .into_iter()
                .find(|r| r.2 == c.0)
                .unwrap();
            assert_eq!(
                c_record.0, offset,
                "the torn record's space is reused (torn at {kept})"
            );
        }
        let mut shard = Shard::open(&cfg, 0).unwrap();
        assert_eq!(get(&mut shard, &t.a.0).as_ref(), Some(&t.a.1));
        assert_eq!(get(&mut shard, &c.0).as_ref(), Some(&c.1));
        assert_eq!(
            get(&mut shard, &t.b.0).as_ref(),
            (!lost_bytes).then_some(&t.b.1)
        );
    }
}

#[test]
fn torn_tail_at_every_byte_offset_after_a_crash() {
    torn_at_every_offset(false);
}

#[test]
fn torn_tail_at_every_byte_offset_behind_a_checkpoint() {
    torn_at_every_offset(true);
}

fn flipped_at_every_offset(clean: bool) {
    let t = template(clean);
    let (offset, len) = t.b_record;
    let scratch = tempfile::tempdir().unwrap();
    for at in offset..offset + len {
        let (cfg, segment) = t.copy(&scratch.path().join("d"));
        flip(&segment, at, 1 << (at % 8));
        let report = verify(&cfg.dir, &mut std::io::sink()).unwrap();
        let mut shard = Shard::open(&cfg, 0).unwrap();
        assert_eq!(
            get(&mut shard, &t.a.0).as_ref(),
            Some(&t.a.1),
            "A, flip at {at}"
        );
        let b_now = get(&mut shard, &t.b.0);
        if t.in_padding(at) {
            assert_eq!(
                b_now.as_ref(),
                Some(&t.b.1),
                "padding flip at {at} is harmless"
            );
        } else {
            assert_eq!(b_now, None, "flip at {at} must not be served");
            assert!(!report.is_clean(), "verify missed a flip at {at}");
        }
    }
}

#[test]
fn bit_flip_at_every_byte_of_the_last_record_after_a_crash() {
    flipped_at_every_offset(false);
}

#[test]
fn bit_flip_at_every_byte_of_the_last_record_behind_a_checkpoint() {
    flipped_at_every_offset(true);
}
