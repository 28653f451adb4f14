//! `/health` (the runbook's `HealthStatus`, field names exact, plus extensions), `/livez`,
//! `/readyz` and `/metrics`.
//!
//! Features that are not built yet are reported as such (`"disabled"`), never as working.

use super::AppState;
use crate::node::unix_secs;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use per_core::Field;
use serde::Serialize;
use std::sync::atomic::Ordering;

/// The runbook's `HealthStatus` with our extensions.
#[derive(Debug, Serialize)]
pub struct Health {
    status: &'static str,
    last_heartbeat: u64,
    pending_tx_count: u64,
    last_settlement: u64,
    snapshot_lag: u64,
    tee_attestation_valid: bool,
    role: &'static str,
    epoch: u64,
    seq: u64,
    merkle_root: Option<Field>,
    version: &'static str,
    replication_lag_secs: Option<u64>,
    backups: Vec<String>,
    wal_writer: &'static str,
    accepting_writes: bool,
    snapshots: &'static str,
    settlement: &'static str,
    proof_generation: &'static str,
    tee_attestation: &'static str,
    reasons: Vec<String>,
}

/// Derives the status from the runbook's thresholds.
pub async fn health(State(app): State<AppState>) -> Response {
    let shared = &app.shared;
    let now = unix_secs();
    let poisoned = shared.flags.poisoned.load(Ordering::Acquire);
    let (seq, root) = match shared.read_state() {
        Some(state) => (state.seq(), Some(state.root())),
        None => (0, None),
    };
    // No snapshots exist yet, so the lag counts from the node's start (recovery replays the WAL).
    let snapshot_lag = now.saturating_sub(shared.started_at_secs);
    // Nothing settles yet, so every accepted transaction is pending.
    let pending_tx_count = seq;
    let mut reasons = Vec::new();
    let mut status = "healthy";
    if poisoned {
        status = "critical";
        reasons.push("WAL writer poisoned by an I/O failure; the node is exiting".to_owned());
    } else {
        if snapshot_lag > shared.snapshot_lag_degraded_secs_max {
            status = "degraded";
            reasons.push(format!(
                "no snapshot for {snapshot_lag} s (snapshots are not implemented yet; recovery replays the WAL)"
            ));
        }
        if pending_tx_count > shared.pending_tx_degraded_max {
            status = "degraded";
            reasons.push(format!(
                "{pending_tx_count} transactions not settled (settlement is disabled)"
            ));
        }
    }
    if shared.flags.shutting_down.load(Ordering::Acquire) {
        reasons.push("shutting down: not accepting writes".to_owned());
    }
    let body = Health {
        status,
        last_heartbeat: shared.last_heartbeat_secs.load(Ordering::Relaxed),
        pending_tx_count,
        last_settlement: 0,
        snapshot_lag,
        tee_attestation_valid: false,
        role: shared.role.as_str(),
        epoch: shared.epoch,
        seq,
        merkle_root: root,
        version: env!("CARGO_PKG_VERSION"),
        replication_lag_secs: None,
        backups: Vec::new(),
        wal_writer: if poisoned { "poisoned" } else { "ok" },
        accepting_writes: shared.accepting_writes(),
        snapshots: "disabled",
        settlement: "disabled",
        proof_generation: "disabled",
        tee_attestation: "none",
        reasons,
    };
    let code = if status == "critical" {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    shared.metrics.count_request("/health", status);
    (code, Json(body)).into_response()
}

/// 200 while the process serves requests.
pub async fn livez() -> &'static str {
    "ok\n"
}

/// 200 only while this node accepts writes (the load balancer routes by it).
pub async fn readyz(State(app): State<AppState>) -> Response {
    if app.shared.accepting_writes() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not accepting writes\n").into_response()
    }
}

/// Prometheus text exposition.
pub async fn metrics(State(app): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.shared.metrics.encode(),
    )
        .into_response()
}
