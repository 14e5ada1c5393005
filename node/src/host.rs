//! The node host: a node built from its configuration, the kinds the
//! application registers, and a graceful shutdown on SIGTERM or SIGINT.

use crate::admin::{Admin, RegisterError};
use crate::config::{ConfigError, JournalKind, LogFormatName, NodeConfig};
use plexspaces::distribution::{ClusterSecret, Distribution, DistributionConfig};
use plexspaces::durability::shared::{SharedJournal, SharedJournalConfig};
use plexspaces::durability::{DurableActor, JournalBackend};
use plexspaces::observability::OperatorEndpoint;
use plexspaces::observability::logging::{self, LogConfig, LogFormat, LogOutput};
use plexspaces::prelude::*;
use plexspaces::reminders::Reminders;
use plexspaces::seams::JoinHandle;
use plexspaces::security::{NodeTls, TlsSource};
use plexspaces::storage::disk::FsDisk;
use plexspaces::virtual_actor::VirtualActors;
use plexspaces::workflow::{Workflow, Workflows};
use plexspaces_postgres::{PgJournal, PgJournalConfig};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Why a node could not start (or a kind could not be registered).
#[derive(Debug)]
#[non_exhaustive]
pub enum NodeError {
    /// The configuration is wrong.
    Config(ConfigError),
    /// A part of the node could not start.
    Start {
        /// Which part (`journal`, `distribution`, ...).
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// A kind could not be added to the operator API.
    Register(RegisterError),
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeError::Config(e) => write!(f, "configuration: {e}"),
            NodeError::Start { what, reason } => write!(f, "cannot start the {what}: {reason}"),
            NodeError::Register(e) => write!(f, "cannot register: {e}"),
        }
    }
}

impl std::error::Error for NodeError {}

impl From<ConfigError> for NodeError {
    fn from(e: ConfigError) -> Self {
        NodeError::Config(e)
    }
}

impl From<RegisterError> for NodeError {
    fn from(e: RegisterError) -> Self {
        NodeError::Register(e)
    }
}

fn failed(what: &'static str) -> impl FnOnce(String) -> NodeError {
    move |reason| NodeError::Start { what, reason }
}

/// What a graceful shutdown did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Virtual actor activations this node held when it began to leave.
    pub handed_off: usize,
    /// Whether every mailbox emptied and every actor stopped within the
    /// deadline.
    pub drained: bool,
    /// How long it took.
    pub took: Duration,
}

/// One running node. Build it with [`Node::from_config_file`] (or
/// [`Node::start`]), register the application's kinds on
/// [`Node::system`] with [`Node::journal`], tell the operator API about
/// them (`register_virtual`, ...), then [`Node::run`].
pub struct Node {
    config: NodeConfig,
    system: ActorSystem,
    journal: JournalBackend,
    distribution: Option<Distribution>,
    operator: Option<OperatorEndpoint>,
    admin: Arc<Admin>,
    tls_reload: Option<JoinHandle<()>>,
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("node", self.system.node())
            .field("operator", &self.operator_addr())
            .finish()
    }
}

/// The operator API's token derived from the cluster secret: an HMAC, so
/// the secret itself never crosses the wire, and `plexspaces` derives the
/// same from the secret it is given.
pub fn operator_token(secret: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret)
        .expect("HMAC takes a key of any length");
    mac.update(b"plexspaces operator token v1");
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reads a small file the configuration names (a secret, a token).
/// The host reads these once, at start, before the node runs.
pub(crate) fn read_secret_file(path: &Path, key: &str) -> Result<Vec<u8>, ConfigError> {
    #[allow(clippy::disallowed_methods)]
    let mut bytes = std::fs::read(path).map_err(|e| ConfigError::BadValue {
        key: key.into(),
        message: format!("cannot read {}: {e}", path.display()),
    })?;
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    Ok(bytes)
}

impl Node {
    /// Reads `path` (and the environment's overrides) and starts the node.
    pub async fn from_config_file(path: impl AsRef<Path>) -> Result<Node, NodeError> {
        let config = NodeConfig::from_file(path.as_ref())?;
        Node::start(config).await
    }

