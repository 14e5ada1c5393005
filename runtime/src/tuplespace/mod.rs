//! The Linda TupleSpace: actors coordinate by writing tuples into a shared
//! space and reading or taking the ones that match a pattern, blocking
//! until one appears if they like.
//!
//! - `take` is atomic: two takers never get the same tuple. A blocked taker
//!   is handed a matching tuple as it is written, first come first served
//!   among the waiters it matches.
//! - Matching does not scan every tuple: tuples are indexed by arity and
//!   first field, so a pattern with an exact first field looks in one
//!   bucket.
//! - Every space is bounded (tuple count and per-tuple size); tuples may
//!   carry a lease and vanish when it runs out (on the node's clock).
//! - Listeners subscribe to write and take events of matching tuples.
//!
//! [`TupleSpace`] is the in-memory backend; [`DurableTupleSpace`] journals
//! every write and take (embedded log or a shared backend) and survives
//! restarts; [`SharedSpaces`] hosts spaces that every node of a cluster
//! reaches, with `take` atomic across nodes and leased takes for
//! exactly-once task completion.

mod durable;
mod hosted;
mod hosted_events;
mod index;
mod shared;
mod space;
mod value;

pub use crate::nesting::NESTING_MAX;
pub use durable::{DurableSpaceError, DurableTupleSpace};
pub use shared::{
    LeaseToken, Leased, SUBSCRIPTION_EVENTS_KEPT, SUBSCRIPTIONS_MAX, SharedSpaceError,
    SharedSpaces, SharedSpacesConfig, SharedSubscription, SharedTupleSpace,
};
pub use space::{
    Action, QoS, Subscription, SubscriptionId, TupleEvent, TupleSpace, TupleSpaceConfig,
    TupleSpaceError, TupleSpaceListener,
};
pub use value::{Field, Kind, Pattern, Tuple, Value};

/// A tuple with a field of every kind, for [`crate::encoded_types`].
#[cfg(any(test, feature = "fuzzing"))]
fn encoded_sample() -> Tuple {
    Tuple::new(vec![
        Value::from("task"),
        Value::from(7i64),
        Value::from(2.5f64),
        Value::from(true),
        Value::from(vec![0u8, 255]),
        Value::Tuple(vec![Value::from(-1i64)]),
    ])
}

/// This module's encoded types, for [`crate::encoded_types`].
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn encoded_types(v: &mut impl crate::codec::EncodedTypes) {
    v.visit("tuplespace::Tuple", || vec![encoded_sample()]);
    v.visit("tuplespace::Pattern", || {
        vec![Pattern::new(vec![
            Field::Exact(Value::from("task")),
            Field::Typed(Kind::Int),
            Field::Nested(Pattern::new(vec![Field::Any])),
        ])]
    });
    v.visit("tuplespace::TupleSpaceError", || {
        vec![TupleSpaceError::TupleTooLarge {
            bytes: 70_000,
            max: 65_536,
        }]
    });
    durable::encoded_types(v);
    hosted::encoded_types(v);
}

/// The node's named tuple spaces.
#[derive(Default)]
struct NamedSpaces(std::sync::Mutex<std::collections::BTreeMap<String, TupleSpace>>);

impl crate::actor::ActorSystem {
    /// The node's tuple space named `name`, created (with the default
    /// bounds) on first use.
    pub fn tuplespace(&self, name: &str) -> TupleSpace {
        use plexspaces_storage::sync::LockExt;
        let spaces = self.service(NamedSpaces::default);
        let mut spaces = spaces.0.locked();
        spaces
            .entry(name.to_string())
            .or_insert_with(|| TupleSpace::new(name, self.env().clone(), Default::default()))
            .clone()
    }

    /// This node's named tuple spaces (those made so far), by name.
    pub fn tuplespaces(&self) -> Vec<TupleSpace> {
        use plexspaces_storage::sync::LockExt;
        let spaces = self.service(NamedSpaces::default);
        let spaces = spaces.0.locked();
        spaces.values().cloned().collect()
    }
}

impl<A: crate::actor::Actor> crate::actor::Context<A> {
    /// This node's tuple space `name` ([`crate::actor::ActorSystem::tuplespace`]).
    pub fn tuplespace(&self, name: &str) -> TupleSpace {
        self.system().tuplespace(name)
    }
}
