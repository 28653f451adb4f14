//! `per list-queued-batches [--all] [--json]` (runbook `list_queued_batches`): the batches waiting
//! for an operator (retries exhausted or requeued), from `GET /admin/batches`.
//!
//! `--json` → `{"batches": [{"batch_id", "state", "seq_first", "seq_last", "reason"?, …}],
//! "settlement"}` (CONTRACT.md). `--all` lists every unsettled batch (sealed, submitted, queued).
//! Exit 0 (also when none is queued), 2 bad token, 3 node unreachable.

use crate::cli::common::{NodeArgs, finish, ops_exit};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// Flags of `per list-queued-batches`.
#[derive(Debug, Args)]
pub struct ListQueuedBatchesArgs {
    /// The node (its URL, admin token).
    #[command(flatten)]
    pub node: NodeArgs,
    /// Data directory, only to find `admin.token` when no token is given.
    #[arg(long, env = "PER_DATA_DIR", default_value = "./per-data")]
    pub data_dir: PathBuf,
    /// Every unsettled batch, not only the queued ones.
    #[arg(long)]
    pub all: bool,
    /// One JSON document on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Lists the batches ([`per_ops::batches::list`]).
pub fn exec(args: ListQueuedBatchesArgs) -> anyhow::Result<ExitCode> {
    let node = args
        .node
        .client(&args.node.url_or_default(), &args.data_dir)?;
    let report = per_ops::batches::list(&node, args.all).map_err(ops_exit::ops)?;
    finish(args.json, report)
}
