//! Reloading the certificate, key and client CAs on SIGHUP, without a restart.
//!
//! One thread per process (only when TLS is on) polls a SIGHUP flag every
//! [`RELOAD_POLL_PERIOD`]. A reload reads the same paths the server started with (a changed
//! path takes a restart, which `server::reload` says) and swaps the configuration for new
//! connections; one that fails (a half-copied key, a key that does not fit the certificate)
//! keeps the one in use and logs why.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::SharedTls;
use crate::config::TlsConfig;

/// How often the thread looks at the SIGHUP flag (and at `stop`, to exit).
pub const RELOAD_POLL_PERIOD: Duration = Duration::from_millis(200);

/// Starts the reloader; it stops once `stop` returns true. Does nothing without TLS.
pub fn spawn(
    config: TlsConfig,
    shared: Option<Arc<SharedTls>>,
    stop: impl Fn() -> bool + Send + 'static,
) -> std::io::Result<()> {
    let Some(shared) = shared else {
        return Ok(());
    };
    let hangup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hangup.clone())?;
    std::thread::Builder::new()
        .name("tessera-tls".into())
        .spawn(move || {
            while !stop() {
                std::thread::sleep(RELOAD_POLL_PERIOD);
                if hangup.swap(false, Ordering::AcqRel) {
                    reload_once(&config, &shared);
                }
            }
        })?;
    Ok(())
}

/// Reads the files again and swaps them in; logs the outcome.
pub fn reload_once(config: &TlsConfig, shared: &SharedTls) {
    match super::load(config) {
        Ok(server) => {
            shared.replace(server);
            tracing::info!("reloaded the TLS certificate, key and client CAs");
        }
        Err(error) => tracing::error!(
            %error,
            "cannot reload TLS; new connections keep the certificate in use"
        ),
    }
}
