//! `plexspaces journal verify` and `dump`: an embedded journal's directory
//! read offline, frame by frame, without opening (and so without
//! repairing) it.
//!
//! `verify` checks what recovery checks and says where: every segment's
//! header and every frame's checksum and sequence, damage to acknowledged
//! data (by segment and byte offset), a torn tail anywhere but the last
//! segment, gaps between segments, a seal naming a missing segment, a
//! marker without a log, checkpoints that do not decode.

use plexspaces::durability::{EntryDescription, describe_entry};
use plexspaces::storage::disk::{Disk, DiskFile, FsDisk};
use plexspaces::storage::journal::marker::{MARKER_NAME, decode_marker};
use plexspaces::storage::journal::scan::{ScanEnd, ScanError, scan_segment_with};
use plexspaces::storage::journal::{checkpoint, checkpoint_stream_of, segment_id_of};
use serde::Serialize;
use std::path::Path;

/// One segment as `verify` found it.
#[derive(Clone, Debug, Serialize)]
pub struct SegmentReport {
    /// Its file name.
    pub file: String,
    /// Its id.
    pub segment: u64,
    /// Its size in bytes.
    pub bytes: u64,
    /// Good frames.
    pub frames: u64,
    /// The lsn of its first and last good frame (`None` if it has none).
    pub lsns: Option<(u64, u64)>,
    /// `clean`, `sealed`, `torn tail at N` or `unreadable`.
    pub end: String,
}

/// Something wrong with the journal.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Problem {
    /// The file it is in.
    pub file: String,
    /// The segment, if it is in one.
    pub segment: Option<u64>,
    /// The byte offset in the file, if known.
    pub offset: Option<u64>,
    /// What is wrong.
    pub message: String,
}

