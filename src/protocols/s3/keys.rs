//! Who may do what over S3: the credential lookup, one replaceable piece.
//!
//! [`Credentials`] answers three questions: the secret of an access key (s3s checks the SigV4
//! signature with it, or the key is refused with `InvalidAccessKeyId`), whether a caller (an
//! access key, or `None` for an unsigned request) may read or write a bucket (bucket-level
//! operations; s3s asks before the handler runs), and the [`Identity`] the caller's store
//! operations carry into the authorization layer, which checks them again.
//!
//! [`ConfigKeys`] answers from three sources:
//!
//! | access key | secret | identity (what the authorization layer sees) |
//! |---|---|---|
//! | a static `[[s3.keys]]` key | its `secret_key` | `Granted`: its bucket globs as `s3/GLOB` scopes |
//! | a Tessera token (`tessera token --s3`) | HMAC of the token under `auth.s3_secret` (`auth::s3`) | `Bearer(token)`: verified and scoped like every protocol's tokens |
//! | none (unsigned, `s3.listen` port) | — | anonymous: `auth.anonymous` |
//!
//! A token access key is verified (signature, `exp`, `nbf`, audience, revocation) before its
//! secret is given, so an unknown, forged, expired or revoked token is `InvalidAccessKeyId`, not
//! `SignatureDoesNotMatch`. Verified tokens are remembered process-wide (at most
//! [`VERIFIED_S3_TOKENS_MAX`], each until its `exp`, all forgotten when the keys or the
//! revocation list are reloaded). [`Auth`] and [`Access`] adapt any `Credentials` to s3s;
//! [`Access`] writes its refusals to the audit log (the request's [`Peer`] names the remote).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::path::S3Path;
use s3s::{S3Error, S3ErrorCode, S3Result};

use crate::auth::audit::{AuditLog, Entry};
use crate::auth::cli::now_seconds;
use crate::auth::gate::{count_refusal, SharedTrust};
use crate::auth::s3::{secret_access_key, S3_SECRET_BYTES};
use crate::auth::scope::any_matches;
use crate::auth::token::{self, Claims};
use crate::config::{Anonymous, S3KeyConfig};
use crate::protocols::backend::{Credential, Identity, Namespace, Protocol, RequestContext};
use crate::store::{Kind, StoreError};

/// Verified token access keys remembered process-wide: a CI fleet uses a handful of tokens at
/// a time; 1024 entries of ~1 KiB are 1 MiB at most. When full, one entry is dropped.
pub const VERIFIED_S3_TOKENS_MAX: usize = 1024;

/// Read or write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Right {
    Read,
    Write,
}

/// The credential lookup.
pub trait Credentials: Send + Sync + 'static {
    /// The secret to check `access_key`'s signature with, or the refusal
    /// (`InvalidAccessKeyId`).
    fn secret(&self, access_key: &str) -> Result<String, S3Error>;
    /// Whether `caller` (`None`: unsigned) may exercise `right` on `bucket` (`None`: the
    /// service itself, ListBuckets).
    fn allows(&self, caller: Option<&str>, bucket: Option<&str>, right: Right) -> bool;
    /// The identity `caller`'s store operations act for.
    fn identity(&self, caller: Option<&str>) -> Identity;
    /// Who `caller` is in the audit log: the subject and, for a token, its `jti`
    /// (`anonymous` unsigned, `unverified` for a token that does not verify).
    fn subject(&self, caller: Option<&str>) -> (String, Option<String>);
}

/// A static key, as the lookup keeps it.
struct StaticKey {
    secret: String,
    read: Vec<String>,
    write: Vec<String>,
    /// Its globs as namespace scopes, for the authorization layer.
    claims: Arc<Claims>,
}

/// Token access keys: the server secret and the trusted keys.
pub struct TokenKeys {
    secret: [u8; S3_SECRET_BYTES],
    trust: Arc<SharedTrust>,
    verified: Mutex<VerifiedTokens>,
}

#[derive(Default)]
struct VerifiedTokens {
    generation: u64,
    claims: HashMap<Box<str>, Arc<Claims>>,
}

