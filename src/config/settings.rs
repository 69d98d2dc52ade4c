//! The declaration of every setting: one [`Setting`] line each in [`SETTINGS`].
//!
//! A declaration gives the dotted key, the default, the kind of value and the `Config` field it
//! fills; the three spellings are derived from the key, never written down:
//!
//! | key          | file                      | environment          | flag            |
//! |--------------|---------------------------|----------------------|-----------------|
//! | `max_size`   | `max_size = "20GiB"`      | `TESSERA_MAX_SIZE`   | `--max-size`    |
//! | `s3.listen`  | `[s3]` then `listen = …`  | `TESSERA_S3_LISTEN`  | `--s3-listen`   |
//!
//! Adding a setting, nested or not, is one line here (plus the `Config` field its consumer
//! reads). Arrays of tables (`[[mount]]`) are file-only and declared in [`FILE_ONLY_ARRAYS`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::s3::{is_bucket_name, S3_CONFIGURED_BUCKETS_MAX};
use super::units::{parse_bool, parse_duration, parse_rate, parse_size, RequestRate};
use super::{Anonymous, Config};
use crate::store::Durability;
use crate::tier::client::UPLOADS_IN_FLIGHT_MAX;
use crate::tier::{TierKind, TierWrite};

/// Prefix of every setting's environment variable.
pub const ENV_PREFIX: &str = "TESSERA_";

/// One setting. Its three spellings come from [`Setting::key`].
#[derive(Clone, Debug)]
pub struct Setting {
    /// The dotted name: `max_size`, or `s3.listen` for `listen` in the file's `[s3]` table.
    pub key: &'static str,
    /// The value when no layer sets one; empty: unset (the consumer picks, see `help`).
    pub default: &'static str,
    /// What the value must look like.
    pub kind: Kind,
    /// One line for `--help` and the README.
    pub help: &'static str,
    /// Moves a parsed value into its `Config` field; `None` if the value does not fit the field
    /// (such as "unset" for a setting that must have a value).
    pub(super) store: fn(&mut Config, Parsed) -> Option<()>,
}

impl Setting {
    /// `TESSERA_S3_LISTEN` for `s3.listen`.
    pub fn env_var(&self) -> String {
        format!(
            "{ENV_PREFIX}{}",
            self.key.replace('.', "_").to_ascii_uppercase()
        )
    }

    /// `s3-listen` for `s3.listen` (the flag is `--s3-listen`).
    pub fn flag(&self) -> String {
        self.key.replace(['.', '_'], "-")
    }
}

/// What kind of value a setting takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A socket address, `127.0.0.1:8080`.
    Address,
    /// A filesystem path.
    Path,
    /// A byte count with an optional unit ([`super::parse_size`]).
    Size,
    /// A duration with an optional unit ([`super::parse_duration`]).
    Duration,
    /// A whole number in `min..=max`.
    Count { min: u64, max: u64 },
    /// `true` or `false` (and `yes`/`no`, `on`/`off`, `1`/`0`).
    Bool,
    /// One of these words.
    Choice(&'static [&'static str]),
    /// Free text (a log filter).
    Text,
    /// Free text that is a credential (a secret key): parsed as [`Kind::Text`], never shown by
    /// `tessera config` or in logs.
    Secret,
    /// S3 bucket names: a TOML array of strings in the file, comma-separated in a variable or
    /// flag (`s3.buckets`).
    BucketList,
    /// A DNS domain name (`s3.domain`).
    Domain,
    /// A request rate, `2000/s`, `600/m`, `10000/h`.
    Rate,
}

