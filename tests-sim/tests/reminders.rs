//! Reminders in the simulator over a simulated day: three nodes serve the
//! reminder shards and host the alarms (virtual actors), a fourth holds the
//! shared journal; the nemesis crashes and restarts, pauses, partitions and
//! isolates the three nodes, resets connections and skews their wall clocks
//! for the first twelve hours, then the cluster stays healthy.
//!
//! Oracles:
//! - no firing is applied twice: every alarm's list of firing ids has no
//!   duplicate (deliveries may repeat under faults; the firing id makes the
//!   durable alarm apply each once);
//! - every due time while the cluster is healthy fires: each periodic
//!   reminder's due times in the healthy half (after a settling hour) are
//!   all in its alarm's list;
//! - a reminder cancelled (and acknowledged) before its due time never
//!   fires;
//! - the nemesis had an effect (membership views changed).
#![cfg(madsim)]

use plexspaces::Env;
use plexspaces::actor::{ActorError, ActorSystem};
use plexspaces::distribution::{ClusterSecret, Distribution, DistributionConfig, MemberStatus};
use plexspaces::durability::{DurableActor, DurableContext};
use plexspaces::reminders::{
    Firing, Recurrence, ReminderConfig, ReminderSpec, ReminderTarget, Reminders,
};
use plexspaces::seams::Clock;
use plexspaces::virtual_actor::{VirtualActors, VirtualConfig};
use plexspaces_sim::{Cluster, ClusterConfig, FaultKinds, NemesisConfig, ReportOnPanic, Schedule};
use plexspaces_tests_sim::cluster_setup::{journal_server, shared_journal};
use plexspaces_tests_sim::liveness::finish_within;
use plexspaces_tests_sim::{SeedPlan, assert_deterministic, run_seeds};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

const PORT: u16 = 7000;
const JOURNAL_PORT: u16 = 7100;
const NODES: usize = 3;
const STORAGE: usize = NODES;
const SECRET: &[u8] = b"simulated-cluster-secret";
const HOUR: Duration = Duration::from_secs(3600);
const MINUTE: Duration = Duration::from_secs(60);
const PERIODIC: usize = 8;
const CANCELLED: usize = 4;
const PERIOD: Duration = Duration::from_secs(20 * 60);

#[derive(Default, Serialize, Deserialize)]
struct Alarm {
    rang: Vec<(String, u64)>,
}

#[derive(Clone, Serialize, Deserialize)]
enum AlarmMsg {
    Ring { firing_id: String, due_ms: u64 },
    Rang,
}

