//! Distribution in the simulator: three nodes ask each other's exported
//! actors through remote refs while the nemesis crashes, pauses, partitions
//! and isolates them, resets their connections and skews their clocks.
//!
//! Oracles:
//! - per sender → receiver order holds and nothing is delivered twice: each
//!   receiving actor sees every sender run's sequence numbers strictly
//!   increasing (gaps are allowed: delivery is at most once);
//! - every reply is the answer to its own request;
//! - after the faults heal, membership converges (every node sees all three
//!   Up) and every node reaches every other node's actor again;
//! - a ref is resolved once and kept (as an Erlang pid is): after healing,
//!   every kept ref whose target node did not restart answers again, also
//!   when the target was declared down meanwhile (it is re-resolved only
//!   once it exits for good, when its node restarted);
//! - the nemesis had an effect: some asks failed during the storm, and the
//!   failure detector declared a node down in some seed.
#![cfg(madsim)]

use plexspaces::actor::{Actor, ActorError, ActorId, ActorSystem, AskError, Context};
use plexspaces::distribution::{Distribution, MemberStatus};
use plexspaces::seams::{Clock, Rng};
use plexspaces::{Env, NodeName};
use plexspaces_sim::{Cluster, ClusterConfig, ReportOnPanic};
use plexspaces_tests_sim::cluster_setup::{fast_distribution, network_nemesis, node_addr};
use plexspaces_tests_sim::liveness::finish_within;
use plexspaces_tests_sim::{SeedPlan, assert_deterministic, run_seeds};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PORT: u16 = 7000;
const NODES: usize = 3;

/// One request: who sends it (node and run) and its sequence number.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Note {
    from: String,
    run: u64,
    seq: u64,
}

/// Receives notes and checks their order per sender run.
struct Sink {
    last: BTreeMap<(String, u64), u64>,
    violations: Arc<Mutex<Vec<String>>>,
}

impl Actor for Sink {
    type Msg = Note;
    type Reply = u64;
    async fn handle(&mut self, ctx: &mut Context<Self>, note: Note) -> Result<u64, ActorError> {
        let key = (note.from.clone(), note.run);
        if let Some(&last) = self.last.get(&key)
            && note.seq <= last
        {
            self.violations.lock().unwrap().push(format!(
                "{} got seq {} from {}/{} after seq {last}",
                ctx.id(),
                note.seq,
                note.from,
                note.run
            ));
        }
        self.last.insert(key, note.seq);
        Ok(note.seq)
    }
}

/// A ref a node keeps to another node's sink, and the target's
/// incarnation when it was resolved.
type Kept = (plexspaces::actor::ActorRef<Sink>, u64);

#[derive(Default)]
struct Shared {
    violations: Arc<Mutex<Vec<String>>>,
    acked: u64,
    failed: u64,
    wrong_replies: Vec<String>,
    dists: BTreeMap<usize, Distribution>,
    systems: BTreeMap<usize, ActorSystem>,
    max_view: u64,
    /// The ref each node keeps to each other node's sink, and the target's
    /// incarnation when it was resolved.
    kept: BTreeMap<(usize, usize), Kept>,
    /// Kept refs an ask found with their node declared down.
    interrupted: std::collections::BTreeSet<(usize, usize)>,
    /// Kept refs that answered after healing although their node had been
    /// declared down while they were kept.
    revived: u64,
}

fn incarnation_of(dist: &Distribution, node: usize) -> Option<u64> {
    let name = format!("n{node}");
    dist.members()
        .into_iter()
        .find(|m| m.node.as_str() == name)
        .map(|m| m.incarnation)
}

fn sink_id(node: usize) -> ActorId {
    ActorId::new("sink", NodeName::new(&format!("n{node}")).unwrap()).unwrap()
}

async fn run_node(
    env: Env,
    index: usize,
    addrs: Vec<std::net::SocketAddr>,
    shared: Arc<Mutex<Shared>>,
) {
    let system = ActorSystem::new(env.clone());
    let config = fast_distribution(&addrs, index, NODES);
    let dist = system
        .start_distribution(config)
        .await
        .expect("distribution starts");
    let violations = shared.lock().unwrap().violations.clone();
    let sink = system
        .spawn(
            "sink",
            Sink {
                last: BTreeMap::new(),
                violations,
            },
        )
        .unwrap();
    dist.export(&sink).unwrap();
    {
        let mut shared = shared.lock().unwrap();
        shared.dists.insert(index, dist.clone());
        shared.systems.insert(index, system.clone());
    }
    // The client: a steady stream of asks to random other nodes.
    let run = env.next_u64();
    let from = format!("n{index}");
    let mut seq = 0;
    loop {
        env.sleep(Duration::from_millis(env.gen_range(5..30))).await;
        let target = (index + 1 + env.gen_range(0..(NODES as u64 - 1)) as usize) % NODES;
        let Ok(remote) = system.resolve::<Sink>(&sink_id(target)) else {
            continue;
        };
        {
            // Resolving gives back the kept ref until it exits for good
            // (its node restarted); then the new one is kept.
            let mut shared = shared.lock().unwrap();
            let same = matches!(shared.kept.get(&(index, target)), Some((kept, _)) if kept.ptr_eq(&remote));
            if !same {
                let Some(incarnation) = incarnation_of(&dist, target) else {
                    continue;
                };
                shared
                    .kept
                    .insert((index, target), (remote.clone(), incarnation));
                shared.interrupted.remove(&(index, target));
            }
        }
        seq += 1;
        let note = Note {
            from: from.clone(),
            run,
            seq,
        };
        let outcome = remote.ask(note, Duration::from_millis(300)).await;
        let mut shared = shared.lock().unwrap();
        shared.max_view = shared.max_view.max(dist.view());
        match outcome {
            Ok(echo) if echo == seq => shared.acked += 1,
            Ok(echo) => shared
                .wrong_replies
                .push(format!("{from} seq {seq} answered with {echo}")),
            Err(AskError::NodeDown(_)) => {
                shared.failed += 1;
                shared.interrupted.insert((index, target));
            }
            Err(_) => shared.failed += 1,
        }
    }
}

