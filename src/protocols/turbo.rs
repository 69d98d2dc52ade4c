//! Turborepo's remote cache API (`TURBO_API=http://host:port TURBO_TEAM=team TURBO_TOKEN=t`),
//! reference/clients.md §4.
//!
//! ```text
//! GET  /v8/artifacts/status           200 {"status":"enabled"}
//! GET|HEAD /v8/artifacts/<hash>?slug=TEAM|teamId=ID   200 + artifact | 404
//! PUT  /v8/artifacts/<hash>?slug=TEAM                 200 {"urls":[…]} (last writer wins)
//! POST /v8/artifacts/events?slug=TEAM                 200 (usage events; read and dropped)
//! ```
//!
//! The team selects the namespace, `turbo/TEAM` (the `slug` parameter, else `teamId`), so two
//! teams never share entries. `x-artifact-duration`, `x-artifact-tag` and the other
//! `x-artifact-*` headers are stored with the entry and sent back exactly as stored (turbo
//! reads a hit whose duration is not a number, or whose tag is missing while signing is on, as
//! a miss). Refusals carry turbo's JSON error body, `{"error":{"code":…,"message":…}}` (turbo
//! parses it on 403).
//!
//! An artifact request without a team is a 400, as in turborepo-remote-cache (the peer
//! server). turbo sends no query at all for a `TURBO_TEAMID` without the `team_` prefix, and
//! serving such requests from one shared namespace would silently pool teams that believe they
//! are separate. turbo takes the 400 for a miss on GET and warns on PUT. The status check turbo
//! sends on every run needs no team.

use std::io;

use crate::http1::{Request, Responder};
use crate::store::Kind;

use super::backend::{Backend, Namespace, Protocol};
use super::opaque_key;
use super::pipeline::{Answer, Dialect, EntryMethods, Op};
use super::router::FrontEndEnv;
use super::upload::discard_body;

/// Longest accepted team name, in bytes (Vercel slugs are at most 48 characters).
pub const TEAM_BYTES_MAX: usize = 128;

/// Largest `POST /v8/artifacts/events` body read (a run's events are a few KB); a larger
/// body is refused with 413 before it is read.
pub const EVENTS_BODY_BYTES_MAX: u64 = 1 << 20;

/// Turborepo's answer shapes.
pub struct TurboDialect;

/// turbo's error code for an HTTP status.
fn error_code(status: u16) -> &'static str {
    match status {
        400 => "bad_request",
        401 => "not_authenticated",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        413 => "payload_too_large",
        429 => "rate_limited",
        503 => "service_unavailable",
        507 => "insufficient_storage",
        _ => "internal_error",
    }
}

/// `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Dialect for TurboDialect {
    fn refusal(&self, _op: Op, status: u16, message: &str) -> Answer {
        Answer::json(
            status,
            format!(
                "{{\"error\":{{\"code\":{},\"message\":{}}}}}",
                json_string(error_code(status)),
                json_string(message)
            ),
        )
    }

    fn kept_headers(&self) -> &'static [&'static str] {
        &[
            "x-artifact-duration",
            "x-artifact-tag",
            "x-artifact-client-ci",
            "x-artifact-client-interactive",
            "x-artifact-sha",
            "x-artifact-dirty-hash",
        ]
    }
}

/// The value of query parameter `name`, percent-decoded.
fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then(|| crate::grpc::status::percent_decode_message(value.as_bytes()))
    })
}

/// The team of a request: `slug`, else `teamId`; checked like a key.
fn team_of(query: Option<&str>) -> Result<String, String> {
    let query = query.unwrap_or("");
    let team = query_param(query, "slug")
        .filter(|slug| !slug.is_empty())
        .or_else(|| query_param(query, "teamId"))
        .filter(|team| !team.is_empty())
        .ok_or(
            "no team: set TURBO_TEAM (sent as ?slug=), or a TURBO_TEAMID that starts with \
             `team_` (turbo sends no ?teamId= without that prefix)",
        )?;
    if team.len() > TEAM_BYTES_MAX {
        return Err(format!(
            "the team name is longer than {TEAM_BYTES_MAX} bytes"
        ));
    }
    opaque_key::check(&team).map_err(|e| format!("team: {e}"))?;
    Ok(team)
}

/// Serves one request under the Turborepo mount; `rest` is the path after the prefix.
pub async fn handle<B: Backend>(
    env: &FrontEndEnv<'_, B>,
    rest: &str,
    request: &mut Request<'_>,
    responder: &mut Responder<'_>,
) -> io::Result<()> {
    let op = Op::of_method(request.head.method);
    let method = request.head.method;
    if rest == "/status" && matches!(method, "GET" | "HEAD") {
        return Answer::json(200, "{\"status\":\"enabled\"}".into())
            .send(responder)
            .await;
    }
    let team = match team_of(request.head.query()) {
        Ok(team) => team,
        Err(message) => {
            return TurboDialect
                .refusal(op, 400, &message)
                .send(responder)
                .await
        }
    };
    let namespace = match env.namespace {
        Some(namespace) => Namespace::new(format!("{namespace}/{team}")),
        None => Namespace::new(format!("turbo/{team}")),
    };
    let ctx = env.context(namespace, Protocol::Turbo);
    let transfer = env.transfer(&ctx, &TurboDialect);
    if rest == "/events" && method == "POST" {
        return events(&transfer, request, responder).await;
    }
    let hash = match opaque_key::single_segment(rest) {
        Ok(hash) => hash,
        Err(message) => return transfer.refuse(responder, op, 400, &message).await,
    };
    let key = ctx.key(Kind::Blob, hash.as_bytes());
    let methods = EntryMethods {
        name: "artifacts",
        delete: false,
        if_absent: false,
    };
    transfer.serve_entry(key, methods, request, responder).await
}

/// `POST /v8/artifacts/events`: turbo's hit/miss analytics, read and dropped.
async fn events<B: Backend>(
    transfer: &super::pipeline::Transfer<'_, B, TurboDialect>,
    request: &mut Request<'_>,
    responder: &mut Responder<'_>,
) -> io::Result<()> {
    if request
        .body
        .declared_len()
        .is_some_and(|len| len > EVENTS_BODY_BYTES_MAX)
    {
        responder.close_connection();
        let message = format!("events bodies are at most {EVENTS_BODY_BYTES_MAX} bytes");
        return transfer.refuse(responder, Op::Other, 413, &message).await;
    }
    discard_body(&mut request.body).await?;
    Answer::json(200, "{}".into()).send(responder).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_team_comes_from_slug_then_team_id() {
        assert_eq!(team_of(Some("slug=acme")).unwrap(), "acme");
        assert_eq!(team_of(Some("teamId=team_1&slug=acme")).unwrap(), "acme");
        assert_eq!(team_of(Some("teamId=team_1")).unwrap(), "team_1");
        assert_eq!(team_of(Some("slug=&teamId=team_2")).unwrap(), "team_2");
        assert!(team_of(None).is_err());
        assert!(
            team_of(Some("slug=a%2Fb")).is_err(),
            "a team is one segment"
        );
    }

    #[test]
    fn refusals_are_turbo_json() {
        let answer = TurboDialect.refusal(Op::Put, 403, "read-only \"token\"");
        assert_eq!(answer.status, 403);
        assert_eq!(answer.content_type, "application/json");
        assert_eq!(
            answer.body,
            "{\"error\":{\"code\":\"forbidden\",\"message\":\"read-only \\\"token\\\"\"}}"
        );
    }
}
