//! The admin JSON API under `/admin/`, for operators and `tessera stats|namespaces|purge|get|put`.
//!
//! | method and path                               | answer                                        |
//! |-----------------------------------------------|-----------------------------------------------|
//! | `GET /admin/stats`                            | the numbers of `/status.json`                 |
//! | `GET /admin/namespaces`                       | namespaces with what they store and request counts |
//! | `DELETE /admin/namespaces?namespace=NS`       | purge: `{"namespace":…,"purged_objects":…,"purged_bytes":…,"shards":[…]}` |
//! | `GET /admin/key?namespace=NS&key=KEY`         | `{"present":true,"size":…,"age_seconds":…,…}` |
//! | `DELETE /admin/key?namespace=NS&key=KEY`      | `{"deleted":true}` or 404                     |
//! | `GET`/`HEAD`/`PUT /admin/blob?namespace=NS&key=KEY` | the entry's bytes                       |
//!
//! KEY is the client's key in that namespace; in a Bazel namespace (`bazel`, `bazel/INSTANCE`)
//! it is `ac/HASH` or `cas/HASH` (SHA-256, hex), and a `cas/` put must hash to its name.
//! Errors are `{"error":{"code":"not_found","message":"…"}}` with the precise HTTP status.
//!
//! **Purge** deletes every entry of one namespace on every shard (each shard writes one purge
//! record, so it holds across a restart; see `store/FORMAT.md`). Records carry a namespace tag
//! since data format 2; entries written before it are counted under `unknown` and cannot be
//! purged (delete them by key, or let eviction age them out). With an object-store tier, the
//! tier's copies are not deleted: a later read fetches them again.
//!
//! **Authorization** is one call, [`authorize`], made before anything else: the authorization
//! gate's admin check, so once keys are configured the caller's token must carry the `admin`
//! claim (401 without a valid token, 403 without the claim). Key and blob requests then pass
//! the authorization layer too: `admin` grants no data access, the token's scopes do.

use std::borrow::Cow;
use std::io;

use serde::Serialize;

use crate::http1::{Request, Responder};
use crate::store::{ContentDigest, DigestFunction, Kind, StoreError};

use super::backend::{Backend, Identity, Namespace, Protocol, RequestContext};
use super::pipeline::{challenge, status_of, Answer, Dialect, Op};
use super::router::{AdminGuard, FrontEndEnv};
use super::{reapi_keys, status, usage};

/// The prefix the admin API is served under (before any mount: a Bazel instance named `admin`
/// is reachable over gRPC only).
pub const PREFIX: &str = "/admin";

/// Longest opaque key accepted (the HTTP request line bounds it anyway).
pub const KEY_BYTES_MAX: usize = 1024;

/// An admin error: the HTTP status, a stable code and a message.
#[derive(Debug, PartialEq, Eq)]
pub struct AdminError {
    pub status: u16,
    pub code: &'static str,
    pub message: Cow<'static, str>,
}

impl AdminError {
    fn new(status: u16, code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        AdminError {
            status,
            code,
            message: message.into(),
        }
    }

    /// The stable code of an HTTP status.
    pub fn code_of(status: u16) -> &'static str {
        match status {
            400 => "bad_request",
            401 => "unauthenticated",
            403 => "forbidden",
            404 => "not_found",
            405 => "method_not_allowed",
            409 => "exists",
            413 => "too_large",
            501 => "not_implemented",
            503 => "unavailable",
            507 => "no_space",
            _ => "internal",
        }
    }

    fn of_store(error: &StoreError) -> Self {
        let (status, message) = status_of(error);
        AdminError::new(status, Self::code_of(status), message)
    }

    pub fn answer(&self) -> Answer {
        error_answer(self.status, &self.message)
    }
}

/// `{"error":{"code":…,"message":…}}` with `status`.
fn error_answer(status: u16, message: &str) -> Answer {
    let body = serde_json::json!({
        "error": {"code": AdminError::code_of(status), "message": message}
    });
    Answer::json(status, body.to_string())
}

/// The admin check: every admin request passes here first.
///
/// `guard` is the authorization gate's admin check (`auth::gate::Gate::check_admin`): the bearer
/// token in `identity` must verify and carry the `admin` claim, or the answer is 401 (no or a
/// bad token) or 403 (no `admin` claim). With no keys configured the anonymous policy decides
/// (its loopback-only `read-write` default admits everyone). No guard (a bare router in unit
/// tests) admits every caller.
pub fn authorize(guard: Option<&AdminGuard>, identity: &Identity) -> Result<(), AdminError> {
    match guard {
        Some(guard) => guard(identity).map_err(|error| AdminError::of_store(&error)),
        None => Ok(()),
    }
}

