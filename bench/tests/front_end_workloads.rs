//! The Gradle, Nx, Turborepo and ccache workloads: each sends its client's path shape and
//! headers, round-trips every byte, Nx's measured writes go to fresh keys (an immutable server
//! answers 409 otherwise), and chunked response bodies are decoded and checked.

use std::sync::Arc;
use std::time::Duration;
use tessera_bench::loadgen::{run_load, Driver, LoadConfig, Mode, OperationSource};
use tessera_bench::protocol::{HttpProtocol, PathScheme, SchemeOptions};
use tessera_bench::report::problems_banner;
use tessera_bench::stats::{ErrorKind, RunStats};
use tessera_bench::test_server::TestServer;
use tessera_bench::workload::{KeySpace, OperationMix, Popularity, SizeDistribution};

fn config(server: &TestServer, requests: u64) -> LoadConfig {
    LoadConfig {
        address: server.address(),
        threads: 2,
        connections: 4,
        duration: Duration::from_secs(60),
        requests: Some(requests),
        mode: Mode::Closed,
        pin: false,
        request_timeout: Duration::from_secs(10),
        seed: 5,
        driver: Driver::Auto,
    }
}

fn mix(objects: usize, write_ratio: f64, miss_ratio: f64) -> OperationSource {
    OperationSource::Mix(Arc::new(OperationMix {
        write_ratio,
        miss_ratio,
        popularity: Popularity::Uniform,
        objects,
    }))
}

fn protocol(keys: &Arc<KeySpace>, name: &str) -> HttpProtocol {
    let options = SchemeOptions {
        team: "acme",
        token: "sekrit",
        ..SchemeOptions::default()
    };
    let scheme = PathScheme::parse(name, &options).unwrap();
    HttpProtocol::new(keys.clone(), scheme, "127.0.0.1".into())
}

fn clean(stats: &RunStats) {
    assert_eq!(stats.errors_total(), 0, "{:?}", problems_banner(stats));
}

fn preload(server: &TestServer, protocol: &HttpProtocol, objects: usize) -> RunStats {
    run_load(
        &config(server, u64::MAX),
        protocol,
        &OperationSource::put_each(objects),
    )
}

/// (protocol, path start, path shape check, header lines every GET and PUT must carry)
type Expectation = (
    &'static str,
    &'static str,
    fn(&str) -> bool,
    &'static [&'static str],
    &'static [&'static str],
);

#[test]
fn each_client_workload_round_trips_with_its_path_and_headers() {
    let expectations: [Expectation; 4] = [
        (
            "gradle",
            "/cache/",
            |key| key.len() == 32 && key.bytes().all(|b| b.is_ascii_hexdigit()),
            &["accept: application/vnd.gradle.build-cache-artifact.v2, */*"],
            &["content-type: application/vnd.gradle.build-cache-artifact.v2"],
        ),
        (
            "nx",
            "/v1/cache/",
            |key| !key.is_empty() && key.bytes().all(|b| b.is_ascii_digit()),
            &["authorization: bearer sekrit"],
            &[
                "authorization: bearer sekrit",
                "content-type: application/octet-stream",
            ],
        ),
        (
            "turbo",
            "/v8/artifacts/",
            |key| key.len() == 16 + 10 && key.ends_with("?slug=acme"),
            &["authorization: bearer sekrit", "user-agent: turbo "],
            &["x-artifact-duration: ", "authorization: bearer sekrit"],
        ),
        (
            "ccache",
            "/ccache/",
            |key| key.len() == 41 && key.as_bytes()[2] == b'/',
            &["user-agent: ccache/"],
            &["content-type: application/octet-stream"],
        ),
    ];
    for (name, start, key_shape, get_headers, put_headers) in expectations {
        let server = TestServer::start("127.0.0.1:0").unwrap();
        // Nx's server semantics: 200 for a new entry, 409 for a stored one.
        server.immutable(name == "nx");
        let sizes = SizeDistribution::parse("100B=3,4KiB=3,300KiB=1").unwrap();
        let keys = Arc::new(KeySpace::generate(30, &sizes, 3).unwrap());
        let client = protocol(&keys, name);
        let loaded = preload(&server, &client, keys.len());
        clean(&loaded);
        assert_eq!(server.object_count(), 30, "{name}: one entry per object");
        let stats = run_load(&config(&server, 600), &client, &mix(keys.len(), 0.3, 0.2));
        clean(&stats);
        assert_eq!(stats.requests_ok, 600, "{name}");

        let heads = server.recorded_heads();
        assert!(!heads.is_empty());
        for head in &heads {
            let lower = head.to_ascii_lowercase();
            let request_line = head.lines().next().unwrap();
            let mut words = request_line.split(' ');
            let (method, path) = (words.next().unwrap(), words.next().unwrap());
            let key = path
                .strip_prefix(start)
                .unwrap_or_else(|| panic!("{name}: {path} does not start with {start}"));
            assert!(key_shape(key), "{name}: key `{key}` has the wrong shape");
            let wanted = if method == "PUT" {
                put_headers
            } else {
                get_headers
            };
            for header in wanted {
                assert!(
                    lower.contains(header),
                    "{name}: {method} lacks `{header}`:\n{head}"
                );
            }
        }
    }
}

