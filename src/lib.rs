//! Tessera: a build-cache appliance.
//!
//! Layers, top to bottom (see `DESIGN.md` in the shared docs):
//! `server` (executors, listeners) → `http1` / `grpc` (wire) → `protocols` (one file per client
//! protocol) → `store` (the memory-mapped, content-addressed log).

pub mod auth;
pub mod cli;
pub mod config;
pub mod counters;
pub mod grpc;
pub mod http1;
pub mod logging;
pub mod metrics;
pub mod protocols;
pub mod server;
pub mod store;
pub mod tier;
pub mod tls;
