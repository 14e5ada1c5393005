//! The simulated network under the cluster harness: ordered delivery,
//! partitions that delay and heal, resets, crashes, refused connections.
#![cfg(madsim)]

use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};
use plexspaces::net::NetErrorKind;
use plexspaces::seams::{ByteReader, ByteWriter, Clock, Connection, Listener, Net, NetError};
use plexspaces_sim::{Cluster, ClusterConfig};
use std::time::Duration;

const PORT: u16 = 7000;

fn run<T>(seed: u64, test: impl std::future::Future<Output = T>) -> T {
    madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default()).block_on(test)
}

/// A node that echoes every connection's bytes back, flushing each read.
fn echo_server(cluster: &mut Cluster) -> usize {
    cluster.add_node("server", |env| async move {
        let mut listener = env.net().listen(([0, 0, 0, 0], PORT).into()).await.unwrap();
        loop {
            let (conn, _) = listener.accept().await.unwrap();
            // Detached: each connection is served until it ends.
            drop(env.spawn(async move {
                let (mut input, mut output) = conn.split();
                let mut buf = [0u8; 256];
                while let Ok(n) = input.read(&mut buf).await {
                    if n == 0 || output.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    if output.flush().await.is_err() {
                        break;
                    }
                }
            }));
        }
    })
}

#[test]
fn bytes_arrive_in_order_and_a_partition_only_delays_them() {
    for seed in 0..5 {
        run(seed, async move {
            let mut cluster = Cluster::new(ClusterConfig::new(seed));
            let server = echo_server(&mut cluster);
            let addr = cluster.addr(server, PORT);
            let (tx, mut rx) = mpsc::channel::<(u32, Duration)>(64);
            let client = cluster.add_node("client", move |env| {
                let mut tx = tx.clone();
                async move {
                    env.sleep(Duration::from_millis(50)).await;
                    let (mut input, mut output) = env.net().connect(addr).await.unwrap().split();
                    for i in 0..40u32 {
                        let sent = env.now();
                        output.write_all(&i.to_le_bytes()).await.unwrap();
                        output.flush().await.unwrap();
                        let mut back = [0u8; 4];
                        input.read_exact(&mut back).await.unwrap();
                        tx.send((u32::from_le_bytes(back), env.now() - sent))
                            .await
                            .unwrap();
                        env.sleep(Duration::from_millis(100)).await;
                    }
                }
            });
            madsim::time::sleep(Duration::from_secs(1)).await;
            cluster.partition(server, client);
            madsim::time::sleep(Duration::from_secs(2)).await;
            cluster.heal_network();
            let mut echoes = Vec::new();
            while echoes.len() < 40 {
                echoes.push(rx.next().await.unwrap());
            }
            let order: Vec<u32> = echoes.iter().map(|e| e.0).collect();
            assert_eq!(
                order,
                (0..40).collect::<Vec<_>>(),
                "seed {seed}: in order, none lost"
            );
            let slowest = echoes.iter().map(|e| e.1).max().unwrap();
            assert!(
                slowest >= Duration::from_millis(900),
                "seed {seed}: the partition held one up"
            );
        });
    }
}

#[test]
fn a_reset_fails_both_ends_and_a_crash_ends_the_stream() {
    run(1, async {
        let mut cluster = Cluster::new(ClusterConfig::new(1));
        let server = echo_server(&mut cluster);
        let addr = cluster.addr(server, PORT);
        let (tx, mut rx) = mpsc::channel::<Result<usize, NetError>>(8);
        let client = cluster.add_node("client", move |env| {
            let mut tx = tx.clone();
            async move {
                env.sleep(Duration::from_millis(50)).await;
                for _ in 0..2 {
                    let (mut input, mut output) = env.net().connect(addr).await.unwrap().split();
                    output.write_all(b"hi").await.unwrap();
                    output.flush().await.unwrap();
                    let mut buf = [0u8; 2];
                    input.read_exact(&mut buf).await.unwrap();
                    // Now wait for whatever ends this connection.
                    let mut more = [0u8; 1];
                    tx.send(input.read(&mut more).await).await.unwrap();
                    let after = output.write_all(b"x").await.and(output.flush().await);
                    tx.send(after.map(|()| 0)).await.unwrap();
                }
            }
        });
        madsim::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(cluster.reset_connections(client), 1);
        let read = rx.next().await.unwrap().unwrap_err();
        assert_eq!(read.kind(), NetErrorKind::ConnectionReset);
        let write = rx.next().await.unwrap().unwrap_err();
        assert_eq!(write.kind(), NetErrorKind::ConnectionReset);

        madsim::time::sleep(Duration::from_millis(500)).await;
        cluster.crash(server);
        assert_eq!(
            rx.next().await.unwrap().unwrap(),
            0,
            "the dead peer's stream ends"
        );
        assert!(!cluster.is_up(server));
    });
}

#[test]
fn connecting_to_a_dead_node_is_refused() {
    run(2, async {
        let mut cluster = Cluster::new(ClusterConfig::new(2));
        let server = echo_server(&mut cluster);
        let addr = cluster.addr(server, PORT);
        cluster.crash(server);
        let (tx, mut rx) = mpsc::channel::<NetErrorKind>(1);
        cluster.add_node("client", move |env| {
            let mut tx = tx.clone();
            async move {
                let err = env.net().connect(addr).await.map(drop).unwrap_err();
                tx.send(err.kind()).await.unwrap();
            }
        });
        assert_eq!(rx.next().await.unwrap(), NetErrorKind::ConnectionRefused);
        cluster.restart(server);
        assert!(cluster.is_up(server));
    });
}
