//! The runbook's `replay_wal` (`per replay-wal --from-snapshot latest|F [--dry-run] [--force]`):
//! loads a snapshot chain (rehashing every leaf), replays the WAL after it checking every commit group's
//! root, and stops at the first problem, naming its seq (when known), segment and byte offset.
//!
//! `latest` is the newest valid restore point (none: the empty state, as start-up). Reads only,
//! unless `--force`: offline (the data dir's `LOCK`, or alongside a node with `--url`).
//!
//! `--force` (offline only) with a problem found makes the data dir startable again: the WAL from
//! the problem on goes to `<data-dir>/replaced-<unix-ts>/wal/` — later segments are moved; the
//! problem's own segment is copied there and truncated after the last complete commit group
//! before the problem (fsynced), or moved whole when no such group is in it or it is compressed.
//! The lost-transaction report lists the acknowledged transactions that are then no longer
//! recoverable. `--force` repairs only relative to the restore point the node starts from (the
//! newest valid one): with an older `--from-snapshot`, it refuses (exit 4). `--dry-run` says what
//! `--force` would do. Without a problem, `--force` changes nothing.
//!
//! `--json`: `{ok, snapshot, snapshot_seq, from_seq, replayed_transactions, replayed_groups,
//! last_seq, root, problem?: {seq?, segment, offset, error}, warnings, repair?: {dry_run, done,
//! replaced_dir, moved, truncated?: {segment, offset, copy}, lost_transactions, lost_count,
//! lost_seq_range, lost_report_complete, recovered?: {seq, root}, error?}}`. Exit 1 when a problem
//! was found (also when `--force` set it aside), 0 otherwise.

use crate::data_dir::{Access, DataDir};
use crate::error::ProcedureError;
use crate::files::{Replaced, path_json, sync_dir, with_suffix};
use crate::node_client::AdminToken;
use crate::report::{Report, progress};
use crate::snapshot_ref::resolve_snapshot;
use crate::wal_read::{
    Decoded, WalRead, decode_prefix, read_wal, segment_first_seq, seq_range, transactions_after,
};
use per_core::{Field, State, TreeCheck, WalRecord};
use per_node::node::recovery::{self, RecoveryError, RootCheck};
use per_store::FramePos;
use per_store::snapshot;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// Where the replay stopped.
struct Problem {
    seq: Option<u64>,
    segment: PathBuf,
    offset: u64,
    error: String,
    /// Index in the decoded records of the first record not kept (records.len() when past them).
    index: usize,
}

impl Problem {
    fn to_json(&self) -> Value {
        let mut value = json!({
            "segment": path_json(&self.segment),
            "offset": self.offset,
            "error": self.error,
        });
        if let Some(seq) = self.seq {
            value["seq"] = json!(seq);
        }
        value
    }
}

/// The state to start from.
struct Start {
    path: Option<PathBuf>,
    tip: Option<(u64, [u8; 32])>,
    state: State,
}

fn start_from(data: &DataDir, from: &str, warnings: &mut Vec<String>) -> Result<Start, String> {
    let dir = data.snapshots_dir();
    if from == "latest" {
        let listed = snapshot::list_snapshots(&dir).map_err(|e| e.to_string())?;
        for entry in listed.snapshots.iter().rev() {
            progress(format!("loading {}", entry.path.display()));
            match recovery::load_chain_exact(
                &dir,
                &entry.path,
                data.key(),
                data.state_limits(),
                TreeCheck::Rehash,
            ) {
                Ok((loaded, _)) => {
                    return Ok(Start {
                        path: Some(entry.path.clone()),
                        tip: Some(loaded.tip),
                        state: loaded.state,
                    });
                }
                Err(error) => warnings.push(format!("invalid snapshot skipped: {error}")),
            }
        }
        return Ok(Start {
            path: None,
            tip: None,
            state: State::new(data.state_limits()),
        });
    }
    let reference = resolve_snapshot(Path::new(from), &dir)?;
    progress(format!("loading {from}"));
    let (loaded, _) = reference.load_rehashed(data.key(), data.state_limits())?;
    Ok(Start {
        path: Some(reference.given.clone()),
        tip: Some(loaded.tip),
        state: loaded.state,
    })
}

