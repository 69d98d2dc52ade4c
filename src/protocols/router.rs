//! Routes each HTTP/1.1 request: a request with an AWS signature goes to S3, then the
//! server's own endpoints, then the mount table (`mounts`) picks the front-end by the longest
//! matching path prefix. A router made with [`Router::s3_only`] (the `s3.listen` port) sends
//! every request to S3.
//!
//! | path                    | answer                                              |
//! |-------------------------|-----------------------------------------------------|
//! | any, AWS-signed         | S3 (`s3::is_signed`: header or presigned query)     |
//! | `/healthz`              | liveness: 200 `ok`                                  |
//! | `/ready`                | readiness: 200 or 503 with a JSON body (`health`)   |
//! | `/metrics`              | Prometheus text (`metrics`); admin unless `auth.public_metrics` |
//! | `/` (GET, HEAD)         | a browser (`Accept: text/html`): the status page;   |
//! |                         | others: a short plain-text index of the mounts      |
//! | `/status.json`          | the numbers the status page shows (`status`); guarded as `/metrics` |
//! | `/admin/…`              | the admin JSON API (`admin`); admin token once keys are configured |
//! | a mounted prefix        | that mount's front-end, in its namespace            |
//! | anything else           | 404 with a short explanation                        |

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;

use std::rc::Rc;
use tracing::Instrument;

use crate::http1::{Request, Responder, Service};
use crate::store::DigestFunction;

use super::backend::{Backend, Identity, Namespace, Protocol, RequestContext};
use super::health::{self, Phase};
use super::metrics::{self, ExtraMetrics};
use super::mounts::{FrontEnd, MountTable};
use super::pipeline::{challenge, status_of, Dialect, Timed, Transfer};
use super::s3::{self, S3Front};
use super::upload::SpoolBudget;
use super::{admin, status};
use super::{bazel_http, ccache, gradle, nx, turbo};
use crate::metrics::latency::{Outcome, Timer};

/// Options of the HTTP front-ends.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    /// Digest function of 64-hex Bazel HTTP cache keys.
    pub bazel_digest: DigestFunction,
    /// Which front-end serves which prefix.
    pub mounts: MountTable,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            bazel_digest: DigestFunction::Sha256,
            mounts: MountTable::default(),
        }
    }
}

/// What a front-end gets for one request: the backend, the executor's upload spool, the
/// options, and the namespace its mount names (if it names one).
pub struct FrontEndEnv<'a, B> {
    pub backend: &'a B,
    pub spool: &'a SpoolBudget,
    pub options: &'a HttpOptions,
    pub namespace: Option<&'a Namespace>,
    /// Who is asking (from the request's `Authorization` header).
    pub identity: Identity,
    /// The peer's socket address, when the connection has one.
    pub remote: Option<SocketAddr>,
    /// What the request did, set by its [`Transfer`]; the router records its latency.
    pub timed: &'a Cell<Option<Timed>>,
}

impl<'a, B: Backend> FrontEndEnv<'a, B> {
    /// The context of this request in `namespace`, by `protocol`, with the caller's identity.
    pub fn context(&self, namespace: Namespace, protocol: Protocol) -> RequestContext {
        RequestContext {
            identity: self.identity.clone(),
            remote: self.remote,
            ..RequestContext::new(namespace, protocol)
        }
    }

    /// The mount's namespace, or the front-end's own.
    pub fn namespace_or(&self, own: &'static str) -> Namespace {
        self.namespace
            .cloned()
            .unwrap_or_else(|| Namespace::fixed(own))
    }

    /// The transfer pipeline for one request in `ctx`, shaped by `dialect`.
    pub fn transfer<'t, D: Dialect>(
        &'t self,
        ctx: &'t RequestContext,
        dialect: &'t D,
    ) -> Transfer<'t, B, D> {
        Transfer {
            backend: self.backend,
            ctx,
            dialect,
            spool: self.spool,
            timed: self.timed,
        }
    }
}

