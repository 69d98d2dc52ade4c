//! A tiny HTTP/1.1 client over raw TCP for byte-precise requests, plus the test data helpers the
//! server tests share (SHA-256 names, a seeded PRNG for blob bytes).
//!
//! ```ignore
//! let mut conn = Conn::open(addr).unwrap();
//! conn.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
//! assert_eq!(conn.read_response().unwrap().status, 200);
//! let blob = b"hello";
//! assert_eq!(put(addr, &cas_path(blob), blob).status, 200);
//! ```
//!
//! Every socket has read and write timeouts, so a test never hangs on a silent server; every
//! response must carry `Content-Length` (the server promises it, and Bazel needs it).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// Default read/write timeout of a connection: far above any loopback response time of a debug
/// build on a loaded machine, far below the test's patience.
pub const IO_TIMEOUT_MS: u64 = 10_000;

/// Bound on a response head the client accepts (the server's own bound is 8 KiB).
pub const RESPONSE_HEAD_BYTES_MAX: usize = 16 * 1024;

/// Bound on a response body the client accepts: the largest blob a test stores (a few MiB) with
/// room to spare.
pub const RESPONSE_BODY_BYTES_MAX: usize = 64 << 20;

/// Receive buffer asked for by [`Conn::open_with_small_receive_buffer`].
pub const SMALL_RECEIVE_BUFFER_BYTES: usize = 4096;

/// Bound on the bytes the client reads while waiting for the server to close a connection.
const DRAIN_BYTES_MAX: usize = 1 << 20;

/// A parsed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Header names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text, for messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One client connection.
pub struct Conn {
    stream: TcpStream,
    /// Received bytes not yet consumed (the start of a pipelined next response).
    pending: Vec<u8>,
}

/// How a connection ended while the client waited for the server to close it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    /// EOF or reset; the bytes the server sent before (a final response, or nothing).
    Closed(Vec<u8>),
    /// Still open when the wait ended.
    StillOpen(Vec<u8>),
}

