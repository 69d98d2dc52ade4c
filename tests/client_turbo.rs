//! Real Turborepo (npm `turbo` 2.11.11) against `tessera serve` as its remote cache
//! (`/v8/artifacts`), driven by `tests/clients/turbo/run.sh`: with its local cache removed,
//! turbo replays the task from Tessera ("FULL TURBO", byte-identical outputs), and two teams
//! never share an entry. Every answer turbo got was one it expects (its status check on every
//! run, its events, its uploads), and the stored artifact comes back with the `x-artifact-*`
//! headers turbo sent.
//!
//! Needs Node and turbo: `bash tests/install-deps.sh` (or `TESSERA_SKIP_REAL_CLIENTS=1` to skip).

mod common;

use common::cache_clients::{response_counts, run_driver};
use common::http_client;
use common::Tessera;

/// The first four bytes of a zstd frame: turbo uploads its artifacts as tar.zst.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

#[test]
fn turbo_replays_from_tessera_per_team_and_teams_never_share_entries() {
    if common::skip_real_client("Turborepo") {
        return;
    }
    let mut server = Tessera::start(&[], &[]);
    let (team_a, team_b) = ("tessera-a", "tessera-b");
    let args = ["--team", team_a, "--other-team", team_b];
    let run = run_driver("turbo", &args, &server.url())
        .unwrap_or_else(|error| panic!("{error}\ntessera log:\n{}", server.full_log()));
    eprintln!("{} ({} ms)", run.summary, run.elapsed.as_millis());
    for (step, want) in [
        ("a1", "miss"),
        ("a2", "remote-hit"),
        ("b1", "miss"),
        ("b2", "remote-hit"),
    ] {
        assert_eq!(run.value(step), Some(want), "step {step}");
    }

    // Four runs: every status check, upload, hit and events report was a 200; the only 404s
    // are the two first lookups (team A's, then team B's own).
    let counts = response_counts(server.addr());
    let unexpected: Vec<_> = counts
        .iter()
        .filter(|(code, _)| ![200, 404].contains(*code))
        .collect();
    assert!(unexpected.is_empty(), "statuses turbo got: {counts:?}");
    assert_eq!(counts.get(&404), Some(&2), "{counts:?}");

    // Each team's entry is stored under the task hash turbo printed, with turbo's headers.
    let hash = run.value("hash").expect("the driver prints the task hash");
    assert!(
        hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
        "{hash}"
    );
    for team in [team_a, team_b] {
        let path = format!("/v8/artifacts/{hash}?slug={team}");
        let artifact = http_client::get(server.addr(), &path);
        assert_eq!(artifact.status, 200, "{path}");
        assert!(
            artifact.body.starts_with(&ZSTD_MAGIC),
            "{path}: not tar.zst"
        );
        let duration = artifact.header("x-artifact-duration").unwrap_or("");
        assert!(
            !duration.is_empty() && duration.bytes().all(|b| b.is_ascii_digit()),
            "{path}: x-artifact-duration {duration:?} (turbo reads it back as a number)"
        );
        let sha = artifact.header("x-artifact-sha").unwrap_or("");
        assert_eq!(sha.len(), 40, "{path}: x-artifact-sha {sha:?}");
    }
    let other_team = format!("/v8/artifacts/{hash}?slug=tessera-c");
    assert_eq!(http_client::get(server.addr(), &other_team).status, 404);

    server.stop_expecting_exit_0();
    let verified = common::verify(server.data_dir());
    assert!(verified.status.success(), "tessera verify: {verified:?}");
}
