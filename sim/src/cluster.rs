//! The cluster harness: N simulated nodes, each with an `Env` of simulated
//! seams, and the levers a test or the nemesis pulls: crash, restart,
//! pause, partition, clog, reset connections, skew clocks, disk faults.

use crate::disk::{DiskFaults, DiskLatency, SimDisk};
use crate::net::SimNet;
use crate::rng::ChaChaRng;
use crate::seams::{ClockSkew, Home, SimClock, SimSpawner};
use crate::trace::{Event, Trace};
use madsim::net::NetSim;
use madsim::runtime::{Handle, NodeHandle};
use plexspaces::{Env, NodeName};
use plexspaces_storage::sync::LockExt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the simulated world behaves.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// The run's seed; every choice of the run derives from it.
    pub seed: u64,
    /// Disk faults while they are switched on (see [`Cluster::set_disk_faults`]).
    pub disk_faults: DiskFaults,
    /// One-way latency of each network message.
    pub send_latency: Range<Duration>,
    /// Probability a message is lost (and resent after a backoff, as TCP would).
    pub packet_loss: f64,
    /// How long disk operations take.
    pub disk_latency: DiskLatency,
}

impl ClusterConfig {
    /// A healthy cluster: no disk faults, an SSD's disk latency, 1–10 ms
    /// network latency, no loss.
    pub fn new(seed: u64) -> Self {
        ClusterConfig {
            seed,
            disk_faults: DiskFaults::none(),
            send_latency: Duration::from_millis(1)..Duration::from_millis(10),
            packet_loss: 0.0,
            disk_latency: DiskLatency::ssd(),
        }
    }
}

/// A simulated cluster. Create it inside a madsim runtime.
pub struct Cluster {
    config: ClusterConfig,
    trace: Arc<Trace>,
    nodes: Vec<SimNode>,
}

struct SimNode {
    /// Which run of the node is alive (see `Home`).
    runs: Arc<AtomicU64>,
    name: NodeName,
    ip: IpAddr,
    handle: NodeHandle,
    disk: SimDisk,
    net: SimNet,
    skew: ClockSkew,
    up: AtomicBool,
    paused: AtomicBool,
}

/// Stream numbers of node `index`'s randomness: one per incarnation, so a
/// restarted node does not replay the numbers of its previous life.
fn rng_stream(index: usize, incarnation: u64) -> u64 {
    ((index as u64) << 32) | incarnation
}

impl Cluster {
    /// An empty cluster.
    pub fn new(config: ClusterConfig) -> Self {
        let (latency, loss) = (config.send_latency.clone(), config.packet_loss);
        NetSim::current().update_config(|net| {
            net.send_latency = latency;
            net.packet_loss_rate = loss;
        });
        Cluster {
            config,
            trace: Arc::new(Trace::new()),
            nodes: Vec::new(),
        }
    }

