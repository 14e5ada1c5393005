//! The durable actor: journaling, exactly-once processing, checkpoints,
//! recovery and time travel around a [`DurableActor`]'s handler.

use super::DurabilityConfig;
use super::backend::JournalBackend;
use super::context::{DurableContext, Mode, Recorded};
use super::entry::{Entry, decode};
use super::error::{DurabilityError, ReplayDiverged};
use crate::actor::facet::FacetChain;
use crate::actor::{Actor, ActorError, ActorId, ActorRef, AskError, Context};
use crate::codec::{encode, encode_own};
use crate::env::Env;
use crate::seams::Clock;
use plexspaces_storage::journal::{Journal, JournalEntry};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::time::Duration;

/// An actor whose state survives crashes. The actor value *is* its state:
/// it is serialized for checkpoints and rebuilt by replaying its journal.
pub trait DurableActor: Serialize + DeserializeOwned + Send + 'static {
    /// What it receives.
    type Msg: Serialize + DeserializeOwned + Send + 'static;
    /// What it answers.
    type Reply: Serialize + DeserializeOwned + Send + 'static;

    /// Handles one message. Anything non-deterministic (side effects, time,
    /// randomness) must go through `ctx`, because replay runs this again.
    fn handle(
        &mut self,
        ctx: &mut DurableContext<'_>,
        msg: Self::Msg,
    ) -> impl Future<Output = Result<Self::Reply, ActorError>> + Send;

    /// Answers `msg` from the state without changing it (it has only
    /// `&self`), if `msg` is a read: such an answer is neither journaled
    /// nor remembered, so a read costs no journal write and needs no
    /// idempotency key. `None` (the default) means `msg` is a command.
    ///
    /// This is the actor's query path: [`ActorRef::query`] and
    /// [`VirtualRef::query`](crate::virtual_actor::VirtualRef::query) send a
    /// message here and nowhere else (a command sent that way is refused
    /// with [`ActorErrorKind::NotAQuery`](crate::actor::ActorErrorKind::NotAQuery),
    /// unapplied). A *command* this answers is answered here too, unless
    /// its key already has a journaled reply (which it gets instead) or it
    /// is a retry (see [`RequestKind::RetriedCommand`]).
    ///
    /// It may read the clock (`env`): a query is never replayed.
    fn query(&self, env: &Env, msg: &Self::Msg) -> Option<Self::Reply> {
        let _ = (env, msg);
        None
    }
}

/// A request to a durable actor: the message, its idempotency key and
/// whether it is a command or a query. A command whose key was seen before
/// gets the original reply and is not handled again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request<M> {
    /// The idempotency key (unique per distinct command; empty for a
    /// query).
    pub key: String,
    /// The message.
    pub msg: M,
    /// Command, retried command or query.
    pub kind: RequestKind,
}

/// How a durable actor takes a [`Request`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RequestKind {
    /// A command sent under its key for the first time.
    #[default]
    Command,
    /// A command whose sender sent this key before and does not know what
    /// became of it (its reply was lost, or an attempt is still on its
    /// way). It is never answered from memory ([`DurableActor::query`]):
    /// it is handled and its reply journaled under the key, even when it
    /// changes nothing, so that an earlier attempt arriving late is
    /// answered the same and not applied (an empty take answered from
    /// memory, then applied by its delayed first attempt, would take a
    /// tuple nobody receives); and a superseded activation cannot answer
    /// it from stale state, since its journal write is fenced.
    RetriedCommand,
    /// A read, answered by [`DurableActor::query`] alone: never journaled,
    /// never handled, no key. A message `query` does not answer is
    /// refused (`ActorErrorKind::NotAQuery`).
    Query,
}

impl<M> Request<M> {
    /// A first request of a command under `key`.
    pub fn new(key: impl Into<String>, msg: M) -> Self {
        Request {
            key: key.into(),
            msg,
            kind: RequestKind::Command,
        }
    }

    /// A query: no key, no journal write.
    pub fn query(msg: M) -> Self {
        Request {
            key: String::new(),
            msg,
            kind: RequestKind::Query,
        }
    }
}

