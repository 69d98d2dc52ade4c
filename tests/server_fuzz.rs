//! A black-box fuzz of the running server: random and mutated HTTP requests (from valid Bazel
//! cache requests) over raw TCP. Whatever arrives, every answer is a well-formed HTTP/1.1
//! response with Content-Length and never a 500, every connection is closed once the client has
//! sent everything, nothing is ever stored under a CAS name its bytes do not hash to, and
//! afterwards the same process still serves valid requests correctly.
//!
//! The parser's own property tests live next to it (`src/http1/`); this test covers what sits
//! around it: the connection loop, routing, the store behind it. `TESSERA_TEST_SEED=N`
//! reproduces a run.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::http_client::{
    assert_serving, assert_stored, cas_path, get, put, request_head, sha256_hex, Closed, Conn, Rng,
};
use common::Tessera;

/// Fuzz cases in all (each on its own connection); `TESSERA_FUZZ_CASES=N` runs more locally.
const CASES: usize = 800;

fn cases() -> usize {
    std::env::var("TESSERA_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(CASES)
}

/// Client threads sending them.
const CLIENT_THREADS: usize = 4;

/// Each client interleaves a valid PUT and GET every this many fuzz cases.
const VALID_EVERY_CASES: usize = 25;

/// How long the server gets to close a connection after the client half-closed it: it has seen
/// EOF and has nothing left to wait for.
const CLOSE_AFTER_EOF_WAIT_MS: u64 = 5_000;

/// A valid request to mutate: a Bazel-style GET/HEAD/PUT, a chunked PUT, an Expect PUT, a
/// pipelined pair.
fn template(rng: &mut Rng) -> Vec<u8> {
    let len = rng.below(3000) as usize;
    let body = rng.bytes(len);
    let prefix = ["", "/inst", "/a/b"][rng.below(3) as usize];
    match rng.below(8) {
        0 => request_head("GET", &format!("{prefix}{}", cas_path(&body)), 0, &[]),
        1 => request_head("HEAD", &format!("{prefix}/ac/{}", rng.hex64()), 0, &[]),
        2 | 3 => {
            let mut bytes = request_head(
                "PUT",
                &format!("{prefix}{}", cas_path(&body)),
                body.len() as u64,
                &[],
            );
            bytes.extend_from_slice(&body);
            bytes
        }
        4 => {
            let mut bytes = request_head(
                "PUT",
                &format!("{prefix}/ac/{}", rng.hex64()),
                body.len() as u64,
                &[("Connection", "keep-alive"), ("User-Agent", "bazel/")],
            );
            bytes.extend_from_slice(&body);
            bytes
        }
        5 => {
            let path = format!("{prefix}{}", cas_path(&body));
            let mut bytes =
                format!("PUT {path} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
                    .into_bytes();
            for chunk in body.chunks(1 + rng.below(1000) as usize) {
                bytes.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                bytes.extend_from_slice(chunk);
                bytes.extend_from_slice(b"\r\n");
            }
            bytes.extend_from_slice(b"0\r\n\r\n");
            bytes
        }
        6 => {
            let path = format!("{prefix}{}", cas_path(&body));
            let expect = [("Expect", "100-continue")];
            let mut bytes = request_head("PUT", &path, body.len() as u64, &expect);
            bytes.extend_from_slice(&body);
            bytes
        }
        _ => {
            let mut bytes = request_head("GET", "/healthz", 0, &[]);
            bytes.extend(request_head("GET", &format!("/ac/{}", rng.hex64()), 0, &[]));
            bytes
        }
    }
}

/// Byte strings that tend to break parsers.
const NASTY: [&[u8]; 14] = [
    b"\r\n",
    b"\n",
    b"\r",
    b"\0",
    b":",
    b" ",
    b"\t",
    b"\xff\xfe",
    b"99999999999999999999999",
    b"-1",
    b"\r\nContent-Length: 5",
    b"\r\nTransfer-Encoding: chunked",
    b"\r\nExpect: 100-continue",
    b"%00%2e%2e/",
];

/// Applies one to four random mutations.
fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        let len = bytes.len().max(1) as u64;
        let at = rng.below(len) as usize;
        let at = at.min(bytes.len());
        match rng.below(7) {
            0 if !bytes.is_empty() && at < bytes.len() => bytes[at] = rng.next_u64() as u8,
            1 => {
                let junk_len = 1 + rng.below(16) as usize;
                let junk = rng.bytes(junk_len);
                bytes.splice(at..at, junk);
            }
            2 => {
                let end = (at + 1 + rng.below(32) as usize).min(bytes.len());
                bytes.drain(at..end);
            }
            3 => {
                let end = (at + 1 + rng.below(64) as usize).min(bytes.len());
                let copy = bytes[at..end].to_vec();
                bytes.splice(at..at, copy);
            }
            4 => bytes.truncate(at),
            5 => {
                let nasty = NASTY[rng.below(NASTY.len() as u64) as usize];
                bytes.splice(at..at, nasty.iter().copied());
            }
            _ => {
                // Replace a run of digits (a length, a chunk size, a version) with a nasty one.
                if let Some(start) = bytes[at..].iter().position(u8::is_ascii_digit) {
                    let start = at + start;
                    let end = bytes[start..]
                        .iter()
                        .position(|b| !b.is_ascii_digit())
                        .map_or(bytes.len(), |n| start + n);
                    let nasty = NASTY[8 + rng.below(2) as usize];
                    bytes.splice(start..end, nasty.iter().copied());
                }
            }
        }
    }
}

