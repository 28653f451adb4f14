//! `per verify-state [--against-l1]` (runbook: `verify_state`): rebuilds the state the node would
//! start from, checking every commit group's root, then recomputes the merkle root from the leaves
//! from scratch and compares it with the state's root and with the WAL's last logged root.
//!
//! Offline (the data dir's `LOCK`), or with `--url` alongside a running node, also comparing with
//! its `/pool/info` (when the node is at the same seq; a node that moved on is a warning).
//! `--against-l1` also compares with L1 (`PER_L1_RPC_URLS`): in memo mode each remembered settled
//! batch's memo is read back by its signature and must anchor the same batch, seq range and root;
//! in pool mode the pool account's `commitment_root` must be the last settled root.
//!
//! `--json`: `{ok, problems, warnings, seq, root, recomputed_root, wal_last_root, wal_last_seq,
//! snapshot, node?: {seq, merkle_root}, l1?: {mode, slot, batches_checked, last_settled_batch,
//! last_settlement_slot, unsettled_batches}}`. Exit 0 when everything agrees, 1 on a mismatch or
//! when the state cannot be rebuilt, 2 usage, 3 L1 unreachable.

use crate::cli::common::{self, Access, DataDirArgs, NodeArgs, path_json};
use crate::cli::exit::Exit;
use clap::Args;
use per_core::MerkleTree;
use per_node::node::recovery::{self, RootCheck};
use serde_json::{Value, json};
use std::process::ExitCode;

/// Flags of `per verify-state`.
#[derive(Debug, Args)]
pub struct VerifyStateArgs {
    /// Also compare what was settled with what L1 holds.
    #[arg(long)]
    pub against_l1: bool,
    /// L1 JSON-RPC endpoints for `--against-l1`, comma-separated.
    #[arg(long, env = "PER_L1_RPC_URLS", value_delimiter = ',')]
    pub l1_rpc_urls: Vec<String>,
    /// memo | pool (how batches were settled).
    #[arg(long, env = "PER_SETTLEMENT_MODE", value_enum, default_value_t = per_node::settlement::SettlementMode::Memo)]
    pub settlement_mode: per_node::settlement::SettlementMode,
    /// Pool mode: the program id.
    #[arg(long, env = "PER_POOL_PROGRAM_ID")]
    pub pool_program_id: Option<String>,
    /// Pool mode: the mint.
    #[arg(long, env = "PER_POOL_MINT")]
    pub pool_mint: Option<String>,
    /// Check at most this many of the newest settled batches.
    #[arg(long, default_value_t = 100)]
    pub l1_batches: usize,
    #[command(flatten)]
    pub data: DataDirArgs,
    #[command(flatten)]
    pub node: NodeArgs,
}

/// Verifies.
pub fn exec(args: VerifyStateArgs) -> anyhow::Result<ExitCode> {
    if args.against_l1 && args.l1_rpc_urls.iter().all(|u| u.trim().is_empty()) {
        return Err(Exit::usage(
            "--against-l1 needs the L1 endpoints: --l1-rpc-urls or PER_L1_RPC_URLS",
        ));
    }
    let data = args.data.resolve()?;
    let access = Access::acquire(&data, &args.node)?;
    common::require_key_for_data_dir(&data)?;
    let mut problems: Vec<String> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();

    common::progress("rebuilding the state (checking every group's root)");
    let (state, report) = match recovery::recover_read_only(&data.source(), RootCheck::EveryGroup) {
        Ok(rebuilt) => rebuilt,
        Err(error) => {
            let code = common::recovery_exit_code(&error);
            if code == 2 {
                return Err(Exit::usage(error.to_string()));
            }
            let out = json!({
                "ok": false,
                "problems": [error.to_string()],
                "warnings": warnings,
                "seq": null, "root": null, "recomputed_root": null,
                "wal_last_root": null, "wal_last_seq": null, "snapshot": null,
            });
            data.emit(&out, &format!("❌ the state cannot be rebuilt: {error}"))?;
            return Ok(ExitCode::from(1));
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

    common::progress("recomputing the root from the leaves");
    let root = state.root();
    let recomputed = MerkleTree::from_leaves(state.tree().leaves().to_vec())
        .map_err(|e| Exit::problem(format!("the leaves do not form a tree: {e}")))?
        .root();
    if recomputed != root {
        problems.push(format!(
            "merkle root mismatch: the state says {root}, its leaves hash to {recomputed}"
        ));
    }

    // The WAL's last logged root.
    let read = common::read_wal(&data.wal_options())?;
    let decoded = common::decode_prefix(&read.recovery.frames);
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

    if args.against_l1 {
        common::progress("comparing with L1");
        let check = against_l1(&args, &state)?;
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
    data.emit(&out, &human)?;
    Ok(common::exit_ok(ok))
}

fn against_l1(
    args: &VerifyStateArgs,
    state: &per_core::State,
) -> anyhow::Result<per_node::settlement::verify::L1Check> {
    use per_node::settlement::verify::{PoolAccounts, VerifyL1Error, check_against_l1};
    let urls: Vec<String> = args
        .l1_rpc_urls
        .iter()
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty())
        .collect();
    let rpc = per_l1::RpcClient::new(urls, std::time::Duration::from_secs(10))
        .map_err(|e| Exit::usage(e.to_string()))?;
    let pool = match (&args.pool_program_id, &args.pool_mint) {
        (Some(program_id), Some(mint)) => Some(PoolAccounts {
            program_id: program_id.clone(),
            mint: mint.clone(),
        }),
        _ => None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Exit::problem(format!("cannot start the async runtime: {e}")))?;
    runtime
        .block_on(check_against_l1(
            state.settlement(),
            &rpc,
            args.settlement_mode,
            pool.as_ref(),
            args.l1_batches,
        ))
        .map_err(|error| match error {
            VerifyL1Error::Unreachable(e) => Exit::unreachable(e.to_string()),
            VerifyL1Error::Config(m) => Exit::usage(m),
        })
}
