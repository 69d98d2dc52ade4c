//! The seam between the load loop and a wire protocol: [`Protocol`] opens a connection and
//! performs one [`Operation`] on it, checking the answer.
//!
//! Implemented here: [`HttpProtocol`] over our HTTP/1.1 client, with the path schemes of
//! [`PathScheme`] — Bazel HTTP CAS (`/cas/<sha256>`), Bazel HTTP action-level (`/ac/` +
//! `/cas/`), a URL template for peers such as nginx WebDAV, and the request shapes of the
//! Gradle, Nx, Turborepo and ccache clients (reference/clients.md §4–§7), each with the headers
//! that client sends.
//!
//! Bazel gRPC (ByteStream Read/Write, FindMissingBlobs) is the second implementation of this
//! trait, in [`crate::grpc_protocol`]. S3 is the path scheme [`PathScheme::S3`]: path-style
//! requests signed per request with AWS Signature V4 (`tessera::protocols::s3::sigv4`).

use crate::http1_client::Http1Connection;
use crate::rng::mix64;
use crate::stats::{ErrorKind, RequestError};
use crate::workload::{KeySpace, Operation};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tessera::protocols::s3::sigv4::{amz_date, Signer, ToSign, UNSIGNED_PAYLOAD};

/// How an object's 32-byte key is spelled in a request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFormat {
    /// The first `bytes` bytes in lowercase hex: 32 for a SHA-256 (Bazel), 16 for Gradle's
    /// 32-hex cache keys, 8 for turbo's 16-hex task hashes.
    Hex { bytes: usize },
    /// The first `bytes` bytes in lowercase hex with a `/` after the first two characters:
    /// ccache's default `subdirs` layout (`<2>/<38>` for ccache 4.13's 40-hex keys).
    Subdirs { bytes: usize },
    /// The first 8 bytes as a big-endian integer in decimal: Nx's task hashes.
    Decimal,
}

/// A request target `before + key + after`, the key spelled per [`KeyFormat`], written into
/// the send buffer as is; its `Display` (the path) is only built for error messages.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub before: &'a str,
    pub key: &'a [u8; 32],
    pub format: KeyFormat,
    pub after: &'a str,
}

impl Target<'_> {
    pub fn write_to(&self, out: &mut Vec<u8>) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        out.extend_from_slice(self.before.as_bytes());
        let (bytes, slash_after) = match self.format {
            KeyFormat::Hex { bytes } => (bytes, None),
            KeyFormat::Subdirs { bytes } => (bytes, Some(2)),
            KeyFormat::Decimal => {
                let mut word = [0u8; 8];
                word.copy_from_slice(&self.key[..8]);
                let mut digits = [0u8; 20];
                let mut value = u64::from_be_bytes(word);
                let mut at = digits.len();
                loop {
                    at -= 1;
                    digits[at] = b'0' + (value % 10) as u8;
                    value /= 10;
                    if value == 0 {
                        break;
                    }
                }
                out.extend_from_slice(&digits[at..]);
                out.extend_from_slice(self.after.as_bytes());
                return;
            }
        };
        for (position, &b) in self.key[..bytes].iter().enumerate() {
            if slash_after == Some(position * 2) {
                out.push(b'/');
            }
            out.push(DIGITS[(b >> 4) as usize]);
            out.push(DIGITS[(b & 15) as usize]);
        }
        out.extend_from_slice(self.after.as_bytes());
    }
}

impl std::fmt::Display for Target<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut path = Vec::new();
        self.write_to(&mut path);
        f.write_str(&String::from_utf8_lossy(&path))
    }
}

/// Keys never used before, for servers whose entries are immutable: Nx answers a PUT of a hash
/// it already stores with 409 and stores nothing, so a measured Nx write goes to a fresh hash,
/// as every real Nx upload does. Key *n* of a run is `mix64(base + n)` (a bijection, so the
/// keys of one run never repeat); `base` differs per run (clock and process id), so runs against
/// the same server do not collide either (two runs share a key with odds of about
/// keys² / 2⁶⁴).
#[derive(Debug)]
pub struct FreshKeys {
    base: u64,
    next: AtomicU64,
}

impl FreshKeys {
    pub fn new() -> FreshKeys {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        FreshKeys::with_base(mix64(nanos ^ (u64::from(std::process::id()) << 40)))
    }

    pub fn with_base(base: u64) -> FreshKeys {
        FreshKeys {
            base,
            next: AtomicU64::new(0),
        }
    }

