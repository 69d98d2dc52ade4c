//! S3 under token auth, at protocol level (raw SigV4 requests signed by
//! `tessera::protocols::s3::sigv4`): a token's `tessera token --s3` credentials read and write
//! what its scopes on `s3/BUCKET` allow (multipart parts included); every bad credential gets
//! S3's refusal and writes nothing — `InvalidAccessKeyId` (unknown, forged, expired, revoked,
//! unknown kid, not a token), `SignatureDoesNotMatch` (wrong secret), `AccessDenied` (out of
//! scope, anonymous under `auth.anonymous = "none"`), `SlowDown` (over `auth.rate`). Static
//! `[[s3.keys]]` keep working beside tokens, and `auth.anonymous` governs unsigned requests.

mod common;

use std::path::{Path, PathBuf};

use common::http_client::{request_head, Conn, Response};
use common::Tessera;
use ed25519_dalek::SigningKey;
use tessera::auth::keys;
use tessera::auth::s3::{read_secret, secret_access_key};
use tessera::auth::token::{mint, Claims};
use tessera::protocols::s3::sigv4::{amz_date, sha256_hex, Signer, ToSign};

const STATIC_KEY: &str = "AKSTATICWRITER";
const STATIC_SECRET: &str = "static-writer-secret";
const REVOKED_JTI: &str = "revoked-1";

fn now() -> u64 {
    tessera::auth::cli::now_seconds()
}

/// One S3 request signed with (`access_key`, `secret`), or unsigned with `None`.
fn s3(
    addr: std::net::SocketAddr,
    credentials: Option<(&str, &str)>,
    method: &str,
    target: &str,
    body: &[u8],
) -> Response {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    // Canonical query: a bare name is `name=`; pairs sorted.
    let mut pairs: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            if p.contains('=') {
                p.to_string()
            } else {
                format!("{p}=")
            }
        })
        .collect();
    pairs.sort();
    let canonical_query = pairs.join("&");
    let date = amz_date(now());
    let payload = sha256_hex(body);
    let mut headers = vec![
        ("x-amz-date".to_string(), date.clone()),
        ("x-amz-content-sha256".to_string(), payload.clone()),
    ];
    if let Some((access_key, secret)) = credentials {
        let authorization = Signer::new(access_key, secret, "us-east-1").authorization(&ToSign {
            method,
            path,
            query: &canonical_query,
            headers: &[("host", "tessera-test")],
            payload_hash: &payload,
            date: &date,
        });
        headers.push(("authorization".to_string(), authorization));
    }
    let extra: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let mut bytes = request_head(method, target, body.len() as u64, &extra);
    bytes.extend_from_slice(body);
    let mut conn = Conn::open(addr).unwrap();
    conn.send(&bytes).unwrap();
    conn.read_response().unwrap()
}

/// The S3 error code of a response (`<Code>…</Code>`), or `""`.
fn code(response: &Response) -> String {
    let text = response.text();
    text.split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map_or(String::new(), |(code, _)| code.to_string())
}

fn expect(response: &Response, status: u16, error: &str, what: &str) {
    assert_eq!(
        (response.status, code(response).as_str()),
        (status, error),
        "{what}: {}",
        response.text()
    );
}

/// A server trusting `ci.pub`, with its S3 secret beside it, a revocation list, buckets, a
/// static key, and `extra` settings in `[auth]`.
struct Setup {
    _dir: tempfile::TempDir,
    key: SigningKey,
    server_secret: [u8; 32],
    server: Tessera,
}

