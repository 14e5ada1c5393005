//! Events on tokio: an emitter facet's listeners, subscribers with
//! filters, the bounded queue's drop policies and counters, cancelling;
//! and three loopback nodes, where every subscriber gets every event once,
//! in order.

mod support;

use plexspaces::actor::facet::{ConfigValue, FacetConfig};
use plexspaces::actor::{Actor, ActorError, ActorRef, ActorSystem, Context, SpawnOptions};
use plexspaces::events::{
    DropPolicy, Event, EventEmitterFacet, SubscribeOptions, Subscription, subscribe,
};
use plexspaces::seams::Clock;
use plexspaces::{Env, NodeName};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECOND: Duration = Duration::from_secs(1);

async fn env(test: &str, node: &str) -> Env {
    let dir = std::env::temp_dir().join(format!("plexspaces-events-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    Env::tokio(NodeName::new(node).unwrap())
        .with_data_dir(dir)
        .await
        .unwrap()
}

/// Emits each amount it is asked to on "ledger" (several at once with
/// `Burst`), and counts its own listener's calls.
struct Teller {
    heard: Arc<Mutex<Vec<u64>>>,
}

enum TellerMsg {
    Deposit(u64),
    Burst(u64),
}

impl Actor for Teller {
    type Msg = TellerMsg;
    type Reply = u64;

    async fn pre_start(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        let heard = self.heard.clone();
        if let Some(events) = ctx.facet_mut::<EventEmitterFacet>() {
            events
                .on("ledger", move |event| {
                    heard.lock().unwrap().push(event.seq);
                })
                .unwrap();
        }
        Ok(())
    }

    async fn handle(&mut self, ctx: &mut Context<Self>, msg: TellerMsg) -> Result<u64, ActorError> {
        let events = ctx
            .facet_mut::<EventEmitterFacet>()
            .ok_or_else(|| ActorError::new("no event emitter"))?;
        let (from, count) = match msg {
            TellerMsg::Deposit(amount) => (amount, 1),
            TellerMsg::Burst(count) => (1, count),
        };
        let mut seq = 0;
        for amount in from..from + count {
            seq = events
                .emit("ledger", &amount)
                .map_err(|e| ActorError::new(e.to_string()))?;
        }
        Ok(seq)
    }
}

/// Collects (seq, amount) of the events it is told.
struct Collector(Arc<Mutex<Vec<(u64, u64)>>>);

impl Actor for Collector {
    type Msg = Event;
    type Reply = ();
    async fn handle(&mut self, _: &mut Context<Self>, event: Event) -> Result<(), ActorError> {
        let amount: u64 = event.decode().map_err(|e| ActorError::new(e.to_string()))?;
        self.0.lock().unwrap().push((event.seq, amount));
        Ok(())
    }
}

type Seen = Arc<Mutex<Vec<(u64, u64)>>>;

async fn collector(
    system: &ActorSystem,
    name: &str,
    options: SubscribeOptions,
) -> (Seen, Subscription) {
    let seen: Seen = Arc::default();
    let actor = system.spawn(name, Collector(seen.clone())).unwrap();
    let subscription = subscribe(system, "ledger", &actor, |event| event, options)
        .await
        .unwrap();
    (seen, subscription)
}

/// Waits (on the node's clock) until `done` holds, for at most `within`.
async fn until(env: &Env, within: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = env.now() + within;
    while !done() {
        assert!(env.now() < deadline, "never happened: {what}");
        env.sleep(Duration::from_millis(5)).await;
    }
}

async fn teller(
    system: &ActorSystem,
    config: FacetConfig,
) -> (ActorRef<Teller>, Arc<Mutex<Vec<u64>>>) {
    system.enable_events();
    let heard = Arc::new(Mutex::new(Vec::new()));
    let options = SpawnOptions {
        facets: vec![system.facet_types().build("events", config).unwrap()],
        ..SpawnOptions::default()
    };
    let teller = system
        .spawn_with(
            "teller",
            Teller {
                heard: heard.clone(),
            },
            options,
        )
        .unwrap();
    (teller, heard)
}

#[tokio::test]
async fn subscribers_get_each_event_once_in_order_and_filters_apply() {
    let system = ActorSystem::new(env("local", "n1").await);
    let (all, _sub_all) = collector(&system, "all", SubscribeOptions::default()).await;
    let (even, sub_even) = collector(
        &system,
        "even",
        SubscribeOptions::default().with_filter(|e| e.decode::<u64>().is_ok_and(|n| n % 2 == 0)),
    )
    .await;
    let (teller, heard) = teller(&system, FacetConfig::new()).await;
    for amount in 1..=20 {
        assert_eq!(
            teller.ask(TellerMsg::Deposit(amount), SECOND).await,
            Ok(amount)
        );
    }
    let env = system.env().clone();
    until(
        &env,
        SECOND * 5,
        "20 events at the first subscriber",
        || all.lock().unwrap().len() == 20,
    )
    .await;
    until(&env, SECOND * 5, "10 even events", || {
        even.lock().unwrap().len() == 10
    })
    .await;
    let expected: Vec<(u64, u64)> = (1..=20).map(|n| (n, n)).collect();
    assert_eq!(*all.lock().unwrap(), expected);
    let evens: Vec<(u64, u64)> = (1..=10).map(|n| (2 * n, 2 * n)).collect();
    assert_eq!(*even.lock().unwrap(), evens);
    assert_eq!(
        *heard.lock().unwrap(),
        (1..=20).collect::<Vec<_>>(),
        "the local listener"
    );
    let stats = sub_even.stats();
    assert_eq!(
        (stats.received, stats.filtered, stats.forwarded),
        (20, 10, 10)
    );
    let emitter = teller
        .with_facet(|e: &mut EventEmitterFacet| e.stats())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (emitter.emitted, emitter.dropped, emitter.listener_calls),
        (20, 0, 20)
    );
    let deadline = env.now() + SECOND * 5;
    loop {
        let stats = teller
            .with_facet(|e: &mut EventEmitterFacet| e.stats())
            .await;
        if stats.unwrap().unwrap().delivered == 40 {
            break;
        }
        assert!(
            env.now() < deadline,
            "both subscribers' sends never counted"
        );
        env.sleep(Duration::from_millis(5)).await;
    }

    // A cancelled subscription gets nothing more.
    sub_even.cancel().await;
    teller.ask(TellerMsg::Deposit(22), SECOND).await.unwrap();
    until(&env, SECOND * 5, "the 21st event", || {
        all.lock().unwrap().len() == 21
    })
    .await;
    assert_eq!(even.lock().unwrap().len(), 10);
    // Bad topics and an emitter without an actor are typed errors.
    let mut loose = EventEmitterFacet::new(&system, 4, DropPolicy::DropNewest);
    assert!(loose.emit("ledger", &1u64).is_err());
    assert!(loose.on("", |_| {}).is_err());
}

#[tokio::test]
async fn a_full_queue_drops_by_its_policy_and_counts() {
    for (policy, kept) in [("drop-newest", [1u64, 2, 3]), ("drop-oldest", [8, 9, 10])] {
        let system = ActorSystem::new(env(policy, "n1").await);
        let (seen, _sub) = collector(&system, "c", SubscribeOptions::default()).await;
        let config = FacetConfig::new()
            .with("capacity", ConfigValue::Int(3))
            .with("drop_policy", ConfigValue::Str(policy.into()));
        let (teller, _) = teller(&system, config).await;
        // Ten events in one handler: the sending task cannot run meanwhile
        // (one thread), so the queue holds three.
        assert_eq!(teller.ask(TellerMsg::Burst(10), SECOND).await, Ok(10));
        let env = system.env().clone();
        until(&env, SECOND * 5, "three events", || {
            seen.lock().unwrap().len() == 3
        })
        .await;
        let seqs: Vec<u64> = seen.lock().unwrap().iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, kept, "{policy}");
        let stats = teller
            .with_facet(|e: &mut EventEmitterFacet| e.stats())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((stats.emitted, stats.dropped), (10, 7), "{policy}");
    }
    let system = ActorSystem::new(env("bad-policy", "n1").await);
    system.enable_events();
    let bad = system.facet_types().build(
        "events",
        FacetConfig::new().with("drop_policy", ConfigValue::Str("drop-all".into())),
    );
    assert!(bad.is_err());
}

