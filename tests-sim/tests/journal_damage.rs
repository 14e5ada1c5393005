//! Damage at rest: the journal of a crashing node, whose disk loses and
//! tears unsynced writes, then takes one of three kinds of damage, chosen
//! from the seed, while the node keeps appending: one bit of a file
//! flipped at rest (a segment, a checkpoint or the marker), or one write
//! lost, or one write misdirected to another sector of its file (the
//! write, and the `sync_data` after it, still acknowledged).
//!
//! Oracle, exactly two outcomes: the journal opens and every acknowledged
//! entry is there, intact (the damage hit what nothing needs any more: a
//! compacted segment, a replaced checkpoint, the marker); or it refuses
//! to open with a typed error naming the damaged file. Never a different
//! or missing acknowledged entry returned as good, never a refusal that
//! names another file.
//!
//! The damage comes after the last nemesis crash and is followed by more
//! appends: damage to the last durable batch with nothing written after it
//! (a flip, a lost or a misdirected write of that batch) is what a
//! single-copy log cannot tell from a torn write (`storage/FORMAT.md`,
//! "What stays undetectable"), so it is not injected here.
#![cfg(madsim)]

use plexspaces::storage::disk::Disk;
use plexspaces::storage::journal::{FileJournal, JournalError};
use plexspaces_sim::{
    Cluster, ClusterConfig, DiskFaults, FaultKinds, NemesisConfig, ReportOnPanic, Schedule,
    SimDisk, WriteFault,
};
use plexspaces_tests_sim::journal_workload::{self, Acked};
use plexspaces_tests_sim::liveness::{AFTER_HEALING, finish_within};
use plexspaces_tests_sim::{SeedPlan, assert_deterministic, run_seeds};
use std::time::Duration;

const ACTIVE: Duration = Duration::from_secs(8);

