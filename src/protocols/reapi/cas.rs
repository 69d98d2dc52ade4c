//! `ContentAddressableStorage`: FindMissingBlobs, BatchUpdateBlobs, BatchReadBlobs, GetTree.
//!
//! * FindMissingBlobs asks the store for presence of all digests in one batch (the steering
//!   layer groups them by shard); a present blob counts as used for eviction. The empty blob
//!   is never missing. Malformed digests make the whole request INVALID_ARGUMENT.
//! * BatchUpdateBlobs: per-blob status. The data must have the digest's size and hash
//!   (INVALID_ARGUMENT for that blob, nothing stored); only identity blobs are accepted (the
//!   capabilities advertise no batch compressor). A request over `batch_total_bytes_max` or
//!   `batch_digests_max` is INVALID_ARGUMENT as a whole (REAPI: "more than the server
//!   supported limit").
//! * BatchReadBlobs: per-blob status, NOT_FOUND for a missing blob; identity only.
//! * GetTree: breadth-first from the root, each directory once, pages of at most
//!   `page_size` (≤ [`super::TREE_PAGE_DIRECTORIES_MAX`]) directories and
//!   [`super::TREE_PAGE_BYTES_MAX`] bytes, all streamed in one call. `next_page_token` is the
//!   number of directories already sent; a request with that token resumes by walking again
//!   and skipping them. A missing root is NOT_FOUND; missing subdirectories are left out (spec).

use std::collections::{HashSet, VecDeque};

use prost::Message;

use crate::grpc::pb::build::bazel::remote::execution::v2 as reapi;
use crate::grpc::CallContext;
use crate::grpc::{ResponseSink, Status};

use crate::protocols::backend::{Backend, ObjectKey, Put, RequestContext};
use crate::protocols::pipeline::store_bytes;
use crate::protocols::reapi_keys::{cas_key, DigestKey};
use crate::store::{ContentDigest, DigestFunction, Meta};

use super::{
    content_digest, handle_bytes, is_empty_blob, request_function, rpc_status, status_of,
    ReapiService, TREE_DIRECTORIES_MAX, TREE_PAGE_BYTES_MAX, TREE_PAGE_DIRECTORIES_MAX,
};

fn check_count<B>(service: &ReapiService<B>, count: usize) -> Result<(), Status> {
    if count > service.options.batch_digests_max {
        return Err(Status::invalid_argument(format!(
            "request has {count} digests, the limit is {}",
            service.options.batch_digests_max
        )));
    }
    Ok(())
}

pub(super) async fn find_missing_blobs<B: Backend + 'static>(
    service: &ReapiService<B>,
    call: &CallContext,
    request: reapi::FindMissingBlobsRequest,
) -> Result<reapi::FindMissingBlobsResponse, Status> {
    let function = request_function(request.digest_function)?;
    check_count(service, request.blob_digests.len())?;
    let ctx = &service.context(&request.instance_name, call);
    let mut ids: Vec<DigestKey> = Vec::with_capacity(request.blob_digests.len());
    let mut asked: Vec<&reapi::Digest> = Vec::with_capacity(request.blob_digests.len());
    for digest in &request.blob_digests {
        let (parsed, size) = content_digest(function, digest)?;
        if !is_empty_blob(&parsed, size) {
            ids.push(cas_key(ctx, &parsed));
            asked.push(digest);
        }
    }
    let keys: Vec<ObjectKey<'_>> = ids.iter().map(DigestKey::key).collect();
    let present = service
        .backend
        .contains(ctx, &keys)
        .await
        .map_err(|e| status_of(&e))?;
    let missing_blob_digests = asked
        .into_iter()
        .zip(present)
        .filter(|(_, present)| !present)
        .map(|(digest, _)| digest.clone())
        .collect();
    Ok(reapi::FindMissingBlobsResponse {
        missing_blob_digests,
    })
}

