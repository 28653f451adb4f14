//! Assembling a node: recovery from the WAL, the shared context, and the sequencer.

pub mod recovery;
pub mod shared;

pub use recovery::recover;
pub use shared::{Shared, SharedConfig, unix_millis, unix_secs};

use sha2::{Digest, Sha256};

/// The 16-byte cluster id written in WAL segment headers, derived from the cluster name so that
/// every node of a cluster agrees on it and a segment from another cluster is refused.
pub fn cluster_id(cluster: &str) -> [u8; 16] {
    let digest = Sha256::digest(format!("per/cluster/{cluster}").as_bytes());
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    id
}
