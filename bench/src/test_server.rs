//! A tiny in-memory HTTP/1.1 object server on std threads, for the harness's own tests and for
//! demonstrating coordinated omission by hand (`tessera-bench test-server`). It is deliberately
//! simple — one thread per connection, a `Mutex<HashMap>` — and is not a benchmark peer.
//!
//! * `PUT <path>` stores the body (201), `GET <path>` returns it (200) or 404, `GET /healthz` 200.
//! * [`TestServer::stall_once`] arms a server-wide stall: the first request after the given delay
//!   freezes every connection's next answer until the stall has elapsed — like a GC pause or a
//!   blocked disk would.
//! * [`TestServer::corrupt_reads`] flips one byte of every GET body, to prove that the client
//!   notices.
//! * [`TestServer::immutable`] gives Nx's semantics: a PUT answers 200, or 409 and stores
//!   nothing when the path is already stored.
//! * [`TestServer::chunked_reads`] sends GET bodies with `Transfer-Encoding: chunked` in chunks
//!   of uneven sizes, as Node.js servers stream files.
//! * [`TestServer::recorded_heads`] returns the first [`RECORDED_HEADS_MAX`] request heads.

use crate::http1_response::{body_length, parse_response_head, Parsed, ResponseHead};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Largest request body the test server accepts: 64 MiB (OBJECT_BYTES_MAX).
const REQUEST_BODY_BYTES_MAX: u64 = crate::limits::OBJECT_BYTES_MAX as u64;

/// Largest request head the test server accepts.
const REQUEST_HEAD_BYTES_MAX: usize = 16 * 1024;

/// Request heads kept for [`TestServer::recorded_heads`]; later ones are not recorded.
pub const RECORDED_HEADS_MAX: usize = 64;

/// Chunk sizes of a chunked GET body, used in turn (uneven, so that chunk boundaries fall
/// everywhere relative to the client's reads).
const CHUNK_SIZES: &[usize] = &[1, 7, 1000, 4093, 65_536, 2];

/// Most connections served at once (one thread each, 64 KiB read buffer + the thread's stack):
/// 1024 × ~2 MiB of address space. Further connections are closed on accept.
pub const CONNECTIONS_MAX: usize = 1024;

#[derive(Default)]
struct Shared {
    objects: Mutex<HashMap<String, Vec<u8>>>,
    /// (arm time + delay, stall length) while a stall is armed but not yet begun.
    stall_plan: Mutex<Option<(Instant, Duration)>>,
    /// Every answer waits until this instant passes.
    stalled_until: Mutex<Option<Instant>>,
    corrupt_reads: AtomicBool,
    immutable: AtomicBool,
    chunked_reads: AtomicBool,
    heads: Mutex<Vec<String>>,
    stopping: AtomicBool,
    open_connections: AtomicUsize,
}

