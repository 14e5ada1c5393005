//! Actor benchmark: PlexSpaces against ractor, kameo, actix and a
//! hand-written tokio mpsc + oneshot floor, in one process.
//!
//! - B1: sequential ask round-trips to one actor;
//! - B2: tell throughput to 1, 100 and 10,000 actors (then one ask each, so
//!   every message is known to be handled);
//! - B3: spawning 100,000 and 1,000,000 idle actors: time, and heap bytes
//!   per actor (a counting allocator, switched on only in a second process
//!   that this one starts with `--count-heap`: every time in this
//!   benchmark is taken without counting);
//! - B4: restart latency: from a panic to the restarted child answering an
//!   ask (PlexSpaces' supervisor; the floor respawns a task and a channel).
//!
//! ```text
//! cargo run --release -p plexspaces-bench --bin actor_bench [-- --quick]
//! ```

// The benchmark measures real time, counts heap bytes with a global
// allocator (the one `unsafe` block: forwarding to the system allocator),
// and drives peers on their own executors.
#![allow(unsafe_code, clippy::disallowed_methods, missing_docs)]

use std::time::{Duration, Instant};

#[path = "../counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::{Counting, count_from_now, heap};

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `future` on a worker thread of `rt` (not on the thread calling
/// `block_on`, which would make every wake-up a cross-thread unpark).
fn on_worker<T: Send + 'static>(
    rt: &tokio::runtime::Runtime,
    future: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    rt.block_on(async { tokio::spawn(future).await.expect("the benchmark task") })
}

fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The common shape of every peer's counter actor.
mod plex {
    use plexspaces::actor::{Actor, ActorError, ActorRef, ActorSystem, Context, SpawnOptions};
    use plexspaces::{Env, NodeName};

    pub struct Counter(pub u64);

    pub enum Msg {
        Add(u64),
        Get,
        Crash,
    }

    impl Actor for Counter {
        type Msg = Msg;
        type Reply = u64;
        async fn handle(&mut self, _: &mut Context<Self>, msg: Msg) -> Result<u64, ActorError> {
            match msg {
                Msg::Add(n) => self.0 += n,
                Msg::Get => {}
                Msg::Crash => panic!("crash on purpose"),
            }
            Ok(self.0)
        }
    }

    pub async fn system() -> ActorSystem {
        let dir = std::env::temp_dir().join(format!("plexspaces-bench-{}", std::process::id()));
        ActorSystem::new(
            Env::tokio(NodeName::new("bench").unwrap())
                .with_data_dir(dir)
                .await
                .unwrap(),
        )
    }

    pub fn spawn(system: &ActorSystem, name: &str) -> ActorRef<Counter> {
        let options = SpawnOptions {
            mailbox_capacity: 1024,
            ..SpawnOptions::default()
        };
        system.spawn_with(name, Counter(0), options).unwrap()
    }
}

mod floor {
    use tokio::sync::{mpsc, oneshot};

    pub enum Msg {
        Add(u64),
        Get(oneshot::Sender<u64>),
    }

    pub fn spawn() -> mpsc::Sender<Msg> {
        let (tx, mut rx) = mpsc::channel::<Msg>(1024);
        tokio::spawn(async move {
            let mut count = 0u64;
            while let Some(msg) = rx.recv().await {
                match msg {
                    Msg::Add(n) => count += n,
                    Msg::Get(reply) => {
                        let _ = reply.send(count);
                    }
                }
            }
        });
        tx
    }

    pub async fn ask(tx: &mpsc::Sender<Msg>) -> u64 {
        let (reply, rx) = oneshot::channel();
        tx.send(Msg::Get(reply)).await.unwrap();
        rx.await.unwrap()
    }
}

mod ractor_peer {
    use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

    pub struct Counter;

    pub enum Msg {
        Add(u64),
        Get(RpcReplyPort<u64>),
    }

    // With ractor's `cluster` feature (turned on by `cluster-peers` for
    // remote_bench), messages implement `Message` themselves; local-only
    // ones keep its defaults.
    #[cfg(feature = "cluster-peers")]
    impl ractor::Message for Msg {}

