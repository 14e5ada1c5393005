//! Virtual actors on tokio: activation on first message, idle deactivation
//! keeping state, eager activation, typed id errors; and three real nodes
//! on loopback sharing a journal server: one activation per id, a killed
//! node's ids reactivated elsewhere with their state.

mod support;

use plexspaces::actor::{ActorError, ActorSystem};
use plexspaces::distribution::Distribution;
use plexspaces::durability::{DurableActor, DurableContext, JournalBackend};
use plexspaces::seams::Clock;
use plexspaces::storage::journal::MemoryJournal;
use plexspaces::virtual_actor::{ActivationStrategy, VirtualActors, VirtualConfig, VirtualError};
use plexspaces::{Env, NodeName};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use support::WAIT;

/// A counter that remembers every amount added.
#[derive(Default, Serialize, Deserialize)]
struct Counter {
    total: i64,
    adds: u32,
}

#[derive(Clone, Serialize, Deserialize)]
enum CounterMsg {
    Add(i64),
    Get,
}

impl DurableActor for Counter {
    type Msg = CounterMsg;
    type Reply = (i64, u32);

    async fn handle(
        &mut self,
        _ctx: &mut DurableContext<'_>,
        msg: CounterMsg,
    ) -> Result<(i64, u32), ActorError> {
        if let CounterMsg::Add(n) = msg {
            self.total += n;
            self.adds += 1;
        }
        Ok((self.total, self.adds))
    }
}

fn dir(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("plexspaces-virtual-{}-{name}", std::process::id()))
}