impl Kind {
    /// The value's placeholder in `--help`.
    pub fn value_name(self) -> &'static str {
        match self {
            Kind::Address => "ADDR",
            Kind::Path => "PATH",
            Kind::Size => "SIZE",
            Kind::Duration => "DURATION",
            Kind::Count { .. } => "N",
            Kind::Bool => "BOOL",
            Kind::Choice(_) => "WORD",
            Kind::Text => "TEXT",
            Kind::Secret => "SECRET",
            Kind::BucketList => "NAME,…",
            Kind::Domain => "DOMAIN",
            Kind::Rate => "RATE",
        }
    }

    /// What a valid value looks like, completing "`x` is not …".
    pub fn expected(self) -> String {
        match self {
            Kind::Address => "an address like 127.0.0.1:8080".into(),
            Kind::Path => "a path".into(),
            Kind::Size => "a size like 64MiB, 10GiB or 10GB".into(),
            Kind::Duration => "a duration like 250ms, 30s, 5m, 1h or 7d".into(),
            Kind::Count { min, max } => format!("a whole number from {min} to {max}"),
            Kind::Bool => "true or false".into(),
            Kind::Choice(words) => {
                let quoted: Vec<String> = words.iter().map(|w| format!("`{w}`")).collect();
                format!("one of {}", quoted.join(", "))
            }
            Kind::Text | Kind::Secret => "non-empty text".into(),
            Kind::BucketList => "a comma-separated list of bucket names (3 to 63 lowercase \
                                  letters, digits, `.` and `-`; an array of strings in the file)"
                .into(),
            Kind::Domain => "a domain name like s3.example.com".into(),
            Kind::Rate => "a rate like 2000/s, 600/m or 10000/h".into(),
        }
    }

    /// Parses `text` as this kind; the empty text is [`Parsed::Unset`].
    pub(super) fn parse(self, text: &str) -> Option<Parsed> {
        if text.is_empty() {
            return Some(Parsed::Unset);
        }
        Some(match self {
            Kind::Address => Parsed::Address(text.parse().ok()?),
            Kind::Path => Parsed::Path(PathBuf::from(text)),
            Kind::Size => Parsed::Bytes(parse_size(text)?),
            Kind::Duration => Parsed::Duration(parse_duration(text)?),
            Kind::Count { min, max } => Parsed::Count(
                text.parse::<u64>()
                    .ok()
                    .filter(|n| (min..=max).contains(n))?,
            ),
            Kind::Bool => Parsed::Bool(parse_bool(text)?),
            Kind::Choice(words) => Parsed::Word(words.iter().copied().find(|w| *w == text)?),
            Kind::Text | Kind::Secret => Parsed::Text(text.to_string()),
            Kind::BucketList => {
                let names: Vec<String> = text
                    .split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(str::to_string)
                    .collect();
                if names.len() > S3_CONFIGURED_BUCKETS_MAX
                    || !names.iter().all(|n| is_bucket_name(n))
                {
                    return None;
                }
                Parsed::List(names)
            }
            Kind::Domain => {
                let valid = text.len() <= 253
                    && text.split('.').all(|label| {
                        (1..=63).contains(&label.len())
                            && label
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    });
                if !valid {
                    return None;
                }
                Parsed::Text(text.to_ascii_lowercase())
            }
            Kind::Rate => Parsed::Rate(parse_rate(text)?),
        })
    }
}

