//! Durable actors on tokio: journaling, side effects used once, exactly-once
//! requests, checkpoints, recovery of an interrupted message, divergence,
//! time travel, and the file journal across a restart.

use plexspaces::actor::{ActorError, ActorErrorKind, ActorSystem, AskError, ExitReason};
use plexspaces::durability::{
    DurabilityConfig, DurabilityError, Durable, DurableActor, DurableContext, JournalBackend,
    RecoveryReport, ReplayDiverged, state_at,
};
use plexspaces::seams::Clock;
use plexspaces::storage::journal::{Journal, JournalConfig};
use plexspaces::{Env, NodeName};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECOND: Duration = Duration::from_secs(1);

async fn system(test: &str) -> ActorSystem {
    let dir = std::env::temp_dir().join(format!("plexspaces-dur-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    ActorSystem::new(
        Env::tokio(NodeName::new("n1").unwrap())
            .with_data_dir(dir)
            .await
            .unwrap(),
    )
}

/// A bank account: deposits, and a fee looked up through a side effect.
#[derive(Default, Serialize, Deserialize)]
struct Account {
    balance: i64,
    ops: u32,
}

#[derive(Serialize, Deserialize)]
enum Op {
    Deposit(i64),
    /// Charges a fee whose amount comes from a side effect.
    ChargeFee,
    /// Runs the fee side effect, then panics: a crash mid-message.
    ChargeFeeThenCrash,
    Balance,
}

/// How many times each test's fee service really ran.
static FEE_LOOKUPS: [AtomicU32; 4] = [const { AtomicU32::new(0) }; 4];
/// Crash at most once per test.
static CRASHED: [AtomicU32; 4] = [const { AtomicU32::new(0) }; 4];

impl Account {
    async fn fee(ctx: &mut DurableContext<'_>, test: usize) -> Result<i64, ActorError> {
        ctx.run("fee-service", || async move {
            FEE_LOOKUPS[test].fetch_add(1, Ordering::SeqCst);
            7i64
        })
        .await
    }
}

/// Which slot of the statics a test uses, carried in the account's name.
fn slot(ctx: &DurableContext<'_>) -> usize {
    (ctx.id().name().as_bytes()[ctx.id().name().len() - 1].wrapping_sub(b'0') as usize).min(3)
}

impl DurableActor for Account {
    type Msg = Op;
    type Reply = i64;

    async fn handle(&mut self, ctx: &mut DurableContext<'_>, op: Op) -> Result<i64, ActorError> {
        let test = slot(ctx);
        match op {
            Op::Deposit(n) if n <= 0 => return Err(ActorError::new("deposits are positive")),
            Op::Deposit(n) => self.balance += n,
            Op::ChargeFee => self.balance -= Self::fee(ctx, test).await?,
            Op::ChargeFeeThenCrash => {
                self.balance -= Self::fee(ctx, test).await?;
                if CRASHED[test].fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("crash after the side effect");
                }
            }
            Op::Balance => {}
        }
        self.ops += 1;
        Ok(self.balance)
    }
}

fn reports() -> (Arc<Mutex<Vec<RecoveryReport>>>, DurabilityConfig) {
    let reports = Arc::new(Mutex::new(Vec::new()));
    let sink = reports.clone();
    let mut config = DurabilityConfig::default();
    config.on_recovered = Some(Arc::new(move |r: &RecoveryReport| {
        sink.lock().unwrap().push(r.clone())
    }));
    (reports, config)
}

#[tokio::test]
async fn requests_are_applied_exactly_once_and_survive_a_restart() {
    let system = system("once").await;
    let journal = JournalBackend::memory();
    let (reports, config) = reports();
    let spawn = || {
        system.spawn(
            "acct0",
            Durable::new(Account::default(), journal.clone(), config.clone()),
        )
    };
    let account = spawn().unwrap();
    assert_eq!(account.call("d1", Op::Deposit(100), SECOND).await, Ok(100));
    assert_eq!(account.call("d2", Op::Deposit(50), SECOND).await, Ok(150));
    assert_eq!(
        account.call("d1", Op::Deposit(100), SECOND).await,
        Ok(100),
        "a retry gets the original reply"
    );
    let refused = account.call("bad", Op::Deposit(-5), SECOND).await;
    assert_eq!(
        refused,
        Err(AskError::Failed(ActorError::new("deposits are positive")))
    );
    assert_eq!(
        account.call("bad", Op::Deposit(-5), SECOND).await,
        refused,
        "errors are remembered too"
    );
    account.stop();
    account.wait_exit().await;

    let account = spawn().unwrap();
    assert_eq!(
        account.call("b", Op::Balance, SECOND).await,
        Ok(150),
        "rebuilt from the journal"
    );
    assert_eq!(
        account.call("d2", Op::Deposit(50), SECOND).await,
        Ok(150),
        "still deduplicated"
    );
    let report = reports.lock().unwrap()[1].clone();
    assert_eq!((report.checkpoint_seq, report.replayed_messages), (None, 3));
}

