//! Crash safety of `tessera serve` (issue 3): `kill -9` while several clients upload, restart,
//! and every acknowledged upload reads back byte-exact while nothing torn is ever served; and
//! `tessera verify` on a healthy and on a damaged data directory.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::http_client::{assert_serving, assert_stored, cas_path, get, put, Conn, Rng};
use common::Tessera;

/// Concurrent uploading clients.
const UPLOADERS: usize = 4;

/// Body sizes the uploaders pick from: empty, tiny, around a page, and up to 2 MiB (larger than
/// the 1 MiB segments the test configures, so big blobs get segments of their own).
const BODY_SIZES_BYTES: [usize; 8] = [0, 1, 100, 4096, 65_537, 300_000, 1 << 20, 2 << 20];

/// Acknowledged uploads to wait for before the kill, so there is something to check.
const ACKED_BEFORE_KILL_MIN: usize = 40;

/// Upper bound on the wait for [`ACKED_BEFORE_KILL_MIN`] acknowledgements.
const UPLOAD_PHASE_MS_MAX: u64 = 30_000;

/// Upper bound on attempts per uploader per round (keeps the run bounded even on a fast box).
const ATTEMPTS_PER_UPLOADER_MAX: usize = 200;

/// Kill / restart rounds: the second kill hits a store that was itself recovered.
const CRASH_ROUNDS: usize = 2;

/// One upload: what was sent, and whether the server acknowledged it.
#[derive(Clone, Debug)]
struct Attempt {
    path: String,
    body_seed: u64,
    body_len: usize,
    acked: bool,
}

impl Attempt {
    fn body(&self) -> Vec<u8> {
        Rng::new(self.body_seed).bytes(self.body_len)
    }
}

/// Uploads random CAS blobs (and some AC entries) on one kept-alive connection until `stop`, an
/// I/O error (the server died) or the attempt bound. Every attempt is recorded before its first
/// byte is sent; a status other than 200 from a live server is recorded in `errors`.
fn uploader(
    addr: SocketAddr,
    seed: u64,
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicUsize>,
    attempts: Arc<Mutex<Vec<Attempt>>>,
    errors: Arc<Mutex<Vec<String>>>,
) {
    let mut rng = Rng::new(seed);
    let Ok(mut conn) = Conn::open(addr) else {
        return;
    };
    for _ in 0..ATTEMPTS_PER_UPLOADER_MAX {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let body_seed = rng.next_u64();
        let body_len = BODY_SIZES_BYTES[rng.below(BODY_SIZES_BYTES.len() as u64) as usize];
        let body = Rng::new(body_seed).bytes(body_len);
        // One in five is an action-cache entry under a fresh key (no overwrites: the outcome
        // of every key is decided by one upload).
        let path = if rng.below(5) == 0 {
            format!("/ac/{}", rng.hex64())
        } else {
            cas_path(&body)
        };
        let index = {
            let mut attempts = attempts.lock().unwrap();
            attempts.push(Attempt {
                path: path.clone(),
                body_seed,
                body_len,
                acked: false,
            });
            attempts.len() - 1
        };
        match conn.request("PUT", &path, &body) {
            Ok(response) if response.status == 200 => {
                attempts.lock().unwrap()[index].acked = true;
                acked.fetch_add(1, Ordering::Relaxed);
            }
            Ok(response) => {
                errors
                    .lock()
                    .unwrap()
                    .push(format!("PUT {path} ({body_len} B): {response:?}"));
                return;
            }
            Err(_) => return,
        }
    }
}

/// Runs [`UPLOADERS`] uploaders against `server` and kills it with SIGKILL while they upload.
fn upload_and_kill(server: &mut Tessera, rng: &mut Rng, attempts: &Arc<Mutex<Vec<Attempt>>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..UPLOADERS)
        .map(|_| {
            let (seed, stop, acked) = (rng.next_u64(), stop.clone(), acked.clone());
            let (attempts, errors, addr) = (attempts.clone(), errors.clone(), server.addr());
            std::thread::spawn(move || uploader(addr, seed, stop, acked, attempts, errors))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_millis(UPLOAD_PHASE_MS_MAX);
    while acked.load(Ordering::Relaxed) < ACKED_BEFORE_KILL_MIN && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread.join().expect("an uploader panicked");
    }
    let errors = errors.lock().unwrap();
    assert!(
        errors.is_empty(),
        "uploads refused by a live server: {errors:#?}"
    );
    let acked = acked.load(Ordering::Relaxed);
    assert!(
        acked >= ACKED_BEFORE_KILL_MIN,
        "only {acked} uploads acknowledged in {UPLOAD_PHASE_MS_MAX} ms; log:\n{}",
        server.recent_log()
    );
}

