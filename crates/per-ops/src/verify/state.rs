//! The runbook's `verify_state`: rebuild the state the node would start from, checking every
//! commit group's root, recompute the merkle root from the leaves from scratch, and compare it
//! with the state's root, the WAL's last logged root, a running node's `/pool/info` (with a URL)
//! and L1 (optional: memo anchors or the pool account's root).

use crate::data_dir::{Access, DataDir, recovery_exit_code};
use crate::error::ProcedureError;
use crate::files::path_json;
use crate::node_client::AdminToken;
use crate::report::{Report, progress};
use crate::wal_read::{decode_prefix, read_wal};
use per_core::MerkleTree;
use per_node::node::recovery::{self, RootCheck};
use serde_json::{Value, json};

/// How to compare with L1.
#[derive(Debug, Clone)]
pub struct L1Plan {
    /// JSON-RPC endpoints (blank ones are ignored).
    pub rpc_urls: Vec<String>,
    /// How batches were settled (memo or pool).
    pub settlement_mode: per_node::settlement::SettlementMode,
    /// Pool mode: the program id.
    pub pool_program_id: Option<String>,
    /// Pool mode: the mint.
    pub pool_mint: Option<String>,
    /// Check at most this many of the newest settled batches.
    pub batches: usize,
}

impl L1Plan {
    /// The usage error of an L1 comparison without endpoints.
    pub fn check(&self) -> Result<(), ProcedureError> {
        if self.rpc_urls.iter().all(|u| u.trim().is_empty()) {
            return Err(ProcedureError::Usage(
                "--against-l1 needs the L1 endpoints: --l1-rpc-urls or PER_L1_RPC_URLS".to_owned(),
            ));
        }
        Ok(())
    }
}

/// What to verify against.
#[derive(Debug, Clone, Default)]
pub struct VerifyStatePlan {
    /// Compare with L1 too.
    pub l1: Option<L1Plan>,
    /// Work alongside (and compare with) this running node instead of taking the `LOCK`.
    pub url: Option<String>,
    /// The node's admin token.
    pub token: AdminToken,
}

