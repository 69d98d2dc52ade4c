//! End-to-end tests of the gRPC/HTTP/2 driver (`tessera::grpc::serve`) with a real h2 client
//! over loopback TCP, on a glommio executor, against a small echo service.

mod common;

use common::grpc_client::{
    call, call_raw, connect, frame, grpc_request, grpc_request_with, read_goaway, read_reply,
    run_executor, send_all,
};

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use glommio::timer::sleep;
use tessera::grpc::{
    serve, CallContext, CallKind, Code, ConnectionError, GrpcLimits, GrpcService, RequestStream,
    ResponseSink, Status,
};

// ---------------------------------------------------------------------------------------------
// The echo service
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum Method {
    Unary,
    ServerStream,
    ClientStream,
}

/// What the service observed, for assertions.
#[derive(Default)]
struct Observed {
    /// Client-streaming messages received so far (all calls).
    messages_received: Cell<usize>,
    /// Guards dropped: each call holds one, like a store reservation.
    guards_released: Cell<usize>,
    /// Errors the service saw from `RequestStream::message`.
    request_errors: RefCell<Vec<Status>>,
    /// How each connection ended.
    connection_results: RefCell<Vec<Result<(), String>>>,
    connection_errors: RefCell<Vec<ConnectionError>>,
}

struct Guard(Rc<Observed>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.guards_released.set(self.0.guards_released.get() + 1);
    }
}

struct Echo {
    observed: Rc<Observed>,
}

impl GrpcService for Echo {
    type Method = Method;

    fn route(&self, path: &str) -> Option<(Method, CallKind)> {
        match path {
            "/test.Echo/Unary" => Some((Method::Unary, CallKind::Unary)),
            "/test.Echo/ServerStream" => Some((Method::ServerStream, CallKind::ServerStreaming)),
            "/test.Echo/ClientStream" => Some((Method::ClientStream, CallKind::ClientStreaming)),
            _ => None,
        }
    }

    /// Echoes the request; `fail` → NOT_FOUND; `sleep` → waits 10 s holding a guard.
    async fn unary(&self, _: Method, _: &CallContext, request: Bytes) -> Result<Bytes, Status> {
        let _guard = Guard(self.observed.clone());
        match &request[..] {
            b"fail" => Err(Status::not_found("no such thing: caf\u{e9} 100%")),
            b"sleep" => {
                sleep(Duration::from_secs(10)).await;
                Ok(request)
            }
            b"huge" => Ok(Bytes::from(vec![0u8; 5 << 20])),
            _ => Ok(request),
        }
    }

    /// Request "COUNT SIZE": sends COUNT messages of SIZE bytes, message i filled with byte i.
    async fn server_streaming(
        &self,
        _: Method,
        _: &CallContext,
        request: Bytes,
        responses: &mut ResponseSink,
    ) -> Result<(), Status> {
        if &request[..] == b"think" {
            // Computes for a long time before its first send: does not notice a reset.
            let _guard = Guard(self.observed.clone());
            sleep(Duration::from_secs(10)).await;
            return Ok(());
        }
        let text = std::str::from_utf8(&request).map_err(|_| Status::invalid_argument("utf8"))?;
        let mut numbers = text.split(' ').map(|n| n.parse::<usize>());
        let (Some(Ok(count)), Some(Ok(size))) = (numbers.next(), numbers.next()) else {
            return Err(Status::invalid_argument("want COUNT SIZE"));
        };
        for index in 0..count {
            let byte = index as u8;
            if index % 2 == 0 {
                responses.send(Bytes::from(vec![byte; size])).await?;
            } else {
                // Odd messages go as head + body parts, as ByteStream.Read will send them.
                let head = size.min(3);
                let parts = (
                    Bytes::from(vec![byte; head]),
                    Bytes::from(vec![byte; size - head]),
                );
                responses.send_parts(parts.0, parts.1).await?;
            }
        }
        Ok(())
    }

