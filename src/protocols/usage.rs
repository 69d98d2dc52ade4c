//! Usage counting per namespace: a [`Layer`] that counts, for each namespace, lookups that hit
//! and missed, committed puts and the body bytes they wrote.
//!
//! ```text
//! front-end ─► Usage ─► Steer ─► owner shard
//!               └─ this thread's table: namespace → (hits, misses, puts, bytes_written)
//! ```
//!
//! These are request counts; what each namespace holds is counted by the store itself (records
//! carry a namespace tag) and merged here by [`stored`]. Each thread counts into its own
//! table (single writer, read by a scrape), as `metrics::latency` does. A table tracks at most
//! [`NAMESPACES_TRACKED_MAX`] namespaces; later ones are summed under [`OTHER`], so a client
//! inventing namespaces cannot grow memory or the metrics page without bound.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use crate::metrics::per_thread::{lock, Tables};
use crate::store::{NamespaceUsage, Reservation, ShardStats, StoreError};

use super::backend::{Backend, Body, ByBody, ByHandle, Layer, LookupBy, ObjectKey, RequestContext};

/// Namespaces counted by name per thread; each costs one map entry (~100 bytes). Beyond it
/// they are summed as [`OTHER`]. `/metrics` shows at most this many names plus `other`.
pub const NAMESPACES_TRACKED_MAX: usize = 64;

/// The label of every namespace beyond [`NAMESPACES_TRACKED_MAX`].
pub const OTHER: &str = "other";

/// One namespace's counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub hits: u64,
    pub misses: u64,
    pub puts: u64,
    pub bytes_written: u64,
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.hits += other.hits;
        self.misses += other.misses;
        self.puts += other.puts;
        self.bytes_written += other.bytes_written;
    }

    /// Requests that touched the namespace (for ranking the busiest).
    pub fn requests(&self) -> u64 {
        self.hits + self.misses + self.puts
    }
}

#[derive(Default)]
struct Table {
    by_namespace: BTreeMap<String, Counts>,
    other: Counts,
}

impl Table {
    fn counts(&mut self, namespace: &str) -> &mut Counts {
        if !self.by_namespace.contains_key(namespace) {
            if self.by_namespace.len() >= NAMESPACES_TRACKED_MAX {
                return &mut self.other;
            }
            self.by_namespace
                .insert(namespace.to_owned(), Counts::default());
        }
        self.by_namespace
            .get_mut(namespace)
            .expect("inserted above")
    }
}

static TABLES: Tables<Table> = Tables::new();

thread_local! {
    static MINE: Arc<Mutex<Table>> = TABLES.register(Table::default());
}

fn count(namespace: &str, change: impl FnOnce(&mut Counts)) {
    MINE.with(|table| change(lock(table).counts(namespace)));
}

/// Every thread's counts merged, busiest first, at most [`NAMESPACES_TRACKED_MAX`] names; the
/// rest (and every thread's overflow) summed as the last entry, [`OTHER`], if it counted
/// anything.
pub fn snapshot() -> Vec<(String, Counts)> {
    let mut merged: BTreeMap<String, Counts> = BTreeMap::new();
    let mut other = Counts::default();
    let tables = TABLES.all();
    for table in tables {
        let table = lock(&table);
        for (namespace, counts) in &table.by_namespace {
            merged.entry(namespace.clone()).or_default().add(counts);
        }
        other.add(&table.other);
    }
    let mut ranked: Vec<(String, Counts)> = merged.into_iter().collect();
    ranked.sort_by(|a, b| b.1.requests().cmp(&a.1.requests()).then(a.0.cmp(&b.0)));
    for (_, counts) in ranked.iter().skip(NAMESPACES_TRACKED_MAX) {
        other.add(counts);
    }
    ranked.truncate(NAMESPACES_TRACKED_MAX);
    if other != Counts::default() {
        ranked.push((OTHER.to_owned(), other));
    }
    ranked
}

/// What each namespace holds in the store (live entries and their record bytes), merged over
/// the shards, largest first, at most [`NAMESPACES_TRACKED_MAX`] names; the rest summed as the
/// last entry, [`OTHER`], if there is any. Entries the store cannot attribute (written before
/// namespace tags) are under `unknown`.
pub fn stored(shards: &[(u32, ShardStats)]) -> Vec<(String, NamespaceUsage)> {
    let mut merged: BTreeMap<&str, NamespaceUsage> = BTreeMap::new();
    for (_, stats) in shards {
        for (namespace, usage) in &stats.namespaces {
            let slot = merged.entry(namespace).or_default();
            slot.objects += usage.objects;
            slot.bytes += usage.bytes;
        }
    }
    let mut ranked: Vec<(String, NamespaceUsage)> = merged
        .into_iter()
        .map(|(namespace, usage)| (namespace.to_owned(), usage))
        .collect();
    ranked.sort_by(|a, b| b.1.bytes.cmp(&a.1.bytes).then(a.0.cmp(&b.0)));
    let mut other = NamespaceUsage::default();
    for (_, usage) in ranked.iter().skip(NAMESPACES_TRACKED_MAX) {
        other.objects += usage.objects;
        other.bytes += usage.bytes;
    }
    ranked.truncate(NAMESPACES_TRACKED_MAX);
    if other != NamespaceUsage::default() {
        ranked.push((OTHER.to_owned(), other));
    }
    ranked
}

