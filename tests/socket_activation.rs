//! Socket activation without systemd: the test plays systemd's part. It owns the listening
//! socket and passes it to each `tessera serve` as fd 3 with `LISTEN_PID`/`LISTEN_FDS`/
//! `LISTEN_FDNAMES`, as `tessera.socket` does. Because the socket outlives the process, a restart
//! (SIGTERM the old process, wait for its exit, start a new one on the same socket — what
//! `systemctl restart tessera` does) refuses no connection: clients that connect meanwhile wait
//! in the kernel's accept queue until the new process accepts.
//!
//! The restart test keeps client threads storing and reading blobs across the restart, each with
//! a keep-alive connection that it re-opens and retries on when the server closes it while idle
//! (as HTTP clients do). No request may fail. It prints the restart time (old process SIGTERM →
//! new process `READY=1`) and the longest request.

mod common;

use std::fs;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::http_client::{self, cas_path, Conn, Rng};

/// Client threads running across the restart.
const CLIENTS: usize = 4;

/// How long the clients run before the restart and after the new process is ready.
const STEADY_PHASE: Duration = Duration::from_millis(700);

/// Blob sizes the clients store (small: this measures the restart, not bandwidth).
const BLOB_BYTES_MAX: u64 = 8 * 1024;

/// Times a client re-opens its connection for one request: a request meets at most one closed
/// idle connection per server process it outlives.
const RETRIES_MAX: u32 = 3;

/// How long a process gets to report `READY=1` or to exit.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the inherited socket lands in the child (`SD_LISTEN_FDS_START`).
const LISTEN_FD: RawFd = 3;

/// The systemd side: the listening socket, the notify socket, the data directory.
struct Manager {
    listener: TcpListener,
    notify: UnixDatagram,
    notify_path: PathBuf,
    dir: tempfile::TempDir,
}

impl Manager {
    fn new() -> Manager {
        let dir = tempfile::tempdir().unwrap();
        let notify_path = dir.path().join("notify");
        let notify = UnixDatagram::bind(&notify_path).unwrap();
        // As systemd's ListenStream= would: bound and listening before any server runs.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        Manager {
            listener,
            notify,
            notify_path,
            dir,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap()
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("tessera.log")
    }

    /// Starts `tessera serve` with the listening socket as fd 3 named `fd_names`.
    fn spawn(&self, fd_names: &str, extra_env: &[(&str, &str)]) -> Child {
        spawn_with_fds(
            &[self.listener.as_raw_fd()],
            fd_names,
            &self.dir.path().join("data"),
            &self.notify_path,
            &self.log(),
            extra_env,
        )
    }

    /// Waits for a datagram with `READY=1`; the instant it arrived.
    fn wait_ready(&self, child: &mut Child) -> Instant {
        self.notify
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let deadline = Instant::now() + PROCESS_TIMEOUT;
        let mut buffer = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.notify.recv(&mut buffer) {
                let text = String::from_utf8_lossy(&buffer[..n]);
                if text.lines().any(|line| line == "READY=1") {
                    return Instant::now();
                }
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "tessera exited with {status} before READY=1:\n{}",
                    read(&self.log())
                );
            }
        }
        panic!(
            "no READY=1 within {PROCESS_TIMEOUT:?}:\n{}",
            read(&self.log())
        );
    }
}

fn read(path: &Path) -> String {
    String::from_utf8_lossy(&fs::read(path).unwrap_or_default()).into_owned()
}

/// Starts `tessera serve` with `fds` placed at 3, 4, … and the systemd environment describing
/// them. `LISTEN_PID` must be the server's own pid, known only after the fork: a shell sets it
/// to `$$` and then `exec`s the server, which keeps the pid.
fn spawn_with_fds(
    fds: &[RawFd],
    fd_names: &str,
    data: &Path,
    notify: &Path,
    log: &Path,
    extra_env: &[(&str, &str)],
) -> Child {
    let log_file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg("LISTEN_PID=$$ exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_tessera"))
        .args(["serve", "--listen", "127.0.0.1:1", "--data"])
        .arg(data)
        .args(["--max-size", "64MiB", "--segment-size", "8MiB"])
        .args(["--executors", "2", "--shards", "2"])
        .env("LISTEN_FDS", fds.len().to_string())
        .env("LISTEN_FDNAMES", fd_names)
        .env("NOTIFY_SOCKET", notify)
        .env("TESSERA_DRAIN_TIMEOUT", "5s")
        .envs(extra_env.iter().copied())
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file);
    let fds = fds.to_vec();
    // SAFETY: the closure runs in the forked child before exec and calls only dup2 and fcntl,
    // which are async-signal-safe; it touches no memory of the parent besides `fds`.
    unsafe {
        command.pre_exec(move || {
            // Two passes, so that moving one fd into place cannot overwrite another still to
            // be moved: first lift every fd above the target range, then place them.
            let high: RawFd = 100;
            for (i, fd) in fds.iter().enumerate() {
                if libc::dup2(*fd, high + i as RawFd) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            for i in 0..fds.len() {
                let target = LISTEN_FD + i as RawFd;
                // dup2 clears close-on-exec on the new fd, so the server inherits it.
                if libc::dup2(high + i as RawFd, target) < 0 {
                    return Err(io::Error::last_os_error());
                }
                libc::close(high + i as RawFd);
            }
            Ok(())
        });
    }
    command.spawn().expect("spawn sh -c … tessera serve")
}

