//! The operator endpoint: HTTP/1.1 on a node's `Net` seam.
//!
//! - `GET /metrics`: the node's registry, Prometheus text format 0.0.4
//!   (`?format=json` for the same samples as JSON).
//! - `GET /health`: liveness, 200 while the node answers at all.
//! - `GET /ready`: readiness, 200 when every check passes, else 503; the
//!   body has each check's outcome as JSON.
//! - anything else goes to the [`AdminRoutes`] the endpoint was served
//!   with, if any ([`OperatorEndpoint::serve_with`]: the node host's
//!   operator API), else 404. Their request bodies are at most
//!   [`ADMIN_BODY_BYTES_MAX`].
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
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, Response, StatusCode};
use plexspaces_net::{Listener, Net, NetError};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How long one connection may take, request read to response written.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(10);

/// The most connections served at once.
pub const CONNECTIONS_MAX: usize = 32;

/// The largest request body an [`AdminRoutes`] route is handed.
pub const ADMIN_BODY_BYTES_MAX: usize = 64 * 1024;

/// One request for an [`AdminRoutes`] route.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct AdminRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query's `name=value` pairs, percent-decoded, in order.
    pub query: Vec<(String, String)>,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The body (at most [`ADMIN_BODY_BYTES_MAX`]).
    pub body: Bytes,
}

impl AdminRequest {
    /// The first value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An answer of an [`AdminRoutes`] route: a status and a JSON body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminResponse {
    /// The HTTP status.
    pub status: u16,
    /// The JSON body.
    pub body: String,
}

/// Routes an application adds to its operator endpoint (the node host's
/// operator API). Each request the built-in routes do not answer is
/// offered here; `None` is a 404. Authentication is the routes' own.
pub trait AdminRoutes: Send + Sync + 'static {
    /// Answers `request`, or `None` if no route matches its path.
    fn respond(&self, request: AdminRequest) -> BoxFuture<'_, Option<AdminResponse>>;
}

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
        Self::serve_with(system, addr, None).await
    }

    /// [`OperatorEndpoint::serve`], with `routes` answering the paths the
    /// built-in ones do not.
    pub async fn serve_with(
        system: &ActorSystem,
        addr: SocketAddr,
        routes: Option<Arc<dyn AdminRoutes>>,
    ) -> Result<Self, NetError> {
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
            Box::pin(serve_connection(
                node.clone(),
                routes.clone(),
                NetIo::new(connection),
            ))
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

async fn serve_connection(node: WeakSystem, routes: Option<Arc<dyn AdminRoutes>>, io: NetIo) {
    let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
        let (node, routes) = (node.clone(), routes.clone());
        async move { Ok::<_, std::convert::Infallible>(respond(node, routes, request).await) }
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
    routes: Option<Arc<dyn AdminRoutes>>,
    request: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let Some(system) = node.upgrade() else {
        return reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "the node has stopped\n".into(),
        );
    };
    let builtin = matches!(request.uri().path(), "/metrics" | "/health" | "/ready");
    if let Some(routes) = routes.filter(|_| !builtin) {
        drop(system); // the routes hold what they need
        return respond_admin(&*routes, request).await;
    }
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

async fn respond_admin(
    routes: &dyn AdminRoutes,
    request: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, ADMIN_BODY_BYTES_MAX).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            return reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                JSON,
                serde_json::json!({ "error": format!("request body refused: {e}") }).to_string(),
            );
        }
    };
    let query = parts
        .uri
        .query()
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .map(|(n, v)| (n.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    let authorization = parts
        .headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let admin = AdminRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query,
        authorization,
        body,
    };
    match routes.respond(admin).await {
        Some(answer) => reply(
            StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            JSON,
            answer.body,
        ),
        None => reply(
            StatusCode::NOT_FOUND,
            JSON,
            serde_json::json!({ "error": "no such route" }).to_string(),
        ),
    }
}
