//! Table-driven byte-string cases for the request-head parser, plus property tests.

use proptest::prelude::*;

use super::*;
use crate::http1::error::ParseError as E;
use crate::http1::facts::BodyFraming;
use crate::http1::limits::Limits;

fn parse_with(input: &[u8], limits: &Limits, slots: usize) -> Result<Parsed<usize>, ParseError> {
    let mut headers = [EMPTY_HEADER; 8];
    parse_request(input, &mut headers[..slots], limits).map(|p| match p {
        Parsed::Complete(head) => Parsed::Complete(head.head_bytes),
        Parsed::Partial => Parsed::Partial,
    })
}

fn parse(input: &[u8]) -> Result<Parsed<usize>, ParseError> {
    parse_with(input, &Limits::default(), 8)
}

#[test]
fn valid_heads() {
    let mut headers = [EMPTY_HEADER; 8];
    let input = b"\r\nPUT /cas/ab?x=1 HTTP/1.1\r\nHost: cache:8080\r\nContent-Length: 12\r\nX-Empty:\r\nX-Pad: \t a b \t\r\n\r\nbody";
    let Ok(Parsed::Complete(head)) = parse_request(input, &mut headers, &Limits::default()) else {
        panic!("complete");
    };
    assert_eq!(head.method, "PUT");
    assert_eq!(head.target, "/cas/ab?x=1");
    assert_eq!((head.path(), head.query()), ("/cas/ab", Some("x=1")));
    assert_eq!(head.version, Version::Http11);
    assert_eq!(head.headers.len(), 4);
    assert_eq!(head.header("x-empty"), Some(&b""[..]));
    assert_eq!(head.header("X-PAD"), Some(&b"a b"[..]));
    assert_eq!(head.host, Some(&b"cache:8080"[..]));
    assert_eq!(head.body, BodyFraming::Length(12));
    assert!(head.keep_alive && !head.expect_continue);
    assert_eq!(&input[head.head_bytes..], b"body");
}

#[test]
fn derived_facts() {
    let cases: &[(&[u8], BodyFraming, bool, bool)] = &[
        (
            b"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
            BodyFraming::Empty,
            true,
            false,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Close\r\n\r\n",
            BodyFraming::Empty,
            false,
            false,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: te, close\r\n\r\n",
            BodyFraming::Empty,
            false,
            false,
        ),
        (b"GET / HTTP/1.0\r\n\r\n", BodyFraming::Empty, false, false),
        (
            b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
            BodyFraming::Empty,
            true,
            false,
        ),
        (
            b"PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nExpect: 100-continue\r\n\r\n",
            BodyFraming::Empty,
            true,
            false,
        ),
        (
            b"PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 9\r\nExpect: 100-Continue\r\n\r\n",
            BodyFraming::Length(9),
            true,
            true,
        ),
        (
            b"PUT / HTTP/1.0\r\nContent-Length: 9\r\nExpect: 100-continue\r\n\r\n",
            BodyFraming::Length(9),
            false,
            false,
        ),
        (
            b"PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n",
            BodyFraming::Chunked,
            true,
            false,
        ),
    ];
    for (input, body, keep_alive, expect_continue) in cases {
        let mut headers = [EMPTY_HEADER; 8];
        let Ok(Parsed::Complete(head)) = parse_request(input, &mut headers, &Limits::default())
        else {
            panic!("complete: {}", String::from_utf8_lossy(input));
        };
        let what = String::from_utf8_lossy(input);
        assert_eq!(head.body, *body, "{what}");
        assert_eq!(head.keep_alive, *keep_alive, "{what}");
        assert_eq!(head.expect_continue, *expect_continue, "{what}");
    }
}

