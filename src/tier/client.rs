//! The tier's own thread: an `object_store` client on a small tokio current-thread runtime,
//! fed by the executors through bounded channels. No executor ever waits on a lock or a
//! blocking call here: they `try_send` and await a oneshot reply with a deadline.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::store::ReadHandle;

use super::casblob;
use super::journal::{Entry, Journal};
use super::{TierConfig, TierKind};

/// Reads (GET, HEAD batches) waiting for the tier thread. A full queue answers a read as a miss
/// at once (counted in `tessera_tier_read_errors_total`): a slow tier must not slow local work.
pub const READ_QUEUE_DEPTH: usize = 1024;
/// GETs and HEADs the tier thread runs at once.
pub const READS_IN_FLIGHT_MAX: usize = 64;
/// PUTs the tier thread runs at once.
pub const UPLOAD_WORKERS: usize = 4;
/// One request to the object store gives up after this long (and counts as a failure).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A connection to the object store is given up after this long (a dead store refuses or
/// times out fast, so misses do not wait on it).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Retries inside the client library for one request (object_store's default is 10 over up to
/// 3 minutes; the tier retries uploads itself, and a read is better answered as a miss).
pub const CLIENT_RETRIES_MAX: usize = 2;
/// The client library stops retrying one request after this long.
pub const CLIENT_RETRY_WINDOW: Duration = Duration::from_secs(5);
/// Consecutive failures that open the circuit breaker.
pub const BREAKER_FAILURES: u32 = 5;
/// How long an open breaker answers reads as misses before letting a request try again.
pub const BREAKER_COOLDOWN: Duration = Duration::from_secs(2);
/// Pause between attempts of a failed upload.
pub const UPLOAD_RETRY_PAUSE: Duration = Duration::from_millis(500);

/// The counters behind the `tessera_tier_*` metrics.
#[derive(Debug, Default)]
pub struct TierStats {
    /// Uploads owed and not yet done (in the channel, deferred on an executor, or in flight).
    pub upload_queue: AtomicU64,
    pub uploads: AtomicU64,
    pub upload_errors: AtomicU64,
    /// Owed uploads whose local record was gone at start (evicted before the upload).
    pub uploads_lost: AtomicU64,
    pub read_hits: AtomicU64,
    pub read_misses: AtomicU64,
    pub read_errors: AtomicU64,
    /// Local misses that joined another request's tier fetch of the same key.
    pub read_joined: AtomicU64,
}

/// A simple circuit breaker shared by the executors and the tier thread.
#[derive(Debug)]
pub struct Breaker {
    failures: AtomicU32,
    open_until_ms: AtomicU64,
    epoch: Instant,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker {
            failures: AtomicU32::new(0),
            open_until_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }
}

impl Breaker {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Whether a request may go to the tier now (closed, or half-open after the cooldown).
    pub fn allows(&self) -> bool {
        self.now_ms() >= self.open_until_ms.load(Ordering::Relaxed)
    }

    /// Whether the tier is failing (`tessera_tier_degraded`).
    pub fn degraded(&self) -> bool {
        self.failures.load(Ordering::Relaxed) >= BREAKER_FAILURES
    }

    pub fn success(&self) {
        self.failures.store(0, Ordering::Relaxed);
        self.open_until_ms.store(0, Ordering::Relaxed);
    }

    pub fn failure(&self) {
        let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures >= BREAKER_FAILURES {
            let until = self.now_ms() + BREAKER_COOLDOWN.as_millis() as u64;
            self.open_until_ms.store(until, Ordering::Relaxed);
        }
    }
}

/// The answer to a GET.
#[derive(Debug)]
pub enum Fetched {
    Hit(Bytes),
    Miss,
    /// The tier failed, timed out, or the breaker is open: a miss to the client.
    Failed,
}

/// A read for the tier thread.
pub enum ReadRequest {
    /// `fallback`: bazel-remote's `cas.v2/` key, asked when `path` is absent.
    Get {
        path: String,
        fallback: Option<String>,
        reply: oneshot::Sender<Fetched>,
    },
    /// Best effort: removes an object after a local delete, so the next miss does not bring it
    /// back (not journaled; an upload of the same key still queued can re-create it).
    Delete { path: String },
    /// Presence of each path (or its fallback); a failure is "absent".
    Head {
        paths: Vec<(String, Option<String>)>,
        reply: oneshot::Sender<Vec<bool>>,
    },
}

