//! Durable topics on tokio: live subscribers read every message published
//! after they subscribed, in order, woken by the publish, and are told
//! what they missed when they fall behind; durable subscriptions resume
//! after their last acknowledgement and hold back publishers when full;
//! three real nodes on loopback sharing a journal server all receive
//! every message, and a durable subscription resumes after the node
//! hosting the topic is killed.

mod support;

use plexspaces::Env;
use plexspaces::actor::ActorSystem;
use plexspaces::channels::{DurableTopic, DurableTopics, DurableTopicsConfig, TopicError};
use plexspaces::distribution::Distribution;
use plexspaces::durability::JournalBackend;
use plexspaces::seams::Clock;
use std::net::SocketAddr;
use std::time::Duration;
use support::{WAIT, env, paused_wall_env};

async fn one_topic(
    name: &str,
    configure: impl FnOnce(&mut DurableTopicsConfig),
) -> (Env, DurableTopic) {
    let env = paused_wall_env(name).await;
    let system = ActorSystem::new(env.clone());
    let mut config = DurableTopicsConfig::new(JournalBackend::memory());
    configure(&mut config);
    let topics = DurableTopics::register(&system, config).unwrap();
    (env, topics.topic("t").unwrap())
}

fn payloads(n: std::ops::Range<u8>) -> Vec<Vec<u8>> {
    n.map(|i| vec![i]).collect()
}

#[tokio::test(start_paused = true)]
async fn live_subscribers_read_what_was_published_after_they_joined() {
    let (env, topic) = one_topic("live", |c| c.retention = 4).await;
    topic.publish(vec![99]).await.unwrap(); // before anyone subscribed
    let mut early = topic.subscribe().await.unwrap();
    let reader = env.spawn(async move {
        let mut got = Vec::new();
        while let Some(m) = early.next(Duration::from_secs(5)).await.unwrap() {
            got.push(m.payload);
            if got.len() == 3 {
                break;
            }
        }
        got
    });
    env.sleep(Duration::from_millis(10)).await;
    let published_at = env.now();
    for p in payloads(0..3) {
        topic.publish(p).await.unwrap();
    }
    assert_eq!(reader.await.unwrap(), payloads(0..3));
    assert!(
        env.now().saturating_duration_since(published_at) < Duration::from_millis(5),
        "woken by the publish, not a renewal"
    );
    // A subscriber that falls behind the retention is told, then goes on
    // with the oldest kept.
    let mut slow = topic.subscribe().await.unwrap();
    for p in payloads(10..20) {
        topic.publish(p).await.unwrap();
    }
    assert!(matches!(slow.next(WAIT).await, Err(TopicError::Lagged(6))));
    let rest: Vec<u8> = {
        let mut rest = Vec::new();
        while let Some(m) = slow.next(Duration::from_millis(10)).await.unwrap() {
            rest.push(m.payload[0]);
        }
        rest
    };
    assert_eq!(rest, vec![16, 17, 18, 19]);
}

#[tokio::test(start_paused = true)]
async fn a_durable_subscription_resumes_after_its_last_acknowledgement() {
    let (env, topic) = one_topic("durable", |c| {
        c.retention = 1;
        c.capacity = 4;
        c.publish_timeout = Duration::from_secs(3);
    })
    .await;
    let mut first = topic.subscribe_durable("billing").await.unwrap();
    for p in payloads(0..4) {
        topic.publish(p).await.unwrap();
    }
    // The subscription holds all four: the next publish waits.
    let publisher = {
        let topic = topic.clone();
        env.spawn(async move { topic.publish(vec![4]).await })
    };
    let a = first.next(WAIT).await.unwrap().unwrap();
    let b = first.next(WAIT).await.unwrap().unwrap();
    assert_eq!((a.payload[0], b.payload[0]), (0, 1));
    first.ack(&a).await.unwrap();
    // A new reader (a restart) resumes after the acknowledged message,
    // reading again what was read and not acknowledged.
    drop(first);
    let mut second = topic.subscribe_durable("billing").await.unwrap();
    let again = second.next(WAIT).await.unwrap().unwrap();
    assert_eq!(again.payload, vec![1]);
    assert_eq!(publisher.await.unwrap().unwrap(), 5, "room after the ack");
    let mut rest = Vec::new();
    while let Some(m) = second.next(Duration::from_millis(10)).await.unwrap() {
        rest.push(m.payload[0]);
        second.ack(&m).await.unwrap();
    }
    assert_eq!(rest, vec![2, 3, 4]);
    // Four unacknowledged messages fill the topic again: a publish gives
    // up at its timeout, unpublished, until the subscription goes.
    for p in payloads(5..9) {
        topic.publish(p).await.unwrap();
    }
    assert!(matches!(
        topic.publish(vec![9]).await,
        Err(TopicError::Full { capacity: 4 })
    ));
    for p in 5..9u8 {
        // Read (a batch, buffered by the reader), not acknowledged.
        assert_eq!(second.next(WAIT).await.unwrap().unwrap().payload, vec![p]);
    }
    topic.unsubscribe_durable("billing").await.unwrap();
    assert!(matches!(
        second.next(WAIT).await,
        Err(TopicError::NoSuchSubscription)
    ));
    assert_eq!(topic.publish(vec![9]).await.unwrap(), 10);
    // Refused publishes publish nothing.
    let (_, small) = one_topic("small", |c| c.payload_bytes_max = 2).await;
    assert!(matches!(
        small.publish(vec![0; 3]).await,
        Err(TopicError::TooLarge { bytes: 3, max: 2 })
    ));
    assert_eq!(small.head().await.unwrap(), 0);
}