    impl Actor for Counter {
        type Msg = Msg;
        type State = u64;
        type Arguments = ();
        async fn pre_start(&self, _: ActorRef<Msg>, _: ()) -> Result<u64, ActorProcessingErr> {
            Ok(0)
        }
        async fn handle(
            &self,
            _: ActorRef<Msg>,
            msg: Msg,
            count: &mut u64,
        ) -> Result<(), ActorProcessingErr> {
            match msg {
                Msg::Add(n) => *count += n,
                Msg::Get(reply) => {
                    let _ = reply.send(*count);
                }
            }
            Ok(())
        }
    }

    pub async fn spawn() -> ActorRef<Msg> {
        Actor::spawn(None, Counter, ()).await.unwrap().0
    }

    pub async fn ask(actor: &ActorRef<Msg>) -> u64 {
        match actor.call(Msg::Get, None).await.unwrap() {
            ractor::rpc::CallResult::Success(n) => n,
            _ => panic!("ractor call failed"),
        }
    }
}

mod kameo_peer {
    use kameo::prelude::*;

    #[derive(Actor)]
    pub struct Counter(pub u64);

    pub struct Add(pub u64);
    pub struct Get;

    impl Message<Add> for Counter {
        type Reply = ();
        async fn handle(&mut self, Add(n): Add, _: &mut Context<Self, ()>) {
            self.0 += n;
        }
    }

    impl Message<Get> for Counter {
        type Reply = u64;
        async fn handle(&mut self, _: Get, _: &mut Context<Self, u64>) -> u64 {
            self.0
        }
    }

    pub fn spawn() -> ActorRef<Counter> {
        Counter::spawn_with_mailbox(Counter(0), mailbox::bounded(1024))
    }
}

mod actix_peer {
    use actix::prelude::*;

    pub struct Counter(pub u64);

    impl Actor for Counter {
        type Context = Context<Self>;
    }

    #[derive(Message)]
    #[rtype(result = "()")]
    pub struct Add(pub u64);

    #[derive(Message)]
    #[rtype(result = "u64")]
    pub struct Get;

    impl Handler<Add> for Counter {
        type Result = ();
        fn handle(&mut self, Add(n): Add, _: &mut Context<Self>) {
            self.0 += n;
        }
    }

    impl Handler<Get> for Counter {
        type Result = u64;
        fn handle(&mut self, _: Get, _: &mut Context<Self>) -> u64 {
            self.0
        }
    }
}

struct Row {
    name: &'static str,
    value: f64,
}

fn print_rows(title: &str, unit: &str, rows: &[Row], lower_is_better: bool) {
    let floor = rows
        .iter()
        .find(|r| r.name == "tokio floor")
        .map(|r| r.value)
        .unwrap_or(1.0);
    let plex = rows
        .iter()
        .find(|r| r.name == "plexspaces")
        .map(|r| r.value)
        .unwrap_or(1.0);
    println!("\n{title}");
    println!("| runtime | {unit} | cost vs tokio floor | plexspaces advantage |");
    println!("|---|---:|---:|---:|");
    for row in rows {
        let (vs_floor, plex_vs) = if lower_is_better {
            (row.value / floor, row.value / plex)
        } else {
            (floor / row.value, row.value / plex)
        };
        let plex_vs = if lower_is_better {
            plex_vs
        } else {
            1.0 / plex_vs
        };
        println!(
            "| {} | {:.1} | {:.2}x | {:.2}x |",
            row.name, row.value, vs_floor, plex_vs
        );
    }
}

fn b1(asks: u64) -> Vec<Row> {
    let per = move |elapsed: Duration| elapsed.as_nanos() as f64 / asks as f64;
    let rt = tokio_runtime();
    let mut rows = Vec::new();
    rows.push(Row {
        name: "tokio floor",
        value: on_worker(&rt, async move {
            let tx = floor::spawn();
            let t = Instant::now();
            for _ in 0..asks {
                floor::ask(&tx).await;
            }
            per(t.elapsed())
        }),
    });
    rows.push(Row {
        name: "plexspaces",
        value: on_worker(&rt, async move {
            let system = plex::system().await;
            let actor = plex::spawn(&system, "b1");
            let t = Instant::now();
            for _ in 0..asks {
                actor
                    .ask(plex::Msg::Get, Duration::from_secs(5))
                    .await
                    .unwrap();
            }
            per(t.elapsed())
        }),
    });
    rows.push(Row {
        name: "ractor",
        value: on_worker(&rt, async move {
            let actor = ractor_peer::spawn().await;
            let t = Instant::now();
            for _ in 0..asks {
                ractor_peer::ask(&actor).await;
            }
            per(t.elapsed())
        }),
    });
    rows.push(Row {
        name: "kameo",
        value: on_worker(&rt, async move {
            let actor = kameo_peer::spawn();
            let t = Instant::now();
            for _ in 0..asks {
                actor.ask(kameo_peer::Get).await.unwrap();
            }
            per(t.elapsed())
        }),
    });
    drop(rt);
    rows.push(Row {
        name: "actix",
        value: actix_rt::System::new().block_on(async {
            use actix::Actor;
            let actor = actix_peer::Counter(0).start();
            let t = Instant::now();
            for _ in 0..asks {
                actor.send(actix_peer::Get).await.unwrap();
            }
            per(t.elapsed())
        }),
    });
    rows
}

