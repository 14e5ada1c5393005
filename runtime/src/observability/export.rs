//! The registry as JSON (the design's `json` export): the Prometheus text
//! exposition, parsed back by `prometheus-parse` into samples, so the JSON
//! always says exactly what `/metrics` says.
//!
//! Label values the runtime writes never hold `,`, `=` or `"` (kind names
//! are sanitised by [`super::metrics::kind_name`]), which that parser
//! needs.

use super::NodeMetrics;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// Every sample of `metrics` as a JSON document:
/// `{"metrics": [{"name", "type", "help", "labels", "value" | "buckets"...}]}`.
pub fn render_json(metrics: &NodeMetrics) -> String {
    let text = metrics.render_prometheus();
    let lines = text.lines().map(|l| Ok(l.to_string()));
    // The sample time is not exported: a fixed one keeps the parser off the
    // wall clock.
    let epoch = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
    let scrape = match prometheus_parse::Scrape::parse_at(lines, epoch) {
        Ok(scrape) => scrape,
        Err(e) => return json!({ "error": e.to_string() }).to_string(),
    };
    let mut out = Vec::with_capacity(scrape.samples.len());
    for sample in scrape.samples {
        let labels: BTreeMap<&String, &String> = sample.labels.iter().collect();
        let mut entry = Map::new();
        entry.insert("name".into(), json!(sample.metric));
        if let Some(help) = scrape.docs.get(&sample.metric) {
            entry.insert("help".into(), json!(help));
        }
        entry.insert("labels".into(), json!(labels));
        let (kind, value) = match sample.value {
            prometheus_parse::Value::Counter(v) => ("counter", json!(v)),
            prometheus_parse::Value::Gauge(v) => ("gauge", json!(v)),
            prometheus_parse::Value::Untyped(v) => ("untyped", json!(v)),
            prometheus_parse::Value::Histogram(buckets) => (
                "histogram",
                Value::Array(
                    buckets
                        .iter()
                        .map(|b| json!({ "le": le(b.less_than), "count": b.count }))
                        .collect(),
                ),
            ),
            prometheus_parse::Value::Summary(quantiles) => (
                "summary",
                Value::Array(
                    quantiles
                        .iter()
                        .map(|q| json!({ "quantile": q.quantile, "count": q.count }))
                        .collect(),
                ),
            ),
        };
        entry.insert("type".into(), json!(kind));
        let key = if kind == "histogram" {
            "buckets"
        } else {
            "value"
        };
        entry.insert(key.into(), value);
        out.push(Value::Object(entry));
    }
    json!({ "metrics": out }).to_string()
}

/// A bucket bound as JSON (`+Inf` is not a JSON number).
fn le(bound: f64) -> Value {
    if bound.is_finite() {
        json!(bound)
    } else {
        json!("+Inf")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_says_what_the_text_says() {
        let m = NodeMetrics::new();
        let kind = m.kind("Counter");
        kind.messages.inc_by(7);
        kind.handling.observe(0.003);
        let doc: Value = serde_json::from_str(&render_json(&m)).unwrap();
        let samples = doc["metrics"].as_array().unwrap();
        let messages = samples
            .iter()
            .find(|s| s["name"] == "plexspaces_messages_total")
            .expect("the counter is exported");
        assert_eq!(messages["labels"]["kind"], "Counter");
        assert_eq!(messages["value"], 7.0);
        let handling = samples
            .iter()
            .find(|s| {
                s["name"] == "plexspaces_message_handling_seconds" && s["type"] == "histogram"
            })
            .expect("the histogram is exported");
        let buckets = handling["buckets"].as_array().unwrap();
        let at_5ms = buckets.iter().find(|b| b["le"] == 0.005).unwrap();
        assert_eq!(at_5ms["count"], 1.0);
        let below = buckets.iter().find(|b| b["le"] == 0.0025).unwrap();
        assert_eq!(below["count"], 0.0);
    }
}
