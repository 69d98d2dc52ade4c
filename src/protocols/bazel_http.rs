//! Bazel's HTTP remote cache (`--remote_cache=http://host:port[/prefix]`), reference/clients.md §1.
//!
//! ```text
//! GET|HEAD [/prefix]/ac/<hash>    200 + body | 404 (Content-Length: 0)
//! GET|HEAD [/prefix]/cas/<hash>   200 + body | 404
//! PUT      [/prefix]/ac/<hash>    200 (stored as given; last writer wins)
//! PUT      [/prefix]/cas/<hash>   200 | 400 when the body does not hash to <hash> (nothing stored)
//! ```
//!
//! The prefix plays the role of a gRPC instance name (`reapi_keys`), so `http://h/team-a` and
//! `grpc://h --remote_instance_name=team-a` share one cache. A 64-hex hash is SHA-256 unless the
//! server is configured for BLAKE3 (`bazel_http_blake3`): the path carries no digest function.
//!
//! AC bodies are stored as given: ccache's `layout=bazel` keeps its own entries under `/ac/`.
//! On a hit, an entry that *is* an `ActionResult` (decodes, and every digest in it is well
//! formed) is answered only if every CAS blob it references is present — the same completeness
//! check as gRPC's GetActionResult — so Bazel (7+ with build-without-the-bytes, which never
//! downloads intermediates) never gets a hit whose outputs were evicted ("lost inputs").
//! Anything else under `/ac/` is served as stored.

use std::io;

use crate::http1::{Request, Responder};
use crate::store::{ContentDigest, DigestFunction, KeyId, Meta, PutRequest, Reserved, StoreError};

use super::backend::Backend;
use super::reapi::check_complete;
use super::reapi_keys;
use super::upload::{
    discard_body, fill_reservation, FillError, SpoolBudget, SpoolError, CHUNKED_UPLOAD_BYTES_MAX,
};
use crate::grpc::action_result::validate_action_result;
use crate::grpc::pb::build::bazel::remote::execution::v2::ActionResult;
use crate::grpc::Code;

/// Which of Bazel's two caches a path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cache {
    Ac,
    Cas,
}

/// A parsed Bazel cache path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BazelPath<'a> {
    /// The prefix without its slashes (`""` for none); `a//b` style doubled slashes are folded.
    pub instance: String,
    pub cache: Cache,
    pub hex: &'a str,
}

/// Recognises `[/prefix]/ac/<hex>` and `[/prefix]/cas/<hex>`; `None` for any other path.
/// The hash's syntax is checked later, so a malformed hash is a 400, not a 404.
pub fn parse_path(path: &str) -> Option<BazelPath<'_>> {
    let (rest, hex) = path.rsplit_once('/')?;
    let rest = rest.trim_end_matches('/');
    let (prefix, cache) =
        if let Some(prefix) = rest.strip_suffix("/ac").or(rest.eq("ac").then_some("")) {
            (prefix, Cache::Ac)
        } else if let Some(prefix) = rest.strip_suffix("/cas").or(rest.eq("cas").then_some("")) {
            (prefix, Cache::Cas)
        } else {
            return None;
        };
    let instance = prefix
        .split('/')
        .filter(|segment| !segment.is_empty())
        .collect::<Vec<_>>()
        .join("/");
    Some(BazelPath {
        instance,
        cache,
        hex,
    })
}

/// Serves one Bazel cache request whose path `parse_path` accepted.
pub async fn handle<B: Backend>(
    backend: &B,
    spool: &SpoolBudget,
    function: DigestFunction,
    path: &BazelPath<'_>,
    request: &mut Request<'_>,
    responder: &mut Responder<'_>,
) -> io::Result<()> {
    let Some(digest) = ContentDigest::parse_hex(function, path.hex) else {
        let message = format!(
            "`{}` is not a {} hex digest",
            path.hex,
            function_name(function)
        );
        return responder.send_text(400, &message).await;
    };
    let id = match path.cache {
        Cache::Ac => reapi_keys::ac_key(&path.instance, &digest),
        Cache::Cas => reapi_keys::cas_key(&path.instance, &digest),
    };
    match request.head.method {
        "GET" | "HEAD" => {
            let complete_in = (path.cache == Cache::Ac).then_some(path.instance.as_str());
            get(backend, id, complete_in, function, responder).await
        }
        "PUT" => put(backend, spool, id, path.cache, digest, request, responder).await,
        _ => {
            responder.header("allow", "GET, HEAD, PUT")?;
            responder
                .send_text(405, "the Bazel cache supports GET, HEAD and PUT")
                .await
        }
    }
}

