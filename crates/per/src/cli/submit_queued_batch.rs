//! `per submit-queued-batch --batch-id B` (runbook `submit_queued_batch`, "manually submit when
//! RPC recovered"): releases a queued batch (`POST /admin/batches/{id}/submit`, a WAL record) and
//! waits until it settles on L1 or fails again.
//!
//! Batches settle in order, so releasing a batch behind an older queued one waits for that one.
//! Submission is idempotent: the node first checks L1 for every signature it ever recorded for the
//! batch, so a batch that landed after all is recorded as settled, never sent twice.
//! Exit 0 settled, 1 queued again or not settled within `--timeout-secs`, 2 usage/bad token,
//! 3 node unreachable, 4 refused (settlement disabled or blocked, not the primary).

use crate::cli::common::{NodeArgs, finish, ops_exit};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// Flags of `per submit-queued-batch`.
#[derive(Debug, Args)]
pub struct SubmitQueuedBatchArgs {
    /// The node (its URL, admin token).
    #[command(flatten)]
    pub node: NodeArgs,
    /// Data directory, only to find `admin.token` when no token is given.
    #[arg(long, env = "PER_DATA_DIR", default_value = "./per-data")]
    pub data_dir: PathBuf,
    /// The batch.
    #[arg(long)]
    pub batch_id: u64,
    /// How long to wait for the settlement [default: 120 s; 0: do not wait].
    #[arg(long, default_value_t = 120)]
    pub timeout_secs: u64,
    /// One JSON document on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Releases the batch and waits for its outcome ([`per_ops::batches::submit`]).
pub fn exec(args: SubmitQueuedBatchArgs) -> anyhow::Result<ExitCode> {
    let node = args
        .node
        .client(&args.node.url_or_default(), &args.data_dir)?;
    let report =
        per_ops::batches::submit(&node, args.batch_id, args.timeout_secs).map_err(ops_exit::ops)?;
    finish(args.json, report)
}