/// What a recovery did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The actor recovered.
    pub actor: ActorId,
    /// The checkpoint it started from, if any.
    pub checkpoint_seq: Option<u64>,
    /// Messages replayed after it.
    pub replayed_messages: u64,
    /// Whether a message cut short by the crash was finished.
    pub finished_in_flight: bool,
}

#[derive(Serialize, Deserialize)]
struct CheckpointState {
    state: Vec<u8>,
    /// Recent idempotency keys and their encoded replies, oldest first.
    dedupe: Vec<(String, Vec<u8>)>,
}

/// Runs a [`DurableActor`] as an actor: spawn `Durable::new(state, journal,
/// config)` and send it [`Request`]s.
pub struct Durable<A: DurableActor> {
    state: A,
    journal: JournalBackend,
    config: DurabilityConfig,
    dedupe: BTreeMap<String, Vec<u8>>,
    dedupe_order: VecDeque<String>,
    since_checkpoint: u64,
    stream: String,
    /// When this activation last proved it still owns its stream (a
    /// claim, a write, or a claim check): queries older than
    /// `query_claim_check` check again first.
    owned_at: Option<crate::seams::Instant>,
}

type Reply<A> = Result<<A as DurableActor>::Reply, ActorError>;

impl<A: DurableActor> Durable<A> {
    /// A durable actor starting from `initial` (if its journal is empty)
    /// and journaling to `journal`.
    pub fn new(initial: A, journal: JournalBackend, config: DurabilityConfig) -> Self {
        Durable {
            state: initial,
            journal,
            config,
            dedupe: BTreeMap::new(),
            dedupe_order: VecDeque::new(),
            since_checkpoint: 0,
            stream: String::new(),
            owned_at: None,
        }
    }

    /// Journals under `stream` instead of the actor's id. A virtual actor
    /// uses its node-independent identity, so any node finds its history.
    /// A name longer than a stream allows is hashed
    /// ([`stream_for`](super::stream_for)).
    pub fn with_stream(mut self, stream: impl Into<String>) -> Self {
        self.stream = super::stream_for(&stream.into());
        self
    }

    /// The current state (for inspection; handlers change it).
    pub fn state(&self) -> &A {
        &self.state
    }

    fn remember(&mut self, key: String, reply: Vec<u8>) {
        if self.dedupe.insert(key.clone(), reply).is_none() {
            self.dedupe_order.push_back(key);
        }
        while self.dedupe_order.len() > self.config.dedupe_window {
            if let Some(old) = self.dedupe_order.pop_front() {
                self.dedupe.remove(&old);
            }
        }
    }

