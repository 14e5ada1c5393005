//! A node's health: liveness (the node answers) and readiness (it can do
//! its work: not shutting down, joined to its cluster, its journals
//! reachable and writable), as `GET /health` and `GET /ready` report them.
//!
//! Readiness is made of named checks. The runtime adds its own on every
//! request (`shutdown`, and `membership` once distribution runs); the
//! journals a node relies on are watched with [`Health::watch_journal`]
//! (virtual actor kinds and workflows watch theirs when registered); users
//! add their own with [`Health::register`]. Each check runs with a
//! deadline on the node's clock, so a check that hangs (a journal server
//! behind a partition) reports unready instead of hanging the probe.

use crate::actor::ActorSystem;
use crate::durability::JournalBackend;
use crate::seams::Clock;
use futures::future::BoxFuture;
use plexspaces_storage::journal::Journal;
use plexspaces_storage::sync::LockExt;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long one check may take before it counts as failed, unless
/// [`Health::set_check_timeout`] says otherwise.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The most checks one node keeps.
pub const CHECKS_MAX: usize = 256;

/// The stream a journal probe reads (never written): reading it touches
/// the backend (a query, a server round trip) without changing anything.
pub const PROBE_STREAM: &str = "plexspaces.health-probe";

/// What one check found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CheckOutcome {
    /// Whether the check passed.
    pub healthy: bool,
    /// Why, for an operator.
    pub detail: String,
}

impl CheckOutcome {
    /// A passing check.
    pub fn ok(detail: impl Into<String>) -> Self {
        CheckOutcome {
            healthy: true,
            detail: detail.into(),
        }
    }

    /// A failing check.
    pub fn failing(detail: impl Into<String>) -> Self {
        CheckOutcome {
            healthy: false,
            detail: detail.into(),
        }
    }
}

/// A readiness check: a future per call, made fresh each time.
pub type Check = Arc<dyn Fn() -> BoxFuture<'static, CheckOutcome> + Send + Sync>;

/// Why a check could not be registered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HealthError {
    /// [`CHECKS_MAX`] checks exist already.
    TooMany,
    /// The name is empty or longer than 128 bytes.
    InvalidName(String),
}

impl std::fmt::Display for HealthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HealthError::TooMany => write!(f, "a node keeps at most {CHECKS_MAX} health checks"),
            HealthError::InvalidName(name) => {
                write!(f, "health check name {name:?} must be 1 to 128 bytes")
            }
        }
    }
}

impl std::error::Error for HealthError {}

/// A readiness report: every check's outcome, and whether all passed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Readiness {
    /// True when every check passed.
    pub ready: bool,
    /// The node.
    pub node: String,
    /// Each check by name.
    pub checks: BTreeMap<String, CheckOutcome>,
}

/// The node's readiness checks (one per node, from [`ActorSystem::health`]).
pub struct Health {
    checks: Mutex<BTreeMap<String, Check>>,
    timeout: Mutex<Duration>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            checks: Mutex::new(BTreeMap::new()),
            timeout: Mutex::new(CHECK_TIMEOUT),
        }
    }
}

impl Health {
    /// Adds (or replaces) the check `name`.
    pub fn register(
        &self,
        name: &str,
        check: impl Fn() -> BoxFuture<'static, CheckOutcome> + Send + Sync + 'static,
    ) -> Result<(), HealthError> {
        if name.is_empty() || name.len() > 128 {
            return Err(HealthError::InvalidName(name.to_string()));
        }
        let mut checks = self.checks.locked();
        if !checks.contains_key(name) && checks.len() >= CHECKS_MAX {
            return Err(HealthError::TooMany);
        }
        checks.insert(name.to_string(), Arc::new(check));
        Ok(())
    }

    /// How long each check may take from now on (a probe of `/ready`
    /// answers within about this).
    pub fn set_check_timeout(&self, timeout: Duration) {
        *self.timeout.locked() = timeout;
    }

    /// Removes the check `name`; whether there was one.
    pub fn unregister(&self, name: &str) -> bool {
        self.checks.locked().remove(name).is_some()
    }

    /// Watches `journal` as check `name`: ready while a read of it
    /// succeeds (a file journal also while it has not failed-stop).
    pub fn watch_journal(&self, name: &str, journal: JournalBackend) -> Result<(), HealthError> {
        self.register(name, move || {
            let journal = journal.clone();
            Box::pin(async move { probe_journal(&journal).await })
        })
    }

    /// Runs every check (the runtime's and the registered ones), each
    /// within the check timeout ([`CHECK_TIMEOUT`] by default).
    pub async fn readiness(&self, system: &ActorSystem) -> Readiness {
        let env = system.env().clone();
        let timeout = *self.timeout.locked();
        let mut outcomes = BTreeMap::new();
        outcomes.insert(
            "shutdown".to_string(),
            if system.is_shut_down() {
                CheckOutcome::failing("the node is shutting down")
            } else {
                CheckOutcome::ok("running")
            },
        );
        if let Some(dist) = system.distribution() {
            outcomes.insert("membership".to_string(), dist.joined());
        }
        let checks: Vec<(String, Check)> = self
            .checks
            .locked()
            .iter()
            .map(|(name, check)| (name.clone(), check.clone()))
            .collect();
        let runs = checks.into_iter().map(|(name, check)| {
            let env = env.clone();
            async move {
                let outcome = match env.timeout(timeout, check()).await {
                    Ok(outcome) => outcome,
                    Err(_) => CheckOutcome::failing(format!("no answer within {timeout:?}")),
                };
                (name, outcome)
            }
        });
        outcomes.extend(futures::future::join_all(runs).await);
        Readiness {
            ready: outcomes.values().all(|o| o.healthy),
            node: system.node().to_string(),
            checks: outcomes,
        }
    }
}

/// One read of `journal`.
async fn probe_journal(journal: &JournalBackend) -> CheckOutcome {
    if let JournalBackend::File(file) = journal
        && let Some(cause) = file.stopped()
    {
        return CheckOutcome::failing(format!("the file journal stopped after: {cause}"));
    }
    match journal.latest_checkpoint(PROBE_STREAM).await {
        Ok(_) => CheckOutcome::ok("reachable"),
        Err(e) => CheckOutcome::failing(e.to_string()),
    }
}

impl ActorSystem {
    /// The node's readiness checks.
    pub fn health(&self) -> Arc<Health> {
        self.service(Health::default)
    }
}
