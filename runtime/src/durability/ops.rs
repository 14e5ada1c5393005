//! The shape of the runtime's own durable virtual actors (a shared tuple
//! space, a workflow run's record, a workflow kind's index): one enum of
//! operations, some of which only read. Reads, and writes that would
//! change nothing, are answered as queries (no journal write); the rest
//! are handled and journaled. A read still reaches the journaled path
//! when it is retried under its key (see
//! [`RequestKind::RetriedCommand`](super::RequestKind::RetriedCommand)),
//! and is answered there the same way.

use crate::env::Env;

/// A state answering one enum of operations.
pub(crate) trait Ops {
    /// Its operations.
    type Op: std::fmt::Debug;
    /// Its answers.
    type Reply;

    /// The answer to `op` if it only reads; `None` if it writes.
    fn read(&self, op: &Self::Op) -> Option<Self::Reply>;

    /// The answer to a writing `op` that would change nothing, if that is
    /// known without writing; `None` otherwise (the op is journaled).
    fn unchanged(&self, env: &Env, op: &Self::Op) -> Option<Self::Reply>;
}

/// `DurableActor::query` of an [`Ops`] state: a read, or a write that
/// would change nothing.
pub(crate) fn query<S: Ops>(state: &S, env: &Env, op: &S::Op) -> Option<S::Reply> {
    state.read(op).or_else(|| state.unchanged(env, op))
}

/// The answer to `op`, a read that reached a state's journaled path (a
/// retried request). Its `apply` routes every read here.
///
/// # Panics
/// If `op` writes: `apply` sends only the operations it matched as reads,
/// which `read` answers, so that is a bug of the state.
#[track_caller]
pub(crate) fn answer_read<S: Ops>(state: &S, op: &S::Op) -> S::Reply {
    match state.read(op) {
        Some(reply) => reply,
        None => panic!("runtime bug: {op:?} was routed as a read, but read() does not answer it"),
    }
}
