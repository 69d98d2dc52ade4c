//! Real Nx (npm `nx` 24.0.6) against `tessera serve` as its self-hosted remote cache
//! (`/v1/cache/<hash>`), driven by `tests/clients/nx/run.sh`: after `nx reset` and removing the
//! outputs, Nx takes the task from Tessera, byte-identical. An entry over `--max-blob-size` is
//! refused with a 403, the one refusal Nx shrugs off (a 413 or 507 fails the user's task), and
//! Nx reads it on its first try.
//!
//! Needs Node and nx: `bash tests/install-deps.sh` (or `TESSERA_SKIP_REAL_CLIENTS=1` to skip).

mod common;

use std::collections::BTreeMap;

use common::cache_clients::{response_counts, run_driver, DriverRun};
use common::http_client::{self, request_head, Conn};
use common::Tessera;

/// The longest Nx key: Nx names entries by a decimal u64 (up to 20 digits).
const NX_KEY_MAX: &str = "18446744073709551615";

/// Runs the Nx driver against `server`; panics with the server's log if it fails.
fn run_nx(server: &Tessera, args: &[&str]) -> DriverRun {
    let run = run_driver("nx", args, &server.url())
        .unwrap_or_else(|error| panic!("{error}\ntessera log:\n{}", server.full_log()));
    eprintln!("{} ({} ms)", run.summary, run.elapsed.as_millis());
    run
}

/// Panics unless every response counted in `counts` has one of the `allowed` statuses.
fn assert_only_statuses(counts: &BTreeMap<u16, u64>, allowed: &[u16]) {
    let other: Vec<_> = counts
        .iter()
        .filter(|(code, _)| !allowed.contains(code))
        .collect();
    assert!(
        other.is_empty(),
        "responses Nx must never see (status, count): {other:?}"
    );
}

#[test]
fn nx_takes_the_task_from_tessera_after_nx_reset() {
    if common::skip_real_client("Nx") {
        return;
    }
    let mut server = Tessera::start(&[], &[]);
    let run = run_nx(&server, &[]);
    assert_eq!(run.value("first"), Some("miss"));
    assert_eq!(run.value("second"), Some("remote-hit"));
    // Nx saw a 404 for its first GET and a 200 for everything else: PUT and the hit.
    let counts = response_counts(server.addr());
    assert_only_statuses(&counts, &[200, 404]);
    assert_eq!(counts.get(&404), Some(&1), "{counts:?}");
    server.stop_expecting_exit_0();
    let verified = common::verify(server.data_dir());
    assert!(verified.status.success(), "tessera verify: {verified:?}");
}

#[test]
fn an_nx_upload_over_max_blob_size_is_a_403_that_nx_reads_and_tolerates() {
    if common::skip_real_client("Nx") {
        return;
    }
    // The fixture's entry is a 1 MiB tar.gz: over this bound.
    let server = Tessera::start(&["--max-blob-size", "512KiB"], &[]);
    let addr = server.addr();
    let path = format!("/v1/cache/{NX_KEY_MAX}");

    // 1. 64 MiB, far more than the socket buffers hold: the server reads the body to its end
    //    and answers 403 (never 413), so a client that sends all of it, as Nx does, reads the
    //    403 and not a reset. Nothing is stored.
    let too_large = vec![0x5a_u8; 64 << 20];
    let refused = Conn::open(addr)
        .and_then(|mut conn| conn.request("PUT", &path, &too_large))
        .unwrap_or_else(|e| panic!("PUT {path} of 64 MiB: {e}\n{}", server.full_log()));
    assert_eq!(refused.status, 403, "{refused:?}");
    assert_eq!(refused.header("content-type"), Some("text/plain"));
    assert!(
        refused.text().contains("limit of 524288 bytes"),
        "{}",
        refused.text()
    );
    assert_eq!(http_client::get(addr, &path).status, 404, "nothing stored");

    // 2. The bound is the store's: other clients get the precise 413 (here Gradle, head only).
    let mut gradle = Conn::open(addr).unwrap();
    let gradle_path = "/cache/0123456789abcdef0123456789abcdef";
    gradle
        .send(&request_head("PUT", gradle_path, 8 << 20, &[]))
        .unwrap();
    assert_eq!(gradle.read_response().unwrap().status, 413);

    // 3. Within the bound the same 20-digit key stores and is served.
    let entry = vec![7_u8; 1000];
    assert_eq!(http_client::put(addr, &path, &entry).status, 200);
    let hit = http_client::get(addr, &path);
    assert_eq!((hit.status, hit.body == entry), (200, true), "{hit:?}");

    // 4. Real Nx: the refused upload does not fail the task, and the next build executes again.
    let before = response_counts(addr);
    let run = run_nx(&server, &["--expect-refused"]);
    assert_eq!(run.value("second"), Some("miss"));
    let during: BTreeMap<u16, u64> = response_counts(addr)
        .into_iter()
        .map(|(code, n)| (code, n - before.get(&code).unwrap_or(&0)))
        .filter(|&(_, n)| n > 0)
        .collect();
    assert_only_statuses(&during, &[200, 403, 404]);
    // Two builds, one PUT each: Nx sends a PUT again when it could not read the answer (a
    // reset mid-upload), so a third would mean Nx missed a 403.
    assert_eq!(
        during.get(&403),
        Some(&2),
        "answers during the Nx run: {during:?}"
    );
}
