//! `ActorRef`: the handle through which everyone else talks to an actor.
//!
//! Ordering: messages from one sender to one actor are handled in the order
//! they were sent (one FIFO mailbox). Messages from different senders
//! interleave in arrival order. Stop and facet operations bypass the
//! mailbox and take effect before the next queued message.

use super::cell::{Cell, ControlOp, wait_exit};
use super::deadline::{Deadlines, Expired};
use super::facet::{Facet, FacetConfig, FacetError, FacetInfo, Headers, Principal};
use super::mailbox::{self, TrySendError};
use super::{Actor, ActorId, ActorStatus, AskError, ExitReason, SendError};
use crate::env::NodeName;
use futures::channel::oneshot;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// Where an `ask`'s answer goes. The error side is an [`AskError`] so a
/// remote ref's proxy can report a lost connection; a local handler's
/// error arrives as `AskError::Failed`.
// tokio's oneshot (executor-agnostic, wakers only): a reply costs one
// atomic state change on each side, where `futures`' channel takes a lock
// for the value and one per waker.
pub(crate) type ReplySender<A> =
    tokio::sync::oneshot::Sender<Result<<A as Actor>::Reply, AskError>>;
type ReplyReceiver<A> = tokio::sync::oneshot::Receiver<Result<<A as Actor>::Reply, AskError>>;

/// What travels through a mailbox.
pub(crate) struct Envelope<A: Actor> {
    pub(crate) msg: A::Msg,
    pub(crate) reply: Option<ReplySender<A>>,
    pub(crate) correlation: u64,
    /// Headers, the node it came from, its wire form and a periodic
    /// timer's tick, when any of them is known (one box for all: most
    /// messages carry none, and an envelope's size weighs on every idle
    /// actor's task).
    pub(crate) delivery: Option<Box<Delivery>>,
}

/// What came with a message besides its payload.
#[derive(Debug, Default)]
pub(crate) struct Delivery {
    pub(crate) headers: Headers,
    /// The authenticated peer it came from, for a remote message.
    pub(crate) source: Option<NodeName>,
    /// Whether the source node proved itself with a TLS certificate.
    pub(crate) source_certified: bool,
    /// Its encoded form, for a remote message.
    pub(crate) wire: Option<Vec<u8>>,
    /// The caller, as an authentication facet verified it.
    pub(crate) principal: Option<Arc<Principal>>,
    /// A periodic timer's tick: cleared when the actor takes the message,
    /// so the timer sends no other tick while this one waits (no burst).
    pub(crate) tick: Option<Arc<AtomicBool>>,
}

/// Headers of a message that came with none.
static NO_HEADERS: Headers = Headers {
    sender: None,
    tenant: None,
    principal: None,
    trace: None,
};

impl Delivery {
    /// The headers of an optional delivery (empty without one).
    pub(crate) fn headers_of(delivery: Option<&Delivery>) -> &Headers {
        delivery.map_or(&NO_HEADERS, |d| &d.headers)
    }

    /// `None` for plain headers with nothing set (no box to allocate).
    pub(crate) fn of(headers: Headers) -> Option<Box<Delivery>> {
        (!headers.is_empty()).then(|| {
            Box::new(Delivery {
                headers,
                ..Delivery::default()
            })
        })
    }
}

/// A cheap, cloneable handle to an actor of type `A`.
pub struct ActorRef<A: Actor> {
    pub(crate) cell: Arc<Cell>,
    pub(crate) mailbox: mailbox::Sender<Envelope<A>>,
    pub(crate) deadlines: Arc<Deadlines>,
}

impl<A: Actor> Clone for ActorRef<A> {
    fn clone(&self) -> Self {
        ActorRef {
            cell: self.cell.clone(),
            mailbox: self.mailbox.clone(),
            deadlines: self.deadlines.clone(),
        }
    }
}

impl<A: Actor> fmt::Debug for ActorRef<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActorRef")
            .field("id", &self.cell.id)
            .field("status", &self.cell.status())
            .finish()
    }
}

