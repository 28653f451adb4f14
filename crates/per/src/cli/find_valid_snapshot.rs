//! `per find-valid-snapshot [--verify-all] [--last N]` (runbook: `find_valid_snapshot
//! --verify-all`, "check last 10 snapshots"): the newest restore point in `<data-dir>/snapshots`
//! whose whole chain loads.
//!
//! Newest first over every snapshot file of the directory. By default it stops at the first valid
//! one and trusts stored tree nodes (as start-up does); `--verify-all` checks every one (or the
//! newest N with `--last N`) and rehashes every leaf. `--last N` alone limits the search to the
//! newest N. Offline (takes the data dir's `LOCK`), or alongside a running node with `--url`.
//!
//! `--json`: exactly `{"snapshot": "<path>"|null, "seq": N|null, "checked": [{"path", "valid",
//! "error"?}]}`. Exit 0 when a valid restore point was found, 1 when none.

use crate::cli::common::{self, Access, DataDirArgs, NodeArgs, path_json};
use clap::Args;
use per_core::TreeCheck;
use per_node::node::recovery;
use per_store::snapshot;
use serde_json::{Value, json};
use std::process::ExitCode;

/// Flags of `per find-valid-snapshot`.
#[derive(Debug, Args)]
pub struct FindValidSnapshotArgs {
    /// Check every snapshot (rehashing every leaf) instead of stopping at the first valid one.
    #[arg(long)]
    pub verify_all: bool,
    /// Only the newest N snapshots.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub last: Option<u64>,
    #[command(flatten)]
    pub data: DataDirArgs,
    #[command(flatten)]
    pub node: NodeArgs,
}

/// Searches.
pub fn exec(args: FindValidSnapshotArgs) -> anyhow::Result<ExitCode> {
    let data = args.data.resolve()?;
    let _access = Access::acquire(&data, &args.node)?;
    common::require_key_for_data_dir(&data)?;
    let dir = data.snapshots_dir();
    let listed = snapshot::list_snapshots(&dir)
        .map_err(|e| crate::cli::exit::Exit::problem(format!("cannot list snapshots: {e}")))?;
    let limit = args
        .last
        .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
    let check = if args.verify_all {
        TreeCheck::Rehash
    } else {
        TreeCheck::StoredNodes
    };
    let candidates: Vec<_> = listed.snapshots.iter().rev().take(limit).collect();
    let mut checked = Vec::new();
    let mut found: Option<(std::path::PathBuf, u64)> = None;
    let mut human = String::new();
    for (i, entry) in candidates.iter().enumerate() {
        common::progress(format!(
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
        if found.is_some() && !args.verify_all {
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
    data.emit(&out, &human)?;
    Ok(common::exit_ok(found.is_some()))
}
