//! Configuration: a TOML file, overridden by `TESSERA_*` environment variables, overridden by
//! command-line flags. Everything is validated once at start; an error names the setting, the
//! offending value and where it came from.
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! data = "/var/lib/tessera"
//! max_size = "200GiB"
//! max_blob_size = "4GiB"
//! ```
//!
//! Every setting has the same name in all three layers: `max_blob_size` in the file is
//! `TESSERA_MAX_BLOB_SIZE` in the environment and `--max-blob-size` on the command line.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::store::{Durability, StoreConfig};

/// Where a setting's value came from, for error messages.
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
    /// Accept BLAKE3 64-hex keys on the Bazel HTTP cache (`/cas/<hash>` with no function in the
    /// path is ambiguous; SHA-256 is assumed unless this is set).
    pub bazel_http_blake3: bool,
    pub log: String,
}

/// Names and defaults of every setting, in one table so the file, the environment and the
/// flags cannot drift apart.
pub const SETTINGS: &[(&str, &str)] = &[
    ("listen", "127.0.0.1:8080"),
    ("grpc_listen", ""),
    ("data", "./tessera-data"),
    ("max_size", "10GiB"),
    ("max_blob_size", "1GiB"),
    ("segment_size", "64MiB"),
    ("shards", ""),
    ("executors", ""),
    ("max_connections", "10000"),
    ("durability", "relaxed"),
    ("sync_interval", "1s"),
    ("checkpoint_interval", "30s"),
    ("header_read_timeout", "10s"),
    ("idle_timeout", "120s"),
    ("body_stall_timeout", "30s"),
    ("write_stall_timeout", "30s"),
    ("drain_timeout", "30s"),
    ("bazel_http_blake3", "false"),
    ("log", "info"),
];

/// Raw layered values before validation: setting name → (value, source).
#[derive(Default, Debug, Clone)]
pub struct Layers {
    values: BTreeMap<String, (String, Source)>,
}

impl Layers {
    pub fn with_defaults() -> Self {
        let mut layers = Layers::default();
        for (name, value) in SETTINGS {
            layers.set(name, value, Source::Default);
        }
        layers
    }

    fn set(&mut self, name: &str, value: &str, source: Source) {
        self.values
            .insert(name.to_string(), (value.to_string(), source));
    }

