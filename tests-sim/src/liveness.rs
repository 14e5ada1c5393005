//! The liveness oracle: work that must finish within a deadline of
//! virtual time (after the faults healed) fails the seed with
//! `seed S: <what> did not finish`, instead of spinning in virtual time
//! until CI's wall-clock limit kills the run without a seed (TigerBeetle's
//! VOPR checks liveness the same way).

use std::future::Future;
use std::time::Duration;

/// How long a scenario's work after healing may take, by default.
pub const AFTER_HEALING: Duration = Duration::from_secs(120);

/// Runs `work`; if it has not finished after `deadline` of virtual time,
/// fails with `seed {seed}: {what} did not finish within {deadline}`.
pub async fn finish_within<T>(
    seed: u64,
    what: &str,
    deadline: Duration,
    work: impl Future<Output = T>,
) -> T {
    match madsim::time::timeout(deadline, work).await {
        Ok(done) => done,
        Err(_) => panic!("seed {seed}: {what} did not finish within {deadline:?} of virtual time"),
    }
}
