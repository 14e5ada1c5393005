//! The node's timer service: a sorted set of (deadline, action) and one
//! driver task that runs the actions whose time is up. Ask deadlines wake
//! their asker; actor timers (`Context::send_after`, `send_interval`,
//! GenFSM state timeouts) run a callback that delivers a message.
//!
//! A timer from the clock seam per `ask` (register, then cancel on reply)
//! costs about a microsecond, more than the ask itself. Here an ask links
//! into and out of a timer wheel (`timer_wheel.rs`: O(1), no allocation once
//! warm), and the driver sleeps on the clock only until the earliest
//! deadline.

use super::timer_wheel::{TimerWheel, WheelKey};
use crate::env::Env;
use crate::seams::{Clock, Instant, Spawn};
use futures::task::AtomicWaker;
use plexspaces_storage::sync::LockExt;
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

/// Identifies one scheduled entry.
pub(crate) type TimerKey = WheelKey;

/// What happens when an entry's deadline passes.
enum Action {
    /// An ask's deadline: wake the asker, who sees the entry gone.
    Wake(Waker),
    /// A timer: run the callback on the driver task (it must be quick).
    Fire(Box<dyn FnOnce() + Send>),
}

struct State {
    waiting: TimerWheel<Action>,
    driver_running: bool,
    /// What the driver sleeps towards.
    armed: Option<Instant>,
}

/// A future that gives up at `deadline`.
pub(crate) struct WithDeadline<'a, F> {
    deadlines: &'a Arc<Deadlines>,
    deadline: Instant,
    key: Option<TimerKey>,
    inner: F,
}

/// The deadline passed first.
pub(crate) struct Expired;

impl Deadlines {
    pub(crate) fn new(env: Env) -> Arc<Self> {
        Arc::new(Deadlines {
            env,
            state: Mutex::new(State {
                waiting: TimerWheel::new(),
                driver_running: false,
                armed: None,
            }),
            driver: AtomicWaker::new(),
            rearm: AtomicBool::new(false),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.locked()
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

    /// The node's seams.
    pub(crate) fn env(&self) -> &Env {
        &self.env
    }

    /// The node's clock, as the timers read it.
    pub(crate) fn now(&self) -> Instant {
        self.env.now()
    }

    /// Runs `fire` on the driver task once `at` has passed, unless
    /// [`Deadlines::cancel`] removes it first.
    pub(crate) fn schedule(
        self: &Arc<Self>,
        at: Instant,
        fire: Box<dyn FnOnce() + Send>,
    ) -> TimerKey {
        self.insert(at, Action::Fire(fire))
    }

    /// Removes a scheduled entry; false if it already ran (or never was).
    pub(crate) fn cancel(&self, key: TimerKey) -> bool {
        self.state().waiting.remove(key).is_some()
    }

    fn register(self: &Arc<Self>, deadline: Instant, waker: &Waker) -> TimerKey {
        self.insert(deadline, Action::Wake(waker.clone()))
    }

    fn insert(self: &Arc<Self>, deadline: Instant, action: Action) -> TimerKey {
        let mut state = self.state();
        let key = state.waiting.insert(deadline, action);
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
    fn update(&self, key: TimerKey, waker: &Waker) -> bool {
        match self.state().waiting.get_mut(key) {
            Some(Action::Wake(stored)) => {
                if !stored.will_wake(waker) {
                    *stored = waker.clone();
                }
                true
            }
            Some(Action::Fire(_)) | None => false,
        }
    }

    fn remove(&self, key: TimerKey) {
        self.state().waiting.remove(key);
    }

    /// Takes the actions whose deadline has passed, in deadline order;
    /// returns the next deadline.
    fn take_expired(&self, now: Instant) -> (Vec<Action>, Option<Instant>) {
        let mut state = self.state();
        let expired = state.waiting.take_expired(now);
        let next = state.waiting.next_deadline();
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
            for action in expired {
                match action {
                    Action::Wake(waker) => waker.wake(),
                    Action::Fire(fire) => fire(),
                }
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
