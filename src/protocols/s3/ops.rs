//! The S3 operations, as s3s handlers (`Send` futures; store work goes through a
//! [`StoreLink`]).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use md5::{Digest, Md5};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, TrailingHeaders, S3};

use crate::store::{Meta, ReadHandle, StoreError};

use super::buckets::{BucketError, Buckets};
use super::checksum;
use super::chunked;
use super::keys::{Credentials, Right};
use super::link::{objects, parts, StoreLink};
use super::list::{self, Item, ListQuery, LIST_BATCH_KEYS, LIST_PAGE_MAX};
use super::multipart::{
    combined_md5, part_key, PartInfo, Uploads, PART_BYTES_MIN, PART_NUMBER_MAX,
};
use super::object::{
    self, Trailer, CHECKSUM_HEADERS, KEPT_HEADERS, MTIME_META, OBJECT_TRAILER_BYTES,
    USER_META_PREFIX,
};

/// Most keys in one DeleteObjects request (S3's limit).
pub const DELETE_OBJECTS_MAX: usize = 1000;

/// The S3 service over the store.
pub struct TesseraS3 {
    pub buckets: Arc<Buckets>,
    pub uploads: Arc<Uploads>,
    pub credentials: Arc<dyn Credentials>,
    /// Largest object: the store's largest blob less the trailer.
    pub object_bytes_max: u64,
}

fn error(code: S3ErrorCode, message: impl Into<std::borrow::Cow<'static, str>>) -> S3Error {
    S3Error::with_message(code, message)
}

fn custom(code: &'static str, status: StatusCode, message: &'static str) -> S3Error {
    let mut e = error(S3ErrorCode::Custom(code.into()), message);
    e.set_status_code(status);
    e
}

/// The S3 error of a store error.
pub fn store_error(e: StoreError) -> S3Error {
    match e {
        StoreError::TooLarge { len, max } => error(
            S3ErrorCode::EntityTooLarge,
            format!("Your proposed upload ({len} bytes with its trailer) exceeds the maximum allowed size ({max} bytes)"),
        ),
        StoreError::NoSpace { .. } => custom(
            "InsufficientStorage",
            StatusCode::INSUFFICIENT_STORAGE,
            "The store has no room for this object now; reads go on",
        ),
        StoreError::TooManyReservations { .. } | StoreError::Unavailable { .. } => {
            error(S3ErrorCode::SlowDown, "Please reduce your request rate.")
        }
        StoreError::PermissionDenied { namespace, .. } => error(
            S3ErrorCode::AccessDenied,
            format!("Access Denied: these credentials may not do that in {namespace}"),
        ),
        StoreError::Unauthenticated { reason: "missing", .. } => error(
            S3ErrorCode::AccessDenied,
            "Access Denied: anonymous access is not allowed here (auth.anonymous); sign the request",
        ),
        StoreError::Unauthenticated { message, .. } => error(
            S3ErrorCode::InvalidAccessKeyId,
            format!("The AWS Access Key Id you provided is not a token this server accepts: {message}"),
        ),
        StoreError::RateLimited { .. } => error(
            S3ErrorCode::SlowDown,
            "Please reduce your request rate (auth.rate).",
        ),
        StoreError::MetaTooLarge { .. } => error(
            S3ErrorCode::MetadataTooLarge,
            "Your metadata headers exceed the maximum allowed metadata size",
        ),
        other => {
            tracing::error!(error = %other, "store error on an S3 request");
            error(
                S3ErrorCode::InternalError,
                "internal storage error (see the server log)",
            )
        }
    }
}

fn no_such_bucket(bucket: &str) -> S3Error {
    error(
        S3ErrorCode::NoSuchBucket,
        format!("The specified bucket does not exist: {bucket}"),
    )
}

fn no_such_key() -> S3Error {
    error(S3ErrorCode::NoSuchKey, "The specified key does not exist.")
}

fn link_of<T>(req: &S3Request<T>) -> S3Result<StoreLink> {
    let link = req
        .extensions
        .get::<StoreLink>()
        .ok_or_else(|| error(S3ErrorCode::InternalError, "no store link"))?;
    Ok(link.for_caller(req.credentials.as_ref().map(|c| c.access_key.as_str())))
}

fn meta_error(_: StoreError) -> S3Error {
    error(
        S3ErrorCode::MetadataTooLarge,
        "Your metadata headers exceed the maximum allowed metadata size",
    )
}

/// The metadata a put keeps from its request headers: the standard headers, user metadata
/// and checksums, and the modification time.
fn meta_from_headers(headers: &HeaderMap) -> S3Result<Meta> {
    let mut meta = Meta::new();
    for name in KEPT_HEADERS.iter().chain(CHECKSUM_HEADERS.iter()) {
        if let Some(value) = headers.get(*name) {
            meta.push(name, value.as_bytes()).map_err(meta_error)?;
        }
    }
    for (name, value) in headers {
        if name.as_str().starts_with(USER_META_PREFIX) {
            meta.push(name.as_str(), value.as_bytes())
                .map_err(meta_error)?;
        }
    }
    meta.push(MTIME_META, object::mtime_now().as_bytes())
        .map_err(meta_error)?;
    Ok(meta)
}

/// A copy of `source` with a new modification time.
fn meta_touched(source: &Meta) -> S3Result<Meta> {
    let mut meta = Meta::new();
    for (name, value) in source.iter().filter(|(n, _)| *n != MTIME_META) {
        meta.push(name, value).map_err(meta_error)?;
    }
    meta.push(MTIME_META, object::mtime_now().as_bytes())
        .map_err(meta_error)?;
    Ok(meta)
}

/// A stored object: its record, trailer and length.
struct Stored {
    handle: ReadHandle,
    trailer: Trailer,
    size: u64,
}

