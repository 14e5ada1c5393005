//! A node attacked by strangers on real loopback TCP while a legitimate
//! peer keeps asking it.
//!
//! Strangers open hundreds of connections that each announce a frame of
//! almost 8 MiB and send five bytes of it, and others trickle a `Hello` a
//! byte at a time (slow loris). None of them knows the cluster secret.
//! What a user relies on: the node's memory barely moves (it buffers what
//! arrives, not what a header claims, and bounds connections in their
//! handshake), handshakes still end at their deadline, every ask of the
//! legitimate peer is answered, and neither node declares the other Down.
//!
//! Its own test binary, so the resident memory it measures is this
//! test's alone.
#![cfg(target_os = "linux")]

use plexspaces::actor::{Actor, ActorError, ActorId, ActorSystem, Context};
use plexspaces::distribution::{ClusterSecret, Distribution, DistributionConfig, MemberStatus};
use plexspaces::net::wire::{self, WireMessage};
use plexspaces::net::{ByteReader, ByteWriter, Connection, Net, TcpNet};
use plexspaces::seams::Clock;
use plexspaces::{Env, NodeName};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

const SECRET: &[u8] = b"a-cluster-secret-of-some-length";
const FLOODERS: usize = 300;
const SLOW_LORISES: usize = 60;
/// Longer than the handshake timeout (2 s), so connections are cut at
/// their deadline and re-opened while the attack goes on.
const ATTACK: Duration = Duration::from_secs(5);
const MIB: u64 = 1 << 20;

struct Echo;

impl Actor for Echo {
    type Msg = u64;
    type Reply = u64;
    async fn handle(&mut self, _: &mut Context<Self>, n: u64) -> Result<u64, ActorError> {
        Ok(n)
    }
}

async fn node(name: &str, seeds: &[SocketAddr]) -> (ActorSystem, Distribution) {
    let dir =
        std::env::temp_dir().join(format!("plexspaces-hostile-{}-{name}", std::process::id()));
    let env = Env::tokio(NodeName::new(name).unwrap())
        .with_data_dir(dir)
        .await
        .unwrap();
    let system = ActorSystem::new(env);
    // The production defaults: heartbeats every 200 ms, Down after 3 s,
    // handshakes cut at 2 s.
    let config = DistributionConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        ClusterSecret::new(SECRET).unwrap(),
    )
    .with_seeds(seeds.iter().copied());
    let dist = system.start_distribution(config).await.unwrap();
    (system, dist)
}

/// This process's resident memory, from the kernel.
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("procfs");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kib * 1024
}

/// Opens connections that announce a frame of almost the 8 MiB limit and
/// send five bytes of it, each held until the node closes it, until
/// `stop`. Counts the connections opened.
async fn flood(env: Env, target: SocketAddr, stop: Arc<AtomicBool>, opened: Arc<AtomicU64>) {
    let mut announcement = (wire::MAX_FRAME_LEN_DEFAULT - 1).to_le_bytes().to_vec();
    announcement.push(wire::PROTOCOL_VERSION);
    announcement.extend_from_slice(&[0, 1, 2, 3, 4]);
    while !stop.load(Ordering::Relaxed) {
        let Ok(connection) = TcpNet::new().connect(target).await else {
            env.sleep(Duration::from_millis(50)).await;
            continue;
        };
        opened.fetch_add(1, Ordering::Relaxed);
        let (mut reader, mut writer) = connection.split();
        if writer.write_all(&announcement).await.is_ok() && writer.flush().await.is_ok() {
            // Held open until the node closes it (refused at once, or cut
            // at the handshake deadline).
            let mut buf = [0u8; 256];
            while let Ok(n) = reader.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        }
        // Paced, so the attack does not exhaust loopback ports.
        env.sleep(Duration::from_millis(200)).await;
    }
}

