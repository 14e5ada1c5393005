//! The client: one service, pooled HTTP/1.1 connections over the node's
//! `Net` seam (TLS by rustls over the same streams), attempts bounded in
//! time on the node's clock, retried on the one `Backoff`, guarded by a
//! circuit breaker, measured and logged.

use super::breaker::{Admission, Breaker, BreakerState};
use super::config::HttpClientConfig;
use super::message::{HttpError, HttpRequest, HttpResponse};
use crate::actor::ActorError;
use crate::durability::DurableContext;
use crate::env::Env;
use crate::observability::metrics::seconds;
use crate::observability::net_io::NetIo;
use crate::seams::{Clock, Spawn};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use plexspaces_net::tls::{ServiceTls, TlsStreams};
use plexspaces_net::{Connection, DynReader, DynWriter, Net};
use plexspaces_storage::sync::LockExt;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::Instrument;

/// A client of one service. Cheap to clone (clones share connections,
/// breaker and metrics).
#[derive(Clone)]
pub struct HttpClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HttpClient({})", self.inner.config.name)
    }
}

struct Inner {
    env: Env,
    config: HttpClientConfig,
    tls: Option<ServiceTls>,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
    breaker: Mutex<Breaker>,
    metrics: Metrics,
}

/// `plexspaces_http_<name>_...`: requests, failures (no response or a
/// 5xx), retries, breaker openings, breaker state, request seconds.
struct Metrics {
    requests: Counter,
    failures: Counter,
    retries: Counter,
    breaker_opened: Counter,
    breaker_state: Gauge,
    seconds: Histogram,
}

impl Metrics {
    fn registered(env: &Env, name: &str) -> Self {
        let node = env.metrics();
        let family = |suffix: &str| format!("http_{name}_{suffix}");
        // A name taken by another kind of metric leaves this one
        // unexported rather than failing the client.
        let counter =
            |suffix: &str, help: &str| node.counter(&family(suffix), help).unwrap_or_default();
        Metrics {
            requests: counter("requests", "HTTP attempts made"),
            failures: counter("failures", "HTTP attempts with no response or a 5xx"),
            retries: counter("retries", "HTTP attempts made again"),
            breaker_opened: counter("breaker_opened", "times the circuit breaker opened"),
            breaker_state: node
                .gauge(
                    &family("breaker_state"),
                    "circuit breaker: 0 closed, 1 half-open, 2 open",
                )
                .unwrap_or_default(),
            seconds: node
                .histogram(&family("request_seconds"), "HTTP attempt latency", &[])
                .unwrap_or_else(|_| Histogram::new([0.001, 0.01, 0.1, 1.0, 10.0])),
        }
    }
}

fn connect_error(e: impl std::fmt::Display) -> HttpError {
    HttpError::Connect(e.to_string())
}

