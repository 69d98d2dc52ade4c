//! The seam between the load loop and a wire protocol: [`Protocol`] opens a connection and
//! performs one [`Operation`] on it, checking the answer.
//!
//! Implemented here: [`HttpProtocol`] over our HTTP/1.1 client, with three path schemes —
//! Bazel HTTP CAS (`/cas/<sha256>`), Bazel HTTP action-level (`/ac/` + `/cas/`), and a URL
//! template for peers such as nginx WebDAV.
//!
//! Bazel gRPC (ByteStream Read/Write, FindMissingBlobs) is the second implementation of this
//! trait, in [`crate::grpc_protocol`]; S3 (SigV4-signed HTTP/1.1) fits as a third
//! `PathScheme`-like implementation over [`Http1Connection`].

use crate::http1_client::Http1Connection;
use crate::stats::{ErrorKind, RequestError};
use crate::workload::{hex, KeySpace, Operation};
use std::net::SocketAddr;
use std::sync::Arc;

/// A request target `before + hex(key) + after`, written into the send buffer as is; its
/// `Display` (the path) is only built for error messages.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub before: &'a str,
    pub key: &'a [u8; 32],
    pub after: &'a str,
}

impl Target<'_> {
    pub fn write_to(&self, out: &mut Vec<u8>) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        out.extend_from_slice(self.before.as_bytes());
        for &b in self.key {
            out.push(DIGITS[(b >> 4) as usize]);
            out.push(DIGITS[(b & 15) as usize]);
        }
        out.extend_from_slice(self.after.as_bytes());
    }
}

impl std::fmt::Display for Target<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}{}", self.before, hex(self.key), self.after)
    }
}

/// What a successful operation moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Body bytes sent plus received.
    pub body_bytes: u64,
    /// The server will close the connection; open a new one before the next operation.
    pub reconnect: bool,
}

/// A wire protocol the load generator can drive. Implementations are cloned into every load
/// thread and used from that thread only; their futures need not be `Send` (monoio is
/// thread-per-core), which is why the trait uses plain `async fn`.
#[allow(async_fn_in_trait)]
pub trait Protocol: Clone + Send + 'static {
    type Connection: 'static;

    /// A short name for reports, e.g. `bazel-http`.
    fn name(&self) -> String;

    async fn connect(&self, address: SocketAddr) -> Result<Self::Connection, RequestError>;

    /// Performs `operation` and checks the response completely (status and every body byte). On
    /// an error the caller discards the connection.
    async fn execute(
        &self,
        connection: &mut Self::Connection,
        operation: &Operation,
    ) -> Result<Outcome, RequestError>;
}

/// Where an object lives on an HTTP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathScheme {
    /// Bazel HTTP cache, content-addressed blobs only: `GET/PUT {prefix}/cas/<sha256>`.
    BazelCas { prefix: String },
    /// Bazel HTTP cache, whole actions: a read is `GET /ac/<action>` followed by `GET /cas/` of
    /// the output it names; a write uploads the output blob, then the action result.
    BazelAction { prefix: String },
    /// Any server: the template with `{key}` replaced by the object's SHA-256 (hex).
    Template(String),
}

impl PathScheme {
    pub fn parse(
        protocol: &str,
        prefix: &str,
        template: Option<&str>,
    ) -> Result<PathScheme, String> {
        match (protocol, template) {
            ("bazel", None) | ("bazel-cas", None) => Ok(PathScheme::BazelCas { prefix: prefix.to_string() }),
            ("bazel-ac", None) => Ok(PathScheme::BazelAction { prefix: prefix.to_string() }),
            ("template", Some(t)) if t.starts_with('/') && t.contains("{key}") => Ok(PathScheme::Template(t.to_string())),
            ("template", _) => Err("--protocol template needs --path-template starting with `/` and containing `{key}`".into()),
            (_, Some(_)) => Err("--path-template only applies to --protocol template".into()),
            ("grpc" | "grpc-find-missing", None) => Err("--protocol grpc is served by grpc_protocol::GrpcProtocol, not by a path scheme".into()),
            (other, None) => Err(format!("unknown --protocol `{other}` (bazel, bazel-ac, template)")),
        }
    }
}

