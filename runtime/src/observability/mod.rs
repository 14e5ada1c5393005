//! What an operator sees of a node: its metrics registry ([`NodeMetrics`],
//! every [`Env`](crate::Env) carries one) and the operator endpoint that
//! serves `/metrics`, `/health` and `/ready` over the `Net` seam
//! ([`OperatorEndpoint`]).

mod endpoint;
mod export;
pub mod health;
pub mod metrics;
mod net_io;
pub mod push;

pub use endpoint::{CONNECTIONS_MAX, OperatorEndpoint, REQUEST_DEADLINE};
pub use export::render_json;
pub use health::{CheckOutcome, Health, HealthError, Readiness};
pub use metrics::{KindMetrics, MetricError, NodeMetrics};
pub use push::PushConfig;
