//! The REAPI v2 cache services of the real `tessera` binary over h2c, with a Rust h2 + prost
//! client: every RPC, BLAKE3 digests, zstd compressed blobs, resumed writes, every bad input of
//! issue 4, and the sharing of CAS and AC with the Bazel HTTP front-end.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::grpc_client::{
    call, connect, frame, grpc_request, grpc_request_with, read_goaway, read_reply, run_executor,
    send_all, unary,
};
use common::Tessera;
use futures_lite::AsyncWriteExt;
use h2::client::SendRequest;
use prost::Message;
use tessera::grpc::pb::build::bazel::remote::execution::v2 as reapi;
use tessera::grpc::pb::google::bytestream::{
    QueryWriteStatusRequest, QueryWriteStatusResponse, ReadRequest, ReadResponse, WriteRequest,
    WriteResponse,
};
use tessera::grpc::{Code, Status};
use tessera::store::{ContentDigest, DigestFunction};

const CAPABILITIES: &str = "/build.bazel.remote.execution.v2.Capabilities/GetCapabilities";
const GET_ACTION_RESULT: &str = "/build.bazel.remote.execution.v2.ActionCache/GetActionResult";
const UPDATE_ACTION_RESULT: &str =
    "/build.bazel.remote.execution.v2.ActionCache/UpdateActionResult";
const FIND_MISSING: &str =
    "/build.bazel.remote.execution.v2.ContentAddressableStorage/FindMissingBlobs";
const BATCH_UPDATE: &str =
    "/build.bazel.remote.execution.v2.ContentAddressableStorage/BatchUpdateBlobs";
const BATCH_READ: &str =
    "/build.bazel.remote.execution.v2.ContentAddressableStorage/BatchReadBlobs";
const GET_TREE: &str = "/build.bazel.remote.execution.v2.ContentAddressableStorage/GetTree";
const READ: &str = "/google.bytestream.ByteStream/Read";
const WRITE: &str = "/google.bytestream.ByteStream/Write";
const QUERY_WRITE_STATUS: &str = "/google.bytestream.ByteStream/QueryWriteStatus";

/// Starts Tessera on a fresh data directory with a small store and the flags `extra`.
fn start(extra: &[&str]) -> Tessera {
    Tessera::builder().small_store().args(extra).start()
}

/// Starts Tessera with `extra` flags on a fresh data directory and runs `test` on a glommio
/// executor with a connected gRPC client and the server's address; stops Tessera afterwards.
fn with_client<G, F>(extra: &[&str], test: G)
where
    G: FnOnce(SendRequest<Bytes>, SocketAddr) -> F + Send + 'static,
    F: std::future::Future<Output = ()> + 'static,
{
    let tessera = start(extra);
    let addr = tessera.addr();
    run_executor(move || async move {
        let client = connect(addr).await;
        test(client, addr).await;
    });
    drop(tessera);
}

fn digest(function: DigestFunction, data: &[u8]) -> reapi::Digest {
    reapi::Digest {
        hash: ContentDigest::of(function, data).to_hex(),
        size_bytes: data.len() as i64,
    }
}

fn sha(data: &[u8]) -> reapi::Digest {
    digest(DigestFunction::Sha256, data)
}

/// Deterministic, poorly compressible bytes.
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn write_requests(name: &str, data: &[u8], chunk: usize, start: usize) -> Vec<WriteRequest> {
    let mut requests = Vec::new();
    let mut offset = start;
    loop {
        let end = (offset + chunk).min(data.len());
        requests.push(WriteRequest {
            resource_name: if requests.is_empty() {
                name.to_owned()
            } else {
                String::new()
            },
            write_offset: offset as i64,
            finish_write: end == data.len(),
            data: Bytes::copy_from_slice(&data[offset..end]),
        });
        offset = end;
        if offset == data.len() {
            return requests;
        }
    }
}

async fn write_messages(
    client: &SendRequest<Bytes>,
    requests: &[WriteRequest],
) -> Result<WriteResponse, Status> {
    let messages: Vec<Bytes> = requests
        .iter()
        .map(|r| Bytes::from(r.encode_to_vec()))
        .collect();
    let reply = call(client, WRITE, &messages).await.ok()?;
    Ok(WriteResponse::decode(reply[0].clone()).unwrap())
}

async fn write(
    client: &SendRequest<Bytes>,
    name: &str,
    data: &[u8],
    chunk: usize,
) -> Result<WriteResponse, Status> {
    write_messages(client, &write_requests(name, data, chunk, 0)).await
}