impl Stored {
    fn new(handle: ReadHandle) -> S3Result<Stored> {
        let (trailer, size) = Trailer::decode(handle.body()).ok_or_else(|| {
            tracing::error!("an s3 namespace record without an object trailer");
            error(S3ErrorCode::InternalError, "stored object is malformed")
        })?;
        Ok(Stored {
            handle,
            trailer,
            size,
        })
    }

    fn etag(&self) -> ETag {
        ETag::Strong(self.trailer.etag())
    }

    fn mtime(&self) -> SystemTime {
        object::mtime(self.handle.meta())
    }

    /// Response headers from the stored metadata (standard ones, user metadata, and the
    /// checksums when asked for).
    fn headers(&self, checksums: bool) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in self.handle.meta().iter() {
            let wanted = KEPT_HEADERS.contains(&name)
                || name.starts_with(USER_META_PREFIX)
                || (checksums && CHECKSUM_HEADERS.contains(&name));
            if !wanted {
                continue;
            }
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_bytes(value),
            ) {
                headers.append(n, v);
            }
        }
        if self.handle.meta().get("content-type").is_none() {
            headers.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("binary/octet-stream"),
            );
        }
        headers
    }
}

async fn lookup(link: &StoreLink, bucket: &str, key: &str) -> S3Result<Option<Stored>> {
    match link
        .lookup(&objects(bucket), key)
        .await?
        .map_err(store_error)?
    {
        Some(handle) => Ok(Some(Stored::new(handle)?)),
        None => Ok(None),
    }
}

fn seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn timestamp_seconds(t: &Timestamp) -> u64 {
    let t: time::OffsetDateTime = t.clone().into();
    u64::try_from(t.unix_timestamp()).unwrap_or(0)
}

fn etag_matches(condition: &ETagCondition, etag: &ETag) -> bool {
    match condition {
        ETagCondition::Any => true,
        ETagCondition::ETag(want) => want.value() == etag.value(),
    }
}

/// RFC 9110 §13.2.2 order, as S3 applies it: If-Match, If-Unmodified-Since (only without
/// If-Match), If-None-Match, If-Modified-Since (only without If-None-Match). `not_modified`
/// is the error for a failed If-None-Match / If-Modified-Since (304 on reads, 412 on copies).
fn check_conditions(
    stored: &Stored,
    if_match: Option<&ETagCondition>,
    if_unmodified_since: Option<&Timestamp>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    not_modified: fn() -> S3Error,
) -> S3Result<()> {
    let etag = stored.etag();
    let mtime = seconds(stored.mtime());
    let failed = || {
        error(
            S3ErrorCode::PreconditionFailed,
            "At least one of the pre-conditions you specified did not hold",
        )
    };
    match if_match {
        Some(c) if !etag_matches(c, &etag) => return Err(failed()),
        None => {
            if let Some(t) = if_unmodified_since {
                if mtime > timestamp_seconds(t) {
                    return Err(failed());
                }
            }
        }
        _ => {}
    }
    match if_none_match {
        Some(c) if etag_matches(c, &etag) => return Err(not_modified()),
        None => {
            if let Some(t) = if_modified_since {
                if mtime <= timestamp_seconds(t) {
                    return Err(not_modified());
                }
            }
        }
        _ => {}
    }
    Ok(())
}

fn not_modified() -> S3Error {
    error(S3ErrorCode::NotModified, "Not Modified")
}

fn precondition_failed() -> S3Error {
    error(
        S3ErrorCode::PreconditionFailed,
        "At least one of the pre-conditions you specified did not hold",
    )
}

/// The bytes of `range` of a record body, sharing the record's mapping (no copy).
struct BodySlice {
    handle: ReadHandle,
    start: usize,
    end: usize,
}

impl AsRef<[u8]> for BodySlice {
    fn as_ref(&self) -> &[u8] {
        &self.handle.body()[self.start..self.end]
    }
}

fn body_error(e: &(dyn std::error::Error + Send + Sync)) -> S3Error {
    let text = e.to_string();
    if text.contains("Sha256Mismatch") {
        let mut err = error(
            S3ErrorCode::Custom("XAmzContentSHA256Mismatch".into()),
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        );
        err.set_status_code(StatusCode::BAD_REQUEST);
        return err;
    }
    if text.contains("SignatureMismatch") {
        return error(
            S3ErrorCode::SignatureDoesNotMatch,
            "A chunk signature of the streamed body does not match.",
        );
    }
    error(
        S3ErrorCode::IncompleteBody,
        format!("The request body could not be read: {text}"),
    )
}

/// Where a put's trailing headers come from: s3s (it decoded a signed `aws-chunked` body), or
/// our own decoder of an unsigned one.
enum Trailers {
    S3s(Option<TrailingHeaders>),
    Decoded(chunked::TrailerSlot),
}

impl Trailers {
    fn take(self) -> Option<HeaderMap> {
        match self {
            Trailers::S3s(trailers) => trailers.and_then(|t| t.take()),
            Trailers::Decoded(slot) => slot.lock().unwrap_or_else(|p| p.into_inner()).take(),
        }
    }
}

