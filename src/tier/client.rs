//! The tier's own thread: an `object_store` client on a small tokio current-thread runtime,
//! fed by the executors through bounded channels. No executor ever waits on a blocking call
//! here: they `try_send` and await a oneshot reply with a deadline. The one lock an executor
//! takes is the map of tier GETs in flight ([`TierClient::begin_fill`]), for one insert or
//! removal.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};

use crate::store::{ReadHandle, SegmentHold};

use super::casblob;
use super::journal::{Entry, Journal};
use super::{TierConfig, TierKind};

/// Reads (GET, HEAD batches) waiting for the tier thread. A full queue answers a read as a miss
/// at once (counted in `tessera_tier_read_errors_total`): a slow tier must not slow local work.
pub const READ_QUEUE_DEPTH: usize = 1024;
/// GETs and HEADs the tier thread runs at once.
pub const READS_IN_FLIGHT_MAX: usize = 64;
/// PUTs the tier thread runs at once unless `tier.uploads` says otherwise. An upload to a
/// remote object store takes tens of milliseconds, so the drain rate is about this many
/// divided by the store's PUT latency (64 at 30 ms: ~2,000 uploads/s); bazel-remote runs 100.
pub const UPLOADS_IN_FLIGHT_DEFAULT: usize = 64;
/// The most `tier.uploads` may ask for (each in-flight upload holds a connection and a task).
pub const UPLOADS_IN_FLIGHT_MAX: usize = 1024;
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
/// While the breaker is open, the tier thread probes the store this often (one HEAD of an
/// object that need not exist), so the node notices it is back even with no traffic.
pub const PROBE_PERIOD: Duration = Duration::from_secs(1);
/// The object the probe asks for (under `prefix`); absent is a healthy answer.
pub const PROBE_OBJECT: &str = "tessera-probe";
/// Pause between attempts of a failed upload.
pub const UPLOAD_RETRY_PAUSE: Duration = Duration::from_millis(500);