/// Decides whether a caller may read `/metrics` and `/status.json` (the authorization gate's
/// admin check, waived by `auth.public_metrics`).
pub type MetricsGuard = Rc<dyn Fn(&Identity) -> Result<(), crate::store::StoreError>>;

/// Decides whether a caller may use the admin API (the gate's admin check, never waived).
pub type AdminGuard = Rc<dyn Fn(&Identity) -> Result<(), crate::store::StoreError>>;

/// The [`Service`] of one executor: every HTTP/1.1 request passes through here.
pub struct Router<B> {
    backend: Rc<B>,
    options: HttpOptions,
    /// Memory for chunked uploads of this executor (`upload::CHUNKED_SPOOL_BUDGET_BYTES`).
    spool: SpoolBudget,
    /// The server's own lines on `/metrics`.
    extra_metrics: Option<ExtraMetrics>,
    /// The S3 front-end, for signed requests (and every request when `s3_only`).
    s3: Option<Rc<S3Front>>,
    s3_only: bool,
    /// Who may read `/metrics` and `/status.json` (`None`: anyone).
    metrics_guard: Option<MetricsGuard>,
    /// Who may use `/admin/…` (`None`: anyone).
    admin_guard: Option<AdminGuard>,
    /// The node's phase for `/ready`; without one (tests of a bare router) it is ready.
    phase: Option<PhaseSource>,
    /// Parts beside the shards that `/ready` names when degraded (the object-store tier).
    degraded_sources: Vec<health::DegradedSource>,
}

/// Where `/ready` reads the node's phase (the server's shared flags).
pub type PhaseSource = Rc<dyn Fn() -> Phase>;

impl<B: Backend> Router<B> {
    pub fn new(backend: Rc<B>, options: HttpOptions) -> Self {
        Router {
            backend,
            options,
            spool: SpoolBudget::default(),
            extra_metrics: None,
            s3: None,
            s3_only: false,
            metrics_guard: None,
            admin_guard: None,
            phase: None,
            degraded_sources: Vec::new(),
        }
    }

    /// Serves AWS-signed requests through `front`.
    pub fn with_s3(mut self, front: Rc<S3Front>) -> Self {
        self.s3 = Some(front);
        self
    }

    /// A router that sends every request to `front` (the `s3.listen` port).
    pub fn s3_only(backend: Rc<B>, front: Rc<S3Front>) -> Self {
        let mut router = Router::new(backend, HttpOptions::default()).with_s3(front);
        router.s3_only = true;
        router
    }

    /// Lets only callers `guard` accepts read `/metrics` and `/status.json`.
    pub fn with_metrics_guard(mut self, guard: MetricsGuard) -> Self {
        self.metrics_guard = Some(guard);
        self
    }

    /// Lets only callers `guard` accepts use the admin API.
    pub fn with_admin_guard(mut self, guard: AdminGuard) -> Self {
        self.admin_guard = Some(guard);
        self
    }

    /// Lets `/ready` report the server's phase (starting, ready, stopping).
    pub fn with_phase(mut self, phase: PhaseSource) -> Self {
        self.phase = Some(phase);
        self
    }

    /// Lets `/ready` name `source` when it reports itself degraded.
    pub fn with_degraded_source(mut self, source: health::DegradedSource) -> Self {
        self.degraded_sources.push(source);
        self
    }

    /// Adds the server's own metrics (connections) to `/metrics`.
    pub fn with_extra_metrics(mut self, extra: ExtraMetrics) -> Self {
        self.extra_metrics = Some(extra);
        self
    }

