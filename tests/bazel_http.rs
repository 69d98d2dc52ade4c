//! Acceptance of issue 3: real Bazel 4.2.3 (Debian `bazel-bootstrap`) uses `tessera serve` as
//! its HTTP remote cache. The first build uploads every action; after `bazel clean` every action
//! is a remote cache hit by Bazel's own count, with byte-identical outputs — also after a clean
//! restart of Tessera (SIGTERM, exit 0), after `kill -9` and restart, and a URL path prefix is a
//! separate cache. The same sequence passes against nginx WebDAV in `bazel_harness.rs`.
//!
//! Needs `bazel`: `bash tests/install-deps.sh` (or `TESSERA_SKIP_REAL_CLIENTS=1` to skip).

mod common;

use std::collections::BTreeMap;

use common::bazel::{self, BazelSession, BuildSummary, OutputFile, WORKSPACE_OUTPUT_SIZES_BYTES};
use common::Tessera;

/// Builds (after `bazel clean` when `clean`); on a Bazel failure, panics with Bazel's output
/// tail and Tessera's log.
fn build(session: &BazelSession, url: &str, clean: bool, server: &Tessera) -> BuildSummary {
    let result = if clean {
        session.clean_and_build(url, &[])
    } else {
        session.build(url, &[])
    };
    result.unwrap_or_else(|error| panic!("{error}\ntessera log:\n{}", server.full_log()))
}

fn outputs(session: &BazelSession) -> BTreeMap<String, OutputFile> {
    session
        .output_files()
        .unwrap_or_else(|error| panic!("{error}"))
}

#[test]
fn bazel_gets_every_action_from_tessera_after_clean_restart_and_kill9() {
    if !common::require_real_client("bazel (Debian bazel-bootstrap)", bazel::bazel_available()) {
        return;
    }
    let mut server = Tessera::start(&[], &[]);
    let session = BazelSession::new().expect("copy the Bazel workspace");

    eprintln!("bazel_http: step 1. empty cache");
    // 1. Empty cache: every action runs locally and is uploaded without a warning.
    build(&session, &server.url(), false, &server).assert_all_executed_and_uploaded();
    let executed = outputs(&session);
    for size in WORKSPACE_OUTPUT_SIZES_BYTES {
        assert!(
            executed.values().any(|file| file.size_bytes == size),
            "no {size}-byte output in {executed:#?}"
        );
    }

    eprintln!("bazel_http: step 2. after clean");
    // 2. After `bazel clean` every action is a remote cache hit, byte-identical.
    build(&session, &server.url(), true, &server).assert_all_remote_hits();
    assert_eq!(outputs(&session), executed);

    eprintln!("bazel_http: step 3. SIGTERM restart");
    // 3. A clean restart (SIGTERM drains, exit 0) on the same port keeps everything.
    server.stop_expecting_exit_0();
    server.restart_on_same_port();
    build(&session, &server.url(), true, &server).assert_all_remote_hits();
    assert_eq!(outputs(&session), executed);

    eprintln!("bazel_http: step 4. kill -9 restart");
    // 4. So does `kill -9` and a restart.
    server.kill9();
    server.restart_on_same_port();
    build(&session, &server.url(), true, &server).assert_all_remote_hits();
    assert_eq!(outputs(&session), executed);

    eprintln!("bazel_http: step 5. prefix");
    // 5. A path prefix is a separate cache: it misses everything, then hits its own entries,
    //    and the unprefixed cache is undisturbed.
    let prefixed = format!("{}/bz", server.url());
    build(&session, &prefixed, true, &server).assert_all_executed_and_uploaded();
    build(&session, &prefixed, true, &server).assert_all_remote_hits();
    assert_eq!(outputs(&session), executed);
    build(&session, &server.url(), true, &server).assert_all_remote_hits();

    drop(session);
    server.stop_expecting_exit_0();
    let verified = common::verify(server.data_dir());
    assert!(verified.status.success(), "tessera verify: {verified:?}");
}
