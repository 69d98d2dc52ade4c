//! Uploads whose Write stream broke off, kept so that the client can resume them.
//!
//! ByteStream spec: after a failed Write the client asks QueryWriteStatus for
//! `committed_size` and continues from there. A Write stream that ends without
//! `finish_write`, or whose future is dropped (client reset, deadline, connection lost), hands
//! its partly filled reservation to this table under its resource name (which includes the
//! client's upload id). A later Write with the same name takes it back and continues at the
//! held offset; the bytes already hashed stay hashed inside the reservation.
//!
//! Bounds: at most `max` entries (the oldest is released when a new one arrives) and each
//! expires after `expiry`; a background task on the executor releases expired entries even when
//! no other request comes. Releasing = dropping the [`Reservation`]: the store forgets a
//! dropped reservation (its pending token dies; the region is never visible and recovery
//! skips it; `Shard::reserve`/eviction prune dead tokens), so no owner round trip is needed.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use crate::store::Reservation;

use super::zstd_codec::ZstdUploadDecoder;

/// An upload in progress: its reservation, the decoder of a compressed upload, and the bytes
/// of the client's stream accepted so far (compressed bytes for a compressed upload).
#[derive(Debug)]
pub(super) struct Upload {
    pub reservation: Reservation,
    pub decoder: Option<ZstdUploadDecoder>,
    pub held_bytes: u64,
}

struct Entry {
    upload: Upload,
    since: Instant,
}

/// The per-executor table; see the module docs.
pub(super) struct SuspendedUploads {
    entries: RefCell<HashMap<String, Entry>>,
    max: usize,
    expiry: Duration,
}

impl SuspendedUploads {
    pub fn new(max: usize, expiry: Duration) -> Rc<SuspendedUploads> {
        Rc::new(SuspendedUploads {
            entries: RefCell::new(HashMap::new()),
            max,
            expiry,
        })
    }

    pub fn len(&self) -> usize {
        self.entries.borrow().len()
    }

    /// Keeps `upload` for a resumed Write of `name`.
    pub fn suspend(&self, name: String, upload: Upload) {
        if self.max == 0 {
            return;
        }
        self.release_expired();
        let mut entries = self.entries.borrow_mut();
        if entries.len() >= self.max && !entries.contains_key(&name) {
            let oldest = entries
                .iter()
                .min_by_key(|(_, entry)| entry.since)
                .map(|(name, _)| name.clone());
            if let Some(oldest) = oldest {
                entries.remove(&oldest);
            }
        }
        let entry = Entry {
            upload,
            since: Instant::now(),
        };
        entries.insert(name, entry);
    }

    /// Takes the suspended upload of `name` back (to resume it).
    pub fn take(&self, name: &str) -> Option<Upload> {
        self.release_expired();
        self.entries.borrow_mut().remove(name).map(|e| e.upload)
    }

    /// Bytes held by the suspended upload of `name`, if any.
    pub fn held_bytes(&self, name: &str) -> Option<u64> {
        self.release_expired();
        self.entries.borrow().get(name).map(|e| e.upload.held_bytes)
    }

    /// Releases every suspended upload (drain: nobody can resume them after the restart, and a
    /// live reservation would hold the checkpoint's replay position back).
    pub fn release_all(&self) {
        self.entries.borrow_mut().clear();
    }

    fn release_expired(&self) {
        let expiry = self.expiry;
        self.entries
            .borrow_mut()
            .retain(|_, entry| entry.since.elapsed() < expiry);
    }
}

/// Starts the task that releases expired uploads; it ends when the table is dropped.
pub(super) fn spawn_expiry(table: &Rc<SuspendedUploads>) {
    let weak: Weak<SuspendedUploads> = Rc::downgrade(table);
    let period = (table.expiry / 4).max(Duration::from_millis(10));
    glommio::spawn_local(async move {
        loop {
            glommio::timer::sleep(period).await;
            match weak.upgrade() {
                Some(table) => table.release_expired(),
                None => return,
            }
        }
    })
    .detach();
}

/// Holds the upload of a running Write call. If the call's future is dropped (client reset,
/// deadline, connection lost) while bytes are held, `Drop` suspends the upload for a resume;
/// paths that end the call take the upload out first and commit or abort it themselves.
pub(super) struct UploadGuard<'a> {
    pub table: &'a SuspendedUploads,
    pub name: String,
    pub upload: Option<Upload>,
}

impl Drop for UploadGuard<'_> {
    fn drop(&mut self) {
        if let Some(upload) = self.upload.take() {
            if upload.held_bytes > 0 {
                self.table.suspend(std::mem::take(&mut self.name), upload);
            }
            // Otherwise the reservation is dropped: released (module docs).
        }
    }
}
