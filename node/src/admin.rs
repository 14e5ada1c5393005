//! The operator API: what `plexspaces` asks a running node, served under
//! `/admin/` by the node's operator endpoint. JSON in and out; every route
//! needs the operator token (`Authorization: Bearer <token>`).
//!
//! The node knows the kinds the application registered with it
//! ([`crate::Node::register_virtual`], `register_workflows`, ...); each is
//! kept here behind a small object-safe trait so the routes need no types.

use futures::FutureExt;
use futures::future::BoxFuture;
use plexspaces::actor::{ActorSystem, WeakSystem};
use plexspaces::distribution::MemberStatus;
use plexspaces::durability::DurableActor;
use plexspaces::observability::{AdminRequest, AdminResponse, AdminRoutes};
use plexspaces::reminders::{ReminderTarget, Reminders};
use plexspaces::tuplespace::{Field, Pattern, Value};
use plexspaces::virtual_actor::VirtualActors;
use plexspaces::workflow::{
    ListQuery, RunId, RunSummary, StatusFilter, Workflow, WorkflowError, Workflows,
};
use plexspaces_storage::sync::LockExt;
use serde_json::{Value as Json, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The most `result` waits for a run, whatever the caller asks.
pub const RESULT_WAIT_MAX: Duration = Duration::from_secs(60);

/// The most kinds of each sort the node keeps for the API.
pub const KINDS_MAX: usize = 256;

/// A virtual actor kind, without its types.
trait VirtualKind: Send + Sync {
    fn kind(&self) -> &str;
    fn active_ids(&self) -> Vec<String>;
    fn owner_of(&self, id: &str) -> Option<String>;
}

impl<A: DurableActor> VirtualKind for VirtualActors<A> {
    fn kind(&self) -> &str {
        VirtualActors::kind(self)
    }
    fn active_ids(&self) -> Vec<String> {
        VirtualActors::active_ids(self)
    }
    fn owner_of(&self, id: &str) -> Option<String> {
        VirtualActors::owner_of(self, id).map(|n| n.to_string())
    }
}

/// A workflow kind, without its types: outputs as JSON, signals from JSON.
trait WorkflowKind: Send + Sync {
    fn kind(&self) -> &str;
    fn list<'a>(
        &'a self,
        tenant: &'a str,
        query: ListQuery,
    ) -> BoxFuture<'a, Result<Json, WorkflowError>>;
    fn patch_usage<'a>(
        &'a self,
        tenant: &'a str,
        patch: &'a str,
    ) -> BoxFuture<'a, Result<Json, WorkflowError>>;
    fn status<'a>(&'a self, run: &'a RunId) -> BoxFuture<'a, Result<Json, WorkflowError>>;
    fn result<'a>(
        &'a self,
        run: &'a RunId,
        wait: Duration,
    ) -> BoxFuture<'a, Result<Json, WorkflowError>>;
    fn signal<'a>(
        &'a self,
        run: &'a RunId,
        name: &'a str,
        data: Json,
    ) -> BoxFuture<'a, Result<(), WorkflowError>>;
    fn cancel<'a>(&'a self, run: &'a RunId) -> BoxFuture<'a, Result<(), WorkflowError>>;
}

struct TypedWorkflows<W: Workflow> {
    kind: String,
    workflows: Workflows<W>,
}

fn summary_json(run: &RunSummary) -> Json {
    json!({
        "run": run.run.to_string(),
        "status": run.status.as_ref().map_or(json!("Running"), status_json),
        "started_ms": millis_since_epoch(run.started),
        "finished_ms": run.finished.map(millis_since_epoch),
    })
}

/// A list query from `status`, `after`, `limit`, `started_from_ms` and
/// `started_before_ms` (each optional; every run, 1,000 at most, without).
fn list_query(request: &AdminRequest, tenant: &str) -> Result<ListQuery, Refusal> {
    let bad = |what: &str, value: &str| Refusal::BadRequest(format!("{what} {value:?}"));
    let mut query = ListQuery::new().limit(1_000);
    if let Some(status) = request.param("status") {
        query = query.status(match status {
            "running" => StatusFilter::Running,
            "completed" => StatusFilter::Completed,
            "failed" => StatusFilter::Failed,
            "cancelled" => StatusFilter::Cancelled,
            other => return Err(bad("status (running, completed, failed, cancelled)", other)),
        });
    }
    if let Some(after) = request.param("after") {
        query = query.after(RunId::new(tenant, after).map_err(|_| bad("after", after))?);
    }
    if let Some(limit) = request.param("limit") {
        query = query.limit(limit.parse().map_err(|_| bad("limit", limit))?);
    }
    let at = |name: &str| -> Result<Option<std::time::SystemTime>, Refusal> {
        request
            .param(name)
            .map(|ms| {
                ms.parse::<u64>()
                    .map(|ms| std::time::UNIX_EPOCH + Duration::from_millis(ms))
                    .map_err(|_| bad(name, ms))
            })
            .transpose()
    };
    query.started_from = at("started_from_ms")?;
    query.started_before = at("started_before_ms")?;
    Ok(query)
}

