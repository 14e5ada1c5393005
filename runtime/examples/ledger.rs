//! A durable ledger on the embedded journal: every deposit is journaled and
//! synced before it counts, a checkpoint is saved every 5 entries, and a
//! restart rebuilds the balance from the latest checkpoint plus the entries
//! after it.
//!
//! Run it twice (or kill it half-way): the balance carries over, and no
//! acknowledged deposit is lost or applied twice.
//!
//! ```text
//! cargo run --example ledger
//! ```

use plexspaces::prelude::*;
use plexspaces::seams::Disk;
use plexspaces::storage::journal::{FileJournal, Journal};

const ACCOUNT: &str = "account-42@node1";
const CHECKPOINT_EVERY: u64 = 5;

fn decode(bytes: &[u8]) -> Result<i64, String> {
    Ok(i64::from_le_bytes(bytes.try_into().map_err(|_| {
        format!("bad entry of {} bytes", bytes.len())
    })?))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env = Env::tokio(NodeName::new("node1")?)
        .with_data_dir("data/ledger")
        .await?;
    let disk = env.disk().subdir("journal").await?;
    let journal = FileJournal::open(disk, JournalConfig::default(), env.next_u64()).await?;

    // Recover: the latest checkpoint, then every entry after it.
    let (mut balance, from) = match journal.latest_checkpoint(ACCOUNT).await? {
        Some(checkpoint) => (decode(&checkpoint.state)?, checkpoint.seq),
        None => (0, 0),
    };
    let mut bad_entry = None;
    let replayed = journal
        .replay_each(ACCOUNT, from + 1, |seq, data| match decode(data) {
            Ok(amount) => balance += amount,
            Err(e) => bad_entry = Some(format!("entry {seq}: {e}")),
        })
        .await?;
    if let Some(bad) = bad_entry {
        return Err(bad.into());
    }
    match from {
        0 if replayed == 0 => println!("a new ledger: balance {balance}"),
        0 => {
            println!("recovered balance {balance} (no checkpoint yet: {replayed} entries replayed)")
        }
        _ => println!(
            "recovered balance {balance} (checkpoint at seq {from}, then {replayed} entries replayed)"
        ),
    }

    // Three new deposits of 1 to 100, each durable before it counts.
    for _ in 0..3 {
        let amount = env.gen_range(1..101) as i64;
        let seq = journal.append(ACCOUNT, &amount.to_le_bytes()).await?;
        balance += amount;
        println!("deposit #{seq}: +{amount} -> balance {balance}");
        if seq % CHECKPOINT_EVERY == 0 {
            journal
                .save_checkpoint(ACCOUNT, seq, &balance.to_le_bytes())
                .await?;
            println!("checkpoint saved at seq {seq}");
        }
    }
    println!(
        "final balance {balance} after {} deposits in all",
        journal.last_seq(ACCOUNT)
    );
    Ok(())
}
