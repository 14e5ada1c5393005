//! Durable queues on tokio: a message comes back until it is acknowledged,
//! with its delivery count, and becomes a dead letter after the last
//! delivery; a late acknowledgement is refused; a full queue makes `send`
//! wait and `try_send` refuse; and three real nodes on loopback sharing a
//! journal server deliver every acknowledged send until it is
//! acknowledged, also after the node hosting the queue is killed, to
//! receivers woken on other nodes.

mod support;

use plexspaces::Env;
use plexspaces::actor::ActorSystem;
use plexspaces::channels::{
    Delivery, DurableQueue, DurableQueues, DurableQueuesConfig, QueueError, QueueStats,
};
use plexspaces::distribution::Distribution;
use plexspaces::durability::JournalBackend;
use plexspaces::seams::Clock;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use support::{WAIT, env, paused_wall_env};

const ACK: Duration = Duration::from_secs(1);

async fn one_queue(
    name: &str,
    configure: impl FnOnce(&mut DurableQueuesConfig),
) -> (Env, DurableQueue) {
    let env = paused_wall_env(name).await;
    let system = ActorSystem::new(env.clone());
    let mut config = DurableQueuesConfig::new(JournalBackend::memory());
    configure(&mut config);
    let queues = DurableQueues::register(&system, config).unwrap();
    (env, queues.queue("q").unwrap())
}

#[tokio::test(start_paused = true)]
async fn a_message_comes_back_until_acknowledged_and_dies_after_its_last_delivery() {
    let (env, queue) = one_queue("redeliver", |c| c.max_deliveries = 3).await;
    queue.send(b"order-1".to_vec()).await.unwrap();
    let first = queue.receive(ACK, WAIT).await.unwrap().unwrap();
    assert_eq!(
        (first.payload.as_slice(), first.delivery),
        (&b"order-1"[..], 1)
    );
    // Not acknowledged in time: delivered again, counted.
    assert_eq!(
        queue
            .receive(ACK, Duration::from_millis(500))
            .await
            .unwrap(),
        None
    );
    let second = queue.receive(ACK, WAIT).await.unwrap().unwrap();
    assert_eq!((second.id, second.delivery), (first.id, 2));
    assert!(
        matches!(queue.ack(&first).await, Err(QueueError::UnknownDelivery)),
        "the first delivery's acknowledgement is too late"
    );
    // A nack gives it back at once (still a delivery).
    queue.nack(&second).await.unwrap();
    let third = queue
        .receive(ACK, Duration::from_millis(1))
        .await
        .unwrap()
        .expect("nacked: ready at once");
    assert_eq!(third.delivery, 3);
    env.sleep(ACK * 2).await;
    // The third delivery was the last: a dead letter, not delivered again.
    assert_eq!(
        queue.receive(ACK, Duration::from_secs(2)).await.unwrap(),
        None
    );
    let stats = queue.stats().await.unwrap();
    assert_eq!(
        stats,
        QueueStats {
            dead: 1,
            ..QueueStats::default()
        }
    );
    let dead = queue.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].id, dead[0].delivery), (first.id, 3));
    // Redriven, it is delivered afresh, and acknowledged once.
    assert_eq!(queue.redrive(10).await.unwrap(), 1);
    let again = queue.receive(ACK, WAIT).await.unwrap().unwrap();
    assert_eq!((again.id, again.delivery), (first.id, 1));
    queue.ack(&again).await.unwrap();
    assert!(matches!(
        queue.ack(&again).await,
        Err(QueueError::UnknownDelivery)
    ));
    assert_eq!(queue.stats().await.unwrap(), QueueStats::default());
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_makes_send_wait_and_try_send_refuse() {
    let (env, queue) = one_queue("full", |c| {
        c.capacity = 2;
        c.payload_bytes_max = 8;
        c.send_timeout = Duration::from_secs(5);
    })
    .await;
    queue.send(b"1".to_vec()).await.unwrap();
    queue.send(b"2".to_vec()).await.unwrap();
    assert!(matches!(
        queue.try_send(b"3".to_vec()).await,
        Err(QueueError::Full { capacity: 2 })
    ));
    assert!(matches!(
        queue.try_send(vec![0; 9]).await,
        Err(QueueError::TooLarge { bytes: 9, max: 8 })
    ));
    // A send waits for room: an acknowledgement makes it.
    let sender = {
        let queue = queue.clone();
        env.spawn(async move { queue.send(b"3".to_vec()).await })
    };
    env.sleep(Duration::from_secs(1)).await;
    let one = queue.receive(ACK, WAIT).await.unwrap().unwrap();
    // In flight still counts toward the bound: only the ack frees room.
    env.sleep(Duration::from_millis(200)).await;
    assert!(!sender.is_finished(), "sent into a full queue");
    queue.ack(&one).await.unwrap();
    sender.await.unwrap().unwrap();
    let mut payloads = Vec::new();
    while let Some(d) = queue.receive(ACK, Duration::from_millis(10)).await.unwrap() {
        payloads.push(d.payload.clone());
        queue.ack(&d).await.unwrap();
    }
    assert_eq!(payloads, [b"2".to_vec(), b"3".to_vec()]);
    // A send that cannot get room gives up at its timeout, unsent.
    queue.send(b"4".to_vec()).await.unwrap();
    queue.send(b"5".to_vec()).await.unwrap();
    assert!(matches!(
        queue.send(b"6".to_vec()).await,
        Err(QueueError::Full { .. })
    ));
    assert_eq!(queue.stats().await.unwrap().ready, 2);
}

