//! The chunked transfer-coding decoder (RFC 9112 §7.1): a sans-IO state machine.
//!
//! ```text
//! chunked-body   = *chunk last-chunk trailer-section CRLF
//! chunk          = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//! chunk-size     = 1*HEXDIG
//! last-chunk     = 1*("0") [ chunk-ext ] CRLF
//! chunk-ext      = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
//! trailer-section = *( field-line CRLF )
//! ```
//!
//! The decoder consumes framing bytes one at a time (so a line never has to sit whole in a
//! buffer) and hands out chunk data as ranges of the caller's input. Extensions are skipped but
//! count against `chunk_line_bytes_max`; trailers are skipped but count against
//! `trailer_bytes_max`; the decoded total counts against `body_bytes_max`, checked when a chunk
//! size is announced, before its data is read.
//!
//! ```
//! use tessera::http1::{ChunkedDecoder, Limits};
//! let mut decoder = ChunkedDecoder::new(&Limits::default());
//! let input = b"3;ext=1\r\nabc\r\n0\r\nTrailer: x\r\n\r\n";
//! let (mut body, mut pos) = (Vec::new(), 0);
//! while !decoder.is_done() {
//!     let step = decoder.decode(&input[pos..], usize::MAX).unwrap();
//!     body.extend_from_slice(&input[pos..][step.data.clone()]);
//!     pos += step.consumed;
//! }
//! assert_eq!(body, b"abc");
//! ```

use std::ops::Range;

use super::error::ChunkedError;
use super::limits::Limits;
use super::token::is_field_value_byte;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits; `digits` so far.
    Size { digits: u32 },
    /// After the size: BWS, extensions, until CR.
    Extension,
    /// Saw the CR that ends a chunk-size line.
    SizeLf,
    /// Inside chunk data.
    Data,
    /// Expecting the CR after chunk data.
    DataCr,
    /// Expecting the LF after chunk data.
    DataLf,
    /// At the start of a trailer line (or the final CRLF).
    TrailerStart,
    /// Inside a trailer line.
    TrailerLine,
    /// Saw the CR that ends a trailer line.
    TrailerLf,
    /// Saw the CR of the final empty line.
    FinalLf,
    /// The body is complete.
    Done,
}

/// One decoding step: `consumed` input bytes, of which `data` (a range of the input) is body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// Input bytes consumed, framing and data together.
    pub consumed: usize,
    /// The body bytes within the consumed input (empty if the step held only framing).
    pub data: Range<usize>,
}

/// The chunked decoder state. See the module docs.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    chunk_size: u64,
    chunk_remaining: u64,
    line_bytes: usize,
    trailer_bytes: usize,
    body_bytes: u64,
    line_bytes_max: usize,
    trailer_bytes_max: usize,
    body_bytes_max: u64,
}

impl ChunkedDecoder {
    /// A decoder bounded by `limits.chunk_line_bytes_max`, `trailer_bytes_max` and
    /// `body_bytes_max`.
    pub fn new(limits: &Limits) -> Self {
        ChunkedDecoder {
            state: State::Size { digits: 0 },
            chunk_size: 0,
            chunk_remaining: 0,
            line_bytes: 0,
            trailer_bytes: 0,
            body_bytes: 0,
            line_bytes_max: limits.chunk_line_bytes_max,
            trailer_bytes_max: limits.trailer_bytes_max,
            body_bytes_max: limits.body_bytes_max,
        }
    }

    /// True once the last chunk, the trailers and the final CRLF are consumed.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Body bytes announced so far (sum of chunk sizes).
    pub fn body_bytes(&self) -> u64 {
        self.body_bytes
    }

    /// Bytes of chunk data the decoder expects next without framing in between (0 outside data).
    /// A caller with an empty buffer may read up to this many bytes straight into its destination
    /// and report them with [`consume_data`](Self::consume_data).
    pub fn data_pending(&self) -> u64 {
        if self.state == State::Data {
            self.chunk_remaining
        } else {
            0
        }
    }

    /// Records `count` data bytes taken directly from the stream (at most `data_pending()`).
    pub fn consume_data(&mut self, count: u64) {
        assert!(
            count <= self.data_pending(),
            "consume_data beyond the current chunk"
        );
        self.chunk_remaining -= count;
        if self.chunk_remaining == 0 && self.state == State::Data {
            self.state = State::DataCr;
        }
    }

