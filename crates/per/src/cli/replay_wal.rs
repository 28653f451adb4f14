//! `per replay-wal --from-snapshot latest|F [--dry-run] [--force]` (runbook: `replay_wal`): loads a
//! snapshot chain (rehashing every leaf), replays the WAL after it checking every commit group's
//! root, and stops at the first problem, naming its seq (when known), segment and byte offset.
//!
//! `latest` is the newest valid restore point (none: the empty state, as start-up). Reads only,
//! unless `--force`: offline (the data dir's `LOCK`, or alongside a node with `--url`).
//!
//! `--force` (offline only) with a problem found makes the data dir startable again: the WAL from
//! the problem on goes to `<data-dir>/replaced-<unix-ts>/wal/` — later segments are moved; the
//! problem's own segment is copied there and truncated after the last complete commit group
//! before the problem (fsynced), or moved whole when no such group is in it or it is compressed.
//! The lost-transaction report lists the acknowledged transactions that are then no longer
//! recoverable. `--force` repairs only relative to the restore point the node starts from (the
//! newest valid one): with an older `--from-snapshot`, it refuses (exit 4). `--dry-run` says what
//! `--force` would do. Without a problem, `--force` changes nothing.
//!
//! `--json`: `{ok, snapshot, snapshot_seq, from_seq, replayed_transactions, replayed_groups,
//! last_seq, root, problem?: {seq?, segment, offset, error}, warnings, repair?: {dry_run, done,
//! replaced_dir, moved, truncated?: {segment, offset, copy}, lost_transactions, lost_count,
//! lost_seq_range, lost_report_complete, recovered?: {seq, root}, error?}}`. Exit 1 when a problem
//! was found (also when `--force` set it aside), 0 otherwise.

use crate::cli::common::{DataDirArgs, NodeArgs, finish, ops_exit};
use clap::Args;
use std::process::ExitCode;

/// Flags of `per replay-wal`.
#[derive(Debug, Args)]
pub struct ReplayWalArgs {
    /// The snapshot to replay from: a file, or `latest` (the newest valid restore point).
    #[arg(long, value_name = "latest|F")]
    pub from_snapshot: String,
    /// With --force: say what would be moved; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Set the WAL from the first problem on aside (to replaced-<ts>/) so the node can start.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub data: DataDirArgs,
    #[command(flatten)]
    pub node: NodeArgs,
}

/// Replays ([`per_ops::replay::replay`]).
pub fn exec(args: ReplayWalArgs) -> anyhow::Result<ExitCode> {
    let plan = per_ops::replay::ReplayPlan {
        from_snapshot: args.from_snapshot.clone(),
        dry_run: args.dry_run,
        force: args.force,
        url: args.node.url.clone(),
        token: args.node.admin_token(),
    };
    plan.check().map_err(ops_exit::ops)?;
    let data = args.data.resolve()?;
    let report = per_ops::replay::replay(&data, &plan).map_err(ops_exit::ops)?;
    finish(data.json, report)
}
