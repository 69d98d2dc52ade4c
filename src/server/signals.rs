//! SIGTERM / SIGINT → drain. A second signal while draining exits at once (status 130), for an
//! operator who does not want to wait for slow clients.

use std::sync::Arc;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::Shared;

/// Starts the thread that turns signals into the drain flag.
pub fn spawn_watcher(shared: Arc<Shared>) {
    let mut signals = match Signals::new([SIGTERM, SIGINT]) {
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
                if shared.draining() {
                    tracing::warn!(signal, "second signal while draining: exiting now");
                    std::process::exit(130);
                }
                tracing::info!(
                    signal,
                    "draining: no new connections, finishing in-flight requests"
                );
                shared.start_drain();
            }
        })
        .expect("spawning the signal thread");
}
