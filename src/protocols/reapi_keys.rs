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

/// Instance names up to this long get their namespace built on the stack (no allocation per
/// request); longer ones, which the gRPC and HTTP layers allow, use a `String`.
const NAMESPACE_STACK_BYTES: usize = 128;

/// The id of `kind`/`digest` in `instance`'s namespace.
fn key_id(instance: &str, kind: Kind, digest: &ContentDigest) -> KeyId {
    let name = name(digest);
    let id = |namespace: &str| {
        Key {
            namespace,
            kind,
            name: &name,
        }
        .id()
    };
    const PREFIX: &str = "reapi/";
    let len = PREFIX.len() + instance.len();
    if len > NAMESPACE_STACK_BYTES {
        return id(&namespace(instance));
    }
    let mut buf = [0u8; NAMESPACE_STACK_BYTES];
    buf[..PREFIX.len()].copy_from_slice(PREFIX.as_bytes());
    buf[PREFIX.len()..len].copy_from_slice(instance.as_bytes());
    // Both halves are `str`s, so their concatenation is UTF-8.
    id(std::str::from_utf8(&buf[..len]).expect("two str halves make a str"))
}

/// Key of a CAS blob of `instance`.
pub fn cas_key(instance: &str, digest: &ContentDigest) -> KeyId {
    key_id(instance, Kind::Cas, digest)
}

/// Key of an action-cache entry of `instance`, addressed by the action's digest.
pub fn ac_key(instance: &str, action: &ContentDigest) -> KeyId {
    key_id(instance, Kind::Ac, action)
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

    #[test]
    fn stack_and_heap_namespaces_give_the_same_keys() {
        let sha = digest(DigestFunction::Sha256, 9);
        let long = "i".repeat(300);
        for len in [0, 1, 121, 122, 123, 300] {
            let instance = &long[..len];
            let by_string = |kind| {
                Key {
                    namespace: &namespace(instance),
                    kind,
                    name: &name(&sha),
                }
                .id()
            };
            assert_eq!(cas_key(instance, &sha), by_string(Kind::Cas), "{len}");
            assert_eq!(ac_key(instance, &sha), by_string(Kind::Ac), "{len}");
        }
    }
}
