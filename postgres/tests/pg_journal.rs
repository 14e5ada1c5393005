//! The PostgreSQL journal against a real server (`PLEXSPACES_PG`, started
//! by `scripts/test.sh` through `scripts/postgres.sh`): streams shared by
//! two nodes, fencing between two claimants, racing writers keeping one
//! gap-free history, checkpoints with truncation, and virtual actors
//! moving between nodes with their state, and a durable queue surviving
//! its host.

use plexspaces::actor::{ActorError, ActorSystem};
use plexspaces::distribution::{ClusterSecret, Distribution, DistributionConfig, MemberStatus};
use plexspaces::durability::{DurableActor, DurableContext, JournalBackend};
use plexspaces::virtual_actor::{VirtualActors, VirtualConfig};
use plexspaces::{Env, NodeName};
use plexspaces_postgres::{PgJournal, PgJournalConfig};
use plexspaces_storage::journal::{Journal, JournalError};
use serde::{Deserialize, Serialize};
use std::time::Duration;

fn connection() -> String {
    std::env::var("PLEXSPACES_PG").unwrap_or_else(|_| {
        panic!(
            "PLEXSPACES_PG is not set: run ./scripts/test.sh (it starts a throwaway \
             PostgreSQL), or point PLEXSPACES_PG at a server"
        )
    })
}

/// A stream name unique to this test run.
fn stream(name: &str) -> String {
    format!("{name}-{}", std::process::id())
}

