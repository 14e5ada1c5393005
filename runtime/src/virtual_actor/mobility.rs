//! Mobility (the design's MobilityFacet): moving a virtual actor to a
//! named node and keeping it there until released.
//!
//! A migration is a placement override, written to the kind's placement
//! stream on the kind's journal (the shared journal in a cluster) before
//! it is acknowledged. Every host of the kind reads the stream (every
//! `refresh`, and at once after its own writes) and applies the overrides
//! in the stream's order, so two nodes that have read the same prefix and
//! see the same members agree on every owner; the placement version (the
//! last entry applied) is part of a host's view. An override names the
//! owner while its node is eligible (Up or Suspect); if that node goes
//! down the id falls back to rendezvous placement (it stays reachable) and
//! returns when the node is back, until released.
//!
//! The old owner, on reading the override, deactivates the activation:
//! the stop goes before its queued messages, whose callers retry at the
//! new owner (nothing queued was applied, so the retry is safe); its
//! [`MobilityFacet`] runs the pre-departure hook as the activation ends.
//! The new owner activates on the next call, recovering from the shared
//! journal (fencing the old activation out of the stream, as any
//! hand-off does), and its facet runs the post-arrival hook once per
//! migration.

use super::host::Host;
use crate::actor::ActorId;
use crate::actor::facet::{Facet, Hooks};
use crate::durability::DurableActor;
use crate::env::NodeName;
use plexspaces_storage::journal::{Journal, JournalError};
use plexspaces_storage::sync::LockExt;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A hook run with the virtual actor's id and a node (where it goes, or
/// where it arrived).
pub type MobilityHook = Arc<dyn Fn(&str, &NodeName) + Send + Sync>;

/// Mobility for a virtual actor kind.
#[derive(Clone)]
#[non_exhaustive]
pub struct MobilityConfig {
    /// How often each host reads the placement stream (default 500 ms):
    /// how long other nodes may route by an older placement.
    pub refresh: Duration,
    /// Run as a migrating activation ends on the node it leaves.
    pub on_departure: Option<MobilityHook>,
    /// Run once per migration when the id first activates on its new node.
    pub on_arrival: Option<MobilityHook>,
}

impl Default for MobilityConfig {
    fn default() -> Self {
        MobilityConfig {
            refresh: Duration::from_millis(500),
            on_departure: None,
            on_arrival: None,
        }
    }
}

impl MobilityConfig {
    /// Reads the placement stream every `refresh`.
    pub fn refresh_every(mut self, refresh: Duration) -> Self {
        self.refresh = refresh;
        self
    }

    /// Runs `hook(id, destination)` as a migrating activation ends.
    pub fn on_departure(mut self, hook: impl Fn(&str, &NodeName) + Send + Sync + 'static) -> Self {
        self.on_departure = Some(Arc::new(hook));
        self
    }

    /// Runs `hook(id, this_node)` once per migration, at the first
    /// activation on the new node.
    pub fn on_arrival(mut self, hook: impl Fn(&str, &NodeName) + Send + Sync + 'static) -> Self {
        self.on_arrival = Some(Arc::new(hook));
        self
    }
}

impl fmt::Debug for MobilityConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MobilityConfig")
            .field("refresh", &self.refresh)
            .field("on_departure", &self.on_departure.is_some())
            .field("on_arrival", &self.on_arrival.is_some())
            .finish()
    }
}

/// Why a migration (or release) was refused. A refused migration changed
/// nothing: the actor stays where it was.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MigrationError {
    /// The kind was registered without [`MobilityConfig`].
    NotEnabled(String),
    /// The target node is not an eligible member (down, unknown, leaving).
    NodeUnavailable(NodeName),
    /// The id is not a valid virtual actor id.
    InvalidId(String),
    /// The override could not be made durable (the journal failed or is
    /// unreachable); it may or may not be recorded, as with any write
    /// whose acknowledgement was lost: ask again, or release.
    Journal(String),
    /// The kind holds [`OVERRIDES_MAX`] overrides already.
    TooMany,
}

impl fmt::Display for MigrationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MigrationError::NotEnabled(kind) => write!(f, "kind {kind:?} has no mobility"),
            MigrationError::NodeUnavailable(node) => {
                write!(f, "node {node} is not an eligible member")
            }
            MigrationError::InvalidId(why) => write!(f, "invalid id: {why}"),
            MigrationError::Journal(why) => write!(f, "placement not recorded: {why}"),
            MigrationError::TooMany => write!(f, "at most {OVERRIDES_MAX} overrides per kind"),
        }
    }
}

impl std::error::Error for MigrationError {}

/// The most overrides one kind keeps.
pub const OVERRIDES_MAX: usize = 100_000;