/// One fuzz input: mostly mutated templates, some pure noise, some valid-then-mutated pairs.
fn fuzz_input(rng: &mut Rng) -> Vec<u8> {
    match rng.below(10) {
        0 => {
            let len = rng.below(2000) as usize;
            rng.bytes(len)
        }
        1 => {
            let mut bytes = template(rng);
            let mut second = template(rng);
            mutate(rng, &mut second);
            bytes.extend(second);
            bytes
        }
        _ => {
            let mut bytes = template(rng);
            mutate(rng, &mut bytes);
            bytes
        }
    }
}

/// Every `/cas/<64 hex>` name in `bytes` (to check afterwards that none holds wrong bytes).
fn cas_names(bytes: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    for (at, _) in bytes.windows(5).enumerate().filter(|(_, w)| *w == b"/cas/") {
        let hex = &bytes[at + 5..(at + 5 + 64).min(bytes.len())];
        if hex.len() == 64
            && hex
                .iter()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        {
            names.push(String::from_utf8(hex.to_vec()).unwrap());
        }
    }
    names
}

/// Checks what the server sent for one input: nothing, or a well-formed response that is not a
/// 500. Returns the status of the first response, if any.
fn check_answer(input: &[u8], answer: &[u8]) -> Option<u16> {
    if answer.is_empty() {
        return None;
    }
    let end = answer.windows(4).position(|w| w == b"\r\n\r\n");
    let end = end.unwrap_or_else(|| {
        panic!(
            "an incomplete response head {:?} to {:?}",
            String::from_utf8_lossy(answer),
            String::from_utf8_lossy(input)
        )
    });
    let (status, headers) = common::http_client::parse_response_head(&answer[..end + 4])
        .unwrap_or_else(|e| panic!("{e} in the answer to {:?}", String::from_utf8_lossy(input)));
    assert!(
        status == 100 || headers.iter().any(|(n, _)| n == "content-length"),
        "a response without Content-Length to {:?}: {:?}",
        String::from_utf8_lossy(input),
        String::from_utf8_lossy(answer)
    );
    assert_ne!(
        status,
        500,
        "500 for {:?}: {:?}",
        String::from_utf8_lossy(input),
        String::from_utf8_lossy(answer)
    );
    Some(status)
}

