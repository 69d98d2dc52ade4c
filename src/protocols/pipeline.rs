//! The transfer pipeline: GET, HEAD, PUT and DELETE of one keyed entry, shared by every HTTP
//! front-end, and the one mapping of store errors to HTTP statuses.
//!
//! A front-end parses its client's path into a namespace and an [`ObjectKey`], then hands the
//! request to a [`Transfer`]. Everything else is here:
//!
//! ```text
//! PUT:  body length (Content-Length, or a chunked body spooled within SpoolBudget)
//!       ─► reserve (413 / 507 before any body byte is read)
//!       ─► Exists? read and drop the body; 200 (CAS) or the dialect's `exists` answer (Nx: 409)
//!       ─► fill the reservation from the body ─► commit ─► the dialect's `stored` answer
//!       any failure: the reservation is aborted (dropping a `PendingPut` aborts it)
//! GET:  lookup ─► 200 + body, Content-Type and the dialect's kept headers from the record's
//!       metadata ─► or the dialect's `miss` (404, Content-Length: 0); a body still streaming
//!       in from the object-store tier is sent as it arrives (see `Transfer::get`)
//! ```
//!
//! A [`Dialect`] shapes answers where a client needs another shape: Nx fails a task on any PUT
//! status other than 200, 403 and 409, Turborepo wants a JSON error body. The default dialect
//! answers with the precise status and a plain-text message.
//!
//! [`PendingPut`] is the reserve → write → commit core on its own, for front-ends whose bodies
//! do not come from an HTTP/1.1 request (gRPC batch updates and ByteStream writes).

use std::borrow::Cow;
use std::cell::Cell;
use std::io;

use crate::http1::{Request, Responder};
use crate::metrics::latency::{Operation, Outcome};
use crate::store::{ContentDigest, Meta, Reservation, Reserved, StoreError};

use super::backend::{Backend, Body, ObjectKey, Protocol, Put, RequestContext};
use super::body::Streaming;
use super::upload::{
    discard_body, fill_reservation, FillError, SpoolBudget, SpoolError, CHUNKED_UPLOAD_BYTES_MAX,
};

/// The operation a refusal answers (dialects shape refusals per operation).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Op {
    Get,
    Put,
    Delete,
    /// Anything else a front-end serves (status, events, …).
    Other,
}

impl Op {
    /// The timed operation this is; `Other` is not timed.
    pub fn timed(self) -> Option<Operation> {
        match self {
            Op::Get => Some(Operation::Get),
            Op::Put => Some(Operation::Put),
            Op::Delete => Some(Operation::Delete),
            Op::Other => None,
        }
    }

    /// The operation of an HTTP method.
    pub fn of_method(method: &str) -> Op {
        match method {
            "GET" | "HEAD" => Op::Get,
            "PUT" | "POST" => Op::Put,
            "DELETE" => Op::Delete,
            _ => Op::Other,
        }
    }
}

/// A complete small response: status, content type and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Cow<'static, str>,
}

impl Answer {
    /// A `text/plain` answer whose body is `message` and a newline (empty stays empty).
    pub fn text(status: u16, message: impl Into<Cow<'static, str>>) -> Answer {
        let mut body: Cow<'static, str> = message.into();
        if !body.is_empty() {
            body.to_mut().push('\n');
        }
        Answer {
            status,
            content_type: "text/plain; charset=utf-8",
            body,
        }
    }

    /// A bodiless answer.
    pub fn empty(status: u16) -> Answer {
        Answer {
            status,
            content_type: "",
            body: Cow::Borrowed(""),
        }
    }

    /// An `application/json` answer.
    pub fn json(status: u16, body: String) -> Answer {
        Answer {
            status,
            content_type: "application/json",
            body: Cow::Owned(body),
        }
    }

    /// Sends it. An empty content type sends none.
    pub async fn send(&self, responder: &mut Responder<'_>) -> io::Result<()> {
        if !self.content_type.is_empty() {
            responder.header("content-type", self.content_type)?;
        }
        responder.send(self.status, self.body.as_bytes()).await
    }
}

