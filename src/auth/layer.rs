//! The authorization decorator over the `Backend` seam: every protocol's store operations pass
//! through it, so no front-end checks a token.
//!
//! | operation            | needs                        | on a miss                                   |
//! |----------------------|------------------------------|---------------------------------------------|
//! | `lookup`, `lookup_body`, `contains` | `read` on the namespace | read-through: the same key in each `from` namespace the caller may read |
//! | `reserve`, `commit`, `delete` | `write` on the namespace | —                                      |
//! | `purge`              | `write` on the namespace     | —                                           |
//! | `abort`, `stats`     | nothing (releases; counters) | —                                           |
//!
//! Refusals are `StoreError::Unauthenticated` (401, UNAUTHENTICATED) and
//! `StoreError::PermissionDenied` (403, PERMISSION_DENIED), mapped by each protocol's one
//! `status_of`. Reads never fall back on writes: what a pull-request build stores stays in its
//! own namespace, where a main-branch build never looks (CVE-2025-36852, "CREEP").
//!
//! ```text
//! lookup(bazel/pr-42, k) ─► read bazel/pr-42? ─► inner.lookup(bazel/pr-42, k)
//!                                                 └ miss ─► inner.lookup(bazel/main, k') (k' = key_id in bazel/main)
//! ```

use std::rc::Rc;
use std::sync::Arc;

use super::audit::{AuditLog, Entry};
use super::gate::{Access, Gate, Grant};
use crate::protocols::backend::{
    Backend, Body, ByBody, ByHandle, Layer, LookupBy, ObjectKey, Put, RequestContext,
};
use crate::store::{KeyId, NamespaceUsage, ReadHandle, Reservation, Reserved, StoreError};

/// Checks every operation against the caller's grant, then forwards it.
pub struct Authorize<B> {
    inner: Rc<B>,
    gate: Rc<Gate>,
    audit: Option<Arc<AuditLog>>,
}

/// Whether a check also counts a request against `auth.rate` (a PUT is one request: its
/// commit is checked again but not counted).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Count {
    Request,
    Recheck,
}

impl<B> Authorize<B> {
    pub fn new(inner: Rc<B>, gate: Rc<Gate>) -> Self {
        Authorize {
            inner,
            gate,
            audit: None,
        }
    }

    /// Records every write and refusal in `audit`.
    pub fn with_audit(mut self, audit: Option<Arc<AuditLog>>) -> Self {
        self.audit = audit;
        self
    }

    /// The grant for `access` to the request's namespace, counted against the rate; a
    /// refusal is audited.
    fn authorize(
        &self,
        ctx: &RequestContext,
        access: Access,
        count: Count,
        key: Option<&KeyId>,
    ) -> Result<Grant, StoreError> {
        let result = self
            .gate
            .check(&ctx.identity, access, ctx.namespace.as_str())
            .and_then(|grant| {
                if count == Count::Request {
                    self.gate.admit(&grant)?;
                }
                Ok(grant)
            });
        if let (Err(error), Some(audit)) = (&result, &self.audit) {
            let subject = match error {
                StoreError::PermissionDenied { subject, .. }
                | StoreError::RateLimited { subject, .. } => subject.as_str(),
                _ if ctx.identity.credential.is_some() => "unverified",
                _ => "anonymous",
            };
            let entry = Entry {
                subject,
                jti: None,
                operation: access.as_str(),
                key,
                bytes: None,
                outcome: Err(error),
            };
            audit.record(ctx, &entry);
        }
        result
    }

    fn audit_write(
        &self,
        ctx: &RequestContext,
        grant: &Grant,
        key: &KeyId,
        bytes: Option<u64>,
        status: &'static str,
    ) {
        if let Some(audit) = &self.audit {
            let entry = Entry {
                subject: grant.subject(),
                jti: grant.jti(),
                operation: "write",
                key: Some(key),
                bytes,
                outcome: Ok(status),
            };
            audit.record(ctx, &entry);
        }
    }

    /// The executor's gate (the router asks it about `/metrics`).
    pub fn gate(&self) -> &Rc<Gate> {
        &self.gate
    }
}

