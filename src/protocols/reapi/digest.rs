//! Digests in REAPI requests: the store's [`DigestFunction`] as REAPI names it
//! ([`ReapiDigestFunction`]: proto value, name, hash length), and the checks of a
//! `Digest { hash, size_bytes }` that the CAS calls, the action cache and resource names share.
//! UNKNOWN (sent by clients older than the `digest_function` field, e.g. Bazel 4.2.3) means
//! SHA-256.
//!
//! ```
//! use tessera::protocols::reapi::digest::ReapiDigestFunction;
//! use tessera::store::DigestFunction;
//! assert_eq!(DigestFunction::from_proto(0), Ok(DigestFunction::Sha256));
//! assert_eq!(DigestFunction::Blake3.reapi_name(), "blake3");
//! ```

use std::fmt;

use crate::grpc::pb::build::bazel::remote::execution::v2::digest_function::Value;
use crate::grpc::Status;
use crate::store::DigestFunction;

/// Length of a SHA-256 or BLAKE3 (256-bit output) hash in lowercase hex.
pub const HASH_HEX_CHARS_256: usize = 64;

/// The store's [`DigestFunction`] (the functions this server verifies) in REAPI's terms.
pub trait ReapiDigestFunction: Sized {
    /// From the `digest_function` field of a request: UNKNOWN (0, sent by clients older than
    /// the field, e.g. Bazel 4.2.3) means SHA256.
    fn from_proto(value: i32) -> Result<Self, DigestError>;

    /// The `DigestFunction.Value` of this function.
    fn to_proto(self) -> i32;

    /// Length of a hash of this function in lowercase hex.
    fn hash_hex_chars(self) -> usize;

    /// The lowercase name REAPI gives it (resource-name segment, error messages).
    fn reapi_name(self) -> &'static str;
}

impl ReapiDigestFunction for DigestFunction {
    fn from_proto(value: i32) -> Result<DigestFunction, DigestError> {
        match Value::try_from(value) {
            Ok(Value::Unknown | Value::Sha256) => Ok(DigestFunction::Sha256),
            Ok(Value::Blake3) => Ok(DigestFunction::Blake3),
            Ok(other) => Err(DigestError::UnsupportedFunction(
                other.as_str_name().to_ascii_lowercase(),
            )),
            Err(_) => Err(DigestError::UnsupportedFunction(value.to_string())),
        }
    }

    fn to_proto(self) -> i32 {
        match self {
            DigestFunction::Sha256 => Value::Sha256 as i32,
            DigestFunction::Blake3 => Value::Blake3 as i32,
        }
    }

    fn hash_hex_chars(self) -> usize {
        HASH_HEX_CHARS_256
    }

    fn reapi_name(self) -> &'static str {
        match self {
            DigestFunction::Sha256 => "sha256",
            DigestFunction::Blake3 => "blake3",
        }
    }
}

/// A digest that this server cannot accept.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DigestError {
    UnsupportedFunction(String),
    HashLength {
        function: DigestFunction,
        found_chars: usize,
    },
    HashNotLowercaseHex,
    NegativeSize(i64),
    SizeNotDecimal,
}

impl fmt::Display for DigestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DigestError::UnsupportedFunction(name) => write!(
                f,
                "digest function {name} is not supported (this server supports sha256, blake3)"
            ),
            DigestError::HashLength {
                function,
                found_chars,
            } => write!(
                f,
                "hash has {found_chars} characters, a {} hash has {}",
                function.reapi_name(),
                function.hash_hex_chars()
            ),
            DigestError::HashNotLowercaseHex => f.write_str("hash is not lowercase hexadecimal"),
            DigestError::NegativeSize(size) => write!(f, "size_bytes {size} is negative"),
            DigestError::SizeNotDecimal => {
                f.write_str("size is not a decimal number in 0..=9223372036854775807")
            }
        }
    }
}

impl std::error::Error for DigestError {}

impl From<DigestError> for Status {
    fn from(error: DigestError) -> Status {
        Status::invalid_argument(error.to_string())
    }
}

/// Checks a `Digest { hash, size_bytes }` from a request under `function`.
pub fn validate_digest(
    function: DigestFunction,
    hash: &str,
    size_bytes: i64,
) -> Result<u64, DigestError> {
    validate_hash(function, hash)?;
    u64::try_from(size_bytes).map_err(|_| DigestError::NegativeSize(size_bytes))
}

/// Checks a hash alone (a resource name carries its size as text, see `resource_name`).
pub(super) fn validate_hash(function: DigestFunction, hash: &str) -> Result<(), DigestError> {
    if hash.len() != function.hash_hex_chars() {
        return Err(DigestError::HashLength {
            function,
            found_chars: hash.chars().count(),
        });
    }
    if !hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(DigestError::HashNotLowercaseHex);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn digests_are_validated_per_function() {
        assert_eq!(validate_digest(DigestFunction::Sha256, H, 3), Ok(3));
        assert_eq!(
            validate_digest(DigestFunction::Blake3, H, -1),
            Err(DigestError::NegativeSize(-1))
        );
        assert_eq!(
            validate_digest(DigestFunction::Sha256, "abc", 1),
            Err(DigestError::HashLength {
                function: DigestFunction::Sha256,
                found_chars: 3
            })
        );
        assert_eq!(
            validate_digest(DigestFunction::Sha256, &H.replace('a', "g"), 1),
            Err(DigestError::HashNotLowercaseHex)
        );
    }

    #[test]
    fn proto_digest_functions_map_with_unknown_as_sha256() {
        assert_eq!(DigestFunction::from_proto(0), Ok(DigestFunction::Sha256));
        assert_eq!(DigestFunction::from_proto(1), Ok(DigestFunction::Sha256));
        assert_eq!(DigestFunction::from_proto(9), Ok(DigestFunction::Blake3));
        assert_eq!(
            DigestFunction::from_proto(3),
            Err(DigestError::UnsupportedFunction("md5".into()))
        );
        assert_eq!(
            DigestFunction::from_proto(99),
            Err(DigestError::UnsupportedFunction("99".into()))
        );
        assert_eq!(DigestFunction::Sha256.to_proto(), 1);
        assert_eq!(DigestFunction::Blake3.to_proto(), 9);
        for function in [DigestFunction::Sha256, DigestFunction::Blake3] {
            assert_eq!(
                DigestFunction::from_proto(function.to_proto()),
                Ok(function)
            );
        }
    }
}
