//! The object-store tier: a [`Layer`](crate::protocols::backend::Layer) that puts a shared
//! object store (S3, MinIO, Ceph, SeaweedFS, … or another HTTP cache) behind the local store.
//!
//! ```text
//!  executor (glommio)                         tier thread (tokio current-thread runtime)
//!  Tiered::lookup ─ local hit ─► served        (the hit path only checks `Option<ReadHandle>`)
//!       └ local miss ─ Fetch ─bounded chan─►  object_store GET ─► size, metadata ─ oneshot ─┐
//!  reserve a local record ◄──────────────────────────────────────────────────────────────────┘
//!  write each chunk ◄── bounded chan (client::FILL_CHUNKS_MAX) ◄── body stream
//!   └ lookup_body: each chunk also to the client (protocols::body), the last after the commit
//!  commit, then serve the local record (lookup; joiners)
//!  Tiered::commit ─ hold segment ─ local commit ─ journal line ─ Upload ─bounded chan─► PUT
//!                                                       (retried; the hold drops when done)
//! ```
//!
//! * **Reads**: a local miss asks the tier; a hit is written into the local log as a normal
//!   record with its metadata, chunk by chunk as it downloads (CAS bodies are verified against
//!   their digest at the commit). The fill is a task of its own, so it completes even if the
//!   requests that wanted it gave up. Concurrent misses for one key on one executor share one
//!   tier request. `contains` (the AC completeness check, FindMissingBlobs) counts blobs the
//!   tier holds as present.
//! * **Served while it streams in** (`Backend::lookup_body`, [`crate::protocols::body`]): the
//!   request that starts a fill gets each chunk as soon as it is written locally, except the
//!   last, which it gets only after the commit verified the record; a body that breaks off or
//!   fails verification ends its response in an error (HTTP: the connection closes short of
//!   `Content-Length`; gRPC: UNAVAILABLE), or as a miss if not one byte was sent yet. Opted in:
//!   HTTP GET of the shared pipeline (Bazel HTTP CAS, Gradle, Nx, Turborepo, ccache, the admin
//!   blob endpoint) and whole uncompressed ByteStream Reads. Served after the commit, as
//!   before: requests that join a fill in flight (they would need the bytes already written),
//!   HEAD (its 200 promises a verified body), ByteStream ranges and compressed reads, small
//!   bodies (AC, BatchReadBlobs, ActionResults), and S3 GetObject (an S3 record keeps its ETag
//!   and object size in a trailer at the end of its body, so the response head needs the last
//!   bytes; ranges and conditional requests need them too).
//! * **Writes**: `write = "behind"` acknowledges after the local commit and a journal line
//!   (`DATA/tier-journal`, see [`journal`]); the upload runs on the tier thread, is retried until
//!   it succeeds, and is then marked done in the journal. At start the journal's pending entries
//!   are queued again, so `kill -9` loses no acknowledged upload. Every owed record's segment is
//!   held against eviction ([`SegmentHold`](crate::store::SegmentHold)) until its upload is
//!   done: when the store can make room only by evicting an owed record, or
//!   [`layer::OWED_MAX`] uploads are owed, new writes are refused with `NoSpace` (507) instead.
//!   `write = "through"`
//!   acknowledges after the tier has the object (503 when it cannot).
//! * **Faults**: a tier that is down or slow never blocks an executor: every request to it is a
//!   `try_send` on a bounded channel with a deadline on the reply; errors are counted; after
//!   [`client::BREAKER_FAILURES`] consecutive failures a circuit breaker answers reads as
//!   misses at once for [`client::BREAKER_COOLDOWN`], `tessera_tier_degraded` is 1 and `/ready`
//!   names the tier as degraded (still 200); a probe every [`client::PROBE_PERIOD`] notices
//!   the store's return without traffic.
//!
//! # Layout in the bucket
//!
//! Content-addressed, stable, documented in the README ("Scaling out"):
//!
//! | namespace, key                         | object key (after `prefix/`)                 |
//! |----------------------------------------|----------------------------------------------|
//! | `bazel`, AC, SHA-256 `H`               | `ac/H[..2]/H` (bazel-remote's layout)        |
//! | `bazel`, CAS, SHA-256 `H`              | `cas/H[..2]/H` (bazel-remote's layout)       |
//! | any other namespace `N`, kind `K`, name| `ns/E(N)/K/X[..2]/X`, `X` = hex of the name   |
//!
//! `K` is `ac`, `cas` or `blob`; `E(N)` keeps `[A-Za-z0-9_-]` and writes every other byte as
//! `.XX` (two upper-case hex digits), so `bazel/team-a` is `bazel.2Fteam-a`. `E` is injective
//! and yields one path segment, so two namespaces never share an object (a pull-request
//! namespace cannot reach another namespace's entries through the tier). Bazel BLAKE3 keys in
//! `bazel` use the second form (their name carries the digest-function tag).

