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

use crate::cli::common::{DataDirArgs, NodeArgs, finish, ops_exit};
use clap::Args;
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

/// Searches ([`per_ops::find_valid::find_valid`]).
pub fn exec(args: FindValidSnapshotArgs) -> anyhow::Result<ExitCode> {
    let data = args.data.resolve()?;
    let plan = per_ops::find_valid::FindValidPlan {
        verify_all: args.verify_all,
        last: args.last,
        url: args.node.url.clone(),
        token: args.node.admin_token(),
    };
    let report = per_ops::find_valid::find_valid(&data, &plan).map_err(ops_exit::ops)?;
    finish(data.json, report)
}
