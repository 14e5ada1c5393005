//! Timers and reminders.
//!
//! 1. 100,000 one-shot timers with delays spread over 10 ms – 1 s, set all
//!    at once by 100 actors (1,000 each): firing lateness (delivery time
//!    minus due time) p50 / p99 / max, and heap bytes per pending timer.
//!    PlexSpaces (`send_after`, on the node's timer service) against
//!    ractor's `send_after` (a tokio task per timer) and a plain tokio task
//!    sleeping per timer, in the same run.
//! 2. Reminder registration throughput on one node with the embedded file
//!    journal (every registration durable), one caller and 64 concurrent,
//!    against the floor of the same number of bare journal appends.
//!
//! ```text
//! cargo run --release -p plexspaces-bench --bin timer_bench [-- --quick]
//! ```

#![allow(unsafe_code, clippy::disallowed_methods, missing_docs)]

use plexspaces::actor::{Actor, ActorError, ActorSystem, Context, SpawnOptions};
use plexspaces::durability::{DurableActor, DurableContext, JournalBackend};
use plexspaces::reminders::{Recurrence, ReminderConfig, ReminderSpec, ReminderTarget, Reminders};
use plexspaces::storage::journal::{FileJournal, Journal, JournalConfig};
use plexspaces::virtual_actor::{VirtualActors, VirtualConfig};
use plexspaces::{Env, NodeName};
use std::time::{Duration, Instant, SystemTime};

#[path = "../counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::{Counting, count_from_now, heap};

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Delays spread over 10 ms – 1 s (a fixed sequence, the same for all).
fn delays(n: usize) -> Vec<Duration> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            Duration::from_micros(10_000 + x % 990_000)
        })
        .collect()
}

struct Lateness {
    p50: Duration,
    p99: Duration,
    max: Duration,
    bytes_per_timer: f64,
}

fn summarize(mut late: Vec<Duration>, bytes: i64, n: usize) -> Lateness {
    assert_eq!(late.len(), n, "every timer fired once");
    late.sort();
    Lateness {
        p50: late[n / 2],
        p99: late[n * 99 / 100],
        max: late[n - 1],
        bytes_per_timer: bytes as f64 / n as f64,
    }
}

// --- PlexSpaces ---

struct TimerSink {
    late: Vec<Duration>,
}

enum SinkMsg {
    Set(Vec<Duration>),
    Fire(Instant),
    /// Answers at once (a barrier: every earlier message was handled).
    Sync,
    Take,
}

impl Actor for TimerSink {
    type Msg = SinkMsg;
    type Reply = Vec<Duration>;
    async fn pre_start(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        ctx.set_max_timers(usize::MAX);
        Ok(())
    }
    async fn handle(
        &mut self,
        ctx: &mut Context<Self>,
        msg: SinkMsg,
    ) -> Result<Vec<Duration>, ActorError> {
        match msg {
            SinkMsg::Set(delays) => {
                for delay in delays {
                    let due = Instant::now() + delay;
                    ctx.send_after(delay, SinkMsg::Fire(due)).unwrap();
                }
            }
            SinkMsg::Fire(due) => self
                .late
                .push(Instant::now().saturating_duration_since(due)),
            SinkMsg::Sync => {}
            SinkMsg::Take => return Ok(std::mem::take(&mut self.late)),
        }
        Ok(Vec::new())
    }
}

/// Actors that set the timers, each a share of them.
const SETTERS: usize = 100;

