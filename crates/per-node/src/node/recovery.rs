//! Start-up recovery: the newest valid snapshot chain, then every WAL record after it, replayed
//! through the same code path as execution (DESIGN.md §4–5).
//!
//! Snapshots: every candidate is fully checked (sidecar, header, key, decryption, inner checksum,
//! decode, tree shape and root, delta roots); an invalid one is reported and skipped, never trusted,
//! and the next older restore point is tried. WAL: a torn tail is cut by the WAL (with a `.broken`
//! copy); a commit group without its `GroupEnd` at the very end was never acknowledged and is cut
//! too; anything else that does not decode, is out of sequence (a gap, or a WAL that starts after
//! the snapshot), contradicts the state, or ends in a different root is corruption, and the node
//! refuses to start. The replay rehashes the tree once at the end (not once per group) and compares
//! with the last logged root, which keeps restarts fast.
//!
//! Layout: this file holds the two entry points, [`recover`] and [`recover_read_only`]; the
//! restore-point choice and chain loading are in `restore_point`, the judgement of the WAL's tail
//! before anything is cut in `tail`, decoding and replaying WAL records in `wal_replay`, and the
//! input, report and error types in `report` and `error`.

mod error;
mod report;
mod restore_point;
mod tail;
mod wal_replay;

pub use error::RecoveryError;
pub use report::{RecoveryReport, RecoverySource, SkippedSnapshot};
pub use restore_point::{
    LoadedSnapshot, chain_files_exact, load_chain, load_chain_exact, newest_valid_snapshot,
};
pub use wal_replay::{DecodedFrames, ReplayStats, RootCheck, decode_frames, replay};

use per_core::{State, TreeCheck};
use per_store::{FramePos, Wal};
use tail::judge_tail;
use wal_replay::decode_after;

fn load_start_state(
    source: &RecoverySource,
    report: &mut RecoveryReport,
) -> Result<State, RecoveryError> {
    let (loaded, skipped) = newest_valid_snapshot(
        &source.snapshots_dir,
        source.key.as_deref(),
        source.limits,
        TreeCheck::StoredNodes,
    )
    .map_err(RecoveryError::Snapshots)?;
    for skip in &skipped {
        tracing::error!(path = %skip.path.display(), reason = %skip.reason, "invalid snapshot skipped");
    }
    report.skipped_snapshots = skipped;
    Ok(match loaded {
        Some(loaded) => {
            report.snapshot = Some(loaded.path);
            report.snapshot_tip = Some(loaded.tip);
            loaded.state
        }
        None => State::new(source.limits),
    })
}

/// Rebuilds the state from the data directory and opens the WAL for appending (cutting a torn
/// tail and an unfinished group, once [`judge_tail`] found that cut to be the one group that was
/// never acknowledged).
///
/// Reads only what the restore point does not cover: sealed segments wholly at or before it are
/// not opened, and frames at or before it are not decoded.
pub fn recover(source: RecoverySource) -> Result<(State, Wal, RecoveryReport), RecoveryError> {
    let mut report = RecoveryReport::default();
    let mut state = load_start_state(&source, &mut report)?;
    let snapshot_seq = state.seq();
    judge_tail(&source, snapshot_seq)?;
    let mut opts = source.wal;
    opts.replay_from_seq = snapshot_seq;
    let (mut wal, recovered) = Wal::open(opts)?;
    report.segments_skipped = recovered.segments.iter().filter(|s| s.skipped).count();
    report.segments = recovered.segments.len() - report.segments_skipped;
    report.torn_tail = recovered.torn_tail.clone();
    let after = decode_after(&recovered.frames, snapshot_seq)?;
    report.records_skipped = after.skipped;
    let (records, complete) = (after.records, after.complete);
    if complete < records.len() {
        report.unfinished_group_records = records.len() - complete;
        let keep: Option<FramePos> = match complete.checked_sub(1) {
            Some(i) => Some(records[i].1.clone()),
            None => after
                .covered_end
                .clone()
                .or_else(|| end_of_last_skipped(&recovered)),
        };
        tracing::warn!(
            records = report.unfinished_group_records,
            "cutting an unfinished commit group at the WAL tail (never acknowledged)"
        );
        wal.truncate_after(keep.as_ref())?;
    }
    let stats = replay(&mut state, &records[..complete], RootCheck::AtEnd)?;
    report.transactions = stats.transactions;
    report.groups = stats.groups;
    // The WAL now ends exactly at the state's seq: `judge_tail` refused a WAL that does not reach
    // the restore point, and the replay above consumed every complete group after it (an empty WAL,
    // moved aside by `restore-snapshot`, resumes after the snapshot). From here on the writer
    // refuses any group that does not start at the next seq, the first one after a restart included.
    wal.resume_after(state.seq());
    Ok((state, wal, report))
}

/// The end of the last segment recovery did not open, as a frame position: an unfinished group
/// alone in the segment after it is cut back to there (the writer knows that segment by its size).
fn end_of_last_skipped(recovered: &per_store::Recovery) -> Option<FramePos> {
    let read_frames_before_tail = recovered.frames.iter().any(|frame| {
        recovered
            .segments
            .last()
            .is_some_and(|last| frame.pos.segment_first_seq != last.first_seq)
    });
    if read_frames_before_tail {
        return None;
    }
    let summary = recovered.segments.iter().rev().nth(1)?;
    summary.skipped.then(|| FramePos {
        segment: summary.path.clone(),
        segment_first_seq: summary.first_seq,
        offset: 0,
        end: summary.intact_bytes,
    })
}

/// The same rebuild without writing anything (offline verify verbs): a torn tail or an unfinished
/// group is reported, not cut.
pub fn recover_read_only(
    source: &RecoverySource,
    check: RootCheck,
) -> Result<(State, RecoveryReport), RecoveryError> {
    let mut report = RecoveryReport::default();
    let mut state = load_start_state(source, &mut report)?;
    let recovered = Wal::scan(&source.wal.dir, &source.wal)?;
    report.segments = recovered.segments.len();
    report.torn_tail = recovered.torn_tail.clone();
    let (records, complete) = decode_frames(&recovered.frames)?;
    report.unfinished_group_records = records.len() - complete;
    let stats = replay(&mut state, &records[..complete], check)?;
    report.transactions = stats.transactions;
    report.groups = stats.groups;
    Ok((state, report))
}