/// Admin errors as JSON, for the transfer pipeline (blob GET/PUT).
struct AdminDialect;

impl Dialect for AdminDialect {
    fn refusal(&self, _op: Op, status: u16, message: &str) -> Answer {
        error_answer(status, message)
    }
    fn miss(&self) -> Answer {
        error_answer(404, "no entry with this key")
    }
    fn stored(&self) -> Answer {
        Answer::json(200, r#"{"stored":true}"#.into())
    }
}

/// A request's `namespace` and `key` query parameters, checked.
struct Target {
    ctx: RequestContext,
    kind: Kind,
    name: Vec<u8>,
    /// A `cas/` key's digest: a put must hash to it.
    expect: Option<ContentDigest>,
    key: String,
}

/// Percent-decodes a query component (`+` is a space, as forms send it).
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The value of query parameter `name`.
fn query_param(query: Option<&str>, name: &str) -> Result<Option<String>, AdminError> {
    for pair in query.unwrap_or("").split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key == name {
            return percent_decode(value).map(Some).ok_or_else(|| {
                AdminError::new(
                    400,
                    "bad_request",
                    format!("`{name}` is not valid percent-encoded UTF-8"),
                )
            });
        }
    }
    Ok(None)
}

fn required(query: Option<&str>, name: &str) -> Result<String, AdminError> {
    query_param(query, name)?
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            AdminError::new(
                400,
                "bad_request",
                format!("the query parameter `{name}` is required"),
            )
        })
}

fn namespace_of(query: Option<&str>) -> Result<Namespace, AdminError> {
    let namespace = required(query, "namespace")?;
    crate::config::mount::check_namespace(&namespace).map_err(|why| {
        AdminError::new(400, "bad_request", format!("namespace `{namespace}` {why}"))
    })?;
    Ok(Namespace::new(namespace))
}

fn target(
    query: Option<&str>,
    identity: &Identity,
    remote: Option<std::net::SocketAddr>,
) -> Result<Target, AdminError> {
    let namespace = namespace_of(query)?;
    let key = required(query, "key")?;
    let ctx = RequestContext {
        identity: identity.clone(),
        remote,
        ..RequestContext::new(namespace, Protocol::Admin)
    };
    if ctx.namespace.bazel_instance().is_none() {
        if key.len() > KEY_BYTES_MAX {
            return Err(AdminError::new(
                400,
                "bad_request",
                format!("a key is at most {KEY_BYTES_MAX} bytes"),
            ));
        }
        return Ok(Target {
            ctx,
            kind: Kind::Blob,
            name: key.as_bytes().to_vec(),
            expect: None,
            key,
        });
    }
    let bad = || {
        AdminError::new(
            400,
            "bad_request",
            format!("in a Bazel namespace a key is `ac/HASH` or `cas/HASH` (64 hex digits of SHA-256), not `{key}`"),
        )
    };
    let (kind, hex) = match key.split_once('/') {
        Some(("ac", hex)) => (Kind::Ac, hex),
        Some(("cas", hex)) => (Kind::Cas, hex),
        _ => return Err(bad()),
    };
    let digest = ContentDigest::parse_hex(DigestFunction::Sha256, hex).ok_or_else(bad)?;
    Ok(Target {
        ctx,
        kind,
        name: reapi_keys::name(&digest).to_vec(),
        expect: (kind == Kind::Cas).then_some(digest),
        key,
    })
}

#[derive(Serialize)]
struct KeyInfo<'a> {
    namespace: &'a str,
    key: &'a str,
    present: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    age_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Serves one request under [`PREFIX`].
