//! Real Bazel 4.2.3 against Tessera's gRPC remote cache (`--remote_cache=grpc://…`): the first
//! build uploads, after `bazel clean` every action is a remote cache hit, also after a Tessera
//! restart (SIGTERM drain), `--remote_instance_name=x` is a separate cache, and the same
//! entries are hits over Bazel's HTTP cache protocol (one CAS and AC per instance).
//!
//! Needs `bazel` (Debian `bazel-bootstrap`): `bash tests/install-deps.sh`. Without it the test
//! fails, unless `TESSERA_SKIP_REAL_CLIENTS=1`.

mod common;

use common::bazel::{self, BazelSession, BuildSummary, WORKSPACE_OUTPUT_SIZES_BYTES};
use common::Tessera;

fn build(session: &BazelSession, tessera: &Tessera, url: &str, flags: &[&str]) -> BuildSummary {
    session
        .build(url, flags)
        .unwrap_or_else(|error| panic!("{error}\ntessera log:\n{}", tessera.recent_log()))
}

fn rebuild(session: &BazelSession, tessera: &Tessera, url: &str, flags: &[&str]) -> BuildSummary {
    session
        .clean_and_build(url, flags)
        .unwrap_or_else(|error| panic!("{error}\ntessera log:\n{}", tessera.recent_log()))
}

#[test]
fn bazel_grpc_cache_hits_after_clean_and_restart_with_separate_instances() {
    if !common::require_real_client("bazel (Debian bazel-bootstrap)", bazel::bazel_available()) {
        return;
    }
    let mut tessera = Tessera::builder().small_store().start();
    let session = BazelSession::new().expect("copy the Bazel workspace");
    let instance_x = ["--remote_instance_name=x"];

    // 1. Empty cache: every action runs locally and is uploaded over gRPC without a warning.
    let url = tessera.grpc_url();
    build(&session, &tessera, &url, &[]).assert_all_executed_and_uploaded();
    let executed_outputs = session.output_files().unwrap();
    for size in WORKSPACE_OUTPUT_SIZES_BYTES {
        assert!(
            executed_outputs.values().any(|f| f.size_bytes == size),
            "no {size}-byte output"
        );
    }

    // 2. After `bazel clean` every action is a remote cache hit, byte-identical.
    rebuild(&session, &tessera, &url, &[]).assert_all_remote_hits();
    assert_eq!(session.output_files().unwrap(), executed_outputs);

    // 3. The same after a clean restart (SIGTERM, exit 0, reopen the data directory).
    tessera.stop_expecting_exit_0();
    tessera.restart();
    let url = tessera.grpc_url();
    rebuild(&session, &tessera, &url, &[]).assert_all_remote_hits();
    assert_eq!(session.output_files().unwrap(), executed_outputs);

    // 4. Instance "x" is a separate cache: misses, uploads, then hits; default undisturbed.
    rebuild(&session, &tessera, &url, &instance_x).assert_all_executed_and_uploaded();
    rebuild(&session, &tessera, &url, &instance_x).assert_all_remote_hits();
    rebuild(&session, &tessera, &url, &[]).assert_all_remote_hits();

    // 5. What gRPC uploaded is a hit over Bazel's HTTP protocol too (same CAS and AC), for the
    //    default instance and for "x" as the path prefix `/x`.
    let http = tessera.url();
    rebuild(&session, &tessera, &http, &[]).assert_all_remote_hits();
    assert_eq!(session.output_files().unwrap(), executed_outputs);
    rebuild(&session, &tessera, &format!("{http}/x"), &[]).assert_all_remote_hits();

    drop(session);
    tessera.stop_expecting_exit_0();
}
