//! Readiness in the simulator: two nodes host a virtual actor kind whose
//! journal lives on a storage node (a journal server over the simulated
//! network), each serving the operator endpoint over the same network. A
//! seed picks one node to cut off from the storage node for a while (and,
//! for some seeds, to crash and restart once it is back).
//!
//! Oracles, each probe made over HTTP from the other node:
//! - every answer is well formed and says what its checks say (`ready`
//!   is true exactly when every check is healthy; 200 exactly when ready);
//! - before the cut both nodes become ready within a bound;
//! - while a node is cut off from its storage, it reports unready within
//!   a bound, naming its journal check, while the other stays ready;
//! - after healing (and after a restart) it is ready again within a bound.
//!
//! A second scenario splits the two hosting nodes from each other (both
//! still reach storage): see [`split_brain`].
#![cfg(madsim)]

use plexspaces::Env;
use plexspaces::actor::{ActorError, ActorSystem};
use plexspaces::durability::{DurableActor, DurableContext};
use plexspaces::net::{ByteReader, ByteWriter, Connection, Net};
use plexspaces::observability::OperatorEndpoint;
use plexspaces::seams::{Clock, Rng};
use plexspaces::virtual_actor::{VirtualActors, VirtualConfig};
use plexspaces_tests_sim::cluster_setup::{
    StorageCluster, fast_distribution, node_addr, shared_journal,
};
use plexspaces_tests_sim::liveness::finish_within;
use plexspaces_tests_sim::{SeedPlan, assert_deterministic, run_seeds};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PORT: u16 = 7000;
const JOURNAL_PORT: u16 = 7100;
const OPERATOR_PORT: u16 = 9100;
const NODES: usize = 2;
const STORAGE: usize = NODES;
/// How long a state change may take to show in `/ready`: the check's
/// deadline, the shared journal's request timeout and a few probes.
const SETTLE: Duration = Duration::from_secs(10);
/// How long becoming ready may take: a settle, plus the hold of a claim
/// lost while two nodes' views of the cluster converge (one sees the other
/// back before the other sees it, and both claim an id for a moment).
const READY_SETTLE: Duration =
    Duration::from_secs(10 + plexspaces::durability::lost_claims::CLAIM_LOSS_HOLD.as_secs());

#[derive(Default, Serialize, Deserialize)]
struct Counter(u64);

impl DurableActor for Counter {
    type Msg = u64;
    type Reply = u64;
    async fn handle(&mut self, _: &mut DurableContext<'_>, n: u64) -> Result<u64, ActorError> {
        self.0 += n;
        Ok(self.0)
    }
}

#[derive(Default)]
struct Shared {
    /// Each node's environment (the latest run), for probing from it.
    envs: BTreeMap<usize, Env>,
}

async fn run_node(env: Env, index: usize, addrs: Vec<SocketAddr>, shared: Arc<Mutex<Shared>>) {
    let system = ActorSystem::new(env.clone());
    system
        .start_distribution(fast_distribution(&addrs, index, NODES))
        .await
        .expect("distribution starts");
    let journal = shared_journal(&env, addrs[STORAGE], Duration::from_millis(500));
    system
        .health()
        .set_check_timeout(Duration::from_millis(800));
    let counters = VirtualActors::register(&system, VirtualConfig::new("counter", journal), |_| {
        Counter::default()
    })
    .unwrap();
    let _endpoint = OperatorEndpoint::serve(&system, node_addr(index, OPERATOR_PORT))
        .await
        .expect("the operator endpoint listens");
    shared.lock().unwrap().envs.insert(index, env.clone());
    // Some work, so the journal is in use.
    loop {
        env.sleep(Duration::from_millis(env.gen_range(50..200)))
            .await;
        let id = format!("c{}", env.gen_range(0..4));
        if let Ok(counter) = counters.get(&id) {
            let _ = counter
                .call(
                    format!("{index}-{}", env.next_u64()),
                    1,
                    Duration::from_secs(1),
                )
                .await;
        }
    }
}

/// A `/ready` answer: whether ready, and the failing checks' names.
#[derive(Debug, PartialEq, Eq)]
struct Ready {
    ready: bool,
    failing: Vec<String>,
}

