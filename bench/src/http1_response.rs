//! HTTP/1.1 response-head parser and chunked-body decoder for the load generator's client
//! (RFC 9112).
//!
//! The client sends one request at a time on a keep-alive connection and reads exactly one
//! response. This module finds the end of the head, parses the status line and the headers the
//! client needs (`Content-Length`, `Transfer-Encoding`, `Connection`) and decides how the body is
//! framed ([`framing`]). A `Transfer-Encoding: chunked` body (Node.js servers stream files that
//! way, e.g. the `turborepo-remote-cache` peer) is decoded in place by [`ChunkedDecoder`].
//! Input that is merely incomplete is [`Parsed::Partial`] / [`ChunkProgress::NeedMore`], never an
//! error.
//!
//! ```
//! use tessera_bench::http1_response::*;
//! let head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
//! let Parsed::Complete(response) = parse_response_head(head).unwrap() else { panic!() };
//! assert_eq!((response.status, response.head_bytes), (200, 38));
//! assert_eq!(body_length(&response, false), Ok(5));
//! ```

use crate::limits::{CHUNK_LINE_BYTES_MAX, RESPONSE_HEADERS_MAX, RESPONSE_HEAD_BYTES_MAX};
use std::fmt;

/// The parsed head of one response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    /// Bytes of the head including the blank line; the body starts here.
    pub head_bytes: usize,
    pub content_length: Option<u64>,
    /// A `Transfer-Encoding` header was present.
    pub transfer_encoding: bool,
    /// The last transfer coding named is `chunked` (the only framing a response with
    /// `Transfer-Encoding` can have on a keep-alive connection).
    pub chunked: bool,
    /// The server will close the connection after this response (`Connection: close`, or
    /// HTTP/1.0 without `keep-alive`).
    pub connection_close: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// The head is not complete yet; read more.
    Partial,
    Complete(ResponseHead),
}

/// Why a response is malformed (or uses framing this client does not implement).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    HeadTooLarge,
    TooManyHeaders,
    StatusLine,
    HeaderLine,
    ContentLength,
    ConflictingContentLength,
    /// `Transfer-Encoding` whose last coding is not `chunked`: the body would run until close,
    /// which cannot be validated on a keep-alive connection. (From [`body_length`], which only
    /// knows `Content-Length`, also any `Transfer-Encoding`.)
    TransferEncodingUnsupported,
    /// A chunk-size line that is not `1*HEXDIG [chunk-ext] CRLF` or is longer than
    /// CHUNK_LINE_BYTES_MAX.
    ChunkSize,
    /// Chunk data not followed by CRLF.
    ChunkData,
    /// A malformed trailer line, or trailers longer than RESPONSE_HEAD_BYTES_MAX.
    Trailer,
    /// The chunks add up to more than the caller's body limit.
    ChunkedBodyTooLarge,
    /// No `Content-Length` on a response that has a body: it would be delimited by close, which
    /// breaks keep-alive and cannot be validated.
    NoFraming,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            ParseError::HeadTooLarge => "response head larger than RESPONSE_HEAD_BYTES_MAX",
            ParseError::TooManyHeaders => "more than RESPONSE_HEADERS_MAX response headers",
            ParseError::StatusLine => "malformed status line",
            ParseError::HeaderLine => "malformed header line",
            ParseError::ContentLength => "invalid Content-Length",
            ParseError::ConflictingContentLength => "conflicting Content-Length values",
            ParseError::TransferEncodingUnsupported => {
                "Transfer-Encoding other than chunked is not supported"
            }
            ParseError::ChunkSize => "malformed or overlong chunk-size line",
            ParseError::ChunkData => "chunk data not followed by CRLF",
            ParseError::Trailer => "malformed or oversized trailer section",
            ParseError::ChunkedBodyTooLarge => "chunked body larger than the body limit",
            ParseError::NoFraming => "response body without Content-Length",
        };
        f.write_str(text)
    }
}

impl std::error::Error for ParseError {}

