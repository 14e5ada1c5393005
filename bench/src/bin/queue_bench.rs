//! Channel queue throughput: producers `send_to_queue`, consumers
//! `receive_from_queue` and `ack` each message (at-least-once queue with
//! acknowledgement and redelivery), against a baseline in the same run: a
//! `VecDeque` behind a mutex with a tokio `Notify` and the same bound (no
//! acknowledgement, no redelivery). 64-byte messages, 2 tokio workers.
//!
//! ```text
//! cargo run --release -p plexspaces-bench --bin queue_bench [-- --quick]
//! ```

// A benchmark measures real time and spawns on tokio directly.
#![allow(clippy::disallowed_methods, missing_docs)]

use plexspaces::channels::{ChannelConfig, ChannelService};
use plexspaces::{Env, NodeName};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

const CAPACITY: usize = 1024;

/// The baseline: a bounded deque behind a mutex, with notifications.
struct Baseline {
    queue: Mutex<VecDeque<Vec<u8>>>,
    readable: Notify,
    writable: Notify,
}

impl Baseline {
    async fn send(&self, payload: Vec<u8>) {
        let mut payload = Some(payload);
        loop {
            let room = self.writable.notified();
            {
                let mut queue = self.queue.lock().unwrap();
                if queue.len() < CAPACITY {
                    queue.push_back(payload.take().unwrap());
                    drop(queue);
                    self.readable.notify_one();
                    return;
                }
            }
            room.await;
        }
    }

    async fn receive(&self) -> Vec<u8> {
        loop {
            let ready = self.readable.notified();
            if let Some(payload) = self.queue.lock().unwrap().pop_front() {
                self.writable.notify_one();
                return payload;
            }
            ready.await;
        }
    }
}

async fn plexspaces(producers: usize, consumers: usize, per_producer: usize) -> f64 {
    let dir = std::env::temp_dir().join(format!("plexspaces-queue-bench-{}", std::process::id()));
    let env = Env::tokio(NodeName::new("q").unwrap())
        .with_data_dir(dir)
        .await
        .unwrap();
    let mut config = ChannelConfig::default();
    config.queue_capacity = CAPACITY;
    let channels = Arc::new(ChannelService::new(env, config));
    let total = producers * per_producer;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..producers {
        let channels = channels.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_producer {
                channels.send_to_queue("q", vec![7; 64]).await;
            }
        }));
    }
    let received = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for _ in 0..consumers {
        let (channels, received) = (channels.clone(), received.clone());
        tasks.push(tokio::spawn(async move {
            while received.load(std::sync::atomic::Ordering::Relaxed) < total {
                let Some(delivery) = channels
                    .receive_from_queue("q", Some(Duration::from_millis(50)))
                    .await
                else {
                    continue;
                };
                channels.ack("q", delivery.id).unwrap();
                received.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    total as f64 / start.elapsed().as_secs_f64()
}

async fn baseline(producers: usize, consumers: usize, per_producer: usize) -> f64 {
    let queue = Arc::new(Baseline {
        queue: Mutex::new(VecDeque::new()),
        readable: Notify::new(),
        writable: Notify::new(),
    });
    let total = producers * per_producer;
    let per_consumer = total / consumers;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..producers {
        let queue = queue.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_producer {
                queue.send(vec![7; 64]).await;
            }
        }));
    }
    for _ in 0..consumers {
        let queue = queue.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_consumer {
                queue.receive().await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    total as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let per_producer = if quick { 20_000 } else { 200_000 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!("queue throughput, 64 B messages, bound {CAPACITY}, 2 tokio workers");
    for (producers, consumers) in [(1, 1), (2, 2), (8, 8)] {
        let per = per_producer / producers;
        let ours = rt.block_on(plexspaces(producers, consumers, per));
        let floor = rt.block_on(baseline(producers, consumers, per));
        println!(
            "{producers} producer(s) / {consumers} consumer(s): plexspaces (ack each) {:>8.0} k msgs/s, mutex+Notify deque {:>8.0} k msgs/s, ratio {:.2}x",
            ours / 1e3,
            floor / 1e3,
            ours / floor
        );
    }
}