async fn env(name: &str) -> Env {
    let dir = std::env::temp_dir().join(format!("plexspaces-pg-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    Env::tokio(NodeName::new(name).unwrap())
        .with_data_dir(dir)
        .await
        .unwrap()
}

async fn journal(node: &str) -> PgJournal {
    PgJournal::connect(env(node).await, PgJournalConfig::new(connection()))
        .await
        .expect("PostgreSQL reachable at PLEXSPACES_PG")
}

#[tokio::test]
async fn a_stream_is_shared_by_every_node_and_checkpoints_truncate_it() {
    let s = stream("shared");
    let a = journal("a").await;
    a.claim(&s).await.unwrap();
    assert_eq!(a.append(&s, b"+5").await.unwrap(), 1);
    assert_eq!(a.append_all(&s, &[b"+2", b"-1"]).await.unwrap(), 3);

    let b = journal("b").await;
    let seen = b.replay_from(&s, 1).await.unwrap();
    let data: Vec<&[u8]> = seen.iter().map(|e| e.data.as_slice()).collect();
    assert_eq!(data, [&b"+5"[..], b"+2", b"-1"]);

    a.save_checkpoint(&s, 2, b"state@2").await.unwrap();
    let checkpoint = b.latest_checkpoint(&s).await.unwrap().unwrap();
    assert_eq!(
        (checkpoint.seq, checkpoint.state.as_slice()),
        (2, &b"state@2"[..])
    );
    // Entries the checkpoint covers are gone; what follows is kept.
    assert!(matches!(
        b.replay_from(&s, 1).await,
        Err(JournalError::Truncated {
            first_available: 3,
            ..
        })
    ));
    assert_eq!(b.replay_from(&s, 3).await.unwrap()[0].data, b"-1");
    // A checkpoint past the last entry is refused.
    assert!(matches!(
        a.save_checkpoint(&s, 9, b"x").await,
        Err(JournalError::CheckpointAhead { .. })
    ));
}

#[tokio::test]
async fn a_newer_claim_fences_the_older_writer_out() {
    let s = stream("fence");
    let old = journal("old").await;
    let new = journal("new").await;
    old.claim(&s).await.unwrap();
    old.append(&s, b"one").await.unwrap();
    new.claim(&s).await.unwrap();
    assert_eq!(new.last_seq(&s), 1);
    let refused = old.append(&s, b"lost").await.unwrap_err();
    assert!(matches!(refused, JournalError::Fenced { .. }), "{refused}");
    let refused = old.save_checkpoint(&s, 1, b"x").await.unwrap_err();
    assert!(matches!(refused, JournalError::Fenced { .. }), "{refused}");
    assert_eq!(new.append(&s, b"two").await.unwrap(), 2);
    let all = new.replay_from(&s, 1).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.data.clone()).collect::<Vec<_>>(),
        [b"one".to_vec(), b"two".to_vec()]
    );
    // Appending without any claim is refused too.
    let stranger = journal("stranger").await;
    assert!(matches!(
        stranger.append(&s, b"x").await,
        Err(JournalError::Fenced { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_claimants_leave_one_gap_free_history() {
    let s = stream("race");
    let spawner = env("race").await;
    let mut writers = Vec::new();
    for w in 0..4u8 {
        let s = s.clone();
        let j = journal(&format!("w{w}")).await;
        writers.push(spawner.spawn(async move {
            let mut acked = Vec::new();
            for round in 0..10u8 {
                // Each round: take over the stream, then append until fenced.
                j.claim(&s).await.unwrap();
                for n in 0..5u8 {
                    match j.append(&s, &[w, round, n]).await {
                        Ok(seq) => acked.push((seq, vec![w, round, n])),
                        Err(JournalError::Fenced { .. }) => break,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            acked
        }));
    }
    let mut acked = Vec::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }
    let history = journal("reader").await.replay_from(&s, 1).await.unwrap();
    // Sequence numbers are 1..=n without gaps, and the history is exactly
    // the acknowledged appends, each at the number it was acknowledged with.
    assert_eq!(history.len(), acked.len());
    acked.sort();
    for (entry, (seq, data)) in history.iter().zip(&acked) {
        assert_eq!((entry.seq, &entry.data), (*seq, data));
    }
    assert!(
        history
            .iter()
            .enumerate()
            .all(|(i, e)| e.seq == i as u64 + 1)
    );
}

#[derive(Default, Serialize, Deserialize)]
struct Counter {
    total: i64,
}

impl DurableActor for Counter {
    type Msg = i64;
    type Reply = i64;
    async fn handle(&mut self, _ctx: &mut DurableContext<'_>, n: i64) -> Result<i64, ActorError> {
        self.total += n;
        Ok(self.total)
    }
}

async fn node(
    name: &str,
    seeds: &[std::net::SocketAddr],
    kind: &str,
) -> (ActorSystem, Distribution, VirtualActors<Counter>) {
    let env = env(name).await;
    let system = ActorSystem::new(env.clone());
    let config = {
        let mut config = DistributionConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            ClusterSecret::new(b"a-cluster-secret-of-some-length").unwrap(),
        )
        .with_seeds(seeds.iter().copied());
        config.heartbeat_interval = Duration::from_millis(20);
        config.suspect_after = Duration::from_millis(300);
        config.down_after = Duration::from_millis(800);
        config
    };
    let dist = system.start_distribution(config).await.unwrap();
    let journal = PgJournal::connect(env, PgJournalConfig::new(connection()))
        .await
        .unwrap();
    let counters = VirtualActors::register(
        &system,
        VirtualConfig::new(kind, JournalBackend::custom(journal)),
        |_| Counter::default(),
    )
    .unwrap();
    (system, dist, counters)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_actors_move_between_nodes_with_their_state_in_postgres() {
    const WAIT: Duration = Duration::from_secs(15);
    // A kind unique to this run, so streams from earlier runs never mix in.
    let kind = format!("pg{}", std::process::id() % 100_000);
    let (_sa, a, va) = node("pa", &[], &kind).await;
    let (sb, b, vb) = node("pb", &[a.local_addr()], &kind).await;
    for d in [&a, &b] {
        d.wait_for(WAIT, |m| {
            m.iter().filter(|m| m.status == MemberStatus::Up).count() == 2
        })
        .await
        .unwrap();
    }
    // Ids placed on b, called from a.
    let on_b: Vec<String> = (0..40)
        .map(|i| format!("c{i}"))
        .filter(|id| va.owner_of(id).as_ref() == Some(b.node()))
        .take(5)
        .collect();
    assert!(!on_b.is_empty());
    for id in &on_b {
        let counter = va.get(id).unwrap();
        assert_eq!(counter.call(format!("{id}-1"), 5, WAIT).await.unwrap(), 5);
        assert_eq!(counter.call(format!("{id}-2"), 7, WAIT).await.unwrap(), 12);
    }
    assert_eq!(vb.active_ids().len(), on_b.len());
    // b dies; a takes its ids over from PostgreSQL.
    b.shutdown();
    sb.shutdown().await;
    for id in &on_b {
        let counter = va.get(id).unwrap();
        assert_eq!(counter.call(format!("{id}-3"), 1, WAIT).await.unwrap(), 13);
        // A retried key is answered from the journal, not applied again.
        assert_eq!(counter.call(format!("{id}-2"), 7, WAIT).await.unwrap(), 12);
    }
    assert_eq!(va.active_ids().len(), on_b.len());
    a.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reminders_keep_their_table_in_postgres() {
    use plexspaces::reminders::{
        Recurrence, ReminderConfig, ReminderSpec, ReminderTarget, Reminders,
    };
    use plexspaces::seams::Clock;
    const WAIT: Duration = Duration::from_secs(15);
    let env = env("rem").await;
    let system = ActorSystem::new(env.clone());
    let journal = JournalBackend::custom(
        PgJournal::connect(env.clone(), PgJournalConfig::new(connection()))
            .await
            .unwrap(),
    );
    let kind = format!("r{}", std::process::id() % 100_000);
    let counters =
        VirtualActors::register(&system, VirtualConfig::new(&kind, journal.clone()), |_| {
            Counter::default()
        })
        .unwrap();
    let mut config = ReminderConfig::new(journal);
    // One shard: a single stream to claim and load. (A server reused across
    // runs keeps earlier runs' reminders; their kinds, unique per run, are
    // not registered here, so they only wait.)
    config.shards = 1;
    let reminders = Reminders::start(&system, config).await.unwrap();
    reminders.deliver_to(&counters, |_| 1);
    let target = ReminderTarget::new(&kind, "c1");
    let now = env.wall_clock();
    // Due now (fires at once), and one far away that stays registered.
    for (name, due) in [("now", now), ("later", now + Duration::from_secs(3600))] {
        let spec = ReminderSpec {
            name: name.into(),
            first_due: due,
            recurrence: Recurrence::Once,
        };
        reminders.register(&target, spec, WAIT).await.unwrap();
    }
    // The due one is delivered (the counter reaches 1) and, once
    // acknowledged, leaves the table.
    let fired = async {
        loop {
            let names: Vec<String> = reminders
                .list(&target, WAIT)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.name)
                .collect();
            if names == ["later"] {
                return;
            }
            env.sleep(Duration::from_millis(10)).await;
        }
    };
    env.timeout(WAIT, fired)
        .await
        .expect("the due reminder never fired");
    let total = counters
        .get("c1")
        .unwrap()
        .call("check", 0, WAIT)
        .await
        .unwrap();
    assert_eq!(total, 1);
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_tuple_space_in_postgres_hands_each_tuple_to_one_taker() {
    use plexspaces::tuplespace::{Field, Kind, Pattern, SharedSpaces, SharedSpacesConfig, Value};
    const WAIT: Duration = Duration::from_secs(15);
    let kind = format!("ts{}", std::process::id() % 100_000);
    let (sa, a, _) = node("ta", &[], &kind).await;
    let (sb, b, _) = node("tb", &[a.local_addr()], &kind).await;
    for d in [&a, &b] {
        d.wait_for(WAIT, |m| {
            m.iter().filter(|m| m.status == MemberStatus::Up).count() == 2
        })
        .await
        .unwrap();
    }
    let spaces = |system: ActorSystem| async move {
        let journal = PgJournal::connect(system.env().clone(), PgJournalConfig::new(connection()))
            .await
            .unwrap();
        SharedSpaces::register(
            &system,
            SharedSpacesConfig::new(JournalBackend::custom(journal)),
        )
        .unwrap()
    };
    let on_a = spaces(sa.clone()).await;
    let on_b = spaces(sb.clone()).await;
    // A space unique to this run, hosted on b.
    let name = (0..)
        .map(|i| format!("bag{}-{i}", std::process::id() % 100_000))
        .find(|name| on_a.host_of(name).as_ref() == Some(b.node()))
        .unwrap();
    let tasks = Pattern::new(vec![Field::Exact("task".into()), Field::Typed(Kind::Int)]);
    on_a.space(&name)
        .unwrap()
        .write_all((0..60).map(|i| plexspaces::tuple!("task", i)).collect())
        .await
        .unwrap();

    // Takers on both nodes at once; then b dies with tasks left, and a
    // takes the rest from the space it reactivates from PostgreSQL.
    let take_some = |spaces: SharedSpaces, env: Env, limit: usize| {
        let space = spaces.space(&name).unwrap();
        let tasks = tasks.clone();
        env.spawn(async move {
            let mut got = Vec::new();
            while got.len() < limit {
                match space.take_if_exists(&tasks).await.unwrap() {
                    Some(t) => match t.fields()[1] {
                        Value::Int(n) => got.push(n),
                        _ => panic!("{t:?}"),
                    },
                    None => break,
                }
            }
            got
        })
    };
    let mut taken = Vec::new();
    let first = [
        take_some(on_a.clone(), sa.env().clone(), 15),
        take_some(on_b.clone(), sb.env().clone(), 15),
        take_some(on_a.clone(), sa.env().clone(), 15),
    ];
    for taker in first {
        taken.extend(taker.await.unwrap());
    }
    assert_eq!(taken.len(), 45);
    b.shutdown();
    sb.shutdown().await;
    taken.extend(
        take_some(on_a.clone(), sa.env().clone(), 100)
            .await
            .unwrap(),
    );
    taken.sort();
    assert_eq!(taken, (0..60).collect::<Vec<i64>>(), "each task taken once");
    a.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_queue_in_postgres_keeps_every_acknowledged_send_when_its_host_dies() {
    use plexspaces::channels::{DurableQueues, DurableQueuesConfig};
    const WAIT: Duration = Duration::from_secs(15);
    let kind = format!("qk{}", std::process::id() % 100_000);
    let (sa, a, _) = node("qa", &[], &kind).await;
    let (sb, b, _) = node("qb", &[a.local_addr()], &kind).await;
    for d in [&a, &b] {
        d.wait_for(WAIT, |m| {
            m.iter().filter(|m| m.status == MemberStatus::Up).count() == 2
        })
        .await
        .unwrap();
    }
    let queues = |system: ActorSystem| async move {
        let journal = PgJournal::connect(system.env().clone(), PgJournalConfig::new(connection()))
            .await
            .unwrap();
        let mut config = DurableQueuesConfig::new(JournalBackend::custom(journal));
        // A kind unique to this run, so queues of earlier runs never mix in.
        config.hosting.kind = format!("queue{}", std::process::id() % 100_000);
        DurableQueues::register(&system, config).unwrap()
    };
    let on_a = queues(sa.clone()).await;
    let on_b = queues(sb.clone()).await;
    // Hosted on b, which dies with messages in the queue and one in flight.
    let name = (0..)
        .map(|i| format!("orders-{i}"))
        .find(|name| on_a.host_of(name).as_ref() == Some(b.node()))
        .unwrap();
    let queue = on_a.queue(&name).unwrap();
    for n in 0..20u8 {
        queue.send(vec![n]).await.unwrap();
    }
    let in_flight = on_b
        .queue(&name)
        .unwrap()
        .receive(Duration::from_secs(1), WAIT)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(in_flight.payload, vec![0]);
    b.shutdown();
    sb.shutdown().await;
    // a reactivates the queue from PostgreSQL: every message, the one in
    // flight again (its deadline passed) with its delivery counted.
    let mut got = Vec::new();
    while let Some(d) = queue
        .receive(Duration::from_secs(30), Duration::from_secs(3))
        .await
        .unwrap()
    {
        got.push((d.payload[0], d.delivery));
        queue.ack(&d).await.unwrap();
    }
    got.sort();
    let mut expected: Vec<(u8, u32)> = (1..20).map(|n| (n, 1)).collect();
    expected.insert(0, (0, 2));
    assert_eq!(got, expected);
    sa.shutdown().await;
    a.shutdown();
}
