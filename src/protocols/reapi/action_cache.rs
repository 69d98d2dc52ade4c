//! `ActionCache.GetActionResult` / `UpdateActionResult`.
//!
//! An entry is stored as the encoded `ActionResult` under `reapi_keys::ac_key(ctx, action)`,
//! the same key the Bazel HTTP front-end uses for `/ac/<hash>`, so the two protocols share it.
//! A hit is answered only if it passes the completeness check of [`super::action_result`]; an
//! entry that does not decode as an `ActionResult` is NOT_FOUND too.

use prost::Message;

use crate::grpc::pb::build::bazel::remote::execution::v2 as reapi;
use crate::grpc::CallContext;
use crate::grpc::Status;
use crate::protocols::backend::{Backend, Put, RequestContext};
use crate::protocols::pipeline::store_bytes;
use crate::protocols::reapi_keys::{ac_key, cas_key};
use crate::store::{ContentDigest, DigestFunction, Meta};

use super::action_result::{check_complete, entry_digest, validate_action_result};
use super::{content_digest, request_function, status_of, ReapiService};

/// The digest function and the action digest of a Get/UpdateActionResult request.
fn action_of(
    digest_function: i32,
    action_digest: &Option<reapi::Digest>,
) -> Result<(DigestFunction, ContentDigest), Status> {
    let function = request_function(digest_function)?;
    let action = action_digest
        .as_ref()
        .ok_or_else(|| Status::invalid_argument("action_digest is missing"))?;
    let (action, _) = content_digest(function, action)?;
    Ok((function, action))
}

pub(super) async fn get_action_result<B: Backend + 'static>(
    service: &ReapiService<B>,
    call: &CallContext,
    request: reapi::GetActionResultRequest,
) -> Result<reapi::ActionResult, Status> {
    let (function, action) = action_of(request.digest_function, &request.action_digest)?;
    let ctx = &service.context(&request.instance_name, call);
    let backend = &*service.backend;
    let handle = backend
        .lookup(ctx, &ac_key(ctx, &action).key())
        .await
        .map_err(|e| status_of(&e))?
        .ok_or_else(|| Status::not_found(format!("no action result for {}", action.to_hex())))?;
    let mut result = reapi::ActionResult::decode(handle.body()).map_err(|_| {
        Status::not_found("the stored entry is not an ActionResult (written by another client)")
    })?;
    drop(handle);
    check_complete(backend, ctx, function, &result).await?;
    inline_contents(service, ctx, function, &request, &mut result).await?;
    Ok(result)
}

pub(super) async fn update_action_result<B: Backend + 'static>(
    service: &ReapiService<B>,
    call: &CallContext,
    request: reapi::UpdateActionResultRequest,
) -> Result<reapi::ActionResult, Status> {
    let (function, action) = action_of(request.digest_function, &request.action_digest)?;
    let result = request
        .action_result
        .ok_or_else(|| Status::invalid_argument("action_result is missing"))?;
    validate_action_result(&result, function)?;
    let encoded = result.encode_to_vec();
    let ctx = &service.context(&request.instance_name, call);
    let key = ac_key(ctx, &action);
    let put = Put {
        key: key.key(),
        body_len: encoded.len() as u64,
        meta: Meta::new(),
        expect: None,
        if_absent: false,
    };
    store_bytes(&*service.backend, ctx, &put, &encoded)
        .await
        .map_err(|e| status_of(&e))?;
    Ok(result)
}

/// Fills `stdout_raw`, `stderr_raw` and output file `contents` as requested, within
/// `inline_bytes_max` in total; what does not fit stays a digest only (the spec allows it).
async fn inline_contents<B: Backend + 'static>(
    service: &ReapiService<B>,
    ctx: &RequestContext,
    function: DigestFunction,
    request: &reapi::GetActionResultRequest,
    result: &mut reapi::ActionResult,
) -> Result<(), Status> {
    let mut budget = service.options.inline_bytes_max;
    if request.inline_stdout && result.stdout_raw.is_empty() {
        if let Some(bytes) =
            fetch_inline(service, ctx, function, &result.stdout_digest, &mut budget).await?
        {
            result.stdout_raw = bytes;
        }
    }
    if request.inline_stderr && result.stderr_raw.is_empty() {
        if let Some(bytes) =
            fetch_inline(service, ctx, function, &result.stderr_digest, &mut budget).await?
        {
            result.stderr_raw = bytes;
        }
    }
    for file in &mut result.output_files {
        if !request.inline_output_files.contains(&file.path) || !file.contents.is_empty() {
            continue;
        }
        if let Some(bytes) = fetch_inline(service, ctx, function, &file.digest, &mut budget).await?
        {
            file.contents = bytes;
        }
    }
    Ok(())
}

async fn fetch_inline<B: Backend + 'static>(
    service: &ReapiService<B>,
    ctx: &RequestContext,
    function: DigestFunction,
    digest: &Option<reapi::Digest>,
    budget: &mut u64,
) -> Result<Option<bytes::Bytes>, Status> {
    let Some(digest) = digest else {
        return Ok(None);
    };
    let (parsed, size) = entry_digest(function, digest)?;
    if size == 0 || size > *budget {
        return Ok(None);
    }
    let handle = service
        .backend
        .lookup(ctx, &cas_key(ctx, &parsed).key())
        .await
        .map_err(|e| status_of(&e))?;
    Ok(handle.map(|handle| {
        *budget -= size;
        bytes::Bytes::copy_from_slice(handle.body())
    }))
}
