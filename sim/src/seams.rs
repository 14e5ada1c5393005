//! `Clock` and `Spawn` on madsim's virtual time and scheduler.

use crate::trace::{Event, Trace};
use futures::future::BoxFuture;
use plexspaces::seams::{Clock, Instant, Spawn};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime};

/// Virtual time: it advances only when every task is waiting, and then
/// jumps to the next timer, so a simulated day passes in milliseconds.
///
/// The wall clock can be skewed per node ([`ClockSkew`]); monotonic time
/// cannot, as on a real machine.
#[derive(Clone, Debug)]
pub struct SimClock {
    origin: madsim::time::Instant,
    skew: ClockSkew,
    trace: Arc<Trace>,
}

/// A node's wall-clock offset from true (virtual) time, shared between the
/// node's clock and the harness that skews it.
#[derive(Clone, Debug, Default)]
pub struct ClockSkew(Arc<AtomicI64>);

impl ClockSkew {
    /// Sets the offset: positive runs ahead, negative behind.
    pub fn set(&self, ahead: Duration, behind: bool) {
        let nanos = i64::try_from(ahead.as_nanos()).unwrap_or(i64::MAX);
        self.0
            .store(if behind { -nanos } else { nanos }, Ordering::SeqCst);
    }

    /// The offset in nanoseconds (negative: behind).
    pub fn nanos(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl SimClock {
    /// A clock whose origin ([`Instant::ZERO`]) is the current virtual time.
    ///
    /// # Panics
    /// Outside a madsim runtime.
    pub fn new(trace: Arc<Trace>, skew: ClockSkew) -> Self {
        SimClock {
            origin: madsim::time::TimeHandle::current().now_instant(),
            skew,
            trace,
        }
    }
}

impl Clock for SimClock {
    fn now(&self) -> Instant {
        let elapsed = madsim::time::TimeHandle::current().now_instant() - self.origin;
        self.trace
            .record(Event::TimeRead, elapsed.as_nanos() as u64);
        Instant::from_duration(elapsed)
    }

    fn wall_clock(&self) -> SystemTime {
        let truth = madsim::time::TimeHandle::current().now_time();
        let skew = self.skew.nanos();
        let shown = if skew >= 0 {
            truth + Duration::from_nanos(skew as u64)
        } else {
            truth - Duration::from_nanos(skew.unsigned_abs())
        };
        let since_epoch = shown
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        self.trace
            .record(Event::TimeRead, since_epoch.as_nanos() as u64);
        shown
    }

    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + Send + 'static {
        madsim::time::sleep_until(self.origin + deadline.since_origin())
    }
}

/// Spawns onto the simulated node of the calling task. Killing that node
/// drops its tasks, as a crash would.
#[derive(Clone, Debug)]
pub struct SimSpawner {
    trace: Arc<Trace>,
}

impl SimSpawner {
    /// A spawner tracing into `trace`.
    pub fn new(trace: Arc<Trace>) -> Self {
        SimSpawner { trace }
    }
}

impl Spawn for SimSpawner {
    fn spawn_task(&self, task: BoxFuture<'static, ()>) {
        self.trace.record(Event::Spawn, 0);
        drop(madsim::task::spawn(task));
    }
}
