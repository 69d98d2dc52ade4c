//! Table-driven cases and property tests for the chunked decoder.

use proptest::prelude::*;

use super::*;
use crate::http1::error::ChunkedError as E;

fn limits() -> Limits {
    Limits {
        chunk_line_bytes_max: 32,
        trailer_bytes_max: 64,
        body_bytes_max: 1000,
        ..Limits::default()
    }
}

/// Decodes `input` fed in pieces of `piece_bytes`, taking at most `data_max` data bytes per step.
/// Returns the body, whether the decoder finished, and the unconsumed rest.
fn decode_all(
    input: &[u8],
    piece_bytes: usize,
    data_max: usize,
    limits: &Limits,
) -> Result<(Vec<u8>, bool, usize), ChunkedError> {
    let mut decoder = ChunkedDecoder::new(limits);
    let mut body = Vec::new();
    let mut pos = 0;
    let mut stalls = 0;
    while !decoder.is_done() && pos < input.len() {
        let piece = &input[pos..input.len().min(pos + piece_bytes)];
        let step = decoder.decode(piece, data_max)?;
        assert!(step.consumed <= piece.len() && step.data.end <= step.consumed);
        assert!(step.data.len() <= data_max);
        body.extend_from_slice(&piece[step.data.clone()]);
        pos += step.consumed;
        stalls = if step.consumed == 0 { stalls + 1 } else { 0 };
        assert!(stalls < 2, "no progress on non-empty input");
    }
    assert!(decoder.body_bytes() <= limits.body_bytes_max);
    Ok((body, decoder.is_done(), input.len() - pos))
}