/// The usage-counting decorator (over a shared inner backend: the server's steering backend
/// is also used by others on its executor).
pub struct Usage<B> {
    inner: Rc<B>,
}

impl<B: Backend> Usage<B> {
    pub fn new(inner: Rc<B>) -> Self {
        Usage { inner }
    }
}

impl<B: Backend> Usage<B> {
    /// Either lookup, counted as a hit or a miss of the request's namespace.
    async fn find<L: LookupBy>(
        &self,
        ctx: &RequestContext,
        key: &ObjectKey<'_>,
    ) -> Result<Option<L::Hit>, StoreError> {
        let found = L::lookup(&*self.inner, ctx, key).await;
        match &found {
            Ok(Some(_)) => count(ctx.namespace.as_str(), |c| c.hits += 1),
            Ok(None) => count(ctx.namespace.as_str(), |c| c.misses += 1),
            Err(_) => {}
        }
        found
    }
}

impl<B: Backend> Layer for Usage<B> {
    type Inner = B;

    fn inner(&self) -> &B {
        &self.inner
    }

    async fn lookup(
        &self,
        ctx: &RequestContext,
        key: &ObjectKey<'_>,
    ) -> Result<Option<crate::store::ReadHandle>, StoreError> {
        self.find::<ByHandle>(ctx, key).await
    }

    /// Counted like `lookup`: a streaming tier hit is a hit (even if it then breaks off).
    async fn lookup_body(
        &self,
        ctx: &RequestContext,
        key: &ObjectKey<'_>,
    ) -> Result<Option<Body>, StoreError> {
        self.find::<ByBody>(ctx, key).await
    }

    async fn commit(
        &self,
        ctx: &RequestContext,
        reservation: Reservation,
    ) -> Result<(), StoreError> {
        let bytes = reservation.body_len();
        self.inner.commit(ctx, reservation).await?;
        count(ctx.namespace.as_str(), |c| {
            c.puts += 1;
            c.bytes_written += bytes;
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::backend::{LocalBackend, Namespace, Protocol, Put};
    use crate::protocols::pipeline::store_bytes;
    use crate::store::{Kind, Meta};

    fn counts_of(namespace: &str) -> Counts {
        snapshot()
            .into_iter()
            .find(|(n, _)| n == namespace)
            .map(|(_, c)| c)
            .unwrap_or_default()
    }

    #[test]
    fn counts_hits_misses_puts_and_bytes_per_namespace() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::store::StoreConfig::new(dir.path(), 1);
        crate::store::DataDir::open(&config).unwrap();
        let shard = crate::store::Shard::open(&config, 0).unwrap();
        let usage = Usage::new(Rc::new(LocalBackend::new(shard)));
        let ctx = RequestContext::new(Namespace::new("usage-test/a"), Protocol::Gradle);
        let other = RequestContext::new(Namespace::new("usage-test/b"), Protocol::Gradle);
        let key = ctx.key(Kind::Blob, b"k1");
        let put = Put {
            key,
            body_len: 5,
            meta: Meta::new(),
            expect: None,
            if_absent: false,
        };
        futures_lite::future::block_on(async {
            assert!(Backend::lookup(&usage, &ctx, &key).await.unwrap().is_none());
            store_bytes(&usage, &ctx, &put, b"hello").await.unwrap();
            assert!(Backend::lookup(&usage, &ctx, &key).await.unwrap().is_some());
            // The streaming read counts as `lookup` does.
            assert!(Backend::lookup_body(&usage, &ctx, &key)
                .await
                .unwrap()
                .is_some());
            let other_key = other.key(Kind::Blob, b"k1");
            assert!(Backend::lookup_body(&usage, &other, &other_key)
                .await
                .unwrap()
                .is_none());
        });
        let a = counts_of("usage-test/a");
        assert_eq!(
            a,
            Counts {
                hits: 2,
                misses: 1,
                puts: 1,
                bytes_written: 5
            }
        );
        assert_eq!(counts_of("usage-test/b").misses, 1);
    }

    #[test]
    fn namespaces_beyond_the_bound_are_summed_as_other() {
        // A table of its own, so other tests' namespaces do not take places.
        let mut table = Table::default();
        for i in 0..NAMESPACES_TRACKED_MAX + 10 {
            table.counts(&format!("n{i}")).misses += 1;
        }
        assert_eq!(table.by_namespace.len(), NAMESPACES_TRACKED_MAX);
        assert_eq!(table.other.misses, 10);
        // A tracked namespace keeps counting by name once the table is full.
        table.counts("n0").hits += 1;
        assert_eq!(table.by_namespace["n0"].hits, 1);
    }
}
