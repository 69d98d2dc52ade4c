//! Accepting connections and handing each to its wire layer.
//!
//! Every executor accepts on its own socket of the reuse-port group, or on its duplicate of the
//! one socket systemd passed. A connection starts as
//! HTTP/1.1; the driver recognises the h2c prior-knowledge preface and returns it, and the
//! stream then goes to the gRPC layer (`grpc::serve`) with the executor's REAPI services
//! (`protocols::reapi`) over the same backend as the HTTP front-ends: the authorization layer
//! (`auth::layer`) over usage counting (`protocols::usage`) over steering to the owner shard. Connections on
//! the optional `grpc_listen` address skip the sniffing and start as HTTP/2; connections on
//! the optional `s3.listen` address speak only S3 (`Port::S3`).
//! With `tls_cert`, every port also speaks TLS: a connection whose first byte starts a TLS
//! handshake is served through rustls (`tls`), ALPN choosing HTTP/1.1 or gRPC, and its verified
//! client certificate (if any) becomes the identity of its requests without a token; any other
//! first byte is plaintext as above (refused with 426 under `tls_required`). Without TLS
//! nothing is peeked.
//! `max_connections` is counted process-wide (one atomic, touched per accept and close); a
//! connection over the limit gets a 503 and is closed.

use std::cell::Cell;
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::future::or;
use futures_lite::AsyncWriteExt;
use glommio::net::{TcpListener, TcpStream};

use crate::auth::gate::Gate;
use crate::auth::layer::Authorize;
use crate::auth::AuthState;
use crate::config::Config;
use crate::grpc::GrpcLimits;
use crate::http1::{self, Limits, Outcome, Sleep};
use crate::protocols::backend::{Credential, Identity};
use crate::protocols::metrics::{describe, ExtraMetrics};
use crate::protocols::reapi::{ReapiOptions, ReapiService};
use crate::protocols::router::{AdminGuard, HttpOptions, MetricsGuard, Router};
use crate::protocols::s3::{S3Front, S3Shared};
use crate::protocols::usage::Usage;
use crate::store::DigestFunction;
use crate::tier::{TierClient, Tiered};
use crate::tls::{self, SharedTls};

use super::coarse_timers::CoarseTimers;
use super::handoff::Acceptor;
use super::local_signal::LocalSignal;
use super::steer::Steer;
use super::{drained, Shared, FLAG_POLL_PERIOD};

/// Pause after a failed `accept` (e.g. EMFILE) so a persistent failure does not spin the core.
pub const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);
/// Longest time spent telling an over-limit client that the server is full.
pub const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// Write buffer between h2 and the socket of an HTTP/2 connection: 64 KiB. h2 writes each DATA
/// frame as two `poll_write`s (9-byte header, then payload) because the compat layer offers no
/// vectored writes; the buffer joins the headers, small frames and up to four 16 KiB payloads
/// into one send. Measured (bench/RESULTS.md §5): ByteStream.Read of 1 MiB blobs +25–35 %,
/// 4 KiB +5–10 %. Cost: 64 KiB per h2 connection (640 MiB at 10,000 connections, the same as
/// one HTTP upload chunk per connection) and one extra copy of each payload.
pub const HTTP2_WRITE_BUFFER_BYTES: usize = 64 << 10;

/// The response to a connection over `max_connections`.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n\
content-length: 40\r\nconnection: close\r\n\r\nconnection limit reached; retry shortly\n";

/// Spawns the executor's drain watcher and returns the signal it fires once the process starts
/// draining. One watcher task per executor polls the process-wide flag; every connection and
/// accept loop waits on the signal, so an idle connection costs no timer of its own.
fn drain_signal(shared: Arc<Shared>) -> LocalSignal {
    let signal = LocalSignal::new();
    let fire = signal.clone();
    glommio::spawn_local(async move {
        drained(&shared).await;
        fire.fire();
    })
    .detach();
    signal
}

/// The executor's clock for the wire layers: coarse timers (connection timeouts are seconds;
/// `coarse_timers` says why not glommio's), plus the drain signal.
#[derive(Clone)]
pub struct Clock {
    timers: CoarseTimers,
    drain: LocalSignal,
}

impl Sleep for Clock {
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> {
        self.timers.sleep(duration)
    }
    fn shutdown(&self) -> impl Future<Output = ()> {
        self.drain.wait()
    }
}