/// How one client protocol wants its answers shaped. Every method has the default a generic
/// HTTP cache client expects; a front-end overrides only what its client needs.
pub trait Dialect {
    /// The answer to a refusal with the precise `status` and `message`.
    fn refusal(&self, op: Op, status: u16, message: &str) -> Answer {
        let _ = op;
        Answer::text(status, message.to_owned())
    }

    /// A miss on GET or HEAD: 404 with `Content-Length: 0` (Bazel needs the length).
    fn miss(&self) -> Answer {
        Answer::empty(404)
    }

    /// A stored PUT.
    fn stored(&self) -> Answer {
        Answer::empty(200)
    }

    /// A PUT whose key was already stored and kept (`Put::if_absent`).
    fn exists(&self) -> Answer {
        self.refusal(Op::Put, 409, "an entry with this key is already stored")
    }

    /// Request headers kept in the record's metadata on PUT and sent back on GET/HEAD,
    /// lowercase. `content-type` is always kept.
    fn kept_headers(&self) -> &'static [&'static str] {
        &[]
    }

    /// Largest body of a PUT refused before its first byte (too large, no space, …) that is
    /// read to its end and dropped before the answer, so that a client still sending it reads
    /// the answer instead of a reset. 0 (the default): the answer goes out at once and the
    /// driver closes the connection after at most its drain bound, which suits clients that
    /// take a reset like the refusal.
    fn refused_body_drain_bytes_max(&self) -> u64 {
        0
    }
}

/// The default dialect: precise statuses, plain-text messages.
pub struct Plain;

impl Dialect for Plain {}

/// Content type of a stored entry that was stored without one.
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// The metadata name of the content type.
const CONTENT_TYPE: &str = "content-type";

/// What a client sees of an operating error (`Io`, `Corrupt`, …): the details (paths, OS
/// errors) are in the server's log only.
pub const INTERNAL_ERROR_TEXT: &str = "internal storage error (details are in the server log)";

/// The precise HTTP status of a store error and the message a client may see. Operating
/// errors (`Io`, `Corrupt`, …) are logged with their details here and reach the client only as
/// a generic message: no server path or OS error text leaves the server.
pub fn status_of(error: &StoreError) -> (u16, Cow<'static, str>) {
    let status = match error {
        StoreError::TooLarge { .. } => 413,
        StoreError::NoSpace { .. } | StoreError::NamespaceTableFull { .. } => 507,
        StoreError::NamespaceTooLong { .. } => 400,
        StoreError::DigestMismatch { .. }
        | StoreError::Truncated { .. }
        | StoreError::Overflow { .. }
        | StoreError::MetaTooLarge { .. } => 400,
        StoreError::Exists => 409,
        StoreError::Unauthenticated { .. } => 401,
        StoreError::PermissionDenied { .. } => 403,
        StoreError::RateLimited { .. } => 429,
        StoreError::TooManyReservations { .. } | StoreError::Unavailable { .. } => 503,
        _ => {
            tracing::error!(%error, "store error");
            return (
                500,
                Cow::Borrowed("internal storage error (see the server log)"),
            );
        }
    };
    (status, Cow::Owned(error.to_string()))
}

/// The `WWW-Authenticate` challenge every 401 carries (RFC 6750 §3), so a client knows to send
/// a bearer token.
pub const BEARER_CHALLENGE: &str = "Bearer realm=\"tessera\"";

/// Adds the bearer challenge to a 401.
pub fn challenge(responder: &mut Responder<'_>, status: u16) -> io::Result<()> {
    if status == 401 {
        responder.header("www-authenticate", BEARER_CHALLENGE)?;
    }
    Ok(())
}
/// What a request did, as the latency histograms label it (`metrics::latency`).
pub type Timed = (Protocol, Operation, Outcome);

/// One request's transfer: the backend, its context and the client's dialect.
pub struct Transfer<'a, B, D> {
    pub backend: &'a B,
    pub ctx: &'a RequestContext,
    pub dialect: &'a D,
    /// Memory for chunked (length-unknown) uploads of this executor.
    pub spool: &'a SpoolBudget,
    /// Set by the answering steps below to what the request did; the router times the request
    /// and records it under this label (one hook for every HTTP front-end).
    pub timed: &'a Cell<Option<Timed>>,
}

