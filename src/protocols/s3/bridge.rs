//! Our HTTP/1.1 request in, s3s's `http::Response` out, both streaming.
//!
//! ```text
//! Request (head + Body) ─► http::Request<s3s::Body>   body: pump ─► BODY_QUEUE_CHUNKS ─► s3s
//!                                   │ S3Service::call (auth, XML, handler)
//!                                   │   handler ─► StoreLink ─► link::serve (this task) ─► Backend
//! Responder ◄─ http::Response<s3s::Body>: head, then frames written as they come
//! ```
//!
//! The s3s call, the body pump and the store link's server run concurrently in the
//! connection's task; when the call ends, the other two stop with it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::channel::mpsc;
use futures::future::{self, Either};
use futures::{FutureExt, SinkExt, Stream, StreamExt};
use s3s::service::S3Service;
use s3s::stream::{ByteStream, RemainingLength};
use s3s::StdError;

use crate::auth::audit::{AuditLog, Entry};
use crate::http1::{Body, Request, RequestHead, Responder};
use crate::protocols::backend::{Backend, Identity, Namespace, Protocol, RequestContext};
use crate::store::StoreError;

use super::keys::Peer;
use super::link::{self, StoreLink};

/// Bytes read from the connection per body chunk handed to s3s.
pub const BODY_CHUNK_BYTES: usize = 64 * 1024;

/// Body chunks buffered between the connection and s3s (bounds an upload's memory to
/// `BODY_CHUNK_BYTES × (BODY_QUEUE_CHUNKS + 1)`).
pub const BODY_QUEUE_CHUNKS: usize = 4;

/// Largest response body of unknown length collected before sending (s3s's XML answers; object
/// bodies always have a length).
pub const COLLECTED_RESPONSE_BYTES_MAX: usize = 16 << 20;

/// The request body as s3s reads it: chunks from the pump, with the declared length.
struct PumpedBody {
    rx: mpsc::Receiver<Result<Bytes, StdError>>,
    remaining: Option<u64>,
}

impl Stream for PumpedBody {
    type Item = Result<Bytes, StdError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.rx.poll_next_unpin(cx);
        if let Poll::Ready(Some(Ok(bytes))) = &polled {
            let len = bytes.len() as u64;
            if let Some(remaining) = &mut self.remaining {
                *remaining = remaining.saturating_sub(len);
            }
        }
        polled
    }
}

impl ByteStream for PumpedBody {
    fn remaining_length(&self) -> RemainingLength {
        match self.remaining.and_then(|r| usize::try_from(r).ok()) {
            Some(r) => RemainingLength::new_exact(r),
            None => RemainingLength::unknown(),
        }
    }
}

/// Reads the connection's body into `tx` until it ends, fails, or s3s stops reading. A failure
/// (truncated or malformed body, stall) is also kept in `failed` for the driver to answer.
async fn pump(
    body: &mut Body<'_>,
    mut tx: mpsc::Sender<Result<Bytes, StdError>>,
    failed: &std::cell::Cell<Option<io::ErrorKind>>,
) {
    let mut buf = vec![0u8; BODY_CHUNK_BYTES];
    loop {
        if future::poll_fn(|cx| tx.poll_ready(cx)).await.is_err() {
            return;
        }
        match body.read(&mut buf).await {
            Ok(0) => return,
            Ok(n) => {
                if tx
                    .send(Ok(Bytes::copy_from_slice(&buf[..n])))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(e) => {
                failed.set(Some(e.kind()));
                let _ = tx.send(Err(Box::new(e))).await;
                return;
            }
        }
    }
}

/// A 400 in S3's XML form, for a request s3s cannot even be given.
async fn bad_request(responder: &mut Responder<'_>, message: &str) -> io::Result<()> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InvalidRequest</Code><Message>{}</Message></Error>",
        message.replace('&', "&amp;").replace('<', "&lt;")
    );
    responder.header("content-type", "application/xml")?;
    responder.close_connection();
    responder.send(400, body.as_bytes()).await
}