    /// The next fresh key: its first 8 bytes carry the value ([`KeyFormat::Decimal`] reads
    /// them), the rest repeat it.
    pub fn next_key(&self) -> [u8; 32] {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let word = mix64(self.base.wrapping_add(n)).to_be_bytes();
        let mut key = [0u8; 32];
        for chunk in key.chunks_mut(8) {
            chunk.copy_from_slice(&word);
        }
        key
    }
}

impl Default for FreshKeys {
    fn default() -> Self {
        FreshKeys::new()
    }
}

/// What a successful operation moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Body bytes sent plus received.
    pub body_bytes: u64,
    /// The server will close the connection; open a new one before the next operation.
    pub reconnect: bool,
}

/// A wire protocol the load generator can drive. Implementations are cloned into every load
/// thread and used from that thread only; their futures need not be `Send` (monoio is
/// thread-per-core), which is why the trait uses plain `async fn`.
#[allow(async_fn_in_trait)]
pub trait Protocol: Clone + Send + 'static {
    type Connection: 'static;

    /// A short name for reports, e.g. `bazel-http`.
    fn name(&self) -> String;

    async fn connect(&self, address: SocketAddr) -> Result<Self::Connection, RequestError>;

    /// Performs `operation` and checks the response completely (status and every body byte). On
    /// an error the caller discards the connection.
    async fn execute(
        &self,
        connection: &mut Self::Connection,
        operation: &Operation,
    ) -> Result<Outcome, RequestError>;
}

/// Where an object lives on an HTTP server, and how a client of that kind asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathScheme {
    /// Bazel HTTP cache, content-addressed blobs only: `GET/PUT {prefix}/cas/<sha256>`.
    BazelCas { prefix: String },
    /// Bazel HTTP cache, whole actions: a read is `GET /ac/<action>` followed by `GET /cas/` of
    /// the output it names; a write uploads the output blob, then the action result.
    BazelAction { prefix: String },
    /// Any server: the template with `{key}` replaced by the object's SHA-256 (hex).
    Template(String),
    /// Gradle's HTTP build cache: `GET/PUT {base}/<32 hex>` (`base` is the path of the `url`
    /// in `settings.gradle`, `/cache` by default), with Gradle's `Accept` / `Content-Type`.
    Gradle { base: String },
    /// Nx's self-hosted cache: `GET/PUT {base}/v1/cache/<decimal hash>` with `Authorization:
    /// Bearer`. Entries are immutable (409 on a stored hash), so measured writes use fresh keys.
    Nx { base: String, token: String },
    /// Turborepo: `GET/PUT {base}/v8/artifacts/<16 hex>?slug=TEAM` with `Authorization: Bearer`;
    /// uploads carry `x-artifact-duration`.
    Turbo {
        base: String,
        team: String,
        token: String,
    },
    /// ccache's HTTP storage, `subdirs` layout: `GET/PUT {base}/<2 hex>/<38 hex>` (`/ccache`
    /// by default).
    Ccache { base: String },
    /// S3, path style: `GET/PUT /{bucket}/<sha256 hex>`, every request signed with AWS
    /// Signature V4 in the header form, `x-amz-content-sha256: UNSIGNED-PAYLOAD` (the body is
    /// not hashed, as S3 allows for header-signed requests), region `us-east-1`.
    S3 {
        bucket: String,
        access_key: String,
        secret_key: String,
    },
}

/// Longest `--team` / `--token`, in bytes; they go into every request as they are.
pub const CREDENTIAL_BYTES_MAX: usize = 256;

/// The options [`PathScheme::parse`] reads besides the protocol name.
#[derive(Debug, Clone, Copy)]
pub struct SchemeOptions<'a> {
    /// `--prefix`: the instance prefix for Bazel, the base path for the other clients (empty:
    /// each client's default).
    pub prefix: &'a str,
    pub template: Option<&'a str>,
    /// Turborepo's team (`TURBO_TEAM`), sent as `?slug=`.
    pub team: &'a str,
    /// The bearer token of Nx and Turborepo.
    pub token: &'a str,
    /// S3's access key id and secret access key.
    pub access_key: &'a str,
    pub secret_key: &'a str,
}

impl Default for SchemeOptions<'_> {
    fn default() -> Self {
        SchemeOptions {
            prefix: "",
            template: None,
            team: "bench",
            token: "t",
            access_key: "AKBENCH",
            secret_key: "bench-secret",
        }
    }
}

/// The protocols `--protocol` accepts for HTTP/1.1 (gRPC ones are parsed by the CLI).
pub const HTTP_PROTOCOLS: &str = "bazel, bazel-ac, template, gradle, nx, turbo, ccache, s3";