    /// Answers "MESSAGES BYTES CHECKSUM" over all messages; holds a guard for the call.
    async fn client_streaming(
        &self,
        _: Method,
        _: &CallContext,
        requests: &mut RequestStream,
    ) -> Result<Bytes, Status> {
        let _guard = Guard(self.observed.clone());
        let (mut count, mut bytes, mut checksum) = (0u64, 0u64, 0u64);
        loop {
            match requests.message().await {
                Ok(Some(message)) => {
                    count += 1;
                    bytes += message.len() as u64;
                    checksum = message.iter().fold(checksum, |sum, &b| {
                        sum.wrapping_mul(31).wrapping_add(u64::from(b))
                    });
                    let seen = &self.observed.messages_received;
                    seen.set(seen.get() + 1);
                }
                Ok(None) => break,
                Err(status) => {
                    self.observed
                        .request_errors
                        .borrow_mut()
                        .push(status.clone());
                    return Err(status);
                }
            }
        }
        Ok(Bytes::from(format!("{count} {bytes} {checksum}")))
    }
}

fn reference_checksum(messages: &[Bytes]) -> u64 {
    messages
        .iter()
        .flat_map(|m| m.iter())
        .fold(0u64, |sum, &b| {
            sum.wrapping_mul(31).wrapping_add(u64::from(b))
        })
}

// ---------------------------------------------------------------------------------------------
// Harness: a server on port 0 and an h2 client, both on one glommio executor in a thread
// ---------------------------------------------------------------------------------------------

struct Server {
    addr: SocketAddr,
    observed: Rc<Observed>,
    drain: Rc<Cell<bool>>,
}

/// Starts the echo server; each accepted connection first has `sniffed_bytes` read from it by
/// the harness (as the HTTP/1 sniffer does) and handed to `serve` for replay.
fn start_server(limits: GrpcLimits, sniffed_bytes: usize) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    let addr = listener.local_addr().unwrap();
    let observed = Rc::new(Observed::default());
    let drain = Rc::new(Cell::new(false));
    let service = Rc::new(Echo {
        observed: observed.clone(),
    });
    let limits = Rc::new(limits);
    let (observed_task, drain_task) = (observed.clone(), drain.clone());
    glommio::spawn_local(async move {
        while let Ok(mut stream) = listener.accept().await {
            let (service, limits) = (service.clone(), limits.clone());
            let (observed, drain) = (observed_task.clone(), drain_task.clone());
            glommio::spawn_local(async move {
                let mut sniffed = vec![0u8; sniffed_bytes];
                if stream.read_exact(&mut sniffed).await.is_err() {
                    return;
                }
                let drain_signal = async move {
                    while !drain.get() {
                        sleep(Duration::from_millis(5)).await;
                    }
                };
                // As the HTTP/1 layer does, a sniffing caller keeps the stream and lends it;
                // otherwise the stream is handed over.
                let result = if sniffed_bytes > 0 {
                    serve(&mut stream, sniffed, service, limits, drain_signal).await
                } else {
                    serve(stream, sniffed, service, limits, drain_signal).await
                };
                observed
                    .connection_results
                    .borrow_mut()
                    .push(result.as_ref().map(drop).map_err(|e| e.to_string()));
                if let Err(error) = result {
                    observed.connection_errors.borrow_mut().push(error);
                }
            })
            .detach();
        }
    })
    .detach();
    Server {
        addr,
        observed,
        drain,
    }
}