async fn read(
    client: &SendRequest<Bytes>,
    name: &str,
    offset: i64,
    limit: i64,
) -> Result<Vec<u8>, Status> {
    let request = ReadRequest {
        resource_name: name.to_owned(),
        read_offset: offset,
        read_limit: limit,
    };
    let messages = call(client, READ, &[Bytes::from(request.encode_to_vec())])
        .await
        .ok()?;
    let mut data = Vec::new();
    for message in messages {
        let chunk = ReadResponse::decode(message).unwrap().data;
        assert!(chunk.len() <= 1 << 20, "chunks stay at or below 1 MiB");
        data.extend_from_slice(&chunk);
    }
    Ok(data)
}

fn blob_name(
    instance: &str,
    function_segment: &str,
    data: &[u8],
    function: DigestFunction,
) -> String {
    let d = digest(function, data);
    let prefix = if instance.is_empty() {
        String::new()
    } else {
        format!("{instance}/")
    };
    format!(
        "{prefix}blobs/{function_segment}{}/{}",
        d.hash, d.size_bytes
    )
}

fn upload_name(instance: &str, upload: &str, read_name: &str) -> String {
    let prefix = if instance.is_empty() {
        String::new()
    } else {
        format!("{instance}/")
    };
    let blob_part = read_name.strip_prefix(&prefix).unwrap();
    format!("{prefix}uploads/{upload}/{blob_part}")
}