pub(super) async fn batch_update_blobs<B: Backend + 'static>(
    service: &ReapiService<B>,
    call: &CallContext,
    request: reapi::BatchUpdateBlobsRequest,
) -> Result<reapi::BatchUpdateBlobsResponse, Status> {
    use reapi::batch_update_blobs_response::Response;
    let function = request_function(request.digest_function)?;
    check_count(service, request.requests.len())?;
    let total: u64 = request.requests.iter().map(|r| r.data.len() as u64).sum();
    if total > service.options.batch_total_bytes_max {
        return Err(Status::invalid_argument(format!(
            "BatchUpdateBlobs carries {total} bytes, more than max_batch_total_size_bytes {}",
            service.options.batch_total_bytes_max
        )));
    }
    let ctx = &service.context(&request.instance_name, call);
    let mut responses = Vec::with_capacity(request.requests.len());
    for blob in &request.requests {
        let outcome = update_one(service, ctx, function, blob).await;
        if let Err(status) = &outcome {
            refuse_call_if_unauthorized(status)?;
        }
        responses.push(Response {
            digest: blob.digest.clone(),
            status: Some(rpc_status(&outcome.err().unwrap_or_else(Status::ok))),
        });
    }
    Ok(reapi::BatchUpdateBlobsResponse { responses })
}

/// An authorization refusal ends the whole batch call with its status (a client retrying
/// blob by blob with the same token would be refused each time, and Bazel reports a call-level
/// UNAUTHENTICATED or PERMISSION_DENIED clearly).
fn refuse_call_if_unauthorized(status: &Status) -> Result<(), Status> {
    use crate::grpc::Code;
    match status.code {
        Code::Unauthenticated | Code::PermissionDenied => Err(status.clone()),
        _ => Ok(()),
    }
}

async fn update_one<B: Backend + 'static>(
    service: &ReapiService<B>,
    ctx: &RequestContext,
    function: DigestFunction,
    blob: &reapi::batch_update_blobs_request::Request,
) -> Result<(), Status> {
    let digest = blob
        .digest
        .as_ref()
        .ok_or_else(|| Status::invalid_argument("blob has no digest"))?;
    let (parsed, size) = content_digest(function, digest)?;
    if blob.compressor != reapi::compressor::Value::Identity as i32 {
        return Err(Status::invalid_argument(format!(
            "compressor {} is not accepted in BatchUpdateBlobs (supported_batch_update_compressors is empty)",
            blob.compressor
        )));
    }
    if blob.data.len() as u64 != size {
        return Err(Status::invalid_argument(format!(
            "blob data has {} bytes, the digest says {size}",
            blob.data.len()
        )));
    }
    let key = cas_key(ctx, &parsed);
    let put = Put {
        key: key.key(),
        body_len: size,
        meta: Meta::new(),
        expect: Some(parsed),
        if_absent: false,
    };
    store_bytes(&*service.backend, ctx, &put, &blob.data)
        .await
        .map_err(|e| status_of(&e))
}

pub(super) async fn batch_read_blobs<B: Backend + 'static>(
    service: &ReapiService<B>,
    call: &CallContext,
    request: reapi::BatchReadBlobsRequest,
) -> Result<reapi::BatchReadBlobsResponse, Status> {
    use reapi::batch_read_blobs_response::Response;
    let function = request_function(request.digest_function)?;
    check_count(service, request.digests.len())?;
    let mut total: u64 = 0;
    let mut parsed = Vec::with_capacity(request.digests.len());
    for digest in &request.digests {
        let (content, size) = content_digest(function, digest)?;
        total = total.saturating_add(size);
        parsed.push((content, size));
    }
    if total > service.options.batch_total_bytes_max {
        return Err(Status::invalid_argument(format!(
            "BatchReadBlobs asks for {total} bytes, more than max_batch_total_size_bytes {}",
            service.options.batch_total_bytes_max
        )));
    }
    let ctx = &service.context(&request.instance_name, call);
    let mut responses = Vec::with_capacity(parsed.len());
    for (digest, (content, size)) in request.digests.iter().zip(parsed) {
        let (data, status) = read_one(service, ctx, &content, size).await;
        refuse_call_if_unauthorized(&status)?;
        responses.push(Response {
            digest: Some(digest.clone()),
            data,
            status: Some(rpc_status(&status)),
            compressor: reapi::compressor::Value::Identity as i32,
        });
    }
    Ok(reapi::BatchReadBlobsResponse { responses })
}