impl<B: Backend> Authorize<B> {
    /// Either lookup: read access to the request's namespace, then its entry, then (on a miss)
    /// the namespaces it reads through.
    async fn find<L: LookupBy>(
        &self,
        ctx: &RequestContext,
        key: &ObjectKey<'_>,
    ) -> Result<Option<L::Hit>, StoreError> {
        let namespace = ctx.namespace.as_str();
        let grant = self.authorize(ctx, Access::Read, Count::Request, Some(&key.id))?;
        if let Some(hit) = L::lookup(&*self.inner, ctx, key).await? {
            return Ok(Some(hit));
        }
        if !self.gate.has_read_through() {
            return Ok(None);
        }
        for from in self.gate.read_through(namespace, &grant) {
            let from_ctx = RequestContext {
                namespace: from,
                ..ctx.clone()
            };
            let from_key = rekey(&from_ctx, key);
            if let Some(hit) = L::lookup(&*self.inner, &from_ctx, &from_key).await? {
                return Ok(Some(hit));
            }
        }
        Ok(None)
    }
}

/// `key` in the namespace of `ctx`.
fn rekey<'k>(ctx: &RequestContext, key: &ObjectKey<'k>) -> ObjectKey<'k> {
    ObjectKey {
        id: ctx.namespace.key_id(key.kind, key.name),
        ..*key
    }
}

impl<B: Backend> Layer for Authorize<B> {
    type Inner = B;

    fn inner(&self) -> &B {
        &self.inner
    }

    async fn lookup(
        &self,
        ctx: &RequestContext,
        key: &ObjectKey<'_>,
    ) -> Result<Option<ReadHandle>, StoreError> {
        self.find::<ByHandle>(ctx, key).await
    }

    /// Authorized and read through exactly as `lookup`.
    async fn lookup_body(
        &self,
        ctx: &RequestContext,
        key: &ObjectKey<'_>,
    ) -> Result<Option<Body>, StoreError> {
        self.find::<ByBody>(ctx, key).await
    }

    async fn contains(
        &self,
        ctx: &RequestContext,
        keys: &[ObjectKey<'_>],
    ) -> Result<Vec<bool>, StoreError> {
        let namespace = ctx.namespace.as_str();
        let grant = self.authorize(ctx, Access::Read, Count::Request, None)?;
        let mut found = self.inner.contains(ctx, keys).await?;
        if !self.gate.has_read_through() {
            return Ok(found);
        }
        for from in self.gate.read_through(namespace, &grant) {
            let missing: Vec<usize> = (0..keys.len()).filter(|&i| !found[i]).collect();
            if missing.is_empty() {
                break;
            }
            let from_ctx = RequestContext {
                namespace: from,
                ..ctx.clone()
            };
            let from_keys: Vec<ObjectKey<'_>> = missing
                .iter()
                .map(|&i| rekey(&from_ctx, &keys[i]))
                .collect();
            let there = self.inner.contains(&from_ctx, &from_keys).await?;
            for (&i, present) in missing.iter().zip(there) {
                found[i] = present;
            }
        }
        Ok(found)
    }

    async fn reserve(&self, ctx: &RequestContext, put: &Put<'_>) -> Result<Reserved, StoreError> {
        self.authorize(ctx, Access::Write, Count::Request, Some(&put.key.id))?;
        self.inner.reserve(ctx, put).await
    }

    async fn commit(
        &self,
        ctx: &RequestContext,
        reservation: Reservation,
    ) -> Result<(), StoreError> {
        // Checked again: a token may expire or be revoked during a long upload.
        let key = reservation.key_id();
        let grant = self.authorize(ctx, Access::Write, Count::Recheck, Some(&key))?;
        let bytes = reservation.body_len();
        let committed = self.inner.commit(ctx, reservation).await;
        if committed.is_ok() {
            self.audit_write(ctx, &grant, &key, Some(bytes), "stored");
        }
        committed
    }

    async fn delete(&self, ctx: &RequestContext, key: &ObjectKey<'_>) -> Result<bool, StoreError> {
        let grant = self.authorize(ctx, Access::Write, Count::Request, Some(&key.id))?;
        let deleted = self.inner.delete(ctx, key).await;
        if let Ok(deleted) = deleted {
            let status = if deleted { "deleted" } else { "absent" };
            self.audit_write(ctx, &grant, &key.id, None, status);
        }
        deleted
    }

    /// A purge needs `write` on the namespace (the admin API also checked the `admin` claim
    /// before asking) and is audited with the bytes it deleted.
    async fn purge(&self, ctx: &RequestContext) -> Result<Vec<(u32, NamespaceUsage)>, StoreError> {
        let grant = self.authorize(ctx, Access::Write, Count::Request, None)?;
        let purged = self.inner.purge(ctx).await;
        if let (Ok(shards), Some(audit)) = (&purged, &self.audit) {
            let entry = Entry {
                subject: grant.subject(),
                jti: grant.jti(),
                operation: "purge",
                key: None,
                bytes: Some(shards.iter().map(|(_, usage)| usage.bytes).sum()),
                outcome: Ok("purged"),
            };
            audit.record(ctx, &entry);
        }
        purged
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::gate::SharedTrust;
    use crate::auth::keys::Trust;
    use crate::auth::token::{mint, Claims};
    use crate::config::{AuthConfig, ReadThrough};
    use crate::protocols::backend::{Credential, Identity, LocalBackend, Namespace, Protocol};
    use crate::protocols::pipeline::store_bytes;
    use crate::store::{Kind, Meta};
    use ed25519_dalek::SigningKey;
    use futures_lite::future::block_on;
    use std::sync::Arc;

    fn identity(read: &[&str], write: &[&str]) -> Identity {
        let key = SigningKey::from_bytes(&[5u8; 32]);
        let claims = Claims {
            sub: "t".into(),
            exp: crate::auth::cli::now_seconds() + 600,
            nbf: None,
            iat: None,
            jti: None,
            aud: None,
            read: read.iter().map(|s| s.to_string()).collect(),
            write: write.iter().map(|s| s.to_string()).collect(),
            admin: false,
        };
        Identity {
            subject: None,
            credential: Some(Credential::Bearer(mint(&key, "k", &claims).into())),
        }
    }

    fn layer(dir: &std::path::Path) -> Authorize<LocalBackend> {
        let shard = crate::protocols::test_support::shard(dir);
        let mut trust = Trust::default();
        trust
            .keys
            .insert("k", SigningKey::from_bytes(&[5u8; 32]).verifying_key());
        let config = AuthConfig {
            public_keys: Some("/unused".into()),
            read_through: vec![ReadThrough {
                namespace: "bazel/pr-*".into(),
                from: vec!["bazel/main".into()],
            }],
            ..AuthConfig::default()
        };
        let gate = Gate::new(&config, Arc::new(SharedTrust::new(trust)));
        Authorize::new(Rc::new(LocalBackend::new(shard)), Rc::new(gate))
    }

    fn ctx(namespace: &str, identity: Identity) -> RequestContext {
        RequestContext::new(Namespace::new(namespace), Protocol::Nx).with_identity(identity)
    }

    fn put<'a>(ctx: &RequestContext, name: &'a [u8], len: usize) -> Put<'a> {
        Put {
            key: ctx.key(Kind::Blob, name),
            body_len: len as u64,
            meta: Meta::new(),
            expect: None,
            if_absent: false,
        }
    }