#[tokio::test(start_paused = true)]
async fn waiting_receivers_are_woken_oldest_first() {
    let (env, queue) = one_queue("fifo", |_| {}).await;
    let mut receivers = Vec::new();
    for i in 0..3 {
        let receiver = queue.clone();
        receivers.push(env.spawn(async move { (i, receiver.receive(ACK, WAIT).await) }));
        while queue.stats().await.unwrap().receivers != i + 1 {
            env.sleep(Duration::from_millis(1)).await;
        }
    }
    let sent_at = env.now();
    for n in 0..3u8 {
        queue.send(vec![n]).await.unwrap();
    }
    for receiver in receivers {
        let (i, got) = receiver.await.unwrap();
        let got: Delivery = got.unwrap().unwrap();
        assert_eq!(
            got.payload,
            vec![i as u8],
            "the oldest receiver gets each message"
        );
    }
    assert!(
        env.now().saturating_duration_since(sent_at) < Duration::from_millis(5),
        "woken by the sends, not by a renewal a second later"
    );
}

struct Node {
    system: ActorSystem,
    dist: Distribution,
    queues: DurableQueues,
}

async fn node(name: &str, seeds: &[SocketAddr], journal_server: SocketAddr) -> Node {
    let (system, dist, journal) = support::node(env(name).await, seeds, journal_server).await;
    let queues = DurableQueues::register(&system, DurableQueuesConfig::new(journal)).unwrap();
    Node {
        system,
        dist,
        queues,
    }
}

