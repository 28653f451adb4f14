//! The snapshot thread's progress, for `/health` and metrics.

use crate::clock::unix_millis;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// What `/health` and metrics read.
#[derive(Debug, Default)]
pub struct SnapshotStatus {
    /// Unix seconds of the last successful snapshot (0: none).
    pub last_unix_secs: AtomicU64,
    /// Seq of the last successful snapshot.
    pub last_seq: AtomicU64,
    /// Duration of the last write, microseconds.
    pub last_write_micros: AtomicU64,
    /// Failed snapshot writes, and writer-behind episodes past `behind_secs_max`, since start.
    pub failures: AtomicU64,
    /// Unix ms of the oldest handed-over effect not yet written (0: the writer is caught up).
    pub oldest_unwritten_ms: AtomicU64,
    /// `behind_secs_max` (for `/health`).
    pub behind_secs_max: AtomicU64,
    /// The current behind episode was already counted as a failure.
    pub behind_episode: AtomicBool,
    /// Hand-overs merged into one still waiting for the writer.
    pub coalesced: AtomicU64,
    /// Copies of the whole state made by the sequencer (re-seeds only).
    pub state_clones: AtomicU64,
    /// Full snapshots written from such a copy (equals `state_clones` unless a write failed).
    pub fulls_from_clone: AtomicU64,
    /// Full snapshots written (from the replica or a copy).
    pub fulls_written: AtomicU64,
    /// Delta snapshots written.
    pub deltas_written: AtomicU64,
    /// Hand-overs whose replay on the replica did not give the logged root (a bug).
    pub replica_mismatches: AtomicU64,
    /// The replica was dropped: the planner re-seeds it from a copy at its next hand-over.
    pub replica_lost: AtomicBool,
}

impl SnapshotStatus {
    /// Seconds the writer is behind (0: caught up).
    pub fn writer_lag_secs(&self) -> u64 {
        match self.oldest_unwritten_ms.load(Ordering::Relaxed) {
            0 => 0,
            since => unix_millis().saturating_sub(since) / 1000,
        }
    }
}
