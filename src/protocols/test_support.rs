//! Driving the HTTP front-ends in-process: a [`Router`] over one [`LocalBackend`] shard, fed
//! raw request bytes through the real HTTP/1.1 driver (no sockets, no executors).

use std::rc::Rc;

use futures_lite::{AsyncReadExt, AsyncWriteExt};

use crate::http1::test_support::{duplex_bounded, split_responses, Response, TestClock};

use super::backend::{Backend, LocalBackend};
use super::router::{HttpOptions, Router};

/// A fresh one-shard store in `dir` (blobs up to 1 MiB).
pub fn shard(dir: &std::path::Path) -> crate::store::Shard {
    let mut config = crate::store::StoreConfig::new(dir, 1);
    config.max_blob_bytes = 1 << 20;
    crate::store::DataDir::open(&config).unwrap();
    crate::store::Shard::open(&config, 0).unwrap()
}

/// A router over a fresh one-shard store (kept alive by the returned directory).
pub fn local_router(options: HttpOptions) -> (Router<LocalBackend>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let backend = Rc::new(LocalBackend::new(shard(dir.path())));
    (Router::new(backend, options), dir)
}

/// Sends `input` on one fresh connection to `router` and returns every response (`head_only`
/// marks the responses to HEAD requests, which have no body bytes).
pub fn exchange_with<B: Backend>(
    router: &Router<B>,
    input: Vec<u8>,
    head_only: &[bool],
) -> Vec<Response> {
    let (mut server_end, mut client) = duplex_bounded(usize::MAX, usize::MAX);
    let server = async {
        crate::http1::serve(
            &mut server_end,
            router,
            &TestClock,
            &crate::http1::Limits::default(),
        )
        .await;
        server_end.close().await.unwrap();
    };
    let client = async {
        client.write_all(&input).await.unwrap();
        client.close().await.unwrap();
        let mut output = Vec::new();
        client.read_to_end(&mut output).await.unwrap();
        output
    };
    let ((), output) = futures_lite::future::block_on(futures_lite::future::zip(server, client));
    split_responses(&output, head_only)
}

/// [`exchange_with`] for requests none of which is HEAD.
pub fn exchange<B: Backend>(router: &Router<B>, input: Vec<u8>) -> Vec<Response> {
    exchange_with(router, input, &[])
}

/// The bytes of one request with `headers` (`"Name: value"`) and a Content-Length body.
pub fn request(method: &str, path: &str, headers: &[&str], body: &[u8]) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: h\r\n");
    for header in headers {
        head.push_str(header);
        head.push_str("\r\n");
    }
    if !body.is_empty() || method == "PUT" || method == "POST" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// One request on its own connection; its response.
pub fn one<B: Backend>(
    router: &Router<B>,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &[u8],
) -> Response {
    let head_only = [method == "HEAD"];
    let mut responses = exchange_with(router, request(method, path, headers, body), &head_only);
    assert_eq!(responses.len(), 1, "{method} {path}: {responses:?}");
    responses.remove(0)
}
