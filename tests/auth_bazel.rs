//! Read-through namespaces with real Bazel (the CREEP scenario, CVE-2025-36852): a main-branch
//! build fills `bazel/main`; a pull-request build whose token reads `bazel/main` and writes
//! `bazel/pr-42` gets main's hits and stores its own results in `bazel/pr-42`; a later main
//! build never hits what the pull request wrote. Tokens travel as Bazel sends them,
//! `--remote_header=Authorization=Bearer …`, over HTTP and as gRPC metadata, and as the password
//! of a `.netrc` entry (Basic; Bazel reads the file named by `NETRC`); a build with a refused
//! token only warns and stores nothing in main.
//!
//! Needs `bazel`: `bash tests/install-deps.sh` (or `TESSERA_SKIP_REAL_CLIENTS=1` to skip).

mod common;

use common::bazel::{self, BazelSession, BuildSummary, WORKSPACE_ACTIONS};
use common::Tessera;
use tessera::auth::cli::now_seconds;
use tessera::auth::keys;
use tessera::auth::token::{mint, Claims};

/// A rule only the pull request adds: one action the main branch has not built.
const PR_RULE: &str = "\ngenrule(\n    name = \"pr_only\",\n    outs = [\"pr_only.out\"],\n    \
                       cmd = \"echo built by the pull request > $@\",\n)\n";

fn token(key: &ed25519_dalek::SigningKey, sub: &str, read: &[&str], write: &[&str]) -> String {
    let claims = Claims {
        sub: sub.into(),
        exp: now_seconds() + 3600,
        nbf: None,
        iat: None,
        jti: None,
        aud: None,
        read: read.iter().map(|s| s.to_string()).collect(),
        write: write.iter().map(|s| s.to_string()).collect(),
        admin: false,
    };
    mint(key, "ci", &claims)
}

fn build(
    session: &BazelSession,
    url: &str,
    token: &str,
    clean: bool,
    server: &Tessera,
    extra: &[&str],
) -> BuildSummary {
    let header = format!("--remote_header=Authorization=Bearer {token}");
    let mut flags = vec![header.as_str()];
    flags.extend_from_slice(extra);
    let result = if clean {
        session.clean_and_build(url, &flags)
    } else {
        session.build(url, &flags)
    };
    result.unwrap_or_else(|error| panic!("{error}\ntessera log:\n{}", server.full_log()))
}

fn add_pr_rule(session: &BazelSession) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(session.workspace().join("BUILD"))
        .unwrap();
    file.write_all(PR_RULE.as_bytes()).unwrap();
}