async fn read_one<B: Backend + 'static>(
    service: &ReapiService<B>,
    ctx: &RequestContext,
    digest: &ContentDigest,
    size: u64,
) -> (bytes::Bytes, Status) {
    if is_empty_blob(digest, size) {
        return (bytes::Bytes::new(), Status::ok());
    }
    match service
        .backend
        .lookup(ctx, &cas_key(ctx, digest).key())
        .await
    {
        Ok(Some(handle)) if handle.body().len() as u64 == size => {
            (handle_bytes(handle), Status::ok())
        }
        Ok(Some(handle)) => (
            bytes::Bytes::new(),
            Status::not_found(format!(
                "blob {} has {} bytes, not {size}",
                digest.to_hex(),
                handle.body().len()
            )),
        ),
        Ok(None) => (
            bytes::Bytes::new(),
            Status::not_found(format!("blob {} is not in the CAS", digest.to_hex())),
        ),
        Err(error) => (bytes::Bytes::new(), status_of(&error)),
    }
}

pub(super) async fn get_tree<B: Backend + 'static>(
    service: &ReapiService<B>,
    call: &CallContext,
    request: reapi::GetTreeRequest,
    responses: &mut ResponseSink,
) -> Result<(), Status> {
    let function = request_function(request.digest_function)?;
    let root = request
        .root_digest
        .as_ref()
        .ok_or_else(|| Status::invalid_argument("root_digest is missing"))?;
    let (root, _) = content_digest(function, root)?;
    let page_max = match request.page_size {
        size if size < 0 => {
            return Err(Status::invalid_argument(format!(
                "page_size {size} is negative"
            )))
        }
        0 => TREE_PAGE_DIRECTORIES_MAX,
        size => (size as usize).min(TREE_PAGE_DIRECTORIES_MAX),
    };
    let skip: usize = if request.page_token.is_empty() {
        0
    } else {
        request.page_token.parse().map_err(|_| {
            Status::invalid_argument(format!(
                "page_token {:?} is not one of ours",
                request.page_token
            ))
        })?
    };
    let ctx = &service.context(&request.instance_name, call);
    let mut queue: VecDeque<ContentDigest> = VecDeque::from([root]);
    let mut seen: HashSet<[u8; 32]> = HashSet::from([root.hash]);
    let mut visited = 0usize;
    let mut page: Vec<reapi::Directory> = Vec::new();
    let mut page_bytes = 0usize;
    while let Some(digest) = queue.pop_front() {
        let directory = if digest == ContentDigest::of(digest.function, b"") {
            // The empty Directory message is the empty blob, present without being stored.
            reapi::Directory::default()
        } else {
            let Some(handle) = service
                .backend
                .lookup(ctx, &cas_key(ctx, &digest).key())
                .await
                .map_err(|e| status_of(&e))?
            else {
                if visited == 0 {
                    return Err(Status::not_found(format!(
                        "root directory {} is not in the CAS",
                        digest.to_hex()
                    )));
                }
                continue;
            };
            reapi::Directory::decode(handle.body()).map_err(|_| {
                Status::invalid_argument(format!("blob {} is not a Directory", digest.to_hex()))
            })?
        };
        for child in &directory.directories {
            let Some(child) = &child.digest else { continue };
            let (child, _) = content_digest(function, child)?;
            if seen.len() >= TREE_DIRECTORIES_MAX {
                return Err(Status::resource_exhausted(format!(
                    "tree has more than {TREE_DIRECTORIES_MAX} directories"
                )));
            }
            if seen.insert(child.hash) {
                queue.push_back(child);
            }
        }
        visited += 1;
        if visited <= skip {
            continue;
        }
        let length = directory.encoded_len();
        if !page.is_empty() && (page.len() >= page_max || page_bytes + length > TREE_PAGE_BYTES_MAX)
        {
            let response = reapi::GetTreeResponse {
                directories: std::mem::take(&mut page),
                next_page_token: (visited - 1).to_string(),
            };
            responses.send_message(&response).await?;
            page_bytes = 0;
        }
        page_bytes += length;
        page.push(directory);
    }
    if visited == 0 {
        return Err(Status::not_found("root directory is not in the CAS"));
    }
    let response = reapi::GetTreeResponse {
        directories: page,
        next_page_token: String::new(),
    };
    responses.send_message(&response).await
}