    /// Applies a TOML document; unknown keys are an error (a typo must not be ignored).
    pub fn apply_toml(&mut self, text: &str) -> Result<(), ConfigError> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| ConfigError {
            setting: "config file".into(),
            message: format!("not valid TOML: {}", e.message()),
        })?;
        for (key, value) in table {
            check_known(&key, Source::File)?;
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => {
                    return Err(ConfigError {
                        setting: key,
                        message: format!("expected a string, number or boolean, got {other}"),
                    })
                }
            };
            self.set(&key, &text, Source::File);
        }
        Ok(())
    }

    /// Applies `TESSERA_<SETTING>` variables from an iterator of (name, value). Returns the
    /// `TESSERA_*` names that are not settings, for a warning: a typo must not pass unnoticed,
    /// but the prefix is shared with test and tool variables, so it is not an error.
    pub fn apply_env(&mut self, vars: impl IntoIterator<Item = (String, String)>) -> Vec<String> {
        let mut unknown = Vec::new();
        for (var, value) in vars {
            let Some(rest) = var.strip_prefix("TESSERA_") else {
                continue;
            };
            let name = rest.to_ascii_lowercase();
            if SETTINGS.iter().any(|(known, _)| *known == name) {
                self.set(&name, &value, Source::Env);
            } else {
                unknown.push(var);
            }
        }
        unknown
    }

    /// Applies one command-line flag value.
    pub fn apply_flag(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        check_known(name, Source::Flag)?;
        self.set(name, value, Source::Flag);
        Ok(())
    }

    fn get(&self, name: &str) -> (&str, Source) {
        let (value, source) = self
            .values
            .get(name)
            .expect("every setting has a default in SETTINGS");
        (value.as_str(), *source)
    }

    fn parse<T>(
        &self,
        name: &str,
        what: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<T, ConfigError> {
        let (value, source) = self.get(name);
        parse(value).ok_or_else(|| ConfigError {
            setting: name.into(),
            message: format!("`{value}` (from {source}) is not {what}"),
        })
    }

    fn optional<T>(
        &self,
        name: &str,
        what: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>, ConfigError> {
        if self.get(name).0.is_empty() {
            return Ok(None);
        }
        self.parse(name, what, parse).map(Some)
    }

    /// Validates every setting and their relationships.
    pub fn validate(&self) -> Result<Config, ConfigError> {
        let addr = |s: &str| s.parse::<SocketAddr>().ok();
        let mut config = Config {
            listen: self.parse("listen", "an address like 127.0.0.1:8080", addr)?,
            grpc_listen: self.optional("grpc_listen", "an address like 127.0.0.1:9092", addr)?,
            data: PathBuf::from(self.get("data").0),
            max_size_bytes: self.parse("max_size", "a size like 10GiB", parse_size)?,
            max_blob_bytes: self.parse("max_blob_size", "a size like 1GiB", parse_size)?,
            max_blob_explicit: self.get("max_blob_size").1 != Source::Default,
            segment_bytes: self.parse("segment_size", "a size like 64MiB", parse_size)?,
            shards: self.optional("shards", "a whole number 1..=1024", |s| {
                s.parse::<u32>().ok().filter(|n| (1..=1024).contains(n))
            })?,
            executors: self.optional("executors", "a whole number 1..=1024", |s| {
                s.parse::<usize>().ok().filter(|n| (1..=1024).contains(n))
            })?,
            max_connections: self.parse("max_connections", "a whole number ≥ 1", |s| {
                s.parse::<usize>().ok().filter(|n| *n >= 1)
            })?,
            durability: self.parse("durability", "`relaxed` or `strict`", |s| match s {
                "relaxed" => Some(Durability::Relaxed),
                "strict" => Some(Durability::Strict),
                _ => None,
            })?,
            sync_interval: self.parse("sync_interval", "a duration", parse_duration)?,
            checkpoint_interval: self.parse("checkpoint_interval", "a duration", parse_duration)?,
            header_read_timeout: self.parse("header_read_timeout", "a duration", parse_duration)?,
            idle_timeout: self.parse("idle_timeout", "a duration", parse_duration)?,
            body_stall_timeout: self.parse("body_stall_timeout", "a duration", parse_duration)?,
            write_stall_timeout: self.parse("write_stall_timeout", "a duration", parse_duration)?,
            drain_timeout: self.parse("drain_timeout", "a duration", parse_duration)?,
            bazel_http_blake3: self.parse("bazel_http_blake3", "true or false", parse_bool)?,
            log: self.get("log").0.to_string(),
        };
        config.check_budget(config.shards.unwrap_or(1))?;
        Ok(config)
    }
}

fn check_known(name: &str, source: Source) -> Result<(), ConfigError> {
    if SETTINGS.iter().any(|(known, _)| *known == name) {
        return Ok(());
    }
    let names: Vec<&str> = SETTINGS.iter().map(|(n, _)| *n).collect();
    Err(ConfigError {
        setting: name.into(),
        message: format!("unknown setting in {source}; known: {}", names.join(", ")),
    })
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

/// Parses `1234`, `10KiB`, `64MiB`, `10GiB`, `1TiB` (binary) and `10KB`, `10MB`, `10GB`, `1TB`
/// (decimal); `K`/`M`/`G`/`T` alone are binary, as in most cache tools' docs.
pub fn parse_size(text: &str) -> Option<u64> {
    let (number, unit) = split_number(text)?;
    let multiplier: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        "T" | "TiB" => 1 << 40,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        _ => return None,
    };
    number.checked_mul(multiplier)
}

/// Splits `"64MiB"` into `(64, "MiB")`; `None` without leading digits or on overflow.
fn split_number(text: &str) -> Option<(u64, &str)> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    Some((number.parse().ok()?, unit))
}

