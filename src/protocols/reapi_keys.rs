//! Store keys for Bazel's caches, shared by the HTTP (`/ac/`, `/cas/`) and gRPC (REAPI)
//! front-ends so a user can switch protocols and keep their cache (DESIGN.md, "Records").
//!
//! | client request                                  | namespace        | kind | name            |
//! |-------------------------------------------------|------------------|------|-----------------|
//! | HTTP `GET /cas/<sha256>`                        | `bazel`          | Cas  | `0x01` ‖ hash   |
//! | HTTP `GET /team-a/ac/<sha256>`                  | `bazel/team-a`   | Ac   | `0x01` ‖ hash   |
//! | gRPC `ByteStream.Read team-a/blobs/<h>/<n>`     | `bazel/team-a`   | Cas  | `0x01` ‖ hash   |
//! | gRPC `blobs/blake3/<h>/<n>` (no instance)       | `bazel`          | Cas  | `0x02` ‖ hash   |
//!
//! The HTTP path prefix plays the role of the gRPC instance name. The name starts with a
//! digest-function tag so that a SHA-256 and a BLAKE3 digest with the same bytes can never be
//! one key (they are different blobs). The key id of a Bazel namespace is derived as in earlier
//! releases (`Namespace::key_id`), so an upgrade keeps the cache.

use crate::store::{ContentDigest, DigestFunction, KeyId, Kind};

use super::backend::{Namespace, ObjectKey, Protocol, RequestContext};

fn tag(function: DigestFunction) -> u8 {
    match function {
        DigestFunction::Sha256 => 1,
        DigestFunction::Blake3 => 2,
    }
}

/// The store name of a digest: its function's tag, then the hash.
pub fn name(digest: &ContentDigest) -> [u8; 33] {
    let mut name = [0u8; 33];
    name[0] = tag(digest.function);
    name[1..].copy_from_slice(&digest.hash);
    name
}

/// The context of a request to Bazel `instance` (namespace `bazel` or `bazel/INSTANCE`).
pub fn context(instance: &str, protocol: Protocol) -> RequestContext {
    RequestContext::new(Namespace::bazel(instance), protocol)
}

/// An owned Bazel key: the digest's store name and its id in the request's namespace.
#[derive(Clone, Copy, Debug)]
pub struct DigestKey {
    pub kind: Kind,
    pub name: [u8; 33],
    pub id: KeyId,
}

impl DigestKey {
    fn new(ctx: &RequestContext, kind: Kind, digest: &ContentDigest) -> Self {
        let name = name(digest);
        DigestKey {
            kind,
            name,
            id: ctx.namespace.key_id(kind, &name),
        }
    }

    /// The key as the backend takes it.
    pub fn key(&self) -> ObjectKey<'_> {
        ObjectKey {
            kind: self.kind,
            name: &self.name,
            id: self.id,
        }
    }
}

/// Key of a CAS blob in the request's namespace.
pub fn cas_key(ctx: &RequestContext, digest: &ContentDigest) -> DigestKey {
    DigestKey::new(ctx, Kind::Cas, digest)
}

/// Key of an action-cache entry in the request's namespace, addressed by the action's digest.
pub fn ac_key(ctx: &RequestContext, action: &ContentDigest) -> DigestKey {
    DigestKey::new(ctx, Kind::Ac, action)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(function: DigestFunction, byte: u8) -> ContentDigest {
        ContentDigest {
            function,
            hash: [byte; 32],
        }
    }

    #[test]
    fn keys_separate_instances_kinds_and_functions() {
        let sha = digest(DigestFunction::Sha256, 7);
        let blake = digest(DigestFunction::Blake3, 7);
        let (root, x) = (
            context("", Protocol::Grpc),
            context("x", Protocol::BazelHttp),
        );
        let keys = [
            cas_key(&root, &sha).id,
            cas_key(&x, &sha).id,
            ac_key(&root, &sha).id,
            cas_key(&root, &blake).id,
            ac_key(&x, &blake).id,
        ];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
        // HTTP and gRPC requests to one instance share keys.
        assert_eq!(
            cas_key(&context("x", Protocol::Grpc), &sha).id,
            cas_key(&x, &digest(DigestFunction::Sha256, 7)).id
        );
    }
}
