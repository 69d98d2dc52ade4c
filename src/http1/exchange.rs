//! State shared by the request body and the responder of one exchange (single-threaded `Cell`s).

use std::cell::Cell;

/// Where the response of an exchange stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResponseState {
    /// Nothing written yet: the driver may still answer with an error.
    NotStarted,
    /// Head written, body incomplete: the stream is in an unknown state if the service stops.
    Streaming,
    /// The response is complete.
    Done,
    /// A write failed: the stream is unusable.
    Failed,
}

/// How much of the request body is still unread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyProgress {
    /// Every body byte is consumed.
    Complete,
    /// This many Content-Length bytes are unread.
    Remaining(u64),
    /// A chunked body is not finished; its remainder is unknown.
    Unknown,
    /// Reading the body failed; the stream position is unknown.
    Failed,
}

pub(crate) struct Exchange {
    /// The client waits for `100 Continue` and it has not been sent.
    pub(crate) continue_pending: Cell<bool>,
    pub(crate) response: Cell<ResponseState>,
    /// The response head announced `Connection: close`.
    pub(crate) close: Cell<bool>,
    pub(crate) body: Cell<BodyProgress>,
}

impl Exchange {
    pub(crate) fn new(continue_pending: bool, body: BodyProgress) -> Self {
        Exchange {
            continue_pending: Cell::new(continue_pending),
            response: Cell::new(ResponseState::NotStarted),
            close: Cell::new(false),
            body: Cell::new(body),
        }
    }

    /// Whether the connection can serve another request once the body is handled: the body is
    /// read, or its known remainder is small enough to drain and the client is actually sending
    /// it (a client still waiting for `100 Continue` may never send it — RFC 9110 §10.1.1).
    pub(crate) fn body_reusable(&self, drain_body_bytes_max: u64) -> bool {
        match self.body.get() {
            BodyProgress::Complete => true,
            BodyProgress::Remaining(n) => n <= drain_body_bytes_max && !self.continue_pending.get(),
            BodyProgress::Unknown | BodyProgress::Failed => false,
        }
    }
}