/// Response headers the HTTP/1.1 driver writes itself.
fn driver_header(name: &http::HeaderName) -> bool {
    matches!(
        name.as_str(),
        "content-length" | "transfer-encoding" | "connection" | "keep-alive" | "date"
    )
}

/// Where the bridge writes the refusals s3s makes before its access check (an unknown access
/// key, a wrong signature), and the `s3.domain` that names a bucket in the host.
pub struct Audit<'a> {
    pub log: &'a AuditLog,
    pub domain: Option<&'a str>,
}

/// The bucket a request names: the host's first label under `domain`, else the path's first
/// segment.
fn bucket_of(head: &RequestHead<'_>, domain: Option<&str>) -> Option<String> {
    if let (Some(domain), Some(host)) = (domain, head.header("host")) {
        let host = String::from_utf8_lossy(host);
        let host = host.rsplit_once(':').map_or(&*host, |(name, _)| name);
        if let Some(bucket) = host.strip_suffix(domain).and_then(|h| h.strip_suffix('.')) {
            return Some(bucket.to_owned());
        }
    }
    let path = head.target.split('?').next().unwrap_or("");
    let bucket = path.trim_start_matches('/').split('/').next()?;
    (!bucket.is_empty()).then(|| bucket.to_owned())
}

/// The text of the first `<name>` element of an S3 error document, entities decoded.
fn element<'t>(xml: &'t str, name: &str) -> Option<std::borrow::Cow<'t, str>> {
    let start = xml.find(&format!("<{name}>"))? + name.len() + 2;
    let end = start + xml[start..].find(&format!("</{name}>"))?;
    let text = &xml[start..end];
    if !text.contains('&') {
        return Some(text.into());
    }
    Some(
        text.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&")
            .into(),
    )
}

/// Writes the audit line of a 403 s3s answered before its access check ran (the credential
/// lookup or the signature refused the request) and gives the response back unchanged.
async fn audit_early_refusal(
    audit: &Audit<'_>,
    head: &RequestHead<'_>,
    remote: Option<std::net::SocketAddr>,
    response: http::Response<s3s::Body>,
) -> io::Result<http::Response<s3s::Body>> {
    let (parts, mut body) = response.into_parts();
    let bytes = body
        .store_all_limited(COLLECTED_RESPONSE_BYTES_MAX)
        .await
        .map_err(|e| io::Error::other(e.to_string()))?;
    let text = String::from_utf8_lossy(&bytes);
    let code = element(&text, "Code").unwrap_or_default();
    let message = element(&text, "Message").unwrap_or_default();
    let reason = match &*code {
        "InvalidAccessKeyId" => "unknown_key",
        "SignatureDoesNotMatch" => "bad_signature",
        "RequestTimeTooSkewed" => "clock_skew",
        _ => "signature",
    };
    let namespace =
        bucket_of(head, audit.domain).map_or_else(|| "s3".to_owned(), |b| link::objects(&b));
    let ctx = RequestContext::new(Namespace::new(namespace), Protocol::S3).with_remote(remote);
    let error = StoreError::Unauthenticated {
        reason,
        message: format!("{code}: {message}"),
    };
    let operation = match head.method {
        "GET" | "HEAD" => "read",
        _ => "write",
    };
    audit.log.record(
        &ctx,
        &Entry {
            subject: "unverified",
            jti: None,
            operation,
            key: None,
            bytes: None,
            outcome: Err(&error),
        },
    );
    Ok(http::Response::from_parts(parts, s3s::Body::from(bytes)))
}

