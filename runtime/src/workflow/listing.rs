//! Listing a kind's runs a page at a time, filtered by status and start
//! time, and telling which runs still need the old branch of a change.

use super::index::{IndexEntry, IndexOp, IndexReply, PAGE_MAX, PageQuery, StatusFilter};
use super::{RunId, RunStatus, Workflow, WorkflowError, Workflows, protocol, unavailable};
use std::time::{Duration, SystemTime};

/// Which runs of a tenant a list wants.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ListQuery {
    /// Only runs standing so.
    pub status: Option<StatusFilter>,
    /// Only runs started at or after.
    pub started_from: Option<SystemTime>,
    /// Only runs started before.
    pub started_before: Option<SystemTime>,
    /// Only runs after this one, by id (the previous page's `next`).
    pub after: Option<RunId>,
    /// Most runs in the page (at most 1,000).
    pub limit: usize,
}

impl Default for ListQuery {
    fn default() -> Self {
        ListQuery {
            status: None,
            started_from: None,
            started_before: None,
            after: None,
            limit: 100,
        }
    }
}

impl ListQuery {
    /// Every run, 100 a page.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only runs standing as `status` says.
    pub fn status(mut self, status: StatusFilter) -> Self {
        self.status = Some(status);
        self
    }

    /// Only runs started in `[from, before)`.
    pub fn started_between(mut self, from: SystemTime, before: SystemTime) -> Self {
        self.started_from = Some(from);
        self.started_before = Some(before);
        self
    }

    /// The page after `run`.
    pub fn after(mut self, run: RunId) -> Self {
        self.after = Some(run);
        self
    }

    /// At most `limit` runs a page (1 to 1,000).
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit.clamp(1, PAGE_MAX);
        self
    }
}

/// One run as the index knows it.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSummary {
    /// The run.
    pub run: RunId,
    /// How it ended (`None`: running, or never started).
    pub status: Option<RunStatus>,
    /// When it was first started (the starting node's clock).
    pub started: SystemTime,
    /// When its end was indexed.
    pub finished: Option<SystemTime>,
}

/// A page of runs, by id.
#[derive(Clone, Debug, PartialEq)]
pub struct RunPage {
    /// The runs.
    pub runs: Vec<RunSummary>,
    /// Where the next page starts (`ListQuery::after`), if there may be one.
    pub next: Option<RunId>,
}

/// Which unfinished runs of a tenant depend on the old branch of a change
/// (see [`super::WorkflowContext::patched`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PatchUsage {
    /// Took the old branch: the old code must stay while these run.
    pub old_branch: Vec<RunId>,
    /// Took the new branch.
    pub new_branch: Vec<RunId>,
    /// Have not reached the change yet. Those that started under the code
    /// with the change take the new branch; those that started before it
    /// may have gone past the point and then take the old one.
    pub undecided: Vec<RunSummary>,
}

impl PatchUsage {
    /// Whether the old branch can go: no run took it, and every undecided
    /// run started at or after `deployed` (when the code with the change
    /// reached every node).
    pub fn old_branch_removable(&self, deployed: SystemTime) -> bool {
        self.old_branch.is_empty() && self.undecided.iter().all(|run| run.started >= deployed)
    }
}

fn time(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
}

impl<W: Workflow> Workflows<W> {
    /// One page of `tenant`'s runs matching `query`, by id. Reads every
    /// index shard (queries, no journal write).
    pub async fn list_page(
        &self,
        tenant: &str,
        query: &ListQuery,
    ) -> Result<RunPage, WorkflowError> {
        let engine = &self.engine;
        let limit = query.limit.clamp(1, PAGE_MAX);
        let page = PageQuery {
            tenant: tenant.to_string(),
            status: query.status,
            started_from_ms: query.started_from.map(crate::seams::unix_millis),
            started_before_ms: query.started_before.map(crate::seams::unix_millis),
            after: query.after.as_ref().map(RunId::key),
            limit,
        };
        let asks = engine.index_shards().into_iter().map(|shard| {
            let op = IndexOp::Page(page.clone());
            async move { shard.query(op, engine.config.call_timeout).await }
        });
        let mut runs: Vec<(String, IndexEntry)> = Vec::new();
        for reply in futures::future::join_all(asks).await {
            match reply.map_err(unavailable)? {
                IndexReply::Page(entries) => runs.extend(entries),
                other => return Err(protocol("listing runs", &other)),
            }
        }
        runs.sort_by(|a, b| a.0.cmp(&b.0));
        runs.truncate(limit);
        let next = (runs.len() == limit)
            .then(|| runs.last().and_then(|(key, _)| RunId::parse(key)))
            .flatten();
        let runs = runs
            .into_iter()
            .filter_map(|(key, entry)| {
                Some(RunSummary {
                    run: RunId::parse(&key)?,
                    status: entry.status,
                    started: time(entry.started_ms),
                    finished: entry.finished_ms.map(time),
                })
            })
            .collect();
        Ok(RunPage { runs, next })
    }

    /// Every run of `tenant` matching `query` (all pages).
    pub async fn list_all(
        &self,
        tenant: &str,
        query: &ListQuery,
    ) -> Result<Vec<RunSummary>, WorkflowError> {
        let mut query = query.clone();
        query.limit = PAGE_MAX;
        let mut all = Vec::new();
        loop {
            let page = self.list_page(tenant, &query).await?;
            all.extend(page.runs);
            match page.next {
                Some(next) => query.after = Some(next),
                None => return Ok(all),
            }
        }
    }

    /// The tenant's runs, with their status if they finished (`None`:
    /// running, or never started), by id.
    pub async fn list(
        &self,
        tenant: &str,
    ) -> Result<Vec<(RunId, Option<RunStatus>)>, WorkflowError> {
        let all = self.list_all(tenant, &ListQuery::new()).await?;
        Ok(all.into_iter().map(|s| (s.run, s.status)).collect())
    }

    /// Which of `tenant`'s unfinished runs took which branch of change
    /// `patch`, and which have not reached it: asks each unfinished run.
    pub async fn patch_usage(
        &self,
        tenant: &str,
        patch: &str,
    ) -> Result<PatchUsage, WorkflowError> {
        let running = ListQuery::new().status(StatusFilter::Running);
        let mut usage = PatchUsage::default();
        for summary in self.list_all(tenant, &running).await? {
            let view = self.view(&summary.run).await?;
            if view.status.as_ref().is_some_and(RunStatus::is_terminal) {
                continue;
            }
            match view.patches.get(patch) {
                Some(true) => usage.new_branch.push(summary.run),
                Some(false) => usage.old_branch.push(summary.run),
                None => usage.undecided.push(summary),
            }
        }
        Ok(usage)
    }
}
