//! A bound on how deeply recursive types (tuples in tuples, patterns in
//! patterns, workflow steps in steps) nest when decoded.
//!
//! Decoding recurses once per level, so without a bound a few bytes per
//! level — a frame's worth from a peer, or a journal entry — would nest
//! deep enough to overflow the decoding thread's stack and abort the
//! process. Recursive fields decode through [`nested`], which refuses to go
//! deeper than [`NESTING_MAX`] with an ordinary decoding error.

use serde::de::{Deserialize, Deserializer, Error};
use std::cell::Cell;

/// The deepest nesting a decoded value may have.
pub const NESTING_MAX: usize = 64;

thread_local! {
    // Decoding is synchronous and never yields, so the levels a decode is
    // inside are the levels on this thread right now.
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// Puts the depth back however the inner decode ends.
struct Restore(usize);

impl Drop for Restore {
    fn drop(&mut self) {
        DEPTH.with(|depth| depth.set(self.0));
    }
}

/// Decodes `T` one level deeper, refusing past [`NESTING_MAX`]. For
/// `#[serde(deserialize_with = "crate::nesting::nested")]` on the fields
/// through which a type contains itself.
pub(crate) fn nested<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    let depth = DEPTH.with(Cell::get);
    if depth >= NESTING_MAX {
        return Err(D::Error::custom(format_args!(
            "nested deeper than {NESTING_MAX} levels"
        )));
    }
    DEPTH.with(|d| d.set(depth + 1));
    let _restore = Restore(depth);
    T::deserialize(d)
}
