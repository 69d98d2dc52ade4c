//! `Type=notify` without systemd: the test plays systemd's part. It binds a unix datagram socket,
//! names it in `$NOTIFY_SOCKET` for the real binary, and reads what the server reports:
//! `READY=1` once it serves, `WATCHDOG=1` every half `WATCHDOG_USEC` while every executor runs,
//! and `STOPPING=1` when SIGTERM starts the drain. Both address forms systemd uses are covered: a
//! path and an `@abstract` name.

mod common;

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};
use std::time::{Duration, Instant};

use common::http_client;
use common::Tessera;

/// Server flags: a small store, two executors so that the watchdog covers more than one.
const SERVE_ARGS: [&str; 8] = [
    "--max-size",
    "64MiB",
    "--segment-size",
    "8MiB",
    "--executors",
    "2",
    "--shards",
    "2",
];

/// The watchdog timeout the test asks for: the server pings every half of it.
const WATCHDOG_USEC: u64 = 400_000;

/// How long the test waits for any one notification.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(30);

/// The notify socket, on its own end of the protocol (as systemd's manager would hold it).
struct Manager {
    socket: UnixDatagram,
    _dir: tempfile::TempDir,
}

impl Manager {
    /// A socket bound to a path; the env value is that path.
    fn at_path() -> (Manager, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).unwrap();
        let value = path.to_str().unwrap().to_string();
        (Manager { socket, _dir: dir }, value)
    }

    /// A socket bound to an abstract name; the env value is `@name`.
    fn abstract_name() -> (Manager, String) {
        let name = format!("tessera-test-notify-{}-{}", std::process::id(), nanos());
        let addr = UnixAddr::from_abstract_name(name.as_bytes()).unwrap();
        let socket = UnixDatagram::bind_addr(&addr).unwrap();
        let dir = tempfile::tempdir().unwrap();
        (Manager { socket, _dir: dir }, format!("@{name}"))
    }

    /// The next datagram's assignments (one per line), or None on timeout.
    fn next(&self, timeout: Duration) -> Option<Vec<String>> {
        self.socket.set_read_timeout(Some(timeout)).unwrap();
        let mut buffer = [0u8; 4096];
        match self.socket.recv(&mut buffer) {
            Ok(n) => Some(
                String::from_utf8_lossy(&buffer[..n])
                    .lines()
                    .map(str::to_string)
                    .collect(),
            ),
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(error) => panic!("recv on the notify socket: {error}"),
        }
    }

    /// Waits for a datagram holding `assignment`; returns every datagram seen before it.
    fn expect(&self, assignment: &str, server: &Tessera) -> Vec<Vec<String>> {
        let deadline = Instant::now() + NOTIFY_TIMEOUT;
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            if let Some(message) = self.next(deadline - Instant::now()) {
                if message.iter().any(|line| line == assignment) {
                    return seen;
                }
                seen.push(message);
            }
        }
        panic!(
            "no {assignment} within {NOTIFY_TIMEOUT:?}; got {seen:?}; log:\n{}",
            server.recent_log()
        );
    }

    /// Every datagram that arrives within `window`.
    fn collect(&self, window: Duration) -> Vec<Vec<String>> {
        let deadline = Instant::now() + window;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            if left.is_zero() {
                break;
            }
            if let Some(message) = self.next(left) {
                seen.push(message);
            }
        }
        seen
    }
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn count(messages: &[Vec<String>], assignment: &str) -> usize {
    messages
        .iter()
        .filter(|m| m.iter().any(|line| line == assignment))
        .count()
}

/// READY=1 once serving (the server answers /healthz by then), WATCHDOG=1 repeatedly, then
/// STOPPING=1 on SIGTERM and a clean exit.
fn ready_watchdog_stopping(manager: Manager, notify_socket: &str) {
    let usec = WATCHDOG_USEC.to_string();
    let mut server = Tessera::start(
        &SERVE_ARGS,
        &[("NOTIFY_SOCKET", notify_socket), ("WATCHDOG_USEC", &usec)],
    );
    let before_ready = manager.expect("READY=1", &server);
    assert_eq!(
        count(&before_ready, "STOPPING=1"),
        0,
        "STOPPING before READY: {before_ready:?}"
    );
    assert_eq!(http_client::get(server.addr(), "/healthz").status, 200);

    // Pings come every half timeout (200 ms): a second of them is about five.
    let second = manager.collect(Duration::from_secs(1));
    let pings = count(&second, "WATCHDOG=1");
    assert!(
        pings >= 2,
        "expected WATCHDOG=1 about every {} ms, got {second:?}; log:\n{}",
        WATCHDOG_USEC / 2000,
        server.recent_log()
    );

    server.send_sigterm();
    manager.expect("STOPPING=1", &server);
    let status = server.wait_for_exit(Duration::from_millis(common::server::EXIT_TIMEOUT_MS));
    assert!(
        status.success(),
        "exit {status}; log:\n{}",
        server.recent_log()
    );
}

#[test]
fn notifies_ready_watchdog_and_stopping_on_a_socket_path() {
    let (manager, value) = Manager::at_path();
    ready_watchdog_stopping(manager, &value);
}

#[test]
fn notifies_on_an_abstract_socket() {
    let (manager, value) = Manager::abstract_name();
    ready_watchdog_stopping(manager, &value);
}

