//! The cluster demo's service (`plexspaces-demo-bank`, `scripts/cluster-demo.sh`):
//! bank accounts as virtual durable actors and transfers between them as
//! durable workflows, on the node host. Also what the host's process tests
//! run.

use crate::{Node, NodeError};
use plexspaces::prelude::*;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How long one call to an account may take.
pub const CALL: Duration = Duration::from_secs(10);
/// What each account is opened with.
pub const OPENING_BALANCE: i64 = 1_000;
/// The tenant of every transfer run.
pub const TENANT: &str = "demo";

/// An account: its balance, rebuilt from its journal.
#[derive(Default, Serialize, Deserialize)]
pub struct Account {
    balance: i64,
}

/// What an account is asked.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum AccountOp {
    /// Add this much.
    Deposit(i64),
    /// Take this much, if the balance covers it.
    Withdraw(i64),
    /// The balance (a query: no journal write).
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

    fn query(&self, _: &Env, op: &AccountOp) -> Option<i64> {
        matches!(op, AccountOp::Balance).then_some(self.balance)
    }
}

/// A transfer run's input.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Transfer {
    /// The account debited.
    pub from: String,
    /// The account credited.
    pub to: String,
    /// How much.
    pub amount: i64,
}

/// The transfer workflow: withdraw, then deposit, each step once.
pub struct Transfers {
    accounts: VirtualActors<Account>,
}

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
        let retry = RetryPolicy::attempts(20);
        ctx.step_with("withdraw", &retry, |key| {
            let from = from.clone();
            async move { step_result(from.call(key, AccountOp::Withdraw(t.amount), CALL).await) }
        })
        .await?;
        ctx.step_with("deposit", &retry, |key| {
            let to = to.clone();
            async move { step_result(to.call(key, AccountOp::Deposit(t.amount), CALL).await) }
        })
        .await?;
        Ok(format!("moved {} from {} to {}", t.amount, t.from, t.to))
    }
}

/// The bank's kinds, registered on a node.
pub struct Bank {
    /// The accounts (`account`).
    pub accounts: VirtualActors<Account>,
    /// The transfers (`transfer`).
    pub transfers: Workflows<Transfers>,
}

/// Registers the bank's kinds on `node` (and shows them to its operator
/// API).
pub fn register(node: &Node) -> Result<Bank, NodeError> {
    let failed = |e: &dyn std::fmt::Display| NodeError::Start {
        what: "bank",
        reason: e.to_string(),
    };
    let accounts = VirtualActors::register(
        node.system(),
        VirtualConfig::new("account", node.journal()),
        |_| Account::default(),
    )
    .map_err(|e| failed(&e))?;
    let mut workflow_config = WorkflowConfig::new("transfer", node.journal());
    workflow_config.lease = Duration::from_secs(2);
    workflow_config.resume_every = Duration::from_millis(500);
    let transfers = Workflows::register(
        node.system(),
        workflow_config,
        Transfers {
            accounts: accounts.clone(),
        },
    )
    .map_err(|e| failed(&e))?;
    node.register_virtual(&accounts)?;
    node.register_workflows("transfer", &transfers)?;
    Ok(Bank {
        accounts,
        transfers,
    })
}

/// Transfer `i` among `accounts` accounts (ids from [`account_id`]).
pub fn transfer(i: u64, accounts: u64) -> Transfer {
    Transfer {
        from: account_id(i % accounts),
        to: account_id((i * 3 + 1) % accounts),
        amount: 1 + (i % 7) as i64,
    }
}

/// The prefix of every account and run id (`--prefix`).
static PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The prefix of every id (see [`set_prefix`]).
pub fn prefix() -> &'static str {
    PREFIX.get().map_or("", String::as_str)
}

/// Account `index`'s id.
pub fn account_id(index: u64) -> String {
    format!("{}acct-{index}", prefix())
}

/// Each account's balance if transfers `0..transfers` each applied once.
pub fn expected_balances(accounts: u64, transfers: u64) -> Vec<i64> {
    let mut balances = vec![OPENING_BALANCE; accounts as usize];
    for i in 0..transfers {
        let t = transfer(i, accounts);
        let index = |id: &str| {
            id[prefix().len() + "acct-".len()..]
                .parse::<usize>()
                .expect("an account id made by account_id")
        };
        balances[index(&t.from)] -= t.amount;
        balances[index(&t.to)] += t.amount;
    }
    balances
}

/// The longest prefix [`set_prefix`] takes.
pub const PREFIX_LEN_MAX: usize = 64;

/// Sets the prefix of every account and run id, once per process (runs
/// sharing a journal keep apart by prefix): up to [`PREFIX_LEN_MAX`] of
/// `[A-Za-z0-9._-]`, so every id made with it is valid.
pub fn set_prefix(prefix: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if prefix.len() > PREFIX_LEN_MAX || !prefix.chars().all(allowed) {
        return Err(format!(
            "prefix {prefix:?}: at most {PREFIX_LEN_MAX} of A-Z a-z 0-9 . _ -"
        ));
    }
    PREFIX
        .set(prefix.to_string())
        .map_err(|_| "the prefix is set already".to_string())
}
