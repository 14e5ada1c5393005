//! A `DurableTupleSpace` on the embedded journal of a node the nemesis
//! crashes, its disk losing and tearing unsynced writes and failing syncs.
//! Writers write unique tuples, takers take them (at once or waiting a
//! while); after a failed journal write the node reopens the space, as a
//! user's code would.
//!
//! Oracles, over what the clients saw and the space holds after healing:
//! - no tuple is handed to two takes, and a take hands out only written
//!   tuples;
//! - no taken tuple is back in the space, and the space holds only tuples
//!   someone tried to write;
//! - every acknowledged write is in the space or was taken, except at most
//!   one tuple per take whose outcome is unknown (it failed, or a crash cut
//!   it: its take may be durable while nobody got the tuple);
//! - the space reopens and answers after healing (liveness).
#![cfg(madsim)]

use plexspaces::Env;
use plexspaces::durability::JournalBackend;
use plexspaces::seams::{Clock, Rng};
use plexspaces::storage::journal::JournalConfig;
use plexspaces::tuple;
use plexspaces::tuplespace::{DurableTupleSpace, Field, Kind, Pattern, Tuple, TupleSpaceConfig};
use plexspaces_sim::{
    Cluster, ClusterConfig, DiskFaults, FaultKinds, NemesisConfig, ReportOnPanic, Schedule,
};
use plexspaces_tests_sim::liveness::{AFTER_HEALING, finish_within};
use plexspaces_tests_sim::{SeedPlan, assert_deterministic, run_seeds};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WRITERS: u64 = 2;
const TAKERS: u64 = 3;

/// What the clients saw, across every run of the node.
#[derive(Default)]
struct Seen {
    /// Tuples whose write was tried.
    tried: BTreeSet<i64>,
    /// Tuples whose write was acknowledged.
    written: BTreeSet<i64>,
    /// Tuples handed to a take that returned them, in order.
    taken: Vec<i64>,
    /// Takes started; those that did not return a tuple or "none" left an
    /// unknown outcome.
    takes_started: u64,
    takes_known: u64,
    /// Next tuple id (unique across runs of the node).
    next: i64,
}

fn jobs() -> Pattern {
    Pattern::new(vec![Field::Exact("job".into()), Field::Typed(Kind::Int)])
}

fn id_of(t: &Tuple) -> i64 {
    match t.fields()[1] {
        plexspaces::tuplespace::Value::Int(n) => n,
        ref other => panic!("a job id is an int, got {other:?}"),
    }
}

async fn open(env: &Env) -> DurableTupleSpace {
    loop {
        let opened = async {
            let journal = JournalBackend::file(env, {
                let mut config = JournalConfig::default();
                config.segment_bytes_max = 4096;
                config
            })
            .await
            .ok()?;
            DurableTupleSpace::open("jobs", env.clone(), TupleSpaceConfig::default(), journal)
                .await
                .ok()
        };
        if let Some(space) = opened.await {
            return space.with_checkpoint_every(25);
        }
        env.sleep(Duration::from_millis(20)).await;
    }
}

/// One run of the node after another: open the space, write and take from
/// several tasks until a journal failure, reopen.
async fn node(env: Env, seen: Arc<Mutex<Seen>>) {
    loop {
        let space = open(&env).await;
        // A journal failure in any task sends them all back to reopen.
        let stopped = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for _ in 0..WRITERS {
            let (env, space, seen) = (env.clone(), space.clone(), seen.clone());
            let stopped = stopped.clone();
            tasks.push(env.clone().spawn(async move {
                while !stopped.load(Ordering::SeqCst) {
                    env.sleep(Duration::from_millis(env.gen_range(2..20))).await;
                    let id = {
                        let mut seen = seen.lock().unwrap();
                        seen.next += 1;
                        let id = seen.next;
                        seen.tried.insert(id);
                        id
                    };
                    match space.write(tuple!["job", id]).await {
                        Ok(()) => {
                            seen.lock().unwrap().written.insert(id);
                        }
                        Err(_) => stopped.store(true, Ordering::SeqCst), // reopen
                    }
                }
            }));
        }
        for taker in 0..TAKERS {
            let (env, space, seen) = (env.clone(), space.clone(), seen.clone());
            let stopped = stopped.clone();
            tasks.push(env.clone().spawn(async move {
                while !stopped.load(Ordering::SeqCst) {
                    env.sleep(Duration::from_millis(env.gen_range(2..25))).await;
                    seen.lock().unwrap().takes_started += 1;
                    let outcome = if taker == 0 {
                        space.take_if_exists(&jobs()).await
                    } else {
                        let wait = Duration::from_millis(env.gen_range(1..50));
                        space.take_with_timeout(jobs(), wait).await
                    };
                    match outcome {
                        Ok(found) => {
                            let mut seen = seen.lock().unwrap();
                            seen.takes_known += 1;
                            if let Some(t) = found {
                                seen.taken.push(id_of(&t));
                            }
                        }
                        Err(_) => stopped.store(true, Ordering::SeqCst),
                    }
                }
            }));
        }
        for task in tasks {
            let _ = task.await;
        }
    }
}