/// One entry of the placement stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PlacementEntry {
    pub(crate) id: String,
    /// The node it is pinned to; `None` releases it.
    pub(crate) node: Option<String>,
}

/// A checkpoint of the placement stream: every override, as of a seq.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PlacementCheckpoint {
    pub(crate) overrides: Vec<(String, String, u64)>,
}

/// Entries between checkpoints of the placement stream.
const CHECKPOINT_EVERY: u64 = 64;
/// Attempts of one write when other nodes' claims fence it.
const WRITE_ATTEMPTS: u32 = 5;

/// What one host knows of its kind's placement.
#[derive(Default)]
pub(crate) struct Placement {
    state: Mutex<PlacementState>,
}

#[derive(Default)]
struct PlacementState {
    /// id → (node, the seq of the entry that pinned it).
    overrides: BTreeMap<String, (NodeName, u64)>,
    /// The last entry applied: the placement version.
    applied: u64,
    /// Migrations whose arrival hook ran here: id → entry seq.
    arrived: BTreeMap<String, u64>,
}

impl Placement {
    /// The node `id` is pinned to, if any.
    pub(crate) fn pinned(&self, id: &str) -> Option<(NodeName, u64)> {
        self.state.locked().overrides.get(id).cloned()
    }

    /// The placement version: the last stream entry applied.
    pub(crate) fn version(&self) -> u64 {
        self.state.locked().applied
    }

    /// How many ids are pinned.
    pub(crate) fn len(&self) -> usize {
        self.state.locked().overrides.len()
    }

    fn apply(&self, seq: u64, entry: PlacementEntry) {
        let mut state = self.state.locked();
        if seq <= state.applied {
            return;
        }
        debug_assert_eq!(seq, state.applied + 1, "the stream has no gaps");
        state.applied = seq;
        match entry.node.and_then(|n| NodeName::new(&n).ok()) {
            Some(node)
                if state.overrides.len() < OVERRIDES_MAX
                    || state.overrides.contains_key(&entry.id) =>
            {
                state.overrides.insert(entry.id, (node, seq));
            }
            Some(_) => {}
            None => {
                state.overrides.remove(&entry.id);
                state.arrived.remove(&entry.id);
            }
        }
    }

    fn load(&self, seq: u64, checkpoint: PlacementCheckpoint) {
        let mut state = self.state.locked();
        if seq <= state.applied {
            return;
        }
        state.applied = seq;
        state.overrides = checkpoint
            .overrides
            .into_iter()
            .filter_map(|(id, node, at)| NodeName::new(&node).ok().map(|n| (id, (n, at))))
            .take(OVERRIDES_MAX)
            .collect();
    }

    fn checkpoint(&self) -> (u64, PlacementCheckpoint) {
        let state = self.state.locked();
        let overrides = state
            .overrides
            .iter()
            .map(|(id, (node, at))| (id.clone(), node.as_str().to_string(), *at))
            .collect();
        (state.applied, PlacementCheckpoint { overrides })
    }

    /// Whether the arrival hook should run for `id` pinned by entry `seq`
    /// (true once per entry).
    fn first_arrival(&self, id: &str, seq: u64) -> bool {
        let mut state = self.state.locked();
        if state.arrived.get(id) == Some(&seq) {
            return false;
        }
        if state.arrived.len() >= OVERRIDES_MAX {
            state.arrived.pop_first();
        }
        state.arrived.insert(id.to_string(), seq);
        true
    }
}

/// The kind's placement stream (a name no actor's stream can have: actor
/// names hold no `@`, and node names do not start with one).
pub(crate) fn stream(kind: &str) -> String {
    crate::durability::stream_for(&format!("{kind}@@placement"))
}

impl<A: DurableActor> Host<A> {
    /// Reads the placement stream from where this host left it; hands off
    /// what moved. `Err` if the journal could not be read.
    pub(crate) async fn refresh_placement(&self) -> Result<(), JournalError> {
        let stream = stream(&self.config.kind);
        let from = self.placement.version() + 1;
        let entries = match self.config.journal.replay_from(&stream, from).await {
            Ok(entries) => entries,
            Err(JournalError::Truncated { .. }) => {
                if let Some(checkpoint) = self.config.journal.latest_checkpoint(&stream).await? {
                    match crate::codec::decode::<PlacementCheckpoint>(
                        &checkpoint.state,
                        "placement checkpoint",
                    ) {
                        Ok(saved) => self.placement.load(checkpoint.seq, saved),
                        Err(e) => tracing::warn!("placement checkpoint unreadable: {e}"),
                    }
                }
                let from = self.placement.version() + 1;
                self.config.journal.replay_from(&stream, from).await?
            }
            Err(e) => return Err(e),
        };
        let changed = !entries.is_empty();
        for entry in entries {
            match crate::codec::decode::<PlacementEntry>(&entry.data, "placement entry") {
                Ok(decoded) => self.placement.apply(entry.seq, decoded),
                // Skipped, but counted as applied: every node skips it alike.
                Err(e) => {
                    tracing::warn!("placement entry {} unreadable: {e}", entry.seq);
                    self.placement.apply(
                        entry.seq,
                        PlacementEntry {
                            id: String::new(),
                            node: None,
                        },
                    );
                }
            }
        }
        if changed {
            self.hand_off();
        }
        Ok(())
    }