async fn plexspaces_timers(n: usize) -> Lateness {
    let dir = std::env::temp_dir().join(format!("plexspaces-timer-bench-{}", std::process::id()));
    let system = ActorSystem::new(
        Env::tokio(NodeName::new("t").unwrap())
            .with_data_dir(dir)
            .await
            .unwrap(),
    );
    let sinks: Vec<_> = (0..SETTERS)
        .map(|i| {
            let options = SpawnOptions {
                mailbox_capacity: 4096,
                facets: Vec::new(),
            };
            let sink = TimerSink {
                late: Vec::with_capacity(n / SETTERS),
            };
            system
                .spawn_with(&format!("sink-{i}"), sink, options)
                .unwrap()
        })
        .collect();
    let delays = delays(n);
    let before = heap();
    for (sink, share) in sinks.iter().zip(delays.chunks(n / SETTERS)) {
        sink.tell(SinkMsg::Set(share.to_vec())).await.unwrap();
    }
    // Every Set handled (the asks queue behind them).
    let mut late = Vec::with_capacity(n);
    for sink in &sinks {
        sink.ask(SinkMsg::Sync, Duration::from_secs(30))
            .await
            .unwrap();
    }
    let bytes = heap() - before - (n * std::mem::size_of::<Duration>()) as i64;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for sink in &sinks {
        late.extend(
            sink.ask(SinkMsg::Take, Duration::from_secs(30))
                .await
                .unwrap(),
        );
    }
    system.shutdown().await;
    summarize(late, bytes, n)
}

// --- ractor ---

mod ractor_peer {
    use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
    use std::time::{Duration, Instant};

    pub struct Sink;

    pub enum Msg {
        Fire(Instant),
        Take(RpcReplyPort<Vec<Duration>>),
    }

    #[cfg(feature = "cluster-peers")]
    impl ractor::Message for Msg {}

    impl Actor for Sink {
        type Msg = Msg;
        type State = Vec<Duration>;
        type Arguments = usize;
        async fn pre_start(
            &self,
            _: ActorRef<Msg>,
            n: usize,
        ) -> Result<Vec<Duration>, ActorProcessingErr> {
            Ok(Vec::with_capacity(n))
        }
        async fn handle(
            &self,
            _: ActorRef<Msg>,
            msg: Msg,
            late: &mut Vec<Duration>,
        ) -> Result<(), ActorProcessingErr> {
            match msg {
                Msg::Fire(due) => late.push(Instant::now().saturating_duration_since(due)),
                Msg::Take(reply) => {
                    let _ = reply.send(std::mem::take(late));
                }
            }
            Ok(())
        }
    }
}

async fn ractor_timers(n: usize) -> Lateness {
    let mut sinks = Vec::new();
    for _ in 0..SETTERS {
        sinks.push(
            ractor::Actor::spawn(None, ractor_peer::Sink, n / SETTERS)
                .await
                .unwrap(),
        );
    }
    let delays = delays(n);
    let before = heap();
    let mut timers = Vec::with_capacity(n);
    for ((sink, _), share) in sinks.iter().zip(delays.chunks(n / SETTERS)) {
        for delay in share {
            let due = Instant::now() + *delay;
            timers.push(sink.send_after(*delay, move || ractor_peer::Msg::Fire(due)));
        }
    }
    let bytes = heap() - before - (n * std::mem::size_of_val(&timers[0])) as i64;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    drop(timers);
    let mut late = Vec::with_capacity(n);
    for (sink, handle) in sinks {
        late.extend(ractor::call_t!(sink, ractor_peer::Msg::Take, 30_000).unwrap());
        sink.stop(None);
        handle.await.unwrap();
    }
    summarize(late, bytes, n)
}

// --- a tokio task per timer ---

async fn tokio_timers(n: usize) -> Lateness {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let collector = tokio::spawn(async move {
        let mut late = Vec::with_capacity(n);
        while let Some(due) = rx.recv().await {
            late.push(Instant::now().saturating_duration_since(due));
            if late.len() == n {
                break;
            }
        }
        late
    });
    let delays = delays(n);
    let before = heap();
    let mut tasks = Vec::with_capacity(n);
    for delay in delays {
        let due = Instant::now() + delay;
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = tx.send(due);
        }));
    }
    let bytes = heap() - before - (n * std::mem::size_of_val(&tasks[0])) as i64;
    let late = collector.await.unwrap();
    summarize(late, bytes, n)
}

// --- reminders ---

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Noop;

impl DurableActor for Noop {
    type Msg = ();
    type Reply = ();
    async fn handle(&mut self, _: &mut DurableContext<'_>, _: ()) -> Result<(), ActorError> {
        Ok(())
    }
}