fn status_json(status: &plexspaces::workflow::RunStatus) -> Json {
    serde_json::to_value(status).unwrap_or_else(|e| json!(format!("unreadable status: {e}")))
}

impl<W: Workflow> WorkflowKind for TypedWorkflows<W> {
    fn kind(&self) -> &str {
        &self.kind
    }
    fn list<'a>(
        &'a self,
        tenant: &'a str,
        query: ListQuery,
    ) -> BoxFuture<'a, Result<Json, WorkflowError>> {
        async move {
            let page = self.workflows.list_page(tenant, &query).await?;
            Ok(Json::Array(page.runs.iter().map(summary_json).collect()))
        }
        .boxed()
    }
    fn patch_usage<'a>(
        &'a self,
        tenant: &'a str,
        patch: &'a str,
    ) -> BoxFuture<'a, Result<Json, WorkflowError>> {
        async move {
            let usage = self.workflows.patch_usage(tenant, patch).await?;
            let ids = |runs: &[RunId]| runs.iter().map(RunId::to_string).collect::<Vec<_>>();
            Ok(json!({
                "patch": patch,
                "old_branch": ids(&usage.old_branch),
                "new_branch": ids(&usage.new_branch),
                "undecided": usage.undecided.iter().map(summary_json).collect::<Vec<_>>(),
            }))
        }
        .boxed()
    }
    fn status<'a>(&'a self, run: &'a RunId) -> BoxFuture<'a, Result<Json, WorkflowError>> {
        async move { Ok(status_json(&self.workflows.status(run).await?)) }.boxed()
    }
    fn result<'a>(
        &'a self,
        run: &'a RunId,
        wait: Duration,
    ) -> BoxFuture<'a, Result<Json, WorkflowError>> {
        async move {
            let output = self.workflows.result(run, wait).await?;
            serde_json::to_value(&output)
                .map_err(|e| WorkflowError::Decode(format!("the output as JSON: {e}")))
        }
        .boxed()
    }
    fn signal<'a>(
        &'a self,
        run: &'a RunId,
        name: &'a str,
        data: Json,
    ) -> BoxFuture<'a, Result<(), WorkflowError>> {
        async move { self.workflows.signal(run, name, &data).await }.boxed()
    }
    fn cancel<'a>(&'a self, run: &'a RunId) -> BoxFuture<'a, Result<(), WorkflowError>> {
        async move { self.workflows.cancel(run).await }.boxed()
    }
}

/// What the node registered for the operator API, and who may ask.
pub(crate) struct Admin {
    system: WeakSystem,
    /// `None`: no token configured; only loopback callers reach the node
    /// (the host binds the endpoint so).
    token: Option<String>,
    timeout: Duration,
    virtuals: Mutex<Vec<Arc<dyn VirtualKind>>>,
    workflows: Mutex<Vec<Arc<dyn WorkflowKind>>>,
    reminders: Mutex<Option<Reminders>>,
}

/// Why a kind was not added to the operator API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegisterError {
    /// A kind of this sort and name is registered already.
    Duplicate(String),
    /// [`KINDS_MAX`] kinds of this sort are registered already.
    TooMany,
}

impl std::fmt::Display for RegisterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegisterError::Duplicate(kind) => write!(f, "kind {kind:?} is registered already"),
            RegisterError::TooMany => write!(f, "at most {KINDS_MAX} kinds of each sort"),
        }
    }
}

impl std::error::Error for RegisterError {}

fn add<T: ?Sized>(
    list: &Mutex<Vec<Arc<T>>>,
    item: Arc<T>,
    kind_of: impl Fn(&T) -> &str,
) -> Result<(), RegisterError> {
    let mut list = list.locked();
    if list.iter().any(|k| kind_of(k) == kind_of(&item)) {
        return Err(RegisterError::Duplicate(kind_of(&item).to_string()));
    }
    if list.len() >= KINDS_MAX {
        return Err(RegisterError::TooMany);
    }
    list.push(item);
    Ok(())
}

