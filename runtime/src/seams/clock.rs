//! The `Clock` seam: monotonic time, sleeping, timeouts, and wall-clock
//! time for timestamps.

use futures::future::{Either, select};
use std::fmt;
use std::future::Future;
use std::ops::{Add, Sub};
use std::pin::pin;
use std::time::{Duration, SystemTime};

/// A point on a node's monotonic clock: the time elapsed since the clock's
/// origin (when the node's clock was made).
///
/// It is plain data, so it can be compared, stored and journaled, and the
/// simulator can make one out of thin air. It never goes backwards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(Duration);

impl Instant {
    /// The clock's origin.
    pub const ZERO: Instant = Instant(Duration::ZERO);

    /// The instant `since_origin` after the clock's origin.
    pub const fn from_duration(since_origin: Duration) -> Instant {
        Instant(since_origin)
    }

    /// Time elapsed since the clock's origin.
    pub const fn since_origin(self) -> Duration {
        self.0
    }

    /// Time from `earlier` to `self`, or zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, rhs: Duration) -> Instant {
        Instant(self.0.saturating_add(rhs))
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    /// Saturating: a later instant minus an earlier one, or zero.
    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_duration_since(rhs)
    }
}

/// A future did not finish before its deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elapsed {
    /// How long it was given.
    pub after: Duration,
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "deadline of {:?} elapsed", self.after)
    }
}

impl std::error::Error for Elapsed {}

/// A node's sense of time.
///
/// Monotonic time ([`Clock::now`]) drives every timeout and timer; wall-clock
/// time ([`Clock::wall_clock`]) is only for timestamps shown to people or
/// stored for them, because it can jump (and in the simulator, it is skewed).
pub trait Clock: Send + Sync + 'static {
    /// The current monotonic time.
    fn now(&self) -> Instant;

    /// The current wall-clock time.
    fn wall_clock(&self) -> SystemTime;

    /// Completes once [`Clock::now`] has reached `deadline` (at once if it has).
    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + Send + 'static;

    /// Completes once `duration` has passed.
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send + 'static {
        self.sleep_until(self.now() + duration)
    }

    /// Runs `future` for at most `duration`: its output, or [`Elapsed`].
    fn timeout<F>(
        &self,
        duration: Duration,
        future: F,
    ) -> impl Future<Output = Result<F::Output, Elapsed>> + Send
    where
        F: Future + Send,
    {
        let deadline = self.sleep(duration);
        async move {
            match select(pin!(future), pin!(deadline)).await {
                Either::Left((output, _)) => Ok(output),
                Either::Right(((), _)) => Err(Elapsed { after: duration }),
            }
        }
    }
}

/// Any [`Clock`], behind a pointer; each sleep costs one boxed future.
#[derive(Clone)]
pub struct DynClock(std::sync::Arc<dyn ErasedClock>);

impl DynClock {
    /// Erases the type of `clock`.
    pub fn new<C: Clock>(clock: C) -> Self {
        DynClock(std::sync::Arc::new(clock))
    }
}

impl fmt::Debug for DynClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynClock")
            .field("now", &self.0.now())
            .finish()
    }
}

trait ErasedClock: Send + Sync + 'static {
    fn now(&self) -> Instant;
    fn wall_clock(&self) -> SystemTime;
    fn sleep_until(&self, deadline: Instant) -> futures::future::BoxFuture<'static, ()>;
}

impl<C: Clock> ErasedClock for C {
    fn now(&self) -> Instant {
        Clock::now(self)
    }
    fn wall_clock(&self) -> SystemTime {
        Clock::wall_clock(self)
    }
    fn sleep_until(&self, deadline: Instant) -> futures::future::BoxFuture<'static, ()> {
        Box::pin(Clock::sleep_until(self, deadline))
    }
}

impl Clock for DynClock {
    fn now(&self) -> Instant {
        self.0.now()
    }
    fn wall_clock(&self) -> SystemTime {
        self.0.wall_clock()
    }
    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + Send + 'static {
        self.0.sleep_until(deadline)
    }
}

/// Milliseconds since the Unix epoch (0 before it, saturating): how a
/// wall-clock instant is journaled and compared on another node.
pub(crate) fn unix_millis(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `d` in whole milliseconds, at least 1 (saturating): how leases,
/// deadlines and registration lapses travel.
pub(crate) fn whole_millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}
