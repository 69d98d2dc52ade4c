//! Every response is checked: wrong bytes, wrong statuses and misses are counted as errors by
//! kind, and a clean run against a correct server has none.

use std::sync::Arc;
use std::time::Duration;
use tessera_bench::loadgen::{run_load, Driver, LoadConfig, Mode, OperationSource};
use tessera_bench::protocol::{HttpProtocol, PathScheme};
use tessera_bench::stats::ErrorKind;
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
        seed: 3,
        driver: Driver::Auto,
    }
}

fn mix(objects: usize, write_ratio: f64, miss_ratio: f64) -> OperationSource {
    OperationSource::Mix(Arc::new(OperationMix {
        write_ratio,
        miss_ratio,
        popularity: Popularity::zipf(0.99, objects),
        objects,
    }))
}

fn protocol(keys: &Arc<KeySpace>, scheme: PathScheme) -> HttpProtocol {
    HttpProtocol::new(keys.clone(), scheme, "127.0.0.1".into())
}

#[test]
fn mixed_workload_against_a_correct_server_is_clean() {
    let server = TestServer::start("127.0.0.1:0").unwrap();
    let sizes = SizeDistribution::parse("100B=5,4KiB=3,200KiB=1").unwrap();
    let keys = Arc::new(KeySpace::generate(40, &sizes, 8).unwrap());
    let bazel = protocol(
        &keys,
        PathScheme::BazelCas {
            prefix: String::new(),
        },
    );
    let preload = run_load(
        &config(&server, u64::MAX),
        &bazel,
        &OperationSource::put_each(keys.len()),
    );
    assert_eq!((preload.requests_ok, preload.errors_total()), (40, 0));
    let stats = run_load(&config(&server, 2000), &bazel, &mix(keys.len(), 0.2, 0.3));
    assert_eq!(
        stats.errors_total(),
        0,
        "{:?}",
        tessera_bench::report::problems_banner(&stats)
    );
    assert_eq!(stats.requests_ok, 2000, "the request budget is exact");
    assert!(stats.body_bytes > 0);
}

#[test]
fn corrupted_bodies_are_counted_as_body_errors() {
    let server = TestServer::start("127.0.0.1:0").unwrap();
    let keys = Arc::new(KeySpace::generate(10, &SizeDistribution::Fixed(4096), 2).unwrap());
    let scheme = PathScheme::Template("/dav/{key}".into());
    let dav = protocol(&keys, scheme);
    run_load(
        &config(&server, u64::MAX),
        &dav,
        &OperationSource::put_each(keys.len()),
    );
    server.corrupt_reads(true);
    let stats = run_load(&config(&server, 100), &dav, &mix(keys.len(), 0.0, 0.0));
    assert_eq!(stats.errors(ErrorKind::Body), 100);
    assert_eq!(stats.requests_ok, 0);
    let banner = tessera_bench::report::problems_banner(&stats).expect("a loud banner");
    assert!(banner.contains("bytes differ"), "{banner}");
}

#[test]
fn reads_of_objects_never_written_are_status_errors() {
    let server = TestServer::start("127.0.0.1:0").unwrap();
    let keys = Arc::new(KeySpace::generate(10, &SizeDistribution::Fixed(64), 2).unwrap());
    let bazel = protocol(
        &keys,
        PathScheme::BazelCas {
            prefix: String::new(),
        },
    );
    // No preload: every hit-read finds 404 instead of 200; every miss-read correctly finds 404.
    let stats = run_load(&config(&server, 200), &bazel, &mix(keys.len(), 0.0, 0.5));
    assert_eq!(stats.errors(ErrorKind::Status) + stats.requests_ok, 200);
    assert!(stats.errors(ErrorKind::Status) > 50 && stats.requests_ok > 50);
    assert!(stats
        .first_error(ErrorKind::Status)
        .unwrap()
        .contains("status 404, expected 200"));
}

#[test]
fn action_level_bazel_workload_round_trips() {
    let server = TestServer::start("127.0.0.1:0").unwrap();
    let keys = Arc::new(KeySpace::generate(20, &SizeDistribution::Fixed(2000), 4).unwrap());
    let actions = protocol(
        &keys,
        PathScheme::BazelAction {
            prefix: String::new(),
        },
    );
    let preload = run_load(
        &config(&server, u64::MAX),
        &actions,
        &OperationSource::put_each(keys.len()),
    );
    assert_eq!((preload.requests_ok, preload.errors_total()), (20, 0));
    assert_eq!(
        server.object_count(),
        40,
        "one CAS blob and one AC entry per action"
    );
    let stats = run_load(&config(&server, 300), &actions, &mix(keys.len(), 0.1, 0.2));
    assert_eq!(
        stats.errors_total(),
        0,
        "{:?}",
        tessera_bench::report::problems_banner(&stats)
    );
}

#[test]
fn a_dead_server_gives_connect_errors_and_the_run_still_ends() {
    let address = {
        let server = TestServer::start("127.0.0.1:0").unwrap();
        server.address()
    };
    let keys = Arc::new(KeySpace::generate(1, &SizeDistribution::Fixed(10), 1).unwrap());
    let bazel = protocol(
        &keys,
        PathScheme::BazelCas {
            prefix: String::new(),
        },
    );
    let mut cfg = config(&TestServer::start("127.0.0.1:0").unwrap(), 50);
    cfg.address = address;
    let stats = run_load(&cfg, &bazel, &mix(1, 0.0, 0.0));
    assert_eq!(stats.requests_ok, 0);
    assert!(stats.errors(ErrorKind::Connect) >= 50);
}
