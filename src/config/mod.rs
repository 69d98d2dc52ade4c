//! Configuration: a TOML file, overridden by `TESSERA_*` environment variables, overridden by
//! command-line flags. Everything is validated once at start; an error names the setting, the
//! offending value and where it came from.
//!
//! Principal types:
//! - [`SETTINGS`]: one [`Setting`] declaration per setting. It yields the file key, the
//!   environment variable and the flag, so the three cannot drift apart.
//! - [`Layers`]: the raw value of every setting and the layer it came from, built up layer by
//!   layer, then [`Layers::validate`]d into a [`Config`].
//! - [`Config`]: what the server reads, including the effective mount table ([`MountConfig`]).
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! data = "/var/lib/tessera"
//! max_size = "200GiB"
//! max_blob_size = "4GiB"
//!
//! [[mount]]                     # file-only: arrays of tables have no variable or flag
//! prefix = "/gradle-cache/"
//! protocol = "gradle"
//! ```
//!
//! `max_blob_size` in the file is `TESSERA_MAX_BLOB_SIZE` in the environment and
//! `--max-blob-size` on the command line; a nested `s3.listen` (`[s3]` table, `listen` key) is
//! `TESSERA_S3_LISTEN` and `--s3-listen`.
//!
//! ```
//! use tessera::config::Layers;
//! let mut layers = Layers::with_defaults();
//! layers.apply_toml("max_size = \"20GiB\"").unwrap();
//! layers.apply_env([("TESSERA_MAX_SIZE".to_string(), "30GiB".to_string())]);
//! let config = layers.validate().unwrap();
//! assert_eq!(config.max_size_bytes, 30 << 30);
//! ```
//!
//! Unknown keys in the file and unknown flags stop start-up. Unknown `TESSERA_*` variables only
//! get a warning: the prefix is shared with test and tool variables (`TESSERA_SKIP_REAL_CLIENTS`).

pub mod auth;
mod flags;
pub mod mount;
mod report;
pub mod s3;
mod settings;
pub mod tls;
mod units;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::store::{Durability, StoreConfig};

pub use auth::{Anonymous, AuthConfig, ReadThrough};
pub use flags::{add_flags, SettingFlags};
pub use mount::{MountConfig, MountProtocol};
pub use s3::{S3Config, S3KeyConfig};

/// Settings that were removed, with what replaces them: refused with that message.
pub const REPLACED_SETTINGS: &[(&str, &str)] = &[(
    "s3.anonymous",
    "auth.anonymous governs S3 as every other protocol; set auth.anonymous = \"read-write\" \
     (or \"read\") instead",
)];
pub use settings::{
    default_of, FileOnlyArray, Kind, Setting, ENV_PREFIX, FILE_ONLY_ARRAYS, SETTINGS,
};
pub use tls::{ClientCertConfig, TlsConfig};
pub use units::{format_size, parse_bool, parse_duration, parse_rate, parse_size, RequestRate};

/// Where a setting's value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Default,
    File,
    Env,
    Flag,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Default => "the default",
            Source::File => "the config file",
            Source::Env => "the environment",
            Source::Flag => "the command line",
        })
    }
}

