//! An unprivileged deployment: without CAP_IPC_LOCK, io_uring buffer registration counts
//! against RLIMIT_MEMLOCK and fails (stack.md §7); glommio then falls back to unregistered
//! buffers. This runs the real binary with the capability dropped (`capsh`, Debian
//! `libcap2-bin`) and checks that it still starts, stores and serves, and drains on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Longest wait for the ready line.
const START_TIMEOUT: Duration = Duration::from_secs(30);

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn request(port: u16, raw: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(raw.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn serves_without_cap_ipc_lock() {
    let data = tempfile::tempdir().unwrap();
    let binary = env!("CARGO_BIN_EXE_tessera");
    let serve = format!(
        "exec {binary} serve --listen 127.0.0.1:0 --data {} --max-size 256MiB --segment-size 8MiB",
        data.path().display()
    );
    // As root, drop the capability (the case that matters: root here has CAP_IPC_LOCK and
    // would never exercise the fallback). As an ordinary user the capability is absent already.
    let mut command = if running_as_root() {
        let mut c = Command::new("capsh");
        c.args(["--drop=cap_ipc_lock", "--", "-c", &serve]);
        c
    } else {
        let mut c = Command::new("sh");
        c.args(["-c", &serve]);
        c
    };
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("capsh (Debian libcap2-bin) is needed: run `bash tests/install-deps.sh`");

    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(START_TIMEOUT).unwrap_or_else(|_| {
        let _ = child.kill();
        let mut stderr = String::new();
        let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
        panic!("no ready line without CAP_IPC_LOCK; stderr:\n{stderr}");
    });
    let port: u16 = line
        .split_whitespace()
        .find_map(|word| word.strip_prefix("127.0.0.1:"))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected ready line {line:?}"));

    let hash = "5".repeat(64);
    let put = request(
        port,
        &format!("PUT /ac/{hash} HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"),
    );
    assert!(put.starts_with("HTTP/1.1 200"), "{put}");
    let get = request(
        port,
        &format!("GET /ac/{hash} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
    );
    assert!(
        get.starts_with("HTTP/1.1 200") && get.ends_with("hello"),
        "{get}"
    );

    // SAFETY: kill(2) on our own child's pid with a valid signal number.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "drain after SIGTERM should exit 0, got {status}"
    );
}