impl<A: Actor> ActorRef<A> {
    /// The actor's id.
    pub fn id(&self) -> &ActorId {
        &self.cell.id
    }

    /// Where the actor is in its life.
    pub fn status(&self) -> ActorStatus {
        self.cell.status()
    }

    /// Whether two refs are handles on the same actor cell: the same local
    /// actor, or the same proxy of a remote one (refs resolved for one
    /// remote actor share one proxy, so they keep one order).
    pub fn ptr_eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.cell, &other.cell)
    }

    /// Whether the actor lives on this node. A remote ref (see
    /// [`crate::distribution`]) behaves the same for `tell`, `ask`, `stop`,
    /// monitors and links; its mailbox is a local queue in front of the
    /// connection, and facets cannot be attached through it.
    pub fn is_local(&self) -> bool {
        self.cell.local
    }

    /// Messages waiting in the mailbox.
    pub fn mailbox_len(&self) -> usize {
        self.mailbox.len()
    }

    /// The most messages the mailbox holds.
    pub fn mailbox_capacity(&self) -> usize {
        self.mailbox.capacity()
    }

    fn envelope(&self, msg: A::Msg, reply: Option<ReplySender<A>>) -> Envelope<A> {
        Envelope {
            msg,
            reply,
            correlation: self.cell.next_correlation(),
            delivery: None,
        }
    }

    /// Sends `msg` without waiting for it to be handled (a cast). Waits for
    /// room if the mailbox is full (backpressure).
    pub async fn tell(&self, msg: A::Msg) -> Result<(), SendError> {
        let mut envelope = self.envelope(msg, None);
        self.trace_out(&mut envelope, false);
        self.send(envelope).await
    }

    /// Queues `envelope`, waiting for room.
    async fn send(&self, envelope: Envelope<A>) -> Result<(), SendError> {
        self.mailbox
            .send(envelope)
            .await
            .map_err(|_| SendError::Stopped(self.cell.id.clone()))
    }

    /// [`ActorRef::tell`] with headers (sender, tenant, principal, trace
    /// context) for the actor's facets, on this node or, through a remote
    /// ref, on the actor's node.
    pub async fn tell_with(&self, msg: A::Msg, headers: Headers) -> Result<(), SendError> {
        let mut envelope = self.envelope(msg, None);
        envelope.delivery = Delivery::of(headers);
        self.trace_out(&mut envelope, false);
        self.send(envelope).await
    }

    /// Sends `msg` if the mailbox has room, or fails at once with
    /// [`SendError::MailboxFull`].
    pub fn try_tell(&self, msg: A::Msg) -> Result<(), SendError> {
        let envelope = self.envelope(msg, None);
        self.mailbox.try_send(envelope).map_err(|e| match e {
            TrySendError::Full(_) => SendError::MailboxFull(self.cell.id.clone()),
            TrySendError::Closed(_) => SendError::Stopped(self.cell.id.clone()),
        })
    }

    /// Delivers a timer's message: at once if the mailbox has room,
    /// otherwise from a task of its own that waits for room (never from the
    /// timer driver, which must not block). Dropped if the actor stopped.
    pub(crate) fn deliver_timer(&self, msg: A::Msg, tick: Option<Arc<AtomicBool>>) {
        let mut envelope = self.envelope(msg, None);
        if tick.is_some() {
            envelope.delivery = Some(Box::new(Delivery {
                tick,
                ..Delivery::default()
            }));
        }
        if let Err(TrySendError::Full(envelope)) = self.mailbox.try_send(envelope) {
            let mailbox = self.mailbox.clone();
            crate::seams::Spawn::spawn_task(
                self.deadlines.env(),
                Box::pin(async move {
                    let _ = mailbox.send(envelope).await;
                }),
            );
        }
    }

    /// Sends `msg` and waits up to `timeout` for the reply (a call). The
    /// timeout covers waiting for mailbox room too. After a timeout nothing
    /// of the request stays behind: the reply, if it ever comes, is dropped.
    pub async fn ask(&self, msg: A::Msg, timeout: Duration) -> Result<A::Reply, AskError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.exchange(self.envelope(msg, Some(tx)), rx, timeout)
            .await
    }

    /// When the node traces and a span is current, the message
    /// carries a trace context (a W3C `traceparent` in its headers, over
    /// the wire too): an ask gets a client span of its own, returned to
    /// end with the reply; a tell carries the current span. Headers that
    /// already name a trace are left alone. Off, this is one load.
    fn trace_out(&self, envelope: &mut Envelope<A>, ask: bool) -> Option<opentelemetry::Context> {
        use opentelemetry::trace::TraceContextExt;
        let env = self.deadlines.env();
        let traces = env.traces();
        if !traces.is_on()
            || envelope
                .delivery
                .as_ref()
                .is_some_and(|d| d.headers.trace.is_some())
        {
            return None;
        }
        // Looked at in place (no clone of the context): most sends run
        // under no span, or under one whose decision is only carried on.
        let (sampled, carried) = opentelemetry::Context::map_current(|cx| {
            let span = cx.span();
            let sc = span.span_context();
            (
                sc.is_sampled(),
                sc.is_valid()
                    .then(|| crate::observability::traces::traceparent_of(sc)),
            )
        });
        let parent = match carried {
            // A sampled span's ask gets a client span of its own below.
            Some(_) if ask && sampled => None,
            // An unsampled trace is carried on as is (no client span to
            // make), so the callee does not start a trace of its own.
            Some(parent) => Some(parent),
            // No span: the sender may run in a trace that is not sampled,
            // whose decision the message carries on.
            None => crate::observability::trace_scope::unsampled_traceparent(env),
        };
        if let Some(parent) = parent {
            let delivery = envelope.delivery.get_or_insert_with(Box::default);
            delivery.headers.trace = Some(parent);
            return None;
        }
        if !(ask && sampled) {
            return None;
        }
        let target = opentelemetry::KeyValue::new("plexspaces.target", self.cell.id.to_string());
        let client = traces.span(
            "ask",
            opentelemetry::trace::SpanKind::Client,
            vec![target],
            &opentelemetry::Context::current(),
        )?;
        let parent = crate::observability::traces::traceparent(&client)?;
        let delivery = envelope.delivery.get_or_insert_with(Box::default);
        delivery.headers.trace = Some(parent);
        Some(client)
    }

    /// [`ActorRef::ask`] with headers for the actor's facets (see
    /// [`ActorRef::tell_with`]).
    pub async fn ask_with(
        &self,
        msg: A::Msg,
        headers: Headers,
        timeout: Duration,
    ) -> Result<A::Reply, AskError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut envelope = self.envelope(msg, Some(tx));
        envelope.delivery = Delivery::of(headers);
        self.exchange(envelope, rx, timeout).await
    }

    /// Queues an ask's envelope and waits for its answer until `timeout`
    /// (in a client span when traced).
    async fn exchange(
        &self,
        mut envelope: Envelope<A>,
        rx: ReplyReceiver<A>,
        timeout: Duration,
    ) -> Result<A::Reply, AskError> {
        let client = self.trace_out(&mut envelope, true);
        let answer = self.exchange_untraced(envelope, rx, timeout).await;
        if let Some(client) = client {
            use opentelemetry::trace::{Status, TraceContextExt};
            let span = client.span();
            if let Err(e) = &answer {
                span.set_status(Status::error(e.to_string()));
            }
            span.end();
        }
        answer
    }

    async fn exchange_untraced(
        &self,
        envelope: Envelope<A>,
        rx: ReplyReceiver<A>,
        timeout: Duration,
    ) -> Result<A::Reply, AskError> {
        let exchange = async {
            self.mailbox
                .send(envelope)
                .await
                .map_err(|_| AskError::Stopped(self.cell.id.clone()))?;
            match rx.await {
                Ok(answer) => answer,
                Err(_dropped) => Err(AskError::Stopped(self.cell.id.clone())),
            }
        };
        let exchange = std::pin::pin!(exchange);
        match self.deadlines.run(timeout, exchange).await {
            Ok(result) => result,
            Err(Expired) => {
                self.deadlines.env().metrics().actors().asks_timed_out.inc();
                Err(AskError::Timeout {
                    actor: self.cell.id.clone(),
                    after: timeout,
                })
            }
        }
    }

    /// Queues `msg` with an optional reply channel and no deadline (for
    /// the distribution layer, which answers remote asks).
    pub(crate) async fn send_envelope(
        &self,
        msg: A::Msg,
        reply: Option<ReplySender<A>>,
        delivery: Option<Box<Delivery>>,
    ) -> Result<(), SendError> {
        let mut envelope = self.envelope(msg, reply);
        envelope.delivery = delivery;
        self.send(envelope).await
    }

    /// Asks the actor to stop after its current message; it exits with
    /// [`ExitReason::Shutdown`]. Returns at once; see [`ActorRef::wait_exit`].
    pub fn stop(&self) {
        self.cell.request_stop(ExitReason::Shutdown);
    }

    /// Stops the actor with `reason` (a failure reason makes it Failed).
    pub fn stop_with(&self, reason: ExitReason) {
        self.cell.request_stop(reason);
    }

    /// Waits until the actor has exited and returns why.
    pub async fn wait_exit(&self) -> ExitReason {
        wait_exit(self.cell.exit_watch()).await
    }

    /// Attaches `facet` to the running actor (before its next message).
    /// A facet value cannot travel: through a remote ref this is refused
    /// with [`FacetError::Remote`]; use [`ActorRef::attach_facet_named`].
    pub async fn attach_facet(&self, facet: Box<dyn Facet>) -> Result<(), FacetError> {
        let (tx, rx) = oneshot::channel();
        self.cell.push_control(ControlOp::Attach(facet, tx));
        self.control_answer(rx).await?
    }

    /// Attaches a facet of the registered type `type_name`, built by the
    /// actor's own node from `config` (validated against the type's
    /// descriptor there): works locally and through a remote ref. The
    /// facet stays reachable as its type (`ctx.facet::<T>()`,
    /// [`ActorRef::with_facet`]).
    pub async fn attach_facet_named(
        &self,
        type_name: &str,
        config: FacetConfig,
    ) -> Result<(), FacetError> {
        let (tx, rx) = oneshot::channel();
        self.cell.push_control(ControlOp::AttachNamed {
            type_name: type_name.to_string(),
            config,
            reply: tx,
        });
        self.control_answer(rx).await?
    }

    /// Detaches the facet named `name`; false if none was attached.
    pub async fn detach_facet(&self, name: &str) -> Result<bool, FacetError> {
        let (tx, rx) = oneshot::channel();
        self.cell
            .push_control(ControlOp::Detach(name.to_string(), tx));
        self.control_answer(rx).await?
    }

    /// The attached facets, in the order they run.
    pub async fn list_facets(&self) -> Result<Vec<FacetInfo>, FacetError> {
        let (tx, rx) = oneshot::channel();
        self.cell.push_control(ControlOp::List(tx));
        self.control_answer(rx).await?
    }

    /// Runs `f` on the attached facet of type `T` between two messages and
    /// returns its result (`None` if no facet of that type is attached):
    /// how a handle is read back from a facet attached by name. Local
    /// actors only (a facet is not reachable across nodes as a value).
    pub async fn with_facet<T: Facet, R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut T) -> R + Send + 'static,
    ) -> Result<Option<R>, FacetError> {
        if !self.is_local() {
            return Err(FacetError::Remote(self.cell.id.clone()));
        }
        let (tx, rx) = oneshot::channel();
        self.cell
            .push_control(ControlOp::Inspect(Box::new(move |chain| {
                let _ = tx.send(chain.get_mut::<T>().map(f));
            })));
        self.control_answer(rx).await
    }

    async fn control_answer<T>(&self, rx: oneshot::Receiver<T>) -> Result<T, FacetError> {
        rx.await
            .map_err(|_| FacetError::Stopped(self.cell.id.clone()))
    }
}
