//! Routes each HTTP/1.1 request to its front-end by path.
//!
//! | path                                  | front-end                    |
//! |---------------------------------------|------------------------------|
//! | `/healthz`                            | liveness: 200 `ok`           |
//! | `/metrics`                            | Prometheus text (`metrics`)  |
//! | `[/prefix]/ac/<hash>`, `…/cas/<hash>` | Bazel HTTP cache             |
//! | anything else                         | 404 with a short explanation |

use std::io;
use std::rc::Rc;

use crate::http1::{Request, Responder, Service};
use crate::store::DigestFunction;

use super::backend::Backend;
use super::bazel_http;
use super::metrics::{self, ExtraMetrics};
use super::upload::SpoolBudget;

/// Options of the HTTP front-ends.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    /// Digest function of 64-hex Bazel HTTP cache keys.
    pub bazel_digest: DigestFunction,
}

/// The [`Service`] of one executor: every HTTP/1.1 request passes through here.
pub struct Router<B> {
    backend: Rc<B>,
    options: HttpOptions,
    /// Memory for chunked uploads of this executor (`upload::CHUNKED_SPOOL_BUDGET_BYTES`).
    spool: SpoolBudget,
    /// The server's own lines on `/metrics`.
    extra_metrics: Option<ExtraMetrics>,
}

impl<B: Backend> Router<B> {
    pub fn new(backend: Rc<B>, options: HttpOptions) -> Self {
        Router {
            backend,
            options,
            spool: SpoolBudget::default(),
            extra_metrics: None,
        }
    }

    /// Adds the server's own metrics (connections) to `/metrics`.
    pub fn with_extra_metrics(mut self, extra: ExtraMetrics) -> Self {
        self.extra_metrics = Some(extra);
        self
    }
}

impl<B: Backend> Service for Router<B> {
    async fn call(
        &self,
        request: &mut Request<'_>,
        responder: &mut Responder<'_>,
    ) -> io::Result<()> {
        let path = request.head.path();
        if path == "/healthz" {
            return match request.head.method {
                "GET" | "HEAD" => responder.send_text(200, "ok\n").await,
                _ => {
                    responder.header("allow", "GET, HEAD")?;
                    responder
                        .send_text(405, "/healthz supports GET and HEAD")
                        .await
                }
            };
        }
        if path == "/metrics" {
            if !matches!(request.head.method, "GET" | "HEAD") {
                responder.header("allow", "GET, HEAD")?;
                return responder
                    .send_text(405, "/metrics supports GET and HEAD")
                    .await;
            }
            return match metrics::render(&*self.backend, self.extra_metrics.as_ref()).await {
                Ok(page) => {
                    responder.header("content-type", "text/plain; version=0.0.4; charset=utf-8")?;
                    responder.send(200, page.as_bytes()).await
                }
                Err(error) => bazel_http::send_store_error(responder, &error).await,
            };
        }
        if let Some(bazel) = bazel_http::parse_path(path) {
            let function = self.options.bazel_digest;
            let backend = &*self.backend;
            return bazel_http::handle(backend, &self.spool, function, &bazel, request, responder)
                .await;
        }
        responder
            .send_text(
                404,
                "unknown path: the Bazel cache is at [/prefix]/ac/<hash> and [/prefix]/cas/<hash>",
            )
            .await
    }
}