#[tokio::test]
async fn side_effects_run_once_and_replay_from_the_journal() {
    let system = system("effects").await;
    let journal = JournalBackend::memory();
    let spawn = || {
        system.spawn(
            "acct1",
            Durable::new(
                Account::default(),
                journal.clone(),
                DurabilityConfig::default(),
            ),
        )
    };
    let account = spawn().unwrap();
    account.call("d", Op::Deposit(100), SECOND).await.unwrap();
    assert_eq!(account.call("f", Op::ChargeFee, SECOND).await, Ok(93));
    assert_eq!(FEE_LOOKUPS[1].load(Ordering::SeqCst), 1);
    account.stop();
    account.wait_exit().await;
    let account = spawn().unwrap();
    assert_eq!(account.call("b", Op::Balance, SECOND).await, Ok(93));
    assert_eq!(
        FEE_LOOKUPS[1].load(Ordering::SeqCst),
        1,
        "replay used the journaled fee"
    );
}

#[tokio::test]
async fn a_message_cut_by_a_crash_is_finished_on_recovery() {
    let system = system("inflight").await;
    let journal = JournalBackend::memory();
    let (reports, config) = reports();
    let spawn = || {
        system.spawn(
            "acct2",
            Durable::new(Account::default(), journal.clone(), config.clone()),
        )
    };
    let account = spawn().unwrap();
    account.call("d", Op::Deposit(100), SECOND).await.unwrap();
    let cut = account.call("x", Op::ChargeFeeThenCrash, SECOND).await;
    assert!(
        matches!(cut, Err(AskError::Stopped(_))),
        "the caller got no reply: {cut:?}"
    );
    assert!(matches!(account.wait_exit().await, ExitReason::Panic(_)));
    assert_eq!(FEE_LOOKUPS[2].load(Ordering::SeqCst), 1);

    let account = spawn().unwrap();
    // The retry finds the message finished by recovery, with the fee the
    // side effect returned before the crash, and runs nothing again.
    assert_eq!(
        account.call("x", Op::ChargeFeeThenCrash, SECOND).await,
        Ok(93)
    );
    assert_eq!(FEE_LOOKUPS[2].load(Ordering::SeqCst), 1);
    let report = reports.lock().unwrap()[1].clone();
    assert!(report.finished_in_flight);
}

