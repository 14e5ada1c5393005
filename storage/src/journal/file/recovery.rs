//! Opening a journal: every segment scanned, seals and the marker checked,
//! checkpoints checked against the log; repairs (a torn tail cut, a
//! missing seal written) applied only once everything checked out.

use super::*;

impl<D: Disk> FileJournal<D> {
    /// Opens the journal in `disk`, recovering it, or creates a new one
    /// (with id `new_journal_id`, which should be random) if `disk` holds none.
    pub async fn open(
        disk: D,
        config: JournalConfig,
        new_journal_id: u64,
    ) -> Result<Self, JournalError> {
        let names = disk.list().await?;
        let mut removed_any = false;
        for tmp in names.iter().filter(|n| n.ends_with(".tmp")) {
            disk.remove(tmp).await?; // a checkpoint save cut short
            removed_any = true;
        }
        let mut segment_ids: Vec<u64> =
            names.iter().filter_map(|n| parse_segment_name(n)).collect();
        segment_ids.sort_unstable();

        // A last segment with no complete header was being created when the
        // node crashed; it never held a frame (frames follow the header's sync).
        if let Some(&last) = segment_ids.last() {
            let file = disk.open(&segment_name(last)).await?;
            let size = file.size().await?;
            let head = file.read_at(0, SEGMENT_HEADER_BYTES).await?;
            if size <= SEGMENT_HEADER_BYTES as u64 && SegmentHeader::decode(&head).is_err() {
                disk.remove(&segment_name(last)).await?;
                removed_any = true;
                segment_ids.pop();
            }
        }
        if removed_any {
            disk.sync_dir().await?;
        }

        let journal_id = match segment_ids.first() {
            None => new_journal_id,
            Some(&first) => {
                let file = disk.open(&segment_name(first)).await?;
                let head = file.read_at(0, SEGMENT_HEADER_BYTES).await?;
                SegmentHeader::decode(&head)
                    .map_err(|e| JournalError::Corrupt {
                        segment: first,
                        offset: 0,
                        reason: format!("segment header: {e:?}"),
                    })?
                    .journal_id
            }
        };
        let has_marker = names.iter().any(|n| n == MARKER_NAME);
        if segment_ids.is_empty() && has_marker {
            // The marker is written only after the first segment was
            // durably created, and compaction always keeps one segment.
            return Err(JournalError::SegmentsMissing {
                marker: MARKER_NAME.to_string(),
            });
        }
        let checkpoints = load_checkpoints(&disk, &names, journal_id).await?;
        if segment_ids.is_empty() && !checkpoints.is_empty() {
            return Err(JournalError::CorruptCheckpoint {
                file: checkpoint_name(
                    checkpoints
                        .keys()
                        .next()
                        .expect("checked non-empty in this condition"),
                ),
                reason: "checkpoints exist but no segment does".to_string(),
            });
        }

        let mut state = State {
            stopped: None,
            writer_busy: false,
            epoch: 0,
            wakers: Vec::new(),
            next_lsn: 1,
            durable_lsn: 0,
            pending: VecDeque::new(),
            in_flight: None,
            next_seq: BTreeMap::new(),
            streams: BTreeMap::new(),
            segments: BTreeMap::new(),
            checkpoints: checkpoints
                .iter()
                .map(|(s, c)| (s.clone(), c.checkpoint.seq))
                .collect(),
        };
        // A last segment holding only its header may come from a roll the
        // crash cut before its predecessor's seal was durable.
        let last_is_empty = match segment_ids.last() {
            Some(&last) => {
                disk.open(&segment_name(last)).await?.size().await? <= SEGMENT_HEADER_BYTES as u64
            }
            None => false,
        };
        let mut repairs = Vec::new();
        for (position, &id) in segment_ids.iter().enumerate() {
            let successor = segment_ids.get(position + 1).map(|&next| Successor {
                id: next,
                empty_and_last: position + 2 == segment_ids.len() && last_is_empty,
            });
            // A repair with nothing to do does nothing when applied.
            repairs.push(recover_segment(&disk, &mut state, journal_id, id, successor).await?);
        }
        check_checkpoints_against_log(&state, &checkpoints)?;
        for repair in repairs {
            let segment = state
                .segments
                .get_mut(&repair.segment)
                .expect("a repaired segment was recovered");
            repair.apply(segment).await?;
        }
        let inner = Inner {
            disk,
            config,
            journal_id,
            state: Mutex::new(state),
            checkpoint_io: futures::lock::Mutex::new(()),
            observer: std::sync::OnceLock::new(),
        };
        let journal = FileJournal {
            inner: Arc::new(inner),
        };
        if segment_ids.is_empty() {
            let _writer = journal.writer_slot().await;
            journal.roll().await?;
        }
        if !has_marker {
            // After the first segment is durable (a new journal), or for a
            // journal written before markers existed.
            write_marker(&journal.inner.disk, journal_id).await?;
        }
        Ok(journal)
    }
}

