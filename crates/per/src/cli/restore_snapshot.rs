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
//! binary version V reads the formats of every file of F's chain (table in `cli/common.rs`); exit 1
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

use crate::cli::common::{
    self, BackupArgs, DataDir, DataDirArgs, Format, Replaced, SnapshotRef, Version, path_json,
};
use crate::cli::exit::Exit;
use clap::{Args, ValueEnum};
use per_core::TreeCheck;
use per_node::backup::remote::{Catalogue, FetchError};
use per_node::node::recovery::{self, LoadedSnapshot, RootCheck};
use per_store::ObjectName;
use per_store::snapshot::{self, SnapshotKind};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

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

/// The snapshot chosen, loaded and checked.
struct Chosen {
    reference: SnapshotRef,
    loaded: LoadedSnapshot,
    chain: Vec<PathBuf>,
    kind: SnapshotKind,
}

fn choose(data: &DataDir, file: &str) -> Result<Chosen, String> {
    let dir = data.snapshots_dir();
    if file == "latest" {
        let listed = snapshot::list_snapshots(&dir).map_err(|e| e.to_string())?;
        let mut errors = Vec::new();
        for entry in listed.snapshots.iter().rev() {
            common::progress(format!("checking {}", entry.path.display()));
            match recovery::load_chain_exact(
                &dir,
                &entry.path,
                data.key(),
                data.state_limits(),
                TreeCheck::Rehash,
            ) {
                Ok((loaded, chain)) => {
                    let reference = common::resolve_snapshot(&entry.path, &dir)?;
                    return Ok(Chosen {
                        reference,
                        loaded,
                        chain,
                        kind: entry.kind,
                    });
                }
                Err(error) => errors.push(error),
            }
        }
        return Err(if errors.is_empty() {
            format!("no snapshot in {}", dir.display())
        } else {
            format!(
                "no valid restore point in {} ({} invalid: {})",
                dir.display(),
                errors.len(),
                errors.join("; ")
            )
        });
    }
    let reference = common::resolve_snapshot(Path::new(file), &dir)?;
    let meta = snapshot::read_meta(&reference.path).map_err(|e| e.to_string())?;
    common::progress(format!("verifying {file}"));
    let (loaded, chain) = recovery::load_chain_exact(
        &reference.dir,
        &reference.path,
        data.key(),
        data.state_limits(),
        TreeCheck::Rehash,
    )
    .map_err(|e| reference.own_words(&e))?;
    Ok(Chosen {
        reference,
        loaded,
        chain,
        kind: meta.kind,
    })
}

/// `(seq, kind)` of a file of the snapshots directory: a snapshot, its sidecar or a `.tmp`.
fn snapshot_file_key(path: &Path) -> Option<(u64, SnapshotKind)> {
    let name = path.file_name()?.to_str()?;
    let name = name.strip_suffix(".tmp").unwrap_or(name);
    let name = name.strip_suffix(".sha256").unwrap_or(name);
    snapshot::parse_snapshot_file_name(name.as_ref())
}

/// Order of moving within one snapshot: the `.snap` first (a crash leaves an orphan sidecar, never
/// a snapshot without one), then its sidecar, then leftovers.
fn file_rank(path: &Path) -> u8 {
    let name = path.to_string_lossy();
    if name.ends_with(".snap") {
        0
    } else if name.ends_with(".sha256") {
        1
    } else {
        2
    }
}

fn regular_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(files),
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!("cannot list {}", dir.display())));
        }
    };
    for entry in entries {
        let entry = entry
            .map_err(|e| anyhow::Error::new(e).context(format!("cannot list {}", dir.display())))?;
        if entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// WAL files (segments, compressed segments, `.broken` copies, `.tmp` leftovers): every name that
/// starts with a 20-digit segment name. Anything else is left alone.
fn wal_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    Ok(regular_files(dir)?
        .into_iter()
        .filter(|p| common::segment_first_seq(p).is_some())
        .collect())
}

