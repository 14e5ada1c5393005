//! `Env`: the one value through which a node touches the world.
//!
//! Every node gets an `Env` bundling one implementation of each seam. The
//! runtime never reaches past it for a global, so a simulated node (fake
//! clock, seeded randomness, faulty disk, partitionable network) and a
//! production node run exactly the same code.

use crate::observability::{NodeMetrics, NodeTraces};
use crate::seams::{Clock, DynClock, DynDisk, DynNet, Instant, JoinHandle, Rng, Spawn, spawn_on};
use futures::future::BoxFuture;
use plexspaces_net::Net;
use plexspaces_storage::disk::Disk;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

/// A node's name, as it appears in actor ids (`name@node`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeName(Arc<str>);

/// A node name was empty, too long, or used a reserved character.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidNodeName(pub String);

impl fmt::Display for InvalidNodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid node name {:?}: 1 to 64 characters of [A-Za-z0-9._-]",
            self.0
        )
    }
}

impl std::error::Error for InvalidNodeName {}

impl NodeName {
    /// Longest node name accepted.
    pub const LEN_MAX: usize = 64;

    /// Checks and wraps a node name: 1 to 64 ASCII letters, digits, `.`,
    /// `_` or `-` (so it can never contain the `@` of an actor id).
    pub fn new(name: &str) -> Result<Self, InvalidNodeName> {
        if crate::names::check_token("node name", name, Self::LEN_MAX).is_err() {
            return Err(InvalidNodeName(name.to_string()));
        }
        Ok(NodeName(name.into()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The world as one node sees it: its name, clock, spawner, randomness,
/// disk and network. Cheap to clone; clones share everything.
///
/// `Env` implements [`Clock`], [`Spawn`] and [`Rng`] itself, so code holding
/// one can write `env.sleep(d)`, `env.spawn(fut)`, `env.gen_range(0..n)`.
#[derive(Clone)]
pub struct Env {
    inner: Arc<EnvParts>,
}

struct EnvParts {
    node: NodeName,
    clock: DynClock,
    spawner: Arc<dyn Spawn>,
    rng: Arc<dyn Rng>,
    disk: DynDisk,
    net: DynNet,
    /// Not a seam: the node's metrics registry travels with its seams so
    /// every layer that holds an `Env` can record into it.
    metrics: NodeMetrics,
    /// The node's tracer, once installed (as the metrics: not a seam).
    traces: NodeTraces,
}

impl Env {
    /// Bundles one implementation of each seam for the node `node`.
    pub fn new(
        node: NodeName,
        clock: impl Clock,
        spawner: impl Spawn,
        rng: impl Rng,
        disk: impl Disk,
        net: impl Net,
    ) -> Self {
        Env {
            inner: Arc::new(EnvParts {
                node,
                clock: DynClock::new(clock),
                spawner: Arc::new(spawner),
                rng: Arc::new(rng),
                disk: DynDisk::new(disk),
                net: DynNet::new(net),
                metrics: NodeMetrics::new(),
                traces: NodeTraces::default(),
            }),
        }
    }

    /// The production environment: tokio's clock and executor (of the
    /// runtime this is called on), OS randomness and TCP, with a disk in
    /// memory: enough for a program that keeps nothing on disk. Give it a
    /// directory with [`Env::with_data_dir`] (or any disk with
    /// [`Env::with_disk`]) before anything journals to it.
    #[cfg(feature = "tokio")]
    pub fn tokio(node: NodeName) -> Self {
        use crate::tokio_backend::{OsRng, ProcessCollector, TokioClock, TokioSpawner};
        let env = Env::new(
            node,
            TokioClock::new(),
            TokioSpawner::current(),
            OsRng::new(),
            plexspaces_storage::disk::MemDisk::new(),
            plexspaces_net::TcpNet::new(),
        );
        env.metrics().set_collector("process", ProcessCollector);
        env
    }

    /// This environment with its disk replaced by the files under
    /// `data_dir` (created if missing).
    #[cfg(feature = "tokio")]
    pub async fn with_data_dir(
        self,
        data_dir: impl Into<std::path::PathBuf>,
    ) -> Result<Self, plexspaces_storage::disk::DiskError> {
        let disk = plexspaces_storage::disk::FsDisk::open_dir(data_dir).await?;
        Ok(self.with_disk(disk))
    }

    /// This environment with its disk replaced by `disk`; the other seams
    /// are shared with `self`. Meant for building a node's environment:
    /// code that already holds the old one keeps the old disk.
    pub fn with_disk(self, disk: impl Disk) -> Self {
        let parts = &self.inner;
        Env {
            inner: Arc::new(EnvParts {
                node: parts.node.clone(),
                clock: parts.clock.clone(),
                spawner: parts.spawner.clone(),
                rng: parts.rng.clone(),
                disk: DynDisk::new(disk),
                net: parts.net.clone(),
                metrics: parts.metrics.clone(),
                traces: parts.traces.clone(),
            }),
        }
    }

    /// This node's name.
    pub fn node(&self) -> &NodeName {
        &self.inner.node
    }

    /// This node's disk (a directory it owns).
    pub fn disk(&self) -> &DynDisk {
        &self.inner.disk
    }

    /// This node's network.
    pub fn net(&self) -> &DynNet {
        &self.inner.net
    }

    /// This node's randomness, shared (for what must draw ids from the
    /// seam without holding the whole `Env`).
    pub(crate) fn rng_handle(&self) -> Arc<dyn Rng> {
        self.inner.rng.clone()
    }

    /// This node's metrics registry.
    pub fn metrics(&self) -> &NodeMetrics {
        &self.inner.metrics
    }

    /// This node's tracer (off until installed).
    pub fn traces(&self) -> &NodeTraces {
        &self.inner.traces
    }

    /// Starts `future` as a task on this node (see [`Spawn::spawn`]).
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        spawn_on(&*self.inner.spawner, future)
    }
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Env")
            .field("node", &self.inner.node)
            .finish_non_exhaustive()
    }
}

impl Clock for Env {
    fn now(&self) -> Instant {
        self.inner.clock.now()
    }
    fn wall_clock(&self) -> SystemTime {
        self.inner.clock.wall_clock()
    }
    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + Send + 'static {
        self.inner.clock.sleep_until(deadline)
    }
}

impl Spawn for Env {
    fn spawn_task(&self, task: BoxFuture<'static, ()>) {
        self.inner.spawner.spawn_task(task);
    }
}

impl Rng for Env {
    fn next_u64(&self) -> u64 {
        self.inner.rng.next_u64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_are_checked() {
        for good in ["node1", "a", "eu-west.3_b"] {
            assert_eq!(NodeName::new(good).unwrap().as_str(), good);
        }
        for bad in ["", "a@b", "has space", "slash/", &"n".repeat(65)] {
            assert_eq!(NodeName::new(bad), Err(InvalidNodeName(bad.to_string())));
        }
        assert_eq!(NodeName::new("n1").unwrap().to_string(), "n1");
    }
}
