//! The journal workload and its oracle, shared by the journal-torture and
//! storm scenarios: a node appends from several tasks, checkpointing now and
//! then, reopening its journal whenever it stops (fail-stop) and after every
//! restart; every acknowledgement is recorded outside the node, where a
//! crash cannot erase it.

use plexspaces::Env;
use plexspaces::seams::{Clock, Rng};
use plexspaces::storage::disk::Disk;
use plexspaces::storage::journal::{FileJournal, Journal, JournalConfig};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Appending tasks per node.
pub const APPENDERS: usize = 4;

/// Acknowledged entries: (stream, seq, data), in acknowledgement order.
pub type Acked = Arc<Mutex<Vec<(String, u64, Vec<u8>)>>>;

/// The journal bounds the workload uses: small segments, so they roll and
/// compact often.
pub fn journal_config() -> JournalConfig {
    let mut config = JournalConfig::default();
    config.segment_bytes_max = 4096;
    config
}

/// One incarnation of the node after another: open the journal (retrying
/// while the disk refuses), append from several tasks until the journal
/// stops, reopen.
pub async fn node_main(env: Env, config: JournalConfig, acked: Acked) {
    let disk = loop {
        match env.disk().subdir("journal").await {
            Ok(disk) => break disk,
            Err(_) => env.sleep(Duration::from_millis(20)).await,
        }
    };
    loop {
        let journal = match FileJournal::open(disk.clone(), config.clone(), env.next_u64()).await {
            Ok(journal) => journal,
            Err(_) => {
                env.sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let tasks: Vec<_> = (0..APPENDERS)
            .map(|task| {
                let (env2, journal, acked) = (env.clone(), journal.clone(), acked.clone());
                env.spawn(async move {
                    let stream = format!("s{task}");
                    loop {
                        let data = env2.next_u64().to_le_bytes().to_vec();
                        let Ok(seq) = journal.append(&stream, &data).await else {
                            return; // stopped: the incarnation reopens
                        };
                        acked.lock().unwrap().push((stream.clone(), seq, data));
                        if seq % 150 == 0
                            && journal
                                .save_checkpoint(&stream, seq, &seq.to_le_bytes())
                                .await
                                .is_err()
                        {
                            return;
                        }
                        env2.sleep(Duration::from_millis(env2.gen_range(1..6)))
                            .await;
                    }
                })
            })
            .collect();
        for task in tasks {
            let _ = task.await;
        }
    }
}

/// The oracle: the journal on `disk` opens, no sequence number was
/// acknowledged twice (which would mean the first entry was lost and its
/// number handed out again), and every acknowledged entry not folded into a
/// checkpoint is held, intact.
pub async fn check<D: Disk>(disk: D, config: JournalConfig, acked: &Acked) -> Result<(), String> {
    let disk = disk
        .subdir("journal")
        .await
        .map_err(|e| format!("the journal directory is gone: {e}"))?;
    let journal = FileJournal::open(disk, config, 0)
        .await
        .map_err(|e| format!("the journal refuses to open after the storm: {e}"))?;
    let acked = acked.lock().unwrap().clone();
    let mut seen = BTreeMap::new();
    for (stream, seq, data) in &acked {
        if let Some(first) = seen.insert((stream, *seq), data)
            && first != data
        {
            return Err(format!(
                "{stream}#{seq} was acknowledged twice: the first was lost"
            ));
        }
    }
    for task in 0..APPENDERS {
        let stream = format!("s{task}");
        let checkpoint = journal
            .latest_checkpoint(&stream)
            .await
            .map_err(|e| e.to_string())?;
        let covered = checkpoint.as_ref().map_or(0, |c| c.seq);
        let entries = journal
            .replay_from(&stream, covered + 1)
            .await
            .map_err(|e| e.to_string())?;
        for (s, seq, data) in acked.iter().filter(|a| a.0 == stream) {
            if *seq <= covered {
                continue; // folded into the checkpoint
            }
            let held = entries.get((*seq - covered - 1) as usize);
            if held.map(|e| (&e.data, e.seq)) != Some((data, *seq)) {
                return Err(format!("acknowledged entry {s}#{seq} is lost or altered"));
            }
        }
    }
    Ok(())
}
