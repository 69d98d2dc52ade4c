//! `google.bytestream.ByteStream`: Read, Write, QueryWriteStatus over the CAS.
//!
//! * **Read** `[{instance}/]blobs/[blake3/]{hash}/{size}`: looks the blob up and streams
//!   `ReadResponse`s of at most [`READ_CHUNK_BYTES_MAX`] straight from the segment map (the
//!   chunk is a slice of a `Bytes` that owns the read handle; no copy). A whole uncompressed
//!   read of a blob that is streaming in from the object-store tier is sent as it arrives
//!   (`Backend::lookup_body`) and ends in UNAVAILABLE if the blob breaks off or fails
//!   verification; ranges and compressed reads wait for the verified blob. `read_offset` and
//!   `read_limit` per the ByteStream spec. `compressed-blobs/zstd/…`: the stored raw blob is
//!   zstd-compressed on the fly from the uncompressed `read_offset` (a `read_limit` is
//!   INVALID_ARGUMENT, as REAPI requires). A missing blob, or a stored blob whose size differs
//!   from the name's, is NOT_FOUND. The empty blob is answered without a lookup.
//! * **Write** `[{instance}/]uploads/{id}/blobs/…` or `…/compressed-blobs/zstd/…`: the first
//!   message reserves `size` bytes in the store (the size from the resource name); each chunk
//!   is written into the reservation as it arrives (decompressed first for zstd, bounded by the
//!   named size), with offsets checked by `bytestream_rules::WriteProgress`; `finish_write`
//!   commits, and the store's CAS check of the digest decides (INVALID_ARGUMENT on mismatch,
//!   nothing stored). A blob that is already present answers at once with `committed_size` =
//!   size (uncompressed) or -1 (compressed), status OK — never ALREADY_EXISTS, which Bazel
//!   4.2.3 treats as an error (clients.md §2). Errors abort the reservation; a stream that
//!   breaks off (ends without `finish_write`, client reset, deadline) suspends the upload for a
//!   resume (`uploads.rs`). A successful compressed Write answers the compressed bytes
//!   received as `committed_size` (the unit its `write_offset`s count in).
//! * **QueryWriteStatus**: the bytes held by a suspended upload (`complete: false`); the full
//!   size with `complete: true` when the blob is already stored; otherwise 0 (start again).

use bytes::Bytes;

use crate::grpc::pb::google::bytestream::{
    QueryWriteStatusRequest, QueryWriteStatusResponse, ReadRequest, WriteRequest, WriteResponse,
};
use crate::grpc::CallContext;
use crate::grpc::Code;
use crate::grpc::{RequestStream, ResponseSink, Status};
use crate::protocols::backend::{Backend, Body, Put, RequestContext};
use crate::protocols::body::Streaming;
use crate::protocols::pipeline::PendingPut;
use crate::protocols::reapi_keys::cas_key;
use crate::store::{ContentDigest, Meta};

use super::bytestream_rules::{
    compressed_read_start, read_range, read_response_head, WriteProgress, READ_CHUNK_BYTES_MAX,
};
use super::resource_name::{parse_read, parse_write, BlobName, Compressor};
use super::uploads::{Upload, UploadGuard};
use super::zstd_codec::{ZstdReadEncoder, ZstdUploadDecoder};
use super::{handle_bytes, is_empty_blob, status_of, ReapiService};

fn blob_digest(blob: &BlobName<'_>) -> Result<ContentDigest, Status> {
    ContentDigest::parse_hex(blob.digest_function, blob.hash)
        .ok_or_else(|| Status::invalid_argument("resource name hash is not lowercase hex"))
}

