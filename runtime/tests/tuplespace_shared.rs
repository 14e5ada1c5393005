//! Shared tuple spaces on tokio: leases that run out put their tuple back
//! and can no longer be completed; blocked takes return at their timeout
//! or when a tuple is written; refused writes write nothing; empty polls
//! cost no journal write; and three real nodes on loopback sharing a
//! journal server take every task exactly once, also after the node
//! hosting the space is killed.

mod support;

use plexspaces::actor::ActorSystem;
use plexspaces::distribution::Distribution;
use plexspaces::durability::JournalBackend;
use plexspaces::seams::Clock;
use plexspaces::storage::journal::Journal;
use plexspaces::tuple;
use plexspaces::tuplespace::{
    Action, Field, Kind, NESTING_MAX, Pattern, SharedSpaceError, SharedSpaces, SharedSpacesConfig,
    SharedTupleSpace, Tuple, TupleSpaceError, Value,
};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use support::{WAIT, env, paused_wall_env};

fn tasks() -> Pattern {
    Pattern::new(vec![Field::Exact("task".into()), Field::Typed(Kind::Int)])
}

#[tokio::test(start_paused = true)]
async fn a_lease_that_runs_out_puts_its_tuple_back_and_cannot_complete() {
    let env = paused_wall_env("lease").await;
    let system = ActorSystem::new(env.clone());
    let spaces =
        SharedSpaces::register(&system, SharedSpacesConfig::new(JournalBackend::memory())).unwrap();
    let space = spaces.space("jobs").unwrap();
    space.write(tuple!("task", 1)).await.unwrap();

    let first = space
        .take_leased(tasks(), Duration::from_secs(1), WAIT)
        .await
        .unwrap()
        .expect("the task is there");
    assert_eq!(first.tuple, tuple!("task", 1));
    assert_eq!(space.count(&tasks()).await.unwrap(), 0, "leased: invisible");
    assert_eq!(space.take_if_exists(&tasks()).await.unwrap(), None);

    env.sleep(Duration::from_millis(1_001)).await;
    let second = space
        .take_leased(tasks(), Duration::from_secs(1), WAIT)
        .await
        .unwrap()
        .expect("the run-out lease put the task back");
    assert_eq!(second.tuple, tuple!("task", 1));
    assert!(matches!(
        space
            .complete(first.token, vec![tuple!("done", 1, "first")])
            .await,
        Err(SharedSpaceError::LeaseLost)
    ));
    space
        .complete(second.token, vec![tuple!("done", 1, "second")])
        .await
        .unwrap();
    let done = Pattern::new(vec![Field::Exact("done".into()), Field::Any, Field::Any]);
    assert_eq!(
        space.read_all_if_exists(&done).await.unwrap(),
        vec![tuple!("done", 1, "second")]
    );

    // A release puts it back at once.
    space.write(tuple!("task", 2)).await.unwrap();
    let third = space
        .take_leased(tasks(), Duration::from_secs(60), WAIT)
        .await
        .unwrap()
        .unwrap();
    space.release(third.token).await.unwrap();
    assert_eq!(
        space.take_if_exists(&tasks()).await.unwrap(),
        Some(tuple!("task", 2))
    );
}

#[tokio::test(start_paused = true)]
async fn blocked_takes_wait_for_a_write_or_their_timeout_without_polling() {
    let env = env("block").await;
    let system = ActorSystem::new(env.clone());
    let journal = JournalBackend::memory();
    let spaces = SharedSpaces::register(&system, SharedSpacesConfig::new(journal.clone())).unwrap();
    let space = spaces.space("s").unwrap();
    space.write(tuple!("other", 1)).await.unwrap();
    let stream = format!("{}:s", SharedSpaces::KIND);
    let written = journal.last_seq(&stream);

    // A pattern that can never match returns at its timeout; meanwhile
    // it only registered and renewed its registration once a second (a
    // message and a reply entry each, with the unregistering at the
    // end), never polled.
    let never = Pattern::new(vec![Field::Exact("nothing".into())]);
    let started = env.now();
    let got = space
        .take_with_timeout(never.clone(), Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(got, None);
    let waited = env.now().saturating_duration_since(started);
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_millis(2_100),
        "returned after {waited:?}"
    );
    // Each call journals its message, the time it read and its reply.
    let calls = (journal.last_seq(&stream) - written) / 3;
    assert!(
        (3..=5).contains(&calls),
        "a 2 s wait renewing every second made {calls} journaled calls"
    );
    assert_eq!(
        space
            .read_with_timeout(never, Duration::from_millis(10))
            .await
            .unwrap(),
        None
    );

    // A blocked take gets a tuple written later at once: woken by the
    // write, not by its renewal a second later.
    let taker = {
        let space = space.clone();
        let env = env.clone();
        env.clone().spawn(async move {
            let tuple = space.take(tasks()).await.unwrap();
            (tuple, env.now())
        })
    };
    env.sleep(Duration::from_millis(500)).await;
    let written_at = env.now();
    space.write(tuple!("task", 7)).await.unwrap();
    let (tuple, taken_at) = taker.await.unwrap();
    assert_eq!(tuple, tuple!("task", 7));
    assert!(
        taken_at.saturating_duration_since(written_at) <= Duration::from_millis(5),
        "taken {:?} after the write",
        taken_at.saturating_duration_since(written_at)
    );
}

