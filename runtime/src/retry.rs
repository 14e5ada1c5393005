//! Retrying until a deadline: jittered, doubling pauses on the node's
//! `Clock` and `Rng` seams, never sleeping past the deadline. Used by the
//! calls that retry what did not apply (virtual actors, reminders).

use crate::env::Env;
use crate::seams::{Clock, Instant, Rng};
use std::time::Duration;

pub(crate) struct Backoff<'a> {
    env: &'a Env,
    deadline: Instant,
    pause: Duration,
    max: Duration,
}

impl<'a> Backoff<'a> {
    /// Retries for `timeout` from now, pausing `first`, then twice as long
    /// each time up to `max` (±20 % jitter).
    pub(crate) fn new(env: &'a Env, timeout: Duration, first: Duration, max: Duration) -> Self {
        Backoff {
            env,
            deadline: env.now() + timeout,
            pause: first,
            max,
        }
    }

    /// Time left before the deadline (zero once it passed).
    pub(crate) fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(self.env.now())
    }

    /// Sleeps before the next attempt.
    pub(crate) async fn pause(&mut self) {
        let nap = self.env.jitter(self.pause, 0.2).min(self.remaining());
        self.env.sleep(nap).await;
        self.pause = (self.pause * 2).min(self.max);
    }
}
