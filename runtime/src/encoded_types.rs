//! Every type PlexSpaces encodes with postcard into a journal, a checkpoint
//! or a message between nodes, with sample values, for the decoding fuzz
//! target (`fuzz/checks/postcard_types.rs`) and the tests that replay its
//! corpus. Decoding any of them from arbitrary bytes must fail cleanly or
//! give a value that encodes and decodes back to itself.
//!
//! Not a stable API: hidden from the docs, built only for tests and the
//! `fuzzing` feature, and the list grows with the runtime. A fuzz input
//! picks its type by a stable hash of the type's name ([`selector`]), not
//! by a position in this list, so adding a type leaves every committed
//! seed pointing at the type it was made for.

use plexspaces_net::wire::{
    ExitNotice, Headers, JournalOp, JournalOutcome, Member, ReplyOutcome, WireMessage,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::OnceLock;

pub use crate::codec::EncodedTypes;

/// Visits every encoded type, always in the same order.
pub fn visit_all(v: &mut impl EncodedTypes) {
    net_types(v);
    crate::durability::encoded_types(v);
    crate::tuplespace::encoded_types(v);
    crate::reminders::encoded_types(v);
    crate::groups::encoded_types(v);
    crate::registry::replication::encoded_types(v);
    crate::wake::encoded_types(v);
    crate::channels::encoded_types(v);
    crate::workflow::encoded_types(v);
    crate::distribution::encoded_types(v);
    crate::events::encoded_types(v);
    crate::virtual_actor::mobility::encoded_types(v);
    crate::capabilities::encoded_types(v);
}

/// A type's selector: the FNV-1a hash of its name. The first four bytes
/// of a fuzz input (little-endian) pick the type whose selector is the
/// smallest at or above them, wrapping around; an input that starts with
/// a type's own selector always picks that type.
pub fn selector(name: &str) -> u32 {
    name.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

/// The names [`visit_all`] visits, in its order.
pub fn names() -> Vec<&'static str> {
    struct Names(Vec<&'static str>);
    impl EncodedTypes for Names {
        fn visit<T: Serialize + DeserializeOwned>(
            &mut self,
            name: &'static str,
            _: fn() -> Vec<T>,
        ) {
            self.0.push(name);
        }
    }
    let mut names = Names(Vec::new());
    visit_all(&mut names);
    names.0
}

/// How many types [`visit_all`] visits.
pub fn count() -> usize {
    static COUNT: OnceLock<usize> = OnceLock::new();
    *COUNT.get_or_init(counted)
}

fn counted() -> usize {
    struct Count(usize);
    impl EncodedTypes for Count {
        fn visit<T: Serialize + DeserializeOwned>(&mut self, _: &'static str, _: fn() -> Vec<T>) {
            self.0 += 1;
        }
    }
    let mut count = Count(0);
    visit_all(&mut count);
    count.0
}

fn member() -> Member {
    Member {
        node: "n2".into(),
        addr: "10.0.0.2:7000".parse().expect("a literal socket address"),
        incarnation: 3,
    }
}

/// The wire protocol's messages (also fuzzed framed, by `wire_frame`).
fn net_types(v: &mut impl EncodedTypes) {
    v.visit("WireMessage", || {
        vec![
            WireMessage::Hello {
                node: "n1".into(),
                listen: "[::1]:7000".parse().expect("a literal socket address"),
                incarnation: 2,
                nonce: [7; 32],
            },
            WireMessage::Heartbeat {
                members: vec![member()],
            },
            WireMessage::Ask {
                to: "counter:a".into(),
                request: 9,
                headers: Headers::default(),
                payload: vec![1, 2, 3],
            },
            WireMessage::Tell {
                to: "account:bob".into(),
                headers: Headers {
                    sender: Some("teller@n1".into()),
                    tenant: Some("acme".into()),
                    principal: Some("user:ada".into()),
                    trace: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
                },
                payload: vec![5],
            },
            WireMessage::Exited {
                target: "worker".into(),
                reason: ExitNotice::Failed("boom".into()),
            },
            WireMessage::Leaving,
        ]
    });
    v.visit("JournalOp", || {
        vec![
            JournalOp::Append {
                stream: "space@n1".into(),
                epoch: 3,
                first_seq: 7,
                entries: vec![vec![1, 2], vec![]],
            },
            JournalOp::SaveCheckpoint {
                stream: "space@n1".into(),
                epoch: 3,
                seq: 1_000,
                state: vec![9; 40],
            },
        ]
    });
    v.visit("JournalOutcome", || {
        vec![
            JournalOutcome::Entries {
                entries: vec![(1, vec![1]), (2, vec![2, 2])],
                more: true,
            },
            JournalOutcome::Checkpoint(Some((1_000, vec![9; 40]))),
            JournalOutcome::Fenced("epoch 4 claimed the stream".into()),
        ]
    });
    v.visit("Member", || vec![member()]);
    v.visit("ReplyOutcome", || {
        vec![
            ReplyOutcome::Replied(vec![4]),
            ReplyOutcome::Unavailable("fenced".into()),
            ReplyOutcome::Rejected("rejected by fraud: over the limit".into()),
            ReplyOutcome::Unauthenticated("unauthenticated (authentication): expired".into()),
            ReplyOutcome::Forbidden("forbidden by rule rbac:default-deny (authorization)".into()),
        ]
    });
    v.visit("Headers", || {
        vec![
            Headers::default(),
            Headers {
                sender: Some("client@n1".into()),
                tenant: Some("acme".into()),
                principal: Some("Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln".into()),
                trace: None,
            },
        ]
    });
    v.visit("ExitNotice", || {
        vec![ExitNotice::Normal, ExitNotice::Failed("boom".into())]
    });
}
