//! The operator endpoint: HTTP/1.1 on a node's `Net` seam.
//!
//! - `GET /metrics`: the node's registry, Prometheus text format 0.0.4
//!   (`?format=json` for the same samples as JSON).
//! - `GET /health`: liveness, 200 while the node answers at all.
//! - `GET /ready`: readiness, 200 when every check passes, else 503; the
//!   body has each check's outcome as JSON.
//!
//! hyper serves the bytes; the connection is the seam's, so the simulator
//! probes the same endpoint over its network. Each connection has one
//! request and a deadline ([`REQUEST_DEADLINE`]), and at most
//! [`CONNECTIONS_MAX`] are served at once (more are closed unread), so a
//! slow or hostile client cannot pin the node's tasks.

use super::accept::{AcceptBounds, accept_loop};
use super::health::Readiness;
use super::net_io::NetIo;
use crate::actor::ActorSystem;
use crate::actor::WeakSystem;
use bytes::Bytes;
use futures::channel::oneshot;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use plexspaces_net::{Listener, Net, NetError};
use std::net::SocketAddr;
use std::time::Duration;

/// How long one connection may take, request read to response written.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(10);

/// The most connections served at once.
pub const CONNECTIONS_MAX: usize = 32;

/// A running operator endpoint; dropping it (or [`OperatorEndpoint::stop`])
/// stops accepting connections.
pub struct OperatorEndpoint {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl std::fmt::Debug for OperatorEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorEndpoint")
            .field("addr", &self.addr)
            .finish()
    }
}

impl OperatorEndpoint {
    /// Listens on `addr` (port 0 picks one) through the node's network and
    /// serves `/metrics`, `/health` and `/ready` for `system`.
    pub async fn serve(system: &ActorSystem, addr: SocketAddr) -> Result<Self, NetError> {
        let env = system.env().clone();
        let listener = env.net().listen(addr).await?;
        let bound = listener.local_addr();
        let node = system.downgrade();
        let bounds = AcceptBounds {
            what: "operator endpoint",
            connections_max: CONNECTIONS_MAX,
            deadline: REQUEST_DEADLINE,
        };
        let stop = accept_loop(&env, listener, bounds, move |connection| {
            Box::pin(serve_connection(node.clone(), NetIo::new(connection)))
        });
        Ok(OperatorEndpoint {
            addr: bound,
            stop: Some(stop),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections (those being served finish).
    pub fn stop(&mut self) {
        drop(self.stop.take());
    }
}

async fn serve_connection(node: WeakSystem, io: NetIo) {
    let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
        let node = node.clone();
        async move { Ok::<_, std::convert::Infallible>(respond(node, request).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    // One request per connection, no hyper timer (the deadline is ours,
    // on the node's clock).
    builder.keep_alive(false).header_read_timeout(None);
    if let Err(e) = builder.serve_connection(io, service).await {
        tracing::debug!("operator endpoint: connection ended: {e}");
    }
}

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = hyper::header::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

const JSON: &str = "application/json";

async fn respond(
    node: WeakSystem,
    request: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let Some(system) = node.upgrade() else {
        return reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "the node has stopped\n".into(),
        );
    };
    if request.method() != Method::GET {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "only GET\n".into(),
        );
    }
    let json_asked = request
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "format=json"));
    match request.uri().path() {
        "/metrics" if json_asked => reply(
            StatusCode::OK,
            JSON,
            super::export::render_json(system.env().metrics()),
        ),
        "/metrics" => reply(
            StatusCode::OK,
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            system.env().metrics().render_prometheus(),
        ),
        "/health" => {
            let body = serde_json::json!({ "alive": true, "node": system.node().to_string() });
            reply(StatusCode::OK, JSON, body.to_string())
        }
        "/ready" => {
            let readiness: Readiness = system.health().readiness(&system).await;
            let status = if readiness.ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            let body = serde_json::to_string(&readiness)
                .unwrap_or_else(|e| format!("{{\"ready\":false,\"error\":\"{e}\"}}"));
            reply(status, JSON, body)
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "try /metrics, /health or /ready\n".into(),
        ),
    }
}