fn index_of(records: &[(WalRecord, FramePos)], segment: &Path, offset: u64) -> Option<usize> {
    records
        .iter()
        .position(|(_, pos)| pos.segment == segment && pos.offset == offset)
}

/// Replays complete groups one at a time; returns (transactions, groups, last good seq and root,
/// the first problem).
fn replay_groups(
    state: &mut State,
    records: &[(WalRecord, FramePos)],
    complete: usize,
) -> (u64, u64, (u64, Field), Option<Problem>) {
    let mut transactions = 0;
    let mut groups = 0;
    let mut last_good = (state.seq(), state.root());
    let mut start = 0;
    for end in 0..complete {
        if !matches!(records[end].0, WalRecord::GroupEnd { .. }) {
            continue;
        }
        let group: Vec<(WalRecord, &FramePos)> = records[start..=end]
            .iter()
            .map(|(record, pos)| (record.clone(), pos))
            .collect();
        let before = state.seq();
        match recovery::replay(state, &group, RootCheck::EveryGroup) {
            Ok(stats) => {
                transactions += stats.transactions;
                groups += stats.groups;
                last_good = (state.seq(), state.root());
            }
            Err(error) => {
                let problem = match &error {
                    RecoveryError::Replay {
                        segment, offset, ..
                    }
                    | RecoveryError::Record {
                        segment, offset, ..
                    } => {
                        let index = index_of(records, segment, *offset).unwrap_or(start);
                        Problem {
                            seq: Some(records[index].0.seq()),
                            segment: segment.clone(),
                            offset: *offset,
                            error: error.to_string(),
                            index,
                        }
                    }
                    RecoveryError::WalGap { wal_first_seq, .. } => {
                        let index = (start..=end)
                            .find(|&i| records[i].0.seq() > before)
                            .unwrap_or(start);
                        Problem {
                            seq: Some(*wal_first_seq),
                            segment: records[index].1.segment.clone(),
                            offset: records[index].1.offset,
                            error: error.to_string(),
                            index,
                        }
                    }
                    _ => Problem {
                        seq: Some(records[end].0.seq()),
                        segment: records[end].1.segment.clone(),
                        offset: records[end].1.offset,
                        error: error.to_string(),
                        index: start,
                    },
                };
                return (transactions, groups, last_good, Some(problem));
            }
        }
        start = end + 1;
    }
    (transactions, groups, last_good, None)
}

/// What to replay, and whether to repair.
#[derive(Debug, Clone, Default)]
pub struct ReplayPlan {
    /// The snapshot to replay from: a file, or `latest`.
    pub from_snapshot: String,
    /// With `force`: say what would be moved; change nothing.
    pub dry_run: bool,
    /// Set the WAL from the first problem on aside so the node can start.
    pub force: bool,
    /// Work alongside this running node instead of taking the `LOCK` (not with `force`).
    pub url: Option<String>,
    /// The node's admin token.
    pub token: AdminToken,
}

impl ReplayPlan {
    /// The usage error of `--force` with `--url` (checked before anything else).
    pub fn check(&self) -> Result<(), ProcedureError> {
        if self.force && self.url.is_some() {
            return Err(ProcedureError::Usage(
                "--force works offline: stop the node (it holds the data dir's LOCK) and run without --url".to_owned(),
            ));
        }
        Ok(())
    }
}

