//! Bazel's gRPC remote cache as a [`Protocol`]: `h2` over monoio (through `monoio-compat`),
//! Tessera's own gRPC framing and the prost messages of `tessera::grpc::pb`.
//!
//! | scheme                          | Get                          | Put               | GetMissing        |
//! |---------------------------------|------------------------------|-------------------|-------------------|
//! | [`GrpcScheme::ByteStream`]      | ByteStream.Read, bytes checked | ByteStream.Write | Read → NOT_FOUND |
//! | [`GrpcScheme::FindMissing`]     | FindMissingBlobs of `batch` stored digests, none missing | Write | FindMissingBlobs of one absent digest |
//!
//! One connection is one HTTP/2 connection carrying one call at a time (the load loop runs one
//! operation per connection), so the numbers compare with HTTP/1.1 keep-alive connections.
//! Writes are sent in [`WRITE_CHUNK_BYTES`] messages; the first names
//! `{instance/}uploads/{uuid}/blobs/{sha256}/{size}`.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use h2::client::SendRequest;
use prost::Message;
use tessera::grpc::framing::{encode_prefix, MessageDecoder};
use tessera::grpc::pb::build::bazel::remote::execution::v2 as reapi;
use tessera::grpc::pb::google::bytestream::{
    ReadRequest, ReadResponse, WriteRequest, WriteResponse,
};

use crate::protocol::{Outcome, Protocol};
use crate::stats::{ErrorKind, RequestError};
use crate::workload::{hex, KeySpace, Operation};

/// Data bytes per WriteRequest: 64 KiB. Bazel 4.2.3 sends 16 KiB chunks; larger messages cost
/// fewer frames and let the server write bigger pieces into a reservation.
pub const WRITE_CHUNK_BYTES: usize = 64 << 10;

/// Largest reply message the client accepts: grpc-java's 4 MiB default, as Bazel.
pub const REPLY_MESSAGE_BYTES_MAX: u32 = 4 << 20;

/// HTTP/2 stream window the client advertises: 1 MiB, grpc-java's (Bazel's) default.
pub const CLIENT_STREAM_WINDOW_BYTES: u32 = 1 << 20;

/// HTTP/2 connection window of the client: 8 MiB.
pub const CLIENT_CONNECTION_WINDOW_BYTES: u32 = 8 << 20;

/// Socket buffer of the monoio-compat adapter in each direction: 256 KiB.
pub const SOCKET_BUFFER_BYTES: usize = 256 << 10;

/// What the gRPC protocol exercises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrpcScheme {
    ByteStream { instance: String },
    FindMissing { instance: String, batch: usize },
}

#[derive(Clone)]
pub struct GrpcProtocol {
    keys: Arc<KeySpace>,
    scheme: GrpcScheme,
}

/// One HTTP/2 connection.
pub struct GrpcConnection {
    client: SendRequest<Bytes>,
    uploads: u64,
}

impl GrpcProtocol {
    pub fn new(keys: Arc<KeySpace>, scheme: GrpcScheme) -> GrpcProtocol {
        GrpcProtocol { keys, scheme }
    }

    fn instance_prefix(&self) -> String {
        let instance = match &self.scheme {
            GrpcScheme::ByteStream { instance } | GrpcScheme::FindMissing { instance, .. } => {
                instance
            }
        };
        if instance.is_empty() {
            String::new()
        } else {
            format!("{instance}/")
        }
    }

    fn instance(&self) -> String {
        self.instance_prefix().trim_end_matches('/').to_string()
    }

    fn digest(&self, index: usize) -> reapi::Digest {
        reapi::Digest {
            hash: self.keys.cas_hex(index),
            size_bytes: self.keys.size(index) as i64,
        }
    }

    async fn read(
        &self,
        connection: &mut GrpcConnection,
        index: usize,
    ) -> Result<Outcome, RequestError> {
        let name = format!(
            "{}blobs/{}/{}",
            self.instance_prefix(),
            self.keys.cas_hex(index),
            self.keys.size(index)
        );
        let reply = read_whole(connection, &name).await?;
        expect_ok(&reply, &name)?;
        let mut data = Vec::with_capacity(self.keys.size(index));
        for message in reply.messages {
            let chunk = ReadResponse::decode(message).map_err(|e| malformed(&name, e))?;
            data.extend_from_slice(&chunk.data);
        }
        if !self.keys.body_matches(index, &data) {
            return Err(RequestError::new(
                ErrorKind::Body,
                format!(
                    "{name}: {} bytes that differ from the stored ones",
                    data.len()
                ),
            ));
        }
        Ok(Outcome {
            body_bytes: data.len() as u64,
            reconnect: false,
        })
    }

    async fn read_missing(
        &self,
        connection: &mut GrpcConnection,
        key: &[u8; 32],
    ) -> Result<Outcome, RequestError> {
        let name = format!("{}blobs/{}/1", self.instance_prefix(), hex(key));
        let reply = read_whole(connection, &name).await?;
        expect_code(&reply, 5, &name)?;
        Ok(Outcome {
            body_bytes: 0,
            reconnect: false,
        })
    }