impl HttpClient {
    /// A client on `env`'s seams, configured by `config` (checked).
    pub fn new(env: &Env, config: HttpClientConfig) -> Result<Self, HttpError> {
        config
            .check()
            .map_err(|e| HttpError::BadRequest(e.to_string()))?;
        let tls = match (&config.https, &config.ca_pem) {
            (true, Some(ca)) => {
                let (random, wall_clock) = crate::security::tls::seam_sources(env);
                let tls = ServiceTls::new(ca.as_bytes(), random, wall_clock)
                    .map_err(|e| HttpError::Tls(e.to_string()))?;
                Some(tls)
            }
            _ => None,
        };
        Ok(HttpClient {
            inner: Arc::new(Inner {
                metrics: Metrics::registered(env, &config.name),
                env: env.clone(),
                breaker: Mutex::new(Breaker::new(config.breaker)),
                tls,
                config,
                idle: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Its configuration.
    pub fn config(&self) -> &HttpClientConfig {
        &self.inner.config
    }

    /// Where its circuit breaker stands.
    pub fn breaker_state(&self) -> BreakerState {
        self.inner.breaker.locked().state()
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<HttpResponse, HttpError> {
        self.send(HttpRequest::get(path)).await
    }

    /// Sends `request`: attempts until one gives a response not worth
    /// retrying, the policy's attempts are spent (the last outcome is
    /// returned: a response with an error status is not an `Err`), or
    /// the breaker refuses. Requests that are not idempotent and carry no
    /// idempotency key are made once unless the policy says otherwise.
    ///
    /// Inside a traced handler (the tracing facet's sampled span current)
    /// the call is an OpenTelemetry client span, child of the handler's,
    /// and the request carries its W3C `traceparent`, so the service's
    /// spans join the trace.
    pub async fn send(&self, mut request: HttpRequest) -> Result<HttpResponse, HttpError> {
        use opentelemetry::KeyValue;
        use opentelemetry::trace::{SpanKind, Status, TraceContextExt};
        let config = &self.inner.config;
        let log_span = tracing::debug_span!(
            "http.client",
            client = %config.name,
            method = %request.method,
            path = %request.path,
        );
        let otel = self.inner.env.traces().child_span(
            "http.client",
            SpanKind::Client,
            vec![
                KeyValue::new("http.request.method", request.method.to_string()),
                KeyValue::new("url.path", request.path.clone()),
                KeyValue::new("server.address", config.host.clone()),
                KeyValue::new("plexspaces.http.client", config.name.clone()),
            ],
        );
        if let Some(parent) = otel
            .as_ref()
            .and_then(crate::observability::traces::traceparent)
        {
            request.headers.push(("traceparent".into(), parent));
        }
        let outcome = self.send_with_retries(request).instrument(log_span).await;
        if let Some(cx) = otel {
            let span = cx.span();
            match &outcome {
                Ok(response) => {
                    span.set_attribute(KeyValue::new(
                        "http.response.status_code",
                        i64::from(response.status),
                    ));
                    if response.status >= 500 {
                        span.set_status(Status::error(format!("status {}", response.status)));
                    }
                }
                Err(e) => span.set_status(Status::error(e.to_string())),
            }
            span.end();
        }
        outcome
    }

    async fn send_with_retries(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let inner = &self.inner;
        let config = &inner.config;
        let retryable_request = request.retry_safe() || config.retry.retry_non_idempotent;
        let attempts = if retryable_request {
            config.retry.max_attempts
        } else {
            1
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let trial = match inner.breaker.locked().admit(inner.env.now()) {
                Admission::Pass => false,
                Admission::Trial => true,
                Admission::Refuse(remaining) => return Err(HttpError::CircuitOpen(remaining)),
            };
            inner
                .metrics
                .breaker_state
                .set(self.breaker_state().gauge());
            let started = inner.env.now();
            inner.metrics.requests.inc();
            let outcome = inner
                .env
                .timeout(config.timeout, self.attempt(&request))
                .await
                .unwrap_or(Err(HttpError::Timeout(config.timeout)));
            let elapsed = inner.env.now() - started;
            inner.metrics.seconds.observe(seconds(elapsed));
            self.judge(&outcome, trial);
            if config.log_requests {
                match &outcome {
                    Ok(response) => tracing::debug!(
                        client = %config.name, method = %request.method, path = %request.path,
                        status = response.status, attempt, ?elapsed, "http request"
                    ),
                    Err(e) => tracing::debug!(
                        client = %config.name, method = %request.method, path = %request.path,
                        attempt, ?elapsed, "http request failed: {e}"
                    ),
                }
            }
            let worth_retrying = match &outcome {
                Ok(response) => config.retry.retry_statuses.contains(&response.status),
                Err(HttpError::Connect(_) | HttpError::Timeout(_) | HttpError::Protocol(_)) => true,
                Err(_) => false,
            };
            if !worth_retrying || attempt >= attempts {
                return outcome;
            }
            inner.metrics.retries.inc();
            let mut pause = config.retry.backoff.delay(attempt, &inner.env);
            // A service that says when to come back is believed, within
            // the backoff's longest pause.
            if let Ok(response) = &outcome
                && let Some(after) = response
                    .header_value("retry-after")
                    .and_then(|s| s.trim().parse::<u64>().ok())
            {
                pause = pause.max(Duration::from_secs(after).min(config.retry.backoff.max));
            }
            inner.env.sleep(pause).await;
        }
    }

    /// Tells the breaker how an attempt went: no response or a 5xx is a
    /// failure; any other response a success.
    fn judge(&self, outcome: &Result<HttpResponse, HttpError>, trial: bool) {
        let inner = &self.inner;
        let failed = match outcome {
            Ok(response) => response.status >= 500,
            Err(HttpError::BadRequest(_) | HttpError::CircuitOpen(_)) => {
                if trial {
                    inner.breaker.locked().trial_abandoned();
                }
                return;
            }
            Err(_) => true,
        };
        let mut breaker = inner.breaker.locked();
        if failed {
            inner.metrics.failures.inc();
            if breaker.failed(inner.env.now()) {
                inner.metrics.breaker_opened.inc();
                tracing::warn!(client = %inner.config.name, "circuit breaker opened");
            }
        } else {
            breaker.succeeded();
        }
        inner.metrics.breaker_state.set(breaker.state().gauge());
    }

    /// A connection: an idle one that is still open, or a new one.
    async fn connection(&self) -> Result<SendRequest<Full<Bytes>>, HttpError> {
        {
            let mut idle = self.inner.idle.locked();
            while let Some(sender) = idle.pop() {
                if sender.is_ready() {
                    return Ok(sender);
                }
            }
        }
        let inner = &self.inner;
        let connect = async {
            let connection = inner
                .env
                .net()
                .connect(inner.config.address)
                .await
                .map_err(connect_error)?;
            let io = match &inner.tls {
                None => NetIo::new(connection),
                Some(tls) => {
                    let (reader, writer) = connection.split();
                    let TlsStreams { reader, writer, .. } = tls
                        .connect(&inner.config.host, reader, writer)
                        .await
                        .map_err(|e| HttpError::Tls(e.to_string()))?;
                    NetIo::from_halves(DynReader::new(reader), DynWriter::new(writer))
                }
            };
            let (sender, driver) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(connect_error)?;
            // The connection's driver runs as a task of the node; it ends
            // when the connection closes or its last sender is dropped.
            inner.env.spawn_task(Box::pin(async move {
                let _ = driver.await;
            }));
            Ok(sender)
        };
        inner
            .env
            .timeout(inner.config.connect_timeout, connect)
            .await
            .unwrap_or_else(|_| {
                Err(HttpError::Connect(format!(
                    "no connection within {:?}",
                    inner.config.connect_timeout
                )))
            })
    }

    fn wire_request(
        &self,
        request: &HttpRequest,
    ) -> Result<hyper::Request<Full<Bytes>>, HttpError> {
        let config = &self.inner.config;
        let bad = |e: &dyn std::fmt::Display| HttpError::BadRequest(e.to_string());
        if !request.path.starts_with('/') {
            return Err(HttpError::BadRequest(format!(
                "{:?}: a path starts with /",
                request.path
            )));
        }
        let uri = format!("{}{}", config.path_prefix, request.path);
        let mut builder = hyper::Request::builder()
            .method(request.method.clone())
            .uri(uri.as_str())
            .header(hyper::header::HOST, config.host.as_str());
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        if let Some(key) = &request.idempotency_key {
            builder = builder.header(config.idempotency_header.as_str(), key.as_str());
        }
        builder
            .body(Full::new(request.body.clone()))
            .map_err(|e| bad(&e))
    }

    async fn attempt(&self, request: &HttpRequest) -> Result<HttpResponse, HttpError> {
        let wire = self.wire_request(request)?;
        let mut sender = self.connection().await?;
        let response = sender.send_request(wire).await.map_err(|e| {
            if e.is_parse() {
                HttpError::Protocol(e.to_string())
            } else {
                HttpError::Connect(e.to_string())
            }
        })?;
        let (parts, body) = response.into_parts();
        let max = self.inner.config.response_bytes_max;
        if parts
            .headers
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|len| len > max as u64)
        {
            // Not read: the connection is not reused.
            return Err(HttpError::ResponseTooLarge(max));
        }
        let body = Limited::new(body, max)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    HttpError::ResponseTooLarge(max)
                } else {
                    HttpError::Connect(format!("reading the response: {e}"))
                }
            })?
            .to_bytes();
        let mut idle = self.inner.idle.locked();
        if idle.len() < self.inner.config.idle_connections_max && !sender.is_closed() {
            idle.push(sender);
        }
        drop(idle);
        let headers = parts
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_string(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        Ok(HttpResponse {
            status: parts.status.as_u16(),
            headers,
            body: body.to_vec(),
        })
    }

    /// Sends `request` from a durable handler as the side effect `effect`:
    /// its outcome (response or error) is journaled like
    /// [`DurableContext::run`], so replay returns it and never calls the
    /// service again. A request that is not idempotent is given an
    /// idempotency key derived from the message being handled and the
    /// effect's place in it (unless it has one), so a call cut by a crash
    /// before its outcome was journaled, and made again when the message
    /// is replayed, carries the same key and the service can recognise it.
    pub async fn send_durable(
        &self,
        ctx: &mut DurableContext<'_>,
        effect: &str,
        mut request: HttpRequest,
    ) -> Result<Result<HttpResponse, HttpError>, ActorError> {
        if request.idempotency_key.is_none() && !request.retry_safe() {
            request.idempotency_key = Some(ctx.idempotency_key(effect));
        }
        let client = self.clone();
        ctx.run(effect, || async move { client.send(request).await })
            .await
    }
}
