//! Supervision in the simulator. Scenario 1: a supervision tree whose
//! workers crash at random times drawn from the seed; oracle: after the
//! quiet period every permanent and transient worker runs and answers, and
//! the temporary one was never restarted. Scenario 2: a supervisor whose
//! child crashes at random intervals; oracle: it gives up exactly at the
//! first crash that makes more than `max_restarts` restarts in the window,
//! never earlier, never later.
#![cfg(madsim)]

use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};
use plexspaces::PlantedBug;
use plexspaces::actor::{Actor, ActorError, ActorRef, ActorSystem, Context, ExitReason};
use plexspaces::seams::{Clock, Instant, Rng};
use plexspaces::supervision::{ChildSpec, Restart, Strategy, Supervisor, SupervisorSpec};
use plexspaces_sim::{Cluster, ClusterConfig};
use plexspaces_tests_sim::liveness::finish_within;
use plexspaces_tests_sim::{SeedPlan, assert_deterministic, caught_within, run_seeds};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Starts = Arc<Mutex<BTreeMap<&'static str, u32>>>;

struct Worker {
    name: &'static str,
    starts: Starts,
}

impl Actor for Worker {
    type Msg = bool; // true: crash
    type Reply = ();
    async fn pre_start(&mut self, _: &mut Context<Self>) -> Result<(), ActorError> {
        *self.starts.lock().unwrap().entry(self.name).or_default() += 1;
        Ok(())
    }
    async fn handle(&mut self, _: &mut Context<Self>, crash: bool) -> Result<(), ActorError> {
        assert!(!crash, "{} crashed on purpose", self.name);
        Ok(())
    }
}

fn worker(name: &'static str, starts: &Starts) -> ChildSpec {
    let starts = starts.clone();
    ChildSpec::actor(name, move || Worker {
        name,
        starts: starts.clone(),
    })
}

const WORKERS: [&str; 6] = ["w1", "w2", "w3", "w4", "w5", "w6"];

fn tree(starts: &Starts, bug: Option<PlantedBug>) -> SupervisorSpec {
    let a = SupervisorSpec::new(Strategy::OneForAll)
        .intensity(1000, Duration::from_secs(1))
        .child(worker("w1", starts))
        .child(worker("w2", starts));
    let mut b = SupervisorSpec::new(Strategy::RestForOne)
        .intensity(1000, Duration::from_secs(1))
        .child(worker("w3", starts).restart(Restart::Transient))
        .child(worker("w4", starts).restart(Restart::Transient))
        .child(worker("w5", starts).restart(Restart::Temporary));
    b.planted_bug = bug;
    SupervisorSpec::new(Strategy::OneForOne)
        .intensity(1000, Duration::from_secs(1))
        .child(ChildSpec::supervisor("sup-a", a))
        .child(ChildSpec::supervisor("sup-b", b))
        .child(worker("w6", starts))
}

/// Runs `body` as the main task of one simulated node and returns its result.
fn on_node<T: Send + 'static, F, Fut>(seed: u64, body: F) -> T
where
    F: Fn(ActorSystem) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let runtime = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    runtime.block_on(async move {
        let mut cluster = Cluster::new(ClusterConfig::new(seed));
        let (tx, mut rx) = mpsc::channel(1);
        let body = Arc::new(body);
        cluster.add_node("n1", move |env| {
            let (mut tx, body) = (tx.clone(), body.clone());
            async move {
                let outcome = body(ActorSystem::new(env)).await;
                let _ = tx.send(outcome).await;
            }
        });
        // The liveness oracle: the scenario's own checks end in time.
        finish_within(
            seed,
            "the supervision scenario",
            Duration::from_secs(300),
            rx.next(),
        )
        .await
        .expect("the node reports")
    })
}

async fn running(system: &ActorSystem, name: &str) -> bool {
    match system.lookup::<Worker>(name) {
        Some(w) => w.ask(false, Duration::from_secs(1)).await.is_ok(),
        None => false,
    }
}

fn tree_scenario(seed: u64) -> BTreeMap<&'static str, u32> {
    tree_planted(seed, None)
}

