//! Prometheus metrics (`per_` prefix, base units, `_total` counters) via `prometheus-client`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of `per_http_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// Route template, e.g. `/merkle/proof/{leaf_index}`.
    pub route: String,
    /// Outcome: `ok` or the error name.
    pub outcome: String,
}

/// Labels of `per_transactions_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TxLabels {
    /// deposit | transfer | withdraw.
    pub kind: String,
    /// `accepted`, `duplicate`, or the error name.
    pub outcome: String,
}

/// Labels of `per_build_info`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    /// Crate version.
    pub version: String,
    /// Deployment role.
    pub role: String,
}

/// Labels of `per_tee_attestation_valid`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    /// Attestation provider: none | tdx.
    pub provider: String,
}

/// Labels of the `per_backup_*` families.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetLabels {
    /// Backup target: `postgres` or `s3`.
    pub target: String,
}

/// Every metric the node exports, registered once.
pub struct Metrics {
    /// The registry `/metrics` encodes.
    pub registry: Registry,
    /// Batches and settlement to L1.
    pub settlement: crate::settlement::metrics::SettlementMetrics,
    /// HTTP requests by route and outcome.
    pub http_requests: Family<RouteLabels, Counter>,
    /// Transactions by kind and outcome.
    pub transactions: Family<TxLabels, Counter>,
    /// Transactions per commit group.
    pub commit_group_size: Histogram,
    /// Seconds from a group's first apply to its sync.
    pub commit_group_duration: Histogram,
    /// Seconds spent in each group's fdatasync.
    pub fsync_duration: Histogram,
    /// Commands waiting for the sequencer.
    pub queue_depth: Gauge,
    /// Bytes appended to the WAL.
    pub wal_bytes: Counter,
    /// Last durable sequence number.
    pub seq: Gauge,
    /// Accepted transactions not yet settled on L1.
    pub pending_transactions: Gauge,
    /// 1 while the WAL writer is poisoned.
    pub writer_poisoned: Gauge,
    /// 1 while an operator has halted writes.
    pub halted: Gauge,
    /// Seconds since the newest snapshot (0 while it holds the current seq).
    pub snapshot_age: Gauge,
    /// Seq of the newest snapshot.
    pub snapshot_seq: Gauge,
    /// Failed or skipped snapshots since start.
    pub snapshot_failures: Gauge,
    /// Duration of the last snapshot write, seconds.
    pub snapshot_write_duration: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Fencing epoch of this node.
    pub epoch: Gauge,
    /// 1 while the newest TEE attestation is valid, by provider.
    pub tee_attestation_valid: Family<ProviderLabels, Gauge>,
    /// Unix seconds of the newest TEE attestation check.
    pub tee_attestation_last_check: Gauge,
    /// TEE attestation checks of a real provider that were not valid.
    pub tee_attestation_failures: Counter,
    /// Unix time of each backup target's last successful sync.
    pub backup_last_success: Family<TargetLabels, Gauge>,
    /// Objects each backup target still lacks.
    pub backup_pending: Family<TargetLabels, Gauge>,
    /// Failed sync rounds per backup target.
    pub backup_failures: Family<TargetLabels, Counter>,
    /// Snapshot writer and process memory (refreshed at scrape time).
    pub snapshots: crate::node::snapshot_metrics::SnapshotMetrics,
}