pub mod casblob;
pub mod client;
pub mod journal;
pub mod layer;
pub mod layout;

pub use client::TierClient;
pub use layer::Tiered;

use crate::config::ConfigError;

/// What the tier talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TierKind {
    /// An S3-compatible object store.
    #[default]
    S3,
    /// Google Cloud Storage (object_store's `gcp` client): `bucket`, credentials from
    /// `credentials` (a service-account JSON file) or the usual Google sources.
    Gcs,
    /// Azure Blob Storage (object_store's `azure` client): `bucket` is the container,
    /// `account` and `account_key`, or the usual Azure sources.
    Azure,
    /// Another bazel-remote-compatible HTTP cache (another Tessera, bazel-remote).
    Http,
}

impl TierKind {
    /// Whether this kind is an object store with a bucket (every kind but `http`): they share
    /// the bucket layout and read bazel-remote's `cas.v2/` objects.
    pub fn is_object_store(self) -> bool {
        self != TierKind::Http
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TierKind::S3 => "s3",
            TierKind::Gcs => "gcs",
            TierKind::Azure => "azure",
            TierKind::Http => "http",
        }
    }
}

/// When a write is acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TierWrite {
    /// After the local commit; uploaded in the background (journaled until done).
    #[default]
    Behind,
    /// After the tier has the object.
    Through,
}

/// The `[tier]` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TierConfig {
    pub kind: TierKind,
    pub endpoint: Option<String>,
    pub region: String,
    pub bucket: Option<String>,
    pub prefix: String,
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
    pub virtual_host_style: bool,
    pub url: Option<String>,
    /// kind = gcs: path of a service-account JSON file.
    pub credentials: Option<String>,
    /// kind = azure: the storage account.
    pub account: Option<String>,
    /// kind = azure: the storage account's access key.
    pub account_key: Option<String>,
    pub write: TierWrite,
    /// Uploads queued in memory for the tier thread.
    pub queue: usize,
    /// Uploads the tier thread runs at once.
    pub uploads: usize,
}

impl Default for TierConfig {
    fn default() -> Self {
        TierConfig {
            kind: TierKind::S3,
            endpoint: None,
            region: "us-east-1".into(),
            bucket: None,
            prefix: String::new(),
            access_key: None,
            secret_key: None,
            virtual_host_style: false,
            url: None,
            credentials: None,
            account: None,
            account_key: None,
            write: TierWrite::Behind,
            queue: 4096,
            uploads: client::UPLOADS_IN_FLIGHT_DEFAULT,
        }
    }
}

impl TierConfig {
    /// Whether a tier is configured at all: `bucket` (kinds s3, gcs, azure) or `url` (kind
    /// http) is set.
    pub fn enabled(&self) -> bool {
        match self.kind {
            TierKind::S3 | TierKind::Gcs | TierKind::Azure => self.bucket.is_some(),
            TierKind::Http => self.url.is_some(),
        }
    }

