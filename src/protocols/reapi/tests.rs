//! The services over one in-process shard ([`LocalBackend`]). Streaming calls (Read, Write,
//! GetTree) need an HTTP/2 stream and are tested end to end in `tests/grpc_reapi.rs`.

use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use prost::Message;

use super::*;
use crate::grpc::pb::google::bytestream::QueryWriteStatusRequest;
use crate::grpc::Code;
use crate::protocols::backend::{LocalBackend, Protocol, Put, RequestContext};
use crate::protocols::pipeline::store_bytes;
use crate::protocols::reapi_keys::{ac_key, cas_key, DigestKey};
use crate::store::{DataDir, Kind, Meta, Reserved, Shard, StoreConfig};

fn run<F, Fut>(options: ReapiOptions, test: F)
where
    F: FnOnce(Rc<ReapiService<LocalBackend>>, Rc<LocalBackend>) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::new(dir.path(), 1);
    config.segment_bytes = 1 << 20;
    config.max_size_bytes = 16 << 20;
    config.max_blob_bytes = 1 << 20;
    DataDir::open(&config).unwrap();
    let shard = Shard::open(&config, 0).unwrap();
    glommio::LocalExecutorBuilder::default()
        .spawn(move || async move {
            let backend = Rc::new(LocalBackend::new(shard));
            let service = Rc::new(ReapiService::new(backend.clone(), options));
            test(service, backend).await;
        })
        .unwrap()
        .join()
        .unwrap();
    drop(dir);
}

fn sha(bytes: &[u8]) -> reapi::Digest {
    digest_of(DigestFunction::Sha256, bytes)
}

fn digest_of(function: DigestFunction, bytes: &[u8]) -> reapi::Digest {
    reapi::Digest {
        hash: ContentDigest::of(function, bytes).to_hex(),
        size_bytes: bytes.len() as i64,
    }
}

fn content(digest: &reapi::Digest, function: DigestFunction) -> ContentDigest {
    ContentDigest::parse_hex(function, &digest.hash).unwrap()
}

async fn unary<M: Message + Default>(
    service: &ReapiService<LocalBackend>,
    method: ReapiMethod,
    request: impl Message,
) -> Result<M, Status> {
    let call = CallContext {
        path: method.path().to_owned(),
        deadline: None,
        metadata: http::HeaderMap::new(),
        peer: None,
    };
    let bytes = service
        .unary(method, &call, Bytes::from(request.encode_to_vec()))
        .await?;
    Ok(M::decode(bytes).unwrap())
}

async fn upload(service: &ReapiService<LocalBackend>, instance: &str, blobs: &[&[u8]]) {
    let request = reapi::BatchUpdateBlobsRequest {
        instance_name: instance.into(),
        requests: blobs
            .iter()
            .map(|b| reapi::batch_update_blobs_request::Request {
                digest: Some(sha(b)),
                data: Bytes::copy_from_slice(b),
                compressor: 0,
            })
            .collect(),
        digest_function: 0,
    };
    let answer: reapi::BatchUpdateBlobsResponse =
        unary(service, ReapiMethod::BatchUpdateBlobs, request)
            .await
            .unwrap();
    for response in answer.responses {
        assert_eq!(response.status.unwrap().code, 0);
    }
}

#[test]
fn capabilities_advertise_both_digest_functions_and_zstd() {
    run(ReapiOptions::default(), |service, _| async move {
        let caps: reapi::ServerCapabilities = unary(
            &service,
            ReapiMethod::GetCapabilities,
            reapi::GetCapabilitiesRequest::default(),
        )
        .await
        .unwrap();
        let cache = caps.cache_capabilities.unwrap();
        assert_eq!(cache.digest_functions, [1, 9], "SHA256, BLAKE3");
        assert_eq!(cache.supported_compressors, [1], "ZSTD");
        assert_eq!(
            cache.max_batch_total_size_bytes,
            BATCH_TOTAL_BYTES_MAX as i64
        );
        assert!(
            cache
                .action_cache_update_capabilities
                .unwrap()
                .update_enabled
        );
        assert_eq!(caps.low_api_version.unwrap().minor, 0);
        assert_eq!(caps.high_api_version.unwrap().minor, 11);
    });
}