fn version_check(
    chain: &[PathBuf],
    key: Option<&per_store::EncryptionKey>,
    version: Version,
) -> Value {
    let mut readable = true;
    let mut checks = Vec::new();
    for link in chain {
        let mut item = json!({ "file": path_json(link) });
        let result = snapshot::read_snapshot(link, key)
            .map_err(|e| e.to_string())
            .and_then(|(meta, body)| {
                let image = body.first().copied().map(u16::from).unwrap_or(0);
                item["snapshot_format"] = json!(meta.format_version);
                item["image_format"] = json!(image);
                item["writer_version"] = json!(meta.writer_version);
                common::readable_by(version, Format::SnapshotFile, meta.format_version)?;
                common::readable_by(version, Format::StateImage, image)
            });
        item["readable"] = json!(result.is_ok());
        if let Err(error) = result {
            readable = false;
            item["error"] = json!(error);
        }
        checks.push(item);
    }
    json!({ "version": version.to_string(), "readable": readable, "checks": checks })
}

/// Restores.
pub fn exec(args: RestoreSnapshotArgs) -> anyhow::Result<ExitCode> {
    match args.source {
        Source::Local => {}
        Source::Postgres => return exec_remote(&args, "postgres"),
        Source::S3 => return exec_remote(&args, "s3"),
    }
    if args.to_seq.is_some() || args.to_time.is_some() {
        return Err(Exit::usage(
            "--to-seq/--to-time read the archived WAL: use --source postgres|s3 (a local point-in-time restore is not built yet)",
        ));
    }
    let version: Option<Version> = match &args.version {
        None => None,
        Some(text) => Some(text.parse().map_err(Exit::usage)?),
    };
    let data = args.data.resolve()?;
    let _lock = data.lock_offline()?;
    common::require_key_for_data_dir(&data)?;
    if args.file != "latest" {
        common::require_key_for(&data, [Path::new(&args.file)])?;
    }
    let snapshots_dir = data.snapshots_dir();
    let wal_dir = data.wal_dir();

    let chosen = match choose(&data, &args.file) {
        Ok(chosen) => chosen,
        Err(error) => {
            let out = json!({ "ok": false, "dry_run": args.dry_run, "source_file": args.file, "error": error });
            data.emit(&out, &format!("✗ cannot restore {}: {error}", args.file))?;
            return Ok(ExitCode::from(1));
        }
    };
    let seq = chosen.loaded.tip.0;
    let root = chosen.loaded.state.root();
    let kind = chosen.kind;
    let mut out = json!({
        "ok": true,
        "dry_run": args.dry_run,
        "refused": false,
        "source_file": args.file,
        "seq": seq,
        "kind": kind.as_str(),
        "root": root.to_hex(),
    });
    let mut human = format!(
        "snapshot {} is valid: seq {seq}, {kind}, root {root}\n",
        chosen.reference.given.display()
    );

    if let Some(version) = version {
        let check = version_check(&chosen.chain, data.key(), version);
        let readable = check["readable"].as_bool().unwrap_or(false);
        let first_error = check["checks"]
            .as_array()
            .and_then(|checks| checks.iter().find_map(|c| c["error"].as_str()))
            .unwrap_or("")
            .to_owned();
        human.push_str(&if readable {
            format!("✓ readable by v{version}\n")
        } else {
            format!("✗ not readable by v{version}: {first_error}\n")
        });
        out["version_check"] = check;
        if !readable {
            out["ok"] = json!(false);
            out["error"] = json!(format!("the snapshot is not readable by v{version}"));
            data.emit(&out, &human)?;
            return Ok(ExitCode::from(1));
        }
    }

    // Where F's chain will live.
    let in_place = common::same_path(&chosen.reference.dir, &snapshots_dir);
    let mut imports: Vec<PathBuf> = Vec::new();
    let mut conflicts: Vec<PathBuf> = Vec::new();
    if !in_place {
        for link in &chosen.chain {
            let Some(name) = link.file_name() else {
                continue;
            };
            let dest = snapshots_dir.join(name);
            if dest.exists() {
                let same = common::sha256_file(&dest).ok() == common::sha256_file(link).ok()
                    && snapshot::verify_sidecar(&dest).is_ok();
                if same {
                    continue;
                }
                conflicts.push(dest.clone());
                conflicts.push(snapshot::sidecar_path(&dest));
            }
            imports.push(link.clone());
        }
    }
    let target_name = chosen
        .reference
        .path
        .file_name()
        .map(PathBuf::from)
        .unwrap_or_default();
    let final_path = snapshots_dir.join(&target_name);
    out["snapshot"] = path_json(&final_path);
    out["chain"] = chosen
        .chain
        .iter()
        .map(|link| path_json(&snapshots_dir.join(link.file_name().unwrap_or_default())))
        .collect();

    // What is newer than F.
    let mut newer: Vec<PathBuf> = regular_files(&snapshots_dir)?
        .into_iter()
        .filter(|p| snapshot_file_key(p).is_some_and(|key| key > (seq, kind)))
        .collect();
    newer.extend(conflicts.iter().filter(|p| p.exists()).cloned());
    newer.sort_by_key(|p| (std::cmp::Reverse(snapshot_file_key(p)), file_rank(p)));
    newer.dedup();
    let mut wal = wal_files(&wal_dir)?;
    wal.reverse(); // newest first: what stays is always a prefix

    // The lost-transaction report.
    let read = common::read_wal(&data.wal_options())?;
    let decoded = common::decode_prefix(&read.recovery.frames);
    let lost = common::transactions_after(&decoded.records[..decoded.complete], seq);
    let complete = read.damage.is_none() && decoded.error.is_none();
    out["lost_count"] = json!(lost.len());
    out["lost_seq_range"] = common::seq_range(&lost);
    out["lost_report_complete"] = json!(complete);
    if let Some(damage) = read.damage.as_ref().or(decoded.error.as_ref()) {
        out["wal_damage"] = damage.to_json();
    }
    human.push_str(&format!(
        "{} acknowledged transaction(s) after seq {seq} {} lost{}{}\n",
        lost.len(),
        if args.dry_run { "would be" } else { "are" },
        match common::seq_range(&lost) {
            Value::Null => String::new(),
            range => format!(" (seq {}..={})", range["first"], range["last"]),
        },
        if complete {
            String::new()
        } else {
            " — the WAL is damaged; transactions after the damage cannot be listed".to_owned()
        }
    ));
    for tx in &lost {
        human.push_str(&format!(
            "  lost: seq {} {} receipt {} at {} ms\n",
            tx["seq"],
            tx["kind"].as_str().unwrap_or("?"),
            tx["receipt_id"].as_str().unwrap_or("?"),
            tx["timestamp_ms"]
        ));
    }
    out["lost_transactions"] = Value::Array(lost);

    let replaced_files: Vec<&PathBuf> = wal.iter().chain(newer.iter()).collect();
    let mut replaced = Replaced::plan(&data.dir);
    out["replaced_files"] = replaced_files.iter().map(|p| path_json(p)).collect();
    out["imported"] = imports
        .iter()
        .map(|p| path_json(&snapshots_dir.join(p.file_name().unwrap_or_default())))
        .collect();
    out["replaced_dir"] = if replaced_files.is_empty() {
        Value::Null
    } else {
        path_json(&replaced.dir)
    };
    human.push_str(&format!(
        "{} file(s) {} moved to {}; {} snapshot file(s) {} imported\n",
        replaced_files.len(),
        if args.dry_run || !args.force {
            "would be"
        } else {
            "are"
        },
        replaced.dir.display(),
        imports.len(),
        if args.dry_run || !args.force {
            "would be"
        } else {
            "are"
        },
    ));

    if args.dry_run {
        human.push_str("dry run: nothing changed\n");
        data.emit(&out, &human)?;
        return Ok(ExitCode::SUCCESS);
    }
    if !replaced_files.is_empty() && !args.force {
        out["ok"] = json!(false);
        out["refused"] = json!(true);
        data.emit(&out, &human)?;
        eprintln!(
            "per: refusing to replace {} file(s) without --force (they would be kept in {})",
            replaced_files.len(),
            replaced.dir.display()
        );
        return Ok(ExitCode::from(4));
    }

    // Move aside: the WAL newest first, then newer snapshots newest first; then import F's chain.
    for file in &wal {
        replaced.move_in(file)?;
    }
    for file in &newer {
        if file.exists() {
            replaced.move_in(file)?;
        }
    }
    for link in &imports {
        let Some(name) = link.file_name() else {
            continue;
        };
        let dest = snapshots_dir.join(name);
        std::fs::create_dir_all(&snapshots_dir)?;
        common::copy_file_synced(
            &snapshot::sidecar_path(link),
            &snapshot::sidecar_path(&dest),
        )?;
        common::copy_file_synced(link, &dest)?;
    }
    replaced.sync()?;
    if snapshots_dir.is_dir() {
        common::sync_dir(&snapshots_dir)?;
    }
    if wal_dir.is_dir() {
        common::sync_dir(&wal_dir)?;
    } else {
        std::fs::create_dir_all(&wal_dir)?;
    }

    // The data dir must now recover to F.
    match recovery::recover_read_only(&data.source(), RootCheck::AtEnd) {
        Ok((state, _)) => {
            out["recovered"] = json!({ "seq": state.seq(), "root": state.root().to_hex() });
            if state.seq() != seq || state.root() != root {
                out["ok"] = json!(false);
                out["error"] = json!(format!(
                    "after the restore the data dir recovers to seq {} root {}, not to the snapshot's seq {seq} root {root}",
                    state.seq(),
                    state.root()
                ));
                human.push_str(&format!("✗ {}\n", out["error"].as_str().unwrap_or("")));
            } else {
                human.push_str(&format!(
                    "✓ restored: the data dir now recovers to seq {} root {}; replaced files are in {}\n",
                    state.seq(),
                    state.root(),
                    replaced.dir.display()
                ));
            }
        }
        Err(error) => {
            out["ok"] = json!(false);
            out["error"] = json!(format!("the restored data dir does not recover: {error}"));
            human.push_str(&format!(
                "✗ the restored data dir does not recover: {error}\n"
            ));
        }
    }
    let ok = out["ok"].as_bool().unwrap_or(false);
    data.emit(&out, &human)?;
    Ok(common::exit_ok(ok))
}