impl Admin {
    pub(crate) fn new(system: &ActorSystem, token: Option<String>, timeout: Duration) -> Self {
        Admin {
            system: system.downgrade(),
            token,
            timeout,
            virtuals: Mutex::new(Vec::new()),
            workflows: Mutex::new(Vec::new()),
            reminders: Mutex::new(None),
        }
    }

    pub(crate) fn add_virtual<A: DurableActor>(
        &self,
        kind: &VirtualActors<A>,
    ) -> Result<(), RegisterError> {
        add(&self.virtuals, Arc::new(kind.clone()), |k| k.kind())
    }

    pub(crate) fn add_workflows<W: Workflow>(
        &self,
        kind: &str,
        workflows: &Workflows<W>,
    ) -> Result<(), RegisterError> {
        let typed = TypedWorkflows {
            kind: kind.to_string(),
            workflows: workflows.clone(),
        };
        add(&self.workflows, Arc::new(typed), |k| k.kind())
    }

    /// Virtual actor activations on this node now, over every kind.
    pub(crate) fn virtual_activations(&self) -> usize {
        let kinds = self.virtuals.locked().clone();
        kinds.iter().map(|k| k.active_ids().len()).sum()
    }

    pub(crate) fn set_reminders(&self, reminders: &Reminders) {
        *self.reminders.locked() = Some(reminders.clone());
    }

    fn authorized(&self, request: &AdminRequest) -> bool {
        match &self.token {
            None => true,
            Some(token) => request
                .authorization
                .as_deref()
                .and_then(|h| h.strip_prefix("Bearer "))
                .is_some_and(|given| constant_time_eq(given.as_bytes(), token.as_bytes())),
        }
    }

    async fn route(&self, request: &AdminRequest) -> Result<Json, Refusal> {
        let system = self
            .system
            .upgrade()
            .ok_or(Refusal::Unavailable("the node is shutting down".into()))?;
        let post = request.method == "POST";
        match (request.path.as_str(), post) {
            ("/admin/node", false) => Ok(self.node(&system)),
            ("/admin/members", false) => Ok(members(&system)),
            ("/admin/actors", false) => Ok(actors(&system)),
            ("/admin/virtual", false) => Ok(self.virtual_list()),
            ("/admin/virtual/where", false) => self.virtual_where(request),
            ("/admin/workflows", false) => {
                let kind = self.workflow_kind(request)?;
                let tenant = param(request, "tenant")?;
                let query = list_query(request, tenant)?;
                kind.list(tenant, query).await.map_err(Refusal::from)
            }
            ("/admin/workflows/patch", false) => {
                let kind = self.workflow_kind(request)?;
                let tenant = param(request, "tenant")?;
                let patch = param(request, "patch")?;
                kind.patch_usage(tenant, patch).await.map_err(Refusal::from)
            }
            ("/admin/workflows/status", false) => {
                let (kind, run) = self.run(request)?;
                kind.status(&run).await.map_err(Refusal::from)
            }
            ("/admin/workflows/result", false) => {
                let (kind, run) = self.run(request)?;
                let wait = match request.param("wait_ms") {
                    None => self.timeout,
                    Some(ms) => Duration::from_millis(
                        ms.parse()
                            .map_err(|_| Refusal::BadRequest(format!("wait_ms {ms:?}")))?,
                    ),
                };
                kind.result(&run, wait.min(RESULT_WAIT_MAX))
                    .await
                    .map_err(Refusal::from)
            }
            ("/admin/workflows/signal", true) => {
                let (kind, run) = self.run(request)?;
                let name = param(request, "name")?;
                let data: Json = serde_json::from_slice(&request.body)
                    .map_err(|e| Refusal::BadRequest(format!("the signal's data: {e}")))?;
                kind.signal(&run, name, data).await?;
                Ok(json!({ "signalled": name }))
            }
            ("/admin/workflows/cancel", true) => {
                let (kind, run) = self.run(request)?;
                kind.cancel(&run).await?;
                Ok(json!({ "cancelled": run.to_string() }))
            }
            ("/admin/reminders", false) => {
                let (reminders, target) = self.reminder_target(request)?;
                let listed = reminders
                    .list(&target, self.timeout)
                    .await
                    .map_err(|e| Refusal::Unavailable(e.to_string()))?;
                Ok(Json::Array(
                    listed
                        .iter()
                        .map(|r| {
                            json!({
                                "kind": r.target.kind,
                                "id": r.target.id,
                                "name": r.name,
                                "recurrence": format!("{:?}", r.recurrence),
                                "next_due_ms": millis_since_epoch(r.next_due),
                            })
                        })
                        .collect(),
                ))
            }
            ("/admin/reminders/cancel", true) => {
                let (reminders, target) = self.reminder_target(request)?;
                let name = param(request, "name")?;
                let existed = reminders
                    .cancel(&target, name, self.timeout)
                    .await
                    .map_err(|e| Refusal::BadRequest(e.to_string()))?;
                Ok(json!({ "cancelled": existed }))
            }
            ("/admin/spaces", false) => Ok(spaces(&system)),
            ("/admin/spaces/count", false) => space_count(&system, request).await,
            (path, _) if ROUTES.contains(&path) => Err(Refusal::Method),
            _ => Err(Refusal::NotFound),
        }
    }

