//! gRPC status codes and the `grpc-status` / `grpc-message` trailers.
//!
//! A call ends with a [`Status`]. [`Status::to_trailers`] renders it as the HTTP/2 trailers of a
//! normal response, [`Status::to_trailers_only`] as the single HEADERS frame of a Trailers-Only
//! response (used when a call fails before its first message). `grpc-message` is percent-encoded
//! as the gRPC HTTP/2 spec ("PROTOCOL-HTTP2.md", Responses) requires: every byte outside
//! 0x20..=0x7E, and `%` itself, becomes `%XX`.

use std::fmt;

use http::{HeaderMap, HeaderValue};

use super::limits::STATUS_MESSAGE_BYTES_MAX;

/// The 17 canonical status codes (grpc `doc/statuscodes.md`, `google.rpc.Code`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Code {
    Ok = 0,
    Cancelled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
}

impl Code {
    /// Every code, in numeric order.
    pub const ALL: [Code; 17] = [
        Code::Ok,
        Code::Cancelled,
        Code::Unknown,
        Code::InvalidArgument,
        Code::DeadlineExceeded,
        Code::NotFound,
        Code::AlreadyExists,
        Code::PermissionDenied,
        Code::ResourceExhausted,
        Code::FailedPrecondition,
        Code::Aborted,
        Code::OutOfRange,
        Code::Unimplemented,
        Code::Internal,
        Code::Unavailable,
        Code::DataLoss,
        Code::Unauthenticated,
    ];

    /// The canonical upper-case name (`NOT_FOUND`).
    pub fn name(self) -> &'static str {
        match self {
            Code::Ok => "OK",
            Code::Cancelled => "CANCELLED",
            Code::Unknown => "UNKNOWN",
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Code::NotFound => "NOT_FOUND",
            Code::AlreadyExists => "ALREADY_EXISTS",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Code::FailedPrecondition => "FAILED_PRECONDITION",
            Code::Aborted => "ABORTED",
            Code::OutOfRange => "OUT_OF_RANGE",
            Code::Unimplemented => "UNIMPLEMENTED",
            Code::Internal => "INTERNAL",
            Code::Unavailable => "UNAVAILABLE",
            Code::DataLoss => "DATA_LOSS",
            Code::Unauthenticated => "UNAUTHENTICATED",
        }
    }

    /// The code for a numeric value; values outside 0..=16 are UNKNOWN, as the spec directs.
    pub fn from_i32(value: i32) -> Code {
        usize::try_from(value)
            .ok()
            .and_then(|index| Code::ALL.get(index).copied())
            .unwrap_or(Code::Unknown)
    }

    pub fn as_i32(self) -> i32 {
        self as i32
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The outcome of a call: a code and a developer-facing message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub code: Code,
    pub message: String,
}

impl Status {
    pub fn new(code: Code, message: impl Into<String>) -> Status {
        Status {
            code,
            message: message.into(),
        }
    }

    pub fn ok() -> Status {
        Status::new(Code::Ok, "")
    }

    pub fn invalid_argument(message: impl Into<String>) -> Status {
        Status::new(Code::InvalidArgument, message)
    }

    pub fn not_found(message: impl Into<String>) -> Status {
        Status::new(Code::NotFound, message)
    }

    pub fn internal(message: impl Into<String>) -> Status {
        Status::new(Code::Internal, message)
    }

    pub fn unimplemented(message: impl Into<String>) -> Status {
        Status::new(Code::Unimplemented, message)
    }

    pub fn resource_exhausted(message: impl Into<String>) -> Status {
        Status::new(Code::ResourceExhausted, message)
    }

    pub fn cancelled(message: impl Into<String>) -> Status {
        Status::new(Code::Cancelled, message)
    }

    pub fn deadline_exceeded(message: impl Into<String>) -> Status {
        Status::new(Code::DeadlineExceeded, message)
    }

    /// `grpc-status` and (when the message is not empty) `grpc-message`, for the trailers of a
    /// response whose HEADERS were already sent.
    pub fn to_trailers(&self) -> HeaderMap {
        let mut trailers = HeaderMap::with_capacity(2);
        trailers.insert("grpc-status", HeaderValue::from(self.code as u16));
        if !self.message.is_empty() {
            let encoded = percent_encode_message(&self.message);
            // Percent-encoding leaves only visible ASCII, which is always a valid header value.
            let value = HeaderValue::from_str(&encoded).expect("percent-encoded text is ASCII");
            trailers.insert("grpc-message", value);
        }
        trailers
    }

    /// The complete header block of a Trailers-Only response: `:status 200`, the gRPC content
    /// type and the status, sent as one HEADERS frame with END_STREAM.
    pub fn to_trailers_only(&self) -> http::Response<()> {
        let mut response = http::Response::new(());
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static(super::CONTENT_TYPE_GRPC),
        );
        headers.extend(self.to_trailers());
        response
    }

    /// Reads a status back from trailers (used by the test client and by proxies): a missing or
    /// unparsable `grpc-status` is UNKNOWN with a message saying so.
    pub fn from_trailers(trailers: &HeaderMap) -> Status {
        let Some(raw) = trailers.get("grpc-status") else {
            return Status::new(Code::Unknown, "response carried no grpc-status");
        };
        let Some(code) = raw.to_str().ok().and_then(|text| text.parse::<i32>().ok()) else {
            return Status::new(Code::Unknown, "grpc-status is not a number");
        };
        let message = trailers
            .get("grpc-message")
            .map(|value| percent_decode_message(value.as_bytes()))
            .unwrap_or_default();
        Status::new(Code::from_i32(code), message)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            write!(f, "{}", self.code)
        } else {
            write!(f, "{}: {}", self.code, self.message)
        }
    }
}

