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