async fn registration(n: usize, concurrency: usize) -> (f64, f64) {
    let dir = std::env::temp_dir().join(format!(
        "plexspaces-reminder-bench-{}-{concurrency}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let env = Env::tokio(NodeName::new("r").unwrap())
        .with_data_dir(dir.join("node"))
        .await
        .unwrap();
    let system = ActorSystem::new(env.clone());
    let journal = JournalBackend::file(&env, JournalConfig::default())
        .await
        .unwrap();
    let actors =
        VirtualActors::register(&system, VirtualConfig::new("noop", journal.clone()), |_| {
            Noop
        })
        .unwrap();
    let reminders = Reminders::start(&system, ReminderConfig::new(journal))
        .await
        .unwrap();
    reminders.deliver_to(&actors, |_| ());
    let far = SystemTime::now() + Duration::from_secs(86_400);
    let start = Instant::now();
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let reminders = reminders.clone();
        workers.push(tokio::spawn(async move {
            for i in (w..n).step_by(concurrency) {
                let target = ReminderTarget::new("noop", format!("id-{i}"));
                let spec = ReminderSpec {
                    name: "daily".into(),
                    first_due: far,
                    recurrence: Recurrence::Every(Duration::from_secs(86_400)),
                };
                reminders
                    .register(&target, spec, Duration::from_secs(30))
                    .await
                    .unwrap();
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let ours = n as f64 / start.elapsed().as_secs_f64();
    system.shutdown().await;

    // The floor: the same number of durable appends of about the same size
    // (one registration journals one event of ~90 bytes), same concurrency.
    let disk = plexspaces::storage::disk::FsDisk::open_dir(dir.join("floor"))
        .await
        .unwrap();
    let floor = FileJournal::open(disk, JournalConfig::default(), 1)
        .await
        .unwrap();
    let entry = vec![7u8; 90];
    let start = Instant::now();
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let (floor, entry) = (floor.clone(), entry.clone());
        workers.push(tokio::spawn(async move {
            for i in (w..n).step_by(concurrency) {
                floor
                    .append(&format!("@reminders-{}", i % 16), &entry)
                    .await
                    .unwrap();
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let bare = n as f64 / start.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&dir);
    (ours, bare)
}

/// One way of running the timer measurement.
type TimerRun = fn(usize) -> std::pin::Pin<Box<dyn std::future::Future<Output = Lateness> + Send>>;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    // Memory per timer is counted in the same run as the lateness (as in
    // every run so far), so the lateness rows include the counter's cost
    // for every runtime alike.
    count_from_now();
    let quick = std::env::args().any(|a| a == "--quick");
    let n = if quick { 10_000 } else { 100_000 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!("{n} one-shot timers over 10 ms - 1 s (2 tokio workers)");
    println!(
        "{:<34} {:>9} {:>9} {:>9} {:>12}",
        "", "p50 late", "p99 late", "max late", "bytes/timer"
    );
    let runs: [(&str, TimerRun); 3] = [
        ("plexspaces send_after", |n| Box::pin(plexspaces_timers(n))),
        ("ractor send_after", |n| Box::pin(ractor_timers(n))),
        ("tokio task + sleep per timer", |n| {
            Box::pin(tokio_timers(n))
        }),
    ];
    for (name, run) in runs {
        let l = rt.block_on(async move { tokio::spawn(run(n)).await.unwrap() });
        println!(
            "{name:<34} {:>6.2} ms {:>6.2} ms {:>6.2} ms {:>12.0}",
            ms(l.p50),
            ms(l.p99),
            ms(l.max),
            l.bytes_per_timer
        );
    }
    let regs = if quick { 500 } else { 5_000 };
    println!("\nreminder registration, {regs} reminders, file journal (durable)");
    for concurrency in [1, 64] {
        let (ours, bare) = rt
            .block_on(async move { tokio::spawn(registration(regs, concurrency)).await.unwrap() });
        println!(
            "{concurrency:>3} caller(s): {ours:>9.0} registrations/s, bare journal appends {bare:>9.0}/s, ratio {:.2}x",
            ours / bare
        );
    }
}
