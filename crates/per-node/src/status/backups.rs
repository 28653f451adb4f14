//! Remote backup targets' status, as the uploader and the archiver last saw them: `/health.backups`
//! and metrics read it.

use crate::config::BACKUP_LAG_MAX_SECS_DEFAULT;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// One remote target's status, as the uploader last saw it.
#[derive(Clone, Debug, Default)]
pub struct TargetStatus {
    /// Unix seconds of the last sync round that completed without error (0: none yet).
    pub last_success: u64,
    /// Objects the target lacks.
    pub pending: u64,
    /// Unix seconds since when the oldest pending object has been waiting.
    pub oldest_pending_since: Option<u64>,
    /// Unix seconds of the first failure since the last success.
    pub failing_since: Option<u64>,
    /// The last error, while failing.
    pub last_error: Option<String>,
    /// Objects uploaded since start.
    pub uploaded: u64,
    /// Bytes uploaded since start.
    pub uploaded_bytes: u64,
    /// Objects the target holds with other bytes (never overwritten; see the log).
    pub conflicts: u64,
    /// Live WAL: the last seq archived to the target by this process (None: not archiving yet).
    pub archived_seq: Option<u64>,
    /// Live WAL: the generation this process archives as.
    pub archive_generation: Option<String>,
    /// Live WAL: Unix seconds since when acknowledged seqs have been waiting for the target.
    pub archive_behind_since: Option<u64>,
    /// Live WAL: acknowledged seqs not yet archived.
    pub archive_lag_seqs: u64,
    /// Live WAL: the last archiving error, while failing.
    pub archive_error: Option<String>,
}

/// One target's `/health.backups` entry: the wire type itself, so what the node reports and what
/// the verbs read cannot drift.
pub use per_wire::health::BackupHealth as TargetHealth;

/// Every remote target's status, shared by the uploader and `/health`.
#[derive(Debug)]
pub struct BackupBoard {
    /// `limits.backup_lag_max_secs`.
    pub lag_max_secs: AtomicU64,
    /// Set by `per serve` once nothing more is written: the uploaders make a last round and exit.
    pub stop: AtomicBool,
    targets: Mutex<BTreeMap<&'static str, TargetStatus>>,
}

impl Default for BackupBoard {
    fn default() -> Self {
        BackupBoard {
            lag_max_secs: AtomicU64::new(BACKUP_LAG_MAX_SECS_DEFAULT),
            stop: AtomicBool::new(false),
            targets: Mutex::new(BTreeMap::new()),
        }
    }
}

impl BackupBoard {
    /// Updates one target's status.
    pub fn update(&self, target: &'static str, change: impl FnOnce(&mut TargetStatus)) {
        if let Ok(mut targets) = self.targets.lock() {
            change(targets.entry(target).or_default());
        }
    }

    /// A copy of every remote target's status.
    pub fn snapshot(&self) -> BTreeMap<&'static str, TargetStatus> {
        self.targets.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// `/health.backups` entries for the remote targets, and the reasons to degrade: a target
    /// failing, or an object waiting, for longer than `backup_lag_max_secs`.
    pub fn health(&self, now: u64) -> (BTreeMap<String, TargetHealth>, Vec<String>) {
        let lag_max = self.lag_max_secs.load(Ordering::Relaxed);
        let mut out = BTreeMap::new();
        let mut reasons = Vec::new();
        for (name, status) in self.snapshot() {
            let lag_secs = status
                .oldest_pending_since
                .map_or(0, |since| now.saturating_sub(since));
            if let Some(since) = status.failing_since
                && now.saturating_sub(since) > lag_max
            {
                reasons.push(format!(
                    "backup target {name} failing for {} s (> {lag_max} s): {}; {} object(s) pending",
                    now.saturating_sub(since),
                    status.last_error.as_deref().unwrap_or("unknown error"),
                    status.pending
                ));
            } else if lag_secs > lag_max {
                reasons.push(format!(
                    "backup target {name} is {lag_secs} s behind (> {lag_max} s): {} object(s) pending",
                    status.pending
                ));
            }
            let archive_lag_secs = status
                .archive_behind_since
                .map_or(0, |since| now.saturating_sub(since));
            if archive_lag_secs > lag_max {
                reasons.push(format!(
                    "backup target {name}: the live WAL is {archive_lag_secs} s behind (> {lag_max} s): {} acknowledged seq(s) not archived{}",
                    status.archive_lag_seqs,
                    status
                        .archive_error
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                ));
            }
            let archiving = status.archived_seq.is_some();
            out.insert(
                name.to_owned(),
                TargetHealth {
                    last_success: status.last_success,
                    lag_secs,
                    pending: status.pending,
                    last_error: status.last_error,
                    uploaded: Some(status.uploaded),
                    conflicts: Some(status.conflicts),
                    archived_seq: status.archived_seq,
                    archive_lag_seqs: archiving.then_some(status.archive_lag_seqs),
                    archive_lag_secs: archiving.then_some(archive_lag_secs),
                    archive_generation: status.archive_generation,
                },
            );
        }
        (out, reasons)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_degrades_only_past_the_lag_limit_and_names_itself() {
        let board = BackupBoard::default();
        board.lag_max_secs.store(300, Ordering::Relaxed);
        board.update("s3", |s| {
            s.last_success = 1_000;
            s.pending = 2;
            s.oldest_pending_since = Some(1_100);
            s.failing_since = Some(1_100);
            s.last_error = Some("s3: unreachable: connection refused".to_owned());
        });
        board.update("postgres", |s| s.last_success = 1_390);
        let (health, reasons) = board.health(1_400);
        assert!(reasons.is_empty(), "{reasons:?}");
        assert_eq!(health["s3"].lag_secs, 300);
        assert_eq!(health["postgres"].lag_secs, 0);
        let (_, reasons) = board.health(1_401);
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        assert!(reasons[0].starts_with("backup target s3 failing for 301 s"));
        // Not failing, but an object waiting too long (a slow target) degrades too.
        board.update("s3", |s| s.failing_since = None);
        let (_, reasons) = board.health(1_401);
        assert!(
            reasons[0].contains("backup target s3 is 301 s behind"),
            "{reasons:?}"
        );
    }
}
