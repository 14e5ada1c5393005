//! Group commit: appenders wait for the writer slot or for someone else's
//! batch; one writer writes and syncs every pending record in one batch;
//! a failed write or sync stops the journal (fail-stop).

use super::*;

impl<D: Disk> FileJournal<D> {
    /// Waits for the writer slot (for rolling or compacting).
    pub(super) async fn writer_slot(&self) -> WriterSlot<'_, D> {
        loop {
            let seen = {
                let mut state = self.state();
                if !state.writer_busy {
                    state.writer_busy = true;
                    return WriterSlot { journal: self };
                }
                state.epoch
            };
            EpochChange {
                journal: self,
                seen,
            }
            .await;
        }
    }

    /// Waits until `lsn` is durable, writing and syncing batches whenever
    /// the writer slot is free.
    pub(super) async fn flush_until(&self, lsn: u64) -> Result<(), JournalError> {
        loop {
            let seen = {
                let mut state = self.state();
                if let Some(cause) = &state.stopped {
                    return Err(Self::stopped_error(cause));
                }
                if state.durable_lsn >= lsn {
                    return Ok(());
                }
                if state.writer_busy {
                    Some(state.epoch)
                } else {
                    state.writer_busy = true;
                    None
                }
            };
            match seen {
                Some(seen) => {
                    EpochChange {
                        journal: self,
                        seen,
                    }
                    .await
                }
                None => {
                    let _writer = WriterSlot { journal: self };
                    self.write_one_batch().await?;
                }
            }
        }
    }

    /// Writes and syncs one batch (the in-flight one, or a new one of
    /// pending records). Caller holds the writer slot.
    pub(super) async fn write_one_batch(&self) -> Result<(), JournalError> {
        let roll_needed = {
            let state = self.state();
            let active = state.segments.values().next_back().expect(ACTIVE_SEGMENT);
            state.in_flight.is_none() && active.size >= self.inner.config.segment_bytes_max
        };
        if roll_needed {
            self.roll().await?;
        }
        let (file, segment_id, offset, bytes, records) = {
            let mut state = self.state();
            if state.in_flight.is_none() {
                let batch = self.build_batch(&mut state);
                state.in_flight = Some(batch);
            }
            let batch = state
                .in_flight
                .as_ref()
                .expect("in_flight was set just above, under the same lock");
            let segment = &state.segments[&batch.segment_id];
            (
                segment.file.clone(),
                batch.segment_id,
                batch.offset,
                batch.bytes.clone(),
                batch.placed.len(),
            )
        };
        let observer = self.inner.observer.get();
        let started = observer.map(|o| o.starting());
        let written = self.write_and_sync_batch(&*file, offset, &bytes).await;
        if let (Some(observer), Some(started)) = (observer, started) {
            observer.committed(started, records, bytes.len(), written.is_ok());
        }
        if let Err(e) = written {
            // Fail-stop: the unsynced data may be gone whatever a retry
            // says (fsyncgate), so nothing pending is acknowledged. The
            // unsynced frames are also cut from the file, best effort: the
            // page cache may still show them after a failed sync, and a
            // reopen in this process must not take them for durable data.
            let _ = file.set_len(offset).await;
            let cause = Arc::new(e);
            let mut state = self.state();
            state.stopped = Some(cause.clone());
            state.in_flight = None;
            state.pending.clear();
            return Err(Self::stopped_error(&cause));
        }
        let mut state = self.state();
        let batch = state
            .in_flight
            .take()
            .expect("only the writer slot holder, this task, takes the batch in flight");
        assert_eq!(
            (batch.segment_id, batch.offset),
            (segment_id, offset),
            "the batch made durable is the one written"
        );
        apply_durable_batch(&mut state, batch);
        Ok(())
    }

    /// Writes a batch and makes it durable. (Planted bugs, for the
    /// simulator's own tests, break exactly this step.)
    pub(super) async fn write_and_sync_batch(
        &self,
        file: &D::File,
        offset: u64,
        bytes: &[u8],
    ) -> Result<(), DiskError> {
        #[cfg(feature = "planted-bugs")]
        match self.inner.config.planted_bug {
            Some(crate::journal::PlantedBug::AckBeforeSync) => {
                return file.write_at(offset, bytes).await;
            }
            Some(crate::journal::PlantedBug::IgnoreSyncError) => {
                file.write_at(offset, bytes).await?;
                let _ = file.sync_data().await;
                return Ok(());
            }
            _ => {}
        }
        file.write_at_and_sync(offset, bytes).await
    }

    /// Encodes pending records, up to the batch bounds, for the active segment.
    pub(super) fn build_batch(&self, state: &mut State<D::File>) -> Batch {
        let (&segment_id, segment) = state.segments.iter().next_back().expect(ACTIVE_SEGMENT);
        let offset = segment.size;
        let commit_lsn = state.durable_lsn;
        let mut bytes = Vec::new();
        let mut placed = Vec::new();
        let mut last_lsn = state.durable_lsn;
        while let Some(next) = state.pending.front() {
            // The bound is on the bytes written: whole frames, headers
            // included (a frame larger than the bound still goes, alone).
            let next_len = frame_len(&Record {
                stream: &next.stream,
                seq: next.seq,
                data: &next.data,
            });
            let full = placed.len() >= self.inner.config.batch_records_max
                || bytes.len() + next_len > self.inner.config.batch_bytes_max;
            if full && !placed.is_empty() {
                break;
            }
            let record = state
                .pending
                .pop_front()
                .expect("front() was Some just above, under the same lock");
            let start = bytes.len();
            let header = FrameHeader {
                segment_id,
                lsn: record.lsn,
                commit_lsn,
            };
            encode_frame(
                &mut bytes,
                header,
                &Record {
                    stream: &record.stream,
                    seq: record.seq,
                    data: &record.data,
                },
            );
            let location = Location {
                segment_id,
                offset: offset + start as u64,
                len: (bytes.len() - start) as u32,
            };
            // Established here: a batch's lsns follow the durable ones
            // without a gap, in the order appenders got them.
            assert_eq!(record.lsn, last_lsn + 1, "lsns are gap-free");
            last_lsn = record.lsn;
            placed.push((record.stream, record.seq, location));
        }
        // The batch bounds: a batch over either bound holds exactly one
        // record (a frame larger than the bound goes alone).
        let config = &self.inner.config;
        assert!(
            placed.len() <= config.batch_records_max.max(1),
            "a batch holds at most batch_records_max records"
        );
        assert!(
            bytes.len() <= config.batch_bytes_max || placed.len() == 1,
            "a batch over batch_bytes_max holds one frame"
        );
        Batch {
            segment_id,
            offset,
            bytes,
            last_lsn,
            placed,
        }
    }

    /// Stops the instance after a failed write or sync: nothing pending is
    /// acknowledged, now or later.
    pub(super) fn fail_stop(&self, e: DiskError) -> JournalError {
        let cause = Arc::new(e);
        let mut state = self.state();
        state.stopped = Some(cause.clone());
        state.pending.clear();
        Self::stopped_error(&cause)
    }
}

