//! Actor timers on tokio's paused clock: one-shot timers fire in due order
//! and never early, cancelled ones never fire, periodic timers keep their
//! period and coalesce missed ticks, the per-actor bound holds, and a
//! stopped actor's timers are gone.

use plexspaces::actor::{Actor, ActorError, ActorSystem, Context, TimerError, TimerId};
use plexspaces::seams::{Clock, Instant};
use plexspaces::{Env, NodeName};
use std::time::Duration;

const MS: Duration = Duration::from_millis(1);
const SECOND: Duration = Duration::from_secs(1);

async fn system(name: &str) -> ActorSystem {
    let dir = std::env::temp_dir().join(format!("plexspaces-timers-{}-{name}", std::process::id()));
    ActorSystem::new(
        Env::tokio(NodeName::new("n1").unwrap())
            .with_data_dir(dir)
            .await
            .unwrap(),
    )
}

/// Records every timer message with the time it arrived.
#[derive(Default)]
struct Recorder {
    seen: Vec<(String, Instant)>,
    ids: Vec<TimerId>,
}

#[derive(Clone, Debug)]
enum Msg {
    After(Duration, String),
    Every(Duration, String),
    Cancel(usize),
    Fired(String),
    /// Blocks the actor for this long (a slow handler).
    Busy(Duration),
    Seen,
    Live,
    SetMax(usize),
}

#[derive(Debug, PartialEq)]
enum Reply {
    Started(Result<usize, TimerError>),
    Cancelled(bool),
    Seen(Vec<(String, Instant)>),
    Live(usize),
    Done,
}

impl Actor for Recorder {
    type Msg = Msg;
    type Reply = Reply;
    async fn handle(&mut self, ctx: &mut Context<Self>, msg: Msg) -> Result<Reply, ActorError> {
        let started = |this: &mut Recorder, r: Result<TimerId, TimerError>| {
            Reply::Started(r.map(|id| {
                this.ids.push(id);
                this.ids.len() - 1
            }))
        };
        Ok(match msg {
            Msg::After(delay, label) => {
                let r = ctx.send_after(delay, Msg::Fired(label));
                started(self, r)
            }
            Msg::Every(period, label) => {
                let r = ctx.send_interval(period, Msg::Fired(label));
                started(self, r)
            }
            Msg::Cancel(index) => Reply::Cancelled(ctx.cancel_timer(self.ids[index])),
            Msg::Fired(label) => {
                self.seen.push((label, ctx.env().now()));
                Reply::Done
            }
            Msg::Busy(how_long) => {
                ctx.env().sleep(how_long).await;
                Reply::Done
            }
            Msg::Seen => Reply::Seen(self.seen.clone()),
            Msg::Live => Reply::Live(ctx.live_timers()),
            Msg::SetMax(max) => {
                ctx.set_max_timers(max);
                Reply::Done
            }
        })
    }
}

