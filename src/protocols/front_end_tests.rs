//! The four opaque-key front-ends (Gradle, Nx, Turborepo, ccache) driven through the router and
//! the real HTTP/1.1 driver over one in-process shard: what each client sees for good and bad
//! input, and that bad input stores nothing.

use super::router::HttpOptions;
use super::test_support::{exchange, local_router, one, request};

const GRADLE_KEY: &str = "0123456789abcdef0123456789abcdef";
const GRADLE_TYPE: &str = "application/vnd.gradle.build-cache-artifact.v1";

#[test]
fn gradle_keeps_its_content_type_and_serves_hits() {
    let (router, _dir) = local_router(HttpOptions::default());
    let path = format!("/cache/{GRADLE_KEY}");
    assert_eq!(one(&router, "GET", &path, &[], b"").status, 404);
    let content_type = format!("Content-Type: {GRADLE_TYPE}");
    let stored = one(&router, "PUT", &path, &[&content_type], b"entry");
    assert_eq!(stored.status, 200);
    let hit = one(&router, "GET", &path, &["Authorization: Basic dTpw"], b"");
    assert_eq!((hit.status, hit.body.as_slice()), (200, &b"entry"[..]));
    assert_eq!(hit.header("content-type"), Some(GRADLE_TYPE));
    let head = one(&router, "HEAD", &path, &[], b"");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("5"));
}

#[test]
fn gradle_refuses_an_entry_over_max_blob_size_before_its_body() {
    let (router, _dir) = local_router(HttpOptions::default());
    let path = format!("/cache/{GRADLE_KEY}");
    // Only the head: the answer must come without the body ever being sent.
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        (1u64 << 20) + 1
    );
    let responses = exchange(&router, head.into_bytes());
    assert_eq!(responses[0].status, 413, "{responses:?}");
    assert_eq!(one(&router, "GET", &path, &[], b"").status, 404);
}

#[test]
fn bad_keys_short_bodies_and_unknown_methods_store_nothing() {
    let (router, _dir) = local_router(HttpOptions::default());
    let bad_keys = [
        "/cache/a%2Fb",
        "/cache/x/y",
        "/ccache/a/b/c",
        "/ccache/../etc",
        "/v8/artifacts/a%20b?slug=t",
    ];
    for path in bad_keys {
        let answer = one(&router, "PUT", path, &[], b"x");
        assert_eq!(answer.status, 400, "{path}: {answer:?}");
    }
    // Nx fails a task on a PUT answer other than 200/403/409 and a GET other than 200/404.
    assert_eq!(one(&router, "PUT", "/v1/cache/..", &[], b"x").status, 403);
    assert_eq!(one(&router, "GET", "/v1/cache/a%2Fb", &[], b"").status, 404);
    // A body shorter than its Content-Length: the client went away mid-upload.
    for path in [
        format!("/cache/{GRADLE_KEY}"),
        "/v1/cache/42".to_string(),
        "/ccache/ab/cdef".to_string(),
        "/v8/artifacts/abcdef0123456789?slug=t".to_string(),
    ] {
        let mut short =
            format!("PUT {path} HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n").into_bytes();
        short.extend_from_slice(b"abc");
        let _ = exchange(&router, short);
        assert_eq!(
            one(&router, "GET", &path, &[], b"").status,
            404,
            "{path}: a truncated upload must not be stored"
        );
    }
    for (method, path) in [
        ("DELETE", format!("/cache/{GRADLE_KEY}")),
        ("POST", "/ccache/ab/cdef".to_string()),
        ("PATCH", "/v1/cache/42".to_string()),
        (
            "DELETE",
            "/v8/artifacts/abcdef0123456789?slug=t".to_string(),
        ),
    ] {
        let answer = one(&router, method, &path, &[], b"");
        assert_eq!(answer.status, 405, "{method} {path}: {answer:?}");
        assert!(answer.header("allow").is_some_and(|a| a.contains("GET")));
    }
}

#[test]
fn nx_entries_are_immutable_and_refusals_take_shapes_nx_tolerates() {
    let (router, _dir) = local_router(HttpOptions::default());
    let bearer = "Authorization: Bearer t";
    let first = one(
        &router,
        "PUT",
        "/v1/cache/3909283978823017987",
        &[bearer],
        b"first",
    );
    assert_eq!(first.status, 200);
    let second = one(
        &router,
        "PUT",
        "/v1/cache/3909283978823017987",
        &[bearer],
        b"other",
    );
    assert_eq!(second.status, 409);
    let hit = one(
        &router,
        "GET",
        "/v1/cache/3909283978823017987",
        &[bearer],
        b"",
    );
    assert_eq!(hit.body, b"first", "the first entry stays");
    assert_eq!(
        one(&router, "GET", "/v1/cache/1", &[bearer], b"").status,
        404
    );
    // Over max_blob_size: 413 anywhere else, 403 for Nx (which fails a task on 413). The
    // body is read before the 403 (Nx retries on a reset), so the connection serves the next
    // request and nothing is stored.
    let mut input = request("PUT", "/v1/cache/77", &[], &vec![b'x'; (1 << 20) + 1]);
    input.extend(request("GET", "/v1/cache/77", &[], b""));
    let too_large = exchange(&router, input);
    assert_eq!(too_large.len(), 2, "{too_large:?}");
    assert_eq!(too_large[0].status, 403, "{too_large:?}");
    assert_eq!(too_large[0].header("content-type"), Some("text/plain"));
    assert_eq!(too_large[1].status, 404);
    // A chunked upload stores like any other.
    let chunked =
        b"PUT /v1/cache/5 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
            .to_vec();
    assert_eq!(exchange(&router, chunked)[0].status, 200);
    assert_eq!(one(&router, "GET", "/v1/cache/5", &[], b"").body, b"abc");
}

