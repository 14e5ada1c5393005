//! The tour: PlexSpaces' main job in one run, on the embedded default (the
//! file journal in `./data/tour`).
//!
//! Accounts are virtual durable actors: addressed by id, activated on their
//! first message, every change journaled and synced before it is answered.
//! A transfer is a durable workflow: withdraw, then deposit, each step
//! recorded once and calling the accounts under the step's idempotency key.
//!
//! Half-way through a transfer the node crashes: the process drops its whole
//! runtime (every task stops where it stands, nothing is flushed or said
//! goodbye to) right after the deposit was applied and before the workflow
//! recorded its deposit step. A new node then starts on the same directory,
//! as a restarted process would. The accounts rebuild their balances from
//! the journal, the workflow resumes where its journal ends and runs the
//! deposit step again under the same key, and the account recognises the
//! key: the money arrives once.
//!
//! ```text
//! cargo run --example tour
//! ```

use plexspaces::durability::RecoveryReport;
use plexspaces::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

const DATA_DIR: &str = "data/tour";
const CALL: Duration = Duration::from_secs(5);

/// How often each step's code ran, over both lives.
static WITHDRAW_RUNS: AtomicU32 = AtomicU32::new(0);
static DEPOSIT_RUNS: AtomicU32 = AtomicU32::new(0);

/// A bank account, one per id.
#[derive(Default, Serialize, Deserialize)]
struct Account {
    balance: i64,
}

#[derive(Clone, Serialize, Deserialize)]
enum AccountOp {
    Deposit(i64),
    Withdraw(i64),
    Balance,
}

impl DurableActor for Account {
    type Msg = AccountOp;
    type Reply = i64;

    async fn handle(
        &mut self,
        _: &mut DurableContext<'_>,
        op: AccountOp,
    ) -> Result<i64, ActorError> {
        match op {
            AccountOp::Deposit(amount) => self.balance += amount,
            AccountOp::Withdraw(amount) if amount > self.balance => {
                return Err(ActorError::new(format!(
                    "insufficient funds: {} < {amount}",
                    self.balance
                )));
            }
            AccountOp::Withdraw(amount) => self.balance -= amount,
            AccountOp::Balance => {}
        }
        Ok(self.balance)
    }

    /// Reads are queries: answered from memory, no key, no journal write.
    fn query(&self, _: &Env, op: &AccountOp) -> Option<i64> {
        matches!(op, AccountOp::Balance).then_some(self.balance)
    }
}

#[derive(Clone, Serialize, Deserialize)]
struct Transfer {
    from: String,
    to: String,
    amount: i64,
}

/// Where the first node crashes: told once the deposit is applied.
type CrashPoint = Arc<Mutex<Option<oneshot::Sender<()>>>>;

struct Transfers {
    accounts: VirtualActors<Account>,
    crash_after_deposit: Option<CrashPoint>,
}

/// An account's answer as a step's outcome: a refusal is final, anything
/// else (a timeout, an activation moving) is worth another attempt.
fn step_result(answer: Result<i64, AskError>) -> Result<i64, StepError> {
    match answer {
        Ok(balance) => Ok(balance),
        Err(AskError::Failed(e)) if !e.is_unavailable() => Err(StepError::terminal(e.message())),
        Err(e) => Err(StepError::retryable(e.to_string())),
    }
}

impl Workflow for Transfers {
    type Input = Transfer;
    type Output = String;

    async fn run(&self, ctx: WorkflowContext, t: Transfer) -> Result<String, WorkflowError> {
        let account = |id: &str| {
            self.accounts
                .get(id)
                .map_err(|e| WorkflowError::failed(e.to_string()))
        };
        let (from, to) = (account(&t.from)?, account(&t.to)?);
        let retry = RetryPolicy::attempts(5);
        ctx.step_with("withdraw", &retry, |key| {
            let from = from.clone();
            WITHDRAW_RUNS.fetch_add(1, Ordering::SeqCst);
            async move { step_result(from.call(key, AccountOp::Withdraw(t.amount), CALL).await) }
        })
        .await?;
        let crash = self.crash_after_deposit.clone();
        ctx.step_with("deposit", &retry, |key| {
            let (to, crash) = (to.clone(), crash.clone());
            DEPOSIT_RUNS.fetch_add(1, Ordering::SeqCst);
            async move {
                let balance = step_result(to.call(key, AccountOp::Deposit(t.amount), CALL).await)?;
                if let Some(tell) = crash.and_then(|point| point.lock().ok()?.take()) {
                    let _ = tell.send(());
                    // The node dies here: this step's outcome is never
                    // recorded.
                    std::future::pending::<()>().await;
                }
                Ok(balance)
            }
        })
        .await?;
        Ok(format!("moved {} from {} to {}", t.amount, t.from, t.to))
    }
}

/// One life of the node: its environment on the data directory, the
/// accounts and the transfers.
struct Node {
    system: ActorSystem,
    accounts: VirtualActors<Account>,
    transfers: Workflows<Transfers>,
}