impl<B: Backend, D: Dialect> Transfer<'_, B, D> {
    /// Labels this request for the latency histograms.
    pub fn mark(&self, operation: Operation, outcome: Outcome) {
        self.timed
            .set(Some((self.ctx.protocol, operation, outcome)));
    }

    /// Answers a refusal in the client's dialect.
    pub async fn refuse(
        &self,
        responder: &mut Responder<'_>,
        op: Op,
        status: u16,
        message: &str,
    ) -> io::Result<()> {
        if let Some(operation) = op.timed() {
            self.mark(operation, Outcome::of_http_refusal(status));
        }
        self.dialect
            .refusal(op, status, message)
            .send(responder)
            .await
    }

    /// Answers a store error in the client's dialect.
    pub async fn refuse_store(
        &self,
        responder: &mut Responder<'_>,
        op: Op,
        error: &StoreError,
    ) -> io::Result<()> {
        let (status, message) = status_of(error);
        challenge(responder, status)?;
        if let StoreError::RateLimited { retry_after, .. } = error {
            // Whole seconds, rounded up (RFC 9110 §10.2.3).
            let seconds = retry_after.as_millis().div_ceil(1000).max(1);
            responder.header("retry-after", seconds.to_string())?;
        }
        self.refuse(responder, op, status, &message).await
    }

    /// GET or HEAD of `key`: a hit with its content type and kept headers, or a miss.
    ///
    /// A GET may be answered while its body still streams in from an object-store tier
    /// ([`Backend::lookup_body`]): the head goes out with the announced `Content-Length`, the
    /// bytes as they arrive. If the body then breaks off or fails verification, the connection
    /// is closed short of `Content-Length`, which every HTTP client reads as a failed download.
    /// A HEAD waits for the committed record (its 200 then promises a verified body).
    pub async fn get(&self, key: &ObjectKey<'_>, responder: &mut Responder<'_>) -> io::Result<()> {
        let found = match responder.is_head_request() {
            true => self
                .backend
                .lookup(self.ctx, key)
                .await
                .map(|found| found.map(Body::Committed)),
            false => self.backend.lookup_body(self.ctx, key).await,
        };
        match found {
            Ok(Some(Body::Committed(handle))) => {
                self.send_hit(handle.meta(), handle.body(), responder).await
            }
            Ok(Some(Body::Streaming(streaming))) => self.send_streaming(streaming, responder).await,
            Ok(None) => self.get_miss(responder).await,
            Err(error) => self.refuse_store(responder, Op::Get, &error).await,
        }
    }

    /// Sends a hit whose body is still streaming in, each chunk as it arrives. The head waits
    /// for the first chunk: a body that fails before any byte of it is here (an object of one
    /// chunk that fails verification, a download that breaks at once) is answered as the miss
    /// it is, as before streaming.
    async fn send_streaming(
        &self,
        mut streaming: Streaming,
        responder: &mut Responder<'_>,
    ) -> io::Result<()> {
        let first = match streaming.next().await {
            Ok(first) => first,
            Err(broken) => {
                tracing::warn!(namespace = %self.ctx.namespace, "{broken}; answered as a miss");
                return self.get_miss(responder).await;
            }
        };
        self.mark(Operation::Get, Outcome::Hit);
        self.hit_headers(streaming.meta(), responder)?;
        let mut writer = responder.start(200, streaming.len()).await?;
        let mut next = Ok(first);
        loop {
            match next {
                Ok(Some(bytes)) => {
                    writer.write_all(&bytes).await?;
                    writer.flush().await?;
                }
                Ok(None) => return writer.finish().await,
                Err(broken) => {
                    self.mark(Operation::Get, Outcome::Error);
                    tracing::warn!(
                        namespace = %self.ctx.namespace,
                        sent = streaming.len() - writer.remaining(),
                        "{broken}; closing the connection short of Content-Length"
                    );
                    return Err(io::Error::other(broken));
                }
            }
            next = streaming.next().await;
        }
    }

    /// Answers a miss in the client's dialect.
    pub async fn get_miss(&self, responder: &mut Responder<'_>) -> io::Result<()> {
        self.mark(Operation::Get, Outcome::Miss);
        self.dialect.miss().send(responder).await
    }

    /// Sends a stored entry (for front-ends that check a hit before serving it).
    pub async fn send_hit(
        &self,
        meta: &Meta,
        body: &[u8],
        responder: &mut Responder<'_>,
    ) -> io::Result<()> {
        self.mark(Operation::Get, Outcome::Hit);
        self.hit_headers(meta, responder)?;
        responder.send(200, body).await
    }

    /// A hit's content type and the dialect's kept headers, from the record's metadata.
    fn hit_headers(&self, meta: &Meta, responder: &mut Responder<'_>) -> io::Result<()> {
        let content_type = meta
            .get(CONTENT_TYPE)
            .unwrap_or(DEFAULT_CONTENT_TYPE.as_bytes());
        responder.header(CONTENT_TYPE, content_type)?;
        for name in self.dialect.kept_headers() {
            if let Some(value) = meta.get(name) {
                responder.header(name, value)?;
            }
        }
        Ok(())
    }

    /// The metadata a PUT keeps: its content type and the dialect's kept headers. A header the
    /// store cannot keep (over `META_BYTES_MAX`) is a 400.
    pub fn kept_meta(&self, request: &Request<'_>) -> Result<Meta, StoreError> {
        let mut meta = Meta::new();
        let names =
            std::iter::once(CONTENT_TYPE).chain(self.dialect.kept_headers().iter().copied());
        for name in names {
            if let Some(value) = request.head.header(name) {
                meta.push(name, value)?;
            }
        }
        Ok(meta)
    }

    /// PUT of `key` from the request body. `expect` is the digest a CAS body must hash to;
    /// `if_absent` keeps an existing entry (answered with the dialect's `exists`).
    pub async fn put(
        &self,
        key: ObjectKey<'_>,
        meta: Meta,
        expect: Option<ContentDigest>,
        if_absent: bool,
        request: &mut Request<'_>,
        responder: &mut Responder<'_>,
    ) -> io::Result<()> {
        // A chunked body has no length to reserve yet: hold it in memory first, within bounds.
        let spooled = match request.body.declared_len() {
            Some(_) => None,
            None => match self.spool.spool(&mut request.body).await {
                Ok(spooled) => Some(spooled),
                Err(SpoolError::TooLarge) => {
                    let message = format!(
                        "a chunked upload may hold at most {CHUNKED_UPLOAD_BYTES_MAX} bytes; send Content-Length for larger bodies"
                    );
                    responder.close_connection();
                    return self.refuse(responder, Op::Put, 413, &message).await;
                }
                Err(SpoolError::Busy) => {
                    let message =
                        "too many chunked uploads in progress; retry or send Content-Length";
                    return self.refuse(responder, Op::Put, 503, message).await;
                }
                Err(SpoolError::Body(error)) => return Err(error),
            },
        };
        let body_len = match &spooled {
            Some(spooled) => spooled.bytes.len() as u64,
            None => request.body.declared_len().unwrap_or(0),
        };
        let put = Put {
            key,
            body_len,
            meta,
            expect,
            if_absent,
        };
        let mut pending = match PendingPut::begin(self.backend, self.ctx, &put).await {
            Ok(Some(pending)) => pending,
            Ok(None) => {
                // Already stored: the body is still read (and dropped) so the connection stays
                // usable and the client sees a clean answer rather than a reset mid-upload.
                if spooled.is_none() {
                    discard_body(&mut request.body).await?;
                }
                return match if_absent {
                    true => self.send_exists(responder).await,
                    false => self.send_stored(responder).await,
                };
            }
            Err(error) => {
                // Refused before the body was read: the client may still be sending it, and a
                // client waiting for `100 Continue` never will, so the driver decides whether
                // the connection can be reused (unless the dialect has the body read first).
                if spooled.is_none() {
                    self.drain_refused_body(request).await?;
                }
                return self.refuse_store(responder, Op::Put, &error).await;
            }
        };
        let filled = match &spooled {
            Some(spooled) => pending.write(&spooled.bytes).map_err(FillError::Store),
            None => fill_reservation(&mut request.body, pending.reservation_mut()).await,
        };
        match filled {
            Ok(()) => {}
            // The body's own status (400, 408, 413) is the driver's to answer.
            Err(FillError::Body(error)) => {
                self.mark(Operation::Put, Outcome::Refused);
                return Err(error);
            }
            Err(FillError::Store(error)) => {
                return self.refuse_store(responder, Op::Put, &error).await
            }
        }
        match pending.commit().await {
            Ok(()) => self.send_stored(responder).await,
            Err(StoreError::Exists) => self.send_exists(responder).await,
            Err(error) => self.refuse_store(responder, Op::Put, &error).await,
        }
    }

    /// Before the answer to a PUT refused unread: reads and drops its body when the dialect
    /// asks for it and the declared length is within the dialect's bound, so the client
    /// finishes sending, reads the answer as it would a stored upload's, and keeps the
    /// connection. A client waiting for `100 Continue` sends no body and is not asked for one;
    /// a client that goes away mid-body gets no answer, as on any upload.
    async fn drain_refused_body(&self, request: &mut Request<'_>) -> io::Result<()> {
        let bytes_max = self.dialect.refused_body_drain_bytes_max();
        let within = request
            .body
            .declared_len()
            .is_some_and(|len| len <= bytes_max);
        if within && !request.head.expect_continue {
            discard_body(&mut request.body).await?;
        }
        Ok(())
    }

    /// DELETE of `key`: 200 when something was deleted, else the dialect's miss.
    pub async fn delete(
        &self,
        key: &ObjectKey<'_>,
        responder: &mut Responder<'_>,
    ) -> io::Result<()> {
        match self.backend.delete(self.ctx, key).await {
            Ok(true) => {
                self.mark(Operation::Delete, Outcome::Hit);
                self.dialect.stored().send(responder).await
            }
            Ok(false) => {
                self.mark(Operation::Delete, Outcome::Miss);
                self.dialect.miss().send(responder).await
            }
            Err(error) => self.refuse_store(responder, Op::Delete, &error).await,
        }
    }

    async fn send_stored(&self, responder: &mut Responder<'_>) -> io::Result<()> {
        self.mark(Operation::Put, Outcome::Stored);
        self.dialect.stored().send(responder).await
    }

    /// An `if_absent` put that found its key stored: nothing was written (Nx answers 409).
    async fn send_exists(&self, responder: &mut Responder<'_>) -> io::Result<()> {
        self.mark(Operation::Put, Outcome::Refused);
        self.dialect.exists().send(responder).await
    }
}

