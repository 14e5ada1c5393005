//! The durable tuple space: tuples written and not taken survive a restart
//! on the embedded journal; takes (immediate or blocked) are durable; a
//! refused write is not journaled; a take whose journal entry fails puts
//! the tuple back.

use plexspaces::durability::JournalBackend;
use plexspaces::storage::journal::{Checkpoint, Journal, JournalError, MemoryJournal};
use plexspaces::tuplespace::{
    DurableSpaceError, DurableTupleSpace, Field, Kind, Pattern, Tuple, TupleSpaceConfig,
    TupleSpaceError, Value,
};
use plexspaces::{Env, NodeName};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

async fn env(test: &str, fresh: bool) -> Env {
    let dir = std::env::temp_dir().join(format!("plexspaces-dspace-{}-{test}", std::process::id()));
    if fresh {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Env::tokio(NodeName::new("n1").unwrap())
        .with_data_dir(dir)
        .await
        .unwrap()
}

fn task(n: i64) -> Tuple {
    Tuple(vec![Value::from("task"), Value::Int(n)])
}

fn any_task() -> Pattern {
    Pattern(vec![
        Field::Exact(Value::from("task")),
        Field::Typed(Kind::Int),
    ])
}

async fn open(env: &Env, config: TupleSpaceConfig) -> DurableTupleSpace {
    let journal = JournalBackend::file(env, Default::default()).await.unwrap();
    DurableTupleSpace::open("bag", env.clone(), config, journal)
        .await
        .unwrap()
}

#[tokio::test]
async fn what_was_written_and_not_taken_survives_a_restart() {
    let env1 = env("restart", true).await;
    {
        let space = open(&env1, TupleSpaceConfig::default()).await;
        for n in 1..=5 {
            space.write(task(n)).await.unwrap();
        }
        assert_eq!(space.take(any_task()).await.unwrap(), task(1));
        assert_eq!(
            space.take_if_exists(&any_task()).await.unwrap(),
            Some(task(2))
        );
        // A blocked taker is handed a later write, and that take is durable.
        let exact = Pattern(vec![
            Field::Exact(Value::from("task")),
            Field::Exact(Value::Int(9)),
        ]);
        let waiting = {
            let space = space.clone();
            env1.spawn(async move { space.take(exact).await })
        };
        tokio::task::yield_now().await;
        space.write(task(9)).await.unwrap();
        assert_eq!(waiting.await.unwrap().unwrap(), task(9));
    }
    let env2 = env("restart", false).await;
    let space = open(&env2, TupleSpaceConfig::default()).await;
    let mut left = space.read_all_if_exists(&any_task()).await;
    left.sort();
    assert_eq!(left, [task(3), task(4), task(5)]);
}

#[tokio::test]
async fn a_refused_write_is_not_journaled() {
    let env1 = env("bound", true).await;
    let mut bounded = TupleSpaceConfig::default();
    bounded.tuples_max = 2;
    {
        let space = open(&env1, bounded.clone()).await;
        space.write(task(1)).await.unwrap();
        space.write(task(2)).await.unwrap();
        assert!(matches!(
            space.write(task(3)).await,
            Err(DurableSpaceError::Space(TupleSpaceError::Full { .. }))
        ));
        let huge = Tuple(vec![Value::Bytes(vec![0; 100_000])]);
        assert!(matches!(
            space.write(huge).await,
            Err(DurableSpaceError::Space(
                TupleSpaceError::TupleTooLarge { .. }
            ))
        ));
    }
    let env2 = env("bound", false).await;
    let space = open(&env2, bounded).await;
    assert_eq!(space.count(&any_task()).await, 2);
}

/// A memory journal whose appends fail while `failing` is set.
struct Flaky {
    inner: MemoryJournal,
    failing: Arc<AtomicBool>,
}

impl Journal for Flaky {
    async fn append(&self, stream: &str, data: &[u8]) -> Result<u64, JournalError> {
        self.append_all(stream, &[data]).await
    }
    async fn append_all(&self, stream: &str, entries: &[&[u8]]) -> Result<u64, JournalError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(JournalError::Unavailable {
                reason: "injected".into(),
            });
        }
        self.inner.append_all(stream, entries).await
    }
    async fn replay_each<F: FnMut(u64, &[u8]) + Send>(
        &self,
        stream: &str,
        from_seq: u64,
        visit: F,
    ) -> Result<u64, JournalError> {
        self.inner.replay_each(stream, from_seq, visit).await
    }
    fn last_seq(&self, stream: &str) -> u64 {
        self.inner.last_seq(stream)
    }
    async fn save_checkpoint(
        &self,
        stream: &str,
        seq: u64,
        state: &[u8],
    ) -> Result<(), JournalError> {
        self.inner.save_checkpoint(stream, seq, state).await
    }
    async fn latest_checkpoint(&self, stream: &str) -> Result<Option<Checkpoint>, JournalError> {
        self.inner.latest_checkpoint(stream).await
    }
}

