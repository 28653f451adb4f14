//! Start-up recovery: replay every intact WAL record through the same code path as execution.
//!
//! Policy (DESIGN.md §4): a torn tail is cut by the WAL (with a `.broken` copy); a commit group
//! without its `GroupEnd` at the very end was never acknowledged and is cut too; anything else that
//! does not decode, is out of sequence, contradicts the state, or ends in a different root is
//! corruption, and the node refuses to start.

use per_core::{RecordError, ReplayError, State, StateLimits, WalRecord};
use per_store::{FramePos, TornTail, Wal, WalError, WalOptions};
use std::path::PathBuf;

/// Why the node cannot start from its WAL.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    /// The WAL itself refused (I/O, corruption, foreign or unsupported segment).
    #[error(transparent)]
    Wal(#[from] WalError),
    /// A frame is intact but its record does not decode.
    #[error(
        "WAL record in {} at offset {offset} does not decode: {source}; refusing to start (see docs/RUNBOOK.md, 'State corruption')",
        segment.display()
    )]
    Record {
        /// Segment file.
        segment: PathBuf,
        /// Offset of the frame.
        offset: u64,
        /// Decoding error.
        source: RecordError,
    },
    /// A record does not fit the replayed state (gap, divergence, root mismatch).
    #[error(
        "WAL replay failed in {} at offset {offset}: {source}; refusing to start (see docs/RUNBOOK.md, 'State corruption')",
        segment.display()
    )]
    Replay {
        /// Segment file.
        segment: PathBuf,
        /// Offset of the frame.
        offset: u64,
        /// What did not fit.
        source: ReplayError,
    },
}

impl RecoveryError {
    /// Whether this is damage to the data (exit 1) rather than an I/O failure.
    pub fn is_corruption(&self) -> bool {
        !matches!(self, RecoveryError::Wal(WalError::Io { .. }))
    }
}

/// What recovery found, for the start-up log.
#[derive(Debug, Default)]
pub struct RecoveryReport {
    /// Transactions replayed.
    pub transactions: u64,
    /// Commit groups replayed.
    pub groups: u64,
    /// Segments read.
    pub segments: usize,
    /// A torn tail the WAL cut off.
    pub torn_tail: Option<TornTail>,
    /// Records of an unfinished commit group that were cut (never acknowledged).
    pub unfinished_group_records: usize,
}

/// Opens the WAL in `options.dir`, replays it into a fresh state and returns both.
pub fn recover(
    options: WalOptions,
    limits: StateLimits,
) -> Result<(State, Wal, RecoveryReport), RecoveryError> {
    let (mut wal, recovered) = Wal::open(options)?;
    let mut report = RecoveryReport {
        segments: recovered.segments.len(),
        torn_tail: recovered.torn_tail.clone(),
        ..RecoveryReport::default()
    };
    let mut records = Vec::with_capacity(recovered.frames.len());
    for frame in &recovered.frames {
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
    if complete < records.len() {
        report.unfinished_group_records = records.len() - complete;
        let keep: Option<&FramePos> = complete.checked_sub(1).map(|i| records[i].1);
        tracing::warn!(
            records = report.unfinished_group_records,
            "cutting an unfinished commit group at the WAL tail (never acknowledged)"
        );
        wal.truncate_after(keep)?;
    }
    let mut state = State::new(limits);
    for (record, pos) in &records[..complete] {
        let replay = |source| RecoveryError::Replay {
            segment: pos.segment.clone(),
            offset: pos.offset,
            source,
        };
        match record {
            WalRecord::Tx { seq, effects, .. } => {
                state.apply_effects(*seq, effects).map_err(replay)?;
                report.transactions += 1;
            }
            WalRecord::GroupEnd { seq_last, root, .. } => {
                if *seq_last != state.seq() {
                    return Err(replay(ReplayError::OutOfSequence {
                        expected: state.seq(),
                        found: *seq_last,
                    }));
                }
                state.seal_replayed_group(*root).map_err(replay)?;
                report.groups += 1;
            }
        }
    }
    Ok((state, wal, report))
}
