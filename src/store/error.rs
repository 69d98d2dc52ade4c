//! The store's one error type.

use std::fmt;
use std::path::PathBuf;

/// Everything a store operation can fail with. Front-ends map these to their client's status codes
/// in one place (`NoSpace` → 507 / RESOURCE_EXHAUSTED, `TooLarge` → 413, `DigestMismatch` → 400 …).
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// A body longer than the configured `max_blob_bytes`.
    TooLarge { len: u64, max: u64 },
    /// No room even after evicting everything that may be evicted: the shard's budget is used up,
    /// or its filesystem is full (`ENOSPC`/`EDQUOT` are reported as this, never as `Io`).
    NoSpace { needed: u64, available: u64 },
    /// CAS content does not hash to its name.
    DigestMismatch { expected: String, actual: String },
    /// A reservation was committed before all of its body was written.
    Truncated { written: u64, expected: u64 },
    /// A write went past the reserved body length.
    Overflow { len: u64, reserved: u64 },
    /// Damaged on-disk state that cannot be stepped over.
    Corrupt { what: String },
    /// An operating-system call failed.
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The data directory was created with another shard count.
    ShardCountMismatch { on_disk: u32, requested: u32 },
    /// The data directory was written by a newer Tessera.
    FormatTooNew { on_disk: u32, supported: u32 },
    /// A configuration value is out of range.
    Config {
        setting: &'static str,
        reason: String,
    },
    /// The metadata section would exceed `META_BYTES_MAX`, or a name is invalid.
    MetaTooLarge { len: usize, max: usize },
    /// The caller broke the API contract (e.g. a reservation handed to the wrong shard).
    InvalidRequest { what: &'static str },
    /// The shard directory is locked by another process.
    Locked { path: PathBuf },
    /// Too many reservations are open in this shard (`RESERVATIONS_PENDING_MAX`).
    TooManyReservations { max: usize },
    /// The shard's namespace table holds `NAMESPACES_PER_SHARD_MAX` names: a put in a new
    /// namespace is refused (puts in known namespaces go on).
    NamespaceTableFull { max: usize },
    /// A namespace name longer than the store records (`NAMESPACE_NAME_BYTES_MAX`).
    NamespaceTooLong { len: usize, max: usize },
    /// An `if_absent` put found its key already stored (another writer committed first).
    Exists,
    /// The shard cannot answer now (its owner executor stopped or the server is stopping).
    Unavailable { what: &'static str },
    /// Refused by the authorization layer: no acceptable credential (none where one is
    /// required, or one that does not verify). `reason` is the metrics label.
    Unauthenticated {
        reason: &'static str,
        message: String,
    },
    /// Refused by the authorization layer: the credential is valid but does not grant `access`
    /// (`read`, `write`, `admin`) on `namespace`.
    PermissionDenied {
        subject: String,
        access: &'static str,
        namespace: String,
    },
    /// Refused by the authorization layer: `subject` is over `auth.rate`; one more request is
    /// allowed after `retry_after`.
    RateLimited {
        subject: String,
        retry_after: std::time::Duration,
    },
}

impl StoreError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StoreError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(what: impl Into<String>) -> Self {
        StoreError::Corrupt { what: what.into() }
    }

    /// An operating-system error of a call that takes disk space (creating, extending or
    /// writing a file): a full filesystem or an exhausted quota (`ENOSPC`, `EDQUOT`) is
    /// `NoSpace` for `needed` bytes, anything else `Io`. The path and the OS error are logged
    /// here, because `NoSpace` carries neither (it reaches clients).
    pub(crate) fn io_or_no_space(
        op: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
        needed: u64,
    ) -> Self {
        if !super::space::is_out_of_space(&source) {
            return StoreError::io(op, path, source);
        }
        let path = path.into();
        tracing::warn!(op, path = %path.display(), error = %source, needed, "filesystem full");
        StoreError::NoSpace {
            needed,
            available: 0,
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::TooLarge { len, max } => {
                write!(
                    f,
                    "blob of {len} bytes exceeds the limit of {max} bytes (max_blob_size)"
                )
            }
            StoreError::NoSpace { needed, available } => write!(
                f,
                "no space: {needed} bytes needed, {available} bytes can be made free in this shard"
            ),
            StoreError::DigestMismatch { expected, actual } => {
                write!(
                    f,
                    "content digest mismatch: expected {expected}, got {actual}"
                )
            }
            StoreError::Truncated { written, expected } => {
                write!(f, "body truncated: {written} of {expected} bytes written")
            }
            StoreError::Overflow { len, reserved } => {
                write!(
                    f,
                    "write past the reservation: {len} bytes into a {reserved}-byte body"
                )
            }
            StoreError::Corrupt { what } => write!(f, "corrupt store data: {what}"),
            StoreError::Io { op, path, source } => {
                write!(f, "{op} {}: {source}", path.display())
            }
            StoreError::ShardCountMismatch { on_disk, requested } => write!(
                f,
                "the data directory has {on_disk} shards but {requested} were requested; \
                 start with shards = {on_disk} or use a new data directory"
            ),
            StoreError::FormatTooNew { on_disk, supported } => write!(
                f,
                "the data directory has format version {on_disk}, this build supports up to \
                 {supported}; upgrade Tessera"
            ),
            StoreError::Config { setting, reason } => write!(f, "invalid {setting}: {reason}"),
            StoreError::Unavailable { what } => write!(f, "store unavailable: {what}"),
            StoreError::Exists => f.write_str("an entry with this key is already stored"),
            StoreError::MetaTooLarge { len, max } => {
                write!(
                    f,
                    "metadata of {len} bytes exceeds the limit of {max} bytes"
                )
            }
            StoreError::InvalidRequest { what } => write!(f, "invalid store request: {what}"),
            StoreError::TooManyReservations { max } => {
                write!(
                    f,
                    "too many uploads in progress in this shard (limit {max})"
                )
            }
            StoreError::NamespaceTableFull { max } => write!(
                f,
                "this shard already stores {max} namespaces, its limit: no new namespace \
                 can be added (purge unused ones)"
            ),
            StoreError::NamespaceTooLong { len, max } => write!(
                f,
                "a namespace name of {len} bytes is longer than the store records ({max})"
            ),
            StoreError::Unauthenticated { message, .. } => {
                write!(f, "authentication required: {message}")
            }
            StoreError::PermissionDenied {
                subject,
                access,
                namespace,
            } => write!(
                f,
                "{subject} may not {access} namespace {namespace:?} (the token's scopes do not \
                 cover it)"
            ),
            StoreError::RateLimited {
                subject,
                retry_after,
            } => write!(
                f,
                "{subject} is over its request rate (auth.rate); retry in {} ms",
                retry_after.as_millis().max(1)
            ),
            StoreError::Locked { path } => write!(
                f,
                "{} is in use by another Tessera process (lock held)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
