//! Admin endpoints (bearer admin token): `/admin/halt`, `/admin/resume`, `/admin/drain`,
//! `/admin/snapshot`.
//!
//! Drain (runbook `drain_traffic.sh`, `per drain`) refuses new writes with 503 `Draining` while the
//! in-flight ones finish, turns `/readyz` 503 so the load balancer moves traffic away, and reports
//! `queue_depth` (write requests still being handled); `/health` stays `degraded`, not critical.
//! `/admin/resume` ends both a halt and a drain.
//!
//! Halt stops accepting writes and keeps the state (the runbook's "Service Halt" step 1 without
//! killing the process, so a post-mortem snapshot can still be taken); `/health` turns critical and
//! `/readyz` 503 until resume.

use super::error::ApiError;
use super::state::AppState;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::atomic::Ordering;

/// Checks the admin bearer token.
pub(super) fn authorize(app: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if app.shared.admin_token.matches_header(presented) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// Counts the request by outcome.
pub(super) fn counted(
    app: &AppState,
    route: &str,
    result: Result<Json<Value>, ApiError>,
) -> Result<Json<Value>, ApiError> {
    let outcome = result.as_ref().map_or_else(|e| e.name(), |_| "ok");
    app.shared.metrics.count_request(route, outcome);
    result
}

/// Stops accepting writes; state and reads are kept.
pub async fn halt(
    State(app): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let result = authorize(&app, &headers).map(|()| {
        let was = app.shared.flags.halted.swap(true, Ordering::AcqRel);
        tracing::warn!("writes halted by an operator");
        Json(json!({ "halted": true, "was_halted": was }))
    });
    counted(&app, "/admin/halt", result)
}

/// Accepts writes again after a halt or a drain.
pub async fn resume(
    State(app): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let result = authorize(&app, &headers).map(|()| {
        let was = app.shared.flags.halted.swap(false, Ordering::AcqRel);
        let was_draining = app.shared.flags.draining.swap(false, Ordering::AcqRel);
        tracing::warn!("writes resumed by an operator");
        Json(json!({
            "halted": false,
            "was_halted": was,
            "draining": false,
            "was_draining": was_draining,
            "accepting_writes": app.shared.accepting_writes(),
        }))
    });
    counted(&app, "/admin/resume", result)
}

/// The drain state of a node (also the answer of `POST /admin/drain`).
pub fn drain_status(app: &AppState, was_draining: bool) -> Value {
    let queue_depth = app.shared.in_flight_writes.load(Ordering::Acquire);
    json!({
        "draining": app.shared.is_draining(),
        "was_draining": was_draining,
        "queue_depth": queue_depth,
        "drained": app.shared.is_draining() && queue_depth == 0,
        "accepting_writes": app.shared.accepting_writes(),
        "role": app.shared.role().as_str(),
        "seq": app.shared.read_state().map_or(0, |s| s.seq()),
    })
}

/// Stops accepting new writes (503 `Draining`), lets in-flight ones finish, turns `/readyz` 503.
/// Idempotent: call it again to poll `queue_depth` until `drained` is true.
pub async fn drain(
    State(app): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let result = authorize(&app, &headers).map(|()| {
        let was = app.shared.flags.draining.swap(true, Ordering::AcqRel);
        if !was {
            tracing::warn!("draining: no new writes accepted (POST /admin/resume to undo)");
        }
        Json(drain_status(&app, was))
    });
    counted(&app, "/admin/drain", result)
}

/// `?kind=full|delta` (default full).
#[derive(Debug, Deserialize)]
pub struct SnapshotQuery {
    kind: Option<String>,
}

/// Takes a snapshot now (at the next group boundary) and answers with its path and seq.
pub async fn snapshot(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<SnapshotQuery>,
) -> Result<Json<Value>, ApiError> {
    let result = async {
        authorize(&app, &headers)?;
        let full = match query.kind.as_deref() {
            None | Some("full") => true,
            Some("delta") => false,
            Some(_) => {
                return Err(ApiError::InvalidRequest(
                    "kind must be full or delta".to_owned(),
                ));
            }
        };
        let outcome = app
            .sequencer
            .snapshot(full)
            .await
            .map_err(ApiError::SnapshotFailed)?;
        Ok(Json(json!({
            "path": outcome.path,
            "seq": outcome.seq,
            "kind": outcome.kind,
            "bytes": outcome.bytes,
        })))
    }
    .await;
    counted(&app, "/admin/snapshot", result)
}
