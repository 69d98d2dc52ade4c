//! The seam between the front-ends and the store: what a front-end may ask, from any core, and
//! who is asking.
//!
//! Every operation carries a [`RequestContext`] (namespace, protocol, identity, deadline) and an
//! [`ObjectKey`] (kind, client name, and the store key id derived from both and the namespace).
//! Cross-cutting rules (authorization, usage counting, an object-store tier) are [`Layer`]s: a
//! layer names its inner backend and overrides only the operations it changes; every other
//! operation forwards by default, so a decorator is a few lines, not a re-forwarding of every
//! method.
//!
//! ```text
//!  front-end ─► pipeline ─► Backend  = [Layer] ─► [Layer] ─► Steer (owner shard) ─► Shard
//! ```
//!
//! ```
//! use tessera::protocols::backend::{Backend, Layer, ObjectKey, RequestContext};
//! use tessera::store::{ReadHandle, StoreError};
//!
//! /// Answers every lookup in namespace `hidden` as a miss; forwards everything else.
//! struct Hide<B>(B);
//!
//! impl<B: Backend> Layer for Hide<B> {
//!     type Inner = B;
//!     fn inner(&self) -> &B {
//!         &self.0
//!     }
//!     async fn lookup(
//!         &self,
//!         ctx: &RequestContext,
//!         key: &ObjectKey<'_>,
//!     ) -> Result<Option<ReadHandle>, StoreError> {
//!         if ctx.namespace.as_str() == "hidden" {
//!             return Ok(None);
//!         }
//!         self.0.lookup(ctx, key).await
//!     }
//! }
//! ```
//!
//! The server implements the innermost [`Backend`] by steering each operation to the shard that
//! owns the key (`server::steer`); tests implement it over one in-process
//! [`Shard`](crate::store::Shard) ([`LocalBackend`]).
//!
//! Thread-safety contract: a `Backend` value lives on one executor (`!Send` is fine); the handles
//! it returns are `Send` and may be moved to other cores.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::net::SocketAddr;
use std::time::Instant;

pub use super::body::Body;
use crate::store::{
    ContentDigest, Key, KeyId, Kind, Meta, NamespaceUsage, PutRequest, ReadHandle, Reservation,
    Reserved, Shard, ShardStats, StoreError,
};

/// The name of the namespace a request acts on, the same everywhere (README, metrics, logs,
/// authorization scopes, the object-store tier's prefixes):
///
/// | client                         | namespace                    |
/// |--------------------------------|------------------------------|
/// | Bazel, empty instance          | `bazel`                      |
/// | Bazel, instance / HTTP prefix  | `bazel/INSTANCE`             |
/// | Gradle, Nx, ccache             | `gradle`, `nx`, `ccache`     |
/// | Turborepo                      | `turbo/TEAM`                 |
/// | S3                             | `s3/BUCKET`                  |
///
/// A mount may name its own namespace instead of its protocol's.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Namespace(Cow<'static, str>);

/// Bazel's empty instance.
pub const BAZEL_NAMESPACE: &str = "bazel";

/// Namespaces up to this long have their store-key prefix built on the stack (no allocation per
/// request); longer ones, which the gRPC and HTTP layers allow, use a `String`.
const STORAGE_NAMESPACE_STACK_BYTES: usize = 160;

impl Namespace {
    /// A fixed namespace (`gradle`, `nx`, …).
    pub const fn fixed(name: &'static str) -> Self {
        Namespace(Cow::Borrowed(name))
    }

    pub fn new(name: impl Into<String>) -> Self {
        Namespace(Cow::Owned(name.into()))
    }

