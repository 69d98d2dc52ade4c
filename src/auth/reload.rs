//! Reloading the trusted keys and the revocation list without a restart: on SIGHUP, and when
//! any watched file changes ([`Fingerprint`]: the key directory, each `*.pub`, the JWKS, the
//! revocation list).
//!
//! One thread per process polls a SIGHUP flag every [`RELOAD_POLL_PERIOD`] and the files'
//! metadata every [`RELOAD_CHECK_PERIOD`]; a reload that fails (a half-written key file) keeps
//! the keys in use and logs why, and is retried at the next change.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::gate::SharedTrust;
use super::keys::{Fingerprint, Trust};
use crate::config::AuthConfig;

/// How often the thread looks at the SIGHUP flag (and the drain flag, to exit).
pub const RELOAD_POLL_PERIOD: Duration = Duration::from_millis(200);
/// How often the watched files' metadata is compared: a few `stat`s a second cost nothing,
/// and a rotated key or revoked token takes effect within this.
pub const RELOAD_CHECK_PERIOD: Duration = Duration::from_secs(1);

/// Starts the reloader; it stops once `stop` returns true.
pub fn spawn(
    config: AuthConfig,
    shared: Arc<SharedTrust>,
    stop: impl Fn() -> bool + Send + 'static,
) -> std::io::Result<()> {
    if !config.has_token_keys() && config.revoked.is_none() {
        return Ok(());
    }
    let hangup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hangup.clone())?;
    std::thread::Builder::new()
        .name("tessera-keys".into())
        .spawn(move || {
            let mut seen = Fingerprint::of(&config);
            let mut checked = Instant::now();
            while !stop() {
                std::thread::sleep(RELOAD_POLL_PERIOD);
                let signalled = hangup.swap(false, Ordering::AcqRel);
                if !signalled && checked.elapsed() < RELOAD_CHECK_PERIOD {
                    continue;
                }
                checked = Instant::now();
                let now = Fingerprint::of(&config);
                if !signalled && now == seen {
                    continue;
                }
                match Trust::load(&config) {
                    Ok(trust) => {
                        tracing::info!(
                            keys = trust.keys.len(),
                            revoked = trust.policy.revoked.len(),
                            signalled,
                            "reloaded the trusted keys and revocation list"
                        );
                        shared.replace(trust);
                        seen = now;
                    }
                    Err(error) => {
                        tracing::error!(%error, "cannot reload the keys; keeping the ones in use");
                        seen = now;
                    }
                }
            }
        })?;
    Ok(())
}
