//! Steering: every store operation runs on the executor that owns the key's shard.
//!
//! ```text
//!  connection on executor A                       owner executor B
//!  front-end ─► Steer::lookup(id)                  owner task (one per peer receiver)
//!               shard = shard_of(id) ──► owned by B? ─ OwnerOp::Lookup ─mesh─► Shard::lookup
//!               ◄──────── ReadHandle (Arc<Segment>, Send) ── oneshot ◄─────┘
//!  A copies the body from the shared map to its own socket.
//! ```
//!
//! Only small messages cross cores: key ids, put requests, handles and reservations (which carry
//! `Arc`s, never bytes). Operations on a shard this executor owns run inline, with no message.
//! The mesh queues are bounded (`MESH_QUEUE_DEPTH`): a sender waits when an owner is behind,
//! which is the backpressure we want.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use futures::channel::oneshot;
use glommio::channels::channel_mesh::{Receivers, Senders};

use crate::protocols::backend::{Backend, Namespace, ObjectKey, Put, RequestContext};
use crate::store::{
    shard_of, KeyId, NamespaceUsage, PutRequest, ReadHandle, Reservation, Reserved, Shard,
    ShardStats, StoreError,
};

/// Depth of each executor-to-executor queue. Each message is a few dozen bytes plus a oneshot;
/// 1024 in flight per pair is far more than one core can have outstanding usefully, and bounds
/// memory at ~100 KiB per pair.
pub const MESH_QUEUE_DEPTH: usize = 1024;

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// A store operation sent to the shard's owner.
pub enum OwnerOp {
    Lookup {
        shard: u32,
        id: KeyId,
        reply: Reply<Option<ReadHandle>>,
    },
    Contains {
        shard: u32,
        ids: Vec<KeyId>,
        reply: Reply<Vec<bool>>,
    },
    Reserve {
        shard: u32,
        /// The request's namespace: the record is tagged with it.
        namespace: Namespace,
        req: PutRequest,
        reply: Reply<Reserved>,
    },
    Commit {
        shard: u32,
        reservation: Reservation,
        reply: Reply<()>,
    },
    Abort {
        shard: u32,
        reservation: Reservation,
    },
    Delete {
        shard: u32,
        id: KeyId,
        reply: Reply<bool>,
    },
    /// The counters of every shard the receiving executor owns.
    Stats {
        reply: Reply<Vec<(u32, ShardStats)>>,
    },
    /// Purge a namespace on every shard the receiving executor owns.
    Purge {
        namespace: Namespace,
        reply: Reply<Vec<(u32, NamespaceUsage)>>,
    },
}

/// The shards one executor owns. `RefCell` because every access is from this executor's thread
/// and no borrow is held across an `.await`.
pub struct OwnedShards {
    /// `None` once closed.
    shards: BTreeMap<u32, RefCell<Option<Shard>>>,
}

impl OwnedShards {
    pub fn new(shards: BTreeMap<u32, Shard>) -> Self {
        OwnedShards {
            shards: shards
                .into_iter()
                .map(|(i, s)| (i, RefCell::new(Some(s))))
                .collect(),
        }
    }

    /// Runs `operation` on a shard this executor owns (synchronously: no borrow crosses an
    /// `.await`). A closed shard (drain timed out while a request was still in flight) answers
    /// `Unavailable`.
    fn with<T>(
        &self,
        index: u32,
        operation: impl FnOnce(&mut Shard) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // Ownership is computed by one function (`owner_of`) on both sides, so a shard this
        // executor does not own is a programmer error, not an operating one.
        let cell = self
            .shards
            .get(&index)
            .unwrap_or_else(|| panic!("shard {index} routed to an executor that does not own it"));
        match cell.borrow_mut().as_mut() {
            Some(shard) => operation(shard),
            None => Err(StoreError::Unavailable {
                what: "shard is closed (server stopping)",
            }),
        }
    }

    /// Runs one op on its shard and answers. A dropped reply (the asker went away) is fine.
    pub fn apply(&self, op: OwnerOp) {
        match op {
            OwnerOp::Lookup { shard, id, reply } => {
                let _ = reply.send(self.with(shard, |s| s.lookup(&id)));
            }
            OwnerOp::Contains { shard, ids, reply } => {
                let _ = reply.send(self.with(shard, |s| Ok(s.contains(&ids))));
            }
            OwnerOp::Reserve {
                shard,
                namespace,
                req,
                reply,
            } => {
                let _ = reply.send(self.with(shard, |s| s.reserve_in(namespace.as_str(), req)));
            }
            OwnerOp::Commit {
                shard,
                reservation,
                reply,
            } => {
                let _ = reply.send(self.with(shard, |s| s.commit(reservation)));
            }
            OwnerOp::Abort { shard, reservation } => {
                let _ = self.with(shard, |s| {
                    s.abort(reservation);
                    Ok(())
                });
            }
            OwnerOp::Delete { shard, id, reply } => {
                let _ = reply.send(self.with(shard, |s| s.delete(&id)));
            }
            OwnerOp::Stats { reply } => {
                let _ = reply.send(Ok(self.stats()));
            }
            OwnerOp::Purge { namespace, reply } => {
                let _ = reply.send(self.purge(&namespace));
            }
        }
    }

