//! The key-value capability: a [`KvStore`] backend ([`MemoryKv`],
//! [`EmbeddedKv`] on the project's journal; Redis in `plexspaces-redis`,
//! PostgreSQL in `plexspaces-postgres`) and the
//! [`KeyValueFacet`] an actor reaches it through (`ctx.facet::<KeyValueFacet>()`),
//! which confines every key to the actor's tenant and namespace: the
//! backend never sees a key the facet did not prefix, so two tenants' `a`
//! are two keys, and no call through one facet can name another's.
//!
//! Semantics every backend keeps (the contract suite in
//! `runtime/tests/kv_contract.rs` runs on each): `get` of a missing or
//! expired key is `None`; `set` replaces value and TTL; `delete` says
//! whether the key existed; `compare_and_set(expected: None)` creates only
//! if absent; `increment` treats a missing key as 0 and refuses a value
//! that is not an 8-byte little-endian integer; `list` returns keys under
//! a prefix in byte order, at most `limit`; expiry is judged on the node's
//! wall clock (the `Clock` seam), so it survives restarts and runs in the
//! simulator.

mod embedded;
mod facet;
mod memory;
mod table;

pub use table::KV_BYTES_MAX_DEFAULT;

#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use embedded::encoded_types;
pub use embedded::{EMBEDDED_KV_CHECKPOINT_EVERY, EmbeddedKv};
pub use facet::{KV_FACET, KeyValueFacet};
pub use memory::{MEMORY_KV_KEYS_DEFAULT, MemoryKv};

use futures::future::BoxFuture;
use std::fmt;
use std::time::SystemTime;

/// Longest key a backend accepts (bytes, after the facet's prefix).
pub const KV_KEY_MAX: usize = 1024;
/// Largest value a backend accepts (bytes).
pub const KV_VALUE_MAX: usize = 1024 * 1024;
/// Most keys one `list` returns.
pub const KV_LIST_MAX: usize = 10_000;

/// Why a key-value call failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KvError {
    /// A key longer than [`KV_KEY_MAX`], empty, or with a NUL byte.
    BadKey(String),
    /// A value larger than [`KV_VALUE_MAX`].
    TooLarge(usize),
    /// `increment` on a value that is not an 8-byte integer, or one that
    /// would overflow.
    NotACounter(String),
    /// The store holds its most keys (a memory or embedded store's bound).
    Full(usize),
    /// The store holds its most bytes of keys and values (a memory or
    /// embedded store's bound).
    OverBudget(usize),
    /// The backend failed (its text); the call may not have been applied.
    Unavailable(String),
}

impl fmt::Display for KvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KvError::BadKey(why) => write!(f, "bad key: {why}"),
            KvError::TooLarge(n) => write!(f, "a value of {n} bytes (at most {KV_VALUE_MAX})"),
            KvError::NotACounter(key) => write!(f, "{key:?} does not hold a counter"),
            KvError::Full(max) => write!(f, "the store holds its maximum of {max} keys"),
            KvError::OverBudget(max) => {
                write!(
                    f,
                    "the store holds its maximum of {max} bytes of keys and values"
                )
            }
            KvError::Unavailable(why) => write!(f, "key-value store unavailable: {why}"),
        }
    }
}

impl std::error::Error for KvError {}

/// What a key holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvEntry {
    /// The value.
    pub value: Vec<u8>,
    /// When it expires, if ever.
    pub expires: Option<SystemTime>,
}

/// A key-value backend. Keys reaching it are already confined (prefixed)
/// by a [`KeyValueFacet`]; `now` is the caller's wall clock, so expiry
/// follows the node's `Clock` seam.
pub trait KvStore: Send + Sync + 'static {
    /// The entry at `key`, unless missing or expired at `now`.
    fn get<'a>(
        &'a self,
        key: &'a str,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<Option<KvEntry>, KvError>>;
    /// Sets `key` to `value`, expiring at `expires`.
    fn set<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        expires: Option<SystemTime>,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<(), KvError>>;
    /// Deletes `key`; whether it existed (and had not expired).
    fn delete<'a>(&'a self, key: &'a str, now: SystemTime) -> BoxFuture<'a, Result<bool, KvError>>;
    /// Sets `key` to `new` only if it holds `expected` (`None`: absent or
    /// expired); whether it did.
    fn compare_and_set<'a>(
        &'a self,
        key: &'a str,
        expected: Option<&'a [u8]>,
        new: Vec<u8>,
        expires: Option<SystemTime>,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<bool, KvError>>;
    /// Adds `by` to the counter at `key` (missing: 0), keeping its
    /// expiry; the new value.
    fn increment<'a>(
        &'a self,
        key: &'a str,
        by: i64,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<i64, KvError>>;
    /// Keys under `prefix` in byte order, at most `limit`, none expired.
    fn list<'a>(
        &'a self,
        prefix: &'a str,
        limit: usize,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<Vec<String>, KvError>>;
}

/// Checks a (confined) key and a value against the bounds, as every
/// backend must before it stores anything.
pub fn check_key_and_value(key: &str, value: Option<&[u8]>) -> Result<(), KvError> {
    if key.is_empty() || key.len() > KV_KEY_MAX || key.contains('\0') {
        return Err(KvError::BadKey(format!(
            "{} bytes (1..={KV_KEY_MAX}, no NUL)",
            key.len()
        )));
    }
    if let Some(value) = value
        && value.len() > KV_VALUE_MAX
    {
        return Err(KvError::TooLarge(value.len()));
    }
    Ok(())
}

/// A counter's value (8 bytes, little-endian), or
/// [`KvError::NotACounter`]: what every backend's `increment` reads.
pub fn counter_value(key: &str, value: &[u8]) -> Result<i64, KvError> {
    let bytes: [u8; 8] = value
        .try_into()
        .map_err(|_| KvError::NotACounter(key.to_string()))?;
    Ok(i64::from_le_bytes(bytes))
}

/// Most read-then-swap rounds [`increment_by_swapping`] makes.
pub const INCREMENT_ROUNDS_MAX: usize = 1_000;

/// `increment` for a backend whose server cannot add 64-bit integers in
/// one atomic step (Lua's doubles, a SQL row without a transaction): reads
/// the counter, then compare-and-sets the sum (keeping the expiry),
/// retrying when a concurrent writer got there first.
pub async fn increment_by_swapping<S: KvStore + ?Sized>(
    store: &S,
    key: &str,
    by: i64,
    now: SystemTime,
) -> Result<i64, KvError> {
    for _ in 0..INCREMENT_ROUNDS_MAX {
        let current = store.get(key, now).await?;
        let (value, expires) = match &current {
            Some(entry) => (counter_value(key, &entry.value)?, entry.expires),
            None => (0, None),
        };
        let next = value
            .checked_add(by)
            .ok_or_else(|| KvError::NotACounter(format!("{key} would overflow")))?;
        let expected = current.as_ref().map(|e| e.value.as_slice());
        let swapped = store
            .compare_and_set(key, expected, next.to_le_bytes().to_vec(), expires, now)
            .await?;
        if swapped {
            return Ok(next);
        }
    }
    Err(KvError::Unavailable(format!(
        "{key}: lost {INCREMENT_ROUNDS_MAX} races to concurrent writers"
    )))
}
