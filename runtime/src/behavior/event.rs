//! GenEvent: an event manager actor with handlers added and removed at runtime.

use crate::actor::{Actor, ActorError, ActorRef, AskError, Context, SendError};
use std::collections::BTreeMap;
use std::time::Duration;

/// Reacts to events of type `E`. A handler that returns `Err` is removed
/// (as in Erlang's `gen_event`), and told so through `on_remove`.
pub trait EventHandler<E>: Send + 'static {
    /// Handles one event.
    fn handle_event(&mut self, event: &E) -> Result<(), ActorError>;

    /// Called once when the handler is removed, for whatever reason.
    fn on_remove(&mut self) {}
}

/// Identifies an added handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HandlerId(u64);

/// What an [`EventManager`] receives.
pub enum EventMsg<E> {
    /// Deliver an event to every handler, in the order they were added.
    Notify(E),
    /// Add a handler.
    Add(Box<dyn EventHandler<E>>),
    /// Remove a handler.
    Remove(HandlerId),
    /// List the handlers.
    Handlers,
}

/// What an [`EventManager`] answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventReply {
    /// The event reached this many handlers (failed ones are removed).
    Delivered(usize),
    /// The handler was added.
    Added(HandlerId),
    /// Whether the handler was there to remove.
    Removed(bool),
    /// The handlers, in notification order.
    Handlers(Vec<HandlerId>),
}

/// An event manager: an actor holding handlers for events of type `E`.
pub struct EventManager<E> {
    handlers: BTreeMap<HandlerId, Box<dyn EventHandler<E>>>,
    next_id: u64,
}

impl<E> Default for EventManager<E> {
    fn default() -> Self {
        EventManager {
            handlers: BTreeMap::new(),
            next_id: 1,
        }
    }
}

impl<E> EventManager<E> {
    /// A manager with no handlers.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<E: Send + 'static> Actor for EventManager<E> {
    type Msg = EventMsg<E>;
    type Reply = EventReply;

    async fn handle(
        &mut self,
        _ctx: &mut Context<Self>,
        msg: EventMsg<E>,
    ) -> Result<EventReply, ActorError> {
        Ok(match msg {
            EventMsg::Notify(event) => {
                let failed: Vec<HandlerId> = self
                    .handlers
                    .iter_mut()
                    .filter_map(|(id, handler)| handler.handle_event(&event).err().map(|_| *id))
                    .collect();
                for id in &failed {
                    if let Some(mut handler) = self.handlers.remove(id) {
                        handler.on_remove();
                    }
                }
                EventReply::Delivered(self.handlers.len())
            }
            EventMsg::Add(handler) => {
                let id = HandlerId(self.next_id);
                self.next_id += 1;
                self.handlers.insert(id, handler);
                EventReply::Added(id)
            }
            EventMsg::Remove(id) => EventReply::Removed(match self.handlers.remove(&id) {
                Some(mut handler) => {
                    handler.on_remove();
                    true
                }
                None => false,
            }),
            EventMsg::Handlers => EventReply::Handlers(self.handlers.keys().copied().collect()),
        })
    }

    async fn post_stop(&mut self, _ctx: &mut Context<Self>, _reason: &crate::actor::ExitReason) {
        for handler in self.handlers.values_mut() {
            handler.on_remove();
        }
    }
}

#[track_caller]
fn unexpected(reply: EventReply) -> AskError {
    crate::invariant::wrong_reply("an event manager operation", &reply)
}

impl<E: Send + 'static> ActorRef<EventManager<E>> {
    /// Adds a handler and returns its id.
    pub async fn add_handler(
        &self,
        handler: impl EventHandler<E>,
        timeout: Duration,
    ) -> Result<HandlerId, AskError> {
        match self.ask(EventMsg::Add(Box::new(handler)), timeout).await? {
            EventReply::Added(id) => Ok(id),
            other => Err(unexpected(other)),
        }
    }

    /// Removes a handler; false if it was not there.
    pub async fn remove_handler(&self, id: HandlerId, timeout: Duration) -> Result<bool, AskError> {
        match self.ask(EventMsg::Remove(id), timeout).await? {
            EventReply::Removed(found) => Ok(found),
            other => Err(unexpected(other)),
        }
    }

    /// Delivers `event` without waiting.
    pub async fn notify(&self, event: E) -> Result<(), SendError> {
        self.tell(EventMsg::Notify(event)).await
    }

    /// Delivers `event` and waits until every handler has seen it; returns
    /// how many handlers remain.
    pub async fn sync_notify(&self, event: E, timeout: Duration) -> Result<usize, AskError> {
        match self.ask(EventMsg::Notify(event), timeout).await? {
            EventReply::Delivered(n) => Ok(n),
            other => Err(unexpected(other)),
        }
    }
}