fn tree_planted(seed: u64, bug: Option<PlantedBug>) -> BTreeMap<&'static str, u32> {
    on_node(seed, move |system| async move {
        let starts = Starts::default();
        let root = system
            .spawn("root", Supervisor::new(tree(&starts, bug)))
            .unwrap();
        let env = system.env().clone();
        let mut crashed_w5 = false;
        // Chaos: 30 simulated seconds of crashes at random workers.
        let end = env.now() + Duration::from_secs(30);
        while env.now() < end {
            env.sleep(Duration::from_millis(env.gen_range(10..300)))
                .await;
            let name = WORKERS[env.gen_range(0..WORKERS.len() as u64) as usize];
            if let Some(victim) = system.lookup::<Worker>(name) {
                crashed_w5 |= name == "w5";
                let _ = victim.tell(true).await;
            }
        }
        env.sleep(Duration::from_secs(5)).await; // quiet
        assert!(
            root.status() == plexspaces::actor::ActorStatus::Active,
            "the root survived"
        );
        for name in ["w1", "w2", "w3", "w4", "w6"] {
            assert!(
                running(&system, name).await,
                "seed {seed}: {name} is not running"
            );
        }
        let starts = starts.lock().unwrap().clone();
        assert_eq!(
            starts["w5"], 1,
            "seed {seed}: the temporary worker was restarted"
        );
        assert_eq!(
            running(&system, "w5").await,
            !crashed_w5 && starts["w4"] == 1 && starts["w3"] == 1
        );
        starts
    })
}

#[test]
fn a_tree_under_random_crashes_returns_to_its_shape() {
    let plan = SeedPlan::from_env(12).with_fresh("supervision_tree", 60);
    run_seeds("supervision_tree", &plan, tree_scenario);
    assert_deterministic(3, tree_scenario);
}

fn intensity_scenario(seed: u64) -> (usize, usize) {
    const MAX: u32 = 3;
    const WINDOW: Duration = Duration::from_secs(2);
    on_node(seed, move |system| async move {
        let starts = Starts::default();
        let spec = SupervisorSpec::new(Strategy::OneForOne)
            .intensity(MAX, WINDOW)
            .child(worker("w", &starts));
        let sup = system.spawn("sup", Supervisor::new(spec)).unwrap();
        let env = system.env().clone();
        let mut crash_times: Vec<Instant> = Vec::new();
        while sup.status() != plexspaces::actor::ActorStatus::Failed && crash_times.len() < 100 {
            env.sleep(Duration::from_millis(env.gen_range(100..1500)))
                .await;
            let Some(victim): Option<ActorRef<Worker>> = system.lookup("w") else {
                continue;
            };
            if victim.tell(true).await.is_ok() {
                victim.wait_exit().await;
                crash_times.push(env.now());
                env.sleep(Duration::ZERO).await;
            }
        }
        let reason = sup.wait_exit().await;
        assert!(
            matches!(reason, ExitReason::Error(ref why) if why.contains("intensity")),
            "{reason}"
        );
        // The oracle: the first crash that puts more than MAX crashes in a window.
        let fatal = (0..crash_times.len())
            .find(|&i| {
                let recent = crash_times[..=i]
                    .iter()
                    .filter(|&&t| crash_times[i] - t < WINDOW)
                    .count();
                recent > MAX as usize
            })
            .expect("the supervisor failed, so some crash was fatal");
        assert_eq!(
            fatal + 1,
            crash_times.len(),
            "seed {seed}: it gave up at crash {}, not {}",
            crash_times.len(),
            fatal + 1
        );
        let starts = starts.lock().unwrap()["w"] as usize;
        assert_eq!(
            starts,
            crash_times.len(),
            "seed {seed}: restarted after every crash but the fatal one"
        );
        (crash_times.len(), starts)
    })
}

#[test]
fn restart_intensity_is_honoured_exactly() {
    let plan = SeedPlan::from_env(24).with_fresh("supervision_intensity", 60);
    run_seeds("supervision_intensity", &plan, intensity_scenario);
    assert_deterministic(5, intensity_scenario);
}

#[test]
fn a_supervisor_restarting_temporary_children_is_caught() {
    caught_within(
        "RestartTemporaryChild",
        6,
        &["the temporary worker was restarted"],
        |seed| {
            tree_planted(seed, Some(PlantedBug::RestartTemporaryChild));
        },
    );
}