    async fn write(
        &self,
        connection: &mut GrpcConnection,
        index: usize,
    ) -> Result<Outcome, RequestError> {
        connection.uploads += 1;
        let size = self.keys.size(index);
        let name = format!(
            "{}uploads/bench-{:x}-{}/blobs/{}/{size}",
            self.instance_prefix(),
            std::process::id(),
            connection.uploads,
            self.keys.cas_hex(index),
        );
        let mut body = Vec::with_capacity(size);
        body.extend_from_slice(&self.keys.prefix(index));
        body.extend_from_slice(&self.keys.tail(index));
        let mut messages = Vec::with_capacity(size / WRITE_CHUNK_BYTES + 1);
        let mut offset = 0;
        loop {
            let end = (offset + WRITE_CHUNK_BYTES).min(size);
            let request = WriteRequest {
                resource_name: if offset == 0 {
                    name.clone()
                } else {
                    String::new()
                },
                write_offset: offset as i64,
                finish_write: end == size,
                data: Bytes::copy_from_slice(&body[offset..end]),
            };
            messages.push(Bytes::from(request.encode_to_vec()));
            offset = end;
            if offset == size {
                break;
            }
        }
        let reply = call(
            &connection.client,
            "/google.bytestream.ByteStream/Write",
            messages,
        )
        .await?;
        expect_ok(&reply, &name)?;
        let response = reply
            .messages
            .first()
            .map(|m| WriteResponse::decode(m.clone()))
            .transpose()
            .map_err(|e| malformed(&name, e))?
            .unwrap_or_default();
        if response.committed_size != size as i64 {
            return Err(RequestError::new(
                ErrorKind::Status,
                format!("{name}: committed_size {}", response.committed_size),
            ));
        }
        Ok(Outcome {
            body_bytes: size as u64,
            reconnect: false,
        })
    }

    async fn find_missing(
        &self,
        connection: &mut GrpcConnection,
        digests: Vec<reapi::Digest>,
        expect_missing: usize,
    ) -> Result<Outcome, RequestError> {
        let request = reapi::FindMissingBlobsRequest {
            instance_name: self.instance(),
            blob_digests: digests,
            digest_function: 0,
        };
        let what = "FindMissingBlobs";
        let reply = call(
            &connection.client,
            "/build.bazel.remote.execution.v2.ContentAddressableStorage/FindMissingBlobs",
            vec![Bytes::from(request.encode_to_vec())],
        )
        .await?;
        expect_ok(&reply, what)?;
        let response = reply
            .messages
            .first()
            .map(|m| reapi::FindMissingBlobsResponse::decode(m.clone()))
            .transpose()
            .map_err(|e| malformed(what, e))?
            .unwrap_or_default();
        if response.missing_blob_digests.len() != expect_missing {
            return Err(RequestError::new(
                ErrorKind::Status,
                format!(
                    "{what}: {} digests missing, expected {expect_missing}",
                    response.missing_blob_digests.len()
                ),
            ));
        }
        Ok(Outcome {
            body_bytes: 0,
            reconnect: false,
        })
    }
}

impl Protocol for GrpcProtocol {
    type Connection = GrpcConnection;

    fn name(&self) -> String {
        match &self.scheme {
            GrpcScheme::ByteStream { .. } => "bazel-grpc-bytestream".to_string(),
            GrpcScheme::FindMissing { batch, .. } => format!("bazel-grpc-findmissing-{batch}"),
        }
    }

    async fn connect(&self, address: SocketAddr) -> Result<GrpcConnection, RequestError> {
        let connect_error = |e: &dyn std::fmt::Display| {
            RequestError::new(ErrorKind::Connect, format!("{address}: {e}"))
        };
        let tcp = monoio::net::TcpStream::connect(address)
            .await
            .map_err(|e| connect_error(&e))?;
        let _ = tcp.set_nodelay(true);
        let io = monoio_compat::TcpStreamCompat::new_with_buffer_size(
            tcp,
            SOCKET_BUFFER_BYTES,
            SOCKET_BUFFER_BYTES,
        );
        let (client, connection) = h2::client::Builder::new()
            .initial_window_size(CLIENT_STREAM_WINDOW_BYTES)
            .initial_connection_window_size(CLIENT_CONNECTION_WINDOW_BYTES)
            .handshake::<_, Bytes>(io)
            .await
            .map_err(|e| connect_error(&e))?;
        monoio::spawn(async move {
            let _ = connection.await;
        });
        Ok(GrpcConnection { client, uploads: 0 })
    }

