//! A tier hit reaches the client while it streams in (issue 11: "a tier hit is stored locally
//! and served while it streams in"), and never as a complete body unless verified.
//!
//! The tier is a small HTTP server in this process (`DripTier`, `kind = "http"`): it sends an
//! object's body in slices with pauses, and can hold its last slice until the test releases it.
//! The client must receive everything before that slice while it is held (the download is not
//! finished), then the byte-exact body; a second read is a local hit. A CAS object whose tier
//! bytes do not hash to its digest never reaches a client as a complete body with a success,
//! and is not stored.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::http_client::{get, sha256_hex, Rng};
use common::{grpc_client, Tessera};
use prost::Message;
use tessera::grpc::framing::MessageDecoder;
use tessera::grpc::pb::google::bytestream::{ReadRequest, ReadResponse};
use tessera::grpc::{Code, Status};

/// The object size of the streaming tests: large enough that a client served only after the
/// whole download would visibly wait.
const OBJECT_BYTES: usize = 8 << 20;
/// The tier sends a body in slices of this size…
const SLICE_BYTES: usize = 256 << 10;
/// …with this pause between slices (8 MiB take ~0.3 s plus the held last slice).
const SLICE_PAUSE: Duration = Duration::from_millis(10);
/// Longest wait for anything the test expects to happen.
const WAIT: Duration = Duration::from_secs(30);
const BYTESTREAM_READ: &str = "/google.bytestream.ByteStream/Read";

/// Whether the tier holds its last slice, and how many last slices it sent.
#[derive(Default)]
struct Gate {
    hold: bool,
    last_slices_sent: usize,
}

#[derive(Default)]
struct TierState {
    objects: Mutex<HashMap<String, Vec<u8>>>,
    gets: Mutex<HashMap<String, usize>>,
    gate: Mutex<Gate>,
    changed: Condvar,
}

/// A bazel-remote-style HTTP cache on 127.0.0.1 that drips its bodies.
struct DripTier {
    addr: SocketAddr,
    state: Arc<TierState>,
}

impl DripTier {
    fn start() -> DripTier {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the tier");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(TierState::default());
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let state = shared.clone();
                std::thread::spawn(move || serve(stream, &state));
            }
        });
        DripTier { addr, state }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn put(&self, path: &str, body: Vec<u8>) {
        self.state
            .objects
            .lock()
            .unwrap()
            .insert(path.to_owned(), body);
    }

    fn remove(&self, path: &str) {
        self.state.objects.lock().unwrap().remove(path);
    }

    fn gets(&self, path: &str) -> usize {
        self.state
            .gets
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// From now on, every body's last slice waits for [`release`](Self::release).
    fn hold_last_slice(&self) {
        self.state.gate.lock().unwrap().hold = true;
    }

    fn release(&self) {
        self.state.gate.lock().unwrap().hold = false;
        self.state.changed.notify_all();
    }

    /// Whether some body's last slice went out (only after a release while held).
    fn sent_a_last_slice(&self) -> bool {
        self.state.gate.lock().unwrap().last_slices_sent > 0
    }
}

/// Answers requests on one connection: GET and HEAD of the objects, 404 for anything else.
/// Request bodies (uploads) are not expected here and are not read.
fn serve(mut stream: TcpStream, state: &TierState) {
    let mut buffer = Vec::new();
    loop {
        let head_end = loop {
            if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
        buffer.drain(..head_end);
        let mut words = head.split_whitespace();
        let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        let body = state.objects.lock().unwrap().get(path).cloned();
        let Some(body) = body else {
            let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n");
            continue;
        };
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\ncontent-type: application/octet-stream\r\n\r\n",
            body.len()
        );
        if stream.write_all(head.as_bytes()).is_err() {
            return;
        }
        if method != "GET" {
            continue;
        }
        *state
            .gets
            .lock()
            .unwrap()
            .entry(path.to_owned())
            .or_default() += 1;
        let slices: Vec<&[u8]> = body.chunks(SLICE_BYTES).collect();
        for (index, slice) in slices.iter().enumerate() {
            let last = index + 1 == slices.len();
            if last {
                let mut gate = state.gate.lock().unwrap();
                while gate.hold {
                    gate = state.changed.wait(gate).unwrap();
                }
            }
            if stream.write_all(slice).is_err() {
                return;
            }
            if last {
                state.gate.lock().unwrap().last_slices_sent += 1;
            }
            std::thread::sleep(SLICE_PAUSE);
        }
    }
}

fn start_edge(tier: &DripTier) -> Tessera {
    Tessera::start(
        &[
            "--shards",
            "1",
            "--executors",
            "1",
            "--max-blob-size",
            "64MiB",
            "--tier-kind",
            "http",
            "--tier-url",
            &tier.url(),
        ],
        &[],
    )
}

