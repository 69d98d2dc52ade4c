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
use crate::store::{ContentDigest, DigestFunction};

use super::backend::{Backend, Namespace, Protocol, RequestContext};
use super::pipeline::{Op, Plain, Transfer};
use super::reapi::action_result::{check_complete, validate_action_result};
use super::reapi_keys::{self, DigestKey};
use super::router::FrontEndEnv;
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

/// The namespace of a Bazel path under a mount: the mount's own namespace (followed by the
/// path's prefix, if any) or `bazel[/PREFIX]`.
fn namespace_of(mount_namespace: Option<&Namespace>, instance: &str) -> Namespace {
    match (mount_namespace, instance.is_empty()) {
        (None, _) => Namespace::bazel(instance),
        (Some(namespace), true) => namespace.clone(),
        (Some(namespace), false) => Namespace::new(format!("{namespace}/{instance}")),
    }
}

/// Serves one request under the Bazel mount; `rest` is the path after the mount's prefix.
pub async fn handle<B: Backend>(
    env: &FrontEndEnv<'_, B>,
    rest: &str,
    request: &mut Request<'_>,
    responder: &mut Responder<'_>,
) -> io::Result<()> {
    let Some(path) = parse_path(rest) else {
        let message =
            "unknown path: the Bazel cache is at [/prefix]/ac/<hash> and [/prefix]/cas/<hash>";
        return responder.send_text(404, message).await;
    };
    let ctx = env.context(
        namespace_of(env.namespace, &path.instance),
        Protocol::BazelHttp,
    );
    let transfer = env.transfer(&ctx, &Plain);
    let function = env.options.bazel_digest;
    let Some(digest) = ContentDigest::parse_hex(function, path.hex) else {
        let message = format!(
            "`{}` is not a {} hex digest",
            path.hex,
            function_name(function)
        );
        return responder.send_text(400, &message).await;
    };
    let key = match path.cache {
        Cache::Ac => reapi_keys::ac_key(&ctx, &digest),
        Cache::Cas => reapi_keys::cas_key(&ctx, &digest),
    };
    match request.head.method {
        "GET" | "HEAD" if path.cache == Cache::Ac => {
            get_action_result(&transfer, &key, function, responder).await
        }
        "GET" | "HEAD" => transfer.get(&key.key(), responder).await,
        "PUT" => {
            // AC bodies are kept as given; a CAS body must hash to its name.
            let expect = (path.cache == Cache::Cas).then_some(digest);
            let meta = Default::default();
            transfer
                .put(key.key(), meta, expect, false, request, responder)
                .await
        }
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
    ctx: &RequestContext,
    function: DigestFunction,
    body: &[u8],
) -> Option<crate::grpc::Status> {
    use prost::Message;
    let result = ActionResult::decode(body).ok()?;
    validate_action_result(&result, function).ok()?;
    check_complete(backend, ctx, function, &result).await.err()
}

fn function_name(function: DigestFunction) -> &'static str {
    match function {
        DigestFunction::Sha256 => "SHA-256",
        DigestFunction::Blake3 => "BLAKE3",
    }
}

/// GET of an `/ac/` entry: served only if an ActionResult's outputs are all in the CAS.
async fn get_action_result<B: Backend>(
    transfer: &Transfer<'_, B, Plain>,
    key: &DigestKey,
    function: DigestFunction,
    responder: &mut Responder<'_>,
) -> io::Result<()> {
    let handle = match transfer.backend.lookup(transfer.ctx, &key.key()).await {
        Ok(Some(handle)) => handle,
        Ok(None) => return transfer.get_miss(responder).await,
        Err(error) => return transfer.refuse_store(responder, Op::Get, &error).await,
    };
    let check =
        incomplete_action_result(transfer.backend, transfer.ctx, function, handle.body()).await;
    match check.map(|status| (status.code, status.message)) {
        None => {
            transfer
                .send_hit(handle.meta(), handle.body(), responder)
                .await
        }
        Some((Code::NotFound, missing)) => {
            tracing::debug!(%missing, "AC hit answered as a miss: referenced blobs are missing");
            transfer.get_miss(responder).await
        }
        // The store could not answer the check (stopping, or failing): not a miss, which
        // would make the client rebuild and re-upload for nothing.
        Some((Code::Unavailable, message)) => {
            transfer.refuse(responder, Op::Get, 503, &message).await
        }
        Some((_, message)) => {
            tracing::error!(%message, "AC completeness check failed");
            transfer.refuse(responder, Op::Get, 500, &message).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::protocols::backend::{Layer, LocalBackend, ObjectKey};
    use crate::store::StoreError;

    /// A backend whose completeness checks fail (as while the owner shard is closing).
    struct FlakyContains {
        inner: LocalBackend,
        fail: std::cell::Cell<bool>,
    }

    impl Layer for FlakyContains {
        type Inner = LocalBackend;
        fn inner(&self) -> &LocalBackend {
            &self.inner
        }
        async fn contains(
            &self,
            ctx: &RequestContext,
            keys: &[ObjectKey<'_>],
        ) -> Result<Vec<bool>, StoreError> {
            if self.fail.get() {
                return Err(StoreError::Unavailable {
                    what: "shard is closed (server stopping)",
                });
            }
            self.inner.contains(ctx, keys).await
        }
    }

    use crate::protocols::test_support::exchange;

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
            inner: LocalBackend::new(shard),
            fail: std::cell::Cell::new(false),
        });
        let router = crate::protocols::router::Router::new(
            backend.clone(),
            crate::protocols::router::HttpOptions {
                bazel_digest: DigestFunction::Sha256,
                ..Default::default()
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
        let ctx = reapi_keys::context("", Protocol::BazelHttp);
        let blob_key = reapi_keys::cas_key(&ctx, &ContentDigest::of(DigestFunction::Sha256, &blob));
        assert!(
            futures_lite::future::block_on(Backend::delete(&*backend, &ctx, &blob_key.key()))
                .unwrap()
        );
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
}
