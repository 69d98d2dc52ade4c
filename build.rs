//! Generates the protobuf messages of `proto/` at build time.
//!
//! `protox` parses the `.proto` files in pure Rust, so no system `protoc` is needed; the
//! well-known types (`google/protobuf/*.proto`) come from protox's built-in copies. `prost-build`
//! then writes one Rust module per package into `OUT_DIR`, included by `src/grpc/pb.rs`.
//! `bytes` fields become `bytes::Bytes` so blob data is shared, not copied, between the h2 frames
//! and the store.

const PROTO_ROOT: &str = "proto";

const PROTO_FILES: [&str; 4] = [
    "proto/build/bazel/remote/execution/v2/remote_execution.proto",
    "proto/build/bazel/semver/semver.proto",
    "proto/google/bytestream/bytestream.proto",
    "proto/google/rpc/status.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    let descriptors = protox::compile(PROTO_FILES, [PROTO_ROOT])?;
    prost_build::Config::new()
        .bytes(["."])
        .compile_fds(descriptors)?;
    Ok(())
}