    /// Records `entry` durably, then applies the stream up to it here.
    pub(crate) async fn write_placement(
        &self,
        entry: &PlacementEntry,
    ) -> Result<(), MigrationError> {
        let stream = stream(&self.config.kind);
        let journal = &self.config.journal;
        let bytes = crate::codec::encode(entry, "placement entry")
            .map_err(|e| MigrationError::Journal(e.to_string()))?;
        let mut last_error = String::new();
        for _ in 0..WRITE_ATTEMPTS {
            // Another node's claim may fence this one between the claim and
            // the append: then claim again.
            let written = async {
                journal.claim(&stream).await?;
                journal.append(&stream, &bytes).await
            }
            .await;
            match written {
                Ok(seq) => {
                    let _ = self.refresh_placement().await;
                    if seq % CHECKPOINT_EVERY == 0 {
                        self.checkpoint_placement(&stream).await;
                    }
                    return Ok(());
                }
                Err(e @ JournalError::Fenced { .. }) => last_error = e.to_string(),
                Err(e) => return Err(MigrationError::Journal(e.to_string())),
            }
        }
        Err(MigrationError::Journal(last_error))
    }

    async fn checkpoint_placement(&self, stream: &str) {
        let (seq, checkpoint) = self.placement.checkpoint();
        match crate::codec::encode(&checkpoint, "placement checkpoint") {
            Ok(state) => {
                if let Err(e) = self
                    .config
                    .journal
                    .save_checkpoint(stream, seq, &state)
                    .await
                {
                    tracing::debug!("placement checkpoint not saved: {e}");
                }
            }
            Err(e) => tracing::warn!("placement checkpoint not encodable: {e}"),
        }
    }
}

/// Attached by the host to every activation of a kind with mobility: runs
/// the departure hook as a migrating activation ends and the arrival hook
/// at the first activation after a migration.
pub struct MobilityFacet {
    id: String,
    node: NodeName,
    placement: Arc<Placement>,
    config: MobilityConfig,
}

impl MobilityFacet {
    pub(crate) fn new(
        id: &str,
        node: NodeName,
        placement: Arc<Placement>,
        config: MobilityConfig,
    ) -> Self {
        MobilityFacet {
            id: id.to_string(),
            node,
            placement,
            config,
        }
    }

    /// The node this id is pinned to, if any (as this node knows).
    pub fn pinned_to(&self) -> Option<NodeName> {
        self.placement.pinned(&self.id).map(|(node, _)| node)
    }
}

impl Facet for MobilityFacet {
    fn name(&self) -> &str {
        "mobility"
    }

    fn priority(&self) -> i32 {
        // Persistence band: placement, closest to the handler.
        50
    }

    fn hooks(&self) -> Hooks {
        // Sees no message: the actor asks it to move.
        Hooks::NONE
    }

    fn on_attach(&mut self, _actor: &ActorId) {
        if let Some((node, seq)) = self.placement.pinned(&self.id)
            && node == self.node
            && self.placement.first_arrival(&self.id, seq)
            && let Some(hook) = &self.config.on_arrival
        {
            hook(&self.id, &self.node);
        }
    }

    fn on_detach(&mut self, _actor: &ActorId) {
        if let Some((node, _)) = self.placement.pinned(&self.id)
            && node != self.node
            && let Some(hook) = &self.config.on_departure
        {
            hook(&self.id, &node);
        }
    }
}

/// The placement stream's types, for [`crate::encoded_types`].
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn encoded_types(v: &mut impl crate::codec::EncodedTypes) {
    v.visit("PlacementEntry", || {
        vec![
            PlacementEntry {
                id: "alice".into(),
                node: Some("n2".into()),
            },
            PlacementEntry {
                id: "bob".into(),
                node: None,
            },
        ]
    });
    v.visit("PlacementCheckpoint", || {
        vec![PlacementCheckpoint {
            overrides: vec![("alice".into(), "n2".into(), 7)],
        }]
    });
}