async fn start_node(
    crash_after_deposit: Option<CrashPoint>,
) -> Result<Node, Box<dyn std::error::Error>> {
    let env = Env::tokio(NodeName::new("node1")?)
        .with_data_dir(DATA_DIR)
        .await?;
    let system = ActorSystem::new(env.clone());
    let journal = JournalBackend::file(&env, JournalConfig::default()).await?;
    let mut hosting = VirtualConfig::new("account", journal.clone());
    hosting.durability.on_recovered = Some(Arc::new(|report: &RecoveryReport| {
        if report.replayed_messages > 0 {
            println!(
                "   ({} recovered: {} journaled message(s) replayed)",
                report.actor, report.replayed_messages
            );
        }
    }));
    let accounts = VirtualActors::register(&system, hosting, |_id| Account::default())?;
    let mut config = WorkflowConfig::new("transfer", journal);
    // A run's driver holds a lease; after a crash the next node waits for
    // it to run out. Short here, so the tour does not wait long.
    config.lease = Duration::from_millis(500);
    config.resume_every = Duration::from_millis(100);
    let transfers = Workflows::register(
        &system,
        config,
        Transfers {
            accounts: accounts.clone(),
            crash_after_deposit,
        },
    )?;
    Ok(Node {
        system,
        accounts,
        transfers,
    })
}

async fn balance(node: &Node, id: &str) -> Result<i64, Box<dyn std::error::Error>> {
    Ok(node
        .accounts
        .get(id)?
        .query(AccountOp::Balance, CALL)
        .await?)
}

/// The first life: open two accounts, start a transfer, crash in its middle.
async fn first_life(
    crash: CrashPoint,
    crashed: oneshot::Receiver<()>,
) -> Result<(), Box<dyn std::error::Error>> {
    let node = start_node(Some(crash)).await?;
    let alice = node.accounts.get("alice")?;
    let bob = node.accounts.get("bob")?;
    alice
        .call("open-alice", AccountOp::Deposit(100), CALL)
        .await?;
    bob.call("open-bob", AccountOp::Deposit(50), CALL).await?;
    println!("1. Opened alice with 100 and bob with 50.");
    println!("   Each account is a virtual actor: activated by its first message,");
    println!("   each deposit journaled and synced to disk before it was answered.");

    let transfer = Transfer {
        from: "alice".into(),
        to: "bob".into(),
        amount: 30,
    };
    let run = RunId::new("bank", "t-1")?;
    node.transfers.start(&run, &transfer).await?;
    println!("2. Started workflow bank/t-1: move 30 from alice to bob (withdraw, then deposit).");
    crashed.await?;
    println!(
        "3. CRASH. Bob's deposit was applied and journaled (bob: {}), but the node died",
        balance(&node, "bob").await?
    );
    println!("   before the workflow recorded its deposit step. Every task is dropped mid-flight.");
    Ok(())
}

/// The second life: a new node on the same directory finishes the transfer.
async fn second_life() -> Result<(i64, i64), Box<dyn std::error::Error>> {
    let node = start_node(None).await?;
    println!("4. A new node starts on the same directory, as a restarted process would.");
    let run = RunId::new("bank", "t-1")?;
    let outcome = node.transfers.result(&run, Duration::from_secs(30)).await?;
    println!("5. The workflow resumed where its journal ends and finished: {outcome}.");
    println!(
        "   Its withdraw step was recorded, so it was not run again (ran {} time in all);",
        WITHDRAW_RUNS.load(Ordering::SeqCst)
    );
    println!(
        "   its deposit step was not, so it ran again (ran {} times) under the same",
        DEPOSIT_RUNS.load(Ordering::SeqCst)
    );
    println!("   idempotency key, and bob's account, which had journaled that key with its");
    println!("   reply, answered it without applying it again.");
    let (alice, bob) = (balance(&node, "alice").await?, balance(&node, "bob").await?);
    println!("6. alice: {alice}, bob: {bob}. Both rebuilt from their journals on activation;");
    println!(
        "   the total is still {}: nothing acknowledged was lost, nothing applied twice.",
        alice + bob
    );
    node.system.shutdown().await;
    Ok((alice, bob))
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A fresh directory, so every run of the tour tells the same story.
    match std::fs::remove_dir_all(DATA_DIR) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    let (tell, crashed) = oneshot::channel();
    let first = runtime()?;
    first.block_on(first_life(Arc::new(Mutex::new(Some(tell))), crashed))?;
    // The crash: the runtime goes with every task on it, wherever each was.
    first.shutdown_background();

    let (alice, bob) = runtime()?.block_on(second_life())?;
    let runs = (
        WITHDRAW_RUNS.load(Ordering::SeqCst),
        DEPOSIT_RUNS.load(Ordering::SeqCst),
    );
    if (alice, bob, runs) != (70, 80, (1, 2)) {
        return Err(format!(
            "expected alice 70, bob 80, withdraw run once and deposit twice; \
             found {alice}, {bob}, {runs:?}"
        )
        .into());
    }
    Ok(())
}