pub(super) async fn read<B: Backend + 'static>(
    service: &ReapiService<B>,
    call: &CallContext,
    request: ReadRequest,
    sink: &mut ResponseSink,
) -> Result<(), Status> {
    let name = parse_read(&request.resource_name)?;
    let ctx = &service.context(name.instance_name, call);
    let digest = blob_digest(&name.blob)?;
    let size = name.blob.size_bytes;
    let body = if is_empty_blob(&digest, size) {
        Bytes::new()
    } else {
        // A whole uncompressed read may start while the blob streams in from the object-store
        // tier; a range or a compressed read waits for the committed (verified) blob, so a
        // read that ends before the blob's last byte never succeeds on unverified bytes.
        let whole = name.blob.compressor == Compressor::Identity
            && request.read_offset == 0
            && request.read_limit == 0;
        let key = cas_key(ctx, &digest);
        let found = match whole {
            true => service.backend.lookup_body(ctx, &key.key()).await,
            false => (service.backend.lookup(ctx, &key.key()).await)
                .map(|found| found.map(Body::Committed)),
        };
        let found = found.map_err(|e| status_of(&e))?.ok_or_else(|| {
            Status::not_found(format!("blob {} is not in the CAS", request.resource_name))
        })?;
        if found.len() != size {
            return Err(Status::not_found(format!(
                "blob {} is stored with {} bytes, the resource name says {size}",
                digest.to_hex(),
                found.len()
            )));
        }
        match found {
            Body::Committed(handle) => handle_bytes(handle),
            Body::Streaming(streaming) => {
                return send_streaming(sink, streaming, &request.resource_name).await
            }
        }
    };
    match name.blob.compressor {
        Compressor::Identity => {
            let range = read_range(request.read_offset, request.read_limit, size)?;
            send_chunks(sink, body.slice(range.start as usize..range.end as usize)).await
        }
        Compressor::Zstd => {
            let start = compressed_read_start(request.read_offset, request.read_limit, size)?;
            send_compressed(sink, &body[start as usize..]).await
        }
    }
}

/// Sends a blob still streaming in from the object-store tier as its bytes arrive. A blob that
/// breaks off or fails verification before any byte was sent is NOT_FOUND (not stored, as
/// before streaming); after, it ends the call in UNAVAILABLE (after the bytes sent so far,
/// never after all of them), so the client retries it rather than trusting a short read.
async fn send_streaming(
    sink: &mut ResponseSink,
    mut streaming: Streaming,
    resource_name: &str,
) -> Result<(), Status> {
    let mut sent = false;
    loop {
        match streaming.next().await {
            Ok(Some(bytes)) => {
                sent = true;
                send_chunks(sink, bytes).await?
            }
            Ok(None) => return Ok(()),
            Err(broken) if !sent => {
                return Err(Status::not_found(format!(
                    "blob {resource_name} is not in the CAS ({broken})"
                )))
            }
            Err(broken) => return Err(Status::new(Code::Unavailable, broken.to_string())),
        }
    }
}

/// Sends `data` as ReadResponses of at most [`READ_CHUNK_BYTES_MAX`], without copying it.
async fn send_chunks(sink: &mut ResponseSink, mut data: Bytes) -> Result<(), Status> {
    while !data.is_empty() {
        let chunk = data.split_to(data.len().min(READ_CHUNK_BYTES_MAX));
        sink.send_parts(read_response_head(chunk.len()), chunk)
            .await?;
    }
    Ok(())
}

/// Compresses `data` into one zstd frame, sent in ReadResponses of at most
/// [`READ_CHUNK_BYTES_MAX`] as the compressed bytes accumulate.
async fn send_compressed(sink: &mut ResponseSink, data: &[u8]) -> Result<(), Status> {
    let mut encoder = ZstdReadEncoder::new()?;
    let mut out: Vec<u8> = Vec::with_capacity(READ_CHUNK_BYTES_MAX);
    for piece in data.chunks(READ_CHUNK_BYTES_MAX) {
        encoder.compress(piece, &mut out)?;
        if out.len() >= READ_CHUNK_BYTES_MAX {
            send_chunks(sink, Bytes::from(std::mem::take(&mut out))).await?;
        }
    }
    encoder.finish(&mut out)?;
    send_chunks(sink, Bytes::from(out)).await
}