#[tokio::test(start_paused = true)]
async fn blocked_takers_are_served_first_come_first_served() {
    let env = env("fifo").await;
    let system = ActorSystem::new(env.clone());
    let spaces =
        SharedSpaces::register(&system, SharedSpacesConfig::new(JournalBackend::memory())).unwrap();
    let space = spaces.space("s").unwrap();
    let mut takers = Vec::new();
    for i in 0..3 {
        let space = space.clone();
        takers.push(env.spawn(async move { (i, space.take(tasks()).await.unwrap()) }));
        // Each registers before the next starts.
        env.sleep(Duration::from_millis(10)).await;
    }
    // A blocked read registered last sees a copy of the first write.
    let reader = {
        let space = space.clone();
        env.spawn(async move { space.read(tasks()).await.unwrap() })
    };
    env.sleep(Duration::from_millis(10)).await;
    for n in 0..3 {
        space.write(tuple!("task", n)).await.unwrap();
        env.sleep(Duration::from_millis(10)).await;
    }
    let mut got = Vec::new();
    for taker in takers {
        got.push(taker.await.unwrap());
    }
    assert_eq!(
        got,
        vec![
            (0, tuple!("task", 0)),
            (1, tuple!("task", 1)),
            (2, tuple!("task", 2))
        ],
        "the oldest waiter gets each tuple"
    );
    // The read waited behind the takers: it saw a tuple no earlier taker
    // wanted (none here), so it is still waiting, and gets the next.
    space.write(tuple!("task", 9)).await.unwrap();
    assert_eq!(reader.await.unwrap(), tuple!("task", 9));
    assert_eq!(
        space.take_if_exists(&tasks()).await.unwrap(),
        Some(tuple!("task", 9)),
        "a read leaves the tuple"
    );
}

#[tokio::test(start_paused = true)]
async fn a_tuple_handed_to_an_abandoned_take_comes_back() {
    let env = paused_wall_env("abandoned").await;
    let system = ActorSystem::new(env.clone());
    let spaces =
        SharedSpaces::register(&system, SharedSpacesConfig::new(JournalBackend::memory())).unwrap();
    let space = spaces.space("s").unwrap();
    let abandoned = {
        let space = space.clone();
        env.spawn(async move { space.take(tasks()).await })
    };
    env.sleep(Duration::from_millis(10)).await;
    abandoned.abort();
    let _ = abandoned.await;
    // Handed to the registration the dropped take left behind...
    space.write(tuple!("task", 1)).await.unwrap();
    assert_eq!(space.count(&tasks()).await.unwrap(), 0);
    // ...and back once that registration lapses (three renewal periods).
    env.sleep(Duration::from_millis(3_100)).await;
    assert_eq!(
        space
            .take_with_timeout(tasks(), Duration::from_secs(1))
            .await
            .unwrap(),
        Some(tuple!("task", 1))
    );
}

#[tokio::test(start_paused = true)]
async fn refused_writes_write_nothing() {
    let env = env("refused").await;
    let system = ActorSystem::new(env.clone());
    let mut config = SharedSpacesConfig::new(JournalBackend::memory());
    config.space.tuples_max = 3;
    config.space.tuple_bytes_max = 100;
    let spaces = SharedSpaces::register(&system, config).unwrap();
    let space = spaces.space("small").unwrap();
    let any = Pattern::new(vec![Field::Any]);

    let too_big = tuple!("x".repeat(200));
    let refused = space.write_all(vec![tuple!("a"), too_big]).await;
    assert!(matches!(
        refused,
        Err(SharedSpaceError::Space(
            TupleSpaceError::TupleTooLarge { .. }
        ))
    ));
    assert_eq!(space.count(&any).await.unwrap(), 0, "all or nothing");
    // Nested deeper than the host could decode: refused before sending.
    let too_deep = (0..=NESTING_MAX).fold(Value::Int(0), |inner, _| Value::Tuple(vec![inner]));
    assert!(matches!(
        space
            .write_all(vec![tuple!("a"), Tuple::new(vec![too_deep])])
            .await,
        Err(SharedSpaceError::Space(TupleSpaceError::TooDeep { .. }))
    ));
    assert_eq!(space.count(&any).await.unwrap(), 0, "all or nothing");
    space
        .write_all(vec![tuple!("a"), tuple!("b"), tuple!("c")])
        .await
        .unwrap();
    assert!(matches!(
        space.write(tuple!("d")).await,
        Err(SharedSpaceError::Space(TupleSpaceError::Full {
            tuples_max: 3,
            ..
        }))
    ));
    assert_eq!(space.take_all_if_exists(&any).await.unwrap().len(), 3);
    assert!(space.read_all_if_exists(&any).await.unwrap().is_empty());
    assert!(matches!(
        spaces.space(""),
        Err(plexspaces::virtual_actor::VirtualError::InvalidId(_))
    ));
}

