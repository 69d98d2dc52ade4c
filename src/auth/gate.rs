//! The authorization decision of one executor: who the caller is ([`Gate::grant`]) and whether
//! that grants an access to a namespace ([`Gate::check`]).
//!
//! ```text
//! Identity ─► no credential ─► the anonymous policy (none | read | read-write)
//!          └► Bearer T ─► verification cache ─hit─► claims
//!                             └─miss─► token::verify (keys, audience, revocation) ─► cache
//! Grant × (read | write | admin) × namespace ─► Ok | Unauthenticated (401) | PermissionDenied (403)
//! ```
//!
//! Verifying an Ed25519 signature costs tens of microseconds; a build sends thousands of
//! requests with one token, so each executor keeps the claims of tokens it verified (at most
//! [`VERIFIED_TOKENS_MAX`]), each until its `exp`. The trusted keys and revocation list live in
//! one process-wide [`SharedTrust`]; a reload bumps its generation, and each executor drops its
//! cache when it sees a new generation (one relaxed atomic load per request, no lock).
//!
//! Scopes: `write` implies `read` of the same namespaces (a build reads back what it wrote);
//! `admin` grants the server's own endpoints, not data. Anonymous `read-write` grants everything,
//! admin included (the no-keys default, allowed on loopback only; see `config::auth`). With no
//! keys configured, a presented credential is ignored: the caller is anonymous.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use super::cli::now_seconds;
use super::keys::Trust;
use super::rate::RateTable;
use super::scope::{any_matches, matches};
use super::token::{self, Claims};
use crate::config::{Anonymous, AuthConfig, ReadThrough};
use crate::protocols::backend::{Credential, Identity, Namespace};
use crate::store::StoreError;

/// Verified tokens each executor remembers. A CI fleet uses a handful of tokens at a time;
/// 1024 entries of ~1 KiB (token text and claims) are 1 MiB per executor at most. When full,
/// one entry is dropped for the new one.
pub const VERIFIED_TOKENS_MAX: usize = 1024;

/// The namespaces of S3 multipart parts (`s3-parts/BUCKET`): scopes see them as their
/// bucket's (`s3/BUCKET`), so a token that may write a bucket may upload its parts.
pub const S3_PARTS_PREFIX: &str = "s3-parts/";

/// What an access needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    Admin,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
            Access::Admin => "use the admin endpoints of",
        }
    }
}

/// The trusted keys of the whole process, swapped whole on reload.
#[derive(Debug, Default)]
pub struct SharedTrust {
    current: RwLock<Arc<Trust>>,
    /// Bumped after every swap; executors compare it to the one they cached.
    generation: AtomicU64,
}

impl SharedTrust {
    pub fn new(trust: Trust) -> Self {
        SharedTrust {
            current: RwLock::new(Arc::new(trust)),
            generation: AtomicU64::new(0),
        }
    }

    /// Replaces the trusted keys; every executor drops its verified tokens before its next use.
    pub fn replace(&self, trust: Trust) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(trust);
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// The generation of the current keys (bumped by every reload).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The current generation and keys.
    pub fn snapshot(&self) -> (u64, Arc<Trust>) {
        let generation = self.generation.load(Ordering::Acquire);
        let trust = self
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        (generation, trust)
    }
}

/// Refusals by reason, process-wide (`tessera_auth_refusals_total{reason=…}`).
static REFUSALS: RefusalCounters = RefusalCounters::new();

/// Every refusal reason, in the order `/metrics` lists them.
pub const REFUSAL_REASONS: &[&str] = &[
    "missing",
    "too_large",
    "malformed",
    "algorithm",
    "unknown_key",
    "bad_signature",
    "expired",
    "not_yet_valid",
    "wrong_audience",
    "revoked",
    "scope",
    "rate_limited",
];

struct RefusalCounters([AtomicU64; 12]);

impl RefusalCounters {
    const fn new() -> Self {
        RefusalCounters([const { AtomicU64::new(0) }; 12])
    }
}

const _: () = assert!(REFUSAL_REASONS.len() == 12);

/// Counts one refusal with `reason` (one of [`REFUSAL_REASONS`]; an unknown one panics in
/// debug builds and is counted as `malformed` otherwise).
pub fn count_refusal(reason: &str) {
    let index = REFUSAL_REASONS.iter().position(|r| *r == reason);
    debug_assert!(index.is_some(), "unlisted refusal reason {reason}");
    REFUSALS.0[index.unwrap_or(2)].fetch_add(1, Ordering::Relaxed);
}

