//! The in-memory TupleSpace under concurrency: many tasks writing, taking,
//! reading and giving up on blocked takes, interleaved in an order drawn
//! from a seed, checked against a multiset model and against what the
//! subscriptions reported; plus the races that once broke it.

// Tests drive paused tokio time and real threads.
#![allow(clippy::disallowed_methods)]

use futures::FutureExt;
use futures::task::{ArcWake, waker};
use plexspaces::seams::{Rng, SeededRng};
use plexspaces::tuple;
use plexspaces::tuplespace::{
    Action, Field, Pattern, QoS, Tuple, TupleEvent, TupleSpace, TupleSpaceConfig,
    TupleSpaceListener, Value,
};
use plexspaces::{Env, NodeName};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

async fn env(test: &str) -> Env {
    let dir = std::env::temp_dir().join(format!("plexspaces-tsc-{}-{test}", std::process::id()));
    Env::tokio(NodeName::new("n1").unwrap())
        .with_data_dir(dir)
        .await
        .unwrap()
}

fn any2() -> Pattern {
    Pattern::new(vec![Field::Any, Field::Any])
}

/// Records every event, in order.
#[derive(Default)]
struct EventLog(Mutex<Vec<TupleEvent>>);

impl TupleSpaceListener for EventLog {
    fn on_event(&self, event: &TupleEvent) {
        self.0.lock().unwrap().push(event.clone());
    }
}

/// A multiset of tuples.
type Bag = BTreeMap<String, usize>;

fn key(t: &Tuple) -> String {
    format!("{t:?}")
}

fn add(bag: &mut Bag, t: &Tuple) {
    *bag.entry(key(t)).or_default() += 1;
}

fn remove(bag: &mut Bag, t: &Tuple) -> bool {
    match bag.get_mut(&key(t)) {
        Some(n) => {
            *n -= 1;
            if *n == 0 {
                bag.remove(&key(t));
            }
            true
        }
        None => false,
    }
}

fn bag_of<'a>(tuples: impl IntoIterator<Item = &'a Tuple>) -> Bag {
    let mut bag = Bag::new();
    for t in tuples {
        add(&mut bag, t);
    }
    bag
}

/// Replays subscription events over an empty multiset; every Take must
/// remove a tuple the events put there.
fn replay(events: &[TupleEvent], seed: u64) -> Bag {
    let mut bag = Bag::new();
    for (i, event) in events.iter().enumerate() {
        match event.action {
            Action::Write => add(&mut bag, &event.tuple),
            Action::Take => assert!(
                remove(&mut bag, &event.tuple),
                "seed {seed}: event {i} takes {:?}, which the events never put there",
                event.tuple
            ),
        }
    }
    bag
}

/// Wakes a task of the seeded scheduler by marking it ready.
struct TaskWaker {
    id: usize,
    ready: Arc<Mutex<BTreeSet<usize>>>,
}

impl ArcWake for TaskWaker {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        arc_self.ready.lock().unwrap().insert(arc_self.id);
    }
}

/// Returns `Pending` once (waking itself), so the scheduler may run
/// another task before this one goes on.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

type Task = Pin<Box<dyn Future<Output = ()>>>;

/// What the tasks saw: tuples whose write was acknowledged, tuples handed
/// to a taker.
#[derive(Default)]
struct Seen {
    written: Vec<Tuple>,
    taken: Vec<Tuple>,
}

/// One task's script, drawn from the seed: a few operations with yields
/// between them. Tuples are ("P", n) (plain) or ("L", n) (leased): unique,
/// so the multisets name each one.
fn script(
    space: TupleSpace,
    rng: Arc<SeededRng>,
    seen: Arc<Mutex<Seen>>,
    next: Arc<Mutex<i64>>,
) -> Task {
    Box::pin(async move {
        let fresh = |leased: bool| {
            let mut n = next.lock().unwrap();
            *n += 1;
            tuple![if leased { "L" } else { "P" }, *n]
        };
        let ops = 1 + rng.gen_range(0..6);
        for _ in 0..ops {
            YieldOnce(false).await;
            match rng.gen_range(0..9) {
                0 | 1 => {
                    let t = fresh(false);
                    if space.write(t.clone()).await.is_ok() {
                        seen.lock().unwrap().written.push(t);
                    }
                }
                2 => {
                    let t = fresh(true);
                    if space
                        .write_with_lease(t.clone(), Duration::from_secs(60))
                        .await
                        .is_ok()
                    {
                        seen.lock().unwrap().written.push(t);
                    }
                }
                3 => {
                    let batch: Vec<Tuple> =
                        (0..1 + rng.gen_range(0..4)).map(|_| fresh(false)).collect();
                    if space.write_all(batch.clone()).await.is_ok() {
                        seen.lock().unwrap().written.extend(batch);
                    }
                }
                4 => {
                    if let Some(t) = space.take_if_exists(&any2()).await {
                        seen.lock().unwrap().taken.push(t);
                    }
                }
                5 | 6 => {
                    // Blocks until a write; the scheduler may cancel it.
                    let t = space.take(any2()).await;
                    seen.lock().unwrap().taken.push(t);
                }
                7 => {
                    let _ = space.read(any2()).await;
                }
                _ => {
                    let all = space.take_all_if_exists(&any2()).await;
                    seen.lock().unwrap().taken.extend(all);
                }
            }
        }
    })
}

