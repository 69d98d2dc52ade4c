//! Tessera tokens: compact JWS (RFC 7515) signed with Ed25519, `alg: "EdDSA"` (RFC 8037).
//!
//! ```text
//! base64url(header) . base64url(claims) . base64url(signature over the first two parts)
//! header  {"alg":"EdDSA","typ":"JWT","kid":"ci"}
//! claims  {"sub":"ci-main","exp":1767225600,"iat":…,"nbf":…,"jti":"…","aud":"…",
//!          "read":["bazel*"],"write":["bazel/main"],"admin":false}
//! ```
//!
//! Verification order, each step refusing with its own [`TokenError`]: size, three parts,
//! base64url, header JSON, `alg` exactly `EdDSA` (so `none` and HMAC `alg`s — the key-confusion
//! attack — are refused before any key is touched), a `kid` that names a trusted key, the
//! signature (strict: no malleable or small-order encodings), then the claims: `exp`
//! (required), `nbf`, `aud` when an audience is configured, and the revocation list.

use std::collections::{HashMap, HashSet};
use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

/// Longest token accepted, in bytes. Real tokens are ~300–600 bytes; 8 KiB bounds the work an
/// anonymous caller can make the server do (base64 and JSON of at most this much) and matches
/// common header-size limits.
pub const TOKEN_BYTES_MAX: usize = 8 * 1024;

/// Why a token is refused. Every variant is a client error (401), never a panic.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    TooLarge {
        len: usize,
    },
    /// Not three base64url parts of JSON objects.
    Malformed {
        what: &'static str,
    },
    /// An `alg` other than `EdDSA` (`none`, `HS256`, `RS256`, …).
    Algorithm {
        alg: String,
    },
    /// No `kid`, or one no trusted key has.
    UnknownKey {
        kid: String,
    },
    BadSignature,
    Expired {
        exp: u64,
    },
    NotYetValid {
        nbf: u64,
    },
    WrongAudience,
    Revoked {
        jti: String,
    },
}

impl TokenError {
    /// A short label for metrics (`tessera_auth_refusals_total{reason=…}`).
    pub fn reason(&self) -> &'static str {
        match self {
            TokenError::TooLarge { .. } => "too_large",
            TokenError::Malformed { .. } => "malformed",
            TokenError::Algorithm { .. } => "algorithm",
            TokenError::UnknownKey { .. } => "unknown_key",
            TokenError::BadSignature => "bad_signature",
            TokenError::Expired { .. } => "expired",
            TokenError::NotYetValid { .. } => "not_yet_valid",
            TokenError::WrongAudience => "wrong_audience",
            TokenError::Revoked { .. } => "revoked",
        }
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::TooLarge { len } => {
                write!(f, "token of {len} bytes exceeds {TOKEN_BYTES_MAX} bytes")
            }
            TokenError::Malformed { what } => write!(f, "malformed token: {what}"),
            TokenError::Algorithm { alg } => {
                write!(f, "token algorithm {alg:?} is not accepted (only EdDSA)")
            }
            TokenError::UnknownKey { kid } => write!(f, "token key {kid:?} is not trusted"),
            TokenError::BadSignature => f.write_str("token signature does not verify"),
            TokenError::Expired { exp } => write!(f, "token expired at {exp}"),
            TokenError::NotYetValid { nbf } => write!(f, "token is not valid before {nbf}"),
            TokenError::WrongAudience => f.write_str("token audience does not match"),
            TokenError::Revoked { jti } => write!(f, "token {jti:?} is revoked"),
        }
    }
}

impl std::error::Error for TokenError {}

/// The protected header.
#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
pub struct Header {
    pub alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    #[serde(default)]
    pub kid: String,
}

/// `aud`: one string or an array of strings (RFC 7519 §4.1.3).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, audience: &str) -> bool {
        match self {
            Audience::One(one) => one == audience,
            Audience::Many(many) => many.iter().any(|a| a == audience),
        }
    }
}

/// The claims Tessera reads. Unknown claims are ignored (any JWT library may add its own).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    pub sub: String,
    /// Seconds since the epoch; required.
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
    /// Namespace globs this token may read.
    #[serde(default)]
    pub read: Vec<String>,
    /// Namespace globs this token may write.
    #[serde(default)]
    pub write: Vec<String>,
    #[serde(default)]
    pub admin: bool,
}

/// The trusted public keys, by `kid`. Several may be active at once (rotation).
#[derive(Clone, Default, Debug)]
pub struct KeySet {
    keys: HashMap<String, VerifyingKey>,
}

impl KeySet {
    pub fn insert(&mut self, kid: impl Into<String>, key: VerifyingKey) {
        self.keys.insert(kid.into(), key);
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }
}

