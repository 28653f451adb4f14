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

/// Default `limits.backup_lag_max_secs` (defined with the limits).
pub use crate::config::BACKUP_LAG_MAX_SECS_DEFAULT;

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
                        ConfigError::error("the postgres target needs PER_DATABASE_URL")
                    })?;
                let target = PgTarget::new(url, &self.cluster, |client| {
                    ha::pg::migrate(client, BACKUP_MIGRATION_WAIT_MAX).map_err(|e| e.to_string())
                })
                .map_err(|e| ConfigError::error(e.to_string()))?;
                Ok(Box::new(target))
            }
            "s3" => {
                let url = self
                    .s3_url
                    .as_deref()
                    .filter(|u| !u.is_empty())
                    .ok_or_else(|| ConfigError::error("the s3 target needs PER_BACKUP_S3_URL"))?;
                let target = S3Target::from_url_and_env(url)
                    .map_err(|e| ConfigError::error(e.to_string()))?;
                Ok(Box::new(target))
            }
            other => Err(ConfigError::error(format!(
                "unknown backup target {other:?} (local, postgres or s3)"
            ))),
        }
    }
}

pub use crate::status::backups::{BackupBoard, TargetHealth, TargetStatus};