#[test]
fn capabilities_and_batch_calls_and_find_missing() {
    with_client(&[], |client, _addr| async move {
        let caps: reapi::ServerCapabilities = unary(
            &client,
            CAPABILITIES,
            &reapi::GetCapabilitiesRequest::default(),
        )
        .await
        .unwrap();
        let cache = caps.cache_capabilities.unwrap();
        assert_eq!(cache.digest_functions, [1, 9]);
        assert_eq!(cache.supported_compressors, [1]);
        assert!(cache.max_batch_total_size_bytes > 0);
        assert_eq!(
            (
                caps.low_api_version.unwrap().minor,
                caps.high_api_version.unwrap().minor
            ),
            (0, 11)
        );

        let blobs: Vec<Vec<u8>> = (0..5)
            .map(|i| pseudo_random(100 + i * 1000, i as u64))
            .collect();
        let update = reapi::BatchUpdateBlobsRequest {
            instance_name: "batch".into(),
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
        let updated: reapi::BatchUpdateBlobsResponse =
            unary(&client, BATCH_UPDATE, &update).await.unwrap();
        assert!(updated
            .responses
            .iter()
            .all(|r| r.status.as_ref().unwrap().code == 0));

        let mut asked: Vec<reapi::Digest> = blobs.iter().map(|b| sha(b)).collect();
        asked.push(sha(b"never uploaded"));
        let find = reapi::FindMissingBlobsRequest {
            instance_name: "batch".into(),
            blob_digests: asked.clone(),
            digest_function: 0,
        };
        let missing: reapi::FindMissingBlobsResponse =
            unary(&client, FIND_MISSING, &find).await.unwrap();
        assert_eq!(missing.missing_blob_digests, [sha(b"never uploaded")]);

        let read_back: reapi::BatchReadBlobsResponse = unary(
            &client,
            BATCH_READ,
            &reapi::BatchReadBlobsRequest {
                instance_name: "batch".into(),
                digests: asked,
                acceptable_compressors: vec![],
                digest_function: 0,
            },
        )
        .await
        .unwrap();
        for (response, blob) in read_back.responses.iter().zip(&blobs) {
            assert_eq!(response.status.as_ref().unwrap().code, 0);
            assert_eq!(&response.data[..], &blob[..]);
        }
        assert_eq!(
            read_back.responses[5].status.as_ref().unwrap().code,
            Code::NotFound.as_i32()
        );

        // FindMissingBlobs with 1,000 digests in one request, BLAKE3.
        let many: Vec<reapi::Digest> = (0..1000u32)
            .map(|i| digest(DigestFunction::Blake3, &i.to_le_bytes()))
            .collect();
        let find = reapi::FindMissingBlobsRequest {
            instance_name: String::new(),
            blob_digests: many.clone(),
            digest_function: 9,
        };
        let missing: reapi::FindMissingBlobsResponse =
            unary(&client, FIND_MISSING, &find).await.unwrap();
        assert_eq!(missing.missing_blob_digests, many);
    });
}

#[test]
fn bytestream_write_and_read_in_every_form() {
    with_client(&[], |client, _addr| async move {
        let cases: [(&str, &str, DigestFunction, usize); 4] = [
            ("", "", DigestFunction::Sha256, 4 << 10),
            ("team/linux", "", DigestFunction::Sha256, 3 << 20),
            ("", "blake3/", DigestFunction::Blake3, 1 << 20),
            ("ci", "blake3/", DigestFunction::Blake3, 100),
        ];
        for (i, (instance, segment, function, size)) in cases.into_iter().enumerate() {
            let data = pseudo_random(size, i as u64 + 10);
            let name = blob_name(instance, segment, &data, function);
            assert_eq!(
                read(&client, &name, 0, 0).await.unwrap_err().code,
                Code::NotFound
            );
            let upload = upload_name(instance, &format!("u-{i}"), &name);
            let written = write(&client, &upload, &data, 16 << 10).await.unwrap();
            assert_eq!(written.committed_size, size as i64, "{name}");
            assert_eq!(read(&client, &name, 0, 0).await.unwrap(), data, "{name}");
            // offset and limit
            let part = read(&client, &name, 10, 50).await.unwrap();
            assert_eq!(part, data[10..60]);
            let tail = read(&client, &name, size as i64 - 5, 0).await.unwrap();
            assert_eq!(tail, data[size - 5..]);
            assert_eq!(
                read(&client, &name, size as i64 + 1, 0)
                    .await
                    .unwrap_err()
                    .code,
                Code::OutOfRange
            );
            // Compressed read of the same blob, and a compressed read from an offset.
            let compressed_name = name.replacen("blobs/", "compressed-blobs/zstd/", 1);
            let compressed = read(&client, &compressed_name, 0, 0).await.unwrap();
            assert_eq!(zstd::decode_all(&compressed[..]).unwrap(), data);
            let from_offset = read(&client, &compressed_name, 7, 0).await.unwrap();
            assert_eq!(zstd::decode_all(&from_offset[..]).unwrap(), data[7..]);
            assert_eq!(
                read(&client, &compressed_name, 0, 3)
                    .await
                    .unwrap_err()
                    .code,
                Code::InvalidArgument,
                "no read_limit on compressed reads"
            );
        }
        // The empty blob: one message, no data.
        let empty = blob_name("", "", b"", DigestFunction::Sha256);
        let written = write(&client, &upload_name("", "e", &empty), b"", 1)
            .await
            .unwrap();
        assert_eq!(written.committed_size, 0);
        assert_eq!(read(&client, &empty, 0, 0).await.unwrap(), b"");
    });
}

#[test]
fn compressed_writes_are_verified_after_decompression() {
    with_client(&[], |client, _addr| async move {
        for (i, function, segment) in [
            (0u64, DigestFunction::Sha256, ""),
            (1, DigestFunction::Blake3, "blake3/"),
        ] {
            let mut data = pseudo_random(300 << 10, i + 40);
            data.extend(std::iter::repeat_n(b'a', 700 << 10));
            let compressed = zstd::encode_all(&data[..], 3).unwrap();
            let plain = blob_name("z", segment, &data, function);
            let name = plain.replacen("blobs/", "compressed-blobs/zstd/", 1);
            let upload = upload_name("z", &format!("c{i}"), &name);
            let written = write(&client, &upload, &compressed, 64 << 10)
                .await
                .unwrap();
            assert_eq!(written.committed_size, compressed.len() as i64);
            assert_eq!(read(&client, &plain, 0, 0).await.unwrap(), data);
            // Already present: the first message is answered with -1 at once.
            let again = upload_name("z", &format!("again{i}"), &name);
            let first_only = write_requests(&again, &compressed, 64 << 10, 0);
            let early = write_messages(&client, &first_only[..1]).await.unwrap();
            assert_eq!(early.committed_size, -1);
        }
        // A compressed upload whose bytes decompress to other data: INVALID_ARGUMENT.
        let claimed = pseudo_random(5000, 77);
        let other = pseudo_random(5000, 78);
        let name = blob_name("", "", &claimed, DigestFunction::Sha256).replacen(
            "blobs/",
            "compressed-blobs/zstd/",
            1,
        );
        let upload = upload_name("", "bad", &name);
        let error = write(
            &client,
            &upload,
            &zstd::encode_all(&other[..], 1).unwrap(),
            1000,
        )
        .await
        .unwrap_err();
        assert_eq!(error.code, Code::InvalidArgument, "{error}");
        // Not zstd at all.
        let error = write(
            &client,
            &upload_name("", "bad2", &name),
            b"plain bytes, not zstd",
            100,
        )
        .await
        .unwrap_err();
        assert_eq!(error.code, Code::InvalidArgument, "{error}");
        let plain = blob_name("", "", &claimed, DigestFunction::Sha256);
        assert_eq!(
            read(&client, &plain, 0, 0).await.unwrap_err().code,
            Code::NotFound
        );
    });
}

#[test]
fn existing_blob_answers_the_first_message_with_the_full_size() {
    with_client(&[], |client, _addr| async move {
        let data = pseudo_random(200 << 10, 5);
        let name = blob_name("", "", &data, DigestFunction::Sha256);
        write(&client, &upload_name("", "a", &name), &data, 16 << 10)
            .await
            .unwrap();
        let requests = write_requests(&upload_name("", "b", &name), &data, 16 << 10, 0);
        let early = write_messages(&client, &requests[..1]).await.unwrap();
        assert_eq!(
            early.committed_size,
            data.len() as i64,
            "never ALREADY_EXISTS"
        );
        let status: QueryWriteStatusResponse = unary(
            &client,
            QUERY_WRITE_STATUS,
            &QueryWriteStatusRequest {
                resource_name: upload_name("", "c", &name),
            },
        )
        .await
        .unwrap();
        assert_eq!(
            (status.committed_size, status.complete),
            (data.len() as i64, true)
        );
    });
}

/// Starts a Write, sends `requests`, then resets the stream (as a client whose connection
/// broke would); waits until the server has seen the bytes.
async fn reset_mid_upload(client: &SendRequest<Bytes>, requests: &[WriteRequest]) {
    let mut ready = client.clone().ready().await.unwrap();
    let (response, mut send) = ready.send_request(grpc_request(WRITE), false).unwrap();
    for request in requests {
        send_all(&mut send, frame(&request.encode_to_vec())).await;
    }
    glommio::timer::sleep(Duration::from_millis(200)).await;
    send.send_reset(h2::Reason::CANCEL);
    drop(response);
    glommio::timer::sleep(Duration::from_millis(100)).await;
}

#[test]
fn broken_off_writes_resume_at_the_committed_size() {
    // One executor: the resumed call must reach the executor holding the suspended upload
    // (the suspension table is per executor; one connection stays on one anyway).
    let tessera = start(&["--executors", "1"]);
    let addr = tessera.addr();
    run_executor(move || async move {
        let client = connect(addr).await;
        let data = pseudo_random(1 << 20, 9);
        let name = blob_name("r", "", &data, DigestFunction::Sha256);
        let upload = upload_name("r", "resume-1", &name);
        let requests = write_requests(&upload, &data, 64 << 10, 0);
        // 1. Client reset after 5 chunks.
        reset_mid_upload(&client, &requests[..5]).await;
        let status: QueryWriteStatusResponse = unary(
            &client,
            QUERY_WRITE_STATUS,
            &QueryWriteStatusRequest {
                resource_name: upload.clone(),
            },
        )
        .await
        .unwrap();
        assert_eq!(
            (status.committed_size, status.complete),
            (5 * (64 << 10), false)
        );
        assert_eq!(
            read(&client, &name, 0, 0).await.unwrap_err().code,
            Code::NotFound
        );
        // 2. Resume with 3 more chunks, then end the stream without finish_write.
        let mut resumed = write_requests(&upload, &data, 64 << 10, 5 * (64 << 10));
        resumed[0].resource_name = upload.clone();
        let error = write_messages(&client, &resumed[..3]).await.unwrap_err();
        assert_eq!(
            error.code,
            Code::InvalidArgument,
            "ended without finish_write"
        );
        let status: QueryWriteStatusResponse = unary(
            &client,
            QUERY_WRITE_STATUS,
            &QueryWriteStatusRequest {
                resource_name: upload.clone(),
            },
        )
        .await
        .unwrap();
        assert_eq!(status.committed_size, 8 * (64 << 10));
        // 3. A resume at a wrong offset is refused (and releases the upload) ...
        let mut wrong = write_requests(&upload, &data, 64 << 10, 0);
        wrong.truncate(1);
        let error = write_messages(&client, &wrong).await.unwrap_err();
        assert_eq!(error.code, Code::InvalidArgument);
        assert!(error.message.contains("write_offset 0"), "{error}");
        // ... so the upload starts over from 0 and completes.
        let status: QueryWriteStatusResponse = unary(
            &client,
            QUERY_WRITE_STATUS,
            &QueryWriteStatusRequest {
                resource_name: upload.clone(),
            },
        )
        .await
        .unwrap();
        assert_eq!((status.committed_size, status.complete), (0, false));
        let upload2 = upload_name("r", "resume-2", &name);
        let requests = write_requests(&upload2, &data, 64 << 10, 0);
        reset_mid_upload(&client, &requests[..2]).await;
        let mut rest = write_requests(&upload2, &data, 64 << 10, 2 * (64 << 10));
        rest[0].resource_name = upload2.clone();
        let done = write_messages(&client, &rest).await.unwrap();
        assert_eq!(done.committed_size, data.len() as i64);
        assert_eq!(read(&client, &name, 0, 0).await.unwrap(), data);
    });
}

#[test]
fn a_write_past_its_deadline_is_dropped_and_can_be_resumed() {
    with_client(&["--executors", "1"], |client, _addr| async move {
        let data = pseudo_random(300 << 10, 31);
        let name = blob_name("", "", &data, DigestFunction::Sha256);
        let upload = upload_name("", "deadline", &name);
        let requests = write_requests(&upload, &data, 64 << 10, 0);
        let mut ready = client.clone().ready().await.unwrap();
        let head = grpc_request_with(WRITE, &[("grpc-timeout", "300m")]);
        let (response, mut send) = ready.send_request(head, false).unwrap();
        for request in &requests[..2] {
            send_all(&mut send, frame(&request.encode_to_vec())).await;
        }
        // The client stalls; the server's deadline drops the call with the bytes it holds.
        let reply = read_reply(response).await;
        assert_eq!(
            reply.status.code,
            Code::DeadlineExceeded,
            "{}",
            reply.status
        );
        let status: QueryWriteStatusResponse = unary(
            &client,
            QUERY_WRITE_STATUS,
            &QueryWriteStatusRequest {
                resource_name: upload.clone(),
            },
        )
        .await
        .unwrap();
        assert_eq!(
            (status.committed_size, status.complete),
            (2 * (64 << 10), false)
        );
        let mut rest = write_requests(&upload, &data, 64 << 10, 2 * (64 << 10));
        rest[0].resource_name = upload.clone();
        let done = write_messages(&client, &rest).await.unwrap();
        assert_eq!(done.committed_size, data.len() as i64);
        assert_eq!(read(&client, &name, 0, 0).await.unwrap(), data);
    });
}

#[test]
fn bad_writes_are_invalid_argument_and_store_nothing() {
    with_client(&[], |client, _addr| async move {
        let data = pseudo_random(100 << 10, 21);
        let name = blob_name("", "", &data, DigestFunction::Sha256);
        let upload = |id: &str| upload_name("", id, &name);
        let expect_invalid = |what: &str, result: Result<WriteResponse, Status>| {
            let error = result.unwrap_err();
            assert_eq!(error.code, Code::InvalidArgument, "{what}: {error}");
        };
        // Wrong digest: the bytes do not hash to the name.
        let mut wrong = data.clone();
        wrong[1000] ^= 1;
        expect_invalid(
            "wrong digest",
            write(&client, &upload("w1"), &wrong, 16 << 10).await,
        );
        // Offsets that skip and that overlap.
        let mut skipping = write_requests(&upload("w2"), &data, 16 << 10, 0);
        skipping[2].write_offset += 1;
        expect_invalid("skip", write_messages(&client, &skipping).await);
        let mut overlapping = write_requests(&upload("w3"), &data, 16 << 10, 0);
        overlapping[3].write_offset -= 100;
        expect_invalid("overlap", write_messages(&client, &overlapping).await);
        // Size that disagrees with the bytes: fewer and more bytes than the name says.
        expect_invalid(
            "short",
            write(&client, &upload("w4"), &data[..data.len() - 1], 16 << 10).await,
        );
        let mut longer = data.clone();
        longer.push(0);
        expect_invalid(
            "long",
            write(&client, &upload("w5"), &longer, 16 << 10).await,
        );
        // Malformed resource names.
        for bad in [
            "blobs/abc/1".to_string(),
            format!("uploads/u/blobs/{}/notanumber", sha(&data).hash),
            format!("uploads/u/blobs/{}", sha(&data).hash),
            format!("uploads/u/compressed-blobs/lz4/{}/5", sha(&data).hash),
            format!("blobs/uploads/u/blobs/{}/5", sha(&data).hash),
            format!("uploads/u/blobs/{}/5", sha(&data).hash.to_uppercase()),
        ] {
            expect_invalid(&bad, write(&client, &bad, b"hello", 5).await);
        }
        assert_eq!(
            read(&client, "blobs/zz/1", 0, 0).await.unwrap_err().code,
            Code::InvalidArgument
        );
        // Nothing of the above is visible.
        assert_eq!(
            read(&client, &name, 0, 0).await.unwrap_err().code,
            Code::NotFound
        );
        // A message over the 4 MiB limit.
        let big = WriteRequest {
            resource_name: upload("w6"),
            write_offset: 0,
            finish_write: true,
            data: Bytes::from(vec![0u8; (4 << 20) + 10]),
        };
        let reply = call(&client, WRITE, &[Bytes::from(big.encode_to_vec())]).await;
        assert_eq!(
            reply.status.code,
            Code::ResourceExhausted,
            "{}",
            reply.status
        );
        // A Read of a blob stored with another size is a miss.
        write(&client, &upload("ok"), &data, 16 << 10)
            .await
            .unwrap();
        let wrong_size = name.replace(&format!("/{}", data.len()), &format!("/{}", data.len() + 1));
        assert_eq!(
            read(&client, &wrong_size, 0, 0).await.unwrap_err().code,
            Code::NotFound
        );
        // BatchUpdateBlobs with a wrong digest: per-blob INVALID_ARGUMENT, nothing stored.
        let batch = reapi::BatchUpdateBlobsRequest {
            requests: vec![reapi::batch_update_blobs_request::Request {
                digest: Some(sha(b"claimed")),
                data: Bytes::from_static(b"clained"),
                compressor: 0,
            }],
            ..Default::default()
        };
        let answer: reapi::BatchUpdateBlobsResponse =
            unary(&client, BATCH_UPDATE, &batch).await.unwrap();
        assert_eq!(
            answer.responses[0].status.as_ref().unwrap().code,
            Code::InvalidArgument.as_i32()
        );
        let missing: reapi::FindMissingBlobsResponse = unary(
            &client,
            FIND_MISSING,
            &reapi::FindMissingBlobsRequest {
                blob_digests: vec![sha(b"claimed")],
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(missing.missing_blob_digests.len(), 1);
        // A reset upload that is never resumed stays invisible.
        let requests = write_requests(&upload("reset"), &wrong, 16 << 10, 0);
        reset_mid_upload(&client, &requests[..2]).await;
        let wrong_name = blob_name("", "", &wrong, DigestFunction::Sha256);
        assert_eq!(
            read(&client, &wrong_name, 0, 0).await.unwrap_err().code,
            Code::NotFound
        );
        // The server is unharmed.
        assert_eq!(read(&client, &name, 0, 0).await.unwrap(), data);
    });
}

#[test]
fn garbage_http2_frames_get_goaway_and_the_server_serves_on() {
    let tessera = Tessera::builder().small_store().grpc_listen().start();
    let addrs = [
        tessera.addr(),
        tessera.grpc_addr().expect("grpc= in the announcement"),
    ];
    run_executor(move || async move {
        for addr in addrs {
            let mut raw = glommio::net::TcpStream::connect(addr).await.unwrap();
            raw.write_all(tessera::grpc::HTTP2_PREFACE).await.unwrap();
            raw.write_all(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]).await.unwrap();
            // DATA on stream 0: PROTOCOL_ERROR (RFC 9113 §6.1).
            raw.write_all(&[0, 0, 1, 0x0, 0, 0, 0, 0, 0, b'x'])
                .await
                .unwrap();
            assert_eq!(read_goaway(&mut raw).await, Some(0x1), "{addr}");
            let client = connect(addr).await;
            let caps: Result<reapi::ServerCapabilities, Status> = unary(
                &client,
                CAPABILITIES,
                &reapi::GetCapabilitiesRequest::default(),
            )
            .await;
            assert!(caps.is_ok(), "{addr} serves on");
        }
    });
}

#[test]
fn sigterm_sends_goaway_and_the_server_exits_cleanly() {
    let mut tessera = start(&[]);
    let addr = tessera.addr();
    let pid = tessera.pid() as i32;
    run_executor(move || async move {
        let mut raw = glommio::net::TcpStream::connect(addr).await.unwrap();
        raw.write_all(tessera::grpc::HTTP2_PREFACE).await.unwrap();
        raw.write_all(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]).await.unwrap();
        // Let the handshake finish, then drain.
        glommio::timer::sleep(Duration::from_millis(200)).await;
        // SAFETY: kill(2) on the test's own child process.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        assert_eq!(
            read_goaway(&mut raw).await,
            Some(0),
            "GOAWAY(NO_ERROR) on drain"
        );
        let _ = raw.close().await;
    });
    let status = tessera.wait_for_exit(Duration::from_millis(common::server::EXIT_TIMEOUT_MS));
    assert!(
        status.success(),
        "exit status {status} after the drain; log:\n{}",
        tessera.recent_log()
    );
}

