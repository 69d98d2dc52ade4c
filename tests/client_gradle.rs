//! Gradle's HTTP build cache on `tessera serve` (`/cache/<key>`, namespace `gradle`): the real
//! Gradle 4.4.1 gets `compileJava` from the cache after `gradle clean`, without and with HTTP
//! Basic credentials, and the front-end answers bad input precisely (400, 405 with `Allow`, 413
//! before the body, nothing stored from a cut-short upload) and keeps each entry's
//! `Content-Type`.
//!
//! Needs `gradle` (`bash tests/install-deps.sh`); `TESSERA_SKIP_REAL_CLIENTS=1` skips the
//! real-client test only.

mod common;

use common::cache_clients::{self, run_driver, stored_objects};
use common::http_client::{self, assert_absent, assert_stored, get, head, request_head, Conn, Rng};
use common::Tessera;

/// What Gradle sends as the `Content-Type` of a PUT (tests/clients/README.md).
const GRADLE_CONTENT_TYPE: &str = "application/vnd.gradle.build-cache-artifact.v1";

fn seeded_rng(test: &str) -> Rng {
    let seed = http_client::test_seed();
    eprintln!("{test}: TESSERA_TEST_SEED={seed}");
    Rng::new(seed)
}

/// `/cache/<32 hex>`, the shape of a Gradle 4.x key.
fn entry_path(rng: &mut Rng) -> String {
    format!("/cache/{}", &rng.hex64()[..32])
}

/// PUTs `body` as Gradle does (with its content type); panics unless it is stored.
fn gradle_put(addr: std::net::SocketAddr, path: &str, body: &[u8]) {
    let mut conn = Conn::open(addr).unwrap();
    let headers = [("Content-Type", GRADLE_CONTENT_TYPE)];
    conn.send(&request_head("PUT", path, body.len() as u64, &headers))
        .unwrap();
    conn.send(body).unwrap();
    let response = conn.read_response().unwrap();
    assert_eq!(response.status, 200, "PUT {path}: {response:?}");
}

#[test]
fn gradle_gets_compile_java_from_tessera_plain_and_with_basic_credentials() {
    if common::skip_real_client("Gradle") {
        return;
    }
    let mut server = Tessera::start(&[], &[]);
    let url = format!("{}/cache/", server.url());
    // Two runs (each `compileJava`, `clean`, `compileJava`), each with a fresh key: the first
    // uploads one entry, the second gets it back.
    for (name, args) in [
        ("plain", &[][..]),
        ("basic credentials", &["--credentials"]),
    ] {
        let run = run_driver("gradle", args, &url)
            .unwrap_or_else(|error| panic!("{error}\ntessera log:\n{}", server.full_log()));
        eprintln!(
            "client_gradle: {name}: {} ms wall; {}",
            run.elapsed.as_millis(),
            run.summary
        );
    }
    assert_eq!(stored_objects(server.addr()), 2, "one entry per run");
    server.stop_expecting_exit_0();
    let verified = common::verify(server.data_dir());
    assert!(verified.status.success(), "tessera verify: {verified:?}");
}

#[test]
fn malformed_keys_get_400_and_nothing_is_stored() {
    let server = Tessera::start(&[], &[]);
    let paths = [
        "/cache",
        "/cache/",
        "/cache/0123/4567",
        "/cache/..",
        "/cache/0123%2f4567",
        "/cache/key:with:colons",
        &format!("/cache/{}", "a".repeat(257)),
    ];
    let paths: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
    cache_clients::assert_malformed_paths_refused(server.addr(), &paths);
}

#[test]
fn an_upload_cut_short_stores_nothing_and_keeps_the_previous_entry() {
    let server = Tessera::start(&[], &[]);
    let addr = server.addr();
    let mut rng = seeded_rng("gradle_cut_short");
    let body = rng.bytes(10_000);
    let fresh = entry_path(&mut rng);
    cache_clients::put_cut_short(addr, &fresh, &body, 6_000);
    assert_absent(addr, &fresh);

    let kept = entry_path(&mut rng);
    gradle_put(addr, &kept, b"the entry of an earlier build");
    cache_clients::put_cut_short(addr, &kept, &body, 6_000);
    assert_stored(addr, &kept, b"the entry of an earlier build");
    assert_eq!(stored_objects(addr), 1);
}

#[test]
fn other_methods_get_405_with_allow() {
    let server = Tessera::start(&[], &[]);
    let path = entry_path(&mut seeded_rng("gradle_405"));
    let methods = ["POST", "DELETE", "PATCH", "OPTIONS", "PROPFIND"];
    cache_clients::assert_methods_refused(server.addr(), &path, &methods, "GET, HEAD, PUT");
}

#[test]
fn a_put_over_max_blob_size_gets_413_before_its_body_is_sent() {
    let server = Tessera::start(&["--max-blob-size", "1MiB"], &[]);
    let addr = server.addr();
    let mut rng = seeded_rng("gradle_413");
    let max = 1u64 << 20;
    let path = entry_path(&mut rng);
    let headers = [("Content-Type", GRADLE_CONTENT_TYPE)];
    for len in [max + 1, 64 * max] {
        cache_clients::assert_oversized_put_refused_before_its_body(addr, &path, len, &headers);
    }
    assert_absent(addr, &path);
    // The bound itself is stored.
    let at_max = rng.bytes(max as usize);
    gradle_put(addr, &path, &at_max);
    assert_stored(addr, &path, &at_max);
}

#[test]
fn the_content_type_of_a_put_comes_back_on_get_and_head_and_the_last_put_wins() {
    let server = Tessera::start(&[], &[]);
    let addr = server.addr();
    let mut rng = seeded_rng("gradle_content_type");
    let path = entry_path(&mut rng);
    assert_absent(addr, &path);
    let entry = rng.bytes(1_100);
    gradle_put(addr, &path, &entry);
    let hit = get(addr, &path);
    assert_eq!(hit.status, 200, "{hit:?}");
    assert_eq!(hit.header("content-type"), Some(GRADLE_CONTENT_TYPE));
    assert!(hit.body == entry, "GET {path} returned other bytes");
    let probe = head(addr, &path);
    assert_eq!(probe.status, 200, "{probe:?}");
    assert_eq!(probe.header("content-type"), Some(GRADLE_CONTENT_TYPE));
    assert_eq!(probe.header("content-length"), Some("1100"));

    // Gradle writes a key again when its entry is rebuilt; the last write is served, with the
    // generic content type when the writer sent none.
    let rebuilt = rng.bytes(700);
    let response = http_client::put(addr, &path, &rebuilt);
    assert_eq!(response.status, 200, "{response:?}");
    let hit = get(addr, &path);
    assert!(hit.body == rebuilt, "GET {path} after the second PUT");
    assert_eq!(hit.header("content-type"), Some("application/octet-stream"));
}
