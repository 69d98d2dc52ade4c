//! Authorization on every protocol, through the real binary: the full matrix of bad tokens
//! (none, forged, expired, not yet valid, wrong audience, revoked, unknown kid, `alg: none`,
//! HMAC, flipped bits, over 8 KiB, out of scope) gets the protocol's refusal and writes nothing;
//! a good token reads and writes; refusals are counted on `/metrics`, which needs admin; a new
//! key and a revoked token take effect without a restart.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use common::grpc_client;
use common::http_client::{request_head, sha256_hex, Conn, Response};
use common::Tessera;
use ed25519_dalek::SigningKey;
use prost::Message;
use tessera::auth::keys;
use tessera::auth::token::{mint, Audience, Claims};
use tessera::grpc::pb::build::bazel::remote::execution::v2 as reapi;
use tessera::grpc::Code;

const AUDIENCE: &str = "tessera-test";
const REVOKED_JTI: &str = "revoked-1";

fn now() -> u64 {
    tessera::auth::cli::now_seconds()
}

fn claims(read: &[&str], write: &[&str], admin: bool) -> Claims {
    Claims {
        sub: "tester".into(),
        exp: now() + 3600,
        nbf: None,
        iat: Some(now()),
        jti: Some("good-1".into()),
        aud: Some(Audience::One(AUDIENCE.into())),
        read: read.iter().map(|s| s.to_string()).collect(),
        write: write.iter().map(|s| s.to_string()).collect(),
        admin,
    }
}