    /// Purges `namespace` on every owned shard; stops at the first shard that fails (the
    /// shards purged before it stay purged: a purge is idempotent, so the caller retries).
    pub fn purge(&self, namespace: &Namespace) -> Result<Vec<(u32, NamespaceUsage)>, StoreError> {
        let mut purged = Vec::new();
        for &index in self.shards.keys() {
            let usage = self.with(index, |s| s.purge(namespace.as_str()))?;
            purged.push((index, usage));
        }
        Ok(purged)
    }

    /// Counters of every owned shard that is still open.
    pub fn stats(&self) -> Vec<(u32, ShardStats)> {
        self.shards
            .iter()
            .filter_map(|(index, cell)| cell.borrow().as_ref().map(|s| (*index, s.stats())))
            .collect()
    }

    /// Periodic work of every owned shard (free-space measurement, checkpoints, syncs).
    pub fn maintenance(&self) {
        for (index, cell) in &self.shards {
            let mut slot = cell.borrow_mut();
            let Some(shard) = slot.as_mut() else { continue };
            match shard.maintenance() {
                Ok(()) => {}
                // The cache goes on; the next checkpoint tries again, and a restart meanwhile
                // replays the log written since the last one.
                Err(error @ StoreError::NoSpace { .. }) => {
                    tracing::warn!(shard = index, %error, "checkpoint not written: the filesystem is full")
                }
                Err(error) => tracing::error!(shard = index, %error, "shard maintenance failed"),
            }
        }
    }