/// A configuration error: names the setting and says what is wrong with which value.
#[derive(Debug)]
pub struct ConfigError {
    pub setting: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "setting `{}`: {}", self.setting, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// The validated configuration of `tessera serve`.
#[derive(Clone, Debug)]
pub struct Config {
    /// The one port for HTTP/1.1, S3 and h2c gRPC (preface sniffed).
    pub listen: SocketAddr,
    /// Optional extra listener that serves only gRPC.
    pub grpc_listen: Option<SocketAddr>,
    pub data: PathBuf,
    /// Total byte budget of the log, split evenly across shards.
    pub max_size_bytes: u64,
    pub max_blob_bytes: u64,
    /// Whether `max_blob_size` was set by the operator (a default is lowered to fit the budget
    /// instead of being an error).
    pub max_blob_explicit: bool,
    pub segment_bytes: u64,
    /// Shard count for a new data directory; an existing one keeps the count it was created with.
    pub shards: Option<u32>,
    /// Executors (one per core, pinned). Default: one per CPU in the process affinity mask.
    pub executors: Option<usize>,
    pub max_connections: usize,
    pub durability: Durability,
    pub sync_interval: Duration,
    pub checkpoint_interval: Duration,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_stall_timeout: Duration,
    /// A client that reads none of a response for this long is dropped.
    pub write_stall_timeout: Duration,
    pub drain_timeout: Duration,
    /// On SIGTERM, how long `/ready` answers 503 before the drain starts.
    pub drain_delay: Duration,
    /// Accept BLAKE3 64-hex keys on the Bazel HTTP cache (`/cas/<hash>` with no function in the
    /// path is ambiguous; SHA-256 is assumed unless this is set).
    pub bazel_http_blake3: bool,
    pub log: String,
    /// `text` or `json` (`logging::LOG_FORMATS`).
    pub log_format: String,
    /// Whether [`Config::mounts`] starts with the built-in table ([`mount::BUILT_IN_MOUNTS`]).
    pub mount_defaults: bool,
    /// The effective mount table: the built-in mounts unless `mount_defaults` is false, then the
    /// file's `[[mount]]` entries in order. No two share a prefix.
    pub mounts: Vec<MountConfig>,
    /// The `[tier]` table; the layer exists only when [`TierConfig::enabled`].
    pub tier: crate::tier::TierConfig,
    /// The S3 endpoint: extra port, buckets, domain, anonymous mode and keys.
    pub s3: S3Config,
    /// Every declared setting's key and winning raw value, in declaration order: what a
    /// reload compares, so a new setting needs no second list.
    pub values: Vec<(&'static str, String)>,
    /// Who may read and write (`[auth]`, `[[auth.read_through]]`, `[[auth.client_cert]]`).
    pub auth: AuthConfig,
    /// TLS beside plaintext on every port (`tls_cert`, `tls_key`, `tls_client_ca`,
    /// `tls_required`).
    pub tls: TlsConfig,
}

impl Config {
    /// A configuration whose every field is about to be overwritten by [`Layers::validate`] (each
    /// field is filled by a setting, a default included).
    fn unfilled() -> Config {
        Config {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            grpc_listen: None,
            data: PathBuf::new(),
            max_size_bytes: 0,
            max_blob_bytes: 0,
            max_blob_explicit: false,
            segment_bytes: 0,
            shards: None,
            executors: None,
            max_connections: 0,
            durability: Durability::Relaxed,
            sync_interval: Duration::ZERO,
            checkpoint_interval: Duration::ZERO,
            header_read_timeout: Duration::ZERO,
            idle_timeout: Duration::ZERO,
            body_stall_timeout: Duration::ZERO,
            write_stall_timeout: Duration::ZERO,
            drain_timeout: Duration::ZERO,
            drain_delay: Duration::ZERO,
            bazel_http_blake3: false,
            log: String::new(),
            log_format: String::new(),
            mount_defaults: false,
            mounts: Vec::new(),
            tier: crate::tier::TierConfig::default(),
            s3: S3Config::default(),
            values: Vec::new(),
            auth: AuthConfig::default(),
            tls: TlsConfig::default(),
        }
    }
}

/// Raw layered values before validation: the winning value of every declared setting and the
/// layer it came from, plus the file-only arrays of tables.
#[derive(Debug, Clone)]
pub struct Layers {
    settings: &'static [Setting],
    /// `values[i]` belongs to `settings[i]`.
    values: Vec<(String, Source)>,
    /// The config file's path, once one is applied (for messages).
    file: Option<String>,
    /// The file's arrays of tables by key (`mount` → its `[[mount]]` entries, in order).
    arrays: BTreeMap<&'static str, Vec<toml::Value>>,
}

impl Layers {
    /// Every setting at its default.
    pub fn with_defaults() -> Self {
        Layers::with_settings(SETTINGS)
    }

    fn with_settings(settings: &'static [Setting]) -> Self {
        Layers {
            settings,
            values: settings
                .iter()
                .map(|s| (s.default.to_string(), Source::Default))
                .collect(),
            file: None,
            arrays: BTreeMap::new(),
        }
    }

