//! Restoring from a remote backup target (`--source postgres|s3`, the runbook's "Complete
//! disaster"): the newest valid chain (or the chain of `--file NAME`) and the WAL after it, sealed
//! segments or live-WAL parts, optionally cut at a point in time.

use super::plan::RestorePlan;
use super::point;
use super::scan::{file_rank, regular_files, snapshot_file_key, wal_files};
use crate::data_dir::DataDir;
use crate::error::ProcedureError;
use crate::files::{Replaced, Stage, path_json, sync_dir};
use crate::report::{Report, progress};
use crate::wal_read::seq_range;
use per_core::TreeCheck;
use per_node::backup::remote::{Catalogue, FetchError};
use per_node::node::recovery::{self, LoadedSnapshot, RootCheck};
use per_store::ObjectName;
use per_store::snapshot::{self, SnapshotKind};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// `--source postgres|s3`: restores a data dir from a remote target (see the module docs).
pub fn restore_remote(
    data: &DataDir,
    plan: &RestorePlan,
    source: &'static str,
) -> Result<Report, ProcedureError> {
    let started = Instant::now();
    let point = plan.point;
    std::fs::create_dir_all(&data.dir)
        .map_err(|e| ProcedureError::Usage(format!("cannot create {}: {e}", data.dir.display())))?;
    let _lock = data.lock_offline()?;
    let mut target = plan
        .backups
        .open(source)
        .map_err(|e| ProcedureError::Usage(format!("{e:#}")))?;
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
        "dry_run": plan.dry_run,
        "refused": false,
        "source_file": plan.file,
    });
    if !existing.is_empty() && !plan.force && !plan.dry_run {
        out["refused"] = json!(true);
        out["replaced_files"] = existing.iter().map(|p| path_json(p)).collect();
        let human = format!(
            "✗ {} is not empty ({} snapshot/WAL file(s)); pass --force to move them to replaced-<ts>/",
            data.dir.display(),
            existing.len()
        );
        let message = format!(
            "refusing to restore into a non-empty data dir {} without --force",
            data.dir.display()
        );
        return Ok(Report::failing(4, message, out, human));
    }

    progress(format!("listing {}", target.describe()));
    let listing = target.list().map_err(|e| {
        ProcedureError::Unreachable(format!("cannot list the {source} backup target: {e}"))
    })?;
    let catalogue = Catalogue::from_listing(listing);
    let wanted: Option<(u64, SnapshotKind)> = if plan.file == "latest" {
        None
    } else {
        let name = Path::new(&plan.file).file_name().ok_or_else(|| {
            ProcedureError::Usage(format!("--file {}: not a snapshot name", plan.file))
        })?;
        Some(snapshot::parse_snapshot_file_name(name).ok_or_else(|| {
            ProcedureError::Usage(format!(
                "--file {}: not a snapshot name (<seq:020>-<full|delta>.snap)",
                plan.file
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
            (ObjectName::Snapshot { seq, .. }, Some(point::Point::Seq(n))) => *seq <= n,
            _ => true,
        })
        .collect();
    if let Some((seq, kind)) = wanted
        && !usable.contains(&ObjectName::Snapshot { seq, kind })
    {
        out["error"] = json!(format!(
            "{source} holds no snapshot {} with its sidecar",
            plan.file
        ));
        let human = format!("✗ {}", out["error"].as_str().unwrap_or(""));
        return Ok(Report::with_exit(1, out, human));
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

    let stage = Stage::new(Some(&data.dir))?;
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
            progress(format!("downloading {object}"));
            match per_node::backup::remote::fetch_checked(target.as_mut(), object, stage.path()) {
                Ok(bytes) => {
                    downloaded_objects += 2;
                    downloaded_bytes += bytes;
                }
                Err(FetchError::Object(problem)) => problems.push(format!("{source}:{problem}")),
                Err(FetchError::Target(error)) => {
                    return Err(ProcedureError::Unreachable(format!(
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
            if let Some(point::Point::TimeMs(t)) = point
                && snapshot::read_meta(&path).is_ok_and(|meta| meta.created_ms > t)
            {
                continue; // written after the requested time: an older restore point
            }
            progress(format!("checking {candidate}"));
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
        let human = format!("✗ {error}");
        return Ok(Report::with_exit(1, out, human));
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
                    progress(format!("downloading {object}"));
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
                            return Err(ProcedureError::Unreachable(format!(
                                "the {source} backup target failed during the download: {error}"
                            )));
                        }
                    }
                }
                let Some(by_generation) = live.get(first) else {
                    continue;
                };
                progress(format!("assembling live WAL segment {first:020}"));
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
                        .map_err(ProcedureError::Problem)?;
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
                        return Err(ProcedureError::Unreachable(format!(
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
        match point::cut_wal(&opts, seq, point, true) {
            Ok(cut) => {
                out["to"] = json!({
                    "requested": point.describe(),
                    "seq": cut.seq,
                    "root": cut.root.to_hex(),
                    "timestamp_ms": cut.timestamp_ms,
                    "time": point::rfc3339(cut.timestamp_ms),
                    "archive_end_seq": cut.wal_end_seq,
                });
                out["lost_count"] = json!(cut.after.len());
                out["lost_seq_range"] = seq_range(&cut.after);
                human.push_str(&format!(
                    "point in time {}: through seq {} (group committed at {}), root {}; {} later transaction(s) in the archive not restored\n",
                    point.describe(),
                    cut.seq,
                    point::rfc3339(cut.timestamp_ms),
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
                let human = format!("✗ {error}");
                return Ok(Report::with_exit(1, out, human));
            }
        }
    }
    out["downloaded_objects"] = json!(downloaded_objects);
    out["downloaded_bytes"] = json!(downloaded_bytes);

    if plan.dry_run {
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
        return Ok(Report::ok_if(problems.is_empty(), out, human));
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
    sync_dir(&snapshots_dir)?;
    let mut placed_wal: Vec<PathBuf> = Vec::new();
    for name in &wal_names {
        let file = name.trim_start_matches("wal/");
        let dest = wal_dir.join(file);
        std::fs::rename(stage_wal.join(file), &dest)?;
        placed_wal.push(dest);
    }
    sync_dir(&wal_dir)?;

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
        sync_dir(&wal_dir)?;
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
    Ok(Report::ok_if(ok, out, human))
}