#[test]
fn action_cache_completeness_inlining_and_get_tree() {
    with_client(&[], |client, _addr| async move {
        let file = pseudo_random(3000, 1);
        let stdout = b"hello from the action\n".to_vec();
        let leaf = reapi::Directory {
            files: vec![reapi::FileNode {
                name: "leaf.txt".into(),
                digest: Some(sha(&file)),
                ..Default::default()
            }],
            ..Default::default()
        };
        let leaf_bytes = leaf.encode_to_vec();
        let root = reapi::Directory {
            directories: (0..5)
                .map(|i| reapi::DirectoryNode {
                    name: format!("d{i}"),
                    digest: Some(sha(&leaf_bytes)),
                })
                .collect(),
            ..Default::default()
        };
        let tree = reapi::Tree {
            root: Some(root.clone()),
            children: vec![leaf.clone()],
        };
        let tree_bytes = tree.encode_to_vec();
        let result = reapi::ActionResult {
            output_files: vec![reapi::OutputFile {
                path: "out.bin".into(),
                digest: Some(sha(&file)),
                ..Default::default()
            }],
            output_directories: vec![reapi::OutputDirectory {
                path: "gen".into(),
                tree_digest: Some(sha(&tree_bytes)),
                ..Default::default()
            }],
            stdout_digest: Some(sha(&stdout)),
            ..Default::default()
        };
        let update = reapi::UpdateActionResultRequest {
            instance_name: "ac".into(),
            action_digest: Some(sha(b"the action")),
            action_result: Some(result.clone()),
            results_cache_policy: None,
            digest_function: 0,
        };
        let stored: reapi::ActionResult =
            unary(&client, UPDATE_ACTION_RESULT, &update).await.unwrap();
        assert_eq!(stored, result);
        let get = reapi::GetActionResultRequest {
            instance_name: "ac".into(),
            action_digest: Some(sha(b"the action")),
            inline_stdout: true,
            ..Default::default()
        };
        let miss = unary::<reapi::ActionResult>(&client, GET_ACTION_RESULT, &get)
            .await
            .unwrap_err();
        assert_eq!(miss.code, Code::NotFound, "outputs not uploaded yet");
        for blob in [
            &file,
            &stdout,
            &tree_bytes,
            &leaf_bytes,
            &root.encode_to_vec(),
        ] {
            let d = sha(blob);
            let name = format!("ac/uploads/x/blobs/{}/{}", d.hash, d.size_bytes);
            write(&client, &name, blob, 1 << 20).await.unwrap();
        }
        let hit: reapi::ActionResult = unary(&client, GET_ACTION_RESULT, &get).await.unwrap();
        assert_eq!(&hit.stdout_raw[..], &stdout[..]);
        assert_eq!(hit.output_files, result.output_files);
        let elsewhere = reapi::GetActionResultRequest {
            instance_name: "other".into(),
            ..get.clone()
        };
        let error = unary::<reapi::ActionResult>(&client, GET_ACTION_RESULT, &elsewhere)
            .await
            .unwrap_err();
        assert_eq!(error.code, Code::NotFound);

        // GetTree: root + one distinct child (five entries name the same leaf), 1 per page.
        let request = reapi::GetTreeRequest {
            instance_name: "ac".into(),
            root_digest: Some(sha(&root.encode_to_vec())),
            page_size: 1,
            page_token: String::new(),
            digest_function: 0,
        };
        let reply = call(&client, GET_TREE, &[Bytes::from(request.encode_to_vec())])
            .await
            .ok()
            .unwrap();
        let pages: Vec<reapi::GetTreeResponse> = reply
            .into_iter()
            .map(|m| reapi::GetTreeResponse::decode(m).unwrap())
            .collect();
        assert_eq!(pages.len(), 2);
        assert_eq!(pages[0].directories, std::slice::from_ref(&root));
        assert_eq!(pages[0].next_page_token, "1");
        assert_eq!(pages[1].directories, std::slice::from_ref(&leaf));
        assert_eq!(pages[1].next_page_token, "");
        let resumed = reapi::GetTreeRequest {
            page_token: "1".into(),
            ..request.clone()
        };
        let reply = call(&client, GET_TREE, &[Bytes::from(resumed.encode_to_vec())])
            .await
            .ok()
            .unwrap();
        assert_eq!(
            reapi::GetTreeResponse::decode(reply[0].clone())
                .unwrap()
                .directories,
            [leaf]
        );
        let missing_root = reapi::GetTreeRequest {
            root_digest: Some(sha(b"no such directory")),
            ..request
        };
        let reply = call(
            &client,
            GET_TREE,
            &[Bytes::from(missing_root.encode_to_vec())],
        )
        .await;
        assert_eq!(reply.status.code, Code::NotFound);
    });
}

