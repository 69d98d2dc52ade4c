//! Moving a request body into a store reservation, shared by every HTTP front-end.
//!
//! The body is read in `UPLOAD_CHUNK_BYTES` pieces into a buffer and copied into the reserved
//! region of the memory-mapped segment. That is the one user-space copy we keep: glommio's
//! socket reads fill their own buffer first, and the reservation is written through
//! `Reservation::write`, which checksums and (for CAS) hashes the bytes as they pass.

use std::cell::Cell;
use std::io;

use crate::http1::{Body, ChunkedError};
use crate::store::{Reservation, StoreError};

/// Bytes read from the socket per step of an upload. 64 KiB amortises the per-read cost and the
/// hashing call overhead while keeping per-upload memory small (10 000 uploads ≈ 640 MiB worst
/// case, bounded by `max_connections`).
pub const UPLOAD_CHUNK_BYTES: usize = 64 * 1024;

/// Why filling a reservation stopped.
#[derive(Debug)]
pub enum FillError {
    /// The client's body failed (closed early, stalled, bad framing): answer with the body's
    /// own status (the driver does that when we return the error).
    Body(io::Error),
    /// The store refused the bytes (more than reserved, …).
    Store(StoreError),
}

/// A read buffer for a body of `len` bytes (unknown: chunked): no larger than the body, so a
/// 100-byte action-cache entry does not allocate and zero 64 KiB; at least one byte, so a
/// body longer than declared is still read (and refused) rather than taken for its end.
fn step_buffer(len: Option<u64>) -> Vec<u8> {
    let len = len.map_or(UPLOAD_CHUNK_BYTES, |len| {
        usize::try_from(len).map_or(UPLOAD_CHUNK_BYTES, |len| len.min(UPLOAD_CHUNK_BYTES))
    });
    vec![0u8; len.max(1)]
}

/// Reads the whole body into `reservation`. A body shorter than the reservation is an
/// `UnexpectedEof` body error; a longer one is the store's `Overflow`.
pub async fn fill_reservation(
    body: &mut Body<'_>,
    reservation: &mut Reservation,
) -> Result<(), FillError> {
    let mut buffer = step_buffer(Some(reservation.body_len()));
    loop {
        let read = body.read(&mut buffer).await.map_err(FillError::Body)?;
        if read == 0 {
            break;
        }
        reservation
            .write(&buffer[..read])
            .map_err(FillError::Store)?;
    }
    if reservation.written() < reservation.body_len() {
        return Err(FillError::Body(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "request body ended before Content-Length bytes",
        )));
    }
    Ok(())
}

/// Reads and drops the rest of a body (e.g. a CAS blob that is already stored).
pub async fn discard_body(body: &mut Body<'_>) -> io::Result<()> {
    let mut buffer = step_buffer(body.declared_len());
    while body.read(&mut buffer).await? > 0 {}
    Ok(())
}

/// Largest chunked (length-unknown) upload accepted. A reservation needs the length before the
/// first byte, so such a body is held in memory first; real cache clients send `Content-Length`
/// and never take this path (curl `-T -` and some scripts do).
pub const CHUNKED_UPLOAD_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Bytes of chunked uploads one executor may hold in memory at once: 8 concurrent maximal
/// uploads. Past it a chunked PUT is answered 503 instead of growing memory.
pub const CHUNKED_SPOOL_BUDGET_BYTES: usize = 8 * CHUNKED_UPLOAD_BYTES_MAX;

/// Why a chunked body could not be spooled.
#[derive(Debug)]
pub enum SpoolError {
    /// Over `CHUNKED_UPLOAD_BYTES_MAX`: 413.
    TooLarge,
    /// The executor's spool budget is in use: 503.
    Busy,
    Body(io::Error),
}

/// The executor's account of spooled chunked-upload bytes (one per executor: `Cell`, no lock).
#[derive(Default, Debug)]
pub struct SpoolBudget {
    in_use: Cell<usize>,
}

impl SpoolBudget {
    /// Reads a whole chunked body into memory within both bounds. The budget is charged for the
    /// bound up front (the final size is unknown) and released when the returned guard drops.
    pub async fn spool<'a>(&'a self, body: &mut Body<'_>) -> Result<Spooled<'a>, SpoolError> {
        let charge = CHUNKED_UPLOAD_BYTES_MAX;
        if self.in_use.get() + charge > CHUNKED_SPOOL_BUDGET_BYTES {
            return Err(SpoolError::Busy);
        }
        self.in_use.set(self.in_use.get() + charge);
        let mut guard = Spooled {
            budget: self,
            charge,
            bytes: Vec::new(),
        };
        match body
            .read_to_end(&mut guard.bytes, CHUNKED_UPLOAD_BYTES_MAX)
            .await
        {
            Ok(()) => Ok(guard),
            Err(error) if is_overflow(&error) => Err(SpoolError::TooLarge),
            Err(error) => Err(SpoolError::Body(error)),
        }
    }
}

/// `read_to_end` reports both its bound and bad chunked framing as `InvalidData`; framing
/// errors carry the `ChunkedError` inside.
fn is_overflow(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::InvalidData
        && !error
            .get_ref()
            .is_some_and(|inner| inner.is::<ChunkedError>())
}

/// A spooled body; gives its budget back when dropped.
pub struct Spooled<'a> {
    budget: &'a SpoolBudget,
    charge: usize,
    pub bytes: Vec<u8>,
}

impl Drop for Spooled<'_> {
    fn drop(&mut self) {
        self.budget
            .in_use
            .set(self.budget.in_use.get() - self.charge);
    }
}
