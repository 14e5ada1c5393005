//! A bounded multi-producer, single-consumer mailbox.
//!
//! Built here rather than taken from a channel crate for two reasons: an
//! idle actor's empty mailbox allocates nothing beyond one small shared
//! block (channel crates preallocate a slab), and it depends only on
//! wakers, so it runs the same under tokio and the simulator.

use futures::task::AtomicWaker;
use plexspaces_storage::sync::LockExt;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

struct Shared<T> {
    state: Mutex<State<T>>,
    receiver: AtomicWaker,
    capacity: usize,
}

struct State<T> {
    queue: VecDeque<T>,
    closed: bool,
    /// Senders waiting for room.
    blocked: Vec<Waker>,
}

impl<T> Shared<T> {
    fn state(&self) -> MutexGuard<'_, State<T>> {
        self.state.locked()
    }
}

/// The sending side; cheap to clone.
pub(crate) struct Sender<T>(Arc<Shared<T>>);

/// The receiving side, owned by the actor's task. Dropping it closes the
/// mailbox and drops what is queued.
pub(crate) struct Receiver<T>(Arc<Shared<T>>);

/// Why a send failed; the message comes back.
pub(crate) enum TrySendError<T> {
    Full(T),
    Closed(T),
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Sender(self.0.clone())
    }
}

/// A mailbox holding at most `capacity` messages.
pub(crate) fn mailbox<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    assert!(capacity > 0, "a mailbox needs room for one message");
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            closed: false,
            blocked: Vec::new(),
        }),
        receiver: AtomicWaker::new(),
        capacity,
    });
    (Sender(shared.clone()), Receiver(shared))
}

impl<T> Sender<T> {
    pub(crate) fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let mut state = self.0.state();
        if state.closed {
            return Err(TrySendError::Closed(value));
        }
        if state.queue.len() >= self.0.capacity {
            return Err(TrySendError::Full(value));
        }
        state.queue.push_back(value);
        drop(state);
        self.0.receiver.wake();
        Ok(())
    }

    /// Sends, waiting for room; gives the message back if the mailbox closed.
    pub(crate) async fn send(&self, value: T) -> Result<(), T> {
        let mut slot = Some(value);
        std::future::poll_fn(|cx: &mut Context<'_>| {
            let mut state = self.0.state();
            let value = slot
                .take()
                .expect("a send future is not polled again after it completed");
            if state.closed {
                return Poll::Ready(Err(value));
            }
            if state.queue.len() < self.0.capacity {
                state.queue.push_back(value);
                drop(state);
                self.0.receiver.wake();
                return Poll::Ready(Ok(()));
            }
            state.blocked.push(cx.waker().clone());
            slot = Some(value);
            Poll::Pending
        })
        .await
    }

    /// Messages queued now.
    pub(crate) fn len(&self) -> usize {
        self.0.state().queue.len()
    }

    /// The most messages the mailbox holds.
    pub(crate) fn capacity(&self) -> usize {
        self.0.capacity
    }
}

impl<T> Receiver<T> {
    /// Moves every queued message into `batch` (one lock for all of them),
    /// or registers for a wake-up if there are none. `Ready(false)` once
    /// closed and empty.
    ///
    /// Messages in `batch` no longer count against the capacity, so at most
    /// twice the capacity is ever held: the mailbox plus one batch.
    pub(crate) fn poll_recv_batch(
        &mut self,
        cx: &mut Context<'_>,
        batch: &mut VecDeque<T>,
    ) -> Poll<bool> {
        if self.take_into(batch) {
            return Poll::Ready(true);
        }
        self.0.receiver.register(cx.waker());
        // Re-check after registering, so a send in between is not missed.
        if self.take_into(batch) {
            return Poll::Ready(true);
        }
        if self.0.state().closed {
            return Poll::Ready(false);
        }
        Poll::Pending
    }