/// (reason, count) of every reason.
pub fn refusals() -> Vec<(&'static str, u64)> {
    REFUSAL_REASONS
        .iter()
        .zip(&REFUSALS.0)
        .map(|(reason, count)| (*reason, count.load(Ordering::Relaxed)))
        .collect()
}

/// Who a request acts for once its credential is checked.
#[derive(Clone, Debug)]
pub enum Grant {
    Anonymous(Anonymous),
    Token(Arc<Claims>),
}

impl Grant {
    /// Whether this grant covers `access` to `namespace`.
    pub fn allows(&self, access: Access, namespace: &str) -> bool {
        match self {
            Grant::Anonymous(Anonymous::ReadWrite) => true,
            Grant::Anonymous(Anonymous::Read) => access == Access::Read,
            Grant::Anonymous(Anonymous::None) => false,
            Grant::Token(claims) => match access {
                Access::Read => {
                    any_matches(&claims.read, namespace) || any_matches(&claims.write, namespace)
                }
                Access::Write => any_matches(&claims.write, namespace),
                Access::Admin => claims.admin,
            },
        }
    }

    /// The token's subject, or `anonymous`.
    pub fn subject(&self) -> &str {
        match self {
            Grant::Anonymous(_) => "anonymous",
            Grant::Token(claims) => &claims.sub,
        }
    }

    /// The token's `jti`, if any.
    pub fn jti(&self) -> Option<&str> {
        match self {
            Grant::Anonymous(_) => None,
            Grant::Token(claims) => claims.jti.as_deref(),
        }
    }
}

/// The scopes of a `[[auth.client_cert]]` entry as token claims, so one [`Grant`] covers both:
/// the subject is the certificate's, and it never expires here (the certificate's validity was
/// checked in the handshake).
fn client_cert_claims(entry: &crate::config::ClientCertConfig) -> Claims {
    Claims {
        sub: entry.subject.clone(),
        exp: u64::MAX,
        nbf: None,
        iat: None,
        jti: None,
        aud: None,
        read: entry.read.clone(),
        write: entry.write.clone(),
        admin: entry.admin,
    }
}

/// One executor's verified tokens, valid for one generation of the trusted keys.
struct Verified {
    generation: u64,
    trust: Arc<Trust>,
    claims: HashMap<Box<str>, Arc<Claims>, TokenHasher>,
}

/// The verified-token cache hashes a token (hundreds of bytes) on every request, so it uses a
/// fast hasher rather than SipHash. Flooding resistance is not needed: only tokens whose
/// signature verified are inserted, so a caller cannot choose colliding entries without a
/// trusted signing key.
type TokenHasher = foldhash::fast::RandomState;

/// The authorization decision of one executor (`Rc`, not shared across cores).
pub struct Gate {
    shared: Arc<SharedTrust>,
    verified: RefCell<Verified>,
    anonymous: Anonymous,
    keys_configured: bool,
    read_through: Vec<ReadThrough>,
    public_metrics: bool,
    /// `auth.rate`, when set: the process's buckets (shared by every executor).
    rate: Option<Arc<RateTable>>,
    /// `[[auth.client_cert]]` by normalised subject, as the claims a token would carry.
    client_certs: HashMap<Box<str>, Arc<Claims>>,
}

impl Gate {
    pub fn new(config: &AuthConfig, shared: Arc<SharedTrust>) -> Gate {
        let (generation, trust) = shared.snapshot();
        Gate {
            shared,
            verified: RefCell::new(Verified {
                generation,
                trust,
                claims: HashMap::default(),
            }),
            anonymous: config.anonymous(),
            keys_configured: config.has_token_keys(),
            read_through: config.read_through.clone(),
            public_metrics: config.public_metrics,
            rate: config
                .rate
                .map(|rate| Arc::new(RateTable::new(rate, config.burst))),
            client_certs: config
                .client_certs
                .iter()
                .map(|entry| {
                    (
                        entry.subject.as_str().into(),
                        Arc::new(client_cert_claims(entry)),
                    )
                })
                .collect(),
        }
    }

    /// Counts requests in `table`, the process's buckets, instead of buckets of this gate's
    /// own (every executor's gate gets the same table, so `auth.rate` is per process).
    pub fn with_rate_table(mut self, table: Option<Arc<RateTable>>) -> Self {
        if table.is_some() {
            self.rate = table;
        }
        self
    }