/// A GET read by hand: the head at once, then the body as it arrives.
struct StreamingGet {
    stream: TcpStream,
    status: u16,
    content_length: usize,
    body: Vec<u8>,
}

impl StreamingGet {
    fn send(addr: SocketAddr, path: &str) -> StreamingGet {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nhost: tessera\r\n\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        let mut received = Vec::new();
        let head_end = loop {
            if let Some(at) = received.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let mut chunk = [0u8; 64 << 10];
            let n = stream.read(&mut chunk).expect("a response head");
            assert!(n > 0, "closed before a response head");
            received.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&received[..head_end]).to_ascii_lowercase();
        let status = head[9..12].parse().expect("a status code");
        let content_length = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .map(|value| value.trim().parse().expect("a length"))
            .expect("content-length");
        StreamingGet {
            stream,
            status,
            content_length,
            body: received[head_end..].to_vec(),
        }
    }

    /// Reads until `bytes` of the body are in (true) or the connection ends (false).
    fn read_until(&mut self, bytes: usize) -> bool {
        while self.body.len() < bytes {
            let mut chunk = [0u8; 64 << 10];
            match self.stream.read(&mut chunk) {
                Ok(0) => return false,
                Ok(n) => self.body.extend_from_slice(&chunk[..n]),
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => return false,
                Err(error) => panic!("reading the body: {error}"),
            }
        }
        true
    }
}

#[test]
fn an_http_get_of_a_tier_hit_gets_its_bytes_while_the_download_is_still_running() {
    let tier = DripTier::start();
    let edge = start_edge(&tier);
    let body = Rng::new(21).bytes(OBJECT_BYTES);
    let hash = sha256_hex(&body);
    let path = format!("/cas/{hash}");
    tier.put(&path, body.clone());
    tier.hold_last_slice();

    let mut response = StreamingGet::send(edge.addr(), &path);
    assert_eq!(response.status, 200);
    assert_eq!(response.content_length, OBJECT_BYTES);
    // Everything the tier sent so far: all but its held last slice.
    let sent_by_the_tier = OBJECT_BYTES - SLICE_BYTES;
    assert!(
        response.read_until(sent_by_the_tier),
        "the connection ended after {} bytes",
        response.body.len()
    );
    assert!(
        !tier.sent_a_last_slice(),
        "the tier must still be holding its last slice"
    );
    assert!(
        response.body.len() < OBJECT_BYTES,
        "the whole body arrived before the tier sent its last slice"
    );
    tier.release();
    assert!(response.read_until(OBJECT_BYTES));
    assert!(response.body == body, "the streamed body is not byte-exact");

    // Stored locally as it streamed in: the next read is local.
    let again = get(edge.addr(), &path);
    assert_eq!(again.status, 200);
    assert!(again.body == body);
    assert_eq!(tier.gets(&path), 1, "the second read went to the tier");
}

/// The same body under another CAS name: its bytes do not hash to the name.
fn tampered(body: &[u8]) -> (String, Vec<u8>) {
    let mut other = body.to_vec();
    other[0] ^= 0xff;
    (sha256_hex(&other), body.to_vec())
}

#[test]
fn a_cas_blob_whose_tier_bytes_do_not_match_its_digest_is_never_served_whole_nor_stored() {
    let tier = DripTier::start();
    let edge = start_edge(&tier);
    let (hash, wrong) = tampered(&Rng::new(22).bytes(2 << 20));
    let path = format!("/cas/{hash}");
    tier.put(&path, wrong.clone());

    let mut response = StreamingGet::send(edge.addr(), &path);
    if response.status == 200 {
        assert_eq!(response.content_length, wrong.len());
        assert!(
            !response.read_until(wrong.len()),
            "a body that fails its digest was served whole"
        );
    }
    assert!(
        edge.wait_for_log("was not stored", WAIT),
        "the tampered object was not refused:\n{}",
        edge.recent_log()
    );
    // Not stored: with the tier no longer offering it, it is a miss.
    tier.remove(&path);
    assert_eq!(get(edge.addr(), &path).status, 404);
}