/// Replays (see the module docs); exit 1 when a problem was found.
pub fn replay(data: &DataDir, plan: &ReplayPlan) -> Result<Report, ProcedureError> {
    plan.check()?;
    let _access = if plan.force {
        Access::Locked(data.lock_offline()?)
    } else {
        Access::acquire(data, plan.url.as_deref(), &plan.token)?
    };
    data.require_key_for_data_dir()?;
    if plan.from_snapshot != "latest" {
        data.require_key_for([Path::new(&plan.from_snapshot)])?;
    }
    let mut warnings = Vec::new();
    let start = match start_from(data, &plan.from_snapshot, &mut warnings) {
        Ok(start) => start,
        Err(error) => {
            let out = json!({
                "ok": false,
                "snapshot": plan.from_snapshot,
                "problem": { "error": error.clone() },
                "warnings": warnings,
            });
            let human = format!("✗ cannot load {}: {error}", plan.from_snapshot);
            return Ok(Report::with_exit(1, out, human));
        }
    };
    let snapshot_seq = start.state.seq();
    let mut state = start.state;

    progress("reading the WAL");
    let read = read_wal(&data.wal_options())?;
    if let Some(torn) = &read.recovery.torn_tail {
        warnings.push(format!(
            "torn tail in {} at offset {} ({} bytes, never acknowledged; start-up cuts it): {}",
            torn.segment.display(),
            torn.offset,
            torn.bytes,
            torn.damage
        ));
    }
    let decoded = decode_prefix(&read.recovery.frames);
    if decoded.unfinished() > 0 && decoded.error.is_none() && read.damage.is_none() {
        warnings.push(format!(
            "{} record(s) of an unfinished commit group at the WAL tail (never acknowledged; start-up cuts them)",
            decoded.unfinished()
        ));
    }
    progress(format!(
        "replaying {} record(s) after seq {snapshot_seq}",
        decoded.complete
    ));
    let (transactions, groups, last_good, mut problem) =
        replay_groups(&mut state, &decoded.records, decoded.complete);
    if problem.is_none()
        && let Some(damage) = read.damage.as_ref().or(decoded.error.as_ref())
    {
        problem = Some(Problem {
            seq: None,
            segment: damage.segment.clone(),
            offset: damage.offset,
            error: damage.error.clone(),
            index: decoded.records.len(),
        });
    }
    let (last_seq, root) = last_good;
    let mut out = json!({
        "ok": problem.is_none(),
        "snapshot": start.path.as_deref().map(path_json),
        "snapshot_seq": snapshot_seq,
        "from_seq": snapshot_seq + 1,
        "replayed_transactions": transactions,
        "replayed_groups": groups,
        "last_seq": last_seq,
        "root": root.to_hex(),
        "warnings": warnings,
    });
    let mut human = format!(
        "replayed {transactions} transaction(s) in {groups} group(s) from {} (seq {snapshot_seq}): last good seq {last_seq}, root {root}\n",
        start
            .path
            .as_deref()
            .map_or("the empty state".to_owned(), |p| p.display().to_string())
    );
    for warning in &warnings {
        human.push_str(&format!("warning: {warning}\n"));
    }
    let Some(problem) = problem else {
        human.push_str("✓ every group's root matches the log\n");
        if plan.force {
            human.push_str("no problem: --force changed nothing\n");
        }
        return Ok(Report::with_exit(0, out, human));
    };
    out["problem"] = problem.to_json();
    human.push_str(&format!(
        "✗ problem{} in {} at offset {}: {}\n",
        problem
            .seq
            .map_or(String::new(), |s| format!(" at seq {s}")),
        problem.segment.display(),
        problem.offset,
        problem.error
    ));
    if plan.force || plan.dry_run {
        let repair = repair(
            data, plan, &start.tip, &decoded, &read, &problem, &mut human,
        )?;
        out["repair"] = repair;
    }
    Ok(Report::with_exit(1, out, human))
}

