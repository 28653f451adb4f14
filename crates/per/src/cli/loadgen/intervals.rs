//! `--report-every SECS`: one line per interval on stderr (rate, p50/p99/max, errors, and the
//! node's RSS and snapshot-writer state read from `/metrics`), so a degradation in a soak shows
//! when it starts; with `--json` the same objects end up in the report's `intervals` array.

use super::stats::{Interval, Stats, to_ms};
use per_wire::client::ApiClient;
use serde_json::{Value, json};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// The node metrics an interval reports: `(json key, metric name)`.
const NODE_METRICS: &[(&str, &str)] = &[
    ("rss_bytes", "per_process_resident_memory_bytes"),
    (
        "snapshot_writer_lag_secs",
        "per_snapshot_writer_lag_seconds",
    ),
    ("snapshot_age_secs", "per_snapshot_age_seconds"),
    ("snapshot_failures", "per_snapshot_failures"),
    ("snapshot_coalesced", "per_snapshot_coalesced"),
    ("snapshot_fulls_written", "per_snapshot_fulls_written"),
    ("snapshot_deltas_written", "per_snapshot_deltas_written"),
    ("snapshot_state_clones", "per_snapshot_state_clones"),
    ("queue_depth", "per_queue_depth"),
];

/// Reads the value of each unlabelled metric of [`NODE_METRICS`] from a Prometheus text page.
pub fn node_values(page: &str) -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    for line in page.lines() {
        if line.starts_with('#') {
            continue;
        }
        let mut parts = line.split_whitespace();
        let (Some(name), Some(value)) = (parts.next(), parts.next()) else {
            continue;
        };
        if let Some((key, _)) = NODE_METRICS.iter().find(|(_, metric)| *metric == name)
            && let Ok(value) = value.parse::<f64>()
        {
            out.insert((*key).to_owned(), json!(value));
        }
    }
    out
}

/// One interval as JSON.
fn interval_json(t_secs: f64, window_secs: f64, counts: &Interval, node: Option<Value>) -> Value {
    let any = counts.ok > 0;
    let quantile = |q: f64| any.then(|| to_ms(counts.latency_us.value_at_quantile(q)));
    json!({
        "t_secs": (t_secs * 10.0).round() / 10.0,
        "ok": counts.ok,
        "errors": counts.errors,
        "rate": ((counts.ok as f64 / window_secs.max(1e-3)) * 10.0).round() / 10.0,
        "p50_ms": quantile(0.50),
        "p99_ms": quantile(0.99),
        "max_ms": any.then(|| to_ms(counts.latency_us.max())),
        "node": node,
    })
}

/// One human line for an interval.
fn interval_line(value: &Value) -> String {
    let num = |v: &Value| {
        v.as_f64()
            .map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"))
    };
    let node = &value["node"];
    let rss = node["rss_bytes"]
        .as_f64()
        .map_or_else(|| "-".to_owned(), |b| format!("{:.0}MB", b / 1e6));
    format!(
        "interval t={}s rate {}/s ok {} errors {} p50 {}ms p99 {}ms max {}ms | node rss {} snapshot lag {}s age {}s failures {} fulls {} deltas {} coalesced {} clones {}",
        num(&value["t_secs"]),
        num(&value["rate"]),
        value["ok"],
        value["errors"],
        num(&value["p50_ms"]),
        num(&value["p99_ms"]),
        num(&value["max_ms"]),
        rss,
        num(&node["snapshot_writer_lag_secs"]),
        num(&node["snapshot_age_secs"]),
        num(&node["snapshot_failures"]),
        num(&node["snapshot_fulls_written"]),
        num(&node["snapshot_deltas_written"]),
        num(&node["snapshot_coalesced"]),
        num(&node["snapshot_state_clones"]),
    )
}

/// Reports every `every` until `stop` is notified, then once more for the last partial interval.
pub async fn report_loop(
    stats: Arc<Stats>,
    client: ApiClient,
    every: Duration,
    stop: Arc<tokio::sync::Notify>,
    sink: Arc<Mutex<Vec<Value>>>,
) {
    let started = Instant::now();
    let mut last = started;
    let mut tick = tokio::time::interval_at(started + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            () = stop.notified() => true,
        };
        let counts = stats.take_interval();
        let now = Instant::now();
        let window = now.duration_since(last).as_secs_f64();
        last = now;
        let node =
            match tokio::time::timeout(Duration::from_secs(2), client.get_text("/metrics")).await {
                Ok(Ok(page)) => Some(Value::Object(node_values(&page))),
                _ => None,
            };
        let value = interval_json(
            now.duration_since(started).as_secs_f64(),
            window,
            &counts,
            node,
        );
        let line = interval_line(&value);
        {
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr, "{line}");
        }
        sink.lock().unwrap_or_else(|e| e.into_inner()).push(value);
        if stopping {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::node_values;

    #[test]
    fn reads_unlabelled_node_metrics() {
        let page = "# HELP x\nper_process_resident_memory_bytes 1048576\nper_snapshot_failures 0\nper_snapshot_writer_lag_seconds 3\nper_http_requests_total{route=\"/x\"} 5\n";
        let values = node_values(page);
        assert_eq!(values["rss_bytes"], 1_048_576.0);
        assert_eq!(values["snapshot_failures"], 0.0);
        assert_eq!(values["snapshot_writer_lag_secs"], 3.0);
        assert_eq!(values.len(), 3);
    }
}
