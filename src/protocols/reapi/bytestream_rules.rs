//! The protocol rules of `google.bytestream.ByteStream` that need no store: the byte range of a
//! Read, zero-copy framing of `ReadResponse` chunks, and the offset bookkeeping of a Write.
//!
//! Spec text is from googleapis `google/bytestream/bytestream.proto` and, for compressed
//! uploads, REAPI `remote_execution.proto` (see [`super::resource_name`]).
//!
//! ```
//! use bytes::Bytes;
//! use tessera::protocols::reapi::bytestream_rules::{read_range, WriteProgress};
//! use tessera::grpc::pb::google::bytestream::WriteRequest;
//! assert_eq!(read_range(2, 0, 10).unwrap(), 2..10);
//! let mut upload = WriteProgress::new("uploads/u/blobs/h/4", false, 4, 0);
//! let step = upload.accept(&WriteRequest {
//!     resource_name: "uploads/u/blobs/h/4".into(),
//!     write_offset: 0,
//!     finish_write: true,
//!     data: Bytes::from_static(b"abcd"),
//! }).unwrap();
//! assert!(step.finish);
//! ```

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

use crate::grpc::pb::google::bytestream::WriteRequest;
use crate::grpc::{Code, Status};

/// Largest `data` of one `ReadResponse`: 1 MiB. grpc-java clients (Bazel) refuse messages over
/// 4 MiB and use a 1 MiB stream window; a 1 MiB chunk is one window and a quarter of that limit.
pub const READ_CHUNK_BYTES_MAX: usize = 1 << 20;

const _: () = assert!(
    READ_CHUNK_BYTES_MAX + READ_RESPONSE_HEAD_BYTES_MAX
        <= crate::grpc::limits::MESSAGE_SEND_BYTES_MAX as usize,
    "a full ReadResponse fits the send limit"
);

/// `ReadResponse` head: tag of field 10 (1 byte) + the length as a varint (at most 10 bytes).
pub const READ_RESPONSE_HEAD_BYTES_MAX: usize = 11;

/// Wire tag of `ReadResponse.data`: field 10, wire type 2 (LEN) → (10 << 3) | 2.
const READ_RESPONSE_DATA_TAG: u8 = 0x52;

/// The bytes `[offset, end)` a Read returns for a blob of `size` bytes. `read_offset` outside
/// `0..=size` is OUT_OF_RANGE, a negative `read_limit` INVALID_ARGUMENT, a zero limit means to
/// the end (ByteStream spec, ReadRequest).
pub fn read_range(read_offset: i64, read_limit: i64, size: u64) -> Result<Range<u64>, Status> {
    let offset = u64::try_from(read_offset)
        .ok()
        .filter(|&offset| offset <= size)
        .ok_or_else(|| {
            Status::new(
                Code::OutOfRange,
                format!("read_offset {read_offset} is outside the blob of {size} bytes"),
            )
        })?;
    let limit = u64::try_from(read_limit)
        .map_err(|_| Status::invalid_argument(format!("read_limit {read_limit} is negative")))?;
    let end = if limit == 0 {
        size
    } else {
        offset.saturating_add(limit).min(size)
    };
    Ok(offset..end)
}

/// The uncompressed offset a `compressed-blobs/…` Read starts at. REAPI: `read_offset` counts
/// uncompressed bytes, and a non-zero `read_limit` is INVALID_ARGUMENT for compressed reads.
pub fn compressed_read_start(read_offset: i64, read_limit: i64, size: u64) -> Result<u64, Status> {
    if read_limit != 0 {
        return Err(Status::invalid_argument(format!(
            "read_limit {read_limit} on a compressed read; REAPI requires 0"
        )));
    }
    read_range(read_offset, 0, size).map(|range| range.start)
}

/// The protobuf head of a `ReadResponse` whose `data` is `data_len` bytes: send it, then the
/// data itself (see [`crate::grpc::ResponseSink::send_parts`]) so the blob bytes are never copied into
/// an encoding buffer.
pub fn read_response_head(data_len: usize) -> Bytes {
    let mut head = BytesMut::with_capacity(READ_RESPONSE_HEAD_BYTES_MAX);
    if data_len > 0 {
        // proto3 omits an empty bytes field entirely.
        head.put_u8(READ_RESPONSE_DATA_TAG);
        prost::encoding::encode_varint(data_len as u64, &mut head);
    }
    head.freeze()
}

/// Upper bound on the compressed bytes of an upload whose uncompressed size is `size`:
/// zstd's worst case (`ZSTD_compressBound`: size + size/256 + a little) with room for frames
/// split by a streaming client: size + size/64 + 64 KiB.
pub fn compressed_upload_bytes_max(size: u64) -> u64 {
    size.saturating_add(size / 64).saturating_add(64 << 10)
}

/// What to do with one accepted `WriteRequest`.
#[derive(Debug, PartialEq, Eq)]
pub struct WriteStep {
    /// Bytes to append to the upload (compressed bytes for a compressed upload).
    pub data: Bytes,
    /// `finish_write` was set: the upload is complete once `data` is appended.
    pub finish: bool,
}

