//! The audit log (`audit_log = PATH`): one JSON line per write and per refusal.
//!
//! ```text
//! {"time":1767225600.123,"subject":"ci-main","jti":"9f…","remote":"10.0.0.7:53124","protocol":"bazel-http",
//!  "namespace":"bazel/main","operation":"write","key":"5f4e…","bytes":4096,"status":"stored"}
//! {"time":…,"subject":"anonymous","jti":null,"remote":"10.0.0.9:40112","protocol":"nx","namespace":"nx",
//!  "operation":"read","key":"…","bytes":null,"status":"refused","reason":"missing",
//!  "message":"a bearer token is required to read namespace \"nx\""}
//! ```
//!
//! `key` is the store key id in hex (the client's name is hashed with its namespace). Every
//! executor appends to the same file opened with `O_APPEND`; each line is written with one
//! `write`, which the kernel appends whole. `remote` is the peer's `IP:PORT` as the connection
//! was accepted (a proxy in front shows as itself), `null` for requests the server makes itself.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::protocols::backend::RequestContext;
use crate::store::{KeyId, StoreError};

/// Longest audit line written, in bytes; longer fields (a subject or message near the token
/// size limit) are cut so that one line stays one `write`.
pub const AUDIT_LINE_BYTES_MAX: usize = 4096;

/// The audit file, shared by every executor (`Arc`; `&File` writes without a lock).
pub struct AuditLog {
    file: File,
}

/// What one audit line records besides the request context.
pub struct Entry<'a> {
    pub subject: &'a str,
    pub jti: Option<&'a str>,
    pub operation: &'static str,
    pub key: Option<&'a KeyId>,
    pub bytes: Option<u64>,
    pub outcome: Result<&'static str, &'a StoreError>,
}

fn hex(id: &KeyId) -> String {
    crate::store::digest::to_hex(&id.0)
}

fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl AuditLog {
    pub fn open(path: &Path) -> std::io::Result<AuditLog> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(AuditLog { file })
    }

    /// Appends one line; a failed write is logged, never fails the request.
    pub fn record(&self, ctx: &RequestContext, entry: &Entry<'_>) {
        let time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| (d.as_millis() as f64) / 1000.0);
        let field_max = AUDIT_LINE_BYTES_MAX / 8;
        let mut line = serde_json::json!({
            "time": time,
            "subject": cut(entry.subject, field_max),
            "jti": entry.jti.map(|j| cut(j, field_max)),
            "remote": ctx.remote.map(|addr| addr.to_string()),
            "protocol": ctx.protocol.as_str(),
            "namespace": cut(ctx.namespace.as_str(), field_max),
            "operation": entry.operation,
            "key": entry.key.map(hex),
            "bytes": entry.bytes,
        });
        match entry.outcome {
            Ok(status) => line["status"] = status.into(),
            Err(error) => {
                line["status"] = "refused".into();
                line["reason"] = match error {
                    StoreError::Unauthenticated { reason, .. } => (*reason).into(),
                    StoreError::PermissionDenied { .. } => "scope".into(),
                    StoreError::RateLimited { .. } => "rate_limited".into(),
                    _ => "store".into(),
                };
                line["message"] = cut(&error.to_string(), field_max).into();
            }
        }
        let mut text = line.to_string();
        text.push('\n');
        if let Err(error) = (&self.file).write_all(text.as_bytes()) {
            tracing::warn!(%error, "cannot append to the audit log");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::backend::{Namespace, Protocol};

    #[test]
    fn lines_are_json_with_the_fields_an_auditor_needs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = AuditLog::open(&path).unwrap();
        let ctx = RequestContext::new(Namespace::new("bazel/main"), Protocol::BazelHttp)
            .with_remote(Some("192.0.2.7:40000".parse().unwrap()));
        let id = KeyId([0xab; 32]);
        log.record(
            &ctx,
            &Entry {
                subject: "ci-main",
                jti: Some("j1"),
                operation: "write",
                key: Some(&id),
                bytes: Some(4096),
                outcome: Ok("stored"),
            },
        );
        let refused = StoreError::PermissionDenied {
            subject: "pr".into(),
            access: "write",
            namespace: "bazel/main".into(),
        };
        log.record(
            &ctx,
            &Entry {
                subject: "pr",
                jti: None,
                operation: "write",
                key: None,
                bytes: None,
                outcome: Err(&refused),
            },
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["subject"], "ci-main");
        assert_eq!(lines[0]["namespace"], "bazel/main");
        assert_eq!(lines[0]["protocol"], "bazel-http");
        assert_eq!(lines[0]["remote"], "192.0.2.7:40000");
        assert_eq!(lines[0]["key"], "ab".repeat(32));
        assert_eq!(lines[0]["bytes"], 4096);
        assert_eq!(lines[0]["status"], "stored");
        assert_eq!(lines[1]["status"], "refused");
        assert_eq!(lines[1]["reason"], "scope");
    }
}
