//! S3 refusals under load and on a full disk, through real clients: boto3 (retries off) gets
//! `SlowDown` (503) over `auth.rate`; the AWS CLI gets `InsufficientStorage` (507) when the
//! filesystem of the data directory is full, reads go on, nothing half-written is served, and
//! writes resume once space is back. The opt-in 5 GiB streaming test is
//! `five_gib_object_streams_with_bounded_memory` (`TESSERA_S3_5GIB=1`).
//!
//! Needs the venv of `bash tests/install-deps.sh` (`TESSERA_S3_VENV`), or
//! `TESSERA_SKIP_REAL_CLIENTS=1`; the full-disk test needs root and a loop device
//! (`common/loop_fs.rs`, else it says why it skips).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::loop_fs::LoopFs;
use common::{require_real_client, Tessera};

const ACCESS_KEY: &str = "AKLIMITS";
const SECRET_KEY: &str = "limits-secret";

fn venv() -> PathBuf {
    PathBuf::from(
        std::env::var("TESSERA_S3_VENV").unwrap_or_else(|_| "/opt/tessera-tests/s3-venv".into()),
    )
}

/// A config with the test key (every bucket) and the bucket `lim`, plus `auth` settings.
fn config(dir: &Path, auth: &str) -> PathBuf {
    let path = dir.join("tessera.toml");
    fs::write(
        &path,
        format!(
            "[auth]\n{auth}\n[s3]\nbuckets = [\"lim\"]\n\
             [[s3.keys]]\naccess_key = \"{ACCESS_KEY}\"\nsecret_key = \"{SECRET_KEY}\"\n\
             read = [\"*\"]\nwrite = [\"*\"]\n"
        ),
    )
    .unwrap();
    path
}

fn show(output: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn boto3_gets_slow_down_over_the_rate_limit() {
    let python = venv().join("bin/python");
    if !require_real_client("boto3", python.exists()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "rate = \"2/s\"\nburst = 2\n");
    let server = Tessera::start(&["--config", config.to_str().unwrap()], &[]);
    // Twenty PUTs as fast as boto3 goes, retries off: over 2/s (burst 2) some must be SlowDown,
    // each a 503 with S3's code, and what was refused is not stored.
    let script = r#"
import sys, boto3, botocore
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=sys.argv[1], aws_access_key_id=sys.argv[2],
                  aws_secret_access_key=sys.argv[3], region_name="us-east-1",
                  config=Config(retries={"total_max_attempts": 1}))
stored, slowed = [], []
for i in range(20):
    try:
        s3.put_object(Bucket="lim", Key=f"k{i}", Body=b"x")
        stored.append(i)
    except botocore.exceptions.ClientError as e:
        err = e.response["Error"]
        assert err["Code"] == "SlowDown", e.response
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 503, e.response
        slowed.append(i)
assert slowed, "no SlowDown over auth.rate"
assert stored, "nothing stored at all"
import time; time.sleep(1.5)
for i in slowed:
    for attempt in range(20):
        try:
            s3.head_object(Bucket="lim", Key=f"k{i}")
            raise SystemExit(f"refused k{i} was stored")
        except botocore.exceptions.ClientError as e:
            # A HEAD answer has no body: its SlowDown shows as the bare status.
            if e.response["ResponseMetadata"]["HTTPStatusCode"] == 503:
                time.sleep(1)
                continue
            assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 404, e.response
            break
    else:
        raise SystemExit(f"k{i}: HEAD never got past the rate limit")
print(f"slowdown ok: {len(stored)} stored, {len(slowed)} SlowDown")
"#;
    let output = Command::new(&python)
        .args(["-c", script, &server.url(), ACCESS_KEY, SECRET_KEY])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}\n{}",
        show(&output),
        server.recent_log()
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("slowdown ok"));
}

/// Size of the test's filesystem image (as tests/disk_full.rs).
const FS_BYTES: u64 = 96 << 20;
/// After this object the 16 MiB active segment has about 1.2 MB of room…
const NEARLY_A_SEGMENT_BYTES: usize = 15_500_000;
/// …and this one needs a new segment.
const NEEDS_A_SEGMENT_BYTES: usize = 2_000_000;

/// `aws --endpoint-url URL ARGS…`, single-part uploads up to 64 MiB.
fn aws(server: &Tessera, cwd: &Path, args: &[&str]) -> Output {
    let config = cwd.join("aws-config");
    fs::write(
        &config,
        "[default]\ns3 =\n  multipart_threshold = 64MB\n  multipart_chunksize = 64MB\n",
    )
    .unwrap();
    Command::new(venv().join("bin/aws"))
        .arg("--endpoint-url")
        .arg(server.url())
        .args(args)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", &config)
        .env("AWS_SHARED_CREDENTIALS_FILE", cwd.join("no-credentials"))
        .env("AWS_MAX_ATTEMPTS", "1")
        .current_dir(cwd)
        .output()
        .unwrap()
}