#[tokio::test]
async fn three_nodes_every_subscriber_gets_every_event_once_in_order() {
    let journal = support::journal_server(env("3n-j", "j1").await).await;
    let (sys_a, dist_a, _) =
        support::node(env("3n-a", "a1").await, &[], journal.local_addr()).await;
    let mut nodes = vec![(sys_a, dist_a)];
    for name in ["b1", "c1"] {
        let seed = nodes[0].1.local_addr();
        let (system, dist, _) = support::node(
            env(&format!("3n-{name}"), name).await,
            &[seed],
            journal.local_addr(),
        )
        .await;
        nodes.push((system, dist));
    }
    for (_, dist) in &nodes {
        support::all_up(dist, 3).await;
    }
    let mut seen = Vec::new();
    let mut subscriptions = Vec::new();
    for (i, (system, _)) in nodes.iter().enumerate() {
        let (s, sub) = collector(system, &format!("sub{i}"), SubscribeOptions::default()).await;
        seen.push(s);
        subscriptions.push(sub);
    }
    let (sys_a, _) = &nodes[0];
    let env_a = sys_a.env().clone();
    let groups = sys_a.process_groups().unwrap();
    let mut listed = 0;
    let deadline = env_a.now() + support::WAIT;
    while listed < 3 {
        assert!(
            env_a.now() < deadline,
            "node a never listed the three subscribers"
        );
        listed = groups
            .members("plexspaces", "events", "ledger")
            .await
            .unwrap()
            .len();
        env_a.sleep(Duration::from_millis(10)).await;
    }
    let (teller, _) = teller(sys_a, FacetConfig::new()).await;
    const EVENTS: u64 = 300;
    for amount in 1..=EVENTS {
        teller
            .ask(TellerMsg::Deposit(amount), SECOND)
            .await
            .unwrap();
    }
    let expected: Vec<(u64, u64)> = (1..=EVENTS).map(|n| (n, n)).collect();
    for (i, seen) in seen.iter().enumerate() {
        until(&env_a, support::WAIT, "every event on every node", || {
            seen.lock().unwrap().len() >= EVENTS as usize
        })
        .await;
        assert_eq!(*seen.lock().unwrap(), expected, "subscriber {i}");
        assert_eq!(subscriptions[i].stats().duplicates, 0);
    }
}
