//! [`Tiered`]: the tier as a [`Layer`] over the local backend (one per executor).
//!
//! Without a tier (`[tier]` absent) every operation forwards to the inner backend after one
//! `Option` check; with one, only a local miss, `contains` with absent keys, `reserve` and
//! `commit` do more. A local hit never leaves the executor.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::{FutureExt, LocalBoxFuture, Shared};
use tokio::sync::oneshot;

use crate::protocols::backend::{
    Backend, Body, Layer, Namespace, ObjectKey, Protocol, Put, RequestContext,
};
use crate::protocols::body;
use crate::store::{
    ContentDigest, DigestFunction, KeyId, Kind, Meta, ReadHandle, Reservation, Reserved,
    SegmentHold, StoreError,
};

use super::client::{Fetched, Incoming, ReadRequest, TierClient, Upload, CONTENT_TYPE_META};
use super::layout;
use super::TierWrite;
use crate::protocols::pipeline::DEFAULT_CONTENT_TYPE;

/// Longest wait for the tier on a local miss when the request has no earlier deadline: past it
/// the miss is answered as a miss (the fetch goes on and fills the local store for the next
/// read). A streaming read (`lookup_body`) waits this long for the tier's answer and the local
/// reservation only; its body then arrives at the download's pace, each stall of it bounded by
/// the tier client's `REQUEST_TIMEOUT`.
pub const READ_WAIT: Duration = Duration::from_secs(10);
/// Longest wait for the tier's presence answers in `contains` (then: absent).
pub const CONTAINS_WAIT: Duration = Duration::from_secs(5);
/// Longest wait for a write-through upload before the write is answered 503 (it is still
/// uploaded in the background).
pub const THROUGH_WAIT: Duration = Duration::from_secs(30);
/// Names of open reservations remembered per executor (a reservation carries only its key id;
/// the upload needs the client's name). Two generations of half this size: a reservation
/// dropped without commit or abort is forgotten after two turns.
pub const PENDING_NAMES_MAX: usize = 1 << 16;
/// Uploads owed at once by the whole node (queued, deferred on an executor, or in flight). Each
/// holds its record's segment against eviction (`SegmentHold`) and costs ~200 bytes of memory
/// (a read handle, its object path, a journal sequence number): 2^18 of them are ~50 MiB. At
/// this bound new writes are refused with `NoSpace` (507 / InsufficientStorage /
/// RESOURCE_EXHAUSTED) until uploads drain: an acknowledged write is never dropped to make room.
/// More can be owed only right after a start, when the journal held more (all are held then).
pub const OWED_MAX: u64 = 1 << 18;
/// How often an executor retries its deferred uploads.
pub const DEFERRED_RETRY_PERIOD: Duration = Duration::from_millis(100);

/// An upload owed by this executor that did not fit in the queue yet. Its hold keeps the
/// record's segment from eviction until the upload is done.
struct Deferred {
    path: String,
    body: ReadHandle,
    hold: SegmentHold,
    seq: u64,
}

impl Deferred {
    fn into_upload(self) -> Upload {
        Upload {
            path: self.path,
            body: self.body,
            hold: Some(self.hold),
            seq: Some(self.seq),
            reply: None,
        }
    }
}

/// Open reservations' names and metadata by key id (one generation).
type PendingNames = HashMap<KeyId, (Kind, Vec<u8>, Meta)>;

type Fill = Shared<LocalBoxFuture<'static, Option<ReadHandle>>>;

/// The executor's view of the tier.
struct ExecutorTier {
    client: Arc<TierClient>,
    /// Open reservations' names, two generations.
    pending: RefCell<[PendingNames; 2]>,
    /// Tier fetches in flight on this executor, by object path.
    fetches: RefCell<HashMap<String, Fill>>,
    deferred: RefCell<VecDeque<Deferred>>,
    retrying: Cell<bool>,
}

/// The tier layer over `B`.
pub struct Tiered<B> {
    inner: Rc<B>,
    tier: Option<Rc<ExecutorTier>>,
}