fn body(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn aws_cli_gets_insufficient_storage_on_a_full_disk_and_reads_go_on() {
    if !require_real_client("the AWS CLI", venv().join("bin/aws").exists()) {
        return;
    }
    let Some(fs_mount) = LoopFs::mount("s3_insufficient_storage", FS_BYTES) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "");
    let mut server = Tessera::builder()
        .data_dir(fs_mount.path())
        .small_store()
        .args([
            "--config",
            config.to_str().unwrap(),
            "--executors",
            "1",
            "--shards",
            "1",
        ])
        .start();
    let stored = [
        ("small", body(1, 10_000)),
        ("nearly", body(2, NEARLY_A_SEGMENT_BYTES)),
    ];
    for (key, bytes) in &stored {
        fs::write(dir.path().join(key), bytes).unwrap();
        let up = aws(
            &server,
            dir.path(),
            &["s3", "cp", key, &format!("s3://lim/{key}")],
        );
        assert!(up.status.success(), "{}", show(&up));
    }
    server.stop_expecting_exit_0();
    server.restart();
    fs_mount.fill();
    fs::write(dir.path().join("needs"), body(3, NEEDS_A_SEGMENT_BYTES)).unwrap();
    let refused = aws(
        &server,
        dir.path(),
        &["s3", "cp", "needs", "s3://lim/needs"],
    );
    assert!(!refused.status.success(), "stored on a full disk");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("InsufficientStorage"), "{}", show(&refused));
    assert!(
        !stderr.contains(&fs_mount.path().display().to_string()),
        "no server path"
    );
    // Reads go on; the refused object is not there.
    for (key, bytes) in &stored {
        let down = aws(
            &server,
            dir.path(),
            &[
                "s3",
                "cp",
                &format!("s3://lim/{key}"),
                &format!("{key}.back"),
            ],
        );
        assert!(down.status.success(), "{}", show(&down));
        assert!(fs::read(dir.path().join(format!("{key}.back"))).unwrap() == *bytes);
    }
    let head = aws(
        &server,
        dir.path(),
        &["s3api", "head-object", "--bucket", "lim", "--key", "needs"],
    );
    assert!(
        !head.status.success(),
        "a refused object is served: {}",
        show(&head)
    );
    // Space back: the same upload goes through.
    fs_mount.unfill();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let up = aws(
            &server,
            dir.path(),
            &["s3", "cp", "needs", "s3://lim/needs"],
        );
        if up.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "writes did not resume: {}",
            show(&up)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    server.stop_expecting_exit_0();
}

/// Bytes of the opt-in streaming test's object: 5 GiB, S3's single-PUT limit.
const FIVE_GIB: u64 = 5 << 30;
/// Bytes per write of the streaming client.
const STREAM_CHUNK_BYTES: usize = 1 << 20;
/// The server's anonymous memory (heap, stacks) may not grow past this while a 5 GiB object
/// streams in and out: far below the object, above what the server holds at rest plus its
/// per-request buffers. File-backed pages (the store's mapped segments) are not counted.
const STREAMING_ANON_BYTES_MAX: u64 = 256 << 20;

/// `RssAnon` and `VmRSS` of `pid`, in bytes.
fn rss(pid: u32) -> (u64, u64) {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("RssAnon:"), field("VmRSS:"))
}

/// Peak (`RssAnon`, `VmRSS`) of `pid` until `stop` is set, sampled every 50 ms.
fn watch_rss(
    pid: u32,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<(u64, u64)> {
    std::thread::spawn(move || {
        let mut peak = (0, 0);
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let (anon, total) = rss(pid);
            peak = (peak.0.max(anon), peak.1.max(total));
            std::thread::sleep(Duration::from_millis(50));
        }
        peak
    })
}

/// The byte at `offset` of the streamed object.
fn streamed_byte(offset: u64) -> u8 {
    (offset.wrapping_mul(2_654_435_761) >> 13) as u8
}

