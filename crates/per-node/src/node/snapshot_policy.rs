//! What the snapshot thread is told (its policy) and what it answers to a requested snapshot:
//! shared by the planner on the sequencer side (`snapshot_handoff`) and the thread (`snapshotter`).

use per_store::EncryptionKey;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// Snapshot policy.
#[derive(Clone, Debug)]
pub struct SnapshotPolicy {
    /// `<data-dir>/snapshots`.
    pub dir: PathBuf,
    /// A snapshot every this many transactions (runbook: 100).
    pub every_txs: u64,
    /// A snapshot at least this often when anything changed (runbook: 5 min, `SNAPSHOT_INTERVAL`).
    pub interval: Duration,
    /// Deltas on one full snapshot before the next is full.
    pub delta_chain_max: u32,
    /// Restore points retention keeps at least (runbook: "check last 10 snapshots").
    pub restore_points_min: usize,
    /// Full snapshots kept with their chains (`limits.snapshot_full_kept_min`).
    pub full_kept_min: usize,
    /// Sealed WAL segments waiting for compression.
    pub jobs_max: usize,
    /// Memory budget of the hand-over waiting for a busy writer, in records (effects); past it
    /// the waiting effects are replaced by one copy of the state.
    pub pending_records_max: usize,
    /// Seconds the writer may stay behind (oldest handed-over effect not yet written) before it
    /// counts as a snapshot failure and `/health` degrades.
    pub behind_secs_max: u64,
    /// Epoch written into headers.
    pub epoch: u64,
    /// Encryption at rest.
    pub key: Option<Arc<EncryptionKey>>,
    /// `<data-dir>/wal`: sealed segments are compressed and old ones retired from here.
    pub wal_dir: PathBuf,
    /// WAL segments younger than this are never deleted (runbook: keep 7 days).
    pub wal_age_min: Duration,
}

/// The result of one snapshot, for `/admin/snapshot` and verbs.
#[derive(Clone, Debug)]
pub struct SnapshotOutcome {
    /// File written.
    pub path: PathBuf,
    /// Last seq it holds.
    pub seq: u64,
    /// full | delta.
    pub kind: &'static str,
    /// Bytes on disk.
    pub bytes: u64,
}

/// Where an explicit request's answer goes.
pub type SnapshotResponder = oneshot::Sender<Result<SnapshotOutcome, String>>;
