//! Migrating virtual actors on three loopback nodes sharing a journal
//! server: a migration moves the id to the named node with its state, runs
//! the departure and arrival hooks, holds until released; a migration to a
//! node that is not a member is refused and changes nothing.

mod support;

use plexspaces::actor::{ActorError, ActorSystem};
use plexspaces::distribution::Distribution;
use plexspaces::durability::{DurableActor, DurableContext, JournalBackend};
use plexspaces::seams::Clock;
use plexspaces::virtual_actor::{MigrationError, MobilityConfig, VirtualActors, VirtualConfig};
use plexspaces::{Env, NodeName};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default, Serialize, Deserialize)]
struct Account {
    balance: u64,
    deposits: u32,
}

#[derive(Clone, Serialize, Deserialize)]
enum AccountMsg {
    Deposit(u64),
    Balance,
}

impl DurableActor for Account {
    type Msg = AccountMsg;
    type Reply = (u64, u32);
    async fn handle(
        &mut self,
        _ctx: &mut DurableContext<'_>,
        msg: AccountMsg,
    ) -> Result<(u64, u32), ActorError> {
        if let AccountMsg::Deposit(n) = msg {
            self.balance += n;
            self.deposits += 1;
        }
        Ok((self.balance, self.deposits))
    }
}

async fn env(test: &str, node: &str) -> Env {
    let dir =
        std::env::temp_dir().join(format!("plexspaces-mobility-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    Env::tokio(NodeName::new(node).unwrap())
        .with_data_dir(dir)
        .await
        .unwrap()
}

type Hooks = Arc<Mutex<Vec<String>>>;
/// Each recovery: the activation's id, its checkpoint and what it replayed.
type Recoveries = Arc<Mutex<Vec<(String, Option<u64>, u64)>>>;

fn kind(journal: JournalBackend, hooks: &Hooks, recoveries: &Recoveries) -> VirtualConfig {
    let (departed, arrived) = (hooks.clone(), hooks.clone());
    let mut config = VirtualConfig::new("account", journal);
    let recoveries = recoveries.clone();
    config.durability.on_recovered = Some(Arc::new(move |report| {
        recoveries.lock().unwrap().push((
            report.actor.to_string(),
            report.checkpoint_seq,
            report.replayed_messages,
        ))
    }));
    config.with_mobility(
        MobilityConfig::default()
            .refresh_every(Duration::from_millis(50))
            .on_departure(move |id, to| {
                departed
                    .lock()
                    .unwrap()
                    .push(format!("{id} leaves for {to}"))
            })
            .on_arrival(move |id, here| {
                arrived
                    .lock()
                    .unwrap()
                    .push(format!("{id} arrives at {here}"))
            }),
    )
}

/// Waits (on `env`'s clock) until `done` holds.
async fn until(env: &Env, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = env.now() + support::WAIT;
    while !done() {
        assert!(env.now() < deadline, "never happened: {what}");
        env.sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_moves_the_actor_with_its_state_and_holds_until_released() {
    let journal = support::journal_server(env("j", "j1").await).await;
    let mut nodes: Vec<(ActorSystem, Distribution, VirtualActors<Account>)> = Vec::new();
    let hooks: Hooks = Arc::default();
    let recoveries: Recoveries = Arc::default();
    for name in ["a1", "b1", "c1"] {
        let seeds: Vec<_> = nodes
            .first()
            .map(|n| n.1.local_addr())
            .into_iter()
            .collect();
        let (system, dist, backend) =
            support::node(env(name, name).await, &seeds, journal.local_addr()).await;
        let accounts = VirtualActors::register(&system, kind(backend, &hooks, &recoveries), |_| {
            Account::default()
        })
        .unwrap();
        nodes.push((system, dist, accounts));
    }
    for (_, dist, _) in &nodes {
        support::all_up(dist, 3).await;
    }
    let env_a = nodes[0].0.env().clone();
    let call = |i: usize, key: &str, msg: AccountMsg| {
        let alice = nodes[i].2.get("alice").unwrap();
        let key = key.to_string();
        async move { alice.call(key, msg, Duration::from_secs(10)).await }
    };
    assert_eq!(call(0, "d1", AccountMsg::Deposit(10)).await, Ok((10, 1)));
    let home = nodes[0].2.owner_of("alice").unwrap();
    let hosts = |nodes: &[(ActorSystem, Distribution, VirtualActors<Account>)]| -> Vec<NodeName> {
        nodes
            .iter()
            .filter(|(_, _, a)| a.active_ids().contains(&"alice".to_string()))
            .map(|(s, _, _)| s.node().clone())
            .collect()
    };
    assert_eq!(hosts(&nodes), std::slice::from_ref(&home));

    // A node that is not a member: refused, nothing moves.
    let ghost = NodeName::new("ghost").unwrap();
    assert_eq!(
        nodes[1].2.migrate("alice", &ghost).await,
        Err(MigrationError::NodeUnavailable(ghost))
    );
    assert_eq!(nodes[0].2.pinned("alice"), None);

    // Migrate, from a node that is neither the home nor the target.
    let target = ["a1", "b1", "c1"]
        .iter()
        .map(|n| NodeName::new(n).unwrap())
        .find(|n| *n != home)
        .unwrap();
    let from = nodes
        .iter()
        .position(|(s, _, _)| *s.node() != home && *s.node() != target)
        .unwrap();
    nodes[from].2.migrate("alice", &target).await.unwrap();
    for (_, _, accounts) in &nodes {
        until(&env_a, "every node reads the migration", || {
            accounts.pinned("alice").as_ref() == Some(&target)
        })
        .await;
        assert_eq!(accounts.owner_of("alice").as_ref(), Some(&target));
    }
    // The departing activation left a checkpoint (its departure hook runs
    // after it stopped), so the new one replays nothing.
    until(&env_a, "the departure", || {
        hooks.lock().unwrap().iter().any(|h| h.contains("leaves"))
    })
    .await;
    // The state moved with it: calls from every node reach it, once each.
    for i in 0..3 {
        let key = format!("after-{i}");
        let reply = call(i, &key, AccountMsg::Deposit(1)).await.unwrap();
        assert_eq!(reply, (11 + i as u64, 2 + i as u32));
    }
    until(&env_a, "the old activation ends", || {
        hosts(&nodes) == [target.clone()]
    })
    .await;
    let arrival = format!("account:alice@{target}");
    let recovered: Vec<_> = recoveries
        .lock()
        .unwrap()
        .iter()
        .filter(|(actor, _, _)| *actor == arrival)
        .cloned()
        .collect();
    assert!(
        matches!(recovered.first(), Some((_, Some(_), 0))),
        "recovered from the departure's checkpoint: {recovered:?}"
    );
    // The two hooks run on different nodes: in either order.
    let mut log = hooks.lock().unwrap().clone();
    log.sort();
    assert_eq!(
        log,
        [
            format!("alice arrives at {target}"),
            format!("alice leaves for {target}")
        ]
    );
    // It stays while idle deactivation and reactivation come and go.
    nodes
        .iter()
        .find(|(s, _, _)| *s.node() == target)
        .unwrap()
        .2
        .deactivate_all();
    assert_eq!(call(0, "later", AccountMsg::Deposit(1)).await, Ok((14, 5)));
    assert_eq!(hosts(&nodes), std::slice::from_ref(&target));
    assert_eq!(hooks.lock().unwrap().len(), 2, "one arrival per migration");

    // Released: rendezvous placement decides again.
    nodes[0].2.release("alice").await.unwrap();
    for (_, _, accounts) in &nodes {
        until(&env_a, "every node reads the release", || {
            accounts.pinned("alice").is_none()
        })
        .await;
        assert_eq!(accounts.owner_of("alice").as_ref(), Some(&home));
    }
    assert_eq!(
        call(1, "home-again", AccountMsg::Deposit(1)).await,
        Ok((15, 6))
    );
    until(&env_a, "back home", || hosts(&nodes) == [home.clone()]).await;
    assert!(nodes[0].2.placement_version() >= 2);

    // A kind without mobility refuses.
    let plain = VirtualActors::register(
        &nodes[0].0,
        VirtualConfig::new("plain", JournalBackend::memory()),
        |_| Account::default(),
    )
    .unwrap();
    assert!(matches!(
        plain.migrate("x", &target).await,
        Err(MigrationError::NotEnabled(_))
    ));
}
