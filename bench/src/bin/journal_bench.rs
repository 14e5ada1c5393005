//! Journal benchmark: 256-byte records on one disk, in one run, against the
//! device's floor (a raw `write_all` + `fdatasync` loop) and SQLite in WAL
//! mode with `synchronous=FULL`.
//!
//! ```text
//! cargo run --release -p plexspaces-bench --bin journal_bench [-- --quick]
//! ```
//!
//! Files go under `target/bench-journal` (the repository's disk).

// A benchmark measures real time on real files, and the baselines bypass
// the seams on purpose: they are the floor the journal is compared with.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![allow(missing_docs)]

use plexspaces_storage::disk::FsDisk;
use plexspaces_storage::journal::{FileJournal, Journal, JournalConfig};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const RECORD_BYTES: usize = 256;

struct Outcome {
    label: String,
    ops: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Outcome {
    fn per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        sorted[((sorted.len() - 1) as f64 * p).round() as usize]
    }

    fn print(&self, floor: f64) {
        println!(
            "| {:<44} | {:>10.0} | {:>8.1} | {:>8.1} | {:>7.2}x |",
            self.label,
            self.per_sec(),
            self.percentile(0.50).as_secs_f64() * 1e6,
            self.percentile(0.99).as_secs_f64() * 1e6,
            self.per_sec() / floor
        );
    }
}

