//! A resolved data directory and the two ways a procedure may work on it: offline, holding its
//! `LOCK` (so no node writes while we do), or alongside a running node reached by URL (files are
//! read, never written).

use crate::node_client::{AdminToken, NodeClient, NodeError};
use per_core::StateLimits;
use per_node::config::Limits;
use per_node::node::RecoverySource;
use per_node::node::data_dir_lock::{LockError, lock_data_dir};
use per_node::node::recovery::RecoveryError;
use per_store::snapshot;
use per_store::{EncryptionKey, WalError, WalOptions};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a procedure may not work on the data directory.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// The directory does not exist (usage: exit 2).
    #[error("no data directory at {} (set --data-dir or PER_DATA_DIR)", dir.display())]
    NoDataDir {
        /// The directory.
        dir: PathBuf,
    },
    /// A node holds the `LOCK` (refused: exit 4); `hint` says what to do instead.
    #[error("a node is running on {} (it holds {}): {hint}", dir.display(), dir.join("LOCK").display())]
    Held {
        /// The directory.
        dir: PathBuf,
        /// What the operator can do.
        hint: &'static str,
    },
    /// The `LOCK` could not be taken for another reason (exit 1).
    #[error(transparent)]
    Lock(LockError),
    /// The node named by `--url` could not be used.
    #[error(transparent)]
    Node(#[from] NodeError),
}

/// A snapshot is encrypted and the configured key cannot read it (configuration: exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(pub String);

/// The resolved data directory: paths, key, limits, backup settings from the config file.
pub struct DataDir {
    /// The directory.
    pub dir: PathBuf,
    /// Cluster name.
    pub cluster: String,
    /// Encryption key, if configured.
    pub key: Option<Arc<EncryptionKey>>,
    /// The node's limits (from `--config`, else the defaults).
    pub limits: Limits,
    /// Remote backup targets named in the `--config` file (flags and environment win).
    pub config_backups: per_node::backup::BackupSettings,
}

impl DataDir {
    /// `<data-dir>/snapshots`.
    pub fn snapshots_dir(&self) -> PathBuf {
        self.dir.join("snapshots")
    }

    /// `<data-dir>/wal`.
    pub fn wal_dir(&self) -> PathBuf {
        self.dir.join("wal")
    }

    /// State limits for rebuilding states.
    pub fn state_limits(&self) -> StateLimits {
        self.limits.state_limits()
    }

    /// The key as a reference.
    pub fn key(&self) -> Option<&EncryptionKey> {
        self.key.as_deref()
    }

    /// Where recovery reads from (epoch 1, as `per serve`).
    pub fn source(&self) -> RecoverySource {
        per_node::node::recovery_source(
            &self.dir,
            &self.cluster,
            &self.limits,
            1,
            self.key.clone(),
            self.state_limits(),
        )
    }

    /// WAL options (cluster id, limits, key).
    pub fn wal_options(&self) -> WalOptions {
        self.source().wal
    }

    /// [`AccessError::NoDataDir`] when the data directory does not exist.
    pub fn require_exists(&self) -> Result<(), AccessError> {
        if self.dir.is_dir() {
            Ok(())
        } else {
            Err(AccessError::NoDataDir {
                dir: self.dir.clone(),
            })
        }
    }

    /// Takes the data dir's `LOCK` for offline work; held by a node → [`AccessError::Held`]
    /// (the message says to use `--url`).
    pub fn lock(&self) -> Result<File, AccessError> {
        self.lock_with_hint("pass --url <node> to work with it, or stop it first")
    }

    /// [`DataDir::lock`] for procedures that only work offline (the message says to stop the node).
    pub fn lock_offline(&self) -> Result<File, AccessError> {
        self.lock_with_hint("this works offline only: stop the node first")
    }

    fn lock_with_hint(&self, hint: &'static str) -> Result<File, AccessError> {
        self.require_exists()?;
        lock_data_dir(&self.dir).map_err(|error| match error {
            LockError::Held { .. } => AccessError::Held {
                dir: self.dir.clone(),
                hint,
            },
            LockError::Io { .. } => AccessError::Lock(error),
        })
    }