    /// Consumes framing from `input` until it reaches body data (returned as a range of at most
    /// `data_max` bytes), the input ends, or the body is done.
    pub fn decode(&mut self, input: &[u8], data_max: usize) -> Result<Decoded, ChunkedError> {
        let mut pos = 0;
        while pos < input.len() && self.state != State::Done {
            if self.state == State::Data {
                let available = (input.len() - pos).min(data_max);
                let take = self.chunk_remaining.min(available as u64) as usize;
                self.consume_data(take as u64);
                return Ok(Decoded {
                    consumed: pos + take,
                    data: pos..pos + take,
                });
            }
            self.step(input[pos])?;
            pos += 1;
        }
        Ok(Decoded {
            consumed: pos,
            data: pos..pos,
        })
    }

    /// Advances over one framing byte.
    fn step(&mut self, byte: u8) -> Result<(), ChunkedError> {
        self.state = match self.state {
            State::Size { digits } => self.size_byte(digits, byte)?,
            State::Extension => self.extension_byte(byte)?,
            State::SizeLf => self.end_size_line(byte)?,
            State::DataCr if byte == b'\r' => State::DataLf,
            State::DataLf if byte == b'\n' => State::Size { digits: 0 },
            State::DataCr | State::DataLf => return Err(ChunkedError::DataNotTerminated),
            State::TrailerStart if byte == b'\r' => State::FinalLf,
            State::TrailerStart | State::TrailerLine => self.trailer_byte(byte)?,
            State::TrailerLf | State::FinalLf if byte != b'\n' => {
                return Err(ChunkedError::LineEndingInvalid)
            }
            State::TrailerLf => State::TrailerStart,
            State::FinalLf => State::Done,
            State::Data | State::Done => self.state,
        };
        Ok(())
    }

    fn count_line_byte(&mut self) -> Result<(), ChunkedError> {
        self.line_bytes += 1;
        if self.line_bytes > self.line_bytes_max {
            return Err(ChunkedError::LineTooLong);
        }
        Ok(())
    }

    fn size_byte(&mut self, digits: u32, byte: u8) -> Result<State, ChunkedError> {
        self.count_line_byte()?;
        if let Some(value) = (byte as char).to_digit(16) {
            // Shifting in another digit would push a set bit out of the top nibble.
            if self.chunk_size >> (64 - 4) != 0 {
                return Err(ChunkedError::SizeOverflow);
            }
            self.chunk_size = (self.chunk_size << 4) | u64::from(value);
            return Ok(State::Size {
                digits: digits.saturating_add(1),
            });
        }
        if digits == 0 {
            return Err(ChunkedError::SizeInvalid);
        }
        Self::after_size(byte)
    }

    /// After the size: `BWS ";" ...` up to CR. Extension bytes are validated as field-value
    /// bytes (no controls) and otherwise ignored.
    fn extension_byte(&mut self, byte: u8) -> Result<State, ChunkedError> {
        self.count_line_byte()?;
        Self::after_size(byte)
    }

    fn after_size(byte: u8) -> Result<State, ChunkedError> {
        match byte {
            b'\r' => Ok(State::SizeLf),
            b'\n' => Err(ChunkedError::LineEndingInvalid),
            _ if is_field_value_byte(byte) => Ok(State::Extension),
            _ => Err(ChunkedError::SizeInvalid),
        }
    }

    fn end_size_line(&mut self, byte: u8) -> Result<State, ChunkedError> {
        if byte != b'\n' {
            return Err(ChunkedError::LineEndingInvalid);
        }
        let size = std::mem::take(&mut self.chunk_size);
        self.line_bytes = 0;
        if size == 0 {
            return Ok(State::TrailerStart);
        }
        self.body_bytes = self
            .body_bytes
            .checked_add(size)
            .filter(|&total| total <= self.body_bytes_max)
            .ok_or(ChunkedError::BodyTooLarge)?;
        self.chunk_remaining = size;
        Ok(State::Data)
    }

    fn trailer_byte(&mut self, byte: u8) -> Result<State, ChunkedError> {
        self.trailer_bytes += 1;
        if self.trailer_bytes > self.trailer_bytes_max {
            return Err(ChunkedError::TrailerTooLarge);
        }
        match byte {
            b'\r' => Ok(State::TrailerLf),
            b'\n' => Err(ChunkedError::LineEndingInvalid),
            _ => Ok(State::TrailerLine),
        }
    }
}

#[cfg(test)]
#[path = "chunked_tests.rs"]
mod tests;