struct Node {
    system: ActorSystem,
    dist: Distribution,
    topics: DurableTopics,
}

async fn node(name: &str, seeds: &[SocketAddr], journal_server: SocketAddr) -> Node {
    let (system, dist, journal) = support::node(env(name).await, seeds, journal_server).await;
    let topics = DurableTopics::register(&system, DurableTopicsConfig::new(journal)).unwrap();
    Node {
        system,
        dist,
        topics,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_on_every_node_read_every_message_and_a_durable_one_survives_the_host() {
    let server = support::journal_server(env("tstorage").await).await;
    let journal = server.local_addr();
    let a = node("ta", &[], journal).await;
    let b = node("tb", &[a.dist.local_addr()], journal).await;
    let c = node("tc", &[a.dist.local_addr()], journal).await;
    for n in [&a, &b, &c] {
        support::all_up(&n.dist, 3).await;
    }
    // Hosted off the seed, so killing its host leaves the others connected.
    let name = (0..)
        .map(|i| format!("prices-{i}"))
        .find(|name| a.topics.host_of(name).as_ref() != Some(a.system.node()))
        .unwrap();
    let topic = a.topics.topic(&name).unwrap();
    let mut readers = Vec::new();
    for n in [&a, &b, &c] {
        let mut subscriber = n.topics.topic(&name).unwrap().subscribe().await.unwrap();
        readers.push(n.system.env().spawn(async move {
            let mut got = Vec::new();
            while got.len() < 50 {
                match subscriber.next(WAIT).await.unwrap() {
                    Some(m) => got.push(m.payload[0]),
                    None => break,
                }
            }
            got
        }));
    }
    let mut durable = c
        .topics
        .topic(&name)
        .unwrap()
        .subscribe_durable("audit")
        .await
        .unwrap();
    for i in 0..50u8 {
        topic.publish(vec![i]).await.unwrap();
    }
    for reader in readers {
        assert_eq!(reader.await.unwrap(), (0..50).collect::<Vec<u8>>());
    }
    for _ in 0..20 {
        let m = durable.next(WAIT).await.unwrap().unwrap();
        durable.ack(&m).await.unwrap();
    }
    // The topic's host dies; the durable subscription, read again from
    // a surviving node, resumes after its 20th message.
    let host = a.topics.host_of(&name).unwrap();
    let (victim, survivor) = if &host == c.system.node() {
        (&c, &b)
    } else {
        (&b, &c)
    };
    drop(durable);
    victim.dist.shutdown();
    victim.system.shutdown().await;
    let mut resumed = survivor
        .topics
        .topic(&name)
        .unwrap()
        .subscribe_durable("audit")
        .await
        .unwrap();
    let mut rest = Vec::new();
    while let Some(m) = resumed.next(Duration::from_millis(500)).await.unwrap() {
        rest.push(m.payload[0]);
        resumed.ack(&m).await.unwrap();
    }
    assert_eq!(rest, (20..50).collect::<Vec<u8>>());
    server.shutdown();
}