#[tokio::test]
async fn checkpoints_shorten_recovery_and_time_travel_rebuilds_any_point() {
    let system = system("ckpt").await;
    let journal = JournalBackend::memory();
    let (reports, mut config) = reports();
    config.checkpoint_interval = 5;
    let spawn = || {
        system.spawn(
            "acct3",
            Durable::new(Account::default(), journal.clone(), config.clone()),
        )
    };
    let account = spawn().unwrap();
    for i in 1..=12 {
        account
            .call(format!("d{i}"), Op::Deposit(i), SECOND)
            .await
            .unwrap();
    }
    account.stop();
    account.wait_exit().await;
    let account = spawn().unwrap();
    assert_eq!(account.call("b", Op::Balance, SECOND).await, Ok(78));
    let report = reports.lock().unwrap()[1].clone();
    assert_eq!(
        report.checkpoint_seq,
        Some(20),
        "10 messages of 2 entries each"
    );
    assert_eq!(
        report.replayed_messages, 2,
        "only the messages after the checkpoint"
    );
    assert_eq!(
        account.call("d3", Op::Deposit(3), SECOND).await,
        Ok(6),
        "dedupe survives checkpoints"
    );
    // The count toward the next checkpoint carries over recovery: the 2
    // replayed messages, "b" and two more deposits make 5.
    for i in 13..=14 {
        account
            .call(format!("d{i}"), Op::Deposit(i), SECOND)
            .await
            .unwrap();
    }
    account.stop();
    account.wait_exit().await;
    let account = spawn().unwrap();
    assert_eq!(account.call("b2", Op::Balance, SECOND).await, Ok(105));
    let report = reports.lock().unwrap()[2].clone();
    assert_eq!(
        (report.checkpoint_seq, report.replayed_messages),
        (Some(30), 0),
        "checkpointed after the fifth message since the last checkpoint"
    );

    // The memory journal compacts at once, so time travel needs a journal
    // that keeps history: a file journal with big segments.
    let env = system.env().clone();
    let history = JournalBackend::file(&env, JournalConfig::default())
        .await
        .unwrap();
    let traveller = system
        .spawn(
            "acct3-history",
            Durable::new(
                Account::default(),
                history.clone(),
                DurabilityConfig::default(),
            ),
        )
        .unwrap();
    for i in 1..=4 {
        traveller
            .call(format!("d{i}"), Op::Deposit(i), SECOND)
            .await
            .unwrap();
    }
    let id = traveller.id().clone();
    let at = |seq| state_at::<Account>(&env, &history, &id, seq, Account::default());
    assert_eq!(at(2).await.unwrap().balance, 1, "after the first message");
    assert_eq!(
        at(5).await.unwrap().balance,
        3,
        "a half-written message does not count"
    );
    assert_eq!(at(8).await.unwrap().balance, 10);
}

/// Reads the fee from a side effect only on its first run: not deterministic.
#[derive(Default, Serialize, Deserialize)]
struct Fickle {
    runs: u32,
}

static FICKLE_RUNS: AtomicU32 = AtomicU32::new(0);