/// Trickles a real `Hello` a byte every 150 ms and records, for each
/// connection the node admitted, how long the node kept it open.
async fn slow_loris(
    env: Env,
    target: SocketAddr,
    stop: Arc<AtomicBool>,
    longest_ms: Arc<AtomicU64>,
) {
    let mut hello = Vec::new();
    let msg = WireMessage::Hello {
        node: "loris".into(),
        listen: "127.0.0.1:9".parse().unwrap(),
        incarnation: 1,
        nonce: [9; 32],
    };
    wire::encode_frame(&msg, wire::HANDSHAKE_FRAME_LEN_MAX, &mut hello).unwrap();
    while !stop.load(Ordering::Relaxed) {
        let Ok(connection) = TcpNet::new().connect(target).await else {
            env.sleep(Duration::from_millis(50)).await;
            continue;
        };
        let opened = env.now();
        let (mut reader, mut writer) = connection.split();
        let closed = {
            let reader = &mut reader;
            async move {
                let mut buf = [0u8; 64];
                while let Ok(n) = reader.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            }
        };
        let trickle = async {
            for byte in hello.iter().cycle() {
                if writer.write_all(&[*byte]).await.is_err() || writer.flush().await.is_err() {
                    break;
                }
                env.sleep(Duration::from_millis(150)).await;
            }
        };
        futures::pin_mut!(closed, trickle);
        futures::future::select(closed, trickle).await;
        let held = env.now().saturating_duration_since(opened).as_millis() as u64;
        longest_ms.fetch_max(held, Ordering::Relaxed);
        env.sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_cannot_exhaust_a_node_that_keeps_serving_its_peers() {
    let (sys_a, dist_a) = node("hostile-a", &[]).await;
    dist_a.export(&sys_a.spawn("echo", Echo).unwrap()).unwrap();
    let (sys_b, dist_b) = node("hostile-b", &[dist_a.local_addr()]).await;
    let both_up = |m: &[plexspaces::distribution::MemberInfo]| {
        m.iter().filter(|m| m.status == MemberStatus::Up).count() == 2
    };
    dist_b
        .wait_for(Duration::from_secs(10), both_up)
        .await
        .unwrap();
    dist_a
        .wait_for(Duration::from_secs(10), both_up)
        .await
        .unwrap();
    let echo = sys_b
        .resolve::<Echo>(&ActorId::new("echo", NodeName::new("hostile-a").unwrap()).unwrap())
        .unwrap();
    for n in 0..100 {
        assert_eq!(echo.ask(n, Duration::from_secs(2)).await, Ok(n));
    }
    let env = sys_a.env().clone();
    let before = resident_bytes();

    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicU64::new(0));
    let loris_longest_ms = Arc::new(AtomicU64::new(0));
    let target = dist_a.local_addr();
    let mut attackers = Vec::new();
    for _ in 0..FLOODERS {
        let task = flood(env.clone(), target, stop.clone(), opened.clone());
        attackers.push(env.spawn(task));
    }
    for _ in 0..SLOW_LORISES {
        let task = slow_loris(env.clone(), target, stop.clone(), loris_longest_ms.clone());
        attackers.push(env.spawn(task));
    }

    // The legitimate peer asks all along; memory and membership are
    // sampled between asks.
    let started = env.now();
    let mut peak = before;
    let mut asks = 0u64;
    let mut failures = Vec::new();
    let mut downs = Vec::new();
    while env.now().saturating_duration_since(started) < ATTACK {
        asks += 1;
        match echo.ask(asks, Duration::from_secs(2)).await {
            Ok(n) if n == asks => {}
            other => failures.push((asks, format!("{other:?}"))),
        }
        peak = peak.max(resident_bytes());
        for (node, dist) in [("a", &dist_a), ("b", &dist_b)] {
            for member in dist.members() {
                if member.status == MemberStatus::Down {
                    downs.push(format!("{node} saw {} Down", member.node));
                }
            }
        }
        env.sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for attacker in attackers {
        attacker.abort();
    }

    let opened = opened.load(Ordering::Relaxed);
    assert!(
        opened >= FLOODERS as u64,
        "the attack ran: {opened} connections"
    );
    assert!(
        failures.is_empty(),
        "{} of {asks} asks failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(downs.is_empty(), "{downs:?}");
    let grown = peak.saturating_sub(before);
    assert!(
        grown < 64 * MIB,
        "resident memory grew by {} MiB under {opened} hostile connections",
        grown / MIB
    );
    // Admitted slow connections are cut at the 2 s handshake deadline,
    // not seconds later.
    let longest = loris_longest_ms.load(Ordering::Relaxed);
    assert!(
        longest > 0 && longest < 3_500,
        "a handshake was left open {longest} ms"
    );
}

/// Opens `count` connections to `target` at once that send nothing, and
/// returns how long the server kept each open.
async fn silent_connections(env: &Env, target: SocketAddr, count: usize) -> Vec<Duration> {
    let mut held = Vec::new();
    for _ in 0..count {
        let env2 = env.clone();
        held.push(env.spawn(async move {
            let connection = TcpNet::new().connect(target).await.unwrap();
            let opened = env2.now();
            let (mut reader, _writer) = connection.split();
            let mut buf = [0u8; 64];
            while let Ok(n) = reader.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
            env2.now().saturating_duration_since(opened)
        }));
    }
    let mut out = Vec::new();
    for h in held {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_in_their_handshake_are_bounded_per_source() {
    let limits = plexspaces::distribution::AdmissionLimits {
        handshakes_max: 64,
        handshakes_per_source_max: 8,
    };
    let dir =
        std::env::temp_dir().join(format!("plexspaces-hostile-{}-bounded", std::process::id()));
    let env = Env::tokio(NodeName::new("bounded").unwrap())
        .with_data_dir(dir)
        .await
        .unwrap();
    let system = ActorSystem::new(env.clone());
    let mut config = DistributionConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        ClusterSecret::new(SECRET).unwrap(),
    );
    config.admission = limits;
    let dist = system.start_distribution(config).await.unwrap();

    let secret = ClusterSecret::new(SECRET).unwrap();
    let server_env = Env::tokio(NodeName::new("journal-host").unwrap())
        .with_data_dir(
            std::env::temp_dir().join(format!("plexspaces-hostile-{}-js", std::process::id())),
        )
        .await
        .unwrap();
    let mut server_config = plexspaces::durability::shared::JournalServerConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        secret,
    );
    server_config.admission = limits;
    let server = plexspaces::durability::shared::JournalServer::start(
        server_env,
        server_config,
        plexspaces::storage::journal::MemoryJournal::new(),
    )
    .await
    .unwrap();

    for (what, target) in [
        ("node", dist.local_addr()),
        ("journal server", server.local_addr()),
    ] {
        let held = silent_connections(&env, target, 40).await;
        // Admitted connections wait for their 2 s handshake deadline;
        // the others are closed unread at once.
        let admitted = held
            .iter()
            .filter(|d| **d >= Duration::from_secs(1))
            .count();
        assert_eq!(admitted, 8, "{what}: connections held open {held:?}");
        assert!(
            held.iter().all(|d| *d < Duration::from_millis(3500)),
            "{what}: a handshake outlived its deadline: {held:?}"
        );
    }
    server.shutdown();
}
