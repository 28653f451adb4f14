//! `/health` (the runbook's `HealthStatus`, field names exact, plus extensions), `/livez`,
//! `/readyz` and `/metrics`.
//!
//! The body is [`per_wire::health::HealthReport`], the type every reader deserializes.
//!
//! Features that are not built yet are reported as such (`"disabled"`), never as working.

use super::state::AppState;
use crate::clock::unix_secs;
use crate::status::writes::WriteRefusal;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use per_wire::health::{HealthReport, HealthStatus};
use std::sync::atomic::Ordering;

/// Derives the status from the runbook's thresholds.
pub async fn health(State(app): State<AppState>) -> Response {
    let shared = &app.shared;
    let now = unix_secs();
    let poisoned = shared.flags.poisoned.load(Ordering::Acquire);
    let fenced = shared.is_fenced();
    let (seq, root) = match shared.read_state() {
        Some(state) => (state.seq(), Some(state.root())),
        None => (0, None),
    };
    let halted = shared.flags.halted.load(Ordering::Acquire);
    // Snapshot lag: 0 while the newest snapshot holds the current seq, else the age of that
    // snapshot (or of the process, before the first one).
    let (snapshot_lag, snapshots_mode) = match shared.snapshot_lag_secs(seq) {
        Some(lag) => (lag, "enabled"),
        None => (now.saturating_sub(shared.started_at_secs), "disabled"),
    };
    let snapshot_failures = shared
        .snapshots
        .as_ref()
        .map_or(0, |s| s.failures.load(Ordering::Relaxed));
    let settlement = crate::settlement::report::report(shared);
    let pending_tx_count = settlement.pending_tx_count;
    let mut reasons = Vec::new();
    let mut status = HealthStatus::Healthy;
    let replication_lag_secs = shared.replication_lag_secs();
    if fenced {
        status = HealthStatus::Critical;
        reasons.push(
            "lost the lease (fenced by a newer epoch, or the lease could not be renewed): no more acknowledgements; the node is exiting to restart as a standby"
                .to_owned(),
        );
    } else if poisoned {
        status = HealthStatus::Critical;
        reasons.push("WAL writer poisoned by an I/O failure; the node is exiting".to_owned());
    } else if halted {
        status = HealthStatus::Critical;
        reasons.push("writes halted by an operator (POST /admin/resume to resume)".to_owned());
    }
    if let Some(lag) = replication_lag_secs
        && lag > crate::ha::REPLICATION_LAG_DEGRADED_SECS
        && !fenced
    {
        if status == HealthStatus::Healthy {
            status = HealthStatus::Degraded;
        }
        reasons.push(format!(
            "standby is {lag} s behind the shared log (or cannot reach it)"
        ));
    }
    if !poisoned && !fenced {
        if snapshot_lag > shared.snapshot_lag_degraded_secs_max {
            if status == HealthStatus::Healthy {
                status = HealthStatus::Degraded;
            }
            reasons.push(format!(
                "snapshot lag {snapshot_lag} s exceeds {} s ({snapshot_failures} snapshot failures since start)",
                shared.snapshot_lag_degraded_secs_max
            ));
        }
        if let Some(snapshots) = &shared.snapshots {
            let behind = snapshots.writer_lag_secs();
            let bound = snapshots.behind_secs_max.load(Ordering::Relaxed);
            if behind > bound {
                if status == HealthStatus::Healthy {
                    status = HealthStatus::Degraded;
                }
                reasons.push(format!(
                    "the snapshot writer is {behind} s behind the sequencer (bound snapshot_behind_secs_max = {bound} s)"
                ));
            }
        }
        for reason in &settlement.degraded {
            if status == HealthStatus::Healthy {
                status = HealthStatus::Degraded;
            }
            reasons.push(reason.clone());
        }
    }
    let draining = shared.is_draining();
    let queue_depth = shared.in_flight_writes.load(Ordering::Acquire);
    if draining && !fenced && !poisoned {
        if status == HealthStatus::Healthy {
            status = HealthStatus::Degraded;
        }
        reasons.push(format!(
            "draining: not accepting new writes ({queue_depth} in flight); POST /admin/resume to undo"
        ));
    }
    let redis = if !shared.redis.configured.load(Ordering::Acquire) {
        "disabled"
    } else if shared.redis.ok.load(Ordering::Acquire) {
        "ok"
    } else {
        let error = shared
            .redis
            .last_error
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default();
        if !fenced && !poisoned {
            if status == HealthStatus::Healthy {
                status = HealthStatus::Degraded;
            }
            reasons.push(format!(
                "redis state cache unavailable ({error}); writes are unaffected"
            ));
        }
        "unavailable"
    };
    // Backups: the data dir itself (`local`: its newest snapshot), then every remote target. A
    // remote target failing or behind for longer than `backup_lag_max_secs` degrades, never
    // more: acknowledgements never wait for a backup.
    let (mut backups, backup_reasons) = shared.backups.health(now);
    backups.insert(
        "local".to_owned(),
        crate::status::backups::TargetHealth {
            last_success: shared
                .snapshots
                .as_ref()
                .map_or(0, |s| s.last_unix_secs.load(Ordering::Relaxed)),
            lag_secs: 0,
            pending: 0,
            last_error: None,
            uploaded: None,
            conflicts: None,
            archived_seq: None,
            archive_lag_seqs: None,
            archive_lag_secs: None,
            archive_generation: None,
        },
    );
    if !backup_reasons.is_empty() && !fenced && !poisoned {
        if status == HealthStatus::Healthy {
            status = HealthStatus::Degraded;
        }
        reasons.extend(backup_reasons);
    }
    // HA problems (crate::status::ha::HaAlerts): a refused shared-log group, an unauthenticated log.
    for (critical, reason) in shared.ha_alerts.list() {
        if critical {
            status = HealthStatus::Critical;
        } else if status == HealthStatus::Healthy {
            status = HealthStatus::Degraded;
        }
        reasons.push(reason);
    }
    if shared.flags.shutting_down.load(Ordering::Acquire) {
        reasons.push("shutting down: not accepting writes".to_owned());
    }
    // TEE attestation (DESIGN §9): required and not valid → critical (writes halted); a real
    // provider that failed without being required → degraded; provider `none` → not attested.
    let attestation = shared.attestation.get();
    if let Some(attestation) = &attestation {
        let failures = match attestation.consecutive_failures {
            0 | 1 => String::new(),
            n => format!(" ({n} checks in a row)"),
        };
        if attestation.blocks_writes() {
            status = HealthStatus::Critical;
            reasons.push(format!(
                "writes halted: TEE attestation ({}) not valid and required{failures}: {}; writes resume when a check is valid again",
                attestation.provider.as_str(),
                attestation.detail
            ));
        } else if !attestation.valid && attestation.provider != crate::attestation::Provider::None {
            if status == HealthStatus::Healthy {
                status = HealthStatus::Degraded;
            }
            reasons.push(format!(
                "TEE attestation ({}) not valid{failures}: {}",
                attestation.provider.as_str(),
                attestation.detail
            ));
        }
    }
    let (tee_attestation_valid, tee_attestation, tee_attestation_checked_at) = match &attestation {
        None => (false, "none", None),
        Some(a) => (a.valid, a.provider.as_str(), Some(a.last_checked_secs)),
    };
    let body = HealthReport {
        status,
        last_heartbeat: shared.last_heartbeat_secs.load(Ordering::Relaxed),
        pending_tx_count,
        last_settlement: settlement.last_settlement,
        snapshot_lag,
        tee_attestation_valid,
        role: shared.role().as_str().to_owned(),
        epoch: shared.epoch(),
        seq,
        merkle_root: root,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        replication_lag_secs,
        backups: backups.into_iter().collect(),
        wal_writer: if fenced {
            "fenced"
        } else if poisoned {
            "poisoned"
        } else {
            "ok"
        }
        .to_owned(),
        accepting_writes: shared.accepting_writes(),
        draining,
        queue_depth,
        redis: redis.to_owned(),
        snapshots: snapshots_mode.to_owned(),
        settlement: settlement.state.to_owned(),
        settlement_lag_secs: settlement.lag_secs,
        settlement_detail: settlement.detail,
        proof_generation: "disabled".to_owned(),
        tee_attestation: tee_attestation.to_owned(),
        tee_attestation_checked_at,
        reasons,
        shared_log: shared.ha_alerts.shared_log().map(str::to_owned),
    };
    let code = if status == HealthStatus::Critical {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    shared.metrics.count_request("/health", status.as_str());
    (code, Json(body)).into_response()
}

/// 200 while the process serves requests.
pub async fn livez() -> &'static str {
    "ok\n"
}

