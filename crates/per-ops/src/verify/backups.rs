//! The runbook's `scripts/verify_backups.sh` (`per verify-backups [--deep]`; checksums plus
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

use super::dir::{TargetReport, verify_dir};
use crate::data_dir::{Access, DataDir};
use crate::error::ProcedureError;
use crate::files::Stage;
use crate::node_client::AdminToken;
use crate::report::{Report, progress};
use per_core::TreeCheck;
use per_node::backup::remote::{self, Catalogue, FetchError};
use serde_json::{Value, json};

/// A backup target to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetName {
    /// The data dir itself.
    Local,
    /// The Postgres target (`PER_DATABASE_URL`).
    Postgres,
    /// The S3/R2 target (`PER_BACKUP_S3_URL`).
    S3,
}

impl TargetName {
    /// The target's name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetName::Local => "local",
            TargetName::Postgres => "postgres",
            TargetName::S3 => "s3",
        }
    }
}

/// What to check.
#[derive(Debug, Clone)]
pub struct VerifyBackupsPlan {
    /// Rehash every leaf of every snapshot instead of trusting stored tree nodes.
    pub deep: bool,
    /// Check only this target [default: local and every configured remote target].
    pub target: Option<TargetName>,
    /// The remote targets (flags and environment over the config file).
    pub backups: per_node::backup::BackupSettings,
    /// Work alongside this running node instead of taking the `LOCK` (local target).
    pub url: Option<String>,
    /// The node's admin token.
    pub token: AdminToken,
}

/// Verifies (see the module docs); exit 1 on a problem, 3 when a target could not be reached.
pub fn verify_backups(data: &DataDir, plan: &VerifyBackupsPlan) -> Result<Report, ProcedureError> {
    let check = if plan.deep {
        TreeCheck::Rehash
    } else {
        TreeCheck::StoredNodes
    };
    let settings = &plan.backups;
    let targets: Vec<TargetName> = match plan.target {
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
                let _access = Access::acquire(data, plan.url.as_deref(), &plan.token)?;
                data.require_key_for_data_dir()?;
                let report = verify_dir(data, check)?;
                if let Value::Object(fields) = &report.json {
                    for (key, value) in fields {
                        out[key] = value.clone();
                    }
                }
                report
            }
            TargetName::Postgres | TargetName::S3 => {
                match verify_remote(data, settings, name, check)? {
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
    if !per_target.contains_key("local") && plan.target.is_none() {
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
    let exit = if !problems.is_empty() {
        1
    } else if unreachable {
        3
    } else {
        0
    };
    Ok(Report::with_exit(exit, out, human))
}

/// Downloads a remote target into a scratch directory (checking every object against its
/// sidecar) and checks that copy like a data dir. `Ok(Err(message))` when unreachable.
fn verify_remote(
    data: &DataDir,
    settings: &per_node::backup::BackupSettings,
    name: &str,
    check: TreeCheck,
) -> Result<Result<TargetReport, String>, ProcedureError> {
    let mut target = settings
        .open(name)
        .map_err(|e| ProcedureError::Usage(format!("{e:#}")))?;
    progress(format!("listing {}", target.describe()));
    let listing = match target.list() {
        Ok(listing) => listing,
        Err(error) => return Ok(Err(error.to_string())),
    };
    let catalogue = Catalogue::from_listing(listing);
    let stage = Stage::new(None)?;
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
        progress(format!(
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
    Ok(Ok(TargetReport {
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
) -> Result<Result<(Generations, u64), String>, ProcedureError> {
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
            progress(format!("{name}: checking {part}"));
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