impl TokenKeys {
    pub fn new(secret: [u8; S3_SECRET_BYTES], trust: Arc<SharedTrust>) -> Self {
        TokenKeys {
            secret,
            verified: Mutex::new(VerifiedTokens {
                generation: trust.generation(),
                claims: HashMap::new(),
            }),
            trust,
        }
    }

    /// The claims of `token` if the trusted keys accept it now; the refusal otherwise.
    fn verify(&self, token: &str) -> Result<Arc<Claims>, S3Error> {
        let now = now_seconds();
        let generation = self.trust.generation();
        {
            let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
            if verified.generation != generation {
                verified.generation = generation;
                verified.claims.clear();
            }
            if let Some(claims) = verified.claims.get(token) {
                if now < claims.exp {
                    return Ok(claims.clone());
                }
                verified.claims.remove(token);
            }
        }
        let (generation, trust) = self.trust.snapshot();
        match token::verify(token, &trust.keys, &trust.policy, now) {
            Ok(claims) => {
                let claims = Arc::new(claims);
                let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
                if verified.generation == generation {
                    if verified.claims.len() >= VERIFIED_S3_TOKENS_MAX {
                        let victim = verified.claims.keys().next().cloned();
                        if let Some(victim) = victim {
                            verified.claims.remove(&victim);
                        }
                    }
                    verified.claims.insert(token.into(), claims.clone());
                }
                Ok(claims)
            }
            Err(refused) => {
                count_refusal(refused.reason());
                Err(invalid_access_key(format!(
                    "The AWS Access Key Id you provided is not a token this server accepts: {refused}"
                )))
            }
        }
    }
}

fn invalid_access_key(message: impl Into<std::borrow::Cow<'static, str>>) -> S3Error {
    S3Error::with_message(S3ErrorCode::InvalidAccessKeyId, message)
}

/// Whether an access key id is shaped like a token (compact JWS: three dot-separated parts).
pub fn is_token(access_key: &str) -> bool {
    access_key.bytes().filter(|&b| b == b'.').count() == 2
}

/// Credentials from the configuration: static keys, tokens, the anonymous policy.
pub struct ConfigKeys {
    keys: HashMap<String, StaticKey>,
    anonymous: Anonymous,
    tokens: Option<TokenKeys>,
}

/// The scopes of a static key for the authorization layer: `s3/GLOB` per bucket glob. Scope
/// globs know only `*`, so a `?` widens to `*` there; the exact glob is checked here first.
fn static_claims(key: &S3KeyConfig) -> Claims {
    let scopes = |globs: &[String]| -> Vec<String> {
        globs
            .iter()
            .map(|g| format!("s3/{}", g.replace('?', "*")))
            .collect()
    };
    Claims {
        sub: format!("s3-key:{}", key.access_key),
        exp: u64::MAX,
        nbf: None,
        iat: None,
        jti: None,
        aud: None,
        read: scopes(&key.read),
        write: scopes(&key.write),
        admin: false,
    }
}

impl ConfigKeys {
    /// `keys` from `[[s3.keys]]`, unsigned callers under `anonymous`, and token access keys
    /// when `tokens` is given.
    pub fn new(keys: Vec<S3KeyConfig>, anonymous: Anonymous, tokens: Option<TokenKeys>) -> Self {
        let keys = keys
            .into_iter()
            .map(|key| {
                let claims = Arc::new(static_claims(&key));
                (
                    key.access_key,
                    StaticKey {
                        secret: key.secret_key,
                        read: key.read,
                        write: key.write,
                        claims,
                    },
                )
            })
            .collect();
        ConfigKeys {
            keys,
            anonymous,
            tokens,
        }
    }
}

