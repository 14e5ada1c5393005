//! The runs of one workflow kind: which exist and which have finished, so
//! nodes find the runs they must resume and `list` can answer. A durable
//! actor, hosted as a virtual actor like the runs themselves.

use super::RunStatus;
use crate::actor::ActorError;
use crate::durability::ops::{self, Ops};
use crate::durability::{DurableActor, DurableContext};
use crate::env::Env;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum IndexOp {
    /// A run was (or is about to be) started: `tenant/id`.
    Add(String),
    /// A run finished.
    Finished(String, RunStatus),
    /// Read-only: runs not known to have finished.
    Unfinished,
    /// Read-only: every run of a tenant with its last known status
    /// (`None` until it finishes: running, or never started).
    List { tenant: String },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum IndexReply {
    Done,
    Runs(Vec<(String, Option<RunStatus>)>),
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct RunIndex {
    runs: BTreeMap<String, Option<RunStatus>>,
}

impl RunIndex {
    /// The answer to a read-only operation (`None`: it writes).
    fn answer(&self, op: &IndexOp) -> Option<IndexReply> {
        let pick = |keep: &dyn Fn(&String, &Option<RunStatus>) -> bool| {
            IndexReply::Runs(
                self.runs
                    .iter()
                    .filter(|(k, v)| keep(k, v))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            )
        };
        Some(match op {
            IndexOp::Unfinished => pick(&|_, status| status.is_none()),
            IndexOp::List { tenant } => {
                let prefix = format!("{tenant}/");
                pick(&|run, _| run.starts_with(&prefix))
            }
            _ => return None,
        })
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
            IndexOp::Add(run) => {
                self.runs.entry(run).or_insert(None);
            }
            IndexOp::Finished(run, status) => {
                self.runs.insert(run, Some(status));
            }
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
        self.answer(op)
    }

    fn unchanged(&self, _env: &Env, op: &IndexOp) -> Option<IndexReply> {
        match op {
            IndexOp::Add(run) if self.runs.contains_key(run) => Some(IndexReply::Done),
            IndexOp::Finished(run, status) if self.runs.get(run) == Some(&Some(status.clone())) => {
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
    v.visit("workflow::IndexOp", || {
        vec![
            IndexOp::Add("acme/order-1".into()),
            IndexOp::Finished("acme/order-1".into(), finished()),
            IndexOp::List {
                tenant: "acme".into(),
            },
        ]
    });
    v.visit("workflow::IndexReply", || {
        vec![IndexReply::Runs(vec![
            ("acme/order-1".into(), Some(finished())),
            ("acme/order-2".into(), None),
        ])]
    });
    v.visit("workflow::RunIndex", || {
        vec![RunIndex {
            runs: BTreeMap::from([
                ("acme/order-1".into(), Some(finished())),
                ("acme/order-2".into(), None),
            ]),
        }]
    });
}
