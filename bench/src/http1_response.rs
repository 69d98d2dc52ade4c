//! HTTP/1.1 response-head parser for the load generator's client (RFC 9112).
//!
//! The client sends one request at a time on a keep-alive connection and reads exactly one
//! response. This module finds the end of the head, parses the status line and the headers the
//! client needs (`Content-Length`, `Transfer-Encoding`, `Connection`) and decides the body length.
//! Input that is merely incomplete is [`Parsed::Partial`], never an error.
//!
//! ```
//! use tessera_bench::http1_response::*;
//! let head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
//! let Parsed::Complete(response) = parse_response_head(head).unwrap() else { panic!() };
//! assert_eq!((response.status, response.head_bytes), (200, 38));
//! assert_eq!(body_length(&response, false), Ok(5));
//! ```

use crate::limits::{RESPONSE_HEADERS_MAX, RESPONSE_HEAD_BYTES_MAX};
use std::fmt;

/// The parsed head of one response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    /// Bytes of the head including the blank line; the body starts here.
    pub head_bytes: usize,
    pub content_length: Option<u64>,
    pub transfer_encoding: bool,
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
    /// `Transfer-Encoding` in a response: the servers under test frame every response with
    /// `Content-Length` (DESIGN.md), so chunked responses are reported rather than decoded.
    TransferEncodingUnsupported,
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
                "Transfer-Encoding responses are not supported"
            }
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

/// RFC 9112 §6.3 message body length, the steps that apply to a response:
/// 1. a response to HEAD, and any 1xx, 204 or 304 response, has no body;
/// 2. `Transfer-Encoding` would decide the length — this client refuses it (see [`ParseError`]);
/// 3. otherwise a valid `Content-Length` (already checked for conflicts) is the body length;
/// 4. otherwise the body runs until close — refused here, since it cannot be validated on a
///    keep-alive connection.
pub fn body_length(head: &ResponseHead, request_was_head: bool) -> Result<u64, ParseError> {
    if request_was_head
        || (100..200).contains(&head.status)
        || head.status == 204
        || head.status == 304
    {
        return Ok(0);
    }
    if head.transfer_encoding {
        return Err(ParseError::TransferEncodingUnsupported);
    }
    head.content_length.ok_or(ParseError::NoFraming)
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
        assert_eq!(
            body_length(&head(200, None, false), false),
            Err(ParseError::NoFraming)
        );
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