/// Parses the head at the start of `buffer`.
pub fn parse_response_head(buffer: &[u8]) -> Result<Parsed, ParseError> {
    let Some(end) = find_head_end(buffer) else {
        return if buffer.len() >= RESPONSE_HEAD_BYTES_MAX {
            Err(ParseError::HeadTooLarge)
        } else {
            Ok(Parsed::Partial)
        };
    };
    if end > RESPONSE_HEAD_BYTES_MAX {
        return Err(ParseError::HeadTooLarge);
    }
    // `end` includes the final CRLF CRLF. Cut after the last header line's CR so that every line
    // split on LF ends in CR.
    let mut lines = buffer[..end - 3].split(|&b| b == b'\n').map(strip_cr);
    let status_line = lines.next().ok_or(ParseError::StatusLine)?;
    let (minor_version, status) = parse_status_line(status_line?)?;
    let mut head = ResponseHead {
        status,
        head_bytes: end,
        content_length: None,
        transfer_encoding: false,
        chunked: false,
        connection_close: minor_version == 0,
    };
    for (count, line) in lines.enumerate() {
        if count >= RESPONSE_HEADERS_MAX {
            return Err(ParseError::TooManyHeaders);
        }
        apply_header(&mut head, line?, minor_version)?;
    }
    Ok(Parsed::Complete(head))
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Exactly this many bytes follow the head.
    Length(u64),
    /// `Transfer-Encoding: chunked`; decode with [`ChunkedDecoder`].
    Chunked,
}

/// RFC 9112 §6.3 message body length, the steps that apply to a response:
/// 1. a response to HEAD, and any 1xx, 204 or 304 response, has no body;
/// 2. `Transfer-Encoding` decides the length: chunked if its last coding is `chunked` (any
///    `Content-Length` is then ignored), otherwise the body runs until close — refused;
/// 3. otherwise a valid `Content-Length` (already checked for conflicts) is the body length;
/// 4. otherwise the body runs until close — refused here, since it cannot be validated on a
///    keep-alive connection.
pub fn framing(head: &ResponseHead, request_was_head: bool) -> Result<Framing, ParseError> {
    if request_was_head
        || (100..200).contains(&head.status)
        || head.status == 204
        || head.status == 304
    {
        return Ok(Framing::Length(0));
    }
    if head.transfer_encoding {
        return if head.chunked {
            Ok(Framing::Chunked)
        } else {
            Err(ParseError::TransferEncodingUnsupported)
        };
    }
    head.content_length
        .map(Framing::Length)
        .ok_or(ParseError::NoFraming)
}

/// The body length when it is known from the head alone ([`framing`] without chunked bodies,
/// which are [`ParseError::TransferEncodingUnsupported`] here).
pub fn body_length(head: &ResponseHead, request_was_head: bool) -> Result<u64, ParseError> {
    match framing(head, request_was_head)? {
        Framing::Length(length) => Ok(length),
        Framing::Chunked => Err(ParseError::TransferEncodingUnsupported),
    }
}

/// What [`ChunkedDecoder::advance`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkProgress {
    /// The message is not complete; read more bytes onto the end of the buffer and call again.
    NeedMore,
    /// The last chunk and the trailer section are consumed: the decoded body is
    /// `buffer[body_start..body_end]`, and any byte after `body_end` follows the message.
    Done { body_end: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// At a chunk-size line.
    Size,
    /// Inside a chunk's data, with this many bytes still to come.
    Data {
        remaining: u64,
    },
    /// After a chunk's data: CRLF expected.
    DataEnd,
    /// After the last (zero-size) chunk: trailer lines up to an empty line.
    Trailer,
    Done,
}

/// Decodes a chunked body in place (RFC 9112 §7.1): chunk data is moved down over the chunk
/// framing, so the decoded body ends up contiguous right after the head, and the framing bytes
/// already consumed are removed from the buffer after every call (the buffer never holds more
/// than the decoded body plus one unparsed read). Chunk extensions are ignored; trailer fields
/// are skipped.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    body_start: usize,
    /// End of the decoded body so far.
    write: usize,
    /// First byte not yet parsed (`write <= read` always).
    read: usize,
    state: ChunkState,
    trailer_bytes: usize,
    body_max: u64,
}

