//! Virtual actors (the design's VirtualActorFacet, Orleans-inspired): an
//! actor id that is always addressable. The first message activates it on
//! the node placement chooses; it deactivates after an idle timeout; its
//! state lives in its journal, so the next activation (here or on another
//! node) carries on where the last one stopped.
//!
//! A virtual actor is a [`DurableActor`]; every node registers the kind
//! with [`VirtualActors::register`] (the same kind name, journal backend and
//! factory), then talks to ids through [`VirtualRef::call`].
//!
//! - **Placement**: rendezvous hashing of `kind:id` over the members this
//!   node sees Up or Suspect. Every node with the same view picks the same
//!   owner; a node that leaves moves only its own ids.
//! - **Activation**: lazy (default: on the first message) or eager (when a
//!   ref is made with [`VirtualActors::get`]). Recovery replays the actor's
//!   journal before the first message; with a [`JournalBackend::Shared`]
//!   journal that works on any node.
//! - **Deactivation**: after `deactivation_timeout` without messages, and
//!   at once when placement moves the id elsewhere (a node joined or came
//!   back), so in a healthy cluster an id is active on at most one node.
//! - **Failover**: when a node is declared down, the next call for its ids
//!   is placed on a surviving node and recovers from the shared journal.
//! - **Retries**: [`VirtualRef::call`] carries an idempotency key and
//!   retries, within its timeout, whatever did not apply the request
//!   (activation moving, node down, connection lost, activation fenced):
//!   the key makes a retry of an already applied request return the
//!   original reply instead of applying it twice.
//!
//! **Partitions.** Each side of a partition declares the other down and
//! places the ids on its own side, so an id may be *active* on both sides.
//! The shared journal keeps that safe: an activation claims the actor's
//! stream before it recovers, which fences every earlier activation out;
//! a fenced activation cannot append, so it answers nothing it has not made
//! durable, fails and stops (its callers retry). Writes are never lost or
//! forked, but the two sides take turns: requests on the side that does not
//! hold the latest claim fail over again, and a side that cannot reach the
//! journal server cannot make progress at all. After the partition heals,
//! placement agrees again and the extra activation is handed off.

mod host;
pub mod mobility;
pub(crate) mod placement;
pub(crate) mod service_kind;

pub(crate) use host::eligible_nodes;

use crate::actor::facet::{FacetSpec, Headers};
use crate::actor::{ActorId, ActorRef, ActorSystem, AskError};
use crate::durability::lost_claims::{CLAIM_LOSS_HOLD, LostClaims};
use crate::durability::{
    DurabilityConfig, Durable, DurableActor, JournalBackend, Request, RequestKind,
};
use crate::env::NodeName;
use crate::observability::CheckOutcome;
use crate::retry::{Backoff, RetryUntil};
use host::{Factory, Host, HostActivator, NotHere};
pub use mobility::{MigrationError, MobilityConfig, MobilityFacet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// When an id is activated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ActivationStrategy {
    /// On its first message (the default).
    #[default]
    Lazy,
    /// As soon as a ref to it is made with [`VirtualActors::get`], so the
    /// first message finds it recovered.
    Eager,
}