/// Runs one seed: tasks interleaved in an order drawn from the seed, some
/// blocked ones cancelled at random points, the rest cancelled at the end.
fn run_seed(space: &TupleSpace, seed: u64) -> Seen {
    let rng = Arc::new(SeededRng::new(seed));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let next = Arc::new(Mutex::new(0i64));
    let ready = Arc::new(Mutex::new(BTreeSet::new()));
    let count = 4 + rng.gen_range(0..12) as usize;
    let mut tasks: Vec<Option<Task>> = (0..count)
        .map(|_| {
            Some(script(
                space.clone(),
                rng.clone(),
                seen.clone(),
                next.clone(),
            ))
        })
        .collect();
    ready.lock().unwrap().extend(0..count);
    loop {
        let runnable: Vec<usize> = ready.lock().unwrap().iter().copied().collect();
        let live: Vec<usize> = (0..count).filter(|&i| tasks[i].is_some()).collect();
        if live.is_empty() {
            break;
        }
        // Now and then a live task is cancelled wherever it stands: a
        // blocked take given up, also one already handed its tuple and
        // woken but not yet run (its tuple must go back). When nothing can
        // run, every task left is blocked: cancel one.
        if runnable.is_empty() || rng.gen_range(0..12) == 0 {
            let victim = live[rng.gen_range(0..live.len() as u64) as usize];
            tasks[victim] = None;
            ready.lock().unwrap().remove(&victim);
            continue;
        }
        let id = runnable[rng.gen_range(0..runnable.len() as u64) as usize];
        ready.lock().unwrap().remove(&id);
        let Some(task) = tasks[id].as_mut() else {
            continue;
        };
        let waker = waker(Arc::new(TaskWaker {
            id,
            ready: ready.clone(),
        }));
        if task
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_ready()
        {
            tasks[id] = None;
        }
    }
    Arc::try_unwrap(seen)
        .ok()
        .expect("tasks are gone")
        .into_inner()
        .unwrap()
}

/// Every interleaving the seeds draw keeps the space a multiset: what the
/// subscription reported replays to exactly what the space holds; what was
/// written and not handed to a taker is exactly what the space holds; and
/// once leases run out, exactly the plain tuples remain (a taker that gave
/// up kept its tuple's lease).
#[tokio::test(start_paused = true)]
async fn seeded_interleavings_keep_the_space_a_multiset() {
    let env = env("interleavings").await;
    for seed in 0..300u64 {
        let space = TupleSpace::new("mix", env.clone(), {
            let mut config = TupleSpaceConfig::default();
            config.tuples_max = 24;
            config
        });
        let log = Arc::new(EventLog::default());
        space.subscribe(
            any2(),
            log.clone(),
            QoS::Synchronous,
            &[Action::Write, Action::Take],
        );
        let seen = run_seed(&space, seed);

        let held = space.read_all_if_exists(&any2()).await;
        let events = log.0.lock().unwrap().clone();
        assert_eq!(
            replay(&events, seed),
            bag_of(&held),
            "seed {seed}: events vs contents"
        );
        let mut expected = bag_of(&seen.written);
        for t in &seen.taken {
            assert!(
                remove(&mut expected, t),
                "seed {seed}: {t:?} taken but never written, or taken twice"
            );
        }
        assert_eq!(
            expected,
            bag_of(&held),
            "seed {seed}: written - taken vs contents"
        );
        assert_eq!(space.len(), held.len(), "seed {seed}: the count");

        tokio::time::advance(Duration::from_secs(61)).await;
        let after = space.read_all_if_exists(&any2()).await;
        let plain: Vec<&Tuple> = held.iter().filter(|t| t.0[0] == Value::from("P")).collect();
        assert_eq!(
            bag_of(after.iter()),
            bag_of(plain),
            "seed {seed}: leases ran out"
        );
    }
}