impl ChunkedDecoder {
    /// A decoder for a body starting at `body_start`, refusing more than `body_max` decoded bytes.
    pub fn new(body_start: usize, body_max: u64) -> ChunkedDecoder {
        ChunkedDecoder {
            body_start,
            write: body_start,
            read: body_start,
            state: ChunkState::Size,
            trailer_bytes: 0,
            body_max,
        }
    }

    /// Decodes what `buffer` holds beyond the previous call.
    pub fn advance(&mut self, buffer: &mut Vec<u8>) -> Result<ChunkProgress, ParseError> {
        let result = self.step(buffer);
        // Drop the framing consumed so far: the unparsed rest moves down to the decoded end.
        if self.read > self.write {
            buffer.drain(self.write..self.read);
            self.read = self.write;
        }
        result
    }

    fn step(&mut self, buffer: &mut [u8]) -> Result<ChunkProgress, ParseError> {
        loop {
            match self.state {
                ChunkState::Done => {
                    return Ok(ChunkProgress::Done {
                        body_end: self.write,
                    })
                }
                ChunkState::Size => {
                    let Some(line) = next_line(buffer, self.read, CHUNK_LINE_BYTES_MAX)
                        .map_err(|()| ParseError::ChunkSize)?
                    else {
                        return Ok(ChunkProgress::NeedMore);
                    };
                    let size = parse_chunk_size(&buffer[self.read..self.read + line])?;
                    self.read += line + 2;
                    let decoded = (self.write - self.body_start) as u64;
                    if size > self.body_max.saturating_sub(decoded) {
                        return Err(ParseError::ChunkedBodyTooLarge);
                    }
                    self.state = if size == 0 {
                        ChunkState::Trailer
                    } else {
                        ChunkState::Data { remaining: size }
                    };
                }
                ChunkState::Data { remaining } => {
                    let available = (buffer.len() - self.read) as u64;
                    let n = remaining.min(available) as usize;
                    buffer.copy_within(self.read..self.read + n, self.write);
                    self.read += n;
                    self.write += n;
                    if remaining > n as u64 {
                        self.state = ChunkState::Data {
                            remaining: remaining - n as u64,
                        };
                        return Ok(ChunkProgress::NeedMore);
                    }
                    self.state = ChunkState::DataEnd;
                }
                ChunkState::DataEnd => {
                    match buffer.get(self.read..self.read + 2) {
                        None if buffer.len() - self.read < 2
                            && buffer[self.read..].iter().all(|&b| b == b'\r') =>
                        {
                            return Ok(ChunkProgress::NeedMore)
                        }
                        Some(b"\r\n") => {}
                        _ => return Err(ParseError::ChunkData),
                    }
                    self.read += 2;
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailer => {
                    let budget = RESPONSE_HEAD_BYTES_MAX - self.trailer_bytes;
                    let Some(line) =
                        next_line(buffer, self.read, budget).map_err(|()| ParseError::Trailer)?
                    else {
                        return Ok(ChunkProgress::NeedMore);
                    };
                    let text = &buffer[self.read..self.read + line];
                    if line > 0 && !text.contains(&b':') {
                        return Err(ParseError::Trailer);
                    }
                    self.read += line + 2;
                    self.trailer_bytes += line + 2;
                    if line == 0 {
                        self.state = ChunkState::Done;
                    }
                }
            }
        }
    }
}

/// The length of the CRLF-terminated line starting at `from` (without the CRLF): `Ok(None)`
/// while no LF has arrived within `max` bytes, `Err` for a line longer than `max` or a bare LF.
fn next_line(buffer: &[u8], from: usize, max: usize) -> Result<Option<usize>, ()> {
    let window = &buffer[from..buffer.len().min(from + max + 2)];
    match window.iter().position(|&b| b == b'\n') {
        Some(at) if at >= 1 && window[at - 1] == b'\r' => Ok(Some(at - 1)),
        Some(_) => Err(()),
        None if window.len() >= max + 2 => Err(()),
        None => Ok(None),
    }
}

/// `chunk-size [chunk-ext]`: 1 to 16 hex digits, then nothing or `;` extensions (after optional
/// whitespace), which are ignored.
fn parse_chunk_size(line: &[u8]) -> Result<u64, ParseError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 16 {
        return Err(ParseError::ChunkSize);
    }
    let rest = trim_ows(&line[digits..]);
    if !(rest.is_empty() || rest[0] == b';') {
        return Err(ParseError::ChunkSize);
    }
    Ok(line[..digits].iter().fold(0u64, |acc, &d| {
        let value = (d as char).to_digit(16).unwrap_or(0) as u64;
        (acc << 4) | value
    }))
}

