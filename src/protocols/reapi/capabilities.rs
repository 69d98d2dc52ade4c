//! `Capabilities.GetCapabilities`: [`server_capabilities`] is the answer as a pure function of
//! what the server is configured to do, [`get_capabilities`] that answer for this server's
//! settings. ZSTD is advertised for ByteStream (`compressed-blobs/zstd/…` is served); batch
//! calls take identity blobs only.
//!
//! What clients check (clients.md §2): Bazel 4.2.3 aborts unless `low_api_version <= 2.0 <=
//! high_api_version`, unless the digest function it uses is listed, and unless AC updates are
//! enabled while it uploads local results; newer Bazel needs an overlapping API range and, with
//! `--remote_cache_compression`, ZSTD in `supported_compressors`.

use crate::grpc::pb::build::bazel::remote::execution::v2 as reapi;
use crate::grpc::pb::build::bazel::semver::SemVer;

use super::ReapiOptions;

/// Lowest REAPI version served: 2.0, which every Bazel since 4.x accepts.
pub const API_VERSION_LOW: (i32, i32) = (2, 0);

/// Highest REAPI version served: 2.11 (the fields we declare in `proto/`).
pub const API_VERSION_HIGH: (i32, i32) = (2, 11);

/// The settings the capabilities depend on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapabilitiesConfig {
    /// Largest total of blob bytes in one BatchUpdateBlobs / BatchReadBlobs request; must leave
    /// room for the message overhead under the 4 MiB gRPC message limit.
    pub max_batch_total_size_bytes: i64,
    /// Largest blob accepted (0 = no limit advertised).
    pub max_cas_blob_size_bytes: i64,
    /// `compressed-blobs/zstd/…` is served by ByteStream.
    pub zstd_bytestream: bool,
    /// BatchUpdateBlobs / BatchReadBlobs accept and return zstd blobs.
    pub zstd_batch: bool,
    /// UpdateActionResult is allowed.
    pub action_cache_update_enabled: bool,
}

fn semver((major, minor): (i32, i32)) -> SemVer {
    SemVer {
        major,
        minor,
        patch: 0,
        prerelease: String::new(),
    }
}

/// The `ServerCapabilities` message for `config`. Execution capabilities are left out: this is
/// a cache, and cache-only clients do not look at them.
pub fn server_capabilities(config: &CapabilitiesConfig) -> reapi::ServerCapabilities {
    use reapi::compressor::Value as Compressor;
    use reapi::digest_function::Value as DigestFunction;
    let zstd_if = |enabled: bool| {
        if enabled {
            vec![Compressor::Zstd as i32]
        } else {
            Vec::new()
        }
    };
    let cache = reapi::CacheCapabilities {
        digest_functions: vec![DigestFunction::Sha256 as i32, DigestFunction::Blake3 as i32],
        action_cache_update_capabilities: Some(reapi::ActionCacheUpdateCapabilities {
            update_enabled: config.action_cache_update_enabled,
        }),
        max_batch_total_size_bytes: config.max_batch_total_size_bytes,
        symlink_absolute_path_strategy: reapi::symlink_absolute_path_strategy::Value::Allowed
            as i32,
        supported_compressors: zstd_if(config.zstd_bytestream),
        supported_batch_update_compressors: zstd_if(config.zstd_batch),
        max_cas_blob_size_bytes: config.max_cas_blob_size_bytes,
        ..Default::default()
    };
    reapi::ServerCapabilities {
        cache_capabilities: Some(cache),
        execution_capabilities: None,
        deprecated_api_version: None,
        low_api_version: Some(semver(API_VERSION_LOW)),
        high_api_version: Some(semver(API_VERSION_HIGH)),
    }
}

/// The capabilities of this server: [`server_capabilities`] with `options`.
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

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn config() -> CapabilitiesConfig {
        CapabilitiesConfig {
            max_batch_total_size_bytes: 4_000_000,
            max_cas_blob_size_bytes: 0,
            zstd_bytestream: true,
            zstd_batch: false,
            action_cache_update_enabled: true,
        }
    }

    /// The checks Bazel 4.2.3 makes (`RemoteServerCapabilities` / `ApiVersion`), restated.
    fn bazel_4_accepts(caps: &reapi::ServerCapabilities, digest_function: i32) -> bool {
        let version = |v: &Option<SemVer>| v.as_ref().map_or((0, 0), |v| (v.major, v.minor));
        let (low, high) = (
            version(&caps.low_api_version),
            version(&caps.high_api_version),
        );
        let cache = caps.cache_capabilities.as_ref().unwrap();
        low <= (2, 0)
            && (2, 0) <= high
            && cache.digest_functions.contains(&digest_function)
            && cache
                .action_cache_update_capabilities
                .as_ref()
                .is_some_and(|c| c.update_enabled)
    }

    #[test]
    fn bazel_4_2_3_accepts_the_capabilities() {
        let caps = server_capabilities(&config());
        assert!(bazel_4_accepts(
            &caps,
            reapi::digest_function::Value::Sha256 as i32
        ));
        assert!(bazel_4_accepts(
            &caps,
            reapi::digest_function::Value::Blake3 as i32
        ));
        assert!(!bazel_4_accepts(
            &caps,
            reapi::digest_function::Value::Md5 as i32
        ));
        let read_only = CapabilitiesConfig {
            action_cache_update_enabled: false,
            ..config()
        };
        assert!(!bazel_4_accepts(&server_capabilities(&read_only), 1));
    }

    #[test]
    fn compressors_follow_the_config_and_the_answer_is_small() {
        let caps = server_capabilities(&config());
        let cache = caps.cache_capabilities.clone().unwrap();
        assert_eq!(
            cache.supported_compressors,
            [reapi::compressor::Value::Zstd as i32]
        );
        assert!(cache.supported_batch_update_compressors.is_empty());
        assert_eq!(cache.max_batch_total_size_bytes, 4_000_000);
        let plain = server_capabilities(&CapabilitiesConfig {
            zstd_bytestream: false,
            ..config()
        });
        assert!(plain
            .cache_capabilities
            .unwrap()
            .supported_compressors
            .is_empty());
        assert!(caps.encoded_len() < 100, "far below any message limit");
        assert_eq!(caps.high_api_version.unwrap().minor, 11);
    }
}
