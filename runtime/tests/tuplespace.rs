//! The in-memory TupleSpace: the Linda operations, atomic and fair takes,
//! timeouts, bounds, leases, subscriptions, and a property test against a
//! multiset model.

// Tests drive paused tokio time and spawn contending takers on tokio.
#![allow(clippy::disallowed_methods)]

use plexspaces::actor::ActorSystem;
use plexspaces::tuple;
use plexspaces::tuplespace::{
    Action, Field, Kind, Pattern, QoS, Tuple, TupleEvent, TupleSpace, TupleSpaceConfig,
    TupleSpaceError, TupleSpaceListener, Value,
};
use plexspaces::{Env, NodeName};
use proptest::prelude::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;

async fn env(test: &str) -> Env {
    let dir = std::env::temp_dir().join(format!("plexspaces-ts-{}-{test}", std::process::id()));
    Env::tokio(NodeName::new("n1").unwrap())
        .with_data_dir(dir)
        .await
        .unwrap()
}

fn task(kind: &str) -> Pattern {
    Pattern::new(vec![
        Field::Exact("task".into()),
        Field::Exact(kind.into()),
        Field::Typed(Kind::Int),
    ])
}

#[tokio::test]
async fn the_linda_operations() {
    let space = TupleSpace::new("jobs", env("ops").await, TupleSpaceConfig::default());
    space.write(tuple!["task", "build", 1]).await.unwrap();
    space
        .write_all(vec![
            tuple!["task", "test", 2],
            tuple!["task", "build", 3],
            tuple!["done", 9],
        ])
        .await
        .unwrap();
    assert_eq!(space.len(), 4);
    assert_eq!(space.count(&task("build")).await, 2);
    assert!(space.exists(&task("test")).await);
    assert_eq!(
        space.read_if_exists(&task("build")).await,
        Some(tuple!["task", "build", 1]),
        "oldest first"
    );
    assert_eq!(
        space.take_if_exists(&task("build")).await,
        Some(tuple!["task", "build", 1])
    );
    assert_eq!(
        space.take_if_exists(&task("build")).await,
        Some(tuple!["task", "build", 3])
    );
    assert_eq!(space.take_if_exists(&task("build")).await, None);
    let any3 = Pattern::new(vec![Field::Any, Field::Any, Field::Any]);
    assert_eq!(
        space.read_all_if_exists(&any3).await,
        [tuple!["task", "test", 2]]
    );
    assert_eq!(
        space.read(task("test")).await,
        tuple!["task", "test", 2],
        "read does not block when one exists"
    );
    assert_eq!(space.take_all_if_exists(&any3).await.len(), 1);
    space.clear().await;
    assert!(space.is_empty());
    let system = ActorSystem::new(env("named").await);
    system
        .tuplespace("shared")
        .write(tuple!["x"])
        .await
        .unwrap();
    assert_eq!(
        system.tuplespace("shared").len(),
        1,
        "named spaces are shared on the node"
    );
    assert!(system.tuplespace("other").is_empty());
}

#[tokio::test]
async fn blocked_takers_are_served_first_come_first_served_and_readers_get_copies() {
    let space = TupleSpace::new("fifo", env("fifo").await, TupleSpaceConfig::default());
    let mut takers = Vec::new();
    for n in 0..3 {
        let space = space.clone();
        takers.push(tokio::spawn(
            async move { (n, space.take(task("work")).await) },
        ));
        tokio::task::yield_now().await; // register in order
        tokio::task::yield_now().await;
    }
    let reader = {
        let space = space.clone();
        tokio::spawn(async move { space.read(task("work")).await })
    };
    tokio::task::yield_now().await;
    for n in 0..3 {
        space.write(tuple!["task", "work", n]).await.unwrap();
    }
    for handle in takers {
        let (n, tuple) = handle.await.unwrap();
        assert_eq!(
            tuple,
            tuple!["task", "work", n],
            "taker {n} gets the {n}th tuple"
        );
    }
    assert_eq!(
        reader.await.unwrap(),
        tuple!["task", "work", 0],
        "the reader saw the first write"
    );
    assert!(
        space.is_empty(),
        "every tuple went to a taker, none was stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_takers_never_get_the_same_tuple() {
    let space = TupleSpace::new("bag", env("bag").await, TupleSpaceConfig::default());
    let takers: Vec<_> = (0..8)
        .map(|_| {
            let space = space.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                while let Some(t) = space
                    .take_with_timeout(task("job"), Duration::from_millis(200))
                    .await
                {
                    got.push(t);
                }
                got
            })
        })
        .collect();
    for n in 0..2000 {
        space.write(tuple!["task", "job", n]).await.unwrap();
    }
    let mut all: Vec<i64> = Vec::new();
    for taker in takers {
        for t in taker.await.unwrap() {
            let Value::Int(n) = t.fields()[2] else {
                panic!("{t}")
            };
            all.push(n);
        }
    }
    all.sort_unstable();
    assert_eq!(
        all,
        (0..2000).collect::<Vec<_>>(),
        "each tuple taken exactly once"
    );
}

