//! What the real-client tests (Gradle, ccache, Nx, Turborepo) share: a client's driver script
//! from `tests/clients/` run against the server (bounded and timed), the switch that skips real
//! clients, the server's answers by status, and the bad-input checks every opaque-key front-end
//! must pass.
//!
//! ```ignore
//! if common::skip_real_client("Gradle") { return; }
//! let url = format!("{}/cache/", server.url());
//! let run = cache_clients::run_driver("gradle", &["--credentials"], &url)
//!     .unwrap_or_else(|error| panic!("{error}\ntessera log:\n{}", server.full_log()));
//! eprintln!("{} ({} ms)", run.summary, run.elapsed.as_millis());
//! ```
//!
//! A driver exits 0 ok, 1 an expectation failed, 2 usage error, 3 the client failed or is not
//! installed (tests/clients/README.md); its last stdout line is `summary: …`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::http_client::{self, request, request_head, Closed, Conn, Response};
use super::process;

/// Longest a driver may run before it is killed and its test fails. A Gradle driver starts
/// three JVMs: about 30 s on an idle 2-core machine, 165–210 s measured under a load average of
/// 10–20 before its JVM options were tuned; a ccache driver takes about a second.
pub const DRIVER_TIMEOUT_MS: u64 = 600_000;

/// How long a test waits for the server to close a connection whose upload was cut short.
const CLOSE_WAIT_MS: u64 = 10_000;

/// A driver run that passed.
#[derive(Debug)]
pub struct DriverRun {
    /// The driver's `summary: …` line.
    pub summary: String,
    /// Wall time of the whole driver, client start-up included.
    pub elapsed: Duration,
}

impl DriverRun {
    /// The value of `key` in a summary of `key=value` words (`summary: client=nx second=miss`).
    pub fn value(&self, key: &str) -> Option<&str> {
        self.summary
            .split(' ')
            .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
    }
}

/// Runs `tests/clients/<client>/run.sh <args> <url>` to completion (bounded by
/// [`DRIVER_TIMEOUT_MS`]). `Err` says which expectation failed, with the driver's stderr.
pub fn run_driver(client: &str, args: &[&str], url: &str) -> Result<DriverRun, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(client)
        .join("run.sh");
    let shown = format!("bash {} {} {url}", script.display(), args.join(" "));
    let mut command = Command::new("bash");
    command.arg(&script).args(args).arg(url);
    let started = Instant::now();
    // Killed with its process group on timeout, so that the client (a JVM) goes with the script.
    let timeout = Duration::from_millis(DRIVER_TIMEOUT_MS);
    let finished = process::run(&mut command, timeout);
    let elapsed = started.elapsed();
    let (status, stdout, stderr) = match finished {
        Ok(finished) => (Some(finished.status), finished.stdout, finished.stderr),
        Err(error) if error.kind == process::RunErrorKind::TimedOut => {
            (None, error.stdout, error.stderr)
        }
        Err(error) => return Err(format!("`{shown}` {}", error.problem)),
    };
    let failure = |what: String| {
        format!(
            "`{shown}` {what} after {} ms; its stderr:\n{stderr}",
            elapsed.as_millis()
        )
    };
    let meaning = match status.map(|status| (status, status.code())) {
        Some((_, Some(0))) => None,
        Some((_, Some(1))) => Some("exited 1: an expectation failed".to_owned()),
        Some((_, Some(2))) => Some("exited 2: usage error".to_owned()),
        Some((_, Some(3))) => Some(
            "exited 3: the client failed or is not installed (`bash tests/install-deps.sh`)"
                .to_owned(),
        ),
        Some((_, Some(code))) => Some(format!("exited {code}")),
        Some((status, None)) => Some(format!("was killed by a signal ({status})")),
        None => Some(format!(
            "was killed after its timeout of {DRIVER_TIMEOUT_MS} ms"
        )),
    };
    if let Some(meaning) = meaning {
        return Err(failure(meaning));
    }
    let summary = stdout
        .lines()
        .rev()
        .find(|line| line.starts_with("summary: "))
        .ok_or_else(|| failure(format!("printed no summary line; stdout:\n{stdout}")))?;
    Ok(DriverRun {
        summary: summary.to_owned(),
        elapsed,
    })
}

/// Live records in the whole store (the sum of `tessera_store_objects` over shards).
pub fn stored_objects(addr: SocketAddr) -> u64 {
    let page = http_client::get(addr, "/metrics");
    assert_eq!(page.status, 200, "GET /metrics: {page:?}");
    page.text()
        .lines()
        .filter(|line| line.starts_with("tessera_store_objects{"))
        .map(|line| {
            let (_, value) = line.rsplit_once(' ').expect("a sample line");
            value.parse::<u64>().expect("an integer sample")
        })
        .sum()
}