/// B1 in `rounds` rounds of `asks` asks, every runtime once a round, so
/// they all see the same machine weather (a shared VM drifts by tens of
/// percent within a minute); each runtime's median round is its figure.
fn b1_rounds(rounds: usize, asks: u64) -> Vec<Row> {
    let mut samples: Vec<(&'static str, Vec<f64>)> = Vec::new();
    for _ in 0..rounds {
        for row in b1(asks) {
            match samples.iter_mut().find(|(name, _)| *name == row.name) {
                Some((_, values)) => values.push(row.value),
                None => samples.push((row.name, vec![row.value])),
            }
        }
    }
    samples
        .into_iter()
        .map(|(name, mut values)| {
            values.sort_by(f64::total_cmp);
            Row {
                name,
                value: values[values.len() / 2],
            }
        })
        .collect()
}

fn b2(total: u64, actors: usize) -> Vec<Row> {
    let rate = move |elapsed: Duration| total as f64 / elapsed.as_secs_f64();
    let per_actor = total / actors as u64;
    let rt = tokio_runtime();
    let mut rows = Vec::new();
    rows.push(Row {
        name: "tokio floor",
        value: on_worker(&rt, async move {
            let refs: Vec<_> = (0..actors).map(|_| floor::spawn()).collect();
            let t = Instant::now();
            for _ in 0..per_actor {
                for r in &refs {
                    r.send(floor::Msg::Add(1)).await.unwrap();
                }
            }
            for r in &refs {
                assert_eq!(floor::ask(r).await, per_actor);
            }
            rate(t.elapsed())
        }),
    });
    rows.push(Row {
        name: "plexspaces",
        value: on_worker(&rt, async move {
            let system = plex::system().await;
            let refs: Vec<_> = (0..actors)
                .map(|i| plex::spawn(&system, &format!("a{i}")))
                .collect();
            let t = Instant::now();
            for _ in 0..per_actor {
                for r in &refs {
                    r.tell(plex::Msg::Add(1)).await.unwrap();
                }
            }
            for r in &refs {
                assert_eq!(
                    r.ask(plex::Msg::Get, Duration::from_secs(30))
                        .await
                        .unwrap(),
                    per_actor
                );
            }
            let result = rate(t.elapsed());
            system.shutdown().await;
            result
        }),
    });
    rows.push(Row {
        name: "ractor",
        value: on_worker(&rt, async move {
            let mut refs = Vec::new();
            for _ in 0..actors {
                refs.push(ractor_peer::spawn().await);
            }
            let t = Instant::now();
            for _ in 0..per_actor {
                for r in &refs {
                    r.cast(ractor_peer::Msg::Add(1)).unwrap();
                }
            }
            for r in &refs {
                assert_eq!(ractor_peer::ask(r).await, per_actor);
            }
            let result = rate(t.elapsed());
            for r in refs {
                r.stop(None);
            }
            result
        }),
    });
    rows.push(Row {
        name: "kameo",
        value: on_worker(&rt, async move {
            let refs: Vec<_> = (0..actors).map(|_| kameo_peer::spawn()).collect();
            let t = Instant::now();
            for _ in 0..per_actor {
                for r in &refs {
                    r.tell(kameo_peer::Add(1)).await.unwrap();
                }
            }
            for r in &refs {
                assert_eq!(r.ask(kameo_peer::Get).await.unwrap(), per_actor);
            }
            rate(t.elapsed())
        }),
    });
    drop(rt);
    rows.push(Row {
        name: "actix",
        value: actix_rt::System::new().block_on(async {
            use actix::Actor;
            let refs: Vec<_> = (0..actors)
                .map(|_| actix_peer::Counter(0).start())
                .collect();
            let t = Instant::now();
            for _ in 0..per_actor {
                for r in &refs {
                    r.do_send(actix_peer::Add(1));
                }
            }
            for r in &refs {
                assert_eq!(r.send(actix_peer::Get).await.unwrap(), per_actor);
            }
            rate(t.elapsed())
        }),
    });
    rows
}

/// Spawns `count` idle actors; returns (µs per spawn, heap bytes per actor).
fn b3(count: usize) -> Vec<(Row, Row)> {
    let measure = |name: &'static str, run: &dyn Fn() -> (Duration, i64)| {
        let (elapsed, bytes) = run();
        (
            Row {
                name,
                value: elapsed.as_nanos() as f64 / count as f64 / 1000.0,
            },
            Row {
                name,
                value: bytes as f64 / count as f64,
            },
        )
    };
    let mut rows = Vec::new();
    rows.push(measure("tokio floor", &|| {
        on_worker(&tokio_runtime(), async move {
            let before = heap();
            let t = Instant::now();
            let refs: Vec<_> = (0..count).map(|_| floor::spawn()).collect();
            tokio::task::yield_now().await;
            (
                t.elapsed(),
                heap() - before - (refs.capacity() * std::mem::size_of_val(&refs[0])) as i64,
            )
        })
    }));
    rows.push(measure("plexspaces", &|| {
        on_worker(&tokio_runtime(), async move {
            let system = plex::system().await;
            let names: Vec<String> = (0..count).map(|i| format!("idle{i}")).collect();
            let before = heap();
            let t = Instant::now();
            let refs: Vec<_> = names.iter().map(|n| plex::spawn(&system, n)).collect();
            tokio::task::yield_now().await;
            (
                t.elapsed(),
                heap() - before - (refs.capacity() * std::mem::size_of_val(&refs[0])) as i64,
            )
        })
    }));
    rows.push(measure("ractor", &|| {
        on_worker(&tokio_runtime(), async move {
            let before = heap();
            let t = Instant::now();
            let mut refs = Vec::with_capacity(count);
            for _ in 0..count {
                refs.push(ractor_peer::spawn().await);
            }
            (
                t.elapsed(),
                heap() - before - (refs.capacity() * std::mem::size_of_val(&refs[0])) as i64,
            )
        })
    }));
    rows.push(measure("kameo", &|| {
        on_worker(&tokio_runtime(), async move {
            let before = heap();
            let t = Instant::now();
            let refs: Vec<_> = (0..count).map(|_| kameo_peer::spawn()).collect();
            tokio::task::yield_now().await;
            (
                t.elapsed(),
                heap() - before - (refs.capacity() * std::mem::size_of_val(&refs[0])) as i64,
            )
        })
    }));
    rows.push(measure("actix", &|| {
        actix_rt::System::new().block_on(async {
            use actix::Actor;
            let before = heap();
            let t = Instant::now();
            let refs: Vec<_> = (0..count).map(|_| actix_peer::Counter(0).start()).collect();
            tokio::task::yield_now().await;
            (
                t.elapsed(),
                heap() - before - (refs.capacity() * std::mem::size_of_val(&refs[0])) as i64,
            )
        })
    }));
    rows
}

