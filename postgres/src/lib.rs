//! A [`Journal`] on PostgreSQL that several PlexSpaces nodes share, so a
//! virtual actor that moves to another node finds its history, with the
//! same fencing as the simulated journal server
//! (`plexspaces::durability::shared`):
//!
//! - [`Journal::claim`] bumps the stream's epoch (one upsert) and returns
//!   its last sequence number;
//! - an append is one statement: an `UPDATE` of the stream's row guarded by
//!   `epoch = mine AND last_seq = expected`, and the `INSERT` of the entries
//!   fed by that update's row, so the entries are written only if the guard
//!   held; the `(stream, seq)` primary key makes the sequence numbers a
//!   conditional insert as well. An activation whose claim was superseded
//!   gets [`JournalError::Fenced`] and writes nothing;
//! - a checkpoint is guarded the same way and deletes the entries it
//!   covers; reading below it gives [`JournalError::Truncated`].
//!
//! Use it as `JournalBackend::custom(PgJournal::connect(...).await?)`.
//! The connection is re-established on the next request after it breaks.
//! It runs on tokio only (real sockets): the simulator models the shared
//! backend with the journal server instead.

mod connection;
mod kv;

pub use kv::PgKv;

use connection::{Reconnecting, describe};
use plexspaces::Env;
use plexspaces_storage::journal::claims::{Claim, Claims};
use plexspaces_storage::journal::{Checkpoint, Journal, JournalError};
use std::sync::Arc;
use tokio_postgres::Client;

/// The tables, created if missing.
/// Several nodes may start at once: concurrent `CREATE TABLE IF NOT EXISTS`
/// can fail in PostgreSQL, so creation is serialized by an advisory lock.
const SCHEMA: &str = "
BEGIN;
SELECT pg_advisory_xact_lock(7083462917);
CREATE TABLE IF NOT EXISTS plexspaces_streams (
    stream    TEXT PRIMARY KEY,
    epoch     BIGINT NOT NULL,
    last_seq  BIGINT NOT NULL,
    first_seq BIGINT NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS plexspaces_entries (
    stream TEXT   NOT NULL,
    seq    BIGINT NOT NULL,
    data   BYTEA  NOT NULL,
    PRIMARY KEY (stream, seq)
);
CREATE TABLE IF NOT EXISTS plexspaces_checkpoints (
    stream TEXT PRIMARY KEY,
    seq    BIGINT NOT NULL,
    state  BYTEA  NOT NULL
);
COMMIT;";

const CLAIM: &str = "
INSERT INTO plexspaces_streams (stream, epoch, last_seq) VALUES ($1, 1, 0)
ON CONFLICT (stream) DO UPDATE SET epoch = plexspaces_streams.epoch + 1
RETURNING epoch, last_seq";

/// $1 stream: its epoch and last sequence number now.
const CURRENT: &str = "SELECT epoch, last_seq FROM plexspaces_streams WHERE stream = $1";

/// $1 stream, $2 epoch, $3 expected last_seq, $4 entries.
const APPEND: &str = "
WITH guard AS (
    UPDATE plexspaces_streams
       SET last_seq = last_seq + cardinality($4::bytea[])
     WHERE stream = $1 AND epoch = $2 AND last_seq = $3
 RETURNING stream
)
INSERT INTO plexspaces_entries (stream, seq, data)
SELECT guard.stream, $3 + t.i, t.d
  FROM guard, unnest($4::bytea[]) WITH ORDINALITY AS t(d, i)
RETURNING seq";

/// $1 stream, $2 epoch, $3 seq, $4 state.
const CHECKPOINT: &str = "
WITH guard AS (
    UPDATE plexspaces_streams
       SET first_seq = GREATEST(first_seq, $3 + 1)
     WHERE stream = $1 AND epoch = $2 AND last_seq >= $3
 RETURNING stream
), saved AS (
    INSERT INTO plexspaces_checkpoints (stream, seq, state)
    SELECT stream, $3, $4 FROM guard
    ON CONFLICT (stream) DO UPDATE SET seq = EXCLUDED.seq, state = EXCLUDED.state
     WHERE plexspaces_checkpoints.seq <= EXCLUDED.seq
    RETURNING seq
), dropped AS (
    DELETE FROM plexspaces_entries
     WHERE stream = $1 AND seq <= $3 AND EXISTS (SELECT 1 FROM saved)
)
SELECT count(*) FROM saved";

/// How to reach the database.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PgJournalConfig {
    /// A libpq-style connection string (`host=127.0.0.1 user=... dbname=...`).
    pub connection: String,
    /// Largest entry accepted (default 1 MiB, as the file journal).
    pub entry_bytes_max: usize,
}

impl PgJournalConfig {
    /// The defaults for `connection`.
    pub fn new(connection: impl Into<String>) -> Self {
        PgJournalConfig {
            connection: connection.into(),
            entry_bytes_max: 1024 * 1024,
        }
    }
}

/// A journal in PostgreSQL tables, shared by every node that connects.
/// Cheap to clone; clones share the connection and this node's claims.
#[derive(Clone)]
pub struct PgJournal {
    inner: Arc<Inner>,
}

struct Inner {
    config: PgJournalConfig,
    connection: Reconnecting,
    claims: Claims,
}

fn unavailable(e: tokio_postgres::Error) -> JournalError {
    JournalError::Unavailable {
        reason: describe(&e),
    }
}

