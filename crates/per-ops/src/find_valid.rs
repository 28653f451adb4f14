//! The runbook's `find_valid_snapshot --verify-all`: the newest restore point in
//! `<data-dir>/snapshots` whose whole chain loads (newest first; stops at the first valid one
//! unless every one is to be checked, rehashing every leaf).

use crate::data_dir::{Access, DataDir};
use crate::error::ProcedureError;
use crate::files::path_json;
use crate::node_client::AdminToken;
use crate::report::{Report, progress};
use per_core::TreeCheck;
use per_node::node::recovery;
use per_store::snapshot;
use serde_json::{Value, json};

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

/// Searches: `{snapshot, seq, checked: [{path, valid, error?}]}`; exit 1 when none is valid.
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
        let mut item = json!({ "path": path_json(&entry.path), "valid": result.is_ok() });
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
                item["error"] = Value::String(error.clone());
                human.push_str(&format!("✗ {}: {error}\n", entry.path.display()));
            }
        }
        checked.push(item);
        if found.is_some() && !plan.verify_all {
            break;
        }
    }
    let out = match &found {
        Some((path, seq)) => {
            human.push_str(&format!(
                "newest valid restore point: {} (seq {seq})\n",
                path.display()
            ));
            json!({ "snapshot": path_json(path), "seq": seq, "checked": checked })
        }
        None => {
            human.push_str(&format!(
                "no valid restore point in {} ({} checked)\n",
                dir.display(),
                checked.len()
            ));
            json!({ "snapshot": null, "seq": null, "checked": checked })
        }
    };
    Ok(Report::ok_if(found.is_some(), out, human))
}