/// Sends one input and checks the answer. Returns the first status (if any).
fn run_case(addr: SocketAddr, input: &[u8], abort_early: bool) -> Option<u16> {
    let mut conn = Conn::open(addr).expect("the server accepts connections during the fuzz");
    let _ = conn.send(input);
    if abort_early {
        // Gone without reading: the server must cope with a reset mid-request.
        return None;
    }
    let _ = conn.shutdown_write();
    match conn.wait_for_close(Duration::from_millis(CLOSE_AFTER_EOF_WAIT_MS)) {
        Closed::Closed(answer) => check_answer(input, &answer),
        Closed::StillOpen(answer) => panic!(
            "the connection stayed open {CLOSE_AFTER_EOF_WAIT_MS} ms after the client's EOF; \
             input {:?}, answer so far {:?}",
            String::from_utf8_lossy(input),
            String::from_utf8_lossy(&answer)
        ),
    }
}

#[test]
fn random_and_mutated_requests_never_break_the_server() {
    let seed = common::http_client::test_seed();
    eprintln!("fuzz: TESSERA_TEST_SEED={seed}");
    let mut server = Tessera::start(
        &["--max-blob-size", "1MiB"],
        &[
            ("TESSERA_HEADER_READ_TIMEOUT", "2s"),
            ("TESSERA_BODY_STALL_TIMEOUT", "2s"),
        ],
    );
    let addr = server.addr();
    let names = Arc::new(Mutex::new(BTreeSet::new()));
    let statuses = Arc::new(Mutex::new(std::collections::BTreeMap::<u16, usize>::new()));
    let cases = cases();
    let threads: Vec<_> = (0..CLIENT_THREADS)
        .map(|thread| {
            let (names, statuses) = (names.clone(), statuses.clone());
            let thread_seed = seed.wrapping_add(thread as u64);
            std::thread::spawn(move || {
                let mut rng = Rng::new(thread_seed);
                for case in 0..cases / CLIENT_THREADS {
                    if case % VALID_EVERY_CASES == 0 {
                        // Valid requests keep being served while the fuzz runs.
                        let len = rng.below(5000) as usize;
                        let blob = rng.bytes(len);
                        assert_eq!(put(addr, &cas_path(&blob), &blob).status, 200);
                        assert_stored(addr, &cas_path(&blob), &blob);
                    }
                    let input = fuzz_input(&mut rng);
                    names.lock().unwrap().extend(cas_names(&input));
                    if let Some(status) = run_case(addr, &input, rng.below(8) == 0) {
                        *statuses.lock().unwrap().entry(status).or_default() += 1;
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("a fuzz client failed");
    }
    eprintln!(
        "fuzz: first-response statuses {:?}",
        statuses.lock().unwrap()
    );

    assert!(
        server.is_running(),
        "the server died; log:\n{}",
        server.recent_log()
    );
    assert_serving(addr);
    let mut rng = Rng::new(seed ^ 0xF00D);
    let blob = rng.bytes(200_000);
    assert_eq!(put(addr, &cas_path(&blob), &blob).status, 200);
    assert_stored(addr, &cas_path(&blob), &blob);
    let ac = format!("/ac/{}", rng.hex64());
    assert_eq!(put(addr, &ac, b"after the fuzz").status, 200);
    assert_stored(addr, &ac, b"after the fuzz");

    // Nothing the fuzz stored under a CAS name holds bytes that do not hash to it.
    let names = names.lock().unwrap().clone();
    for name in &names {
        for prefix in ["", "/inst", "/a/b"] {
            let response = get(addr, &format!("{prefix}/cas/{name}"));
            if response.status == 200 {
                assert_eq!(
                    sha256_hex(&response.body),
                    *name,
                    "{prefix}/cas/{name} holds bytes of another digest"
                );
            }
        }
    }
    server.stop_expecting_exit_0();
    let verified = common::verify(server.data_dir());
    assert!(
        verified.status.success(),
        "verify after the fuzz: {verified:?}"
    );
}
