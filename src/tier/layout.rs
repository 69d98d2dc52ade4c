//! Where a key lives in the tier (the table in the module doc of [`crate::tier`]).

use std::fmt::Write;

use crate::protocols::backend::{Namespace, BAZEL_NAMESPACE};
use crate::store::Kind;

use super::TierKind;

/// The SHA-256 tag that starts a Bazel name (`reapi_keys::name`).
const SHA256_TAG: u8 = 1;

fn kind_word(kind: Kind) -> &'static str {
    match kind {
        Kind::Cas => "cas",
        Kind::Ac => "ac",
        Kind::Blob => "blob",
    }
}

use crate::store::digest::to_hex as hex;

/// `E(N)`: `[A-Za-z0-9_-]` kept, every other byte as `.XX`. Injective, one path segment.
pub fn encode_namespace(namespace: &str) -> String {
    let mut out = String::with_capacity(namespace.len());
    for byte in namespace.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-' {
            out.push(byte as char);
        } else {
            let _ = write!(out, ".{byte:02X}");
        }
    }
    out
}

/// The SHA-256 hash (64 hex) of a Bazel name, if it is one.
fn bazel_sha256(name: &[u8]) -> Option<String> {
    match name {
        [SHA256_TAG, hash @ ..] if hash.len() == 32 => Some(hex(hash)),
        _ => None,
    }
}

/// The object key of `kind`/`name` in `namespace` for an object store (`prefix` is the
/// operator's, without surrounding slashes or with them).
pub fn object_key(prefix: &str, namespace: &Namespace, kind: Kind, name: &[u8]) -> String {
    let base = match (namespace.as_str(), kind, bazel_sha256(name)) {
        (BAZEL_NAMESPACE, Kind::Ac | Kind::Cas, Some(hash)) => {
            format!("{}/{}/{hash}", kind_word(kind), &hash[..2])
        }
        _ => {
            let name = hex(name);
            let shard = name.get(..2).unwrap_or("00");
            format!(
                "ns/{}/{}/{shard}/{name}",
                encode_namespace(namespace.as_str()),
                kind_word(kind)
            )
        }
    };
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        base
    } else {
        format!("{prefix}/{base}")
    }
}

/// Where bazel-remote's default `zstd` mode keeps a `bazel` CAS blob: `cas.v2/H[..2]/H` (a
/// [`casblob`](super::casblob) file), read when the uncompressed key is absent.
pub fn zstd_fallback(
    tier: TierKind,
    prefix: &str,
    namespace: &Namespace,
    kind: Kind,
    name: &[u8],
) -> Option<String> {
    if !tier.is_object_store() || kind != Kind::Cas || namespace.as_str() != BAZEL_NAMESPACE {
        return None;
    }
    let hash = bazel_sha256(name)?;
    let prefix = prefix.trim_matches('/');
    let base = format!("cas.v2/{}/{hash}", &hash[..2]);
    Some(if prefix.is_empty() {
        base
    } else {
        format!("{prefix}/{base}")
    })
}

/// The path of `kind`/`name` on a bazel-remote-compatible HTTP cache (`tier.kind = "http"`):
/// `[INSTANCE/]ac/H` or `[INSTANCE/]cas/H`. Only Bazel SHA-256 keys have one; other keys stay
/// local (`None`).
pub fn http_path(namespace: &Namespace, kind: Kind, name: &[u8]) -> Option<String> {
    let instance = namespace.bazel_instance()?;
    let hash = bazel_sha256(name)?;
    let word = match kind {
        Kind::Ac | Kind::Cas => kind_word(kind),
        Kind::Blob => return None,
    };
    Some(if instance.is_empty() {
        format!("{word}/{hash}")
    } else {
        format!("{instance}/{word}/{hash}")
    })
}

