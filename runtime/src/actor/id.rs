//! Actor ids: `name@node`.

use crate::env::NodeName;
use std::fmt;
use std::sync::Arc;

/// An actor's address: its name, unique on its node, and the node.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ActorId {
    name: Arc<str>,
    node: NodeName,
}

/// An actor name was empty, too long, or held `@` or a control character.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidActorName(pub String);

impl fmt::Display for InvalidActorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid actor name {:?}: 1 to {} bytes, no '@' or control characters",
            self.0,
            ActorId::NAME_LEN_MAX
        )
    }
}

impl std::error::Error for InvalidActorName {}

impl ActorId {
    /// Longest actor name, in bytes: room for a UUID or a URL-ish key
    /// inside a virtual actor's `kind:id` or a workflow's
    /// `kind:tenant/id`. A durable actor whose id is longer than a journal
    /// stream name journals under a hash of it
    /// ([`stream_for`](crate::durability::stream_for)).
    pub const NAME_LEN_MAX: usize = 255;

    /// The id of actor `name` on `node`.
    pub fn new(name: &str, node: NodeName) -> Result<Self, InvalidActorName> {
        if crate::names::check_free_form("actor name", name, Self::NAME_LEN_MAX, &['@']).is_err() {
            return Err(InvalidActorName(name.to_string()));
        }
        Ok(ActorId {
            name: name.into(),
            node,
        })
    }

    /// The actor's name on its node.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The node the actor lives on.
    pub fn node(&self) -> &NodeName {
        &self.node
    }
}

impl fmt::Display for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_read_name_at_node() {
        let node = NodeName::new("n1").unwrap();
        let id = ActorId::new("counter-7", node.clone()).unwrap();
        assert_eq!(id.to_string(), "counter-7@n1");
        assert_eq!((id.name(), id.node()), ("counter-7", &node));
        for bad in [
            "",
            "a@b",
            "tab\there",
            &"x".repeat(ActorId::NAME_LEN_MAX + 1),
        ] {
            assert!(ActorId::new(bad, node.clone()).is_err(), "{bad:?}");
        }
        let longest = "x".repeat(ActorId::NAME_LEN_MAX);
        assert_eq!(ActorId::new(&longest, node).unwrap().name(), longest);
    }
}
