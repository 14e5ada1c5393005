//! The one policy for poisoned locks, for every crate of PlexSpaces.
//!
//! A `std` lock is poisoned when a thread panicked while holding it. The
//! runtime's critical sections are short, hold no user code (handlers,
//! listeners and callbacks run after the guard is dropped) and update
//! their state so that every panic point leaves it consistent; a panic
//! under one of these locks is therefore a runtime bug that has already
//! been reported where it happened (an actor's failure, a task's panic).
//! Refusing the lock from then on would turn that one report into every
//! later caller on the node failing, so the policy is: **take the guard
//! and go on**. [`LockExt::locked`] is that policy; nothing else in the
//! code recovers a poisoned lock by hand.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// [`Mutex::lock`] under the poisoned-lock policy (see the module).
pub trait LockExt<T: ?Sized> {
    /// The guard, poisoned or not.
    fn locked(&self) -> MutexGuard<'_, T>;
}

impl<T: ?Sized> LockExt<T> for Mutex<T> {
    fn locked(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// [`Condvar::wait`] under the same policy.
pub fn wait<'a, T>(condvar: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    condvar.wait(guard).unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_still_gives_its_guard() {
        let lock = Mutex::new(1);
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _guard = lock.lock().unwrap();
            panic!("poisoning the lock on purpose");
        }));
        assert!(lock.is_poisoned());
        *lock.locked() += 1;
        assert_eq!(*lock.locked(), 2);
    }
}
