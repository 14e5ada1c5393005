//! The node's metrics: one `prometheus-client` registry per node, with the
//! runtime's own families and room for the user's.
//!
//! Every family is named `plexspaces_...` with base units (`_seconds`,
//! `_bytes`) and `_total` on counters, as Prometheus users expect.
//! Cardinality is bounded by construction: labels are actor *kinds* (Rust
//! types, a fixed set per program), workflow kinds, operations, states and
//! directions, never actor ids (a [`MetricsFacet`](crate::actor::MetricsFacet)
//! adds an `actor` label only when asked to, for a bounded number of actors).
//!
//! This module is a leaf: it knows no other part of the runtime, so the
//! actor layer, the journal, the network and the workflows can all record
//! into it. What is read at scrape time (membership, process resources)
//! comes in through [`NodeMetrics::register_collector`].

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Bucket bounds (seconds) of the latency histograms: 10 µs to ~10 s.
pub const LATENCY_BUCKETS_SECONDS: [f64; 14] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.05,
    0.25, 1.0, 10.0,
];

/// The most per-actor latency series one node keeps.
pub const PER_ACTOR_SERIES_MAX: usize = 1000;

/// The most Pushgateway URLs one node pushes to.
pub const PUSH_TARGETS_MAX: usize = 16;

/// Bucket bounds of the size histograms (records per batch, mailbox depth).
pub const SIZE_BUCKETS: [f64; 12] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
];

/// The most user-registered metrics one node keeps (custom counters,
/// gauges and histograms); registering more is a typed error.
pub const CUSTOM_METRICS_MAX: usize = 1024;

/// Label: an actor kind (the actor's Rust type, paths stripped).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// The kind.
    pub kind: String,
}

/// Label: an actor kind and a state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindStateLabel {
    /// The kind.
    pub kind: String,
    /// The state (`starting`, `active`; for exits `normal`, `failed`).
    pub state: &'static str,
}

/// Label: an actor kind and one actor of it (only for facets asked to).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActorLabel {
    /// The kind.
    pub kind: String,
    /// The actor's id.
    pub actor: String,
}

/// Label: the journal backend (`memory`, `file`, `shared`, `custom`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendLabel {
    /// The backend.
    pub backend: &'static str,
}

/// Label: a direction (`sent`, `received`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabel {
    /// The direction.
    pub direction: &'static str,
}

/// Label: an operation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabel {
    /// The operation.
    pub op: &'static str,
}

/// Label: an outcome (`ok`, `failed`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// The outcome.
    pub outcome: &'static str,
}

/// Label: why a security facet refused a message.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabel {
    /// `unauthenticated`, `forbidden` or `tenant`.
    pub kind: &'static str,
    /// The check that failed (`expired`, `bad_signature`, `rbac`,
    /// `policy`, ...): a fixed set, so the family stays small.
    pub reason: &'static str,
}

/// Label: a workflow kind and a run status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkflowLabel {
    /// The workflow kind.
    pub kind: String,
    /// `started`, `completed`, `failed`, `cancelled`.
    pub status: &'static str,
}

/// The families the runtime's collectors write at scrape time (after
/// `plexspaces_`, before unit suffixes): reserved like the registered ones.
const COLLECTED: [&str; 7] = [
    "cluster_members",
    "process_cpu",
    "process_resident_memory",
    "process_open_fds",
    "process_max_fds",
    "runtime_tasks",
    "runtime_workers",
];

/// Registers the runtime's families and remembers their names, so the
/// names users may not take are the ones registered, not a second list.
struct Families<'a> {
    registry: &'a mut Registry,
    names: std::collections::BTreeSet<String>,
}

impl Families<'_> {
    fn add(&mut self, name: &str, help: &str, metric: impl prometheus_client::registry::Metric) {
        self.names.insert(name.to_string());
        self.registry.register(name, help, metric);
    }

    fn add_unit(
        &mut self,
        name: &str,
        help: &str,
        unit: Unit,
        metric: impl prometheus_client::registry::Metric,
    ) {
        self.names.insert(name.to_string());
        self.registry.register_with_unit(name, help, unit, metric);
    }
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS_SECONDS)
}

