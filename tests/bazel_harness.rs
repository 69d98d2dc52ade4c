//! Proves the real-Bazel test harness (tests/common/bazel.rs, tests/bazel/workspace) against
//! known-good caches — Debian nginx WebDAV for HTTP, BuildGrid for gRPC — so that a Tessera test
//! built on the same harness fails only because of Tessera. The Tessera tests run the same
//! sequences with Tessera's URL in place of these servers'.
//!
//! Needs `bazel` (Debian `bazel-bootstrap`, Bazel 4.2.3), `nginx` and BuildGrid:
//! `bash tests/install-deps.sh`. Without them the tests fail, unless
//! `TESSERA_SKIP_REAL_CLIENTS=1`.

mod common;

use common::bazel::{
    self, BazelSession, BuildSummary, WORKSPACE_ACTIONS, WORKSPACE_OUTPUT_SIZES_BYTES,
};
use common::buildgrid::{self, BuildGrid};
use common::nginx::{self, NginxWebdav};
use common::require_real_client;

fn bazel_present() -> bool {
    require_real_client("bazel (Debian bazel-bootstrap)", bazel::bazel_available())
}

/// Builds; on a Bazel failure, panics with Bazel's output tail and the cache server's log.
fn build(session: &BazelSession, url: &str, flags: &[&str], server_log: &str) -> BuildSummary {
    match session.build(url, flags) {
        Ok(summary) => summary,
        Err(error) => panic!("{error}\ncache server log:\n{server_log}"),
    }
}

fn clean(session: &BazelSession) {
    session.clean().unwrap_or_else(|error| panic!("{error}"));
}

/// `bazel clean` + build; on a Bazel failure, panics with its output tail and the server's log.
fn rebuild(session: &BazelSession, url: &str, flags: &[&str], server_log: &str) -> BuildSummary {
    match session.clean_and_build(url, flags) {
        Ok(summary) => summary,
        Err(error) => panic!("{error}\ncache server log:\n{server_log}"),
    }
}

/// Panics unless the workspace produced an output of every size it is meant to cover.
fn assert_output_sizes(
    session: &BazelSession,
) -> std::collections::BTreeMap<String, bazel::OutputFile> {
    let outputs = session
        .output_files()
        .unwrap_or_else(|error| panic!("{error}"));
    for size in WORKSPACE_OUTPUT_SIZES_BYTES {
        assert!(
            outputs.values().any(|file| file.size_bytes == size),
            "no {size}-byte output in {outputs:#?}"
        );
    }
    outputs
}