/// The counters behind the `tessera_tier_*` metrics.
#[derive(Debug, Default)]
pub struct TierStats {
    /// Uploads owed and not yet done (in the channel, deferred on an executor, or in flight).
    pub upload_queue: AtomicU64,
    pub uploads: AtomicU64,
    pub upload_errors: AtomicU64,
    /// Owed uploads found in the journal at start whose local record was gone (deleted,
    /// damaged, or evicted at open by a lowered max_size); a running node holds every owed
    /// record's segment, so eviction never causes one.
    pub uploads_lost: AtomicU64,
    /// Writes refused (`NoSpace`) because `layer::OWED_MAX` uploads were owed.
    pub writes_refused: AtomicU64,
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

/// Chunks of one tier hit in flight from the tier thread to the executor that writes them into
/// the local record. Each chunk is what the HTTP client read at once (tens of KiB), so a hit
/// of any size costs about this many chunks of memory, never the whole object; a slow local
/// writer slows the download instead (TCP backpressure).
pub const FILL_CHUNKS_MAX: usize = 8;

/// A tier hit on its way in: its size and metadata first, then its body in chunks.
#[derive(Debug)]
pub struct Incoming {
    /// The body's length (the object's size; for a `cas.v2/` object, the decoded blob's).
    pub size: u64,
    /// The record metadata it was uploaded with (`content-type` and the kept headers, such as
    /// Turborepo's `x-artifact-*`), as far as the store gives it back.
    pub meta: Vec<(String, String)>,
    /// The body in order; an `Err` (the download failed or stalled) ends it unfinished, as
    /// does a closed channel before `size` bytes arrived.
    pub chunks: mpsc::Receiver<Result<Bytes, ()>>,
}

/// The answer to a GET.
#[derive(Debug)]
pub enum Fetched {
    Hit(Incoming),
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
    /// Keeps the record's segment from eviction until the upload is done (write-behind).
    pub hold: Option<SegmentHold>,
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
    /// Tier GETs in flight in the whole process, by object path: a miss on another core waits
    /// for the running fill instead of asking the store again. One entry per fill, which each
    /// executor bounds (its queued and running reads, `READ_QUEUE_DEPTH` + `READS_IN_FLIGHT_MAX`
    /// at most).
    fills: Mutex<std::collections::HashMap<String, watch::Receiver<()>>>,
}

/// A tier GET and local fill this executor runs for `path` (see [`TierClient::begin_fill`]).
/// Dropping it (the fill ended: stored, missed or failed) wakes every core waiting for it.
pub struct FillInFlight {
    client: Arc<TierClient>,
    path: String,
    _done: watch::Sender<()>,
}

impl Drop for FillInFlight {
    fn drop(&mut self) {
        let mut fills = self.client.fills.lock().unwrap_or_else(|p| p.into_inner());
        fills.remove(&self.path);
        // `_done` drops after this: its receivers' `changed()` ends.
    }
}

/// Another core's fill of the same path: [`FillRunning::finished`] resolves when it ends.
pub struct FillRunning(watch::Receiver<()>);

impl FillRunning {
    /// Waits until the fill ended (its record, if any, is then committed in the shared store).
    pub async fn finished(mut self) {
        while self.0.changed().await.is_ok() {}
    }
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

/// The client of the configured kind. Nothing is contacted here: a wrong bucket or credential
/// shows as failed requests (and a degraded tier), not as a start-up error.
pub fn build_store(config: &TierConfig) -> Result<Arc<dyn ObjectStore>, String> {
    let endpoint_is_http = config
        .endpoint
        .as_deref()
        .is_some_and(|e| e.starts_with("http://"));
    match config.kind {
        TierKind::Gcs => {
            let mut builder = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_client_options(client_options(endpoint_is_http))
                .with_retry(retry_config())
                .with_bucket_name(config.bucket.clone().unwrap_or_default());
            if let Some(endpoint) = &config.endpoint {
                builder = builder.with_base_url(endpoint);
            }
            if let Some(credentials) = &config.credentials {
                builder = builder.with_service_account_path(credentials.clone());
            }
            builder
                .build()
                .map(|store| Arc::new(store) as Arc<dyn ObjectStore>)
                .map_err(|e| format!("tier (gcs): {e}"))
        }
        TierKind::Azure => {
            let mut builder = object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_client_options(client_options(endpoint_is_http))
                .with_retry(retry_config())
                .with_allow_http(endpoint_is_http)
                .with_container_name(config.bucket.clone().unwrap_or_default());
            if let Some(endpoint) = &config.endpoint {
                builder = builder.with_endpoint(endpoint.clone());
            }
            if let Some(account) = &config.account {
                builder = builder.with_account(account.clone());
            }
            if let Some(key) = &config.account_key {
                builder = builder.with_access_key(key.clone());
            }
            builder
                .build()
                .map(|store| Arc::new(store) as Arc<dyn ObjectStore>)
                .map_err(|e| format!("tier (azure): {e}"))
        }
        TierKind::S3 => {
            let mut builder = object_store::aws::AmazonS3Builder::from_env()
                .with_client_options(client_options(endpoint_is_http))
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
            prefix: config.prefix.clone(),
            store,
            stats: stats.clone(),
            breaker: breaker.clone(),
            journal: journal.clone(),
            max_object_bytes,
            uploads_in_flight: config.uploads.clamp(1, UPLOADS_IN_FLIGHT_MAX),
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
            fills: Mutex::new(std::collections::HashMap::new()),
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
    /// Claims the tier GET of `path` for the calling executor, or, when another core's fill of
    /// it is running, returns that fill to wait for: concurrent misses for one object make one
    /// tier request in the whole process, not one per core.
    pub fn begin_fill(self: &Arc<Self>, path: &str) -> Result<FillInFlight, FillRunning> {
        let mut fills = self.fills.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(running) = fills.get(path) {
            return Err(FillRunning(running.clone()));
        }
        let (done, running) = watch::channel(());
        fills.insert(path.to_owned(), running);
        Ok(FillInFlight {
            client: self.clone(),
            path: path.to_owned(),
            _done: done,
        })
    }

    pub fn try_upload(&self, upload: Upload) -> Result<(), Upload> {
        self.uploads.try_send(upload).map_err(|e| match e {
            mpsc::error::TrySendError::Full(u) | mpsc::error::TrySendError::Closed(u) => u,
        })
    }

    /// The tier as `/ready` names it while its circuit breaker is open; `None` while healthy.
    pub fn degraded_part(&self) -> Option<crate::protocols::health::Degraded> {
        if !self.breaker.degraded() {
            return None;
        }
        let owed = self.stats.upload_queue.load(Ordering::Relaxed);
        Some(crate::protocols::health::Degraded {
            part: "tier".into(),
            reason: format!(
                "down: the object store failed {BREAKER_FAILURES} requests in a row; local \
                 misses are misses, writes are kept locally and uploaded when it returns \
                 ({owed} owed)"
            ),
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
                "Uploads queued for the tier thread (tier.queue); more wait on their executor (all are journaled).",
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
                "Owed uploads found in the journal at start whose local record was gone (deleted, damaged, or evicted at open after max_size was lowered); eviction never drops an owed record.",
                load(&s.uploads_lost),
            ),
            (
                "tessera_tier_writes_refused_total",
                "counter",
                "Writes refused with 507 because the node owed the tier its maximum of uploads.",
                load(&s.writes_refused),
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
                "Local misses that waited for another request's fetch of the same key (on any core).",
                load(&s.read_joined),
            ),
        ] {
            describe(out, name, kind, help);
            let _ = writeln!(out, "{name} {value}");
        }
    }
}

/// A GET whose headers arrived.
enum Opened {
    Found(object_store::GetResult),
    Miss,
    Failed,
}

/// The record metadata an object carries back: its content type and its user metadata
/// (`x-amz-meta-*` on S3), which is where [`upload_options`] put the rest.
fn record_meta(attributes: &object_store::Attributes) -> Vec<(String, String)> {
    use object_store::Attribute;
    attributes
        .iter()
        .filter_map(|(attribute, value)| match attribute {
            Attribute::ContentType => {
                Some((CONTENT_TYPE_META.to_owned(), value.as_ref().to_owned()))
            }
            Attribute::Metadata(name) => Some((name.to_string(), value.as_ref().to_owned())),
            _ => None,
        })
        .collect()
}

/// The attributes an upload carries: the record's metadata (its content type as the object's
/// content type, every other field as user metadata of the same name), so that a node filling
/// from the tier serves it as this one does. A field that is not UTF-8 is left out.
fn upload_options(body: &ReadHandle) -> object_store::PutOptions {
    use object_store::Attribute;
    let mut attributes = object_store::Attributes::new();
    for (name, value) in body.meta().iter() {
        let Ok(value) = std::str::from_utf8(value) else {
            continue;
        };
        let attribute = match name {
            CONTENT_TYPE_META => Attribute::ContentType,
            other => Attribute::Metadata(other.to_owned().into()),
        };
        attributes.insert(attribute, value.to_owned().into());
    }
    object_store::PutOptions {
        attributes,
        ..object_store::PutOptions::default()
    }
}

/// The record metadata name of the content type (the pipeline's).
pub const CONTENT_TYPE_META: &str = "content-type";

/// What runs on the tier thread.
struct Worker {
    /// `tier.prefix` (the probe's object lives under it).
    prefix: String,
    store: Arc<dyn ObjectStore>,
    stats: Arc<TierStats>,
    breaker: Arc<Breaker>,
    journal: Arc<Journal>,
    max_object_bytes: u64,
    /// Upload tasks (`tier.uploads`).
    uploads_in_flight: usize,
}

impl Worker {
    async fn run(self, mut reads: mpsc::Receiver<ReadRequest>, uploads: mpsc::Receiver<Upload>) {
        let this = Arc::new(self);
        let uploads = Arc::new(tokio::sync::Mutex::new(uploads));
        for _ in 0..this.uploads_in_flight {
            tokio::spawn(this.clone().upload_loop(uploads.clone()));
        }
        tokio::spawn(this.clone().probe_loop());
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

    /// Probes the store while the breaker is open: a success closes it.
    async fn probe_loop(self: Arc<Self>) {
        loop {
            tokio::time::sleep(PROBE_PERIOD).await;
            if self.breaker.degraded() {
                let path = match self.prefix.trim_matches('/') {
                    "" => PROBE_OBJECT.to_owned(),
                    prefix => format!("{prefix}/{PROBE_OBJECT}"),
                };
                let location = StorePath::from(path.as_str());
                let asked = tokio::time::timeout(REQUEST_TIMEOUT, self.store.head(&location));
                match asked.await {
                    Ok(Ok(_)) | Ok(Err(object_store::Error::NotFound { .. })) => {
                        self.breaker.success()
                    }
                    _ => self.breaker.failure(),
                }
            }
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
                match self.open(&path).await {
                    Opened::Found(result) => self.stream(result, reply).await,
                    Opened::Failed => {
                        let _ = reply.send(Fetched::Failed);
                    }
                    Opened::Miss => {
                        let fetched = match &fallback {
                            Some(fallback) => self.get_cas_v2(fallback).await,
                            None => Fetched::Miss,
                        };
                        let _ = reply.send(fetched);
                    }
                }
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

    /// Starts a GET: the object's metadata has arrived, its body not yet.
    async fn open(&self, path: &str) -> Opened {
        let location = StorePath::from(path);
        match tokio::time::timeout(REQUEST_TIMEOUT, self.store.get(&location)).await {
            Ok(Ok(result)) if result.meta.size > self.max_object_bytes => {
                self.breaker.success();
                Opened::Miss
            }
            Ok(Ok(result)) => {
                self.breaker.success();
                Opened::Found(result)
            }
            Ok(Err(object_store::Error::NotFound { .. })) => {
                self.breaker.success();
                Opened::Miss
            }
            Ok(Err(error)) => {
                tracing::debug!(%error, path, "tier: GET failed");
                self.breaker.failure();
                Opened::Failed
            }
            Err(_) => {
                tracing::debug!(path, "tier: GET timed out");
                self.breaker.failure();
                Opened::Failed
            }
        }
    }

    /// Answers a GET with its size and content type, then forwards its body chunk by chunk
    /// through a channel of [`FILL_CHUNKS_MAX`] until it ends, fails, stalls for
    /// [`REQUEST_TIMEOUT`], or the executor stops listening.
    async fn stream(&self, result: object_store::GetResult, reply: oneshot::Sender<Fetched>) {
        use futures::StreamExt;
        let (sender, chunks) = mpsc::channel(FILL_CHUNKS_MAX);
        let incoming = Incoming {
            size: result.meta.size,
            meta: record_meta(&result.attributes),
            chunks,
        };
        if reply.send(Fetched::Hit(incoming)).is_err() {
            return;
        }
        let mut body = result.into_stream();
        loop {
            let chunk = match tokio::time::timeout(REQUEST_TIMEOUT, body.next()).await {
                Ok(None) => return,
                Ok(Some(Ok(chunk))) => Ok(chunk),
                Ok(Some(Err(error))) => {
                    tracing::debug!(%error, "tier: a GET body broke off");
                    self.breaker.failure();
                    Err(())
                }
                Err(_) => {
                    tracing::debug!("tier: a GET body stalled");
                    self.breaker.failure();
                    Err(())
                }
            };
            let failed = chunk.is_err();
            if sender.send(chunk).await.is_err() || failed {
                return;
            }
        }
    }

    /// bazel-remote's zstd `cas.v2/` object at `path`, decoded whole (its chunk table comes
    /// first, but its frames are only worth decoding once they are all here; it is at most
    /// `max_object_bytes`).
    async fn get_cas_v2(&self, path: &str) -> Fetched {
        let result = match self.open(path).await {
            Opened::Found(result) => result,
            Opened::Miss => return Fetched::Miss,
            Opened::Failed => return Fetched::Failed,
        };
        let file = match tokio::time::timeout(REQUEST_TIMEOUT, result.bytes()).await {
            Ok(Ok(file)) => file,
            _ => {
                self.breaker.failure();
                return Fetched::Failed;
            }
        };
        let blob = match casblob::decode(&file, self.max_object_bytes) {
            Ok(blob) => Bytes::from(blob),
            Err(error) => {
                tracing::warn!(%error, path, "tier: unreadable cas.v2 blob");
                return Fetched::Miss;
            }
        };
        let (sender, chunks) = mpsc::channel(1);
        let size = blob.len() as u64;
        sender
            .try_send(Ok(blob))
            .expect("a new channel of one has room for one");
        Fetched::Hit(Incoming {
            size,
            meta: Vec::new(),
            chunks,
        })
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

    /// Compacts the journal once it has grown enough (on this thread: a few ms, rarely).
    fn compact_journal_if_grown(&self) {
        if !self.journal.wants_compaction() {
            return;
        }
        match self.journal.compact() {
            Ok(owed) => tracing::info!(owed, "tier journal compacted"),
            Err(error) => {
                tracing::warn!(%error, "tier journal: compaction failed; it keeps growing");
                self.journal.postpone_compaction();
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
        let options = upload_options(&upload.body);
        loop {
            if !self.breaker.allows() && upload.reply.is_none() {
                tokio::time::sleep(UPLOAD_RETRY_PAUSE).await;
                continue;
            }
            let attempt = self
                .store
                .put_opts(&location, payload.clone(), options.clone());
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
                    self.compact_journal_if_grown();
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

#[cfg(test)]
mod tests {
    use super::*;

    /// GCS and Azure cannot be reached from the test machine: what is checked is that the
    /// settings reach the client library, which builds a client from them (or names what is
    /// wrong) without contacting anything.
    #[test]
    fn gcs_and_azure_clients_are_built_from_their_settings() {
        let dir = tempfile::tempdir().unwrap();
        let azure = TierConfig {
            kind: TierKind::Azure,
            bucket: Some("cache".into()),
            account: Some("tesseraacct".into()),
            // Azure account keys are base64.
            account_key: Some("dGVzc2VyYSB0ZXN0IGtleQ==".into()),
            ..TierConfig::default()
        };
        build_store(&azure).expect("an azure client from account and key");
        let emulator = TierConfig {
            endpoint: Some("http://127.0.0.1:10000/tesseraacct".into()),
            ..azure.clone()
        };
        build_store(&emulator).expect("an azure client for an emulator endpoint");

        // A service-account file: the library reads it when the client is built.
        let key_file = dir.path().join("gcs.json");
        std::fs::write(
            &key_file,
            r#"{"type":"service_account","private_key":"-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n","client_email":"t@p.iam.gserviceaccount.com","private_key_id":"k"}"#,
        )
        .unwrap();
        let gcs = TierConfig {
            kind: TierKind::Gcs,
            bucket: Some("cache".into()),
            credentials: Some(key_file.display().to_string()),
            ..TierConfig::default()
        };
        // The key in it is not a real RSA key: the library read the file, parsed the JSON and
        // got as far as the key, which is all that can be checked without Google.
        let error = build_store(&gcs).expect_err("a bogus private key is refused");
        assert!(
            error.starts_with("tier (gcs):") && error.contains("RSA"),
            "{error}"
        );
        let missing = TierConfig {
            credentials: Some(dir.path().join("absent.json").display().to_string()),
            ..gcs
        };
        let error = build_store(&missing).expect_err("a missing credentials file fails");
        assert!(
            error.starts_with("tier (gcs):") && !error.contains("RSA"),
            "{error}"
        );
    }
}