    /// Adds a node named `name` whose main task is `init(env)`; `init` runs
    /// again, with a fresh `Env` on the same disk, each time the node
    /// restarts. Returns the node's index.
    pub fn add_node<F, Fut>(&mut self, name: &str, init: F) -> usize
    where
        F: Fn(Env) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let index = self.nodes.len();
        let name = NodeName::new(name).unwrap_or_else(|e| panic!("{e}"));
        let ip = IpAddr::V4(Ipv4Addr::new(
            10,
            0,
            (index / 250) as u8,
            (index % 250 + 1) as u8,
        ));
        let seed = self.config.seed;
        let disk_seed = seed ^ 0xD15C_0000_0000_0000 ^ index as u64;
        let disk = SimDisk::new(disk_seed, DiskFaults::none(), self.trace.clone());
        disk.set_latency(self.config.disk_latency.clone());
        let net = SimNet::new(self.trace.clone());
        let skew = ClockSkew::default();
        let incarnation = Arc::new(AtomicU64::new(0));
        let home_node = Arc::new(std::sync::OnceLock::new());
        // Bumped by every crash: spawns through a dead run's Env are dropped.
        let runs = Arc::new(AtomicU64::new(0));
        let (home, home_runs) = (home_node.clone(), runs.clone());
        let (trace, env_name) = (self.trace.clone(), name.clone());
        let (env_disk, env_net, env_skew) = (disk.clone(), net.clone(), skew.clone());
        let handle = Handle::current()
            .create_node()
            .name(name.as_str())
            .ip(ip)
            .init(move || {
                let life = incarnation.fetch_add(1, Ordering::SeqCst);
                let home = Home {
                    node: home.clone(),
                    runs: home_runs.clone(),
                    run: home_runs.load(Ordering::SeqCst),
                };
                let rng = ChaChaRng::for_node(seed, rng_stream(index, life)).traced(trace.clone());
                let env = Env::new(
                    env_name.clone(),
                    SimClock::new(trace.clone(), env_skew.clone()),
                    SimSpawner::at_home(trace.clone(), home),
                    rng,
                    env_disk.clone(),
                    env_net.clone(),
                );
                init(env)
            })
            .build();
        let _ = home_node.set(handle.clone());
        self.nodes.push(SimNode {
            runs,
            name,
            ip,
            handle,
            disk,
            net,
            skew,
            up: AtomicBool::new(true),
            paused: AtomicBool::new(false),
        });
        index
    }

    /// The run's seed.
    pub fn seed(&self) -> u64 {
        self.config.seed
    }

    /// How many nodes there are.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the cluster has no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `node`'s name.
    pub fn name(&self, node: usize) -> &NodeName {
        &self.nodes[node].name
    }

    /// Node `node`'s address at `port`.
    pub fn addr(&self, node: usize, port: u16) -> SocketAddr {
        SocketAddr::new(self.nodes[node].ip, port)
    }

    /// Node `node`'s disk (it outlives the node's crashes).
    pub fn disk(&self, node: usize) -> &SimDisk {
        &self.nodes[node].disk
    }

    /// The run's trace (its hash is the determinism check).
    pub fn trace(&self) -> &Arc<Trace> {
        &self.trace
    }

    /// Whether node `node` is running (not crashed).
    pub fn is_up(&self, node: usize) -> bool {
        self.nodes[node].up.load(Ordering::SeqCst)
    }

    fn fault(&self, code: u64, node: usize) {
        self.trace.record(Event::Fault, (code << 16) | node as u64);
    }

    /// Crashes node `node`: its tasks and volatile state are gone, its
    /// connections drop, and its disk keeps only what the fault model lets
    /// through. A crashed node stays down until [`Cluster::restart`].
    pub fn crash(&self, node: usize) {
        let slot = &self.nodes[node];
        if !slot.up.swap(false, Ordering::SeqCst) {
            return;
        }
        self.fault(1, node);
        slot.runs.fetch_add(1, Ordering::SeqCst);
        Handle::current().kill(slot.handle.id());
        slot.disk.crash();
        slot.paused.store(false, Ordering::SeqCst);
    }

    /// Restarts node `node` (crashing it first if it is up): its `init`
    /// runs again on its surviving disk.
    pub fn restart(&self, node: usize) {
        self.crash(node);
        self.fault(2, node);
        Handle::current().restart(self.nodes[node].handle.id());
        self.nodes[node].up.store(true, Ordering::SeqCst);
    }

    /// Freezes every task of node `node` (a long GC pause, a stopped VM).
    pub fn pause(&self, node: usize) {
        if self.is_up(node) && !self.nodes[node].paused.swap(true, Ordering::SeqCst) {
            self.fault(3, node);
            Handle::current().pause(self.nodes[node].handle.id());
        }
    }

    /// Lets a paused node run again.
    pub fn resume(&self, node: usize) {
        if self.nodes[node].paused.swap(false, Ordering::SeqCst) {
            self.fault(4, node);
            Handle::current().resume(self.nodes[node].handle.id());
        }
    }

    /// Stops traffic from `from` to `to` (one direction).
    pub fn partition_one_way(&self, from: usize, to: usize) {
        self.fault(5, (from << 8) | to);
        NetSim::current().clog_link(self.nodes[from].handle.id(), self.nodes[to].handle.id());
    }

    /// Stops traffic between `a` and `b`, both ways.
    pub fn partition(&self, a: usize, b: usize) {
        self.partition_one_way(a, b);
        self.partition_one_way(b, a);
    }

    /// Cuts node `node` off from everyone, both ways.
    pub fn isolate(&self, node: usize) {
        self.fault(6, node);
        NetSim::current().clog_node(self.nodes[node].handle.id());
    }

    /// Restores every link and node of the network.
    pub fn heal_network(&self) {
        self.fault(7, 0);
        let net = NetSim::current();
        for a in &self.nodes {
            net.unclog_node(a.handle.id());
            for b in &self.nodes {
                net.unclog_link(a.handle.id(), b.handle.id());
            }
        }
    }

    /// Resets every live connection of node `node`.
    pub fn reset_connections(&self, node: usize) -> usize {
        self.fault(8, node);
        self.nodes[node].net.reset_connections()
    }

    /// Sets node `node`'s wall clock `by` ahead (or behind).
    pub fn skew_clock(&self, node: usize, by: Duration, behind: bool) {
        self.fault(9, node);
        self.nodes[node].skew.set(by, behind);
    }

    /// Switches every disk's faults on (to the configured classes) or off.
    pub fn set_disk_faults(&self, on: bool) {
        self.fault(10, usize::from(on));
        for node in &self.nodes {
            node.disk.set_faults(if on {
                self.config.disk_faults.clone()
            } else {
                DiskFaults::none()
            });
        }
    }

    /// Ends every fault: restarts crashed nodes, resumes paused ones, heals
    /// the network, unskews clocks and switches disk faults off.
    pub fn heal_all(&self) {
        self.set_disk_faults(false);
        self.heal_network();
        for node in 0..self.nodes.len() {
            self.resume(node);
            if !self.is_up(node) {
                self.restart(node);
            }
            self.nodes[node].skew.set(Duration::ZERO, false);
        }
    }
}

/// Prints `report` if the current thread panics while this is alive: the
/// fault schedule of a failing run, shown next to its seed.
pub struct ReportOnPanic {
    report: Mutex<String>,
}

impl ReportOnPanic {
    /// A guard that will print `report` on panic.
    pub fn new(report: String) -> Self {
        ReportOnPanic {
            report: Mutex::new(report),
        }
    }
}

thread_local! {
    /// Set while a shrinker re-runs a failing seed: the reports of its
    /// trials are not printed.
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Silences (or restores) [`ReportOnPanic`] on this thread.
pub fn quiet_reports(quiet: bool) {
    QUIET.with(|q| q.set(quiet));
}

impl Drop for ReportOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() && !QUIET.with(|q| q.get()) {
            let report = self.report.locked();
            eprintln!("{report}");
        }
    }
}