/// What an entry-per-key front-end serves: GET, HEAD and PUT always, DELETE if asked.
#[derive(Clone, Copy, Debug)]
pub struct EntryMethods {
    /// The front-end's name in a 405 message ("the Gradle build cache").
    pub name: &'static str,
    pub delete: bool,
    /// PUT keeps an existing entry (see `Put::if_absent`).
    pub if_absent: bool,
}

impl<B: Backend, D: Dialect> Transfer<'_, B, D> {
    /// Serves one request on the entry `key` by its method: the whole of an opaque-key
    /// front-end once it has parsed the key. PUT keeps the content type and the dialect's
    /// kept headers; an unknown method is 405 with `Allow`.
    pub async fn serve_entry(
        &self,
        key: ObjectKey<'_>,
        methods: EntryMethods,
        request: &mut Request<'_>,
        responder: &mut Responder<'_>,
    ) -> io::Result<()> {
        match request.head.method {
            "GET" | "HEAD" => self.get(&key, responder).await,
            "PUT" => match self.kept_meta(request) {
                Ok(meta) => {
                    self.put(key, meta, None, methods.if_absent, request, responder)
                        .await
                }
                Err(error) => self.refuse_store(responder, Op::Put, &error).await,
            },
            "DELETE" if methods.delete => self.delete(&key, responder).await,
            _ => {
                let allow = match methods.delete {
                    true => "GET, HEAD, PUT, DELETE",
                    false => "GET, HEAD, PUT",
                };
                responder.header("allow", allow)?;
                let message = format!("{} supports {allow}", methods.name);
                self.refuse(responder, Op::Other, 405, &message).await
            }
        }
    }
}

