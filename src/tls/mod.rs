//! TLS on the client ports, beside plaintext: rustls over the glommio socket (`futures-rustls`,
//! no tokio runtime).
//!
//! ```text
//! accept ─► first byte 0x16 (a TLS handshake record: ClientHello)? ─ no ─► plaintext as before
//!                │                                                        (426 if tls_required)
//!                ▼ yes
//!           handshake (header_read_timeout) ─ fails ─► closed, counted
//!                │ ALPN "http/1.1" offered, or none ─► HTTP/1.1 layer (S3 too)
//!                │ only "h2" offered (gRPC clients) ─► gRPC layer
//!                └ verified client certificate? its subject ─► Credential::ClientCert
//! ```
//!
//! Principal types: [`SharedTls`], the process's server configuration (certificate, key,
//! client CAs), swapped whole on SIGHUP by [`reload`]; [`load`] builds one from the settings.
//! Connections already open keep the configuration they shook hands with; new ones get the new.
//!
//! Why the first byte: a TLS connection starts with a handshake record (content type 22, RFC 8446
//! §5.1), and no HTTP/1.1 method or the h2c preface starts with byte 0x16, so one peeked byte
//! tells them apart without consuming anything from the plaintext stream.

pub mod refusal;
pub mod reload;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use crate::config::TlsConfig;

/// The first byte of every TLS connection: the content type of a handshake record (RFC 8446
/// §5.1, `handshake(22)`), which carries the ClientHello.
pub const HANDSHAKE_RECORD_TYPE: u8 = 0x16;

/// ALPN id of HTTP/2 (RFC 7301; RFC 9113 §3.2): the gRPC layer.
pub const ALPN_HTTP2: &[u8] = b"h2";
/// ALPN id of HTTP/1.1, preferred when offered; a client that offers no ALPN also gets
/// HTTP/1.1 (and may still send the h2c preface inside TLS).
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// Certificates at most in `tls_cert` (a chain is leaf plus a few intermediates) and in
/// `tls_client_ca` (a bundle). Reading stops there, so a wrong path (a whole trust store) is
/// refused with a message rather than loaded.
pub const PEM_CERTIFICATES_MAX: usize = 256;

/// The process's TLS server configuration, shared by every executor and replaced whole on
/// reload. A connection takes a snapshot (one uncontended read lock) when its first byte says
/// TLS; plaintext connections never touch it.
#[derive(Debug)]
pub struct SharedTls {
    current: RwLock<Arc<ServerConfig>>,
    /// `tls_required`: plaintext gets a refusal.
    pub required: bool,
}

impl SharedTls {
    pub fn new(config: ServerConfig, required: bool) -> Self {
        SharedTls {
            current: RwLock::new(Arc::new(config)),
            required,
        }
    }

    /// The configuration new connections use.
    pub fn snapshot(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the configuration for every later connection.
    pub fn replace(&self, config: ServerConfig) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
    }
}

/// A TLS setting that could not be used: the setting and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError {
    pub setting: &'static str,
    pub message: String,
}

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "setting `{}`: {}", self.setting, self.message)
    }
}

/// Loads the shared configuration if TLS is on.
pub fn load_shared(config: &TlsConfig) -> Result<Option<Arc<SharedTls>>, TlsError> {
    if !config.enabled() {
        return Ok(None);
    }
    Ok(Some(Arc::new(SharedTls::new(
        load(config)?,
        config.required,
    ))))
}

