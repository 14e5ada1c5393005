//! Gathers the index changes of many callers into one call per shard:
//! while a shard's call is in flight, changes wait and go together in the
//! next one (as group commit does for appends). A lone change goes at
//! once; under load a shard journals one entry for many runs.

use super::index::{INDEX_SHARDS, IndexChange, IndexOp, RunIndex, shard_name, shard_of};
use super::{WorkflowError, unavailable};
use crate::env::Env;
use crate::virtual_actor::VirtualActors;
use futures::channel::oneshot;
use plexspaces_storage::sync::LockExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Most changes one call carries; the rest go in the next.
const BATCH_MAX: usize = 512;

type Waiter = oneshot::Sender<Result<(), WorkflowError>>;

#[derive(Default)]
struct Pending {
    changes: Vec<(IndexChange, Waiter)>,
    /// A call of this shard is in flight (its task sends what gathers).
    flushing: bool,
}

/// A kind's index, written through batches.
pub(crate) struct IndexBatcher {
    index: VirtualActors<RunIndex>,
    env: Env,
    call_timeout: Duration,
    /// Keys are `<nonce>:index:<n>`: unique to this node's run.
    nonce: String,
    next_key: AtomicU64,
    shards: Vec<Mutex<Pending>>,
}

impl IndexBatcher {
    pub(crate) fn new(
        index: VirtualActors<RunIndex>,
        env: Env,
        call_timeout: Duration,
        nonce: String,
    ) -> Arc<Self> {
        Arc::new(IndexBatcher {
            index,
            env,
            call_timeout,
            nonce,
            next_key: AtomicU64::new(0),
            shards: (0..INDEX_SHARDS).map(|_| Mutex::default()).collect(),
        })
    }

    /// Applies `change` to run `run`'s shard; returns once it is journaled
    /// (or the call carrying it failed: the caller may send it again, a
    /// change applies once).
    pub(crate) async fn apply(
        self: &Arc<Self>,
        run: &str,
        change: IndexChange,
    ) -> Result<(), WorkflowError> {
        let shard = shard_of(run);
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut pending = self.shards[shard as usize].locked();
            pending.changes.push((change, tx));
            !std::mem::replace(&mut pending.flushing, true)
        };
        if start {
            drop(self.env.spawn(self.clone().flush(shard)));
        }
        rx.await
            .unwrap_or_else(|_| Err(WorkflowError::Unavailable("the node stopped".into())))
    }

    /// Sends what gathered for `shard`, one call at a time, until nothing
    /// waits.
    async fn flush(self: Arc<Self>, shard: u64) {
        loop {
            let batch: Vec<(IndexChange, Waiter)> = {
                let mut pending = self.shards[shard as usize].locked();
                if pending.changes.is_empty() {
                    pending.flushing = false;
                    return;
                }
                let take = pending.changes.len().min(BATCH_MAX);
                pending.changes.drain(..take).collect()
            };
            let (changes, waiters): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
            let outcome = self.send(shard, changes).await;
            for waiter in waiters {
                let _ = waiter.send(outcome.clone());
            }
        }
    }

    async fn send(&self, shard: u64, changes: Vec<IndexChange>) -> Result<(), WorkflowError> {
        let actor = self
            .index
            .get(&shard_name(shard))
            .map_err(|e| WorkflowError::InvalidId(e.to_string()))?;
        let n = self.next_key.fetch_add(1, Ordering::Relaxed);
        let key = format!("{}:index:{n}", self.nonce);
        actor
            .call(key, IndexOp::Apply(changes), self.call_timeout)
            .await
            .map(drop)
            .map_err(unavailable)
    }
}
