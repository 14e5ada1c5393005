//! An actor's facets, kept in the order they run, and the running of
//! their hooks around one message.

use super::{
    Facet, FacetError, FacetInfo, Failure, Hook, Hooks, Message, MessageMeta, Rejection, Verdict,
};
use crate::Env;
use crate::actor::ActorId;
use std::any::Any;
use std::time::Duration;

/// An actor's facets, highest priority first (ties in attach order).
#[derive(Default)]
pub(crate) struct FacetChain {
    // Boxed: the chain lives in every actor's context, and most actors
    // have none (a pointer where a Vec and its flags would be 32 bytes).
    chain: Option<Box<Chain>>,
}

/// The facets of an actor that has some.
struct Chain {
    facets: Vec<Attached>,
    /// The union of the facets' hooks: a hook no facet has is skipped
    /// whole, without a loop or a call.
    hooks: Hooks,
}

/// A facet and the hooks it asked for (read once, at attach).
struct Attached {
    hooks: Hooks,
    facet: Box<dyn Facet>,
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
    fn facets(&self) -> &[Attached] {
        self.chain.as_deref().map_or(&[], |c| &c.facets)
    }

    pub(crate) fn attach(
        &mut self,
        actor: &ActorId,
        env: &Env,
        mut facet: Box<dyn Facet>,
    ) -> Result<(), FacetError> {
        if self.facets().iter().any(|a| a.facet.name() == facet.name()) {
            return Err(FacetError::NameTaken {
                actor: actor.clone(),
                name: facet.name().to_string(),
            });
        }
        facet.on_node(env);
        facet.on_attach(actor);
        let chain = self.chain.get_or_insert_with(|| {
            Box::new(Chain {
                facets: Vec::new(),
                hooks: Hooks::NONE,
            })
        });
        let at = chain
            .facets
            .iter()
            .position(|a| a.facet.priority() < facet.priority())
            .unwrap_or(chain.facets.len());
        let hooks = facet.hooks();
        chain.facets.insert(at, Attached { hooks, facet });
        chain.hooks = chain.hooks.with(hooks);
        debug_assert!(
            chain
                .facets
                .windows(2)
                .all(|w| w[0].facet.priority() >= w[1].facet.priority()),
            "the chain runs highest priority first"
        );
        Ok(())
    }

    pub(crate) fn detach(&mut self, actor: &ActorId, name: &str) -> bool {
        let Some(chain) = self.chain.as_mut() else {
            return false;
        };
        let Some(at) = chain.facets.iter().position(|a| a.facet.name() == name) else {
            return false;
        };
        chain.facets.remove(at).facet.on_detach(actor);
        chain.hooks = chain
            .facets
            .iter()
            .fold(Hooks::NONE, |all, a| all.with(a.hooks));
        if chain.facets.is_empty() {
            self.chain = None;
        }
        true
    }

    pub(crate) fn detach_all(&mut self, actor: &ActorId) {
        if let Some(chain) = self.chain.take() {
            for mut attached in chain.facets {
                attached.facet.on_detach(actor);
            }
        }
    }

    pub(crate) fn list(&self) -> Vec<FacetInfo> {
        self.facets()
            .iter()
            .map(|a| FacetInfo {
                name: a.facet.name().to_string(),
                priority: a.facet.priority(),
            })
            .collect()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.chain.is_none()
    }

    /// Whether some facet has `hook`.
    pub(crate) fn has(&self, hook: Hooks) -> bool {
        self.chain.as_deref().is_some_and(|c| c.hooks.has(hook))
    }

    /// Whether some facet has one of `hooks`.
    pub(crate) fn has_any(&self, hooks: Hooks) -> bool {
        self.chain.as_deref().is_some_and(|c| c.hooks.meets(hooks))
    }

    /// The handler's `tracing` span, from the first facet giving one.
    pub(crate) fn handler_span(&self, meta: &MessageMeta<'_>) -> Option<tracing::Span> {
        self.facets()
            .iter()
            .filter(|a| a.hooks.has(Hooks::SPAN))
            .find_map(|a| a.facet.handler_span(meta))
    }

    /// The handler's trace, from the first facet giving one.
    pub(crate) fn trace_context(&self) -> Option<super::HandlerTrace> {
        self.facets()
            .iter()
            .filter(|a| a.hooks.has(Hooks::TRACE))
            .find_map(|a| a.facet.trace_context())
    }

    /// Whether any facet wants the handler timed. Every facet that may is
    /// asked (each may draw a sampling decision of its own).
    pub(crate) fn times(&mut self) -> bool {
        let Some(chain) = self.chain.as_mut().filter(|c| c.hooks.has(Hooks::TIMES)) else {
            return false;
        };
        chain
            .facets
            .iter_mut()
            .filter(|a| a.hooks.has(Hooks::TIMES))
            .fold(false, |any, a| a.facet.times() | any)
    }

    /// The name of the facet at `at` (as `before` reported it).
    pub(crate) fn name_at(&self, at: usize) -> &str {
        self.facets()[at].facet.name()
    }

    /// The first attached facet of type `T`.
    pub(crate) fn get<T: Facet>(&self) -> Option<&T> {
        self.facets()
            .iter()
            .find_map(|a| (&*a.facet as &dyn Any).downcast_ref::<T>())
    }

    /// The first attached facet of type `T`, mutably.
    pub(crate) fn get_mut<T: Facet>(&mut self) -> Option<&mut T> {
        self.chain
            .as_mut()?
            .facets
            .iter_mut()
            .find_map(|a| (&mut *a.facet as &mut dyn Any).downcast_mut::<T>())
    }

    pub(crate) fn len(&self) -> usize {
        self.facets().len()
    }

    /// The `before` hook of the facet at `at`. (The loops over the chain
    /// live with the message's owner: a borrow of a payload that need not
    /// be `Sync` must not be held across an await.)
    pub(crate) fn before_at<'a>(&'a mut self, at: usize, msg: &Message<'_>) -> Hook<'a, Verdict> {
        match self.chain.as_mut().map(|c| &mut c.facets[at]) {
            Some(a) if a.hooks.has(Hooks::BEFORE) => a.facet.before(msg),
            _ => Hook::proceed(),
        }
    }

    /// The `after` hook of the facet at `at`.
    pub(crate) fn after_at<'a>(
        &'a mut self,
        at: usize,
        meta: &MessageMeta<'_>,
        reply: &(dyn Any + Send),
        elapsed: Option<Duration>,
    ) -> Hook<'a> {
        match self.chain.as_mut().map(|c| &mut c.facets[at]) {
            Some(a) if a.hooks.has(Hooks::AFTER) => a.facet.after(meta, reply, elapsed),
            _ => Hook::done(),
        }
    }

    /// Runs every `on_error` hook in chain order, but the one at `skip`.
    pub(crate) async fn on_error(
        &mut self,
        meta: &MessageMeta<'_>,
        failure: &Failure<'_>,
        elapsed: Option<Duration>,
        skip: Option<usize>,
    ) {
        let Some(chain) = self.chain.as_mut() else {
            return;
        };
        for (i, attached) in chain.facets.iter_mut().enumerate() {
            if Some(i) != skip && attached.hooks.has(Hooks::ON_ERROR) {
                attached
                    .facet
                    .on_error(meta, failure, elapsed)
                    .resolve()
                    .await;
            }
        }
    }
}