    /// Counts one request of `grant`'s subject against `auth.rate`.
    pub fn admit(&self, grant: &Grant) -> Result<(), StoreError> {
        let Some(rate) = &self.rate else {
            return Ok(());
        };
        let taken = rate.take(grant.subject(), std::time::Instant::now());
        taken.map_err(|retry_after| {
            count_refusal("rate_limited");
            StoreError::RateLimited {
                subject: grant.subject().to_owned(),
                retry_after,
            }
        })
    }

    /// Who `identity` is: the anonymous policy, or a verified token's claims.
    pub fn grant(&self, identity: &Identity) -> Result<Grant, StoreError> {
        let token = match &identity.credential {
            Some(Credential::Granted(claims)) => return Ok(Grant::Token(claims.clone())),
            Some(Credential::Bearer(token)) if self.keys_configured => token,
            Some(Credential::ClientCert(subject)) => {
                // The handshake verified the certificate; an unlisted subject has no scopes.
                return Ok(match self.client_certs.get(&**subject) {
                    Some(claims) => Grant::Token(claims.clone()),
                    None => Grant::Anonymous(self.anonymous),
                });
            }
            _ => return Ok(Grant::Anonymous(self.anonymous)),
        };
        let now = now_seconds();
        let mut verified = self.verified.borrow_mut();
        let generation = self.shared.generation.load(Ordering::Acquire);
        if generation != verified.generation {
            let (generation, trust) = self.shared.snapshot();
            verified.generation = generation;
            verified.trust = trust;
            verified.claims.clear();
        }
        if let Some(claims) = verified.claims.get(&**token) {
            if now < claims.exp {
                return Ok(Grant::Token(claims.clone()));
            }
            verified.claims.remove(&**token);
        }
        let trust = verified.trust.clone();
        match token::verify(token, &trust.keys, &trust.policy, now) {
            Ok(claims) => {
                let claims = Arc::new(claims);
                if verified.claims.len() >= VERIFIED_TOKENS_MAX {
                    let victim = verified.claims.keys().next().cloned();
                    if let Some(victim) = victim {
                        verified.claims.remove(&victim);
                    }
                }
                verified.claims.insert(Box::from(&**token), claims.clone());
                Ok(Grant::Token(claims))
            }
            Err(error) => {
                count_refusal(error.reason());
                Err(StoreError::Unauthenticated {
                    reason: error.reason(),
                    message: error.to_string(),
                })
            }
        }
    }

    /// Checks that `identity` may `access` `namespace`; the grant when it may.
    pub fn check(
        &self,
        identity: &Identity,
        access: Access,
        namespace: &str,
    ) -> Result<Grant, StoreError> {
        let grant = self.grant(identity)?;
        let bucket_of_parts;
        let namespace = match namespace.strip_prefix(S3_PARTS_PREFIX) {
            Some(bucket) => {
                bucket_of_parts = format!("s3/{bucket}");
                bucket_of_parts.as_str()
            }
            None => namespace,
        };
        if grant.allows(access, namespace) {
            return Ok(grant);
        }
        Err(self.refusal(&grant, access, namespace))
    }

    /// The refusal of `access` to `namespace` for `grant`: an anonymous caller is asked for a
    /// token (401), a token's holder is told it does not cover the namespace (403).
    pub fn refusal(&self, grant: &Grant, access: Access, namespace: &str) -> StoreError {
        match grant {
            Grant::Anonymous(_) => {
                count_refusal("missing");
                StoreError::Unauthenticated {
                    reason: "missing",
                    message: format!(
                        "a bearer token is required to {} namespace {namespace:?}",
                        access.as_str()
                    ),
                }
            }
            Grant::Token(claims) => {
                count_refusal("scope");
                StoreError::PermissionDenied {
                    subject: claims.sub.clone(),
                    access: access.as_str(),
                    namespace: namespace.to_owned(),
                }
            }
        }
    }

    /// May `identity` read `/metrics` (and `/status.json`)?
    pub fn check_metrics(&self, identity: &Identity) -> Result<(), StoreError> {
        if self.public_metrics {
            return Ok(());
        }
        self.check_admin(identity)
    }

    /// May `identity` use the admin API? Needs the `admin` claim (or an anonymous policy
    /// granting everything); `auth.public_metrics` does not open it.
    pub fn check_admin(&self, identity: &Identity) -> Result<(), StoreError> {
        self.check(identity, Access::Admin, "").map(drop)
    }

