//! What the distributed scenarios share: node addresses, a distribution
//! config tuned for simulated seconds, the network nemesis, the storage
//! node (a journal server) and its clients, cuts between the storage node
//! and the others, and waiting for a healed cluster.

use plexspaces::distribution::{ClusterSecret, DistributionConfig};
use plexspaces_sim::{FaultKinds, NemesisConfig, Schedule};
use std::net::SocketAddr;
use std::time::Duration;

/// The secret every simulated cluster uses.
pub const SECRET: &[u8] = b"simulated-cluster-secret";

/// The address node `i` listens on: 10.0.0.(i+1):`port` (the simulator
/// gives nodes their ips in the order they are added).
pub fn node_addr(i: usize, port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i as u8 + 1], port))
}

/// Node `index` of `nodes` (listening on `addrs[i]`): heartbeats every
/// 100 ms, suspect after 400 ms, down after 1 s, the others as seeds.
pub fn fast_distribution(addrs: &[SocketAddr], index: usize, nodes: usize) -> DistributionConfig {
    let seeds: Vec<SocketAddr> = (0..nodes)
        .filter(|i| *i != index)
        .map(|i| addrs[i])
        .collect();
    {
        let mut config = DistributionConfig::new(addrs[index], ClusterSecret::new(SECRET).unwrap());
        config.heartbeat_interval = Duration::from_millis(100);
        config.suspect_after = Duration::from_millis(400);
        config.down_after = Duration::from_secs(1);
        config.reconnect_min = Duration::from_millis(20);
        config.reconnect_max = Duration::from_millis(300);
        config
    }
    .with_seeds(seeds)
}

/// Twenty seconds of every fault but disk faults on `nodes` nodes (a fault
/// every 1.5 s on average, each up to 3 s), then five quiet seconds.
pub fn network_nemesis(seed: u64, nodes: usize) -> Schedule {
    nemesis_of(
        seed,
        nodes,
        FaultKinds {
            disk: false,
            ..FaultKinds::all()
        },
    )
}

/// The network nemesis's timing with only `kinds` of faults.
pub fn nemesis_of(seed: u64, nodes: usize, kinds: FaultKinds) -> Schedule {
    Schedule::draw(
        seed,
        nodes,
        &NemesisConfig {
            active: Duration::from_secs(20),
            quiet: Duration::from_secs(5),
            mean_gap: Duration::from_millis(1500),
            max_fault: Duration::from_secs(3),
            kinds,
        },
    )
}

/// The storage node's main task: a journal server on the node's disk,
/// listening on `listen`, until the node dies; it reopens its journal
/// whenever a failed sync stops it, and the node's restart opens it again
/// after a crash. `configure` adjusts the server's config first (a planted
/// bug, say).
pub async fn journal_server(
    env: plexspaces::Env,
    listen: SocketAddr,
    journal_id: u64,
    configure: impl FnOnce(&mut plexspaces::durability::shared::JournalServerConfig),
) {
    use plexspaces::durability::shared::{JournalServer, JournalServerConfig, Reopen};
    use plexspaces::seams::Clock;
    use plexspaces::storage::journal::{FileJournal, JournalConfig};
    let disk = env.disk().clone();
    let open: Reopen<FileJournal<plexspaces::storage::disk::DynDisk>> =
        std::sync::Arc::new(move || {
            let disk = disk.clone();
            Box::pin(
                async move { FileJournal::open(disk, JournalConfig::default(), journal_id).await },
            )
        });
    let mut config = JournalServerConfig::new(listen, ClusterSecret::new(SECRET).unwrap());
    configure(&mut config);
    // Opening may fail while the disk fails syncs: try again, as an
    // operator's supervisor would.
    let _server = loop {
        match JournalServer::start_reopening(env.clone(), config.clone(), open.clone()).await {
            Ok(server) => break server,
            Err(_) => env.sleep(Duration::from_millis(50)).await,
        }
    };
    std::future::pending::<()>().await;
}

/// A node's client of the journal server at `storage`, each request given
/// up after `request_timeout`.
pub fn shared_journal(
    env: &plexspaces::Env,
    storage: SocketAddr,
    request_timeout: Duration,
) -> plexspaces::durability::JournalBackend {
    use plexspaces::durability::shared::{SharedJournal, SharedJournalConfig};
    let mut config = SharedJournalConfig::new(storage, ClusterSecret::new(SECRET).unwrap());
    config.request_timeout = request_timeout;
    plexspaces::durability::JournalBackend::Shared(SharedJournal::new(env.clone(), config))
}