impl PathScheme {
    pub fn parse(protocol: &str, options: &SchemeOptions) -> Result<PathScheme, String> {
        let prefix = options.prefix;
        // A base path: `/x` form, no trailing slash; empty means the client's default.
        let base = |default: &str| -> Result<String, String> {
            let trimmed = prefix.trim_end_matches('/');
            if trimmed.is_empty() {
                return Ok(default.to_string());
            }
            if !trimmed.starts_with('/') || trimmed.contains(['?', '#', ' ']) {
                return Err(format!("--prefix `{prefix}` must be a path such as /cache"));
            }
            Ok(trimmed.to_string())
        };
        let credential = |name: &str, value: &str| -> Result<String, String> {
            let allowed = |c: char| c.is_ascii_alphanumeric() || "-._~+/=".contains(c);
            if value.is_empty() || value.len() > CREDENTIAL_BYTES_MAX || !value.chars().all(allowed)
            {
                return Err(format!(
                    "--{name} `{value}` must be 1..={CREDENTIAL_BYTES_MAX} characters of A-Z a-z 0-9 - . _ ~ + / ="
                ));
            }
            Ok(value.to_string())
        };
        match (protocol, options.template) {
            ("bazel", None) | ("bazel-cas", None) => Ok(PathScheme::BazelCas { prefix: prefix.to_string() }),
            ("bazel-ac", None) => Ok(PathScheme::BazelAction { prefix: prefix.to_string() }),
            ("template", Some(t)) if t.starts_with('/') && t.contains("{key}") => Ok(PathScheme::Template(t.to_string())),
            ("template", _) => Err("--protocol template needs --path-template starting with `/` and containing `{key}`".into()),
            (_, Some(_)) => Err("--path-template only applies to --protocol template".into()),
            ("gradle", None) => Ok(PathScheme::Gradle { base: base("/cache")? }),
            ("nx", None) => Ok(PathScheme::Nx { base: base("")?, token: credential("token", options.token)? }),
            ("turbo", None) => {
                let team = credential("team", options.team)?;
                if team.contains(['/', '+', '=']) {
                    return Err(format!("--team `{team}` must not contain / + or ="));
                }
                Ok(PathScheme::Turbo { base: base("")?, team, token: credential("token", options.token)? })
            }
            ("ccache", None) => Ok(PathScheme::Ccache { base: base("/ccache")? }),
            ("s3", None) => {
                let bucket = prefix.trim_matches('/');
                let bucket = if bucket.is_empty() { "bench" } else { bucket };
                if !tessera::config::s3::is_bucket_name(bucket) {
                    return Err(format!("--prefix `{prefix}` must be an S3 bucket name (s3)"));
                }
                let key = |name: &str, value: &str| -> Result<String, String> {
                    if value.is_empty() || value.len() > CREDENTIAL_BYTES_MAX || !value.bytes().all(|b| b.is_ascii_graphic()) {
                        return Err(format!("--{name} must be 1..={CREDENTIAL_BYTES_MAX} printable characters"));
                    }
                    Ok(value.to_string())
                };
                Ok(PathScheme::S3 {
                    bucket: bucket.to_string(),
                    access_key: key("access-key", options.access_key)?,
                    secret_key: key("secret-key", options.secret_key)?,
                })
            }
            ("grpc" | "grpc-find-missing", None) => Err("--protocol grpc is served by grpc_protocol::GrpcProtocol, not by a path scheme".into()),
            (other, None) => Err(format!("unknown --protocol `{other}` ({HTTP_PROTOCOLS})")),
        }
    }

    /// The version of Gradle, turbo and ccache named in their `User-Agent` / version headers.
    const GRADLE_VERSION: &'static str = "8.10.2";
    const TURBO_USER_AGENT: &'static str = "turbo 2.11.11 1.89.0 linux x86_64";
    const CCACHE_USER_AGENT: &'static str = "ccache/4.13";