/// Restart latency samples in µs: PlexSpaces supervisor, and the floor.
fn b4(restarts: usize) -> (Vec<f64>, Vec<f64>) {
    use plexspaces::supervision::{ChildSpec, Strategy, Supervisor, SupervisorSpec};
    let rt = tokio_runtime();
    let plex = on_worker(&rt, async move {
        let system = plex::system().await;
        let spec = SupervisorSpec::new(Strategy::OneForOne)
            .intensity(u32::MAX, Duration::from_secs(1))
            .child(ChildSpec::actor("child", || plex::Counter(0)));
        let sup = system.spawn("sup", Supervisor::new(spec)).unwrap();
        sup.stats(Duration::from_secs(5)).await.unwrap();
        let mut samples = Vec::with_capacity(restarts);
        for _ in 0..restarts {
            let child = loop {
                if let Some(c) = system.lookup::<plex::Counter>("child") {
                    break c;
                }
                tokio::task::yield_now().await;
            };
            let t = Instant::now();
            child.tell(plex::Msg::Crash).await.unwrap();
            loop {
                if let Some(next) = system.lookup::<plex::Counter>("child")
                    && next
                        .ask(plex::Msg::Get, Duration::from_secs(5))
                        .await
                        .is_ok()
                    && child.status() != plexspaces::actor::ActorStatus::Active
                {
                    break;
                }
                tokio::task::yield_now().await;
            }
            samples.push(t.elapsed().as_nanos() as f64 / 1000.0);
        }
        samples
    });
    let floor = on_worker(&rt, async move {
        let mut samples = Vec::with_capacity(restarts);
        let mut tx = floor::spawn();
        for _ in 0..restarts {
            let t = Instant::now();
            drop(tx); // the "crash": the task ends with its channel
            tx = floor::spawn();
            floor::ask(&tx).await;
            samples.push(t.elapsed().as_nanos() as f64 / 1000.0);
        }
        samples
    });
    (plex, floor)
}

fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[((samples.len() - 1) as f64 * p).round() as usize]
}

/// B3's heap rows, counted in a child process of this binary (so that no
/// time measured here pays for the counting).
fn b3_heap_in_child(quick: bool) {
    let exe = std::env::current_exe().expect("the benchmark's own path");
    let mut command = std::process::Command::new(exe);
    command.args(["--only", "b3", "--count-heap"]);
    if quick {
        command.arg("--quick");
    }
    let status = command.status().expect("the heap-counting run started");
    assert!(status.success(), "the heap-counting run failed: {status}");
}

fn main() {
    // Must come before anything else allocates (see `count_from_now`).
    let count_heap = std::env::args().any(|a| a == "--count-heap");
    if count_heap {
        count_from_now();
    }
    let quick = std::env::args().any(|a| a == "--quick");
    // `--only b3` (or b1, b2, b4) runs one benchmark.
    let only: Option<String> = std::env::args().skip_while(|a| a != "--only").nth(1);
    let runs = |b: &str| only.as_deref().is_none_or(|o| o == b);
    let scale: u64 = if quick { 10 } else { 1 };
    if !count_heap {
        println!(
            "actor benchmark (2 tokio worker threads; actix on its own single-threaded system)"
        );
    }

    if runs("b1") {
        print_rows(
            "B1: sequential ask round-trip (median of 7 rounds, runtimes alternated)",
            "ns/ask",
            &b1_rounds(7, 200_000 / scale),
            true,
        );
    }
    for actors in [1usize, 100, 10_000].into_iter().filter(|_| runs("b2")) {
        let title = format!("B2: tell throughput, 1,000,000 messages to {actors} actor(s)");
        print_rows(&title, "msgs/s", &b2(1_000_000 / scale, actors), false);
    }
    for count in [100_000usize, 1_000_000].into_iter().filter(|_| runs("b3")) {
        let count = count / scale as usize;
        let rows = b3(count);
        let (time, bytes): (Vec<Row>, Vec<Row>) = rows.into_iter().unzip();
        if count_heap {
            print_rows(
                &format!("B3: spawn {count} idle actors, heap (counted in a second process)"),
                "bytes/actor",
                &bytes,
                true,
            );
        } else {
            print_rows(
                &format!("B3: spawn {count} idle actors, time"),
                "µs/actor",
                &time,
                true,
            );
        }
    }
    if count_heap {
        return;
    }
    if runs("b3") {
        b3_heap_in_child(quick);
    }
    if !runs("b4") {
        return;
    }
    // The default panic hook formats (and, with RUST_BACKTRACE, captures a
    // backtrace for) every panic: that is logging, not restarting, so B4
    // runs with a silent hook.
    std::panic::set_hook(Box::new(|_| {}));
    let (mut plex, mut floor) = b4(2000 / scale as usize);
    println!("\nB4: restart latency, panic to the restarted child answering an ask");
    println!("| runtime | p50 µs | p99 µs |");
    println!("|---|---:|---:|");
    println!(
        "| plexspaces supervisor | {:.1} | {:.1} |",
        percentile(&mut plex, 0.5),
        percentile(&mut plex, 0.99)
    );
    println!(
        "| tokio floor (respawn task + channel) | {:.1} | {:.1} |",
        percentile(&mut floor, 0.5),
        percentile(&mut floor, 0.99)
    );
}
