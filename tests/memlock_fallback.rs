//! An unprivileged deployment: without CAP_IPC_LOCK, io_uring buffer registration counts
//! against RLIMIT_MEMLOCK and fails (stack.md §7); glommio then falls back to unregistered
//! buffers and logs a warning, which Tessera's log bridge forwards to stderr. This runs the real
//! binary under a small RLIMIT_MEMLOCK (`prlimit`, util-linux) with the capability dropped
//! (`capsh`, Debian `libcap2-bin`) and checks the evidence that registration failed in every
//! executor, and that the server still starts, stores, serves and drains on SIGTERM. A second
//! test is the control: with CAP_IPC_LOCK the same server registers its buffers and logs no
//! such warning, so the first test cannot pass on a server that kept registered buffers.

mod common;

use std::time::Duration;

use common::http_client::{assert_stored, put};
use common::Tessera;

/// RLIMIT_MEMLOCK the server runs under: at least glommio's start-up minimum (512 KiB, below
/// which an executor refuses to start) and far below the 10 MiB of I/O memory each glommio
/// executor registers with io_uring (glommio 0.9 `DEFAULT_IO_MEMORY`), so that without
/// CAP_IPC_LOCK registration fails whatever limit the machine itself sets.
const MEMLOCK_LIMIT_BYTES: u64 = 2 << 20;

/// glommio 0.9's warning when io_uring refuses to register its buffers (`sys/uring.rs`,
/// `Reactor::new`): once per executor, after which it uses unregistered buffers.
const REGISTRATION_FAILED: &str = "Error: registering buffers in the main ring. Skipping";

/// How long the server gets to log the warning after its ready line (it is logged before the
/// ready line; this only covers the stderr pipe being read).
const LOG_WAIT_MS: u64 = 10_000;

/// Capability number of CAP_IPC_LOCK (linux/capability.h).
const CAP_IPC_LOCK: u32 = 14;

/// Whether `CapEff` in `/proc/<pid>/status` (`self` or a pid) holds CAP_IPC_LOCK.
fn has_cap_ipc_lock(pid: &str) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let effective = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .map(|hex| u64::from_str_radix(hex.trim(), 16).expect("CapEff is hex"))
        .expect("CapEff line");
    effective & (1 << CAP_IPC_LOCK) != 0
}

/// The soft RLIMIT_MEMLOCK of `pid` in bytes, from `/proc/<pid>/limits`.
fn memlock_limit_bytes(pid: u32) -> Option<u64> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max locked memory"))?;
    line["Max locked memory".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `prlimit` setting both RLIMIT_MEMLOCK limits to [`MEMLOCK_LIMIT_BYTES`]; it `exec`s the
/// rest of the command line.
fn memlock_wrapper() -> Vec<String> {
    let limit = format!("--memlock={MEMLOCK_LIMIT_BYTES}:{MEMLOCK_LIMIT_BYTES}");
    vec!["prlimit".to_string(), limit]
}

/// [`memlock_wrapper`], then, when the test runs with CAP_IPC_LOCK, `capsh` dropping it and
/// running `bash -c 'exec "$@"'` on the server's command line. Each step `exec`s the next, so
/// the server keeps the pid the harness signals.
fn unprivileged_wrapper() -> Vec<String> {
    let mut wrapper = memlock_wrapper();
    if has_cap_ipc_lock("self") {
        // Dropped from the bounding set, it is gone from the permitted set after the exec.
        let capsh = [
            "capsh",
            "--drop=cap_ipc_lock",
            "--",
            "-c",
            "exec \"$@\"",
            "tessera",
        ];
        wrapper.extend(capsh.map(String::from));
    }
    wrapper
}

/// Starts the server through `wrapper` and checks it runs with the intended limit.
fn start_under(wrapper: &[String]) -> Tessera {
    let server = Tessera::builder().wrapper(wrapper).start();
    let pid = server.pid();
    assert_eq!(
        memlock_limit_bytes(pid),
        Some(MEMLOCK_LIMIT_BYTES),
        "the server does not run under the test's RLIMIT_MEMLOCK"
    );
    server
}

/// PUT then GET on the server, then a clean drain.
fn serve_and_drain(server: &mut Tessera) {
    let hash = "5".repeat(64);
    let path = format!("/ac/{hash}");
    let stored = put(server.addr(), &path, b"hello");
    assert_eq!(stored.status, 200, "{}", stored.text());
    assert_stored(server.addr(), &path, b"hello");
    server.stop_expecting_exit_0();
}

#[test]
fn serves_without_cap_ipc_lock_on_unregistered_buffers() {
    let mut server = start_under(&unprivileged_wrapper());
    let pid = server.pid().to_string();
    assert!(
        !has_cap_ipc_lock(&pid),
        "the server still holds CAP_IPC_LOCK: the fallback is not exercised"
    );
    let executors = server.ready_line().executors as usize;
    let logged = server.wait_for_log(REGISTRATION_FAILED, Duration::from_millis(LOG_WAIT_MS));
    assert!(
        logged,
        "no sign that io_uring buffer registration failed ({REGISTRATION_FAILED:?}); the \
         server may run with registered buffers. log:\n{}",
        server.recent_log()
    );
    serve_and_drain(&mut server);
    // Every executor fell back, each exactly once (its stderr is read to the end by now).
    assert_eq!(
        server.log_count(REGISTRATION_FAILED),
        executors,
        "one registration failure per executor; log:\n{}",
        server.recent_log()
    );
}

#[test]
fn with_cap_ipc_lock_buffers_are_registered_and_no_fallback_is_logged() {
    if !has_cap_ipc_lock("self") {
        eprintln!(
            "SKIPPED: this test process lacks CAP_IPC_LOCK, so it cannot start a server that \
             registers its buffers under a small RLIMIT_MEMLOCK"
        );
        return;
    }
    // The same limit, capability kept: io_uring does not charge RLIMIT_MEMLOCK then.
    let mut server = start_under(&memlock_wrapper());
    let pid = server.pid().to_string();
    assert!(has_cap_ipc_lock(&pid), "the control lost CAP_IPC_LOCK");
    serve_and_drain(&mut server);
    assert_eq!(
        server.log_count(REGISTRATION_FAILED),
        0,
        "buffer registration failed even with CAP_IPC_LOCK; log:\n{}",
        server.recent_log()
    );
}
