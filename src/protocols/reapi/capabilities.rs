//! `Capabilities.GetCapabilities`: the pure answer of `grpc::capabilities` with this server's
//! settings. ZSTD is advertised for ByteStream (`compressed-blobs/zstd/…` is served); batch
//! calls take identity blobs only.

use crate::grpc::capabilities::{server_capabilities, CapabilitiesConfig};
use crate::grpc::pb::build::bazel::remote::execution::v2 as reapi;

use super::ReapiOptions;

pub(super) fn get_capabilities(options: &ReapiOptions) -> reapi::ServerCapabilities {
    server_capabilities(&CapabilitiesConfig {
        max_batch_total_size_bytes: i64::try_from(options.batch_total_bytes_max)
            .unwrap_or(i64::MAX),
        max_cas_blob_size_bytes: i64::try_from(options.blob_bytes_max).unwrap_or(i64::MAX),
        zstd_bytestream: true,
        zstd_batch: false,
        action_cache_update_enabled: true,
    })
}
