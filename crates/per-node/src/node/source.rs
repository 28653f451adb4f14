//! Where a node's data lives and what identifies its cluster: the WAL options and snapshot
//! directory recovery reads, the cluster id in segment headers, the encryption key.

use crate::node::recovery::RecoverySource;
use sha2::{Digest, Sha256};

/// The 16-byte cluster id written in WAL segment headers, derived from the cluster name so that
/// every node of a cluster agrees on it and a segment from another cluster is refused.
pub fn cluster_id(cluster: &str) -> [u8; 16] {
    let digest = Sha256::digest(format!("per/cluster/{cluster}").as_bytes());
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    id
}

/// Loads the encryption key named by `PER_ENCRYPTION_KEY_FILE`, if any (a bad key file is a
/// configuration error, exit 2).
pub fn load_key(
    path: Option<&std::path::Path>,
) -> anyhow::Result<Option<std::sync::Arc<per_store::EncryptionKey>>> {
    match path {
        None => Ok(None),
        Some(path) => per_store::EncryptionKey::from_file(path)
            .map(|key| Some(std::sync::Arc::new(key)))
            .map_err(|e| crate::config_error::ConfigError::error(e.to_string())),
    }
}

/// Where a data directory keeps its WAL and snapshots, with the node's limits.
pub fn recovery_source(
    data_dir: &std::path::Path,
    cluster: &str,
    limits: &crate::config::Limits,
    epoch: u64,
    key: Option<std::sync::Arc<per_store::EncryptionKey>>,
    state_limits: per_core::StateLimits,
) -> RecoverySource {
    let mut wal = per_store::WalOptions::new(data_dir.join("wal"), cluster_id(cluster), epoch);
    wal.segment_bytes_max = limits.segment_bytes_max;
    wal.record_bytes_max = limits.record_bytes_max;
    wal.key = key.clone();
    RecoverySource {
        wal,
        snapshots_dir: data_dir.join("snapshots"),
        key,
        limits: state_limits,
        group_records_max: limits.group_records_max,
    }
}
