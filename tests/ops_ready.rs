//! `/ready` and `drain_delay` against the real binary (issue 13): ready answers 200 with a JSON
//! body once serving; after SIGTERM it answers 503 at once while everything else, kept-alive
//! connections included, keeps serving for `drain_delay`; then the usual drain runs and the
//! process exits 0.

mod common;

use std::time::{Duration, Instant};

use common::http_client::{cas_path, get, put, Closed, Conn, Rng};
use common::Tessera;

/// The drain delay under test: long enough that a loaded debug build serves several requests
/// inside it, short enough to keep the test quick.
const DRAIN_DELAY_MS: u64 = 3_000;

/// How soon after SIGTERM `/ready` must say 503 (the signal thread sets a flag; the bound is
/// for a loaded machine).
const READY_FLIP_MS_MAX: u64 = 1_000;

fn ready_json(addr: std::net::SocketAddr) -> (u16, serde_json::Value) {
    let response = get(addr, "/ready");
    assert_eq!(
        response.header("content-type"),
        Some("application/json"),
        "{response:?}"
    );
    let body = serde_json::from_slice(&response.body).expect("/ready answers JSON");
    (response.status, body)
}

#[test]
fn ready_is_200_with_an_empty_degraded_list_when_serving() {
    let mut server = Tessera::start(&[], &[]);
    let (status, body) = ready_json(server.addr());
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["degraded"], serde_json::json!([]));
    // Only GET and HEAD.
    let post = common::http_client::request(server.addr(), "POST", "/ready", b"");
    assert_eq!(post.status, 405);
    server.stop_expecting_exit_0();
}

#[test]
fn sigterm_makes_ready_503_at_once_and_serves_on_for_the_drain_delay() {
    let delay = format!("{DRAIN_DELAY_MS}ms");
    let mut server = Tessera::start(&["--drain-delay", &delay], &[]);
    let addr = server.addr();
    let mut rng = Rng::new(0x0d5a_11de);
    let mut kept_alive = Conn::open(addr).unwrap();
    assert_eq!(
        kept_alive.request("GET", "/healthz", &[]).unwrap().status,
        200
    );
    assert_eq!(ready_json(addr).0, 200);

    let sigterm_at = Instant::now();
    server.send_sigterm();
    loop {
        let (status, body) = ready_json(addr);
        if status == 503 {
            assert_eq!(body["status"], "stopping", "{body}");
            break;
        }
        assert!(
            sigterm_at.elapsed() < Duration::from_millis(READY_FLIP_MS_MAX),
            "/ready still {status} {body} {READY_FLIP_MS_MAX} ms after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Inside the delay: the kept-alive connection and new connections are served as before.
    let blob = rng.bytes(100_000);
    let path = cas_path(&blob);
    let stored = kept_alive.request("PUT", &path, &blob).unwrap();
    assert_eq!(stored.status, 200, "{stored:?}");
    let read = kept_alive.request("GET", &path, &[]).unwrap();
    assert_eq!((read.status, read.body.len()), (200, blob.len()));
    assert_eq!(
        get(addr, &path).body,
        blob,
        "a new connection inside the delay"
    );
    let other = rng.bytes(10_000);
    assert_eq!(put(addr, &cas_path(&other), &other).status, 200);
    assert!(
        sigterm_at.elapsed() < Duration::from_millis(DRAIN_DELAY_MS),
        "the checks inside the delay took longer than the delay; raise DRAIN_DELAY_MS"
    );
    assert!(server.is_running());

    // After the delay the drain closes the idle kept-alive connection and the process exits 0.
    let closed = kept_alive.wait_for_close(Duration::from_millis(
        DRAIN_DELAY_MS + common::http_client::IO_TIMEOUT_MS,
    ));
    assert!(matches!(closed, Closed::Closed(_)), "{closed:?}");
    assert!(
        sigterm_at.elapsed() >= Duration::from_millis(DRAIN_DELAY_MS),
        "the drain began {:?} after SIGTERM, before the {DRAIN_DELAY_MS} ms delay",
        sigterm_at.elapsed()
    );
    let status = server.wait_for_exit(Duration::from_millis(common::server::EXIT_TIMEOUT_MS));
    assert!(status.success(), "{status}; log:\n{}", server.recent_log());
    server.restart();
    assert_eq!(
        get(server.addr(), &path).body,
        blob,
        "stored inside the delay"
    );
    server.stop_expecting_exit_0();
}
