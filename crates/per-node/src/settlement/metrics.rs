//! Settlement metrics: lag (the runbook's "Settlement lag > 30 min"), batches by state, and
//! submission outcomes.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

/// Labels of `per_settlement_batches`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BatchStateLabels {
    /// sealed | submitted | queued.
    pub state: String,
}

/// Labels of `per_settlement_attempts_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// confirmed | already_settled | exhausted.
    pub outcome: String,
}

/// Settlement metric handles.
#[derive(Clone)]
pub struct SettlementMetrics {
    /// Age of the oldest unsettled sealed batch (0: none).
    pub lag: Gauge,
    /// Unsettled batches by state.
    pub batches: Family<BatchStateLabels, Gauge>,
    /// Batch settlements by outcome.
    pub outcomes: Family<OutcomeLabels, Counter>,
    /// 1 while settlement runs (0: disabled, blocked on the prover, or a standby).
    pub active: Gauge,
    /// L1 slot of the last confirmed batch.
    pub last_slot: Gauge,
}

impl SettlementMetrics {
    /// Registers the metrics under `per_settlement_*`.
    pub fn register(registry: &mut Registry) -> SettlementMetrics {
        let metrics = SettlementMetrics {
            lag: Gauge::default(),
            batches: Family::default(),
            outcomes: Family::default(),
            active: Gauge::default(),
            last_slot: Gauge::default(),
        };
        registry.register_with_unit(
            "settlement_lag",
            "Age of the oldest sealed batch not yet settled on L1 (0 when none)",
            Unit::Seconds,
            metrics.lag.clone(),
        );
        registry.register(
            "settlement_batches",
            "Sealed batches not yet settled, by state",
            metrics.batches.clone(),
        );
        registry.register(
            "settlement_outcomes",
            "Batch settlement runs by outcome",
            metrics.outcomes.clone(),
        );
        registry.register(
            "settlement_active",
            "1 while this node submits batches to L1",
            metrics.active.clone(),
        );
        registry.register(
            "settlement_last_slot",
            "L1 slot of the last confirmed batch",
            metrics.last_slot.clone(),
        );
        metrics
    }

    /// Refreshes the gauges from a report (at scrape time).
    pub fn refresh(&self, report: &crate::status::settlement::SettlementReport) {
        self.lag.set(report.lag_secs as i64);
        self.active.set(i64::from(report.state == "active"));
        for state in ["sealed", "submitted", "queued"] {
            let count = report.detail[format!("batches_{state}")]
                .as_u64()
                .unwrap_or(0);
            self.batches
                .get_or_create(&BatchStateLabels {
                    state: state.to_owned(),
                })
                .set(count as i64);
        }
        self.last_slot
            .set(report.detail["last_settlement_slot"].as_u64().unwrap_or(0) as i64);
    }

    /// Counts a settlement run's outcome.
    pub fn count(&self, outcome: &str) {
        self.outcomes
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }
}