    /// Starts a node as `config` says: logging, the data directory, the
    /// journal, distribution (joining through the seeds) and the operator
    /// endpoint.
    pub async fn start(config: NodeConfig) -> Result<Node, NodeError> {
        config.check()?;
        install_logging(&config);
        let name = NodeName::new(&config.node.name).map_err(|e| ConfigError::BadValue {
            key: "node.name".into(),
            message: e.to_string(),
        })?;
        let env = Env::tokio(name)
            .with_data_dir(config.data_dir())
            .await
            .map_err(|e| failed("data directory")(e.to_string()))?;
        let system = ActorSystem::new(env.clone());
        let secret = match (&config.cluster.secret, &config.cluster.secret_file) {
            (Some(text), _) => Some(text.as_bytes().to_vec()),
            (None, Some(path)) => Some(read_secret_file(path, "cluster.secret_file")?),
            (None, None) => None,
        };
        let cluster_secret = secret
            .clone()
            .map(ClusterSecret::new)
            .transpose()
            .map_err(|e| ConfigError::BadValue {
                key: "cluster.secret".into(),
                message: e.to_string(),
            })?;
        let (tls, tls_reload) = match &config.cluster.tls_dir {
            None => (None, None),
            Some(dir) => {
                let disk = FsDisk::open_dir(dir)
                    .await
                    .map_err(|e| failed("TLS")(format!("{}: {e}", dir.display())))?;
                let tls = NodeTls::load(
                    &env,
                    TlsSource::files(disk, "ca.pem", "node.pem", "node.key"),
                )
                .await
                .map_err(|e| failed("TLS")(e.to_string()))?;
                let reload = tls.reload_every(config.cluster.tls_reload);
                (Some(tls), Some(reload))
            }
        };
        let journal = match config.journal.backend {
            JournalKind::Embedded => JournalBackend::file(&env, JournalConfig::default())
                .await
                .map_err(|e| failed("journal")(e.to_string()))?,
            JournalKind::Memory => JournalBackend::memory(),
            JournalKind::Postgres => {
                let connection = config.journal.postgres.clone().unwrap_or_default();
                let pg = PgJournal::connect(env.clone(), PgJournalConfig::new(connection))
                    .await
                    .map_err(|e| failed("journal")(e.to_string()))?;
                JournalBackend::custom(pg)
            }
            JournalKind::Server => {
                let (Some(addr), Some(secret)) = (config.journal.server, cluster_secret.clone())
                else {
                    return Err(ConfigError::Missing {
                        key: "journal.server".into(),
                        why: "backend = \"server\" needs its address and the cluster secret".into(),
                    }
                    .into());
                };
                let mut shared = SharedJournalConfig::new(addr, secret);
                if let Some(tls) = &tls {
                    shared = shared.with_tls(tls.clone());
                }
                JournalBackend::Shared(SharedJournal::new(env.clone(), shared))
            }
        };
        let distribution = match (config.cluster.listen, cluster_secret) {
            (Some(listen), Some(secret)) => {
                let mut dist_config = DistributionConfig::new(listen, secret)
                    .with_seeds(config.cluster.seeds.clone());
                dist_config.advertise = config.cluster.advertise;
                dist_config.heartbeat_interval = config.cluster.heartbeat_interval;
                dist_config.suspect_after = config.cluster.suspect_after;
                dist_config.down_after = config.cluster.down_after;
                if let Some(tls) = &tls {
                    dist_config = dist_config.with_tls(tls.clone());
                }
                Some(
                    system
                        .start_distribution(dist_config)
                        .await
                        .map_err(|e| failed("distribution")(e.to_string()))?,
                )
            }
            _ => None,
        };
        let token = match (&config.operator.token_file, &secret) {
            (Some(path), _) => {
                let bytes = read_secret_file(path, "operator.token_file")?;
                Some(String::from_utf8_lossy(&bytes).into_owned())
            }
            (None, Some(secret)) => Some(operator_token(secret)),
            (None, None) => None,
        };
        let admin = Arc::new(Admin::new(
            &system,
            token.clone(),
            config.limits.operator_timeout,
        ));
        let operator = match config.operator.listen {
            None => None,
            Some(addr) => {
                if token.is_none() && !addr.ip().is_loopback() {
                    return Err(ConfigError::BadValue {
                        key: "operator.listen".into(),
                        message: "without a token (a cluster secret or `operator.token_file`) the operator API listens on loopback only".into(),
                    }
                    .into());
                }
                let routes: Arc<dyn plexspaces::observability::AdminRoutes> = admin.clone();
                Some(
                    OperatorEndpoint::serve_with(&system, addr, Some(routes))
                        .await
                        .map_err(|e| failed("operator endpoint")(e.to_string()))?,
                )
            }
        };
        tracing::info!(
            node = %system.node(),
            listen = ?config.cluster.listen,
            operator = ?operator.as_ref().map(OperatorEndpoint::local_addr),
            journal = ?config.journal.backend,
            "node started"
        );
        Ok(Node {
            config,
            system,
            journal,
            distribution,
            operator,
            admin,
            tls_reload,
        })
    }

