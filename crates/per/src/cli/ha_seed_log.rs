//! `per ha-seed-log` (an extension of the contract's verbs): writes a node's local commit groups
//! to its cluster's shared log (`per_log`) where the log lacks them — the single → primary
//! upgrade path, and the repair named by a start-up that refuses because the log is shorter than
//! the node's data (`ha::reconcile`).
//!
//! Offline only (takes the data dir's `LOCK`). In one transaction: refuses (exit 4) while any node
//! holds an unexpired lease of the cluster (stop every node first), when the log's last group is
//! not the same group in this node's WAL (the log is not a prefix of this node's history), or when
//! the local WAL does not reach back to the log's end + 1 (the missing seqs exist only in a
//! snapshot). Otherwise appends every later local group, sealed with the node's key as the
//! primary would (epoch: the lease's, 0 when none), and commits. Nothing is written on refusal.
//!
//! `--json`: `{ok, cluster, log_end_before, appended_groups, first_seq?, last_seq?, log_end}`.

use crate::cli::common::{DataDirArgs, finish, ops_exit};
use clap::Args;
use std::process::ExitCode;

/// Flags of `per ha-seed-log`.
#[derive(Debug, Args)]
pub struct HaSeedLogArgs {
    /// Postgres URL holding the cluster's shared log.
    #[arg(long, env = "PER_DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    #[command(flatten)]
    pub data: DataDirArgs,
}

/// Runs the seeding ([`per_ops::ha_seed_log::seed_log`]).
pub fn exec(args: HaSeedLogArgs) -> anyhow::Result<ExitCode> {
    let data = args.data.resolve()?;
    let report =
        per_ops::ha_seed_log::seed_log(&data, &args.database_url).map_err(ops_exit::ops)?;
    finish(data.json, report)
}
