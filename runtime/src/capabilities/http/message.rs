//! Requests, responses and errors: plain data, so a durable actor's call
//! journals its outcome.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// A request to the client's service: a path relative to its base URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRequest {
    /// `GET`, `POST`, ...
    pub method: hyper::Method,
    /// The path and query after the base URL (`/charges?limit=5`).
    pub path: String,
    /// Headers beyond those the client sets (Host, Content-Length,
    /// the idempotency key).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
    /// Sent in the client's idempotency header. Makes a non-idempotent
    /// request retryable. A durable call derives one if none is given.
    pub idempotency_key: Option<String>,
}

impl HttpRequest {
    /// A request with `method` to `path`, no headers, no body.
    pub fn new(method: hyper::Method, path: impl Into<String>) -> Self {
        HttpRequest {
            method,
            path: path.into(),
            headers: Vec::new(),
            body: Bytes::new(),
            idempotency_key: None,
        }
    }

    /// `GET path`.
    pub fn get(path: impl Into<String>) -> Self {
        Self::new(hyper::Method::GET, path)
    }

    /// `POST path` with `body`.
    pub fn post(path: impl Into<String>, body: impl Into<Bytes>) -> Self {
        Self::new(hyper::Method::POST, path).body(body)
    }

    /// `PUT path` with `body`.
    pub fn put(path: impl Into<String>, body: impl Into<Bytes>) -> Self {
        Self::new(hyper::Method::PUT, path).body(body)
    }

    /// `DELETE path`.
    pub fn delete(path: impl Into<String>) -> Self {
        Self::new(hyper::Method::DELETE, path)
    }

    /// With header `name: value` added.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// With `body`.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// With idempotency key `key`.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Whether repeating it is harmless by HTTP's definition (RFC 9110
    /// §9.2.2), or because it carries an idempotency key.
    pub fn retry_safe(&self) -> bool {
        use hyper::Method;
        self.idempotency_key.is_some()
            || matches!(
                self.method,
                Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
            )
    }
}

/// A response: status, headers, the whole body (bounded by the client's
/// `response_bytes_max`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Headers, in order received (names lowercase).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A response with `status` and `body`, no headers.
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        HttpResponse {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// With header `name: value` added.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers
            .push((name.into().to_ascii_lowercase(), value.into()));
        self
    }

    /// A 2xx status.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first value of header `name` (any case).
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Why a call gave no response. A response with an error status is not
/// an error: it is returned (after the retries it allows).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum HttpError {
    /// The request cannot be sent (a bad path or header): its text.
    BadRequest(String),
    /// The service could not be reached or the connection broke.
    Connect(String),
    /// TLS failed (certificate, handshake).
    Tls(String),
    /// No response within the per-attempt timeout.
    Timeout(Duration),
    /// The response was larger than `response_bytes_max`.
    ResponseTooLarge(usize),
    /// The response was malformed.
    Protocol(String),
    /// The circuit breaker is open: no call was made. It lets a trial
    /// call through after this long.
    CircuitOpen(Duration),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::BadRequest(why) => write!(f, "bad request: {why}"),
            HttpError::Connect(why) => write!(f, "connection failed: {why}"),
            HttpError::Tls(why) => write!(f, "TLS failed: {why}"),
            HttpError::Timeout(after) => write!(f, "no response within {after:?}"),
            HttpError::ResponseTooLarge(max) => {
                write!(f, "the response is larger than {max} bytes")
            }
            HttpError::Protocol(why) => write!(f, "malformed response: {why}"),
            HttpError::CircuitOpen(for_) => {
                write!(f, "circuit open: no calls for another {for_:?}")
            }
        }
    }
}

impl std::error::Error for HttpError {}
