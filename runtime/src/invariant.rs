//! Invariants of the runtime's own protocols, asserted where they are
//! relied on.

use std::fmt::Debug;

/// One of the runtime's actors answered `op` with a reply of the wrong
/// variant. Its handlers answer each operation with one variant, on every
/// node running this code, so this is a bug in the runtime, never a
/// condition to retry (an `Unavailable` error would be retried forever).
///
/// For actors on this node only: a reply that may come from another node
/// goes through [`wrong_remote_reply`].
#[track_caller]
pub(crate) fn wrong_reply(op: &str, reply: &impl Debug) -> ! {
    panic!("runtime bug: {op} was answered with {reply:?}")
}

/// The same bug in a reply that may come from another node (a virtual
/// actor's activation elsewhere). Asserted in debug builds, so tests and
/// the simulator stop at it; in release it is the text of a typed,
/// non-retryable protocol error instead, because a peer (running another
/// version, or broken) can send any well-formed variant, and a peer must
/// never be able to panic this node.
#[track_caller]
pub(crate) fn wrong_remote_reply(op: &str, reply: &impl Debug) -> String {
    let what = format!("{op} was answered with {reply:?}");
    debug_assert!(false, "runtime bug: {what}");
    what
}
