//! The cluster demo's service: bank accounts as virtual durable actors and
//! transfers as durable workflows, on the node host.
//!
//! ```text
//! plexspaces-demo-bank serve CONFIG            # a node, until SIGTERM/SIGINT
//! plexspaces-demo-bank drive CONFIG --accounts N --transfers M [--first K]
//! plexspaces-demo-bank check CONFIG --accounts N --transfers M
//! ```
//!
//! `drive` joins the cluster as a node of its own, opens the accounts
//! (each with 1,000, under an idempotency key: opening twice deposits
//! once), starts transfers `K..K+M` (transfer `i` moves `1 + i % 7` from
//! account `i % N` to `(i * 3 + 1) % N`), waits for every one to complete,
//! and leaves. `check` reads every balance and compares it with what the
//! transfers `0..M` must give if each applied exactly once; it exits 1 if
//! any differs. Accounts are `<prefix>acct-<i>`, transfers run
//! `demo/<prefix>t-<i>` (`--prefix P`, default none: runs sharing a
//! journal keep apart by prefix).

use plexspaces::prelude::*;
use plexspaces_node::Node;
use plexspaces_node::demo_bank::{
    self, AccountOp, Bank, CALL, OPENING_BALANCE, TENANT, account_id, expected_balances, prefix,
    transfer,
};
use std::process::ExitCode;
use std::time::Duration;

fn flag(args: &[String], name: &str, default: u64) -> Result<u64, String> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{name} needs a number")),
    }
}

async fn drive(
    node: &Node,
    bank: &Bank,
    accounts: u64,
    first: u64,
    count: u64,
) -> Result<(), String> {
    for a in 0..accounts {
        let id = account_id(a);
        let account = bank.accounts.get(&id).map_err(|e| e.to_string())?;
        account
            .call(
                &format!("open-{id}"),
                AccountOp::Deposit(OPENING_BALANCE),
                CALL,
            )
            .await
            .map_err(|e| format!("opening {id}: {e}"))?;
    }
    let runs: Vec<RunId> = (first..first + count)
        .map(|i| {
            RunId::new(TENANT, &format!("{}t-{i}", prefix()))
                .expect("set_prefix admits only characters a run id takes")
        })
        .collect();
    let starts = runs.iter().zip(first..).map(|(run, i)| {
        let input = transfer(i, accounts);
        async move {
            // Started again if the first attempt's answer was lost: a run
            // id starts once.
            for _ in 0..20 {
                if bank.transfers.start(run, &input).await.is_ok() {
                    return Ok(());
                }
                node.env().sleep(Duration::from_millis(250)).await;
            }
            Err(format!("could not start {run}"))
        }
    });
    for started in futures::future::join_all(starts).await {
        started?;
    }
    let results = runs.iter().map(|run| async move {
        (
            run,
            bank.transfers.result(run, Duration::from_secs(120)).await,
        )
    });
    let mut failed = Vec::new();
    for (run, result) in futures::future::join_all(results).await {
        if let Err(e) = result {
            failed.push(format!("{run}: {e}"));
        }
    }
    if failed.is_empty() {
        println!("drive: {count} transfer(s) from t-{first} completed");
        Ok(())
    } else {
        Err(format!(
            "{} transfer(s) did not complete: {}",
            failed.len(),
            failed.join("; ")
        ))
    }
}

async fn check(bank: &Bank, accounts: u64, transfers: u64) -> Result<(), String> {
    let expected = expected_balances(accounts, transfers);
    let mut wrong = Vec::new();
    for (a, want) in expected.iter().enumerate() {
        let id = account_id(a as u64);
        let account = bank.accounts.get(&id).map_err(|e| e.to_string())?;
        let got = account
            .query(AccountOp::Balance, CALL)
            .await
            .map_err(|e| format!("{id}: {e}"))?;
        if got != *want {
            wrong.push(format!("{id}: {got}, expected {want}"));
        }
    }
    let total: i64 = expected.iter().sum();
    if wrong.is_empty() {
        println!(
            "check: {accounts} account(s) hold {total} in all; every one of {transfers} transfer(s) applied exactly once"
        );
        Ok(())
    } else {
        Err(format!("balances differ: {}", wrong.join("; ")))
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(command), Some(config)) = (args.first(), args.get(1)) else {
        eprintln!(
            "usage: plexspaces-demo-bank serve|drive|check CONFIG [--accounts N] [--transfers M] [--first K]"
        );
        return ExitCode::from(2);
    };
    let numbers = (|| {
        Ok::<_, String>((
            flag(&args, "--accounts", 20)?,
            flag(&args, "--transfers", 100)?,
            flag(&args, "--first", 0)?,
        ))
    })();
    if let Some(i) = args.iter().position(|a| a == "--prefix") {
        let Some(p) = args.get(i + 1) else {
            eprintln!("--prefix needs a value");
            return ExitCode::from(2);
        };
        if let Err(e) = demo_bank::set_prefix(p) {
            eprintln!("--prefix: {e}");
            return ExitCode::from(2);
        }
    }
    let (accounts, transfers, first) = match numbers {
        Ok(n) if n.0 > 0 => n,
        Ok(_) => {
            eprintln!("--accounts must be at least 1");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let started = match Node::from_config_file(config).await {
        Ok(node) => demo_bank::register(&node).map(|bank| (node, bank)),
        Err(e) => Err(e),
    };
    let (node, bank) = match started {
        Ok(started) => started,
        Err(e) => {
            eprintln!("plexspaces-demo-bank: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = match command.as_str() {
        "serve" => {
            println!("serving as {}", node.system().node());
            return match node.run().await {
                Ok(report) => {
                    println!(
                        "stopped: {} activation(s) handed off, drained: {}",
                        report.handed_off, report.drained
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(1)
                }
            };
        }
        "drive" => {
            // Wait to see the cluster before placing anything.
            if let Some(dist) = node.distribution() {
                let _ = dist
                    .wait_for(Duration::from_secs(10), |m| m.len() > 1)
                    .await;
            }
            drive(&node, &bank, accounts, first, transfers).await
        }
        "check" => {
            if let Some(dist) = node.distribution() {
                let _ = dist
                    .wait_for(Duration::from_secs(10), |m| m.len() > 1)
                    .await;
            }
            check(&bank, accounts, first + transfers).await
        }
        other => Err(format!("unknown command {other:?}: serve, drive or check")),
    };
    node.shutdown().await;
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("plexspaces-demo-bank: {e}");
            ExitCode::from(1)
        }
    }
}