    /// Lends the state (mutably) and a context over the journal (shared)
    /// at once, as a handler needs both.
    fn split<'a>(
        &'a mut self,
        env: &'a Env,
        id: &'a ActorId,
        message: Handling<'a>,
        facets: Option<&'a mut FacetChain>,
    ) -> (&'a mut A, DurableContext<'a>) {
        let Handling {
            key: message_key,
            mode,
            recorded,
            pending,
        } = message;
        let ctx = DurableContext {
            env,
            id,
            facets,
            journal: &self.journal,
            stream: &self.stream,
            cache_side_effects: self.config.cache_side_effects,
            mode,
            recorded,
            pending,
            failure: None,
            #[cfg(feature = "planted-bugs")]
            rerun_effects_on_replay: self.config.planted_bug
                == Some(crate::PlantedBug::ReplaySideEffects),
            #[cfg(not(feature = "planted-bugs"))]
            rerun_effects_on_replay: false,
            message_key,
            effects_started: 0,
        };
        (&mut self.state, ctx)
    }

    /// Saves a checkpoint. `Err` only for a journal failure (fail-stop); a
    /// state that cannot be encoded is not checkpointed (recovery replays
    /// from the last checkpoint instead), which is logged, and tried again
    /// after the next interval.
    async fn checkpoint(&mut self, env: &Env) -> Result<(), DurabilityError> {
        self.since_checkpoint = 0;
        let state = match encode(&self.state, "state") {
            Ok(state) => state,
            Err(e) => {
                tracing::error!(stream = self.stream, "no checkpoint: {e}");
                return Ok(());
            }
        };
        let envelope = CheckpointState {
            state,
            dedupe: self
                .dedupe_order
                .iter()
                .map(|k| (k.clone(), self.dedupe[k].clone()))
                .collect(),
        };
        let seq = self.journal.last_seq(&self.stream);
        self.journal
            .save_checkpoint_metered(env, &self.stream, seq, &encode_own(&envelope))
            .await
            .map_err(|source| DurabilityError::Journal {
                doing: "saving a checkpoint",
                source,
            })?;
        Ok(())
    }

    /// Handles a new request: dedupe, handle, journal, reply.
    async fn process(
        &mut self,
        env: &Env,
        id: &ActorId,
        key: String,
        msg: A::Msg,
        facets: &mut FacetChain,
    ) -> (Reply<A>, Option<DurabilityError>) {
        if let Some(reply) = self.dedupe.get(&key) {
            return (decode_reply::<A>(reply), None);
        }
        let msg_bytes = match encode(&msg, "message") {
            Ok(bytes) => bytes,
            // Refused before anything runs or is journaled.
            Err(e) => return (Err(ActorError::unencodable(&e)), None),
        };
        let message = Entry::Message {
            key: key.clone(),
            msg: msg_bytes,
        }
        .encode();
        let handling = Handling {
            key: &key,
            mode: Mode::Live,
            recorded: VecDeque::new(),
            pending: vec![message],
        };
        let (state, mut ctx) = self.split(env, id, handling, Some(facets));
        let result = state.handle(&mut ctx, msg).await;
        if let Some(failure) = ctx.failure.take() {
            return (
                Err(ActorError::unavailable(failure.to_string())),
                Some(failure),
            );
        }
        let reply = encode_reply::<A>(&result);
        let mut entries = std::mem::take(&mut ctx.pending);
        entries.push(
            Entry::Reply {
                key: key.clone(),
                reply: reply.clone(),
            }
            .encode(),
        );
        let refs: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
        if let Err(source) = self
            .journal
            .append_all_metered(env, &self.stream, &refs)
            .await
        {
            let failure = DurabilityError::Journal {
                doing: "journaling a reply",
                source,
            };
            return (
                Err(ActorError::unavailable(failure.to_string())),
                Some(failure),
            );
        }
        self.remember(key, reply);
        self.since_checkpoint += 1;
        if self.since_checkpoint >= self.config.checkpoint_interval
            && let Err(failure) = self.checkpoint(env).await
        {
            return (result, Some(failure));
        }
        (result, None)
    }

    /// Checks the stream is still this activation's if the last proof is
    /// older than `query_claim_check`; `Err` (to fail-stop) if another
    /// activation claimed it since.
    async fn check_ownership(&mut self, env: &Env) -> Result<(), DurabilityError> {
        let now = env.now();
        let fresh = self
            .owned_at
            .is_some_and(|at| now.saturating_duration_since(at) < self.config.query_claim_check);
        if fresh {
            return Ok(());
        }
        self.journal
            .check_claim(&self.stream)
            .await
            .map_err(DurabilityError::Superseded)?;
        self.owned_at = Some(now);
        Ok(())
    }

    /// Rebuilds the state: latest checkpoint, then every message after it
    /// (finishing one a crash cut short).
    async fn recover(
        &mut self,
        env: &Env,
        id: &ActorId,
        facets: &mut FacetChain,
    ) -> Result<RecoveryReport, DurabilityError> {
        let mut report = RecoveryReport {
            actor: id.clone(),
            checkpoint_seq: None,
            replayed_messages: 0,
            finished_in_flight: false,
        };
        let journal_err = |source| DurabilityError::Journal {
            doing: "recovering",
            source,
        };
        let from = match self
            .journal
            .latest_checkpoint(&self.stream)
            .await
            .map_err(journal_err)?
        {
            Some(checkpoint) => {
                let saved: CheckpointState = decode(&checkpoint.state, "checkpoint")?;
                self.state = decode(&saved.state, "checkpointed state")?;
                for (key, reply) in saved.dedupe {
                    self.remember(key, reply);
                }
                report.checkpoint_seq = Some(checkpoint.seq);
                checkpoint.seq + 1
            }
            None => 1,
        };
        if !self.config.replay_on_activation {
            return Ok(report);
        }
        let entries = self
            .journal
            .replay_from(&self.stream, from)
            .await
            .map_err(journal_err)?;
        let mut at = 0;
        while at < entries.len() {
            let group = Group::read(&entries, &mut at)?;
            report.finished_in_flight |= group.reply.is_none();
            self.replay_group(env, id, group, Some(&mut *facets))
                .await?;
            report.replayed_messages += 1;
            self.since_checkpoint += 1;
        }
        Ok(report)
    }

    async fn replay_group(
        &mut self,
        env: &Env,
        id: &ActorId,
        group: Group,
        facets: Option<&mut FacetChain>,
    ) -> Result<(), DurabilityError> {
        let msg: A::Msg = decode(&group.msg, "message")?;
        let mode = Mode::Replay {
            complete: group.reply.is_some(),
        };
        let handling = Handling {
            key: &group.key,
            mode,
            recorded: group.effects.into(),
            pending: Vec::new(),
        };
        let (state, mut ctx) = self.split(env, id, handling, facets);
        let result = state.handle(&mut ctx, msg).await;
        if let Some(failure) = ctx.failure.take() {
            return Err(failure);
        }
        let reply = encode_reply::<A>(&result);
        match group.reply {
            Some((seq, journaled)) => {
                if ctx.cache_side_effects && !ctx.recorded.is_empty() {
                    let unused = ctx.recorded.len();
                    return Err(ReplayDiverged {
                        seq,
                        detail: format!("the handler skipped {unused} recorded side effect(s)"),
                    }
                    .into());
                }
                if journaled != reply {
                    return Err(ReplayDiverged {
                        seq,
                        detail: "the handler's reply differs from the journaled one".to_string(),
                    }
                    .into());
                }
                self.remember(group.key, journaled);
            }
            None => {
                let entry = Entry::Reply {
                    key: group.key.clone(),
                    reply: reply.clone(),
                }
                .encode();
                self.journal
                    .append_all_metered(env, &self.stream, &[&entry])
                    .await
                    .map_err(|source| DurabilityError::Journal {
                        doing: "journaling the reply of a message recovery finished",
                        source,
                    })?;
                self.remember(group.key, reply);
            }
        }
        Ok(())
    }
}