/// Why an `/ac/` entry that is an ActionResult cannot be served, or `None` when it can (or is
/// not an ActionResult at all): `NotFound` when a referenced blob is missing, another code when
/// the store could not answer the check.
async fn incomplete_action_result<B: Backend>(
    backend: &B,
    instance: &str,
    function: DigestFunction,
    body: &[u8],
) -> Option<crate::grpc::Status> {
    use prost::Message;
    let result = ActionResult::decode(body).ok()?;
    let reapi_function = match function {
        DigestFunction::Sha256 => crate::grpc::resource_name::DigestFunction::Sha256,
        DigestFunction::Blake3 => crate::grpc::resource_name::DigestFunction::Blake3,
    };
    validate_action_result(&result, reapi_function).ok()?;
    check_complete(backend, instance, reapi_function, &result)
        .await
        .err()
}

fn function_name(function: DigestFunction) -> &'static str {
    match function {
        DigestFunction::Sha256 => "SHA-256",
        DigestFunction::Blake3 => "BLAKE3",
    }
}

/// `complete_in`: for `/ac/`, the instance whose CAS must hold what an ActionResult references.
async fn get<B: Backend>(
    backend: &B,
    id: KeyId,
    complete_in: Option<&str>,
    function: DigestFunction,
    responder: &mut Responder<'_>,
) -> io::Result<()> {
    match backend.lookup(id).await {
        Ok(Some(handle)) => {
            if let Some(instance) = complete_in {
                if let Some(status) =
                    incomplete_action_result(backend, instance, function, handle.body()).await
                {
                    return match status.code {
                        Code::NotFound => {
                            let missing = status.message;
                            tracing::debug!(%missing, "AC hit answered as a miss: referenced blobs are missing");
                            responder.send(404, b"").await
                        }
                        // The store could not answer the check (stopping, or failing): not a
                        // miss, which would make the client rebuild and re-upload for nothing.
                        Code::Unavailable => responder.send_text(503, &status.message).await,
                        _ => {
                            tracing::error!(message = %status.message, "AC completeness check failed");
                            responder.send_text(500, &status.message).await
                        }
                    };
                }
            }
            responder.header("content-type", "application/octet-stream")?;
            responder.send(200, handle.body()).await
        }
        // Bazel needs Content-Length on the 404 (clients.md §1); the responder always sends it.
        Ok(None) => responder.send(404, b"").await,
        Err(error) => send_store_error(responder, &error).await,
    }
}

async fn put<B: Backend>(
    backend: &B,
    spool: &SpoolBudget,
    id: KeyId,
    cache: Cache,
    digest: ContentDigest,
    request: &mut Request<'_>,
    responder: &mut Responder<'_>,
) -> io::Result<()> {
    let spooled = match request.body.declared_len() {
        Some(_) => None,
        None => match spool.spool(&mut request.body).await {
            Ok(spooled) => Some(spooled),
            Err(SpoolError::TooLarge) => {
                let message = format!(
                    "a chunked upload may hold at most {CHUNKED_UPLOAD_BYTES_MAX} bytes; send Content-Length for larger blobs"
                );
                responder.close_connection();
                return responder.send_text(413, &message).await;
            }
            Err(SpoolError::Busy) => {
                return responder
                    .send_text(
                        503,
                        "too many chunked uploads in progress; retry or send Content-Length",
                    )
                    .await
            }
            Err(SpoolError::Body(error)) => return Err(error),
        },
    };
    let body_len = match &spooled {
        Some(spooled) => spooled.bytes.len() as u64,
        None => request.body.declared_len().unwrap_or(0),
    };
    let (kind, expect) = match cache {
        Cache::Cas => (crate::store::Kind::Cas, Some(digest)),
        Cache::Ac => (crate::store::Kind::Ac, None),
    };
    let put = PutRequest {
        id,
        kind,
        body_len,
        meta: Meta::new(),
        expect,
    };
    let mut reservation = match backend.reserve(put).await {
        Ok(Reserved::Reservation(reservation)) => reservation,
        Ok(Reserved::Exists) => {
            // Already stored: the body is still read (and dropped) so the connection stays usable
            // and the client sees a clean 200 rather than a reset mid-upload.
            if spooled.is_some() {
                return responder.send(200, b"").await;
            }
            return match discard_body(&mut request.body).await {
                Ok(()) => responder.send(200, b"").await,
                Err(error) => Err(error),
            };
        }
        Err(error) => return send_store_error(responder, &error).await,
    };
    let filled = match &spooled {
        Some(spooled) => reservation.write(&spooled.bytes).map_err(FillError::Store),
        None => fill_reservation(&mut request.body, &mut reservation).await,
    };
    match filled {
        Ok(()) => {}
        Err(FillError::Body(error)) => {
            backend.abort(reservation).await;
            return Err(error);
        }
        Err(FillError::Store(error)) => {
            backend.abort(reservation).await;
            return send_store_error(responder, &error).await;
        }
    }
    match backend.commit(reservation).await {
        Ok(()) => responder.send(200, b"").await,
        Err(error) => send_store_error(responder, &error).await,
    }
}

