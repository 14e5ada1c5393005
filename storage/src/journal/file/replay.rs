//! Reading one stream back from the segments, in large reads that skip
//! other streams' frames.

use super::*;

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
        validate_stream(stream)?;
        let (first_seq, wanted, files) = {
            let state = self.state();
            let checkpoint = state.checkpoints.get(stream).copied().unwrap_or(0);
            let Some(index) = state.streams.get(stream) else {
                if from_seq <= checkpoint {
                    return Err(JournalError::Truncated {
                        stream: stream.to_string(),
                        requested: from_seq,
                        first_available: checkpoint + 1,
                    });
                }
                return Ok(0);
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
            let wanted: Vec<Location> = index.locations.iter().skip(skip).copied().collect();
            let mut files = BTreeMap::new();
            for location in &wanted {
                files
                    .entry(location.segment_id)
                    .or_insert_with(|| state.segments[&location.segment_id].file.clone());
            }
            (first_seq, wanted, files)
        };
        let mut count = 0u64;
        let mut next = 0;
        while next < wanted.len() {
            // Coalesce the stream's frames that sit close together in one
            // segment into one read: other streams' frames in between are
            // read and skipped, which costs far less than a read each.
            let start = &wanted[next];
            let file = &files[&start.segment_id];
            let mut end = next + 1;
            let mut span = u64::from(start.len);
            while end < wanted.len() {
                let l = &wanted[end];
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
            for location in &wanted[next..end] {
                let at = ((location.offset - start.offset) as usize).min(bytes.len());
                let expected_seq = first_seq + count;
                let damaged = |reason: &str| JournalError::Corrupt {
                    segment: location.segment_id,
                    offset: location.offset,
                    reason: format!("on replay: {reason}"),
                };
                let (_, record, len) =
                    decode_frame(&bytes[at..]).map_err(|e| damaged(&format!("{e:?}")))?;
                if record.stream != stream
                    || record.seq != expected_seq
                    || len != location.len as usize
                {
                    return Err(damaged("frame differs from the one recovered"));
                }
                visit(record.seq, record.data);
                count += 1;
            }
            next = end;
        }
        Ok(count)
    }
}