/// Serves one S3 request through `service`, with store work on `backend`; `remote` is the peer
/// (the audit log's address), `audit` where refusals made before the store are written.
pub async fn handle<B: Backend>(
    service: &S3Service,
    (link, commands): (StoreLink, mpsc::Receiver<(Identity, link::Command)>),
    backend: &B,
    (remote, audit): (Option<std::net::SocketAddr>, Option<Audit<'_>>),
    request: &mut Request<'_>,
    responder: &mut Responder<'_>,
) -> io::Result<()> {
    let head = request.head;
    let mut builder = http::Request::builder()
        .method(head.method)
        .uri(head.target)
        .version(http::Version::HTTP_11);
    for header in head.headers {
        builder = builder.header(header.name, header.value);
    }
    let (tx, rx) = mpsc::channel(BODY_QUEUE_CHUNKS);
    let body = PumpedBody {
        rx,
        remaining: request.body.declared_len(),
    };
    let peer = Peer {
        remote,
        checked: Default::default(),
    };
    let checked = peer.checked.clone();
    let http_request = match builder
        .extension(link)
        .extension(peer)
        .body(s3s::Body::from(Box::pin(body) as s3s::stream::DynByteStream))
    {
        Ok(r) => r,
        Err(e) => return bad_request(responder, &format!("malformed request: {e}")).await,
    };
    // A parser panic inside s3s on a malformed request (0.14.1 subtracts with overflow on a
    // non-digit in a credential date) must not take the executor down: it becomes a 400.
    let call = std::panic::AssertUnwindSafe(service.call(http_request)).catch_unwind();
    let failed = std::cell::Cell::new(None);
    let helpers = async {
        future::join(
            pump(&mut request.body, tx, &failed),
            link::serve(backend, commands, remote),
        )
        .await;
        future::pending::<()>().await
    };
    futures::pin_mut!(call, helpers);
    let response = match future::select(call, helpers).await {
        Either::Left((response, _)) => response,
        Either::Right(((), _)) => unreachable!("the helpers never finish first"),
    };
    let response = match response {
        Ok(Ok(response)) => response,
        Err(_) => {
            tracing::warn!("s3s panicked on a malformed request; answered 400");
            return bad_request(responder, "the request could not be parsed").await;
        }
        Ok(Err(e)) => {
            tracing::warn!(error = ?e, "s3 request failed");
            return responder
                .send_text(500, "the S3 request could not be served")
                .await;
        }
    };
    let response = match &audit {
        Some(audit)
            if response.status() == http::StatusCode::FORBIDDEN
                && !checked.load(std::sync::atomic::Ordering::Relaxed) =>
        {
            audit_early_refusal(audit, &head, remote, response).await?
        }
        _ => response,
    };
    if let Some(kind) = failed.get() {
        if response.status().is_server_error() {
            // s3s reports a body it could not read as an internal error; the request body's
            // own failure is the answer (400, 408, …), given by the driver.
            return Err(io::Error::new(kind, "the request body could not be read"));
        }
    }
    write_response(response, responder).await
}

/// Writes an s3s response: its headers, then its body as it streams.
async fn write_response(
    response: http::Response<s3s::Body>,
    responder: &mut Responder<'_>,
) -> io::Result<()> {
    let (parts, mut body) = response.into_parts();
    let status = parts.status.as_u16();
    for (name, value) in &parts.headers {
        if !driver_header(name) {
            responder.header(name.as_str(), value.as_bytes())?;
        }
    }
    if status == 304 || status == 204 {
        return responder.send(status, b"").await;
    }
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let Some(length) = declared.or_else(|| body.remaining_length().exact().map(|n| n as u64))
    else {
        let bytes = body
            .store_all_limited(COLLECTED_RESPONSE_BYTES_MAX)
            .await
            .map_err(|e| io::Error::other(e.to_string()))?;
        return responder.send(status, &bytes).await;
    };
    let mut writer = responder.start(status, length).await?;
    while let Some(frame) = body.next().await {
        let bytes = frame.map_err(|e| io::Error::other(e.to_string()))?;
        writer.write_all(&bytes).await?;
    }
    writer.finish().await
}