#[test]
fn partial_heads() {
    for input in [
        &b""[..],
        b"\r",
        b"\r\n",
        b"GE",
        b"GET / HTTP/1.1",
        b"GET / HTTP/1.1\r",
        b"GET / HTTP/1.1\r\nHost: h\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\n\r",
    ] {
        assert_eq!(
            parse(input),
            Ok(Parsed::Partial),
            "{}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn rejected_heads_and_their_status() {
    let cases: &[(&[u8], ParseError, u16)] = &[
        (b"G@T / HTTP/1.1\r\n\r\n", E::MethodInvalid, 400),
        (b" GET / HTTP/1.1\r\n\r\n", E::MethodInvalid, 400),
        (b"GET\r\n\r\n", E::MethodInvalid, 400),
        (b"GET  / HTTP/1.1\r\n\r\n", E::TargetInvalid, 400),
        (b"GET /a\x7fb HTTP/1.1\r\n\r\n", E::TargetInvalid, 400),
        (b"GET /\xc3\xa9 HTTP/1.1\r\n\r\n", E::TargetInvalid, 400),
        (b"GET /\r\n\r\n", E::VersionInvalid, 400),
        (b"GET / HTTP/1.1 \r\n\r\n", E::VersionInvalid, 400),
        (b"GET / http/1.1\r\n\r\n", E::VersionInvalid, 400),
        (b"GET / HTTP/2.0\r\n\r\n", E::VersionUnsupported, 505),
        (b"GET / HTTP/0.9\r\n\r\n", E::VersionUnsupported, 505),
        (b"GET / HTTP/1.1\n\n", E::LineEndingInvalid, 400),
        (b"\nGET / HTTP/1.1\r\n\r\n", E::LineEndingInvalid, 400),
        (b"GET / HTTP/1.1\r\nHost: h\n\r\n", E::LineEndingInvalid, 400),
        (b"GET / HTTP/1.1\r\nHo(st: h\r\n\r\n", E::HeaderNameInvalid, 400),
        (b"GET / HTTP/1.1\r\n: h\r\n\r\n", E::HeaderNameInvalid, 400),
        (b"GET / HTTP/1.1\r\nHost\r\n\r\n", E::HeaderNameInvalid, 400),
        (b"GET / HTTP/1.1\r\nHost : h\r\n\r\n", E::HeaderNameWhitespace, 400),
        (b"GET / HTTP/1.1\r\nHost: h\x00i\r\n\r\n", E::HeaderValueInvalid, 400),
        (b"GET / HTTP/1.1\r\nHost: h\ri\r\n\r\n", E::HeaderValueInvalid, 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n", E::HeaderFolded, 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1x\r\n\r\n", E::ContentLengthInvalid, 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", E::ContentLengthInvalid, 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1, 1\r\n\r\n", E::ContentLengthInvalid, 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n", E::ContentLengthInvalid, 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n", E::ContentLengthInvalid, 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", E::ContentLengthDuplicated, 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\ncontent-length: 2\r\n\r\n", E::ContentLengthDuplicated, 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", E::TransferEncodingUnsupported, 501),
        (b"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", E::TransferEncodingUnsupported, 501),
        (b"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n", E::TransferEncodingUnsupported, 501),
        (b"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", E::TransferEncodingWithContentLength, 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", E::TransferEncodingWithContentLength, 400),
        (b"GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", E::TransferEncodingInHttp10, 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 17179869185\r\n\r\n", E::BodyTooLarge, 413),
        (b"GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue, foo\r\n\r\n", E::ExpectationUnsupported, 417),
        (b"GET / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\n\r\n", E::ExpectationUnsupported, 417),
        (b"GET / HTTP/1.1\r\nX: y\r\n\r\n", E::HostMissing, 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", E::HostDuplicated, 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\n1: 1\r\n2: 2\r\n3: 3\r\n4: 4\r\n5: 5\r\n6: 6\r\n7: 7\r\n8: 8\r\n\r\n", E::TooManyHeaders, 431),
    ];
    for (input, error, status) in cases {
        let what = String::from_utf8_lossy(input);
        assert_eq!(parse(input), Err(*error), "{what}");
        assert_eq!(error.status().0, *status, "{what}");
    }
}

#[test]
fn header_count_is_bounded_by_the_callers_array() {
    let input = b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n";
    assert_eq!(
        parse_with(input, &Limits::default(), 3),
        Ok(Parsed::Complete(input.len()))
    );
    assert_eq!(
        parse_with(input, &Limits::default(), 2),
        Err(E::TooManyHeaders)
    );
}

#[test]
fn request_line_limit_gives_414_inside_the_target_and_400_before() {
    let limits = Limits {
        request_line_bytes_max: 32,
        head_bytes_max: 64,
        ..Limits::default()
    };
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: h\r\n\r\n", "a".repeat(40));
    assert_eq!(
        parse_with(long_target.as_bytes(), &limits, 8),
        Err(E::TargetTooLong)
    );
    // Still partial: only 31 bytes of request line so far.
    assert_eq!(
        parse_with(&long_target.as_bytes()[..31], &limits, 8),
        Ok(Parsed::Partial)
    );
    let long_method = "A".repeat(40);
    assert_eq!(
        parse_with(long_method.as_bytes(), &limits, 8),
        Err(E::MethodInvalid)
    );
    let exact = format!("GET /{} HTTP/1.1\r\nHost: h\r\n\r\n", "a".repeat(16));
    assert_eq!(exact.find('\n'), Some(31)); // 32 bytes with CRLF: at the limit, accepted
    assert_eq!(
        parse_with(exact.as_bytes(), &limits, 8),
        Ok(Parsed::Complete(exact.len()))
    );
}

#[test]
fn head_limit_gives_431() {
    let limits = Limits {
        request_line_bytes_max: 32,
        head_bytes_max: 64,
        ..Limits::default()
    };
    let head = format!("GET / HTTP/1.1\r\nHost: h\r\nX: {}\r\n\r\n", "v".repeat(40));
    assert_eq!(
        parse_with(head.as_bytes(), &limits, 8),
        Err(E::HeadTooLarge)
    );
    assert_eq!(
        parse_with(&head.as_bytes()[..63], &limits, 8),
        Ok(Parsed::Partial)
    );
    let fits = format!("GET / HTTP/1.1\r\nHost: h\r\nX: {}\r\n\r\n", "v".repeat(32));
    assert_eq!(fits.len(), 64);
    assert_eq!(
        parse_with(fits.as_bytes(), &limits, 8),
        Ok(Parsed::Complete(64))
    );
}

/// A generator of valid request heads (method, target, headers, framing) and their bytes.
fn valid_head() -> impl Strategy<Value = Vec<u8>> {
    let method = prop::sample::select(vec!["GET", "PUT", "HEAD", "DELETE", "POST", "OPTIONS"]);
    let target = "/[a-zA-Z0-9/_.~%-]{0,40}(\\?[a-z0-9=&]{0,20})?";
    let header = ("[A-Za-z][A-Za-z0-9-]{0,15}", "[ -~]{0,30}");
    let framing = prop::sample::select(vec![
        "",
        "Content-Length: 5\r\n",
        "Transfer-Encoding: chunked\r\n",
    ]);
    (method, target, prop::collection::vec(header, 0..5), framing).prop_map(|(m, t, hs, f)| {
        let mut out = format!("{m} {t} HTTP/1.1\r\nHost: example\r\n{f}");
        for (name, value) in hs {
            let reserved = [
                "host",
                "content-length",
                "transfer-encoding",
                "expect",
                "connection",
            ];
            if !reserved.contains(&name.to_ascii_lowercase().as_str()) {
                out.push_str(&format!("X-{name}: {}\r\n", value.trim()));
            }
        }
        out.push_str("\r\n");
        out.into_bytes()
    })
}

/// Invariants every parse result obeys, whatever the input.
fn check_invariants(input: &[u8], limits: &Limits) {
    let mut headers = [EMPTY_HEADER; 8];
    if let Ok(Parsed::Complete(head)) = parse_request(input, &mut headers, limits) {
        assert!(head.head_bytes <= input.len() && head.head_bytes <= limits.head_bytes_max);
        assert!(head.headers.len() <= 8);
        assert!(crate::http1::token::is_token(head.method.as_bytes()));
        assert!(head.target.bytes().all(crate::http1::token::is_target_byte));
        assert!(input[..head.head_bytes].ends_with(b"\r\n\r\n"));
        for header in head.headers {
            assert!(crate::http1::token::is_token(header.name.as_bytes()));
            assert!(header
                .value
                .iter()
                .all(|&b| crate::http1::token::is_field_value_byte(b)));
        }
        if let BodyFraming::Length(n) = head.body {
            assert!(n <= limits.body_bytes_max);
        }
    }
}

proptest! {
    #[test]
    fn random_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..300)) {
        let limits = Limits { request_line_bytes_max: 64, head_bytes_max: 128, ..Limits::default() };
        check_invariants(&input, &limits);
    }

    #[test]
    fn valid_heads_parse_and_every_prefix_is_partial(head in valid_head()) {
        prop_assert_eq!(parse(&head), Ok(Parsed::Complete(head.len())));
        for cut in 0..head.len() {
            prop_assert_eq!(parse(&head[..cut]), Ok(Parsed::Partial), "prefix {}", cut);
        }
    }

    #[test]
    fn mutated_heads_never_panic(
        head in valid_head(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..6),
    ) {
        let mut input = head;
        for (at, byte, kind) in edits {
            let i = at.index(input.len() + 1);
            match kind {
                0 if i < input.len() => input[i] = byte,
                1 => input.insert(i, byte),
                _ if i < input.len() => { input.remove(i); }
                _ => {}
            }
        }
        check_invariants(&input, &Limits::default());
        let small = Limits { request_line_bytes_max: 24, head_bytes_max: 48, ..Limits::default() };
        check_invariants(&input, &small);
    }
}