fn setup(auth_extra: &str, args: &[&str]) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let keys_dir = dir.path().join("keys");
    keys::generate(&keys_dir, "ci").unwrap();
    tessera::auth::s3::ensure_secret(&keys_dir.join("s3.secret")).unwrap();
    let (_, key) = keys::read_signing_key(&keys_dir.join("ci.key")).unwrap();
    let server_secret = read_secret(&keys_dir.join("s3.secret")).unwrap();
    let revoked = dir.path().join("revoked");
    std::fs::write(&revoked, format!("{REVOKED_JTI}\n")).unwrap();
    let config = dir.path().join("tessera.toml");
    std::fs::write(
        &config,
        format!(
            "[auth]\npublic_keys = {:?}\nrevoked = {:?}\n{auth_extra}\n\
             [s3]\nbuckets = [\"main\", \"pr-1\", \"other\"]\n\
             [[s3.keys]]\naccess_key = \"{STATIC_KEY}\"\nsecret_key = \"{STATIC_SECRET}\"\n\
             read = [\"*\"]\nwrite = [\"main\", \"other\"]\n",
            path_text(&keys_dir),
            path_text(&revoked),
        ),
    )
    .unwrap();
    let mut all = vec!["--config".to_string(), path_text(&config)];
    all.extend(args.iter().map(|a| a.to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let server = Tessera::start(&all, &[]);
    Setup {
        _dir: dir,
        key,
        server_secret,
        server,
    }
}

fn path_text(path: &Path) -> String {
    PathBuf::from(path).display().to_string()
}

impl Setup {
    fn token(&self, key: &SigningKey, kid: &str, exp: u64, jti: &str) -> String {
        let claims = Claims {
            sub: "ci-pr".into(),
            exp,
            nbf: None,
            iat: Some(now()),
            jti: Some(jti.into()),
            aud: None,
            read: vec!["s3/main".into()],
            write: vec!["s3/pr-*".into()],
            admin: false,
        };
        mint(key, kid, &claims)
    }

    /// (access key, secret) of a token, as `tessera token --s3` prints them.
    fn credentials(&self, token: &str) -> (String, String) {
        (
            token.to_string(),
            secret_access_key(&self.server_secret, token),
        )
    }
}

#[test]
fn tokens_sign_s3_requests_within_their_scopes_and_bad_ones_are_refused() {
    let setup = setup("", &[]);
    let addr = setup.server.addr();
    let static_key = Some((STATIC_KEY, STATIC_SECRET));
    // A static key works beside the tokens: it seeds main.
    let seeded = s3(addr, static_key, "PUT", "/main/seed", b"from main");
    expect(&seeded, 200, "", "static key PUT");

    let good = setup.token(&setup.key, "ci", now() + 600, "good-1");
    let (ak, sk) = setup.credentials(&good);
    let token = Some((ak.as_str(), sk.as_str()));
    expect(
        &s3(addr, token, "PUT", "/pr-1/built", b"pr output"),
        200,
        "",
        "token PUT in scope",
    );
    let got = s3(addr, token, "GET", "/pr-1/built", b"");
    expect(&got, 200, "", "token GET of its write");
    assert_eq!(got.body, b"pr output");
    let main = s3(addr, token, "GET", "/main/seed", b"");
    expect(&main, 200, "", "token GET of a readable bucket");
    assert_eq!(main.body, b"from main");
    let listed = s3(addr, token, "GET", "/pr-1?list-type=2", b"");
    expect(&listed, 200, "", "token ListObjectsV2");
    assert!(
        listed.text().contains("<Key>built</Key>"),
        "{}",
        listed.text()
    );

    // Multipart parts live in their own namespace but are the bucket's for scopes.
    let created = s3(addr, token, "POST", "/pr-1/multi?uploads", b"");
    expect(&created, 200, "", "token CreateMultipartUpload");
    let text = created.text();
    let upload_id = text
        .split_once("<UploadId>")
        .and_then(|(_, r)| r.split_once("</UploadId>"))
        .map(|(id, _)| id.to_string())
        .expect("an upload id");
    let part = s3(
        addr,
        token,
        "PUT",
        &format!("/pr-1/multi?partNumber=1&uploadId={upload_id}"),
        b"one part",
    );
    expect(&part, 200, "", "token UploadPart");
    let etag = part.header("etag").expect("a part ETag").to_string();
    let complete = format!(
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag}</ETag></Part></CompleteMultipartUpload>"
    );
    expect(
        &s3(
            addr,
            token,
            "POST",
            &format!("/pr-1/multi?uploadId={upload_id}"),
            complete.as_bytes(),
        ),
        200,
        "",
        "token CompleteMultipartUpload",
    );
    assert_eq!(s3(addr, token, "GET", "/pr-1/multi", b"").body, b"one part");

    // Out of scope: AccessDenied, nothing written.
    for (method, target, what) in [
        ("PUT", "/main/poison", "write to a read-only bucket"),
        ("GET", "/other/x", "read outside the scopes"),
        ("GET", "/other?list-type=2", "list outside the scopes"),
        ("DELETE", "/main/seed", "delete in a read-only bucket"),
        (
            "POST",
            "/main/mp?uploads",
            "multipart in a read-only bucket",
        ),
    ] {
        expect(
            &s3(addr, token, method, target, b"poison"),
            403,
            "AccessDenied",
            what,
        );
    }

    // Bad credentials: refused before any store work.
    let other_key = SigningKey::from_bytes(&[42u8; 32]);
    let forged = setup.token(&other_key, "ci", now() + 600, "forged-1");
    let expired = setup.token(&setup.key, "ci", now() - 10, "expired-1");
    let revoked = setup.token(&setup.key, "ci", now() + 600, REVOKED_JTI);
    let unknown_kid = setup.token(&setup.key, "nope", now() + 600, "kid-1");
    let mut flipped = good.clone().into_bytes();
    let last = flipped.len() - 3;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    for (token_text, what) in [
        (&forged, "forged"),
        (&expired, "expired"),
        (&revoked, "revoked"),
        (&unknown_kid, "unknown kid"),
        (&flipped, "flipped signature bit"),
        (&"not.a.token".to_string(), "not a token"),
        (&"AKNOSUCHKEY".to_string(), "unknown static key"),
    ] {
        let (ak, sk) = setup.credentials(token_text);
        for (method, target) in [("PUT", "/pr-1/poison"), ("GET", "/main/seed")] {
            expect(
                &s3(addr, Some((&ak, &sk)), method, target, b"poison"),
                403,
                "InvalidAccessKeyId",
                &format!("{what} token, {method}"),
            );
        }
    }
    // The right token with a wrong secret.
    let other_secret = secret_access_key(&[0u8; 32], &good);
    expect(
        &s3(
            addr,
            Some((&good, &other_secret)),
            "PUT",
            "/pr-1/poison",
            b"x",
        ),
        403,
        "SignatureDoesNotMatch",
        "wrong secret",
    );
    // Unsigned requests on the S3 port follow auth.anonymous (none with keys).
    // Nothing was written by any refusal.
    let poison = s3(addr, static_key, "GET", "/pr-1/poison", b"");
    expect(&poison, 404, "NoSuchKey", "no refused write stored");
    let poison = s3(addr, static_key, "GET", "/main/poison", b"");
    expect(&poison, 404, "NoSuchKey", "no refused write stored");
    expect(
        &s3(addr, static_key, "GET", "/main/seed", b""),
        200,
        "",
        "no refused delete applied",
    );
    // A static key stays within its own globs.
    expect(
        &s3(addr, static_key, "PUT", "/pr-1/static", b"x"),
        403,
        "AccessDenied",
        "static key outside its write globs",
    );
}

