//! gRPC message framing over an HTTP/2 DATA stream ("Length-Prefixed-Message" in the gRPC HTTP/2
//! spec):
//!
//! ```text
//! byte 0      compressed flag: 0 = identity, 1 = compressed with the call's grpc-encoding
//! bytes 1..5  message length, u32 big-endian
//! bytes 5..   the protobuf message
//! ```
//!
//! [`MessageDecoder`] is incremental: feed it DATA chunks as h2 yields them
//! ([`MessageDecoder::push`]) and take whole messages out ([`MessageDecoder::next_message`]).
//! A message that lies inside one chunk is sliced out of it without a copy. The declared length
//! is checked against the limit as soon as the 5-byte prefix is complete, before any payload is
//! buffered, so an oversized message costs nothing.
//!
//! ```
//! use bytes::Bytes;
//! use tessera::grpc::framing::{encode_prefix, MessageDecoder};
//! let mut decoder = MessageDecoder::new(1024);
//! decoder.push(Bytes::copy_from_slice(&encode_prefix(3)));
//! assert_eq!(decoder.next_message().unwrap(), None); // prefix only: incomplete
//! decoder.push(Bytes::from_static(b"abc"));
//! assert_eq!(decoder.next_message().unwrap(), Some(Bytes::from_static(b"abc")));
//! ```

use std::collections::VecDeque;
use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::status::Status;

/// Length of the prefix in front of every message.
pub const PREFIX_BYTES: usize = 5;

const FLAG_IDENTITY: u8 = 0;
const FLAG_COMPRESSED: u8 = 1;

/// Why a stream of DATA bytes is not a valid sequence of gRPC messages.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// The declared length exceeds the receive limit (RESOURCE_EXHAUSTED, as grpc-java does).
    MessageTooLarge { length_bytes: u32, max_bytes: u32 },
    /// Flag 1 but the call negotiated no `grpc-encoding` (the spec makes this INTERNAL).
    CompressedWithoutEncoding,
    /// A flag byte other than 0 or 1.
    UnknownFlag(u8),
    /// The stream ended inside a message.
    Truncated { buffered_bytes: usize },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::MessageTooLarge {
                length_bytes,
                max_bytes,
            } => write!(
                f,
                "gRPC message of {length_bytes} bytes exceeds the limit of {max_bytes} bytes"
            ),
            FrameError::CompressedWithoutEncoding => f.write_str(
                "gRPC message has the compressed flag set but the call has no grpc-encoding",
            ),
            FrameError::UnknownFlag(flag) => {
                write!(f, "gRPC message prefix has unknown flag byte {flag:#04x}")
            }
            FrameError::Truncated { buffered_bytes } => write!(
                f,
                "request stream ended inside a gRPC message ({buffered_bytes} bytes left over)"
            ),
        }
    }
}

impl std::error::Error for FrameError {}

impl From<FrameError> for Status {
    fn from(error: FrameError) -> Status {
        match error {
            FrameError::MessageTooLarge { .. } => Status::resource_exhausted(error.to_string()),
            _ => Status::internal(error.to_string()),
        }
    }
}

/// The 5-byte prefix of an uncompressed message of `length` bytes.
pub fn encode_prefix(length: u32) -> [u8; PREFIX_BYTES] {
    let mut prefix = [FLAG_IDENTITY; PREFIX_BYTES];
    prefix[1..].copy_from_slice(&length.to_be_bytes());
    prefix
}

/// Frames a protobuf message into one buffer (prefix + encoding), refusing messages over
/// `max_bytes` with RESOURCE_EXHAUSTED.
pub fn encode_message<M: prost::Message>(message: &M, max_bytes: u32) -> Result<Bytes, Status> {
    let length = message.encoded_len();
    let length = u32::try_from(length)
        .ok()
        .filter(|&length| length <= max_bytes)
        .ok_or_else(|| {
            Status::resource_exhausted(format!(
                "response message of {length} bytes exceeds the limit of {max_bytes} bytes"
            ))
        })?;
    let mut buffer = BytesMut::with_capacity(PREFIX_BYTES + length as usize);
    buffer.put_slice(&encode_prefix(length));
    message
        .encode(&mut buffer)
        .expect("buffer was sized from encoded_len");
    Ok(buffer.freeze())
}

/// Incremental decoder of length-prefixed messages. Buffers at most one incomplete message plus
/// the chunk that completes it; see the module docs.
#[derive(Debug)]
pub struct MessageDecoder {
    chunks: VecDeque<Bytes>,
    buffered_bytes: usize,
    message_bytes_max: u32,
}

impl MessageDecoder {
    pub fn new(message_bytes_max: u32) -> MessageDecoder {
        MessageDecoder {
            chunks: VecDeque::new(),
            buffered_bytes: 0,
            message_bytes_max,
        }
    }

