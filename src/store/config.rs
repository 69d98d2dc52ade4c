//! Store configuration, validated before anything touches the disk.

use std::path::PathBuf;
use std::time::Duration;

use super::error::StoreError;
use super::limits::{
    BLOB_BYTES_LIMIT, PAGE_BYTES, SEGMENT_BYTES_DEFAULT, SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN,
    SHARDS_MAX,
};

/// When an acknowledged put is durable.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Durability {
    /// In the page cache at commit (survives `kill -9`); `fdatasync` every `sync_interval`.
    Relaxed,
    /// `msync` of the record before commit returns (survives power loss).
    Strict,
}

#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// The data directory.
    pub dir: PathBuf,
    /// Shard count, recorded in the manifest when the directory is created.
    pub shards: u32,
    /// Size of a normal segment file, bytes (multiple of 4096).
    pub segment_bytes: u64,
    /// Total byte budget of the store; each shard gets `max_size_bytes / shards`.
    pub max_size_bytes: u64,
    /// Largest accepted body, bytes.
    pub max_blob_bytes: u64,
    pub durability: Durability,
    /// Relaxed mode: longest time between two `fdatasync`s of dirty segments.
    pub sync_interval: Duration,
    /// Longest time between two index checkpoints while the shard changes.
    pub checkpoint_interval: Duration,
}

impl StoreConfig {
    /// Defaults: 64 MiB segments, 64 GiB total, 4 GiB blobs, relaxed durability with a 1 s sync
    /// interval, a checkpoint every 30 s.
    pub fn new(dir: impl Into<PathBuf>, shards: u32) -> Self {
        StoreConfig {
            dir: dir.into(),
            shards,
            segment_bytes: SEGMENT_BYTES_DEFAULT,
            max_size_bytes: 64 << 30,
            max_blob_bytes: 4 << 30,
            durability: Durability::Relaxed,
            sync_interval: Duration::from_secs(1),
            checkpoint_interval: Duration::from_secs(30),
        }
    }

    /// The byte budget of one shard.
    pub fn shard_budget_bytes(&self) -> u64 {
        self.max_size_bytes / u64::from(self.shards.max(1))
    }

    /// Checks every value; the error names the setting.
    pub fn validate(&self) -> Result<(), StoreError> {
        let bad = |setting, reason: String| Err(StoreError::Config { setting, reason });
        if self.shards == 0 || self.shards > SHARDS_MAX {
            return bad(
                "shards",
                format!("{} is not in 1..={SHARDS_MAX}", self.shards),
            );
        }
        let segment = self.segment_bytes;
        if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX).contains(&segment)
            || !segment.is_multiple_of(PAGE_BYTES)
        {
            return bad(
                "segment_bytes",
                format!(
                    "{segment} must be a multiple of {PAGE_BYTES} in \
                     {SEGMENT_BYTES_MIN}..={SEGMENT_BYTES_MAX}"
                ),
            );
        }
        if self.shard_budget_bytes() < 2 * segment {
            return bad(
                "max_size_bytes",
                format!(
                    "{} bytes over {} shards leaves less than two segments ({} bytes) per shard",
                    self.max_size_bytes,
                    self.shards,
                    2 * segment
                ),
            );
        }
        if self.max_blob_bytes == 0 || self.max_blob_bytes > BLOB_BYTES_LIMIT {
            return bad(
                "max_blob_bytes",
                format!("{} is not in 1..={BLOB_BYTES_LIMIT}", self.max_blob_bytes),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_each_bad_value_names_its_setting() {
        let good = StoreConfig::new("/tmp/x", 4);
        good.validate().unwrap();
        type Mutation = fn(&mut StoreConfig);
        let cases: [(&str, Mutation); 5] = [
            ("shards", |c| c.shards = 0),
            ("segment_bytes", |c| c.segment_bytes = 5000),
            ("segment_bytes", |c| c.segment_bytes = 1024),
            ("max_size_bytes", |c| c.max_size_bytes = c.segment_bytes * 4),
            ("max_blob_bytes", |c| c.max_blob_bytes = 0),
        ];
        for (name, mutate) in cases {
            let mut config = good.clone();
            mutate(&mut config);
            match config.validate() {
                Err(StoreError::Config { setting, .. }) => assert_eq!(setting, name),
                other => panic!("{name}: {other:?}"),
            }
        }
    }
}
