//! zstd for `compressed-blobs/zstd/…` ByteStream resources, streaming and bounded.
//!
//! * [`ZstdUploadDecoder`]: a compressed upload is decompressed as its messages arrive; the
//!   output goes to a caller-supplied sink (the store reservation and the digest hasher) in
//!   pieces of at most [`ZSTD_PIECE_BYTES`]. Output beyond the uncompressed size named in the
//!   resource name is refused at once, so a decompression bomb costs at most that size; a
//!   short or unfinished frame is refused at the end. Both are INVALID_ARGUMENT, as REAPI
//!   requires for uploads whose decompressed data does not match.
//! * [`ZstdReadEncoder`]: compresses a stored (raw) blob for a compressed Read, chunk by chunk.
//!
//! Crate choice: `zstd` (bindings to the reference C library, built by `cc`), for its
//! decompression speed and mature streaming encoder; `ruzstd` (pure Rust) decodes several
//! times slower and its encoder offers only the fastest level.

use zstd::stream::raw::{Decoder, Encoder, InBuffer, Operation, OutBuffer};

use crate::grpc::Status;

/// Output piece size: zstd's recommended streaming output size (`ZSTD_DStreamOutSize`, one
/// 128 KiB block), so each `decompress_stream` call can flush a whole block.
pub const ZSTD_PIECE_BYTES: usize = 128 << 10;

/// Compression level for compressed Reads: level 1 compresses at several hundred MB/s per core,
/// so it does not become the bottleneck of a download (REAPI lets servers choose any level).
pub const ZSTD_READ_LEVEL: i32 = 1;

/// Streaming decompressor of one compressed upload.
pub struct ZstdUploadDecoder {
    decoder: Decoder<'static>,
    scratch: Vec<u8>,
    expected_bytes: u64,
    produced_bytes: u64,
    /// `decompress_stream` returned 0: the last frame is complete and flushed.
    frame_complete: bool,
}

impl std::fmt::Debug for ZstdUploadDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZstdUploadDecoder")
            .field("expected_bytes", &self.expected_bytes)
            .field("produced_bytes", &self.produced_bytes)
            .finish()
    }
}

impl ZstdUploadDecoder {
    /// `expected_bytes`: the uncompressed size from the resource name.
    pub fn new(expected_bytes: u64) -> Result<ZstdUploadDecoder, Status> {
        let decoder =
            Decoder::new().map_err(|error| Status::internal(format!("zstd decoder: {error}")))?;
        Ok(ZstdUploadDecoder {
            decoder,
            scratch: vec![0u8; ZSTD_PIECE_BYTES],
            expected_bytes,
            produced_bytes: 0,
            frame_complete: true,
        })
    }

    /// Decompresses `input` (any slice of the compressed stream), handing each decompressed
    /// piece to `sink`. Output beyond the expected size is INVALID_ARGUMENT before it reaches
    /// the sink. Runs without yielding for at most `expected_bytes` of output; callers yield
    /// between messages.
    pub fn decompress(
        &mut self,
        input: &[u8],
        mut sink: impl FnMut(&[u8]) -> Result<(), Status>,
    ) -> Result<(), Status> {
        let mut input = InBuffer::around(input);
        loop {
            let consumed_before = input.pos();
            let mut output = OutBuffer::around(&mut self.scratch[..]);
            let hint = self.decoder.run(&mut input, &mut output).map_err(|error| {
                Status::invalid_argument(format!("upload is not valid zstd: {error}"))
            })?;
            let written = output.pos();
            // A call that neither consumed nor produced anything (probing for more output
            // after a full buffer) returns the size hint of a next frame; it says nothing
            // about the frame just decoded.
            if written > 0 || input.pos() > consumed_before {
                self.frame_complete = hint == 0;
            }
            if written > 0 {
                self.produced_bytes += written as u64;
                if self.produced_bytes > self.expected_bytes {
                    return Err(Status::invalid_argument(format!(
                        "upload decompresses to more than the {} bytes in the resource name",
                        self.expected_bytes
                    )));
                }
                sink(&self.scratch[..written])?;
            }
            let input_done = input.pos() == input.src.len();
            // A full output buffer may hide more output; otherwise stop once input is used up.
            if input_done && written < self.scratch.len() {
                return Ok(());
            }
        }
    }

    /// Call after the last compressed byte: the frame must be complete and the output exactly
    /// the expected size. Returns the uncompressed size.
    pub fn finish(self) -> Result<u64, Status> {
        if !self.frame_complete {
            return Err(Status::invalid_argument("upload ended inside a zstd frame"));
        }
        if self.produced_bytes != self.expected_bytes {
            return Err(Status::invalid_argument(format!(
                "upload decompresses to {} bytes, the resource name says {}",
                self.produced_bytes, self.expected_bytes
            )));
        }
        Ok(self.produced_bytes)
    }
}

/// Streaming compressor of one compressed Read.
pub struct ZstdReadEncoder {
    encoder: Encoder<'static>,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for ZstdReadEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZstdReadEncoder").finish()
    }
}

impl ZstdReadEncoder {
    pub fn new() -> Result<ZstdReadEncoder, Status> {
        let encoder = Encoder::new(ZSTD_READ_LEVEL)
            .map_err(|error| Status::internal(format!("zstd encoder: {error}")))?;
        Ok(ZstdReadEncoder {
            encoder,
            scratch: vec![0u8; ZSTD_PIECE_BYTES],
        })
    }

