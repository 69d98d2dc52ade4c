//! The `[auth]` settings: where the trusted keys and the revocation list are, what anonymous
//! callers may do, and the read-through namespaces.
//!
//! ```toml
//! [auth]
//! public_keys = "/etc/tessera/keys"   # every KID.pub in it is trusted
//! revoked = "/etc/tessera/revoked"    # one jti a line
//! anonymous = "read"                  # none | read | read-write
//!
//! [[auth.read_through]]               # file-only
//! namespace = "bazel/pr-*"            # a miss here…
//! from = ["bazel/main"]               # …is looked up here, if the token may read it
//! ```
//!
//! With no keys configured, anonymous callers may do everything (`read-write`, admin included),
//! which is safe only while nobody else can reach the server: every listening address must then
//! be loopback, or `auth.anonymous` must be set explicitly. With keys, the default is `none`.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::{ConfigError, RequestRate};

/// Read-through entries at most (each miss in a matching namespace probes every `from`).
pub const READ_THROUGH_ENTRIES_MAX: usize = 64;
/// `from` namespaces of one read-through entry at most: a miss costs one lookup per `from`.
pub const READ_THROUGH_FROM_MAX: usize = 8;

/// What a request without a credential may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Anonymous {
    None,
    Read,
    /// Read, write and admin.
    ReadWrite,
}

/// A namespace (glob) whose misses on reads fall back to other namespaces.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadThrough {
    /// The namespaces this entry applies to (`bazel/pr-*`).
    pub namespace: String,
    /// The namespaces looked up, in order, after a miss (`["bazel/main"]`).
    pub from: Vec<String>,
}

/// The `[auth]` table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthConfig {
    pub public_keys: Option<PathBuf>,
    pub jwks: Option<PathBuf>,
    pub revoked: Option<PathBuf>,
    pub audience: Option<String>,
    /// As configured; [`AuthConfig::anonymous`] gives the effective policy.
    pub anonymous: Option<Anonymous>,
    pub public_metrics: bool,
    pub read_through: Vec<ReadThrough>,
    /// Requests per subject, process-wide (`auth.rate`); `None`: unlimited.
    pub rate: Option<RequestRate>,
    /// Requests above the rate a subject may make at once (`auth.burst`).
    pub burst: Option<u64>,
    /// `audit_log`: one JSON line per write and refusal.
    pub audit_log: Option<PathBuf>,
    /// `[[auth.client_cert]]`: the scopes of verified TLS client certificates, by subject.
    pub client_certs: Vec<super::ClientCertConfig>,
    /// `auth.s3_secret`: the server secret of token S3 credentials (`tessera token --s3`);
    /// `None`: `s3.secret` in `auth.public_keys`, when it is there.
    pub s3_secret: Option<PathBuf>,
    /// Whether static `[[s3.keys]]` are configured (set from the `[s3]` table): keys too, for
    /// the anonymous default.
    pub s3_keys: bool,
}

impl AuthConfig {
    /// Whether any keys are configured: token keys, or static `[[s3.keys]]`.
    pub fn has_keys(&self) -> bool {
        self.has_token_keys() || self.s3_keys
    }

    /// Whether token keys are configured.
    pub fn has_token_keys(&self) -> bool {
        self.public_keys.is_some() || self.jwks.is_some()
    }

    /// Whether any credential grants scopes: token keys or `[[auth.client_cert]]` entries.
    /// With one, anonymous callers get `none` unless `auth.anonymous` says otherwise.
    pub fn has_credentials(&self) -> bool {
        self.has_keys() || !self.client_certs.is_empty()
    }

    /// The S3 server secret's file: `auth.s3_secret`, else `s3.secret` in `auth.public_keys`
    /// when that file exists; `None`: tokens cannot sign S3 requests.
    pub fn s3_secret_path(&self) -> Option<PathBuf> {
        if let Some(path) = &self.s3_secret {
            return Some(path.clone());
        }
        let beside = self.public_keys.as_ref()?.join("s3.secret");
        beside.exists().then_some(beside)
    }

    /// The effective anonymous policy: as set, else `read-write` without keys, `none` with.
    pub fn anonymous(&self) -> Anonymous {
        match self.anonymous {
            Some(anonymous) => anonymous,
            None if self.has_credentials() => Anonymous::None,
            None => Anonymous::ReadWrite,
        }
    }

    /// Refuses the implicit `read-write` default on an address others can reach.
    pub fn check_exposure(&self, addresses: &[SocketAddr]) -> Result<(), ConfigError> {
        if self.anonymous.is_some() || self.has_credentials() {
            return Ok(());
        }
        if let Some(exposed) = addresses.iter().find(|a| !a.ip().is_loopback()) {
            return Err(ConfigError {
                setting: "auth.anonymous".into(),
                message: format!(
                    "{exposed} is not a loopback address, and with no keys configured anyone \
                     reaching it could read and write everything: configure keys \
                     (auth.public_keys or auth.jwks, see `tessera keygen`) or set \
                     auth.anonymous explicitly (none, read or read-write)"
                ),
            });
        }
        Ok(())
    }
}