/// A reserved put being written: reserve → write… → commit. Dropping it without `commit`
/// aborts the reservation (the store marks the record aborted at once).
pub struct PendingPut<'a, B: Backend> {
    backend: &'a B,
    ctx: &'a RequestContext,
    reservation: Reservation,
}

impl<'a, B: Backend> PendingPut<'a, B> {
    /// Reserves room for `put`. `Ok(None)`: the key is already stored and is kept (a CAS blob,
    /// or an `if_absent` put); nothing needs writing.
    pub async fn begin(
        backend: &'a B,
        ctx: &'a RequestContext,
        put: &Put<'_>,
    ) -> Result<Option<PendingPut<'a, B>>, StoreError> {
        match backend.reserve(ctx, put).await? {
            Reserved::Exists => Ok(None),
            Reserved::Reservation(reservation) => Ok(Some(PendingPut {
                backend,
                ctx,
                reservation,
            })),
        }
    }

    /// Appends body bytes (hashed as they pass for CAS keys).
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.reservation.write(bytes)
    }

    /// Bytes written so far and the body length reserved.
    pub fn progress(&self) -> (u64, u64) {
        (self.reservation.written(), self.reservation.body_len())
    }

    pub(crate) fn reservation_mut(&mut self) -> &mut Reservation {
        &mut self.reservation
    }

    /// Makes the entry visible. Digest or length errors leave nothing visible.
    pub async fn commit(self) -> Result<(), StoreError> {
        self.backend.commit(self.ctx, self.reservation).await
    }

    /// Releases the reservation now and tells its owner (dropping it also aborts).
    pub async fn abort(self) {
        self.backend.abort(self.ctx, self.reservation).await
    }

    /// The reservation itself, for a front-end that keeps an unfinished upload across calls
    /// (a suspended ByteStream write); it aborts on drop like this value.
    pub fn into_reservation(self) -> Reservation {
        self.reservation
    }
}

