//! The runbook's settlement-batch procedures against a running node: `list_queued_batches`,
//! `requeue_batch` and `submit_queued_batch` (`/admin/batches`). Decisions are WAL records on the
//! node, so they survive restarts and failovers.

use crate::error::ProcedureError;
use crate::node_client::NodeClient;
use crate::report::Report;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// `list_queued_batches --json` (CONTRACT.md): the batches as the node lists them.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BatchList {
    /// `{batch_id, state, seq_first, seq_last, reason?, …}` per batch.
    pub batches: Vec<Value>,
    /// The node's settlement state (`disabled`, `ok`, …).
    pub settlement: Value,
}

/// `requeue_batch --json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Requeued {
    /// Always true (failures are errors).
    pub ok: bool,
    /// The batch.
    pub batch_id: u64,
    /// `queued`.
    pub state: &'static str,
    /// The WAL seq of the decision.
    pub seq: Value,
}

/// `submit_queued_batch --json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Submitted {
    /// Settled (or not waited for).
    pub ok: bool,
    /// The batch.
    pub batch_id: u64,
    /// Its last known state.
    pub state: String,
    /// Why it was queued again, if it was.
    pub reason: Value,
    /// Seconds from the release to the outcome.
    pub elapsed_secs: f64,
}

/// Maps an admin batch call's failure: not the primary or L1 unavailable is a refusal (exit 4),
/// anything else a problem (exit 1).
pub fn batch_call_result(status: u16, body: &Value) -> Result<(), ProcedureError> {
    let message = body["message"].as_str().unwrap_or("").to_owned();
    match (status, body["error"].as_str()) {
        (200..=299, _) => Ok(()),
        (_, Some("NotPrimary")) => Err(ProcedureError::Refused(format!(
            "not the primary: {message}"
        ))),
        (_, Some("L1Unavailable")) => Err(ProcedureError::Refused(message)),
        _ => Err(ProcedureError::Problem(format!("HTTP {status}: {message}"))),
    }
}

/// The batches waiting for an operator (`all`: every unsettled batch).
pub fn list(node: &NodeClient, all: bool) -> Result<Report, ProcedureError> {
    let (status, body) = node.admin_call(reqwest::Method::GET, "/admin/batches", None)?;
    if status != 200 {
        return Err(ProcedureError::Problem(format!(
            "GET /admin/batches answered HTTP {status}: {}",
            body["message"].as_str().unwrap_or("")
        )));
    }
    let batches: Vec<Value> = body["batches"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|b| all || b["state"] == "queued")
        .collect();
    let mut human = String::new();
    if batches.is_empty() {
        human.push_str(if all {
            "no unsettled batch"
        } else {
            "no queued batch"
        });
    }
    for batch in &batches {
        human.push_str(&format!(
            "batch {} {} seq {}..={} ({} tx){}\n",
            batch["batch_id"],
            batch["state"].as_str().unwrap_or("?"),
            batch["seq_first"],
            batch["seq_last"],
            batch["tx_count"],
            batch["reason"]
                .as_str()
                .map(|r| format!(": {r}"))
                .unwrap_or_default(),
        ));
    }
    human.push_str(&format!(
        "settlement: {}",
        body["settlement"].as_str().unwrap_or("?")
    ));
    let list = BatchList {
        batches,
        settlement: body["settlement"].clone(),
    };
    Report::typed(0, &list, human.trim_end().to_owned())
}

/// Parks batch `batch_id` as queued with `reason` (≤ 256 bytes, else a usage error).
pub fn requeue(node: &NodeClient, batch_id: u64, reason: &str) -> Result<Report, ProcedureError> {
    if reason.len() > per_core::settlement::REASON_BYTES_MAX {
        return Err(ProcedureError::Usage(
            "--reason is longer than 256 bytes".to_owned(),
        ));
    }
    let path = format!("/admin/batches/{batch_id}/requeue");
    let (status, body) = node.admin_call(
        reqwest::Method::POST,
        &path,
        Some(&json!({ "reason": reason })),
    )?;
    batch_call_result(status, &body)?;
    let requeued = Requeued {
        ok: true,
        batch_id,
        state: "queued",
        seq: body["seq"].clone(),
    };
    Report::typed(0, &requeued, format!("batch {batch_id} queued ({reason})"))
}

