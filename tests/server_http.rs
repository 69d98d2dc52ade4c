//! `tessera serve` as a Bazel HTTP cache, driven over raw TCP: the protocol, and every kind of bad
//! input and fault the server must answer precisely (issue 3). Each test starts its own server on
//! port 0 with a temporary data directory, checks the exact status, then checks that the server
//! still serves and, where it matters, that nothing was stored.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::http_client::{
    self, assert_absent, assert_serving, assert_stored, cas_path, get, head, put, request,
    request_head, send_raw, sha256_hex, Closed, Conn, Rng,
};
use common::Tessera;

/// One shard with a 4 MiB budget of 1 MiB segments and blobs up to 1 MiB: four uploads of
/// [`TIGHT_UPLOAD_BYTES`] that hold their reservations fill it (one record per segment, as two
/// do not fit in one segment), so the fifth finds nothing evictable.
const TIGHT_BUDGET_ARGS: [&str; 8] = [
    "--shards",
    "1",
    "--max-size",
    "4MiB",
    "--segment-size",
    "1MiB",
    "--max-blob-size",
    "1MiB",
];

/// Body size of an upload under [`TIGHT_BUDGET_ARGS`]: under 1 MiB with room for a record
/// header, more than half a segment.
const TIGHT_UPLOAD_BYTES: usize = 1_000_000;

/// Uploads held open while looking for the 507 (the budget holds about four; more than twice
/// that means reservations are not bounded by the budget at all).
const HELD_UPLOADS_MAX: usize = 12;

/// How long a client waits for an answer to a request head before it concludes that the
/// server is reading the body (the server answers 413/507 right after the head).
const EARLY_ANSWER_WAIT_MS: u64 = 500;

/// How long a test keeps retrying something the server does asynchronously (noticing a closed
/// connection and releasing its reservation).
const SETTLE_TIMEOUT_MS: u64 = 10_000;

/// Idle keep-alive connections the metrics test holds open while it reads the connection gauge.
const HELD_IDLE_CONNECTIONS: usize = 3;

fn start() -> Tessera {
    Tessera::start(&[], &[])
}

fn seeded_rng(test: &str) -> Rng {
    let seed = http_client::test_seed();
    eprintln!("{test}: TESSERA_TEST_SEED={seed}");
    Rng::new(seed)
}

#[test]
fn ready_line_names_the_real_port_and_the_cache_round_trips() {
    let mut server = start();
    let addr = server.addr();
    assert_ne!(addr.port(), 0);
    assert_serving(addr);
    let mut rng = seeded_rng("round_trip");

    // CAS: miss (404, Content-Length: 0), put, hit, HEAD, repeated put.
    let blob = rng.bytes(100_000);
    let path = cas_path(&blob);
    let miss = get(addr, &path);
    assert_eq!(miss.status, 404, "{miss:?}");
    assert_eq!(miss.header("content-length"), Some("0"));
    let stored = put(addr, &path, &blob);
    assert_eq!(stored.status, 200, "{}", stored.text());
    assert!(
        stored.body.len() <= 1024,
        "Bazel aggregates PUT responses up to 10 KiB; keep them tiny"
    );
    assert_stored(addr, &path, &blob);
    let head_hit = head(addr, &path);
    assert_eq!(head_hit.status, 200);
    assert_eq!(
        head_hit.header("content-length"),
        Some(blob.len().to_string().as_str())
    );
    assert_eq!(
        put(addr, &path, &blob).status,
        200,
        "second PUT of a CAS blob"
    );
    assert_eq!(head(addr, &cas_path(b"never stored")).status, 404);

    // The empty blob.
    assert_eq!(put(addr, &cas_path(b""), b"").status, 200);
    assert_stored(addr, &cas_path(b""), b"");

    // AC: stored as given, last writer wins.
    let ac = format!("/ac/{}", rng.hex64());
    assert_absent(addr, &ac);
    assert_eq!(put(addr, &ac, b"first action result").status, 200);
    assert_stored(addr, &ac, b"first action result");
    assert_eq!(put(addr, &ac, b"second").status, 200);
    assert_stored(addr, &ac, b"second");

    // Keep-alive: several requests on one connection, answered in order.
    let mut conn = Conn::open(addr).unwrap();
    for _ in 0..3 {
        let response = conn.request("GET", &path, &[]).unwrap();
        assert_eq!((response.status, response.body.len()), (200, blob.len()));
    }
    // Pipelined: two requests in one write.
    let mut pipelined = request_head("GET", &ac, 0, &[]);
    pipelined.extend(request_head("GET", "/healthz", 0, &[]));
    conn.send(&pipelined).unwrap();
    assert_eq!(conn.read_response().unwrap().body, b"second");
    assert_eq!(conn.read_response().unwrap().status, 200);

    server.stop_expecting_exit_0();
    let lines = server.stdout_lines();
    assert_eq!(lines.len(), 1, "exactly one stdout line: {lines:?}");
    assert_eq!(
        common::server::parse_ready_line(&lines[0]).map(|ready| ready.addr),
        Some(addr),
        "{lines:?}"
    );
}

#[test]
fn a_path_prefix_is_a_separate_cache() {
    let server = start();
    let addr = server.addr();
    let blob = b"prefixed bytes".to_vec();
    let path = cas_path(&blob);
    let prefixed = format!("/team-a{path}");
    let ac = "/ac/".to_string() + &"ab".repeat(32);
    let prefixed_ac = format!("/team-a{ac}");

    assert_eq!(put(addr, &prefixed, &blob).status, 200);
    assert_eq!(put(addr, &prefixed_ac, b"team a").status, 200);
    assert_stored(addr, &prefixed, &blob);
    assert_stored(addr, &prefixed_ac, b"team a");
    assert_absent(addr, &path);
    assert_absent(addr, &ac);
    assert_absent(addr, &format!("/team-b{path}"));

    assert_eq!(put(addr, &ac, b"no prefix").status, 200);
    assert_stored(addr, &ac, b"no prefix");
    assert_stored(addr, &prefixed_ac, b"team a");
}