/// One message's entries: the message, its side effects, its reply (if the
/// crash did not cut it short).
/// The message a handler is about to handle: its key, whether it is live
/// or replayed, its journaled effects (replay) and the entries to write
/// with its first durable point.
struct Handling<'a> {
    key: &'a str,
    mode: Mode,
    recorded: VecDeque<(u64, String, Recorded)>,
    pending: Vec<Vec<u8>>,
}

struct Group {
    key: String,
    msg: Vec<u8>,
    effects: Vec<(u64, String, Recorded)>,
    reply: Option<(u64, Vec<u8>)>,
}

impl Group {
    fn read(entries: &[JournalEntry], at: &mut usize) -> Result<Group, DurabilityError> {
        let first = &entries[*at];
        let Entry::Message { key, msg } = Entry::decode(&first.data)? else {
            return Err(DurabilityError::Malformed {
                seq: first.seq,
                detail: "should start a message".into(),
            });
        };
        *at += 1;
        let mut group = Group {
            key,
            msg,
            effects: Vec::new(),
            reply: None,
        };
        while let Some(next) = entries.get(*at) {
            match Entry::decode(&next.data)? {
                Entry::Effect { name, value } => group.effects.push((next.seq, name, Ok(value))),
                Entry::Unencodable { name, error } => {
                    group.effects.push((next.seq, name, Err(error)))
                }
                Entry::Reply { key, reply } if key == group.key => {
                    group.reply = Some((next.seq, reply));
                    *at += 1;
                    break;
                }
                Entry::Reply { key, .. } => {
                    return Err(DurabilityError::Malformed {
                        seq: next.seq,
                        detail: format!("reply for {key:?} inside {:?}", group.key),
                    });
                }
                Entry::Message { .. } => {
                    // The previous message was cut short by a crash, and
                    // then... a newer one was journaled: impossible, since
                    // recovery finishes an interrupted message first.
                    return Err(DurabilityError::Malformed {
                        seq: next.seq,
                        detail: format!("a message before {:?} was never answered", group.key),
                    });
                }
            }
            *at += 1;
        }
        Ok(group)
    }
}

