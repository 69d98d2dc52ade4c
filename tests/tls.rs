//! TLS beside plaintext on the same port: curl over https (Bazel HTTP paths), plaintext on the
//! same port, `tls_required`'s 426, client certificates mapped to scopes by
//! `[[auth.client_cert]]`, bad handshakes that leave the server serving, and a SIGHUP that swaps
//! the certificate for new connections. Real clients: gRPC over TLS (Python grpcio, ALPN `h2`,
//! with and without a client certificate), Bazel with `https://` (all remote cache hits), and
//! the AWS CLI with `--ca-bundle`.
//!
//! Certificates are made in each test with `openssl` (a test CA, a server certificate for
//! `127.0.0.1` and `localhost`, client certificates). curl and openssl are base tools;
//! Bazel, grpcio and the AWS CLI come from `bash tests/install-deps.sh` (or
//! `TESSERA_SKIP_REAL_CLIENTS=1` skips them).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::http_client::{self, cas_path};
use common::Tessera;

/// A test PKI in a temporary directory: `ca.pem`, `server.pem`/`server.key`, and client
/// certificates issued by [`Pki::client`].
struct Pki {
    dir: tempfile::TempDir,
}

fn openssl(args: &[&str], cwd: &Path) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("openssl runs");
    assert!(
        output.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl Pki {
    fn new() -> Pki {
        let pki = Pki {
            dir: tempfile::tempdir().unwrap(),
        };
        pki.authority("ca", "/CN=Tessera Test CA");
        pki.server("server", "/O=first/CN=localhost");
        pki
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// A self-signed CA: `NAME.pem`, `NAME.key`.
    fn authority(&self, name: &str, subject: &str) {
        let (pem, key) = (format!("{name}.pem"), format!("{name}.key"));
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &pem,
                "-days",
                "2",
                "-subj",
                subject,
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
            self.dir.path(),
        );
    }

    /// A leaf signed by the CA `ca`: `NAME.pem`, `NAME.key`.
    fn issue(&self, ca: &str, name: &str, subject: &str, extensions: &str) {
        let dir = self.dir.path();
        let (pem, key, csr, ext) = (
            format!("{name}.pem"),
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.ext"),
        );
        std::fs::write(dir.join(&ext), extensions).unwrap();
        openssl(
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                subject,
            ],
            dir,
        );
        let (ca_pem, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &ca_pem,
                "-CAkey",
                &ca_key,
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &ext,
            ],
            dir,
        );
    }

    fn server(&self, name: &str, subject: &str) {
        self.issue(
            "ca",
            name,
            subject,
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             extendedKeyUsage=serverAuth\n",
        );
    }

    fn client(&self, ca: &str, name: &str, subject: &str) {
        self.issue(
            ca,
            name,
            subject,
            "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
        );
    }

    /// The TLS settings for the server certificate, as config-file lines.
    fn settings(&self) -> String {
        format!(
            "tls_cert = {:?}\ntls_key = {:?}\n",
            self.path("server.pem"),
            self.path("server.key")
        )
    }
}

/// What curl saw: its exit code, the HTTP status (`000` when none), the HTTP version and the
/// body.
#[derive(Debug)]
struct Curl {
    exit: i32,
    status: String,
    version: String,
    body: String,
    stderr: String,
}

fn curl(args: &[&str]) -> Curl {
    let output = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "20",
            "-w",
            "\n%{http_code} %{http_version}",
        ])
        .args(args)
        .output()
        .expect("curl runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, tail) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    let (status, version) = tail.split_once(' ').unwrap_or((tail, ""));
    Curl {
        exit: output.status.code().unwrap_or(-1),
        status: status.to_string(),
        version: version.to_string(),
        body: body.to_string(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn https(server: &Tessera, path: &str) -> String {
    format!("https://127.0.0.1:{}{path}", server.port())
}

/// Writes `bytes` on a fresh connection and returns what the server sends until it closes
/// (or `None` if it did not close within `wait`).
fn send_and_read_to_close(addr: SocketAddr, bytes: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(wait)).unwrap();
    stream.write_all(bytes).unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Some(seen),
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Some(seen),
            Err(_) => return None,
        }
    }
}

