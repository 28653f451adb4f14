//! The checks of one data directory, or of a downloaded copy of a backup target: snapshot
//! sidecars, chains (newest first), the WAL read to its end, sequence continuity, and that the WAL
//! continues the newest valid restore point.

use crate::data_dir::DataDir;
use crate::error::ProcedureError;
use crate::report::progress;
use crate::wal_read::{decode_prefix, read_wal};
use per_core::{TreeCheck, WalRecord};
use per_node::node::recovery;
use per_store::snapshot::{self, SnapshotKind};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::path::PathBuf;

/// What one target's check found.
pub(crate) struct TargetReport {
    pub(crate) problems: Vec<String>,
    pub(crate) warnings: Vec<String>,
    /// Counts for `--json`.
    pub(crate) json: Value,
    /// A one-line summary.
    pub(crate) summary: String,
}

/// The checks of one data directory (or a downloaded copy of a target).
pub(crate) fn verify_dir(data: &DataDir, check: TreeCheck) -> Result<TargetReport, ProcedureError> {
    let mut problems: Vec<String> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();

    // Snapshots.
    let dir = data.snapshots_dir();
    let listed = snapshot::list_snapshots(&dir)
        .map_err(|e| ProcedureError::Problem(format!("cannot list snapshots: {e}")))?;
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
        progress(format!(
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
        progress(format!("loading the chain of {}", entry.path.display()));
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
    progress("reading the WAL");
    let wal_dir = data.wal_dir();
    let segments = if wal_dir.is_dir() {
        per_store::list_segments(&wal_dir)
            .map_err(|e| ProcedureError::Problem(format!("cannot list the WAL: {e}")))?
    } else {
        Vec::new()
    };
    let read = read_wal(&data.wal_options())?;
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
    let decoded = decode_prefix(&read.recovery.frames);
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
    Ok(TargetReport {
        problems,
        warnings,
        json,
        summary,
    })
}
