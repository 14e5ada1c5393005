//! Placement: which node hosts a virtual actor. Rendezvous (highest random
//! weight) hashing over the nodes eligible to host: every node that sees
//! the same eligible set picks the same owner, and when a node leaves only
//! the ids it owned move.

use crate::env::NodeName;

/// The owner of `kind:id` among `nodes` (`None` if there are none).
pub(crate) fn owner<'a>(kind: &str, id: &str, nodes: &'a [NodeName]) -> Option<&'a NodeName> {
    // Ties (astronomically unlikely) go to the smaller name, so the choice
    // never depends on the slice's order.
    nodes
        .iter()
        .max_by(|a, b| weight(kind, id, a).cmp(&weight(kind, id, b)).then(b.cmp(a)))
}

/// A stable 64-bit weight: FNV-1a over the three names (with separators),
/// then a splitmix64 finalizer so similar names spread. Written out rather
/// than taken from `std::hash`, whose output may change between Rust
/// releases: nodes built by different compilers must agree.
fn weight(kind: &str, id: &str, node: &NodeName) -> u64 {
    stable_hash(&[kind.as_bytes(), id.as_bytes(), node.as_str().as_bytes()])
}

/// FNV-1a over `parts`, a zero byte between them, finished with splitmix64:
/// the same on every node and every build.
pub(crate) fn stable_hash(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, part) in parts.iter().enumerate() {
        let separator: &[u8] = if i == 0 { b"" } else { b"\0" };
        for &byte in separator.iter().chain(part.iter()) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash ^= hash >> 30;
    hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash ^= hash >> 27;
    hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(names: &[&str]) -> Vec<NodeName> {
        names.iter().map(|n| NodeName::new(n).unwrap()).collect()
    }

    #[test]
    fn the_owner_does_not_depend_on_the_order_nodes_are_listed() {
        let a = nodes(&["n1", "n2", "n3"]);
        let b = nodes(&["n3", "n1", "n2"]);
        for i in 0..200 {
            let id = format!("user-{i}");
            assert_eq!(owner("k", &id, &a), owner("k", &id, &b));
        }
    }

    #[test]
    fn only_the_ids_of_a_leaving_node_move_and_load_spreads() {
        let three = nodes(&["n1", "n2", "n3"]);
        let two = nodes(&["n1", "n3"]);
        let mut per_node = [0usize; 3];
        for i in 0..3000 {
            let id = format!("user-{i}");
            let before = owner("account", &id, &three).unwrap();
            let after = owner("account", &id, &two).unwrap();
            if before.as_str() != "n2" {
                assert_eq!(before, after, "{id} moved though its node stayed");
            }
            per_node[three.iter().position(|n| n == before).unwrap()] += 1;
        }
        for count in per_node {
            assert!((800..1200).contains(&count), "unbalanced: {per_node:?}");
        }
    }

    #[test]
    fn no_nodes_no_owner() {
        assert_eq!(owner("k", "id", &[]), None);
    }
}
