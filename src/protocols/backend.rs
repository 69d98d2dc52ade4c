//! The seam between the front-ends and the store: what a front-end may ask, from any core.
//!
//! The server implements [`Backend`] by steering each operation to the shard that owns the key
//! (`store::shard_of`), locally or over the executor mesh; tests implement it over one in-process
//! [`Shard`](crate::store::Shard) ([`LocalBackend`]). Front-ends never see shards, files or maps:
//! they get [`ReadHandle`]s to copy from and [`Reservation`]s to fill.
//!
//! Thread-safety contract: a `Backend` value lives on one executor (`!Send` is fine); the handles it
//! returns are `Send` and may be moved to other cores.

use std::cell::RefCell;

use crate::store::{
    KeyId, PutRequest, ReadHandle, Reservation, Reserved, Shard, ShardStats, StoreError,
};

/// The store operations every front-end is built from.
#[allow(async_fn_in_trait)]
pub trait Backend {
    /// A hit is a handle on the record's bytes; a miss (including a corrupt record) is `None`.
    async fn lookup(&self, id: KeyId) -> Result<Option<ReadHandle>, StoreError>;
    /// Presence of many keys at once, in the order given; counts as a use for eviction.
    async fn contains(&self, ids: &[KeyId]) -> Result<Vec<bool>, StoreError>;
    /// Reserves room for a body of `req.body_len` bytes before any of it is read.
    async fn reserve(&self, req: PutRequest) -> Result<Reserved, StoreError>;
    /// Makes a fully written reservation visible; digest or length errors leave nothing visible.
    async fn commit(&self, reservation: Reservation) -> Result<(), StoreError>;
    /// Releases a reservation that will not be committed.
    async fn abort(&self, reservation: Reservation);
    async fn delete(&self, id: KeyId) -> Result<bool, StoreError>;
    /// Every open shard's counters, by shard index, ascending.
    async fn stats(&self) -> Result<Vec<(u32, ShardStats)>, StoreError>;
}

/// A [`Backend`] over one shard in this thread: for tests and tools.
pub struct LocalBackend {
    shard: RefCell<Shard>,
}

impl LocalBackend {
    pub fn new(shard: Shard) -> Self {
        LocalBackend {
            shard: RefCell::new(shard),
        }
    }

    /// The shard's counters (tests check reservations and hits through it).
    pub fn stats(&self) -> crate::store::ShardStats {
        self.shard.borrow().stats()
    }

    pub fn into_inner(self) -> Shard {
        self.shard.into_inner()
    }
}

impl Backend for LocalBackend {
    async fn lookup(&self, id: KeyId) -> Result<Option<ReadHandle>, StoreError> {
        self.shard.borrow_mut().lookup(&id)
    }
    async fn contains(&self, ids: &[KeyId]) -> Result<Vec<bool>, StoreError> {
        Ok(self.shard.borrow_mut().contains(ids))
    }
    async fn reserve(&self, req: PutRequest) -> Result<Reserved, StoreError> {
        self.shard.borrow_mut().reserve(req)
    }
    async fn commit(&self, reservation: Reservation) -> Result<(), StoreError> {
        self.shard.borrow_mut().commit(reservation)
    }
    async fn abort(&self, reservation: Reservation) {
        self.shard.borrow_mut().abort(reservation)
    }
    async fn delete(&self, id: KeyId) -> Result<bool, StoreError> {
        self.shard.borrow_mut().delete(&id)
    }
    async fn stats(&self) -> Result<Vec<(u32, ShardStats)>, StoreError> {
        Ok(vec![(0, self.shard.borrow().stats())])
    }
}
