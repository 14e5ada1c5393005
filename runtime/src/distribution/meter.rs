//! Frames and bytes on node links, fed into the node's metrics from the
//! running totals each frame reader and writer keeps.

use super::membership::MemberStatus;
use crate::observability::NodeMetrics;
use crate::observability::metrics::{DirectionLabel, ScrapeCollector};
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::ConstGauge;

/// One direction of one connection: adds what its reader or writer did
/// since the last look (the handles are looked up once per connection,
/// so a frame costs two atomic adds).
pub(crate) struct LinkMeter {
    frames: Counter,
    bytes: Counter,
    seen: (u64, u64),
}

impl LinkMeter {
    /// A meter for `direction` (`sent` or `received`).
    pub(crate) fn new(metrics: &NodeMetrics, direction: &'static str) -> Self {
        let label = DirectionLabel { direction };
        let remote = metrics.remote();
        LinkMeter {
            frames: remote.frames.get_or_create_owned(&label),
            bytes: remote.bytes.get_or_create_owned(&label),
            seen: (0, 0),
        }
    }

    /// The reader or writer has now moved `totals` (frames, bytes).
    pub(crate) fn update(&mut self, totals: (u64, u64)) {
        debug_assert!(
            totals.0 >= self.seen.0 && totals.1 >= self.seen.1,
            "frame totals only grow"
        );
        let frames = totals.0.saturating_sub(self.seen.0);
        let bytes = totals.1.saturating_sub(self.seen.1);
        if frames > 0 {
            self.frames.inc_by(frames);
        }
        if bytes > 0 {
            self.bytes.inc_by(bytes);
        }
        self.seen = totals;
    }
}

/// `plexspaces_cluster_members{status}`: the members this node knows, by
/// status, read from the membership table at each scrape.
#[derive(Debug)]
pub(crate) struct MembershipCollector(pub(crate) std::sync::Weak<super::Dist>);

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

impl ScrapeCollector for MembershipCollector {
    fn encode(&self, encoder: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(dist) = self.0.upgrade() else {
            return Ok(());
        };
        let members = dist.state().membership.members();
        let mut family = encoder.encode_descriptor(
            "cluster_members",
            "Members this node knows (itself included), by status",
            None,
            MetricType::Gauge,
        )?;
        for (status, name) in [
            (MemberStatus::Joining, "joining"),
            (MemberStatus::Up, "up"),
            (MemberStatus::Suspect, "suspect"),
            (MemberStatus::Down, "down"),
        ] {
            let count = members.iter().filter(|m| m.status == status).count();
            let label = StatusLabel { status: name };
            ConstGauge::new(count as i64).encode(family.encode_family(&label)?)?;
        }
        Ok(())
    }
}
