//! `per verify-snapshot F...` (runbook: `verify_snapshot`): checks each snapshot file completely —
//! sidecar, header, decryption (with the configured key), inner checksum, decoding — and rebuilds
//! the state from its whole chain, rehashing every leaf (the root must match).
//!
//! A file under its canonical name (`<seq:020>-<full|delta>.snap`) is read where it is, its chain
//! from its own directory. A file under another name (a `capture-snapshot --output` copy such as
//! `test_snapshot.bin`) is checked against its own sidecar, then verified under its canonical name
//! in a scratch directory (a delta finds its bases in its own directory and in the data dir's
//! `snapshots/`). Reads only; takes no lock.
//!
//! `--json`: `{ok, problems: ["<path>: <error>"], snapshots: [{path, valid, seq, kind, root?,
//! chain?, error?}]}`. Exit 0 when every file is valid, 1 otherwise.

use crate::cli::common::{DataDirArgs, finish, ops_exit};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// Flags of `per verify-snapshot`.
#[derive(Debug, Args)]
pub struct VerifySnapshotArgs {
    /// Snapshot files to verify.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub data: DataDirArgs,
}

/// Verifies every file named ([`per_ops::verify::snapshot::verify_snapshots`]).
pub fn exec(args: VerifySnapshotArgs) -> anyhow::Result<ExitCode> {
    let data = args.data.resolve()?;
    let report =
        per_ops::verify::snapshot::verify_snapshots(&data, &args.files).map_err(ops_exit::ops)?;
    finish(data.json, report)
}
