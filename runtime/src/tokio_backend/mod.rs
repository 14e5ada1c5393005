//! The production seams on tokio and the OS (feature `tokio`).

// This module *is* the production implementation of the Clock, Spawn and
// Rng seams: the one place in the runtime allowed to read tokio's clock,
// spawn on tokio and draw OS randomness.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod process;

pub use process::ProcessCollector;

use crate::seams::{Clock, Instant, Rng, Spawn};
use futures::future::BoxFuture;
use plexspaces_storage::sync::LockExt;
use std::future::Future;
use std::sync::Mutex;
use std::time::SystemTime;

/// Tokio's monotonic clock (which honours `tokio::time::pause` in tests)
/// and the system's wall clock.
#[derive(Clone, Copy, Debug)]
pub struct TokioClock {
    origin: tokio::time::Instant,
    /// For tests: a wall clock that starts here and moves with the
    /// monotonic clock, so it pauses and advances with it.
    wall_epoch: Option<SystemTime>,
}

impl TokioClock {
    /// A clock whose origin ([`Instant::ZERO`]) is now.
    pub fn new() -> Self {
        TokioClock {
            origin: tokio::time::Instant::now(),
            wall_epoch: None,
        }
    }

    /// For tests on paused time: a clock whose wall clock reads `epoch` now
    /// and then moves exactly as the monotonic clock does, so waiting for a
    /// wall-clock deadline (a reminder, a lease) takes paused time.
    pub fn with_wall_from(epoch: SystemTime) -> Self {
        TokioClock {
            wall_epoch: Some(epoch),
            ..Self::new()
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        Instant::from_duration(self.origin.elapsed())
    }

    fn wall_clock(&self) -> SystemTime {
        match self.wall_epoch {
            Some(epoch) => epoch + self.origin.elapsed(),
            None => SystemTime::now(),
        }
    }

    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + Send + 'static {
        tokio::time::sleep_until(self.origin + deadline.since_origin())
    }
}

/// Spawns onto one tokio runtime.
#[derive(Clone, Debug)]
pub struct TokioSpawner {
    handle: tokio::runtime::Handle,
}

impl TokioSpawner {
    /// Spawns onto the runtime this is called from.
    ///
    /// # Panics
    /// Outside a tokio runtime, as `tokio::spawn` would.
    pub fn current() -> Self {
        TokioSpawner {
            handle: tokio::runtime::Handle::current(),
        }
    }

    /// Spawns onto the runtime behind `handle`.
    pub fn from_handle(handle: tokio::runtime::Handle) -> Self {
        TokioSpawner { handle }
    }
}

impl Spawn for TokioSpawner {
    fn spawn_task(&self, task: BoxFuture<'static, ()>) {
        // The JoinHandle machinery lives in `seams::spawn`; tokio's own
        // handle is not needed.
        drop(self.handle.spawn(task));
    }
}

/// Randomness from the operating system (`getrandom(2)`), read 256 bytes
/// at a time so that drawing an id does not cost a system call.
#[derive(Debug)]
pub struct OsRng {
    pool: Mutex<Pool>,
}

#[derive(Debug)]
struct Pool {
    /// Refilled by one `getrandom` call when spent: 4 KiB is 512 draws per
    /// system call (trace and span ids draw three per traced message).
    bytes: [u8; 4096],
    used: usize,
}

impl OsRng {
    /// A generator fed by the OS.
    pub fn new() -> Self {
        OsRng {
            pool: Mutex::new(Pool {
                bytes: [0; 4096],
                used: 4096,
            }),
        }
    }
}

impl Default for OsRng {
    fn default() -> Self {
        Self::new()
    }
}

impl Rng for OsRng {
    fn next_u64(&self) -> u64 {
        let mut pool = self.pool.locked();
        if pool.used + 8 > pool.bytes.len() {
            // The OS refusing randomness leaves no safe fallback.
            getrandom::fill(&mut pool.bytes).expect(
                "the OS refused randomness: getrandom fails only without a kernel entropy source, \
                 where no node can run safely",
            );
            pool.used = 0;
        }
        let at = pool.used;
        pool.used += 8;
        u64::from_le_bytes(pool.bytes[at..at + 8].try_into().expect("an 8-byte slice"))
    }
}