/// Offset bookkeeping of one `ByteStream.Write` call (ByteStream spec, WriteRequest):
///
/// 1. the first request names the resource; later ones may repeat it, never change it;
/// 2. the first `write_offset` equals what the server already holds for this upload (the
///    `committed_size` QueryWriteStatus reports), later ones the first offset plus the data
///    sent since, so gaps and overlaps are both INVALID_ARGUMENT;
/// 3. nothing may follow `finish_write`;
/// 4. an uncompressed upload may not exceed, and at `finish_write` must equal, the size in the
///    resource name; a compressed one is bounded by [`compressed_upload_bytes_max`] and its
///    decompressed digest is the service's check.
#[derive(Debug)]
pub struct WriteProgress {
    resource_name: String,
    compressed: bool,
    size_bytes: u64,
    next_offset: u64,
    /// Bytes of this upload held so far, including what was committed before this call.
    held_bytes: u64,
    finished: bool,
}

impl WriteProgress {
    /// `committed_bytes`: what the server already holds for this upload (0 for a new one).
    pub fn new(
        resource_name: &str,
        compressed: bool,
        size_bytes: u64,
        committed_bytes: u64,
    ) -> WriteProgress {
        WriteProgress {
            resource_name: resource_name.to_owned(),
            compressed,
            size_bytes,
            next_offset: committed_bytes,
            held_bytes: committed_bytes,
            finished: false,
        }
    }

    /// Checks one request against the rules above and returns its data to append.
    pub fn accept(&mut self, request: &WriteRequest) -> Result<WriteStep, Status> {
        if self.finished {
            return Err(Status::invalid_argument(
                "WriteRequest received after one with finish_write",
            ));
        }
        if !request.resource_name.is_empty() && request.resource_name != self.resource_name {
            return Err(Status::invalid_argument(format!(
                "resource_name changed within one Write call (from {:?} to {:?})",
                self.resource_name, request.resource_name
            )));
        }
        if request.write_offset < 0 || request.write_offset as u64 != self.next_offset {
            return Err(Status::invalid_argument(format!(
                "write_offset {} but {} bytes are held; offsets must continue exactly",
                request.write_offset, self.next_offset
            )));
        }
        let data_len = request.data.len() as u64;
        let held = self.held_bytes + data_len;
        let bound = self.bytes_max();
        if held > bound {
            return Err(Status::invalid_argument(format!(
                "upload has {held} bytes, more than the {bound} allowed for a blob of {} bytes",
                self.size_bytes
            )));
        }
        if request.finish_write && !self.compressed && held != self.size_bytes {
            return Err(Status::invalid_argument(format!(
                "finish_write after {held} bytes, but the resource name says {} bytes",
                self.size_bytes
            )));
        }
        self.next_offset += data_len;
        self.held_bytes = held;
        self.finished = request.finish_write;
        Ok(WriteStep {
            data: request.data.clone(),
            finish: request.finish_write,
        })
    }

    /// Call when the request stream ends: ending without `finish_write` is an error (the bytes
    /// held so far may be kept for a resumed upload).
    pub fn end_of_stream(&self) -> Result<(), Status> {
        if self.finished {
            Ok(())
        } else {
            Err(Status::invalid_argument(format!(
                "Write stream ended after {} bytes without finish_write",
                self.held_bytes
            )))
        }
    }

    /// Bytes held so far (what QueryWriteStatus reports as `committed_size`).
    pub fn held_bytes(&self) -> u64 {
        self.held_bytes
    }

