//! The trace a handler runs in, as its tracing facet decided: a span's
//! context (current while the handler runs), or a trace that is not
//! sampled. An unsampled trace records nothing and costs no context: only
//! what the handler sends needs to know of it, so the actors it calls
//! follow the decision instead of starting traces of their own. That is a
//! thread-local marker set while the handler is polled, read by the send
//! path ([`unsampled_traceparent`]), with ids drawn only if the handler
//! sends at all.

use crate::seams::Rng;
use opentelemetry::trace::{SpanContext, SpanId, TraceId};
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The trace a handler runs in.
#[derive(Debug)]
pub enum HandlerTrace {
    /// A span (sampled, or recording): its context is current while the
    /// handler runs, so the asks it makes are its children.
    Context(opentelemetry::Context),
    /// A trace not sampled.
    Unsampled(UnsampledTrace),
}

/// A trace that is not sampled: the one a message carried, or a new root
/// whose ids are drawn only if the handler sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnsampledTrace {
    carried: Option<(TraceId, SpanId)>,
}

impl UnsampledTrace {
    /// A root the sampler dropped.
    pub fn root() -> Self {
        UnsampledTrace { carried: None }
    }

    /// The unsampled trace `parent` names (the callee's parent stays the
    /// caller's span: nothing in between is recorded).
    pub fn carried(parent: &SpanContext) -> Self {
        UnsampledTrace {
            carried: Some((parent.trace_id(), parent.span_id())),
        }
    }

    /// The W3C `traceparent` of a message sent under this trace: its ids
    /// (fresh ones for a root, from `rng`) flagged not sampled.
    fn traceparent(&self, rng: &dyn Rng) -> String {
        let (trace, span) = self.carried.unwrap_or_else(|| {
            let high = u128::from(rng.next_u64());
            let low = u128::from(rng.next_u64());
            (
                TraceId::from((high << 64 | low).max(1)),
                SpanId::from(rng.next_u64().max(1)),
            )
        });
        format!("00-{trace}-{span}-00")
    }
}

thread_local! {
    static UNSAMPLED: Cell<Option<UnsampledTrace>> = const { Cell::new(None) };
}

/// Restores the marker a poll found, however the poll ends.
struct Restore(Option<UnsampledTrace>);

impl Drop for Restore {
    fn drop(&mut self) {
        UNSAMPLED.with(|marker| marker.set(self.0));
    }
}

pin_project_lite::pin_project! {
    /// A handler's future run with an unsampled trace marked for each of
    /// its polls (a wrapper, not an async fn: no second future to move the
    /// handler's into, per message).
    pub(crate) struct InUnsampled<F> {
        trace: UnsampledTrace,
        #[pin]
        handling: F,
    }
}

impl<F> InUnsampled<F> {
    /// Runs `handling` in `trace`.
    pub(crate) fn new(trace: UnsampledTrace, handling: F) -> Self {
        InUnsampled { trace, handling }
    }
}

impl<F: Future> Future for InUnsampled<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _restore = Restore(UNSAMPLED.with(|marker| marker.replace(Some(*this.trace))));
        this.handling.poll(cx)
    }
}

/// The `traceparent` a message sent now carries if the sender runs in an
/// unsampled trace (and no span is current).
pub(crate) fn unsampled_traceparent(rng: &dyn Rng) -> Option<String> {
    UNSAMPLED
        .with(Cell::get)
        .map(|trace| trace.traceparent(rng))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observability::traces::parent_from;
    use crate::seams::SeededRng;
    use futures::FutureExt;
    use opentelemetry::trace::TraceContextExt;

    fn parent_of(traceparent: &str) -> SpanContext {
        parent_from(Some(traceparent)).span().span_context().clone()
    }

    #[test]
    fn a_handler_in_an_unsampled_trace_sends_the_decision_on_and_only_while_polled() {
        let rng = SeededRng::new(3);
        assert_eq!(unsampled_traceparent(&rng), None);
        let carried = parent_of("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00");
        let sent = InUnsampled::new(UnsampledTrace::carried(&carried), async {
            unsampled_traceparent(&rng)
        })
        .now_or_never()
        .expect("ready at once");
        assert_eq!(
            sent.as_deref(),
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00")
        );
        let root = InUnsampled::new(UnsampledTrace::root(), async {
            unsampled_traceparent(&rng)
        })
        .now_or_never()
        .expect("ready at once")
        .expect("a root sends a traceparent");
        let sc = parent_of(&root);
        assert!(sc.is_valid() && !sc.is_sampled(), "{root}");
        assert_eq!(unsampled_traceparent(&rng), None, "the marker is gone");
    }
}
