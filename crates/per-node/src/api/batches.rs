//! Admin batch operations (bearer admin token; runbook "Scenario 3"): `GET /admin/batches`,
//! `POST /admin/batches/{id}/requeue` (`{reason}`), `POST /admin/batches/{id}/submit`.
//!
//! Requeue and submit are settlement events: logged in the WAL (and the shared log) like every
//! other change, so an operator's decision survives a restart or a failover.

use super::admin::{authorize, counted};
use super::error::ApiError;
use super::state::AppState;
use crate::sequencer::SettleLogError;
use crate::settlement::report::{batch_json, report};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use per_core::{BatchStatus, SettlementEvent};
use serde::Deserialize;
use serde_json::{Value, json};

/// Every unsettled batch, oldest first, with the settlement state.
pub async fn list(
    State(app): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let result = authorize(&app, &headers).and_then(|()| {
        let summary = report(&app.shared);
        let state = app
            .shared
            .read_state()
            .ok_or_else(|| ApiError::Halted("the state is unavailable".to_owned()))?;
        let book = state.settlement();
        Ok(Json(json!({
            "settlement": summary.state,
            "open_batch_txs": book.open.tx_count,
            "next_batch_id": book.next_batch_id,
            "last_settled_batch": book.last_settled.as_ref().map(|s| s.batch_id),
            "batches": book.batches.iter().map(batch_json).collect::<Vec<_>>(),
        })))
    });
    counted(&app, "/admin/batches", result)
}

/// `{reason}` of a requeue.
#[derive(Debug, Deserialize)]
pub struct RequeueBody {
    reason: String,
}

fn parse_id(text: &str) -> Result<u64, ApiError> {
    text.parse()
        .map_err(|_| ApiError::InvalidRequest("batch id must be a positive integer".to_owned()))
}

fn status_of(app: &AppState, batch_id: u64) -> Result<BatchStatus, ApiError> {
    let state = app
        .shared
        .read_state()
        .ok_or_else(|| ApiError::Halted("the state is unavailable".to_owned()))?;
    let book = state.settlement();
    match book.batch(batch_id) {
        Some(batch) => Ok(batch.status.clone()),
        None if batch_id < book.next_batch_id => Err(ApiError::InvalidRequest(format!(
            "batch {batch_id} is already settled on L1"
        ))),
        None => Err(ApiError::NotFound(format!("no batch {batch_id}"))),
    }
}

async fn log(app: &AppState, event: SettlementEvent) -> Result<u64, ApiError> {
    app.sequencer
        .log_settlement(event)
        .await
        .map_err(|error| match error {
            SettleLogError::Refused(m) => ApiError::InvalidRequest(m),
            SettleLogError::Stopped(m) if m.contains("standby") => ApiError::NotPrimary,
            SettleLogError::Stopped(m) => ApiError::Halted(m),
        })
}

/// Moves a batch to `queued` (the settler leaves it, and every later batch, alone).
pub async fn requeue(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<RequeueBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let result = async {
        authorize(&app, &headers)?;
        let batch_id = parse_id(&id)?;
        let Json(body) = body
            .map_err(|_| ApiError::InvalidRequest("body must be {\"reason\": \"…\"}".to_owned()))?;
        status_of(&app, batch_id)?;
        let seq = log(
            &app,
            SettlementEvent::Queued {
                batch_id,
                reason: body.reason,
                at_ms: crate::clock::unix_millis(),
            },
        )
        .await?;
        tracing::warn!(batch_id, seq, "batch requeued by an operator");
        Ok(Json(
            json!({ "batch_id": batch_id, "state": "queued", "seq": seq }),
        ))
    }
    .await;
    counted(&app, "/admin/batches/{id}/requeue", result)
}

/// Releases a queued batch for submission and wakes the settler.
pub async fn submit(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let result = async {
        authorize(&app, &headers)?;
        let batch_id = parse_id(&id)?;
        let status = status_of(&app, batch_id)?;
        let summary = report(&app.shared);
        if summary.state != "active" {
            return Err(ApiError::L1Unavailable(format!(
                "settlement is {}: batches are held, not submitted",
                summary.state
            )));
        }
        let seq = match status {
            BatchStatus::Queued { .. } => Some(
                log(
                    &app,
                    SettlementEvent::Released {
                        batch_id,
                        at_ms: crate::clock::unix_millis(),
                    },
                )
                .await?,
            ),
            BatchStatus::Sealed | BatchStatus::Submitted => None,
        };
        if let Some(status) = app.shared.settlement.get() {
            status.wake.notify_one();
        }
        tracing::info!(batch_id, "batch released for submission by an operator");
        let state = status_of(&app, batch_id).map_or("settled", |s| s.name());
        Ok(Json(
            json!({ "batch_id": batch_id, "state": state, "seq": seq }),
        ))
    }
    .await;
    counted(&app, "/admin/batches/{id}/submit", result)
}