/// The journaled form of a reply. One that cannot be encoded is journaled
/// (and answered) as the error saying so, the same on every replay.
fn encode_reply<A: DurableActor>(result: &Reply<A>) -> Vec<u8> {
    match encode(&result.as_ref().map_err(|e| e.message()), "reply") {
        Ok(bytes) => bytes,
        Err(e) => encode_own(&Err::<(), String>(e.to_string())),
    }
}

fn decode_reply<A: DurableActor>(bytes: &[u8]) -> Reply<A> {
    match decode::<Result<A::Reply, String>>(bytes, "reply") {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(message)) => Err(ActorError::new(message)),
        Err(e) => Err(ActorError::new(e.to_string())),
    }
}

impl<A: DurableActor> Actor for Durable<A> {
    type Msg = Request<A::Msg>;
    type Reply = A::Reply;

    fn inner_message(request: &Request<A::Msg>) -> Option<&(dyn std::any::Any + Send)> {
        Some(&request.msg)
    }

    async fn pre_start(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        if self.stream.is_empty() {
            self.stream = super::stream_for(&ctx.id().to_string());
        }
        // Fencing first: on a shared journal, any earlier activation of this
        // stream can no longer write once this returns.
        self.journal
            .claim(&self.stream)
            .await
            .map_err(|e| ActorError::new(format!("claiming the journal stream: {e}")))?;
        self.owned_at = Some(ctx.env().now());
        let (env, id) = (ctx.env().clone(), ctx.id().clone());
        let started = env.now();
        // An activation is a trace of its own (sampled as the node says).
        let span = env.traces().span(
            "activate",
            opentelemetry::trace::SpanKind::Internal,
            vec![
                opentelemetry::KeyValue::new("plexspaces.actor", id.to_string()),
                opentelemetry::KeyValue::new("plexspaces.node", env.node().to_string()),
            ],
            &opentelemetry::Context::new(),
        );
        let recovered = self.recover(&env, &id, &mut ctx.facets).await;
        if let Some(cx) = span {
            use opentelemetry::trace::TraceContextExt;
            let span = cx.span();
            match &recovered {
                Ok(report) => span.set_attribute(opentelemetry::KeyValue::new(
                    "plexspaces.replayed_messages",
                    report.replayed_messages as i64,
                )),
                Err(e) => span.set_status(opentelemetry::trace::Status::error(e.to_string())),
            }
            span.end();
        }
        let report = recovered.map_err(|e| ActorError::new(e.to_string()))?;
        let metrics = env.metrics().journal();
        metrics
            .replay_latency
            .observe(crate::observability::metrics::seconds(env.now() - started));
        metrics.replayed_records.inc_by(report.replayed_messages);
        if let Some(on_recovered) = &self.config.on_recovered {
            on_recovered(&report);
        }
        Ok(())
    }

    async fn post_stop(&mut self, ctx: &mut Context<Self>, reason: &crate::actor::ExitReason) {
        // Only a clean stop: after a failure (a fail-stop on a journal
        // error, say) the state may be ahead of the journal.
        if self.config.checkpoint_on_stop
            && self.since_checkpoint > 0
            && !reason.is_failure()
            && let Err(e) = self.checkpoint(ctx.env()).await
        {
            tracing::debug!(stream = self.stream, "no checkpoint at stop: {e}");
        }
    }

    async fn handle(
        &mut self,
        ctx: &mut Context<Self>,
        request: Request<A::Msg>,
    ) -> Result<A::Reply, ActorError> {
        let (env, id) = (ctx.env().clone(), ctx.id().clone());
        let from_memory = match request.kind {
            RequestKind::Query => match self.state.query(&env, &request.msg) {
                Some(reply) => Some(reply),
                None => {
                    return Err(ActorError::with_kind(
                        format!(
                            "{id}: this {} is a command, not a query (send it with `call`)",
                            std::any::type_name::<A::Msg>()
                        ),
                        crate::actor::ActorErrorKind::NotAQuery,
                    ));
                }
            },
            RequestKind::Command if !self.dedupe.contains_key(&request.key) => {
                self.state.query(&env, &request.msg)
            }
            RequestKind::Command | RequestKind::RetriedCommand => None,
        };
        if let Some(reply) = from_memory {
            // Answered from memory: first make sure the memory is current.
            if let Err(failure) = self.check_ownership(&env).await {
                note_if_fenced(ctx, &failure);
                let failure = failure.to_string();
                ctx.fail(failure.clone());
                return Err(ActorError::unavailable(failure));
            }
            return Ok(reply);
        }
        let (result, failure) = self
            .process(&env, &id, request.key, request.msg, &mut ctx.facets)
            .await;
        if failure.is_none() {
            self.owned_at = Some(env.now());
        }
        if let Some(failure) = failure {
            // Fail-stop: the in-memory state may be ahead of the journal.
            note_if_fenced(ctx, &failure);
            ctx.fail(failure.to_string());
        }
        result
    }
}