/// HTTP/1.1 protocol: Bazel HTTP cache or a URL template. Every GET of a stored object must
/// return 200 with exactly its bytes, every GET of a never-written key must return 404, every PUT
/// must return 200, 201 or 204.
#[derive(Clone)]
pub struct HttpProtocol {
    keys: Arc<KeySpace>,
    scheme: PathScheme,
    host: String,
    /// Request targets are `before + sha256 hex + after`, precomputed so that the hot path
    /// writes the target straight into the send buffer without allocating.
    cas_before: String,
    cas_after: String,
    ac_before: String,
}

impl HttpProtocol {
    pub fn new(keys: Arc<KeySpace>, scheme: PathScheme, host: String) -> HttpProtocol {
        let (cas_before, cas_after, ac_before) = match &scheme {
            PathScheme::BazelCas { prefix } | PathScheme::BazelAction { prefix } => (
                format!("{prefix}/cas/"),
                String::new(),
                format!("{prefix}/ac/"),
            ),
            PathScheme::Template(template) => {
                let (before, after) = template
                    .split_once("{key}")
                    .expect("PathScheme::parse checked {key}");
                (
                    before.to_string(),
                    after.replace("{key}", ""),
                    before.to_string(),
                )
            }
        };
        HttpProtocol {
            keys,
            scheme,
            host,
            cas_before,
            cas_after,
            ac_before,
        }
    }

    fn cas_target<'a>(&'a self, key: &'a [u8; 32]) -> Target<'a> {
        Target {
            before: &self.cas_before,
            key,
            after: &self.cas_after,
        }
    }

    fn ac_target<'a>(&'a self, key: &'a [u8; 32]) -> Target<'a> {
        Target {
            before: &self.ac_before,
            key,
            after: "",
        }
    }

    async fn put_object(
        &self,
        connection: &mut Http1Connection,
        index: usize,
    ) -> Result<Outcome, RequestError> {
        let path = self.cas_target(self.keys.digest(index));
        let prefix = self.keys.prefix(index);
        let response = connection
            .request(
                "PUT",
                &path,
                &self.host,
                &prefix,
                Some(self.keys.tail(index)),
            )
            .await?;
        expect_put_status(response.status, &path)?;
        Ok(Outcome {
            body_bytes: self.keys.size(index) as u64,
            reconnect: response.connection_close,
        })
    }

    async fn get_object(
        &self,
        connection: &mut Http1Connection,
        index: usize,
    ) -> Result<Outcome, RequestError> {
        let path = self.cas_target(self.keys.digest(index));
        let response = connection
            .request("GET", &path, &self.host, &[], None)
            .await?;
        expect_status(response.status, 200, &path)?;
        if !self.keys.body_matches(index, connection.body()) {
            return Err(body_mismatch(
                &path,
                self.keys.size(index),
                connection.body(),
            ));
        }
        Ok(Outcome {
            body_bytes: response.body_len() as u64,
            reconnect: response.connection_close,
        })
    }

    async fn get_missing(
        &self,
        connection: &mut Http1Connection,
        key: &[u8; 32],
    ) -> Result<Outcome, RequestError> {
        let path = match &self.scheme {
            PathScheme::BazelAction { .. } => self.ac_target(key),
            _ => self.cas_target(key),
        };
        let response = connection
            .request("GET", &path, &self.host, &[], None)
            .await?;
        expect_status(response.status, 404, &path)?;
        Ok(Outcome {
            body_bytes: 0,
            reconnect: response.connection_close,
        })
    }