    /// The node's actors: spawn, register kinds.
    pub fn system(&self) -> &ActorSystem {
        &self.system
    }

    /// The node's seams.
    pub fn env(&self) -> &Env {
        self.system.env()
    }

    /// The journal the configuration chose; pass it to the kinds.
    pub fn journal(&self) -> JournalBackend {
        self.journal.clone()
    }

    /// The node's distribution, if it is in a cluster.
    pub fn distribution(&self) -> Option<&Distribution> {
        self.distribution.as_ref()
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// Where the operator endpoint listens, if it does.
    pub fn operator_addr(&self) -> Option<std::net::SocketAddr> {
        self.operator.as_ref().map(OperatorEndpoint::local_addr)
    }

    /// Shows a virtual actor kind to the operator API (`virtual list`,
    /// `virtual where`).
    pub fn register_virtual<A: DurableActor>(
        &self,
        kind: &VirtualActors<A>,
    ) -> Result<(), NodeError> {
        Ok(self.admin.add_virtual(kind)?)
    }

    /// Shows workflow kind `kind` to the operator API (`workflows list`,
    /// `status`, `result`, `signal`, `cancel`).
    pub fn register_workflows<W: Workflow>(
        &self,
        kind: &str,
        workflows: &Workflows<W>,
    ) -> Result<(), NodeError> {
        Ok(self.admin.add_workflows(kind, workflows)?)
    }

    /// Shows the node's reminders to the operator API (`reminders list`,
    /// `cancel`).
    pub fn register_reminders(&self, reminders: &Reminders) {
        self.admin.set_reminders(reminders);
    }

    /// Runs until SIGTERM or SIGINT, then shuts down gracefully
    /// ([`Node::shutdown`]); a second signal during the shutdown exits the
    /// process at once with status 130.
    pub async fn run(self) -> Result<ShutdownReport, NodeError> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate =
            signal(SignalKind::terminate()).map_err(|e| failed("signal handler")(e.to_string()))?;
        let mut interrupt =
            signal(SignalKind::interrupt()).map_err(|e| failed("signal handler")(e.to_string()))?;
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = interrupt.recv() => tracing::info!("SIGINT: shutting down"),
        }
        let second = async move {
            tokio::select! {
                _ = terminate.recv() => {},
                _ = interrupt.recv() => {},
            }
        };
        tokio::select! {
            report = self.shutdown() => Ok(report),
            () = second => {
                tracing::warn!("a second signal: exiting now");
                std::process::exit(130);
            }
        }
    }

    /// Shuts down gracefully, within `limits.shutdown_deadline`: leaves
    /// the cluster's placement (virtual actors move to their next owners:
    /// peers are told and place new calls elsewhere at once, and a call
    /// queued for a handed-off activation is refused unapplied, so its
    /// caller retries it there under its key), drains the other actors'
    /// mailboxes (half the deadline at most), stops every actor after the
    /// message it is handling (timers go with them; the journal has synced
    /// every acknowledged write already), then closes the node's
    /// connections and the operator endpoint.
    pub async fn shutdown(mut self) -> ShutdownReport {
        let env = self.system.env().clone();
        let started = env.now();
        let deadline = self.config.limits.shutdown_deadline;
        let handed_off = self.admin.virtual_activations();
        if let Some(dist) = &self.distribution {
            dist.leave();
        }
        let emptied = self.system.drain(deadline / 2).await;
        let left = deadline.saturating_sub(env.now().saturating_duration_since(started));
        let stopping = self.system.shutdown();
        let drained = emptied && env.timeout(left, stopping).await.is_ok();
        if !drained {
            tracing::warn!(
                ?deadline,
                "shutdown deadline passed with actors still running"
            );
        }
        if let Some(dist) = &self.distribution {
            dist.shutdown();
        }
        if let Some(operator) = &mut self.operator {
            operator.stop();
        }
        if let Some(reload) = self.tls_reload.take() {
            reload.abort();
        }
        let took = env.now().saturating_duration_since(started);
        tracing::info!(handed_off, drained, ?took, "node stopped");
        ShutdownReport {
            handed_off,
            drained,
            took,
        }
    }
}

fn install_logging(config: &NodeConfig) {
    let level = logging::parse_level(&config.log.level).unwrap_or(tracing::Level::INFO);
    let format = match config.log.format {
        LogFormatName::Text => LogFormat::Text,
        LogFormatName::Json => LogFormat::Json,
    };
    // A program (or test) that set its own subscriber keeps it.
    logging::install(LogConfig {
        level,
        format,
        output: LogOutput::Stderr,
    });
}
