//! `GET /health` as a type: the runbook's `HealthStatus` (field names exact) with our extensions.
//!
//! The node builds a [`HealthReport`] and serializes it (`per-node`'s `api/health.rs`), and every
//! reader (`per monitor`, `per healthcheck`, `per failover`, tests) deserializes the same type, so
//! producer and readers cannot drift. Readers are tolerant: only `status` is required (a field
//! an older node does not send takes its default) and a field they do not know is ignored, as
//! before when they read loose JSON.

use per_core::Field;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The node's own verdict (`/health` answers HTTP 503 for `critical`, else 200).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Everything works.
    Healthy,
    /// Writes are acknowledged, but something needs an operator (`reasons` says what).
    Degraded,
    /// Writes are not acknowledged (halted, poisoned, fenced, attestation required and failing).
    Critical,
}

impl HealthStatus {
    /// The JSON name (`healthy`, `degraded`, `critical`).
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "healthy",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Critical => "critical",
        }
    }
}

impl std::fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `/health` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    /// `healthy` | `degraded` | `critical`.
    pub status: HealthStatus,
    /// Unix seconds of the sequencer's last heartbeat.
    #[serde(default)]
    pub last_heartbeat: u64,
    /// Transactions not settled on L1 yet.
    #[serde(default)]
    pub pending_tx_count: u64,
    /// Unix seconds of the last confirmed settlement (0: none).
    #[serde(default)]
    pub last_settlement: u64,
    /// Seconds since the newest snapshot (0 while it holds the current seq).
    #[serde(default)]
    pub snapshot_lag: u64,
    /// Whether the last TEE attestation check passed (always false with provider `none`).
    #[serde(default)]
    pub tee_attestation_valid: bool,
    /// `single` | `primary` | `standby`.
    #[serde(default)]
    pub role: String,
    /// The HA epoch (0 outside HA).
    #[serde(default)]
    pub epoch: u64,
    /// The last durable seq.
    #[serde(default)]
    pub seq: u64,
    /// The durable merkle root (`null` before recovery ends).
    #[serde(default)]
    pub merkle_root: Option<Field>,
    /// The node's version.
    #[serde(default)]
    pub version: String,
    /// A standby's distance behind the shared log (`null` when not a standby).
    #[serde(default)]
    pub replication_lag_secs: Option<u64>,
    /// Per backup target (`local`: the data dir itself), by name.
    #[serde(default)]
    pub backups: BTreeMap<String, BackupHealth>,
    /// `ok` | `poisoned` | `fenced`.
    #[serde(default)]
    pub wal_writer: String,
    /// Whether a write would be taken now.
    #[serde(default)]
    pub accepting_writes: bool,
    /// Whether the node is draining (`POST /admin/drain`).
    #[serde(default)]
    pub draining: bool,
    /// Writes in flight.
    #[serde(default)]
    pub queue_depth: u64,
    /// `disabled` | `ok` | `unavailable` (the Redis state cache).
    #[serde(default)]
    pub redis: String,
    /// `enabled` | `disabled`.
    #[serde(default)]
    pub snapshots: String,
    /// `disabled` | `blocked_on_prover` | `standby` | `active`.
    #[serde(default)]
    pub settlement: String,
    /// Age of the oldest unsettled sealed batch, seconds (0: none).
    #[serde(default)]
    pub settlement_lag_secs: u64,
    /// Settlement detail for operators (free-form: mode, batch counts, last signature, ...; see
    /// `per-node`'s `settlement/report.rs`). Kept as JSON: no verb decides by it.
    #[serde(default)]
    pub settlement_detail: serde_json::Value,
    /// `disabled` (no prover in the node).
    #[serde(default)]
    pub proof_generation: String,
    /// The attestation provider (`none`, `tdx`, ...).
    #[serde(default)]
    pub tee_attestation: String,
    /// Unix seconds of the last attestation check (`null`: none yet).
    #[serde(default)]
    pub tee_attestation_checked_at: Option<u64>,
    /// Why the status is not `healthy` (operator text).
    #[serde(default)]
    pub reasons: Vec<String>,
    /// HA only: `authenticated` (sealed with the key) or `unauthenticated` (PER_HA_INSECURE_LOG=1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_log: Option<String>,
}