/// Polls `condition` every 5 ms for up to 5 s.
async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "timed out waiting for {what}"
        );
        sleep(Duration::from_millis(5)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn unary_round_trip_with_every_sniffed_prefix_length() {
    run_executor(|| async {
        // 0: separate listener; 7: inside the preface; 24: the whole preface; 33: preface and
        // the SETTINGS frame header.
        for sniffed in [0usize, 7, 24, 33] {
            let server = start_server(GrpcLimits::default(), sniffed);
            let client = connect(server.addr).await;
            for text in ["hello", "", "second call on the same connection"] {
                let reply = call(&client, "/test.Echo/Unary", &[Bytes::from(text)]).await;
                assert_eq!(reply.status, Status::ok(), "prefix {sniffed}");
                assert_eq!(reply.http_status, Some(http::StatusCode::OK));
                assert_eq!(
                    reply.headers.get("content-type").unwrap(),
                    "application/grpc"
                );
                assert_eq!(reply.messages, [Bytes::from(text)], "prefix {sniffed}");
            }
        }
    });
}

#[test]
fn errors_before_the_first_message_are_trailers_only() {
    run_executor(|| async {
        let server = start_server(GrpcLimits::default(), 0);
        let client = connect(server.addr).await;
        let reply = call(&client, "/test.Echo/Unary", &[Bytes::from("fail")]).await;
        assert!(reply.trailers_only);
        assert_eq!(
            reply.headers.get("content-type").unwrap(),
            "application/grpc"
        );
        assert_eq!(
            reply.headers.get("grpc-message").unwrap(),
            "no such thing: caf%C3%A9 100%25"
        );
        assert_eq!(
            reply.status,
            Status::not_found("no such thing: caf\u{e9} 100%")
        );

        let unknown = call(&client, "/test.Echo/Nope", &[Bytes::from("x")]).await;
        assert!(unknown.trailers_only);
        assert_eq!(
            unknown.status,
            Status::unimplemented("unknown method /test.Echo/Nope")
        );

        let none = call(&client, "/test.Echo/Unary", &[]).await;
        assert_eq!(none.status.code, Code::Internal);
        assert_eq!(
            none.status.message,
            "request stream ended without a message"
        );
        let two = call(
            &client,
            "/test.Echo/Unary",
            &[Bytes::from("a"), Bytes::from("b")],
        )
        .await;
        assert_eq!(two.status.code, Code::Internal);

        let huge = call(&client, "/test.Echo/Unary", &[Bytes::from("huge")]).await;
        assert_eq!(
            huge.status.code,
            Code::ResourceExhausted,
            "{:?}",
            huge.status
        );
    });
}

#[test]
fn non_grpc_requests_get_plain_http_errors() {
    run_executor(|| async {
        let server = start_server(GrpcLimits::default(), 0);
        let client = connect(server.addr).await;
        let mut wrong_type = grpc_request("/test.Echo/Unary");
        wrong_type.headers_mut().insert(
            "content-type",
            http::HeaderValue::from_static("application/json"),
        );
        let reply = call_raw(&client, wrong_type, vec![frame(b"x")]).await;
        assert_eq!(
            reply.http_status,
            Some(http::StatusCode::UNSUPPORTED_MEDIA_TYPE)
        );
        assert!(reply.headers.get("grpc-status").is_none());

        let mut get = grpc_request("/test.Echo/Unary");
        *get.method_mut() = http::Method::GET;
        let mut client = client.clone().ready().await.unwrap();
        let (response, _) = client.send_request(get, true).unwrap();
        let reply = read_reply(response).await;
        assert_eq!(
            reply.http_status,
            Some(http::StatusCode::METHOD_NOT_ALLOWED)
        );
    });
}

#[test]
fn server_streaming_larger_than_every_window() {
    run_executor(|| async {
        let server = start_server(GrpcLimits::default(), 0);
        let client = connect(server.addr).await;
        // 40 × 256 KiB = 10 MiB: more than the 1 MiB stream and 8 MiB connection windows.
        let reply = call(
            &client,
            "/test.Echo/ServerStream",
            &[Bytes::from("40 262144")],
        )
        .await;
        assert_eq!(reply.status, Status::ok());
        assert_eq!(reply.messages.len(), 40);
        for (index, message) in reply.messages.iter().enumerate() {
            assert_eq!(message.len(), 262_144);
            assert!(message.iter().all(|&b| b == index as u8), "message {index}");
        }
        let empty = call(&client, "/test.Echo/ServerStream", &[Bytes::from("0 1")]).await;
        assert!(empty.trailers_only, "no message: the status travels alone");
        assert_eq!(empty.status, Status::ok());
    });
}

#[test]
fn client_streaming_with_a_message_larger_than_the_stream_window() {
    run_executor(|| async {
        let server = start_server(GrpcLimits::default(), 0);
        let client = connect(server.addr).await;
        let messages: Vec<Bytes> = vec![
            Bytes::from("first"),
            Bytes::from(
                (0..3_000_000u32)
                    .map(|i| (i % 251) as u8)
                    .collect::<Vec<u8>>(),
            ),
            Bytes::new(),
            Bytes::from(vec![9u8; 70_000]),
        ];
        let reply = call(&client, "/test.Echo/ClientStream", &messages).await;
        assert_eq!(reply.status, Status::ok());
        let total: usize = messages.iter().map(Bytes::len).sum();
        let expected = format!("4 {total} {}", reference_checksum(&messages));
        assert_eq!(reply.messages, [Bytes::from(expected)]);
        assert_eq!(server.observed.guards_released.get(), 1);
    });
}

#[test]
fn message_over_the_receive_limit_is_resource_exhausted() {
    run_executor(|| async {
        let limits = GrpcLimits {
            message_receive_bytes_max: 1 << 20,
            ..GrpcLimits::default()
        };
        let server = start_server(limits, 0);
        let client = connect(server.addr).await;
        let at_limit = Bytes::from(vec![1u8; 1 << 20]);
        let reply = call(&client, "/test.Echo/ClientStream", &[at_limit]).await;
        assert_eq!(reply.status, Status::ok());
        let over = Bytes::from(vec![1u8; (1 << 20) + 1]);
        let reply = call(&client, "/test.Echo/ClientStream", &[over]).await;
        assert_eq!(
            reply.status,
            Status::resource_exhausted(
                "gRPC message of 1048577 bytes exceeds the limit of 1048576 bytes"
            )
        );
        // The connection is unharmed.
        let reply = call(&client, "/test.Echo/Unary", &[Bytes::from("still here")]).await;
        assert_eq!(reply.messages, [Bytes::from("still here")]);
    });
}

#[test]
fn compressed_flag_without_encoding_is_internal() {
    run_executor(|| async {
        let server = start_server(GrpcLimits::default(), 0);
        let client = connect(server.addr).await;
        let compressed = Bytes::from_static(&[1, 0, 0, 0, 2, b'h', b'i']);
        let reply = call_raw(&client, grpc_request("/test.Echo/Unary"), vec![compressed]).await;
        assert_eq!(reply.status.code, Code::Internal);
        assert!(
            reply.status.message.contains("compressed flag"),
            "{}",
            reply.status
        );
        let gzip = grpc_request_with("/test.Echo/Unary", &[("grpc-encoding", "gzip")]);
        let reply = call_raw(&client, gzip, vec![frame(b"x")]).await;
        assert_eq!(reply.status.code, Code::Unimplemented);
    });
}

#[test]
fn grpc_timeout_is_enforced_and_the_call_is_dropped() {
    run_executor(|| async {
        let server = start_server(GrpcLimits::default(), 0);
        let client = connect(server.addr).await;
        let started = Instant::now();
        let request = grpc_request_with("/test.Echo/Unary", &[("grpc-timeout", "100m")]);
        let reply = call_raw(&client, request, vec![frame(b"sleep")]).await;
        assert_eq!(reply.status.code, Code::DeadlineExceeded);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "not the 10 s sleep"
        );
        eventually("the call's guard to drop", || {
            server.observed.guards_released.get() == 1
        })
        .await;

        let malformed = grpc_request_with("/test.Echo/Unary", &[("grpc-timeout", "1x")]);
        let reply = call_raw(&client, malformed, vec![frame(b"x")]).await;
        assert_eq!(
            reply.status,
            Status::internal("grpc-timeout unit 'x' is not one of H, M, S, m, u, n")
        );
        let generous = grpc_request_with("/test.Echo/Unary", &[("grpc-timeout", "99999999H")]);
        let reply = call_raw(&client, generous, vec![frame(b"ok")]).await;
        assert_eq!(reply.messages, [Bytes::from("ok")]);
    });
}

