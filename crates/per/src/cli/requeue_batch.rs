//! `per requeue-batch --batch-id B --reason R` (runbook `requeue_batch`): parks a batch as
//! `queued` (`POST /admin/batches/{id}/requeue`); the settler leaves it — and every later batch,
//! since batches settle in order — alone until `per submit-queued-batch`. The decision is a WAL
//! record: it survives restarts and failovers.
//!
//! Exit 0 queued, 1 refused (unknown or settled batch), 2 usage/bad token, 3 node unreachable,
//! 4 not the primary.

use crate::cli::common::{NodeArgs, finish, ops_exit};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// Flags of `per requeue-batch`.
#[derive(Debug, Args)]
pub struct RequeueBatchArgs {
    /// The node (its URL, admin token).
    #[command(flatten)]
    pub node: NodeArgs,
    /// Data directory, only to find `admin.token` when no token is given.
    #[arg(long, env = "PER_DATA_DIR", default_value = "./per-data")]
    pub data_dir: PathBuf,
    /// The batch.
    #[arg(long)]
    pub batch_id: u64,
    /// Why (kept with the batch; ≤ 256 bytes), e.g. RPC_FAILURE.
    #[arg(long)]
    pub reason: String,
    /// One JSON document on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Requeues the batch ([`per_ops::batches::requeue`]).
pub fn exec(args: RequeueBatchArgs) -> anyhow::Result<ExitCode> {
    let node = args
        .node
        .client(&args.node.url_or_default(), &args.data_dir)?;
    let report =
        per_ops::batches::requeue(&node, args.batch_id, &args.reason).map_err(ops_exit::ops)?;
    finish(args.json, report)
}
