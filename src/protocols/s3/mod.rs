//! The S3 endpoint (`s3s` 0.14.1 called per request; no hyper server, no tokio runtime).
//!
//! | piece      | file         |
//! |------------|--------------|
//! | HTTP/1.1 ⇄ s3s, streaming both ways | `bridge` |
//! | the operations                      | `ops`    |
//! | `Send` handlers ⇄ the `!Send` store | `link`   |
//! | object record layout (ETag trailer) | `object` |
//! | bucket registry (`DATA/s3-buckets`) | `buckets`|
//! | credentials (replaceable): static keys, tokens, anonymous | `keys` |
//!
//! A bucket is the namespace `s3/BUCKET`; an object is a `Kind::Blob` record keyed by its key.
//! On the main port a request is S3 when it carries an AWS signature ([`is_signed`]); the
//! `s3.listen` port serves only S3 (unsigned requests too, as `auth.anonymous` allows).

pub mod bridge;
pub mod buckets;
pub mod checksum;
pub mod chunked;
pub mod keys;
pub mod link;
pub mod list;
pub mod multipart;
pub mod object;
pub mod ops;
pub mod sigv4;

use std::io;
use std::sync::Arc;

use s3s::service::{S3Service, S3ServiceBuilder};

use crate::auth::audit::AuditLog;
use crate::auth::gate::SharedTrust;
use crate::config::{AuthConfig, S3Config};
use crate::http1::{Request, RequestHead, Responder};
use crate::protocols::backend::Backend;
use crate::store::config::Durability;

use self::buckets::Buckets;
use self::keys::{Access, Auth, ConfigKeys, Credentials, TokenKeys};
use self::object::OBJECT_TRAILER_BYTES;
use self::ops::TesseraS3;

/// What every executor's S3 front-end shares.
#[derive(Clone)]
pub struct S3Shared {
    pub buckets: Arc<Buckets>,
    pub uploads: Arc<multipart::Uploads>,
    pub credentials: Arc<dyn Credentials>,
    pub domain: Option<String>,
    /// The store's largest blob.
    pub blob_bytes_max: u64,
}

impl S3Shared {
    /// The shared state of `config`, with the bucket registry in `data` (`None`: memory only).
    /// Tokens are S3 access keys when `auth` has token keys and an S3 secret
    /// (`auth.s3_secret`, or `s3.secret` among the public keys); `trust` is the process's. The
    /// key log is made as durable as the store's records (`durability`, `sync_interval`).
    pub fn new(
        config: &S3Config,
        auth: &AuthConfig,
        trust: Arc<SharedTrust>,
        data: Option<&std::path::Path>,
        blob_bytes_max: u64,
        durability: (Durability, std::time::Duration),
    ) -> Result<S3Shared, String> {
        let tokens = match auth.s3_secret_path() {
            Some(path) if auth.has_token_keys() => Some(TokenKeys::new(
                crate::auth::s3::read_secret(&path).map_err(|e| format!("auth.s3_secret: {e}"))?,
                trust,
            )),
            Some(path) if auth.s3_secret.is_some() => {
                return Err(format!(
                "auth.s3_secret: {} is set but no token keys are (auth.public_keys or auth.jwks)",
                path.display()
            ))
            }
            _ => None,
        };
        let buckets = Buckets::open(data, &config.buckets)?;
        buckets.follow_durability(durability.0, durability.1);
        Ok(S3Shared {
            buckets: Arc::new(buckets),
            uploads: Arc::new(multipart::Uploads::open(data, durability.0)?),
            credentials: Arc::new(ConfigKeys::new(
                config.keys.clone(),
                auth.anonymous(),
                tokens,
            )),
            domain: config.domain.clone(),
            blob_bytes_max,
        })
    }
}

/// One executor's S3 front-end.
pub struct S3Front {
    service: S3Service,
    credentials: Arc<dyn Credentials>,
    /// Where refusals made before the store (access check, signature) are written; the store's
    /// own writes and refusals are written by the authorization layer to the same log.
    audit: Option<Arc<AuditLog>>,
    domain: Option<String>,
}

impl S3Front {
    /// The front-end of `shared`, auditing the refusals s3s makes to `audit`.
    pub fn new(shared: &S3Shared, audit: Option<Arc<AuditLog>>) -> Result<S3Front, String> {
        let mut builder = S3ServiceBuilder::new(TesseraS3 {
            buckets: shared.buckets.clone(),
            uploads: shared.uploads.clone(),
            credentials: shared.credentials.clone(),
            object_bytes_max: shared.blob_bytes_max.saturating_sub(OBJECT_TRAILER_BYTES),
        });
        builder.set_auth(Auth(shared.credentials.clone()));
        builder.set_access(Access {
            credentials: shared.credentials.clone(),
            audit: audit.clone(),
        });
        if let Some(domain) = &shared.domain {
            let host = s3s::host::SingleDomain::new(domain)
                .map_err(|e| format!("s3.domain `{domain}`: {e}"))?;
            builder.set_host(host);
        }
        Ok(S3Front {
            service: builder.build(),
            credentials: shared.credentials.clone(),
            audit,
            domain: shared.domain.clone(),
        })
    }

    /// Serves one S3 request of a connection from `remote` (the audit log's address).
    pub async fn handle<B: Backend>(
        &self,
        backend: &B,
        remote: Option<std::net::SocketAddr>,
        request: &mut Request<'_>,
        responder: &mut Responder<'_>,
    ) -> io::Result<()> {
        let link = link::StoreLink::new(self.credentials.clone());
        let audit = self.audit.as_deref().map(|log| bridge::Audit {
            log,
            domain: self.domain.as_deref(),
        });
        bridge::handle(
            &self.service,
            link,
            backend,
            (remote, audit),
            request,
            responder,
        )
        .await
    }
}

/// Whether a request carries an AWS signature: `Authorization: AWS4-HMAC-SHA256 …` or
/// `AWS …`, or a presigned query (`X-Amz-Signature`, or `Signature` with `AWSAccessKeyId`).
pub fn is_signed(head: &RequestHead<'_>) -> bool {
    if let Some(auth) = head.header("authorization") {
        if auth.starts_with(b"AWS4-HMAC-SHA256 ") || auth.starts_with(b"AWS ") {
            return true;
        }
    }
    let Some(query) = head.query() else {
        return false;
    };
    let has = |name: &str| {
        query
            .split('&')
            .any(|pair| pair.split_once('=').map_or(pair, |(k, _)| k) == name)
    };
    has("X-Amz-Signature") || (has("Signature") && has("AWSAccessKeyId"))
}
