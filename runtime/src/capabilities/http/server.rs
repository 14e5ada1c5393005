//! A small HTTP/1.1 server over the node's `Net` seam (HTTPS with a
//! [`ServiceTlsServer`]): each request handed whole to a handler. A
//! webhook receiver in production; in tests and the simulator, the fake
//! remote service a client is tried against (latency and errors are the
//! handler's to add, on the node's clock; partitions are the network's).

use super::message::HttpResponse;
use crate::env::Env;
use crate::observability::accept::{AcceptBounds, accept_loop};
use crate::observability::net_io::NetIo;
use bytes::Bytes;
use futures::channel::oneshot;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full, Limited};
use plexspaces_net::tls::{ServiceTlsServer, TlsStreams};
use plexspaces_net::{Connection, DynReader, DynWriter, Listener, Net, NetError};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Largest request body the server reads (a larger one is answered 413).
/// With [`CONNECTIONS_MAX`] it bounds what hostile clients can make the
/// server hold: 256 MiB of bodies at most.
pub const REQUEST_BYTES_MAX: usize = 1024 * 1024;
/// Connections served at once; more are closed unread.
pub const CONNECTIONS_MAX: usize = 256;
/// Longest a connection is served (requests on it included).
const CONNECTION_DEADLINE: Duration = Duration::from_secs(60);

/// A request as the handler sees it.
#[derive(Clone, Debug)]
pub struct ServedRequest {
    /// `GET`, `POST`, ...
    pub method: hyper::Method,
    /// Path and query.
    pub path: String,
    /// Headers (names lowercase).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
}

impl ServedRequest {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What answers a request.
pub type HttpHandler = Arc<dyn Fn(ServedRequest) -> BoxFuture<'static, HttpResponse> + Send + Sync>;

/// A running server; dropping it (or [`HttpServer::stop`]) stops
/// accepting connections.
pub struct HttpServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl std::fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HttpServer({})", self.addr)
    }
}

impl HttpServer {
    /// Listens on `addr` (port 0 picks one) through `env`'s network and
    /// answers each request with `handler`; over TLS if `tls` is given.
    pub async fn serve(
        env: &Env,
        addr: SocketAddr,
        tls: Option<ServiceTlsServer>,
        handler: HttpHandler,
    ) -> Result<Self, NetError> {
        let listener = env.net().listen(addr).await?;
        let bound = listener.local_addr();
        let bounds = AcceptBounds {
            what: "http server",
            connections_max: CONNECTIONS_MAX,
            deadline: CONNECTION_DEADLINE,
        };
        let stop = accept_loop(env, listener, bounds, move |connection| {
            let (handler, tls) = (handler.clone(), tls.clone());
            Box::pin(async move {
                let io = match tls {
                    None => NetIo::new(connection),
                    Some(tls) => {
                        let (reader, writer) = connection.split();
                        match tls.accept(reader, writer).await {
                            Ok(TlsStreams { reader, writer, .. }) => {
                                NetIo::from_halves(DynReader::new(reader), DynWriter::new(writer))
                            }
                            Err(e) => {
                                tracing::debug!("http server: TLS refused: {e}");
                                return;
                            }
                        }
                    }
                };
                serve_connection(io, handler).await;
            })
        });
        Ok(HttpServer {
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

async fn serve_connection(io: NetIo, handler: HttpHandler) {
    let service =
        hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let handler = handler.clone();
            async move {
                let (parts, body) = request.into_parts();
                let body = match Limited::new(body, REQUEST_BYTES_MAX).collect().await {
                    Ok(body) => body.to_bytes(),
                    Err(_) => return Ok(wire(HttpResponse::new(413, "request too large"))),
                };
                let served = ServedRequest {
                    method: parts.method,
                    path: parts
                        .uri
                        .path_and_query()
                        .map_or("/", |p| p.as_str())
                        .to_string(),
                    headers: parts
                        .headers
                        .iter()
                        .map(|(n, v)| {
                            (
                                n.as_str().to_string(),
                                String::from_utf8_lossy(v.as_bytes()).into_owned(),
                            )
                        })
                        .collect(),
                    body,
                };
                Ok::<_, std::convert::Infallible>(wire(handler(served).await))
            }
        });
    let mut builder = hyper::server::conn::http1::Builder::new();
    // No hyper timer: the deadline is ours, on the node's clock.
    builder.header_read_timeout(None);
    if let Err(e) = builder.serve_connection(io, service).await {
        tracing::debug!("http server: connection ended: {e}");
    }
}

fn wire(response: HttpResponse) -> hyper::Response<Full<Bytes>> {
    let mut wire = hyper::Response::new(Full::new(Bytes::from(response.body)));
    *wire.status_mut() = hyper::StatusCode::from_u16(response.status)
        .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in response.headers {
        if let (Ok(name), Ok(value)) = (
            hyper::header::HeaderName::from_bytes(name.as_bytes()),
            hyper::header::HeaderValue::from_str(&value),
        ) {
            wire.headers_mut().append(name, value);
        }
    }
    wire
}