/// One entry of `/health.backups`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupHealth {
    /// Unix seconds of the last success (0: none).
    #[serde(default)]
    pub last_success: u64,
    /// Seconds the oldest pending object has waited (0: nothing pending).
    #[serde(default)]
    pub lag_secs: u64,
    /// Objects not yet copied.
    #[serde(default)]
    pub pending: u64,
    /// The last error, while failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Objects uploaded since start (remote targets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uploaded: Option<u64>,
    /// Objects held by the target with other bytes (remote targets; never overwritten).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflicts: Option<u64>,
    /// Live WAL archiving: the last seq stored in the target (absent: not archiving).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived_seq: Option<u64>,
    /// Live WAL archiving: acknowledged seqs not yet in the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive_lag_seqs: Option<u64>,
    /// Live WAL archiving: seconds the oldest unarchived acknowledged seq has waited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive_lag_secs: Option<u64>,
    /// Live WAL archiving: the generation being written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive_generation: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// A document of the node's shape with every optional section present.
    fn full() -> Value {
        json!({
            "status": "degraded",
            "last_heartbeat": 1_700_000_000u64,
            "pending_tx_count": 12,
            "last_settlement": 1_699_999_000u64,
            "snapshot_lag": 3,
            "tee_attestation_valid": true,
            "role": "primary",
            "epoch": 7,
            "seq": 4242,
            "merkle_root": format!("0x{}", "0".repeat(63) + "5"),
            "version": "0.2.0",
            "replication_lag_secs": null,
            "backups": {
                "local": {"last_success": 1_700_000_000u64, "lag_secs": 0, "pending": 0},
                "s3": {
                    "last_success": 1_699_999_990u64, "lag_secs": 400, "pending": 2,
                    "last_error": "s3: unreachable", "uploaded": 10, "conflicts": 0,
                    "archived_seq": 4240, "archive_lag_seqs": 2, "archive_lag_secs": 1,
                    "archive_generation": "g1"
                }
            },
            "wal_writer": "ok",
            "accepting_writes": true,
            "draining": false,
            "queue_depth": 1,
            "redis": "ok",
            "snapshots": "enabled",
            "settlement": "active",
            "settlement_lag_secs": 30,
            "settlement_detail": {"mode": "memo", "open_batch_txs": 3, "last_error": null},
            "proof_generation": "disabled",
            "tee_attestation": "tdx",
            "tee_attestation_checked_at": 1_700_000_000u64,
            "reasons": ["backup target s3 is 400 s behind (> 300 s): 2 object(s) pending"],
            "shared_log": "authenticated"
        })
    }

    #[test]
    fn a_full_document_round_trips_exactly() {
        let document = full();
        let report: HealthReport = serde_json::from_value(document.clone()).expect("parses");
        assert_eq!(report.status, HealthStatus::Degraded);
        assert_eq!(report.backups["s3"].archived_seq, Some(4240));
        assert_eq!(report.shared_log.as_deref(), Some("authenticated"));
        assert_eq!(serde_json::to_value(&report).expect("serializes"), document);
    }

    #[test]
    fn readers_are_tolerant_but_need_a_known_status() {
        let report: HealthReport =
            serde_json::from_str(r#"{"status": "critical", "added_later": 1}"#).expect("parses");
        assert_eq!(report.status, HealthStatus::Critical);
        assert_eq!(report.merkle_root, None);
        assert!(report.reasons.is_empty());
        // Absent shared_log stays absent.
        let value = serde_json::to_value(&report).expect("serializes");
        assert!(value.get("shared_log").is_none());
        assert!(serde_json::from_str::<HealthReport>(r#"{"status": "fine"}"#).is_err());
        assert!(serde_json::from_str::<HealthReport>(r#"{"role": "primary"}"#).is_err());
        assert!(serde_json::from_str::<HealthReport>("ok\n").is_err());
    }
}