/// Whether `name` matches `glob` (`*` any run, `?` one character).
pub fn glob_matches(glob: &str, name: &str) -> bool {
    let (g, n) = (glob.as_bytes(), name.as_bytes());
    let (mut gi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if gi < g.len() && (g[gi] == b'?' || g[gi] == n[ni]) {
            gi += 1;
            ni += 1;
        } else if gi < g.len() && g[gi] == b'*' {
            star = Some((gi, ni));
            gi += 1;
        } else if let Some((sg, sn)) = star {
            gi = sg + 1;
            ni = sn + 1;
            star = Some((sg, sn + 1));
        } else {
            return false;
        }
    }
    g[gi..].iter().all(|&b| b == b'*')
}

impl Credentials for ConfigKeys {
    fn secret(&self, access_key: &str) -> Result<String, S3Error> {
        if let Some(key) = self.keys.get(access_key) {
            return Ok(key.secret.clone());
        }
        if !is_token(access_key) {
            return Err(invalid_access_key(
                "The AWS Access Key Id you provided does not exist in our records.",
            ));
        }
        let Some(tokens) = &self.tokens else {
            count_refusal("unknown_key");
            return Err(invalid_access_key(
                "This server does not accept tokens as S3 access keys (no token keys, or no \
                 auth.s3_secret)",
            ));
        };
        tokens.verify(access_key)?;
        Ok(secret_access_key(&tokens.secret, access_key))
    }

    fn allows(&self, caller: Option<&str>, bucket: Option<&str>, right: Right) -> bool {
        let Some(caller) = caller else {
            return match self.anonymous {
                Anonymous::ReadWrite => true,
                Anonymous::Read => right == Right::Read,
                Anonymous::None => false,
            };
        };
        if let Some(key) = self.keys.get(caller) {
            let globs = match right {
                Right::Read => &key.read,
                Right::Write => &key.write,
            };
            return match bucket {
                // Listing the buckets: any key that may do anything.
                None => !key.read.is_empty() || !key.write.is_empty(),
                Some(bucket) => globs.iter().any(|g| glob_matches(g, bucket)),
            };
        }
        let Some(claims) = self.tokens.as_ref().and_then(|t| t.verify(caller).ok()) else {
            return false;
        };
        let Some(bucket) = bucket else {
            return true;
        };
        let namespace = super::link::objects(bucket);
        match right {
            Right::Read => {
                any_matches(&claims.read, &namespace) || any_matches(&claims.write, &namespace)
            }
            Right::Write => any_matches(&claims.write, &namespace),
        }
    }

    fn identity(&self, caller: Option<&str>) -> Identity {
        let credential = caller.map(|caller| match self.keys.get(caller) {
            Some(key) => Credential::Granted(key.claims.clone()),
            None => Credential::Bearer(caller.into()),
        });
        Identity {
            subject: None,
            credential,
        }
    }

    fn subject(&self, caller: Option<&str>) -> (String, Option<String>) {
        let Some(caller) = caller else {
            return ("anonymous".into(), None);
        };
        if let Some(key) = self.keys.get(caller) {
            return (key.claims.sub.clone(), None);
        }
        match self.tokens.as_ref().and_then(|t| t.verify(caller).ok()) {
            Some(claims) => (claims.sub.clone(), claims.jti.clone()),
            None => ("unverified".into(), None),
        }
    }
}

/// s3s's secret lookup over [`Credentials`].
pub struct Auth(pub Arc<dyn Credentials>);

#[async_trait::async_trait]
impl S3Auth for Auth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        self.0.secret(access_key).map(SecretKey::from)
    }
}

/// The right an S3 operation needs.
pub fn right_of(operation: &str) -> Right {
    let reads = [
        "GetObject",
        "HeadObject",
        "HeadBucket",
        "ListBuckets",
        "ListObjects",
        "ListObjectsV2",
        "GetBucketLocation",
        "ListParts",
        "ListMultipartUploads",
    ];
    if reads.contains(&operation) {
        Right::Read
    } else {
        Right::Write
    }
}

/// What the bridge puts in every S3 request's extensions for the access check: the peer (the
/// audit log's address), and a flag the check sets when it runs, so that the bridge knows a
/// refusal made before it (a signature or access key s3s refused) is not audited yet.
#[derive(Clone, Debug, Default)]
pub struct Peer {
    pub remote: Option<SocketAddr>,
    pub checked: Arc<AtomicBool>,
}

