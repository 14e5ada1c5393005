//! The one backoff: doubling pauses, bounded, jittered through the `Rng`
//! seam. Every retry and poll loop of the runtime takes its pauses from a
//! [`Backoff`]: supervisors between restarts, workflow steps between
//! attempts, virtual actor and reminder calls until their deadline, links
//! and seeds between dials, shared tuple spaces and workflow waits between
//! polls.

use crate::env::Env;
use crate::seams::{Clock, Instant, Rng};
use std::time::Duration;

/// A schedule of pauses: `first`, then twice as long each time up to
/// `max`, each scaled by a random factor in `1 ± jitter` and never longer
/// than `max`.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct Backoff {
    /// The first pause.
    pub first: Duration,
    /// The longest pause.
    pub max: Duration,
    /// Spread of the random factor, 0 (none) to 1.
    pub jitter: f64,
}

impl Backoff {
    /// Pauses from `first` doubling up to `max`, ±20 % jitter.
    pub const fn new(first: Duration, max: Duration) -> Self {
        Backoff {
            first,
            max,
            jitter: 0.2,
        }
    }

    /// The same schedule with a jitter of `jitter` (0 to 1; 0 draws no
    /// random number at all).
    pub const fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    /// The pause before retry `attempt` (1-based): `first · 2^(attempt-1)`,
    /// at most `max`, jittered, and still at most `max`.
    pub fn delay(&self, attempt: u32, rng: &(impl Rng + ?Sized)) -> Duration {
        let doublings = attempt.saturating_sub(1).min(30);
        let base = self.first.saturating_mul(1 << doublings).min(self.max);
        if self.jitter <= 0.0 {
            return base;
        }
        rng.jitter(base, self.jitter).min(self.max)
    }

    /// The pauses of this schedule, one after another.
    pub(crate) fn pauses(self) -> Pauses {
        Pauses {
            backoff: self,
            attempt: 0,
        }
    }
}

/// A [`Backoff`]'s pauses in order.
pub(crate) struct Pauses {
    backoff: Backoff,
    attempt: u32,
}

impl Pauses {
    /// The next pause.
    pub(crate) fn next(&mut self, rng: &(impl Rng + ?Sized)) -> Duration {
        self.attempt = self.attempt.saturating_add(1);
        self.backoff.delay(self.attempt, rng)
    }

    /// Starts over from the first pause (after a success).
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// Retrying until a deadline on the node's `Clock`, pausing as a
/// [`Backoff`] says, never sleeping past the deadline. Used by the calls
/// that retry what did not apply (virtual actors, reminders).
pub(crate) struct RetryUntil<'a> {
    env: &'a Env,
    deadline: Instant,
    pauses: Pauses,
}

impl<'a> RetryUntil<'a> {
    /// Retries for `timeout` from now, pausing as `backoff` says.
    pub(crate) fn new(env: &'a Env, timeout: Duration, backoff: Backoff) -> Self {
        RetryUntil {
            env,
            deadline: env.now() + timeout,
            pauses: backoff.pauses(),
        }
    }

    /// Time left before the deadline (zero once it passed).
    pub(crate) fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(self.env.now())
    }

    /// Sleeps before the next attempt.
    pub(crate) async fn pause(&mut self) {
        let nap = self.pauses.next(self.env).min(self.remaining());
        self.env.sleep(nap).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seams::SeededRng;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn pauses_double_up_to_the_maximum() {
        let rng = SeededRng::new(1);
        let steady = Backoff::new(ms(10), ms(70)).with_jitter(0.0);
        let delays: Vec<Duration> = (1..=6).map(|n| steady.delay(n, &rng)).collect();
        assert_eq!(delays, [ms(10), ms(20), ms(40), ms(70), ms(70), ms(70)]);
        assert_eq!(steady.delay(u32::MAX, &rng), ms(70), "no overflow");
        let mut pauses = steady.pauses();
        assert_eq!((pauses.next(&rng), pauses.next(&rng)), (ms(10), ms(20)));
        pauses.reset();
        assert_eq!(pauses.next(&rng), ms(10));
    }

    #[test]
    fn jitter_spreads_pauses_but_never_past_the_maximum() {
        let rng = SeededRng::new(2);
        let jittered = Backoff::new(ms(100), ms(400)).with_jitter(0.5);
        let first: Vec<Duration> = (0..200).map(|_| jittered.delay(1, &rng)).collect();
        assert!(first.iter().all(|d| *d >= ms(50) && *d <= ms(150)));
        assert!(first.iter().any(|d| *d < ms(90)) && first.iter().any(|d| *d > ms(110)));
        assert!((0..200).all(|_| jittered.delay(9, &rng) <= ms(400)));
    }
}