fn size_histogram() -> Histogram {
    Histogram::new(SIZE_BUCKETS)
}

/// The actor layer's families.
#[derive(Debug)]
pub struct ActorMetrics {
    /// `plexspaces_actors{kind,state}`: live actors.
    pub actors: Family<KindStateLabel, Gauge>,
    /// `plexspaces_actor_exits_total{kind,state}`: exits, normal or failed.
    pub exits: Family<KindStateLabel, Counter>,
    /// `plexspaces_messages_total{kind}`: messages taken from mailboxes.
    pub messages: Family<KindLabel, Counter>,
    /// `plexspaces_message_failures_total{kind}`: handlers that returned an
    /// error or panicked.
    pub failures: Family<KindLabel, Counter>,
    /// `plexspaces_messages_rejected_total{kind}`: messages a facet refused.
    pub rejected: Family<KindLabel, Counter>,
    /// `plexspaces_mailbox_depth{kind}`: queued messages over the kind's
    /// actors, as each last saw its mailbox.
    pub mailbox_depth: Family<KindLabel, Gauge>,
    /// `plexspaces_message_handling_seconds{kind}`: handler latency
    /// (recorded by the metrics facet, which pays for the clock reads).
    pub handling: HistogramFamily<KindLabel>,
    /// `plexspaces_message_handling_by_actor_seconds{kind,actor}`: per actor,
    /// for facets configured with `per_actor`.
    pub handling_by_actor: HistogramFamily<ActorLabel>,
    /// Series in `handling_by_actor`, bounded by [`PER_ACTOR_SERIES_MAX`].
    actor_series: std::sync::atomic::AtomicUsize,
    /// `plexspaces_asks_timed_out_total`.
    pub asks_timed_out: Counter,
    /// `plexspaces_supervisor_restarts_total`.
    pub supervisor_restarts: Counter,
}

impl ActorMetrics {
    /// The latency series of one actor, unless [`PER_ACTOR_SERIES_MAX`]
    /// exist (then `None`: the actor is counted in its kind only).
    pub fn actor_series(&self, label: &ActorLabel) -> Option<Histogram> {
        use std::sync::atomic::Ordering;
        let taken = self
            .actor_series
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < PER_ACTOR_SERIES_MAX).then_some(n + 1)
            });
        taken.ok()?;
        Some(self.handling_by_actor.get_or_create_owned(label))
    }

    /// Removes an actor's series (its actor stopped or its facet left).
    pub fn drop_actor_series(&self, label: &ActorLabel) {
        if self.handling_by_actor.remove(label) {
            self.actor_series
                .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        }
    }
}

/// The journal's families (every backend; fsync figures from the file
/// journal).
#[derive(Debug)]
pub struct JournalMetrics {
    /// `plexspaces_journal_appends_total{backend}`: records appended.
    pub appends: Family<BackendLabel, Counter>,
    /// `plexspaces_journal_append_bytes_total{backend}`.
    pub append_bytes: Family<BackendLabel, Counter>,
    /// `plexspaces_journal_append_seconds{backend}`: until durable.
    pub append_latency: HistogramFamily<BackendLabel>,
    /// `plexspaces_journal_errors_total{backend}`.
    pub errors: Family<BackendLabel, Counter>,
    /// `plexspaces_journal_fsyncs_total`: group commits of the file journal.
    pub fsyncs: Counter,
    /// `plexspaces_journal_fsync_seconds`: write + fdatasync of one batch.
    pub fsync_latency: Histogram,
    /// `plexspaces_journal_fsync_bytes_total`.
    pub fsync_bytes: Counter,
    /// `plexspaces_journal_batch_records`: records per group commit.
    pub batch_records: Histogram,
    /// `plexspaces_journal_replay_seconds`: recovering one stream.
    pub replay_latency: Histogram,
    /// `plexspaces_journal_replayed_records_total`.
    pub replayed_records: Counter,
    /// `plexspaces_journal_checkpoints_total`: checkpoints saved.
    pub checkpoints: Counter,
}