/// s3s's access check over [`Credentials`]; a refusal is written to `audit` like the
/// authorization layer's.
pub struct Access {
    pub credentials: Arc<dyn Credentials>,
    pub audit: Option<Arc<AuditLog>>,
}

impl Access {
    /// The audit line of a refusal of `caller`'s `right` on `path`, from `remote`.
    fn audit_refusal(
        &self,
        audit: &AuditLog,
        caller: Option<&str>,
        path: &S3Path,
        right: Right,
        remote: Option<SocketAddr>,
    ) {
        let (namespace, key) = match path {
            S3Path::Root => ("s3".to_owned(), None),
            S3Path::Bucket { bucket } => (super::link::objects(bucket), None),
            S3Path::Object { bucket, key } => (super::link::objects(bucket), Some(key)),
        };
        let ctx = RequestContext::new(Namespace::new(namespace.clone()), Protocol::S3)
            .with_remote(remote);
        let id = key.map(|k| ctx.namespace.key_id(Kind::Blob, k.as_bytes()));
        let (subject, jti) = self.credentials.subject(caller);
        let access = match right {
            Right::Read => "read",
            Right::Write => "write",
        };
        let error = match caller {
            None => StoreError::Unauthenticated {
                reason: "missing",
                message: format!("a signed request is required to {access} {namespace:?}"),
            },
            Some(_) => StoreError::PermissionDenied {
                subject: subject.clone(),
                access,
                namespace,
            },
        };
        audit.record(
            &ctx,
            &Entry {
                subject: &subject,
                jti: jti.as_deref(),
                operation: access,
                key: id.as_ref(),
                bytes: None,
                outcome: Err(&error),
            },
        );
    }
}

