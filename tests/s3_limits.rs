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