#[test]
fn https_and_plaintext_share_one_port_and_bad_handshakes_hurt_nothing() {
    let pki = Pki::new();
    let server = Tessera::builder()
        .config(&pki.settings())
        .args(["--header-read-timeout", "2s"])
        .small_store()
        .start();
    let ca = pki.path("ca.pem");
    let blob = b"over tls".to_vec();
    let path = cas_path(&blob);
    let body_file = pki.dir.path().join("blob");
    std::fs::write(&body_file, &blob).unwrap();
    let upload = format!("@{}", body_file.display());

    // A PUT and a GET over https (curl offers h2 and http/1.1: it gets HTTP/1.1).
    let put = curl(&[
        "--cacert",
        &ca,
        "-X",
        "PUT",
        "--data-binary",
        &upload,
        &https(&server, &path),
    ]);
    assert_eq!((put.exit, put.status.as_str()), (0, "200"), "{put:?}");
    assert_eq!(put.version, "1.1", "{put:?}");
    let got = curl(&["--cacert", &ca, &https(&server, &path)]);
    assert_eq!(
        (got.status.as_str(), got.body.as_bytes()),
        ("200", &blob[..]),
        "{got:?}"
    );
    // The same port still speaks plaintext, and sees the same store.
    let plain = http_client::get(server.addr(), &path);
    assert_eq!((plain.status, plain.body), (200, blob.clone()));
    let ac = "/ac/".to_string() + &"ab".repeat(32);
    assert_eq!(http_client::put(server.addr(), &ac, b"action").status, 200);
    let got = curl(&["--cacert", &ca, &https(&server, &ac)]);
    assert_eq!(
        (got.status.as_str(), got.body.as_str()),
        ("200", "action"),
        "{got:?}"
    );
    // A client that does not trust the certificate gets no answer, and no store change.
    let untrusted = curl(&[
        "-X",
        "PUT",
        "--data-binary",
        "x",
        &https(&server, &cas_path(b"x")),
    ]);
    assert_ne!(untrusted.exit, 0, "{untrusted:?}");
    assert!(untrusted.stderr.contains("certificate"), "{untrusted:?}");

    // Bad handshakes: a record of garbage, and a client that stalls after the first byte.
    let failures = server.metric("tessera_tls_handshake_failures_total");
    let garbage = [0x16, 0x03, 0x01, 0x00, 0x05, b'h', b'e', b'l', b'l', b'o'];
    let answered = send_and_read_to_close(server.addr(), &garbage, Duration::from_secs(10));
    assert!(answered.is_some(), "a garbage handshake must be closed");
    let stalled = send_and_read_to_close(server.addr(), &[0x16], Duration::from_secs(10));
    assert!(
        stalled.is_some(),
        "a stalled handshake must be closed by header_read_timeout"
    );
    common::eventually("both failures counted", Duration::from_secs(5), || {
        let now = server.metric("tessera_tls_handshake_failures_total");
        (now >= failures + 2).then_some(()).ok_or(format!("{now}"))
    });
    // Plaintext garbage is HTTP's to refuse (400), as before.
    let refused =
        send_and_read_to_close(server.addr(), b"garbage\r\n\r\n", Duration::from_secs(10));
    assert!(String::from_utf8_lossy(&refused.unwrap()).starts_with("HTTP/1.1 400"));
    // …and the server still serves both ways.
    let got = curl(&["--cacert", &ca, &https(&server, &path)]);
    assert_eq!(got.status, "200", "{got:?}");
    assert_eq!(http_client::get(server.addr(), &path).status, 200);
    assert!(server.metric("tessera_tls_handshakes_total") >= 3);
}