/// `--source postgres|s3`: restores a data dir from a remote target (see the module docs).
fn exec_remote(args: &RestoreSnapshotArgs, source: &'static str) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    if args.version.is_some() {
        return Err(Exit::usage(
            "--version applies to --source local; check a remote restore with per verify-backups",
        ));
    }
    let point = match (args.to_seq, args.to_time.as_deref()) {
        (Some(n), _) => Some(crate::cli::restore_point::Point::Seq(n)),
        (None, Some(t)) => Some(crate::cli::restore_point::Point::TimeMs(
            crate::cli::restore_point::parse_time(t).map_err(Exit::usage)?,
        )),
        (None, None) => None,
    };
    let data = args.data.resolve()?;
    std::fs::create_dir_all(&data.dir)
        .map_err(|e| Exit::usage(format!("cannot create {}: {e}", data.dir.display())))?;
    let _lock = data.lock_offline()?;
    let settings = args.backups.settings(&data);
    let mut target = settings.open(source)?;
    let snapshots_dir = data.snapshots_dir();
    let wal_dir = data.wal_dir();
    let mut existing: Vec<PathBuf> = wal_files(&wal_dir)?;
    existing.reverse();
    let mut existing_snapshots = regular_files(&snapshots_dir)?;
    existing_snapshots.sort_by_key(|p| (std::cmp::Reverse(snapshot_file_key(p)), file_rank(p)));
    existing.extend(existing_snapshots);
    let mut out = json!({
        "ok": false,
        "source": source,
        "target": target.describe(),
        "dry_run": args.dry_run,
        "refused": false,
        "source_file": args.file,
    });
    if !existing.is_empty() && !args.force && !args.dry_run {
        out["refused"] = json!(true);
        out["replaced_files"] = existing.iter().map(|p| path_json(p)).collect();
        data.emit(&out, &format!(
            "✗ {} is not empty ({} snapshot/WAL file(s)); pass --force to move them to replaced-<ts>/",
            data.dir.display(),
            existing.len()
        ))?;
        return Err(Exit::refused(format!(
            "refusing to restore into a non-empty data dir {} without --force",
            data.dir.display()
        )));
    }

    common::progress(format!("listing {}", target.describe()));
    let listing = target
        .list()
        .map_err(|e| Exit::unreachable(format!("cannot list the {source} backup target: {e}")))?;
    let catalogue = Catalogue::from_listing(listing);
    let wanted: Option<(u64, SnapshotKind)> = if args.file == "latest" {
        None
    } else {
        let name = Path::new(&args.file)
            .file_name()
            .ok_or_else(|| Exit::usage(format!("--file {}: not a snapshot name", args.file)))?;
        Some(snapshot::parse_snapshot_file_name(name).ok_or_else(|| {
            Exit::usage(format!(
                "--file {}: not a snapshot name (<seq:020>-<full|delta>.snap)",
                args.file
            ))
        })?)
    };
    let usable: Vec<ObjectName> = catalogue
        .snapshots
        .iter()
        .filter(|(_, has_sidecar)| **has_sidecar)
        .map(|(object, _)| object.clone())
        .filter(|object| match (object, wanted) {
            (ObjectName::Snapshot { seq, .. }, Some((wanted_seq, _))) => *seq <= wanted_seq,
            _ => true,
        })
        .filter(|object| match (object, point) {
            // The nearest restore point at or before the requested seq.
            (ObjectName::Snapshot { seq, .. }, Some(crate::cli::restore_point::Point::Seq(n))) => {
                *seq <= n
            }
            _ => true,
        })
        .collect();
    if let Some((seq, kind)) = wanted
        && !usable.contains(&ObjectName::Snapshot { seq, kind })
    {
        out["error"] = json!(format!(
            "{source} holds no snapshot {} with its sidecar",
            args.file
        ));
        data.emit(&out, &format!("✗ {}", out["error"].as_str().unwrap_or("")))?;
        return Ok(ExitCode::from(1));
    }
    let mut fulls: Vec<u64> = usable
        .iter()
        .filter_map(|o| match o {
            ObjectName::Snapshot {
                seq,
                kind: SnapshotKind::Full,
            } => Some(*seq),
            _ => None,
        })
        .collect();
    fulls.sort_unstable_by(|a, b| b.cmp(a));

    let stage = common::Stage::new(Some(&data.dir))?;
    let stage_snapshots = stage.path().join("snapshots");
    std::fs::create_dir_all(&stage_snapshots)?;
    let mut problems: Vec<String> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    let mut fetched: HashSet<ObjectName> = HashSet::new();
    let mut downloaded_objects = 0u64;
    let mut downloaded_bytes = 0u64;
    let mut chosen: Option<(LoadedSnapshot, Vec<PathBuf>, SnapshotKind)> = None;
    let mut errors: BTreeMap<String, String> = BTreeMap::new();
    // Newest full first: fetch it and everything newer, try the restore points among them
    // newest first; when none loads, go one full further back.
    'fulls: for full in &fulls {
        for object in usable
            .iter()
            .filter(|o| matches!(o, ObjectName::Snapshot { seq, .. } if seq >= full))
        {
            if !fetched.insert(object.clone()) {
                continue;
            }
            common::progress(format!("downloading {object}"));
            match per_node::backup::remote::fetch_checked(target.as_mut(), object, stage.path()) {
                Ok(bytes) => {
                    downloaded_objects += 2;
                    downloaded_bytes += bytes;
                }
                Err(FetchError::Object(problem)) => problems.push(format!("{source}:{problem}")),
                Err(FetchError::Target(error)) => {
                    return Err(Exit::unreachable(format!(
                        "the {source} backup target failed during the download: {error}"
                    )));
                }
            }
        }
        let mut candidates: Vec<&ObjectName> = fetched
            .iter()
            .filter(|o| match (o, wanted) {
                (ObjectName::Snapshot { seq, kind }, Some(w)) => (*seq, *kind) == w,
                _ => true,
            })
            .collect();
        candidates.sort_by(|a, b| b.cmp(a));
        for candidate in candidates {
            let path = stage.path().join(candidate.name());
            if !path.is_file() {
                continue;
            }
            if let Some(crate::cli::restore_point::Point::TimeMs(t)) = point
                && snapshot::read_meta(&path).is_ok_and(|meta| meta.created_ms > t)
            {
                continue; // written after the requested time: an older restore point
            }
            common::progress(format!("checking {candidate}"));
            match recovery::load_chain_exact(
                &stage_snapshots,
                &path,
                data.key(),
                data.state_limits(),
                TreeCheck::Rehash,
            ) {
                Ok((loaded, chain)) => {
                    let kind = match candidate {
                        ObjectName::Snapshot { kind, .. } => *kind,
                        _ => SnapshotKind::Full,
                    };
                    chosen = Some((loaded, chain, kind));
                    break 'fulls;
                }
                Err(error) => {
                    errors.insert(candidate.name(), error);
                }
            }
        }
    }
    let Some((loaded, chain, kind)) = chosen else {
        let error = if usable.is_empty() {
            format!("{source} holds no snapshot (with its sidecar) to restore")
        } else {
            format!(
                "no valid restore point in {source}: {}",
                errors
                    .iter()
                    .map(|(name, e)| format!(
                        "{source}:{name}: {}",
                        per_node::backup::remote::name_objects(e, stage.path(), source)
                    ))
                    .chain(problems.iter().cloned())
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        };
        out["error"] = json!(error);
        out["problems"] = json!(problems);
        data.emit(&out, &format!("✗ {error}"))?;
        return Ok(ExitCode::from(1));
    };
    for (name, error) in &errors {
        warnings.push(format!(
            "{source}:{name}: not a valid restore point, skipped: {}",
            per_node::backup::remote::name_objects(error, stage.path(), source)
        ));
    }
    let seq = loaded.tip.0;
    let root = loaded.state.root();
    drop(loaded);
    let chain_names: Vec<String> = chain
        .iter()
        .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned))
        .collect();
    out["seq"] = json!(seq);
    out["kind"] = json!(kind.as_str());
    out["root"] = json!(root.to_hex());
    out["chain"] = chain_names
        .iter()
        .map(|n| json!(format!("snapshots/{n}")))
        .collect();
    let mut human = format!(
        "{source}: restore point seq {seq} ({kind}, chain of {} file(s)), root {root}\n",
        chain.len()
    );

    // Sealed WAL segments after the snapshot: from the one that holds seq + 1 on, one file per
    // segment (the compressed copy when there is one), stopping at the first that is missing or
    // damaged.
    let mut segments: BTreeMap<u64, ObjectName> = BTreeMap::new();
    for (object, has_sidecar) in &catalogue.segments {
        if let ObjectName::Segment {
            first_seq,
            compressed,
        } = object
            && *has_sidecar
        {
            let replace = segments.get(first_seq).is_none_or(|o| {
                !matches!(
                    o,
                    ObjectName::Segment {
                        compressed: true,
                        ..
                    }
                )
            });
            if replace || *compressed {
                segments.insert(*first_seq, object.clone());
            }
        }
    }
    // Live-WAL parts (continuous archiving) stand in for every segment not uploaded sealed.
    let live = catalogue.live_segments();
    let all_firsts: std::collections::BTreeSet<u64> =
        segments.keys().chain(live.keys()).copied().collect();
    let start = all_firsts.range(..=seq + 1).next_back().copied();
    let stage_wal = stage.path().join("wal");
    let mut wal_names: Vec<String> = Vec::new();
    let mut generations: Vec<Value> = Vec::new();
    match start {
        None if !all_firsts.is_empty() => warnings.push(format!(
            "{source}: the WAL copies start at seq {} after the restore point's seq {seq}: not used",
            all_firsts.iter().next().copied().unwrap_or(0)
        )),
        None => {}
        Some(start) => {
            for first in all_firsts.range(start..) {
                if let Some(object) = segments.get(first) {
                    common::progress(format!("downloading {object}"));
                    match per_node::backup::remote::fetch_checked(
                        target.as_mut(),
                        object,
                        stage.path(),
                    ) {
                        Ok(bytes) => {
                            downloaded_objects += 2;
                            downloaded_bytes += bytes;
                            wal_names.push(object.name());
                            continue;
                        }
                        Err(FetchError::Object(problem)) if live.contains_key(first) => {
                            warnings.push(format!(
                                "{source}:{problem}; using its live-WAL parts instead"
                            ));
                        }
                        Err(FetchError::Object(problem)) => {
                            problems.push(format!("{source}:{problem}"));
                            warnings.push(format!(
                                "{source}: WAL segments from {object} on are not restored"
                            ));
                            break;
                        }
                        Err(FetchError::Target(error)) => {
                            return Err(Exit::unreachable(format!(
                                "the {source} backup target failed during the download: {error}"
                            )));
                        }
                    }
                }
                let Some(by_generation) = live.get(first) else {
                    continue;
                };
                common::progress(format!("assembling live WAL segment {first:020}"));
                match per_node::backup::remote::assemble_live_segment(target.as_mut(), by_generation)
                {
                    Ok(assembled) => {
                        downloaded_objects += assembled.parts as u64;
                        downloaded_bytes += assembled.downloaded_bytes;
                        let name = format!("wal/{}", per_store::wal::segment_file_name(*first));
                        per_node::backup::remote::write_file(
                            &stage.path().join(&name),
                            &assembled.bytes,
                        )
                        .map_err(Exit::problem)?;
                        generations.push(json!({
                            "segment": name,
                            "generation": assembled.generation,
                            "parts": assembled.parts,
                            "last_seq": assembled.last_seq,
                        }));
                        human.push_str(&format!(
                            "{source}: {name} rebuilt from {} live-WAL part(s) of generation {} (up to seq {})\n",
                            assembled.parts, assembled.generation, assembled.last_seq
                        ));
                        wal_names.push(name);
                    }
                    Err(FetchError::Object(problem)) => {
                        problems.push(format!(
                            "{source}: live WAL segment {first:020} cannot be rebuilt: {problem}"
                        ));
                        warnings.push(format!(
                            "{source}: WAL segments from {first:020} on are not restored"
                        ));
                        break;
                    }
                    Err(FetchError::Target(error)) => {
                        return Err(Exit::unreachable(format!(
                            "the {source} backup target failed during the download: {error}"
                        )));
                    }
                }
            }
        }
    }
    out["live_wal"] = json!(generations);
    // Point-in-time: cut the staged WAL at the requested group (fails, named, when it does not
    // reach it).
    if let Some(point) = point {
        let mut opts = data.wal_options();
        opts.dir = stage_wal.clone();
        match crate::cli::restore_point::cut_wal(&opts, seq, point, true) {
            Ok(cut) => {
                out["to"] = json!({
                    "requested": point.describe(),
                    "seq": cut.seq,
                    "root": cut.root.to_hex(),
                    "timestamp_ms": cut.timestamp_ms,
                    "time": crate::cli::restore_point::rfc3339(cut.timestamp_ms),
                    "archive_end_seq": cut.wal_end_seq,
                });
                out["lost_count"] = json!(cut.after.len());
                out["lost_seq_range"] = common::seq_range(&cut.after);
                human.push_str(&format!(
                    "point in time {}: through seq {} (group committed at {}), root {}; {} later transaction(s) in the archive not restored\n",
                    point.describe(),
                    cut.seq,
                    crate::cli::restore_point::rfc3339(cut.timestamp_ms),
                    cut.root,
                    cut.after.len()
                ));
                out["lost_transactions"] = Value::Array(cut.after);
                // Segments the cut removed are no longer placed.
                wal_names.retain(|name| {
                    stage.path().join(name).is_file()
                        || stage.path().join(name.trim_end_matches(".zst")).is_file()
                });
                for name in &mut wal_names {
                    if !stage.path().join(&*name).is_file() {
                        *name = name.trim_end_matches(".zst").to_owned();
                    }
                }
            }
            Err(error) => {
                out["error"] = json!(error);
                out["problems"] = json!(problems);
                data.emit(&out, &format!("✗ {error}"))?;
                return Ok(ExitCode::from(1));
            }
        }
    }
    out["downloaded_objects"] = json!(downloaded_objects);
    out["downloaded_bytes"] = json!(downloaded_bytes);

    if args.dry_run {
        out["ok"] = json!(problems.is_empty());
        out["wal_segments"] = json!(wal_names);
        out["problems"] = json!(problems);
        out["warnings"] = json!(warnings);
        out["elapsed_ms"] = json!(started.elapsed().as_millis() as u64);
        human.push_str(&format!(
            "would restore {} snapshot file(s) and {} WAL segment(s); dry run: nothing changed\n",
            chain.len(),
            wal_names.len()
        ));
        data.emit(&out, &human)?;
        return Ok(common::exit_ok(problems.is_empty()));
    }

    // Move what is there aside, then put the chain and the WAL in place.
    let mut replaced = Replaced::plan(&data.dir);
    for file in &existing {
        if file.exists() {
            replaced.move_in(file)?;
        }
    }
    replaced.sync()?;
    out["replaced_dir"] = if existing.is_empty() {
        Value::Null
    } else {
        path_json(&replaced.dir)
    };
    std::fs::create_dir_all(&snapshots_dir)?;
    std::fs::create_dir_all(&wal_dir)?;
    for link in &chain {
        let Some(name) = link.file_name() else {
            continue;
        };
        let dest = snapshots_dir.join(name);
        // Sidecar first, as a snapshot write does: a .snap never appears without it.
        std::fs::rename(snapshot::sidecar_path(link), snapshot::sidecar_path(&dest))?;
        std::fs::rename(link, &dest)?;
    }
    common::sync_dir(&snapshots_dir)?;
    let mut placed_wal: Vec<PathBuf> = Vec::new();
    for name in &wal_names {
        let file = name.trim_start_matches("wal/");
        let dest = wal_dir.join(file);
        std::fs::rename(stage_wal.join(file), &dest)?;
        placed_wal.push(dest);
    }
    common::sync_dir(&wal_dir)?;

    // The data dir must now recover; WAL copies that add nothing after the snapshot go (a node
    // appending to an old segment would leave a gap in it), and so do copies that do not replay.
    let mut recovered = recovery::recover_read_only(&data.source(), RootCheck::AtEnd);
    let mut drop_wal = match &recovered {
        Ok((state, _)) => state.seq() == seq && !placed_wal.is_empty(),
        Err(error) => {
            problems.push(format!(
                "{source}: the restored WAL segments do not replay after the snapshot: {error}"
            ));
            true
        }
    };
    if placed_wal.is_empty() {
        drop_wal = false;
    }
    if drop_wal {
        for file in &placed_wal {
            std::fs::remove_file(file)?;
        }
        common::sync_dir(&wal_dir)?;
        placed_wal.clear();
        recovered = recovery::recover_read_only(&data.source(), RootCheck::AtEnd);
    }
    out["wal_segments"] = placed_wal
        .iter()
        .map(|p| {
            json!(format!(
                "wal/{}",
                p.file_name().and_then(|n| n.to_str()).unwrap_or("")
            ))
        })
        .collect();
    match recovered {
        Ok((state, _)) => {
            out["recovered"] = json!({ "seq": state.seq(), "root": state.root().to_hex() });
            human.push_str(&format!(
                "✓ restored from {source}: {} snapshot file(s), {} WAL segment(s); the data dir recovers to seq {} root {}\n",
                chain.len(),
                placed_wal.len(),
                state.seq(),
                state.root()
            ));
        }
        Err(error) => {
            problems.push(format!("the restored data dir does not recover: {error}"));
            human.push_str(&format!(
                "✗ the restored data dir does not recover: {error}\n"
            ));
        }
    }
    for problem in &problems {
        human.push_str(&format!("❌ {problem}\n"));
    }
    for warning in &warnings {
        human.push_str(&format!("warning: {warning}\n"));
    }
    let ok = problems.is_empty();
    out["ok"] = json!(ok);
    out["snapshot"] =
        path_json(&snapshots_dir.join(chain_names.last().cloned().unwrap_or_default()));
    out["problems"] = json!(problems);
    out["warnings"] = json!(warnings);
    out["downloaded_objects"] = json!(downloaded_objects);
    out["downloaded_bytes"] = json!(downloaded_bytes);
    out["elapsed_ms"] = json!(started.elapsed().as_millis() as u64);
    data.emit(&out, &human)?;
    Ok(common::exit_ok(ok))
}