/// What `verify` found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct VerifyReport {
    /// The segments, in order.
    pub segments: Vec<SegmentReport>,
    /// Checkpoint files that decoded.
    pub checkpoints: u64,
    /// Every problem found; empty if the journal is sound.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// Whether nothing is wrong.
    pub fn sound(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Why a directory could not be read at all.
#[derive(Debug)]
pub struct ToolError(pub String);

impl std::fmt::Display for ToolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ToolError {}

struct Journal {
    disk: FsDisk,
    /// Segment ids and file names, in order.
    segments: Vec<(u64, String)>,
    checkpoints: Vec<String>,
    marker: bool,
}

/// The journal directory: `dir` itself, or its `journal` subdirectory
/// (a node's data directory) if `dir` holds no segment.
async fn open(dir: &Path) -> Result<Journal, ToolError> {
    let unreadable = |e: &dyn std::fmt::Display| ToolError(format!("{}: {e}", dir.display()));
    if !dir.is_dir() {
        return Err(ToolError(format!("{}: not a directory", dir.display())));
    }
    let mut disk = FsDisk::open_dir(dir).await.map_err(|e| unreadable(&e))?;
    let mut names = disk.list().await.map_err(|e| unreadable(&e))?;
    if !names.iter().any(|n| segment_id_of(n).is_some()) && dir.join("journal").is_dir() {
        disk = FsDisk::open_dir(dir.join("journal"))
            .await
            .map_err(|e| unreadable(&e))?;
        names = disk.list().await.map_err(|e| unreadable(&e))?;
    }
    let mut segments: Vec<(u64, String)> = names
        .iter()
        .filter_map(|n| segment_id_of(n).map(|id| (id, n.clone())))
        .collect();
    segments.sort();
    let mut checkpoints: Vec<String> = names
        .iter()
        .filter(|n| checkpoint_stream_of(n).is_some())
        .cloned()
        .collect();
    checkpoints.sort();
    let marker = names.iter().any(|n| n == MARKER_NAME);
    if segments.is_empty() && !marker {
        return Err(ToolError(format!(
            "{}: no journal here (no segment, no {MARKER_NAME} marker)",
            dir.display()
        )));
    }
    Ok(Journal {
        disk,
        segments,
        checkpoints,
        marker,
    })
}

async fn read_file(disk: &FsDisk, name: &str) -> Result<Vec<u8>, String> {
    let file = disk.open(name).await.map_err(|e| e.to_string())?;
    let size = file.size().await.map_err(|e| e.to_string())?;
    let size = usize::try_from(size).map_err(|_| "larger than memory".to_string())?;
    file.read_at(0, size).await.map_err(|e| e.to_string())
}

/// Checks the journal in `dir`; `progress` hears (segments done, of all)
/// after each segment.
pub async fn verify(
    dir: &Path,
    mut progress: impl FnMut(usize, usize),
) -> Result<VerifyReport, ToolError> {
    let journal = open(dir).await?;
    let mut report = VerifyReport::default();
    let mut journal_id = None;
    if journal.marker {
        match read_file(&journal.disk, MARKER_NAME).await {
            Ok(bytes) => journal_id = decode_marker(&bytes),
            Err(e) => report.problems.push(problem(MARKER_NAME, None, None, e)),
        }
        if journal.segments.is_empty() {
            report.problems.push(problem(
                MARKER_NAME,
                None,
                None,
                "the marker says a log was here, and no segment is left: the log is lost",
            ));
        }
    }
    let count = journal.segments.len();
    let mut expected_first: Option<u64> = None;
    let mut named_successor: Option<(u64, String)> = None;
    for (index, (id, file)) in journal.segments.iter().enumerate() {
        if let Some((successor, sealed_in)) = named_successor.take()
            && successor != *id
        {
            report.problems.push(problem(
                sealed_in,
                None,
                None,
                format!("its seal names segment {successor}, which is missing"),
            ));
        }
        let last = index + 1 == count;
        let bytes = match read_file(&journal.disk, file).await {
            Ok(bytes) => bytes,
            Err(e) => {
                report.problems.push(problem(file, Some(*id), None, e));
                continue;
            }
        };
        let mut frames = 0u64;
        let mut lsns: Option<(u64, u64)> = None;
        let scanned = scan_segment_with(&bytes, *id, |frame| {
            frames += 1;
            let lsn = frame.header.lsn;
            lsns = Some(lsns.map_or((lsn, lsn), |(first, _)| (first, lsn)));
            Ok(())
        });
        let end = match scanned {
            Ok(summary) => {
                journal_id.get_or_insert(summary.header.journal_id);
                if let Some(expected) = expected_first
                    && summary.header.first_lsn != expected
                {
                    report.problems.push(problem(
                        file,
                        Some(*id),
                        Some(0),
                        format!(
                            "starts at lsn {} where the segment before ended at lsn {}: records are missing",
                            summary.header.first_lsn,
                            expected.saturating_sub(1)
                        ),
                    ));
                }
                expected_first = Some(summary.next_lsn);
                match summary.end {
                    ScanEnd::Clean => "clean".to_string(),
                    ScanEnd::Sealed { successor } => {
                        named_successor = Some((successor, file.clone()));
                        format!("sealed, next segment {successor}")
                    }
                    ScanEnd::TornTail { offset } => {
                        if !last {
                            report.problems.push(problem(
                                file,
                                Some(*id),
                                Some(offset),
                                "unreadable bytes at the end of a segment that is not the last",
                            ));
                        }
                        format!("torn tail at {offset} (never acknowledged; recovery cuts it)")
                    }
                }
            }
            Err(e) => {
                let (offset, message) = match e {
                    ScanError::Corrupt { offset, reason } => {
                        (offset, format!("acknowledged data is damaged: {reason}"))
                    }
                    ScanError::BadHeader(h) => (0, format!("the segment header is bad: {h:?}")),
                    ScanError::WrongSegment { found } => {
                        (0, format!("the header names segment {found}"))
                    }
                    other => (0, format!("{other:?}")),
                };
                report
                    .problems
                    .push(problem(file, Some(*id), Some(offset), message));
                expected_first = None;
                "unreadable".to_string()
            }
        };
        report.segments.push(SegmentReport {
            file: file.clone(),
            segment: *id,
            bytes: bytes.len() as u64,
            frames,
            lsns,
            end,
        });
        progress(index + 1, count);
    }
    if let Some((successor, sealed_in)) = named_successor {
        report.problems.push(problem(
            sealed_in,
            None,
            None,
            format!("its seal names segment {successor}, which is missing"),
        ));
    }
    for file in &journal.checkpoints {
        let decoded = match read_file(&journal.disk, file).await {
            Err(e) => Err(e),
            Ok(bytes) => match journal_id {
                None => Err("no segment or marker says whose journal this is".to_string()),
                Some(id) => {
                    checkpoint::decode_checkpoint_file(id, &bytes).map_err(|e| format!("{e:?}"))
                }
            },
        };
        match decoded {
            Ok(_) => report.checkpoints += 1,
            Err(e) => report.problems.push(problem(
                file,
                None,
                None,
                format!("checkpoint does not decode: {e}"),
            )),
        }
    }
    Ok(report)
}

fn problem(
    file: impl Into<String>,
    segment: Option<u64>,
    offset: Option<u64>,
    message: impl Into<String>,
) -> Problem {
    Problem {
        file: file.into(),
        segment,
        offset,
        message: message.into(),
    }
}

/// One record as `dump` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct DumpedRecord {
    /// Its segment.
    pub segment: u64,
    /// Its offset in the segment file.
    pub offset: u64,
    /// Its lsn (place in the whole log).
    pub lsn: u64,
    /// Its stream.
    pub stream: String,
    /// Its sequence number in the stream.
    pub seq: u64,
    /// Its size.
    pub bytes: usize,
    /// What a durable actor's entry says, if it is one.
    pub entry: Option<EntryDescription>,
}

/// The good records of the journal in `dir`, in log order, of `stream`
/// only if given, from sequence number `from` on; at most `limit`. Bad
/// segments are skipped (run `verify` to see why).
pub async fn dump(
    dir: &Path,
    stream: Option<&str>,
    from: u64,
    limit: usize,
) -> Result<Vec<DumpedRecord>, ToolError> {
    let journal = open(dir).await?;
    let mut out = Vec::new();
    for (id, file) in &journal.segments {
        let Ok(bytes) = read_file(&journal.disk, file).await else {
            continue;
        };
        let _ = scan_segment_with(&bytes, *id, |frame| {
            let record = &frame.record;
            if out.len() < limit && stream.is_none_or(|s| s == record.stream) && record.seq >= from
            {
                out.push(DumpedRecord {
                    segment: *id,
                    offset: frame.offset,
                    lsn: frame.header.lsn,
                    stream: record.stream.to_string(),
                    seq: record.seq,
                    bytes: record.data.len(),
                    entry: describe_entry(record.data),
                });
            }
            Ok(())
        });
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}
