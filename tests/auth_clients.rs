//! Tokens with the real clients, each configured the way the README's "Securing it" says:
//! Gradle `credentials { username; password = TOKEN }` (HTTP Basic), ccache URL userinfo and its
//! `bearer-token` attribute, `NX_SELF_HOSTED_REMOTE_CACHE_ACCESS_TOKEN`, `TURBO_TOKEN`. For each,
//! one run with a good token gets a remote hit, and one run with a bad token is refused the way
//! that client shows it (a warning, an error counter, a failed task) and stores nothing: the
//! store's object count does not move and the audit log has refusals but no write from it.
//! The full matrix of bad tokens runs at protocol level (`tests/auth_protocols.rs`); Bazel's
//! rows (`--remote_header`, `.netrc`) are in `tests/auth_bazel.rs`.
//!
//! Needs the clients: `bash tests/install-deps.sh` (or `TESSERA_SKIP_REAL_CLIENTS=1` to skip).

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;

use common::cache_clients::{run_driver, DriverRun};
use common::http_client::{request_head, Conn, Response};
use common::Tessera;
use ed25519_dalek::SigningKey;
use tessera::auth::cli::now_seconds;
use tessera::auth::keys;
use tessera::auth::token::{mint, Claims};

/// A server trusting `ci.pub`, with an audit log; the signing key and an admin token.
struct Setup {
    _dir: tempfile::TempDir,
    audit: PathBuf,
    key: SigningKey,
    admin: String,
    server: Tessera,
}

fn claims(subject: &str, read: &[&str], write: &[&str], admin: bool, exp: u64) -> Claims {
    Claims {
        sub: subject.into(),
        exp,
        nbf: None,
        iat: Some(now_seconds()),
        jti: Some(format!("{subject}-1")),
        aud: None,
        read: read.iter().map(|s| s.to_string()).collect(),
        write: write.iter().map(|s| s.to_string()).collect(),
        admin,
    }
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let keys_dir = dir.path().join("keys");
    keys::generate(&keys_dir, "ci").unwrap();
    let (_, key) = keys::read_signing_key(&keys_dir.join("ci.key")).unwrap();
    let audit = dir.path().join("audit.jsonl");
    let server = Tessera::builder()
        .config(&format!(
            "audit_log = {:?}\n[auth]\npublic_keys = {:?}\n",
            audit.display().to_string(),
            keys_dir.display().to_string()
        ))
        .start();
    let admin = mint(
        &key,
        "ci",
        &claims("ops", &[], &[], true, now_seconds() + 3600),
    );
    Setup {
        _dir: dir,
        audit,
        key,
        admin,
        server,
    }
}

impl Setup {
    /// A token for `namespace` (read and write), valid for an hour.
    fn writer(&self, subject: &str, namespace: &str) -> String {
        let c = claims(subject, &[], &[namespace], false, now_seconds() + 3600);
        mint(&self.key, "ci", &c)
    }

    /// The same claims signed by a key the server does not trust (same `kid`).
    fn forged(&self, subject: &str, namespace: &str) -> String {
        let stranger = SigningKey::from_bytes(&[7u8; 32]);
        let c = claims(subject, &[], &[namespace], false, now_seconds() + 3600);
        mint(&stranger, "ci", &c)
    }

    /// A token for `namespace` that expired a minute ago.
    fn expired(&self, subject: &str, namespace: &str) -> String {
        let c = claims(subject, &[], &[namespace], false, now_seconds() - 60);
        mint(&self.key, "ci", &c)
    }

    fn metrics(&self) -> String {
        let response = get_with(self.server.addr(), "/metrics", &self.admin);
        assert_eq!(response.status, 200, "{}", response.text());
        response.text()
    }

    /// Live records in the whole store.
    fn objects(&self) -> u64 {
        sum_of(&self.metrics(), "tessera_store_objects{")
    }

    /// `tessera_auth_refusals_total{reason}`.
    fn refusals(&self, reason: &str) -> u64 {
        sum_of(
            &self.metrics(),
            &format!("tessera_auth_refusals_total{{reason=\"{reason}\"}}"),
        )
    }