    async fn put_action(
        &self,
        connection: &mut Http1Connection,
        index: usize,
    ) -> Result<Outcome, RequestError> {
        let blob = self.put_object(connection, index).await?;
        if blob.reconnect {
            return Err(RequestError::new(
                ErrorKind::Closed,
                "server closed between the CAS and AC upload",
            ));
        }
        let action = action_key(index);
        let path = self.ac_target(&action);
        let result = action_result(&self.keys, index);
        let response = connection
            .request("PUT", &path, &self.host, &result, None)
            .await?;
        expect_put_status(response.status, &path)?;
        Ok(Outcome {
            body_bytes: blob.body_bytes + result.len() as u64,
            reconnect: response.connection_close,
        })
    }

    async fn get_action(
        &self,
        connection: &mut Http1Connection,
        index: usize,
    ) -> Result<Outcome, RequestError> {
        let action = action_key(index);
        let path = self.ac_target(&action);
        let response = connection
            .request("GET", &path, &self.host, &[], None)
            .await?;
        expect_status(response.status, 200, &path)?;
        let expected = action_result(&self.keys, index);
        if connection.body() != expected.as_slice() {
            return Err(body_mismatch(&path, expected.len(), connection.body()));
        }
        if response.connection_close {
            return Err(RequestError::new(
                ErrorKind::Closed,
                "server closed between the AC and CAS read",
            ));
        }
        let blob = self.get_object(connection, index).await?;
        Ok(Outcome {
            body_bytes: blob.body_bytes + expected.len() as u64,
            reconnect: blob.reconnect,
        })
    }
}

impl Protocol for HttpProtocol {
    type Connection = Http1Connection;

    fn name(&self) -> String {
        match &self.scheme {
            PathScheme::BazelCas { .. } => "bazel-http-cas".to_string(),
            PathScheme::BazelAction { .. } => "bazel-http-action".to_string(),
            PathScheme::Template(t) => format!("http-template {t}"),
        }
    }

    async fn connect(&self, address: SocketAddr) -> Result<Http1Connection, RequestError> {
        Http1Connection::connect(address).await
    }

    async fn execute(
        &self,
        connection: &mut Http1Connection,
        operation: &Operation,
    ) -> Result<Outcome, RequestError> {
        match (operation, &self.scheme) {
            (Operation::GetMissing { key }, _) => self.get_missing(connection, key).await,
            (&Operation::Get { index }, PathScheme::BazelAction { .. }) => {
                self.get_action(connection, index).await
            }
            (&Operation::Put { index }, PathScheme::BazelAction { .. }) => {
                self.put_action(connection, index).await
            }
            (&Operation::Get { index }, _) => self.get_object(connection, index).await,
            (&Operation::Put { index }, _) => self.put_object(connection, index).await,
        }
    }
}

fn expect_status(got: u16, wanted: u16, path: &Target) -> Result<(), RequestError> {
    if got == wanted {
        Ok(())
    } else {
        Err(RequestError::new(
            ErrorKind::Status,
            format!("{path}: status {got}, expected {wanted}"),
        ))
    }
}

fn expect_put_status(got: u16, path: &Target) -> Result<(), RequestError> {
    if matches!(got, 200 | 201 | 204) {
        Ok(())
    } else {
        Err(RequestError::new(
            ErrorKind::Status,
            format!("PUT {path}: status {got}, expected 200/201/204"),
        ))
    }
}

fn body_mismatch(path: &Target, expected_len: usize, got: &[u8]) -> RequestError {
    let detail = if got.len() != expected_len {
        format!(
            "{path}: body of {} bytes, expected {expected_len}",
            got.len()
        )
    } else {
        format!("{path}: body bytes differ from what was stored")
    };
    RequestError::new(ErrorKind::Body, detail)
}

/// The action key of object `index`'s action: SHA-256 of `action-<index>` (an opaque digest,
/// as Bazel's action digests are to the cache).
pub fn action_key(index: usize) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(format!("action-{index}").as_bytes()).into()
}

