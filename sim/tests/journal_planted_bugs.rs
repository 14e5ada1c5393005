//! The journal in the simulator: a node appends from four tasks while the
//! nemesis crashes it and the disk loses, tears and refuses what a real disk
//! may. Oracle: the journal always reopens, and every acknowledged entry is
//! there, intact, after the storm.
//!
//! The same scenario then runs deliberately broken journals (acknowledge
//! before sync, ignore a failed sync, skip the directory sync of a new
//! segment) and must catch each within a bounded number of seeds, while the
//! correct journal passes every one of those seeds.
#![cfg(madsim)]

use plexspaces::Env;
use plexspaces::seams::{Clock, Disk, Rng};
use plexspaces_sim::{
    Cluster, ClusterConfig, DiskFaults, FaultCounts, FaultKinds, NemesisConfig, ReportOnPanic,
    Schedule,
};
use plexspaces_storage::journal::{FileJournal, Journal, JournalConfig, PlantedBug};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const APPENDERS: usize = 4;

type Acked = Arc<Mutex<Vec<(String, u64, Vec<u8>)>>>;

#[derive(Debug, PartialEq)]
struct Outcome {
    acked: usize,
    trace_hash: u64,
    faults: FaultCounts,
}

fn journal_config(bug: Option<PlantedBug>) -> JournalConfig {
    JournalConfig {
        segment_bytes_max: 4096,
        planted_bug: bug,
        ..JournalConfig::default()
    }
}

/// One incarnation of the node after another: open the journal (retrying
/// while the disk refuses), append from several tasks until the journal
/// stops, reopen.
async fn node_main(env: Env, config: JournalConfig, acked: Acked) {
    loop {
        let journal =
            match FileJournal::open(env.disk().clone(), config.clone(), env.next_u64()).await {
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

/// Checks every acknowledged entry against what the disk holds now.
async fn check<D: Disk>(disk: D, config: JournalConfig, acked: &Acked) -> Result<(), String> {
    let journal = FileJournal::open(disk, config, 0)
        .await
        .map_err(|e| format!("the journal refuses to open after the storm: {e}"))?;
    let acked = acked.lock().unwrap().clone();
    // A sequence number acknowledged twice means the first entry was lost
    // and its number handed out again, even if a checkpoint since hides it.
    let mut seen = std::collections::BTreeMap::new();
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

fn scenario(seed: u64, bug: Option<PlantedBug>) -> Result<Outcome, String> {
    let runtime = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    runtime.block_on(async move {
        let config = journal_config(bug);
        let mut cluster = Cluster::new(ClusterConfig {
            disk_faults: DiskFaults {
                sync_error: 0.002,
                ..DiskFaults::recoverable()
            },
            ..ClusterConfig::new(seed)
        });
        let acked: Acked = Arc::default();
        let node = cluster.add_node("n1", {
            let (config, acked) = (config.clone(), acked.clone());
            move |env| node_main(env, config.clone(), acked.clone())
        });
        let schedule = Schedule::draw(
            seed,
            1,
            &NemesisConfig {
                active: Duration::from_secs(10),
                quiet: Duration::from_secs(2),
                mean_gap: Duration::from_millis(1500),
                max_fault: Duration::from_millis(500),
                kinds: FaultKinds::crashes(),
            },
        );
        let _report = ReportOnPanic::new(format!("seed {seed}, bug {bug:?}\n{schedule}"));
        cluster.set_disk_faults(true);
        schedule.run(&cluster).await;
        // Faults are off: this crash keeps everything, freezing the disk.
        cluster.crash(node);
        check(cluster.disk(node).clone(), config, &acked).await?;
        let acked = acked.lock().unwrap().len();
        if acked < 100 {
            return Err(format!(
                "only {acked} entries acknowledged: the workload stalled"
            ));
        }
        Ok(Outcome {
            acked,
            trace_hash: cluster.trace().hash(),
            faults: cluster.disk(node).fault_counts(),
        })
    })
}

const SEEDS: u64 = 24;

#[test]
fn the_correct_journal_loses_nothing_acknowledged() {
    let mut crashes = 0;
    for seed in 0..SEEDS {
        match scenario(seed, None) {
            Ok(outcome) => crashes += outcome.faults.crashes,
            Err(violation) => panic!(
                "seed {seed}: {violation}\nreplay: PLEXSPACES_SEED={seed} RUSTFLAGS=\"--cfg madsim\" \
                 CARGO_TARGET_DIR=target/madsim cargo test -p plexspaces-sim --test journal_planted_bugs"
            ),
        }
    }
    assert!(
        crashes >= SEEDS * 3,
        "the nemesis crashed the node {crashes} times"
    );
}

fn caught_within(bug: PlantedBug) -> u64 {
    for seed in 0..SEEDS {
        if let Err(violation) = scenario(seed, Some(bug)) {
            println!("{bug:?} caught at seed {seed}: {violation}");
            return seed;
        }
    }
    panic!("{bug:?} survived {SEEDS} seeds: the simulator does not see it");
}

#[test]
fn acknowledging_before_sync_is_caught() {
    caught_within(PlantedBug::AckBeforeSync);
}

#[test]
fn ignoring_a_failed_sync_is_caught() {
    caught_within(PlantedBug::IgnoreSyncError);
}

#[test]
fn skipping_the_directory_sync_of_a_new_segment_is_caught() {
    caught_within(PlantedBug::SkipSegmentDirSync);
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    for seed in [3, 11, 17, 29, 40] {
        let first = scenario(seed, None).unwrap();
        let second = scenario(seed, None).unwrap();
        assert_eq!(first, second, "seed {seed}");
    }
    let a = scenario(1, None).unwrap();
    let b = scenario(2, None).unwrap();
    assert_ne!(
        a.trace_hash, b.trace_hash,
        "different seeds, different runs"
    );
}