/// One HTTP/1.1 exchange on a fresh connection; returns (status, body).
fn http(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let response = common::http_client::request(addr, method, path, body);
    (response.status, response.body)
}

#[test]
fn http_and_grpc_share_the_cas_and_the_action_cache() {
    with_client(&[], |client, addr| async move {
        for instance in ["", "team"] {
            let prefix = if instance.is_empty() {
                String::new()
            } else {
                format!("/{instance}")
            };
            // HTTP PUT → ByteStream Read.
            let data = pseudo_random(70_000, instance.len() as u64);
            let d = sha(&data);
            let (status, _) = http(addr, "PUT", &format!("{prefix}/cas/{}", d.hash), &data);
            assert_eq!(status, 200);
            let name = blob_name(instance, "", &data, DigestFunction::Sha256);
            assert_eq!(read(&client, &name, 0, 0).await.unwrap(), data);
            // ByteStream Write → HTTP GET.
            let other = pseudo_random(5000, 99 + instance.len() as u64);
            let other_name = blob_name(instance, "", &other, DigestFunction::Sha256);
            write(
                &client,
                &upload_name(instance, "h", &other_name),
                &other,
                4096,
            )
            .await
            .unwrap();
            let (status, body) = http(
                addr,
                "GET",
                &format!("{prefix}/cas/{}", sha(&other).hash),
                b"",
            );
            assert_eq!((status, body), (200, other.clone()));
            // UpdateActionResult → HTTP GET /ac/ returns the same bytes.
            let result = reapi::ActionResult {
                output_files: vec![reapi::OutputFile {
                    path: "o".into(),
                    digest: Some(sha(&other)),
                    ..Default::default()
                }],
                exit_code: 0,
                ..Default::default()
            };
            let action = sha(format!("action of {instance}").as_bytes());
            let update = reapi::UpdateActionResultRequest {
                instance_name: instance.into(),
                action_digest: Some(action.clone()),
                action_result: Some(result.clone()),
                results_cache_policy: None,
                digest_function: 0,
            };
            let _: reapi::ActionResult =
                unary(&client, UPDATE_ACTION_RESULT, &update).await.unwrap();
            let (status, body) = http(addr, "GET", &format!("{prefix}/ac/{}", action.hash), b"");
            assert_eq!((status, body), (200, result.encode_to_vec()));
            // HTTP PUT /ac/ → GetActionResult (its output is present, so a hit).
            let action2 = sha(format!("second action of {instance}").as_bytes());
            let (status, _) = http(
                addr,
                "PUT",
                &format!("{prefix}/ac/{}", action2.hash),
                &result.encode_to_vec(),
            );
            assert_eq!(status, 200);
            let get = reapi::GetActionResultRequest {
                instance_name: instance.into(),
                action_digest: Some(action2),
                ..Default::default()
            };
            let hit: reapi::ActionResult = unary(&client, GET_ACTION_RESULT, &get).await.unwrap();
            assert_eq!(hit, result);
        }
        // /metrics counts how gRPC calls ended: a NOT_FOUND more after a miss.
        let not_found = |page: &[u8]| -> u64 {
            String::from_utf8_lossy(page)
                .lines()
                .find_map(|l| l.strip_prefix("tessera_grpc_calls_total{code=\"5\"} "))
                .map_or(0, |n| n.parse().unwrap())
        };
        let (status, before) = http(addr, "GET", "/metrics", b"");
        assert_eq!(status, 200);
        let miss = reapi::GetActionResultRequest {
            action_digest: Some(sha(b"never stored")),
            ..Default::default()
        };
        let error = unary::<reapi::ActionResult>(&client, GET_ACTION_RESULT, &miss)
            .await
            .unwrap_err();
        assert_eq!(error.code, Code::NotFound);
        let (_, after) = http(addr, "GET", "/metrics", b"");
        assert_eq!(not_found(&after), not_found(&before) + 1);
        let ok_calls = String::from_utf8_lossy(&after)
            .lines()
            .find_map(|l| l.strip_prefix("tessera_grpc_calls_total{code=\"0\"} "))
            .map_or(0, |n| n.parse::<u64>().unwrap());
        assert!(ok_calls >= 8, "{ok_calls} OK calls counted");
    });
}

#[test]
fn uploads_survive_a_restart() {
    let mut tessera = start(&[]);
    let data = pseudo_random(2 << 20, 3);
    let name = blob_name("keep", "blake3/", &data, DigestFunction::Blake3);
    let addr = tessera.addr();
    let (write_data, write_name) = (data.clone(), name.clone());
    run_executor(move || async move {
        let client = connect(addr).await;
        write(
            &client,
            &upload_name("keep", "u", &write_name),
            &write_data,
            1 << 20,
        )
        .await
        .unwrap();
    });
    tessera.stop_expecting_exit_0();
    tessera.restart();
    let addr = tessera.addr();
    run_executor(move || async move {
        let client = connect(addr).await;
        assert_eq!(read(&client, &name, 0, 0).await.unwrap(), data);
    });
    tessera.stop_expecting_exit_0();
}