/// `GET /ready` on node `target`, from node `from`'s network; `None` if
/// the probe got no answer in time.
async fn probe(shared: &Mutex<Shared>, from: usize, target: usize, seed: u64) -> Option<Ready> {
    let env = shared.lock().unwrap().envs.get(&from)?.clone();
    let prober = env.clone();
    // On node `from` itself: the simulated network sends from the node
    // whose task calls it.
    let exchange = async move {
        let env = prober;
        let connection = env
            .net()
            .connect(node_addr(target, OPERATOR_PORT))
            .await
            .ok()?;
        let (mut input, mut output) = connection.split();
        let request = "GET /ready HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n";
        output.write_all(request.as_bytes()).await.ok()?;
        output.flush().await.ok()?;
        let mut response = Vec::new();
        let mut buf = [0u8; 2048];
        loop {
            match input.read(&mut buf).await.ok()? {
                0 => break,
                n => response.extend_from_slice(&buf[..n]),
            }
        }
        Some(response)
    };
    let clock = env.clone();
    let exchange = env.spawn(async move {
        clock
            .timeout(Duration::from_secs(3), exchange)
            .await
            .ok()
            .flatten()
    });
    let response = exchange.await.ok()??;
    let text = String::from_utf8(response).expect("the endpoint answers UTF-8");
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("seed {seed}: a response without a body: {text:?}"));
    let status: u16 = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap();
    let doc: serde_json::Value = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("seed {seed}: /ready answered {body:?}: {e}"));
    let checks = doc["checks"].as_object().expect("checks by name");
    let failing: Vec<String> = checks
        .iter()
        .filter(|(_, c)| c["healthy"] != true)
        .map(|(name, _)| name.clone())
        .collect();
    let ready = doc["ready"] == true;
    assert_eq!(
        ready,
        failing.is_empty(),
        "seed {seed}: ready says what its checks say: {body}"
    );
    assert_eq!(
        status == 200,
        ready,
        "seed {seed}: 200 exactly when ready: {text}"
    );
    Some(Ready { ready, failing })
}

/// Probes until `want` holds (or panics after `bound`).
async fn until(
    shared: &Mutex<Shared>,
    clock: &plexspaces_sim::SimClock,
    (from, target): (usize, usize),
    seed: u64,
    (what, bound): (&str, Duration),
    want: impl Fn(&Ready) -> bool,
) -> Ready {
    let deadline = clock.now() + bound;
    let mut last = None;
    loop {
        if let Some(ready) = probe(shared, from, target, seed).await {
            if want(&ready) {
                return ready;
            }
            last = Some(ready);
        }
        assert!(
            clock.now() < deadline,
            "seed {seed}: n{target} never became {what} within {bound:?} (last: {last:?})"
        );
        clock.sleep(Duration::from_millis(250)).await;
    }
}

#[derive(Debug, PartialEq)]
struct Outcome {
    cut: usize,
    restarted: bool,
    trace_hash: u64,
}

