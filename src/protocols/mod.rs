//! Front-ends: one file per client protocol, translating a client's requests into store
//! operations ([`backend::Backend`]) and the store's answers into the client's status codes.
//! Nothing here touches files or maps.

pub mod admin;
pub mod backend;
pub mod bazel_http;
pub mod body;
pub mod ccache;
#[cfg(test)]
mod front_end_tests;
pub mod gradle;
pub mod health;
pub mod metrics;
pub mod mounts;
pub mod nx;
pub mod opaque_key;
pub mod pipeline;
pub mod reapi;
pub mod reapi_keys;
pub mod router;
pub mod s3;
pub mod status;
#[cfg(test)]
pub(crate) mod test_support;
pub mod turbo;
pub mod upload;
pub mod usage;
