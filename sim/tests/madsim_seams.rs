//! The simulated seams under madsim: virtual time, wall-clock skew and
//! node-local tasks. (That a run is a function of its seed is checked by
//! the scenarios in `tests-sim`.)
#![cfg(madsim)]

use futures::channel::oneshot;
use plexspaces::seams::{Clock, Instant, JoinError, Spawn};
use plexspaces_sim::{ClockSkew, SimClock, SimSpawner, Trace};
use std::sync::Arc;
use std::time::Duration;

#[madsim::test]
async fn a_simulated_day_passes_at_once_on_the_virtual_clock() {
    let skew = ClockSkew::default();
    let clock = SimClock::new(Arc::new(Trace::new()), skew.clone());
    let wall_before = clock.wall_clock();
    assert_eq!(clock.now(), Instant::ZERO);
    clock.sleep(Duration::from_secs(86_400)).await;
    // madsim wakes timers a few random microseconds late, like a real OS.
    let day = Duration::from_secs(86_400);
    let slept = clock.now() - Instant::ZERO;
    assert!(
        slept >= day && slept < day + Duration::from_millis(10),
        "{slept:?}"
    );
    let wall_gap = clock.wall_clock().duration_since(wall_before).unwrap();
    assert!(
        wall_gap >= day && wall_gap < day + Duration::from_millis(10),
        "{wall_gap:?}"
    );

    let before = clock.now();
    let slow = clock.timeout(Duration::from_secs(5), clock.sleep(Duration::from_secs(60)));
    assert_eq!(slow.await.unwrap_err().after, Duration::from_secs(5));
    let waited = clock.now() - before;
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(6),
        "{waited:?}"
    );
}

#[madsim::test]
async fn simulated_tasks_return_output_panics_and_aborts() {
    let trace = Arc::new(Trace::new());
    let spawner = SimSpawner::new(trace.clone());
    assert_eq!(spawner.spawn(async { 6 * 7 }).await, Ok(42));
    let panicked = spawner.spawn(async { panic!("sim boom") }).await;
    assert_eq!(
        panicked,
        Err::<(), _>(JoinError::Panicked("sim boom".into()))
    );
    let (_keep, rx) = oneshot::channel::<()>();
    let stuck = spawner.spawn(rx);
    stuck.abort();
    assert_eq!(stuck.await, Err(JoinError::Aborted));
    assert_eq!(trace.events(), 3, "every spawn is traced");
}
