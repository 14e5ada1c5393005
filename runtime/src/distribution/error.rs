//! Why distribution could not start, or an actor could not be resolved.

use super::*;

/// Distribution could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum DistributionError {
    /// This actor system already runs distribution.
    AlreadyStarted,
    /// A setting is out of range.
    InvalidConfig(String),
    /// The listening address could not be bound.
    Listen(NetError),
    /// The node's incarnation could not be read or stored on its disk.
    Disk(plexspaces_storage::disk::DiskError),
    /// A node service that spans the cluster (the object registry's
    /// replicator) could not start.
    Service(String),
}

impl fmt::Display for DistributionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DistributionError::AlreadyStarted => f.write_str("distribution is already running"),
            DistributionError::InvalidConfig(why) => write!(f, "invalid configuration: {why}"),
            DistributionError::Listen(e) => write!(f, "cannot listen: {e}"),
            DistributionError::Disk(e) => write!(f, "cannot store the node's incarnation: {e}"),
            DistributionError::Service(why) => write!(f, "cannot start {why}"),
        }
    }
}

impl std::error::Error for DistributionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DistributionError::Listen(e) => Some(e),
            DistributionError::Disk(e) => Some(e),
            DistributionError::AlreadyStarted
            | DistributionError::InvalidConfig(_)
            | DistributionError::Service(_) => None,
        }
    }
}

/// A ref to an actor could not be made.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResolveError {
    /// The id names another node and this node runs no distribution.
    NotDistributed(ActorId),
    /// The id names a node this node has never heard of.
    UnknownNode(ActorId),
    /// The id names this node and no actor of that name and type runs.
    NoSuchActor(ActorId),
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolveError::NotDistributed(id) => {
                write!(f, "{id} is on another node and distribution is not running")
            }
            ResolveError::UnknownNode(id) => write!(f, "the node of {id} is not a known member"),
            ResolveError::NoSuchActor(id) => write!(f, "no actor {id} of that type runs"),
        }
    }
}

impl std::error::Error for ResolveError {}
