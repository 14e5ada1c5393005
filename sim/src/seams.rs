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

/// Spawns onto the simulated node of the calling task, or, for a node of
/// a [`crate::Cluster`], onto that node whoever calls: a test's checks that
/// make a node start work (activating a virtual actor, say) must not run
/// that work on the test's own task, outside every node's network. Killing
/// the node drops its tasks, as a crash would, and a spawn through the
/// `Env` of a run that was killed is dropped: a dead node runs nothing.
#[derive(Clone)]
pub struct SimSpawner {
    trace: Arc<Trace>,
    home: Option<Home>,
}

/// The node a cluster node's spawner belongs to, and which run of it.
#[derive(Clone)]
pub(crate) struct Home {
    /// The node (set once it is built). Spawns look its current run up by
    /// id each time: a handle kept from an earlier run spawns into that dead
    /// run, and looking it up inside `init` would deadlock madsim.
    pub(crate) node: Arc<std::sync::OnceLock<madsim::runtime::NodeHandle>>,
    pub(crate) runs: Arc<std::sync::atomic::AtomicU64>,
    /// The value of `runs` while this spawner's run is the node's current one.
    pub(crate) run: u64,
}

impl std::fmt::Debug for SimSpawner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimSpawner")
            .field("home_run", &self.home.as_ref().map(|h| h.run))
            .finish_non_exhaustive()
    }
}

impl SimSpawner {
    /// A spawner tracing into `trace`, spawning onto the caller's node.
    pub fn new(trace: Arc<Trace>) -> Self {
        SimSpawner { trace, home: None }
    }

    /// A spawner for one run of a cluster node.
    pub(crate) fn at_home(trace: Arc<Trace>, home: Home) -> Self {
        SimSpawner {
            trace,
            home: Some(home),
        }
    }
}

impl Spawn for SimSpawner {
    fn spawn_task(&self, task: BoxFuture<'static, ()>) {
        self.trace.record(Event::Spawn, 0);
        match &self.home {
            None => drop(madsim::task::spawn(task)),
            Some(home) => {
                if home.runs.load(std::sync::atomic::Ordering::SeqCst) != home.run {
                    return; // that run of the node is dead
                }
                let current = home
                    .node
                    .get()
                    .and_then(|node| madsim::runtime::Handle::current().get_node(node.id()));
                match current {
                    Some(node) => drop(node.spawn(task)),
                    None => drop(madsim::task::spawn(task)),
                }
            }
        }
    }
}
