//! The settlement part of `/health`, `/metrics` and `/admin/batches`, derived from the state's
//! settlement book and the settler's status in one place.

use crate::clock::unix_secs;
use crate::node::shared::Shared;
pub use crate::status::settlement::SettlementReport;
use crate::status::settlement::SettlementState;
use per_core::{Batch, BatchStatus};
use serde_json::{Value, json};

/// One batch as the admin API and `list-queued-batches` show it.
pub fn batch_json(batch: &Batch) -> Value {
    let mut value = json!({
        "batch_id": batch.batch_id,
        "state": batch.status.name(),
        "seq_first": batch.seq_first,
        "seq_last": batch.seq_last,
        "tx_count": batch.tx_count,
        "nullifier_count": batch.nullifiers.len(),
        "old_root": batch.old_root,
        "new_root": batch.new_root,
        "nullifiers_root": format!("0x{}", hex::encode(batch.nullifiers_root)),
        "proof_groups": batch.proof_groups(),
        "sealed_at": batch.sealed_at_ms / 1000,
        "submissions": batch.submissions.iter().map(|s| json!({
            "signature": bs58::encode(s.signature).into_string(),
            "last_valid_block_height": s.last_valid_block_height,
            "at": s.at_ms / 1000,
        })).collect::<Vec<_>>(),
    });
    if let BatchStatus::Queued { reason } = &batch.status {
        value["reason"] = json!(reason);
    }
    value
}

/// Computes the report (takes the state's read lock briefly).
pub fn report(shared: &Shared) -> SettlementReport {
    let now = unix_secs();
    let status = shared.settlement.get();
    let state = match status.map_or(SettlementState::Disabled, |s| s.state()) {
        // The settler notices a role change within a second; the role itself is authoritative.
        SettlementState::Active
            if shared.role() == crate::config::DeploymentMode::Standby || shared.is_fenced() =>
        {
            SettlementState::Standby
        }
        state => state,
    };
    let Some(guard) = shared.read_state() else {
        return SettlementReport {
            state: state.as_str(),
            last_settlement: 0,
            pending_tx_count: 0,
            lag_secs: 0,
            detail: json!({}),
            degraded: Vec::new(),
        };
    };
    let book = guard.settlement();
    let pending_tx_count = book.unsettled_tx_count();
    let last_settlement = book.last_settled.as_ref().map_or(0, |s| s.at_ms / 1000);
    let lag_secs = book
        .batches
        .front()
        .map_or(0, |b| now.saturating_sub(b.sealed_at_ms / 1000));
    let count = |name: &str| {
        book.batches
            .iter()
            .filter(|b| b.status.name() == name)
            .count()
    };
    let queued: Vec<(u64, String)> = book
        .batches
        .iter()
        .filter_map(|b| match &b.status {
            BatchStatus::Queued { reason } => Some((b.batch_id, reason.clone())),
            _ => None,
        })
        .collect();
    let last_error = status.and_then(|s| s.last_error());
    let l1_last_ok = status.map_or(0, |s| {
        s.l1_last_ok_secs.load(std::sync::atomic::Ordering::Relaxed)
    });
    let detail = json!({
        "mode": status.map_or("memo", |s| s.mode),
        "open_batch_txs": book.open.tx_count,
        "batches_sealed": count("sealed"),
        "batches_submitted": count("submitted"),
        "batches_queued": queued.len(),
        "next_batch_id": book.next_batch_id,
        "oldest_unsettled_batch": book.batches.front().map(|b| b.batch_id),
        "last_settled_batch": book.last_settled.as_ref().map(|s| s.batch_id),
        "last_settlement_slot": book.last_settled.as_ref().map_or(0, |s| s.slot),
        "last_settlement_signature": book.last_settled.as_ref().map(|s| bs58::encode(s.signature).into_string()),
        "l1_last_ok": l1_last_ok,
        "last_error": last_error,
    });
    let mut degraded = Vec::new();
    for (batch_id, reason) in &queued {
        degraded.push(format!(
            "settlement batch {batch_id} is queued ({reason}): `per submit-queued-batch --batch-id {batch_id}` once L1 is reachable"
        ));
    }
    let lag_max = status.map_or(u64::MAX, |s| s.lag_degraded_secs);
    if state == SettlementState::Active && lag_secs > lag_max {
        degraded.push(format!(
            "settlement lag {lag_secs} s exceeds {lag_max} s (oldest unsettled batch {})",
            book.batches.front().map_or(0, |b| b.batch_id)
        ));
    }
    if state == SettlementState::Active
        && let Some(error) = &last_error
        && now.saturating_sub(l1_last_ok) > 60
    {
        degraded.push(format!("L1 unreachable or refusing settlements: {error}"));
    }
    if pending_tx_count > shared.pending_tx_degraded_max {
        degraded.push(format!(
            "{pending_tx_count} transactions not settled (settlement is {})",
            state.as_str()
        ));
    }
    SettlementReport {
        state: state.as_str(),
        last_settlement,
        pending_tx_count,
        lag_secs,
        detail,
        degraded,
    }
}