/// A value parsed by its [`Kind`], on its way into a `Config` field. The accessors return `None`
/// for any other variant, which [`Setting::store`] turns into "not a valid value".
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Parsed {
    /// The empty value: the setting is unset.
    Unset,
    Address(SocketAddr),
    Path(PathBuf),
    Bytes(u64),
    Duration(Duration),
    Count(u64),
    Bool(bool),
    Word(&'static str),
    Text(String),
    List(Vec<String>),
    Rate(RequestRate),
}

impl Parsed {
    fn address(self) -> Option<SocketAddr> {
        match self {
            Parsed::Address(address) => Some(address),
            _ => None,
        }
    }

    fn path(self) -> Option<PathBuf> {
        match self {
            Parsed::Path(path) => Some(path),
            _ => None,
        }
    }

    fn bytes(self) -> Option<u64> {
        match self {
            Parsed::Bytes(bytes) => Some(bytes),
            _ => None,
        }
    }

    fn duration(self) -> Option<Duration> {
        match self {
            Parsed::Duration(duration) => Some(duration),
            _ => None,
        }
    }

    fn count<T: TryFrom<u64>>(self) -> Option<T> {
        match self {
            Parsed::Count(count) => T::try_from(count).ok(),
            _ => None,
        }
    }

    fn bool(self) -> Option<bool> {
        match self {
            Parsed::Bool(value) => Some(value),
            _ => None,
        }
    }

    fn word(self) -> Option<&'static str> {
        match self {
            Parsed::Word(word) => Some(word),
            _ => None,
        }
    }

    fn text(self) -> Option<String> {
        match self {
            Parsed::Text(text) => Some(text),
            _ => None,
        }
    }

    fn list(self) -> Option<Vec<String>> {
        match self {
            Parsed::Unset => Some(Vec::new()),
            Parsed::List(items) => Some(items),
            _ => None,
        }
    }

    fn rate(self) -> Option<RequestRate> {
        match self {
            Parsed::Rate(rate) => Some(rate),
            _ => None,
        }
    }

    /// For a setting that may be unset: `Some(None)` when unset, else `get`'s value.
    fn optional<T>(self, get: impl FnOnce(Self) -> Option<T>) -> Option<Option<T>> {
        match self {
            Parsed::Unset => Some(None),
            value => get(value).map(Some),
        }
    }
}

/// Stores `value` in `field`; `None` (and `field` untouched) if there is no value.
fn set<T>(field: &mut T, value: Option<T>) -> Option<()> {
    *field = value?;
    Some(())
}

const DURABILITY_WORDS: &[&str] = &["relaxed", "strict"];

const ANONYMOUS_WORDS: &[&str] = &["none", "read", "read-write"];

fn anonymous(word: &str) -> Option<Anonymous> {
    match word {
        "none" => Some(Anonymous::None),
        "read" => Some(Anonymous::Read),
        "read-write" => Some(Anonymous::ReadWrite),
        _ => None,
    }
}

fn durability(word: &str) -> Option<Durability> {
    match word {
        "relaxed" => Some(Durability::Relaxed),
        "strict" => Some(Durability::Strict),
        _ => None,
    }
}

const TIER_KINDS: &[&str] = &["s3", "gcs", "azure", "http"];

fn tier_kind(word: &str) -> Option<TierKind> {
    match word {
        "s3" => Some(TierKind::S3),
        "gcs" => Some(TierKind::Gcs),
        "azure" => Some(TierKind::Azure),
        "http" => Some(TierKind::Http),
        _ => None,
    }
}

const TIER_WRITE_WORDS: &[&str] = &["behind", "through"];

fn tier_write(word: &str) -> Option<TierWrite> {
    match word {
        "behind" => Some(TierWrite::Behind),
        "through" => Some(TierWrite::Through),
        _ => None,
    }
}

/// Shards and executors: at most this many (more than any machine this runs on has cores).
const CORES_MAX: u64 = 1024;