    /// Answers the server's own endpoints; `None` when `path` is not one of them.
    async fn own_endpoint(
        &self,
        path: &str,
        connection: &Identity,
        request: &Request<'_>,
        responder: &mut Responder<'_>,
    ) -> Option<io::Result<()>> {
        let name = match path {
            "/healthz" | "/ready" | "/metrics" | "/status.json" | "/" => path,
            _ => return None,
        };
        if !matches!(request.head.method, "GET" | "HEAD") {
            if let Err(error) = responder.header("allow", "GET, HEAD") {
                return Some(Err(error));
            }
            let message = format!("{name} supports GET and HEAD");
            return Some(responder.send_text(405, &message).await);
        }
        Some(match name {
            "/healthz" => responder.send_text(200, "ok").await,
            "/ready" => self.ready(responder).await,
            "/status.json" => self.status_json(connection, request, responder).await,
            "/" if status::wants_html(request.head.header("accept")) => {
                let sent = responder
                    .header("content-type", "text/html; charset=utf-8")
                    .and_then(|r| r.header("cache-control", "no-store"));
                match sent {
                    Ok(_) => responder.send(200, status::PAGE.as_bytes()).await,
                    Err(error) => Err(error),
                }
            }
            "/" => {
                let index = self.options.mounts.index_text();
                responder.send_text(200, index.trim_end()).await
            }
            _ => self.metrics(connection, request, responder).await,
        })
    }

    /// Answers a caller the metrics guard refuses; `None` when it may go on.
    async fn refuse_unless_metrics_reader(
        &self,
        connection: &Identity,
        request: &Request<'_>,
        responder: &mut Responder<'_>,
    ) -> Option<io::Result<()>> {
        let guard = self.metrics_guard.as_ref()?;
        let identity = Identity::from_authorization(request.head.header("authorization"))
            .on_connection(connection);
        let error = guard(&identity).err()?;
        let (status, message) = status_of(&error);
        if let Err(error) = challenge(responder, status) {
            return Some(Err(error));
        }
        Some(responder.send_text(status, &message).await)
    }

    async fn ready(&self, responder: &mut Responder<'_>) -> io::Result<()> {
        let phase = self.phase.as_ref().map_or(Phase::Ready, |phase| phase());
        let shards = self.backend.stats().await;
        let degraded = health::degraded_parts(shards.as_deref(), &self.degraded_sources);
        let (status, body) = health::render(phase, degraded);
        responder.header("content-type", "application/json")?;
        responder.header("cache-control", "no-store")?;
        responder.send(status, body.as_bytes()).await
    }

    async fn status_json(
        &self,
        connection: &Identity,
        request: &Request<'_>,
        responder: &mut Responder<'_>,
    ) -> io::Result<()> {
        if let Some(refused) = self
            .refuse_unless_metrics_reader(connection, request, responder)
            .await
        {
            return refused;
        }
        match status::status_json(&*self.backend).await {
            Ok(body) => {
                responder.header("content-type", "application/json")?;
                responder.header("cache-control", "no-store")?;
                responder.send(200, body.as_bytes()).await
            }
            Err(error) => {
                let (status, message) = status_of(&error);
                responder.send_text(status, &message).await
            }
        }
    }

    async fn metrics(
        &self,
        connection: &Identity,
        request: &Request<'_>,
        responder: &mut Responder<'_>,
    ) -> io::Result<()> {
        if let Some(refused) = self
            .refuse_unless_metrics_reader(connection, request, responder)
            .await
        {
            return refused;
        }
        match metrics::render(&*self.backend, self.extra_metrics.as_ref()).await {
            Ok(page) => {
                responder.header("content-type", "text/plain; version=0.0.4; charset=utf-8")?;
                responder.send(200, page.as_bytes()).await
            }
            Err(error) => {
                let (status, message) = status_of(&error);
                responder.send_text(status, &message).await
            }
        }
    }
}

impl<B: Backend> Service for Router<B> {
    async fn call(
        &self,
        request: &mut Request<'_>,
        responder: &mut Responder<'_>,
    ) -> io::Result<()> {
        self.route(None, &Identity::default(), request, responder)
            .await
    }
}

/// The router as one connection's [`Service`]: every request of it carries the peer's address,
/// and a request without a credential acts as the connection's own identity (a verified TLS
/// client certificate, [`Identity::on_connection`]). S3 requests keep their signature's identity.
pub struct OnConnection<'r, B> {
    router: &'r Router<B>,
    remote: Option<SocketAddr>,
    identity: Identity,
}