/// The node links' families.
#[derive(Debug)]
pub struct RemoteMetrics {
    /// `plexspaces_remote_bytes_total{direction}`.
    pub bytes: Family<DirectionLabel, Counter>,
    /// `plexspaces_remote_frames_total{direction}`.
    pub frames: Family<DirectionLabel, Counter>,
    /// `plexspaces_handshake_failures_total`.
    pub handshake_failures: Counter,
}

/// Tuple spaces, workflows and reminders.
#[derive(Debug)]
pub struct ServiceMetrics {
    /// `plexspaces_tuplespace_operations_total{op}`.
    pub tuplespace_ops: Family<OpLabel, Counter>,
    /// `plexspaces_tuplespace_blocked_takers`: `take`/`read` calls waiting.
    pub tuplespace_blocked: Gauge,
    /// `plexspaces_workflow_runs_total{kind,status}`.
    pub workflow_runs: Family<WorkflowLabel, Counter>,
    /// `plexspaces_security_refusals_total{kind,reason}`: messages the
    /// security facets refused.
    pub security_refusals: Family<RefusalLabel, Counter>,
    /// `plexspaces_workflow_step_seconds{kind}`: steps executed (not
    /// replayed).
    pub workflow_steps: HistogramFamily<KindLabel>,
    /// `plexspaces_workflow_steps_replayed_total{kind}`.
    pub workflow_steps_replayed: Family<KindLabel, Counter>,
    /// `plexspaces_reminders_due_total`: reminders that came due and
    /// went out for delivery (retries included).
    pub reminders_due: Counter,
    /// `plexspaces_reminders_fired_total`: deliveries that succeeded.
    pub reminders_fired: Counter,
    /// `plexspaces_reminders_late_total`: first delivery attempts over a
    /// second after due.
    pub reminders_late: Counter,
    /// `plexspaces_reminder_lateness_seconds`: of first attempts.
    pub reminder_lateness: Histogram,
}

/// A kind's handles, looked up once per actor (at spawn), so recording a
/// message is an atomic add, never a label lookup.
#[derive(Debug)]
pub struct KindMetrics {
    /// The kind's label value.
    pub kind: String,
    /// Live actors starting.
    pub starting: Gauge,
    /// Live actors active.
    pub active: Gauge,
    /// Exits normal.
    pub exits_normal: Counter,
    /// Exits failed.
    pub exits_failed: Counter,
    /// Messages taken.
    pub messages: Counter,
    /// Handler errors and panics.
    pub failures: Counter,
    /// Facet rejections.
    pub rejected: Counter,
    /// Mailbox depth over the kind's actors.
    pub mailbox_depth: Gauge,
    /// Handler latency (metrics facet).
    pub handling: Histogram,
}

/// Why a custom metric could not be registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricError {
    /// The name is not `[a-zA-Z_][a-zA-Z0-9_]*`.
    InvalidName(String),
    /// A metric of that name, of another type, exists.
    TypeMismatch(String),
    /// [`CUSTOM_METRICS_MAX`] metrics exist already.
    TooMany,
    /// The name is one of the runtime's own families.
    Reserved(String),
    /// The metrics facet is not attached to an actor yet, so it has no
    /// node registry to register in.
    Unattached,
}

impl std::fmt::Display for MetricError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetricError::InvalidName(name) => write!(
                f,
                "metric name {name:?} is not [a-zA-Z_][a-zA-Z0-9_]* (at most 128 bytes)"
            ),
            MetricError::TypeMismatch(name) => {
                write!(f, "metric {name:?} exists with another type")
            }
            MetricError::TooMany => write!(
                f,
                "a node keeps at most {CUSTOM_METRICS_MAX} custom metrics"
            ),
            MetricError::Reserved(name) => {
                write!(f, "metric name {name:?} is one of the runtime's own")
            }
            MetricError::Unattached => write!(
                f,
                "the metrics facet is not attached to an actor yet (register metrics from a handler or pre_start)"
            ),
        }
    }
}

