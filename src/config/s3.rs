//! The S3 endpoint's settings: `s3.listen`, `s3.buckets`, `s3.domain` (declared and checked in
//! `settings`) and the file-only `[[s3.keys]]` tables, checked here. Unsigned requests follow
//! `auth.anonymous` (it replaced `s3.anonymous`).
//!
//! ```toml
//! [s3]
//! buckets = ["sccache", "artifacts"]
//!
//! [[s3.keys]]
//! access_key = "AKEXAMPLE"
//! secret_key = "…"
//! read = ["*"]
//! write = ["sccache", "team-*"]
//! ```

use std::net::SocketAddr;

use serde::Deserialize;

use super::ConfigError;

/// Most `[[s3.keys]]` entries: a credential table for people and CI jobs, not a user database
/// (the authentication issue maps tokens onto credentials).
pub const S3_KEYS_MAX: usize = 1024;

/// Longest access key or secret, in bytes (AWS access keys are 16–128 characters).
pub const S3_KEY_BYTES_MAX: usize = 128;

/// Most bucket globs per key and direction.
pub const S3_GLOBS_PER_KEY_MAX: usize = 64;

/// Most buckets named in `s3.buckets`.
pub const S3_CONFIGURED_BUCKETS_MAX: usize = 1000;

/// The S3 settings as the server reads them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct S3Config {
    /// Extra listener that serves only S3.
    pub listen: Option<SocketAddr>,
    /// Buckets that exist from the start.
    pub buckets: Vec<String>,
    /// Domain for virtual-hosted-style requests (`BUCKET.DOMAIN`).
    pub domain: Option<String>,
    /// Credentials.
    pub keys: Vec<S3KeyConfig>,
}

/// One `[[s3.keys]]` table.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3KeyConfig {
    pub access_key: String,
    pub secret_key: String,
    /// Bucket globs this key may read (`*` any run of characters, `?` one character).
    #[serde(default)]
    pub read: Vec<String>,
    /// Bucket globs this key may write (and delete, create).
    #[serde(default)]
    pub write: Vec<String>,
}

impl std::fmt::Debug for S3KeyConfig {
    /// The secret never reaches a log or `tessera config`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3KeyConfig")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<hidden>")
            .field("read", &self.read)
            .field("write", &self.write)
            .finish()
    }
}

fn keys_error(message: String) -> ConfigError {
    ConfigError {
        setting: "s3.keys".into(),
        message,
    }
}

/// Parses and checks the `[[s3.keys]]` tables.
pub fn keys(entries: &[toml::Value]) -> Result<Vec<S3KeyConfig>, ConfigError> {
    if entries.len() > S3_KEYS_MAX {
        return Err(keys_error(format!(
            "{} keys; at most {S3_KEYS_MAX} are allowed",
            entries.len()
        )));
    }
    let mut keys: Vec<S3KeyConfig> = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let n = i + 1;
        let key: S3KeyConfig = entry
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| keys_error(format!("entry {n}: {}", e.message())))?;
        for (what, value) in [
            ("access_key", &key.access_key),
            ("secret_key", &key.secret_key),
        ] {
            if value.is_empty() || value.len() > S3_KEY_BYTES_MAX {
                return Err(keys_error(format!(
                    "entry {n}: {what} must be 1 to {S3_KEY_BYTES_MAX} bytes"
                )));
            }
            if !value.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(keys_error(format!(
                    "entry {n}: {what} must be printable ASCII without spaces"
                )));
            }
        }
        for globs in [&key.read, &key.write] {
            if globs.len() > S3_GLOBS_PER_KEY_MAX {
                return Err(keys_error(format!(
                    "entry {n}: at most {S3_GLOBS_PER_KEY_MAX} bucket globs per list"
                )));
            }
            if let Some(bad) = globs.iter().find(|g| g.is_empty() || g.len() > 63) {
                return Err(keys_error(format!(
                    "entry {n}: bucket glob `{bad}` must be 1 to 63 characters"
                )));
            }
        }
        if keys.iter().any(|k| k.access_key == key.access_key) {
            return Err(keys_error(format!(
                "entry {n}: access_key `{}` is given twice",
                key.access_key
            )));
        }
        keys.push(key);
    }
    Ok(keys)
}

/// Whether `name` is a valid S3 bucket name (3–63 characters: lowercase letters, digits, `.`
/// and `-`, starting and ending with a letter or digit, no `..`, not an IPv4 address).
pub fn is_bucket_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let edge = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    (3..=63).contains(&bytes.len())
        && bytes.iter().all(|b| edge(b) || *b == b'.' || *b == b'-')
        && bytes.first().is_some_and(edge)
        && bytes.last().is_some_and(edge)
        && !name.contains("..")
        && name.parse::<std::net::Ipv4Addr>().is_err()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_s3_rules() {
        for good in ["abc", "sccache", "a.b-c", "0ab", &"a".repeat(63)] {
            assert!(is_bucket_name(good), "{good}");
        }
        for bad in [
            "ab",
            "Abc",
            "a_b",
            "-ab",
            "ab-",
            "a..b",
            "192.168.1.1",
            &"a".repeat(64),
        ] {
            assert!(!is_bucket_name(bad), "{bad}");
        }
    }

    #[test]
    fn keys_are_checked() {
        let table = |text: &str| -> Vec<toml::Value> {
            let doc: toml::Table = text.parse().unwrap();
            doc["keys"].as_array().unwrap().clone()
        };
        let ok = keys(&table(
            "[[keys]]\naccess_key = \"AK\"\nsecret_key = \"SK\"\nread = [\"*\"]\n",
        ))
        .unwrap();
        assert_eq!(ok[0].read, vec!["*".to_string()]);
        assert!(ok[0].write.is_empty());
        let dup = "[[keys]]\naccess_key = \"AK\"\nsecret_key = \"S\"\n[[keys]]\naccess_key = \"AK\"\nsecret_key = \"T\"\n";
        assert!(keys(&table(dup)).unwrap_err().message.contains("twice"));
        let unknown = "[[keys]]\naccess_key = \"AK\"\nsecret_key = \"S\"\nwrite_all = true\n";
        assert!(keys(&table(unknown)).is_err());
        let empty = "[[keys]]\naccess_key = \"\"\nsecret_key = \"S\"\n";
        assert!(keys(&table(empty))
            .unwrap_err()
            .message
            .contains("access_key"));
        let shown = format!("{:?}", ok[0]);
        assert!(!shown.contains("SK"), "{shown}");
    }
}
