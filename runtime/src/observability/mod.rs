//! What an operator sees of a node: its metrics registry ([`NodeMetrics`],
//! every [`Env`](crate::Env) carries one) and the operator endpoint that
//! serves `/metrics`, `/health` and `/ready` over the `Net` seam
//! ([`OperatorEndpoint`]).

pub(crate) mod accept;
mod endpoint;
mod export;
pub mod health;
mod http_client;
pub mod logging;
pub mod metrics;
pub(crate) mod net_io;
pub mod push;
pub mod sampling;
pub mod service_split;
pub mod trace_scope;
pub mod traces;

pub use endpoint::{
    ADMIN_BODY_BYTES_MAX, AdminRequest, AdminResponse, AdminRoutes, CONNECTIONS_MAX,
    OperatorEndpoint, REQUEST_DEADLINE,
};
pub use export::render_json;
pub use health::{CheckOutcome, Health, HealthError, Readiness};
pub use metrics::{KindMetrics, MetricError, NodeMetrics};
pub use push::PushConfig;
pub use traces::{NodeTraces, Sampling, TraceConfig, TraceExporter};