#[tokio::test(start_paused = true)]
async fn timeouts_bounds_and_leases() {
    let mut config = TupleSpaceConfig::default();
    config.tuples_max = 2;
    config.tuple_bytes_max = 64;
    let space = TupleSpace::new("small", env("bounds").await, config);
    let never = Pattern::new(vec![Field::Exact("never".into())]);
    let start = tokio::time::Instant::now();
    assert_eq!(
        space
            .take_with_timeout(never.clone(), Duration::from_secs(3))
            .await,
        None
    );
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(3),
        "gave up at the timeout"
    );
    assert_eq!(
        space.read_with_timeout(never, Duration::from_secs(1)).await,
        None
    );

    space.write(tuple!["a"]).await.unwrap();
    space
        .write_with_lease(tuple!["b"], Duration::from_secs(5))
        .await
        .unwrap();
    assert!(matches!(
        space.write(tuple!["c"]).await,
        Err(TupleSpaceError::Full { tuples_max: 2, .. })
    ));
    let huge = Tuple::new(vec![Value::Bytes(vec![0; 100])]);
    assert!(matches!(
        space.write(huge).await,
        Err(TupleSpaceError::TupleTooLarge { .. })
    ));
    assert!(matches!(
        space.write_all(vec![tuple!["x"], tuple!["y"]]).await,
        Err(TupleSpaceError::Full { .. })
    ));

    let b = Pattern::new(vec![Field::Exact("b".into())]);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(space.exists(&b).await, "the lease has not run out");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!space.exists(&b).await, "expired");
    space.write(tuple!["c"]).await.unwrap();
    assert_eq!(space.len(), 2, "the expired tuple freed its place");
}

#[derive(Default)]
struct Recorder(Mutex<Vec<TupleEvent>>);

impl TupleSpaceListener for Recorder {
    fn on_event(&self, event: &TupleEvent) {
        self.0.lock().unwrap().push(event.clone());
    }
}

#[tokio::test]
async fn subscriptions_see_matching_writes_and_takes() {
    let space = TupleSpace::new("events", env("subs").await, TupleSpaceConfig::default());
    let sync = Arc::new(Recorder::default());
    let queued = Arc::new(Recorder::default());
    let s1 = space.subscribe(
        task("a"),
        sync.clone(),
        QoS::Synchronous,
        &[Action::Write, Action::Take],
    );
    let s2 = space.subscribe(
        task("a"),
        queued.clone(),
        QoS::Queued { capacity: 16 },
        &[Action::Take],
    );
    space.write(tuple!["task", "a", 1]).await.unwrap();
    space.write(tuple!["task", "b", 2]).await.unwrap();
    space.take(task("a")).await;
    let actions: Vec<Action> = sync.0.lock().unwrap().iter().map(|e| e.action).collect();
    assert_eq!(
        actions,
        [Action::Write, Action::Take],
        "only the matching tuple, in order"
    );
    for _ in 0..100 {
        if !queued.0.lock().unwrap().is_empty() {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(
        *queued.0.lock().unwrap(),
        [TupleEvent {
            action: Action::Take,
            tuple: tuple!["task", "a", 1]
        }]
    );
    assert_eq!(s2.dropped(), 0);
    assert!(space.unsubscribe(s1.id));
    assert!(!space.unsubscribe(s1.id));
    space.write(tuple!["task", "a", 3]).await.unwrap();
    assert_eq!(
        sync.0.lock().unwrap().len(),
        2,
        "no events after unsubscribing"
    );
}

#[derive(Clone, Debug)]
enum Op {
    Write(u8, u8),
    Take(Option<u8>),
    Read(Option<u8>),
    Count(Option<u8>),
}

fn small_tuple(a: u8, b: u8) -> Tuple {
    tuple![format!("k{}", a % 3), i64::from(b % 4)]
}

fn small_pattern(head: Option<u8>) -> Pattern {
    let first = match head {
        Some(a) => Field::Exact(format!("k{}", a % 3).into()),
        None => Field::Any,
    };
    Pattern::new(vec![first, Field::Typed(Kind::Int)])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// The space behaves like a multiset kept in write order, where read and
    /// take return the oldest matching tuple.
    #[test]
    fn the_space_matches_a_multiset_model(ops in prop::collection::vec(prop_oneof![
        (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Op::Write(a, b)),
        prop::option::of(any::<u8>()).prop_map(Op::Take),
        prop::option::of(any::<u8>()).prop_map(Op::Read),
        prop::option::of(any::<u8>()).prop_map(Op::Count),
    ], 1..100)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let space = TupleSpace::new("model", env("model").await, TupleSpaceConfig::default());
            let mut model: Vec<Tuple> = Vec::new();
            for op in ops {
                match op {
                    Op::Write(a, b) => {
                        space.write(small_tuple(a, b)).await.unwrap();
                        model.push(small_tuple(a, b));
                    }
                    Op::Take(head) => {
                        let pattern = small_pattern(head);
                        let expected = model.iter().position(|t| pattern.matches(t)).map(|i| model.remove(i));
                        assert_eq!(space.take_if_exists(&pattern).await, expected);
                    }
                    Op::Read(head) => {
                        let pattern = small_pattern(head);
                        let expected = model.iter().find(|t| pattern.matches(t)).cloned();
                        assert_eq!(space.read_if_exists(&pattern).await, expected);
                    }
                    Op::Count(head) => {
                        let pattern = small_pattern(head);
                        assert_eq!(space.count(&pattern).await, model.iter().filter(|t| pattern.matches(t)).count());
                    }
                }
                assert_eq!(space.len(), model.len());
            }
        });
    }
}