/// Plans (and with `--force` and not `--dry-run`, does) the set-aside of the WAL from the problem.
fn repair(
    data: &DataDir,
    plan: &ReplayPlan,
    tip: &Option<(u64, [u8; 32])>,
    decoded: &Decoded,
    read: &WalRead,
    problem: &Problem,
    human: &mut String,
) -> Result<Value, ProcedureError> {
    let dry_run = plan.dry_run || !plan.force;
    // Repair only makes sense for the restore point the node starts from.
    let (newest, _) = recovery::newest_valid_snapshot(
        &data.snapshots_dir(),
        data.key(),
        data.state_limits(),
        TreeCheck::StoredNodes,
    )
    .map_err(ProcedureError::Problem)?;
    if newest.as_ref().map(|n| n.tip) != *tip {
        let message = format!(
            "--force repairs the WAL relative to the restore point the node starts from ({}); replay from it (--from-snapshot latest), or restore this snapshot first (per restore-snapshot)",
            newest
                .as_ref()
                .map_or("none: the empty state".to_owned(), |n| n
                    .path
                    .display()
                    .to_string())
        );
        if !dry_run {
            return Err(ProcedureError::Refused(message));
        }
        human.push_str(&format!("note: {message}\n"));
    }
    let base_seq = newest.as_ref().map_or(0, |n| n.tip.0);

    let wal_dir = data.wal_dir();
    let problem_first = segment_first_seq(&problem.segment).unwrap_or(0);
    let kept_end: Option<(usize, &FramePos, u64)> = decoded.records
        [..problem.index.min(decoded.complete)]
        .iter()
        .enumerate()
        .rev()
        .find_map(|(i, (record, pos))| match record {
            WalRecord::GroupEnd { seq_last, .. } => Some((i, pos, *seq_last)),
            WalRecord::Tx { .. } | WalRecord::Settlement { .. } => None,
        });
    let problem_plain = problem.segment.to_string_lossy().ends_with(".wal");
    let truncate = kept_end
        .filter(|(_, pos, _)| pos.segment == problem.segment && problem_plain)
        .filter(|_| !with_suffix(&problem.segment, ".zst").exists())
        .map(|(_, pos, _)| pos.end);

    // Files to move: later segments (and their .broken copies), and the problem's segment unless
    // it is truncated.
    let mut moves: Vec<PathBuf> = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&wal_dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(first) = segment_first_seq(&path) else {
                continue;
            };
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let is_segment = name.ends_with(".wal") || name.ends_with(".wal.zst");
            if first > problem_first || (first == problem_first && is_segment && truncate.is_none())
            {
                moves.push(path);
            }
        }
    }
    moves.sort();
    moves.reverse();

    let kept_seq = kept_end.map_or(0, |(_, _, seq)| seq);
    let predicted = kept_seq.max(base_seq);
    let after_kept = kept_end.map_or(0, |(i, _, _)| i + 1);
    let lost = transactions_after(&decoded.records[after_kept..decoded.complete], predicted);
    let complete = read.damage.is_none() && decoded.error.is_none();
    let mut replaced = Replaced::plan(&data.dir);
    let mut value = json!({
        "dry_run": dry_run,
        "done": false,
        "replaced_dir": path_json(&replaced.dir),
        "moved": moves.iter().map(|p| path_json(p)).collect::<Vec<_>>(),
        "lost_count": lost.len(),
        "lost_seq_range": seq_range(&lost),
        "lost_report_complete": complete,
        "kept_last_seq": kept_seq,
    });
    if let Some(offset) = truncate {
        value["truncated"] = json!({
            "segment": path_json(&problem.segment),
            "offset": offset,
            "copy": path_json(&replaced.dir.join("wal").join(problem.segment.file_name().unwrap_or_default())),
        });
    }
    human.push_str(&format!(
        "{} the WAL from the problem on: {}{} file(s) moved to {}; {} acknowledged transaction(s) after seq {predicted} lost{}\n",
        if dry_run { "would set aside" } else { "setting aside" },
        truncate.map_or(String::new(), |o| format!("{} truncated at offset {o} (copy kept), ", problem.segment.display())),
        moves.len(),
        replaced.dir.display(),
        lost.len(),
        if complete { "" } else { " (more after the damage cannot be listed)" }
    ));
    value["lost_transactions"] = Value::Array(lost);
    if dry_run {
        human.push_str("dry run: nothing changed\n");
        return Ok(value);
    }

    for file in &moves {
        replaced.move_in(file)?;
    }
    if let Some(offset) = truncate {
        replaced.copy_in(&problem.segment)?;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&problem.segment)
            .map_err(ProcedureError::io(format!(
                "cannot open {}",
                problem.segment.display()
            )))?;
        file.set_len(offset)
            .and_then(|()| file.sync_all())
            .map_err(ProcedureError::io(format!(
                "cannot truncate {}",
                problem.segment.display()
            )))?;
    }
    replaced.sync()?;
    sync_dir(&wal_dir)?;
    value["done"] = json!(true);
    match recovery::recover_read_only(&data.source(), RootCheck::AtEnd) {
        Ok((state, _)) => {
            value["recovered"] = json!({ "seq": state.seq(), "root": state.root().to_hex() });
            human.push_str(&format!(
                "✓ the data dir now recovers to seq {} root {}\n",
                state.seq(),
                state.root()
            ));
        }
        Err(error) => {
            value["error"] = json!(format!("the data dir still does not recover: {error}"));
            human.push_str(&format!("✗ the data dir still does not recover: {error}\n"));
        }
    }
    Ok(value)
}
