//! Events (the design's EventEmitterFacet): an actor emits events on
//! topics from its handlers; other actors, on any node, subscribe to a
//! topic with a filter and receive the events as their own messages.
//!
//! - **Emitting.** Attach an [`EventEmitterFacet`] (or the registered
//!   `events` type by name) and call
//!   `ctx.facet_mut::<EventEmitterFacet>()?.emit(topic, &payload)` in a
//!   handler. Listeners registered on the facet with
//!   [`on`](EventEmitterFacet::on) run at once, in the emitting actor;
//!   subscribers get the event through the facet's queue, which a task of
//!   its own drains in order. The queue is bounded: when it is full the
//!   [`DropPolicy`] drops the newest or the oldest event, and
//!   [`EmitterStats`] counts what was emitted, dropped and delivered.
//! - **Subscribing.** [`subscribe`] starts a small relay actor for the
//!   subscriber that joins the topic's process group (so emitters on every
//!   node find it), filters events and tells the subscriber each one,
//!   mapped to its message type. The relay leaves when the subscriber
//!   exits or the [`Subscription`] is cancelled; [`SubscriptionStats`]
//!   count what it received, filtered out, forwarded and dropped.
//! - **Guarantees.** At most once, in emission order per emitter and
//!   subscriber: one task sends an emitter's events, one connection
//!   carries them to a node, and a relay refuses an event whose sequence
//!   number it has already passed, so none is delivered twice. An event is
//!   lost only to a full queue (counted) or a fault (a crashed node, a
//!   broken connection); group views are eventually consistent, so a
//!   subscriber starts receiving once the emitter's node lists it.
//! - **Durable emitters.** An emit is a side effect: a durable handler
//!   emits inside `ctx.run` so that replay does not emit again.

mod emitter;
mod subscribe;

pub use emitter::{EmitterStats, EventEmitterFacet};
pub use subscribe::{
    EventFilter, EventRelay, SubscribeOptions, Subscription, SubscriptionStats, subscribe,
};

use crate::DecodeError;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The process group tenant and namespace topics live in.
pub(crate) const EVENTS_TENANT: &str = "plexspaces";
pub(crate) const EVENTS_NAMESPACE: &str = "events";

/// One event, as subscribers receive it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The topic it was emitted on.
    pub topic: String,
    /// The emitting actor's id (`name@node`).
    pub source: String,
    /// The emitter's sequence number: 1, 2, 3... per emitter and run (a
    /// restarted emitter starts again at 1 under a new `run`).
    pub seq: u64,
    /// Distinguishes runs of one emitter (random per facet).
    pub run: u64,
    /// The encoded payload ([`Event::decode`]).
    pub payload: Vec<u8>,
}

impl Event {
    /// The payload as a `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, DecodeError> {
        crate::codec::decode(&self.payload, "event payload")
    }
}

/// What a full queue drops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DropPolicy {
    /// The event that does not fit (the queue keeps what it had).
    #[default]
    DropNewest,
    /// The oldest queued event, to make room for the new one.
    DropOldest,
}

impl DropPolicy {
    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text {
            "drop-newest" => Some(DropPolicy::DropNewest),
            "drop-oldest" => Some(DropPolicy::DropOldest),
            _ => None,
        }
    }
}

/// An event operation was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventsError {
    /// The topic is empty, too long or holds a control character.
    InvalidTopic(String),
    /// The payload could not be encoded.
    Unencodable(String),
    /// The facet is not attached to an actor yet.
    NotAttached,
    /// The process groups or the relay could not be started.
    Unavailable(String),
}

impl fmt::Display for EventsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventsError::InvalidTopic(why) => write!(f, "invalid topic: {why}"),
            EventsError::Unencodable(why) => write!(f, "event payload not encodable: {why}"),
            EventsError::NotAttached => {
                f.write_str("the event emitter is not attached to an actor")
            }
            EventsError::Unavailable(why) => write!(f, "events unavailable: {why}"),
        }
    }
}

impl std::error::Error for EventsError {}

pub(crate) fn check_topic(topic: &str) -> Result<(), EventsError> {
    crate::names::check("topic", topic).map_err(EventsError::InvalidTopic)
}

/// This module's encoded types, for [`crate::encoded_types`].
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn encoded_types(v: &mut impl crate::codec::EncodedTypes) {
    v.visit("Event", || {
        vec![Event {
            topic: "ledger".into(),
            source: "teller@n1".into(),
            seq: 7,
            run: 0xfeed,
            payload: vec![1, 2, 3],
        }]
    });
}