#[test]
fn unknown_paths_bad_names_and_wrong_methods_get_404_400_and_405() {
    let server = start();
    let addr = server.addr();
    let hex = sha256_hex(b"x");
    let cases: &[(&str, String, u16)] = &[
        ("GET", "/nothing-here".to_string(), 404),
        ("GET", format!("/cas/{}", &hex[..63]), 400),
        ("GET", format!("/cas/{hex}0"), 400),
        ("GET", format!("/cas/{}zz", &hex[..62]), 400),
        ("PUT", format!("/ac/{}", &hex[..10]), 400),
        ("DELETE", format!("/cas/{hex}"), 405),
        ("POST", format!("/ac/{hex}"), 405),
        ("PUT", "/healthz".to_string(), 405),
    ];
    for (method, path, want) in cases {
        let body: &[u8] = if *method == "PUT" { b"x" } else { b"" };
        let response = request(addr, method, path, body);
        assert_eq!(response.status, *want, "{method} {path}: {response:?}");
        if *want == 405 {
            let allow = response.header("allow").unwrap_or_default().to_string();
            assert!(
                allow.contains("GET"),
                "{method} {path}: 405 without a useful Allow ({allow:?})"
            );
        }
        assert_serving(addr);
    }
    assert_absent(addr, &format!("/ac/{hex}"));
    let index = request(addr, "GET", "/", b"");
    assert_eq!(index.status, 200, "GET / is the index of mounts");
    let text = String::from_utf8_lossy(&index.body);
    for mounted in [
        "/cache/",
        "/v1/cache/",
        "/v8/artifacts/",
        "/ccache/",
        "bazel",
    ] {
        assert!(text.contains(mounted), "{mounted} missing from {text}");
    }
}

#[test]
fn malformed_request_lines_and_headers_get_400_and_the_server_keeps_serving() {
    let server = start();
    let addr = server.addr();
    let put_path = cas_path(b"abc");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage request line", b"GARBAGE\r\n\r\n".to_vec()),
        ("method only", b"GET\r\n\r\n".to_vec()),
        ("no version", b"GET /healthz\r\n\r\n".to_vec()),
        (
            "junk after version",
            b"GET /healthz HTTP/1.1 x\r\nHost: t\r\n\r\n".to_vec(),
        ),
        (
            "bad version",
            b"GET /healthz HTTQ/1.1\r\nHost: t\r\n\r\n".to_vec(),
        ),
        (
            "space in target",
            b"GET /heal thz HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(),
        ),
        (
            "header without colon",
            b"GET /healthz HTTP/1.1\r\nHost t\r\n\r\n".to_vec(),
        ),
        (
            "space before colon",
            b"GET /healthz HTTP/1.1\r\nHost : t\r\n\r\n".to_vec(),
        ),
        (
            "folded header",
            b"GET /healthz HTTP/1.1\r\nHost: t\r\n folded\r\n\r\n".to_vec(),
        ),
        (
            "control byte in value",
            b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-A: a\x01b\r\n\r\n".to_vec(),
        ),
        (
            "bare LF line endings",
            b"GET /healthz HTTP/1.1\nHost: t\n\n".to_vec(),
        ),
        (
            "HTTP/1.1 without Host",
            b"GET /healthz HTTP/1.1\r\n\r\n".to_vec(),
        ),
        (
            "Content-Length not a number",
            format!("PUT {put_path} HTTP/1.1\r\nHost: t\r\nContent-Length: 3x\r\n\r\nabc")
                .into_bytes(),
        ),
        (
            "two Content-Lengths",
            format!(
                "PUT {put_path} HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\
                 Content-Length: 3\r\n\r\nabc"
            )
            .into_bytes(),
        ),
        (
            "Content-Length with Transfer-Encoding",
            format!(
                "PUT {put_path} HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\
                 Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
            )
            .into_bytes(),
        ),
    ];
    for (what, bytes) in &cases {
        let response = send_raw(addr, bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(response.status, 400, "{what}: {response:?}");
        assert_serving(addr);
    }
    assert_absent(addr, &put_path);

    assert_serving(addr);
}

#[test]
fn oversized_header_sections_get_431_and_long_targets_414() {
    let server = start();
    let addr = server.addr();
    // One 40 KiB header: over the 32 KiB head bound.
    let big_value = "v".repeat(40 * 1024);
    let one_big = format!("GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: {big_value}\r\n\r\n");
    let response = send_raw(addr, one_big.as_bytes()).unwrap();
    assert_eq!(response.status, 431, "40 KiB header: {response:?}");
    assert_serving(addr);

    // 200 small headers: over the header count bound.
    let mut many = "GET /healthz HTTP/1.1\r\nHost: t\r\n".to_string();
    for i in 0..200 {
        many.push_str(&format!("X-H{i}: {i}\r\n"));
    }
    many.push_str("\r\n");
    let response = send_raw(addr, many.as_bytes()).unwrap();
    assert_eq!(response.status, 431, "200 header fields: {response:?}");
    assert_serving(addr);

    // A 16 KiB request target: over the 8 KiB request-line bound.
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(16 * 1024));
    let response = send_raw(addr, long_target.as_bytes()).unwrap();
    assert_eq!(response.status, 414, "16 KiB target: {response:?}");
    assert_serving(addr);
}

#[test]
fn a_body_over_max_blob_size_gets_413_before_the_body_is_sent() {
    let server = Tessera::start(&["--max-blob-size", "1MiB"], &[]);
    let addr = server.addr();
    let mut rng = seeded_rng("max_blob_size");
    let max = 1usize << 20;

    // Only the head of a 2 MiB upload (and of one byte over the bound): answered at once.
    for (len, path) in [
        (2 * max, format!("/cas/{}", rng.hex64())),
        (max + 1, format!("/cas/{}", rng.hex64())),
        (max + 1, format!("/ac/{}", rng.hex64())),
    ] {
        let mut conn = Conn::open(addr).unwrap();
        conn.send(&request_head("PUT", &path, len as u64, &[]))
            .unwrap();
        let response = conn
            .read_response()
            .unwrap_or_else(|e| panic!("PUT {path} with Content-Length {len}, no body sent: {e}"));
        assert_eq!(response.status, 413, "Content-Length {len}: {response:?}");
        assert_absent(addr, &path);
    }

    // With Expect: 100-continue the answer is 413, not 100.
    let path = format!("/cas/{}", rng.hex64());
    let mut conn = Conn::open(addr).unwrap();
    let expect = [("Expect", "100-continue")];
    conn.send(&request_head("PUT", &path, 2 * max as u64, &expect))
        .unwrap();
    let answer = conn
        .early_response(Duration::from_millis(http_client::IO_TIMEOUT_MS))
        .unwrap();
    assert_eq!(
        answer.map(|response| response.status),
        Some(413),
        "Expect: 100-continue over the bound"
    );

    // The bound itself is allowed.
    let at_max = rng.bytes(max);
    assert_eq!(put(addr, &cas_path(&at_max), &at_max).status, 200);
    assert_stored(addr, &cas_path(&at_max), &at_max);
}