#[test]
fn nx_writes_go_to_fresh_keys_and_a_second_preload_is_not_an_error() {
    let server = TestServer::start("127.0.0.1:0").unwrap();
    server.immutable(true);
    let keys = Arc::new(KeySpace::generate(20, &SizeDistribution::Fixed(512), 4).unwrap());
    let nx = protocol(&keys, "nx");
    clean(&preload(&server, &nx, keys.len()));
    // The same entries again: 409 from an immutable server means "already there".
    clean(&preload(&server, &nx, keys.len()));
    assert_eq!(server.object_count(), 20);
    // Every measured write is a new entry, though they all draw from 20 objects.
    let writes = run_load(&config(&server, 500), &nx, &mix(keys.len(), 1.0, 0.0));
    clean(&writes);
    assert_eq!(server.object_count(), 20 + 500);
    // The stored entries are still readable.
    clean(&run_load(
        &config(&server, 200),
        &nx,
        &mix(keys.len(), 0.0, 0.0),
    ));

    // A client that reuses keys is caught: Gradle's PUTs of stored keys get 409.
    let gradle = protocol(&keys, "gradle");
    clean(&preload(&server, &gradle, keys.len()));
    let reused = run_load(&config(&server, 100), &gradle, &mix(keys.len(), 1.0, 0.0));
    assert_eq!(reused.errors(ErrorKind::Status), 100);
    let first = reused.first_error(ErrorKind::Status).unwrap();
    assert!(first.contains("status 409"), "{first}");
}

#[test]
fn nx_measured_writes_demand_200() {
    // A server that answers 201 to an upload is one Nx itself would call misconfigured.
    let server = TestServer::start("127.0.0.1:0").unwrap();
    let keys = Arc::new(KeySpace::generate(5, &SizeDistribution::Fixed(64), 4).unwrap());
    let stats = run_load(
        &config(&server, 50),
        &protocol(&keys, "nx"),
        &mix(keys.len(), 1.0, 0.0),
    );
    assert_eq!(stats.errors(ErrorKind::Status), 50);
    let first = stats.first_error(ErrorKind::Status).unwrap();
    assert!(first.contains("status 201, expected 200"), "{first}");
}

#[test]
fn chunked_bodies_are_decoded_and_checked() {
    let server = TestServer::start("127.0.0.1:0").unwrap();
    server.chunked_reads(true);
    let sizes = SizeDistribution::parse("1B=1,4KiB=2,1MiB=1").unwrap();
    let keys = Arc::new(KeySpace::generate(12, &sizes, 6).unwrap());
    let turbo = protocol(&keys, "turbo");
    clean(&preload(&server, &turbo, keys.len()));
    let stats = run_load(&config(&server, 300), &turbo, &mix(keys.len(), 0.0, 0.3));
    clean(&stats);
    assert!(stats.body_bytes > 0);
    server.corrupt_reads(true);
    let corrupted = run_load(&config(&server, 100), &turbo, &mix(keys.len(), 0.0, 0.0));
    assert_eq!(corrupted.errors(ErrorKind::Body), 100);
}