/// How one kind of virtual actor is hosted.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct VirtualConfig {
    /// The kind's name, the same on every node (1 or more of
    /// `[A-Za-z0-9._-]`).
    pub kind: String,
    /// Where the actors' journals live. Use [`JournalBackend::Shared`] in
    /// a cluster, so an id that moves finds its history.
    pub journal: JournalBackend,
    /// Lazy (default) or eager activation.
    pub activation_strategy: ActivationStrategy,
    /// Idle time after which an activation is deactivated (default 5 min).
    pub deactivation_timeout: Duration,
    /// Journaling and recovery of each activation.
    pub durability: DurabilityConfig,
    /// Each activation's mailbox capacity (default 1024).
    pub mailbox_capacity: usize,
    /// The longest one attempt of a call waits before it is retried
    /// (default 1 s): a node that died without being declared down yet
    /// costs this much per attempt.
    pub attempt_timeout: Duration,
    /// First pause between attempts (default 10 ms), doubling up to
    /// `retry_max` (default 500 ms), with jitter.
    pub retry_min: Duration,
    /// Longest pause between attempts.
    pub retry_max: Duration,
    /// Facets declared once for the kind and attached to every
    /// activation, on whichever node it runs (register the kind, and any
    /// facet type named here, on every node). A kind's facets run for
    /// local and remote callers alike. Default: none.
    pub facets: Vec<FacetSpec>,
    /// Migration between nodes ([`VirtualActors::migrate`]); `None`
    /// (default) keeps placement to rendezvous hashing alone. Configure it
    /// alike on every node of the kind.
    pub mobility: Option<MobilityConfig>,
    /// A deliberately broken variant, for the simulator's tests: always
    /// present (so enabling the feature anywhere in a build breaks no
    /// struct literal), acted on only with the `planted-bugs` feature.
    #[doc(hidden)]
    pub planted_bug: Option<crate::PlantedBug>,
}

impl VirtualConfig {
    /// Enables migration for the kind (see [`mobility`]).
    pub fn with_mobility(mut self, mobility: MobilityConfig) -> Self {
        self.mobility = Some(mobility);
        self
    }

    /// Adds a facet every activation gets.
    pub fn with_facet(mut self, facet: FacetSpec) -> Self {
        self.facets.push(facet);
        self
    }

    /// The defaults for `kind`, journaling to `journal`.
    pub fn new(kind: impl Into<String>, journal: JournalBackend) -> Self {
        VirtualConfig {
            kind: kind.into(),
            journal,
            activation_strategy: ActivationStrategy::Lazy,
            deactivation_timeout: Duration::from_secs(300),
            durability: DurabilityConfig::default(),
            mailbox_capacity: ActorSystem::MAILBOX_CAPACITY_DEFAULT,
            attempt_timeout: Duration::from_secs(1),
            retry_min: Duration::from_millis(10),
            retry_max: Duration::from_millis(500),
            facets: Vec::new(),
            mobility: None,
            planted_bug: None,
        }
    }

    fn validate(&self) -> Result<(), VirtualError> {
        // A kind leaves room in an actor name for `:` and an id.
        crate::names::check_token("kind", &self.kind, ActorId::NAME_LEN_MAX / 2)
            .map_err(VirtualError::InvalidConfig)?;
        if self.deactivation_timeout.is_zero() || self.attempt_timeout.is_zero() {
            return Err(VirtualError::InvalidConfig(
                "deactivation_timeout and attempt_timeout must be positive".into(),
            ));
        }
        if self.retry_min.is_zero() || self.retry_max < self.retry_min {
            return Err(VirtualError::InvalidConfig(
                "need 0 < retry_min <= retry_max".into(),
            ));
        }
        if self.mailbox_capacity == 0 {
            return Err(VirtualError::InvalidConfig(
                "mailbox_capacity must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// A virtual actor kind or id was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum VirtualError {
    /// A setting is out of range.
    InvalidConfig(String),
    /// The id is empty, holds `@` or a control character, or `kind:id` is
    /// longer than an actor name may be
    /// ([`ActorId::NAME_LEN_MAX`](crate::actor::ActorId::NAME_LEN_MAX),
    /// 255 bytes: a UUID fits with room to spare).
    InvalidId(String),
}

impl fmt::Display for VirtualError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VirtualError::InvalidConfig(why) => write!(f, "invalid virtual actor config: {why}"),
            VirtualError::InvalidId(why) => write!(f, "invalid virtual actor id: {why}"),
        }
    }
}

impl std::error::Error for VirtualError {}

/// One kind of virtual actor, hosted on this node. Cheap to clone.
pub struct VirtualActors<A: DurableActor> {
    host: Arc<Host<A>>,
}

impl<A: DurableActor> Clone for VirtualActors<A> {
    fn clone(&self) -> Self {
        VirtualActors {
            host: self.host.clone(),
        }
    }
}

impl<A: DurableActor> fmt::Debug for VirtualActors<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VirtualActors")
            .field("kind", &self.host.config.kind)
            .field("node", self.host.system.node())
            .finish()
    }
}