/// The tier path of a key for `tier` kind `kind`; `None`: this key is not tiered (an empty
/// name has no object key).
pub fn path(
    tier: TierKind,
    prefix: &str,
    namespace: &Namespace,
    kind: Kind,
    name: &[u8],
) -> Option<String> {
    if name.is_empty() {
        return None;
    }
    match tier {
        TierKind::S3 | TierKind::Gcs | TierKind::Azure => {
            Some(object_key(prefix, namespace, kind, name))
        }
        TierKind::Http => http_path(namespace, kind, name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bazel_name(hash: [u8; 32]) -> Vec<u8> {
        let mut name = vec![SHA256_TAG];
        name.extend_from_slice(&hash);
        name
    }

    #[test]
    fn bazel_uses_bazel_remotes_uncompressed_layout() {
        let name = bazel_name([0xab; 32]);
        let hash = "ab".repeat(32);
        let bazel = Namespace::bazel("");
        assert_eq!(
            object_key("", &bazel, Kind::Cas, &name),
            format!("cas/ab/{hash}")
        );
        assert_eq!(
            object_key("/team/", &bazel, Kind::Ac, &name),
            format!("team/ac/ab/{hash}")
        );
    }

    #[test]
    fn bazel_cas_falls_back_to_bazel_remotes_zstd_layout() {
        let name = bazel_name([0xab; 32]);
        let hash = "ab".repeat(32);
        let bazel = Namespace::bazel("");
        assert_eq!(
            zstd_fallback(TierKind::S3, "p/", &bazel, Kind::Cas, &name),
            Some(format!("p/cas.v2/ab/{hash}"))
        );
        assert_eq!(
            zstd_fallback(TierKind::S3, "", &bazel, Kind::Ac, &name),
            None
        );
        let team = Namespace::bazel("team");
        assert_eq!(
            zstd_fallback(TierKind::S3, "", &team, Kind::Cas, &name),
            None
        );
        assert_eq!(
            zstd_fallback(TierKind::Http, "", &bazel, Kind::Cas, &name),
            None
        );
    }

    #[test]
    fn namespaces_never_share_an_object() {
        let name = bazel_name([0x01; 32]);
        let namespaces = [
            Namespace::bazel(""),
            Namespace::bazel("team-a"),
            Namespace::bazel("team.2Fa"),
            Namespace::new("bazel/team/a"),
            Namespace::new("bazel.2Fteam"),
            Namespace::fixed("gradle"),
            Namespace::new("turbo/a"),
            Namespace::new("turbo/a/"),
        ];
        let mut seen = std::collections::HashSet::new();
        for namespace in &namespaces {
            for kind in [Kind::Ac, Kind::Cas, Kind::Blob] {
                let key = object_key("p", namespace, kind, &name);
                assert!(seen.insert(key.clone()), "{key} twice");
                assert!(key.starts_with("p/"));
            }
        }
        assert_eq!(encode_namespace("bazel/team-a"), "bazel.2Fteam-a");
        assert_eq!(encode_namespace("a.b"), "a.2Eb");
    }

    #[test]
    fn other_names_are_hex_under_their_namespace() {
        let key = object_key("", &Namespace::fixed("gradle"), Kind::Blob, b"\x0f\xa0z");
        assert_eq!(key, "ns/gradle/blob/0f/0fa07a");
        assert_eq!(
            path(TierKind::S3, "", &Namespace::fixed("x"), Kind::Blob, b""),
            None
        );
        // A BLAKE3 Bazel name (tag 2) is not bazel-remote's: it keeps its tag.
        let mut blake3 = vec![2u8];
        blake3.extend_from_slice(&[0xcd; 32]);
        let key = object_key("", &Namespace::bazel(""), Kind::Cas, &blake3);
        assert!(key.starts_with("ns/bazel/cas/02/02cd"), "{key}");
    }

    #[test]
    fn http_paths_follow_the_bazel_http_cache() {
        let name = bazel_name([0x11; 32]);
        let hash = "11".repeat(32);
        assert_eq!(
            http_path(&Namespace::bazel(""), Kind::Cas, &name),
            Some(format!("cas/{hash}"))
        );
        assert_eq!(
            http_path(&Namespace::bazel("ci"), Kind::Ac, &name),
            Some(format!("ci/ac/{hash}"))
        );
        assert_eq!(
            http_path(&Namespace::fixed("gradle"), Kind::Blob, b"k"),
            None
        );
    }
}