/// Receivers on `nodes`, two per node, each acknowledging what it gets
/// until nothing comes for `idle`; every payload acknowledged, and every
/// delivery each one saw.
async fn drain(nodes: &[&Node], name: &str, idle: Duration) -> (Vec<u32>, Vec<(u64, u32)>) {
    let mut workers = Vec::new();
    for node in nodes {
        for _ in 0..2 {
            let queue = node.queues.queue(name).unwrap();
            workers.push(node.system.env().spawn(async move {
                let (mut acked, mut seen) = (Vec::new(), Vec::new());
                while let Some(d) = queue.receive(Duration::from_secs(5), idle).await.unwrap() {
                    seen.push((d.id, d.delivery));
                    if queue.ack(&d).await.is_ok() {
                        acked.push(u32::from_be_bytes(d.payload[..4].try_into().unwrap()));
                    }
                }
                (acked, seen)
            }));
        }
    }
    let (mut acked, mut seen) = (Vec::new(), Vec::new());
    for worker in workers {
        let (a, s) = worker.await.unwrap();
        acked.extend(a);
        seen.extend(s);
    }
    acked.sort_unstable();
    (acked, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_keeps_every_acknowledged_send_when_its_host_dies() {
    let server = support::journal_server(env("qstorage").await).await;
    let journal = server.local_addr();
    let a = node("qa", &[], journal).await;
    let b = node("qb", &[a.dist.local_addr()], journal).await;
    let c = node("qc", &[a.dist.local_addr()], journal).await;
    for n in [&a, &b, &c] {
        support::all_up(&n.dist, 3).await;
    }
    // A queue hosted off the seed, so killing its host leaves the others
    // connected.
    let name = (0..)
        .map(|i| format!("orders-{i}"))
        .find(|name| a.queues.host_of(name).as_ref() != Some(a.system.node()))
        .unwrap();
    let queue = a.queues.queue(&name).unwrap();

    // Receivers on b and c wait first; sends from a wake them.
    let (acked, seen) = {
        let receivers = [&b, &c];
        let drained = drain(&receivers, &name, Duration::from_millis(500));
        let sends = async {
            for n in 0..60u32 {
                queue.send(n.to_be_bytes().to_vec()).await.unwrap();
            }
        };
        let (drained, ()) = futures::join!(drained, sends);
        drained
    };
    assert_eq!(
        acked,
        (0..60).collect::<Vec<_>>(),
        "each message acknowledged once"
    );
    assert!(
        seen.iter().all(|&(_, delivery)| delivery == 1),
        "nothing redelivered: {seen:?}"
    );

    // Messages sent, one received and not acknowledged; then the host dies.
    for n in 60..100u32 {
        queue.send(n.to_be_bytes().to_vec()).await.unwrap();
    }
    let host = a.queues.host_of(&name).unwrap();
    let (victim, survivor) = if &host == c.system.node() {
        (&c, &b)
    } else {
        (&b, &c)
    };
    let unacked = survivor
        .queues
        .queue(&name)
        .unwrap()
        .receive(Duration::from_secs(2), WAIT)
        .await
        .unwrap()
        .unwrap();
    victim.dist.shutdown();
    victim.system.shutdown().await;
    // The survivors get every message (the unacknowledged one again, once
    // its deadline passes and a receiver's renewal, at most a second
    // later, finds it), none twice once acknowledged.
    let survivors = [&a, survivor];
    let (acked, seen) = drain(&survivors, &name, Duration::from_secs(4)).await;
    let again: Vec<&(u64, u32)> = seen.iter().filter(|(id, _)| *id == unacked.id).collect();
    assert_eq!(again, vec![&(unacked.id, 2)], "redelivered once, counted");
    assert_eq!(
        acked,
        (60..100).collect::<Vec<_>>(),
        "lost or acknowledged twice"
    );
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.ready, stats.in_flight, stats.dead), (0, 0, 0));
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receivers_on_every_node_share_one_queue() {
    let server = support::journal_server(env("rstorage").await).await;
    let journal = server.local_addr();
    let a = node("ra", &[], journal).await;
    let b = node("rb", &[a.dist.local_addr()], journal).await;
    let c = node("rc", &[a.dist.local_addr()], journal).await;
    for n in [&a, &b, &c] {
        support::all_up(&n.dist, 3).await;
    }
    let queue = a.queues.queue("shared").unwrap();
    let everyone = [&a, &b, &c];
    let (acked, (), ()) = futures::join!(
        drain(&everyone, "shared", Duration::from_millis(500)),
        async {
            for n in 0..30u32 {
                queue.send(n.to_be_bytes().to_vec()).await.unwrap();
            }
        },
        async {
            let other = c.queues.queue("shared").unwrap();
            for n in 30..60u32 {
                other.send(n.to_be_bytes().to_vec()).await.unwrap();
            }
        }
    );
    let (acked, seen) = acked;
    assert_eq!(acked, (0..60).collect::<Vec<_>>());
    let mut per_message: BTreeMap<u64, u32> = BTreeMap::new();
    for (id, _) in seen {
        *per_message.entry(id).or_default() += 1;
    }
    assert!(per_message.values().all(|&n| n == 1), "{per_message:?}");
    server.shutdown();
}
