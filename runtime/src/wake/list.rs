//! Who waits on a durable host (a shared tuple space, a durable queue),
//! oldest first, and what was handed to whom until they collect it.
//!
//! It is part of the host's durable state: changed only by journaled
//! operations, at the journaled time, so it moves with the host and
//! replays the same. Waiters renew their registration; one not renewed
//! within its `ttl_ms` lapses (its node died, its future was dropped), and
//! what was handed to it and not collected within `ttl_ms` is given back
//! to the host ([`WaitList::lapsed`]).

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// Most waiters one host keeps, and most values handed and not yet
/// collected. Past either, a waiter is answered as waiting without a
/// registration and finds its value at its next renewal.
pub(crate) const WAITERS_MAX: usize = 10_000;

/// A waiter's node to wake, and its claim.
pub(crate) type Wake = (String, String);

/// Who is waiting, as each wait operation names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Claim {
    /// Names the blocked operation across its calls (unique in the
    /// cluster, as idempotency keys are).
    pub(crate) claim: String,
    /// The waiter's node, woken when a value is handed to it.
    pub(crate) node: String,
    /// How long the registration (and a value handed to it) lasts
    /// without being renewed or collected.
    pub(crate) ttl_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Waiting<W> {
    who: Claim,
    want: W,
    /// Wall-clock milliseconds on the host.
    expires_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Handed<H> {
    value: H,
    expires_ms: u64,
}

/// The waiters of one host, wanting `W`, handed `H`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct WaitList<W, H> {
    waiting: VecDeque<Waiting<W>>,
    handed: BTreeMap<String, Handed<H>>,
}

impl<W, H> Default for WaitList<W, H> {
    fn default() -> Self {
        WaitList {
            waiting: VecDeque::new(),
            handed: BTreeMap::new(),
        }
    }
}

impl<W: Clone, H> WaitList<W, H> {
    /// Whether nobody waits and nothing awaits collection (so the host
    /// need not read the time for it).
    pub(crate) fn is_empty(&self) -> bool {
        self.waiting.is_empty() && self.handed.is_empty()
    }

    /// How many waiters are registered (lapsed ones included until the
    /// next [`WaitList::serve`]).
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Whether `claim` is registered or has something to collect.
    pub(crate) fn knows(&self, claim: &str) -> bool {
        self.handed.contains_key(claim) || self.waiting.iter().any(|w| w.who.claim == claim)
    }

    /// What was handed to `claim`, taken out.
    pub(crate) fn collect(&mut self, claim: &str) -> Option<H> {
        self.handed.remove(claim).map(|h| h.value)
    }

    /// Registers `who` as wanting `want` (the newest waiter), or renews
    /// its registration.
    pub(crate) fn register(&mut self, who: &Claim, want: W, now_ms: u64) {
        let expires_ms = now_ms.saturating_add(who.ttl_ms);
        let registered = self.waiting.len();
        match self.waiting.iter_mut().find(|w| w.who.claim == who.claim) {
            Some(waiter) => waiter.expires_ms = expires_ms,
            None if registered < WAITERS_MAX => self.waiting.push_back(Waiting {
                who: who.clone(),
                want,
                expires_ms,
            }),
            None => {} // renewals find the value instead (see WAITERS_MAX)
        }
    }

    /// Removes `claim`'s registration.
    pub(crate) fn forget(&mut self, claim: &str) {
        self.waiting.retain(|w| w.who.claim != claim);
    }

    /// Ends `claim`'s wait: its registration goes, and what was handed to
    /// it comes back to the caller.
    pub(crate) fn cancel(&mut self, claim: &str) -> Option<H> {
        self.forget(claim);
        self.collect(claim)
    }

    /// Offers `give` to each live waiter, oldest first; what it gives is
    /// handed to that waiter (which leaves the list). Lapsed waiters are
    /// dropped. Returns whom to wake.
    pub(crate) fn serve(
        &mut self,
        now_ms: u64,
        mut give: impl FnMut(&W) -> Option<H>,
    ) -> Vec<Wake> {
        let mut woken = Vec::new();
        let mut i = 0;
        while i < self.waiting.len() && self.handed.len() < WAITERS_MAX {
            if self.waiting[i].expires_ms <= now_ms {
                self.waiting.remove(i);
                continue;
            }
            let Some(value) = give(&self.waiting[i].want) else {
                i += 1;
                continue;
            };
            let Some(waiter) = self.waiting.remove(i) else {
                unreachable!("index {i} was checked against the length above");
            };
            let expires_ms = now_ms.saturating_add(waiter.who.ttl_ms);
            self.handed
                .insert(waiter.who.claim.clone(), Handed { value, expires_ms });
            woken.push((waiter.who.node, waiter.who.claim));
        }
        woken
    }

    /// Whether something handed was not collected in time.
    pub(crate) fn any_lapsed(&self, now_ms: u64) -> bool {
        self.handed.values().any(|h| h.expires_ms <= now_ms)
    }

    /// Takes out what was handed and not collected in time, for the host
    /// to take back.
    pub(crate) fn lapsed(&mut self, now_ms: u64) -> Vec<H> {
        let claims: Vec<String> = self
            .handed
            .iter()
            .filter(|(_, h)| h.expires_ms <= now_ms)
            .map(|(claim, _)| claim.clone())
            .collect();
        claims
            .into_iter()
            .filter_map(|claim| self.handed.remove(&claim).map(|h| h.value))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(claim: &str) -> Claim {
        Claim {
            claim: claim.into(),
            node: format!("node-of-{claim}"),
            ttl_ms: 100,
        }
    }

    #[test]
    fn the_oldest_wanting_waiter_is_served_and_collects_once() {
        let mut list: WaitList<u32, u32> = WaitList::default();
        list.register(&who("a"), 1, 0);
        list.register(&who("b"), 2, 0);
        list.register(&who("c"), 1, 0);
        let mut offer = vec![1];
        let woken = list.serve(10, |want| {
            let at = offer.iter().position(|v| v == want)?;
            Some(offer.remove(at))
        });
        assert_eq!(woken, vec![("node-of-a".into(), "a".into())]);
        assert_eq!(list.waiting(), 2);
        assert_eq!(list.collect("a"), Some(1));
        assert_eq!(list.collect("a"), None);
        // Renewing keeps a waiter's place; a lapsed one is dropped.
        list.register(&who("c"), 1, 50);
        let woken = list.serve(120, |_| Some(9));
        assert_eq!(
            woken,
            vec![("node-of-c".into(), "c".into())],
            "b lapsed at 100"
        );
        assert!(list.knows("c") && !list.knows("b"));
        assert!(!list.any_lapsed(219) && list.any_lapsed(220));
        assert_eq!(list.lapsed(220), vec![9]);
        assert!(list.is_empty());
    }

    #[test]
    fn cancelling_returns_what_was_handed() {
        let mut list: WaitList<(), u32> = WaitList::default();
        list.register(&who("a"), (), 0);
        list.serve(1, |_| Some(7));
        assert_eq!(list.cancel("a"), Some(7));
        list.register(&who("b"), (), 0);
        assert_eq!(list.cancel("b"), None);
        assert!(list.is_empty());
    }
}