/// The server's `tessera_http_responses_total` counters: how many HTTP/1.1 responses it sent
/// with each status since it started.
pub fn response_counts(addr: SocketAddr) -> std::collections::BTreeMap<u16, u64> {
    let page = http_client::get(addr, "/metrics");
    assert_eq!(page.status, 200, "GET /metrics: {page:?}");
    let prefix = "tessera_http_responses_total{code=\"";
    page.text()
        .lines()
        .filter_map(|line| {
            let (code, value) = line.strip_prefix(prefix)?.split_once("\"} ")?;
            Some((code.parse().ok()?, value.trim().parse().ok()?))
        })
        .collect()
}

/// GET, HEAD and PUT of every path in `paths` answer 400 (with a message, except HEAD), and
/// nothing is stored.
pub fn assert_malformed_paths_refused(addr: SocketAddr, paths: &[String]) {
    let before = stored_objects(addr);
    for path in paths {
        for (method, body) in [("GET", &b""[..]), ("HEAD", b""), ("PUT", b"an entry")] {
            let response = request(addr, method, path, body);
            assert_eq!(response.status, 400, "{method} {path}: {response:?}");
            if method != "HEAD" {
                assert!(!response.body.is_empty(), "{method} {path}: no message");
            }
        }
    }
    assert_eq!(
        stored_objects(addr),
        before,
        "a malformed path stored something"
    );
}

/// Each method in `methods` on `path` answers 405 with `Allow: allow`.
pub fn assert_methods_refused(addr: SocketAddr, path: &str, methods: &[&str], allow: &str) {
    for method in methods {
        let response = request(addr, method, path, &[]);
        assert_eq!(response.status, 405, "{method} {path}: {response:?}");
        assert_eq!(response.header("allow"), Some(allow), "{method} {path}");
    }
}

/// A PUT of `path` whose client half-closes after `sent` of the `body.len()` bytes it declared
/// is not acknowledged with a 2xx, and the connection is closed.
pub fn put_cut_short(addr: SocketAddr, path: &str, body: &[u8], sent: usize) {
    let mut conn = Conn::open(addr).unwrap();
    conn.send(&request_head("PUT", path, body.len() as u64, &[]))
        .unwrap();
    conn.send(&body[..sent]).unwrap();
    conn.shutdown_write().unwrap();
    let answer = match conn.wait_for_close(Duration::from_millis(CLOSE_WAIT_MS)) {
        Closed::Closed(bytes) => bytes,
        Closed::StillOpen(bytes) => panic!(
            "PUT {path}: the connection stayed open after EOF in the body ({:?})",
            String::from_utf8_lossy(&bytes)
        ),
    };
    if let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
        let (status, _) = http_client::parse_response_head(&answer[..end + 4]).unwrap();
        assert!(
            !(200..300).contains(&status),
            "PUT {path}: a body cut short was acknowledged with {status}"
        );
    }
}

/// A PUT of `path` declaring `len` bytes (over the server's `--max-blob-size`) is answered 413
/// from its head alone, with and without `Expect: 100-continue`, and nothing is stored.
pub fn assert_oversized_put_refused_before_its_body(
    addr: SocketAddr,
    path: &str,
    len: u64,
    headers: &[(&str, &str)],
) {
    let before = stored_objects(addr);
    let mut conn = Conn::open(addr).unwrap();
    conn.send(&request_head("PUT", path, len, headers)).unwrap();
    let response = conn
        .read_response()
        .unwrap_or_else(|e| panic!("PUT {path}, Content-Length {len}, no body sent: {e}"));
    assert_413(&response, path, len);

    let mut expecting = headers.to_vec();
    expecting.push(("Expect", "100-continue"));
    let mut conn = Conn::open(addr).unwrap();
    conn.send(&request_head("PUT", path, len, &expecting))
        .unwrap();
    let wait = Duration::from_millis(http_client::IO_TIMEOUT_MS);
    match conn.early_response(wait).unwrap() {
        Some(response) => assert_413(&response, path, len),
        None => panic!("PUT {path} with Expect: 100-continue over the bound: no answer"),
    }
    assert_eq!(
        stored_objects(addr),
        before,
        "a refused PUT stored something"
    );
}

/// The HTTP layer refuses the Content-Length (`request body too large`), or the store the
/// reservation (`blob of N bytes exceeds the limit …`); either way before any body byte.
fn assert_413(response: &Response, path: &str, len: u64) {
    assert_eq!(
        response.status, 413,
        "PUT {path} of {len} bytes: {response:?}"
    );
    assert!(
        response.text().contains("too large") || response.text().contains("exceeds the limit"),
        "PUT {path} of {len} bytes: the 413 does not say why: {}",
        response.text()
    );
}
