//! A key-value store on PostgreSQL, shared by every node that connects:
//! the [`KvStore`] contract in single statements, so each call is atomic
//! on the server without a transaction.
//!
//! - keys sort in byte order (`COLLATE "C"`), so `list` by prefix is a
//!   range scan of the primary key;
//! - expiry is judged against the caller's wall clock (`now`, the node's
//!   `Clock` seam), as every backend does; expired rows are deleted by the
//!   calls that meet them and by [`PgKv::purge_expired`];
//! - compare-and-set is one conditional `INSERT ... ON CONFLICT DO UPDATE
//!   ... WHERE` (create) or `UPDATE ... WHERE value = expected` (swap), so
//!   racing callers are serialized by the row lock and exactly one wins;
//! - increment reads and then compare-and-sets, retrying on a lost race.
//!
//! Several stores share one table, told apart by name. The table's size
//! is bounded by the database's, not by a key count: a count per insert
//! would cost a scan.

use crate::connection::{Reconnecting, describe};
use futures::future::BoxFuture;
use plexspaces::Env;
use plexspaces::capabilities::kv::{
    KV_LIST_MAX, KvEntry, KvError, KvStore, check_key_and_value, increment_by_swapping,
};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio_postgres::{Client, Statement};

const SCHEMA: &str = "
BEGIN;
SELECT pg_advisory_xact_lock(7083462918);
CREATE TABLE IF NOT EXISTS plexspaces_kv (
    store      TEXT   NOT NULL,
    key        TEXT   COLLATE \"C\" NOT NULL,
    value      BYTEA  NOT NULL,
    expires_us BIGINT,
    PRIMARY KEY (store, key)
);
COMMIT;";

/// $1 store, $2 key, $3 now.
const GET: &str = "SELECT value, expires_us FROM plexspaces_kv
 WHERE store = $1 AND key = $2 AND (expires_us IS NULL OR expires_us > $3)";

/// $1 store, $2 key, $3 value, $4 expires.
const SET: &str =
    "INSERT INTO plexspaces_kv (store, key, value, expires_us) VALUES ($1, $2, $3, $4)
 ON CONFLICT (store, key) DO UPDATE SET value = EXCLUDED.value, expires_us = EXCLUDED.expires_us";

/// $1 store, $2 key, $3 now: one row saying whether the deleted key was live.
const DELETE: &str = "DELETE FROM plexspaces_kv WHERE store = $1 AND key = $2
 RETURNING (expires_us IS NULL OR expires_us > $3)";

/// $1 store, $2 key, $3 value, $4 expires, $5 now: creates, or replaces an
/// expired row; a live row is left alone (no row returned).
const CREATE: &str =
    "INSERT INTO plexspaces_kv (store, key, value, expires_us) VALUES ($1, $2, $3, $4)
 ON CONFLICT (store, key) DO UPDATE SET value = EXCLUDED.value, expires_us = EXCLUDED.expires_us
 WHERE plexspaces_kv.expires_us IS NOT NULL AND plexspaces_kv.expires_us <= $5";

/// $1 store, $2 key, $3 expected, $4 value, $5 expires, $6 now.
const SWAP: &str = "UPDATE plexspaces_kv SET value = $4, expires_us = $5
 WHERE store = $1 AND key = $2 AND value = $3 AND (expires_us IS NULL OR expires_us > $6)";

/// $1 store, $2 prefix, $3 now, $4 limit.
const LIST: &str = "SELECT key FROM plexspaces_kv
 WHERE store = $1 AND key >= $2 AND starts_with(key, $2)
   AND (expires_us IS NULL OR expires_us > $3)
 ORDER BY key LIMIT $4";

/// $1 store, $2 now.
const PURGE: &str =
    "DELETE FROM plexspaces_kv WHERE store = $1 AND expires_us IS NOT NULL AND expires_us <= $2";

/// A named key-value store in PostgreSQL. Cheap to clone.
#[derive(Clone)]
pub struct PgKv {
    inner: Arc<Inner>,
}

struct Inner {
    store: String,
    connection: Reconnecting,
    /// The statements, prepared on the client they belong to (a new
    /// client after a reconnection prepares them again).
    prepared: futures::lock::Mutex<Option<(Arc<Client>, Arc<Statements>)>>,
}

/// Every statement the store runs, prepared once per connection (an
/// unprepared query costs the server a parse and the client a round trip).
struct Statements {
    get: Statement,
    set: Statement,
    delete: Statement,
    create: Statement,
    swap: Statement,
    list: Statement,
}

fn unavailable(e: tokio_postgres::Error) -> KvError {
    KvError::Unavailable(describe(&e))
}

/// Microseconds since the Unix epoch (BIGINT).
fn micros(at: SystemTime) -> i64 {
    let since = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_micros()).unwrap_or(i64::MAX)
}

fn time(micros: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_micros(u64::try_from(micros).unwrap_or(0))
}

