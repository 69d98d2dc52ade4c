//! Proves the real-Bazel test harness (tests/common/bazel.rs, tests/bazel/workspace) against a
//! known-good HTTP cache, Debian nginx WebDAV, so that a Tessera test built on the same harness
//! fails only because of Tessera. The Tessera tests (`bazel_http.rs`, `bazel_grpc.rs`) run the
//! same sequence with Tessera's URL in place of nginx's.
//!
//! Needs `bazel` (Debian `bazel-bootstrap`, Bazel 4.2.3) and `nginx`: `bash tests/install-deps.sh`.
//! Without them the test fails, unless `TESSERA_SKIP_REAL_CLIENTS=1`.

#[path = "common/bazel.rs"]
mod bazel;
#[path = "common/nginx.rs"]
mod nginx;

use bazel::{BazelSession, BuildSummary, WORKSPACE_OUTPUT_SIZES_BYTES};
use nginx::NginxWebdav;

fn real_clients_present() -> bool {
    bazel::require_real_client("bazel (Debian bazel-bootstrap)", bazel::bazel_available())
        && bazel::require_real_client("nginx", nginx::nginx_available())
}

/// Builds, fails with Bazel's output tail and the cache's access log if Bazel failed.
fn build(session: &BazelSession, cache: &NginxWebdav, url: &str) -> BuildSummary {
    match session.build(url, &[]) {
        Ok(summary) => summary,
        Err(error) => panic!("{error}\nnginx access log:\n{}", cache.access_log()),
    }
}

fn clean_and_build(session: &BazelSession, cache: &NginxWebdav, url: &str) -> BuildSummary {
    session.clean().unwrap_or_else(|error| panic!("{error}"));
    build(session, cache, url)
}

#[test]
fn bazel_http_cache_hits_after_clean_restart_and_kill9_on_nginx_webdav() {
    if !real_clients_present() {
        return;
    }
    let mut cache = NginxWebdav::start().expect("start nginx");
    let session = BazelSession::new().expect("copy the Bazel workspace");
    let url = cache.url();

    // 1. Empty cache: every action runs locally and is uploaded without a warning.
    build(&session, &cache, &url).assert_all_executed_and_uploaded();
    let executed_outputs = session
        .output_files()
        .unwrap_or_else(|error| panic!("{error}"));
    for size in WORKSPACE_OUTPUT_SIZES_BYTES {
        assert!(
            executed_outputs
                .values()
                .any(|file| file.size_bytes == size),
            "no {size}-byte output in {executed_outputs:#?}"
        );
    }
    assert_eq!(
        nginx::stored_files(&cache.root(), "ac").len(),
        bazel::WORKSPACE_ACTIONS as usize
    );

    // 2. After `bazel clean` every action comes from the cache, byte-identical.
    clean_and_build(&session, &cache, &url).assert_all_remote_hits();
    assert_eq!(session.output_files().unwrap(), executed_outputs);

    // 3. The same after a clean restart of the cache server...
    cache.stop().expect("stop nginx");
    cache.restart().expect("restart nginx");
    clean_and_build(&session, &cache, &url).assert_all_remote_hits();
    assert_eq!(session.output_files().unwrap(), executed_outputs);

    // 4. ...and after kill -9.
    cache.kill9().expect("kill nginx");
    cache.restart().expect("restart nginx after kill -9");
    clean_and_build(&session, &cache, &url).assert_all_remote_hits();
    assert_eq!(session.output_files().unwrap(), executed_outputs);

    // 5. A path prefix is a separate cache (`/bz/ac/…`, `/bz/cas/…`): misses, then hits.
    let prefixed = format!("{url}/bz");
    clean_and_build(&session, &cache, &prefixed).assert_all_executed_and_uploaded();
    assert_eq!(
        nginx::stored_files(&cache.root().join("bz"), "ac").len(),
        bazel::WORKSPACE_ACTIONS as usize
    );
    clean_and_build(&session, &cache, &prefixed).assert_all_remote_hits();

    // 6. The harness notices a dead cache: Bazel still succeeds, but with no hits and with
    //    remote-cache warnings, which assert_all_remote_hits() rejects.
    cache.kill9().expect("kill nginx");
    let down = clean_and_build(&session, &cache, &url);
    assert_eq!(
        (down.remote_cache_hits, down.executed),
        (0, bazel::WORKSPACE_ACTIONS)
    );
    assert!(
        down.cache_warnings
            .iter()
            .any(|w| w.contains("Connection refused")),
        "expected a 'Connection refused' remote-cache warning: {down:#?}"
    );
    assert!(
        !down.all_remote_hits(),
        "a build against a dead cache must not count as all hits"
    );
}