/// Parses the file's `[[auth.read_through]]` entries.
pub fn read_through(entries: &[toml::Value]) -> Result<Vec<ReadThrough>, ConfigError> {
    let error = |message: String| ConfigError {
        setting: "auth.read_through".into(),
        message,
    };
    if entries.len() > READ_THROUGH_ENTRIES_MAX {
        return Err(error(format!(
            "{} entries; at most {READ_THROUGH_ENTRIES_MAX} are allowed",
            entries.len()
        )));
    }
    let mut parsed = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let number = i + 1;
        let entry: ReadThrough = entry.clone().try_into().map_err(|e: toml::de::Error| {
            error(format!(
                "entry {number}: {} (expected namespace = \"GLOB\", from = [\"NAMESPACE\", …])",
                e.message()
            ))
        })?;
        if entry.namespace.is_empty() {
            return Err(error(format!("entry {number}: the namespace is empty")));
        }
        if entry.from.is_empty() || entry.from.len() > READ_THROUGH_FROM_MAX {
            return Err(error(format!(
                "entry {number}: `from` lists {} namespaces; give 1 to {READ_THROUGH_FROM_MAX}",
                entry.from.len()
            )));
        }
        if let Some(bad) = entry.from.iter().find(|f| f.is_empty() || f.contains('*')) {
            return Err(error(format!(
                "entry {number}: `from` names namespaces, not globs: {bad:?}"
            )));
        }
        if entry
            .from
            .iter()
            .any(|f| crate::auth::scope::matches(&entry.namespace, f))
        {
            return Err(error(format!(
                "entry {number}: a `from` namespace matches `{}` itself; a read-through \
                 namespace falls back to others",
                entry.namespace
            )));
        }
        parsed.push(entry);
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(text: &str) -> Vec<toml::Value> {
        let table: toml::Table = text.parse().unwrap();
        match table.get("e") {
            Some(toml::Value::Array(a)) => a.clone(),
            _ => panic!("no [[e]]"),
        }
    }

    #[test]
    fn read_through_entries_are_checked() {
        let good = entries("[[e]]\nnamespace = \"bazel/pr-*\"\nfrom = [\"bazel/main\"]\n");
        assert_eq!(
            read_through(&good).unwrap(),
            vec![ReadThrough {
                namespace: "bazel/pr-*".into(),
                from: vec!["bazel/main".into()]
            }]
        );
        for (bad, says) in [
            ("namespace = \"x\"\nfrom = []", "1 to"),
            ("namespace = \"x\"", "from"),
            ("namespace = \"x\"\nfrom = [\"y\"]\nextra = 1", "extra"),
            ("namespace = \"bazel/*\"\nfrom = [\"bazel/main\"]", "itself"),
            ("namespace = \"x\"\nfrom = [\"y*\"]", "not globs"),
            ("namespace = \"\"\nfrom = [\"y\"]", "empty"),
        ] {
            let error = read_through(&entries(&format!("[[e]]\n{bad}\n"))).unwrap_err();
            assert_eq!(error.setting, "auth.read_through");
            assert!(error.message.contains(says), "{bad}: {error}");
        }
    }

    #[test]
    fn the_file_fills_the_auth_table_and_an_exposed_default_is_refused() {
        let mut layers = crate::config::Layers::with_defaults();
        layers
            .apply_toml(
                "[auth]\nanonymous = \"read\"\naudience = \"ci\"\n\
                 [[auth.read_through]]\nnamespace = \"bazel/pr-*\"\nfrom = [\"bazel/main\"]\n",
            )
            .unwrap();
        let config = layers.validate().unwrap();
        assert_eq!(config.auth.anonymous(), Anonymous::Read);
        assert_eq!(config.auth.audience.as_deref(), Some("ci"));
        assert_eq!(config.auth.read_through[0].from, ["bazel/main"]);

        let mut layers = crate::config::Layers::with_defaults();
        layers.apply_flag("listen", "0.0.0.0:8080").unwrap();
        let error = layers.validate().unwrap_err();
        assert_eq!(error.setting, "auth.anonymous");
        layers.apply_flag("auth.anonymous", "read-write").unwrap();
        assert!(layers.validate().is_ok());
    }

    #[test]
    fn anonymous_defaults_depend_on_keys_and_exposure() {
        let loopback: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let exposed: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let mut auth = AuthConfig::default();
        assert_eq!(auth.anonymous(), Anonymous::ReadWrite);
        assert!(auth.check_exposure(&[loopback]).is_ok());
        let error = auth.check_exposure(&[loopback, exposed]).unwrap_err();
        assert!(error.message.contains("10.0.0.1:1"), "{error}");
        assert!(error.message.contains("auth.anonymous"), "{error}");
        auth.anonymous = Some(Anonymous::ReadWrite);
        assert!(auth.check_exposure(&[exposed]).is_ok());
        auth.anonymous = None;
        auth.public_keys = Some("/k".into());
        assert_eq!(auth.anonymous(), Anonymous::None);
        assert!(auth.check_exposure(&[exposed]).is_ok());
    }
}