#[test]
fn anonymous_s3_follows_auth_anonymous_and_rate_limits_are_slow_down() {
    let setup = setup(
        "anonymous = \"read\"\nrate = \"1/s\"\nburst = 1\n",
        &["--s3-listen", "127.0.0.1:0"],
    );
    let addr = setup.server.addr();
    let s3_port = setup.server.s3_addr().expect("the S3 port");
    let static_key = Some((STATIC_KEY, STATIC_SECRET));
    expect(
        &s3(addr, static_key, "PUT", "/main/open", b"readable"),
        200,
        "",
        "static PUT",
    );
    let read = s3(s3_port, None, "GET", "/main/open", b"");
    expect(&read, 200, "", "anonymous read under auth.anonymous = read");
    assert_eq!(read.body, b"readable");
    expect(
        &s3(s3_port, None, "PUT", "/main/anon", b"x"),
        403,
        "AccessDenied",
        "anonymous write under auth.anonymous = read",
    );
    // One token request per second with a burst of 1: a quick series gets SlowDown.
    let good = setup.token(&setup.key, "ci", now() + 600, "rate-1");
    let (ak, sk) = setup.credentials(&good);
    let statuses: Vec<(u16, String)> = (0..6)
        .map(|i| {
            let r = s3(addr, Some((&ak, &sk)), "PUT", &format!("/pr-1/r{i}"), b"x");
            (r.status, code(&r))
        })
        .collect();
    assert!(
        statuses.contains(&(503, "SlowDown".to_string())),
        "no SlowDown over auth.rate: {statuses:?}"
    );
    assert!(statuses.contains(&(200, String::new())), "{statuses:?}");
}

