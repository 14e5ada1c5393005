//! The production seams do real work: tokio's clock sleeps and times out,
//! the spawner runs, aborts and reports panics, the OS gives randomness, and
//! an `Env` built on them reaches a real disk and a real network.

// These tests build runtimes and read the system clock to check the seams
// against them.
#![allow(clippy::disallowed_methods)]

use plexspaces::seams::{
    ByteReader, ByteWriter, Clock, Connection, Disk, DiskFile, Instant, JoinError, Listener, Net,
    Rng, Spawn,
};
use plexspaces::tokio_backend::{OsRng, TokioClock, TokioSpawner};
use plexspaces::{Env, NodeName};
use std::time::{Duration, SystemTime};

// Paused tokio time: sleeps complete by advancing the clock, not by waiting.
#[tokio::test(start_paused = true)]
async fn sleeping_advances_the_seams_clock_by_the_duration() {
    let clock = TokioClock::new();
    let start = clock.now();
    assert_eq!(start, Instant::ZERO + (start - Instant::ZERO));
    clock.sleep(Duration::from_secs(5)).await;
    let slept = clock.now() - start;
    assert!(slept >= Duration::from_secs(5), "{slept:?}");
    assert!(slept < Duration::from_secs(6), "{slept:?}");

    let deadline = clock.now() + Duration::from_millis(250);
    clock.sleep_until(deadline).await;
    assert!(clock.now() >= deadline);
    clock.sleep_until(Instant::ZERO).await; // a past deadline returns at once
}

#[tokio::test(start_paused = true)]
async fn timeout_returns_the_output_or_elapsed() {
    let clock = TokioClock::new();
    let quick = clock.timeout(Duration::from_secs(1), async { 7 }).await;
    assert_eq!(quick, Ok(7));
    let slow = clock
        .timeout(Duration::from_secs(1), clock.sleep(Duration::from_secs(10)))
        .await
        .unwrap_err();
    assert_eq!(slow.after, Duration::from_secs(1));
    assert!(
        clock.now() < Instant::from_duration(Duration::from_secs(2)),
        "gave up at the deadline"
    );
}

#[test]
fn wall_clock_is_the_system_time() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let clock = runtime.block_on(async { TokioClock::new() });
    let before = SystemTime::now();
    let read = clock.wall_clock();
    assert!(read >= before && read <= SystemTime::now());
}

#[tokio::test]
async fn spawned_tasks_return_output_panics_and_aborts() {
    let spawner = TokioSpawner::current();
    assert_eq!(spawner.spawn(async { 40 + 2 }).await, Ok(42));

    let panicked = spawner.spawn(async { panic!("boom") }).await;
    assert_eq!(panicked, Err::<(), _>(JoinError::Panicked("boom".into())));

    let (tx, rx) = futures::channel::oneshot::channel::<()>();
    let stuck = spawner.spawn(async move { rx.await.ok() });
    assert!(!stuck.is_finished());
    stuck.abort();
    assert_eq!(stuck.await, Err(JoinError::Aborted));
    assert!(tx.is_canceled(), "aborting drops the task's state");

    // A dropped handle detaches: the task still runs to completion.
    let (done_tx, done_rx) = futures::channel::oneshot::channel();
    drop(spawner.spawn(async move { done_tx.send(5).unwrap() }));
    assert_eq!(done_rx.await, Ok(5));

    let finished = spawner.spawn(async { 1 });
    while !finished.is_finished() {
        tokio::task::yield_now().await;
    }
    assert_eq!(finished.await, Ok(1));
}

#[test]
fn a_task_dropped_by_a_stopped_runtime_reports_dropped() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let spawner = TokioSpawner::from_handle(runtime.handle().clone());
    let never = spawner.spawn(futures::future::pending::<()>());
    drop(runtime);
    let other = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(other.block_on(never), Err(JoinError::Dropped));
}

#[test]
fn os_randomness_differs_between_generators_and_draws() {
    let (a, b) = (OsRng::new(), OsRng::new());
    let draws: std::collections::BTreeSet<u64> = (0..1000).map(|_| a.next_u64()).collect();
    assert_eq!(
        draws.len(),
        1000,
        "1000 draws of 64 random bits do not collide"
    );
    assert_ne!(a.next_u64(), b.next_u64());
    let mut bytes = [0u8; 64];
    b.fill_bytes(&mut bytes);
    assert!(bytes.iter().any(|&x| x != 0));
}

#[tokio::test]
async fn a_tokio_env_reaches_disk_network_clock_tasks_and_randomness() {
    let dir = std::env::temp_dir().join(format!("plexspaces-env-{}", std::process::id()));
    let env = Env::tokio(NodeName::new("n1").unwrap())
        .with_data_dir(&dir)
        .await
        .unwrap();
    assert_eq!(env.node().as_str(), "n1");
    assert!(format!("{env:?}").contains("n1"));

    let file = env.disk().create("greeting").await.unwrap();
    file.append(b"hi").await.unwrap();
    file.sync_data().await.unwrap();
    assert_eq!(
        env.disk()
            .open("greeting")
            .await
            .unwrap()
            .read_at(0, 2)
            .await
            .unwrap(),
        b"hi"
    );

    let mut listener = env
        .net()
        .listen("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr();
    let server = env.spawn(async move {
        let (conn, _) = listener.accept().await.unwrap();
        let (mut input, mut output) = conn.split();
        let mut buf = [0u8; 4];
        input.read_exact(&mut buf).await.unwrap();
        output.write_all(&buf).await.unwrap();
        output.flush().await.unwrap();
    });
    let (mut input, mut output) = env.net().connect(addr).await.unwrap().split();
    output.write_all(b"ping").await.unwrap();
    output.flush().await.unwrap();
    let mut buf = [0u8; 4];
    input.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
    server.await.unwrap();

    let before = env.now();
    let via_trait = Spawn::spawn(&env, {
        let env = env.clone();
        async move { env.sleep(Duration::from_millis(20)).await }
    });
    via_trait.await.unwrap();
    assert!(env.now() - before >= Duration::from_millis(20));
    assert!(env.wall_clock() > SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000));
    assert!(env.gen_range(0..10) < 10);
    std::fs::remove_dir_all(&dir).unwrap();
}
