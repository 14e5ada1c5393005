//! Pushing the node's registry to a Prometheus Pushgateway (for jobs a
//! scraper cannot reach): every interval, `PUT <path>/instance/<node>`
//! with the Prometheus text, over the node's `Net` seam (so the simulator
//! can stand a gateway up too). `PUT` replaces the node's group, so a
//! family that vanished from the node vanishes from the gateway.
//!
//! The URL's host must be an IP address: the `Net` seam connects to socket
//! addresses and resolves no names.

use crate::env::Env;
use crate::seams::{Clock, Spawn};
use bytes::Bytes;
use std::net::SocketAddr;
use std::time::Duration;

/// How long one push may take, connect to response.
pub const PUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Where and how often to push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushConfig {
    /// The gateway's address.
    pub addr: SocketAddr,
    /// The group's path, `/metrics/job/<job>` (the node's
    /// `/instance/<node>` is added).
    pub path: String,
    /// Between pushes.
    pub interval: Duration,
}

impl PushConfig {
    /// The default interval between pushes.
    pub const INTERVAL_DEFAULT: Duration = Duration::from_secs(15);

    /// Reads `http://IP:PORT/metrics/job/NAME`; the interval is
    /// [`PushConfig::INTERVAL_DEFAULT`].
    pub fn parse(url: &str) -> Result<Self, String> {
        let uri: hyper::Uri = url.parse().map_err(|e| format!("{url:?}: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!("{url:?}: only http:// is pushed to"));
        }
        let authority = uri.authority().ok_or_else(|| format!("{url:?}: no host"))?;
        let addr: SocketAddr = authority.as_str().parse().map_err(|_| {
            format!("{url:?}: the host must be IP:PORT (the Net seam resolves no names)")
        })?;
        let path = uri.path().trim_end_matches('/').to_string();
        if !path.starts_with("/metrics/job/") || path.len() == "/metrics/job/".len() {
            return Err(format!("{url:?}: the path must be /metrics/job/<job>"));
        }
        Ok(PushConfig {
            addr,
            path,
            interval: Self::INTERVAL_DEFAULT,
        })
    }

    fn key(&self) -> String {
        format!("{}{}", self.addr, self.path)
    }
}

/// Starts pushing `env`'s registry as `config` says, unless a pusher for
/// the same gateway and path runs on this node already.
pub fn ensure_pushing(env: &Env, config: PushConfig) {
    if !env.metrics().claim_push(&config.key()) {
        return;
    }
    let node_env = env.clone();
    env.spawn_task(Box::pin(async move {
        loop {
            node_env.sleep(config.interval).await;
            let pushed = node_env.timeout(PUSH_TIMEOUT, push_once(&node_env, &config));
            let ok = match pushed.await {
                Ok(Ok(())) => true,
                Ok(Err(e)) => {
                    tracing::debug!(gateway = %config.addr, "metrics push failed: {e}");
                    false
                }
                Err(_) => {
                    tracing::debug!(gateway = %config.addr, "metrics push timed out");
                    false
                }
            };
            node_env.metrics().count_push(ok);
        }
    }));
}

/// One push of the registry as it is now.
pub async fn push_once(env: &Env, config: &PushConfig) -> Result<(), String> {
    let body = env.metrics().render_prometheus();
    let request = hyper::Request::put(format!("{}/instance/{}", config.path, env.node().as_str()))
        .header(hyper::header::HOST, config.addr.to_string())
        .header(
            hyper::header::CONTENT_TYPE,
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        )
        .body(Bytes::from(body))
        .map_err(|e| e.to_string())?;
    let response = super::http_client::send_to(env, config.addr, request).await?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("the gateway answered {}", response.status()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_urls_are_checked() {
        let ok = PushConfig::parse("http://127.0.0.1:9091/metrics/job/shop/").unwrap();
        assert_eq!(ok.addr, "127.0.0.1:9091".parse().unwrap());
        assert_eq!(ok.path, "/metrics/job/shop");
        for bad in [
            "https://127.0.0.1:9091/metrics/job/x",
            "http://gateway:9091/metrics/job/x",
            "http://127.0.0.1:9091/metrics",
            "http://127.0.0.1:9091/metrics/job/",
            "not a url",
        ] {
            assert!(PushConfig::parse(bad).is_err(), "{bad}");
        }
    }
}
