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
use plexspaces::storage::disk::FsDisk;
use plexspaces::storage::journal::Journal;
use plexspaces::tokio_backend::{OsRng, TokioClock, TokioSpawner};
use plexspaces::tuplespace::{
    Field, Kind, NESTING_MAX, Pattern, SharedSpaceError, SharedSpaces, SharedSpacesConfig, Tuple,
    TupleSpaceError, Value,
};
use plexspaces::{Env, NodeName, tuple};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use support::WAIT;

fn dir(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "plexspaces-shared-space-{}-{name}",
        std::process::id()
    ))
}

async fn env(name: &str) -> Env {
    let dir = dir(name);
    let _ = std::fs::remove_dir_all(&dir);
    Env::tokio(NodeName::new(name).unwrap())
        .with_data_dir(dir)
        .await
        .unwrap()
}

fn tasks() -> Pattern {
    Pattern::new(vec![Field::Exact("task".into()), Field::Typed(Kind::Int)])
}

#[tokio::test(start_paused = true)]
async fn a_lease_that_runs_out_puts_its_tuple_back_and_cannot_complete() {
    // Leases run on the wall clock (the host may move between nodes): one
    // that moves with the paused clock.
    let dir = dir("lease");
    let _ = std::fs::remove_dir_all(&dir);
    let env = Env::new(
        NodeName::new("lease").unwrap(),
        TokioClock::with_wall_from(std::time::SystemTime::UNIX_EPOCH),
        TokioSpawner::current(),
        OsRng::new(),
        FsDisk::open_dir(dir).await.unwrap(),
        plexspaces::net::TcpNet::new(),
    );
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
async fn blocked_takes_wait_for_a_write_or_their_timeout_and_polls_write_nothing() {
    let env = env("block").await;
    let system = ActorSystem::new(env.clone());
    let journal = JournalBackend::memory();
    let spaces = SharedSpaces::register(&system, SharedSpacesConfig::new(journal.clone())).unwrap();
    let space = spaces.space("s").unwrap();
    space.write(tuple!("other", 1)).await.unwrap();
    let stream = format!("{}:s", SharedSpaces::KIND);
    let written = journal.last_seq(&stream);

    // A pattern that can never match returns at its timeout, and the
    // hundreds of polls it made never touched the journal.
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
    assert_eq!(
        journal.last_seq(&stream),
        written,
        "empty polls were journaled"
    );
    assert_eq!(
        space
            .read_with_timeout(never, Duration::from_millis(10))
            .await
            .unwrap(),
        None
    );

    // A blocked take gets a tuple written later, within the poll bound.
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
    assert!(taken_at.saturating_duration_since(written_at) <= Duration::from_millis(60));
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
    let (system, dist, journal) = support::node(env(name).await, seeds, journal_server).await;
    let spaces = SharedSpaces::register(&system, SharedSpacesConfig::new(journal)).unwrap();
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
