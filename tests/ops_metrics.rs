//! `/metrics` after real traffic against the real binary (issue 13): latency histograms per
//! protocol × operation × outcome, per-namespace counts, and the store's retention numbers.

mod common;

use std::collections::BTreeMap;

use common::http_client::{cas_path, get, put, request, Rng};
use common::Tessera;

/// The samples of `/metrics`, by the whole series text (`name{labels}`).
fn samples(addr: std::net::SocketAddr) -> BTreeMap<String, f64> {
    let page = get(addr, "/metrics");
    assert_eq!(page.status, 200);
    page.text()
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("`series value`");
            (series.to_owned(), value.parse().expect("a number"))
        })
        .collect()
}

fn latency(samples: &BTreeMap<String, f64>, protocol: &str, op: &str, outcome: &str) -> f64 {
    let key = format!(
        "tessera_request_duration_seconds_count{{protocol=\"{protocol}\",operation=\"{op}\",outcome=\"{outcome}\"}}"
    );
    samples.get(&key).copied().unwrap_or(0.0)
}

#[test]
fn traffic_shows_up_in_latency_histograms_namespace_counts_and_retention() {
    let mut server = Tessera::start(&["--shards", "2", "--max-blob-size", "1MiB"], &[]);
    let addr = server.addr();
    let mut rng = Rng::new(0x6e7a_0013);

    // Bazel over HTTP: 3 stored, 5 hits, 2 misses, 2 refused (a body that is not its digest,
    // and one over max_blob_size).
    let blobs: Vec<Vec<u8>> = (0..3).map(|i| rng.bytes(1000 + i * 100)).collect();
    for blob in &blobs {
        assert_eq!(put(addr, &cas_path(blob), blob).status, 200);
    }
    for i in 0..5 {
        assert_eq!(get(addr, &cas_path(&blobs[i % 3])).status, 200);
    }
    for _ in 0..2 {
        assert_eq!(get(addr, &cas_path(&rng.bytes(10))).status, 404);
    }
    assert_eq!(put(addr, &cas_path(b"x"), b"y").status, 400);
    // Over max_blob_size: the store refuses the reservation (413) before any body byte is
    // read; the front-end answers it, so it is timed as refused.
    let head = common::http_client::request_head("PUT", &cas_path(b"x"), 2 << 20, &[]);
    assert_eq!(
        common::http_client::send_raw(addr, &head).unwrap().status,
        413
    );

    // Gradle: 2 puts of 300 bytes, 1 hit, 1 miss, in namespace `gradle`.
    let entry = rng.bytes(300);
    assert_eq!(put(addr, "/cache/aa01", &entry).status, 200);
    assert_eq!(put(addr, "/cache/aa02", &entry).status, 200);
    assert_eq!(get(addr, "/cache/aa01").status, 200);
    assert_eq!(get(addr, "/cache/aa03").status, 404);
    // Not a transfer: not timed.
    assert_eq!(request(addr, "POST", "/cache/aa01", b"").status, 405);

    let s = samples(addr);
    assert_eq!(latency(&s, "bazel-http", "put", "stored"), 3.0, "{s:#?}");
    assert_eq!(latency(&s, "bazel-http", "get", "hit"), 5.0);
    assert_eq!(latency(&s, "bazel-http", "get", "miss"), 2.0);
    assert_eq!(latency(&s, "bazel-http", "put", "refused"), 2.0);
    assert_eq!(latency(&s, "gradle", "put", "stored"), 2.0);
    assert_eq!(latency(&s, "gradle", "get", "hit"), 1.0);
    assert_eq!(latency(&s, "gradle", "get", "miss"), 1.0);
    assert_eq!(latency(&s, "gradle", "put", "refused"), 0.0);

    // Buckets are cumulative and end at the count.
    let labels = "protocol=\"bazel-http\",operation=\"get\",outcome=\"hit\"";
    let buckets: Vec<f64> = s
        .iter()
        .filter(|(k, _)| {
            k.starts_with(&format!(
                "tessera_request_duration_seconds_bucket{{{labels},"
            ))
        })
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(buckets.len(), 19, "18 bounds and +Inf");
    let inf = s[&format!("tessera_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}}")];
    assert_eq!(inf, 5.0);
    assert!(buckets.iter().all(|b| *b <= inf));
    assert!(s[&format!("tessera_request_duration_seconds_sum{{{labels}}}")] > 0.0);

    // Per namespace.
    let ns = |name: &str, namespace: &str| {
        s.get(&format!(
            "tessera_namespace_{name}_total{{namespace=\"{namespace}\"}}"
        ))
        .copied()
        .unwrap_or(0.0)
    };
    assert_eq!(ns("puts", "gradle"), 2.0);
    assert_eq!(ns("bytes_written", "gradle"), 600.0);
    assert_eq!(ns("hits", "gradle"), 1.0);
    assert_eq!(ns("misses", "gradle"), 1.0);
    assert_eq!(ns("puts", "bazel"), 3.0);
    assert_eq!(ns("hits", "bazel"), 5.0);
    assert_eq!(ns("misses", "bazel"), 2.0);

    // Retention: every byte written is counted (record bytes ≥ body bytes), and a shard
    // holding records reports the age of its oldest segment.
    let written: f64 = (0..2)
        .map(|shard| s[&format!("tessera_store_bytes_written_total{{shard=\"{shard}\"}}")])
        .sum();
    let bodies = blobs.iter().map(|b| b.len()).sum::<usize>() + 600;
    assert!(written >= bodies as f64, "{written} < {bodies}");
    let ages: Vec<f64> = (0..2)
        .filter_map(|shard| {
            s.get(&format!(
                "tessera_store_oldest_entry_age_seconds{{shard=\"{shard}\"}}"
            ))
            .copied()
        })
        .collect();
    assert!(!ages.is_empty(), "no shard reports an age: {s:#?}");
    assert!(
        ages.iter().all(|age| (0.0..600.0).contains(age)),
        "{ages:?}"
    );
    server.stop_expecting_exit_0();
}

