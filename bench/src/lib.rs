//! `tessera-bench`: the latency benchmark harness for Tessera and its peers.
//!
//! * [`loadgen`] — thread-per-core monoio load generator, closed and open loop (the open loop
//!   measures from intended send times, so a stalled server cannot hide its stall).
//! * [`workload`] — key space, size distributions, Zipf/uniform popularity, operation mix.
//! * [`protocol`] — the [`protocol::Protocol`] seam and the HTTP/1.1 implementation (Bazel HTTP
//!   cache, URL templates for WebDAV peers); [`http1_client`] / [`http1_response`] are the client.
//! * [`grpc_protocol`] — Bazel gRPC (ByteStream Read/Write, FindMissingBlobs) over `h2` on
//!   `monoio-compat`, a second [`protocol::Protocol`].
//! * [`stats`], [`report`], [`plot`] — HDR histograms, the table, JSON, `.hgrm` and SVG outputs.
//! * [`peers`] — nginx configuration and process control for peer comparison; [`restart`] — the
//!   store-reopen benchmark; [`test_server`] — tiny servers for tests (including one that stalls).
//!
//! ```no_run
//! use std::sync::Arc;
//! use tessera_bench::{loadgen::*, protocol::*, workload::*};
//! let keys = Arc::new(KeySpace::generate(1000, &SizeDistribution::Fixed(4096), 1).unwrap());
//! let protocol = HttpProtocol::new(keys, PathScheme::BazelCas { prefix: String::new() }, "127.0.0.1".into());
//! let mix = OperationMix { write_ratio: 0.0, miss_ratio: 0.0, popularity: Popularity::Uniform, objects: 1000 };
//! let config = LoadConfig {
//!     address: "127.0.0.1:8080".parse().unwrap(), threads: 2, connections: 64,
//!     duration: std::time::Duration::from_secs(10), requests: None, mode: Mode::Open { rate_per_sec: 20_000 },
//!     pin: true, request_timeout: std::time::Duration::from_secs(10), seed: 1, driver: Driver::Auto,
//! };
//! let stats = run_load(&config, &protocol, &OperationSource::Mix(Arc::new(mix)));
//! println!("p99 = {} ms", stats.latency_ms_at(0.99));
//! ```

pub mod args;
pub mod cli;
pub mod compare;
pub mod grpc_protocol;
pub mod http1_client;
pub mod http1_response;
pub mod limits;
pub mod loadgen;
pub mod peers;
pub mod plot;
pub mod protocol;
pub mod report;
pub mod restart;
pub mod rng;
pub mod runner;
pub mod stats;
pub mod test_server;
pub mod workload;