/// What a verification checks besides the signature.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// `auth.audience`: when set, `aud` must contain it.
    pub audience: Option<String>,
    /// `jti`s refused although correctly signed.
    pub revoked: HashSet<String>,
}

fn decode_part(part: &str, what: &'static str) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed { what })
}

/// The header of a token, without checking anything else (for `--inspect`).
pub fn peek(token: &str) -> Result<(Header, serde_json::Value), TokenError> {
    let (header, claims, _) = split(token)?;
    let header: Header = serde_json::from_slice(&decode_part(header, "header is not base64url")?)
        .map_err(|_| TokenError::Malformed {
        what: "header is not a JSON object with alg and kid",
    })?;
    let claims = serde_json::from_slice(&decode_part(claims, "claims are not base64url")?)
        .map_err(|_| TokenError::Malformed {
            what: "claims are not JSON",
        })?;
    Ok((header, claims))
}

fn split(token: &str) -> Result<(&str, &str, &str), TokenError> {
    if token.len() > TOKEN_BYTES_MAX {
        return Err(TokenError::TooLarge { len: token.len() });
    }
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(c), Some(s), None) => Ok((h, c, s)),
        _ => Err(TokenError::Malformed {
            what: "not three dot-separated parts",
        }),
    }
}

/// Verifies `token` at `now` (seconds since the epoch); its claims on success.
pub fn verify(token: &str, keys: &KeySet, policy: &Policy, now: u64) -> Result<Claims, TokenError> {
    let (header_part, claims_part, signature_part) = split(token)?;
    let header: Header =
        serde_json::from_slice(&decode_part(header_part, "header is not base64url")?).map_err(
            |_| TokenError::Malformed {
                what: "header is not a JSON object with alg and kid",
            },
        )?;
    if header.alg != "EdDSA" {
        return Err(TokenError::Algorithm { alg: header.alg });
    }
    let key = keys.keys.get(&header.kid).ok_or(TokenError::UnknownKey {
        kid: header.kid.clone(),
    })?;
    let signature = decode_part(signature_part, "signature is not base64url")?;
    let signature = Signature::from_slice(&signature).map_err(|_| TokenError::Malformed {
        what: "signature is not 64 bytes",
    })?;
    let signed = &token[..header_part.len() + 1 + claims_part.len()];
    key.verify_strict(signed.as_bytes(), &signature)
        .map_err(|_| TokenError::BadSignature)?;
    let claims: Claims =
        serde_json::from_slice(&decode_part(claims_part, "claims are not base64url")?).map_err(
            |_| TokenError::Malformed {
                what: "claims are not a JSON object with sub and exp",
            },
        )?;
    if now >= claims.exp {
        return Err(TokenError::Expired { exp: claims.exp });
    }
    if let Some(nbf) = claims.nbf.filter(|nbf| now < *nbf) {
        return Err(TokenError::NotYetValid { nbf });
    }
    if let Some(audience) = &policy.audience {
        if !claims
            .aud
            .as_ref()
            .is_some_and(|aud| aud.contains(audience))
        {
            return Err(TokenError::WrongAudience);
        }
    }
    if let Some(jti) = claims
        .jti
        .as_ref()
        .filter(|jti| policy.revoked.contains(*jti))
    {
        return Err(TokenError::Revoked { jti: jti.clone() });
    }
    Ok(claims)
}