#[test]
fn find_missing_reports_only_absent_blobs_per_instance_and_function() {
    run(ReapiOptions::default(), |service, _| async move {
        upload(&service, "", &[b"present"]).await;
        let request = |instance: &str, function: i32, digests: Vec<reapi::Digest>| {
            reapi::FindMissingBlobsRequest {
                instance_name: instance.into(),
                blob_digests: digests,
                digest_function: function,
            }
        };
        let asked = vec![sha(b"present"), sha(b"absent"), sha(b"")];
        let answer: reapi::FindMissingBlobsResponse = unary(
            &service,
            ReapiMethod::FindMissingBlobs,
            request("", 0, asked.clone()),
        )
        .await
        .unwrap();
        assert_eq!(
            answer.missing_blob_digests,
            [sha(b"absent")],
            "empty blob is present"
        );
        let other: reapi::FindMissingBlobsResponse = unary(
            &service,
            ReapiMethod::FindMissingBlobs,
            request("x", 0, asked.clone()),
        )
        .await
        .unwrap();
        assert_eq!(
            other.missing_blob_digests,
            [sha(b"present"), sha(b"absent")]
        );
        let blake = digest_of(DigestFunction::Blake3, b"present");
        let answer: reapi::FindMissingBlobsResponse = unary(
            &service,
            ReapiMethod::FindMissingBlobs,
            request("", 9, vec![blake.clone()]),
        )
        .await
        .unwrap();
        assert_eq!(answer.missing_blob_digests, [blake]);
        let malformed = reapi::Digest {
            hash: "xyz".into(),
            size_bytes: 1,
        };
        let error = unary::<reapi::FindMissingBlobsResponse>(
            &service,
            ReapiMethod::FindMissingBlobs,
            request("", 0, vec![malformed]),
        )
        .await
        .unwrap_err();
        assert_eq!(error.code, Code::InvalidArgument);
        let error = unary::<reapi::FindMissingBlobsResponse>(
            &service,
            ReapiMethod::FindMissingBlobs,
            request("", 2, asked),
        )
        .await
        .unwrap_err();
        assert_eq!(error.code, Code::InvalidArgument, "SHA1 is not supported");
    });
}

#[test]
fn batch_update_verifies_each_blob_and_stores_only_good_ones() {
    run(ReapiOptions::default(), |service, backend| async move {
        let good = b"good blob".as_slice();
        let wrong_hash = reapi::batch_update_blobs_request::Request {
            digest: Some(sha(b"something else")),
            data: Bytes::from_static(b"something elsf"),
            compressor: 0,
        };
        let wrong_size = reapi::batch_update_blobs_request::Request {
            digest: Some(reapi::Digest {
                size_bytes: 3,
                ..sha(b"four")
            }),
            data: Bytes::from_static(b"four"),
            compressor: 0,
        };
        let zstd = reapi::batch_update_blobs_request::Request {
            digest: Some(sha(b"z")),
            data: Bytes::from_static(b"z"),
            compressor: 1,
        };
        let request = reapi::BatchUpdateBlobsRequest {
            instance_name: String::new(),
            requests: vec![
                reapi::batch_update_blobs_request::Request {
                    digest: Some(sha(good)),
                    data: Bytes::from_static(good),
                    compressor: 0,
                },
                wrong_hash,
                wrong_size,
                zstd,
            ],
            digest_function: 0,
        };
        let answer: reapi::BatchUpdateBlobsResponse =
            unary(&service, ReapiMethod::BatchUpdateBlobs, request)
                .await
                .unwrap();
        let codes: Vec<i32> = answer
            .responses
            .iter()
            .map(|r| r.status.as_ref().unwrap().code)
            .collect();
        let invalid = Code::InvalidArgument.as_i32();
        assert_eq!(codes, [0, invalid, invalid, invalid]);
        let ctx = grpc_context("");
        let ids = [
            cas_key(&ctx, &content(&sha(good), DigestFunction::Sha256)),
            cas_key(
                &ctx,
                &content(&sha(b"something else"), DigestFunction::Sha256),
            ),
            cas_key(&ctx, &content(&sha(b"four"), DigestFunction::Sha256)),
        ];
        let keys: Vec<_> = ids.iter().map(DigestKey::key).collect();
        assert_eq!(
            backend.contains(&ctx, &keys).await.unwrap(),
            [true, false, false]
        );
        assert_eq!(backend.shard_stats().pending_reservations, 0);
    });
}

