//! Tessera on a full disk (issue 14), through the real binary over Bazel HTTP and gRPC: a full
//! filesystem is a budget, not a failure. Puts evict old blobs or are refused with 507 /
//! RESOURCE_EXHAUSTED (never 500, never a server path in the answer), reads go on, writes
//! resume on their own once space is back, and `kill -9` or SIGTERM on a full disk lose no
//! acknowledged blob that is still indexed.
//!
//! Each test makes and mounts a small ext4 image of its own (`common/loop_fs.rs`: root and a
//! loop device, else the test prints why it skips) and serves from its root, so the data
//! directory, and nothing else of the test, is on the filesystem that fills. The images are
//! 96 MiB, not the few hundred MB of the report: filling one takes a few seconds of
//! uploads on a debug build (and much longer on a loaded CI machine), and a shard of two or three
//! 16 MiB segments is as full as one of twenty.
//!
//! The server is started through `common/tessera_grpc.rs`, which runs it with
//! `--max-size 512MiB --segment-size 16MiB`: a budget four times the filesystem.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::grpc_client::{call, connect, run_executor, unary};
use common::http_client::{self, get, request_head, sha256_hex, Conn, Response, Rng};
use common::loop_fs::{self, LoopFs};
use common::Tessera;
use h2::client::SendRequest;
use prost::Message;
use tessera::grpc::pb::build::bazel::remote::execution::v2 as reapi;
use tessera::grpc::pb::google::bytestream::{ReadRequest, ReadResponse, WriteRequest};
use tessera::grpc::{Code, Status};

/// Size of each test's filesystem image.
const FS_BYTES: u64 = 96 << 20;

/// Uploads of the fill test: 1 MiB each, 120 MiB in all, well past what the filesystem holds.
const FILL_UPLOADS: usize = 120;
const FILL_UPLOAD_BYTES: usize = 1 << 20;

/// A blob that, after two small ones, leaves the 16 MiB active segment about 1.2 MB of room.
const NEARLY_A_SEGMENT_BYTES: usize = 15_500_000;

/// A blob that does not fit that room: it needs a new segment.
const NEEDS_A_SEGMENT_BYTES: usize = 2_000_000;

/// How long a test waits for something the server does on its own (writes resuming after the
/// foreign file is deleted, the degraded gauge clearing on the next maintenance tick).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

const WRITE: &str = "/google.bytestream.ByteStream/Write";
const READ: &str = "/google.bytestream.ByteStream/Read";
const BATCH_UPDATE: &str =
    "/build.bazel.remote.execution.v2.ContentAddressableStorage/BatchUpdateBlobs";

/// One shard on one executor: which shard a blob lands in does not matter.
const ONE_SHARD: [&str; 4] = ["--executors", "1", "--shards", "1"];

fn blob(seed: u64, len: usize) -> Vec<u8> {
    Rng::new(seed).bytes(len)
}

/// Tessera on `data` (the filesystem that fills; its log is kept in memory, not on it) with a
/// small store and the flags `extra`.
fn start(data: &Path, extra: &[&str]) -> Tessera {
    Tessera::builder()
        .data_dir(data)
        .small_store()
        .args(extra)
        .start()
}

/// PUTs `body` with `Expect: 100-continue`, so that a refusal (507) arrives before the body is
/// sent and cannot be lost to a reset while the body is on its way.
fn put(addr: SocketAddr, path: &str, body: &[u8]) -> Response {
    let mut conn = Conn::open(addr).unwrap();
    let expect = [("Expect", "100-continue")];
    conn.send(&request_head("PUT", path, body.len() as u64, &expect))
        .unwrap();
    let first = conn
        .early_response(Duration::from_millis(http_client::IO_TIMEOUT_MS))
        .unwrap_or_else(|e| panic!("PUT {path}: {e}"))
        .unwrap_or_else(|| panic!("PUT {path}: neither 100 Continue nor a final status"));
    if first.status != 100 {
        return first;
    }
    conn.send(body).unwrap();
    conn.read_response()
        .unwrap_or_else(|e| panic!("PUT {path}: {e}"))
}