/// Every setting, in the order `tessera config` and `--help` list them.
#[rustfmt::skip]
pub const SETTINGS: &[Setting] = &[
    Setting { key: "listen", default: "127.0.0.1:8080", kind: Kind::Address,
        help: "address for HTTP/1.1, S3 and h2c gRPC (HTTP/2 preface sniffed)",
        store: |c, v| set(&mut c.listen, v.address()) },
    Setting { key: "grpc_listen", default: "", kind: Kind::Address,
        help: "extra address that serves only gRPC (unset: none)",
        store: |c, v| set(&mut c.grpc_listen, v.optional(Parsed::address)) },
    Setting { key: "data", default: "./tessera-data", kind: Kind::Path,
        help: "data directory (manifest, shard-N/ segments and checkpoints)",
        store: |c, v| set(&mut c.data, v.path()) },
    Setting { key: "max_size", default: "10GiB", kind: Kind::Size,
        help: "byte budget of the cache, split evenly across shards; the oldest segment is evicted whole",
        store: |c, v| set(&mut c.max_size_bytes, v.bytes()) },
    Setting { key: "max_blob_size", default: "1GiB", kind: Kind::Size,
        help: "largest blob; a larger Content-Length is refused with 413 before the body is read \
               (the default shrinks to half a shard's budget)",
        store: |c, v| set(&mut c.max_blob_bytes, v.bytes()) },
    Setting { key: "segment_size", default: "64MiB", kind: Kind::Size,
        help: "size of one preallocated log segment",
        store: |c, v| set(&mut c.segment_bytes, v.bytes()) },
    Setting { key: "shards", default: "", kind: Kind::Count { min: 1, max: CORES_MAX },
        help: "shard count of a new data directory; an existing one keeps its own (unset: one per executor)",
        store: |c, v| set(&mut c.shards, v.optional(Parsed::count)) },
    Setting { key: "executors", default: "", kind: Kind::Count { min: 1, max: CORES_MAX },
        help: "pinned executor threads (unset: one per CPU in the affinity mask, see taskset and CPUAffinity=)",
        store: |c, v| set(&mut c.executors, v.optional(Parsed::count)) },
    Setting { key: "max_connections", default: "10000", kind: Kind::Count { min: 1, max: u32::MAX as u64 },
        help: "open client connections; one more gets 503 and is closed",
        store: |c, v| set(&mut c.max_connections, v.count()) },
    Setting { key: "durability", default: "relaxed", kind: Kind::Choice(DURABILITY_WORDS),
        help: "relaxed: acknowledged puts survive kill -9, a power loss costs at most sync_interval; \
               strict: sync before acknowledging",
        store: |c, v| set(&mut c.durability, v.word().and_then(durability)) },
    Setting { key: "sync_interval", default: "1s", kind: Kind::Duration,
        help: "longest time between fdatasyncs in relaxed mode",
        store: |c, v| set(&mut c.sync_interval, v.duration()) },
    Setting { key: "checkpoint_interval", default: "30s", kind: Kind::Duration,
        help: "how often each shard's index is checkpointed (restart replays only the tail)",
        store: |c, v| set(&mut c.checkpoint_interval, v.duration()) },
    Setting { key: "header_read_timeout", default: "10s", kind: Kind::Duration,
        help: "a request head must arrive within this (408)",
        store: |c, v| set(&mut c.header_read_timeout, v.duration()) },
    Setting { key: "idle_timeout", default: "120s", kind: Kind::Duration,
        help: "an idle keep-alive connection is closed after this",
        store: |c, v| set(&mut c.idle_timeout, v.duration()) },
    Setting { key: "body_stall_timeout", default: "30s", kind: Kind::Duration,
        help: "an upload that sends nothing for this long is dropped (nothing stored)",
        store: |c, v| set(&mut c.body_stall_timeout, v.duration()) },
    Setting { key: "write_stall_timeout", default: "30s", kind: Kind::Duration,
        help: "a client that reads nothing of a response for this long is dropped",
        store: |c, v| set(&mut c.write_stall_timeout, v.duration()) },
    Setting { key: "drain_timeout", default: "30s", kind: Kind::Duration,
        help: "on SIGTERM, how long in-flight requests may take",
        store: |c, v| set(&mut c.drain_timeout, v.duration()) },
    Setting { key: "drain_delay", default: "0s", kind: Kind::Duration,
        help: "on SIGTERM, how long /ready answers 503 while everything else keeps serving, before the drain starts",
        store: |c, v| set(&mut c.drain_delay, v.duration()) },
    Setting { key: "bazel_http_blake3", default: "false", kind: Kind::Bool,
        help: "treat 64-hex Bazel HTTP keys as BLAKE3 instead of SHA-256",
        store: |c, v| set(&mut c.bazel_http_blake3, v.bool()) },
    Setting { key: "log", default: "info", kind: Kind::Text,
        help: "log filter (tracing EnvFilter syntax, e.g. tessera=debug), to stderr",
        store: |c, v| set(&mut c.log, v.text()) },
    Setting { key: "s3.listen", default: "", kind: Kind::Address,
        help: "extra address that serves only S3 (anonymous and virtual-hosted clients; unset: none)",
        store: |c, v| set(&mut c.s3.listen, v.optional(Parsed::address)) },
    Setting { key: "s3.buckets", default: "", kind: Kind::BucketList,
        help: "S3 buckets that exist from the start (sccache never creates its bucket)",
        store: |c, v| set(&mut c.s3.buckets, v.list()) },
    Setting { key: "s3.domain", default: "", kind: Kind::Domain,
        help: "domain of virtual-hosted-style S3 requests (BUCKET.DOMAIN; unset: path style only)",
        store: |c, v| set(&mut c.s3.domain, v.optional(Parsed::text)) },
    Setting { key: "log_format", default: "text", kind: Kind::Choice(crate::logging::LOG_FORMATS),
        help: "text for people, json (one object per line, request id in `span`) for log shippers",
        store: |c, v| set(&mut c.log_format, v.word().map(str::to_owned)) },
    Setting { key: "mount_defaults", default: "true", kind: Kind::Bool,
        help: "keep the built-in mount table (false: only the file's [[mount]] entries)",
        store: |c, v| set(&mut c.mount_defaults, v.bool()) },
    Setting { key: "tier.kind", default: "s3", kind: Kind::Choice(TIER_KINDS),
        help: "object-store tier: s3 (any S3-compatible store), gcs (Google Cloud Storage), azure (Azure Blob) or http (another Tessera or bazel-remote)",
        store: |c, v| set(&mut c.tier.kind, v.word().and_then(tier_kind)) },
    Setting { key: "tier.endpoint", default: "", kind: Kind::Text,
        help: "S3 endpoint URL, e.g. http://127.0.0.1:8333 (unset: AWS for the region); gcs/azure: the service's base URL (an emulator; unset: the public service)",
        store: |c, v| set(&mut c.tier.endpoint, v.optional(Parsed::text)) },
    Setting { key: "tier.region", default: "us-east-1", kind: Kind::Text,
        help: "S3 region",
        store: |c, v| set(&mut c.tier.region, v.text()) },
    Setting { key: "tier.bucket", default: "", kind: Kind::Text,
        help: "bucket of the tier (azure: the container; unset, with no tier.url: no tier at all)",
        store: |c, v| set(&mut c.tier.bucket, v.optional(Parsed::text)) },
    Setting { key: "tier.prefix", default: "", kind: Kind::Text,
        help: "key prefix inside the bucket (bazel-remote's --s3.prefix)",
        store: |c, v| set(&mut c.tier.prefix, v.optional(Parsed::text).map(Option::unwrap_or_default)) },
    Setting { key: "tier.access_key", default: "", kind: Kind::Text,
        help: "S3 access key id (unset: AWS_ACCESS_KEY_ID and the usual AWS sources)",
        store: |c, v| set(&mut c.tier.access_key, v.optional(Parsed::text)) },
    Setting { key: "tier.secret_key", default: "", kind: Kind::Secret,
        help: "S3 secret access key (unset: AWS_SECRET_ACCESS_KEY and the usual AWS sources)",
        store: |c, v| set(&mut c.tier.secret_key, v.optional(Parsed::text)) },
    Setting { key: "tier.virtual_host_style", default: "false", kind: Kind::Bool,
        help: "virtual-host-style S3 requests (bucket in the host name) instead of path style",
        store: |c, v| set(&mut c.tier.virtual_host_style, v.bool()) },
    Setting { key: "tier.url", default: "", kind: Kind::Text,
        help: "kind = http: base URL of the next cache level (another Tessera, bazel-remote)",
        store: |c, v| set(&mut c.tier.url, v.optional(Parsed::text)) },
    Setting { key: "tier.credentials", default: "", kind: Kind::Text,
        help: "kind = gcs: service-account JSON file (unset: GOOGLE_SERVICE_ACCOUNT, GOOGLE_APPLICATION_CREDENTIALS, the usual Google sources)",
        store: |c, v| set(&mut c.tier.credentials, v.optional(Parsed::text)) },
    Setting { key: "tier.account", default: "", kind: Kind::Text,
        help: "kind = azure: storage account name (unset: AZURE_STORAGE_ACCOUNT_NAME)",
        store: |c, v| set(&mut c.tier.account, v.optional(Parsed::text)) },
    Setting { key: "tier.account_key", default: "", kind: Kind::Secret,
        help: "kind = azure: storage account access key (unset: AZURE_STORAGE_ACCOUNT_KEY and the usual Azure sources)",
        store: |c, v| set(&mut c.tier.account_key, v.optional(Parsed::text)) },
    Setting { key: "tier.write", default: "behind", kind: Kind::Choice(TIER_WRITE_WORDS),
        help: "behind: acknowledge after the local commit, upload in the background; \
               through: acknowledge after the tier has the object",
        store: |c, v| set(&mut c.tier.write, v.word().and_then(tier_write)) },
    Setting { key: "tier.queue", default: "4096", kind: Kind::Count { min: 1, max: 1 << 20 },
        help: "uploads queued for the tier's thread (more wait on their executor; every owed upload is journaled)",
        store: |c, v| set(&mut c.tier.queue, v.count()) },
    Setting { key: "tier.uploads", default: "64", kind: Kind::Count { min: 1, max: UPLOADS_IN_FLIGHT_MAX as u64 },
        help: "uploads the tier's thread runs at once (the drain rate is about this divided by the object store's PUT latency)",
        store: |c, v| set(&mut c.tier.uploads, v.count()) },
    Setting { key: "auth.public_keys", default: "", kind: Kind::Path,
        help: "directory of trusted Ed25519 public keys, `KID.pub` (SPKI PEM); reloaded on change and SIGHUP",
        store: |c, v| set(&mut c.auth.public_keys, v.optional(Parsed::path)) },
    Setting { key: "auth.jwks", default: "", kind: Kind::Path,
        help: "JWKS file of trusted Ed25519 public keys (OKP, crv Ed25519, kid); reloaded on change and SIGHUP",
        store: |c, v| set(&mut c.auth.jwks, v.optional(Parsed::path)) },
    Setting { key: "auth.revoked", default: "", kind: Kind::Path,
        help: "revoked token ids, one `jti` a line; reloaded on change and SIGHUP",
        store: |c, v| set(&mut c.auth.revoked, v.optional(Parsed::path)) },
    Setting { key: "auth.audience", default: "", kind: Kind::Text,
        help: "when set, a token's `aud` must contain it",
        store: |c, v| set(&mut c.auth.audience, v.optional(Parsed::text)) },
    Setting { key: "auth.anonymous", default: "", kind: Kind::Choice(ANONYMOUS_WORDS),
        help: "what a request without a token may do (unset: read-write with no keys, only on \
               loopback addresses; none with keys)",
        store: |c, v| set(&mut c.auth.anonymous, v.optional(|v| v.word().and_then(anonymous))) },
    Setting { key: "auth.public_metrics", default: "false", kind: Kind::Bool,
        help: "serve /metrics without an admin token",
        store: |c, v| set(&mut c.auth.public_metrics, v.bool()) },
    Setting { key: "auth.rate", default: "", kind: Kind::Rate,
        help: "requests each subject (token `sub`, or anonymous) may make, process-wide; over it: 429 with \
               Retry-After, RESOURCE_EXHAUSTED (unset: unlimited)",
        store: |c, v| set(&mut c.auth.rate, v.optional(Parsed::rate)) },
    Setting { key: "auth.burst", default: "", kind: Kind::Count { min: 1, max: 1_000_000_000 },
        help: "requests a subject may make at once above auth.rate (unset: one second's worth)",
        store: |c, v| set(&mut c.auth.burst, v.optional(Parsed::count)) },
    Setting { key: "auth.s3_secret", default: "", kind: Kind::Path,
        help: "server secret of token S3 credentials, `tessera token --s3` (unset: s3.secret in \
               auth.public_keys, when there)",
        store: |c, v| set(&mut c.auth.s3_secret, v.optional(Parsed::path)) },
    Setting { key: "audit_log", default: "", kind: Kind::Path,
        help: "file that gets one JSON line per write and per refusal (unset: none)",
        store: |c, v| set(&mut c.auth.audit_log, v.optional(Parsed::path)) },
    Setting { key: "tls_cert", default: "", kind: Kind::Path,
        help: "PEM certificate chain: TLS on every port beside plaintext (a ClientHello is \
               recognised); reloaded on SIGHUP",
        store: |c, v| set(&mut c.tls.cert, v.optional(Parsed::path)) },
    Setting { key: "tls_key", default: "", kind: Kind::Path,
        help: "PEM private key of tls_cert (PKCS#8, RSA or EC); reloaded on SIGHUP",
        store: |c, v| set(&mut c.tls.key, v.optional(Parsed::path)) },
    Setting { key: "tls_client_ca", default: "", kind: Kind::Path,
        help: "PEM bundle of CAs whose client certificates are verified (optional: a client \
               without one may still use a token); see [[auth.client_cert]]",
        store: |c, v| set(&mut c.tls.client_ca, v.optional(Parsed::path)) },
    Setting { key: "tls_required", default: "false", kind: Kind::Bool,
        help: "refuse plaintext connections (426 on HTTP/1.1) once tls_cert is set",
        store: |c, v| set(&mut c.tls.required, v.bool()) },
];