async fn seen(actor: &plexspaces::actor::ActorRef<Recorder>) -> Vec<(String, Instant)> {
    match actor.ask(Msg::Seen, SECOND).await.unwrap() {
        Reply::Seen(seen) => seen,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn one_shot_timers_fire_in_due_order_and_never_early() {
    let system = system("order").await;
    let env = system.env().clone();
    let actor = system.spawn("rec", Recorder::default()).unwrap();
    let start = env.now();
    for (ms, label) in [(50, "c"), (10, "a"), (30, "b"), (70, "d"), (30, "b2")] {
        actor
            .ask(Msg::After(ms * MS, label.into()), SECOND)
            .await
            .unwrap();
    }
    env.sleep(100 * MS).await;
    let seen = seen(&actor).await;
    let labels: Vec<&str> = seen.iter().map(|(l, _)| l.as_str()).collect();
    // Equal due times fire in the order they were set.
    assert_eq!(labels, ["a", "b", "b2", "c", "d"]);
    for ((label, at), due) in seen.iter().zip([10u32, 30, 30, 50, 70]) {
        let after = at.saturating_duration_since(start);
        assert!(
            after >= due * MS,
            "{label} fired at {after:?}, before {due} ms"
        );
        assert!(after < (due + 5) * MS, "{label} fired late at {after:?}");
    }
    system.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_timer_never_fires() {
    let system = system("cancel").await;
    let env = system.env().clone();
    let actor = system.spawn("rec", Recorder::default()).unwrap();
    actor
        .ask(Msg::After(20 * MS, "kept".into()), SECOND)
        .await
        .unwrap();
    actor
        .ask(Msg::After(20 * MS, "cancelled".into()), SECOND)
        .await
        .unwrap();
    actor
        .ask(Msg::Every(5 * MS, "tick".into()), SECOND)
        .await
        .unwrap();
    assert_eq!(
        actor.ask(Msg::Cancel(1), SECOND).await.unwrap(),
        Reply::Cancelled(true)
    );
    env.sleep(12 * MS).await;
    assert_eq!(
        actor.ask(Msg::Cancel(2), SECOND).await.unwrap(),
        Reply::Cancelled(true)
    );
    let ticks_then = seen(&actor).await.len();
    env.sleep(100 * MS).await;
    let seen = seen(&actor).await;
    let labels: Vec<&str> = seen.iter().map(|(l, _)| l.as_str()).collect();
    assert!(!labels.contains(&"cancelled"));
    assert_eq!(labels.iter().filter(|l| **l == "kept").count(), 1);
    assert_eq!(ticks_then, 2, "two ticks before the cancel at 12 ms");
    assert_eq!(
        labels.iter().filter(|l| **l == "tick").count(),
        2,
        "ticks after cancel"
    );
    // Cancelling again, or a fired one-shot, is a no-op.
    assert_eq!(
        actor.ask(Msg::Cancel(1), SECOND).await.unwrap(),
        Reply::Cancelled(false)
    );
    assert_eq!(
        actor.ask(Msg::Cancel(0), SECOND).await.unwrap(),
        Reply::Cancelled(false)
    );
    assert_eq!(actor.ask(Msg::Live, SECOND).await.unwrap(), Reply::Live(0));
    system.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_periodic_timer_keeps_its_period_and_coalesces_missed_ticks() {
    let system = system("period").await;
    let env = system.env().clone();
    let actor = system.spawn("rec", Recorder::default()).unwrap();
    let start = env.now();
    actor
        .ask(Msg::Every(10 * MS, "tick".into()), SECOND)
        .await
        .unwrap();
    env.sleep(55 * MS).await;
    let at: Vec<Duration> = seen(&actor)
        .await
        .iter()
        .map(|(_, t)| t.saturating_duration_since(start))
        .collect();
    assert_eq!(at.len(), 5, "{at:?}");
    for (i, t) in at.iter().enumerate() {
        let due = (i as u32 + 1) * 10 * MS;
        assert!(
            *t >= due && *t < due + 3 * MS,
            "tick {i} at {t:?}, due {due:?}"
        );
    }
    // The actor is busy for 35 ms: three ticks fall due meanwhile and
    // arrive as one message; the next keeps the 10 ms phase.
    actor.ask(Msg::Busy(35 * MS), SECOND).await.unwrap();
    let after_busy = env.now().saturating_duration_since(start);
    env.sleep(30 * MS).await;
    let ticks: Vec<Duration> = seen(&actor)
        .await
        .iter()
        .map(|(_, t)| t.saturating_duration_since(start))
        .collect();
    // After the busy spell: the one folded tick (taken at 90 ms), then the
    // on-phase ticks 90, 100, 110 ms; never the three missed ones replayed.
    let later: Vec<&Duration> = ticks.iter().filter(|t| **t >= after_busy).collect();
    assert_eq!(after_busy, 90 * MS);
    assert_eq!(
        later.len(),
        4,
        "missed ticks were replayed: {ticks:?} (busy until {after_busy:?})"
    );
    assert_eq!(ticks.len(), 9, "{ticks:?}");
    for t in &ticks {
        let phase = t.as_micros() % 10_000;
        assert!(
            phase < 3_000 || ticks.first() == Some(t),
            "tick off phase: {ticks:?}"
        );
    }
    system.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_live_timer_bound_holds() {
    let system = system("bound").await;
    let actor = system.spawn("rec", Recorder::default()).unwrap();
    actor.ask(Msg::SetMax(3), SECOND).await.unwrap();
    for i in 0..3 {
        let r = actor
            .ask(Msg::After(SECOND, format!("t{i}")), SECOND)
            .await
            .unwrap();
        assert_eq!(r, Reply::Started(Ok(i)));
    }
    let refused = actor
        .ask(Msg::Every(SECOND, "x".into()), SECOND)
        .await
        .unwrap();
    assert_eq!(refused, Reply::Started(Err(TimerError::TooMany { max: 3 })));
    assert_eq!(
        actor
            .ask(Msg::Every(Duration::ZERO, "x".into()), SECOND)
            .await
            .unwrap(),
        Reply::Started(Err(TimerError::ZeroPeriod))
    );
    // A cancelled timer frees its place.
    actor.ask(Msg::Cancel(0), SECOND).await.unwrap();
    let r = actor
        .ask(Msg::After(SECOND, "t3".into()), SECOND)
        .await
        .unwrap();
    assert_eq!(r, Reply::Started(Ok(3)));
    assert_eq!(actor.ask(Msg::Live, SECOND).await.unwrap(), Reply::Live(3));
    system.shutdown().await;
}

/// Counts its timer messages in a shared counter that outlives it.
struct Ticker(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Actor for Ticker {
    type Msg = ();
    type Reply = ();
    async fn pre_start(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        ctx.send_interval(10 * MS, ()).unwrap();
        Ok(())
    }
    async fn handle(&mut self, _: &mut Context<Self>, _: ()) -> Result<(), ActorError> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_stopped_actors_timers_are_gone_and_a_new_run_starts_afresh() {
    use std::sync::atomic::Ordering;
    let system = system("stop").await;
    let env = system.env().clone();
    let first = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let ticker = system.spawn("ticker", Ticker(first.clone())).unwrap();
    env.sleep(35 * MS).await;
    assert_eq!(first.load(Ordering::SeqCst), 3);
    ticker.stop();
    ticker.wait_exit().await;
    // A new run under the same name: only its own timer ticks, from its
    // own start; the old run's timer is not delivered to it.
    let second = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let again = system.spawn("ticker", Ticker(second.clone())).unwrap();
    env.sleep(35 * MS).await;
    assert_eq!(
        first.load(Ordering::SeqCst),
        3,
        "the stopped run kept ticking"
    );
    assert_eq!(second.load(Ordering::SeqCst), 3);
    again.stop();
    system.shutdown().await;
}