/// s3s decodes `aws-chunked` bodies while it checks their signatures; an unsigned request
/// (anonymous, `s3.listen`) reaches us still encoded. `STREAMING-UNSIGNED-PAYLOAD-TRAILER` is
/// decoded here (the body replaced by the decoded stream, the length by
/// `x-amz-decoded-content-length`); the signed forms cannot be checked without a signature and
/// are refused.
fn unsigned_chunked<T>(
    req: &S3Request<T>,
    body: &mut Option<StreamingBlob>,
    content_length: &mut Option<i64>,
) -> S3Result<Trailers> {
    let mode = req
        .headers
        .get("x-amz-content-sha256")
        .map(|v| v.as_bytes());
    let streaming = mode.is_some_and(|v| v.starts_with(b"STREAMING-"));
    if !streaming {
        return Ok(Trailers::S3s(None));
    }
    if req.credentials.is_some() {
        // s3s decoded the chunks; a body sent with `Transfer-Encoding: chunked` (botocore over
        // https) has no Content-Length for s3s to rewrite, so the decoded length is the one
        // the client declared.
        if content_length.is_none() {
            *content_length = decoded_length(req)?;
        }
        return Ok(Trailers::S3s(None));
    }
    if mode != Some(b"STREAMING-UNSIGNED-PAYLOAD-TRAILER") {
        return Err(error(
            S3ErrorCode::NotImplemented,
            "signed aws-chunked (STREAMING-AWS4-*) bodies need a signed request",
        ));
    }
    *content_length = decoded_length(req)?;
    let slot = chunked::TrailerSlot::default();
    if let Some(encoded) = body.take() {
        *body = Some(StreamingBlob::new(chunked::Decoder::new(
            Box::pin(encoded),
            slot.clone(),
        )));
    }
    Ok(Trailers::Decoded(slot))
}

/// An `aws-chunked` body's `x-amz-decoded-content-length`, which it must have.
fn decoded_length<T>(req: &S3Request<T>) -> S3Result<Option<i64>> {
    req.headers
        .get("x-amz-decoded-content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .map(Some)
        .ok_or_else(|| {
            error(
                S3ErrorCode::MissingContentLength,
                "An aws-chunked body needs x-amz-decoded-content-length.",
            )
        })
}

/// The decoded `Content-MD5` header, if any.
fn content_md5(header: &Option<String>) -> S3Result<Option<Vec<u8>>> {
    use base64::Engine;
    let Some(b64) = header else {
        return Ok(None);
    };
    base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .ok()
        .filter(|raw| raw.len() == 16)
        .map(Some)
        .ok_or_else(|| {
            error(
                S3ErrorCode::InvalidDigest,
                "The Content-MD5 you specified was invalid.",
            )
        })
}

/// The declared body length of a put.
fn body_size(content_length: Option<i64>) -> S3Result<u64> {
    match content_length {
        Some(len) if len >= 0 => Ok(len as u64),
        Some(_) => Err(error(
            S3ErrorCode::InvalidArgument,
            "negative Content-Length",
        )),
        None => Err(error(
            S3ErrorCode::MissingContentLength,
            "You must provide the Content-Length HTTP header.",
        )),
    }
}

/// Streams `body` (exactly `size` bytes) into a new record `key` of namespace `space` with a
/// single-part trailer and commits it; returns the body's MD5. Any failure (short or long
/// body, a `Content-MD5` that does not match, the store) leaves nothing stored.
// Every argument is a distinct part of one upload; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
async fn receive(
    link: &StoreLink,
    space: &str,
    key: &str,
    size: u64,
    meta: Meta,
    body: Option<StreamingBlob>,
    want_md5: Option<Vec<u8>>,
    headers: &HeaderMap,
    trailers: Trailers,
) -> S3Result<[u8; 16]> {
    let mut checksums = checksum::hasher_for(headers);
    let mut reservation = link
        .reserve(space, key, size + OBJECT_TRAILER_BYTES, meta)
        .await?
        .map_err(store_error)?;
    let mut md5 = Md5::new();
    let mut written = 0u64;
    if let Some(mut body) = body {
        while let Some(chunk) = body.next().await {
            // Any failure drops the reservation, which aborts it: nothing is stored.
            let chunk = chunk.map_err(|e| body_error(&*e))?;
            written += chunk.len() as u64;
            if written > size {
                return Err(error(
                    S3ErrorCode::IncompleteBody,
                    "The body is longer than its Content-Length",
                ));
            }
            md5.update(&chunk);
            checksums.update(&chunk);
            reservation.write(&chunk).map_err(store_error)?;
        }
    }
    let trailing = trailers.take();
    checksum::verify(&checksums.finalize(), headers, trailing.as_ref())?;
    if written != size {
        return Err(error(
            S3ErrorCode::IncompleteBody,
            "You did not provide the number of bytes specified by the Content-Length HTTP header",
        ));
    }
    let digest: [u8; 16] = md5.finalize().into();
    if want_md5.is_some_and(|want| want != digest) {
        return Err(error(
            S3ErrorCode::BadDigest,
            "The Content-MD5 you specified did not match what we received.",
        ));
    }
    let trailer = Trailer {
        md5: digest,
        parts: 0,
    };
    reservation.write(&trailer.encode()).map_err(store_error)?;
    link.commit(space, reservation)
        .await?
        .map_err(store_error)?;
    Ok(digest)
}

/// The headers of a GET or HEAD that pick what it answers: conditions and range.
struct ReadAsk<'a> {
    if_match: Option<&'a ETagCondition>,
    if_unmodified_since: Option<&'a Timestamp>,
    if_none_match: Option<&'a ETagCondition>,
    if_modified_since: Option<&'a Timestamp>,
    range: Option<&'a Range>,
}

/// The [`ReadAsk`] of a `GetObjectInput` or a `HeadObjectInput`: s3s gives the two the same
/// fields but no common trait.
macro_rules! read_ask {
    ($input:expr) => {
        ReadAsk {
            if_match: $input.if_match.as_ref(),
            if_unmodified_since: $input.if_unmodified_since.as_ref(),
            if_none_match: $input.if_none_match.as_ref(),
            if_modified_since: $input.if_modified_since.as_ref(),
            range: $input.range.as_ref(),
        }
    };
}

