//! The store engine: a per-shard, memory-mapped, content-addressed log.
//!
//! Principal types: [`DataDir`] (the directory and its manifest), [`Shard`] (one slice of the
//! log, owned by one thread), [`ReadHandle`] (a committed record, readable from any thread) and
//! [`Reservation`] (a region of the active segment that another thread fills). The on-disk
//! format is documented byte by byte in `src/store/FORMAT.md`.
//!
//! ```text
//! put:    owner: reserve(PutRequest) ──► Reservation ──► any core: write()… ──► owner: commit()
//! get:    owner: lookup(id) ──► ReadHandle ──► any core: body() straight from the map
//! ```
//!
//! See [`shard`] for a complete example.

pub mod checkpoint;
pub mod config;
pub mod datadir;
pub mod digest;
pub mod error;
pub mod eviction;
pub mod handle;
pub mod index;
pub mod key;
pub mod limits;
mod maintenance;
pub mod meta;
pub mod namespaces;
pub mod reaper;
pub mod record;
pub mod recovery;
pub mod ring;
pub mod scan;
pub mod segment;
pub mod shard;
pub mod space;
pub mod verify;

pub use config::{Durability, StoreConfig};
pub use datadir::DataDir;
pub use digest::{ContentDigest, DigestFunction, StreamingHasher};
pub use error::StoreError;
pub use handle::{ReadHandle, Reservation, Unpublished};
pub use index::NamespaceUsage;
pub use key::{shard_of, Key, KeyId, Kind};
pub use meta::Meta;
pub use recovery::RecoveryReport;
pub use segment::SegmentHold;
pub use shard::{PutRequest, Reserved, Shard, ShardStats};
pub use verify::{verify, VerifyReport};