    /// The header lines (each ending in CRLF) this scheme's client sends with a GET and with a
    /// PUT, besides `Host` and `Content-Length` (reference/clients.md).
    pub fn headers(&self) -> (String, String) {
        match self {
            PathScheme::BazelCas { .. }
            | PathScheme::BazelAction { .. }
            | PathScheme::Template(_) => (String::new(), String::new()),
            // Signed per request (see `HttpProtocol::s3_headers`).
            PathScheme::S3 { .. } => (String::new(), String::new()),
            PathScheme::Gradle { .. } => {
                let common = format!(
                    "X-Gradle-Version: {v}\r\nUser-Agent: Gradle/{v}\r\n",
                    v = Self::GRADLE_VERSION
                );
                (
                    format!(
                        "Accept: application/vnd.gradle.build-cache-artifact.v2, */*\r\n{common}"
                    ),
                    format!(
                        "Content-Type: application/vnd.gradle.build-cache-artifact.v2\r\n{common}"
                    ),
                )
            }
            PathScheme::Nx { token, .. } => {
                // Nx's reqwest client sends its default Content-Type on every request.
                let all = format!(
                    "Authorization: Bearer {token}\r\nContent-Type: application/octet-stream\r\nAccept: application/octet-stream\r\n"
                );
                (all.clone(), all)
            }
            PathScheme::Turbo { token, .. } => {
                let common = format!(
                    "Authorization: Bearer {token}\r\nUser-Agent: {}\r\n",
                    Self::TURBO_USER_AGENT
                );
                (
                    common.clone(),
                    format!("{common}Content-Type: application/octet-stream\r\nx-artifact-duration: 1234\r\n"),
                )
            }
            PathScheme::Ccache { .. } => {
                let common = format!("Accept: */*\r\nUser-Agent: {}\r\n", Self::CCACHE_USER_AGENT);
                (
                    common.clone(),
                    format!("{common}Content-Type: application/octet-stream\r\n"),
                )
            }
        }
    }
}

/// HTTP/1.1 protocol over one [`PathScheme`]. Every GET of a stored object must return 200
/// with exactly its bytes, every GET of a never-written key must return 404, every PUT must
/// return 200, 201 or 204 (Nx: 200, or 409 for a preload of an entry the server already has).
#[derive(Clone)]
pub struct HttpProtocol {
    keys: Arc<KeySpace>,
    scheme: PathScheme,
    host: String,
    /// Request targets are `before + key + after`, precomputed so that the hot path writes the
    /// target straight into the send buffer without allocating.
    cas_before: String,
    cas_after: String,
    ac_before: String,
    format: KeyFormat,
    /// Header lines sent with every GET / PUT (see [`PathScheme::headers`]).
    get_headers: Arc<str>,
    put_headers: Arc<str>,
    /// Immutable entries (Nx): measured writes go to fresh keys, shared by every thread.
    fresh: Option<Arc<FreshKeys>>,
    /// S3: the signer (its signing key cached per day), used by this thread only.
    signer: Option<Box<std::cell::RefCell<Signer>>>,
}

impl HttpProtocol {
    pub fn new(keys: Arc<KeySpace>, scheme: PathScheme, host: String) -> HttpProtocol {
        let hex = KeyFormat::Hex { bytes: 32 };
        let (cas_before, cas_after, format) = match &scheme {
            PathScheme::BazelCas { prefix } | PathScheme::BazelAction { prefix } => {
                (format!("{prefix}/cas/"), String::new(), hex)
            }
            PathScheme::Template(template) => {
                let (before, after) = template
                    .split_once("{key}")
                    .expect("PathScheme::parse checked {key}");
                (before.to_string(), after.replace("{key}", ""), hex)
            }
            PathScheme::Gradle { base } => (
                format!("{base}/"),
                String::new(),
                KeyFormat::Hex { bytes: 16 },
            ),
            PathScheme::Nx { base, .. } => (
                format!("{base}/v1/cache/"),
                String::new(),
                KeyFormat::Decimal,
            ),
            PathScheme::Turbo { base, team, .. } => (
                format!("{base}/v8/artifacts/"),
                format!("?slug={team}"),
                KeyFormat::Hex { bytes: 8 },
            ),
            PathScheme::Ccache { base } => (
                format!("{base}/"),
                String::new(),
                KeyFormat::Subdirs { bytes: 20 },
            ),
            PathScheme::S3 { bucket, .. } => (format!("/{bucket}/"), String::new(), hex),
        };
        let ac_before = match &scheme {
            PathScheme::BazelCas { prefix } | PathScheme::BazelAction { prefix } => {
                format!("{prefix}/ac/")
            }
            _ => cas_before.clone(),
        };
        let (get_headers, put_headers) = scheme.headers();
        let fresh = matches!(scheme, PathScheme::Nx { .. }).then(|| Arc::new(FreshKeys::new()));
        let signer = match &scheme {
            PathScheme::S3 {
                access_key,
                secret_key,
                ..
            } => Some(Box::new(std::cell::RefCell::new(Signer::new(
                access_key,
                secret_key,
                "us-east-1",
            )))),
            _ => None,
        };
        HttpProtocol {
            keys,
            scheme,
            host,
            cas_before,
            cas_after,
            ac_before,
            format,
            get_headers: get_headers.into(),
            put_headers: put_headers.into(),
            fresh,
            signer,
        }
    }

