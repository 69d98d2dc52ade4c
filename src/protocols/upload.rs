//! Moving a request body into a store reservation, shared by every HTTP front-end.
//!
//! The body is read in `UPLOAD_CHUNK_BYTES` pieces into a buffer and copied into the reserved
//! region of the memory-mapped segment. That is the one user-space copy we keep: glommio's
//! socket reads fill their own buffer first, and the reservation is written through
//! `Reservation::write`, which checksums and (for CAS) hashes the bytes as they pass.

use std::io;

use crate::http1::Body;
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

/// Reads the whole body into `reservation`. A body shorter than the reservation is an
/// `UnexpectedEof` body error; a longer one is the store's `Overflow`.
pub async fn fill_reservation(
    body: &mut Body<'_>,
    reservation: &mut Reservation,
) -> Result<(), FillError> {
    let mut buffer = vec![0u8; UPLOAD_CHUNK_BYTES];
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
    let mut buffer = vec![0u8; UPLOAD_CHUNK_BYTES];
    while body.read(&mut buffer).await? > 0 {}
    Ok(())
}
