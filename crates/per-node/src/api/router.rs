//! The routes of CONTRACT.md's HTTP API, and the body limits around them.

use super::error::ApiError;
use super::state::AppState;
use super::{admin, batches, body, health, read, tx};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

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