#[derive(Debug, PartialEq)]
struct Outcome {
    written: usize,
    taken: usize,
    unknown_takes: u64,
    trace_hash: u64,
}

fn scenario(seed: u64) -> Outcome {
    let runtime = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    runtime.block_on(async move {
        let mut cluster = Cluster::new(ClusterConfig {
            disk_faults: DiskFaults {
                sync_error: 0.005,
                ..DiskFaults::recoverable()
            },
            ..ClusterConfig::new(seed)
        });
        let seen = Arc::new(Mutex::new(Seen::default()));
        let node_index = cluster.add_node("n1", {
            let seen = seen.clone();
            move |env| node(env, seen.clone())
        });
        let schedule = Schedule::draw(
            seed,
            1,
            &NemesisConfig {
                active: Duration::from_secs(10),
                quiet: Duration::from_secs(2),
                mean_gap: Duration::from_millis(1500),
                max_fault: Duration::from_millis(400),
                kinds: FaultKinds::crashes(),
            },
        );
        let _report = ReportOnPanic::new(format!("durable space seed {seed}\n{schedule}"));
        cluster.set_disk_faults(true);
        schedule.run(&cluster).await;
        cluster.crash(node_index); // faults are off: this crash keeps everything

        // Healed: what the space holds, read by a fresh opening on the disk.
        let env = Env::new(
            plexspaces::NodeName::new("checker").unwrap(),
            plexspaces_sim::SimClock::new(cluster.trace().clone(), Default::default()),
            plexspaces_sim::SimSpawner::new(cluster.trace().clone()),
            plexspaces_sim::ChaChaRng::for_node(seed, 77),
            cluster.disk(node_index).clone(),
            plexspaces_sim::SimNet::new(cluster.trace().clone()),
        );
        let held: Vec<i64> = finish_within(seed, "reopening the space after healing", AFTER_HEALING, async {
            let space = open(&env).await;
            space.read_all_if_exists(&jobs()).await.iter().map(id_of).collect()
        })
        .await;

        let seen = seen.lock().unwrap();
        let held_set: BTreeSet<i64> = held.iter().copied().collect();
        assert_eq!(held_set.len(), held.len(), "seed {seed}: a tuple is in the space twice");
        let mut taken_once = BTreeSet::new();
        for id in &seen.taken {
            assert!(taken_once.insert(*id), "seed {seed}: job {id} was handed to two takes");
            assert!(seen.tried.contains(id), "seed {seed}: job {id} was taken but never written");
            assert!(!held_set.contains(id), "seed {seed}: job {id} was taken and is back in the space");
        }
        for id in &held {
            assert!(seen.tried.contains(id), "seed {seed}: job {id} is in the space but was never written");
        }
        let vanished: Vec<i64> = seen
            .written
            .iter()
            .filter(|id| !held_set.contains(id) && !taken_once.contains(id))
            .copied()
            .collect();
        let unknown_takes = seen.takes_started - seen.takes_known;
        assert!(
            vanished.len() as u64 <= unknown_takes,
            "seed {seed}: {} acknowledged writes vanished ({vanished:?}), with only {unknown_takes} \
             takes of unknown outcome",
            vanished.len()
        );
        assert!(seen.written.len() > 100, "seed {seed}: the writers made progress");
        assert!(!seen.taken.is_empty(), "seed {seed}: the takers made progress");
        Outcome {
            written: seen.written.len(),
            taken: seen.taken.len(),
            unknown_takes,
            trace_hash: cluster.trace().hash(),
        }
    })
}

#[test]
fn a_durable_space_hands_each_tuple_out_once_and_keeps_acknowledged_writes() {
    let plan = SeedPlan::from_env(12).with_fresh("durable_space", 100);
    let outcomes = run_seeds("durable_space", &plan, scenario);
    println!(
        "durable space outcomes: {:?}",
        &outcomes[..outcomes.len().min(3)]
    );
    assert!(
        outcomes.iter().any(|o| o.unknown_takes > 0),
        "no take was ever cut by a fault: {outcomes:?}"
    );
    assert_deterministic(2, scenario);
}