    /// Reads and applies the TOML file at `path`.
    pub fn apply_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            setting: "config".into(),
            message: format!("cannot read the config file {}: {e}", path.display()),
        })?;
        self.file = Some(path.display().to_string());
        self.apply_toml(&text)
    }

    /// Applies a TOML document. Tables nest settings (`[s3]` `listen` is `s3.listen`); unknown
    /// keys and tables are an error (a typo must not be ignored).
    pub fn apply_toml(&mut self, text: &str) -> Result<(), ConfigError> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| ConfigError {
            setting: "config file".into(),
            message: format!(
                "{} is not valid TOML: {}",
                self.file.as_deref().unwrap_or("it"),
                e.message()
            ),
        })?;
        self.apply_table(None, table)
    }

    fn apply_table(&mut self, prefix: Option<&str>, table: toml::Table) -> Result<(), ConfigError> {
        for (name, value) in table {
            let key = match prefix {
                Some(prefix) => format!("{prefix}.{name}"),
                None => name,
            };
            if let Some((index, setting)) = settings::find(self.settings, &key) {
                let text = match (setting.kind, value) {
                    (Kind::BucketList, toml::Value::Array(items)) => list_text(&key, items)?,
                    (_, value) => scalar_text(&key, value)?,
                };
                self.values[index] = (text, Source::File);
            } else if let Some(array) = FILE_ONLY_ARRAYS.iter().find(|a| a.key == key) {
                let toml::Value::Array(entries) = value else {
                    return Err(ConfigError {
                        message: format!("expected `[[{key}]]` tables, got {value}"),
                        setting: key,
                    });
                };
                if let Some(entry) = entries.iter().find(|e| !e.is_table()) {
                    return Err(ConfigError {
                        message: format!("expected `[[{key}]]` tables, got {entry}"),
                        setting: key,
                    });
                }
                self.arrays.entry(array.key).or_default().extend(entries);
            } else if self.is_table(&key) {
                let toml::Value::Table(inner) = value else {
                    return Err(ConfigError {
                        message: format!("expected a `[{key}]` table, got {value}"),
                        setting: key,
                    });
                };
                self.apply_table(Some(&key), inner)?;
            } else {
                return Err(self.unknown(&key, Source::File));
            }
        }
        Ok(())
    }

    /// Whether `key` is a table of nested settings (`s3` when `s3.listen` is declared).
    fn is_table(&self, key: &str) -> bool {
        let nested = |declared: &str| {
            declared
                .strip_prefix(key)
                .is_some_and(|rest| rest.starts_with('.'))
        };
        self.settings.iter().any(|s| nested(s.key))
            || FILE_ONLY_ARRAYS.iter().any(|a| nested(a.key))
    }

    fn unknown(&self, key: &str, source: Source) -> ConfigError {
        if let Some((_, instead)) = REPLACED_SETTINGS.iter().find(|(old, _)| *old == key) {
            return ConfigError {
                setting: key.into(),
                message: format!("this setting was removed: {instead}"),
            };
        }
        let mut known: Vec<String> = self.settings.iter().map(|s| s.key.to_string()).collect();
        known.extend(FILE_ONLY_ARRAYS.iter().map(|a| format!("[[{}]]", a.key)));
        let location = match (source, &self.file) {
            (Source::File, Some(path)) => format!("the config file {path}"),
            _ => source.to_string(),
        };
        ConfigError {
            setting: key.into(),
            message: format!("unknown setting in {location}; known: {}", known.join(", ")),
        }
    }

    /// Applies `TESSERA_<SETTING>` variables from an iterator of (name, value). Returns the
    /// `TESSERA_*` names that are not settings, for a warning: a typo must not pass unnoticed,
    /// but the prefix is shared with test and tool variables, so it is not an error.
    pub fn apply_env(&mut self, vars: impl IntoIterator<Item = (String, String)>) -> Vec<String> {
        let mut unknown = Vec::new();
        for (var, value) in vars {
            if !var.starts_with(ENV_PREFIX) {
                continue;
            }
            match self.settings.iter().position(|s| s.env_var() == var) {
                Some(index) => self.values[index] = (value, Source::Env),
                None => unknown.push(var),
            }
        }
        unknown
    }

    /// Applies one command-line flag value; `name` is the setting's key (`max_size`).
    pub fn apply_flag(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        let Some((index, _)) = settings::find(self.settings, name) else {
            return Err(self.unknown(name, Source::Flag));
        };
        self.values[index] = (value.to_string(), Source::Flag);
        Ok(())
    }

    /// Applies every flag given on the command line.
    pub fn apply_flags(&mut self, flags: &SettingFlags) -> Result<(), ConfigError> {
        for (name, value) in flags.values() {
            self.apply_flag(name, value)?;
        }
        Ok(())
    }

    /// The raw value of setting `key` and where it came from; `None` if `key` is not declared.
    pub fn get(&self, key: &str) -> Option<(&str, Source)> {
        let (index, _) = settings::find(self.settings, key)?;
        let (value, source) = &self.values[index];
        Some((value.as_str(), *source))
    }

    /// Where `settings[index]`'s value came from, precisely: which file, variable or flag.
    fn origin(&self, index: usize) -> String {
        let setting = &self.settings[index];
        match self.values[index].1 {
            Source::Default => "the default".into(),
            Source::File => match &self.file {
                Some(path) => format!("the config file {path}"),
                None => "the config file".into(),
            },
            Source::Env => format!("the environment variable {}", setting.env_var()),
            Source::Flag => format!("the command line (--{})", setting.flag()),
        }
    }

    /// Validates every setting and their relationships.
    pub fn validate(&self) -> Result<Config, ConfigError> {
        let mut config = Config::unfilled();
        for (index, setting) in self.settings.iter().enumerate() {
            let value = &self.values[index].0;
            let stored = setting
                .kind
                .parse(value)
                .and_then(|parsed| (setting.store)(&mut config, parsed));
            if stored.is_none() {
                return Err(ConfigError {
                    setting: setting.key.into(),
                    message: format!(
                        "`{value}` from {} is not {}",
                        self.origin(index),
                        setting.kind.expected()
                    ),
                });
            }
        }
        config.values = self
            .settings
            .iter()
            .zip(&self.values)
            .map(|(setting, (value, _))| (setting.key, value.clone()))
            .collect();
        config.max_blob_explicit = self
            .get("max_blob_size")
            .is_some_and(|(_, source)| source != Source::Default);
        let mount_entries = self.arrays.get("mount").map_or(&[][..], Vec::as_slice);
        config.mounts = mount::effective_mounts(config.mount_defaults, mount_entries)?;
        let key_entries = self.arrays.get("s3.keys").map_or(&[][..], Vec::as_slice);
        config.s3.keys = s3::keys(key_entries)?;
        config.auth.s3_keys = !config.s3.keys.is_empty();
        let read_through = self.arrays.get("auth.read_through");
        config.auth.read_through = auth::read_through(read_through.map_or(&[][..], Vec::as_slice))?;
        let client_certs = self.arrays.get("auth.client_cert");
        config.auth.client_certs = tls::client_certs(client_certs.map_or(&[][..], Vec::as_slice))?;
        config.tls.check(&config.auth)?;
        let mut listening = vec![config.listen];
        listening.extend(config.grpc_listen);
        listening.extend(config.s3.listen);
        config.auth.check_exposure(&listening)?;
        config.check_budget(config.shards.unwrap_or(1))?;
        config.tier.check()?;
        Ok(config)
    }

    /// The effective configuration as TOML-like text: every setting with its value and where it
    /// came from, then the mount table (`tessera config`). `config` is `self.validate()`'s result.
    pub fn render(&self, config: &Config) -> String {
        report::render(self, config)
    }
}

