//! The HTTP/1.1 driver on a real glommio executor and loopback TCP: the way the server plugs it
//! in (glommio `TcpStream` + `glommio::timer::sleep`), against a blocking std client.

use std::future::Future;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::Duration;

use tessera::http1::{
    serve, Limits, Outcome, Request, Responder, Service, Sleep, Summary, HTTP2_PREFACE,
};

struct GlommioClock;

impl Sleep for GlommioClock {
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> {
        glommio::timer::sleep(duration)
    }
}

/// `/echo` returns the request body; everything else is a 404.
struct Echo;

impl Service for Echo {
    async fn call(&self, req: &mut Request<'_>, resp: &mut Responder<'_>) -> io::Result<()> {
        if req.head.path() != "/echo" {
            return resp.send(404, b"").await;
        }
        let mut body = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            let n = req.body.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
        resp.send(200, &body).await
    }
}

/// Serves one connection on a glommio executor while `client` talks to it from a std thread.
fn serve_one(client: impl FnOnce(SocketAddr) -> Vec<u8> + Send + 'static) -> (Summary, Vec<u8>) {
    let executor = glommio::LocalExecutorBuilder::default()
        .spawn(move || async move {
            // Port 0: glommio sets SO_REUSEPORT, so never a fixed port.
            let listener = glommio::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let client = std::thread::spawn(move || client(addr));
            let mut stream = listener.accept().await.unwrap();
            let limits = Limits {
                idle_timeout: Duration::from_secs(5),
                ..Limits::default()
            };
            let summary = serve(&mut stream, &Echo, &GlommioClock, &limits).await;
            drop(stream);
            (summary, client)
        })
        .unwrap();
    let (summary, client) = executor.join().unwrap();
    (summary, client.join().unwrap())
}

fn read_response_containing(stream: &mut std::net::TcpStream, output: &mut Vec<u8>, needle: &[u8]) {
    let mut chunk = [0u8; 4096];
    while !output.windows(needle.len()).any(|w| w == needle) {
        let n = stream.read(&mut chunk).unwrap();
        assert!(
            n > 0,
            "server closed before {:?}",
            String::from_utf8_lossy(needle)
        );
        output.extend_from_slice(&chunk[..n]);
    }
}

#[test]
fn pipelined_requests_and_continue_over_tcp() {
    let (summary, output) = serve_one(|addr| {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        let mut output = Vec::new();
        stream
            .write_all(
                b"GET /missing HTTP/1.1\r\nHost: t\r\n\r\n\
                  PUT /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nping",
            )
            .unwrap();
        read_response_containing(&mut stream, &mut output, b"ping");
        let head =
            b"PUT /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n";
        stream.write_all(head).unwrap();
        read_response_containing(&mut stream, &mut output, b"100 Continue\r\n\r\n");
        stream.write_all(b"pong").unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        stream.read_to_end(&mut output).unwrap();
        output
    });
    assert_eq!(summary.requests, 3);
    assert!(
        matches!(summary.outcome, Outcome::PeerClosed),
        "{:?}",
        summary.outcome
    );
    let text = String::from_utf8(output).unwrap();
    // Every final response carries a Date; drop those lines to compare the rest exactly.
    let dates = text.matches("\r\ndate: ").count();
    assert_eq!(dates, 3);
    let text: String = text
        .split("\r\n")
        .filter(|line| !line.starts_with("date: "))
        .collect::<Vec<_>>()
        .join("\r\n");
    let expected = "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n\
                    HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nping\
                    HTTP/1.1 100 Continue\r\n\r\n\
                    HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\npong";
    assert_eq!(text, expected);
}

#[test]
fn h2c_preface_is_handed_back_with_the_stream() {
    let (summary, output) = serve_one(|addr| {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream.write_all(HTTP2_PREFACE).unwrap();
        // The server hands off and drops the stream without writing.
        let mut output = Vec::new();
        stream.read_to_end(&mut output).unwrap();
        output
    });
    assert!(output.is_empty());
    match summary.outcome {
        Outcome::Http2 { buffered } => assert_eq!(buffered, HTTP2_PREFACE),
        other => panic!("{other:?}"),
    }
}