/// SIGTERM, then waits for the exit; the exit must be clean.
fn stop(child: &mut Child, log: &Path) {
    // SAFETY: kill with a pid we own (the child has not been reaped yet).
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let deadline = Instant::now() + PROCESS_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(
                status.success(),
                "exit {status} after SIGTERM:\n{}",
                read(log)
            );
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("tessera did not exit after SIGTERM:\n{}", read(log));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// What one client thread saw.
#[derive(Default)]
struct ClientReport {
    requests: u64,
    /// Requests that were retried on a fresh connection after the idle one was closed.
    retried: u64,
    failures: Vec<String>,
    /// The longest request (including its retries) and when it started.
    longest: Duration,
    longest_started: Option<Instant>,
    /// When the client's first and last requests started (it ran across the restart if the
    /// first is before the SIGTERM and the last after the new READY=1).
    first_started: Option<Instant>,
    last_started: Option<Instant>,
}

/// Whether `error` means the server closed an idle keep-alive connection before it read the
/// request: nothing of a response arrived. A client retries only then.
fn closed_while_idle(error: &io::Error) -> bool {
    match error.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => true,
        io::ErrorKind::UnexpectedEof => error.to_string().contains("with 0 unparsed bytes"),
        _ => false,
    }
}

/// One request with the HTTP client's retry rule: a failure on a connection that had already
/// served a request (and so may have been closed while idle) is retried on a new connection;
/// a failure on a fresh connection is a failure.
fn request_with_retry(
    conn: &mut Option<(Conn, bool)>,
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
    retried: &mut u64,
) -> Result<http_client::Response, String> {
    for attempt in 0..=RETRIES_MAX {
        if conn.is_none() {
            let fresh = Conn::open(addr).map_err(|e| format!("connect: {e}"))?;
            *conn = Some((fresh, false));
        }
        let (open, reused) = conn.as_mut().expect("opened above");
        match open.request(method, path, body) {
            Ok(response) => {
                *reused = true;
                if response.header("connection") == Some("close") {
                    *conn = None;
                }
                return Ok(response);
            }
            Err(error) if *reused && closed_while_idle(&error) && attempt < RETRIES_MAX => {
                *retried += 1;
                *conn = None;
            }
            Err(error) => return Err(format!("{method} {path}: {error}")),
        }
    }
    unreachable!("the last attempt returns")
}

/// Stores and reads back blobs until `stop`; every blob it stored earlier must still be there.
fn client(addr: SocketAddr, seed: u64, stop: Arc<AtomicBool>) -> ClientReport {
    let mut rng = Rng::new(seed);
    let mut report = ClientReport::default();
    let mut conn = None;
    let mut stored: Vec<(String, Vec<u8>)> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let (method, path, body, expected) = if stored.is_empty() || rng.below(2) == 0 {
            let length = rng.below(BLOB_BYTES_MAX) as usize + 1;
            let blob = rng.bytes(length);
            ("PUT", cas_path(&blob), blob, None)
        } else {
            let (path, blob) = stored[rng.below(stored.len() as u64) as usize].clone();
            ("GET", path, Vec::new(), Some(blob))
        };
        let started = Instant::now();
        report.first_started.get_or_insert(started);
        report.last_started = Some(started);
        let outcome =
            request_with_retry(&mut conn, addr, method, &path, &body, &mut report.retried);
        let took = started.elapsed();
        report.requests += 1;
        if took > report.longest {
            report.longest = took;
            report.longest_started = Some(started);
        }
        match (outcome, expected) {
            (Ok(response), None) if response.status == 200 => stored.push((path, body)),
            (Ok(response), Some(blob)) if response.status == 200 && response.body == blob => {}
            (Ok(response), _) => report.failures.push(format!(
                "{method} {path}: status {} {}",
                response.status,
                response.text()
            )),
            (Err(error), _) => {
                report.failures.push(error);
                conn = None;
            }
        }
    }
    report
}

