//! A circuit breaker: closed (calls pass; consecutive failures counted),
//! open (calls refused at once until a pause has passed), half-open (one
//! trial call passes; its success closes the breaker, its failure opens it
//! again). Time is the caller's (the node's `Clock` seam), so the breaker
//! behaves the same under the simulator.

use crate::seams::Instant;
use std::time::Duration;

/// Where a breaker stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls pass.
    Closed,
    /// Calls are refused until the pause ends.
    Open,
    /// One trial call is under way; others are refused.
    HalfOpen,
}

impl BreakerState {
    /// Its value in the `..._breaker_state` gauge: 0 closed, 1 half-open,
    /// 2 open.
    pub fn gauge(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }
}

/// When a breaker opens and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Consecutive failures that open it.
    pub failures_to_open: u32,
    /// How long it stays open before a trial call.
    pub open_for: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy {
            failures_to_open: 5,
            open_for: Duration::from_secs(30),
        }
    }
}

/// The breaker's state machine (the caller holds it behind a lock).
#[derive(Debug)]
pub(crate) struct Breaker {
    policy: BreakerPolicy,
    state: BreakerState,
    failures: u32,
    opened_at: Option<Instant>,
}

/// What the breaker says about a call about to be made.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Make it.
    Pass,
    /// Make it as the half-open trial.
    Trial,
    /// Refuse it: open for this much longer.
    Refuse(Duration),
}

impl Breaker {
    pub(crate) fn new(policy: BreakerPolicy) -> Self {
        Breaker {
            policy,
            state: BreakerState::Closed,
            failures: 0,
            opened_at: None,
        }
    }

    pub(crate) fn state(&self) -> BreakerState {
        self.state
    }

    pub(crate) fn admit(&mut self, now: Instant) -> Admission {
        match self.state {
            BreakerState::Closed => Admission::Pass,
            BreakerState::HalfOpen => Admission::Refuse(self.policy.open_for),
            BreakerState::Open => {
                let opened = self.opened_at.unwrap_or(now);
                let elapsed = now.saturating_duration_since(opened);
                if elapsed >= self.policy.open_for {
                    self.state = BreakerState::HalfOpen;
                    Admission::Trial
                } else {
                    Admission::Refuse(self.policy.open_for - elapsed)
                }
            }
        }
    }

    /// A call made succeeded.
    pub(crate) fn succeeded(&mut self) {
        self.state = BreakerState::Closed;
        self.failures = 0;
        self.opened_at = None;
    }

    /// A call made failed; whether this opened the breaker.
    pub(crate) fn failed(&mut self, now: Instant) -> bool {
        self.failures = self.failures.saturating_add(1);
        let opens = match self.state {
            BreakerState::HalfOpen => true,
            BreakerState::Closed => self.failures >= self.policy.failures_to_open.max(1),
            BreakerState::Open => false,
        };
        if opens {
            self.state = BreakerState::Open;
            self.opened_at = Some(now);
        }
        opens
    }

    /// A trial call ended with neither verdict (refused before it was
    /// sent, say): the next call may try again.
    pub(crate) fn trial_abandoned(&mut self) {
        if self.state == BreakerState::HalfOpen {
            // Open since before the pause: the next admission is a trial.
            self.state = BreakerState::Open;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_duration(Duration::from_millis(ms))
    }

    #[test]
    fn it_opens_after_the_threshold_then_lets_one_trial_through() {
        let mut breaker = Breaker::new(BreakerPolicy {
            failures_to_open: 3,
            open_for: Duration::from_millis(100),
        });
        for i in 0..2 {
            assert_eq!(breaker.admit(at(i)), Admission::Pass);
            assert!(!breaker.failed(at(i)));
        }
        // A success resets the count.
        breaker.succeeded();
        for i in 0..3 {
            assert_eq!(breaker.admit(at(10 + i)), Admission::Pass);
            assert_eq!(breaker.failed(at(10 + i)), i == 2);
        }
        assert_eq!(breaker.state(), BreakerState::Open);
        assert_eq!(
            breaker.admit(at(62)),
            Admission::Refuse(Duration::from_millis(50))
        );
        assert_eq!(breaker.admit(at(112)), Admission::Trial);
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        assert!(matches!(breaker.admit(at(113)), Admission::Refuse(_)));
        // The trial fails: open again for a full pause.
        assert!(breaker.failed(at(120)));
        assert!(matches!(breaker.admit(at(219)), Admission::Refuse(_)));
        assert_eq!(breaker.admit(at(220)), Admission::Trial);
        breaker.succeeded();
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert_eq!(breaker.admit(at(221)), Admission::Pass);
    }
}