#[test]
fn bazel_http_cache_hits_after_clean_restart_and_kill9_on_nginx_webdav() {
    if !bazel_present() || !require_real_client("nginx", nginx::nginx_available()) {
        return;
    }
    let mut cache = NginxWebdav::start().expect("start nginx");
    let session = BazelSession::new().expect("copy the Bazel workspace");
    let url = cache.url();
    let rebuild = |cache: &NginxWebdav, url: &str| rebuild(&session, url, &[], &cache.access_log());

    // 1. Empty cache: every action runs locally and is uploaded without a warning.
    build(&session, &url, &[], "").assert_all_executed_and_uploaded();
    let executed_outputs = assert_output_sizes(&session);
    assert_eq!(
        nginx::stored_files(&cache.root(), "ac").len(),
        WORKSPACE_ACTIONS as usize
    );

    // 2. After `bazel clean` every action comes from the cache, byte-identical.
    rebuild(&cache, &url).assert_all_remote_hits();
    assert_eq!(session.output_files().unwrap(), executed_outputs);

    // 3. The same after a clean restart of the cache server...
    cache.stop().expect("stop nginx");
    cache.restart().expect("restart nginx");
    rebuild(&cache, &url).assert_all_remote_hits();
    assert_eq!(session.output_files().unwrap(), executed_outputs);

    // 4. ...and after kill -9.
    cache.kill9().expect("kill nginx");
    cache.restart().expect("restart nginx after kill -9");
    rebuild(&cache, &url).assert_all_remote_hits();
    assert_eq!(session.output_files().unwrap(), executed_outputs);

    // 5. A path prefix is a separate cache (`/bz/ac/…`, `/bz/cas/…`): misses, then hits.
    let prefixed = format!("{url}/bz");
    rebuild(&cache, &prefixed).assert_all_executed_and_uploaded();
    let prefixed_ac = nginx::stored_files(&cache.root().join("bz"), "ac");
    assert_eq!(prefixed_ac.len(), WORKSPACE_ACTIONS as usize);
    rebuild(&cache, &prefixed).assert_all_remote_hits();

    // 6. The harness notices a dead HTTP cache: Bazel 4.2.3 still succeeds, but with no hits
    //    and with remote-cache warnings, which all_remote_hits() rejects.
    cache.kill9().expect("kill nginx");
    let down = rebuild(&cache, &url);
    assert_eq!(
        (down.remote_cache_hits, down.executed),
        (0, WORKSPACE_ACTIONS)
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

#[test]
fn bazel_grpc_cache_hits_and_separate_instance_names_on_buildgrid() {
    let buildgrid_present = || {
        let hint = "BuildGrid (PyPI, in the venv tests/install-deps.sh creates)";
        require_real_client(hint, buildgrid::buildgrid_available())
    };
    if !bazel_present() || !buildgrid_present() {
        return;
    }
    let cache = BuildGrid::start(&["x"]).expect("start BuildGrid");
    let session = BazelSession::new().expect("copy the Bazel workspace");
    let url = cache.url();
    let instance_x = ["--remote_instance_name=x"];
    let rebuild = |flags: &[&str]| rebuild(&session, &url, flags, &cache.log());

    // 1. Default instance: executed and uploaded, then every action from the cache.
    build(&session, &url, &[], "").assert_all_executed_and_uploaded();
    let executed_outputs = assert_output_sizes(&session);
    rebuild(&[]).assert_all_remote_hits();
    assert_eq!(session.output_files().unwrap(), executed_outputs);

    // 2. Instance "x" is a separate cache: it misses everything the default instance holds...
    rebuild(&instance_x).assert_all_executed_and_uploaded();
    // 3. ...then hits its own entries, and the default instance is undisturbed.
    rebuild(&instance_x).assert_all_remote_hits();
    assert_eq!(session.output_files().unwrap(), executed_outputs);
    rebuild(&[]).assert_all_remote_hits();

    // 4. The harness notices a dead gRPC cache: Bazel 4.2.3 fails the build at its mandatory
    //    GetCapabilities call ("Failed to query remote execution capabilities", exit 34).
    drop(cache);
    clean(&session);
    let error = session
        .build(&url, &[])
        .expect_err("a build against a dead gRPC cache must fail");
    assert!(
        error
            .log_tail
            .contains("Failed to query remote execution capabilities"),
        "unexpected failure: {error}"
    );
}

#[test]
fn server_restart_on_a_taken_port_is_a_clear_address_in_use_error() {
    if !require_real_client("nginx", nginx::nginx_available()) {
        return;
    }
    let mut cache = NginxWebdav::start().expect("start nginx");
    cache.kill9().expect("kill nginx");
    let squatter = std::net::TcpListener::bind(("127.0.0.1", cache.port())).expect("take the port");
    let error = cache.restart().expect_err("the port is taken");
    assert_eq!(error.kind(), std::io::ErrorKind::AddrInUse, "{error}");
    drop(squatter);
    cache.restart().expect("restart once the port is free");
}

/// The harness's reading of Bazel's output, on lines Bazel 4.2.3 prints.
mod parse_tests {
    use super::common::bazel::{parse_build_log, parse_process_summary};

    /// (processes, internal, remote cache hits, executed)
    type Counts = (u32, u32, u32, u32);

    #[test]
    fn process_summary_lines_of_bazel_4_2_3() {
        let cases: &[(&str, Option<Counts>)] = &[
            (
                "INFO: 12 processes: 1 internal, 11 local.",
                Some((12, 1, 0, 11)),
            ),
            (
                "INFO: 12 processes: 11 remote cache hit, 1 internal.",
                Some((12, 1, 11, 0)),
            ),
            (
                "INFO: 12 processes: 10 remote cache hit, 1 internal, 1 local.",
                Some((12, 1, 10, 1)),
            ),
            (
                "INFO: 9 processes: 2 internal, 7 linux-sandbox.",
                Some((9, 2, 0, 7)),
            ),
            ("INFO: 1 process: 1 internal.", Some((1, 1, 0, 0))),
            ("INFO: 0 processes.", Some((0, 0, 0, 0))),
            // Parts that do not add up to the total: not a summary we understand.
            ("INFO: 12 processes: 1 internal, 10 local.", None),
            ("INFO: Build completed successfully, 12 total actions", None),
            ("INFO: 12 processes: 1 internal, 11 local", None),
            ("INFO: x processes: 1 internal.", None),
            ("", None),
        ];
        for (line, want) in cases {
            let got = parse_process_summary(line)
                .map(|s| (s.processes, s.internal, s.remote_cache_hits, s.executed));
            assert_eq!(got, *want, "line {line:?}");
        }
    }

    #[test]
    fn unknown_kinds_are_kept_not_counted_as_hits() {
        let summary = parse_process_summary("INFO: 5 processes: 2 disk cache hit, 3 remote.")
            .expect("adds up");
        assert_eq!(summary.remote_cache_hits, 0);
        assert_eq!(
            summary.other,
            vec![(2, "disk cache hit".into()), (3, "remote".into())]
        );
    }

    #[test]
    fn build_log_collects_cache_warnings_with_their_cause() {
        let log = "INFO: Found 11 targets...\n\
                   WARNING: Reading from Remote Cache:\n\
                   Connection refused: /127.0.0.1:1\n\
                   WARNING: Writing to Remote Cache:\n\
                   2 errors during bulk transfer\n\
                   WARNING: /w/BUILD:3:8: something unrelated\n\
                   INFO: 12 processes: 1 internal, 11 local.\n\
                   INFO: Build completed successfully, 12 total actions\n";
        let summary = parse_build_log(log).expect("has a summary");
        assert_eq!(summary.actions(), 11);
        assert_eq!(
            summary.cache_warnings,
            vec![
                "WARNING: Reading from Remote Cache: Connection refused: /127.0.0.1:1".to_string(),
                "WARNING: Writing to Remote Cache: 2 errors during bulk transfer".to_string(),
            ]
        );
        assert!(parse_build_log("ERROR: no summary here\n").is_none());
    }
}
