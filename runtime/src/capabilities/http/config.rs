//! What an HTTP client is told: its service's base URL and how to treat
//! it (timeouts, retries, breaker, bounds, TLS). Built in code or read
//! from the facet's configuration, and checked either way.

use super::breaker::BreakerPolicy;
use crate::actor::facet::{
    FacetCategory, FacetConfig, FacetConfigError, FacetDescriptor, FacetOption, OptionKind,
};
use crate::retry::Backoff;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// When a call is made again.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all (1: no retry).
    pub max_attempts: u32,
    /// Pauses between attempts.
    pub backoff: Backoff,
    /// Response statuses worth another attempt.
    pub retry_statuses: Vec<u16>,
    /// Also retry requests that are neither idempotent by method nor
    /// carry an idempotency key (POST, PATCH): only if the service is
    /// known to tolerate duplicates.
    pub retry_non_idempotent: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(2)),
            retry_statuses: vec![429, 502, 503, 504],
            retry_non_idempotent: false,
        }
    }
}

/// Why a configuration was refused: the setting and the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpConfigError {
    /// The setting at fault (as the facet's configuration names it).
    pub key: &'static str,
    /// Why.
    pub reason: String,
}

impl fmt::Display for HttpConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "HTTP client configuration: {}: {}",
            self.key, self.reason
        )
    }
}

fn refuse<T>(key: &'static str, reason: String) -> Result<T, HttpConfigError> {
    Err(HttpConfigError { key, reason })
}

impl std::error::Error for HttpConfigError {}

/// An HTTP client's configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpClientConfig {
    /// Names its metrics (`plexspaces_http_<name>_...`) and logs.
    pub name: String,
    /// `https` or not.
    pub https: bool,
    /// The host as the URL names it (the TLS server name, the Host header).
    pub host: String,
    /// Where to connect: the URL's host if it is an IP address, or the
    /// `address` option (the `Net` seam resolves no names).
    pub address: SocketAddr,
    /// Prefixed to every request's path (no trailing `/`).
    pub path_prefix: String,
    /// Longest wait for one attempt's response, connection included.
    pub timeout: Duration,
    /// Longest wait for a connection (and its TLS handshake).
    pub connect_timeout: Duration,
    /// Retries.
    pub retry: RetryPolicy,
    /// The circuit breaker.
    pub breaker: BreakerPolicy,
    /// Largest response body read.
    pub response_bytes_max: usize,
    /// The header an idempotency key is sent in.
    pub idempotency_header: String,
    /// For HTTPS: the PEM CA bundle the service's certificate must chain
    /// to (its name is checked too).
    pub ca_pem: Option<String>,
    /// Idle connections kept for reuse.
    pub idle_connections_max: usize,
    /// Each request logged (at `debug`) with its status and time.
    pub log_requests: bool,
}

/// Default largest response body (10 MiB).
pub const RESPONSE_BYTES_MAX_DEFAULT: usize = 10 * 1024 * 1024;

