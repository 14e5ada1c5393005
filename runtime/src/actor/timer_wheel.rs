//! A hashed timer wheel: the deadline set behind every `ask` and actor timer.
//!
//! An ask registers its deadline and, almost always, removes it a few
//! microseconds later when the reply comes. In an ordered map that was a
//! tree node allocated and freed per ask (the map is usually empty) and a
//! third of the ask's cost. Here entries live in a slab (reused, no
//! allocation once warm) and are linked into one slot per millisecond of
//! an 8.192 s horizon, so insert and remove are O(1) pointer updates.
//! Deadlines beyond the horizon wait in an ordered overflow map and move
//! into the wheel as it turns; they are rare (timeouts over 8 s, long
//! intervals).
//!
//! Expiry is exact: an entry is taken only once its own deadline (not its
//! slot's millisecond) has passed, and [`TimerWheel::next_deadline`] is
//! the exact earliest deadline, so the driver sleeps to the nanosecond the
//! ordered map gave it. Entries that expire together come out in
//! (deadline, insertion) order.

use crate::seams::Instant;
use std::collections::BTreeMap;
use std::time::Duration;

/// One slot per tick.
const TICK: Duration = Duration::from_millis(1);
/// Slots in the wheel: the horizon is `SLOTS` ticks (8.192 s).
const SLOTS: u64 = 8192;
/// No entry (end of a slot's list).
const NIL: u32 = u32::MAX;
/// Slab cells kept once the wheel empties (a burst's are given back).
const SLAB_KEPT: usize = 1024;

/// Names one entry of a [`TimerWheel`]; stale once the entry is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WheelKey {
    index: u32,
    id: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    Free,
    Slot,
    Overflow,
}

struct Entry<T> {
    deadline: Instant,
    id: u64,
    item: Option<T>,
    place: Place,
    prev: u32,
    next: u32,
}

pub(crate) struct TimerWheel<T> {
    /// Head of each slot's doubly linked list of entries.
    slots: Vec<u32>,
    entries: Vec<Entry<T>>,
    free: Vec<u32>,
    /// Entries whose tick is at or beyond `cursor + SLOTS`.
    overflow: BTreeMap<(Instant, u64), u32>,
    /// Every tick before this one is empty: its slot now serves the tick
    /// `SLOTS` later.
    cursor: u64,
    /// Entries linked into slots (not counting the overflow).
    in_slots: usize,
    next_id: u64,
}

fn tick_of(at: Instant) -> u64 {
    let ticks = at.since_origin().as_nanos() / TICK.as_nanos();
    u64::try_from(ticks).unwrap_or(u64::MAX)
}

impl<T> TimerWheel<T> {
    pub(crate) fn new() -> Self {
        TimerWheel {
            slots: vec![NIL; SLOTS as usize],
            entries: Vec::new(),
            free: Vec::new(),
            overflow: BTreeMap::new(),
            cursor: 0,
            in_slots: 0,
            next_id: 0,
        }
    }