/// The backend every front-end of an executor uses: authorization over usage counting over the
/// object-store tier over steering. Authorization is outermost so a refused request never reaches
/// the usage layer and is not counted as a namespace hit, miss or put; the tier is innermost so
/// usage counts what the client saw (a tier fill is a hit) and a refused write is never uploaded.
pub type ServerBackend = Authorize<Usage<Tiered<Steer>>>;

/// What every connection of one executor shares.
pub struct Context {
    router: Router<ServerBackend>,
    /// The router of the `s3.listen` port: every request is S3.
    s3_router: Router<ServerBackend>,
    limits: Limits,
    /// The REAPI gRPC services over the same backend as `router`.
    reapi: Rc<ReapiService<ServerBackend>>,
    grpc_limits: Rc<GrpcLimits>,
    clock: Clock,
    shared: Arc<Shared>,
    /// Connections of this executor (for drain).
    active: Cell<usize>,
    /// `max_connections`, checked against `Shared::open_connections` (process-wide).
    connections_max: usize,
    /// TLS beside plaintext, when `tls_cert` is set (reloaded process-wide).
    tls: Option<Arc<SharedTls>>,
}

impl Context {
    /// `tier`: the process's object-store tier, if `[tier]` is configured; `requeue`: this
    /// executor queues again the uploads the tier's journal owed at start.
    pub fn new(
        config: &Config,
        steer: Rc<Steer>,
        shared: Arc<Shared>,
        auth: &AuthState,
        s3: &S3Shared,
        tier: Option<Arc<TierClient>>,
        requeue: bool,
    ) -> Result<Rc<Self>, String> {
        let s3_front = Rc::new(S3Front::new(s3, auth.audit.clone())?);
        let gate =
            Rc::new(Gate::new(&config.auth, auth.trust.clone()).with_rate_table(auth.rate.clone()));
        let tiered = Rc::new(Tiered::new(steer, tier.clone()));
        if requeue {
            tiered.requeue_owed();
        }
        let usage = Rc::new(Usage::new(tiered));
        let backend = Rc::new(Authorize::new(usage, gate.clone()).with_audit(auth.audit.clone()));
        let metrics_gate = gate.clone();
        let metrics_guard: MetricsGuard =
            Rc::new(move |identity: &Identity| metrics_gate.check_metrics(identity));
        let admin_gate = gate.clone();
        let admin_guard: AdminGuard =
            Rc::new(move |identity: &Identity| admin_gate.check_admin(identity));
        let options = HttpOptions {
            bazel_digest: if config.bazel_http_blake3 {
                DigestFunction::Blake3
            } else {
                DigestFunction::Sha256
            },
            mounts: crate::protocols::mounts::MountTable::new(&config.mounts),
        };
        let reapi = ReapiService::new(
            backend.clone(),
            ReapiOptions {
                blob_bytes_max: config.max_blob_bytes,
                ..ReapiOptions::default()
            },
        );
        Ok(Rc::new(Context {
            s3_router: Router::s3_only(backend.clone(), s3_front.clone()),
            router: with_tier_health(Router::new(backend, options), tier.as_ref())
                .with_s3(s3_front)
                .with_extra_metrics(connection_metrics(
                    shared.clone(),
                    config.max_connections,
                    tier,
                ))
                .with_metrics_guard(metrics_guard)
                .with_admin_guard(admin_guard)
                .with_phase({
                    let shared = shared.clone();
                    Rc::new(move || shared.readiness())
                }),
            limits: http_limits(config),
            reapi: Rc::new(reapi),
            grpc_limits: Rc::new(grpc_limits(config)),
            clock: Clock {
                timers: CoarseTimers::new(),
                drain: drain_signal(shared.clone()),
            },
            shared,
            active: Cell::new(0),
            connections_max: config.max_connections,
            tls: auth.tls.clone(),
        }))
    }

    /// Drops what the gRPC services keep between calls (suspended uploads); after the
    /// connections ended, before the shards close.
    pub fn release_grpc_state(&self) {
        self.reapi.release_suspended_uploads();
    }

