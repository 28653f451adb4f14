//! `per drain [--url U] [--admin-token-file F]` (runbook `scripts/drain_traffic.sh`): stops a node
//! taking new writes and waits until the ones in flight are answered.
//!
//! `POST /admin/drain` makes new writes answer 503 `Draining` and `/readyz` 503 (the load balancer
//! moves traffic to another node); the verb polls it until `queue_depth` is 0. Exit 0 once drained,
//! 1 if writes are still in flight after `--timeout-secs`, 2 bad token, 3 node unreachable.
//! `per drain --resume` (`POST /admin/resume`) takes writes again.

use crate::cli::common::{NodeArgs, finish, ops_exit};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// Flags of `per drain`.
#[derive(Debug, Args)]
pub struct DrainArgs {
    /// The node (its URL, admin token).
    #[command(flatten)]
    pub node: NodeArgs,
    /// Data directory, only to find `admin.token` when no token is given.
    #[arg(long, env = "PER_DATA_DIR", default_value = "./per-data")]
    pub data_dir: PathBuf,
    /// Give up (exit 1) when writes are still in flight after this many seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout_secs: u64,
    /// Undo a drain (and a halt): `POST /admin/resume`.
    #[arg(long)]
    pub resume: bool,
    /// One JSON document on stdout: {ok, url, draining, queue_depth, seq, drain_secs}.
    #[arg(long)]
    pub json: bool,
}

/// The default node URL when `--url` is not given.
const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// Drains (or resumes) the node ([`per_ops::drain`]).
pub fn exec(args: DrainArgs) -> anyhow::Result<ExitCode> {
    let url = args
        .node
        .url
        .clone()
        .unwrap_or_else(|| DEFAULT_URL.to_owned());
    let node = args.node.client(&url, &args.data_dir)?;
    let report = if args.resume {
        per_ops::drain::resume(&node)
    } else {
        per_ops::drain::drain(&node, args.timeout_secs)
    }
    .map_err(ops_exit::ops)?;
    finish(args.json, report)
}
