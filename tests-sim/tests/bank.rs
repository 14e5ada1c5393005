//! The bank: six accounts are durable virtual actors; transfers between
//! them are durable workflows (debit, then credit in a child workflow of
//! another kind; a debit refused for want of funds ends the transfer with
//! nothing moved). Three nodes start
//! transfers (again after each restart: starting is idempotent) while the
//! nemesis crashes, pauses, partitions and isolates them, resets their
//! connections and skews their clocks; accounts and runs journal to a
//! fourth, storage node, cut off from one node at a time.
//!
//! Oracles, once the faults stop:
//! - every transfer ends (completed, or failed for want of funds);
//! - no transfer applied twice and none lost: every balance equals its
//!   opening balance plus the completed transfers in and minus those out;
//! - money is conserved: the balances sum to what the bank opened with.
#![cfg(madsim)]

use plexspaces::Env;
use plexspaces::actor::{ActorError, ActorSystem};
use plexspaces::distribution::Distribution;
use plexspaces::durability::{DurableActor, DurableContext};
use plexspaces::seams::{Clock, Rng};
use plexspaces::virtual_actor::{VirtualActors, VirtualConfig};
use plexspaces::workflow::{
    RunId, RunStatus, StepError, StepKey, Workflow, WorkflowContext, WorkflowError, Workflows,
};
use plexspaces_tests_sim::cluster_setup::{
    STORM_CHECKPOINT_INTERVAL, StorageCluster, fast_distribution, patient_retry, shared_journal,
    storm_workflows, wait_all_up,
};
use plexspaces_tests_sim::liveness::finish_within;
use plexspaces_tests_sim::{SeedPlan, assert_deterministic, run_seeds};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PORT: u16 = 7000;
const JOURNAL_PORT: u16 = 7100;
const NODES: usize = 3;
const STORAGE: usize = NODES;
const ACCOUNTS: u64 = 6;
const OPENING: i64 = 100;
const TRANSFERS_PER_NODE: u64 = 8;

/// An account: its balance (a debit below zero is refused).
#[derive(Serialize, Deserialize)]
struct Account {
    balance: i64,
}

impl DurableActor for Account {
    type Msg = i64; // the change; 0 reads
    type Reply = i64;

