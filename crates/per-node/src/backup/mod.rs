//! Remote backups (issue 7): which targets are configured, the node's uploader, and what the
//! verbs share to read a target back.
//!
//! - [`BackupSettings`]: `PER_DATABASE_URL` → the Postgres target (rows of `per_backup_objects`
//!   for `PER_CLUSTER`), `PER_BACKUP_S3_URL` → the S3/R2 target (objects under the URL's prefix).
//!   The local data dir is always a target of its own (`local`).
//! - [`uploader`]: `per serve`'s backup thread, off the write path.
//! - [`BackupBoard`]: per-target status for `/health.backups` and metrics.
//! - [`remote`]: downloading a target into a directory laid out like a data dir (verify, restore).
//!
//! The targets themselves ([`per_store::BackupTarget`]) live in `per-store`.

pub mod archiver;
pub mod remote;
pub mod uploader;

use crate::config_error::ConfigError;
use crate::ha;
use per_store::{BackupTarget, PgTarget, S3Target};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Default `limits.backup_lag_max_secs`.
pub const BACKUP_LAG_MAX_SECS_DEFAULT: u64 = 300;

/// How long a backup connection waits for another node's schema migration lock (only when the
/// schema is behind; see `ha::pg::migrate`).
const BACKUP_MIGRATION_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(30);

/// Which remote targets to use.
#[derive(Clone, Debug, Default)]
pub struct BackupSettings {
    /// `PER_DATABASE_URL`: the Postgres target.
    pub database_url: Option<String>,
    /// `PER_BACKUP_S3_URL`: the S3/R2 target.
    pub s3_url: Option<String>,
    /// `PER_CLUSTER`: namespaces the Postgres rows.
    pub cluster: String,
}

impl BackupSettings {
    /// Names of the configured remote targets (`postgres`, `s3`), in that order.
    pub fn configured(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.database_url.as_deref().is_some_and(|u| !u.is_empty()) {
            out.push("postgres");
        }
        if self.s3_url.as_deref().is_some_and(|u| !u.is_empty()) {
            out.push("s3");
        }
        out
    }

    /// Opens one remote target by name (nothing is connected yet). A bad URL or missing
    /// credentials is a usage error (exit 2).
    pub fn open(&self, name: &str) -> anyhow::Result<Box<dyn BackupTarget>> {
        match name {
            "postgres" => {
                let url = self
                    .database_url
                    .as_deref()
                    .filter(|u| !u.is_empty())
                    .ok_or_else(|| {
                        ConfigError::new("the postgres target needs PER_DATABASE_URL")
                    })?;
                let target = PgTarget::new(url, &self.cluster, |client| {
                    ha::pg::migrate(client, BACKUP_MIGRATION_WAIT_MAX).map_err(|e| e.to_string())
                })
                .map_err(|e| ConfigError::new(e.to_string()))?;
                Ok(Box::new(target))
            }
            "s3" => {
                let url = self
                    .s3_url
                    .as_deref()
                    .filter(|u| !u.is_empty())
                    .ok_or_else(|| ConfigError::new("the s3 target needs PER_BACKUP_S3_URL"))?;
                let target =
                    S3Target::from_url_and_env(url).map_err(|e| ConfigError::new(e.to_string()))?;
                Ok(Box::new(target))
            }
            other => Err(ConfigError::new(format!(
                "unknown backup target {other:?} (local, postgres or s3)"
            ))),
        }
    }
}

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

/// What `/health.backups` shows per target.
#[derive(Clone, Debug, Serialize)]
pub struct TargetHealth {
    /// Unix seconds of the last success (0: none).
    pub last_success: u64,
    /// Seconds the oldest pending object has waited (0: nothing pending).
    pub lag_secs: u64,
    /// Objects not yet copied.
    pub pending: u64,
    /// The last error, while failing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Objects uploaded since start (remote targets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uploaded: Option<u64>,
    /// Objects held by the target with other bytes (remote targets; never overwritten).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conflicts: Option<u64>,
    /// Live WAL archiving: the last seq stored in the target (absent: not archiving).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archived_seq: Option<u64>,
    /// Live WAL archiving: acknowledged seqs not yet in the target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive_lag_seqs: Option<u64>,
    /// Live WAL archiving: seconds the oldest unarchived acknowledged seq has waited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive_lag_secs: Option<u64>,
    /// Live WAL archiving: the generation being written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive_generation: Option<String>,
}

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