#[test]
fn tls_required_answers_plaintext_with_426_and_serves_tls() {
    let pki = Pki::new();
    let server = Tessera::builder()
        .config(&format!("{}tls_required = true\n", pki.settings()))
        .small_store()
        .start();
    let plain = curl(&[&format!(
        "http://127.0.0.1:{}/cas/{}",
        server.port(),
        "00".repeat(32)
    )]);
    assert_eq!(plain.status, "426", "{plain:?}");
    assert!(plain.body.contains("requires TLS"), "{plain:?}");
    let secure = curl(&["--cacert", &pki.path("ca.pem"), &https(&server, "/healthz")]);
    assert_eq!(
        (secure.status.as_str(), secure.body.trim()),
        ("200", "ok"),
        "{secure:?}"
    );
    let ready = curl(&["--cacert", &pki.path("ca.pem"), &https(&server, "/metrics")]);
    assert!(
        ready.body.contains("tessera_tls_plaintext_refused_total 1"),
        "{}",
        ready.body
    );
}

/// A server that verifies client certificates against `ca.pem`: `CN=ci,O=Example` writes
/// `bazel`, `CN=reader` reads it, anonymous callers get nothing.
fn client_cert_server(pki: &Pki) -> Tessera {
    pki.client("ca", "ci", "/O=Example/CN=ci");
    pki.client("ca", "reader", "/CN=reader");
    pki.client("ca", "stranger", "/CN=stranger");
    pki.authority("other-ca", "/CN=Someone Else");
    pki.client("other-ca", "forged", "/O=Example/CN=ci");
    Tessera::builder()
        .config(&format!(
            "{}tls_client_ca = {:?}\n\n[[auth.client_cert]]\nsubject = \"CN=ci,O=Example\"\n\
             write = [\"bazel\"]\n\n[[auth.client_cert]]\nsubject = \"CN=reader\"\n\
             read = [\"bazel*\"]\n",
            pki.settings(),
            pki.path("ca.pem")
        ))
        .small_store()
        .start()
}