/// 200 only while this node accepts writes (the load balancer routes by it): a standby, a fenced
/// or poisoned node, a halted or draining one answer 503.
pub async fn readyz(State(app): State<AppState>) -> Response {
    let not_ready = |text: &'static str| (StatusCode::SERVICE_UNAVAILABLE, text).into_response();
    match app.shared.write_refusal() {
        None => (StatusCode::OK, "ready\n").into_response(),
        Some(WriteRefusal::Draining) => not_ready("draining\n"),
        Some(WriteRefusal::Standby) => not_ready("standby: not accepting writes\n"),
        Some(_) => not_ready("not accepting writes\n"),
    }
}

/// Prometheus text exposition. Gauges derived from status are refreshed at scrape time.
pub async fn metrics(State(app): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    let shared = &app.shared;
    let metrics = &shared.metrics;
    metrics.epoch.set(shared.epoch() as i64);
    metrics
        .halted
        .set(i64::from(shared.flags.halted.load(Ordering::Acquire)));
    if let Some(status) = &shared.snapshots {
        let seq = shared.read_state().map_or(0, |s| s.seq());
        let age = shared.snapshot_lag_secs(seq).unwrap_or(0);
        let last_seq = status.last_seq.load(Ordering::Relaxed);
        metrics.snapshot_age.set(age as i64);
        metrics.snapshot_seq.set(last_seq as i64);
        metrics
            .snapshot_failures
            .set(status.failures.load(Ordering::Relaxed) as i64);
        metrics
            .snapshot_write_duration
            .set(status.last_write_micros.load(Ordering::Relaxed) as f64 / 1e6);
    }
    metrics.snapshots.refresh(shared.snapshots.as_deref());
    metrics
        .settlement
        .refresh(&crate::settlement::report::report(shared));
    let openmetrics = app.shared.metrics.encode();
    let wants_openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/openmetrics-text"));
    if wants_openmetrics {
        (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            openmetrics,
        )
            .into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            crate::metrics::openmetrics_to_prometheus_text(&openmetrics),
        )
            .into_response()
    }
}