/// The one mapping from store errors to HTTP statuses (shared by the HTTP front-ends).
pub fn status_of(error: &StoreError) -> u16 {
    match error {
        StoreError::TooLarge { .. } => 413,
        StoreError::NoSpace { .. } => 507,
        StoreError::DigestMismatch { .. }
        | StoreError::Truncated { .. }
        | StoreError::Overflow { .. }
        | StoreError::MetaTooLarge { .. } => 400,
        StoreError::TooManyReservations { .. } | StoreError::Unavailable { .. } => 503,
        _ => 500,
    }
}

pub async fn send_store_error(responder: &mut Responder<'_>, error: &StoreError) -> io::Result<()> {
    let status = status_of(error);
    if status >= 500 && status != 507 && status != 503 {
        // File paths and OS errors are for the operator's log, not for clients.
        tracing::error!(%error, "store error");
        return responder.send_text(status, INTERNAL_ERROR_TEXT).await;
    }
    responder.send_text(status, &error.to_string()).await
}

/// The body of a 500: the details are in the server's log only.
const INTERNAL_ERROR_TEXT: &str = "internal storage error (details are in the server log)";

#[cfg(test)]
mod tests {
    use super::*;

    /// A backend whose completeness checks fail (as while the owner shard is closing).
    struct FlakyContains {
        inner: crate::protocols::backend::LocalBackend,
        fail: std::cell::Cell<bool>,
    }

    impl Backend for FlakyContains {
        async fn lookup(&self, id: KeyId) -> Result<Option<crate::store::ReadHandle>, StoreError> {
            self.inner.lookup(id).await
        }
        async fn contains(&self, ids: &[KeyId]) -> Result<Vec<bool>, StoreError> {
            if self.fail.get() {
                return Err(StoreError::Unavailable {
                    what: "shard is closed (server stopping)",
                });
            }
            self.inner.contains(ids).await
        }
        async fn reserve(&self, req: PutRequest) -> Result<Reserved, StoreError> {
            self.inner.reserve(req).await
        }
        async fn commit(&self, r: crate::store::Reservation) -> Result<(), StoreError> {
            self.inner.commit(r).await
        }
        async fn abort(&self, r: crate::store::Reservation) {
            self.inner.abort(r).await
        }
        async fn delete(&self, id: KeyId) -> Result<bool, StoreError> {
            self.inner.delete(id).await
        }
        async fn stats(&self) -> Result<Vec<(u32, crate::store::ShardStats)>, StoreError> {
            Backend::stats(&self.inner).await
        }
    }

    /// Sends `input` on a fresh connection to `router`; the responses.
    fn exchange<B: Backend>(
        router: &crate::protocols::router::Router<B>,
        input: Vec<u8>,
    ) -> Vec<crate::http1::test_support::Response> {
        use crate::http1::test_support::{duplex_bounded, split_responses, TestClock};
        use futures_lite::{AsyncReadExt, AsyncWriteExt};
        let (mut server_end, mut client) = duplex_bounded(usize::MAX, usize::MAX);
        let server = async {
            crate::http1::serve(
                &mut server_end,
                router,
                &TestClock,
                &crate::http1::Limits::default(),
            )
            .await;
            server_end.close().await.unwrap();
        };
        let client = async {
            client.write_all(&input).await.unwrap();
            client.close().await.unwrap();
            let mut output = Vec::new();
            client.read_to_end(&mut output).await.unwrap();
            output
        };
        let ((), output) =
            futures_lite::future::block_on(futures_lite::future::zip(server, client));
        split_responses(&output, &[])
    }