    /// Waits until this executor's connections have all ended, at most `timeout`.
    pub async fn wait_connections(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.active.get() > 0 && Instant::now() < deadline {
            glommio::timer::sleep(FLAG_POLL_PERIOD).await;
        }
        if self.active.get() > 0 {
            tracing::warn!(
                open = self.active.get(),
                "drain timeout: closing remaining connections"
            );
        }
    }
}

/// Lets `/ready` name the object-store tier while it is down.
fn with_tier_health(
    router: Router<ServerBackend>,
    tier: Option<&Arc<TierClient>>,
) -> Router<ServerBackend> {
    match tier {
        Some(tier) => {
            let tier = tier.clone();
            router.with_degraded_source(Rc::new(move || tier.degraded_part()))
        }
        None => router,
    }
}

/// The HTTP/1.1 limits from the configuration (the rest keep the wire layer's defaults).
///
/// The wire layer's body bound is not `max_blob_size`: a body over it must reach the front-end,
/// whose store reservation refuses it before a body byte is read, in the client's dialect. A
/// 413 from the wire layer would bypass the dialect, and Nx fails the user's task on a 413
/// (reference/clients.md §5; `NxDialect` answers 403). The wire bound stays the larger of its
/// own default and `max_blob_size`, so it never refuses a body the store would take.
pub fn http_limits(config: &Config) -> Limits {
    Limits {
        head_timeout: config.header_read_timeout,
        idle_timeout: config.idle_timeout,
        body_stall_timeout: config.body_stall_timeout,
        write_stall_timeout: config.write_stall_timeout,
        body_bytes_max: config.max_blob_bytes.max(http1::BODY_BYTES_MAX),
        ..Limits::default()
    }
}

/// The server's lines on `/metrics`: connections open, their limit, and refusals; then the
/// object-store tier's, when there is one.
fn connection_metrics(
    shared: Arc<Shared>,
    max: usize,
    tier: Option<Arc<TierClient>>,
) -> ExtraMetrics {
    Rc::new(move |out: &mut String| {
        if let Some(tier) = &tier {
            tier.render_metrics(out);
        }
        use std::fmt::Write;
        let open = shared.open_connections.load(Ordering::Relaxed);
        let refused = shared.refused_connections.load(Ordering::Relaxed);
        for (name, kind, help, value) in [
            (
                "tessera_connections_open",
                "gauge",
                "Open client connections.",
                open as u64,
            ),
            (
                "tessera_connections_max",
                "gauge",
                "The max_connections limit.",
                max as u64,
            ),
            (
                "tessera_connections_refused_total",
                "counter",
                "Connections refused with 503 at max_connections.",
                refused,
            ),
        ] {
            describe(out, name, kind, help);
            let _ = writeln!(out, "{name} {value}");
        }
        for (name, help, value) in tls::COUNTERS.lines() {
            describe(out, name, "counter", help);
            let _ = writeln!(out, "{name} {value}");
        }
    })
}

/// The gRPC limits from the configuration: the drain timeout is the server's; the rest keep
/// the wire layer's defaults (`grpc::limits`).
pub fn grpc_limits(config: &Config) -> GrpcLimits {
    GrpcLimits {
        drain_timeout: config.drain_timeout,
        ..GrpcLimits::default()
    }
}

/// Which protocols a listening port speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Port {
    /// HTTP/1.1 front-ends, S3 (signed requests) and h2c gRPC (preface sniffed).
    Main,
    /// Only gRPC (`grpc_listen`).
    Grpc,
    /// Only S3 (`s3.listen`).
    S3,
}

/// Accepts until drain; each connection runs in its own task.
/// `inherited`: the socket came from systemd and outlives the process, so accepting stops
/// without cancelling a pending accept (`handoff`).
pub async fn accept_loop(listener: TcpListener, context: Rc<Context>, port: Port, inherited: bool) {
    let mut acceptor = Acceptor::new(&listener, &context.shared.wake_ups, inherited);
    loop {
        let accepted = acceptor.next(context.clock.shutdown()).await;
        let stream = match accepted {
            None => return,
            Some(Ok(stream)) => stream,
            Some(Err(error)) => {
                tracing::warn!(%error, "accept failed");
                glommio::timer::sleep(ACCEPT_ERROR_BACKOFF).await;
                continue;
            }
        };
        let open = &context.shared.open_connections;
        if open.fetch_add(1, Ordering::AcqRel) >= context.connections_max {
            open.fetch_sub(1, Ordering::AcqRel);
            context
                .shared
                .refused_connections
                .fetch_add(1, Ordering::Relaxed);
            glommio::spawn_local(refuse(stream)).detach();
            continue;
        }
        context.active.set(context.active.get() + 1);
        let context = context.clone();
        glommio::spawn_local(async move {
            serve_connection(stream, &context, port).await;
            context.active.set(context.active.get() - 1);
            context
                .shared
                .open_connections
                .fetch_sub(1, Ordering::AcqRel);
        })
        .detach();
    }
}

