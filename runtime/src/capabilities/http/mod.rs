//! The HTTP client capability: hyper's HTTP/1.1 client over the node's
//! `Net` seam (HTTPS by rustls over the same streams), with per-attempt
//! timeouts on the `Clock` seam, retries on the project's one `Backoff`
//! (jitter from the `Rng` seam; only idempotent requests unless told), a
//! circuit breaker, bounded responses, metrics and request logs. An actor
//! reaches it through the [`HttpClientFacet`]; a durable actor calls
//! [`HttpClient::send_durable`], which journals the outcome like
//! `ctx.run` (replay returns it, never calls again) and sends
//! non-idempotent requests with an idempotency key derived from the
//! message, so a call cut by a crash and made again is recognised by the
//! service. [`HttpServer`] serves HTTP over the same seam: a webhook
//! receiver in production, a fake remote service in tests and the
//! simulator.

mod breaker;
mod client;
mod config;
mod facet;
mod message;
mod server;

pub use breaker::{BreakerPolicy, BreakerState};
pub use client::HttpClient;
pub use config::{HttpClientConfig, HttpConfigError, RetryPolicy};
pub use facet::{HTTP_FACET, HttpClientFacet};
pub use message::{HttpError, HttpRequest, HttpResponse};
pub use server::{HttpHandler, HttpServer, ServedRequest};

/// A durable call's journaled outcome (`encoded_types`).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn encoded_types(v: &mut impl crate::codec::EncodedTypes) {
    v.visit("HttpOutcome", || {
        vec![
            Ok(HttpResponse::new(201, "charge-7").header("content-type", "text/plain")),
            Err(HttpError::Timeout(std::time::Duration::from_millis(300))),
            Err(HttpError::CircuitOpen(std::time::Duration::from_secs(2))),
            Err::<HttpResponse, _>(HttpError::Connect("refused".into())),
        ]
    });
}
