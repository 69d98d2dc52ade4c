//! The admin JSON API and the `tessera stats|namespaces|purge|get|put` commands against the
//! real binary (issue 13).

mod common;

use std::io::{BufRead, BufReader, Write};

use common::http_client::{cas_path, get, put, request, sha256_hex, Rng};
use common::{run_tessera, Tessera};

fn json(response: &common::http_client::Response) -> serde_json::Value {
    serde_json::from_slice(&response.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {response:?}"))
}

fn assert_error(response: &common::http_client::Response, status: u16, code: &str) {
    assert_eq!(response.status, status, "{response:?}");
    let body = json(response);
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
}

#[test]
fn cli_puts_gets_inspects_and_deletes_entries_through_the_admin_api() {
    let mut server = Tessera::start(&[], &[]);
    let addr = server.addr();
    let url = server.url();
    let scratch = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(0xad_0013);

    // put into the gradle namespace from the CLI; a Gradle client then reads it.
    let entry = rng.bytes(70_000);
    let input = scratch.path().join("entry.bin");
    std::fs::write(&input, &entry).unwrap();
    let put_cli = run_tessera(
        &[
            "put",
            "gradle",
            "k1",
            input.to_str().unwrap(),
            "--server",
            &url,
        ],
        &[],
    );
    assert!(put_cli.status.success(), "{put_cli:?}");
    assert_eq!(get(addr, "/cache/k1").body, entry);

    // get back into a file, and to stdout.
    let output = scratch.path().join("out.bin");
    let get_cli = run_tessera(
        &[
            "get",
            "gradle",
            "k1",
            output.to_str().unwrap(),
            "--server",
            &url,
        ],
        &[],
    );
    assert!(get_cli.status.success(), "{get_cli:?}");
    assert_eq!(std::fs::read(&output).unwrap(), entry);

    // Bazel keys: cas/HASH, put over HTTP, read by the CLI; a put whose body is not its hash
    // is refused with exit status 1 and the server's message.
    let blob = rng.bytes(5_000);
    assert_eq!(put(addr, &cas_path(&blob), &blob).status, 200);
    let key = format!("cas/{}", sha256_hex(&blob));
    let blob_out = scratch.path().join("blob.bin");
    let bazel_get = run_tessera(
        &[
            "get",
            "bazel",
            &key,
            blob_out.to_str().unwrap(),
            "--server",
            &url,
        ],
        &[],
    );
    assert!(bazel_get.status.success(), "{bazel_get:?}");
    assert_eq!(std::fs::read(&blob_out).unwrap(), blob);
    let wrong = run_tessera(
        &[
            "put",
            "bazel",
            &format!("cas/{}", sha256_hex(b"other")),
            input.to_str().unwrap(),
            "--server",
            &url,
        ],
        &[],
    );
    assert_eq!(wrong.status.code(), Some(1), "{wrong:?}");
    assert!(wrong.stderr.contains("400"), "{wrong:?}");
    let missing = run_tessera(&["get", "gradle", "nope", "--server", &url], &[]);
    assert_eq!(missing.status.code(), Some(1), "{missing:?}");
    assert!(missing.stderr.contains("404"), "{missing:?}");

    // Look a key up: present, size, age, metadata.
    let info = get(addr, "/admin/key?namespace=gradle&key=k1");
    assert_eq!(info.status, 200, "{info:?}");
    let info = json(&info);
    assert_eq!(info["present"], true);
    assert_eq!(info["size"], entry.len() as u64);
    let age = info["age_seconds"].as_f64().unwrap();
    assert!((0.0..600.0).contains(&age), "{info}");
    assert!(info["metadata"].is_object(), "{info}");
    let absent = get(addr, "/admin/key?namespace=gradle&key=k2");
    assert_eq!(
        (absent.status, json(&absent)["present"].clone()),
        (404, serde_json::json!(false))
    );

    // stats and namespaces.
    let stats = run_tessera(&["stats", "--server", &url], &[]);
    assert!(stats.status.success(), "{stats:?}");
    let stats: serde_json::Value = serde_json::from_str(&stats.stdout).unwrap();
    assert!(
        stats["shards"].as_array().is_some_and(|s| !s.is_empty()),
        "{stats}"
    );
    let namespaces = run_tessera(&["namespaces", "--server", &url], &[]);
    assert!(namespaces.status.success(), "{namespaces:?}");
    let namespaces: serde_json::Value = serde_json::from_str(&namespaces.stdout).unwrap();
    let gradle = namespaces["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["namespace"] == "gradle")
        .cloned()
        .unwrap_or_else(|| panic!("{namespaces}"));
    assert_eq!(gradle["puts"], 1);
    assert_eq!(gradle["bytes_written"], entry.len() as u64);

    // Delete one key.
    let deleted = request(addr, "DELETE", "/admin/key?namespace=gradle&key=k1", b"");
    assert_eq!(
        (deleted.status, json(&deleted)["deleted"].clone()),
        (200, serde_json::json!(true))
    );
    assert_eq!(get(addr, "/cache/k1").status, 404);
    assert_error(
        &request(addr, "DELETE", "/admin/key?namespace=gradle&key=k1", b""),
        404,
        "not_found",
    );
    server.stop_expecting_exit_0();
}

/// The stored objects and bytes `/admin/namespaces` reports for `namespace` (0, 0 if absent).
fn stored(addr: std::net::SocketAddr, namespace: &str) -> (u64, u64) {
    let list = json(&get(addr, "/admin/namespaces"));
    list["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["namespace"] == namespace)
        .map_or((0, 0), |n| {
            (
                n["stored_objects"].as_u64().unwrap(),
                n["stored_bytes"].as_u64().unwrap(),
            )
        })
}

/// The value of one sample line of `/metrics`.
fn metric(addr: std::net::SocketAddr, line_start: &str) -> Option<u64> {
    let page = String::from_utf8(get(addr, "/metrics").body).unwrap();
    page.lines()
        .find_map(|line| line.strip_prefix(line_start)?.trim().parse().ok())
}

#[test]
fn purge_deletes_one_namespace_on_every_shard_and_holds_after_restarts() {
    let mut server = Tessera::builder().args(["--shards", "4"]).start();
    let mut rng = Rng::new(0x9e_0013);
    let mut gradle = Vec::new();
    let mut nx = Vec::new();
    for i in 0..24 {
        let body = rng.bytes(1000 + i * 10);
        assert_eq!(
            put(server.addr(), &format!("/cache/g{i}"), &body).status,
            200
        );
        gradle.push(body);
        let body = rng.bytes(700);
        let target = format!("/admin/blob?namespace=nx&key=n{i}");
        assert_eq!(request(server.addr(), "PUT", &target, &body).status, 200);
        nx.push(body);
    }
    let (objects, bytes) = stored(server.addr(), "gradle");
    assert_eq!(objects, 24);
    let bodies: u64 = gradle.iter().map(|b| b.len() as u64).sum();
    assert!(bytes > bodies, "record bytes include headers: {bytes}");
    assert_eq!(stored(server.addr(), "nx").0, 24);
    assert_eq!(
        metric(
            server.addr(),
            "tessera_namespace_stored_objects{namespace=\"gradle\"}"
        ),
        Some(24)
    );
    assert_eq!(
        metric(
            server.addr(),
            "tessera_namespace_stored_bytes{namespace=\"gradle\"}"
        ),
        Some(bytes)
    );

    let purged = request(
        server.addr(),
        "DELETE",
        "/admin/namespaces?namespace=gradle",
        b"",
    );
    assert_eq!(purged.status, 200, "{purged:?}");
    let purged = json(&purged);
    assert_eq!(purged["purged_objects"], 24, "{purged}");
    assert_eq!(purged["purged_bytes"], bytes, "{purged}");
    let shards = purged["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 4, "every shard answers: {purged}");
    assert!(
        shards.iter().filter(|s| s["objects"] != 0).count() > 1,
        "the entries were spread over several shards: {purged}"
    );

    let check = |server: &Tessera, when: &str| {
        let addr = server.addr();
        for (i, body) in nx.iter().enumerate() {
            assert_eq!(
                get(addr, &format!("/cache/g{i}")).status,
                404,
                "g{i} {when}"
            );
            let hit = get(addr, &format!("/admin/blob?namespace=nx&key=n{i}"));
            assert_eq!((hit.status, &hit.body), (200, body), "n{i} {when}");
        }
        assert_eq!(stored(addr, "gradle"), (0, 0), "{when}");
        assert_eq!(stored(addr, "nx").0, 24, "{when}");
    };
    check(&server, "after the purge");
    server.kill9();
    server.restart();
    check(&server, "after kill -9 and a restart");
    server.stop_expecting_exit_0();
    server.restart();
    check(&server, "after a clean restart");

    // The CLI: the same purge from a shell, answering with the counts.
    let purge = run_tessera(&["purge", "nx", "--server", &server.url()], &[]);
    assert!(purge.status.success(), "{purge:?}");
    let answer: serde_json::Value = serde_json::from_str(&purge.stdout).unwrap();
    assert_eq!(answer["purged_objects"], 24, "{answer}");
    assert_eq!(stored(server.addr(), "nx"), (0, 0));
    server.stop_expecting_exit_0();
}

#[test]
fn admin_errors_are_json_with_precise_statuses() {
    let mut server = Tessera::start(&[], &[]);
    let addr = server.addr();
    assert_error(&get(addr, "/admin/nothing"), 404, "not_found");
    let post = request(addr, "POST", "/admin/stats", b"");
    assert_error(&post, 405, "method_not_allowed");
    assert_eq!(post.header("allow"), Some("GET"));
    assert_error(&get(addr, "/admin/key?key=k1"), 400, "bad_request");
    assert_error(
        &get(addr, "/admin/key?namespace=bazel&key=cas/zz"),
        400,
        "bad_request",
    );
    assert_error(
        &get(addr, "/admin/key?namespace=%2Fbad&key=k"),
        400,
        "bad_request",
    );
    assert_error(
        &get(addr, "/admin/key?namespace=gradle&key=%zz"),
        400,
        "bad_request",
    );
    assert_error(
        &request(addr, "DELETE", "/admin/namespaces?namespace=%2Fbad", b""),
        400,
        "bad_request",
    );
    assert_error(
        &request(addr, "DELETE", "/admin/namespaces", b""),
        400,
        "bad_request",
    );
    assert_error(
        &get(addr, "/admin/blob?namespace=nx&key=none"),
        404,
        "not_found",
    );
    server.stop_expecting_exit_0();
}

#[test]
fn the_cli_sends_its_token_as_a_bearer_credential() {
    // A one-request stand-in server that records the request head.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let recorder = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut head = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            head.push(line.trim_end().to_owned());
        }
        let body = b"{\"shards\":[]}";
        let mut stream = stream;
        write!(
            stream,
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .unwrap();
        stream.write_all(body).unwrap();
        head
    });
    let out = run_tessera(
        &[
            "stats",
            "--server",
            &format!("http://{addr}"),
            "--token",
            "tok.en.x",
        ],
        &[],
    );
    assert!(out.status.success(), "{out:?}");
    let head = recorder.join().unwrap();
    assert_eq!(head[0], "GET /admin/stats HTTP/1.1");
    assert!(
        head.iter().any(|h| h == "authorization: Bearer tok.en.x"),
        "{head:?}"
    );
}