/// The writer slot, held; freeing it (also when the holder is cancelled)
/// wakes every waiter so one of them can take over.
pub(super) struct WriterSlot<'a, D: Disk> {
    pub(super) journal: &'a FileJournal<D>,
}

impl<D: Disk> Drop for WriterSlot<'_, D> {
    fn drop(&mut self) {
        let mut state = self.journal.state();
        state.writer_busy = false;
        bump_epoch(&mut state);
    }
}

/// Wakes every task waiting for the journal's state to move.
pub(super) fn bump_epoch<F>(state: &mut State<F>) {
    state.epoch += 1;
    for waker in state.wakers.drain(..) {
        waker.wake();
    }
}

/// Completes once the journal's epoch differs from `seen`.
pub(super) struct EpochChange<'a, D: Disk> {
    pub(super) journal: &'a FileJournal<D>,
    pub(super) seen: u64,
}

impl<D: Disk> Future for EpochChange<'_, D> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.journal.state();
        if state.epoch != self.seen {
            return Poll::Ready(());
        }
        if !state.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            state.wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// Makes a durable batch visible: index, segment bookkeeping, durable lsn.
pub(super) fn apply_durable_batch<F>(state: &mut State<F>, batch: Batch) {
    let segment = state.segments.get_mut(&batch.segment_id).expect(
        "a batch is written to a segment the table holds (compaction never removes the active one)",
    );
    // Relied on: a batch is written at the end of its segment (a rewrite
    // of a batch cut short writes the same bytes at the same offset), and
    // makes durable exactly the lsns after the durable ones.
    assert_eq!(
        batch.offset, segment.size,
        "a batch is written at the end of its segment"
    );
    assert!(
        batch.placed.is_empty() || batch.last_lsn > state.durable_lsn,
        "a batch makes new lsns durable"
    );
    segment.size = batch.offset + batch.bytes.len() as u64;
    for (stream, seq, location) in batch.placed {
        assert!(
            location.offset >= batch.offset
                && location.offset + u64::from(location.len) <= segment.size,
            "a record lies inside its batch, inside its segment"
        );
        let index = state
            .streams
            .entry(stream.clone())
            .or_insert_with(|| StreamIndex {
                first_seq: seq,
                locations: VecDeque::new(),
            });
        assert_eq!(
            index.first_seq + index.locations.len() as u64,
            seq,
            "a stream's sequence numbers are gap-free"
        );
        index.locations.push_back(location);
        segment.max_seq.insert(stream, seq);
    }
    state.durable_lsn = batch.last_lsn;
}
