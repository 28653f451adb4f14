//! `per capture-emergency-snapshot [--url U] [--output-dir D]` (runbook: "Service Halt", step 3,
//! "take snapshot of current state (for post-mortem)"): copies everything needed to study or
//! rebuild the state into `D` (default `<data-dir>/emergency-<unix-ts>/`), laid out like a data
//! dir, so `per verify-state --data-dir D` and the other verbs work on the copy:
//!
//! - `snapshots/`: the newest restore point's chain (files and sidecars), plus any snapshot file
//!   newer than it (unrestorable ones: evidence);
//! - `wal/`: every WAL segment (`.wal`, `.wal.zst`), `.broken` copies and `.tmp` leftovers;
//! - `MANIFEST.json`: every file copied with its SHA-256 and size, the node's `/health` when it
//!   answered, this binary's version, whether the `LOCK` was held.
//!
//! Never copies token files, the `LOCK` or the encryption key. Online (`--url`): asks the node for
//! a full snapshot first (`POST /admin/snapshot`), which becomes the restore point copied. Offline:
//! takes no lock (it only reads); when a node holds the `LOCK` (and no `--url`), the files are
//! copied anyway and the manifest says so (the live segment may be caught mid-write: a torn tail
//! in the copy). When `--url` does not answer the files are still copied, then exit 3.
//!
//! `--json`: `{dir, files, bytes, online, lock_held, restore_point, manifest, notes, node_error?}`.

use crate::cli::common::{DataDirArgs, NodeArgs, finish, ops_exit};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// Flags of `per capture-emergency-snapshot`.
#[derive(Debug, Args)]
pub struct CaptureEmergencySnapshotArgs {
    /// Where to copy [default: <data-dir>/emergency-<unix-ts>/]; must be new or empty.
    #[arg(long, value_name = "D")]
    pub output_dir: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataDirArgs,
    #[command(flatten)]
    pub node: NodeArgs,
}

/// Copies ([`per_ops::capture_emergency::capture_emergency`]).
pub fn exec(args: CaptureEmergencySnapshotArgs) -> anyhow::Result<ExitCode> {
    let data = args.data.resolve()?;
    let plan = per_ops::capture_emergency::EmergencyPlan {
        output_dir: args.output_dir.clone(),
        url: args.node.url.clone(),
        token: args.node.admin_token(),
    };
    let report =
        per_ops::capture_emergency::capture_emergency(&data, &plan).map_err(ops_exit::ops)?;
    finish(data.json, report)
}