/// The text of a list setting given as a TOML array: its strings joined with commas (the form a
/// variable or flag takes). Only strings without commas are accepted.
fn list_text(key: &str, items: Vec<toml::Value>) -> Result<String, ConfigError> {
    let mut words = Vec::with_capacity(items.len());
    for item in items {
        match item {
            toml::Value::String(word) if !word.contains(',') && !word.trim().is_empty() => {
                words.push(word)
            }
            other => {
                return Err(ConfigError {
                    setting: key.into(),
                    message: format!(
                        "expected an array of non-empty strings without commas, got {other}"
                    ),
                })
            }
        }
    }
    Ok(words.join(","))
}

/// The text of a scalar TOML value; tables, arrays, floats and dates are an error.
fn scalar_text(key: &str, value: toml::Value) -> Result<String, ConfigError> {
    match value {
        toml::Value::String(s) => Ok(s),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        other => Err(ConfigError {
            setting: key.into(),
            message: format!(
                "expected a string, whole number or boolean in the config file, got {other}"
            ),
        }),
    }
}

impl Config {
    /// Checks the sizes against each other for `shards` shards (the real count is known only once
    /// the data directory is open).
    pub fn check_budget(&mut self, shards: u32) -> Result<(), ConfigError> {
        let fail = |setting: &str, message: String| {
            Err(ConfigError {
                setting: setting.into(),
                message,
            })
        };
        if self.segment_bytes < 1 << 20 {
            return fail("segment_size", "must be at least 1MiB".into());
        }
        if self.max_blob_bytes == 0 {
            return fail("max_blob_size", "must be at least 1 byte".into());
        }
        let shards = u64::from(shards.max(1));
        if self.max_size_bytes / shards < 2 * self.segment_bytes {
            return fail(
                "max_size",
                format!(
                    "{} is too small: each of {shards} shard(s) needs room for at least two \
                     segments of {} (lower segment_size or raise max_size)",
                    format_size(self.max_size_bytes),
                    format_size(self.segment_bytes)
                ),
            );
        }
        let blob_room = self.max_size_bytes / shards / 2;
        if self.max_blob_bytes > blob_room && !self.max_blob_explicit {
            self.max_blob_bytes = blob_room;
        }
        if self.max_blob_bytes > blob_room {
            return fail(
                "max_blob_size",
                format!(
                    "{} exceeds half of one shard's budget ({}); such a blob could never be stored",
                    format_size(self.max_blob_bytes),
                    format_size(self.max_size_bytes / shards / 2)
                ),
            );
        }
        Ok(())
    }

    /// The store configuration for `shards` shards.
    pub fn store_config(&self, shards: u32) -> StoreConfig {
        let mut store = StoreConfig::new(self.data.clone(), shards);
        store.segment_bytes = self.segment_bytes;
        store.max_size_bytes = self.max_size_bytes;
        store.max_blob_bytes = self.max_blob_bytes;
        store.durability = self.durability;
        store.sync_interval = self.sync_interval;
        store.checkpoint_interval = self.checkpoint_interval;
        store
    }
}

#[cfg(test)]
mod tests;
