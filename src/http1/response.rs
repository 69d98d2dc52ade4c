//! The response writer (sans-IO): renders status line and headers into a byte buffer.
//!
//! Every response carries `Content-Length` — also 404 and an empty 200, because Bazel treats a
//! response without it as an error instead of a miss (`reference/clients.md` §1) and old sccache
//! sizes its read buffer from it. The one exception is 204, where RFC 9110 §8.6 forbids the
//! field (the body is empty by definition). The response version is always HTTP/1.1
//! (RFC 9110 §6.2: a server sends its highest conformant version; Bazel rejects HTTP/1.0 replies).
//!
//! ```
//! use tessera::http1::{write_response_head, ResponseHead};
//! let mut out = Vec::new();
//! let head = ResponseHead { status: 404, content_length: 0, close: false, keep_alive_hint: false, extra: b"", date: None };
//! write_response_head(&mut out, &head);
//! assert_eq!(out, b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n");
//! ```

use std::io::{self, Write};

use super::token::{is_field_value, is_token};

/// What the status line and framing headers of one response say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHead<'h> {
    /// Status code, 200..=599 (100 Continue is written by the driver alone).
    pub status: u16,
    /// The body length (for HEAD: the length the GET body would have).
    pub content_length: u64,
    /// Send `Connection: close` (the server closes after this response).
    pub close: bool,
    /// Send `Connection: keep-alive` (an HTTP/1.0 client asked to keep the connection).
    pub keep_alive_hint: bool,
    /// Extra header lines, already rendered as `name: value\r\n` (see [`push_header`]).
    pub extra: &'h [u8],
    /// The `Date` value ([`http_date_now`](super::http_date_now)); `None` omits the header.
    pub date: Option<&'h [u8]>,
}

/// The interim response sent before reading a body the client is holding back
/// (`Expect: 100-continue`, RFC 9110 §10.1.1).
pub const CONTINUE_RESPONSE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Header names a service may not set: the driver owns framing and connection management.
const RESERVED_HEADERS: [&str; 4] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
];

/// Renders a response head into `out` (appending).
pub fn write_response_head(out: &mut Vec<u8>, head: &ResponseHead<'_>) {
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(out, u64::from(head.status));
    out.push(b' ');
    out.extend_from_slice(reason_phrase(head.status).as_bytes());
    out.extend_from_slice(b"\r\n");
    if let Some(date) = head.date {
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(date);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(head.extra);
    if head.status != 204 {
        out.extend_from_slice(b"content-length: ");
        push_decimal(out, head.content_length);
        out.extend_from_slice(b"\r\n");
    }
    if head.close {
        out.extend_from_slice(b"connection: close\r\n");
    } else if head.keep_alive_hint {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Renders a complete error response — head plus a short `text/plain` body (`message` and a
/// newline; omitted, but counted in `Content-Length`, when `head_request`) — into `out`. Used by
/// the driver for requests it rejects itself.
pub fn write_error_response(
    out: &mut Vec<u8>,
    status: u16,
    message: &str,
    close: bool,
    head_request: bool,
    date: Option<&[u8]>,
) {
    let extra = b"content-type: text/plain; charset=utf-8\r\n";
    let length = message.len() as u64 + 1;
    let head = ResponseHead {
        status,
        content_length: length,
        close,
        keep_alive_hint: false,
        extra,
        date,
    };
    write_response_head(out, &head);
    if !head_request {
        out.extend_from_slice(message.as_bytes());
        out.push(b'\n');
    }
}

/// Validates one header and appends it to `extra` as `name: value\r\n`, refusing to grow
/// `extra` beyond `extra_bytes_max`. Errors are `InvalidInput`: a bad name or value (a CR/LF
/// would let a value inject headers), a reserved framing header, or the limit.
pub fn push_header(
    extra: &mut Vec<u8>,
    name: &str,
    value: &[u8],
    extra_bytes_max: usize,
) -> io::Result<()> {
    if !is_token(name.as_bytes()) || !is_field_value(value) {
        return Err(invalid_input(
            "response header name or value holds a forbidden byte",
        ));
    }
    if RESERVED_HEADERS
        .iter()
        .any(|r| name.eq_ignore_ascii_case(r))
    {
        return Err(invalid_input(
            "framing headers are written by the http1 driver",
        ));
    }
    if extra.len() + name.len() + value.len() + 4 > extra_bytes_max {
        return Err(invalid_input(
            "response headers exceed response_head_bytes_max",
        ));
    }
    extra.extend_from_slice(name.as_bytes());
    extra.extend_from_slice(b": ");
    extra.extend_from_slice(value);
    extra.extend_from_slice(b"\r\n");
    Ok(())
}

fn invalid_input(message: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

fn push_decimal(out: &mut Vec<u8>, value: u64) {
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{value}");
}

/// The reason phrase for `status` (RFC 9110 §15; empty for codes without one).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        507 => "Insufficient Storage",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_carries_length_and_connection() {
        let mut out = Vec::new();
        let mut extra = Vec::new();
        push_header(&mut extra, "content-type", b"application/octet-stream", 100).unwrap();
        let head = ResponseHead {
            status: 200,
            content_length: 5,
            close: true,
            keep_alive_hint: false,
            extra: &extra,
            date: None,
        };
        write_response_head(&mut out, &head);
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: 5\r\nconnection: close\r\n\r\n"
        );
    }

    #[test]
    fn no_content_has_no_length() {
        let mut out = Vec::new();
        let head = ResponseHead {
            status: 204,
            content_length: 0,
            close: false,
            keep_alive_hint: true,
            extra: b"",
            date: None,
        };
        write_response_head(&mut out, &head);
        assert_eq!(
            out,
            b"HTTP/1.1 204 No Content\r\nconnection: keep-alive\r\n\r\n"
        );
    }

    #[test]
    fn error_response_has_text_body() {
        let mut out = Vec::new();
        write_error_response(&mut out, 413, "request body too large", true, false, None);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 413 Content Too Large\r\n"));
        assert!(text.contains("content-length: 23\r\n"));
        assert!(text.contains("connection: close\r\n"));
        assert!(text.ends_with("\r\n\r\nrequest body too large\n"));
    }

    #[test]
    fn push_header_rejects_injection_reserved_and_overflow() {
        let mut extra = Vec::new();
        let kind = |r: io::Result<()>| r.unwrap_err().kind();
        assert_eq!(
            kind(push_header(&mut extra, "x", b"a\r\nevil: 1", 100)),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            kind(push_header(&mut extra, "bad name", b"v", 100)),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            kind(push_header(&mut extra, "Content-Length", b"1", 100)),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            kind(push_header(&mut extra, "x-long", &[b'a'; 200], 100)),
            io::ErrorKind::InvalidInput
        );
        assert!(extra.is_empty());
    }
}
