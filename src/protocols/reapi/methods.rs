//! The gRPC methods a REAPI cache serves: their `:path`s and call shapes, for a
//! [`crate::grpc::GrpcService::route`] implementation. The services and method names are those of
//! `proto/` (REAPI v2 and google.bytestream); `Execution`, `SplitBlob` and `SpliceBlob` are not
//! served and so route to UNIMPLEMENTED.

use crate::grpc::CallKind;

/// One served method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReapiMethod {
    GetCapabilities,
    GetActionResult,
    UpdateActionResult,
    FindMissingBlobs,
    BatchUpdateBlobs,
    BatchReadBlobs,
    GetTree,
    Read,
    Write,
    QueryWriteStatus,
}

impl ReapiMethod {
    /// Every served method.
    pub const ALL: [ReapiMethod; 10] = [
        ReapiMethod::GetCapabilities,
        ReapiMethod::GetActionResult,
        ReapiMethod::UpdateActionResult,
        ReapiMethod::FindMissingBlobs,
        ReapiMethod::BatchUpdateBlobs,
        ReapiMethod::BatchReadBlobs,
        ReapiMethod::GetTree,
        ReapiMethod::Read,
        ReapiMethod::Write,
        ReapiMethod::QueryWriteStatus,
    ];

    /// The HTTP/2 `:path`: `/{package}.{Service}/{Method}`.
    pub fn path(self) -> &'static str {
        match self {
            ReapiMethod::GetCapabilities => {
                "/build.bazel.remote.execution.v2.Capabilities/GetCapabilities"
            }
            ReapiMethod::GetActionResult => {
                "/build.bazel.remote.execution.v2.ActionCache/GetActionResult"
            }
            ReapiMethod::UpdateActionResult => {
                "/build.bazel.remote.execution.v2.ActionCache/UpdateActionResult"
            }
            ReapiMethod::FindMissingBlobs => {
                "/build.bazel.remote.execution.v2.ContentAddressableStorage/FindMissingBlobs"
            }
            ReapiMethod::BatchUpdateBlobs => {
                "/build.bazel.remote.execution.v2.ContentAddressableStorage/BatchUpdateBlobs"
            }
            ReapiMethod::BatchReadBlobs => {
                "/build.bazel.remote.execution.v2.ContentAddressableStorage/BatchReadBlobs"
            }
            ReapiMethod::GetTree => {
                "/build.bazel.remote.execution.v2.ContentAddressableStorage/GetTree"
            }
            ReapiMethod::Read => "/google.bytestream.ByteStream/Read",
            ReapiMethod::Write => "/google.bytestream.ByteStream/Write",
            ReapiMethod::QueryWriteStatus => "/google.bytestream.ByteStream/QueryWriteStatus",
        }
    }

    /// The call shape, from the `stream` keywords of the service definitions.
    pub fn kind(self) -> CallKind {
        match self {
            ReapiMethod::GetTree | ReapiMethod::Read => CallKind::ServerStreaming,
            ReapiMethod::Write => CallKind::ClientStreaming,
            _ => CallKind::Unary,
        }
    }

    /// The method for a `:path`, if served.
    pub fn from_path(path: &str) -> Option<ReapiMethod> {
        ReapiMethod::ALL
            .into_iter()
            .find(|method| method.path() == path)
    }

    /// `route` in one call: method and shape.
    pub fn route(path: &str) -> Option<(ReapiMethod, CallKind)> {
        ReapiMethod::from_path(path).map(|method| (method, method.kind()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_routes_back_to_itself() {
        for method in ReapiMethod::ALL {
            assert_eq!(
                ReapiMethod::route(method.path()),
                Some((method, method.kind()))
            );
        }
    }

    #[test]
    fn shapes_match_the_service_definitions() {
        assert_eq!(ReapiMethod::Read.kind(), CallKind::ServerStreaming);
        assert_eq!(ReapiMethod::GetTree.kind(), CallKind::ServerStreaming);
        assert_eq!(ReapiMethod::Write.kind(), CallKind::ClientStreaming);
        assert_eq!(ReapiMethod::GetActionResult.kind(), CallKind::Unary);
    }

    #[test]
    fn unserved_and_malformed_paths_do_not_route() {
        for path in [
            "/build.bazel.remote.execution.v2.Execution/Execute",
            "/build.bazel.remote.execution.v2.ContentAddressableStorage/SplitBlob",
            "/google.bytestream.ByteStream/read",
            "google.bytestream.ByteStream/Read",
            "/google.bytestream.ByteStream/Read/",
            "",
        ] {
            assert_eq!(ReapiMethod::route(path), None, "{path}");
        }
    }
}

#[cfg(test)]
mod proto_tests {
    use super::*;

    /// The table above and the services declared in `proto/` list the same methods with the
    /// same streaming shapes.
    #[test]
    fn table_matches_the_proto_services() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/proto");
        let files = [
            "build/bazel/remote/execution/v2/remote_execution.proto",
            "google/bytestream/bytestream.proto",
        ];
        let descriptors = protox::compile(files, [root]).expect("proto/ compiles");
        let mut declared = Vec::new();
        for file in &descriptors.file {
            for service in &file.service {
                for method in &service.method {
                    let path = format!("/{}.{}/{}", file.package(), service.name(), method.name());
                    let kind = match (method.client_streaming(), method.server_streaming()) {
                        (false, false) => CallKind::Unary,
                        (false, true) => CallKind::ServerStreaming,
                        (true, false) => CallKind::ClientStreaming,
                        (true, true) => panic!("{path}: no bidirectional method is served"),
                    };
                    declared.push((path, kind));
                }
            }
        }
        declared.sort_by(|a, b| a.0.cmp(&b.0));
        let mut table: Vec<(String, CallKind)> = ReapiMethod::ALL
            .iter()
            .map(|m| (m.path().to_owned(), m.kind()))
            .collect();
        table.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(declared, table);
    }
}
