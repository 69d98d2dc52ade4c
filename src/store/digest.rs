//! Content digests for CAS verification (SHA-256 and BLAKE3), computed while bytes stream in.

use sha2::Digest as _;

/// The hash function a client names its CAS blobs with. The one such enum in the crate;
/// front-ends map their protocol's names onto it (REAPI: `protocols::reapi::digest`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DigestFunction {
    Sha256,
    Blake3,
}

/// A 32-byte content digest.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ContentDigest {
    pub function: DigestFunction,
    pub hash: [u8; 32],
}

impl ContentDigest {
    /// Parses 64 hex digits (either case); `None` for anything else.
    pub fn parse_hex(function: DigestFunction, hex: &str) -> Option<Self> {
        let bytes = hex.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        // Table lookups with the validity check folded into one OR at the end: no branch per
        // digit (the branchy version was ~3 % of a 4 KiB GET's CPU).
        let mut hash = [0u8; 32];
        let mut invalid = 0u8;
        for (out, pair) in hash.iter_mut().zip(bytes.chunks_exact(2)) {
            let (high, low) = (
                HEX_VALUES[usize::from(pair[0])],
                HEX_VALUES[usize::from(pair[1])],
            );
            invalid |= high | low;
            *out = (high << 4) | (low & 0x0f);
        }
        (invalid & HEX_INVALID == 0).then_some(ContentDigest { function, hash })
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        to_hex(&self.hash)
    }

    /// Digest of a complete byte string.
    pub fn of(function: DigestFunction, bytes: &[u8]) -> Self {
        let mut hasher = StreamingHasher::new(function);
        hasher.update(bytes);
        hasher.finalize()
    }
}

/// Lower-case hex of any byte string.
pub fn to_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    push_hex(&mut out, bytes);
    out
}

/// Appends the lower-case hex of `bytes` to `out` (by table: formatting each byte with
/// `{:02x}` costs more than the rest of a tier upload's bookkeeping).
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 15)] as char);
    }
}

/// Marks a byte that is not a hex digit in [`HEX_VALUES`].
const HEX_INVALID: u8 = 0x80;

/// The value of each hex digit (either case); [`HEX_INVALID`] for every other byte.
const HEX_VALUES: [u8; 256] = {
    let mut table = [HEX_INVALID; 256];
    let mut digit = 0;
    while digit < 10 {
        table[b'0' as usize + digit] = digit as u8;
        digit += 1;
    }
    let mut letter = 0;
    while letter < 6 {
        table[b'a' as usize + letter] = 10 + letter as u8;
        table[b'A' as usize + letter] = 10 + letter as u8;
        letter += 1;
    }
    table
};

/// Incremental hasher for one digest function.
#[derive(Clone)]
pub enum StreamingHasher {
    Sha256(sha2::Sha256),
    Blake3(Box<blake3::Hasher>),
}

impl std::fmt::Debug for StreamingHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamingHasher")
    }
}

impl StreamingHasher {
    pub fn new(function: DigestFunction) -> Self {
        match function {
            DigestFunction::Sha256 => StreamingHasher::Sha256(sha2::Sha256::new()),
            DigestFunction::Blake3 => StreamingHasher::Blake3(Box::new(blake3::Hasher::new())),
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            StreamingHasher::Sha256(hasher) => hasher.update(bytes),
            StreamingHasher::Blake3(hasher) => {
                hasher.update(bytes);
            }
        }
    }

    pub fn finalize(self) -> ContentDigest {
        match self {
            StreamingHasher::Sha256(hasher) => ContentDigest {
                function: DigestFunction::Sha256,
                hash: hasher.finalize().into(),
            },
            StreamingHasher::Blake3(hasher) => ContentDigest {
                function: DigestFunction::Blake3,
                hash: *hasher.finalize().as_bytes(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answers() {
        // FIPS 180-2 "abc" and the BLAKE3 empty-input value from the reference test vectors.
        let sha = ContentDigest::of(DigestFunction::Sha256, b"abc");
        assert_eq!(
            sha.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let blake = ContentDigest::of(DigestFunction::Blake3, b"");
        assert_eq!(
            blake.to_hex(),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
    }

    #[test]
    fn streaming_equals_one_shot_and_hex_round_trips() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        for function in [DigestFunction::Sha256, DigestFunction::Blake3] {
            let mut hasher = StreamingHasher::new(function);
            for chunk in data.chunks(333) {
                hasher.update(chunk);
            }
            let streamed = hasher.finalize();
            assert_eq!(streamed, ContentDigest::of(function, &data));
            let upper = streamed.to_hex().to_uppercase();
            assert_eq!(ContentDigest::parse_hex(function, &upper), Some(streamed));
        }
    }

    #[test]
    fn parse_hex_rejects_bad_input() {
        let ok = "a".repeat(64);
        assert!(ContentDigest::parse_hex(DigestFunction::Sha256, &ok).is_some());
        for bad in [
            "",
            &"a".repeat(63),
            &"a".repeat(65),
            &format!("{}g", "a".repeat(63)),
        ] {
            assert!(
                ContentDigest::parse_hex(DigestFunction::Sha256, bad).is_none(),
                "{bad}"
            );
        }
        assert!(ContentDigest::parse_hex(DigestFunction::Sha256, &"é".repeat(32)).is_none());
        // Every non-hex byte at every position is refused; every hex digit decodes.
        for position in [0, 1, 31, 62, 63] {
            for byte in 0u8..128 {
                let mut text = "0".repeat(64).into_bytes();
                text[position] = byte;
                let parsed = ContentDigest::parse_hex(
                    DigestFunction::Sha256,
                    std::str::from_utf8(&text).unwrap(),
                );
                match (byte as char).to_digit(16) {
                    Some(value) => {
                        let hash = parsed.expect("a hex digit").hash;
                        let nibble = if position % 2 == 0 {
                            hash[position / 2] >> 4
                        } else {
                            hash[position / 2] & 15
                        };
                        assert_eq!(u32::from(nibble), value, "{byte} at {position}");
                    }
                    None => assert!(parsed.is_none(), "{byte} at {position}"),
                }
            }
        }
    }
}