/// A server trusting `ci.pub` in its key directory, with a revocation list and an audience.
struct Setup {
    _dir: tempfile::TempDir,
    keys: std::path::PathBuf,
    revoked: std::path::PathBuf,
    key: SigningKey,
    server: Tessera,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    keys::generate(&keys, "ci").unwrap();
    let (_, key) = keys::read_signing_key(&keys.join("ci.key")).unwrap();
    let revoked = dir.path().join("revoked");
    std::fs::write(&revoked, format!("{REVOKED_JTI}\n")).unwrap();
    let config = dir.path().join("tessera.toml");
    std::fs::write(
        &config,
        format!(
            "[auth]\npublic_keys = {:?}\nrevoked = {:?}\naudience = {AUDIENCE:?}\n",
            keys.display().to_string(),
            revoked.display().to_string()
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    let server = Tessera::start(&["--config", &config], &[]);
    Setup {
        _dir: dir,
        keys,
        revoked,
        key,
        server,
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Every bad token, with the metrics reason it must be counted under.
fn bad_tokens(key: &SigningKey) -> Vec<(&'static str, String)> {
    let good = claims(&["*"], &["*"], false);
    let with = |edit: &dyn Fn(&mut Claims)| {
        let mut c = good.clone();
        edit(&mut c);
        mint(key, "ci", &c)
    };
    let valid = mint(key, "ci", &good);
    let parts: Vec<&str> = valid.split('.').collect();
    let flip = |part: usize| {
        let mut bytes = URL_SAFE_NO_PAD.decode(parts[part]).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        let mut p: Vec<String> = parts.iter().map(|s| s.to_string()).collect();
        p[part] = b64(&bytes);
        p.join(".")
    };
    let claims_part = b64(&serde_json::to_vec(&good).unwrap());
    let other_key = SigningKey::from_bytes(&[42u8; 32]);
    vec![
        ("malformed", "not-a-token".to_string()),
        ("bad_signature", mint(&other_key, "ci", &good)),
        ("expired", with(&|c| c.exp = now() - 10)),
        ("not_yet_valid", with(&|c| c.nbf = Some(now() + 3600))),
        (
            "wrong_audience",
            with(&|c| c.aud = Some(Audience::One("elsewhere".into()))),
        ),
        ("revoked", with(&|c| c.jti = Some(REVOKED_JTI.into()))),
        ("unknown_key", mint(key, "nobody", &good)),
        (
            "algorithm",
            format!("{}.{claims_part}.", b64(br#"{"alg":"none","kid":"ci"}"#)),
        ),
        (
            "algorithm",
            format!(
                "{}.{claims_part}.{}",
                b64(br#"{"alg":"HS256","kid":"ci"}"#),
                b64(&[0u8; 32])
            ),
        ),
        ("malformed", flip(0)),
        ("bad_signature", flip(1)),
        ("bad_signature", flip(2)),
        ("too_large", with(&|c| c.sub = "x".repeat(9 * 1024))),
    ]
}

/// One HTTP request with an optional bearer token.
fn http(addr: SocketAddr, method: &str, path: &str, body: &[u8], token: Option<&str>) -> Response {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let extra: Vec<(&str, &str)> = bearer
        .as_deref()
        .map(|b| vec![("Authorization", b)])
        .unwrap_or_default();
    let mut conn = Conn::open(addr).unwrap();
    let mut bytes = request_head(method, path, body.len() as u64, &extra);
    bytes.extend_from_slice(body);
    conn.send(&bytes).unwrap();
    conn.read_response().unwrap()
}

/// A front-end's path for one entry, and how its refusals look.
struct Front {
    name: &'static str,
    path: String,
    /// Nx: `text/plain` exactly; Turbo: JSON.
    content_type: &'static str,
}

fn fronts(body: &[u8]) -> Vec<Front> {
    let hex = sha256_hex(body);
    vec![
        Front {
            name: "bazel-http",
            path: format!("/cas/{hex}"),
            content_type: "text/plain; charset=utf-8",
        },
        Front {
            name: "gradle",
            path: format!("/cache/{}", &hex[..32]),
            content_type: "text/plain; charset=utf-8",
        },
        Front {
            name: "ccache",
            path: format!("/ccache/{}", &hex[..40]),
            content_type: "text/plain; charset=utf-8",
        },
        Front {
            name: "nx",
            path: format!("/v1/cache/{}", &hex[..40]),
            content_type: "text/plain",
        },
        Front {
            name: "turbo",
            path: format!("/v8/artifacts/{}?slug=team", &hex[..40]),
            content_type: "application/json",
        },
    ]
}

fn refusals(addr: SocketAddr, admin: &str) -> String {
    let page = http(addr, "GET", "/metrics", &[], Some(admin));
    assert_eq!(page.status, 200, "{}", page.text());
    page.text()
}

fn counted(page: &str, reason: &str) -> u64 {
    let prefix = format!("tessera_auth_refusals_total{{reason=\"{reason}\"}} ");
    page.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in {page}"))
        .parse()
        .unwrap()
}

#[test]
fn every_http_front_end_refuses_every_bad_token_and_stores_nothing() {
    let setup = setup();
    let addr = setup.server.addr();
    let good = mint(&setup.key, "ci", &claims(&["*"], &["*"], false));
    let admin = mint(&setup.key, "ci", &claims(&[], &[], true));
    let reader = mint(&setup.key, "ci", &claims(&["*"], &[], false));
    let stranger = mint(
        &setup.key,
        "ci",
        &claims(&["bazel/other"], &["bazel/other"], false),
    );
    let body = b"an entry only a good token may write";
    let before = refusals(addr, &admin);

    for front in fronts(body) {
        let name = front.name;
        // No token: 401 asking for a bearer token (Nx and Turbo in their own shapes).
        let none = http(addr, "PUT", &front.path, body, None);
        assert_eq!(none.status, 401, "{name}: {}", none.text());
        assert_eq!(
            none.header("content-type"),
            Some(front.content_type),
            "{name}"
        );
        if !matches!(name, "nx" | "turbo") {
            assert_eq!(
                none.header("www-authenticate"),
                Some("Bearer realm=\"tessera\""),
                "{name}"
            );
        }
        if name == "turbo" {
            assert!(
                none.text().contains("\"not_authenticated\""),
                "{}",
                none.text()
            );
        }
        for (reason, token) in bad_tokens(&setup.key) {
            let refused = http(addr, "PUT", &front.path, body, Some(&token));
            assert_eq!(refused.status, 401, "{name} {reason}: {}", refused.text());
            assert_eq!(refused.header("content-type"), Some(front.content_type));
            let read = http(addr, "GET", &front.path, &[], Some(&token));
            let expected_get = 401;
            assert_eq!(read.status, expected_get, "{name} {reason} GET");
        }
        // Valid but out of scope: 403 on write (and on read, except Nx, whose GET refusals
        // are misses).
        for token in [&stranger, &reader] {
            let refused = http(addr, "PUT", &front.path, body, Some(token));
            assert_eq!(refused.status, 403, "{name}: {}", refused.text());
            assert_eq!(refused.header("content-type"), Some(front.content_type));
        }
        let read = http(addr, "GET", &front.path, &[], Some(&stranger));
        assert_eq!(read.status, if name == "nx" { 404 } else { 403 }, "{name}");
        // Nothing was written by any refusal.
        let absent = http(addr, "GET", &front.path, &[], Some(&good));
        assert_eq!(absent.status, 404, "{name}: a refused PUT stored something");
        // A good token writes and reads.
        let stored = http(addr, "PUT", &front.path, body, Some(&good));
        assert_eq!(stored.status, 200, "{name}: {}", stored.text());
        let hit = http(addr, "GET", &front.path, &[], Some(&reader));
        assert_eq!(hit.status, 200, "{name}");
        assert_eq!(hit.body, body, "{name}");
    }
    // Basic with the token as the password works too (Gradle, ccache userinfo, .netrc).
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("ci:{good}"));
    let mut conn = Conn::open(addr).unwrap();
    let path = &fronts(body)[1].path;
    conn.send(&request_head(
        "GET",
        path,
        0,
        &[("Authorization", &format!("Basic {basic}"))],
    ))
    .unwrap();
    assert_eq!(conn.read_response().unwrap().status, 200);

    // /metrics: admin only; /healthz open; every refusal counted by reason.
    assert_eq!(http(addr, "GET", "/metrics", &[], None).status, 401);
    assert_eq!(http(addr, "GET", "/metrics", &[], Some(&good)).status, 403);
    assert_eq!(http(addr, "GET", "/healthz", &[], None).status, 200);
    let after = refusals(addr, &admin);
    for reason in [
        "missing",
        "malformed",
        "bad_signature",
        "expired",
        "not_yet_valid",
        "wrong_audience",
        "revoked",
        "unknown_key",
        "algorithm",
        "too_large",
        "scope",
    ] {
        assert!(
            counted(&after, reason) > counted(&before, reason),
            "{reason} not counted"
        );
    }
}

fn find_missing(digest: &reapi::Digest) -> Bytes {
    reapi::FindMissingBlobsRequest {
        blob_digests: vec![digest.clone()],
        ..Default::default()
    }
    .encode_to_vec()
    .into()
}

fn batch_update(digest: &reapi::Digest, data: &[u8]) -> Bytes {
    reapi::BatchUpdateBlobsRequest {
        requests: vec![reapi::batch_update_blobs_request::Request {
            digest: Some(digest.clone()),
            data: data.to_vec().into(),
            ..Default::default()
        }],
        ..Default::default()
    }
    .encode_to_vec()
    .into()
}

/// One unary gRPC call with an optional bearer token in the `authorization` metadata.
async fn grpc(
    client: &h2::client::SendRequest<Bytes>,
    path: &str,
    message: Bytes,
    token: Option<&str>,
) -> grpc_client::Reply {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer
        .as_deref()
        .map(|b| vec![("authorization", b)])
        .unwrap_or_default();
    let mut client = client.clone().ready().await.unwrap();
    let (response, mut send) = client
        .send_request(grpc_client::grpc_request_with(path, &headers), false)
        .unwrap();
    grpc_client::send_all(&mut send, grpc_client::frame(&message)).await;
    let _ = send.send_data(Bytes::new(), true);
    grpc_client::read_reply(response).await
}

const FIND_MISSING: &str =
    "/build.bazel.remote.execution.v2.ContentAddressableStorage/FindMissingBlobs";
const BATCH_UPDATE: &str =
    "/build.bazel.remote.execution.v2.ContentAddressableStorage/BatchUpdateBlobs";

#[test]
fn grpc_refuses_bad_tokens_with_unauthenticated_and_scopes_with_permission_denied() {
    let setup = setup();
    let addr = setup.server.addr();
    let key = setup.key.clone();
    grpc_client::run_executor(move || async move {
        let client = grpc_client::connect(addr).await;
        let data = b"grpc entry".to_vec();
        let digest = reapi::Digest {
            hash: sha256_hex(&data),
            size_bytes: data.len() as i64,
        };
        let none = grpc(&client, FIND_MISSING, find_missing(&digest), None).await;
        assert_eq!(none.status.code, Code::Unauthenticated, "{:?}", none.status);
        for (reason, token) in bad_tokens(&key) {
            let reply = grpc(
                &client,
                BATCH_UPDATE,
                batch_update(&digest, &data),
                Some(&token),
            )
            .await;
            assert_eq!(
                reply.status.code,
                Code::Unauthenticated,
                "{reason}: {:?}",
                reply.status
            );
        }
        let reader = mint(&key, "ci", &claims(&["bazel*"], &[], false));
        let reply = grpc(
            &client,
            BATCH_UPDATE,
            batch_update(&digest, &data),
            Some(&reader),
        )
        .await;
        assert_eq!(
            reply.status.code,
            Code::PermissionDenied,
            "{:?}",
            reply.status
        );
        let stranger = mint(&key, "ci", &claims(&["gradle"], &[], false));
        let reply = grpc(
            &client,
            FIND_MISSING,
            find_missing(&digest),
            Some(&stranger),
        )
        .await;
        assert_eq!(
            reply.status.code,
            Code::PermissionDenied,
            "{:?}",
            reply.status
        );
        // Nothing was stored: the blob is still missing for a reader.
        let reply = grpc(&client, FIND_MISSING, find_missing(&digest), Some(&reader)).await;
        let answer =
            reapi::FindMissingBlobsResponse::decode(reply.ok().unwrap()[0].clone()).unwrap();
        assert_eq!(answer.missing_blob_digests.len(), 1);
        let writer = mint(&key, "ci", &claims(&[], &["bazel"], false));
        let reply = grpc(
            &client,
            BATCH_UPDATE,
            batch_update(&digest, &data),
            Some(&writer),
        )
        .await;
        reply.ok().unwrap();
        let reply = grpc(&client, FIND_MISSING, find_missing(&digest), Some(&reader)).await;
        let answer =
            reapi::FindMissingBlobsResponse::decode(reply.ok().unwrap()[0].clone()).unwrap();
        assert!(answer.missing_blob_digests.is_empty());
    });
}

/// Polls `check` until it holds (the reloader looks at the files every second).
fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check() {
        assert!(Instant::now() < deadline, "{what} did not happen");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn new_keys_and_revocations_take_effect_without_a_restart() {
    let setup = setup();
    let addr = setup.server.addr();
    let path = "/cache/0123456789abcdef0123456789abcdef";
    // A key made after the start is not trusted yet…
    let later = setup.keys.parent().unwrap().join("later");
    keys::generate(&later, "rotated").unwrap();
    let (_, rotated) = keys::read_signing_key(&later.join("rotated.key")).unwrap();
    let token = mint(&rotated, "rotated", &claims(&["*"], &["*"], false));
    assert_eq!(http(addr, "GET", path, &[], Some(&token)).status, 401);
    // …until its public key is copied into the key directory.
    copy(&later.join("rotated.pub"), &setup.keys.join("rotated.pub"));
    eventually("trusting the new key", || {
        http(addr, "GET", path, &[], Some(&token)).status == 404
    });
    // Revoking the token's jti refuses it, SIGHUP or not.
    std::fs::write(&setup.revoked, format!("{REVOKED_JTI}\ngood-1\n")).unwrap();
    eventually("refusing the revoked token", || {
        http(addr, "GET", path, &[], Some(&token)).status == 401
    });
    // SIGHUP reloads too (and the server keeps serving).
    std::fs::write(&setup.revoked, "").unwrap();
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(setup.server.pid() as i32, libc::SIGHUP) };
    eventually("accepting the token again", || {
        http(addr, "GET", path, &[], Some(&token)).status == 404
    });
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap();
}

#[test]
fn rate_limits_answer_429_with_retry_after_and_the_audit_log_records_writes_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let keys_dir = dir.path().join("keys");
    keys::generate(&keys_dir, "ci").unwrap();
    let (_, key) = keys::read_signing_key(&keys_dir.join("ci.key")).unwrap();
    let audit = dir.path().join("audit.log");
    let config = dir.path().join("tessera.toml");
    std::fs::write(
        &config,
        format!(
            "audit_log = {:?}\n[auth]\npublic_keys = {:?}\nrate = \"6/m\"\nburst = 3\n",
            audit.display().to_string(),
            keys_dir.display().to_string()
        ),
    )
    .unwrap();
    let server = Tessera::start(
        &[
            "--config",
            &config.display().to_string(),
            "--executors",
            "1",
        ],
        &[],
    );
    let addr = server.addr();
    let mut c = claims(&["*"], &["*"], false);
    c.aud = None;
    let token = mint(&key, "ci", &c);
    let body = b"audited";
    let path = format!("/cache/{}", &sha256_hex(body)[..32]);
    // The PUT on a connection of its own, whose address the audit line must name.
    let mut writer = Conn::open(addr).unwrap();
    let writer_addr = writer.local_addr().unwrap().to_string();
    let bearer = format!("Bearer {token}");
    let mut put = request_head(
        "PUT",
        &path,
        body.len() as u64,
        &[("Authorization", &bearer)],
    );
    put.extend_from_slice(body);
    writer.send(&put).unwrap();
    assert_eq!(writer.read_response().unwrap().status, 200);
    assert_eq!(http(addr, "GET", &path, &[], Some(&token)).status, 200);
    assert_eq!(http(addr, "GET", &path, &[], Some(&token)).status, 200);
    let limited = http(addr, "GET", &path, &[], Some(&token));
    assert_eq!(limited.status, 429, "{}", limited.text());
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=10).contains(&retry), "Retry-After {retry}");
    // Nx fails on 429: a GET over the rate is a miss, a PUT a 403.
    let nx = format!("/v1/cache/{}", &sha256_hex(body)[..40]);
    assert_eq!(http(addr, "GET", &nx, &[], Some(&token)).status, 404);
    assert_eq!(http(addr, "PUT", &nx, body, Some(&token)).status, 403);
    let turbo = http(addr, "GET", "/v8/artifacts/abc?slug=t", &[], Some(&token));
    assert_eq!(turbo.status, 429);
    assert!(turbo.text().contains("rate_limited"), "{}", turbo.text());
    // Another subject has its own budget; an anonymous caller is refused and audited.
    let mut other = claims(&["*"], &[], false);
    other.aud = None;
    other.sub = "other".into();
    assert_eq!(
        http(addr, "GET", &path, &[], Some(&mint(&key, "ci", &other))).status,
        200
    );
    assert_eq!(http(addr, "GET", &path, &[], None).status, 401);
    // An anonymous gRPC call is refused and audited with its connection's address too.
    grpc_client::run_executor(move || async move {
        let client = grpc_client::connect(addr).await;
        let digest = reapi::Digest {
            hash: sha256_hex(body),
            size_bytes: body.len() as i64,
        };
        let none = grpc(&client, FIND_MISSING, find_missing(&digest), None).await;
        assert_eq!(none.status.code, Code::Unauthenticated, "{:?}", none.status);
    });

    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let stored: Vec<_> = lines.iter().filter(|l| l["status"] == "stored").collect();
    assert_eq!(stored.len(), 1, "{lines:#?}");
    assert_eq!(stored[0]["subject"], "tester");
    assert_eq!(stored[0]["namespace"], "gradle");
    assert_eq!(stored[0]["protocol"], "gradle");
    assert_eq!(stored[0]["bytes"], body.len());
    assert_eq!(stored[0]["jti"], "good-1");
    assert_eq!(stored[0]["remote"], writer_addr.as_str(), "{lines:#?}");
    // Every line names the peer: 127.0.0.1 and the client's port, never the server's.
    for line in &lines {
        let remote: SocketAddr = line["remote"].as_str().unwrap().parse().unwrap();
        assert!(remote.ip().is_loopback(), "{line}");
        assert_ne!(remote.port(), addr.port(), "{line}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l["protocol"] == "grpc" && l["reason"] == "missing"),
        "{lines:#?}"
    );
    let reasons: Vec<&str> = lines
        .iter()
        .filter(|l| l["status"] == "refused")
        .map(|l| l["reason"].as_str().unwrap())
        .collect();
    assert!(reasons.contains(&"rate_limited"), "{reasons:?}");
    assert!(reasons.contains(&"missing"), "{reasons:?}");
}

/// Regression: buckets were per executor, so a subject whose connections landed on both
/// executors got twice `auth.rate`. Twenty connections (SO_REUSEPORT spreads them by their
/// ports; all on one executor has odds 2^-19) make two requests each within one second, far
/// less than the 10 s a request's share of `6/m` takes to come back: exactly the burst passes.
#[test]
fn the_rate_limit_holds_for_the_process_when_a_subject_uses_both_executors() {
    const BURST: usize = 10;
    const CONNECTIONS: usize = 20;
    let dir = tempfile::tempdir().unwrap();
    let keys_dir = dir.path().join("keys");
    keys::generate(&keys_dir, "ci").unwrap();
    let (_, key) = keys::read_signing_key(&keys_dir.join("ci.key")).unwrap();
    let server = Tessera::builder()
        .args(["--executors", "2"])
        .config(&format!(
            "[auth]\npublic_keys = {:?}\nrate = \"6/m\"\nburst = {BURST}\n",
            keys_dir.display().to_string()
        ))
        .start();
    let addr = server.addr();
    let mut c = claims(&["*"], &[], false);
    c.aud = None;
    let bearer = format!("Bearer {}", mint(&key, "ci", &c));
    let path = format!("/cache/{}", "cd".repeat(16));
    let started = Instant::now();
    let mut conns: Vec<Conn> = (0..CONNECTIONS)
        .map(|_| Conn::open(addr).unwrap())
        .collect();
    let mut statuses = Vec::new();
    for _round in 0..2 {
        for conn in &mut conns {
            conn.send(&request_head(
                "GET",
                &path,
                0,
                &[("Authorization", &bearer)],
            ))
            .unwrap();
            statuses.push(conn.read_response().unwrap().status);
        }
    }
    let elapsed = started.elapsed();
    let admitted = statuses.iter().filter(|s| **s == 404).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(admitted + limited, 2 * CONNECTIONS, "{statuses:?}");
    // One more request may come back for every 10 s the loop took (none on a sane machine).
    let refilled = (elapsed.as_secs() / 10) as usize;
    assert!(
        (BURST..=BURST + refilled).contains(&admitted),
        "{admitted} of {} requests admitted in {elapsed:?} with burst {BURST}: {statuses:?}",
        2 * CONNECTIONS
    );
}

#[test]
fn the_admin_api_status_json_and_admin_commands_need_the_admin_claim() {
    let setup = setup();
    let addr = setup.server.addr();
    let url = setup.server.url();
    let admin = mint(&setup.key, "ci", &claims(&[], &[], true));
    let writer = mint(&setup.key, "ci", &claims(&["*"], &["*"], false));

    for path in ["/admin/stats", "/admin/namespaces", "/status.json"] {
        let none = http(addr, "GET", path, &[], None);
        assert_eq!(none.status, 401, "{path}: {}", none.text());
        assert_eq!(
            none.header("www-authenticate"),
            Some("Bearer realm=\"tessera\""),
            "{path}"
        );
        let bad = http(addr, "GET", path, &[], Some("not-a-token"));
        assert_eq!(bad.status, 401, "{path}: {}", bad.text());
        let no_claim = http(addr, "GET", path, &[], Some(&writer));
        assert_eq!(no_claim.status, 403, "{path}: {}", no_claim.text());
        let allowed = http(addr, "GET", path, &[], Some(&admin));
        assert_eq!(allowed.status, 200, "{path}: {}", allowed.text());
    }
    let refused = http(addr, "GET", "/admin/stats", &[], None);
    assert!(
        refused.text().contains("\"code\":\"unauthenticated\""),
        "{}",
        refused.text()
    );
    // A refused admin delete deletes nothing: the key is still there for the writer.
    let path = format!("/cache/{}", "ab".repeat(16));
    assert_eq!(http(addr, "PUT", &path, b"kept", Some(&writer)).status, 200);
    let key = format!("/admin/key?namespace=gradle&key={}", "ab".repeat(16));
    assert_eq!(http(addr, "DELETE", &key, &[], Some(&writer)).status, 403);
    assert_eq!(http(addr, "GET", &path, &[], Some(&writer)).status, 200);

    // The CLI sends --token as a bearer token.
    let denied = common::run_tessera(&["stats", "--server", &url], &[]);
    assert_eq!(denied.status.code(), Some(1), "{denied:?}");
    assert!(denied.stderr.contains("401"), "{denied:?}");
    let denied = common::run_tessera(&["namespaces", "--server", &url, "--token", &writer], &[]);
    assert_eq!(denied.status.code(), Some(1), "{denied:?}");
    assert!(denied.stderr.contains("403"), "{denied:?}");
    let stats = common::run_tessera(&["stats", "--server", &url, "--token", &admin], &[]);
    assert!(stats.status.success(), "{stats:?}");
    assert!(stats.stdout.trim_start().starts_with('{'), "{stats:?}");
}

#[test]
fn public_metrics_opens_metrics_and_status_json_but_not_the_admin_api() {
    let dir = tempfile::tempdir().unwrap();
    let keys_dir = dir.path().join("keys");
    keys::generate(&keys_dir, "ci").unwrap();
    let server = Tessera::builder()
        .config(&format!(
            "[auth]\npublic_keys = {:?}\npublic_metrics = true\n",
            keys_dir.display().to_string()
        ))
        .start();
    let addr = server.addr();
    assert_eq!(http(addr, "GET", "/metrics", &[], None).status, 200);
    assert_eq!(http(addr, "GET", "/status.json", &[], None).status, 200);
    assert_eq!(http(addr, "GET", "/admin/stats", &[], None).status, 401);
}
