//! The runbook's `find_valid_snapshot --verify-all`: the newest restore point in
//! `<data-dir>/snapshots` whose whole chain loads (newest first; stops at the first valid one
//! unless every one is to be checked, rehashing every leaf).

use crate::data_dir::{Access, DataDir};
use crate::error::ProcedureError;
use crate::node_client::AdminToken;
use crate::report::{Report, progress};
use per_core::TreeCheck;
use per_node::node::recovery;
use per_store::snapshot;

/// What to check.
#[derive(Debug, Clone, Default)]
pub struct FindValidPlan {
    /// Check every snapshot (rehashing every leaf) instead of stopping at the first valid one.
    pub verify_all: bool,
    /// Only the newest N snapshots.
    pub last: Option<u64>,
    /// Work alongside this running node instead of taking the `LOCK`.
    pub url: Option<String>,
    /// The node's admin token.
    pub token: AdminToken,
}

/// What the search found (`--json`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct FindValidReport {
    /// The newest valid restore point, if any.
    pub snapshot: Option<String>,
    /// Its seq.
    pub seq: Option<u64>,
    /// Every snapshot checked, newest first.
    pub checked: Vec<CheckedSnapshot>,
}

/// One snapshot checked.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckedSnapshot {
    /// The file.
    pub path: String,
    /// Whether its whole chain loads.
    pub valid: bool,
    /// Why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Searches: [`FindValidReport`]; exit 1 when none is valid.
pub fn find_valid(data: &DataDir, plan: &FindValidPlan) -> Result<Report, ProcedureError> {
    let _access = Access::acquire(data, plan.url.as_deref(), &plan.token)?;
    data.require_key_for_data_dir()?;
    let dir = data.snapshots_dir();
    let listed = snapshot::list_snapshots(&dir)
        .map_err(|e| ProcedureError::Problem(format!("cannot list snapshots: {e}")))?;
    let limit = plan
        .last
        .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
    let check = if plan.verify_all {
        TreeCheck::Rehash
    } else {
        TreeCheck::StoredNodes
    };
    let candidates: Vec<_> = listed.snapshots.iter().rev().take(limit).collect();
    let mut checked = Vec::new();
    let mut found: Option<(std::path::PathBuf, u64)> = None;
    let mut human = String::new();
    for (i, entry) in candidates.iter().enumerate() {
        progress(format!(
            "checking {} ({}/{})",
            entry.path.display(),
            i + 1,
            candidates.len()
        ));
        let result =
            recovery::load_chain_exact(&dir, &entry.path, data.key(), data.state_limits(), check);
        let mut item = CheckedSnapshot {
            path: entry.path.display().to_string(),
            valid: result.is_ok(),
            error: None,
        };
        match &result {
            Ok((loaded, _)) => {
                human.push_str(&format!(
                    "✓ {} (seq {})\n",
                    entry.path.display(),
                    loaded.tip.0
                ));
                if found.is_none() {
                    found = Some((entry.path.clone(), loaded.tip.0));
                }
            }
            Err(error) => {
                item.error = Some(error.clone());
                human.push_str(&format!("✗ {}: {error}\n", entry.path.display()));
            }
        }
        checked.push(item);
        if found.is_some() && !plan.verify_all {
            break;
        }
    }
    match &found {
        Some((path, seq)) => human.push_str(&format!(
            "newest valid restore point: {} (seq {seq})\n",
            path.display()
        )),
        None => human.push_str(&format!(
            "no valid restore point in {} ({} checked)\n",
            dir.display(),
            checked.len()
        )),
    }
    let report = FindValidReport {
        snapshot: found.as_ref().map(|(path, _)| path.display().to_string()),
        seq: found.as_ref().map(|(_, seq)| *seq),
        checked,
    };
    Report::typed(u8::from(found.is_none()), &report, human)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_report_has_the_contract_shape() {
        let report = FindValidReport {
            snapshot: None,
            seq: None,
            checked: vec![
                CheckedSnapshot {
                    path: "a".into(),
                    valid: false,
                    error: Some("bad".into()),
                },
                CheckedSnapshot {
                    path: "b".into(),
                    valid: true,
                    error: None,
                },
            ],
        };
        let value = serde_json::to_value(&report).unwrap();
        assert_eq!(
            value,
            json!({"snapshot": null, "seq": null, "checked": [
                {"path": "a", "valid": false, "error": "bad"},
                {"path": "b", "valid": true},
            ]})
        );
    }
}