#[test]
fn the_removed_s3_anonymous_setting_is_refused_with_its_replacement() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tessera.toml");
    std::fs::write(&config, "[s3]\nanonymous = true\n").unwrap();
    let out = common::run_tessera(&["config", "--config", &path_text(&config)], &[]);
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("s3.anonymous") && text.contains("auth.anonymous = \"read-write\""),
        "{text}"
    );
    // The flag is gone; clap names the replacement.
    let out = common::run_tessera(&["config", "--s3-anonymous", "true"], &[]);
    assert!(!out.status.success());
    assert!(out.stderr.contains("--auth-anonymous"), "{}", out.stderr);
}

/// The audit log names the S3 caller's address like every other protocol's: the stored write
/// carries the subject and the client's loopback address, never the server's.
#[test]
fn s3_audit_lines_carry_the_subject_and_the_remote_address() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.log");
    let audit_text = path_text(&audit);
    let setup = setup(
        "",
        &["--audit-log", &audit_text, "--s3-listen", "127.0.0.1:0"],
    );
    let addr = setup.server.addr();
    let s3_port = setup.server.s3_addr().expect("the S3 port");
    let good = setup.token(&setup.key, "ci", now() + 600, "audited-1");
    let (ak, sk) = setup.credentials(&good);
    let token = Some((ak.as_str(), sk.as_str()));
    expect(
        &s3(addr, token, "PUT", "/pr-1/audited", b"audited body"),
        200,
        "",
        "token PUT in scope",
    );
    expect(
        &s3(addr, token, "PUT", "/other/not-mine", b"x"),
        403,
        "AccessDenied",
        "token PUT out of scope",
    );
    // Refused before the store: by s3s's access check (the token's scopes above; an unsigned
    // request under auth.anonymous = none), and by the credential lookup (a token signed by a
    // key the server does not trust).
    expect(
        &s3(s3_port, None, "PUT", "/pr-1/anonymous", b"x"),
        403,
        "AccessDenied",
        "unsigned PUT under auth.anonymous = none",
    );
    let other_key = SigningKey::from_bytes(&[42u8; 32]);
    let forged = setup.token(&other_key, "ci", now() + 600, "forged-audit");
    let (forged_ak, forged_sk) = setup.credentials(&forged);
    expect(
        &s3(
            addr,
            Some((&forged_ak, &forged_sk)),
            "PUT",
            "/pr-1/forged",
            b"x",
        ),
        403,
        "InvalidAccessKeyId",
        "forged token PUT",
    );
    // The right token with a wrong secret, reading.
    let wrong_secret = secret_access_key(&[0u8; 32], &good);
    expect(
        &s3(addr, Some((&good, &wrong_secret)), "GET", "/main/x", b""),
        403,
        "SignatureDoesNotMatch",
        "wrong secret GET",
    );
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let of = |subject: &str| -> Vec<&serde_json::Value> {
        lines
            .iter()
            .filter(|l| l["protocol"] == "s3" && l["subject"] == subject)
            .collect()
    };
    let (unverified, anonymous_lines) = (of("unverified"), of("anonymous"));
    let (forged_lines, mismatched): (Vec<&serde_json::Value>, Vec<&serde_json::Value>) = unverified
        .iter()
        .copied()
        .partition(|l| l["reason"] == "unknown_key");
    assert_eq!(
        mismatched.len(),
        1,
        "one line for the wrong secret: {lines:#?}"
    );
    assert_eq!(
        mismatched[0]["reason"], "bad_signature",
        "{}",
        mismatched[0]
    );
    assert_eq!(mismatched[0]["namespace"], "s3/main", "{}", mismatched[0]);
    assert_eq!(mismatched[0]["operation"], "read", "{}", mismatched[0]);
    assert_eq!(mismatched[0]["status"], "refused", "{}", mismatched[0]);
    let s3_lines: Vec<_> = lines.iter().filter(|l| l["protocol"] == "s3").collect();
    assert_eq!(
        s3_lines.len(),
        of("ci-pr").len() + unverified.len() + anonymous_lines.len(),
        "{lines:#?}"
    );
    assert_eq!(
        anonymous_lines.len(),
        1,
        "one line for the unsigned PUT: {lines:#?}"
    );
    let anonymous = anonymous_lines[0];
    assert_eq!(anonymous["status"], "refused", "{anonymous}");
    assert_eq!(anonymous["reason"], "missing", "{anonymous}");
    assert_eq!(anonymous["namespace"], "s3/pr-1", "{anonymous}");
    let anonymous_remote: std::net::SocketAddr =
        anonymous["remote"].as_str().unwrap().parse().unwrap();
    assert!(anonymous_remote.ip().is_loopback(), "{anonymous}");
    let s3_lines = of("ci-pr");
    assert!(
        s3_lines
            .iter()
            .any(|l| l["status"] == "stored" && l["namespace"] == "s3/pr-1"),
        "{lines:#?}"
    );
    let refused: Vec<_> = s3_lines
        .iter()
        .filter(|l| l["namespace"] == "s3/other")
        .collect();
    assert_eq!(
        refused.len(),
        1,
        "one line for the out-of-scope PUT: {lines:#?}"
    );
    assert_eq!(refused[0]["status"], "refused", "{}", refused[0]);
    assert_eq!(refused[0]["reason"], "scope", "{}", refused[0]);
    assert_eq!(refused[0]["operation"], "write", "{}", refused[0]);
    assert_eq!(refused[0]["jti"], "audited-1", "{}", refused[0]);
    assert!(refused[0]["key"].is_string(), "{}", refused[0]);
    assert_eq!(
        forged_lines.len(),
        1,
        "one line for the forged token: {lines:#?}"
    );
    let forged_line = forged_lines[0];
    assert_eq!(forged_line["status"], "refused", "{forged_line}");
    assert_eq!(forged_line["reason"], "unknown_key", "{forged_line}");
    assert_eq!(forged_line["namespace"], "s3/pr-1", "{forged_line}");
    assert_eq!(forged_line["operation"], "write", "{forged_line}");
    assert!(
        forged_line["message"]
            .as_str()
            .is_some_and(|m| m.contains("InvalidAccessKeyId")),
        "{forged_line}"
    );
    let forged_remote: std::net::SocketAddr =
        forged_line["remote"].as_str().unwrap().parse().unwrap();
    assert!(forged_remote.ip().is_loopback(), "{forged_line}");
    for line in &s3_lines {
        let remote: std::net::SocketAddr = line["remote"]
            .as_str()
            .unwrap_or_else(|| panic!("no remote address in {line}"))
            .parse()
            .unwrap();
        assert!(remote.ip().is_loopback(), "{line}");
        assert_ne!(remote.port(), addr.port(), "{line}");
    }
}
