//! One node's HA settings and the HA timing constants.

use std::time::Duration;

/// Default `PER_LEASE_TTL_SECS`.
pub const DEFAULT_LEASE_TTL_SECS: u64 = 10;
/// A standby further behind than this reports `degraded`.
pub const REPLICATION_LAG_DEGRADED_SECS: u64 = 10;
/// How often a standby polls the shared log when no notification arrives.
pub const POLL_INTERVAL: Duration = Duration::from_millis(150);
/// Groups fetched per query while catching up.
pub const FETCH_GROUPS_MAX: i64 = 256;

/// The HA settings of one node.
#[derive(Clone, Debug)]
pub struct HaConfig {
    /// `PER_DATABASE_URL`.
    pub database_url: String,
    /// `PER_CLUSTER`.
    pub cluster: String,
    /// `PER_NODE_ID` (default: the host name).
    pub node_id: String,
    /// `PER_LEASE_TTL_SECS`.
    pub lease_ttl: Duration,
    /// `PER_ENCRYPTION_KEY_FILE`: with a key, every group in the shared log is sealed with it
    /// (XChaCha20-Poly1305, bound to the cluster and first seq), so Postgres holds no plaintext.
    /// Every node of a cluster needs the same key.
    pub key: Option<std::sync::Arc<per_store::EncryptionKey>>,
}

impl HaConfig {
    /// How often the primary renews its lease.
    pub fn renew_interval(&self) -> Duration {
        (self.lease_ttl / 3).max(Duration::from_millis(100))
    }
}
