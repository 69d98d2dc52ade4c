//! Signals: SIGTERM / SIGINT → drain (and `STOPPING=1` to systemd); a second one while draining
//! exits at once (status 130), for an operator who does not want to wait for slow clients.
//! SIGHUP → reload what can change live (`reload`).

use std::sync::Arc;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::reload::{reload_and_log, Reload};
use super::{systemd, Shared};
use crate::config::Config;

/// What SIGHUP re-reads: the configuration in force, and how to read it again.
pub struct OnHangup {
    pub running: Config,
    pub reload: Option<Reload>,
}

/// Starts the thread that turns signals into the drain flag and reloads.
pub fn spawn_watcher(shared: Arc<Shared>, mut on_hangup: OnHangup) {
    let mut signals = match Signals::new([SIGTERM, SIGINT, SIGHUP]) {
        Ok(signals) => signals,
        Err(error) => {
            tracing::error!(%error, "cannot install signal handlers; SIGTERM will not drain");
            return;
        }
    };
    std::thread::Builder::new()
        .name("tessera-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if signal == SIGHUP {
                    match &on_hangup.reload {
                        Some(reload) => reload_and_log(&mut on_hangup.running, reload),
                        None => tracing::warn!(
                            "SIGHUP: this server has no configuration source to reload"
                        ),
                    }
                    continue;
                }
                if shared.draining() {
                    tracing::warn!(signal, "second signal while draining: exiting now");
                    std::process::exit(130);
                }
                tracing::info!(
                    signal,
                    "draining: no new connections, finishing in-flight requests"
                );
                shared.start_drain();
                systemd::notify_or_log("STOPPING=1");
            }
        })
        .expect("spawning the signal thread");
}