/// An upload for the tier thread.
pub struct Upload {
    pub path: String,
    pub body: ReadHandle,
    /// The journal entry to close once uploaded (write-behind).
    pub seq: Option<u64>,
    /// Write-through: the answer after one attempt (no retries; the caller journals it).
    pub reply: Option<oneshot::Sender<bool>>,
}

/// A record's body as `Bytes` without a copy (the handle keeps the mapping alive).
struct HandleBody(ReadHandle);

impl AsRef<[u8]> for HandleBody {
    fn as_ref(&self) -> &[u8] {
        self.0.body()
    }
}

/// The process-wide tier client: what executors send to, and the shared counters.
pub struct TierClient {
    pub config: TierConfig,
    reads: mpsc::Sender<ReadRequest>,
    uploads: mpsc::Sender<Upload>,
    pub stats: Arc<TierStats>,
    pub breaker: Arc<Breaker>,
    pub journal: Arc<Journal>,
    /// Owed uploads found in the journal at start; taken once (by executor 0) and queued again.
    owed: Mutex<Option<Vec<Entry>>>,
    /// Largest object read from the tier (`max_blob_size`); a larger one is a miss.
    pub max_object_bytes: u64,
}

/// The HTTP client options of both kinds: bounded connect and request times.
fn client_options(allow_http: bool) -> object_store::ClientOptions {
    object_store::ClientOptions::new()
        .with_allow_http(allow_http)
        .with_connect_timeout(CONNECT_TIMEOUT)
        .with_timeout(REQUEST_TIMEOUT)
}

fn retry_config() -> object_store::RetryConfig {
    object_store::RetryConfig {
        max_retries: CLIENT_RETRIES_MAX,
        retry_timeout: CLIENT_RETRY_WINDOW,
        ..object_store::RetryConfig::default()
    }
}

fn build_store(config: &TierConfig) -> Result<Arc<dyn ObjectStore>, String> {
    match config.kind {
        TierKind::S3 => {
            let allow_http = config
                .endpoint
                .as_deref()
                .is_some_and(|e| e.starts_with("http://"));
            let mut builder = object_store::aws::AmazonS3Builder::from_env()
                .with_client_options(client_options(allow_http))
                .with_retry(retry_config())
                .with_region(config.region.clone())
                .with_bucket_name(config.bucket.clone().unwrap_or_default())
                .with_virtual_hosted_style_request(config.virtual_host_style);
            if let Some(endpoint) = &config.endpoint {
                builder = builder.with_endpoint(endpoint.clone());
            }
            if let (Some(access), Some(secret)) = (&config.access_key, &config.secret_key) {
                builder = builder
                    .with_access_key_id(access.clone())
                    .with_secret_access_key(secret.clone());
            }
            builder
                .build()
                .map(|store| Arc::new(store) as Arc<dyn ObjectStore>)
                .map_err(|e| format!("tier: {e}"))
        }
        TierKind::Http => {
            let url = config.url.clone().unwrap_or_default();
            let options = client_options(url.starts_with("http://"));
            object_store::http::HttpBuilder::new()
                .with_url(url)
                .with_client_options(options)
                .with_retry(retry_config())
                .build()
                .map(|store| Arc::new(store) as Arc<dyn ObjectStore>)
                .map_err(|e| format!("tier: {e}"))
        }
    }
}

