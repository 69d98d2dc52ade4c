//! Nx's self-hosted remote cache (`NX_SELF_HOSTED_REMOTE_CACHE_SERVER=http://host:port`),
//! reference/clients.md §5.
//!
//! ```text
//! GET  /v1/cache/<hash>   200 + tar.gz | 404
//! PUT  /v1/cache/<hash>   200 stored | 409 already stored (kept unchanged) | 403 refused
//! ```
//!
//! Entries are immutable: a PUT to a stored hash is 409 and the first entry stays, so one build
//! cannot overwrite another's results. Nx fails the whole task on any PUT answer other than
//! 200, 403 and 409 and on any GET answer other than 200 and 404, so every refusal here takes
//! one of those shapes ([`NxDialect`]): too large, no space or busy is 403 on PUT and 404 on
//! GET (methods Nx never sends keep their precise status). A 401 keeps its status with
//! `Content-Type` exactly `text/plain` (Nx reads it as "unauthorized" only then). A PUT
//! refused before its body is read gets its 403 after the body was read and dropped
//! ([`REFUSED_BODY_DRAIN_BYTES_MAX`]), so Nx reads the 403 rather than a reset that it would
//! retry. Keys are Nx's decimal u64 hashes (up to 20 digits), checked as opaque keys.

use std::io;

use crate::http1::{Request, Responder};
use crate::store::Kind;

use super::backend::{Backend, Protocol};
use super::opaque_key;
use super::pipeline::{Answer, Dialect, EntryMethods, Op};
use super::router::FrontEndEnv;

/// Largest body of a refused PUT (over `max_blob_size`, no space) read and dropped before the
/// 403, so that Nx reads the 403: a reset while Nx is still sending is a send error to Nx,
/// which sends the PUT again (seen: 2–3 tries, 10–20 s more, for a 64 MiB entry) and fails
/// the task when every try fails. Reading costs the transfer a stored upload would have cost
/// (no memory or disk; a stalled client is cut by the body stall timeout). The bound is the
/// wire layer's default body bound, so every body the server frames by default.
pub const REFUSED_BODY_DRAIN_BYTES_MAX: u64 = crate::http1::BODY_BYTES_MAX;

/// Nx's answer shapes.
pub struct NxDialect;

impl Dialect for NxDialect {
    fn refusal(&self, op: Op, status: u16, message: &str) -> Answer {
        let status = match (op, status) {
            (_, 401) => 401,
            (Op::Put, 403 | 409) => status,
            (Op::Put, _) => 403,
            (Op::Get, _) => 404,
            // Methods Nx never sends keep their precise status (405 with Allow).
            (_, _) => status,
        };
        Answer {
            status,
            // Exactly `text/plain`, without a charset: Nx compares the whole header.
            content_type: "text/plain",
            body: format!("{message}\n").into(),
        }
    }

    fn refused_body_drain_bytes_max(&self) -> u64 {
        REFUSED_BODY_DRAIN_BYTES_MAX
    }
}

/// Serves one request under the Nx mount; `rest` is the path after the prefix.
pub async fn handle<B: Backend>(
    env: &FrontEndEnv<'_, B>,
    rest: &str,
    request: &mut Request<'_>,
    responder: &mut Responder<'_>,
) -> io::Result<()> {
    let ctx = env.context(env.namespace_or("nx"), Protocol::Nx);
    let transfer = env.transfer(&ctx, &NxDialect);
    let op = Op::of_method(request.head.method);
    let hash = match opaque_key::single_segment(rest) {
        Ok(hash) => hash,
        Err(message) => return transfer.refuse(responder, op, 400, &message).await,
    };
    let key = ctx.key(Kind::Blob, hash.as_bytes());
    let methods = EntryMethods {
        name: "the Nx cache",
        delete: false,
        if_absent: true,
    };
    transfer.serve_entry(key, methods, request, responder).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_takes_a_shape_nx_tolerates() {
        for status in [400, 403, 405, 409, 413, 429, 500, 503, 507] {
            let put = NxDialect.refusal(Op::Put, status, "m").status;
            assert!([403, 409].contains(&put), "PUT {status} became {put}");
            let get = NxDialect.refusal(Op::Get, status, "m").status;
            assert_eq!(get, 404, "GET {status}");
        }
        let unauthorized = NxDialect.refusal(Op::Get, 401, "no token");
        assert_eq!(unauthorized.status, 401);
        assert_eq!(unauthorized.content_type, "text/plain");
        assert_eq!(NxDialect.exists().status, 409);
    }
}
