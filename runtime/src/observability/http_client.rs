//! One HTTP/1.1 request over the node's `Net` seam, by hyper's client
//! (the Pushgateway pusher and the OTLP exporter send through it).

use super::net_io::NetIo;
use crate::env::Env;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use plexspaces_net::Net;
use std::net::SocketAddr;

/// The largest response body read (a collector's answer is small).
pub const RESPONSE_BYTES_MAX: usize = 64 * 1024;

/// Sends `request` to `addr` on a fresh connection and reads the whole
/// response (its body up to [`RESPONSE_BYTES_MAX`]).
pub async fn send_to(
    env: &Env,
    addr: SocketAddr,
    request: hyper::Request<Bytes>,
) -> Result<hyper::Response<Bytes>, String> {
    let connection = env.net().connect(addr).await.map_err(|e| e.to_string())?;
    let (mut sender, driver) = hyper::client::conn::http1::handshake(NetIo::new(connection))
        .await
        .map_err(|e| e.to_string())?;
    // The connection's driver runs beside the request, as a task of the
    // node; it ends with the connection.
    let driving = env.spawn(async move {
        let _ = driver.await;
    });
    let (parts, body) = request.into_parts();
    let answered = async {
        let response = sender
            .send_request(hyper::Request::from_parts(parts, Full::new(body)))
            .await
            .map_err(|e| e.to_string())?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, RESPONSE_BYTES_MAX)
            .collect()
            .await
            .map_err(|e| format!("reading the response: {e}"))?
            .to_bytes();
        Ok(hyper::Response::from_parts(parts, body))
    }
    .await;
    driving.abort();
    answered
}

/// [`send_to`] the address in `request`'s URI (`http://IP:PORT/...`).
pub async fn send(
    env: &Env,
    mut request: hyper::Request<Bytes>,
) -> Result<hyper::Response<Bytes>, String> {
    let authority = request
        .uri()
        .authority()
        .ok_or_else(|| format!("{}: no host", request.uri()))?
        .clone();
    let addr: SocketAddr = authority.as_str().parse().map_err(|_| {
        format!(
            "{}: the host must be IP:PORT (the Net seam resolves no names)",
            request.uri()
        )
    })?;
    // Origin form on the wire, the authority in the Host header.
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    *request.uri_mut() = path.parse().map_err(|e| format!("{path}: {e}"))?;
    if let Ok(host) = hyper::header::HeaderValue::from_str(authority.as_str()) {
        request.headers_mut().insert(hyper::header::HOST, host);
    }
    send_to(env, addr, request).await
}
