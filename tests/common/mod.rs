//! The integration-test harness: every test in `tests/*.rs` that runs the real `tessera`
//! binary, a client or a reference server does it through this module (`mod common;`).
//!
//! - [`Tessera`] ([`server`]): `tessera serve` on a fresh temporary data directory, started
//!   through [`Tessera::builder`] with any extra CLI flags, environment variables (set or
//!   removed), a config file given as TOML text, a fixed or kernel-picked main port, an extra
//!   `--grpc-listen` port, an existing data directory, a test-sized store (`small_store`), a
//!   command prefix (`prlimit`, `capsh`, `setpriv`, a seccomp launcher) or a whole command
//!   line of its own (an installed unit's `ExecStart`). `start()` returns once the ready line
//!   `tessera listening on ADDR[ grpc=ADDR] shards=N executors=M` is out and panics with the
//!   server's log if it is not; `try_start()` returns that failure instead. Stdout and stderr are drained for the whole life
//!   of the process (it never blocks on a full pipe) and stay available to assertions:
//!   [`Tessera::recent_log`], [`Tessera::wait_for_log`], [`Tessera::stdout_lines`]. Stop with
//!   SIGTERM ([`Tessera::stop_expecting_exit_0`], [`Tessera::send_sigterm`]) or SIGKILL
//!   ([`Tessera::kill9`]); [`Tessera::restart`] / [`Tessera::restart_on_same_port`] start it
//!   again on the same data directory. Dropping it kills it.
//! - [`run_tessera`] / [`verify`]: one-shot `tessera` commands (a `serve` that must refuse to
//!   start, `tessera verify`), bounded in time, output captured.
//! - [`http_client`]: a byte-precise HTTP/1.1 client (`get`, `put`, `Conn` for keep-alive,
//!   pipelining and half-sent requests), SHA-256 CAS paths, a seeded PRNG.
//! - [`grpc_client`]: an h2 + prost gRPC client on a glommio executor (`run_executor`,
//!   `connect`, `unary`, `call`, raw streams).
//! - [`require_real_client`]: the `TESSERA_SKIP_REAL_CLIENTS=1` switch. A test that needs an
//!   external client (Bazel, Gradle, ccache, an S3 SDK, Python grpcio…) calls it first: with
//!   the switch set it prints an explicit skip and returns false; otherwise it returns true
//!   when the client is there and fails the test with the install hint when it is not.
//!   ([`skip_real_client`] is the switch alone, for a client whose driver reports a missing
//!   install itself.)
//! - [`loop_fs`]: a small loop-mounted ext4 of a test's own, to fill the disk for real.
//! - [`eventually`]: polls a condition with a bounded deadline (for what the server does
//!   asynchronously: gauges settling, connections closing), never a fixed sleep.
//! - [`bazel`], [`nginx`], [`buildgrid`]: real Bazel 4.2.3 and the reference caches that prove
//!   the Bazel harness; [`cache_clients`]: the driver scripts of `tests/clients/` (Gradle,
//!   ccache) and the bad-input checks every opaque-key front-end passes; [`external_server`]
//!   and [`process`] are the process plumbing under them and under [`Tessera`].
//!
//! A new real-client test (Gradle, Nx, Turborepo, ccache, S3, …) looks like this:
//!
//! ```ignore
//! mod common;
//!
//! use common::http_client::{get, put, cas_path};
//! use common::Tessera;
//!
//! #[test]
//! fn gradle_build_cache_hits_after_a_restart() {
//!     if !common::require_real_client("gradle (Debian gradle)", gradle_available()) {
//!         return;
//!     }
//!     let mut server = Tessera::builder()
//!         .args(["--shards", "2", "--max-blob-size", "64MiB"])
//!         .env("TESSERA_IDLE_TIMEOUT", "5s")
//!         .config("durability = \"strict\"\n")
//!         .grpc_listen()
//!         .start();
//!     run_gradle(&server.url());                  // http://127.0.0.1:PORT
//!     assert!(!server.recent_log().contains("ERROR"), "{}", server.recent_log());
//!     server.stop_expecting_exit_0();             // SIGTERM drains, exit status 0
//!     server.restart();                           // same data directory, new port
//!     run_gradle(&server.url());
//!     let page = get(server.addr(), "/metrics");  // or server.grpc_addr(), server.data_dir()
//!     assert_eq!(page.status, 200);
//! }
//! ```
//!
//! Installs a test needs go into `tests/install-deps.sh`. Tests talk to 127.0.0.1 only.

// Each test crate uses a different part of the harness.
#![allow(dead_code)]

pub mod bazel;
pub mod buildgrid;
pub mod cache_clients;
pub mod external_server;
pub mod grpc_client;
pub mod http_client;
pub mod loop_fs;
pub mod nginx;
pub mod process;
pub mod server;

use std::time::{Duration, Instant};

// The names every server test uses, at the top (unused ones are fine, as for dead code above).
#[allow(unused_imports)]
pub use server::{run_tessera, verify, Tessera, TesseraBuilder};

/// Environment variable that turns a missing real client into a printed skip instead of a
/// failure.
pub const SKIP_REAL_CLIENTS_ENV: &str = "TESSERA_SKIP_REAL_CLIENTS";

/// Decides whether a real-client test runs: `false` (after printing an explicit skip) when
/// `TESSERA_SKIP_REAL_CLIENTS=1`; otherwise `true` when `available`, and a panic with the
/// install command when not: a missing client must never make a test pass silently.
pub fn require_real_client(client: &str, available: bool) -> bool {
    if skip_real_client(client) {
        return false;
    }
    assert!(
        available,
        "{client} is not installed: run `bash tests/install-deps.sh` \
         (or set {SKIP_REAL_CLIENTS_ENV}=1 to skip real-client tests)"
    );
    true
}

/// True (after printing an explicit skip naming `client`) when `TESSERA_SKIP_REAL_CLIENTS=1`.
pub fn skip_real_client(client: &str) -> bool {
    if std::env::var(SKIP_REAL_CLIENTS_ENV).as_deref() != Ok("1") {
        return false;
    }
    eprintln!("SKIPPED: {SKIP_REAL_CLIENTS_ENV}=1, {client} not run");
    true
}

/// Poll interval of [`eventually`].
pub const EVENTUALLY_POLL_MS: u64 = 20;

/// Calls `check` until it returns `Ok`, for at most `timeout`; then panics with `what` and the
/// last `Err` it returned (what was observed instead). Returns the `Ok` value.
pub fn eventually<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(value) => return value,
            Err(observed) if Instant::now() >= deadline => panic!(
                "{what}: not within {} ms; last observed: {observed}",
                timeout.as_millis()
            ),
            Err(_) => std::thread::sleep(Duration::from_millis(EVENTUALLY_POLL_MS)),
        }
    }
}