#[test]
fn a_body_shorter_than_its_content_length_stores_nothing() {
    let server = start();
    let addr = server.addr();
    let mut rng = seeded_rng("short_body");
    let blob = rng.bytes(10_000);
    let ac = format!("/ac/{}", rng.hex64());
    assert_eq!(put(addr, &ac, b"the old action result").status, 200);

    for (path, declared) in [(cas_path(&blob), blob.len()), (ac.clone(), 10_000)] {
        let mut conn = Conn::open(addr).unwrap();
        conn.send(&request_head("PUT", &path, declared as u64, &[]))
            .unwrap();
        conn.send(&blob[..6_000]).unwrap();
        conn.shutdown_write().unwrap();
        match conn.wait_for_close(Duration::from_millis(http_client::IO_TIMEOUT_MS)) {
            Closed::Closed(bytes) => assert_no_success(&bytes, &path),
            Closed::StillOpen(bytes) => panic!(
                "PUT {path}: the server kept a connection open after EOF in the body ({:?})",
                String::from_utf8_lossy(&bytes)
            ),
        }
    }
    assert_absent(addr, &cas_path(&blob));
    assert_stored(addr, &ac, b"the old action result");
    assert_serving(addr);
}

/// Panics if `bytes` hold a 2xx response.
fn assert_no_success(bytes: &[u8], what: &str) {
    if bytes.is_empty() {
        return;
    }
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(bytes.len(), |at| at + 4);
    let (status, _) = http_client::parse_response_head(&bytes[..end])
        .unwrap_or_else(|e| panic!("{what}: not a response ({e}): {bytes:?}"));
    assert!(
        !(200..300).contains(&status),
        "{what}: a truncated upload was acknowledged with {status}"
    );
}

#[test]
fn a_cas_digest_mismatch_gets_400_and_nothing_is_visible() {
    let server = start();
    let addr = server.addr();
    let mut rng = seeded_rng("digest_mismatch");
    for len in [1, 5_000, 1_000_000] {
        let good = rng.bytes(len);
        let mut bad = good.clone();
        *bad.last_mut().unwrap() ^= 0x40;
        let path = cas_path(&good);
        let response = put(addr, &path, &bad);
        assert_eq!(response.status, 400, "{len} bytes under the wrong name");
        assert_absent(addr, &path);
        assert_eq!(head(addr, &path).status, 404);
        assert_absent(addr, &cas_path(&bad));
        // The failed put poisons nothing: the right bytes are then accepted.
        assert_eq!(put(addr, &path, &good).status, 200);
        assert_stored(addr, &path, &good);
    }
}

/// Starts an upload of `TIGHT_UPLOAD_BYTES` and sends its head plus a few body bytes. Returns
/// the connection if the server is reading the body, or the response if it answered at once.
fn hold_upload(addr: SocketAddr, body: &[u8]) -> (Conn, Option<http_client::Response>) {
    let mut conn = Conn::open(addr).unwrap();
    let path = cas_path(body);
    conn.send(&request_head("PUT", &path, body.len() as u64, &[]))
        .unwrap();
    conn.send(&body[..1024]).unwrap();
    let early = conn
        .early_response(Duration::from_millis(EARLY_ANSWER_WAIT_MS))
        .unwrap_or_else(|e| panic!("held upload {path}: {e}"));
    (conn, early)
}

/// PUTs `body` to `path` with `Expect: 100-continue`, so that a refusal (507, 413) arrives
/// before the body is sent and cannot be lost to a reset while the body is on its way.
fn put_unless_refused(addr: SocketAddr, path: &str, body: &[u8]) -> http_client::Response {
    let mut conn = Conn::open(addr).unwrap();
    let expect = [("Expect", "100-continue")];
    conn.send(&request_head("PUT", path, body.len() as u64, &expect))
        .unwrap();
    let first = conn
        .early_response(Duration::from_millis(http_client::IO_TIMEOUT_MS))
        .unwrap_or_else(|e| panic!("PUT {path}: {e}"))
        .unwrap_or_else(|| panic!("PUT {path}: neither 100 Continue nor a final status"));
    if first.status != 100 {
        return first;
    }
    conn.send(body).unwrap();
    conn.read_response()
        .unwrap_or_else(|e| panic!("PUT {path}: {e}"))
}

