//! Facts derived from a request's header fields: body framing, keep-alive, `Expect`, Host.

use super::error::ParseError;
use super::limits::Limits;
use super::parse::{Header, Version};
use super::token::trim_ows;

/// How a request body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body (no Content-Length, no Transfer-Encoding, or `Content-Length: 0`).
    Empty,
    /// Exactly this many bytes follow the head (non-zero).
    Length(u64),
    /// `Transfer-Encoding: chunked`; the length is known only at the end.
    Chunked,
}

/// What [`derive_facts`] learns from the header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts<'b> {
    /// Body framing.
    pub body: BodyFraming,
    /// The connection may be reused after this exchange.
    pub keep_alive: bool,
    /// `Expect: 100-continue` on an HTTP/1.1 request with a body.
    pub expect_continue: bool,
    /// The Host value.
    pub host: Option<&'b [u8]>,
}

/// The header fields that matter for framing and connection management, collected in one pass.
#[derive(Default)]
struct Seen<'b> {
    content_length: Option<&'b [u8]>,
    transfer_encodings: usize,
    chunked: bool,
    close: bool,
    keep_alive: bool,
    expect_continue: bool,
    host: Option<&'b [u8]>,
}

/// Derives the [`Facts`] of a request, rejecting ambiguous or unsupported framing.
pub fn derive_facts<'b>(
    version: Version,
    headers: &[Header<'b>],
    limits: &Limits,
) -> Result<Facts<'b>, ParseError> {
    let seen = collect(headers)?;
    if version == Version::Http11 && seen.host.is_none() {
        return Err(ParseError::HostMissing);
    }
    let body = framing(version, &seen, limits)?;
    let keep_alive = match version {
        Version::Http11 => !seen.close,
        Version::Http10 => seen.keep_alive && !seen.close,
    };
    // RFC 9110 §10.1.1: a server MUST ignore 100-continue in an HTTP/1.0 request, and it is
    // pointless without a body.
    let expect_continue =
        seen.expect_continue && version == Version::Http11 && body != BodyFraming::Empty;
    Ok(Facts {
        body,
        keep_alive,
        expect_continue,
        host: seen.host,
    })
}

fn collect<'b>(headers: &[Header<'b>]) -> Result<Seen<'b>, ParseError> {
    let mut seen = Seen::default();
    for header in headers {
        let name = header.name;
        if name.eq_ignore_ascii_case("content-length") {
            if seen.content_length.replace(header.value).is_some() {
                return Err(ParseError::ContentLengthDuplicated);
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            seen.transfer_encodings += 1;
            seen.chunked = header.value.eq_ignore_ascii_case(b"chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            for option in header.value.split(|&b| b == b',').map(trim_ows) {
                seen.close |= option.eq_ignore_ascii_case(b"close");
                seen.keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case("expect") {
            if !header.value.eq_ignore_ascii_case(b"100-continue") {
                return Err(ParseError::ExpectationUnsupported);
            }
            seen.expect_continue = true;
        } else if name.eq_ignore_ascii_case("host") && seen.host.replace(header.value).is_some() {
            return Err(ParseError::HostDuplicated);
        }
    }
    Ok(seen)
}

/// Applies RFC 9112 §6.3 ("Message Body Length") to a request. The numbered steps:
///
/// 1. Responses to HEAD, 1xx, 204 and 304 have no body — response-only, not applicable here.
/// 2. A 2xx response to CONNECT switches to a tunnel — response-only, not applicable here.
/// 3. Transfer-Encoding and Content-Length together: the server MAY reject the request ("ought
///    to handle as an error": it is the request-smuggling pattern) → we answer 400.
/// 4. Transfer-Encoding present: if `chunked` is the final coding the body is chunked; a request
///    whose final coding is not chunked → 400. We support exactly one coding, `chunked`; any
///    other Transfer-Encoding (list, repeat, gzip…) → 501 (RFC 9112 §6.1). HTTP/1.0 with
///    Transfer-Encoding is faulty framing (RFC 9112 §6.1) → 400.
/// 5. Content-Length invalid (not `1*DIGIT`, a list, repeated, overflowing) → 400.
/// 6. Valid Content-Length → that many bytes (checked against `body_bytes_max` → 413 before a
///    single body byte is read).
/// 7. A request with neither → the body length is zero.
/// 8. (Responses only: read until close.)
fn framing(version: Version, seen: &Seen<'_>, limits: &Limits) -> Result<BodyFraming, ParseError> {
    // Step 3.
    if seen.transfer_encodings > 0 && seen.content_length.is_some() {
        return Err(ParseError::TransferEncodingWithContentLength);
    }
    // Step 4.
    if seen.transfer_encodings > 0 {
        if version == Version::Http10 {
            return Err(ParseError::TransferEncodingInHttp10);
        }
        if seen.transfer_encodings > 1 || !seen.chunked {
            return Err(ParseError::TransferEncodingUnsupported);
        }
        return Ok(BodyFraming::Chunked);
    }
    // Steps 5 and 6.
    if let Some(value) = seen.content_length {
        let length = parse_content_length(value)?;
        if length > limits.body_bytes_max {
            return Err(ParseError::BodyTooLarge);
        }
        return Ok(if length == 0 {
            BodyFraming::Empty
        } else {
            BodyFraming::Length(length)
        });
    }
    // Step 7.
    Ok(BodyFraming::Empty)
}

/// `Content-Length = 1*DIGIT` (RFC 9110 §8.6), as a u64 without overflow.
fn parse_content_length(value: &[u8]) -> Result<u64, ParseError> {
    if value.is_empty() {
        return Err(ParseError::ContentLengthInvalid);
    }
    value.iter().try_fold(0u64, |acc, &b| {
        if !b.is_ascii_digit() {
            return Err(ParseError::ContentLengthInvalid);
        }
        acc.checked_mul(10)
            .and_then(|acc| acc.checked_add(u64::from(b - b'0')))
            .ok_or(ParseError::ContentLengthInvalid)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_edges() {
        assert_eq!(parse_content_length(b"0"), Ok(0));
        assert_eq!(parse_content_length(b"18446744073709551615"), Ok(u64::MAX));
        assert_eq!(
            parse_content_length(b"18446744073709551616"),
            Err(ParseError::ContentLengthInvalid)
        );
        assert_eq!(
            parse_content_length(b"+5"),
            Err(ParseError::ContentLengthInvalid)
        );
        assert_eq!(
            parse_content_length(b"5, 5"),
            Err(ParseError::ContentLengthInvalid)
        );
        assert_eq!(
            parse_content_length(b""),
            Err(ParseError::ContentLengthInvalid)
        );
    }
}