impl TierClient {
    /// Builds the client, opens the journal in `data_dir` and starts the tier thread.
    pub fn start(
        config: &TierConfig,
        data_dir: &std::path::Path,
        max_object_bytes: u64,
    ) -> Result<Arc<TierClient>, String> {
        let store = build_store(config)?;
        let (journal, owed) = Journal::open(data_dir)
            .map_err(|e| format!("tier journal in {}: {e}", data_dir.display()))?;
        if !owed.is_empty() {
            tracing::info!(
                owed = owed.len(),
                "tier: uploads owed from before the restart"
            );
        }
        let (reads, read_rx) = mpsc::channel(READ_QUEUE_DEPTH);
        let (uploads, upload_rx) = mpsc::channel(config.queue.max(1));
        let stats = Arc::new(TierStats::default());
        let breaker = Arc::new(Breaker::default());
        let journal = Arc::new(journal);
        let thread = Worker {
            store,
            stats: stats.clone(),
            breaker: breaker.clone(),
            journal: journal.clone(),
            max_object_bytes,
        };
        std::thread::Builder::new()
            .name("tessera-tier".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        tracing::error!(%error, "tier: cannot start its runtime; tier disabled");
                        return;
                    }
                };
                runtime.block_on(thread.run(read_rx, upload_rx));
            })
            .map_err(|e| format!("tier: cannot start its thread: {e}"))?;
        Ok(Arc::new(TierClient {
            config: config.clone(),
            reads,
            uploads,
            stats,
            breaker,
            journal,
            owed: Mutex::new(Some(owed)),
            max_object_bytes,
        }))
    }

    /// The owed uploads found at start, once.
    pub fn take_owed(&self) -> Vec<Entry> {
        self.owed
            .lock()
            .map(|mut owed| owed.take().unwrap_or_default())
            .unwrap_or_default()
    }

    /// Queues a read; `Err` gives the request back when the queue is full or the thread gone.
    pub fn try_read(&self, request: ReadRequest) -> Result<(), ReadRequest> {
        self.reads.try_send(request).map_err(|e| match e {
            mpsc::error::TrySendError::Full(r) | mpsc::error::TrySendError::Closed(r) => r,
        })
    }

    /// Queues an upload; `Err` gives it back when the queue is full.
    pub fn try_upload(&self, upload: Upload) -> Result<(), Upload> {
        self.uploads.try_send(upload).map_err(|e| match e {
            mpsc::error::TrySendError::Full(u) | mpsc::error::TrySendError::Closed(u) => u,
        })
    }

    /// The `tessera_tier_*` lines of `/metrics`.
    pub fn render_metrics(&self, out: &mut String) {
        use crate::protocols::metrics::describe;
        use std::fmt::Write;
        let s = &self.stats;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        for (name, kind, help, value) in [
            (
                "tessera_tier_degraded",
                "gauge",
                "1 while the object-store tier is failing (circuit breaker open); the node still serves.",
                u64::from(self.breaker.degraded()),
            ),
            (
                "tessera_tier_upload_queue",
                "gauge",
                "Acknowledged writes not yet uploaded to the tier.",
                load(&s.upload_queue),
            ),
            (
                "tessera_tier_upload_queue_max",
                "gauge",
                "Uploads queued in memory for the tier thread (tier.queue); more wait in the journal.",
                self.config.queue as u64,
            ),
            (
                "tessera_tier_uploads_total",
                "counter",
                "Objects uploaded to the tier.",
                load(&s.uploads),
            ),
            (
                "tessera_tier_upload_errors_total",
                "counter",
                "Failed upload attempts (retried).",
                load(&s.upload_errors),
            ),
            (
                "tessera_tier_uploads_lost_total",
                "counter",
                "Owed uploads whose local record was gone at start.",
                load(&s.uploads_lost),
            ),
            (
                "tessera_tier_read_hits_total",
                "counter",
                "Local misses served from the tier.",
                load(&s.read_hits),
            ),
            (
                "tessera_tier_read_misses_total",
                "counter",
                "Local misses the tier did not have either.",
                load(&s.read_misses),
            ),
            (
                "tessera_tier_read_errors_total",
                "counter",
                "Tier reads that failed, timed out, were refused by the breaker or a full queue.",
                load(&s.read_errors),
            ),
            (
                "tessera_tier_read_joined_total",
                "counter",
                "Local misses that waited for another request's fetch of the same key.",
                load(&s.read_joined),
            ),
        ] {
            describe(out, name, kind, help);
            let _ = writeln!(out, "{name} {value}");
        }
    }
}

/// What runs on the tier thread.
struct Worker {
    store: Arc<dyn ObjectStore>,
    stats: Arc<TierStats>,
    breaker: Arc<Breaker>,
    journal: Arc<Journal>,
    max_object_bytes: u64,
}

impl Worker {
    async fn run(self, mut reads: mpsc::Receiver<ReadRequest>, uploads: mpsc::Receiver<Upload>) {
        let this = Arc::new(self);
        let uploads = Arc::new(tokio::sync::Mutex::new(uploads));
        for _ in 0..UPLOAD_WORKERS {
            tokio::spawn(this.clone().upload_loop(uploads.clone()));
        }
        let permits = Arc::new(Semaphore::new(READS_IN_FLIGHT_MAX));
        while let Some(request) = reads.recv().await {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let this = this.clone();
            tokio::spawn(async move {
                this.read(request).await;
                drop(permit);
            });
        }
    }