    /// `bazel` for the empty instance, `bazel/INSTANCE` otherwise.
    pub fn bazel(instance: &str) -> Self {
        if instance.is_empty() {
            return Namespace::fixed(BAZEL_NAMESPACE);
        }
        Namespace::new(format!("{BAZEL_NAMESPACE}/{instance}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The Bazel instance name of a `bazel` namespace (`""` for `bazel` itself).
    pub fn bazel_instance(&self) -> Option<&str> {
        let name = self.as_str();
        if name == BAZEL_NAMESPACE {
            return Some("");
        }
        name.strip_prefix(BAZEL_NAMESPACE)?.strip_prefix('/')
    }

    /// The key id of `kind`/`name` in this namespace.
    ///
    /// Bazel namespaces keep the key derivation of the releases before namespaces were named
    /// (`reapi/INSTANCE`), so a data directory written by an older release keeps every hit
    /// after an upgrade (pinned by `bazel_keys_are_those_of_earlier_releases`). Every other
    /// namespace is hashed under its own name.
    pub fn key_id(&self, kind: Kind, name: &[u8]) -> KeyId {
        let Some(instance) = self.bazel_instance() else {
            return Key {
                namespace: self.as_str(),
                kind,
                name,
            }
            .id();
        };
        const LEGACY_PREFIX: &str = "reapi/";
        let len = LEGACY_PREFIX.len() + instance.len();
        let id = |namespace: &str| {
            Key {
                namespace,
                kind,
                name,
            }
            .id()
        };
        if len > STORAGE_NAMESPACE_STACK_BYTES {
            return id(&format!("{LEGACY_PREFIX}{instance}"));
        }
        let mut buf = [0u8; STORAGE_NAMESPACE_STACK_BYTES];
        buf[..LEGACY_PREFIX.len()].copy_from_slice(LEGACY_PREFIX.as_bytes());
        buf[LEGACY_PREFIX.len()..len].copy_from_slice(instance.as_bytes());
        // Both halves are `str`s, so their concatenation is UTF-8.
        id(std::str::from_utf8(&buf[..len]).expect("two str halves make a str"))
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which client protocol a request arrived by (metrics, logs, audit).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Protocol {
    BazelHttp,
    Grpc,
    Gradle,
    Nx,
    Turbo,
    Ccache,
    S3,
    Admin,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::BazelHttp => "bazel-http",
            Protocol::Grpc => "grpc",
            Protocol::Gradle => "gradle",
            Protocol::Nx => "nx",
            Protocol::Turbo => "turbo",
            Protocol::Ccache => "ccache",
            Protocol::S3 => "s3",
            Protocol::Admin => "admin",
        }
    }
}

/// Who is asking. The credential is taken once per request from where its protocol carries it
/// (HTTP `Authorization`, gRPC metadata, S3 signature, TLS client certificate); the
/// authorization layer verifies it. No front-end parses tokens.
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct Identity {
    /// The token's `sub` once verified, or `None`.
    pub subject: Option<String>,
    /// What the client presented, not yet verified; `None`: anonymous.
    pub credential: Option<Credential>,
}

/// A credential as presented.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Credential {
    /// A bearer token (`Authorization: Bearer T`, or HTTP Basic with `T` as the password).
    /// Shared, not owned: the identity is cloned into every context of the request (and every
    /// S3 store command), and a token is hundreds of bytes.
    Bearer(std::sync::Arc<str>),
    /// The subject (RFC 4514) of the client certificate the connection's TLS handshake
    /// verified against `tls_client_ca`; the scopes are its `[[auth.client_cert]]` entry's.
    ClientCert(std::sync::Arc<str>),
    /// Scopes a front-end already verified, as claims: a static `[[s3.keys]]` access key whose
    /// SigV4 signature the S3 front-end checked, its bucket globs as `s3/GLOB` namespaces.
    Granted(std::sync::Arc<crate::auth::token::Claims>),
}

impl Identity {
    /// The identity an HTTP `Authorization` header value presents: `Bearer T`, or `Basic`
    /// with any user and `T` as the password (Gradle, ccache URL userinfo, `.netrc`).
    pub fn from_authorization(value: Option<&[u8]>) -> Identity {
        let credential = value
            .and_then(|value| std::str::from_utf8(value).ok())
            .and_then(|value| {
                let (scheme, rest) = value.trim().split_once(' ')?;
                let rest = rest.trim();
                if scheme.eq_ignore_ascii_case("bearer") {
                    return Some(std::sync::Arc::from(rest));
                }
                if !scheme.eq_ignore_ascii_case("basic") {
                    return None;
                }
                let decoded = decode_basic(rest)?;
                let decoded = String::from_utf8(decoded).ok()?;
                let (_user, password) = decoded.split_once(':')?;
                (!password.is_empty()).then(|| std::sync::Arc::from(password))
            })
            .map(Credential::Bearer);
        Identity {
            subject: None,
            credential,
        }
    }

    /// The identity of a request on a connection whose own identity is `connection` (its TLS
    /// client certificate, or anonymous): a credential the request carries wins, so a client
    /// with a certificate may still act with a token; without one, the connection's.
    pub fn on_connection(self, connection: &Identity) -> Identity {
        match self.credential {
            Some(_) => self,
            None => connection.clone(),
        }
    }
}

/// The `user:password` bytes of a Basic credential, in either base64 alphabet: RFC 7617 says
/// standard base64, but Bazel encodes URL userinfo with the URL-safe one (`-`, `_`; Guava's
/// `base64Url()`, reference/clients.md §1), which a token's characters make likely to show.
fn decode_basic(text: &str) -> Option<Vec<u8>> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    use base64::{alphabet, Engine};
    const LENIENT: GeneralPurposeConfig =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
    const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);
    STANDARD
        .decode(text)
        .or_else(|_| URL_SAFE.decode(text))
        .ok()
}