/// Readiness follows the kind's claims too (`claims:<kind>`): not ready
/// while an id this node still owns lost its journal stream to a newer
/// activation elsewhere (a partition's other side, say) within
/// [`CLAIM_LOSS_HOLD`], claimed back here or not. Losses of ids placed
/// elsewhere since, and every loss when the cluster's view changes (a
/// partition healed), are forgotten.
fn watch_claims<A: DurableActor>(
    system: &ActorSystem,
    host: &Arc<Host<A>>,
) -> Result<(), VirtualError> {
    use crate::seams::Clock as _;
    let claims = LostClaims::of(system);
    let env = system.env().clone();
    let prefix = host.actor_name("");
    let weak = Arc::downgrade(host);
    system
        .health()
        .register(&format!("claims:{}", host.config.kind), move || {
            let outcome = match weak.upgrade() {
                None => CheckOutcome::ok("the kind is hosted here no longer"),
                Some(host) => {
                    claims.forget_before(env.now(), CLAIM_LOSS_HOLD);
                    let mut still_owned = Vec::new();
                    for (name, _) in claims.lost_with_prefix(&prefix) {
                        let id = &name[prefix.len()..];
                        if host.owner(id).as_ref() == Some(host.me()) {
                            still_owned.push(id.to_string());
                        } else {
                            claims.forget(&name);
                        }
                    }
                    match still_owned.len() {
                        0 => CheckOutcome::ok("every claim held"),
                        n => CheckOutcome::failing(format!(
                            "{n} id(s) placed here lost their journal claim to a newer \
                             activation elsewhere: {}{}",
                            still_owned
                                .iter()
                                .take(8)
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", "),
                            if n > 8 { ", ..." } else { "" }
                        )),
                    }
                }
            };
            Box::pin(async move { outcome })
        })
        .map_err(|e| VirtualError::InvalidConfig(e.to_string()))
}

impl<A: DurableActor> VirtualActors<A> {
    /// Hosts virtual actors of `config.kind` on `system`'s node. `factory`
    /// gives an id's initial state (used when its journal is empty). In a
    /// cluster, start distribution first, and register the kind on every
    /// node that may host it.
    pub fn register(
        system: &ActorSystem,
        config: VirtualConfig,
        factory: impl Fn(&str) -> A + Send + Sync + 'static,
    ) -> Result<Self, VirtualError> {
        config.validate()?;
        // Readiness follows the kind's journal: a node that cannot reach
        // it cannot activate (or keep) any id of the kind.
        system
            .health()
            .watch_journal(&format!("journal:{}", config.kind), config.journal.clone())
            .map_err(|e| VirtualError::InvalidConfig(e.to_string()))?;
        // Every facet the kind declares must build here, now, rather than
        // fail each activation later.
        for spec in &config.facets {
            spec.build(system.facet_types(), &config.kind)
                .map_err(|e| VirtualError::InvalidConfig(format!("facet: {e}")))?;
        }
        let factory: Factory<A> = Box::new(factory);
        let host = Host::new(system.clone(), config, factory);
        watch_claims(system, &host)?;
        if let Some(dist) = system.distribution() {
            dist.register_activator(&host.config.kind, Arc::new(HostActivator(host.clone())));
            let listener = Arc::downgrade(&host);
            let claims = LostClaims::of(system);
            let prefix = host.actor_name("");
            dist.on_view_change(Arc::new(move || {
                if let Some(host) = listener.upgrade() {
                    host.hand_off();
                }
                // Placement is agreed afresh: a claim lost under the old
                // view (across a partition) is no longer a disagreement.
                claims.forget_prefix(&prefix);
            }));
        }
        let every = (host.config.deactivation_timeout / 4)
            .clamp(Duration::from_millis(10), Duration::from_secs(10));
        let env = system.env().clone();
        drop(env.spawn(host::sweep_idle(Arc::downgrade(&host), every, env.clone())));
        if let Some(mobility) = &host.config.mobility {
            let refresh = mobility.refresh.max(Duration::from_millis(10));
            drop(env.spawn(refresh_placement(
                Arc::downgrade(&host),
                refresh,
                env.clone(),
            )));
        }
        Ok(VirtualActors { host })
    }