    /// The header lines of one request: the scheme's fixed ones, or for S3 `x-amz-date`,
    /// `x-amz-content-sha256` and the SigV4 `Authorization` of this method, target and time.
    fn request_headers(&self, method: &str, target: &Target<'_>) -> std::borrow::Cow<'_, [u8]> {
        let Some(signer) = &self.signer else {
            let fixed = if method == "PUT" {
                &self.put_headers
            } else {
                &self.get_headers
            };
            return std::borrow::Cow::Borrowed(fixed.as_bytes());
        };
        let mut path = Vec::with_capacity(96);
        target.write_to(&mut path);
        let path = String::from_utf8_lossy(&path);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let date = amz_date(now);
        let authorization = signer.borrow_mut().authorization(&ToSign {
            method,
            path: &path,
            query: "",
            headers: &[("host", &self.host)],
            payload_hash: UNSIGNED_PAYLOAD,
            date: &date,
        });
        std::borrow::Cow::Owned(
            format!(
                "x-amz-date: {date}\r\nx-amz-content-sha256: {UNSIGNED_PAYLOAD}\r\nAuthorization: {authorization}\r\n"
            )
            .into_bytes(),
        )
    }

    fn cas_target<'a>(&'a self, key: &'a [u8; 32]) -> Target<'a> {
        Target {
            before: &self.cas_before,
            key,
            format: self.format,
            after: &self.cas_after,
        }
    }

    fn ac_target<'a>(&'a self, key: &'a [u8; 32]) -> Target<'a> {
        Target {
            before: &self.ac_before,
            key,
            format: KeyFormat::Hex { bytes: 32 },
            after: "",
        }
    }

    /// Uploads object `index`: under its own key for a preload, and for a measured write too
    /// unless the scheme's entries are immutable (Nx), where it goes to a fresh key.
    async fn put_object(
        &self,
        connection: &mut Http1Connection,
        index: usize,
        preload: bool,
    ) -> Result<Outcome, RequestError> {
        let fresh_key;
        let key = match &self.fresh {
            Some(fresh) if !preload => {
                fresh_key = fresh.next_key();
                &fresh_key
            }
            _ => self.keys.digest(index),
        };
        let path = self.cas_target(key);
        let prefix = self.keys.prefix(index);
        let headers = self.request_headers("PUT", &path);
        let response = connection
            .request(
                "PUT",
                &path,
                &self.host,
                &headers,
                &prefix,
                Some(self.keys.tail(index)),
            )
            .await?;
        match (&self.scheme, response.status) {
            (PathScheme::Nx { .. }, 200) => {}
            // The same bytes under the same key are already there: what a preload wants.
            (PathScheme::Nx { .. }, 409) if preload => {}
            (PathScheme::Nx { .. }, got) => {
                let wanted = if preload { "200 (or 409)" } else { "200" };
                return Err(RequestError::new(
                    ErrorKind::Status,
                    format!("PUT {path}: status {got}, expected {wanted}"),
                ));
            }
            (_, got) => expect_put_status(got, &path)?,
        }
        Ok(Outcome {
            body_bytes: self.keys.size(index) as u64,
            reconnect: response.connection_close,
        })
    }

    async fn get_object(
        &self,
        connection: &mut Http1Connection,
        index: usize,
    ) -> Result<Outcome, RequestError> {
        let path = self.cas_target(self.keys.digest(index));
        let headers = self.request_headers("GET", &path);
        let response = connection
            .request("GET", &path, &self.host, &headers, &[], None)
            .await?;
        expect_status(response.status, 200, &path)?;
        if !self.keys.body_matches(index, connection.body()) {
            return Err(body_mismatch(
                &path,
                self.keys.size(index),
                connection.body(),
            ));
        }
        Ok(Outcome {
            body_bytes: response.body_len() as u64,
            reconnect: response.connection_close,
        })
    }

    async fn get_missing(
        &self,
        connection: &mut Http1Connection,
        key: &[u8; 32],
    ) -> Result<Outcome, RequestError> {
        let path = match &self.scheme {
            PathScheme::BazelAction { .. } => self.ac_target(key),
            _ => self.cas_target(key),
        };
        let headers = self.request_headers("GET", &path);
        let response = connection
            .request("GET", &path, &self.host, &headers, &[], None)
            .await?;
        expect_status(response.status, 404, &path)?;
        Ok(Outcome {
            body_bytes: 0,
            reconnect: response.connection_close,
        })
    }

    async fn put_action(
        &self,
        connection: &mut Http1Connection,
        index: usize,
        preload: bool,
    ) -> Result<Outcome, RequestError> {
        let blob = self.put_object(connection, index, preload).await?;
        if blob.reconnect {
            return Err(RequestError::new(
                ErrorKind::Closed,
                "server closed between the CAS and AC upload",
            ));
        }
        let action = action_key(index);
        let path = self.ac_target(&action);
        let result = action_result(&self.keys, index);
        let response = connection
            .request("PUT", &path, &self.host, &[], &result, None)
            .await?;
        expect_put_status(response.status, &path)?;
        Ok(Outcome {
            body_bytes: blob.body_bytes + result.len() as u64,
            reconnect: response.connection_close,
        })
    }

    async fn get_action(
        &self,
        connection: &mut Http1Connection,
        index: usize,
    ) -> Result<Outcome, RequestError> {
        let action = action_key(index);
        let path = self.ac_target(&action);
        let response = connection
            .request("GET", &path, &self.host, &[], &[], None)
            .await?;
        expect_status(response.status, 200, &path)?;
        let expected = action_result(&self.keys, index);
        if connection.body() != expected.as_slice() {
            return Err(body_mismatch(&path, expected.len(), connection.body()));
        }
        if response.connection_close {
            return Err(RequestError::new(
                ErrorKind::Closed,
                "server closed between the AC and CAS read",
            ));
        }
        let blob = self.get_object(connection, index).await?;
        Ok(Outcome {
            body_bytes: blob.body_bytes + expected.len() as u64,
            reconnect: blob.reconnect,
        })
    }
}

impl Protocol for HttpProtocol {
    type Connection = Http1Connection;