impl DurableActor for Alarm {
    type Msg = AlarmMsg;
    type Reply = Vec<(String, u64)>;
    async fn handle(
        &mut self,
        _: &mut DurableContext<'_>,
        msg: AlarmMsg,
    ) -> Result<Vec<(String, u64)>, ActorError> {
        if let AlarmMsg::Ring { firing_id, due_ms } = msg {
            self.rang.push((firing_id, due_ms));
        }
        Ok(self.rang.clone())
    }
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[derive(Clone)]
struct NodeHandles {
    dist: Distribution,
    alarms: VirtualActors<Alarm>,
    reminders: Reminders,
}

#[derive(Default)]
struct Shared {
    nodes: BTreeMap<usize, NodeHandles>,
    max_view: u64,
}

async fn run_node(env: Env, index: usize, addrs: Vec<SocketAddr>, shared: Arc<Mutex<Shared>>) {
    let system = ActorSystem::new(env.clone());
    let secret = ClusterSecret::new(SECRET).unwrap();
    let seeds: Vec<_> = (0..NODES)
        .filter(|i| *i != index)
        .map(|i| addrs[i])
        .collect();
    let config = {
        let mut config = DistributionConfig::new(addrs[index], secret.clone());
        config.heartbeat_interval = Duration::from_secs(1);
        config.suspect_after = Duration::from_secs(3);
        config.down_after = Duration::from_secs(6);
        config.handshake_timeout = Duration::from_secs(3);
        config.reconnect_min = Duration::from_millis(200);
        config.reconnect_max = Duration::from_secs(5);
        config
    }
    .with_seeds(seeds);
    let dist = system
        .start_distribution(config)
        .await
        .expect("distribution starts");
    let journal = shared_journal(&env, addrs[STORAGE], Duration::from_secs(2));
    let mut alarms = VirtualConfig::new("alarm", journal.clone());
    alarms.deactivation_timeout = Duration::from_secs(5 * 60);
    let alarms = VirtualActors::register(&system, alarms, |_| Alarm::default()).unwrap();
    let mut config = ReminderConfig::new(journal);
    config.shards = 8;
    config.rebalance_every = Duration::from_secs(5);
    config.retry_max = Duration::from_secs(30);
    let reminders = Reminders::start(&system, config)
        .await
        .expect("reminders start");
    reminders.deliver_to(&alarms, |firing: &Firing| AlarmMsg::Ring {
        firing_id: firing.firing_id.clone(),
        due_ms: ms(firing.due),
    });
    shared.lock().unwrap().nodes.insert(
        index,
        NodeHandles {
            dist: dist.clone(),
            alarms,
            reminders,
        },
    );
    loop {
        env.sleep(MINUTE).await;
        let mut shared = shared.lock().unwrap();
        shared.max_view = shared.max_view.max(dist.view());
    }
}

/// A node that is up, and its handles (the lowest index first).
fn any_up(cluster: &Cluster, shared: &Mutex<Shared>, skip: usize) -> NodeHandles {
    let shared = shared.lock().unwrap();
    let up: Vec<&NodeHandles> = shared
        .nodes
        .iter()
        .filter(|(i, _)| cluster.is_up(**i))
        .map(|(_, h)| h)
        .collect();
    up[skip % up.len()].clone()
}

#[derive(Debug, PartialEq)]
struct Outcome {
    fired: usize,
    max_view: u64,
    trace_hash: u64,
}

fn scenario(seed: u64) -> Outcome {
    let runtime = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    runtime.block_on(async move {
        let mut cluster = Cluster::new(ClusterConfig::new(seed));
        let shared = Arc::new(Mutex::new(Shared::default()));
        let mut addrs: Vec<SocketAddr> = (0..NODES)
            .map(|i| SocketAddr::from(([10, 0, 0, i as u8 + 1], PORT)))
            .collect();
        addrs.push(SocketAddr::from((
            [10, 0, 0, STORAGE as u8 + 1],
            JOURNAL_PORT,
        )));
        for index in 0..NODES {
            let (addrs, shared) = (addrs.clone(), shared.clone());
            cluster.add_node(&format!("n{index}"), move |env| {
                run_node(env, index, addrs.clone(), shared.clone())
            });
        }
        let storage_addr = addrs[STORAGE];
        cluster.add_node("storage", move |env| {
            journal_server(env, storage_addr, 0x5707, |_| {})
        });
        let cluster = Arc::new(cluster);
        let clock = plexspaces_sim::SimClock::new(cluster.trace().clone(), Default::default());
        let start_wall = clock.wall_clock();

        let faulty = 12 * HOUR;
        let schedule = Schedule::draw(
            seed,
            NODES,
            &NemesisConfig {
                active: faulty,
                quiet: 12 * HOUR,
                mean_gap: 15 * MINUTE,
                max_fault: 2 * MINUTE,
                kinds: FaultKinds {
                    disk: false,
                    ..FaultKinds::all()
                },
            },
        );
        let _report = ReportOnPanic::new(format!("reminders seed {seed}\n{schedule}"));

        // Register while the nemesis runs (retrying through any node that
        // is up): periodic reminders with staggered anchors, and one-shots
        // due in six hours that are cancelled after one.
        let registrar = {
            let (cluster, shared, clock) = (cluster.clone(), shared.clone(), clock.clone());
            madsim::task::spawn(async move {
                clock.sleep(Duration::from_secs(30)).await;
                let mut cancelled_at = BTreeMap::new();
                let mut attempt = 0;
                let register =
                    |i: usize, name: &str, recurrence: Recurrence, first_due: SystemTime| {
                        (
                            ReminderTarget::new("alarm", format!("a{i}")),
                            ReminderSpec {
                                name: name.to_string(),
                                first_due,
                                recurrence,
                            },
                        )
                    };
                let mut specs = Vec::new();
                for i in 0..PERIODIC {
                    let anchor = start_wall + HOUR + MINUTE * (i as u32 * 7);
                    specs.push(register(i, "tick", Recurrence::Every(PERIOD), anchor));
                }
                for i in 0..CANCELLED {
                    specs.push(register(
                        i,
                        "doomed",
                        Recurrence::Once,
                        start_wall + 6 * HOUR,
                    ));
                }
                for (target, spec) in specs {
                    loop {
                        attempt += 1;
                        let node = any_up(&cluster, &shared, attempt);
                        if node
                            .reminders
                            .register(&target, spec.clone(), MINUTE)
                            .await
                            .is_ok()
                        {
                            break;
                        }
                        clock.sleep(Duration::from_secs(5)).await;
                    }
                }
                clock.sleep(HOUR).await;
                for i in 0..CANCELLED {
                    let target = ReminderTarget::new("alarm", format!("a{i}"));
                    loop {
                        attempt += 1;
                        let node = any_up(&cluster, &shared, attempt);
                        if node
                            .reminders
                            .cancel(&target, "doomed", MINUTE)
                            .await
                            .is_ok()
                        {
                            cancelled_at.insert(i, clock.wall_clock());
                            break;
                        }
                        clock.sleep(Duration::from_secs(5)).await;
                    }
                }
                cancelled_at
            })
        };
        schedule.run(&cluster).await;
        // The liveness oracle: everything after healing ends in time.
        finish_within(
            seed,
            "registration and the checks after healing",
            2 * HOUR,
            async {
                let cancelled_at = registrar.await.unwrap();
                for (i, at) in &cancelled_at {
                    assert!(
                        *at < start_wall + 6 * HOUR,
                        "seed {seed}: a{i}'s cancel was acknowledged only after its due time"
                    );
                }

                // The healthy half: every due time from an hour after the faults
                // stopped to ten minutes before the end fired, once.
                let end_wall = clock.wall_clock();
                let healthy_from = start_wall + faulty + HOUR;
                let healthy_to = end_wall - 10 * MINUTE;
                let checker = any_up(&cluster, &shared, 0);
                checker
                    .dist
                    .wait_for(MINUTE, |m| {
                        m.iter().filter(|m| m.status == MemberStatus::Up).count() == NODES
                    })
                    .await
                    .unwrap_or_else(|_| panic!("seed {seed}: never all up at the end"));
                let mut fired = 0;
                for i in 0..PERIODIC {
                    let id = format!("a{i}");
                    let rang = checker
                        .alarms
                        .get(&id)
                        .unwrap()
                        .call(format!("final-{id}"), AlarmMsg::Rang, MINUTE)
                        .await
                        .unwrap_or_else(|e| panic!("seed {seed}: alarm {id} unreachable: {e}"));
                    fired += rang.len();
                    let ids: BTreeSet<&String> = rang.iter().map(|(f, _)| f).collect();
                    assert_eq!(
                        ids.len(),
                        rang.len(),
                        "seed {seed}: {id} applied a firing twice"
                    );
                    let dues: BTreeSet<u64> = rang.iter().map(|(_, d)| *d).collect();
                    let anchor = start_wall + HOUR + MINUTE * (i as u32 * 7);
                    let mut due = anchor;
                    while due < healthy_to {
                        if due >= healthy_from {
                            assert!(
                                dues.contains(&ms(due)),
                                "seed {seed}: {id}'s due time {:?} after the start passed unfired",
                                due.duration_since(start_wall).unwrap()
                            );
                        }
                        due += PERIOD;
                    }
                    if i < CANCELLED {
                        assert!(
                            !rang.iter().any(|(f, _)| f.contains("/doomed@")),
                            "seed {seed}: {id}'s cancelled reminder fired: {rang:?}"
                        );
                    }
                }
                let shared = shared.lock().unwrap();
                Outcome {
                    fired,
                    max_view: shared.max_view,
                    trace_hash: cluster.trace().hash(),
                }
            },
        )
        .await
    })
}

#[test]
fn reminders_fire_once_per_due_time_and_cancelled_ones_never_over_a_simulated_day() {
    let plan = SeedPlan::from_env(3).with_fresh("reminders", 2);
    let outcomes = run_seeds("reminders", &plan, scenario);
    assert!(
        outcomes.iter().any(|o| o.max_view > 4),
        "no seed saw membership change: {outcomes:?}"
    );
    assert_deterministic(1, scenario);
}
