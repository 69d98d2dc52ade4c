//! The request-head parser: sans-IO and zero-copy.
//!
//! [`parse_request`] reads a request line and header section from the start of a receive buffer.
//! It borrows every name, value and the target from that buffer, fills the caller's header array
//! (whose length bounds the header count), and returns [`Parsed::Partial`] when the head is not
//! complete yet — the caller reads more bytes and calls again with the longer buffer. On a complete
//! head it also derives the message facts (body framing, keep-alive, expectation, Host; see
//! [`facts`](super::facts)).
//!
//! ```
//! use tessera::http1::{parse_request, BodyFraming, Header, Limits, Parsed, EMPTY_HEADER};
//! let bytes = b"PUT /cas/ab HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc";
//! let mut headers = [EMPTY_HEADER; 16];
//! let Ok(Parsed::Complete(head)) = parse_request(bytes, &mut headers, &Limits::default()) else {
//!     panic!("complete head expected");
//! };
//! assert_eq!((head.method, head.target), ("PUT", "/cas/ab"));
//! assert_eq!(head.body, BodyFraming::Length(3));
//! assert_eq!(&bytes[head.head_bytes..], b"abc");
//! ```

use super::error::ParseError;
use super::facts::{derive_facts, BodyFraming};
use super::limits::Limits;
use super::token::{is_field_value, is_target_byte, is_tchar, trim_ows};

/// One header field, borrowed from the receive buffer. `name` is a token (ASCII), `value` has its
/// surrounding whitespace trimmed and may hold obs-text bytes, so it stays `[u8]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'b> {
    /// Field name as sent (compare with `eq_ignore_ascii_case`).
    pub name: &'b str,
    /// Field value without leading/trailing whitespace.
    pub value: &'b [u8],
}

/// An unused header slot, to initialise the caller's header array.
pub const EMPTY_HEADER: Header<'static> = Header {
    name: "",
    value: b"",
};

/// Result of parsing a possibly incomplete buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed<T> {
    /// The item is complete.
    Complete(T),
    /// More bytes are needed; nothing is wrong so far.
    Partial,
}

/// The HTTP version of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0: keep-alive only on request.
    Http10,
    /// HTTP/1.1.
    Http11,
}

/// A parsed request head, borrowing from the receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHead<'b> {
    /// The method token, case-sensitive (RFC 9110 §9.1).
    pub method: &'b str,
    /// The request-target as sent (origin-form `/path?query` for every client we serve).
    pub target: &'b str,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    /// The header fields in order of arrival.
    pub headers: &'b [Header<'b>],
    /// Bytes of the head including the final empty line; the body starts here.
    pub head_bytes: usize,
    /// How the body is framed (RFC 9112 §6.3).
    pub body: BodyFraming,
    /// Whether the connection may stay open after this exchange.
    pub keep_alive: bool,
    /// The client sent `Expect: 100-continue` on an HTTP/1.1 request that has a body.
    pub expect_continue: bool,
    /// The Host field value (required for HTTP/1.1).
    pub host: Option<&'b [u8]>,
}

impl<'b> RequestHead<'b> {
    /// The first value of the header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'b [u8]> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }

    /// All values of the header `name` (case-insensitive), in order.
    pub fn headers_named<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'b [u8]> + 's {
        self.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }

    /// The target's path: everything before the first `?`.
    pub fn path(&self) -> &'b str {
        self.target
            .split_once('?')
            .map_or(self.target, |(path, _)| path)
    }

    /// The target's query: everything after the first `?`, if any.
    pub fn query(&self) -> Option<&'b str> {
        self.target.split_once('?').map(|(_, query)| query)
    }

    /// True for HEAD: the response carries the GET length but no body.
    pub fn is_head(&self) -> bool {
        self.method == "HEAD"
    }
}

/// Parses a request head from the start of `buf` into `headers` (whose length bounds the header
/// count), checking every bound in `limits`. See the module docs.
pub fn parse_request<'b>(
    buf: &'b [u8],
    headers: &'b mut [Header<'b>],
    limits: &Limits,
) -> Result<Parsed<RequestHead<'b>>, ParseError> {
    let head_budget = limits.head_bytes_max.min(buf.len());
    let window = &buf[..head_budget];
    let Parsed::Complete(start) = skip_empty_lines(window, limits)? else {
        return partial_or(buf, limits, ParseError::HeadTooLarge);
    };
    let line_end = (start + limits.request_line_bytes_max).min(window.len());
    let Parsed::Complete((line, mut pos)) = take_line(window, start, line_end)? else {
        return request_line_partial(buf, start, limits);
    };
    let (method, target, version) = parse_request_line(line)?;
    let mut count = 0;
    loop {
        let Parsed::Complete((line, next)) = take_line(window, pos, window.len())? else {
            return partial_or(buf, limits, ParseError::HeadTooLarge);
        };
        pos = next;
        if line.is_empty() {
            break;
        }
        let slot = headers.get_mut(count).ok_or(ParseError::TooManyHeaders)?;
        *slot = parse_header_line(line)?;
        count += 1;
    }
    let headers = &headers[..count];
    let facts = derive_facts(version, headers, limits)?;
    Ok(Parsed::Complete(RequestHead {
        method,
        target,
        version,
        headers,
        head_bytes: pos,
        body: facts.body,
        keep_alive: facts.keep_alive,
        expect_continue: facts.expect_continue,
        host: facts.host,
    }))
}

/// RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the request-line. We
/// ignore any number that fits the request-line budget; returns where the request line starts.
fn skip_empty_lines(window: &[u8], limits: &Limits) -> Result<Parsed<usize>, ParseError> {
    let mut pos = 0;
    while pos < limits.request_line_bytes_max {
        match window.get(pos..pos + 2) {
            Some(b"\r\n") => pos += 2,
            Some([b'\n', _]) => return Err(ParseError::LineEndingInvalid),
            Some(_) => return Ok(Parsed::Complete(pos)),
            None if window.get(pos) == Some(&b'\n') => return Err(ParseError::LineEndingInvalid),
            None => return Ok(Parsed::Partial),
        }
    }
    Err(ParseError::MethodInvalid)
}

/// A head that is still partial is an error only once the whole head budget is used.
fn partial_or<T>(buf: &[u8], limits: &Limits, error: ParseError) -> Result<Parsed<T>, ParseError> {
    if buf.len() >= limits.head_bytes_max {
        Err(error)
    } else {
        Ok(Parsed::Partial)
    }
}

/// The request line has no end yet: fine while under its budget; beyond it, 414 if the target
/// had started (method SP seen), else 400.
fn request_line_partial<T>(
    buf: &[u8],
    start: usize,
    limits: &Limits,
) -> Result<Parsed<T>, ParseError> {
    let seen = &buf[start..buf.len().min(start + limits.request_line_bytes_max)];
    if let Some(sp) = seen.iter().position(|&b| b == b' ') {
        if !seen[..sp].iter().all(|&b| is_tchar(b)) || sp == 0 {
            return Err(ParseError::MethodInvalid);
        }
    } else if !seen.iter().all(|&b| is_tchar(b)) {
        return Err(ParseError::MethodInvalid);
    }
    if seen.len() < limits.request_line_bytes_max {
        return Ok(Parsed::Partial);
    }
    match seen.contains(&b' ') {
        true => Err(ParseError::TargetTooLong),
        false => Err(ParseError::MethodInvalid),
    }
}

/// Takes one CRLF-terminated line starting at `from` whose LF lies before `end`. Returns the
/// line without CRLF and the position after it.
fn take_line(buf: &[u8], from: usize, end: usize) -> Result<Parsed<(&[u8], usize)>, ParseError> {
    let Some(lf) = memchr::memchr(b'\n', &buf[from..end]) else {
        return Ok(Parsed::Partial);
    };
    let lf = from + lf;
    if lf == from || buf[lf - 1] != b'\r' {
        return Err(ParseError::LineEndingInvalid);
    }
    Ok(Parsed::Complete((&buf[from..lf - 1], lf + 1)))
}

/// `request-line = method SP request-target SP HTTP-version` (RFC 9112 §3).
fn parse_request_line(line: &[u8]) -> Result<(&str, &str, Version), ParseError> {
    let sp = line
        .iter()
        .position(|&b| b == b' ')
        .ok_or(ParseError::MethodInvalid)?;
    let (method, rest) = (&line[..sp], &line[sp + 1..]);
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err(ParseError::MethodInvalid);
    }
    let sp = rest
        .iter()
        .position(|&b| b == b' ')
        .ok_or(ParseError::VersionInvalid)?;
    let (target, version) = (&rest[..sp], &rest[sp + 1..]);
    if target.is_empty() || !target.iter().all(|&b| is_target_byte(b)) {
        return Err(ParseError::TargetInvalid);
    }
    let version = parse_version(version)?;
    let method = std::str::from_utf8(method).map_err(|_| ParseError::MethodInvalid)?;
    let target = std::str::from_utf8(target).map_err(|_| ParseError::TargetInvalid)?;
    Ok((method, target, version))
}

/// `HTTP-version = HTTP-name "/" DIGIT "." DIGIT` (RFC 9112 §2.3); only 1.0 and 1.1 are served.
fn parse_version(bytes: &[u8]) -> Result<Version, ParseError> {
    match bytes {
        b"HTTP/1.1" => Ok(Version::Http11),
        b"HTTP/1.0" => Ok(Version::Http10),
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            Err(ParseError::VersionUnsupported)
        }
        _ => Err(ParseError::VersionInvalid),
    }
}

/// `field-line = field-name ":" OWS field-value OWS` (RFC 9112 §5).
fn parse_header_line(line: &[u8]) -> Result<Header<'_>, ParseError> {
    if matches!(line.first(), Some(b' ' | b'\t')) {
        return Err(ParseError::HeaderFolded);
    }
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(ParseError::HeaderNameInvalid)?;
    let name = &line[..colon];
    if matches!(name.last(), Some(b' ' | b'\t')) {
        return Err(ParseError::HeaderNameWhitespace);
    }
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err(ParseError::HeaderNameInvalid);
    }
    let value = trim_ows(&line[colon + 1..]);
    if !is_field_value(value) {
        return Err(ParseError::HeaderValueInvalid);
    }
    let name = std::str::from_utf8(name).map_err(|_| ParseError::HeaderNameInvalid)?;
    Ok(Header { name, value })
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