impl std::error::Error for MetricError {}

/// One user-registered metric.
#[derive(Clone, Debug)]
enum Custom {
    Counter(Counter),
    Gauge(Gauge),
    Histogram(Histogram),
}

/// A node's metrics registry. Cheap to clone; clones share it. Every
/// [`Env`](crate::Env) carries one ([`Env::metrics`](crate::Env::metrics)).
#[derive(Clone, Debug)]
pub struct NodeMetrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Mutex<Registry>,
    actors: ActorMetrics,
    journal: JournalMetrics,
    remote: RemoteMetrics,
    services: ServiceMetrics,
    /// Bounded by the number of actor types in the program.
    kinds: Mutex<BTreeMap<String, Arc<KindMetrics>>>,
    /// The same, by Rust type, so a spawn finds its kind without building
    /// the label.
    types: Mutex<BTreeMap<std::any::TypeId, Arc<KindMetrics>>>,
    /// Bounded by [`CUSTOM_METRICS_MAX`].
    custom: Mutex<BTreeMap<String, Custom>>,
    /// The runtime's own family names (and their first word, so a user's
    /// `messages_total` cannot shadow `messages`): refused to users.
    reserved: Mutex<std::collections::BTreeSet<String>>,
    /// Pushgateway URLs pushed to (one pusher each); bounded by
    /// [`PUSH_TARGETS_MAX`].
    pushing: Mutex<std::collections::BTreeSet<String>>,
    /// `plexspaces_metrics_pushes_total{outcome}`.
    pushes: Family<OutcomeLabel, Counter>,
    /// Read at scrape time; bounded by the runtime's subsystems.
    collectors: Arc<Collectors>,
}

/// Metrics read at scrape time (a `prometheus-client` collector that
/// shares the encoder, so several can be kept under one registration).
pub trait ScrapeCollector: std::fmt::Debug + Send + Sync + 'static {
    /// Encodes the metrics as they are now.
    fn encode(&self, encoder: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error>;
}

