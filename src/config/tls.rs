//! The TLS settings and the `[[auth.client_cert]]` table.
//!
//! ```toml
//! tls_cert = "/etc/tessera/tls/cert.pem"      # chain, leaf first
//! tls_key = "/etc/tessera/tls/key.pem"
//! tls_client_ca = "/etc/tessera/tls/ca.pem"   # optional: verify client certificates
//! tls_required = false                        # true: plaintext gets 426
//!
//! [[auth.client_cert]]                        # file-only
//! subject = "CN=ci-main,O=Example"            # RFC 4514, as `openssl x509 -subject -nameopt RFC2253`
//! read = ["bazel*"]
//! write = ["bazel/main"]
//! admin = false
//! ```
//!
//! The files are read at start and again on SIGHUP (`tls::reload`); here only their presence
//! and the relationships between the settings are checked.

use std::path::PathBuf;
use std::str::FromStr;

use serde::Deserialize;
use x509_cert::name::RdnSequence;

use super::{AuthConfig, ConfigError};

/// `[[auth.client_cert]]` entries at most. Each is a few globs; the table is searched once per
/// TLS connection (not per request), by a hash map built at start.
pub const CLIENT_CERT_ENTRIES_MAX: usize = 1024;

/// The TLS settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// `tls_cert`: PEM certificate chain, leaf first.
    pub cert: Option<PathBuf>,
    /// `tls_key`: PEM private key of the leaf.
    pub key: Option<PathBuf>,
    /// `tls_client_ca`: PEM bundle of CAs that client certificates are verified against.
    pub client_ca: Option<PathBuf>,
    /// `tls_required`: refuse plaintext.
    pub required: bool,
}

impl TlsConfig {
    /// Whether TLS is on (both files given; [`TlsConfig::check`] refuses one without the other).
    pub fn enabled(&self) -> bool {
        self.cert.is_some() && self.key.is_some()
    }

    /// The relationships: certificate and key together; `tls_required`, `tls_client_ca` and
    /// client-certificate entries only with them.
    pub fn check(&self, auth: &AuthConfig) -> Result<(), ConfigError> {
        let error = |setting: &str, message: &str| ConfigError {
            setting: setting.into(),
            message: message.into(),
        };
        match (&self.cert, &self.key) {
            (Some(_), None) => {
                return Err(error(
                    "tls_key",
                    "tls_cert is set but tls_key is not: give the certificate's private key",
                ))
            }
            (None, Some(_)) => {
                return Err(error(
                    "tls_cert",
                    "tls_key is set but tls_cert is not: give the certificate chain (PEM)",
                ))
            }
            _ => {}
        }
        if self.required && !self.enabled() {
            return Err(error(
                "tls_required",
                "tls_required needs tls_cert and tls_key (nothing could be served)",
            ));
        }
        if self.client_ca.is_some() && !self.enabled() {
            return Err(error(
                "tls_client_ca",
                "tls_client_ca needs tls_cert and tls_key (client certificates come with TLS)",
            ));
        }
        if !auth.client_certs.is_empty() && self.client_ca.is_none() {
            return Err(error(
                "auth.client_cert",
                "[[auth.client_cert]] entries need tls_client_ca: without it no client \
                 certificate is asked for or verified",
            ));
        }
        Ok(())
    }
}

/// One `[[auth.client_cert]]` entry: what a verified client certificate with this subject may
/// do, in the terms of a token's claims.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCertConfig {
    /// The certificate's subject in RFC 4514 form; stored normalised (see [`normalize_subject`]).
    pub subject: String,
    /// Namespace globs it may read.
    #[serde(default)]
    pub read: Vec<String>,
    /// Namespace globs it may write (and so read).
    #[serde(default)]
    pub write: Vec<String>,
    /// The admin endpoints (`/metrics`, `/status.json`, the admin API).
    #[serde(default)]
    pub admin: bool,
}

/// The RFC 4514 text of a distinguished name, as the server prints a certificate's subject:
/// `CN=ci,O=Example` (most specific first, short attribute names). `None` if it is not a
/// distinguished name.
pub fn normalize_subject(text: &str) -> Option<String> {
    let name = RdnSequence::from_str(text.trim()).ok()?;
    Some(name.to_string())
}