impl PgJournal {
    /// Connects (the connection's driver runs on `env`'s spawner) and
    /// creates the tables if they are missing.
    pub async fn connect(env: Env, config: PgJournalConfig) -> Result<Self, JournalError> {
        let journal = PgJournal {
            inner: Arc::new(Inner {
                connection: Reconnecting::new(env, config.connection.clone()),
                config,
                claims: Claims::default(),
            }),
        };
        journal
            .client()
            .await?
            .batch_execute(SCHEMA)
            .await
            .map_err(unavailable)?;
        Ok(journal)
    }

    /// The live client, reconnecting if the last one broke.
    async fn client(&self) -> Result<Arc<Client>, JournalError> {
        self.inner.connection.client().await.map_err(unavailable)
    }
}

/// PostgreSQL's BIGINT is signed; sequence numbers and epochs never come
/// near 2^63.
fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Journal for PgJournal {
    async fn append(&self, stream: &str, data: &[u8]) -> Result<u64, JournalError> {
        self.append_all(stream, &[data]).await
    }

    async fn append_all(&self, stream: &str, entries: &[&[u8]]) -> Result<u64, JournalError> {
        let claim = self.inner.claims.of(stream)?;
        let max = self.inner.config.entry_bytes_max;
        if let Some(big) = entries.iter().find(|e| e.len() > max) {
            return Err(JournalError::TooLarge {
                len: big.len(),
                max,
            });
        }
        if entries.is_empty() {
            return Ok(claim.last_seq);
        }
        let (epoch, expected) = (to_i64(claim.epoch), to_i64(claim.last_seq));
        let client = self.client().await?;
        let rows = client
            .query(APPEND, &[&stream, &epoch, &expected, &entries])
            .await
            .map_err(unavailable)?;
        if rows.len() != entries.len() {
            return Err(JournalError::Fenced {
                stream: stream.to_string(),
                detail: format!(
                    "epoch {} expecting sequence number {} is no longer current",
                    claim.epoch,
                    claim.last_seq + 1
                ),
            });
        }
        let last_seq = claim.last_seq + entries.len() as u64;
        self.inner.claims.appended(stream, claim.epoch, last_seq);
        Ok(last_seq)
    }

    async fn replay_each<F>(
        &self,
        stream: &str,
        from_seq: u64,
        mut visit: F,
    ) -> Result<u64, JournalError>
    where
        F: FnMut(u64, &[u8]) + Send,
    {
        let client = self.client().await?;
        let from = i64::try_from(from_seq.max(1)).unwrap_or(i64::MAX);
        let first = client
            .query_opt(
                "SELECT first_seq FROM plexspaces_streams WHERE stream = $1",
                &[&stream],
            )
            .await
            .map_err(unavailable)?
            .map_or(1, |row| row.get::<_, i64>(0));
        if from < first {
            return Err(JournalError::Truncated {
                stream: stream.to_string(),
                requested: from_seq,
                first_available: to_u64(first),
            });
        }
        let rows = client
            .query(
                "SELECT seq, data FROM plexspaces_entries WHERE stream = $1 AND seq >= $2 ORDER BY seq",
                &[&stream, &from],
            )
            .await
            .map_err(unavailable)?;
        for row in &rows {
            visit(to_u64(row.get(0)), row.get::<_, &[u8]>(1));
        }
        Ok(rows.len() as u64)
    }

    fn last_seq(&self, stream: &str) -> u64 {
        self.inner.claims.last_seq(stream)
    }

    async fn claim(&self, stream: &str) -> Result<(), JournalError> {
        let client = self.client().await?;
        let row = client
            .query_one(CLAIM, &[&stream])
            .await
            .map_err(unavailable)?;
        let claim = Claim {
            epoch: to_u64(row.get(0)),
            last_seq: to_u64(row.get(1)),
        };
        self.inner.claims.granted(stream, claim);
        Ok(())
    }

    async fn check_claim(&self, stream: &str) -> Result<(), JournalError> {
        let claim = self.inner.claims.of(stream)?;
        let client = self.client().await?;
        let row = client
            .query_opt(CURRENT, &[&stream])
            .await
            .map_err(unavailable)?;
        let current = row.map(|row| (to_u64(row.get(0)), to_u64(row.get(1))));
        if current == Some((claim.epoch, claim.last_seq)) {
            return Ok(());
        }
        Err(JournalError::Fenced {
            stream: stream.to_string(),
            detail: format!(
                "claimed at epoch {} after sequence number {}; the stream is now at {current:?}",
                claim.epoch, claim.last_seq
            ),
        })
    }

    async fn save_checkpoint(
        &self,
        stream: &str,
        seq: u64,
        state: &[u8],
    ) -> Result<(), JournalError> {
        let claim = self.inner.claims.of(stream)?;
        if seq > claim.last_seq {
            return Err(JournalError::CheckpointAhead {
                stream: stream.to_string(),
                seq,
                last: claim.last_seq,
            });
        }
        let (epoch, at) = (to_i64(claim.epoch), to_i64(seq));
        let client = self.client().await?;
        let row = client
            .query_one(CHECKPOINT, &[&stream, &epoch, &at, &state])
            .await
            .map_err(unavailable)?;
        if row.get::<_, i64>(0) == 1 {
            Ok(())
        } else {
            Err(JournalError::Fenced {
                stream: stream.to_string(),
                detail: format!(
                    "checkpoint at {seq} by epoch {} refused (superseded, or older than the current one)",
                    claim.epoch
                ),
            })
        }
    }

    async fn latest_checkpoint(&self, stream: &str) -> Result<Option<Checkpoint>, JournalError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT seq, state FROM plexspaces_checkpoints WHERE stream = $1",
                &[&stream],
            )
            .await
            .map_err(unavailable)?;
        Ok(row.map(|row| Checkpoint {
            stream: stream.to_string(),
            seq: to_u64(row.get(0)),
            state: row.get(1),
        }))
    }
}