    /// Entries waiting.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.in_slots + self.overflow.len()
    }

    /// Adds `item`, due at `deadline` (a past deadline is due at once).
    pub(crate) fn insert(&mut self, deadline: Instant, item: T) -> WheelKey {
        let id = self.next_id;
        self.next_id += 1;
        let entry = Entry {
            deadline,
            id,
            item: Some(item),
            place: Place::Free,
            prev: NIL,
            next: NIL,
        };
        let index = match self.free.pop() {
            Some(index) => {
                self.entries[index as usize] = entry;
                index
            }
            None => {
                let index = u32::try_from(self.entries.len())
                    .ok()
                    .filter(|&i| i != NIL)
                    .expect("fewer than 2^32 - 1 timers at once");
                self.entries.push(entry);
                index
            }
        };
        self.place(index);
        WheelKey { index, id }
    }

    /// Links a free-standing entry into its slot, or the overflow.
    fn place(&mut self, index: u32) {
        let entry = &self.entries[index as usize];
        let tick = tick_of(entry.deadline).max(self.cursor);
        if tick < self.cursor.saturating_add(SLOTS) {
            let slot = (tick % SLOTS) as usize;
            let head = self.slots[slot];
            let entry = &mut self.entries[index as usize];
            entry.place = Place::Slot;
            entry.prev = NIL;
            entry.next = head;
            if head != NIL {
                self.entries[head as usize].prev = index;
            }
            self.slots[slot] = index;
            self.in_slots += 1;
        } else {
            let key = (entry.deadline, entry.id);
            self.entries[index as usize].place = Place::Overflow;
            self.overflow.insert(key, index);
        }
    }

    /// The live entry `key` names, if it was not taken yet.
    fn live(&self, key: WheelKey) -> Option<&Entry<T>> {
        self.entries
            .get(key.index as usize)
            .filter(|e| e.id == key.id && e.place != Place::Free)
    }

    /// The item of `key`, unless it was taken (expired or removed).
    pub(crate) fn get_mut(&mut self, key: WheelKey) -> Option<&mut T> {
        self.live(key)?;
        self.entries[key.index as usize].item.as_mut()
    }

    /// Takes the item of `key` out; `None` if it was taken already.
    pub(crate) fn remove(&mut self, key: WheelKey) -> Option<T> {
        self.live(key)?;
        Some(self.take(key.index))
    }

    /// Unlinks entry `index` and frees its slab cell.
    fn take(&mut self, index: u32) -> T {
        let entry = &mut self.entries[index as usize];
        let (place, prev, next) = (entry.place, entry.prev, entry.next);
        let (deadline, id) = (entry.deadline, entry.id);
        entry.place = Place::Free;
        let item = entry
            .item
            .take()
            .expect("a linked entry holds its item until it is taken");
        match place {
            Place::Slot => {
                if prev != NIL {
                    self.entries[prev as usize].next = next;
                } else {
                    let tick = tick_of(deadline).max(self.cursor);
                    let slot = (tick % SLOTS) as usize;
                    debug_assert_eq!(self.slots[slot], index, "a list's first entry is its head");
                    self.slots[slot] = next;
                }
                if next != NIL {
                    self.entries[next as usize].prev = prev;
                }
                self.in_slots -= 1;
            }
            Place::Overflow => {
                let removed = self.overflow.remove(&(deadline, id));
                debug_assert_eq!(removed, Some(index), "an overflow entry is in the map");
            }
            Place::Free => unreachable!("take is called on live entries only"),
        }
        self.free.push(index);
        if self.in_slots == 0 && self.overflow.is_empty() && self.entries.len() > SLAB_KEPT {
            // Empty after a burst: give the slab back rather than keep its
            // high-water mark for the node's lifetime. Keys still held
            // stay harmless: their index is out of range or their id
            // (never reused) does not match.
            self.entries.clear();
            self.entries.shrink_to(SLAB_KEPT);
            self.free.clear();
            self.free.shrink_to(SLAB_KEPT);
        }
        item
    }

    /// Moves overflow entries that the wheel's horizon now covers into it.
    fn pull_overflow(&mut self) {
        let horizon = self.cursor.saturating_add(SLOTS);
        while let Some((&(deadline, _), &index)) = self.overflow.first_key_value() {
            if tick_of(deadline) >= horizon {
                break;
            }
            self.overflow.pop_first();
            self.place(index);
        }
    }

    /// Takes every item whose deadline is at or before `now`, in
    /// (deadline, insertion) order.
    pub(crate) fn take_expired(&mut self, now: Instant) -> Vec<T> {
        let now_tick = tick_of(now);
        let mut expired: Vec<(Instant, u64, T)> = Vec::new();
        loop {
            if self.in_slots == 0 {
                // Nothing in the wheel: jump the cursor over the empty
                // ticks (to the overflow's first, or to now).
                let first = self.overflow.first_key_value().map(|(k, _)| tick_of(k.0));
                let jump = first.map_or(now_tick, |f| f.min(now_tick));
                // Keep slots consistent: entries are placed by tick, so
                // moving the cursor over empty slots changes nothing.
                self.cursor = self.cursor.max(jump);
                self.pull_overflow();
                if self.in_slots == 0 {
                    break;
                }
            }
            if self.cursor > now_tick {
                break;
            }
            let slot = (self.cursor % SLOTS) as usize;
            let mut at = self.slots[slot];
            while at != NIL {
                let next = self.entries[at as usize].next;
                let entry = &self.entries[at as usize];
                if entry.deadline <= now {
                    let (deadline, id) = (entry.deadline, entry.id);
                    expired.push((deadline, id, self.take(at)));
                }
                at = next;
            }
            if self.cursor == now_tick {
                // Entries later in this tick stay; the cursor stays too.
                break;
            }
            debug_assert_eq!(self.slots[slot], NIL, "a past tick's slot is emptied");
            self.cursor += 1;
            self.pull_overflow();
        }
        expired.sort_unstable_by_key(|(deadline, id, _)| (*deadline, *id));
        expired.into_iter().map(|(_, _, item)| item).collect()
    }

    /// The earliest deadline waiting, exactly.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        if self.in_slots > 0 {
            // The first non-empty slot from the cursor holds the earliest
            // tick; its earliest entry is the earliest of all (overflow
            // ticks lie beyond every slot's).
            for step in 0..SLOTS {
                let slot = ((self.cursor + step) % SLOTS) as usize;
                let mut at = self.slots[slot];
                let mut earliest: Option<Instant> = None;
                while at != NIL {
                    let entry = &self.entries[at as usize];
                    earliest = Some(earliest.map_or(entry.deadline, |e| e.min(entry.deadline)));
                    at = entry.next;
                }
                if earliest.is_some() {
                    return earliest;
                }
            }
            unreachable!("in_slots counts linked entries: some slot is not empty");
        }
        self.overflow.first_key_value().map(|(k, _)| k.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        /// Insert due this many ms (and µs) after now.
        Insert(u64, u32),
        /// Remove the n-th key handed out (if any).
        Remove(usize),
        /// Advance now by this many µs, then take what expired.
        Advance(u64),
    }

    fn ops() -> impl Strategy<Value = Vec<Op>> {
        let op = prop_oneof![
            4 => (prop_oneof![0u64..20, 0u64..20_000], 0u32..1000).prop_map(|(ms, us)| Op::Insert(ms, us)),
            2 => (0usize..64).prop_map(Op::Remove),
            3 => prop_oneof![0u64..3_000, 0u64..20_000_000].prop_map(Op::Advance),
        ];
        prop::collection::vec(op, 1..200)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The wheel answers like an ordered map of (deadline, id): what
        /// expires, in which order, what is left, and the next deadline.
        #[test]
        fn the_wheel_behaves_like_an_ordered_map(start_ms in 0u64..100_000, ops in ops()) {
            let mut now = Instant::from_duration(Duration::from_millis(start_ms));
            let mut wheel = TimerWheel::new();
            let mut model: BTreeMap<(Instant, u64), u64> = BTreeMap::new();
            let mut keys: Vec<(WheelKey, (Instant, u64))> = Vec::new();
            let mut next = 0u64;
            for op in ops {
                match op {
                    Op::Insert(ms, us) => {
                        let at = now + Duration::from_millis(ms) + Duration::from_micros(u64::from(us));
                        let key = wheel.insert(at, next);
                        model.insert((at, next), next);
                        keys.push((key, (at, next)));
                        next += 1;
                    }
                    Op::Remove(n) => {
                        if let Some(&(key, model_key)) = keys.get(n) {
                            prop_assert_eq!(wheel.remove(key), model.remove(&model_key));
                            prop_assert_eq!(wheel.remove(key), None, "a key works once");
                        }
                    }
                    Op::Advance(us) => {
                        now = now + Duration::from_micros(us);
                        let got = wheel.take_expired(now);
                        let mut want = Vec::new();
                        while let Some(entry) = model.first_entry() {
                            if entry.key().0 > now {
                                break;
                            }
                            want.push(entry.remove());
                        }
                        prop_assert_eq!(got, want);
                    }
                }
                prop_assert_eq!(wheel.len(), model.len());
                prop_assert_eq!(wheel.next_deadline(), model.keys().next().map(|k| k.0));
                for (key, model_key) in &keys {
                    prop_assert_eq!(wheel.get_mut(*key).copied(), model.get(model_key).copied());
                }
            }
        }
    }

    #[test]
    fn a_burst_is_given_back_once_the_wheel_empties_and_old_keys_stay_dead() {
        let mut wheel = TimerWheel::new();
        let at = Instant::from_duration(Duration::from_millis(5));
        let keys: Vec<WheelKey> = (0..10_000).map(|i| wheel.insert(at, i)).collect();
        assert_eq!(wheel.take_expired(at).len(), 10_000);
        assert!(
            wheel.entries.capacity() <= SLAB_KEPT,
            "the burst's slab was kept"
        );
        let fresh = wheel.insert(at + Duration::from_millis(1), 7);
        for key in keys {
            assert_eq!(
                wheel.remove(key),
                None,
                "a key of the burst names nothing now"
            );
        }
        assert_eq!(wheel.remove(fresh), Some(7));
    }

    #[test]
    fn a_far_deadline_and_a_past_one_are_kept_exactly() {
        let mut wheel = TimerWheel::new();
        let now = Instant::from_duration(Duration::from_secs(10));
        let far = wheel.insert(now + Duration::from_secs(3600), "far");
        wheel.insert(Instant::from_duration(Duration::from_secs(1)), "past");
        wheel.insert(Instant::from_duration(Duration::MAX), "never");
        assert_eq!(wheel.take_expired(now), vec!["past"]);
        assert_eq!(wheel.next_deadline(), Some(now + Duration::from_secs(3600)));
        assert!(
            wheel
                .take_expired(now + Duration::from_secs(3599))
                .is_empty()
        );
        assert_eq!(
            wheel.take_expired(now + Duration::from_secs(3600)),
            vec!["far"]
        );
        assert_eq!(wheel.remove(far), None);
        assert_eq!(wheel.len(), 1, "the deadline that never comes waits");
    }
}
