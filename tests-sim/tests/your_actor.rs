//! Testing your own actor in the simulator — a template to copy: a
//! durable visit counter on a node the nemesis crashes (its disk losing
//! what was never synced), a client counting what was acknowledged, and an
//! oracle comparing the two after the storm. Every run is a seed; a
//! failing seed prints its fault schedule and the command that replays it.
//!
//! ```text
//! RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/madsim \
//!     cargo test --profile sim -p plexspaces-tests-sim --test your_actor
//! PLEXSPACES_SEEDS=200 ...   # a long run
//! PLEXSPACES_SEED=7 ...      # one seed, to reproduce
//! ```
//!
//! Replace `Visits` with your actor and the oracle with what your users
//! rely on.
#![cfg(madsim)]

mod scenario {
    use plexspaces::actor::{ActorError, ActorSystem};
    use plexspaces::durability::{
        DurabilityConfig, Durable, DurableActor, DurableContext, JournalBackend,
    };
    use plexspaces::seams::Clock;
    use plexspaces_sim::{
        Cluster, ClusterConfig, DiskFaults, FaultKinds, NemesisConfig, ReportOnPanic, Schedule,
    };
    use serde::{Deserialize, Serialize};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// The actor under test: counts visits, each under its own key.
    #[derive(Default, Serialize, Deserialize)]
    struct Visits {
        count: u64,
    }

    #[derive(Clone, Serialize, Deserialize)]
    enum Msg {
        Visit,
        Count,
    }

    impl DurableActor for Visits {
        type Msg = Msg;
        type Reply = u64;

        async fn handle(
            &mut self,
            _: &mut DurableContext<'_>,
            msg: Msg,
        ) -> Result<u64, ActorError> {
            if let Msg::Visit = msg {
                self.count += 1;
            }
            Ok(self.count)
        }

        /// Counting changes nothing: answered without a journal write.
        fn query(&self, _: &plexspaces::Env, msg: &Msg) -> Option<u64> {
            matches!(msg, Msg::Count).then_some(self.count)
        }
    }

    /// What the client saw acknowledged (outside the node: it survives
    /// the node's crashes, as your test's bookkeeping should).
    #[derive(Default)]
    struct Seen {
        attempted: usize,
        acked: Vec<String>,
        /// The counter of the node's current run.
        visits: Option<plexspaces::actor::ActorRef<Durable<Visits>>>,
    }

    /// The node: opens its journal, runs the counter, and visits it.
    async fn node(env: plexspaces::Env, seen: Arc<Mutex<Seen>>) {
        let system = ActorSystem::new(env.clone());
        let Ok(journal) = JournalBackend::file(&env, Default::default()).await else {
            return; // a crash mid-recovery: the next restart tries again
        };
        let Ok(visits) = system.spawn(
            "visits",
            Durable::new(Visits::default(), journal, DurabilityConfig::default()),
        ) else {
            return;
        };
        let run = {
            let mut seen = seen.lock().unwrap();
            seen.visits = Some(visits.clone());
            seen.attempted
        };
        for i in 0.. {
            env.sleep(Duration::from_millis(20)).await;
            let key = format!("visit-{run}-{i}");
            seen.lock().unwrap().attempted += 1;
            if visits
                .call(key.clone(), Msg::Visit, Duration::from_secs(1))
                .await
                .is_ok()
            {
                seen.lock().unwrap().acked.push(key);
            }
        }
    }

    /// One seed: the storm, then the oracle. Returns the acknowledged count.
    pub fn run(seed: u64) -> usize {
        let runtime =
            madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
        runtime.block_on(async move {
            let mut cluster = Cluster::new(ClusterConfig {
                disk_faults: DiskFaults::recoverable(),
                ..ClusterConfig::new(seed)
            });
            let seen = Arc::new(Mutex::new(Seen::default()));
            let shared = seen.clone();
            cluster.add_node("n1", move |env| node(env, shared.clone()));
            let schedule = Schedule::draw(
                seed,
                cluster.len(),
                &NemesisConfig {
                    active: Duration::from_secs(10),
                    quiet: Duration::from_secs(2),
                    kinds: FaultKinds::crashes(),
                    ..NemesisConfig::default()
                },
            );
            let _report = ReportOnPanic::new(format!("your_actor seed {seed}\n{schedule}"));
            schedule.run(&cluster).await; // faults, then everything healed, then quiet

            // The oracle: every acknowledged visit counted, none twice, and
            // nothing counted that was never sent.
            let clock = plexspaces_sim::SimClock::new(cluster.trace().clone(), Default::default());
            clock.sleep(Duration::from_millis(500)).await;
            let (visits, attempted, acked) = {
                let seen = seen.lock().unwrap();
                (
                    seen.visits.clone().expect("the node runs"),
                    seen.attempted,
                    seen.acked.len(),
                )
            };
            let count = visits
                .call(format!("audit-{seed}"), Msg::Count, Duration::from_secs(5))
                .await
                .expect("the counter answers after the storm") as usize;
            assert!(acked > 0, "seed {seed}: nothing was acknowledged");
            assert!(
                (acked..=attempted).contains(&count),
                "seed {seed}: {count} visits counted, {acked} acknowledged, {attempted} sent"
            );
            acked
        })
    }
}

#[test]
fn your_actor_counts_every_acknowledged_visit_once() {
    use plexspaces_tests_sim::{SeedPlan, assert_deterministic, run_seeds};
    let plan = SeedPlan::from_env(8).with_fresh("your_actor", 200);
    let acked = run_seeds("your_actor", &plan, scenario::run);
    println!("acknowledged visits per seed: {acked:?}");
    assert_deterministic(0, scenario::run);
}
