//! Reading streams back from the segments, in large reads that skip
//! other streams' frames: one stream ([`FileJournal::replay_stream`]) or
//! many in one pass over the log ([`FileJournal::replay_streams`]).

use super::*;

/// A frame to hand back: where it is, whose it is and what it must hold.
struct Wanted {
    location: Location,
    /// Index into the replay's list of streams.
    stream: usize,
    seq: u64,
}

impl<D: Disk> FileJournal<D> {
    pub(super) async fn replay_stream<F>(
        &self,
        stream: &str,
        from_seq: u64,
        mut visit: F,
    ) -> Result<u64, JournalError>
    where
        F: FnMut(u64, &[u8]) + Send,
    {
        self.replay_streams(&[(stream, from_seq)], |_, seq, data| visit(seq, data))
            .await
    }

    /// Hands the durable entries of each `(stream, from_seq)` to `visit`,
    /// reading the log once for all of them: frames come in log order, so
    /// each stream's entries come in sequence order, interleaved with the
    /// others'. A log of interleaved streams replayed stream by stream
    /// reads the whole log once per stream; this reads it once.
    pub(super) async fn replay_streams<F>(
        &self,
        streams: &[(&str, u64)],
        mut visit: F,
    ) -> Result<u64, JournalError>
    where
        F: FnMut(&str, u64, &[u8]) + Send,
    {
        for (stream, _) in streams {
            validate_stream(stream)?;
        }
        let (wanted, files) = {
            let state = self.state();
            let mut wanted = Vec::new();
            for (index, &(stream, from_seq)) in streams.iter().enumerate() {
                wanted_of_stream(&state, stream, from_seq, index, &mut wanted)?;
            }
            // Log order: segment, then offset. Within one stream this is
            // sequence order (a stream's records are appended in order).
            wanted.sort_unstable_by_key(|w| (w.location.segment_id, w.location.offset));
            let mut files = BTreeMap::new();
            for w in &wanted {
                let segment_id = w.location.segment_id;
                files
                    .entry(segment_id)
                    .or_insert_with(|| state.segments[&segment_id].file.clone());
            }
            (wanted, files)
        };
        let mut next = 0;
        while next < wanted.len() {
            // Coalesce frames that sit close together in one segment into
            // one read: frames in between that were not asked for are read
            // and skipped, which costs far less than a read each.
            let start = wanted[next].location;
            let file = &files[&start.segment_id];
            let mut end = next + 1;
            let mut span = u64::from(start.len);
            while end < wanted.len() {
                let l = &wanted[end].location;
                let near = l.segment_id == start.segment_id
                    && l.offset >= start.offset + span
                    && l.offset - (start.offset + span) <= REPLAY_GAP_BYTES_MAX;
                if !near {
                    break;
                }
                let reach = l.offset + u64::from(l.len) - start.offset;
                if reach > READ_CHUNK_BYTES as u64 {
                    break;
                }
                span = reach;
                end += 1;
            }
            let bytes = file.read_at(start.offset, span as usize).await?;
            for w in &wanted[next..end] {
                let location = &w.location;
                let stream = streams[w.stream].0;
                let at = ((location.offset - start.offset) as usize).min(bytes.len());
                let damaged = |reason: &str| JournalError::Corrupt {
                    segment: location.segment_id,
                    offset: location.offset,
                    reason: format!("on replay: {reason}"),
                };
                let (_, record, len) =
                    decode_frame(&bytes[at..]).map_err(|e| damaged(&format!("{e:?}")))?;
                if record.stream != stream || record.seq != w.seq || len != location.len as usize {
                    return Err(damaged("frame differs from the one recovered"));
                }
                visit(stream, record.seq, record.data);
            }
            next = end;
        }
        Ok(wanted.len() as u64)
    }
}

/// Adds the frames of `stream` from `from_seq` on to `wanted`, or says
/// that the entries asked for were compacted away.
fn wanted_of_stream<F>(
    state: &State<F>,
    stream: &str,
    from_seq: u64,
    index_in_replay: usize,
    wanted: &mut Vec<Wanted>,
) -> Result<(), JournalError> {
    let checkpoint = state.checkpoints.get(stream).copied().unwrap_or(0);
    let Some(index) = state.streams.get(stream) else {
        if from_seq <= checkpoint {
            return Err(JournalError::Truncated {
                stream: stream.to_string(),
                requested: from_seq,
                first_available: checkpoint + 1,
            });
        }
        return Ok(());
    };
    if from_seq < index.first_seq && index.first_seq > 1 {
        return Err(JournalError::Truncated {
            stream: stream.to_string(),
            requested: from_seq,
            first_available: index.first_seq,
        });
    }
    let first_seq = from_seq.max(index.first_seq);
    let skip = (first_seq - index.first_seq) as usize;
    let locations = index.locations.iter().skip(skip).copied();
    wanted.extend(locations.zip(first_seq..).map(|(location, seq)| Wanted {
        location,
        stream: index_in_replay,
        seq,
    }));
    Ok(())
}
