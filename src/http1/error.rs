//! Errors of the HTTP/1.1 wire layer and the one place they become status codes.

use std::fmt;

/// Why a request head was rejected. [`ParseError::status`] maps each kind to its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// The method is not a token (RFC 9110 §9.1), or the request line has no SP after it.
    MethodInvalid,
    /// The request-target is empty or contains a byte outside VCHAR.
    TargetInvalid,
    /// The request line exceeded `request_line_bytes_max` inside the request-target.
    TargetTooLong,
    /// The HTTP-version is not `HTTP/DIGIT.DIGIT` (RFC 9112 §2.3), or junk follows it.
    VersionInvalid,
    /// A well-formed version other than HTTP/1.0 or HTTP/1.1.
    VersionUnsupported,
    /// A line ended in a bare LF, or a CR was not followed by LF (RFC 9112 §2.2).
    LineEndingInvalid,
    /// A header name is not a token.
    HeaderNameInvalid,
    /// Whitespace between a header name and its colon (RFC 9112 §5.1: MUST reject with 400).
    HeaderNameWhitespace,
    /// A header value holds a control byte.
    HeaderValueInvalid,
    /// A header line starts with whitespace (obsolete line folding, RFC 9112 §5.2).
    HeaderFolded,
    /// More header fields than the caller's header array holds.
    TooManyHeaders,
    /// The head did not end within `head_bytes_max`.
    HeadTooLarge,
    /// A Content-Length value is not `1*DIGIT` or does not fit in 64 bits.
    ContentLengthInvalid,
    /// More than one Content-Length field (even with equal values).
    ContentLengthDuplicated,
    /// Transfer-Encoding other than exactly `chunked`.
    TransferEncodingUnsupported,
    /// Transfer-Encoding together with Content-Length (RFC 9112 §6.3 step 3: request smuggling).
    TransferEncodingWithContentLength,
    /// Transfer-Encoding in an HTTP/1.0 request (RFC 9112 §6.1: the framing is faulty).
    TransferEncodingInHttp10,
    /// Content-Length above `body_bytes_max`.
    BodyTooLarge,
    /// An Expect value other than `100-continue` (RFC 9110 §10.1.1).
    ExpectationUnsupported,
    /// An HTTP/1.1 request without Host (RFC 9112 §3.2: MUST respond 400).
    HostMissing,
    /// More than one Host field (RFC 9112 §3.2: MUST respond 400).
    HostDuplicated,
}

impl ParseError {
    /// The one mapping from a parse error to its response status and short reason text.
    pub fn status(self) -> (u16, &'static str) {
        use ParseError::*;
        match self {
            MethodInvalid => (400, "invalid request method"),
            TargetInvalid => (400, "invalid request target"),
            TargetTooLong => (414, "request target too long"),
            VersionInvalid => (400, "invalid HTTP version"),
            VersionUnsupported => (505, "only HTTP/1.1 and HTTP/1.0 are supported"),
            LineEndingInvalid => (400, "lines must end in CRLF"),
            HeaderNameInvalid => (400, "invalid header name"),
            HeaderNameWhitespace => (400, "whitespace before header colon"),
            HeaderValueInvalid => (400, "invalid byte in header value"),
            HeaderFolded => (400, "obsolete header line folding"),
            TooManyHeaders => (431, "too many header fields"),
            HeadTooLarge => (431, "request header section too large"),
            ContentLengthInvalid => (400, "invalid Content-Length"),
            ContentLengthDuplicated => (400, "more than one Content-Length"),
            TransferEncodingUnsupported => (501, "only Transfer-Encoding: chunked is supported"),
            TransferEncodingWithContentLength => {
                (400, "Transfer-Encoding together with Content-Length")
            }
            TransferEncodingInHttp10 => (400, "Transfer-Encoding in an HTTP/1.0 request"),
            BodyTooLarge => (413, "request body too large"),
            ExpectationUnsupported => (417, "only Expect: 100-continue is supported"),
            HostMissing => (400, "missing Host header"),
            HostDuplicated => (400, "more than one Host header"),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (status, reason) = self.status();
        write!(f, "{reason} (HTTP {status})")
    }
}

impl std::error::Error for ParseError {}

/// Why a chunked request body was rejected (RFC 9112 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChunkedError {
    /// A chunk-size line does not start with a hex digit, or holds a byte not allowed there.
    SizeInvalid,
    /// A chunk size does not fit in 64 bits.
    SizeOverflow,
    /// A chunk-size line (with extensions) exceeded `chunk_line_bytes_max`.
    LineTooLong,
    /// A line ended in a bare LF or a CR was not followed by LF.
    LineEndingInvalid,
    /// Chunk data was not followed by CRLF.
    DataNotTerminated,
    /// The trailer section exceeded `trailer_bytes_max`.
    TrailerTooLarge,
    /// The decoded body would exceed `body_bytes_max`.
    BodyTooLarge,
}

impl ChunkedError {
    /// Response status and short reason for a request whose chunked body failed.
    pub fn status(self) -> (u16, &'static str) {
        use ChunkedError::*;
        match self {
            SizeInvalid => (400, "invalid chunk size"),
            SizeOverflow => (400, "chunk size overflows 64 bits"),
            LineTooLong => (400, "chunk-size line too long"),
            LineEndingInvalid => (400, "chunk lines must end in CRLF"),
            DataNotTerminated => (400, "chunk data not followed by CRLF"),
            TrailerTooLarge => (431, "chunked trailer section too large"),
            BodyTooLarge => (413, "request body too large"),
        }
    }
}

impl fmt::Display for ChunkedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (status, reason) = self.status();
        write!(f, "{reason} (HTTP {status})")
    }
}

impl std::error::Error for ChunkedError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_status() {
        assert_eq!(
            ParseError::BodyTooLarge.to_string(),
            "request body too large (HTTP 413)"
        );
        assert_eq!(ChunkedError::TrailerTooLarge.status().0, 431);
    }
}