/// Parses the file's `[[auth.client_cert]]` entries.
pub fn client_certs(entries: &[toml::Value]) -> Result<Vec<ClientCertConfig>, ConfigError> {
    let error = |message: String| ConfigError {
        setting: "auth.client_cert".into(),
        message,
    };
    if entries.len() > CLIENT_CERT_ENTRIES_MAX {
        return Err(error(format!(
            "{} entries; at most {CLIENT_CERT_ENTRIES_MAX} are allowed",
            entries.len()
        )));
    }
    let mut parsed: Vec<ClientCertConfig> = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let number = i + 1;
        let mut entry: ClientCertConfig =
            entry.clone().try_into().map_err(|e: toml::de::Error| {
                error(format!(
                    "entry {number}: {} (expected subject = \"CN=…\", read = [\"GLOB\", …], \
                     write = [\"GLOB\", …], admin = BOOL)",
                    e.message()
                ))
            })?;
        let Some(subject) = normalize_subject(&entry.subject).filter(|s| !s.is_empty()) else {
            return Err(error(format!(
                "entry {number}: subject {:?} is not a distinguished name like \
                 \"CN=ci,O=Example\" (RFC 4514)",
                entry.subject
            )));
        };
        if parsed.iter().any(|p| p.subject == subject) {
            return Err(error(format!(
                "entry {number}: subject {subject:?} is listed twice"
            )));
        }
        if let Some(bad) = entry.read.iter().chain(&entry.write).find(|g| g.is_empty()) {
            return Err(error(format!("entry {number}: an empty glob {bad:?}")));
        }
        entry.subject = subject;
        parsed.push(entry);
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Layers;

    fn validate(toml: &str) -> Result<crate::config::Config, ConfigError> {
        let mut layers = Layers::with_defaults();
        layers.apply_toml(toml)?;
        layers.validate()
    }

    #[test]
    fn subjects_are_normalized_to_the_servers_spelling() {
        assert_eq!(normalize_subject("CN=ci").as_deref(), Some("CN=ci"));
        assert_eq!(
            normalize_subject(" CN=ci-main,O=Example ").as_deref(),
            Some("CN=ci-main,O=Example")
        );
        assert_eq!(normalize_subject("not a name"), None);
    }

    #[test]
    fn the_file_fills_the_table_and_bad_entries_name_the_problem() {
        let config = validate(
            "tls_cert = \"/c.pem\"\ntls_key = \"/k.pem\"\ntls_client_ca = \"/ca.pem\"\n\
             [[auth.client_cert]]\nsubject = \"CN=ci,O=Example\"\nwrite = [\"bazel/main\"]\n",
        )
        .unwrap();
        assert!(config.tls.enabled());
        assert_eq!(config.auth.client_certs[0].subject, "CN=ci,O=Example");
        assert_eq!(config.auth.client_certs[0].write, ["bazel/main"]);
        assert!(config.auth.client_certs[0].read.is_empty());
        // A client-certificate table means credentials: anonymous callers get nothing.
        assert_eq!(config.auth.anonymous(), crate::config::Anonymous::None);

        let tls = "tls_cert = \"/c.pem\"\ntls_key = \"/k.pem\"\ntls_client_ca = \"/ca.pem\"\n";
        for (bad, says) in [
            ("subject = \"CN=a\"\nextra = 1", "extra"),
            ("read = [\"x\"]", "subject"),
            ("subject = \"nonsense\"", "distinguished name"),
            ("subject = \"CN=a\"\nwrite = [\"\"]", "empty glob"),
        ] {
            let error = validate(&format!("{tls}[[auth.client_cert]]\n{bad}\n")).unwrap_err();
            assert_eq!(error.setting, "auth.client_cert", "{bad}");
            assert!(error.message.contains(says), "{bad}: {error}");
        }
        let twice = format!(
            "{tls}[[auth.client_cert]]\nsubject = \"CN=a\"\n[[auth.client_cert]]\nsubject = \"CN=a\"\n"
        );
        assert!(validate(&twice).unwrap_err().message.contains("twice"));
    }

    #[test]
    fn settings_that_need_one_another_are_refused_alone() {
        for (toml, setting) in [
            ("tls_cert = \"/c.pem\"", "tls_key"),
            ("tls_key = \"/k.pem\"", "tls_cert"),
            ("tls_required = true", "tls_required"),
            ("tls_client_ca = \"/ca.pem\"", "tls_client_ca"),
            (
                "tls_cert = \"/c.pem\"\ntls_key = \"/k.pem\"\n\
                 [[auth.client_cert]]\nsubject = \"CN=a\"",
                "auth.client_cert",
            ),
        ] {
            assert_eq!(validate(toml).unwrap_err().setting, setting, "{toml}");
        }
        assert!(!validate("").unwrap().tls.enabled());
    }
}