/// What every store operation carries: where, by which protocol, for whom, until when.
#[derive(Clone, Debug)]
pub struct RequestContext {
    pub namespace: Namespace,
    pub protocol: Protocol,
    pub identity: Identity,
    /// When the client stops caring; layers that wait (a tier's fetch) give up then.
    pub deadline: Option<Instant>,
    /// The peer's socket address, as the connection was accepted (the audit log records it);
    /// `None` for requests the server makes itself and in tests.
    pub remote: Option<SocketAddr>,
}

impl RequestContext {
    /// An anonymous request with no deadline.
    pub fn new(namespace: Namespace, protocol: Protocol) -> Self {
        RequestContext {
            namespace,
            protocol,
            identity: Identity::default(),
            deadline: None,
            remote: None,
        }
    }

    /// This context acting for `identity`.
    pub fn with_identity(mut self, identity: Identity) -> Self {
        self.identity = identity;
        self
    }

    /// This context for a request that came from `remote`.
    pub fn with_remote(mut self, remote: Option<SocketAddr>) -> Self {
        self.remote = remote;
        self
    }

    /// The key of `kind`/`name` in this request's namespace.
    pub fn key<'a>(&self, kind: Kind, name: &'a [u8]) -> ObjectKey<'a> {
        ObjectKey {
            kind,
            name,
            id: self.namespace.key_id(kind, name),
        }
    }
}

/// A key as the client named it, with its store id in the request's namespace.
#[derive(Clone, Copy, Debug)]
pub struct ObjectKey<'a> {
    pub kind: Kind,
    /// The client's name: a digest's bytes (CAS, AC, with a digest-function tag for Bazel) or
    /// an opaque key (Gradle, Nx, Turbo, ccache, S3).
    pub name: &'a [u8],
    /// `namespace.key_id(kind, name)`; a layer that changes the namespace derives a new one.
    pub id: KeyId,
}

/// A put as a front-end asks for it, before any body byte is read.
#[derive(Clone, Debug)]
pub struct Put<'a> {
    pub key: ObjectKey<'a>,
    pub body_len: u64,
    /// Content type and protocol headers to return on GET/HEAD (`store::Meta` names).
    pub meta: Meta,
    /// `Kind::Cas`: the digest the body must hash to.
    pub expect: Option<ContentDigest>,
    /// Keep an existing entry instead of replacing it (Nx: entries are immutable).
    pub if_absent: bool,
}

impl Put<'_> {
    /// The store's form of this put.
    pub fn store_request(&self) -> PutRequest {
        PutRequest {
            id: self.key.id,
            kind: self.key.kind,
            body_len: self.body_len,
            meta: self.meta.clone(),
            expect: self.expect,
            if_absent: self.if_absent,
        }
    }
}