impl DurableActor for Fickle {
    type Msg = ();
    type Reply = ();
    async fn handle(&mut self, ctx: &mut DurableContext<'_>, _: ()) -> Result<(), ActorError> {
        if FICKLE_RUNS.fetch_add(1, Ordering::SeqCst) == 0 {
            ctx.run("lookup", || async { 1u8 }).await?;
        } else {
            ctx.run("another-lookup", || async { 2u8 }).await?;
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_handler_that_diverges_on_replay_fails_recovery_loudly() {
    let system = system("diverge").await;
    let journal = JournalBackend::memory();
    let spawn = || {
        system.spawn(
            "fickle",
            Durable::new(
                Fickle::default(),
                journal.clone(),
                DurabilityConfig::default(),
            ),
        )
    };
    let fickle = spawn().unwrap();
    fickle.call("k", (), SECOND).await.unwrap();
    fickle.stop();
    fickle.wait_exit().await;
    let fickle = spawn().unwrap();
    match fickle.wait_exit().await {
        ExitReason::Error(why) => assert!(
            why.contains("replay diverged") && why.contains("another-lookup"),
            "{why}"
        ),
        other => panic!("expected a failed recovery, got {other}"),
    }
    // Time travel over the same stream says so with a typed error a
    // caller can match on: where the handler left the journal, and why.
    let id = fickle.id().clone();
    let env = system.env().clone();
    match state_at::<Fickle>(&env, &journal, &id, 3, Fickle::default()).await {
        Err(DurabilityError::Diverged(ReplayDiverged { seq, detail })) => {
            assert_eq!(seq, 2, "the recorded side effect is entry 2");
            assert!(detail.contains("another-lookup"), "{detail}");
        }
        Err(other) => panic!("expected a divergence, got {other:?}"),
        Ok(_) => panic!("expected a divergence, got a state"),
    }
    let diverged = state_at::<Fickle>(&env, &journal, &id, 3, Fickle::default())
        .await
        .err()
        .unwrap();
    let source = std::error::Error::source(&diverged).expect("the divergence is its source");
    assert!(
        source
            .to_string()
            .starts_with("replay diverged at journal entry 2")
    );
}

#[tokio::test]
async fn the_file_journal_carries_state_across_a_node_restart() {
    let dir = std::env::temp_dir().join(format!("plexspaces-dur-{}-file", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for (round, expected) in [(1, 100), (2, 200)] {
        let env = Env::tokio(NodeName::new("n1").unwrap())
            .with_data_dir(&dir)
            .await
            .unwrap();
        let system = ActorSystem::new(env.clone());
        let journal = JournalBackend::file(&env, JournalConfig::default())
            .await
            .unwrap();
        let account = system
            .spawn(
                "acct-file",
                Durable::new(Account::default(), journal, DurabilityConfig::default()),
            )
            .unwrap();
        let balance = account
            .call(format!("deposit-{round}"), Op::Deposit(100), SECOND)
            .await;
        assert_eq!(balance, Ok(expected));
        system.shutdown().await;
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A counter whose reads are answered from memory.
#[derive(Default, Serialize, Deserialize)]
struct Tally(u64);

#[derive(Clone, Serialize, Deserialize)]
enum TallyOp {
    Add(u64),
    Get,
}

impl DurableActor for Tally {
    type Msg = TallyOp;
    type Reply = u64;
    async fn handle(&mut self, _: &mut DurableContext<'_>, op: TallyOp) -> Result<u64, ActorError> {
        if let TallyOp::Add(n) = op {
            self.0 += n;
        }
        Ok(self.0)
    }
    fn query(&self, _: &Env, op: &TallyOp) -> Option<u64> {
        matches!(op, TallyOp::Get).then_some(self.0)
    }
}

#[tokio::test]
async fn a_retried_key_is_journaled_even_when_memory_could_answer() {
    let system = system("retry").await;
    let journal = JournalBackend::memory();
    let tally = system
        .spawn(
            "tally",
            Durable::new(
                Tally::default(),
                journal.clone(),
                DurabilityConfig::default(),
            ),
        )
        .unwrap();
    // A first request that changes nothing is answered from memory: no
    // journal write, and its key is not kept.
    assert_eq!(tally.call("read-1", TallyOp::Get, SECOND).await, Ok(0));
    assert_eq!(journal.last_seq("tally@n1"), 0);
    // A retried one is handled and journaled under its key...
    assert_eq!(
        tally.call_again("read-2", TallyOp::Get, SECOND).await,
        Ok(0)
    );
    assert!(journal.last_seq("tally@n1") > 0);
    assert_eq!(tally.call("add", TallyOp::Add(5), SECOND).await, Ok(5));
    // ...so an earlier attempt of that key arriving late gets the same
    // answer, not a new one.
    assert_eq!(tally.call("read-2", TallyOp::Get, SECOND).await, Ok(0));
    assert_eq!(tally.call("read-3", TallyOp::Get, SECOND).await, Ok(5));
    system.shutdown().await;
}

/// The query path: reads need no key and write nothing; a command sent as
/// a query is refused with a typed error and not applied.
#[tokio::test]
async fn queries_are_answered_without_a_key_or_a_journal_write() {
    let system = system("query").await;
    let journal = JournalBackend::memory();
    let tally = system
        .spawn(
            "tally",
            Durable::new(
                Tally::default(),
                journal.clone(),
                DurabilityConfig::default(),
            ),
        )
        .unwrap();
    assert_eq!(tally.call("add-1", TallyOp::Add(3), SECOND).await, Ok(3));
    let written = journal.last_seq("tally@n1");
    assert!(written > 0);
    for _ in 0..3 {
        assert_eq!(tally.query(TallyOp::Get, SECOND).await, Ok(3));
    }
    assert_eq!(journal.last_seq("tally@n1"), written, "a query wrote");
    let refused = tally.query(TallyOp::Add(100), SECOND).await.unwrap_err();
    let AskError::Failed(refused) = refused else {
        panic!("expected a failed ask, got {refused:?}");
    };
    assert_eq!(refused.kind(), ActorErrorKind::NotAQuery);
    assert_eq!(
        journal.last_seq("tally@n1"),
        written,
        "a refused query wrote"
    );
    assert_eq!(tally.query(TallyOp::Get, SECOND).await, Ok(3), "applied");
    // Queries see every command before them, and survive a restart's replay.
    assert_eq!(tally.call("add-2", TallyOp::Add(4), SECOND).await, Ok(7));
    assert_eq!(tally.query(TallyOp::Get, SECOND).await, Ok(7));
    tally.stop();
    tally.wait_exit().await;
    let tally = system
        .spawn(
            "tally",
            Durable::new(
                Tally::default(),
                journal.clone(),
                DurabilityConfig::default(),
            ),
        )
        .unwrap();
    assert_eq!(tally.query(TallyOp::Get, SECOND).await, Ok(7));
    system.shutdown().await;
}

/// Keys are remembered for the newest `dedupe_window` requests (the table
/// is bounded): those are still deduplicated, older ones are forgotten and
/// handled again as new. A restart rebuilds the same window from the
/// journal.
#[tokio::test]
async fn the_dedupe_window_keeps_the_newest_keys_and_forgets_older_ones() {
    let system = system("window").await;
    let journal = JournalBackend::memory();
    let mut config = DurabilityConfig::default();
    config.dedupe_window = 3;
    let spawn = || {
        system.spawn(
            "window",
            Durable::new(Tally::default(), journal.clone(), config.clone()),
        )
    };
    let tally = spawn().unwrap();
    for (i, key) in ["k1", "k2", "k3", "k4", "k5"].into_iter().enumerate() {
        assert_eq!(
            tally.call(key, TallyOp::Add(1), SECOND).await,
            Ok(i as u64 + 1)
        );
    }
    // The window holds k3, k4, k5.
    assert_eq!(tally.call("k5", TallyOp::Add(1), SECOND).await, Ok(5));
    assert_eq!(tally.call("k3", TallyOp::Add(1), SECOND).await, Ok(3));
    assert_eq!(
        tally.call("k2", TallyOp::Add(1), SECOND).await,
        Ok(6),
        "a key older than the window is handled again"
    );
    // Now k4, k5, k2.
    assert_eq!(tally.call("k3", TallyOp::Add(1), SECOND).await, Ok(7));
    // Now k5, k2, k3; the same after a restart.
    tally.stop();
    tally.wait_exit().await;
    let tally = spawn().unwrap();
    assert_eq!(tally.call("k5", TallyOp::Add(1), SECOND).await, Ok(5));
    assert_eq!(tally.call("k2", TallyOp::Add(1), SECOND).await, Ok(6));
    assert_eq!(tally.call("k3", TallyOp::Add(1), SECOND).await, Ok(7));
    assert_eq!(tally.call("k4", TallyOp::Add(1), SECOND).await, Ok(8));
    system.shutdown().await;
}

/// Draws a random number and reads the clock through the context (both
/// journaled); replies with every draw so far.
#[derive(Default, Serialize, Deserialize)]
struct Draws(Vec<(u64, u128)>);

impl DurableActor for Draws {
    type Msg = ();
    type Reply = Vec<(u64, u128)>;
    async fn handle(
        &mut self,
        ctx: &mut DurableContext<'_>,
        _: (),
    ) -> Result<Vec<(u64, u128)>, ActorError> {
        let n = ctx.random_u64().await?;
        let at = ctx.now().await?;
        let nanos = at
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| ActorError::new(e.to_string()))?
            .as_nanos();
        self.0.push((n, nanos));
        Ok(self.0.clone())
    }
}

/// `random_u64` and `now` come from the node's seams the first time and
/// from the journal on replay: random numbers differ from call to call,
/// the time is the node's wall clock, and a restarted actor rebuilds the
/// very same values.
#[tokio::test]
async fn random_numbers_and_time_are_drawn_once_and_replayed() {
    let system = system("draws").await;
    let journal = JournalBackend::memory();
    let (reports, config) = reports();
    let spawn = || {
        system.spawn(
            "draws",
            Durable::new(Draws::default(), journal.clone(), config.clone()),
        )
    };
    let wall = || {
        system
            .env()
            .wall_clock()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    };
    let before = wall();
    let draws = spawn().unwrap();
    let mut live = Vec::new();
    for i in 1..=3 {
        live = draws.call(format!("k{i}"), (), SECOND).await.unwrap();
    }
    let after = wall();
    draws.stop();
    draws.wait_exit().await;
    let draws = spawn().unwrap();
    let replayed = draws.call("k4", (), SECOND).await.unwrap();
    assert_eq!(reports.lock().unwrap()[1].replayed_messages, 3);
    assert_eq!(replayed[..3], live[..], "replay rebuilt the same draws");
    let numbers: std::collections::BTreeSet<u64> = replayed.iter().map(|(n, _)| *n).collect();
    assert_eq!(numbers.len(), 4, "four draws, four numbers: {replayed:?}");
    for (_, at) in &live {
        assert!(
            (before..=after).contains(at),
            "{at} is the node's wall clock"
        );
    }
}