#[test]
fn pull_requests_read_through_main_and_never_write_into_it() {
    if !common::require_real_client("bazel (Debian bazel-bootstrap)", bazel::bazel_available()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let keys_dir = dir.path().join("keys");
    keys::generate(&keys_dir, "ci").unwrap();
    let (_, key) = keys::read_signing_key(&keys_dir.join("ci.key")).unwrap();
    let config = dir.path().join("tessera.toml");
    std::fs::write(
        &config,
        format!(
            "[auth]\npublic_keys = {:?}\n\n[[auth.read_through]]\nnamespace = \"bazel/pr-*\"\n\
             from = [\"bazel/main\"]\n",
            keys_dir.display().to_string()
        ),
    )
    .unwrap();
    let server = Tessera::start(&["--config", &config.display().to_string()], &[]);
    let main_url = format!("{}/main", server.url());
    let pr_url = format!("{}/pr-42", server.url());
    let main_token = token(&key, "ci-main", &["bazel/main"], &["bazel/main"]);
    let pr_token = token(&key, "ci-pr-42", &["bazel/main"], &["bazel/pr-42"]);

    eprintln!("auth_bazel: 1. the main branch fills bazel/main");
    let main = BazelSession::new().expect("copy the Bazel workspace");
    build(&main, &main_url, &main_token, false, &server, &[]).assert_all_executed_and_uploaded();

    eprintln!("auth_bazel: 2. a pull request hits main's entries and stores its own in pr-42");
    let pr = BazelSession::new().expect("copy the Bazel workspace");
    add_pr_rule(&pr);
    let summary = build(&pr, &pr_url, &pr_token, false, &server, &[]);
    assert_eq!(
        (summary.remote_cache_hits, summary.executed),
        (WORKSPACE_ACTIONS, 1),
        "{summary:#?}"
    );
    assert!(summary.cache_warnings.is_empty(), "{summary:#?}");
    let again = build(&pr, &pr_url, &pr_token, true, &server, &[]);
    assert_eq!(
        (again.remote_cache_hits, again.executed),
        (WORKSPACE_ACTIONS + 1, 0),
        "the pull request's own entry is in pr-42: {again:#?}"
    );

    eprintln!("auth_bazel: 3. a main build never hits what the pull request wrote");
    add_pr_rule(&main);
    let summary = build(&main, &main_url, &main_token, true, &server, &[]);
    assert_eq!(
        (summary.remote_cache_hits, summary.executed),
        (WORKSPACE_ACTIONS, 1),
        "main must execute the pull request's action itself: {summary:#?}"
    );

    eprintln!("auth_bazel: 4. gRPC: the same token in the authorization metadata, same namespace");
    let grpc_url = format!("grpc://{}", server.addr());
    let summary = build(
        &main,
        &grpc_url,
        &main_token,
        true,
        &server,
        &["--remote_instance_name=main"],
    );
    assert_eq!(
        (summary.remote_cache_hits, summary.executed),
        (WORKSPACE_ACTIONS + 1, 0),
        "bazel/main over gRPC: {summary:#?}"
    );

    eprintln!("auth_bazel: 5. the pull request's token cannot write main, nor can no token");
    let stranger = BazelSession::new().expect("copy the Bazel workspace");
    stranger_rule(&stranger);
    for refused_token in [pr_token.as_str(), "not-a-token"] {
        let summary = build(&stranger, &main_url, refused_token, true, &server, &[]);
        assert!(
            !summary.cache_warnings.is_empty(),
            "an upload to main with a refused token must warn: {summary:#?}"
        );
    }

    eprintln!("auth_bazel: 6. .netrc: the token as the password of 127.0.0.1, no flag");
    let netrc = dir.path().join("netrc");
    let write_netrc = |token: &str| {
        let text = format!("machine 127.0.0.1\nlogin ci\npassword {token}\n");
        std::fs::write(&netrc, text).unwrap();
    };
    write_netrc(&main_token);
    let netrc_path = netrc.display().to_string();
    let from_netrc = BazelSession::new()
        .expect("copy the Bazel workspace")
        .with_env("NETRC", &netrc_path);
    let hits = from_netrc
        .clean_and_build(&main_url, &[])
        .unwrap_or_else(|error| panic!("{error}\ntessera log:\n{}", server.full_log()));
    assert_eq!(
        (hits.remote_cache_hits, hits.executed),
        (WORKSPACE_ACTIONS, 0),
        "main's entries with the token from .netrc: {hits:#?}"
    );
    // The same session with a forged token in .netrc (Bazel reads it on every command): the
    // new action's upload is refused with a warning, and main stays without it.
    stranger_rule(&from_netrc);
    write_netrc(&forged_token(&main_token));
    let refused = from_netrc
        .build(&main_url, &[])
        .unwrap_or_else(|error| panic!("{error}\ntessera log:\n{}", server.full_log()));
    assert!(
        !refused.cache_warnings.is_empty(),
        "an upload with a forged .netrc token must warn: {refused:#?}"
    );
    let check = build(&stranger, &main_url, &main_token, true, &server, &[]);
    assert_eq!(
        check.executed, 1,
        "nothing the refused builds tried to upload is in main: {check:#?}"
    );
}

/// `token` with one bit of its signature flipped.
fn forged_token(token: &str) -> String {
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let mut signature = signature.as_bytes().to_vec();
    signature[10] = if signature[10] == b'A' { b'B' } else { b'A' };
    format!("{signed}.{}", String::from_utf8(signature).unwrap())
}

/// A rule neither branch has, so its upload is attempted.
fn stranger_rule(session: &BazelSession) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(session.workspace().join("BUILD"))
        .unwrap();
    file.write_all(
        b"\ngenrule(\n    name = \"stranger\",\n    outs = [\"stranger.out\"],\n    cmd = \"echo x > $@\",\n)\n",
    )
    .unwrap();
}