    /// A ref to virtual actor `id` (always valid; nothing runs until it is
    /// used, unless activation is eager).
    pub fn get(&self, id: &str) -> Result<VirtualRef<A>, VirtualError> {
        // `kind:id` is the activations' actor name.
        self.check_id(id).map_err(VirtualError::InvalidId)?;
        let target = VirtualRef {
            host: self.host.clone(),
            id: id.to_string(),
            headers: None,
        };
        if host::eager(self.host.config.activation_strategy) {
            // Best effort: a failure here is retried by the first call.
            let _ = target.route();
        }
        Ok(target)
    }

    /// The kind's name.
    pub fn kind(&self) -> &str {
        &self.host.config.kind
    }

    /// The ids active on this node, sorted.
    pub fn active_ids(&self) -> Vec<String> {
        self.host.active_ids()
    }

    /// The node placement chooses for `id`, as this node sees the cluster
    /// (`None` while no node is eligible).
    pub fn owner_of(&self, id: &str) -> Option<NodeName> {
        self.host.owner(id)
    }

    /// The nodes eligible to host, as this node sees the cluster (sorted).
    pub fn eligible_nodes(&self) -> Vec<NodeName> {
        self.host.eligible_nodes()
    }

    /// Moves `id` to `node` and keeps it there until [`released`](Self::release)
    /// (or while `node` is down, where rendezvous placement puts it). The
    /// override is durable before this returns; the activation on the old
    /// node ends as each node reads it (at once here, within
    /// `MobilityConfig::refresh` elsewhere), and the id activates on `node`
    /// at its next call. A node that is not an eligible member is refused,
    /// and nothing changes.
    pub async fn migrate(&self, id: &str, node: &NodeName) -> Result<(), MigrationError> {
        self.check_mobility(id)?;
        if !self.host.eligible_nodes().contains(node) {
            return Err(MigrationError::NodeUnavailable(node.clone()));
        }
        // Current first: the cap applies to the stream as every node reads it.
        let _ = self.host.refresh_placement().await;
        if self.host.placement.pinned(id).is_none()
            && self.host.placement.len() >= mobility::OVERRIDES_MAX
        {
            return Err(MigrationError::TooMany);
        }
        let entry = mobility::PlacementEntry {
            id: id.to_string(),
            node: Some(node.as_str().to_string()),
        };
        self.host.write_placement(&entry).await
    }

    /// Releases `id` from its migration: rendezvous placement decides
    /// again. Releasing an id that is not pinned records nothing.
    pub async fn release(&self, id: &str) -> Result<(), MigrationError> {
        self.check_mobility(id)?;
        let _ = self.host.refresh_placement().await;
        if self.host.placement.pinned(id).is_none() {
            return Ok(());
        }
        let entry = mobility::PlacementEntry {
            id: id.to_string(),
            node: None,
        };
        self.host.write_placement(&entry).await
    }

    /// The node `id` is pinned to, as this node has read the placement.
    pub fn pinned(&self, id: &str) -> Option<NodeName> {
        self.host.placement.pinned(id).map(|(node, _)| node)
    }

    /// How much of the placement stream this node has applied: two nodes
    /// with the same version and the same eligible nodes place every id
    /// alike.
    pub fn placement_version(&self) -> u64 {
        self.host.placement.version()
    }

    fn check_mobility(&self, id: &str) -> Result<(), MigrationError> {
        if self.host.config.mobility.is_none() {
            return Err(MigrationError::NotEnabled(self.host.config.kind.clone()));
        }
        self.check_id(id).map_err(MigrationError::InvalidId)
    }