pub async fn handle<B: Backend>(
    env: &FrontEndEnv<'_, B>,
    guard: Option<&AdminGuard>,
    request: &mut Request<'_>,
    responder: &mut Responder<'_>,
) -> io::Result<()> {
    if let Err(error) = authorize(guard, &env.identity) {
        challenge(responder, error.status)?;
        return error.answer().send(responder).await;
    }
    let path = request.head.path();
    let query = request.head.query();
    let method = request.head.method;
    let answer = match (method, path.strip_prefix(PREFIX).unwrap_or("")) {
        ("GET", "/stats") => match status::status_json(env.backend).await {
            Ok(body) => Answer::json(200, body),
            Err(error) => AdminError::of_store(&error).answer(),
        },
        ("GET", "/namespaces") => namespaces(env.backend).await,
        ("DELETE", "/namespaces") => match namespace_of(query) {
            Ok(namespace) => {
                let ctx = RequestContext {
                    identity: env.identity.clone(),
                    ..RequestContext::new(namespace, Protocol::Admin)
                };
                purge(env.backend, &ctx).await
            }
            Err(error) => error.answer(),
        },
        ("GET" | "HEAD", "/key") => match target(query, &env.identity, env.remote) {
            Ok(target) => key_info(env.backend, &target).await,
            Err(error) => error.answer(),
        },
        ("DELETE", "/key") => match target(query, &env.identity, env.remote) {
            Ok(target) => delete(env.backend, &target).await,
            Err(error) => error.answer(),
        },
        ("GET" | "HEAD" | "PUT", "/blob") => {
            return blob(env, query, request, responder).await;
        }
        (_, "/stats" | "/namespaces" | "/key" | "/blob") => {
            let allow = match path.strip_prefix(PREFIX).unwrap_or("") {
                "/stats" => "GET",
                "/namespaces" => "GET, DELETE",
                "/key" => "GET, HEAD, DELETE",
                _ => "GET, HEAD, PUT",
            };
            responder.header("allow", allow)?;
            error_answer(405, &format!("{path} supports {allow}"))
        }
        _ => error_answer(
            404,
            "no such admin endpoint; see /admin/stats, /admin/namespaces, /admin/key, /admin/blob",
        ),
    };
    responder.header("cache-control", "no-store")?;
    answer.send(responder).await
}

/// Every namespace that stores something or was asked for something: what it stores (largest
/// first) and its request counts since the server started.
async fn namespaces<B: Backend>(backend: &B) -> Answer {
    let shards = match backend.stats().await {
        Ok(shards) => shards,
        Err(error) => return AdminError::of_store(&error).answer(),
    };
    let mut requests: std::collections::HashMap<String, usage::Counts> =
        usage::snapshot().into_iter().collect();
    let mut list: Vec<serde_json::Value> = Vec::new();
    let row = |namespace: &str, stored: crate::store::NamespaceUsage, c: usage::Counts| {
        serde_json::json!({
            "namespace": namespace,
            "stored_objects": stored.objects,
            "stored_bytes": stored.bytes,
            "hits": c.hits,
            "misses": c.misses,
            "puts": c.puts,
            "bytes_written": c.bytes_written,
        })
    };
    for (namespace, stored) in usage::stored(&shards) {
        let counts = requests.remove(&namespace).unwrap_or_default();
        list.push(row(&namespace, stored, counts));
    }
    let mut idle: Vec<(String, usage::Counts)> = requests.into_iter().collect();
    idle.sort_by(|a, b| b.1.requests().cmp(&a.1.requests()).then(a.0.cmp(&b.0)));
    for (namespace, counts) in idle {
        list.push(row(&namespace, Default::default(), counts));
    }
    let body = serde_json::json!({
        "namespaces": list,
        "note": "stored_*: live entries and their log bytes, largest first (at most 64 names, the rest as `other`; `unknown`: entries written before namespace tags); hits/misses/puts/bytes_written: requests since the server started",
    });
    Answer::json(200, body.to_string())
}

/// Purges the context's namespace on every shard and answers with what was deleted.
async fn purge<B: Backend>(backend: &B, ctx: &RequestContext) -> Answer {
    match backend.purge(ctx).await {
        Ok(shards) => {
            let objects: u64 = shards.iter().map(|(_, u)| u.objects).sum();
            let bytes: u64 = shards.iter().map(|(_, u)| u.bytes).sum();
            tracing::info!(namespace = %ctx.namespace, objects, bytes, "namespace purged");
            let per_shard: Vec<serde_json::Value> = shards
                .iter()
                .map(|(shard, u)| {
                    serde_json::json!({"shard": shard, "objects": u.objects, "bytes": u.bytes})
                })
                .collect();
            let body = serde_json::json!({
                "namespace": ctx.namespace.as_str(),
                "purged_objects": objects,
                "purged_bytes": bytes,
                "shards": per_shard,
            });
            Answer::json(200, body.to_string())
        }
        Err(error) => AdminError::of_store(&error).answer(),
    }
}

