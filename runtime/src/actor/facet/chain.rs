//! An actor's facets, kept in the order they run, and the running of
//! their hooks around one message.

use super::{
    Facet, FacetError, FacetInfo, Failure, Hook, Message, MessageMeta, Rejection, Verdict,
};
use crate::Env;
use crate::actor::ActorId;
use std::any::Any;
use std::time::Duration;

/// An actor's facets, highest priority first (ties in attach order).
#[derive(Default)]
pub(crate) struct FacetChain {
    // Only the Vec: the chain lives in every actor's context, so a cached
    // flag would weigh on every idle actor.
    facets: Vec<Box<dyn Facet>>,
}

/// What the `before` hooks decided together.
pub(crate) enum Before {
    /// Every facet let the message through.
    Continue,
    /// The facet at `at` refused it.
    Rejected { at: usize, rejection: Rejection },
    /// The facet at `at` answered in the actor's place.
    Answered {
        at: usize,
        answer: Box<dyn Any + Send>,
    },
}

impl FacetChain {
    pub(crate) fn attach(
        &mut self,
        actor: &ActorId,
        env: &Env,
        mut facet: Box<dyn Facet>,
    ) -> Result<(), FacetError> {
        if self.facets.iter().any(|f| f.name() == facet.name()) {
            return Err(FacetError::NameTaken {
                actor: actor.clone(),
                name: facet.name().to_string(),
            });
        }
        facet.on_node(env);
        facet.on_attach(actor);
        let at = self
            .facets
            .iter()
            .position(|f| f.priority() < facet.priority())
            .unwrap_or(self.facets.len());
        self.facets.insert(at, facet);
        debug_assert!(
            self.facets
                .windows(2)
                .all(|w| w[0].priority() >= w[1].priority()),
            "the chain runs highest priority first"
        );
        Ok(())
    }

    pub(crate) fn detach(&mut self, actor: &ActorId, name: &str) -> bool {
        match self.facets.iter().position(|f| f.name() == name) {
            Some(at) => {
                self.facets.remove(at).on_detach(actor);
                true
            }
            None => false,
        }
    }

    pub(crate) fn detach_all(&mut self, actor: &ActorId) {
        for mut facet in self.facets.drain(..) {
            facet.on_detach(actor);
        }
    }

    pub(crate) fn list(&self) -> Vec<FacetInfo> {
        self.facets
            .iter()
            .map(|f| FacetInfo {
                name: f.name().to_string(),
                priority: f.priority(),
            })
            .collect()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.facets.is_empty()
    }

    /// The handler's `tracing` span, from the first facet giving one.
    pub(crate) fn handler_span(&self, meta: &MessageMeta<'_>) -> Option<tracing::Span> {
        self.facets.iter().find_map(|f| f.handler_span(meta))
    }

    /// The handler's trace context, from the first facet giving one.
    pub(crate) fn trace_context(&self) -> Option<opentelemetry::Context> {
        self.facets.iter().find_map(|f| f.trace_context())
    }

    /// The name of the facet at `at` (as `before` reported it).
    pub(crate) fn name_at(&self, at: usize) -> &str {
        self.facets[at].name()
    }

    /// The first attached facet of type `T`.
    pub(crate) fn get<T: Facet>(&self) -> Option<&T> {
        self.facets
            .iter()
            .find_map(|f| (&**f as &dyn Any).downcast_ref::<T>())
    }

    /// The first attached facet of type `T`, mutably.
    pub(crate) fn get_mut<T: Facet>(&mut self) -> Option<&mut T> {
        self.facets
            .iter_mut()
            .find_map(|f| (&mut **f as &mut dyn Any).downcast_mut::<T>())
    }

    pub(crate) fn len(&self) -> usize {
        self.facets.len()
    }

    /// The `before` hook of the facet at `at`. (The loops over the chain
    /// live with the message's owner: a borrow of a payload that need not
    /// be `Sync` must not be held across an await.)
    pub(crate) fn before_at<'a>(&'a mut self, at: usize, msg: &Message<'_>) -> Hook<'a, Verdict> {
        self.facets[at].before(msg)
    }

    /// The `after` hook of the facet at `at`.
    pub(crate) fn after_at<'a>(
        &'a mut self,
        at: usize,
        meta: &MessageMeta<'_>,
        reply: &(dyn Any + Send),
        elapsed: Duration,
    ) -> Hook<'a> {
        self.facets[at].after(meta, reply, elapsed)
    }

    /// Runs every `on_error` hook in chain order, but the one at `skip`.
    pub(crate) async fn on_error(
        &mut self,
        meta: &MessageMeta<'_>,
        failure: &Failure<'_>,
        elapsed: Duration,
        skip: Option<usize>,
    ) {
        for (i, facet) in self.facets.iter_mut().enumerate() {
            if Some(i) != skip {
                facet.on_error(meta, failure, elapsed).resolve().await;
            }
        }
    }
}