/// `write_all` is all or nothing even when another writer fills the space
/// in the middle of it (here a synchronous listener, which runs between a
/// write and the caller's return).
#[tokio::test]
async fn write_all_never_writes_part_of_its_tuples() {
    let space = TupleSpace::new("bounded", env("write-all").await, {
        let mut config = TupleSpaceConfig::default();
        config.tuples_max = 4;
        config
    });
    struct Filler(TupleSpace, std::sync::atomic::AtomicBool);
    impl TupleSpaceListener for Filler {
        fn on_event(&self, event: &TupleEvent) {
            let first = !self.1.swap(true, std::sync::atomic::Ordering::SeqCst);
            if event.tuple.0[0] == Value::from("batch") && first {
                for n in 0..2 {
                    let _ = self.0.write(tuple!["other", n]).now_or_never();
                }
            }
        }
    }
    let filler = Arc::new(Filler(space.clone(), Default::default()));
    space.subscribe(any2(), filler, QoS::Synchronous, &[Action::Write]);
    let batch = vec![tuple!["batch", 1], tuple!["batch", 2], tuple!["batch", 3]];
    let written = space.write_all(batch).await;
    let batch_held = space
        .read_all_if_exists(&Pattern::new(vec![
            Field::Exact("batch".into()),
            Field::Any,
        ]))
        .await
        .len();
    assert!(
        (written.is_ok() && batch_held == 3) || (written.is_err() && batch_held == 0),
        "write_all answered {written:?} and left {batch_held} of its 3 tuples"
    );
}

/// A taker handed a leased tuple and then cancelled puts it back with its
/// lease, and subscribers see it come back.
#[tokio::test(start_paused = true)]
async fn a_cancelled_taker_returns_its_tuple_with_its_lease() {
    let space = TupleSpace::new(
        "leases",
        env("cancelled").await,
        TupleSpaceConfig::default(),
    );
    let log = Arc::new(EventLog::default());
    space.subscribe(
        any2(),
        log.clone(),
        QoS::Synchronous,
        &[Action::Write, Action::Take],
    );
    let mut taker = Box::pin(space.take(any2()));
    let noop = futures::task::noop_waker();
    assert!(
        taker
            .as_mut()
            .poll(&mut Context::from_waker(&noop))
            .is_pending()
    );
    space
        .write_with_lease(tuple!["job", 1], Duration::from_secs(10))
        .await
        .unwrap();
    drop(taker); // handed the tuple, cancelled before it picked it up

    let events = log.0.lock().unwrap().clone();
    let held = space.read_all_if_exists(&any2()).await;
    assert_eq!(held, [tuple!["job", 1]], "the tuple went back");
    assert_eq!(
        replay(&events, 0),
        bag_of(&held),
        "subscribers saw it come back: {events:?}"
    );
    tokio::time::advance(Duration::from_secs(11)).await;
    assert_eq!(
        space.read_if_exists(&any2()).await,
        None,
        "its lease still runs out"
    );
}

/// Takers on two threads against writers on two others: every tuple is
/// handed out once, and every take is reported to subscribers (a take that
/// found its tuple on a second look once reported nothing).
#[test]
fn takes_on_real_threads_are_each_reported_once() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        for round in 0..20 {
            let space =
                TupleSpace::new("threads", env("threads").await, TupleSpaceConfig::default());
            let log = Arc::new(EventLog::default());
            space.subscribe(
                any2(),
                log.clone(),
                QoS::Synchronous,
                &[Action::Write, Action::Take],
            );
            let per_writer = 500;
            let mut handles = Vec::new();
            for w in 0..2i64 {
                let space = space.clone();
                handles.push(tokio::spawn(async move {
                    for n in 0..per_writer {
                        space.write(tuple!["t", w * 10_000 + n]).await.unwrap();
                        if n % 7 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                    Vec::new()
                }));
            }
            for _ in 0..2 {
                let space = space.clone();
                handles.push(tokio::spawn(async move {
                    let mut got = Vec::new();
                    for _ in 0..per_writer {
                        got.push(space.take(any2()).await);
                    }
                    got
                }));
            }
            let mut taken = Vec::new();
            for h in handles {
                taken.extend(h.await.unwrap());
            }
            assert_eq!(
                bag_of(&taken).len(),
                2 * per_writer as usize,
                "round {round}: each once"
            );
            let events = log.0.lock().unwrap().clone();
            let takes = events.iter().filter(|e| e.action == Action::Take).count();
            assert_eq!(takes, taken.len(), "round {round}: every take reported");
            assert!(replay(&events, round).is_empty());
        }
    });
}
