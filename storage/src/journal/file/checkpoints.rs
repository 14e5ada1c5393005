//! Checkpoint files: one per stream, named by the stream, replaced
//! atomically.

use super::*;

pub(super) fn checkpoint_name(stream: &str) -> String {
    let hex: String = stream.bytes().map(|b| format!("{b:02x}")).collect();
    format!("ckpt-{hex}")
}

pub(super) fn parse_checkpoint_name(name: &str) -> Option<String> {
    let hex = name.strip_prefix("ckpt-")?;
    if hex.len() % 2 != 0 || hex.is_empty() {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

impl<D: Disk> FileJournal<D> {
    pub(super) async fn save_checkpoint_file(
        &self,
        stream: &str,
        seq: u64,
        state_bytes: &[u8],
    ) -> Result<(), JournalError> {
        validate_stream(stream)?;
        if state_bytes.len() > CHECKPOINT_STATE_BYTES_MAX {
            return Err(JournalError::TooLarge {
                len: state_bytes.len(),
                max: CHECKPOINT_STATE_BYTES_MAX,
            });
        }
        let _checkpoint_io = self.inner.checkpoint_io.lock().await;
        let log_lsn = {
            let state = self.state();
            let last = Self::last_seq_locked(&state, stream);
            validate_checkpoint_seq(stream, seq, last, state.checkpoints.get(stream).copied())?;
            // Entry `seq` is durable, so its lsn is at most this: a log
            // found shorter than this after a restart lost durable records.
            state.durable_lsn
        };
        let disk = &self.inner.disk;
        let name = checkpoint_name(stream);
        let tmp = format!("{name}.tmp");
        match disk.remove(&tmp).await {
            Err(e) if !e.is_not_found() => return Err(e.into()),
            _ => {}
        }
        let file = disk.create(&tmp).await?;
        file.write_at(
            0,
            &encode_checkpoint(self.inner.journal_id, stream, seq, log_lsn, state_bytes),
        )
        .await?;
        file.sync_data().await?;
        disk.rename(&tmp, &name).await?;
        disk.sync_dir().await?;
        self.state().checkpoints.insert(stream.to_string(), seq);
        self.compact().await?;
        Ok(())
    }

    pub(super) async fn latest_checkpoint_file(
        &self,
        stream: &str,
    ) -> Result<Option<Checkpoint>, JournalError> {
        validate_stream(stream)?;
        let _checkpoint_io = self.inner.checkpoint_io.lock().await;
        let name = checkpoint_name(stream);
        let file = match self.inner.disk.open(&name).await {
            Ok(file) => file,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let bytes = read_all(&file).await?;
        decode_checkpoint(self.inner.journal_id, &bytes)
            .map(Some)
            .map_err(|e| JournalError::CorruptCheckpoint {
                file: name,
                reason: format!("{e:?}"),
            })
    }
}
