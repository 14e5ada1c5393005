//! Remote actor benchmark over loopback TCP: ask round-trip latency and
//! tell throughput between two nodes in one process, with 64 B and 4 KiB
//! payloads, against the physical floor: a raw TCP ping-pong (and a raw
//! one-way stream) moving the same bytes with no framing, no actors and no
//! encoding.
//!
//! ```text
//! cargo run --release -p plexspaces-bench --bin remote_bench [-- --quick]
//! ```
//!
//! With `--features cluster-peers`, ractor_cluster runs the same asks and
//! tells in the same run (left out by default: its TLS stack is slow to
//! build). kameo's remote actors (libp2p) are not run; see BENCHMARKS.md.

// A benchmark measures real time and opens sockets directly for its floor.
#![allow(clippy::disallowed_methods, clippy::disallowed_types, missing_docs)]

use plexspaces::actor::{Actor, ActorError, ActorId, ActorSystem, Context};
use plexspaces::distribution::{ClusterSecret, DistributionConfig};
use plexspaces::{Env, NodeName};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[cfg(feature = "cluster-peers")]
#[path = "../ractor_cluster_peer.rs"]
mod ractor_cluster_peer;

struct Sink(u64);

impl Actor for Sink {
    type Msg = Vec<u8>;
    type Reply = u64;
    async fn handle(&mut self, _: &mut Context<Self>, msg: Vec<u8>) -> Result<u64, ActorError> {
        self.0 += msg.len() as u64;
        Ok(self.0)
    }
}

async fn system(name: &str) -> ActorSystem {
    let dir = std::env::temp_dir().join(format!(
        "plexspaces-remote-bench-{}-{name}",
        std::process::id()
    ));
    ActorSystem::new(
        Env::tokio(NodeName::new(name).unwrap())
            .with_data_dir(dir)
            .await
            .unwrap(),
    )
}

/// Raw TCP: `n` round trips of `size` bytes each way.
async fn floor_round_trips(size: usize, n: usize) -> Duration {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        s.set_nodelay(true).unwrap();
        let mut buf = vec![0; size];
        for _ in 0..n {
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(&buf).await.unwrap();
        }
    });
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    c.set_nodelay(true).unwrap();
    let mut buf = vec![1; size];
    let start = Instant::now();
    for _ in 0..n {
        c.write_all(&buf).await.unwrap();
        c.read_exact(&mut buf).await.unwrap();
    }
    let elapsed = start.elapsed();
    server.await.unwrap();
    elapsed
}

/// Raw TCP: `n` messages of `size` bytes one way, then one byte back.
async fn floor_stream(size: usize, n: usize) -> Duration {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = vec![0; size];
        for _ in 0..n {
            s.read_exact(&mut buf).await.unwrap();
        }
        s.write_all(&[1]).await.unwrap();
    });
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    c.set_nodelay(true).unwrap();
    let buf = vec![1; size];
    let start = Instant::now();
    for _ in 0..n {
        c.write_all(&buf).await.unwrap();
    }
    let mut done = [0];
    c.read_exact(&mut done).await.unwrap();
    let elapsed = start.elapsed();
    server.await.unwrap();
    elapsed
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (asks, tells) = if quick {
        (2_000, 20_000)
    } else {
        (20_000, 200_000)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let secret = ClusterSecret::new(*b"benchmark-cluster-secret").unwrap();
        let a = system("a").await;
        let dist_a = a
            .start_distribution(DistributionConfig::new(
                "127.0.0.1:0".parse().unwrap(),
                secret.clone(),
            ))
            .await
            .unwrap();
        let sink = a.spawn("sink", Sink(0)).unwrap();
        dist_a.export(&sink).unwrap();
        let b = system("b").await;
        let config = DistributionConfig::new("127.0.0.1:0".parse().unwrap(), secret)
            .with_seeds([dist_a.local_addr()]);
        let dist_b = b.start_distribution(config).await.unwrap();
        dist_b
            .wait_for(Duration::from_secs(5), |m| m.len() == 2)
            .await
            .unwrap();
        let remote = b
            .resolve::<Sink>(&ActorId::new("sink", NodeName::new("a").unwrap()).unwrap())
            .unwrap();
        remote.ask(vec![0], Duration::from_secs(5)).await.unwrap(); // warm the connection

        println!("remote actors over loopback TCP, 2 tokio workers ({asks} asks, {tells} tells)");
        println!(
            "{:<28} {:>14} {:>14} {:>8}",
            "", "plexspaces", "raw TCP floor", "ratio"
        );
        for size in [64usize, 4096] {
            let payload = vec![7u8; size];
            let start = Instant::now();
            for _ in 0..asks {
                remote
                    .ask(payload.clone(), Duration::from_secs(5))
                    .await
                    .unwrap();
            }
            let ours = start.elapsed().as_secs_f64() * 1e6 / asks as f64;
            let floor = floor_round_trips(size, asks).await.as_secs_f64() * 1e6 / asks as f64;
            println!(
                "{:<28} {:>11.1} µs {:>11.1} µs {:>7.2}x",
                format!("ask round trip, {size} B"),
                ours,
                floor,
                ours / floor
            );
            #[cfg(feature = "cluster-peers")]
            {
                let peer = ractor_cluster_peer::Peer::start().await;
                let theirs = peer.ask_us(size, asks).await;
                println!(
                    "{:<28} {:>11.1} µs   (plexspaces/ractor_cluster {:.2}x)",
                    "  ractor_cluster",
                    theirs,
                    ours / theirs
                );
                peer.stop();
            }

            let start = Instant::now();
            for _ in 0..tells {
                remote.tell(payload.clone()).await.unwrap();
            }
            // The ask after the tells returns once all of them were handled.
            remote
                .ask(Vec::new(), Duration::from_secs(60))
                .await
                .unwrap();
            let ours = tells as f64 / start.elapsed().as_secs_f64();
            let floor = tells as f64 / floor_stream(size, tells).await.as_secs_f64();
            println!(
                "{:<28} {:>9.0} k/s {:>9.0} k/s {:>7.2}x",
                format!("tell throughput, {size} B"),
                ours / 1e3,
                floor / 1e3,
                ours / floor
            );
            #[cfg(feature = "cluster-peers")]
            {
                let peer = ractor_cluster_peer::Peer::start().await;
                let theirs = peer.tells_per_s(size, tells).await;
                println!(
                    "{:<28} {:>9.0} k/s     (plexspaces/ractor_cluster {:.2}x)",
                    "  ractor_cluster",
                    theirs / 1e3,
                    ours / theirs
                );
                peer.stop();
            }
        }
        dist_b.shutdown();
        dist_a.shutdown();
    });
}