/// An array of tables that only the config file can give (`[[mount]]`): its entries have
/// several fields each, which no flat variable or flag spells well.
pub struct FileOnlyArray {
    /// The dotted key of the array: `mount` for `[[mount]]`, `s3.keys` for `[[s3.keys]]`.
    pub key: &'static str,
    /// One line for the README and `tessera config`.
    pub help: &'static str,
}

/// Every file-only array of tables.
pub const FILE_ONLY_ARRAYS: &[FileOnlyArray] = &[
    FileOnlyArray {
        key: "mount",
        help: "front-end mount table: prefix, protocol, optional namespace (see `config::mount`)",
    },
    FileOnlyArray {
        key: "auth.read_through",
        help: "read-through namespaces: `namespace` glob and the `from` namespaces its misses \
               fall back to on reads (see `config::auth`)",
    },
    FileOnlyArray {
        key: "s3.keys",
        help:
            "S3 credentials: access_key, secret_key, and the bucket globs it may `read` and `write`",
    },
    FileOnlyArray {
        key: "auth.client_cert",
        help: "TLS client certificates: the verified `subject` (RFC 4514, `CN=ci,O=Example`) and \
               the namespace globs it may `read` and `write`, and `admin` (see `config::tls`)",
    },
];

/// The declaration of `key` in `settings`.
pub fn find<'a>(settings: &'a [Setting], key: &str) -> Option<(usize, &'a Setting)> {
    settings.iter().enumerate().find(|(_, s)| s.key == key)
}

/// The default of the setting `key` (for options outside the layered settings, such as
/// `tessera verify --data`, that must agree with it).
///
/// # Panics
/// If `key` is not declared: a programmer error, caught by any test that runs the caller.
pub fn default_of(key: &str) -> &'static str {
    match find(SETTINGS, key) {
        Some((_, setting)) => setting.default,
        None => panic!("`{key}` is not a declared setting"),
    }
}
