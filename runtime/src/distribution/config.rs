//! How a node joins and watches its cluster, and which actors can cross
//! the network.

use super::*;

/// An actor whose messages and replies can cross the network (postcard
/// encoding). Implemented for every actor whose `Msg` and `Reply` are
/// serde types; both nodes must agree on the types.
pub trait RemoteActor:
    Actor<Msg: Serialize + DeserializeOwned, Reply: Serialize + DeserializeOwned>
{
}

impl<A> RemoteActor for A
where
    A: Actor,
    A::Msg: Serialize + DeserializeOwned,
    A::Reply: Serialize + DeserializeOwned,
{
}

/// How a node joins and watches its cluster.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DistributionConfig {
    /// Where to accept connections (port 0 picks a free one).
    pub listen: SocketAddr,
    /// The address peers should dial, if not the bound one (behind NAT,
    /// or when listening on 0.0.0.0).
    pub advertise: Option<SocketAddr>,
    /// Nodes to dial at start; the rest is learned from their gossip.
    pub seeds: Vec<SocketAddr>,
    /// The secret every node of the cluster holds.
    pub secret: ClusterSecret,
    /// How often each peer is sent a heartbeat (default 200 ms).
    pub heartbeat_interval: Duration,
    /// Silence after which a peer is Suspect (default 1 s).
    pub suspect_after: Duration,
    /// Silence after which a peer is Down and its remote monitors fire
    /// (default 3 s).
    pub down_after: Duration,
    /// The longest a handshake may take (default 2 s).
    pub handshake_timeout: Duration,
    /// Bounds on connections in their handshake, in total and per source
    /// address (default 256 and 32): one more is closed unread, so
    /// strangers cannot make the node hold connections without limit.
    pub admission: AdmissionLimits,
    /// First delay before re-dialing a peer (default 50 ms); doubles up to
    /// `reconnect_max`, with ±20 % jitter.
    pub reconnect_min: Duration,
    /// Longest delay between dials (default 1 s).
    pub reconnect_max: Duration,
    /// Largest frame body sent or accepted (default 8 MiB).
    pub max_frame_len: u32,
    /// Frames queued per peer before senders wait (default 4096).
    pub link_queue: usize,
    /// Mailbox capacity of a remote ref's proxy (default 1024).
    pub proxy_mailbox: usize,
    /// TLS on every link (default none: the cluster-secret handshake over
    /// plaintext, for development). With TLS, every connection is TLS 1.3
    /// with both certificates checked against the CA bundle, the secret
    /// handshake runs inside it, and a peer's certificate must name the
    /// node it says it is; a plaintext peer is refused.
    pub tls: Option<Arc<NodeTls>>,
}

impl DistributionConfig {
    /// The defaults, listening on `listen`, with `secret`.
    pub fn new(listen: SocketAddr, secret: ClusterSecret) -> Self {
        DistributionConfig {
            listen,
            advertise: None,
            seeds: Vec::new(),
            secret,
            heartbeat_interval: Duration::from_millis(200),
            suspect_after: Duration::from_secs(1),
            down_after: Duration::from_secs(3),
            handshake_timeout: Duration::from_secs(2),
            admission: AdmissionLimits::default(),
            reconnect_min: Duration::from_millis(50),
            reconnect_max: Duration::from_secs(1),
            max_frame_len: MAX_FRAME_LEN_DEFAULT,
            link_queue: 4096,
            proxy_mailbox: 1024,
            tls: None,
        }
    }

    /// Runs every link over TLS with `tls`.
    pub fn with_tls(mut self, tls: Arc<NodeTls>) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Adds seed nodes to dial at start.
    pub fn with_seeds(mut self, seeds: impl IntoIterator<Item = SocketAddr>) -> Self {
        self.seeds.extend(seeds);
        self
    }

    pub(super) fn validate(&self) -> Result<(), DistributionError> {
        let bad = |why: &str| Err(DistributionError::InvalidConfig(why.into()));
        if self.heartbeat_interval.is_zero() {
            return bad("heartbeat_interval must be positive");
        }
        if self.suspect_after < self.heartbeat_interval || self.down_after < self.suspect_after {
            return bad("need heartbeat_interval <= suspect_after <= down_after");
        }
        if self.reconnect_min.is_zero() || self.reconnect_max < self.reconnect_min {
            return bad("need 0 < reconnect_min <= reconnect_max");
        }
        if self.admission.handshakes_max == 0 || self.admission.handshakes_per_source_max == 0 {
            return bad("admission bounds must admit at least one handshake");
        }
        if self.link_queue == 0 || self.proxy_mailbox == 0 || self.max_frame_len < 1024 {
            return bad("queues need room and frames at least 1 KiB");
        }
        Ok(())
    }
}