async fn key_info<B: Backend>(backend: &B, target: &Target) -> Answer {
    let key = target.ctx.key(target.kind, &target.name);
    let handle = match backend.lookup(&target.ctx, &key).await {
        Ok(handle) => handle,
        Err(error) => return AdminError::of_store(&error).answer(),
    };
    let now_ms = super::metrics::now_unix_ms();
    let info = KeyInfo {
        namespace: target.ctx.namespace.as_str(),
        key: &target.key,
        present: handle.is_some(),
        size: handle.as_ref().map(|h| h.body().len() as u64),
        age_seconds: handle
            .as_ref()
            .map(|h| now_ms.saturating_sub(h.created_ms()) as f64 / 1000.0),
        metadata: handle.as_ref().map(|h| {
            h.meta()
                .iter()
                .map(|(name, value)| {
                    let value = String::from_utf8_lossy(value).into_owned();
                    (name.to_owned(), serde_json::Value::String(value))
                })
                .collect()
        }),
    };
    let status = if info.present { 200 } else { 404 };
    Answer::json(status, serde_json::to_string(&info).expect("serializes"))
}

async fn delete<B: Backend>(backend: &B, target: &Target) -> Answer {
    let key = target.ctx.key(target.kind, &target.name);
    match backend.delete(&target.ctx, &key).await {
        Ok(true) => Answer::json(200, r#"{"deleted":true}"#.into()),
        Ok(false) => error_answer(404, "no entry with this key"),
        Err(error) => AdminError::of_store(&error).answer(),
    }
}

async fn blob<B: Backend>(
    env: &FrontEndEnv<'_, B>,
    query: Option<&str>,
    request: &mut Request<'_>,
    responder: &mut Responder<'_>,
) -> io::Result<()> {
    let target = match target(query, &env.identity, env.remote) {
        Ok(target) => target,
        Err(error) => return error.answer().send(responder).await,
    };
    let transfer = env.transfer(&target.ctx, &AdminDialect);
    let key = target.ctx.key(target.kind, &target.name);
    match request.head.method {
        "PUT" => match transfer.kept_meta(request) {
            Ok(meta) => {
                transfer
                    .put(key, meta, target.expect, false, request, responder)
                    .await
            }
            Err(error) => transfer.refuse_store(responder, Op::Put, &error).await,
        },
        _ => transfer.get(&key, responder).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_percent_decoded() {
        let query = Some("namespace=turbo%2Fteam&key=a+b%21&empty=");
        assert_eq!(
            query_param(query, "namespace").unwrap().as_deref(),
            Some("turbo/team")
        );
        assert_eq!(query_param(query, "key").unwrap().as_deref(), Some("a b!"));
        assert_eq!(query_param(query, "missing").unwrap(), None);
        assert!(query_param(Some("key=%zz"), "key").is_err());
        assert!(query_param(Some("key=%ff"), "key").is_err(), "not UTF-8");
        assert_eq!(required(query, "empty").unwrap_err().status, 400);
    }

    #[test]
    fn bazel_keys_are_ac_or_cas_digests_and_other_keys_are_opaque() {
        let hash = "a".repeat(64);
        let cas = target(
            Some(&format!("namespace=bazel&key=cas/{hash}")),
            &Identity::default(),
            None,
        )
        .unwrap();
        assert_eq!(cas.kind, Kind::Cas);
        assert!(cas.expect.is_some());
        let ac = target(
            Some(&format!("namespace=bazel/team&key=ac/{hash}")),
            &Identity::default(),
            None,
        )
        .unwrap();
        assert_eq!((ac.kind, ac.expect), (Kind::Ac, None));
        for bad in [
            "blob/aa",
            "cas/xyz",
            "cas",
            &format!("ac/{}", "a".repeat(63)),
        ] {
            let error = target(
                Some(&format!("namespace=bazel&key={bad}")),
                &Identity::default(),
                None,
            )
            .err()
            .unwrap_or_else(|| panic!("{bad} accepted"));
            assert_eq!(error.status, 400);
        }
        let gradle = target(
            Some("namespace=gradle&key=cas/zz"),
            &Identity::default(),
            None,
        )
        .unwrap();
        assert_eq!(
            (gradle.kind, gradle.name.as_slice()),
            (Kind::Blob, &b"cas/zz"[..])
        );
        assert_eq!(
            target(Some("namespace=/x&key=k"), &Identity::default(), None)
                .err()
                .unwrap()
                .status,
            400
        );
    }

    #[test]
    fn errors_are_json_with_a_code_and_a_message() {
        let answer = error_answer(507, "full");
        let value: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
        assert_eq!(answer.status, 507);
        assert_eq!(value["error"]["code"], "no_space");
        assert_eq!(value["error"]["message"], "full");
    }
}