    /// An id fits the kind's actor names (`kind:id`) and holds no `@`.
    fn check_id(&self, id: &str) -> Result<(), String> {
        let id_max = ActorId::NAME_LEN_MAX - self.host.config.kind.len() - 1;
        crate::names::check_free_form("virtual actor id", id, id_max, &['@'])
    }

    /// Deactivates every activation on this node (before leaving the
    /// cluster, say); later calls activate again.
    pub fn deactivate_all(&self) {
        self.host.deactivate_all();
    }
}

/// A ref to one virtual actor. Cheap to clone.
pub struct VirtualRef<A: DurableActor> {
    host: Arc<Host<A>>,
    id: String,
    /// Sent with every call (credentials, tenant, trace), if any.
    headers: Option<Arc<Headers>>,
}

impl<A: DurableActor> Clone for VirtualRef<A> {
    fn clone(&self) -> Self {
        VirtualRef {
            host: self.host.clone(),
            id: self.id.clone(),
            headers: self.headers.clone(),
        }
    }
}

impl<A: DurableActor> fmt::Debug for VirtualRef<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VirtualRef({}:{})", self.host.config.kind, self.id)
    }
}

/// Where one attempt goes.
enum Route<A: DurableActor> {
    /// This node's activation (local or a remote ref to the owner's).
    Actor(ActorRef<Durable<A>>),
    /// Nowhere yet; why.
    Wait(String),
}

impl<A: DurableActor> VirtualRef<A> {
    /// This ref, sending `headers` with every call (a caller's
    /// credentials and tenant, for the kind's security facets).
    pub fn with_headers(mut self, headers: Headers) -> Self {
        self.headers = Some(Arc::new(headers));
        self
    }