pub struct TestServer {
    address: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Listens on `address` (use port 0 in tests).
    pub fn start(address: &str) -> io::Result<TestServer> {
        let listener = TcpListener::bind(address)?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let accept_shared = shared.clone();
        let acceptor = std::thread::Builder::new()
            .name("test-server-accept".into())
            .spawn(move || accept_loop(listener, accept_shared))?;
        Ok(TestServer {
            address,
            shared,
            acceptor: Some(acceptor),
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The first request that arrives at least `delay` from now starts a stall of `length`
    /// during which no connection gets an answer.
    pub fn stall_once(&self, delay: Duration, length: Duration) {
        *self.shared.stall_plan.lock().expect("stall plan lock") =
            Some((Instant::now() + delay, length));
    }

    pub fn corrupt_reads(&self, on: bool) {
        self.shared.corrupt_reads.store(on, Ordering::Relaxed);
    }

    pub fn immutable(&self, on: bool) {
        self.shared.immutable.store(on, Ordering::Relaxed);
    }

    pub fn chunked_reads(&self, on: bool) {
        self.shared.chunked_reads.store(on, Ordering::Relaxed);
    }

    /// The heads (request line and header lines, CRLF-separated) of the first
    /// [`RECORDED_HEADS_MAX`] requests, in arrival order.
    pub fn recorded_heads(&self) -> Vec<String> {
        self.shared.heads.lock().expect("heads lock").clone()
    }

    pub fn object_count(&self) -> usize {
        self.shared.objects.lock().expect("objects lock").len()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::Relaxed);
        // Wake the blocking accept so that it sees the flag.
        let _ = TcpStream::connect(self.address);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::Relaxed) {
            return;
        }
        let Ok(stream) = stream else { continue };
        if shared.open_connections.fetch_add(1, Ordering::Relaxed) >= CONNECTIONS_MAX {
            shared.open_connections.fetch_sub(1, Ordering::Relaxed);
            continue; // dropping the stream closes it
        }
        // Connection threads end when their client disconnects.
        let connection_shared = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("test-server-conn".into())
            .spawn(move || {
                let _ = serve_connection(stream, &connection_shared);
                connection_shared
                    .open_connections
                    .fetch_sub(1, Ordering::Relaxed);
            });
        if spawned.is_err() {
            shared.open_connections.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

fn serve_connection(mut stream: TcpStream, shared: &Shared) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buffer = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        // Read one request head. The request grammar differs from a response only in the first
        // line, so the head is framed with the same end-of-head search.
        let head_end = loop {
            if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            if buffer.len() > REQUEST_HEAD_BYTES_MAX {
                return write_response(&mut stream, 431, b"");
            }
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            buffer.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
        {
            let mut heads = shared.heads.lock().expect("heads lock");
            if heads.len() < RECORDED_HEADS_MAX {
                heads.push(head.clone());
            }
        }
        let mut words = head.split_whitespace();
        let (method, path) = (
            words.next().unwrap_or("").to_string(),
            words.next().unwrap_or("").to_string(),
        );
        let length = content_length(&head)?;
        if length > REQUEST_BODY_BYTES_MAX {
            return write_response(&mut stream, 413, b"");
        }
        let end = head_end + length as usize;
        while buffer.len() < end {
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            buffer.extend_from_slice(&chunk[..n]);
        }
        let body = buffer[head_end..end].to_vec();
        buffer.drain(..end);
        wait_out_stall(shared);
        match (method.as_str(), path.as_str()) {
            ("GET", "/healthz") => write_response(&mut stream, 200, b"ok")?,
            ("GET", _) => {
                let found = shared
                    .objects
                    .lock()
                    .expect("objects lock")
                    .get(&path)
                    .cloned();
                match found {
                    Some(mut bytes) => {
                        if shared.corrupt_reads.load(Ordering::Relaxed) && !bytes.is_empty() {
                            let middle = bytes.len() / 2;
                            bytes[middle] ^= 0x01;
                        }
                        if shared.chunked_reads.load(Ordering::Relaxed) {
                            write_chunked(&mut stream, &bytes)?
                        } else {
                            write_response(&mut stream, 200, &bytes)?
                        }
                    }
                    None => write_response(&mut stream, 404, b"")?,
                }
            }
            ("PUT", _) => {
                let status = {
                    let mut objects = shared.objects.lock().expect("objects lock");
                    if !shared.immutable.load(Ordering::Relaxed) {
                        objects.insert(path, body);
                        201
                    } else {
                        match objects.entry(path) {
                            std::collections::hash_map::Entry::Occupied(_) => 409,
                            std::collections::hash_map::Entry::Vacant(slot) => {
                                slot.insert(body);
                                200
                            }
                        }
                    }
                };
                write_response(&mut stream, status, b"")?
            }
            _ => write_response(&mut stream, 405, b"")?,
        }
    }
}

/// Parses the request's Content-Length by reusing the response parser on a synthetic status line.
fn content_length(head: &str) -> io::Result<u64> {
    let headers = head.split_once("\r\n").map_or("", |(_, rest)| rest);
    let synthetic = format!("HTTP/1.1 200 OK\r\n{headers}");
    let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidData, e);
    match parse_response_head(synthetic.as_bytes()).map_err(|e| invalid(e.to_string()))? {
        Parsed::Complete(parsed) => Ok(request_body_length(&parsed)),
        Parsed::Partial => Err(invalid("incomplete request head".into())),
    }
}

fn request_body_length(head: &ResponseHead) -> u64 {
    // A request without Content-Length has no body (RFC 9112 §6.3 step 7).
    body_length(head, false).unwrap_or(0)
}

fn wait_out_stall(shared: &Shared) {
    let now = Instant::now();
    {
        let mut plan = shared.stall_plan.lock().expect("stall plan lock");
        if let Some((start, length)) = *plan {
            if now >= start {
                *shared.stalled_until.lock().expect("stall lock") = Some(now + length);
                *plan = None;
            }
        }
    }
    let until = *shared.stalled_until.lock().expect("stall lock");
    if let Some(until) = until {
        if until > now {
            std::thread::sleep(until - now);
        }
    }
}

fn write_response(stream: &mut TcpStream, status: u16, body: &[u8]) -> io::Result<()> {
    let reason = match status {
        200 => "OK",
        201 => "Created",
        404 => "Not Found",
        409 => "Conflict",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        _ => "Request Header Fields Too Large",
    };
    let mut response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(body);
    stream.write_all(&response)
}

/// A 200 response whose body goes out chunked (sizes from CHUNK_SIZES in turn), with one
/// trailer field.
fn write_chunked(stream: &mut TcpStream, body: &[u8]) -> io::Result<()> {
    let mut response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let mut rest = body;
    for &size in CHUNK_SIZES.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        response.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        response.extend_from_slice(chunk);
        response.extend_from_slice(b"\r\n");
        rest = tail;
    }
    response.extend_from_slice(b"0\r\nX-Checked: no\r\n\r\n");
    stream.write_all(&response)
}
