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
/// not an ActionResult at all).
async fn incomplete_action_result<B: Backend>(
    backend: &B,
    instance: &str,
    function: DigestFunction,
    body: &[u8],
) -> Option<String> {
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
        .map(|status| status.message)
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
                if let Some(missing) =
                    incomplete_action_result(backend, instance, function, handle.body()).await
                {
                    tracing::debug!(%missing, "AC hit answered as a miss: referenced blobs are missing");
                    return responder.send(404, b"").await;
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
        tracing::error!(%error, "store error");
    }
    responder.send_text(status, &error.to_string()).await
}

#[cfg(test)]
mod tests {
    use super::*;

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