    /// The audit lines of `protocol`: (status, subject) of each.
    fn audited(&self, protocol: &str) -> Vec<(String, String)> {
        std::fs::read_to_string(&self.audit)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
            .filter(|line| line["protocol"] == protocol)
            .map(|line| {
                (
                    line["status"].as_str().unwrap_or("").to_owned(),
                    line["subject"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    }

    /// Runs a driver; panics with the server's log if it fails.
    fn drive(&self, client: &str, args: &[&str], url: &str) -> DriverRun {
        let run = run_driver(client, args, url)
            .unwrap_or_else(|error| panic!("{error}\ntessera log:\n{}", self.server.full_log()));
        eprintln!(
            "auth_clients: {client}: {} ({} ms)",
            run.summary,
            run.elapsed.as_millis()
        );
        run
    }

    /// Runs `refused` (a driver run with a bad token) and checks that it stored nothing, that
    /// the server counted refusals for `reason`, and that the audit log has refusals of
    /// `protocol` and no write by `subject`.
    fn assert_refused_and_nothing_stored(
        &self,
        protocol: &str,
        reason: &str,
        subject_written: &str,
        refused: impl FnOnce(),
    ) {
        let (objects, refusals) = (self.objects(), self.refusals(reason));
        let audited = self.audited(protocol).len();
        refused();
        assert_eq!(
            self.objects(),
            objects,
            "{protocol}: a refused client stored something"
        );
        assert!(
            self.refusals(reason) > refusals,
            "{protocol}: no refusal counted as {reason}"
        );
        let lines = self.audited(protocol);
        let new = &lines[audited..];
        assert!(
            new.iter().any(|(status, _)| status == "refused"),
            "{protocol}: no refusal audited: {new:?}"
        );
        assert!(
            !new.iter()
                .any(|(status, subject)| status == "stored" && subject == subject_written),
            "{protocol}: a write audited after the refused run: {new:?}"
        );
    }
}

fn get_with(addr: SocketAddr, path: &str, token: &str) -> Response {
    let bearer = format!("Bearer {token}");
    let mut conn = Conn::open(addr).unwrap();
    conn.send(&request_head("GET", path, 0, &[("Authorization", &bearer)]))
        .unwrap();
    conn.read_response().unwrap()
}

fn sum_of(page: &str, prefix: &str) -> u64 {
    page.lines()
        .filter(|line| line.starts_with(prefix))
        .map(|line| {
            let (_, value) = line.rsplit_once(' ').expect("a sample line");
            value.parse::<u64>().expect("an integer sample")
        })
        .sum()
}

#[test]
fn gradle_sends_the_token_as_its_basic_password() {
    if common::skip_real_client("Gradle") {
        return;
    }
    let setup = setup();
    let url = format!("{}/cache/", setup.server.url());
    let good = setup.writer("gradle-ci", "gradle");
    let run = setup.drive("gradle", &["--token", &good], &url);
    assert_eq!(run.value("second"), Some("from-cache"));
    assert_eq!(setup.objects(), 1);
    assert!(setup
        .audited("gradle")
        .contains(&("stored".into(), "gradle-ci".into())));

    let forged = setup.forged("gradle-forger", "gradle");
    setup.assert_refused_and_nothing_stored("gradle", "bad_signature", "gradle-forger", || {
        let run = setup.drive("gradle", &["--token", &forged, "--expect-refused"], &url);
        assert_eq!(run.value("refused"), Some("401"));
    });
}

#[test]
fn ccache_sends_the_token_as_url_userinfo_or_its_bearer_token_attribute() {
    if common::skip_real_client("ccache") {
        return;
    }
    let setup = setup();
    let addr = setup.server.addr();
    let good = setup.writer("ccache-ci", "ccache");
    let userinfo = format!("http://ci:{good}@{addr}/ccache");
    let run = setup.drive("ccache", &[], &userinfo);
    assert_eq!(run.value("second"), Some("hit"));
    let bearer = format!("http://{addr}/ccache|bearer-token={good}");
    let run = setup.drive("ccache", &[], &bearer);
    assert_eq!(run.value("second"), Some("hit"));
    // Two results and one manifest (the second run rewrote the first's).
    assert_eq!(setup.objects(), 3);

    let expired = setup.expired("ccache-late", "ccache");
    let url = format!("http://{addr}/ccache|bearer-token={expired}");
    setup.assert_refused_and_nothing_stored("ccache", "expired", "ccache-late", || {
        let run = setup.drive("ccache", &["--expect-refused"], &url);
        assert_eq!(run.value("first"), Some("refused"));
    });
}

#[test]
fn nx_sends_its_access_token_as_a_bearer_token() {
    if common::skip_real_client("Nx") {
        return;
    }
    let setup = setup();
    let url = setup.server.url();
    let good = setup.writer("nx-ci", "nx");
    let run = setup.drive("nx", &["--token", &good], &url);
    assert_eq!(run.value("second"), Some("remote-hit"));
    assert_eq!(setup.objects(), 1);

    let forged = setup.forged("nx-forger", "nx");
    setup.assert_refused_and_nothing_stored("nx", "bad_signature", "nx-forger", || {
        let run = setup.drive("nx", &["--token", &forged, "--expect-unauthorized"], &url);
        assert_eq!(run.value("first"), Some("unauthorized"));
    });
}

#[test]
fn turbo_sends_turbo_token_as_a_bearer_token() {
    if common::skip_real_client("Turborepo") {
        return;
    }
    let setup = setup();
    let url = setup.server.url();
    let good = setup.writer("turbo-ci", "turbo/*");
    let args = [
        "--token",
        &good,
        "--team",
        "team-a",
        "--other-team",
        "team-b",
    ];
    let run = setup.drive("turbo", &args, &url);
    assert_eq!(run.value("a2"), Some("remote-hit"));
    assert_eq!(run.value("b2"), Some("remote-hit"));
    assert_eq!(setup.objects(), 2);

    let expired = setup.expired("turbo-late", "turbo/*");
    setup.assert_refused_and_nothing_stored("turbo", "expired", "turbo-late", || {
        let args = ["--token", &expired, "--team", "team-a", "--expect-refused"];
        let run = setup.drive("turbo", &args, &url);
        assert_eq!(run.value("first"), Some("refused"));
    });
}