    fn take_into(&mut self, batch: &mut VecDeque<T>) -> bool {
        let mut state = self.0.state();
        if state.queue.is_empty() {
            return false;
        }
        if batch.is_empty() {
            std::mem::swap(&mut state.queue, batch);
        } else {
            batch.extend(state.queue.drain(..));
        }
        let blocked = std::mem::take(&mut state.blocked);
        drop(state);
        for waker in blocked {
            waker.wake();
        }
        true
    }

    /// Messages queued now.
    pub(crate) fn len(&self) -> usize {
        self.0.state().queue.len()
    }
}

impl<T> Receiver<T> {
    /// Waits for messages and moves all queued ones into `batch`; false once
    /// closed and empty.
    pub(crate) async fn recv_batch(&mut self, batch: &mut VecDeque<T>) -> bool {
        std::future::poll_fn(|cx| self.poll_recv_batch(cx, batch)).await
    }

    /// Closes the mailbox: senders fail from now on, queued messages are
    /// dropped (queued asks see their reply channel closed).
    pub(crate) fn close(&mut self) {
        let mut state = self.0.state();
        state.closed = true;
        let queued = std::mem::take(&mut state.queue);
        let blocked = std::mem::take(&mut state.blocked);
        drop(state);
        drop(queued); // outside the lock: dropping may run arbitrary code
        for waker in blocked {
            waker.wake();
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;
    use futures::task::noop_waker;

    #[test]
    fn the_bound_holds_and_a_full_mailbox_makes_send_wait() {
        let (tx, mut rx) = mailbox(2);
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut batch = VecDeque::new();
        assert!(tx.try_send(1).is_ok());
        assert!(tx.send(2).now_or_never().unwrap().is_ok());
        assert!(matches!(tx.try_send(3), Err(TrySendError::Full(3))));
        let mut blocked = Box::pin(tx.send(3));
        assert!(
            blocked.as_mut().poll(&mut cx).is_pending(),
            "a full mailbox makes send wait"
        );
        assert_eq!((tx.len(), rx.len(), tx.capacity()), (2, 2, 2));
        assert_eq!(rx.poll_recv_batch(&mut cx, &mut batch), Poll::Ready(true));
        assert!(
            blocked.as_mut().poll(&mut cx).is_ready(),
            "room frees the waiting sender"
        );
        assert_eq!(rx.poll_recv_batch(&mut cx, &mut batch), Poll::Ready(true));
        assert_eq!(batch, [1, 2, 3], "in order");
    }

    #[test]
    fn a_batch_takes_everything_queued_and_frees_the_room() {
        let (tx, mut rx) = mailbox(3);
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut batch = VecDeque::new();
        assert!(rx.poll_recv_batch(&mut cx, &mut batch).is_pending());
        for n in 0..3 {
            tx.try_send(n).ok().unwrap();
        }
        assert_eq!(rx.poll_recv_batch(&mut cx, &mut batch), Poll::Ready(true));
        assert_eq!(batch, [0, 1, 2]);
        assert_eq!(tx.len(), 0, "the room is free again");
        tx.try_send(3).ok().unwrap();
        assert_eq!(rx.poll_recv_batch(&mut cx, &mut batch), Poll::Ready(true));
        assert_eq!(batch, [0, 1, 2, 3], "appended behind what is in hand");
        drop(tx);
        batch.clear();
        assert!(
            rx.poll_recv_batch(&mut cx, &mut batch).is_pending(),
            "senders gone is not closed"
        );
    }

    #[test]
    fn a_dropped_receiver_closes_the_mailbox_and_returns_messages() {
        let (tx, rx) = mailbox(1);
        tx.try_send(String::from("queued")).ok().unwrap();
        drop(rx);
        assert!(matches!(
            tx.try_send("late".into()),
            Err(TrySendError::Closed(_))
        ));
        assert_eq!(
            tx.send("later".into()).now_or_never().unwrap(),
            Err("later".to_string())
        );
    }

    use std::future::Future;
}