async fn refuse(mut stream: TcpStream) {
    tracing::warn!("connection limit reached: refusing a connection");
    let write = async {
        let _ = stream.write_all(REFUSAL).await;
        let _ = stream.close().await;
    };
    or(write, glommio::timer::sleep(REFUSAL_WRITE_TIMEOUT)).await;
}

/// A glommio socket with vectored writes. glommio's `TcpStream` keeps `AsyncWrite`'s default
/// `poll_write_vectored` (the first buffer only), so a response head and its body went out as
/// two sends. This tries one non-blocking `sendmsg` of every buffer first, as glommio itself
/// tries `send` before going to the ring, and falls back to glommio's `poll_write` (which
/// registers the wake-up) when the socket is full.
struct Socket(TcpStream);

impl futures_io::AsyncRead for Socket {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl futures_io::AsyncWrite for Socket {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        use std::os::fd::AsRawFd;
        use std::task::Poll;
        // SAFETY: `msghdr` is plain data; zeroed is a valid empty header.
        let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
        // IoSlice is guaranteed ABI-compatible with `iovec` on Unix.
        header.msg_iov = bufs.as_ptr() as *mut libc::iovec;
        header.msg_iovlen = bufs.len().min(libc::UIO_MAXIOV as usize) as _;
        // SAFETY: the fd is this socket's; `header` points at `bufs`, which outlive the call;
        // MSG_DONTWAIT never blocks the executor and MSG_NOSIGNAL turns SIGPIPE into EPIPE.
        let sent = unsafe {
            libc::sendmsg(
                self.0.as_raw_fd(),
                &header,
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if sent >= 0 {
            return Poll::Ready(Ok(sent as usize));
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::WouldBlock {
            return Poll::Ready(Err(error));
        }
        let first = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &**b);
        std::pin::Pin::new(&mut self.0).poll_write(cx, first)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_close(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_close(cx)
    }
}

async fn serve_connection(stream: TcpStream, context: &Context, port: Port) {
    let _ = stream.set_nodelay(true);
    // The audit log's remote address; every request of the connection carries it.
    let remote = stream.peer_addr().ok();
    if let Some(tls) = &context.tls {
        match first_byte(&stream, context).await {
            None => return,
            Some(tls::HANDSHAKE_RECORD_TYPE) => {
                return serve_tls(Socket(stream), tls.snapshot(), context, port, remote).await
            }
            Some(_) if tls.required => {
                return refuse_plaintext(Socket(stream), context, port).await
            }
            Some(_) => {}
        }
    }
    serve_stream(Socket(stream), context, port, remote, Identity::default()).await;
}

/// HTTP/1.1 (handing h2c on) or, on the gRPC port, HTTP/2, over a plaintext or TLS stream.
/// `remote`: the peer, carried by every request (the audit log's address). `identity`: the
/// connection's own (a TLS client certificate), for requests without a
/// credential.
async fn serve_stream<IO>(
    mut io: IO,
    context: &Context,
    port: Port,
    remote: Option<SocketAddr>,
    identity: Identity,
) where
    IO: futures_io::AsyncRead + futures_io::AsyncWrite + Unpin,
{
    let buffered = if port == Port::Grpc {
        Vec::new()
    } else {
        let router = match port {
            Port::S3 => &context.s3_router,
            _ => &context.router,
        };
        let router = router.on_connection(remote, identity.clone());
        let summary = http1::serve(&mut io, &router, &context.clock, &context.limits).await;
        match summary.outcome {
            Outcome::Http2 { buffered } => buffered,
            outcome => {
                tracing::debug!(
                    requests = summary.requests,
                    ?outcome,
                    "http/1.1 connection ended"
                );
                return;
            }
        }
    };
    serve_http2(io, buffered, context, remote, identity).await;
}

/// The first byte the client sent, left in the socket; `None` if it closed, stayed silent for
/// `idle_timeout`, or the server started draining first.
async fn first_byte(stream: &TcpStream, context: &Context) -> Option<u8> {
    let mut byte = [0u8; 1];
    let peek = async {
        match stream.peek(&mut byte).await {
            Ok(1) => Some(byte[0]),
            _ => None,
        }
    };
    let give_up = async {
        let clock = &context.clock;
        or(clock.sleep(context.limits.idle_timeout), clock.shutdown()).await;
        None
    };
    or(peek, give_up).await
}

/// Shakes hands (within `header_read_timeout`), then serves what ALPN chose (`tls::load`):
/// `h2` goes to the gRPC layer, `http/1.1` or no ALPN to HTTP/1.1. A verified client certificate becomes the
/// connection's identity.
async fn serve_tls(
    socket: Socket,
    config: Arc<rustls::ServerConfig>,
    context: &Context,
    port: Port,
    remote: Option<SocketAddr>,
) {
    let acceptor = futures_rustls::TlsAcceptor::from(config);
    let handshake = async { Some(acceptor.accept(socket).await) };
    let timeout = async {
        context.clock.sleep(context.limits.head_timeout).await;
        None
    };
    let stream = match or(handshake, timeout).await {
        Some(Ok(stream)) => stream,
        failed => {
            tls::COUNTERS
                .handshake_failures
                .fetch_add(1, Ordering::Relaxed);
            match failed {
                Some(Err(error)) => tracing::debug!(%error, "TLS handshake failed"),
                _ => tracing::debug!("TLS handshake timed out"),
            }
            return;
        }
    };
    tls::COUNTERS.handshakes.fetch_add(1, Ordering::Relaxed);
    let session = stream.get_ref().1;
    let http2 = session.alpn_protocol() == Some(tls::ALPN_HTTP2);
    let identity = Identity {
        subject: None,
        credential: tls::client_subject(session).map(|s| Credential::ClientCert(s.into())),
    };
    if http2 {
        return serve_http2(stream, Vec::new(), context, remote, identity).await;
    }
    serve_stream(stream, context, port, remote, identity).await;
}

/// `tls_required` and a plaintext client: HTTP/1.1 gets `426` (`tls::refusal`); an h2c client
/// (the gRPC port) can read no HTTP/1.1 answer and is closed.
async fn refuse_plaintext(mut socket: Socket, context: &Context, port: Port) {
    tls::COUNTERS
        .plaintext_refused
        .fetch_add(1, Ordering::Relaxed);
    tracing::debug!("plaintext connection refused: tls_required");
    if port != Port::Grpc {
        let refusal = &tls::refusal::RequireTls;
        http1::serve(&mut socket, refusal, &context.clock, &context.limits).await;
    }
}

async fn serve_http2<IO>(
    io: IO,
    buffered: Vec<u8>,
    context: &Context,
    remote: Option<SocketAddr>,
    identity: Identity,
) where
    IO: futures_io::AsyncRead + futures_io::AsyncWrite + Unpin,
{
    let drain = context.clock.shutdown();
    let stream = futures::io::BufWriter::with_capacity(HTTP2_WRITE_BUFFER_BYTES, io);
    let reapi = match identity.credential {
        None => context.reapi.clone(),
        Some(_) => Rc::new(context.reapi.on_connection(identity)),
    };
    let outcome = crate::grpc::serve_from(
        remote,
        stream,
        buffered,
        reapi,
        context.grpc_limits.clone(),
        drain,
    )
    .await;
    match outcome {
        Ok(()) => tracing::debug!("h2c connection ended"),
        Err(crate::grpc::ConnectionError::Io(error)) => {
            tracing::debug!(%error, "h2c connection lost");
        }
        Err(error) => tracing::info!(%error, "h2c connection closed"),
    }
}

#[cfg(test)]
mod tests {
    /// Regression: the refusal said `content-length: 39` for its 40-byte body, so a client
    /// reading it kept one stray byte (`\n`) as the start of a next response.
    #[test]
    fn refusal_content_length_matches_its_body() {
        let text = std::str::from_utf8(super::REFUSAL).expect("ASCII");
        let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length: "))
            .expect("a content-length")
            .parse()
            .expect("a number");
        assert_eq!(length, body.len());
    }
}