/// A GET's or HEAD's object and the bytes `[start, end)` it answers with; `content_range` is
/// set for a range request.
struct ReadTarget {
    stored: Stored,
    start: u64,
    end: u64,
    content_range: Option<String>,
}

/// Whether the request asked for the object's checksums (`x-amz-checksum-mode: ENABLED`).
fn checksums_asked(mode: Option<&ChecksumMode>) -> bool {
    mode.is_some_and(|m| m.as_str() == ChecksumMode::ENABLED)
}

/// One page of a listing.
struct Page {
    objects: Vec<Object>,
    prefixes: Vec<String>,
    truncated: bool,
    /// The last item returned (the next page starts after it).
    last: Option<String>,
}

impl TesseraS3 {
    /// Walks `bucket`'s keys for one page of `query`, checking each listed key in the store.
    async fn walk(&self, link: &StoreLink, bucket: &str, query: &ListQuery) -> S3Result<Page> {
        let mut page = Page {
            objects: Vec::new(),
            prefixes: Vec::new(),
            truncated: false,
            last: None,
        };
        let mut cursor = query.after.clone();
        let mut last_prefix: Option<String> = None;
        loop {
            let batch =
                self.buckets
                    .keys_after(bucket, &query.prefix, cursor.as_deref(), LIST_BATCH_KEYS);
            let Some(end) = batch.last().cloned() else {
                return Ok(page);
            };
            for key in batch {
                let Some(item) = list::item_of(&key, query, last_prefix.as_deref()) else {
                    continue;
                };
                // A key is listed only if the store still has it.
                let Some(stored) = lookup(link, bucket, &key).await? else {
                    self.buckets.note_delete(bucket, &key);
                    continue;
                };
                if page.objects.len() + page.prefixes.len() >= query.max_keys {
                    page.truncated = true;
                    return Ok(page);
                }
                match item {
                    Item::Prefix(p) => {
                        last_prefix = Some(p.clone());
                        page.last = Some(p.clone());
                        page.prefixes.push(p);
                    }
                    Item::Key(k) => {
                        page.last = Some(k.clone());
                        page.objects.push(Object {
                            key: Some(k),
                            size: Some(stored.size as i64),
                            e_tag: Some(stored.etag()),
                            last_modified: Some(Timestamp::from(stored.mtime())),
                            storage_class: Some(ObjectStorageClass::from_static(
                                ObjectStorageClass::STANDARD,
                            )),
                            ..Default::default()
                        });
                    }
                }
            }
            cursor = Some(end);
        }
    }

    /// What a GET or HEAD of `bucket`/`key` answers with: the object, once the bucket exists,
    /// the key is stored and `ask`'s conditions pass, and the byte range `ask` names.
    async fn read_target(
        &self,
        link: &StoreLink,
        bucket: &str,
        key: &str,
        ask: ReadAsk<'_>,
    ) -> S3Result<ReadTarget> {
        self.need_bucket(bucket)?;
        let stored = lookup(link, bucket, key).await?.ok_or_else(no_such_key)?;
        check_conditions(
            &stored,
            ask.if_match,
            ask.if_unmodified_since,
            ask.if_none_match,
            ask.if_modified_since,
            not_modified,
        )?;
        let (start, end, content_range) = byte_range(ask.range, stored.size)?;
        Ok(ReadTarget {
            stored,
            start,
            end,
            content_range,
        })
    }

    fn need_bucket(&self, bucket: &str) -> S3Result<()> {
        if self.buckets.exists(bucket) {
            Ok(())
        } else {
            Err(no_such_bucket(bucket))
        }
    }

    /// S3 keys are at most 1024 bytes.
    fn check_key(&self, key: &str) -> S3Result<()> {
        if key.len() > super::buckets::KEY_BYTES_MAX {
            return Err(error(
                S3ErrorCode::KeyTooLongError,
                "Your key is too long (at most 1024 bytes)",
            ));
        }
        Ok(())
    }

    fn check_size(&self, size: u64) -> S3Result<()> {
        if size > self.object_bytes_max {
            return Err(error(
                S3ErrorCode::EntityTooLarge,
                format!(
                    "Your proposed upload exceeds the maximum allowed size ({} bytes)",
                    self.object_bytes_max
                ),
            ));
        }
        Ok(())
    }
}

fn max_keys(asked: Option<i32>) -> S3Result<usize> {
    match asked {
        None => Ok(LIST_PAGE_MAX),
        Some(n) if n < 0 => Err(error(
            S3ErrorCode::InvalidArgument,
            "max-keys must be a non-negative integer",
        )),
        Some(n) => Ok((n as usize).min(LIST_PAGE_MAX)),
    }
}

fn url_encoded(encoding: &Option<EncodingType>) -> S3Result<bool> {
    match encoding {
        None => Ok(false),
        Some(e) if e.as_str() == EncodingType::URL => Ok(true),
        Some(_) => Err(error(
            S3ErrorCode::InvalidArgument,
            "Invalid Encoding Method specified in Request",
        )),
    }
}

/// Applies `encoding-type=url` to a page's keys and prefixes.
fn encode_page(page: &mut Page, url: bool) -> Vec<CommonPrefix> {
    let shown = |text: &str| {
        if url {
            list::url_encode(text)
        } else {
            text.to_string()
        }
    };
    for object in &mut page.objects {
        if let Some(key) = &object.key {
            object.key = Some(shown(key));
        }
    }
    page.prefixes
        .iter()
        .map(|p| CommonPrefix {
            prefix: Some(shown(p)),
        })
        .collect()
}

fn no_such_upload() -> S3Error {
    error(
        S3ErrorCode::NoSuchUpload,
        "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.",
    )
}