impl PgKv {
    /// Connects to `connection` (libpq style) and creates the table if
    /// missing; the store's keys are those named `store`.
    pub async fn connect(env: Env, connection: &str, store: &str) -> Result<Self, KvError> {
        let kv = PgKv {
            inner: Arc::new(Inner {
                store: store.to_string(),
                connection: Reconnecting::new(env, connection.to_string()),
                prepared: futures::lock::Mutex::new(None),
            }),
        };
        kv.client()
            .await?
            .batch_execute(SCHEMA)
            .await
            .map_err(unavailable)?;
        Ok(kv)
    }

    async fn client(&self) -> Result<Arc<Client>, KvError> {
        self.inner.connection.client().await.map_err(unavailable)
    }

    /// The live client and its prepared statements.
    async fn prepared(&self) -> Result<(Arc<Client>, Arc<Statements>), KvError> {
        let client = self.client().await?;
        let mut slot = self.inner.prepared.lock().await;
        if let Some((prepared_on, statements)) = slot.as_ref()
            && Arc::ptr_eq(prepared_on, &client)
        {
            return Ok((client, statements.clone()));
        }
        let prepare = |sql: &'static str| {
            let client = client.clone();
            async move { client.prepare(sql).await.map_err(unavailable) }
        };
        let statements = Arc::new(Statements {
            get: prepare(GET).await?,
            set: prepare(SET).await?,
            delete: prepare(DELETE).await?,
            create: prepare(CREATE).await?,
            swap: prepare(SWAP).await?,
            list: prepare(LIST).await?,
        });
        *slot = Some((client.clone(), statements.clone()));
        Ok((client, statements))
    }

    /// Deletes this store's rows expired at `now`; how many.
    pub async fn purge_expired(&self, now: SystemTime) -> Result<u64, KvError> {
        self.client()
            .await?
            .execute(PURGE, &[&self.inner.store, &micros(now)])
            .await
            .map_err(unavailable)
    }

    async fn compare_and_set_now(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
        expires: Option<SystemTime>,
        now: SystemTime,
    ) -> Result<bool, KvError> {
        check_key_and_value(key, Some(new))?;
        let (client, statements) = self.prepared().await?;
        let store = &self.inner.store;
        let expires = expires.map(micros);
        let changed = match expected {
            None => client
                .execute(
                    &statements.create,
                    &[store, &key, &new, &expires, &micros(now)],
                )
                .await
                .map_err(unavailable)?,
            Some(expected) => client
                .execute(
                    &statements.swap,
                    &[store, &key, &expected, &new, &expires, &micros(now)],
                )
                .await
                .map_err(unavailable)?,
        };
        Ok(changed == 1)
    }

    async fn get_now(&self, key: &str, now: SystemTime) -> Result<Option<KvEntry>, KvError> {
        check_key_and_value(key, None)?;
        let (client, statements) = self.prepared().await?;
        let row = client
            .query_opt(&statements.get, &[&self.inner.store, &key, &micros(now)])
            .await
            .map_err(unavailable)?;
        Ok(row.map(|row| KvEntry {
            value: row.get(0),
            expires: row.get::<_, Option<i64>>(1).map(time),
        }))
    }
}

impl KvStore for PgKv {
    fn get<'a>(
        &'a self,
        key: &'a str,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<Option<KvEntry>, KvError>> {
        Box::pin(self.get_now(key, now))
    }

    fn set<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        expires: Option<SystemTime>,
        _now: SystemTime,
    ) -> BoxFuture<'a, Result<(), KvError>> {
        Box::pin(async move {
            check_key_and_value(key, Some(&value))?;
            let expires = expires.map(micros);
            let (client, statements) = self.prepared().await?;
            client
                .execute(
                    &statements.set,
                    &[&self.inner.store, &key, &value, &expires],
                )
                .await
                .map_err(unavailable)?;
            Ok(())
        })
    }

    fn delete<'a>(&'a self, key: &'a str, now: SystemTime) -> BoxFuture<'a, Result<bool, KvError>> {
        Box::pin(async move {
            check_key_and_value(key, None)?;
            let (client, statements) = self.prepared().await?;
            let row = client
                .query_opt(&statements.delete, &[&self.inner.store, &key, &micros(now)])
                .await
                .map_err(unavailable)?;
            Ok(row.is_some_and(|row| row.get::<_, bool>(0)))
        })
    }

    fn compare_and_set<'a>(
        &'a self,
        key: &'a str,
        expected: Option<&'a [u8]>,
        new: Vec<u8>,
        expires: Option<SystemTime>,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<bool, KvError>> {
        Box::pin(async move {
            self.compare_and_set_now(key, expected, &new, expires, now)
                .await
        })
    }

    fn increment<'a>(
        &'a self,
        key: &'a str,
        by: i64,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<i64, KvError>> {
        Box::pin(increment_by_swapping(self, key, by, now))
    }

    fn list<'a>(
        &'a self,
        prefix: &'a str,
        limit: usize,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<Vec<String>, KvError>> {
        Box::pin(async move {
            let limit = i64::try_from(limit.min(KV_LIST_MAX)).unwrap_or(0);
            let (client, statements) = self.prepared().await?;
            let rows = client
                .query(
                    &statements.list,
                    &[&self.inner.store, &prefix, &micros(now), &limit],
                )
                .await
                .map_err(unavailable)?;
            Ok(rows.iter().map(|row| row.get(0)).collect())
        })
    }
}