    fn put_request(path: &str, body: &[u8]) -> Vec<u8> {
        let mut request = format!(
            "PUT {path} HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        request
    }

    #[test]
    fn ac_hit_whose_check_cannot_be_answered_is_503_not_a_miss() {
        use crate::grpc::pb::build::bazel::remote::execution::v2::{Digest, OutputFile};
        use prost::Message;
        let dir = tempfile::tempdir().unwrap();
        let config = crate::store::StoreConfig::new(dir.path(), 1);
        crate::store::DataDir::open(&config).unwrap();
        let shard = crate::store::Shard::open(&config, 0).unwrap();
        let backend = std::rc::Rc::new(FlakyContains {
            inner: crate::protocols::backend::LocalBackend::new(shard),
            fail: std::cell::Cell::new(false),
        });
        let router = crate::protocols::router::Router::new(
            backend.clone(),
            crate::protocols::router::HttpOptions {
                bazel_digest: DigestFunction::Sha256,
            },
        );
        let blob = b"an output file".to_vec();
        let blob_hex = ContentDigest::of(DigestFunction::Sha256, &blob).to_hex();
        let result = ActionResult {
            output_files: vec![OutputFile {
                path: "out".into(),
                digest: Some(Digest {
                    hash: blob_hex.clone(),
                    size_bytes: blob.len() as i64,
                }),
                ..Default::default()
            }],
            ..Default::default()
        }
        .encode_to_vec();
        let action_hex = "ac".repeat(32);
        let ac_get = format!("GET /ac/{action_hex} HTTP/1.1\r\nHost: h\r\n\r\n").into_bytes();
        let mut setup = put_request(&format!("/cas/{blob_hex}"), &blob);
        setup.extend(put_request(&format!("/ac/{action_hex}"), &result));
        setup.extend(&ac_get);
        let statuses: Vec<u16> = exchange(&router, setup).iter().map(|r| r.status).collect();
        assert_eq!(statuses, [200, 200, 200], "stored, then a complete hit");

        backend.fail.set(true);
        let responses = exchange(&router, ac_get.clone());
        assert_eq!(responses[0].status, 503);
        assert!(
            String::from_utf8_lossy(&responses[0].body).contains("server stopping"),
            "{:?}",
            responses[0]
        );

        backend.fail.set(false);
        let blob_id = reapi_keys::cas_key("", &ContentDigest::of(DigestFunction::Sha256, &blob));
        assert!(futures_lite::future::block_on(backend.delete(blob_id)).unwrap());
        let responses = exchange(&router, ac_get);
        assert_eq!(responses[0].status, 404, "a missing output is a miss");
    }

    #[test]
    fn paths_with_and_without_prefix() {
        let hex = "ab".repeat(32);
        let cas = format!("/cas/{hex}");
        assert_eq!(
            parse_path(&cas),
            Some(BazelPath {
                instance: String::new(),
                cache: Cache::Cas,
                hex: &hex
            })
        );
        let ac = format!("/team//a/ac/{hex}");
        assert_eq!(
            parse_path(&ac),
            Some(BazelPath {
                instance: "team/a".into(),
                cache: Cache::Ac,
                hex: &hex
            })
        );
        let doubled = format!("//cas//{hex}");
        assert_eq!(parse_path(&doubled).unwrap().cache, Cache::Cas);
        assert_eq!(parse_path("/cas/").unwrap().hex, "");
        for other in [
            "/",
            "/healthz",
            "/cache/abc",
            "/xcas/abc",
            "/v8/artifacts/abc",
        ] {
            assert_eq!(parse_path(other), None, "{other}");
        }
    }

    #[test]
    fn store_errors_map_to_precise_statuses() {
        assert_eq!(status_of(&StoreError::TooLarge { len: 2, max: 1 }), 413);
        assert_eq!(
            status_of(&StoreError::NoSpace {
                needed: 2,
                available: 1
            }),
            507
        );
        let mismatch = StoreError::DigestMismatch {
            expected: "a".into(),
            actual: "b".into(),
        };
        assert_eq!(status_of(&mismatch), 400);
        assert_eq!(status_of(&StoreError::Unavailable { what: "x" }), 503);
        assert_eq!(status_of(&StoreError::Corrupt { what: "x".into() }), 500);
    }
}