/// Posts each job it is told as a tuple, a queue message, and joins a group,
/// all through its context.
struct Poster;

impl plexspaces::actor::Actor for Poster {
    type Msg = i64;
    type Reply = ();

    async fn handle(
        &mut self,
        ctx: &mut plexspaces::actor::Context<Self>,
        job: i64,
    ) -> Result<(), plexspaces::actor::ActorError> {
        ctx.tuplespace("jobs")
            .write(tuple!["job", job])
            .await
            .map_err(|e| plexspaces::actor::ActorError::new(e.to_string()))?;
        ctx.channels()
            .send_to_queue("jobs", job.to_le_bytes().to_vec())
            .await;
        let groups = ctx
            .process_groups()
            .map_err(|e| plexspaces::actor::ActorError::new(e.to_string()))?;
        groups
            .join("acme", "billing", "posters", ctx.myself())
            .await
            .map_err(|e| plexspaces::actor::ActorError::new(e.to_string()))?;
        Ok(())
    }
}

#[tokio::test]
async fn an_actor_reaches_the_space_channels_and_groups_through_its_context() {
    let system = ActorSystem::new(env("context").await);
    let poster = system.spawn("poster", Poster).unwrap();
    poster.ask(7, Duration::from_secs(5)).await.unwrap();

    let jobs = Pattern::new(vec![Field::Exact("job".into()), Field::Typed(Kind::Int)]);
    assert_eq!(
        system.tuplespace("jobs").take_if_exists(&jobs).await,
        Some(tuple!["job", 7])
    );
    let delivery = system
        .channels()
        .receive_from_queue("jobs", Some(Duration::from_secs(5)))
        .await
        .expect("the queued job");
    assert_eq!(delivery.payload, 7i64.to_le_bytes().to_vec());
    let members = system
        .process_groups()
        .unwrap()
        .members("acme", "billing", "posters")
        .await
        .unwrap();
    assert_eq!(members, vec![poster.id().clone()]);
}

/// A value nested `depth` levels.
fn nested_value(depth: usize) -> Value {
    (0..depth).fold(Value::Int(0), |inner, _| Value::Tuple(vec![inner]))
}

#[tokio::test]
async fn a_tuple_too_deep_to_decode_again_is_refused_when_written() {
    use plexspaces::tuplespace::NESTING_MAX;
    let space = TupleSpace::new("deep", env("deep").await, TupleSpaceConfig::default());
    // The deepest a journal or a peer can carry is accepted and decodes.
    let deepest = Tuple::new(vec!["deepest".into(), nested_value(NESTING_MAX)]);
    space.write(deepest.clone()).await.unwrap();
    let encoded = postcard::to_allocvec(&deepest).unwrap();
    assert_eq!(postcard::from_bytes::<Tuple>(&encoded).unwrap(), deepest);
    // One level more is refused with a typed error and writes nothing.
    let deeper = Tuple::new(vec!["deeper".into(), nested_value(NESTING_MAX + 1)]);
    assert_eq!(
        space.write(deeper).await,
        Err(TupleSpaceError::TooDeep { max: NESTING_MAX })
    );
    assert_eq!(
        space
            .count(&Pattern::new(vec![Field::Any, Field::Any]))
            .await,
        1
    );
}
