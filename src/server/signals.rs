//! Signals:
//! - SIGTERM / SIGINT → `/ready` answers 503 at once and systemd hears `STOPPING=1`; after
//!   `drain_delay` (everything else keeps serving meanwhile, so a load balancer takes the node
//!   out of rotation before any connection closes) the drain starts. A second signal while
//!   stopping exits at once (status 130), for an operator who does not want to wait for slow
//!   clients.
//! - SIGHUP → reload what can change live (`reload`).

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

/// Starts the thread that turns signals into the stopping and drain flags and reloads.
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
                if shared.stopping() {
                    tracing::warn!(signal, "second signal while stopping: exiting now");
                    std::process::exit(130);
                }
                shared.start_stopping();
                systemd::notify_or_log("STOPPING=1");
                if shared.drain_delay.is_zero() {
                    start_drain(&shared, signal);
                    continue;
                }
                tracing::info!(
                    signal,
                    delay_ms = shared.drain_delay.as_millis() as u64,
                    "stopping: /ready answers 503, serving on until the drain delay ends"
                );
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name("tessera-drain-delay".into())
                    .spawn(move || {
                        std::thread::sleep(shared.drain_delay);
                        start_drain(&shared, signal);
                    })
                    .expect("spawning the drain-delay thread");
            }
        })
        .expect("spawning the signal thread");
}

fn start_drain(shared: &Shared, signal: i32) {
    tracing::info!(
        signal,
        "draining: no new connections, finishing in-flight requests"
    );
    shared.start_drain();
}
