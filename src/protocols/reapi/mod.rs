//! The REAPI v2 cache services over gRPC (`--remote_cache=grpc://host:port`), reference/clients.md §2.
//!
//! Everything REAPI means lives here; `src/grpc/` below only carries messages. [`ReapiService`]
//! implements [`GrpcService`], routes each `:path` through [`methods`] and each method to its
//! file:
//!
//! | service / method                                         | file              |
//! |----------------------------------------------------------|-------------------|
//! | `Capabilities.GetCapabilities`                           | `capabilities.rs` |
//! | `ActionCache.GetActionResult` / `UpdateActionResult`     | `action_cache.rs` |
//! | `ContentAddressableStorage.FindMissingBlobs`, `Batch*`, `GetTree` | `cas.rs` |
//! | `ByteStream.Read` / `Write` / `QueryWriteStatus`         | `bytestream.rs`   |
//!
//! Rules that need no store sit beside them, each with its own tests: [`digest`] (digest
//! functions, digest validation), [`resource_name`] (ByteStream resource names),
//! [`bytestream_rules`] (Read ranges, zero-copy `ReadResponse` framing, Write offsets),
//! `zstd_codec.rs` (bounded streaming zstd for `compressed-blobs/zstd/…`) and
//! `capabilities.rs` (the GetCapabilities answer). `uploads.rs` keeps broken-off Writes for a
//! resume.
//!
//! [`action_result`] (which blobs an ActionResult references, digest checks, the completeness
//! check of a hit) is the one module the Bazel HTTP front-end shares, for its `/ac/` hits.
//!
//! Keys come from [`super::reapi_keys`], so the instance name is the namespace shared with the
//! Bazel HTTP front-end: `PUT /team/cas/<h>` over HTTP and `team/blobs/<h>/<n>` over gRPC are
//! one blob. The digest function comes from the request's `digest_function` field or the
//! resource name; UNKNOWN (Bazel 4.2.3 never sets it) means SHA-256.
//!
//! Store errors become gRPC statuses in one place, [`status_of`].
//!
//! ```text
//! h2 stream ─► grpc::server ─► ReapiService::route(:path) ─► unary | server_streaming | client_streaming
//!                                      │                          │
//!                                      └── Backend (Steer: owner shard) ◄──┘
//! ```

mod action_cache;
pub mod action_result;
mod bytestream;
pub mod bytestream_rules;
mod capabilities;
mod cas;
pub mod digest;
pub mod methods;
pub mod resource_name;
mod uploads;
mod zstd_codec;

#[cfg(test)]
mod tests;

use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use tracing::Instrument;

use crate::grpc::pb::build::bazel::remote::execution::v2 as reapi;
use crate::grpc::{CallContext, CallKind, Code, GrpcService, RequestStream, ResponseSink, Status};
use crate::metrics::latency::Timer;
use crate::store::{ContentDigest, DigestFunction, StoreError};

use super::backend::{Backend, Identity, Protocol, RequestContext};
use digest::{validate_digest, ReapiDigestFunction};
use methods::ReapiMethod;
use uploads::SuspendedUploads;

/// Largest total of blob bytes in one BatchUpdateBlobs / BatchReadBlobs: 4 MiB message limit
/// minus 64 KiB for the digests, statuses and framing of the blobs in it (a request of 1,000
/// tiny blobs carries ~100 bytes of overhead each, 100 KB would be the pathological case, and
/// clients that honour this value keep well below it).
pub const BATCH_TOTAL_BYTES_MAX: u64 =
    crate::grpc::limits::MESSAGE_RECEIVE_BYTES_MAX as u64 - (64 << 10);

/// Most digests in one FindMissingBlobs / BatchReadBlobs / BatchUpdateBlobs request. A digest
/// costs ~70 bytes on the wire, so a 4 MiB message holds ~60,000; each becomes a 32-byte key
/// id plus a bool in the presence query, ~2.5 MiB of memory at this bound.
pub const BATCH_DIGESTS_MAX: usize = 65_536;

/// Largest total of stdout, stderr and output-file contents inlined into one ActionResult
/// answer: 1 MiB, a quarter of grpc-java's 4 MiB inbound limit, so the answer always fits.
pub const INLINE_BYTES_MAX: u64 = 1 << 20;

/// Most directories in one GetTreeResponse page (a client may ask for fewer with page_size).
/// A Directory of a few files is ~200 bytes; pages are also cut at [`TREE_PAGE_BYTES_MAX`].
pub const TREE_PAGE_DIRECTORIES_MAX: usize = 1_000;

/// Bytes of Directory messages in one GetTreeResponse page: 2 MiB, half the send limit.
pub const TREE_PAGE_BYTES_MAX: usize = 2 << 20;