impl<B: Backend + 'static> Tiered<B> {
    /// `tier`: the process's tier client, or `None` (no `[tier]`): a pure pass-through.
    pub fn new(inner: Rc<B>, tier: Option<Arc<TierClient>>) -> Self {
        Tiered {
            inner,
            tier: tier.map(|client| {
                Rc::new(ExecutorTier {
                    client,
                    pending: RefCell::new([HashMap::new(), HashMap::new()]),
                    fetches: RefCell::new(HashMap::new()),
                    deferred: RefCell::new(VecDeque::new()),
                    retrying: Cell::new(false),
                })
            }),
        }
    }

    /// Queues again the uploads the journal owed at start (call on one executor). Each owed
    /// record is looked up and its segment held at once, before the store fills further.
    pub fn requeue_owed(&self) {
        let Some(tier) = &self.tier else {
            return;
        };
        let owed = tier.client.take_owed();
        if owed.is_empty() {
            return;
        }
        tier.client
            .stats
            .upload_queue
            .fetch_add(owed.len() as u64, Ordering::Relaxed);
        let tier = tier.clone();
        let inner = self.inner.clone();
        glommio::spawn_local(async move {
            for entry in owed {
                let ctx = RequestContext::new(entry.namespace.clone(), Protocol::Admin);
                let key = ctx.key(entry.kind, &entry.name);
                let path = Self::path(&tier, &entry.namespace, entry.kind, &entry.name);
                let handle = inner.lookup(&ctx, &key).await.ok().flatten();
                let (Some(path), Some(body)) = (path, handle) else {
                    // Deleted (by a client or an admin purge), found damaged, or evicted at
                    // open because max_size was lowered: nothing left to upload.
                    tracing::warn!(namespace = %entry.namespace, "tier: an owed upload's record is gone");
                    let stats = &tier.client.stats;
                    stats.uploads_lost.fetch_add(1, Ordering::Relaxed);
                    stats.upload_queue.fetch_sub(1, Ordering::Relaxed);
                    let _ = tier.client.journal.done(entry.seq);
                    continue;
                };
                let hold = body.hold();
                tier.deferred.borrow_mut().push_back(Deferred {
                    path,
                    body,
                    hold,
                    seq: entry.seq,
                });
            }
            Self::spawn_retry(&tier);
        })
        .detach();
    }

    fn path(tier: &ExecutorTier, namespace: &Namespace, kind: Kind, name: &[u8]) -> Option<String> {
        let config = &tier.client.config;
        layout::path(config.kind, &config.prefix, namespace, kind, name)
    }

    /// Records an acknowledged write as owed and queues its upload; `hold` keeps its segment
    /// until the upload is done.
    #[allow(clippy::too_many_arguments)]
    fn owe(
        tier: &Rc<ExecutorTier>,
        namespace: &Namespace,
        kind: Kind,
        name: &[u8],
        path: String,
        body: ReadHandle,
        hold: SegmentHold,
    ) -> Result<(), StoreError> {
        let seq = tier
            .client
            .journal
            .owe(namespace, kind, name)
            .map_err(|error| {
                tracing::error!(%error, "tier journal: cannot record an upload");
                StoreError::Unavailable {
                    what: "the tier's upload journal cannot be written",
                }
            })?;
        tier.client
            .stats
            .upload_queue
            .fetch_add(1, Ordering::Relaxed);
        let upload = Upload {
            path,
            body,
            hold: Some(hold),
            seq: Some(seq),
            reply: None,
        };
        if let Err(upload) = tier.client.try_upload(upload) {
            let (Some(hold), Some(seq)) = (upload.hold, upload.seq) else {
                unreachable!("built with both above");
            };
            tier.deferred.borrow_mut().push_back(Deferred {
                path: upload.path,
                body: upload.body,
                hold,
                seq,
            });
            Self::spawn_retry(tier);
        }
        Ok(())
    }

    /// Starts this executor's deferred-upload task unless it runs.
    fn spawn_retry(tier: &Rc<ExecutorTier>) {
        if tier.retrying.replace(true) {
            return;
        }
        let tier = tier.clone();
        glommio::spawn_local(async move {
            loop {
                loop {
                    let Some(next) = tier.deferred.borrow_mut().pop_front() else {
                        break;
                    };
                    if let Err(upload) = tier.client.try_upload(next.into_upload()) {
                        let (Some(hold), Some(seq)) = (upload.hold, upload.seq) else {
                            unreachable!("a deferred upload has both");
                        };
                        tier.deferred.borrow_mut().push_front(Deferred {
                            path: upload.path,
                            body: upload.body,
                            hold,
                            seq,
                        });
                        break;
                    }
                }
                if tier.deferred.borrow().is_empty() {
                    tier.retrying.set(false);
                    return;
                }
                glommio::timer::sleep(DEFERRED_RETRY_PERIOD).await;
            }
        })
        .detach();
    }

    /// The fill of `path` from the tier: joins the one in flight on this executor, or starts
    /// it. A started fill runs as a task of its own to its end (stored or not), even if every
    /// request waiting on it gave up, so the next read finds the record local; its `Fill`
    /// answers the committed record. `stream`: a starter that wants the body while it streams
    /// in gets it from the returned receiver (a `Body::Streaming` once the local reservation
    /// exists, a `Body::Committed` if the key got stored meanwhile; dropped on a miss or
    /// failure). Joiners get no stream: they wait for the commit (a late joiner would need the
    /// bytes already written, which only the committed record gives back).
    fn fill(
        &self,
        tier: &Rc<ExecutorTier>,
        ctx: &RequestContext,
        key: &ObjectKey<'_>,
        path: &str,
        stream: bool,
    ) -> (Fill, Option<oneshot::Receiver<Body>>) {
        if let Some(fill) = tier.fetches.borrow().get(path) {
            tier.client
                .stats
                .read_joined
                .fetch_add(1, Ordering::Relaxed);
            return (fill.clone(), None);
        }
        let in_flight = match tier.client.begin_fill(path) {
            Ok(in_flight) => in_flight,
            Err(running) => {
                // Another core is fetching this object: wait for its fill to end, then read
                // the shared store (a hit if it was stored; a miss otherwise).
                tier.client
                    .stats
                    .read_joined
                    .fetch_add(1, Ordering::Relaxed);
                let inner = self.inner.clone();
                let ctx = ctx.clone();
                let (kind, name, id) = (key.kind, key.name.to_vec(), key.id);
                let fill: Fill = async move {
                    running.finished().await;
                    let key = ObjectKey {
                        kind,
                        name: &name,
                        id,
                    };
                    inner.lookup(&ctx, &key).await.ok().flatten()
                }
                .boxed_local()
                .shared();
                return (fill, None);
            }
        };
        let (reply, answer) = oneshot::channel();
        let config = &tier.client.config;
        let request = ReadRequest::Get {
            path: path.to_owned(),
            fallback: layout::zstd_fallback(
                config.kind,
                &config.prefix,
                &ctx.namespace,
                key.kind,
                key.name,
            ),
            reply,
        };
        let queued = tier.client.try_read(request).is_ok();
        let (head_tx, head_rx) = match stream {
            true => {
                let (tx, rx) = oneshot::channel();
                (Some(tx), Some(rx))
            }
            false => (None, None),
        };
        let (done_tx, done_rx) = oneshot::channel();
        let fill: Fill = done_rx
            .map(|filled| filled.ok().flatten())
            .boxed_local()
            .shared();
        tier.fetches
            .borrow_mut()
            .insert(path.to_owned(), fill.clone());
        let tier = tier.clone();
        let inner = self.inner.clone();
        let ctx = ctx.clone();
        let (kind, name, id) = (key.kind, key.name.to_vec(), key.id);
        let path = path.to_owned();
        glommio::spawn_local(async move {
            let key = ObjectKey {
                kind,
                name: &name,
                id,
            };
            let filled = fetch(&*inner, &tier.client, queued, answer, &ctx, &key, head_tx).await;
            tier.fetches.borrow_mut().remove(&path);
            drop(in_flight);
            let _ = done_tx.send(filled);
        })
        .detach();
        (fill, head_rx)
    }
}