/// Sum of a metric's samples over every shard.
fn metric_sum(page: &str, name: &str) -> u64 {
    page.lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn metrics(addr: SocketAddr) -> String {
    let response = get(addr, "/metrics");
    assert_eq!(response.status, 200);
    response.text()
}

/// A refusal for lack of space must say so, and nothing about the server's files or OS.
fn assert_clean_refusal(what: &str, message: &str) {
    assert!(
        !message.contains('/') && !message.contains("os error"),
        "{what}: the answer leaks a path or an OS error: {message:?}"
    );
    assert!(message.contains("no space"), "{what}: {message:?}");
}

/// Files of each shard directory that are neither segments, the checkpoint, its spare, the
/// namespace table nor the lock, and segments shorter than a segment header (a half-made segment).
fn leftovers(data: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for shard in std::fs::read_dir(data).unwrap() {
        let shard = shard.unwrap().path();
        if !shard
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("shard-")
        {
            continue;
        }
        for file in std::fs::read_dir(&shard).unwrap() {
            let file = file.unwrap();
            let name = file.file_name().to_string_lossy().into_owned();
            let expected = match name.as_str() {
                "LOCK" | "index.ckpt" | "index.ckpt.spare" | "namespaces" => true,
                segment if segment.starts_with("seg-") => file.metadata().unwrap().len() >= 64,
                _ => false,
            };
            if !expected {
                found.push(format!("{}/{name}", shard.display()));
            }
        }
    }
    found
}

/// The acknowledged uploads that are still indexed, by HEAD (a record's first read after a start
/// verifies its checksums, so a 200 is an intact record); anything but 200 or 404 fails.
fn still_indexed(addr: SocketAddr, acknowledged: &[String]) -> Vec<String> {
    acknowledged
        .iter()
        .filter(|hex| {
            let response = http_client::head(addr, &format!("/cas/{hex}"));
            match response.status {
                200 => true,
                404 => false,
                other => panic!("HEAD /cas/{hex}: {other}"),
            }
        })
        .cloned()
        .collect()
}

/// The acknowledged uploads that are still stored; each one is checked byte for byte (its name
/// is its SHA-256), and anything else than a byte-exact 200 or a 404 fails the test.
fn still_stored(addr: SocketAddr, acknowledged: &[String]) -> Vec<String> {
    acknowledged
        .iter()
        .filter(|hex| {
            let response = get(addr, &format!("/cas/{hex}"));
            match response.status {
                200 => {
                    assert_eq!(&sha256_hex(&response.body), *hex, "byte-exact read");
                    true
                }
                404 => false,
                other => panic!("GET /cas/{hex}: {other} {}", response.text()),
            }
        })
        .cloned()
        .collect()
}

#[test]
fn filling_the_disk_through_tessera_evicts_the_oldest_never_500s_and_survives_kill_9_and_sigterm() {
    let Some(fs) = LoopFs::mount("filling_the_disk_through_tessera", FS_BYTES) else {
        return;
    };
    let tessera = start(fs.path(), &[]);
    let addr = tessera.addr();
    let seed = http_client::test_seed();
    eprintln!("TESSERA_TEST_SEED={seed}");

    let mut acknowledged = Vec::new();
    let mut refused = 0;
    for i in 0..FILL_UPLOADS {
        let bytes = blob(seed ^ i as u64, FILL_UPLOAD_BYTES);
        let hex = sha256_hex(&bytes);
        let response = put(addr, &format!("/cas/{hex}"), &bytes);
        match response.status {
            200 => acknowledged.push(hex),
            507 => {
                assert_clean_refusal(&format!("PUT {i}"), &response.text());
                refused += 1;
            }
            other => panic!(
                "PUT {i}: {other} {:?}; log:\n{}",
                response.text(),
                tessera.recent_log()
            ),
        }
    }
    let page = metrics(addr);
    let stored = still_stored(addr, &acknowledged);
    eprintln!(
        "{} acknowledged, {refused} refused, {} still stored",
        acknowledged.len(),
        stored.len()
    );
    assert!(
        metric_sum(&page, "tessera_store_evicted_segments_total") > 0,
        "old entries made room:\n{page}"
    );
    assert!(
        metric_sum(&page, "tessera_store_effective_budget_bytes")
            < metric_sum(&page, "tessera_store_budget_bytes"),
        "the filesystem, not max_size, sets the budget:\n{page}"
    );
    assert_eq!(
        metric_sum(&page, "tessera_store_bytes_used"),
        std::fs::read_dir(fs.path())
            .unwrap()
            .filter(|e| e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("shard-"))
            .flat_map(|shard| std::fs::read_dir(shard.unwrap().path()).unwrap())
            .map(|f| f.unwrap())
            .filter(|f| f.file_name().to_string_lossy().starts_with("seg-"))
            .map(|f| f.metadata().unwrap().len())
            .sum::<u64>(),
        "the segments on disk are the ones in use"
    );
    assert!(
        !stored.contains(&acknowledged[0]),
        "the oldest upload was evicted"
    );
    assert!(
        stored.contains(acknowledged.last().unwrap()),
        "the newest upload is stored"
    );
    assert!(
        stored.len() * FILL_UPLOAD_BYTES > (FS_BYTES / 4) as usize,
        "the cache keeps using the disk: {} MiB stored",
        stored.len()
    );

    // kill -9 and restart on a completely full disk: everything that was indexed is back.
    fs.fill();
    drop(tessera);
    let mut tessera = start(fs.path(), &[]);
    let addr = tessera.addr();
    assert_eq!(
        still_stored(addr, &acknowledged),
        stored,
        "after kill -9 on a full disk"
    );

    // SIGTERM on the full disk: exit 0, nothing half-made left, the next start has it all.
    tessera.stop_expecting_exit_0();
    let log = tessera.recent_log();
    assert!(
        leftovers(fs.path()).is_empty(),
        "{:?}",
        leftovers(fs.path())
    );
    let mut tessera = start(fs.path(), &[]);
    assert_eq!(
        still_indexed(tessera.addr(), &acknowledged),
        stored,
        "after SIGTERM on a full disk; that stop logged:\n{log}"
    );
    tessera.stop_expecting_exit_0();
}

#[test]
fn filling_the_disk_from_outside_refuses_writes_cleanly_and_they_resume_when_it_is_freed() {
    let Some(fs) = LoopFs::mount("filling_the_disk_from_outside", FS_BYTES) else {
        return;
    };
    let mut tessera = start(fs.path(), &ONE_SHARD);
    let mut stored: Vec<Vec<u8>> = vec![blob(1, 10_000), blob(2, 10_000)];
    stored.push(blob(3, NEARLY_A_SEGMENT_BYTES));
    for bytes in &stored {
        let path = format!("/cas/{}", sha256_hex(bytes));
        assert_eq!(put(tessera.addr(), &path, bytes).status, 200);
    }
    // A clean stop writes a checkpoint and its spare; the next start serves the same data.
    tessera.stop_expecting_exit_0();
    tessera.restart();
    let addr = tessera.addr();

    fs.fill();
    let refused = blob(4, NEEDS_A_SEGMENT_BYTES);
    let refused_path = format!("/cas/{}", sha256_hex(&refused));
    for attempt in 0..3 {
        let response = put(addr, &refused_path, &refused);
        assert_eq!(
            response.status,
            507,
            "attempt {attempt}: {}",
            response.text()
        );
        assert_clean_refusal("PUT on a full disk", &response.text());
    }
    assert_eq!(get(addr, "/healthz").status, 200);
    for bytes in &stored {
        http_client::assert_stored(addr, &format!("/cas/{}", sha256_hex(bytes)), bytes);
    }
    let page = metrics(addr);
    assert_eq!(metric_sum(&page, "tessera_store_degraded"), 1, "{page}");
    // A degraded node still serves: /ready stays 200 and names the shard with no room.
    let ready = get(addr, "/ready");
    assert_eq!(ready.status, 200, "{ready:?}");
    assert!(
        ready.text().contains("\"part\":\"shard/"),
        "{}",
        ready.text()
    );
    assert!(ready.text().contains("no room"), "{}", ready.text());
    assert!(
        metric_sum(&page, "tessera_store_no_space_total") >= 3,
        "{page}"
    );
    assert_eq!(metric_sum(&page, "tessera_store_evicted_segments_total"), 0);
    // A small put still fits the active segment.
    let small = blob(5, 50_000);
    assert_eq!(
        put(addr, &format!("/cas/{}", sha256_hex(&small)), &small).status,
        200
    );
    stored.push(small);

    // The foreign file goes: writes resume on their own, no restart.
    fs.unfill();
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let response = put(addr, &refused_path, &refused);
        if response.status == 200 {
            break;
        }
        assert_eq!(response.status, 507, "{}", response.text());
        assert!(
            Instant::now() < deadline,
            "writes did not resume after the disk was freed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("writes resumed after {attempts} attempt(s)");
    stored.push(refused);
    while metric_sum(&metrics(addr), "tessera_store_degraded") != 0 {
        assert!(Instant::now() < deadline, "the shard stayed degraded");
        std::thread::sleep(Duration::from_millis(50));
    }

    // SIGTERM on a full disk with the checkpoint's spare in place: the checkpoint is written.
    fs.fill();
    tessera.stop_expecting_exit_0();
    let log = tessera.recent_log();
    assert!(!log.contains("checkpoint not written"), "{log}");
    assert!(
        leftovers(fs.path()).is_empty(),
        "{:?}",
        leftovers(fs.path())
    );

    // Without a spare: the checkpoint cannot be written, yet the drain finishes the upload in
    // flight, the stop exits 0, says the next start replays the log, and leaves no temporary
    // file.
    let mut tessera = start(fs.path(), &ONE_SHARD);
    let _ = std::fs::remove_file(fs.path().join("shard-0/index.ckpt.spare"));
    fs.fill();
    let in_flight = blob(6, 40_000);
    let mut upload = Conn::open(tessera.addr()).unwrap();
    let head = request_head(
        "PUT",
        &format!("/cas/{}", sha256_hex(&in_flight)),
        in_flight.len() as u64,
        &[("Expect", "100-continue")],
    );
    upload.send(&head).unwrap();
    let go_on = upload
        .early_response(Duration::from_millis(http_client::IO_TIMEOUT_MS))
        .unwrap();
    assert_eq!(
        go_on.map(|r| r.status),
        Some(100),
        "room reserved, body awaited"
    );
    tessera.send_sigterm();
    upload.send(&in_flight).unwrap();
    let finished = upload.read_response().unwrap();
    assert_eq!(
        finished.status,
        200,
        "the drain finished the upload: {}",
        finished.text()
    );
    let status = tessera.wait_for_exit(Duration::from_millis(common::server::EXIT_TIMEOUT_MS));
    let log = tessera.recent_log();
    assert!(
        status.success(),
        "exit {status} after SIGTERM on a full disk without a spare; log:\n{log}"
    );
    stored.push(in_flight);
    assert!(
        log.contains("final checkpoint not written") && log.contains("replays"),
        "{log}"
    );
    assert!(
        leftovers(fs.path()).is_empty(),
        "{:?}",
        leftovers(fs.path())
    );

    let mut tessera = start(fs.path(), &ONE_SHARD);
    for bytes in &stored {
        http_client::assert_stored(
            tessera.addr(),
            &format!("/cas/{}", sha256_hex(bytes)),
            bytes,
        );
    }
    tessera.stop_expecting_exit_0();
}

fn digest(data: &[u8]) -> reapi::Digest {
    reapi::Digest {
        hash: sha256_hex(data),
        size_bytes: data.len() as i64,
    }
}

fn resource(data: &[u8]) -> String {
    format!("blobs/{}/{}", sha256_hex(data), data.len())
}

/// `ByteStream.Write` of `data` in 1 MiB messages.
async fn bytestream_write(
    client: &SendRequest<Bytes>,
    data: &[u8],
    upload: &str,
) -> Result<(), Status> {
    let name = format!("uploads/{upload}/{}", resource(data));
    let chunks: Vec<&[u8]> = data.chunks(1 << 20).collect();
    let messages: Vec<Bytes> = chunks
        .iter()
        .enumerate()
        .map(|(i, chunk)| {
            let request = WriteRequest {
                resource_name: if i == 0 { name.clone() } else { String::new() },
                write_offset: (i << 20) as i64,
                finish_write: i + 1 == chunks.len(),
                data: Bytes::copy_from_slice(chunk),
            };
            Bytes::from(request.encode_to_vec())
        })
        .collect();
    call(client, WRITE, &messages).await.ok().map(|_| ())
}

async fn bytestream_read(client: &SendRequest<Bytes>, data: &[u8]) -> Vec<u8> {
    let request = ReadRequest {
        resource_name: resource(data),
        read_offset: 0,
        read_limit: 0,
    };
    let messages = call(client, READ, &[Bytes::from(request.encode_to_vec())])
        .await
        .ok()
        .expect("ByteStream.Read of a stored blob");
    let mut read = Vec::new();
    for message in messages {
        read.extend_from_slice(&ReadResponse::decode(message).unwrap().data);
    }
    read
}

/// The status of one blob of a `BatchUpdateBlobs` call.
async fn batch_update(client: &SendRequest<Bytes>, data: &[u8]) -> (i32, String) {
    let request = reapi::BatchUpdateBlobsRequest {
        instance_name: String::new(),
        requests: vec![reapi::batch_update_blobs_request::Request {
            digest: Some(digest(data)),
            data: Bytes::copy_from_slice(data),
            compressor: 0,
        }],
        digest_function: 0,
    };
    let response: reapi::BatchUpdateBlobsResponse = unary(client, BATCH_UPDATE, &request)
        .await
        .expect("the batch call itself succeeds");
    let status = response.responses[0].status.clone().unwrap();
    (status.code, status.message)
}

#[test]
fn grpc_writes_on_a_full_disk_get_resource_exhausted_and_reads_go_on() {
    let Some(fs) = LoopFs::mount("grpc_writes_on_a_full_disk", FS_BYTES) else {
        return;
    };
    let mut tessera = start(fs.path(), &ONE_SHARD);
    let addr = tessera.addr();
    let mount = fs.path().to_path_buf();
    run_executor(move || async move {
        let client = connect(addr).await;
        let stored = [
            blob(11, 10_000),
            blob(12, 10_000),
            blob(13, NEARLY_A_SEGMENT_BYTES),
        ];
        for (i, data) in stored.iter().enumerate() {
            bytestream_write(&client, data, &format!("u{i}"))
                .await
                .unwrap();
        }
        loop_fs::fill(&mount);

        let refused = blob(14, NEEDS_A_SEGMENT_BYTES);
        let status = bytestream_write(&client, &refused, "full")
            .await
            .unwrap_err();
        assert_eq!(status.code, Code::ResourceExhausted, "{status:?}");
        assert_clean_refusal("ByteStream.Write", &status.message);
        let (code, message) = batch_update(&client, &refused).await;
        assert_eq!(code, Code::ResourceExhausted as i32, "{message}");
        assert_clean_refusal("BatchUpdateBlobs", &message);
        for data in &stored {
            assert!(bytestream_read(&client, data).await == *data, "reads go on");
        }

        loop_fs::unfill(&mount);
        bytestream_write(&client, &refused, "freed")
            .await
            .expect("writes resume once the disk has room");
        assert!(bytestream_read(&client, &refused).await == refused);
        let small = blob(15, 1000);
        assert_eq!(batch_update(&client, &small).await.0, Code::Ok as i32);
    });
    tessera.stop_expecting_exit_0();
}
