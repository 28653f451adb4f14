//! [`RecoveryError`]: every reason the node refuses to start from its data directory, each naming
//! the file and offset an operator needs (see docs/RUNBOOK.md).

use per_core::{RecordError, ReplayError};
use per_store::WalError;
use std::path::PathBuf;

/// Why the node cannot start from its data directory.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    /// The WAL itself refused (I/O, corruption, foreign or unsupported segment, key).
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
    /// The WAL does not continue the newest valid snapshot.
    #[error(
        "the WAL starts at seq {wal_first_seq} but the newest valid snapshot ends at seq {snapshot_seq}: transactions {snapshot_seq}+1..{wal_first_seq} are missing; refusing to start (see docs/RUNBOOK.md, 'State corruption')"
    )]
    WalGap {
        /// Last seq of the snapshot state (0: none).
        snapshot_seq: u64,
        /// First WAL record after it.
        wal_first_seq: u64,
    },
    /// Cutting the damaged WAL tail would take the log below a seq that a snapshot proves was
    /// acknowledged: the damage is in acknowledged data, not a torn write.
    #[error(
        "WAL tail damage in {} at offset {offset} ({torn_bytes} damaged byte(s), {unfinished_records} record(s) of an unfinished group): cutting it would end the WAL at seq {wal_end_seq}, but snapshot {} proves seq {evidence_seq} was acknowledged, so the damaged bytes are acknowledged data, not a torn write; refusing to start and changing nothing (see docs/RUNBOOK.md, 'Tail damage below a snapshot': `per replay-wal --from-snapshot latest`, then `per restore-snapshot --file latest --dry-run` / `--force`)",
        segment.display(), evidence.display()
    )]
    TailDamageBelowSnapshot {
        /// The last segment.
        segment: PathBuf,
        /// Where the cut would start (the damaged frame, or the unfinished group's first frame).
        offset: u64,
        /// Bytes of the damaged tail (0 when only an unfinished group would be cut).
        torn_bytes: u64,
        /// Intact records after the last complete group that would be cut.
        unfinished_records: usize,
        /// The last seq the WAL would hold after the cut.
        wal_end_seq: u64,
        /// The snapshot file that proves `evidence_seq`.
        evidence: PathBuf,
        /// The seq it holds.
        evidence_seq: u64,
    },
    /// The WAL, intact, ends before a snapshot's seq: acknowledged records are missing from it.
    #[error(
        "the WAL ends at seq {wal_end_seq} (last segment {}) but snapshot {} proves seq {evidence_seq} was acknowledged: the WAL does not reach the newest snapshot (segments lost, or a WAL from elsewhere); refusing to start (see docs/RUNBOOK.md, 'WAL behind the newest snapshot': `per replay-wal --from-snapshot latest`, `per restore-snapshot --file latest --dry-run` / `--force`)",
        last_segment.display(), evidence.display()
    )]
    WalBehindSnapshot {
        /// The last seq the WAL holds in a complete group.
        wal_end_seq: u64,
        /// Its last segment.
        last_segment: PathBuf,
        /// The snapshot file that proves `evidence_seq`.
        evidence: PathBuf,
        /// The seq it holds.
        evidence_seq: u64,
    },
    /// The damaged tail is larger than one commit group can be: it cannot be a single torn write.
    #[error(
        "WAL tail damage in {} at offset {offset}: cutting it would remove {unfinished_records} record(s) and {bytes} byte(s), more than one commit group can hold (group_records_max {group_records_max}); a tail cut is allowed only for the one group that was never acknowledged; refusing to start (see docs/RUNBOOK.md, 'Tail damage below a snapshot': `per replay-wal --from-snapshot latest`)",
        segment.display()
    )]
    TailCutTooLarge {
        /// The last segment.
        segment: PathBuf,
        /// Where the cut would start.
        offset: u64,
        /// Intact records of the unfinished group.
        unfinished_records: usize,
        /// Bytes the cut would remove.
        bytes: u64,
        /// The configured group size.
        group_records_max: usize,
    },
    /// The snapshot directory could not be listed.
    #[error("cannot read snapshots: {0}")]
    Snapshots(String),
    /// The final rehash disagrees with the last logged root.
    #[error(
        "WAL replay ended in a different root: {0}; refusing to start (see docs/RUNBOOK.md, 'State corruption')"
    )]
    FinalRoot(ReplayError),
}

impl RecoveryError {
    /// Whether this is damage to the data (exit 1) rather than an I/O failure (exit 3).
    pub fn is_corruption(&self) -> bool {
        !matches!(self, RecoveryError::Wal(WalError::Io { .. }))
    }
}