#[async_trait::async_trait]
impl S3Access for Access {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let remote = cx.extensions_mut().get::<Peer>().and_then(|peer| {
            peer.checked.store(true, Ordering::Relaxed);
            peer.remote
        });
        let caller = cx.credentials().map(|c| c.access_key.clone());
        let bucket = match cx.s3_path() {
            S3Path::Root => None,
            S3Path::Bucket { bucket } | S3Path::Object { bucket, .. } => Some(bucket.to_string()),
        };
        let right = right_of(cx.s3_op().name());
        if self
            .credentials
            .allows(caller.as_deref(), bucket.as_deref(), right)
        {
            return Ok(());
        }
        if let Some(audit) = &self.audit {
            self.audit_refusal(audit, caller.as_deref(), cx.s3_path(), right, remote);
        }
        Err(S3Error::with_message(
            S3ErrorCode::AccessDenied,
            match caller {
                None => "Anonymous access is not allowed here (auth.anonymous); sign the request",
                Some(_) => "These credentials may not do that in this bucket",
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_shell_patterns() {
        assert!(glob_matches("*", "anything"));
        assert!(glob_matches("team-*", "team-a"));
        assert!(!glob_matches("team-*", "teams"));
        assert!(glob_matches("a?c", "abc"));
        assert!(!glob_matches("a?c", "ac"));
        assert!(glob_matches("*-cache-*", "x-cache-y"));
        assert!(!glob_matches("exact", "exactly"));
    }

    fn code(result: Result<String, S3Error>) -> String {
        match result {
            Ok(_) => "ok".into(),
            Err(e) => e.code().as_str().to_owned(),
        }
    }

    #[test]
    fn keys_grant_what_their_globs_say() {
        let keys = ConfigKeys::new(
            vec![S3KeyConfig {
                access_key: "AK".into(),
                secret_key: "SK".into(),
                read: vec!["*".into()],
                write: vec!["ci-?".into()],
            }],
            Anonymous::None,
            None,
        );
        assert_eq!(keys.secret("AK").ok().as_deref(), Some("SK"));
        assert_eq!(code(keys.secret("nope")), "InvalidAccessKeyId");
        assert_eq!(code(keys.secret("a.b.c")), "InvalidAccessKeyId");
        assert!(keys.allows(Some("AK"), Some("x"), Right::Read));
        assert!(!keys.allows(Some("AK"), Some("x"), Right::Write));
        assert!(keys.allows(Some("AK"), Some("ci-1"), Right::Write));
        assert!(!keys.allows(Some("AK"), Some("ci-12"), Right::Write));
        assert!(!keys.allows(None, Some("ci-1"), Right::Read));
        assert!(!keys.allows(Some("other"), Some("ci-1"), Right::Read));
        let Some(Credential::Granted(claims)) = keys.identity(Some("AK")).credential else {
            panic!("a static key acts with its scopes");
        };
        assert_eq!(claims.write, ["s3/ci-*"]);
        assert_eq!(claims.read, ["s3/*"]);
        assert_eq!(keys.identity(None), Identity::default());
        let reader = ConfigKeys::new(Vec::new(), Anonymous::Read, None);
        assert!(reader.allows(None, Some("b"), Right::Read));
        assert!(!reader.allows(None, Some("b"), Right::Write));
        let open = ConfigKeys::new(Vec::new(), Anonymous::ReadWrite, None);
        assert!(open.allows(None, Some("b"), Right::Write));
    }

    #[test]
    fn tokens_are_access_keys_with_a_derived_secret() {
        use crate::auth::keys::Trust;
        use ed25519_dalek::SigningKey;
        let key = SigningKey::from_bytes(&[3u8; 32]);
        let mut trust = Trust::default();
        trust.keys.insert("ci", key.verifying_key());
        let shared = Arc::new(SharedTrust::new(trust.clone()));
        let server_secret = [7u8; S3_SECRET_BYTES];
        let keys = ConfigKeys::new(
            Vec::new(),
            Anonymous::None,
            Some(TokenKeys::new(server_secret, shared.clone())),
        );
        let mint_by = |key: &SigningKey, exp: u64, jti: &str| {
            let claims = Claims {
                sub: "ci".into(),
                exp,
                nbf: None,
                iat: None,
                jti: Some(jti.into()),
                aud: None,
                read: vec!["s3/main".into()],
                write: vec!["s3/pr-*".into()],
                admin: false,
            };
            token::mint(key, "ci", &claims)
        };
        let mint = |exp: u64, jti: &str| mint_by(&key, exp, jti);
        let good = mint(now_seconds() + 600, "j1");
        assert_eq!(
            keys.secret(&good).unwrap(),
            secret_access_key(&server_secret, &good)
        );
        assert!(keys.allows(Some(&good), Some("main"), Right::Read));
        assert!(!keys.allows(Some(&good), Some("main"), Right::Write));
        assert!(keys.allows(Some(&good), Some("pr-7"), Right::Write));
        assert!(keys.allows(Some(&good), Some("pr-7"), Right::Read));
        assert!(!keys.allows(Some(&good), Some("other"), Right::Read));
        assert_eq!(
            keys.identity(Some(&good)).credential,
            Some(Credential::Bearer(good.as_str().into()))
        );
        // Expired, forged (signed by another key) and revoked tokens are unknown access keys.
        assert_eq!(
            code(keys.secret(&mint(now_seconds() - 1, "j2"))),
            "InvalidAccessKeyId"
        );
        let other = SigningKey::from_bytes(&[4u8; 32]);
        let forged = mint_by(&other, now_seconds() + 600, "j1");
        assert_eq!(code(keys.secret(&forged)), "InvalidAccessKeyId");
        assert!(!keys.allows(Some(&forged), Some("main"), Right::Read));
        let mut revoking = trust;
        revoking.policy.revoked.insert("j1".into());
        shared.replace(revoking);
        assert_eq!(code(keys.secret(&good)), "InvalidAccessKeyId");
        // Without tokens configured, a token is refused the same way.
        let static_only = ConfigKeys::new(Vec::new(), Anonymous::None, None);
        assert_eq!(code(static_only.secret(&good)), "InvalidAccessKeyId");
    }
}
