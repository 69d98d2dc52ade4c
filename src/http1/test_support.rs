//! Test doubles: an in-memory duplex stream, a timer-thread clock, a recording service, and a
//! naive response splitter.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures_io::{AsyncRead, AsyncWrite};

use super::{Request, Responder, Service};

struct Pipe {
    bytes: VecDeque<u8>,
    /// Bytes the pipe holds before a write waits for the reader.
    capacity_bytes: usize,
    closed: bool,
    reader: Option<Waker>,
    writer: Option<Waker>,
}

impl Pipe {
    fn new(capacity_bytes: usize) -> Rc<RefCell<Pipe>> {
        Rc::new(RefCell::new(Pipe {
            bytes: VecDeque::new(),
            capacity_bytes,
            closed: false,
            reader: None,
            writer: None,
        }))
    }
}

/// One end of an in-memory duplex byte stream.
pub struct End {
    rx: Rc<RefCell<Pipe>>,
    tx: Rc<RefCell<Pipe>>,
}

/// A duplex whose client-to-server and server-to-client directions hold at most the given bytes.
pub fn duplex_bounded(to_server_bytes: usize, to_client_bytes: usize) -> (End, End) {
    let to_server = Pipe::new(to_server_bytes);
    let to_client = Pipe::new(to_client_bytes);
    let server = End {
        rx: to_server.clone(),
        tx: to_client.clone(),
    };
    (
        server,
        End {
            rx: to_client,
            tx: to_server,
        },
    )
}

impl AsyncRead for End {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut pipe = self.rx.borrow_mut();
        if pipe.bytes.is_empty() {
            if pipe.closed {
                return Poll::Ready(Ok(0));
            }
            pipe.reader = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = buf.len().min(pipe.bytes.len());
        for (slot, byte) in buf.iter_mut().zip(pipe.bytes.drain(..n)) {
            *slot = byte;
        }
        if let Some(waker) = pipe.writer.take() {
            waker.wake();
        }
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for End {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut pipe = self.tx.borrow_mut();
        if pipe.closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let room = pipe.capacity_bytes - pipe.bytes.len();
        if room == 0 {
            pipe.writer = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let buf = &buf[..buf.len().min(room)];
        pipe.bytes.extend(buf);
        if let Some(waker) = pipe.reader.take() {
            waker.wake();
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut pipe = self.tx.borrow_mut();
        pipe.closed = true;
        if let Some(waker) = pipe.reader.take() {
            waker.wake();
        }
        Poll::Ready(Ok(()))
    }
}

type TimerRequest = (Instant, Waker, Arc<AtomicBool>);

/// One background thread that fires every test timer.
fn timer_thread() -> &'static Mutex<mpsc::Sender<TimerRequest>> {
    static SENDER: OnceLock<Mutex<mpsc::Sender<TimerRequest>>> = OnceLock::new();
    SENDER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<TimerRequest>();
        std::thread::spawn(move || {
            let mut pending: Vec<TimerRequest> = Vec::new();
            loop {
                let now = Instant::now();
                pending.retain(|(deadline, waker, fired)| {
                    if *deadline > now {
                        return true;
                    }
                    fired.store(true, Ordering::SeqCst);
                    waker.wake_by_ref();
                    false
                });
                let wait = pending
                    .iter()
                    .map(|(d, _, _)| d.saturating_duration_since(now))
                    .min();
                let next = match wait {
                    Some(wait) => rx.recv_timeout(wait),
                    None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                };
                match next {
                    Ok(request) => pending.push(request),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
        });
        Mutex::new(tx)
    })
}

/// A real-time clock for tests, on any executor.
pub struct TestClock;

struct TestSleep {
    deadline: Instant,
    fired: Arc<AtomicBool>,
}

impl Future for TestSleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.fired.load(Ordering::SeqCst) || Instant::now() >= self.deadline {
            return Poll::Ready(());
        }
        let request = (self.deadline, cx.waker().clone(), self.fired.clone());
        timer_thread().lock().unwrap().send(request).unwrap();
        Poll::Pending
    }
}