impl HttpClientConfig {
    /// A client of the service at `base_url` (`http://10.0.0.5:8080/v1`,
    /// `https://payments.internal:8443`; a host that is not an IP address
    /// needs [`HttpClientConfig::address`]) with the defaults: 10 s
    /// timeout, 3 attempts, a breaker opening after 5 failures for 30 s,
    /// 10 MiB responses.
    pub fn new(base_url: &str) -> Result<Self, HttpConfigError> {
        let bad = |why: &str| HttpConfigError {
            key: "base_url",
            reason: format!("{base_url:?}: {why}"),
        };
        let uri: hyper::Uri = base_url.parse().map_err(|e| bad(&format!("{e}")))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(bad("the scheme must be http or https")),
        };
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad("credentials in the URL are not supported"));
        }
        let host = authority.host().trim_matches(['[', ']']).to_string();
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        if uri.query().is_some() {
            return Err(bad("a base URL takes no query"));
        }
        // A host that is an IP address is the address; a name needs one.
        let address = host
            .parse::<std::net::IpAddr>()
            .map(|ip| SocketAddr::new(ip, port))
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        Ok(HttpClientConfig {
            name: "default".into(),
            https,
            host,
            address,
            path_prefix: uri.path().trim_end_matches('/').to_string(),
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            retry: RetryPolicy::default(),
            breaker: BreakerPolicy::default(),
            response_bytes_max: RESPONSE_BYTES_MAX_DEFAULT,
            idempotency_header: "idempotency-key".into(),
            ca_pem: None,
            idle_connections_max: 8,
            log_requests: true,
        })
    }

    /// Connects to `address` (for a base URL naming its host by name).
    pub fn address(mut self, address: SocketAddr) -> Self {
        self.address = address;
        self
    }

    /// Names its metrics and logs.
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// Trusts the CAs in `ca_pem` for HTTPS.
    pub fn ca_pem(mut self, ca_pem: impl Into<String>) -> Self {
        self.ca_pem = Some(ca_pem.into());
        self
    }

    /// With these retries.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// With this breaker.
    pub fn breaker(mut self, breaker: BreakerPolicy) -> Self {
        self.breaker = breaker;
        self
    }

    /// With this per-attempt timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// With this response bound.
    pub fn response_bytes_max(mut self, max: usize) -> Self {
        self.response_bytes_max = max;
        self
    }

    /// Checks what the builder methods cannot: an address for a named
    /// host, a CA bundle for HTTPS, a metrics-safe name, bounds above 0.
    pub fn check(&self) -> Result<(), HttpConfigError> {
        if self.address.port() == 0 {
            return refuse(
                "address",
                format!(
                    "{:?} is not an IP address: give the IP:PORT to connect to",
                    self.host
                ),
            );
        }
        if self.https && self.ca_pem.is_none() {
            return refuse(
                "ca_pem",
                "HTTPS needs the CA bundle the service's certificate chains to".into(),
            );
        }
        if self.name.is_empty()
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return refuse(
                "name",
                format!("{:?}: letters, digits and _ only", self.name),
            );
        }
        if self.retry.max_attempts == 0 {
            return refuse("max_attempts", "at least 1".into());
        }
        if self.response_bytes_max == 0 {
            return refuse("response_bytes_max", "at least 1".into());
        }
        if self.timeout.is_zero() {
            return refuse("timeout", "longer than zero".into());
        }
        if self.connect_timeout.is_zero() {
            return refuse("connect_timeout", "longer than zero".into());
        }
        if hyper::header::HeaderName::from_bytes(self.idempotency_header.as_bytes()).is_err() {
            return refuse(
                "idempotency_header",
                format!("{:?} is not a header name", self.idempotency_header),
            );
        }
        Ok(())
    }

    /// The facet's options.
    pub(crate) fn descriptor(facet: &str) -> FacetDescriptor {
        let option = FacetOption::new;
        FacetDescriptor::new(
            facet,
            FacetCategory::Domain,
            "an HTTP client of one service: base URL, timeouts, retries with backoff, a circuit breaker, bounded responses, request logs and metrics",
        )
        .option(option("base_url", OptionKind::Str, "http(s)://HOST:PORT/prefix").required())
        .option(option("name", OptionKind::Str, "names its metrics and logs (default \"default\")"))
        .option(option("address", OptionKind::Str, "IP:PORT to connect to, when the URL's host is a name"))
        .option(option("ca_pem", OptionKind::Str, "for HTTPS: the PEM CA bundle"))
        .option(option("timeout", OptionKind::Duration, "per attempt (default 10s)"))
        .option(option("connect_timeout", OptionKind::Duration, "per connection (default 3s)"))
        .option(option("max_attempts", OptionKind::Int, "attempts in all (default 3)"))
        .option(option("backoff_first", OptionKind::Duration, "first pause between attempts (default 100ms)"))
        .option(option("backoff_max", OptionKind::Duration, "longest pause (default 2s)"))
        .option(option("retry_non_idempotent", OptionKind::Bool, "also retry POST/PATCH without a key (default false)"))
        .option(option("breaker_failures", OptionKind::Int, "consecutive failures that open the breaker (default 5)"))
        .option(option("breaker_open_for", OptionKind::Duration, "how long it stays open (default 30s)"))
        .option(option("response_bytes_max", OptionKind::Int, "largest response body (default 10 MiB)"))
        .option(option("idempotency_header", OptionKind::Str, "default \"idempotency-key\""))
        .option(option("log_requests", OptionKind::Bool, "log each request at debug (default true)"))
    }

    /// Reads the facet's configuration.
    pub(crate) fn from_facet_config(
        facet: &str,
        config: FacetConfig,
    ) -> Result<Self, FacetConfigError> {
        let mut config = Self::descriptor(facet).validate(config)?;
        let invalid = |key: &str, reason: String| FacetConfigError::Invalid {
            key: key.to_string(),
            reason,
        };
        let base_url = config.string("base_url")?.unwrap_or_default();
        let mut built = Self::new(&base_url).map_err(|e| invalid(e.key, e.reason))?;
        if let Some(name) = config.string("name")? {
            built.name = name;
        }
        if let Some(address) = config.string("address")? {
            built.address = address
                .parse()
                .map_err(|_| invalid("address", format!("{address:?} is not IP:PORT")))?;
        }
        built.ca_pem = config.string("ca_pem")?;
        if let Some(timeout) = config.duration("timeout")? {
            built.timeout = timeout;
        }
        if let Some(timeout) = config.duration("connect_timeout")? {
            built.connect_timeout = timeout;
        }
        let positive = |key: &str, n: i64| {
            u32::try_from(n)
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| invalid(key, format!("{n} is not a positive count")))
        };
        if let Some(n) = config.int("max_attempts")? {
            built.retry.max_attempts = positive("max_attempts", n)?;
        }
        if let Some(first) = config.duration("backoff_first")? {
            built.retry.backoff.first = first;
        }
        if let Some(max) = config.duration("backoff_max")? {
            built.retry.backoff.max = max;
        }
        if let Some(flag) = config.bool("retry_non_idempotent")? {
            built.retry.retry_non_idempotent = flag;
        }
        if let Some(n) = config.int("breaker_failures")? {
            built.breaker.failures_to_open = positive("breaker_failures", n)?;
        }
        if let Some(open_for) = config.duration("breaker_open_for")? {
            built.breaker.open_for = open_for;
        }
        if let Some(n) = config.int("response_bytes_max")? {
            built.response_bytes_max = positive("response_bytes_max", n)? as usize;
        }
        if let Some(header) = config.string("idempotency_header")? {
            built.idempotency_header = header.to_ascii_lowercase();
        }
        if let Some(flag) = config.bool("log_requests")? {
            built.log_requests = flag;
        }
        config.finish(facet)?;
        built.check().map_err(|e| invalid(e.key, e.reason))?;
        Ok(built)
    }
}