pub(super) async fn write<B: Backend + 'static>(
    service: &ReapiService<B>,
    call: &CallContext,
    requests: &mut RequestStream,
) -> Result<WriteResponse, Status> {
    let first: WriteRequest = requests
        .decode()
        .await?
        .ok_or_else(|| Status::invalid_argument("Write stream carried no WriteRequest"))?;
    let resource_name = first.resource_name.clone();
    let name = parse_write(&resource_name)?;
    let ctx = &service.context(name.instance_name, call);
    let digest = blob_digest(&name.blob)?;
    let size = name.blob.size_bytes;
    let compressed = name.blob.compressor == Compressor::Zstd;
    let already = WriteResponse {
        committed_size: if compressed { -1 } else { size as i64 },
    };
    let upload = match service.uploads.take(&resource_name) {
        Some(upload) => upload,
        None => match begin_upload(service, ctx, digest, size, compressed).await? {
            Some(upload) => upload,
            None => return Ok(already),
        },
    };
    let mut progress = WriteProgress::new(&resource_name, compressed, size, upload.held_bytes);
    let mut guard = UploadGuard {
        table: &service.uploads,
        name: resource_name.clone(),
        upload: Some(upload),
    };
    let mut request = first;
    loop {
        let step = match progress.accept(&request) {
            Ok(step) => step,
            Err(status) => return Err(abort(service, ctx, &mut guard, status).await),
        };
        let upload = guard
            .upload
            .as_mut()
            .expect("the guard holds the upload until the end");
        if let Err(status) = append(upload, &step.data) {
            return Err(abort(service, ctx, &mut guard, status).await);
        }
        upload.held_bytes += step.data.len() as u64;
        if step.finish {
            break;
        }
        request = match requests.decode::<WriteRequest>().await {
            Ok(Some(next)) => next,
            // Ended without finish_write: the guard suspends the upload for a resume.
            Ok(None) => return Err(progress.end_of_stream().unwrap_err()),
            // Client reset or a broken frame: also kept for a resume.
            Err(status) => return Err(status),
        };
    }
    let upload = guard.upload.take().expect("held until here");
    if let Some(decoder) = upload.decoder {
        if let Err(status) = decoder.finish() {
            service.backend.abort(ctx, upload.reservation).await;
            return Err(status);
        }
    }
    service
        .backend
        .commit(ctx, upload.reservation)
        .await
        .map_err(|e| status_of(&e))?;
    Ok(WriteResponse {
        committed_size: if compressed {
            progress.held_bytes() as i64
        } else {
            size as i64
        },
    })
}

/// Reserves room for a new upload; `None` when the blob is already stored.
async fn begin_upload<B: Backend + 'static>(
    service: &ReapiService<B>,
    ctx: &RequestContext,
    digest: ContentDigest,
    size: u64,
    compressed: bool,
) -> Result<Option<Upload>, Status> {
    let key = cas_key(ctx, &digest);
    let put = Put {
        key: key.key(),
        body_len: size,
        meta: Meta::new(),
        expect: Some(digest),
        if_absent: false,
    };
    // The reservation outlives this call (a broken-off Write is suspended for a resume), so
    // the upload keeps it rather than the pending put; it aborts on drop all the same.
    match PendingPut::begin(&*service.backend, ctx, &put)
        .await
        .map_err(|e| status_of(&e))?
    {
        None => Ok(None),
        Some(pending) => Ok(Some(Upload {
            reservation: pending.into_reservation(),
            decoder: if compressed {
                Some(ZstdUploadDecoder::new(size)?)
            } else {
                None
            },
            held_bytes: 0,
        })),
    }
}

/// Writes one message's data into the reservation (through the decoder for zstd).
fn append(upload: &mut Upload, data: &[u8]) -> Result<(), Status> {
    let Upload {
        reservation,
        decoder,
        ..
    } = upload;
    match decoder {
        Some(decoder) => decoder.decompress(data, |piece| {
            reservation.write(piece).map_err(|e| status_of(&e))
        }),
        None => reservation.write(data).map_err(|e| status_of(&e)),
    }
}

/// Releases the upload of a failed Write (it will not be resumed) and returns `status`.
async fn abort<B: Backend + 'static>(
    service: &ReapiService<B>,
    ctx: &RequestContext,
    guard: &mut UploadGuard<'_>,
    status: Status,
) -> Status {
    if let Some(upload) = guard.upload.take() {
        service.backend.abort(ctx, upload.reservation).await;
    }
    status
}

pub(super) async fn query_write_status<B: Backend + 'static>(
    service: &ReapiService<B>,
    call: &CallContext,
    request: QueryWriteStatusRequest,
) -> Result<QueryWriteStatusResponse, Status> {
    let name = parse_write(&request.resource_name)?;
    if let Some(held) = service.uploads.held_bytes(&request.resource_name) {
        return Ok(QueryWriteStatusResponse {
            committed_size: held as i64,
            complete: false,
        });
    }
    let ctx = &service.context(name.instance_name, call);
    let digest = blob_digest(&name.blob)?;
    let size = name.blob.size_bytes;
    let present = is_empty_blob(&digest, size)
        || service
            .backend
            .contains(ctx, &[cas_key(ctx, &digest).key()])
            .await
            .map_err(|e| status_of(&e))?
            .first()
            .copied()
            .unwrap_or(false);
    Ok(QueryWriteStatusResponse {
        committed_size: if present { size as i64 } else { 0 },
        complete: present,
    })
}