    /// The namespaces a miss in `namespace` falls back to for `grant`, in configured order:
    /// those of every matching `[[auth.read_through]]` entry that the grant may read.
    pub fn read_through<'a>(
        &'a self,
        namespace: &'a str,
        grant: &'a Grant,
    ) -> impl Iterator<Item = Namespace> + 'a {
        self.read_through
            .iter()
            .filter(move |entry| matches(&entry.namespace, namespace))
            .flat_map(|entry| entry.from.iter())
            .filter(move |from| grant.allows(Access::Read, from))
            .map(|from| Namespace::new(from.clone()))
    }

    /// Whether any read-through entry exists (a miss costs nothing more otherwise).
    pub fn has_read_through(&self) -> bool {
        !self.read_through.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    const KID: &str = "ci";

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[9u8; 32])
    }

    fn trust() -> Trust {
        let mut trust = Trust::default();
        trust.keys.insert(KID, key().verifying_key());
        trust
    }

    pub(crate) fn token(read: &[&str], write: &[&str], admin: bool) -> Identity {
        let claims = Claims {
            sub: "ci-pr".into(),
            exp: now_seconds() + 3600,
            nbf: None,
            iat: None,
            jti: Some("j-1".into()),
            aud: None,
            read: read.iter().map(|s| s.to_string()).collect(),
            write: write.iter().map(|s| s.to_string()).collect(),
            admin,
        };
        Identity {
            subject: None,
            credential: Some(Credential::Bearer(token::mint(&key(), KID, &claims).into())),
        }
    }

    fn gate(anonymous: Option<Anonymous>) -> (Gate, Arc<SharedTrust>) {
        let config = AuthConfig {
            public_keys: Some("/unused".into()),
            anonymous,
            read_through: vec![ReadThrough {
                namespace: "bazel/pr-*".into(),
                from: vec!["bazel/main".into(), "bazel/release".into()],
            }],
            ..AuthConfig::default()
        };
        let shared = Arc::new(SharedTrust::new(trust()));
        (Gate::new(&config, shared.clone()), shared)
    }

    fn status(result: Result<Grant, StoreError>) -> u16 {
        match result {
            Ok(_) => 200,
            Err(error) => crate::protocols::pipeline::status_of(&error).0,
        }
    }

    #[test]
    fn scopes_decide_read_write_and_admin() {
        let (gate, _) = gate(None);
        let pr = token(&["bazel/main"], &["bazel/pr-42"], false);
        assert_eq!(status(gate.check(&pr, Access::Read, "bazel/main")), 200);
        assert_eq!(status(gate.check(&pr, Access::Read, "bazel/pr-42")), 200);
        assert_eq!(status(gate.check(&pr, Access::Write, "bazel/pr-42")), 200);
        assert_eq!(status(gate.check(&pr, Access::Write, "bazel/main")), 403);
        assert_eq!(status(gate.check(&pr, Access::Read, "gradle")), 403);
        assert_eq!(status(gate.check(&pr, Access::Admin, "")), 403);
        let admin = token(&[], &[], true);
        assert_eq!(status(gate.check(&admin, Access::Admin, "")), 200);
        assert_eq!(status(gate.check(&admin, Access::Read, "gradle")), 403);
        let anonymous = Identity::default();
        assert_eq!(status(gate.check(&anonymous, Access::Read, "gradle")), 401);
    }

    #[test]
    fn a_client_certificate_grants_its_entrys_scopes_and_a_token_wins_over_it() {
        let config = AuthConfig {
            client_certs: vec![crate::config::ClientCertConfig {
                subject: "CN=ci,O=Example".into(),
                read: vec!["bazel*".into()],
                write: vec!["bazel/main".into()],
                admin: false,
            }],
            public_keys: Some("/unused".into()),
            ..AuthConfig::default()
        };
        let gate = Gate::new(&config, Arc::new(SharedTrust::new(trust())));
        let cert = |subject: &str| Identity {
            subject: None,
            credential: Some(Credential::ClientCert(subject.into())),
        };
        let ci = cert("CN=ci,O=Example");
        assert_eq!(status(gate.check(&ci, Access::Write, "bazel/main")), 200);
        assert_eq!(status(gate.check(&ci, Access::Read, "bazel/pr-1")), 200);
        assert_eq!(status(gate.check(&ci, Access::Write, "bazel/pr-1")), 403);
        assert_eq!(status(gate.check(&ci, Access::Admin, "")), 403);
        assert_eq!(gate.grant(&ci).unwrap().subject(), "CN=ci,O=Example");
        // A verified certificate nobody listed has no scopes: anonymous (none with credentials).
        let stranger = cert("CN=stranger");
        assert_eq!(status(gate.check(&stranger, Access::Read, "bazel")), 401);
        // A token on the request wins over the connection's certificate.
        let pr = token(&[], &["bazel/pr-1"], false).on_connection(&ci);
        assert_eq!(status(gate.check(&pr, Access::Write, "bazel/pr-1")), 200);
        assert_eq!(status(gate.check(&pr, Access::Write, "bazel/main")), 403);
        // No token: the certificate's identity.
        let bare = Identity::default().on_connection(&ci);
        assert_eq!(status(gate.check(&bare, Access::Write, "bazel/main")), 200);
    }

    #[test]
    fn anonymous_policies() {
        let anonymous = Identity::default();
        let (read, _) = gate(Some(Anonymous::Read));
        assert_eq!(status(read.check(&anonymous, Access::Read, "nx")), 200);
        assert_eq!(status(read.check(&anonymous, Access::Write, "nx")), 401);
        let (all, _) = gate(Some(Anonymous::ReadWrite));
        assert_eq!(status(all.check(&anonymous, Access::Write, "nx")), 200);
        assert_eq!(status(all.check(&anonymous, Access::Admin, "")), 200);
        // A bad token is refused even where anonymous callers may write: it says who it is.
        let mut forged = token(&["*"], &["*"], false);
        if let Some(Credential::Bearer(t)) = &mut forged.credential {
            *t = format!("{t}A").into();
        }
        assert_eq!(status(all.check(&forged, Access::Read, "nx")), 401);
        // With no keys configured a credential is ignored.
        let open = Gate::new(&AuthConfig::default(), Arc::new(SharedTrust::default()));
        assert_eq!(status(open.check(&forged, Access::Write, "nx")), 200);
    }

    #[test]
    fn verified_tokens_are_cached_until_the_keys_change() {
        let (gate, shared) = gate(None);
        let pr = token(&["x"], &[], false);
        assert_eq!(status(gate.check(&pr, Access::Read, "x")), 200);
        assert_eq!(gate.verified.borrow().claims.len(), 1);
        assert_eq!(status(gate.check(&pr, Access::Read, "x")), 200);
        assert_eq!(gate.verified.borrow().claims.len(), 1);
        // Revoking its jti reaches the executor at its next request.
        let mut revoked = trust();
        revoked.policy.revoked.insert("j-1".into());
        shared.replace(revoked);
        let refused = gate.check(&pr, Access::Read, "x").unwrap_err();
        assert!(
            matches!(
                refused,
                StoreError::Unauthenticated {
                    reason: "revoked",
                    ..
                }
            ),
            "{refused}"
        );
        assert!(gate.verified.borrow().claims.is_empty());
    }

    #[test]
    fn the_cache_is_bounded() {
        let (gate, _) = gate(None);
        for i in 0..VERIFIED_TOKENS_MAX + 10 {
            let ns = format!("n{i}");
            let id = token(&[&ns], &[], false);
            assert_eq!(status(gate.check(&id, Access::Read, &ns)), 200);
        }
        assert_eq!(gate.verified.borrow().claims.len(), VERIFIED_TOKENS_MAX);
    }

    #[test]
    fn read_through_sources_are_the_readable_from_namespaces() {
        let (gate, _) = gate(None);
        let pr = token(&["bazel/main"], &["bazel/pr-42"], false);
        let grant = gate.grant(&pr).unwrap();
        let sources: Vec<Namespace> = gate.read_through("bazel/pr-42", &grant).collect();
        assert_eq!(sources, [Namespace::new("bazel/main")]);
        assert_eq!(gate.read_through("bazel/main", &grant).count(), 0);
    }

    #[test]
    fn refusals_are_counted_by_reason() {
        let before = |reason: &str| {
            refusals()
                .into_iter()
                .find(|(r, _)| *r == reason)
                .unwrap()
                .1
        };
        let (gate, _) = gate(None);
        let scope = before("scope");
        let _ = gate.check(&token(&[], &[], false), Access::Read, "x");
        assert!(before("scope") > scope);
    }
}
