//! `Clock` and `Spawn` on madsim's virtual time and scheduler.

use futures::future::BoxFuture;
use plexspaces::seams::{Clock, Instant, Spawn};
use std::future::Future;
use std::time::SystemTime;

/// Virtual time: it advances only when every task is waiting, and then
/// jumps to the next timer, so a simulated day passes in milliseconds.
#[derive(Clone, Copy, Debug)]
pub struct SimClock {
    origin: madsim::time::Instant,
}

impl SimClock {
    /// A clock whose origin ([`Instant::ZERO`]) is the current virtual time.
    ///
    /// # Panics
    /// Outside a madsim runtime.
    pub fn new() -> Self {
        SimClock {
            origin: madsim::time::TimeHandle::current().now_instant(),
        }
    }
}

impl Default for SimClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SimClock {
    fn now(&self) -> Instant {
        Instant::from_duration(madsim::time::TimeHandle::current().now_instant() - self.origin)
    }

    fn wall_clock(&self) -> SystemTime {
        madsim::time::TimeHandle::current().now_time()
    }

    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + Send + 'static {
        madsim::time::sleep_until(self.origin + deadline.since_origin())
    }
}

/// Spawns onto the simulated node of the calling task. Killing that node
/// drops its tasks, as a crash would.
#[derive(Clone, Copy, Debug, Default)]
pub struct SimSpawner;

impl Spawn for SimSpawner {
    fn spawn_task(&self, task: BoxFuture<'static, ()>) {
        drop(madsim::task::spawn(task));
    }
}
