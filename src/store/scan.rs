//! Walking the records of a segment in log order: shared by recovery and `verify`.

use super::record::{self, Frame, FrameError, Layout, State};
use super::segment::SEGMENT_HEADER_BYTES;

/// One step of a scan.
#[derive(Debug)]
pub enum Step {
    /// A record with a valid frame at `offset`; `state` is `Err` when its commit area is damaged.
    Record {
        offset: u64,
        frame: Frame,
        layout: Layout,
        state: Result<State, &'static str>,
    },
    /// Unreadable bytes at `offset`: the scan cannot continue in this segment.
    Damaged { offset: u64, what: String },
    /// Only zeros from `offset` on: the end of the written part.
    End { offset: u64 },
}

/// Iterates the records of `bytes` (a whole segment) from `start`.
pub struct Scanner<'a> {
    bytes: &'a [u8],
    position: Option<u64>,
}

impl<'a> Scanner<'a> {
    pub fn new(bytes: &'a [u8], start: u64) -> Scanner<'a> {
        Scanner {
            bytes,
            position: Some(start.max(SEGMENT_HEADER_BYTES)),
        }
    }
}

impl Iterator for Scanner<'_> {
    type Item = Step;

    fn next(&mut self) -> Option<Step> {
        let offset = self.position?;
        if offset >= self.bytes.len() as u64 {
            self.position = None;
            return Some(Step::End { offset });
        }
        let rest = &self.bytes[offset as usize..];
        match record::decode_frame(rest) {
            Ok((frame, layout)) => {
                let state = record::decode_state(rest);
                self.position = Some(offset + layout.record_bytes);
                Some(Step::Record {
                    offset,
                    frame,
                    layout,
                    state,
                })
            }
            Err(FrameError::Empty) => {
                self.position = None;
                Some(Step::End { offset })
            }
            Err(error) => {
                self.position = None;
                let what = match error {
                    FrameError::Invalid(what) => what.to_string(),
                    FrameError::Short => "record runs past the end of the segment".to_string(),
                    FrameError::TooNew(v) => {
                        format!("record format version {v} is newer than this build")
                    }
                    FrameError::Empty => "zero header".to_string(),
                };
                Some(Step::Damaged { offset, what })
            }
        }
    }
}

/// Whether the body of the record at `offset` matches its committed checksum.
pub fn body_matches(
    bytes: &[u8],
    offset: u64,
    frame: &Frame,
    layout: &Layout,
    body_checksum: u64,
) -> bool {
    let start = (offset + layout.body_offset) as usize;
    record::body_checksum(&bytes[start..start + frame.body_len as usize]) == body_checksum
}

/// The offset of the next valid frame after a damaged one at `damaged_at`, if any: records are
/// 8-byte aligned, so every aligned offset with the record magic is tried. Used to tell damage in
/// the middle of a segment (valid records follow) from a torn tail (nothing valid follows), and
/// by `verify` to keep checking past damage.
pub fn next_valid_frame(bytes: &[u8], damaged_at: u64) -> Option<u64> {
    let align = super::limits::RECORD_ALIGN_BYTES as usize;
    let mut offset = damaged_at as usize + align;
    while offset + record::HEADER_BYTES <= bytes.len() {
        if bytes[offset..offset + 4] == record::RECORD_MAGIC
            && record::decode_frame(&bytes[offset..]).is_ok()
        {
            return Some(offset as u64);
        }
        offset += align;
    }
    None
}