/// Most directories one GetTree walk visits (page tokens included). A source tree of 100,000
/// directories is already extreme; each visited digest costs ~100 bytes of bookkeeping.
pub const TREE_DIRECTORIES_MAX: usize = 1_000_000;

/// Uploads kept per executor after their Write stream broke off, for a resumed Write
/// (QueryWriteStatus). Each pins one reservation (at most `max_blob_bytes` of segment space,
/// and the segment against eviction) until resumed or expired.
pub const SUSPENDED_UPLOADS_MAX: usize = 64;

/// How long a suspended upload waits for its client to resume it; then its reservation is
/// released. Bazel resumes within its retry backoff (≤ 5 retries, seconds apart).
pub const SUSPENDED_UPLOAD_EXPIRY: Duration = Duration::from_secs(60);

/// What the REAPI services are configured to accept and advertise.
#[derive(Clone, Debug)]
pub struct ReapiOptions {
    /// Advertised in Capabilities and enforced on Batch* requests.
    pub batch_total_bytes_max: u64,
    /// Largest blob accepted (the store's `max_blob_bytes`); advertised in Capabilities.
    pub blob_bytes_max: u64,
    pub batch_digests_max: usize,
    pub inline_bytes_max: u64,
    pub suspended_uploads_max: usize,
    pub suspended_upload_expiry: Duration,
}

impl Default for ReapiOptions {
    fn default() -> Self {
        ReapiOptions {
            batch_total_bytes_max: BATCH_TOTAL_BYTES_MAX,
            blob_bytes_max: 0,
            batch_digests_max: BATCH_DIGESTS_MAX,
            inline_bytes_max: INLINE_BYTES_MAX,
            suspended_uploads_max: SUSPENDED_UPLOADS_MAX,
            suspended_upload_expiry: SUSPENDED_UPLOAD_EXPIRY,
        }
    }
}

/// The REAPI cache services of one executor, over any [`Backend`].
///
/// Thread-safety: lives on one executor (`Rc`); the table of suspended uploads is per executor,
/// so a Write resumed on another connection that lands on another core starts from 0 (the
/// spec allows that: QueryWriteStatus there answers 0).
pub struct ReapiService<B> {
    backend: Rc<B>,
    options: ReapiOptions,
    uploads: Rc<SuspendedUploads>,
    /// The identity of the connection (a verified TLS client certificate), for calls without
    /// `authorization` metadata; anonymous on the executor's shared service.
    connection: Identity,
}

impl<B: Backend + 'static> ReapiService<B> {
    /// Must be called on the executor that will run the service: it starts the task that
    /// releases expired suspended uploads.
    pub fn new(backend: Rc<B>, options: ReapiOptions) -> Self {
        let uploads = SuspendedUploads::new(
            options.suspended_uploads_max,
            options.suspended_upload_expiry,
        );
        uploads::spawn_expiry(&uploads);
        ReapiService {
            backend,
            options,
            uploads,
            connection: Identity::default(),
        }
    }

    /// The same services for one connection whose own identity is `connection` (its TLS client
    /// certificate); the suspended uploads stay the executor's.
    pub fn on_connection(&self, connection: Identity) -> Self {
        ReapiService {
            backend: self.backend.clone(),
            options: self.options.clone(),
            uploads: self.uploads.clone(),
            connection,
        }
    }

    /// The caller's identity: the `authorization` metadata, read as HTTP's `Authorization`
    /// header, else the connection's.
    fn identity(&self, call: &CallContext) -> Identity {
        Identity::from_authorization(call.metadata.get("authorization").map(|v| v.as_bytes()))
            .on_connection(&self.connection)
    }

    /// The context of a call on `instance`: the caller's identity and address.
    fn context(&self, instance: &str, call: &CallContext) -> RequestContext {
        super::reapi_keys::context(instance, Protocol::Grpc)
            .with_identity(self.identity(call))
            .with_remote(call.peer)
    }

    /// Releases the reservations of all suspended uploads; the server calls it on drain, before
    /// the shards close, so their checkpoints do not replay from an upload nobody will finish.
    pub fn release_suspended_uploads(&self) {
        self.uploads.release_all();
    }

    /// Uploads currently suspended (tests, diagnostics).
    pub fn suspended_uploads(&self) -> usize {
        self.uploads.len()
    }
}

