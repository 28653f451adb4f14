//! `per prune-backups [--target postgres|s3] [--keep-days N] [--keep-restore-points M] [--dry-run]
//! [--json]`: remote retention that never breaks a chain (issue 12;
//! [`per_ops::prune::prune_backups`]). Keeps every restore point newer than N days (default 7)
//! and at least the newest M (default 10), each with its chain, sidecars and the WAL after it;
//! deletes only what no kept restore point needs. `--dry-run` lists what would go and why.
//! A target that cannot be listed deletes nothing (exit 3). Extends CONTRACT.md's verbs.
//!
//! `--json`: `{ok, dry_run, keep_days, keep_restore_points, targets: {<name>: {ok, objects,
//! keep, delete, bytes_to_delete, deletions: [{name, bytes, reason}], restore_points: [{seq,
//! name, kept, complete, broken}], deleted?, already_gone?, bytes_deleted?, error?}}}`.

use crate::cli::common::{BackupArgs, DataDirArgs, finish, ops_exit};
use clap::{Args, ValueEnum};
use per_ops::prune::{PrunePlan, prune_backups};
use per_store::backup::retention::RemoteRetentionPolicy;
use std::process::ExitCode;
use std::time::Duration;

/// A remote target to prune.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RemoteName {
    /// The Postgres target (`PER_DATABASE_URL`).
    Postgres,
    /// The S3/R2 target (`PER_BACKUP_S3_URL`).
    S3,
}

/// Flags of `per prune-backups`.
#[derive(Debug, Args)]
pub struct PruneBackupsArgs {
    /// Prune only this target [default: every configured remote target].
    #[arg(long, value_enum)]
    pub target: Option<RemoteName>,
    /// Keep every restore point uploaded within this many days.
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u64).range(0..=36_500))]
    pub keep_days: u64,
    /// Keep at least this many of the newest restore points, whatever their age.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub keep_restore_points: u64,
    /// Plan and report only: delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub backups: BackupArgs,
    #[command(flatten)]
    pub data: DataDirArgs,
}

/// Prunes ([`per_ops::prune::prune_backups`]).
pub fn exec(args: PruneBackupsArgs) -> anyhow::Result<ExitCode> {
    let data = args.data.resolve()?;
    let plan = PrunePlan {
        backups: args.backups.settings(&data),
        target: args.target.map(|t| match t {
            RemoteName::Postgres => "postgres",
            RemoteName::S3 => "s3",
        }),
        policy: RemoteRetentionPolicy {
            keep_for: Duration::from_secs(args.keep_days.saturating_mul(86_400)),
            restore_points_min: usize::try_from(args.keep_restore_points).unwrap_or(usize::MAX),
        },
        dry_run: args.dry_run,
    };
    let report = prune_backups(&plan).map_err(ops_exit::ops)?;
    finish(data.json, report)
}
