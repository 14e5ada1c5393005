//! The storm: three nodes, each journaling from four tasks and pinging its
//! peers over the network, under every fault the nemesis has (crashes,
//! pauses, partitions, isolation, resets, clock skew, disk faults), then a
//! quiet period.
//!
//! Oracles: every node's journal keeps every acknowledged entry; and after
//! the quiet period began, every node reached every other (liveness).

use crate::journal_workload::{self, Acked};
use futures::future::join_all;
use plexspaces::Env;
use plexspaces::net::{DynReader, DynWriter};
use plexspaces::seams::{ByteReader, ByteWriter, Clock, Connection, Listener, Net};
use plexspaces_sim::{
    Cluster, ClusterConfig, DiskFaults, FaultCounts, NemesisConfig, ReportOnPanic, Schedule,
};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The port every node's echo service listens on.
pub const ECHO_PORT: u16 = 7000;
const NODES: usize = 3;

/// Virtual time of the last successful ping from one node to another.
type Reached = Arc<Mutex<BTreeMap<(usize, usize), Duration>>>;

/// What a storm run produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StormOutcome {
    /// Entries acknowledged by all journals together.
    pub acked: usize,
    /// Ordered pairs of nodes that reached each other at least once.
    pub pairs_reached: usize,
    /// The run's trace hash.
    pub trace_hash: u64,
    /// Faults the disks injected, summed over nodes.
    pub crashes: u64,
}

/// Serves echoes: every connection's bytes come back.
async fn echo_service(env: Env) {
    let mut listener = loop {
        match env.net().listen(([0, 0, 0, 0], ECHO_PORT).into()).await {
            Ok(listener) => break listener,
            Err(_) => env.sleep(Duration::from_millis(50)).await,
        }
    };
    while let Ok((conn, _)) = listener.accept().await {
        drop(env.spawn(async move {
            let (mut input, mut output) = conn.split();
            let mut buf = [0u8; 64];
            while let Ok(n) = input.read(&mut buf).await {
                if n == 0
                    || output.write_all(&buf[..n]).await.is_err()
                    || output.flush().await.is_err()
                {
                    break;
                }
            }
        }));
    }
}

/// Pings each peer every 100 ms over a kept connection, reconnecting after
/// any failure, and records when each ping came back.
async fn pinger(
    env: Env,
    me: usize,
    peers: Vec<(usize, SocketAddr)>,
    reached: Reached,
    started: madsim::time::Instant,
) {
    let mut links: BTreeMap<usize, (DynReader, DynWriter)> = BTreeMap::new();
    let mut sequence = 0u64;
    loop {
        env.sleep(Duration::from_millis(100)).await;
        for &(peer, addr) in &peers {
            sequence += 1;
            let link = match links.remove(&peer) {
                Some(link) => link,
                None => match env
                    .timeout(Duration::from_secs(1), env.net().connect(addr))
                    .await
                {
                    Ok(Ok(conn)) => conn.split(),
                    _ => continue,
                },
            };
            let (mut input, mut output) = link;
            let ping = async {
                output.write_all(&sequence.to_le_bytes()).await?;
                output.flush().await?;
                let mut back = [0u8; 8];
                input.read_exact(&mut back).await?;
                Ok::<_, plexspaces::seams::NetError>(u64::from_le_bytes(back))
            };
            if let Ok(Ok(echo)) = env.timeout(Duration::from_secs(1), ping).await {
                assert_eq!(
                    echo, sequence,
                    "node {me}: an echo from {peer} came back altered"
                );
                let now = madsim::time::TimeHandle::current().now_instant() - started;
                reached.lock().unwrap().insert((me, peer), now);
                links.insert(peer, (input, output));
            }
        }
    }
}

/// Runs the storm for `seed`: `active` of faults, then `quiet` of peace.
pub fn run(seed: u64, active: Duration, quiet: Duration) -> Result<StormOutcome, String> {
    let runtime = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    runtime.block_on(async move {
        let started = madsim::time::TimeHandle::current().now_instant();
        let mut cluster = Cluster::new(ClusterConfig {
            disk_faults: DiskFaults {
                sync_error: 0.002,
                ..DiskFaults::recoverable()
            },
            ..ClusterConfig::new(seed)
        });
        let config = journal_workload::journal_config();
        let reached: Reached = Arc::default();
        let acked: Vec<Acked> = (0..NODES).map(|_| Acked::default()).collect();
        let addrs: Vec<SocketAddr> = (0..NODES)
            .map(|n| SocketAddr::new([10, 0, 0, n as u8 + 1].into(), ECHO_PORT))
            .collect();
        for node in 0..NODES {
            let peers: Vec<(usize, SocketAddr)> = (0..NODES)
                .filter(|&p| p != node)
                .map(|p| (p, addrs[p]))
                .collect();
            let (config, acked, reached) = (config.clone(), acked[node].clone(), reached.clone());
            let index = cluster.add_node(&format!("n{node}"), move |env| {
                let (config, acked, reached, peers) = (
                    config.clone(),
                    acked.clone(),
                    reached.clone(),
                    peers.clone(),
                );
                async move {
                    let services = vec![
                        env.spawn(echo_service(env.clone())),
                        env.spawn(pinger(env.clone(), node, peers, reached, started)),
                        env.spawn(journal_workload::node_main(env.clone(), config, acked)),
                    ];
                    join_all(services).await;
                }
            });
            assert_eq!(cluster.addr(index, ECHO_PORT), addrs[node]);
        }
        let schedule = Schedule::draw(
            seed,
            NODES,
            &NemesisConfig {
                active,
                quiet,
                ..NemesisConfig::default()
            },
        );
        let _report = ReportOnPanic::new(format!("storm seed {seed}\n{schedule}"));
        schedule.run(&cluster).await;
        let healed_at = madsim::time::TimeHandle::current().now_instant() - started - quiet;
        let mut crashes = 0;
        for (node, node_acked) in acked.iter().enumerate() {
            cluster.crash(node); // faults are off: this keeps everything
            let counts: FaultCounts = cluster.disk(node).fault_counts();
            crashes += counts.crashes;
            let checked =
                journal_workload::check(cluster.disk(node).clone(), config.clone(), node_acked);
            crate::liveness::finish_within(
                seed,
                "reopening a journal",
                crate::liveness::AFTER_HEALING,
                checked,
            )
            .await
            .map_err(|e| format!("node {node}: {e}\n{schedule}"))?;
        }
        let reached = reached.lock().unwrap().clone();
        for a in 0..NODES {
            for b in (0..NODES).filter(|&b| b != a) {
                let last = reached.get(&(a, b)).copied().unwrap_or_default();
                if last <= healed_at {
                    return Err(format!(
                        "node {a} never reached node {b} after healing at {healed_at:?} \
                         (last at {last:?})\n{schedule}"
                    ));
                }
            }
        }
        Ok(StormOutcome {
            acked: acked.iter().map(|a| a.lock().unwrap().len()).sum(),
            pairs_reached: reached.len(),
            trace_hash: cluster.trace().hash(),
            crashes,
        })
    })
}
