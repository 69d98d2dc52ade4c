//! Who may read and write: Ed25519 tokens ([`token`]) granting namespace globs ([`scope`]).
//!
//! A token is verified once per request by the front-end layer that receives it and becomes
//! the request's [`Identity`](crate::protocols::backend::Identity); the authorization layer
//! over the `Backend` seam then checks the identity's scopes against the request's namespace.

pub mod audit;
pub mod cli;
pub mod gate;
pub mod keys;
pub mod layer;
pub mod rate;
pub mod reload;
pub mod s3;
pub mod scope;
pub mod token;

use std::sync::Arc;

/// What every executor's authorization layer shares: the trusted keys (reloaded), the audit
/// log, the rate-limit buckets, and TLS (reloaded), whose verified client certificates are
/// credentials too.
#[derive(Clone)]
pub struct AuthState {
    pub trust: Arc<gate::SharedTrust>,
    pub audit: Option<Arc<audit::AuditLog>>,
    /// `auth.rate`'s buckets, one table for the process.
    pub rate: Option<Arc<rate::RateTable>>,
    /// `None` without `tls_cert`; set by the server after [`AuthState::load`]
    /// (`tls::load_shared`).
    pub tls: Option<Arc<crate::tls::SharedTls>>,
}

impl AuthState {
    /// Loads the keys and opens the audit log of `config`; an error names the setting.
    pub fn load(
        config: &crate::config::AuthConfig,
    ) -> Result<AuthState, crate::config::ConfigError> {
        let trust = keys::Trust::load(config).map_err(|message| crate::config::ConfigError {
            setting: "auth.public_keys".into(),
            message,
        })?;
        let audit = match &config.audit_log {
            None => None,
            Some(path) => Some(Arc::new(audit::AuditLog::open(path).map_err(|e| {
                crate::config::ConfigError {
                    setting: "audit_log".into(),
                    message: format!("cannot open {} for appending: {e}", path.display()),
                }
            })?)),
        };
        Ok(AuthState {
            trust: Arc::new(gate::SharedTrust::new(trust)),
            audit,
            rate: config
                .rate
                .map(|rate| Arc::new(rate::RateTable::new(rate, config.burst))),
            tls: None,
        })
    }
}