#[test]
fn grpc_calls_are_timed_by_operation_and_outcome() {
    use ::tessera::grpc::pb::build::bazel::remote::execution::v2 as reapi;
    use ::tessera::grpc::Code;
    const PREFIX: &str = "/build.bazel.remote.execution.v2.";
    let mut server = Tessera::start(&[], &[]);
    let addr = server.addr();
    common::grpc_client::run_executor(move || async move {
        let client = common::grpc_client::connect(addr).await;
        let action = reapi::Digest {
            hash: common::http_client::sha256_hex(b"an action"),
            size_bytes: 9,
        };
        let get = reapi::GetActionResultRequest {
            instance_name: "metrics".into(),
            action_digest: Some(action.clone()),
            ..Default::default()
        };
        let path = format!("{PREFIX}ActionCache/GetActionResult");
        let miss = common::grpc_client::unary::<reapi::ActionResult>(&client, &path, &get).await;
        assert_eq!(miss.unwrap_err().code, Code::NotFound);
        let update = reapi::UpdateActionResultRequest {
            instance_name: "metrics".into(),
            action_digest: Some(action),
            action_result: Some(reapi::ActionResult::default()),
            ..Default::default()
        };
        let update_path = format!("{PREFIX}ActionCache/UpdateActionResult");
        common::grpc_client::unary::<reapi::ActionResult>(&client, &update_path, &update)
            .await
            .unwrap();
        for _ in 0..2 {
            common::grpc_client::unary::<reapi::ActionResult>(&client, &path, &get)
                .await
                .unwrap();
        }
        let find = reapi::FindMissingBlobsRequest {
            instance_name: "metrics".into(),
            ..Default::default()
        };
        let find_path = format!("{PREFIX}ContentAddressableStorage/FindMissingBlobs");
        common::grpc_client::unary::<reapi::FindMissingBlobsResponse>(&client, &find_path, &find)
            .await
            .unwrap();
    });
    let s = samples(addr);
    assert_eq!(latency(&s, "grpc", "get", "miss"), 1.0, "{s:#?}");
    assert_eq!(latency(&s, "grpc", "put", "stored"), 1.0);
    assert_eq!(latency(&s, "grpc", "get", "hit"), 2.0);
    assert_eq!(latency(&s, "grpc", "contains", "hit"), 1.0);
    server.stop_expecting_exit_0();
}
