//! The answer to a plaintext HTTP/1.1 request when `tls_required` is set: `426 Upgrade
//! Required` naming TLS (RFC 9110 §15.5.22, with `Upgrade: TLS/1.3, HTTP/1.1` as RFC 2817 §4.2
//! spells it), then the connection closes. The request is read through the HTTP/1.1 driver, so
//! the client gets the response rather than a reset for bytes the server never read.

use std::io;

use crate::http1::{Request, Responder, Service};

/// What a plaintext client is told.
pub const REFUSAL_TEXT: &str =
    "this server requires TLS: use https:// (gRPC: grpcs://) and the server's CA certificate";

/// The HTTP/1.1 service of a refused plaintext connection.
pub struct RequireTls;

impl Service for RequireTls {
    async fn call(
        &self,
        _request: &mut Request<'_>,
        responder: &mut Responder<'_>,
    ) -> io::Result<()> {
        responder.header("upgrade", "TLS/1.3, HTTP/1.1")?;
        responder.close_connection();
        responder.send_text(426, REFUSAL_TEXT).await
    }
}
