//! SIGTERM / SIGINT → `/ready` answers 503 at once; after `drain_delay` (everything else keeps
//! serving meanwhile, so a load balancer takes the node out of rotation before any connection
//! closes) the drain starts. A second signal while stopping exits at once (status 130), for an
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
                if shared.stopping() {
                    tracing::warn!(signal, "second signal while stopping: exiting now");
                    std::process::exit(130);
                }
                shared.start_stopping();
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