    #[test]
    fn pull_requests_read_through_main_and_main_never_sees_their_writes() {
        let dir = tempfile::tempdir().unwrap();
        let layer = layer(dir.path());
        block_on(async {
            let main = ctx("bazel/main", identity(&[], &["bazel/main"]));
            store_bytes(&layer, &main, &put(&main, b"shared", 4), b"main")
                .await
                .unwrap();
            let pr = ctx("bazel/pr-42", identity(&["bazel/main"], &["bazel/pr-42"]));
            // The PR may not write main…
            let refused = store_bytes(
                &layer,
                &ctx("bazel/main", pr.identity.clone()),
                &put(&main, b"x", 1),
                b"x",
            )
            .await;
            assert!(matches!(refused, Err(StoreError::PermissionDenied { .. })));
            // …reads main's entry through its own namespace…
            let hit = Backend::lookup(&layer, &pr, &pr.key(Kind::Blob, b"shared"))
                .await
                .unwrap();
            assert_eq!(hit.unwrap().body(), b"main");
            let keys = [
                pr.key(Kind::Blob, b"shared"),
                pr.key(Kind::Blob, b"pr-only"),
            ];
            assert_eq!(
                Backend::contains(&layer, &pr, &keys).await.unwrap(),
                [true, false]
            );
            // …and stores its own results in its namespace only.
            store_bytes(&layer, &pr, &put(&pr, b"pr-only", 2), b"pr")
                .await
                .unwrap();
            assert!(
                Backend::lookup(&layer, &pr, &pr.key(Kind::Blob, b"pr-only"))
                    .await
                    .unwrap()
                    .is_some()
            );
            let main_keys = [main.key(Kind::Blob, b"pr-only")];
            assert_eq!(
                Backend::contains(&layer, &main, &main_keys).await.unwrap(),
                [false]
            );
            assert!(Backend::lookup(&layer, &main, &main_keys[0])
                .await
                .unwrap()
                .is_none());
            // A token that may not read main gets no fallback.
            let stranger = ctx("bazel/pr-7", identity(&[], &["bazel/pr-7"]));
            let miss =
                Backend::lookup(&layer, &stranger, &stranger.key(Kind::Blob, b"shared")).await;
            assert!(miss.unwrap().is_none());
        });
    }

