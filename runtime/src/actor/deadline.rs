//! Ask deadlines for one node: a sorted set of (deadline, waker) and one
//! driver task that wakes the askers whose time is up.
//!
//! A timer from the clock seam per `ask` (register, then cancel on reply)
//! costs about a microsecond, more than the ask itself. Here an ask inserts
//! into and removes from one ordered map, and the driver sleeps on the
//! clock only until the earliest deadline.

use crate::env::Env;
use crate::seams::{Clock, Instant, Spawn};
use futures::task::AtomicWaker;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};

pub(crate) struct Deadlines {
    env: Env,
    state: Mutex<State>,
    driver: AtomicWaker,
    /// An earlier deadline than the driver sleeps towards was added.
    rearm: AtomicBool,
}

#[derive(Default)]
struct State {
    waiting: BTreeMap<(Instant, u64), Waker>,
    next_id: u64,
    driver_running: bool,
    /// What the driver sleeps towards.
    armed: Option<Instant>,
}

/// A future that gives up at `deadline`.
pub(crate) struct WithDeadline<'a, F> {
    deadlines: &'a Arc<Deadlines>,
    deadline: Instant,
    key: Option<(Instant, u64)>,
    inner: F,
}

/// The deadline passed first.
pub(crate) struct Expired;

impl Deadlines {
    pub(crate) fn new(env: Env) -> Arc<Self> {
        Arc::new(Deadlines {
            env,
            state: Mutex::new(State::default()),
            driver: AtomicWaker::new(),
            rearm: AtomicBool::new(false),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `future` (pinned by the caller) until it completes or
    /// `timeout` passes.
    pub(crate) fn run<F: Future + Unpin>(
        self: &Arc<Self>,
        timeout: std::time::Duration,
        future: F,
    ) -> WithDeadline<'_, F> {
        WithDeadline {
            deadlines: self,
            deadline: self.env.now() + timeout,
            key: None,
            inner: future,
        }
    }

    fn register(self: &Arc<Self>, deadline: Instant, waker: &Waker) -> (Instant, u64) {
        let mut state = self.state();
        let key = (deadline, state.next_id);
        state.next_id += 1;
        state.waiting.insert(key, waker.clone());
        let start_driver = !state.driver_running;
        state.driver_running = true;
        let earlier = state.armed.is_none_or(|armed| deadline < armed);
        if earlier {
            state.armed = Some(deadline);
        }
        drop(state);
        if start_driver {
            self.env.spawn_task(Box::pin(drive(Arc::downgrade(self))));
        } else if earlier {
            self.rearm.store(true, Ordering::Release);
            self.driver.wake();
        }
        key
    }

    /// Refreshes the waker of `key`; false if the driver already took it
    /// (the deadline passed).
    fn update(&self, key: (Instant, u64), waker: &Waker) -> bool {
        match self.state().waiting.get_mut(&key) {
            Some(stored) => {
                if !stored.will_wake(waker) {
                    *stored = waker.clone();
                }
                true
            }
            None => false,
        }
    }

    fn remove(&self, key: (Instant, u64)) {
        self.state().waiting.remove(&key);
    }

    /// Takes the wakers whose deadline has passed; returns the next deadline.
    fn take_expired(&self, now: Instant) -> (Vec<Waker>, Option<Instant>) {
        let mut state = self.state();
        let mut expired = Vec::new();
        while let Some(entry) = state.waiting.first_entry() {
            if entry.key().0 > now {
                break;
            }
            expired.push(entry.remove());
        }
        let next = state.waiting.keys().next().map(|k| k.0);
        state.armed = next;
        (expired, next)
    }
}

impl Drop for Deadlines {
    fn drop(&mut self) {
        self.driver.wake(); // let the driver notice and end
    }
}

/// The driver: wakes expired askers, sleeps until the next deadline or
/// until an earlier one arrives; ends with the node's actor system.
async fn drive(deadlines: Weak<Deadlines>) {
    loop {
        let (env, next) = {
            let Some(this) = deadlines.upgrade() else {
                return;
            };
            let (expired, next) = this.take_expired(this.env.now());
            for waker in expired {
                waker.wake();
            }
            (this.env.clone(), next)
        };
        let mut sleep = next.map(|at| Box::pin(env.sleep_until(at)));
        std::future::poll_fn(|cx| {
            let Some(this) = deadlines.upgrade() else {
                return Poll::Ready(());
            };
            this.driver.register(cx.waker());
            if this.rearm.swap(false, Ordering::AcqRel) {
                return Poll::Ready(());
            }
            match sleep.as_mut() {
                Some(sleep) => sleep.as_mut().poll(cx),
                None => Poll::Pending,
            }
        })
        .await;
    }
}

impl<F: Future + Unpin> Future for WithDeadline<'_, F> {
    type Output = Result<F::Output, Expired>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(output) = Pin::new(&mut self.inner).poll(cx) {
            if let Some(key) = self.key.take() {
                self.deadlines.remove(key);
            }
            return Poll::Ready(Ok(output));
        }
        match self.key {
            // Only the driver removes a registered entry, and only once its
            // deadline passed: no clock read is needed on this path.
            Some(key) if !self.deadlines.update(key, cx.waker()) => {
                self.key = None;
                Poll::Ready(Err(Expired))
            }
            Some(_) => Poll::Pending,
            None => {
                let key = self.deadlines.register(self.deadline, cx.waker());
                self.key = Some(key);
                Poll::Pending
            }
        }
    }
}

impl<F> Drop for WithDeadline<'_, F> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.deadlines.remove(key);
        }
    }
}