    fn node(&self, system: &ActorSystem) -> Json {
        let leaving = system.distribution().is_some_and(|d| d.is_leaving());
        json!({
            "node": system.node().to_string(),
            "shutting_down": system.is_shut_down() || leaving,
            "virtual_kinds": self.virtuals.locked().iter().map(|k| k.kind().to_string()).collect::<Vec<_>>(),
            "workflow_kinds": self.workflows.locked().iter().map(|k| k.kind().to_string()).collect::<Vec<_>>(),
        })
    }

    fn virtual_list(&self) -> Json {
        let kinds = self.virtuals.locked().clone();
        Json::Array(
            kinds
                .iter()
                .map(|k| json!({ "kind": k.kind(), "active": k.active_ids() }))
                .collect(),
        )
    }

    fn virtual_where(&self, request: &AdminRequest) -> Result<Json, Refusal> {
        let kind_name = param(request, "kind")?;
        let id = param(request, "id")?;
        let kinds = self.virtuals.locked().clone();
        let kind = kinds
            .iter()
            .find(|k| k.kind() == kind_name)
            .ok_or_else(|| Refusal::Missing(format!("no virtual kind {kind_name:?} here")))?;
        Ok(json!({
            "kind": kind_name,
            "id": id,
            "owner": kind.owner_of(id),
            "active_here": kind.active_ids().iter().any(|a| a == id),
        }))
    }

    fn workflow_kind(&self, request: &AdminRequest) -> Result<Arc<dyn WorkflowKind>, Refusal> {
        let name = param(request, "kind")?;
        self.workflows
            .locked()
            .iter()
            .find(|k| k.kind() == name)
            .cloned()
            .ok_or_else(|| Refusal::Missing(format!("no workflow kind {name:?} here")))
    }

    fn run(&self, request: &AdminRequest) -> Result<(Arc<dyn WorkflowKind>, RunId), Refusal> {
        let kind = self.workflow_kind(request)?;
        let run = RunId::new(param(request, "tenant")?, param(request, "id")?)
            .map_err(|e| Refusal::BadRequest(e.to_string()))?;
        Ok((kind, run))
    }

    fn reminder_target(
        &self,
        request: &AdminRequest,
    ) -> Result<(Reminders, ReminderTarget), Refusal> {
        let reminders = self
            .reminders
            .locked()
            .clone()
            .ok_or_else(|| Refusal::Missing("this node runs no reminders".into()))?;
        let target = ReminderTarget::new(param(request, "kind")?, param(request, "id")?);
        Ok((reminders, target))
    }
}

/// Every route, for telling a wrong method from a wrong path.
const ROUTES: &[&str] = &[
    "/admin/node",
    "/admin/members",
    "/admin/actors",
    "/admin/virtual",
    "/admin/virtual/where",
    "/admin/workflows",
    "/admin/workflows/status",
    "/admin/workflows/result",
    "/admin/workflows/signal",
    "/admin/workflows/cancel",
    "/admin/reminders",
    "/admin/reminders/cancel",
    "/admin/spaces",
    "/admin/spaces/count",
];

/// Why a request was not answered.
enum Refusal {
    /// No such route.
    NotFound,
    /// A named thing (kind, run, space) is not here.
    Missing(String),
    Method,
    BadRequest(String),
    Unavailable(String),
    Timeout(String),
}

impl From<WorkflowError> for Refusal {
    fn from(e: WorkflowError) -> Self {
        match e {
            WorkflowError::NotFound(_) => Refusal::Missing(e.to_string()),
            WorkflowError::Timeout => Refusal::Timeout(e.to_string()),
            WorkflowError::Unavailable(_) => Refusal::Unavailable(e.to_string()),
            WorkflowError::Ended(_) => Refusal::BadRequest(e.to_string()),
            other => Refusal::BadRequest(other.to_string()),
        }
    }
}

