//! Messages generated from `proto/` by `build.rs` (prost), one module per protobuf package.
//! The module tree mirrors the package names because generated code refers to other packages by
//! relative `super::` paths. `google.protobuf` types come from `prost_types`.

#![allow(clippy::all, missing_docs, rustdoc::all)]

pub mod build {
    pub mod bazel {
        pub mod remote {
            pub mod execution {
                pub mod v2 {
                    include!(concat!(
                        env!("OUT_DIR"),
                        "/build.bazel.remote.execution.v2.rs"
                    ));
                }
            }
        }
        pub mod semver {
            include!(concat!(env!("OUT_DIR"), "/build.bazel.semver.rs"));
        }
    }
}

pub mod google {
    pub mod bytestream {
        include!(concat!(env!("OUT_DIR"), "/google.bytestream.rs"));
    }
    pub mod rpc {
        include!(concat!(env!("OUT_DIR"), "/google.rpc.rs"));
    }
}

#[cfg(test)]
mod tests {
    use super::build::bazel::remote::execution::v2 as reapi;
    use super::google::bytestream::WriteRequest;
    use bytes::Bytes;
    use prost::Message;

    /// Golden bytes: field numbers and wire types must match upstream, byte for byte.
    #[test]
    fn digest_and_write_request_encode_with_upstream_field_numbers() {
        let digest = reapi::Digest {
            hash: "ab".into(),
            size_bytes: 300,
        };
        // field 1 (LEN) "ab"; field 2 (VARINT) 300 = 0xac 0x02
        assert_eq!(
            digest.encode_to_vec(),
            [0x0a, 2, b'a', b'b', 0x10, 0xac, 0x02]
        );
        let write = WriteRequest {
            resource_name: "r".into(),
            write_offset: 1,
            finish_write: true,
            data: Bytes::from_static(b"xy"),
        };
        // 1: "r", 2: 1, 3: true, 10 (tag 0x52): "xy"
        assert_eq!(
            write.encode_to_vec(),
            [0x0a, 1, b'r', 0x10, 1, 0x18, 1, 0x52, 2, b'x', b'y']
        );
    }

    #[test]
    fn capabilities_encode_with_upstream_field_numbers() {
        let caps = reapi::ServerCapabilities {
            cache_capabilities: Some(reapi::CacheCapabilities {
                digest_functions: vec![reapi::digest_function::Value::Sha256 as i32],
                max_batch_total_size_bytes: 1,
                ..Default::default()
            }),
            low_api_version: Some(super::build::bazel::semver::SemVer {
                major: 2,
                ..Default::default()
            }),
            ..Default::default()
        };
        // 1: CacheCapabilities { 1: packed [1], 4: 1 }, 4: SemVer { 1: 2 }
        assert_eq!(
            caps.encode_to_vec(),
            [0x0a, 5, 0x0a, 1, 1, 0x20, 1, 0x22, 2, 0x08, 2]
        );
        let decoded = reapi::ServerCapabilities::decode(&caps.encode_to_vec()[..]).unwrap();
        assert_eq!(decoded, caps);
    }

    #[test]
    fn action_result_keeps_unknown_free_round_trip() {
        let result = reapi::ActionResult {
            output_files: vec![reapi::OutputFile {
                path: "out/a".into(),
                digest: Some(reapi::Digest {
                    hash: "00".repeat(32),
                    size_bytes: 4,
                }),
                is_executable: true,
                ..Default::default()
            }],
            exit_code: 1,
            stdout_raw: Bytes::from_static(b"hi"),
            ..Default::default()
        };
        let bytes = result.encode_to_vec();
        assert_eq!(reapi::ActionResult::decode(&bytes[..]).unwrap(), result);
    }
}
