//! How many uploads the object-store tier runs at once (`tier.uploads`), seen from the far side:
//! the tier is `kind = "http"` pointed at an HTTP server in this test that holds every PUT
//! until enough are in flight together (or a hold time passes), and records the most it saw.
//! An object store answers in tens of milliseconds, so this number sets how fast a backlog of
//! write-behind uploads drains.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use common::http_client::{get, put, sha256_hex, Rng};
use common::Tessera;

/// Longest a held PUT waits for the others before it is answered anyway.
const HOLD_MAX: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Seen {
    in_flight: usize,
    most_in_flight: usize,
    stored: usize,
}

/// The far side: answers PUT with 201 once `gather` PUTs are in flight (or after `hold`), and
/// everything else with 404.
struct HoldingServer {
    port: u16,
    seen: Arc<(Mutex<Seen>, Condvar)>,
}

impl HoldingServer {
    fn start(gather: usize, hold: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new((Mutex::new(Seen::default()), Condvar::new()));
        let shared = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let seen = shared.clone();
                std::thread::spawn(move || serve(stream, &seen, gather, hold));
            }
        });
        HoldingServer { port, seen }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// Waits until `count` PUTs were answered; returns the most that were in flight at once.
    fn most_in_flight_after(&self, count: usize) -> usize {
        let (lock, changed) = &*self.seen;
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut seen = lock.lock().unwrap();
        while seen.stored < count {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "only {} of {count} uploads arrived",
                seen.stored
            );
            seen = changed.wait_timeout(seen, left).unwrap().0;
        }
        seen.most_in_flight
    }
}

/// One keep-alive connection: request heads, bodies by Content-Length.
fn serve(stream: TcpStream, seen: &(Mutex<Seen>, Condvar), gather: usize, hold: Duration) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let method = line.split(' ').next().unwrap_or("").to_owned();
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            if header == "\r\n" {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let answer = if method == "PUT" {
            hold_put(seen, gather, hold);
            "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"
        } else {
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
        };
        if out.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

fn hold_put((lock, changed): &(Mutex<Seen>, Condvar), gather: usize, hold: Duration) {
    let mut seen = lock.lock().unwrap();
    seen.in_flight += 1;
    seen.most_in_flight = seen.most_in_flight.max(seen.in_flight);
    changed.notify_all();
    let until = Instant::now() + hold;
    while seen.most_in_flight < gather {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        seen = changed.wait_timeout(seen, left).unwrap().0;
    }
    seen.in_flight -= 1;
    seen.stored += 1;
    changed.notify_all();
}

/// A node whose tier is `server`, with `tier.uploads = uploads`.
fn node(server: &HoldingServer, uploads: usize) -> Tessera {
    let url = server.url();
    let uploads = uploads.to_string();
    Tessera::start(
        &[
            "--tier-kind",
            "http",
            "--tier-url",
            &url,
            "--tier-uploads",
            &uploads,
        ],
        &[],
    )
}

/// Writes `count` action-cache entries (each acknowledged after its local commit).
fn write_entries(node: &Tessera, count: usize) {
    let mut rng = Rng::new(count as u64);
    for i in 0..count {
        let body: Vec<u8> = (0..2000).map(|_| rng.next_u64() as u8).collect();
        let path = format!("/ac/{}", sha256_hex(format!("entry {i}").as_bytes()));
        assert_eq!(put(node.addr(), &path, &body).status, 200);
        assert_eq!(get(node.addr(), &path).body, body);
    }
}

#[test]
fn the_tier_runs_as_many_uploads_at_once_as_tier_uploads_says() {
    // Sixteen writes, sixteen uploads allowed: the far side sees all sixteen together (it
    // holds each until they are; with fewer allowed it would see fewer).
    let server = HoldingServer::start(16, HOLD_MAX);
    let node = node(&server, 16);
    write_entries(&node, 16);
    assert_eq!(server.most_in_flight_after(16), 16);
}

#[test]
fn the_tier_never_runs_more_uploads_at_once_than_tier_uploads() {
    // Twelve writes, three uploads allowed: the far side waits for twelve in vain (briefly),
    // so it would see more than three if the bound leaked.
    let server = HoldingServer::start(12, Duration::from_millis(300));
    let node = node(&server, 3);
    write_entries(&node, 12);
    assert_eq!(server.most_in_flight_after(12), 3);
}