    fn bytes_max(&self) -> u64 {
        if self.compressed {
            compressed_upload_bytes_max(self.size_bytes)
        } else {
            self.size_bytes
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grpc::pb::google::bytestream::ReadResponse;
    use prost::Message;

    fn request(offset: i64, data: impl AsRef<[u8]>, finish: bool) -> WriteRequest {
        WriteRequest {
            resource_name: String::new(),
            write_offset: offset,
            finish_write: finish,
            data: Bytes::copy_from_slice(data.as_ref()),
        }
    }

    #[test]
    fn read_ranges_follow_the_spec() {
        assert_eq!(read_range(0, 0, 10).unwrap(), 0..10);
        assert_eq!(read_range(3, 4, 10).unwrap(), 3..7);
        assert_eq!(read_range(8, 100, 10).unwrap(), 8..10);
        assert_eq!(read_range(10, 0, 10).unwrap(), 10..10);
        assert_eq!(read_range(0, i64::MAX, 10).unwrap(), 0..10);
        assert_eq!(read_range(11, 0, 10).unwrap_err().code, Code::OutOfRange);
        assert_eq!(read_range(-1, 0, 10).unwrap_err().code, Code::OutOfRange);
        assert_eq!(
            read_range(0, -1, 10).unwrap_err(),
            Status::invalid_argument("read_limit -1 is negative")
        );
    }

    #[test]
    fn compressed_reads_take_an_offset_but_no_limit() {
        assert_eq!(compressed_read_start(4, 0, 10).unwrap(), 4);
        assert_eq!(
            compressed_read_start(0, 5, 10).unwrap_err(),
            Status::invalid_argument("read_limit 5 on a compressed read; REAPI requires 0")
        );
        assert_eq!(
            compressed_read_start(11, 0, 10).unwrap_err().code,
            Code::OutOfRange
        );
    }

    #[test]
    fn read_response_head_plus_data_is_the_prost_encoding() {
        for len in [0usize, 1, 127, 128, 16_383, 16_384, READ_CHUNK_BYTES_MAX] {
            let data = Bytes::from(vec![0xa5u8; len]);
            let mut wire = read_response_head(len).to_vec();
            wire.extend_from_slice(&data);
            let reference = ReadResponse { data: data.clone() }.encode_to_vec();
            assert_eq!(wire, reference, "length {len}");
            assert!(read_response_head(len).len() <= READ_RESPONSE_HEAD_BYTES_MAX);
        }
    }

    #[test]
    fn contiguous_upload_succeeds() {
        let mut upload = WriteProgress::new("r", false, 6, 0);
        let first = WriteRequest {
            resource_name: "r".into(),
            ..request(0, b"abc", false)
        };
        assert_eq!(
            upload.accept(&first).unwrap().data,
            Bytes::from_static(b"abc")
        );
        assert!(upload.end_of_stream().is_err(), "not finished yet");
        let empty_keepalive = upload.accept(&request(3, b"", false)).unwrap();
        assert!(!empty_keepalive.finish);
        let last = upload.accept(&request(3, b"def", true)).unwrap();
        assert!(last.finish);
        assert_eq!(upload.held_bytes(), 6);
        upload.end_of_stream().unwrap();
    }

    #[test]
    fn empty_blob_is_one_finishing_message() {
        // Bazel 4.2.3 Chunker.emptyChunk: offset 0, no data, finish_write.
        let mut upload = WriteProgress::new("r", false, 0, 0);
        assert!(upload.accept(&request(0, b"", true)).unwrap().finish);
    }

    #[test]
    fn resumed_upload_starts_at_the_committed_size() {
        let mut upload = WriteProgress::new("r", false, 6, 4);
        assert_eq!(
            upload
                .accept(&request(0, b"abcdef", true))
                .unwrap_err()
                .message,
            "write_offset 0 but 4 bytes are held; offsets must continue exactly"
        );
        let mut upload = WriteProgress::new("r", false, 6, 4);
        assert!(upload.accept(&request(4, b"ef", true)).unwrap().finish);
    }

    #[test]
    fn bad_sequences_are_invalid_argument() {
        let cases: Vec<(Vec<WriteRequest>, &str)> = vec![
            (
                vec![request(0, b"ab", false), request(3, b"c", false)],
                "write_offset 3 but 2 bytes are held; offsets must continue exactly",
            ),
            (
                vec![request(0, b"ab", false), request(1, b"bc", false)],
                "write_offset 1 but 2 bytes are held; offsets must continue exactly",
            ),
            (
                vec![request(-1, b"ab", false)],
                "write_offset -1 but 0 bytes are held; offsets must continue exactly",
            ),
            (
                vec![request(0, b"abcdefg", false)],
                "upload has 7 bytes, more than the 6 allowed for a blob of 6 bytes",
            ),
            (
                vec![request(0, b"abc", true)],
                "finish_write after 3 bytes, but the resource name says 6 bytes",
            ),
            (
                vec![request(0, b"abcdef", true), request(6, b"", false)],
                "WriteRequest received after one with finish_write",
            ),
            (
                vec![
                    request(0, b"ab", false),
                    WriteRequest {
                        resource_name: "other".into(),
                        ..request(2, b"c", false)
                    },
                ],
                "resource_name changed within one Write call (from \"r\" to \"other\")",
            ),
        ];
        for (requests, message) in cases {
            let mut upload = WriteProgress::new("r", false, 6, 0);
            let error = requests
                .iter()
                .map(|r| upload.accept(r))
                .find_map(Result::err)
                .unwrap_or_else(|| panic!("expected {message:?}"));
            assert_eq!(error, Status::invalid_argument(message));
        }
    }

    #[test]
    fn compressed_uploads_count_compressed_bytes_and_are_bounded() {
        let size = 1000;
        let bound = compressed_upload_bytes_max(size);
        assert_eq!(bound, 1000 + 15 + 65_536);
        let mut upload = WriteProgress::new("r", true, size, 0);
        // Compressed data is usually smaller; finish_write with fewer bytes than size is fine.
        upload.accept(&request(0, b"zstd-frame", false)).unwrap();
        assert!(upload.accept(&request(10, b"end", true)).unwrap().finish);
        let mut huge = WriteProgress::new("r", true, 0, 0);
        assert_eq!(
            huge.accept(&request(0, vec![0u8; 65_537], false))
                .unwrap_err()
                .code,
            Code::InvalidArgument
        );
    }
}