#[test]
fn client_reset_mid_upload_reaches_the_service_and_releases_its_guard() {
    run_executor(|| async {
        let server = start_server(GrpcLimits::default(), 0);
        let client = connect(server.addr).await;
        let mut ready = client.clone().ready().await.unwrap();
        let (response, mut send) = ready
            .send_request(grpc_request("/test.Echo/ClientStream"), false)
            .unwrap();
        send_all(&mut send, frame(b"part one")).await;
        let observed = server.observed.clone();
        eventually("the first message", || {
            observed.messages_received.get() == 1
        })
        .await;
        send.send_reset(h2::Reason::CANCEL);
        eventually("the guard to drop", || observed.guards_released.get() == 1).await;
        let errors = observed.request_errors.borrow().clone();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].code, Code::Cancelled);
        assert!(errors[0].message.contains("reset"), "{}", errors[0]);
        assert!(response.await.is_err(), "the client reset its own stream");
        // The connection serves on.
        let reply = call(&client, "/test.Echo/Unary", &[Bytes::from("after")]).await;
        assert_eq!(reply.messages, [Bytes::from("after")]);
    });
}

#[test]
fn garbage_frames_get_goaway_and_the_server_keeps_serving() {
    run_executor(|| async {
        let server = start_server(GrpcLimits::default(), 0);
        const SETTINGS_EMPTY: [u8; 9] = [0, 0, 0, 0x4, 0, 0, 0, 0, 0];
        let cases: [(&str, Vec<u8>, u32); 4] = [
            // DATA on stream 0: PROTOCOL_ERROR (RFC 9113 §6.1).
            (
                "data on stream 0",
                vec![0, 0, 1, 0x0, 0, 0, 0, 0, 0, b'x'],
                0x1,
            ),
            // SETTINGS with a length that is not a multiple of 6: RFC 9113 §6.5 asks for
            // FRAME_SIZE_ERROR; h2 answers PROTOCOL_ERROR, which also closes the connection.
            (
                "short settings",
                vec![0, 0, 5, 0x4, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5],
                0x1,
            ),
            // A frame longer than our SETTINGS_MAX_FRAME_SIZE (256 KiB): FRAME_SIZE_ERROR (§4.2).
            ("oversized frame", vec![0x04, 0, 1, 0x0, 0, 0, 0, 0, 1], 0x6),
            // WINDOW_UPDATE with increment 0 on the connection: PROTOCOL_ERROR (§6.9).
            (
                "zero window update",
                vec![0, 0, 4, 0x8, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                0x1,
            ),
        ];
        for (name, garbage, expected_code) in cases {
            let mut raw = TcpStream::connect(server.addr).await.unwrap();
            raw.write_all(tessera::grpc::HTTP2_PREFACE).await.unwrap();
            raw.write_all(&SETTINGS_EMPTY).await.unwrap();
            raw.write_all(&garbage).await.unwrap();
            assert_eq!(read_goaway(&mut raw).await, Some(expected_code), "{name}");
            let mut rest = Vec::new();
            let _ = raw.read_to_end(&mut rest).await;
        }
        let observed = server.observed.clone();
        eventually("four connection results", || {
            observed.connection_results.borrow().len() == 4
        })
        .await;
        for error in observed.connection_errors.borrow().iter() {
            assert!(matches!(error, ConnectionError::Protocol(_)), "{error}");
        }
        let client = connect(server.addr).await;
        let reply = call(&client, "/test.Echo/Unary", &[Bytes::from("unharmed")]).await;
        assert_eq!(reply.messages, [Bytes::from("unharmed")]);
    });
}

#[test]
fn not_a_preface_fails_the_handshake_and_silence_times_out() {
    run_executor(|| async {
        let limits = GrpcLimits {
            handshake_timeout: Duration::from_millis(100),
            ..GrpcLimits::default()
        };
        let server = start_server(limits, 0);
        let mut http1 = TcpStream::connect(server.addr).await.unwrap();
        http1
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let _silent = TcpStream::connect(server.addr).await.unwrap();
        let observed = server.observed.clone();
        eventually("two connection results", || {
            observed.connection_errors.borrow().len() == 2
        })
        .await;
        let errors = observed.connection_errors.borrow();
        assert!(errors
            .iter()
            .any(|e| matches!(e, ConnectionError::Handshake(_))));
        assert!(errors
            .iter()
            .any(|e| matches!(e, ConnectionError::HandshakeTimeout { .. })));
    });
}

#[test]
fn drain_sends_goaway_and_lets_in_flight_calls_finish() {
    run_executor(|| async {
        let server = start_server(GrpcLimits::default(), 0);
        let client = connect(server.addr).await;
        let mut ready = client.clone().ready().await.unwrap();
        let (response, mut send) = ready
            .send_request(grpc_request("/test.Echo/ClientStream"), false)
            .unwrap();
        send_all(&mut send, frame(b"before drain")).await;
        let observed = server.observed.clone();
        eventually("the first message", || {
            observed.messages_received.get() == 1
        })
        .await;
        server.drain.set(true);
        sleep(Duration::from_millis(50)).await;
        send_all(&mut send, frame(b"after drain")).await;
        send.send_data(Bytes::new(), true).unwrap();
        let reply = read_reply(response).await;
        assert_eq!(reply.status, Status::ok());
        let expected = format!(
            "2 23 {}",
            reference_checksum(&[Bytes::from("before drain"), Bytes::from("after drain")])
        );
        assert_eq!(reply.messages, [Bytes::from(expected)]);
        eventually("serve to return", || {
            observed.connection_results.borrow().len() == 1
        })
        .await;
        assert_eq!(observed.connection_results.borrow()[0], Ok(()));
        // A new stream on the drained connection is refused.
        let refused = async {
            let mut ready = client.ready().await?;
            let (response, _) = ready.send_request(grpc_request("/test.Echo/Unary"), true)?;
            response.await.map(drop)
        };
        assert!(refused.await.is_err());
    });
}

#[test]
fn idle_connections_are_closed() {
    run_executor(|| async {
        let limits = GrpcLimits {
            idle_timeout: Duration::from_millis(100),
            ..GrpcLimits::default()
        };
        let server = start_server(limits, 0);
        let client = connect(server.addr).await;
        let reply = call(&client, "/test.Echo/Unary", &[Bytes::from("once")]).await;
        assert_eq!(reply.status, Status::ok());
        let observed = server.observed.clone();
        eventually("the idle close", || {
            observed.connection_results.borrow().len() == 1
        })
        .await;
        assert_eq!(observed.connection_results.borrow()[0], Ok(()));
    });
}

#[test]
fn ping_frames_are_answered() {
    run_executor(|| async {
        let server = start_server(GrpcLimits::default(), 0);
        let mut raw = TcpStream::connect(server.addr).await.unwrap();
        raw.write_all(tessera::grpc::HTTP2_PREFACE).await.unwrap();
        raw.write_all(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]).await.unwrap();
        let payload = *b"tessera!";
        let mut ping = vec![0, 0, 8, 0x6, 0, 0, 0, 0, 0];
        ping.extend_from_slice(&payload);
        raw.write_all(&ping).await.unwrap();
        let mut header = [0u8; 9];
        loop {
            raw.read_exact(&mut header)
                .await
                .expect("a PING ACK before EOF");
            let length = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
            let mut body = vec![0u8; length];
            raw.read_exact(&mut body).await.unwrap();
            if header[3] == 0x6 {
                assert_eq!(header[4] & 0x1, 0x1, "ACK flag");
                assert_eq!(body, payload);
                break;
            }
        }
    });
}