#[test]
fn client_certificates_get_the_scopes_of_their_subject() {
    let pki = Pki::new();
    let server = client_cert_server(&pki);
    let ca = pki.path("ca.pem");
    let as_client = |name: &str| -> Vec<String> {
        vec![
            "--cacert".into(),
            ca.clone(),
            "--cert".into(),
            pki.path(&format!("{name}.pem")),
            "--key".into(),
            pki.path(&format!("{name}.key")),
        ]
    };
    let run = |client: Option<&str>, extra: &[&str]| {
        let mut args: Vec<String> = match client {
            Some(name) => as_client(name),
            None => vec!["--cacert".into(), ca.clone()],
        };
        args.extend(extra.iter().map(|s| s.to_string()));
        curl(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let blob = b"written by ci";
    let url = https(&server, &cas_path(blob));
    let put = |client| {
        run(
            client,
            &["-X", "PUT", "--data-binary", "written by ci", &url],
        )
    };

    // No certificate, no token: anonymous gets nothing once certificates grant scopes.
    assert_eq!(put(None).status, "401", "{:?}", put(None));
    // In scope: written.
    let written = put(Some("ci"));
    assert_eq!(
        written.status,
        "200",
        "{written:?}\n{}",
        server.recent_log()
    );
    // Read-only subject: 403 on a write, 200 on a read.
    let refused = put(Some("reader"));
    assert_eq!(refused.status, "403", "{refused:?}");
    assert!(refused.body.contains("CN=reader"), "{refused:?}");
    let read = run(Some("reader"), &[&url]);
    assert_eq!(
        (read.status.as_str(), read.body.as_bytes()),
        ("200", &blob[..])
    );
    // A valid certificate nobody listed is anonymous; one from another CA fails the handshake.
    assert_eq!(run(Some("stranger"), &[&url]).status, "401");
    let forged = run(Some("forged"), &[&url]);
    assert_ne!(forged.exit, 0, "{forged:?}");
    assert_eq!(forged.status, "000", "{forged:?}");
    // Plaintext on the same port is anonymous.
    assert_eq!(http_client::get(server.addr(), &cas_path(blob)).status, 401);
}

/// The subject of the certificate the server presents now, via `openssl s_client`.
fn presented_subject(addr: SocketAddr, ca: &str) -> String {
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect {addr} -CAfile {ca} -verify_return_error </dev/null \
             2>/dev/null | openssl x509 -noout -subject -nameopt RFC2253"
        ))
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

#[test]
fn sighup_swaps_the_certificate_for_new_connections() {
    let pki = Pki::new();
    let server = Tessera::builder()
        .config(&pki.settings())
        .small_store()
        .start();
    let ca = pki.path("ca.pem");
    assert_eq!(
        presented_subject(server.addr(), &ca),
        "subject=CN=localhost,O=first"
    );
    // A new certificate (and key) in place of the old; SIGHUP.
    pki.server("next", "/O=second/CN=localhost");
    for (from, to) in [("next.pem", "server.pem"), ("next.key", "server.key")] {
        std::fs::copy(pki.path(from), pki.path(to)).unwrap();
    }
    server.signal(libc::SIGHUP);
    assert!(
        server.wait_for_log("reloaded the TLS certificate", Duration::from_secs(10)),
        "{}",
        server.recent_log()
    );
    assert_eq!(
        presented_subject(server.addr(), &ca),
        "subject=CN=localhost,O=second"
    );
    // A broken key on the next SIGHUP keeps the certificate in use.
    std::fs::write(pki.path("server.key"), "not a key\n").unwrap();
    server.signal(libc::SIGHUP);
    assert!(
        server.wait_for_log("cannot reload TLS", Duration::from_secs(10)),
        "{}",
        server.recent_log()
    );
    assert_eq!(
        presented_subject(server.addr(), &ca),
        "subject=CN=localhost,O=second"
    );
    let got = curl(&["--cacert", &ca, &https(&server, "/healthz")]);
    assert_eq!(got.status, "200", "{got:?}");
}

#[test]
fn a_missing_or_mismatched_key_stops_start_up_naming_the_setting() {
    let pki = Pki::new();
    pki.server("other", "/CN=other");
    let config = format!(
        "tls_cert = {:?}\ntls_key = {:?}\n",
        pki.path("server.pem"),
        pki.path("other.key")
    );
    let Err(error) = Tessera::builder().config(&config).try_start() else {
        panic!("a key that does not fit the certificate must stop start-up");
    };
    assert!(error.to_string().contains("tls_key"), "{error}");
}

// ---- real clients ----

/// The Python of the grpcio venv that tests/install-deps.sh creates.
fn grpcio_python() -> String {
    std::env::var("TESSERA_GRPCIO_PYTHON")
        .unwrap_or_else(|_| "/opt/tessera-tests/grpcio-venv/bin/python".to_owned())
}

/// FindMissingBlobs over TLS with Python grpcio (ALPN `h2` only), without and with a client
/// certificate; prints the status code name or `MISSING <n>`.
const GRPC_TLS_CLIENT: &str = r#"
import sys, grpc
port, ca, cert, key = sys.argv[1:5]
root = open(ca, "rb").read()
if cert:
    creds = grpc.ssl_channel_credentials(root, open(key, "rb").read(), open(cert, "rb").read())
else:
    creds = grpc.ssl_channel_credentials(root)
channel = grpc.secure_channel(f"127.0.0.1:{port}", creds)
digest = b"\x0a\x40" + b"ab" * 32 + b"\x10\x05"
request = b"\x12" + bytes([len(digest)]) + digest
call = channel.unary_unary("/build.bazel.remote.execution.v2.ContentAddressableStorage/FindMissingBlobs")
try:
    response = call(request, timeout=20)
    print("MISSING", response.count(b"ab" * 32))
except grpc.RpcError as error:
    print(error.code().name)
"#;

#[test]
fn grpc_over_tls_negotiates_h2_and_takes_the_client_certificate() {
    let python = grpcio_python();
    let available = Command::new(&python)
        .args(["-c", "import grpc"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !common::require_real_client(&format!("Python grpcio ({python})"), available) {
        return;
    }
    let pki = Pki::new();
    let server = client_cert_server(&pki);
    let port = server.port().to_string();
    let ca = pki.path("ca.pem");
    let run = |cert: &str, key: &str| {
        let output = Command::new(&python)
            .args(["-c", GRPC_TLS_CLIENT, &port, &ca, cert, key])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    };
    assert_eq!(run("", ""), "UNAUTHENTICATED", "{}", server.recent_log());
    let (cert, key) = (pki.path("reader.pem"), pki.path("reader.key"));
    assert_eq!(run(&cert, &key), "MISSING 1", "{}", server.recent_log());
}

/// Bazel over `https://` fills the cache, then (after `bazel clean`) takes every action from it.
/// Bazel 4.2.3's HTTP cache client ignores `--tls_certificate` and trusts the JVM's trust
/// store, so the test CA goes into a PKCS#12 store named by `--host_jvm_args` in the
/// workspace's `.bazelrc`. (`grpcs://` cannot be shown with Debian's Bazel: its bundled Netty
/// 4.1.48 has no JDK ALPN support and Bazel stops before connecting, "JDK provider does not
/// support ALPN protocol"; see `bazel_over_grpcs_gets_all_remote_hits`.)
#[test]
fn bazel_over_https_gets_all_remote_hits() {
    use common::bazel::{self, BazelSession};
    if !common::require_real_client("bazel (Debian bazel-bootstrap)", bazel::bazel_available()) {
        return;
    }
    let pki = Pki::new();
    let store = pki.path("trust.p12");
    let keytool = Command::new("keytool")
        .args([
            "-importcert",
            "-noprompt",
            "-alias",
            "tessera-test-ca",
            "-file",
        ])
        .args([
            &pki.path("ca.pem"),
            "-keystore",
            &store,
            "-storetype",
            "PKCS12",
        ])
        .args(["-storepass", "changeit"])
        .output()
        .expect("keytool (the JDK Bazel runs on) runs");
    assert!(
        keytool.status.success(),
        "{}",
        String::from_utf8_lossy(&keytool.stderr)
    );
    let server = Tessera::builder()
        .config(&pki.settings())
        .small_store()
        .start();
    let session = BazelSession::new().unwrap();
    let rc = session.workspace().join(".bazelrc");
    let mut text = std::fs::read_to_string(&rc).unwrap_or_default();
    text.push_str(&format!(
        "\nstartup --host_jvm_args=-Djavax.net.ssl.trustStore={store} \
         --host_jvm_args=-Djavax.net.ssl.trustStorePassword=changeit\n"
    ));
    std::fs::write(&rc, text).unwrap();
    let fail = |error: bazel::BazelError| panic!("{error}\ntessera log:\n{}", server.full_log());
    let url = https(&server, "");
    let first = session.build(&url, &[]).unwrap_or_else(fail);
    first.assert_all_executed_and_uploaded();
    let second = session.clean_and_build(&url, &[]).unwrap_or_else(fail);
    second.assert_all_remote_hits();
    assert!(server.metric("tessera_tls_handshakes_total") >= 2);
}

/// The AWS CLI against the S3 endpoint over https, trusting the test CA with `--ca-bundle`.
#[test]
fn aws_cli_copies_over_https_with_a_ca_bundle() {
    let aws = PathBuf::from(
        std::env::var("TESSERA_S3_VENV").unwrap_or_else(|_| "/opt/tessera-tests/s3-venv".into()),
    )
    .join("bin/aws");
    if !common::require_real_client("the AWS CLI (tests/install-deps.sh venv)", aws.exists()) {
        return;
    }
    let pki = Pki::new();
    let server = Tessera::builder()
        .config(&format!(
            // Static keys are keys: metrics need an admin token unless they are public.
            "{}[auth]\npublic_metrics = true\n[s3]\nbuckets = [\"tls\"]\n\n\
             [[s3.keys]]\naccess_key = \"AKTLS\"\n\
             secret_key = \"tls-secret\"\nread = [\"*\"]\nwrite = [\"*\"]\n",
            pki.settings()
        ))
        .small_store()
        .start();
    let work = pki.dir.path();
    let body: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
    std::fs::write(work.join("up.bin"), &body).unwrap();
    let run = |args: &[&str]| -> Output {
        let output = Command::new(&aws)
            .args([
                "--endpoint-url",
                &https(&server, ""),
                "--ca-bundle",
                &pki.path("ca.pem"),
            ])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", "AKTLS")
            .env("AWS_SECRET_ACCESS_KEY", "tls-secret")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            // Over https botocore sends uploads `aws-chunked` (STREAMING-UNSIGNED-PAYLOAD-TRAILER)
            // with a trailing CRC checksum; plaintext never does. Nothing is switched off here:
            // this is the path that must work.
            .env_remove("AWS_REQUEST_CHECKSUM_CALCULATION")
            .env("AWS_CONFIG_FILE", work.join("no-aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                work.join("no-aws-credentials"),
            )
            .current_dir(work)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "aws {}: {}\n{}\ntessera log:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            server.full_log()
        );
        output
    };
    run(&[
        "s3",
        "cp",
        "--only-show-errors",
        "up.bin",
        "s3://tls/dir/up.bin",
    ]);
    let listed = run(&["s3", "ls", "s3://tls/dir/"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("up.bin"));
    run(&[
        "s3",
        "cp",
        "--only-show-errors",
        "s3://tls/dir/up.bin",
        "down.bin",
    ]);
    assert_eq!(std::fs::read(work.join("down.bin")).unwrap(), body);
    assert!(server.metric("tessera_tls_handshakes_total") >= 3);
}

/// Bazel over `grpcs://` (TLS with ALPN `h2`, the CA given by `--tls_certificate`) fills the
/// cache, then (after `bazel clean`) takes every action from it. Debian's Bazel cannot open a
/// gRPC TLS channel (above), so this runs an official release build, which bundles BoringSSL:
/// Bazel 2.1.0 from npm (`tests/install-deps.sh`, `TESSERA_BAZEL_OFFICIAL`).
#[test]
fn bazel_over_grpcs_gets_all_remote_hits() {
    use common::bazel::BazelSession;
    let binary = std::env::var("TESSERA_BAZEL_OFFICIAL")
        .unwrap_or_else(|_| "/opt/tessera-tests/bazel-2.1.0/bazel".into());
    if !common::require_real_client(
        "an official Bazel build (tests/install-deps.sh)",
        Path::new(&binary).exists(),
    ) {
        return;
    }
    let pki = Pki::new();
    let server = Tessera::builder()
        .config(&pki.settings())
        .small_store()
        .start();
    let session = BazelSession::new().unwrap().with_binary(&binary);
    let fail =
        |error: common::bazel::BazelError| panic!("{error}\ntessera log:\n{}", server.full_log());
    let url = format!("grpcs://127.0.0.1:{}", server.port());
    let ca = format!("--tls_certificate={}", pki.path("ca.pem"));
    let first = session.build(&url, &[&ca]).unwrap_or_else(fail);
    first.assert_all_executed_and_uploaded();
    let second = session.clean_and_build(&url, &[&ca]).unwrap_or_else(fail);
    second.assert_all_remote_hits();
    assert!(server.metric("tessera_tls_handshakes_total") >= 2);
    // Without the CA, Bazel must refuse the server's certificate: the channel is really TLS.
    let untrusted = session.clean_and_build(&url, &[]);
    assert!(untrusted.is_err() || !untrusted.unwrap().all_remote_hits());
}
