//! Queues and topics: load-balanced, acknowledged, redelivered; fan-out;
//! bounded with backpressure.

// Tests move paused tokio time and spawn consumers on tokio.
#![allow(clippy::disallowed_methods)]

use futures::StreamExt;
use plexspaces::actor::ActorSystem;
use plexspaces::channels::{ChannelConfig, ChannelError, ChannelService};
use plexspaces::{Env, NodeName};
use std::time::Duration;

async fn service(test: &str, config: ChannelConfig) -> ChannelService {
    let dir = std::env::temp_dir().join(format!("plexspaces-ch-{}-{test}", std::process::id()));
    ChannelService::new(
        Env::tokio(NodeName::new("n1").unwrap())
            .with_data_dir(dir)
            .await
            .unwrap(),
        config,
    )
}

#[tokio::test(start_paused = true)]
async fn a_queue_gives_each_message_to_one_receiver_and_redelivers_unacknowledged_ones() {
    let mut config = ChannelConfig::default();
    config.ack_timeout = Duration::from_secs(5);
    let channels = service("queue", config).await;
    for n in 0..4u8 {
        channels.send_to_queue("jobs", vec![n]).await;
    }
    let a = channels.receive_from_queue("jobs", None).await.unwrap();
    let b = channels.receive_from_queue("jobs", None).await.unwrap();
    assert_eq!(
        (a.payload.clone(), b.payload.clone()),
        (vec![0], vec![1]),
        "in order, one each"
    );
    channels.ack("jobs", a.id).unwrap();
    assert_eq!(
        channels.ack("jobs", a.id),
        Err(ChannelError::UnknownDelivery(a.id))
    );
    tokio::time::sleep(Duration::from_secs(6)).await;
    let again = channels.receive_from_queue("jobs", None).await.unwrap();
    assert_eq!(
        (again.payload, again.redeliveries),
        (vec![1], 1),
        "b was never acknowledged"
    );
    assert_eq!(channels.queue_len("jobs"), 2);
    let start = tokio::time::Instant::now();
    assert_eq!(
        channels
            .receive_from_queue("empty", Some(Duration::from_secs(2)))
            .await,
        None
    );
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(2),
        "gave up at the timeout"
    );
}

#[tokio::test(start_paused = true)]
async fn a_waiting_receiver_is_woken_by_a_send_and_a_full_queue_pushes_back() {
    let mut config = ChannelConfig::default();
    config.queue_capacity = 2;
    let channels = service("full", config).await;
    let receiver = {
        let channels = channels.clone();
        tokio::spawn(async move { channels.receive_from_queue("q", None).await.unwrap() })
    };
    tokio::task::yield_now().await;
    channels.send_to_queue("q", b"hello".to_vec()).await;
    let delivery = receiver.await.unwrap();
    assert_eq!(delivery.payload, b"hello");
    channels.try_send_to_queue("q", vec![1]).unwrap();
    assert_eq!(
        channels.try_send_to_queue("q", vec![2]),
        Err(ChannelError::QueueFull("q".into()))
    );
    let blocked = {
        let channels = channels.clone();
        tokio::spawn(async move { channels.send_to_queue("q", vec![2]).await })
    };
    tokio::task::yield_now().await;
    assert!(!blocked.is_finished(), "the sender waits for room");
    channels.ack("q", delivery.id).unwrap();
    blocked.await.unwrap();
    assert_eq!(channels.queue_len("q"), 2);
}

#[tokio::test]
async fn a_topic_reaches_every_subscriber_and_waits_for_a_full_one() {
    let mut config = ChannelConfig::default();
    config.subscriber_capacity = 1;
    let channels = service("topic", config).await;
    assert_eq!(
        channels.publish_to_topic("news", b"nobody".to_vec()).await,
        0
    );
    let mut first = channels.subscribe_to_topic("news");
    let mut second = channels.subscribe_to_topic("news");
    assert_eq!(channels.publish_to_topic("news", b"one".to_vec()).await, 2);
    assert_eq!(
        channels.try_publish_to_topic("news", b"two".to_vec()),
        Err(ChannelError::SubscriberFull("news".into()))
    );
    assert_eq!(first.next().await.unwrap(), b"one");
    let publisher = {
        let channels = channels.clone();
        tokio::spawn(async move { channels.publish_to_topic("news", b"two".to_vec()).await })
    };
    assert_eq!(second.next().await.unwrap(), b"one");
    assert_eq!(publisher.await.unwrap(), 2, "published once both had room");
    assert_eq!(first.next().await.unwrap(), b"two");
    drop(second);
    assert_eq!(
        channels.publish_to_topic("news", b"three".to_vec()).await,
        1,
        "dropping unsubscribes"
    );
    let dir = std::env::temp_dir().join(format!("plexspaces-ch-{}-sys", std::process::id()));
    let system = ActorSystem::new(
        Env::tokio(NodeName::new("n1").unwrap())
            .with_data_dir(dir)
            .await
            .unwrap(),
    );
    system.channels().send_to_queue("q", vec![7]).await;
    assert_eq!(
        system.channels().queue_len("q"),
        1,
        "each node has its channels"
    );
}
