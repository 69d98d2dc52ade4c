//! Routes each HTTP/1.1 request to its front-end by path.
//!
//! | path                                  | front-end                    |
//! |---------------------------------------|------------------------------|
//! | `/healthz`                            | liveness: 200 `ok`           |
//! | `[/prefix]/ac/<hash>`, `…/cas/<hash>` | Bazel HTTP cache             |
//! | anything else                         | 404 with a short explanation |

use std::io;
use std::rc::Rc;

use crate::http1::{Request, Responder, Service};
use crate::store::DigestFunction;

use super::backend::Backend;
use super::bazel_http;
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
}

impl<B: Backend> Router<B> {
    pub fn new(backend: Rc<B>, options: HttpOptions) -> Self {
        Router {
            backend,
            options,
            spool: SpoolBudget::default(),
        }
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
