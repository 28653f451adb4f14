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

use crate::cli::common::{self, Access, BackupArgs, DataDir, DataDirArgs, NodeArgs};
use clap::{Args, ValueEnum};
use per_core::{TreeCheck, WalRecord};
use per_node::backup::remote::{self, Catalogue, FetchError};
use per_node::node::recovery;
use per_store::snapshot::{self, SnapshotKind};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::path::PathBuf;
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

impl TargetName {
    fn as_str(self) -> &'static str {
        match self {
            TargetName::Local => "local",
            TargetName::Postgres => "postgres",
            TargetName::S3 => "s3",
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

/// What one target's check found.
struct Report {
    problems: Vec<String>,
    warnings: Vec<String>,
    /// Counts for `--json`.
    json: Value,
    /// A one-line summary.
    summary: String,
}

/// Verifies.
pub fn exec(args: VerifyBackupsArgs) -> anyhow::Result<ExitCode> {
    let data = args.data.resolve()?;
    let check = if args.deep {
        TreeCheck::Rehash
    } else {
        TreeCheck::StoredNodes
    };
    let settings = args.backups.settings(&data);
    let targets: Vec<TargetName> = match args.target {
        Some(target) => vec![target],
        None => {
            // On a machine that lost its data dir (the complete-disaster case), check the remote
            // targets alone rather than refusing.
            let mut targets = if settings.configured().is_empty() || data.dir.is_dir() {
                vec![TargetName::Local]
            } else {
                Vec::new()
            };
            for name in settings.configured() {
                targets.push(if name == "postgres" {
                    TargetName::Postgres
                } else {
                    TargetName::S3
                });
            }
            targets
        }
    };
    let mut out = json!({});
    let mut problems: Vec<String> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    let mut per_target = serde_json::Map::new();
    let mut human = String::new();
    let mut unreachable = false;
    for target in targets {
        let name = target.as_str();
        let report = match target {
            TargetName::Local => {
                let _access = Access::acquire(&data, &args.node)?;
                common::require_key_for_data_dir(&data)?;
                let report = verify_dir(&data, check)?;
                if let Value::Object(fields) = &report.json {
                    for (key, value) in fields {
                        out[key] = value.clone();
                    }
                }
                report
            }
            TargetName::Postgres | TargetName::S3 => {
                match verify_remote(&data, &settings, name, check)? {
                    Ok(report) => report,
                    Err(error) => {
                        unreachable = true;
                        human.push_str(&format!("{name}: ✗ unreachable: {error}\n"));
                        per_target.insert(
                            name.to_owned(),
                            json!({ "ok": false, "reachable": false, "error": error, "problems": [], "warnings": [] }),
                        );
                        continue;
                    }
                }
            }
        };
        let ok = report.problems.is_empty();
        let mut entry = report.json.clone();
        entry["ok"] = json!(ok);
        entry["reachable"] = json!(true);
        entry["problems"] = json!(report.problems);
        entry["warnings"] = json!(report.warnings);
        per_target.insert(name.to_owned(), entry);
        human.push_str(&format!("{name}: {}\n", report.summary));
        for problem in &report.problems {
            human.push_str(&format!("❌ {problem}\n"));
        }
        for warning in &report.warnings {
            human.push_str(&format!("warning: {warning}\n"));
        }
        problems.extend(report.problems);
        warnings.extend(report.warnings);
    }
    if !per_target.contains_key("local") && args.target.is_none() {
        warnings.push(format!(
            "local: no data directory at {}: only the remote targets were checked",
            data.dir.display()
        ));
    }
    let ok = problems.is_empty() && !unreachable;
    out["ok"] = json!(ok);
    out["problems"] = json!(problems);
    out["warnings"] = json!(warnings);
    out["targets"] = Value::Object(per_target);
    human.push_str(if ok {
        "✓ All backups verified\n"
    } else if problems.is_empty() {
        "❌ a backup target could not be reached\n"
    } else {
        "❌ backup verification found problems\n"
    });
    data.emit(&out, &human)?;
    Ok(if !problems.is_empty() {
        ExitCode::from(1)
    } else if unreachable {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

/// Downloads a remote target into a scratch directory (checking every object against its
/// sidecar) and checks that copy like a data dir. `Ok(Err(message))` when unreachable.
fn verify_remote(
    data: &DataDir,
    settings: &per_node::backup::BackupSettings,
    name: &str,
    check: TreeCheck,
) -> anyhow::Result<Result<Report, String>> {
    let mut target = settings.open(name)?;
    common::progress(format!("listing {}", target.describe()));
    let listing = match target.list() {
        Ok(listing) => listing,
        Err(error) => return Ok(Err(error.to_string())),
    };
    let catalogue = Catalogue::from_listing(listing);
    let stage = common::Stage::new(None)?;
    std::fs::create_dir_all(stage.path().join("snapshots"))?;
    std::fs::create_dir_all(stage.path().join("wal"))?;
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    for unknown in &catalogue.unknown {
        warnings.push(format!("{name}:{unknown}: unknown object"));
    }
    for orphan in &catalogue.orphan_sidecars {
        warnings.push(format!("{name}:{orphan}: sidecar without its object"));
    }
    let mut downloaded_bytes = 0u64;
    let objects: Vec<(&per_store::ObjectName, &bool)> = catalogue
        .snapshots
        .iter()
        .chain(catalogue.segments.iter())
        .collect();
    for (i, (object, has_sidecar)) in objects.iter().enumerate() {
        if !**has_sidecar {
            warnings.push(format!(
                "{name}:{object}: no sidecar yet (an upload in progress or interrupted); not checked"
            ));
            continue;
        }
        common::progress(format!(
            "{name}: downloading {object} ({}/{})",
            i + 1,
            objects.len()
        ));
        match remote::fetch_checked(target.as_mut(), object, stage.path()) {
            Ok(bytes) => downloaded_bytes += bytes,
            Err(FetchError::Object(problem)) => problems.push(format!("{name}:{problem}")),
            Err(FetchError::Target(error)) => return Ok(Err(error.to_string())),
        }
    }
    let (generations, live_bytes) = match verify_live_parts(target.as_mut(), &catalogue, name)? {
        Ok(checked) => checked,
        Err(error) => return Ok(Err(error)),
    };
    downloaded_bytes += live_bytes;
    let staged = DataDir {
        dir: stage.path().to_owned(),
        cluster: data.cluster.clone(),
        key: data.key.clone(),
        limits: data.limits.clone(),
        json: data.json,
        config_backups: per_node::backup::BackupSettings::default(),
    };
    let report = verify_dir(&staged, check)?;
    problems.extend(
        report
            .problems
            .iter()
            .map(|p| remote::name_objects(p, stage.path(), name)),
    );
    warnings.extend(
        report
            .warnings
            .iter()
            .map(|w| remote::name_objects(w, stage.path(), name)),
    );
    let mut json = report.json;
    json["target"] = json!(target.describe());
    json["objects"] = json!(catalogue.objects.len());
    json["bytes"] = json!(catalogue.total_bytes());
    json["downloaded_bytes"] = json!(downloaded_bytes);
    json["generations"] = generations.json;
    problems.extend(generations.problems);
    warnings.extend(generations.warnings);
    Ok(Ok(Report {
        problems,
        warnings,
        json,
        summary: format!(
            "{} ({} object(s)): {}",
            target.describe(),
            catalogue.objects.len(),
            report.summary
        ),
    }))
}

/// What the live-WAL parts of a target showed.
struct Generations {
    json: Value,
    problems: Vec<String>,
    warnings: Vec<String>,
}

/// Live-WAL parts: every part downloaded and checked (digest, header against name), and each
/// generation proven continuous: sorted by first seq, each part starts right after the previous
/// one ends (a gap or an overlap is a problem; a part that repeats a range from the same first
/// seq, from a retried upload, is a warning). Returns the report and the bytes downloaded, or the
/// target's error.
fn verify_live_parts(
    target: &mut dyn per_store::BackupTarget,
    catalogue: &Catalogue,
    name: &str,
) -> anyhow::Result<Result<(Generations, u64), String>> {
    use per_store::backup::live::{LivePartName, decode_part};
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let mut by_generation: std::collections::BTreeMap<&str, Vec<&LivePartName>> =
        std::collections::BTreeMap::new();
    for part in &catalogue.live_parts {
        by_generation
            .entry(part.generation.as_str())
            .or_default()
            .push(part);
    }
    let mut bytes_total = 0u64;
    let mut json = serde_json::Map::new();
    for (generation, mut parts) in by_generation {
        parts.sort_by_key(|p| (p.first_seq, std::cmp::Reverse(p.last_seq)));
        let mut previous: Option<&LivePartName> = None;
        let mut gaps = 0u64;
        let mut overlaps = 0u64;
        for part in &parts {
            common::progress(format!("{name}: checking {part}"));
            match target.get(&part.name()) {
                Ok(bytes) => {
                    bytes_total += bytes.len() as u64;
                    match decode_part(&bytes) {
                        Ok((header, _))
                            if header.first_seq == part.first_seq
                                && header.last_seq == part.last_seq
                                && header.segment_first_seq == part.segment_first_seq => {}
                        Ok(_) => problems
                            .push(format!("{name}:{part}: its header does not match its name")),
                        Err(error) => problems.push(format!("{name}:{part}: {error}")),
                    }
                }
                Err(error) if error.is_unreachable() => return Ok(Err(error.to_string())),
                Err(error) => problems.push(format!("{name}:{part}: {error}")),
            }
            if let Some(prev) = previous {
                if part.first_seq == prev.first_seq {
                    warnings.push(format!(
                        "{name}:{part}: repeats the range of {prev} (a retried upload); the longer one is used"
                    ));
                    continue;
                }
                if part.first_seq > prev.last_seq + 1 {
                    gaps += 1;
                    problems.push(format!(
                        "{name}: generation {generation} has a gap: seqs {}..={} are in no part (between {prev} and {part})",
                        prev.last_seq + 1,
                        part.first_seq - 1
                    ));
                } else if part.first_seq <= prev.last_seq {
                    overlaps += 1;
                    problems.push(format!(
                        "{name}: generation {generation}: {part} overlaps {prev}"
                    ));
                }
            }
            if previous.is_none_or(|p| part.last_seq > p.last_seq) {
                previous = Some(part);
            }
        }
        json.insert(
            generation.to_owned(),
            json!({
                "parts": parts.len(),
                "first_seq": parts.first().map(|p| p.first_seq),
                "last_seq": parts.iter().map(|p| p.last_seq).max(),
                "gaps": gaps,
                "overlaps": overlaps,
                "continuous": gaps == 0 && overlaps == 0,
            }),
        );
    }
    Ok(Ok((
        Generations {
            json: Value::Object(json),
            problems,
            warnings,
        },
        bytes_total,
    )))
}

/// The checks of one data directory (or a downloaded copy of a target).
fn verify_dir(data: &DataDir, check: TreeCheck) -> anyhow::Result<Report> {
    let mut problems: Vec<String> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();

    // Snapshots.
    let dir = data.snapshots_dir();
    let listed = snapshot::list_snapshots(&dir)
        .map_err(|e| crate::cli::exit::Exit::problem(format!("cannot list snapshots: {e}")))?;
    for tmp in &listed.tmp_files {
        warnings.push(format!(
            "{}: leftover of an interrupted snapshot write",
            tmp.display()
        ));
    }
    for orphan in &listed.orphan_sidecars {
        warnings.push(format!(
            "{}: sidecar without its snapshot",
            orphan.display()
        ));
    }
    for unknown in &listed.unknown_files {
        warnings.push(format!("{}: unknown file in snapshots/", unknown.display()));
    }
    let mut reported: HashSet<PathBuf> = HashSet::new();
    for (i, entry) in listed.snapshots.iter().enumerate() {
        common::progress(format!(
            "checksum {} ({}/{})",
            entry.path.display(),
            i + 1,
            listed.snapshots.len()
        ));
        let result = entry
            .meta
            .as_ref()
            .map_err(ToString::to_string)
            .and_then(|_| snapshot::verify_sidecar(&entry.path).map_err(|e| e.to_string()));
        if let Err(error) = result {
            problems.push(format!("{}: {error}", entry.path.display()));
            reported.insert(entry.path.clone());
        }
    }
    // Newest first: a snapshot's chain loads every link, so older links already loaded are not
    // read again (chains are linear); a link of a chain that failed is tried on its own.
    let mut loaded: HashSet<PathBuf> = HashSet::new();
    for entry in listed.snapshots.iter().rev() {
        if entry.meta.is_err() || loaded.contains(&entry.path) || reported.contains(&entry.path) {
            continue;
        }
        common::progress(format!("loading the chain of {}", entry.path.display()));
        match recovery::load_chain_exact(&dir, &entry.path, data.key(), data.state_limits(), check)
        {
            Ok((_, chain)) => loaded.extend(chain),
            Err(error) => {
                problems.push(format!(
                    "{}: its chain does not load: {error}",
                    entry.path.display()
                ));
                reported.insert(entry.path.clone());
            }
        }
    }
    let restore_points = listed
        .snapshots
        .iter()
        .filter(|s| loaded.contains(&s.path))
        .count();
    let oldest_full = listed
        .snapshots
        .iter()
        .filter(|s| s.kind == SnapshotKind::Full && loaded.contains(&s.path))
        .map(|s| s.seq)
        .min();
    let newest_restore_point = listed
        .snapshots
        .iter()
        .filter(|s| loaded.contains(&s.path))
        .map(|s| s.seq)
        .max();

    // WAL.
    common::progress("reading the WAL");
    let wal_dir = data.wal_dir();
    let segments = if wal_dir.is_dir() {
        per_store::list_segments(&wal_dir)
            .map_err(|e| crate::cli::exit::Exit::problem(format!("cannot list the WAL: {e}")))?
    } else {
        Vec::new()
    };
    let read = common::read_wal(&data.wal_options())?;
    if let Some(damage) = &read.damage {
        problems.push(damage.error.clone());
    }
    if let Some(torn) = &read.recovery.torn_tail {
        warnings.push(format!(
            "{}: torn tail at offset {} ({} bytes, never acknowledged; start-up cuts it and keeps a .broken copy): {}",
            torn.segment.display(),
            torn.offset,
            torn.bytes,
            torn.damage
        ));
    }
    for broken in &read.recovery.broken_files {
        warnings.push(format!(
            "{}: bytes cut off by an earlier recovery, kept for inspection",
            broken.display()
        ));
    }
    for unknown in &read.recovery.unknown_files {
        warnings.push(format!("{}: unknown file in wal/", unknown.display()));
    }
    let decoded = common::decode_prefix(&read.recovery.frames);
    if let Some(error) = &decoded.error {
        problems.push(format!(
            "{} at offset {}: {}",
            error.segment.display(),
            error.offset,
            error.error
        ));
    }
    if decoded.unfinished() > 0 && read.damage.is_none() && decoded.error.is_none() {
        warnings.push(format!(
            "{} record(s) of an unfinished commit group at the WAL tail (never acknowledged; start-up cuts them)",
            decoded.unfinished()
        ));
    }
    // Sequence continuity inside the WAL.
    let mut expected: Option<u64> = None;
    let mut first_seq: Option<u64> = None;
    for (record, pos) in &decoded.records {
        match record {
            WalRecord::Tx { seq, .. } | WalRecord::Settlement { seq, .. } => {
                first_seq.get_or_insert(*seq);
                if let Some(next) = expected
                    && *seq != next
                {
                    problems.push(format!(
                        "{} at offset {}: sequence gap: expected seq {next}, found {seq}",
                        pos.segment.display(),
                        pos.offset
                    ));
                    break;
                }
                expected = Some(seq + 1);
            }
            WalRecord::GroupEnd { seq_last, .. } => {
                if let Some(next) = expected
                    && *seq_last + 1 != next
                {
                    problems.push(format!(
                        "{} at offset {}: group end for seq {seq_last} after seq {}",
                        pos.segment.display(),
                        pos.offset,
                        next - 1
                    ));
                    break;
                }
            }
        }
    }
    let wal_last_seq = decoded.last_group().map(|(seq, _)| seq);
    // Continuity with the snapshots.
    if let Some(first) = first_seq {
        let limit = newest_restore_point.map_or(1, |seq| seq + 1);
        if first > limit {
            problems.push(match newest_restore_point {
                Some(seq) => format!(
                    "the WAL starts at seq {first} but the newest valid restore point is at seq {seq}: transactions {}..{} are in no WAL segment, so the node cannot recover to its last seq",
                    seq + 1,
                    first - 1
                ),
                None => format!(
                    "the WAL starts at seq {first} and no snapshot covers seqs 1..{}",
                    first - 1
                ),
            });
        } else if let Some(oldest) = oldest_full
            && first > oldest + 1
        {
            warnings.push(format!(
                "the WAL starts at seq {first}: restore points before seq {} can be restored but not rolled forward",
                first - 1
            ));
        }
    }

    let json = json!({
        "snapshots": listed.snapshots.len(),
        "restore_points": restore_points,
        "segments": segments.len(),
        "wal_first_seq": first_seq,
        "wal_last_seq": wal_last_seq,
    });
    let summary = format!(
        "{} snapshot(s) ({restore_points} restore point(s)), {} WAL segment(s), WAL seq {}..{}",
        listed.snapshots.len(),
        segments.len(),
        first_seq.map_or("-".to_owned(), |s| s.to_string()),
        wal_last_seq.map_or("-".to_owned(), |s| s.to_string()),
    );
    Ok(Report {
        problems,
        warnings,
        json,
        summary,
    })
}