/// Releases queued batch `batch_id` and waits up to `timeout_secs` (0: not at all) until it
/// settles on L1 or is queued again; exit 1 when it did not settle in time.
pub fn submit(
    node: &NodeClient,
    batch_id: u64,
    timeout_secs: u64,
) -> Result<Report, ProcedureError> {
    let started = Instant::now();
    let path = format!("/admin/batches/{batch_id}/submit");
    let (status, body) = node.admin_call(reqwest::Method::POST, &path, None)?;
    batch_call_result(status, &body)?;
    let deadline = started + Duration::from_secs(timeout_secs);
    let mut state = body["state"].as_str().unwrap_or("submitted").to_owned();
    let mut reason = Value::Null;
    // The release itself takes the batch out of `queued`; it can only come back by failing.
    while state != "settled" && timeout_secs > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        let (code, listing) = node.admin_call(reqwest::Method::GET, "/admin/batches", None)?;
        if code != 200 {
            continue;
        }
        let batches = listing["batches"].as_array().cloned().unwrap_or_default();
        match batches.iter().find(|b| b["batch_id"] == batch_id) {
            None => state = "settled".to_owned(),
            Some(batch) => {
                state = batch["state"].as_str().unwrap_or("?").to_owned();
                if state == "queued" {
                    reason = batch["reason"].clone();
                    break;
                }
            }
        }
    }
    let settled = state == "settled";
    let waited = timeout_secs > 0;
    let human = match (settled, state.as_str()) {
        (true, _) => format!("batch {batch_id} settled on L1"),
        (false, "queued") => format!(
            "batch {batch_id} failed again and is queued: {}",
            reason.as_str().unwrap_or("")
        ),
        _ => format!("batch {batch_id} is {state}"),
    };
    let ok = settled || !waited;
    let submitted = Submitted {
        ok,
        batch_id,
        state,
        reason,
        elapsed_secs: started.elapsed().as_secs_f64(),
    };
    Report::typed(u8::from(!ok), &submitted, human)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_call_failures_map_to_refusals_or_problems() {
        assert!(batch_call_result(200, &json!({})).is_ok());
        let not_primary = batch_call_result(409, &json!({"error": "NotPrimary", "message": "m"}));
        assert!(
            matches!(not_primary, Err(ProcedureError::Refused(ref m)) if m == "not the primary: m")
        );
        let other = batch_call_result(404, &json!({"error": "UnknownBatch", "message": "x"}));
        assert_eq!(other.map_err(|e| e.exit_code()).err(), Some(1));
    }

    #[test]
    fn reports_have_the_contract_shapes() {
        let list = BatchList {
            batches: vec![json!({"batch_id": 1, "state": "queued"})],
            settlement: json!("ok"),
        };
        assert_eq!(
            serde_json::to_value(&list).unwrap(),
            json!({"batches": [{"batch_id": 1, "state": "queued"}], "settlement": "ok"})
        );
        let requeued = Requeued {
            ok: true,
            batch_id: 4,
            state: "queued",
            seq: json!(17),
        };
        assert_eq!(
            serde_json::to_value(&requeued).unwrap(),
            json!({"ok": true, "batch_id": 4, "state": "queued", "seq": 17})
        );
        let submitted = Submitted {
            ok: false,
            batch_id: 4,
            state: "queued".into(),
            reason: json!("RPC_FAILURE"),
            elapsed_secs: 0.5,
        };
        assert_eq!(
            serde_json::to_value(&submitted).unwrap(),
            json!({"ok": false, "batch_id": 4, "state": "queued", "reason": "RPC_FAILURE", "elapsed_secs": 0.5})
        );
    }
}