struct Node {
    system: ActorSystem,
    dist: Distribution,
    spaces: SharedSpaces,
}

async fn node(name: &str, seeds: &[SocketAddr], journal_server: SocketAddr) -> Node {
    node_with(name, seeds, journal_server, |_| {}).await
}

async fn node_with(
    name: &str,
    seeds: &[SocketAddr],
    journal_server: SocketAddr,
    configure: impl FnOnce(&mut SharedSpacesConfig),
) -> Node {
    let (system, dist, journal) = support::node(env(name).await, seeds, journal_server).await;
    let mut config = SharedSpacesConfig::new(journal);
    configure(&mut config);
    let spaces = SharedSpaces::register(&system, config).unwrap();
    Node {
        system,
        dist,
        spaces,
    }
}

async fn all_up(node: &Node, count: usize) {
    support::all_up(&node.dist, count).await;
}

/// Workers on `nodes`, three per node, take tasks from space `name` until none is left
/// for 300 ms; every task each one got.
async fn drain(nodes: &[&Node], name: &str) -> Vec<i64> {
    let mut workers = Vec::new();
    for node in nodes {
        for _ in 0..3 {
            let space = node.spaces.space(name).unwrap();
            workers.push(node.system.env().spawn(async move {
                let mut got = Vec::new();
                while let Some(task) = space
                    .take_with_timeout(tasks(), Duration::from_millis(300))
                    .await
                    .unwrap()
                {
                    let plexspaces::tuplespace::Value::Int(n) = task.fields()[1] else {
                        panic!("{task:?}");
                    };
                    got.push(n);
                }
                got
            }));
        }
    }
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.unwrap());
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_on_three_nodes_take_every_task_once_even_when_the_host_dies() {
    let server = support::journal_server(env("storage").await).await;
    let journal = server.local_addr();
    let a = node("sa", &[], journal).await;
    let b = node("sb", &[a.dist.local_addr()], journal).await;
    let c = node("sc", &[a.dist.local_addr()], journal).await;
    for n in [&a, &b, &c] {
        all_up(n, 3).await;
    }

    // A space hosted off the seed, so killing its host leaves the others
    // connected.
    let name = (0..)
        .map(|i| format!("bag-{i}"))
        .find(|name| a.spaces.host_of(name).as_ref() != Some(a.system.node()))
        .unwrap();
    let bag = a.spaces.space(&name).unwrap();
    bag.write_all((0..150).map(|i| tuple!("task", i)).collect())
        .await
        .unwrap();
    let mut taken = drain(&[&a, &b, &c], &name).await;
    taken.sort();
    assert_eq!(taken, (0..150).collect::<Vec<_>>(), "each task taken once");

    // Kill the node hosting the space (not the seed), with tasks in it:
    // the survivors reactivate it from the journal and take each once.
    bag.write_all((150..250).map(|i| tuple!("task", i)).collect())
        .await
        .unwrap();
    let host = a.spaces.host_of(&name).unwrap();
    let (victim, survivor) = if &host == c.system.node() {
        (&c, &b)
    } else {
        (&b, &c)
    };
    victim.dist.shutdown();
    victim.system.shutdown().await;
    let mut taken = drain(&[&a, survivor], &name).await;
    taken.sort();
    let expected: Vec<i64> = (150..250).collect();
    assert_eq!(
        taken, expected,
        "tasks lost or taken twice after the host died"
    );
    let left: BTreeSet<_> = bag
        .read_all_if_exists(&tasks())
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert!(left.is_empty());
    server.shutdown();
}

