//! Who may do what over S3: the credential lookup, one replaceable piece.
//!
//! [`Credentials`] answers two questions: the secret of an access key (s3s checks the
//! signature with it), and whether a caller (an access key, or `None` for an unsigned request)
//! may read or write a bucket. [`ConfigKeys`] answers them from `[[s3.keys]]` and
//! `s3.anonymous`; the authentication issue replaces it with one that maps Tessera tokens.
//! [`Auth`] and [`Access`] adapt any `Credentials` to s3s.

use std::sync::Arc;

use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::path::S3Path;
use s3s::{S3Error, S3ErrorCode, S3Result};

use crate::config::S3KeyConfig;

/// Read or write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Right {
    Read,
    Write,
}

/// The credential lookup.
pub trait Credentials: Send + Sync + 'static {
    /// The secret of `access_key`, if it is known.
    fn secret(&self, access_key: &str) -> Option<String>;
    /// Whether `caller` (`None`: unsigned) may exercise `right` on `bucket` (`None`: the
    /// service itself, ListBuckets).
    fn allows(&self, caller: Option<&str>, bucket: Option<&str>, right: Right) -> bool;
}

/// Credentials from the configuration.
pub struct ConfigKeys {
    keys: Vec<S3KeyConfig>,
    anonymous: bool,
}

impl ConfigKeys {
    pub fn new(keys: Vec<S3KeyConfig>, anonymous: bool) -> Self {
        ConfigKeys { keys, anonymous }
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
    fn secret(&self, access_key: &str) -> Option<String> {
        self.keys
            .iter()
            .find(|k| k.access_key == access_key)
            .map(|k| k.secret_key.clone())
    }

    fn allows(&self, caller: Option<&str>, bucket: Option<&str>, right: Right) -> bool {
        let Some(caller) = caller else {
            return self.anonymous;
        };
        let Some(key) = self.keys.iter().find(|k| k.access_key == caller) else {
            return false;
        };
        let globs = match right {
            Right::Read => &key.read,
            Right::Write => &key.write,
        };
        match bucket {
            // Listing the buckets: any key that may do anything.
            None => !key.read.is_empty() || !key.write.is_empty(),
            Some(bucket) => globs.iter().any(|g| glob_matches(g, bucket)),
        }
    }
}

/// s3s's secret lookup over [`Credentials`].
pub struct Auth(pub Arc<dyn Credentials>);

#[async_trait::async_trait]
impl S3Auth for Auth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.0.secret(access_key) {
            Some(secret) => Ok(SecretKey::from(secret)),
            None => Err(S3Error::with_message(
                S3ErrorCode::InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records.",
            )),
        }
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

/// s3s's access check over [`Credentials`].
pub struct Access(pub Arc<dyn Credentials>);

#[async_trait::async_trait]
impl S3Access for Access {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let caller = cx.credentials().map(|c| c.access_key.clone());
        let bucket = match cx.s3_path() {
            S3Path::Root => None,
            S3Path::Bucket { bucket } | S3Path::Object { bucket, .. } => Some(bucket.to_string()),
        };
        let right = right_of(cx.s3_op().name());
        if self.0.allows(caller.as_deref(), bucket.as_deref(), right) {
            return Ok(());
        }
        Err(S3Error::with_message(
            S3ErrorCode::AccessDenied,
            match caller {
                None => "Anonymous access is not enabled (s3.anonymous); sign the request",
                Some(_) => "This key may not do that in this bucket",
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

    #[test]
    fn keys_grant_what_their_globs_say() {
        let keys = ConfigKeys::new(
            vec![S3KeyConfig {
                access_key: "AK".into(),
                secret_key: "SK".into(),
                read: vec!["*".into()],
                write: vec!["ci-*".into()],
            }],
            false,
        );
        assert_eq!(keys.secret("AK").as_deref(), Some("SK"));
        assert_eq!(keys.secret("nope"), None);
        assert!(keys.allows(Some("AK"), Some("x"), Right::Read));
        assert!(!keys.allows(Some("AK"), Some("x"), Right::Write));
        assert!(keys.allows(Some("AK"), Some("ci-1"), Right::Write));
        assert!(!keys.allows(None, Some("ci-1"), Right::Read));
        assert!(!keys.allows(Some("other"), Some("ci-1"), Right::Read));
        let open = ConfigKeys::new(Vec::new(), true);
        assert!(open.allows(None, Some("b"), Right::Write));
    }
}
