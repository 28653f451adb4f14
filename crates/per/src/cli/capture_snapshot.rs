//! `per capture-snapshot [--output F] [--url U]` (runbook: `capture_snapshot --output F`): a full
//! snapshot now.
//!
//! With `--url` (a node running on the data dir): `POST /admin/snapshot` with the admin token; the
//! node writes a full snapshot into its `snapshots/` and answers with its path and seq. Offline
//! (no `--url`; the data dir's `LOCK`): the state is rebuilt read-only (snapshot chain + WAL) and a
//! full snapshot written with the store's atomic writer into `<data-dir>/snapshots` (when that
//! seq's full snapshot already exists it is reused). With `--output F` the file goes to F too (or
//! only to F when offline, written in a scratch directory beside F), with `F.sha256` naming F, so
//! `sha256sum -c F.sha256` works; F may be an existing directory (the file keeps its name there).
//! `per verify-snapshot F` and `per restore-snapshot --file F` read such copies.
//!
//! `--json`: `{path, seq, kind, bytes, root, online, existing?, output?, output_sidecar?}`.
//! Exit 0; 2 bad flags or token; 3 node unreachable; 4 LOCK held (use `--url`) or empty state.

use crate::cli::common::{DataDirArgs, NodeArgs, finish, ops_exit};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// Flags of `per capture-snapshot`.
#[derive(Debug, Args)]
pub struct CaptureSnapshotArgs {
    /// Also copy the snapshot (and a sidecar naming it) to this file.
    #[arg(long, value_name = "F")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataDirArgs,
    #[command(flatten)]
    pub node: NodeArgs,
}

/// Captures ([`per_ops::capture::capture`]).
pub fn exec(args: CaptureSnapshotArgs) -> anyhow::Result<ExitCode> {
    let data = args.data.resolve()?;
    let plan = per_ops::capture::CapturePlan {
        output: args.output.clone(),
        url: args.node.url.clone(),
        token: args.node.admin_token(),
    };
    let report = per_ops::capture::capture(&data, &plan).map_err(ops_exit::ops)?;
    finish(data.json, report)
}