    /// Compresses `input`, appending compressed bytes to `out` (zstd buffers internally, so
    /// `out` may grow by less than a block until [`Self::finish`]).
    pub fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), Status> {
        let mut input = InBuffer::around(input);
        while input.pos() < input.src.len() {
            let mut output = OutBuffer::around(&mut self.scratch[..]);
            self.encoder
                .run(&mut input, &mut output)
                .map_err(|error| Status::internal(format!("zstd compress: {error}")))?;
            let written = output.pos();
            out.extend_from_slice(&self.scratch[..written]);
        }
        Ok(())
    }

    /// Ends the frame, appending the remaining compressed bytes to `out`.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), Status> {
        loop {
            let mut output = OutBuffer::around(&mut self.scratch[..]);
            let remaining = self
                .encoder
                .finish(&mut output, true)
                .map_err(|error| Status::internal(format!("zstd finish: {error}")))?;
            let written = output.pos();
            out.extend_from_slice(&self.scratch[..written]);
            if remaining == 0 {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grpc::Code;

    fn sample(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| ((i * 7) % 251) as u8 ^ (i >> 12) as u8)
            .collect()
    }

    fn decode_in_chunks(compressed: &[u8], expected: u64, chunk: usize) -> Result<Vec<u8>, Status> {
        let mut decoder = ZstdUploadDecoder::new(expected)?;
        let mut output = Vec::new();
        for piece in compressed.chunks(chunk.max(1)) {
            decoder.decompress(piece, |bytes| {
                assert!(bytes.len() <= ZSTD_PIECE_BYTES);
                output.extend_from_slice(bytes);
                Ok(())
            })?;
        }
        decoder.finish()?;
        Ok(output)
    }

    #[test]
    fn round_trips_through_our_encoder_at_any_chunking() {
        for len in [0usize, 1, 1000, 300_000, 1 << 20] {
            let data = sample(len);
            let mut encoder = ZstdReadEncoder::new().unwrap();
            let mut compressed = Vec::new();
            for piece in data.chunks(70_000) {
                encoder.compress(piece, &mut compressed).unwrap();
            }
            encoder.finish(&mut compressed).unwrap();
            // The reference implementation agrees with our streaming encoder.
            assert_eq!(
                zstd::decode_all(&compressed[..]).unwrap(),
                data,
                "len {len}"
            );
            for chunk in [1usize, 17, 4096, 1 << 20] {
                if len > 100_000 && chunk < 4096 {
                    continue; // byte-by-byte over big inputs only slows the test down
                }
                let decoded = decode_in_chunks(&compressed, len as u64, chunk).unwrap();
                assert_eq!(decoded, data, "len {len} chunk {chunk}");
            }
        }
    }

    #[test]
    fn decompression_bomb_is_stopped_at_the_declared_size() {
        let zeros = vec![0u8; 8 << 20];
        let compressed = zstd::encode_all(&zeros[..], 3).unwrap();
        assert!(compressed.len() < 4096);
        let mut decoder = ZstdUploadDecoder::new(1000).unwrap();
        let mut delivered = 0usize;
        let error = decoder
            .decompress(&compressed, |bytes| {
                delivered += bytes.len();
                Ok(())
            })
            .unwrap_err();
        assert_eq!(error.code, Code::InvalidArgument);
        assert_eq!(
            error.message,
            "upload decompresses to more than the 1000 bytes in the resource name"
        );
        assert_eq!(delivered, 0, "the oversized piece never reaches the sink");
    }

    #[test]
    fn short_output_truncated_frame_and_garbage_are_invalid_argument() {
        let data = sample(5000);
        let compressed = zstd::encode_all(&data[..], 3).unwrap();
        let short = decode_in_chunks(&compressed, 5001, 100).unwrap_err();
        assert_eq!(
            short.message,
            "upload decompresses to 5000 bytes, the resource name says 5001"
        );
        let truncated = decode_in_chunks(&compressed[..compressed.len() - 3], 5000, 100);
        assert_eq!(
            truncated.unwrap_err().message,
            "upload ended inside a zstd frame"
        );
        let garbage = decode_in_chunks(b"this is not zstd at all", 23, 5).unwrap_err();
        assert_eq!(garbage.code, Code::InvalidArgument);
        assert!(
            garbage.message.starts_with("upload is not valid zstd"),
            "{garbage}"
        );
    }

    #[test]
    fn concatenated_frames_decode_as_one_stream() {
        let (a, b) = (sample(3000), sample(7000));
        let mut compressed = zstd::encode_all(&a[..], 1).unwrap();
        compressed.extend(zstd::encode_all(&b[..], 19).unwrap());
        let decoded = decode_in_chunks(&compressed, 10_000, 333).unwrap();
        assert_eq!(decoded, [a, b].concat());
    }

    #[test]
    fn sink_errors_stop_decompression() {
        let compressed = zstd::encode_all(&sample(1000)[..], 3).unwrap();
        let mut decoder = ZstdUploadDecoder::new(1000).unwrap();
        let error = decoder
            .decompress(&compressed, |_| {
                Err(Status::resource_exhausted("store full"))
            })
            .unwrap_err();
        assert_eq!(error, Status::resource_exhausted("store full"));
    }
}