/// Records on the node that this activation lost its stream to a newer
/// claim, if that is what `failure` says (readiness reads it).
fn note_if_fenced<A: DurableActor>(ctx: &Context<Durable<A>>, failure: &DurabilityError) {
    let fenced = match failure {
        DurabilityError::Superseded(_) => true,
        DurabilityError::Journal { source, .. } => {
            matches!(
                source,
                plexspaces_storage::journal::JournalError::Fenced { .. }
            )
        }
        _ => false,
    };
    if fenced {
        super::lost_claims::LostClaims::of(&ctx.system).lost(ctx.id().name(), ctx.env().now());
    }
}

impl<A: DurableActor> ActorRef<Durable<A>> {
    /// Sends `msg` under idempotency key `key` and waits for the reply,
    /// which is sent only once everything it depends on is durable.
    pub async fn call(
        &self,
        key: impl Into<String>,
        msg: A::Msg,
        timeout: Duration,
    ) -> Result<A::Reply, AskError> {
        self.ask(Request::new(key, msg), timeout).await
    }

    /// [`ActorRef::call`] for a key sent before whose outcome is unknown
    /// (see [`RequestKind::RetriedCommand`]).
    pub async fn call_again(
        &self,
        key: impl Into<String>,
        msg: A::Msg,
        timeout: Duration,
    ) -> Result<A::Reply, AskError> {
        let request = Request {
            kind: RequestKind::RetriedCommand,
            ..Request::new(key, msg)
        };
        self.ask(request, timeout).await
    }

    /// Asks the read `msg` (one [`DurableActor::query`] answers): no key,
    /// no journal write, nothing remembered. A command sent this way is
    /// refused unapplied (`ActorErrorKind::NotAQuery`).
    pub async fn query(&self, msg: A::Msg, timeout: Duration) -> Result<A::Reply, AskError> {
        self.ask(Request::query(msg), timeout).await
    }
}

/// Time travel: the state of `stream` as of journal sequence number `seq`,
/// replayed from `initial` and the journal's first entry (checkpoints are
/// not used). Entries already compacted away give an error.
pub async fn state_at<A: DurableActor>(
    env: &Env,
    journal: &JournalBackend,
    id: &ActorId,
    seq: u64,
    initial: A,
) -> Result<A, DurabilityError> {
    let mut durable = Durable::new(initial, journal.clone(), DurabilityConfig::default());
    durable.stream = super::stream_for(&id.to_string());
    let entries = journal
        .replay_from(&durable.stream, 1)
        .await
        .map_err(|source| DurabilityError::Journal {
            doing: "time travel",
            source,
        })?;
    let mut at = 0;
    while at < entries.len() {
        let group = Group::read(&entries, &mut at)?;
        match &group.reply {
            Some((reply_seq, _)) if *reply_seq <= seq => {}
            _ => break,
        }
        // Replay without touching the journal: a complete group never writes.
        durable.replay_group(env, id, group, None).await?;
    }
    Ok(durable.state)
}

/// A checkpoint's envelope, for [`crate::encoded_types`]. (Requests and
/// replies are visited with each durable actor's message types.)
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn encoded_types(v: &mut impl crate::codec::EncodedTypes) {
    v.visit("durability::CheckpointState", || {
        vec![CheckpointState {
            state: vec![3, 1, 4, 1, 5],
            dedupe: vec![("transfer-16".into(), vec![0, 40]), ("t-17".into(), vec![])],
        }]
    });
}
