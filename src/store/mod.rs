//! The store engine: a per-shard, memory-mapped, content-addressed log.
pub mod config;
pub mod digest;
pub mod error;
pub mod key;
pub mod limits;
pub mod meta;
pub mod record;
pub mod segment;
