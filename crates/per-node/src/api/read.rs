//! Reads of durable state: `/pool/info`, `/merkle/proof/{i}`, `/receipt/{id}`.

use super::error::ApiError;
use super::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use per_core::{Field, TREE_DEPTH};
use per_wire::wire::TxResponse;
use serde::Serialize;

fn unavailable() -> ApiError {
    ApiError::Halted("the node's state is unavailable after a write failure".to_owned())
}

/// `GET /pool/info`.
#[derive(Debug, Serialize)]
pub struct PoolInfo {
    merkle_root: Field,
    tree_depth: usize,
    next_leaf_index: u64,
    nullifier_count: usize,
    pending_nullifiers: usize,
    seq: u64,
    epoch: u64,
    role: &'static str,
    last_settlement_slot: u64,
    proof_generation: &'static str,
    settlement: &'static str,
    /// Extension: transactions in the log (`seq` also counts settlement records).
    transactions: u64,
    /// Extension: settlement records in the log (batch seals, submissions, confirmations…).
    settlement_events: u64,
}

/// The pool's public summary.
pub async fn pool_info(State(app): State<AppState>) -> Result<Json<PoolInfo>, ApiError> {
    let state = app.shared.read_state().ok_or_else(unavailable)?;
    let info = PoolInfo {
        merkle_root: state.root(),
        tree_depth: TREE_DEPTH,
        next_leaf_index: state.tree().next_index(),
        nullifier_count: state.nullifier_count(),
        pending_nullifiers: state.pending_nullifiers().len(),
        seq: state.seq(),
        transactions: state.seq() - state.settlement().events,
        settlement_events: state.settlement().events,
        epoch: app.shared.epoch(),
        role: app.shared.role().as_str(),
        last_settlement_slot: state
            .settlement()
            .last_settled
            .as_ref()
            .map_or(0, |s| s.slot),
        proof_generation: "disabled",
        settlement: app
            .shared
            .settlement
            .get()
            .map_or("disabled", |s| s.state().as_str()),
    };
    drop(state);
    app.shared.metrics.count_request("/pool/info", "ok");
    Ok(Json(info))
}

/// `GET /merkle/proof/{leaf_index}`.
#[derive(Debug, Serialize)]
pub struct MerkleProof {
    leaf_index: u64,
    leaf: Field,
    siblings: Vec<Field>,
    root: Field,
}

/// A leaf's sibling path, consistent with the root it returns.
pub async fn merkle_proof(
    State(app): State<AppState>,
    Path(leaf_index): Path<String>,
) -> Result<Json<MerkleProof>, ApiError> {
    let result = (|| {
        let index: u64 = leaf_index.parse().map_err(|_| {
            ApiError::InvalidRequest("leaf_index must be a non-negative integer".to_owned())
        })?;
        let state = app.shared.read_state().ok_or_else(unavailable)?;
        let (leaf, siblings) = state
            .proof(index)
            .ok_or_else(|| ApiError::NotFound(format!("leaf {index} has never been assigned")))?;
        Ok(Json(MerkleProof {
            leaf_index: index,
            leaf,
            siblings: siblings.to_vec(),
            root: state.root(),
        }))
    })();
    let outcome = result
        .as_ref()
        .map_or_else(|e: &ApiError| e.name(), |_| "ok");
    app.shared
        .metrics
        .count_request("/merkle/proof/{leaf_index}", outcome);
    result
}

/// The original response of an accepted transaction, with its status.
pub async fn receipt(
    State(app): State<AppState>,
    Path(receipt_id): Path<String>,
) -> Result<Json<TxResponse>, ApiError> {
    let result = (|| {
        let mut id = [0u8; 32];
        hex::decode_to_slice(&receipt_id, &mut id)
            .map_err(|_| ApiError::InvalidRequest("receipt_id must be 64 hex digits".to_owned()))?;
        let state = app.shared.read_state().ok_or_else(unavailable)?;
        let receipt = state
            .receipt(&id)
            .ok_or_else(|| ApiError::NotFound("no receipt with this id".to_owned()))?;
        let mut response = TxResponse::from_receipt(receipt);
        let book = state.settlement();
        match book.settled_batch_of(receipt.seq) {
            Some(batch_id) => {
                response.status = Some("settled".to_owned());
                response.batch_id = Some(batch_id);
            }
            None => {
                response.status = Some("committed".to_owned());
                response.batch_id = book.unsettled_batch_of(receipt.seq);
            }
        }
        response.kind = Some(receipt.kind.as_str().to_owned());
        Ok(Json(response))
    })();
    let outcome = result
        .as_ref()
        .map_or_else(|e: &ApiError| e.name(), |_| "ok");
    app.shared
        .metrics
        .count_request("/receipt/{receipt_id}", outcome);
    result
}
