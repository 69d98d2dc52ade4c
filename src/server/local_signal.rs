//! A one-shot signal for the tasks of one executor: many waiters, fired once, never reset.
//!
//! The drain signal is awaited by every idle keep-alive connection, once per request: a waiter
//! registers and deregisters around each wait for the next request head. `futures`' `Shared`
//! did that under a mutex with an `Arc` clone per wait (~1 % of the CPU of a 4 KiB GET at
//! saturation, `bench/RESULTS.md` §3); this is a `Cell` and a slab slot, because everything
//! that waits on it runs on the executor's thread.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use slab::Slab;

#[derive(Default)]
struct State {
    fired: Cell<bool>,
    waiters: RefCell<Slab<Waker>>,
}

/// The signal; clones share it.
#[derive(Clone, Default)]
pub struct LocalSignal {
    state: Rc<State>,
}

impl LocalSignal {
    pub fn new() -> Self {
        LocalSignal::default()
    }

    /// Fires the signal: every current and future [`wait`](Self::wait) completes.
    pub fn fire(&self) {
        self.state.fired.set(true);
        // Taken out before waking: a woken task may register or drop a waiter.
        let waiters = std::mem::take(&mut *self.state.waiters.borrow_mut());
        for (_, waker) in waiters {
            waker.wake();
        }
    }

    pub fn is_fired(&self) -> bool {
        self.state.fired.get()
    }

    /// Completes once the signal has fired (at once if it already has).
    pub fn wait(&self) -> Wait {
        Wait {
            state: self.state.clone(),
            slot: None,
        }
    }

    /// Tasks currently waiting (for tests and diagnostics).
    pub fn waiters(&self) -> usize {
        self.state.waiters.borrow().len()
    }
}

/// Future of [`LocalSignal::wait`]; dropping it deregisters the waiter.
pub struct Wait {
    state: Rc<State>,
    slot: Option<usize>,
}

impl Future for Wait {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.state.fired.get() {
            self.slot = None; // `fire` emptied the slab
            return Poll::Ready(());
        }
        let mut waiters = self.state.waiters.borrow_mut();
        match self.slot {
            Some(slot) => {
                if let Some(waker) = waiters.get_mut(slot) {
                    if !waker.will_wake(cx.waker()) {
                        waker.clone_from(cx.waker());
                    }
                }
            }
            None => {
                let slot = waiters.insert(cx.waker().clone());
                drop(waiters);
                self.slot = Some(slot);
            }
        }
        Poll::Pending
    }
}

impl Drop for Wait {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            if !self.state.fired.get() {
                self.state.waiters.borrow_mut().try_remove(slot);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[test]
    fn fires_every_waiter_and_later_waits_complete_at_once() {
        let signal = LocalSignal::new();
        let mut first = Box::pin(signal.wait());
        let mut second = Box::pin(signal.wait());
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(first.as_mut().poll(&mut cx).is_pending());
        assert!(second.as_mut().poll(&mut cx).is_pending());
        assert!(first.as_mut().poll(&mut cx).is_pending()); // re-poll keeps one slot
        assert_eq!(signal.waiters(), 2);
        signal.fire();
        assert!(signal.is_fired());
        assert_eq!(signal.waiters(), 0);
        assert!(first.as_mut().poll(&mut cx).is_ready());
        assert!(second.as_mut().poll(&mut cx).is_ready());
        assert!(signal.wait().now_or_never().is_some());
    }

    #[test]
    fn a_dropped_wait_leaves_no_waiter_behind() {
        let signal = LocalSignal::new();
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        for _ in 0..1000 {
            let mut wait = Box::pin(signal.wait());
            assert!(wait.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(signal.waiters(), 0);
        let mut kept = Box::pin(signal.wait());
        assert!(kept.as_mut().poll(&mut cx).is_pending());
        assert_eq!(signal.waiters(), 1);
    }
}