/// The store operations every front-end is built from.
#[allow(async_fn_in_trait)]
pub trait Backend {
    /// A hit is a handle on the record's bytes; a miss (including a corrupt record) is `None`.
    async fn lookup(
        &self,
        ctx: &RequestContext,
        key: &ObjectKey<'_>,
    ) -> Result<Option<ReadHandle>, StoreError>;
    /// A hit as a [`Body`]: the same answer as [`lookup`](Self::lookup) (the same rules,
    /// counted the same way), except that a record still being filled (an object-store tier
    /// hit streaming in) may come back as [`Body::Streaming`] before it is complete. For read
    /// paths that send large bodies and can end a response in an error (HTTP GET, ByteStream
    /// Read); everything else uses `lookup`. The default answers `lookup`'s handle.
    async fn lookup_body(
        &self,
        ctx: &RequestContext,
        key: &ObjectKey<'_>,
    ) -> Result<Option<Body>, StoreError> {
        Ok(self.lookup(ctx, key).await?.map(Body::Committed))
    }
    /// Presence of many keys at once, in the order given; counts as a use for eviction.
    async fn contains(
        &self,
        ctx: &RequestContext,
        keys: &[ObjectKey<'_>],
    ) -> Result<Vec<bool>, StoreError>;
    /// Reserves room for a body of `put.body_len` bytes before any of it is read.
    async fn reserve(&self, ctx: &RequestContext, put: &Put<'_>) -> Result<Reserved, StoreError>;
    /// Makes a fully written reservation visible; digest or length errors leave nothing visible.
    /// An `if_absent` put whose key appeared meanwhile is `StoreError::Exists`.
    async fn commit(
        &self,
        ctx: &RequestContext,
        reservation: Reservation,
    ) -> Result<(), StoreError>;
    /// Releases a reservation that will not be committed (dropping it aborts it too; this also
    /// tells the owner at once).
    async fn abort(&self, ctx: &RequestContext, reservation: Reservation);
    async fn delete(&self, ctx: &RequestContext, key: &ObjectKey<'_>) -> Result<bool, StoreError>;
    /// Every open shard's counters, by shard index, ascending.
    async fn stats(&self) -> Result<Vec<(u32, ShardStats)>, StoreError>;
    /// Deletes every entry of the request's namespace on every shard; what each shard deleted,
    /// by shard index, ascending.
    async fn purge(&self, ctx: &RequestContext) -> Result<Vec<(u32, NamespaceUsage)>, StoreError>;
}

/// A decorator over a [`Backend`]: override what the layer changes, inherit the rest.
///
/// Every type that implements `Layer` is a `Backend`; its default methods forward to
/// [`inner`](Self::inner) unchanged.
#[allow(async_fn_in_trait)]
pub trait Layer {
    type Inner: Backend;

    fn inner(&self) -> &Self::Inner;

    async fn lookup(
        &self,
        ctx: &RequestContext,
        key: &ObjectKey<'_>,
    ) -> Result<Option<ReadHandle>, StoreError> {
        self.inner().lookup(ctx, key).await
    }
    /// Fail-safe default: this layer's own [`lookup`](Layer::lookup), committed. A layer whose
    /// `lookup` applies a rule (authorization, counting) would be bypassed by a plain forward
    /// to the inner `lookup_body`; so streaming passes only through layers that override this
    /// (with [`LookupBy`] to share one body between both lookups), and any other layer makes
    /// its readers wait for the commit, which is correct, only slower.
    async fn lookup_body(
        &self,
        ctx: &RequestContext,
        key: &ObjectKey<'_>,
    ) -> Result<Option<Body>, StoreError> {
        Ok(Layer::lookup(self, ctx, key).await?.map(Body::Committed))
    }
    async fn contains(
        &self,
        ctx: &RequestContext,
        keys: &[ObjectKey<'_>],
    ) -> Result<Vec<bool>, StoreError> {
        self.inner().contains(ctx, keys).await
    }
    async fn reserve(&self, ctx: &RequestContext, put: &Put<'_>) -> Result<Reserved, StoreError> {
        self.inner().reserve(ctx, put).await
    }
    async fn commit(
        &self,
        ctx: &RequestContext,
        reservation: Reservation,
    ) -> Result<(), StoreError> {
        self.inner().commit(ctx, reservation).await
    }
    async fn abort(&self, ctx: &RequestContext, reservation: Reservation) {
        self.inner().abort(ctx, reservation).await
    }
    async fn delete(&self, ctx: &RequestContext, key: &ObjectKey<'_>) -> Result<bool, StoreError> {
        self.inner().delete(ctx, key).await
    }
    async fn stats(&self) -> Result<Vec<(u32, ShardStats)>, StoreError> {
        self.inner().stats().await
    }
    async fn purge(&self, ctx: &RequestContext) -> Result<Vec<(u32, NamespaceUsage)>, StoreError> {
        self.inner().purge(ctx).await
    }
}

impl<L: Layer> Backend for L {
    async fn lookup(
        &self,
        ctx: &RequestContext,
        key: &ObjectKey<'_>,
    ) -> Result<Option<ReadHandle>, StoreError> {
        Layer::lookup(self, ctx, key).await
    }
    async fn lookup_body(
        &self,
        ctx: &RequestContext,
        key: &ObjectKey<'_>,
    ) -> Result<Option<Body>, StoreError> {
        Layer::lookup_body(self, ctx, key).await
    }
    async fn contains(
        &self,
        ctx: &RequestContext,
        keys: &[ObjectKey<'_>],
    ) -> Result<Vec<bool>, StoreError> {
        Layer::contains(self, ctx, keys).await
    }
    async fn reserve(&self, ctx: &RequestContext, put: &Put<'_>) -> Result<Reserved, StoreError> {
        Layer::reserve(self, ctx, put).await
    }
    async fn commit(
        &self,
        ctx: &RequestContext,
        reservation: Reservation,
    ) -> Result<(), StoreError> {
        Layer::commit(self, ctx, reservation).await
    }
    async fn abort(&self, ctx: &RequestContext, reservation: Reservation) {
        Layer::abort(self, ctx, reservation).await
    }
    async fn delete(&self, ctx: &RequestContext, key: &ObjectKey<'_>) -> Result<bool, StoreError> {
        Layer::delete(self, ctx, key).await
    }
    async fn stats(&self) -> Result<Vec<(u32, ShardStats)>, StoreError> {
        Layer::stats(self).await
    }
    async fn purge(&self, ctx: &RequestContext) -> Result<Vec<(u32, NamespaceUsage)>, StoreError> {
        Layer::purge(self, ctx).await
    }
}

/// One of the two lookups, as a type, so that a layer applies one rule to both with one
/// generic body (`layer.find::<L>(…)`) instead of two copies that could drift apart.
#[allow(async_fn_in_trait)]
pub trait LookupBy {
    /// What a hit is: a [`ReadHandle`] or a [`Body`].
    type Hit;
    async fn lookup<B: Backend>(
        backend: &B,
        ctx: &RequestContext,
        key: &ObjectKey<'_>,
    ) -> Result<Option<Self::Hit>, StoreError>;
}

/// [`Backend::lookup`].
pub struct ByHandle;

impl LookupBy for ByHandle {
    type Hit = ReadHandle;
    async fn lookup<B: Backend>(
        backend: &B,
        ctx: &RequestContext,
        key: &ObjectKey<'_>,
    ) -> Result<Option<ReadHandle>, StoreError> {
        backend.lookup(ctx, key).await
    }
}

/// [`Backend::lookup_body`].
pub struct ByBody;

impl LookupBy for ByBody {
    type Hit = Body;
    async fn lookup<B: Backend>(
        backend: &B,
        ctx: &RequestContext,
        key: &ObjectKey<'_>,
    ) -> Result<Option<Body>, StoreError> {
        backend.lookup_body(ctx, key).await
    }
}

/// A [`Backend`] over one shard in this thread: for tests and tools.
pub struct LocalBackend {
    shard: RefCell<Shard>,
}

impl LocalBackend {
    pub fn new(shard: Shard) -> Self {
        LocalBackend {
            shard: RefCell::new(shard),
        }
    }

    /// The shard's counters (tests check reservations and hits through it).
    pub fn shard_stats(&self) -> ShardStats {
        self.shard.borrow().stats()
    }

    pub fn into_inner(self) -> Shard {
        self.shard.into_inner()
    }
}

impl Backend for LocalBackend {
    async fn lookup(
        &self,
        _ctx: &RequestContext,
        key: &ObjectKey<'_>,
    ) -> Result<Option<ReadHandle>, StoreError> {
        self.shard.borrow_mut().lookup(&key.id)
    }
    async fn contains(
        &self,
        _ctx: &RequestContext,
        keys: &[ObjectKey<'_>],
    ) -> Result<Vec<bool>, StoreError> {
        let ids: Vec<KeyId> = keys.iter().map(|key| key.id).collect();
        Ok(self.shard.borrow_mut().contains(&ids))
    }
    async fn reserve(&self, ctx: &RequestContext, put: &Put<'_>) -> Result<Reserved, StoreError> {
        self.shard
            .borrow_mut()
            .reserve_in(ctx.namespace.as_str(), put.store_request())
    }
    async fn commit(
        &self,
        _ctx: &RequestContext,
        reservation: Reservation,
    ) -> Result<(), StoreError> {
        self.shard.borrow_mut().commit(reservation)
    }
    async fn abort(&self, _ctx: &RequestContext, reservation: Reservation) {
        self.shard.borrow_mut().abort(reservation)
    }
    async fn delete(&self, _ctx: &RequestContext, key: &ObjectKey<'_>) -> Result<bool, StoreError> {
        self.shard.borrow_mut().delete(&key.id)
    }
    async fn stats(&self) -> Result<Vec<(u32, ShardStats)>, StoreError> {
        Ok(vec![(0, self.shard.borrow().stats())])
    }
    async fn purge(&self, ctx: &RequestContext) -> Result<Vec<(u32, NamespaceUsage)>, StoreError> {
        let purged = self.shard.borrow_mut().purge(ctx.namespace.as_str())?;
        Ok(vec![(0, purged)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::DigestFunction;

    /// Key ids computed by the release before named namespaces (`reapi_keys` hashed
    /// `reapi/INSTANCE`, kind, and `tag ‖ digest`), pinned as golden values so a data directory
    /// written by it keeps every Bazel hit.
    #[test]
    fn bazel_keys_are_those_of_earlier_releases() {
        let mut name = [0u8; 33];
        name[0] = 1; // SHA-256 tag
        name[1..].copy_from_slice(&[7u8; 32]);
        let legacy = |namespace: &str, kind| {
            Key {
                namespace,
                kind,
                name: &name,
            }
            .id()
        };
        assert_eq!(
            Namespace::bazel("").key_id(Kind::Cas, &name),
            legacy("reapi/", Kind::Cas)
        );
        assert_eq!(
            Namespace::bazel("team/a").key_id(Kind::Ac, &name),
            legacy("reapi/team/a", Kind::Ac)
        );
        let long = "i".repeat(300);
        assert_eq!(
            Namespace::bazel(&long).key_id(Kind::Cas, &name),
            legacy(&format!("reapi/{long}"), Kind::Cas)
        );
        // The bytes themselves, as the earlier release derived them for `GET /cas/0707…07`.
        let digest = ContentDigest {
            function: DigestFunction::Sha256,
            hash: [7u8; 32],
        };
        let name = crate::protocols::reapi_keys::name(&digest);
        let id = Namespace::bazel("").key_id(Kind::Cas, &name);
        let hex: String = id.0.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5f4ed5f2dffc3d09a1fc57c3a321a617147b22c597ad9950c69984d677aa6659"
        );
    }

    #[test]
    fn namespaces_separate_keys() {
        let name = b"0123456789abcdef";
        let ids = [
            Namespace::fixed("gradle").key_id(Kind::Blob, name),
            Namespace::fixed("nx").key_id(Kind::Blob, name),
            Namespace::new("turbo/a").key_id(Kind::Blob, name),
            Namespace::new("turbo/b").key_id(Kind::Blob, name),
            Namespace::bazel("").key_id(Kind::Blob, name),
        ];
        for (i, a) in ids.iter().enumerate() {
            for b in &ids[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn credentials_come_from_bearer_and_basic_passwords() {
        let bearer = Identity::from_authorization(Some(b"Bearer abc.def.ghi"));
        assert_eq!(
            bearer.credential,
            Some(Credential::Bearer("abc.def.ghi".into()))
        );
        // "u:tok" in base64.
        let basic = Identity::from_authorization(Some(b"Basic dTp0b2s="));
        assert_eq!(basic.credential, Some(Credential::Bearer("tok".into())));
        // "ci:t>>?" in both alphabets (Bazel's userinfo uses the URL-safe one), padded or not.
        for encoded in ["Y2k6dD4+Pw==", "Y2k6dD4-Pw==", "Y2k6dD4-Pw"] {
            let basic = Identity::from_authorization(Some(format!("Basic {encoded}").as_bytes()));
            assert_eq!(
                basic.credential,
                Some(Credential::Bearer("t>>?".into())),
                "{encoded}"
            );
        }
        for none in [&b"Basic !!"[..], b"Digest x", b"Bearer", b"Basic dTo="] {
            assert_eq!(Identity::from_authorization(Some(none)).credential, None);
        }
        assert_eq!(Identity::from_authorization(None), Identity::default());
    }

    #[test]
    fn bazel_instances_are_parsed_back() {
        assert_eq!(Namespace::bazel("").bazel_instance(), Some(""));
        assert_eq!(Namespace::bazel("x/y").bazel_instance(), Some("x/y"));
        assert_eq!(Namespace::fixed("bazelx").bazel_instance(), None);
        assert_eq!(Namespace::fixed("gradle").bazel_instance(), None);
    }
}