    /// Whether a node holds the `LOCK` right now (a probe: the lock is released at once).
    pub fn lock_held(&self) -> bool {
        matches!(lock_data_dir(&self.dir), Err(LockError::Held { .. }))
    }

    /// [`KeyError`] when one of `snapshots` is encrypted and no key is configured (or another key
    /// is): that is configuration, not damage. Files whose header does not read are left to the
    /// checks.
    pub fn require_key_for<'a>(
        &self,
        snapshots: impl IntoIterator<Item = &'a Path>,
    ) -> Result<(), KeyError> {
        for path in snapshots {
            let Ok(meta) = snapshot::read_meta(path) else {
                continue;
            };
            let Some(needed) = meta.key_id else { continue };
            match self.key() {
                None => {
                    return Err(KeyError(format!(
                        "{} is encrypted (key id {}) and no encryption key is configured: set PER_ENCRYPTION_KEY_FILE or --encryption-key-file",
                        path.display(),
                        hex::encode(needed)
                    )));
                }
                Some(key) if key.key_id() != needed => {
                    return Err(KeyError(format!(
                        "{} is encrypted with key id {}, but the configured key is {}",
                        path.display(),
                        hex::encode(needed),
                        hex::encode(key.key_id())
                    )));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// [`DataDir::require_key_for`] every snapshot of `<data-dir>/snapshots`.
    pub fn require_key_for_data_dir(&self) -> Result<(), KeyError> {
        let Ok(listed) = snapshot::list_snapshots(&self.snapshots_dir()) else {
            return Ok(());
        };
        self.require_key_for(listed.snapshots.iter().map(|s| s.path.as_path()))
    }
}

/// Either a held `LOCK` or a reachable node: the two ways a data-dir procedure may proceed.
pub enum Access {
    /// Offline: the procedure holds the data dir's `LOCK` until this is dropped.
    Locked(#[allow(dead_code)] File),
    /// Alongside a running node (files are read, never written).
    Node(Box<NodeClient>),
}

impl Access {
    /// Takes the `LOCK`, or with a `url` checks that the node answers `/health` (exit 3 if not).
    pub fn acquire(
        data: &DataDir,
        url: Option<&str>,
        token: &AdminToken,
    ) -> Result<Access, AccessError> {
        match url {
            None => Ok(Access::Locked(data.lock()?)),
            Some(url) => {
                data.require_exists()?;
                let client = NodeClient::new(url, token, &data.dir)?;
                client.get_json("/health")?;
                Ok(Access::Node(Box::new(client)))
            }
        }
    }

    /// The node, when working alongside one.
    pub fn node(&self) -> Option<&NodeClient> {
        match self {
            Access::Locked(_) => None,
            Access::Node(node) => Some(node),
        }
    }
}

/// The exit code a recovery error stands for in a procedure: a key problem is configuration (2),
/// anything else a finding (1).
pub fn recovery_exit_code(error: &RecoveryError) -> u8 {
    match error {
        RecoveryError::Wal(WalError::KeyRequired { .. } | WalError::WrongKey { .. }) => 2,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data_dir(dir: &Path) -> DataDir {
        DataDir {
            dir: dir.to_owned(),
            cluster: "test".to_owned(),
            key: None,
            limits: Limits::default(),
            config_backups: per_node::backup::BackupSettings::default(),
        }
    }

    #[test]
    fn a_missing_dir_is_a_usage_error_and_a_held_lock_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = data_dir(&tmp.path().join("nope"));
        assert!(matches!(missing.lock(), Err(AccessError::NoDataDir { .. })));
        let data = data_dir(tmp.path());
        let held = data.lock().unwrap();
        assert!(data.lock_held());
        let second = data.lock_offline().err().map(|e| e.to_string());
        assert!(second.is_some_and(|m| m.contains("stop the node first")));
        drop(held);
        assert!(!data.lock_held());
    }
}