/// Reads the certificate chain, key and client CAs of `config` (which must be
/// [`TlsConfig::enabled`]) and builds the server configuration: TLS 1.2 and 1.3, ALPN `h2` and
/// `http/1.1`, client certificates verified against `tls_client_ca` when set but not required
/// (a client without one may use a token).
pub fn load(config: &TlsConfig) -> Result<ServerConfig, TlsError> {
    let (Some(cert_path), Some(key_path)) = (&config.cert, &config.key) else {
        return Err(TlsError {
            setting: "tls_cert",
            message: "tls_cert and tls_key are both needed".into(),
        });
    };
    let chain = certificates("tls_cert", cert_path)?;
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| TlsError {
        setting: "tls_key",
        message: format!(
            "cannot read a PEM private key from {}: {e} (PKCS#8, PKCS#1 RSA or SEC1 EC)",
            key_path.display()
        ),
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError {
            setting: "tls_cert",
            message: format!("the TLS library refused its own defaults: {e}"),
        })?;
    let builder = match &config.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca_path) => {
            let mut roots = RootCertStore::empty();
            for certificate in certificates("tls_client_ca", ca_path)? {
                roots.add(certificate).map_err(|e| TlsError {
                    setting: "tls_client_ca",
                    message: format!("{}: not a usable CA certificate: {e}", ca_path.display()),
                })?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .allow_unauthenticated()
                    .build()
                    .map_err(|e| TlsError {
                        setting: "tls_client_ca",
                        message: format!("{}: {e}", ca_path.display()),
                    })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut server = builder.with_single_cert(chain, key).map_err(|e| TlsError {
        setting: "tls_key",
        message: format!(
            "{} does not fit the certificate in {}: {e}",
            key_path.display(),
            cert_path.display()
        ),
    })?;
    // Server preference (rustls takes the first of ours the client offers): HTTP/1.1 first,
    // so a client offering both (curl, a browser on the status page) gets the HTTP front-ends,
    // which speak only HTTP/1.1, and gRPC clients, which offer only `h2`, get HTTP/2.
    server.alpn_protocols = vec![ALPN_HTTP1.to_vec(), ALPN_HTTP2.to_vec()];
    Ok(server)
}

/// Every certificate in the PEM file at `path` (at least one, at most
/// [`PEM_CERTIFICATES_MAX`]).
fn certificates(
    setting: &'static str,
    path: &std::path::Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let error = |message: String| TlsError { setting, message };
    let iter = CertificateDer::pem_file_iter(path)
        .map_err(|e| error(format!("cannot read {}: {e}", path.display())))?;
    let mut found = Vec::new();
    for certificate in iter {
        let certificate = certificate
            .map_err(|e| error(format!("{}: not PEM certificates: {e}", path.display())))?;
        if found.len() == PEM_CERTIFICATES_MAX {
            return Err(error(format!(
                "{}: more than {PEM_CERTIFICATES_MAX} certificates",
                path.display()
            )));
        }
        found.push(certificate);
    }
    if found.is_empty() {
        return Err(error(format!(
            "{}: no `BEGIN CERTIFICATE` block",
            path.display()
        )));
    }
    Ok(found)
}

/// The subject of a verified client certificate (the leaf of `peer_certificates`), in the RFC
/// 4514 spelling `[[auth.client_cert]]` entries are normalised to. `None` without one (or if the
/// verifier passed something that does not parse, which it does not).
pub fn client_subject(connection: &rustls::ServerConnection) -> Option<String> {
    use x509_cert::der::Decode;
    let leaf = connection.peer_certificates()?.first()?;
    let certificate = x509_cert::Certificate::from_der(leaf.as_ref()).ok()?;
    Some(certificate.tbs_certificate().subject().to_string())
}

/// Process-wide TLS counters for `/metrics`.
pub struct TlsCounters {
    /// Handshakes completed.
    pub handshakes: AtomicU64,
    /// Handshakes that failed or timed out (a scanner, a client distrusting the certificate).
    pub handshake_failures: AtomicU64,
    /// Plaintext connections refused under `tls_required`.
    pub plaintext_refused: AtomicU64,
}

/// The counters of this process.
pub static COUNTERS: TlsCounters = TlsCounters {
    handshakes: AtomicU64::new(0),
    handshake_failures: AtomicU64::new(0),
    plaintext_refused: AtomicU64::new(0),
};

impl TlsCounters {
    /// `(name, help, value)` of each counter.
    pub fn lines(&self) -> [(&'static str, &'static str, u64); 3] {
        [
            (
                "tessera_tls_handshakes_total",
                "TLS handshakes completed.",
                self.handshakes.load(Ordering::Relaxed),
            ),
            (
                "tessera_tls_handshake_failures_total",
                "TLS handshakes that failed or timed out.",
                self.handshake_failures.load(Ordering::Relaxed),
            ),
            (
                "tessera_tls_plaintext_refused_total",
                "Plaintext connections refused because tls_required is set.",
                self.plaintext_refused.load(Ordering::Relaxed),
            ),
        ]
    }
}
