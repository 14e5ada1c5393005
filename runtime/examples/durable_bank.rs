//! A durable bank account on the embedded file journal, under a supervisor.
//!
//! Each run deposits once (under a new idempotency key), retries an old
//! deposit (deduplicated: applied once, ever), and charges a fee whose
//! lookup is a side effect, crashing right after it. The supervisor
//! restarts the account, recovery finishes the interrupted charge with the
//! journaled fee, and the retry gets that result without looking the fee up
//! again. Run it several times: the balance moves by exactly +100 - 7 a run.
//!
//! ```text
//! cargo run --example durable_bank
//! ```

use plexspaces::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

static FEE_LOOKUPS: AtomicU32 = AtomicU32::new(0);
static CRASHES: AtomicU32 = AtomicU32::new(0);

#[derive(Default, Serialize, Deserialize)]
struct Account {
    balance: i64,
    runs: u32,
}

#[derive(Serialize, Deserialize)]
enum Op {
    Balance,
    NewRun,
    Deposit(i64),
    ChargeFeeAndCrash,
}

impl DurableActor for Account {
    type Msg = Op;
    type Reply = (i64, u32);

    async fn handle(
        &mut self,
        ctx: &mut DurableContext<'_>,
        op: Op,
    ) -> Result<(i64, u32), ActorError> {
        match op {
            Op::Balance => {}
            Op::NewRun => self.runs += 1,
            Op::Deposit(amount) => self.balance += amount,
            Op::ChargeFeeAndCrash => {
                let lookups_before = FEE_LOOKUPS.load(Ordering::SeqCst);
                let fee: i64 = ctx
                    .run("fee-service", || async {
                        FEE_LOOKUPS.fetch_add(1, Ordering::SeqCst);
                        7
                    })
                    .await?;
                self.balance -= fee;
                // Crash once, right after a real (not replayed) lookup.
                let looked_up = FEE_LOOKUPS.load(Ordering::SeqCst) != lookups_before;
                if looked_up && CRASHES.fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("the node died right after the fee lookup");
                }
            }
        }
        Ok((self.balance, self.runs))
    }

    /// Reading the balance is a query: no idempotency key, no journal write.
    fn query(&self, _: &Env, op: &Op) -> Option<(i64, u32)> {
        matches!(op, Op::Balance).then_some((self.balance, self.runs))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    std::panic::set_hook(Box::new(|info| eprintln!("(crash: {info})")));
    let env = Env::tokio(NodeName::new("node1")?)
        .with_data_dir("data/durable_bank")
        .await?;
    let system = ActorSystem::new(env.clone());
    let journal = JournalBackend::file(&env, JournalConfig::default()).await?;
    let spec =
        SupervisorSpec::new(Strategy::OneForOne).child(ChildSpec::actor("account", move || {
            Durable::new(
                Account::default(),
                journal.clone(),
                DurabilityConfig::default(),
            )
        }));
    let root = system.spawn("root", Supervisor::new(spec))?;
    let timeout = Duration::from_secs(5);
    // The account as running now: the supervisor answers once any restart
    // it owes is done, so there is nothing to poll for.
    let account = || root.child::<Durable<Account>>("account", timeout);

    // A read is a query: no idempotency key, nothing journaled.
    let (balance, runs) = account().await?.query(Op::Balance, timeout).await?;
    println!("recovered: balance {balance} after {runs} earlier run(s)");
    // Every command carries its idempotency key.
    let (_, run) = account()
        .await?
        .call(format!("run-{runs}"), Op::NewRun, timeout)
        .await?;
    let (balance, _) = account()
        .await?
        .call(format!("deposit-{run}"), Op::Deposit(100), timeout)
        .await?;
    println!("run {run}: deposit 100 -> balance {balance}");
    let (again, _) = account()
        .await?
        .call("deposit-1", Op::Deposit(100), timeout)
        .await?;
    println!(
        "retrying the first run's deposit (key deposit-1) answers {again}: applied once, ever"
    );

    let charge = format!("fee-{run}");
    let first = account()
        .await?
        .call(charge.clone(), Op::ChargeFeeAndCrash, timeout)
        .await;
    println!(
        "fee charge: {}",
        match first {
            Ok(_) => "answered".to_string(),
            Err(e) => format!("no reply ({e})"),
        }
    );
    // Retried under the same key on the restarted account (the supervisor
    // hands out the new incarnation): the key makes it apply once.
    let (balance, _) = account()
        .await?
        .call(charge.clone(), Op::ChargeFeeAndCrash, timeout)
        .await?;
    println!(
        "after the supervisor's restart, the retried charge answers balance {balance}; \
         fee service called {} time(s) this run",
        FEE_LOOKUPS.load(Ordering::SeqCst)
    );
    system.shutdown().await;
    Ok(())
}
