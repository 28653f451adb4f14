//! `per restore-snapshot --file F|latest [--version V] [--dry-run] [--force] [--source local]`
//! (runbook: `restore_snapshot`, scenario 2 and "Rollback"): makes snapshot F the state the node
//! will start from. Offline: takes the data dir's `LOCK`.
//!
//! F is verified first (its whole chain, rehashing every leaf). `latest` is the newest valid
//! restore point. A file outside `<data-dir>/snapshots` (or under another name, such as a
//! `capture-snapshot --output` copy) is imported there with its chain.
//!
//! Everything newer than F is moved — never deleted — to `<data-dir>/replaced-<unix-ts>/`
//! (keeping its place: `snapshots/…`, `wal/…`): every snapshot file ordered after F (seq above F's,
//! or a delta at F's seq when F is full), and **every** WAL file, since F's state plus the WAL
//! after F is what recovery would otherwise rebuild. Before that, the **lost-transaction report**
//! lists every transaction acknowledged after F's seq, read from the WAL (complete commit groups
//! only): `{seq, kind, receipt_id, timestamp_ms}` — the runbook's "transactions after T-15 may
//! need resubmission". When the WAL is damaged the report stops at the damage
//! (`lost_report_complete: false`).
//!
//! Refuses (exit 4, after printing the plan and report) when anything would be moved, unless
//! `--force`; `--dry-run` prints the plan and report and changes nothing. `--version V` checks that
//! binary version V reads the formats of every file of F's chain (table in `per_ops::version`); exit 1
//! and no change when it does not. After the move the data dir is recovered read-only and must end
//! at F's seq and root.
//!
//! `--source postgres|s3` (the runbook's "Complete disaster"; remote backups, issue 7): downloads
//! the newest valid chain (or the chain of `--file NAME`, a snapshot object's file name) and the
//! sealed WAL segments after it from that target into the data dir, which must be empty (no
//! snapshot or WAL file) unless `--force` (what is there goes to `replaced-<ts>/`). Every object is
//! checked against its sidecar, the chain is loaded rehashing every leaf, and the data dir is then
//! recovered read-only: `per serve` on it starts at `recovered.seq`. WAL segments that add nothing
//! after the snapshot are not kept; segments that do not replay are dropped and reported (exit 1,
//! the data dir still recovers to the snapshot). `--json`: `{ok, source, target, dry_run, snapshot,
//! seq, kind, root, chain, wal_segments, recovered: {seq, root}, downloaded_objects,
//! downloaded_bytes, elapsed_ms, replaced_dir, problems, warnings, error?}`. Exit 3 when the target
//! cannot be reached, 4 when the data dir is not empty without `--force`.
//!
//! Live WAL (issue 12): every segment not held sealed by the target is rebuilt from its
//! `wal-live/…walpart` objects (one generation per segment, the one reaching furthest; JSON
//! `live_wal: [{segment, generation, parts, last_seq}]`); a gap fails, named. `--to-seq N` /
//! `--to-time T` (remote sources only): the nearest snapshot at or before the point, the WAL cut
//! after the commit group holding N (or the last committed at or before T), JSON
//! `to: {requested, seq, root, timestamp_ms, time, archive_end_seq}` and the lost-transaction
//! report of what the archive holds after it (`lost_transactions`, `lost_count`,
//! `lost_seq_range`); a WAL that does not reach the point is exit 1 with `error`.
//!
//! `--json`: `{ok, dry_run, refused, snapshot, source_file, seq, kind, root, chain, replaced_dir,
//! replaced_files, imported, lost_transactions, lost_count, lost_seq_range, lost_report_complete,
//! wal_damage?, version_check?, recovered?: {seq, root}, error?}`.

use crate::cli::common::{BackupArgs, DataDirArgs, finish, ops_exit};
use clap::{Args, ValueEnum};
use per_ops::restore;
use std::process::ExitCode;

/// Where backups are read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Source {
    /// The data dir's own `snapshots/` (and files named on the command line).
    Local,
    /// The Postgres backup target.
    Postgres,
    /// The S3/R2 backup target.
    S3,
}

/// Flags of `per restore-snapshot` (its `--version V` is the runbook's; `per --version` still
/// prints the binary's).
#[derive(Debug, Args)]
#[command(disable_version_flag = true)]
pub struct RestoreSnapshotArgs {
    /// The snapshot to restore: a file, or `latest` (the newest valid restore point).
    #[arg(long, value_name = "F|latest")]
    pub file: String,
    /// Check that binary version V (v0.8.2 or 0.8.2) can read the snapshot's formats.
    #[arg(long, value_name = "V")]
    pub version: Option<String>,
    /// Print the plan and the lost-transaction report; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Move newer snapshots and the WAL aside (to replaced-<ts>/) without asking.
    #[arg(long)]
    pub force: bool,
    /// Where to read backups from.
    #[arg(long, value_enum, default_value_t = Source::Local)]
    pub source: Source,
    /// Point-in-time restore (postgres|s3): the state after the commit group holding seq N
    /// (nearest snapshot at or before it, plus the archived WAL up to it).
    #[arg(long, value_name = "N", conflicts_with = "to_time")]
    pub to_seq: Option<u64>,
    /// Point-in-time restore (postgres|s3): the state after the last commit group committed at
    /// or before this RFC 3339 time.
    #[arg(long, value_name = "RFC3339")]
    pub to_time: Option<String>,
    #[command(flatten)]
    pub backups: BackupArgs,
    #[command(flatten)]
    pub data: DataDirArgs,
}

/// Restores ([`per_ops::restore::restore`]).
pub fn exec(args: RestoreSnapshotArgs) -> anyhow::Result<ExitCode> {
    let source = match args.source {
        Source::Local => restore::Source::Local,
        Source::Postgres => restore::Source::Postgres,
        Source::S3 => restore::Source::S3,
    };
    let flags = restore::RestoreFlags {
        source,
        version: args.version.as_deref(),
        to_seq: args.to_seq,
        to_time: args.to_time.as_deref(),
    };
    let (version, point) = flags.check().map_err(ops_exit::ops)?;
    let data = args.data.resolve()?;
    let plan = restore::RestorePlan {
        file: args.file.clone(),
        version,
        dry_run: args.dry_run,
        force: args.force,
        source,
        point,
        backups: args.backups.settings(&data),
    };
    let report = restore::restore(&data, &plan).map_err(ops_exit::ops)?;
    finish(data.json, report)
}
