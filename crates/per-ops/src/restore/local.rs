//! Restoring from the data dir's own snapshots (or a file named by the operator): verify F's
//! chain, report what is lost, move everything newer aside, import F's chain, recover read-only.

use super::plan::RestorePlan;
use super::scan::{file_rank, regular_files, snapshot_file_key, version_check, wal_files};
use crate::data_dir::DataDir;
use crate::error::ProcedureError;
use crate::files::{Replaced, copy_file_synced, path_json, same_path, sha256_file, sync_dir};
use crate::report::{Report, progress};
use crate::snapshot_ref::{SnapshotRef, resolve_snapshot};
use crate::wal_read::{decode_prefix, read_wal, seq_range, transactions_after};
use per_core::TreeCheck;
use per_node::node::recovery::{self, LoadedSnapshot, RootCheck};
use per_store::snapshot::{self, SnapshotKind};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

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
            progress(format!("checking {}", entry.path.display()));
            match recovery::load_chain_exact(
                &dir,
                &entry.path,
                data.key(),
                data.state_limits(),
                TreeCheck::Rehash,
            ) {
                Ok((loaded, chain)) => {
                    let reference = resolve_snapshot(&entry.path, &dir)?;
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
    let reference = resolve_snapshot(Path::new(file), &dir)?;
    let meta = snapshot::read_meta(&reference.path).map_err(|e| e.to_string())?;
    progress(format!("verifying {file}"));
    let (loaded, chain) = reference.load_rehashed(data.key(), data.state_limits())?;
    Ok(Chosen {
        reference,
        loaded,
        chain,
        kind: meta.kind,
    })
}

/// `--source local`.
pub fn restore_local(data: &DataDir, plan: &RestorePlan) -> Result<Report, ProcedureError> {
    let _lock = data.lock_offline()?;
    data.require_key_for_data_dir()?;
    if plan.file != "latest" {
        data.require_key_for([Path::new(&plan.file)])?;
    }
    let snapshots_dir = data.snapshots_dir();
    let wal_dir = data.wal_dir();

    let chosen = match choose(data, &plan.file) {
        Ok(chosen) => chosen,
        Err(error) => {
            let out = json!({ "ok": false, "dry_run": plan.dry_run, "source_file": plan.file, "error": error });
            let human = format!("✗ cannot restore {}: {error}", plan.file);
            return Ok(Report::with_exit(1, out, human));
        }
    };
    let seq = chosen.loaded.tip.0;
    let root = chosen.loaded.state.root();
    let kind = chosen.kind;
    let mut out = json!({
        "ok": true,
        "dry_run": plan.dry_run,
        "refused": false,
        "source_file": plan.file,
        "seq": seq,
        "kind": kind.as_str(),
        "root": root.to_hex(),
    });
    let mut human = format!(
        "snapshot {} is valid: seq {seq}, {kind}, root {root}\n",
        chosen.reference.given.display()
    );

    if let Some(version) = plan.version {
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
            return Ok(Report::with_exit(1, out, human));
        }
    }

    // Where F's chain will live.
    let in_place = same_path(&chosen.reference.dir, &snapshots_dir);
    let mut imports: Vec<PathBuf> = Vec::new();
    let mut conflicts: Vec<PathBuf> = Vec::new();
    if !in_place {
        for link in &chosen.chain {
            let Some(name) = link.file_name() else {
                continue;
            };
            let dest = snapshots_dir.join(name);
            if dest.exists() {
                let same = sha256_file(&dest).ok() == sha256_file(link).ok()
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
    let read = read_wal(&data.wal_options())?;
    let decoded = decode_prefix(&read.recovery.frames);
    let lost = transactions_after(&decoded.records[..decoded.complete], seq);
    let complete = read.damage.is_none() && decoded.error.is_none();
    out["lost_count"] = json!(lost.len());
    out["lost_seq_range"] = seq_range(&lost);
    out["lost_report_complete"] = json!(complete);
    if let Some(damage) = read.damage.as_ref().or(decoded.error.as_ref()) {
        out["wal_damage"] = damage.to_json();
    }
    human.push_str(&format!(
        "{} acknowledged transaction(s) after seq {seq} {} lost{}{}\n",
        lost.len(),
        if plan.dry_run { "would be" } else { "are" },
        match seq_range(&lost) {
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
        if plan.dry_run || !plan.force {
            "would be"
        } else {
            "are"
        },
        replaced.dir.display(),
        imports.len(),
        if plan.dry_run || !plan.force {
            "would be"
        } else {
            "are"
        },
    ));

    if plan.dry_run {
        human.push_str("dry run: nothing changed\n");
        return Ok(Report::with_exit(0, out, human));
    }
    if !replaced_files.is_empty() && !plan.force {
        out["ok"] = json!(false);
        out["refused"] = json!(true);
        let message = format!(
            "refusing to replace {} file(s) without --force (they would be kept in {})",
            replaced_files.len(),
            replaced.dir.display()
        );
        return Ok(Report::failing(4, message, out, human));
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
        copy_file_synced(
            &snapshot::sidecar_path(link),
            &snapshot::sidecar_path(&dest),
        )?;
        copy_file_synced(link, &dest)?;
    }
    replaced.sync()?;
    if snapshots_dir.is_dir() {
        sync_dir(&snapshots_dir)?;
    }
    if wal_dir.is_dir() {
        sync_dir(&wal_dir)?;
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
    Ok(Report::ok_if(ok, out, human))
}