/// Formats a byte count with the largest binary unit that divides it.
pub fn format_size(bytes: u64) -> String {
    for (unit, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    format!("{bytes}B")
}

/// Parses `250ms`, `30s`, `5m`, `1h`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let (number, unit) = split_number(text)?;
    match unit {
        "ms" => Some(Duration::from_millis(number)),
        "" | "s" => Some(Duration::from_secs(number)),
        "m" => number.checked_mul(60).map(Duration::from_secs),
        "h" => number.checked_mul(3600).map(Duration::from_secs),
        _ => None,
    }
}

fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("0"), Some(0));
        assert_eq!(parse_size("10GiB"), Some(10 << 30));
        assert_eq!(parse_size("10G"), Some(10 << 30));
        assert_eq!(parse_size("10GB"), Some(10_000_000_000));
        assert_eq!(parse_size("64MiB"), Some(64 << 20));
        assert_eq!(parse_size("12 KiB"), Some(12 << 10));
        assert_eq!(parse_size("1XB"), None);
        assert_eq!(parse_size("GiB"), None);
        assert_eq!(parse_size("99999999999TiB"), None, "overflow is an error");
        assert_eq!(format_size(10 << 30), "10GiB");
        assert_eq!(format_size(1500), "1500B");
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("2 m"), None);
    }

    #[test]
    fn defaults_validate() {
        let config = Layers::with_defaults().validate().unwrap();
        assert_eq!(config.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(config.data, PathBuf::from("./tessera-data"));
        assert_eq!(config.max_size_bytes, 10 << 30);
    }

    #[test]
    fn layers_override_in_order_file_env_flag() {
        let mut layers = Layers::with_defaults();
        layers
            .apply_toml("max_size = \"20GiB\"\nlisten = \"127.0.0.1:1\"\nshards = 4")
            .unwrap();
        let unknown = layers.apply_env([
            ("TESSERA_LISTEN".to_string(), "127.0.0.1:2".to_string()),
            ("TESSERA_IDLE_TIMOUT".to_string(), "1s".to_string()),
            ("UNRELATED".to_string(), "x".to_string()),
        ]);
        assert_eq!(unknown, ["TESSERA_IDLE_TIMOUT"]);
        layers.apply_flag("max_size", "30GiB").unwrap();
        let config = layers.validate().unwrap();
        assert_eq!(config.max_size_bytes, 30 << 30);
        assert_eq!(config.listen, "127.0.0.1:2".parse().unwrap());
        assert_eq!(config.shards, Some(4));
    }

    #[test]
    fn errors_name_the_setting_value_and_source() {
        let mut layers = Layers::with_defaults();
        layers.apply_env([("TESSERA_MAX_SIZE".into(), "lots".into())]);
        let error = layers.validate().unwrap_err();
        assert_eq!(error.setting, "max_size");
        let text = error.to_string();
        assert!(
            text.contains("`lots`") && text.contains("environment"),
            "{text}"
        );

        let mut layers = Layers::with_defaults();
        let error = layers.apply_toml("max_sise = \"1GiB\"").unwrap_err();
        assert_eq!(error.setting, "max_sise");
        assert!(error.to_string().contains("unknown setting"));

        let mut layers = Layers::with_defaults();
        layers.apply_flag("max_size", "64MiB").unwrap();
        let error = layers.validate().unwrap_err();
        assert_eq!(error.setting, "max_size", "{error}");

        let mut layers = Layers::with_defaults();
        layers.apply_flag("max_blob_size", "9GiB").unwrap();
        assert_eq!(layers.validate().unwrap_err().setting, "max_blob_size");
    }

    #[test]
    fn default_blob_limit_shrinks_to_fit_a_small_budget_but_an_explicit_one_errors() {
        let mut layers = Layers::with_defaults();
        layers.apply_flag("max_size", "1GiB").unwrap();
        let mut config = layers.validate().unwrap();
        assert_eq!(config.max_blob_bytes, 512 << 20);
        config.check_budget(2).unwrap();
        assert_eq!(config.max_blob_bytes, 256 << 20);
        config.max_blob_explicit = true;
        config.max_blob_bytes = 1 << 30;
        assert_eq!(config.check_budget(2).unwrap_err().setting, "max_blob_size");
    }
}