#[test]
fn valid_bodies() {
    let cases: &[(&[u8], &[u8], usize)] = &[
        (b"0\r\n\r\n", b"", 0),
        (b"5\r\nhello\r\n0\r\n\r\n", b"hello", 0),
        (
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nNEXT",
            b"hello world",
            4,
        ),
        (b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789", 0),
        (
            b"a;x=1;y=\"q\"\r\n0123456789\r\n000\r\n\r\n",
            b"0123456789",
            0,
        ),
        (
            b"3 ; ext\r\nabc\r\n0\r\nTrailer: 1\r\nOther: 2\r\n\r\n",
            b"abc",
            0,
        ),
        (b"0003\r\nabc\r\n0\r\n\r\n", b"abc", 0),
    ];
    for (input, body, rest) in cases {
        for piece in [1, 2, 7, input.len()] {
            let what = String::from_utf8_lossy(input);
            let got = decode_all(input, piece, usize::MAX, &limits());
            assert_eq!(
                got,
                Ok((body.to_vec(), true, *rest)),
                "{what} piece {piece}"
            );
            assert_eq!(
                decode_all(input, piece, 1, &limits()),
                got,
                "{what} data_max 1"
            );
        }
    }
}

#[test]
fn incomplete_bodies_are_not_errors() {
    for input in [
        &b"5"[..],
        b"5\r",
        b"5\r\nhel",
        b"5\r\nhello\r",
        b"5\r\nhello\r\n0\r\n",
        b"5\r\nhello\r\n0\r\nT: 1\r\n",
    ] {
        let (_, done, rest) = decode_all(input, 3, usize::MAX, &limits()).unwrap();
        assert!(!done && rest == 0, "{}", String::from_utf8_lossy(input));
    }
}

#[test]
fn invalid_bodies_and_their_errors() {
    let long_ext = format!("1;{}\r\na\r\n0\r\n\r\n", "e".repeat(40));
    let long_trailer = format!("0\r\nT: {}\r\n\r\n", "v".repeat(70));
    let cases: Vec<(&[u8], ChunkedError)> = vec![
        (b"\r\n", E::SizeInvalid),
        (b"x\r\n", E::SizeInvalid),
        (b";ext\r\n", E::SizeInvalid),
        (b"-1\r\n", E::SizeInvalid),
        (b"5\x00\r\n", E::SizeInvalid),
        (b"5\nhello\r\n", E::LineEndingInvalid),
        (b"5\rhello", E::LineEndingInvalid),
        (b"5\r\nhelloX\r\n", E::DataNotTerminated),
        (b"5\r\nhello\rX", E::DataNotTerminated),
        (b"10000000000000000\r\n", E::SizeOverflow),
        (b"3E9\r\n", E::BodyTooLarge),
        (b"1F4\rx", E::LineEndingInvalid), // 500 bytes is within the limit; the missing LF is not
        (long_ext.as_bytes(), E::LineTooLong),
        (b"0\r\nT: 1\n", E::LineEndingInvalid),
        (b"0\r\n\n", E::LineEndingInvalid),
        (b"0\r\n\rX", E::LineEndingInvalid),
        (long_trailer.as_bytes(), E::TrailerTooLarge),
    ];
    for (input, error) in cases {
        let what = String::from_utf8_lossy(input);
        assert_eq!(
            decode_all(input, 1, usize::MAX, &limits()),
            Err(error),
            "{what}"
        );
        assert_eq!(
            decode_all(input, input.len(), usize::MAX, &limits()),
            Err(error),
            "{what}"
        );
    }
}

#[test]
fn body_limit_counts_across_chunks() {
    let mut input = Vec::new();
    for _ in 0..3 {
        input.extend(b"190\r\n"); // 400 bytes each: 1200 > 1000
        input.extend([b'a'; 400]);
        input.extend(b"\r\n");
    }
    assert_eq!(
        decode_all(&input, 100, usize::MAX, &limits()),
        Err(E::BodyTooLarge)
    );
}

#[test]
fn direct_data_reads_are_accounted() {
    let mut decoder = ChunkedDecoder::new(&limits());
    let step = decoder.decode(b"8\r\n", usize::MAX).unwrap();
    assert_eq!((step.consumed, step.data.len()), (3, 0));
    assert_eq!(decoder.data_pending(), 8);
    decoder.consume_data(5);
    assert_eq!(decoder.data_pending(), 3);
    decoder.consume_data(3);
    assert_eq!(decoder.data_pending(), 0);
    let step = decoder.decode(b"\r\n0\r\n\r\n", usize::MAX).unwrap();
    assert_eq!(step.consumed, 7);
    assert!(decoder.is_done());
}

/// The reference encoder: a body cut into the given chunk sizes.
fn encode(body: &[u8], cuts: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    let mut cut_iter = cuts.iter().cycle();
    while !rest.is_empty() {
        let take = (*cut_iter.next().unwrap_or(&1)).clamp(1, rest.len());
        out.extend(format!("{take:X}\r\n").bytes());
        out.extend_from_slice(&rest[..take]);
        out.extend(b"\r\n");
        rest = &rest[take..];
    }
    out.extend(b"0\r\n\r\n");
    out
}

proptest! {
    #[test]
    fn round_trips_any_chunking(
        body in prop::collection::vec(any::<u8>(), 0..900),
        cuts in prop::collection::vec(1usize..300, 1..5),
        piece in 1usize..64,
        data_max in 1usize..100,
    ) {
        let input = encode(&body, &cuts);
        prop_assert_eq!(decode_all(&input, piece, data_max, &limits()), Ok((body, true, 0)));
    }

    #[test]
    fn random_input_never_panics(input in prop::collection::vec(any::<u8>(), 0..200), piece in 1usize..32) {
        let _ = decode_all(&input, piece, 16, &limits());
    }

    #[test]
    fn mutated_input_never_panics(
        body in prop::collection::vec(any::<u8>(), 0..200),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut input = encode(&body, &[50]);
        for (at, byte) in edits {
            let i = at.index(input.len());
            input[i] = byte;
        }
        let _ = decode_all(&input, 7, 16, &limits());
    }
}