#[test]
fn restart_on_an_inherited_socket_refuses_no_request() {
    let manager = Manager::new();
    let addr = manager.addr();
    let mut old = manager.spawn("tessera.socket", &[]);
    manager.wait_ready(&mut old);

    let stop_clients = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let stop = stop_clients.clone();
            std::thread::spawn(move || client(addr, http_client::test_seed() + i as u64, stop))
        })
        .collect();
    std::thread::sleep(STEADY_PHASE);

    // `systemctl restart`: stop the old process (SIGTERM, drain, exit), then start the new one.
    let sigterm = Instant::now();
    stop(&mut old, &manager.log());
    let old_exited = Instant::now();
    let mut new = manager.spawn("tessera.socket", &[]);
    let ready = manager.wait_ready(&mut new);
    std::thread::sleep(STEADY_PHASE);
    stop_clients.store(true, Ordering::Relaxed);
    let reports: Vec<ClientReport> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    stop(&mut new, &manager.log());

    let failures: Vec<&String> = reports.iter().flat_map(|r| &r.failures).collect();
    let requests: u64 = reports.iter().map(|r| r.requests).sum();
    let retried: u64 = reports.iter().map(|r| r.retried).sum();
    let longest = reports.iter().max_by_key(|r| r.longest).unwrap();
    let spanning = reports
        .iter()
        .filter(|r| {
            r.first_started.is_some_and(|first| first < sigterm)
                && r.last_started.is_some_and(|last| last > ready)
        })
        .count();
    println!(
        "restart (old SIGTERM -> new READY=1): {} ms (drain and exit {} ms, new process start {} ms); \
         {requests} requests by {CLIENTS} clients, {retried} retried after an idle close, \
         0 refused; longest request {} ms",
        (ready - sigterm).as_millis(),
        (old_exited - sigterm).as_millis(),
        (ready - old_exited).as_millis(),
        longest.longest.as_millis(),
    );
    assert!(
        failures.is_empty(),
        "{} of {requests} requests failed across the restart: {failures:?}\nlog:\n{}",
        failures.len(),
        read(&manager.log())
    );
    assert!(
        requests > 0 && spanning > 0,
        "the clients must run across the restart"
    );
    let log = read(&manager.log());
    assert_eq!(
        log.matches("listening on a socket passed by systemd")
            .count(),
        2,
        "both processes must serve the inherited socket:\n{log}"
    );
    assert!(
        !log.contains("cancelling the accept"),
        "every executor must stop through a wake-up, not a cancelled accept:\n{log}"
    );
}

#[test]
fn the_ready_line_names_the_inherited_socket_not_the_listen_setting() {
    let manager = Manager::new();
    let mut server = manager.spawn("http", &[]);
    manager.wait_ready(&mut server);
    let response = http_client::get(manager.addr(), "/healthz");
    assert_eq!(response.status, 200);
    stop(&mut server, &manager.log());
    let log = read(&manager.log());
    assert!(
        log.contains(&format!("tessera listening on {} ", manager.addr())),
        "{log}"
    );
}

#[test]
fn two_sockets_for_one_port_are_refused_with_a_precise_error() {
    let manager = Manager::new();
    let second = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut child = spawn_with_fds(
        &[manager.listener.as_raw_fd(), second.as_raw_fd()],
        "http:http",
        &manager.dir.path().join("data"),
        &manager.notify_path,
        &manager.log(),
        &[],
    );
    let deadline = Instant::now() + PROCESS_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "tessera did not refuse to start");
        std::thread::sleep(Duration::from_millis(20));
    };
    let log = read(&manager.log());
    assert!(!status.success(), "{log}");
    assert!(
        log.contains("2 sockets for the main port") && log.contains("FileDescriptorName=grpc"),
        "{log}"
    );
}

#[test]
fn a_socket_named_grpc_is_the_grpc_only_port() {
    let manager = Manager::new();
    let grpc = TcpListener::bind("127.0.0.1:0").unwrap();
    let grpc_addr = grpc.local_addr().unwrap();
    let mut child = spawn_with_fds(
        &[manager.listener.as_raw_fd(), grpc.as_raw_fd()],
        "http:grpc",
        &manager.dir.path().join("data"),
        &manager.notify_path,
        &manager.log(),
        &[],
    );
    manager.wait_ready(&mut child);
    // The main port speaks HTTP/1.1; the gRPC-only port does not answer it with a 200.
    assert_eq!(http_client::get(manager.addr(), "/healthz").status, 200);
    let log = read(&manager.log());
    assert!(
        log.contains(&format!(" grpc={grpc_addr} ")),
        "the ready line must name the gRPC socket:\n{log}"
    );
    stop(&mut child, &manager.log());
}