    async fn execute(
        &self,
        connection: &mut GrpcConnection,
        operation: &Operation,
    ) -> Result<Outcome, RequestError> {
        match (operation, &self.scheme) {
            (&Operation::Put { index } | &Operation::Preload { index }, _) => {
                self.write(connection, index).await
            }
            (&Operation::Get { index }, GrpcScheme::ByteStream { .. }) => {
                self.read(connection, index).await
            }
            (Operation::GetMissing { key }, GrpcScheme::ByteStream { .. }) => {
                self.read_missing(connection, key).await
            }
            (&Operation::Get { index }, GrpcScheme::FindMissing { batch, .. }) => {
                let digests = (0..*batch)
                    .map(|i| self.digest((index + i) % self.keys.len()))
                    .collect();
                self.find_missing(connection, digests, 0).await
            }
            (Operation::GetMissing { key }, GrpcScheme::FindMissing { .. }) => {
                let digest = reapi::Digest {
                    hash: hex(key),
                    size_bytes: 1,
                };
                self.find_missing(connection, vec![digest], 1).await
            }
        }
    }
}

/// The messages and status of one call.
struct Reply {
    messages: Vec<Bytes>,
    code: i32,
    message: String,
}

fn malformed(what: &str, error: impl std::fmt::Display) -> RequestError {
    RequestError::new(ErrorKind::Malformed, format!("{what}: {error}"))
}

fn expect_ok(reply: &Reply, what: &str) -> Result<(), RequestError> {
    expect_code(reply, 0, what)
}

fn expect_code(reply: &Reply, code: i32, what: &str) -> Result<(), RequestError> {
    if reply.code == code {
        Ok(())
    } else {
        Err(RequestError::new(
            ErrorKind::Status,
            format!(
                "{what}: grpc-status {} ({}), expected {code}",
                reply.code, reply.message
            ),
        ))
    }
}

fn stream_error(kind: ErrorKind, error: h2::Error) -> RequestError {
    RequestError::new(kind, format!("HTTP/2: {error}"))
}

/// One gRPC call: `messages` (unframed) as the request, the whole reply back.
async fn call(
    client: &SendRequest<Bytes>,
    path: &str,
    messages: Vec<Bytes>,
) -> Result<Reply, RequestError> {
    let mut ready = client
        .clone()
        .ready()
        .await
        .map_err(|e| stream_error(ErrorKind::Closed, e))?;
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("http://tessera{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .expect("static request parts");
    let (response, mut send) = ready
        .send_request(request, false)
        .map_err(|e| stream_error(ErrorKind::Write, e))?;
    // The server may answer before the whole request is sent (a Write of a blob it already
    // holds ends at the first message); then sending fails and the reply decides.
    let mut sent: Result<(), RequestError> = Ok(());
    for message in messages {
        let mut framed = Vec::with_capacity(5 + message.len());
        framed.extend_from_slice(&encode_prefix(message.len() as u32));
        framed.extend_from_slice(&message);
        sent = send_all(&mut send, Bytes::from(framed)).await;
        if sent.is_err() {
            break;
        }
    }
    if sent.is_ok() {
        sent = send
            .send_data(Bytes::new(), true)
            .map_err(|e| stream_error(ErrorKind::Write, e));
    }
    let response = match response.await {
        Ok(response) => response,
        Err(error) => return Err(sent.err().unwrap_or(stream_error(ErrorKind::Read, error))),
    };
    let (parts, mut body) = response.into_parts();
    if body.is_end_stream() {
        return Ok(status_reply(Vec::new(), &parts.headers));
    }
    let mut decoder = MessageDecoder::new(REPLY_MESSAGE_BYTES_MAX);
    let mut replies = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(|e| stream_error(ErrorKind::Read, e))?;
        let _ = body.flow_control().release_capacity(chunk.len());
        decoder.push(chunk);
        while let Some(message) = decoder.next_message().map_err(|e| malformed(path, e))? {
            replies.push(message);
        }
    }
    let trailers = body
        .trailers()
        .await
        .map_err(|e| stream_error(ErrorKind::Read, e))?
        .unwrap_or_default();
    Ok(status_reply(replies, &trailers))
}

fn status_reply(messages: Vec<Bytes>, headers: &http::HeaderMap) -> Reply {
    let code = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let message = headers
        .get("grpc-message")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    Reply {
        messages,
        code,
        message,
    }
}

async fn send_all(send: &mut h2::SendStream<Bytes>, mut data: Bytes) -> Result<(), RequestError> {
    while !data.is_empty() {
        send.reserve_capacity(data.len());
        let granted = loop {
            if send.capacity() > 0 {
                break send.capacity();
            }
            match std::future::poll_fn(|cx| send.poll_capacity(cx)).await {
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(stream_error(ErrorKind::Write, e)),
                None => {
                    return Err(RequestError::new(
                        ErrorKind::Closed,
                        "the server ended the stream during the upload",
                    ))
                }
            }
        };
        let piece = data.split_to(granted.min(data.len()));
        send.send_data(piece, false)
            .map_err(|e| stream_error(ErrorKind::Write, e))?;
    }
    Ok(())
}

/// `ByteStream.Read` of the whole blob `name` (offset 0, no limit).
async fn read_whole(connection: &GrpcConnection, name: &str) -> Result<Reply, RequestError> {
    let request = ReadRequest {
        resource_name: name.to_string(),
        read_offset: 0,
        read_limit: 0,
    };
    call(
        &connection.client,
        "/google.bytestream.ByteStream/Read",
        vec![Bytes::from(request.encode_to_vec())],
    )
    .await
}
