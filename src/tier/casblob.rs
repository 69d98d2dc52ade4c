//! Reading bazel-remote's `cas.v2/` blobs (its default `zstd` storage mode), so a bucket filled
//! by a bazel-remote fleet keeps its hits. Read from bazel-remote's source
//! (`cache/disk/casblob`); all integers little-endian:
//!
//! ```text
//! u32 magic 0x184D2A50        a zstd skippable frame, so the file is also valid .zst
//! u32 frame size              the bytes of the header after these 8: 21 + 8·N
//! i64 uncompressed size       > 0
//! u8  compression             0 identity, 1 zstd
//! u32 chunk size              1 MiB when written by bazel-remote
//! i64 N                       ≥ 2: chunk count + 1
//! i64 offsets[N]              file offset of each chunk, then the file size
//! chunks                      zstd: each chunk an independent zstd frame
//!                             identity: the bytes right after the header
//! ```

/// The zstd skippable-frame magic bazel-remote's header starts with.
const MAGIC: u32 = 0x184D_2A50;
/// Bytes before the offset table: magic, frame size, size, compression, chunk size, N.
const TABLE_OFFSET: usize = 4 + 4 + 8 + 1 + 4 + 8;
/// Offsets accepted in one header (a 1 GiB blob in 1 MiB chunks has 1,025): a bound on what a
/// corrupt header can make us allocate.
const OFFSETS_MAX: usize = 1 << 20;

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn i64_at(bytes: &[u8], at: usize) -> Option<i64> {
    Some(i64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// The uncompressed blob of a `cas.v2/` object, or why not. Blobs larger than `max_bytes` are
/// refused before anything is decompressed.
pub fn decode(file: &[u8], max_bytes: u64) -> Result<Vec<u8>, String> {
    let short = || "shorter than its header".to_string();
    if u32_at(file, 0).ok_or_else(short)? != MAGIC {
        return Err("no bazel-remote casblob magic".into());
    }
    let frame = u32_at(file, 4).ok_or_else(short)? as usize;
    let size = i64_at(file, 8).ok_or_else(short)?;
    let compression = *file.get(16).ok_or_else(short)?;
    let count = i64_at(file, 21).ok_or_else(short)?;
    if size <= 0 || size as u64 > max_bytes {
        return Err(format!("uncompressed size {size} out of range"));
    }
    if !(2..=OFFSETS_MAX as i64).contains(&count) {
        return Err(format!("{count} chunk offsets"));
    }
    let count = count as usize;
    if frame != 8 + 1 + 4 + 8 + count * 8 {
        return Err(format!("frame size {frame} does not match {count} offsets"));
    }
    let header = TABLE_OFFSET + count * 8;
    let size = size as usize;
    match compression {
        0 => {
            let body = file.get(header..).ok_or_else(short)?;
            if body.len() != size {
                return Err(format!(
                    "{} bytes after the header, {size} promised",
                    body.len()
                ));
            }
            Ok(body.to_vec())
        }
        1 => {
            let offsets: Vec<usize> = (0..count)
                .map(|i| i64_at(file, TABLE_OFFSET + i * 8).map(|o| o as usize))
                .collect::<Option<_>>()
                .ok_or_else(short)?;
            if offsets.last() != Some(&file.len())
                || offsets[0] < header
                || offsets.windows(2).any(|w| w[0] >= w[1])
            {
                return Err("chunk offsets are not increasing up to the file size".into());
            }
            let mut out = Vec::with_capacity(size);
            for pair in offsets.windows(2) {
                let chunk = &file[pair[0]..pair[1]];
                let left = size.saturating_sub(out.len());
                let decoded =
                    zstd::bulk::decompress(chunk, left).map_err(|e| format!("zstd chunk: {e}"))?;
                out.extend_from_slice(&decoded);
            }
            if out.len() != size {
                return Err(format!("{} bytes decoded, {size} promised", out.len()));
            }
            Ok(out)
        }
        other => Err(format!("compression type {other}")),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A `cas.v2/` file as bazel-remote writes it (zstd, `chunk` bytes per chunk).
    pub(crate) fn encode(blob: &[u8], chunk: usize) -> Vec<u8> {
        let chunks: Vec<Vec<u8>> = blob
            .chunks(chunk)
            .map(|c| zstd::bulk::compress(c, 1).unwrap())
            .collect();
        let count = chunks.len() + 1;
        let header = TABLE_OFFSET + count * 8;
        let mut file = Vec::new();
        file.extend_from_slice(&MAGIC.to_le_bytes());
        file.extend_from_slice(&((21 + count * 8) as u32).to_le_bytes());
        file.extend_from_slice(&(blob.len() as i64).to_le_bytes());
        file.push(1);
        file.extend_from_slice(&(chunk as u32).to_le_bytes());
        file.extend_from_slice(&(count as i64).to_le_bytes());
        let mut offset = header;
        for c in &chunks {
            file.extend_from_slice(&(offset as i64).to_le_bytes());
            offset += c.len();
        }
        file.extend_from_slice(&(offset as i64).to_le_bytes());
        for c in &chunks {
            file.extend_from_slice(c);
        }
        file
    }

    #[test]
    fn chunked_zstd_blobs_decode_and_damage_is_refused() {
        let blob: Vec<u8> = (0..10_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for chunk in [1 << 20, 4096, 7] {
            let file = encode(&blob, chunk);
            assert_eq!(decode(&file, u64::MAX).unwrap(), blob, "chunk {chunk}");
        }
        let file = encode(&blob, 4096);
        assert!(
            decode(&file, blob.len() as u64 - 1).is_err(),
            "over the size bound"
        );
        for cut in [0, 3, 20, TABLE_OFFSET + 8, file.len() - 1] {
            assert!(decode(&file[..cut], u64::MAX).is_err(), "cut at {cut}");
        }
        let mut bad = file.clone();
        bad[0] ^= 1;
        assert!(decode(&bad, u64::MAX).is_err());
        let mut bad = file.clone();
        bad[16] = 7;
        assert!(decode(&bad, u64::MAX).is_err());
        let mut bad = file;
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        assert!(decode(&bad, u64::MAX).is_err());
    }

    #[test]
    fn identity_blobs_decode() {
        let blob = b"not compressed".to_vec();
        let mut file = Vec::new();
        file.extend_from_slice(&MAGIC.to_le_bytes());
        file.extend_from_slice(&(21u32 + 16).to_le_bytes());
        file.extend_from_slice(&(blob.len() as i64).to_le_bytes());
        file.push(0);
        file.extend_from_slice(&(1u32 << 20).to_le_bytes());
        file.extend_from_slice(&2i64.to_le_bytes());
        // bazel-remote leaves the identity offsets as written before the copy.
        file.extend_from_slice(&(TABLE_OFFSET as i64).to_le_bytes());
        file.extend_from_slice(&0i64.to_le_bytes());
        file.extend_from_slice(&blob);
        assert_eq!(decode(&file, u64::MAX).unwrap(), blob);
    }
}