async fn env(name: &str) -> Env {
    let dir = dir(name);
    let _ = std::fs::remove_dir_all(&dir);
    Env::tokio(NodeName::new(name).unwrap())
        .with_data_dir(dir)
        .await
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn the_first_message_activates_and_idle_deactivation_keeps_the_state() {
    let system = ActorSystem::new(env("solo").await);
    let journal = JournalBackend::Memory(Arc::new(MemoryJournal::new()));
    let mut config = VirtualConfig::new("counter", journal);
    config.deactivation_timeout = Duration::from_secs(60);
    let counters = VirtualActors::register(&system, config, |_| Counter::default()).unwrap();

    let alice = counters.get("alice").unwrap();
    assert!(
        counters.active_ids().is_empty(),
        "lazy: nothing runs before a message"
    );
    let call = |key: &str, msg| {
        let alice = alice.clone();
        let key = key.to_string();
        async move { alice.call(key, msg, Duration::from_secs(5)).await.unwrap() }
    };
    assert_eq!(call("k1", CounterMsg::Add(5)).await, (5, 1));
    assert_eq!(call("k2", CounterMsg::Add(2)).await, (7, 2));
    assert_eq!(counters.active_ids(), ["alice"]);

    // Idle past the timeout (paused tokio time): deactivated...
    system.env().sleep(Duration::from_secs(90)).await;
    assert!(
        counters.active_ids().is_empty(),
        "still active after idling"
    );
    // ...and the next message reactivates it with its state, and a retried
    // key is still answered from the journal, not applied again.
    assert_eq!(call("k2", CounterMsg::Add(2)).await, (7, 2));
    assert_eq!(call("k3", CounterMsg::Get).await, (7, 2));
    assert_eq!(counters.active_ids(), ["alice"]);

    // A busy actor is not deactivated: each call restarts its idle time.
    for i in 0..5 {
        system.env().sleep(Duration::from_secs(40)).await;
        call(&format!("busy-{i}"), CounterMsg::Get).await;
        assert_eq!(counters.active_ids(), ["alice"]);
    }
    system.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn eager_activation_starts_the_actor_when_its_ref_is_made() {
    let system = ActorSystem::new(env("eager").await);
    let mut config = VirtualConfig::new("counter", JournalBackend::memory());
    config.activation_strategy = ActivationStrategy::Eager;
    let counters = VirtualActors::register(&system, config, |_| Counter::default()).unwrap();
    let bob = counters.get("bob").unwrap();
    assert_eq!(counters.active_ids(), ["bob"]);
    assert_eq!(
        bob.call("k", CounterMsg::Add(1), Duration::from_secs(1))
            .await
            .unwrap(),
        (1, 1)
    );
    system.shutdown().await;
}

#[tokio::test]
async fn bad_kinds_and_ids_are_refused_with_typed_errors() {
    let system = ActorSystem::new(env("bad-ids").await);
    let bad_kind = VirtualActors::register(
        &system,
        VirtualConfig::new("has:colon", JournalBackend::memory()),
        |_| Counter::default(),
    );
    assert!(matches!(bad_kind, Err(VirtualError::InvalidConfig(_))));
    let counters = VirtualActors::register(
        &system,
        VirtualConfig::new("counter", JournalBackend::memory()),
        |_| Counter::default(),
    )
    .unwrap();
    // `counter:` plus 247 bytes is one more than an actor name holds.
    for id in ["", "a@b", "tab\there", &"x".repeat(248)] {
        assert!(
            matches!(counters.get(id), Err(VirtualError::InvalidId(_))),
            "{id:?} accepted"
        );
    }
    system.shutdown().await;
}

struct Node {
    system: ActorSystem,
    dist: Distribution,
    counters: VirtualActors<Counter>,
}

async fn node(name: &str, seeds: &[SocketAddr], journal_server: SocketAddr) -> Node {
    let (system, dist, journal) = support::node(env(name).await, seeds, journal_server).await;
    let counters = VirtualActors::register(&system, VirtualConfig::new("counter", journal), |_| {
        Counter::default()
    })
    .unwrap();
    Node {
        system,
        dist,
        counters,
    }
}

async fn all_up(node: &Node, count: usize) {
    support::all_up(&node.dist, count).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_actors_come_back_elsewhere_with_their_state() {
    let server = support::journal_server(env("storage").await).await;
    let journal = server.local_addr();
    let a = node("va", &[], journal).await;
    let b = node("vb", &[a.dist.local_addr()], journal).await;
    let c = node("vc", &[a.dist.local_addr()], journal).await;
    for n in [&a, &b, &c] {
        all_up(n, 3).await;
    }

    // Twenty ids, each called from every node: one activation each, on
    // the node placement names, whoever calls. Ids a user already has:
    // short names, UUIDs, and ids so long their journal streams are hashed
    // (sharing a long prefix, so only the hash tells their streams apart).
    let ids: Vec<String> = (0..20)
        .map(|i| match i % 3 {
            0 => format!("acct-{i}"),
            1 => format!("6f1c9a2e-4b7d-4e0a-9c3f-{i:012x}"),
            _ => format!("{}{i}", "customer/eu-west/".repeat(12)),
        })
        .collect();
    for (round, caller) in [&a, &b, &c].into_iter().enumerate() {
        for id in &ids {
            let counter = caller.counters.get(id).unwrap();
            let (total, adds) = counter
                .call(format!("{id}-{round}"), CounterMsg::Add(10), WAIT)
                .await
                .unwrap();
            assert_eq!((total, adds), (10 * (round as i64 + 1), round as u32 + 1));
        }
    }
    let placed = |n: &Node| n.counters.active_ids();
    let mut everywhere: Vec<String> = [&a, &b, &c].iter().flat_map(|n| placed(n)).collect();
    everywhere.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(everywhere, expected, "each id active on exactly one node");
    for id in &ids {
        let owner = a.counters.owner_of(id).unwrap();
        let host = [&a, &b, &c]
            .into_iter()
            .find(|n| n.system.node() == &owner)
            .unwrap();
        assert!(placed(host).contains(id), "{id} not on its owner {owner}");
    }

    // Kill the node hosting the most ids (never the seed, so the others
    // stay connected).
    let victim = if placed(&b).len() >= placed(&c).len() {
        &b
    } else {
        &c
    };
    let survivor = if std::ptr::eq(victim, &b) { &c } else { &b };
    let moved = placed(victim);
    assert!(!moved.is_empty());
    victim.dist.shutdown();
    victim.system.shutdown().await;

    // The survivors reactivate those ids from the shared journal: the
    // state is intact and each earlier request is still applied once.
    for id in &moved {
        let counter = survivor.counters.get(id).unwrap();
        let (total, adds) = counter
            .call(format!("{id}-after"), CounterMsg::Add(1), WAIT)
            .await
            .unwrap();
        assert_eq!((total, adds), (31, 4), "{id} lost state when its node died");
        let retried = counter
            .call(format!("{id}-0"), CounterMsg::Add(10), WAIT)
            .await
            .unwrap();
        assert_eq!(retried, (10, 1), "{id}: a retried key was applied again");
    }
    let mut now_active: Vec<String> = [&a, survivor].iter().flat_map(|n| placed(n)).collect();
    now_active.sort();
    assert_eq!(
        now_active, expected,
        "every id active once on the survivors"
    );
    server.shutdown();
}