    async fn handle(&mut self, _: &mut DurableContext<'_>, change: i64) -> Result<i64, ActorError> {
        if self.balance + change < 0 {
            return Err(ActorError::new("insufficient funds"));
        }
        self.balance += change;
        Ok(self.balance)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Transfer {
    from: u64,
    to: u64,
    amount: i64,
}

/// Applies `change` to account `n` under `key`: a refusal is terminal,
/// anything else (unreachable, a move) is retried.
async fn apply(
    accounts: VirtualActors<Account>,
    n: u64,
    key: StepKey,
    change: i64,
) -> Result<i64, StepError> {
    let account = accounts.get(&format!("a{n}")).expect("valid id");
    match account.call(key, change, Duration::from_secs(2)).await {
        Ok(balance) => Ok(balance),
        Err(plexspaces::actor::AskError::Failed(e)) if !e.is_unavailable() => {
            Err(StepError::terminal(e.message()))
        }
        Err(e) => Err(StepError::retryable(e.to_string())),
    }
}

/// The credit half of a transfer, a child run: credits `amount` to
/// account `to`.
struct Credit {
    accounts: VirtualActors<Account>,
}

impl Workflow for Credit {
    type Input = (u64, i64);
    type Output = i64;

    async fn run(
        &self,
        ctx: WorkflowContext,
        (to, amount): (u64, i64),
    ) -> Result<i64, WorkflowError> {
        let accounts = self.accounts.clone();
        ctx.step_with("credit", &patient_retry(), |key| {
            apply(accounts.clone(), to, key, amount)
        })
        .await
    }
}

struct Transfers {
    accounts: VirtualActors<Account>,
    credits: Workflows<Credit>,
}

impl Workflow for Transfers {
    type Input = Transfer;
    type Output = ();

    async fn run(&self, ctx: WorkflowContext, t: Transfer) -> Result<(), WorkflowError> {
        // For the audit: the transfer as it started (a restarted client
        // may have drawn another, which `start` ignored).
        ctx.publish("input", &t).await?;
        let accounts = self.accounts.clone();
        ctx.step_with("debit", &patient_retry(), |key| {
            apply(accounts.clone(), t.from, key, -t.amount)
        })
        .await?;
        let accounts = self.accounts.clone();
        ctx.on_failure("debit", move |key| {
            let accounts = accounts.clone();
            async move { apply(accounts, t.from, key, t.amount).await.map(drop) }
        });
        ctx.child(&self.credits, "credit", &(t.to, t.amount))
            .await?;
        Ok(())
    }
}

fn run_id(node: usize, k: u64) -> RunId {
    RunId::new("bank", &format!("t{node}-{k}")).unwrap()
}

type NodeHandles = (Distribution, Workflows<Transfers>, VirtualActors<Account>);

#[derive(Default)]
struct Shared {
    nodes: BTreeMap<usize, NodeHandles>,
}

async fn run_node(env: Env, index: usize, addrs: Vec<SocketAddr>, shared: Arc<Mutex<Shared>>) {
    let system = ActorSystem::new(env.clone());
    let dist = system
        .start_distribution(fast_distribution(&addrs, index, NODES))
        .await
        .expect("distribution starts");
    let journal = shared_journal(&env, addrs[STORAGE], Duration::from_millis(500));
    let mut hosting = VirtualConfig::new("acct", journal.clone());
    hosting.attempt_timeout = Duration::from_millis(500);
    hosting.durability.checkpoint_interval = STORM_CHECKPOINT_INTERVAL;
    let accounts =
        VirtualActors::register(&system, hosting, |_| Account { balance: OPENING }).unwrap();
    let credits = Workflows::register(
        &system,
        storm_workflows("credit", journal.clone()),
        Credit {
            accounts: accounts.clone(),
        },
    )
    .unwrap();
    let config = storm_workflows("xfer", journal);
    let transfers = Workflows::register(
        &system,
        config,
        Transfers {
            accounts: accounts.clone(),
            credits,
        },
    )
    .unwrap();
    shared
        .lock()
        .unwrap()
        .nodes
        .insert(index, (dist, transfers.clone(), accounts));
    for k in 0..TRANSFERS_PER_NODE {
        env.sleep(Duration::from_millis(env.gen_range(50..1500)))
            .await;
        let from = env.gen_range(0..ACCOUNTS);
        let transfer = Transfer {
            from,
            to: (from + 1 + env.gen_range(0..ACCOUNTS - 1)) % ACCOUNTS,
            amount: env.gen_range(1..80) as i64,
        };
        while transfers.start(&run_id(index, k), &transfer).await.is_err() {
            env.sleep(Duration::from_millis(100)).await;
        }
    }
    std::future::pending::<()>().await;
}

#[derive(Debug, PartialEq)]
struct Outcome {
    /// The storage node\'s crashes and failed syncs (each reopened its journal).
    storage_faults: (u64, u64),
    completed: usize,
    refused: usize,
    balances: Vec<i64>,
    trace_hash: u64,
}

fn scenario(seed: u64) -> Outcome {
    let runtime = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    runtime.block_on(async move {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let storage = StorageCluster::start(seed, NODES, (PORT, JOURNAL_PORT), 0xba2c, |_| {}, {
            let shared = shared.clone();
            move |env, index, addrs| run_node(env, index, addrs, shared.clone())
        });
        let _report = storage.storm("bank", seed, 0xba2c_0ffe).await;
        let (cluster, clock) = (&storage.cluster, &storage.clock);
        // The liveness oracle: everything after healing ends in time.
        finish_within(
            seed,
            "the transfers and the audit after healing",
            Duration::from_secs(900),
            async {
                let nodes: Vec<NodeHandles> =
                    shared.lock().unwrap().nodes.values().cloned().collect();
                wait_all_up(nodes.iter().map(|(d, _, _)| d), NODES, seed).await;
                // Every node restarted at least once started its transfers again:
                // wait for all of them to be in the index, then to end.
                let (_, transfers, accounts) = &nodes[0];
                let mut expected = vec![OPENING; ACCOUNTS as usize];
                let (mut completed, mut refused) = (0, 0);
                for node in 0..NODES {
                    for k in 0..TRANSFERS_PER_NODE {
                        let run = run_id(node, k);
                        let ended = clock
                            .timeout(Duration::from_secs(90), async {
                                loop {
                                    match transfers.result(&run, Duration::from_secs(90)).await {
                                        Err(WorkflowError::NotFound(_)) => {
                                            clock.sleep(Duration::from_millis(100)).await;
                                        }
                                        other => return other,
                                    }
                                }
                            })
                            .await
                            .unwrap_or_else(|_| panic!("seed {seed}: {run} never ended"));
                        match ended {
                            Ok(()) => completed += 1,
                            Err(WorkflowError::Ended(RunStatus::Failed {
                                error,
                                compensated: 0,
                            })) if error.contains("insufficient funds") => {
                                refused += 1;
                                continue;
                            }
                            other => panic!("seed {seed}: {run} ended {other:?}"),
                        }
                        // The run's input, as it started (read back from the runs
                        // that completed: debit from, credit to).
                        let input: Transfer = transfers
                            .query(&run, "input")
                            .await
                            .ok()
                            .flatten()
                            .unwrap_or_else(|| panic!("seed {seed}: {run} published no input"));
                        expected[input.from as usize] -= input.amount;
                        expected[input.to as usize] += input.amount;
                    }
                }
                let mut balances = Vec::new();
                for n in 0..ACCOUNTS {
                    let balance = accounts
                        .get(&format!("a{n}"))
                        .unwrap()
                        .call(format!("audit-{n}"), 0, Duration::from_secs(10))
                        .await
                        .unwrap_or_else(|e| panic!("seed {seed}: account {n} unreadable: {e}"));
                    balances.push(balance);
                }
                assert_eq!(
                    balances, expected,
                    "seed {seed}: balances differ from the completed transfers"
                );
                assert_eq!(
                    balances.iter().sum::<i64>(),
                    OPENING * ACCOUNTS as i64,
                    "seed {seed}: money was made or lost"
                );
                assert!(
                    storage.checkpointed_streams().await > 0,
                    "seed {seed}: no checkpoint went through the shared journal"
                );
                Outcome {
                    storage_faults: (storage.storage_crashes(), storage.storage_sync_errors()),
                    completed,
                    refused,
                    balances,
                    trace_hash: cluster.trace().hash(),
                }
            },
        )
        .await
    })
}

#[test]
fn transfers_conserve_money_and_apply_once_under_the_nemesis() {
    let plan = SeedPlan::from_env(12).with_fresh("bank", 100);
    let outcomes = run_seeds("bank", &plan, scenario);
    assert!(
        outcomes.iter().any(|o| o.storage_faults.0 > 0)
            && outcomes.iter().any(|o| o.storage_faults.1 > 0),
        "no seed crashed the storage node or failed its syncs: {outcomes:?}"
    );
    assert!(
        outcomes.iter().all(|o| o.completed > 0),
        "every seed completed transfers: {outcomes:?}"
    );
    assert_deterministic(1, scenario);
}