fn fresh_dir(root: &Path, name: &str) -> PathBuf {
    let dir = root.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The device's floor: one writer, `write_all` then `fdatasync`, per record.
fn raw_floor(root: &Path, ops: usize) -> Outcome {
    let dir = fresh_dir(root, "raw");
    let mut file = std::fs::File::create(dir.join("raw.log")).unwrap();
    let record = [7u8; RECORD_BYTES];
    let mut latencies = Vec::with_capacity(ops);
    let start = Instant::now();
    for _ in 0..ops {
        let t = Instant::now();
        file.write_all(&record).unwrap();
        file.sync_data().unwrap();
        latencies.push(t.elapsed());
    }
    Outcome {
        label: "floor: raw write_all + fdatasync, 1 writer".into(),
        ops,
        elapsed: start.elapsed(),
        latencies,
    }
}

/// SQLite, WAL mode, synchronous=FULL: one committed insert per record.
fn sqlite(root: &Path, ops: usize) -> Outcome {
    let dir = fresh_dir(root, "sqlite");
    let db = rusqlite::Connection::open(dir.join("bench.db")).unwrap();
    db.pragma_update(None, "journal_mode", "WAL").unwrap();
    db.pragma_update(None, "synchronous", "FULL").unwrap();
    db.execute("CREATE TABLE log (stream TEXT NOT NULL, seq INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (stream, seq))", [])
        .unwrap();
    let record = vec![7u8; RECORD_BYTES];
    let mut insert = db
        .prepare("INSERT INTO log (stream, seq, data) VALUES (?1, ?2, ?3)")
        .unwrap();
    let mut latencies = Vec::with_capacity(ops);
    let start = Instant::now();
    for seq in 0..ops {
        let t = Instant::now();
        insert
            .execute(rusqlite::params!["bench", seq as i64, &record])
            .unwrap();
        latencies.push(t.elapsed());
    }
    Outcome {
        label: "peer: SQLite WAL synchronous=FULL, 1 writer".into(),
        ops,
        elapsed: start.elapsed(),
        latencies,
    }
}

/// `appenders` tasks append `ops` records in all, each waiting for its ack.
async fn journal_appends(
    root: &Path,
    label: &str,
    config: JournalConfig,
    appenders: usize,
    ops: usize,
) -> Outcome {
    let dir = fresh_dir(root, &label.replace([' ', ',', '='], "_"));
    let disk = FsDisk::open_dir(&dir).await.unwrap();
    let journal = Arc::new(FileJournal::open(disk, config, 1).await.unwrap());
    let per_task = ops / appenders;
    let start = Instant::now();
    let tasks: Vec<_> = (0..appenders)
        .map(|task| {
            let journal = journal.clone();
            tokio::spawn(async move {
                let stream = format!("actor-{task}@bench");
                let record = [task as u8; RECORD_BYTES];
                let mut latencies = Vec::with_capacity(per_task);
                for _ in 0..per_task {
                    let t = Instant::now();
                    journal.append(&stream, &record).await.unwrap();
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(ops);
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    Outcome {
        label: label.to_string(),
        ops: per_task * appenders,
        elapsed: start.elapsed(),
        latencies,
    }
}

/// Writes `records` records (in big group commits), then times recovery
/// (open) and a full replay.
async fn replay(
    root: &Path,
    records: usize,
    streams: usize,
) -> (Duration, Duration, Duration, Duration, usize) {
    let dir = fresh_dir(root, "replay");
    {
        let disk = FsDisk::open_dir(&dir).await.unwrap();
        let journal = Arc::new(
            FileJournal::open(disk, JournalConfig::default(), 1)
                .await
                .unwrap(),
        );
        let writers = 200;
        let tasks: Vec<_> = (0..writers)
            .map(|w| {
                let journal = journal.clone();
                tokio::spawn(async move {
                    let record = [w as u8; RECORD_BYTES];
                    for i in 0..records / writers {
                        let stream = format!("actor-{}@bench", (w + i * writers) % streams);
                        journal.append(&stream, &record).await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    }
    let disk = FsDisk::open_dir(&dir).await.unwrap();
    let start = Instant::now();
    let journal = FileJournal::open(disk, JournalConfig::default(), 1)
        .await
        .unwrap();
    let recovery = start.elapsed();
    let start = Instant::now();
    let mut replayed = 0;
    for s in 0..streams {
        let stream = format!("actor-{s}@bench");
        replayed += journal.replay_each(&stream, 1, |_, _| ()).await.unwrap() as usize;
    }
    let replay_each = start.elapsed();
    let names: Vec<String> = (0..streams).map(|s| format!("actor-{s}@bench")).collect();
    let asked: Vec<(&str, u64)> = names.iter().map(|s| (s.as_str(), 1)).collect();
    let start = Instant::now();
    let one_pass = journal
        .replay_streams_each(&asked, |_, _, _| ())
        .await
        .unwrap();
    let one_pass_time = start.elapsed();
    assert_eq!(one_pass as usize, replayed);
    let start = Instant::now();
    for s in 0..streams {
        let stream = format!("actor-{s}@bench");
        assert_eq!(
            journal.replay_from(&stream, 1).await.unwrap().len(),
            records / streams
        );
    }
    (
        recovery,
        replay_each,
        one_pass_time,
        start.elapsed(),
        replayed,
    )
}

/// The append cases: floor, SQLite, and the journal with and without group commit.
fn appends(runtime: &tokio::runtime::Runtime, root: &Path, scale: usize) {
    println!("| case | appends/s | p50 µs | p99 µs | vs floor |");
    println!("|---|---:|---:|---:|---:|");
    let floor = raw_floor(root, 4000 / scale);
    let floor_rate = floor.per_sec();
    floor.print(floor_rate);
    let sqlite = sqlite(root, 4000 / scale);
    sqlite.print(floor_rate);

    let mut fsync_each = JournalConfig::default();
    fsync_each.batch_records_max = 1;
    let group = JournalConfig::default();
    let cases = [
        (
            "journal, fsync per append, 1 appender",
            fsync_each.clone(),
            1,
            4000,
        ),
        (
            "journal, fsync per append, 64 appenders",
            fsync_each,
            64,
            6400,
        ),
        ("journal, group commit, 1 appender", group.clone(), 1, 4000),
        (
            "journal, group commit, 8 appenders",
            group.clone(),
            8,
            16_000,
        ),
        ("journal, group commit, 64 appenders", group, 64, 128_000),
    ];
    let mut results = Vec::new();
    for (label, config, appenders, ops) in cases {
        let outcome =
            runtime.block_on(journal_appends(root, label, config, appenders, ops / scale));
        outcome.print(floor_rate);
        results.push(outcome);
    }
    let fsync_per_append_64 = results[1].per_sec();
    let group_64 = results[4].per_sec();
    println!();
    println!(
        "group commit (64) / fsync per append (64): {:.1}x",
        group_64 / fsync_per_append_64
    );
    println!(
        "group commit (64) / SQLite:                {:.1}x",
        group_64 / sqlite.per_sec()
    );
}

/// The single appender against the floor, alternated round by round so
/// both see the same disk weather (fsync latency on a shared VM drifts by
/// tens of percent over a minute); the median round's ratio is the figure.
fn single_appender_rounds(runtime: &tokio::runtime::Runtime, root: &Path, scale: usize) {
    const ROUNDS: usize = 7;
    let ops = 2000 / scale;
    println!("| round | floor appends/s | journal appends/s (group commit, 1 appender) | ratio |");
    println!("|---|---:|---:|---:|");
    let mut ratios = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        let floor = raw_floor(root, ops).per_sec();
        let journal = runtime
            .block_on(journal_appends(
                root,
                "journal single appender round",
                JournalConfig::default(),
                1,
                ops,
            ))
            .per_sec();
        ratios.push(journal / floor);
        println!(
            "| {round} | {floor:.0} | {journal:.0} | {:.2}x |",
            journal / floor
        );
    }
    ratios.sort_by(f64::total_cmp);
    println!();
    println!(
        "single appender vs floor, median of {ROUNDS} alternated rounds: {:.2}x",
        ratios[ROUNDS / 2]
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let replay_only = std::env::args().any(|a| a == "--replay-only");
    let scale = if quick { 10 } else { 1 };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-journal");
    std::fs::create_dir_all(&root).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    println!(
        "journal benchmark: {RECORD_BYTES}-byte records, files under {}",
        root.display()
    );
    println!();
    let rounds_only = std::env::args().any(|a| a == "--rounds-only");
    if rounds_only {
        single_appender_rounds(&runtime, &root, scale);
        return;
    }
    if !replay_only {
        appends(&runtime, &root, scale);
        println!();
        single_appender_rounds(&runtime, &root, scale);
    }
    let records = 1_000_000 / scale;
    println!();
    println!(
        "| replay case | recovery (open) | M rec/s | replay_each, stream by stream | M rec/s | replay_streams_each, one pass | M rec/s | replay_from (owned Vecs) | M rec/s |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let stream_counts: Vec<usize> = match std::env::var("JOURNAL_BENCH_STREAMS") {
        Ok(list) => list
            .split(',')
            .map(|s| s.trim().parse().expect("a stream count"))
            .collect(),
        Err(_) => vec![1, 100],
    };
    for streams in stream_counts {
        let (recovery, each, one_pass, owned, replayed) =
            runtime.block_on(replay(&root, records, streams));
        assert_eq!(replayed, records);
        let rate = |d: Duration| records as f64 / d.as_secs_f64() / 1e6;
        println!(
            "| {records} records in {streams} stream(s) | {:.3} s | {:.2} | {:.3} s | {:.2} | {:.3} s | {:.2} | {:.3} s | {:.2} |",
            recovery.as_secs_f64(),
            rate(recovery),
            each.as_secs_f64(),
            rate(each),
            one_pass.as_secs_f64(),
            rate(one_pass),
            owned.as_secs_f64(),
            rate(owned)
        );
    }
    let _ = std::fs::remove_dir_all(&root);
}