/// Verifies: `{ok, problems, warnings, seq, root, recomputed_root, wal_last_root, wal_last_seq,
/// snapshot, node?, l1?}`; exit 1 on a mismatch or when the state cannot be rebuilt.
pub fn verify_state(data: &DataDir, plan: &VerifyStatePlan) -> Result<Report, ProcedureError> {
    if let Some(l1) = &plan.l1 {
        l1.check()?;
    }
    let access = Access::acquire(data, plan.url.as_deref(), &plan.token)?;
    data.require_key_for_data_dir()?;
    let mut problems: Vec<String> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();

    progress("rebuilding the state (checking every group's root)");
    let (state, report) = match recovery::recover_read_only(&data.source(), RootCheck::EveryGroup) {
        Ok(rebuilt) => rebuilt,
        Err(error) => {
            let code = recovery_exit_code(&error);
            if code == 2 {
                return Err(ProcedureError::Usage(error.to_string()));
            }
            let out = json!({
                "ok": false,
                "problems": [error.to_string()],
                "warnings": warnings,
                "seq": null, "root": null, "recomputed_root": null,
                "wal_last_root": null, "wal_last_seq": null, "snapshot": null,
            });
            let human = format!("❌ the state cannot be rebuilt: {error}");
            return Ok(Report::with_exit(1, out, human));
        }
    };
    for skipped in &report.skipped_snapshots {
        warnings.push(format!("invalid snapshot skipped: {}", skipped.reason));
    }
    if let Some(torn) = &report.torn_tail {
        warnings.push(format!(
            "torn tail in {} at offset {} ({} bytes, never acknowledged)",
            torn.segment.display(),
            torn.offset,
            torn.bytes
        ));
    }
    if report.unfinished_group_records > 0 {
        warnings.push(format!(
            "{} record(s) of an unfinished commit group at the WAL tail (never acknowledged)",
            report.unfinished_group_records
        ));
    }

    progress("recomputing the root from the leaves");
    let root = state.root();
    let recomputed = MerkleTree::from_leaves(state.tree().leaves().to_vec())
        .map_err(|e| ProcedureError::Problem(format!("the leaves do not form a tree: {e}")))?
        .root();
    if recomputed != root {
        problems.push(format!(
            "merkle root mismatch: the state says {root}, its leaves hash to {recomputed}"
        ));
    }

    // The WAL's last logged root.
    let read = read_wal(&data.wal_options())?;
    let decoded = decode_prefix(&read.recovery.frames);
    let last_group = decoded.last_group();
    match last_group {
        Some((seq, logged)) if seq == state.seq() => {
            if logged != root {
                problems.push(format!(
                    "the WAL's last group (seq {seq}) logged root {logged}, the state has {root}"
                ));
            }
        }
        Some((seq, _)) => warnings.push(format!(
            "the WAL's last group ends at seq {seq}, the state at seq {} ({}): the WAL root is not compared",
            state.seq(),
            if seq < state.seq() {
                "a newer snapshot covers the WAL"
            } else {
                "the node appended while the data dir was read"
            }
        )),
        None => warnings.push("the WAL holds no complete group: only the snapshot's root is checked".to_owned()),
    }

    let mut out = json!({
        "seq": state.seq(),
        "root": root.to_hex(),
        "recomputed_root": recomputed.to_hex(),
        "wal_last_root": last_group.map(|(_, r)| r.to_hex()),
        "wal_last_seq": last_group.map(|(s, _)| s),
        "snapshot": report.snapshot.as_deref().map(path_json),
    });

    if let Some(node) = access.node() {
        let info = node.get_json("/pool/info")?;
        let node_seq = info.get("seq").and_then(Value::as_u64);
        let node_root = info
            .get("merkle_root")
            .and_then(Value::as_str)
            .map(str::to_owned);
        out["node"] = json!({ "seq": node_seq, "merkle_root": node_root });
        match node_seq {
            Some(seq) if seq == state.seq() => {
                if node_root.as_deref() != Some(root.to_hex().as_str()) {
                    problems.push(format!(
                        "the node at {} reports root {} at seq {seq}, the data dir rebuilds {root}",
                        node.base(),
                        node_root.as_deref().unwrap_or("?")
                    ));
                }
            }
            Some(seq) if seq < state.seq() => problems.push(format!(
                "the node at {} is at seq {seq}, behind the data dir (seq {}): is --data-dir the node's?",
                node.base(),
                state.seq()
            )),
            Some(seq) => warnings.push(format!(
                "the node moved on to seq {seq} while the data dir was read at seq {}; halt it (POST /admin/halt) to compare roots",
                state.seq()
            )),
            None => problems.push(format!("{}/pool/info has no seq", node.base())),
        }
    }

    if let Some(l1) = &plan.l1 {
        progress("comparing with L1");
        let check = against_l1(l1, &state)?;
        problems.extend(check.problems);
        warnings.extend(check.warnings);
        out["l1"] = check.report;
    }

    let ok = problems.is_empty();
    out["ok"] = json!(ok);
    out["problems"] = json!(problems);
    out["warnings"] = json!(warnings);
    let mut human = format!(
        "state at seq {}: root {root}, recomputed from the leaves {recomputed}, WAL's last root {}\n",
        state.seq(),
        last_group.map_or("-".to_owned(), |(_, r)| r.to_hex())
    );
    for problem in &problems {
        human.push_str(&format!("❌ {problem}\n"));
    }
    for warning in &warnings {
        human.push_str(&format!("warning: {warning}\n"));
    }
    human.push_str(if ok {
        "✓ state verified\n"
    } else {
        "❌ state verification failed\n"
    });
    Ok(Report::ok_if(ok, out, human))
}

fn against_l1(
    l1: &L1Plan,
    state: &per_core::State,
) -> Result<per_node::settlement::verify::L1Check, ProcedureError> {
    use per_node::settlement::verify::{PoolAccounts, VerifyL1Error, check_against_l1};
    let urls: Vec<String> = l1
        .rpc_urls
        .iter()
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty())
        .collect();
    let rpc = per_l1::RpcClient::new(urls, std::time::Duration::from_secs(10))
        .map_err(|e| ProcedureError::Usage(e.to_string()))?;
    let pool = match (&l1.pool_program_id, &l1.pool_mint) {
        (Some(program_id), Some(mint)) => Some(PoolAccounts {
            program_id: program_id.clone(),
            mint: mint.clone(),
        }),
        _ => None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ProcedureError::Problem(format!("cannot start the async runtime: {e}")))?;
    runtime
        .block_on(check_against_l1(
            state.settlement(),
            &rpc,
            l1.settlement_mode,
            pool.as_ref(),
            l1.batches,
        ))
        .map_err(|error| match error {
            VerifyL1Error::Unreachable(e) => ProcedureError::Unreachable(e.to_string()),
            VerifyL1Error::Config(m) => ProcedureError::Usage(m),
        })
}