fn scenario(seed: u64) -> Outcome {
    let runtime = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    runtime.block_on(async move {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let storage = StorageCluster::start(seed, NODES, (PORT, JOURNAL_PORT), 0x7ead, |_| {}, {
            let shared = shared.clone();
            move |env, index, addrs| run_node(env, index, addrs, shared.clone())
        });
        let (cluster, clock) = (&storage.cluster, &storage.clock);
        // The seed picks the node to cut off, and whether it restarts.
        let cut = (seed % NODES as u64) as usize;
        let other = 1 - cut;
        let restart = (seed / 2) % 2 == 1;
        finish_within(
            seed,
            "readiness follows storage",
            Duration::from_secs(300),
            async {
                clock.sleep(Duration::from_secs(1)).await;
                for node in 0..NODES {
                    until(
                        &shared,
                        clock,
                        (1 - node, node),
                        seed,
                        ("ready", READY_SETTLE),
                        |r| r.ready,
                    )
                    .await;
                }
                cluster.partition(cut, STORAGE);
                let unready = until(
                    &shared,
                    clock,
                    (other, cut),
                    seed,
                    ("unready", SETTLE),
                    |r| !r.ready,
                )
                .await;
                assert_eq!(
                    unready.failing,
                    ["journal:counter"],
                    "seed {seed}: only the journal check fails while cut off from storage"
                );
                // The other node still reaches storage: it stays ready.
                let still = probe(&shared, cut, other, seed).await;
                assert!(
                    still.as_ref().is_none_or(|r| r.ready),
                    "seed {seed}: n{other} is not cut off: {still:?}"
                );
                // A while cut off: still unready, however long.
                clock.sleep(Duration::from_secs(3)).await;
                let later = until(
                    &shared,
                    clock,
                    (other, cut),
                    seed,
                    ("unready", SETTLE),
                    |_| true,
                )
                .await;
                assert!(!later.ready, "seed {seed}: ready while cut off: {later:?}");
                cluster.heal_network();
                until(
                    &shared,
                    clock,
                    (other, cut),
                    seed,
                    ("ready after healing", READY_SETTLE),
                    |r| r.ready,
                )
                .await;
                if restart {
                    cluster.crash(cut);
                    clock.sleep(Duration::from_millis(500)).await;
                    cluster.restart(cut);
                    until(
                        &shared,
                        clock,
                        (other, cut),
                        seed,
                        ("ready after a restart", READY_SETTLE),
                        |r| r.ready,
                    )
                    .await;
                }
                Outcome {
                    cut,
                    restarted: restart,
                    trace_hash: cluster.trace().hash(),
                }
            },
        )
        .await
    })
}

/// Split brain: the two hosting nodes lose each other while both still
/// reach storage. Each places every id on itself and calls them, so their
/// activations fence each other's in turn.
///
/// Oracles: within a bound of the split each node reports not ready,
/// naming `claims:counter` (it lost claims on ids it still owns); after
/// healing, both are ready again within the claim-loss hold and a settle
/// (a view change forgets the losses; a late loss from the two views
/// converging at different moments lasts at most the hold).
fn split_brain(seed: u64) -> u64 {
    let runtime = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    runtime.block_on(async move {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let storage = StorageCluster::start(seed, NODES, (PORT, JOURNAL_PORT), 0x5b1e, |_| {}, {
            let shared = shared.clone();
            move |env, index, addrs| run_node(env, index, addrs, shared.clone())
        });
        let (cluster, clock) = (&storage.cluster, &storage.clock);
        finish_within(
            seed,
            "readiness names lost claims",
            Duration::from_secs(300),
            async {
                clock.sleep(Duration::from_secs(1)).await;
                for node in 0..NODES {
                    until(
                        &shared,
                        clock,
                        (1 - node, node),
                        seed,
                        ("ready", READY_SETTLE),
                        |r| r.ready,
                    )
                    .await;
                }
                cluster.partition(0, 1);
                for node in 0..NODES {
                    // Probed from itself: the other side is out of reach.
                    until(
                        &shared,
                        clock,
                        (node, node),
                        seed,
                        ("unready naming claims", SETTLE),
                        |r| r.failing.iter().any(|c| c == "claims:counter"),
                    )
                    .await;
                }
                cluster.heal_network();
                let hold = plexspaces::durability::lost_claims::CLAIM_LOSS_HOLD;
                clock.sleep(hold).await;
                for node in 0..NODES {
                    until(
                        &shared,
                        clock,
                        (1 - node, node),
                        seed,
                        ("ready after healing", READY_SETTLE),
                        |r| r.ready,
                    )
                    .await;
                }
                cluster.trace().hash()
            },
        )
        .await
    })
}

#[test]
fn readiness_names_claims_lost_across_a_split() {
    let plan = SeedPlan::from_env(6).with_fresh("split-readiness", 12);
    run_seeds("split-readiness", &plan, split_brain);
    assert_deterministic(3, split_brain);
}

#[test]
fn readiness_follows_the_storage_node() {
    let plan = SeedPlan::from_env(8).with_fresh("readiness", 24);
    let outcomes = run_seeds("readiness", &plan, scenario);
    assert!(outcomes.iter().any(|o| o.restarted), "{outcomes:?}");
    assert!(outcomes.iter().any(|o| o.cut == 0) && outcomes.iter().any(|o| o.cut == 1));
    assert_deterministic(2, scenario);
}