    fn name(&self) -> String {
        match &self.scheme {
            PathScheme::BazelCas { .. } => "bazel-http-cas".to_string(),
            PathScheme::BazelAction { .. } => "bazel-http-action".to_string(),
            PathScheme::Template(t) => format!("http-template {t}"),
            PathScheme::Gradle { .. } => "gradle-http".to_string(),
            PathScheme::Nx { .. } => "nx-http".to_string(),
            PathScheme::Turbo { .. } => "turbo-http".to_string(),
            PathScheme::Ccache { .. } => "ccache-http".to_string(),
            PathScheme::S3 { .. } => "s3-sigv4".to_string(),
        }
    }

    async fn connect(&self, address: SocketAddr) -> Result<Http1Connection, RequestError> {
        Http1Connection::connect(address).await
    }

    async fn execute(
        &self,
        connection: &mut Http1Connection,
        operation: &Operation,
    ) -> Result<Outcome, RequestError> {
        match (operation, &self.scheme) {
            (Operation::GetMissing { key }, _) => self.get_missing(connection, key).await,
            (&Operation::Get { index }, PathScheme::BazelAction { .. }) => {
                self.get_action(connection, index).await
            }
            (&Operation::Put { index }, PathScheme::BazelAction { .. }) => {
                self.put_action(connection, index, false).await
            }
            (&Operation::Preload { index }, PathScheme::BazelAction { .. }) => {
                self.put_action(connection, index, true).await
            }
            (&Operation::Get { index }, _) => self.get_object(connection, index).await,
            (&Operation::Put { index }, _) => self.put_object(connection, index, false).await,
            (&Operation::Preload { index }, _) => self.put_object(connection, index, true).await,
        }
    }
}

fn expect_status(got: u16, wanted: u16, path: &Target) -> Result<(), RequestError> {
    if got == wanted {
        Ok(())
    } else {
        Err(RequestError::new(
            ErrorKind::Status,
            format!("{path}: status {got}, expected {wanted}"),
        ))
    }
}

fn expect_put_status(got: u16, path: &Target) -> Result<(), RequestError> {
    if matches!(got, 200 | 201 | 204) {
        Ok(())
    } else {
        Err(RequestError::new(
            ErrorKind::Status,
            format!("PUT {path}: status {got}, expected 200/201/204"),
        ))
    }
}

fn body_mismatch(path: &Target, expected_len: usize, got: &[u8]) -> RequestError {
    let detail = if got.len() != expected_len {
        format!(
            "{path}: body of {} bytes, expected {expected_len}",
            got.len()
        )
    } else {
        format!("{path}: body bytes differ from what was stored")
    };
    RequestError::new(ErrorKind::Body, detail)
}

/// The action key of object `index`'s action: SHA-256 of `action-<index>` (an opaque digest,
/// as Bazel's action digests are to the cache).
pub fn action_key(index: usize) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(format!("action-{index}").as_bytes()).into()
}

