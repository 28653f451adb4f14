//! Decoding WAL records and replaying them onto the restored state through the same code path as
//! execution, with the sequence and root checks that make a damaged WAL refuse to start.

use super::error::RecoveryError;
use per_core::{ReplayError, State, WalRecord};
use per_store::FramePos;

/// How often replay checks the logged root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RootCheck {
    /// Rehash at every `GroupEnd` and compare (`per replay-wal`: finds the first divergent group).
    EveryGroup,
    /// Rehash once at the end and compare with the last logged root (start-up: fast).
    AtEnd,
}

/// What a replay did.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReplayStats {
    /// Transactions applied.
    pub transactions: u64,
    /// Groups closed.
    /// Settlement records applied.
    pub settlement_events: u64,
    pub groups: u64,
}

/// Decoded records with their positions, and how many of them form complete commit groups.
pub type DecodedFrames<'a> = (Vec<(WalRecord, &'a FramePos)>, usize);

/// Decodes intact WAL frames and finds how many form complete commit groups.
pub fn decode_frames(
    frames: &[per_store::RecoveredFrame],
) -> Result<DecodedFrames<'_>, RecoveryError> {
    let mut records = Vec::with_capacity(frames.len());
    for frame in frames {
        let record = WalRecord::decode(&frame.data).map_err(|source| RecoveryError::Record {
            segment: frame.pos.segment.clone(),
            offset: frame.pos.offset,
            source,
        })?;
        records.push((record, &frame.pos));
    }
    let complete = records
        .iter()
        .rposition(|(record, _)| matches!(record, WalRecord::GroupEnd { .. }))
        .map_or(0, |last_end| last_end + 1);
    Ok((records, complete))
}

/// Applies the records after `state.seq()` (those before are covered by the snapshot) and checks
/// roots as asked. Stops at the first problem, naming the segment and offset.
pub fn replay(
    state: &mut State,
    records: &[(WalRecord, &FramePos)],
    check: RootCheck,
) -> Result<ReplayStats, RecoveryError> {
    state.check_every_group(matches!(check, RootCheck::EveryGroup));
    let snapshot_seq = state.seq();
    let mut stats = ReplayStats::default();
    let mut checked_continuity = false;
    for (record, pos) in records {
        if record.seq() <= snapshot_seq {
            continue; // covered by the snapshot
        }
        if !checked_continuity {
            checked_continuity = true;
            let first = match record {
                WalRecord::Tx { seq, .. } | WalRecord::Settlement { seq, .. } => *seq,
                WalRecord::GroupEnd { .. } => record.seq() + 1,
            };
            if first != snapshot_seq + 1 {
                return Err(RecoveryError::WalGap {
                    snapshot_seq,
                    wal_first_seq: first,
                });
            }
        }
        let at = |source| RecoveryError::Replay {
            segment: pos.segment.clone(),
            offset: pos.offset,
            source,
        };
        match record {
            WalRecord::Tx { seq, effects, .. } => {
                state.apply_effects(*seq, effects).map_err(at)?;
                stats.transactions += 1;
            }
            WalRecord::Settlement { seq, event, .. } => {
                state.apply_settlement(*seq, event).map_err(at)?;
                stats.settlement_events += 1;
            }
            WalRecord::GroupEnd { seq_last, root, .. } => {
                if *seq_last != state.seq() {
                    return Err(at(ReplayError::OutOfSequence {
                        expected: state.seq(),
                        found: *seq_last,
                    }));
                }
                match check {
                    RootCheck::EveryGroup => state.seal_replayed_group(*root).map_err(at)?,
                    RootCheck::AtEnd => state.close_replayed_group_deferred(*root),
                }
                stats.groups += 1;
            }
        }
    }
    state.check_every_group(false);
    state.verify_deferred().map_err(RecoveryError::FinalRoot)?;
    Ok(stats)
}

/// Records after the restore point, decoded, with how many form complete groups, and where the
/// last complete group ends (for cutting an unfinished group whose predecessor was stepped over).
pub(super) struct AfterSnapshot<'a> {
    pub(super) records: Vec<(WalRecord, &'a FramePos)>,
    pub(super) complete: usize,
    /// The end of the last complete group at or before the restore point, if any was read.
    pub(super) covered_end: Option<FramePos>,
    pub(super) skipped: u64,
}

/// Decodes the frames after `snapshot_seq`; frames at or before it are stepped over by their seq
/// prefix ([`WalRecord::peek_seq`]) without decoding (their CRC was checked when read).
pub(super) fn decode_after(
    frames: &[per_store::RecoveredFrame],
    snapshot_seq: u64,
) -> Result<AfterSnapshot<'_>, RecoveryError> {
    let mut out = AfterSnapshot {
        records: Vec::new(),
        complete: 0,
        covered_end: None,
        skipped: 0,
    };
    for frame in frames {
        if out.records.is_empty()
            && let Some((seq, group_end)) = WalRecord::peek_seq(&frame.data)
            && seq <= snapshot_seq
        {
            out.skipped += 1;
            if group_end {
                out.covered_end = Some(frame.pos.clone());
            }
            continue;
        }
        let record = WalRecord::decode(&frame.data).map_err(|source| RecoveryError::Record {
            segment: frame.pos.segment.clone(),
            offset: frame.pos.offset,
            source,
        })?;
        out.records.push((record, &frame.pos));
    }
    out.complete = out
        .records
        .iter()
        .rposition(|(record, _)| matches!(record, WalRecord::GroupEnd { .. }))
        .map_or(0, |last_end| last_end + 1);
    Ok(out)
}
