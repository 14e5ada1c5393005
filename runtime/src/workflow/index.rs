//! The runs of one workflow kind: which exist, when they started and how
//! they ended, so nodes find the runs they must resume and `list` can
//! answer. Split into [`INDEX_SHARDS`] durable actors (hosted as virtual
//! actors like the runs) by a stable hash of the run, so starting and
//! finishing runs never queue behind one actor.

use super::RunStatus;
use crate::actor::ActorError;
use crate::durability::ops::{self, Ops};
use crate::durability::{DurableActor, DurableContext};
use crate::env::Env;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::Bound;

/// How many index actors a kind has. Fixed: a run's shard is part of
/// where the kind's journal keeps it.
pub(crate) const INDEX_SHARDS: u64 = 16;
/// Most runs one list page returns.
pub(crate) const PAGE_MAX: usize = 1_000;

/// The index shard of run `tenant/id`.
pub(crate) fn shard_of(run: &str) -> u64 {
    crate::virtual_actor::placement::stable_hash(&[run.as_bytes()]) % INDEX_SHARDS
}

/// The virtual actor id of index shard `shard`.
pub(crate) fn shard_name(shard: u64) -> String {
    format!("shard-{shard}")
}

/// Which runs a list wants, by how they stand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StatusFilter {
    /// Not known to have ended.
    Running,
    /// Ended with an output.
    Completed,
    /// Failed, whether or not its compensations ran.
    Failed,
    /// Cancelled.
    Cancelled,
}

impl StatusFilter {
    fn admits(self, status: Option<&RunStatus>) -> bool {
        matches!(
            (self, status),
            (StatusFilter::Running, None | Some(RunStatus::Running))
                | (StatusFilter::Completed, Some(RunStatus::Completed))
                | (
                    StatusFilter::Failed,
                    Some(RunStatus::Failed { .. } | RunStatus::CompensationFailed { .. })
                )
                | (StatusFilter::Cancelled, Some(RunStatus::Cancelled { .. }))
        )
    }
}

/// One page's question to one shard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct PageQuery {
    pub tenant: String,
    pub status: Option<StatusFilter>,
    /// Started at or after (Unix ms).
    pub started_from_ms: Option<u64>,
    /// Started before (Unix ms).
    pub started_before_ms: Option<u64>,
    /// Only runs after this `tenant/id` (the previous page's last).
    pub after: Option<String>,
    pub limit: usize,
}

/// What the index knows of one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct IndexEntry {
    /// When it was first started (Unix ms, the starting node's clock).
    pub started_ms: u64,
    /// `None` until it ends: running, or never started.
    pub status: Option<RunStatus>,
    pub finished_ms: Option<u64>,
}

