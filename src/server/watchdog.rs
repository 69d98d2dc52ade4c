//! The systemd watchdog (`WatchdogSec=`): `WATCHDOG=1` is sent only while *every* executor is
//! alive, so one wedged executor (a task that never yields, a stuck ring) gets the whole process
//! restarted instead of silently losing its share of connections and shards.
//!
//! Each executor bumps its own counter from a task every [`Heartbeats::beat_period`]; a monitor
//! thread looks every half timeout (as `sd_watchdog_enabled(3)` advises) and pings systemd only
//! if every counter moved since its last look.
//!
//! ```text
//! executor 0: beat ─ beat ─ beat ─ beat        monitor: all moved? ── yes ─► WATCHDOG=1
//! executor 1: beat ─ beat ─ (wedged)                    all moved? ── no ──► (silence; systemd
//!                                                                             kills and restarts)
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{systemd, Shared, FLAG_POLL_PERIOD};

/// How many executor heartbeats fit into one monitor period: a few, so that timer slack on a busy
/// core never makes a live executor look dead.
pub const BEATS_PER_CHECK: u32 = 4;

/// One counter per executor, bumped by that executor only.
pub struct Heartbeats {
    beats: Box<[AtomicU64]>,
    /// How often the monitor looks (and pings): half of systemd's timeout.
    check_period: Duration,
}

impl Heartbeats {
    /// Heartbeats for `executors` executors under a watchdog `timeout`.
    pub fn new(executors: usize, timeout: Duration) -> Self {
        Heartbeats {
            beats: (0..executors).map(|_| AtomicU64::new(0)).collect(),
            check_period: timeout / 2,
        }
    }

    /// How often each executor must beat.
    pub fn beat_period(&self) -> Duration {
        self.check_period / BEATS_PER_CHECK
    }

    /// Called by executor `position` from its own thread.
    pub fn beat(&self, position: usize) {
        self.beats[position].fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> Vec<u64> {
        self.beats
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect()
    }
}

/// The executors whose counter did not move between two snapshots.
fn stalled(before: &[u64], after: &[u64]) -> Vec<usize> {
    before
        .iter()
        .zip(after)
        .enumerate()
        .filter(|(_, (b, a))| a == b)
        .map(|(position, _)| position)
        .collect()
}

/// Spawns, in executor `position`, the task that beats until the drain starts.
pub fn spawn_beat(heartbeats: Arc<Heartbeats>, position: usize, shared: Arc<Shared>) {
    glommio::spawn_local(async move {
        while !shared.draining() {
            heartbeats.beat(position);
            glommio::timer::sleep(heartbeats.beat_period()).await;
        }
    })
    .detach();
}

/// Starts the monitor thread: it pings systemd while every executor beats and stops when the
/// drain starts (systemd disarms the watchdog once the unit is stopping).
pub fn spawn_monitor(heartbeats: Arc<Heartbeats>, shared: Arc<Shared>) {
    let spawned = std::thread::Builder::new()
        .name("tessera-watchdog".into())
        .spawn(move || {
            let mut last = heartbeats.snapshot();
            systemd::notify_or_log("WATCHDOG=1");
            while !sleep_unless_draining(heartbeats.check_period, &shared) {
                let now = heartbeats.snapshot();
                let stalled = stalled(&last, &now);
                if stalled.is_empty() {
                    systemd::notify_or_log("WATCHDOG=1");
                } else {
                    tracing::error!(
                        executors = ?stalled,
                        "executor(s) stopped running tasks; withholding the watchdog ping so \
                         systemd restarts the process"
                    );
                }
                last = now;
            }
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "cannot start the watchdog thread; systemd will restart us");
    }
}

/// Sleeps for `period`; true if the drain started meanwhile.
fn sleep_unless_draining(period: Duration, shared: &Shared) -> bool {
    let deadline = std::time::Instant::now() + period;
    loop {
        if shared.draining() {
            return true;
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return false;
        }
        std::thread::sleep(left.min(FLAG_POLL_PERIOD));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_executors_whose_counter_moved_are_alive() {
        let heartbeats = Heartbeats::new(3, Duration::from_secs(8));
        assert_eq!(heartbeats.beat_period(), Duration::from_secs(1));
        let before = heartbeats.snapshot();
        heartbeats.beat(0);
        heartbeats.beat(2);
        heartbeats.beat(2);
        let after = heartbeats.snapshot();
        assert_eq!(stalled(&before, &after), [1]);
        heartbeats.beat(1);
        assert!(stalled(&before, &heartbeats.snapshot()).is_empty());
        assert_eq!(stalled(&after, &after), [0, 1, 2]);
    }
}