    /// Closes every shard (final checkpoint and sync). A checkpoint that the full filesystem
    /// refused is not a failure: nothing acknowledged is lost (the segments were synced first),
    /// and the next start replays the log written since the previous checkpoint.
    pub fn close(&self) -> Result<(), StoreError> {
        let mut first_error = None;
        for (index, cell) in &self.shards {
            let Some(shard) = cell.borrow_mut().take() else {
                continue;
            };
            match shard.close() {
                Ok(()) => {}
                Err(error @ StoreError::NoSpace { .. }) => tracing::warn!(
                    shard = index,
                    %error,
                    "final checkpoint not written: the filesystem is full; every acknowledged \
                     put is in the synced log, and the next start replays the log written since \
                     the previous checkpoint"
                ),
                Err(error) => {
                    tracing::error!(shard = index, %error, "closing shard failed");
                    first_error.get_or_insert(error);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Which executor owns a shard. Pure; the same on every executor.
pub fn owner_of(shard: u32, executors: usize) -> usize {
    shard as usize % executors
}

/// The steering [`Backend`] of one executor.
pub struct Steer {
    executor: usize,
    executors: usize,
    shards: u32,
    owned: Rc<OwnedShards>,
    mesh: Rc<Senders<OwnerOp>>,
}

impl Steer {
    pub fn new(
        executor: usize,
        executors: usize,
        shards: u32,
        owned: Rc<OwnedShards>,
        mesh: Rc<Senders<OwnerOp>>,
    ) -> Self {
        Steer {
            executor,
            executors,
            shards,
            owned,
            mesh,
        }
    }

    fn shard_of(&self, id: &KeyId) -> u32 {
        shard_of(id, self.shards)
    }

    fn local(&self, shard: u32) -> bool {
        owner_of(shard, self.executors) == self.executor
    }

    /// Sends `op` to the owner of `shard` and waits for the answer.
    async fn ask<T>(
        &self,
        shard: u32,
        make: impl FnOnce(Reply<T>) -> OwnerOp,
    ) -> Result<T, StoreError> {
        self.ask_executor(owner_of(shard, self.executors), make)
            .await
    }

    /// Sends `op` to executor `owner` and waits for the answer.
    async fn ask_executor<T>(
        &self,
        owner: usize,
        make: impl FnOnce(Reply<T>) -> OwnerOp,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        if self.mesh.send_to(owner, make(reply)).await.is_err() {
            return Err(StoreError::Unavailable {
                what: "owner executor has stopped",
            });
        }
        answer.await.unwrap_or(Err(StoreError::Unavailable {
            what: "owner executor dropped the request",
        }))
    }
}

impl Backend for Steer {
    async fn lookup(
        &self,
        _ctx: &RequestContext,
        key: &ObjectKey<'_>,
    ) -> Result<Option<ReadHandle>, StoreError> {
        let id = key.id;
        let shard = self.shard_of(&id);
        if self.local(shard) {
            return self.owned.with(shard, |s| s.lookup(&id));
        }
        self.ask(shard, |reply| OwnerOp::Lookup { shard, id, reply })
            .await
    }

    async fn contains(
        &self,
        _ctx: &RequestContext,
        keys: &[ObjectKey<'_>],
    ) -> Result<Vec<bool>, StoreError> {
        // Group by shard, ask each owner once, then put the answers back in request order.
        let mut groups: BTreeMap<u32, (Vec<usize>, Vec<KeyId>)> = BTreeMap::new();
        for (position, key) in keys.iter().enumerate() {
            let group = groups.entry(self.shard_of(&key.id)).or_default();
            group.0.push(position);
            group.1.push(key.id);
        }
        let mut present = vec![false; keys.len()];
        let asks = groups
            .into_iter()
            .map(|(shard, (positions, ids))| async move {
                let answer = if self.local(shard) {
                    self.owned.with(shard, |s| Ok(s.contains(&ids)))
                } else {
                    self.ask(shard, |reply| OwnerOp::Contains { shard, ids, reply })
                        .await
                };
                answer.map(|found| (positions, found))
            });
        for result in futures::future::join_all(asks).await {
            let (positions, found) = result?;
            for (position, hit) in positions.into_iter().zip(found) {
                present[position] = hit;
            }
        }
        Ok(present)
    }

    async fn reserve(&self, ctx: &RequestContext, put: &Put<'_>) -> Result<Reserved, StoreError> {
        let req = put.store_request();
        let shard = self.shard_of(&req.id);
        if self.local(shard) {
            return self
                .owned
                .with(shard, |s| s.reserve_in(ctx.namespace.as_str(), req));
        }
        let namespace = ctx.namespace.clone();
        self.ask(shard, |reply| OwnerOp::Reserve {
            shard,
            namespace,
            req,
            reply,
        })
        .await
    }

    async fn commit(
        &self,
        _ctx: &RequestContext,
        reservation: Reservation,
    ) -> Result<(), StoreError> {
        let shard = self.shard_of(&reservation.key_id());
        if self.local(shard) {
            return self.owned.with(shard, |s| s.commit(reservation));
        }
        self.ask(shard, |reply| OwnerOp::Commit {
            shard,
            reservation,
            reply,
        })
        .await
    }

    async fn abort(&self, _ctx: &RequestContext, reservation: Reservation) {
        let shard = self.shard_of(&reservation.key_id());
        if self.local(shard) {
            let _ = self.owned.with(shard, |s| {
                s.abort(reservation);
                Ok(())
            });
            return;
        }
        let owner = owner_of(shard, self.executors);
        // If the owner is gone the process is stopping; the reservation is then dropped, which
        // the store guarantees is harmless (never visible, skipped by recovery).
        let _ = self
            .mesh
            .send_to(owner, OwnerOp::Abort { shard, reservation })
            .await;
    }

    async fn delete(&self, _ctx: &RequestContext, key: &ObjectKey<'_>) -> Result<bool, StoreError> {
        let id = key.id;
        let shard = self.shard_of(&id);
        if self.local(shard) {
            return self.owned.with(shard, |s| s.delete(&id));
        }
        self.ask(shard, |reply| OwnerOp::Delete { shard, id, reply })
            .await
    }

    async fn stats(&self) -> Result<Vec<(u32, ShardStats)>, StoreError> {
        let mut all = Vec::new();
        for executor in 0..self.executors {
            if executor == self.executor {
                all.extend(self.owned.stats());
            } else {
                all.extend(
                    self.ask_executor(executor, |reply| OwnerOp::Stats { reply })
                        .await?,
                );
            }
        }
        all.sort_by_key(|(index, _)| *index);
        Ok(all)
    }

    async fn purge(&self, ctx: &RequestContext) -> Result<Vec<(u32, NamespaceUsage)>, StoreError> {
        let mut all = Vec::new();
        for executor in 0..self.executors {
            if executor == self.executor {
                all.extend(self.owned.purge(&ctx.namespace)?);
            } else {
                let namespace = ctx.namespace.clone();
                all.extend(
                    self.ask_executor(executor, |reply| OwnerOp::Purge { namespace, reply })
                        .await?,
                );
            }
        }
        all.sort_by_key(|(index, _)| *index);
        Ok(all)
    }
}

/// Serves the ops that other executors send to this one: one task per peer queue, until the
/// peers close their senders.
pub fn spawn_owner_tasks(owned: Rc<OwnedShards>, mut receivers: Receivers<OwnerOp>) {
    use futures::StreamExt;
    for (_peer, stream) in receivers.streams() {
        let owned = owned.clone();
        glommio::spawn_local(async move {
            let mut stream = Box::pin(stream);
            while let Some(op) = stream.next().await {
                owned.apply(op);
            }
        })
        .detach();
    }
}
