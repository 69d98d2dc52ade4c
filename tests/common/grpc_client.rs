//! A small gRPC client for tests: `h2` over a glommio TCP stream (through
//! `tokio_util::compat`), our own framing, `prost` messages. Unary, server-streaming and
//! client-streaming calls, and raw access to the stream for reset and garbage tests.
//!
//! ```ignore
//! run_executor(move || async move {
//!     let client = connect(server.addr()).await;
//!     let caps: reapi::ServerCapabilities = unary(&client, CAPABILITIES, &request).await?;
//!     let reply = call(&client, "/google.bytestream.ByteStream/Read", &[read_request]).await;
//!     assert_eq!(reply.status.code, Code::Ok);
//! });
//! ```

use std::future::Future;
use std::net::SocketAddr;

use bytes::Bytes;
use futures_lite::future::poll_fn;
use glommio::net::TcpStream;
use h2::client::SendRequest;
use prost::Message;
use tessera::grpc::framing::{encode_prefix, MessageDecoder};
use tessera::grpc::Status;
use tokio_util::compat::FuturesAsyncReadCompatExt;

/// Runs `test` on a fresh glommio executor in its own thread.
pub fn run_executor<G, F>(test: G)
where
    G: FnOnce() -> F + Send + 'static,
    F: Future<Output = ()> + 'static,
{
    glommio::LocalExecutorBuilder::default()
        .spawn(test)
        .expect("executor starts")
        .join()
        .expect("test body did not panic");
}

pub async fn connect(addr: SocketAddr) -> SendRequest<Bytes> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (client, connection) = h2::client::Builder::new()
        .initial_window_size(1 << 20)
        .initial_connection_window_size(8 << 20)
        .max_frame_size(1 << 20)
        .handshake::<_, Bytes>(tcp.compat())
        .await
        .expect("client handshake");
    glommio::spawn_local(async move {
        let _ = connection.await;
    })
    .detach();
    client
}

pub fn frame(message: &[u8]) -> Bytes {
    let mut framed = encode_prefix(message.len() as u32).to_vec();
    framed.extend_from_slice(message);
    Bytes::from(framed)
}

pub fn grpc_request(path: &str) -> http::Request<()> {
    grpc_request_with(path, &[])
}

/// A gRPC request head with extra metadata (e.g. `grpc-timeout`).
pub fn grpc_request_with(path: &str, headers: &[(&str, &str)]) -> http::Request<()> {
    let mut builder = http::Request::builder()
        .method("POST")
        .uri(format!("http://127.0.0.1{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).unwrap()
}

/// Everything a call's reply carried.
#[derive(Debug)]
pub struct Reply {
    /// The HTTP status of the response head; `None` when the stream failed before one arrived
    /// (then `status` is CANCELLED and says why).
    pub http_status: Option<http::StatusCode>,
    /// The response head's fields (for a trailers-only reply, the status fields too).
    pub headers: http::HeaderMap,
    /// Whether the status came in the head, with no message and no trailers.
    pub trailers_only: bool,
    pub messages: Vec<Bytes>,
    pub status: Status,
}

impl Reply {
    pub fn ok(self) -> Result<Vec<Bytes>, Status> {
        if self.status.code == tessera::grpc::Code::Ok {
            Ok(self.messages)
        } else {
            Err(self.status)
        }
    }
}

/// Sends `messages` (framed here) as the whole request body and reads the whole reply.
pub async fn call(client: &SendRequest<Bytes>, path: &str, messages: &[Bytes]) -> Reply {
    let body: Vec<Bytes> = messages.iter().map(|m| frame(m)).collect();
    call_raw(client, grpc_request(path), body).await
}

/// Sends `request` with already framed chunks as its body and reads the whole reply.
pub async fn call_raw(
    client: &SendRequest<Bytes>,
    request: http::Request<()>,
    body: Vec<Bytes>,
) -> Reply {
    let mut client = client.clone().ready().await.expect("client ready");
    let (response, mut send) = client.send_request(request, false).expect("send request");
    for chunk in body {
        send_all(&mut send, chunk).await;
    }
    // Fails when the server already ended the call; the reply says why.
    let _ = send.send_data(Bytes::new(), true);
    read_reply(response).await
}

pub async fn unary<M: Message + Default>(
    client: &SendRequest<Bytes>,
    path: &str,
    request: &impl Message,
) -> Result<M, Status> {
    let messages = call(client, path, &[Bytes::from(request.encode_to_vec())])
        .await
        .ok()?;
    assert_eq!(messages.len(), 1, "a unary reply has one message");
    Ok(M::decode(messages[0].clone()).expect("reply decodes"))
}

pub async fn send_all(send: &mut h2::SendStream<Bytes>, mut data: Bytes) {
    while !data.is_empty() {
        send.reserve_capacity(data.len());
        let granted = loop {
            if send.capacity() > 0 {
                break send.capacity();
            }
            match poll_fn(|cx| send.poll_capacity(cx)).await {
                Some(Ok(_)) => continue,
                _ => return,
            }
        };
        let piece = data.split_to(granted.min(data.len()));
        if send.send_data(piece, false).is_err() {
            return;
        }
    }
}

/// Every gRPC message of a response body (flow-control capacity released as it arrives) and
/// the trailers.
pub async fn read_messages(body: &mut h2::RecvStream) -> (Vec<Bytes>, http::HeaderMap) {
    let mut decoder = MessageDecoder::new(64 << 20);
    let mut messages = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.expect("response data");
        let _ = body.flow_control().release_capacity(chunk.len());
        decoder.push(chunk);
        while let Some(message) = decoder.next_message().expect("well-framed reply") {
            messages.push(message);
        }
    }
    decoder.finish().expect("no partial message");
    let trailers = body.trailers().await.expect("trailers").unwrap_or_default();
    (messages, trailers)
}

/// Reads a whole reply: head, messages, trailers.
pub async fn read_reply(response: h2::client::ResponseFuture) -> Reply {
    let response = match response.await {
        Ok(response) => response,
        Err(error) => {
            return Reply {
                http_status: None,
                headers: http::HeaderMap::new(),
                trailers_only: false,
                messages: Vec::new(),
                status: Status::cancelled(format!("stream failed: {error}")),
            }
        }
    };
    let (parts, mut body) = response.into_parts();
    if body.is_end_stream() {
        return Reply {
            http_status: Some(parts.status),
            status: Status::from_trailers(&parts.headers),
            headers: parts.headers,
            trailers_only: true,
            messages: Vec::new(),
        };
    }
    let (messages, trailers) = read_messages(&mut body).await;
    Reply {
        http_status: Some(parts.status),
        headers: parts.headers,
        trailers_only: false,
        messages,
        status: Status::from_trailers(&trailers),
    }
}

/// Reads HTTP/2 frames until a GOAWAY; returns its error code (None if the socket closed first).
pub async fn read_goaway(stream: &mut TcpStream) -> Option<u32> {
    use futures_lite::AsyncReadExt;
    let mut header = [0u8; 9];
    loop {
        stream.read_exact(&mut header).await.ok()?;
        let length = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
        let mut payload = vec![0u8; length];
        stream.read_exact(&mut payload).await.ok()?;
        if header[3] == 0x7 {
            return Some(u32::from_be_bytes(payload[4..8].try_into().unwrap()));
        }
    }
}