    /// Relationships between the settings of an enabled tier (each value was checked on its
    /// own already). Without `bucket` (s3) or `url` (http) the other settings are inert.
    pub fn check(&self) -> Result<(), ConfigError> {
        if !self.enabled() {
            return Ok(());
        }
        let error = |setting: &str, message: &str| {
            Err(ConfigError {
                setting: setting.into(),
                message: message.into(),
            })
        };
        // Settings that belong to one kind only: naming them for another is a mistake.
        let owned_by: [(&str, bool, &[TierKind]); 6] = [
            ("tier.url", self.url.is_some(), &[TierKind::Http]),
            (
                "tier.access_key",
                self.access_key.is_some(),
                &[TierKind::S3],
            ),
            (
                "tier.secret_key",
                self.secret_key.is_some(),
                &[TierKind::S3],
            ),
            (
                "tier.credentials",
                self.credentials.is_some(),
                &[TierKind::Gcs],
            ),
            ("tier.account", self.account.is_some(), &[TierKind::Azure]),
            (
                "tier.account_key",
                self.account_key.is_some(),
                &[TierKind::Azure],
            ),
        ];
        for (setting, set, kinds) in owned_by {
            if set && !kinds.contains(&self.kind) {
                let owners: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
                return error(
                    setting,
                    &format!(
                        "is for tier.kind = \"{}\"; this tier is {}",
                        owners.join("\" or \""),
                        self.kind.as_str()
                    ),
                );
            }
        }
        match self.kind {
            TierKind::Gcs => {}
            TierKind::Azure => {
                if self.account.is_none() && self.account_key.is_some() {
                    return error(
                        "tier.account",
                        "is required with tier.account_key (the key belongs to an account)",
                    );
                }
            }
            TierKind::S3 => {
                if self.bucket.is_none()
                    && (self.endpoint.is_some()
                        || self.access_key.is_some()
                        || self.secret_key.is_some())
                {
                    return error(
                        "tier.bucket",
                        "is required once any other tier setting is set",
                    );
                }
                if self.access_key.is_some() != self.secret_key.is_some() {
                    return error(
                        "tier.secret_key",
                        "tier.access_key and tier.secret_key are set together or not at all",
                    );
                }
            }
            TierKind::Http => {
                let url = self.url.as_deref().unwrap_or_default();
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return error("tier.url", "must start with http:// or https://");
                }
                if self.bucket.is_some() {
                    return error(
                        "tier.bucket",
                        "is for tier.kind = \"s3\", \"gcs\" or \"azure\"; this tier is http",
                    );
                }
            }
        }
        if let Some(endpoint) = &self.endpoint {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                return error("tier.endpoint", "must start with http:// or https://");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tier_exists_only_with_a_bucket_or_a_url_and_checks_its_settings_then() {
        let none = TierConfig::default();
        assert!(!none.enabled());
        assert!(none.check().is_ok());
        // Credentials alone turn nothing on.
        let inert = TierConfig {
            access_key: Some("a".into()),
            ..TierConfig::default()
        };
        assert!(!inert.enabled() && inert.check().is_ok());

        let s3 = TierConfig {
            bucket: Some("b".into()),
            endpoint: Some("http://127.0.0.1:9000".into()),
            ..TierConfig::default()
        };
        assert!(s3.enabled());
        assert!(s3.check().is_ok());
        let half_keys = TierConfig {
            access_key: Some("a".into()),
            ..s3.clone()
        };
        assert_eq!(half_keys.check().unwrap_err().setting, "tier.secret_key");
        let bad_endpoint = TierConfig {
            endpoint: Some("127.0.0.1:9000".into()),
            ..s3.clone()
        };
        assert_eq!(bad_endpoint.check().unwrap_err().setting, "tier.endpoint");

        let http = TierConfig {
            kind: TierKind::Http,
            url: Some("ftp://x".into()),
            ..TierConfig::default()
        };
        assert!(http.enabled());
        assert_eq!(http.check().unwrap_err().setting, "tier.url");
        let gcs = TierConfig {
            kind: TierKind::Gcs,
            bucket: Some("b".into()),
            credentials: Some("/etc/tessera/gcs.json".into()),
            ..TierConfig::default()
        };
        assert!(gcs.enabled() && gcs.check().is_ok());
        let gcs_with_s3_keys = TierConfig {
            access_key: Some("a".into()),
            ..gcs.clone()
        };
        assert_eq!(
            gcs_with_s3_keys.check().unwrap_err().setting,
            "tier.access_key"
        );
        let azure = TierConfig {
            kind: TierKind::Azure,
            bucket: Some("container".into()),
            account: Some("acct".into()),
            account_key: Some("a2V5".into()),
            ..TierConfig::default()
        };
        assert!(azure.enabled() && azure.check().is_ok());
        let key_without_account = TierConfig {
            account: None,
            ..azure.clone()
        };
        assert_eq!(
            key_without_account.check().unwrap_err().setting,
            "tier.account"
        );
        let s3_with_azure_account = TierConfig {
            account: Some("acct".into()),
            ..s3.clone()
        };
        let error = s3_with_azure_account.check().unwrap_err();
        assert_eq!(error.setting, "tier.account");
        assert!(error.message.contains("\"azure\""), "{}", error.message);
        let azure_with_gcs_credentials = TierConfig {
            credentials: Some("x.json".into()),
            ..azure
        };
        assert_eq!(
            azure_with_gcs_credentials.check().unwrap_err().setting,
            "tier.credentials"
        );
        let http_with_bucket = TierConfig {
            url: Some("http://127.0.0.1:8080".into()),
            bucket: Some("b".into()),
            ..http
        };
        assert_eq!(http_with_bucket.check().unwrap_err().setting, "tier.bucket");
    }
}