#[test]
fn batch_limits_refuse_the_whole_request() {
    let options = ReapiOptions {
        batch_total_bytes_max: 10,
        batch_digests_max: 2,
        ..ReapiOptions::default()
    };
    run(options, |service, _| async move {
        let blob = |data: &'static [u8]| reapi::batch_update_blobs_request::Request {
            digest: Some(sha(data)),
            data: Bytes::from_static(data),
            compressor: 0,
        };
        let big = reapi::BatchUpdateBlobsRequest {
            requests: vec![blob(b"0123456789a")],
            ..Default::default()
        };
        let error =
            unary::<reapi::BatchUpdateBlobsResponse>(&service, ReapiMethod::BatchUpdateBlobs, big)
                .await
                .unwrap_err();
        assert_eq!(error.code, Code::InvalidArgument);
        let many = reapi::FindMissingBlobsRequest {
            blob_digests: vec![sha(b"a"), sha(b"b"), sha(b"c")],
            ..Default::default()
        };
        let error =
            unary::<reapi::FindMissingBlobsResponse>(&service, ReapiMethod::FindMissingBlobs, many)
                .await
                .unwrap_err();
        assert_eq!(error.message, "request has 3 digests, the limit is 2");
        let read = reapi::BatchReadBlobsRequest {
            digests: vec![sha(b"0123456789a")],
            ..Default::default()
        };
        let error =
            unary::<reapi::BatchReadBlobsResponse>(&service, ReapiMethod::BatchReadBlobs, read)
                .await
                .unwrap_err();
        assert_eq!(error.code, Code::InvalidArgument);
    });
}

#[test]
fn batch_read_returns_data_or_not_found_per_blob() {
    run(ReapiOptions::default(), |service, _| async move {
        upload(&service, "i", &[b"one", b"two"]).await;
        let request = reapi::BatchReadBlobsRequest {
            instance_name: "i".into(),
            digests: vec![sha(b"one"), sha(b"missing"), sha(b"two"), sha(b"")],
            acceptable_compressors: vec![],
            digest_function: 0,
        };
        let answer: reapi::BatchReadBlobsResponse =
            unary(&service, ReapiMethod::BatchReadBlobs, request)
                .await
                .unwrap();
        let seen: Vec<(i32, &[u8])> = answer
            .responses
            .iter()
            .map(|r| (r.status.as_ref().unwrap().code, &r.data[..]))
            .collect();
        let not_found = Code::NotFound.as_i32();
        assert_eq!(
            seen,
            [
                (0, b"one".as_slice()),
                (not_found, b"".as_slice()),
                (0, b"two".as_slice()),
                (0, b"".as_slice())
            ]
        );
    });
}

fn action_result(
    files: &[&[u8]],
    tree: Option<&reapi::Tree>,
    stdout: &[u8],
) -> reapi::ActionResult {
    reapi::ActionResult {
        output_files: files
            .iter()
            .enumerate()
            .map(|(i, f)| reapi::OutputFile {
                path: format!("out/{i}"),
                digest: Some(sha(f)),
                ..Default::default()
            })
            .collect(),
        output_directories: tree
            .map(|tree| reapi::OutputDirectory {
                path: "dir".into(),
                tree_digest: Some(sha(&tree.encode_to_vec())),
                ..Default::default()
            })
            .into_iter()
            .collect(),
        stdout_digest: Some(sha(stdout)),
        exit_code: 0,
        ..Default::default()
    }
}

