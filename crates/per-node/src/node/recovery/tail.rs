//! Judging the WAL's tail before anything is cut: only the one commit group that can never have
//! been acknowledged may go, and never below the newest snapshot's seq.

use super::error::RecoveryError;
use super::report::RecoverySource;
use super::restore_point::newest_snapshot_evidence;
use per_core::WalRecord;
use per_store::Wal;

/// Judges the WAL's tail against the snapshots before anything is cut (reads the last segment
/// only, read-only): a cut is allowed only for the one group that can never have been
/// acknowledged. Refuses when the WAL, cut or not, would end below the newest snapshot's seq
/// (that data was acknowledged), and when the cut is larger than one commit group.
///
/// What "knows better" here is the data dir's own snapshots (any file whose header reads). The
/// backup uploader keeps no local record of what each target holds, so a target's copy cannot be
/// consulted at start; every snapshot it holds was a local snapshot first.
pub(super) fn judge_tail(source: &RecoverySource, snapshot_seq: u64) -> Result<(), RecoveryError> {
    if !source.wal.dir.is_dir() {
        return Ok(());
    }
    let mut opts = source.wal.clone();
    opts.replay_from_seq = u64::MAX; // every sealed segment skipped: only the last one is read
    let scan = Wal::scan(&source.wal.dir, &opts)?;
    let evidence = newest_snapshot_evidence(&source.snapshots_dir);
    let (evidence_path, evidence_seq) = match evidence {
        Some((path, seq)) if seq >= snapshot_seq => (path, seq),
        _ => (source.snapshots_dir.clone(), snapshot_seq),
    };
    let Some(last) = scan.segments.last() else {
        if evidence_seq > 0 {
            tracing::warn!(
                snapshot_seq = evidence_seq,
                "starting from a snapshot with an empty WAL (as after `per restore-snapshot`)"
            );
        }
        return Ok(());
    };
    let mut last_end: Option<(u64, u64)> = None; // (seq, end offset) of the last GroupEnd
    let mut unfinished = 0usize;
    let mut unfinished_from = None;
    for frame in &scan.frames {
        let Some((seq, group_end)) = WalRecord::peek_seq(&frame.data) else {
            return Err(RecoveryError::Record {
                segment: frame.pos.segment.clone(),
                offset: frame.pos.offset,
                source: WalRecord::decode(&frame.data)
                    .err()
                    .unwrap_or(per_core::RecordError::Empty),
            });
        };
        if group_end {
            last_end = Some((seq, frame.pos.end));
            unfinished = 0;
            unfinished_from = None;
        } else {
            unfinished += 1;
            unfinished_from.get_or_insert(frame.pos.offset);
        }
    }
    let wal_end_seq = last_end.map_or(last.first_seq.saturating_sub(1), |(seq, _)| seq);
    let torn_bytes = scan.torn_tail.as_ref().map_or(0, |torn| torn.bytes);
    let cut = scan.torn_tail.is_some() || unfinished > 0;
    let cut_offset = unfinished_from
        .or(scan.torn_tail.as_ref().map(|torn| torn.offset))
        .unwrap_or(last.intact_bytes);
    if wal_end_seq < evidence_seq {
        return Err(if cut {
            RecoveryError::TailDamageBelowSnapshot {
                segment: last.path.clone(),
                offset: cut_offset,
                torn_bytes,
                unfinished_records: unfinished,
                wal_end_seq,
                evidence: evidence_path,
                evidence_seq,
            }
        } else {
            RecoveryError::WalBehindSnapshot {
                wal_end_seq,
                last_segment: last.path.clone(),
                evidence: evidence_path,
                evidence_seq,
            }
        });
    }
    if cut {
        let cut_bytes = last.file_bytes.saturating_sub(cut_offset);
        // One group: at most `group_records_max` records and their end, each at most a full frame.
        let frame_max =
            u64::from(source.wal.record_bytes_max) + 8 + per_store::SEAL_OVERHEAD as u64;
        let group_bytes_max = frame_max.saturating_mul(source.group_records_max as u64 + 1);
        if unfinished > source.group_records_max || cut_bytes > group_bytes_max {
            return Err(RecoveryError::TailCutTooLarge {
                segment: last.path.clone(),
                offset: cut_offset,
                unfinished_records: unfinished,
                bytes: cut_bytes,
                group_records_max: source.group_records_max,
            });
        }
    }
    Ok(())
}