#[test]
fn oversized_header_list_is_refused_and_the_connection_serves_on() {
    run_executor(|| async {
        let limits = GrpcLimits {
            header_list_bytes_max: 4096,
            ..GrpcLimits::default()
        };
        let server = start_server(limits, 0);
        let client = connect(server.addr).await;
        let big = "v".repeat(8192);
        let request = grpc_request_with("/test.Echo/Unary", &[("x-big", big.as_str())]);
        let mut ready = client.clone().ready().await.unwrap();
        let (response, _) = ready.send_request(request, true).unwrap();
        let response = response.await.expect("the server answers 431");
        assert_eq!(
            response.status(),
            http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
        let reply = call(&client, "/test.Echo/Unary", &[Bytes::from("small")]).await;
        assert_eq!(reply.messages, [Bytes::from("small")]);
    });
}

#[test]
fn more_concurrent_calls_than_the_stream_limit_all_complete() {
    run_executor(|| async {
        let limits = GrpcLimits {
            concurrent_streams_max: 8,
            ..GrpcLimits::default()
        };
        let server = start_server(limits, 0);
        let client = connect(server.addr).await;
        // Streams opened before the client has read our SETTINGS may be refused
        // (REFUSED_STREAM, which real clients retry); one call first makes the limit known.
        let warm_up = call(&client, "/test.Echo/Unary", &[Bytes::from("warm")]).await;
        assert_eq!(warm_up.status, Status::ok());
        let calls: Vec<_> = (0..100)
            .map(|index| {
                let client = client.clone();
                glommio::spawn_local(async move {
                    let text = Bytes::from(format!("call {index}"));
                    let reply =
                        call(&client, "/test.Echo/Unary", std::slice::from_ref(&text)).await;
                    assert_eq!(reply.messages, [text]);
                })
            })
            .collect();
        for task in calls {
            task.await;
        }
        assert_eq!(server.observed.guards_released.get(), 101);
    });
}

/// The Python of the grpcio venv that tests/install-deps.sh creates
/// (`TESSERA_GRPCIO_VENV` names another).
fn grpcio_python() -> String {
    let venv = std::env::var("TESSERA_GRPCIO_VENV")
        .unwrap_or_else(|_| "/opt/tessera-tests/grpcio-venv".to_owned());
    format!("{venv}/bin/python")
}

/// Whether `python` runs and can import grpcio.
fn grpcio_available(python: &str) -> bool {
    std::process::Command::new(python)
        .args(["-c", "import grpc"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// A real gRPC client stack (Python grpcio, installed by tests/install-deps.sh) against the
/// driver: unary, errors with percent-encoded messages, deadline, unknown method, server and
/// client streaming.
#[test]
fn python_grpcio_client_interoperates() {
    let python = grpcio_python();
    let client = format!("Python grpcio ({python}, from tests/install-deps.sh)");
    if !common::require_real_client(&client, grpcio_available(&python)) {
        return;
    }
    run_executor(move || async move {
        let server = start_server(GrpcLimits::default(), 0);
        let port = server.addr.port();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/grpc_python_client.py");
        let outcome = std::sync::Arc::new(std::sync::Mutex::new(None));
        let outcome_thread = outcome.clone();
        std::thread::spawn(move || {
            let output = std::process::Command::new(python)
                .arg(script)
                .arg(port.to_string())
                .output();
            *outcome_thread.lock().unwrap() = Some(output);
        });
        let start = Instant::now();
        let output = loop {
            if let Some(output) = outcome.lock().unwrap().take() {
                break output.expect("python3 runs");
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "python client hung"
            );
            sleep(Duration::from_millis(20)).await;
        };
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "stdout: {stdout}\nstderr: {stderr}"
        );
        assert_eq!(stdout.trim(), "OK");
    });
}

#[test]
fn tasks_outliving_reset_streams_are_bounded() {
    run_executor(|| async {
        let limits = GrpcLimits {
            concurrent_streams_max: 2,
            stream_tasks_max: 2,
            ..GrpcLimits::default()
        };
        let server = start_server(limits, 0);
        let client = connect(server.addr).await;
        let warm_up = call(&client, "/test.Echo/Unary", &[Bytes::from("warm")]).await;
        assert_eq!(warm_up.status, Status::ok());
        for _ in 0..2 {
            let mut ready = client.clone().ready().await.unwrap();
            let request = grpc_request("/test.Echo/ServerStream");
            let (_response, mut send) = ready.send_request(request, false).unwrap();
            send_all(&mut send, frame(b"think")).await;
            send.send_data(Bytes::new(), true).unwrap();
            sleep(Duration::from_millis(20)).await;
            send.send_reset(h2::Reason::CANCEL);
        }
        // Both HTTP/2 streams are closed, both tasks still think: the next stream is refused.
        let mut ready = client.clone().ready().await.unwrap();
        let (response, _) = ready
            .send_request(grpc_request("/test.Echo/Unary"), true)
            .unwrap();
        let error = response.await.expect_err("refused");
        assert_eq!(error.reason(), Some(h2::Reason::REFUSED_STREAM));
        assert_eq!(
            server.observed.guards_released.get(),
            1,
            "only the warm-up finished"
        );
    });
}