/// A retry policy that outlasts a storm: up to 500 attempts, 50 ms
/// doubling to 500 ms (for steps and compensations that must not give up
/// while their node or the storage node is cut off).
pub fn patient_retry() -> plexspaces::workflow::RetryPolicy {
    plexspaces::workflow::RetryPolicy {
        max_attempts: 500,
        backoff: plexspaces::retry::Backoff::new(
            Duration::from_millis(50),
            Duration::from_millis(500),
        )
        .with_jitter(0.5),
    }
}

/// Messages between checkpoints of the durable actors the distributed
/// scenarios host: small, so checkpoints are written (and fenced) through
/// the shared journal under partitions and crashes, not only appends (the
/// default of 1,000 is never reached in a scenario).
pub const STORM_CHECKPOINT_INTERVAL: u64 = 3;

/// A workflow kind's configuration tuned for a storm: short call attempts
/// and leases (so a cut-off driver is replaced within seconds), frequent
/// resumption, and compensations under [`patient_retry`].
pub fn storm_workflows(
    kind: &str,
    journal: plexspaces::durability::JournalBackend,
) -> plexspaces::workflow::WorkflowConfig {
    let mut config = plexspaces::workflow::WorkflowConfig::new(kind, journal);
    config.hosting.attempt_timeout = Duration::from_millis(500);
    config.hosting.durability.checkpoint_interval = STORM_CHECKPOINT_INTERVAL;
    config.lease = Duration::from_secs(2);
    config.call_timeout = Duration::from_secs(2);
    config.resume_every = Duration::from_millis(200);
    config.compensation_retry = patient_retry();
    config
}

/// For `active` from now: every 1–4 s, either cuts node `storage` off from
/// one of the nodes `0..nodes` for 0.3–2 s (healing the network after each
/// cut), or, one time in four, crashes the storage node and restarts it
/// 0.3–2 s later (its journal server reopens its journal from what is
/// durable). The draws come from `rng_seed` (the scenario's seed, salted).
fn cut_storage_off_now_and_then(
    cluster: std::sync::Arc<plexspaces_sim::Cluster>,
    clock: plexspaces_sim::SimClock,
    storage: usize,
    nodes: usize,
    active: Duration,
    rng_seed: u64,
) -> madsim::task::JoinHandle<()> {
    use plexspaces::seams::{Clock, Rng, SeededRng};
    let rng = SeededRng::new(rng_seed);
    madsim::task::spawn(async move {
        let end = clock.now() + active;
        while clock.now() < end {
            clock
                .sleep(Duration::from_millis(rng.gen_range(1000..4000)))
                .await;
            if rng.gen_range(0..4) == 0 {
                cluster.crash(storage);
                clock
                    .sleep(Duration::from_millis(rng.gen_range(300..2000)))
                    .await;
                cluster.restart(storage);
                continue;
            }
            let node = rng.gen_range(0..nodes as u64) as usize;
            cluster.partition(storage, node);
            clock
                .sleep(Duration::from_millis(rng.gen_range(300..2000)))
                .await;
            cluster.heal_network();
        }
    })
}

/// Waits (10 s each) until every one of `dists` sees `nodes` members up,
/// naming the seed and the node if one never does.
pub async fn wait_all_up<'a>(
    dists: impl IntoIterator<Item = &'a plexspaces::distribution::Distribution>,
    nodes: usize,
    seed: u64,
) {
    use plexspaces::distribution::MemberStatus;
    for dist in dists {
        dist.wait_for(Duration::from_secs(10), |m| {
            m.iter().filter(|m| m.status == MemberStatus::Up).count() == nodes
        })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "seed {seed}: {} never saw all {nodes} up: {:?}",
                dist.node(),
                dist.members()
            )
        });
    }
}

/// A cluster of `nodes` nodes (`n0`, `n1`, ...) and, after them, a storage
/// node serving a journal server: the shape of every scenario whose state
/// lives in a shared journal.
pub struct StorageCluster {
    /// The cluster (the storage node is index `nodes`, the adversary
    /// `nodes + 1`).
    pub cluster: std::sync::Arc<plexspaces_sim::Cluster>,
    /// A clock for the test's own waits.
    pub clock: plexspaces_sim::SimClock,
    nodes: usize,
    /// What the adversary tried and got (see [`crate::adversary`]).
    pub attacks: std::sync::Arc<std::sync::Mutex<crate::adversary::Attacks>>,
}

/// How long the adversary attacks: the nemesis's active period and a bit.
const ATTACK_PERIOD: Duration = Duration::from_secs(22);