/// Every acknowledged upload reads back byte-exact; every other one is absent or byte-exact.
fn check_attempts(addr: SocketAddr, attempts: &[Attempt]) -> (usize, usize) {
    let (mut unacked_absent, mut unacked_present) = (0, 0);
    for attempt in attempts {
        let response = get(addr, &attempt.path);
        let body = attempt.body();
        match (attempt.acked, response.status) {
            (_, 200) => {
                assert!(
                    response.body == body,
                    "{} ({} B, acked: {}) is served with {} different bytes",
                    attempt.path,
                    body.len(),
                    attempt.acked,
                    response.body.len()
                );
                if !attempt.acked {
                    unacked_present += 1;
                }
            }
            (false, 404) => unacked_absent += 1,
            (acked, status) => panic!(
                "{} ({} B, acked: {acked}): GET answered {status} after restart",
                attempt.path,
                body.len()
            ),
        }
    }
    (unacked_absent, unacked_present)
}

#[test]
fn kill_9_during_concurrent_uploads_loses_no_acknowledged_upload_and_serves_nothing_torn() {
    crash_rounds("relaxed");
}

#[test]
fn kill_9_during_concurrent_uploads_with_strict_durability() {
    crash_rounds("strict");
}

/// Kills the server during concurrent uploads [`CRASH_ROUNDS`] times, checking after every
/// restart, then stops it cleanly and verifies the directory offline.
fn crash_rounds(durability: &str) {
    let seed = common::http_client::test_seed();
    eprintln!("kill_9 ({durability}): TESSERA_TEST_SEED={seed}");
    let mut rng = Rng::new(seed);
    let args = ["--segment-size", "1MiB", "--durability", durability];
    let mut server = Tessera::start(&args, &[]);
    let attempts = Arc::new(Mutex::new(Vec::new()));
    for round in 0..CRASH_ROUNDS {
        upload_and_kill(&mut server, &mut rng, &attempts);
        server.restart();
        let attempts = attempts.lock().unwrap().clone();
        let (absent, present) = check_attempts(server.addr(), &attempts);
        eprintln!(
            "kill_9 ({durability}) round {round}: {} uploads, {} acknowledged, of the others {absent} absent \
             and {present} complete",
            attempts.len(),
            attempts.iter().filter(|a| a.acked).count()
        );
        assert_serving(server.addr());
    }
    // The recovered store takes new uploads and stops cleanly; verify finds it healthy.
    let fresh = rng.bytes(123_457);
    assert_eq!(put(server.addr(), &cas_path(&fresh), &fresh).status, 200);
    server.stop_expecting_exit_0();
    let verified = common::verify(server.data_dir());
    assert!(
        verified.status.success(),
        "tessera verify after kill -9 and recovery: {verified:?}"
    );
    server.restart();
    assert_stored(server.addr(), &cas_path(&fresh), &fresh);
    let attempts = attempts.lock().unwrap().clone();
    check_attempts(server.addr(), &attempts);
}

/// Every regular file under `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("read the data dir") {
            let entry = entry.unwrap();
            let file_type = entry.file_type().unwrap();
            if file_type.is_dir() {
                pending.push(entry.path());
            } else if file_type.is_file() {
                files.push(entry.path());
            }
        }
    }
    files
}

/// Flips one bit in every place of the data directory where `window` occurs; returns how many.
fn damage_every_copy(dir: &Path, window: &[u8]) -> usize {
    let mut damaged = 0;
    for path in files_under(dir) {
        let mut bytes = std::fs::read(&path).unwrap();
        let mut changed = false;
        let mut at = 0;
        while let Some(found) = bytes[at..].windows(window.len()).position(|w| w == window) {
            let middle = at + found + window.len() / 2;
            bytes[middle] ^= 0x01;
            damaged += 1;
            changed = true;
            at = at + found + window.len();
        }
        if changed {
            std::fs::write(&path, &bytes).unwrap();
        }
    }
    damaged
}