impl<B: Backend> Router<B> {
    /// This router for the requests of a connection from `remote` whose own identity is
    /// `identity` (anonymous without a client certificate).
    pub fn on_connection(
        &self,
        remote: Option<SocketAddr>,
        identity: Identity,
    ) -> OnConnection<'_, B> {
        OnConnection {
            router: self,
            remote,
            identity,
        }
    }
}

impl<B: Backend> Service for OnConnection<'_, B> {
    async fn call(
        &self,
        request: &mut Request<'_>,
        responder: &mut Responder<'_>,
    ) -> io::Result<()> {
        self.router
            .route(self.remote, &self.identity, request, responder)
            .await
    }
}

impl<B: Backend> Router<B> {
    /// Answers one request of a connection from `remote` whose own identity is `connection`.
    async fn route(
        &self,
        remote: Option<SocketAddr>,
        connection: &Identity,
        request: &mut Request<'_>,
        responder: &mut Responder<'_>,
    ) -> io::Result<()> {
        if let Some(front) = &self.s3 {
            if self.s3_only || s3::is_signed(&request.head) {
                return front
                    .handle(&*self.backend, remote, request, responder)
                    .await;
            }
        }
        let path = request.head.path();
        // Bazel at `/` could claim these paths too: the server's own endpoints come first.
        // Only the exact paths are taken, so `/healthz/ac/<h>` stays a Bazel path.
        if let Some(answered) = self
            .own_endpoint(path, connection, request, responder)
            .await
        {
            return answered;
        }
        // The admin API comes before the mounts too (a Bazel instance named `admin` is
        // reachable over gRPC only).
        let admin = path == admin::PREFIX || path.starts_with("/admin/");
        let routed = match admin {
            true => None,
            false => self.options.mounts.route(path),
        };
        if !admin && routed.is_none() {
            return responder
                .send_text(
                    404,
                    "nothing is mounted at this path; GET / lists the mounts",
                )
                .await;
        }
        // The one latency hook of every HTTP front-end: the transfer labels what the request
        // did; a request that is no transfer (a 405, Turborepo's status) is not timed.
        let timed = Cell::new(None);
        let timer = Timer::start();
        let span = crate::logging::request_span(match routed {
            Some((mount, _)) => mount.front_end.name(),
            None => "admin",
        });
        let env = FrontEndEnv {
            backend: &*self.backend,
            spool: &self.spool,
            options: &self.options,
            namespace: routed.and_then(|(mount, _)| mount.namespace.as_ref()),
            identity: Identity::from_authorization(request.head.header("authorization"))
                .on_connection(connection),
            remote,
            timed: &timed,
        };
        let request_id = crate::logging::text_request_id();
        let answered = async {
            let Some((mount, rest)) = routed else {
                return admin::handle(&env, self.admin_guard.as_ref(), request, responder).await;
            };
            match mount.front_end {
                FrontEnd::Bazel => bazel_http::handle(&env, rest, request, responder).await,
                FrontEnd::Gradle => gradle::handle(&env, rest, request, responder).await,
                FrontEnd::Nx => nx::handle(&env, rest, request, responder).await,
                FrontEnd::Turbo => turbo::handle(&env, rest, request, responder).await,
                FrontEnd::Ccache => ccache::handle(&env, rest, request, responder).await,
            }
        }
        .instrument(span.clone());
        let answered = crate::logging::in_request(request_id, answered).await;
        let _entered = span.enter();
        let _request = crate::logging::enter(request_id);
        if let Some((protocol, operation, outcome)) = timed.get() {
            let outcome = match (&answered, outcome) {
                // The client hung up on its own upload: the driver answers 400 or 408.
                (Err(_), Outcome::Refused) => Outcome::Refused,
                (Err(_), _) => Outcome::Error,
                (Ok(()), outcome) => outcome,
            };
            tracing::debug!(
                operation = operation.as_str(),
                outcome = outcome.as_str(),
                elapsed_us = timer.elapsed().as_micros() as u64,
                "request done"
            );
            timer.finish(protocol, operation, outcome);
        }
        answered
    }
}