/// The collectors set by key, registered once as one collector.
#[derive(Debug, Default)]
struct Collectors(Mutex<BTreeMap<&'static str, Box<dyn ScrapeCollector>>>);

impl Collector for Collectors {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for collector in lock(&self.0).values() {
            collector.encode(&mut encoder)?;
        }
        Ok(())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding it left plain data: still sound to read.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Default for NodeMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl NodeMetrics {
    /// A registry with the runtime's families, all at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("plexspaces");
        let actors = ActorMetrics {
            actors: Family::default(),
            exits: Family::default(),
            messages: Family::default(),
            failures: Family::default(),
            rejected: Family::default(),
            mailbox_depth: Family::default(),
            handling: Family::new_with_constructor(latency_histogram),
            handling_by_actor: Family::new_with_constructor(latency_histogram),
            actor_series: std::sync::atomic::AtomicUsize::new(0),
            asks_timed_out: Counter::default(),
            supervisor_restarts: Counter::default(),
        };
        let mut r = Families {
            registry: &mut registry,
            names: COLLECTED.iter().map(|n| n.to_string()).collect(),
        };
        r.add(
            "actors",
            "Live actors by kind and state",
            actors.actors.clone(),
        );
        r.add(
            "actor_exits",
            "Actor exits by kind, normal or failed",
            actors.exits.clone(),
        );
        r.add(
            "messages",
            "Messages taken from mailboxes, by actor kind",
            actors.messages.clone(),
        );
        r.add(
            "message_failures",
            "Handlers that returned an error or panicked, by actor kind",
            actors.failures.clone(),
        );
        r.add(
            "messages_rejected",
            "Messages a facet refused before the handler, by actor kind",
            actors.rejected.clone(),
        );
        r.add(
            "mailbox_depth",
            "Messages queued for the actors of a kind, as each last saw its mailbox",
            actors.mailbox_depth.clone(),
        );
        r.add_unit(
            "message_handling",
            "Handler latency by actor kind (actors with a metrics facet)",
            Unit::Seconds,
            actors.handling.clone(),
        );
        r.add_unit(
            "message_handling_by_actor",
            "Handler latency per actor (metrics facets configured per_actor)",
            Unit::Seconds,
            actors.handling_by_actor.clone(),
        );
        r.add(
            "asks_timed_out",
            "Asks whose reply did not come before the deadline",
            actors.asks_timed_out.clone(),
        );
        r.add(
            "supervisor_restarts",
            "Children restarted by supervisors",
            actors.supervisor_restarts.clone(),
        );
        let journal = JournalMetrics {
            appends: Family::default(),
            append_bytes: Family::default(),
            append_latency: Family::new_with_constructor(latency_histogram),
            errors: Family::default(),
            fsyncs: Counter::default(),
            fsync_latency: latency_histogram(),
            fsync_bytes: Counter::default(),
            batch_records: size_histogram(),
            replay_latency: latency_histogram(),
            replayed_records: Counter::default(),
            checkpoints: Counter::default(),
        };
        r.add(
            "journal_appends",
            "Journal records appended, by backend",
            journal.appends.clone(),
        );
        r.add_unit(
            "journal_append",
            "Journal bytes appended, by backend",
            Unit::Bytes,
            journal.append_bytes.clone(),
        );
        r.add_unit(
            "journal_append",
            "Time from an append to its record being durable, by backend",
            Unit::Seconds,
            journal.append_latency.clone(),
        );
        r.add(
            "journal_errors",
            "Journal operations that failed, by backend",
            journal.errors.clone(),
        );
        r.add(
            "journal_fsyncs",
            "Group commits (write and fdatasync) of the file journal",
            journal.fsyncs.clone(),
        );
        r.add_unit(
            "journal_fsync",
            "Time to write and fdatasync one group commit",
            Unit::Seconds,
            journal.fsync_latency.clone(),
        );
        r.add_unit(
            "journal_fsync",
            "Bytes made durable by group commits",
            Unit::Bytes,
            journal.fsync_bytes.clone(),
        );
        r.add(
            "journal_batch_records",
            "Records per group commit",
            journal.batch_records.clone(),
        );
        r.add_unit(
            "journal_replay",
            "Time to recover one stream (checkpoint and replay)",
            Unit::Seconds,
            journal.replay_latency.clone(),
        );
        r.add(
            "journal_replayed_records",
            "Records replayed while recovering streams",
            journal.replayed_records.clone(),
        );
        r.add(
            "journal_checkpoints",
            "Checkpoints saved",
            journal.checkpoints.clone(),
        );
        let remote = RemoteMetrics {
            bytes: Family::default(),
            frames: Family::default(),
            handshake_failures: Counter::default(),
        };
        r.add_unit(
            "remote",
            "Bytes on node links, sent or received",
            Unit::Bytes,
            remote.bytes.clone(),
        );
        r.add(
            "remote_frames",
            "Frames on node links, sent or received",
            remote.frames.clone(),
        );
        r.add(
            "handshake_failures",
            "Node link handshakes that failed (either side)",
            remote.handshake_failures.clone(),
        );
        let services = ServiceMetrics {
            tuplespace_ops: Family::default(),
            tuplespace_blocked: Gauge::default(),
            workflow_runs: Family::default(),
            security_refusals: Family::default(),
            workflow_steps: Family::new_with_constructor(latency_histogram),
            workflow_steps_replayed: Family::default(),
            reminders_due: Counter::default(),
            reminders_fired: Counter::default(),
            reminders_late: Counter::default(),
            reminder_lateness: latency_histogram(),
        };
        r.add(
            "security_refusals",
            "Messages refused by the security facets, by kind and failed check",
            services.security_refusals.clone(),
        );
        r.add(
            "tuplespace_operations",
            "Tuple space operations, by operation",
            services.tuplespace_ops.clone(),
        );
        r.add(
            "tuplespace_blocked_takers",
            "Tuple space reads and takes waiting for a match",
            services.tuplespace_blocked.clone(),
        );
        r.add(
            "workflow_runs",
            "Workflow runs by kind and status",
            services.workflow_runs.clone(),
        );
        r.add_unit(
            "workflow_step",
            "Workflow step latency, steps executed (not replayed), by kind",
            Unit::Seconds,
            services.workflow_steps.clone(),
        );
        r.add(
            "workflow_steps_replayed",
            "Workflow steps answered from the journal, by kind",
            services.workflow_steps_replayed.clone(),
        );
        r.add(
            "reminders_due",
            "Reminder deliveries started (came due, or retried)",
            services.reminders_due.clone(),
        );
        r.add(
            "reminders_fired",
            "Reminder deliveries that succeeded",
            services.reminders_fired.clone(),
        );
        r.add(
            "reminders_late",
            "Reminders whose first delivery started over a second after due",
            services.reminders_late.clone(),
        );
        r.add_unit(
            "reminder_lateness",
            "How long after its due time a reminder fired",
            Unit::Seconds,
            services.reminder_lateness.clone(),
        );
        let pushes = Family::<OutcomeLabel, Counter>::default();
        r.add(
            "metrics_pushes",
            "Pushes of this registry to a Pushgateway, by outcome",
            pushes.clone(),
        );
        let reserved = r.names;
        let collectors = Arc::new(Collectors::default());
        registry.register_collector(Box::new(collectors.clone()));
        NodeMetrics {
            inner: Arc::new(Inner {
                collectors,
                registry: Mutex::new(registry),
                actors,
                journal,
                remote,
                services,
                kinds: Mutex::new(BTreeMap::new()),
                types: Mutex::new(BTreeMap::new()),
                custom: Mutex::new(BTreeMap::new()),
                reserved: Mutex::new(reserved),
                pushing: Mutex::new(std::collections::BTreeSet::new()),
                pushes,
            }),
        }
    }

    /// The actor layer's families.
    pub fn actors(&self) -> &ActorMetrics {
        &self.inner.actors
    }

    /// The journal's families.
    pub fn journal(&self) -> &JournalMetrics {
        &self.inner.journal
    }

    /// The node links' families.
    pub fn remote(&self) -> &RemoteMetrics {
        &self.inner.remote
    }

    /// Tuple spaces, workflows and reminders.
    pub fn services(&self) -> &ServiceMetrics {
        &self.inner.services
    }

    /// The handles of actor kind `kind` (made on first use).
    pub fn kind(&self, kind: &str) -> Arc<KindMetrics> {
        let mut kinds = lock(&self.inner.kinds);
        if let Some(found) = kinds.get(kind) {
            return found.clone();
        }
        let a = &self.inner.actors;
        let label = KindLabel {
            kind: kind.to_string(),
        };
        let state = |state| KindStateLabel {
            kind: kind.to_string(),
            state,
        };
        let made = Arc::new(KindMetrics {
            kind: kind.to_string(),
            starting: a.actors.get_or_create_owned(&state("starting")),
            active: a.actors.get_or_create_owned(&state("active")),
            exits_normal: a.exits.get_or_create_owned(&state("normal")),
            exits_failed: a.exits.get_or_create_owned(&state("failed")),
            messages: a.messages.get_or_create_owned(&label),
            failures: a.failures.get_or_create_owned(&label),
            rejected: a.rejected.get_or_create_owned(&label),
            mailbox_depth: a.mailbox_depth.get_or_create_owned(&label),
            handling: a.handling.get_or_create_owned(&label),
        });
        kinds.insert(kind.to_string(), made.clone());
        made
    }

    /// The handles of the actor kind of Rust type `T` (labelled with
    /// [`kind_name`] of its type name).
    pub fn kind_of<T: 'static>(&self) -> Arc<KindMetrics> {
        let type_id = std::any::TypeId::of::<T>();
        if let Some(found) = lock(&self.inner.types).get(&type_id) {
            return found.clone();
        }
        let made = self.kind(&kind_name(std::any::type_name::<T>()));
        lock(&self.inner.types).insert(type_id, made.clone());
        made
    }

    /// Sets the collector read at every scrape under `key` (membership,
    /// process resources...), replacing the one set before under the same
    /// key: a subsystem started again on the node reports once, not twice.
    pub fn set_collector(&self, key: &'static str, collector: impl ScrapeCollector) {
        lock(&self.inner.collectors.0).insert(key, Box::new(collector));
    }

    /// A counter of the user's: `plexspaces_<name>_total` (a name of the
    /// runtime's own families is refused). Registering the same name again
    /// returns the same counter.
    pub fn counter(&self, name: &str, help: &str) -> Result<Counter, MetricError> {
        match self.custom(name, help, || Custom::Counter(Counter::default()))? {
            Custom::Counter(c) => Ok(c),
            _ => Err(MetricError::TypeMismatch(name.to_string())),
        }
    }

    /// A gauge of the user's: `plexspaces_<name>`.
    pub fn gauge(&self, name: &str, help: &str) -> Result<Gauge, MetricError> {
        match self.custom(name, help, || Custom::Gauge(Gauge::default()))? {
            Custom::Gauge(g) => Ok(g),
            _ => Err(MetricError::TypeMismatch(name.to_string())),
        }
    }

    /// A histogram of the user's with `buckets` (upper bounds; the
    /// latency buckets in seconds if empty): `plexspaces_<name>`.
    pub fn histogram(
        &self,
        name: &str,
        help: &str,
        buckets: &[f64],
    ) -> Result<Histogram, MetricError> {
        let bounds: Vec<f64> = if buckets.is_empty() {
            LATENCY_BUCKETS_SECONDS.to_vec()
        } else {
            buckets.to_vec()
        };
        match self.custom(name, help, || {
            Custom::Histogram(Histogram::new(bounds.iter().copied()))
        })? {
            Custom::Histogram(h) => Ok(h),
            _ => Err(MetricError::TypeMismatch(name.to_string())),
        }
    }

    fn custom(
        &self,
        name: &str,
        help: &str,
        make: impl FnOnce() -> Custom,
    ) -> Result<Custom, MetricError> {
        if !valid_name(name) {
            return Err(MetricError::InvalidName(name.to_string()));
        }
        if lock(&self.inner.reserved).contains(name) {
            return Err(MetricError::Reserved(name.to_string()));
        }
        let mut custom = lock(&self.inner.custom);
        if let Some(found) = custom.get(name) {
            return Ok(found.clone());
        }
        if custom.len() >= CUSTOM_METRICS_MAX {
            return Err(MetricError::TooMany);
        }
        let made = make();
        {
            let mut registry = lock(&self.inner.registry);
            match &made {
                Custom::Counter(c) => registry.register(name, help, c.clone()),
                Custom::Gauge(g) => registry.register(name, help, g.clone()),
                Custom::Histogram(h) => registry.register(name, help, h.clone()),
            }
        }
        custom.insert(name.to_string(), made.clone());
        Ok(made)
    }

    /// Claims the pusher of `url` for the caller: false if one runs
    /// already or [`PUSH_TARGETS_MAX`] do.
    pub(crate) fn claim_push(&self, url: &str) -> bool {
        let mut pushing = lock(&self.inner.pushing);
        pushing.len() < PUSH_TARGETS_MAX && pushing.insert(url.to_string())
    }

    /// Counts a push by outcome.
    pub(crate) fn count_push(&self, ok: bool) {
        let outcome = if ok { "ok" } else { "failed" };
        self.inner
            .pushes
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    /// The registry in the Prometheus text format (version 0.0.4), as
    /// `GET /metrics` serves it.
    pub fn render_prometheus(&self) -> String {
        let mut out = String::new();
        let registry = lock(&self.inner.registry);
        // Writing to a String cannot fail, but a collector (a user's,
        // through `set_collector`) may report an error: the scrape keeps
        // what was written and says so in the log, never panics.
        if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry) {
            tracing::warn!("a metrics collector failed during a scrape: {e}");
        }
        out
    }

    /// The registry in the OpenMetrics text format.
    pub fn render_openmetrics(&self) -> String {
        let mut out = String::new();
        let registry = lock(&self.inner.registry);
        // Writing to a String cannot fail, but a collector (a user's,
        // through `set_collector`) may report an error: the scrape keeps
        // what was written and says so in the log, never panics.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
            tracing::warn!("a metrics collector failed during a scrape: {e}");
        }
        out
    }
}