async fn update(
    service: &ReapiService<LocalBackend>,
    instance: &str,
    action: &[u8],
    result: &reapi::ActionResult,
) {
    let request = reapi::UpdateActionResultRequest {
        instance_name: instance.into(),
        action_digest: Some(sha(action)),
        action_result: Some(result.clone()),
        results_cache_policy: None,
        digest_function: 0,
    };
    let stored: reapi::ActionResult = unary(service, ReapiMethod::UpdateActionResult, request)
        .await
        .unwrap();
    assert_eq!(&stored, result);
}

async fn get(
    service: &ReapiService<LocalBackend>,
    instance: &str,
    action: &[u8],
    inline: bool,
) -> Result<reapi::ActionResult, Status> {
    let request = reapi::GetActionResultRequest {
        instance_name: instance.into(),
        action_digest: Some(sha(action)),
        inline_stdout: inline,
        inline_stderr: inline,
        inline_output_files: if inline { vec!["out/0".into()] } else { vec![] },
        digest_function: 0,
    };
    unary(service, ReapiMethod::GetActionResult, request).await
}

#[test]
fn action_result_is_a_hit_only_when_every_referenced_blob_is_present() {
    run(ReapiOptions::default(), |service, _| async move {
        let tree = reapi::Tree {
            root: Some(reapi::Directory {
                files: vec![reapi::FileNode {
                    name: "inside".into(),
                    digest: Some(sha(b"tree file")),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            children: vec![],
        };
        let result = action_result(&[b"output"], Some(&tree), b"stdout text");
        update(&service, "", b"action", &result).await;
        let miss = get(&service, "", b"action", false).await.unwrap_err();
        assert_eq!(miss.code, Code::NotFound);
        assert!(miss.message.contains("incomplete"), "{}", miss.message);
        upload(&service, "", &[b"output", b"stdout text"]).await;
        let tree_bytes = tree.encode_to_vec();
        upload(&service, "", &[&tree_bytes]).await;
        let miss = get(&service, "", b"action", false).await.unwrap_err();
        assert!(
            miss.message.contains(&sha(b"tree file").hash),
            "the file inside the Tree is checked too: {}",
            miss.message
        );
        upload(&service, "", &[b"tree file"]).await;
        assert_eq!(get(&service, "", b"action", false).await.unwrap(), result);
        let other = get(&service, "x", b"action", false).await.unwrap_err();
        assert_eq!(other.code, Code::NotFound, "instances are separate");
    });
}

#[test]
fn inline_contents_are_filled_when_asked_and_within_budget() {
    let options = ReapiOptions {
        inline_bytes_max: 20,
        ..ReapiOptions::default()
    };
    run(options, |service, _| async move {
        let mut result = action_result(&[b"file bytes"], None, b"out");
        result.stderr_digest = Some(sha(b"a stderr longer than the remaining budget"));
        upload(
            &service,
            "",
            &[
                b"file bytes",
                b"out",
                b"a stderr longer than the remaining budget",
            ],
        )
        .await;
        update(&service, "", b"act", &result).await;
        let plain = get(&service, "", b"act", false).await.unwrap();
        assert!(plain.stdout_raw.is_empty());
        let inlined = get(&service, "", b"act", true).await.unwrap();
        assert_eq!(&inlined.stdout_raw[..], b"out");
        assert!(inlined.stderr_raw.is_empty(), "over the 20-byte budget");
        assert_eq!(&inlined.output_files[0].contents[..], b"file bytes");
    });
}

#[test]
fn update_action_result_refuses_malformed_digests_and_stores_exact_bytes() {
    run(ReapiOptions::default(), |service, backend| async move {
        let mut bad = action_result(&[b"x"], None, b"");
        bad.output_files[0].digest = Some(reapi::Digest {
            hash: "ABC".into(),
            size_bytes: 1,
        });
        let request = reapi::UpdateActionResultRequest {
            action_digest: Some(sha(b"a")),
            action_result: Some(bad),
            ..Default::default()
        };
        let error =
            unary::<reapi::ActionResult>(&service, ReapiMethod::UpdateActionResult, request)
                .await
                .unwrap_err();
        assert_eq!(error.code, Code::InvalidArgument);
        let missing = reapi::UpdateActionResultRequest {
            action_digest: Some(sha(b"a")),
            ..Default::default()
        };
        let error =
            unary::<reapi::ActionResult>(&service, ReapiMethod::UpdateActionResult, missing)
                .await
                .unwrap_err();
        assert_eq!(error.message, "action_result is missing");
        let good = action_result(&[], None, b"");
        update(&service, "team", b"a", &good).await;
        let ctx = grpc_context("team");
        let key = ac_key(&ctx, &content(&sha(b"a"), DigestFunction::Sha256));
        let stored = backend.lookup(&ctx, &key.key()).await.unwrap().unwrap();
        assert_eq!(
            stored.body(),
            good.encode_to_vec(),
            "what HTTP GET /team/ac/<h> returns"
        );
        assert_eq!(stored.kind(), Kind::Ac);
    });
}

#[test]
fn entry_written_over_http_that_is_not_an_action_result_is_a_miss() {
    run(ReapiOptions::default(), |service, backend| async move {
        let ctx = grpc_context("");
        let key = ac_key(&ctx, &content(&sha(b"ccache"), DigestFunction::Sha256));
        let body = b"\xff\xff\xff not a proto";
        let put = Put {
            key: key.key(),
            body_len: body.len() as u64,
            meta: Meta::new(),
            expect: None,
            if_absent: false,
        };
        store_bytes(&*backend, &ctx, &put, body).await.unwrap();
        let error = get(&service, "", b"ccache", false).await.unwrap_err();
        assert_eq!(error.code, Code::NotFound);
    });
}

#[test]
fn query_write_status_reports_complete_suspended_and_unknown_uploads() {
    run(ReapiOptions::default(), |service, backend| async move {
        upload(&service, "", &[b"stored"]).await;
        let query = |name: String| QueryWriteStatusRequest {
            resource_name: name,
        };
        let stored = sha(b"stored");
        let answer: crate::grpc::pb::google::bytestream::QueryWriteStatusResponse = unary(
            &service,
            ReapiMethod::QueryWriteStatus,
            query(format!("uploads/u1/blobs/{}/6", stored.hash)),
        )
        .await
        .unwrap();
        assert_eq!((answer.committed_size, answer.complete), (6, true));
        let absent = sha(b"partial upload");
        let name = format!("uploads/u2/blobs/{}/14", absent.hash);
        let answer: crate::grpc::pb::google::bytestream::QueryWriteStatusResponse =
            unary(&service, ReapiMethod::QueryWriteStatus, query(name.clone()))
                .await
                .unwrap();
        assert_eq!((answer.committed_size, answer.complete), (0, false));
        let digest = content(&absent, DigestFunction::Sha256);
        let Reserved::Reservation(mut reservation) = backend
            .reserve(
                &grpc_context(""),
                &cas_put(&cas_key(&grpc_context(""), &digest), 14, digest),
            )
            .await
            .unwrap()
        else {
            panic!("not stored yet");
        };
        reservation.write(b"partial").unwrap();
        service.uploads.suspend(
            name.clone(),
            uploads::Upload {
                reservation,
                decoder: None,
                held_bytes: 7,
            },
        );
        let answer: crate::grpc::pb::google::bytestream::QueryWriteStatusResponse =
            unary(&service, ReapiMethod::QueryWriteStatus, query(name))
                .await
                .unwrap();
        assert_eq!((answer.committed_size, answer.complete), (7, false));
        let error = unary::<crate::grpc::pb::google::bytestream::QueryWriteStatusResponse>(
            &service,
            ReapiMethod::QueryWriteStatus,
            query("blobs/abc/1".into()),
        )
        .await
        .unwrap_err();
        assert_eq!(error.code, Code::InvalidArgument);
    });
}

#[test]
fn suspended_uploads_expire_and_release_their_reservation() {
    let options = ReapiOptions {
        suspended_upload_expiry: Duration::from_millis(50),
        suspended_uploads_max: 2,
        ..ReapiOptions::default()
    };
    run(options, |service, backend| async move {
        let mut names = Vec::new();
        for i in 0..3u8 {
            let data = [i; 8];
            let digest = ContentDigest::of(DigestFunction::Sha256, &data);
            let Ok(Reserved::Reservation(reservation)) = backend
                .reserve(
                    &grpc_context(""),
                    &cas_put(&cas_key(&grpc_context(""), &digest), 8, digest),
                )
                .await
            else {
                panic!("reserve");
            };
            let name = format!("uploads/u{i}/blobs/{}/8", digest.to_hex());
            service.uploads.suspend(
                name.clone(),
                uploads::Upload {
                    reservation,
                    decoder: None,
                    held_bytes: 1,
                },
            );
            names.push(name);
        }
        assert_eq!(
            service.suspended_uploads(),
            2,
            "bounded: the oldest was released"
        );
        assert_eq!(backend.shard_stats().pending_reservations, 2);
        glommio::timer::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            service.suspended_uploads(),
            0,
            "expired without any request"
        );
        assert_eq!(backend.shard_stats().pending_reservations, 0);
    });
}

#[test]
fn drain_releases_every_suspended_upload() {
    run(ReapiOptions::default(), |service, backend| async move {
        let digest = ContentDigest::of(DigestFunction::Sha256, b"abc");
        let Ok(Reserved::Reservation(reservation)) = backend
            .reserve(
                &grpc_context(""),
                &cas_put(&cas_key(&grpc_context(""), &digest), 3, digest),
            )
            .await
        else {
            panic!("reserve");
        };
        service.uploads.suspend(
            "uploads/u/blobs/x/3".into(),
            uploads::Upload {
                reservation,
                decoder: None,
                held_bytes: 1,
            },
        );
        assert_eq!(backend.shard_stats().pending_reservations, 1);
        service.release_suspended_uploads();
        assert_eq!(service.suspended_uploads(), 0);
        assert_eq!(backend.shard_stats().pending_reservations, 0);
    });
}

#[test]
fn store_errors_map_to_grpc_codes() {
    let cases = [
        (
            StoreError::NoSpace {
                needed: 2,
                available: 1,
            },
            Code::ResourceExhausted,
        ),
        (
            StoreError::TooManyReservations { max: 1 },
            Code::ResourceExhausted,
        ),
        (
            StoreError::TooLarge { len: 2, max: 1 },
            Code::InvalidArgument,
        ),
        (
            StoreError::DigestMismatch {
                expected: "a".into(),
                actual: "b".into(),
            },
            Code::InvalidArgument,
        ),
        (StoreError::Unavailable { what: "x" }, Code::Unavailable),
    ];
    for (error, code) in cases {
        let status = status_of(&error);
        assert_eq!(status.code, code, "{error}");
        assert_eq!(status.message, error.to_string());
    }
    // Operating errors are INTERNAL without the server's paths or OS errors.
    let io = StoreError::Io {
        op: "fallocate",
        path: "/srv/secret/shard-1/seg-8.log".into(),
        source: std::io::Error::from_raw_os_error(28),
    };
    for error in [io, StoreError::Corrupt { what: "x".into() }] {
        let status = status_of(&error);
        assert_eq!(status.code, Code::Internal, "{error}");
        assert!(!status.message.contains("/srv"), "{}", status.message);
        assert!(!status.message.contains("os error"), "{}", status.message);
    }
}

fn grpc_context(instance: &str) -> RequestContext {
    crate::protocols::reapi_keys::context(instance, Protocol::Grpc)
}

fn cas_put(key: &DigestKey, body_len: u64, digest: ContentDigest) -> Put<'_> {
    Put {
        key: key.key(),
        body_len,
        meta: Meta::new(),
        expect: Some(digest),
        if_absent: false,
    }
}
