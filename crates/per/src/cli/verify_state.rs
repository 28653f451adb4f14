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

use crate::cli::common::{DataDirArgs, NodeArgs, finish, ops_exit};
use clap::Args;
use per_ops::verify::state::{L1Plan, VerifyStatePlan};
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

/// Verifies ([`per_ops::verify::state::verify_state`]).
pub fn exec(args: VerifyStateArgs) -> anyhow::Result<ExitCode> {
    let l1 = args.against_l1.then(|| L1Plan {
        rpc_urls: args.l1_rpc_urls.clone(),
        settlement_mode: args.settlement_mode,
        pool_program_id: args.pool_program_id.clone(),
        pool_mint: args.pool_mint.clone(),
        batches: args.l1_batches,
    });
    if let Some(l1) = &l1 {
        l1.check().map_err(ops_exit::ops)?;
    }
    let data = args.data.resolve()?;
    let plan = VerifyStatePlan {
        l1,
        url: args.node.url.clone(),
        token: args.node.admin_token(),
    };
    let report = per_ops::verify::state::verify_state(&data, &plan).map_err(ops_exit::ops)?;
    finish(data.json, report)
}
