//! Invariants of the runtime's own protocols, asserted where they are
//! relied on.

use std::fmt::Debug;

/// One of the runtime's actors answered `op` with a reply of the wrong
/// variant. Its handlers answer each operation with one variant, on every
/// node running this code, so this is a bug in the runtime, never a
/// condition to retry (an `Unavailable` error would be retried forever).
#[track_caller]
pub(crate) fn wrong_reply(op: &str, reply: &impl Debug) -> ! {
    panic!("runtime bug: {op} was answered with {reply:?}")
}