impl StorageCluster {
    /// Starts node `i` of `0..nodes` as `node(env, i, addrs)` (again after
    /// each restart), listening on `port`, where `addrs` holds every node's
    /// address and the storage node's last (its journal server on
    /// `journal_port`, journal id `journal_id`, adjusted by `configure`).
    pub fn start<F, Fut>(
        seed: u64,
        nodes: usize,
        (port, journal_port): (u16, u16),
        journal_id: u64,
        configure: impl Fn(&mut plexspaces::durability::shared::JournalServerConfig)
        + Clone
        + Send
        + Sync
        + 'static,
        node: F,
    ) -> Self
    where
        F: Fn(plexspaces::Env, usize, Vec<SocketAddr>) -> Fut + Clone + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let mut cluster = plexspaces_sim::Cluster::new(plexspaces_sim::ClusterConfig::new(seed));
        let mut addrs: Vec<SocketAddr> = (0..nodes).map(|i| node_addr(i, port)).collect();
        let storage = node_addr(nodes, journal_port);
        addrs.push(storage);
        for index in 0..nodes {
            let (addrs, node) = (addrs.clone(), node.clone());
            cluster.add_node(&format!("n{index}"), move |env| {
                node(env, index, addrs.clone())
            });
        }
        cluster.add_node("storage", move |env| {
            journal_server(env, storage, journal_id, configure.clone())
        });
        assert_eq!(cluster.addr(nodes, journal_port), storage);
        // A stranger attacking every node and the journal server.
        let attacks: std::sync::Arc<std::sync::Mutex<crate::adversary::Attacks>> =
            std::sync::Arc::default();
        let intruder = node_addr(nodes + 1, port);
        let (targets, record) = (addrs.clone(), std::sync::Arc::clone(&attacks));
        let adversary = cluster.add_node("intruder", move |env| {
            crate::adversary::run(
                env,
                targets.clone(),
                intruder,
                ATTACK_PERIOD,
                record.clone(),
            )
        });
        assert_eq!(cluster.addr(adversary, port), intruder);
        let cluster = std::sync::Arc::new(cluster);
        let clock = plexspaces_sim::SimClock::new(cluster.trace().clone(), Default::default());
        StorageCluster {
            cluster,
            clock,
            nodes,
            attacks,
        }
    }

    /// How many times the storage node crashed (its journal server and
    /// journal reopened from what was durable).
    pub fn storage_crashes(&self) -> u64 {
        self.cluster.disk(self.nodes).fault_counts().crashes
    }

    /// How many syncs failed on the storage node (each stopped its journal,
    /// which the server reopened).
    pub fn storage_sync_errors(&self) -> u64 {
        self.cluster.disk(self.nodes).fault_counts().sync_errors
    }

    /// How many streams have a checkpoint on the storage node's journal:
    /// the scenarios check that checkpoints went through the shared journal
    /// (and its fencing) too, not only appends.
    pub async fn checkpointed_streams(&self) -> usize {
        use plexspaces::storage::disk::Disk;
        let names = self
            .cluster
            .disk(self.nodes)
            .list()
            .await
            .expect("the storage node's disk lists its files");
        names.iter().filter(|n| n.starts_with("ckpt-")).count()
    }

    /// The network nemesis's 20 active seconds (then quiet), with the
    /// storage node cut off from one node at a time or crashed and
    /// restarted (draws from `seed ^ salt`), its disk losing and tearing
    /// unsynced writes and failing syncs meanwhile, then everything healed. Returns a guard that prints the
    /// fault schedule, named `name`, if the test panics while it lives.
    pub async fn storm(&self, name: &str, seed: u64, salt: u64) -> plexspaces_sim::ReportOnPanic {
        self.storm_of(name, seed, salt, network_nemesis(seed, self.nodes))
            .await
    }

    /// [`StorageCluster::storm`] with the nodes' faults drawn in `schedule`
    /// (the storage node's cuts, crashes and disk faults as always).
    pub async fn storm_of(
        &self,
        name: &str,
        seed: u64,
        salt: u64,
        schedule: Schedule,
    ) -> plexspaces_sim::ReportOnPanic {
        let report = plexspaces_sim::ReportOnPanic::new(format!("{name} seed {seed}\n{schedule}"));
        let cutter = cut_storage_off_now_and_then(
            self.cluster.clone(),
            self.clock.clone(),
            self.nodes,
            self.nodes,
            Duration::from_secs(20),
            seed ^ salt,
        );
        let storage_disk = self.cluster.disk(self.nodes);
        storage_disk.set_faults(plexspaces_sim::DiskFaults::recoverable());
        schedule.run(&self.cluster).await;
        cutter.await.unwrap();
        storage_disk.set_faults(plexspaces_sim::DiskFaults::none());
        self.cluster.heal_network();
        let attacks = self.attacks.lock().unwrap().clone();
        assert!(
            attacks.admitted.is_empty(),
            "seed {seed}: the adversary was admitted: {:?}",
            attacks.admitted
        );
        assert!(
            attacks.tried > 10 && attacks.replayed > 0,
            "seed {seed}: the adversary attacked ({attacks:?})"
        );
        report
    }
}
