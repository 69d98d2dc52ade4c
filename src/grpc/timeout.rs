//! The `grpc-timeout` request header (gRPC HTTP/2 spec, Requests):
//!
//! ```text
//! Timeout      → "grpc-timeout" TimeoutValue TimeoutUnit
//! TimeoutValue → {positive integer as ASCII string of at most 8 digits}
//! TimeoutUnit  → Hour / Minute / Second / Millisecond / Microsecond / Nanosecond
//! Hour → "H"  Minute → "M"  Second → "S"  Millisecond → "m"  Microsecond → "u"  Nanosecond → "n"
//! ```
//!
//! Bazel sends it from `--remote_timeout` (60 s by default). A malformed value fails the call with
//! INTERNAL as the reference implementations do; a huge one is clamped to the configured maximum.

use std::fmt;
use std::time::Duration;

/// At most 8 digits, per the grammar above.
pub const TIMEOUT_DIGITS_MAX: usize = 8;

#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeoutError {
    Empty,
    TooManyDigits { digits: usize },
    NotADigit,
    UnknownUnit(char),
}

impl fmt::Display for TimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeoutError::Empty => f.write_str("grpc-timeout has no value and unit"),
            TimeoutError::TooManyDigits { digits } => write!(
                f,
                "grpc-timeout has {digits} digits, at most {TIMEOUT_DIGITS_MAX} are allowed"
            ),
            TimeoutError::NotADigit => f.write_str("grpc-timeout value is not a decimal number"),
            TimeoutError::UnknownUnit(unit) => write!(
                f,
                "grpc-timeout unit {unit:?} is not one of H, M, S, m, u, n"
            ),
        }
    }
}

impl std::error::Error for TimeoutError {}

/// Parses a `grpc-timeout` value, clamping the result to `max`.
pub fn parse_grpc_timeout(value: &[u8], max: Duration) -> Result<Duration, TimeoutError> {
    let Some((&unit, digits)) = value.split_last() else {
        return Err(TimeoutError::Empty);
    };
    if digits.is_empty() {
        return Err(TimeoutError::NotADigit);
    }
    if digits.len() > TIMEOUT_DIGITS_MAX {
        return Err(TimeoutError::TooManyDigits {
            digits: digits.len(),
        });
    }
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(TimeoutError::NotADigit);
    }
    // At most 8 digits: fits a u64 with room for the hour multiplier (10^8 * 3600 < 2^64).
    let amount: u64 = digits
        .iter()
        .fold(0, |total, digit| total * 10 + u64::from(digit - b'0'));
    let duration = match unit {
        b'H' => Duration::from_secs(amount * 3600),
        b'M' => Duration::from_secs(amount * 60),
        b'S' => Duration::from_secs(amount),
        b'm' => Duration::from_millis(amount),
        b'u' => Duration::from_micros(amount),
        b'n' => Duration::from_nanos(amount),
        other => return Err(TimeoutError::UnknownUnit(char::from(other))),
    };
    Ok(duration.min(max))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: Duration = Duration::from_secs(24 * 3600);

    #[test]
    fn every_unit_parses() {
        let cases: [(&[u8], Duration); 8] = [
            (b"2H", Duration::from_secs(7200)),
            (b"3M", Duration::from_secs(180)),
            (b"60S", Duration::from_secs(60)),
            (b"1500m", Duration::from_millis(1500)),
            (b"250u", Duration::from_micros(250)),
            (b"99999999n", Duration::from_nanos(99_999_999)),
            (b"0S", Duration::ZERO),
            (b"00000001S", Duration::from_secs(1)),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_grpc_timeout(text, MAX), Ok(expected), "{text:?}");
        }
    }

    #[test]
    fn large_values_are_clamped() {
        assert_eq!(parse_grpc_timeout(b"99999999H", MAX), Ok(MAX));
        assert_eq!(
            parse_grpc_timeout(b"25H", MAX),
            Ok(MAX),
            "one hour over the maximum"
        );
    }

    #[test]
    fn malformed_values_are_refused_precisely() {
        let cases: [(&[u8], TimeoutError); 7] = [
            (b"", TimeoutError::Empty),
            (b"S", TimeoutError::NotADigit),
            (b"123456789S", TimeoutError::TooManyDigits { digits: 9 }),
            (b"-1S", TimeoutError::NotADigit),
            (b"1.5S", TimeoutError::NotADigit),
            (b"10s", TimeoutError::UnknownUnit('s')),
            (b"10", TimeoutError::UnknownUnit('0')),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_grpc_timeout(text, MAX), Err(expected), "{text:?}");
        }
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
            if let Ok(duration) = parse_grpc_timeout(&bytes, MAX_FOR_PROPERTIES) {
                prop_assert!(duration <= MAX_FOR_PROPERTIES);
            }
        }

        #[test]
        fn milliseconds_round_trip(amount in 0u64..100_000_000) {
            let text = format!("{amount}m");
            prop_assert_eq!(
                parse_grpc_timeout(text.as_bytes(), Duration::MAX),
                Ok(Duration::from_millis(amount))
            );
        }
    }

    const MAX_FOR_PROPERTIES: Duration = Duration::from_secs(3600);
}
