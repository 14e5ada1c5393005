//! What the distributed scenarios share: node addresses, a distribution
//! config tuned for simulated seconds, and the network nemesis.

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
    DistributionConfig {
        heartbeat_interval: Duration::from_millis(100),
        suspect_after: Duration::from_millis(400),
        down_after: Duration::from_secs(1),
        reconnect_min: Duration::from_millis(20),
        reconnect_max: Duration::from_millis(300),
        ..DistributionConfig::new(addrs[index], ClusterSecret::new(SECRET).unwrap())
    }
    .with_seeds(seeds)
}

/// Twenty seconds of every fault but disk faults on `nodes` nodes (a fault
/// every 1.5 s on average, each up to 3 s), then five quiet seconds.
pub fn network_nemesis(seed: u64, nodes: usize) -> Schedule {
    Schedule::draw(
        seed,
        nodes,
        &NemesisConfig {
            active: Duration::from_secs(20),
            quiet: Duration::from_secs(5),
            mean_gap: Duration::from_millis(1500),
            max_fault: Duration::from_secs(3),
            kinds: FaultKinds {
                disk: false,
                ..FaultKinds::all()
            },
        },
    )
}