impl<B: Backend + 'static> ReapiService<B> {
    async fn dispatch_unary(
        &self,
        method: ReapiMethod,
        call: &CallContext,
        request: Bytes,
    ) -> Result<Bytes, Status> {
        use crate::grpc::service::{decode, encode};
        match method {
            ReapiMethod::GetCapabilities => {
                let _: reapi::GetCapabilitiesRequest = decode(request)?;
                Ok(encode(&capabilities::get_capabilities(&self.options)))
            }
            ReapiMethod::GetActionResult => {
                let answer = action_cache::get_action_result(self, call, decode(request)?).await?;
                Ok(encode(&answer))
            }
            ReapiMethod::UpdateActionResult => {
                let answer =
                    action_cache::update_action_result(self, call, decode(request)?).await?;
                Ok(encode(&answer))
            }
            ReapiMethod::FindMissingBlobs => {
                let answer = cas::find_missing_blobs(self, call, decode(request)?).await?;
                Ok(encode(&answer))
            }
            ReapiMethod::BatchUpdateBlobs => {
                let answer = cas::batch_update_blobs(self, call, decode(request)?).await?;
                Ok(encode(&answer))
            }
            ReapiMethod::BatchReadBlobs => {
                let answer = cas::batch_read_blobs(self, call, decode(request)?).await?;
                Ok(encode(&answer))
            }
            ReapiMethod::QueryWriteStatus => {
                let answer = bytestream::query_write_status(self, call, decode(request)?).await?;
                Ok(encode(&answer))
            }
            ReapiMethod::GetTree | ReapiMethod::Read | ReapiMethod::Write => Err(Status::internal(
                format!("{method:?} routed as a unary call"),
            )),
        }
    }

    async fn dispatch_server_streaming(
        &self,
        method: ReapiMethod,
        call: &CallContext,
        request: Bytes,
        responses: &mut ResponseSink,
    ) -> Result<(), Status> {
        use crate::grpc::service::decode;
        match method {
            ReapiMethod::Read => bytestream::read(self, call, decode(request)?, responses).await,
            ReapiMethod::GetTree => cas::get_tree(self, call, decode(request)?, responses).await,
            _ => Err(Status::internal(format!(
                "{method:?} routed as a server-streaming call"
            ))),
        }
    }

    async fn dispatch_client_streaming(
        &self,
        method: ReapiMethod,
        call: &CallContext,
        requests: &mut RequestStream,
    ) -> Result<Bytes, Status> {
        match method {
            ReapiMethod::Write => {
                let answer = bytestream::write(self, call, requests).await?;
                Ok(crate::grpc::service::encode(&answer))
            }
            _ => Err(Status::internal(format!(
                "{method:?} routed as a client-streaming call"
            ))),
        }
    }
}

impl<B: Backend + 'static> GrpcService for ReapiService<B> {
    type Method = ReapiMethod;

    fn route(&self, path: &str) -> Option<(ReapiMethod, CallKind)> {
        ReapiMethod::route(path)
    }

    // The latency hook of every REAPI call: one `timed` around each kind of dispatch.

    async fn unary(
        &self,
        method: ReapiMethod,
        call: &CallContext,
        request: Bytes,
    ) -> Result<Bytes, Status> {
        let timer = Timer::start();
        let result = crate::logging::in_request(
            crate::logging::text_request_id(),
            self.dispatch_unary(method, call, request)
                .instrument(crate::logging::request_span("grpc")),
        )
        .await;
        timed(method, timer, result.as_ref().err());
        result
    }

    async fn server_streaming(
        &self,
        method: ReapiMethod,
        call: &CallContext,
        request: Bytes,
        responses: &mut ResponseSink,
    ) -> Result<(), Status> {
        let timer = Timer::start();
        let result = crate::logging::in_request(
            crate::logging::text_request_id(),
            self.dispatch_server_streaming(method, call, request, responses)
                .instrument(crate::logging::request_span("grpc")),
        )
        .await;
        timed(method, timer, result.as_ref().err());
        result
    }

    async fn client_streaming(
        &self,
        method: ReapiMethod,
        call: &CallContext,
        requests: &mut RequestStream,
    ) -> Result<Bytes, Status> {
        let timer = Timer::start();
        let result = crate::logging::in_request(
            crate::logging::text_request_id(),
            self.dispatch_client_streaming(method, call, requests)
                .instrument(crate::logging::request_span("grpc")),
        )
        .await;
        timed(method, timer, result.as_ref().err());
        result
    }
}

/// Records a finished call in the latency histograms: its method's operation (calls that read
/// or write no entry, such as GetCapabilities, are not timed) and how it ended. NOT_FOUND is a
/// miss; INTERNAL, UNKNOWN and DATA_LOSS are the server's errors; every other failure is a
/// refusal. A batch call that succeeds counts as one hit or store whatever its items did.
fn timed(method: ReapiMethod, timer: Timer, error: Option<&Status>) {
    use crate::metrics::latency::{Operation, Outcome};
    let operation = match method {
        ReapiMethod::GetActionResult
        | ReapiMethod::BatchReadBlobs
        | ReapiMethod::Read
        | ReapiMethod::GetTree => Operation::Get,
        ReapiMethod::UpdateActionResult | ReapiMethod::BatchUpdateBlobs | ReapiMethod::Write => {
            Operation::Put
        }
        ReapiMethod::FindMissingBlobs => Operation::Contains,
        ReapiMethod::GetCapabilities | ReapiMethod::QueryWriteStatus => return,
    };
    let outcome = match error.map(|status| status.code) {
        None if operation == Operation::Put => Outcome::Stored,
        None => Outcome::Hit,
        Some(Code::NotFound) => Outcome::Miss,
        Some(Code::Internal | Code::Unknown | Code::DataLoss) => Outcome::Error,
        Some(_) => Outcome::Refused,
    };
    timer.finish(Protocol::Grpc, operation, outcome);
}

