//! `POST /deposit`, `/transfer`, `/withdraw`: parse, prepare (hash) off the sequencer, submit, and
//! answer once the transaction is durable.

use super::error::ApiError;
use super::parse::parse_json;
use super::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, header};
use per_core::TxRequest;
use per_wire::wire::{DepositBody, TransferBody, TxResponse, WithdrawBody};

async fn submit(
    state: &AppState,
    route: &str,
    request: Result<TxRequest, ApiError>,
) -> Result<Json<TxResponse>, ApiError> {
    let result: Result<Json<TxResponse>, ApiError> = async {
        let request = request?;
        // Hashing (commitments, nullifier: ~6 permutations) runs here, on the runtime's workers,
        // so the sequencer only looks things up.
        let prepared = request.prepare()?;
        let receipt = state.sequencer.submit(prepared).await?;
        Ok(Json(TxResponse::from_receipt(&receipt)))
    }
    .await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) => e.name(),
    };
    state.shared.metrics.count_request(route, outcome);
    result
}

/// Mints a note for an L1 deposit; requires the deposit token.
pub async fn deposit(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<TxResponse>, ApiError> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let request = if state.shared.deposit_token.matches_header(authorization) {
        parse_json::<DepositBody>(body).and_then(|b| b.parse().map_err(ApiError::InvalidRequest))
    } else {
        Err(ApiError::Unauthorized)
    };
    submit(&state, "/deposit", request).await
}

/// Spends a note into a receiver note and optional change.
pub async fn transfer(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<TxResponse>, ApiError> {
    let request =
        parse_json::<TransferBody>(body).and_then(|b| b.parse().map_err(ApiError::InvalidRequest));
    submit(&state, "/transfer", request).await
}

/// Spends a note to an L1 recipient, with change for the rest.
pub async fn withdraw(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<TxResponse>, ApiError> {
    let request =
        parse_json::<WithdrawBody>(body).and_then(|b| b.parse().map_err(ApiError::InvalidRequest));
    submit(&state, "/withdraw", request).await
}
