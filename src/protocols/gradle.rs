//! Gradle's HTTP build cache (`remote(HttpBuildCache) { url = 'http://host:port/cache/' }`),
//! reference/clients.md §6.
//!
//! ```text
//! GET|HEAD /cache/<key>   200 + entry | 404
//! PUT      /cache/<key>   200 (last writer wins) | 413 before the body when over max_blob_size
//! ```
//!
//! Keys are opaque (32 hex in Gradle 4.x); the entry's `Content-Type`
//! (`application/vnd.gradle.build-cache-artifact.v1`) is kept and sent back. HTTP Basic
//! credentials, which Gradle sends preemptively, are accepted and not checked (authentication
//! is a layer of its own).

use std::io;

use crate::http1::{Request, Responder};
use crate::store::Kind;

use super::backend::{Backend, Protocol};
use super::opaque_key;
use super::pipeline::{EntryMethods, Plain};
use super::router::FrontEndEnv;

/// Serves one request under the Gradle mount; `rest` is the path after the prefix.
pub async fn handle<B: Backend>(
    env: &FrontEndEnv<'_, B>,
    rest: &str,
    request: &mut Request<'_>,
    responder: &mut Responder<'_>,
) -> io::Result<()> {
    let key = match opaque_key::single_segment(rest) {
        Ok(key) => key,
        Err(message) => return responder.send_text(400, &message).await,
    };
    let ctx = env.context(env.namespace_or("gradle"), Protocol::Gradle);
    let transfer = env.transfer(&ctx, &Plain);
    let key = ctx.key(Kind::Blob, key.as_bytes());
    let methods = EntryMethods {
        name: "the Gradle build cache",
        delete: false,
        if_absent: false,
    };
    transfer.serve_entry(key, methods, request, responder).await
}