impl super::Sleep for TestClock {
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> {
        TestSleep {
            deadline: Instant::now() + duration,
            fired: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// What the recording service saw for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub body: Vec<u8>,
    pub body_error: Option<io::ErrorKind>,
}

/// Routes by path (see each arm) and records every request.
#[derive(Default)]
pub struct Recorder {
    pub seen: RefCell<Vec<Seen>>,
}

/// A body for `/big`, larger than `COALESCE_BODY_BYTES_MAX`.
pub fn big_body() -> Vec<u8> {
    (0..100 * 1024u32).map(|i| (i % 251) as u8).collect()
}

impl Recorder {
    async fn read_all(req: &mut Request<'_>) -> (Vec<u8>, Option<io::ErrorKind>) {
        let mut body = Vec::new();
        let mut chunk = [0u8; 1000];
        loop {
            match req.body.read(&mut chunk).await {
                Ok(0) => return (body, None),
                Ok(n) => body.extend_from_slice(&chunk[..n]),
                Err(e) => return (body, Some(e.kind())),
            }
        }
    }
}

impl Service for Recorder {
    async fn call(&self, req: &mut Request<'_>, resp: &mut Responder<'_>) -> io::Result<()> {
        let head = req.head;
        let mut seen = Seen {
            method: head.method.into(),
            target: head.target.into(),
            body: Vec::new(),
            body_error: None,
        };
        let reads_body = matches!(head.path(), "/echo" | "/fail-body");
        if reads_body {
            (seen.body, seen.body_error) = Self::read_all(req).await;
        }
        self.seen.borrow_mut().push(seen.clone());
        if let Some(kind) = seen.body_error {
            // Propagate like a front-end using `?`: the driver answers.
            return Err(kind.into());
        }
        match head.path() {
            "/echo" => resp.send(200, &seen.body).await,
            "/ignore" => resp.send(200, b"ok").await,
            "/bounded" => {
                let mut body = Vec::new();
                match req.body.read_to_end(&mut body, 8).await {
                    Ok(()) => resp.send(200, &body).await,
                    Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                        resp.send_text(413, "too large").await
                    }
                    Err(e) => Err(e),
                }
            }
            "/big" => resp.send(200, &big_body()).await,
            "/stream" => {
                let mut writer = resp.start(200, 10).await?;
                writer.write_all(b"01234").await?;
                writer.write_all(b"56789").await?;
                writer.finish().await
            }
            "/short" => {
                let mut writer = resp.start(200, 10).await?;
                writer.write_all(b"01234").await
            }
            "/silent" => Ok(()),
            "/close" => {
                resp.close_connection();
                resp.send(200, b"bye").await
            }
            "/header" => {
                resp.header("x-artifact-duration", "12")?;
                resp.send(200, b"").await
            }
            _ => resp.send(404, b"").await,
        }
    }
}

/// A parsed response: status, lower-cased headers, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Splits a byte stream into responses; `head_only[i]` marks a response to HEAD (no body).
/// Interim 1xx responses are included. Panics on malformed output (that is a test failure).
pub fn split_responses(mut bytes: &[u8], head_only: &[bool]) -> Vec<Response> {
    let mut responses = Vec::new();
    let mut final_index = 0;
    while !bytes.is_empty() {
        let end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("response head ends");
        let head = std::str::from_utf8(&bytes[..end]).expect("ASCII head");
        bytes = &bytes[end + 4..];
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        assert!(
            status_line.starts_with("HTTP/1.1 "),
            "status line {status_line:?}"
        );
        let status: u16 = status_line[9..12].parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (n, v) = l.split_once(": ").expect("header line");
                (n.to_ascii_lowercase(), v.to_string())
            })
            .collect();
        let mut response = Response {
            status,
            headers,
            body: Vec::new(),
        };
        if status >= 200 {
            let length: usize = match response.header("content-length") {
                Some(v) => v.parse().unwrap(),
                None => {
                    assert_eq!(status, 204, "every response but 204 carries Content-Length");
                    0
                }
            };
            if !head_only.get(final_index).copied().unwrap_or(false) {
                assert!(bytes.len() >= length, "body of {length} bytes present");
                response.body = bytes[..length].to_vec();
                bytes = &bytes[length..];
            }
            final_index += 1;
        }
        responses.push(response);
    }
    responses
}