#[derive(Debug, PartialEq)]
struct Outcome {
    acked: u64,
    failed: u64,
    max_view: u64,
    revived: u64,
    trace_hash: u64,
}

fn scenario(seed: u64) -> Outcome {
    let runtime = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    runtime.block_on(async move {
        let mut cluster = Cluster::new(ClusterConfig::new(seed));
        let shared = Arc::new(Mutex::new(Shared::default()));
        // Node ips are known before they are added: 10.0.0.(i+1).
        let addrs: Vec<std::net::SocketAddr> = (0..NODES).map(|i| node_addr(i, PORT)).collect();
        for index in 0..NODES {
            let (addrs, shared) = (addrs.clone(), shared.clone());
            cluster.add_node(&format!("n{index}"), move |env| {
                run_node(env, index, addrs.clone(), shared.clone())
            });
        }
        for (i, addr) in addrs.iter().enumerate() {
            assert_eq!(cluster.addr(i, PORT), *addr);
        }
        let schedule = network_nemesis(seed, NODES);
        let _report = ReportOnPanic::new(format!("distribution seed {seed}\n{schedule}"));
        schedule.run(&cluster).await;

        // The liveness oracle: everything after healing ends in time.
        finish_within(
            seed,
            "healing, reaching every node and the kept refs",
            Duration::from_secs(300),
            async {
                // Healed: membership converges on every node...
                let dists: Vec<Distribution> =
                    shared.lock().unwrap().dists.values().cloned().collect();
                for dist in &dists {
                    dist.wait_for(Duration::from_secs(10), |m| {
                        m.len() == NODES && m.iter().all(|m| m.status == MemberStatus::Up)
                    })
                    .await
                    .unwrap_or_else(|_| {
                        panic!(
                            "seed {seed}: {} never saw all up: {:?}",
                            dist.node(),
                            dist.members()
                        )
                    });
                }
                // ...and every node reaches every other node's actor.
                let systems: Vec<(usize, ActorSystem)> = shared
                    .lock()
                    .unwrap()
                    .systems
                    .iter()
                    .map(|(i, s)| (*i, s.clone()))
                    .collect();
                for (from, system) in &systems {
                    for to in (0..NODES).filter(|to| to != from) {
                        let remote = system.resolve::<Sink>(&sink_id(to)).unwrap();
                        let note = Note {
                            from: format!("check{from}"),
                            run: 0,
                            seq: 1,
                        };
                        let answer = remote.ask(note, Duration::from_secs(5)).await;
                        assert_eq!(
                            answer,
                            Ok(1),
                            "seed {seed}: n{from} cannot reach n{to} after healing"
                        );
                    }
                }
                // Every kept ref whose target kept its run answers again.
                let kept: Vec<((usize, usize), Kept)> = shared
                    .lock()
                    .unwrap()
                    .kept
                    .iter()
                    .map(|(k, v)| (*k, v.clone()))
                    .collect();
                let mut revived = 0;
                let interrupted = shared.lock().unwrap().interrupted.clone();
                for ((from, to), (remote, incarnation)) in kept {
                    let dist = shared.lock().unwrap().dists[&from].clone();
                    if incarnation_of(&dist, to) != Some(incarnation) {
                        continue; // the target restarted: its old run's actor is gone
                    }
                    let note = Note {
                        from: format!("kept{from}"),
                        run: 0,
                        seq: 1,
                    };
                    let answer = remote.ask(note, Duration::from_secs(5)).await;
                    assert_eq!(
                        answer,
                        Ok(1),
                        "seed {seed}: n{from}'s kept ref to n{to} does not answer after healing"
                    );
                    revived += u64::from(interrupted.contains(&(from, to)));
                }
                shared.lock().unwrap().revived = revived;
                let shared = shared.lock().unwrap();
                let violations = shared.violations.lock().unwrap();
                assert!(
                    violations.is_empty(),
                    "seed {seed}: order broken: {violations:?}"
                );
                assert!(
                    shared.wrong_replies.is_empty(),
                    "seed {seed}: {:?}",
                    shared.wrong_replies
                );
                assert!(
                    shared.acked > 500,
                    "seed {seed}: only {} asks answered",
                    shared.acked
                );
                Outcome {
                    acked: shared.acked,
                    failed: shared.failed,
                    max_view: shared.max_view,
                    revived: shared.revived,
                    trace_hash: cluster.trace().hash(),
                }
            },
        )
        .await
    })
}

#[test]
fn remote_asks_keep_order_and_membership_heals_under_the_nemesis() {
    let plan = SeedPlan::from_env(24).with_fresh("distribution", 60);
    let outcomes = run_seeds("distribution", &plan, scenario);
    let failed: u64 = outcomes.iter().map(|o| o.failed).sum();
    assert!(failed > 0, "the nemesis never made an ask fail");
    assert!(
        outcomes.iter().any(|o| o.max_view > 4),
        "no seed saw a node go down and come back: {outcomes:?}"
    );
    assert!(
        outcomes.iter().any(|o| o.revived > 0),
        "no kept ref came back from a node declared down: {outcomes:?}"
    );
    assert_deterministic(2, scenario);
}