    async fn read(&self, request: ReadRequest) {
        match request {
            ReadRequest::Get {
                path,
                fallback,
                reply,
            } => {
                if !self.breaker.allows() {
                    let _ = reply.send(Fetched::Failed);
                    return;
                }
                let mut fetched = self.get(&path).await;
                if let (Fetched::Miss, Some(fallback)) = (&fetched, &fallback) {
                    fetched = match self.get(fallback).await {
                        Fetched::Hit(file) => match casblob::decode(&file, self.max_object_bytes) {
                            Ok(blob) => Fetched::Hit(Bytes::from(blob)),
                            Err(error) => {
                                tracing::warn!(%error, path = fallback, "tier: unreadable cas.v2 blob");
                                Fetched::Miss
                            }
                        },
                        other => other,
                    };
                }
                let _ = reply.send(fetched);
            }
            ReadRequest::Delete { path } => {
                let location = StorePath::from(path.as_str());
                match tokio::time::timeout(REQUEST_TIMEOUT, self.store.delete(&location)).await {
                    Ok(Ok(())) | Ok(Err(object_store::Error::NotFound { .. })) => {
                        self.breaker.success()
                    }
                    _ => {
                        self.breaker.failure();
                        self.stats.read_errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            ReadRequest::Head { paths, reply } => {
                let mut present = Vec::with_capacity(paths.len());
                for (path, fallback) in &paths {
                    let mut found = self.breaker.allows() && self.head(path).await;
                    if let (false, Some(fallback)) = (found, fallback) {
                        found = self.breaker.allows() && self.head(fallback).await;
                    }
                    present.push(found);
                }
                let _ = reply.send(present);
            }
        }
    }

    async fn get(&self, path: &str) -> Fetched {
        let location = StorePath::from(path);
        let attempt = async {
            let result = self.store.get(&location).await?;
            if result.meta.size > self.max_object_bytes {
                return Ok(None);
            }
            result.bytes().await.map(Some)
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, attempt).await {
            Ok(Ok(Some(bytes))) => {
                self.breaker.success();
                Fetched::Hit(bytes)
            }
            Ok(Ok(None)) | Ok(Err(object_store::Error::NotFound { .. })) => {
                self.breaker.success();
                Fetched::Miss
            }
            Ok(Err(error)) => {
                tracing::debug!(%error, path, "tier: GET failed");
                self.breaker.failure();
                Fetched::Failed
            }
            Err(_) => {
                tracing::debug!(path, "tier: GET timed out");
                self.breaker.failure();
                Fetched::Failed
            }
        }
    }

    async fn head(&self, path: &str) -> bool {
        let location = StorePath::from(path);
        match tokio::time::timeout(REQUEST_TIMEOUT, self.store.head(&location)).await {
            Ok(Ok(_)) => {
                self.breaker.success();
                true
            }
            Ok(Err(object_store::Error::NotFound { .. })) => {
                self.breaker.success();
                false
            }
            _ => {
                self.breaker.failure();
                self.stats.read_errors.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    async fn upload_loop(self: Arc<Self>, queue: Arc<tokio::sync::Mutex<mpsc::Receiver<Upload>>>) {
        loop {
            let next = queue.lock().await.recv().await;
            let Some(upload) = next else {
                return;
            };
            self.upload(upload).await;
        }
    }

    async fn upload(&self, upload: Upload) {
        let location = StorePath::from(upload.path.as_str());
        let payload = PutPayload::from(Bytes::from_owner(HandleBody(upload.body.clone())));
        loop {
            if !self.breaker.allows() && upload.reply.is_none() {
                tokio::time::sleep(UPLOAD_RETRY_PAUSE).await;
                continue;
            }
            let attempt = self.store.put(&location, payload.clone());
            let ok = match tokio::time::timeout(REQUEST_TIMEOUT, attempt).await {
                Ok(Ok(_)) => true,
                Ok(Err(error)) => {
                    tracing::debug!(%error, path = upload.path, "tier: PUT failed");
                    false
                }
                Err(_) => false,
            };
            if ok {
                self.breaker.success();
                self.stats.uploads.fetch_add(1, Ordering::Relaxed);
                if let Some(seq) = upload.seq {
                    if let Err(error) = self.journal.done(seq) {
                        tracing::warn!(%error, "tier journal: cannot record an upload");
                    }
                }
                self.stats.upload_queue.fetch_sub(1, Ordering::Relaxed);
                if let Some(reply) = upload.reply {
                    let _ = reply.send(true);
                }
                return;
            }
            self.breaker.failure();
            self.stats.upload_errors.fetch_add(1, Ordering::Relaxed);
            if let Some(reply) = upload.reply {
                self.stats.upload_queue.fetch_sub(1, Ordering::Relaxed);
                let _ = reply.send(false);
                return;
            }
            tokio::time::sleep(UPLOAD_RETRY_PAUSE).await;
        }
    }
}
