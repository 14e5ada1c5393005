//! The tuple index both tuple spaces keep (the in-memory `TupleSpace` and
//! the hosted state of a shared space): tuples bucketed by arity and first
//! field, each bucket in insertion order, so a pattern with an exact first
//! field looks in one bucket and any other pattern only in the buckets of
//! its arity; and "oldest first" means insertion order across buckets.

use super::value::{Pattern, Tuple, Value};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A bucket: every tuple of one arity with one first field (`None`: the
/// tuple has no fields).
type BucketKey = (usize, Option<Value>);

/// What the index holds: a tuple, or a tuple with bookkeeping around it.
pub(crate) trait Indexed {
    /// The tuple patterns are matched against.
    fn tuple(&self) -> &Tuple;
}

impl Indexed for Tuple {
    fn tuple(&self) -> &Tuple {
        self
    }
}

/// Where one entry of a [`TupleIndex`] is: valid until the index changes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Slot {
    /// Insertion order first, so slots sort oldest first.
    seq: u64,
    key: BucketKey,
}

/// Tuples by (arity, first field), each bucket in insertion order.
///
/// Serialized as its three fields in order (`buckets`, `len`, `next_seq`):
/// a shared space's checkpoints hold it, so its encoding must not change.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct TupleIndex<T> {
    buckets: BTreeMap<BucketKey, BTreeMap<u64, T>>,
    len: usize,
    next_seq: u64,
}

impl<T> Default for TupleIndex<T> {
    fn default() -> Self {
        TupleIndex {
            buckets: BTreeMap::new(),
            len: 0,
            next_seq: 0,
        }
    }
}

impl<T: Indexed> TupleIndex<T> {
    /// How many entries it holds.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Adds `entry` as the newest.
    pub(crate) fn insert(&mut self, entry: T) {
        let tuple = entry.tuple();
        let key = (tuple.0.len(), tuple.0.first().cloned());
        self.buckets
            .entry(key)
            .or_default()
            .insert(self.next_seq, entry);
        self.next_seq += 1;
        self.len += 1;
    }

    /// The buckets a tuple matching `pattern` can be in.
    fn candidates(&self, pattern: &Pattern) -> Vec<BucketKey> {
        let arity = pattern.arity();
        match pattern.exact_head() {
            Some(head) => vec![(arity, Some(head.clone()))],
            None => self
                .buckets
                .range((arity, None)..)
                .take_while(|(k, _)| k.0 == arity)
                .map(|(k, _)| k.clone())
                .collect(),
        }
    }

    /// The oldest entry whose tuple matches `pattern`.
    pub(crate) fn find(&self, pattern: &Pattern) -> Option<Slot> {
        self.candidates(pattern)
            .into_iter()
            .filter_map(|key| {
                let bucket = self.buckets.get(&key)?;
                let (&seq, _) = bucket.iter().find(|(_, e)| pattern.matches(e.tuple()))?;
                Some(Slot { seq, key })
            })
            .min()
    }

    /// Every entry whose tuple matches `pattern`, oldest first.
    pub(crate) fn find_all(&self, pattern: &Pattern) -> Vec<Slot> {
        let mut found: Vec<Slot> = self
            .candidates(pattern)
            .into_iter()
            .filter_map(|key| self.buckets.get(&key).map(|bucket| (key, bucket)))
            .flat_map(|(key, bucket)| {
                bucket
                    .iter()
                    .filter(|(_, e)| pattern.matches(e.tuple()))
                    .map(move |(&seq, _)| Slot {
                        seq,
                        key: key.clone(),
                    })
            })
            .collect();
        found.sort();
        found
    }

    /// The entry at `slot`.
    ///
    /// # Panics
    /// If `slot` is not in the index: slots come from `find` under the
    /// same borrow, so that is a bug of the caller.
    pub(crate) fn get(&self, slot: &Slot) -> &T {
        self.buckets
            .get(&slot.key)
            .and_then(|bucket| bucket.get(&slot.seq))
            .expect("a slot found under the same borrow is in the index")
    }

    /// Removes and returns the entry at `slot` (see [`TupleIndex::get`]).
    pub(crate) fn remove(&mut self, slot: &Slot) -> T {
        let bucket = self
            .buckets
            .get_mut(&slot.key)
            .expect("a slot found under the same borrow has its bucket");
        let entry = bucket
            .remove(&slot.seq)
            .expect("a slot found under the same borrow is in its bucket");
        if bucket.is_empty() {
            self.buckets.remove(&slot.key);
        }
        self.len -= 1;
        entry
    }

    /// Drops, from the buckets `pattern` can match in, the entries `keep`
    /// refuses; returns how many went.
    pub(crate) fn prune(&mut self, pattern: &Pattern, mut keep: impl FnMut(&T) -> bool) -> usize {
        let mut gone = 0;
        for key in self.candidates(pattern) {
            let Some(bucket) = self.buckets.get_mut(&key) else {
                continue;
            };
            let before = bucket.len();
            bucket.retain(|_, entry| keep(entry));
            gone += before - bucket.len();
            if bucket.is_empty() {
                self.buckets.remove(&key);
            }
        }
        self.len -= gone;
        gone
    }

    /// Removes every entry (insertion order carries on).
    pub(crate) fn clear(&mut self) {
        self.buckets.clear();
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tuplespace::{Field, Kind};

    fn tuple(fields: Vec<Value>) -> Tuple {
        Tuple(fields)
    }

    #[test]
    fn oldest_first_across_buckets_and_only_matching_arity() {
        let mut index = TupleIndex::default();
        index.insert(tuple(vec![Value::Str("b".into()), Value::Int(1)]));
        index.insert(tuple(vec![Value::Str("a".into()), Value::Int(2)]));
        index.insert(tuple(vec![Value::Str("a".into())]));
        index.insert(tuple(vec![Value::Str("b".into()), Value::Int(3)]));
        let any_pair = Pattern(vec![Field::Any, Field::Typed(Kind::Int)]);
        let found = index.find(&any_pair).unwrap();
        assert_eq!(index.get(&found).0[1], Value::Int(1), "the oldest pair");
        let all: Vec<i64> = index
            .find_all(&any_pair)
            .iter()
            .map(|slot| match index.get(slot).0[1] {
                Value::Int(n) => n,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(all, [1, 2, 3], "insertion order across buckets");
        let a = Pattern(vec![Field::Exact(Value::Str("a".into())), Field::Any]);
        let slot = index.find(&a).unwrap();
        assert_eq!(index.remove(&slot).0[1], Value::Int(2));
        assert_eq!((index.len(), index.find(&a)), (3, None));
        assert_eq!(index.prune(&any_pair, |t| t.0[1] != Value::Int(3)), 1);
        assert_eq!(index.len(), 2);
        index.clear();
        assert_eq!((index.len(), index.find(&any_pair)), (0, None));
    }
}