fn find_head_end(buffer: &[u8]) -> Option<usize> {
    buffer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| at + 4)
}

fn strip_cr(line: &[u8]) -> Result<&[u8], ParseError> {
    // Every line before the blank line must end in CRLF; a bare LF is malformed (RFC 9112 §2.2
    // allows leniency, but the servers we measure never send it, so it signals a broken peer).
    match line.split_last() {
        Some((b'\r', rest)) => Ok(rest),
        _ => Err(ParseError::HeaderLine),
    }
}

/// `HTTP/1.x SP 3DIGIT SP reason` → (x, status).
fn parse_status_line(line: &[u8]) -> Result<(u8, u16), ParseError> {
    let minor = match line.get(..9) {
        Some(b"HTTP/1.1 ") => 1,
        Some(b"HTTP/1.0 ") => 0,
        _ => return Err(ParseError::StatusLine),
    };
    let digits = line.get(9..12).ok_or(ParseError::StatusLine)?;
    if !digits.iter().all(u8::is_ascii_digit) || !matches!(line.get(12), None | Some(b' ')) {
        return Err(ParseError::StatusLine);
    }
    let status = digits
        .iter()
        .fold(0u16, |acc, d| acc * 10 + (d - b'0') as u16);
    if !(100..=599).contains(&status) {
        return Err(ParseError::StatusLine);
    }
    Ok((minor, status))
}

fn is_token_byte(b: u8) -> bool {
    tessera::http1::token::is_tchar(b)
}

fn apply_header(head: &mut ResponseHead, line: &[u8], minor_version: u8) -> Result<(), ParseError> {
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(ParseError::HeaderLine)?;
    let (name, value) = (&line[..colon], trim_ows(&line[colon + 1..]));
    if name.is_empty() || !name.iter().all(|&b| is_token_byte(b)) {
        return Err(ParseError::HeaderLine);
    }
    if value.iter().any(|&b| b == b'\r' || b == 0) {
        return Err(ParseError::HeaderLine);
    }
    if name.eq_ignore_ascii_case(b"content-length") {
        let length = parse_content_length(value)?;
        if head.content_length.is_some_and(|seen| seen != length) {
            return Err(ParseError::ConflictingContentLength);
        }
        head.content_length = Some(length);
    } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
        head.transfer_encoding = true;
        // The codings apply in order; only the last one decides the framing (RFC 9112 §6.3).
        head.chunked = value
            .rsplit(|&b| b == b',')
            .map(trim_ows)
            .next()
            .is_some_and(|last| last.eq_ignore_ascii_case(b"chunked"));
    } else if name.eq_ignore_ascii_case(b"connection") {
        for token in value.split(|&b| b == b',').map(trim_ows) {
            if token.eq_ignore_ascii_case(b"close") {
                head.connection_close = true;
            } else if token.eq_ignore_ascii_case(b"keep-alive") && minor_version == 0 {
                head.connection_close = false;
            }
        }
    }
    Ok(())
}