/// Stores `bytes` under `put.key` in one step (small bodies: AC entries, batch blobs). A kept
/// existing entry is `Ok`; a CAS body that does not hash to `put.expect` is `DigestMismatch`
/// and leaves nothing visible.
pub async fn store_bytes<B: Backend>(
    backend: &B,
    ctx: &RequestContext,
    put: &Put<'_>,
    bytes: &[u8],
) -> Result<(), StoreError> {
    debug_assert_eq!(put.body_len, bytes.len() as u64);
    let Some(mut pending) = PendingPut::begin(backend, ctx, put).await? else {
        return Ok(());
    };
    pending.write(bytes)?;
    pending.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_precise_statuses_without_server_details() {
        let status = |e: &StoreError| status_of(e).0;
        assert_eq!(status(&StoreError::TooLarge { len: 2, max: 1 }), 413);
        assert_eq!(
            status(&StoreError::NoSpace {
                needed: 2,
                available: 1
            }),
            507
        );
        let mismatch = StoreError::DigestMismatch {
            expected: "a".into(),
            actual: "b".into(),
        };
        assert_eq!(status(&mismatch), 400);
        assert_eq!(status(&StoreError::Exists), 409);
        assert_eq!(status(&StoreError::Unavailable { what: "x" }), 503);
        let unauthenticated = StoreError::Unauthenticated {
            reason: "expired",
            message: "token expired at 1".into(),
        };
        assert_eq!(status(&unauthenticated), 401);
        let denied = StoreError::PermissionDenied {
            subject: "ci".into(),
            access: "write",
            namespace: "bazel/main".into(),
        };
        assert_eq!(status(&denied), 403);
        let limited = StoreError::RateLimited {
            subject: "ci".into(),
            retry_after: std::time::Duration::from_millis(1500),
        };
        assert_eq!(status(&limited), 429);
        let io = StoreError::Io {
            op: "fallocate",
            path: "/srv/secret/shard-1/seg-8.log".into(),
            source: io::Error::from_raw_os_error(5),
        };
        let (code, message) = status_of(&io);
        assert_eq!(code, 500);
        assert!(!message.contains("/srv/secret"), "{message}");
        assert!(!message.contains("os error"), "{message}");
    }
}