/// One change to the index.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum IndexChange {
    /// A run was (or is about to be) started: `tenant/id`.
    Added { run: String, started_ms: u64 },
    /// A run finished.
    Finished {
        run: String,
        status: RunStatus,
        finished_ms: u64,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum IndexOp {
    /// Changes gathered from many callers, applied in order (one journal
    /// entry for all).
    Apply(Vec<IndexChange>),
    /// Read-only: runs not known to have finished.
    Unfinished,
    /// Read-only: one page of a tenant's runs, by id.
    Page(PageQuery),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum IndexReply {
    Done,
    Unfinished(Vec<String>),
    Page(Vec<(String, IndexEntry)>),
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct RunIndex {
    runs: BTreeMap<String, IndexEntry>,
}

impl RunIndex {
    fn change(&mut self, change: IndexChange) {
        match change {
            IndexChange::Added { run, started_ms } => {
                self.runs.entry(run).or_insert(IndexEntry {
                    started_ms,
                    status: None,
                    finished_ms: None,
                });
            }
            IndexChange::Finished {
                run,
                status,
                finished_ms,
            } => {
                let entry = self.runs.entry(run).or_insert(IndexEntry {
                    started_ms: finished_ms,
                    status: None,
                    finished_ms: None,
                });
                entry.status = Some(status);
                entry.finished_ms.get_or_insert(finished_ms);
            }
        }
    }

    /// Whether `change` would change nothing.
    fn holds(&self, change: &IndexChange) -> bool {
        match change {
            IndexChange::Added { run, .. } => self.runs.contains_key(run),
            IndexChange::Finished { run, status, .. } => {
                self.runs.get(run).and_then(|e| e.status.as_ref()) == Some(status)
            }
        }
    }

    fn page(&self, query: &PageQuery) -> Vec<(String, IndexEntry)> {
        let prefix = format!("{}/", query.tenant);
        let from = match &query.after {
            Some(after) if after.as_str() >= prefix.as_str() => Bound::Excluded(after.clone()),
            _ => Bound::Included(prefix.clone()),
        };
        self.runs
            .range((from, Bound::Unbounded))
            .take_while(|(run, _)| run.starts_with(&prefix))
            .filter(|(_, entry)| {
                query
                    .status
                    .is_none_or(|want| want.admits(entry.status.as_ref()))
                    && query.started_from_ms.is_none_or(|t| entry.started_ms >= t)
                    && query.started_before_ms.is_none_or(|t| entry.started_ms < t)
            })
            .take(query.limit.min(PAGE_MAX))
            .map(|(run, entry)| (run.clone(), entry.clone()))
            .collect()
    }
}

impl DurableActor for RunIndex {
    type Msg = IndexOp;
    type Reply = IndexReply;

    async fn handle(
        &mut self,
        _ctx: &mut DurableContext<'_>,
        op: IndexOp,
    ) -> Result<IndexReply, ActorError> {
        match op {
            IndexOp::Apply(changes) => changes.into_iter().for_each(|c| self.change(c)),
            read => return Ok(ops::answer_read(self, &read)),
        }
        Ok(IndexReply::Done)
    }

    fn query(&self, env: &Env, op: &IndexOp) -> Option<IndexReply> {
        ops::query(self, env, op)
    }
}

impl Ops for RunIndex {
    type Op = IndexOp;
    type Reply = IndexReply;

    fn read(&self, op: &IndexOp) -> Option<IndexReply> {
        Some(match op {
            IndexOp::Unfinished => IndexReply::Unfinished(
                self.runs
                    .iter()
                    .filter(|(_, entry)| entry.status.is_none())
                    .map(|(run, _)| run.clone())
                    .collect(),
            ),
            IndexOp::Page(query) => IndexReply::Page(self.page(query)),
            _ => return None,
        })
    }

    fn unchanged(&self, _env: &Env, op: &IndexOp) -> Option<IndexReply> {
        match op {
            IndexOp::Apply(changes) if changes.iter().all(|c| self.holds(c)) => {
                Some(IndexReply::Done)
            }
            _ => None,
        }
    }
}

/// A kind's index operations and state, for [`crate::encoded_types`].
#[cfg(any(test, feature = "fuzzing"))]
pub(super) fn encoded_types(v: &mut impl crate::codec::EncodedTypes) {
    fn finished() -> RunStatus {
        RunStatus::Cancelled { compensated: 2 }
    }
    fn entry(status: Option<RunStatus>) -> IndexEntry {
        IndexEntry {
            started_ms: 1_700_000_000_000,
            finished_ms: status.as_ref().map(|_| 1_700_000_000_500),
            status,
        }
    }
    v.visit("workflow::IndexOp", || {
        vec![
            IndexOp::Apply(vec![
                IndexChange::Added {
                    run: "acme/order-1".into(),
                    started_ms: 1_700_000_000_000,
                },
                IndexChange::Finished {
                    run: "acme/order-1".into(),
                    status: finished(),
                    finished_ms: 1_700_000_000_500,
                },
            ]),
            IndexOp::Page(PageQuery {
                tenant: "acme".into(),
                status: Some(StatusFilter::Failed),
                started_from_ms: Some(1),
                started_before_ms: None,
                after: Some("acme/order-0".into()),
                limit: 100,
            }),
        ]
    });
    v.visit("workflow::IndexReply", || {
        vec![IndexReply::Page(vec![
            ("acme/order-1".into(), entry(Some(finished()))),
            ("acme/order-2".into(), entry(None)),
        ])]
    });
    v.visit("workflow::RunIndex", || {
        vec![RunIndex {
            runs: BTreeMap::from([
                ("acme/order-1".into(), entry(Some(finished()))),
                ("acme/order-2".into(), entry(None)),
            ]),
        }]
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(runs: &[(&str, u64, Option<RunStatus>)]) -> RunIndex {
        RunIndex {
            runs: runs
                .iter()
                .map(|(run, started_ms, status)| {
                    let entry = IndexEntry {
                        started_ms: *started_ms,
                        status: status.clone(),
                        finished_ms: None,
                    };
                    (run.to_string(), entry)
                })
                .collect(),
        }
    }

    fn query(tenant: &str) -> PageQuery {
        PageQuery {
            tenant: tenant.into(),
            status: None,
            started_from_ms: None,
            started_before_ms: None,
            after: None,
            limit: 2,
        }
    }

    fn ids(page: Vec<(String, IndexEntry)>) -> Vec<String> {
        page.into_iter().map(|(run, _)| run).collect()
    }

    #[test]
    fn pages_stay_in_the_tenant_and_resume_after_the_cursor() {
        let failed = RunStatus::Failed {
            error: "x".into(),
            compensated: 0,
        };
        let index = index(&[
            ("a/1", 10, None),
            ("a/2", 20, Some(RunStatus::Completed)),
            ("a/3", 30, Some(failed)),
            ("ab/1", 10, None),
            ("b/1", 10, None),
        ]);
        assert_eq!(ids(index.page(&query("a"))), ["a/1", "a/2"]);
        let next = PageQuery {
            after: Some("a/2".into()),
            ..query("a")
        };
        assert_eq!(ids(index.page(&next)), ["a/3"], "ab/ is another tenant");
        let before_tenant = PageQuery {
            after: Some("0".into()),
            ..query("b")
        };
        assert_eq!(ids(index.page(&before_tenant)), ["b/1"]);
        let failed_only = PageQuery {
            status: Some(StatusFilter::Failed),
            ..query("a")
        };
        assert_eq!(ids(index.page(&failed_only)), ["a/3"]);
        let running = PageQuery {
            status: Some(StatusFilter::Running),
            ..query("a")
        };
        assert_eq!(ids(index.page(&running)), ["a/1"]);
        let window = PageQuery {
            started_from_ms: Some(20),
            started_before_ms: Some(30),
            ..query("a")
        };
        assert_eq!(ids(index.page(&window)), ["a/2"]);
    }

    #[test]
    fn shards_spread_runs_and_are_stable() {
        let mut counts = BTreeMap::new();
        for i in 0..1_600 {
            *counts.entry(shard_of(&format!("t/r{i}"))).or_insert(0) += 1;
        }
        assert_eq!(counts.len() as u64, INDEX_SHARDS);
        assert!(counts.values().all(|&n| n > 50), "{counts:?}");
        assert_eq!(shard_of("t/r1"), shard_of("t/r1"));
    }
}
