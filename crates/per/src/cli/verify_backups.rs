//! `per verify-backups [--deep]` (runbook: `scripts/verify_backups.sh`, checksums plus
//! deserialization): every snapshot and every WAL segment of the data dir.
//!
//! Snapshots: each file's sidecar (`sha256sum -c`), then full decoding and chain continuity by
//! loading chains newest first (a chain that loads vouches for every link, which is not read
//! again), trusting stored tree nodes (`--deep`: rehash every leaf). WAL: every segment read (`Wal::scan`): damage is a problem, a torn tail
//! or an unfinished group at the tail is a warning (never acknowledged; start-up cuts it); every
//! record decodes and sequence numbers have no gaps. Continuity: the WAL must continue the newest
//! valid restore point (first seq ≤ its seq + 1, or 1 without snapshots) — a problem otherwise,
//! since the node could not recover to now. Older restore points the WAL no longer reaches (after
//! WAL retention, or after a `restore-snapshot` moved an abandoned timeline aside) are warnings:
//! they can be restored, not rolled forward. Offline (the data dir's `LOCK`), or alongside a
//! running node with `--url`.
//!
//! Remote targets (issue 7): with `PER_DATABASE_URL` and/or `PER_BACKUP_S3_URL` set, every
//! configured target is checked too (or only `--target local|postgres|s3`): list, download every
//! snapshot and sealed segment, check each against its sidecar, then run the same checks as above
//! (decoding with the key, chains, WAL continuity) on the downloaded copy. Problems name the
//! object as `<target>:<name>`, e.g. `postgres:snapshots/00000000000000000200-delta.snap`.
//! Remote targets need neither the data dir nor its `LOCK`; without `--target` and without a data
//! dir, only the remote targets are checked (with a warning).
//!
//! `--json`: `{ok, problems: [...], warnings: [...], targets: {local|postgres|s3: {ok, reachable,
//! problems, warnings, snapshots, restore_points, segments, wal_first_seq, wal_last_seq, ...}},
//! snapshots: N, segments: N, wal_first_seq, wal_last_seq, restore_points: N}` (the top-level
//! counts are the local target's, when checked). Exit 0 when no problem, 1 when a problem was
//! found, 3 when a target could not be reached (and no problem was found), 2 on configuration
//! errors.

use crate::cli::common::{BackupArgs, DataDirArgs, NodeArgs, finish, ops_exit};
use clap::{Args, ValueEnum};
use per_ops::verify::backups::{self, VerifyBackupsPlan};
use std::process::ExitCode;

/// A backup target to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TargetName {
    /// The data dir itself.
    Local,
    /// The Postgres target (`PER_DATABASE_URL`).
    Postgres,
    /// The S3/R2 target (`PER_BACKUP_S3_URL`).
    S3,
}

impl From<TargetName> for backups::TargetName {
    fn from(name: TargetName) -> Self {
        match name {
            TargetName::Local => backups::TargetName::Local,
            TargetName::Postgres => backups::TargetName::Postgres,
            TargetName::S3 => backups::TargetName::S3,
        }
    }
}

/// Flags of `per verify-backups`.
#[derive(Debug, Args)]
pub struct VerifyBackupsArgs {
    /// Rehash every leaf of every snapshot (slower) instead of trusting stored tree nodes.
    #[arg(long)]
    pub deep: bool,
    /// Check only this target [default: local and every configured remote target].
    #[arg(long, value_enum)]
    pub target: Option<TargetName>,
    #[command(flatten)]
    pub backups: BackupArgs,
    #[command(flatten)]
    pub data: DataDirArgs,
    #[command(flatten)]
    pub node: NodeArgs,
}

/// Verifies ([`per_ops::verify::backups::verify_backups`]).
pub fn exec(args: VerifyBackupsArgs) -> anyhow::Result<ExitCode> {
    let data = args.data.resolve()?;
    let plan = VerifyBackupsPlan {
        deep: args.deep,
        target: args.target.map(Into::into),
        backups: args.backups.settings(&data),
        url: args.node.url.clone(),
        token: args.node.admin_token(),
    };
    let report = backups::verify_backups(&data, &plan).map_err(ops_exit::ops)?;
    finish(data.json, report)
}