/// Whether `name` can name a metric: `[a-zA-Z_][a-zA-Z0-9_]*`, 1 to 128
/// bytes.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `text` as a label value every text-format parser reads back: `,` `=`
/// `"` `\\` and whitespace replaced.
pub fn label_safe(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            ',' => ';',
            '=' | '"' | '\\' => '_',
            c if c.is_whitespace() => '_',
            c => c,
        })
        .collect()
}

/// Seconds as the histograms take them.
pub fn seconds(elapsed: Duration) -> f64 {
    elapsed.as_secs_f64()
}

/// An actor kind's label: the Rust type name with module paths stripped
/// (`Durable<Bank>` for `plexspaces::durability::Durable<bank::Bank>`).
pub fn kind_name(type_name: &str) -> String {
    let mut out = String::with_capacity(type_name.len());
    let mut segment = String::new();
    for c in type_name.chars() {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            segment.push(c);
        } else {
            out.push_str(segment.rsplit("::").next().unwrap_or(""));
            segment.clear();
            out.push(c);
        }
    }
    out.push_str(segment.rsplit("::").next().unwrap_or(""));
    out.retain(|c| c != ' ');
    label_safe(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_drop_module_paths() {
        assert_eq!(kind_name("a::b::Counter"), "Counter");
        assert_eq!(
            kind_name("plexspaces::durability::Durable<bank::Bank>"),
            "Durable<Bank>"
        );
        assert_eq!(kind_name("x::Pair<a::A, (u8, b::B)>"), "Pair<A;(u8;B)>");
        assert_eq!(kind_name("Plain"), "Plain");
    }

    #[test]
    fn custom_metrics_are_typed_named_and_bounded() {
        let m = NodeMetrics::new();
        let c = m.counter("orders", "orders placed").unwrap();
        c.inc();
        assert_eq!(
            m.counter("orders", "again").unwrap().get(),
            1,
            "same counter"
        );
        assert_eq!(
            m.gauge("orders", "a gauge").unwrap_err(),
            MetricError::TypeMismatch("orders".into())
        );
        for bad in ["", "9lives", "has-dash", "spa ce", &"x".repeat(129)] {
            assert_eq!(
                m.counter(bad, "").unwrap_err(),
                MetricError::InvalidName(bad.to_string())
            );
        }
        for i in 1..CUSTOM_METRICS_MAX {
            m.gauge(&format!("g{i}"), "").unwrap();
        }
        assert_eq!(m.gauge("one_more", "").unwrap_err(), MetricError::TooMany);
        let text = m.render_prometheus();
        assert!(text.contains("plexspaces_orders_total 1\n"), "{text}");
        assert_eq!(
            m.counter("messages", "").unwrap_err(),
            MetricError::Reserved("messages".into())
        );
    }

    #[test]
    fn kind_handles_are_shared_and_exported() {
        let m = NodeMetrics::new();
        let a = m.kind("Counter");
        let b = m.kind("Counter");
        assert!(Arc::ptr_eq(&a, &b));
        a.messages.inc_by(3);
        a.active.inc();
        let text = m.render_prometheus();
        assert!(
            text.contains("plexspaces_messages_total{kind=\"Counter\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("plexspaces_actors{kind=\"Counter\",state=\"active\"} 1"),
            "{text}"
        );
    }
}