#[derive(Debug, PartialEq)]
enum Verdict {
    /// Opened, everything acknowledged intact.
    Intact,
    /// Refused, naming the damaged file.
    Refused(String),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Damage {
    BitFlip,
    Write(WriteFault),
}

impl Damage {
    fn of_seed(seed: u64) -> Damage {
        match seed % 3 {
            0 => Damage::BitFlip,
            1 => Damage::Write(WriteFault::Lost),
            _ => Damage::Write(WriteFault::Misdirected),
        }
    }
}

#[derive(Debug, PartialEq)]
struct Outcome {
    damage: Damage,
    /// The damaged file (as the directory names it at the end) and the
    /// offset hit; `None` if the damage found no file, or hit one since
    /// removed.
    damaged: Option<(String, u64)>,
    verdict: Verdict,
    trace_hash: u64,
}

fn segment_file(id: u64) -> String {
    format!("seg-{id:016x}.log")
}

/// The file a refusal names, if it is one that names damage.
fn named_file(e: &JournalError) -> Option<String> {
    match e {
        JournalError::Corrupt { segment, .. } => Some(segment_file(*segment)),
        JournalError::ForeignSegment { segment, .. } => Some(segment_file(*segment)),
        JournalError::CorruptCheckpoint { file, .. } => Some(file.clone()),
        JournalError::MissingSegment { named_by, .. } => Some(named_by.clone()),
        JournalError::LostTail { checkpoint, .. } => Some(checkpoint.clone()),
        _ => None,
    }
}

fn scenario(seed: u64) -> Outcome {
    let runtime = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    runtime.block_on(async move {
        let config = journal_workload::journal_config();
        let mut cluster = Cluster::new(ClusterConfig {
            disk_faults: DiskFaults::recoverable(),
            ..ClusterConfig::new(seed)
        });
        let acked = Acked::default();
        let node = cluster.add_node("n1", {
            let (config, acked) = (config.clone(), acked.clone());
            move |env| journal_workload::node_main(env, config.clone(), acked.clone())
        });
        let schedule = Schedule::draw(
            seed,
            1,
            &NemesisConfig {
                active: ACTIVE,
                quiet: Duration::from_secs(3),
                mean_gap: Duration::from_millis(1500),
                max_fault: Duration::from_millis(500),
                kinds: FaultKinds::crashes(),
            },
        );
        let _report = ReportOnPanic::new(format!("journal damage seed {seed}\n{schedule}"));
        // The damage, in the journal's directory once the nemesis is done,
        // with 0.3 s of appends (dozens of batches) after it.
        let damage = Damage::of_seed(seed);
        let damager = {
            let disk = cluster.disk(node).clone();
            madsim::task::spawn(async move {
                madsim::time::sleep(ACTIVE + Duration::from_millis(2700)).await;
                let journal: SimDisk = disk.subdir("journal").await.ok()?;
                match damage {
                    Damage::BitFlip => journal.flip_bit_at_rest(),
                    Damage::Write(fault) => {
                        journal.arm_write_fault(fault);
                        None
                    }
                }
            })
        };
        cluster.set_disk_faults(true);
        schedule.run(&cluster).await;
        let flipped = damager.await.expect("the damager ran");
        let damaged = match damage {
            Damage::BitFlip => flipped,
            Damage::Write(_) => {
                let journal = cluster.disk(node).subdir("journal").await.expect("journal");
                let hit = journal
                    .write_fault_hit()
                    .unwrap_or_else(|| panic!("seed {seed}: no write after the fault was armed"));
                hit.file.map(|file| (file, hit.offset))
            }
        };
        cluster.crash(node); // faults are off: this crash keeps everything
        let disk = cluster.disk(node).clone();
        let verdict = finish_within(seed, "opening the damaged journal", AFTER_HEALING, async {
            let dir = disk.subdir("journal").await.expect("the journal directory");
            match FileJournal::open(dir, config.clone(), 0).await {
                Ok(journal) => {
                    drop(journal);
                    journal_workload::check(disk.clone(), config.clone(), &acked)
                        .await
                        .unwrap_or_else(|violation| {
                            panic!(
                                "seed {seed}: the journal opened over {damage:?} in {damaged:?}, \
                                 but {violation}"
                            )
                        });
                    Verdict::Intact
                }
                Err(e) => {
                    let named = named_file(&e).unwrap_or_else(|| {
                        panic!("seed {seed}: a refusal that names no damage: {e}")
                    });
                    assert_eq!(
                        Some(&named),
                        damaged.as_ref().map(|(file, _)| file),
                        "seed {seed}: the refusal names another file than the damaged one: {e}"
                    );
                    Verdict::Refused(named)
                }
            }
        })
        .await;
        assert!(
            acked.lock().unwrap().len() > 100,
            "seed {seed}: the workload made progress"
        );
        Outcome {
            damage,
            damaged,
            verdict,
            trace_hash: cluster.trace().hash(),
        }
    })
}

#[test]
fn damage_at_rest_is_refused_by_name_or_touches_nothing_acknowledged() {
    let plan = SeedPlan::from_env(24).with_fresh("journal_damage", 100);
    let outcomes = run_seeds("journal_damage", &plan, scenario);
    let refused = outcomes
        .iter()
        .filter(|o| matches!(o.verdict, Verdict::Refused(_)))
        .count();
    println!(
        "journal damage: {refused} of {} seeds refused by name",
        outcomes.len()
    );
    assert!(
        refused > 0 && refused < outcomes.len(),
        "both outcomes occur over the seeds ({refused} of {} refused): {outcomes:?}",
        outcomes.len()
    );
    // Each kind of damage hit acknowledged data in some seed and was
    // refused by name (a kind never refused would be a kind never tested).
    for damage in [
        Damage::BitFlip,
        Damage::Write(WriteFault::Lost),
        Damage::Write(WriteFault::Misdirected),
    ] {
        assert!(
            outcomes
                .iter()
                .any(|o| o.damage == damage && matches!(o.verdict, Verdict::Refused(_))),
            "{damage:?} was never refused: {outcomes:?}"
        );
    }
    assert_deterministic(3, scenario);
}