/// A serialized REAPI `ActionResult` with one output file, object `index`:
/// `ActionResult { output_files(2): [OutputFile { path(1): "out/<index>",
/// digest(2): Digest { hash(1): <sha256 hex>, size_bytes(2): <size> } }] }`.
/// Hand-encoded protobuf (field tags noted), so an action cache that checks that the outputs an
/// entry references are present sees a real, resolvable reference.
pub fn action_result(keys: &KeySpace, index: usize) -> Vec<u8> {
    let mut digest = Vec::with_capacity(80);
    put_bytes_field(&mut digest, 1, keys.cas_hex(index).as_bytes());
    put_varint_field(&mut digest, 2, keys.size(index) as u64);
    let mut output_file = Vec::with_capacity(100);
    put_bytes_field(&mut output_file, 1, format!("out/{index}").as_bytes());
    put_bytes_field(&mut output_file, 2, &digest);
    let mut result = Vec::with_capacity(110);
    put_bytes_field(&mut result, 2, &output_file);
    result
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_varint_field(out: &mut Vec<u8>, field: u32, value: u64) {
    put_varint(out, (field as u64) << 3);
    put_varint(out, value);
}

fn put_bytes_field(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_varint(out, ((field as u64) << 3) | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::SizeDistribution;

    #[test]
    fn paths_follow_the_scheme() {
        let keys = Arc::new(KeySpace::generate(1, &SizeDistribution::Fixed(10), 1).unwrap());
        let key = [0xab; 32];
        let digest = "ab".repeat(32);
        let target = |scheme: PathScheme, ac: bool| {
            let protocol = HttpProtocol::new(keys.clone(), scheme, "h".into());
            let target = if ac {
                protocol.ac_target(&key)
            } else {
                protocol.cas_target(&key)
            };
            let mut written = Vec::new();
            target.write_to(&mut written);
            assert_eq!(String::from_utf8(written).unwrap(), target.to_string());
            target.to_string()
        };
        let bazel = || PathScheme::parse("bazel", "", None).unwrap();
        assert_eq!(target(bazel(), false), format!("/cas/{digest}"));
        assert_eq!(target(bazel(), true), format!("/ac/{digest}"));
        let instance = PathScheme::parse("bazel-ac", "/inst", None).unwrap();
        assert_eq!(target(instance, true), format!("/inst/ac/{digest}"));
        let template = PathScheme::parse("template", "", Some("/dav/{key}.bin")).unwrap();
        assert_eq!(target(template, false), format!("/dav/{digest}.bin"));
        assert!(PathScheme::parse("template", "", Some("/no-key")).is_err());
        assert!(PathScheme::parse("template", "", None).is_err());
        assert!(PathScheme::parse("grpc", "", None)
            .unwrap_err()
            .contains("GrpcProtocol"));
    }

    #[test]
    fn action_result_is_the_expected_protobuf() {
        let keys = KeySpace::generate(2, &SizeDistribution::Fixed(300), 1).unwrap();
        let encoded = action_result(&keys, 1);
        let hash = keys.cas_hex(1);
        // Digest = 0x0a 0x40 <64 hex> 0x10 <varint 300 = 0xac 0x02>  (68 bytes)
        let mut digest = vec![0x0a, 0x40];
        digest.extend_from_slice(hash.as_bytes());
        digest.extend_from_slice(&[0x10, 0xac, 0x02]);
        // OutputFile = 0x0a 0x05 "out/1" 0x12 <len 69> <digest>
        let mut file = vec![0x0a, 0x05];
        file.extend_from_slice(b"out/1");
        file.push(0x12);
        file.push(digest.len() as u8);
        file.extend_from_slice(&digest);
        let mut expected = vec![0x12, file.len() as u8];
        expected.extend_from_slice(&file);
        assert_eq!(encoded, expected);
        assert_ne!(action_key(0), action_key(1));
    }
}