    #[test]
    fn a_purge_needs_write_on_its_namespace_and_is_audited() {
        let dir = tempfile::tempdir().unwrap();
        let audit_path = dir.path().join("audit.log");
        let audit = Arc::new(AuditLog::open(&audit_path).unwrap());
        let layer = layer(&dir.path().join("data")).with_audit(Some(audit));
        block_on(async {
            let writer = ctx("nx", identity(&[], &["nx"]));
            store_bytes(&layer, &writer, &put(&writer, b"k", 3), b"abc")
                .await
                .unwrap();
            let reader = ctx("nx", identity(&["nx"], &[]));
            let refused = Backend::purge(&layer, &reader).await;
            assert!(matches!(refused, Err(StoreError::PermissionDenied { .. })));
            assert_eq!(layer.inner().shard_stats().objects, 1, "refused: kept");
            let purged = Backend::purge(&layer, &writer).await.unwrap();
            assert_eq!(purged[0].1.objects, 1);
            assert_eq!(layer.inner().shard_stats().objects, 0);
        });
        let log = std::fs::read_to_string(&audit_path).unwrap();
        let purge_lines: Vec<serde_json::Value> = log
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .filter(|line: &serde_json::Value| line["operation"] == "purge")
            .collect();
        assert_eq!(purge_lines.len(), 1, "{log}");
        assert_eq!(purge_lines[0]["namespace"], "nx");
        assert_eq!(purge_lines[0]["status"], "purged");
        assert!(purge_lines[0]["bytes"].as_u64().unwrap() > 3);
        assert!(log.contains("\"status\":\"refused\""), "{log}");
    }

    /// `lookup_body` (the streaming read of large bodies) is the same rule as `lookup`: the
    /// grant is checked first, and a miss reads through exactly where `lookup` would.
    #[test]
    fn lookup_body_is_authorized_and_read_through_like_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let layer = layer(dir.path());
        block_on(async {
            let main = ctx("bazel/main", identity(&[], &["bazel/main"]));
            store_bytes(&layer, &main, &put(&main, b"shared", 4), b"main")
                .await
                .unwrap();
            let pr = ctx("bazel/pr-42", identity(&["bazel/main"], &["bazel/pr-42"]));
            let body = |found: Option<Body>| match found {
                Some(Body::Committed(handle)) => Some(handle.body().to_vec()),
                Some(Body::Streaming(_)) => panic!("nothing streams without a tier"),
                None => None,
            };
            let hit = Backend::lookup_body(&layer, &pr, &pr.key(Kind::Blob, b"shared")).await;
            assert_eq!(body(hit.unwrap()).as_deref(), Some(&b"main"[..]));
            let stranger = ctx("bazel/pr-7", identity(&[], &["bazel/pr-7"]));
            let key = stranger.key(Kind::Blob, b"shared");
            assert_eq!(
                body(Backend::lookup_body(&layer, &stranger, &key).await.unwrap()),
                None
            );
            let anonymous = ctx("bazel/main", Identity::default());
            let key = anonymous.key(Kind::Blob, b"shared");
            let refused = Backend::lookup_body(&layer, &anonymous, &key).await;
            assert!(matches!(refused, Err(StoreError::Unauthenticated { .. })));
            let writer_only = ctx("bazel/main", identity(&[], &["bazel/pr-1"]));
            let refused = Backend::lookup_body(&layer, &writer_only, &key).await;
            assert!(matches!(refused, Err(StoreError::PermissionDenied { .. })));
        });
    }

    #[test]
    fn refusals_store_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let layer = layer(dir.path());
        block_on(async {
            let reader = ctx("nx", identity(&["nx"], &[]));
            let refused = store_bytes(&layer, &reader, &put(&reader, b"k", 1), b"v").await;
            assert!(matches!(refused, Err(StoreError::PermissionDenied { .. })));
            let anonymous = ctx("nx", Identity::default());
            let refused =
                Backend::lookup(&layer, &anonymous, &anonymous.key(Kind::Blob, b"k")).await;
            assert!(matches!(refused, Err(StoreError::Unauthenticated { .. })));
            assert_eq!(layer.inner().shard_stats().objects, 0);
            assert_eq!(layer.inner().shard_stats().pending_reservations, 0);
        });
    }
}