#[test]
fn verify_passes_a_healthy_directory_and_a_damaged_record_is_reported_and_served_as_a_miss() {
    let seed = common::http_client::test_seed();
    eprintln!("verify: TESSERA_TEST_SEED={seed}");
    let mut rng = Rng::new(seed);
    let mut server = Tessera::start(&["--shards", "1"], &[]);
    let victim = rng.bytes(64 * 1024);
    let bystander = rng.bytes(64 * 1024);
    assert_eq!(put(server.addr(), &cas_path(&victim), &victim).status, 200);
    assert_eq!(
        put(server.addr(), &cas_path(&bystander), &bystander).status,
        200
    );
    server.stop_expecting_exit_0();

    let healthy = common::verify(server.data_dir());
    assert!(
        healthy.status.success(),
        "verify of a healthy dir: {healthy:?}"
    );

    let window = &victim[30_000..30_064];
    let damaged = damage_every_copy(server.data_dir(), window);
    assert!(
        damaged > 0,
        "the victim's bytes are not in the data directory as stored"
    );
    let report = common::verify(server.data_dir());
    assert!(
        !report.status.success(),
        "verify passed a data dir with a flipped bit in a record body: {report:?}"
    );

    server.restart();
    let response = get(server.addr(), &cas_path(&victim));
    assert_eq!(
        response.status,
        404,
        "a damaged record must read as a miss, got {} with {} bytes",
        response.status,
        response.body.len()
    );
    assert_stored(server.addr(), &cas_path(&bystander), &bystander);
    // The blob can be uploaded again and is then served intact.
    assert_eq!(put(server.addr(), &cas_path(&victim), &victim).status, 200);
    assert_stored(server.addr(), &cas_path(&victim), &victim);
    server.stop_expecting_exit_0();
}

/// Regression: right after `kill -9`, the kernel's asynchronous io_uring teardown still holds
/// the dead server's listening sockets for about 10 ms, and a restart on the same port failed
/// with "address in use".
#[test]
fn restart_on_the_same_port_right_after_kill_9() {
    let mut server = Tessera::start(&[], &[]);
    let blob = b"survives a crash and an immediate restart".to_vec();
    for round in 0..3 {
        assert_eq!(put(server.addr(), &cas_path(&blob), &blob).status, 200);
        // A kept-alive connection is open at the kill, as Bazel's are.
        let mut conn = Conn::open(server.addr()).unwrap();
        assert_eq!(conn.request("GET", "/healthz", &[]).unwrap().status, 200);
        let port = server.port();
        server.kill9();
        server.restart_on_same_port();
        assert_eq!(server.port(), port, "round {round}");
        assert_stored(server.addr(), &cas_path(&blob), &blob);
    }
    server.stop_expecting_exit_0();
}

#[test]
fn a_second_server_on_the_same_data_directory_is_refused_and_the_first_is_unaffected() {
    let server = Tessera::start(&[], &[]);
    let blob = b"owned by the first server".to_vec();
    assert_eq!(put(server.addr(), &cas_path(&blob), &blob).status, 200);
    let data = server.data_dir().to_str().unwrap().to_string();
    let second = common::run_tessera(&["serve", "--listen", "127.0.0.1:0", "--data", &data], &[]);
    assert!(!second.status.success(), "{second:?}");
    assert!(
        !second.stdout.contains(common::server::READY_PREFIX),
        "a second server opened a data directory in use: {second:?}"
    );
    assert!(
        second.stderr.contains("in use"),
        "refused without saying why: {second:?}"
    );
    assert_stored(server.addr(), &cas_path(&blob), &blob);
}

#[test]
fn a_data_directory_keeps_its_shard_count() {
    let mut server = Tessera::start(&["--shards", "2"], &[]);
    let blob = b"written with two shards".to_vec();
    assert_eq!(put(server.addr(), &cas_path(&blob), &blob).status, 200);
    server.stop_expecting_exit_0();
    let data = server.data_dir().to_str().unwrap().to_string();
    let other_count = common::run_tessera(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data",
            &data,
            "--shards",
            "3",
        ],
        &[],
    );
    assert!(!other_count.status.success(), "{other_count:?}");
    assert!(
        other_count.stderr.contains("shard"),
        "the refusal does not mention the shard count: {other_count:?}"
    );
    // Without --shards the directory's own count is used, and nothing was lost.
    server.restart_with(&[]);
    assert_stored(server.addr(), &cas_path(&blob), &blob);
    assert!(
        server.stdout_lines()[0].contains("shards=2"),
        "{:?}",
        server.stdout_lines()
    );
    server.stop_expecting_exit_0();
}