pub(super) async fn load_checkpoints<D: Disk>(
    disk: &D,
    names: &[String],
    journal_id: u64,
) -> Result<BTreeMap<String, CheckpointFile>, JournalError> {
    let mut checkpoints = BTreeMap::new();
    for name in names {
        // Not a name this journal writes, or a save cut short (`.tmp`,
        // never a valid name, removed by `open`): leave it alone.
        let Some(stream) = parse_checkpoint_name(name) else {
            continue;
        };
        let bytes = read_all(&disk.open(name).await?).await?;
        let checkpoint = decode_checkpoint_file(journal_id, &bytes).map_err(|e| {
            JournalError::CorruptCheckpoint {
                file: name.clone(),
                reason: format!("{e:?}"),
            }
        })?;
        if checkpoint.checkpoint.stream != stream {
            return Err(JournalError::CorruptCheckpoint {
                file: name.clone(),
                reason: format!("holds stream {:?}", checkpoint.checkpoint.stream),
            });
        }
        checkpoints.insert(stream, checkpoint);
    }
    Ok(checkpoints)
}

/// The segment after the one being recovered.
#[derive(Clone, Copy)]
pub(super) struct Successor {
    pub(super) id: u64,
    /// It is the last segment and holds only its header: a roll may have
    /// been cut between creating it and sealing its predecessor.
    pub(super) empty_and_last: bool,
}

/// Scans one segment into `state`: cuts a torn tail off the last one (or
/// off the one before an empty last one, whose roll a crash cut short),
/// refuses a seal naming a segment that is not there, and seals a segment
/// that has a successor but no seal (written before seals existed, or
/// rolled by a crash-cut roll).
pub(super) async fn recover_segment<D: Disk>(
    disk: &D,
    state: &mut State<D::File>,
    journal_id: u64,
    id: u64,
    successor: Option<Successor>,
) -> Result<Repair, JournalError> {
    let corrupt = |offset: u64, reason: String| JournalError::Corrupt {
        segment: id,
        offset,
        reason,
    };
    let file = disk.open(&segment_name(id)).await?;
    let bytes = read_all(&file).await?;
    // Whose segment is it? Checked before anything else about it.
    if let Ok(header) = SegmentHeader::decode(&bytes)
        && header.journal_id != journal_id
    {
        return Err(JournalError::ForeignSegment {
            segment: id,
            expected: journal_id,
            found: header.journal_id,
        });
    }
    if !state.segments.is_empty()
        && let Ok(header) = SegmentHeader::decode(&bytes)
        && header.first_lsn != state.next_lsn
    {
        return Err(corrupt(
            0,
            format!(
                "segment starts at lsn {}, expected {}",
                header.first_lsn, state.next_lsn
            ),
        ));
    }
    let mut max_seq: BTreeMap<String, u64> = BTreeMap::new();
    let streams = &mut state.streams;
    let checkpoints = &state.checkpoints;
    let scan = scan_segment_with(&bytes, id, |frame| {
        let stream = frame.record.stream;
        let seq = frame.record.seq;
        let location = Location {
            segment_id: id,
            offset: frame.offset,
            len: frame.len,
        };
        match streams.get_mut(stream) {
            Some(index) => {
                if seq != index.last_seq() + 1 {
                    return Err(format!("stream {stream:?} jumps to seq {seq}"));
                }
                index.locations.push_back(location);
            }
            None => {
                // Entries before the first one held must have been
                // compacted under a checkpoint.
                let floor = checkpoints.get(stream).copied().unwrap_or(0);
                if seq == 0 || seq > floor + 1 {
                    return Err(format!("stream {stream:?} starts at seq {seq}"));
                }
                let mut locations = VecDeque::new();
                locations.push_back(location);
                streams.insert(
                    stream.to_string(),
                    StreamIndex {
                        first_seq: seq,
                        locations,
                    },
                );
            }
        }
        match max_seq.get_mut(stream) {
            Some(max) => *max = seq,
            None => {
                max_seq.insert(stream.to_string(), seq);
            }
        }
        Ok(())
    })
    .map_err(|e| match e {
        ScanError::BadHeader(h) => corrupt(0, format!("segment header: {h:?}")),
        ScanError::WrongSegment { found } => corrupt(0, format!("header names segment {found}")),
        ScanError::Corrupt { offset, reason } => corrupt(offset, reason),
    })?;
    let segment = Segment {
        file: Arc::new(file),
        size: bytes.len() as u64,
        max_seq,
    };
    state.next_lsn = scan.next_lsn;
    state.durable_lsn = state.next_lsn - 1;
    let missing = |named: u64| JournalError::MissingSegment {
        file: segment_name(named),
        named_by: segment_name(id),
    };
    let cut_at = match (scan.end, successor) {
        (ScanEnd::Clean, None) => None,
        (ScanEnd::TornTail { offset }, None) => Some(offset),
        // Sealed only once its successor was durable: the successor is lost.
        (ScanEnd::Sealed { successor: named }, None) => return Err(missing(named)),
        (ScanEnd::Sealed { successor: named }, Some(next)) => match named.cmp(&next.id) {
            std::cmp::Ordering::Equal => None,
            std::cmp::Ordering::Less => return Err(missing(named)),
            std::cmp::Ordering::Greater => {
                return Err(corrupt(
                    segment.size,
                    format!(
                        "sealed naming segment {named}, but segment {} follows",
                        next.id
                    ),
                ));
            }
        },
        (ScanEnd::Clean, Some(_)) => None,
        (ScanEnd::TornTail { offset }, Some(next)) if next.empty_and_last => Some(offset),
        // Later segments exist only once everything here was synced.
        (ScanEnd::TornTail { offset }, Some(_)) => {
            return Err(corrupt(
                offset,
                "bad frame before a later segment".to_string(),
            ));
        }
    };
    let sealed = matches!(scan.end, ScanEnd::Sealed { .. });
    let repair = Repair {
        segment: id,
        cut_at,
        seal: match (successor, sealed) {
            (Some(next), false) => Some((state.durable_lsn, next.id)),
            _ => None,
        },
    };
    state.segments.insert(id, segment);
    Ok(repair)
}

