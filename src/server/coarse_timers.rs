//! Coarse timers for connection timeouts: one slab per executor, checked every [`TICK`].
//!
//! Every keep-alive connection waits for its next request under the idle timeout, so a timer
//! is armed and cancelled once per request. A glommio timer costs a clock read, an insert into
//! and a removal from the reactor's ordered map: ~2–3 % of the CPU of a 4 KiB GET at
//! saturation (`bench/RESULTS.md` §3). Timeouts of seconds do not need that precision; here
//! arming is a slab insert with the executor's last tick time, cancelling is a slab removal,
//! and one ticker task per executor, running only while a timer is armed, fires what is due.
//!
//! A timer of duration `d` fires after at least `d` and at most `d + 2 × TICK` (plus the
//! executor's own scheduling delay). The ticker scans every armed timer each tick: 10,000 idle
//! connections cost ~1 M slab visits a second, a fraction of a millisecond.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use slab::Slab;

/// Resolution of the coarse timers.
pub const TICK: Duration = Duration::from_millis(10);

struct Armed {
    deadline: Instant,
    waker: Waker,
    fired: bool,
}

struct State {
    armed: RefCell<Slab<Armed>>,
    /// When the ticker last ran (or the ticker started): at most one tick old while it runs.
    now: Cell<Instant>,
    ticking: Cell<bool>,
}

/// One executor's timers; clones share them.
#[derive(Clone)]
pub struct CoarseTimers {
    state: Rc<State>,
}

impl Default for CoarseTimers {
    fn default() -> Self {
        CoarseTimers {
            state: Rc::new(State {
                armed: RefCell::new(Slab::new()),
                now: Cell::new(Instant::now()),
                ticking: Cell::new(false),
            }),
        }
    }
}

impl CoarseTimers {
    pub fn new() -> Self {
        CoarseTimers::default()
    }

    /// A future that completes `duration` from its first poll, give or take [`TICK`]s.
    /// Must be polled on a glommio executor (the ticker is a task there).
    pub fn sleep(&self, duration: Duration) -> CoarseSleep {
        CoarseSleep {
            state: self.state.clone(),
            duration,
            slot: None,
        }
    }

    /// Timers currently armed (for tests and diagnostics).
    pub fn armed(&self) -> usize {
        self.state.armed.borrow().len()
    }

    /// Whether the ticker task is running.
    pub fn ticking(&self) -> bool {
        self.state.ticking.get()
    }
}

/// Fires what is due every tick; ends when nothing is armed.
async fn tick(state: Rc<State>) {
    let mut due = Vec::new();
    loop {
        glommio::timer::sleep(TICK).await;
        let now = Instant::now();
        state.now.set(now);
        {
            let mut armed = state.armed.borrow_mut();
            if armed.is_empty() {
                state.ticking.set(false);
                return;
            }
            for (_, timer) in armed.iter_mut() {
                if !timer.fired && timer.deadline <= now {
                    timer.fired = true;
                    due.push(timer.waker.clone());
                }
            }
        }
        // Woken outside the borrow, so a waker that runs code at once cannot re-enter it.
        for waker in due.drain(..) {
            waker.wake();
        }
    }
}

/// Future of [`CoarseTimers::sleep`]; dropping it disarms the timer.
pub struct CoarseSleep {
    state: Rc<State>,
    duration: Duration,
    slot: Option<usize>,
}

impl Future for CoarseSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let state = self.state.clone();
        match self.slot {
            None => {
                if !state.ticking.get() {
                    // The last tick may be long ago: start from the real time.
                    state.now.set(Instant::now());
                    state.ticking.set(true);
                    glommio::spawn_local(tick(state.clone())).detach();
                }
                // `now` is up to one tick old; one tick more keeps the timer from firing early.
                let deadline = state.now.get() + self.duration + TICK;
                let slot = state.armed.borrow_mut().insert(Armed {
                    deadline,
                    waker: cx.waker().clone(),
                    fired: false,
                });
                self.slot = Some(slot);
                Poll::Pending
            }
            Some(slot) => {
                let mut armed = state.armed.borrow_mut();
                let timer = &mut armed[slot];
                if timer.fired {
                    armed.remove(slot);
                    drop(armed);
                    self.slot = None;
                    return Poll::Ready(());
                }
                if !timer.waker.will_wake(cx.waker()) {
                    timer.waker.clone_from(cx.waker());
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for CoarseSleep {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            self.state.armed.borrow_mut().try_remove(slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use glommio::LocalExecutorBuilder;

    fn on_executor<F, T>(f: F) -> T
    where
        F: FnOnce() -> std::pin::Pin<Box<dyn Future<Output = T>>> + Send + 'static,
        T: Send + 'static,
    {
        LocalExecutorBuilder::default()
            .spawn(f)
            .expect("executor")
            .join()
            .expect("join")
    }

    #[test]
    fn timers_fire_in_order_within_two_ticks_and_the_ticker_stops_when_idle() {
        let (elapsed, armed_after, ticking_after) = on_executor(|| {
            Box::pin(async {
                let timers = CoarseTimers::new();
                let start = Instant::now();
                let waits = [0u64, 30, 100, 55].map(|ms| {
                    let sleep = timers.sleep(Duration::from_millis(ms));
                    async move {
                        sleep.await;
                        (ms, start.elapsed())
                    }
                });
                let mut done = futures::future::join_all(waits).await;
                done.sort_by_key(|(_, at)| *at);
                glommio::timer::sleep(TICK * 3).await;
                (done, timers.armed(), timers.ticking())
            })
        });
        let order: Vec<u64> = elapsed.iter().map(|(ms, _)| *ms).collect();
        assert_eq!(order, [0, 30, 55, 100]);
        for (ms, at) in elapsed {
            let asked = Duration::from_millis(ms);
            assert!(at >= asked, "{ms} ms fired early, at {at:?}");
            // Two ticks plus generous room for a loaded test machine.
            assert!(
                at <= asked + TICK * 2 + Duration::from_millis(200),
                "{ms} ms at {at:?}"
            );
        }
        assert_eq!(armed_after, 0);
        assert!(
            !ticking_after,
            "the ticker keeps running with nothing armed"
        );
    }

    #[test]
    fn a_dropped_sleep_is_disarmed_and_never_fires() {
        let (armed_while, armed_after) = on_executor(|| {
            Box::pin(async {
                let timers = CoarseTimers::new();
                let raced = futures_lite::future::or(
                    async {
                        timers.sleep(Duration::from_secs(60)).await;
                        false
                    },
                    async {
                        glommio::timer::sleep(Duration::from_millis(30)).await;
                        true
                    },
                );
                let mut pending = Box::pin(timers.sleep(Duration::from_secs(60)));
                let waker = futures::task::noop_waker();
                assert!(pending
                    .as_mut()
                    .poll(&mut Context::from_waker(&waker))
                    .is_pending());
                assert!(raced.await, "the 60 s timer won a race against 30 ms");
                let armed_while = timers.armed();
                drop(pending);
                (armed_while, timers.armed())
            })
        });
        assert_eq!(armed_while, 1);
        assert_eq!(armed_after, 0);
    }
}