impl Conn {
    pub fn open(addr: SocketAddr) -> io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_millis(IO_TIMEOUT_MS))?;
        stream.set_read_timeout(Some(Duration::from_millis(IO_TIMEOUT_MS)))?;
        stream.set_write_timeout(Some(Duration::from_millis(IO_TIMEOUT_MS)))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            pending: Vec::new(),
        })
    }

    /// Opens a connection whose kernel receive buffer is tiny (the kernel doubles the request
    /// and rounds it up to its minimum), so a response the client does not read stays mostly in
    /// the server instead of in the client's socket buffer.
    pub fn open_with_small_receive_buffer(addr: SocketAddr) -> io::Result<Conn> {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            None,
        )?;
        socket.set_recv_buffer_size(SMALL_RECEIVE_BUFFER_BYTES)?;
        socket.connect_timeout(&addr.into(), Duration::from_millis(IO_TIMEOUT_MS))?;
        let stream: TcpStream = socket.into();
        stream.set_read_timeout(Some(Duration::from_millis(IO_TIMEOUT_MS)))?;
        stream.set_write_timeout(Some(Duration::from_millis(IO_TIMEOUT_MS)))?;
        Ok(Conn {
            stream,
            pending: Vec::new(),
        })
    }

    /// This end's address (what the server sees as the peer).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stream.local_addr()
    }

    pub fn set_read_timeout(&self, timeout: Duration) -> io::Result<()> {
        self.stream.set_read_timeout(Some(timeout))
    }

    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Half-closes: the server reads EOF after what was sent.
    pub fn shutdown_write(&self) -> io::Result<()> {
        self.stream.shutdown(Shutdown::Write)
    }

    /// Sends a whole request: `METHOD path HTTP/1.1`, `Host`, `Content-Length` when there is a
    /// body (or the method is PUT), then the body.
    pub fn request(&mut self, method: &str, path: &str, body: &[u8]) -> io::Result<Response> {
        let mut bytes = request_head(method, path, body.len() as u64, &[]);
        bytes.extend_from_slice(body);
        self.send(&bytes)?;
        if method == "HEAD" {
            self.read_response_to_head()
        } else {
            self.read_response()
        }
    }

    /// Reads one final response (skipping `100 Continue`), body framed by Content-Length.
    pub fn read_response(&mut self) -> io::Result<Response> {
        self.read_response_inner(false, true)
    }

    /// Reads the response to a HEAD request: Content-Length describes a body that is not sent.
    pub fn read_response_to_head(&mut self) -> io::Result<Response> {
        self.read_response_inner(true, true)
    }

    fn read_response_inner(&mut self, to_head: bool, skip_continue: bool) -> io::Result<Response> {
        loop {
            let head_end = self.fill_until_head_end()?;
            let head: Vec<u8> = self.pending.drain(..head_end).collect();
            let (status, headers) = parse_response_head(&head)?;
            if status == 100 {
                if skip_continue {
                    continue;
                }
                return Ok(Response {
                    status,
                    headers,
                    body: Vec::new(),
                });
            }
            let length = content_length(&headers)?;
            let body = if to_head {
                Vec::new()
            } else {
                self.take_body(length)?
            };
            return Ok(Response {
                status,
                headers,
                body,
            });
        }
    }

    /// Index just past the `\r\n\r\n` that ends a head in `pending`, reading as needed.
    fn fill_until_head_end(&mut self) -> io::Result<usize> {
        loop {
            if let Some(at) = find(&self.pending, b"\r\n\r\n") {
                return Ok(at + 4);
            }
            if self.pending.len() > RESPONSE_HEAD_BYTES_MAX {
                return Err(invalid("response head too large"));
            }
            self.read_more()?;
        }
    }

    fn take_body(&mut self, length: usize) -> io::Result<Vec<u8>> {
        if length > RESPONSE_BODY_BYTES_MAX {
            return Err(invalid("response body too large"));
        }
        while self.pending.len() < length {
            self.read_more()?;
        }
        Ok(self.pending.drain(..length).collect())
    }

    /// A read, repeated when a signal interrupts it (the client may run on a glommio executor
    /// thread, whose signals interrupt blocking calls).
    fn read_retrying(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.stream.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                result => return result,
            }
        }
    }

    fn read_more(&mut self) -> io::Result<()> {
        let mut buf = [0u8; 64 * 1024];
        let n = self.read_retrying(&mut buf)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "connection closed with {} unparsed bytes: {:?}",
                    self.pending.len(),
                    String::from_utf8_lossy(&self.pending[..self.pending.len().min(200)])
                ),
            ));
        }
        self.pending.extend_from_slice(&buf[..n]);
        Ok(())
    }

    /// Waits up to `wait` for the server to close the connection, collecting what it sends.
    pub fn wait_for_close(&mut self, wait: Duration) -> Closed {
        let deadline = Instant::now() + wait;
        let mut received = std::mem::take(&mut self.pending);
        let mut buf = [0u8; 16 * 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || received.len() > DRAIN_BYTES_MAX {
                return Closed::StillOpen(received);
            }
            let _ = self.stream.set_read_timeout(Some(left));
            match self.stream.read(&mut buf) {
                Ok(0) => return Closed::Closed(received),
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(e) if is_timeout(&e) => return Closed::StillOpen(received),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Closed::Closed(received),
            }
        }
    }

    /// Reads a response (a `100 Continue` too) if one starts to arrive within `wait`; `Ok(None)`
    /// when nothing arrived. Used to see whether the server answered a request head before its
    /// body was sent.
    pub fn early_response(&mut self, wait: Duration) -> io::Result<Option<Response>> {
        self.stream.set_read_timeout(Some(wait))?;
        let mut buf = [0u8; 16 * 1024];
        let first = match self.read_retrying(&mut buf) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed without a response",
                ))
            }
            Ok(n) => n,
            Err(e) if is_timeout(&e) => {
                self.stream
                    .set_read_timeout(Some(Duration::from_millis(IO_TIMEOUT_MS)))?;
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        self.pending.extend_from_slice(&buf[..first]);
        self.stream
            .set_read_timeout(Some(Duration::from_millis(IO_TIMEOUT_MS)))?;
        self.read_response_inner(false, false).map(Some)
    }
}

fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Parses `HTTP/1.1 NNN reason\r\n(name: value\r\n)*\r\n`.
pub fn parse_response_head(head: &[u8]) -> io::Result<(u16, Vec<(String, String)>)> {
    let text = std::str::from_utf8(head).map_err(|_| invalid("response head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let rest = status_line
        .strip_prefix("HTTP/1.1 ")
        .ok_or_else(|| invalid(&format!("not an HTTP/1.1 status line: {status_line:?}")))?;
    let code = rest.get(..3).unwrap_or("");
    let status: u16 = code
        .parse()
        .map_err(|_| invalid(&format!("bad status code in {status_line:?}")))?;
    if !(100..=599).contains(&status) || !(rest.len() == 3 || rest.as_bytes()[3] == b' ') {
        return Err(invalid(&format!("bad status line {status_line:?}")));
    }
    let mut headers = Vec::new();
    for line in lines.filter(|line| !line.is_empty()) {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| invalid(&format!("bad header line {line:?}")))?;
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    Ok((status, headers))
}

/// The one Content-Length of a response (interim 1xx responses have none and are not asked).
fn content_length(headers: &[(String, String)]) -> io::Result<usize> {
    let mut values = headers.iter().filter(|(n, _)| n == "content-length");
    let value = values
        .next()
        .ok_or_else(|| invalid(&format!("response without Content-Length: {headers:?}")))?;
    if values.next().is_some() {
        return Err(invalid("response with two Content-Length fields"));
    }
    value
        .1
        .parse()
        .map_err(|_| invalid(&format!("bad Content-Length {:?}", value.1)))
}

/// `METHOD path HTTP/1.1\r\nHost: tessera-test\r\n[Content-Length: n\r\n]<extra>\r\n`;
/// Content-Length is sent for PUT and for any non-empty body.
pub fn request_head(method: &str, path: &str, body_len: u64, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: tessera-test\r\n");
    if method == "PUT" || body_len > 0 {
        head.push_str(&format!("Content-Length: {body_len}\r\n"));
    }
    for (name, value) in extra {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// One request on a fresh connection; panics with the request on an I/O error.
pub fn request(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> Response {
    Conn::open(addr)
        .and_then(|mut conn| conn.request(method, path, body))
        .unwrap_or_else(|error| panic!("{method} {path} ({} body bytes): {error}", body.len()))
}

pub fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, "GET", path, &[])
}

pub fn head(addr: SocketAddr, path: &str) -> Response {
    request(addr, "HEAD", path, &[])
}

pub fn put(addr: SocketAddr, path: &str, body: &[u8]) -> Response {
    request(addr, "PUT", path, body)
}

/// Sends raw bytes on a fresh connection, half-closes, and reads one response.
pub fn send_raw(addr: SocketAddr, bytes: &[u8]) -> io::Result<Response> {
    let mut conn = Conn::open(addr)?;
    // The server may answer and close before it has read everything (e.g. 431 after its head
    // bound): a failed write is fine as long as the response arrives.
    let _ = conn.send(bytes);
    let _ = conn.shutdown_write();
    conn.read_response()
}

/// Panics unless `/healthz` answers 200: the server is alive and serving.
pub fn assert_serving(addr: SocketAddr) {
    let response = get(addr, "/healthz");
    assert_eq!(response.status, 200, "GET /healthz: {response:?}");
}

/// Panics unless `path` is a miss (404 with `Content-Length: 0`).
pub fn assert_absent(addr: SocketAddr, path: &str) {
    let response = get(addr, path);
    assert_eq!(
        (response.status, response.body.len()),
        (404, 0),
        "GET {path} must be a miss: {response:?}"
    );
}

/// Panics unless `path` reads back exactly `expected`.
pub fn assert_stored(addr: SocketAddr, path: &str, expected: &[u8]) {
    let response = get(addr, path);
    assert_eq!(response.status, 200, "GET {path}: {}", response.text());
    assert!(
        response.body == expected,
        "GET {path}: {} bytes differ from the {} stored",
        response.body.len(),
        expected.len()
    );
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `/cas/<sha256 of bytes>`
pub fn cas_path(bytes: &[u8]) -> String {
    format!("/cas/{}", sha256_hex(bytes))
}

/// SplitMix64: a small, seeded, reproducible generator for blob bytes and fuzz choices.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (bound > 0; the modulo bias is irrelevant here).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
        out
    }

    /// 64 random lowercase hex digits (an AC key or a CAS name with no content behind it).
    pub fn hex64(&mut self) -> String {
        self.bytes(32).iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// A seed for a test: `TESSERA_TEST_SEED` if set (to reproduce a failure), else the clock.
/// Tests print it.
pub fn test_seed() -> u64 {
    if let Some(seed) = std::env::var("TESSERA_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return seed;
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
}
