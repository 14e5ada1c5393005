//! Segments: rolling to a new one when the active one is full, and
//! compaction of the old ones every checkpoint covers.

use super::*;

impl<D: Disk> FileJournal<D> {
    /// Starts a new segment: created, header written and synced, directory
    /// synced, and only then used. Caller holds the writer slot.
    pub(super) async fn roll(&self) -> Result<(), JournalError> {
        let (id, header, previous) = {
            let state = self.state();
            assert!(
                state.in_flight.is_none(),
                "a segment rolls only when no batch is in flight"
            );
            let id = state.segments.keys().next_back().map_or(1, |last| last + 1);
            let header = SegmentHeader {
                journal_id: self.inner.journal_id,
                segment_id: id,
                first_lsn: state.durable_lsn + 1,
                commit_lsn: state.durable_lsn,
            };
            let previous = state
                .segments
                .iter()
                .next_back()
                .map(|(&previous_id, segment)| (previous_id, segment.file.clone(), segment.size));
            (id, header, previous)
        };
        let name = segment_name(id);
        let created = async {
            // A writer cancelled mid-roll may have left the file behind.
            let file = match self.inner.disk.create(&name).await {
                Err(e) if e.kind() == DiskErrorKind::AlreadyExists => {
                    self.inner.disk.open(&name).await?
                }
                other => other?,
            };
            file.set_len(0).await?;
            file.write_at(0, &header.encode()).await?;
            file.sync_data().await?;
            #[cfg(feature = "planted-bugs")]
            if self.inner.config.planted_bug == Some(crate::journal::PlantedBug::SkipSegmentDirSync)
            {
                return Ok(file);
            }
            self.inner.disk.sync_dir().await?;
            Ok::<_, DiskError>(file)
        };
        match created.await {
            Ok(file) => {
                if let Some((previous_id, previous_file, previous_size)) = previous {
                    // The successor is durable: seal the previous segment,
                    // naming it, so its loss can never pass for a clean end.
                    let mut seal = Vec::new();
                    encode_seal(&mut seal, previous_id, header.commit_lsn, id);
                    if let Err(e) = previous_file.write_at_and_sync(previous_size, &seal).await {
                        // The new segment stays: it is durable and empty,
                        // and recovery reseals its predecessor.
                        return Err(self.fail_stop(e));
                    }
                    let sealed_size = previous_size + seal.len() as u64;
                    // The seal is the segment's last bytes, for good.
                    let on_disk = previous_file.size().await.map_err(|e| self.fail_stop(e))?;
                    assert_eq!(on_disk, sealed_size, "a sealed segment ends with its seal");
                    let mut state = self.state();
                    let sealed = state
                        .segments
                        .get_mut(&previous_id)
                        .expect("the previous segment is held while the writer slot is");
                    sealed.size = sealed_size;
                }
                self.state().segments.insert(
                    id,
                    Segment {
                        file: Arc::new(file),
                        size: SEGMENT_HEADER_BYTES as u64,
                        max_seq: BTreeMap::new(),
                    },
                );
                Ok(())
            }
            Err(e) => {
                // As for a failed batch: the new segment's header may be in
                // the page cache only; do not leave it for a reopen to trust.
                if self.inner.disk.remove(&name).await.is_ok() {
                    let _ = self.inner.disk.sync_dir().await;
                }
                Err(self.fail_stop(e))
            }
        }
    }

    /// Removes the oldest segments whose every entry is covered by a
    /// checkpoint. The active segment always stays. Returns how many went.
    pub async fn compact(&self) -> Result<usize, JournalError> {
        let _writer = self.writer_slot().await;
        let mut removed = 0;
        loop {
            let candidate = {
                let state = self.state();
                let active = *state.segments.keys().next_back().expect(ACTIVE_SEGMENT);
                let (&oldest, segment) = state.segments.iter().next().expect(ACTIVE_SEGMENT);
                let covered = segment
                    .max_seq
                    .iter()
                    .all(|(stream, max)| state.checkpoints.get(stream).is_some_and(|c| c >= max));
                (oldest != active && covered).then_some(oldest)
            };
            let Some(id) = candidate else {
                return Ok(removed);
            };
            self.inner.disk.remove(&segment_name(id)).await?;
            // One directory sync per removal: recovery must never see an
            // older segment come back while a newer one stays removed.
            self.inner.disk.sync_dir().await?;
            let mut state = self.state();
            let segment = state.segments.remove(&id).expect("the candidate was read from the table under the writer slot, which this task holds");
            for stream in segment.max_seq.keys() {
                let index = state
                    .streams
                    .get_mut(stream)
                    .expect("every stream with entries in a segment is indexed");
                while index.locations.front().is_some_and(|l| l.segment_id == id) {
                    index.locations.pop_front();
                    index.first_seq += 1;
                }
            }
            removed += 1;
        }
    }
}
