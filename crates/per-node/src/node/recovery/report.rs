//! What recovery reads from ([`RecoverySource`]) and what it tells the caller it did
//! ([`RecoveryReport`], [`SkippedSnapshot`]).

use per_core::StateLimits;
use per_store::{EncryptionKey, TornTail, WalOptions};
use std::path::PathBuf;
use std::sync::Arc;

/// A snapshot that was found unusable at start-up.
#[derive(Debug, Clone)]
pub struct SkippedSnapshot {
    /// The restore point tried.
    pub path: PathBuf,
    /// Why its chain was refused.
    pub reason: String,
}

/// What recovery found, for the start-up log and verbs.
#[derive(Debug, Default)]
pub struct RecoveryReport {
    /// The restore point the state was built from.
    pub snapshot: Option<PathBuf>,
    /// Its seq and inner checksum (the next delta's base).
    pub snapshot_tip: Option<(u64, [u8; 32])>,
    /// Restore points that were invalid and skipped.
    pub skipped_snapshots: Vec<SkippedSnapshot>,
    /// Transactions replayed from the WAL.
    pub transactions: u64,
    /// Commit groups replayed.
    pub groups: u64,
    /// Segments read.
    pub segments: usize,
    /// Segments not opened because the restore point covers them (see
    /// [`per_store::WalOptions::replay_from_seq`]).
    pub segments_skipped: usize,
    /// Records stepped over (seq at or before the restore point) without decoding.
    pub records_skipped: u64,
    /// A torn tail the WAL cut off.
    pub torn_tail: Option<TornTail>,
    /// Records of an unfinished commit group that were cut (never acknowledged).
    pub unfinished_group_records: usize,
}

/// Where to recover from.
#[derive(Clone)]
pub struct RecoverySource {
    /// WAL options (its directory, cluster, limits, key).
    pub wal: WalOptions,
    /// `<data-dir>/snapshots`.
    pub snapshots_dir: PathBuf,
    /// Key for encrypted snapshots.
    pub key: Option<Arc<EncryptionKey>>,
    /// State limits.
    pub limits: StateLimits,
    /// Records in one commit group (`limits.group_records_max`): the most a tail cut may remove.
    pub group_records_max: usize,
}