impl std::error::Error for Status {}

/// Percent-encodes a status message per the gRPC spec, after cutting it to
/// [`STATUS_MESSAGE_BYTES_MAX`] source bytes on a character boundary.
pub fn percent_encode_message(message: &str) -> String {
    let mut end = message.len().min(STATUS_MESSAGE_BYTES_MAX);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let mut encoded = String::with_capacity(end);
    for &byte in &message.as_bytes()[..end] {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            encoded.push(byte as char);
        } else {
            encoded.push('%');
            encoded.push(HEX_UPPER[usize::from(byte >> 4)] as char);
            encoded.push(HEX_UPPER[usize::from(byte & 0xf)] as char);
        }
    }
    encoded
}

/// The inverse of [`percent_encode_message`]; a malformed `%` escape is kept literally, and
/// invalid UTF-8 is replaced, as the spec asks receivers to be lenient.
pub fn percent_decode_message(encoded: &[u8]) -> String {
    let mut bytes = Vec::with_capacity(encoded.len());
    let mut index = 0;
    while index < encoded.len() {
        let escape = encoded.get(index + 1..index + 3).and_then(|pair| {
            let high = hex_value(pair[0])?;
            let low = hex_value(pair[1])?;
            Some(high << 4 | low)
        });
        match (encoded[index], escape) {
            (b'%', Some(byte)) => {
                bytes.push(byte);
                index += 3;
            }
            (byte, _) => {
                bytes.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_their_numbers() {
        for (index, code) in Code::ALL.iter().enumerate() {
            assert_eq!(code.as_i32(), index as i32);
            assert_eq!(Code::from_i32(index as i32), *code);
        }
        assert_eq!(Code::from_i32(17), Code::Unknown);
        assert_eq!(Code::from_i32(-1), Code::Unknown);
        assert_eq!(Code::NotFound.name(), "NOT_FOUND");
        assert_eq!(Code::ResourceExhausted.to_string(), "RESOURCE_EXHAUSTED");
    }

    #[test]
    fn message_encoding_follows_the_spec_table() {
        let cases: [(&str, &str); 5] = [
            ("plain text", "plain text"),
            ("100%", "100%25"),
            ("line\nbreak", "line%0Abreak"),
            ("caf\u{e9}", "caf%C3%A9"),
            ("tab\tand ~", "tab%09and ~"),
        ];
        for (source, wire) in cases {
            assert_eq!(percent_encode_message(source), wire, "encoding {source:?}");
            assert_eq!(
                percent_decode_message(wire.as_bytes()),
                source,
                "decoding {wire:?}"
            );
        }
    }

    #[test]
    fn malformed_escapes_decode_literally() {
        assert_eq!(percent_decode_message(b"50%"), "50%");
        assert_eq!(percent_decode_message(b"%zz!"), "%zz!");
        assert_eq!(percent_decode_message(b"%4"), "%4");
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let message = "\u{e9}".repeat(STATUS_MESSAGE_BYTES_MAX);
        let encoded = percent_encode_message(&message);
        let decoded = percent_decode_message(encoded.as_bytes());
        assert!(decoded.len() <= STATUS_MESSAGE_BYTES_MAX);
        assert!(decoded.len() >= STATUS_MESSAGE_BYTES_MAX - 1);
        assert!(decoded.chars().all(|c| c == '\u{e9}'));
    }

    #[test]
    fn trailers_round_trip() {
        let status = Status::not_found("blob 'abc/3' is not in the cache");
        let trailers = status.to_trailers();
        assert_eq!(trailers.get("grpc-status").unwrap(), "5");
        assert_eq!(Status::from_trailers(&trailers), status);
        let ok = Status::ok().to_trailers();
        assert_eq!(ok.len(), 1);
        assert_eq!(Status::from_trailers(&ok).code, Code::Ok);
    }

    #[test]
    fn trailers_only_carries_content_type_and_status() {
        let response = Status::unimplemented("no such method").to_trailers_only();
        assert_eq!(response.status(), http::StatusCode::OK);
        let headers = response.headers();
        assert_eq!(headers.get("content-type").unwrap(), "application/grpc");
        assert_eq!(headers.get("grpc-status").unwrap(), "12");
        assert_eq!(headers.get("grpc-message").unwrap(), "no such method");
    }

    #[test]
    fn missing_status_reads_as_unknown() {
        let status = Status::from_trailers(&HeaderMap::new());
        assert_eq!(status.code, Code::Unknown);
        let mut bogus = HeaderMap::new();
        bogus.insert("grpc-status", HeaderValue::from_static("x"));
        assert_eq!(Status::from_trailers(&bogus).code, Code::Unknown);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any message within the limit survives the trailer encoding unchanged.
        #[test]
        fn messages_round_trip(message in "\\PC{0,200}") {
            let encoded = percent_encode_message(&message);
            prop_assert!(encoded.bytes().all(|b| (0x20..=0x7e).contains(&b)));
            prop_assert_eq!(percent_decode_message(encoded.as_bytes()), message);
        }
    }
}