/// PUTs a CAS blob until the server has released room for it: 507 is the only other answer
/// allowed, and the room must come within `SETTLE_TIMEOUT_MS` (`when` says what released it).
fn put_once_room_is_released(addr: SocketAddr, body: &[u8], when: &str) {
    let deadline = Instant::now() + Duration::from_millis(SETTLE_TIMEOUT_MS);
    loop {
        let response = put_unless_refused(addr, &cas_path(body), body);
        if response.status == 200 {
            return;
        }
        assert_eq!(response.status, 507, "{when}: {response:?}");
        assert!(
            Instant::now() < deadline,
            "still 507 {SETTLE_TIMEOUT_MS} ms {when}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_full_budget_gets_507_reads_keep_working_and_released_reservations_make_room() {
    let server = Tessera::start(&TIGHT_BUDGET_ARGS, &[]);
    let addr = server.addr();
    let mut rng = seeded_rng("full_budget");
    let small = rng.bytes(1024);
    assert_eq!(put(addr, &cas_path(&small), &small).status, 200);

    // Uploads that hold their reservations until one is refused.
    let mut held = Vec::new();
    let mut refused = None;
    for _ in 0..HELD_UPLOADS_MAX {
        let body = rng.bytes(TIGHT_UPLOAD_BYTES);
        let (conn, early) = hold_upload(addr, &body);
        match early {
            None => held.push((conn, body)),
            Some(response) => {
                refused = Some(response);
                break;
            }
        }
    }
    let refused = refused.unwrap_or_else(|| {
        panic!("{HELD_UPLOADS_MAX} uploads of {TIGHT_UPLOAD_BYTES} B all reserved a 4 MiB budget")
    });
    assert_eq!(refused.status, 507, "{refused:?}");
    eprintln!("full_budget: {} held uploads filled the budget", held.len());
    // 4 MiB holds at most four 1 MB records; the small blob and segment headers may cost one.
    assert!(
        (3..=4).contains(&held.len()),
        "{} uploads of 1 MB reserved space in a 4 MiB budget",
        held.len()
    );

    // Reads keep working; another upload is refused as well.
    assert_stored(addr, &cas_path(&small), &small);
    assert_eq!(head(addr, &cas_path(&small)).status, 200);
    assert_absent(addr, &format!("/cas/{}", rng.hex64()));
    assert_serving(addr);
    let another = rng.bytes(TIGHT_UPLOAD_BYTES);
    assert_eq!(
        put_unless_refused(addr, &cas_path(&another), &another).status,
        507
    );

    // The held uploads go away: their reservations are released, uploads succeed again.
    let held_paths: Vec<String> = held.iter().map(|(_, body)| cas_path(body)).collect();
    drop(held);
    put_once_room_is_released(addr, &another, "after the held uploads disconnected");
    assert_stored(addr, &cas_path(&another), &another);
    for path in held_paths {
        assert_absent(addr, &path);
    }
}

#[test]
fn a_client_that_disconnects_mid_upload_releases_its_reservation() {
    let server = Tessera::start(&TIGHT_BUDGET_ARGS, &[]);
    let addr = server.addr();
    let mut rng = seeded_rng("disconnect");
    // Three budgets' worth of abandoned uploads: each reservation must be given back, or the
    // put after it would find the budget full.
    for round in 0..12 {
        let abandoned = rng.bytes(TIGHT_UPLOAD_BYTES);
        let conn = partial_put(addr, &abandoned, TIGHT_UPLOAD_BYTES / 2);
        drop(conn);

        let complete = rng.bytes(TIGHT_UPLOAD_BYTES);
        let when = format!("round {round}: after an upload was abandoned");
        put_once_room_is_released(addr, &complete, &when);
        assert_stored(addr, &cas_path(&complete), &complete);
        assert_absent(addr, &cas_path(&abandoned));
    }
}

/// Opens a connection, sends the head of `PUT /cas/<blob>` and only the first `sent` bytes of
/// its body, and leaves the upload hanging.
fn partial_put(addr: SocketAddr, blob: &[u8], sent: usize) -> Conn {
    let mut conn = Conn::open(addr).unwrap();
    conn.send(&request_head(
        "PUT",
        &cas_path(blob),
        blob.len() as u64,
        &[],
    ))
    .unwrap();
    conn.send(&blob[..sent]).unwrap();
    conn
}

/// Timeouts short enough for a test: 1 s to send a head, 2 s idle, 1 s without body progress.
const SHORT_TIMEOUTS: [(&str, &str); 3] = [
    ("TESSERA_HEADER_READ_TIMEOUT", "1s"),
    ("TESSERA_IDLE_TIMEOUT", "2s"),
    ("TESSERA_BODY_STALL_TIMEOUT", "1s"),
];

/// Longest wait for a server-side timeout of at most 2 s to close a connection.
const TIMEOUT_CLOSE_WAIT_MS: u64 = 8_000;

#[test]
fn slow_and_idle_clients_are_timed_out_and_other_clients_are_unaffected() {
    let server = Tessera::start(&[], &SHORT_TIMEOUTS);
    let addr = server.addr();
    let mut rng = seeded_rng("timeouts");

    let idle = Conn::open(addr).unwrap();
    let mut kept_alive = Conn::open(addr).unwrap();
    assert_eq!(
        kept_alive.request("GET", "/healthz", &[]).unwrap().status,
        200
    );
    let mut slow_head = Conn::open(addr).unwrap();
    slow_head.send(b"GET /healthz HTTP/1.1\r\nHo").unwrap();
    let stalled_blob = rng.bytes(10_000);
    let stalled_body = partial_put(addr, &stalled_blob, 100);

    // Meanwhile other clients are served.
    for _ in 0..10 {
        let blob = rng.bytes(50_000);
        assert_eq!(put(addr, &cas_path(&blob), &blob).status, 200);
        assert_stored(addr, &cas_path(&blob), &blob);
    }

    let wait = Duration::from_millis(TIMEOUT_CLOSE_WAIT_MS);
    for (what, mut conn) in [
        ("idle connection", idle),
        ("idle kept-alive connection", kept_alive),
        ("slow request head", slow_head),
        ("stalled request body", stalled_body),
    ] {
        match conn.wait_for_close(wait) {
            Closed::Closed(bytes) => assert_timeout_answer(&bytes, what),
            Closed::StillOpen(bytes) => panic!(
                "{what}: still open after {TIMEOUT_CLOSE_WAIT_MS} ms ({:?})",
                String::from_utf8_lossy(&bytes)
            ),
        }
    }
    assert_absent(addr, &cas_path(&stalled_blob));
    assert_serving(addr);
}

#[test]
fn a_client_that_stops_reading_a_response_is_dropped_after_write_stall_timeout() {
    let server = Tessera::start(&[], &[("TESSERA_WRITE_STALL_TIMEOUT", "1s")]);
    let addr = server.addr();
    let mut rng = seeded_rng("write stall");
    // Far more than the loopback socket buffers hold, so the server's writes stall.
    let blob = rng.bytes(48 << 20);
    assert_eq!(put(addr, &cas_path(&blob), &blob).status, 200);
    let mut reader = std::net::TcpStream::connect(addr).unwrap();
    let request = format!("GET {} HTTP/1.1\r\nHost: t\r\n\r\n", cas_path(&blob));
    std::io::Write::write_all(&mut reader, request.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_secs(3)); // reads nothing for 3 × the timeout
    assert_serving(addr);
    // Now read: what the server had buffered arrives, then the end of the stream, long before
    // the whole body.
    reader
        .set_read_timeout(Some(Duration::from_millis(TIMEOUT_CLOSE_WAIT_MS)))
        .unwrap();
    let mut received = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match std::io::Read::read(&mut reader, &mut buf) {
            Ok(0) => break,
            Ok(n) => received += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("after {received} bytes: {e} (still open after the stall timeout?)"),
        }
    }
    assert!(
        received < blob.len(),
        "the whole body arrived ({received} bytes): the stalled response was not dropped"
    );
    assert_stored(addr, &cas_path(&blob), &blob);
}

/// A timed-out connection is closed silently or after a 408.
fn assert_timeout_answer(bytes: &[u8], what: &str) {
    if bytes.is_empty() {
        return;
    }
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(bytes.len(), |at| at + 4);
    let status = http_client::parse_response_head(&bytes[..end])
        .unwrap_or_else(|e| panic!("{what}: not a response ({e}): {bytes:?}"))
        .0;
    assert_eq!(status, 408, "{what}: {:?}", String::from_utf8_lossy(bytes));
}

#[test]
fn a_head_trickled_byte_by_byte_still_times_out() {
    let server = Tessera::start(&[], &SHORT_TIMEOUTS);
    let addr = server.addr();
    let trickle = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: ".to_vec();
    let mut conn = Conn::open(addr).unwrap();
    let started = Instant::now();
    let mut closed = false;
    // One byte every 200 ms keeps the connection busy but never finishes the head; the 1 s
    // head timeout counts from its first byte, so the server must give up within a few seconds.
    for byte in trickle.iter().chain(std::iter::repeat(&b'x')).take(60) {
        if conn.send(std::slice::from_ref(byte)).is_err() {
            closed = true;
            break;
        }
        if let Closed::Closed(bytes) = conn.wait_for_close(Duration::from_millis(200)) {
            assert_timeout_answer(&bytes, "trickled head");
            closed = true;
            break;
        }
    }
    assert!(
        closed,
        "a head trickled for {} ms was not timed out",
        started.elapsed().as_millis()
    );
    assert_serving(addr);
}

#[test]
fn connections_over_the_limit_are_refused_cleanly() {
    let limit = 4;
    // Two executors: the limit is process-wide, whichever executor the kernel hands a
    // connection to.
    let server = Tessera::start(
        &[
            "--shards",
            "2",
            "--executors",
            "2",
            "--max-connections",
            "4",
        ],
        &[],
    );
    let addr = server.addr();
    let mut open: Vec<Conn> = (0..limit)
        .map(|i| {
            let mut conn = Conn::open(addr).unwrap();
            let response = conn.request("GET", "/healthz", &[]).unwrap();
            assert_eq!(response.status, 200, "connection {i} of {limit}");
            conn
        })
        .collect();

    let mut over = Conn::open(addr).unwrap();
    let _ = over.send(&request_head("GET", "/healthz", 0, &[]));
    let response = over.read_response().unwrap();
    assert_eq!(response.status, 503, "connection {} of {limit}", limit + 1);
    match over.wait_for_close(Duration::from_millis(http_client::IO_TIMEOUT_MS)) {
        Closed::Closed(rest) => assert!(rest.is_empty(), "more after the 503: {rest:?}"),
        Closed::StillOpen(_) => panic!("the refused connection was left open"),
    }

    // The admitted connections are unaffected, and the refusal is counted.
    for conn in &mut open {
        assert_eq!(conn.request("GET", "/healthz", &[]).unwrap().status, 200);
    }
    let page = open[0].request("GET", "/metrics", &[]).unwrap();
    let page = String::from_utf8(page.body).unwrap();
    assert!(
        metric(&page, "tessera_connections_refused_total", "") >= 1,
        "{page}"
    );
    assert_eq!(metric(&page, "tessera_connections_open", ""), limit as u64);
    // A closed connection frees its place.
    drop(open.pop());
    let deadline = Instant::now() + Duration::from_millis(SETTLE_TIMEOUT_MS);
    loop {
        let response = get(addr, "/healthz");
        if response.status == 200 {
            break;
        }
        assert_eq!(response.status, 503);
        assert!(
            Instant::now() < deadline,
            "a closed connection's place was never freed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigterm_drains_in_flight_requests_checkpoints_and_exits_0() {
    // The drain bound is far above the exit wait: the server must exit as soon as the in-flight
    // upload is done, and must not keep idle connections until the bound.
    let mut server = Tessera::start(&[], &[("TESSERA_DRAIN_TIMEOUT", "60s")]);
    let addr = server.addr();
    let mut rng = seeded_rng("drain");
    let before = rng.bytes(300_000);
    assert_eq!(put(addr, &cas_path(&before), &before).status, 200);

    // An upload in flight when SIGTERM arrives, and an idle kept-alive connection.
    let in_flight = rng.bytes(500_000);
    let mut upload = partial_put(addr, &in_flight, 250_000);
    let mut idle = Conn::open(addr).unwrap();
    assert_eq!(idle.request("GET", "/healthz", &[]).unwrap().status, 200);

    let sigterm_at = std::time::SystemTime::now();
    server.send_sigterm();
    // The server stops accepting: soon a new connection is refused or closed unanswered.
    let deadline = Instant::now() + Duration::from_millis(SETTLE_TIMEOUT_MS);
    loop {
        if refused_or_closed(addr) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still accepting {SETTLE_TIMEOUT_MS} ms after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The in-flight upload completes and is acknowledged.
    upload.send(&in_flight[250_000..]).unwrap();
    let response = upload
        .read_response()
        .expect("the in-flight upload's response");
    assert_eq!(response.status, 200, "{response:?}");
    // The idle connection is closed rather than waited for.
    assert!(matches!(
        idle.wait_for_close(Duration::from_millis(http_client::IO_TIMEOUT_MS)),
        Closed::Closed(_)
    ));
    let status = server.wait_for_exit(Duration::from_millis(common::server::EXIT_TIMEOUT_MS));
    assert!(
        status.success(),
        "exit after SIGTERM: {status}; log:\n{}",
        server.recent_log()
    );

    assert_checkpointed_since(server.data_dir(), sigterm_at);
    let verified = common::verify(server.data_dir());
    assert!(
        verified.status.success(),
        "tessera verify after a drain: {verified:?}"
    );
    server.restart();
    let addr = server.addr();
    assert_stored(addr, &cas_path(&before), &before);
    assert_stored(addr, &cas_path(&in_flight), &in_flight);
    server.stop_expecting_exit_0();
}

/// Panics unless every shard directory (`shard-N/`) holds an index checkpoint
/// (`index.ckpt`, src/store/FORMAT.md) written at or after `since`: the drain checkpointed.
fn assert_checkpointed_since(data: &std::path::Path, since: std::time::SystemTime) {
    let mut shards = 0;
    for entry in std::fs::read_dir(data).expect("read the data dir") {
        let entry = entry.unwrap();
        if !entry.file_name().to_string_lossy().starts_with("shard-") {
            continue;
        }
        shards += 1;
        let checkpoint = entry.path().join("index.ckpt");
        let written = std::fs::metadata(&checkpoint)
            .and_then(|m| m.modified())
            .unwrap_or_else(|e| panic!("{}: {e}", checkpoint.display()));
        assert!(
            written >= since,
            "{} predates the SIGTERM: no checkpoint on drain",
            checkpoint.display()
        );
    }
    assert!(shards > 0, "no shard directories in {}", data.display());
}

/// Whether a new connection is refused, or closed (or answered 503) without being served.
fn refused_or_closed(addr: SocketAddr) -> bool {
    let Ok(mut conn) = Conn::open(addr) else {
        return true;
    };
    if conn.send(&request_head("GET", "/healthz", 0, &[])).is_err() {
        return true;
    }
    match conn.read_response() {
        Ok(response) => response.status == 503,
        Err(_) => true,
    }
}

#[test]
fn sigterm_with_a_stalled_upload_exits_0_within_the_drain_bound() {
    let mut server = Tessera::start(&[], &[("TESSERA_DRAIN_TIMEOUT", "1s")]);
    let addr = server.addr();
    let mut rng = seeded_rng("drain_bound");
    let stalled = rng.bytes(100_000);
    let upload = partial_put(addr, &stalled, 1000);
    let kept = rng.bytes(1000);
    assert_eq!(put(addr, &cas_path(&kept), &kept).status, 200);

    server.send_sigterm();
    // The drain gives up on the stalled upload after 1 s; the default body-stall timeout
    // (30 s) would be far later. Bounded by EXIT_TIMEOUT_MS.
    let status = server.wait_for_exit(Duration::from_millis(common::server::EXIT_TIMEOUT_MS));
    assert!(
        status.success(),
        "exit after SIGTERM: {status}; log:\n{}",
        server.recent_log()
    );
    drop(upload);
    server.restart();
    assert_absent(server.addr(), &cas_path(&stalled));
    assert_stored(server.addr(), &cas_path(&kept), &kept);
}

#[test]
fn invalid_configuration_exits_2_naming_the_setting() {
    let scratch = tempfile::tempdir().unwrap();
    let data = scratch.path().join("data");
    let data = data.to_str().unwrap();
    fn serve<'a>(data: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--data", data];
        args.extend_from_slice(extra);
        args
    }
    let serve = |extra: &[&'static str]| serve(data, extra);
    // (arguments, environment, the setting the message must name)
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (serve(&["--max-size", "banana"]), vec![], "max_size"),
        (serve(&["--max-blob-size=-1MiB"]), vec![], "max_blob_size"),
        (
            serve(&["--segment-size", "12parsecs"]),
            vec![],
            "segment_size",
        ),
        (serve(&["--durability", "sometimes"]), vec![], "durability"),
        (serve(&["--shards", "0"]), vec![], "shards"),
        (
            serve(&["--max-connections", "lots"]),
            vec![],
            "max_connections",
        ),
        (
            serve(&[]),
            vec![("TESSERA_IDLE_TIMEOUT", "forever")],
            "idle_timeout",
        ),
        (
            serve(&[]),
            vec![("TESSERA_MAX_BLOB_SIZE", "1XB")],
            "max_blob_size",
        ),
        (
            vec!["serve", "--listen", "not-an-address", "--data", data],
            vec![],
            "listen",
        ),
    ];
    for (args, env, setting) in cases {
        let output = common::run_tessera(&args, &env);
        assert_eq!(
            output.status.code(),
            Some(2),
            "tessera {args:?} with {env:?}: {output:?}"
        );
        let normalized = output.stderr.to_ascii_lowercase().replace('-', "_");
        assert!(
            normalized.contains(setting),
            "tessera {args:?} with {env:?}: the message does not name `{setting}`: {}",
            output.stderr
        );
    }
}

#[test]
fn a_port_already_in_use_is_refused_with_a_clear_error() {
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = squatter.local_addr().unwrap().port();
    let scratch = tempfile::tempdir().unwrap();
    let data = scratch.path().join("data");
    let listen = format!("127.0.0.1:{port}");
    let output = common::run_tessera(
        &[
            "serve",
            "--listen",
            &listen,
            "--data",
            data.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!output.status.success(), "{output:?}");
    assert!(
        output.stderr.to_ascii_lowercase().contains("in use"),
        "no 'address in use' message: {output:?}"
    );
    assert!(
        !output.stdout.contains(common::server::READY_PREFIX),
        "claimed to listen on a taken port: {output:?}"
    );
}

#[test]
fn a_connection_stays_usable_after_misses_and_refusals_as_bazel_expects() {
    let server = start();
    let addr = server.addr();
    let mut rng = seeded_rng("keep_alive_after_errors");
    let blob = rng.bytes(70_000);
    let path = cas_path(&blob);
    let ac = format!("/ac/{}", rng.hex64());
    // Bazel's order on one connection: AC miss, CAS uploads, AC upload, then hits.
    let mut conn = Conn::open(addr).unwrap();
    let mut exchange = |method: &str, path: &str, body: &[u8]| {
        conn.request(method, path, body)
            .unwrap_or_else(|e| panic!("{method} {path} on a kept-alive connection: {e}"))
    };
    assert_eq!(exchange("GET", &ac, b"").status, 404);
    assert_eq!(exchange("GET", &path, b"").status, 404);
    assert_eq!(exchange("PUT", &path, &blob).status, 200);
    assert_eq!(exchange("PUT", &ac, b"action result").status, 200);
    assert_eq!(exchange("GET", "/nothing-here", b"").status, 404);
    assert_eq!(exchange("HEAD", &path, b"").status, 200);
    assert_eq!(exchange("GET", &path, b"").body, blob);
    assert_eq!(exchange("GET", &ac, b"").body, b"action result");
}

#[test]
fn a_full_budget_of_committed_blobs_evicts_the_oldest_instead_of_refusing() {
    let server = Tessera::start(&TIGHT_BUDGET_ARGS, &[]);
    let addr = server.addr();
    let mut rng = seeded_rng("eviction");
    // Twelve 1 MB blobs through a 4 MiB budget: every put succeeds, the oldest make room.
    let blobs: Vec<Vec<u8>> = (0..12).map(|_| rng.bytes(TIGHT_UPLOAD_BYTES)).collect();
    for (i, blob) in blobs.iter().enumerate() {
        let response = put(addr, &cas_path(blob), blob);
        assert_eq!(response.status, 200, "blob {i}: {}", response.text());
    }
    assert_stored(addr, &cas_path(&blobs[11]), &blobs[11]);
    assert_absent(addr, &cas_path(&blobs[0]));
    // Whatever is still there is intact.
    for blob in &blobs[1..11] {
        let response = get(addr, &cas_path(blob));
        match response.status {
            200 => assert!(
                response.body == *blob,
                "an evicting store served wrong bytes"
            ),
            404 => {}
            other => panic!("GET after eviction answered {other}"),
        }
    }
}

#[test]
fn a_config_file_is_read_and_its_errors_name_the_setting() {
    let scratch = tempfile::tempdir().unwrap();
    let data = scratch.path().join("data");
    let config = scratch.path().join("tessera.toml");
    let run_with = |toml: &str| {
        std::fs::write(&config, toml).unwrap();
        common::run_tessera(
            &[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--data",
                data.to_str().unwrap(),
                "--config",
                config.to_str().unwrap(),
            ],
            &[],
        )
    };
    for (toml, setting) in [
        ("max_size = \"banana\"\n", "max_size"),
        ("idel_timeout = \"2s\"\n", "idel_timeout"),
        ("segment_size = [1, 2]\n", "segment_size"),
        ("this is not toml\n", "config"),
    ] {
        let output = run_with(toml);
        assert_eq!(output.status.code(), Some(2), "{toml:?}: {output:?}");
        assert!(
            output.stderr.contains(setting),
            "{toml:?}: the message does not name `{setting}`: {}",
            output.stderr
        );
    }
    // A valid file takes effect: its blob bound refuses a 2 KiB upload with 413.
    std::fs::write(&config, "max_blob_size = \"1KiB\"\n").unwrap();
    let server = Tessera::start(&["--config", config.to_str().unwrap()], &[]);
    let big = vec![7u8; 2048];
    assert_eq!(put(server.addr(), &cas_path(&big), &big).status, 413);
    let small = vec![7u8; 1024];
    assert_eq!(put(server.addr(), &cas_path(&small), &small).status, 200);
}

#[test]
fn a_stalled_reader_gets_byte_exact_bytes_even_when_its_blob_is_evicted_meanwhile() {
    let server = Tessera::start(&TIGHT_BUDGET_ARGS, &[]);
    let addr = server.addr();
    let mut rng = seeded_rng("stalled_reader");
    let victim = rng.bytes(TIGHT_UPLOAD_BYTES);
    assert_eq!(put(addr, &cas_path(&victim), &victim).status, 200);

    // A reader asks for the blob and does not read the response for now.
    let mut reader = Conn::open_with_small_receive_buffer(addr).unwrap();
    reader
        .send(&request_head("GET", &cas_path(&victim), 0, &[]))
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));

    // Meanwhile other clients push twice the budget through the store: the victim's segment
    // leaves the ring (or the victim was copied forward); either way uploads are not blocked.
    for i in 0..8 {
        let blob = rng.bytes(TIGHT_UPLOAD_BYTES);
        let response = put(addr, &cas_path(&blob), &blob);
        assert_eq!(response.status, 200, "upload {i} behind a stalled reader");
    }
    let still_indexed = get(addr, &cas_path(&victim)).status;
    // 404 when its segment was evicted (what this configuration does today), 200 if a read
    // copied it forward; the stalled reader must get the bytes either way.
    eprintln!("stalled_reader: GET of the victim after the uploads: {still_indexed}");
    assert!([200, 404].contains(&still_indexed), "{still_indexed}");
    let response = reader
        .read_response()
        .expect("the stalled reader's response");
    assert_eq!(response.status, 200);
    assert!(
        response.body == victim,
        "a reader of an evicted segment got {} different bytes",
        response.body.len()
    );
}

/// `PUT path` with `body` sent as chunks of `chunk_bytes` (Transfer-Encoding: chunked).
fn chunked_put(path: &str, body: &[u8], chunk_bytes: usize) -> Vec<u8> {
    let mut bytes = format!("PUT {path} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        .into_bytes();
    for chunk in body.chunks(chunk_bytes.max(1)) {
        bytes.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        bytes.extend_from_slice(chunk);
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"0\r\n\r\n");
    bytes
}

#[test]
fn chunked_uploads_are_verified_bounded_and_stored_whole() {
    let server = Tessera::start(&["--max-blob-size", "1MiB"], &[]);
    let addr = server.addr();
    let mut rng = seeded_rng("chunked");

    let blob = rng.bytes(100_000);
    let response = send_raw(addr, &chunked_put(&cas_path(&blob), &blob, 7_000)).unwrap();
    assert_eq!(response.status, 200, "{response:?}");
    assert_stored(addr, &cas_path(&blob), &blob);

    // Wrong bytes for the name: 400, nothing visible.
    let claimed = rng.bytes(5_000);
    let other = rng.bytes(5_000);
    let response = send_raw(addr, &chunked_put(&cas_path(&claimed), &other, 1000)).unwrap();
    assert_eq!(response.status, 400, "{response:?}");
    assert_absent(addr, &cas_path(&claimed));
    assert_absent(addr, &cas_path(&other));

    // Bad framing: 400, nothing visible.
    let framed = rng.bytes(3_000);
    let mut bad = chunked_put(&cas_path(&framed), &framed, 1000);
    let size_line = bad.windows(5).position(|w| w == b"3e8\r\n").unwrap();
    bad[size_line..size_line + 3].copy_from_slice(b"zz8");
    let response = send_raw(addr, &bad).unwrap();
    assert_eq!(response.status, 400, "{response:?}");
    assert_absent(addr, &cas_path(&framed));

    // Ends mid-chunk: not acknowledged, nothing visible.
    let cut = chunked_put(&cas_path(&framed), &framed, 1000);
    let mut conn = Conn::open(addr).unwrap();
    conn.send(&cut[..cut.len() / 2]).unwrap();
    conn.shutdown_write().unwrap();
    match conn.wait_for_close(Duration::from_millis(http_client::IO_TIMEOUT_MS)) {
        Closed::Closed(bytes) => assert_no_success(&bytes, "chunked upload cut short"),
        Closed::StillOpen(_) => panic!("a chunked upload cut short left the connection open"),
    }
    assert_absent(addr, &cas_path(&framed));

    // Over max_blob_size in chunks: 413, nothing visible (the bound holds without a length).
    let big = rng.bytes((1 << 20) + 4096);
    let response = send_raw(addr, &chunked_put(&cas_path(&big), &big, 64 * 1024)).unwrap();
    assert_eq!(response.status, 413, "{response:?}");
    assert_absent(addr, &cas_path(&big));
    let ac = format!("/ac/{}", rng.hex64());
    let response = send_raw(addr, &chunked_put(&ac, &big, 64 * 1024)).unwrap();
    assert_eq!(response.status, 413, "{response:?}");
    assert_absent(addr, &ac);
    assert_serving(addr);
}

#[test]
fn an_ac_hit_whose_outputs_are_missing_is_a_miss_and_other_ac_bodies_are_served_as_stored() {
    use prost::Message;
    use tessera::grpc::pb::build::bazel::remote::execution::v2 as reapi;

    let server = start();
    let addr = server.addr();
    let output = b"the action's output".to_vec();
    let stdout = b"the action's stdout".to_vec();
    let digest = |bytes: &[u8]| reapi::Digest {
        hash: sha256_hex(bytes),
        size_bytes: bytes.len() as i64,
    };
    let result = reapi::ActionResult {
        output_files: vec![reapi::OutputFile {
            path: "out/file".into(),
            digest: Some(digest(&output)),
            ..Default::default()
        }],
        stdout_digest: Some(digest(&stdout)),
        ..Default::default()
    };
    let encoded = result.encode_to_vec();
    let ac = format!("/ac/{}", "3c".repeat(32));
    assert_eq!(put(addr, &ac, &encoded).status, 200);

    // Neither referenced blob is in the CAS: a hit would send Bazel to "lost inputs".
    assert_absent(addr, &ac);
    assert_eq!(put(addr, &cas_path(&output), &output).status, 200);
    assert_absent(addr, &ac);
    // Once everything it references is present, the entry is served byte-exact.
    assert_eq!(put(addr, &cas_path(&stdout), &stdout).status, 200);
    assert_stored(addr, &ac, &encoded);
    // The check looks in the entry's own instance: the same entry under a prefix whose CAS is
    // empty is a miss.
    assert_eq!(put(addr, &format!("/other{ac}"), &encoded).status, 200);
    assert_absent(addr, &format!("/other{ac}"));

    // Not an ActionResult (ccache `layout=bazel` keeps its own entries under /ac/): as stored.
    let ccache_like = b"cCrS\x00\x01\x02 a ccache result entry".to_vec();
    let ccache_ac = format!("/ac/{}", "4d".repeat(32));
    assert_eq!(put(addr, &ccache_ac, &ccache_like).status, 200);
    assert_stored(addr, &ccache_ac, &ccache_like);
}

/// This thread's CPU affinity mask, as CPU numbers.
fn thread_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity(0) writes this thread's mask into it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        assert_eq!(
            libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set),
            0
        );
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&cpu| libc::CPU_ISSET(cpu, &set))
            .collect()
    }
}