impl Metrics {
    /// Registers every metric.
    pub fn new(role: &str) -> Metrics {
        let mut registry = Registry::with_prefix("per");
        let http_requests = Family::<RouteLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route and outcome",
            http_requests.clone(),
        );
        let transactions = Family::<TxLabels, Counter>::default();
        registry.register(
            "transactions",
            "Transactions by kind and outcome",
            transactions.clone(),
        );
        let commit_group_size = Histogram::new(exponential_buckets(1.0, 2.0, 12));
        registry.register(
            "commit_group_size",
            "Transactions per commit group",
            commit_group_size.clone(),
        );
        let commit_group_duration = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register_with_unit(
            "commit_group_duration",
            "Time from a group's first apply to its durable sync",
            prometheus_client::registry::Unit::Seconds,
            commit_group_duration.clone(),
        );
        let fsync_duration = Histogram::new(exponential_buckets(0.00005, 2.0, 16));
        registry.register_with_unit(
            "wal_fsync_duration",
            "Time spent in each commit group's fdatasync",
            prometheus_client::registry::Unit::Seconds,
            fsync_duration.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "sequencer_queue_depth",
            "Commands waiting for the sequencer",
            queue_depth.clone(),
        );
        let wal_bytes = Counter::default();
        registry.register_with_unit(
            "wal_written",
            "Bytes appended to the WAL",
            prometheus_client::registry::Unit::Bytes,
            wal_bytes.clone(),
        );
        let seq = Gauge::default();
        registry.register("seq", "Last durable sequence number", seq.clone());
        let pending_transactions = Gauge::default();
        registry.register(
            "pending_transactions",
            "Accepted transactions not yet settled on L1",
            pending_transactions.clone(),
        );
        let writer_poisoned = Gauge::default();
        registry.register(
            "wal_writer_poisoned",
            "1 while the WAL writer refuses writes after an I/O failure",
            writer_poisoned.clone(),
        );
        let halted = Gauge::default();
        registry.register(
            "halted",
            "1 while an operator has halted writes",
            halted.clone(),
        );
        let snapshot_age = Gauge::default();
        registry.register_with_unit(
            "snapshot_age",
            "Time since the newest snapshot (0 while it holds the current seq)",
            prometheus_client::registry::Unit::Seconds,
            snapshot_age.clone(),
        );
        let snapshot_seq = Gauge::default();
        registry.register(
            "snapshot_seq",
            "Seq of the newest snapshot",
            snapshot_seq.clone(),
        );
        let snapshot_failures = Gauge::default();
        registry.register(
            "snapshot_failures",
            "Failed or skipped snapshots since start",
            snapshot_failures.clone(),
        );
        let snapshot_write_duration = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register_with_unit(
            "snapshot_write_duration",
            "Duration of the last snapshot write",
            prometheus_client::registry::Unit::Seconds,
            snapshot_write_duration.clone(),
        );
        let epoch = Gauge::default();
        registry.register("epoch", "Fencing epoch of this node", epoch.clone());
        let tee_attestation_valid = Family::<ProviderLabels, Gauge>::default();
        registry.register(
            "tee_attestation_valid",
            "1 while the newest TEE attestation is valid (provider none: never)",
            tee_attestation_valid.clone(),
        );
        let tee_attestation_last_check = Gauge::default();
        registry.register_with_unit(
            "tee_attestation_last_check_timestamp",
            "Unix time of the newest TEE attestation check",
            prometheus_client::registry::Unit::Seconds,
            tee_attestation_last_check.clone(),
        );
        let tee_attestation_failures = Counter::default();
        registry.register(
            "tee_attestation_failures",
            "TEE attestation checks of a real provider that were not valid",
            tee_attestation_failures.clone(),
        );
        let backup_last_success = Family::<TargetLabels, Gauge>::default();
        registry.register_with_unit(
            "backup_last_success_timestamp",
            "Unix time of the backup target's last successful sync",
            prometheus_client::registry::Unit::Seconds,
            backup_last_success.clone(),
        );
        let backup_pending = Family::<TargetLabels, Gauge>::default();
        registry.register(
            "backup_pending_objects",
            "Snapshot files and sealed WAL segments the backup target still lacks",
            backup_pending.clone(),
        );
        let backup_failures = Family::<TargetLabels, Counter>::default();
        registry.register(
            "backup_failures",
            "Failed sync rounds of the backup target",
            backup_failures.clone(),
        );
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_owned(),
                role: role.to_owned(),
            })
            .set(1);
        registry.register("build_info", "Build version and role", build_info);
        let settlement = crate::settlement::metrics::SettlementMetrics::register(&mut registry);
        let snapshots = crate::node::snapshot_metrics::SnapshotMetrics::register(&mut registry);
        Metrics {
            snapshots,
            settlement,
            registry,
            http_requests,
            transactions,
            commit_group_size,
            commit_group_duration,
            fsync_duration,
            queue_depth,
            wal_bytes,
            seq,
            pending_transactions,
            writer_poisoned,
            halted,
            snapshot_age,
            snapshot_seq,
            snapshot_failures,
            snapshot_write_duration,
            epoch,
            tee_attestation_valid,
            tee_attestation_last_check,
            tee_attestation_failures,
            backup_last_success,
            backup_pending,
            backup_failures,
        }
    }

    /// Records one TEE attestation check; a failure is counted only for a real provider
    /// (`count_failure`), `none` is never valid and never checked again.
    pub fn record_attestation(
        &self,
        provider: &str,
        valid: bool,
        checked_secs: u64,
        count_failure: bool,
    ) {
        self.tee_attestation_valid
            .get_or_create(&ProviderLabels {
                provider: provider.to_owned(),
            })
            .set(i64::from(valid));
        self.tee_attestation_last_check
            .set(i64::try_from(checked_secs).unwrap_or(i64::MAX));
        if !valid && count_failure {
            self.tee_attestation_failures.inc();
        }
    }

    /// Counts one HTTP request.
    pub fn count_request(&self, route: &str, outcome: &str) {
        self.http_requests
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Counts one transaction decision.
    pub fn count_tx(&self, kind: &str, outcome: &str) {
        self.transactions
            .get_or_create(&TxLabels {
                kind: kind.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Rewrites OpenMetrics text as Prometheus text format 0.0.4, for scrapers and tools that do not
/// ask for OpenMetrics (`promtool check metrics`, older Prometheus): a counter family's `HELP` and
/// `TYPE` name its `_total` sample, `# UNIT` and `# EOF` lines go.
pub fn openmetrics_to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(line) => out.push_str(&line),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_named_by_their_total_sample_in_prometheus_text() {
        let metrics = Metrics::new("single");
        metrics.count_request("/deposit", "ok");
        metrics.wal_bytes.inc_by(10);
        let text = openmetrics_to_prometheus_text(&metrics.encode());
        assert!(text.contains("# HELP per_http_requests_total "), "{text}");
        assert!(
            text.contains("# TYPE per_http_requests_total counter"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE per_wal_written_bytes_total counter"),
            "{text}"
        );
        assert!(text.contains("per_wal_written_bytes_total 10"), "{text}");
        assert!(!text.contains("# EOF") && !text.contains("# UNIT"));
        // Histograms and gauges are unchanged.
        assert!(text.contains("# TYPE per_commit_group_size histogram"));
    }

    #[test]
    fn attestation_metrics_follow_each_check() {
        let metrics = Metrics::new("single");
        metrics.record_attestation("tdx", true, 100, true);
        let text = openmetrics_to_prometheus_text(&metrics.encode());
        assert!(
            text.contains("per_tee_attestation_valid{provider=\"tdx\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("per_tee_attestation_last_check_timestamp_seconds 100"),
            "{text}"
        );
        assert!(
            text.contains("per_tee_attestation_failures_total 0"),
            "{text}"
        );
        metrics.record_attestation("tdx", false, 160, true);
        metrics.record_attestation("tdx", false, 220, true);
        let text = openmetrics_to_prometheus_text(&metrics.encode());
        assert!(
            text.contains("per_tee_attestation_valid{provider=\"tdx\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("per_tee_attestation_failures_total 2"),
            "{text}"
        );
        // Provider `none` is 0 and never counted as a failure.
        let metrics = Metrics::new("single");
        metrics.record_attestation("none", false, 100, false);
        let text = openmetrics_to_prometheus_text(&metrics.encode());
        assert!(
            text.contains("per_tee_attestation_valid{provider=\"none\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("per_tee_attestation_failures_total 0"),
            "{text}"
        );
    }
}