/// A 5 GiB object goes in with one signed PUT (`UNSIGNED-PAYLOAD`) and comes back with one GET,
/// both streamed, with the server's anonymous memory bounded. Opt-in (`TESSERA_S3_5GIB=1`):
/// it writes 5 GiB to the data directory and takes minutes on a debug build.
#[test]
fn five_gib_object_streams_with_bounded_memory() {
    use md5::{Digest, Md5};
    use std::io::{BufRead, BufReader, Read, Write};
    use tessera::protocols::s3::sigv4::{amz_date, Signer, ToSign, UNSIGNED_PAYLOAD};
    if std::env::var("TESSERA_S3_5GIB").as_deref() != Ok("1") {
        eprintln!(
            "SKIPPED: set TESSERA_S3_5GIB=1 to stream a 5 GiB object (minutes, 5 GiB of disk)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "");
    let server = Tessera::start(
        &[
            "--config",
            config.to_str().unwrap(),
            "--executors",
            "1",
            "--shards",
            "1",
            "--max-size",
            "11GiB",
            "--max-blob-size",
            "5200MiB",
        ],
        &[],
    );
    let pid = server.pid();
    let at_rest = rss(pid);
    let mut signer = Signer::new(ACCESS_KEY, SECRET_KEY, "us-east-1");
    let signed = |signer: &mut Signer, method: &str, length: Option<u64>| -> Vec<u8> {
        let date = amz_date(tessera::auth::cli::now_seconds());
        let authorization = signer.authorization(&ToSign {
            method,
            path: "/lim/big",
            query: "",
            headers: &[("host", "tessera-test")],
            payload_hash: UNSIGNED_PAYLOAD,
            date: &date,
        });
        let length = length.map_or(String::new(), |n| format!("content-length: {n}\r\n"));
        format!(
            "{method} /lim/big HTTP/1.1\r\nhost: tessera-test\r\n{length}x-amz-date: {date}\r\n\
             x-amz-content-sha256: {UNSIGNED_PAYLOAD}\r\nauthorization: {authorization}\r\n\r\n"
        )
        .into_bytes()
    };
    let read_head = |reader: &mut BufReader<std::net::TcpStream>| -> (u16, Vec<String>) {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let line = line.trim_end().to_string();
            if line.is_empty() {
                break;
            }
            lines.push(line);
        }
        let status = lines[0].split(' ').nth(1).unwrap().parse().unwrap();
        (status, lines)
    };

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = watch_rss(pid, stop.clone());
    let started = Instant::now();
    let stream = std::net::TcpStream::connect(server.addr()).unwrap();
    let mut writer = stream.try_clone().unwrap();
    writer
        .write_all(&signed(&mut signer, "PUT", Some(FIVE_GIB)))
        .unwrap();
    let mut md5 = Md5::new();
    let mut chunk = vec![0u8; STREAM_CHUNK_BYTES];
    let mut offset = 0u64;
    while offset < FIVE_GIB {
        let n = (FIVE_GIB - offset).min(STREAM_CHUNK_BYTES as u64) as usize;
        for (i, b) in chunk[..n].iter_mut().enumerate() {
            *b = streamed_byte(offset + i as u64);
        }
        md5.update(&chunk[..n]);
        writer.write_all(&chunk[..n]).unwrap();
        offset += n as u64;
    }
    let expected: String = md5.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let mut reader = BufReader::new(stream);
    let (status, head) = read_head(&mut reader);
    let put_secs = started.elapsed().as_secs_f64();
    assert_eq!(status, 200, "{head:?}\n{}", server.recent_log());
    let etag = head
        .iter()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("etag: ")
                .map(str::to_string)
        })
        .expect("an ETag");
    assert_eq!(etag, format!("\"{expected}\""));

    let started = Instant::now();
    let stream = std::net::TcpStream::connect(server.addr()).unwrap();
    let mut writer = stream.try_clone().unwrap();
    writer.write_all(&signed(&mut signer, "GET", None)).unwrap();
    let mut reader = BufReader::with_capacity(STREAM_CHUNK_BYTES, stream);
    let (status, head) = read_head(&mut reader);
    assert_eq!(status, 200, "{head:?}");
    let mut md5 = Md5::new();
    let mut received = 0u64;
    let mut mismatch = None;
    while received < FIVE_GIB {
        let n = reader.read(&mut chunk).unwrap();
        assert!(n > 0, "the body ended at {received} bytes");
        if mismatch.is_none() {
            if let Some(i) = (0..n).find(|&i| chunk[i] != streamed_byte(received + i as u64)) {
                mismatch = Some(received + i as u64);
            }
        }
        md5.update(&chunk[..n]);
        received += n as u64;
    }
    let get_secs = started.elapsed().as_secs_f64();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (peak_anon, peak_rss) = watcher.join().unwrap();
    assert_eq!(mismatch, None, "first differing byte");
    let got: String = md5.finalize().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(got, expected);
    eprintln!(
        "5 GiB: PUT {put_secs:.1} s, GET {get_secs:.1} s; server RssAnon {} MiB at rest, peak {} MiB; \
         VmRSS peak {} MiB (file-backed pages of the mapped store included)",
        at_rest.0 >> 20,
        peak_anon >> 20,
        peak_rss >> 20
    );
    assert!(
        peak_anon < STREAMING_ANON_BYTES_MAX,
        "anonymous memory peaked at {} MiB",
        peak_anon >> 20
    );
}