/// `Content-Length = 1*DIGIT`; a list of identical values (`5, 5`) is accepted as one value
/// (RFC 9112 §6.3 step 5), differing values are an error.
fn parse_content_length(value: &[u8]) -> Result<u64, ParseError> {
    let mut result: Option<u64> = None;
    for item in value.split(|&b| b == b',').map(trim_ows) {
        if item.is_empty() || item.len() > 19 || !item.iter().all(u8::is_ascii_digit) {
            return Err(ParseError::ContentLength);
        }
        let length = item
            .iter()
            .fold(0u64, |acc, d| acc * 10 + (d - b'0') as u64);
        if result.is_some_and(|seen| seen != length) {
            return Err(ParseError::ConflictingContentLength);
        }
        result = Some(length);
    }
    result.ok_or(ParseError::ContentLength)
}

fn trim_ows(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn complete(input: &[u8]) -> ResponseHead {
        match parse_response_head(input) {
            Ok(Parsed::Complete(head)) => head,
            other => panic!("{:?} for {:?}", other, String::from_utf8_lossy(input)),
        }
    }

    #[test]
    fn table_of_valid_heads() {
        // (input, status, content length, connection close)
        let cases: &[(&[u8], u16, Option<u64>, bool)] = &[
            (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", 200, Some(3), false),
            (b"HTTP/1.1 404 Not Found\r\ncontent-length:0\r\n\r\n", 404, Some(0), false),
            (b"HTTP/1.1 201 Created\r\nServer: nginx\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n", 201, Some(0), false),
            (b"HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 1\r\n\r\n", 200, Some(1), true),
            (b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", 200, Some(1), true),
            (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n", 200, Some(1), false),
            (b"HTTP/1.1 204\r\n\r\n", 204, None, false),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\n\r\n", 200, Some(7), false),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n", 200, Some(7), false),
            (b"HTTP/1.1 200 OK\r\nX-Empty:\r\nContent-Length:\t9 \r\n\r\n", 200, Some(9), false),
        ];
        for &(input, status, length, close) in cases {
            let head = complete(input);
            assert_eq!(head.status, status);
            assert_eq!(head.content_length, length);
            assert_eq!(head.connection_close, close);
            assert_eq!(head.head_bytes, input.len());
        }
    }

    #[test]
    fn table_of_malformed_heads() {
        let cases: &[(&[u8], ParseError)] = &[
            (b"HTTP/2 200 OK\r\n\r\n", ParseError::StatusLine),
            (b"HTTP/1.1 20 OK\r\n\r\n", ParseError::StatusLine),
            (b"HTTP/1.1 2000 OK\r\n\r\n", ParseError::StatusLine),
            (b"HTTP/1.1 099 Low\r\n\r\n", ParseError::StatusLine),
            (
                b"HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n",
                ParseError::HeaderLine,
            ),
            (
                b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
                ParseError::HeaderLine,
            ),
            (b"HTTP/1.1 200 OK\r\n: x\r\n\r\n", ParseError::HeaderLine),
            (
                b"HTTP/1.1 200 OK\nContent-Length: 1\r\n\r\n",
                ParseError::HeaderLine,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                ParseError::ContentLength,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
                ParseError::ContentLength,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
                ParseError::ContentLength,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n",
                ParseError::ConflictingContentLength,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                ParseError::ConflictingContentLength,
            ),
        ];
        for &(input, expected) in cases {
            assert_eq!(
                parse_response_head(input),
                Err(expected),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn incomplete_heads_are_partial() {
        let full = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n";
        for cut in 0..full.len() {
            assert_eq!(
                parse_response_head(&full[..cut]),
                Ok(Parsed::Partial),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn oversized_and_overlong_heads_are_refused() {
        let mut endless = b"HTTP/1.1 200 OK\r\n".to_vec();
        endless.resize(RESPONSE_HEAD_BYTES_MAX, b'a');
        assert_eq!(parse_response_head(&endless), Err(ParseError::HeadTooLarge));

        let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..=RESPONSE_HEADERS_MAX {
            many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(parse_response_head(&many), Err(ParseError::TooManyHeaders));
    }

    #[test]
    fn body_length_follows_rfc9112_section_6_3() {
        let head = |status, length, te| ResponseHead {
            status,
            head_bytes: 0,
            content_length: length,
            transfer_encoding: te,
            chunked: false,
            connection_close: false,
        };
        assert_eq!(body_length(&head(200, Some(10), false), true), Ok(0));
        assert_eq!(body_length(&head(204, None, false), false), Ok(0));
        assert_eq!(body_length(&head(304, Some(10), false), false), Ok(0));
        assert_eq!(body_length(&head(200, Some(10), false), false), Ok(10));
        assert_eq!(
            body_length(&head(200, Some(10), true), false),
            Err(ParseError::TransferEncodingUnsupported)
        );
        let chunked = ResponseHead {
            chunked: true,
            ..head(200, Some(10), true)
        };
        assert_eq!(framing(&chunked, false), Ok(Framing::Chunked));
        assert_eq!(framing(&chunked, true), Ok(Framing::Length(0)));
        assert_eq!(
            body_length(&chunked, false),
            Err(ParseError::TransferEncodingUnsupported)
        );
        assert_eq!(
            body_length(&head(200, None, false), false),
            Err(ParseError::NoFraming)
        );
    }

    #[test]
    fn transfer_encoding_header_decides_chunked_by_its_last_coding() {
        let cases: &[(&[u8], bool)] = &[
            (b"Transfer-Encoding: chunked", true),
            (b"transfer-encoding: gzip, Chunked", true),
            (b"Transfer-Encoding: chunked, gzip", false),
            (b"Transfer-Encoding: identity", false),
        ];
        for &(line, chunked) in cases {
            let mut input = b"HTTP/1.1 200 OK\r\n".to_vec();
            input.extend_from_slice(line);
            input.extend_from_slice(b"\r\nContent-Length: 3\r\n\r\n");
            let head = complete(&input);
            assert!(head.transfer_encoding);
            assert_eq!(head.chunked, chunked, "{}", String::from_utf8_lossy(line));
            let expected = if chunked {
                Ok(Framing::Chunked)
            } else {
                Err(ParseError::TransferEncodingUnsupported)
            };
            assert_eq!(framing(&head, false), expected);
        }
    }

    /// Feeds `wire` (after a 5-byte stand-in head) to a decoder `step` bytes at a time.
    fn decode(wire: &[u8], step: usize, body_max: u64) -> Result<(Vec<u8>, Vec<u8>), ParseError> {
        let mut buffer = b"HEAD:".to_vec();
        let mut decoder = ChunkedDecoder::new(5, body_max);
        let mut fed = 0;
        loop {
            match decoder.advance(&mut buffer)? {
                ChunkProgress::Done { body_end } => {
                    buffer.extend_from_slice(&wire[fed..]);
                    assert_eq!(&buffer[..5], b"HEAD:", "the head is never touched");
                    return Ok((buffer[5..body_end].to_vec(), buffer[body_end..].to_vec()));
                }
                ChunkProgress::NeedMore if fed == wire.len() => panic!("ran out of input"),
                ChunkProgress::NeedMore => {
                    let end = (fed + step).min(wire.len());
                    buffer.extend_from_slice(&wire[fed..end]);
                    fed = end;
                }
            }
        }
    }

    #[test]
    fn chunked_body_with_extensions_and_trailers() {
        let wire = b"4;name=value\r\nWiki\r\n5 ; x\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nExpires: never\r\n\r\nNEXT";
        for step in [1, 2, 3, 7, wire.len()] {
            let (body, after) = decode(wire, step, 1 << 20).unwrap();
            assert_eq!(body, b"Wikipedia in\r\n\r\nchunks.", "step {step}");
            assert_eq!(after, b"NEXT", "step {step}");
        }
    }

    #[test]
    fn malformed_chunked_bodies_are_errors() {
        let long_line = format!("1{}\r\nx\r\n0\r\n\r\n", " ".repeat(CHUNK_LINE_BYTES_MAX));
        let cases: &[(&[u8], ParseError)] = &[
            (b"x\r\nab\r\n0\r\n\r\n", ParseError::ChunkSize),
            (b"\r\n", ParseError::ChunkSize),
            (b"2\nab\r\n0\r\n\r\n", ParseError::ChunkSize),
            (b"2 junk\r\nab\r\n0\r\n\r\n", ParseError::ChunkSize),
            (b"11111111111111111\r\n", ParseError::ChunkSize),
            (long_line.as_bytes(), ParseError::ChunkSize),
            (b"2\r\nabc\r\n0\r\n\r\n", ParseError::ChunkData),
            (b"2\r\nab0\r\n\r\n", ParseError::ChunkData),
            (b"0\r\nno colon\r\n\r\n", ParseError::Trailer),
            (b"9\r\n", ParseError::ChunkedBodyTooLarge),
            (b"5\r\nabcde\r\n4\r\n", ParseError::ChunkedBodyTooLarge),
        ];
        for &(wire, expected) in cases {
            for step in [1, wire.len()] {
                assert_eq!(
                    decode(wire, step, 8),
                    Err(expected),
                    "{:?} fed {step} at a time",
                    String::from_utf8_lossy(wire)
                );
            }
        }
    }

    proptest! {
        /// Any body cut into any chunks decodes to itself, however the bytes arrive, and the bytes
        /// after the message are left in place.
        #[test]
        fn chunked_bodies_round_trip(
            body in proptest::collection::vec(any::<u8>(), 0..3000),
            cuts in proptest::collection::vec(1usize..700, 0..12),
            step in 1usize..200,
            upper in any::<bool>(),
        ) {
            let mut wire = Vec::new();
            let mut rest = &body[..];
            for cut in cuts.iter().chain(std::iter::repeat(&4096)) {
                if rest.is_empty() {
                    break;
                }
                let (chunk, tail) = rest.split_at((*cut).min(rest.len()));
                let size = if upper { format!("{:X}", chunk.len()) } else { format!("{:x}", chunk.len()) };
                wire.extend_from_slice(size.as_bytes());
                wire.extend_from_slice(b"\r\n");
                wire.extend_from_slice(chunk);
                wire.extend_from_slice(b"\r\n");
                rest = tail;
            }
            wire.extend_from_slice(b"0\r\n\r\nHTTP/1.1");
            let (decoded, after) = decode(&wire, step, body.len() as u64).unwrap();
            prop_assert_eq!(decoded, body);
            prop_assert_eq!(after, b"HTTP/1.1".to_vec());
        }
    }

    proptest! {
        /// Arbitrary bytes never panic, and a complete result never claims more than it was given.
        #[test]
        fn arbitrary_input_never_panics(input in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(Parsed::Complete(head)) = parse_response_head(&input) {
                prop_assert!(head.head_bytes <= input.len());
            }
        }

        /// Any well-formed head round-trips its status and length, whatever the header noise, and
        /// every strict prefix of it is Partial.
        #[test]
        fn generated_heads_round_trip(
            status in 100u16..600,
            length in any::<u32>(),
            extra in proptest::collection::vec(("[A-Za-z][A-Za-z0-9-]{0,12}", "[ -~]{0,20}"), 0..8),
            lower in any::<bool>(),
        ) {
            let mut text = format!("HTTP/1.1 {status} Whatever\r\n");
            for (name, value) in &extra {
                if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("transfer-encoding") || name.eq_ignore_ascii_case("connection") {
                    continue;
                }
                text.push_str(&format!("{name}: {}\r\n", value.trim()));
            }
            let header = if lower { "content-length" } else { "Content-Length" };
            text.push_str(&format!("{header}: {length}\r\n\r\n"));
            let bytes = text.as_bytes();
            let head = complete(bytes);
            prop_assert_eq!(head.status, status);
            prop_assert_eq!(head.content_length, Some(length as u64));
            prop_assert_eq!(head.head_bytes, bytes.len());
            prop_assert_eq!(parse_response_head(&bytes[..bytes.len() - 1]), Ok(Parsed::Partial));
        }
    }
}
