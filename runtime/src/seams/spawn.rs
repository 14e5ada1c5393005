//! The `Spawn` seam: start a task on the current node, and a handle to
//! join or abort it.
//!
//! Implementations provide one method, [`Spawn::spawn_task`], that runs a
//! boxed future in the background. Everything a caller sees (the typed
//! [`JoinHandle`], abort, panic capture) is built here, once, on top of it,
//! so every executor behaves the same way.

use futures::FutureExt;
use futures::channel::oneshot;
use futures::future::{AbortHandle, Abortable, Aborted, BoxFuture};
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

/// Starts tasks on a node.
pub trait Spawn: Send + Sync + 'static {
    /// Runs `task` in the background until it completes. The executor must
    /// not drop it early except when the node itself stops (or crashes, in
    /// the simulator).
    fn spawn_task(&self, task: BoxFuture<'static, ()>);

    /// Starts `future` as a task and returns a handle to its output.
    ///
    /// A panic inside the task is caught and reported through the handle as
    /// [`JoinError::Panicked`]; it never takes the node down. Dropping the
    /// handle detaches the task (it keeps running), as with tokio.
    fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        Self: Sized,
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        spawn_on(self, future)
    }
}

/// [`Spawn::spawn`] for any spawner, including a `dyn Spawn`.
pub fn spawn_on<S, F>(spawner: &S, future: F) -> JoinHandle<F::Output>
where
    S: Spawn + ?Sized,
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (abort, registration) = AbortHandle::new_pair();
    let (done_tx, done_rx) = oneshot::channel();
    let finished = Arc::new(AtomicBool::new(false));
    let finished_flag = finished.clone();
    let guarded = Abortable::new(AssertUnwindSafe(future).catch_unwind(), registration);
    spawner.spawn_task(Box::pin(async move {
        let outcome = match guarded.await {
            Ok(Ok(output)) => Ok(output),
            Ok(Err(panic)) => Err(JoinError::Panicked(panic_message(panic.as_ref()))),
            Err(Aborted) => Err(JoinError::Aborted),
        };
        finished_flag.store(true, Ordering::Release);
        // The handle may be gone (detached task); nobody wants the outcome then.
        let _ = done_tx.send(outcome);
    }));
    JoinHandle {
        outcome: done_rx,
        abort,
        finished,
    }
}

/// Why a task produced no output.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JoinError {
    /// [`JoinHandle::abort`] stopped it.
    Aborted,
    /// It panicked; the panic's message, when it had one.
    Panicked(String),
    /// The executor dropped it unfinished (its node stopped or crashed).
    Dropped,
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Aborted => f.write_str("task was aborted"),
            JoinError::Panicked(msg) => write!(f, "task panicked: {msg}"),
            JoinError::Dropped => f.write_str("task was dropped by its executor"),
        }
    }
}

impl std::error::Error for JoinError {}

/// The text of a caught panic, for error reports.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&'static str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

/// A handle to a spawned task: await it for the task's output.
#[must_use = "dropping a JoinHandle detaches the task; await it or call abort()"]
pub struct JoinHandle<T> {
    outcome: oneshot::Receiver<Result<T, JoinError>>,
    abort: AbortHandle,
    finished: Arc<AtomicBool>,
}

impl<T> JoinHandle<T> {
    /// Stops the task at its next suspension point. Awaiting the handle
    /// afterwards yields [`JoinError::Aborted`] (or the output, if the task
    /// had already finished).
    pub fn abort(&self) {
        self.abort.abort();
    }

    /// Whether the task has finished (with output, panic or abort).
    pub fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.outcome.poll_unpin(cx) {
            Poll::Ready(Ok(outcome)) => Poll::Ready(outcome),
            Poll::Ready(Err(oneshot::Canceled)) => Poll::Ready(Err(JoinError::Dropped)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}