/// The thread ids of the server's threads whose name starts with `prefix`
/// (`/proc/PID/task/TID/comm`). Glommio names an executor's threads `NAME-ID`: the executor
/// itself and its helper for blocking calls.
fn threads_named(pid: u32, prefix: &str) -> Vec<libc::pid_t> {
    let tids: Vec<libc::pid_t> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|task| {
            let task = task.unwrap();
            let comm = std::fs::read_to_string(task.path().join("comm")).ok()?;
            comm.starts_with(prefix)
                .then(|| task.file_name().to_str()?.parse().ok())?
        })
        .collect();
    assert!(!tids.is_empty(), "no thread {prefix}* in process {pid}");
    tids
}

/// Stops one thread of another process (and no other thread of it) until dropped: ptrace
/// attaches to a single thread, and `PTRACE_INTERRUPT` stops only that one. The test is the
/// server's parent, which ptrace's usual policy (Yama scope 1) allows.
struct StoppedThread(libc::pid_t);

impl StoppedThread {
    fn stop(tid: libc::pid_t) -> StoppedThread {
        let null = std::ptr::null_mut::<libc::c_void>();
        // SAFETY: ptrace requests on a thread id; no memory of ours is passed.
        let seized = unsafe { libc::ptrace(libc::PTRACE_SEIZE, tid, null, null) };
        assert_eq!(
            seized,
            0,
            "PTRACE_SEIZE: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: as above.
        let interrupted = unsafe { libc::ptrace(libc::PTRACE_INTERRUPT, tid, null, null) };
        assert_eq!(
            interrupted,
            0,
            "PTRACE_INTERRUPT: {}",
            std::io::Error::last_os_error()
        );
        let mut status = 0;
        // SAFETY: waits for the thread's stop; `status` is a local.
        let waited = unsafe { libc::waitpid(tid, &mut status, libc::__WALL) };
        assert_eq!(waited, tid, "waitpid: {}", std::io::Error::last_os_error());
        assert!(libc::WIFSTOPPED(status), "status {status:#x}");
        StoppedThread(tid)
    }
}

impl Drop for StoppedThread {
    fn drop(&mut self) {
        let null = std::ptr::null_mut::<libc::c_void>();
        // SAFETY: detaching resumes the thread; no memory is involved.
        unsafe { libc::ptrace(libc::PTRACE_DETACH, self.0, null, null) };
    }
}

/// The integration test of the watchdog's purpose: while one executor of two is stalled (its
/// thread stopped from outside, as a wedged task would hold it), the server withholds
/// `WATCHDOG=1`; once the executor runs again, the pings come back. Nothing in the binary helps
/// the test: the stall is made with ptrace.
#[test]
fn watchdog_pings_stop_while_one_executor_is_stalled() {
    let (manager, value) = Manager::at_path();
    let usec = WATCHDOG_USEC.to_string();
    let mut server = Tessera::start(
        &SERVE_ARGS,
        &[("NOTIFY_SOCKET", &value), ("WATCHDOG_USEC", &usec)],
    );
    manager.expect("READY=1", &server);
    let running = manager.collect(Duration::from_secs(1));
    assert!(count(&running, "WATCHDOG=1") >= 2, "{running:?}");

    let stopped: Vec<StoppedThread> = threads_named(server.pid(), "tessera-1-")
        .into_iter()
        .map(StoppedThread::stop)
        .collect();
    // A ping for the period that ended before the stop may still arrive: let one period pass.
    manager.collect(Duration::from_micros(WATCHDOG_USEC));
    let stalled = manager.collect(Duration::from_secs(1));
    assert_eq!(
        count(&stalled, "WATCHDOG=1"),
        0,
        "pinged while executor 1 was stopped: {stalled:?}"
    );
    assert!(
        server.wait_for_log("withholding the watchdog ping", Duration::from_secs(5)),
        "{}",
        server.recent_log()
    );

    drop(stopped);
    let resumed = manager.collect(Duration::from_secs(1));
    assert!(
        count(&resumed, "WATCHDOG=1") >= 2,
        "no pings after executor 1 resumed: {resumed:?}; log:\n{}",
        server.recent_log()
    );
    server.stop_expecting_exit_0();
}

#[test]
fn no_watchdog_pings_without_watchdog_usec_or_for_another_pid() {
    for env in [
        vec![],
        // WATCHDOG_PID names another process: the watchdog is not ours.
        vec![("WATCHDOG_USEC", "100000"), ("WATCHDOG_PID", "1")],
    ] {
        let (manager, value) = Manager::at_path();
        let mut all_env = vec![("NOTIFY_SOCKET", value.as_str())];
        all_env.extend(env.iter().copied());
        let mut server = Tessera::start(&SERVE_ARGS, &all_env);
        manager.expect("READY=1", &server);
        let after = manager.collect(Duration::from_millis(600));
        assert_eq!(count(&after, "WATCHDOG=1"), 0, "{env:?}: {after:?}");
        server.stop_expecting_exit_0();
    }
}

#[test]
fn serves_without_notify_socket() {
    // Outside systemd the notifications are no-ops: nothing is logged about them.
    let mut server = Tessera::start(&SERVE_ARGS, &[]);
    assert_eq!(http_client::get(server.addr(), "/healthz").status, 200);
    server.stop_expecting_exit_0();
    assert!(
        !server.full_log().contains("cannot notify systemd"),
        "{}",
        server.full_log()
    );
}