/// Awaits the tier's answer to a GET and stores a hit locally (see [`Tiered::fill`]).
async fn fetch<B: Backend>(
    inner: &B,
    client: &TierClient,
    queued: bool,
    answer: oneshot::Receiver<Fetched>,
    ctx: &RequestContext,
    key: &ObjectKey<'_>,
    head: Option<oneshot::Sender<Body>>,
) -> Option<ReadHandle> {
    let stats = &client.stats;
    if !queued {
        stats.read_errors.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    let incoming = match answer.await {
        Ok(Fetched::Hit(incoming)) => incoming,
        Ok(Fetched::Miss) => {
            stats.read_misses.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Ok(Fetched::Failed) | Err(_) => {
            stats.read_errors.fetch_add(1, Ordering::Relaxed);
            return None;
        }
    };
    stats.read_hits.fetch_add(1, Ordering::Relaxed);
    store_locally(inner, ctx, key, incoming, head).await
}

/// The digest a CAS name of a Bazel namespace promises (`reapi_keys::name`).
fn expected_digest(ctx: &RequestContext, key: &ObjectKey<'_>) -> Option<ContentDigest> {
    if key.kind != Kind::Cas || ctx.namespace.bazel_instance().is_none() {
        return None;
    }
    let function = match key.name.first()? {
        1 => DigestFunction::Sha256,
        2 => DigestFunction::Blake3,
        _ => return None,
    };
    let hash: [u8; 32] = key.name.get(1..)?.try_into().ok()?;
    Some(ContentDigest { function, hash })
}

/// Writes a tier hit into the local store as a normal record (with its metadata) chunk by
/// chunk as it streams in, and returns its handle once committed. A body that breaks off or
/// comes out a different length is aborted (a miss); a CAS body must hash to its digest.
///
/// `head`: a starter that wants the body as it arrives. It gets a `Body::Streaming` once the
/// reservation exists, fed each chunk after it is written into the reservation (the
/// `body::Feed` holds the last chunk until the commit succeeded, so a reader never gets the
/// whole of a body that fails verification); or the committed record when there is nothing to
/// stream (already stored, or an empty body).
async fn store_locally<B: Backend>(
    inner: &B,
    ctx: &RequestContext,
    key: &ObjectKey<'_>,
    incoming: Incoming,
    mut head: Option<oneshot::Sender<Body>>,
) -> Option<ReadHandle> {
    let mut meta = Meta::default();
    for (name, value) in &incoming.meta {
        // The store's default for an object uploaded without one is not worth a field.
        if name == CONTENT_TYPE_META && value == DEFAULT_CONTENT_TYPE {
            continue;
        }
        // A field too long for a record's metadata is left out, not fatal.
        let _ = meta.push(name, value.as_bytes());
    }
    let put = Put {
        key: *key,
        body_len: incoming.size,
        meta,
        expect: expected_digest(ctx, key),
        if_absent: false,
    };
    match inner.reserve(ctx, &put).await {
        Ok(Reserved::Exists) => {}
        Ok(Reserved::Reservation(mut reservation)) => {
            let mut feed = None;
            if incoming.size > 0 {
                if let Some(head) = head.take() {
                    let (tx, streaming) = body::channel(incoming.size, put.meta.clone());
                    // A starter that gave up meanwhile leaves the fill unstreamed.
                    feed = head.send(Body::Streaming(streaming)).is_ok().then_some(tx);
                }
            }
            let mut chunks = incoming.chunks;
            while let Some(chunk) = chunks.recv().await {
                let written = match chunk {
                    Ok(bytes) => reservation
                        .write(&bytes)
                        .map(|()| bytes)
                        .map_err(|e| e.to_string()),
                    Err(()) => Err("the download broke off".to_owned()),
                };
                match written {
                    Ok(bytes) => {
                        if let Some(feed) = &mut feed {
                            feed.offer(bytes).await;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "tier: a fetched object was not stored");
                        inner.abort(ctx, reservation).await;
                        return None;
                    }
                }
            }
            if reservation.written() != reservation.body_len() {
                tracing::warn!("tier: a fetched object ended short; not stored");
                inner.abort(ctx, reservation).await;
                return None;
            }
            if let Err(error) = inner.commit(ctx, reservation).await {
                tracing::warn!(%error, "tier: a fetched object was not stored");
                return None;
            }
            if let Some(feed) = feed {
                let handle = inner.lookup(ctx, key).await.ok().flatten();
                feed.finish(handle.clone());
                return handle;
            }
        }
        Err(error) => {
            tracing::warn!(%error, "tier: no room for a fetched object");
            return None;
        }
    }
    let handle = inner.lookup(ctx, key).await.ok().flatten();
    if let (Some(head), Some(handle)) = (head, &handle) {
        let _ = head.send(Body::Committed(handle.clone()));
    }
    handle
}

/// Waits for `future` until `deadline`; `None` after it.
async fn until<T>(deadline: Instant, future: impl std::future::Future<Output = T>) -> Option<T> {
    let left = deadline.saturating_duration_since(Instant::now());
    futures_lite::future::or(future.map(Some), async move {
        glommio::timer::sleep(left).await;
        None
    })
    .await
}

fn deadline(ctx: &RequestContext, wait: Duration) -> Instant {
    let cap = Instant::now() + wait;
    ctx.deadline.map_or(cap, |deadline| deadline.min(cap))
}

impl<B: Backend + 'static> Layer for Tiered<B> {
    type Inner = B;

    fn inner(&self) -> &B {
        &self.inner
    }

    async fn lookup(
        &self,
        ctx: &RequestContext,
        key: &ObjectKey<'_>,
    ) -> Result<Option<ReadHandle>, StoreError> {
        let local = self.inner.lookup(ctx, key).await?;
        let Some(tier) = &self.tier else {
            return Ok(local);
        };
        if local.is_some() {
            return Ok(local);
        }
        let Some(path) = Self::path(tier, &ctx.namespace, key.kind, key.name) else {
            return Ok(None);
        };
        let (fill, _) = self.fill(tier, ctx, key, &path, false);
        Ok(until(deadline(ctx, READ_WAIT), fill).await.flatten())
    }

    /// As `lookup`, except that the request that starts a tier fill gets the body as it
    /// streams in (a `Body::Streaming` as soon as the tier answered and the local reservation
    /// exists) instead of after the commit. Requests that join a fill in flight wait for its
    /// commit, as `lookup` does.
    async fn lookup_body(
        &self,
        ctx: &RequestContext,
        key: &ObjectKey<'_>,
    ) -> Result<Option<Body>, StoreError> {
        let local = self.inner.lookup(ctx, key).await?;
        let Some(tier) = &self.tier else {
            return Ok(local.map(Body::Committed));
        };
        if local.is_some() {
            return Ok(local.map(Body::Committed));
        }
        let Some(path) = Self::path(tier, &ctx.namespace, key.kind, key.name) else {
            return Ok(None);
        };
        let wait = deadline(ctx, READ_WAIT);
        match self.fill(tier, ctx, key, &path, true) {
            (_, Some(head)) => Ok(until(wait, head).await.and_then(Result::ok)),
            (fill, None) => Ok(until(wait, fill).await.flatten().map(Body::Committed)),
        }
    }

    async fn contains(
        &self,
        ctx: &RequestContext,
        keys: &[ObjectKey<'_>],
    ) -> Result<Vec<bool>, StoreError> {
        let mut present = self.inner.contains(ctx, keys).await?;
        let Some(tier) = &self.tier else {
            return Ok(present);
        };
        let mut asked = Vec::new();
        let mut paths = Vec::new();
        for (index, key) in keys.iter().enumerate() {
            if present[index] {
                continue;
            }
            if let Some(path) = Self::path(tier, &ctx.namespace, key.kind, key.name) {
                let config = &tier.client.config;
                let fallback = layout::zstd_fallback(
                    config.kind,
                    &config.prefix,
                    &ctx.namespace,
                    key.kind,
                    key.name,
                );
                asked.push(index);
                paths.push((path, fallback));
            }
        }
        if paths.is_empty() {
            return Ok(present);
        }
        let (reply, answer) = oneshot::channel();
        if tier
            .client
            .try_read(ReadRequest::Head { paths, reply })
            .is_err()
        {
            tier.client
                .stats
                .read_errors
                .fetch_add(1, Ordering::Relaxed);
            return Ok(present);
        }
        if let Some(Ok(found)) = until(deadline(ctx, CONTAINS_WAIT), answer).await {
            for (index, found) in asked.into_iter().zip(found) {
                present[index] = found;
            }
        }
        Ok(present)
    }

    async fn reserve(&self, ctx: &RequestContext, put: &Put<'_>) -> Result<Reserved, StoreError> {
        if let Some(tier) = &self.tier {
            let stats = &tier.client.stats;
            if stats.upload_queue.load(Ordering::Relaxed) >= OWED_MAX {
                stats.writes_refused.fetch_add(1, Ordering::Relaxed);
                return Err(StoreError::NoSpace {
                    needed: put.body_len,
                    available: 0,
                });
            }
        }
        let reserved = self.inner.reserve(ctx, put).await?;
        if let (Some(tier), Reserved::Reservation(reservation)) = (&self.tier, &reserved) {
            let mut pending = tier.pending.borrow_mut();
            if pending[0].len() >= PENDING_NAMES_MAX / 2 {
                pending[1] = std::mem::take(&mut pending[0]);
            }
            pending[0].insert(
                reservation.key_id(),
                (put.key.kind, put.key.name.to_vec(), put.meta.clone()),
            );
        }
        Ok(reserved)
    }

    async fn commit(
        &self,
        ctx: &RequestContext,
        reservation: Reservation,
    ) -> Result<(), StoreError> {
        let Some(tier) = &self.tier else {
            return self.inner.commit(ctx, reservation).await;
        };
        let id = reservation.key_id();
        let named = {
            let mut pending = tier.pending.borrow_mut();
            let [young, old] = &mut *pending;
            young.remove(&id).or_else(|| old.remove(&id))
        };
        // Held from before the commit, so the record is never evictable before its upload.
        let hold = reservation.hold();
        let unpublished = reservation.unpublished();
        self.inner.commit(ctx, reservation).await?;
        let Some((kind, name, meta)) = named else {
            return Ok(());
        };
        let Some(path) = Self::path(tier, &ctx.namespace, kind, &name) else {
            return Ok(());
        };
        // The upload's body is the record just committed, opened from what the reservation
        // knew: no second trip to the owner core, and the executor never touches the record's
        // pages (the tier thread reads them as it uploads).
        // SAFETY: the commit above returned Ok.
        let body = unsafe { unpublished.committed(meta) };
        match tier.client.config.write {
            TierWrite::Behind => Self::owe(tier, &ctx.namespace, kind, &name, path, body, hold),
            TierWrite::Through => {
                let (reply, answer) = oneshot::channel();
                tier.client
                    .stats
                    .upload_queue
                    .fetch_add(1, Ordering::Relaxed);
                let upload = Upload {
                    path: path.clone(),
                    body: body.clone(),
                    hold: None,
                    seq: None,
                    reply: Some(reply),
                };
                let sent = match tier.client.try_upload(upload) {
                    Ok(()) => until(deadline(ctx, THROUGH_WAIT), answer).await,
                    Err(_) => {
                        tier.client
                            .stats
                            .upload_queue
                            .fetch_sub(1, Ordering::Relaxed);
                        None
                    }
                };
                if let Some(Ok(true)) = sent {
                    return Ok(());
                }
                // Stored locally, not (yet) in the tier: owe it, and say so.
                Self::owe(tier, &ctx.namespace, kind, &name, path, body, hold)?;
                Err(StoreError::Unavailable {
                    what: "the object-store tier did not take the write (tier.write = through)",
                })
            }
        }
    }

    async fn delete(&self, ctx: &RequestContext, key: &ObjectKey<'_>) -> Result<bool, StoreError> {
        let deleted = self.inner.delete(ctx, key).await?;
        if let Some(tier) = &self.tier {
            if let Some(path) = Self::path(tier, &ctx.namespace, key.kind, key.name) {
                if tier.client.try_read(ReadRequest::Delete { path }).is_err() {
                    tier.client
                        .stats
                        .read_errors
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Ok(deleted)
    }

    async fn abort(&self, ctx: &RequestContext, reservation: Reservation) {
        if let Some(tier) = &self.tier {
            let id = reservation.key_id();
            let mut pending = tier.pending.borrow_mut();
            let [young, old] = &mut *pending;
            if young.remove(&id).is_none() {
                old.remove(&id);
            }
        }
        self.inner.abort(ctx, reservation).await
    }
}