    /// Appends a DATA chunk. Callers should drain [`Self::next_message`] before pushing more,
    /// which keeps the buffer bounded by one message plus one chunk.
    pub fn push(&mut self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        self.buffered_bytes += chunk.len();
        self.chunks.push_back(chunk);
    }

    /// Bytes pushed and not yet returned as messages.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered_bytes
    }

    /// The next complete message, `Ok(None)` when more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<Bytes>, FrameError> {
        let Some(prefix) = self.peek_prefix() else {
            return Ok(None);
        };
        match prefix[0] {
            FLAG_IDENTITY => {}
            FLAG_COMPRESSED => return Err(FrameError::CompressedWithoutEncoding),
            flag => return Err(FrameError::UnknownFlag(flag)),
        }
        let length_bytes = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]);
        if length_bytes > self.message_bytes_max {
            return Err(FrameError::MessageTooLarge {
                length_bytes,
                max_bytes: self.message_bytes_max,
            });
        }
        let length = length_bytes as usize;
        if self.buffered_bytes < PREFIX_BYTES + length {
            return Ok(None);
        }
        self.skip(PREFIX_BYTES);
        Ok(Some(self.take(length)))
    }

    /// Call at the end of the request stream: leftover bytes mean a truncated message.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.buffered_bytes == 0 {
            Ok(())
        } else {
            Err(FrameError::Truncated {
                buffered_bytes: self.buffered_bytes,
            })
        }
    }

    fn peek_prefix(&self) -> Option<[u8; PREFIX_BYTES]> {
        if self.buffered_bytes < PREFIX_BYTES {
            return None;
        }
        let mut prefix = [0u8; PREFIX_BYTES];
        let mut filled = 0;
        for chunk in &self.chunks {
            let take = (PREFIX_BYTES - filled).min(chunk.len());
            prefix[filled..filled + take].copy_from_slice(&chunk[..take]);
            filled += take;
            if filled == PREFIX_BYTES {
                break;
            }
        }
        assert_eq!(filled, PREFIX_BYTES, "buffered_bytes counts the chunks");
        Some(prefix)
    }

    fn skip(&mut self, mut count: usize) {
        assert!(count <= self.buffered_bytes);
        self.buffered_bytes -= count;
        while count > 0 {
            let front = self
                .chunks
                .front_mut()
                .expect("buffered_bytes counts the chunks");
            if front.len() <= count {
                count -= front.len();
                self.chunks.pop_front();
            } else {
                front.advance(count);
                count = 0;
            }
        }
    }

    /// Removes `length` bytes from the front: a zero-copy slice when one chunk holds them all.
    fn take(&mut self, length: usize) -> Bytes {
        assert!(length <= self.buffered_bytes);
        if length == 0 {
            return Bytes::new();
        }
        let front_len = self.chunks.front().map_or(0, Bytes::len);
        if length <= front_len {
            self.buffered_bytes -= length;
            let front = self
                .chunks
                .front_mut()
                .expect("length <= front_len and length > 0");
            let message = front.split_to(length);
            if front.is_empty() {
                self.chunks.pop_front();
            }
            return message;
        }
        let mut message = BytesMut::with_capacity(length);
        let mut missing = length;
        while missing > 0 {
            let front = self
                .chunks
                .front_mut()
                .expect("buffered_bytes counts the chunks");
            let part = missing.min(front.len());
            message.put_slice(&front[..part]);
            front.advance(part);
            if front.is_empty() {
                self.chunks.pop_front();
            }
            missing -= part;
        }
        self.buffered_bytes -= length;
        message.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut bytes = encode_prefix(payload.len() as u32).to_vec();
        bytes.extend_from_slice(payload);
        bytes
    }

    /// Naive reference: parse a complete byte string into messages in one go.
    fn reference_decode(mut bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut messages = Vec::new();
        while !bytes.is_empty() {
            let length = u32::from_be_bytes(bytes[1..5].try_into().unwrap()) as usize;
            messages.push(bytes[5..5 + length].to_vec());
            bytes = &bytes[5 + length..];
        }
        messages
    }

    fn decode_in_chunks(stream: &[u8], chunk_sizes: &[usize]) -> Vec<Vec<u8>> {
        let mut decoder = MessageDecoder::new(1 << 20);
        let mut messages = Vec::new();
        let mut offset = 0;
        let mut sizes = chunk_sizes.iter().cycle();
        while offset < stream.len() {
            let size = (*sizes.next().unwrap()).max(1).min(stream.len() - offset);
            decoder.push(Bytes::copy_from_slice(&stream[offset..offset + size]));
            offset += size;
            while let Some(message) = decoder.next_message().unwrap() {
                messages.push(message.to_vec());
            }
        }
        decoder.finish().unwrap();
        messages
    }

    #[test]
    fn any_chunking_yields_the_reference_messages() {
        let payloads: [&[u8]; 4] = [b"", b"a", b"hello world", &[7u8; 300]];
        let stream: Vec<u8> = payloads.iter().flat_map(|p| frame(p)).collect();
        let expected = reference_decode(&stream);
        assert_eq!(expected.len(), 4);
        for chunk_sizes in [&[1usize][..], &[2], &[3, 7], &[5], &[6, 1, 300], &[10_000]] {
            assert_eq!(
                decode_in_chunks(&stream, chunk_sizes),
                expected,
                "chunks {chunk_sizes:?}"
            );
        }
    }

    #[test]
    fn a_message_inside_one_chunk_is_not_copied() {
        let chunk = Bytes::from(frame(b"zero-copy"));
        let mut decoder = MessageDecoder::new(64);
        decoder.push(chunk.clone());
        let message = decoder.next_message().unwrap().unwrap();
        assert_eq!(&message[..], b"zero-copy");
        assert_eq!(message.as_ptr(), chunk[PREFIX_BYTES..].as_ptr());
        assert_eq!(decoder.buffered_bytes(), 0);
    }

    #[test]
    fn oversized_length_is_refused_before_the_payload_arrives() {
        let mut decoder = MessageDecoder::new(10);
        decoder.push(Bytes::copy_from_slice(&encode_prefix(11)));
        let error = decoder.next_message().unwrap_err();
        assert_eq!(
            error,
            FrameError::MessageTooLarge {
                length_bytes: 11,
                max_bytes: 10
            }
        );
        assert_eq!(
            Status::from(error).code,
            super::super::status::Code::ResourceExhausted
        );
        let mut at_limit = MessageDecoder::new(10);
        at_limit.push(Bytes::from(frame(&[1u8; 10])));
        assert_eq!(at_limit.next_message().unwrap().unwrap().len(), 10);
    }

    #[test]
    fn compressed_and_unknown_flags_are_internal_errors() {
        let mut compressed = MessageDecoder::new(10);
        compressed.push(Bytes::from_static(&[1, 0, 0, 0, 1, 9]));
        let error = compressed.next_message().unwrap_err();
        assert_eq!(error, FrameError::CompressedWithoutEncoding);
        assert_eq!(
            Status::from(error).code,
            super::super::status::Code::Internal
        );
        let mut unknown = MessageDecoder::new(10);
        unknown.push(Bytes::from_static(&[2, 0, 0, 0, 0]));
        assert_eq!(unknown.next_message(), Err(FrameError::UnknownFlag(2)));
    }

    #[test]
    fn truncated_stream_is_reported_at_finish() {
        let mut decoder = MessageDecoder::new(10);
        decoder.push(Bytes::from_static(&[0, 0, 0, 0, 4, 1, 2]));
        assert_eq!(decoder.next_message(), Ok(None));
        assert_eq!(
            decoder.finish(),
            Err(FrameError::Truncated { buffered_bytes: 7 })
        );
    }

    #[test]
    fn encode_message_prefixes_and_enforces_the_limit() {
        let message = super::super::pb::google::bytestream::WriteResponse {
            committed_size: 300,
        };
        let framed = encode_message(&message, 100).unwrap();
        let mut decoder = MessageDecoder::new(100);
        decoder.push(framed);
        let payload = decoder.next_message().unwrap().unwrap();
        let decoded: super::super::pb::google::bytestream::WriteResponse =
            prost::Message::decode(payload).unwrap();
        assert_eq!(decoded, message);
        let error = encode_message(&message, 2).unwrap_err();
        assert_eq!(error.code, super::super::status::Code::ResourceExhausted);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any messages, split at any points, decode to the same messages.
        #[test]
        fn any_split_decodes_the_messages(
            messages in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8),
            cuts in proptest::collection::vec(1usize..64, 1..16),
        ) {
            let stream: Vec<u8> = messages
                .iter()
                .flat_map(|m| encode_prefix(m.len() as u32).into_iter().chain(m.iter().copied()))
                .collect();
            let mut decoder = MessageDecoder::new(1024);
            let mut decoded = Vec::new();
            let mut offset = 0;
            for cut in cuts.iter().cycle() {
                if offset >= stream.len() {
                    break;
                }
                let end = (offset + cut).min(stream.len());
                decoder.push(Bytes::copy_from_slice(&stream[offset..end]));
                offset = end;
                while let Some(message) = decoder.next_message().unwrap() {
                    decoded.push(message.to_vec());
                }
            }
            prop_assert_eq!(decoder.finish(), Ok(()));
            prop_assert_eq!(decoded, messages);
        }

        /// Arbitrary bytes never panic the decoder and never yield more than they contain.
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut decoder = MessageDecoder::new(100);
            decoder.push(Bytes::from(bytes.clone()));
            let mut total = 0;
            while let Ok(Some(message)) = decoder.next_message() {
                total += PREFIX_BYTES + message.len();
            }
            prop_assert!(total <= bytes.len());
        }
    }
}