/// What recovery changes in a segment, once every segment and checkpoint
/// checked out (an open that fails changes nothing).
pub(super) struct Repair {
    pub(super) segment: u64,
    /// Cut the torn tail here.
    pub(super) cut_at: Option<u64>,
    /// Write the seal: the segment's last lsn and its successor.
    pub(super) seal: Option<(u64, u64)>,
}

impl Repair {
    pub(super) async fn apply<F: DiskFile>(
        &self,
        segment: &mut Segment<F>,
    ) -> Result<(), JournalError> {
        if let Some(offset) = self.cut_at {
            segment.file.set_len(offset).await?;
            segment.file.sync_data().await?;
            segment.size = offset;
        }
        if let Some((last_lsn, successor)) = self.seal {
            let mut seal = Vec::new();
            encode_seal(&mut seal, self.segment, last_lsn, successor);
            segment.file.write_at_and_sync(segment.size, &seal).await?;
            segment.size += seal.len() as u64;
            assert_eq!(
                segment.file.size().await?,
                segment.size,
                "a sealed segment ends with its seal"
            );
        }
        Ok(())
    }
}

/// Refuses a log that lost records a checkpoint proves were durable: every
/// checkpoint records how far the log reached when it was saved (format
/// 2), and a stream's checkpoint never passes its last entry.
pub(super) fn check_checkpoints_against_log<F>(
    state: &State<F>,
    checkpoints: &BTreeMap<String, CheckpointFile>,
) -> Result<(), JournalError> {
    let log_end_lsn = state.next_lsn - 1;
    for (stream, file) in checkpoints {
        let lost = |checkpoint_lsn: u64| JournalError::LostTail {
            checkpoint: checkpoint_name(stream),
            checkpoint_lsn,
            log_end_lsn,
        };
        if let Some(lsn) = file.log_lsn
            && lsn > log_end_lsn
        {
            return Err(lost(lsn));
        }
        if let Some(index) = state.streams.get(stream)
            && index.last_seq() < file.checkpoint.seq
        {
            return Err(lost(file.log_lsn.unwrap_or(0)));
        }
    }
    Ok(())
}

/// Writes the journal's marker: from now on, a directory with the marker
/// and no segment has lost its log.
/// Called only when open's listing had no marker; a marker created since
/// means another opener is at work on the directory, and its
/// `AlreadyExists` is the error.
pub(super) async fn write_marker<D: Disk>(disk: &D, journal_id: u64) -> Result<(), JournalError> {
    let file = disk.create(MARKER_NAME).await?;
    file.write_at_and_sync(0, &encode_marker(journal_id))
        .await?;
    disk.sync_dir().await?;
    Ok(())
}