fn set_thread_cpus(cpus: &[usize]) {
    // SAFETY: as above; the mask is built with CPU_SET on CPUs below CPU_SETSIZE.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &cpu in cpus {
            libc::CPU_SET(cpu, &mut set);
        }
        assert_eq!(
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set),
            0
        );
    }
}

#[test]
fn executors_follow_the_affinity_mask_they_are_started_with() {
    // `taskset -c N tessera serve` (or systemd's CPUAffinity=) must give one executor per
    // allowed CPU, each pinned inside the mask; it used to pin executor 0 to CPU 0 regardless.
    let before = thread_cpus();
    let cpu = *before.last().expect("some CPU");
    set_thread_cpus(&[cpu]); // the child inherits this thread's mask
    let mut server = Tessera::start(&[], &[]);
    set_thread_cpus(&before);
    let ready = server.stdout_lines().first().cloned().unwrap_or_default();
    assert!(ready.ends_with(" executors=1"), "{ready}");
    // glommio names an executor's threads `<name>-<id>`: ours are `tessera-0-…`.
    let tasks = std::path::PathBuf::from(format!("/proc/{}/task", server.pid()));
    let executor_threads: Vec<_> = std::fs::read_dir(&tasks)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|task| {
            std::fs::read_to_string(task.join("comm")).is_ok_and(|c| c.starts_with("tessera-0-"))
        })
        .collect();
    assert!(!executor_threads.is_empty(), "no thread of executor 0");
    for thread in executor_threads {
        let status = std::fs::read_to_string(thread.join("status")).unwrap();
        let allowed = status
            .lines()
            .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
            .map(str::trim)
            .unwrap();
        assert_eq!(allowed, cpu.to_string(), "{}", thread.display());
    }
    server.stop_expecting_exit_0();
}

