//! The HTTP API of CONTRACT.md (axum). One file per endpoint group; this file only routes.
//!
//! Request bodies are never logged: the trace layer records method, route, status and latency only.

pub mod admin;
pub mod batches;
pub mod body;
pub mod error;
pub mod front_door;
pub mod health;
pub mod read;
pub mod tx;
/// The JSON types live in `per-wire` (clients share them); re-exported so handlers say `api::wire`.
pub use per_wire::wire;

use crate::node::shared::Shared;
use crate::sequencer::SequencerHandle;
use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::routing::{get, post};
use error::ApiError;
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// What every handler gets.
#[derive(Clone)]
pub struct AppState {
    /// Shared node context.
    pub shared: Arc<Shared>,
    /// The write path.
    pub sequencer: SequencerHandle,
}

/// Builds the router with the body bounds.
pub fn router(state: AppState, body_limits: body::BodyLimits) -> Router {
    // Write requests read their whole body first (bounded in size and time), then count as in
    // flight, so a drain knows when they are all answered and a slow body never holds it.
    let writes = Router::new()
        .route("/deposit", post(tx::deposit))
        .route("/transfer", post(tx::transfer))
        .route("/withdraw", post(tx::withdraw))
        .route_layer(axum::middleware::from_fn_with_state(
            body::WriteGate {
                app: state.clone(),
                limits: body_limits,
            },
            body::read_then_count,
        ));
    let body_bytes_max = body_limits.bytes_max;
    Router::new()
        .merge(writes)
        .route("/pool/info", get(read::pool_info))
        .route("/merkle/proof/{leaf_index}", get(read::merkle_proof))
        .route("/receipt/{receipt_id}", get(read::receipt))
        .route("/health", get(health::health))
        .route("/livez", get(health::livez))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/admin/halt", post(admin::halt))
        .route("/admin/resume", post(admin::resume))
        .route("/admin/drain", post(admin::drain))
        .route("/admin/snapshot", post(admin::snapshot))
        .route("/admin/batches", get(batches::list))
        .route("/admin/batches/{id}/requeue", post(batches::requeue))
        .route("/admin/batches/{id}/submit", post(batches::submit))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(body_bytes_max))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint".to_owned())
}

/// Reads a JSON body, mapping the size limit to `PayloadTooLarge` and anything unparsable to
/// `InvalidRequest` (the message names the problem, never echoes the body).
pub fn parse_json<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let bytes = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::InvalidRequest("could not read the request body".to_owned())
        }
    })?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::InvalidRequest(json_error_message(&e)))
}

/// A parse error's message without the offending value: serde quotes values in "invalid type" and
/// "invalid value" errors, and a value may be a secret. Field names and positions are kept.
fn json_error_message(error: &serde_json::Error) -> String {
    let at = format!("line {} column {}", error.line(), error.column());
    match error.classify() {
        serde_json::error::Category::Data => {
            let text = error.to_string();
            if text.starts_with("invalid type") || text.starts_with("invalid value") {
                let expected = text
                    .split_once(", expected ")
                    .map(|(_, rest)| rest.split(" at line ").next().unwrap_or(rest))
                    .unwrap_or("another type");
                format!("invalid JSON body: wrong type or value at {at}, expected {expected}")
            } else {
                format!("invalid JSON body: {text}")
            }
        }
        serde_json::error::Category::Syntax => format!("malformed JSON at {at}"),
        serde_json::error::Category::Eof => "truncated JSON body".to_owned(),
        serde_json::error::Category::Io => "could not read the request body".to_owned(),
    }
}
