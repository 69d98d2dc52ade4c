//! Store keys for Bazel's caches, shared by the HTTP (`/ac/`, `/cas/`) and gRPC (REAPI)
//! front-ends so a user can switch protocols and keep their cache (DESIGN.md, "Records").
//!
//! | client request                                  | namespace        | kind | name            |
//! |-------------------------------------------------|------------------|------|-----------------|
//! | HTTP `GET /cas/<sha256>`                        | `reapi/`         | Cas  | `0x01` ‖ hash   |
//! | HTTP `GET /team-a/ac/<sha256>`                  | `reapi/team-a`   | Ac   | `0x01` ‖ hash   |
//! | gRPC `ByteStream.Read team-a/blobs/<h>/<n>`     | `reapi/team-a`   | Cas  | `0x01` ‖ hash   |
//! | gRPC `blobs/blake3/<h>/<n>` (no instance)       | `reapi/`         | Cas  | `0x02` ‖ hash   |
//!
//! The HTTP path prefix plays the role of the gRPC instance name. The name starts with a
//! digest-function tag so that a SHA-256 and a BLAKE3 digest with the same bytes can never be
//! one key (they are different blobs).

use crate::store::{ContentDigest, DigestFunction, Key, KeyId, Kind};

/// The namespace of a REAPI instance (the empty instance is the default one).
pub fn namespace(instance: &str) -> String {
    format!("reapi/{instance}")
}

fn tag(function: DigestFunction) -> u8 {
    match function {
        DigestFunction::Sha256 => 1,
        DigestFunction::Blake3 => 2,
    }
}

fn name(digest: &ContentDigest) -> [u8; 33] {
    let mut name = [0u8; 33];
    name[0] = tag(digest.function);
    name[1..].copy_from_slice(&digest.hash);
    name
}

/// Key of a CAS blob of `instance`.
pub fn cas_key(instance: &str, digest: &ContentDigest) -> KeyId {
    let namespace = namespace(instance);
    let name = name(digest);
    Key {
        namespace: &namespace,
        kind: Kind::Cas,
        name: &name,
    }
    .id()
}

/// Key of an action-cache entry of `instance`, addressed by the action's digest.
pub fn ac_key(instance: &str, action: &ContentDigest) -> KeyId {
    let namespace = namespace(instance);
    let name = name(action);
    Key {
        namespace: &namespace,
        kind: Kind::Ac,
        name: &name,
    }
    .id()
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
        let keys = [
            cas_key("", &sha),
            cas_key("x", &sha),
            ac_key("", &sha),
            cas_key("", &blake),
            ac_key("x", &blake),
        ];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(
            cas_key("x", &sha),
            cas_key("x", &digest(DigestFunction::Sha256, 7))
        );
    }
}