/// Signs `claims` with `key` under `kid`: a compact JWS any JWT library can verify.
pub fn mint(key: &SigningKey, kid: &str, claims: &Claims) -> String {
    let header = Header {
        alg: "EdDSA".into(),
        typ: Some("JWT".into()),
        kid: kid.into(),
    };
    let header = serde_json::to_vec(&header).expect("a header serialises");
    let claims = serde_json::to_vec(claims).expect("claims serialise");
    let mut token = URL_SAFE_NO_PAD.encode(header);
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(claims));
    let signature = key.sign(token.as_bytes());
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(signature.to_bytes()));
    token
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: u64 = 1_800_000_000;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn claims() -> Claims {
        Claims {
            sub: "ci-main".into(),
            exp: NOW + 3600,
            nbf: None,
            iat: Some(NOW),
            jti: Some("t-1".into()),
            aud: None,
            read: vec!["bazel*".into()],
            write: vec!["bazel/main".into()],
            admin: false,
        }
    }

    fn trusted() -> KeySet {
        let mut keys = KeySet::default();
        keys.insert("ci", key(1).verifying_key());
        keys
    }

    fn refusal(token: &str) -> TokenError {
        verify(token, &trusted(), &Policy::default(), NOW).unwrap_err()
    }

    fn forge(header: &str, claims: &Claims, signature: &[u8]) -> String {
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap()),
            URL_SAFE_NO_PAD.encode(signature)
        )
    }

    #[test]
    fn a_minted_token_verifies_with_its_claims() {
        let token = mint(&key(1), "ci", &claims());
        assert_eq!(
            verify(&token, &trusted(), &Policy::default(), NOW).unwrap(),
            claims()
        );
    }

    #[test]
    fn none_and_hmac_algorithms_are_refused_before_any_key() {
        for alg in ["none", "HS256", "RS256", "eddsa"] {
            let header = format!(r#"{{"alg":"{alg}","kid":"ci"}}"#);
            let token = forge(&header, &claims(), b"");
            assert_eq!(refusal(&token), TokenError::Algorithm { alg: alg.into() });
        }
    }

    #[test]
    fn unknown_keys_and_foreign_signatures_are_refused() {
        let token = mint(&key(1), "other", &claims());
        assert_eq!(
            refusal(&token),
            TokenError::UnknownKey {
                kid: "other".into()
            }
        );
        let token = mint(&key(2), "ci", &claims());
        assert_eq!(refusal(&token), TokenError::BadSignature);
    }

    #[test]
    fn a_flipped_bit_anywhere_is_refused() {
        let token = mint(&key(1), "ci", &claims());
        let bytes = token.as_bytes();
        for at in 0..bytes.len() {
            if bytes[at] == b'.' {
                continue;
            }
            let mut mutated = bytes.to_vec();
            mutated[at] ^= 0x01;
            let Ok(mutated) = String::from_utf8(mutated) else {
                continue;
            };
            assert!(
                verify(&mutated, &trusted(), &Policy::default(), NOW).is_err(),
                "flipping a bit at {at} still verified"
            );
        }
    }

    #[test]
    fn time_audience_and_revocation_are_checked() {
        let expired = Claims {
            exp: NOW,
            ..claims()
        };
        assert_eq!(
            refusal(&mint(&key(1), "ci", &expired)),
            TokenError::Expired { exp: NOW }
        );
        let early = Claims {
            nbf: Some(NOW + 10),
            ..claims()
        };
        assert_eq!(
            refusal(&mint(&key(1), "ci", &early)),
            TokenError::NotYetValid { nbf: NOW + 10 }
        );
        let token = mint(&key(1), "ci", &claims());
        let policy = Policy {
            audience: Some("tessera-prod".into()),
            revoked: HashSet::new(),
        };
        assert_eq!(
            verify(&token, &trusted(), &policy, NOW).unwrap_err(),
            TokenError::WrongAudience
        );
        let aimed = Claims {
            aud: Some(Audience::Many(vec!["x".into(), "tessera-prod".into()])),
            ..claims()
        };
        assert!(verify(&mint(&key(1), "ci", &aimed), &trusted(), &policy, NOW).is_ok());
        let policy = Policy {
            audience: None,
            revoked: ["t-1".to_string()].into(),
        };
        assert_eq!(
            verify(&token, &trusted(), &policy, NOW).unwrap_err(),
            TokenError::Revoked { jti: "t-1".into() }
        );
    }

    #[test]
    fn malformed_and_oversized_tokens_are_refused() {
        let big = "a".repeat(TOKEN_BYTES_MAX + 1);
        assert_eq!(
            refusal(&big),
            TokenError::TooLarge {
                len: TOKEN_BYTES_MAX + 1
            }
        );
        for token in ["", "a", "a.b", "a.b.c.d", "!!.b.c", "e30.e30.e30"] {
            assert!(
                matches!(refusal(token), TokenError::Malformed { .. }),
                "{token}"
            );
        }
        // A token without `exp` never verifies.
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"EdDSA","kid":"ci"}"#);
        let body = URL_SAFE_NO_PAD.encode(r#"{"sub":"x"}"#);
        let signing_input = format!("{header}.{body}");
        let signature = key(1).sign(signing_input.as_bytes());
        let token = format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        );
        assert!(matches!(refusal(&token), TokenError::Malformed { .. }));
    }

    proptest! {
        #[test]
        fn random_input_never_panics_and_never_verifies(input in ".{0,600}") {
            prop_assert!(verify(&input, &trusted(), &Policy::default(), NOW).is_err());
        }

        #[test]
        fn mutated_tokens_never_verify(at in 0usize..400, byte in any::<u8>()) {
            let token = mint(&key(1), "ci", &claims());
            let mut bytes = token.into_bytes();
            let at = at % bytes.len();
            prop_assume!(bytes[at] != byte);
            bytes[at] = byte;
            if let Ok(mutated) = String::from_utf8(bytes) {
                prop_assert!(verify(&mutated, &trusted(), &Policy::default(), NOW).is_err());
            }
        }
    }
}
