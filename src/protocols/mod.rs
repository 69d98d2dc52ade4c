//! Front-ends: one file per client protocol, translating a client's requests into store
//! operations ([`backend::Backend`]) and the store's answers into the client's status codes.
//! Nothing here touches files or maps.

pub mod backend;
pub mod bazel_http;
pub mod metrics;
pub mod reapi;
pub mod reapi_keys;
pub mod router;
pub mod upload;