/// A serialized REAPI `ActionResult` with one output file, object `index`:
/// `ActionResult { output_files(2): [OutputFile { path(1): "out/<index>",
/// digest(2): Digest { hash(1): <sha256 hex>, size_bytes(2): <size> } }] }`.
/// Hand-encoded protobuf (field tags noted), so an action cache that checks that the outputs an
/// entry references are present sees a real, resolvable reference.
pub fn action_result(keys: &KeySpace, index: usize) -> Vec<u8> {
    let mut digest = Vec::with_capacity(80);
    put_bytes_field(&mut digest, 1, keys.cas_hex(index).as_bytes());
    put_varint_field(&mut digest, 2, keys.size(index) as u64);
    let mut output_file = Vec::with_capacity(100);
    put_bytes_field(&mut output_file, 1, format!("out/{index}").as_bytes());
    put_bytes_field(&mut output_file, 2, &digest);
    let mut result = Vec::with_capacity(110);
    put_bytes_field(&mut result, 2, &output_file);
    result
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_varint_field(out: &mut Vec<u8>, field: u32, value: u64) {
    put_varint(out, (field as u64) << 3);
    put_varint(out, value);
}

fn put_bytes_field(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_varint(out, ((field as u64) << 3) | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::SizeDistribution;

    #[test]
    fn paths_follow_the_scheme() {
        let keys = Arc::new(KeySpace::generate(1, &SizeDistribution::Fixed(10), 1).unwrap());
        let key = [0xab; 32];
        let digest = "ab".repeat(32);
        let target = |scheme: PathScheme, ac: bool| {
            let protocol = HttpProtocol::new(keys.clone(), scheme, "h".into());
            let target = if ac {
                protocol.ac_target(&key)
            } else {
                protocol.cas_target(&key)
            };
            let mut written = Vec::new();
            target.write_to(&mut written);
            assert_eq!(String::from_utf8(written).unwrap(), target.to_string());
            target.to_string()
        };
        let parse = |protocol: &str, prefix: &str, template: Option<&str>| {
            let options = SchemeOptions {
                prefix,
                template,
                ..SchemeOptions::default()
            };
            PathScheme::parse(protocol, &options)
        };
        let bazel = || parse("bazel", "", None).unwrap();
        assert_eq!(target(bazel(), false), format!("/cas/{digest}"));
        assert_eq!(target(bazel(), true), format!("/ac/{digest}"));
        let instance = parse("bazel-ac", "/inst", None).unwrap();
        assert_eq!(target(instance, true), format!("/inst/ac/{digest}"));
        let template = parse("template", "", Some("/dav/{key}.bin")).unwrap();
        assert_eq!(target(template, false), format!("/dav/{digest}.bin"));
        assert!(parse("template", "", Some("/no-key")).is_err());
        assert!(parse("template", "", None).is_err());
        assert!(parse("grpc", "", None)
            .unwrap_err()
            .contains("GrpcProtocol"));

        // The client front-ends: each key spelled as that client spells its keys.
        let cases = [
            ("gradle", "", format!("/cache/{}", "ab".repeat(16))),
            ("gradle", "/gc/", format!("/gc/{}", "ab".repeat(16))),
            ("nx", "", "/v1/cache/12370169555311111083".to_string()),
            (
                "nx",
                "/base",
                "/base/v1/cache/12370169555311111083".to_string(),
            ),
            (
                "turbo",
                "",
                "/v8/artifacts/abababababababab?slug=bench".to_string(),
            ),
            ("ccache", "", format!("/ccache/ab/{}", "ab".repeat(19))),
        ];
        for (protocol, prefix, expected) in cases {
            assert_eq!(
                target(parse(protocol, prefix, None).unwrap(), false),
                expected,
                "{protocol} {prefix}"
            );
        }
        assert!(parse("gradle", "cache", None)
            .unwrap_err()
            .contains("--prefix"));
        assert!(parse("ftp", "", None)
            .unwrap_err()
            .contains("gradle, nx, turbo, ccache"));
    }

    #[test]
    fn decimal_keys_have_no_leading_zeros() {
        let spell = |first: [u8; 8]| {
            let mut key = [0xff; 32];
            key[..8].copy_from_slice(&first);
            Target {
                before: "",
                key: &key,
                format: KeyFormat::Decimal,
                after: "",
            }
            .to_string()
        };
        assert_eq!(spell([0; 8]), "0");
        assert_eq!(spell([0, 0, 0, 0, 0, 0, 0, 7]), "7");
        assert_eq!(spell([1; 8]), "72340172838076673");
        assert_eq!(spell([0xff; 8]), u64::MAX.to_string());
    }

    #[test]
    fn credentials_are_checked() {
        let turbo = |team: &str, token: &str| {
            let options = SchemeOptions {
                team,
                token,
                ..SchemeOptions::default()
            };
            PathScheme::parse("turbo", &options)
        };
        assert!(turbo("acme", "tok.en-1").is_ok());
        assert!(turbo("a/b", "t").unwrap_err().contains("--team"));
        assert!(turbo("acme", "").unwrap_err().contains("--token"));
        assert!(turbo("acme", "two words").unwrap_err().contains("--token"));
        assert!(turbo(&"x".repeat(CREDENTIAL_BYTES_MAX + 1), "t").is_err());
    }

    #[test]
    fn each_client_sends_its_headers() {
        let scheme =
            |protocol: &str| PathScheme::parse(protocol, &SchemeOptions::default()).unwrap();
        let expectations: &[(&str, &[&str], &[&str])] = &[
            (
                "gradle",
                &[
                    "Accept: application/vnd.gradle.build-cache-artifact.v2, */*",
                    "X-Gradle-Version: ",
                ],
                &[
                    "Content-Type: application/vnd.gradle.build-cache-artifact.v2",
                    "User-Agent: Gradle/",
                ],
            ),
            (
                "nx",
                &[
                    "Authorization: Bearer t",
                    "Accept: application/octet-stream",
                ],
                &[
                    "Authorization: Bearer t",
                    "Content-Type: application/octet-stream",
                ],
            ),
            (
                "turbo",
                &["Authorization: Bearer t", "User-Agent: turbo "],
                &[
                    "Authorization: Bearer t",
                    "Content-Type: application/octet-stream",
                    "x-artifact-duration: ",
                ],
            ),
            (
                "ccache",
                &["User-Agent: ccache/"],
                &["Content-Type: application/octet-stream"],
            ),
            ("bazel", &[], &[]),
        ];
        for &(protocol, get_wanted, put_wanted) in expectations {
            let (get, put) = scheme(protocol).headers();
            for (block, wanted) in [(&get, get_wanted), (&put, put_wanted)] {
                for needle in wanted {
                    assert!(
                        block.contains(needle),
                        "{protocol}: `{needle}` missing from {block:?}"
                    );
                }
                // Whole header lines only: `Name: value` CRLF, nothing else.
                for line in block.split_terminator("\r\n") {
                    let (name, _) = line.split_once(": ").unwrap_or_else(|| panic!("{line:?}"));
                    assert!(
                        name.bytes().all(tessera::http1::token::is_tchar),
                        "{line:?}"
                    );
                    assert!(!line.contains(['\r', '\n']), "{line:?}");
                }
                assert!(block.is_empty() || block.ends_with("\r\n"));
            }
        }
    }

    #[test]
    fn fresh_keys_never_repeat() {
        let keys = FreshKeys::with_base(u64::MAX - 5);
        let spelled: std::collections::HashSet<String> = (0..10_000)
            .map(|_| {
                let key = keys.next_key();
                Target {
                    before: "",
                    key: &key,
                    format: KeyFormat::Decimal,
                    after: "",
                }
                .to_string()
            })
            .collect();
        assert_eq!(
            spelled.len(),
            10_000,
            "the base wraps around without a repeat"
        );
        let other = FreshKeys::with_base(7);
        assert_ne!(other.next_key(), FreshKeys::with_base(8).next_key());
        assert_eq!(other.next_key(), {
            let again = FreshKeys::with_base(7);
            again.next_key();
            again.next_key()
        });
    }

    #[test]
    fn action_result_is_the_expected_protobuf() {
        let keys = KeySpace::generate(2, &SizeDistribution::Fixed(300), 1).unwrap();
        let encoded = action_result(&keys, 1);
        let hash = keys.cas_hex(1);
        // Digest = 0x0a 0x40 <64 hex> 0x10 <varint 300 = 0xac 0x02>  (68 bytes)
        let mut digest = vec![0x0a, 0x40];
        digest.extend_from_slice(hash.as_bytes());
        digest.extend_from_slice(&[0x10, 0xac, 0x02]);
        // OutputFile = 0x0a 0x05 "out/1" 0x12 <len 69> <digest>
        let mut file = vec![0x0a, 0x05];
        file.extend_from_slice(b"out/1");
        file.push(0x12);
        file.push(digest.len() as u8);
        file.extend_from_slice(&digest);
        let mut expected = vec![0x12, file.len() as u8];
        expected.extend_from_slice(&file);
        assert_eq!(encoded, expected);
        assert_ne!(action_key(0), action_key(1));
    }
}
