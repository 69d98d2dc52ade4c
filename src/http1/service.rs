//! The seam between the wire layer and a protocol front-end.

use std::io;

use super::body::Body;
use super::parse::RequestHead;
use super::responder::Responder;

/// One request as a service sees it: the parsed head (borrowed from the receive buffer; `Copy`,
/// so a service may keep it while reading the body) and the streaming body.
pub struct Request<'a> {
    /// Method, target, headers and derived facts.
    pub head: RequestHead<'a>,
    /// The request body; read it with [`Body::read`].
    pub body: Body<'a>,
}

/// A protocol front-end plugged into the HTTP/1.1 driver.
///
/// The driver calls [`call`](Self::call) once per request, on the connection's thread (futures
/// need not be `Send`). The service must answer through the responder exactly once; it may read
/// the body before or not at all (the driver drains a small unread body or closes the
/// connection). An `Err` returned before any response was written becomes a 500 (or the body
/// error's status: 400, 408, 413, 431) and the connection closes; an `Err` after a partial
/// response closes the connection.
#[allow(async_fn_in_trait)]
pub trait Service {
    /// Handles one request.
    async fn call(
        &self,
        request: &mut Request<'_>,
        responder: &mut Responder<'_>,
    ) -> io::Result<()>;
}

impl<S: Service + ?Sized> Service for &S {
    async fn call(
        &self,
        request: &mut Request<'_>,
        responder: &mut Responder<'_>,
    ) -> io::Result<()> {
        (**self).call(request, responder).await
    }
}
