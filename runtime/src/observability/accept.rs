//! The accept loop every HTTP server of a node shares (the operator
//! endpoint, the capability `HttpServer`): connections from the `Net`
//! seam's listener, each served as a task of the node, at most a bound at
//! once (more are closed unread) and each for at most a deadline on the
//! node's clock, so a slow or hostile client cannot pin the node's tasks.

use crate::env::Env;
use crate::seams::{Clock, Spawn};
use futures::FutureExt;
use futures::channel::oneshot;
use futures::future::BoxFuture;
use plexspaces_net::{DynConnection, DynListener, Listener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// How a server's connections are bounded, and what it is called in logs.
pub(crate) struct AcceptBounds {
    pub(crate) what: &'static str,
    pub(crate) connections_max: usize,
    pub(crate) deadline: Duration,
}

/// Accepts on `listener` until the returned sender is dropped, serving
/// each connection with `serve` within `bounds`.
pub(crate) fn accept_loop(
    env: &Env,
    mut listener: DynListener,
    bounds: AcceptBounds,
    serve: impl Fn(DynConnection) -> BoxFuture<'static, ()> + Send + Sync + 'static,
) -> oneshot::Sender<()> {
    let (stop, stopped) = oneshot::channel::<()>();
    let open = Arc::new(AtomicUsize::new(0));
    let node = env.clone();
    env.spawn_task(Box::pin(async move {
        let mut stopped = stopped.fuse();
        loop {
            let accepted = futures::select! {
                accepted = listener.accept().fuse() => accepted,
                _ = stopped => return,
            };
            let connection = match accepted {
                Ok((connection, _)) => connection,
                Err(e) => {
                    // Out of descriptors, say: do not spin.
                    tracing::warn!("{}: accept failed: {e}", bounds.what);
                    node.sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if open.fetch_add(1, Ordering::AcqRel) >= bounds.connections_max {
                open.fetch_sub(1, Ordering::AcqRel);
                continue; // dropped unread: closed
            }
            let (open, clock, what) = (open.clone(), node.clone(), bounds.what);
            let served = serve(connection);
            node.spawn_task(Box::pin(async move {
                if clock.timeout(bounds.deadline, served).await.is_err() {
                    tracing::debug!("{what}: a connection overran its deadline");
                }
                open.fetch_sub(1, Ordering::AcqRel);
            }));
        }
    }));
    stop
}