/// Waits until `space` has `n` blocked operations registered.
async fn until_waiting(node: &Node, space: &SharedTupleSpace, n: usize) {
    let registered = async {
        while space.waiting().await.unwrap() != n {
            node.system.env().sleep(Duration::from_millis(5)).await;
        }
    };
    node.system
        .env()
        .timeout(WAIT, registered)
        .await
        .expect("the waiters never registered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_take_on_one_node_is_woken_by_a_write_on_another() {
    let server = support::journal_server(env("wstorage").await).await;
    let journal = server.local_addr();
    // Renewals a minute apart: only a pushed wake-up can end these waits
    // within the test's bound.
    let slow = |config: &mut SharedSpacesConfig| config.wait_refresh = Duration::from_secs(60);
    let a = node_with("wa", &[], journal, slow).await;
    let b = node_with("wb", &[a.dist.local_addr()], journal, slow).await;
    let c = node_with("wc", &[a.dist.local_addr()], journal, slow).await;
    for n in [&a, &b, &c] {
        all_up(n, 3).await;
    }
    // Hosted on b, so the write goes a -> b and the wake b -> c.
    let name = (0..)
        .map(|i| format!("wake-{i}"))
        .find(|name| a.spaces.host_of(name).as_ref() == Some(b.system.node()))
        .unwrap();
    // The read registers first (a blocked take registered before it
    // would take the tuple before the read is served, as in memory).
    let space = a.spaces.space(&name).unwrap();
    let reader = {
        let space = space.clone();
        a.system
            .env()
            .spawn(async move { space.wait_until_exists(tasks()).await })
    };
    until_waiting(&a, &space, 1).await;
    let taker = {
        let space = c.spaces.space(&name).unwrap();
        c.system.env().spawn(async move {
            space
                .take_with_timeout(tasks(), Duration::from_secs(20))
                .await
        })
    };
    until_waiting(&a, &space, 2).await;
    let mut subscriber = c
        .spaces
        .space(&name)
        .unwrap()
        .subscribe(tasks(), &[Action::Write])
        .await
        .unwrap();
    space.write(tuple!("task", 42)).await.unwrap();
    let taken = a
        .system
        .env()
        .timeout(Duration::from_secs(10), taker)
        .await
        .expect("the take on c was never woken")
        .unwrap();
    let read = a
        .system
        .env()
        .timeout(Duration::from_secs(10), reader)
        .await
        .expect("the read on a was never woken")
        .unwrap();
    assert_eq!(taken.unwrap(), Some(tuple!("task", 42)));
    read.unwrap();
    assert_eq!(space.count(&tasks()).await.unwrap(), 0, "taken once");
    // A subscriber on c saw the write, pushed too.
    let event = a
        .system
        .env()
        .timeout(Duration::from_secs(10), subscriber.next(WAIT))
        .await
        .expect("the event never reached c")
        .unwrap()
        .unwrap();
    assert_eq!(
        (event.action, event.tuple),
        (Action::Write, tuple!("task", 42))
    );
    server.shutdown();
}

#[tokio::test(start_paused = true)]
async fn subscribers_see_every_matching_write_and_take_in_order() {
    let env = paused_wall_env("subscribe").await;
    let system = ActorSystem::new(env.clone());
    let spaces =
        SharedSpaces::register(&system, SharedSpacesConfig::new(JournalBackend::memory())).unwrap();
    let space = spaces.space("s").unwrap();
    space.write(tuple!("task", 0)).await.unwrap(); // before the subscription
    let mut both = space
        .subscribe(tasks(), &[Action::Write, Action::Take])
        .await
        .unwrap();
    let mut takes = space.subscribe(tasks(), &[Action::Take]).await.unwrap();
    let reader = env.spawn(async move {
        let mut seen = Vec::new();
        for _ in 0..4 {
            let event = both.next(WAIT).await.unwrap().unwrap();
            seen.push((event.action, event.tuple));
        }
        (seen, both)
    });
    env.sleep(Duration::from_millis(10)).await;
    let started = env.now();
    space.write(tuple!("task", 1)).await.unwrap();
    space.write(tuple!("other")).await.unwrap();
    space.take(tasks()).await.unwrap(); // task 0, the oldest
    space.write(tuple!("task", 2)).await.unwrap();
    space.take_if_exists(&tasks()).await.unwrap(); // task 1
    let (seen, both) = reader.await.unwrap();
    assert_eq!(
        seen,
        vec![
            (Action::Write, tuple!("task", 1)),
            (Action::Take, tuple!("task", 0)),
            (Action::Write, tuple!("task", 2)),
            (Action::Take, tuple!("task", 1)),
        ]
    );
    assert!(
        env.now().saturating_duration_since(started) < Duration::from_millis(5),
        "woken by each change, not by a renewal"
    );
    let taken: Vec<Tuple> = [
        takes.next(WAIT).await.unwrap().unwrap(),
        takes.next(WAIT).await.unwrap().unwrap(),
    ]
    .into_iter()
    .map(|e| e.tuple)
    .collect();
    assert_eq!(taken, vec![tuple!("task", 0), tuple!("task", 1)]);
    both.unsubscribe().await.unwrap();
    // A subscription left unread for three renewal periods lapses, and
    // says so.
    env.sleep(Duration::from_secs(4)).await;
    space.write(tuple!("task", 3)).await.unwrap();
    assert!(matches!(
        takes.next(WAIT).await,
        Err(SharedSpaceError::SubscriptionLapsed)
    ));
}