impl Refusal {
    fn answer(self) -> AdminResponse {
        let (status, error) = match self {
            Refusal::NotFound => (404, "no such route".to_string()),
            Refusal::Missing(what) => (404, what),
            Refusal::Method => (405, "wrong method for this route".to_string()),
            Refusal::BadRequest(why) => (400, why),
            Refusal::Unavailable(why) => (503, why),
            Refusal::Timeout(why) => (504, why),
        };
        AdminResponse {
            status,
            body: json!({ "error": error }).to_string(),
        }
    }
}

fn param<'a>(request: &'a AdminRequest, name: &str) -> Result<&'a str, Refusal> {
    request
        .param(name)
        .ok_or_else(|| Refusal::BadRequest(format!("query parameter `{name}` is missing")))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn millis_since_epoch(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn member_status(status: MemberStatus) -> &'static str {
    match status {
        MemberStatus::Joining => "joining",
        MemberStatus::Up => "up",
        MemberStatus::Suspect => "suspect",
        MemberStatus::Down => "down",
        MemberStatus::Leaving => "leaving",
    }
}

fn members(system: &ActorSystem) -> Json {
    match system.distribution() {
        None => {
            json!([{ "node": system.node().to_string(), "addr": null, "incarnation": null, "status": "up" }])
        }
        Some(dist) => Json::Array(
            dist.members()
                .iter()
                .map(|m| {
                    json!({
                        "node": m.node.to_string(),
                        "addr": m.addr.to_string(),
                        "incarnation": m.incarnation,
                        "status": member_status(m.status),
                    })
                })
                .collect(),
        ),
    }
}

/// The kind an actor's name shows: `kind:id` for virtual activations and
/// workflow records, the name itself otherwise.
fn actor_kind(name: &str) -> &str {
    name.split_once(':').map_or(name, |(kind, _)| kind)
}

fn actors(system: &ActorSystem) -> Json {
    let all = system.actors();
    let mut by_kind: std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>> =
        std::collections::BTreeMap::new();
    for (id, status) in &all {
        *by_kind
            .entry(actor_kind(id.name()).to_string())
            .or_default()
            .entry(format!("{status:?}").to_lowercase())
            .or_default() += 1;
    }
    json!({
        "node": system.node().to_string(),
        "total": all.len(),
        "by_kind": by_kind,
        "actors": all.iter().map(|(id, status)| json!({
            "id": id.to_string(),
            "status": format!("{status:?}").to_lowercase(),
        })).collect::<Vec<_>>(),
    })
}

fn spaces(system: &ActorSystem) -> Json {
    Json::Array(
        system
            .tuplespaces()
            .iter()
            .map(|s| json!({ "name": s.name(), "tuples": s.len() }))
            .collect(),
    )
}

async fn space_count(system: &ActorSystem, request: &AdminRequest) -> Result<Json, Refusal> {
    let name = param(request, "name")?;
    let space = system
        .tuplespaces()
        .into_iter()
        .find(|s| s.name() == name)
        .ok_or_else(|| Refusal::Missing(format!("no tuple space {name:?} on this node")))?;
    let count = match request.param("arity") {
        None => space.len(),
        Some(arity) => {
            let arity: usize = arity
                .parse()
                .ok()
                .filter(|n| *n <= 64)
                .ok_or_else(|| Refusal::BadRequest(format!("arity {arity:?} (0 to 64)")))?;
            let mut fields = vec![Field::Any; arity];
            if let (Some(head), Some(first)) = (request.param("head"), fields.first_mut()) {
                *first = Field::Exact(Value::from(head));
            }
            space.count(&Pattern::new(fields)).await
        }
    };
    Ok(json!({ "name": name, "count": count }))
}

impl AdminRoutes for Admin {
    fn respond(&self, request: AdminRequest) -> BoxFuture<'_, Option<AdminResponse>> {
        async move {
            if !request.path.starts_with("/admin/") {
                return None;
            }
            if !self.authorized(&request) {
                return Some(AdminResponse {
                    status: 401,
                    body: json!({ "error": "the operator token is missing or wrong" }).to_string(),
                });
            }
            Some(match self.route(&request).await {
                Ok(body) => AdminResponse {
                    status: 200,
                    body: body.to_string(),
                },
                Err(refusal) => refusal.answer(),
            })
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
    }

    #[test]
    fn kinds_come_from_actor_names() {
        assert_eq!(actor_kind("account:alice"), "account");
        assert_eq!(actor_kind("root"), "root");
        assert_eq!(actor_kind("wf:transfer:acme/1"), "wf");
    }
}