    /// The virtual actor's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn route(&self) -> Route<A> {
        let host = &self.host;
        match host.activate(&self.id) {
            Ok(actor) => Route::Actor(actor),
            Err(NotHere::NotYet) => Route::Wait("no activation can start yet".into()),
            Err(NotHere::Elsewhere(owner)) => {
                let Some(dist) = host.system.distribution() else {
                    return Route::Wait("no distribution".into());
                };
                let Some(id) = host::activation_id(host, &self.id, owner) else {
                    return Route::Wait("invalid activation name".into());
                };
                match dist.remote_ref::<Durable<A>>(&id) {
                    Ok(actor) => Route::Actor(actor),
                    Err(e) => Route::Wait(e.to_string()),
                }
            }
        }
    }

    /// Sends `msg` under idempotency key `key` to wherever the actor is
    /// active (activating it if need be) and waits for the reply, retrying
    /// what did not apply it, for at most `timeout` in all. A request is
    /// applied at most once per key (within the dedupe window), however
    /// often it is retried.
    pub async fn call(
        &self,
        key: impl Into<String>,
        msg: A::Msg,
        timeout: Duration,
    ) -> Result<A::Reply, AskError>
    where
        A::Msg: Clone,
    {
        self.call_with(key, msg, timeout, Attempts::First).await
    }

    /// [`VirtualRef::call`] for a key this caller sent before without
    /// learning its outcome: every attempt is marked a retry (see
    /// [`crate::durability::Request::retry`]).
    pub async fn call_again(
        &self,
        key: impl Into<String>,
        msg: A::Msg,
        timeout: Duration,
    ) -> Result<A::Reply, AskError>
    where
        A::Msg: Clone,
    {
        self.call_with(key, msg, timeout, Attempts::Retried).await
    }

    /// Asks the read `msg` (one [`DurableActor::query`] answers) of the
    /// actor wherever it is active, activating it if need be: no key, no
    /// journal write. Retried like [`VirtualRef::call`] (a read is safe to
    /// repeat); a command sent this way is refused unapplied
    /// ([`ActorErrorKind::NotAQuery`](crate::actor::ActorErrorKind::NotAQuery)).
    pub async fn query(&self, msg: A::Msg, timeout: Duration) -> Result<A::Reply, AskError>
    where
        A::Msg: Clone,
    {
        self.call_with(String::new(), msg, timeout, Attempts::Query)
            .await
    }

    async fn call_with(
        &self,
        key: impl Into<String>,
        msg: A::Msg,
        timeout: Duration,
        mut attempts: Attempts,
    ) -> Result<A::Reply, AskError>
    where
        A::Msg: Clone,
    {
        let key = key.into();
        let env = self.host.env().clone();
        let config = &self.host.config;
        // How the actor is named in errors (on this node: its placement
        // may change between attempts).
        let named = ActorId::new(&self.host.actor_name(&self.id), env.node().clone())
            .expect("the id was checked by VirtualActors::get, which made this ref");
        let mut backoff = RetryUntil::new(
            &env,
            timeout,
            Backoff::new(config.retry_min, config.retry_max),
        );
        loop {
            let remaining = backoff.remaining();
            if remaining.is_zero() {
                return Err(AskError::Timeout {
                    actor: named,
                    after: timeout,
                });
            }
            let outcome = match self.route() {
                Route::Actor(actor) => {
                    let attempt = remaining.min(config.attempt_timeout);
                    let request = match attempts {
                        Attempts::First => Request::new(key.clone(), msg.clone()),
                        Attempts::Retried => Request {
                            kind: RequestKind::RetriedCommand,
                            ..Request::new(key.clone(), msg.clone())
                        },
                        Attempts::Query => Request::query(msg.clone()),
                    };
                    let outcome = match &self.headers {
                        Some(headers) => {
                            actor
                                .ask_with(request, Headers::clone(headers), attempt)
                                .await
                        }
                        None => actor.ask(request, attempt).await,
                    };
                    // Whatever became of this attempt, the next one asks
                    // again a key that may have been applied.
                    if attempts == Attempts::First {
                        attempts = Attempts::Retried;
                    }
                    if actor.is_local() {
                        self.host.touch(&self.id);
                    }
                    outcome
                }
                Route::Wait(why) => {
                    tracing::debug!(id = self.id, "virtual actor not reachable yet: {why}");
                    Err(AskError::Stopped(named.clone()))
                }
            };
            match outcome {
                Ok(reply) => return Ok(reply),
                Err(e) if retryable(&e) => {
                    tracing::debug!(id = self.id, "retrying a virtual actor call: {e}");
                }
                Err(e) => return Err(e),
            }
            backoff.pause().await;
        }
    }
}

/// What the attempts of one call send.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Attempts {
    /// A command, not sent before under its key.
    First,
    /// A command whose key may have been applied.
    Retried,
    /// A read.
    Query,
}

/// Whether a call's failure left the request unapplied or its outcome
/// unknown (applied under a key a retry finds in the dedupe table), so
/// asking again under the same key is safe and tells which.
pub(crate) fn not_applied_or_unknown(e: &AskError) -> bool {
    retryable(e)
}

/// Whether an attempt's failure left the request unapplied (or applied
/// under a key a retry finds in the dedupe table), so retrying is safe.
fn retryable(e: &AskError) -> bool {
    match e {
        AskError::Timeout { .. }
        | AskError::Stopped(_)
        | AskError::MailboxFull(_)
        | AskError::ConnectionLost(_)
        | AskError::NodeDown(_) => true,
        AskError::Failed(e) => e.is_unavailable(),
    }
}

/// Reads the kind's placement stream every `every` until the host is gone.
async fn refresh_placement<A: DurableActor>(
    host: std::sync::Weak<Host<A>>,
    every: Duration,
    env: crate::env::Env,
) {
    use crate::seams::Clock;
    loop {
        let Some(host) = host.upgrade() else {
            return;
        };
        if let Err(e) = host.refresh_placement().await {
            tracing::debug!(kind = %host.config.kind, "placement not read: {e}");
        }
        drop(host);
        env.sleep(every).await;
    }
}