#[test]
fn turbo_teams_are_namespaces_and_artifact_headers_come_back_as_stored() {
    let (router, _dir) = local_router(HttpOptions::default());
    let status = one(&router, "GET", "/v8/artifacts/status?slug=a", &[], b"");
    assert_eq!(status.body, b"{\"status\":\"enabled\"}");
    let path_a = "/v8/artifacts/0123456789abcdef?slug=team-a";
    let headers = [
        "Content-Type: application/octet-stream",
        "x-artifact-duration: 1234",
        "x-artifact-tag: c2lnbmF0dXJl",
    ];
    assert_eq!(
        one(&router, "PUT", path_a, &headers, b"tar.zst").status,
        200
    );
    let hit = one(&router, "GET", path_a, &[], b"");
    assert_eq!(hit.body, b"tar.zst");
    assert_eq!(hit.header("x-artifact-duration"), Some("1234"));
    assert_eq!(hit.header("x-artifact-tag"), Some("c2lnbmF0dXJl"));
    let head = one(&router, "HEAD", path_a, &[], b"");
    assert_eq!(head.header("x-artifact-duration"), Some("1234"));
    // Another team, by slug or by teamId, never sees team-a's entry.
    for other in ["slug=team-b", "teamId=team_b"] {
        let path = format!("/v8/artifacts/0123456789abcdef?{other}");
        assert_eq!(one(&router, "GET", &path, &[], b"").status, 404, "{other}");
    }
    let by_id = "/v8/artifacts/0123456789abcdef?teamId=team-a";
    assert_eq!(one(&router, "GET", by_id, &[], b"").status, 200);
    let events = one(
        &router,
        "POST",
        "/v8/artifacts/events?slug=team-a",
        &["Content-Type: application/json"],
        br#"[{"sessionId":"s","source":"REMOTE","event":"HIT","hash":"0123456789abcdef","duration":3}]"#,
    );
    assert_eq!(events.status, 200);
    let no_team = one(&router, "GET", "/v8/artifacts/0123456789abcdef", &[], b"");
    assert_eq!(no_team.status, 400);
    assert_eq!(no_team.header("content-type"), Some("application/json"));
    let message = String::from_utf8_lossy(&no_team.body);
    assert!(message.starts_with("{\"error\":{\"code\":"), "{message}");
    assert!(message.contains("TURBO_TEAM"), "{message}");
}

#[test]
fn ccache_overwrites_and_deletes() {
    let (router, _dir) = local_router(HttpOptions::default());
    let path = "/ccache/e5/2be5853t2t2a38ek9iso1op9hpr0k6k";
    assert_eq!(one(&router, "PUT", path, &[], b"manifest v1").status, 200);
    assert_eq!(one(&router, "PUT", path, &[], b"manifest v2").status, 200);
    assert_eq!(one(&router, "GET", path, &[], b"").body, b"manifest v2");
    assert_eq!(one(&router, "DELETE", path, &[], b"").status, 200);
    assert_eq!(one(&router, "GET", path, &[], b"").status, 404);
    assert_eq!(one(&router, "DELETE", path, &[], b"").status, 404);
    // Layouts name different entries: flat and subdirs do not alias.
    assert_eq!(
        one(&router, "PUT", "/ccache/abcdef", &[], b"flat").status,
        200
    );
    assert_eq!(one(&router, "GET", "/ccache/ab/cdef", &[], b"").status, 404);
}

#[test]
fn front_ends_share_no_entries() {
    let (router, _dir) = local_router(HttpOptions::default());
    let key = "abcdef0123456789";
    let mut setup = request("PUT", &format!("/cache/{key}"), &[], b"gradle");
    setup.extend(request("PUT", &format!("/ccache/{key}"), &[], b"ccache"));
    assert!(exchange(&router, setup).iter().all(|r| r.status == 200));
    assert_eq!(
        one(&router, "GET", &format!("/cache/{key}"), &[], b"").body,
        b"gradle"
    );
    assert_eq!(
        one(&router, "GET", &format!("/ccache/{key}"), &[], b"").body,
        b"ccache"
    );
    for path in [
        format!("/v1/cache/{key}"),
        format!("/v8/artifacts/{key}?slug=t"),
    ] {
        assert_eq!(one(&router, "GET", &path, &[], b"").status, 404, "{path}");
    }
}

#[test]
fn a_configured_mount_moves_a_front_end_into_its_own_namespace() {
    use super::mounts::MountTable;
    use crate::config::mount::{MountConfig, MountProtocol, BUILT_IN_MOUNTS};
    let mut configured: Vec<MountConfig> = BUILT_IN_MOUNTS
        .iter()
        .map(|&(prefix, protocol)| MountConfig {
            prefix: prefix.into(),
            protocol,
            namespace: None,
        })
        .collect();
    configured.push(MountConfig {
        prefix: "/ci/gradle/".into(),
        protocol: MountProtocol::Gradle,
        namespace: Some("gradle-ci".into()),
    });
    let options = HttpOptions {
        mounts: MountTable::new(&configured),
        ..HttpOptions::default()
    };
    let (router, _dir) = local_router(options);
    let moved = format!("/ci/gradle/{GRADLE_KEY}");
    assert_eq!(one(&router, "PUT", &moved, &[], b"ci").status, 200);
    assert_eq!(one(&router, "GET", &moved, &[], b"").body, b"ci");
    let default = format!("/cache/{GRADLE_KEY}");
    assert_eq!(one(&router, "GET", &default, &[], b"").status, 404);
    let index = one(&router, "GET", "/", &[], b"");
    assert!(String::from_utf8_lossy(&index.body).contains("/ci/gradle/"));
}