/// The one mapping from store errors to gRPC statuses.
///
/// * `NoSpace`, `TooManyReservations`, `RateLimited` → RESOURCE_EXHAUSTED: the cache is full
///   or the caller over its rate right now; Bazel retries it and then builds without the cache.
/// * `NamespaceTableFull` → RESOURCE_EXHAUSTED, `NamespaceTooLong` → INVALID_ARGUMENT (an
///   instance name longer than the store records).
/// * `TooLarge` → INVALID_ARGUMENT: the blob is over the advertised `max_cas_blob_size_bytes`,
///   a permanent property of the request. REAPI lists INVALID_ARGUMENT for requests over a
///   server limit; RESOURCE_EXHAUSTED is for quota, and Bazel would retry it in vain.
/// * `DigestMismatch`, `Truncated`, `Overflow`, `MetaTooLarge` → INVALID_ARGUMENT: the bytes
///   do not match what the request said (REAPI: "the digest does not match the data").
/// * `Unavailable` → UNAVAILABLE (a shard's executor is stopping).
/// * `Unauthenticated` → UNAUTHENTICATED, `PermissionDenied` → PERMISSION_DENIED (the
///   authorization layer; Bazel reports both and does not retry them).
/// * anything else → INTERNAL, with a generic message (the details go to the log).
pub fn status_of(error: &StoreError) -> Status {
    let message = error.to_string();
    match error {
        StoreError::NoSpace { .. }
        | StoreError::TooManyReservations { .. }
        | StoreError::NamespaceTableFull { .. }
        | StoreError::RateLimited { .. } => Status::resource_exhausted(message),
        StoreError::TooLarge { .. }
        | StoreError::NamespaceTooLong { .. }
        | StoreError::DigestMismatch { .. }
        | StoreError::Truncated { .. }
        | StoreError::Overflow { .. }
        | StoreError::MetaTooLarge { .. } => Status::invalid_argument(message),
        StoreError::Unavailable { .. } => Status::new(crate::grpc::Code::Unavailable, message),
        StoreError::Unauthenticated { .. } => {
            Status::new(crate::grpc::Code::Unauthenticated, message)
        }
        StoreError::PermissionDenied { .. } => {
            Status::new(crate::grpc::Code::PermissionDenied, message)
        }
        _ => {
            // Operating errors carry server paths and OS errors: logged, never sent.
            tracing::error!(%error, "store error");
            Status::internal(crate::protocols::pipeline::INTERNAL_ERROR_TEXT)
        }
    }
}

/// The digest function of a request's `digest_function` field (UNKNOWN = SHA-256).
fn request_function(value: i32) -> Result<DigestFunction, Status> {
    DigestFunction::from_proto(value).map_err(Status::from)
}

/// A validated request digest: the store digest and the size.
fn content_digest(
    function: DigestFunction,
    digest: &reapi::Digest,
) -> Result<(ContentDigest, u64), Status> {
    let size = validate_digest(function, &digest.hash, digest.size_bytes)?;
    let parsed = ContentDigest::parse_hex(function, &digest.hash)
        .ok_or_else(|| Status::invalid_argument("hash is not lowercase hexadecimal"))?;
    Ok((parsed, size))
}

/// Whether `digest` names the empty blob, which every CAS holds without storing it (REAPI:
/// "the empty blob ... servers should treat it as present").
fn is_empty_blob(digest: &ContentDigest, size: u64) -> bool {
    size == 0 && *digest == ContentDigest::of(digest.function, b"")
}

/// A stored body as `Bytes` without copying: the `Bytes` keeps the [`ReadHandle`] (and so the
/// segment map) alive until the last slice of it is sent.
fn handle_bytes(handle: crate::store::ReadHandle) -> Bytes {
    struct Body(crate::store::ReadHandle);
    impl AsRef<[u8]> for Body {
        fn as_ref(&self) -> &[u8] {
            self.0.body()
        }
    }
    Bytes::from_owner(Body(handle))
}

fn rpc_status(status: &Status) -> crate::grpc::pb::google::rpc::Status {
    crate::grpc::pb::google::rpc::Status {
        code: status.code.as_i32(),
        message: status.message.clone(),
        details: Vec::new(),
    }
}