/// Parses an ETag as a client echoes it (quoted or not).
fn bare_etag(etag: &ETag) -> &str {
    etag.value().trim_matches('"')
}

#[async_trait::async_trait]
impl S3 for TesseraS3 {
    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let meta = meta_from_headers(&req.headers)?;
        let input = req.input;
        self.need_bucket(&input.bucket)?;
        self.check_key(&input.key)?;
        let id = self
            .uploads
            .create(&input.bucket, &input.key, meta)
            .ok_or_else(|| error(S3ErrorCode::SlowDown, "Too many uploads in progress"))?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(id),
            ..Default::default()
        }))
    }

    async fn upload_part(
        &self,
        mut req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let link = link_of(&req)?;
        let mut body = req.input.body.take();
        let mut content_length = req.input.content_length;
        let decoded = unsigned_chunked(&req, &mut body, &mut content_length)?;
        let headers = req.headers;
        let trailers = match decoded {
            Trailers::S3s(_) => Trailers::S3s(req.trailing_headers),
            decoded => decoded,
        };
        let mut input = req.input;
        input.body = body;
        input.content_length = content_length;
        self.need_bucket(&input.bucket)?;
        if !(1..=PART_NUMBER_MAX).contains(&input.part_number) {
            return Err(error(
                S3ErrorCode::InvalidArgument,
                format!(
                    "Part number must be an integer between 1 and {PART_NUMBER_MAX}, inclusive"
                ),
            ));
        }
        self.uploads
            .get(&input.upload_id, &input.bucket, &input.key)
            .ok_or_else(no_such_upload)?;
        let size = body_size(input.content_length)?;
        self.check_size(size)?;
        let want_md5 = content_md5(&input.content_md5)?;
        let md5 = receive(
            &link,
            &parts(&input.bucket),
            &part_key(&input.upload_id, input.part_number),
            size,
            Meta::new(),
            input.body,
            want_md5,
            &headers,
            trailers,
        )
        .await?;
        let part = PartInfo {
            size,
            md5,
            uploaded: SystemTime::now(),
        };
        if !self
            .uploads
            .add_part(&input.upload_id, input.part_number, part)
        {
            return Err(no_such_upload());
        }
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(ETag::Strong(object::hex(&md5))),
            ..Default::default()
        }))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let link = link_of(&req)?;
        let input = req.input;
        self.need_bucket(&input.bucket)?;
        let upload = self
            .uploads
            .get(&input.upload_id, &input.bucket, &input.key)
            .ok_or_else(no_such_upload)?;
        let asked = input
            .multipart_upload
            .and_then(|m| m.parts)
            .unwrap_or_default();
        if asked.is_empty() {
            return Err(error(
                S3ErrorCode::MalformedXML,
                "You must specify at least one part",
            ));
        }
        let invalid_part = |n: i32| {
            error(
                S3ErrorCode::InvalidPart,
                format!("Part {n} could not be found or its entity tag does not match"),
            )
        };
        let mut chosen: Vec<(i32, PartInfo)> = Vec::with_capacity(asked.len());
        for part in &asked {
            let n = part.part_number.unwrap_or(0);
            if chosen.last().is_some_and(|(last, _)| n <= *last) {
                return Err(error(
                    S3ErrorCode::InvalidPartOrder,
                    "The list of parts was not in ascending order. The parts list must be specified in order by part number.",
                ));
            }
            let info = upload.parts.get(&n).ok_or_else(|| invalid_part(n))?;
            if part
                .e_tag
                .as_ref()
                .is_some_and(|e| bare_etag(e) != object::hex(&info.md5))
            {
                return Err(invalid_part(n));
            }
            chosen.push((n, *info));
        }
        if let Some((n, _)) = chosen[..chosen.len() - 1]
            .iter()
            .find(|(_, info)| info.size < PART_BYTES_MIN)
        {
            return Err(error(
                S3ErrorCode::EntityTooSmall,
                format!(
                    "Part {n} is smaller than the minimum allowed size of {PART_BYTES_MIN} bytes"
                ),
            ));
        }
        let size: u64 = chosen.iter().map(|(_, info)| info.size).sum();
        self.check_size(size)?;
        let space = parts(&input.bucket);
        let mut handles = Vec::with_capacity(chosen.len());
        for (n, info) in &chosen {
            let handle = link
                .lookup(&space, &part_key(&input.upload_id, *n))
                .await?
                .map_err(store_error)?
                .ok_or_else(|| {
                    error(
                        S3ErrorCode::InvalidPart,
                        format!("Part {n} is no longer stored (evicted); upload it again"),
                    )
                })?;
            let stored = Stored::new(handle)?;
            if stored.size != info.size || stored.trailer.md5 != info.md5 {
                return Err(invalid_part(*n));
            }
            handles.push(stored);
        }
        let meta = meta_touched(&upload.meta)?;
        let mut reservation = link
            .reserve(
                &objects(&input.bucket),
                &input.key,
                size + OBJECT_TRAILER_BYTES,
                meta,
            )
            .await?
            .map_err(store_error)?;
        for stored in &handles {
            reservation
                .write(&stored.handle.body()[..stored.size as usize])
                .map_err(store_error)?;
        }
        let md5s: Vec<[u8; 16]> = chosen.iter().map(|(_, info)| info.md5).collect();
        let trailer = Trailer {
            md5: combined_md5(&md5s),
            parts: chosen.len() as u32,
        };
        reservation.write(&trailer.encode()).map_err(store_error)?;
        self.buckets.note_put(&input.bucket, &input.key);
        link.commit(&objects(&input.bucket), reservation)
            .await?
            .map_err(store_error)?;
        self.buckets.note_put(&input.bucket, &input.key);
        if let Some(done) = self.uploads.remove(&input.upload_id) {
            for n in done.parts.keys() {
                let _ = link.delete(&space, &part_key(&input.upload_id, *n)).await;
            }
        }
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(input.bucket.clone()),
            key: Some(input.key.clone()),
            location: Some(format!("/{}/{}", input.bucket, input.key)),
            e_tag: Some(ETag::Strong(trailer.etag())),
            ..Default::default()
        }))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let link = link_of(&req)?;
        let input = req.input;
        self.need_bucket(&input.bucket)?;
        self.uploads
            .get(&input.upload_id, &input.bucket, &input.key)
            .ok_or_else(no_such_upload)?;
        if let Some(upload) = self.uploads.remove(&input.upload_id) {
            let space = parts(&input.bucket);
            for n in upload.parts.keys() {
                let _ = link.delete(&space, &part_key(&input.upload_id, *n)).await;
            }
        }
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let input = req.input;
        self.need_bucket(&input.bucket)?;
        let upload = self
            .uploads
            .get(&input.upload_id, &input.bucket, &input.key)
            .ok_or_else(no_such_upload)?;
        let max = match input.max_parts {
            Some(n) if n < 0 => {
                return Err(error(
                    S3ErrorCode::InvalidArgument,
                    "max-parts must be non-negative",
                ))
            }
            Some(n) => (n as usize).min(LIST_PAGE_MAX),
            None => LIST_PAGE_MAX,
        };
        let marker = input.part_number_marker.unwrap_or(0);
        let after: Vec<(&i32, &PartInfo)> = upload.parts.range(marker + 1..).collect();
        let truncated = after.len() > max;
        let page: Vec<Part> = after
            .iter()
            .take(max)
            .map(|(n, info)| Part {
                part_number: Some(**n),
                size: Some(info.size as i64),
                e_tag: Some(ETag::Strong(object::hex(&info.md5))),
                last_modified: Some(Timestamp::from(info.uploaded)),
                ..Default::default()
            })
            .collect();
        let next = page.last().and_then(|p| p.part_number);
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            max_parts: Some(max as i32),
            part_number_marker: input.part_number_marker,
            next_part_number_marker: truncated.then_some(next).flatten(),
            is_truncated: Some(truncated),
            parts: Some(page),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            ..Default::default()
        }))
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let input = req.input;
        self.need_bucket(&input.bucket)?;
        let max = match input.max_uploads {
            Some(n) if n < 0 => {
                return Err(error(
                    S3ErrorCode::InvalidArgument,
                    "max-uploads must be non-negative",
                ))
            }
            Some(n) => (n as usize).min(LIST_PAGE_MAX),
            None => LIST_PAGE_MAX,
        };
        let prefix = input.prefix.clone().unwrap_or_default();
        let key_marker = input.key_marker.clone().unwrap_or_default();
        let id_marker = input.upload_id_marker.clone().unwrap_or_default();
        let after: Vec<(String, super::multipart::Upload)> = self
            .uploads
            .of_bucket(&input.bucket, &prefix)
            .into_iter()
            .filter(|(id, u)| {
                key_marker.is_empty()
                    || u.key > key_marker
                    || (u.key == key_marker && !id_marker.is_empty() && *id > id_marker)
            })
            .collect();
        let truncated = after.len() > max;
        let page: Vec<MultipartUpload> = after
            .iter()
            .take(max)
            .map(|(id, u)| MultipartUpload {
                key: Some(u.key.clone()),
                upload_id: Some(id.clone()),
                initiated: Some(Timestamp::from(u.initiated)),
                storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
                ..Default::default()
            })
            .collect();
        let last = after[..max.min(after.len())].last();
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            prefix: input.prefix,
            key_marker: input.key_marker,
            upload_id_marker: input.upload_id_marker,
            max_uploads: Some(max as i32),
            is_truncated: Some(truncated),
            next_key_marker: truncated
                .then(|| last.map(|(_, u)| u.key.clone()))
                .flatten(),
            next_upload_id_marker: truncated.then(|| last.map(|(id, _)| id.clone())).flatten(),
            uploads: Some(page),
            ..Default::default()
        }))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let link = link_of(&req)?;
        let input = req.input;
        self.need_bucket(&input.bucket)?;
        let url = url_encoded(&input.encoding_type)?;
        let (after, after_is_token) = match &input.continuation_token {
            Some(token) => (
                Some(list::decode_token(token).ok_or_else(|| {
                    error(
                        S3ErrorCode::InvalidArgument,
                        "The continuation token provided is incorrect",
                    )
                })?),
                true,
            ),
            None => (input.start_after.clone(), false),
        };
        let query = ListQuery {
            prefix: input.prefix.clone().unwrap_or_default(),
            delimiter: input.delimiter.clone().filter(|d| !d.is_empty()),
            max_keys: max_keys(input.max_keys)?,
            after,
            after_is_token,
        };
        let mut page = self.walk(&link, &input.bucket, &query).await?;
        let prefixes = encode_page(&mut page, url);
        let shown = |t: Option<String>| t.map(|t| if url { list::url_encode(&t) } else { t });
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: shown(input.prefix),
            delimiter: shown(input.delimiter),
            start_after: shown(input.start_after),
            max_keys: Some(query.max_keys as i32),
            key_count: Some((page.objects.len() + prefixes.len()) as i32),
            continuation_token: input.continuation_token,
            is_truncated: Some(page.truncated),
            next_continuation_token: page
                .truncated
                .then(|| page.last.as_deref().map(list::encode_token))
                .flatten(),
            contents: Some(page.objects),
            common_prefixes: (!prefixes.is_empty()).then_some(prefixes),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let link = link_of(&req)?;
        let input = req.input;
        self.need_bucket(&input.bucket)?;
        let url = url_encoded(&input.encoding_type)?;
        let query = ListQuery {
            prefix: input.prefix.clone().unwrap_or_default(),
            delimiter: input.delimiter.clone().filter(|d| !d.is_empty()),
            max_keys: max_keys(input.max_keys)?,
            after: input.marker.clone().filter(|m| !m.is_empty()),
            // A v1 marker may be a common prefix returned as NextMarker.
            after_is_token: true,
        };
        let mut page = self.walk(&link, &input.bucket, &query).await?;
        let prefixes = encode_page(&mut page, url);
        let shown = |t: Option<String>| t.map(|t| if url { list::url_encode(&t) } else { t });
        let next_marker = (page.truncated && query.delimiter.is_some())
            .then(|| shown(page.last.clone()))
            .flatten();
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(input.bucket),
            prefix: Some(shown(input.prefix).unwrap_or_default()),
            delimiter: shown(input.delimiter),
            marker: Some(shown(input.marker).unwrap_or_default()),
            max_keys: Some(query.max_keys as i32),
            is_truncated: Some(page.truncated),
            next_marker,
            contents: Some(page.objects),
            common_prefixes: (!prefixes.is_empty()).then_some(prefixes),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    async fn list_buckets(
        &self,
        _req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let buckets = self
            .buckets
            .list()
            .into_iter()
            .map(|(name, created)| Bucket {
                name: Some(name),
                creation_date: Some(Timestamp::from(created)),
                bucket_region: None,
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(Owner {
                display_name: Some("tessera".into()),
                id: Some("tessera".into()),
            }),
            ..Default::default()
        }))
    }

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let bucket = &req.input.bucket;
        match self.buckets.create(bucket) {
            Ok(()) => Ok(S3Response::new(CreateBucketOutput {
                location: Some(format!("/{bucket}")),
            })),
            Err(BucketError::Exists) => Err(error(
                S3ErrorCode::BucketAlreadyOwnedByYou,
                "Your previous request to create the named bucket succeeded and you already own it.",
            )),
            Err(BucketError::TooMany) => Err(error(
                S3ErrorCode::TooManyBuckets,
                "You have attempted to create more buckets than allowed",
            )),
            Err(BucketError::Missing) | Err(BucketError::Io(_)) => {
                tracing::error!(bucket, "cannot persist the bucket registry");
                Err(error(S3ErrorCode::InternalError, "the bucket registry could not be written"))
            }
        }
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.need_bucket(&req.input.bucket)?;
        Ok(S3Response::new(HeadBucketOutput {
            bucket_region: Some("us-east-1".into()),
            ..Default::default()
        }))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.need_bucket(&req.input.bucket)?;
        Ok(S3Response::new(GetBucketLocationOutput::default()))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let link = link_of(&req)?;
        let bucket = &req.input.bucket;
        self.need_bucket(bucket)?;
        // Keys noted here may have been evicted or deleted meanwhile: the store decides.
        for key in self.buckets.noted_keys(bucket) {
            match link
                .lookup(&objects(bucket), &key)
                .await?
                .map_err(store_error)?
            {
                Some(_) => {
                    return Err(error(
                        S3ErrorCode::BucketNotEmpty,
                        "The bucket you tried to delete is not empty",
                    ))
                }
                None => self.buckets.note_delete(bucket, &key),
            }
        }
        match self.buckets.delete(bucket) {
            Ok(()) => Ok(S3Response::new(DeleteBucketOutput {})),
            Err(BucketError::Missing) => Err(no_such_bucket(bucket)),
            Err(_) => Err(error(
                S3ErrorCode::InternalError,
                "the bucket registry could not be written",
            )),
        }
    }

    async fn put_object(
        &self,
        mut req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let link = link_of(&req)?;
        let mut body = req.input.body.take();
        let mut content_length = req.input.content_length;
        let decoded = unsigned_chunked(&req, &mut body, &mut content_length)?;
        let meta = meta_from_headers(&req.headers)?;
        let headers = req.headers;
        let trailers = match decoded {
            Trailers::S3s(_) => Trailers::S3s(req.trailing_headers),
            decoded => decoded,
        };
        let mut input = req.input;
        input.body = body;
        input.content_length = content_length;
        self.need_bucket(&input.bucket)?;
        self.check_key(&input.key)?;
        let size = body_size(input.content_length)?;
        self.check_size(size)?;
        let want_md5 = content_md5(&input.content_md5)?;
        // Write-ahead: listed only once stored (a listing checks the store).
        self.buckets.note_put(&input.bucket, &input.key);
        let md5 = receive(
            &link,
            &objects(&input.bucket),
            &input.key,
            size,
            meta,
            input.body,
            want_md5,
            &headers,
            trailers,
        )
        .await?;
        let trailer = Trailer { md5, parts: 0 };
        // Again after the commit: a listing meanwhile may have found it missing and forgotten it.
        self.buckets.note_put(&input.bucket, &input.key);
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(ETag::Strong(trailer.etag())),
            checksum_crc32: input.checksum_crc32,
            checksum_crc32c: input.checksum_crc32c,
            checksum_crc64nvme: input.checksum_crc64nvme,
            checksum_sha1: input.checksum_sha1,
            checksum_sha256: input.checksum_sha256,
            ..Default::default()
        }))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let link = link_of(&req)?;
        let input = req.input;
        let ReadTarget {
            stored,
            start,
            end,
            content_range,
        } = self
            .read_target(&link, &input.bucket, &input.key, read_ask!(input))
            .await?;
        // A range's bytes have no checksum of their own: the whole object's would not fit them.
        let checksums = checksums_asked(input.checksum_mode.as_ref()) && content_range.is_none();
        let headers = stored.headers(checksums);
        let etag = stored.etag();
        let mtime = stored.mtime();
        let bytes = Bytes::from_owner(BodySlice {
            handle: stored.handle,
            start: start as usize,
            end: end as usize,
        });
        let body = StreamingBlob::wrap(futures::stream::iter(Some(Ok::<_, std::io::Error>(bytes))));
        let mut response = S3Response::new(GetObjectOutput {
            body: Some(body),
            content_length: Some((end - start) as i64),
            content_range,
            accept_ranges: Some("bytes".into()),
            e_tag: Some(etag),
            last_modified: Some(Timestamp::from(mtime)),
            ..Default::default()
        });
        response.headers = headers;
        Ok(response)
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let link = link_of(&req)?;
        let input = req.input;
        let ReadTarget {
            stored,
            start,
            end,
            content_range,
        } = self
            .read_target(&link, &input.bucket, &input.key, read_ask!(input))
            .await?;
        let length = end - start;
        let checksums = checksums_asked(input.checksum_mode.as_ref());
        let mut response = S3Response::new(HeadObjectOutput {
            content_length: Some(length as i64),
            content_range,
            accept_ranges: Some("bytes".into()),
            e_tag: Some(stored.etag()),
            last_modified: Some(Timestamp::from(stored.mtime())),
            parts_count: (stored.trailer.parts > 0).then_some(stored.trailer.parts as i32),
            ..Default::default()
        });
        response.headers = stored.headers(checksums);
        Ok(response)
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let link = link_of(&req)?;
        let input = req.input;
        self.need_bucket(&input.bucket)?;
        link.delete(&objects(&input.bucket), &input.key)
            .await?
            .map_err(store_error)?;
        self.buckets.note_delete(&input.bucket, &input.key);
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let link = link_of(&req)?;
        let input = req.input;
        self.need_bucket(&input.bucket)?;
        if input.delete.objects.len() > DELETE_OBJECTS_MAX {
            return Err(error(
                S3ErrorCode::MalformedXML,
                format!("at most {DELETE_OBJECTS_MAX} keys may be deleted at once"),
            ));
        }
        let quiet = input.delete.quiet.unwrap_or(false);
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for object in input.delete.objects {
            match link.delete(&objects(&input.bucket), &object.key).await? {
                Ok(_) => {
                    self.buckets.note_delete(&input.bucket, &object.key);
                    if !quiet {
                        deleted.push(DeletedObject {
                            key: Some(object.key),
                            ..Default::default()
                        });
                    }
                }
                Err(e) => {
                    let e = store_error(e);
                    errors.push(Error {
                        code: Some(e.code().as_str().to_string()),
                        key: Some(object.key),
                        message: e.message().map(str::to_string),
                        version_id: None,
                    });
                }
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: (!errors.is_empty()).then_some(errors),
            ..Default::default()
        }))
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let link = link_of(&req)?;
        let caller = req.credentials.as_ref().map(|c| c.access_key.clone());
        let replace_meta = req
            .input
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        let new_meta = if replace_meta {
            Some(meta_from_headers(&req.headers)?)
        } else {
            None
        };
        let input = req.input;
        self.need_bucket(&input.bucket)?;
        self.check_key(&input.key)?;
        let CopySource::Bucket {
            bucket: src_bucket,
            key: src_key,
            ..
        } = &input.copy_source
        else {
            return Err(error(
                S3ErrorCode::NotImplemented,
                "copying from an access point is not supported",
            ));
        };
        if !self
            .credentials
            .allows(caller.as_deref(), Some(src_bucket), Right::Read)
        {
            return Err(error(
                S3ErrorCode::AccessDenied,
                "This key may not read the source bucket",
            ));
        }
        self.need_bucket(src_bucket)?;
        if **src_bucket == *input.bucket && **src_key == *input.key && !replace_meta {
            return Err(error(
                S3ErrorCode::InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
            ));
        }
        let source = lookup(&link, src_bucket, src_key)
            .await?
            .ok_or_else(no_such_key)?;
        check_conditions(
            &source,
            input.copy_source_if_match.as_ref(),
            input.copy_source_if_unmodified_since.as_ref(),
            input.copy_source_if_none_match.as_ref(),
            input.copy_source_if_modified_since.as_ref(),
            precondition_failed,
        )?;
        self.check_size(source.size)?;
        let meta = match new_meta {
            Some(meta) => meta,
            None => meta_touched(source.handle.meta())?,
        };
        let mut reservation = link
            .reserve(
                &objects(&input.bucket),
                &input.key,
                source.size + OBJECT_TRAILER_BYTES,
                meta,
            )
            .await?
            .map_err(store_error)?;
        reservation
            .write(source.handle.body())
            .map_err(store_error)?;
        self.buckets.note_put(&input.bucket, &input.key);
        link.commit(&objects(&input.bucket), reservation)
            .await?
            .map_err(store_error)?;
        self.buckets.note_put(&input.bucket, &input.key);
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(source.etag()),
                last_modified: Some(Timestamp::from(SystemTime::now())),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }
}

/// The bytes `[start, end)` a GET or HEAD with `range` answers for an object of `size` bytes,
/// and the `Content-Range` to send when a range was asked for; `InvalidRange` (416) when it
/// cannot be satisfied.
fn byte_range(range: Option<&Range>, size: u64) -> S3Result<(u64, u64, Option<String>)> {
    let Some(range) = range else {
        return Ok((0, size, None));
    };
    let r = range.check(size).map_err(|_| {
        error(
            S3ErrorCode::InvalidRange,
            "The requested range is not satisfiable",
        )
    })?;
    let shown = format!("bytes {}-{}/{size}", r.start, r.end - 1);
    Ok((r.start, r.end, Some(shown)))
}