#[tokio::test]
async fn a_take_the_journal_refuses_puts_the_tuple_back() {
    let env = env("flaky", true).await;
    let failing = Arc::new(AtomicBool::new(false));
    let journal = JournalBackend::custom(Flaky {
        inner: MemoryJournal::new(),
        failing: failing.clone(),
    });
    let space = DurableTupleSpace::open("bag", env, TupleSpaceConfig::default(), journal)
        .await
        .unwrap();
    space.write(task(1)).await.unwrap();
    failing.store(true, Ordering::SeqCst);
    assert!(matches!(
        space
            .take_with_timeout(any_task(), Duration::from_secs(1))
            .await,
        Err(DurableSpaceError::Journal(_))
    ));
    assert!(matches!(
        space.write(task(2)).await,
        Err(DurableSpaceError::Journal(_))
    ));
    failing.store(false, Ordering::SeqCst);
    // The tuple is still there (and the failed write is not).
    assert_eq!(space.read_all_if_exists(&any_task()).await, [task(1)]);
    assert_eq!(space.take(any_task()).await.unwrap(), task(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_bound_the_replay_and_keep_exactly_the_journaled_tuples() {
    let env1 = env("checkpoints", true).await;
    let journal = JournalBackend::file(&env1, Default::default())
        .await
        .unwrap();
    let space = DurableTupleSpace::open("bag", env1.clone(), Default::default(), journal.clone())
        .await
        .unwrap()
        .with_checkpoint_every(7);
    // Writers and takers at once, so checkpoints fall while takes are in
    // flight; what stays is every write minus every acknowledged take.
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let space = space.clone();
            env1.spawn(async move {
                for n in 0..100 {
                    space.write(task(w * 1000 + n)).await.unwrap();
                }
            })
        })
        .collect();
    let takers: Vec<_> = (0..2)
        .map(|_| {
            let space = space.clone();
            env1.spawn(async move {
                let mut got = Vec::new();
                for _ in 0..60 {
                    got.push(space.take(any_task()).await.unwrap());
                }
                got
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let mut taken = Vec::new();
    for t in takers {
        taken.extend(t.await.unwrap());
    }
    let mut expected: Vec<Tuple> = (0..2)
        .flat_map(|w| (0..100).map(move |n| task(w * 1000 + n)))
        .filter(|t| !taken.contains(t))
        .collect();
    expected.sort();
    let checkpoint = journal
        .latest_checkpoint("@space bag")
        .await
        .unwrap()
        .expect("320 changes made checkpoints");
    assert!(checkpoint.seq > 300, "checkpointed at {}", checkpoint.seq);
    drop(space);

    let env2 = env("checkpoints", false).await;
    let journal = JournalBackend::file(&env2, Default::default())
        .await
        .unwrap();
    let reopened = DurableTupleSpace::open("bag", env2, Default::default(), journal)
        .await
        .unwrap();
    let mut left = reopened.read_all_if_exists(&any_task()).await;
    left.sort();
    assert_eq!(left, expected);
}