/// Sum of every sample of `name` whose labels contain `label` (e.g. `code="404"`; "" for all).
fn metric(page: &str, name: &str, label: &str) -> u64 {
    page.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .filter(|(series, _)| {
            let (series_name, labels) = series.split_once('{').unwrap_or((series, ""));
            series_name == name && labels.contains(label)
        })
        .map(|(_, value)| value.parse::<u64>().expect("an integer sample"))
        .sum()
}

#[test]
fn metrics_count_responses_limits_and_the_store_across_executors() {
    let server = Tessera::start(&["--executors", "2", "--shards", "4"], &[]);
    let addr = server.addr();
    let mut rng = seeded_rng("metrics");
    let page = |addr| {
        let response = get(addr, "/metrics");
        assert_eq!(response.status, 200);
        assert_eq!(
            response.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        String::from_utf8(response.body).unwrap()
    };
    let before = page(addr);
    assert_eq!(metric(&before, "tessera_store_objects", ""), 0);
    assert_eq!(metric(&before, "tessera_connections_max", ""), 10_000);
    // All four shards report, whichever executor answers.
    assert_eq!(
        (0..4)
            .filter(|s| before.contains(&format!("tessera_store_objects{{shard=\"{s}\"}}")))
            .count(),
        4,
        "{before}"
    );

    let blobs: Vec<Vec<u8>> = (0..20).map(|_| rng.bytes(3000)).collect();
    for blob in &blobs {
        assert_eq!(put(addr, &cas_path(blob), blob).status, 200);
        assert_eq!(get(addr, &cas_path(blob)).status, 200);
    }
    assert_eq!(get(addr, &cas_path(&rng.bytes(10))).status, 404);
    let huge_header = format!(
        "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 << 10)
    );
    let mut conn = Conn::open(addr).unwrap();
    conn.send(huge_header.as_bytes()).unwrap();
    match conn.wait_for_close(Duration::from_secs(10)) {
        Closed::Closed(bytes) => assert!(bytes.starts_with(b"HTTP/1.1 431"), "{bytes:?}"),
        Closed::StillOpen(bytes) => panic!("431 connection still open: {bytes:?}"),
    }
    assert_eq!(request(addr, "POST", "/metrics", &[]).status, 405);

    let after = page(addr);
    let delta = |name, label| metric(&after, name, label) - metric(&before, name, label);
    assert_eq!(delta("tessera_store_objects", ""), 20);
    assert!(delta("tessera_store_hits_total", "") >= 20);
    assert!(delta("tessera_store_misses_total", "") >= 1);
    assert_eq!(delta("tessera_http_responses_total", "code=\"431\""), 1);
    assert_eq!(delta("tessera_http_responses_total", "code=\"405\""), 1);
    // 20 PUTs, 20 GETs and the first /metrics page.
    assert!(delta("tessera_http_responses_total", "code=\"200\"") >= 41);
    assert!(delta("tessera_http_responses_total", "code=\"404\"") >= 1);
    assert_eq!(metric(&after, "tessera_connections_refused_total", ""), 0);

    // The open-connections gauge counts held connections and forgets closed ones. It is read
    // on one kept-alive observer connection, which counts itself. First the connections of
    // the requests above must be gone (the server notices a close asynchronously)...
    let mut observer = Conn::open(addr).unwrap();
    let mut open_gauge = || {
        let response = observer.request("GET", "/metrics", &[]).unwrap();
        assert_eq!(response.status, 200);
        metric(&response.text(), "tessera_connections_open", "")
    };
    let settle = Duration::from_millis(SETTLE_TIMEOUT_MS);
    let only_the_observer = |open: u64| match open {
        1 => Ok(()),
        open => Err(format!("tessera_connections_open {open}")),
    };
    common::eventually("only the observer connection open", settle, || {
        only_the_observer(open_gauge())
    });
    // ...then every held idle connection counts at once (each was accepted: it was answered)...
    let held: Vec<Conn> = (0..HELD_IDLE_CONNECTIONS)
        .map(|i| {
            let mut conn = Conn::open(addr).unwrap();
            let response = conn.request("GET", "/healthz", &[]).unwrap();
            assert_eq!(response.status, 200, "held connection {i}");
            conn
        })
        .collect();
    assert_eq!(
        open_gauge(),
        HELD_IDLE_CONNECTIONS as u64 + 1,
        "tessera_connections_open with {HELD_IDLE_CONNECTIONS} idle connections and the observer"
    );
    // ...and closing them takes them off again.
    drop(held);
    common::eventually("the closed connections leave the gauge", settle, || {
        only_the_observer(open_gauge())
    });
}