/// ByteStream Read of `blobs/{hash}/{size}`: the data so far, received as it comes, and a
/// callback once `threshold` bytes are in.
async fn bytestream_read(
    client: &h2::client::SendRequest<Bytes>,
    hash: &str,
    size: usize,
    threshold: usize,
    mut at_threshold: impl FnMut(usize),
) -> (Vec<u8>, Status) {
    let request = ReadRequest {
        resource_name: format!("blobs/{hash}/{size}"),
        read_offset: 0,
        read_limit: 0,
    };
    let mut client = client.clone().ready().await.expect("client ready");
    let (response, mut send) = client
        .send_request(grpc_client::grpc_request(BYTESTREAM_READ), false)
        .expect("send request");
    send.send_data(grpc_client::frame(&request.encode_to_vec()), true)
        .expect("request body");
    let response = response.await.expect("a response");
    let (parts, mut body) = response.into_parts();
    if body.is_end_stream() {
        return (Vec::new(), Status::from_trailers(&parts.headers));
    }
    let mut decoder = MessageDecoder::new(64 << 20);
    let mut data = Vec::new();
    let mut reached = false;
    while let Some(chunk) = body.data().await {
        let Ok(chunk) = chunk else {
            return (data, Status::cancelled("the stream broke"));
        };
        let _ = body.flow_control().release_capacity(chunk.len());
        decoder.push(chunk);
        while let Some(message) = decoder.next_message().expect("well-framed reply") {
            let message = ReadResponse::decode(message).expect("a ReadResponse");
            data.extend_from_slice(&message.data);
        }
        if !reached && data.len() >= threshold {
            reached = true;
            at_threshold(data.len());
        }
    }
    let trailers = body.trailers().await.ok().flatten().unwrap_or_default();
    (data, Status::from_trailers(&trailers))
}

#[test]
fn a_bytestream_read_of_a_tier_hit_streams_and_a_tampered_blob_ends_in_an_error() {
    let tier = Arc::new(DripTier::start());
    let edge = start_edge(&tier);
    let body = Rng::new(23).bytes(OBJECT_BYTES);
    let hash = sha256_hex(&body);
    tier.put(&format!("/cas/{hash}"), body.clone());
    let (bad_hash, wrong) = tampered(&Rng::new(24).bytes(2 << 20));
    tier.put(&format!("/cas/{bad_hash}"), wrong.clone());
    tier.hold_last_slice();

    let addr = edge.addr();
    let gate = tier.clone();
    let bad_path = format!("/cas/{bad_hash}");
    let expected = body.clone();
    grpc_client::run_executor(move || async move {
        let client = grpc_client::connect(addr).await;
        let started = Instant::now();
        let sent_by_the_tier = OBJECT_BYTES - SLICE_BYTES;
        let (data, status) = bytestream_read(&client, &hash, OBJECT_BYTES, sent_by_the_tier, |n| {
            assert!(
                !gate.sent_a_last_slice(),
                "the tier must still hold its last slice"
            );
            assert!(
                n < OBJECT_BYTES,
                "the whole blob arrived before the tier sent it"
            );
            gate.release();
        })
        .await;
        assert_eq!(status.code, Code::Ok, "{status:?}");
        assert!(data == expected, "the streamed blob is not byte-exact");
        assert!(started.elapsed() < WAIT);

        let (data, status) =
            bytestream_read(&client, &bad_hash, wrong.len(), usize::MAX, |_| {}).await;
        assert_ne!(
            status.code,
            Code::Ok,
            "a blob that fails its digest was read whole"
        );
        assert!(data.len() < wrong.len(), "{} bytes", data.len());
    });
    // The good blob is local now; the tampered one was not stored.
    assert_eq!(tier.gets(&format!("/cas/{}", sha256_hex(&body))), 1);
    tier.remove(&bad_path);
    assert_eq!(get(edge.addr(), &bad_path).status, 404);
    let again = get(edge.addr(), &format!("/cas/{}", sha256_hex(&body)));
    assert!(again.status == 200 && again.body == body);
}

/// Concurrent misses for one object make one tier request in the whole process: clients on
/// several connections (spread over both executors) ask for the same tier object while its
/// download is held; the tier sees one GET, and every client gets the byte-exact body.
#[test]
fn concurrent_misses_on_every_core_make_one_tier_request() {
    const CLIENTS: usize = 8;
    let tier = DripTier::start();
    let edge = Tessera::start(
        &[
            "--shards",
            "2",
            "--executors",
            "2",
            "--max-blob-size",
            "64MiB",
            "--tier-kind",
            "http",
            "--tier-url",
            &tier.url(),
        ],
        &[],
    );
    let body = Rng::new(33).bytes(OBJECT_BYTES);
    let path = format!("/cas/{}", sha256_hex(&body));
    tier.put(&path, body.clone());
    tier.hold_last_slice();
    let addr = edge.addr();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || get(addr, &path))
        })
        .collect();
    // Every client's miss has either started the fetch or joined one (on its core or another)
    // before the tier may finish; a second fetch would show as a second GET.
    let deadline = Instant::now() + WAIT;
    let asked = || tier.gets(&path) as u64 + edge.metric("tessera_tier_read_joined_total");
    while asked() < CLIENTS as u64 {
        assert!(
            Instant::now() < deadline,
            "the clients' misses did not all arrive"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    tier.release();
    for client in clients {
        let response = client.join().unwrap();
        assert_eq!(response.status, 200);
        assert!(response.body == body, "a client's body is not byte-exact");
    }
    assert_eq!(
        tier.gets(&path),
        1,
        "concurrent misses made more than one tier GET"
    );
}
